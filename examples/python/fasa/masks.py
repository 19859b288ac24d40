"""Which cells each query sees, as libfasa RANGES over the shared cell axis.

Query (b, s) of a batch (b < B, s < Tq) owns cells [b*row, b*row + T). With
no mask it sees its row's first T - Tq + s + 1 cells (causal, bottom-right:
the queries are the last Tq tokens). A Hugging Face attention mask narrows
that: [B, Tkv] padding masks (1 = keep) are combined with causality;
[B, 1, Tq, Tkv] masks (bool: True = visible; float: 0 visible, -inf or the
dtype's minimum hidden, which is what HF builds) are taken as they are. A
finite nonzero value is an additive bias, which this path does not carry:
it is refused rather than dropped.

The conversion is cached per mask object (a model's layers share one mask
per forward), so it runs once per forward, not once per layer.
"""
import sys

import numpy as np


def _causal_hi(T, Tq):
    return T - Tq + np.arange(Tq, dtype=np.int64) + 1


def _hidden_float(m):
    """hidden = -inf or <= half the dtype's minimum (HF's masked value)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(m, torch.Tensor):
        lim = torch.finfo(m.dtype).min / 2
        hidden = m <= lim
        bias = (~hidden) & (m != 0)
        return hidden.cpu().numpy(), bool(bias.any())
    m = np.asarray(m)
    hidden = m <= np.finfo(m.dtype).min / 2
    return hidden, bool(((~hidden) & (m != 0)).any())


def _as_bool_visible(mask, function):
    """visible bool ndarray of a mask, and its number of dims."""
    torch = sys.modules.get("torch")
    is_torch = torch is not None and isinstance(mask, torch.Tensor)
    if is_torch:
        if mask.device.type != "cpu":
            mask = mask.cpu()
        floating = mask.is_floating_point()
    else:
        mask = np.asarray(mask)
        floating = mask.dtype.kind == "f"
    if floating:
        hidden, bias = _hidden_float(mask)
        if bias:
            raise ValueError("%s: the attention mask has finite nonzero values (additive "
                             "biases); only visible (0) / hidden (-inf, dtype min) masks are "
                             "supported" % function)
        return ~hidden
    vis = mask.numpy() if is_torch else mask
    return vis.astype(bool, copy=False)


def _runs(vis):
    """[begin, end) runs of True per row of a bool [R, T] array:
    (row_of_run, begin, end) in row-major order."""
    R, T = vis.shape
    p = np.zeros((R, T + 2), np.int8)
    p[:, 1:-1] = vis
    d = np.diff(p, axis=1)
    r0, c0 = np.nonzero(d == 1)
    _, c1 = np.nonzero(d == -1)
    return r0, c0, c1


def _pack(rows, begin, end, R, Tq, row):
    off = (rows // Tq).astype(np.int64) * row
    ranges = np.empty(2 * len(rows), np.uint32)
    ranges[0::2] = begin + off
    ranges[1::2] = end + off
    first = np.zeros(R + 1, np.uint32)
    np.cumsum(np.bincount(rows, minlength=R), out=first[1:])
    return ranges, first


def _build(mask, B, Tq, T, row, window, function):
    R = B * Tq
    hi = np.tile(_causal_hi(T, Tq), B)
    if mask is None:
        lo = np.maximum(hi - window, 0) if window else np.zeros(R, np.int64)
        return _pack(np.arange(R), lo, hi, R, Tq, row), False
    vis = _as_bool_visible(mask, function)
    if vis.ndim == 2:  # [B, Tkv] padding mask, 1 = keep
        if vis.shape[0] != B or vis.shape[1] < T:
            raise ValueError("%s: a [batch, kv] padding mask must be [%d, >= %d], got %s"
                             % (function, B, T, vis.shape))
        vis = np.repeat(vis[:, None, :T], Tq, axis=1)
        cols = np.arange(T)
        vis = vis & (cols[None, None, :] < _causal_hi(T, Tq)[None, :, None])
    elif vis.ndim == 4:
        if vis.shape[0] not in (1, B) or vis.shape[1] != 1 or vis.shape[2] != Tq or \
                vis.shape[3] < T:
            raise ValueError("%s: a 4-D attention mask must be [%d, 1, %d, >= %d], got %s"
                             % (function, B, Tq, T, vis.shape))
        vis = np.broadcast_to(vis[:, 0, :, :T], (B, Tq, T))
    else:
        raise ValueError("%s: attention mask must be [batch, kv] or [batch, 1, q, kv], got %d "
                         "dims" % (function, vis.ndim))
    if window:
        cols = np.arange(T)
        vis = vis & (cols[None, None, :] >= (_causal_hi(T, Tq) - window)[None, :, None])
    vis = vis.reshape(R, T)
    rows, begin, end = _runs(vis)
    causal = B == 1 and not window and len(rows) == R and not begin.any() and \
        np.array_equal(end, hi)
    return _pack(rows, begin, end, R, Tq, row), causal


def visible_ranges(ctx, mask, B, Tq, T, row, window, function):
    """(ranges uint32 [2*n_ranges], range_first uint32 [B*Tq + 1], causal):
    causal is True when the mask is plain bottom-right causal for one
    sequence (the call then needs no visibility at all)."""
    # torch counts in-place writes in _version, so a cached conversion is
    # reused only for the same, unchanged tensor; numpy masks are converted
    # every call.
    version = getattr(mask, "_version", None)
    key = (B, Tq, T, row, window, version)
    hit = getattr(ctx, "_mask_memo", None)
    cacheable = mask is None or version is not None
    if cacheable and hit is not None and hit[0] is mask and hit[1] == key:
        return hit[2]
    (ranges, first), causal = _build(mask, B, Tq, T, row, window, function)
    res = (ranges, first, causal)
    if cacheable:
        ctx._mask_memo = (mask, key, res)  # holds the mask: its id cannot be reused
    return res
