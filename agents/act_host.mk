# agents/act_host.mk — the host-side attacker actions (agents/agent_act_host.c)
# and their unit test.  Included by agents/agent.mk, which owns the agent's
# link; it uses two names from here:
#
#   ACT_HOST_NAMES   object names to add to AGENT_NAMES (the static agent)
#   ACT_HOST_LIBS    static libraries for the agent's link line: libsodium
#                    (Debian package libsodium-dev) for impact.encrypt
#
#   $(BUILD)/tests/test_act_host   cmocka: every host action on a temporary
#                                  root (built with the normal CFLAGS, so
#                                  `make asan` instruments it)

ACT_HOST_NAMES := agent_act_host
SODIUM_A       ?= $(shell $(CC) -print-file-name=libsodium.a)
ACT_HOST_LIBS   = $(SODIUM_A)

# Fails early with the package to install rather than an unresolved symbol.
.PHONY: act-host-deps
act-host-deps:
	@test -f "$(SODIUM_A)" || { echo "agent: libsodium.a missing: install the Debian package 'libsodium-dev'" >&2; exit 1; }

# The test links the action file itself (not the agent's objects) with a
# test-only act_flow_add; the shims of the images (adduser, chpasswd) are
# run from the source tree, found through CYRANGE_SRCDIR.
# Two sources in one command: the headers are listed instead of -MMD.
$(BUILD)/tests/test_act_host: tests/unit/test_act_host.c agents/agent_act_host.c \
                              agents/agent_action.h agents/action_table.h | act-host-deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -DCYRANGE_SRCDIR='"$(CURDIR)"' -o $@ \
	    tests/unit/test_act_host.c agents/agent_act_host.c \
	    $(LDFLAGS) -lcmocka -lsodium -lcrypt -ljansson -lm

UNIT_TESTS += $(BUILD)/tests/test_act_host

.PHONY: act-host-test
act-host-test: $(BUILD)/tests/test_act_host
	$(BUILD)/tests/test_act_host
