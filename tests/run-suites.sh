#!/usr/bin/env bash
# Runs each CUnit suite program of a build dir; prints each one's summary and a closing
# 'N passed, N failed' line over all suites; fails if any suite failed, crashed or ran out
# of time. Each suite gets SHOAL_SUITE_TIMEOUT seconds (default 900; tests inside it have
# their own per-test watchdog, SHOAL_TEST_TIMEOUT): one that hangs is killed, reported as
# TIMEOUT with its name, and the others still run.
set -u
B=$1; shift
LIMIT=${SHOAL_SUITE_TIMEOUT:-900}
pass=0; fail=0; failed=""
for t in "$@"; do
  echo "=== $t"
  if [ -x "$B/tests/$t" ]; then
    out=$(timeout --kill-after=15 "$LIMIT" "$B/tests/$t" 2>&1); rc=$?
  else
    out="missing $B/tests/$t"; rc=127
  fi
  echo "$out" | grep -E "^ *(Run Summary|suites|tests|asserts)|FAIL|ERROR|SKIP|TIMEOUT|Sanitizer|runtime error" | head -40
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    echo "TIMEOUT: suite $t did not finish within ${LIMIT}s (SHOAL_SUITE_TIMEOUT): a hang"
  fi
  # CUnit: "tests  Total Ran Passed Failed Inactive"
  np=$(echo "$out" | awk '$1 == "tests" && $2 ~ /^[0-9]+$/ {print $4; exit}')
  nf=$(echo "$out" | awk '$1 == "tests" && $2 ~ /^[0-9]+$/ {print $5; exit}')
  pass=$((pass + ${np:-0})); fail=$((fail + ${nf:-0}))
  if [ $rc -ne 0 ] || [ "${nf:-0}" != 0 ] || [ -z "$np" ]; then
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then failed="$failed $t(timeout)"; else failed="$failed $t"; fi
    [ -z "$np" ] && fail=$((fail + 1))
    echo "$out" | tail -30
  fi
done
echo "suites failed:${failed:- none}"
echo "tests: $pass passed, $fail failed"
[ -z "$failed" ]
