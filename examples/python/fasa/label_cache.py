"""fasa_label_cache living in a numpy byte buffer owned by the binding."""
import ctypes

import numpy as np

from ._lib import lib
from .errors import check
from .profile import PER_HEAD
from .views import input_view, parse_dtype


class LabelCache:
    """The dominant key dims of one layer, laid out for fast TIP
    (fasa_label_cache). The cache lives in self.buffer (a numpy uint8
    array) and copies the FC sets it needs, so it does not depend on the
    profile staying alive. One thread at a time (predict_cached updates it).

    LabelCache(profile, layer, capacity, mode=PER_HEAD, dtype='f32')
    """

    def __init__(self, profile, layer, capacity, mode=PER_HEAD, dtype="f32"):
        self.layer = int(layer)
        self.mode = int(mode)
        self.dtype = parse_dtype(dtype)
        self.capacity = int(capacity)
        nbytes = ctypes.c_size_t()
        check(lib.fasa_label_cache_size(profile, self.layer, self.mode, self.dtype,
                                        self.capacity, ctypes.byref(nbytes)), None,
              "fasa_label_cache_size")
        self.buffer = np.zeros(max(nbytes.value, 1), dtype=np.uint8)
        handle = ctypes.c_void_p()
        check(lib.fasa_label_cache_init(self.buffer.ctypes.data, nbytes.value, profile,
                                        self.layer, self.mode, self.dtype, self.capacity,
                                        ctypes.byref(handle)), None, "fasa_label_cache_init")
        self._as_parameter_ = handle.value

    def append(self, k, dtype=None):
        """Append the keys of new tokens: k [n, Hkv, head_dim]."""
        kv = input_view(k, dtype, "k")
        check(lib.fasa_label_cache_append(self, ctypes.byref(kv)), None,
              "fasa_label_cache_append")

    def build(self, k, dtype=None):
        """Reset and fill from all tokens of k [t, Hkv, head_dim]."""
        kv = input_view(k, dtype, "k")
        check(lib.fasa_label_cache_build(self, ctypes.byref(kv)), None, "fasa_label_cache_build")

    @property
    def tokens(self):
        """Number of tokens held."""
        n = ctypes.c_size_t()
        check(lib.fasa_label_cache_tokens(self, ctypes.byref(n)), None, "fasa_label_cache_tokens")
        return n.value

    def __len__(self):
        return self.tokens

    def reset(self):
        """Drop all tokens (keeps the configuration)."""
        check(lib.fasa_label_cache_reset(self), None, "fasa_label_cache_reset")
