#!/bin/sh
# The main job (README.md): validate the shipped scenarios, show the plan,
# bring up two teams of the targeted-mail scenario on real QEMU guests, show
# their status and keep the range until Ctrl-C, then remove everything.
#
# DEMO_SECONDS=N keeps the range N seconds instead of waiting for Ctrl-C.
set -eu
cd "$(dirname "$0")/.."
CYRANGE=./build/cyrange
SCN=scenarios/targeted-mail.json
EX=demo

echo "== validating the shipped scenarios"
$CYRANGE validate scenarios/*.json
echo
echo "== plan for two teams"
$CYRANGE plan "$SCN" --teams 2 --name "$EX"
echo

# A previous demo that was killed hard may have left its range: remove it.
$CYRANGE down "$EX" >/dev/null 2>&1 || true

teardown() {
    trap - EXIT INT TERM
    echo
    echo "== tearing down"
    $CYRANGE down "$EX"
}
trap teardown EXIT
trap 'exit 130' INT TERM

echo "== bringing up two teams (real QEMU guests; about a minute under TCG)"
$CYRANGE up "$SCN" --teams 2 --name "$EX"
echo
$CYRANGE status "$EX"
cat <<TXT

The range is up: every team has its own isolated copy of the network.
Try, in another terminal:
  $CYRANGE exec $EX --team 1 --host fw -- iptables -L -n -v
  $CYRANGE exec $EX --team 1 --host pc1 -- ip addr          (address from the team's DHCP)
  $CYRANGE probe $EX --team 1 --host pc1 198.18.1.25 25     (office PC -> mail server)
  virsh console $EX-t01-mail                                (serial console; Ctrl-] leaves)
TXT
if [ -n "${DEMO_SECONDS:-}" ]; then
    echo "keeping the range for $DEMO_SECONDS s"
    sleep "$DEMO_SECONDS"
else
    echo "Press Ctrl-C to tear everything down."
    while :; do sleep 3600; done
fi
