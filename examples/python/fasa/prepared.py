"""DecodeLayer: one layer's decode step with everything but q and t fixed.

fasa.decode_step inspects q, k, v and out on every call (about 8 us of
Python with warm caches, ~20 us right after a call whose working set
evicted them). A runtime that owns its KV buffers knows all of that in
advance: DecodeLayer keeps its own descriptor and views over the caller's
K/V buffers and per call only sets the query pointer, the number of cells
and the output pointer (docs/bindings.md, "Performance").

    layer = fasa.DecodeLayer(profile, 3, kbuf, vbuf, budget=256,
                             layout=fasa.PAIRS_HALF, cache=label_cache)
    out = layer(q, t)      # q [1, Hq, d]; attends cells [0, t) of kbuf/vbuf
"""
import ctypes
import warnings

import numpy as np

from ._lib import AttentionDesc, AttnParams, View, lib
from . import context as _context
from .core import (NO_CACHE_WARN_CELLS, OP_DENSE, OP_FASA, PerformanceWarning, check_layout,
                   resolve_mode)
from .errors import check
from .tensors import bind3, new_output, numpy_dtype, parse_dtype

_ERR_WORKSPACE_TOO_SMALL = 10


class DecodeLayer:
    """A decode step of one layer over fixed K/V buffers [capacity, Hkv, d]
    (any layout fasa_view allows: token-major, head-major slices, padded
    rows). profile=None: dense attention. The buffers (and the label cache)
    are borrowed: keep them alive and do not move them. One thread at a
    time (it uses ctx and its own structs)."""

    def __init__(self, profile, layer, k, v, budget=None, *, layout=None, mode=None, cache=None,
                 scale=0.0, out_dtype="f32", ctx=None):
        self.ctx = _context.resolve(ctx) if ctx is None else ctx
        fn = "fasa.DecodeLayer"
        self.kv, self.vv, self.qv, self.ov = View(), View(), View(), View()
        self.kind = bind3(self.kv, k, "k")[0]
        bind3(self.vv, v, "v")
        self.capacity = self.kv.n_tokens
        if self.vv.n_tokens != self.capacity:
            raise ValueError("%s: k holds %d cells, v %d" % (fn, self.capacity, self.vv.n_tokens))
        self._keep = (k, v, profile, cache)
        d = self.desc = AttentionDesc()
        d.struct_size = ctypes.sizeof(AttentionDesc)
        self.params = AttnParams()
        self.params.struct_size = ctypes.sizeof(AttnParams)
        self.params.scale = scale
        d.params = ctypes.pointer(self.params)
        d.q, d.k, d.v, d.out = (ctypes.pointer(self.qv), ctypes.pointer(self.kv),
                                ctypes.pointer(self.vv), ctypes.pointer(self.ov))
        if profile is not None:
            if budget is None:
                raise TypeError("%s: budget= is required with a profile" % fn)
            check_layout(profile, layout, fn)
            d.op = OP_FASA
            d.mode = resolve_mode(mode, cache, fn)
            d.profile = profile._as_parameter_
            d.layer = int(layer)
            d.budget = float(budget)
            d.label_cache = cache._as_parameter_ if cache is not None else None
            if cache is None and self.capacity >= NO_CACHE_WARN_CELLS:
                warnings.warn("%s: no label cache for %d cells: TIP scores every key's FC dims "
                              "each step, about 5x slower than dense attention at 64k"
                              % (fn, self.capacity), PerformanceWarning, stacklevel=2)
        else:
            d.op = OP_DENSE
        self.cache = cache
        self.code = parse_dtype(out_dtype)
        self.ref = ctypes.byref(d)
        self._q_sig = None
        self._ov_plain = True
        self._np_out = numpy_dtype(self.code)
        self.ctx.current_workspace()

    def __call__(self, q, t, out=None):
        """Attention of q [n_q, Hq, d] (the last n_q of the first t cells)
        over cells [0, t). Returns out [n_q, Hq, dv] (a new array, or out)."""
        numpy_q = type(q) is np.ndarray
        sig = (q.shape, q.strides, q.dtype) if numpy_q else (q.shape, q.stride(), q.dtype)
        if sig != self._q_sig:  # a new query layout: full inspection, output view refilled
            bind3(self.qv, q, "q")
            self._q_sig = sig
            n_q, hq, dv = self.qv.n_tokens, self.qv.n_heads, self.vv.head_dim
            self._out_shape = (n_q, hq, dv)
            ov = self.ov
            ov.struct_size, ov.dtype, ov.kind = ctypes.sizeof(View), self.code, 0
            ov.n_tokens, ov.n_heads, ov.head_dim = n_q, hq, dv
            ov.token_stride, ov.head_stride = hq * dv, dv
            self._ov_plain = True
        else:
            self.qv.data = q.ctypes.data if numpy_q else q.data_ptr()
        if t > self.capacity:
            raise ValueError("fasa.DecodeLayer: t = %d > the %d cells of the buffers"
                             % (t, self.capacity))
        self.kv.n_tokens = self.vv.n_tokens = t
        if out is None:
            if self.kind == "torch":
                out = new_output("torch", self._out_shape, self.code)
                ptr = out.data_ptr()
            else:
                out = np.empty(self._out_shape, self._np_out)
                ptr = out.ctypes.data
            if not self._ov_plain:
                self._q_sig = None  # refill the plain output view next call
                return self(q, t)
            self.ov.data = ptr
        else:
            bind3(self.ov, out, "out")
            self._ov_plain = False
        ctx = self.ctx
        st = lib.fasa_attention(ctx._as_parameter_, self.ref, ctx._ws_ptr, ctx._ws_size)
        if st == _ERR_WORKSPACE_TOO_SMALL:
            need = ctypes.c_size_t()
            check(lib.fasa_attention_workspace_size(ctx, self.ref, ctypes.byref(need)), ctx,
                  "fasa.DecodeLayer", "fasa_attention_workspace_size")
            ws, size = ctx.workspace(need.value)
            st = lib.fasa_attention(ctx, self.ref, ws, size)
        if st:
            check(st, ctx, "fasa.DecodeLayer", "fasa_attention")
        return out
