#!/usr/bin/env bash
# Runs each CUnit suite program of a build dir; prints each one's summary and a closing
# 'N passed, N failed' line over all suites; fails if any suite failed or crashed.
set -u
B=$1; shift
pass=0; fail=0; failed=""
for t in "$@"; do
  echo "=== $t"
  if [ -x "$B/tests/$t" ]; then out=$("$B/tests/$t" 2>&1); rc=$?; else out="missing $B/tests/$t"; rc=127; fi
  echo "$out" | grep -E "^ *(Run Summary|suites|tests|asserts)|FAIL|ERROR|SKIP|Sanitizer|runtime error" | head -40
  # CUnit: "tests  Total Ran Passed Failed Inactive"
  np=$(echo "$out" | awk '$1 == "tests" && $2 ~ /^[0-9]+$/ {print $4; exit}')
  nf=$(echo "$out" | awk '$1 == "tests" && $2 ~ /^[0-9]+$/ {print $5; exit}')
  pass=$((pass + ${np:-0})); fail=$((fail + ${nf:-0}))
  if [ $rc -ne 0 ] || [ "${nf:-0}" != 0 ] || [ -z "$np" ]; then
    failed="$failed $t"; [ -z "$np" ] && fail=$((fail + 1))
    echo "$out" | tail -30
  fi
done
echo "suites failed:${failed:- none}"
echo "tests: $pass passed, $fail failed"
[ -z "$failed" ]
