"""fasa_profile and fasa_calibrator wrappers."""
import collections
import ctypes
import os
import weakref

import numpy as np

from ._lib import (FASA_MAX_K_VALUES, CalibConfig, CalibStep, ModelShape, ProfileInfo,
                   SelectOptions, lib)
from . import context as _context
from .errors import check
from .views import input_view

PAIRS_INTERLEAVED = 0
PAIRS_HALF = 1
PAIRS_ADJACENT = 2

PER_HEAD = 0
GROUP_SHARED = 1

_LAYOUTS = {PAIRS_INTERLEAVED: "PAIRS_INTERLEAVED", PAIRS_HALF: "PAIRS_HALF",
            PAIRS_ADJACENT: "PAIRS_ADJACENT"}

# model_type of Hugging Face configs -> the RoPE pair layout of its q/k
# tensors. transformers applies rotate_half (dims j, j + d/2) for these...
_HF_HALF = frozenset((
    "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma",
    "gemma2", "gemma3_text", "phi3", "olmo", "olmo2", "granite", "starcoder2", "gpt_neox",
    "stablelm", "persimmon", "cohere", "internlm2", "yi", "deepseek", "llama4_text"))
# ... and rotate_every_two (dims 2j, 2j + 1) for these.
_HF_INTERLEAVED = frozenset(("gptj", "codegen"))


class Shape(collections.namedtuple("Shape",
                                   "n_layers n_q_heads n_kv_heads head_dim pair_layout")):
    """Model shape of a profile (fasa_model_shape). pair_layout has no
    default: it is the RoPE layout of the model's q/k tensors, and a wrong
    one is not an error anywhere, only a much worse perplexity."""
    __slots__ = ()

    @classmethod
    def from_hf_config(cls, config, layout=None):
        """Shape of a Hugging Face config (a PretrainedConfig, a dict or a
        path to config.json): num_hidden_layers, num_attention_heads,
        num_key_value_heads, head_dim, and the pair layout of its model_type
        (PAIRS_HALF for rotate-half models such as Llama, Mistral, Qwen2,
        Gemma; PAIRS_INTERLEAVED for GPT-J style). layout= overrides the
        table for model types it does not know."""
        return read_hf_config(config, layout).shape


HFConfig = collections.namedtuple("HFConfig", "shape rope_theta max_positions model_type")
HFConfig.__doc__ = "What libfasa needs from a Hugging Face config (read_hf_config)."


def _cfg_get(config, name, default=None):
    if isinstance(config, dict):
        return config.get(name, default)
    return getattr(config, name, default)


def read_hf_config(config, layout=None):
    """HFConfig(shape, rope_theta, max_positions, model_type) of a Hugging
    Face config (object, dict or path to config.json). Raises ValueError for
    what a profile cannot describe: partial rotary embeddings, an unknown
    model_type without layout=."""
    if isinstance(config, (str, os.PathLike)):
        import json
        path = os.fspath(config)
        if os.path.isdir(path):
            path = os.path.join(path, "config.json")
        with open(path) as f:
            config = json.load(f)
    text = _cfg_get(config, "text_config")
    if text is not None and _cfg_get(config, "num_hidden_layers") is None:
        config = text
    model_type = _cfg_get(config, "model_type", "") or ""
    n_layers = _cfg_get(config, "num_hidden_layers")
    hq = _cfg_get(config, "num_attention_heads")
    if not n_layers or not hq:
        raise ValueError("HF config: num_hidden_layers and num_attention_heads are required")
    hkv = _cfg_get(config, "num_key_value_heads") or hq
    hd = _cfg_get(config, "head_dim") or _cfg_get(config, "hidden_size") // hq
    partial = _cfg_get(config, "partial_rotary_factor", _cfg_get(config, "rotary_pct", 1.0))
    if partial is not None and float(partial) != 1.0:
        raise ValueError("HF config (%s): partial rotary embeddings (factor %s): only part of "
                         "head_dim is rotated, which no pair layout describes"
                         % (model_type, partial))
    rope = _cfg_get(config, "rope_parameters") or {}
    theta = _cfg_get(config, "rope_theta") or (rope.get("rope_theta") if isinstance(rope, dict)
                                               else None) or 10000.0
    if layout is None:
        if model_type in _HF_HALF:
            layout = PAIRS_HALF
        elif model_type in _HF_INTERLEAVED:
            layout = PAIRS_INTERLEAVED
        else:
            raise ValueError(
                "HF config: model_type %r is not in fasa's table of RoPE layouts: pass "
                "layout=fasa.PAIRS_HALF if its attention uses rotate_half (dims j, j+d/2), "
                "fasa.PAIRS_INTERLEAVED if it rotates dims (2j, 2j+1)" % model_type)
    shape = Shape(int(n_layers), int(hq), int(hkv), int(hd), int(layout))
    return HFConfig(shape, float(theta), _cfg_get(config, "max_position_embeddings"),
                    model_type)

Info = collections.namedtuple(
    "Info", "shape n_k n_steps max_fc has_agreement selection_k")
Info.__doc__ = "fasa_profile_info as a tuple; shape is a Shape."

_SELECT_FIELDS = ("n_fc", "k", "budget_hint", "use_threshold", "threshold_ratio", "min_fc",
                  "max_fc")


def _c_shape(shape):
    if len(shape) != 5:
        raise TypeError("shape: (n_layers, n_q_heads, n_kv_heads, head_dim, pair_layout) with "
                        "pair_layout stated (fasa.PAIRS_HALF for Hugging Face rotate-half "
                        "models, PAIRS_INTERLEAVED for Meta/GGUF): got %r" % (tuple(shape),))
    shape = Shape(*shape)
    if int(shape.pair_layout) not in _LAYOUTS:
        raise ValueError("shape: unknown pair_layout %r" % (shape.pair_layout,))
    s = ModelShape()
    s.struct_size = ctypes.sizeof(ModelShape)
    s.n_layers, s.n_q_heads, s.n_kv_heads, s.head_dim = (int(x) for x in shape[:4])
    s.pair_layout = int(shape.pair_layout)
    s.reserved = 0
    return s


def select_options(**kwargs):
    """fasa_select_options: the library defaults, overridden by kwargs
    (n_fc, k, budget_hint, use_threshold, threshold_ratio, min_fc, max_fc)."""
    opts = SelectOptions()
    lib.fasa_select_options_default(ctypes.byref(opts))
    opts.struct_size = ctypes.sizeof(SelectOptions)
    for key, value in kwargs.items():
        if key not in _SELECT_FIELDS:
            raise TypeError("unknown selection option %r (known: %s)"
                            % (key, ", ".join(_SELECT_FIELDS)))
        setattr(opts, key, value)
    return opts


def select_defaults():
    """The library's default selection options as a dict."""
    opts = select_options()
    return {k: getattr(opts, k) for k in _SELECT_FIELDS}


def _calib_config(shape, k_values):
    cfg = CalibConfig()
    cfg.struct_size = ctypes.sizeof(CalibConfig)
    cfg.shape = _c_shape(shape)
    ks = [] if k_values is None else [int(k) for k in k_values]
    if len(ks) > FASA_MAX_K_VALUES:
        raise ValueError("at most %d K values" % FASA_MAX_K_VALUES)
    cfg.n_k = len(ks)
    for i, k in enumerate(ks):
        cfg.k_values[i] = k
    return cfg


def _path(path):
    return os.fsencode(path)


class Profile:
    """A calibrated (or hand-written) FASA profile: model shape, K values,
    agreement [layers][K][Hq][d/2], dominant FC sets and dense layers.

    Create with Profile.from_fcs, Profile.calibrate, Calibrator.finish,
    Profile.load or Profile.from_bytes. Reading methods may be called from
    several threads at once; select() and set_dense() must not race with
    anything else (the C contract). The C object is freed when the Profile
    is garbage collected (or by close()).
    """

    def __init__(self, handle):
        if not handle:
            raise ValueError("null profile handle")
        self._as_parameter_ = handle
        self._finalizer = weakref.finalize(self, lib.fasa_profile_destroy, handle)
        # The shape never changes; dense flags change only through set_dense.
        self._shape = self.info.shape
        self._dense = {}

    @staticmethod
    def _new(fn, *args, name, function=None):
        out = ctypes.c_void_p()
        check(fn(*args, ctypes.byref(out)), None, function or name, name)
        return Profile(out.value)

    # ---------------------------------------------------------- creation
    @classmethod
    def from_fcs(cls, fcs, n_kv_heads, head_dim, pair_layout=None, group_fcs=None):
        """Profile from FC lists: fcs [n_layers, n_q_heads, n_fc] (FC indices <
        head_dim/2); pair_layout (required): which head dims form FC f in the
        tensors this profile will score (PAIRS_HALF for Hugging Face models);
        group_fcs optional [n_layers, n_kv_heads, n_fc] (None: derived by
        vote). No agreement data; dense layers default to {0}."""
        if pair_layout is None:
            raise TypeError("Profile.from_fcs: pair_layout is required: the RoPE pair layout "
                            "of the model's q/k (fasa.PAIRS_HALF for Hugging Face rotate-half "
                            "models, fasa.PAIRS_INTERLEAVED for Meta/GGUF; "
                            "fasa.Shape.from_hf_config(config).pair_layout tells)")
        fcs = np.ascontiguousarray(fcs, dtype=np.uint32)
        if fcs.ndim != 3:
            raise ValueError("fcs: expected [n_layers, n_q_heads, n_fc], got %s" % (fcs.shape,))
        shape = _c_shape(Shape(fcs.shape[0], fcs.shape[1], n_kv_heads, head_dim, pair_layout))
        gptr = None
        if group_fcs is not None:
            group_fcs = np.ascontiguousarray(group_fcs, dtype=np.uint32)
            if group_fcs.shape != (fcs.shape[0], n_kv_heads, fcs.shape[2]):
                raise ValueError("group_fcs: expected %s, got %s"
                                 % ((fcs.shape[0], n_kv_heads, fcs.shape[2]), group_fcs.shape))
            gptr = group_fcs.ctypes.data_as(ctypes.POINTER(ctypes.c_uint32))
        return cls._new(lib.fasa_profile_create, ctypes.byref(shape),
                        fcs.ctypes.data_as(ctypes.POINTER(ctypes.c_uint32)), fcs.shape[2], gptr,
                        name="fasa_profile_create",
                        function="fasa.Profile.from_fcs")

    @classmethod
    def calibrate(cls, shape, steps, k_values=None, dtype=None, **select):
        """One-shot calibration (fasa_calibrate). shape: Shape or tuple;
        steps: iterable of (layer, q [1, Hq, d], k [t, Hkv, d]) post-RoPE
        arrays; k_values: ascending K list (None: library default);
        select: selection options (see select_options)."""
        steps = list(steps)
        keep = []
        c_steps = (CalibStep * max(len(steps), 1))()
        for i, (layer, q, k) in enumerate(steps):
            qv = input_view(q, dtype, "q")
            kv = input_view(k, dtype, "k")
            keep.append((qv, kv))
            c_steps[i].layer = int(layer)
            c_steps[i].q = ctypes.pointer(qv)
            c_steps[i].k = ctypes.pointer(kv)
        cfg = _calib_config(shape, k_values)
        opts = select_options(**select)
        return cls._new(lib.fasa_calibrate, ctypes.byref(cfg), c_steps, len(steps),
                        ctypes.byref(opts), name="fasa_calibrate",
                        function="fasa.Profile.calibrate")

    @classmethod
    def load(cls, path):
        """Read a profile file (docs/profile-format.md)."""
        return cls._new(lib.fasa_profile_load, _path(path), name="fasa_profile_load",
                        function="fasa.Profile.load")

    @classmethod
    def from_bytes(cls, data):
        """Parse a profile from bytes-like data."""
        buf = np.frombuffer(bytes(data), dtype=np.uint8)
        ptr = buf.ctypes.data if buf.size else None
        return cls._new(lib.fasa_profile_load_buffer, ptr, buf.size,
                        name="fasa_profile_load_buffer",
                        function="fasa.Profile.from_bytes")

    def clone(self):
        """Deep copy."""
        return Profile._new(lib.fasa_profile_clone, self, name="fasa_profile_clone",
                        function="fasa.Profile.clone")

    def close(self):
        """Free the C profile now."""
        self._finalizer()

    # -------------------------------------------------------- persistence
    def save(self, path):
        """Write the profile to a file."""
        check(lib.fasa_profile_save(self, _path(path)), None, "fasa.Profile.save",
              "fasa_profile_save")

    def to_bytes(self):
        """The profile file as bytes."""
        size = ctypes.c_size_t()
        check(lib.fasa_profile_save_buffer(self, None, 0, ctypes.byref(size)), None,
              "fasa.Profile.to_bytes", "fasa_profile_save_buffer")
        buf = ctypes.create_string_buffer(max(size.value, 1))
        check(lib.fasa_profile_save_buffer(self, buf, size.value, ctypes.byref(size)), None,
              "fasa.Profile.to_bytes", "fasa_profile_save_buffer")
        return buf.raw[:size.value]

    def describe(self):
        """Human-readable dump (fasa_profile_describe)."""
        length = ctypes.c_size_t()
        check(lib.fasa_profile_describe(self, None, 0, ctypes.byref(length)), None,
              "fasa.Profile.describe", "fasa_profile_describe")
        buf = ctypes.create_string_buffer(length.value + 1)
        check(lib.fasa_profile_describe(self, buf, length.value + 1, ctypes.byref(length)),
              None, "fasa.Profile.describe", "fasa_profile_describe")
        return buf.value.decode(errors="replace")

    # -------------------------------------------------------------- reads
    @property
    def info(self):
        """Info(shape, n_k, n_steps, max_fc, has_agreement, selection_k)."""
        info = ProfileInfo()
        info.struct_size = ctypes.sizeof(ProfileInfo)
        check(lib.fasa_profile_get_info(self, ctypes.byref(info)), None,
              "fasa.Profile.info", "fasa_profile_get_info")
        s = info.shape
        shape = Shape(s.n_layers, s.n_q_heads, s.n_kv_heads, s.head_dim, s.pair_layout)
        return Info(shape, info.n_k, info.n_steps, info.max_fc, bool(info.has_agreement),
                    info.selection_k)

    @property
    def shape(self):
        """Shape(n_layers, n_q_heads, n_kv_heads, head_dim, pair_layout)."""
        return self._shape

    @property
    def pair_layout(self):
        """The RoPE pair layout the FCs refer to (PAIRS_*)."""
        return self._shape.pair_layout

    @property
    def k_values(self):
        """Calibrated K values, uint32 [n_k] (empty without calibration)."""
        n = self.info.n_k
        out = np.zeros(max(n, 1), dtype=np.uint32)
        check(lib.fasa_profile_get_k_values(
            self, out.ctypes.data_as(ctypes.POINTER(ctypes.c_uint32)), out.size), None,
            "fasa.Profile.k_values", "fasa_profile_get_k_values")
        return out[:n]

    def agreement(self, layer, k_index=0):
        """Mean contextual agreement of `layer` at K index k_index:
        float32 [n_q_heads, head_dim/2]."""
        s = self.shape
        out = np.empty((s.n_q_heads, s.head_dim // 2), dtype=np.float32)
        check(lib.fasa_profile_get_agreement(
            self, int(layer), int(k_index), out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
            out.size), None, "fasa.Profile.agreement", "fasa_profile_get_agreement")
        return out

    def fcs(self, layer, head, mode=PER_HEAD):
        """Dominant FCs (ascending uint32) of query head `head` (PER_HEAD) or
        KV head `head` (GROUP_SHARED) in `layer`."""
        cap = max(self.shape.head_dim // 2, 1)
        out = np.empty(cap, dtype=np.uint32)
        n = ctypes.c_size_t()
        check(lib.fasa_profile_get_fcs(
            self, int(layer), int(mode), int(head),
            out.ctypes.data_as(ctypes.POINTER(ctypes.c_uint32)), cap, ctypes.byref(n)), None,
            "fasa.Profile.fcs", "fasa_profile_get_fcs")
        return out[:n.value].copy()

    def fc_sets(self, layer, mode=PER_HEAD):
        """Every dominant FC set of `layer`: a list with one array per query
        head (PER_HEAD) or per KV head (GROUP_SHARED)."""
        s = self.shape
        heads = s.n_q_heads if mode == PER_HEAD else s.n_kv_heads
        return [self.fcs(layer, h, mode) for h in range(heads)]

    def is_dense(self, layer):
        """Whether `layer` runs dense attention."""
        hit = self._dense.get(layer)
        if hit is not None:
            return hit
        dense = ctypes.c_int()
        check(lib.fasa_profile_get_dense_layer(self, int(layer), ctypes.byref(dense)), None,
              "fasa.Profile.is_dense", "fasa_profile_get_dense_layer")
        self._dense[layer] = bool(dense.value)
        return bool(dense.value)

    @property
    def dense_layers(self):
        """Indices of the dense layers."""
        return [i for i in range(self.shape.n_layers) if self.is_dense(i)]

    # ------------------------------------------------------------ changes
    def set_dense(self, layer, dense=True):
        """Mark `layer` dense or sparse. Not thread-safe with other uses."""
        self._dense.clear()
        check(lib.fasa_profile_set_dense_layer(self, int(layer), int(bool(dense))), None,
              "fasa.Profile.set_dense", "fasa_profile_set_dense_layer")

    def select(self, **options):
        """Re-derive the dominant sets from the stored agreement with the
        given selection options. Not thread-safe with other uses."""
        opts = select_options(**options)
        check(lib.fasa_profile_select(self, ctypes.byref(opts)), None, "fasa.Profile.select",
              "fasa_profile_select")

    def for_budget(self, budget, n_fc=None):
        """A copy whose dominant FCs are re-selected for `budget` tokens.

        Calibration measures how well each FC ranks the top-K tokens at
        several K; the FCs that predict the top-64 are not those that predict
        the top-1024. select(budget_hint=B) ranks FCs at the calibrated K
        closest to B, which is what build/llama does for every budget it
        runs (docs/bindings.md, "Budgets"). n_fc: FCs kept per head (default
        head_dim / 8, as build/llama). Without agreement data (a profile made
        by from_fcs) the sets cannot change: a copy is returned as it is."""
        budget = int(budget)
        if budget < 1:
            raise ValueError("for_budget: budget must be a token count >= 1, got %r" % budget)
        p = self.clone()
        if self.info.has_agreement:
            n = int(n_fc) if n_fc else max(self._shape.head_dim // 8, 1)
            p.select(n_fc=n, min_fc=n, max_fc=n, budget_hint=budget)
        return p

    def __repr__(self):
        s = self.shape
        return ("<fasa.Profile layers=%d Hq=%d Hkv=%d head_dim=%d layout=%d>"
                % (s.n_layers, s.n_q_heads, s.n_kv_heads, s.head_dim, s.pair_layout))


class Calibrator:
    """Streaming calibration (fasa_calibrator): add decode steps one at a
    time, finish into a Profile. One thread at a time."""

    def __init__(self, shape, k_values=None):
        cfg = _calib_config(shape, k_values)
        out = ctypes.c_void_p()
        check(lib.fasa_calibrator_create(ctypes.byref(cfg), ctypes.byref(out)), None,
              "fasa.Calibrator", "fasa_calibrator_create")
        self._as_parameter_ = out.value
        self._finalizer = weakref.finalize(self, lib.fasa_calibrator_destroy, out.value)

    def add_step(self, layer, q, k, ctx=None, dtype=None):
        """One decode step of `layer`: q [1, Hq, d] query of the new token,
        k [t, Hkv, d] all cached keys including it (post-RoPE)."""
        ctx = _context.resolve(ctx)
        qv = input_view(q, dtype, "q")
        kv = input_view(k, dtype, "k")
        check(lib.fasa_calibrator_add_step(self, ctx, int(layer), ctypes.byref(qv),
                                           ctypes.byref(kv)), ctx, "fasa.Calibrator.add_step",
              "fasa_calibrator_add_step")

    def finish(self, **select):
        """A new Profile from the steps so far (the calibrator stays usable)."""
        opts = select_options(**select)
        return Profile._new(lib.fasa_calibrator_finish, self, ctypes.byref(opts),
                            name="fasa_calibrator_finish",
                        function="fasa.Calibrator.finish")

    def close(self):
        self._finalizer()
