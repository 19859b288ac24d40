"""numpy arrays, torch tensors and DLPack objects -> fasa_view, never a copy.

A fasa_view addresses element (t, h, i) at data + t*token_stride +
h*head_stride + i (strides in elements). Any CPU array whose strides are
non-negative multiples of the item size and whose last axis is contiguous
maps onto that exactly; anything else (a CUDA tensor, a negative stride, a
strided last axis, an unknown dtype) raises with the argument's name instead
of being copied or reinterpreted.

Two shapes are understood:
  3-D [tokens, heads, head_dim]      one sequence (llama.cpp-style rows)
  4-D [batch, heads, tokens, head_dim] the torch SDPA / Hugging Face layout;
      batch rows are separate sequences. Queries of all rows form one list
      (n_q = batch * tokens); keys and values of all rows must be reachable
      as one cell axis (see cells4), which a token-major cache seen through
      .transpose(1, 2) is, and HF's head-major DynamicCache is not.
"""
import ctypes
import sys

import numpy as np

from ._lib import View

DTYPE_F32 = 0
DTYPE_F16 = 1
DTYPE_BF16 = 2

_NAMES = {
    "f32": DTYPE_F32, "float32": DTYPE_F32,
    "f16": DTYPE_F16, "float16": DTYPE_F16, "half": DTYPE_F16,
    "bf16": DTYPE_BF16, "bfloat16": DTYPE_BF16,
}
_DTYPE_NAMES = {DTYPE_F32: "f32", DTYPE_F16: "f16", DTYPE_BF16: "bf16"}

_NP_F32 = np.dtype(np.float32)
_NP_F16 = np.dtype(np.float16)
_VIEW_SIZE = ctypes.sizeof(View)

# Tensor descriptions are plain tuples (this runs on every call):
#   (ptr, code, shape, strides_in_elements, kind, keepalive)
# kind is "numpy", "torch" or "dlpack"; keepalive holds a DLPack capsule.
PTR, CODE, SHAPE, STRIDES, KIND, KEEP = range(6)


def parse_dtype(dtype):
    """fasa dtype code of 'f32'/'f16'/'bf16', np.float32, np.float16, a torch
    dtype or a code."""
    if isinstance(dtype, str) and dtype.lower() in _NAMES:
        return _NAMES[dtype.lower()]
    if isinstance(dtype, int) and not isinstance(dtype, bool) and dtype in (0, 1, 2):
        return dtype
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(dtype, torch.dtype):
        code = _torch_codes(torch).get(dtype)
        if code is not None:
            return code
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


_TORCH_CODES = None


def _torch_codes(torch):
    global _TORCH_CODES
    if _TORCH_CODES is None:
        _TORCH_CODES = {torch.float32: DTYPE_F32, torch.float16: DTYPE_F16,
                        torch.bfloat16: DTYPE_BF16}
    return _TORCH_CODES


def torch_dtype(code):
    import torch
    return {DTYPE_F32: torch.float32, DTYPE_F16: torch.float16, DTYPE_BF16: torch.bfloat16}[code]


def _numpy_code(arr, dtype, name, strict):
    kind = arr.dtype
    if kind == _NP_F32 or kind == _NP_F16:
        code = DTYPE_F32 if kind == _NP_F32 else DTYPE_F16
        if strict and dtype is not None and parse_dtype(dtype) != code:
            raise ValueError("%s: numpy dtype %s cannot hold fasa dtype %r" % (name, kind, dtype))
        return code
    if kind.name == "bfloat16":
        return DTYPE_BF16
    if kind in (np.uint16, np.int16):
        if dtype is None:
            raise ValueError("%s: %s array: pass dtype='bf16' to read it as bfloat16"
                             % (name, kind))
        if parse_dtype(dtype) != DTYPE_BF16:
            raise ValueError("%s: numpy dtype %s cannot hold fasa dtype %r" % (name, kind, dtype))
        return DTYPE_BF16
    raise ValueError("%s: unsupported dtype %s (float32, float16, or uint16 with dtype='bf16')"
                     % (name, kind))


def _device_error(name, device):
    return TypeError(
        "%s: tensor on %s: libfasa runs on the CPU and reads memory in place, so it cannot "
        "use device memory. Move the tensor (x.cpu(), a copy) or run attention on the "
        "device with its own kernels." % (name, device))


def inspect(x, name, dtype=None, strict=False):
    """Describe x without copying: (ptr, code, shape, strides, kind, keep).

    dtype only disambiguates 2-byte integer numpy arrays as bf16 storage
    (so f32 queries mix with bf16 keys); float arrays and torch tensors carry
    their own dtype, and strict=True makes a contradicting dtype an error."""
    if isinstance(x, np.ndarray):
        code = _numpy_code(x, dtype, name, strict)
        item = x.itemsize
        bstr = x.strides
        strides = []
        for n, s in zip(x.shape, bstr):
            if n > 1 and s % item:
                raise ValueError("%s: stride %d bytes is not a multiple of the item size %d"
                                 % (name, s, item))
            strides.append(s // item)
        return (x.ctypes.data, code, x.shape, strides, "numpy", None)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        if x.is_cuda or x.device.type != "cpu":
            raise _device_error(name, x.device)
        code = _torch_codes(torch).get(x.dtype)
        if code is None:
            raise ValueError("%s: unsupported torch dtype %s (float32, float16 or bfloat16)"
                             % (name, x.dtype))
        return (x.data_ptr(), code, tuple(x.shape), x.stride(), "torch", None)
    if hasattr(x, "__dlpack__"):
        return _inspect_dlpack(x, name)
    raise TypeError("%s: expected a numpy array, a torch tensor or a DLPack object, got %s"
                    % (name, type(x).__name__))


# ------------------------------------------------------------------ DLPack

class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", _DLDevice), ("ndim", ctypes.c_int32),
                ("dtype", _DLDataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


_DL_CPU, _DL_CUDA_HOST = 1, 3
_capsule_ptr = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_ptr.restype = ctypes.c_void_p
_capsule_ptr.argtypes = [ctypes.py_object, ctypes.c_char_p]


def _inspect_dlpack(x, name):
    if hasattr(x, "__dlpack_device__"):
        dev_type, dev_id = x.__dlpack_device__()
        if int(dev_type) not in (_DL_CPU, _DL_CUDA_HOST):
            raise _device_error(name, "DLPack device type %d:%d" % (int(dev_type), dev_id))
    capsule = x.__dlpack__()
    # DLManagedTensor begins with its DLTensor; the capsule keeps it alive
    # (and frees it through its destructor) as long as we hold the capsule.
    dl = _DLTensor.from_address(_capsule_ptr(capsule, b"dltensor"))
    if dl.device.device_type not in (_DL_CPU, _DL_CUDA_HOST):
        raise _device_error(name, "DLPack device type %d" % dl.device.device_type)
    t = dl.dtype
    code = {(2, 32): DTYPE_F32, (2, 16): DTYPE_F16, (4, 16): DTYPE_BF16}.get((t.code, t.bits))
    if code is None or t.lanes != 1:
        raise ValueError("%s: unsupported DLPack dtype (code %d, %d bits, %d lanes)"
                         % (name, t.code, t.bits, t.lanes))
    nd = dl.ndim
    shape = tuple(dl.shape[i] for i in range(nd))
    if dl.strides:
        strides = [dl.strides[i] for i in range(nd)]
    else:  # compact row-major
        strides, acc = [0] * nd, 1
        for i in range(nd - 1, -1, -1):
            strides[i] = acc
            acc *= shape[i]
    return (dl.data + dl.byte_offset, code, shape, strides, "dlpack", capsule)


# -------------------------------------------------------------- fasa_view

def bind3(view, x, name, dtype=None):
    """view3(view, inspect(x)) with fast paths for the common cases (a
    float32/float16 numpy array, a float torch CPU tensor, 3-D, non-negative
    strides, contiguous last axis): this runs three or four times per
    attention call. Returns the tensor kind ("numpy", "torch", "dlpack") and
    what must be kept alive during the call."""
    if type(x) is np.ndarray and x.ndim == 3:
        dt = x.dtype
        if dt == _NP_F32:
            code, item = DTYPE_F32, 4
        elif dt == _NP_F16:
            code, item = DTYPE_F16, 2
        else:
            code = -1
        if code >= 0:
            T, H, D = x.shape
            st, sh, sd = x.strides
            if st >= 0 and sh >= 0 and (sd == item or D == 1) and not (st | sh) % item:
                hs = sh // item if H > 1 else D
                view.data = x.ctypes.data
                view.dtype = code
                view.n_tokens = T
                view.n_heads = H
                view.head_dim = D
                view.token_stride = st // item if T > 1 else hs * H
                view.head_stride = hs
                view.struct_size = _VIEW_SIZE
                view.kind = 0
                return "numpy", None
    else:
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(x, torch.Tensor) and not x.is_cuda and \
                x.dim() == 3:
            code = _torch_codes(torch).get(x.dtype)
            if code is not None and x.device.type == "cpu":
                T, H, D = x.shape
                st, sh, sd = x.stride()
                if sd == 1 or D == 1:
                    hs = sh if H > 1 else D
                    fill(view, x.data_ptr(), code, T, H, D, st if T > 1 else hs * H, hs)
                    return "torch", None
    t = inspect(x, name, dtype)
    view3(view, t, name)
    return t[KIND], t


def fill(view, ptr, code, n_tokens, n_heads, head_dim, token_stride, head_stride):
    view.struct_size = _VIEW_SIZE
    view.data = ptr
    view.dtype = code
    view.kind = 0
    view.n_tokens = n_tokens
    view.n_heads = n_heads
    view.head_dim = head_dim
    view.token_stride = token_stride
    view.head_stride = head_stride
    return view


def _last_axis(t, name):
    if t[SHAPE][-1] > 1 and t[STRIDES][-1] != 1:
        raise ValueError("%s: the head_dim axis must be contiguous (stride %d elements)"
                         % (name, t[STRIDES][-1]))


def _nonneg(name, axis, n, s):
    if n > 1 and s < 0:
        raise ValueError("%s: negative stride on axis %d (fasa_view strides are unsigned); "
                         "pass a copy" % (name, axis))


def view3(view, t, name):
    """Fill view from a 3-D [tokens, heads, head_dim] description."""
    shape, st = t[SHAPE], t[STRIDES]
    if len(shape) != 3:
        raise ValueError("%s: expected shape [tokens, heads, head_dim], got %s"
                         % (name, tuple(shape)))
    n_tok, n_heads, hd = shape
    for axis in range(3):
        _nonneg(name, axis, shape[axis], st[axis])
    _last_axis(t, name)
    hs = st[1] if n_heads > 1 else hd
    ts = st[0] if n_tok > 1 else hs * n_heads
    return fill(view, t[PTR], t[CODE], n_tok, n_heads, hd, ts, hs)


def mergeable(t):
    """Whether a 4-D [B, H, T, D] description's batch and token axes form
    one query axis."""
    B, H, T, D = t[SHAPE]
    sb, _, ss, _ = t[STRIDES]
    return B == 1 or T == 1 or sb == T * ss


def queries4(view, t, name):
    """Fill view from a 4-D [batch, heads, tokens, head_dim] query (or output)
    tensor: query i = b * tokens + s. Needs the batch and token axes to merge
    into one stride, as a projection's .view(B, T, H, D).transpose(1, 2) does."""
    B, H, T, D = t[SHAPE]
    sb, sh, ss, _ = t[STRIDES]
    for axis, (n, s) in enumerate(zip(t[SHAPE], t[STRIDES])):
        _nonneg(name, axis, n, s)
    _last_axis(t, name)
    if B == 1:
        step = ss
    elif T == 1:
        step = sb
    elif sb == T * ss:
        step = ss
    else:
        raise ValueError(
            "%s: [batch, heads, tokens, head_dim] strides %s: the batch and token axes do not "
            "form one query axis (batch stride %d != tokens %d x token stride %d). Store it "
            "token-major ([B, T, H, D], then .transpose(1, 2)), as a projection output is."
            % (name, tuple(t[STRIDES]), sb, T, ss))
    n = B * T
    hs = sh if H > 1 else D
    return fill(view, t[PTR], t[CODE], n, H, D, step if n > 1 else hs * H, hs)


def cells4(view, t, name):
    """Fill view from a 4-D [batch, heads, tokens, head_dim] key/value tensor
    as one cell axis: cell = b * row + j. Returns row (cells between batch
    rows). B = 1 is plain; B > 1 needs the batch stride to be a multiple
    (>= tokens) of the token stride without rows of different heads
    overlapping: a token-major cache [B, cap, H, D] seen as
    .transpose(1, 2)[:, :, :t] is; HF's head-major [B, H, cap, D] is not."""
    B, H, T, D = t[SHAPE]
    sb, sh, ss, _ = t[STRIDES]
    for axis, (n, s) in enumerate(zip(t[SHAPE], t[STRIDES])):
        _nonneg(name, axis, n, s)
    _last_axis(t, name)
    hs = sh if H > 1 else D
    if B == 1:
        fill(view, t[PTR], t[CODE], T, H, D, ss if T > 1 else hs * H, hs)
        return T
    tok = ss if T > 1 else sb
    row = sb // tok if tok > 0 and sb % tok == 0 else 0
    n = (B - 1) * row + T
    ok = row >= T and (H == 1 or hs >= tok * (n - 1) + D or tok >= hs * (H - 1) + D)
    if not ok:
        raise ValueError(
            "%s: a [batch=%d, heads, tokens, head_dim] tensor with strides %s cannot be one "
            "cell axis shared by the batch (libfasa decodes a batch in one call over one KV "
            "buffer): its batch rows are not a whole number of token rows apart without "
            "overlapping other heads. Keep the cache token-major ([B, capacity, H, D], pass "
            "cache[:, :t].transpose(1, 2); fasa.hf.FasaCache does), or call once per "
            "sequence yourself." % (name, B, tuple(t[STRIDES])))
    fill(view, t[PTR], t[CODE], n, H, D, tok, hs)
    return row


def new_output(kind, shape, code):
    """A new C-contiguous output of shape in the caller's library: a torch
    tensor when the inputs were torch tensors, else a numpy array (bf16 as
    uint16)."""
    if kind == "torch":
        import torch
        return torch.empty(shape, dtype=torch_dtype(code))
    return np.empty(shape, dtype=numpy_dtype(code))


def dtype_name(code):
    return _DTYPE_NAMES.get(code, str(code))
