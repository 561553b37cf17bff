#!/usr/bin/env python3
"""Turn a ground-truth journal (journal.jsonl) into the "steps" of a
score_team() input for one team, as the orchestrator does: one step per
step_start, completed by its step_result.  start_ms is the orchestrator's
scheduled time (the guests' clocks are not the orchestrator's).

    journal-to-steps.py JOURNAL TEAM > steps.json
"""
import json
import sys


def main():
    path, team = sys.argv[1], int(sys.argv[2])
    steps, by_name = [], {}
    with open(path) as f:
        for line in f:
            e = json.loads(line)
            if e.get("team") != team or e.get("kind") not in ("step_start", "step_result"):
                continue
            if e["kind"] == "step_start":
                s = {"step": e["step"], "action": e["action"],
                     "technique": e.get("technique"), "actor": e.get("actor"),
                     "target": e.get("target"), "actor_addr": e.get("actor_addr"),
                     "target_addr": e.get("target_addr"),
                     "start_ms": int(round(e["scheduled_ms"])),
                     "visibility": e.get("visibility"), "outcome": "timeout"}
                steps.append(s)
                by_name[e["step"]] = s
            else:
                s = by_name[e["step"]]
                s["outcome"] = e["outcome"]
                s["flows"] = [{k: fl[k] for k in ("proto", "src", "sport", "dst", "dport",
                                                  "community_id") if k in fl}
                              for fl in e.get("flows", [])]
                s["artefacts"] = e.get("artefacts", {})
    for s in steps:
        for k in [k for k, v in s.items() if v is None]:
            del s[k]
    json.dump({"steps": steps}, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
