#!/usr/bin/env python3
"""Dump post-RoPE q/k of a Hugging Face Llama / Qwen2 / Mistral model for
`fasa-calib run` (full-sequence format, docs/calibration.md).

How it captures q/k: it wraps `apply_rotary_pos_emb` in the model's own
modeling module (transformers.models.<type>.modeling_<type>), which every
attention implementation (eager, sdpa, flash) calls with the projected,
reshaped q/k and returns them rotated. A forward pre-hook on each layer's
`self_attn` tells the wrapper which layer is running. So the dump is exactly
what attention sees, after the model's own RoPE and rope scaling, in HF
rotate-half layout: pair_layout half (use `--layout adjacent` in fasa-calib
to reproduce the official FASA grouping).

    python3 calib/dump_hf.py --model PATH --tokens val_tokens.bin --window 0 \
        --length 4096 --out dumps/w0
    python3 calib/dump_hf.py --model PATH --text prompt.txt --out dumps/p0

Needs torch and transformers (not needed by libfasa itself).
"""
import argparse
import importlib
import os

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def load_ids(args, model_path):
    if args.tokens:
        raw = np.fromfile(args.tokens, dtype="<u2")
        ids = raw[args.window * args.length:(args.window + 1) * args.length]
        if ids.size != args.length:
            raise SystemExit("%s: window %d is beyond the file" % (args.tokens, args.window))
        return torch.tensor(ids.astype(np.int64))[None]
    tok = AutoTokenizer.from_pretrained(model_path)
    with open(args.text, encoding="utf-8") as f:
        ids = tok(f.read(), return_tensors="pt").input_ids
    return ids[:, : args.length]


def save(path, t, dtype):
    """t: [heads, seq, dim] of one sequence -> [seq, heads, dim] C order."""
    x = t.transpose(0, 1).contiguous()
    if dtype == "bfloat16":  # numpy has no bf16: store the raw 2-byte words
        arr = x.to(torch.bfloat16).view(torch.int16).cpu().numpy().view(np.dtype("V2"))
    else:
        arr = x.to(getattr(torch, dtype)).cpu().numpy()
    np.save(path, np.ascontiguousarray(arr))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--tokens", help="little-endian uint16 token windows")
    src.add_argument("--text", help="UTF-8 text, tokenized with the model's tokenizer")
    ap.add_argument("--window", type=int, default=0)
    ap.add_argument("--length", type=int, default=4096)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"],
                    help="element type of the .npy files")
    ap.add_argument("--model-dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    model = AutoModelForCausalLM.from_pretrained(
        args.model, torch_dtype=getattr(torch, args.model_dtype)).to(args.device).eval()
    cfg = model.config
    mod = importlib.import_module(type(model.model.layers[0].self_attn).__module__)
    original = mod.apply_rotary_pos_emb
    state = {"layer": None}
    qs, ks = {}, {}

    def wrapped(q, k, *a, **kw):
        q_rot, k_rot = original(q, k, *a, **kw)
        qs[state["layer"]] = q_rot[0].detach().float().cpu()  # [Hq, seq, d]
        ks[state["layer"]] = k_rot[0].detach().float().cpu()  # [Hkv, seq, d]
        return q_rot, k_rot

    def pre_hook(layer):
        def hook(module, inputs, kwargs=None):
            state["layer"] = layer
        return hook

    hooks = [blk.self_attn.register_forward_pre_hook(pre_hook(i))
             for i, blk in enumerate(model.model.layers)]
    mod.apply_rotary_pos_emb = wrapped
    try:
        ids = load_ids(args, args.model).to(args.device)
        with torch.no_grad():
            model(ids, use_cache=False)
    finally:
        mod.apply_rotary_pos_emb = original
        for h in hooks:
            h.remove()

    os.makedirs(args.out, exist_ok=True)
    n_layers = len(model.model.layers)
    if sorted(qs) != list(range(n_layers)):
        raise SystemExit("captured layers %s, expected 0..%d: is apply_rotary_pos_emb "
                         "called from %s?" % (sorted(qs), n_layers - 1, mod.__name__))
    for layer in range(n_layers):
        save(os.path.join(args.out, "q_layer%d.npy" % layer), qs[layer], args.dtype)
        save(os.path.join(args.out, "k_layer%d.npy" % layer), ks[layer], args.dtype)
    hq, seq, d = qs[0].shape
    with open(os.path.join(args.out, "meta.txt"), "w") as f:
        f.write("layers %d\nq_heads %d\nkv_heads %d\nhead_dim %d\npair_layout half\n"
                "tokens %d\nmodel %s\n" % (n_layers, hq, ks[0].shape[0], d, seq,
                                           getattr(cfg, "_name_or_path", args.model)))


if __name__ == "__main__":
    main()
