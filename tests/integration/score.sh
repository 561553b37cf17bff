#!/bin/sh
# Integration: on real guests of two teams, the captures on every team
# bridge see the injected scan and C2 beacon (each ground-truth flow is
# marked seen on the wire), availability checks run from the attacker's
# agent, team 1 files findings, and `cyrange score` explains every point:
# the detections with their match and delay, a false positive, an outage,
# C2 containment.  Team 2 files nothing and scores no detection.  The pcap
# files are read back by tshark with the packet count the capture reports.
set -u
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
TMP=$(mktemp -d)
EX="isc$$"
SCN=tests/integration/score.json
RUN_PID=""
REC=/var/lib/cyrange/records/$EX
JOURNAL=$REC/journal.jsonl

cleanup() {
    [ -n "$RUN_PID" ] && kill "$RUN_PID" 2>/dev/null && wait "$RUN_PID" 2>/dev/null
    $CYRANGE down "$EX" >/dev/null 2>&1
    rm -rf "$TMP" "$REC"
}
trap cleanup EXIT INT TERM

require_hypervisor

state() { # TEAM STEP
    $CYRANGE timeline "$EX" --json 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
for t in d["teams"]:
    if t["team"] == int(sys.argv[1]):
        for s in t["steps"]:
            if s["id"] == sys.argv[2]:
                print(s["state"])
' "$1" "$2"
}

wait_state() { # TEAM STEP STATE...
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

# py EXPR: evaluates a Python expression over j (a JSON document on stdin);
# exit 0 when true, printing the document otherwise.
py() {
    python3 -c '
import json, sys
j = json.load(sys.stdin)
ok = eval(sys.argv[1])
if not ok:
    print(json.dumps(j, indent=1)[:6000])
sys.exit(0 if ok else 1)
' "$1"
}

journal_has() { # python expression over entries `e`
    python3 - "$JOURNAL" "$1" <<'PY'
import json, sys
entries = [json.loads(l) for l in open(sys.argv[1])]
ok = any(eval(sys.argv[2], {}, {"e": e}) for e in entries)
if not ok:
    for e in entries:
        if e.get("kind") in ("wire", "step_result"):
            print(json.dumps(e)[:400])
sys.exit(0 if ok else 1)
PY
}

score_json() { $CYRANGE score "$EX" --json; }
team_score() { # TEAM EXPR over t (the team's breakdown)
    score_json >"$TMP/score.json" 2>&1 || { cat "$TMP/score.json"; return 1; }
    python3 -c '
import json, sys
teams = json.load(open(sys.argv[1]))
t = [x for x in teams if x["team"] == int(sys.argv[2])][0]
ok = eval(sys.argv[3])
if not ok:
    print(json.dumps(t, indent=1)[:8000])
sys.exit(0 if ok else 1)
' "$TMP/score.json" "$1" "$2"
}

$CYRANGE run "$SCN" --name "$EX" --teams 2 --seed 3 --hold --timeout 240 >"$TMP/run.log" 2>&1 &
RUN_PID=$!
i=0
while [ $i -lt 480 ] && ! [ -S "/var/lib/cyrange/$EX/control.sock" ]; do
    kill -0 "$RUN_PID" 2>/dev/null || break
    sleep 0.5
    i=$((i + 1))
done
check "run brings two teams up and captures their bridges" \
    test -S "/var/lib/cyrange/$EX/control.sock"
check "start every team" $CYRANGE start "$EX"

check "team 1's scan succeeds" wait_state 1 scan succeeded
check "team 1's phishing mail is opened (the implant is installed)" wait_state 1 open succeeded
check "team 1's beacon succeeds" wait_state 1 beacon succeeded
check "team 2's beacon succeeds" wait_state 2 beacon succeeded
sleep 3

check "every flow of team 1's scan is marked seen on the wire" journal_has \
    'e["kind"] == "wire" and e["team"] == 1 and e["step"] == "scan" and e["total"] >= 3 and e["seen"] == e["total"] and all(f["packets"] >= 1 for f in e["flows"])'
check "team 1's beacon flows are seen on the wire" journal_has \
    'e["kind"] == "wire" and e["team"] == 1 and e["step"] == "beacon" and e["seen"] >= 1'
check "team 2's scan flows are seen on team 2's wire" journal_has \
    'e["kind"] == "wire" and e["team"] == 2 and e["step"] == "scan" and e["seen"] == e["total"]'

$CYRANGE status "$EX" --json >"$TMP/status.json" 2>&1
check "status shows each team's capture counters with no drops" py \
    'all(w["packets"] > 0 and w["kernel_drops"] == 0 and len(w["captures"]) == 2 for w in j[0]["wire"])' <"$TMP/status.json"
check "status shows the checks: web-http and web-ssh up, web-wrong down (404)" py \
    'all({c["id"]: c["up"] for c in t["checks"]} == {"web-http": True, "web-ssh": True, "web-wrong": False} for t in j[0]["checks"])' <"$TMP/status.json"
check "status prints capture and check tables" sh -c \
    "$CYRANGE status $EX | grep -q PACKETS && $CYRANGE status $EX | grep -q 'web-wrong.*DOWN'"

# Team 1's findings: the scan by one of its flows' Community ID, the
# beacon by host and technique, and one that matches nothing.
CID=$(python3 -c '
import json, sys
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e["kind"] == "step_result" and e["team"] == 1 and e["step"] == "scan":
        print([f for f in e["flows"] if f["dport"] == 22][0]["community_id"])
' "$JOURNAL")
check "a finding by Community ID is filed as #1" sh -c \
    "$CYRANGE finding add $EX --team 1 --community-id '$CID' --technique T1046 --description 'port scan from the internet' | grep -q '#1 '"
check "a finding by host and technique is filed as #2" sh -c \
    "$CYRANGE finding add $EX --team 1 --host web --technique T1071.001 --domain update.exarnple.test --description 'web beacons out' --action 'blocked at fw' | grep -q '#2 '"
check "a finding that matches nothing is filed as #3" sh -c \
    "$CYRANGE finding add $EX --team 1 --ip 198.18.0.99 --description 'suspicious host' | grep -q '#3 '"
check_fails "a finding without evidence is refused" \
    $CYRANGE finding add "$EX" --team 1 --description "something"
cp "$TMP/out" "$TMP/refused"
check "... with a message naming what is missing" grep -q "at least one host, indicator" "$TMP/refused"
check_fails "a finding naming an unknown host is refused" \
    $CYRANGE finding add "$EX" --team 1 --host pc9 --description "x"
check_fails "a finding for a team that does not exist is refused" \
    $CYRANGE finding add "$EX" --team 3 --host web --description "x"
check "finding list shows team 1's three findings" sh -c \
    "[ \$($CYRANGE finding list $EX --team 1 --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))') = 3 ]"
check "team 2 has no findings" sh -c \
    "$CYRANGE finding list $EX --team 2 | grep -q 'no findings'"

check "score: team 1's scan is detected by flow identity, credited to finding #1" team_score 1 \
    '[s for s in t["steps"] if s["step"] == "scan"][0]["finding"] == 1 and [s for s in t["steps"] if s["step"] == "scan"][0]["tier"] == "flow"'
check "score: team 1's beacon is detected by host and technique (finding #2)" team_score 1 \
    '[s for s in t["steps"] if s["step"] == "beacon"][0]["finding"] == 2 and [s for s in t["steps"] if s["step"] == "beacon"][0]["tier"] == "host+technique"'
check "score: the detection reason names the finding and the Community ID" team_score 1 \
    'any("finding #1" in r and "community-id" in r for r in t["reasons"])'
check "score: finding #3 is a false positive with a penalty" team_score 1 \
    't["false_positives"]["count"] == 1 and t["false_positives"]["points"] < 0'
check "score: team 2 detected nothing and has no false positive" team_score 2 \
    'not any(s["detected"] for s in t["steps"]) and t["false_positives"]["count"] == 0 and t["axes"]["detection"]["points"] == 0'
check "score: team 1 outscores team 2 on detection" sh -c \
    "score_json() { $CYRANGE score $EX --json; }; score_json | python3 -c 'import json,sys; d={t[\"team\"]: t[\"axes\"][\"detection\"][\"points\"] for t in json.load(sys.stdin)}; sys.exit(0 if d[1] > d[2] else 1)'"
check "score: precision 2/3 and recall 2/4 (scan and beacon of four landed steps) for team 1" team_score 1 \
    'abs(t["precision"] - 2/3) < 0.01 and t["recall"] == 0.5'
check "score prints a readable breakdown" sh -c "$CYRANGE score $EX --team 1 | grep -q 'finding #1'"

check "an instructor relabels #3 as true but unscripted" \
    $CYRANGE finding label "$EX" 3 unscripted
check "score: after the relabel, no false positive is left" team_score 1 \
    't["false_positives"]["count"] == 0'

# Availability: stop team 1's web server; its check goes down, team 2's
# stays up, and the score shows the outage.
check "team 1's web server is stopped in the guest" $CYRANGE exec "$EX" --team 1 --host web -- \
    sh -c 'kill -9 -$(cat /run/cyrange/services/http.pid)'
i=0
while [ $i -lt 40 ]; do
    $CYRANGE status "$EX" --json >"$TMP/status.json" 2>/dev/null
    py '[c for c in j[0]["checks"][0]["checks"] if c["id"] == "web-http"][0]["up"] is False' \
        <"$TMP/status.json" >/dev/null 2>&1 && break
    sleep 0.5
    i=$((i + 1))
done
check "team 1's web-http check goes down, team 2's stays up" py \
    '[c for c in j[0]["checks"][0]["checks"] if c["id"] == "web-http"][0]["up"] is False and [c for c in j[0]["checks"][1]["checks"] if c["id"] == "web-http"][0]["up"] is True' <"$TMP/status.json"
check "team 1's web-ssh check stays up" py \
    '[c for c in j[0]["checks"][0]["checks"] if c["id"] == "web-ssh"][0]["up"] is True' <"$TMP/status.json"
sleep 4
check "score: team 1's availability shows the web-http outage" team_score 1 \
    'any("web-http" in r and "outage" in r for r in t["reasons"])'
check "score: team 2 keeps more availability than team 1" sh -c \
    "$CYRANGE score $EX --json | python3 -c 'import json,sys; d={t[\"team\"]: t[\"axes\"][\"availability\"][\"points\"] for t in json.load(sys.stdin)}; sys.exit(0 if d[2] > d[1] else 1)'"
check "score: the informative check (sla 0) takes no points" team_score 1 \
    'all(i.get("points", 0) == 0 for i in t["axes"]["availability"]["items"] if i.get("check") == "web-wrong")'

# The beacon runs 20 s; 10 s without a beacon on the wire is containment.
contained() {
    i=0
    while [ $i -lt 60 ]; do
        team_score 1 'any("containment" in r and " contained " in r for r in t["reasons"])' \
            >/dev/null 2>&1 && return 0
        sleep 1
        i=$((i + 1))
    done
    team_score 1 'any("containment" in r and " contained " in r for r in t["reasons"])'
}
check "score: team 1's C2 counts as contained once quiet on the wire" contained
LIVE_DET=$($CYRANGE score "$EX" --team 1 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["axes"]["detection"]["points"])')

# Stop the run: captures are closed and flushed, the records stay.
kill -INT "$RUN_PID"
wait "$RUN_PID"
RUN_PID=""
check "run stopped and removed the range" no_leftovers "$EX"
check "team 1's pcap files exist" sh -c "ls $REC/pcap/t01/*.pcap >/dev/null"
check "tshark reads team 1's pcaps with the packet count the capture reports" python3 - "$REC" 1 <<'PY'
import glob, json, subprocess, sys
rec, team = sys.argv[1], int(sys.argv[2])
c = json.load(open("%s/wire-t%02d.json" % (rec, team)))
n = 0
for f in sorted(glob.glob("%s/pcap/t%02d/*.pcap" % (rec, team))):
    out = subprocess.run(["tshark", "-r", f, "-T", "fields", "-e", "frame.number"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True).stdout
    n += len(out.splitlines())
print("tshark: %d packets, capture: written %d, read %d, drops %d" % (n, c["written"], c["packets"], c["kernel_drops"]))
sys.exit(0 if n == c["written"] == c["packets"] and n > 0 else 1)
PY
check "team 2's own captures were written too" python3 - "$REC" <<'PY'
import glob, subprocess, sys
rec = sys.argv[1]
n = 0
for f in glob.glob("%s/pcap/t02/*.pcap" % rec):
    out = subprocess.run(["tshark", "-r", f, "-T", "fields", "-e", "frame.number"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True).stdout
    n += len(out.splitlines())
sys.exit(0 if n > 0 else 1)
PY
check "finished flows are in flows-t01.jsonl" sh -c "[ -s $REC/flows-t01.jsonl ]"
check "score from the records once the run is over" sh -c \
    "$CYRANGE score $EX --json | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if len(d) == 2 and abs(d[0][\"axes\"][\"detection\"][\"points\"] - $LIVE_DET) < 0.01 else 1)'"

finish
