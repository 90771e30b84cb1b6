# shoal - top-level build. `make` builds the libraries, tools and examples; `make test` runs
# every CUnit suite; `make bench` runs the benchmark suite. V=1 shows full commands.
# SANITIZE=address|thread builds everything under build-$(SANITIZE)/ instead of build/.

PREFIX  ?= /usr/local
DESTDIR ?=
CC      ?= cc
V       ?= 0
SANITIZE ?=

# One version, the header's: SHOAL_VERSION_MAJOR.MINOR.PATCH.
VERSION := $(shell awk '/^#define SHOAL_VERSION_(MAJOR|MINOR|PATCH) /{v = v s $$3; s = "."} END {print v}' include/shoal.h)
SOMAJOR := 0
PKGS    := liburing hwloc
DEBS    := liburing-dev libhwloc-dev libcunit1-dev pkg-config systemtap-sdt-dev libudev-dev clang g++
BENCH_DEBS := libtbb-dev

ifeq ($(V),1)
Q :=
else
Q := @
endif

ifeq ($(SANITIZE),)
B := build
SANFLAGS :=
else ifeq ($(SANITIZE),address)
B := build-asan
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else ifeq ($(SANITIZE),thread)
B := build-tsan
SANFLAGS := -fsanitize=thread -fno-omit-frame-pointer
else
$(error SANITIZE must be address or thread)
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CUNIT_LIBS := $(shell pkg-config --libs cunit 2>/dev/null || echo -lcunit)

WARN    := -Wall -Wextra -Werror
CFLAGS  ?= -O2 -g
# Link-time optimization inside the library (gcc, plain builds; LTO=0 turns it off): one
# step of a task's life can be inlined into its caller in another file. The objects under
# $(B)/obj carry gcc's intermediate code (and ordinary code, for tests/layers.sh's nm);
# libshoal.so is linked from them with -flto, and libshoal.a holds one object prelinked
# from them the same way (ld -r): both contain ordinary machine code only, so programs
# link them as before, with any compiler and without LTO of their own (gcc would run its
# link-time pass, with the library's warning flags, over any archive member that carried
# intermediate code). callgrind of bench/tasks' fib: 1056 to 1029 instructions a task.
# Sanitizer builds stay without it. The link-time pass warns as the compiler does (with
# -Werror), after inlining across files.
GCC_CC := $(shell $(CC) -v 2>&1 | grep -q '^gcc version' && echo 1)
ifeq ($(SANITIZE)$(GCC_CC),1)
LTO ?= 1
endif
ifeq ($(LTO),1)
LTO_CFLAGS := -flto=auto -ffat-lto-objects
LTO_LINK   := -flto=auto $(CFLAGS)
endif
CXX     ?= c++
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(SANFLAGS) -Iinclude $(PKG_CFLAGS)
# C++ users of include/shoal.hpp (tests, examples): C++17, pedantic like its users may be.
ALL_CXXFLAGS := -std=c++17 -D_GNU_SOURCE $(WARN) -Wpedantic $(CFLAGS) $(SANFLAGS) -Iinclude
LIB_CFLAGS := $(ALL_CFLAGS) $(LTO_CFLAGS) -fPIC -fvisibility=hidden
LDLIBS  := $(PKG_LIBS) -lpthread -lm
LINK_FLAGS := $(SANFLAGS)

LIB_DIRS := os layout alloc core sched io mproc runtime
LIB_SRCS := $(sort $(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.c)))
LIB_OBJS := $(LIB_SRCS:%.c=$(B)/obj/%.o)
TEST_SRCS := $(sort $(wildcard tests/test_*.c))
TEST_CXX_SRCS := $(sort $(wildcard tests/test_*.cc))
TESTS    := $(TEST_SRCS:tests/%.c=$(B)/tests/%) $(TEST_CXX_SRCS:tests/%.cc=$(B)/tests/%)
TESTLIB_SRCS := $(sort $(wildcard tests/lib/*.c))
TESTLIB_OBJS := $(TESTLIB_SRCS:%.c=$(B)/obj/%.o)
TOOL_SRCS := $(sort $(wildcard tools/*.c))
TOOLS    := $(TOOL_SRCS:tools/%.c=$(B)/tools/%)
EXAMPLE_SRCS := $(sort $(wildcard examples/*.c))
EXAMPLE_CXX_SRCS := $(sort $(wildcard examples/*.cc))
EXAMPLES := $(EXAMPLE_SRCS:examples/%.c=$(B)/examples/%) $(EXAMPLE_CXX_SRCS:examples/%.cc=$(B)/examples/%)
BENCH_C   := $(sort $(wildcard bench/*.c))
BENCH_CXX := $(sort $(wildcard bench/*.cc))
BENCHES  := $(BENCH_C:bench/%.c=$(B)/bench/%) $(BENCH_CXX:bench/%.cc=$(B)/bench/%)

STATIC := $(B)/lib/libshoal.a
SHARED := $(B)/lib/libshoal.so.$(VERSION)

.PHONY: all lib test test-asan test-tsan bench bench-quick bench-build tools examples \
        install uninstall clean deps deps-build deps-bench stress fuzz deps-graph soak
# A fresh machine without the build dependencies: plain `make` installs them (as root) or
# prints the apt-get line (need_debs, below), then builds in a new make that reads their
# pkg-config flags, instead of failing on a missing header.
HAVE_PKGS := $(shell pkg-config --exists $(PKGS) 2>/dev/null && echo 1)
ifeq ($(HAVE_PKGS)$(SHOAL_DEPS_CHECKED),)
all lib: deps-build
	@$(MAKE) --no-print-directory SHOAL_DEPS_CHECKED=1 $@
else
all: lib tools examples

lib: $(STATIC) $(SHARED)
endif

# Rebuild everything when the flags change.
FLAGS_FILE := $(B)/.flags
$(FLAGS_FILE): FORCE
	@mkdir -p $(B)
	@echo '$(ALL_CFLAGS) $(LTO_CFLAGS) $(LDLIBS)' | cmp -s - $@ || echo '$(ALL_CFLAGS) $(LTO_CFLAGS) $(LDLIBS)' > $@
FORCE:

$(B)/obj/%.o: %.c $(FLAGS_FILE)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(LIB_CFLAGS) -MMD -MP -c $< -o $@

ifeq ($(LTO),1)
# The whole library in one object, optimized across its files (see LTO above).
STATIC_OBJS := $(B)/obj/libshoal-lto.o
$(B)/obj/libshoal-lto.o: $(LIB_OBJS)
	@$(if $(Q),echo "  LTO     $@")
	$(Q)$(CC) -r -flinker-output=nolto-rel -fPIC -fvisibility=hidden $(LTO_LINK) -o $@ $^
else
STATIC_OBJS := $(LIB_OBJS)
endif
$(STATIC): $(STATIC_OBJS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(SHARED): $(LIB_OBJS) shoal.map
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -shared $(LINK_FLAGS) $(LTO_LINK) -Wl,-soname,libshoal.so.$(SOMAJOR) -Wl,--version-script=shoal.map \
	    -o $@ $(LIB_OBJS) $(LDLIBS)
	$(Q)ln -sf libshoal.so.$(VERSION) $(B)/lib/libshoal.so.$(SOMAJOR)
	$(Q)ln -sf libshoal.so.$(VERSION) $(B)/lib/libshoal.so

# Tests, tools, examples and benches link the static library (no LD_LIBRARY_PATH needed).
$(B)/tests/%: tests/%.c $(STATIC) $(TESTLIB_OBJS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(ALL_CFLAGS) -Itests -MMD -MP $< $(TESTLIB_OBJS) $(STATIC) $(LINK_FLAGS) $(LDLIBS) $(CUNIT_LIBS) -o $@

$(B)/tests/%: tests/%.cc include/shoal.hpp $(STATIC) $(TESTLIB_OBJS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CXX     $@")
	$(Q)$(CXX) $(ALL_CXXFLAGS) -Itests -MMD -MP $< $(TESTLIB_OBJS) $(STATIC) $(LINK_FLAGS) $(LDLIBS) $(CUNIT_LIBS) -o $@

$(B)/tools/%: tools/%.c $(STATIC)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(ALL_CFLAGS) -MMD -MP $< $(STATIC) $(LINK_FLAGS) $(LDLIBS) -o $@

$(B)/examples/%: examples/%.c $(STATIC)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(ALL_CFLAGS) -MMD -MP $< $(STATIC) $(LINK_FLAGS) $(LDLIBS) -o $@

$(B)/examples/%: examples/%.cc include/shoal.hpp $(STATIC)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CXX     $@")
	$(Q)$(CXX) $(ALL_CXXFLAGS) -MMD -MP $< $(STATIC) $(LINK_FLAGS) $(LDLIBS) -o $@

# Benches may use peers (oneTBB in .cc files, OpenMP); they may include internal headers.
# bench/lookup compares loops of a few nanoseconds an iteration: where each loop happens to
# lie against 64-byte lines moved its figures by up to 1.5x from one build to the next (a
# compare and its branch split by a line). Each timed loop is a function of its own and a
# do-while, whose head -falign-loops=64 aligns (bench/lookup.c says why a while loop's
# head is not); bench/lookup-loops.sh prints the loops as built and checks their heads.
$(B)/bench/lookup: BENCH_CFLAGS := -falign-loops=64
$(B)/bench/%: bench/%.c $(STATIC)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(ALL_CFLAGS) $(BENCH_CFLAGS) -fopenmp -MMD -MP $< $(STATIC) $(LINK_FLAGS) $(LDLIBS) -o $@

$(B)/bench/%: bench/%.cc $(STATIC)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CXX     $@")
	$(Q)$(CXX) -std=c++17 -O2 -g $(WARN) $(SANFLAGS) -Iinclude -MMD -MP $< $(STATIC) $(LINK_FLAGS) \
	    $(shell pkg-config --libs tbb 2>/dev/null || echo -ltbb) $(LDLIBS) -o $@

tools: $(TOOLS)
examples: $(EXAMPLES)
bench-build: $(BENCHES)
# Reached only through the tests' pattern rule, these would be deleted as intermediates
# after each build, so every `make test` relinked every suite.
.SECONDARY: $(TESTLIB_OBJS)

# ---- packages -------------------------------------------------------------------------
# Installs missing Debian packages as root; otherwise prints the exact command and fails.
define need_debs
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "  APT    $$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) >/dev/null || exit 1; \
	  else \
	    echo "missing packages; run: sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi
endef
deps:
	$(call need_debs,$(DEBS))
# What the library and tools need (no CUnit, nor libudev for static pkg-config links).
deps-build:
	$(call need_debs,$(filter-out libcunit1-dev libudev-dev,$(DEBS)))
deps-bench: deps
	$(call need_debs,$(BENCH_DEBS))

# ---- running --------------------------------------------------------------------------
# Each suite is its own program; a failing suite fails `make test`, after all have run.
# SUITE=objects (or test_objects; several allowed) runs only those suites, and CASE=NAME
# only the tests of that name (a shell pattern; tests/lib/harness.c reads SHOAL_TEST_CASE).
RUN_SUITES := $(if $(SUITE),$(addprefix test_,$(patsubst test_%,%,$(SUITE))),$(notdir $(TESTS)))
test: deps
	@$(MAKE) --no-print-directory all $(addprefix $(B)/tests/,$(RUN_SUITES)) $(B)/bench/report
	@tests/layers.sh $(B)
	@SHOAL_QUIET=1 $(if $(CASE),SHOAL_TEST_CASE='$(CASE)') tests/run-suites.sh $(B) $(RUN_SUITES)
	@$(if $(SUITE),:,tests/check-bench-report.sh $(B)/bench/report)

test-asan: deps
	@$(MAKE) --no-print-directory SANITIZE=address test

test-tsan: deps
	@$(MAKE) --no-print-directory SANITIZE=thread test

bench: deps-bench
	@$(MAKE) --no-print-directory all bench-build
	@bench/run.sh $(B) full

bench-quick: deps-bench
	@$(MAKE) --no-print-directory all bench-build
	@bench/run.sh $(B) quick

# The folders are the layers (tests/layers.sh says which, and `make test` checks that no
# folder uses one above it or beside it): print who uses whom.
deps-graph:
	@$(MAKE) --no-print-directory lib
	@tests/layers.sh --graph $(B)

# ---- the chaos soak -------------------------------------------------------------------
# An owner and clients through every multi-process path while clients are SIGKILLed and
# restarted (tests/soak/soak.c); DURATION in whole seconds, CLIENTS 1..8. SANITIZE= works
# too. The soak cannot multiply (see its header); timeout and the private directory, removed
# whatever happens, are a second fence.
DURATION ?= 60
CLIENTS  ?= 4
$(B)/tests/soak/soak: tests/soak/soak.c $(STATIC)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(ALL_CFLAGS) -MMD -MP $< $(STATIC) $(LINK_FLAGS) $(LDLIBS) -o $@

soak: deps
	@$(MAKE) --no-print-directory $(B)/tests/soak/soak
	@d=$$(mktemp -d /tmp/shoal-soak-XXXXXX) && trap 'rm -rf "$$d"' EXIT && \
	  SHOAL_QUIET=1 timeout -k 10 $$(( $(DURATION) + 900 )) \
	    $(B)/tests/soak/soak --duration $(DURATION) --clients $(CLIENTS) --dir "$$d"

# ---- fuzzing --------------------------------------------------------------------------
# libFuzzer (clang) against a real published store: tests/fuzz/fuzz_owner.c sends each input
# to the owner's socket. FUZZ_SECONDS bounds the run; new inputs land in tests/fuzz/corpus.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_B       := build-fuzz
$(FUZZ_B)/fuzz_owner: tests/fuzz/fuzz_owner.c $(LIB_SRCS) $(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.h))
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZCC  $@")
	$(Q)$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
	    -Iinclude $(PKG_CFLAGS) $< $(LIB_SRCS) $(LDLIBS) -o $@

fuzz: deps
	@command -v $(FUZZ_CC) >/dev/null || { echo "fuzz needs clang: apt-get install -y clang"; exit 1; }
	@$(MAKE) --no-print-directory $(FUZZ_B)/fuzz_owner
	@mkdir -p tests/fuzz/corpus
	$(FUZZ_B)/fuzz_owner -max_total_time=$(FUZZ_SECONDS) -max_len=1024 -timeout=20 \
	    -print_final_stats=1 tests/fuzz/corpus

# ---- install --------------------------------------------------------------------------
MANDIR ?= $(PREFIX)/share/man
LDSO_CONF ?= /etc/ld.so.conf /etc/ld.so.conf.d/*.conf
MAN_PAGES := $(sort $(wildcard man/man1/*.1 man/man3/*.3 man/man7/*.7))
install: all
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin \
	    $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man7
	install -m 755 $(TOOLS) $(DESTDIR)$(PREFIX)/bin/
	@# The pages' header line (.TH) carries the version being installed.
	for p in $(MAN_PAGES); do d=$(DESTDIR)$(MANDIR)/$${p#man/}; \
	  sed '1s/"shoal [0-9][0-9.]*"/"shoal $(VERSION)"/' $$p > $$d && chmod 644 $$d || exit 1; done
	install -m 644 include/shoal.h $(DESTDIR)$(PREFIX)/include/shoal.h
	install -m 644 include/shoal.hpp $(DESTDIR)$(PREFIX)/include/shoal.hpp
	install -m 644 $(STATIC) $(DESTDIR)$(PREFIX)/lib/libshoal.a
	install -m 755 $(SHARED) $(DESTDIR)$(PREFIX)/lib/libshoal.so.$(VERSION)
	ln -sf libshoal.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libshoal.so.$(SOMAJOR)
	ln -sf libshoal.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libshoal.so
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' -e 's|@REQUIRES@|$(PKGS)|g' \
	    shoal.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/shoal.pc
	@# The dynamic linker finds a new libshoal.so.0 only through its cache: refresh it for a
	@# system-wide install as root; otherwise say the one line to run.
	@lib='$(PREFIX)/lib'; \
	if [ -n '$(DESTDIR)' ]; then \
	  echo "installed under DESTDIR=$(DESTDIR): run ldconfig once the files are in place"; \
	elif ! { echo /lib; echo /usr/lib; cat $(LDSO_CONF) 2>/dev/null; } \
	       | sed 's|/*$$||' | grep -qxF "$$lib"; then \
	  echo "$$lib is not searched by the dynamic linker; to run programs linked with -lshoal: export LD_LIBRARY_PATH=$$lib"; \
	elif [ "$$(id -u)" = 0 ]; then \
	  echo "  LDCONFIG"; ldconfig; \
	else \
	  echo "run as root so that programs find libshoal.so.$(SOMAJOR): ldconfig"; \
	fi

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/include/shoal.h $(DESTDIR)$(PREFIX)/include/shoal.hpp \
	      $(DESTDIR)$(PREFIX)/lib/libshoal.* \
	      $(DESTDIR)$(PREFIX)/lib/pkgconfig/shoal.pc $(addprefix $(DESTDIR)$(PREFIX)/bin/,$(notdir $(TOOLS))) \
	      $(addprefix $(DESTDIR)$(MANDIR)/,$(MAN_PAGES:man/%=%))

clean:
	rm -rf build build-asan build-tsan

-include $(shell find $(B) -name '*.d' 2>/dev/null)
