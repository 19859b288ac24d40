"""fasa_label_cache living in a numpy byte buffer owned by the binding.

Every C call goes through LabelCache._call (argument k turned into a view
the same way attention calls do it, errors named after the Python method),
so the cell-addressed calls being added to the C library (write at a cell,
clear, truncate, copy/fork, move, shift by a RoPE delta) become one short
method each.
"""
import ctypes

import numpy as np

from ._lib import View, lib
from .errors import check
from .profile import PER_HEAD
from .tensors import SHAPE, cells4, inspect, parse_dtype, view3

_MODES = {PER_HEAD: "PER_HEAD", 1: "GROUP_SHARED"}


class LabelCache:
    """The dominant key dims of one layer, laid out for fast TIP
    (fasa_label_cache): with it a decode step scores 16 of 128 dims of each
    key from a compact tile layout instead of gathering them from the KV
    cache (about 5x faster than scoring from k at 64k). The cache lives in
    self.buffer (a numpy uint8 array) and copies the FC sets it needs, so it
    does not depend on the profile staying alive. One thread at a time
    (predict_cached and decode steps update its threshold memo).

    LabelCache(profile, layer, capacity, mode=PER_HEAD, dtype='f32')
    """

    def __init__(self, profile, layer, capacity, mode=PER_HEAD, dtype="f32"):
        self.layer = int(layer)
        self.mode = int(mode)
        self.dtype = parse_dtype(dtype)
        self.capacity = int(capacity)
        nbytes = ctypes.c_size_t()
        self._call("fasa.LabelCache", "fasa_label_cache_size", profile, self.layer, self.mode,
                   self.dtype, self.capacity, ctypes.byref(nbytes))
        self.buffer = np.zeros(max(nbytes.value, 1), dtype=np.uint8)
        handle = ctypes.c_void_p()
        self._call("fasa.LabelCache", "fasa_label_cache_init", self.buffer.ctypes.data,
                   nbytes.value, profile, self.layer, self.mode, self.dtype, self.capacity,
                   ctypes.byref(handle))
        self._as_parameter_ = handle.value
        self._kv = View()

    @staticmethod
    def _call(function, c_name, *args):
        check(getattr(lib, c_name)(*args), None, function, c_name)

    def _keys(self, k, dtype, function):
        """fasa_view of the keys to add: [n, Hkv, d] or [1, Hkv, n, d]."""
        t = inspect(k, "k", dtype)
        if len(t[SHAPE]) == 4:
            if t[SHAPE][0] != 1:
                raise ValueError("%s: k has batch %d: a label cache follows the cells of one "
                                 "KV buffer; batches need the cell-addressed calls"
                                 % (function, t[SHAPE][0]))
            cells4(self._kv, t, "k")
        else:
            view3(self._kv, t, "k")
        return ctypes.byref(self._kv), t

    def append(self, k, dtype=None):
        """Append the keys of new tokens: k [n, Hkv, head_dim] (or a
        [1, Hkv, n, head_dim] tensor)."""
        kv, keep = self._keys(k, dtype, "fasa.LabelCache.append")
        self._call("fasa.LabelCache.append", "fasa_label_cache_append", self, kv)

    def build(self, k, dtype=None):
        """Reset and fill from all tokens of k [t, Hkv, head_dim]."""
        kv, keep = self._keys(k, dtype, "fasa.LabelCache.build")
        self._call("fasa.LabelCache.build", "fasa_label_cache_build", self, kv)

    @property
    def tokens(self):
        """Number of tokens held."""
        n = ctypes.c_size_t()
        self._call("fasa.LabelCache.tokens", "fasa_label_cache_tokens", self, ctypes.byref(n))
        return n.value

    def __len__(self):
        return self.tokens

    def reset(self):
        """Drop all tokens (keeps the configuration)."""
        self._call("fasa.LabelCache.reset", "fasa_label_cache_reset", self)

    def __repr__(self):
        return "<fasa.LabelCache layer=%d mode=%s tokens=%d capacity=%d>" % (
            self.layer, _MODES.get(self.mode, self.mode), self.tokens, self.capacity)
