#!/bin/sh
# Integration: every action type runs on real guests of a 2-team range, its
# effect is observable (the traffic on the team's bridges, the mail in the
# mailbox, the implant, the C2's logs and loot, the encrypted files with
# their backup, the stopped service, the defaced page, cron and account),
# the journal records it, and nothing reaches the other team.
set -u
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
TMP=$(mktemp -d)
EX="itatk$$"
SCN=tests/integration/attack.json
RUN_PID=""
DUMPS=""
JOURNAL=/var/lib/cyrange/records/$EX/journal.jsonl

cleanup() {
    for p in $DUMPS; do kill "$p" 2>/dev/null; done
    [ -n "$RUN_PID" ] && kill -INT "$RUN_PID" 2>/dev/null && wait "$RUN_PID" 2>/dev/null
    $CYRANGE down "$EX" >/dev/null 2>&1
    rm -rf "$TMP" "/var/lib/cyrange/records/$EX"
}
trap cleanup EXIT INT TERM

require_hypervisor

on() { # TEAM HOST CMD... : run a shell command in a guest
    team=$1 host=$2
    shift 2
    $CYRANGE exec "$EX" --team "$team" --host "$host" --timeout 20 -- sh -c "$*"
}

$CYRANGE run "$SCN" --name "$EX" --teams 2 --hold --seed 3 --timeout 300 >"$TMP/run.log" 2>&1 &
RUN_PID=$!
i=0
while [ $i -lt 600 ] && ! [ -S "/var/lib/cyrange/$EX/control.sock" ]; do
    kill -0 "$RUN_PID" 2>/dev/null || break
    sleep 0.5
    i=$((i + 1))
done
check "run brings 2 teams x 5 hosts up" test -S "/var/lib/cyrange/$EX/control.sock"

# Capture every bridge of both teams on the host, as the capture issue will.
for net in $($CYRANGE plan "$SCN" --name "$EX" --teams 2 --json |
             python3 -c 'import json,sys; [print(t["tag"] + "-" + n["segment"] + ":" + n["bridge"]) for t in json.load(sys.stdin)["teams"] for n in t["networks"]]'); do
    name=${net%%:*}
    br=${net##*:}
    tcpdump -i "$br" -n -U -w "$TMP/$name.pcap" 2>/dev/null &
    DUMPS="$DUMPS $!"
done
sleep 2

check "start team 1 only" $CYRANGE start "$EX" --team 1
# Every step of team 1 has a result (at most 4 minutes).
python3 - "$EX" "$CYRANGE" <<'PY' >"$TMP/wait.out" 2>&1
import json, subprocess, sys, time
ex, cy = sys.argv[1], sys.argv[2]
for _ in range(480):
    d = json.loads(subprocess.run([cy, "timeline", ex, "--json"], capture_output=True, text=True).stdout)
    t1 = [t for t in d["teams"] if t["team"] == 1][0]
    if all(s["state"] not in ("pending", "scheduled", "checking", "running") for s in t1["steps"]):
        sys.exit(0)
    time.sleep(0.5)
sys.exit(1)
PY
check "every step of team 1 has run" test $? -eq 0
$CYRANGE timeline "$EX" --team 1 | tee "$TMP/timeline.txt" | head -30

for step in scan synscan brute exploit phish open beacon transfer lateral cron account \
            exfil dnsexfil encrypt stop deface flood synflood udpflood press; do
    check "step $step succeeded" sh -c "grep -E '^ +\\+[0-9:]+ +$step ' '$TMP/timeline.txt' | grep -q succeeded"
done

# --- effects in the guests ---------------------------------------------------
check "the phishing mail is in hanako's mailbox on the mail server" \
    on 1 mail "grep -q 'Invoice 2026-117' /var/mail/hanako"
check "the attachment was saved on the PC" on 1 pc "ls /home/hanako/Downloads/invoice.pdf.exe"
check "the implant runs on the PC as 'updater'" on 1 pc "ps | grep -v grep | grep -q updater"
check "the C2 logged the beacons (through the proxy)" on 1 attacker "grep -q 'beacon id=' /var/log/c2-beacons.log"
check "the proxy logged the beacon's requests" on 1 fw "grep -qi '198.18.0.66\\|update.example.test' /var/log/proxy.log"
check "the C2 received the exfiltrated bytes" on 1 attacker \
    "[ \$(cat /srv/c2/loot/* | wc -c) -ge 65536 ]"
check "the C2's DNS logged the DNS exfiltration" on 1 attacker "grep -q 'update.example.test' /var/log/c2-dns.log"
check "the tool landed on the mail server" on 1 mail "test -s /tmp/.cache/scan.sh"
check "the implant was copied to the file server" on 1 files "test -x /tmp/.cache/updater"
check "cron persistence on the file server" on 1 files "grep -q updater /var/spool/cron/crontabs/root"
check "the new account exists" on 1 files "grep -q '^support:' /etc/passwd"
check "the share's files are encrypted" on 1 files "test -f /srv/share/finance/budget.csv.locked && ! test -f /srv/share/finance/budget.csv"
check "the backup of the share is intact" on 1 files "grep -q sales,120000 /srv/backup/share/finance/budget.csv"
check "the ftp service is stopped" on 1 mail "! netstat -ltn | grep -q ':21 '"
check "the page is defaced" on 1 mail "grep -q owned /srv/www/index.html"
check "team 2's mail server got no phishing mail" on 2 mail "! grep -q 'Invoice 2026-117' /var/mail/hanako 2>/dev/null"
check "team 2's share is untouched" on 2 files "test -f /srv/share/finance/budget.csv"

for p in $DUMPS; do kill "$p" 2>/dev/null; done
DUMPS=""
sleep 1
count() { # pcap filter
    tcpdump -n -r "$1" "$2" 2>/dev/null | wc -l
}
check "team 1's DMZ bridge saw the scan's SYNs to the mail server" \
    [ "$(count "$TMP/t01-dmz.pcap" 'tcp[tcpflags] & tcp-syn != 0 and dst host 198.18.1.25 and dst port 25')" -gt 0 ]
check "team 1's internet bridge saw the proxied beacons to the C2" \
    [ "$(count "$TMP/t01-internet.pcap" 'src host 198.18.0.1 and dst host 198.18.0.66 and dst port 80')" -gt 0 ]
check "team 1's office bridge saw the lateral ssh to the file server" \
    [ "$(count "$TMP/t01-office.pcap" 'src host 198.18.2.50 and dst host 198.18.2.20 and dst port 22')" -gt 0 ]
check "team 1's DMZ bridge saw the SYN flood" \
    [ "$(count "$TMP/t01-dmz.pcap" 'tcp[tcpflags] == tcp-syn and dst host 198.18.1.25 and dst port 80')" -gt 50 ]
for seg in internet dmz office; do
    check "team 2's $seg bridge saw none of the attack" \
        [ "$(count "$TMP/t02-$seg.pcap" 'host 198.18.0.66 or (tcp and dst port 25)')" -eq 0 ]
done

# --- journal -------------------------------------------------------------------
check "journal: a result for every step of team 1, with technique and flows" python3 - "$JOURNAL" <<'PY'
import json, sys
res = {}
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e.get("kind") in ("step_result", "inject") and e.get("team") == 1:
        res[e["step"]] = e
missing = {"scan", "synscan", "brute", "exploit", "phish", "open", "beacon", "transfer",
           "lateral", "cron", "account", "exfil", "dnsexfil", "encrypt", "stop", "deface",
           "flood", "synflood", "udpflood", "press"} - set(res)
assert not missing, missing
for k in ("scan", "brute", "exploit", "phish", "beacon", "exfil", "lateral"):
    e = res[k]
    assert e["technique"].startswith("T"), e
    assert e.get("flows") and all(f["community_id"].startswith("1:") for f in e["flows"]), (k, e.get("flows"))
assert res["account"]["technique"] == "T1136.001"
assert "hanako" in res["lateral"]["artefacts"]["accounts"], res["lateral"]["artefacts"]
PY
check "journal: nothing ran for team 2" python3 - "$JOURNAL" <<'PY'
import json, sys
ran = [e for e in map(json.loads, open(sys.argv[1])) if e.get("team") == 2 and e.get("kind") in ("step_start", "step_result", "inject")]
assert not ran, ran[:2]
PY

kill -INT "$RUN_PID"
wait "$RUN_PID"
RUN_PID=""
check "the run removed its range" no_leftovers "$EX"
finish
