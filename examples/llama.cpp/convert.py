#!/usr/bin/python3
"""convert.py - a Hugging Face LlamaForCausalLM checkpoint (safetensors, byte-level
BPE tokenizer.json) to GGUF for the pinned llama.cpp snapshot.

Why not the snapshot's convert_hf_to_gguf.py: it needs `transformers` (for the
tokenizer), `safetensors` and `torch`, none of which can be installed here. This
converter needs only numpy and the snapshot's own gguf-py package, imported from the
unpacked snapshot at run time (--gguf-py DIR), so nothing of llama.cpp is copied.

It writes what convert_hf_to_gguf.py writes for a Llama model:
  - q/k projection rows permuted per head as the HF converter does, so that
    llama.cpp's ROPE_TYPE_NORM (interleaved pairs) computes HF's rotate-half RoPE:
    HF dims (j, j + d/2) become dims (2j, 2j + 1). FC index j is unchanged; a FASA
    profile calibrated on the HF model (HALF layout) is used with the INTERLEAVED
    layout (the adapter does this relabelling).
  - a "gpt2" BPE vocabulary with the "gpt-2" pre-tokenizer (the HF tokenizer is
    ByteLevel with use_regex, which is the GPT-2 split regex).
  - tied embeddings: no output.weight (llama.cpp reuses token_embd).

usage: convert.py --gguf-py DIR MODEL_DIR OUT.gguf [--dtype f32|f16]
"""
import argparse
import json
import os
import struct
import sys
import types

import numpy as np


def import_gguf(path):
    # gguf-py's vocab module imports sentencepiece at load time; nothing used here
    # needs it, so an empty stand-in module is enough.
    if "sentencepiece" not in sys.modules:
        stub = types.ModuleType("sentencepiece")
        stub.SentencePieceProcessor = None
        sys.modules["sentencepiece"] = stub
    sys.path.insert(0, path)
    import gguf  # noqa: E402
    return gguf


def read_safetensors(path):
    """name -> numpy array (copy) for every tensor of one safetensors file."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        base = 8 + n
        data = f.read()
    out = {}
    dtypes = {"F16": np.float16, "BF16": None, "F32": np.float32}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = data[a:b]
        if info["dtype"] == "BF16":
            u = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            arr = u.view(np.float32)
        elif info["dtype"] in dtypes:
            arr = np.frombuffer(raw, dtype=dtypes[info["dtype"]])
        else:
            raise SystemExit(f"{path}: {name}: unsupported dtype {info['dtype']}")
        shape = info["shape"]
        if arr.size != int(np.prod(shape)) or base + b > base + len(data):
            raise SystemExit(f"{path}: {name}: size does not match shape {shape}")
        out[name] = arr.reshape(shape).copy()
    return out


def permute_rows(w, n_head):
    """HF rotate-half rows -> llama.cpp interleaved rows, per head (as convert_hf_to_gguf)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gguf-py", required=True, help="the snapshot's gguf-py directory")
    ap.add_argument("--dtype", choices=["f32", "f16"], default="f32")
    ap.add_argument("model")
    ap.add_argument("out")
    a = ap.parse_args()
    gguf = import_gguf(a.gguf_py)

    cfg = json.load(open(os.path.join(a.model, "config.json")))
    if cfg.get("model_type") != "llama" or cfg.get("rope_scaling"):
        raise SystemExit("convert.py: only unscaled HF Llama checkpoints are supported")
    n_layer = cfg["num_hidden_layers"]
    n_head = cfg["num_attention_heads"]
    n_head_kv = cfg.get("num_key_value_heads", n_head)
    n_embd = cfg["hidden_size"]
    head_dim = cfg.get("head_dim", n_embd // n_head)

    index_path = os.path.join(a.model, "model.safetensors.index.json")
    if os.path.exists(index_path):
        files = sorted(set(json.load(open(index_path))["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    tensors = {}
    for fn in files:
        tensors.update(read_safetensors(os.path.join(a.model, fn)))

    tok = json.load(open(os.path.join(a.model, "tokenizer.json")))
    m = tok["model"]
    pre = tok.get("pre_tokenizer") or {}
    if m["type"] != "BPE" or pre.get("type") != "ByteLevel" or not pre.get("use_regex", True):
        raise SystemExit("convert.py: only byte-level BPE tokenizers (GPT-2 regex) are supported")
    vocab = m["vocab"]
    n_vocab = cfg["vocab_size"]
    tokens = [None] * n_vocab
    for piece, i in vocab.items():
        tokens[i] = piece
    types_ = [gguf.TokenType.NORMAL] * n_vocab
    for t in tok.get("added_tokens", []):
        tokens[t["id"]] = t["content"]
        types_[t["id"]] = gguf.TokenType.CONTROL if t.get("special") else gguf.TokenType.USER_DEFINED
    for i in range(n_vocab):
        if tokens[i] is None:
            tokens[i] = f"[PAD{i}]"
            types_[i] = gguf.TokenType.UNUSED
    merges = [" ".join(x) if isinstance(x, list) else x for x in m["merges"]]

    w = gguf.GGUFWriter(a.out, "llama")
    w.add_name(os.path.basename(os.path.normpath(a.model)))
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_rope_dimension_count(head_dim)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_freq_base(cfg.get("rope_theta", 10000.0))
    w.add_vocab_size(n_vocab)
    w.add_file_type(gguf.LlamaFileType.ALL_F32 if a.dtype == "f32" else gguf.LlamaFileType.MOSTLY_F16)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types(types_)
    w.add_token_merges(merges)
    w.add_bos_token_id(cfg.get("bos_token_id", 0))
    w.add_eos_token_id(cfg.get("eos_token_id", 0))
    w.add_add_bos_token(False)
    w.add_add_eos_token(False)

    def put(name, arr, matrix=True):
        arr = np.asarray(arr, dtype=np.float32)
        if matrix and a.dtype == "f16":
            arr = arr.astype(np.float16)
        w.add_tensor(name, np.ascontiguousarray(arr))

    put("token_embd.weight", tensors["model.embed_tokens.weight"])
    if "lm_head.weight" in tensors and not cfg.get("tie_word_embeddings", False):
        put("output.weight", tensors["lm_head.weight"])
    put("output_norm.weight", tensors["model.norm.weight"], matrix=False)
    names = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
             "mlp.down_proj": "ffn_down"}
    for i in range(n_layer):
        p = f"model.layers.{i}."
        for hf, gg in names.items():
            t = tensors[p + hf + ".weight"]
            if hf == "self_attn.q_proj":
                t = permute_rows(t, n_head)
            elif hf == "self_attn.k_proj":
                t = permute_rows(t, n_head_kv)
            put(f"blk.{i}.{gg}.weight", t)
        put(f"blk.{i}.attn_norm.weight", tensors[p + "input_layernorm.weight"], matrix=False)
        put(f"blk.{i}.ffn_norm.weight", tensors[p + "post_attention_layernorm.weight"], matrix=False)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"convert.py: {a.model} -> {a.out} ({a.dtype}, {n_layer} layers, {n_head}/{n_head_kv} heads, "
          f"head_dim {head_dim}, vocab {n_vocab})")


if __name__ == "__main__":
    main()
