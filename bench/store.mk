# bench/store.mk — the store's group commit against the naive reference.
#
#   make bench-store     store_report_save acknowledged when durable: writes/s
#                        and p50/p99 ack latency at 500/s offered (open loop)
#                        and at max rate, group commit vs one transaction +
#                        fsync per write on the loop, in the same run
#
# STORE_BENCH_ARGS passes options (--rate, --seconds, --count, --inflight);
# the databases go to $(BUILD)/bench/store (the repository's disk, not tmpfs).

STORE_BENCH_ARGS ?=

$(BUILD)/bench/store-bench: bench/store-bench.c $(CORE_OBJS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -MMD -MP -o $@ $< $(CORE_OBJS) $(LDLIBS)

-include $(BUILD)/bench/store-bench.d

.PHONY: bench-store

bench-store: $(BUILD)/bench/store-bench
	@$(BUILD)/bench/store-bench --dir $(BUILD)/bench/store $(STORE_BENCH_ARGS)
