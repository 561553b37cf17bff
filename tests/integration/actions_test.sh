#!/bin/sh
# Integration: the attacker actions (agents/PROTOCOL.md, "Actions") on real
# TCG guests.  One team of tests/integration/range3.json comes up (fw, web
# with the server image, pc the workstation, legacy); action requests are
# written straight to the guests' agent sockets by a small python client,
# the way the orchestrator's timeline sends them, and what they did is
# checked from the other side: the web server's mailbox, logs and a tcpdump
# capture in the web guest.
#
#   portscan (connect and SYN) pc -> web finds 22 and 80 open, and tcpdump
#   in web sees the SYNs; web.exploit sqli/traversal/cmdi against the
#   intranet application; cred.bruteforce over smtp (mini-smtpd, started by
#   hand: range3's web does not list smtp in its services) and ssh; a
#   phishing mail delivered into the mailbox; HTTP exfiltration; a bounded
#   UDP flood; c2.beacon failing without an implant, then beaconing from a
#   planted one until action_stop ends it; a request to an address outside
#   198.18.0.0/15 refused.
#
# Needs root, libvirtd, python3 and `make images`.  Prints "N passed, N
# failed"; always tears the range down.
set -u
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
TMP=$(mktemp -d)
EX="itact$$"
SCN=tests/integration/range3.json
WEB=198.18.1.10
PC=198.18.2.50

cleanup() {
    $CYRANGE down "$EX" >/dev/null 2>&1
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# act HOST JSON [TIMEOUT]: one request on HOST's agent socket, the reply
# (one JSON line) on stdout.
cat >"$TMP/act.py" <<'PY'
import json, socket, sys, time
path, req = sys.argv[1], json.loads(sys.argv[2])
timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 120
end = time.monotonic() + timeout
s = None
while s is None:
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
    except OSError:
        s = None
        if time.monotonic() > end:
            raise
        time.sleep(0.3)
buf = b""
def read():
    global buf
    while b"\n" not in buf:
        left = end - time.monotonic()
        if left <= 0:
            sys.exit("timeout waiting for the agent")
        s.settimeout(left)
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("channel closed")
        buf += chunk
    line, buf = buf.split(b"\n", 1)
    return json.loads(line)
def call(obj, i):
    obj = dict(obj, id=i)
    s.sendall((json.dumps(obj) + "\n").encode())
    while True:
        m = read()
        if m.get("t") == "reply" and m.get("id") == i:
            return m
call({"t": "hello?"}, 1)
print(json.dumps(call(req, 2)))
PY

sock() { echo "/var/lib/cyrange/$EX/t01-$1.agent.sock"; }

# act HOST TIMEOUT JSON > file
act() {
    python3 "$TMP/act.py" "$(sock "$1")" "$3" "$2"
}

# expect FILE PYTHON-EXPRESSION: r is the reply.
expect() {
    python3 - "$1" "$2" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ev = r.get("evidence", {})
ok = eval(sys.argv[2])
if not ok:
    print(json.dumps(r, indent=1)[:3000])
    sys.exit(1)
PY
}

gexec() { # HOST CMD...
    h=$1
    shift
    $CYRANGE exec "$EX" --team 1 --host "$h" --timeout 60 -- "$@"
}

require_hypervisor

check "up: range3, one team, every agent ready" \
    $CYRANGE up "$SCN" --name "$EX" --teams 1 --timeout 300
check "the agent sockets exist" test -S "$(sock pc)" -a -S "$(sock web)"
# Ready agents are not yet a ready network: the router's firewall and the
# web server's services come up from start-services, a little later.
i=0
while [ $i -lt 60 ] && ! $CYRANGE probe "$EX" --team 1 --host pc $WEB 80 >/dev/null 2>&1; do
    sleep 1
    i=$((i + 1))
done
check "pc reaches web:80 (through fw)" $CYRANGE probe "$EX" --team 1 --host pc $WEB 80

# --- recon ---------------------------------------------------------------
act pc 120 '{"t":"action","step":"scan","action":"recon.portscan",
  "params":{"ports":"21-25,80,443,8080","mode":"connect","rate":50},
  "target":{"host":"web","addr":"'$WEB'"},"seed":7}' >"$TMP/scan.json"
check "connect scan pc -> web finds 22 and 80 open, 21/25/443 not" \
    expect "$TMP/scan.json" 'r["ok"] and r["outcome"] == "succeeded" and 22 in ev["open"] and 80 in ev["open"] and 443 not in ev["open"] and r["flows_total"] == 8'
check "every flow comes from pc's address" \
    expect "$TMP/scan.json" 'all(f["src"] == "'$PC'" and f["dst"] == "'$WEB'" for f in r["flows"])'

# tcpdump in the web guest while pc runs a SYN scan.
check "tcpdump starts in web" gexec web sh -c \
    'rm -f /tmp/syn.pcap; setsid tcpdump -i eth0 -n -U -w /tmp/syn.pcap "tcp[tcpflags] & tcp-syn != 0 and src host '$PC'" </dev/null >/tmp/td.log 2>&1 & sleep 2; pidof tcpdump'
act pc 120 '{"t":"action","step":"syn","action":"recon.portscan",
  "params":{"ports":"22,80,443,3306","mode":"syn","rate":20,"timeout":"2s"},
  "target":{"host":"web","addr":"'$WEB'"},"seed":8}' >"$TMP/syn.json"
check "SYN scan pc -> web finds 22 and 80 open" \
    expect "$TMP/syn.json" 'r["ok"] and ev["mode"] == "syn" and sorted(ev["open"]) == [22, 80] and ev["closed_count"] == 2'
gexec web sh -c 'sleep 1; kill $(pidof tcpdump); sleep 1; tcpdump -n -r /tmp/syn.pcap 2>/dev/null' >"$TMP/syn.txt" 2>&1
SPORT=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["flows"][0]["sport"])' "$TMP/syn.json" 2>/dev/null)
check "tcpdump in web saw the scan's SYNs to 22, 80, 443 and 3306 from pc:$SPORT" sh -c \
    "for p in 22 80 443 3306; do grep -q '$PC.$SPORT > $WEB.'\$p': Flags \[S\]' '$TMP/syn.txt' || exit 1; done"
[ "$FAIL" -eq 0 ] || sed 's/^/       | /' "$TMP/syn.txt" | head -20

# --- the web application's vulnerabilities ---------------------------------
act pc 120 '{"t":"action","step":"sqli","action":"web.exploit",
  "params":{"kind":"sqli","path":"/cgi-bin/login.cgi"},
  "target":{"host":"web","addr":"'$WEB'"}}' >"$TMP/sqli.json"
check "web.exploit sqli on login.cgi succeeds (passwords dumped)" \
    expect "$TMP/sqli.json" 'r["ok"] and r["outcome"] == "succeeded" and "Welcome," in ev["snippet"] and ev["status"] == 200'
act pc 120 '{"t":"action","step":"trav","action":"web.exploit",
  "params":{"kind":"traversal","path":"/cgi-bin/view.cgi"},
  "target":{"host":"web","addr":"'$WEB'"}}' >"$TMP/trav.json"
check "web.exploit traversal on view.cgi reads /etc/passwd" \
    expect "$TMP/trav.json" 'r["outcome"] == "succeeded" and "root:x:0:0:" in ev["snippet"]'
act pc 120 '{"t":"action","step":"cmdi","action":"web.exploit",
  "params":{"kind":"cmdi","path":"/cgi-bin/ping.cgi"},
  "target":{"host":"web","addr":"'$WEB'"}}' >"$TMP/cmdi.json"
check "web.exploit cmdi on ping.cgi runs id as www-data" \
    expect "$TMP/cmdi.json" 'r["outcome"] == "succeeded" and "www-data" in ev["snippet"]'
check "the web server's access log has the three exploit requests" sh -c \
    "$CYRANGE exec $EX --team 1 --host web -- cat /var/log/httpd.log > $TMP/access.log;
     grep -q 'POST /cgi-bin/login.cgi' $TMP/access.log &&
     grep -q 'view.cgi?file=..%2F' $TMP/access.log &&
     grep -q 'ping.cgi?host=127.0.0.1%3Bid' $TMP/access.log"

# --- credentials and mail ---------------------------------------------------
# range3's web runs http and ssh only: mini-smtpd is started by hand, and
# the account the attacker guesses is made with the image's tools.
check "an account and mini-smtpd on web" gexec web sh -c \
    'adduser -D hanako >/dev/null 2>&1; echo "hanako:Spring2026!" | chpasswd &&
     mkdir -p /var/mail && chown root:mail /var/mail && chmod 2775 /var/mail &&
     setsid mini-smtpd -p 25 -n web -d localhost,web,example.test -l /var/log/mail.log </dev/null >/dev/null 2>&1 &
     sleep 1; netstat -ltn | grep -q ":25 "'
act pc 180 '{"t":"action","step":"brute","action":"cred.bruteforce",
  "params":{"service":"smtp","users":["admin","hanako"],
            "passwords":["password","123456","Spring2026!"],"rate":5},
  "target":{"host":"web","addr":"'$WEB'"}}' >"$TMP/brute.json"
check "smtp bruteforce finds hanako's password after 6 tries" \
    expect "$TMP/brute.json" 'r["outcome"] == "succeeded" and ev["found"] == {"user": "hanako", "password": "Spring2026!"} and ev["attempts"] == 6 and ev["rejected"] == 5'
check "mini-smtpd logged the failed and the good AUTH" sh -c \
    "$CYRANGE exec $EX --team 1 --host web -- cat /var/log/mail.log > $TMP/mail.log;
     [ \$(grep -c 'auth failed mech=PLAIN' $TMP/mail.log) -eq 5 ] &&
     grep -q 'auth ok mech=PLAIN user=hanako from=$PC' $TMP/mail.log"
act pc 180 '{"t":"action","step":"ssh","action":"cred.bruteforce",
  "params":{"service":"ssh","users":["hanako"],
            "passwords":["letmein","Spring2026!"],"rate":2},
  "target":{"host":"web","addr":"'$WEB'"}}' >"$TMP/ssh.json"
check "ssh bruteforce (dbclient) finds hanako's password on the 2nd try" \
    expect "$TMP/ssh.json" 'r["outcome"] == "succeeded" and ev["attempts"] == 2 and ev["rejected"] == 1 and ev["found"]["password"] == "Spring2026!" and all(f["sport"] > 0 and f["src"] == "'$PC'" for f in r["flows"])'
check "dropbear logged exactly one bad password (one guess per attempt)" sh -c \
    "[ \$($CYRANGE exec $EX --team 1 --host web -- cat /var/log/sshd.log | grep -c \"Bad password attempt for 'hanako' from $PC\") -eq 1 ]"
act pc 120 '{"t":"action","step":"phish","action":"phish.deliver",
  "params":{"mailbox":"hanako@example.test","from":"hr@exarnple.test",
            "subject":"Revised bonus table","attachment":"bonus.xls.exe"},
  "target":{"host":"web","addr":"'$WEB'"},"seed":5}' >"$TMP/phish.json"
check "phish.deliver: 250 after DATA" \
    expect "$TMP/phish.json" 'r["outcome"] == "succeeded" and ev["smtp_reply"].startswith("250")'
check "the mail is in hanako's mailbox with its attachment" sh -c \
    "$CYRANGE exec $EX --team 1 --host web -- cat /var/mail/hanako > $TMP/mbox;
     grep -q '^Subject: Revised bonus table' $TMP/mbox &&
     grep -q 'filename=\"bonus.xls.exe\"' $TMP/mbox"

# --- exfiltration and flood --------------------------------------------------
act pc 120 '{"t":"action","step":"exfil","action":"exfil",
  "params":{"channel":"http","bytes":65536,"port":80},
  "target":{"host":"web","addr":"'$WEB'"}}' >"$TMP/exfil.json"
check "exfil over HTTP POSTs 65536 bytes and the server answers" \
    expect "$TMP/exfil.json" 'r["ok"] and ev["bytes_sent"] == 65536 and ev["status"] > 0'
act pc 60 '{"t":"action","step":"flood","action":"dos.flood",
  "params":{"kind":"udp","port":9,"rate":100,"duration":"2s"},
  "target":{"host":"web","addr":"'$WEB'"}}' >"$TMP/flood.json"
check "UDP flood stays within rate x duration (<= 200 packets)" \
    expect "$TMP/flood.json" 'r["ok"] and 0 < ev["packets_sent"] <= 200 and ev["duration_ms"] < 4000'

# --- C2 beacon -----------------------------------------------------------------
act pc 60 '{"t":"action","step":"beacon","action":"c2.beacon",
  "params":{"channel":"http","interval":"2s","count":50},
  "target":{"host":"web","addr":"'$WEB'"}}' >"$TMP/b0.json"
check "c2.beacon without an implant fails: no implant on this host" \
    expect "$TMP/b0.json" 'r["ok"] and r["outcome"] == "failed" and "no implant on this host" in r["detail"]'
check "an implant is planted on pc (as phish.open would)" gexec pc sh -c \
    'mkdir -p /tmp/.cache && cp /sbin/cyrange-agent /tmp/.cache/updater && chmod 755 /tmp/.cache/updater'
act pc 60 '{"t":"action","step":"beacon","action":"c2.beacon",
  "params":{"channel":"http","interval":"2s","count":50,"domain":"update.example.test"},
  "target":{"host":"web","addr":"'$WEB'"}}' >"$TMP/b1.json"
check "c2.beacon: the first beacon got an answer from the C2" \
    expect "$TMP/b1.json" 'r["outcome"] == "succeeded" and ev["implant_pid"] > 1 and r["flows"][0]["dport"] == 80'
check "ps on pc shows the implant as 'updater'" sh -c \
    "$CYRANGE exec $EX --team 1 --host pc -- ps | grep -v grep | grep -q updater"
sleep 3
check "web's access log has at least two beacons from pc" sh -c \
    "[ \$($CYRANGE exec $EX --team 1 --host web -- cat /var/log/httpd.log | grep -c '^$PC .*/beacon') -ge 2 ]"
act pc 30 '{"t":"action_stop","step":"beacon"}' >"$TMP/stop.json"
check "action_stop stops the implant" expect "$TMP/stop.json" 'r["ok"] and r["stopped"] == 1'
check "the implant is gone from pc" sh -c \
    "! $CYRANGE exec $EX --team 1 --host pc -- sh -c 'ps | grep -v grep | grep updater'"

# --- refusals -----------------------------------------------------------------
act pc 30 '{"t":"action","step":"x","action":"recon.portscan",
  "params":{"ports":"22"},"target":{"addr":"8.8.8.8"}}' >"$TMP/ref.json"
check "an action aimed outside 198.18.0.0/15 is refused" \
    expect "$TMP/ref.json" 'r["ok"] is False and "outside 198.18.0.0/15" in r["error"]'

# --- down ---------------------------------------------------------------------
check "down removes the exercise" $CYRANGE down "$EX"
check "nothing of the exercise remains" no_leftovers "$EX"
finish
