#!/usr/bin/env bash
# check-install.sh - installs shoal into a temporary prefix and builds a program against it
# the way a user would (pkg-config, shared and static, C and C++), runs them, and checks that the
# shared library exports only shoal_* symbols; that the tools and a man page for every
# exported function and every tool are installed and render without warnings; that the
# README's first program builds and prints what the README shows; and the Makefile's
# messages for a missing dependency and for ldconfig. Run from the repository root.
set -uo pipefail

cd "$(dirname "$0")/.."
tmp=$(mktemp -d /tmp/shoal-install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
step() { echo "--- $*"; }

step "make install PREFIX=$tmp"
if ! make -s install PREFIX="$tmp" >"$tmp/install.log" 2>&1; then
  cat "$tmp/install.log"; fail "make install"
fi
for f in include/shoal.h include/shoal.hpp lib/libshoal.a lib/libshoal.so lib/pkgconfig/shoal.pc share/man/man7/shoal.7; do
  [ -e "$tmp/$f" ] || fail "not installed: $f"
done
# A prefix the dynamic linker does not search: make install says how to run programs.
grep -q "export LD_LIBRARY_PATH=$tmp/lib" "$tmp/install.log" \
  || fail "make install into $tmp did not print the LD_LIBRARY_PATH line"

step "tools installed, each with a man page"
ntools=0
for src in tools/*.c; do
  t=$(basename "$src" .c)
  ntools=$((ntools + 1))
  [ -x "$tmp/bin/$t" ] || fail "tool not installed: bin/$t"
  [ -f "$tmp/share/man/man1/$t.1" ] || fail "no man page for tool $t: man/man1/$t.1"
done
[ "$ntools" -gt 0 ] || fail "no tools under tools/"
"$tmp/bin/shoal-topo" --synthetic "pack:1 numa:1 core:2 pu:1" >/dev/null 2>&1 \
  || fail "installed shoal-topo does not run"

step "man pages: one per exported function, rendering without warnings"
# Rendered by name through MANPATH, as a user's `man shoal_get_timeout` finds it (the .so
# links of a family included); groff alone where man-db is not installed.
render() {   # section name -> prints troff/man warnings, if any
  if command -v man >/dev/null; then
    LC_ALL=C.UTF-8 MANPATH="$tmp/share/man" MANWIDTH=80 man --warnings -P cat "$1" "$2" 2>&1 >/dev/null
  elif command -v groff >/dev/null; then
    (cd "$tmp/share/man" && groff -man -Tutf8 -ww -z "man$1/$2.$1" 2>&1)
  else
    echo "neither man nor groff is installed (apt-get install -y man-db groff-base)"
  fi
}
nfn=0
for fn in $(nm -D --defined-only "$tmp/lib/libshoal.so" | awk '$2 == "T" {print $3}' | sed 's/@.*//' |
            grep '^shoal_' | grep -v '^shoal__' | sort -u); do
  nfn=$((nfn + 1))
  if [ ! -f "$tmp/share/man/man3/$fn.3" ]; then
    fail "exported function $fn has no man page (man/man3/$fn.3)"
    continue
  fi
  w=$(render 3 "$fn")
  [ -z "$w" ] || fail "man 3 $fn: $w"
done
[ "$nfn" -gt 0 ] || fail "no exported shoal_ function found"
for page in "$tmp"/share/man/man1/*.1 "$tmp"/share/man/man3/*.3 "$tmp"/share/man/man7/*.7; do
  sec=${page##*.}; name=$(basename "$page" ".$sec")
  w=$(render "$sec" "$name")
  [ -z "$w" ] || fail "man $sec $name: $w"
done
echo "$nfn exported functions, $ntools tools, $(ls "$tmp"/share/man/man*/* | wc -l) pages"

if [ "$fails" = 0 ]; then
  if [ -f examples/hello.c ]; then
    cp examples/hello.c "$tmp/app.c"
  else
    cat >"$tmp/app.c" <<'EOF'
#include <shoal.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
    shoal_config cfg = { .store_bytes = 64u << 20, .workers = 1 };
    shoal_ref r;
    const void *data; size_t len;
    if (shoal_init(&cfg) || shoal_put("hello", 5, &r) || shoal_get(r, &data, &len)) {
        fprintf(stderr, "shoal: %s\n", shoal_last_error());
        return 1;
    }
    printf("%.*s\n", (int)len, (const char *)data);
    int bad = len != 5 || memcmp(data, "hello", 5) != 0;
    return bad | shoal_release(r) | shoal_shutdown();
}
EOF
  fi
  export PKG_CONFIG_PATH="$tmp/lib/pkgconfig"

  step "shared: cc app.c \$(pkg-config --cflags --libs shoal)"
  # shellcheck disable=SC2046
  if cc -std=c11 -Wall -Wextra -Werror "$tmp/app.c" $(pkg-config --cflags --libs shoal) -o "$tmp/app_shared"; then
    # (ldd output is captured first: grep -q closing the pipe early trips pipefail.)
    deps=$(LD_LIBRARY_PATH="$tmp/lib" ldd "$tmp/app_shared")
    if grep -q "libshoal.so" <<<"$deps"; then
      LD_LIBRARY_PATH="$tmp/lib" SHOAL_QUIET=1 "$tmp/app_shared" || fail "shared app failed"
      # The app must be using the installed library, not one found elsewhere.
      grep -q "$tmp/lib/libshoal.so" <<<"$deps" \
        || fail "shared app does not resolve libshoal.so from $tmp/lib"
    else
      fail "shared app is not linked against libshoal.so"
    fi
  else
    fail "shared build"
  fi

  step "shared, -DSHOAL_NO_INLINE (shoal_get through the library, not inline)"
  # shellcheck disable=SC2046
  if cc -std=c11 -Wall -Wextra -Werror -DSHOAL_NO_INLINE "$tmp/app.c" $(pkg-config --cflags --libs shoal) -o "$tmp/app_noinline"; then
    LD_LIBRARY_PATH="$tmp/lib" SHOAL_QUIET=1 "$tmp/app_noinline" || fail "shared app (SHOAL_NO_INLINE) failed"
  else
    fail "shared build with SHOAL_NO_INLINE"
  fi

  step "C++: c++ -std=c++17 examples/cxx_fib.cc \$(pkg-config --cflags --libs shoal)"
  # shellcheck disable=SC2046
  if c++ -std=c++17 -Wall -Wextra -Wpedantic -Werror examples/cxx_fib.cc $(pkg-config --cflags --libs shoal) -o "$tmp/app_cxx"; then
    out=$(LD_LIBRARY_PATH="$tmp/lib" SHOAL_QUIET=1 "$tmp/app_cxx" 22) || fail "C++ app failed"
    grep -q "fib(22) = 17711 ok" <<<"$out" || fail "C++ app printed: $out"
  else
    fail "C++ build against the installed shoal.hpp"
  fi

  step "static: cc app.c \$(pkg-config --static --cflags --libs shoal), libshoal.a"
  # -lshoal would pick the .so next to the .a: name the archive, keep the rest of the flags.
  libs=$(pkg-config --static --libs shoal)
  libs=${libs/-lshoal/$tmp/lib/libshoal.a}
  # shellcheck disable=SC2086,SC2046
  if cc -std=c11 -Wall -Wextra -Werror "$tmp/app.c" $(pkg-config --static --cflags shoal) $libs -o "$tmp/app_static"; then
    if ldd "$tmp/app_static" | grep libshoal >/dev/null; then
      fail "static app still needs libshoal.so"
    fi
    env -u LD_LIBRARY_PATH SHOAL_QUIET=1 "$tmp/app_static" || fail "static app failed"
    # Linking shoal, statically or not, never brings another malloc into the program.
    for app in app_shared app_static; do
      deps=$(LD_LIBRARY_PATH="$tmp/lib" ldd "$tmp/$app")
      if grep -Eq 'jemalloc|tcmalloc|mimalloc' <<<"$deps"; then
        fail "$app links another allocator: $(grep -E 'jemalloc|tcmalloc|mimalloc' <<<"$deps")"
      fi
    done
  else
    fail "static build"
  fi

  step "the README's first program, built against the install"
  # The C block under '## A first program', and the lines the README shows it printing.
  awk '/^## A first program/ {s = 1} s == 1 && /^```c$/ {s = 2; next} s == 2 && /^```$/ {exit}
       s == 2 {print}' README.md >"$tmp/first.c"
  awk '/^## A first program/ {s = 1} s == 1 && /^\$ \.\/first$/ {s = 2; next} s == 2 && /^```$/ {exit}
       s == 2 {print}' README.md >"$tmp/first.expected"
  if [ ! -s "$tmp/first.c" ] || [ ! -s "$tmp/first.expected" ]; then
    fail "README.md has no first program (a \`\`\`c block under '## A first program') or no output after '\$ ./first'"
  else
    # shellcheck disable=SC2046
    if cc -std=c11 -Wall -Wextra -Werror "$tmp/first.c" -o "$tmp/first" $(pkg-config --cflags --libs shoal); then
      if LD_LIBRARY_PATH="$tmp/lib" SHOAL_QUIET=1 timeout 120 "$tmp/first" >"$tmp/first.out"; then
        diff -u "$tmp/first.expected" "$tmp/first.out" || fail "the README's first program prints something else"
      else
        fail "the README's first program failed"
      fi
    else
      fail "the README's first program does not compile against the install"
    fi
  fi

  step "exported symbols of libshoal.so"
  # Allowed besides shoal_*: the version node of shoal.map and linker-made markers.
  bad=$(nm -D --defined-only "$tmp/lib/libshoal.so" | awk '{print $NF}' | sed 's/@.*//' |
        grep -Ev '^(shoal_.*|SHOAL_[0-9]+|_init|_fini|_edata|_end|__bss_start)$' || true)
  if [ -n "$bad" ]; then
    fail "libshoal.so exports non-shoal symbols: $(echo $bad | head -c 400)"
  fi
  nexp=$(nm -D --defined-only "$tmp/lib/libshoal.so" | awk '{print $NF}' | grep -c '^shoal_' || true)
  [ "$nexp" -gt 0 ] || fail "libshoal.so exports no shoal_* symbol"
  echo "exports $nexp shoal_* symbols"
fi

step "make with a missing dependency, as a user: the apt-get line, not a compiler error"
# A fake `id` makes the Makefile take its non-root branch; the package name cannot exist.
mkdir -p "$tmp/fakebin"
printf '#!/bin/sh\necho 1000\n' >"$tmp/fakebin/id"
printf '#!/bin/sh\necho "$@" >>"%s/ldconfig.calls"\n' "$tmp" >"$tmp/fakebin/ldconfig"
chmod +x "$tmp/fakebin/id" "$tmp/fakebin/ldconfig"
out=$(PATH="$tmp/fakebin:$PATH" make --no-print-directory PKGS="hwloc shoal-no-such-lib" \
        DEBS="libhwloc-dev shoal-no-such-lib-dev libcunit1-dev" 2>&1) && fail "make succeeded without a dependency"
grep -q "missing packages; run: sudo apt-get install -y shoal-no-such-lib-dev$" <<<"$out" \
  || fail "make with a missing dependency printed: $(head -c 600 <<<"$out")"

step "make install and ldconfig: run for a system library directory as root, else said"
# The Makefile reads the dynamic linker's directories from LDSO_CONF: one that lists the
# prefix stands for /etc/ld.so.conf.d, and the fake ldconfig records that it ran.
echo "$tmp/sys/lib" >"$tmp/ld.conf"
make -s install PREFIX="$tmp/sys" LDSO_CONF="$tmp/ld.conf" PATH="$tmp/fakebin:$PATH" >"$tmp/sys.log" 2>&1
grep -q "run as root so that programs find libshoal.so" "$tmp/sys.log" || fail "make install as a user: $(cat "$tmp/sys.log")"
[ ! -e "$tmp/ldconfig.calls" ] || fail "make install ran ldconfig as a user"
rm -f "$tmp/fakebin/id"
make -s install PREFIX="$tmp/sys" LDSO_CONF="$tmp/ld.conf" PATH="$tmp/fakebin:$PATH" >"$tmp/sys.log" 2>&1
if [ "$(id -u)" = 0 ]; then
  [ -e "$tmp/ldconfig.calls" ] || fail "make install as root into a system library directory did not run ldconfig: $(cat "$tmp/sys.log")"
fi

make -s uninstall PREFIX="$tmp/sys" >/dev/null 2>&1
left=$(find "$tmp/sys" -type f -o -type l)
[ -z "$left" ] || fail "make uninstall left: $left"

step "a second build relinks nothing (make test keeps tests/lib objects)"
if [ -x build/tests/test_harness ]; then
  # (not make -n: the flags file is remade every run, which -n takes for a change)
  again=$(make --no-print-directory build/tests/test_harness 2>&1)
  ! grep -qE "^ *(CC|AR|LD) " <<<"$again" || fail "build/tests/test_harness was rebuilt: $again"
else
  echo "(no build/tests/test_harness: run make test first; skipped)"
fi

if [ "$fails" = 0 ]; then
  echo "1 passed, 0 failed"
else
  echo "$fails problem(s) above"
  echo "0 passed, 1 failed"
  exit 1
fi
