"""as_view / validate_view: the fasa_view a call hands to libfasa, for
inspection and tests. The mapping itself lives in tensors.py."""
import ctypes

import numpy as np

from ._lib import View, lib
from . import context as _context
from .errors import check
from .tensors import (DTYPE_BF16, DTYPE_F16, DTYPE_F32, PTR, SHAPE, cells4, inspect, numpy_dtype,
                      parse_dtype, view3)


def as_view(arr, dtype=None, name="array", writable=False):
    """fasa_view (ctypes struct) over arr, no copy: a numpy array, torch CPU
    tensor or DLPack object of shape [tokens, heads, head_dim], or a 4-D
    [batch, heads, tokens, head_dim] key/value tensor seen as one cell axis.

    The view points at arr's own memory: keep arr alive while it is used."""
    if writable and isinstance(arr, np.ndarray) and not arr.flags.writeable:
        raise ValueError("%s: output array is read-only" % name)
    t = inspect(arr, name, dtype, strict=True)
    view = View()
    if len(t[SHAPE]) == 4:
        cells4(view, t, name)
    else:
        view3(view, t, name)
    view._keep = t  # a DLPack capsule must outlive the view
    return view


def validate_view(arr, dtype=None, ctx=None):
    """Run fasa_view_validate on the view of arr (strides, overlap, extent);
    raises FasaError with the library's message when libfasa rejects it."""
    ctx = _context.resolve(ctx)
    view = as_view(arr, dtype)
    check(lib.fasa_view_validate(ctx, ctypes.byref(view)), ctx, "fasa.validate_view",
          "fasa_view_validate")


def input_view(arr, dtype, name):
    """as_view for an input."""
    return as_view(arr, dtype, name)


__all__ = ["DTYPE_F32", "DTYPE_F16", "DTYPE_BF16", "as_view", "validate_view", "parse_dtype",
           "numpy_dtype", "input_view", "PTR"]
