#!/bin/sh
# Runs test suites and prints one closing summary line "N passed, N failed".
#
#   run-tests.sh unit BIN...         cmocka unit test binaries
#   run-tests.sh unit-golden BIN...  unit binaries, then the golden corpus
#   run-tests.sh integration         tests/integration/*.sh on real guests
#   run-tests.sh all BIN...          unit, golden, schema, integration
#
# Environment: CYRANGE (binary under test, default build/cyrange), VALGRIND
# (a prefix for unit binaries), BUILD.  Counts are of test cases: cmocka's
# per-binary "[  PASSED  ] N test(s)" lines, and each suite's own
# "N passed, N failed" line.
set -u
cd "$(dirname "$0")/.."

mode=$1
shift
PASSED=0
FAILED=0
FAILED_SUITES=""
LOG_DIR=${BUILD:-build}/test-logs
mkdir -p "$LOG_DIR"

count_cmocka() { # log
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$1" | tail -1)
    f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$1" | tail -1)
    PASSED=$((PASSED + ${p:-0}))
    FAILED=$((FAILED + ${f:-0}))
}

count_summary() { # log
    line=$(grep -E '^([A-Za-z-]+: )?[0-9]+ passed, [0-9]+ failed' "$1" | tail -1)
    p=$(echo "$line" | sed -n 's/^\([A-Za-z-]*: \)\{0,1\}\([0-9]*\) passed.*/\2/p')
    f=$(echo "$line" | sed -n 's/.* \([0-9]*\) failed.*/\1/p')
    PASSED=$((PASSED + ${p:-0}))
    FAILED=$((FAILED + ${f:-0}))
}

suite_failed() { # name
    FAILED_SUITES="$FAILED_SUITES $1"
}

run_unit() {
    for bin in "$@"; do
        name=$(basename "$bin")
        log="$LOG_DIR/$name.log"
        echo "== unit: $name"
        # shellcheck disable=SC2086
        ${VALGRIND:-} "$bin" >"$log" 2>&1
        rc=$?
        cat "$log"
        count_cmocka "$log"
        if [ $rc -ne 0 ]; then
            suite_failed "$name"
            # A crash before cmocka's summary still counts as a failure.
            grep -q '^\[  FAILED  \]' "$log" || FAILED=$((FAILED + 1))
        fi
    done
}

run_script() { # name command...
    name=$1
    shift
    log="$LOG_DIR/$name.log"
    echo "== $name"
    "$@" >"$log" 2>&1
    rc=$?
    cat "$log"
    count_summary "$log"
    if [ $rc -ne 0 ]; then
        suite_failed "$name"
        grep -qE '[0-9]+ passed, [1-9][0-9]* failed' "$log" || FAILED=$((FAILED + 1))
    fi
}

run_golden() {
    run_script golden ./tests/golden/run-golden.sh
}

run_integration() {
    for t in tests/integration/*.sh; do
        [ -e "$t" ] || continue
        run_script "integration-$(basename "$t" .sh)" sh "$t"
    done
}

case "$mode" in
unit) run_unit "$@" ;;
unit-golden) run_unit "$@"; run_golden ;;
integration) run_integration ;;
all)
    run_unit "$@"
    run_golden
    run_script schema-check /usr/bin/python3 tests/schema/check-schema.py
    run_integration
    ;;
*) echo "run-tests.sh: unknown mode '$mode'" >&2; exit 2 ;;
esac

if [ -n "$FAILED_SUITES" ]; then
    echo "failing suites:$FAILED_SUITES"
fi
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ] && [ -z "$FAILED_SUITES" ]
