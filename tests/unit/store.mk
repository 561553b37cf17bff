# tests/unit/store.mk — cmocka unit tests of the store (orchestrator/store.c)
# against real SQLite files in a temporary directory.

STORE_UNIT_TESTS := $(BUILD)/tests/test_store

$(STORE_UNIT_TESTS): $(BUILD)/tests/test_%: tests/unit/test_%.c $(CORE_OBJS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -DCYRANGE_SRCDIR='"$(CURDIR)"' -MMD -MP \
	    -o $@ $< $(CORE_OBJS) $(LDLIBS) -lcmocka

UNIT_TESTS += $(STORE_UNIT_TESTS)

-include $(STORE_UNIT_TESTS:=.d)
