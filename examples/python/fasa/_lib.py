"""ctypes declarations of include/fasa.h and the loading of libfasa.

Every struct and prototype here mirrors fasa.h exactly; the wrappers in the
other modules are the only users. Kept in one place so that an ABI change is
a one-file edit.
"""
import ctypes
import ctypes.util
import os
import pathlib

# The header these declarations were written against (fasa.h 0.1.0, with the
# descriptor API: fasa_attention, plans, fasa_execute_share).
BINDINGS_VERSION = (0, 1, 0)

c_size_t = ctypes.c_size_t
c_int32 = ctypes.c_int32
c_uint32 = ctypes.c_uint32
c_status = ctypes.c_int  # fasa_status is a C enum: int-sized on every supported ABI
c_void_p = ctypes.c_void_p
c_char_p = ctypes.c_char_p
P_u32 = ctypes.POINTER(c_uint32)
P_f32 = ctypes.POINTER(ctypes.c_float)
P_size = ctypes.POINTER(c_size_t)

FASA_MAX_K_VALUES = 16


class View(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("data", c_void_p),
        ("dtype", c_int32),
        ("kind", c_int32),
        ("n_tokens", c_size_t),
        ("n_heads", c_size_t),
        ("head_dim", c_size_t),
        ("token_stride", c_size_t),
        ("head_stride", c_size_t),
    ]


class CtxOptions(ctypes.Structure):
    _fields_ = [("struct_size", c_size_t), ("n_threads", c_int32), ("cpu_level", c_int32)]


class ModelShape(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("n_layers", c_size_t),
        ("n_q_heads", c_size_t),
        ("n_kv_heads", c_size_t),
        ("head_dim", c_size_t),
        ("pair_layout", c_int32),
        ("reserved", c_int32),
    ]


class ProfileInfo(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("shape", ModelShape),
        ("n_k", c_size_t),
        ("n_steps", c_size_t),
        ("max_fc", c_size_t),
        ("has_agreement", c_uint32),
        ("selection_k", c_uint32),
    ]


class SelectOptions(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("n_fc", c_uint32),
        ("k", c_uint32),
        ("budget_hint", c_uint32),
        ("use_threshold", c_uint32),
        ("threshold_ratio", ctypes.c_float),
        ("min_fc", c_uint32),
        ("max_fc", c_uint32),
    ]


class CalibConfig(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("shape", ModelShape),
        ("n_k", c_size_t),
        ("k_values", c_uint32 * FASA_MAX_K_VALUES),
    ]


P_view = ctypes.POINTER(View)


class CalibStep(ctypes.Structure):
    _fields_ = [("layer", c_size_t), ("q", P_view), ("k", P_view)]


class Visibility(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("kind", c_int32),
        ("mask_dtype", c_int32),
        ("ranges", c_void_p),
        ("range_first", c_void_p),
        ("mask", c_void_p),
        ("mask_stride", c_size_t),
        ("mask_cells", c_size_t),
    ]


class AttnParams(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("scale", ctypes.c_float),
        ("softcap", ctypes.c_float),
        ("sinks", c_void_p),
        ("alibi_slopes", c_void_p),
        ("window", c_uint32),
        ("reserved", c_uint32),
    ]


class AttentionDesc(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("op", c_int32),
        ("mode", c_int32),
        ("q", P_view),
        ("k", P_view),
        ("v", P_view),
        ("out", P_view),
        ("lse", c_void_p),
        ("visibility", ctypes.POINTER(Visibility)),
        ("params", ctypes.POINTER(AttnParams)),
        ("profile", c_void_p),
        ("layer", c_size_t),
        ("label_cache", c_void_p),
        ("budget", ctypes.c_double),
        ("budgets", c_void_p),
        ("indices", c_void_p),
        ("index_stride", c_size_t),
        ("counts", c_void_p),
        ("scores", c_void_p),
        ("select_hints", c_void_p),
        ("n_threads", c_int32),
        ("reserved", c_int32),
    ]


class AttentionData(ctypes.Structure):
    _fields_ = [("struct_size", c_size_t)] + [(name, c_void_p) for name in (
        "q", "k", "v", "out", "lse", "mask", "ranges", "range_first", "budgets", "indices",
        "counts", "scores", "label_cache", "select_hints")]


P_desc = ctypes.POINTER(AttentionDesc)
P_data = ctypes.POINTER(AttentionData)


# name: (restype, argtypes). None restype = void.
_PROTOTYPES = {
    "fasa_version_number": (ctypes.c_uint, []),
    "fasa_version_string": (c_char_p, []),
    "fasa_status_string": (c_char_p, [c_status]),
    "fasa_status_name": (c_char_p, [c_status]),
    "fasa_view_make": (c_status, [P_view, c_void_p, c_int32, c_size_t, c_size_t, c_size_t,
                                  c_size_t, c_size_t]),
    "fasa_view_validate": (c_status, [c_void_p, P_view]),
    "fasa_ctx_options_default": (None, [ctypes.POINTER(CtxOptions)]),
    "fasa_ctx_create": (c_status, [ctypes.POINTER(CtxOptions), ctypes.POINTER(c_void_p)]),
    "fasa_ctx_destroy": (None, [c_void_p]),
    "fasa_ctx_last_error": (c_char_p, [c_void_p]),
    "fasa_ctx_threads": (ctypes.c_int, [c_void_p]),
    "fasa_cpu_features": (c_uint32, []),
    "fasa_cpu_best_level": (ctypes.c_int, []),
    "fasa_kernel_name": (c_char_p, [c_char_p, ctypes.c_int]),
    "fasa_profile_create": (c_status, [ctypes.POINTER(ModelShape), P_u32, c_size_t, P_u32,
                                       ctypes.POINTER(c_void_p)]),
    "fasa_profile_destroy": (None, [c_void_p]),
    "fasa_profile_clone": (c_status, [c_void_p, ctypes.POINTER(c_void_p)]),
    "fasa_profile_get_info": (c_status, [c_void_p, ctypes.POINTER(ProfileInfo)]),
    "fasa_profile_get_k_values": (c_status, [c_void_p, P_u32, c_size_t]),
    "fasa_profile_get_agreement": (c_status, [c_void_p, c_size_t, c_size_t, P_f32, c_size_t]),
    "fasa_profile_get_fcs": (c_status, [c_void_p, c_size_t, ctypes.c_int, c_size_t, P_u32,
                                        c_size_t, P_size]),
    "fasa_profile_get_dense_layer": (c_status, [c_void_p, c_size_t, ctypes.POINTER(ctypes.c_int)]),
    "fasa_profile_set_dense_layer": (c_status, [c_void_p, c_size_t, ctypes.c_int]),
    "fasa_select_options_default": (None, [ctypes.POINTER(SelectOptions)]),
    "fasa_profile_select": (c_status, [c_void_p, ctypes.POINTER(SelectOptions)]),
    "fasa_profile_save": (c_status, [c_void_p, c_char_p]),
    "fasa_profile_save_buffer": (c_status, [c_void_p, c_void_p, c_size_t, P_size]),
    "fasa_profile_load": (c_status, [c_char_p, ctypes.POINTER(c_void_p)]),
    "fasa_profile_load_buffer": (c_status, [c_void_p, c_size_t, ctypes.POINTER(c_void_p)]),
    "fasa_profile_describe": (c_status, [c_void_p, c_void_p, c_size_t, P_size]),
    "fasa_calibrator_create": (c_status, [ctypes.POINTER(CalibConfig), ctypes.POINTER(c_void_p)]),
    "fasa_calibrator_destroy": (None, [c_void_p]),
    "fasa_calibrator_add_step": (c_status, [c_void_p, c_void_p, c_size_t, P_view, P_view]),
    "fasa_calibrator_finish": (c_status, [c_void_p, ctypes.POINTER(SelectOptions),
                                          ctypes.POINTER(c_void_p)]),
    "fasa_calibrate": (c_status, [ctypes.POINTER(CalibConfig), ctypes.POINTER(CalibStep),
                                  c_size_t, ctypes.POINTER(SelectOptions),
                                  ctypes.POINTER(c_void_p)]),
    "fasa_label_cache_size": (c_status, [c_void_p, c_size_t, ctypes.c_int, ctypes.c_int,
                                         c_size_t, P_size]),
    "fasa_label_cache_init": (c_status, [c_void_p, c_size_t, c_void_p, c_size_t, ctypes.c_int,
                                         ctypes.c_int, c_size_t, ctypes.POINTER(c_void_p)]),
    "fasa_label_cache_append": (c_status, [c_void_p, P_view]),
    "fasa_label_cache_build": (c_status, [c_void_p, P_view]),
    "fasa_label_cache_tokens": (c_status, [c_void_p, P_size]),
    "fasa_label_cache_reset": (c_status, [c_void_p]),
    "fasa_predict_max_selected": (c_status, [ctypes.c_double, c_size_t, P_size]),
    "fasa_predict_workspace_size": (c_status, [c_void_p, c_void_p, P_view, c_size_t,
                                               ctypes.c_int, P_size]),
    "fasa_predict": (c_status, [c_void_p, c_void_p, c_size_t, ctypes.c_int, P_view, P_view,
                                ctypes.c_double, P_u32, c_size_t, P_u32, P_f32, c_void_p,
                                c_size_t]),
    "fasa_predict_cached": (c_status, [c_void_p, c_void_p, c_size_t, ctypes.c_int, P_view,
                                       c_void_p, ctypes.c_double, P_u32, c_size_t, P_u32, P_f32,
                                       c_void_p, c_size_t]),
    "fasa_attend_workspace_size": (c_status, [c_void_p, P_view, P_view, P_view, ctypes.c_int,
                                              c_size_t, P_size]),
    "fasa_attend": (c_status, [c_void_p, ctypes.c_int, P_view, P_view, P_view, P_u32, c_size_t,
                               P_u32, ctypes.c_float, P_view, P_f32, c_void_p, c_size_t]),
    "fasa_attend_dense_workspace_size": (c_status, [c_void_p, P_view, P_view, P_view, P_size]),
    "fasa_attend_dense": (c_status, [c_void_p, P_view, P_view, P_view, ctypes.c_float, P_view,
                                     P_f32, c_void_p, c_size_t]),
    "fasa_decode_step_workspace_size": (c_status, [c_void_p, c_void_p, P_view, P_view, P_view,
                                                   ctypes.c_int, ctypes.c_double, P_size]),
    "fasa_decode_step": (c_status, [c_void_p, c_void_p, c_size_t, ctypes.c_int, P_view, P_view,
                                    P_view, c_void_p, ctypes.c_double, ctypes.c_float, P_view,
                                    P_f32, c_void_p, c_size_t]),
    "fasa_attention_workspace_size": (c_status, [c_void_p, P_desc, P_size]),
    "fasa_attention": (c_status, [c_void_p, P_desc, c_void_p, c_size_t]),
    "fasa_plan_size": (c_status, [P_size]),
    "fasa_plan_init": (c_status, [c_void_p, P_desc, c_void_p, c_size_t,
                                  ctypes.POINTER(c_void_p)]),
    "fasa_plan_workspace_size": (c_status, [c_void_p, P_size]),
    "fasa_plan_phases": (c_status, [c_void_p, ctypes.POINTER(c_uint32)]),
    "fasa_execute": (c_status, [c_void_p, c_void_p, P_data, c_void_p, c_size_t]),
    "fasa_execute_check": (c_status, [c_void_p, c_void_p, P_data, c_void_p, c_size_t]),
    "fasa_execute_share": (c_status, [c_void_p, P_data, c_void_p, c_uint32, c_uint32,
                                      c_uint32]),
}


def _bundled_library():
    # a wheel built by `make python-wheel` carries libfasa.so.N next to this file
    here = pathlib.Path(__file__).resolve().parent
    for name in ("libfasa.so.%d" % BINDINGS_VERSION[0], "libfasa.so"):
        if (here / name).exists():
            return str(here / name)
    return None


def _repo_build_library():
    # examples/python/fasa/_lib.py -> <repo>/build/libfasa.so when run from the repo
    root = pathlib.Path(__file__).resolve().parent.parent.parent.parent
    cand = root / "build" / "libfasa.so"
    if cand.exists() and (root / "include" / "fasa.h").exists():
        return str(cand)
    return None


# `make install` puts the library in $(PREFIX)/lib, /usr/local/lib by default;
# the dynamic loader finds it there only once ldconfig has run, so these are
# tried by full path after the loader's own search.
_PREFIX_DIRS = ("/usr/local/lib", "/usr/lib", "/usr/local/lib64", "/usr/lib64")


def candidates():
    """Where libfasa is looked for, in order: $FASA_LIBRARY (an explicit
    override, never needed), the copy bundled next to this package (wheel),
    the repository's build/ (when imported from the source tree), the
    system loader (ld.so.cache, LD_LIBRARY_PATH), then the install prefixes."""
    env = os.environ.get("FASA_LIBRARY")
    if env:
        return [env]
    out = [p for p in (_bundled_library(), _repo_build_library()) if p]
    soname = "libfasa.so.%d" % BINDINGS_VERSION[0]
    out.append(soname)
    found = ctypes.util.find_library("fasa")
    if found and found != soname:
        out.append(found)
    out += [os.path.join(d, soname) for d in _PREFIX_DIRS]
    return out


def find_library():
    """The first candidate (kept for callers that only want a path)."""
    return candidates()[0]


def _declare(lib, path):
    missing = []
    for name, (restype, argtypes) in _PROTOTYPES.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            missing.append(name)
            continue
        fn.restype = restype
        fn.argtypes = argtypes
    if missing:
        raise ImportError("fasa: %s lacks %s (an older libfasa? rebuild it with `make lib`)"
                          % (path, ", ".join(missing)))
    number = lib.fasa_version_number()
    if number // 10000 != BINDINGS_VERSION[0]:
        raise ImportError("fasa: %s is version %d.%d.%d; these bindings need major %d"
                          % (path, number // 10000, number // 100 % 100, number % 100,
                             BINDINGS_VERSION[0]))
    lib._fasa_path = path
    return lib


def load(path=None):
    """Load libfasa, declare every prototype and check the major version."""
    paths = [path] if path else candidates()
    errors = []
    for p in paths:
        try:
            lib = ctypes.CDLL(p)
        except OSError as e:
            errors.append("%s: %s" % (p, e))
            continue
        return _declare(lib, p)
    raise ImportError("fasa: cannot load libfasa; tried:\n  " + "\n  ".join(errors) +
                      "\nInstall the wheel from `make python-wheel`, or `make install` "
                      "(then `ldconfig`), or set FASA_LIBRARY to the library's full path.")


lib = load()
