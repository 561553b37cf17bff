/* agent_action: the attacker actions' dispatcher (agents/PROTOCOL.md,
 * "Actions").
 *
 * The agent's loop checks a request with act_req_parse() and runs
 * `cyrange-agent --run-action` as a job with the request on stdin; that
 * child (agent_run_action_main) checks it again, runs the act_* function
 * and prints one JSON result; act_reply_build() turns it into the reply.
 * Nothing here runs on the agent's loop for longer than a system call: the
 * work happens in the child, bounded by each action's own limits and by the
 * deadline the parent enforces with SIGKILL.
 */
#include "agent_action.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proto.h"

#define SEC 1000LL
#define MIN (60 * SEC)
#define HOUR (60 * MIN)

/* Request input read by the child: one protocol line at most. */
#define RUN_MAX_INPUT (PROTO_MAX_LINE + 1u)
/* Longest accepted deadline_ms: the longest background action's bound. */
#define DEADLINE_MAX_MS (24 * HOUR)
/* Time an action keeps for reporting before the parent's SIGKILL. */
#define STOP_MARGIN_MS 3000

/* ---- the actions this build runs ---------------------------------------- */

static const struct {
    const char *name;
    act_fn fn;
} act_runners[] = {
    {"recon.portscan", act_recon_portscan},
    {"cred.bruteforce", act_cred_bruteforce},
    {"web.exploit", act_web_exploit},
    {"phish.deliver", act_phish_deliver},
    {"c2.beacon", act_c2_beacon},
    {"tool.transfer", act_tool_transfer},
    {"exfil", act_exfil},
    {"dos.flood", act_dos_flood},
#ifdef HAVE_ACT_HOST
    /* agent_act_host.c: agent.mk defines HAVE_ACT_HOST when it exists. */
    {"phish.open", act_phish_open},
    {"lateral.move", act_lateral_move},
    {"persistence", act_persistence},
    {"impact.encrypt", act_impact_encrypt},
    {"impact.service_stop", act_impact_service_stop},
    {"impact.deface", act_impact_deface},
#endif
};

act_fn act_lookup(const char *action)
{
    size_t i;

    if (action == NULL)
        return NULL;
    for (i = 0; i < sizeof(act_runners) / sizeof(act_runners[0]); i++)
        if (strcmp(act_runners[i].name, action) == 0)
            return act_runners[i].fn;
    return NULL;
}

/* ---- helpers for the actions --------------------------------------------- */

static const json_t *param(const act_req *q, const char *name)
{
    return q->params != NULL ? json_object_get(q->params, name) : NULL;
}

long long act_param_int(const act_req *q, const char *name, long long dflt)
{
    const json_t *v = param(q, name);

    return json_is_integer(v) ? (long long)json_integer_value(v) : dflt;
}

long long act_param_ms(const act_req *q, const char *name, long long dflt)
{
    int64_t ms;

    if (action_duration_value(param(q, name), &ms) < 0)
        return dflt;
    return (long long)ms;
}

const char *act_param_str(const act_req *q, const char *name,
                          const char *dflt)
{
    const json_t *v = param(q, name);

    return json_is_string(v) ? json_string_value(v) : dflt;
}

int act_param_bool(const act_req *q, const char *name, int dflt)
{
    const json_t *v = param(q, name);

    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

int act_path(const act_req *q, const char *abs, char *out, size_t len)
{
    int n = snprintf(out, len, "%s%s", q->root ? q->root : "", abs);

    return (n < 0 || (size_t)n >= len) ? -1 : 0;
}

long long act_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long act_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long act_stop_at(const act_req *q)
{
    long long d = q->deadline_ms, margin;

    if (d <= 0)
        return act_now_ms() + DEADLINE_MAX_MS;
    /* Short deadlines keep a fifth for the report. */
    margin = d / 5 < STOP_MARGIN_MS ? d / 5 : STOP_MARGIN_MS;
    return act_now_ms() + d - margin;
}

void act_detail(act_result *r, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(r->detail, sizeof(r->detail), fmt, ap);
    va_end(ap);
}

void act_flow_add(act_result *r, const char *proto, const char *src, int sport,
                  const char *dst, int dport, long long packets, long long bytes)
{
    json_t *f = NULL;

    r->flows_total++;
    if (r->flows == NULL)
        r->flows = json_array();
    if (r->flows == NULL || json_array_size(r->flows) >= ACT_MAX_FLOWS)
        return;
    f = json_pack("{s:s, s:s, s:i, s:s, s:i, s:I, s:I}", "proto", proto,
                  "src", src ? src : "", "sport", sport, "dst", dst ? dst : "",
                  "dport", dport, "packets", (json_int_t)packets, "bytes",
                  (json_int_t)bytes);
    if (f != NULL)
        json_array_append_new(r->flows, f);
}

void act_result_init(act_result *r)
{
    memset(r, 0, sizeof(*r));
    r->flows = json_array();
    r->evidence = json_object();
}

void act_result_clear(act_result *r)
{
    if (r == NULL)
        return;
    json_decref(r->flows);
    json_decref(r->evidence);
    memset(r, 0, sizeof(*r));
}

json_t *act_result_json(const act_result *r, int rc, long long started_ms,
                        long long ended_ms)
{
    json_t *o = json_object();

    if (o == NULL)
        return NULL;
    if (rc < 0) {
        json_object_set_new(o, "error", json_string(r->detail[0] ? r->detail :
                                                    "the action could not run"));
    } else {
        json_object_set_new(o, "outcome", json_string(r->succeeded ?
                                                      "succeeded" : "failed"));
        json_object_set_new(o, "detail", json_string(r->detail));
        if (r->flows != NULL)
            json_object_set(o, "flows", r->flows);
        else
            json_object_set_new(o, "flows", json_array());
        json_object_set_new(o, "flows_total", json_integer(r->flows_total));
        if (r->evidence != NULL)
            json_object_set(o, "evidence", r->evidence);
        else
            json_object_set_new(o, "evidence", json_object());
    }
    json_object_set_new(o, "started_ms", json_integer(started_ms));
    json_object_set_new(o, "ended_ms", json_integer(ended_ms));
    return o;
}

int act_run(const act_req *q, act_result *r)
{
    act_fn fn = act_lookup(q->action);

    if (fn == NULL) {
        act_detail(r, "action %s is not available in this agent", q->action);
        return -1;
    }
    return fn(q, r);
}

/* ---- request checks ------------------------------------------------------ */

static int step_ok(const char *s)
{
    size_t n = 0;

    for (; s[n]; n++)
        if (!isalnum((unsigned char)s[n]) && s[n] != '-' && s[n] != '_' &&
            s[n] != '.')
            return 0;
    return n >= 1 && n <= 64;
}

/* A DNS name we are willing to put into queries and Host: headers. */
static int domain_ok(const char *s)
{
    size_t n = strlen(s), label = 0, i;

    if (n == 0 || n > 200)
        return 0;
    for (i = 0; i < n; i++) {
        if (s[i] == '.') {
            if (label == 0)
                return 0;
            label = 0;
            continue;
        }
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_')
            return 0;
        if (++label > 63)
            return 0;
    }
    return label > 0;
}

/* "ADDR:PORT" with ADDR inside the range. */
static int hostport_check(const char *what, const char *s, char *err,
                          size_t errlen)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    char *end = NULL;
    long port;

    if (colon == NULL || (size_t)(colon - s) >= sizeof(host)) {
        snprintf(err, errlen, "%s '%s' must be ADDR:PORT", what, s);
        return -1;
    }
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    port = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || port < 1 || port > 65535) {
        snprintf(err, errlen, "%s '%s' must be ADDR:PORT", what, s);
        return -1;
    }
    if (!proto_addr_in_range(host)) {
        snprintf(err, errlen, "action refused: %s %s is outside "
                 "198.18.0.0/15", what, host);
        return -1;
    }
    return 0;
}

/* "http://HOST[:PORT]/…": HOST an address inside the range, or the C2's
 * domain when the request names the C2's address. */
static int url_check(const char *url, const act_req *q, char *err,
                     size_t errlen)
{
    char host[256];
    const char *h = NULL, *e = NULL;
    size_t n;

    if (strncmp(url, "http://", 7) != 0) {
        snprintf(err, errlen, "url '%s' must start with http://", url);
        return -1;
    }
    h = url + 7;
    e = h + strcspn(h, ":/?#");
    n = (size_t)(e - h);
    if (n == 0 || n >= sizeof(host)) {
        snprintf(err, errlen, "url '%s' has no host", url);
        return -1;
    }
    memcpy(host, h, n);
    host[n] = '\0';
    if (proto_addr_in_range(host))
        return 0;
    if (q->c2_domain != NULL && q->c2_addr != NULL &&
        strcasecmp(host, q->c2_domain) == 0)
        return 0;
    snprintf(err, errlen, "action refused: url host %s is not an address "
             "inside 198.18.0.0/15 (nor the C2 domain)", host);
    return -1;
}

static int get_opt_str(const json_t *o, const char *key, const char **out,
                       const char *where, char *err, size_t errlen)
{
    const json_t *v = json_object_get(o, key);

    *out = NULL;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v) || json_string_length(v) == 0 ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        snprintf(err, errlen, "field \"%s%s\" must be a non-empty string",
                 where, key);
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

int act_req_parse(const json_t *req, act_req *q, char *err, size_t errlen)
{
    const json_t *v = NULL, *target = NULL, *c2 = NULL;
    const char *s = NULL;

    memset(q, 0, sizeof(*q));
    q->root = "";
    if (!json_is_object(req)) {
        snprintf(err, errlen, "action request must be an object");
        return -1;
    }
    if (get_opt_str(req, "step", &q->step, "", err, errlen) < 0)
        return -1;
    if (q->step == NULL || !step_ok(q->step)) {
        snprintf(err, errlen, "field \"step\" must be 1-64 characters a-z, "
                 "0-9, '-', '_' and '.'");
        return -1;
    }
    if (get_opt_str(req, "action", &q->action, "", err, errlen) < 0)
        return -1;
    if (q->action == NULL) {
        snprintf(err, errlen, "missing field \"action\"");
        return -1;
    }
    q->type = action_find(q->action);
    if (q->type == NULL) {
        snprintf(err, errlen, "unknown action '%.64s'", q->action);
        return -1;
    }
    if (!q->type->needs_actor) {
        snprintf(err, errlen, "action %s is not run by an agent", q->action);
        return -1;
    }
    if (act_lookup(q->action) == NULL) {
        snprintf(err, errlen, "action %s is not available in this agent",
                 q->action);
        return -1;
    }
    v = json_object_get(req, "params");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_object(v)) {
            snprintf(err, errlen, "field \"params\" must be an object");
            return -1;
        }
        q->params = v;
    }
    if (action_params_check(q->type, q->params, err, errlen) < 0)
        return -1;

    target = json_object_get(req, "target");
    if (target != NULL && !json_is_null(target)) {
        if (!json_is_object(target)) {
            snprintf(err, errlen, "field \"target\" must be an object");
            return -1;
        }
        if (get_opt_str(target, "host", &q->target_host, "target.", err,
                        errlen) < 0 ||
            get_opt_str(target, "addr", &q->target_addr, "target.", err,
                        errlen) < 0)
            return -1;
    }
    if (q->target_addr != NULL && !proto_addr_in_range(q->target_addr)) {
        snprintf(err, errlen, "action refused: target %.64s is outside "
                 "198.18.0.0/15", q->target_addr);
        return -1;
    }
    if (q->type->target == ACTION_TARGET_REQUIRED && q->target_addr == NULL) {
        snprintf(err, errlen, "action %s needs a target address", q->action);
        return -1;
    }
    if (q->type->target == ACTION_TARGET_NONE && q->target_addr != NULL) {
        snprintf(err, errlen, "action %s takes no target", q->action);
        return -1;
    }

    c2 = json_object_get(req, "c2");
    if (c2 != NULL && !json_is_null(c2)) {
        if (!json_is_object(c2)) {
            snprintf(err, errlen, "field \"c2\" must be an object");
            return -1;
        }
        if (get_opt_str(c2, "addr", &q->c2_addr, "c2.", err, errlen) < 0 ||
            get_opt_str(c2, "domain", &q->c2_domain, "c2.", err, errlen) < 0)
            return -1;
        if (q->c2_addr == NULL) {
            snprintf(err, errlen, "missing field \"c2.addr\"");
            return -1;
        }
        if (!proto_addr_in_range(q->c2_addr)) {
            snprintf(err, errlen, "action refused: c2 %.64s is outside "
                     "198.18.0.0/15", q->c2_addr);
            return -1;
        }
        if (q->c2_domain != NULL && !domain_ok(q->c2_domain)) {
            snprintf(err, errlen, "field \"c2.domain\" is not a domain name");
            return -1;
        }
        v = json_object_get(c2, "port");
        if (v != NULL && !json_is_null(v)) {
            if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                json_integer_value(v) > 65535) {
                snprintf(err, errlen, "field \"c2.port\" must be 1..65535");
                return -1;
            }
            q->c2_port = (int)json_integer_value(v);
        }
    }

    v = json_object_get(req, "seed");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_integer(v)) {
            snprintf(err, errlen, "field \"seed\" must be an integer");
            return -1;
        }
        q->seed = (uint64_t)json_integer_value(v);
    }
    v = json_object_get(req, "deadline_ms");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > DEADLINE_MAX_MS) {
            snprintf(err, errlen, "field \"deadline_ms\" must be 1..%lld",
                     DEADLINE_MAX_MS);
            return -1;
        }
        q->deadline_ms = (int)json_integer_value(v);
    }
    /* Set by the agent for its child, never by the orchestrator: the
     * agent's --root ("" or absent: /). */
    v = json_object_get(req, "root");
    if (json_is_string(v) && json_string_length(v) == 0)
        v = NULL;
    if (v != NULL && get_opt_str(req, "root", &s, "", err, errlen) < 0)
        return -1;
    if (v != NULL && s != NULL) {
        if (s[0] != '/') {
            snprintf(err, errlen, "field \"root\" must be an absolute path");
            return -1;
        }
        q->root = s;
    }

    /* Addresses inside the parameters obey the same rule. */
    s = act_param_str(q, "proxy", NULL);
    if (s != NULL && hostport_check("proxy", s, err, errlen) < 0)
        return -1;
    s = act_param_str(q, "url", NULL);
    if (s != NULL && url_check(s, q, err, errlen) < 0)
        return -1;
    s = act_param_str(q, "domain", NULL);
    if (s != NULL && !domain_ok(s)) {
        snprintf(err, errlen, "parameter 'domain' is not a domain name");
        return -1;
    }
    s = act_param_str(q, "channel", NULL);
    if (s != NULL && strcmp(s, "dns") == 0 &&
        act_param_str(q, "domain", q->c2_domain) == NULL) {
        snprintf(err, errlen, "action %s over dns needs a domain (parameter "
                 "'domain' or c2.domain)", q->action);
        return -1;
    }
    return 0;
}

/* ---- bounds -------------------------------------------------------------- */

long long act_max_ms(const act_req *q)
{
    const char *name = q->action;
    long long rate, n, per;

    if (strcmp(name, "recon.portscan") == 0) {
        n = action_ports_count(act_param_str(q, "ports", "1"));
        rate = act_param_int(q, "rate", 100);
        return (n > 0 ? n : 1) * 1000 / rate +
               act_param_ms(q, "timeout", 1000) + 10 * SEC;
    }
    if (strcmp(name, "cred.bruteforce") == 0) {
        n = (long long)json_array_size(json_object_get(q->params, "users")) *
            (long long)json_array_size(json_object_get(q->params, "passwords"));
        if (n > act_param_int(q, "attempts", 100))
            n = act_param_int(q, "attempts", 100);
        rate = act_param_int(q, "rate", 5);
        per = strcmp(act_param_str(q, "service", ""), "ssh") == 0 ? 15 * SEC
                                                                  : 10 * SEC;
        return n * (1000 / rate + per) + 10 * SEC;
    }
    if (strcmp(name, "web.exploit") == 0)
        return act_param_int(q, "requests", 1) * 15 * SEC + 10 * SEC;
    if (strcmp(name, "phish.deliver") == 0)
        return 90 * SEC;
    if (strcmp(name, "c2.beacon") == 0)
        return 45 * SEC;
    if (strcmp(name, "tool.transfer") == 0)
        return 150 * SEC;
    if (strcmp(name, "exfil") == 0) {
        if (strcmp(act_param_str(q, "channel", "http"), "dns") == 0)
            /* 31-byte labels, several per query, at most 500 queries/s. */
            return act_param_int(q, "bytes", 1) / 31 * 1000 / 500 + 20 * SEC;
        return 150 * SEC;
    }
    if (strcmp(name, "dos.flood") == 0)
        return act_param_ms(q, "duration", 10 * SEC) + 10 * SEC;
    /* Host actions: local work bounded by their own counts. */
    return 5 * MIN;
}

int act_timeout_ms(const act_req *q)
{
    long long t = act_max_ms(q);

    if (t > DEADLINE_MAX_MS)
        t = DEADLINE_MAX_MS;
    if (q->deadline_ms > 0 && q->deadline_ms < t)
        t = q->deadline_ms;
    return (int)t;
}

/* ---- background work: pid files ------------------------------------------ */

static const char *const bg_kinds[] = {"implant", "bg", NULL};

/* Field 22 of /proc/PID/stat: start time in clock ticks, so a pid file
 * cannot make us kill an unrelated process that reused the pid. */
static unsigned long long proc_starttime(pid_t pid)
{
    char path[64], buf[1024];
    unsigned long long st = 0;
    ssize_t n;
    char *p = NULL;
    int fd, field;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    /* The command name may hold spaces and parentheses: count from the
     * last ')'. */
    p = strrchr(buf, ')');
    if (p == NULL)
        return 0;
    for (field = 2; field < 22 && p != NULL; field++)
        p = strchr(p + 1, ' ');
    if (p != NULL)
        st = strtoull(p + 1, NULL, 10);
    return st;
}

int act_pidfile_write(const char *root, const char *kind, const char *step,
                      pid_t pid)
{
    char dir[PATH_MAX], path[PATH_MAX], tmp[PATH_MAX + 8], line[64];
    int fd = -1, n, rc = -1;

    if (snprintf(dir, sizeof(dir), "%s%s", root ? root : "", ACT_RUN_DIR) >=
            (int)sizeof(dir) ||
        snprintf(path, sizeof(path), "%s/%s-%s.pid", dir, kind, step) >=
            (int)sizeof(path))
        return -1;
    /* mkdir -p: under a test root the folders may not exist yet. */
    for (n = 1; dir[n] != '\0'; n++) {
        if (dir[n] != '/')
            continue;
        dir[n] = '\0';
        mkdir(dir, 0755);
        dir[n] = '/';
    }
    mkdir(dir, 0755);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    n = snprintf(line, sizeof(line), "%d %llu\n", (int)pid,
                 proc_starttime(pid));
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    if (write(fd, line, (size_t)n) == n && close(fd) == 0) {
        fd = -1;
        rc = rename(tmp, path);
    }
    if (fd >= 0)
        close(fd);
    if (rc < 0)
        unlink(tmp);
    return rc;
}

/* The step a pid file name belongs to, or NULL when it is not ours. */
static const char *pidfile_step(const char *name, char *step, size_t len)
{
    size_t i, n = strlen(name), k;

    if (n < 5 || strcmp(name + n - 4, ".pid") != 0)
        return NULL;
    for (i = 0; bg_kinds[i]; i++) {
        k = strlen(bg_kinds[i]);
        if (strncmp(name, bg_kinds[i], k) == 0 && name[k] == '-' &&
            n - 4 > k + 1 && n - 4 - (k + 1) < len) {
            memcpy(step, name + k + 1, n - 4 - (k + 1));
            step[n - 4 - (k + 1)] = '\0';
            return step;
        }
    }
    return NULL;
}

static int stop_pidfile(const char *path)
{
    char buf[128];
    unsigned long long want = 0;
    long pid = 0;
    ssize_t n;
    int fd, stopped = 0;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n > 0) {
        buf[n] = '\0';
        if (sscanf(buf, "%ld %llu", &pid, &want) < 1)
            pid = 0;
    }
    if (pid > 1 && kill((pid_t)pid, 0) == 0 &&
        (want == 0 || proc_starttime((pid_t)pid) == want)) {
        /* A daemon of ours leads its own session: end its children too. */
        if (getpgid((pid_t)pid) == (pid_t)pid)
            kill(-(pid_t)pid, SIGKILL);
        kill((pid_t)pid, SIGKILL);
        stopped = 1;
    }
    unlink(path);
    return stopped;
}

/* Stops the background work recorded in one pid-file folder. */
static int stop_dir(const char *dir, const char *step)
{
    char path[PATH_MAX], st[128], status[PATH_MAX];
    struct dirent *de = NULL;
    DIR *d = opendir(dir);
    int count = 0;

    if (d == NULL)
        return 0;
    while ((de = readdir(d)) != NULL) {
        const char *s = pidfile_step(de->d_name, st, sizeof(st));
        size_t n;
        if (s == NULL || (step != NULL && strcmp(s, step) != 0))
            continue;
        if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >=
            (int)sizeof(path))
            continue;
        count += stop_pidfile(path);
        /* The implant's last beacon result goes with it. */
        n = strlen(path);
        if (n > 4 && n + 3 < sizeof(status)) {
            memcpy(status, path, n - 4);
            memcpy(status + n - 4, ".status", 8);
            unlink(status);
        }
    }
    closedir(d);
    return count;
}

int act_stop(const char *root, const char *step)
{
    char dir[PATH_MAX];
    int count = 0;
    const char *r = root ? root : "";

    if (snprintf(dir, sizeof(dir), "%s%s", r, ACT_RUN_DIR) < (int)sizeof(dir))
        count += stop_dir(dir, step);
    /* An implant started by lateral.move as an ordinary user cannot write
     * ACT_RUN_DIR and keeps its pid files under its own folder instead. */
    if (snprintf(dir, sizeof(dir), "%s/tmp/.cache%s", r, ACT_RUN_DIR) < (int)sizeof(dir))
        count += stop_dir(dir, step);
    return count;
}

/* ---- the child: --run-action --------------------------------------------- */

static char *read_all(int fd, size_t max, size_t *len)
{
    char *buf = malloc(max + 1);
    size_t n = 0;

    if (buf == NULL)
        return NULL;
    while (n < max) {
        ssize_t r = read(fd, buf + n, max - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

int agent_run_action_main(void)
{
    json_error_t jerr;
    json_t *req = NULL, *out = NULL;
    act_result r;
    act_req q;
    char err[512], *in = NULL, *line = NULL;
    size_t len = 0;
    long long started, ended;
    int rc = -1, exit_code = 1;

    /* A peer closing early must not kill us before we report. */
    signal(SIGPIPE, SIG_IGN);
    act_result_init(&r);
    started = act_wall_ms();
    in = read_all(0, RUN_MAX_INPUT, &len);
    if (in == NULL) {
        act_detail(&r, "out of memory");
        goto report;
    }
    req = json_loadb(in, len, JSON_REJECT_DUPLICATES, &jerr);
    if (req == NULL) {
        act_detail(&r, "action input: %s", jerr.text);
        goto report;
    }
    if (act_req_parse(req, &q, err, sizeof(err)) < 0) {
        act_detail(&r, "%s", err);
        goto report;
    }
    rc = act_run(&q, &r);
    exit_code = 0;

report:
    ended = act_wall_ms();
    out = act_result_json(&r, rc, started, ended);
    line = out ? json_dumps(out, JSON_COMPACT) : NULL;
    if (line != NULL) {
        printf("%s\n", line);
        fflush(stdout);
    } else {
        exit_code = 1;
    }
    free(line);
    json_decref(out);
    json_decref(req);
    free(in);
    act_result_clear(&r);
    return exit_code;
}

/* ---- the parent: the reply ----------------------------------------------- */

/* The last line of a child's stderr, for a reply that has nothing better. */
static void tail_line(const char *s, size_t len, char *out, size_t outlen)
{
    size_t end = len, start, n, i;

    out[0] = '\0';
    if (s == NULL)
        return;
    while (end > 0 && (s[end - 1] == '\n' || s[end - 1] == '\r'))
        end--;
    start = end;
    while (start > 0 && s[start - 1] != '\n')
        start--;
    n = end - start < outlen - 1 ? end - start : outlen - 1;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[start + i];
        out[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    out[n] = '\0';
}

json_t *act_reply_build(long long id, const char *out, size_t out_len,
                        const char *errout, size_t err_len, int wstatus,
                        int timed_out, int timeout_ms, int stopped)
{
    static const char *const copy[] = {"outcome", "detail", "started_ms",
                                       "ended_ms", "flows", "flows_total",
                                       "evidence", NULL};
    json_error_t jerr;
    json_t *res = NULL, *reply = NULL;
    char msg[512], tail[256];
    size_t n = 0, i;

    if (stopped)
        return proto_build_reply(1, id, 0, "action stopped by action_stop",
                                 NULL);
    if (timed_out) {
        snprintf(msg, sizeof(msg), "action killed at its deadline (%d ms)",
                 timeout_ms);
        return proto_build_reply(1, id, 0, msg, NULL);
    }
    while (out != NULL && n < out_len && out[n] != '\n')
        n++;
    if (out != NULL && n > 0)
        res = json_loadb(out, n, 0, &jerr);
    if (!json_is_object(res)) {
        tail_line(errout, err_len, tail, sizeof(tail));
        if (WIFSIGNALED(wstatus))
            snprintf(msg, sizeof(msg), "action process killed by signal %d%s%s",
                     WTERMSIG(wstatus), tail[0] ? ": " : "", tail);
        else
            snprintf(msg, sizeof(msg), "action process exited %d without a "
                     "result%s%s", WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) :
                     -1, tail[0] ? ": " : "", tail);
        json_decref(res);
        return proto_build_reply(1, id, 0, msg, NULL);
    }
    if (json_is_string(json_object_get(res, "error"))) {
        reply = proto_build_reply(1, id, 0,
                                  json_string_value(json_object_get(res,
                                                                    "error")),
                                  NULL);
        json_decref(res);
        return reply;
    }
    reply = proto_build_reply(1, id, 1, NULL, NULL);
    for (i = 0; reply != NULL && copy[i]; i++) {
        json_t *v = json_object_get(res, copy[i]);
        if (v != NULL)
            json_object_set(reply, copy[i], v);
    }
    json_decref(res);
    return reply;
}
