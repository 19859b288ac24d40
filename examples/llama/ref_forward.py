#!/usr/bin/env python3
"""Plain-numpy reference forward of a HF Llama safetensors checkpoint.

Reads config.json, the shard index and the fp16 shards itself (no torch, no
transformers), runs the model in float64 on the first N tokens of a window
of val_tokens.bin and compares its logits with a .npy written by
`llama logits`. Exit status 0 when max |diff| < --tol, 1 otherwise, 77 when
the model is absent (skip).

usage: ref_forward.py --model DIR --window W --tokens N --compare FILE.npy [--tol 1e-3]
       ref_forward.py --llama2c FILE.bin --tokens-file F --tokens N --compare FILE.npy
The second form checks a llama2.c v0 checkpoint (INTERLEAVED RoPE pairs).
"""
import argparse
import json
import os
import struct
import sys

import numpy as np


def load_weights(model_dir):
    idx_path = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(idx_path):
        with open(idx_path) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
    else:
        shards = ["model.safetensors"]
    out = {}
    for name in shards:
        with open(os.path.join(model_dir, name), "rb") as f:
            (hlen,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(hlen))
            data = f.read()
        for key, meta in header.items():
            if key == "__metadata__":
                continue
            dt = {"F16": np.float16, "F32": np.float32}[meta["dtype"]]
            b, e = meta["data_offsets"]
            out[key] = np.frombuffer(data[b:e], dtype=dt).reshape(meta["shape"]).astype(np.float64)
    return out


def rope_tables(cfg, n):
    hd = cfg.get("head_dim", cfg["hidden_size"] // cfg["num_attention_heads"])
    base = cfg.get("rope_theta", 10000.0)
    # inv_freq and the angle are rounded to float32 as in HF.
    inv = (1.0 / base ** (np.arange(0, hd, 2, dtype=np.float64) / hd)).astype(np.float32)
    ang = (np.arange(n, dtype=np.float32)[:, None] * inv[None, :]).astype(np.float32)
    return np.cos(ang.astype(np.float64)), np.sin(ang.astype(np.float64))


def rope_half(x, cos, sin):
    # x: [n, heads, hd]; pairs (j, j + hd/2)
    h = x.shape[-1] // 2
    x0, x1 = x[..., :h], x[..., h:]
    c, s = cos[:, None, :], sin[:, None, :]
    return np.concatenate([x0 * c - x1 * s, x1 * c + x0 * s], axis=-1)


def rope_interleaved(x, cos, sin):
    # pairs (2j, 2j + 1)
    x0, x1 = x[..., 0::2], x[..., 1::2]
    c, s = cos[:, None, :], sin[:, None, :]
    out = np.empty_like(x)
    out[..., 0::2] = x0 * c - x1 * s
    out[..., 1::2] = x1 * c + x0 * s
    return out


def load_llama2c(path):
    """Config dict and HF-named weights from a llama2.c v0 file."""
    raw = open(path, "rb").read()
    dim, hidden, nl, nh, nkv, vocab, seq = struct.unpack("<7i", raw[:28])
    shared = vocab > 0
    vocab = abs(vocab)
    hd = dim // nh
    a = np.frombuffer(raw[28:], dtype="<f4").astype(np.float64)
    pos = [0]

    def take(*shape):
        n = int(np.prod(shape))
        out = a[pos[0]:pos[0] + n].reshape(shape)
        pos[0] += n
        return out

    W = {"model.embed_tokens.weight": take(vocab, dim)}
    per = [("input_layernorm.weight", (dim,)), ("self_attn.q_proj.weight", (nh * hd, dim)),
           ("self_attn.k_proj.weight", (nkv * hd, dim)), ("self_attn.v_proj.weight", (nkv * hd, dim)),
           ("self_attn.o_proj.weight", (dim, nh * hd)), ("post_attention_layernorm.weight", (dim,)),
           ("mlp.gate_proj.weight", (hidden, dim)), ("mlp.down_proj.weight", (dim, hidden)),
           ("mlp.up_proj.weight", (hidden, dim))]
    for name, shape in per:
        for l in range(nl):
            W["model.layers.%d.%s" % (l, name)] = take(*shape)
    W["model.norm.weight"] = take(dim)
    take(seq, hd)  # freq_cis tables: recomputed
    if not shared:
        W["lm_head.weight"] = take(vocab, dim)
    cfg = {"hidden_size": dim, "num_attention_heads": nh, "num_key_value_heads": nkv,
           "num_hidden_layers": nl, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
           "max_position_embeddings": seq, "interleaved": True}
    return cfg, W


def rmsnorm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def forward(cfg, W, tokens):
    n = len(tokens)
    D = cfg["hidden_size"]
    Hq = cfg["num_attention_heads"]
    Hkv = cfg.get("num_key_value_heads", Hq)
    hd = cfg.get("head_dim", D // Hq)
    eps = cfg.get("rms_norm_eps", 1e-6)
    cos, sin = rope_tables(cfg, n)
    x = W["model.embed_tokens.weight"][tokens]
    mask = np.triu(np.full((n, n), -np.inf), 1)
    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l
        h = rmsnorm(x, W[p + "input_layernorm.weight"], eps)
        q = (h @ W[p + "self_attn.q_proj.weight"].T).reshape(n, Hq, hd)
        k = (h @ W[p + "self_attn.k_proj.weight"].T).reshape(n, Hkv, hd)
        v = (h @ W[p + "self_attn.v_proj.weight"].T).reshape(n, Hkv, hd)
        rope = rope_interleaved if cfg.get("interleaved") else rope_half
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        out = np.empty((n, Hq, hd))
        for hh in range(Hq):
            g = hh * Hkv // Hq
            s = q[:, hh, :] @ k[:, g, :].T / np.sqrt(hd) + mask
            s = np.exp(s - s.max(axis=1, keepdims=True))
            s /= s.sum(axis=1, keepdims=True)
            out[:, hh, :] = s @ v[:, g, :]
        x = x + out.reshape(n, Hq * hd) @ W[p + "self_attn.o_proj.weight"].T
        h = rmsnorm(x, W[p + "post_attention_layernorm.weight"], eps)
        g = h @ W[p + "mlp.gate_proj.weight"].T
        u = h @ W[p + "mlp.up_proj.weight"].T
        x = x + (g / (1.0 + np.exp(-g)) * u) @ W[p + "mlp.down_proj.weight"].T
    x = rmsnorm(x, W["model.norm.weight"], eps)
    head = W.get("lm_head.weight", W["model.embed_tokens.weight"])
    return x @ head.T


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--llama2c")
    ap.add_argument("--tokens-file")
    ap.add_argument("--window", type=int, default=0)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--compare", required=True)
    ap.add_argument("--tol", type=float, default=1e-3)
    a = ap.parse_args()
    if a.llama2c:
        if not os.path.exists(a.llama2c):
            print("ref_forward: SKIP, no model at %s" % a.llama2c)
            return 77
        cfg, W = load_llama2c(a.llama2c)
        toks = np.fromfile(a.tokens_file, dtype="<u2")[:a.tokens].astype(np.int64)
        return compare(forward(cfg, W, toks), a)
    if not os.path.exists(os.path.join(a.model, "config.json")):
        print("ref_forward: SKIP, no model at %s" % a.model)
        return 77
    with open(os.path.join(a.model, "config.json")) as f:
        cfg = json.load(f)
    T = cfg["max_position_embeddings"]
    toks = np.fromfile(os.path.join(a.model, "val_tokens.bin"), dtype="<u2")
    toks = toks[a.window * T: a.window * T + a.tokens].astype(np.int64)
    return compare(forward(cfg, load_weights(a.model), toks), a)


def compare(ref, a):
    got = np.load(a.compare).astype(np.float64)
    if got.shape != ref.shape:
        print("ref_forward: FAIL shape %s != %s" % (got.shape, ref.shape))
        return 1
    diff = float(np.max(np.abs(got - ref)))
    ok = diff < a.tol and np.isfinite(diff)
    print("ref_forward: %s max |logit diff| = %.3g over %d tokens x %d vocab (tol %g)"
          % ("PASS" if ok else "FAIL", diff, ref.shape[0], ref.shape[1], a.tol))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
