"""Library loading, version, status names, CPU info, Context."""
import os
import threading
import unittest

import fasa_ref  # noqa: F401  (puts the package on sys.path)
import fasa


class TestBasics(unittest.TestCase):
    def test_version(self):
        number = fasa.version_number()
        self.assertEqual(number // 10000, fasa.BINDINGS_VERSION[0])
        major, minor, patch = (int(x) for x in fasa.version().split("."))
        self.assertEqual(number, major * 10000 + minor * 100 + patch)

    def test_library_path(self):
        path = fasa.library_path()
        if os.environ.get("FASA_LIBRARY"):
            self.assertEqual(path, os.environ["FASA_LIBRARY"])
        self.assertIn("fasa", os.path.basename(path))

    def test_status_names(self):
        for status in fasa.Status:
            self.assertEqual(fasa.status_name(status), "FASA_" + status.name)
            self.assertTrue(fasa.status_string(status))
        self.assertTrue(fasa.status_string(9999))

    def test_error_object(self):
        err = fasa.FasaError(fasa.Status.ERR_BAD_STRIDE, "k: detail", "fasa_predict")
        self.assertEqual(err.name, "FASA_ERR_BAD_STRIDE")
        self.assertEqual(err.status, fasa.Status.ERR_BAD_STRIDE)
        self.assertIn("k: detail", str(err))

    def test_cpu_info(self):
        feats = fasa.cpu_features()
        self.assertTrue(set(feats) <= set(fasa.CPU_FEATURES))
        level = fasa.cpu_best_level()
        self.assertIn(level, (fasa.CPU_SCALAR, fasa.CPU_AVX2, fasa.CPU_AVX512,
                              fasa.CPU_AVX512_BF16, fasa.CPU_NEON))
        if level >= fasa.CPU_AVX2 and level != fasa.CPU_NEON:
            self.assertIn("avx2", feats)
        self.assertIsNone(fasa.kernel_name("no_such_op"))

    def test_context(self):
        ctx = fasa.Context(threads=1, cpu_level=fasa.CPU_SCALAR)
        self.assertEqual(ctx.threads, 1)
        self.assertEqual(ctx.last_error, "")
        ptr, size = ctx.workspace(100)
        self.assertEqual(ptr % 64, 0)
        self.assertGreaterEqual(size, 100)
        self.assertEqual(ctx.workspace(50)[0], ptr)  # cached, not reallocated
        ctx.close()
        ctx.close()  # idempotent

    def test_context_threads_clamped(self):
        n = fasa.Context(threads=3).threads
        self.assertIn(n, (1, 3))

    def test_default_context_per_thread(self):
        from fasa import context
        mine = context.resolve(None)
        self.assertIs(context.resolve(None), mine)
        other = []
        th = threading.Thread(target=lambda: other.append(context.resolve(None)))
        th.start()
        th.join()
        self.assertIsNot(other[0], mine)


if __name__ == "__main__":
    unittest.main()
