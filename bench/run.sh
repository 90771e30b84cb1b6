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

# Programs that are not benchmarks; the task programs of shoal and its peers, run in rounds
# (below); the others run once each, lookup first.
tools=" report plot "
rounded="tasks tasks_tbb tasks_omp"
rounded_actor="actor actor_tbb"
order="lookup"
progs="" rprogs=""
for p in $order; do [ -x "$B/bench/$p" ] && progs="$progs $p"; done
aprogs=""
for p in $rounded; do [ -x "$B/bench/$p" ] && rprogs="$rprogs $p"; done
for p in $rounded_actor; do [ -x "$B/bench/$p" ] && aprogs="$aprogs $p"; done
for f in "$B"/bench/*; do
  p=$(basename "$f")
  [ -x "$f" ] && [ -f "$f" ] || continue
  case " $order $rounded $rounded_actor $tools " in *" $p "*) continue;; esac
  progs="$progs $p"
done
for t in $tools; do
  [ -x "$B/bench/$t" ] || { echo "run.sh: $B/bench/$t is missing: run make bench-build" >&2; exit 1; }
done

# Each program gets a time budget after which it skips its remaining figures (reported as
# failures), and a hard limit after which it is killed: one slow or hung runtime must not
# hold the whole run past its few minutes (30 s quick).
budget() {
  if [ "$MODE" = quick ]; then
    case $1 in lookup) echo 8;; io) echo 8;; round) echo 6;; *) echo 5;; esac
  else
    case $1 in lookup) echo 45;; io) echo 40;; round) echo 20;; *) echo 25;; esac
  fi
}

status=0
# run_prog NAME OUTFILE [ROUND]: one run of a program, its records appended to OUTFILE; a
# program that died leaves a "(program)" record saying how.
run_prog() {
  local p=$1 out=$2 round=${3:-0} b hard rc why
  if [ "$round" -gt 0 ]; then b=$(budget round); else b=$(budget "$p"); fi
  if [ "$MODE" = quick ]; then hard=$((b + 6)); else hard=$((b + 30)); fi
  echo "== $p ($MODE${3:+, round $round}, budget ${b}s)" >&2
  env BENCH_BUDGET_S="$b" BENCH_ROUND="$round" ${3:+BENCH_REPS=1} \
      OMP_NUM_THREADS="$BENCH_WORKERS" OMP_PROC_BIND=true OMP_PLACES=cores \
      timeout -k 5 "$hard" "$B/bench/$p" "$MODE" >"$tmp/one.jsonl"
  rc=$?
  cat "$tmp/one.jsonl" >>"$out"
  [ $rc -eq 0 ] && return 0
  case $rc in 124|137) why="killed after ${hard}s";; *) why="exited with status $rc";; esac
  [ $rc -gt 128 ] && [ $rc -ne 137 ] && why="died of signal $((rc - 128))"
  echo "== $p: $why" >&2
  status=1
  # a program that failed cleanly has already said why in its records
  [ $rc -eq 1 ] && grep -q '"error":' "$tmp/one.jsonl" && return 0
  printf '{"bench":"%s","variant":"(program)","unit":"-","median":null,"n":0,"baseline":null,"prog":"%s","round":%d,"samples":[],"error":"%s"}\n' \
    "$p" "$p" "$round" "$why" >>"$out"
}

start=$(date +%s.%N)
: >"$tmp/all.jsonl"
for p in $progs; do
  [ "$p" = lookup ] || continue
  # its loops' placement is part of what it measures (bench/lookup.c): say when it slipped
  "$(dirname "$0")/lookup-loops.sh" "$B/bench/lookup" >/dev/null 2>&1 ||
    echo "== lookup: a timed loop is not at 0 mod 64 or not straight (bench/lookup-loops.sh)" >&2
  run_prog "$p" "$tmp/all.jsonl"
done

# shoal and its peers in alternating processes: round r runs each program of a group once
# (one untimed warm-up and one timed repetition of every workload), the order reversed every
# other round, so that drift on this shared machine hits every runtime alike and each
# shoal figure pairs with the peer's figure of the same round (bench/report). Past the
# first few rounds, rounds stop early, with fewer pairs (the table's n says so), once the
# group has used its budget.
# run_rounds NAME BUDGET_S PROGS...
run_rounds() {
  local name=$1 group_budget=$2 rounds min_rounds g0 r list p
  shift 2
  [ $# -gt 0 ] || return 0
  if [ "$MODE" = quick ]; then rounds=3 min_rounds=2; else rounds=7 min_rounds=3; fi
  g0=$(date +%s)
  for r in $(seq 1 "$rounds"); do
    if [ "$r" -gt "$min_rounds" ] && [ $(( $(date +%s) - g0 )) -gt "$group_budget" ]; then
      echo "== $name rounds: ${group_budget}s used after $((r - 1)) of $rounds rounds" >&2
      break
    fi
    list="$*"
    [ $((r % 2)) -eq 0 ] && list=$(echo "$list" | tr ' ' '\n' | tac | tr '\n' ' ')
    for p in $list; do run_prog "$p" "$tmp/all.jsonl" "$r"; done
  done
}
if [ "$MODE" = quick ]; then
  run_rounds task 20 $rprogs
  run_rounds actor 10 $aprogs
else
  run_rounds task 100 $rprogs
  run_rounds actor 60 $aprogs
fi

# System calls of 100k submit+get+release round trips from one thread: the calls of
# `tasks roundtrips 100000` less those of `tasks roundtrips 0` (init, workers, shutdown),
# counted by strace -f; pairs alternate, the figure is their median.
if [ -x "$B/bench/tasks" ]; then
  key='"bench":"syscalls, 100k round trips","variant":"shoal","unit":"syscalls"'
  if ! command -v strace >/dev/null; then
    printf '{%s,"median":null,"n":0,"prog":"strace","samples":[],"error":"strace is not installed (apt-get install strace)"}\n' "$key" >>"$tmp/all.jsonl"
  else
    echo "== syscalls of 100k round trips (strace -f)" >&2
    calls() {  # total system calls of `tasks roundtrips $1`, empty on failure
      BENCH_WORKERS=$BENCH_WORKERS timeout -k 5 60 strace -f -qq -c -o "$tmp/strace" \
        "$B/bench/tasks" roundtrips "$1" >/dev/null 2>&1 || return
      awk '$NF == "total" { print $4 }' "$tmp/strace" | tail -1   # % s us/call calls
    }
    if [ "$MODE" = quick ]; then npairs=1; else npairs=3; fi
    samples="" n=0 err=""
    for _ in $(seq 1 "$npairs"); do
      a=$(calls 0); b=$(calls 100000)
      if [ -z "$a" ] || [ -z "$b" ]; then err="tasks roundtrips failed under strace"; break; fi
      samples="$samples${samples:+,}$((b - a))"; n=$((n + 1))
    done
    if [ -n "$err" ]; then
      printf '{%s,"median":null,"n":0,"prog":"strace","samples":[],"error":"%s"}\n' "$key" "$err" >>"$tmp/all.jsonl"
    else
      printf '{%s,"median":null,"n":%d,"baseline":null,"paired":false,"prog":"strace","round":0,"samples":[%s]}\n' \
        "$key" "$n" "$samples" >>"$tmp/all.jsonl"
    fi
  fi
fi

for p in $progs; do
  [ "$p" = lookup ] && continue
  run_prog "$p" "$tmp/all.jsonl"
done

commit=$(git -C "$here" rev-parse HEAD 2>/dev/null || echo unknown)
[ -n "$(git -C "$here" status --porcelain --untracked-files=no 2>/dev/null)" ] && commit="$commit+changes"
report_rc=0
BENCH_COMMIT=$commit "$B/bench/report" "$results/latest.json" "$MODE" <"$tmp/all.jsonl" || report_rc=$?
[ -s "$results/latest.json" ] || exit 1
"$B/bench/plot" "$results/latest.json" "$results" || exit 1
end=$(date +%s.%N)
printf '\nresults: %s/latest.json and %s/*.svg; the run took %s s\n' "$results" "$results" \
  "$(awk "BEGIN{printf \"%.0f\", $end - $start}")"
# A failed program shows in the table as FAILED rows; the run itself fails only when nothing
# could be reported (or two figures share a name), so `make bench` shows whatever was measured.
[ $status -ne 0 ] && echo "some benchmark programs failed: see the FAILED rows above" >&2
[ $report_rc -ne 0 ] && { echo "bench/report found duplicate keys: see above" >&2; exit 1; }
exit 0
