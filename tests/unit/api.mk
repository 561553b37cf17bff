# tests/unit/api.mk — cmocka tests of the API (orchestrator/api*.c): a real
# httpd on 127.0.0.1, a real store in a temporary directory, real auth, the
# plan of scenarios/targeted-mail.json and a raw-socket client in a second
# thread.  Also checks that web/openapi.json lists exactly api_routes().

API_UNIT_TESTS := $(BUILD)/tests/test_api

# The command line's mapping of its commands onto the routes (cli_api.c)
# is tested here too, against the same server.
$(API_UNIT_TESTS): $(BUILD)/tests/test_%: tests/unit/test_%.c $(CORE_OBJS) \
                   $(BUILD)/obj/orchestrator/cli_api.o
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -DCYRANGE_SRCDIR='"$(CURDIR)"' -MMD -MP \
	    -o $@ $< $(CORE_OBJS) $(BUILD)/obj/orchestrator/cli_api.o $(LDLIBS) -lcmocka -lpthread

UNIT_TESTS += $(API_UNIT_TESTS)

-include $(API_UNIT_TESTS:=.d)
