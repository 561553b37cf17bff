#!/bin/sh
# Integration: interactive serial consoles (console_hub over libvirt console
# streams) on real guests of a one-team range.
#
# tests/integration/console_driver.c does the work on the web guest: logs in
# on the getty as the scenario's account, runs commands, checks that two
# viewers share one stream, the scroll-back replay and its bound, the grace
# period, a takeover by a second client (VIR_DOMAIN_CONSOLE_FORCE), and that
# destroying the guest ends the viewer.  With CONSOLE_DRIVER_ASAN set to an
# ASan/UBSan build of the driver, the same runs again on the fw guest under
# the sanitizers.  A missing hypervisor, image or driver is a failure.
set -u
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
TMP=$(mktemp -d)
EX="con$$"
SCN=tests/integration/play.json
DRIVER=${CONSOLE_DRIVER:-${BUILD:-build}/tests/console_driver}
DRIVER_ASAN=${CONSOLE_DRIVER_ASAN:-}

cleanup() {
    $CYRANGE down "$EX" >/dev/null 2>&1
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

require_hypervisor
for d in "$DRIVER" $DRIVER_ASAN; do
    if [ ! -x "$d" ]; then
        not_ok "console driver $d is built (make $d)"
        finish
        exit 1
    fi
done

check "up: one team of $SCN" $CYRANGE up "$SCN" --name "$EX" --teams 1 --timeout 240
if [ "$FAIL" -ne 0 ]; then
    finish
    exit 1
fi

# run_driver "description" command...: the driver's own checks are shown.
run_driver() {
    desc=$1
    shift
    if "$@" >"$TMP/drv" 2>&1; then
        ok "$desc"
    else
        not_ok "$desc"
    fi
    sed 's/^/       | /' "$TMP/drv"
}

run_driver "console of web as alice: login, shared viewers, scroll-back, grace, takeover, destroy" \
    "$DRIVER" --uri "$URI" "$EX-t01-web" alice 'Winter2026!'
check "the web guest is shut off after the destroy" sh -c \
    "virsh -c '$URI' domstate '$EX-t01-web' | grep -qx 'shut off'"

if [ -n "$DRIVER_ASAN" ]; then
    # fw has no scenario account: the agent makes one for this run.
    PW="Con-$$-$(date +%s)"
    check "an account for the console on fw" \
        $CYRANGE exec "$EX" --team 1 --host fw -- sh -c \
        "adduser -D cyrcon && echo 'cyrcon:$PW' | chpasswd"
    run_driver "under ASan/UBSan: console of fw, the same checks" \
        env ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
        "$DRIVER_ASAN" --uri "$URI" "$EX-t01-fw" cyrcon "$PW"
fi

check "down removes the range" $CYRANGE down "$EX"
check "nothing of the range is left" no_leftovers "$EX"
finish
