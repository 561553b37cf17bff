# tests/unit/score.mk — unit and golden tests of scoring/score.c.  The test
# binary reads tests/golden/scoring/<case>/{input,expected}.json from the
# repository root (CYRANGE_SRCDIR, compiled in); GOLDEN_REGENERATE=1 in the
# environment rewrites the expected files on purpose:
#
#   make BUILD=build/x build/x/tests/test_score && build/x/tests/test_score
#   GOLDEN_REGENERATE=1 build/x/tests/test_score

SCORE_UNIT_TESTS := $(BUILD)/tests/test_score

$(SCORE_UNIT_TESTS): $(BUILD)/tests/test_%: tests/unit/test_%.c $(CORE_OBJS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -DCYRANGE_SRCDIR='"$(CURDIR)"' -MMD -MP \
	    -o $@ $< $(CORE_OBJS) $(LDLIBS) -lcmocka

UNIT_TESTS += $(SCORE_UNIT_TESTS)

-include $(SCORE_UNIT_TESTS:=.d)
