#!/bin/sh
# bench/http-bench.sh HTTPBENCH [SIZE] — req/s of httpd and of nginx serving
# the same SIZE-byte JSON body on 127.0.0.1, measured by the same wrk
# invocation, one after the other on the same cores.  Only processes this
# script starts are stopped, by their pid.
set -eu

bin=${1:?usage: http-bench.sh HTTPBENCH [SIZE]}
size=${2:-4096}
dur=${BENCH_HTTP_DURATION:-10}
conns=${BENCH_HTTP_CONNS:-64}
nginx=/usr/sbin/nginx

command -v wrk >/dev/null || { echo "bench-http: wrk is missing (make deps)" >&2; exit 1; }
[ -x "$nginx" ] || { echo "bench-http: $nginx is missing (make deps)" >&2; exit 1; }

tmp=$(mktemp -d /tmp/cyrange-httpbench-XXXXXX)
hpid=
npid=
cleanup() {
    [ -n "$hpid" ] && kill "$hpid" 2>/dev/null && wait "$hpid" 2>/dev/null
    [ -n "$npid" ] && kill "$npid" 2>/dev/null && wait "$npid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# Waits (at most 5 s) until 127.0.0.1:$1 accepts connections.
wait_port() {
    python3 - "$1" <<'PY'
import socket, sys, time
for _ in range(50):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit("port %s never opened" % sys.argv[1])
PY
}

# Fetches a URL's body into a file (keeps the check independent of wrk).
fetch() {
    python3 -c 'import sys, urllib.request; open(sys.argv[2], "wb").write(urllib.request.urlopen(sys.argv[1], timeout=5).read())' "$1" "$2"
}

run_wrk() { # name url
    load0=$(cut -d' ' -f1-3 /proc/loadavg)
    wrk -t2 -c"$conns" -d"${dur}s" --latency "$2" > "$tmp/wrk-$1.txt"
    load1=$(cut -d' ' -f1-3 /proc/loadavg)
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$tmp/wrk-$1.txt")
    p50=$(awk '$1 == "50%" {print $2}' "$tmp/wrk-$1.txt")
    p99=$(awk '$1 == "99%" {print $2}' "$tmp/wrk-$1.txt")
    errs=$(awk '/Non-2xx|Socket errors/ {print}' "$tmp/wrk-$1.txt" | tr '\n' ' ')
    printf '  %-7s %10s req/s   p50 %8s   p99 %8s   load %s -> %s %s\n' \
        "$1" "$rps" "$p50" "$p99" "$load0" "$load1" "$errs"
    eval "rps_$1=$rps"
}

mkdir -p "$tmp/www/api" "$tmp/logs"
chmod 755 "$tmp" "$tmp/www" "$tmp/www/api"

"$bin" --size "$size" --body-out "$tmp/www/api/scoreboard" > "$tmp/httpbench.out" &
hpid=$!
for _ in $(seq 50); do grep -q '^port ' "$tmp/httpbench.out" 2>/dev/null && break; sleep 0.1; done
hport=$(awk '/^port / {print $2}' "$tmp/httpbench.out")
[ -n "$hport" ] || { echo "bench-http: httpbench did not start" >&2; exit 1; }
chmod 644 "$tmp/www/api/scoreboard"

nport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
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
    }
}
CONF

echo "bench-http: GET /api/scoreboard, $size-byte JSON body, wrk -t2 -c$conns -d${dur}s, $(nproc) cores"
fetch "http://127.0.0.1:$hport/api/scoreboard" "$tmp/body-httpd"
run_wrk httpd "http://127.0.0.1:$hport/api/scoreboard"
kill "$hpid"; wait "$hpid" || true; hpid=

"$nginx" -c "$tmp/nginx.conf" -p "$tmp" -e "$tmp/logs/error.log" &
npid=$!
wait_port "$nport"
fetch "http://127.0.0.1:$nport/api/scoreboard" "$tmp/body-nginx"
cmp -s "$tmp/body-httpd" "$tmp/body-nginx" || { echo "bench-http: bodies differ" >&2; exit 1; }
run_wrk nginx "http://127.0.0.1:$nport/api/scoreboard"
kill "$npid"; wait "$npid" || true; npid=

awk -v a="$rps_httpd" -v b="$rps_nginx" 'BEGIN {
    r = a / b
    printf "  httpd/nginx ratio: %.2f (goal >= 0.5: %s)\n", r, (r >= 0.5 ? "met" : "NOT MET") }'
