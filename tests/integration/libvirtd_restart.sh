#!/bin/sh
# Integration: a running `cyrange serve` survives a restart of libvirtd.
#
# One team of tests/integration/score.json (3 guests) is served; libvirtd
# (the project's own daemon, started by scripts/libvirtd-start.sh) is stopped
# by the pid in /run/libvirtd.pid and started again.  Then: serve says its
# event connection is back, `cyrange status` works, a finding is filed
# through the API, a console opens over the WebSocket and runs a command,
# checks keep running; a guest destroyed with `virsh destroy` shows as
# stopped in GET /api/teams/1/map and in `cyrange status`, and `cyrange
# reset EX --team 1` brings it back.  Prints "N passed, N failed"; without
# libvirtd it fails (never skips).  The range is always torn down.
set -u
cd "$(dirname "$0")/../.."
exec /usr/bin/python3 - "$@" <<'PY'
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, "tests/integration")
from api_client import ApiError, Session, WebSocket  # noqa: E402
from testlib import CYRANGE, check, cy, failed, free_port, not_ok, ok, summary, wait  # noqa: E402

EX = "lvr%d" % os.getpid()
SCN = "tests/integration/score.json"
PIDFILE = "/run/libvirtd.pid"
proc = None
log_path = "/tmp/%s-serve.log" % EX


PORT = free_port()


def log():
    return open(log_path).read()


def start_serve():
    global proc
    logf = open(log_path, "a")
    proc = subprocess.Popen(CYRANGE + ["serve", SCN, "--name", EX, "--teams", "1", "--members", "1",
                                       "--listen", "127.0.0.1:%d" % PORT, "--timeout", "240",
                                       "--hold"],
                            stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def up():
        if proc.poll() is not None:
            raise RuntimeError("serve exited with %d:\n%s" % (proc.returncode, log()[-3000:]))
        socket.create_connection(("127.0.0.1", PORT), timeout=1).close()
        return os.path.exists("/var/lib/cyrange/%s/control.sock" % EX)
    return wait(up, 300)


def libvirtd_pid():
    try:
        pid = int(open(PIDFILE).read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def restart_libvirtd():
    pid = libvirtd_pid()
    if pid is None:
        raise RuntimeError("no running libvirtd in %s" % PIDFILE)
    with open("/proc/%d/comm" % pid) as f:
        if f.read().strip() != "libvirtd":
            raise RuntimeError("%s names pid %d, which is not libvirtd" % (PIDFILE, pid))
    os.kill(pid, signal.SIGTERM)
    wait(lambda: not os.path.exists("/proc/%d" % pid), 30, 0.2)
    r = subprocess.run(["scripts/libvirtd-start.sh"], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(r.stdout + r.stderr)
    return libvirtd_pid() not in (None, pid)


def host(sess, name):
    m = sess.call("GET", "/api/teams/1/map")
    return [h for h in m["hosts"] if h["name"] == name][0]


def probes(sess):
    m = sess.call("GET", "/api/teams/1/map")
    return sum(c.get("probes") or 0 for c in m["checks"])


def status_of(name):
    """The state `cyrange status` gives the team 1 guest `name`."""
    r = cy("status", EX, "--json")
    if r.returncode != 0:
        raise RuntimeError(r.stderr)
    for x in json.loads(r.stdout):
        if x.get("exercise") == EX:
            for g in x["guests"]:
                if g.get("host") == name and g.get("team") == 1:
                    return g.get("state")
    raise RuntimeError("no guest %s of %s in: %s" % (name, EX, r.stdout[:500]))


def console(sess):
    ws = WebSocket("127.0.0.1", PORT, "/api/teams/1/hosts/web/console", cookie=sess.cookie)
    seen = b""

    def recv():
        op, data = ws.recv()
        if op == 8:  # the server ended the console: say why
            code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 1005
            raise RuntimeError("console closed by the server (%d %s) after %r"
                               % (code, data[2:].decode(errors="replace"), seen[-200:]))
        return op, data
    ws.send(b"\r")
    end = time.time() + 40
    try:
        while b"login:" not in seen and b"$ " not in seen and time.time() < end:
            seen += recv()[1]
            if b"login:" not in seen:
                ws.send(b"\r")
        if b"login:" in seen:
            ws.send(b"alice\r")
            while b"assword" not in seen and time.time() < end:
                seen += recv()[1]
            ws.send(b"Winter2026!\r")
            time.sleep(1)
        ws.send(b"echo lv-$((6*7))-ok\r")
        while b"lv-42-ok" not in seen and time.time() < end:
            seen += recv()[1]
        ws.send(b"exit\r")
        time.sleep(0.5)
    finally:
        ws.close()
    return b"lv-42-ok" in seen


def ws_ends(ws, secs):
    """True once the server closes the WebSocket (close frame or EOF)."""
    ws.sock.settimeout(secs)
    end = time.time() + secs
    while time.time() < end:
        try:
            op, data = ws.recv()
        except socket.timeout:
            return False  # still open: the server never ended it
        except Exception:  # noqa: BLE001 - EOF or reset: it ended
            return True
        if op == 8:
            print("       held console closed: %r" % data[2:].decode(errors="replace"))
            return True
    return False


def cleanup():
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    # libvirtd must be left running even when the test failed half-way.
    if libvirtd_pid() is None:
        subprocess.run(["scripts/libvirtd-start.sh"], capture_output=True, timeout=60)
    cy("down", EX)
    subprocess.run(["rm", "-rf", "/var/lib/cyrange/records/" + EX])
    if failed() == 0 and os.path.exists(log_path):
        os.unlink(log_path)


def main():
    r = subprocess.run(["virsh", "-c", "qemu:///system", "version"], capture_output=True)
    if r.returncode != 0 or libvirtd_pid() is None:
        not_ok("libvirtd runs (pid in %s) and answers on qemu:///system "
               "(run 'make deps'; never skipped)" % PIDFILE)
        return
    ok("libvirtd runs and answers on qemu:///system")
    if not check("serve brings 1 team up and listens", start_serve):
        return
    for name, pw in (("instructor", "instructor-lvr-1"), ("t01-1", "team-one-lvr-1")):
        check("password of %s set" % name,
              lambda n=name, p=pw: cy("users", "passwd", n, "--password-stdin",
                                      stdin=p + "\n").returncode == 0)
    ins, t1 = Session("127.0.0.1", PORT), Session("127.0.0.1", PORT)
    check("instructor logs in", lambda: ins.login("instructor", "instructor-lvr-1"))
    check("team 1 member logs in", lambda: t1.login("t01-1", "team-one-lvr-1"))
    check("web is up before the restart",
          lambda: wait(lambda: host(ins, "web")["state"] in ("ready", "running"), 120))
    held = None
    try:
        held = WebSocket("127.0.0.1", PORT, "/api/teams/1/hosts/web/console", cookie=t1.cookie)
        held.send(b"\r")
        held.sock.settimeout(30)
        got = b""
        while b"login:" not in got and b"$ " not in got:  # the stream is really open
            op, data = held.recv()
            if op == 8:
                raise RuntimeError("closed: %r" % data[2:])
            got += data
        ok("a console is open on web before the restart (the guest answers on it)")
    except Exception as e:  # noqa: BLE001
        not_ok("a console is open on web before the restart (the guest answers on it)", repr(e))

    check("libvirtd is stopped (pid in %s) and started again" % PIDFILE, restart_libvirtd)
    check("serve noticed the lost event connection",
          lambda: wait(lambda: "libvirt event connection lost" in log(), 30))
    check("... and reconnected it",
          lambda: wait(lambda: "libvirt event connection back" in log(), 60))
    if held:
        check("the console open during the restart ended (the viewer can reconnect)",
              lambda: ws_ends(held, 30))
        held.close()
    check("serve is still running", lambda: proc.poll() is None)
    check("`cyrange status` still works and shows web ready",
          lambda: status_of("web") == "ready")
    check("a finding is filed via the API (201)",
          lambda: t1.call("POST", "/api/teams/1/findings",
                          {"hosts": ["web"], "technique": "T1046",
                           "description": "scan seen after the libvirtd restart"})["id"] > 0)
    check("a console opens via the WebSocket and runs a command", lambda: console(t1))
    n0 = probes(ins)
    check("checks keep running (probes %d and counting)" % n0,
          lambda: wait(lambda: probes(ins) > n0 + 2, 30))

    dom = "%s-t01-web" % EX
    check("virsh destroy %s" % dom,
          lambda: subprocess.run(["virsh", "-c", "qemu:///system", "destroy", dom],
                                 capture_output=True).returncode == 0)
    check("GET /api/teams/1/map shows web as stopped or crashed",
          lambda: wait(lambda: host(ins, "web")["state"] in ("stopped", "crashed"), 30))
    check("`cyrange status` shows web stopped or crashed",
          lambda: wait(lambda: status_of("web") in ("stopped", "crashed"), 30))
    check("`cyrange reset %s --team 1` is accepted" % EX,
          lambda: cy("reset", EX, "--team", "1", timeout=300).returncode == 0)
    check("web is back (ready) in the map",
          lambda: wait(lambda: host(ins, "web")["state"] == "ready", 240, 2))
    check("the console works on the rebuilt web", lambda: console(t1))

    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(120)
    except subprocess.TimeoutExpired:
        pass
    check("Ctrl-C stops serve and removes the range",
          lambda: subprocess.run(["virsh", "-c", "qemu:///system", "list", "--all", "--name"],
                                 capture_output=True, text=True).stdout.count(EX + "-") == 0)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001
        not_ok("unexpected error", repr(e))
    finally:
        cleanup()
    rc = summary()
    if rc and os.path.exists(log_path):
        print("serve's log: " + log_path)
    sys.exit(rc)
PY
