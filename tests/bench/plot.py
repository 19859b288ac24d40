#!/usr/bin/env python3
"""plot.py - turn `make bench` output into results.md and an SVG plot.

    plot.py BENCH_DIR [SVG_PATH]

Reads BENCH_DIR/results.csv (and topk.csv if present), writes
BENCH_DIR/results.md (markdown tables) and SVG_PATH (default
BENCH_DIR/bench-time-vs-t.svg): time per decode step vs context length t,
log-log, for dense and FASA (both GQA modes, every budget), one panel per
thread count, KV dtype f16 (or the first dtype present). Plain Python, no
third-party modules.
"""
import csv
import math
import os
import sys


def load(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def fmt_t(t):
    return "%dk" % (t // 1024) if t >= 1024 and t % 1024 == 0 else str(t)


def write_md(rows, topk, path):
    out = ["# libfasa bench results", "",
           "Time per decode step of one Llama-3-8B-shaped layer (32 q heads, 8 KV heads, d 128), "
           "median; bytes = what the path must read; bw = read bandwidth measured just before "
           "the rows of this t, dtype and thread count; of bw = achieved / bw.", "",
           "| t | KV | thr | path | budget | TIP ms | top-k ms | FAC ms | total ms | best ms | MB read | GB/s | bw GB/s | of bw | vs dense |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        b = r["budget"] if r["budget"] != "0" else "-"
        tip = "%.3f" % float(r["tip_ms"]) if b != "-" else "-"
        tk = r["topk_ms"]
        tk = "%.3f" % float(tk) if b != "-" and tk not in ("nan", "-nan") else "-"
        best = "%.3f" % float(r["best_ms"]) if "best_ms" in r else "-"
        out.append("| %s | %s | %s | %s | %s | %s | %s | %.3f | %.3f | %s | %.1f | %.2f | %.1f | %.0f%% | %.2fx |" % (
            fmt_t(int(r["t"])), r["kv_dtype"], r["threads"], r["path"], b, tip, tk,
            float(r["fac_ms"]), float(r["total_ms"]), best, float(r["bytes"]) / 1e6, float(r["gbps"]),
            float(r["read_bw_gbps"]), 100 * float(r["frac_of_bw"]), float(r["speedup_vs_dense"])))
    if topk:
        out += ["", "Top-k alone (one set, one thread, microseconds) and label-cache append:", "",
                "| t | k | KV/label dtype | filter + tau hint | filter, no hint | qsort (score,idx) | append ns/token, per-head cache | append ns/token, group cache | same, K row not in cache (per-head / group) |",
                "|---|---|---|---|---|---|---|---|---|"]
        for r in topk:
            out.append("| %s | %s | %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f / %.1f |" % (
                fmt_t(int(r["t"])), r["k"], r["dtype"], float(r["topk_hint_us"]),
                float(r["topk_us"]), float(r["qsort_us"]), float(r["append_head_ns"]),
                float(r["append_group_ns"]), float(r["append_head_cold_ns"]),
                float(r["append_group_cold_ns"])))
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


COLORS = {"dense": "#222222", "naive": "#999999", "fasa_head": "#1f77b4", "fasa_group": "#d62728"}
DASH = {"256": "", "1024": "6,4"}


def write_svg(rows, path):
    dtypes = [d for d in ("f16", "bf16", "f32") if any(r["kv_dtype"] == d for r in rows)]
    if not dtypes:
        return
    dt = dtypes[0]
    rows = [r for r in rows if r["kv_dtype"] == dt]
    threads = sorted({int(r["threads"]) for r in rows})
    ts = sorted({int(r["t"]) for r in rows})
    vals = [float(r["total_ms"]) for r in rows if r["path"] != "naive" and float(r["total_ms"]) > 0]
    if not ts or not vals:
        return
    lo, hi = math.log10(min(vals)) - 0.1, math.log10(max(vals)) + 0.1
    tlo, thi = math.log2(ts[0]) - 0.3, math.log2(ts[-1]) + 0.3
    pw, ph, ml, mt, mb = 360, 280, 60, 40, 50
    width = ml + len(threads) * (pw + 30) + 240
    height = mt + ph + mb
    svg = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">' % (width, height),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="18" font-size="13">libfasa: time per decode step vs context (Llama-3-8B layer, %s KV, log-log)</text>' % (ml, dt)]
    for pi, th in enumerate(threads):
        x0 = ml + pi * (pw + 30)

        def X(t):
            return x0 + (math.log2(t) - tlo) / (thi - tlo) * pw

        def Y(ms):
            return mt + ph - (math.log10(ms) - lo) / (hi - lo) * ph

        svg.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#444"/>' % (x0, mt, pw, ph))
        svg.append('<text x="%d" y="%d">%d thread%s</text>' % (x0 + 4, mt - 6, th, "" if th == 1 else "s"))
        for t in ts:
            svg.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>' % (X(t), mt, X(t), mt + ph))
            svg.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>' % (X(t), mt + ph + 14, fmt_t(t)))
        for e in range(math.floor(lo), math.ceil(hi) + 1):
            for m in (1, 2, 5):
                v = m * 10 ** e
                if lo <= math.log10(v) <= hi:
                    svg.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eee"/>' % (x0, Y(v), x0 + pw, Y(v)))
                    if pi == 0:
                        svg.append('<text x="%d" y="%.1f" text-anchor="end">%g</text>' % (x0 - 4, Y(v) + 4, v))
        svg.append('<text x="%d" y="%d" text-anchor="middle">context length t</text>' % (x0 + pw // 2, mt + ph + 32))
        series = {}
        for r in rows:
            if int(r["threads"]) != th or r["path"] == "naive":
                continue
            key = (r["path"], r["budget"])
            series.setdefault(key, []).append((int(r["t"]), float(r["total_ms"])))
        for (p, b), pts in sorted(series.items()):
            pts.sort()
            d = " ".join("%s%.1f,%.1f" % ("M" if i == 0 else "L", X(t), Y(ms)) for i, (t, ms) in enumerate(pts))
            dash = "" if p == "dense" else DASH.get(b, "2,2")
            svg.append('<path d="%s" fill="none" stroke="%s" stroke-width="2"%s/>' % (
                d, COLORS.get(p, "#000"), ' stroke-dasharray="%s"' % dash if dash else ""))
            for t, ms in pts:
                svg.append('<circle cx="%.1f" cy="%.1f" r="2.5" fill="%s"/>' % (X(t), Y(ms), COLORS.get(p, "#000")))
    svg.append('<text x="14" y="%d" transform="rotate(-90 14 %d)" text-anchor="middle">ms per step (one layer)</text>' % (mt + ph // 2, mt + ph // 2))
    lx, ly = ml + len(threads) * (pw + 30), mt + 10
    legend = [("dense", "0", "fasa_attend_dense")]
    budgets = sorted({r["budget"] for r in rows if r["budget"] != "0"}, key=int)
    for b in budgets:
        legend.append(("fasa_head", b, "FASA per-head, budget %s" % b))
        legend.append(("fasa_group", b, "FASA group, budget %s" % b))
    for i, (p, b, label) in enumerate(legend):
        y = ly + i * 18
        dash = DASH.get(b, "2,2") if p != "dense" else ""
        svg.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/>' % (
            lx, y, lx + 24, y, COLORS[p], ' stroke-dasharray="%s"' % dash if dash else ""))
        svg.append('<text x="%d" y="%d">%s</text>' % (lx + 30, y + 4, label))
    svg.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(svg) + "\n")


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    d = sys.argv[1]
    svg = sys.argv[2] if len(sys.argv) > 2 else os.path.join(d, "bench-time-vs-t.svg")
    rows = load(os.path.join(d, "results.csv"))
    tk_path = os.path.join(d, "topk.csv")
    topk = load(tk_path) if os.path.exists(tk_path) else []
    write_md(rows, topk, os.path.join(d, "results.md"))
    write_svg(rows, svg)
    print("wrote %s and %s" % (os.path.join(d, "results.md"), svg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
