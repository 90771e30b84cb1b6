#!/usr/bin/env bash
# check-bench-report.sh REPORT - runs bench/report (its path: REPORT) on small synthetic
# records and checks what `make bench` relies on: the JSON parses (python3 -m json.tool),
# every record and the run carry the stamp (mode, date, commit, CPU, cores, kernel, huge
# pages), keys are unique, a duplicate key fails the run, ratios are the median, min and max
# of the per-pair ratios (across alternating processes and within one process) and a ratio
# of medians only for figures measured apart, the table's columns line up with long names,
# and a quick run judges no target. Run by `make test`; prints "bench report: ok" or FAIL.
set -u
REPORT=${1:?usage: tests/check-bench-report.sh BUILD/bench/report}
fail() { echo "FAIL: check-bench-report: $*"; exit 1; }
command -v python3 >/dev/null || { echo "SKIP: check-bench-report: python3 is not installed"; exit 0; }
[ -x "$REPORT" ] || fail "$REPORT is missing"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shoal-bench-report-$$-XXXXXX")
trap 'rm -rf "$tmp"' EXIT

rec() {  # prog round bench variant baseline paired samples [error]
  local base=null err=""
  [ -n "$5" ] && base="\"$5\""
  [ -n "${8:-}" ] && err=",\"error\":\"$8\""
  local n; n=$(echo "$7" | awk -F, '{print ($0 == "" ? 0 : NF)}')
  printf '{"bench":"%s","variant":"%s","unit":"u/s","median":null,"min":null,"max":null,"n":%d,"baseline":%s,"ratio":null,"paired":%s,"prog":"%s","round":%d,"samples":[%s]%s}\n' \
    "$3" "$4" "$n" "$base" "$6" "$1" "$2" "$7" "$err"
}
long="a variant name long enough to overflow any fixed-width column of the table"
{
  # alternating processes: shoal 10,20,30 against oneTBB 5,40,15 in rounds 1..3: per-pair
  # ratios 2, 0.5, 2 (median 2), where the ratio of medians would be 20/15
  for r in 1 2 3; do
    s=$(echo "10 20 30" | cut -d' ' -f$r); t=$(echo "5 40 15" | cut -d' ' -f$r)
    rec tasks "$r" "fib(30) tasks" shoal oneTBB true "$s"
    # (a failed figure's record, as bench_emit_error writes it, is not marked paired)
    if [ "$r" = 2 ]; then rec tasks 2 "empty tasks 1M" shoal oneTBB false "" "out of luck"
    else rec tasks "$r" "empty tasks 1M" shoal oneTBB true "$s"; fi
    if [ "$r" = 1 ]; then rec tasks 1 "reduce DAG 100k" shoal oneTBB false "" "first round lost"
    else rec tasks "$r" "reduce DAG 100k" shoal oneTBB true "$s"; fi
    rec tasks_tbb "$r" "reduce DAG 100k" oneTBB oneTBB true "$t"
    rec tasks_tbb "$r" "empty tasks 1M" oneTBB oneTBB true "$t"
    rec tasks_tbb "$r" "fib(30) tasks" oneTBB oneTBB true "$t"
    rec tasks "$r" "ping latency" shoal oneTBB true 400
  done
  # one process: ratios 1, 1.5, 1, 0.5 (median 1, min 0.5, max 1.5); medians would give 3.5/3
  rec lookup 0 "lookup hot64" "a ref+ptr inline" "a ref+ptr inline" true "1,2,4,8"
  rec lookup 0 "lookup hot64" "c shoal_get" "a ref+ptr inline" true "1,3,4,4"
  rec lookup 0 "lookup hot64" "$long" "a ref+ptr inline" true "2,2,2,2"
  # measured apart: the ratio of the medians, 6/4
  rec multiproc 0 "multiproc put 64 B" "owner, 1 thread" "owner, 1 thread" false "2,4,6"
  rec multiproc 0 "multiproc put 64 B" "1 client process" "owner, 1 thread" false "3,6,9"
  echo "progress lines and other noise are ignored"
} >"$tmp/records"

BENCH_COMMIT=c0ffee1234 "$REPORT" "$tmp/full.json" full <"$tmp/records" >"$tmp/full.out" 2>&1 ||
  fail "report failed on records with unique keys: $(cat "$tmp/full.out")"
python3 -m json.tool "$tmp/full.json" >/dev/null || fail "full.json is not valid JSON"
python3 - "$tmp/full.json" <<'PY' || fail "the JSON checks failed (above)"
import json, sys
d = json.load(open(sys.argv[1]))
run, recs = d["run"], d["records"]
def check(cond, msg):
    if not cond:
        print("  " + msg)
        sys.exit(1)
for k in ("mode", "date", "commit", "cpu", "cores", "kernel", "nr_hugepages", "thp_anon", "thp_shmem"):
    check(k in run, "the run's stamp has no %s" % k)
check(run["mode"] == "full" and run["commit"] == "c0ffee1234", "stamp: mode/commit %r" % run)
check(isinstance(run["cores"], int) and run["cores"] > 0, "stamp: cores %r" % run["cores"])
for r in recs:
    check(r.get("stamp") == run, "record %s / %s is not stamped with the run" % (r["bench"], r["variant"]))
keys = [(r["bench"], r["variant"]) for r in recs]
check(len(keys) == len(set(keys)), "keys are not unique: %r" % keys)
by = {(r["bench"], r["variant"]): r for r in recs}
def near(a, b): return a is not None and abs(a - b) < 1e-9
f = by[("fib(30) tasks", "shoal")]
check(f["n"] == 3 and f["samples"] == [10, 20, 30] and f["sample_rounds"] == [1, 2, 3], "fib rounds not merged: %r" % f)
check(near(f["median"], 20) and near(f["min"], 10) and near(f["max"], 30), "fib median/min/max: %r" % f)
check(near(f["ratio"], 2) and near(f["ratio_min"], 0.5) and near(f["ratio_max"], 2) and f["pairs"] == 3,
      "fib per-pair ratio (want median 2, min 0.5, max 2 over 3 pairs): %r" % f)
check(f["pairing"] == "alternating", "fib pairing: %r" % f["pairing"])
e = by[("empty tasks 1M", "shoal")]
check(e["pairs"] == 2 and e["failed_rounds"] == 1 and near(e["ratio"], 2) and near(e["ratio_min"], 2),
      "a failed round must drop its pair only (rounds 1, 3: ratios 2, 2): %r" % e)
g = by[("reduce DAG 100k", "shoal")]
check(g["pairs"] == 2 and g["failed_rounds"] == 1 and near(g["ratio"], 1.25) and near(g["ratio_min"], 0.5)
      and near(g["ratio_max"], 2) and g["paired"], "a failed first round (rounds 2, 3: ratios 0.5, 2): %r" % g)
c = by[("lookup hot64", "c shoal_get")]
check(near(c["ratio"], 1) and near(c["ratio_min"], 0.5) and near(c["ratio_max"], 1.5) and c["pairs"] == 4,
      "in-process per-pair ratio (want 1, 0.5, 1.5 over 4): %r" % c)
check(c["pairing"] == "in one process", "lookup pairing: %r" % c["pairing"])
b = by[("lookup hot64", "a ref+ptr inline")]
check(near(b["ratio"], 1) and near(b["median"], 3), "the baseline's own row: %r" % b)
m = by[("multiproc put 64 B", "1 client process")]
check(near(m["ratio"], 1.5) and m["ratio_min"] is None and m["pairs"] == 0 and m["pairing"] == "medians",
      "figures measured apart: ratio of medians 6/4, no pairs: %r" % m)
PY

out=$tmp/full.out
grep -q "commit c0ffee1234" "$out" || fail "the table does not name the commit"
grep -q "^  met  *fib, every call a task, >= 1.3x oneTBB: median 2x, min 0.5x, max 2x (3 pairs" "$out" ||
  fail "full run: the fib target line (met, median 2x, min 0.5x, max 2x): $(grep fib "$out")"
grep -q "^  MISSED  *ping <= 300 ns: median 400" "$out" || fail "full run: the ping target is not MISSED"
grep -q "^  NOT MEASURED  *spill" "$out" || fail "full run: an absent figure is not NOT MEASURED"
# every row's baseline column starts at one offset, long names or not
cols=$(awk '/^-----/{t=1; next} /^units ending/{t=0} t && (i = index($0, "  vs ")) {print i} t && (i = index($0, "(baseline)")) {print i - 2}' "$out" | sort -u)
[ -n "$cols" ] && [ "$(echo "$cols" | wc -l)" = 1 ] || fail "the table's columns do not line up: offsets $cols"$'\n'"$(cat "$out")"

"$REPORT" "$tmp/quick.json" quick <"$tmp/records" >"$tmp/quick.out" 2>&1 || fail "report failed in quick mode"
grep -q "not comparable" "$tmp/quick.out" || fail "quick mode does not say its figures are not comparable"
grep -Eq "^  (met|MISSED) " "$tmp/quick.out" && fail "quick mode judged a target"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["run"]["mode"]=="quick" and d["run"]["commit"]=="unknown"' \
  "$tmp/quick.json" || fail "quick.json: mode quick, commit unknown without BENCH_COMMIT"

# a key written twice in one round is a defect of the bench program: the report says so, fails
{ cat "$tmp/records"; rec lookup 0 "lookup hot64" "c shoal_get" "a ref+ptr noinline" true "5"; } >"$tmp/dup"
"$REPORT" "$tmp/dup.json" full <"$tmp/dup" >"$tmp/dup.out" 2>&1 && fail "a duplicate key did not fail the report"
grep -q 'DUPLICATE KEY.*' "$tmp/dup.out" && grep -q '"lookup hot64" / "c shoal_get"' "$tmp/dup.out" ||
  fail "the duplicate key is not named: $(tail -5 "$tmp/dup.out")"
echo "bench report: ok"
