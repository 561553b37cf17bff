# bench/bench.mk — benchmarks with figures and ratios.
#
#   make bench-validate     time `cyrange validate` on a generated scenario
#                           (5,000 hosts, 20,000 steps) against a plain JSON
#                           parse of the same bytes (python3's json module,
#                           and jq when installed), in the same invocation
#
# BENCH_HOSTS, BENCH_STEPS and BENCH_RUNS change the size and the number of
# timed runs; the goal is validate < BENCH_GOAL_S seconds (median).

BENCH_DIR    := $(BUILD)/bench
BENCH_HOSTS  ?= 5000
BENCH_STEPS  ?= 20000
BENCH_RUNS   ?= 7
BENCH_GOAL_S ?= 1
BENCH_FILE   := $(BENCH_DIR)/scenario-$(BENCH_HOSTS)h-$(BENCH_STEPS)s.json

$(BENCH_FILE): bench/gen_scenario.py
	@mkdir -p $(@D)
	python3 bench/gen_scenario.py --hosts $(BENCH_HOSTS) --steps $(BENCH_STEPS) -o $@

# The timing harness: each command runs BENCH_RUNS times after one warm-up
# run (page cache), wall clock per run; best and median are reported.
define BENCH_VALIDATE_PY
import os, shutil, statistics, subprocess, sys, time
cyrange, path, runs, goal = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])

def timed(argv, check_ok=None):
    out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if out.returncode != 0 or (check_ok and check_ok not in out.stdout.decode()):
        sys.exit("bench-validate: %s failed:\n%s" % (" ".join(argv), out.stdout.decode()[:2000]))
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)

size = os.path.getsize(path)
print("bench-validate: %s (%.1f MB), %d runs each" % (path, size / 1e6, runs))
rows = [("cyrange validate", timed(cyrange.split() + ["validate", path], "scenario OK"))]
rows.append(("python3 json.load", timed([sys.executable, "-c",
             "import json, sys; json.load(open(sys.argv[1], 'rb'))", path])))
if shutil.which("jq"):
    rows.append(("jq empty", timed(["jq", "empty", path])))
for name, (best, med) in rows:
    print("  %-18s best %7.3f s   median %7.3f s   %6.1f MB/s" % (name, best, med, size / 1e6 / med))
v = rows[0][1][1]
print("  validate/parse ratio: %.2f (median, vs python3 json.load)" % (v / rows[1][1][1]))
if len(rows) > 2:
    print("  validate/jq ratio:    %.2f (median, vs jq empty)" % (v / rows[2][1][1]))
print("  goal validate < %g s: %s" % (goal, "met" if v < goal else "NOT MET"))
endef
export BENCH_VALIDATE_PY

.PHONY: bench-validate

bench-validate: $(BUILD)/cyrange $(BENCH_FILE)
	@python3 -c "$$BENCH_VALIDATE_PY" $(BUILD)/cyrange $(BENCH_FILE) $(BENCH_RUNS) \
	    $(BENCH_GOAL_S)
