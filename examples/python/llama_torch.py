"""A small pure-torch Llama with the module structure and call interfaces of
Hugging Face transformers' modeling_llama (4.48 - 4.53), loading HF
safetensors checkpoints without transformers.

It exists so that the Hugging Face drop-in (fasa.hf) is tested on the same
interfaces it meets in transformers, with the repository's own models:

  - LlamaAttention.forward(hidden_states, position_embeddings, attention_mask,
    past_key_value=None, cache_position=None, **kwargs) projects q/k/v to
    [B, H, T, D], applies rotate-half RoPE, calls past_key_value.update(k, v,
    layer_idx, cache_kwargs), then the attention function registered under
    config._attn_implementation in ALL_ATTENTION_FUNCTIONS, called as
    fn(module, query, key, value, attention_mask, dropout=0.0,
    scaling=module.scaling) and returning ([B, T, H, D], weights);
  - masks as HF builds them for eager/custom attention: a [B, 1, Tq, Tkv]
    float mask holding 0 or the dtype's minimum, from a [B, T] padding mask;
    for "sdpa" without padding, None;
  - DynamicCache: update() concatenates along the token axis of
    [B, Hkv, T, D] (head-major), get_seq_length().

Usage: model = LlamaForCausalLM.from_pretrained(dir); logits = model(ids,
past_key_values=cache).logits. Float32 throughout.
"""
import json
import math
import os
import struct

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F


class LlamaConfig:
    def __init__(self, **kw):
        self.model_type = "llama"
        self.rope_theta = 10000.0
        self.rms_norm_eps = 1e-6
        self.tie_word_embeddings = False
        self._attn_implementation = "sdpa"
        self.__dict__.update(kw)
        self.num_key_value_heads = kw.get("num_key_value_heads", self.num_attention_heads)
        self.head_dim = kw.get("head_dim", self.hidden_size // self.num_attention_heads)

    @classmethod
    def from_json(cls, path):
        with open(path) as f:
            return cls(**json.load(f))


# ------------------------------------------------------------------ RoPE

class LlamaRotaryEmbedding(nn.Module):
    """cos/sin [B, T, D] of the positions, computed in float32 as HF does."""

    def __init__(self, config):
        super().__init__()
        d = config.head_dim
        inv = 1.0 / (config.rope_theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
        self.register_buffer("inv_freq", inv, persistent=False)

    @torch.no_grad()
    def forward(self, x, position_ids):
        inv = self.inv_freq[None, :, None].float().expand(position_ids.shape[0], -1, 1)
        freqs = (inv @ position_ids[:, None, :].float()).transpose(1, 2)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(x.dtype), emb.sin().to(x.dtype)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=1):
    cos, sin = cos.unsqueeze(unsqueeze_dim), sin.unsqueeze(unsqueeze_dim)
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


# ------------------------------------------------------------- attention

def repeat_kv(x, n_rep):
    b, h, t, d = x.shape
    if n_rep == 1:
        return x
    return x[:, :, None].expand(b, h, n_rep, t, d).reshape(b, h * n_rep, t, d)


def eager_attention_forward(module, query, key, value, attention_mask, scaling, dropout=0.0,
                            **kwargs):
    key = repeat_kv(key, module.num_key_value_groups)
    value = repeat_kv(value, module.num_key_value_groups)
    w = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        w = w + attention_mask[:, :, :, :key.shape[-2]]
    w = F.softmax(w, dim=-1, dtype=torch.float32).to(query.dtype)
    out = torch.matmul(w, value).transpose(1, 2).contiguous()
    return out, w


def sdpa_attention_forward(module, query, key, value, attention_mask, scaling=None,
                           dropout=0.0, **kwargs):
    key = repeat_kv(key, module.num_key_value_groups)
    value = repeat_kv(value, module.num_key_value_groups)
    mask = attention_mask[:, :, :, :key.shape[-2]] if attention_mask is not None else None
    Tq, T = query.shape[2], key.shape[2]
    if mask is None and Tq > 1:  # bottom-right causal, as HF's skipped mask means
        mask = torch.full((Tq, T), float("-inf")).triu(T - Tq + 1)[None, None]
    if hasattr(F, "scaled_dot_product_attention") and scaling is None:
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask)
    else:  # torch < 2.0 (Debian 12's 1.13), or an explicit scale
        w = torch.matmul(query, key.transpose(2, 3)) * (scaling or query.shape[-1] ** -0.5)
        if mask is not None:
            w = w + mask
        out = torch.matmul(F.softmax(w, dim=-1, dtype=torch.float32), value)
    return out.transpose(1, 2).contiguous(), None


# The registry transformers keeps in modeling_utils (a dict in 4.48/4.49, an
# AttentionInterface mapping from 4.50); fasa.hf.attach registers "fasa" here.
ALL_ATTENTION_FUNCTIONS = {"sdpa": sdpa_attention_forward}


class LlamaAttention(nn.Module):
    def __init__(self, config, layer_idx):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.head_dim = config.head_dim
        self.num_key_value_groups = config.num_attention_heads // config.num_key_value_heads
        self.scaling = self.head_dim ** -0.5
        self.is_causal = True
        D, hd = config.hidden_size, self.head_dim
        self.q_proj = nn.Linear(D, config.num_attention_heads * hd, bias=False)
        self.k_proj = nn.Linear(D, config.num_key_value_heads * hd, bias=False)
        self.v_proj = nn.Linear(D, config.num_key_value_heads * hd, bias=False)
        self.o_proj = nn.Linear(config.num_attention_heads * hd, D, bias=False)

    def forward(self, hidden_states, position_embeddings, attention_mask,
                past_key_value=None, cache_position=None, **kwargs):
        input_shape = hidden_states.shape[:-1]
        hidden_shape = (*input_shape, -1, self.head_dim)
        query = self.q_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        key = self.k_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        value = self.v_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        cos, sin = position_embeddings
        query, key = apply_rotary_pos_emb(query, key, cos, sin)
        if past_key_value is not None:
            key, value = past_key_value.update(key, value, self.layer_idx,
                                               {"sin": sin, "cos": cos,
                                                "cache_position": cache_position})
        impl = self.config._attn_implementation
        fn = eager_attention_forward if impl == "eager" else ALL_ATTENTION_FUNCTIONS[impl]
        out, weights = fn(self, query, key, value, attention_mask, dropout=0.0,
                          scaling=self.scaling, **kwargs)
        out = out.reshape(*input_shape, -1).contiguous()
        return self.o_proj(out), weights


# ------------------------------------------------------------------ model

class LlamaRMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        dt = x.dtype
        x = x.to(torch.float32)
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dt)


class LlamaMLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        D, H = config.hidden_size, config.intermediate_size
        self.gate_proj = nn.Linear(D, H, bias=False)
        self.up_proj = nn.Linear(D, H, bias=False)
        self.down_proj = nn.Linear(H, D, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaDecoderLayer(nn.Module):
    def __init__(self, config, layer_idx):
        super().__init__()
        self.self_attn = LlamaAttention(config, layer_idx)
        self.mlp = LlamaMLP(config)
        self.input_layernorm = LlamaRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_attention_layernorm = LlamaRMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(self, hidden_states, attention_mask=None, past_key_value=None,
                cache_position=None, position_embeddings=None, **kwargs):
        h, _ = self.self_attn(self.input_layernorm(hidden_states), position_embeddings,
                              attention_mask, past_key_value, cache_position, **kwargs)
        x = hidden_states + h
        return x + self.mlp(self.post_attention_layernorm(x))


class DynamicCache:
    """transformers' DynamicCache, as far as the model uses it: per layer a
    [B, Hkv, T, D] tensor grown by torch.cat on the token axis."""

    def __init__(self):
        self.key_cache, self.value_cache = [], []

    def update(self, key_states, value_states, layer_idx, cache_kwargs=None):
        if len(self.key_cache) <= layer_idx:
            self.key_cache.append(key_states)
            self.value_cache.append(value_states)
        else:
            self.key_cache[layer_idx] = torch.cat([self.key_cache[layer_idx], key_states], -2)
            self.value_cache[layer_idx] = torch.cat([self.value_cache[layer_idx], value_states],
                                                    -2)
        return self.key_cache[layer_idx], self.value_cache[layer_idx]

    def get_seq_length(self, layer_idx=0):
        return self.key_cache[layer_idx].shape[-2] if len(self.key_cache) > layer_idx else 0


class Output:
    def __init__(self, logits, past_key_values):
        self.logits = logits
        self.past_key_values = past_key_values


class LlamaModel(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(LlamaDecoderLayer(config, i)
                                    for i in range(config.num_hidden_layers))
        self.norm = LlamaRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.rotary_emb = LlamaRotaryEmbedding(config)

    def causal_mask(self, attention_mask, T, past, dtype):
        """HF's _update_causal_mask: None for sdpa without padding, else
        [B, 1, T, past + T] with 0 (visible) or the dtype's minimum."""
        if attention_mask is None and self.config._attn_implementation == "sdpa":
            return None
        kv = past + T
        minv = torch.finfo(dtype).min
        cols = torch.arange(kv)[None, :]
        rows = torch.arange(past, past + T)[:, None]
        m = torch.where(cols <= rows, 0.0, minv).to(dtype)[None, None]
        if attention_mask is not None:
            pad = attention_mask[:, None, None, :kv].to(torch.bool)
            m = m.masked_fill(~pad, minv)
        return m

    def forward(self, input_ids, attention_mask=None, position_ids=None, past_key_values=None,
                use_cache=True, cache_position=None, **kwargs):
        if use_cache and past_key_values is None:
            past_key_values = DynamicCache()
        x = self.embed_tokens(input_ids)
        B, T = input_ids.shape
        past = past_key_values.get_seq_length() if past_key_values is not None else 0
        if cache_position is None:
            cache_position = torch.arange(past, past + T)
        if position_ids is None:
            position_ids = cache_position[None].expand(B, -1)
        mask = self.causal_mask(attention_mask, T, past, x.dtype)
        pe = self.rotary_emb(x, position_ids)
        for layer in self.layers:
            x = layer(x, attention_mask=mask, past_key_value=past_key_values,
                      cache_position=cache_position, position_embeddings=pe, **kwargs)
        return self.norm(x), past_key_values


class LlamaForCausalLM(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.model = LlamaModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

    def forward(self, input_ids, attention_mask=None, position_ids=None, past_key_values=None,
                use_cache=True, cache_position=None, **kwargs):
        h, cache = self.model(input_ids, attention_mask, position_ids, past_key_values,
                              use_cache, cache_position, **kwargs)
        return Output(self.lm_head(h), cache)

    @classmethod
    def from_pretrained(cls, path, attn_implementation="sdpa"):
        config = LlamaConfig.from_json(os.path.join(path, "config.json"))
        config._attn_implementation = attn_implementation
        model = cls(config)
        weights = load_safetensors(path)
        if "lm_head.weight" not in weights:
            weights["lm_head.weight"] = weights["model.embed_tokens.weight"]
        model.load_state_dict(weights)
        return model.eval()


def load_safetensors(path):
    """{name: float32 tensor} of a HF checkpoint directory (sharded or not)."""
    idx = os.path.join(path, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
    else:
        shards = ["model.safetensors"]
    dtypes = {"F16": np.float16, "F32": np.float32, "BF16": np.uint16}
    out = {}
    for name in shards:
        with open(os.path.join(path, name), "rb") as f:
            (hlen,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(hlen))
            data = f.read()
        for key, meta in header.items():
            if key == "__metadata__":
                continue
            b, e = meta["data_offsets"]
            a = np.frombuffer(data, dtype=dtypes[meta["dtype"]], count=(e - b) //
                              np.dtype(dtypes[meta["dtype"]]).itemsize, offset=b)
            if meta["dtype"] == "BF16":
                a = (a.astype(np.uint32) << 16).view(np.float32)
            out[key] = torch.from_numpy(a.astype(np.float32).reshape(meta["shape"]))
    return out


def nll(logits, target):
    """-log softmax(logits)[target] in float64, as build/llama computes it."""
    lg = logits.double()
    return float(torch.logsumexp(lg, -1) - lg[target])


def window_tokens(path, window):
    """Tokens of one window of the model's val_tokens.bin."""
    with open(os.path.join(path, "config.json")) as f:
        T = json.load(f)["max_position_embeddings"]
    toks = np.fromfile(os.path.join(path, "val_tokens.bin"), dtype="<u2")
    return torch.from_numpy(toks[window * T:(window + 1) * T].astype(np.int64))


def ppl_run(model, path, windows, prefill, decode, past_factory=DynamicCache):
    """build/llama's ppl protocol: per window, a dense prefill of `prefill`
    tokens whose last logits predict token `prefill`, then decode-1 single
    token steps, each predicting the next. Returns (nll_sum, count)."""
    total, count = 0.0, 0
    with torch.no_grad():
        for w in windows:
            tok = window_tokens(path, w)
            cache = past_factory()
            out = model(tok[None, :prefill], past_key_values=cache)
            total += nll(out.logits[0, -1], tok[prefill])
            count += 1
            for s in range(decode - 1):
                out = model(tok[None, prefill + s:prefill + s + 1], past_key_values=cache)
                total += nll(out.logits[0, -1], tok[prefill + s + 1])
                count += 1
    return total, count


def perplexity(nll_sum, count):
    return math.exp(nll_sum / count)
