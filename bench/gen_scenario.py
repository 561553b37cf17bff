#!/usr/bin/env python3
"""Generate a large, valid cyrange scenario (format 1) for benchmarks.

    bench/gen_scenario.py [--hosts 5000] [--steps 20000] [--seed 1] [-o FILE]

The output is deterministic: the same arguments always give the same bytes.
It exercises every part of the validator at scale: many /22 segments, DHCP
pools, static and DHCP NICs, services, accounts and files, every action type
with valid parameters, `after` chains with jitter, conditional steps with
on-demand `otherwise` branches, checks of all types, scoring and a report
template.  Standard library only.
"""

import argparse
import ipaddress
import json
import random
import sys

HOUR = 3600
DURATION_S = 7 * 24 * HOUR          # the longest scenario the format allows
HOSTS_PER_SEGMENT = 500             # of the 1022 addresses of a /22
SEGMENT_PREFIX = 22
FIRST_LAN = ipaddress.IPv4Address("198.18.4.0")


def lan_net(i):
    base = int(FIRST_LAN) + i * (1 << (32 - SEGMENT_PREFIX))
    return ipaddress.IPv4Network((base, SEGMENT_PREFIX))


def addr(net, offset):
    return str(net.network_address + offset)


def dur(seconds):
    """Seconds as a duration string in the scenario's own spelling."""
    if seconds == 0:
        return "0s"
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out += "%d%s" % (seconds // size, unit)
            seconds %= size
    return out


def action_step(rng, kind, mailboxes):
    """(action, needs_target, params) for one step of the given kind."""
    if kind == "recon.portscan":
        lo = rng.randrange(1, 60000)
        return kind, True, {"ports": "22,80,443,%d-%d" % (lo, lo + rng.randrange(1, 500)),
                            "mode": rng.choice(["connect", "syn"]),
                            "rate": rng.randrange(1, 1001), "timeout": "%dms" % rng.randrange(100, 10001)}
    if kind == "cred.bruteforce":
        return kind, True, {"service": rng.choice(["ssh", "http-basic", "ftp", "smtp"]),
                            "users": ["admin", "root", "user%d" % rng.randrange(100)],
                            "passwords": ["pw%d" % i for i in range(rng.randrange(1, 20))],
                            "attempts": rng.randrange(1, 1001), "rate": rng.randrange(1, 51),
                            "path": "/login"}
    if kind == "web.exploit":
        return kind, True, {"kind": rng.choice(["sqli", "traversal", "cmdi"]),
                            "path": "/app/%d" % rng.randrange(1000), "port": 80,
                            "method": rng.choice(["GET", "POST"]), "requests": rng.randrange(1, 101)}
    if kind == "phish.deliver":
        return kind, True, {"mailbox": rng.choice(mailboxes), "from": "hr@evil.test",
                            "subject": "Invoice %d" % rng.randrange(10000),
                            "attachment": "invoice.pdf.exe"}
    if kind == "phish.open":
        return kind, False, {"user": "user", "subject": "Invoice"}
    if kind == "c2.beacon":
        return kind, True, {"channel": rng.choice(["http", "dns"]),
                            "interval": "%ds" % rng.randrange(1, 3601),
                            "jitter": "%ds" % rng.randrange(0, 60), "duration": "%dm" % rng.randrange(1, 480)}
    if kind == "tool.transfer":
        return kind, False, {"path": "/tmp/t%d" % rng.randrange(1000), "bytes": rng.randrange(1, 10485761)}
    if kind == "lateral.move":
        return kind, True, {"method": "ssh", "user": "user", "password": "Secret-%d" % rng.randrange(100),
                            "implant": rng.random() < 0.5}
    if kind == "persistence":
        return kind, None, {"kind": rng.choice(["cron", "account"]), "name": "svc%d" % rng.randrange(100)}
    if kind == "exfil":
        return kind, True, {"channel": rng.choice(["http", "dns"]), "bytes": rng.randrange(1, 10485761),
                            "source": "/srv/share"}
    if kind == "dos.flood":
        return kind, True, {"kind": rng.choice(["syn", "udp", "http"]), "port": rng.randrange(1, 65536),
                            "rate": rng.randrange(1, 5001), "duration": "%ds" % rng.randrange(1, 601)}
    if kind == "impact.encrypt":
        return kind, None, {"path": "/srv/share", "max_files": rng.randrange(1, 10001)}
    if kind == "impact.service_stop":
        return kind, None, {"service": "http"}
    if kind == "impact.deface":
        return kind, None, {"path": "/var/www/index.html", "content": "owned"}
    raise ValueError(kind)


ATTACK_KINDS = ["recon.portscan", "cred.bruteforce", "web.exploit", "phish.deliver",
                "phish.open", "c2.beacon", "tool.transfer", "lateral.move", "persistence",
                "exfil", "dos.flood", "impact.encrypt", "impact.service_stop",
                "impact.deface"]


def generate(n_hosts, n_steps, seed):
    rng = random.Random(seed)
    n_lans = max(1, -(-(n_hosts - 2) // HOSTS_PER_SEGMENT))
    if n_lans > 100:
        raise SystemExit("gen_scenario: at most %d hosts" % (100 * HOSTS_PER_SEGMENT + 2))

    segments = [{"name": "internet", "cidr": "198.18.0.0/24", "role": "internet",
                 "description": "attacker side"}]
    gw_nics = []
    for i in range(n_lans):
        net = lan_net(i)
        seg = {"name": "lan%d" % i, "cidr": str(net),
               "role": ["office", "internal", "server", "dmz"][i % 4]}
        # The gateway has at most 8 NICs: it serves DHCP on the first seven.
        if i < 7:
            seg["dhcp"] = {"server": "gw", "range": [addr(net, 3 * 256 + 10), addr(net, 3 * 256 + 250)]}
            gw_nics.append({"segment": seg["name"], "address": addr(net, 1)})
        segments.append(seg)

    hosts = [
        {"name": "attacker", "role": "attacker", "memory": "256M",
         "nics": [{"segment": "internet", "address": "198.18.0.66"}],
         "services": [{"name": "http", "port": 80}, {"name": "dns", "proto": "udp", "port": 53}]},
        {"name": "gw", "role": "router", "vcpus": 2, "memory": "512M",
         "nics": [{"segment": "internet", "address": "198.18.0.1"}] + gw_nics,
         "services": [{"name": "dhcp", "proto": "udp", "port": 67}, {"name": "proxy", "port": 3128}]},
    ]
    names = []
    mailboxes = []
    for k in range(n_hosts - 2):
        lan = k % n_lans
        net = lan_net(lan)
        name = "h%05d" % k
        role = "server" if k % 5 == 0 else "workstation"
        h = {"name": name, "role": role}
        if role == "workstation" and lan < 7 and k % 3 == 0:
            h["nics"] = [{"segment": "lan%d" % lan, "dhcp": True}]
        else:
            h["nics"] = [{"segment": "lan%d" % lan, "address": addr(net, 2 + k // n_lans)}]
            if lan < 7:
                h["gateway"] = addr(net, 1)
        if role == "server":
            h["memory"] = rng.choice(["128M", "256M", "1G", 512])
            h["services"] = [{"name": "ssh", "port": 22}, {"name": "http", "port": 80},
                             {"name": "dns", "proto": "udp", "port": 53}]
            h["files"] = [{"path": "/srv/share/f%d.txt" % k, "content": "data %d\n" % k, "mode": "0640"}]
        else:
            h["accounts"] = [{"name": "user", "password": "Secret-%d" % (k % 100),
                              "groups": ["users", "staff"]}]
            mailboxes.append("user@%s.corp.test" % name)
        hosts.append(h)
        names.append(name)
    servers = [n for i, n in enumerate(names) if i % 5 == 0]

    # Timeline: chains of ten steps, each chain starting at its own offset;
    # the last step of every fifth chain is conditional with an on-demand
    # `otherwise` branch; every tenth step is a message to the team.
    steps = []
    chain_len = 10
    # Five chains make 5 * chain_len steps and one branch.
    n_chains = max(1, -(-n_steps * 5 // (5 * chain_len + 1)))
    span = DURATION_S - 2 * HOUR
    sid = 0
    c = -1
    while len(steps) < n_steps:
        c += 1
        start = (min(c, n_chains - 1) * span) // n_chains
        prev = None
        for j in range(chain_len):
            if len(steps) >= n_steps:
                break
            sid += 1
            st = {"id": "s%06d" % sid}
            if prev is None:
                st["at"] = dur(start) if sid % 2 else start
                st["jitter"] = "%ds" % rng.randrange(0, 120)
            else:
                st["after"] = prev
                st["delay"] = dur(rng.randrange(1, 300))
                if rng.random() < 0.3:
                    st["jitter"] = "%ds" % rng.randrange(0, 30)
            if sid % 10 == 0:
                st["action"] = "inject.message"
                st["params"] = {"from": "Exercise control", "subject": "Update %d" % sid,
                                "body": "Status of the exercise, part %d." % sid,
                                "channel": rng.choice(["mail", "phone", "press", "management"]),
                                "deadline": "30m", "points": rng.randrange(0, 20)}
            else:
                kind = ATTACK_KINDS[sid % len(ATTACK_KINDS)]
                actor = rng.choice(names)
                target = rng.choice(servers)
                action, needs_target, params = action_step(rng, kind, mailboxes)
                if kind in ("recon.portscan", "cred.bruteforce", "web.exploit", "phish.deliver",
                            "dos.flood"):
                    actor = "attacker"
                if kind in ("c2.beacon", "exfil"):
                    target = "attacker"
                if target == actor:
                    target = "gw"
                st["actor"] = actor
                st["action"] = action
                if needs_target or (needs_target is False and rng.random() < 0.5):
                    st["target"] = target
                st["params"] = params
                if rng.random() < 0.2:
                    st["technique"] = "T%04d.%03d" % (rng.randrange(1000, 2000), rng.randrange(1000))
                if rng.random() < 0.1:
                    st["success"] = {"type": "reported"}
            steps.append(st)
            prev = st["id"]
        if c % 5 == 4 and len(steps) < n_steps:
            sid += 1
            branch = {"id": "s%06d" % sid, "on_demand": True, "action": "inject.message",
                      "params": {"from": "White team", "subject": "Hint", "body": "Look again."}}
            steps[-1]["when"] = {"step": steps[-2]["id"], "outcome": "succeeded"}
            steps[-1]["otherwise"] = branch["id"]
            steps.append(branch)

    checks = []
    for i, srv in enumerate(servers[:200]):
        t = ["tcp", "http", "dns", "smtp"][i % 4]
        ch = {"id": "chk-%d" % i, "type": t, "from": "gw", "target": srv,
              "interval": "%ds" % rng.randrange(10, 120), "sla": 0.9}
        if t == "tcp":
            ch["port"] = 22
        elif t == "http":
            ch["path"] = "/"
            ch["expect_status"] = 200
        elif t == "dns":
            ch["name"] = "www.corp.test"
        checks.append(ch)

    return {
        "format": 1,
        "id": "bench-large",
        "title": "Benchmark: %d hosts, %d steps" % (n_hosts, len(steps)),
        "description": "Generated by bench/gen_scenario.py --hosts %d --steps %d --seed %d"
                       % (n_hosts, n_steps, seed),
        "level": "A",
        "duration": dur(DURATION_S),
        "speed": 60,
        "domain": "corp.test",
        "teams": {"count": 2, "name": "Team {n}"},
        "segments": segments,
        "hosts": hosts,
        "timeline": steps,
        "checks": checks,
        "scoring": {"weights": {"detection": 40, "availability": 30, "reports": 20, "injects": 10},
                    "detection": {"window": "1h", "full_credit": "10m", "decay": "linear", "floor": 0.2}},
        "report": {"sections": [{"id": s, "title": s.capitalize()} for s in
                                ("detection", "response", "reporting", "recovery")]},
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=5000)
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("-o", "--output", default="-")
    a = ap.parse_args()
    if a.hosts < 3 or a.steps < 0:
        ap.error("need at least 3 hosts and 0 steps")
    doc = generate(a.hosts, a.steps, a.seed)
    text = json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
    if a.output == "-":
        sys.stdout.write(text)
    else:
        with open(a.output, "w", encoding="utf-8") as f:
            f.write(text)


if __name__ == "__main__":
    main()
