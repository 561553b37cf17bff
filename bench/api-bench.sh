#!/bin/sh
# bench/api-bench.sh [CYRANGE [APILOAD]] — the API of a real `cyrange serve`
# under load, beside nginx in the same run, and its durability under SIGKILL.
#
#   1. GET /api/scoreboard as the instructor, wrk -t2 -c64, beside nginx
#      serving a file with the same bytes (goal >= 0.5x).
#   2. POST /api/teams/1/reports at 500/s for 20 s (apiload, open loop:
#      latency from the scheduled send time), p50/p99 (goal p99 < 50 ms),
#      beside the same load against nginx answering `return 201`.
#   3. The same load again; serve is SIGKILLed after 5 s and restarted (it
#      re-attaches to its guests); every acknowledged report id must be
#      stored (stored may exceed acknowledged by the requests in flight).
#
# One team of tests/integration/score.json (3 guests), its own exercise name
# and a free port on 127.0.0.1.  Everything is torn down at the end, also on
# failure: serve gets Ctrl-C, `cyrange down` removes the exercise, temp
# files go.  Only processes this script starts are stopped, by their pid.
set -eu
cd "$(dirname "$0")/.."

cyrange=${1:-./build/cyrange}
apiload=${2:-./build/bench/apiload}
rate=${BENCH_API_RATE:-500}
dur=${BENCH_API_DURATION:-20}
conns=${BENCH_API_CONNS:-32}
wdur=${BENCH_HTTP_DURATION:-10}
wconns=${BENCH_HTTP_CONNS:-64}
crash_after=${BENCH_API_CRASH_AFTER:-5}
nginx=/usr/sbin/nginx
scn=tests/integration/score.json
ex=abench$$

for t in wrk python3 virsh; do
    command -v "$t" >/dev/null || { echo "bench-api: $t is missing (make deps)" >&2; exit 1; }
done
[ -x "$nginx" ] || { echo "bench-api: $nginx is missing (make deps)" >&2; exit 1; }
[ -x "$apiload" ] || { echo "bench-api: $apiload is missing (make bench-api builds it)" >&2; exit 1; }
virsh -c qemu:///system version >/dev/null 2>&1 ||
    { echo "bench-api: libvirtd does not answer on qemu:///system (make deps)" >&2; exit 1; }

tmp=$(mktemp -d /tmp/cyrange-apibench-XXXXXX)
spid=
npid=
lpid=
cleanup() {
    set +e
    [ -n "$lpid" ] && kill "$lpid" 2>/dev/null && wait "$lpid" 2>/dev/null
    [ -n "$npid" ] && kill "$npid" 2>/dev/null && wait "$npid" 2>/dev/null
    if [ -n "$spid" ] && kill -INT "$spid" 2>/dev/null; then
        i=0
        while kill -0 "$spid" 2>/dev/null && [ $i -lt 120 ]; do sleep 0.5; i=$((i + 1)); done
        kill -KILL "$spid" 2>/dev/null
        wait "$spid" 2>/dev/null
    fi
    "$cyrange" down "$ex" >/dev/null 2>&1
    rm -rf "/var/lib/cyrange/records/$ex" "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
nport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# Starts serve in the background (spid) and waits until it listens and its
# control socket exists (at most 300 s: the guests boot under TCG).
start_serve() {
    "$cyrange" serve "$scn" --name "$ex" --teams 1 --members 1 --hold \
        --listen "127.0.0.1:$port" --timeout 240 >> "$tmp/serve.log" 2>&1 < /dev/null &
    spid=$!
    i=0
    while :; do
        if ! kill -0 "$spid" 2>/dev/null; then
            echo "bench-api: serve exited:" >&2; tail -20 "$tmp/serve.log" >&2; spid=; exit 1
        fi
        if [ -S "/var/lib/cyrange/$ex/control.sock" ] &&
           python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$port" 2>/dev/null; then
            return 0
        fi
        i=$((i + 1))
        [ $i -lt 600 ] || { echo "bench-api: serve did not listen within 300 s" >&2; exit 1; }
        sleep 0.5
    done
}

# api NAME METHOD PATH [JSON] — one API call with the session saved in
# $tmp/NAME.session ("cookie csrf"); prints the body; fails on non-2xx.
api() {
    python3 - "$port" "$tmp/$1.session" "$2" "$3" "${4:-}" <<'PY'
import http.client, json, sys
port, sess, method, path, body = sys.argv[1:6]
cookie, csrf = open(sess).read().split()
c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=60)
h = {"Cookie": cookie, "X-CSRF-Token": csrf}
if body:
    h["Content-Type"] = "application/json"
c.request(method, path, body=body or None, headers=h)
r = c.getresponse()
data = r.read()
if r.status // 100 != 2:
    sys.exit("bench-api: %s %s: HTTP %d %s" % (method, path, r.status, data[:300]))
sys.stdout.buffer.write(data)
PY
}

# login NAME PASSWORD — saves "cookie csrf" to $tmp/NAME.session.
login() {
    python3 - "$port" "$1" "$2" "$tmp/$1.session" <<'PY'
import http.client, json, sys
port, name, pw, out = sys.argv[1:5]
c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=30)
c.request("POST", "/api/login", body=json.dumps({"name": name, "password": pw}),
          headers={"Content-Type": "application/json"})
r = c.getresponse()
doc = json.loads(r.read() or b"null")
if r.status != 200:
    sys.exit("bench-api: login %s: HTTP %d %s" % (name, r.status, doc))
cookie = r.getheader("Set-Cookie").split(";")[0]
open(out, "w").write("%s %s\n" % (cookie, doc["csrf"]))
PY
}

result() { # file key
    sed -n "s/^RESULT .*[ ]$2=\([^ ]*\).*/\1/p" "$1"
}

echo "bench-api: cyrange serve of 1 team ($scn), exercise $ex, 127.0.0.1:$port, $(nproc) cores"
t_up=$(date +%s)
start_serve
echo "  serve is up in $(( $(date +%s) - t_up )) s"
printf 'instructor-bench-1\n' | "$cyrange" users passwd instructor --password-stdin >/dev/null
printf 'team-one-bench-1\n' | "$cyrange" users passwd t01-1 --password-stdin >/dev/null
login instructor instructor-bench-1
login t01-1 team-one-bench-1
read -r icookie icsrf < "$tmp/instructor.session"
read -r tcookie tcsrf < "$tmp/t01-1.session"

# ---- 1. GET /api/scoreboard beside nginx --------------------------------
mkdir -p "$tmp/www/api" "$tmp/logs"
chmod 755 "$tmp" "$tmp/www" "$tmp/www/api"
api instructor GET /api/scoreboard > "$tmp/www/api/scoreboard"
chmod 644 "$tmp/www/api/scoreboard"
size=$(wc -c < "$tmp/www/api/scoreboard")
cat > "$tmp/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $tmp/body;
    proxy_temp_path $tmp/proxy;
    fastcgi_temp_path $tmp/fastcgi;
    uwsgi_temp_path $tmp/uwsgi;
    scgi_temp_path $tmp/scgi;
    server {
        listen 127.0.0.1:$nport;
        root $tmp/www;
        location = /api/scoreboard { default_type application/json; }
        location = /api/teams/1/reports {
            default_type application/json;
            return 201 '{"id":1,"version":1,"state":"draft"}';
        }
    }
}
CONF
"$nginx" -c "$tmp/nginx.conf" -p "$tmp" -e "$tmp/logs/error.log" &
npid=$!
python3 - "$nport" <<'PY'
import socket, sys, time
for _ in range(50):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit("bench-api: nginx never listened")
PY

run_wrk() { # name url [header]
    load0=$(cut -d' ' -f1-3 /proc/loadavg)
    if [ -n "${3:-}" ]; then
        wrk -t2 -c"$wconns" -d"${wdur}s" --latency -H "$3" "$2" > "$tmp/wrk-$1.txt"
    else
        wrk -t2 -c"$wconns" -d"${wdur}s" --latency "$2" > "$tmp/wrk-$1.txt"
    fi
    load1=$(cut -d' ' -f1-3 /proc/loadavg)
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$tmp/wrk-$1.txt")
    p50=$(awk '$1 == "50%" {print $2}' "$tmp/wrk-$1.txt")
    p99=$(awk '$1 == "99%" {print $2}' "$tmp/wrk-$1.txt")
    errs=$(awk '/Non-2xx|Socket errors/ {print}' "$tmp/wrk-$1.txt" | tr '\n' ' ')
    printf '  %-7s %10s req/s   p50 %8s   p99 %8s   load %s -> %s %s\n' \
        "$1" "$rps" "$p50" "$p99" "$load0" "$load1" "$errs"
    eval "rps_$1=$rps"
}

echo "GET /api/scoreboard as the instructor ($size bytes), wrk -t2 -c$wconns -d${wdur}s:"
curl_body=$(python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "http://127.0.0.1:$nport/api/scoreboard")
[ "$curl_body" = "$(cat "$tmp/www/api/scoreboard")" ] ||
    { echo "bench-api: nginx serves other bytes" >&2; exit 1; }
run_wrk serve "http://127.0.0.1:$port/api/scoreboard" "Cookie: $icookie"
grep -q Non-2xx "$tmp/wrk-serve.txt" && { echo "bench-api: serve answered non-2xx to wrk" >&2; exit 1; }
run_wrk nginx "http://127.0.0.1:$nport/api/scoreboard"
awk -v a="$rps_serve" -v b="$rps_nginx" 'BEGIN {
    r = a / b
    printf "  serve/nginx ratio: %.2f (goal >= 0.5: %s)\n", r, (r >= 0.5 ? "met" : "NOT MET") }'

# ---- 2. POST reports at a fixed rate, beside nginx -------------------------
echo "POST /api/teams/1/reports as team 1's member at $rate/s for ${dur}s, $conns connections (open loop):"
"$apiload" --port "$port" --rate "$rate" --duration "$dur" --conns "$conns" \
    --cookie "$tcookie" --csrf "$tcsrf" --ids-out "$tmp/ids-steady.txt" > "$tmp/load-serve.txt"
sed 's/^/  serve: /' "$tmp/load-serve.txt" | grep -v RESULT
"$apiload" --port "$nport" --rate "$rate" --duration "$dur" --conns "$conns" \
    > "$tmp/load-nginx.txt"
sed 's/^/  nginx: /' "$tmp/load-nginx.txt" | grep -v RESULT
kill "$npid"; wait "$npid" || true; npid=
python3 - "$tmp/load-serve.txt" "$tmp/load-nginx.txt" <<'PY'
import sys
def res(p):
    line = [l for l in open(p) if l.startswith("RESULT ")][0]
    return {k: float(v) for k, v in (f.split("=") for f in line.split()[1:])}
s, n = res(sys.argv[1]), res(sys.argv[2])
ok = s["p99_ms"] < 50 and s["failed"] == 0 and s["unsent"] == 0 and s["acked"] == s["scheduled"]
print("  serve p50 %.2f ms, p99 %.2f ms (nginx p50 %.2f ms, p99 %.2f ms; p99 ratio serve/nginx %.1f)"
      % (s["p50_ms"], s["p99_ms"], n["p50_ms"], n["p99_ms"], s["p99_ms"] / max(n["p99_ms"], 1e-3)))
print("  serve acked %d of %d at %.0f/s; nginx acked %d of %d"
      % (s["acked"], s["scheduled"], s["rate"], n["acked"], n["scheduled"]))
print("  goal p99 < 50 ms with every request acknowledged: %s" % ("met" if ok else "NOT MET"))
PY

# ---- 3. SIGKILL under load, restart, acknowledged == stored ----------------
api instructor GET /api/teams/1/reports > "$tmp/before.json"
crash_dur=$((crash_after + 5))
echo "POST at $rate/s for ${crash_dur}s; SIGKILL of serve after ${crash_after}s; restart:"
"$apiload" --port "$port" --rate "$rate" --duration "$crash_dur" --conns "$conns" --drain 2 \
    --cookie "$tcookie" --csrf "$tcsrf" --ids-out "$tmp/ids-crash.txt" > "$tmp/load-crash.txt" &
lpid=$!
sleep "$crash_after"
kill -KILL "$spid"
wait "$spid" 2>/dev/null || true
spid=
wait "$lpid" || true
lpid=
sed 's/^/  /' "$tmp/load-crash.txt" | grep -v RESULT
t_up=$(date +%s)
start_serve
echo "  serve restarted and re-attached in $(( $(date +%s) - t_up )) s"
api instructor GET /api/teams/1/reports > "$tmp/after.json"
python3 - "$tmp/before.json" "$tmp/after.json" "$tmp/ids-crash.txt" "$tmp/ids-steady.txt" <<'PY'
import json, sys
before = {r["id"] for r in json.load(open(sys.argv[1]))}
after = {r["id"] for r in json.load(open(sys.argv[2]))}
acked = [int(l) for l in open(sys.argv[3]) if l.strip()]
steady = [int(l) for l in open(sys.argv[4]) if l.strip()]
new = after - before
lost = [i for i in acked if i not in after]
lost_steady = [i for i in steady if i not in after]
print("  acknowledged during the crash run: %d; stored from that run: %d (in flight: %d)"
      % (len(acked), len(new), len(new) - len(acked)))
print("  acknowledged but not stored: %d (crash run), %d (steady run)" % (len(lost), len(lost_steady)))
ok = len(acked) > 0 and not lost and not lost_steady and set(acked) <= new
print("  goal every acknowledged report stored after SIGKILL: %s" % ("met" if ok else "NOT MET"))
sys.exit(0 if ok else 1)
PY
