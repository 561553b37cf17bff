#!/bin/sh
# Benchmark (issue 4): with 12 guests running (4 teams x 3 hosts), the delay
# from a step's scheduled time to its first packet on the team's bridge.
# Each team's attacker scans one distinct port per step; tcpdump on every
# team's bridge (host clock) timestamps the first SYN to that port; the
# journal gives each step's dispatch time and how late it left its due time.
# Reference in the same run: the delay from sending a probe request to the
# agent directly to its first SYN, i.e. the agent channel's floor.
# Goal: p99 <= 50 ms.
set -eu
cd "$(dirname "$0")/.."
CYRANGE=./build/cyrange
TMP=$(mktemp -d)
EX="tlbench$$"
RUN_PID=""
DUMPS=""
cleanup() {
    for p in $DUMPS; do kill "$p" 2>/dev/null || true; done
    [ -n "$RUN_PID" ] && kill -INT "$RUN_PID" 2>/dev/null && wait "$RUN_PID" 2>/dev/null
    $CYRANGE down "$EX" >/dev/null 2>&1 || true
    rm -rf "$TMP" "/var/lib/cyrange/records/$EX"
}
trap cleanup EXIT INT TERM

STEPS=${BENCH_STEPS:-20}
python3 - "$TMP/scn.json" "$STEPS" <<'PY'
import json, sys
n = int(sys.argv[2])
steps = [{"id": f"s{i:02d}", "at": f"{20 + 3 * i}s", "actor": "attacker",
          "action": "recon.portscan", "target": "web",
          "params": {"ports": str(20000 + i), "mode": "connect", "rate": 1, "timeout": "500ms"}}
         for i in range(n)]
json.dump({"format": 1, "id": "tlbench", "title": "bench: scheduling delay",
           "level": "A", "duration": "10m", "speed": 1,
           "segments": [{"name": "lan", "cidr": "198.18.1.0/24", "role": "dmz"}],
           "hosts": [
               {"name": "attacker", "role": "attacker", "memory": "128M",
                "nics": [{"segment": "lan", "address": "198.18.1.66"}]},
               {"name": "fw", "role": "router", "memory": "128M",
                "nics": [{"segment": "lan", "address": "198.18.1.1"}]},
               {"name": "web", "role": "server", "memory": "128M",
                "nics": [{"segment": "lan", "address": "198.18.1.10"}]}],
           "timeline": steps}, open(sys.argv[1], "w"))
PY

$CYRANGE run "$TMP/scn.json" --name "$EX" --teams 4 --hold --seed 1 >"$TMP/run.log" 2>&1 &
RUN_PID=$!
i=0
while ! [ -S "/var/lib/cyrange/$EX/control.sock" ]; do
    i=$((i + 1))
    if [ $i -gt 600 ] || ! kill -0 "$RUN_PID" 2>/dev/null; then
        cat "$TMP/run.log"; exit 1
    fi
    sleep 0.5
done
for br in $($CYRANGE plan "$TMP/scn.json" --name "$EX" --teams 4 --json |
            python3 -c 'import json,sys; [print(n["bridge"]) for t in json.load(sys.stdin)["teams"] for n in t["networks"]]'); do
    tcpdump -i "$br" -n -tt -l -U 'tcp[tcpflags] & tcp-syn != 0 and tcp[tcpflags] & tcp-ack == 0' \
        >"$TMP/$br.txt" 2>/dev/null &
    DUMPS="$DUMPS $!"
done
sleep 2

# Reference: probe requests straight to the agent (relayed by the run).
for k in $(seq 10); do
    t=$(python3 -c 'import time; print(f"{time.time():.6f}")')
    $CYRANGE probe "$EX" --team 1 --host attacker --timeout 1 198.18.1.10 $((21000 + k)) >/dev/null 2>&1 || true
    echo "$((21000 + k)) $t" >>"$TMP/ref.txt"
done

$CYRANGE start "$EX" >/dev/null
end=$((20 + 3 * STEPS + 10))
sleep "$end"
for p in $DUMPS; do kill "$p" 2>/dev/null || true; done
DUMPS=""
python3 - "$TMP" "/var/lib/cyrange/records/$EX/journal.jsonl" <<'PY'
import datetime, glob, json, os, statistics, sys
tmp, journal = sys.argv[1], sys.argv[2]
def ts(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()
# first SYN per (bridge team, dport)
first = {}
for f in glob.glob(os.path.join(tmp, "cy*.txt")):
    br = os.path.basename(f)[:-4]     # cyXXXXXXtNNnS: hex has no "t"
    team = int(br[br.index("t", 2) + 1:br.index("t", 2) + 3])
    for line in open(f):
        parts = line.split()
        if len(parts) < 5 or ">" not in parts:
            continue
        t = float(parts[0])
        dst = parts[parts.index(">") + 1].rstrip(":")
        port = int(dst.rsplit(".", 1)[1])
        first.setdefault((team, port), t)
delays = []
for line in open(journal):
    e = json.loads(line)
    if e.get("kind") != "step_start" or "scheduled_ms" not in e:
        continue
    port = 20000 + int(e["step"][1:])
    sched = e["scheduled_ms"] / 1000.0
    if (e["team"], port) in first:
        delays.append((first[(e["team"], port)] - sched) * 1000)
ref = []
for line in open(os.path.join(tmp, "ref.txt")):
    port, t = line.split()
    if (1, int(port)) in first:
        ref.append((first[(1, int(port))] - float(t)) * 1000)
if not delays or not ref:
    print("timeline bench: no measurements (did the actions run?)")
    sys.exit(1)
delays.sort()
def pct(v, p):
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]
print(f"timeline bench: 12 guests running, {len(delays)} steps measured on the bridges")
print(f"  scheduled -> first packet   p50 {pct(delays, 50):7.1f} ms   p99 {pct(delays, 99):7.1f} ms   (goal p99 <= 50 ms)")
ref.sort()
print(f"  reference: probe request -> first packet (CLI + relay + agent)  p50 {pct(ref, 50):7.1f} ms")
print(f"  ratio p50 / reference p50   {pct(delays, 50) / pct(ref, 50):.2f}")
PY
