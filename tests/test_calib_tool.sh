#!/bin/sh
# tests/test_calib_tool.sh FASA_CALIB WORKDIR - tests of fasa-calib on
# synthetic dumps (calib/tests/gen_dumps.py): malformed input fails with a
# clear message and exit status 1 (never a crash), the two dump shapes and
# all element types give identical profiles, the agreement matches an
# independent numpy computation, and show/plot/diff/select work.
set -u
BIN=$1
W=$2
PY=${PYTHON:-/usr/bin/python3}
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }

rm -rf "$W" && mkdir -p "$W" || exit 1
D=$W/d
"$PY" calib/tests/gen_dumps.py "$D" || { echo "test_calib_tool: cannot generate dumps"; exit 1; }
# Small model: 2 layers, 4/2 heads, head_dim 32 (16 FCs), 80 tokens.
C="--positions 40:80:8 --k 4,8,16 --nfc 6"

# expect_fail NAME TEXT CMD...: exit status $code (1: failure, 2: usage), TEXT
# in stderr, no output file.
code=1
expect_fail() {
    name=$1 want=$2
    shift 2
    rm -f "$W/bad.fasa"
    "$@" >"$W/out" 2>"$W/err"
    rc=$?
    if [ $rc -ne $code ] || grep -q 'Sanitizer\|runtime error' "$W/err"; then
        bad "$name: exit status $rc, expected $code: $(cat "$W/err")"
    elif ! grep -qF -- "$want" "$W/err"; then
        bad "$name: message lacks '$want': $(cat "$W/err")"
    elif [ -e "$W/bad.fasa" ]; then
        bad "$name: wrote an output file"
    else
        echo "  ok $name: $(head -n 1 "$W/err")"
        ok
    fi
}
expect_ok() {
    name=$1
    shift
    if "$@" >"$W/out" 2>"$W/err"; then ok; else bad "$name: exit status $?: $(cat "$W/err")"; fi
}
same() {
    if cmp -s "$2" "$3"; then ok; else bad "$1: $2 and $3 differ"; fi
}

echo "malformed dumps:"
for c in "truncated|truncated data" "magic|bad magic" "header|bad header" \
    "header_key|unexpected key 'extra'" "f8|unsupported dtype '<f8'" \
    "bigendian|unsupported dtype '>f4'" "int|unsupported dtype '<i4'" \
    "fortran|fortran_order is True" "headdim|expected [..., 4, 32]" \
    "tokens|has 70 tokens but" "heads|not a multiple of 2 KV heads" \
    "meta|field 'q_heads' is 8" "meta_layout|field 'pair_layout'" \
    "missing|k_layer1.npy: cannot open" "ndim|has 2 dimensions, expected 3" \
    "version|format version 4.0" "hlen|truncated header" "trailing|trailing bytes" \
    "empty|empty file" "nan|FASA_ERR_NONFINITE" "nolayout|pair layout unknown" \
    "steplayer|layer 0 has no step files" "stepk|step56_layer1_k.npy: cannot open" \
    "empty_dir|no dump found"; do
    name=${c%%|*}
    expect_fail "$name" "${c#*|}" "$BIN" run "$D/bad_$name" -o "$W/bad.fasa" $C
done
crashes=0
for f in "$D"/fuzz*; do
    "$BIN" run "$f" -o "$W/fuzz.fasa" $C >/dev/null 2>"$W/err"
    rc=$?
    # Sanitizers exit with status 1 too: look for their reports.
    if [ $rc -gt 2 ] || grep -q 'Sanitizer\|runtime error' "$W/err"; then
        crashes=$((crashes + 1))
        bad "corrupted header $f: exit status $rc: $(cat "$W/err")"
    fi
done
[ $crashes -eq 0 ] && ok && echo "  ok 40 randomly corrupted headers: no crash"
expect_fail "positions beyond the dump" "beyond the dump's 80 tokens" \
    "$BIN" run "$D/full" -o "$W/bad.fasa" --positions 40:200:8
expect_fail "default positions on a short dump" "position 4080" \
    "$BIN" run "$D/full" -o "$W/bad.fasa"
expect_fail "dumps of different shapes" "differs from" \
    "$BIN" run "$D/full" "$D/shape3" -o "$W/bad.fasa" $C
expect_fail "not a directory" "not a directory" "$BIN" run "$D/none" -o "$W/bad.fasa" $C
code=2
expect_fail "bad --k" "--k" "$BIN" run "$D/full" -o "$W/bad.fasa" --k 8,x
expect_fail "bad --layout" "--layout" "$BIN" run "$D/full" -o "$W/bad.fasa" --layout rotated
expect_fail "bad --positions" "--positions" "$BIN" run "$D/full" -o "$W/bad.fasa" --positions 9:3
code=1

echo "run:"
P=$W/p.fasa
if "$BIN" run "$D/full" -o "$P" $C >"$W/out" 2>"$W/err"; then ok; else bad "run full: $(cat "$W/err")"; fi
# Quiet when stderr is not a terminal: no progress lines in a log.
if [ -s "$W/err" ]; then bad "run printed to a non-terminal stderr: $(cat "$W/err")"; else ok; fi
expect_ok "run again" "$BIN" run "$D/full" -o "$W/p2.fasa" $C
same "deterministic" "$P" "$W/p2.fasa"
for v in steps v23 f16 f16ref bf16 bf16ref; do
    expect_ok "run $v" "$BIN" run "$D/$v" -o "$W/$v.fasa" $C
done
same "per-step dump = full-sequence dump" "$P" "$W/steps.fasa"
same ".npy 2.0/3.0 headers" "$P" "$W/v23.fasa"
same "float16 = its float32 widening" "$W/f16.fasa" "$W/f16ref.fasa"
same "bfloat16 = its float32 widening" "$W/bf16.fasa" "$W/bf16ref.fasa"
expect_ok "run two dumps" "$BIN" run "$D/full" "$D/v23" -o "$W/two.fasa" $C
expect_ok "show --csv" "$BIN" show "$P" --csv
if "$PY" calib/tests/check_agreement.py "$D/full" "$W/out" 40:80:8 4,8,16 half >"$W/chk"; then
    ok
else
    bad "agreement differs from the numpy reference: $(cat "$W/chk")"
fi
echo "  $(cat "$W/chk")"
expect_ok "run --layout interleaved" "$BIN" run "$D/full" -o "$W/il.fasa" $C --layout interleaved
"$BIN" show "$W/il.fasa" --csv >"$W/il.csv" 2>&1
if "$PY" calib/tests/check_agreement.py "$D/full" "$W/il.csv" 40:80:8 4,8,16 interleaved \
    >"$W/chk"; then ok; else bad "interleaved agreement: $(cat "$W/chk")"; fi

echo "show:"
expect_ok "show" "$BIN" show "$P"
for want in "pair layout  half" "K values     4 8 16" "steps        5 per layer" \
    "dense layers 0" "up to 6 FCs per head, ranked by agreement at K=16"; do
    if grep -q -- "$want" "$W/out"; then ok; else bad "show lacks '$want'"; fi
done
n=$(grep -c '^  head ' "$W/out")
[ "$n" = 8 ] && ok || bad "show: $n head lines, expected 8"
"$BIN" show "$W/two.fasa" | grep -q "steps        10 per layer" && ok || bad "two dumps: steps"
expect_fail "show missing file" "cannot load profile" "$BIN" show "$W/none.fasa"
printf 'not a profile' >"$W/junk.fasa"
expect_fail "show junk file" "cannot load profile" "$BIN" show "$W/junk.fasa"

echo "diff:"
expect_ok "diff self" "$BIN" diff "$P" "$P"
grep -q "overall per-head overlap 100.00%" "$W/out" && ok || bad "diff self not 100%: $(cat "$W/out")"
grep -q "overall group-shared overlap 100.00%" "$W/out" && ok || bad "diff self (group) not 100%"
grep -q "relative to B's own: 1.0000" "$W/out" && ok || bad "diff self: agreement ratio not 1"
expect_ok "diff two profiles" "$BIN" diff "$W/steps.fasa" "$W/v23.fasa"
"$BIN" run "$D/shape3" -o "$W/shape3.fasa" $C >/dev/null 2>&1
expect_fail "diff shape mismatch" "shape mismatch" "$BIN" diff "$P" "$W/shape3.fasa"
expect_fail "diff layout mismatch" "pair layout mismatch" "$BIN" diff "$P" "$W/il.fasa"

echo "select:"
expect_ok "select --nfc 3" "$BIN" select "$P" --nfc 3 -o "$W/s3.fasa"
"$BIN" diff "$W/s3.fasa" "$P" | grep -q "overall per-head overlap 100.00%" && ok ||
    bad "top-3 sets are not inside the top-6 sets"
"$BIN" diff "$P" "$W/s3.fasa" | grep -q "overall per-head overlap 50.00%" && ok ||
    bad "top-6 vs top-3 overlap is not 50%"
expect_ok "select back to 6" "$BIN" select "$W/s3.fasa" --nfc 6 -o "$W/s6.fasa"
same "select round trip" "$P" "$W/s6.fasa"
expect_ok "select --dense-layers" "$BIN" select "$P" --dense-layers 1 -o "$W/d1.fasa"
"$BIN" show "$W/d1.fasa" | grep -q "^dense layers 1$" && ok || bad "dense layers not 1"
expect_ok "select dense none" "$BIN" select "$W/d1.fasa" --dense-layers none -o "$W/d0.fasa"
"$BIN" show "$W/d0.fasa" | grep -q "^dense layers none$" && ok || bad "dense layers not none"
expect_ok "select threshold rule" "$BIN" select "$P" --threshold-ratio 0.5 --min-k 2 --max-k 5 \
    --k 8 -o "$W/th.fasa"
"$BIN" show "$W/th.fasa" | grep -q "ranked by agreement at K=8" && ok || bad "select --k 8"
expect_fail "select unknown K" "not a calibrated K" "$BIN" select "$P" --k 32 -o "$W/bad.fasa"
expect_fail "select dense out of range" "out of range" \
    "$BIN" select "$P" --dense-layers 5 -o "$W/bad.fasa"

echo "plot:"
expect_ok "plot" "$BIN" plot "$P" -o "$W/map.svg"
expect_ok "plot --k 4" "$BIN" plot "$P" --k 4 -o "$W/map4.svg"
expect_fail "plot unknown K" "not a calibrated K" "$BIN" plot "$P" --k 5 -o "$W/bad.svg"
if "$PY" - "$W/map.svg" >"$W/chk" 2>&1 <<'EOF'; then ok; else bad "svg: $(cat "$W/chk")"; fi
import sys
import xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
ns = "{http://www.w3.org/2000/svg}"
assert root.tag == ns + "svg", root.tag
rects = root.findall(ns + "rect")
dots = root.findall(".//" + ns + "circle")
text = " ".join(t.text or "" for t in root.iter(ns + "text"))
assert len(rects) >= 2 * 4 * 16, len(rects)
assert len(dots) == 2 * 4 * 6, len(dots)
assert "K=16" in text and "L1 h3" in text and "agreement" in text, text
EOF
if command -v rsvg-convert >/dev/null 2>&1; then
    if rsvg-convert -o "$W/map.png" "$W/map.svg" 2>"$W/err" && [ -s "$W/map.png" ]; then
        ok
    else
        bad "rsvg-convert failed: $(cat "$W/err")"
    fi
else
    echo "SKIP check-calib/svg-render: rsvg-convert not installed (package librsvg2-bin); SVG checked as XML only"
fi

echo "dump_hf.py:"
if "$PY" -c "import py_compile, sys; py_compile.compile(sys.argv[1], cfile=sys.argv[2], doraise=True)" \
    calib/dump_hf.py "$W/dump_hf.pyc" 2>"$W/err"; then ok; else bad "dump_hf.py: $(cat "$W/err")"; fi

echo "test_calib_tool: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
