#!/bin/sh
# The main job (README.md): validate the shipped scenarios, show the plan,
# then play two teams of the targeted-mail scenario on real QEMU guests with
# `cyrange serve` — the web UI and API on DEMO_LISTEN (default
# 127.0.0.1:8080), accounts printed once — until Ctrl-C, which removes
# everything.
#
# DEMO_SECONDS=N stops the exercise after N seconds instead of Ctrl-C.
set -eu
cd "$(dirname "$0")/.."
CYRANGE=./build/cyrange
SCN=scenarios/targeted-mail.json
EX=demo
LISTEN=${DEMO_LISTEN:-127.0.0.1:8080}

echo "== validating the shipped scenarios"
# Every scenarios/*.json but the JSON Schema that describes them.
$CYRANGE validate $(ls scenarios/*.json | grep -v '/schema\.json$')
echo
echo "== plan for two teams"
$CYRANGE plan "$SCN" --teams 2 --name "$EX"
echo

# A previous demo that was killed hard may have left its range: remove it.
$CYRANGE down "$EX" >/dev/null 2>&1 || true

cat <<TXT
== bringing up two teams and playing the attack (about a minute to boot
   under TCG, then the story unfolds at the scenario's speed)

Open the web UI at http://$LISTEN/ and log in with the accounts printed
below (instructor: all teams, controls, review; t01-1, t02-1 ...: one team
each — map, consoles, findings, reports, inbox, score).  If the accounts
existed already, set a password with: $CYRANGE users passwd NAME

While it runs, try in another terminal:
  $CYRANGE timeline $EX                            # every team's progress
  $CYRANGE status $EX                              # guests and addresses
  $CYRANGE exec $EX --team 1 --host fw -- iptables -L -n -v
  $CYRANGE exec $EX --team 1 --host pc1 -- ps     # look for the implant
  $CYRANGE pause $EX --team 2                      # steer one team
  tail -f /var/lib/cyrange/records/$EX/journal.jsonl   # the ground truth
Ctrl-C stops the exercise and removes every guest and network.

TXT
if [ -n "${DEMO_SECONDS:-}" ]; then
    $CYRANGE serve "$SCN" --teams 2 --name "$EX" --listen "$LISTEN" &
    pid=$!
    trap 'kill -INT $pid 2>/dev/null' INT TERM
    sleep "$DEMO_SECONDS"
    kill -INT "$pid" 2>/dev/null || true
    wait "$pid"
else
    exec $CYRANGE serve "$SCN" --teams 2 --name "$EX" --listen "$LISTEN"
fi
