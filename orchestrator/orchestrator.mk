# orchestrator/ — the cyrange binary.  CORE_SRCS is everything but main(),
# so unit tests and fuzzers link the same code.

CORE_SRCS := orchestrator/diag.c orchestrator/jpos.c orchestrator/units.c \
             orchestrator/addr.c orchestrator/scenario.c orchestrator/plan.c \
             orchestrator/virt.c orchestrator/agentlink.c orchestrator/range.c \
             orchestrator/timeline.c orchestrator/journal.c orchestrator/exercise.c orchestrator/control.c \
             agents/proto.c agents/action_table.c \
             $(wildcard scoring/*.c) \
             $(wildcard orchestrator/checks.c orchestrator/store.c orchestrator/httpd.c \
                        orchestrator/websock.c orchestrator/api.c orchestrator/api_users.c \
                        orchestrator/api_range.c orchestrator/api_findings.c \
                        orchestrator/api_reports.c orchestrator/api_inbox.c \
                        orchestrator/api_scores.c orchestrator/api_console.c orchestrator/auth.c \
                        orchestrator/wire.c orchestrator/findings.c orchestrator/scorecard.c \
                        orchestrator/console.c orchestrator/apiclient.c)
CORE_OBJS := $(CORE_SRCS:%.c=$(BUILD)/obj/%.o)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

# The command line: main.c dispatches to cli_*.c (see orchestrator/cli.h).
CLI_SRCS := orchestrator/main.c orchestrator/cli_common.c \
            orchestrator/cli_scenario.c orchestrator/cli_range.c \
            orchestrator/cli_steer.c orchestrator/cli_score.c \
            orchestrator/cli_users.c orchestrator/cli_serve.c \
            orchestrator/cli_api.c
CLI_OBJS := $(CLI_SRCS:%.c=$(BUILD)/obj/%.o)

-include $(CORE_OBJS:.o=.d) $(CLI_OBJS:.o=.d)

$(BUILD)/cyrange: $(CLI_OBJS) $(CORE_OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)
