#!/usr/bin/env python3
"""libfasa threads next to torch: one "layer" = a torch matvec (the model's
projections, torch.set_num_threads(--torch-threads)) then a FASA decode step
(Llama-3-8B-shaped layer: Hq 32, Hkv 8, d 128, f16 KV and label cache,
budget 256) on libfasa with 1 thread, 2 OpenMP threads, or 2 host threads
(wait='block', the default when torch is
imported). Interleaved rounds, medians; prints the
2-thread / 1-thread ratios. A timing, never a test assertion.

    python3 examples/python/bench/bench_threads.py [--t 16384] [--torch-threads 1]
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import fasa  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--t", type=int, default=16384)
    ap.add_argument("--torch-threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--hidden", type=int, default=2048, help="torch matvec [1, h] @ [h, 2h]")
    a = ap.parse_args()
    try:
        import torch
    except ImportError:
        torch = None
        print("bench_threads: no torch: libfasa alone")
    rng = np.random.default_rng(0)
    hq, hkv, d, t = 32, 8, 128, a.t
    fcs = np.stack([np.stack([rng.permutation(64)[:16] for _ in range(hq)]) for _ in range(2)])
    prof = fasa.Profile.from_fcs(fcs, hkv, d, fasa.PAIRS_HALF)
    q = rng.standard_normal((1, hq, d)).astype(np.float32)
    k = rng.standard_normal((t, hkv, d)).astype(np.float16)
    v = rng.standard_normal((t, hkv, d)).astype(np.float16)
    cache = fasa.LabelCache(prof, 1, t, dtype="f16")
    cache.build(k)
    ctxs = {"1 thread": fasa.Context(threads=1),
            "2 threads, default": fasa.Context(threads=2),
            "2 threads, 'block'": fasa.Context(threads=2, wait="block"),
            "2 threads, 'spin'": fasa.Context(threads=2, wait="spin")}
    if torch is not None:
        torch.set_num_threads(a.torch_threads)
        W = torch.randn(a.hidden, 2 * a.hidden) * 0.01
        x = torch.randn(1, a.hidden)
    for with_torch in ([False, True] if torch is not None else [False]):
        times = {name: [] for name in ctxs}
        for _ in range(a.rounds):
            for name, ctx in ctxs.items():
                time.sleep(0.05)  # OpenMP workers of the previous block stop spinning
                t0 = time.perf_counter()
                for _ in range(a.steps):
                    if with_torch:
                        x @ W
                    fasa.decode_step(prof, 1, q, k, v, 256, layout=fasa.PAIRS_HALF,
                                     cache=cache, ctx=ctx)
                times[name].append((time.perf_counter() - t0) / a.steps * 1e3)
        med = {n: float(np.median(v)) for n, v in times.items()}
        base = med["1 thread"]
        what = ("torch (%d thread%s, %dx%d matvec) + libfasa" % (
            a.torch_threads, "s" if a.torch_threads > 1 else "", a.hidden, 2 * a.hidden)
            if with_torch else "libfasa alone")
        print("bench_threads: t = %d, %s, ms per layer (median of %d rounds x %d steps; "
              "default wait = %r)" % (t, what, a.rounds, a.steps, ctxs["2 threads, default"].wait),
              flush=True)
        for n, m in med.items():
            print("  %-18s %8.3f ms   x%.2f vs 1 thread%s" % (
                n, m, m / base, "" if n == "1 thread" else
                ("  (slower)" if m > base * 1.02 else "")), flush=True)


if __name__ == "__main__":
    main()
