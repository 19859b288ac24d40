#!/bin/sh
# tests/test_calib_llama28m.sh FASA_CALIB LLAMA MODEL_DIR WORK PROFILE "WINDOWS"
# Re-creates the shipped profile calib/profiles/llama-28m.fasa: dumps the
# given windows of llama-28m with the runtime (examples/llama), calibrates
# with fasa-calib's defaults and compares bit for bit. With CALIB_REGEN=1 it
# writes PROFILE instead (make calib-regen). Skips when the model or the
# runtime is absent (exit 77). CALIB_THREADS (default 1) is passed to both tools.
set -u
BIN=$1
LLAMA=$2
MODEL=$3
W=$4
PROFILE=$5
WINDOWS=$6
THREADS=${CALIB_THREADS:-1}

if [ ! -d "$MODEL" ]; then
    echo "SKIP check-calib-llama28m: model $MODEL absent"
    exit 77
fi
if [ ! -x "$LLAMA" ]; then
    echo "SKIP check-calib-llama28m: runtime $LLAMA not built (examples/llama)"
    exit 77
fi
if [ "${CALIB_REGEN:-0}" != 1 ] && [ ! -f "$PROFILE" ]; then
    echo "check-calib-llama28m: FAIL: shipped profile $PROFILE is missing (make calib-regen)"
    exit 1
fi
rm -rf "$W" && mkdir -p "$W" || exit 1
t0=$(date +%s)
dirs=
for w in $WINDOWS; do
    if ! "$LLAMA" dump --model "$MODEL" --window "$w" --threads "$THREADS" --out "$W/w$w" \
        >"$W/dump.log" 2>&1; then
        echo "check-calib-llama28m: FAIL: $LLAMA dump --window $w:"
        cat "$W/dump.log"
        exit 1
    fi
    dirs="$dirs $W/w$w"
done
t1=$(date +%s)
# shellcheck disable=SC2086 # one argument per window directory
if ! "$BIN" run $dirs --threads "$THREADS" -o "$W/llama-28m.fasa" >"$W/run.log" 2>&1; then
    echo "check-calib-llama28m: FAIL: fasa-calib run:"
    cat "$W/run.log"
    exit 1
fi
t2=$(date +%s)
echo "check-calib-llama28m: dumps $((t1 - t0)) s, calibration $((t2 - t1)) s"
if [ "${CALIB_REGEN:-0}" = 1 ]; then
    cp "$W/llama-28m.fasa" "$PROFILE" && echo "check-calib-llama28m: wrote $PROFILE"
    exit $?
fi
if cmp "$W/llama-28m.fasa" "$PROFILE"; then
    echo "check-calib-llama28m: 1 passed, 0 failed (bit-for-bit equal to $PROFILE)"
    exit 0
fi
echo "check-calib-llama28m: FAIL: the re-calibrated profile differs from $PROFILE"
"$BIN" diff "$PROFILE" "$W/llama-28m.fasa" | tail -n 4
exit 1
