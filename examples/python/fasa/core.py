"""One path for every attention call: tensors -> fasa_attention_desc ->
fasa_attention (validate, plan, run in one C call).

The descriptor and its views live in the Context and are refilled per call,
the workspace is tried as it is and grown only when libfasa reports it too
small, so a repeated call costs one ctypes call plus the filling of a few
struct fields (docs/bindings.md, "Performance").
"""
import ctypes
import warnings

import numpy as np

from ._lib import lib
from . import context as _context
from .errors import check
from .masks import visible_ranges
from .tensors import (KIND, SHAPE, bind3, cells4, fill, inspect, mergeable, new_output,
                      parse_dtype, queries4, view3)

OP_DENSE, OP_SPARSE, OP_PREDICT, OP_FASA = 0, 1, 2, 3
PER_HEAD, GROUP_SHARED = 0, 1
VISIBLE_CAUSAL, VISIBLE_RANGES, VISIBLE_MASK = 0, 1, 2

_ERR_WORKSPACE_TOO_SMALL = 10
_MODE_NAMES = {PER_HEAD: "PER_HEAD", GROUP_SHARED: "GROUP_SHARED"}
_LAYOUT_NAMES = {0: "PAIRS_INTERLEAVED", 1: "PAIRS_HALF", 2: "PAIRS_ADJACENT"}

# Scoring TIP from the keys instead of a label cache reads every key's FC
# dims at every step: ~5x slower than dense attention at 64k (issue 15).
# Calls past this many cells without a cache say so once per call site.
NO_CACHE_WARN_CELLS = 4096


class PerformanceWarning(UserWarning):
    """A call that works but runs much slower than it could."""


_REQUIRED = object()


def layout_name(layout):
    return _LAYOUT_NAMES.get(layout, str(layout))


def check_layout(profile, layout, function):
    """The RoPE pair layout of the caller's tensors must be stated where a
    profile's FCs meet them, and must be the profile's: a rotate-half (HF)
    model run with an INTERLEAVED profile is not an error in the arithmetic,
    only +134-152% perplexity."""
    if layout is _REQUIRED or layout is None:
        raise TypeError(
            "%s: layout= is required: the RoPE pair layout of q and k (fasa.PAIRS_HALF for "
            "Hugging Face / NeoX rotate-half models, fasa.PAIRS_INTERLEAVED for Meta / GGUF "
            "llama.cpp ROPE_NORMAL tensors; Profile.from_hf_config tells a HF model's). The "
            "profile's is %s." % (function, layout_name(profile.pair_layout)))
    if int(layout) != profile.pair_layout:
        raise ValueError(
            "%s: layout=%s but the profile was made for %s: its frequency chunks are other "
            "head dims of these tensors (calibrate the profile with this layout)"
            % (function, layout_name(int(layout)), layout_name(profile.pair_layout)))


def resolve_mode(mode, cache, function):
    """The GQA mode of a call: explicit mode=, else the label cache's, else
    PER_HEAD. An explicit mode that contradicts the cache is an error (it
    used to be replaced silently by the cache's)."""
    if cache is None:
        return PER_HEAD if mode is None else int(mode)
    if mode is not None and int(mode) != cache.mode:
        raise ValueError("%s: mode=%s but the label cache was made for %s (make the cache "
                         "with mode=%s, or leave mode out)"
                         % (function, _MODE_NAMES.get(int(mode), mode),
                            _MODE_NAMES.get(cache.mode, cache.mode),
                            _MODE_NAMES.get(int(mode), mode)))
    return cache.mode


class Batch:
    """How the caller's tensors map onto one call: n_q queries, t cells,
    batch rows B of row cells each (B = 1 for 3-D tensors). One per
    Context, refilled by every call."""
    __slots__ = ("four", "B", "Tq", "T", "row", "n_q", "kind")


def bind_qkv(ctx, q, k, v, dtype, function):
    """Fill ctx.qv/kv/vv from q, k, v (v may be None). Returns (Batch, keep)."""
    b = ctx.batch
    if getattr(q, "ndim", 0) == 3 and getattr(k, "ndim", 0) == 3 and \
            (v is None or getattr(v, "ndim", 0) == 3):
        b.kind, kq = bind3(ctx.qv, q, "q", dtype)
        _, kk = bind3(ctx.kv, k, "k", dtype)
        kv_ = bind3(ctx.vv, v, "v", dtype)[1] if v is not None else None
        b.four, b.B, b.Tq, b.T = False, 1, q.shape[0], k.shape[0]
        b.row = b.T
        b.n_q = b.Tq
        keep = (kq, kk, kv_)
    else:
        keep = _bind_general(ctx, b, q, k, v, dtype, function)
    if b.Tq > b.T:
        raise ValueError("%s: %d queries per sequence but only %d cells: queries are the last "
                         "cells of their sequence (append the new keys first)"
                         % (function, b.Tq, b.T))
    return b, keep


def _bind_general(ctx, b, q, k, v, dtype, function):
    tq = inspect(q, "q", dtype)
    tk = inspect(k, "k", dtype)
    tv = inspect(v, "v", dtype) if v is not None else None
    nd = len(tq[SHAPE])
    b.kind = tq[KIND]
    if nd == 3:
        if len(tk[SHAPE]) != 3 or (tv is not None and len(tv[SHAPE]) != 3):
            raise ValueError("%s: q is [tokens, heads, head_dim] but k/v are not 3-D (k %s)"
                             % (function, tuple(tk[SHAPE])))
        view3(ctx.qv, tq, "q")
        view3(ctx.kv, tk, "k")
        if tv is not None:
            view3(ctx.vv, tv, "v")
        b.four, b.B, b.Tq, b.T = False, 1, tq[SHAPE][0], tk[SHAPE][0]
        b.row, b.n_q = b.T, b.Tq
    elif nd == 4:
        B = tq[SHAPE][0]
        for name, t in (("k", tk), ("v", tv)):
            if t is not None and (len(t[SHAPE]) != 4 or t[SHAPE][0] != B):
                raise ValueError("%s: q is [batch=%d, heads, tokens, head_dim]; %s has shape "
                                 "%s" % (function, B, name, tuple(t[SHAPE])))
        if not mergeable(tq):
            # q is small (one row per query): a token-major copy, where K/V
            # (the cache) are never copied. RoPE'd HF queries of a batched
            # prefill are head-major [B, Hq, Tq, D] and need it.
            q = _token_major_copy(q)
            tq = inspect(q, "q", dtype)
        queries4(ctx.qv, tq, "q")
        b.row = cells4(ctx.kv, tk, "k")
        if tv is not None:
            if tv[SHAPE][2] != tk[SHAPE][2]:
                raise ValueError("%s: k has %d tokens per sequence, v %d"
                                 % (function, tk[SHAPE][2], tv[SHAPE][2]))
            if cells4(ctx.vv, tv, "v") != b.row and B > 1:
                raise ValueError("%s: k and v place the batch rows at different cells "
                                 "(k strides %s, v strides %s): use one layout for both"
                                 % (function, tuple(tk[3]), tuple(tv[3])))
        b.four, b.B, b.Tq, b.T = True, B, tq[SHAPE][2], tk[SHAPE][2]
        b.n_q = B * b.Tq
    else:
        raise ValueError("%s: q must be [tokens, heads, head_dim] or [batch, heads, tokens, "
                         "head_dim], got shape %s" % (function, tuple(tq[SHAPE])))
    return (tq, tk, tv, q)


def _token_major_copy(x):
    if isinstance(x, np.ndarray):
        return np.ascontiguousarray(x.transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3)
    if hasattr(x, "contiguous"):
        return x.transpose(1, 2).contiguous().transpose(1, 2)
    return _token_major_copy(np.from_dlpack(x))


_ITEM = {0: 4, 1: 2, 2: 2}


def bind_out(ctx, b, out, out_dtype, head_dim_v, n_heads, function):
    """ctx.ov over the caller's out= or a new output. Returns (result, keep):
    result is what the caller gets ([n_q, Hq, dv], or [B, Hq, Tq, dv] as a
    transposed view of [B, Tq, Hq, dv] storage for 4-D inputs)."""
    if out is None:
        code = parse_dtype(out_dtype) if out_dtype != "f32" else 0
        if not b.four:
            result = new_output(b.kind, (b.n_q, n_heads, head_dim_v), code)
            ptr = result.data_ptr() if b.kind == "torch" else result.ctypes.data
            fill(ctx.ov, ptr, code, b.n_q, n_heads, head_dim_v, n_heads * head_dim_v,
                 head_dim_v)
            return result, None
        store = new_output(b.kind, (b.B, b.Tq, n_heads, head_dim_v), code)
        result = store.transpose(1, 2) if b.kind == "torch" else store.transpose(0, 2, 1, 3)
        to = inspect(result, "out", "bf16" if code == 2 else None)
    else:
        result = out
        to = inspect(out, "out", out_dtype if isinstance(out, np.ndarray) and
                     out.dtype in (np.uint16, np.int16) else None)
        if isinstance(out, np.ndarray) and not out.flags.writeable:
            raise ValueError("%s: out is read-only" % function)
        want = (b.B, n_heads, b.Tq, head_dim_v) if b.four else (b.n_q, n_heads, head_dim_v)
        if tuple(to[SHAPE]) != want:
            raise ValueError("%s: out must have shape %s, got %s"
                             % (function, want, tuple(to[SHAPE])))
    if b.four:
        queries4(ctx.ov, to, "out")
    else:
        view3(ctx.ov, to, "out")
    return result, to


def new_lse(b, n_heads):
    """lse buffer [n_q, Hq] float32 and what the caller gets ([n_q, Hq] or
    [B, Hq, Tq])."""
    if b.kind == "torch":
        import torch
        buf = torch.empty((b.B, b.Tq, n_heads) if b.four else (b.n_q, n_heads),
                          dtype=torch.float32)
        return buf.data_ptr(), (buf.transpose(1, 2) if b.four else buf), buf
    buf = np.empty((b.B, b.Tq, n_heads) if b.four else (b.n_q, n_heads), np.float32)
    return buf.ctypes.data, (buf.transpose(0, 2, 1) if b.four else buf), buf


def set_visibility(ctx, b, mask, window, function):
    """desc.visibility for the call: CAUSAL (NULL) for one sequence without a
    mask, else RANGES over the shared cell axis. Returns the arrays to keep."""
    d = ctx.desc
    if mask is None and b.B == 1:
        d.visibility = None
        ctx.params.window = int(window)
        return None
    ranges, first, causal = visible_ranges(ctx, mask, b.B, b.Tq, b.T, b.row, window, function)
    if causal:
        d.visibility = None
        ctx.params.window = int(window)
        return None
    ctx.params.window = 0  # expressed by the ranges
    vis = ctx.vis
    vis.kind = VISIBLE_RANGES
    vis.ranges = ranges.ctypes.data
    vis.range_first = first.ctypes.data
    d.visibility = ctx.vis_ptr
    return (ranges, first)


def execute(ctx, function):
    """fasa_attention on ctx.desc with the context's workspace, grown and
    retried when libfasa reports it too small (or the host-thread path)."""
    if ctx.host is not None:
        ctx.host.execute(ctx, function)
        return
    ws, size = ctx.current_workspace()
    st = lib.fasa_attention(ctx, ctx.desc_ref, ws, size)
    if st == _ERR_WORKSPACE_TOO_SMALL:
        need = ctypes.c_size_t()
        check(lib.fasa_attention_workspace_size(ctx, ctx.desc_ref, ctypes.byref(need)), ctx,
              function, "fasa_attention_workspace_size")
        ws, size = ctx.workspace(need.value)
        st = lib.fasa_attention(ctx, ctx.desc_ref, ws, size)
    if st != 0:
        check(st, ctx, function, "fasa_attention")


def set_common(ctx, op, mode, scale, softcap, lse_ptr, out):
    """The descriptor fields every call sets. Fields only some calls use
    (index sets, scores, hints, profile) are cleared when a previous call
    set them (ctx.extras), so a plain call pays for none of them."""
    d = ctx.desc
    d.op = op
    d.mode = mode
    d.lse = lse_ptr
    d.out = ctx.out_ptr if out else None
    p = ctx.params
    p.scale = scale
    p.softcap = softcap
    if ctx.extras:
        d.profile = None
        d.layer = 0
        d.label_cache = None
        d.budget = 0.0
        d.budgets = None
        d.indices = None
        d.index_stride = 0
        d.counts = None
        d.scores = None
        d.select_hints = None
        ctx.extras = False


def set_profile(ctx, b, profile, layer, budget, cache, mode, select_hints, function):
    """The FASA/PREDICT part of the descriptor. Returns arrays to keep."""
    d = ctx.desc
    ctx.extras = True
    d.profile = profile._as_parameter_
    d.layer = int(layer)
    d.budget = float(budget)
    keep = None
    if cache is not None:
        if b.B > 1:
            raise ValueError(
                "%s: a label cache with batch %d: one cache serves a batch once it can be "
                "written at any cell (the cell-addressed label cache); until then pass "
                "cache=None for batches (TIP then scores from k)" % (function, b.B))
        d.label_cache = cache._as_parameter_
    elif b.row * b.B >= NO_CACHE_WARN_CELLS and not profile.is_dense(layer) and \
            float(budget) < b.T:
        warnings.warn(
            "%s: no label cache at %d cells: TIP scores every key's FC dims each step, about "
            "5x slower than dense attention at 64k. Keep a fasa.LabelCache per layer (append "
            "each new key) and pass cache=" % (function, b.row * b.B),
            PerformanceWarning, stacklevel=4)
    if select_hints is not None:
        if not isinstance(select_hints, np.ndarray) or select_hints.dtype != np.float32 or \
                not select_hints.flags.c_contiguous or not select_hints.flags.writeable:
            raise TypeError("%s: select_hints must be a writable C-contiguous float32 numpy "
                            "array [n_q, n_sets]" % function)
        d.select_hints = select_hints.ctypes.data
        keep = select_hints
    return keep


def attention(q, k, v, *, profile=None, layer=None, budget=None, layout=None, mode=None,
              cache=None, mask=None, scale=0.0, softcap=0.0, window=0, out=None,
              out_dtype="f32", lse=False, select_hints=None, ctx=None, dtype=None,
              function="fasa.attention"):
    """Attention as a model calls it: dense (no profile) or FASA (profile,
    layer, budget, layout), one sequence or a batch, in one libfasa call.

    q [n_q, Hq, d], k [t, Hkv, d], v [t, Hkv, dv]: one sequence, queries
      are its last n_q tokens (causal, bottom-right).
    q [B, Hq, Tq, d], k/v [B, Hkv, T, d] (torch SDPA / Hugging Face): B
      sequences of T cells each, decoded together in one call over one cell
      axis (see fasa.tensors.cells4 for the layouts that allow it; any other
      raises). Each row sees its own cells only.
    mask: None (causal), or a HF attention mask: [B, Tkv] padding (1 = keep),
      or [B, 1, Tq, Tkv] bool (True = visible) or additive float (0 visible,
      -inf or the dtype's min hidden), cut to the T cells of k.
    Returns out [n_q, Hq, dv] or [B, Hq, Tq, dv] (a view of [B, Tq, Hq, dv]
    storage, ready for HF's .transpose(1, 2)), in torch when q is a torch
    tensor, and lse [.., Hq] float32 with lse=True."""
    ctx = _context.resolve(ctx)
    op = OP_DENSE
    if profile is not None:
        if layer is None or budget is None:
            raise TypeError("%s: FASA needs layer= and budget= with profile=" % function)
        check_layout(profile, layout, function)
        op = OP_FASA
        mode = resolve_mode(mode, cache, function)
    elif cache is not None:
        raise TypeError("%s: cache= without profile=" % function)
    else:
        mode = PER_HEAD
    b, keep_in = bind_qkv(ctx, q, k, v, dtype, function)
    n_heads = ctx.qv.n_heads
    result, keep_out = bind_out(ctx, b, out, out_dtype, ctx.vv.head_dim, n_heads, function)
    lse_ptr = lse_res = lse_buf = None
    if lse:
        lse_ptr, lse_res, lse_buf = new_lse(b, n_heads)
    set_common(ctx, op, mode, scale, softcap, lse_ptr, True)
    keep_vis = set_visibility(ctx, b, mask, window, function)
    keep_p = None
    if op == OP_FASA:
        keep_p = set_profile(ctx, b, profile, layer, budget, cache, mode, select_hints, function)
    execute(ctx, function)
    del keep_in, keep_out, keep_vis, keep_p, lse_buf
    return (result, lse_res) if lse else result


__all__ = ["attention", "PerformanceWarning", "OP_DENSE", "OP_SPARSE", "OP_PREDICT", "OP_FASA"]
