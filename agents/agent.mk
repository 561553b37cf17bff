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
#   $(BUILD)/tests/test_actions   cmocka: attacker actions (agent_action,
#                                 agent_act_net) in-process, with sanitizers

# The host-side actions (agent_act_host.c, with agents/act_host.mk naming
# its objects and libraries) are written separately: the dispatcher's table
# names them only when the file is there.
ACT_HOST_SRC := $(wildcard agents/agent_act_host.c)
ACT_HOST_DEF := $(if $(ACT_HOST_SRC),-DHAVE_ACT_HOST)
ifneq ($(ACT_HOST_SRC),)
-include agents/act_host.mk
ACT_HOST_NAMES := $(or $(ACT_HOST_NAMES),agent_act_host)
endif

AGENT_NAMES := agent agent_sys agent_net agent_job agent_probe agent_config \
               proto action_table agent_action agent_act_net \
               $(ACT_HOST_NAMES)
AGENT_OBJS  := $(AGENT_NAMES:%=$(BUILD)/obj/agents/static/%.o)
PROTO_OBJ   := $(BUILD)/obj/agents/proto.o

# The agent is linked statically, which sanitizers do not support: build it
# from its own objects with sanitizer flags filtered out.
AGENT_NOSAN  = -fsanitize=% -fno-sanitize=% -fsanitize-% -fno-sanitize-%
AGENT_CFLAGS = $(filter-out $(AGENT_NOSAN),$(CFLAGS)) -Iagents $(ACT_HOST_DEF)

# The table in agent_action.c changes when agent_act_host.c appears.
$(BUILD)/obj/agents/static/agent_action.o: $(ACT_HOST_SRC)
JANSSON_A   ?= $(shell $(CC) -print-file-name=libjansson.a)

$(BUILD)/cyrange-agent: $(AGENT_OBJS)
	@mkdir -p $(@D)
	$(CC) -static -o $@ $(AGENT_OBJS) $(JANSSON_A) $(ACT_HOST_LIBS) -lm

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

# The action code under test is built with the normal CFLAGS (sanitizers
# apply); the test also starts the real agent binary for the dispatcher.
ACT_TEST_OBJS := $(patsubst agents/%.c,$(BUILD)/obj/agents/%.o, \
                   agents/agent_action.c agents/agent_act_net.c $(ACT_HOST_SRC))
ACT_TABLE_OBJ := $(BUILD)/obj/agents/action_table.o

$(ACT_TEST_OBJS) $(ACT_TABLE_OBJ): $(BUILD)/obj/agents/%.o: agents/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(ACT_HOST_DEF) -MMD -MP -c -o $@ $<

$(BUILD)/obj/agents/agent_action.o: $(ACT_HOST_SRC)

$(BUILD)/tests/test_actions: tests/unit/test_actions.c $(ACT_TEST_OBJS) \
                             $(ACT_TABLE_OBJ) $(PROTO_OBJ) $(BUILD)/cyrange-agent
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -MMD -MP \
	    -DCYRANGE_AGENT_BIN='"$(abspath $(BUILD))/cyrange-agent"' \
	    -o $@ $< $(ACT_TEST_OBJS) $(ACT_TABLE_OBJ) $(PROTO_OBJ) \
	    $(ACT_HOST_LIBS) $(AGENT_TEST_LIBS)

UNIT_TESTS += $(BUILD)/tests/test_proto $(BUILD)/tests/test_agent \
              $(BUILD)/tests/test_actions

all: $(BUILD)/cyrange-agent

.PHONY: agent agent-test
agent: $(BUILD)/cyrange-agent
agent-test: $(BUILD)/tests/test_proto $(BUILD)/tests/test_agent \
            $(BUILD)/tests/test_actions
	$(BUILD)/tests/test_proto
	$(BUILD)/tests/test_agent
	$(BUILD)/tests/test_actions

-include $(AGENT_OBJS:.o=.d) $(PROTO_OBJ:.o=.d) $(ACT_TEST_OBJS:.o=.d) \
         $(BUILD)/tests/test_proto.d $(BUILD)/tests/test_agent.d \
         $(BUILD)/tests/test_actions.d
