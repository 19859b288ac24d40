"""Profiles: creation, accessors, selection, calibration against the
numpy reference, and file round trips between C and Python."""
import os
import tempfile
import unittest

import numpy as np

import fasa_ref as ref
import fasa
import profile_format

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))


def calib_steps(rng, n_layers, hq, hkv, d, lengths):
    steps = []
    for layer in range(n_layers):
        for t in lengths:
            q = rng.standard_normal((1, hq, d)).astype(np.float32)
            k = rng.standard_normal((t, hkv, d)).astype(np.float32)
            steps.append((layer, q, k))
    return steps


class TestProfile(unittest.TestCase):
    def setUp(self):
        self.rng = np.random.default_rng(7)

    def test_from_fcs_accessors(self):
        fcs = np.array([[[5, 1, 3], [0, 2, 7]], [[6, 4, 1], [3, 2, 0]]])
        groups = np.array([[[1, 2, 3]], [[0, 1, 2]]])
        prof = fasa.Profile.from_fcs(fcs, 1, 16, fasa.PAIRS_HALF, group_fcs=groups)
        self.assertEqual(prof.shape, fasa.Shape(2, 2, 1, 16, fasa.PAIRS_HALF))
        info = prof.info
        self.assertEqual((info.n_k, info.max_fc, info.has_agreement, info.selection_k),
                         (0, 3, False, 0))
        self.assertEqual(prof.k_values.size, 0)
        np.testing.assert_array_equal(prof.fcs(0, 0), [1, 3, 5])
        np.testing.assert_array_equal(prof.fcs(1, 1), [0, 2, 3])
        np.testing.assert_array_equal(prof.fcs(1, 0, fasa.GROUP_SHARED), [0, 1, 2])
        self.assertEqual(len(prof.fc_sets(0)), 2)
        self.assertEqual(prof.dense_layers, [0])
        prof.set_dense(1)
        prof.set_dense(0, False)
        self.assertEqual(prof.dense_layers, [1])
        text = prof.describe()
        self.assertIsInstance(text, str)
        self.assertGreater(len(text), 0)
        with self.assertRaises(fasa.FasaError) as cm:
            prof.agreement(0)
        self.assertEqual(cm.exception.name, "FASA_ERR_BAD_STATE")

    def test_clone_is_independent(self):
        prof = fasa.Profile.from_fcs(np.array([[[0, 1]], [[2, 3]]]), 1, 8, fasa.PAIRS_INTERLEAVED)
        twin = prof.clone()
        twin.set_dense(1)
        self.assertEqual(prof.dense_layers, [0])
        self.assertEqual(twin.dense_layers, [0, 1])
        del prof  # freeing one must not affect the other
        np.testing.assert_array_equal(twin.fcs(1, 0), [2, 3])

    def _calibrate(self, layout=fasa.PAIRS_INTERLEAVED):
        shape = fasa.Shape(2, 4, 2, 8, layout)
        steps = calib_steps(self.rng, 2, 4, 2, 8, (3, 9, 17))
        return shape, steps, fasa.Profile.calibrate(shape, steps, k_values=[2, 4],
                                                    n_fc=2, k=2)

    def test_calibration_agreement(self):
        for layout in (fasa.PAIRS_INTERLEAVED, fasa.PAIRS_HALF):
            shape, steps, prof = self._calibrate(layout)
            want = ref.agreement(steps, 2, 4, 8, layout, [2, 4])
            info = prof.info
            self.assertTrue(info.has_agreement)
            self.assertEqual((info.n_k, info.n_steps, info.selection_k), (2, 3, 2))
            np.testing.assert_array_equal(prof.k_values, [2, 4])
            for layer in range(2):
                for ki in range(2):
                    np.testing.assert_allclose(prof.agreement(layer, ki), want[layer, ki],
                                               atol=1e-6)
                for h in range(4):
                    best = ref.topk_ascending(want[layer, 0, h], 2)  # ties: lower FC
                    np.testing.assert_array_equal(prof.fcs(layer, h), best)

    def test_streaming_calibrator_equals_one_shot(self):
        shape, steps, prof = self._calibrate()
        cal = fasa.Calibrator(shape, k_values=[2, 4])
        for layer, q, k in steps:
            cal.add_step(layer, q, k)
        streamed = cal.finish(n_fc=2, k=2)
        for layer in range(2):
            np.testing.assert_array_equal(streamed.agreement(layer, 1), prof.agreement(layer, 1))
        # an unfinished layer is a state error
        empty = fasa.Calibrator(shape, k_values=[2])
        empty.add_step(0, *steps[0][1:])
        with self.assertRaises(fasa.FasaError) as cm:
            empty.finish()
        self.assertEqual(cm.exception.name, "FASA_ERR_BAD_STATE")

    def test_select(self):
        _, steps, prof = self._calibrate()
        want = ref.agreement(steps, 2, 4, 8, 0, [2, 4])
        prof.select(n_fc=3, k=4)
        self.assertEqual(prof.info.selection_k, 4)
        for h in range(4):
            np.testing.assert_array_equal(prof.fcs(1, h), ref.topk_ascending(want[1, 1, h], 3))
        self.assertIn("n_fc", fasa.select_defaults())
        with self.assertRaises(TypeError):
            prof.select(bogus=1)

    def _same(self, a, b):
        self.assertEqual(a.info, b.info)
        np.testing.assert_array_equal(a.k_values, b.k_values)
        s = a.shape
        for layer in range(s.n_layers):
            self.assertEqual(a.is_dense(layer), b.is_dense(layer))
            for mode in (fasa.PER_HEAD, fasa.GROUP_SHARED):
                for x, y in zip(a.fc_sets(layer, mode), b.fc_sets(layer, mode)):
                    np.testing.assert_array_equal(x, y)
            if a.info.has_agreement:
                for ki in range(a.info.n_k):
                    np.testing.assert_array_equal(a.agreement(layer, ki), b.agreement(layer, ki))

    def test_round_trip_c_file_to_python(self):
        _, _, prof = self._calibrate()
        prof.set_dense(1)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "c.fasa")
            prof.save(path)  # written by the C library
            with open(path, "rb") as f:
                data = f.read()  # read by Python
        self.assertEqual(data, prof.to_bytes())
        self._same(prof, fasa.Profile.from_bytes(data))

    def test_round_trip_python_file_to_c(self):
        prof = fasa.Profile.from_fcs(np.array([[[0, 3], [1, 2]], [[2, 3], [0, 1]]]), 1, 8,
                                     fasa.PAIRS_INTERLEAVED)
        data = prof.to_bytes()
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "py.fasa")
            with open(path, "wb") as f:
                f.write(data)  # written by Python
            back = fasa.Profile.load(path)  # read by the C library
        self._same(prof, back)
        self.assertEqual(back.to_bytes(), data)

    def test_c_file_parsed_by_python(self):
        # the C writer against an independent Python reader of the format doc
        _, _, prof = self._calibrate()
        prof.set_dense(1)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "c.fasa")
            prof.save(path)
            with open(path, "rb") as f:
                parsed = profile_format.parse(f.read())
        self.assertEqual(parsed["shape"], tuple(prof.shape))
        np.testing.assert_array_equal(parsed["k_values"], prof.k_values)
        self.assertEqual(list(parsed["layer_steps"]), [prof.info.n_steps] * 2)
        self.assertEqual(list(parsed["dense"]), [int(prof.is_dense(l)) for l in range(2)])
        self.assertEqual(parsed["selection_k"], prof.info.selection_k)
        for layer in range(2):
            for ki in range(2):
                np.testing.assert_array_equal(parsed["agreement"][layer, ki],
                                              prof.agreement(layer, ki))
            for h in range(4):
                np.testing.assert_array_equal(parsed["fcs"][layer * 4 + h], prof.fcs(layer, h))
            for g in range(2):
                np.testing.assert_array_equal(parsed["group_fcs"][layer * 2 + g],
                                              prof.fcs(layer, g, fasa.GROUP_SHARED))

    def test_python_written_file_loaded_by_c(self):
        # a file made from scratch in Python, loaded by the C library
        rng = np.random.default_rng(3)
        agreement = rng.random((2, 1, 2, 4)).astype(np.float32)
        fcs = [[3, 0], [1, 2], [2], [0, 1]]
        groups = [[0, 3], [1, 2]]
        data = profile_format.build((2, 2, 1, 8, fasa.PAIRS_HALF), fcs, groups, [0, 1],
                                    k_values=[64], layer_steps=[5, 7], agreement=agreement,
                                    selection_k=64)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "py.fasa")
            with open(path, "wb") as f:
                f.write(data)
            prof = fasa.Profile.load(path)
        self.assertEqual(prof.shape, fasa.Shape(2, 2, 1, 8, fasa.PAIRS_HALF))
        self.assertEqual(prof.dense_layers, [1])
        np.testing.assert_array_equal(prof.k_values, [64])
        self.assertEqual((prof.info.n_steps, prof.info.selection_k, prof.info.max_fc), (7, 64, 2))
        for layer in range(2):
            np.testing.assert_array_equal(prof.agreement(layer, 0), agreement[layer, 0])
            for h in range(2):
                np.testing.assert_array_equal(prof.fcs(layer, h), sorted(fcs[layer * 2 + h]))
            np.testing.assert_array_equal(prof.fcs(layer, 0, fasa.GROUP_SHARED), groups[layer])
        self.assertEqual(prof.to_bytes(), data)  # the C writer gives the same bytes back

    def test_bad_files(self):
        prof = fasa.Profile.from_fcs(np.array([[[0, 3]]]), 1, 8, fasa.PAIRS_INTERLEAVED)
        data = bytearray(prof.to_bytes())
        names = set()
        for cut in (0, 4, len(data) // 2, len(data) - 1):
            with self.assertRaises(fasa.FasaError) as cm:
                fasa.Profile.from_bytes(bytes(data[:cut]))
            names.add(cm.exception.name)
        self.assertTrue(names <= {"FASA_ERR_BAD_FILE", "FASA_ERR_ZERO_SIZE",
                                  "FASA_ERR_NULL_POINTER"}, names)
        data[-1] ^= 0xFF
        with self.assertRaises(fasa.FasaError) as cm:
            fasa.Profile.from_bytes(bytes(data))
        self.assertIn(cm.exception.name, ("FASA_ERR_CHECKSUM", "FASA_ERR_BAD_FILE"))
        with self.assertRaises(fasa.FasaError) as cm:
            fasa.Profile.load("/nonexistent/dir/x.fasa")
        self.assertEqual(cm.exception.name, "FASA_ERR_IO")

    def test_shipped_profile(self):
        path = os.path.join(REPO, "calib", "profiles", "llama-28m.fasa")
        if not os.path.exists(path):
            self.skipTest("no shipped profile at %s" % path)
        prof = fasa.Profile.load(path)
        s = prof.shape
        self.assertGreater(s.n_layers, 0)
        self.assertEqual(s.n_q_heads % s.n_kv_heads, 0)
        self._same(prof, fasa.Profile.from_bytes(prof.to_bytes()))


if __name__ == "__main__":
    unittest.main()
