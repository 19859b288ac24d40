"""ctypes declarations of include/fasa.h and the loading of libfasa.

Every struct and prototype here mirrors fasa.h exactly; the wrappers in the
other modules are the only users. Kept in one place so that an ABI change is
a one-file edit.
"""
import ctypes
import ctypes.util
import os
import pathlib

# The header these declarations were written against (fasa.h 0.1.0).
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
}


def _repo_build_library():
    # examples/python/fasa/_lib.py -> <repo>/build/libfasa.so when run from the repo
    root = pathlib.Path(__file__).resolve().parent.parent.parent.parent
    cand = root / "build" / "libfasa.so"
    if cand.exists() and (root / "include" / "fasa.h").exists():
        return str(cand)
    return None


def find_library():
    """Path or soname of the libfasa to load: $FASA_LIBRARY, the repo build
    tree, then the system loader."""
    env = os.environ.get("FASA_LIBRARY")
    if env:
        return env
    built = _repo_build_library()
    if built:
        return built
    return ctypes.util.find_library("fasa") or "libfasa.so.%d" % BINDINGS_VERSION[0]


def load(path=None):
    """Load libfasa, declare every prototype and check the major version."""
    path = path or find_library()
    try:
        lib = ctypes.CDLL(path)
    except OSError as e:
        raise ImportError("fasa: cannot load libfasa from %r (set FASA_LIBRARY to its full "
                          "path): %s" % (path, e)) from e
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
        raise ImportError("fasa: %s lacks %s" % (path, ", ".join(missing)))
    number = lib.fasa_version_number()
    if number // 10000 != BINDINGS_VERSION[0]:
        raise ImportError("fasa: %s is version %d.%d.%d; these bindings need major %d"
                          % (path, number // 10000, number // 100 % 100, number % 100,
                             BINDINGS_VERSION[0]))
    lib._fasa_path = path
    return lib


lib = load()
