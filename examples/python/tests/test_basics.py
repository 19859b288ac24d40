"""Library loading, version, status names, CPU info, Context."""
import os
import threading
import unittest

import numpy as np

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

    def test_library_lookup_order(self):
        import subprocess
        import sys
        from fasa import _lib
        pkg = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ, FASA_LIBRARY="/nonexistent/libfasa.so", PYTHONPATH=pkg)
        r = subprocess.run([sys.executable, "-c", "import fasa"], env=env, capture_output=True,
                           text=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("/nonexistent/libfasa.so", r.stderr)  # $FASA_LIBRARY wins
        saved = os.environ.pop("FASA_LIBRARY", None)
        try:
            repo_lib = os.path.join(os.path.dirname(os.path.dirname(pkg)), "build", "libfasa.so")
            want = repo_lib if os.path.exists(repo_lib) else None
            if want:
                self.assertEqual(_lib.find_library(), want)
            else:
                self.assertNotEqual(_lib.find_library(), repo_lib)
        finally:
            if saved is not None:
                os.environ["FASA_LIBRARY"] = saved

    def test_status_names(self):
        for status in fasa.Status:
            self.assertEqual(fasa.status_name(status), "FASA_" + status.name)
            self.assertTrue(fasa.status_string(status))
        self.assertTrue(fasa.status_string(9999))

    def test_error_object(self):
        err = fasa.FasaError(fasa.Status.ERR_BAD_STRIDE, "fasa_attention: k: detail",
                             "fasa.predict")
        self.assertEqual(err.name, "FASA_ERR_BAD_STRIDE")
        self.assertEqual((err.function, err.c_function, err.message),
                         ("fasa.predict", "fasa_attention", "k: detail"))
        self.assertTrue(str(err).startswith("fasa.predict (fasa_attention): FASA_ERR_BAD_STRIDE"))
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

    def test_struct_layouts_match_c(self):
        # the C setters write sizeof(struct) into struct_size: the ctypes
        # declarations must have the same size and field offsets
        import ctypes
        from fasa import _lib
        buf = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
        v = _lib.View()
        self.assertEqual(_lib.lib.fasa_view_make(ctypes.byref(v), buf.ctypes.data, 1, 2, 3, 4,
                                                 12, 4), 0)
        self.assertEqual(v.struct_size, ctypes.sizeof(_lib.View))
        self.assertEqual((v.data, v.dtype, v.kind, v.n_tokens, v.n_heads, v.head_dim,
                          v.token_stride, v.head_stride),
                         (buf.ctypes.data, 1, 0, 2, 3, 4, 12, 4))
        o = _lib.CtxOptions()
        _lib.lib.fasa_ctx_options_default(ctypes.byref(o))
        self.assertEqual((o.struct_size, o.n_threads, o.cpu_level),
                         (ctypes.sizeof(_lib.CtxOptions), 1, fasa.CPU_AUTO))
        s = _lib.SelectOptions()
        _lib.lib.fasa_select_options_default(ctypes.byref(s))
        self.assertEqual(s.struct_size, ctypes.sizeof(_lib.SelectOptions))
        self.assertEqual(s.n_fc, 16)  # the paper's N_tip, as documented in fasa.h
        self.assertAlmostEqual(s.threshold_ratio, 0.8, places=6)

    def test_validate_view(self):
        a = np.zeros((4, 2, 8), np.float32)
        fasa.validate_view(a)
        with self.assertRaises(fasa.FasaError) as cm:
            fasa.validate_view(np.broadcast_to(a[:1], a.shape))
        self.assertEqual(cm.exception.name, "FASA_ERR_BAD_STRIDE")
        self.assertTrue(cm.exception.message)

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
        # the stated rule: at most the CPUs this process may run on, with a warning
        cpus = fasa.available_cpus()
        with self.assertWarnsRegex(RuntimeWarning, "clamped to %d" % cpus):
            ctx = fasa.Context(threads=cpus + 1000)
        self.assertLessEqual(ctx.threads, cpus)
        self.assertIn(fasa.Context(threads=1).threads, (1,))
        for bad in (-1, 1.5, "2", True):
            with self.assertRaises((ValueError, TypeError)):
                fasa.Context(threads=bad)

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
