# tests/unit/capture.mk — cmocka unit tests of the flow table (pure) and of
# the capture module (needs root: it creates a cybt* bridge and veth pair).

CAPTURE_UNIT_NAMES := flows capture
CAPTURE_UNIT_TESTS := $(CAPTURE_UNIT_NAMES:%=$(BUILD)/tests/test_%)

$(CAPTURE_UNIT_TESTS): $(BUILD)/tests/test_%: tests/unit/test_%.c $(CORE_OBJS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -DCYRANGE_SRCDIR='"$(CURDIR)"' -MMD -MP \
	    -o $@ $< $(CORE_OBJS) $(LDLIBS) -lcmocka

UNIT_TESTS += $(CAPTURE_UNIT_TESTS)

-include $(CAPTURE_UNIT_TESTS:=.d)
