"""Integration: play every scenario of the library on real guests.

For each scenario: a copy with a higher speed (so the story plays in about
two minutes of wall time) is served for two teams with `cyrange serve
--hold`; the instructor starts it; team 1 is a scripted good team (a finding
for every step as soon as it lands, named by host and technique as a team
reads them off its captures and logs; an answer to every inject; a fix for
the outages the scenario causes; a full report) and team 2 stays passive.
The instructor grades the report and the answers through the API.  Then:
every step ran, the checks saw the impact, team 1 reaches the scenario's
threshold (written in its guide) and team 2 stays below it with no
detection.  Ctrl-C removes the range.  Prints "N passed, N failed"; the
hypervisor missing is a failure, never a skip.

Usage: scenario_play.py [SCENARIO.json ...]   (default: the five below)
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from api_client import Session  # noqa: E402
import testlib  # noqa: E402
from testlib import CYRANGE, cy, free_port, not_ok, ok, summary, wait  # noqa: E402

URI = os.environ.get("CYRANGE_URI", "qemu:///system")
# Wall seconds by which every step of the sped-up copy is due.
PLAY_S = float(os.environ.get("PLAY_S", "120"))

# Per scenario: team 1's pass mark (the same figure is in the scenario's
# instructor guide), the checks whose outage is the scenario's impact, those
# of them the good team must bring back, and
# what the good team does on its hosts once a step has landed and the team
# has seen its check go down: (step, host, shell command, check) — a restart
# of a stopped service, a restore from backup.
PLAYS = {
    "targeted-mail": {"threshold": 70, "impact": [], "fixes": []},
    "ddos-major-event": {
        "threshold": 65, "impact": ["www-from-internet", "partner-link"],
        "restored": ["partner-link"],
        "fixes": [("partner-fault", "pgw", "/etc/cyrange/start-services", "partner-link")]},
    "trading-intrusion": {"threshold": 70, "impact": [], "fixes": []},
    "ransomware-fileserver": {
        "threshold": 65, "impact": ["files-ftp", "docs-portal"],
        "restored": ["files-ftp", "docs-portal"],
        "fixes": [("stop-ftp", "files", "/etc/cyrange/start-services", "files-ftp"),
                  ("encrypt-portal", "files",
                   "cp -a /srv/backup/www/docs/. /srv/www/docs/ && "
                   "rm -f /srv/www/docs/*.locked /srv/www/docs/README-RESTORE-FILES.txt",
                   "docs-portal")]},
    "data-leak-sqli": {"threshold": 70, "impact": [], "fixes": []},
}
DEFAULT = ["scenarios/%s.json" % n for n in PLAYS]
TERMINAL = ("succeeded", "failed", "skipped", "not taken")
NOTICE_S = 90  # the longest the good team waits to see a check go down


def check(msg, fn):
    """A check here reports the tail of the traceback when fn raises."""
    return testlib.check(msg, fn, describe=testlib.traceback_tail)


class Play:
    """One scenario served, played and torn down."""

    def __init__(self, path, idx, tmp):
        self.path = path
        self.scn = json.load(open(path))
        self.sid = self.scn["id"]
        self.conf = PLAYS.get(self.sid, {"threshold": 50, "impact": [], "fixes": []})
        self.ex = "sp%d-%d" % (os.getpid() % 100000, idx)
        self.port = free_port()
        self.tmp = tmp
        self.log = os.path.join(tmp, self.ex + "-serve.log")
        self.proc = None
        self.steps = {s["id"]: s for s in self.scn.get("timeline", [])}
        self.filed = {}        # step id -> finding id (team 1)
        self.answered = set()  # inbox ids answered by team 1
        self.fixed = set()
        self.landed = {}       # step id -> when the good team saw it end

    # -- setup --------------------------------------------------------------
    def fast_copy(self):
        """A copy of the scenario whose every step is due within PLAY_S."""
        r = cy("plan", self.path, "--json")
        if r.returncode != 0:
            raise RuntimeError(r.stderr)
        plan = json.loads(r.stdout)
        latest = {}
        for st in plan["timeline"]:
            if st.get("offset_s") is None:
                continue
            base = latest.get(st.get("after"), 0.0) if st.get("after") else 0.0
            latest[st["id"]] = max(st["offset_s"], base) + st.get("jitter_s", 0.0)
        speed = max(float(self.scn.get("speed", 1)), max(latest.values()) / PLAY_S)
        self.speed = round(speed, 2) + 0.01
        copy = dict(self.scn)
        copy.pop("$schema", None)
        copy["speed"] = self.speed
        self.copy = os.path.join(self.tmp, self.sid + ".json")
        with open(self.copy, "w") as f:
            json.dump(copy, f, indent=1)
        r = cy("validate", self.copy)
        if r.returncode != 0:
            raise RuntimeError(r.stderr)
        return True

    def serve(self):
        logf = open(self.log, "a")
        self.proc = subprocess.Popen(
            CYRANGE + ["serve", self.copy, "--name", self.ex, "--teams", "2", "--seed", "7",
                       "--listen", "127.0.0.1:%d" % self.port, "--members", "1", "--hold",
                       "--timeout", "400"],
            stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.time() + 480
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("serve exited with %d:\n%s" %
                                   (self.proc.returncode, open(self.log).read()[-3000:]))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                if os.path.exists("/var/lib/cyrange/%s/control.sock" % self.ex):
                    return True
            except OSError:
                pass
            time.sleep(1)
        raise RuntimeError("serve did not listen in time:\n" + open(self.log).read()[-3000:])

    def passwords(self):
        for name, pw in (("instructor", "instructor-pass-1"), ("t01-1", "team-one-pass-1"),
                         ("t02-1", "team-two-pass-2")):
            r = cy("users", "passwd", name, "--password-stdin", stdin=pw + "\n")
            if r.returncode != 0:
                raise RuntimeError(r.stderr)
        self.ins = Session("127.0.0.1", self.port)
        self.t1 = Session("127.0.0.1", self.port)
        self.t2 = Session("127.0.0.1", self.port)
        self.ins.login("instructor", "instructor-pass-1")
        self.t1.login("t01-1", "team-one-pass-1")
        self.t2.login("t02-1", "team-two-pass-2")
        return True

    # -- the good team ---------------------------------------------------------
    def finding_for(self, st):
        """What a good team files for a landed step: the hosts involved, the
        technique and the indicators the step's own definition names."""
        d = self.steps[st["id"]]
        hosts = [h for h in (st.get("actor"), st.get("target")) if h]
        p = d.get("params", {})
        ind = {}
        if p.get("domain"):
            ind["domains"] = [p["domain"]]
        if p.get("user"):
            ind["accounts"] = [p["user"]]
        f = {"hosts": hosts, "technique": st.get("technique") or d.get("technique"),
             "description": "%s seen: %s" % (st["action"], d.get("description", st["id"])),
             "action": "reported to the incident lead; containment under way"}
        if ind:
            f["indicators"] = ind
        if f["technique"] is None:
            del f["technique"]
        return f

    def tick(self, tl):
        """One round of the good team: findings, inject answers, fixes."""
        for st in tl[1]["steps"]:
            sid = st["id"]
            if st["action"] == "inject.message" or sid in self.filed:
                continue
            if st["state"] in ("running", "succeeded"):
                tech = self.technique.get(sid)
                st = dict(st, technique=tech)
                self.filed[sid] = self.t1.call("POST", "/api/teams/1/findings",
                                               self.finding_for(st))["id"]
        for item in self.t1.call("GET", "/api/teams/1/inbox"):
            if item["id"] in self.answered:
                continue
            self.t1.call("POST", "/api/teams/1/inbox/%s/responses" % item["id"],
                         {"text": "Acknowledged (%s). Facts so far: the incident team is "
                                  "investigating; affected systems are isolated or being "
                                  "restored; next update in 30 minutes from the incident "
                                  "lead." % item["subject"]})
            self.answered.add(item["id"])
        for step, host, cmd, cid in self.conf["fixes"]:
            st = [s for s in tl[1]["steps"] if s["id"] == step]
            if step in self.fixed or not st or st[0]["state"] not in ("succeeded", "failed"):
                continue
            # A team repairs what it has seen broken: wait until the check
            # shows the outage (its interval is wall-clock, a fast team
            # could otherwise repair before any probe noticed), at most
            # NOTICE_S after the step.
            landed = self.landed.setdefault(step, time.time())
            if not self.check_down(cid) and time.time() - landed < NOTICE_S:
                continue
            r = cy("exec", self.ex, "--team", "1", "--host", host, "--", "sh", "-c", cmd,
                   timeout=90)
            self.fixed.add(step)
            if r.returncode != 0:
                not_ok("team 1 fixes %s on %s" % (step, host), r.stdout + r.stderr)
            else:
                ok("team 1 fixes %s on %s (%s)" % (step, host, cmd.split()[0]))

    def repaired(self, tl):
        """The good team has repaired every step that landed on it."""
        ended = {s["id"] for s in tl[1]["steps"] if s["state"] in ("succeeded", "failed")}
        return all(f[0] in self.fixed for f in self.conf["fixes"] if f[0] in ended)

    def check_down(self, cid):
        """Team 1's map shows check `cid` failing."""
        m = self.t1.call("GET", "/api/teams/1/map")
        return any(c["id"] == cid and c.get("up") is False for c in m.get("checks", []))

    def timeline(self):
        d = self.ins.call("GET", "/api/timeline")
        return {t["team"]: t for t in d["teams"]}

    def all_done(self, tl):
        for t in (1, 2):
            for st in tl[t]["steps"]:
                if st["state"] in TERMINAL or st["state"] == "on demand":
                    continue
                if st["state"] == "pending" and self.steps[st["id"]].get("on_demand"):
                    continue
                return False
        return True

    def leases(self):
        """Every DHCP host of both teams has its lease (a default route) as
        soon as serve is up: the range is ready only once each DHCP client's
        agent reports its address, so a step at the very start on such a
        host does not meet "Network is unreachable"."""
        for h in self.scn["hosts"]:
            if not any(n.get("dhcp") for n in h["nics"]):
                continue
            for team in (1, 2):
                r = cy("exec", self.ex, "--team", str(team), "--host", h["name"], "--",
                       "/usr/bin/ip", "-4", "route", "show", "default")
                if "default" not in r.stdout:
                    raise RuntimeError("t%02d %s has no default route yet: %s%s"
                                       % (team, h["name"], r.stdout, r.stderr))
        return True

    def play(self):
        r = cy("plan", self.copy, "--json")
        self.technique = {s["id"]: s.get("technique") for s in json.loads(r.stdout)["timeline"]}
        self.ins.call("POST", "/api/control", {"cmd": "start", "team": 0})
        end = time.time() + PLAY_S + 240
        while time.time() < end:
            tl = self.timeline()
            self.tick(tl)
            if self.all_done(tl) and self.repaired(tl):
                # Let the checks probe the restored services a few times.
                time.sleep(25)
                self.tick(self.timeline())
                return tl
            time.sleep(2)
        stuck = ["t%d %s %s" % (t, s["id"], s["state"]) for t in (1, 2)
                 for s in self.timeline()[t]["steps"] if s["state"] not in TERMINAL]
        raise RuntimeError("steps without a result: " + ", ".join(stuck))

    def report_and_grades(self):
        tmpl = self.ins.call("GET", "/api/exercise")["report_template"]["sections"]
        sections = {s["id"]: "Team 1's %s: see the findings, the timeline of events and "
                             "the measures taken for each affected host." % s["title"]
                    for s in tmpl}
        rep = self.t1.call("POST", "/api/teams/1/reports",
                           {"title": "Incident report: %s" % self.scn["title"],
                            "sections": sections, "submit": True})
        grades = {}
        for s in tmpl:
            for i, rb in enumerate(s.get("rubric") or []):
                grades["%s:%d" % (s["id"], i)] = rb["points"]
        self.ins.call("POST", "/api/teams/1/reports/%s/reviews" % rep["id"],
                      {"version": 1, "comments": [], "grades": grades, "decision": "accept"})
        n = 0
        for item in self.ins.call("GET", "/api/teams/1/inbox"):
            for resp in item["responses"]:
                self.ins.call("POST", "/api/responses/%s/grade" % resp["id"],
                              {"points": item["points"]})
                n += 1
        return n == len(self.answered) and n > 0

    # -- teardown --------------------------------------------------------------
    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(180)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        gone = self.leftovers() == []
        if not gone:
            cy("down", self.ex, timeout=300)
        subprocess.run(["rm", "-rf", "/var/lib/cyrange/records/" + self.ex])
        return gone

    def leftovers(self):
        out = []
        for what in (["list", "--all", "--name"], ["net-list", "--all", "--name"]):
            r = subprocess.run(["virsh", "-c", URI] + what, capture_output=True, text=True)
            out += [x for x in r.stdout.split() if x.startswith(self.ex + "-t")]
        if os.path.exists("/var/lib/cyrange/" + self.ex):
            out.append("/var/lib/cyrange/" + self.ex)
        return out


def score_checks(p, tl):
    sid = p.sid
    s1 = p.ins.call("GET", "/api/teams/1/score")
    s2 = p.ins.call("GET", "/api/teams/2/score")
    print("       %s: team 1 %.1f/%s, team 2 %.1f/%s (threshold %s)" %
          (sid, s1["total"], s1["max"], s2["total"], s2["max"], p.conf["threshold"]), flush=True)
    for t, s in ((1, s1), (2, s2)):
        for ax in ("detection", "availability", "reports", "injects"):
            print("         t%d %-12s %5.1f/%s" % (t, ax, s["axes"][ax]["points"],
                                                   s["axes"][ax]["max"]), flush=True)

    def ran(t):
        bad = ["%s %s %s" % (s["id"], s["state"], s.get("detail") or "")
               for s in tl[t]["steps"]
               if s["state"] not in ("succeeded", "not taken")
               and not (s["state"] in ("pending", "on demand") and p.steps[s["id"]].get("on_demand"))]
        if bad:
            raise RuntimeError("; ".join(bad))
        return True
    check("%s: every step of team 1 ran and succeeded" % sid, lambda: ran(1))
    check("%s: every step of team 2 ran and succeeded" % sid, lambda: ran(2))

    def outages(s, cid):
        for it in s["axes"]["availability"]["items"]:
            if it.get("check") == cid:
                return it.get("outages") or []
        raise RuntimeError("no availability item for check %s" % cid)
    for cid in p.conf["impact"]:
        check("%s: check %s saw an outage (team 2)" % (sid, cid), lambda c=cid: len(outages(s2, c)) > 0)
        check("%s: check %s saw an outage (team 1)" % (sid, cid), lambda c=cid: len(outages(s1, c)) > 0)
    for cid in p.conf.get("restored", []):
        check("%s: check %s saw an outage that team 1 restored" % (sid, cid),
              lambda c=cid: outages(s1, c) != [] and outages(s1, c)[-1]["end_ms"] is not None)
    check("%s: team 1 scores at least %s" % (sid, p.conf["threshold"]),
          lambda: s1["total"] >= p.conf["threshold"] or
          (_ for _ in ()).throw(RuntimeError(json.dumps(s1["reasons"], indent=0))))
    check("%s: team 2 stays below %s" % (sid, p.conf["threshold"]),
          lambda: s2["total"] < p.conf["threshold"])
    check("%s: team 2 has no detection points" % sid,
          lambda: s2["axes"]["detection"]["points"] == 0)
    check("%s: team 1 detected every landed step" % sid,
          lambda: all(x["detected"] for x in s1["steps"] if x.get("landed")) or
          (_ for _ in ()).throw(RuntimeError([x["step"] for x in s1["steps"] if not x["detected"]])))


def run_one(path, idx):
    tmp = tempfile.mkdtemp(prefix="cyscn-")
    p = None
    try:
        p = Play(path, idx, tmp)
        sid = p.sid
        if not check("%s: a faster copy validates" % sid, p.fast_copy):
            return
        print("       %s: speed x%s for the test (x%s in the file)" %
              (sid, p.speed, p.scn.get("speed", 1)), flush=True)
        if not check("%s: serve brings 2 teams up" % sid, p.serve):
            return
        if not check("%s: passwords set and everyone logs in" % sid, p.passwords):
            return
        check("%s: every DHCP host has its lease when the range is ready" % sid, p.leases)
        tl = check("%s: every step of both teams has a result" % sid, p.play)
        if tl is None:
            return
        check("%s: team 1 filed a finding for every landed step and answered every inject" % sid,
              lambda: len(p.filed) > 0 and len(p.answered) > 0)
        check("%s: the instructor grades the report and the answers" % sid, p.report_and_grades)
        score_checks(p, p.timeline())
    finally:
        if p is not None and p.proc is not None:
            check("%s: Ctrl-C stops serve and removes the range" % p.sid, p.stop)
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv):
    r = subprocess.run(["virsh", "-c", URI, "version"], capture_output=True)
    if r.returncode != 0:
        not_ok("libvirtd answers on %s (run 'make deps'; never skipped)" % URI)
        return
    ok("libvirtd answers on %s" % URI)
    for i, path in enumerate(argv or DEFAULT):
        t0 = time.time()
        run_one(path, i)
        print("       %s took %.0f s" % (path, time.time() - t0), flush=True)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    finally:
        rc = summary()
    sys.exit(rc)
