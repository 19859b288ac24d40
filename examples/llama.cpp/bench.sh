#!/bin/sh
# bench.sh - decode speed of llama.cpp with its own flash attention vs with
# FASA (budget 256), 1 decode thread, side by side (make bench-llamacpp).
#
# 1. llama-fasa-tool speed: one real prefill (a held-out window, 2 threads),
#    the same cache copied into a FASA context (state API), then decode steps
#    of the window's own next tokens timed in both contexts, interleaved.
# 2. llama-batched-bench (llama-28m only): its own prompt processing of npp
#    tokens fills the context, then S_TG is the decode speed; run twice,
#    with and without --fasa-profile.
# f16 GGUF weights (converted here when missing), f16 KV cache.
# PROFILE_16K: a llama-32m-16k profile (skipped when absent).
set -u
B=build/llama.cpp/cmake/bin
MD=build/llama.cpp/models
PY=${PYTHON:-/usr/bin/python3}
STEPS=${STEPS:-64}
REPS=${REPS:-3}
PROFILE_28M=calib/profiles/llama-28m.fasa
PROFILE_16K=${PROFILE_16K:-calib/profiles/llama-32m-16k.fasa}

for m in llama-28m llama-32m-16k; do
    [ -f $MD/$m-f16.gguf ] || "$PY" examples/llama.cpp/convert.py --gguf-py build/llama.cpp/llama.cpp/gguf-py \
        --dtype f16 ../shared/models/$m $MD/$m-f16.gguf > /dev/null
done

echo "== llama-28m, context 4096 (window 5), llama-fasa-tool speed"
$B/llama-fasa-tool speed --model $MD/llama-28m-f16.gguf --data ../shared/models/llama-28m/val_tokens.bin \
    --window-len 4096 --windows 5 --prefill $((4096 - STEPS)) --steps $STEPS --reps $REPS --threads 1 \
    --threads-batch 2 --fasa-profile $PROFILE_28M --fasa-budget 256 2>&1 | grep -E '^speed|^fasa'

if [ -f "$PROFILE_16K" ]; then
    echo "== llama-32m-16k, context 16384 (window 3), llama-fasa-tool speed"
    $B/llama-fasa-tool speed --model $MD/llama-32m-16k-f16.gguf \
        --data ../shared/models/llama-32m-16k/val_tokens.bin --window-len 16384 --windows 3 \
        --prefill $((16384 - STEPS)) --steps $STEPS --reps $REPS --threads 1 --threads-batch 2 \
        --fasa-profile "$PROFILE_16K" --fasa-budget 256 2>&1 | grep -E '^speed|^fasa'
else
    echo "SKIP llama-32m-16k: no profile $PROFILE_16K"
fi

echo "== llama-28m, llama-batched-bench -npp 4032 -ntg $STEPS -npl 1 (S_TG = decode tok/s)"
for f in "" "--fasa-profile $PROFILE_28M --fasa-budget 256"; do
    # shellcheck disable=SC2086
    $B/llama-batched-bench -m $MD/llama-28m-f16.gguf -c 4096 -b 2048 -ub 512 -npp $((4096 - STEPS)) \
        -ntg $STEPS -npl 1 -t 1 -tb 2 -fa $f 2>&1 | grep -E '^\|' | tail -n 1 |
        sed "s/^/${f:+FASA 256 }${f:-llama.cpp fa} /"
done
