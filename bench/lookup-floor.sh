#!/bin/sh
# lookup-floor.sh - what the inline shoal_get's hot loop would cost in cheaper forms that the
# contract does not allow, measured against "a ref+ptr inline" in the same run: the floor
# behind issue 13's "hot shoal_get <= 1.1x" row. Builds bench/lookup in variants (copies of
# shoal.h and lookup.c edited in a temporary directory; the library is build/lib/libshoal.a
# as it is), prints each variant's shoal loop as bench/lookup-loops.sh counts it, then runs
# them round after round (BENCH_ONLY=hot, short blocks of 64K lookups, 63 pairs a run) and
# pools every per-pair ratio c/a_inline of each variant: p25, median, p75.
#   cur       shoal.h as it is
#   nocheck   no offset/length bounds check at all (unsafe: a scribbled slot gives a wild
#             pointer)
#   lea32     the cheapest check there is: 32-bit offset and length loaded, one lea and one
#             compare (needs a slot layout with 32-bit fields; here it reads the low halves,
#             which is right only for this bench's store of less than 4 GiB)
#   lea32_noidx  lea32 without the index bound check (it would take a table reservation
#             of 2^32 slots of readable zeros, 128 GiB of address space, for every view)
#   *_okacc   the same, with only shoal's loop accumulating d + l on success and rc on
#             failure: shows what the loop's merge of the miss path's variable error code
#             costs (not a fair comparison: the baseline's loop keeps `d + l + rc`)
# Usage: bench/lookup-floor.sh [rounds, default 10]. Needs libshoal.a (make).
set -eu
rounds=${1:-10}
[ "$rounds" -ge 1 ] || { echo "lookup-floor.sh: rounds must be at least 1" >&2; exit 2; }
[ -f build/lib/libshoal.a ] || { echo "lookup-floor.sh: no build/lib/libshoal.a (make)" >&2; exit 2; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/inc"

# exact lines of shoal__get_hit that the variants replace; each must be found once
chk='            if (__builtin_expect(shoal__sum_fits(off, n, \&end) \&\& end <= shoal__tls.span, 1)) {'
ldo='            uint64_t off = __atomic_load_n(\&s\[1\], __ATOMIC_RELAXED);'
ldn='            uint64_t n = __atomic_load_n(\&s\[2\], __ATOMIC_RELAXED);'
idx='    if (__builtin_expect(shoal__view_has(idx), 1)) {'
for p in "$chk" "$ldo" "$ldn" "$idx"; do
  [ "$(grep -c "^$p\$" include/shoal.h)" = 1 ] ||
    { echo "lookup-floor.sh: shoal.h's hit path changed; update the patterns" >&2; exit 2; }
done
sed "s/^$chk\$/            (void)end; if (1) {/" include/shoal.h > "$tmp/inc/nocheck.h"
sed -e "s/^$chk\$/            (void)end; if (__builtin_expect(off + n <= shoal__tls.span, 1)) {/" \
    -e "s/^$ldo\$/            uint64_t off = __atomic_load_n((const uint32_t *)(const void *)\&s[1], __ATOMIC_RELAXED);/" \
    -e "s/^$ldn\$/            uint64_t n = __atomic_load_n((const uint32_t *)(const void *)\&s[2], __ATOMIC_RELAXED);/" \
    include/shoal.h > "$tmp/inc/lea32.h"
sed "s/^$idx\$/    if (1) {/" "$tmp/inc/lea32.h" > "$tmp/inc/lea32_noidx.h"
cp include/shoal.h "$tmp/inc/cur.h"

# the bench with short blocks; and with shoal's loop accumulating on success only
sed 's/quick ? (size_t)1 << 21 : (size_t)1 << 24/quick ? (size_t)1 << 16 : (size_t)1 << 24/' \
    bench/lookup.c > "$tmp/lookup.c"
grep -q '1 << 16 :' "$tmp/lookup.c" || { echo "lookup-floor.sh: lookup.c changed" >&2; exit 2; }
awk '{ print }
     /^#define BENCH_LOOP / {
       print "#define OKACC(CALL) uintptr_t acc = 0; size_t k = 0; uint64_t t0 = bench_ns(); \\"
       print "    do { size_t j = seq ? seq[k] : (k & 63); const void *d = NULL; size_t l = 0; \\"
       print "         int rc = CALL; acc += rc == 0 ? (uintptr_t)d + l : (unsigned)rc; \\"
       print "         BENCH_LAUNDER(acc); } while (++k < n); \\"
       print "    uint64_t t = bench_ns() - t0; sink ^= acc; return (double)t / (double)n"
     }' "$tmp/lookup.c" |
  sed 's/^    LOOKUP_LOOP(shoal_get(refs\[j\], &d, &l));$/    OKACC(shoal_get(refs[j], \&d, \&l));/' \
  > "$tmp/lookup_okacc.c"
grep -q '^    OKACC(shoal_get' "$tmp/lookup_okacc.c" || { echo "lookup-floor.sh: lookup.c changed" >&2; exit 2; }

cc=${CC:-cc}
vars=""
for v in cur nocheck lea32 lea32_noidx cur_okacc nocheck_okacc lea32_okacc; do
    h=${v%_okacc}; src=lookup; [ "$h" = "$v" ] || src=lookup_okacc
    mkdir -p "$tmp/$v"; cp "$tmp/inc/$h.h" "$tmp/$v/shoal.h"
    $cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -O2 -g -I"$tmp/$v" -Iinclude -Ibench -falign-loops=64 -fopenmp \
        "$tmp/$src.c" build/lib/libshoal.a -luring -lhwloc -lpthread -lm -o "$tmp/$v/lookup"
    printf '%-14s %s\n' "$v" "$(sh bench/lookup-loops.sh "$tmp/$v/lookup" 2>/dev/null |
      grep -E '^loop_(a_inline|c):' | sed 's/ head at [0-9a-f]* (\([0-9]*\) mod 64),/ (\1 mod 64)/;s/, [0-9]* bytes.*//' |
      tr '\n' ' ')"
    vars="$vars $v"
done

for r in $(seq "$rounds"); do
  for v in $vars; do
    BENCH_ONLY=hot BENCH_REPS=63 "$tmp/$v/lookup" quick 2>/dev/null | awk -v out="$tmp/$v/ratios" '
      /"bench":"lookup hot64"/ && /"variant":"(a ref\+ptr inline|c shoal_get)"/ {
        s = $0; sub(/.*"samples":\[/, "", s); sub(/\].*/, "", s)
        if ($0 ~ /"c shoal_get"/) nc = split(s, c, ","); else na = split(s, a, ",")
      }
      END { for (i = 1; i <= nc && i <= na; i++) printf "%.6f\n", c[i] / a[i] >> out }'
    # this run's median per-pair ratio
    tail -n 63 "$tmp/$v/ratios" | sort -g | awk '{ x[NR] = $1 } END { printf "%.3f ", x[int(NR / 2) + 1] }' \
      >> "$tmp/$v/medians"
  done
done
echo "per-pair ratio c shoal_get / a ref+ptr inline, $rounds runs of 63 pairs each, pooled (and each run's median):"
for v in $vars; do
  sort -g "$tmp/$v/ratios" | awk -v v="$v" '{ x[NR] = $1 }
    END { printf "%-14s n %4d  p25 %.3f  median %.3f  p75 %.3f  (", v, NR, x[int(NR / 4) + 1], x[int(NR / 2) + 1], x[int(3 * NR / 4) + 1] }'
  printf '%s)\n' "$(sed 's/ $//' "$tmp/$v/medians")"
done
