#!/bin/sh
# lookup-loops.sh - print the timed loop of each bench/lookup variant as built (objdump), with
# where its head lies against 64-byte lines and how many instructions and branches one
# iteration runs, and fail if a loop head is not at 0 mod 64 (bench/lookup.c says why the
# placement matters) or a loop is not laid out straight (an unconditional jump inside it:
# gcc moved a block of its body elsewhere); then the library shoal_get's hit path, which must
# be a leaf that reaches its ret straight. Usage: bench/lookup-loops.sh [lookup binary]
bin=${1:-build/bench/lookup}
[ -x "$bin" ] || { echo "lookup-loops.sh: no $bin (make bench-build)" >&2; exit 2; }
command -v objdump >/dev/null || { echo "lookup-loops.sh: no objdump (binutils)" >&2; exit 2; }
status=0
for f in loop_a loop_a_inline loop_b loop_c loop_c_call; do
  objdump -d --no-show-raw-insn "$bin" | awk -v f="$f" '
    function hex(s,  v, i) {   # (mawk has no strtonum)
      v = 0
      for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
      return v
    }
    $0 ~ "^[0-9a-f]+ <" f ">:$" { on = 1; next }
    on && /^$/ { exit }
    on && /:\t/ {
      a = $1; sub(":", "", a); n++; addr[n] = hex(a); line[n] = $0
      # the loop: the one backward branch inside the function, to its head
      if (index($0, "<" f "+0x") && $0 ~ /\tj[a-z]+ /) {
        t = $0; sub(/.*\tj[a-z]+ +/, "", t); sub(/ .*/, "", t); t = hex(t)
        if (t < addr[n] && head == "") { head = t; tail = addr[n] }
      }
    }
    END {
      if (head == "") { printf "%s: no loop found\n", f; exit 1 }
      ins = 0; br = 0
      for (i = 1; i <= n; i++)
        if (addr[i] >= head && addr[i] <= tail) {
          print line[i]; ins++
          if (line[i] ~ /\tj[a-z]+ /) br++
          if (line[i] ~ /\tjmp /) jumps++
        }
      printf "%s: head at %x (%d mod 64), %d instructions, %d branches, %d bytes to the back branch\n\n", \
        f, head, head % 64, ins, br, tail - head
      if (jumps) printf "%s: %d unconditional jumps inside the loop\n\n", f, jumps
      exit head % 64 != 0 || jumps
    }' || status=1
done
# The library's own shoal_get (the lib call row): its hit path, up to the first ret, as a
# leaf that never touches the stack or leaves for another block (a miss shape that made
# gcc set up a frame and return through .cold cost it 15%: core/get.c).
objdump -d --no-show-raw-insn "$bin" | awk '
  /^[0-9a-f]+ <shoal_get>:$/ { on = 1; next }
  on && /:\t/ {
    print; n++
    if ($0 ~ /\t(push|sub +\$0x[0-9a-f]+,%rsp|jmp|call)/) bad++
    if ($0 ~ /\tret/) { done = 1; exit }
  }
  END {
    if (!done) { print "shoal_get: no ret found"; exit 1 }
    printf "shoal_get (library): hit path %d instructions to its ret%s\n\n", n, \
      bad ? ", touching the stack or jumping away first" : ""
    exit bad != 0
  }' || status=1
exit $status
