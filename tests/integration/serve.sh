#!/bin/sh
# Integration: `cyrange serve` on real guests — accounts, team isolation
# through the API, durable findings and reports, live events, a console over
# the WebSocket, SIGKILL and a restart that resumes (tests/integration/
# serve_test.py does the work).
set -u
cd "$(dirname "$0")/../.."
exec /usr/bin/python3 tests/integration/serve_test.py
