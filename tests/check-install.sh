#!/usr/bin/env bash
# check-install.sh - installs shoal into a temporary prefix and builds a program against it
# the way a user would (pkg-config, shared and static, C and C++), runs them, and checks that the
# shared library exports only shoal_* symbols. Run from the repository root.
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
for f in include/shoal.h include/shoal.hpp lib/libshoal.a lib/libshoal.so lib/pkgconfig/shoal.pc; do
  [ -e "$tmp/$f" ] || fail "not installed: $f"
done

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
  else
    fail "static build"
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

if [ "$fails" = 0 ]; then
  echo "1 passed, 0 failed"
else
  echo "$fails problem(s) above"
  echo "0 passed, 1 failed"
  exit 1
fi
