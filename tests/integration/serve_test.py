"""Integration: `cyrange serve` on real guests of two teams.

Accounts and sessions, team isolation through the API, findings and a
report acknowledged only once stored, live events, a console on a real
guest over the WebSocket; then SIGKILL of the orchestrator mid-exercise and
a restart that re-attaches to the running guests, keeps every acknowledged
write and resumes each team's timeline where it was; Ctrl-C removes the
range.  Prints "N passed, N failed"; the hypervisor missing is a failure.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from api_client import ApiError, Session, WebSocket  # noqa: E402
import testlib  # noqa: E402
from testlib import CYRANGE, cy, free_port, not_ok, ok, summary, wait  # noqa: E402

EX = "isv%d" % os.getpid()
SCN = "tests/integration/score.json"
proc = None
log_path = "/tmp/%s-serve.log" % EX
PORT = free_port()


def check(msg, fn):
    """A check here passes when fn returns None (only False fails)."""
    return testlib.check(msg, fn, none_passes=True)


def start_serve(extra=()):
    global proc
    logf = open(log_path, "a")
    proc = subprocess.Popen(CYRANGE + ["serve", SCN, "--name", EX, "--teams", "2", "--seed", "5",
                                       "--listen", "127.0.0.1:%d" % PORT, "--members", "1",
                                       "--timeout", "240"] + list(extra),
                            stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("serve exited with %d:\n%s" % (proc.returncode, open(log_path).read()[-3000:]))
        try:
            socket.create_connection(("127.0.0.1", PORT), timeout=1).close()
            if os.path.exists("/var/lib/cyrange/%s/control.sock" % EX):
                return True
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError("serve did not listen in time:\n" + open(log_path).read()[-3000:])


def set_password(name, pw):
    r = cy("users", "passwd", name, "--password-stdin", stdin=pw + "\n")
    if r.returncode != 0:
        raise RuntimeError(r.stderr)


def timeline(team):
    r = cy("timeline", EX, "--json")
    d = json.loads(r.stdout)
    return [t for t in d["teams"] if t["team"] == team][0]


def step_state(team, step):
    return [s for s in timeline(team)["steps"] if s["id"] == step][0]["state"]


def cleanup():
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
    cy("down", EX)
    subprocess.run(["rm", "-rf", "/var/lib/cyrange/records/" + EX, log_path])


def main():
    r = subprocess.run(["virsh", "-c", "qemu:///system", "version"], capture_output=True)
    if r.returncode != 0:
        not_ok("libvirtd answers on qemu:///system (run 'make deps'; never skipped)")
        return
    ok("libvirtd answers on qemu:///system")
    if not check("serve brings 2 teams up and listens", lambda: start_serve(["--hold"])):
        return
    text = open(log_path).read()
    check("the first start prints the generated accounts or says they exist",
          lambda: "accounts (new passwords" in text or "accounts exist already" in text)
    def accounts_table():
        t = open(log_path).read()
        if re.search(r"^  \S+ +instructor +- ", t, re.M) and \
                all(re.search(r"^  t0%d-1 +member +%d " % (n, n), t, re.M) for n in (1, 2)):
            return True
        i = t.find("accounts (")
        raise RuntimeError(t[i:i + 600] if i >= 0 else t[-1500:])
    check("the accounts table names an instructor and every team's members", accounts_table)
    check("the web UI's address is printed", lambda: ("http://127.0.0.1:%d/" % PORT) in text)
    for name, pw in (("instructor", "instructor-pass-1"), ("t01-1", "team-one-pass-1"),
                     ("t02-1", "team-two-pass-2")):
        check("password of %s set with `cyrange users passwd`" % name,
              lambda n=name, p=pw: set_password(n, p) is None)

    ins, t1, t2 = (Session("127.0.0.1", PORT) for _ in range(3))
    check("instructor logs in", lambda: ins.login("instructor", "instructor-pass-1"))
    check("team 1 member logs in", lambda: t1.login("t01-1", "team-one-pass-1"))
    check("team 2 member logs in", lambda: t2.login("t02-1", "team-two-pass-2"))
    check("a wrong password is refused with 401",
          lambda: Session("127.0.0.1", PORT).request("POST", "/api/login",
                                                     {"name": "t01-1", "password": "nope"})[0] == 401)
    check("without a session the API answers 401 JSON",
          lambda: Session("127.0.0.1", PORT).request("GET", "/api/exercise")[0] == 401)
    check("the web UI is served at /",
          lambda: Session("127.0.0.1", PORT).request("GET", "/", raw=True)[0] == 200)

    ex = check("GET /api/exercise names the scenario", lambda: t1.call("GET", "/api/exercise"))
    check("... and a member sees only its own team",
          lambda: [t["team"] for t in ex["teams"]] == [1])
    m = check("team 1's map lists its hosts with their state",
              lambda: t1.call("GET", "/api/teams/1/map"))
    check("... web is running with its address 198.18.1.10",
          lambda: any(h["name"] == "web" and any(a["address"] == "198.18.1.10" for a in h["addresses"])
                      for h in m["hosts"]))
    check("team 1's member cannot read team 2's map (403)",
          lambda: t1.request("GET", "/api/teams/2/map")[0] == 403)
    check("team 1's member cannot steer the exercise (403)",
          lambda: t1.request("POST", "/api/control", {"cmd": "start", "team": 0})[0] == 403)
    check("team 1's member cannot read the attack script (403)",
          lambda: t1.request("GET", "/api/timeline")[0] == 403)

    # Live events for team 1's member.
    ev = None
    try:
        ev = WebSocket("127.0.0.1", PORT, "/api/events", cookie=t1.cookie)
        ok("team 1's member subscribes to /api/events")
    except Exception as e:  # noqa: BLE001
        not_ok("team 1's member subscribes to /api/events", repr(e))

    check("the instructor starts every team", lambda: ins.call("POST", "/api/control",
                                                             {"cmd": "start", "team": 0})["ok"])
    check("team 1's beacon runs (after the phishing chain)",
          lambda: wait(lambda: step_state(1, "beacon") == "succeeded", 180))

    f = check("team 1 files a finding; 201 only once stored",
              lambda: t1.call("POST", "/api/teams/1/findings",
                              {"hosts": ["web"], "technique": "T1071.001",
                               "indicators": {"domains": ["update.exarnple.test"]},
                               "description": "web beacons to 198.18.0.66"}))
    check("a malformed finding gets 400 with the reason",
          lambda: "description" in json.dumps(t1.request("POST", "/api/teams/1/findings",
                                                         {"hosts": ["web"]})[1]))
    check("team 2's member cannot file for team 1 (403)",
          lambda: t2.request("POST", "/api/teams/1/findings",
                             {"hosts": ["web"], "description": "x"})[0] == 403)
    check("team 2 sees no finding of team 1",
          lambda: t2.request("GET", "/api/teams/1/findings")[0] == 403 and
          t2.call("GET", "/api/teams/2/findings") == [])
    if ev:
        def got_finding():
            while True:
                op, data = ev.recv()
                if op == 1:
                    e = json.loads(data)
                    if e.get("type") == "finding" and e.get("team") == 1:
                        return True
        check("team 1's member gets the finding event live", got_finding)
        ev.close()

    rep = check("team 1 writes a report draft (CYDER phases)",
                lambda: t1.call("POST", "/api/teams/1/reports",
                                {"title": "Beacon from web", "submit": False,
                                 "sections": {"detection": "Beacon seen in the capture",
                                              "response": "Blocked at fw",
                                              "reporting": "Told management",
                                              "recovery": "Reimaged web"}}))
    rid = rep and rep.get("id")
    check("... and submits it", lambda: t1.call("PUT", "/api/teams/1/reports/%s" % rid,
                                                {"base_version": 1, "title": "Beacon from web",
                                                 "submit": True,
                                                 "sections": {"detection": "Beacon seen in the capture at 10:02",
                                                              "response": "Blocked at fw",
                                                              "reporting": "Told management",
                                                              "recovery": "Reimaged web"}}))
    score = check("team 1's score shows the detection with its reason",
                  lambda: t1.call("GET", "/api/teams/1/score"))
    check("... the reason names the finding",
          lambda: any("finding #%d" % f["id"] in r for r in score["reasons"]))

    # The command line reaches serve through its API, with an instructor
    # session handed over in a root-only file, not through the socket.
    hand = "/var/lib/cyrange/%s/api.json" % EX

    def handed():
        wait(lambda: os.path.exists(hand), 20)
        st = os.stat(hand)
        return st.st_uid == 0 and (st.st_mode & 0o777) == 0o600
    check("serve hands the command line a session in a root-only api.json", handed)

    def cli_finding():
        r = cy("finding", "add", EX, "--team", "1", "--host", "web",
               "--description", "beacon seen from the command line")
        m = re.search(r"finding #(\d+) filed", r.stdout)
        return int(m.group(1)) if m else False

    def finding(fid):
        return [x for x in ins.call("GET", "/api/teams/1/findings") if x["id"] == fid][0]
    cid = check("`cyrange finding add` files a finding", cli_finding)
    check("... through the API: it is the instructor session's (by: instructor)",
          lambda: finding(cid).get("by") == "instructor")
    check("`cyrange finding label` relabels it through the API",
          lambda: cy("finding", "label", EX, str(cid), "benign").returncode == 0 and
          finding(cid).get("label") == "benign" and finding(cid).get("label_by") == "instructor")

    def clock(team):
        return [t for t in ins.call("GET", "/api/timeline")["teams"] if t["team"] == team][0]["clock"]
    check("`cyrange pause EX --team 2` pauses team 2 only",
          lambda: cy("pause", EX, "--team", "2").returncode == 0 and clock(2) == "paused" and
          clock(1) != "paused")
    check("`cyrange resume EX --team 2` resumes it",
          lambda: cy("resume", EX, "--team", "2").returncode == 0 and clock(2) != "paused")
    check("`cyrange skip` of an unknown step answers the API's error",
          lambda: "unknown or missing" in cy("skip", EX, "no-such-step").stderr)

    def cli_status():
        d = json.loads(cy("status", EX, "--json").stdout)
        g = [x for x in d if x.get("exercise") == EX][0]["guests"]
        return len(g) == 6 and all(x["state"] == "ready" for x in g)
    check("`cyrange status` lists every guest ready (GET /api/guests)", cli_status)
    check("`cyrange score --team 1 --json` answers with the graded axes",
          lambda: "reports" in json.loads(cy("score", EX, "--team", "1", "--json").stdout)[0]["axes"]
          if cy("score", EX, "--team", "1", "--json").returncode == 0 else False)

    check("the score over time has snapshots (GET /api/teams/1/scores/series)",
          lambda: wait(lambda: len(t1.call("GET", "/api/teams/1/scores/series")) >= 1, 40))

    # A console on team 1's web server, over the WebSocket.
    def console():
        ws = WebSocket("127.0.0.1", PORT, "/api/teams/1/hosts/web/console", cookie=t1.cookie)
        seen = b""
        ws.send(b"\r")
        end = time.time() + 30
        while b"login:" not in seen and time.time() < end:
            seen += ws.recv()[1]
        ws.send(b"alice\r")
        while b"assword" not in seen and time.time() < end:
            seen += ws.recv()[1]
        ws.send(b"Winter2026!\r")
        time.sleep(1)
        ws.send(b"echo cy-$((6*7))-ok\r")
        while b"cy-42-ok" not in seen and time.time() < end:
            seen += ws.recv()[1]
        ws.send(b"exit\r")   # the next viewer starts at the login prompt
        time.sleep(0.5)
        ws.close()
        return b"cy-42-ok" in seen
    check("team 1's member runs a command on web through the console WebSocket", console)
    check("team 2's member cannot open team 1's console",
          lambda: _ws_refused("/api/teams/1/hosts/web/console", t2.cookie))

    before = t1.call("GET", "/api/teams/1/findings")
    done_before = {s["id"]: s["state"] for s in timeline(1)["steps"]}

    # SIGKILL mid-exercise, then start again.
    proc.kill()
    proc.wait()
    ok("the orchestrator is killed with SIGKILL")
    check("its guests keep running", lambda: len([d for d in subprocess.run(
        ["virsh", "-c", "qemu:///system", "list", "--name"], capture_output=True,
        text=True).stdout.split() if d.startswith(EX + "-")]) == 6)
    check("serve starts again and re-attaches", lambda: start_serve())
    check("... it says it attached and resumed",
          lambda: wait(lambda: "attaching to its guests" in open(log_path).read() and
                       "resumed" in open(log_path).read(), 20))
    check("the session cookie still works after the restart",
          lambda: t1.call("GET", "/api/me")["user"]["name"] == "t01-1")
    check("every acknowledged finding is still there",
          lambda: [x["id"] for x in t1.call("GET", "/api/teams/1/findings")] ==
          [x["id"] for x in before])
    check("the report and its submitted version are still there",
          lambda: t1.call("GET", "/api/teams/1/reports/%s" % rid)["state"] == "submitted")
    check("steps finished before the crash stay finished (not run again)",
          lambda: all(timeline(1)["steps"][i]["state"] == st
                      for i, (sid, st) in enumerate(done_before.items())
                      if st in ("succeeded", "failed")))
    check("team 1's timeline is running again", lambda: timeline(1)["clock"] in ("running", "ended"))
    f2 = check("a finding filed after the restart gets the next id",
               lambda: t1.call("POST", "/api/teams/1/findings",
                               {"hosts": ["web"], "technique": "T1046",
                                "description": "scan from the internet"}))
    check("... greater than every earlier one", lambda: f2["id"] > max(x["id"] for x in before))
    check("the console works after the restart", console)

    check("the CLI works again after the restart (a new session handed over)",
          lambda: cy("timeline", EX).returncode == 0 and handed())

    proc.send_signal(signal.SIGINT)
    proc.wait(120)
    check("Ctrl-C stops serve and removes the range",
          lambda: subprocess.run(["virsh", "-c", "qemu:///system", "list", "--all", "--name"],
                                 capture_output=True, text=True).stdout.count(EX + "-") == 0)
    check("... and the command line's session file", lambda: not os.path.exists(hand))


def _ws_refused(path, cookie):
    try:
        WebSocket("127.0.0.1", PORT, path, cookie=cookie)
    except ApiError as e:
        return e.status == 403
    return False


if __name__ == "__main__":
    try:
        main()
    finally:
        cleanup()
    sys.exit(summary())
