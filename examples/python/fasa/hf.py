"""libfasa as the attention of a Hugging Face style Llama (torch, CPU).

    import fasa, fasa.hf
    profile = fasa.hf.calibrate(model, windows)          # once, the model's own forward
    profile.save("model.fasa")
    fasa.hf.attach(model, fasa.Profile.load("model.fasa"), budget=256)
    model.generate(...) / model(ids, past_key_values=cache)   # decode steps now run FASA

What it plugs into: the attention-function interface of transformers 4.48 to
4.53 (LlamaAttention calls ALL_ATTENTION_FUNCTIONS[config._attn_implementation]
(module, query [B, Hq, Tq, D], key/value [B, Hkv, T, D] after
past_key_value.update, attention_mask, dropout=, scaling=) and expects
([B, Tq, Hq, D], weights)). attach() registers "fasa" in that registry (the
transformers one when transformers is importable, and the one of the model's
own module) and sets config._attn_implementation = "fasa". Tested with the
repository's torch Llama (examples/python/llama_torch.py), which follows those
interfaces; transformers itself is not installable on the build machines, so
releases outside 4.48 - 4.53 (older ones have no attention registry; newer
ones may pass other cache or mask objects) are untested.

What runs where:
  - prefill (Tq > 1): dense attention by libfasa over the visible cells;
  - decode (Tq = 1): FASA with the layer's label cache (built after the
    prefill, appended each step) for one sequence; for a batch (B > 1) TIP
    scores from the keys until cell-addressed label caches land;
  - dense layers of the profile: dense.
Masks: None, HF's 4-D float/bool masks and 2-D padding masks (see
fasa.masks). Batches need a KV layout libfasa can address as one cell axis:
FasaCache (token-major) does; HF's DynamicCache ([B, Hkv, T, D],
head-major) only for B = 1, and a batch on it raises.
"""
import sys
import warnings

import numpy as np

from . import context as _context
from .core import attention, PER_HEAD, PerformanceWarning
from .label_cache import LabelCache
from .profile import Calibrator, read_hf_config

NAME = "fasa"


class LayerState:
    """What attach keeps per attention layer."""

    def __init__(self, layer):
        self.layer = layer
        self.cache = None        # LabelCache (B = 1)
        self.hints = None        # select_hints for batches


class FasaState:
    """The FASA settings of an attached model (model.fasa_state)."""

    def __init__(self, profile, budget, layout, mode, capacity, label_dtype, ctx):
        self.profile = profile
        self.budget = budget
        self.layout = layout
        self.mode = mode
        self.capacity = capacity
        self.label_dtype = label_dtype
        self.ctx = ctx
        self.enabled = True      # False: dense attention everywhere (reference runs)
        self.layers = {}
        self.calibrator = None   # set by calibrate(): capture q/k instead of FASA
        self.capture = None
        self.stats = {"dense": 0, "fasa": 0, "rebuilds": 0}
        self.use_cache = True

    def layer(self, i):
        st = self.layers.get(i)
        if st is None:
            st = self.layers[i] = LayerState(i)
        return st


def _torch():
    import torch
    return torch


def attention_forward(module, query, key, value, attention_mask, scaling=None, dropout=0.0,
                      **kwargs):
    """The HF attention function: query [B, Hq, Tq, D], key/value
    [B, Hkv, T, D] (the whole cache after update), returns ([B, Tq, Hq, D],
    None). Registered as "fasa" by attach()."""
    st = getattr(module, "fasa_state", None)
    if st is None:
        raise RuntimeError("fasa.hf: attention module %r has no fasa_state: call "
                           "fasa.hf.attach(model, profile, budget) first" % type(module).__name__)
    if dropout and module.training:
        raise ValueError("fasa.hf: attention dropout in training mode is not supported")
    layer = module.layer_idx
    B, Tq, T = query.shape[0], query.shape[2], key.shape[2]
    scale = float(scaling) if scaling is not None else 0.0
    if st.calibrator is not None:
        _capture(st, layer, query, key)
    sparse = st.enabled and st.calibrator is None and Tq == 1 and \
        not st.profile.is_dense(layer) and st.budget < T
    ls = st.layer(layer)
    if st.use_cache and st.enabled and st.calibrator is None and B == 1 and \
            not st.profile.is_dense(layer):
        _follow_keys(st, ls, key, T, Tq)
    if not sparse:
        st.stats["dense"] += 1
        out = attention(query, key, value, mask=attention_mask, scale=scale, ctx=st.ctx,
                        function="fasa.hf.attention_forward")
    else:
        st.stats["fasa"] += 1
        hints = None
        if B > 1:
            n_sets = query.shape[1] if st.mode == PER_HEAD else key.shape[1]
            if ls.hints is None or ls.hints.shape != (B, n_sets):
                ls.hints = np.full((B, n_sets), np.nan, np.float32)
            hints = ls.hints
        out = attention(query, key, value, profile=st.profile, layer=layer, budget=st.budget,
                        layout=st.layout, mode=st.mode,
                        cache=ls.cache if B == 1 and st.use_cache else None,
                        mask=attention_mask, scale=scale, select_hints=hints, ctx=st.ctx,
                        function="fasa.hf.attention_forward")
    return out.transpose(1, 2), None


def _follow_keys(st, ls, key, T, Tq):
    """Keep the layer's label cache equal to the first T keys: append the
    Tq new ones when it holds the T - Tq before them, else rebuild (a new
    sequence, a cache rewound by the caller)."""
    if ls.cache is None:
        cap = max(st.capacity or 0, T)
        ls.cache = LabelCache(st.profile, ls.layer, cap, mode=st.mode, dtype=st.label_dtype)
    c = ls.cache
    n = c.tokens
    if n == T - Tq and T <= c.capacity:
        c.append(key[0, :, n:T].transpose(0, 1))
        return
    if T > c.capacity:
        ls.cache = c = LabelCache(st.profile, ls.layer, max(T, 2 * c.capacity), mode=st.mode,
                                  dtype=st.label_dtype)
    if n != 0 and Tq < T:
        st.stats["rebuilds"] += 1  # not a prefill: the caller rewound or switched sequences
    c.build(key[0, :, :T].transpose(0, 1))


def _attention_modules(model):
    mods = [m for m in model.modules()
            if hasattr(m, "layer_idx") and hasattr(m, "q_proj") and hasattr(m, "config")]
    if not mods:
        raise ValueError("fasa.hf: no Llama-style attention modules (with layer_idx, q_proj, "
                         "config) in %s" % type(model).__name__)
    return mods


def _registries(mods):
    """The attention registries the model looks functions up in: its own
    module's ALL_ATTENTION_FUNCTIONS (transformers' modeling_llama imports
    the global one) and transformers' when importable."""
    regs = []
    for m in mods[:1]:
        r = getattr(sys.modules.get(type(m).__module__), "ALL_ATTENTION_FUNCTIONS", None)
        if r is not None:
            regs.append(r)
    if "transformers" in sys.modules or _importable("transformers"):
        try:
            from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS as r
            regs.append(r)
        except ImportError:
            pass
    return regs


def _importable(name):
    import importlib.util
    return importlib.util.find_spec(name) is not None


def _register(regs):
    for r in regs:
        if hasattr(type(r), "register"):      # transformers >= 4.50: AttentionInterface
            type(r).register(NAME, attention_forward)
        else:                                 # 4.48 / 4.49: a dict
            r[NAME] = attention_forward


def _config(model):
    cfg = getattr(model, "config", None)
    if cfg is None:
        raise ValueError("fasa.hf: the model has no .config")
    return cfg


def attach(model, profile, budget, mode=PER_HEAD, capacity=None, label_dtype="f32",
           ctx=None, select=True, label_cache=True):
    """Run the model's attention through libfasa: FASA with `budget` tokens
    at decode steps, dense prefill. Returns the FasaState (also
    model.fasa_state).

    profile: a Profile for this model (its shape and RoPE layout are checked
      against model.config; a mismatch raises). With select=True and
      agreement data, its FC sets are re-selected for `budget`
      (Profile.for_budget), as build/llama does; the caller's profile is not
      changed.
    mode: fasa.PER_HEAD (the paper) or fasa.GROUP_SHARED.
    capacity: label-cache tokens per layer (default: config's
      max_position_embeddings; grown when exceeded).
    ctx: the fasa.Context (threads) for the model's calls; default: one with
      the process default thread count.
    label_cache: keep a LabelCache per layer (one sequence). False scores
      TIP from the keys (slower; for comparisons)."""
    cfg = _config(model)
    spec = read_hf_config(cfg)
    shape = profile.shape
    if tuple(shape[:4]) != tuple(spec.shape[:4]):
        raise ValueError("fasa.hf.attach: profile shape %s (layers, Hq, Hkv, head_dim) does not "
                         "match the model's %s" % (tuple(shape[:4]), tuple(spec.shape[:4])))
    if shape.pair_layout != spec.shape.pair_layout:
        raise ValueError("fasa.hf.attach: the profile's FCs are %s pairs but %s (model_type "
                         "%r) rotates %s pairs: recalibrate with the model's layout"
                         % (_layout(shape.pair_layout), type(model).__name__, spec.model_type,
                            _layout(spec.shape.pair_layout)))
    if budget is None or not float(budget) > 0:
        raise ValueError("fasa.hf.attach: budget must be > 0 (tokens, or a fraction < 1)")
    prof = profile.for_budget(int(budget)) if select and budget >= 1 else profile
    st = FasaState(prof, float(budget), spec.shape.pair_layout, int(mode),
                   capacity or spec.max_positions, label_dtype,
                   ctx if ctx is not None else _context.Context())
    st.use_cache = bool(label_cache)
    mods = _attention_modules(model)
    _register(_registries(mods))
    for m in mods:
        m.fasa_state = st
    st.previous_impl = getattr(cfg, "_attn_implementation", None)
    cfg._attn_implementation = NAME
    model.fasa_state = st
    return st


def detach(model):
    """Undo attach: the model's previous attention implementation again."""
    st = getattr(model, "fasa_state", None)
    if st is None:
        return
    _config(model)._attn_implementation = st.previous_impl
    for m in _attention_modules(model):
        m.__dict__.pop("fasa_state", None)
    del model.fasa_state


def _layout(code):
    from .core import layout_name
    return layout_name(code)


# -------------------------------------------------------------- calibrate

def _capture(st, layer, query, key):
    """Feed the calibrator one decode step per captured position p of this
    forward: q of p against keys 0..p (post-RoPE, one sequence)."""
    cap = st.capture
    T, Tq = key.shape[2], query.shape[2]
    first = T - Tq
    q0 = query[0].transpose(0, 1)  # [Tq, Hq, D]
    k0 = key[0].transpose(0, 1)    # [T, Hkv, D]
    for p in range(max(cap["start"], first), T, 1):
        if (p - cap["start"]) % cap["stride"]:
            continue
        st.calibrator.add_step(layer, q0[p - first:p - first + 1], k0[:p + 1], ctx=st.ctx)


def calibrate(model, windows, start=2048, stride=16, k_values=None, n_fc=None,
              budget_hint=256, ctx=None):
    """A Profile calibrated with the model's own forward: every window (a 1-D
    sequence of token ids, torch or numpy) is run once; for positions start,
    start + stride, ... the post-RoPE query of that position and the keys up
    to it are added to a fasa.Calibrator (build/llama calibrate's protocol:
    windows 0-3 of 4096 tokens, start 2048, stride 16). Selection: n_fc FCs
    per head (default head_dim / 8), for budget_hint; re-select later with
    Profile.for_budget(budget). The model's attention is dense meanwhile."""
    torch = _torch()
    cfg = _config(model)
    spec = read_hf_config(cfg)
    cal = Calibrator(spec.shape, k_values)
    st = FasaState(None, 0.0, spec.shape.pair_layout, PER_HEAD, None, "f32",
                   ctx if ctx is not None else _context.Context())
    st.enabled = False
    st.calibrator = cal
    st.capture = {"start": int(start), "stride": int(stride)}
    mods = _attention_modules(model)
    _register(_registries(mods))
    saved = [(m, m.__dict__.get("fasa_state")) for m in mods]
    impl = getattr(cfg, "_attn_implementation", None)
    try:
        for m in mods:
            m.fasa_state = st
        cfg._attn_implementation = NAME
        with torch.no_grad():
            for w in windows:
                ids = torch.as_tensor(np.asarray(w), dtype=torch.long)[None]
                if ids.shape[1] <= start:
                    raise ValueError("fasa.hf.calibrate: a window of %d tokens has no position "
                                     ">= start=%d" % (ids.shape[1], start))
                model(ids)
    finally:
        cfg._attn_implementation = impl
        for m, s in saved:
            if s is None:
                m.__dict__.pop("fasa_state", None)
            else:
                m.fasa_state = s
    n = int(n_fc) if n_fc else max(spec.shape.head_dim // 8, 1)
    return cal.finish(n_fc=n, min_fc=n, max_fc=n, budget_hint=int(budget_hint))


# ------------------------------------------------------- a batch-ready cache

class FasaCache:
    """A KV cache libfasa can decode a batch from in one call: per layer a
    token-major [B, capacity, Hkv, D] buffer; update() writes the new tokens
    in place and returns [B, Hkv, T, D] views of it (.transpose(1, 2)), which
    map onto one cell axis (cell = b * capacity + j). Implements what the
    model calls: update(key, value, layer_idx, cache_kwargs) and
    get_seq_length(layer_idx). With transformers importable it derives from
    transformers.Cache (4.48 - 4.53 interface; untested there)."""

    def __init__(self, capacity):
        self.capacity = int(capacity)
        self.keys, self.values, self.length = [], [], []

    def update(self, key_states, value_states, layer_idx, cache_kwargs=None):
        torch = _torch()
        B, H, Tn, D = key_states.shape
        while len(self.keys) <= layer_idx:
            self.keys.append(None)
            self.values.append(None)
            self.length.append(0)
        if self.keys[layer_idx] is None:
            shape = (B, self.capacity, H, D)
            self.keys[layer_idx] = torch.zeros(shape, dtype=key_states.dtype)
            self.values[layer_idx] = torch.zeros((B, self.capacity, H, value_states.shape[3]),
                                                 dtype=value_states.dtype)
        n = self.length[layer_idx]
        if n + Tn > self.capacity:
            raise ValueError("fasa.hf.FasaCache: capacity %d exceeded (%d + %d tokens)"
                             % (self.capacity, n, Tn))
        self.keys[layer_idx][:, n:n + Tn] = key_states.transpose(1, 2)
        self.values[layer_idx][:, n:n + Tn] = value_states.transpose(1, 2)
        self.length[layer_idx] = n + Tn
        return (self.keys[layer_idx][:, :n + Tn].transpose(1, 2),
                self.values[layer_idx][:, :n + Tn].transpose(1, 2))

    def get_seq_length(self, layer_idx=0):
        return self.length[layer_idx] if layer_idx < len(self.length) else 0

    def get_max_cache_shape(self):
        return self.capacity

    def __len__(self):
        return len(self.keys)


try:  # a transformers Cache where transformers exists (models check isinstance)
    if _importable("transformers"):
        from transformers.cache_utils import Cache as _HFCache
        FasaCache = type("FasaCache", (FasaCache, _HFCache), {})
except Exception:  # noqa: BLE001 - any import problem leaves the plain class
    pass


__all__ = ["attach", "detach", "calibrate", "attention_forward", "FasaCache", "FasaState",
           "PerformanceWarning"]
_ = warnings
