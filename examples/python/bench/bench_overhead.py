#!/usr/bin/env python3
"""Per-call overhead of the Python bindings: a decode step through
fasa.decode_step (numpy and torch inputs) against the bare ctypes call of
fasa_attention with the very descriptor the wrapper built, interleaved in
one run. Overhead = wrapper - bare (both include the same C work).

    python3 examples/python/bench/bench_overhead.py [--t 4096] [--rounds 7]
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import fasa  # noqa: E402
from fasa._lib import lib  # noqa: E402


def best(fn, n, rounds):
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        out.append((time.perf_counter() - t0) / n * 1e6)
    return min(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--t", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--n", type=int, default=2000)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    shapes = [("llama-28m shape (Hq 4, Hkv 2, d 128)", 4, 2),
              ("Llama-3-8B shape (32, 8, 128)", 32, 8)]
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        torch = None
    print("bench_overhead: t = %d, 1 thread, label cache f32, budget 256, best of %d x %d calls"
          % (a.t, a.rounds, a.n))
    for label, hq, hkv in shapes:
        d = 128
        fcs = np.stack([np.stack([rng.permutation(64)[:16] for _ in range(hq)]) for _ in range(2)])
        prof = fasa.Profile.from_fcs(fcs, hkv, d, fasa.PAIRS_HALF)
        q = rng.standard_normal((1, hq, d)).astype(np.float32)
        k = rng.standard_normal((a.t, hkv, d)).astype(np.float32)
        v = rng.standard_normal((a.t, hkv, d)).astype(np.float32)
        cache = fasa.LabelCache(prof, 1, a.t)
        cache.build(k)
        ctx = fasa.Context(threads=1)
        inputs = [("numpy", q, k, v)]
        if torch is not None:
            inputs.append(("torch", torch.from_numpy(q), torch.from_numpy(k), torch.from_numpy(v)))
        for kind, qq, kk, vv in inputs:
            keep = []

            def wrapper():
                keep[:] = [fasa.decode_step(prof, 1, qq, kk, vv, 256, layout=fasa.PAIRS_HALF,
                                            cache=cache, ctx=ctx)]
            wrapper()  # leaves the descriptor pointing at keep[0], which stays alive
            f = lib.fasa_attention
            ws, size = ctx.current_workspace()
            args = (ctx._as_parameter_, ctx.desc_ref, ws, size)

            def bare():
                f(*args)
            n = a.n if hq < 16 else a.n // 8
            w = b = 0.0
            for _ in range(3):  # interleaved
                w1, b1 = best(wrapper, n, a.rounds), best(bare, n, a.rounds)
                w, b = (w1, b1) if not w or w1 - b1 < w - b else (w, b)
            print("  %-38s %-5s  decode_step %8.1f us   bare fasa_attention %8.1f us   "
                  "overhead %5.1f us" % (label, kind, w, b, w - b), flush=True)
            layer = fasa.DecodeLayer(prof, 1, kk, vv, 256, layout=fasa.PAIRS_HALF, cache=cache,
                                     ctx=ctx)

            def prepared():
                keep[:] = [layer(qq, a.t)]
            prepared()
            args = (ctx._as_parameter_, layer.ref, ws, size)
            w = b = 0.0
            for _ in range(3):
                w1, b1 = best(prepared, n, a.rounds), best(bare, n, a.rounds)
                w, b = (w1, b1) if not w or w1 - b1 < w - b else (w, b)
            print("  %-38s %-5s  DecodeLayer %8.1f us   bare fasa_attention %8.1f us   "
                  "overhead %5.1f us" % (label, kind, w, b, w - b), flush=True)


if __name__ == "__main__":
    main()
