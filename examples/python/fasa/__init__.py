"""fasa: Python bindings (ctypes) for libfasa, Frequency-Aware Sparse
Attention on CPU.

Tensors are numpy arrays, torch CPU tensors (float32, float16, bfloat16) or
DLPack objects, passed to C in place (never copied): [tokens, heads,
head_dim] for one sequence, or [batch, heads, tokens, head_dim] (torch SDPA /
Hugging Face) for a batch decoded in one call. bf16 numpy data is a uint16
array with dtype='bf16'. Errors raise FasaError naming your call and its
argument.

    import fasa
    prof = fasa.Profile.load("model.fasa").for_budget(256)
    cache = fasa.LabelCache(prof, layer, capacity=4096)       # one per layer
    cache.append(k_new)                                       # each step
    out = fasa.decode_step(prof, layer, q, k, v, 256, layout=fasa.PAIRS_HALF,
                           cache=cache)

Hugging Face models: fasa.hf.attach(model, profile, budget). The library is
found next to this package (wheel), in the repository's build/, or through
the system loader; see docs/bindings.md.
"""
from ._lib import BINDINGS_VERSION, lib as _clib
from .context import (CPU_AUTO, CPU_AVX2, CPU_AVX512, CPU_AVX512_BF16, CPU_NEON, CPU_SCALAR,
                      Context, available_cpus, get_num_threads, set_num_threads)
from .core import PerformanceWarning, attention
from .prepared import DecodeLayer
from .errors import FasaError, Status, status_name, status_string
from .label_cache import LabelCache
from .ops import (Selection, attend, attend_dense, decode_step, max_selected, predict,
                  predict_cached)
from .profile import (GROUP_SHARED, PAIRS_ADJACENT, PAIRS_HALF, PAIRS_INTERLEAVED, PER_HEAD,
                      Calibrator, HFConfig, Info, Profile, Shape, read_hf_config,
                      select_defaults)
from .views import DTYPE_BF16, DTYPE_F16, DTYPE_F32, as_view, validate_view
from . import hf  # noqa: F401,E402  (fasa.hf; torch is imported only when used)

__version__ = "%d.%d.%d" % BINDINGS_VERSION

CPU_FEATURES = {
    "avx2": 1 << 0,
    "avx512": 1 << 1,
    "avx512bf16": 1 << 2,
    "neon": 1 << 3,
    "neon_fp16": 1 << 4,
    "neon_bf16": 1 << 5,
}


def version():
    """Version string of the loaded libfasa, e.g. '0.1.0'."""
    return _clib.fasa_version_string().decode()


def version_number():
    """fasa_version_number() of the loaded library (M*10000 + m*100 + p)."""
    return _clib.fasa_version_number()


def library_path():
    """Where the loaded libfasa was found."""
    return _clib._fasa_path


def cpu_features():
    """Names of the CPU features libfasa detected (after the FASA_CPU cap)."""
    mask = _clib.fasa_cpu_features()
    return sorted(name for name, bit in CPU_FEATURES.items() if mask & bit)


def cpu_best_level():
    """Highest kernel level usable by default (a CPU_* constant)."""
    return _clib.fasa_cpu_best_level()


def kernel_name(op, cpu_level=CPU_AUTO):
    """Kernel libfasa picks for internal op `op` at a level; None if unknown."""
    name = _clib.fasa_kernel_name(op.encode(), int(cpu_level))
    return None if name is None else name.decode()


__all__ = [
    "BINDINGS_VERSION", "Context", "set_num_threads", "get_num_threads", "available_cpus",
    "attention", "PerformanceWarning", "DecodeLayer", "HFConfig", "read_hf_config", "FasaError",
    "Status", "status_name", "status_string", "LabelCache", "Selection", "attend",
    "attend_dense", "decode_step", "max_selected", "predict", "predict_cached", "Calibrator",
    "Info", "Profile", "Shape", "select_defaults", "as_view", "validate_view", "version",
    "version_number", "library_path", "cpu_features", "cpu_best_level", "kernel_name",
    "CPU_AUTO", "CPU_SCALAR", "CPU_AVX2", "CPU_AVX512", "CPU_AVX512_BF16", "CPU_NEON",
    "PER_HEAD", "GROUP_SHARED", "PAIRS_INTERLEAVED", "PAIRS_HALF", "PAIRS_ADJACENT",
    "DTYPE_F32", "DTYPE_F16", "DTYPE_BF16",
]
