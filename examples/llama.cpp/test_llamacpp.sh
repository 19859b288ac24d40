#!/bin/sh
# test_llamacpp.sh - libfasa inside the patched llama.cpp (make check-llamacpp).
#
#   sh examples/llama.cpp/test_llamacpp.sh LLAMA_BIN WORKDIR
#
# Run from the repository root after examples/llama.cpp/build.sh. Uses
# llama-28m and calib/profiles/llama-28m.fasa. Ends with the line
# "check-llamacpp: N passed, N failed, N skipped".
LLAMA=$1
W=$2
PY=${PYTHON:-/usr/bin/python3}
HERE=examples/llama.cpp
B=build/llama.cpp/cmake/bin
MODEL_DIR=${LLAMACPP_MODEL_DIR:-../shared/models/llama-28m}
M=build/llama.cpp/models/$(basename "$MODEL_DIR")-f32.gguf
D=$MODEL_DIR/val_tokens.bin
P=calib/profiles/llama-28m.fasa
L=4096
T="$B/llama-fasa-tool"
pass=0
fail=0
skip=0
mkdir -p "$W"
ok() { echo "PASS $1"; pass=$((pass + 1)); }
ko() { echo "FAIL $1"; fail=$((fail + 1)); [ -f "$W/log" ] && tail -n 20 "$W/log"; }
sk() { echo "SKIP $1"; skip=$((skip + 1)); }
# relative difference of two numbers within a percentage
within() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = (a - b) / b * 100; if (d < 0) d = -d;
           printf "%+.4f%%", (a - b) / b * 100; exit !(d <= t && a == a && b == b) }'; }
ppl_of() { sed -n 's/.* ppl \([0-9.]*\) .*/\1/p' "$1" | tail -n 1; }
served() { grep -qE "^fasa: [1-9][0-9]* graphs served by libfasa" "$1"; }

# windows of the perplexity protocol: prefill 2048, 128 predictions (as build/llama ppl)
PW=${LLAMACPP_PPL_WINDOWS:-4-5}
PPL="--model $M --data $D --window-len $L --windows $PW --prefill 2048 --decode 128 --threads 2"

# 0. tokenizer: llama.cpp retokenizes the detokenized held-out windows to the same ids
#    (the last two ids of a window may merge: windows are cut mid-word)
if "$T" tokcheck --model "$M" --data "$D" --window-len $L --windows 0-31 > "$W/tok.txt" 2>"$W/log" ||
   [ -s "$W/tok.txt" ]; then
    bad=$(awk '/^tokcheck: window/ { n = $4; for (i = 1; i <= NF; i++) if ($i == "at") at = $(i + 1);
              sub(",", "", at); if (at + 2 < n) print $3 }' "$W/tok.txt")
    [ -z "$bad" ] && ok "tokenizer: $(tail -n 1 "$W/tok.txt" | cut -d' ' -f2-) (only window-end merges differ)" ||
        ko "tokenizer: windows with early differences:$bad"
else
    ko "tokenizer check did not run"
fi

# a. dense parity: libfasa's dense attention (budget >= context) vs llama.cpp's flash attention
"$T" ppl $PPL > "$W/ppl-llamacpp.txt" 2>"$W/log" &&
"$T" ppl $PPL --fasa-profile $P --fasa-budget 100000 > "$W/ppl-dense.txt" 2>"$W/log-dense" &&
    served "$W/log-dense" || { ko "perplexity runs (llama-fasa-tool ppl)"; }
a=$(ppl_of "$W/ppl-llamacpp.txt"); b=$(ppl_of "$W/ppl-dense.txt")
if d=$(within "$b" "$a" 0.1); then ok "dense parity (windows $PW): libfasa dense $b vs llama.cpp $a ($d, limit 0.1%)"
else ko "dense parity: libfasa dense $b vs llama.cpp $a ($d, limit 0.1%)"; fi
# the same through llama-perplexity itself, on detokenized text (multi-token graphs)
"$T" tokcheck --model "$M" --data "$D" --window-len $L --windows 4 --text-out "$W/w4.txt" > /dev/null 2>&1
for f in off on; do
    extra=""; [ $f = on ] && extra="--fasa-profile $P --fasa-budget 100000"
    # shellcheck disable=SC2086
    "$B/llama-perplexity" -m "$M" -f "$W/w4.txt" -c 512 -b 512 -t 2 --chunks 4 -fa $extra \
        > "$W/perplexity-$f.txt" 2>&1
done
a=$(sed -n 's/^Final estimate: PPL = \([0-9.]*\).*/\1/p' "$W/perplexity-off.txt")
b=$(sed -n 's/^Final estimate: PPL = \([0-9.]*\).*/\1/p' "$W/perplexity-on.txt")
if [ -n "$a" ] && [ -n "$b" ] && grep -q "FASA on" "$W/perplexity-on.txt" && d=$(within "$b" "$a" 0.1); then
    ok "llama-perplexity --fasa-profile (dense budget) $b vs without $a ($d)"
else
    ko "llama-perplexity with/without --fasa-profile: '$b' vs '$a'"
fi

# b. FASA@256 in llama.cpp vs examples/llama (same windows and protocol, f16 KV)
if "$T" ppl $PPL --fasa-profile $P --fasa-budget 256 > "$W/ppl-fasa.txt" 2>"$W/log-fasa" &&
   "$LLAMA" ppl --model "$MODEL_DIR" --windows $PW --prefill 2048 --decode 128 --kv f16 --profile $P \
       --methods full,fasa:256 > "$W/ppl-ref.txt" 2>"$W/log"; then
    a=$(awk '$1 == "fasa:256" { print $3 }' "$W/ppl-ref.txt"); b=$(ppl_of "$W/ppl-fasa.txt")
    r=$(awk '$1 == "full" { print $3 }' "$W/ppl-ref.txt")
    if d=$(within "$b" "$a" 0.05); then ok "FASA@256: llama.cpp $b vs build/llama $a ($d, limit 0.05%)"
    else ko "FASA@256: llama.cpp $b vs build/llama $a ($d, limit 0.05%)"; fi
    d=$(within "$(ppl_of "$W/ppl-dense.txt")" "$r" 100)
    echo "  (dense: llama.cpp+libfasa $(ppl_of "$W/ppl-dense.txt") vs build/llama $r, $d)"
else
    ko "FASA@256 perplexity runs"
fi

# c. several sequences: in one process and through llama-server with 4 slots
"$T" parallel --model "$M" --data "$D" --window-len $L --windows 5-8 --prefill 1024 --gen 24 \
    --fasa-profile $P --fasa-budget 256 > "$W/parallel.txt" 2>"$W/log-parallel"
if grep -q "several sequences in one batch" "$W/log-parallel"; then
    sk "several sequences in one batch: libfasa has no multi-sequence call yet, llama.cpp's attention ran them ($(grep -c identical "$W/parallel.txt")/4 equal to alone anyway)"
elif ! grep -q DIFFERENT "$W/parallel.txt" && [ -s "$W/parallel.txt" ]; then ok "4 sequences in one batch equal each alone"
else ko "4 sequences in one batch vs alone"; fi
"$T" generate --model "$M" --data "$D" --window-len $L --windows 5-8 --prefill 256 --gen 24 \
    --fasa-profile $P --fasa-budget 100000 > "$W/gen-dense.txt" 2>/dev/null
if ! "$PY" -c 'import json, urllib.request' 2>/dev/null; then
    sk "llama-server (no $PY)"
else
    for bud in 256 100000; do
        pre=1024; exp=""; [ $bud = 100000 ] && { pre=256; exp="--expect $W/gen-dense.txt"; }
        # shellcheck disable=SC2086
        timeout 300 "$PY" $HERE/test_server.py --server "$B/llama-server" --model "$M" --data "$D" \
            --window-len $L --prefill $pre --gen 24 --fasa-profile $P --fasa-budget $bud \
            --log "$W/server-$bud.log" $exp > "$W/server-$bud.txt" 2>&1
        res=$(sed -n 's/^RESULT //p' "$W/server-$bud.txt")
        case "$res" in
            pass) ok "llama-server 4 slots, budget $bud: concurrent = alone$([ -n "$exp" ] && echo " = libfasa dense (llama-fasa-tool)")" ;;
            fallback|pass-with-fallback)
                if [ -n "$exp" ] && ! grep -q "tool generate: DIFFERENT" "$W/server-$bud.txt"; then
                    ok "llama-server budget $bud: each request alone = libfasa dense (llama-fasa-tool)"
                fi
                sk "llama-server 4 slots, budget $bud: concurrent slots share a batch, which falls back to llama.cpp's attention until the multi-sequence API ($res)" ;;
            *) cat "$W/server-$bud.txt"; ko "llama-server 4 slots, budget $bud" ;;
        esac
    done
fi

# d. seq_rm and context shift mid-generation
E="--model $M --data $D --window-len $L --windows 5 --prefill 1024 --gen 48 --fasa-profile $P --fasa-budget 256"
# shellcheck disable=SC2086
if "$T" edit $E --scenario seqrm > "$W/edit.txt" 2>"$W/log" && served "$W/log"; then
    ok "seq_rm mid-generation: $(grep -c identical "$W/edit.txt")/2 identical (decoded again, fresh rebuild)"
else ko "seq_rm mid-generation"; fi
# shellcheck disable=SC2086
if "$T" edit $E --scenario shift --defrag > "$W/edit.txt" 2>"$W/log" && ! grep -q "cannot serve" "$W/log"; then
    ok "context shift + defrag (FASA serves, labels rebuilt): same tokens as the cache restored into a fresh context"
else ko "context shift + defrag"; fi
# shellcheck disable=SC2086
if "$T" edit $E --scenario shift > "$W/edit.txt" 2>"$W/log"; then
    grep -q "cannot serve" "$W/log" &&
        sk "context shift without defrag: the gap in the cells falls back to llama.cpp's attention until per-query ranges exist (run ok)" ||
        ok "context shift without defrag"
else ko "context shift without defrag"; fi

# e. quantized KV cache
# shellcheck disable=SC2086
if "$T" ppl $PPL --windows 4 --ctk q8_0 --ctv q8_0 --fasa-profile $P --fasa-budget 256 \
        > "$W/ppl-q8.txt" 2>"$W/log" && [ -n "$(ppl_of "$W/ppl-q8.txt")" ]; then
    grep -q "FASA off" "$W/log" &&
        sk "q8_0 KV: runs (ppl $(ppl_of "$W/ppl-q8.txt")) on llama.cpp's attention: libfasa reads no q8_0 yet" ||
        ok "q8_0 KV with FASA"
else ko "q8_0 KV run"; fi

echo "check-llamacpp: $pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
