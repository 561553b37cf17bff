/* agent_action — the attacker actions the agent executes (issue 4).
 *
 * An {"t":"action"} request is checked in the agent's loop (type known,
 * parameters valid by agents/action_table, every address inside
 * 198.18.0.0/15) and then run in a child process: `cyrange-agent
 * --run-action` reads the request as one JSON object on stdin, runs it
 * (blocking code is fine there, bounded by the action's own limits and a
 * deadline the parent enforces with SIGKILL), prints one JSON result on
 * stdout and exits.  The loop replies with that result.  Background work (a
 * C2 beacon, an implant) is a separate daemon process, visible in ps and
 * netstat as a real implant would be, which trainees can find and kill.
 *
 * Wire format: agents/PROTOCOL.md, section "Actions".
 */
#ifndef CYRANGE_AGENT_ACTION_H
#define CYRANGE_AGENT_ACTION_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "action_table.h"

#define ACT_MAX_FLOWS 64          /* flows listed in a result; more are counted */
#define ACT_IMPLANT_PATH "/tmp/.cache/updater"   /* where implants live */
#define ACT_RUN_DIR "/run/cyrange"               /* pid files of background work */

typedef struct act_req {
    const char *step;             /* step id, for pid files and events */
    const char *action;           /* action type name */
    const action_type *type;      /* its table entry */
    const json_t *params;         /* borrowed; already valid */
    const char *target_host;      /* NULL when the step has no target */
    const char *target_addr;      /* target's address, NULL when none */
    const char *c2_addr;          /* where implants report (the C2 host), or NULL */
    int c2_port;                  /* 0: the action's default */
    const char *c2_domain;        /* C2 domain for DNS channels, or NULL */
    uint64_t seed;                /* for reproducible randomness */
    const char *root;             /* file-system prefix for tests; "" is / */
    int deadline_ms;              /* the parent kills the child after this */
} act_req;

typedef struct act_result {
    int succeeded;                /* the action's own success condition */
    char detail[512];             /* one sentence for journals and screens */
    json_t *flows;                /* array (new ref): the connections made */
    long long flows_total;        /* all flows, listed or not */
    json_t *evidence;             /* object (new ref): action-specific facts */
} act_result;

/* Records one flow (a TCP connection, a UDP exchange, a batch of flood
 * packets) in the result.  Addresses are dotted quads. */
void act_flow_add(act_result *r, const char *proto, const char *src, int sport,
                  const char *dst, int dport, long long packets, long long bytes);

/* Every action: 0 when it ran (r->succeeded says whether it achieved its
 * goal), -1 when it could not run at all (r->detail says why). */
typedef int (*act_fn)(const act_req *q, act_result *r);

/* agent_act_net.c: actions that put traffic on the team's LAN. */
int act_recon_portscan(const act_req *q, act_result *r);
int act_cred_bruteforce(const act_req *q, act_result *r);
int act_web_exploit(const act_req *q, act_result *r);
int act_phish_deliver(const act_req *q, act_result *r);
int act_c2_beacon(const act_req *q, act_result *r);
int act_tool_transfer(const act_req *q, act_result *r);
int act_exfil(const act_req *q, act_result *r);
int act_dos_flood(const act_req *q, act_result *r);

/* agent_act_host.c: actions with effects on the actor host. */
int act_phish_open(const act_req *q, act_result *r);
int act_lateral_move(const act_req *q, act_result *r);
int act_persistence(const act_req *q, act_result *r);
int act_impact_encrypt(const act_req *q, act_result *r);
int act_impact_service_stop(const act_req *q, act_result *r);
int act_impact_deface(const act_req *q, act_result *r);

/* The `--run-action` entry point (agent_action.c): returns the exit code. */
int agent_run_action_main(void);
/* The `--implant` entry point (agent_act_net.c): the long-running implant
 * process that beacons; argv as given after --implant:
 *   --step S --channel http|dns --c2 ADDR [--port N] [--domain D]
 *   [--proxy ADDR:PORT] --interval MS [--jitter MS] [--count N]
 *   [--duration MS] [--seed N] [--root DIR] [--id NAME]
 * It writes ACT_RUN_DIR/implant-S.pid ("PID STARTTIME") and, after every
 * beacon, ACT_RUN_DIR/implant-S.status (one JSON object), and stops after
 * count beacons, duration, or 8 h, whichever comes first. */
int agent_implant_main(int argc, char **argv);

/* ---- helpers for the act_* functions (agent_action.c) ----------------- */

/* Parameter values (already checked against the table) with defaults. */
long long act_param_int(const act_req *q, const char *name, long long dflt);
long long act_param_ms(const act_req *q, const char *name, long long dflt);
const char *act_param_str(const act_req *q, const char *name,
                          const char *dflt);
int act_param_bool(const act_req *q, const char *name, int dflt);
/* q->root + abs into out.  Returns 0, or -1 when too long. */
int act_path(const act_req *q, const char *abs, char *out, size_t len);
/* Monotonic and wall-clock milliseconds. */
long long act_now_ms(void);
long long act_wall_ms(void);
/* Monotonic time by which an action started now must have wrapped up (a
 * margin before the parent's SIGKILL at q->deadline_ms). */
long long act_stop_at(const act_req *q);
/* Sets r->detail. */
void act_detail(act_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Records background work of a step (a daemon in its own session) as
 * ACT_RUN_DIR/KIND-STEP.pid, KIND "implant" or "bg", so that action_stop
 * finds it.  Returns 0 or -1. */
int act_pidfile_write(const char *root, const char *kind, const char *step,
                      pid_t pid);

/* ---- the dispatcher (agent_action.c; agent.c and the tests use it) ---- */

/* Checks an {"t":"action"} request (type, params by action_table, every
 * address inside 198.18.0.0/15, proxy and URL hosts too) and fills q with
 * pointers BORROWED from req.  Returns 0, or -1 with the reason in err. */
int act_req_parse(const json_t *req, act_req *q, char *err, size_t errlen);
/* The runner of an action in this build, or NULL. */
act_fn act_lookup(const char *action);
/* The longest an action may take, derived from its parameter bounds, and
 * the child's deadline: that, or the request's deadline_ms when shorter. */
long long act_max_ms(const act_req *q);
int act_timeout_ms(const act_req *q);
/* Runs q in this process (the child's work; tests call it directly). */
int act_run(const act_req *q, act_result *r);
void act_result_init(act_result *r);
void act_result_clear(act_result *r);
/* The child's output object (new reference): outcome, detail, flows,
 * flows_total, evidence, started_ms, ended_ms; {"error":…} when rc < 0. */
json_t *act_result_json(const act_result *r, int rc, long long started_ms,
                        long long ended_ms);
/* The reply to request id from a finished child: its stdout (the result
 * object), stderr, wait status, and whether the parent killed it at the
 * deadline (timeout_ms) or for an action_stop.  New reference. */
json_t *act_reply_build(long long id, const char *out, size_t out_len,
                        const char *errout, size_t err_len, int wstatus,
                        int timed_out, int timeout_ms, int stopped);
/* Kills the background work recorded in root + ACT_RUN_DIR for step (NULL:
 * every step) and removes its pid files.  Returns how many processes were
 * stopped. */
int act_stop(const char *root, const char *step);

#endif
