"""Independent numpy reference of FASA for the binding tests, and the
import path set-up (tests always exercise the package next to them)."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PER_HEAD, GROUP_SHARED = 0, 1


def fc_dims(fcs, head_dim, layout):
    """Head dims of a list of FCs for a pair layout (0/2: (2f, 2f+1), 1: (f, f+d/2))."""
    dims = []
    for f in fcs:
        f = int(f)
        dims += [f, f + head_dim // 2] if layout == 1 else [2 * f, 2 * f + 1]
    return np.array(sorted(dims), dtype=np.int64)


def budget_count(budget, t_i):
    n = int(np.floor(budget)) if budget >= 1 else max(1, int(np.floor(t_i * budget)))
    return min(n, t_i)


def topk_ascending(scores, n):
    """Top-n indices of scores (larger first, ties: lower index), sorted."""
    order = np.lexsort((np.arange(scores.size), -scores))
    return np.sort(order[:n])


def tip(q, k, fc_sets, mode, layout, budget):
    """Reference TIP in float64. fc_sets: per set (Hq or Hkv) FC lists.
    Returns (scores [n_q, n_sets, t] with -inf past the causal edge,
    list over queries of lists over sets of selected index arrays)."""
    q = np.asarray(q, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    n_q, hq, d = q.shape
    t, hkv, _ = k.shape
    group = hq // hkv
    n_sets = hq if mode == PER_HEAD else hkv
    scores = np.full((n_q, n_sets, t), -np.inf)
    sel = []
    for i in range(n_q):
        t_i = t - n_q + i + 1
        row = []
        for s in range(n_sets):
            dims = fc_dims(fc_sets[s], d, layout)
            if mode == PER_HEAD:
                qs, g = q[i, s], s // group
            else:
                qs, g = q[i, s * group:(s + 1) * group].sum(axis=0), s
            sc = k[:t_i, g][:, dims] @ qs[dims]
            scores[i, s, :t_i] = sc
            row.append(topk_ascending(sc, budget_count(budget, t_i)))
        sel.append(row)
    return scores, sel


def attend(q, k, v, sets, mode, scale=0.0):
    """Softmax attention of each query head over its token set, float64.
    sets[i][s]: token indices of set s of query i. Returns (out, lse)."""
    q = np.asarray(q, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    n_q, hq, d = q.shape
    hkv = k.shape[1]
    scale = scale or 1.0 / np.sqrt(d)
    out = np.zeros((n_q, hq, v.shape[2]))
    lse = np.full((n_q, hq), -np.inf)
    for i in range(n_q):
        for h in range(hq):
            g = h * hkv // hq
            idx = np.asarray(sets[i][h if mode == PER_HEAD else g], dtype=np.int64)
            if idx.size == 0:
                continue
            logits = scale * (k[idx, g] @ q[i, h])
            m = logits.max()
            w = np.exp(logits - m)
            lse[i, h] = m + np.log(w.sum())
            out[i, h] = (w / w.sum()) @ v[idx, g]
    return out, lse


def dense_sets(n_q, t, n_sets):
    return [[np.arange(t - n_q + i + 1) for _ in range(n_sets)] for i in range(n_q)]


def agreement(steps, n_layers, hq, d, layout, k_values):
    """Mean contextual agreement [n_layers][n_k][Hq][d/2] over the steps
    (layer, q [1,Hq,d], k [t,Hkv,d]); top sets break ties to the lower index."""
    acc = np.zeros((n_layers, len(k_values), hq, d // 2))
    count = np.zeros(n_layers)
    for layer, q, k in steps:
        q = np.asarray(q, dtype=np.float64)[0]
        k = np.asarray(k, dtype=np.float64)
        t, hkv, _ = k.shape
        count[layer] += 1
        for h in range(hq):
            g = h * hkv // hq
            full = k[:, g] @ q[h]
            for f in range(d // 2):
                dims = fc_dims([f], d, layout)
                part = k[:, g][:, dims] @ q[h, dims]
                for ki, kv in enumerate(k_values):
                    kk = min(kv, t)
                    a = set(topk_ascending(full, kk).tolist())
                    b = set(topk_ascending(part, kk).tolist())
                    acc[layer, ki, h, f] += len(a & b) / kk
    return acc / count[:, None, None, None]


def to_bf16(x):
    """float32 -> bfloat16 bits (uint16), round to nearest even."""
    bits = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return bits.astype(np.uint16)


def from_bf16(b):
    return (np.asarray(b, dtype=np.uint32) << 16).view(np.float32)


def int_data(rng, shape, lo=-3, hi=3):
    """Small integers as float32: every TIP sum is exact, so ties are real."""
    return rng.integers(lo, hi + 1, size=shape).astype(np.float32)
