# tests/unit/auth.mk — cmocka tests of auth (orchestrator/auth.c, in the
# core) and of `cyrange users` (orchestrator/cli_users.c, compiled into the
# test with cli_common.c, since the CLI is not part of the core), against a
# real store in a temporary directory and a real libuv loop.

AUTH_UNIT_TESTS := $(BUILD)/tests/test_auth
AUTH_CLI_OBJS   := $(BUILD)/obj/orchestrator/cli_users.o $(BUILD)/obj/orchestrator/cli_common.o \
                   $(BUILD)/obj/orchestrator/cli_api.o

$(AUTH_UNIT_TESTS): $(BUILD)/tests/test_%: tests/unit/test_%.c $(AUTH_CLI_OBJS) $(CORE_OBJS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -DCYRANGE_SRCDIR='"$(CURDIR)"' -MMD -MP \
	    -o $@ $< $(AUTH_CLI_OBJS) $(CORE_OBJS) $(LDLIBS) -lcmocka

UNIT_TESTS += $(AUTH_UNIT_TESTS)

-include $(AUTH_UNIT_TESTS:=.d) $(BUILD)/obj/orchestrator/cli_users.d
