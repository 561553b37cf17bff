#!/bin/sh
# End to end in a real browser (Debian's chromium driven by playwright-core,
# no browser download) against a real `cyrange serve` on real guests: a team
# member logs in, opens a console on a guest and runs a command, files a
# finding and a report; an instructor comments, grades and returns it; a
# second team's member sees none of it.  Screenshots of the main screens go
# to build/e2e/screenshots/.  tests/e2e/ui.spec.mjs does the browsing.
set -u
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
TMP=$(mktemp -d)
EX="ie2e$$"
SERVE_PID=""
PORT=$(python3 -c 'import sys; sys.path.insert(0, "tests/integration"); import testlib; print(testlib.free_port())')

cleanup() {
    if [ -n "$SERVE_PID" ] && kill -0 "$SERVE_PID" 2>/dev/null; then
        kill -INT "$SERVE_PID"
        wait "$SERVE_PID" 2>/dev/null
    fi
    $CYRANGE down "$EX" >/dev/null 2>&1
    rm -rf "$TMP" "/var/lib/cyrange/records/$EX"
}
trap cleanup EXIT INT TERM

require_hypervisor
check "chromium is installed (make deps)" test -x /usr/bin/chromium
check "playwright-core is installed (make e2e-deps)" test -d tests/e2e/node_modules/playwright-core
check "xterm.js is in web/vendor (make web-deps)" test -f web/vendor/xterm/xterm.mjs

$CYRANGE serve tests/integration/score.json --name "$EX" --teams 2 --hold --members 1 \
    --listen "127.0.0.1:$PORT" --timeout 240 >"$TMP/serve.log" 2>&1 &
SERVE_PID=$!
i=0
while [ $i -lt 480 ] && ! grep -q "playing the timeline" "$TMP/serve.log"; do
    kill -0 "$SERVE_PID" 2>/dev/null || break
    sleep 0.5
    i=$((i + 1))
done
check "serve brings two teams up with the web UI" grep -q "playing the timeline" "$TMP/serve.log"
for u in instructor:e2e-instructor-1 t01-1:e2e-team-one-1 t02-1:e2e-team-two-2; do
    name=${u%%:*}
    pw=${u#*:}
    check "password of $name set" sh -c "echo '$pw' | $CYRANGE users passwd $name --password-stdin"
done
check "the instructor starts the exercise" $CYRANGE start "$EX"

BASE_URL="http://127.0.0.1:$PORT" E2E_MEMBER1=t01-1:e2e-team-one-1 \
E2E_MEMBER2=t02-1:e2e-team-two-2 E2E_INSTRUCTOR=instructor:e2e-instructor-1 \
E2E_HOST=web E2E_CONSOLE_LOGIN=alice:Winter2026! \
SCREENSHOTS=build/e2e/screenshots node tests/e2e/ui.spec.mjs >"$TMP/e2e.log" 2>&1
rc=$?
cat "$TMP/e2e.log"
# The browser run's own summary is counted too.
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$TMP/e2e.log" | tail -1)
p=$(echo "$line" | sed -n 's/^\([0-9]*\) passed.*/\1/p')
f=$(echo "$line" | sed -n 's/.* \([0-9]*\) failed.*/\1/p')
PASS=$((PASS + ${p:-0}))
FAIL=$((FAIL + ${f:-0}))
[ $rc -ne 0 ] && [ "${f:-0}" -eq 0 ] && not_ok "the browser run ended with status $rc"
check "screenshots of the main screens were written" sh -c "ls build/e2e/screenshots/*.png | wc -l | grep -qv '^0$'"

kill -INT "$SERVE_PID"
wait "$SERVE_PID"
SERVE_PID=""
check "Ctrl-C stops serve and removes the range" no_leftovers "$EX"
finish
