# bench/match.mk — score_team() matching speed (scoring/score.c).
#
#   make bench-match     10,000 ground-truth steps and 100,000 findings
#                        (seeded), score_team timed against json_loads of
#                        the same input text in the same run; goal < 1 s
#
# BENCH_MATCH_STEPS, BENCH_MATCH_FINDINGS, BENCH_MATCH_RUNS and
# BENCH_MATCH_SEED change the run.

BENCH_MATCH_BIN      := $(BUILD)/bench/match-bench
BENCH_MATCH_STEPS    ?= 10000
BENCH_MATCH_FINDINGS ?= 100000
BENCH_MATCH_RUNS     ?= 5
BENCH_MATCH_SEED     ?= 1

$(BENCH_MATCH_BIN): bench/match-bench.c $(CORE_OBJS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -MMD -MP -o $@ $< $(CORE_OBJS) $(LDLIBS)

-include $(BENCH_MATCH_BIN).d

.PHONY: bench-match

bench-match: $(BENCH_MATCH_BIN)
	$(BENCH_MATCH_BIN) --steps $(BENCH_MATCH_STEPS) --findings $(BENCH_MATCH_FINDINGS) \
	    --runs $(BENCH_MATCH_RUNS) --seed $(BENCH_MATCH_SEED)
