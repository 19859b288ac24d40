#!/bin/sh
# study.sh - the FASA quality study on llama-28m (run by `make study`).
#
#   sh examples/llama/study.sh LLAMA MODEL OUTDIR
#
# Steps (outputs in OUTDIR/*.txt, summarized in docs/results.md); a step
# whose output already exists is skipped, so an interrupted study resumes:
#   1. calibration, standard protocol (windows 0-3, positions 2048..4080
#      stride 16, every layer): HALF (true rotation pairs) and ADJACENT
#      (official-code grouping on the same rotate-half tensors), in parallel
#   2. perplexity, paper protocol: dense prefill of P = 2048 tokens, then
#      teacher-forced decode of STUDY_DECODE tokens on held-out windows
#      STUDY_WINDOWS, every method side by side from one shared prefill
#   3. in parallel with 2: calibration on windows 0-1 and 2-3 (stability,
#      stride STUDY_SPLIT_STRIDE) and the contextual-agreement tables on
#      held-out windows STUDY_AGREE_WINDOWS
#   4. decode speed at t = 4096 (dense vs FASA)
# Knobs (environment): STUDY_WINDOWS (4-11), STUDY_DECODE (128),
# STUDY_BUDGETS ("64 128 256 512"), STUDY_AGREE_WINDOWS (4-5),
# STUDY_SPLIT_STRIDE (32), STUDY_THREADS (1).
set -eu
LLAMA=$1
MODEL=$2
OUT=$3
if [ ! -f "$MODEL/config.json" ]; then
    echo "study: SKIP, model not found at $MODEL"
    exit 0
fi
WINDOWS=${STUDY_WINDOWS:-4-11}
DECODE=${STUDY_DECODE:-128}
BUDGETS=${STUDY_BUDGETS:-64 128 256 512}
AGREE_WINDOWS=${STUDY_AGREE_WINDOWS:-4-5}
SPLIT_STRIDE=${STUDY_SPLIT_STRIDE:-32}
THREADS=${STUDY_THREADS:-1}
mkdir -p "$OUT"
t0=$(date +%s)
stamp() { echo "study: $1 ($(($(date +%s) - t0)) s)"; }

if [ ! -f "$OUT/half.fasa" ]; then
    "$LLAMA" calibrate --model "$MODEL" --windows 0-3 --out "$OUT/half.fasa" \
        >"$OUT/calib_half.txt" 2>&1 &
    p1=$!
fi
if [ ! -f "$OUT/adjacent.fasa" ]; then
    "$LLAMA" calibrate --model "$MODEL" --windows 0-3 --layout adjacent \
        --out "$OUT/adjacent.fasa" >"$OUT/calib_adjacent.txt" 2>&1 &
    p2=$!
fi
[ -z "${p1:-}" ] || wait $p1
[ -z "${p2:-}" ] || wait $p2
stamp "calibrated (HALF, ADJACENT)"

METHODS=full
for b in $BUDGETS; do
    METHODS="$METHODS,oracle:$b,oracle-l0:$b,fasa:$b,fasa-gs:$b,fasa-adj:$b,random:$b,stream:$b,quest:$b,selfcal:$b"
done
(
    [ -f "$OUT/half_w01.fasa" ] ||
        "$LLAMA" calibrate --model "$MODEL" --windows 0-1 --stride "$SPLIT_STRIDE" \
            --out "$OUT/half_w01.fasa" >"$OUT/calib_w01.txt" 2>&1
    [ -f "$OUT/half_w23.fasa" ] ||
        "$LLAMA" calibrate --model "$MODEL" --windows 2-3 --stride "$SPLIT_STRIDE" \
            --out "$OUT/half_w23.fasa" >"$OUT/calib_w23.txt" 2>&1
    [ -s "$OUT/agreement.txt" ] ||
        "$LLAMA" agreement --model "$MODEL" --profile "$OUT/half.fasa" \
            --windows "$AGREE_WINDOWS" --profile-a "$OUT/half_w01.fasa" \
            --profile-b "$OUT/half_w23.fasa" >"$OUT/agreement.txt" 2>&1
    [ -s "$OUT/agreement_adjacent.txt" ] ||
        "$LLAMA" agreement --model "$MODEL" --profile "$OUT/adjacent.fasa" \
            --windows "$AGREE_WINDOWS" >"$OUT/agreement_adjacent.txt" 2>&1
) &
p3=$!
[ -s "$OUT/ppl.txt" ] ||
    "$LLAMA" ppl --model "$MODEL" --windows "$WINDOWS" --prefill 2048 --decode "$DECODE" \
        --threads "$THREADS" --profile "$OUT/half.fasa" --profile-adj "$OUT/adjacent.fasa" \
        --seed 1 --methods "$METHODS" >"$OUT/ppl.txt" 2>&1
stamp "perplexity done"
wait $p3
stamp "agreement and stability done"
[ -s "$OUT/speed.txt" ] ||
    "$LLAMA" speed --model "$MODEL" --window 4 --steps 32 --budget 256 \
        --profile "$OUT/half.fasa" >"$OUT/speed.txt" 2>&1
stamp "speed done"
for f in calib_half calib_adjacent calib_w01 calib_w23 ppl agreement agreement_adjacent speed; do
    echo "== $f"
    grep -v '^exact ' "$OUT/$f.txt" || true
done
