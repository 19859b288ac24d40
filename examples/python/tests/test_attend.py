"""FAC, dense causal attention, decode_step and the label cache against
the numpy reference."""
import unittest

import numpy as np

import fasa_ref as ref
import fasa
from test_predict import random_profile, spy


def close(test, got, want, vmax):
    # fasa.h: max abs error <= 1e-5 * max|v| for f32 data (2x margin for the
    # float32 rounding of the output itself)
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * vmax + 1e-7)


class TestAttend(unittest.TestCase):
    def setUp(self):
        self.rng = np.random.default_rng(99)

    def rand(self, *shape):
        return self.rng.standard_normal(shape).astype(np.float32)

    def test_attend_per_head_with_lse(self):
        q, k, v = self.rand(1, 4, 16), self.rand(30, 2, 16), self.rand(30, 2, 12)
        sets = [[np.sort(self.rng.choice(30, n, replace=False)) for n in (1, 5, 9, 30)]]
        stride = 30
        idx = np.zeros((1, 4, stride), np.uint32)
        cnt = np.zeros((1, 4), np.uint32)
        for h, s in enumerate(sets[0]):
            idx[0, h, :s.size] = s
            cnt[0, h] = s.size
        out, lse = fasa.attend(q, k, v, (idx, cnt), mode=fasa.PER_HEAD, lse=True)
        want, want_lse = ref.attend(q, k, v, sets, fasa.PER_HEAD)
        self.assertEqual(out.shape, (1, 4, 12))
        close(self, out, want, np.abs(v).max())
        np.testing.assert_allclose(lse, want_lse, rtol=1e-5, atol=1e-5)

    def test_attend_selection_and_scale(self):
        prof, _ = random_profile(self.rng, 1, 6, 2, 16, 4)
        q, k, v = self.rand(3, 6, 16), self.rand(40, 2, 16), self.rand(40, 2, 16)
        for mode in (fasa.PER_HEAD, fasa.GROUP_SHARED):
            sel = fasa.predict(prof, 0, q, k, 8, mode=mode, layout=prof.pair_layout)
            sets = [[sel.set(i, s) for s in range(sel.counts.shape[1])] for i in range(3)]
            out, lse = fasa.attend(q, k, v, sel, scale=0.3, lse=True)
            want, want_lse = ref.attend(q, k, v, sets, mode, scale=0.3)
            close(self, out, want, np.abs(v).max())
            np.testing.assert_allclose(lse, want_lse, rtol=1e-5, atol=1e-5)

    def test_empty_set(self):
        q, k, v = self.rand(1, 2, 8), self.rand(5, 1, 8), self.rand(5, 1, 8)
        idx = np.zeros((1, 2, 5), np.uint32)
        cnt = np.array([[0, 2]], np.uint32)
        idx[0, 1, :2] = [1, 3]
        out, lse = fasa.attend(q, k, v, (idx, cnt), lse=True)
        self.assertEqual(lse[0, 0], -np.inf)
        self.assertTrue((out[0, 0] == 0).all())
        self.assertTrue(np.isfinite(lse[0, 1]))

    def test_dense_causal(self):
        q, k, v = self.rand(4, 4, 16), self.rand(20, 2, 16), self.rand(20, 2, 16)
        out, lse = fasa.attend_dense(q, k, v, lse=True)
        want, want_lse = ref.attend(q, k, v, ref.dense_sets(4, 20, 4), fasa.PER_HEAD)
        close(self, out, want, np.abs(v).max())
        np.testing.assert_allclose(lse, want_lse, rtol=1e-5, atol=1e-5)

    def test_lse_merges_partials(self):
        q, k, v = self.rand(1, 2, 8), self.rand(16, 2, 8), self.rand(16, 2, 8)
        full, lse = fasa.attend_dense(q, k, v, lse=True)
        a, la = fasa.attend_dense(q, k[:8], v[:8], lse=True)
        b, lb = self._attend_range(q, k, v, 8, 16)
        m = np.logaddexp(la, lb)
        merged = a * np.exp(la - m)[..., None] + b * np.exp(lb - m)[..., None]
        np.testing.assert_allclose(m, lse, rtol=1e-5, atol=1e-5)
        close(self, merged, full, np.abs(v).max())

    def _attend_range(self, q, k, v, lo, hi):
        idx = np.tile(np.arange(lo, hi, dtype=np.uint32), (1, q.shape[1], 1))
        cnt = np.full((1, q.shape[1]), hi - lo, np.uint32)
        return fasa.attend(q, k, v, (idx, cnt), lse=True)

    def test_outputs_f16_bf16_and_in_place(self):
        q, k, v = self.rand(1, 4, 8), self.rand(12, 2, 8), self.rand(12, 2, 8)
        want = fasa.attend_dense(q, k, v)
        h = fasa.attend_dense(q, k, v, out_dtype="f16")
        self.assertEqual(h.dtype, np.float16)
        np.testing.assert_allclose(h.astype(np.float32), want, atol=2e-3)
        b = fasa.attend_dense(q, k, v, out_dtype="bf16")
        self.assertEqual(b.dtype, np.uint16)
        np.testing.assert_allclose(ref.from_bf16(b), want, atol=1.6e-2)
        # a strided slice of a bigger caller buffer is written in place
        big = np.full((3, 4, 12), 7.0, np.float32)
        target = big[1:2, :, 2:10]
        with spy() as calls:
            res = fasa.attend_dense(q, k, v, out=target)
        self.assertIs(res, target)
        self.assertEqual(calls[0]["out"].data, target.ctypes.data)
        np.testing.assert_array_equal(big[1, :, 2:10], want[0])
        self.assertTrue((big[0] == 7).all() and (big[2] == 7).all())
        self.assertTrue((big[1, :, :2] == 7).all() and (big[1, :, 10:] == 7).all())

    def test_half_inputs(self):
        q, k, v = self.rand(1, 2, 8), self.rand(10, 1, 8), self.rand(10, 1, 8)
        qh, kh, vh = (x.astype(np.float16) for x in (q, k, v))
        got = fasa.attend_dense(qh, kh, vh)
        want, _ = ref.attend(qh, kh, vh, ref.dense_sets(1, 10, 2), fasa.PER_HEAD)
        close(self, got, want, np.abs(vh.astype(np.float32)).max())
        kb, vb = ref.to_bf16(k), ref.to_bf16(v)
        got = fasa.attend_dense(q, kb, vb, dtype="bf16")
        want, _ = ref.attend(q, ref.from_bf16(kb), ref.from_bf16(vb),
                             ref.dense_sets(1, 10, 2), fasa.PER_HEAD)
        close(self, got, want, np.abs(ref.from_bf16(vb)).max())

    def test_zero_copy_padded_kv(self):
        cache_k = np.full((32, 2, 20), np.nan, np.float32)
        cache_v = np.full((32, 2, 20), np.nan, np.float32)
        t = 25
        k, v = cache_k[:t, :, :16], cache_v[:t, :, :16]
        k[...] = self.rand(t, 2, 16)
        v[...] = self.rand(t, 2, 16)
        q = self.rand(1, 4, 16)
        with spy() as calls:
            got = fasa.attend_dense(q, k, v)
        self.assertEqual(calls[0]["k"].data, k.ctypes.data)
        self.assertEqual(calls[0]["v"].data, v.ctypes.data)
        np.testing.assert_array_equal(
            got, fasa.attend_dense(q, np.ascontiguousarray(k), np.ascontiguousarray(v)))

    def test_every_cpu_level(self):
        # the binding's Context(cpu_level=) reaches every kernel this CPU has
        best = fasa.cpu_best_level()
        levels = [fasa.CPU_SCALAR] + ([best] if best == fasa.CPU_NEON else
                                      list(range(fasa.CPU_AVX2, best + 1)))
        prof, _ = random_profile(self.rng, 1, 8, 2, 64, 16)
        q, k, v = self.rand(2, 8, 64), self.rand(150, 2, 64), self.rand(150, 2, 64)
        want, want_lse = ref.attend(q, k, v, ref.dense_sets(2, 150, 8), fasa.PER_HEAD)
        qi, ki = ref.int_data(self.rng, (1, 8, 64)), ref.int_data(self.rng, (150, 2, 64))
        _, want_sel = ref.tip(qi, ki, prof.fc_sets(0), fasa.PER_HEAD, 0, 20)
        for level in levels:
            ctx = fasa.Context(cpu_level=level)
            out, lse = fasa.attend_dense(q, k, v, lse=True, ctx=ctx)
            close(self, out, want, np.abs(v).max())
            np.testing.assert_allclose(lse, want_lse, rtol=1e-5, atol=1e-5,
                                       err_msg="cpu level %d" % level)
            sel = fasa.predict(prof, 0, qi, ki, 20, ctx=ctx, layout=prof.pair_layout)
            for h in range(8):
                np.testing.assert_array_equal(sel.set(0, h), want_sel[0][h],
                                              err_msg="cpu level %d head %d" % (level, h))

    def test_decode_step(self):
        prof, _ = random_profile(self.rng, 2, 4, 2, 16, 4)
        q, k, v = self.rand(1, 4, 16), self.rand(50, 2, 16), self.rand(50, 2, 16)
        dense = fasa.attend_dense(q, k, v)
        # budget >= t gives exactly the dense result; so does a dense layer
        L = prof.pair_layout
        np.testing.assert_array_equal(fasa.decode_step(prof, 1, q, k, v, 50, layout=L), dense)
        self.assertTrue(prof.is_dense(0))
        np.testing.assert_array_equal(fasa.decode_step(prof, 0, q, k, v, 5, layout=L), dense)
        for mode in (fasa.PER_HEAD, fasa.GROUP_SHARED):
            sel = fasa.predict(prof, 1, q, k, 10, mode=mode, layout=prof.pair_layout)
            want = fasa.attend(q, k, v, sel)
            got, lse = fasa.decode_step(prof, 1, q, k, v, 10, mode=mode, lse=True,
                                        layout=prof.pair_layout)
            close(self, got, want, np.abs(v).max())
            self.assertEqual(lse.shape, (1, 4))

    def test_label_cache(self):
        prof, _ = random_profile(self.rng, 2, 4, 2, 16, 4)
        q = ref.int_data(self.rng, (1, 4, 16))
        k = ref.int_data(self.rng, (70, 2, 16))
        v = self.rand(70, 2, 16)
        for mode in (fasa.PER_HEAD, fasa.GROUP_SHARED):
            cache = fasa.LabelCache(prof, 1, 80, mode=mode, dtype="f32")
            self.assertEqual(len(cache), 0)
            cache.build(k[:40])
            self.assertEqual(cache.tokens, 40)
            cache.append(k[40:65])
            cache.append(k[65:])
            self.assertEqual(cache.tokens, 70)
            want = fasa.predict(prof, 1, q, k, 12, mode=mode, scores=True, layout=prof.pair_layout)
            got = fasa.predict_cached(prof, 1, q, cache, 12, scores=True, layout=prof.pair_layout)
            np.testing.assert_array_equal(got.indices, want.indices)
            np.testing.assert_array_equal(got.counts, want.counts)
            np.testing.assert_array_equal(got.scores, want.scores)
            out = fasa.decode_step(prof, 1, q, k, v, 12, cache=cache, layout=prof.pair_layout)
            close(self, out, fasa.attend(q, k, v, want), np.abs(v).max())
            cache.reset()
            self.assertEqual(cache.tokens, 0)
        # small integers are exact in f16/bf16 caches too
        for dt in ("f16", "bf16"):
            cache = fasa.LabelCache(prof, 1, 70, dtype=dt)
            cache.build(k)
            got = fasa.predict_cached(prof, 1, q, cache, 12, layout=prof.pair_layout)
            np.testing.assert_array_equal(got.indices,
                                          fasa.predict(prof, 1, q, k, 12,
                                                       layout=prof.pair_layout).indices)


if __name__ == "__main__":
    unittest.main()
