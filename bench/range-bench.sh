#!/bin/sh
# Benchmark: 4 teams x 3 hosts (12 TCG guests) from `cyrange up` until every
# agent is ready, beside the ideal (one guest's boot-to-ready time x 12 /
# cores, measured in this same run), `down` time and the orchestrator's peak
# RSS.  Goals (issue 3): up <= 60 s, ratio <= 1.3, down <= 10 s.
set -eu
cd "$(dirname "$0")/.."
CYRANGE=./build/cyrange
TMP=$(mktemp -d)
EX1="bench1x$$"
EX12="bench12x$$"
trap '$CYRANGE down $EX1 >/dev/null 2>&1; $CYRANGE down $EX12 >/dev/null 2>&1; rm -rf "$TMP"' EXIT INT TERM

# One guest alone, the reference run.
python3 - "$TMP/one.json" <<'PY'
import json, sys
json.dump({"format": 1, "id": "benchone", "title": "bench: one guest", "level": "A",
           "duration": "10m", "segments": [{"name": "lan", "cidr": "198.18.1.0/24", "role": "internal"}],
           "hosts": [{"name": "h1", "role": "server", "memory": "128M",
                      "nics": [{"segment": "lan", "address": "198.18.1.10"}]}]},
          open(sys.argv[1], "w"))
PY
# The issue's shape: 4 teams x 3 hosts (router, server, workstation).
python3 - "$TMP/three.json" <<'PY'
import json, sys
json.dump({"format": 1, "id": "benchthree", "title": "bench: three hosts", "level": "A",
           "duration": "10m",
           "segments": [{"name": "dmz", "cidr": "198.18.1.0/24", "role": "dmz"},
                        {"name": "office", "cidr": "198.18.2.0/24", "role": "office"}],
           "hosts": [
               {"name": "fw", "role": "router", "memory": "128M",
                "nics": [{"segment": "dmz", "address": "198.18.1.1"},
                         {"segment": "office", "address": "198.18.2.1"}]},
               {"name": "web", "role": "server", "memory": "128M", "gateway": "198.18.1.1",
                "nics": [{"segment": "dmz", "address": "198.18.1.10"}]},
               {"name": "pc", "role": "workstation", "memory": "128M", "gateway": "198.18.2.1",
                "nics": [{"segment": "office", "address": "198.18.2.50"}]}]},
          open(sys.argv[1], "w"))
PY
secs() { python3 -c 'import sys,time; print(f"{time.monotonic():.3f}")'; }

t0=$(secs)
/usr/bin/time -f "%M" -o "$TMP/rss1" $CYRANGE up "$TMP/one.json" --name "$EX1" --teams 1 >/dev/null
t1=$(secs)
$CYRANGE down "$EX1" >/dev/null
one=$(python3 -c "print(round($t1 - $t0, 2))")

t0=$(secs)
/usr/bin/time -f "%M" -o "$TMP/rss12" $CYRANGE up "$TMP/three.json" --name "$EX12" --teams 4 >"$TMP/up12.log" 2>&1 || {
    cat "$TMP/up12.log"; exit 1; }
t1=$(secs)
up=$(python3 -c "print(round($t1 - $t0, 2))")
guests=$(grep -c ' ready (' "$TMP/up12.log" || true)
t0=$(secs)
$CYRANGE down "$EX12" >/dev/null
t1=$(secs)
down=$(python3 -c "print(round($t1 - $t0, 2))")
cores=$(nproc)
python3 - "$one" "$up" "$down" "$guests" "$cores" "$(cat "$TMP/rss1")" "$(cat "$TMP/rss12")" <<'PY'
import sys
one, up, down = map(float, sys.argv[1:4])
guests, cores, rss1, rss12 = map(int, sys.argv[4:8])
ideal = one * guests / cores
print(f"range bench: {guests} guests ({guests // 4 if guests else 0} per team x 4 teams), {cores} cores, TCG")
print(f"  reference: 1 guest up to agent ready      {one:7.2f} s")
print(f"  up: {guests} guests to every agent ready     {up:7.2f} s   (goal <= 60 s)")
print(f"  ideal (1 guest x {guests} / {cores} cores)          {ideal:7.2f} s")
print(f"  ratio up / ideal                          {up / ideal:7.2f}     (goal <= 1.3)")
print(f"  down                                      {down:7.2f} s   (goal <= 10 s)")
print(f"  orchestrator peak RSS: 1 guest {rss1} KiB, {guests} guests {rss12} KiB")
PY
