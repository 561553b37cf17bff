# agents/agent.mk — the in-range agent (static) and the shared proto module.
# Included by the top Makefile, which defines CC, BUILD, CFLAGS, CSTD, WARN,
# OPT.
#
#   $(BUILD)/cyrange-agent        static agent binary (glibc + jansson)
#   $(BUILD)/obj/agents/proto.o   proto for the orchestrator and tests
#                                 (built with the normal CFLAGS, so sanitizer
#                                 flags apply); link it as $(PROTO_OBJ)
#   $(BUILD)/tests/test_proto     cmocka: framing, builders, parsers
#   $(BUILD)/tests/test_agent     cmocka: runs the real agent binary

AGENT_NAMES := agent agent_sys agent_net agent_job agent_probe agent_config \
               proto
AGENT_OBJS  := $(AGENT_NAMES:%=$(BUILD)/obj/agents/static/%.o)
PROTO_OBJ   := $(BUILD)/obj/agents/proto.o

# The agent is linked statically, which sanitizers do not support: build it
# from its own objects with sanitizer flags filtered out.
AGENT_NOSAN  = -fsanitize=% -fno-sanitize=% -fsanitize-% -fno-sanitize-%
AGENT_CFLAGS = $(filter-out $(AGENT_NOSAN),$(CFLAGS)) -Iagents
JANSSON_A   ?= $(shell $(CC) -print-file-name=libjansson.a)

$(BUILD)/cyrange-agent: $(AGENT_OBJS)
	@mkdir -p $(@D)
	$(CC) -static -o $@ $(AGENT_OBJS) $(JANSSON_A) -lm

$(BUILD)/obj/agents/static/%.o: agents/%.c
	@mkdir -p $(@D)
	$(CC) $(AGENT_CFLAGS) -MMD -MP -c -o $@ $<

$(PROTO_OBJ): agents/proto.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

AGENT_TEST_LIBS  = $(LDFLAGS) -lcmocka -ljansson -lm

$(BUILD)/tests/test_proto: tests/unit/test_proto.c $(PROTO_OBJ)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -MMD -MP -o $@ $< $(PROTO_OBJ) $(AGENT_TEST_LIBS)

# The test starts the real binary; its path is compiled in (env
# CYRANGE_AGENT_BIN overrides).
$(BUILD)/tests/test_agent: tests/unit/test_agent.c $(PROTO_OBJ) \
                           $(BUILD)/cyrange-agent
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -MMD -MP \
	    -DCYRANGE_AGENT_BIN='"$(abspath $(BUILD))/cyrange-agent"' \
	    -o $@ $< $(PROTO_OBJ) $(AGENT_TEST_LIBS)

UNIT_TESTS += $(BUILD)/tests/test_proto $(BUILD)/tests/test_agent

all: $(BUILD)/cyrange-agent

.PHONY: agent agent-test
agent: $(BUILD)/cyrange-agent
agent-test: $(BUILD)/tests/test_proto $(BUILD)/tests/test_agent
	$(BUILD)/tests/test_proto
	$(BUILD)/tests/test_agent

-include $(AGENT_OBJS:.o=.d) $(PROTO_OBJ:.o=.d) \
         $(BUILD)/tests/test_proto.d $(BUILD)/tests/test_agent.d
