# bench/capture.mk — the capture module against tcpdump -w, same traffic.
#
#   make bench-capture   60-byte frames replayed into a cybbench0 bridge
#                        through a veth pair by bench/pktgen (1,000 flows);
#                        capbench (the capture module with its flow table and
#                        pcap files) and then tcpdump -w capture the same
#                        generator run at 500 kpps and at max rate; prints
#                        pps, captured, dropped, CPU ns/packet and the ratio.
#                        Goals: 0 drops at >= 500 kpps, CPU per packet
#                        <= 1.3 x tcpdump.  Needs root.
#
# CAPTURE_BENCH_COUNT (frames per run, default 5,000,000) and
# CAPTURE_BENCH_RATES (kpps, 0 = max; default "500 0") change the runs; the
# pcap files go to $(BUILD)/bench/capture (the repository's disk).

CAPTURE_BENCH_COUNT ?= 5000000
CAPTURE_BENCH_RATES ?= 500 0
CAPBENCH_OBJS := $(addprefix $(BUILD)/obj/,scoring/capture.o scoring/flows.o \
                   scoring/community_id.o orchestrator/addr.o)

$(BUILD)/bench/capbench: bench/capbench.c $(CAPBENCH_OBJS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -MMD -MP -o $@ $< $(CAPBENCH_OBJS) $(LDLIBS)

$(BUILD)/bench/pktgen: bench/pktgen.c
	@mkdir -p $(@D)
	$(CC) $(CSTD) $(WARN) $(OPT) $(LDFLAGS) -MMD -MP -o $@ $<

-include $(BUILD)/bench/capbench.d $(BUILD)/bench/pktgen.d

.PHONY: bench-capture

bench-capture: $(BUILD)/bench/capbench $(BUILD)/bench/pktgen
	@BUILD=$(BUILD) COUNT=$(CAPTURE_BENCH_COUNT) RATES="$(CAPTURE_BENCH_RATES)" \
	    ./bench/capture-bench.sh
