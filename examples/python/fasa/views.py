"""numpy arrays <-> fasa_view, without copies.

A fasa_view addresses element (t, h, i) at data + t*token_stride +
h*head_stride + i, strides in elements. A numpy array of shape
[tokens, heads, head_dim] maps onto that exactly when its strides are
non-negative multiples of the item size and its last axis is contiguous;
anything else raises ValueError instead of being copied silently.
"""
import ctypes

import numpy as np

from ._lib import View, lib
from . import context as _context
from .errors import check

DTYPE_F32 = 0
DTYPE_F16 = 1
DTYPE_BF16 = 2

_NAMES = {
    "f32": DTYPE_F32, "float32": DTYPE_F32,
    "f16": DTYPE_F16, "float16": DTYPE_F16, "half": DTYPE_F16,
    "bf16": DTYPE_BF16, "bfloat16": DTYPE_BF16,
}


def parse_dtype(dtype):
    """fasa dtype code of 'f32'/'f16'/'bf16', np.float32, np.float16 or a code."""
    if isinstance(dtype, str) and dtype.lower() in _NAMES:
        return _NAMES[dtype.lower()]
    if isinstance(dtype, int) and not isinstance(dtype, bool) and dtype in (0, 1, 2):
        return dtype
    try:
        npd = np.dtype(dtype)
    except TypeError:
        npd = None
    if npd == np.float32:
        return DTYPE_F32
    if npd == np.float16:
        return DTYPE_F16
    if npd is not None and npd.name == "bfloat16":  # ml_dtypes, if the caller uses it
        return DTYPE_BF16
    raise ValueError("unknown fasa dtype %r (use 'f32', 'f16' or 'bf16')" % (dtype,))


def numpy_dtype(code):
    """numpy dtype holding a fasa dtype (bf16 lives in uint16)."""
    return {DTYPE_F32: np.float32, DTYPE_F16: np.float16, DTYPE_BF16: np.uint16}[code]


def array_dtype(arr, dtype=None, name="array"):
    """fasa dtype code of an array. bf16 data is a uint16 (or int16) array
    together with dtype='bf16', since numpy has no bfloat16."""
    kind = arr.dtype
    if dtype is not None:
        code = parse_dtype(dtype)
        ok = {
            DTYPE_F32: kind == np.float32,
            DTYPE_F16: kind == np.float16,
            DTYPE_BF16: kind in (np.uint16, np.int16) or kind.name == "bfloat16",
        }[code]
        if not ok:
            raise ValueError("%s: numpy dtype %s cannot hold fasa dtype %r"
                             % (name, kind, dtype))
        return code
    if kind == np.float32:
        return DTYPE_F32
    if kind == np.float16:
        return DTYPE_F16
    if kind.name == "bfloat16":
        return DTYPE_BF16
    if kind == np.uint16:
        raise ValueError("%s: uint16 array: pass dtype='bf16' to read it as bfloat16" % name)
    raise ValueError("%s: unsupported dtype %s (float32, float16, or uint16 with "
                     "dtype='bf16')" % (name, kind))


def as_view(arr, dtype=None, name="array", writable=False):
    """fasa_view (ctypes struct) over arr [tokens, heads, head_dim], no copy.

    The view points at arr's own memory: keep arr alive while it is used.
    """
    if not isinstance(arr, np.ndarray):
        raise TypeError("%s: expected a numpy array, got %s" % (name, type(arr).__name__))
    if arr.ndim != 3:
        raise ValueError("%s: expected shape [tokens, heads, head_dim], got %s"
                         % (name, arr.shape))
    code = array_dtype(arr, dtype, name)
    if writable and not arr.flags.writeable:
        raise ValueError("%s: output array is read-only" % name)
    item = arr.itemsize
    n_tokens, n_heads, head_dim = arr.shape
    for axis, (n, s) in enumerate(zip(arr.shape, arr.strides)):
        if n <= 1:
            continue  # the stride of a size-1 axis is never used
        if s < 0:
            raise ValueError("%s: negative stride on axis %d (fasa_view strides are "
                             "unsigned); pass a copy" % (name, axis))
        if s % item:
            raise ValueError("%s: stride %d bytes on axis %d is not a multiple of the "
                             "item size %d" % (name, s, axis, item))
    if head_dim > 1 and arr.strides[2] != item:
        raise ValueError("%s: the head_dim axis must be contiguous (stride %d bytes, item "
                         "size %d)" % (name, arr.strides[2], item))
    head_stride = arr.strides[1] // item if n_heads > 1 else head_dim
    token_stride = arr.strides[0] // item if n_tokens > 1 else head_stride * n_heads
    view = View()
    view.struct_size = ctypes.sizeof(View)
    view.data = arr.ctypes.data
    view.dtype = code
    view.kind = 0
    view.n_tokens = n_tokens
    view.n_heads = n_heads
    view.head_dim = head_dim
    view.token_stride = token_stride
    view.head_stride = head_stride
    return view


def output(shape, out, out_dtype, name="out"):
    """(array, view) for an output: the caller's `out` (any layout as_view
    accepts, written in place) or a new C-contiguous array."""
    if out is None:
        code = parse_dtype(out_dtype)
        out = np.empty(shape, dtype=numpy_dtype(code))
        return out, as_view(out, code, name, writable=True)
    if not isinstance(out, np.ndarray):
        raise TypeError("%s: expected a numpy array" % name)
    if tuple(out.shape) != tuple(shape):
        raise ValueError("%s: expected shape %s, got %s" % (name, tuple(shape), out.shape))
    hint = out_dtype if out.dtype in (np.uint16, np.int16) else None
    return out, as_view(out, hint, name, writable=True)


def input_view(arr, dtype, name):
    """as_view for an input, applying a call's dtype= only to 2-byte integer
    arrays (bf16 storage); float arrays carry their own dtype."""
    if isinstance(arr, np.ndarray) and arr.dtype in (np.uint16, np.int16):
        return as_view(arr, dtype, name)
    return as_view(arr, None, name)


def validate_view(arr, dtype=None, ctx=None):
    """Run fasa_view_validate on the view of arr (strides, overlap, extent);
    raises FasaError with the library's message when libfasa rejects it."""
    ctx = _context.resolve(ctx)
    view = as_view(arr, dtype)
    check(lib.fasa_view_validate(ctx, ctypes.byref(view)), ctx, "fasa_view_validate")
