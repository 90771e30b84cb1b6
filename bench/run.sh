#!/usr/bin/env bash
# run.sh B MODE - runs every benchmark program built into B/bench (MODE full or quick), merges
# their records into bench/results/latest.json, prints the table and draws the SVG charts.
# Called by `make bench` / `make bench-quick` after the build. Protocol: see bench/bench.h.
set -u
B=${1:?usage: bench/run.sh BUILD_DIR full|quick}
MODE=${2:-full}
case $MODE in full|quick) ;; *) echo "run.sh: MODE must be full or quick" >&2; exit 2;; esac

here=$(cd "$(dirname "$0")" && pwd)
results=$here/results
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$results"
# Opt-in: BENCH_HUGEPAGES=N reserves N 2 MiB huge pages for the run (root only) so the store
# gets the page kind it is designed for, and puts the old reservation back afterwards.
if [ -n "${BENCH_HUGEPAGES:-}" ] && [ "$(id -u)" = 0 ]; then
  old_huge=$(cat /proc/sys/vm/nr_hugepages)
  trap 'echo "$old_huge" > /proc/sys/vm/nr_hugepages; rm -rf "$tmp"' EXIT
  echo "$BENCH_HUGEPAGES" > /proc/sys/vm/nr_hugepages
  echo "== huge pages reserved: $(cat /proc/sys/vm/nr_hugepages) (was $old_huge)" >&2
fi
export BENCH_WORKERS=${BENCH_WORKERS:-2}

# Programs that are not benchmarks, and the order the known ones run in (shoal first, then
# its peers); any other program in B/bench (bench/multiproc, ...) runs after them.
tools=" report plot "
order="lookup tasks tasks_tbb tasks_omp"
progs=""
for p in $order; do [ -x "$B/bench/$p" ] && progs="$progs $p"; done
for f in "$B"/bench/*; do
  p=$(basename "$f")
  [ -x "$f" ] && [ -f "$f" ] || continue
  case " $order $tools " in *" $p "*) continue;; esac
  progs="$progs $p"
done
for t in $tools; do
  [ -x "$B/bench/$t" ] || { echo "run.sh: $B/bench/$t is missing: run make bench-build" >&2; exit 1; }
done

# Each program gets a time budget after which it skips its remaining figures (reported as
# failures), and a hard limit after which it is killed: one slow or hung runtime must not
# hold the whole run past its 3 minutes (30 s quick).
budget() {
  if [ "$MODE" = quick ]; then
    case $1 in lookup) echo 8;; tasks) echo 8;; tasks_tbb) echo 4;; tasks_omp) echo 5;; io) echo 8;; *) echo 5;; esac
  else
    case $1 in lookup) echo 45;; tasks) echo 45;; tasks_tbb) echo 20;; tasks_omp) echo 30;; io) echo 40;; *) echo 25;; esac
  fi
}

start=$(date +%s.%N)
status=0
for p in $progs; do
  b=$(budget "$p"); if [ "$MODE" = quick ]; then hard=$((b + 6)); else hard=$((b + 30)); fi
  echo "== $p ($MODE, budget ${b}s)" >&2
  env BENCH_BUDGET_S="$b" \
      OMP_NUM_THREADS="$BENCH_WORKERS" OMP_PROC_BIND=true OMP_PLACES=cores \
      timeout -k 5 "$hard" "$B/bench/$p" "$MODE" >"$tmp/$p.jsonl"
  rc=$?
  if [ $rc -ne 0 ]; then
    case $rc in 124|137) why="killed after ${hard}s";; *) why="exited with status $rc";; esac
    [ $rc -gt 128 ] && [ $rc -ne 137 ] && why="died of signal $((rc - 128))"
    echo "== $p: $why" >&2
    status=1
    # a program that failed cleanly has already said why in its records
    [ $rc -eq 1 ] && grep -q '"error":' "$tmp/$p.jsonl" && continue
    printf '{"bench":"%s","variant":"(program)","unit":"-","median":null,"min":null,"max":null,"baseline":null,"ratio":null,"error":"%s"}\n' \
      "$p" "$why" >>"$tmp/$p.jsonl"
  fi
done

for p in $progs; do cat "$tmp/$p.jsonl"; done | "$B/bench/report" "$results/latest.json" "$MODE" || exit 1
"$B/bench/plot" "$results/latest.json" "$results" || exit 1
end=$(date +%s.%N)
printf '\nresults: %s/latest.json and %s/*.svg; the run took %s s\n' "$results" "$results" \
  "$(awk "BEGIN{printf \"%.0f\", $end - $start}")"
# A failed program shows in the table as FAILED rows; the run itself fails only when nothing
# could be reported, so `make bench` always shows whatever was measured.
[ $status -ne 0 ] && echo "some benchmark programs failed: see the FAILED rows above" >&2
exit 0
