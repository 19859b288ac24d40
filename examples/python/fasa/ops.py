"""TIP (predict), FAC (attend), dense attention and the decode step.

Shapes: q [n_q, Hq, d], k [t, Hkv, d], v [t, Hkv, dv]; n_sets = Hq
(PER_HEAD) or Hkv (GROUP_SHARED). Inputs may be any layout views.as_view
accepts (no copies); outputs are new arrays unless out= is given.
Workspaces come from the Context (cached, grown on demand), so repeated
calls allocate nothing in C and only the outputs in Python.
"""
import collections
import ctypes

import numpy as np

from ._lib import lib
from . import context as _context
from .errors import FasaError, check
from .profile import GROUP_SHARED, PER_HEAD
from .views import input_view, output

_P_U32 = ctypes.POINTER(ctypes.c_uint32)
_P_F32 = ctypes.POINTER(ctypes.c_float)


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


def _ptr(arr, kind):
    return None if arr is None else arr.ctypes.data_as(kind)


def max_selected(budget, t):
    """Largest selected count of any set: min(n, t) for this budget."""
    n = ctypes.c_size_t()
    check(lib.fasa_predict_max_selected(float(budget), int(t), ctypes.byref(n)), None,
          "fasa_predict_max_selected")
    return n.value


def _n_sets(mode, q, k_heads):
    return q.shape[1] if mode == PER_HEAD else k_heads


def _selection_outputs(q, t, k_heads, mode, budget, scores):
    try:
        stride = max(max_selected(budget, t), 1)
    except FasaError:
        stride = 1  # let the main call report the bad budget with its context message
    n_sets = _n_sets(mode, q, k_heads)
    indices = np.zeros((q.shape[0], n_sets, stride), dtype=np.uint32)
    counts = np.zeros((q.shape[0], n_sets), dtype=np.uint32)
    sc = np.empty((q.shape[0], n_sets, t), dtype=np.float32) if scores else None
    return indices, counts, sc


def _predict_ws(ctx, profile, qv, t, mode):
    nbytes = ctypes.c_size_t()
    check(lib.fasa_predict_workspace_size(ctx, profile, ctypes.byref(qv), t, mode,
                                          ctypes.byref(nbytes)), ctx,
          "fasa_predict_workspace_size")
    return ctx.workspace(nbytes.value)


def predict(profile, layer, q, k, budget, mode=PER_HEAD, scores=False, ctx=None, dtype=None):
    """TIP: score the t cached tokens of k with the dominant FCs of `layer`
    and select the top-n per set (ties: lower index). budget >= 1 is a
    count, 0 < budget < 1 a fraction of the visible length. q [n_q, Hq, d]
    are the last n_q tokens (causal). Returns a Selection."""
    ctx = _context.resolve(ctx)
    qv = input_view(q, dtype, "q")
    kv = input_view(k, dtype, "k")
    mode = int(mode)
    indices, counts, sc = _selection_outputs(q, k.shape[0], k.shape[1], mode, budget, scores)
    ws, ws_size = _predict_ws(ctx, profile, qv, k.shape[0], mode)
    check(lib.fasa_predict(ctx, profile, int(layer), mode, ctypes.byref(qv), ctypes.byref(kv),
                           float(budget), _ptr(indices, _P_U32), indices.shape[2],
                           _ptr(counts, _P_U32), _ptr(sc, _P_F32), ws, ws_size), ctx,
          "fasa_predict")
    return Selection(indices, counts, sc, mode)


def predict_cached(profile, layer, q, cache, budget, scores=False, ctx=None, dtype=None):
    """TIP from a LabelCache (t = cache.tokens; mode = cache.mode): the fast
    path. Returns a Selection."""
    ctx = _context.resolve(ctx)
    qv = input_view(q, dtype, "q")
    t = cache.tokens
    mode = cache.mode
    indices, counts, sc = _selection_outputs(q, t, _kv_heads(profile), mode, budget, scores)
    ws, ws_size = _predict_ws(ctx, profile, qv, t, mode)
    check(lib.fasa_predict_cached(ctx, profile, int(layer), mode, ctypes.byref(qv), cache,
                                  float(budget), _ptr(indices, _P_U32), indices.shape[2],
                                  _ptr(counts, _P_U32), _ptr(sc, _P_F32), ws, ws_size), ctx,
          "fasa_predict_cached")
    return Selection(indices, counts, sc, mode)


def _kv_heads(profile):
    return profile.shape.n_kv_heads


def _lse_out(q, want):
    return np.empty(q.shape[:2], dtype=np.float32) if want else None


def attend(q, k, v, selection, mode=None, scale=0.0, out=None, out_dtype="f32", lse=False,
           ctx=None, dtype=None):
    """FAC: exact softmax attention of each query head over its selected
    tokens. selection: a Selection, or (indices [n_q, n_sets, stride],
    counts [n_q, n_sets]) with mode. scale 0 = 1/sqrt(d). Returns out
    [n_q, Hq, dv] (and lse float32 [n_q, Hq] when lse=True)."""
    ctx = _context.resolve(ctx)
    if isinstance(selection, Selection):
        indices, counts = selection.indices, selection.counts
        mode = selection.mode if mode is None else mode
    else:
        indices, counts = selection
        mode = PER_HEAD if mode is None else mode
    indices = np.ascontiguousarray(indices, dtype=np.uint32)
    counts = np.ascontiguousarray(counts, dtype=np.uint32)
    if indices.ndim != 3 or counts.shape != indices.shape[:2]:
        raise ValueError("indices must be [n_q, n_sets, stride] and counts [n_q, n_sets]")
    qv = input_view(q, dtype, "q")
    kv = input_view(k, dtype, "k")
    vv = input_view(v, dtype, "v")
    out, ov = output((q.shape[0], q.shape[1], v.shape[2]), out, out_dtype)
    lse_arr = _lse_out(q, lse)
    nbytes = ctypes.c_size_t()
    check(lib.fasa_attend_workspace_size(ctx, ctypes.byref(qv), ctypes.byref(kv),
                                         ctypes.byref(vv), int(mode), indices.shape[2],
                                         ctypes.byref(nbytes)), ctx,
          "fasa_attend_workspace_size")
    ws, ws_size = ctx.workspace(nbytes.value)
    check(lib.fasa_attend(ctx, int(mode), ctypes.byref(qv), ctypes.byref(kv), ctypes.byref(vv),
                          _ptr(indices, _P_U32), indices.shape[2], _ptr(counts, _P_U32),
                          float(scale), ctypes.byref(ov), _ptr(lse_arr, _P_F32), ws, ws_size),
          ctx, "fasa_attend")
    return (out, lse_arr) if lse else out


def attend_dense(q, k, v, scale=0.0, out=None, out_dtype="f32", lse=False, ctx=None,
                 dtype=None):
    """Ordinary causal attention (bottom-right aligned for n_q > 1).
    Returns out [n_q, Hq, dv] (and lse [n_q, Hq] when lse=True)."""
    ctx = _context.resolve(ctx)
    qv = input_view(q, dtype, "q")
    kv = input_view(k, dtype, "k")
    vv = input_view(v, dtype, "v")
    out, ov = output((q.shape[0], q.shape[1], v.shape[2]), out, out_dtype)
    lse_arr = _lse_out(q, lse)
    nbytes = ctypes.c_size_t()
    check(lib.fasa_attend_dense_workspace_size(ctx, ctypes.byref(qv), ctypes.byref(kv),
                                               ctypes.byref(vv), ctypes.byref(nbytes)), ctx,
          "fasa_attend_dense_workspace_size")
    ws, ws_size = ctx.workspace(nbytes.value)
    check(lib.fasa_attend_dense(ctx, ctypes.byref(qv), ctypes.byref(kv), ctypes.byref(vv),
                                float(scale), ctypes.byref(ov), _ptr(lse_arr, _P_F32), ws,
                                ws_size), ctx, "fasa_attend_dense")
    return (out, lse_arr) if lse else out


def decode_step(profile, layer, q, k, v, budget, mode=PER_HEAD, cache=None, scale=0.0,
                out=None, out_dtype="f32", lse=False, ctx=None, dtype=None):
    """One layer of one decode step: predict (from `cache` if given, else
    from k) then attend; dense when the layer is dense or t <= budget.
    Returns out [n_q, Hq, dv] (and lse [n_q, Hq] when lse=True)."""
    ctx = _context.resolve(ctx)
    if cache is not None:
        mode = cache.mode
    qv = input_view(q, dtype, "q")
    kv = input_view(k, dtype, "k")
    vv = input_view(v, dtype, "v")
    out, ov = output((q.shape[0], q.shape[1], v.shape[2]), out, out_dtype)
    lse_arr = _lse_out(q, lse)
    nbytes = ctypes.c_size_t()
    check(lib.fasa_decode_step_workspace_size(ctx, profile, ctypes.byref(qv), ctypes.byref(kv),
                                              ctypes.byref(vv), int(mode), float(budget),
                                              ctypes.byref(nbytes)), ctx,
          "fasa_decode_step_workspace_size")
    ws, ws_size = ctx.workspace(nbytes.value)
    check(lib.fasa_decode_step(ctx, profile, int(layer), int(mode), ctypes.byref(qv),
                               ctypes.byref(kv), ctypes.byref(vv), cache, float(budget),
                               float(scale), ctypes.byref(ov), _ptr(lse_arr, _P_F32), ws,
                               ws_size), ctx, "fasa_decode_step")
    return (out, lse_arr) if lse else out


__all__ = ["Selection", "max_selected", "predict", "predict_cached", "attend", "attend_dense",
           "decode_step", "PER_HEAD", "GROUP_SHARED"]
