#include "exercise.h"

#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "action_table.h"
#include "addr.h"
#include "agentlink.h"
#include "checks.h"
#include "findings.h"
#include "scorecard.h"
#include "units.h"
#include "wire.h"
#include "community_id.h"
#include "journal.h"
#include "proto.h"
#include "timeline.h"

#define ACTION_MARGIN_MS 30000

typedef struct team_ctx {
    exercise *x;
    int team;                  /* 1-based */
    timeline *tl;
    int resetting;
} team_ctx;

/* An agent request in flight.  The exercise keeps them listed: when it is
 * freed before the agent links close (Ctrl-C during a step), it orphans
 * them (t = NULL) and their replies, which the closing link still
 * delivers, only free them. */
typedef struct inflight inflight;
struct inflight {
    inflight *prev, *next;
    team_ctx *t;               /* NULL once the exercise is gone */
};

typedef struct pending_step {
    inflight in;               /* first: the list links requests of both kinds */
    int step;
    unsigned epoch;            /* the team's reset count when dispatched */
    char actor_addr[20];
    char target_addr[20];
} pending_step;

struct exercise {
    uv_loop_t *loop;
    const plan *p;
    range *r;
    char *dir;
    journal *j;
    team_ctx *teams;
    int n_teams;
    unsigned *epochs;          /* per team: bumped by a reset */
    inflight *inflight;        /* agent requests awaiting their reply */
    exercise_log_cb log;
    void *opaque;
    /* Records beside the journal, and their lines in memory for scoring. */
    json_t *jlog;              /* journal lines */
    journal *jchecks;          /* checks.jsonl */
    json_t *check_log;
    journal *jfindings;        /* findings.jsonl: findings and labels */
    json_t *findings_log;
    long long next_finding;
    checks *ck;
    wire *w;                   /* captures and flow tables */
    /* Step results whose flows are looked up on the wire once the
     * captures have caught up (the kernel hands packets over in blocks). */
    json_t *marks;             /* [{"due_ms","team","step","flows"}] */
    uv_timer_t mark_timer;
    int mark_timer_on;
    store *st;                 /* durable state, or NULL */
    int resume;
    exercise_event_cb event;
    void *event_opaque;
    json_t *check_up;          /* "team:check" -> last ok, for transitions */
    unsigned ticks;
};

#define MARK_DELAY_MS 1500

static void xlog(exercise *x, int team, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void xlog(exercise *x, int team, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    if (x->log == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    x->log(x, team, buf, x->opaque);
}

static long long now_wall_ms(void);

/* Tells the live viewers (the API's events); `data` is borrowed. */
static void emit(exercise *x, const char *type, int team, int instructors_only,
                 const json_t *data)
{
    if (x->event && data)
        x->event(x, type, team, instructors_only, data, x->event_opaque);
}

static void store_failed(const store_result *res, void *opaque)
{
    exercise *x = opaque;
    if (res->rc != 0)
        xlog(x, 0, "WARNING: the store refused a write: %s", res->err.msg);
}

static void jwrite(exercise *x, json_t *e)
{
    if (e == NULL)
        return;
    if (x->st) {
        const char *kind = json_string_value(json_object_get(e, "kind"));
        const char *step = json_string_value(json_object_get(e, "step"));
        int team = (int)json_integer_value(json_object_get(e, "team"));
        store_journal_append(x->st, x->p->exercise, team, now_wall_ms(), kind ? kind : "?",
                             step, e, store_failed, x);
        /* Attacker details are for instructors; clock changes too. */
        emit(x, kind && strcmp(kind, "timeline") == 0 ? "timeline" : "step", team, 1, e);
    } else {
        const char *kind = json_string_value(json_object_get(e, "kind"));
        emit(x, kind && strcmp(kind, "timeline") == 0 ? "timeline" : "step",
             (int)json_integer_value(json_object_get(e, "team")), 1, e);
    }
    if (journal_append(x->j, e) < 0)
        xlog(x, 0, "WARNING: the journal could not be written");
    if (x->jlog)
        json_array_append(x->jlog, e);
    json_decref(e);
}

/* The address a guest of `team` uses to reach host `hi`: a static address on
 * a segment shared with `from` when there is one, else its first static
 * address, else (DHCP only) what its agent last reported. */
/* Keeps the team's timeline progress in the store, to resume it after a
 * crash at the right point. */
static void save_timeline(exercise *x, int team, timeline *tl)
{
    if (x->st == NULL || tl == NULL)
        return;
    json_t *snap = timeline_to_json(tl);
    if (snap == NULL)
        return;
    json_object_set_new(snap, "saved_ms", json_integer(now_wall_ms()));
    store_timeline_put(x->st, x->p->exercise, team, snap, now_wall_ms(), store_failed, x);
    json_decref(snap);
}

/* The attacker's C2: the first host with role c2, else attacker. */
static int c2_host(const scenario *s)
{
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < s->n_hosts; i++)
            if (strcmp(s->hosts[i].role, pass == 0 ? "c2" : "attacker") == 0)
                return (int)i;
    return -1;
}

static json_t *step_entry(exercise *x, int team, int step, const char *kind)
{
    const scenario *s = x->p->scn;
    const scn_step *st = &s->steps[step];
    json_t *e = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s}", "kind", kind,
                          "exercise", x->p->exercise, "team", team, "step", st->id,
                          "action", st->action, "visibility", st->visibility);
    if (e == NULL)
        return NULL;
    if (st->technique)
        json_object_set_new(e, "technique", json_string(st->technique));
    if (st->actor >= 0)
        json_object_set_new(e, "actor", json_string(s->hosts[st->actor].name));
    if (st->target >= 0)
        json_object_set_new(e, "target", json_string(s->hosts[st->target].name));
    return e;
}

/* Milliseconds since the epoch (agent clock, UTC) as ISO 8601. */
static json_t *iso_ms(const json_t *v)
{
    char buf[40];
    struct tm tm;
    if (!json_is_number(v))
        return NULL;
    double ms = json_number_value(v);
    time_t sec = (time_t)(ms / 1000);
    gmtime_r(&sec, &tm);
    snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)((long long)ms % 1000));
    return json_string(buf);
}

static void add_unique(json_t *arr, const char *v)
{
    size_t i;
    json_t *e;
    if (v == NULL || *v == '\0')
        return;
    json_array_foreach(arr, i, e)
        if (strcmp(json_string_value(e), v) == 0)
            return;
    json_array_append_new(arr, json_string(v));
}

static void add_values(json_t *arr, const json_t *v)
{
    size_t i;
    json_t *e;
    if (json_is_string(v))
        add_unique(arr, json_string_value(v));
    json_array_foreach(v, i, e)
        if (json_is_string(e))
            add_unique(arr, json_string_value(e));
}

/* The indicators a team could report for this step: addresses, domains,
 * URLs, paths, accounts and hashes, from the step's parameters, the agent's
 * evidence and the flows. */
static json_t *artefacts(const scn_step *st, const json_t *entry, const json_t *evidence)
{
    json_t *a = json_pack("{s:[], s:[], s:[], s:[], s:[], s:[]}", "ips", "domains",
                          "urls", "paths", "accounts", "hashes");
    size_t i;
    json_t *f;
    if (a == NULL)
        return NULL;
    json_t *ips = json_object_get(a, "ips");
    add_values(ips, json_object_get(entry, "actor_addr"));
    add_values(ips, json_object_get(entry, "target_addr"));
    json_array_foreach(json_object_get(entry, "flows"), i, f) {
        add_values(ips, json_object_get(f, "src"));
        add_values(ips, json_object_get(f, "dst"));
    }
    static const char *const map[][2] = {
        { "domain", "domains" }, { "url", "urls" }, { "link", "urls" },
        { "path", "paths" }, { "source", "paths" }, { "files", "paths" },
        { "mailbox", "accounts" }, { "user", "accounts" }, { "users", "accounts" },
        { "account", "accounts" }, { "name", "accounts" }, { "sha256", "hashes" },
        { "hashes", "hashes" },
    };
    for (size_t k = 0; k < sizeof(map) / sizeof(map[0]); k++) {
        /* Persistence's "name" is an account only for kind=account. */
        if (strcmp(map[k][0], "name") == 0 &&
            !(strcmp(st->action, "persistence") == 0 &&
              json_string_value(json_object_get(st->params, "kind")) &&
              strcmp(json_string_value(json_object_get(st->params, "kind")), "account") == 0))
            continue;
        add_values(json_object_get(a, map[k][1]), json_object_get(st->params, map[k][0]));
        add_values(json_object_get(a, map[k][1]), json_object_get(evidence, map[k][0]));
    }
    return a;
}

/* Journals, for each queued step result that is due (all with `all`),
 * whether its flows were seen on the team's wire. */
static void run_marks(exercise *x, int all)
{
    long long now = now_wall_ms();
    size_t i = 0;

    while (i < json_array_size(x->marks)) {
        json_t *m = json_array_get(x->marks, i);
        if (!all && json_integer_value(json_object_get(m, "due_ms")) > now) {
            i++;
            continue;
        }
        int team = (int)json_integer_value(json_object_get(m, "team"));
        json_t *verdict = wire_mark(x->w, team, json_object_get(m, "flows"));
        size_t k, seen = 0;
        json_t *f;
        json_array_foreach(verdict, k, f)
            seen += json_is_true(json_object_get(f, "seen"));
        json_t *e = json_pack("{s:s, s:s, s:i, s:O, s:o, s:I, s:I}", "kind", "wire", "exercise",
                              x->p->exercise, "team", team, "step",
                              json_object_get(m, "step"), "flows", verdict, "seen",
                              (json_int_t)seen, "total", (json_int_t)json_array_size(verdict));
        jwrite(x, e);
        json_array_remove(x->marks, i);
    }
}

static void save_timeline(exercise *x, int team, timeline *tl);

static void on_mark_timer(uv_timer_t *h)
{
    exercise *x = h->data;
    run_marks(x, 0);
    /* Every 2 s, each team's progress, for a restart after a crash. */
    if (++x->ticks % 4 == 0)
        for (int t = 0; t < x->n_teams; t++)
            save_timeline(x, t + 1, x->teams[t].tl);
}

static void queue_mark(exercise *x, int team, const char *step, const json_t *flows)
{
    if (x->w == NULL || json_array_size(flows) == 0)
        return;
    json_array_append_new(x->marks, json_pack("{s:I, s:i, s:s, s:O}", "due_ms",
                                              (json_int_t)(now_wall_ms() + MARK_DELAY_MS),
                                              "team", team, "step", step, "flows", flows));
}

static void inflight_link(exercise *x, inflight *in, team_ctx *t)
{
    in->t = t;
    in->prev = NULL;
    in->next = x->inflight;
    if (x->inflight)
        x->inflight->prev = in;
    x->inflight = in;
}

/* Unlinks a request whose reply came; 0 when the exercise is gone. */
static int inflight_done(inflight *in)
{
    if (in->t == NULL)
        return 0;
    if (in->prev)
        in->prev->next = in->next;
    else
        in->t->x->inflight = in->next;
    if (in->next)
        in->next->prev = in->prev;
    return 1;
}

static void action_reply(agentlink *l, const proto_msg *m, const char *why, void *opaque)
{
    pending_step *ps = opaque;
    if (!inflight_done(&ps->in)) {
        free(ps);
        return;
    }
    team_ctx *t = ps->in.t;
    exercise *x = t->x;
    const scn_step *st = &x->p->scn->steps[ps->step];
    int ok = 0;
    char detail[600];
    json_t *e = step_entry(x, t->team, ps->step, "step_result");
    (void)l;
    if (e && ps->target_addr[0])
        json_object_set_new(e, "target_addr", json_string(ps->target_addr));
    if (e && ps->actor_addr[0])
        json_object_set_new(e, "actor_addr", json_string(ps->actor_addr));

    if (m == NULL) {
        snprintf(detail, sizeof(detail), "no answer from the agent: %s", why);
    } else if (!m->u.reply.ok) {
        snprintf(detail, sizeof(detail), "agent refused: %s",
                 m->u.reply.error ? m->u.reply.error : "?");
    } else {
        json_t *b = m->u.reply.body;
        const char *out = json_string_value(json_object_get(b, "outcome"));
        ok = out && strcmp(out, "succeeded") == 0;
        snprintf(detail, sizeof(detail), "%s",
                 json_string_value(json_object_get(b, "detail")) ?: (ok ? "done" : "failed"));
        static const char *const keep[] = { "flows", "flows_total", "evidence", NULL };
        for (const char *const *k = keep; *k; k++) {
            json_t *v = json_object_get(b, *k);
            if (v && e)
                json_object_set_new(e, *k, json_deep_copy(v));
        }
        json_t *t0 = iso_ms(json_object_get(b, "started_ms"));
        json_t *t1 = iso_ms(json_object_get(b, "ended_ms"));
        if (e && t0)
            json_object_set_new(e, "started", t0);
        else
            json_decref(t0);
        if (e && t1)
            json_object_set_new(e, "ended", t1);
        else
            json_decref(t1);
        /* Every flow with its Community ID (seed 0), as capture and team
         * tools compute it. */
        size_t i;
        json_t *f;
        json_array_foreach(json_object_get(e, "flows"), i, f) {
            char cid[COMMUNITY_ID_LEN];
            if (community_id_from_strings(0, json_string_value(json_object_get(f, "src")),
                    json_string_value(json_object_get(f, "dst")),
                    json_string_value(json_object_get(f, "proto")),
                    (int)json_integer_value(json_object_get(f, "sport")),
                    (int)json_integer_value(json_object_get(f, "dport")), cid) == 0)
                json_object_set_new(f, "community_id", json_string(cid));
        }
        if (e)
            json_object_set_new(e, "artefacts",
                                artefacts(st, e, json_object_get(b, "evidence")));
    }
    if (e) {
        json_object_set_new(e, "outcome", json_string(ok ? "succeeded" : "failed"));
        json_object_set_new(e, "detail", json_string(detail));
    }
    /* A result from before a reset belongs to guests that are gone. */
    if (ps->epoch == x->epochs[t->team - 1]) {
        queue_mark(x, t->team, st->id, json_object_get(e, "flows"));
        jwrite(x, e);
        xlog(x, t->team, "%s %s: %s", st->id, ok ? "succeeded" : "failed", detail);
        timeline_step_result(t->tl, ps->step, ok, detail);
        save_timeline(x, t->team, t->tl);
    } else {
        json_decref(e);
    }
    free(ps);
}

static void run_inject(exercise *x, team_ctx *t, int step)
{
    const scn_step *st = &x->p->scn->steps[step];
    json_t *e = step_entry(x, t->team, step, "inject");
    json_t *p = st->params;
    if (e) {
        static const char *const keep[] = { "from", "subject", "body", "channel",
                                            "deadline", "points", NULL };
        for (const char *const *k = keep; *k; k++)
            if (json_object_get(p, *k))
                json_object_set(e, *k, json_object_get(p, *k));
    }
    if (x->st && e) {
        int64_t dl = 0;
        const char *d = json_string_value(json_object_get(p, "deadline"));
        if (d)
            units_duration_parse(d, &dl);
        json_t *doc = json_pack("{s:O*, s:O*, s:O*, s:O*, s:O*}", "from",
                                json_object_get(p, "from"), "channel",
                                json_object_get(p, "channel"), "subject",
                                json_object_get(p, "subject"), "body",
                                json_object_get(p, "body"), "points",
                                json_object_get(p, "points"));
        long long now = now_wall_ms();
        store_inbox_add(x->st, x->p->exercise, t->team, st->id, now, dl > 0 ? now + dl : 0,
                        doc, store_failed, x);
        emit(x, "inject", t->team, 0, doc);
        json_decref(doc);
    }
    jwrite(x, e);
    xlog(x, t->team, "inject %s to the team's inbox: %s", st->id,
         json_string_value(json_object_get(p, "subject")) ?: "");
    timeline_step_result(t->tl, step, 1, "delivered to the team's inbox");
    save_timeline(x, t->team, t->tl);
}

static void on_run(timeline *tl, int step, void *opaque)
{
    team_ctx *t = opaque;
    exercise *x = t->x;
    const scenario *s = x->p->scn;
    const scn_step *st = &s->steps[step];
    char taddr[20] = "", aaddr[20] = "", caddr[20] = "";

    if (strcmp(st->action, "inject.message") == 0) {
        run_inject(x, t, step);
        return;
    }
    int g = st->actor >= 0 ? range_guest_find(x->r, t->team, s->hosts[st->actor].name) : -1;
    agentlink *l = g >= 0 ? range_guest_link(x->r, (size_t)g) : NULL;
    json_t *e = step_entry(x, t->team, step, "step_start");
    /* How late the step left its due time, in wall-clock milliseconds:
     * the scheduling delay the benchmark measures to the first packet. */
    int64_t due = timeline_step_due_ms(tl, step);
    if (e && due >= 0) {
        double late = (double)(timeline_elapsed_ms(tl) - due) / s->speed;
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        json_t *at = json_real((double)now.tv_sec * 1000.0 + now.tv_nsec / 1e6 - late);
        json_object_set_new(e, "late_ms", json_real(late));
        json_object_set_new(e, "scheduled", iso_ms(at));
        json_object_set_new(e, "scheduled_ms", at);
    }
    if (st->target >= 0 && range_host_address(x->r, t->team, st->actor, st->target, taddr,
                                        sizeof(taddr)) == 0 && e)
        json_object_set_new(e, "target_addr", json_string(taddr));
    if (st->actor >= 0 && range_host_address(x->r, t->team, st->target, st->actor, aaddr,
                                       sizeof(aaddr)) == 0 && e)
        json_object_set_new(e, "actor_addr", json_string(aaddr));
    if (l == NULL || !agentlink_connected(l)) {
        jwrite(x, e);
        char why[128];
        snprintf(why, sizeof(why), "the agent of %s is not connected",
                 st->actor >= 0 ? s->hosts[st->actor].name : "?");
        json_t *r = step_entry(x, t->team, step, "step_result");
        json_object_set_new(r, "outcome", json_string("failed"));
        json_object_set_new(r, "detail", json_string(why));
        jwrite(x, r);
        timeline_step_result(tl, step, 0, why);
        return;
    }
    json_t *msg = json_pack("{s:s, s:s, s:s, s:O, s:I}", "t", "action", "step", st->id,
                            "action", st->action, "params", st->params, "seed",
                            (json_int_t)(((uint64_t)t->team << 32) ^ (uint64_t)step));
    if (msg && st->target >= 0 && taddr[0])
        json_object_set_new(msg, "target", json_pack("{s:s, s:s}", "host",
                            s->hosts[st->target].name, "addr", taddr));
    int c2 = c2_host(s);
    if (msg && c2 >= 0 && range_host_address(x->r, t->team, st->actor, c2, caddr, sizeof(caddr)) == 0) {
        json_t *c = json_pack("{s:s}", "addr", caddr);
        const char *dom = json_string_value(json_object_get(st->params, "domain"));
        if (dom)
            json_object_set_new(c, "domain", json_string(dom));
        json_object_set_new(msg, "c2", c);
    }
    /* The agent enforces the action's own bounds; this deadline only
     * catches an agent that never answers. */
    int deadline = 15 * 60 * 1000;
    if (msg)
        json_object_set_new(msg, "deadline_ms", json_integer(deadline));
    pending_step *ps = calloc(1, sizeof(*ps));
    if (ps == NULL || msg == NULL) {
        free(ps);
        json_decref(msg);
        jwrite(x, e);
        timeline_step_result(tl, step, 0, "out of memory");
        return;
    }
    inflight_link(x, &ps->in, t);
    ps->step = step;
    ps->epoch = x->epochs[t->team - 1];
    snprintf(ps->actor_addr, sizeof(ps->actor_addr), "%s", aaddr);
    snprintf(ps->target_addr, sizeof(ps->target_addr), "%s", taddr);
    /* The action leaves first, the journal line (fsync'd) right after: the
     * step's first packet should not wait for the host's disk.  The result
     * line, which needs the start line, comes back much later. */
    if (agentlink_request(l, msg, deadline + ACTION_MARGIN_MS, action_reply, ps) < 0) {
        inflight_done(&ps->in);
        free(ps);
        jwrite(x, e);
        timeline_step_result(tl, step, 0, "cannot send the action to the agent");
        return;
    }
    jwrite(x, e);
    xlog(x, t->team, "%s: %s %s%s%s", st->id, st->action,
         st->actor >= 0 ? s->hosts[st->actor].name : "",
         st->target >= 0 ? " -> " : "", st->target >= 0 ? s->hosts[st->target].name : "");
}

typedef struct cond_ctx {
    inflight in;
    int step;
    int want_up;               /* for check conditions */
    int is_check;
    unsigned epoch;
} cond_ctx;

static void cond_reply(agentlink *l, const proto_msg *m, const char *why, void *opaque)
{
    cond_ctx *c = opaque;
    (void)l;
    if (!inflight_done(&c->in)) {
        free(c);
        return;
    }
    team_ctx *t = c->in.t;
    exercise *x = t->x;
    int reach = m && m->u.reply.ok &&
                json_is_true(json_object_get(m->u.reply.body, "reachable"));
    char text[256];
    if (m)
        snprintf(text, sizeof(text), "probe: %s", reach ? "reachable" : "unreachable");
    else
        snprintf(text, sizeof(text), "probe: no answer (%s)", why);
    int holds = c->is_check ? (reach == c->want_up) : reach;
    if (c->epoch == x->epochs[t->team - 1])
        timeline_condition_result(t->tl, c->step, holds, text);
    free(c);
}

/* Conditions on checks and reachability: a TCP probe from a guest.  (The
 * availability checks engine of the scoring issue will answer check
 * conditions from its recent results instead.) */
static void on_condition(timeline *tl, int step, const json_t *when, void *opaque)
{
    team_ctx *t = opaque;
    exercise *x = t->x;
    const scenario *s = x->p->scn;
    const scn_step *st = &s->steps[step];
    int from = -1, to = -1, port = 0, is_check = 0, want_up = 1;
    const char *ref;
    char addr[20];

    if ((ref = json_string_value(json_object_get(when, "check"))) != NULL) {
        for (size_t i = 0; i < s->n_checks; i++)
            if (strcmp(s->checks[i].id, ref) == 0) {
                from = s->checks[i].from;
                to = s->checks[i].target;
                port = s->checks[i].port;
            }
        is_check = 1;
        const char *state = json_string_value(json_object_get(when, "state"));
        want_up = !(state && strcmp(state, "down") == 0);
        /* The checks engine's latest result answers, when there is one. */
        int up = checks_state(x->ck, t->team, ref);
        if (up >= 0) {
            char text[160];
            snprintf(text, sizeof(text), "check %s is %s", ref, up ? "up" : "down");
            timeline_condition_result(tl, step, up == want_up, text);
            return;
        }
    } else if ((ref = json_string_value(json_object_get(when, "reachable"))) != NULL) {
        from = st->actor;
        to = scenario_host_index(s, ref);
        port = (int)json_integer_value(json_object_get(when, "port"));
    }
    int g = from >= 0 ? range_guest_find(x->r, t->team, s->hosts[from].name) : -1;
    agentlink *l = g >= 0 ? range_guest_link(x->r, (size_t)g) : NULL;
    if (l == NULL || to < 0 || range_host_address(x->r, t->team, from, to, addr, sizeof(addr)) < 0) {
        timeline_condition_result(tl, step, 0, "cannot evaluate: no agent or address");
        return;
    }
    cond_ctx *c = calloc(1, sizeof(*c));
    proto_probe pr = { .proto = "tcp", .addr = addr, .port = port, .timeout_ms = 3000 };
    proto_err pe;
    json_t *req = proto_build_probe(0, &pr, &pe);
    if (c == NULL || req == NULL) {
        free(c);
        json_decref(req);
        timeline_condition_result(tl, step, 0, "out of memory");
        return;
    }
    inflight_link(x, &c->in, t);
    c->step = step;
    c->is_check = is_check;
    c->want_up = want_up;
    c->epoch = x->epochs[t->team - 1];
    if (agentlink_request(l, req, 10000, cond_reply, c) < 0) {
        inflight_done(&c->in);
        free(c);
        timeline_condition_result(tl, step, 0, "cannot send the probe");
    }
}

static void on_event(timeline *tl, int step, const char *what, void *opaque)
{
    team_ctx *t = opaque;
    exercise *x = t->x;
    save_timeline(x, t->team, tl);
    /* Step starts and results are journaled with their details elsewhere;
     * clock changes and decisions are journaled here. */
    if (step < 0 || strstr(what, "not taken") || strstr(what, "skipped")) {
        json_t *e = json_pack("{s:s, s:s, s:i, s:s}", "kind", "timeline", "exercise",
                              x->p->exercise, "team", t->team, "event", what);
        if (e && step >= 0)
            json_object_set_new(e, "step", json_string(x->p->scn->steps[step].id));
        jwrite(x, e);
        xlog(x, t->team, "%s", what);
    }
}

/* Opens <dir>/<name>.jsonl for this run.  A previous run's file is kept
 * under its last write time: a record is never overwritten. */
static journal *open_record(const char *dir, const char *name, int append, char *err,
                            size_t errlen)
{
    char *path = NULL, *old = NULL;
    struct stat st;
    journal *j;

    if (asprintf(&path, "%s/%s.jsonl", dir, name) < 0) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (!append && stat(path, &st) == 0) {
        struct tm tm;
        gmtime_r(&st.st_mtime, &tm);
        if (asprintf(&old, "%s/%s-%04d%02d%02dT%02d%02d%02dZ.jsonl", dir, name,
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec) >= 0)
            rename(path, old);
        free(old);
    }
    j = journal_open(path, err, errlen);
    free(path);
    return j;
}

static long long now_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_check_result(checks *c, int team, const json_t *res, void *opaque)
{
    exercise *x = opaque;
    (void)c;
    (void)team;
    if (journal_append(x->jchecks, (json_t *)res) < 0)
        xlog(x, 0, "WARNING: a check result could not be recorded");
    json_array_append(x->check_log, (json_t *)res);
    const char *id = json_string_value(json_object_get(res, "check"));
    int ok = json_is_true(json_object_get(res, "ok"));
    if (x->st && id)
        store_check_add(x->st, x->p->exercise, team,
                        id, (int64_t)json_integer_value(json_object_get(res, "ts_ms")), ok,
                        json_string_value(json_object_get(res, "detail")), store_failed, x);
    char key[96];
    snprintf(key, sizeof(key), "%d:%s", team, id ? id : "?");
    json_t *prev = json_object_get(x->check_up, key);
    if (prev == NULL || json_is_true(prev) != ok) {
        json_object_set_new(x->check_up, key, json_boolean(ok));
        emit(x, "check", team, 0, res);
    }
}

/* Reads back what a previous run of this exercise recorded: the journal
 * and check results for scoring, the findings (from the store when there
 * is one: it is the authority), and each team's timeline. */
static void resume_records(exercise *x)
{
    char *path = NULL;
    json_t *old;

    if (asprintf(&path, "%s/journal.jsonl", x->dir) >= 0 && (old = journal_read(path))) {
        json_array_extend(x->jlog, old);
        json_decref(old);
    }
    free(path);
    path = NULL;
    if (asprintf(&path, "%s/checks.jsonl", x->dir) >= 0 && (old = journal_read(path))) {
        json_array_extend(x->check_log, old);
        json_decref(old);
    }
    free(path);
    path = NULL;
    if (x->st) {
        store_err e;
        json_t *rows = store_findings_list(x->st, x->p->exercise, STORE_ALL_TEAMS, &e);
        size_t i;
        json_t *row;
        json_array_foreach(rows, i, row) {
            json_t *f = json_deep_copy(json_object_get(row, "doc"));
            if (f == NULL)
                continue;
            json_object_set(f, "id", json_object_get(row, "id"));
            json_object_set(f, "team", json_object_get(row, "team"));
            json_object_set(f, "label", json_object_get(row, "label") ?: json_null());
            json_object_set_new(f, "kind", json_string("finding"));
            json_array_append_new(x->findings_log, f);
            long long id = json_integer_value(json_object_get(row, "id"));
            if (id >= x->next_finding)
                x->next_finding = id + 1;
        }
        json_decref(rows);
    } else if (asprintf(&path, "%s/findings.jsonl", x->dir) >= 0 &&
               (old = journal_read(path))) {
        size_t i;
        json_t *l;
        json_array_foreach(old, i, l) {
            long long id = json_integer_value(json_object_get(l, "id"));
            if (id >= x->next_finding)
                x->next_finding = id + 1;
        }
        json_array_extend(x->findings_log, old);
        json_decref(old);
    }
    free(path);
}

static void restore_timelines(exercise *x)
{
    store_err e;
    json_t *rows = x->st ? store_timeline_list(x->st, x->p->exercise, &e) : NULL;
    size_t i;
    json_t *row;

    json_array_foreach(rows, i, row) {
        int team = (int)json_integer_value(json_object_get(row, "team"));
        json_t *snap = json_object_get(row, "state");
        if (snap == NULL)
            snap = json_object_get(row, "doc");
        if (team < 1 || team > x->n_teams || snap == NULL)
            continue;
        long long saved = json_integer_value(json_object_get(snap, "saved_ms"));
        long long down = saved > 0 ? now_wall_ms() - saved : 0;
        if (timeline_restore(x->teams[team - 1].tl, snap, down) == 0)
            xlog(x, team, "timeline restored (the orchestrator was away %.1f s)",
                 (double)down / 1000.0);
    }
    json_decref(rows);
}

exercise *exercise_new(uv_loop_t *loop, const plan *p, range *r, const char *dir,
                       uint64_t seed, exercise_log_cb log, void *opaque,
                       const exercise_opts *o, char *err, size_t errlen)
{
    exercise *x = calloc(1, sizeof(*x));
    static const timeline_ops ops = { on_run, on_condition, on_event };
    if (x == NULL)
        goto oom;
    x->loop = loop;
    x->p = p;
    x->r = r;
    x->log = log;
    x->opaque = opaque;
    x->n_teams = p->n_teams;
    if (o) {
        x->st = o->st;
        x->resume = o->resume;
        x->event = o->event;
        x->event_opaque = o->event_opaque;
    }
    x->check_up = json_object();
    x->dir = strdup(dir);
    x->teams = calloc((size_t)p->n_teams, sizeof(*x->teams));
    x->epochs = calloc((size_t)p->n_teams, sizeof(*x->epochs));
    if (x->dir == NULL || x->teams == NULL || x->epochs == NULL)
        goto oom;
    x->jlog = json_array();
    x->check_log = json_array();
    x->findings_log = json_array();
    x->next_finding = 1;
    if (x->jlog == NULL || x->check_log == NULL || x->findings_log == NULL)
        goto oom;
    if (x->resume)
        resume_records(x);
    if ((x->j = open_record(dir, "journal", x->resume, err, errlen)) == NULL ||
        (x->jchecks = open_record(dir, "checks", x->resume, err, errlen)) == NULL ||
        (x->jfindings = open_record(dir, "findings", x->resume, err, errlen)) == NULL) {
        exercise_free(x);
        return NULL;
    }
    if ((x->ck = checks_new(loop, p, r, on_check_result, x)) == NULL ||
        (x->marks = json_array()) == NULL)
        goto oom;
    {
        wire_opts wo = { .dir = dir, .write = 1 };
        if ((x->w = wire_new(loop, p, &wo, err, errlen)) == NULL) {
            exercise_free(x);
            return NULL;
        }
    }
    uv_timer_init(loop, &x->mark_timer);
    x->mark_timer.data = x;
    x->mark_timer_on = 1;
    uv_timer_start(&x->mark_timer, on_mark_timer, 500, 500);
    /* Availability is measured from the moment the range is up, whether or
     * not the clocks are held. */
    checks_start(x->ck);
    if (x->st && !x->resume) {
        store_exercise_put(x->st, p->exercise, p->scn->id, p->scn->root, now_wall_ms(),
                           "running", p->scn->speed, (int64_t)seed, NULL, store_failed, x);
        for (int t = 0; t < p->n_teams; t++)
            store_team_put(x->st, p->exercise, t + 1, p->teams[t].name, store_failed, x);
    }
    jwrite(x, json_pack("{s:s, s:s, s:s, s:s, s:i, s:f}", "kind", "exercise", "event",
                        x->resume ? "resumed" : "opened", "exercise", p->exercise,
                        "scenario", p->scn->id, "teams", p->n_teams, "speed", p->scn->speed));
    for (int t = 0; t < p->n_teams; t++) {
        x->teams[t].x = x;
        x->teams[t].team = t + 1;
        x->teams[t].tl = timeline_new(loop, p->scn, t + 1, seed, &ops, &x->teams[t]);
        if (x->teams[t].tl == NULL)
            goto oom;
    }
    if (x->resume)
        restore_timelines(x);
    return x;
oom:
    snprintf(err, errlen, "out of memory");
    exercise_free(x);
    return NULL;
}

int exercise_start(exercise *x)
{
    for (int t = 0; t < x->n_teams; t++)
        timeline_start(x->teams[t].tl);
    return 0;
}

json_t *exercise_status(const exercise *x)
{
    json_t *arr = json_array();
    for (int t = 0; arr && t < x->n_teams; t++)
        json_array_append_new(arr, timeline_to_json(x->teams[t].tl));
    return json_pack("{s:s, s:s, s:f, s:o}", "exercise", x->p->exercise, "scenario",
                     x->p->scn->id, "speed", x->p->scn->speed, "teams", arr);
}

int exercise_finished(const exercise *x)
{
    for (int t = 0; t < x->n_teams; t++) {
        timeline *tl = x->teams[t].tl;
        for (size_t i = 0; i < x->p->scn->n_steps; i++) {
            timeline_step_state s = timeline_state(tl, (int)i);
            if (s == TL_PENDING || s == TL_SCHEDULED || s == TL_CHECKING ||
                s == TL_RUNNING)
                return 0;
        }
    }
    return 1;
}

static void reset_done(range *r, int ok, const char *msg, void *opaque)
{
    team_ctx *t = opaque;
    exercise *x = t->x;
    (void)r;
    t->resetting = 0;
    json_t *e = json_pack("{s:s, s:s, s:i, s:s, s:s}", "kind", "instructor", "exercise",
                          x->p->exercise, "team", t->team, "event",
                          ok ? "reset complete" : "reset failed", "detail", msg);
    jwrite(x, e);
    xlog(x, t->team, "reset %s: %s", ok ? "complete" : "FAILED", msg);
    if (ok) {
        char err[512];
        if (wire_team_reopen(x->w, t->team, err, sizeof(err)) < 0)
            xlog(x, t->team, "WARNING: %s", err);
        timeline_start(t->tl);
    }
}

static json_t *team_command(exercise *x, team_ctx *t, const char *cmd, int step)
{
    int rc = -1;
    char err[256] = "";
    if (strcmp(cmd, "pause") == 0)
        rc = timeline_pause(t->tl);
    else if (strcmp(cmd, "resume") == 0)
        rc = timeline_resume(t->tl);
    else if (strcmp(cmd, "start") == 0)
        rc = timeline_start(t->tl);
    else if (strcmp(cmd, "skip") == 0)
        rc = timeline_skip(t->tl, step);
    else if (strcmp(cmd, "run") == 0)
        rc = timeline_run_now(t->tl, step);
    else if (strcmp(cmd, "reset") == 0) {
        if (t->resetting) {
            snprintf(err, sizeof(err), "team %d is being reset", t->team);
        } else {
            /* Results still on their way belong to the old guests. */
            x->epochs[t->team - 1]++;
            timeline_reset(t->tl);
            rc = range_team_rebuild(x->r, t->team, reset_done, t, err, sizeof(err));
            t->resetting = rc == 0;
        }
    }
    if (rc < 0 && err[0] == '\0')
        snprintf(err, sizeof(err), "team %d: cannot %s now (clock %s%s%s)", t->team, cmd,
                 timeline_clock_name(timeline_clock_state(t->tl)),
                 step >= 0 ? ", step " : "",
                 step >= 0 ? timeline_state_name(timeline_state(t->tl, step)) : "");
    return rc < 0 ? json_pack("{s:b, s:s}", "ok", 0, "error", err)
                  : json_pack("{s:b}", "ok", 1);
}

/* Findings, labels, checks and scores. */
/* A finding (or a label) waiting for the store's acknowledgement. */
typedef struct finding_op {
    exercise *x;
    json_t *line;              /* the findings.jsonl line, without "id" yet */
    exercise_done_cb cb;
    void *cbopaque;
} finding_op;

/* The finding is durable: it joins the records used for scoring and the
 * caller hears about it. */
static void finding_stored(finding_op *op, long long id)
{
    exercise *x = op->x;
    json_t *f = op->line;
    int team = (int)json_integer_value(json_object_get(f, "team"));

    if (id > 0)
        json_object_set_new(f, "id", json_integer(id));
    id = json_integer_value(json_object_get(f, "id"));
    if (x->st && journal_append(x->jfindings, f) < 0)
        xlog(x, team, "WARNING: finding #%lld is in the store but not in findings.jsonl", id);
    json_array_append(x->findings_log, f);
    if (id >= x->next_finding)
        x->next_finding = id + 1;
    json_t *pub = json_deep_copy(f);
    json_object_del(pub, "kind");
    if (strcmp(json_string_value(json_object_get(f, "kind")), "finding") == 0) {
        xlog(x, team, "finding #%lld filed", id);
        emit(x, "finding", team, 0, pub);
    } else {
        emit(x, "finding", team, 0, pub);
    }
    if (op->cb)
        op->cb(op->cbopaque, 200, pub, NULL);
    json_decref(pub);
}

static void finding_ack(const store_result *res, void *opaque)
{
    finding_op *op = opaque;
    if (res->rc != 0) {
        xlog(op->x, 0, "WARNING: a finding could not be stored: %s", res->err.msg);
        if (op->cb)
            op->cb(op->cbopaque, res->rc == STORE_ENOTFOUND ? 404 : 500, NULL, res->err.msg);
    } else {
        const char *kind = json_string_value(json_object_get(op->line, "kind"));
        finding_stored(op, kind && strcmp(kind, "label") == 0 ? 0 : res->id);
    }
    json_decref(op->line);
    free(op);
}

int exercise_finding_add(exercise *x, int team, const json_t *finding, const char *by,
                         exercise_done_cb cb, void *cbopaque)
{
    char err[1024];
    long long now = now_wall_ms();

    if (team < 1 || team > x->n_teams) {
        cb(cbopaque, 400, NULL, "no such team");
        return 0;
    }
    json_t *f = findings_normalize(finding, x->p->scn, team, now, err, sizeof(err));
    if (f == NULL) {
        cb(cbopaque, 400, NULL, err);
        return 0;
    }
    json_object_set_new(f, "kind", json_string("finding"));
    if (by)
        json_object_set_new(f, "by", json_string(by));
    finding_op *op = calloc(1, sizeof(*op));
    if (op == NULL) {
        json_decref(f);
        return -1;
    }
    op->x = x;
    op->line = f;
    op->cb = cb;
    op->cbopaque = cbopaque;
    if (x->st) {
        /* Acknowledged once the store has committed it. */
        if (store_finding_add(x->st, x->p->exercise, team, 0, now,
                              json_integer_value(json_object_get(f, "detected_ms")), f,
                              finding_ack, op) < 0) {
            json_decref(f);
            free(op);
            return -1;
        }
        return 0;
    }
    /* Without a store, findings.jsonl (fsync'd) is the durable copy. */
    json_object_set_new(f, "id", json_integer(x->next_finding));
    if (journal_append(x->jfindings, f) < 0) {
        cb(cbopaque, 500, NULL, "the finding could not be stored");
        json_decref(f);
        free(op);
        return 0;
    }
    finding_stored(op, 0);
    json_decref(f);
    free(op);
    return 0;
}

int exercise_finding_label(exercise *x, long long id, const char *label, const char *by,
                           exercise_done_cb cb, void *cbopaque)
{
    json_t *all = findings_fold(x->findings_log, 0), *f = NULL;
    size_t i;
    json_t *it;

    json_array_foreach(all, i, it)
        if (json_integer_value(json_object_get(it, "id")) == id)
            f = it;
    if (f == NULL) {
        json_decref(all);
        cb(cbopaque, 404, NULL, "no such finding");
        return 0;
    }
    json_t *line = json_pack("{s:s, s:I, s:i, s:s?, s:s?}", "kind", "label", "finding",
                             (json_int_t)id, "team",
                             (int)json_integer_value(json_object_get(f, "team")), "label", label,
                             "by", by);
    json_decref(all);
    finding_op *op = calloc(1, sizeof(*op));
    if (line == NULL || op == NULL) {
        json_decref(line);
        free(op);
        return -1;
    }
    op->x = x;
    op->line = line;
    op->cb = cb;
    op->cbopaque = cbopaque;
    if (x->st) {
        if (store_finding_label(x->st, x->p->exercise, id, label, by, now_wall_ms(),
                                finding_ack, op) < 0) {
            json_decref(line);
            free(op);
            return -1;
        }
        return 0;
    }
    if (journal_append(x->jfindings, line) < 0) {
        cb(cbopaque, 500, NULL, "the label could not be stored");
        json_decref(line);
        free(op);
        return 0;
    }
    finding_stored(op, 0);
    json_decref(line);
    free(op);
    return 0;
}

json_t *exercise_findings(exercise *x, int team)
{
    return findings_fold(x->findings_log, team);
}

json_t *exercise_score(exercise *x, int team, const json_t *grades, char *err, size_t errlen)
{
    json_t *fl = findings_fold(x->findings_log, team);
    json_t *wf = wire_flows(x->w, team);
    json_t *b = scorecard_team(x->p->scn, team, now_wall_ms(), x->jlog, fl, x->check_log, wf,
                               grades, err, errlen);
    json_decref(fl);
    json_decref(wf);
    return b;
}

char *exercise_pcap_dir(exercise *x, int team)
{
    return wire_pcap_dir(x->w, team);
}

static json_t *scoring_command(exercise *x, const char *cmd, int team)
{
    if (strcmp(cmd, "findings") == 0)
        return json_pack("{s:b, s:o}", "ok", 1, "findings", findings_fold(x->findings_log, team));
    json_t *teams = json_array();
    for (int t = 1; t <= x->n_teams; t++) {
        if (team && t != team)
            continue;
        if (strcmp(cmd, "wire") == 0) {
            json_array_append_new(teams, wire_counters(x->w, t));
            continue;
        }
        if (strcmp(cmd, "checks") == 0) {
            json_array_append_new(teams, json_pack("{s:i, s:o}", "team", t, "checks",
                                                   checks_status(x->ck, t)));
            continue;
        }
        char err[512];
        json_t *b = exercise_score(x, t, NULL, err, sizeof(err));
        if (b == NULL) {
            json_decref(teams);
            return json_pack("{s:b, s:s}", "ok", 0, "error", err);
        }
        json_array_append_new(teams, b);
    }
    return json_pack("{s:b, s:o}", "ok", 1, "teams", teams);
}

json_t *exercise_command(exercise *x, const json_t *c)
{
    const char *cmd = json_string_value(json_object_get(c, "cmd"));
    json_t *team_v = json_object_get(c, "team");
    int team = json_is_integer(team_v) ? (int)json_integer_value(team_v) : 0;
    const char *step_id = json_string_value(json_object_get(c, "step"));
    int step = -1;
    static const char *const known[] = { "pause", "resume", "skip", "run", "reset",
                                         "start", NULL };
    int ok_cmd = 0;

    if (cmd == NULL)
        return json_pack("{s:b, s:s}", "ok", 0, "error", "missing 'cmd'");
    if (strcmp(cmd, "status") == 0) {
        json_t *st = exercise_status(x);
        json_object_set_new(st, "ok", json_true());
        return st;
    }
    if (strcmp(cmd, "guests") == 0) {
        json_t *arr = json_array();
        for (size_t i = 0; arr && i < range_guest_count(x->r); i++) {
            json_t *g = json_pack("{s:i, s:s, s:s, s:s, s:f}", "team",
                                  range_guest_team(x->r, i), "host",
                                  x->p->scn->hosts[range_guest_host(x->r, i)].name,
                                  "domain", range_guest_domain(x->r, i), "state",
                                  range_guest_state_name(range_guest_get_state(x->r, i)),
                                  "ready_s", range_guest_ready_s(x->r, i));
            const json_t *hl = range_guest_health(x->r, i);
            if (g && hl)
                json_object_set(g, "health", (json_t *)hl);
            json_array_append_new(arr, g);
        }
        json_t *wires = json_array(), *cks = json_array();
        for (int t = 1; t <= x->n_teams; t++) {
            json_array_append_new(wires, wire_counters(x->w, t));
            json_array_append_new(cks, json_pack("{s:i, s:o}", "team", t, "checks",
                                                 checks_status(x->ck, t)));
        }
        return json_pack("{s:b, s:o, s:o, s:o}", "ok", 1, "guests", arr, "wire", wires,
                         "checks", cks);
    }
    if (strcmp(cmd, "findings") == 0 || strcmp(cmd, "score") == 0 ||
        strcmp(cmd, "checks") == 0 || strcmp(cmd, "wire") == 0) {
        if (team < 0 || team > x->n_teams)
            return json_pack("{s:b, s:s}", "ok", 0, "error", "no such team");
        return scoring_command(x, cmd, team);
    }
    for (const char *const *k = known; *k; k++)
        ok_cmd |= strcmp(*k, cmd) == 0;
    if (!ok_cmd)
        return json_pack("{s:b, s:s}", "ok", 0, "error", "unknown command");
    if (team < 0 || team > x->n_teams)
        return json_pack("{s:b, s:s}", "ok", 0, "error", "no such team");
    if (strcmp(cmd, "skip") == 0 || strcmp(cmd, "run") == 0) {
        if (step_id == NULL || (step = scenario_step_index(x->p->scn, step_id)) < 0)
            return json_pack("{s:b, s:s}", "ok", 0, "error", "unknown or missing 'step'");
    }
    json_t *results = json_array();
    int all_ok = 1;
    for (int t = 0; t < x->n_teams; t++) {
        if (team != 0 && team != t + 1)
            continue;
        json_t *r = team_command(x, &x->teams[t], cmd, step);
        all_ok &= json_is_true(json_object_get(r, "ok"));
        json_object_set_new(r, "team", json_integer(t + 1));
        json_array_append_new(results, r);
        json_t *e = json_pack("{s:s, s:s, s:i, s:s, s:b}", "kind", "instructor",
                              "exercise", x->p->exercise, "team", t + 1, "event", cmd,
                              "ok", json_is_true(json_object_get(r, "ok")));
        if (e && step_id)
            json_object_set_new(e, "step", json_string(step_id));
        jwrite(x, e);
    }
    json_t *out = json_pack("{s:b, s:o}", "ok", all_ok, "teams", results);
    if (!all_ok) {
        json_t *first = NULL;
        size_t i;
        json_t *r;
        json_array_foreach(results, i, r)
            if (!first && !json_is_true(json_object_get(r, "ok")))
                first = json_object_get(r, "error");
        json_object_set_new(out, "error", first ? json_incref(first) : json_string("failed"));
    }
    return out;
}

static void exercise_closed(uv_handle_t *h)
{
    free(h->data);
}

void exercise_free(exercise *x)
{
    if (x == NULL)
        return;
    /* Replies still due (the links close later) must not find x. */
    for (inflight *in = x->inflight, *n; in; in = n) {
        n = in->next;
        in->t = NULL;
    }
    x->inflight = NULL;
    for (int t = 0; x->teams && t < x->n_teams; t++)
        timeline_free(x->teams[t].tl);
    if (x->w && x->marks)
        run_marks(x, 1);

    wire_close(x->w);
    json_decref(x->marks);
    journal_close(x->j);
    journal_close(x->jchecks);
    journal_close(x->jfindings);
    checks_close(x->ck);
    json_decref(x->jlog);
    json_decref(x->check_log);
    json_decref(x->findings_log);
    json_decref(x->check_up);
    free(x->teams);
    free(x->epochs);
    free(x->dir);
    /* The timer lives inside x: x goes once libuv has closed it. */
    if (x->mark_timer_on)
        uv_close((uv_handle_t *)&x->mark_timer, exercise_closed);
    else
        free(x);
}
