#!/usr/bin/env python3
"""One decode step of a Llama-3-8B-shaped layer (Hq 32, Hkv 8, d 128, f16 KV)
through the Python package, 1 thread: dense, FASA per-head and group-shared
with a label cache, FASA per-head without one (TIP from the keys), and
torch's own attention for comparison when torch is there. Interleaved
rounds, medians.

    python3 examples/python/bench/bench_layer.py [--t 65536] [--budget 256]
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
    ap.add_argument("--t", type=int, default=65536)
    ap.add_argument("--budget", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=5)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    hq, hkv, d, t = 32, 8, 128, a.t
    fcs = np.stack([np.stack([rng.permutation(64)[:16] for _ in range(hq)]) for _ in range(2)])
    prof = fasa.Profile.from_fcs(fcs, hkv, d, fasa.PAIRS_HALF)
    q = rng.standard_normal((1, hq, d)).astype(np.float32)
    k = rng.standard_normal((t, hkv, d)).astype(np.float16)
    v = rng.standard_normal((t, hkv, d)).astype(np.float16)
    caches = {}
    for mode in (fasa.PER_HEAD, fasa.GROUP_SHARED):
        caches[mode] = fasa.LabelCache(prof, 1, t, mode=mode, dtype="f16")
        caches[mode].build(k)
    ctx = fasa.Context(threads=1)
    H = fasa.PAIRS_HALF
    cases = {
        "dense (libfasa)": lambda: fasa.attend_dense(q, k, v, ctx=ctx),
        "FASA per-head, label cache": lambda: fasa.decode_step(
            prof, 1, q, k, v, a.budget, layout=H, cache=caches[fasa.PER_HEAD], ctx=ctx),
        "FASA group-shared, label cache": lambda: fasa.decode_step(
            prof, 1, q, k, v, a.budget, layout=H, cache=caches[fasa.GROUP_SHARED], ctx=ctx),
        "FASA per-head, no label cache": lambda: fasa.decode_step(
            prof, 1, q, k, v, a.budget, layout=H, ctx=ctx),
    }
    try:
        import torch
        torch.set_num_threads(1)
        tq = torch.from_numpy(q).transpose(0, 1)[None]                   # [1, Hq, 1, d]
        tk = torch.from_numpy(k).float().transpose(0, 1)[None].repeat_interleave(hq // hkv, 1)
        tv = torch.from_numpy(v).float().transpose(0, 1)[None].repeat_interleave(hq // hkv, 1)

        def torch_attn():
            w = torch.softmax(tq @ tk.transpose(2, 3) / d ** 0.5, -1)
            return w @ tv
        cases["torch f32 matmul attention"] = torch_attn
    except ImportError:
        pass
    import warnings
    warnings.simplefilter("ignore", fasa.PerformanceWarning)
    times = {n: [] for n in cases}
    for _ in range(a.rounds):
        for n, fn in cases.items():
            fn()
            t0 = time.perf_counter()
            for _ in range(a.steps):
                fn()
            times[n].append((time.perf_counter() - t0) / a.steps * 1e3)
    dense = float(np.median(times["dense (libfasa)"]))
    print("bench_layer: t = %d, Hq 32, Hkv 8, d 128, f16 KV, budget %d, 1 thread "
          "(median of %d rounds x %d steps)" % (t, a.budget, a.rounds, a.steps))
    for n, v_ in times.items():
        m = float(np.median(v_))
        print("  %-32s %8.2f ms   %5.2fx dense" % (n, m, m / dense), flush=True)


if __name__ == "__main__":
    main()
