"""TIP against the numpy reference: scores, top-k with the tie rule, both
GQA modes, count and fraction budgets, n_q >= 1, f16/bf16, zero copy."""
import contextlib
import unittest

import numpy as np

import fasa_ref as ref
import fasa
from fasa._lib import lib as clib


def random_profile(rng, n_layers, hq, hkv, d, n_fc, layout=fasa.PAIRS_INTERLEAVED):
    fcs = np.stack([np.stack([rng.choice(d // 2, n_fc, replace=False) for _ in range(hq)])
                    for _ in range(n_layers)])
    return fasa.Profile.from_fcs(fcs, hkv, d, layout), fcs


@contextlib.contextmanager
def spy(name="fasa_attention"):
    """Record what libfasa's `name` receives (still calling it). For
    fasa_attention each record is a snapshot taken at the call: the
    descriptor's fields and copies of its q/k/v/out views (the binding
    reuses its structs between calls)."""
    real = getattr(clib, name)
    calls = []

    def wrapper(*args):
        if name == "fasa_attention":
            desc = args[1]._obj
            snap = {f: getattr(desc, f) for f, _ in type(desc)._fields_}
            for f in ("q", "k", "v", "out"):
                p = getattr(desc, f)
                snap[f] = type(p.contents).from_buffer_copy(p.contents) if p else None
            calls.append(snap)
        else:
            calls.append(args)
        return real(*args)

    setattr(clib, name, wrapper)
    try:
        yield calls
    finally:
        setattr(clib, name, real)


class TestPredict(unittest.TestCase):
    def setUp(self):
        self.rng = np.random.default_rng(1234)

    def check(self, prof, layer, q, k, budget, mode, dtype=None, qf=None, kf=None):
        """Compare fasa.predict with the reference; qf/kf: float values of q/k."""
        qf = q if qf is None else qf
        kf = k if kf is None else kf
        sets = prof.fc_sets(layer, mode)
        want_scores, want_sel = ref.tip(qf, kf, sets, mode, prof.shape.pair_layout, budget)
        got = fasa.predict(prof, layer, q, k, budget, mode=mode, scores=True, dtype=dtype,
                           layout=prof.pair_layout)
        n_sets = q.shape[1] if mode == fasa.PER_HEAD else k.shape[1]
        self.assertEqual(got.counts.shape, (q.shape[0], n_sets))
        self.assertEqual(got.index_stride, fasa.max_selected(budget, k.shape[0]))
        # integer data: float32 sums are exact, so scores and ties match exactly
        np.testing.assert_array_equal(got.scores, want_scores.astype(np.float32))
        for i in range(q.shape[0]):
            for s in range(n_sets):
                np.testing.assert_array_equal(got.set(i, s), want_sel[i][s],
                                              err_msg="query %d set %d" % (i, s))
        return got

    def test_per_head_count_budget(self):
        prof, _ = random_profile(self.rng, 2, 4, 2, 16, 3)
        q = ref.int_data(self.rng, (1, 4, 16))
        k = ref.int_data(self.rng, (50, 2, 16))
        got = self.check(prof, 1, q, k, 7, fasa.PER_HEAD)
        self.assertTrue((got.counts == 7).all())

    def test_ties_go_to_lower_index(self):
        prof, _ = random_profile(self.rng, 1, 2, 1, 8, 2)
        q = np.ones((1, 2, 8), np.float32)
        k = np.ones((20, 1, 8), np.float32)  # every score equal
        k[13] = 2.0
        got = self.check(prof, 0, q, k, 5, fasa.PER_HEAD)
        np.testing.assert_array_equal(got.set(0, 0), [0, 1, 2, 3, 13])

    def test_group_shared(self):
        prof, _ = random_profile(self.rng, 2, 6, 2, 16, 4)
        q = ref.int_data(self.rng, (1, 6, 16))
        k = ref.int_data(self.rng, (40, 2, 16))
        self.check(prof, 0, q, k, 9, fasa.GROUP_SHARED)

    def test_fraction_budget_and_multi_query(self):
        prof, _ = random_profile(self.rng, 1, 4, 4, 16, 4, fasa.PAIRS_HALF)
        q = ref.int_data(self.rng, (5, 4, 16))
        k = ref.int_data(self.rng, (33, 4, 16))
        got = self.check(prof, 0, q, k, 0.3, fasa.PER_HEAD)
        for i in range(5):
            self.assertEqual(got.counts[i, 0], ref.budget_count(0.3, 33 - 5 + i + 1))
        self.check(prof, 0, q, k, 0.01, fasa.GROUP_SHARED)  # max(1, floor(t*b))

    def test_budget_above_t(self):
        prof, _ = random_profile(self.rng, 1, 2, 1, 8, 2)
        q = ref.int_data(self.rng, (1, 2, 8))
        k = ref.int_data(self.rng, (6, 1, 8))
        got = self.check(prof, 0, q, k, 100.9, fasa.PER_HEAD)
        np.testing.assert_array_equal(got.set(0, 1), np.arange(6))

    def test_f16_and_bf16(self):
        prof, _ = random_profile(self.rng, 1, 4, 2, 16, 4)
        q = ref.int_data(self.rng, (1, 4, 16))
        k = ref.int_data(self.rng, (30, 2, 16))
        self.check(prof, 0, q.astype(np.float16), k.astype(np.float16), 6, fasa.PER_HEAD,
                   qf=q, kf=k)
        self.check(prof, 0, ref.to_bf16(q), ref.to_bf16(k), 6, fasa.PER_HEAD, dtype="bf16",
                   qf=q, kf=k)
        self.check(prof, 0, q, ref.to_bf16(k), 6, fasa.GROUP_SHARED, dtype="bf16", kf=k)

    def test_zero_copy_strided_cache(self):
        prof, _ = random_profile(self.rng, 1, 4, 2, 16, 4)
        cache = np.full((64, 3, 24), np.nan, np.float32)  # capacity, spare head, padding
        k = cache[:45, 1:3, :16]
        k[...] = ref.int_data(self.rng, k.shape)
        q = ref.int_data(self.rng, (1, 4, 16))
        with spy() as calls:
            strided = fasa.predict(prof, 0, q, k, 11, scores=True, layout=prof.pair_layout)
        kview = calls[0]["k"]
        self.assertEqual(kview.data, k.ctypes.data)  # the caller's memory, not a copy
        self.assertEqual((kview.token_stride, kview.head_stride), (72, 24))
        dense = fasa.predict(prof, 0, q, np.ascontiguousarray(k), 11, scores=True,
                             layout=prof.pair_layout)
        np.testing.assert_array_equal(strided.indices, dense.indices)
        np.testing.assert_array_equal(strided.counts, dense.counts)
        np.testing.assert_array_equal(strided.scores, dense.scores)
        self.assertFalse(np.isnan(strided.scores).any())  # padding never read

    def test_head_major_cache(self):
        prof, _ = random_profile(self.rng, 1, 4, 2, 16, 4)
        hf = ref.int_data(self.rng, (2, 40, 16))  # [heads, tokens, dim]
        q = ref.int_data(self.rng, (1, 4, 16))
        self.check(prof, 0, q, hf.transpose(1, 0, 2), 10, fasa.PER_HEAD)

    def test_scores_optional(self):
        prof, _ = random_profile(self.rng, 1, 2, 1, 8, 2)
        q = ref.int_data(self.rng, (1, 2, 8))
        k = ref.int_data(self.rng, (10, 1, 8))
        with spy() as calls:
            got = fasa.predict(prof, 0, q, k, 3, layout=prof.pair_layout)
        self.assertIsNone(got.scores)
        self.assertIsNone(calls[0]["scores"])  # NULL scores pointer


if __name__ == "__main__":
    unittest.main()
