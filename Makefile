# asyncc build: the translator (build/bin/asyncc), the runtime library
# (build/lib/libasyncc.a), tests, benchmarks, demo and install.
# 'make help' lists the targets; README.md explains them.
#
# The build tree mirrors the installed layout, so the translator finds its
# runtime relative to its own executable in both:
#   $(BUILD)/bin/asyncc   $(BUILD)/lib/libasyncc.a   $(BUILD)/include/asyncc.h
#
# Dependencies are checked before anything is compiled (scripts/deps.sh); a
# missing one stops the build with one line naming the command that installs it.

VERSION := 0.1.0

# ---------------------------------------------------------------------------
# Variables you may set on the command line
# ---------------------------------------------------------------------------

CC      = cc
AR      = ar
CFLAGS  = -std=gnu11 -Wall -Wextra -Werror -O2 -g
LDFLAGS =
LLVM    = /usr/lib/llvm-14
BUILD   = build
PREFIX  = /usr/local
DESTDIR =
V       =

# The layout the translator expects relative to its own executable; change
# PREFIX (and DESTDIR for staged installs), not these.
BINDIR       = $(PREFIX)/bin
LIBDIR       = $(PREFIX)/lib
INCLUDEDIR   = $(PREFIX)/include
PKGCONFIGDIR = $(LIBDIR)/pkgconfig

# ---------------------------------------------------------------------------
# Flags
# ---------------------------------------------------------------------------

TS_SRC    = node_modules/tree-sitter-c/src
TS_PARSER = $(TS_SRC)/parser.c

DEPFLAGS          = -MMD -MP
COMPILER_CPPFLAGS = -I$(LLVM)/include -I$(TS_SRC) \
                    -DASYNCC_VERSION=\"$(VERSION)\"
COMPILER_LDLIBS   = -ltree-sitter -L$(LLVM)/lib -lclang -Wl,-rpath,$(LLVM)/lib
RUNTIME_CPPFLAGS  = -pthread -Iruntime/include -DASYNCC_RUNTIME_INTERNAL
# Third-party generated parser: no -Wall/-Werror, not our warnings to fix.
TS_CFLAGS         = -O2
CHECK_CFLAGS      = $(shell pkg-config --cflags check)
CHECK_LIBS        = $(shell pkg-config --libs check)

# ---------------------------------------------------------------------------
# What gets built (wildcards: files added later are picked up; none is fine)
# ---------------------------------------------------------------------------

ASYNCC  = $(BUILD)/bin/asyncc
LIB     = $(BUILD)/lib/libasyncc.a
HEADER  = $(BUILD)/include/asyncc.h
TS_OBJ  = $(BUILD)/obj/ts/parser.o

GRAMMAR_SCM = $(wildcard grammar/*.scm)

COMPILER_SRCS     := $(wildcard compiler/*.c)
COMPILER_OBJS     := $(COMPILER_SRCS:compiler/%.c=$(BUILD)/obj/compiler/%.o)
COMPILER_LIB_OBJS := $(filter-out $(BUILD)/obj/compiler/main.o,$(COMPILER_OBJS))

RUNTIME_SRCS := $(wildcard runtime/src/*.c)
RUNTIME_OBJS := $(RUNTIME_SRCS:runtime/src/%.c=$(BUILD)/obj/runtime/%.o)

UNIT_RT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/runtime_*.c))
UNIT_CC_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/compiler_*.c))
UNIT_BINS    := $(UNIT_RT_BINS) $(UNIT_CC_BINS)
TOOL_BINS    := $(addprefix $(BUILD)/tests/,$(basename $(notdir \
                  $(wildcard tests/tools/*.c tests/gen/*.c))))

# Test runner scripts, in the order 'make check' runs them.
RUNNER_NAMES := syntax golden diff random errors robust multifile diagnostics programs install cli asan
RUNNERS      := $(wildcard $(RUNNER_NAMES:%=tests/run-%.sh))
BLESS_RUNNERS := $(wildcard tests/run-golden.sh tests/run-errors.sh tests/run-diagnostics.sh tests/run-programs.sh)

# The environment every runner and the benchmarks get.
RUN_ENV = ASYNCC=$(abspath $(ASYNCC)) BUILD=$(abspath $(BUILD)) CC='$(CC)'

DEPS_ENV = CC='$(CC)' LLVM='$(LLVM)'

ifeq ($(V),)
Q    = @
SAY  = @printf '  %-5s %s\n'
else
Q    =
SAY  = @true
endif

# ---------------------------------------------------------------------------
# Top-level targets
# ---------------------------------------------------------------------------

.PHONY: all tools tests check check-unit bless bench demo deps install \
        uninstall clean distclean help need-build need-test need-runners \
        $(RUNNER_NAMES:%=check-%)
.DELETE_ON_ERROR:
.SUFFIXES:

all: $(ASYNCC) $(LIB) $(HEADER)

# Helper programs the runners use (tests/tools, tests/gen).
tools: all $(TOOL_BINS)

# Everything 'make check' runs, built but not run.
tests: tools $(UNIT_BINS)

# The test targets build with -k, so that one test program that does not
# compile counts as one failure instead of stopping every other test; the
# build runs on all cores unless make was given -j already.
JOBS     = $(shell nproc 2>/dev/null || echo 1)
TESTS_J  = $(if $(findstring jobserver,$(MAKEFLAGS)),,-j$(JOBS))
NOT_BUILT = echo "asyncc: some test programs did not build; they count as failed"

check: need-build need-test $(if $(RUNNERS),need-runners)
	@$(MAKE) --no-print-directory -k $(TESTS_J) tests || $(NOT_BUILT)
	@$(RUN_ENV) bash scripts/run-checks.sh $(UNIT_BINS) $(RUNNERS)

check-unit: need-build need-test
	@$(MAKE) --no-print-directory -k $(TESTS_J) tests || $(NOT_BUILT)
	@$(RUN_ENV) bash scripts/run-checks.sh $(UNIT_BINS)

# check-syntax, check-golden, ...: one runner.
$(RUNNER_NAMES:%=check-%): check-%: tools need-runners
	@test -f tests/run-$*.sh || { echo "asyncc: tests/run-$*.sh does not exist" >&2; exit 1; }
	@$(RUN_ENV) bash scripts/run-checks.sh tests/run-$*.sh

# Regenerates the expected files of the golden and error tests; review the
# result with 'git diff'.
bless: tools need-runners
	@test -n "$(BLESS_RUNNERS)" || { echo "asyncc: no tests/run-golden.sh or tests/run-errors.sh to bless" >&2; exit 1; }
	@BLESS=1 $(RUN_ENV) bash scripts/run-checks.sh $(BLESS_RUNNERS)

bench: all
	@test -f bench/run.sh || { echo "asyncc: bench/run.sh does not exist" >&2; exit 1; }
	@$(RUN_ENV) bash bench/run.sh

# Installs what is missing (Debian packages, then 'npm ci --ignore-scripts').
deps:
	@$(DEPS_ENV) bash scripts/deps.sh install

# Set-up, build, then translate, build and run samples/hello.ac both ways.
demo:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory all
	@test -f samples/hello.ac || { echo "asyncc: samples/hello.ac does not exist" >&2; exit 1; }
	@mkdir -p $(BUILD)/demo
	@echo '== translate: the async functions become state machines'
	$(ASYNCC) samples/hello.ac -o $(BUILD)/demo/hello.c
	@f=$(BUILD)/demo/hello.c; \
	 n=$$(wc -l <$$f); \
	 l=$$(grep -n -m1 -E '__frame *\{|__poll *\(' $$f | cut -d: -f1); l=$${l:-1}; \
	 e=$$((l + 29)); [ $$e -le $$n ] || e=$$n; \
	 echo "-- $$f, lines $$l-$$e of $$n:"; \
	 sed -n "$$l,$$e p" $$f; echo '--'
	@echo '== build with the runtime and run'
	$(ASYNCC) cc samples/hello.ac -o $(BUILD)/demo/hello
	$(BUILD)/demo/hello
	@echo '== the sync reading: the same file as an ordinary sequential C program'
	$(CC) -x c -Iruntime/include samples/hello.ac -o $(BUILD)/demo/hello_sync
	$(BUILD)/demo/hello_sync

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) \
	        $(DESTDIR)$(PKGCONFIGDIR)
	install -m 755 $(ASYNCC) $(DESTDIR)$(BINDIR)/asyncc
	install -m 644 $(LIB) $(DESTDIR)$(LIBDIR)/libasyncc.a
	install -m 644 runtime/include/asyncc.h $(DESTDIR)$(INCLUDEDIR)/asyncc.h
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' \
	    -e 's|@LIBDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))|g' \
	    -e 's|@INCLUDEDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))|g' \
	    asyncc.pc.in >$(DESTDIR)$(PKGCONFIGDIR)/asyncc.pc
	chmod 644 $(DESTDIR)$(PKGCONFIGDIR)/asyncc.pc

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/asyncc $(DESTDIR)$(LIBDIR)/libasyncc.a \
	      $(DESTDIR)$(INCLUDEDIR)/asyncc.h $(DESTDIR)$(PKGCONFIGDIR)/asyncc.pc

clean:
	rm -rf $(BUILD)

# Also removes the npm-installed grammar; 'make deps' brings it back.
distclean: clean
	rm -rf node_modules

help:
	@echo 'make              build $(ASYNCC) and $(LIB)'
	@echo 'make deps         install missing dependencies (apt-get, npm ci --ignore-scripts)'
	@echo 'make demo         deps + build + translate, build and run samples/hello.ac'
	@echo 'make check        build and run all tests; ends with "N passed, N failed"'
	@echo 'make check-unit   only the Check unit tests'
	@echo 'make check-NAME   only tests/run-NAME.sh ($(RUNNER_NAMES))'
	@echo 'make tests        build the test programs without running them'
	@echo 'make bless        regenerate expected files (golden, errors)'
	@echo 'make bench        run bench/run.sh'
	@echo 'make install      PREFIX=$(PREFIX) DESTDIR=$(DESTDIR)'
	@echo 'make uninstall    remove what install put there'
	@echo 'make clean        remove $(BUILD)/ ; distclean also removes node_modules/'
	@echo 'variables: CC CFLAGS LDFLAGS LLVM=$(LLVM) BUILD=$(BUILD) PREFIX DESTDIR V=1'

# ---------------------------------------------------------------------------
# Dependency checks: order-only prerequisites of every compile, so they run
# once, before any compiler does, even under -j.
# ---------------------------------------------------------------------------

need-build:
	@$(DEPS_ENV) bash scripts/deps.sh check build

need-test:
	@$(DEPS_ENV) bash scripts/deps.sh check test

need-runners:
	@$(DEPS_ENV) bash scripts/deps.sh check runners

# ---------------------------------------------------------------------------
# Translator
# ---------------------------------------------------------------------------

$(ASYNCC): $(COMPILER_OBJS) $(TS_OBJ) | need-build
	$(SAY) LINK $@
	@mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) $(COMPILER_OBJS) $(TS_OBJ) $(COMPILER_LDLIBS) -o $@

$(BUILD)/obj/compiler/%.o: compiler/%.c | need-build
	$(SAY) CC $@
	@mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) $(DEPFLAGS) $(COMPILER_CPPFLAGS) -c $< -o $@

# $(wildcard) keeps a missing parser.c from being an error of its own: the
# order-only need-build reports it first, as a missing dependency. Unpacked
# files may keep the package's own timestamps, so npm's record of the install,
# rewritten by each 'npm ci', is what reliably marks a new grammar.
$(TS_OBJ): $(wildcard $(TS_PARSER) node_modules/.package-lock.json) | need-build
	$(SAY) CC $@
	@mkdir -p $(@D)
	$(Q)$(CC) $(TS_CFLAGS) -I$(TS_SRC) -c $(TS_PARSER) -o $@

# parse.c embeds grammar/*.scm with the assembler's .incbin (paths relative to
# the top directory, where make runs), which -MMD does not record.
$(BUILD)/obj/compiler/parse.o: $(GRAMMAR_SCM)

# ---------------------------------------------------------------------------
# Runtime
# ---------------------------------------------------------------------------

$(LIB): $(RUNTIME_OBJS) | need-build
	$(SAY) AR $@
	@mkdir -p $(@D)
	@rm -f $@
	$(Q)$(AR) rcs $@ $(RUNTIME_OBJS)

$(BUILD)/obj/runtime/%.o: runtime/src/%.c | need-build
	$(SAY) CC $@
	@mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) $(DEPFLAGS) $(RUNTIME_CPPFLAGS) -c $< -o $@

$(HEADER): runtime/include/asyncc.h
	@mkdir -p $(@D)
	$(Q)cp $< $@

# ---------------------------------------------------------------------------
# Test programs (one source file each, compiled and linked in one step)
# ---------------------------------------------------------------------------

$(BUILD)/tests/runtime_%: tests/unit/runtime_%.c $(LIB) | need-build need-test $(HEADER)
	$(SAY) TEST $@
	@mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) $(DEPFLAGS) -pthread -Iruntime/include -Iruntime/src $(CHECK_CFLAGS) \
	    $< $(LIB) $(CHECK_LIBS) -pthread -o $@

$(BUILD)/tests/compiler_%: tests/unit/compiler_%.c $(COMPILER_LIB_OBJS) $(TS_OBJ) | need-build need-test $(HEADER) $(LIB)
	$(SAY) TEST $@
	@mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) $(DEPFLAGS) $(COMPILER_CPPFLAGS) -Icompiler $(CHECK_CFLAGS) \
	    $< $(COMPILER_LIB_OBJS) $(TS_OBJ) $(COMPILER_LDLIBS) $(CHECK_LIBS) -o $@

$(BUILD)/tests/%: tests/tools/%.c $(TS_OBJ) | need-build
	$(SAY) TOOL $@
	@mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) $(DEPFLAGS) -I$(TS_SRC) $< $(TS_OBJ) -ltree-sitter -o $@

$(BUILD)/tests/%: tests/gen/%.c $(TS_OBJ) | need-build
	$(SAY) TOOL $@
	@mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) $(DEPFLAGS) -I$(TS_SRC) $< $(TS_OBJ) -ltree-sitter -o $@

# ---------------------------------------------------------------------------
# ThreadSanitizer: 'make check-tsan' builds the runtime and its unit tests
# with clang -fsanitize=thread -O1 -g into $(TSAN_BUILD) (the rules above,
# run again with CC, CFLAGS and BUILD set for it) and runs those tests, then
# tests/run-tsan.sh: the samples and tests/programs translated and built the
# same way against that runtime. A data race ends the test process with
# TSAN's report and counts as a failure; allocations too large to satisfy
# return NULL, as the OOM tests expect.
# ---------------------------------------------------------------------------

TSAN_CC      = clang
TSAN_CFLAGS  = $(CFLAGS) -fsanitize=thread -O1 -g
TSAN_BUILD   = $(BUILD)/tsan
TSAN_BINS    = $(patsubst tests/unit/%.c,$(TSAN_BUILD)/tests/%,$(wildcard tests/unit/runtime_*.c))
TSAN_OPTIONS = halt_on_error=1 exitcode=66 second_deadlock_stack=1 allocator_may_return_null=1

.PHONY: check-tsan
check-tsan: need-build need-test
	@$(MAKE) --no-print-directory -k $(TESTS_J) CC='$(TSAN_CC)' CFLAGS='$(TSAN_CFLAGS)' \
	    BUILD='$(TSAN_BUILD)' $(TSAN_BINS) || $(NOT_BUILT)
	@TSAN_OPTIONS='$(TSAN_OPTIONS)' BUILD='$(abspath $(TSAN_BUILD))' \
	    ASYNCC='$(abspath $(BUILD))/bin/asyncc' TSAN_LIB='$(abspath $(TSAN_BUILD))/lib/libasyncc.a' \
	    bash scripts/run-checks.sh $(TSAN_BINS) tests/run-tsan.sh

# Header dependencies recorded by -MMD -MP.
-include $(wildcard $(BUILD)/obj/*/*.d $(BUILD)/tests/*.d)
