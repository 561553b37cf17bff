# tests/fuzz/fuzz.mk — libFuzzer on the scenario loader and the plan.
#
#   make fuzz                 build, seed the corpus, fuzz each harness for
#                             FUZZ_TIME s (scenario loader, then HTTP)
#   make fuzz FUZZ_TIME=600   longer
#   make fuzz-build           only build $(BUILD)/fuzz/fuzz_scenario
#
# The core sources are compiled again with clang, coverage instrumentation
# and ASan + UBSan (any UB aborts), into $(BUILD)/fuzz/.  The corpus lives in
# $(BUILD)/fuzz/corpus and grows across runs; it is seeded from the shipped
# scenarios and the golden cases.  Crashes are written to
# $(BUILD)/fuzz/crash-*; reproduce one with
#   $(BUILD)/fuzz/fuzz_scenario $(BUILD)/fuzz/crash-...

FUZZ_CC    ?= clang
FUZZ_TIME  ?= 60
FUZZ_JOBS  ?= 1
FUZZ_ARGS  ?=
FUZZ_DIR   := $(BUILD)/fuzz
FUZZ_SAN   := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
              -fno-omit-frame-pointer
# The project's flags without -Werror (clang warns differently from gcc)
# and without its optimisation level.
FUZZ_CFLAGS = $(filter-out -Werror -O% -g,$(CFLAGS)) -Wno-unknown-warning-option \
              -O1 -g $(FUZZ_SAN)
FUZZ_OBJS  := $(CORE_SRCS:%.c=$(FUZZ_DIR)/obj/%.o)
FUZZ_SEEDS := $(wildcard scenarios/*.json tests/golden/cases/*.json)

$(FUZZ_DIR)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

$(FUZZ_DIR)/fuzz_scenario: tests/fuzz/fuzz_scenario.c $(FUZZ_OBJS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -MMD -MP -o $@ $< $(FUZZ_OBJS) \
	    $(LDFLAGS) $(LDLIBS)

-include $(FUZZ_OBJS:.o=.d) $(FUZZ_DIR)/fuzz_scenario.d

.PHONY: fuzz fuzz-build fuzz-scenario

fuzz-build: $(FUZZ_DIR)/fuzz_scenario

# `make fuzz` runs every harness in turn, each for FUZZ_TIME seconds: the
# scenario loader here, the HTTP request path (tests/fuzz/http.mk).
fuzz: fuzz-scenario fuzz-http

fuzz-scenario: $(FUZZ_DIR)/fuzz_scenario
	@mkdir -p $(FUZZ_DIR)/corpus
	@cp $(FUZZ_SEEDS) $(FUZZ_DIR)/corpus/
	cd $(FUZZ_DIR) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	    ./fuzz_scenario -max_total_time=$(FUZZ_TIME) -timeout=10 -rss_limit_mb=2048 \
	    -max_len=65536 -dict=$(CURDIR)/tests/fuzz/scenario.dict \
	    $(if $(filter-out 1,$(FUZZ_JOBS)),-jobs=$(FUZZ_JOBS) -workers=$(FUZZ_JOBS)) \
	    -print_final_stats=1 \
	    $(FUZZ_ARGS) corpus
