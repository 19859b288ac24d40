"""TIP (predict), FAC (attend), dense attention and the decode step, all
through the one descriptor path of core.py.

Shapes: q [n_q, Hq, d], k [t, Hkv, d], v [t, Hkv, dv] (one sequence); the
dense and decode-step calls also take the 4-D [B, H, T, D] layout of torch
and Hugging Face (see fasa.attention). n_sets = Hq (PER_HEAD) or Hkv
(GROUP_SHARED). Inputs are numpy arrays, torch CPU tensors (f32/f16/bf16)
or DLPack objects, never copied; outputs are new arrays of the same library
unless out= is given.
"""
import collections
import ctypes

import numpy as np

from ._lib import lib
from . import context as _context
from .core import (OP_PREDICT, OP_SPARSE, PER_HEAD, GROUP_SHARED, _REQUIRED, attention,
                   bind_out, bind_qkv, check_layout, execute, new_lse, resolve_mode,
                   set_common, set_profile)
from .errors import FasaError, check


class Selection(collections.namedtuple("Selection", "indices counts scores mode")):
    """Result of predict: indices uint32 [n_q, n_sets, index_stride] (set
    (i, s) is indices[i, s, :counts[i, s]], strictly ascending), counts
    uint32 [n_q, n_sets], scores float32 [n_q, n_sets, t] or None, mode."""

    def set(self, i, s):
        """Token indices of set s of query i."""
        return self.indices[i, s, :self.counts[i, s]]

    @property
    def index_stride(self):
        return self.indices.shape[2]


def max_selected(budget, t):
    """Largest selected count of any set: min(n, t) for this budget."""
    n = ctypes.c_size_t()
    check(lib.fasa_predict_max_selected(float(budget), int(t), ctypes.byref(n)), None,
          "fasa.max_selected", "fasa_predict_max_selected")
    return n.value


def _three_d(function, *arrays):
    for a in arrays:
        if a is not None and len(getattr(a, "shape", ())) == 4:
            raise ValueError("%s works on one sequence ([tokens, heads, head_dim]); batches "
                             "([B, H, T, D]) go through fasa.attention / decode_step"
                             % function)


def _predict(function, profile, layer, q, k, cache, budget, mode, layout, scores, ctx, dtype):
    ctx = _context.resolve(ctx)
    check_layout(profile, layout, function)
    mode = resolve_mode(mode, cache, function)
    _three_d(function, q, k)
    if k is None:  # scores from the cache alone: q only, t = the cache's tokens
        b, keep = bind_qkv(ctx, q, q, None, dtype, function)
        t = cache.tokens
        ctx.desc.k = None
    else:
        b, keep = bind_qkv(ctx, q, k, None, dtype, function)
        t = b.T
        ctx.desc.k = ctypes.pointer(ctx.kv)
    ctx.desc.v = None
    try:
        stride = max(max_selected(budget, t), 1)
    except FasaError:
        stride = 1  # the main call reports the bad budget with its context message
    n_sets = ctx.qv.n_heads if mode == PER_HEAD else profile.shape.n_kv_heads
    indices = np.zeros((b.n_q, n_sets, stride), np.uint32)
    counts = np.zeros((b.n_q, n_sets), np.uint32)
    sc = np.empty((b.n_q, n_sets, t), np.float32) if scores else None
    set_common(ctx, OP_PREDICT, mode, 0.0, 0.0, None, False)
    ctx.desc.visibility = None
    ctx.params.window = 0
    try:
        set_profile(ctx, b, profile, layer, budget, cache, mode, None, function)
        d = ctx.desc
        d.indices, d.index_stride, d.counts = indices.ctypes.data, stride, counts.ctypes.data
        d.scores = sc.ctypes.data if sc is not None else None
        execute(ctx, function)
    finally:
        ctx.desc.k = ctypes.pointer(ctx.kv)
        ctx.desc.v = ctypes.pointer(ctx.vv)
    return Selection(indices, counts, sc, mode)


def predict(profile, layer, q, k, budget, *, layout=_REQUIRED, mode=None, scores=False,
            ctx=None, dtype=None):
    """TIP: score the t cached tokens of k with the dominant FCs of `layer`
    and select the top-n per set (ties: lower index). budget >= 1 is a
    count, 0 < budget < 1 a fraction of the visible length. q [n_q, Hq, d]
    are the last n_q tokens (causal). layout: the RoPE pair layout of q and
    k, which must be the profile's. Returns a Selection."""
    return _predict("fasa.predict", profile, layer, q, k, None, budget, mode, layout, scores,
                    ctx, dtype)


def predict_cached(profile, layer, q, cache, budget, *, layout=_REQUIRED, mode=None,
                   scores=False, ctx=None, dtype=None):
    """TIP from a LabelCache (t = cache.tokens; mode = the cache's, an
    explicit different mode= is an error): the fast path."""
    return _predict("fasa.predict_cached", profile, layer, q, None, cache, budget, mode, layout,
                    scores, ctx, dtype)


def attend(q, k, v, selection, mode=None, scale=0.0, out=None, out_dtype="f32", lse=False,
           ctx=None, dtype=None):
    """FAC: exact softmax attention of each query head over its selected
    tokens. selection: a Selection, or (indices [n_q, n_sets, stride],
    counts [n_q, n_sets]) with mode. scale 0 = 1/sqrt(d). Returns out
    [n_q, Hq, dv] (and lse float32 [n_q, Hq] when lse=True)."""
    function = "fasa.attend"
    ctx = _context.resolve(ctx)
    if isinstance(selection, Selection):
        indices, counts = selection.indices, selection.counts
        if mode is not None and int(mode) != selection.mode:
            raise ValueError("%s: mode=%s but the selection was made with mode %s"
                             % (function, mode, selection.mode))
        mode = selection.mode
    else:
        indices, counts = selection
        mode = PER_HEAD if mode is None else int(mode)
    indices = np.ascontiguousarray(indices, dtype=np.uint32)
    counts = np.ascontiguousarray(counts, dtype=np.uint32)
    if indices.ndim != 3 or counts.shape != indices.shape[:2]:
        raise ValueError("%s: indices must be [n_q, n_sets, stride] and counts [n_q, n_sets]"
                         % function)
    _three_d(function, q, k, v)
    b, keep = bind_qkv(ctx, q, k, v, dtype, function)
    result, keep_out = bind_out(ctx, b, out, out_dtype, ctx.vv.head_dim, ctx.qv.n_heads,
                                function)
    lse_ptr = lse_res = lse_buf = None
    if lse:
        lse_ptr, lse_res, lse_buf = new_lse(b, ctx.qv.n_heads)
    set_common(ctx, OP_SPARSE, mode, scale, 0.0, lse_ptr, True)
    ctx.desc.visibility = None
    ctx.params.window = 0
    ctx.extras = True
    d = ctx.desc
    d.indices, d.index_stride, d.counts = indices.ctypes.data, indices.shape[2], counts.ctypes.data
    execute(ctx, function)
    return (result, lse_res) if lse else result


def attend_dense(q, k, v, scale=0.0, out=None, out_dtype="f32", lse=False, ctx=None,
                 dtype=None, mask=None, window=0, softcap=0.0):
    """Ordinary causal attention (bottom-right aligned for n_q > 1), or a
    batch [B, H, T, D] (see fasa.attention). Returns out (and lse when
    lse=True)."""
    return attention(q, k, v, scale=scale, softcap=softcap, window=window, mask=mask, out=out,
                     out_dtype=out_dtype, lse=lse, ctx=ctx, dtype=dtype,
                     function="fasa.attend_dense")


def decode_step(profile, layer, q, k, v, budget, *, layout=_REQUIRED, mode=None, cache=None,
                scale=0.0, out=None, out_dtype="f32", lse=False, mask=None, select_hints=None,
                ctx=None, dtype=None):
    """One layer of one decode step: TIP (from `cache`, a LabelCache holding
    every key of k, else from k itself: ~5x slower than dense at 64k, warned
    past 4096 cells) then attention over the selected tokens; dense when the
    layer is dense or every visible token fits the budget.

    layout (required): the RoPE pair layout of q and k; must be the
    profile's. mode: PER_HEAD / GROUP_SHARED; with a cache it defaults to the
    cache's, and a different explicit mode is an error. Budgets: re-select
    the profile for the budget you run (Profile.for_budget) when it has
    agreement data. Returns out [n_q, Hq, dv] (and lse when lse=True)."""
    return attention(q, k, v, profile=profile, layer=layer, budget=budget, layout=layout,
                     mode=mode, cache=cache, scale=scale, out=out, out_dtype=out_dtype, lse=lse,
                     mask=mask, select_hints=select_hints, ctx=ctx, dtype=dtype,
                     function="fasa.decode_step")


__all__ = ["Selection", "max_selected", "predict", "predict_cached", "attend", "attend_dense",
           "decode_step", "attention", "PER_HEAD", "GROUP_SHARED"]
