#!/usr/bin/env bash
# tests/layers.sh - the library's folders are its layers; this says which and checks it.
# Each folder may use only the folders on the lines above its own: never one below (an
# arrow up) nor another folder of its own line (siblings stay apart; they meet through
# hooks that a layer below declares and the layer above fills).
#   tests/layers.sh [BUILD]          check: fails, naming each file, on an #include or a
#                                    call (a symbol an object file takes from another, read
#                                    with nm from BUILD/obj when it is built) that breaks it
#   tests/layers.sh --graph [BUILD]  print the folder graph: who uses whom, and how often
set -u
cd "$(dirname "$0")/.."

# The layer order, lowest first: written here and nowhere else.
LAYERS='
include
os
layout
alloc
core
sched io mproc
runtime
'

graph=0
[ "${1:-}" = --graph ] && { graph=1; shift; }
B=${1:-build}

lib_dirs=$(echo "$LAYERS" | tr ' ' '\n' | grep -v '^include$' | grep .)

# The Makefile builds the library from exactly these folders.
mk=$(sed -n 's/^LIB_DIRS *:= *//p' Makefile)
if [ "$(echo $mk | tr ' ' '\n' | sort)" != "$(echo $lib_dirs | tr ' ' '\n' | sort)" ]; then
  echo "layers: the Makefile's LIB_DIRS ($mk) and the layers here ($(echo $lib_dirs)) differ"
  exit 1
fi

# Every arrow as "from-folder to-folder file -> target (what)": includes, then symbols.
arrows=$(
  # shellcheck disable=SC2046
  grep -H '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' $(for d in $lib_dirs; do ls "$d"/*.[ch] 2>/dev/null; done) |
  awk -v known="$(ls -d $lib_dirs include 2>/dev/null | tr '\n' ' ')" '
    function norm(p,   n, i, k, part, out) {   # a/b/../c -> a/c
      n = split(p, part, "/"); k = 0
      for (i = 1; i <= n; i++) {
        if (part[i] == "." || part[i] == "") continue
        if (part[i] == ".." && k > 0 && stack[k] != "..") { k--; continue }
        stack[++k] = part[i]
      }
      out = ""; for (i = 1; i <= k; i++) out = out (i > 1 ? "/" : "") stack[i]
      return out
    }
    { f = $0; sub(/:.*/, "", f); inc = $0; sub(/^[^"]*"/, "", inc); sub(/".*/, "", inc)
      dir = f; sub(/\/[^\/]*$/, "", dir)
      t = norm(dir "/" inc)
      if ((getline line < t) < 0) { t = "include/" inc; if ((getline line < t) < 0) { print "?? " dir " " f " -> " inc " (not found)"; next } }
      close(t)
      td = t; sub(/\/.*/, "", td)
      print dir, td, f " -> " t " (#include)" }'
  if [ -d "$B/obj" ]; then
    # Calls and variables: which object defines each global symbol, which objects use it.
    # shellcheck disable=SC2046
    nm -A $(for d in $lib_dirs; do ls "$B"/obj/"$d"/*.o 2>/dev/null; done) 2>/dev/null | awk -v B="$B/obj/" '
      { file = $1; sub(/:.*/, "", file); sub(B, "", file); sub(/\.o$/, ".c", file)
        if (NF == 3 && $2 ~ /^[TDBRCV]$/) def[$3] = file
        else if ($2 == "U") { use[++n] = file; sym[n] = $3 } }
      END { for (i = 1; i <= n; i++) if (sym[i] in def) {
              f = use[i]; t = def[sym[i]]; fd = f; td = t; sub(/\/.*/, "", fd); sub(/\/.*/, "", td)
              if (fd != td) print fd, td, f " -> " t " (" sym[i] ")" } }'
  fi
)

if [ $graph = 1 ]; then
  echo "folder graph (lowest layer last; N = includes + symbols used):"
  echo "$LAYERS" | awk 'NF { l[++n] = $0 } END { for (i = n; i >= 1; i--) print "  layer " i ": " l[i] }'
  echo "$arrows" | awk 'NF && $1 != "??" && $1 != $2 { n[$1 " -> " $2]++ } END { for (k in n) print "  " k "  (" n[k] ")" }' | sort
  exit 0
fi

bad=$(echo "$arrows" | awk -v layers="$LAYERS" '
  BEGIN { n = split(layers, line, "\n"); k = 0
          for (i = 1; i <= n; i++) if (line[i] ~ /[^ ]/) { k++; m = split(line[i], w, " "); for (j = 1; j <= m; j++) floor[w[j]] = k } }
  NF { from = $1; to = $2; rest = $0; sub(/^[^ ]+ [^ ]+ /, "", rest)
       if (from == "??") { print "unresolved include: " to " " rest; next }
       if (from == to) next
       if (!(to in floor)) print "into a folder that is no layer: " rest
       else if (floor[to] > floor[from]) print "up (" from " uses " to ", a higher layer): " rest
       else if (floor[to] == floor[from]) print "sideways (" from " and " to " are siblings): " rest }' | sort -u)
if [ -n "$bad" ]; then
  echo "layers: FAILED, arrows that break the layer order (tests/layers.sh):"
  echo "$bad" | sed 's/^/  /'
  exit 1
fi
echo "layers: ok ($(echo "$arrows" | grep -c .) arrows checked$([ -d "$B/obj" ] || echo ', includes only: no objects built'))"
