#!/bin/sh
# tests/check_run.sh - run one item of `make check` and record its result.
#
#   sh tests/check_run.sh RESULT LABEL [-r TOOL] [-b "BUILD COMMAND"] -- COMMAND [ARG...]
#
# -r TOOL: the item needs TOOL on PATH; without it the item is skipped.
# Runs BUILD COMMAND (if given), then COMMAND, both with all output into
# RESULT's .log. Exit status of COMMAND: 0 passed, 77 skipped (its lines
# "SKIP <name>: <reason>" give the reason), anything else failed; a failing BUILD
# COMMAND is a failure too ("does not build"). Writes RESULT:
#   line 1   PASS|FAIL|SKIP <seconds> <one-line detail>
#   then     each "SKIP <what>: <why>" line of the log (parts of the item
#            that did not run; counted as skipped by tests/check_summary.sh)
# and prints one line, or on failure the log's tail and the command that
# replays it. Always exits 0: tests/check_summary.sh decides the outcome, so
# one failing item never stops the others.
set -u
res=$1
label=$2
shift 2
build=
need=
if [ "${1:-}" = -r ]; then
    need=$2
    shift 2
fi
if [ "${1:-}" = -b ]; then
    build=$2
    shift 2
fi
[ "${1:-}" = -- ] && shift
log=${res%.res}.log
mkdir -p "$(dirname "$res")"
rm -f "$res"
# A hung item must not hang `make check` (coreutils timeout when present).
limit=
command -v timeout >/dev/null 2>&1 && limit="timeout ${CHECK_TIMEOUT:-600}"

t0=$(date +%s%N)
rc=0
: >"$log"
if [ -n "$need" ] && ! command -v "$need" >/dev/null 2>&1; then
    echo "SKIP $label: $need not installed" >>"$log"
    rc=77
elif [ -n "$build" ] && ! sh -c "$build" >>"$log" 2>&1; then
    rc=-1
else
    # shellcheck disable=SC2086 # $limit is a command prefix or empty
    $limit "$@" >>"$log" 2>&1 </dev/null || rc=$?
fi
# A check target run through make: make turns the recipe's 77 into its own
# exit 2 ("make: *** [target] Error 77"); when that is make's only error,
# the item skipped.
if [ "$rc" = 2 ] && grep -q '^make[^:]*: \*\*\* \[.*\] Error 77$' "$log" &&
    [ "$(grep -c '^make[^:]*: \*\*\* ' "$log")" = 1 ]; then
    rc=77
fi
ds=$((($(date +%s%N) - t0) / 100000000))
secs=$((ds / 10)).$((ds % 10))

last=$(grep -v '^[[:space:]]*$' "$log" | tail -n 1 | cut -c1-160)
subskips=$(grep '^SKIP ' "$log")
case $rc in
0)
    status=PASS
    detail=$last
    ;;
77)
    status=SKIP
    # one SKIP line: its reason; several (parts): all of them, named
    if [ "$(grep -c '^SKIP ' "$log")" -gt 1 ]; then
        detail=$(grep '^SKIP ' "$log" | sed 's/^SKIP //' | paste -sd';' - | sed 's/;/; /g')
    else
        detail=$(grep '^SKIP ' "$log" | sed 's/^SKIP [^:]*: *//')
    fi
    [ -n "$detail" ] || detail="(no reason given)"
    subskips=
    ;;
-1)
    status=FAIL
    detail="does not build"
    ;;
124 | 137)
    status=FAIL
    detail="timed out after ${CHECK_TIMEOUT:-600} s"
    ;;
*)
    status=FAIL
    detail="exit $rc"
    ;;
esac

{
    echo "$status $secs $detail"
    [ -n "$subskips" ] && echo "$subskips"
} >"$res"

case $status in
PASS)
    echo "PASS $label (${secs} s): $last"
    [ -n "$subskips" ] && echo "$subskips"
    ;;
SKIP) echo "SKIP $label: $detail" ;;
FAIL)
    echo "---- $label: last lines of $log"
    tail -n 40 "$log"
    echo "FAIL $label: $detail (${secs} s, log $log)"
    # env assignments in front of the command are part of the replay
    if [ "$rc" = -1 ]; then
        echo "     rebuild: $build"
    else
        echo "     replay: $*"
    fi
    ;;
esac
exit 0
