#!/bin/sh
# Integration: every scenario of the library played on real guests for two
# teams through `cyrange serve` — a scripted good team and a passive one,
# graded by the instructor through the API; the scores must separate them
# (tests/integration/scenario_play.py does the work).  Arguments: scenario
# files (default: the five of scenarios/).  Never skipped: a missing
# hypervisor is a failure.
set -u
cd "$(dirname "$0")/../.."
exec /usr/bin/python3 tests/integration/scenario_play.py "$@"
