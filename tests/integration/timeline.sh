#!/bin/sh
# Integration: `cyrange run` plays the attack timeline on real guests, one
# clock per team, steered by instructor commands, with every start and
# result in the ground-truth journal.
set -u
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
TMP=$(mktemp -d)
EX="itl$$"
SCN=tests/integration/play.json
RUN_PID=""
JOURNAL=/var/lib/cyrange/records/$EX/journal.jsonl

cleanup() {
    [ -n "$RUN_PID" ] && kill "$RUN_PID" 2>/dev/null && wait "$RUN_PID" 2>/dev/null
    $CYRANGE down "$EX" >/dev/null 2>&1
    rm -rf "$TMP" "/var/lib/cyrange/records/$EX"
}
trap cleanup EXIT INT TERM

require_hypervisor

# state TEAM STEP: the step's state from `cyrange timeline --json`.
state() {
    $CYRANGE timeline "$EX" --json 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
team, step = int(sys.argv[1]), sys.argv[2]
for t in d["teams"]:
    if t["team"] == team:
        for s in t["steps"]:
            if s["id"] == step:
                print(s["state"])
' "$1" "$2"
}

# wait_state TEAM STEP STATE... : up to 120 s
wait_state() {
    team=$1 step=$2
    shift 2
    i=0
    while [ $i -lt 240 ]; do
        st=$(state "$team" "$step")
        for want in "$@"; do
            [ "$st" = "$want" ] && return 0
        done
        sleep 0.5
        i=$((i + 1))
    done
    echo "team $team step $step is '$st', wanted: $*"
    return 1
}

is_state() { # TEAM STEP WANT
    [ "$(state "$1" "$2")" = "$3" ]
}

journal_has() { # python expression over entries `e`
    python3 - "$JOURNAL" "$1" <<'PY'
import json, sys
entries = [json.loads(l) for l in open(sys.argv[1])]
ok = any(eval(sys.argv[2], {}, {"e": e}) for e in entries)
sys.exit(0 if ok else 1)
PY
}

$CYRANGE run "$SCN" --name "$EX" --teams 2 --seed 7 --hold --timeout 240 >"$TMP/run.log" 2>&1 &
RUN_PID=$!
i=0
while [ $i -lt 480 ] && ! [ -S "/var/lib/cyrange/$EX/control.sock" ]; do
    kill -0 "$RUN_PID" 2>/dev/null || break
    sleep 0.5
    i=$((i + 1))
done
check "run brings the range up and opens its control socket" \
    test -S "/var/lib/cyrange/$EX/control.sock"
check "held clocks: nothing is scheduled before start" sh -c \
    "[ \"\$($CYRANGE timeline $EX --json | python3 -c 'import json,sys; print(set(t[\"clock\"] for t in json.load(sys.stdin)[\"teams\"]))')\" = \"{'stopped'}\" ]"

check "start team 1" $CYRANGE start "$EX" --team 1
check "team 1's scan runs and gets a result" wait_state 1 scan succeeded failed
check "team 2 has not started (own clock)" is_state 2 scan pending
check "team 1's conditional sqli step is decided (run or branch)" \
    wait_state 1 sqli succeeded failed "not taken"
check "inject runs an on-demand step now" $CYRANGE inject "$EX" brute --team 1
check "the on-demand step gets a result" wait_state 1 brute succeeded failed
check_fails "a finished step cannot be skipped" $CYRANGE skip "$EX" scan --team 1
check_fails "an unknown step is refused" $CYRANGE skip "$EX" nosuch --team 1

check "start team 2" $CYRANGE start "$EX" --team 2
check "pause team 2" $CYRANGE pause "$EX" --team 2
check "team 2's clock is paused" sh -c \
    "$CYRANGE timeline $EX --team 2 | grep -q 'clock paused'"
check "skip team 2's press inject while paused" $CYRANGE skip "$EX" press --team 2
check "resume team 2" $CYRANGE resume "$EX" --team 2
check "team 2's scan runs after resume" wait_state 2 scan succeeded failed
check "team 2's skipped inject stays skipped" is_state 2 press skipped
check "team 1's press inject reaches the inbox" wait_state 1 press succeeded

check "reset team 1: fresh guests, timeline from zero" $CYRANGE reset "$EX" --team 1
check "the reset completes (every agent of team 1 ready again)" sh -c \
    "for i in \$(seq 240); do grep -q 'reset complete' '$JOURNAL' && exit 0; sleep 0.5; done; exit 1"
check "after the reset team 1 plays again" wait_state 1 scan succeeded failed

# --- the ground-truth journal ------------------------------------------------
check "journal: every step start names actor, target, addresses, technique" journal_has \
    "e['kind'] == 'step_start' and e['step'] == 'scan' and e['team'] == 2 and e['actor'] == 'attacker' and e['target'] == 'web' and e['target_addr'] == '198.18.1.10' and e['technique'] == 'T1046'"
check "journal: step results carry an outcome" journal_has \
    "e['kind'] == 'step_result' and e['step'] == 'scan' and e['outcome'] in ('succeeded', 'failed')"
check "journal: the inject with its deadline" journal_has \
    "e['kind'] == 'inject' and e['team'] == 1 and e['deadline'] == '15m'"
check "journal: instructor actions" journal_has \
    "e['kind'] == 'instructor' and e['event'] == 'skip' and e['step'] == 'press' and e['team'] == 2"
check "journal: the skipped step" journal_has \
    "e['kind'] == 'timeline' and e.get('step') == 'press' and 'skipped' in e['event']"
check "journal: scan flows recorded as 5-tuples" journal_has \
    "e['kind'] == 'step_result' and e['step'] == 'scan' and any(f['dst'] == '198.18.1.10' and f['dport'] == 80 for f in e.get('flows', []))"
check "journal: the scan found the open ports" journal_has \
    "e['kind'] == 'step_result' and e['step'] == 'scan' and e['outcome'] == 'succeeded' and 80 in e['evidence'].get('open', [])"
check "journal: the SQL injection through the firewall succeeded" journal_has \
    "e['kind'] == 'step_result' and e['step'] == 'sqli' and e['outcome'] == 'succeeded'"
check "journal: the firewall's unpublished ssh port was not open to the internet" journal_has \
    "e['kind'] == 'step_result' and e['step'] == 'scan' and 22 not in e['evidence'].get('open', [])"

kill -INT "$RUN_PID"
wait "$RUN_PID"
RC=$?
RUN_PID=""
check "Ctrl-C stops the run cleanly (exit 0)" [ "$RC" -eq 0 ]
check "the run removed its range" no_leftovers "$EX"
check "the journal outlives the range" test -s "$JOURNAL"
check "journal export per team holds only that team's steps" sh -c \
    "$CYRANGE journal $EX --team 2 | python3 -c 'import json,sys; d=json.load(sys.stdin); t={e[\"team\"] for e in d[\"entries\"] if \"team\" in e}; sys.exit(0 if t=={2} else 1)'"
check "journal: flows carry Community IDs" journal_has \
    "e['kind'] == 'step_result' and all(f.get('community_id', '').startswith('1:') for f in e.get('flows', [])) and e.get('flows')"
check "journal: agent-stamped start and end" journal_has \
    "e['kind'] == 'step_result' and e.get('started', '').endswith('Z') and e.get('ended', '') >= e.get('started', '')"
tail -25 "$TMP/run.log"
finish
