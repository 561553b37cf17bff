# tests/unit/httpd.mk — cmocka tests of httpd and websock: a real server on
# 127.0.0.1 (ephemeral ports) and a raw-socket client in a second thread.

HTTPD_UNIT_TESTS := $(BUILD)/tests/test_httpd

$(HTTPD_UNIT_TESTS): $(BUILD)/tests/test_%: tests/unit/test_%.c $(CORE_OBJS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -DCYRANGE_SRCDIR='"$(CURDIR)"' -MMD -MP \
	    -o $@ $< $(CORE_OBJS) $(LDLIBS) -lcmocka -lpthread

UNIT_TESTS += $(HTTPD_UNIT_TESTS)

-include $(HTTPD_UNIT_TESTS:=.d)
