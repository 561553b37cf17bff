#!/bin/sh
# Integration: real per-team ranges on libvirt with real TCG guests.
#
# 2 teams x 4 hosts (three role images and one user qcow2 disk) come up and
# every agent says hello; hosts reach hosts of their own team, never another
# team's, never the host machine; `down` leaves nothing behind; an injected
# failure and a missing image roll back completely.
set -u
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
TMP=$(mktemp -d)
EX="it$$"
EXRB="itrb$$"
SCN=tests/integration/range3.json
HTTP_PID=""

cleanup() {
    [ -n "$HTTP_PID" ] && kill "$HTTP_PID" 2>/dev/null
    $CYRANGE down "$EX" >/dev/null 2>&1
    $CYRANGE down "$EXRB" >/dev/null 2>&1
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

require_hypervisor

# --- up ------------------------------------------------------------------
check "up: 2 teams x 4 hosts, every agent ready" \
    $CYRANGE up "$SCN" --name "$EX" --teams 2 --timeout 240
cat "$TMP/out" | tail -12
check "up refuses an exercise that is already up" sh -c \
    "! $CYRANGE up $SCN --name $EX --teams 2 2>&1 | grep -v 'already up' >/dev/null || $CYRANGE up $SCN --name $EX --teams 2 2>&1 | grep -q 'already up'"

$CYRANGE status "$EX" --json >"$TMP/status.json" 2>&1
check "status lists 8 guests, all ready with agent health" python3 - "$TMP/status.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))[0]
g = d["guests"]
assert len(g) == 8, len(g)
for x in g:
    assert x["state"] == "ready", x
    assert x["health"]["ifaces"], x
PY
check "status shows every static address" sh -c \
    "$CYRANGE status $EX | grep -c '198.18.2.60/24' | grep -qx 2"
check "every agent's hello named its exercise, team and host" sh -c \
    "$CYRANGE exec $EX --team 2 --host legacy -- cat /etc/cyrange/host.env | grep -q \"CYR_TEAM='2'\""

# --- reachability inside a team -------------------------------------------
check "t01 fw reaches t01 web (same segment, tcp/80)" \
    $CYRANGE probe "$EX" --team 1 --host fw 198.18.1.10 80
check "t01 pc reaches t01 web through the router (tcp/80)" \
    $CYRANGE probe "$EX" --team 1 --host pc 198.18.1.10 80
check "t01 legacy (user qcow2 disk) reaches t01 web through the router" \
    $CYRANGE probe "$EX" --team 1 --host legacy 198.18.1.10 80
check "each team's legacy host runs on its own overlay volume in pool cyrange" sh -c \
    "virsh vol-list cyrange | grep -c '$EX-t0[12]-legacy.qcow2' | grep -qx 2 &&
     virsh domblklist $EX-t01-legacy | grep -q '/var/lib/cyrange/pool/$EX-t01-legacy.qcow2'"
check "a file written to t01 legacy's disk is not on t02 legacy's disk" sh -c \
    "$CYRANGE exec $EX --team 1 --host legacy -- sh -c 'echo t01 > /root/marker && sync' &&
     ! $CYRANGE exec $EX --team 2 --host legacy -- cat /root/marker"
check_fails "closed port is reported unreachable" \
    $CYRANGE probe "$EX" --team 1 --host fw 198.18.1.10 23
check_fails "agent refuses probes outside 198.18.0.0/15" \
    $CYRANGE probe "$EX" --team 1 --host fw 127.0.0.1 22

# --- isolation between teams ----------------------------------------------
# Every team has the same addresses, so give team 2's web server one more
# address and check that only team 2 can reach it.
check "t02 web takes an extra address 198.18.1.222" \
    $CYRANGE exec "$EX" --team 2 --host web -- ip addr add 198.18.1.222/24 dev eth0
check "t02 fw reaches t02 web's extra address" \
    $CYRANGE probe "$EX" --team 2 --host fw 198.18.1.222 80
check_fails "t01 fw cannot reach t02 web's extra address" \
    $CYRANGE probe "$EX" --team 1 --host fw 198.18.1.222 80
check_fails "t01 pc cannot reach t02 web's extra address through its router" \
    $CYRANGE probe "$EX" --team 1 --host pc 198.18.1.222 80
check "a file written in t01 web is not in t02 web" sh -c \
    "$CYRANGE exec $EX --team 1 --host web -- sh -c 'echo t01 > /tmp/marker' &&
     ! $CYRANGE exec $EX --team 2 --host web -- cat /tmp/marker"

# --- isolation from the host machine --------------------------------------
PORT=18$(($$ % 900 + 100))
python3 -m http.server "$PORT" --bind 0.0.0.0 >/dev/null 2>&1 &
HTTP_PID=$!
sleep 1
check "the host's own test listener answers locally" sh -c \
    "python3 -c 'import urllib.request; urllib.request.urlopen(\"http://127.0.0.1:$PORT/\", timeout=3)'"
HOST_ADDRS=$(ip -4 -o addr show | awk '{print $4}' | cut -d/ -f1 | grep -v '^127\.')
for a in $HOST_ADDRS; do
    # The guest is given a direct route to the host address, the most a
    # trainee with root in the guest could do.
    check_fails "t01 pc cannot reach host address $a:$PORT" \
        $CYRANGE exec "$EX" --team 1 --host pc --timeout 15 -- sh -c \
        "ip route add $a/32 dev eth0 2>/dev/null; nc -w 3 $a $PORT </dev/null"
    check_fails "t01 fw cannot reach host address $a:$PORT" \
        $CYRANGE exec "$EX" --team 1 --host fw --timeout 15 -- sh -c \
        "ip route add $a/32 dev eth0 2>/dev/null; nc -w 3 $a $PORT </dev/null"
done
kill "$HTTP_PID" 2>/dev/null
HTTP_PID=""
for br in $($CYRANGE plan "$SCN" --name "$EX" --teams 2 --json |
            python3 -c 'import json,sys; [print(n["bridge"]) for t in json.load(sys.stdin)["teams"] for n in t["networks"]]'); do
    check "bridge $br has no IPv4/IPv6 address and no IPv6" sh -c \
        "[ -z \"\$(ip -o addr show dev $br)\" ] && [ \"\$(cat /proc/sys/net/ipv6/conf/$br/disable_ipv6)\" = 1 ]"
done
check "no libvirt network of the exercise has an <ip> or <forward>" sh -c \
    "for n in \$(virsh net-list --name | grep '^$EX-'); do virsh net-dumpxml \$n | grep -qE '<ip|<forward' && exit 1; done; exit 0"

# --- down ------------------------------------------------------------------
check "down removes the exercise" $CYRANGE down "$EX"
check "nothing of the exercise remains (domains, networks, volumes, sockets)" \
    no_leftovers "$EX"
check "down again is harmless" sh -c "$CYRANGE down $EX | grep -q 'nothing to remove'"

# --- rollback ----------------------------------------------------------------
check_fails "up with a domain refused midway fails" \
    $CYRANGE up "$SCN" --name "$EXRB" --teams 2 --fail-at web --timeout 120
cp "$TMP/out" "$TMP/rb.out"
check "the failure says what failed and that it rolled back" sh -c \
    "grep -q 'refused on purpose' '$TMP/rb.out' && grep -q 'rolled back' '$TMP/rb.out'"
check "the failed up left nothing behind" no_leftovers "$EXRB"
# A guest that dies while the range comes up: libvirt's event reaches the
# orchestrator, which fails and rolls back instead of waiting for a timeout.
$CYRANGE up "$SCN" --name "$EXRB" --teams 1 --timeout 200 >"$TMP/crash.out" 2>&1 &
UP_PID=$!
i=0
while [ $i -lt 100 ] && ! virsh domstate "$EXRB-t01-web" 2>/dev/null | grep -q running; do
    sleep 0.2
    i=$((i + 1))
done
virsh destroy "$EXRB-t01-web" >/dev/null 2>&1
wait "$UP_PID"
UP_RC=$?
check "up fails when a guest dies while booting" [ "$UP_RC" -ne 0 ]
check "the failure names the stopped guest and rolls back" sh -c \
    "grep -q '$EXRB-t01-web stopped' '$TMP/crash.out' && grep -q 'rolled back' '$TMP/crash.out'"
check "the interrupted up left nothing behind" no_leftovers "$EXRB"
check_fails "up with a missing image fails" \
    $CYRANGE up "$SCN" --name "$EXRB" --teams 1 --images /nonexistent
cp "$TMP/out" "$TMP/img.out"
check "the missing image is named" grep -q "vmlinuz is missing" "$TMP/img.out"
check "the failed up left nothing behind (missing image)" no_leftovers "$EXRB"

finish
