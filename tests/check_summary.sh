#!/bin/sh
# tests/check_summary.sh - the verdict of `make check` (or of one group such
# as `make check-unit`) from the result files of tests/check_run.sh.
#
#   sh tests/check_summary.sh TITLE START_EPOCH RESULT...
#
# Counts one per item (a test program in one configuration, or one other
# check target): passed, failed, skipped; a RESULT that does not exist
# counts as failed (its item never ran: a prerequisite did not build). The
# "SKIP <what>: <why>" lines an item recorded count as skipped too (parts
# that did not run). Every skip and failure is listed; the last line is
# exactly "N passed, N failed, N skipped". Exit status 1 when anything
# failed or nothing passed.
set -u
title=$1
t0=$2
shift 2
pass=0
fail=0
skip=0
skips=
fails=
times=
nl='
'
for r in "$@"; do
    label=${r%.res}
    label=${label#*/check/}
    if [ ! -f "$r" ]; then
        fail=$((fail + 1))
        fails="$fails  FAIL $label: did not run (a prerequisite failed: see the output above)$nl"
        continue
    fi
    read -r status secs detail <"$r"
    times="$times$secs $label$nl"
    case $status in
    PASS) pass=$((pass + 1)) ;;
    SKIP)
        skip=$((skip + 1))
        skips="$skips  SKIP $label: $detail$nl"
        ;;
    *)
        fail=$((fail + 1))
        fails="$fails  FAIL $label: $detail (log ${r%.res}.log)$nl"
        ;;
    esac
    sub=$(sed -n '2,$p' "$r")
    if [ -n "$sub" ]; then
        skip=$((skip + $(echo "$sub" | wc -l)))
        skips="$skips$(echo "$sub" | sed 's/^/  /')$nl"
    fi
done

echo "==== $title: $(($(date +%s) - t0)) s, seed ${FASA_TEST_SEED:-?} (replay: make $title FASA_TEST_SEED=${FASA_TEST_SEED:-?})"
slow=$(printf '%s' "$times" | sort -rn -k1,1 | head -n 5 | awk '{printf "%s%s %s s", (NR > 1 ? ", " : ""), $2, $1}')
[ -n "$slow" ] && echo "slowest: $slow"
[ -n "$skips" ] && printf 'skipped:\n%s' "$skips"
[ -n "$fails" ] && printf 'failed:\n%s' "$fails"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
