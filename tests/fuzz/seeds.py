#!/usr/bin/python3
"""Write the hand-made seed inputs of the npy, safetensors and views fuzz
targets into tests/fuzz/corpus/<target>/seed-*. Profile seeds come from
gen_profile_seeds.c (they need the library's writer). Deterministic: running
it again rewrites the same bytes."""
import io
import json
import os
import struct
import sys

import numpy as np

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    os.makedirs(os.path.join(root, target), exist_ok=True)
    with open(os.path.join(root, target, "seed-" + name), "wb") as f:
        f.write(data)


def npy(arr, version=None):
    b = io.BytesIO()
    if version is None:
        np.save(b, arr)
    else:
        np.lib.format.write_array(b, arr, version=version)
    return b.getvalue()


rng = np.random.default_rng(1)
put("npy", "f32-3d", npy(rng.standard_normal((3, 2, 4)).astype("<f4")))
put("npy", "f16-1d", npy(rng.standard_normal(5).astype("<f2")))
put("npy", "bf16-v2", npy(np.arange(4, dtype="<u2").view("V2").reshape(2, 2)))
put("npy", "f32-v2.0", npy(np.ones((2, 3), "<f4"), version=(2, 0)))
put("npy", "f32-v3.0", npy(np.ones((1, 1), "<f4"), version=(3, 0)))
put("npy", "scalar", npy(np.float32(1.5)))
put("npy", "empty", npy(np.zeros((0, 4), "<f4")))
put("npy", "fortran", npy(np.asfortranarray(np.ones((2, 3), "<f4"))))
put("npy", "f64-rejected", npy(np.ones(3, "<f8")))
put("npy", "truncated", npy(np.ones((4, 4), "<f4"))[:-5])


def safetensors(tensors, meta=True, pad=0):
    header, data = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if meta:
        header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header).encode() + b" " * pad
    return struct.pack("<Q", len(h)) + h + data


f32 = np.arange(6, dtype="<f4").tobytes()
f16 = np.arange(4, dtype="<f2").tobytes()
bf16 = (np.arange(2, dtype="<f4").view("<u4") >> 16).astype("<u2").tobytes()
put("safetensors", "three", safetensors({"a": ("F32", [2, 3], f32), "b": ("F16", [4], f16),
                                         "c": ("BF16", [1, 2], bf16)}, pad=3))
put("safetensors", "vector", safetensors({"model.norm.weight": ("F32", [6], f32)}, meta=False))
put("safetensors", "bad-dtype", safetensors({"x": ("I8", [4], b"\0" * 4)}))
put("safetensors", "size-mismatch", safetensors({"x": ("F32", [2, 2], f32)}))
put("safetensors", "escapes",
    struct.pack("<Q", 64) + b'{"\\u00e9\\n":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}  '[:64]
    + b"\0\0")
put("safetensors", "truncated", safetensors({"a": ("F32", [2, 3], f32)})[:-4])

# views: bytes drive shapes, layouts, dtypes, flags (see fuzz_views.c).
for i, b in enumerate([bytes(40), bytes(range(40)), bytes([1, 2, 3, 7, 79, 2, 0x3f, 0x20, 5] + [0] * 31),
                       bytes([2, 1, 5, 8, 40, 0, 0x10, 0x21, 3, 1, 3, 2, 4, 0, 0, 2, 1, 0, 3, 0, 0] + [9] * 20)]):
    put("views", "v%d" % i, b)
sys.exit(0)
