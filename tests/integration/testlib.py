"""Shared helpers of the Python integration tests (serve_test.py,
scenario_play.py and the Python parts of libvirtd_restart.sh,
agent_host_test.sh and e2e.sh), so that each test holds only its checks.

The tally: ok(), not_ok() and check() count the checks of this process and
print "ok   - MSG" or "FAIL - MSG" (then at most 15 detail lines, each as
"       | LINE"); summary() prints the "N passed, N failed" line that CI looks
for and returns the exit status (1 when anything failed); failed() is the
count of failures so far.  The same format as ok/not_ok/finish in lib.sh.

Also: free_port() (a free TCP port on 127.0.0.1), wait() (poll until a
function returns something true) and cy() (run the cyrange CLI named by
$CYRANGE, ./build/cyrange by default).  Standard library only; the HTTP and
WebSocket client is api_client.py.
"""
import os
import socket
import subprocess
import time
import traceback

CYRANGE = os.environ.get("CYRANGE", "./build/cyrange").split()

_passed = 0
_failed = 0


def ok(msg):
    global _passed
    _passed += 1
    print("ok   - " + msg, flush=True)


def not_ok(msg, detail=""):
    global _failed
    _failed += 1
    print("FAIL - " + msg, flush=True)
    for line in str(detail).splitlines()[-15:]:
        print("       | " + line, flush=True)


def traceback_tail(e, limit=1500):
    """The last `limit` characters of e's traceback (a check's detail)."""
    return "".join(traceback.format_exception(e))[-limit:]


def check(msg, fn, none_passes=False, describe=repr):
    """Runs fn() as the check `msg`: it fails when fn raises (the detail is
    describe(exception)) or returns False, or None unless none_passes.
    Returns fn's result, None when the check failed."""
    try:
        r = fn()
    except Exception as e:  # noqa: BLE001 - every failure is reported
        not_ok(msg, describe(e))
        return None
    if r is False or (r is None and not none_passes):
        not_ok(msg, "returned %r" % (r,))
        return None
    ok(msg)
    return r


def failed():
    return _failed


def summary():
    """Prints "N passed, N failed"; the exit status: 1 when a check failed."""
    print("%d passed, %d failed" % (_passed, _failed), flush=True)
    return 1 if _failed else 0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait(fn, secs, every=0.5):
    """Calls fn every `every` s until it returns something true, and returns
    that; after `secs` s raises RuntimeError with the last result or
    exception."""
    end = time.time() + secs
    last = None
    while time.time() < end:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - remembered for the timeout
            last = e
        time.sleep(every)
    raise RuntimeError("timed out after %g s; last: %r" % (secs, last))


def cy(*args, stdin=None, timeout=120):
    """Runs `cyrange ARGS...` (text, output captured)."""
    return subprocess.run(CYRANGE + list(args), input=stdin, capture_output=True, text=True,
                          timeout=timeout)
