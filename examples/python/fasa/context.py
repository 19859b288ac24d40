"""fasa_ctx wrapper, the process-wide thread default, the per-thread default
context, and the scratch every call reuses (views, descriptor, workspace).

Threads, the stated rule (and the wait policy):
  - A Context runs each call on `threads` OpenMP threads (1 = the calling
    thread only). threads=None (or 0) takes the process default:
    fasa.set_num_threads(n) if it was called, else $FASA_NUM_THREADS, else 1.
  - A count must be a positive integer. More than the CPUs this process may
    run on (os.sched_getaffinity) only oversubscribes the cores: it is
    clamped to that number with a RuntimeWarning; Context.threads tells the
    count in effect (libfasa further clamps to the CPUs online, and to 1 in a
    build without OpenMP).
  - wait: how the extra threads wait. "spin": libfasa's OpenMP team, whose
    workers spin for a while after each call (fastest when libfasa has the
    cores to itself). "block": Python threads running fasa_execute_share
    that sleep between phases and calls, so they never take a core from
    torch's or OpenBLAS's threads (measured: 2 OpenMP threads next to a
    torch matvec were 2.2x slower than 1 thread; 2 blocking threads were
    not slower). "auto" (default): "block" when torch is imported, else
    "spin".
"""
import ctypes
import os
import sys
import threading
import warnings
import weakref

import numpy as np

from ._lib import AttentionDesc, AttnParams, CtxOptions, View, Visibility, lib
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
_WS_INITIAL = 1 << 16

_default_threads = None  # set by set_num_threads; None: $FASA_NUM_THREADS, else 1
_generation = 0          # bumped by set_num_threads: default contexts are remade


def available_cpus():
    """CPUs this process may run on (its affinity mask)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _checked_threads(n, what):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError("%s: threads must be an int, got %r" % (what, n))
    n = int(n)
    if n < 0:
        raise ValueError("%s: threads must be >= 1 (0 or None: the process default), got %d"
                         % (what, n))
    cpus = available_cpus()
    if n > cpus:
        warnings.warn("%s: threads=%d clamped to %d, the CPUs this process may run on (more "
                      "threads only oversubscribe the cores)" % (what, n, cpus),
                      RuntimeWarning, stacklevel=3)
        n = cpus
    return n


def _env_threads():
    raw = os.environ.get("FASA_NUM_THREADS")
    if not raw:
        return 1
    try:
        n = int(raw)
    except ValueError:
        raise ValueError("FASA_NUM_THREADS=%r is not a positive integer" % raw) from None
    if n < 1:
        raise ValueError("FASA_NUM_THREADS=%r is not a positive integer" % raw)
    return _checked_threads(n, "FASA_NUM_THREADS")


def set_num_threads(n):
    """Process-wide default thread count of every call made without an
    explicit Context(threads=...). Clamped to the CPUs available (with a
    RuntimeWarning). With torch in the same process, see docs/bindings.md,
    "Threads": give libfasa the threads torch leaves idle."""
    global _default_threads, _generation
    n = _checked_threads(n, "fasa.set_num_threads")
    if n == 0:
        raise ValueError("fasa.set_num_threads: threads must be >= 1")
    _default_threads = n
    _generation += 1


def get_num_threads():
    """The process default thread count (set_num_threads, else
    $FASA_NUM_THREADS, else 1), before libfasa's own clamping."""
    return _default_threads if _default_threads is not None else _env_threads()


class Context:
    """A fasa_ctx: thread count, CPU level cap, last error text, and the
    scratch reused by the calls made with it (workspace, views, descriptor).

    Like the C object, one Context must be used by one thread at a time.
    Every binding call takes ctx=None, meaning a context private to the
    calling thread, so error messages are always available.
    """

    def __init__(self, threads=None, cpu_level=CPU_AUTO, wait="auto"):
        if threads is None or (not isinstance(threads, bool) and threads == 0):
            n = get_num_threads()
        else:
            n = _checked_threads(threads, "fasa.Context")
        if wait not in ("auto", "spin", "block"):
            raise ValueError("fasa.Context: wait must be 'auto', 'spin' or 'block', got %r"
                             % (wait,))
        if wait == "auto":
            wait = "block" if "torch" in sys.modules else "spin"
        # wait="block": the calls' shares run on Python threads that sleep
        # between phases and calls (fasa.host) instead of libfasa's OpenMP
        # team, whose workers spin after each call and then compete with
        # torch's / OpenBLAS's threads for the cores (docs/bindings.md).
        self.wait = wait if n > 1 else "spin"
        self.host = None
        if wait == "block" and n > 1:
            from .host import HostRunner
            self.host = HostRunner(n)
            weakref.finalize(self, self.host.close)  # the pool's threads end with the context
            n = 1
        opts = CtxOptions()
        lib.fasa_ctx_options_default(ctypes.byref(opts))
        opts.n_threads = n
        opts.cpu_level = int(cpu_level)
        handle = ctypes.c_void_p()
        check(lib.fasa_ctx_create(ctypes.byref(opts), ctypes.byref(handle)), None,
              "fasa.Context", "fasa_ctx_create")
        self._as_parameter_ = handle.value
        self._ws = None
        self._ws_ptr = 0
        self._ws_size = 0
        self._finalizer = weakref.finalize(self, lib.fasa_ctx_destroy, handle.value)
        # Scratch of the attention path: the descriptor points at these views
        # for the life of the context, so a call only refills their fields.
        self.qv, self.kv, self.vv, self.ov = View(), View(), View(), View()
        self.vis = Visibility()
        self.vis.struct_size = ctypes.sizeof(Visibility)
        self.params = AttnParams()
        self.params.struct_size = ctypes.sizeof(AttnParams)
        d = self.desc = AttentionDesc()
        d.struct_size = ctypes.sizeof(AttentionDesc)
        d.params = ctypes.pointer(self.params)
        self.extras = True  # descriptor fields beyond the common ones may be set
        from .core import Batch
        self.batch = Batch()
        d.q, d.k, d.v = ctypes.pointer(self.qv), ctypes.pointer(self.kv), ctypes.pointer(self.vv)
        self.out_ptr = ctypes.pointer(self.ov)
        self.vis_ptr = ctypes.pointer(self.vis)
        self.params_ptr = ctypes.pointer(self.params)
        self.desc_ref = ctypes.byref(d)
        self.threads_cached = lib.fasa_ctx_threads(handle.value)

    @property
    def handle(self):
        return self._as_parameter_

    @property
    def threads(self):
        """Effective thread count (1 in a build without OpenMP; the host
        threads' count with wait="block")."""
        if self.host is not None:
            return self.host.pool.n
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

    def current_workspace(self):
        """The workspace as it is (allocated once at a small size): calls try
        it first and grow it only when libfasa says it is too small."""
        if self._ws is None:
            self.workspace(_WS_INITIAL)
        return self._ws_ptr, self._ws_size

    def close(self):
        """Free the C context now (also done when garbage collected)."""
        if self.host is not None:
            self.host.close()
        self._finalizer()

    def __repr__(self):
        return "<fasa.Context threads=%d>" % self.threads


_local = threading.local()


def resolve(ctx):
    """ctx, or the calling thread's default Context (remade after
    set_num_threads)."""
    if ctx is not None:
        if not isinstance(ctx, Context):
            raise TypeError("ctx must be a fasa.Context")
        return ctx
    default = getattr(_local, "ctx", None)
    if default is None or _local.generation != _generation:
        default = _local.ctx = Context()
        _local.generation = _generation
    return default
