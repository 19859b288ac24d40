"""fasa_ctx wrapper, the per-thread default context and workspace caching."""
import ctypes
import threading
import weakref

import numpy as np

from ._lib import CtxOptions, lib
from .errors import check

CPU_AUTO = -1
CPU_SCALAR = 0
CPU_AVX2 = 1
CPU_AVX512 = 2
CPU_AVX512_BF16 = 3
CPU_NEON = 4

# Workspaces are handed out 64-byte aligned: SIMD kernels may want it and it
# costs at most 63 bytes.
_WS_ALIGN = 64


class Context:
    """A fasa_ctx: thread count, CPU level cap, last error text, and a cached
    workspace buffer reused by the calls made with it.

    Like the C object, one Context must be used by one thread at a time.
    Every binding call takes ctx=None, meaning a context private to the
    calling thread, so error messages are always available.
    """

    def __init__(self, threads=1, cpu_level=CPU_AUTO):
        opts = CtxOptions()
        lib.fasa_ctx_options_default(ctypes.byref(opts))
        opts.n_threads = int(threads)
        opts.cpu_level = int(cpu_level)
        handle = ctypes.c_void_p()
        check(lib.fasa_ctx_create(ctypes.byref(opts), ctypes.byref(handle)), None,
              "fasa_ctx_create")
        self._as_parameter_ = handle.value
        self._ws = None
        self._finalizer = weakref.finalize(self, lib.fasa_ctx_destroy, handle.value)

    @property
    def handle(self):
        return self._as_parameter_

    @property
    def threads(self):
        """Effective thread count (1 in a build without OpenMP)."""
        return lib.fasa_ctx_threads(self._as_parameter_)

    @property
    def last_error(self):
        """Detail of the last failed call made with this context ('' if none)."""
        return lib.fasa_ctx_last_error(self._as_parameter_).decode(errors="replace")

    def workspace(self, nbytes):
        """(pointer, size) of a scratch block of at least nbytes, 64-byte
        aligned, owned by this context and grown on demand."""
        nbytes = max(int(nbytes), 1)
        if self._ws is None or self._ws_size < nbytes:
            self._ws = np.empty(nbytes + _WS_ALIGN, dtype=np.uint8)
            base = self._ws.ctypes.data
            self._ws_ptr = (base + _WS_ALIGN - 1) // _WS_ALIGN * _WS_ALIGN
            self._ws_size = nbytes + _WS_ALIGN - (self._ws_ptr - base)
        return self._ws_ptr, self._ws_size

    def close(self):
        """Free the C context now (also done when garbage collected)."""
        self._finalizer()


_local = threading.local()


def resolve(ctx):
    """ctx, or the calling thread's default Context."""
    if ctx is not None:
        if not isinstance(ctx, Context):
            raise TypeError("ctx must be a fasa.Context")
        return ctx
    default = getattr(_local, "ctx", None)
    if default is None:
        default = _local.ctx = Context()
    return default
