#!/usr/bin/env python3
"""Synthetic q/k dumps for tests/test_calib_tool.sh (numpy only).

gen_dumps.py OUT_DIR writes, from one seeded rotate-half RoPE model:
  full/        full-sequence dump (f32, meta.txt), the reference input
  steps/       the same decode steps as per-step files
  v23/         full/ with .npy format 2.0 and 3.0 headers
  f16/ f16ref/ float16 data, and the same values widened to float32
  bf16/ bf16ref/  bfloat16 ('<V2', '|V2', 'bfloat16' descr), and as float32
  shape3/      a dump with 3 layers (for shape-mismatch tests)
  bad_*/       one defect each (see BAD below); the test script knows the
               message each must produce
"""
import os
import shutil
import struct
import sys

import numpy as np

LAYERS, HQ, HKV, D, T = 2, 4, 2, 32, 80


def npy_bytes(raw, descr, shape, fortran=False, version=(1, 0), header=None):
    if header is None:
        header = "{'descr': '%s', 'fortran_order': %s, 'shape': (%s), }" % (
            descr, "True" if fortran else "False",
            "".join("%d, " % s for s in shape) if len(shape) != 1 else "%d," % shape[0])
    hb = header.encode("utf-8")
    pre = 10 if version[0] == 1 else 12
    pad = (64 - (pre + len(hb) + 1) % 64) % 64
    hb = hb + b" " * pad + b"\n"
    fmt = "<H" if version[0] == 1 else "<I"
    return b"\x93NUMPY" + bytes(version) + struct.pack(fmt, len(hb)) + hb + raw


def save(path, arr, descr=None, **kw):
    arr = np.ascontiguousarray(arr)
    if descr is None:
        descr = {np.dtype("<f4"): "<f4", np.dtype("<f2"): "<f2"}[arr.dtype]
    with open(path, "wb") as f:
        f.write(npy_bytes(arr.tobytes(), descr, arr.shape, **kw))


def meta(d, layers=LAYERS, hq=HQ, hkv=HKV, hd=D, tokens=T, layout="half"):
    with open(os.path.join(d, "meta.txt"), "w") as f:
        f.write("layers %d\nq_heads %d\nkv_heads %d\nhead_dim %d\npair_layout %s\ntokens %d\n"
                % (layers, hq, hkv, hd, layout, tokens))


def model(seed, layers=LAYERS):
    """Post-RoPE q/k with FC energies that fall with frequency, so the
    low-frequency FCs dominate as in real models and ties are unlikely."""
    rng = np.random.default_rng(seed)
    half = D // 2
    inv = 10000.0 ** (-np.arange(half) * 2.0 / D)
    ang = np.arange(T)[:, None] * inv[None, :]
    cos = np.concatenate([np.cos(ang)] * 2, 1)[:, None, :]
    sin = np.concatenate([np.sin(ang)] * 2, 1)[:, None, :]
    amp = np.concatenate([np.linspace(0.3, 2.0, half)] * 2)

    def rope(x):
        rot = np.concatenate([-x[..., half:], x[..., :half]], -1)
        return x * cos + rot * sin

    out = []
    for _ in range(layers):
        q = rng.standard_normal((T, HQ, D)) * amp + 0.5 * amp
        k = rng.standard_normal((T, HKV, D)) * amp + 0.3 * amp
        out.append((rope(q).astype(np.float32), rope(k).astype(np.float32)))
    return out


def write_full(d, qk, descrs=None, versions=None):
    os.makedirs(d, exist_ok=True)
    meta(d, layers=len(qk))
    for l, (q, k) in enumerate(qk):
        v = versions[l] if versions else (1, 0)
        save(os.path.join(d, "q_layer%d.npy" % l), q, version=v)
        save(os.path.join(d, "k_layer%d.npy" % l), k, version=v)


def to_bf16_bits(x):
    b = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    r = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)
    return r, (r.astype(np.uint32) << 16).view(np.float32)


def main():
    out = sys.argv[1]
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    qk = model(1)
    full = os.path.join(out, "full")
    write_full(full, qk)

    steps = os.path.join(out, "steps")
    os.makedirs(steps)
    meta(steps)
    for p in range(40, 80, 8):
        for l, (q, k) in enumerate(qk):
            save(os.path.join(steps, "step%d_layer%d_q.npy" % (p, l)), q[p])
            save(os.path.join(steps, "step%d_layer%d_k.npy" % (p, l)), k[: p + 1])

    write_full(os.path.join(out, "v23"), qk, versions=[(2, 0), (3, 0)])

    f16 = [(q.astype(np.float16), k.astype(np.float16)) for q, k in qk]
    d = os.path.join(out, "f16")
    os.makedirs(d)
    meta(d)
    for l, (q, k) in enumerate(f16):
        save(os.path.join(d, "q_layer%d.npy" % l), q)
        save(os.path.join(d, "k_layer%d.npy" % l), k)
    write_full(os.path.join(out, "f16ref"),
               [(q.astype(np.float32), k.astype(np.float32)) for q, k in f16])

    d = os.path.join(out, "bf16")
    os.makedirs(d)
    meta(d)
    ref = []
    for l, (q, k) in enumerate(qk):
        (qb, qf), (kb, kf) = to_bf16_bits(q), to_bf16_bits(k)
        save(os.path.join(d, "q_layer%d.npy" % l), qb, descr=["<V2", "bfloat16"][l])
        save(os.path.join(d, "k_layer%d.npy" % l), kb, descr=["|V2", "<V2"][l])
        ref.append((qf, kf))
    write_full(os.path.join(out, "bf16ref"), ref)

    write_full(os.path.join(out, "shape3"), model(2, layers=3))

    # --- defects: each bad_X is a copy of full/ with one thing broken ---
    def bad(name):
        d = os.path.join(out, "bad_" + name)
        shutil.copytree(full, d)
        return d

    q1 = os.path.join("q_layer1.npy")
    d = bad("truncated")
    raw = open(os.path.join(d, q1), "rb").read()
    open(os.path.join(d, q1), "wb").write(raw[:-100])
    d = bad("magic")
    open(os.path.join(d, q1), "wb").write(b"\x92" + raw[1:])
    d = bad("header")
    with open(os.path.join(d, q1), "wb") as f:
        f.write(npy_bytes(qk[1][0].tobytes(), None, None,
                          header="{'descr': '<f4', 'fortran_order': False, 'shape': (80, 4, 32), 'x"))
    d = bad("header_key")
    with open(os.path.join(d, q1), "wb") as f:
        f.write(npy_bytes(qk[1][0].tobytes(), None, None,
                          header="{'descr': '<f4', 'fortran_order': False, 'shape': (80, 4, 32), 'extra': 1}"))
    d = bad("f8")
    save(os.path.join(d, q1), qk[1][0].astype(np.float64), descr="<f8")
    d = bad("bigendian")
    save(os.path.join(d, q1), qk[1][0].astype(">f4"), descr=">f4")
    d = bad("int")
    save(os.path.join(d, q1), qk[1][0].astype(np.int32), descr="<i4")
    d = bad("fortran")
    with open(os.path.join(d, q1), "wb") as f:
        f.write(npy_bytes(qk[1][0].tobytes(order="F"), "<f4", qk[1][0].shape, fortran=True))
    d = bad("headdim")
    save(os.path.join(d, q1), qk[1][0][:, :, :16])
    save(os.path.join(d, "k_layer1.npy"), qk[1][1][:, :, :16])
    d = bad("tokens")
    save(os.path.join(d, "k_layer1.npy"), qk[1][1][:70])
    d = bad("heads")
    for l in range(LAYERS):
        save(os.path.join(d, "q_layer%d.npy" % l), qk[l][0][:, :3])
    meta(d, hq=3)
    d = bad("meta")
    meta(d, hq=8)
    d = bad("meta_layout")
    with open(os.path.join(d, "meta.txt"), "a") as f:
        f.write("pair_layout rotated\n")
    d = bad("missing")
    os.remove(os.path.join(d, "k_layer1.npy"))
    d = bad("ndim")
    save(os.path.join(d, q1), qk[1][0][:, 0])
    d = bad("version")
    raw2 = bytearray(raw)
    raw2[6] = 4
    open(os.path.join(d, q1), "wb").write(bytes(raw2))
    d = bad("hlen")
    raw2 = bytearray(raw)
    raw2[8:10] = struct.pack("<H", 65000)
    open(os.path.join(d, q1), "wb").write(bytes(raw2[:2000]))
    d = bad("trailing")
    open(os.path.join(d, q1), "wb").write(raw + b"\0" * 8)
    d = bad("empty")
    open(os.path.join(d, q1), "wb").close()
    d = bad("nan")
    q = qk[1][0].copy()
    q[48, 2, 5] = np.nan
    save(os.path.join(d, q1), q)
    d = bad("nolayout")
    meta_txt = open(os.path.join(d, "meta.txt")).read().replace("pair_layout half\n", "")
    open(os.path.join(d, "meta.txt"), "w").write(meta_txt)
    d = os.path.join(out, "bad_steplayer")
    shutil.copytree(steps, d)
    for f in os.listdir(d):
        if "_layer0_" in f:
            os.remove(os.path.join(d, f))
    os.remove(os.path.join(d, "meta.txt"))
    d = os.path.join(out, "bad_stepk")
    shutil.copytree(steps, d)
    os.remove(os.path.join(d, "step56_layer1_k.npy"))
    os.makedirs(os.path.join(out, "bad_empty_dir"))

    # Random header corruption: any outcome but a crash is acceptable.
    rng = np.random.default_rng(7)
    for i in range(40):
        d = os.path.join(out, "fuzz%02d" % i)
        shutil.copytree(full, d)
        b = bytearray(raw)
        for _ in range(1 + i % 4):
            b[int(rng.integers(0, 128))] = int(rng.integers(0, 256))
        if i % 5 == 4:
            b = b[: int(rng.integers(0, 200))]
        open(os.path.join(d, q1), "wb").write(bytes(b))


if __name__ == "__main__":
    main()
