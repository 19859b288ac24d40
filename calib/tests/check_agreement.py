#!/usr/bin/env python3
"""Independent numpy check of `fasa-calib run` on a full-sequence dump.

check_agreement.py DUMP_DIR CSV A:B:S K1,K2,... LAYOUT
Recomputes the mean contextual agreement of every (layer, head, K, FC) the
way docs/calibration.md defines the protocol (query q[p], keys k[0..p],
raw dot products, ties to the lower token index) and compares it with the
`fasa-calib show --csv` output. Exits 1 on any difference above 1e-6.
"""
import csv
import os
import sys

import numpy as np


def topk(s, k):
    order = np.lexsort((np.arange(s.size), -s))  # descending, ties: lower index
    return set(order[:k].tolist())


def main():
    dump, csv_path, pos, klist, layout = sys.argv[1:6]
    a, b, s = (int(x) for x in pos.split(":"))
    ks = [int(x) for x in klist.split(",")]
    got = {}
    with open(csv_path) as f:
        for r in csv.DictReader(f):
            got[(int(r["layer"]), int(r["head"]), int(r["K"]), int(r["fc"]))] = float(r["agreement"])
    layer = 0
    worst = 0.0
    checked = 0
    while os.path.exists(os.path.join(dump, "q_layer%d.npy" % layer)):
        q = np.load(os.path.join(dump, "q_layer%d.npy" % layer)).astype(np.float64)
        k = np.load(os.path.join(dump, "k_layer%d.npy" % layer)).astype(np.float64)
        _, hq, d = q.shape
        g = hq // k.shape[1]
        nfc = d // 2
        if layout == "half":
            dims = [(f, f + nfc) for f in range(nfc)]
        else:
            dims = [(2 * f, 2 * f + 1) for f in range(nfc)]
        acc = np.zeros((len(ks), hq, nfc))
        steps = list(range(a, b, s))
        for p in steps:
            for h in range(hq):
                keys = k[: p + 1, h // g]
                full = keys @ q[p, h]
                for ki, kk in enumerate(ks):
                    kk = min(kk, p + 1)
                    ref = topk(full, kk)
                    for f, (d0, d1) in enumerate(dims):
                        part = keys[:, d0] * q[p, h, d0] + keys[:, d1] * q[p, h, d1]
                        acc[ki, h, f] += len(ref & topk(part, kk)) / kk
        acc /= len(steps)
        for ki, kk in enumerate(ks):
            for h in range(hq):
                for f in range(nfc):
                    key = (layer, h, kk, f)
                    if key not in got:
                        print("check_agreement: missing", key)
                        return 1
                    worst = max(worst, abs(got[key] - acc[ki, h, f]))
                    checked += 1
        layer += 1
    print("check_agreement: %d values, max |difference| %.3g" % (checked, worst))
    if checked == 0 or checked != len(got) or worst > 1e-6:
        print("check_agreement: FAILED (%d values in CSV)" % len(got))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
