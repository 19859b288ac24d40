"""An independent pure-Python reader and writer of docs/profile-format.md
(version 1), used to cross-check the C library's files in both directions."""
import struct
import zlib

import numpy as np

MAGIC = b"FASAPRF\0"
HEADER = struct.Struct("<8sII QQQQ IIIII I")


def parse(data):
    """dict of every field of a profile file; raises ValueError if malformed."""
    if len(data) < HEADER.size + 4:
        raise ValueError("truncated")
    (magic, version, header_size, n_layers, hq, hkv, d, layout, flags, n_k, selection_k,
     max_fc, reserved) = HEADER.unpack_from(data, 0)
    if magic != MAGIC or version != 1 or header_size != HEADER.size or reserved != 0:
        raise ValueError("bad header")
    crc, = struct.unpack_from("<I", data, len(data) - 4)
    if crc != zlib.crc32(data[:-4]):
        raise ValueError("bad crc")
    f = d // 2
    pos = HEADER.size

    def take(dtype, count):
        nonlocal pos
        arr = np.frombuffer(data, dtype=dtype, count=count, offset=pos)
        pos += arr.nbytes
        return arr

    out = dict(shape=(n_layers, hq, hkv, d, layout), selection_k=selection_k, max_fc=max_fc)
    out["k_values"] = take("<u4", n_k)
    out["layer_steps"] = take("<u8", n_layers)
    agree = take("<f4", n_layers * n_k * hq * f) if flags & 1 else None
    out["agreement"] = None if agree is None else agree.reshape(n_layers, n_k, hq, f)
    out["dense"] = take("u1", n_layers)
    count = take("<u2", n_layers * hq)
    rows = take("<u2", n_layers * hq * max_fc).reshape(n_layers * hq, max_fc)
    out["fcs"] = [rows[r, :count[r]] for r in range(n_layers * hq)]
    gcount = take("<u2", n_layers * hkv)
    grows = take("<u2", n_layers * hkv * max_fc).reshape(n_layers * hkv, max_fc)
    out["group_fcs"] = [grows[r, :gcount[r]] for r in range(n_layers * hkv)]
    if pos != len(data) - 4:
        raise ValueError("size mismatch: %d section bytes, file %d" % (pos + 4, len(data)))
    return out


def build(shape, fcs, group_fcs, dense, k_values=(), layer_steps=None, agreement=None,
          selection_k=0):
    """Bytes of a profile file. fcs: per (layer, q head) row lists;
    group_fcs: per (layer, kv head) row lists; agreement [L][nK][Hq][d/2]."""
    n_layers, hq, hkv, d, layout = shape
    max_fc = max(len(r) for r in list(fcs) + list(group_fcs))
    flags = 1 if agreement is not None else 0
    parts = [HEADER.pack(MAGIC, 1, HEADER.size, n_layers, hq, hkv, d, layout, flags,
                         len(k_values), selection_k, max_fc, 0)]
    parts.append(np.asarray(k_values, "<u4").tobytes())
    steps = np.zeros(n_layers) if layer_steps is None else layer_steps
    parts.append(np.asarray(steps, "<u8").tobytes())
    if agreement is not None:
        parts.append(np.asarray(agreement, "<f4").tobytes())
    parts.append(np.asarray(dense, "u1").tobytes())
    for rows in (fcs, group_fcs):
        parts.append(np.array([len(r) for r in rows], "<u2").tobytes())
        table = np.zeros((len(rows), max_fc), "<u2")
        for i, r in enumerate(rows):
            table[i, :len(r)] = sorted(r)
        parts.append(table.tobytes())
    body = b"".join(parts)
    return body + struct.pack("<I", zlib.crc32(body))
