# bench/http.mk — httpd against nginx on the same bytes.
#
#   make bench-http     bench/httpbench (httpd serving GET /api/scoreboard, a
#                       generated BENCH_HTTP_SIZE-byte JSON scoreboard) and
#                       nginx (Debian nginx-light, one worker, the same bytes
#                       as a file), each under `wrk -t2 -c64 -d10s` on
#                       127.0.0.1; prints both req/s, the ratio (goal >= 0.5)
#                       and the load average.
#
# BENCH_HTTP_SIZE, BENCH_HTTP_DURATION (s) and BENCH_HTTP_CONNS change the run.

BENCH_HTTP_SIZE     ?= 4096
BENCH_HTTP_DURATION ?= 10
BENCH_HTTP_CONNS    ?= 64

$(BUILD)/bench/httpbench: bench/httpbench.c $(CORE_OBJS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -MMD -MP -o $@ $< $(CORE_OBJS) $(LDLIBS)

-include $(BUILD)/bench/httpbench.d

.PHONY: bench-http

bench-http: $(BUILD)/bench/httpbench
	@BENCH_HTTP_DURATION=$(BENCH_HTTP_DURATION) BENCH_HTTP_CONNS=$(BENCH_HTTP_CONNS) \
	    ./bench/http-bench.sh $(BUILD)/bench/httpbench $(BENCH_HTTP_SIZE)
