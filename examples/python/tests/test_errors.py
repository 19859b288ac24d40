"""C status codes surface as FasaError with the status name and the
context's message; what a view cannot express is a ValueError."""
import unittest

import numpy as np

import fasa_ref as ref
import fasa
from test_predict import random_profile


class TestErrors(unittest.TestCase):
    def setUp(self):
        rng = np.random.default_rng(5)
        self.prof, _ = random_profile(rng, 2, 4, 2, 16, 4)
        self.L = self.prof.pair_layout
        self.q = ref.int_data(rng, (1, 4, 16))
        self.k = ref.int_data(rng, (20, 2, 16))
        self.v = ref.int_data(rng, (20, 2, 16))

    def expect(self, name, fn, *args, **kwargs):
        with self.assertRaises(fasa.FasaError) as cm:
            fn(*args, **kwargs)
        err = cm.exception
        self.assertEqual(err.name, name, str(err))
        self.assertEqual(fasa.status_name(err.status), name)
        self.assertTrue(err.message)
        return err

    def test_budget(self):
        for budget in (0, -3, float("nan"), float("inf")):
            err = self.expect("FASA_ERR_BAD_BUDGET", fasa.predict, self.prof, 1, self.q, self.k,
                              budget, layout=self.L)
            self.assertEqual(err.function, "fasa.predict")
            self.assertEqual(err.c_function, "fasa_attention")

    def test_message_from_context(self):
        ctx = fasa.Context()
        err = self.expect("FASA_ERR_BAD_BUDGET", fasa.predict, self.prof, 1, self.q, self.k, -1,
                          ctx=ctx, layout=self.L)
        # the C text is "fasa_attention: budget ...": FasaError keeps the detail
        self.assertEqual("fasa_attention: " + err.message, ctx.last_error)
        self.assertNotEqual(err.message, fasa.status_string(err.status))

    def test_shapes_and_profile(self):
        self.expect("FASA_ERR_PROFILE_MISMATCH", fasa.predict, self.prof, 2, self.q, self.k, 4,
                    layout=self.L)
        q8 = np.zeros((1, 4, 8), np.float32)
        k8 = np.zeros((20, 2, 8), np.float32)
        self.expect("FASA_ERR_PROFILE_MISMATCH", fasa.predict, self.prof, 1, q8, k8, 4,
                    layout=self.L)
        with self.assertRaises(fasa.FasaError) as cm:
            fasa.attend_dense(self.q, self.k[:, :, :8], self.v)
        self.assertEqual(cm.exception.name, "FASA_ERR_BAD_SHAPE")
        with self.assertRaises(fasa.FasaError) as cm:
            fasa.attend_dense(np.zeros((1, 3, 16), np.float32), self.k, self.v)
        self.assertEqual(cm.exception.name, "FASA_ERR_BAD_SHAPE")

    def test_nonfinite_query(self):
        q = self.q.copy()
        q[0, 1, 3] = np.nan
        self.expect("FASA_ERR_NONFINITE", fasa.predict, self.prof, 1, q, self.k, 4, layout=self.L)

    def test_bad_index(self):
        idx = np.zeros((1, 4, 3), np.uint32)
        cnt = np.full((1, 4), 2, np.uint32)
        idx[0, :, :2] = [3, 3]  # repeated
        self.expect("FASA_ERR_BAD_INDEX", fasa.attend, self.q, self.k, self.v, (idx, cnt))
        idx[0, :, :2] = [3, 20]  # out of range
        self.expect("FASA_ERR_BAD_INDEX", fasa.attend, self.q, self.k, self.v, (idx, cnt))

    def test_overlapping_rows(self):
        k = np.broadcast_to(self.k[:1], self.k.shape)  # token stride 0
        self.expect("FASA_ERR_BAD_STRIDE", fasa.predict, self.prof, 1, self.q, k, 4, layout=self.L)

    def test_aliasing_output(self):
        buf = np.zeros((1, 4, 16), np.float32)
        self.expect("FASA_ERR_ALIASING", fasa.attend_dense, buf, self.k, self.v, out=buf)

    def test_label_cache_capacity(self):
        cache = fasa.LabelCache(self.prof, 1, 10)
        self.expect("FASA_ERR_BUFFER_TOO_SMALL", cache.append, self.k)
        self.assertEqual(cache.tokens, 0)
        cache.append(self.k[:10])
        self.expect("FASA_ERR_PROFILE_MISMATCH", fasa.predict_cached, self.prof, 0, self.q,
                    cache, 4, layout=self.L)

    def test_bad_profile_inputs(self):
        with self.assertRaises(fasa.FasaError) as cm:
            fasa.Profile.from_fcs(np.array([[[0, 9]]]), 1, 16, fasa.PAIRS_HALF)  # FC 9 >= 8
        self.assertIn(cm.exception.name, ("FASA_ERR_BAD_INDEX", "FASA_ERR_INVALID_ARGUMENT"))
        with self.assertRaises(fasa.FasaError) as cm:
            # Hkv does not divide Hq
            fasa.Profile.from_fcs(np.array([[[0, 1]]]), 3, 16, fasa.PAIRS_HALF)
        self.assertIn(cm.exception.name, ("FASA_ERR_BAD_SHAPE", "FASA_ERR_INVALID_ARGUMENT"))
        with self.assertRaises(fasa.FasaError):
            self.prof.fcs(0, 99)

    def test_value_errors_before_c(self):
        with self.assertRaises(ValueError):
            fasa.predict(self.prof, 1, self.q, self.k[::-1], 4, layout=self.L)
        with self.assertRaises(ValueError):
            fasa.attend_dense(self.q, self.k, self.v, out=np.zeros((1, 4, 8), np.float32))


if __name__ == "__main__":
    unittest.main()
