# cyrange — top-level build.  `make help` lists the targets.
#
# Layout: orchestrator/ (the cyrange binary), agents/ (in-range agent and
# guest images), scoring/ (pure scoring logic), tests/ (unit, golden,
# integration, e2e), scenarios/ (shipped scenarios, format docs, schema).

CC      ?= cc
BUILD   ?= build
PKGS    := libvirt libuv jansson libpcap sqlite3 nettle libsodium
CSTD    := -std=c11 -D_GNU_SOURCE
# Truncated diagnostics are acceptable (buffers are bounded on purpose), so
# -Wformat-truncation, which cannot tell, is off.
WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wno-format-truncation
OPT     ?= -O2 -g
CFLAGS  += $(CSTD) $(WARN) $(OPT) $(shell pkg-config --cflags $(PKGS)) \
           -Iorchestrator -Iagents -Iscoring
# Debian's http-parser ships no pkg-config file.
LDLIBS  += $(shell pkg-config --libs $(PKGS)) -lhttp_parser -lm

.PHONY: all deps check unit golden integration asan valgrind lint fuzz bench \
        bench-range bench-timeline images demo clean help test

all: $(BUILD)/cyrange

help:
	@echo "make            build build/cyrange (and the agent)"
	@echo "make deps       install Debian packages, start libvirtd (root, idempotent)"
	@echo "make check      all tests: unit, golden, integration on real guests"
	@echo "make asan       unit + golden tests under ASan/UBSan"
	@echo "make valgrind   unit + golden tests under valgrind"
	@echo "make lint       cppcheck + clang-format check"
	@echo "make fuzz       libFuzzer on the scenario parser (bounded time)"
	@echo "make bench      benchmarks with figures and ratios"
	@echo "make images     guest images (kernel + role initramfs)"
	@echo "make demo       the main job: a real multi-team exercise"
	@echo "make clean      remove build/"

deps:
	./scripts/deps.sh

include orchestrator/orchestrator.mk
include agents/agent.mk
include agents/images/images.mk
include tests/tests.mk
include web/web.mk

clean:
	rm -rf $(BUILD)

# Benchmarks print their figures beside a reference run of the same
# invocation; they are never timed tests.
bench: bench-validate bench-range bench-timeline bench-match bench-store bench-capture \
       bench-http bench-api

bench-range: all images
	./bench/range-bench.sh

bench-timeline: all images
	./bench/timeline-bench.sh

# cppcheck does not read system headers: jansson's iteration macros are
# spelled out for it.
lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability \
	    --suppress=missingIncludeSystem --inline-suppr -D__GNUC__ \
	    --include=tests/lint/cppcheck-macros.h \
	    -Iorchestrator -Iagents -Iscoring orchestrator agents scoring
	for f in scripts/*.sh tests/run-tests.sh tests/integration/*.sh \
	         bench/*.sh .ci/run; do sh -n "$$f" || exit 1; done
	@echo "lint: OK"

# The main job: a real multi-team exercise (see README.md).
demo: deps
	$(MAKE) --no-print-directory all images web-deps
	./scripts/demo.sh
