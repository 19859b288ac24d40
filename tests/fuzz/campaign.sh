#!/bin/sh
# campaign.sh - one fuzzing campaign over every libFuzzer target, then a
# corpus merge, then a per-target summary (executions, crashes).
#
#   sh tests/fuzz/campaign.sh BIN_DIR OUT_DIR SECONDS JOBS [TARGETS]
#
# BIN_DIR holds fuzz_<target> from `make fuzz`; OUT_DIR receives per-target
# work corpora, libFuzzer logs, crash artifacts and a merged corpus (candidates
# for tests/fuzz/corpus/<target>/). All targets run at the same time, JOBS
# libFuzzer jobs each, for SECONDS; on a shared machine use JOBS=1 and nice.
set -u
bin=$1 out=$2 secs=$3 jobs=$4
targets=${5:-"profile npy safetensors views"}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
for t in $targets; do
    case $t in views) len=256 ;; *) len=4096 ;; esac
    mkdir -p "$out/work-$t" "$out/log-$t" "$out/crash-$t"
    (cd "$out/log-$t" && "$bin/fuzz_$t" -jobs="$jobs" -workers="$jobs" -max_total_time="$secs" \
        -max_len=$len -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
        -artifact_prefix="$out/crash-$t/" "$out/work-$t" "$here/corpus/$t" \
        >"$out/log-$t/driver.log" 2>&1) &
done
wait
for t in $targets; do
    mkdir -p "$out/min-$t"
    "$bin/fuzz_$t" -merge=1 -max_len=4096 "$out/min-$t" "$here/corpus/$t" "$out/work-$t" \
        >"$out/log-$t/merge.log" 2>&1
    runs=$(cat "$out"/log-$t/fuzz-*.log 2>/dev/null | sed -n 's/^stat::number_of_executed_units: *//p' |
           awk '{s += $1} END {print s + 0}')
    crashes=$(ls "$out/crash-$t" | wc -l)
    echo "$t: $runs executions in ${secs}s x $jobs jobs, $crashes crash/leak/timeout artifacts," \
         "$(ls "$out/min-$t" | wc -l) inputs after merge"
done
