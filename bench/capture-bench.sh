#!/bin/sh
# Benchmark: the capture module (capbench: flow table + pcap files, the real
# configuration) against `tcpdump -w` on the same traffic in the same run.
# 60-byte frames (1,000 flows) are replayed by bench/pktgen into a veth pair
# whose other end is a port of the cybbench0 bridge; the capture listens on
# the bridge.  The generator runs on CPU 0 (the bridge's receive path runs
# in its softirq there too), the capturer on CPU 1.  Each tool is run REPS
# times per rate, alternating, and medians are reported.
# Goals (issue): 0 drops at >= 500 kpps; CPU per packet <= 1.3 x tcpdump.
#
# Environment: BUILD (default build), COUNT (frames per run, default
# 5,000,000), RATES (kpps, 0 = max; default "500 0"), REPS (default 3),
# BUF_KIB (ring size for both, default 32768).
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
COUNT=${COUNT:-5000000}
RATES=${RATES:-500 0}
REPS=${REPS:-3}
BUF_KIB=${BUF_KIB:-32768}
CAPBENCH=$BUILD/bench/capbench
PKTGEN=$BUILD/bench/pktgen
BR=cybbench0
PORT=${BR}a
PEER=${BR}b
OUT=$BUILD/bench/capture
RESULTS=$OUT.results
CAP_PID=

[ "$(id -u)" = 0 ] || { echo "bench-capture: needs root (creates a bridge)"; exit 1; }
command -v tcpdump >/dev/null || { echo "bench-capture: tcpdump not installed"; exit 1; }
[ -x "$CAPBENCH" ] && [ -x "$PKTGEN" ] || { echo "bench-capture: build $CAPBENCH and $PKTGEN first"; exit 1; }
[ "$(nproc)" -ge 2 ] || { echo "bench-capture: needs 2 CPUs"; exit 1; }

cleanup() {
    if [ -n "$CAP_PID" ]; then
        kill "$CAP_PID" 2>/dev/null || true
        wait "$CAP_PID" 2>/dev/null || true
    fi
    ip link del "$PORT" 2>/dev/null || true
    ip link del "$BR" 2>/dev/null || true
    rm -rf "$OUT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Our own devices only; a leftover from an interrupted run goes first.
ip link del "$PORT" 2>/dev/null || true
ip link del "$BR" 2>/dev/null || true
# No multicast snooping and no IPv6: the bridge and the veth ends stay
# silent, so every captured frame is the generator's.
ip link add "$BR" type bridge mcast_snooping 0
ip link add "$PORT" type veth peer name "$PEER"
for dev in "$BR" "$PORT" "$PEER"; do
    echo 1 >"/proc/sys/net/ipv6/conf/$dev/disable_ipv6"
done
ip link set "$PORT" master "$BR"
for dev in "$BR" "$PORT" "$PEER"; do ip link set "$dev" up; done
sleep 0.3

# CPU time of a process in ns: /proc/PID/schedstat (ns on the CPU, user
# and system), the same measurement for both tools.
cpu_ns() { cut -d' ' -f1 "/proc/$1/schedstat"; }

wait_for() { # file pattern
    i=0
    while ! grep -q "$2" "$1" 2>/dev/null; do
        i=$((i + 1))
        [ $i -le 100 ] || { echo "bench-capture: capturer did not start:"; cat "$1"; exit 1; }
        sleep 0.05
    done
}

run_one() { # tool rate rep
    rm -rf "$OUT"
    mkdir -p "$OUT"
    if [ "$1" = cyrange ]; then
        taskset -c 1 "$CAPBENCH" -i "$BR" -d "$OUT" -s 300 -B $((BUF_KIB * 1024)) \
            >"$OUT.log" 2>&1 &
        CAP_PID=$!
        wait_for "$OUT.log" "capturing on"
    else
        taskset -c 1 tcpdump -i "$BR" -s 65535 -B "$BUF_KIB" -n -w "$OUT/tcpdump.pcap" \
            >"$OUT.log" 2>&1 &
        CAP_PID=$!
        wait_for "$OUT.log" "listening on"
    fi
    sleep 0.3
    c0=$(cpu_ns "$CAP_PID")
    if [ "$2" = 0 ]; then
        taskset -c 0 "$PKTGEN" -i "$PEER" -n "$COUNT" -t 120 >"$OUT.gen" 2>&1
    else
        taskset -c 0 "$PKTGEN" -i "$PEER" -n "$COUNT" -t 120 -r "$2" >"$OUT.gen" 2>&1
    fi
    # Longer than the block timeouts (capture 100 ms, tcpdump 1 s): every
    # frame has been handed over and read before the capturer stops.
    sleep 1.3
    c1=$(cpu_ns "$CAP_PID")
    kill -INT "$CAP_PID"
    wait "$CAP_PID" || true
    CAP_PID=
    kpps=$(sed -n 's/.*: \([0-9.]*\) kpps.*/\1/p' "$OUT.gen")
    if [ "$1" = cyrange ]; then
        captured=$(sed -n 's/^capbench: packets=\([0-9]*\) .*/\1/p' "$OUT.log")
        dropped=$(sed -n 's/^capbench: .* drops=\([0-9]*\) .*/\1/p' "$OUT.log")
    else
        captured=$(sed -n 's/^\([0-9]*\) packets captured.*/\1/p' "$OUT.log")
        dropped=$(sed -n 's/^\([0-9]*\) packets dropped by kernel.*/\1/p' "$OUT.log")
    fi
    if [ -z "$kpps" ] || [ -z "$captured" ] || [ -z "$dropped" ]; then
        echo "bench-capture: $1 run failed:"
        cat "$OUT.gen" "$OUT.log"
        exit 1
    fi
    echo "$1 $2 $3 $kpps $captured $dropped $((c1 - c0))" >>"$RESULTS"
    printf '  %-8s rate %-4s run %s: %8s kpps sent, %9s captured, %6s dropped, %6.1f ns CPU/packet\n' \
        "$1" "$2" "$3" "$kpps" "$captured" "$dropped" \
        "$(python3 -c "print(($c1 - $c0) / max(1, $captured))")"
}

rm -f "$RESULTS"
echo "bench-capture: $COUNT frames of 60 bytes per run, 1000 flows, ring $BUF_KIB KiB for both,"
echo "  $REPS runs per tool and rate (0 = max); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for rate in $RATES; do
    rep=1
    while [ "$rep" -le "$REPS" ]; do
        run_one cyrange "$rate" "$rep"
        run_one tcpdump "$rate" "$rep"
        rep=$((rep + 1))
    done
done

python3 - "$RESULTS" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
by = {}
for tool, rate, rep, kpps, cap, drop, ns in rows:
    by.setdefault((rate, tool), []).append((float(kpps), int(cap), int(drop), int(ns)))
print("bench-capture: medians (load average after: %s)" % sys.argv[2])
print("  %-6s %-8s %10s %10s %9s %12s" % ("rate", "tool", "kpps sent", "captured", "dropped", "ns/packet"))
ratios, drops_ok, fast_enough = [], True, False
for rate in dict.fromkeys(r for r, _ in by):
    med = {}
    for tool in ("cyrange", "tcpdump"):
        runs = by.get((rate, tool), [])
        if not runs:
            continue
        per = [ns / max(1, cap) for _, cap, _, ns in runs]
        med[tool] = statistics.median(per)
        print("  %-6s %-8s %10.1f %10d %9d %12.1f" % (
            "max" if rate == "0" else rate, tool, statistics.median(r[0] for r in runs),
            statistics.median(r[1] for r in runs), max(r[2] for r in runs), med[tool]))
        if tool == "cyrange":
            drops_ok = drops_ok and all(r[2] == 0 for r in runs)
            fast_enough = fast_enough or min(r[0] for r in runs) >= 499.5
    if len(med) == 2:
        ratio = med["cyrange"] / med["tcpdump"]
        ratios.append(ratio)
        print("  %-6s ratio cyrange/tcpdump CPU per packet: %.2f" % (
            "max" if rate == "0" else rate, ratio))
print("  goal 0 drops at >= 500 kpps: %s" % ("met" if drops_ok and fast_enough else "NOT MET"))
print("  goal CPU per packet <= 1.3 x tcpdump: %s (worst ratio %.2f)" % (
    "met" if ratios and max(ratios) <= 1.3 else "NOT MET", max(ratios) if ratios else 0))
PY
