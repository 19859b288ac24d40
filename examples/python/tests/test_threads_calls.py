"""Threads (process default, FASA_NUM_THREADS, the stated clamping rule,
host threads), DecodeLayer, and error messages that are never stale."""
import os
import subprocess
import sys
import unittest

import numpy as np

import fasa_ref  # noqa: F401  (import path)
import fasa
from test_predict import random_profile

HALF = fasa.PAIRS_HALF
PKG = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_py(code, **env):
    e = dict(os.environ, PYTHONPATH=PKG, **env)
    return subprocess.run([sys.executable, "-c", code], env=e, capture_output=True, text=True)


class TestThreads(unittest.TestCase):
    def setUp(self):
        self.rng = np.random.default_rng(11)
        self.prof, _ = random_profile(self.rng, 2, 4, 2, 16, 3, HALF)
        self.q = self.rng.standard_normal((1, 4, 16)).astype(np.float32)
        self.k = self.rng.standard_normal((300, 2, 16)).astype(np.float32)
        self.v = self.rng.standard_normal((300, 2, 16)).astype(np.float32)

    def test_process_default(self):
        """Trap 5: there was no process-wide setting; now set_num_threads
        and FASA_NUM_THREADS, clamped to the CPUs available (warned)."""
        cpus = fasa.available_cpus()
        r = run_py("import fasa; fasa.set_num_threads(1); print(fasa.Context().threads)")
        self.assertEqual(r.stdout.strip(), "1", r.stderr)
        r = run_py("import warnings, fasa\n"
                   "with warnings.catch_warnings(record=True) as w:\n"
                   "    warnings.simplefilter('always'); fasa.set_num_threads(1000)\n"
                   "print(fasa.get_num_threads(), len(w), w[0].message if w else '')")
        n, warned, msg = r.stdout.split(" ", 2)
        self.assertEqual((int(n), int(warned)), (cpus, 1), r.stderr)
        self.assertIn("clamped to %d" % cpus, msg)
        r = run_py("import fasa; print(fasa.get_num_threads(), fasa.Context().threads)",
                   FASA_NUM_THREADS="1")
        self.assertEqual(r.stdout.split(), ["1", "1"], r.stderr)
        r = run_py("import fasa; fasa.Context()", FASA_NUM_THREADS="two")
        self.assertIn("FASA_NUM_THREADS='two' is not a positive integer", r.stderr)
        with self.assertRaises(ValueError):
            fasa.set_num_threads(0)

    def test_host_threads_give_the_same_bits(self):
        cache = fasa.LabelCache(self.prof, 1, 300)
        cache.build(self.k)
        one = fasa.Context(threads=1)
        host = fasa.Context(threads=2, wait="block")
        self.assertEqual((host.threads, host.wait), (2, "block"))
        with self.assertRaises(ValueError):
            fasa.Context(wait="yield")
        for ctx in (one, host):
            a = fasa.decode_step(self.prof, 1, self.q, self.k, self.v, 40, layout=HALF,
                                 cache=cache, ctx=ctx)
            b = fasa.attend_dense(self.q, self.k, self.v, ctx=ctx)
            if ctx is one:
                want = (a, b)
        np.testing.assert_array_equal(a, want[0])
        np.testing.assert_array_equal(b, want[1])
        host.close()

    def test_decode_layer_equals_decode_step(self):
        cap = 400
        kbuf = np.zeros((cap, 2, 16), np.float32)
        vbuf = np.zeros((cap, 2, 16), np.float32)
        kbuf[:300], vbuf[:300] = self.k, self.v
        cache = fasa.LabelCache(self.prof, 1, cap)
        cache.build(self.k)
        layer = fasa.DecodeLayer(self.prof, 1, kbuf, vbuf, 40, layout=HALF, cache=cache)
        for t in (300, 301):
            if t == 301:
                cache.append(kbuf[300:301])
            want = fasa.decode_step(self.prof, 1, self.q, kbuf[:t], vbuf[:t], 40, layout=HALF,
                                    cache=cache)
            np.testing.assert_array_equal(layer(self.q, t), want)
            q2 = np.ascontiguousarray(self.q[:, ::-1])  # another query, same layout
            np.testing.assert_array_equal(
                layer(q2, t), fasa.decode_step(self.prof, 1, q2, kbuf[:t], vbuf[:t], 40,
                                               layout=HALF, cache=cache))
        with self.assertRaisesRegex(ValueError, "t = 401 > the 400 cells"):
            layer(self.q, 401)
        dense = fasa.DecodeLayer(None, 0, kbuf, vbuf)
        np.testing.assert_array_equal(dense(self.q, 300), fasa.attend_dense(self.q, self.k,
                                                                            self.v))

    def test_messages_are_never_stale(self):
        """Trap 4: a failing call raised with the previous call's message and
        named the wrong function. Each failure now carries its own text, the
        Python call and the C function."""
        ctx = fasa.Context()
        with self.assertRaises(fasa.FasaError) as a:
            fasa.decode_step(self.prof, 1, self.q, self.k, self.v, -1, layout=HALF, ctx=ctx)
        self.assertEqual(a.exception.function, "fasa.decode_step")
        self.assertIn("budget", a.exception.message)
        with self.assertRaises(fasa.FasaError) as b:  # another failure on the same ctx
            fasa.attend_dense(self.q, self.k[:, :, :8], self.v, ctx=ctx)
        e = b.exception
        self.assertEqual((e.function, e.c_function, e.name),
                         ("fasa.attend_dense", "fasa_attention", "FASA_ERR_BAD_SHAPE"))
        self.assertNotIn("budget", e.message)
        self.assertIn("k", e.message)
        fasa.attend_dense(self.q, self.k, self.v, ctx=ctx)  # a success clears the message
        self.assertEqual(ctx.last_error, "")
        small = fasa.Context()  # its first call grows the workspace (size query) and succeeds
        fasa.attend_dense(self.q, self.k, self.v, ctx=small)
        self.assertEqual(small.last_error, "")
        cache = fasa.LabelCache(self.prof, 1, 4)
        with self.assertRaises(fasa.FasaError) as c:
            cache.append(self.k)
        self.assertEqual((c.exception.function, c.exception.c_function),
                         ("fasa.LabelCache.append", "fasa_label_cache_append"))


if __name__ == "__main__":
    unittest.main()
