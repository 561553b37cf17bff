# tests/unit/console.mk — the guest serial consoles (orchestrator/console.c
# and the console part of virt.c).
#
#   test_console     cmocka, no daemon: lifecycle and error paths through
#                    libvirt's test:///default driver (it has no consoles)
#   console_driver   used by tests/integration/console.sh on a real guest
#
# console.c is not (yet) in CORE_SRCS; it is added here unless it is.

CONSOLE_OBJS := $(filter-out $(CORE_OBJS),$(BUILD)/obj/orchestrator/console.o)
CONSOLE_TEST := $(BUILD)/tests/test_console
CONSOLE_DRIVER := $(BUILD)/tests/console_driver

$(CONSOLE_TEST): tests/unit/test_console.c $(CORE_OBJS) $(CONSOLE_OBJS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -DCYRANGE_SRCDIR='"$(CURDIR)"' -MMD -MP \
	    -o $@ $< $(CORE_OBJS) $(CONSOLE_OBJS) $(LDLIBS) -lcmocka

$(CONSOLE_DRIVER): tests/integration/console_driver.c $(CORE_OBJS) $(CONSOLE_OBJS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -MMD -MP \
	    -o $@ $< $(CORE_OBJS) $(CONSOLE_OBJS) $(LDLIBS)

UNIT_TESTS += $(CONSOLE_TEST)

# The integration test needs the driver; `make check` builds unit-bins.
unit-bins: $(CONSOLE_DRIVER)

-include $(CONSOLE_TEST).d $(CONSOLE_DRIVER).d $(CONSOLE_OBJS:.o=.d)
