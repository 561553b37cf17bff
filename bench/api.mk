# bench/api.mk — the API under load, and its durability under SIGKILL.
#
#   make bench-api      a real `cyrange serve` of one team
#                       (tests/integration/score.json, 3 guests):
#                       - GET /api/scoreboard as the instructor under
#                         `wrk -t2 -c64`, beside nginx serving a file of the
#                         same bytes (goal >= 0.5x);
#                       - POST /api/teams/1/reports at 500/s for 20 s
#                         (bench/apiload, open loop), p50/p99 (goal p99 <
#                         50 ms), beside the same load on nginx `return 201`;
#                       - the same load again, serve SIGKILLed after 5 s and
#                         restarted: every acknowledged report is stored.
#
# BENCH_API_RATE, BENCH_API_DURATION (s), BENCH_API_CONNS change the POST
# run; BENCH_HTTP_DURATION / BENCH_HTTP_CONNS the wrk run.

BENCH_API_RATE     ?= 500
BENCH_API_DURATION ?= 20
BENCH_API_CONNS    ?= 32

$(BUILD)/bench/apiload: bench/apiload.c
	@mkdir -p $(@D)
	$(CC) $(CSTD) $(WARN) $(OPT) $(LDFLAGS) -MMD -MP -o $@ $<

-include $(BUILD)/bench/apiload.d

.PHONY: bench-api

bench-api: all images $(BUILD)/bench/apiload
	@BENCH_API_RATE=$(BENCH_API_RATE) BENCH_API_DURATION=$(BENCH_API_DURATION) \
	    BENCH_API_CONNS=$(BENCH_API_CONNS) BENCH_HTTP_DURATION=$(BENCH_HTTP_DURATION) \
	    BENCH_HTTP_CONNS=$(BENCH_HTTP_CONNS) \
	    ./bench/api-bench.sh $(BUILD)/cyrange $(BUILD)/bench/apiload
