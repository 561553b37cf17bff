# tests/unit/unit.mk — cmocka unit tests of the scenario core (jpos, units,
# addr, scenario, plan).  Each binary is its test file linked with
# $(CORE_OBJS) (orchestrator/orchestrator.mk); the tests run from the
# repository root (they chdir to CYRANGE_SRCDIR, compiled in) because they
# read shipped scenarios and golden case files.

CORE_UNIT_NAMES := jpos units addr scenario plan range timeline community_id findings
CORE_UNIT_TESTS := $(CORE_UNIT_NAMES:%=$(BUILD)/tests/test_%)

$(CORE_UNIT_TESTS): $(BUILD)/tests/test_%: tests/unit/test_%.c $(CORE_OBJS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -DCYRANGE_SRCDIR='"$(CURDIR)"' -MMD -MP \
	    -o $@ $< $(CORE_OBJS) $(LDLIBS) -lcmocka

UNIT_TESTS += $(CORE_UNIT_TESTS)

-include $(CORE_UNIT_TESTS:=.d)
