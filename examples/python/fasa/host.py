"""Running a call on Python threads instead of libfasa's OpenMP team
(fasa_plan_init + fasa_execute_share, the host-thread path of fasa.h).

Why it exists: OpenMP workers spin for a while after each call, and on a
machine whose cores torch (or OpenBLAS) also uses, the spinning competes
with the framework's own threads. These threads block instead (they sleep
in a threading.Barrier between calls and phases), so they never take a core
from anyone. The cost is the barrier: a few tens of microseconds per phase
under the GIL (ctypes releases the GIL during each share), which only pays
off for calls of a millisecond or more (long contexts). docs/bindings.md,
"Threads", has the measurements.

    ctx = fasa.Context(threads=2, wait="block")   # the default when torch is loaded
"""
import ctypes
import threading

import numpy as np

from ._lib import AttentionData, lib
from .errors import check

_ERR = {}


class HostPool:
    """n - 1 worker threads plus the caller, running the shares of one plan
    phase by phase. One call at a time (it belongs to one Context)."""

    def __init__(self, n):
        self.n = int(n)
        self.barrier = threading.Barrier(self.n)
        self.job = None
        self.errors = [0] * self.n
        self.workers = []
        self.closed = False
        for ith in range(1, self.n):
            th = threading.Thread(target=self._worker, args=(ith,), daemon=True,
                                  name="fasa-host-%d" % ith)
            th.start()
            self.workers.append(th)

    def _shares(self, ith):
        plan, data, ws, phases = self.job
        for ph in range(phases):
            st = lib.fasa_execute_share(plan, data, ws, ph, ith, self.n)
            if st:
                self.errors[ith] = st
            self.barrier.wait()

    def _worker(self, ith):
        while True:
            self.barrier.wait()  # a job is posted
            if self.closed:
                return
            self._shares(ith)

    def run(self, plan, data, ws, phases):
        self.job = (plan, data, ws, phases)
        self.errors = [0] * self.n
        self.barrier.wait()
        self._shares(0)
        self.job = None
        return max(self.errors)

    def close(self):
        if not self.closed and self.workers:
            self.closed = True
            self.barrier.wait()


class HostRunner:
    """Plan memory, data struct and pool of one Context."""

    def __init__(self, n):
        self.pool = HostPool(n)
        size = ctypes.c_size_t()
        lib.fasa_plan_size(ctypes.byref(size))
        self.plan_mem = np.empty(size.value, np.uint8)
        self.plan = ctypes.c_void_p()
        self.data = AttentionData()
        self.data.struct_size = ctypes.sizeof(AttentionData)
        self.phases = ctypes.c_uint32()

    def execute(self, ctx, function):
        d = ctx.desc
        d.n_threads = self.pool.n
        try:
            check(lib.fasa_plan_init(ctx, ctx.desc_ref, self.plan_mem.ctypes.data,
                                     self.plan_mem.size, ctypes.byref(self.plan)), ctx,
                  function, "fasa_plan_init")
        finally:
            d.n_threads = 0
        need = ctypes.c_size_t()
        lib.fasa_plan_workspace_size(self.plan, ctypes.byref(need))
        ws, size = ctx.workspace(need.value)
        check(lib.fasa_execute_check(ctx, self.plan, None, ws, size), ctx, function,
              "fasa_execute_check")
        lib.fasa_plan_phases(self.plan, ctypes.byref(self.phases))
        st = self.pool.run(self.plan, None, ws, self.phases.value)
        check(st, None, function, "fasa_execute_share")

    def close(self):
        self.pool.close()
