/* api — the HTTP/JSON API and WebSockets of `cyrange serve`.
 *
 * Every route goes through one dispatcher that applies the policy in the
 * same order: session (401), CSRF on state-changing methods (403 "csrf"),
 * then authorisation through auth_can only (403), then the team's
 * existence (404), and only then the handler, which validates the body.
 * So a member addressing another team learns nothing about it.
 *
 * Writes answer from the store's or the ops' callback, once durable.  An
 * asynchronous operation holds a reference on the API, so api_free waits
 * for it (and for the WebSockets' on_close) before freeing.
 *
 * Team events (GET /api/teams/{team}/events) come from an in-memory ring
 * per team, seeded at start from the store's rows (findings, inbox items,
 * reports, responses, reviews) and fed by every api_event() call: the API
 * calls it for the writes it acknowledges, cli_serve for injects, checks,
 * guests and steps.
 */
#include <ctype.h>
#include <errno.h>
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "addr.h"
#include "api.h"
#include "findings.h"
#include "websock.h"

#define SECTION_MAX (64u * 1024)        /* bytes of one report section */
#define REPORT_BODY_MAX (256u * 1024)   /* bytes of a report request */
#define TITLE_MAX 200
#define RESPONSE_MAX (64u * 1024)
#define ANALYSIS_ITEMS_MAX 200
#define ANALYSIS_TEXT_MAX (8u * 1024)   /* bytes of one "what" or "improve" */
/* 200 items of two full texts, with room for JSON escapes. */
#define ANALYSIS_BODY_MAX (4u * 1024 * 1024)
#define RING_SIZE 512                   /* events kept per team */
#define BOARD_TTL_MS 1000               /* longest a scoreboard is served again */
#define EVENTS_BUFFERED_MAX (256u * 1024) /* a slower subscriber is dropped */
#define CONSOLE_BUFFERED_MAX (1024u * 1024)

/* Who may use a route; the dispatcher maps each to auth_can. */
typedef enum acc {
    ACC_PUBLIC,      /* no session */
    ACC_SESSION,     /* any logged-in user */
    ACC_READ_ALL,    /* every team's data: READ_TEAM of team 0 */
    ACC_TEAM_READ,   /* READ_TEAM of {team} */
    ACC_TEAM_WRITE,  /* WRITE_TEAM of {team} */
    ACC_TEAM_STEER,  /* STEER of {team} */
    ACC_STEER,       /* STEER, exercise-wide */
    ACC_ADMIN,       /* ADMIN_USERS */
    ACC_CONSOLE      /* CONSOLE of {team} */
} acc;

static const char *const acc_names[] = {
    "public", "session", "read_all", "team_read", "team_write", "team_steer", "steer",
    "admin", "console"
};

/* What a handler gets once the policy has let the request through. */
typedef struct call {
    auth_principal p; /* zeroed for public routes */
    int team;         /* {team}, else 0 */
} call;

typedef void (*route_fn)(api *a, httpd_req *req, const call *c);

typedef struct route {
    const char *method;
    const char *path;
    route_fn fn;
    acc access;
    size_t limit; /* body bytes, 0: the server's default */
} route;

typedef struct route_ctx {
    api *a;
    const route *r;
} route_ctx;

typedef struct ev {
    int64_t seq, ts_ms;
    char type[16];
    char *summary;
    int instructors_only;
} ev;

typedef struct ring {
    ev e[RING_SIZE];
    size_t head, n; /* oldest at head */
} ring;

typedef struct sub {
    struct sub *next;
    api *a;
    websock *ws;
    auth_principal p;
} sub;

typedef struct con {
    struct con *next;
    api *a;
    websock *ws;
    console_viewer *v;
    int ended;
} con;

struct api {
    uv_loop_t *loop;
    httpd *h;
    store *st;
    auth *au;
    api_ops ops;
    char *exercise;
    char *openapi_path;
    int secure;
    auth_kdf kdf;
    route_ctx *ctx;
    size_t n_routes;
    int n_teams;
    ring *rings; /* [0 .. n_teams], index 0 unused */
    int64_t seq;
    sub *subs;
    con *cons;
    int refs;
    int closing;
    /* The scoreboard as last served: scoring every team reads every
     * report and replays every journal, so under a room of browsers
     * polling it the same bytes are served until something happens (any
     * api_event(): a finding, a step, a check, a grade) or BOARD_TTL_MS
     * passes (availability and decay move with the clock). */
    char *board;
    size_t board_len;
    int64_t board_at;
};

/* ---- small helpers ----------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void api_ref(api *a)
{
    a->refs++;
}

static void really_free(api *a)
{
    for (int t = 0; a->rings && t <= a->n_teams; t++)
        for (size_t i = 0; i < a->rings[t].n; i++)
            free(a->rings[t].e[(a->rings[t].head + i) % RING_SIZE].summary);
    free(a->rings);
    free(a->ctx);
    free(a->exercise);
    free(a->openapi_path);
    free(a->board);
    free(a);
}

/* Something that may change a score happened: the next scoreboard GET
 * computes it anew. */
static void board_forget(api *a)
{
    free(a->board);
    a->board = NULL;
    a->board_len = 0;
}

static void api_unref(api *a)
{
    if (--a->refs == 0 && a->closing)
        really_free(a);
}

static int store_status(int code)
{
    switch (code) {
    case STORE_EINVAL: return 400;
    case STORE_ENOTFOUND: return 404;
    case STORE_ECONFLICT: return 409;
    default: return 500;
    }
}

static const char *status_code(int status)
{
    switch (status) {
    case 400: return "invalid";
    case 401: return "unauthenticated";
    case 403: return "forbidden";
    case 404: return "not_found";
    case 409: return "conflict";
    case 429: return "rate_limited";
    case 503: return "unavailable";
    default: return "internal";
    }
}

static void store_fail(httpd_req *req, const store_err *e)
{
    int s = store_status(e->code);
    httpd_error(req, s, status_code(s), "%s", e->msg);
}

static void respond_new(httpd_req *req, int status, json_t *j)
{
    if (j == NULL) {
        httpd_error(req, 500, "internal", "out of memory");
        return;
    }
    httpd_respond_json(req, status, j);
    json_decref(j);
}

/* A strictly positive decimal id, or -1. */
static long long parse_id(const char *s)
{
    long long v = 0;
    if (s == NULL || *s == '\0' || strlen(s) > 15)
        return -1;
    for (const char *p = s; *p; p++) {
        if (!isdigit((unsigned char)*p))
            return -1;
        v = v * 10 + (*p - '0');
    }
    return v > 0 ? v : -1;
}

static const plan *the_plan(const api *a)
{
    return a->ops.plan ? a->ops.plan(a->ops.opaque) : NULL;
}

static const scenario *the_scn(const api *a)
{
    const plan *p = the_plan(a);
    return p ? p->scn : NULL;
}

static json_t *command(api *a, const char *cmd, int team)
{
    json_t *c = json_pack("{s:s, s:i}", "cmd", cmd, "team", team), *r = NULL;
    if (c && a->ops.command)
        r = a->ops.command(a->ops.opaque, c);
    json_decref(c);
    return r;
}

static json_t *user_json(const auth_principal *p)
{
    return json_pack("{s:I, s:s, s:s, s:i}", "id", (json_int_t)p->user_id, "name", p->name,
                     "role", auth_role_name(p->role), "team", p->team);
}

static int is_member(const call *c)
{
    return c->p.role == AUTH_ROLE_MEMBER;
}

/* ---- exercise state --------------------------------------------------- */

/* "finished" when every team's clock has finished, "running" when one
 * runs, else "held"; *started gets the status's started_ms or 0. */
static const char *exercise_state(api *a, int64_t *started)
{
    json_t *st = command(a, "status", 0);
    json_t *teams = json_object_get(st, "teams");
    size_t i, n = json_array_size(teams), fin = 0, run = 0;
    const char *out;
    if (started)
        *started = json_integer_value(json_object_get(st, "started_ms"));
    for (i = 0; i < n; i++) {
        const char *clk = json_string_value(json_object_get(json_array_get(teams, i), "clock"));
        if (clk && strcmp(clk, "finished") == 0)
            fin++;
        else if (clk && strcmp(clk, "running") == 0)
            run++;
    }
    out = n > 0 && fin == n ? "finished" : run > 0 ? "running" : "held";
    json_decref(st);
    return out;
}

/* ---- events: rings and the WebSocket ---------------------------------- */

static void ring_push(ring *r, int64_t seq, int64_t ts, const char *type, const char *summary,
                      int instructors_only)
{
    ev *e;
    if (r->n == RING_SIZE) {
        free(r->e[r->head].summary);
        r->head = (r->head + 1) % RING_SIZE;
        r->n--;
    }
    e = &r->e[(r->head + r->n) % RING_SIZE];
    e->seq = seq;
    e->ts_ms = ts;
    snprintf(e->type, sizeof e->type, "%s", type);
    e->summary = strdup(summary ? summary : type);
    e->instructors_only = instructors_only;
    r->n++;
}

static const char *event_summary(const char *type, const json_t *data, char *buf, size_t len)
{
    static const char *const keys[] = { "summary", "subject", "description", "title", NULL };
    for (const char *const *k = keys; *k; k++) {
        const char *s = json_string_value(json_object_get(data, *k));
        if (s) {
            snprintf(buf, len, "%s: %.160s", type, s);
            return buf;
        }
    }
    if (json_is_integer(json_object_get(data, "id")))
        snprintf(buf, len, "%s #%lld", type,
                 (long long)json_integer_value(json_object_get(data, "id")));
    else
        snprintf(buf, len, "%s", type);
    return buf;
}

/* Members see their own team and exercise-wide events, never the
 * attacker's steps nor the timeline's details. */
static int sub_may_see(const auth_principal *p, const char *type, int team,
                       int instructors_only)
{
    if (p->role == AUTH_ROLE_INSTRUCTOR || p->role == AUTH_ROLE_OBSERVER)
        return 1;
    if (p->role != AUTH_ROLE_MEMBER || instructors_only)
        return 0;
    if (strcmp(type, "step") == 0 || strcmp(type, "timeline") == 0)
        return 0;
    return team == 0 || team == p->team;
}

void api_event(api *a, const char *type, int team, int instructors_only, const json_t *data)
{
    char sum[200];
    int64_t ts = now_ms();
    json_t *msg;
    char *text;
    sub *s, *next;

    if (a == NULL || a->closing || type == NULL)
        return;
    board_forget(a);
    event_summary(type, data, sum, sizeof sum);
    a->seq++;
    for (int t = 1; t <= a->n_teams; t++)
        if (team == 0 || team == t)
            ring_push(&a->rings[t], a->seq, ts, type, sum, instructors_only);
    msg = json_pack("{s:s, s:i, s:I, s:O?}", "type", type, "team", team, "ts_ms",
                    (json_int_t)ts, "data", (json_t *)data);
    text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    json_decref(msg);
    if (text == NULL)
        return;
    for (s = a->subs; s; s = next) {
        next = s->next;
        if (!sub_may_see(&s->p, type, team, instructors_only))
            continue;
        /* A subscriber that does not keep up is dropped rather than let
         * its backlog grow. */
        if (websock_buffered(s->ws) > EVENTS_BUFFERED_MAX) {
            websock_close(s->ws, 1008, "too slow");
            continue;
        }
        websock_send_text(s->ws, text, strlen(text));
    }
    free(text);
}

static void sub_closed(websock *ws, int code, void *opaque)
{
    sub *s = opaque, **pp;
    api *a = s->a;
    (void)ws;
    (void)code;
    for (pp = &a->subs; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    free(s);
    api_unref(a);
}

static void sub_message(websock *ws, int is_text, const char *data, size_t len, void *opaque)
{
    /* The events socket is one-way: client messages are ignored. */
    (void)ws;
    (void)is_text;
    (void)data;
    (void)len;
    (void)opaque;
}

static void h_events_ws(api *a, httpd_req *req, const call *c)
{
    static const websock_cbs cbs = { sub_message, sub_closed, NULL };
    websock_opts o = { 0 };
    sub *s = calloc(1, sizeof *s);
    if (s == NULL) {
        httpd_error(req, 500, "internal", "out of memory");
        return;
    }
    s->a = a;
    s->p = c->p;
    o.max_message = 4096;
    o.max_buffered = 2 * EVENTS_BUFFERED_MAX;
    s->ws = websock_accept_opts(req, &cbs, &o, s);
    if (s->ws == NULL) {
        free(s);
        return;
    }
    api_ref(a);
    s->next = a->subs;
    a->subs = s;
}

/* Seeds the rings from the store, so that a restarted server still shows
 * the teams' history. */
static int ev_cmp(const void *x, const void *y)
{
    const json_t *a = *(const json_t *const *)x, *b = *(const json_t *const *)y;
    json_int_t ta = json_integer_value(json_object_get(a, "ts")),
               tb = json_integer_value(json_object_get(b, "ts"));
    return ta < tb ? -1 : ta > tb;
}

static void seed_add(json_t *arr, json_int_t ts, const char *type, const char *fmt,
                     const char *s, long long id)
{
    char sum[200];
    snprintf(sum, sizeof sum, fmt, id, s ? s : "");
    json_array_append_new(arr, json_pack("{s:I, s:s, s:s}", "ts", ts, "type", type,
                                         "summary", sum));
}

static void seed_rings(api *a)
{
    for (int t = 1; t <= a->n_teams; t++) {
        json_t *arr = json_array(), *rows, *v;
        size_t i, n;
        if (arr == NULL)
            return;
        rows = store_findings_list(a->st, a->exercise, t, NULL);
        json_array_foreach(rows, i, v)
            seed_add(arr, json_integer_value(json_object_get(v, "submitted_ms")), "finding",
                     "finding #%lld: %.160s",
                     json_string_value(json_object_get(json_object_get(v, "doc"),
                                                       "description")),
                     (long long)json_integer_value(json_object_get(v, "id")));
        json_decref(rows);
        rows = store_inbox_list(a->st, a->exercise, t, NULL);
        json_array_foreach(rows, i, v)
            seed_add(arr, json_integer_value(json_object_get(v, "ts_ms")), "inject",
                     "inject #%lld: %.160s",
                     json_string_value(json_object_get(json_object_get(v, "doc"), "subject")),
                     (long long)json_integer_value(json_object_get(v, "id")));
        json_decref(rows);
        rows = store_responses_list(a->st, a->exercise, t, 0, NULL);
        json_array_foreach(rows, i, v)
            seed_add(arr, json_integer_value(json_object_get(v, "ts_ms")), "response",
                     "response #%lld%s", NULL,
                     (long long)json_integer_value(json_object_get(v, "id")));
        json_decref(rows);
        rows = store_reports_list(a->st, a->exercise, t, NULL);
        json_array_foreach(rows, i, v) {
            long long id = (long long)json_integer_value(json_object_get(v, "id"));
            json_t *full = store_report_get(a->st, a->exercise, t, id, NULL), *rv;
            size_t k;
            seed_add(arr, json_integer_value(json_object_get(v, "created_ms")), "report",
                     "report #%lld: %.160s", json_string_value(json_object_get(v, "title")),
                     id);
            json_array_foreach(json_object_get(full, "reviews"), k, rv)
                seed_add(arr, json_integer_value(json_object_get(rv, "ts_ms")), "review",
                         "review of report #%lld: %.40s",
                         json_string_value(json_object_get(rv, "decision")), id);
            json_decref(full);
        }
        json_decref(rows);
        n = json_array_size(arr);
        if (n > 0) {
            json_t **items = malloc(n * sizeof *items);
            for (i = 0; items && i < n; i++)
                items[i] = json_array_get(arr, i);
            if (items) {
                qsort(items, n, sizeof *items, ev_cmp);
                for (i = 0; i < n; i++)
                    ring_push(&a->rings[t], ++a->seq,
                              json_integer_value(json_object_get(items[i], "ts")),
                              json_string_value(json_object_get(items[i], "type")),
                              json_string_value(json_object_get(items[i], "summary")), 0);
            }
            free(items);
        }
        json_decref(arr);
    }
}

static void h_team_events(api *a, httpd_req *req, const call *c)
{
    const char *since_s = httpd_query(req, "since");
    long long since = 0;
    ring *r = &a->rings[c->team];
    json_t *out = json_array();
    if (since_s && strcmp(since_s, "0") != 0 && (since = parse_id(since_s)) < 0) {
        json_decref(out);
        httpd_error(req, 400, "invalid", "since: expected a sequence number");
        return;
    }
    for (size_t i = 0; out && i < r->n; i++) {
        const ev *e = &r->e[(r->head + i) % RING_SIZE];
        if (e->seq <= since)
            continue;
        if (!sub_may_see(&c->p, e->type, c->team, e->instructors_only))
            continue;
        json_array_append_new(out, json_pack("{s:I, s:I, s:s, s:s}", "seq",
                                             (json_int_t)e->seq, "ts_ms", (json_int_t)e->ts_ms,
                                             "type", e->type, "summary", e->summary));
    }
    respond_new(req, 200, out);
}

/* ---- the console WebSocket --------------------------------------------- */

static void con_unlink(con *k)
{
    con **pp;
    for (pp = &k->a->cons; *pp; pp = &(*pp)->next)
        if (*pp == k) {
            *pp = k->next;
            return;
        }
}

static void con_data(void *opaque, const char *data, size_t len)
{
    con *k = opaque;
    if (k->ended)
        return;
    /* A browser that cannot keep up with the guest loses the console; the
     * scroll-back gives it the screen back on reconnecting. */
    if (websock_buffered(k->ws) > CONSOLE_BUFFERED_MAX) {
        k->ended = 1;
        websock_close(k->ws, 1008, "too slow");
        return;
    }
    websock_send_binary(k->ws, data, len);
}

static void con_closed(void *opaque, console_end why, const char *msg)
{
    con *k = opaque;
    (void)msg;
    if (k->ended)
        return;
    k->ended = 1;
    websock_close(k->ws, why == CONSOLE_END_EOF || why == CONSOLE_END_SHUTDOWN ? 1000 : 1011,
                  why == CONSOLE_END_OPEN_FAILED ? "console unavailable" : "console ended");
}

static void con_message(websock *ws, int is_text, const char *data, size_t len, void *opaque)
{
    con *k = opaque;
    char err[128];
    (void)is_text;
    if (k->ended || k->v == NULL)
        return;
    if (console_write(k->v, data, len, err, sizeof err) < 0) {
        k->ended = 1;
        websock_close(ws, 1011, "console input failed");
    }
}

static void con_ws_closed(websock *ws, int code, void *opaque)
{
    con *k = opaque;
    api *a = k->a;
    (void)ws;
    (void)code;
    console_detach(k->v);
    con_unlink(k);
    free(k);
    api_unref(a);
}

static void h_console_ws(api *a, httpd_req *req, const call *c)
{
    static const websock_cbs wcbs = { con_message, con_ws_closed, NULL };
    static const console_viewer_cbs ccbs = { NULL, con_data, con_closed };
    const char *host = httpd_param(req, "host");
    console_hub *hub = a->ops.consoles ? a->ops.consoles(a->ops.opaque) : NULL;
    const char *dom = a->ops.domain ? a->ops.domain(a->ops.opaque, c->team, host) : NULL;
    websock_opts o = { 0 };
    char err[256];
    con *k;

    if (dom == NULL) {
        httpd_error(req, 404, "not_found", "no host %s in team %d", host, c->team);
        return;
    }
    if (hub == NULL) {
        httpd_error(req, 503, "unavailable", "no consoles in this exercise");
        return;
    }
    if ((k = calloc(1, sizeof *k)) == NULL) {
        httpd_error(req, 500, "internal", "out of memory");
        return;
    }
    k->a = a;
    o.max_message = 64 * 1024;
    o.max_buffered = 2 * CONSOLE_BUFFERED_MAX;
    k->ws = websock_accept_opts(req, &wcbs, &o, k);
    if (k->ws == NULL) {
        free(k);
        return;
    }
    api_ref(a);
    k->next = a->cons;
    a->cons = k;
    k->v = console_attach(hub, dom, &ccbs, k, err, sizeof err);
    if (k->v == NULL) {
        k->ended = 1;
        websock_close(k->ws, 1011, "console unavailable");
    }
}

/* ---- pending operations ------------------------------------------------ */

typedef struct pend {
    api *a;
    httpd_req *req;
    call c;
    int64_t id;
    json_t *j;
    uv_work_t work;
    int rc;
    char name[AUTH_NAME_MAX + 1];
    char role[16];
    int team;
    char pw[AUTH_PW_MAX + 1];
    int generated;
    char hash[AUTH_HASH_MAX];
} pend;

static pend *pend_new(api *a, httpd_req *req, const call *c)
{
    pend *p = calloc(1, sizeof *p);
    if (p == NULL) {
        httpd_error(req, 500, "internal", "out of memory");
        return NULL;
    }
    p->a = a;
    p->req = req;
    if (c)
        p->c = *c;
    api_ref(a);
    return p;
}

static void pend_free(pend *p)
{
    api *a = p->a;
    json_decref(p->j);
    sodium_memzero(p->pw, sizeof p->pw);
    free(p);
    api_unref(a);
}

/* ---- session ----------------------------------------------------------- */

static void login_done(const auth_result *res, void *opaque)
{
    pend *p = opaque;
    httpd_req *req = p->req;
    if (res->rc == 0) {
        char cookie[256];
        const json_t *u = res->user;
        json_t *out;
        long max_age = (long)((res->expires_ms - now_ms()) / 1000);
        if (auth_set_cookie(res->token, max_age > 0 ? max_age : 0, p->a->secure, cookie,
                            sizeof cookie) < 0) {
            httpd_error(req, 500, "internal", "cannot build the session cookie");
            pend_free(p);
            return;
        }
        httpd_add_header(req, "Set-Cookie", cookie);
        out = json_pack("{s:{s:O, s:O, s:O, s:O}, s:s}", "user", "id",
                        json_object_get(u, "id"), "name", json_object_get(u, "name"), "role",
                        json_object_get(u, "role"), "team", json_object_get(u, "team"), "csrf",
                        res->csrf);
        respond_new(req, 200, out);
    } else {
        switch (res->err.code) {
        case AUTH_EBADCRED:
            httpd_error(req, 401, "unauthenticated", "wrong name or password");
            break;
        case AUTH_EDISABLED:
            httpd_error(req, 403, "forbidden", "this account is disabled");
            break;
        case AUTH_ERATE: {
            char ra[16];
            snprintf(ra, sizeof ra, "%d", res->retry_after_s > 0 ? res->retry_after_s : 1);
            httpd_add_header(req, "Retry-After", ra);
            httpd_error(req, 429, "rate_limited", "too many attempts, retry in %s s", ra);
            break;
        }
        case AUTH_EINVAL:
            httpd_error(req, 400, "invalid", "%s", res->err.msg);
            break;
        default:
            httpd_error(req, 500, "internal", "%s", res->err.msg);
        }
    }
    pend_free(p);
}

static void h_login(api *a, httpd_req *req, const call *c)
{
    json_t *b = httpd_body_json(req, NULL);
    const char *name, *pw;
    char addr[128];
    char *colon;
    pend *p;
    if (b == NULL)
        return;
    name = json_string_value(json_object_get(b, "name"));
    pw = json_string_value(json_object_get(b, "password"));
    if (name == NULL || pw == NULL) {
        json_decref(b);
        httpd_error(req, 400, "invalid", "name and password: required strings");
        return;
    }
    /* The rate limit is per address, not per connection's port. */
    snprintf(addr, sizeof addr, "%s", httpd_remote(req));
    if ((colon = strrchr(addr, ':')) != NULL)
        *colon = '\0';
    if ((p = pend_new(a, req, c)) == NULL) {
        json_decref(b);
        return;
    }
    if (auth_login_async(a->au, name, pw, addr, login_done, p) < 0) {
        httpd_error(req, 500, "internal", "out of memory");
        pend_free(p);
    }
    json_decref(b);
}

static void logout_done(const auth_result *res, void *opaque)
{
    pend *p = opaque;
    char cookie[256];
    if (res->rc < 0 && res->err.code != AUTH_ENOSESSION) {
        httpd_error(p->req, 500, "internal", "%s", res->err.msg);
    } else {
        if (auth_clear_cookie(p->a->secure, cookie, sizeof cookie) == 0)
            httpd_add_header(p->req, "Set-Cookie", cookie);
        httpd_respond(p->req, 204, NULL, NULL, 0);
    }
    pend_free(p);
}

static void h_logout(api *a, httpd_req *req, const call *c)
{
    pend *p = pend_new(a, req, c);
    if (p == NULL)
        return;
    if (auth_logout_async(a->au, httpd_header(req, "Cookie"), logout_done, p) < 0) {
        httpd_error(req, 500, "internal", "out of memory");
        pend_free(p);
    }
}

static void h_me(api *a, httpd_req *req, const call *c)
{
    respond_new(req, 200, json_pack("{s:o, s:s, s:s}", "user", user_json(&c->p), "csrf",
                                    c->p.csrf, "exercise", a->exercise));
}

static void h_openapi(api *a, httpd_req *req, const call *c)
{
    (void)c;
    if (a->openapi_path == NULL) {
        httpd_error(req, 404, "not_found", "no API document");
        return;
    }
    httpd_respond_file(req, a->openapi_path, "application/json", NULL);
}

/* ---- exercise and range ------------------------------------------------ */

static json_t *report_template(const scenario *s)
{
    json_t *secs = json_array();
    for (size_t i = 0; secs && i < s->n_sections; i++) {
        const scn_section *sc = &s->sections[i];
        json_t *rub = json_array();
        for (size_t k = 0; rub && k < sc->n_rubric; k++)
            json_array_append_new(rub, json_pack("{s:s, s:i}", "criterion",
                                                 sc->rubric[k].criterion, "points",
                                                 sc->rubric[k].points));
        json_array_append_new(secs, json_pack("{s:s, s:s?, s:s?, s:b, s:o}", "id", sc->id,
                                              "title", sc->title, "prompt", sc->prompt,
                                              "required", sc->required, "rubric", rub));
    }
    return json_pack("{s:o}", "sections", secs);
}

static void h_exercise(api *a, httpd_req *req, const call *c)
{
    const plan *pl = the_plan(a);
    const scenario *s = pl ? pl->scn : NULL;
    json_t *teams, *out;
    int64_t started = 0;
    const char *state;
    if (s == NULL) {
        httpd_error(req, 503, "unavailable", "no exercise is loaded");
        return;
    }
    teams = json_array();
    for (int t = 0; teams && t < pl->n_teams; t++) {
        if (!auth_can(&c->p, AUTH_READ_TEAM, pl->teams[t].num))
            continue;
        json_array_append_new(teams, json_pack("{s:i, s:s}", "team", pl->teams[t].num, "name",
                                               pl->teams[t].name));
    }
    state = exercise_state(a, &started);
    out = json_pack("{s:s, s:{s:s, s:s?, s:s?, s:s?, s:I, s:f}, s:o, s:s, s:o, s:o}", "id",
                    a->exercise, "scenario", "id", s->id, "title", s->title, "description",
                    s->description, "level", s->level, "duration_ms",
                    (json_int_t)s->duration_ms, "speed", s->speed, "teams", teams, "state",
                    state, "started_ms", started > 0 ? json_integer(started) : json_null(),
                    "report_template", report_template(s));
    respond_new(req, 200, out);
}

/* The first entry of answer.teams[] (or answer[key][]) for `team`. */
static json_t *team_entry(const json_t *arr, int team)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
        if (json_integer_value(json_object_get(v, "team")) == team)
            return v;
    return NULL;
}

static void h_map(api *a, httpd_req *req, const call *c)
{
    const plan *pl = the_plan(a);
    const scenario *s = pl->scn;
    const plan_team *pt = &pl->teams[c->team - 1];
    json_t *guests = command(a, "guests", c->team);
    json_t *checks = command(a, "checks", c->team);
    json_t *segs = json_array(), *hosts = json_array(), *out, *ck;
    char buf[32], ab[16];

    for (size_t i = 0; segs && i < s->n_segments; i++) {
        snprintf(buf, sizeof buf, "%s/%d", addr_format(s->segments[i].net, ab, sizeof ab),
                 s->segments[i].prefix);
        json_array_append_new(segs, json_pack("{s:s, s:s, s:s, s:s}", "name",
                                              s->segments[i].name, "cidr", buf, "role",
                                              s->segments[i].role, "bridge",
                                              pt->nets[i].bridge));
    }
    for (size_t h = 0; hosts && h < s->n_hosts; h++) {
        const scn_host *sh = &s->hosts[h];
        json_t *addrs = json_array(), *svcs = json_array(), *g = NULL, *gv, *hl;
        size_t i;
        for (i = 0; addrs && i < sh->n_nics; i++)
            json_array_append_new(addrs, json_pack("{s:s, s:o}", "segment",
                                                   s->segments[sh->nics[i].segment].name,
                                                   "address", sh->nics[i].dhcp
                                                       ? json_string("dhcp")
                                                       : json_string(addr_format(
                                                             sh->nics[i].addr, ab, sizeof ab))));
        for (i = 0; svcs && i < sh->n_services; i++)
            json_array_append_new(svcs, json_pack("{s:s, s:s, s:i}", "name",
                                                  sh->services[i].name, "proto",
                                                  sh->services[i].proto, "port",
                                                  sh->services[i].port));
        json_array_foreach(json_object_get(guests, "guests"), i, gv) {
            const char *hn = json_string_value(json_object_get(gv, "host"));
            if (json_integer_value(json_object_get(gv, "team")) == c->team && hn &&
                strcmp(hn, sh->name) == 0) {
                g = gv;
                break;
            }
        }
        hl = json_object_get(g, "health");
        json_array_append_new(hosts, json_pack(
            "{s:s, s:s, s:s, s:o, s:o, s:s, s:b, s:O}", "name", sh->name, "role", sh->role,
            "image", sh->image, "addresses", addrs, "services", svcs, "state",
            json_string_value(json_object_get(g, "state"))
                ? json_string_value(json_object_get(g, "state"))
                : "unknown",
            "agent", json_is_boolean(json_object_get(g, "agent"))
                         ? json_is_true(json_object_get(g, "agent"))
                         : hl != NULL && !json_is_null(hl),
            "health", hl ? hl : json_null()));
    }
    ck = json_object_get(team_entry(json_object_get(checks, "teams"), c->team), "checks");
    out = json_pack("{s:i, s:o, s:o, s:o}", "team", c->team, "segments", segs, "hosts", hosts,
                    "checks", ck ? json_incref(ck) : json_array());
    json_decref(guests);
    json_decref(checks);
    respond_new(req, 200, out);
}

static void h_wire(api *a, httpd_req *req, const call *c)
{
    json_t *w = command(a, "wire", c->team);
    json_t *t = team_entry(json_object_get(w, "teams"), c->team);
    if (t == NULL) {
        json_decref(w);
        httpd_error(req, 503, "unavailable", "no capture for team %d", c->team);
        return;
    }
    httpd_respond_json(req, 200, t);
    json_decref(w);
}

/* A pcap file name: no path, no hidden file, ends in ".pcap". */
static int pcap_name_ok(const char *n)
{
    size_t l = n ? strlen(n) : 0;
    if (l <= 5 || l > 255 || n[0] == '.' || strchr(n, '/') || strchr(n, '\\'))
        return 0;
    return strcmp(n + l - 5, ".pcap") == 0;
}

static void h_pcaps(api *a, httpd_req *req, const call *c)
{
    char *dir = a->ops.pcap_dir ? a->ops.pcap_dir(a->ops.opaque, c->team) : NULL;
    json_t *out = json_array();
    DIR *d = dir ? opendir(dir) : NULL;
    struct dirent *de;
    while (d && out && (de = readdir(d)) != NULL) {
        char path[4096];
        struct stat sb;
        if (!pcap_name_ok(de->d_name))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (stat(path, &sb) < 0 || !S_ISREG(sb.st_mode))
            continue;
        json_array_append_new(out, json_pack("{s:s, s:I, s:I}", "name", de->d_name, "bytes",
                                             (json_int_t)sb.st_size, "modified_ms",
                                             (json_int_t)sb.st_mtim.tv_sec * 1000 +
                                                 sb.st_mtim.tv_nsec / 1000000));
    }
    if (d)
        closedir(d);
    free(dir);
    respond_new(req, 200, out);
}

static void h_pcap_get(api *a, httpd_req *req, const call *c)
{
    const char *name = httpd_param(req, "name");
    char *dir;
    char path[4096];
    if (!pcap_name_ok(name)) {
        httpd_error(req, 400, "invalid", "name: expected a file name ending in .pcap");
        return;
    }
    dir = a->ops.pcap_dir ? a->ops.pcap_dir(a->ops.opaque, c->team) : NULL;
    if (dir == NULL) {
        httpd_error(req, 404, "not_found", "no captures for team %d", c->team);
        return;
    }
    snprintf(path, sizeof path, "%s/%s", dir, name);
    free(dir);
    httpd_respond_file(req, path, "application/vnd.tcpdump.pcap", name);
}

/* ---- timeline and control --------------------------------------------- */

static json_t *ms_of(const json_t *o, const char *key_s)
{
    const json_t *v = json_object_get(o, key_s);
    if (!json_is_number(v))
        return json_null();
    return json_integer((json_int_t)(json_number_value(v) * 1000.0 + 0.5));
}

static void h_timeline(api *a, httpd_req *req, const call *c)
{
    const scenario *s = the_scn(a);
    json_t *st = command(a, "status", 0), *teams = json_array(), *tv, *sv;
    size_t i, k;
    (void)c;
    json_array_foreach(json_object_get(st, "teams"), i, tv) {
        json_t *steps = json_array();
        json_array_foreach(json_object_get(tv, "steps"), k, sv) {
            const char *id = json_string_value(json_object_get(sv, "id"));
            int si = s && id ? scenario_step_index(s, id) : -1;
            const scn_step *sp = si >= 0 ? &s->steps[si] : NULL;
            json_array_append_new(steps, json_pack(
                "{s:s?, s:O?, s:s?, s:s?, s:O?, s:o, s:o, s:o, s:O?, s:O?}", "id", id, "action",
                json_object_get(sv, "action"), "actor",
                sp && sp->actor >= 0 ? s->hosts[sp->actor].name : NULL, "target",
                sp && sp->target >= 0 ? s->hosts[sp->target].name : NULL, "state",
                json_object_get(sv, "state"), "due_ms", ms_of(sv, "due_s"), "started_ms",
                ms_of(sv, "started_s"), "ended_ms", ms_of(sv, "ended_s"), "outcome",
                json_object_get(sv, "outcome"), "detail", json_object_get(sv, "detail")));
        }
        json_array_append_new(teams, json_pack("{s:O, s:O?, s:o, s:O?, s:o}", "team",
                                               json_object_get(tv, "team"), "clock",
                                               json_object_get(tv, "clock"), "elapsed_ms",
                                               ms_of(tv, "elapsed_s"), "speed",
                                               json_object_get(st, "speed"), "steps", steps));
    }
    json_decref(st);
    respond_new(req, 200, json_pack("{s:o}", "teams", teams));
}

/* Every guest's state and health, the capture counters and the checks of
 * every team: what `cyrange status` shows of a running exercise. */
static void h_guests(api *a, httpd_req *req, const call *c)
{
    json_t *r = command(a, "guests", 0);
    (void)c;
    if (r == NULL || !json_is_true(json_object_get(r, "ok"))) {
        json_decref(r);
        httpd_error(req, 503, "unavailable", "the exercise is not running");
        return;
    }
    json_object_del(r, "ok");
    respond_new(req, 200, r);
}

static void h_control(api *a, httpd_req *req, const call *c)
{
    static const char *const cmds[] = { "start", "pause", "resume", "reset", "skip", "run",
                                        NULL };
    json_t *b = httpd_body_json(req, NULL), *cmd = NULL, *r = NULL, *tv;
    const char *name, *step;
    int ok = 0;
    (void)c;
    if (b == NULL)
        return;
    name = json_string_value(json_object_get(b, "cmd"));
    for (const char *const *k = cmds; name && *k; k++)
        ok |= strcmp(*k, name) == 0;
    tv = json_object_get(b, "team");
    step = json_string_value(json_object_get(b, "step"));
    if (!ok) {
        httpd_error(req, 400, "invalid", "cmd: expected start, pause, resume, reset, skip or run");
        goto cleanup;
    }
    if (tv && !json_is_null(tv) &&
        (!json_is_integer(tv) || json_integer_value(tv) < 0 ||
         json_integer_value(tv) > a->n_teams)) {
        httpd_error(req, 400, "invalid", "team: expected 0 (every team) to %d", a->n_teams);
        goto cleanup;
    }
    if (json_object_get(b, "step") && step == NULL) {
        httpd_error(req, 400, "invalid", "step: expected a step id");
        goto cleanup;
    }
    cmd = json_pack("{s:s, s:i, s:s?}", "cmd", name, "team",
                    json_is_integer(tv) ? (int)json_integer_value(tv) : 0, "step", step);
    r = cmd && a->ops.command ? a->ops.command(a->ops.opaque, cmd) : NULL;
    if (r == NULL) {
        httpd_error(req, 500, "internal", "the exercise did not answer");
        goto cleanup;
    }
    if (!json_is_true(json_object_get(r, "ok"))) {
        const char *e = json_string_value(json_object_get(r, "error"));
        httpd_error(req, 409, "conflict", "%s", e ? e : "the command failed");
        goto cleanup;
    }
    httpd_respond_json(req, 200, r);
    api_event(a, "timeline", json_is_integer(tv) ? (int)json_integer_value(tv) : 0, 1, cmd);
cleanup:
    json_decref(r);
    json_decref(cmd);
    json_decref(b);
}

/* ---- findings ---------------------------------------------------------- */

static void h_findings(api *a, httpd_req *req, const call *c)
{
    json_t *f = a->ops.findings ? a->ops.findings(a->ops.opaque, c->team) : json_array();
    respond_new(req, 200, f);
}

static void finding_done(void *opaque, int status, const json_t *result, const char *error)
{
    pend *p = opaque;
    if (status >= 200 && status < 300 && result) {
        /* The exercise announces findings itself (api_ops.finding_add and
         * the CLI's alike), so no event here. */
        httpd_respond_json(p->req, p->id ? 200 : 201, (json_t *)result);
    } else {
        int s = status >= 400 ? status : 500;
        httpd_error(p->req, s, status_code(s), "%s", error ? error : "the finding failed");
    }
    pend_free(p);
}

static void h_finding_add(api *a, httpd_req *req, const call *c)
{
    json_t *b = httpd_body_json(req, NULL);
    pend *p;
    if (b == NULL)
        return;
    if (!json_is_object(b)) {
        json_decref(b);
        httpd_error(req, 400, "invalid", "body: expected a finding object");
        return;
    }
    if ((p = pend_new(a, req, c)) == NULL) {
        json_decref(b);
        return;
    }
    if (a->ops.finding_add == NULL ||
        a->ops.finding_add(a->ops.opaque, c->team, b, c->p.name, finding_done, p) < 0) {
        httpd_error(req, 503, "unavailable", "findings cannot be filed now");
        pend_free(p);
    }
    json_decref(b);
}

static void h_finding_label(api *a, httpd_req *req, const call *c)
{
    long long id = parse_id(httpd_param(req, "id"));
    json_t *b = httpd_body_json(req, NULL);
    const char *label = NULL;
    pend *p;
    if (b == NULL)
        return;
    if (id < 0 || !json_is_string(json_object_get(b, "label")) ||
        findings_label_parse(json_string_value(json_object_get(b, "label")), &label) < 0) {
        json_decref(b);
        httpd_error(req, id < 0 ? 404 : 400, id < 0 ? "not_found" : "invalid",
                    id < 0 ? "no such finding" : "label: expected duplicate, benign, unscripted or none");
        return;
    }
    json_decref(b);
    if ((p = pend_new(a, req, c)) == NULL)
        return;
    p->id = id;
    if (a->ops.finding_label == NULL ||
        a->ops.finding_label(a->ops.opaque, id, label, c->p.name, finding_done, p) < 0) {
        httpd_error(req, 503, "unavailable", "findings cannot be relabelled now");
        pend_free(p);
    }
}

/* ---- reports and reviews ----------------------------------------------- */

static const scn_section *section_of(const scenario *s, const char *id, size_t len)
{
    for (size_t i = 0; s && i < s->n_sections; i++)
        if (strlen(s->sections[i].id) == len && strncmp(s->sections[i].id, id, len) == 0)
            return &s->sections[i];
    return NULL;
}

/* Checks "sections": an object of the scenario's section ids to strings of
 * at most SECTION_MAX bytes.  0, or -1 with err. */
static int sections_ok(const scenario *s, const json_t *secs, char *err, size_t len)
{
    const char *k;
    json_t *v;
    if (!json_is_object(secs)) {
        snprintf(err, len, "sections: expected an object of section texts");
        return -1;
    }
    json_object_foreach((json_t *)secs, k, v) {
        if (section_of(s, k, strlen(k)) == NULL) {
            snprintf(err, len, "sections.%.64s: not a section of this exercise's report", k);
            return -1;
        }
        if (!json_is_string(v) || json_string_length(v) > SECTION_MAX) {
            snprintf(err, len, "sections.%.64s: expected a string of at most %u bytes", k,
                     SECTION_MAX);
            return -1;
        }
    }
    return 0;
}

static void h_reports(api *a, httpd_req *req, const call *c)
{
    store_err e;
    json_t *r = store_reports_list(a->st, a->exercise, c->team, &e);
    if (r == NULL) {
        store_fail(req, &e);
        return;
    }
    respond_new(req, 200, r);
}

static void report_get_out(api *a, httpd_req *req, const call *c, long long id)
{
    store_err e;
    json_t *r = store_report_get(a->st, a->exercise, c->team, id, &e), *v;
    size_t i;
    if (r == NULL) {
        store_fail(req, &e);
        return;
    }
    json_array_foreach(json_object_get(r, "versions"), i, v) {
        json_t *doc = json_object_get(v, "doc");
        json_object_set_new(v, "sections", doc ? json_incref(doc) : json_object());
        json_object_del(v, "doc");
    }
    respond_new(req, 200, r);
}

static void h_report_get(api *a, httpd_req *req, const call *c)
{
    long long id = parse_id(httpd_param(req, "id"));
    if (id < 0) {
        httpd_error(req, 404, "not_found", "no such report");
        return;
    }
    report_get_out(a, req, c, id);
}

static void report_saved(const store_result *res, void *opaque)
{
    pend *p = opaque;
    if (res->rc < 0) {
        store_fail(p->req, &res->err);
    } else {
        json_t *out = json_pack("{s:I, s:I, s:s}", "id", (json_int_t)res->id, "version",
                                (json_int_t)res->version, "state",
                                json_is_true(json_object_get(p->j, "submit")) ? "submitted"
                                                                              : "draft");
        respond_new(p->req, p->id ? 200 : 201, json_incref(out));
        api_event(p->a, "report", p->c.team, 0, out);
        json_decref(out);
    }
    pend_free(p);
}

static void report_save(api *a, httpd_req *req, const call *c, long long id)
{
    json_t *b = httpd_body_json(req, NULL), *title, *submit, *secs, *base;
    char err[256];
    pend *p;
    if (b == NULL)
        return;
    title = json_object_get(b, "title");
    submit = json_object_get(b, "submit");
    secs = json_object_get(b, "sections");
    base = json_object_get(b, "base_version");
    if (!json_is_object(b)) {
        snprintf(err, sizeof err, "body: expected an object");
    } else if ((id == 0 || title) &&
               (!json_is_string(title) || json_string_length(title) == 0 ||
                json_string_length(title) > TITLE_MAX)) {
        snprintf(err, sizeof err, "title: expected a string of 1 to %d bytes", TITLE_MAX);
    } else if (submit && !json_is_boolean(submit)) {
        snprintf(err, sizeof err, "submit: expected true or false");
    } else if (id > 0 && (!json_is_integer(base) || json_integer_value(base) < 1)) {
        snprintf(err, sizeof err, "base_version: expected the version the edit started from");
    } else if (sections_ok(the_scn(a), secs, err, sizeof err) == 0) {
        err[0] = '\0';
    }
    if (err[0]) {
        json_decref(b);
        httpd_error(req, 400, "invalid", "%s", err);
        return;
    }
    if ((p = pend_new(a, req, c)) == NULL) {
        json_decref(b);
        return;
    }
    p->id = id;
    p->j = b;
    if (store_report_save(a->st, a->exercise, c->team, id, id ? json_integer_value(base) : 0,
                          json_string_value(title), secs, json_is_true(submit), c->p.name,
                          now_ms(), report_saved, p) < 0) {
        httpd_error(req, 503, "unavailable", "the store is closing");
        pend_free(p);
    }
}

static void h_report_add(api *a, httpd_req *req, const call *c)
{
    report_save(a, req, c, 0);
}

static void h_report_put(api *a, httpd_req *req, const call *c)
{
    long long id = parse_id(httpd_param(req, "id"));
    if (id < 0) {
        httpd_error(req, 404, "not_found", "no such report");
        return;
    }
    report_save(a, req, c, id);
}

/* Checks a review's comments and grades against the scenario's sections
 * and rubrics.  0, or -1 with err. */
static int review_ok(const scenario *s, const json_t *comments, const json_t *grades,
                     char *err, size_t len)
{
    size_t i;
    json_t *v;
    const char *k;
    if (comments && !json_is_array(comments)) {
        snprintf(err, len, "comments: expected an array");
        return -1;
    }
    json_array_foreach(comments, i, v) {
        const char *sec = json_string_value(json_object_get(v, "section"));
        json_t *q = json_object_get(v, "quote");
        if (!json_is_object(v) || !json_is_string(json_object_get(v, "text")) ||
            json_string_length(json_object_get(v, "text")) > SECTION_MAX) {
            snprintf(err, len, "comments[%zu].text: expected a string", i);
            return -1;
        }
        if (sec && section_of(s, sec, strlen(sec)) == NULL) {
            snprintf(err, len, "comments[%zu].section: not a section of the report", i);
            return -1;
        }
        if (q && !json_is_null(q) && !json_is_string(q)) {
            snprintf(err, len, "comments[%zu].quote: expected a string", i);
            return -1;
        }
    }
    if (grades && !json_is_object(grades)) {
        snprintf(err, len, "grades: expected an object of \"section:index\": points");
        return -1;
    }
    json_object_foreach((json_t *)grades, k, v) {
        const char *colon = strchr(k, ':');
        const scn_section *sc = colon ? section_of(s, k, (size_t)(colon - k)) : NULL;
        long long idx = colon && colon[1] == '0' && colon[2] == '\0' ? 0 : colon ? parse_id(colon + 1) : -1;
        if (sc == NULL || idx < 0 || (size_t)idx >= sc->n_rubric) {
            snprintf(err, len, "grades.%.64s: expected \"section:index\" of a rubric criterion", k);
            return -1;
        }
        if (!json_is_number(v) || json_number_value(v) < 0 ||
            json_number_value(v) > sc->rubric[idx].points) {
            snprintf(err, len, "grades.%.64s: expected points from 0 to %d", k,
                     sc->rubric[idx].points);
            return -1;
        }
    }
    return 0;
}

static void review_added(const store_result *res, void *opaque)
{
    pend *p = opaque;
    if (res->rc < 0) {
        store_fail(p->req, &res->err);
    } else {
        json_t *out = json_pack("{s:I, s:I, s:O}", "id", (json_int_t)res->id, "report",
                                (json_int_t)p->id, "decision",
                                json_object_get(p->j, "decision"));
        respond_new(p->req, 201, json_incref(out));
        api_event(p->a, "review", p->c.team, 0, out);
        json_decref(out);
    }
    pend_free(p);
}

static void h_review_add(api *a, httpd_req *req, const call *c)
{
    long long id = parse_id(httpd_param(req, "id"));
    json_t *b, *rep, *ver, *comments, *grades;
    const char *dec;
    char err[256] = "";
    store_err e;
    pend *p;
    if (id < 0) {
        httpd_error(req, 404, "not_found", "no such report");
        return;
    }
    /* The report must be the path's team's: the store's review write only
     * knows the exercise. */
    if ((rep = store_report_get(a->st, a->exercise, c->team, id, &e)) == NULL) {
        store_fail(req, &e);
        return;
    }
    json_decref(rep);
    if ((b = httpd_body_json(req, NULL)) == NULL)
        return;
    ver = json_object_get(b, "version");
    comments = json_object_get(b, "comments");
    grades = json_object_get(b, "grades");
    dec = json_string_value(json_object_get(b, "decision"));
    if (!json_is_integer(ver) || json_integer_value(ver) < 1)
        snprintf(err, sizeof err, "version: expected the reviewed version");
    else if (dec == NULL || (strcmp(dec, "comment") && strcmp(dec, "return") &&
                             strcmp(dec, "accept")))
        snprintf(err, sizeof err, "decision: expected comment, return or accept");
    else
        review_ok(the_scn(a), comments, grades, err, sizeof err);
    if (err[0]) {
        json_decref(b);
        httpd_error(req, 400, "invalid", "%s", err);
        return;
    }
    if ((p = pend_new(a, req, c)) == NULL) {
        json_decref(b);
        return;
    }
    p->id = id;
    p->j = b;
    if (comments == NULL)
        json_object_set_new(b, "comments", json_array());
    if (grades == NULL)
        json_object_set_new(b, "grades", json_object());
    if (store_review_add(a->st, a->exercise, id, json_integer_value(ver), c->p.name, now_ms(),
                         json_object_get(b, "comments"), json_object_get(b, "grades"), dec,
                         review_added, p) < 0) {
        httpd_error(req, 503, "unavailable", "the store is closing");
        pend_free(p);
    }
}

/* ---- inbox and responses ----------------------------------------------- */

static void h_inbox(api *a, httpd_req *req, const call *c)
{
    store_err e;
    json_t *items = store_inbox_list(a->st, a->exercise, c->team, &e), *resps = NULL,
           *users = NULL, *out = NULL, *it, *r;
    size_t i, k;
    if (items == NULL || (resps = store_responses_list(a->st, a->exercise, c->team, 0, &e)) ==
                             NULL ||
        (users = store_users_list(a->st, &e)) == NULL) {
        store_fail(req, &e);
        goto cleanup;
    }
    out = json_array();
    json_array_foreach(items, i, it) {
        json_t *o = json_pack("{s:O, s:O, s:O, s:O}", "id", json_object_get(it, "id"), "step",
                              json_object_get(it, "step"), "ts_ms",
                              json_object_get(it, "ts_ms"), "deadline_ms",
                              json_object_get(it, "deadline_ms"));
        json_t *doc = json_object_get(it, "doc"), *list = json_array();
        static const char *const keys[] = { "from", "channel", "subject", "body", "points",
                                            NULL };
        for (const char *const *kk = keys; o && *kk; kk++) {
            json_t *v = json_object_get(doc, *kk);
            json_object_set(o, *kk, v ? v : json_null());
        }
        json_array_foreach(resps, k, r) {
            json_t *u, *uv;
            size_t ui;
            const char *uname = NULL;
            if (!json_equal(json_object_get(r, "inbox_id"), json_object_get(it, "id")))
                continue;
            u = json_object_get(r, "user_id");
            json_array_foreach(users, ui, uv)
                if (json_equal(json_object_get(uv, "id"), u))
                    uname = json_string_value(json_object_get(uv, "name"));
            json_array_append_new(list, json_pack("{s:O, s:s?, s:O, s:O, s:O, s:O}", "id",
                                                  json_object_get(r, "id"), "user", uname,
                                                  "ts_ms", json_object_get(r, "ts_ms"), "text",
                                                  json_object_get(r, "text"), "points",
                                                  json_object_get(r, "points"), "grader",
                                                  json_object_get(r, "grader")));
        }
        if (o)
            json_object_set_new(o, "responses", list);
        else
            json_decref(list);
        json_array_append_new(out, o);
    }
    respond_new(req, 200, json_incref(out));
cleanup:
    json_decref(out);
    json_decref(items);
    json_decref(resps);
    json_decref(users);
}

static void response_added(const store_result *res, void *opaque)
{
    pend *p = opaque;
    if (res->rc < 0) {
        store_fail(p->req, &res->err);
    } else {
        json_t *out = json_pack("{s:I, s:I, s:s, s:I, s:O, s:n, s:n}", "id",
                                (json_int_t)res->id, "inbox_id", (json_int_t)p->id, "user",
                                p->c.p.name, "ts_ms", (json_int_t)now_ms(), "text",
                                json_object_get(p->j, "text"), "points", "grader");
        respond_new(p->req, 201, json_incref(out));
        api_event(p->a, "response", p->c.team, 0, out);
        json_decref(out);
    }
    pend_free(p);
}

static void h_response_add(api *a, httpd_req *req, const call *c)
{
    long long id = parse_id(httpd_param(req, "id"));
    json_t *b, *text;
    pend *p;
    if (id < 0) {
        httpd_error(req, 404, "not_found", "no such inbox item");
        return;
    }
    if ((b = httpd_body_json(req, NULL)) == NULL)
        return;
    text = json_object_get(b, "text");
    if (!json_is_string(text) || json_string_length(text) == 0 ||
        json_string_length(text) > RESPONSE_MAX) {
        json_decref(b);
        httpd_error(req, 400, "invalid", "text: expected a string of 1 to %u bytes",
                    RESPONSE_MAX);
        return;
    }
    if ((p = pend_new(a, req, c)) == NULL) {
        json_decref(b);
        return;
    }
    p->id = id;
    p->j = b;
    if (store_response_add(a->st, a->exercise, c->team, id, c->p.user_id, now_ms(),
                           json_string_value(text), response_added, p) < 0) {
        httpd_error(req, 503, "unavailable", "the store is closing");
        pend_free(p);
    }
}

static void response_graded(const store_result *res, void *opaque)
{
    pend *p = opaque;
    if (res->rc < 0) {
        store_fail(p->req, &res->err);
    } else {
        json_t *out = json_pack("{s:I, s:O, s:s}", "id", (json_int_t)p->id, "points",
                                json_object_get(p->j, "points"), "grader", p->c.p.name);
        respond_new(p->req, 200, json_incref(out));
        api_event(p->a, "response", p->team, 0, out);
        json_decref(out);
    }
    pend_free(p);
}

static void h_response_grade(api *a, httpd_req *req, const call *c)
{
    long long id = parse_id(httpd_param(req, "id"));
    json_t *b = NULL, *resps = NULL, *items = NULL, *r = NULL, *it = NULL, *v, *pts;
    double max = -1;
    size_t i;
    store_err e;
    pend *p;
    if (id < 0) {
        httpd_error(req, 404, "not_found", "no such response");
        return;
    }
    if ((resps = store_responses_list(a->st, a->exercise, STORE_ALL_TEAMS, 0, &e)) == NULL ||
        (items = store_inbox_list(a->st, a->exercise, STORE_ALL_TEAMS, &e)) == NULL) {
        store_fail(req, &e);
        goto cleanup;
    }
    json_array_foreach(resps, i, v)
        if (json_integer_value(json_object_get(v, "id")) == id)
            r = v;
    json_array_foreach(items, i, v)
        if (r && json_equal(json_object_get(v, "id"), json_object_get(r, "inbox_id")))
            it = v;
    if (r == NULL || it == NULL) {
        httpd_error(req, 404, "not_found", "no response %lld", id);
        goto cleanup;
    }
    if (json_is_number(json_object_get(json_object_get(it, "doc"), "points")))
        max = json_number_value(json_object_get(json_object_get(it, "doc"), "points"));
    if ((b = httpd_body_json(req, NULL)) == NULL)
        goto cleanup;
    pts = json_object_get(b, "points");
    if (!json_is_number(pts) || json_number_value(pts) < 0 ||
        (max >= 0 && json_number_value(pts) > max)) {
        httpd_error(req, 400, "invalid", "points: expected a number from 0 to %g",
                    max >= 0 ? max : 1000.0);
        goto cleanup;
    }
    if ((p = pend_new(a, req, c)) == NULL)
        goto cleanup;
    p->id = id;
    p->team = (int)json_integer_value(json_object_get(r, "team"));
    p->j = json_incref(b);
    if (store_response_grade(a->st, a->exercise, id, json_number_value(pts), c->p.name,
                             now_ms(), response_graded, p) < 0) {
        httpd_error(req, 503, "unavailable", "the store is closing");
        pend_free(p);
    }
cleanup:
    json_decref(b);
    json_decref(resps);
    json_decref(items);
}

/* ---- scores ------------------------------------------------------------ */

/* {"reports":[...],"injects":[...]} for score.h from the store: each
 * report's latest review with grades, each graded inject response. */
static json_t *grades_of(api *a, int team)
{
    const scenario *s = the_scn(a);
    json_t *reps = store_reports_list(a->st, a->exercise, team, NULL);
    json_t *items = store_inbox_list(a->st, a->exercise, team, NULL);
    json_t *resps = store_responses_list(a->st, a->exercise, team, 0, NULL);
    json_t *gr = json_array(), *gi = json_array(), *v, *w;
    double rmax = 0;
    size_t i, k;
    for (i = 0; s && i < s->n_sections; i++)
        for (k = 0; k < s->sections[i].n_rubric; k++)
            rmax += s->sections[i].rubric[k].points;
    json_array_foreach(reps, i, v) {
        long long id = (long long)json_integer_value(json_object_get(v, "id"));
        json_t *full = store_report_get(a->st, a->exercise, team, id, NULL), *last = NULL;
        const char *gk;
        json_t *gv;
        double pts = 0;
        json_array_foreach(json_object_get(full, "reviews"), k, w)
            if (json_object_size(json_object_get(w, "grades")) > 0)
                last = w;
        if (last && rmax > 0) {
            json_object_foreach(json_object_get(last, "grades"), gk, gv)
                pts += json_number_value(gv);
            json_array_append_new(gr, json_pack("{s:I, s:f, s:f, s:s}", "id", (json_int_t)id,
                                                "points", pts, "max", rmax, "reason",
                                                json_string_value(json_object_get(v, "title"))
                                                    ? json_string_value(json_object_get(v, "title"))
                                                    : ""));
        }
        json_decref(full);
    }
    json_array_foreach(items, i, v) {
        json_t *pv = json_object_get(json_object_get(v, "doc"), "points");
        const char *step = json_string_value(json_object_get(v, "step"));
        double best = -1;
        if (step == NULL || !json_is_number(pv) || json_number_value(pv) <= 0)
            continue;
        json_array_foreach(resps, k, w)
            if (json_equal(json_object_get(w, "inbox_id"), json_object_get(v, "id")) &&
                json_is_number(json_object_get(w, "points")) &&
                json_number_value(json_object_get(w, "points")) > best)
                best = json_number_value(json_object_get(w, "points"));
        if (best >= 0)
            json_array_append_new(gi, json_pack("{s:s, s:f, s:f, s:s}", "step", step, "points",
                                                best, "max", json_number_value(pv), "reason",
                                                "graded response"));
    }
    json_decref(reps);
    json_decref(items);
    json_decref(resps);
    return json_pack("{s:o, s:o}", "reports", gr, "injects", gi);
}

static json_t *score_of(api *a, int team);

json_t *api_team_score(api *a, int team)
{
    return score_of(a, team);
}

static json_t *score_of(api *a, int team)
{
    json_t *g = grades_of(a, team), *s = NULL;
    if (g && a->ops.score)
        s = a->ops.score(a->ops.opaque, team, g);
    json_decref(g);
    return s;
}

static void h_score(api *a, httpd_req *req, const call *c)
{
    json_t *s = score_of(a, c->team), *steps, *v;
    size_t i;
    if (s == NULL) {
        httpd_error(req, 503, "unavailable", "no score for team %d yet", c->team);
        return;
    }
    /* Members must not learn the script of the steps they missed before
     * the end. */
    steps = json_object_get(s, "steps");
    if (is_member(c) && json_is_array(steps) && strcmp(exercise_state(a, NULL), "finished")) {
        json_t *kept = json_array();
        json_array_foreach(steps, i, v)
            json_array_append_new(kept, json_pack("{s:O?, s:O?, s:O?, s:O?}", "step",
                                                  json_object_get(v, "step"), "detected",
                                                  json_object_get(v, "detected"), "finding",
                                                  json_object_get(v, "finding"), "points",
                                                  json_object_get(v, "points")));
        json_object_set_new(s, "steps", kept);
    }
    respond_new(req, 200, s);
}

static void h_scoreboard(api *a, httpd_req *req, const call *c)
{
    const plan *pl = the_plan(a);
    json_t *out;
    int64_t now = now_ms();
    (void)c;
    if (a->board && now - a->board_at >= 0 && now - a->board_at < BOARD_TTL_MS) {
        httpd_respond(req, 200, "application/json", a->board, a->board_len);
        return;
    }
    board_forget(a);
    out = json_array();
    for (int t = 0; out && pl && t < pl->n_teams; t++) {
        json_t *s = score_of(a, pl->teams[t].num), *axes = json_object(), *v;
        const char *k;
        json_object_foreach(json_object_get(s, "axes"), k, v)
            json_object_set(axes, k, json_object_get(v, "points"));
        json_array_append_new(out, json_pack("{s:i, s:s, s:O?, s:O?, s:o}", "team",
                                             pl->teams[t].num, "name", pl->teams[t].name,
                                             "total", json_object_get(s, "total"), "max",
                                             json_object_get(s, "max"), "axes", axes));
        json_decref(s);
    }
    a->board = out ? json_dumps(out, JSON_COMPACT) : NULL;
    json_decref(out);
    if (a->board == NULL) {
        httpd_error(req, 500, "internal", "out of memory");
        return;
    }
    a->board_len = strlen(a->board);
    a->board_at = now;
    httpd_respond(req, 200, "application/json", a->board, a->board_len);
}

static void h_series(api *a, httpd_req *req, const call *c)
{
    store_err e;
    json_t *rows = store_scores_series(a->st, a->exercise, c->team, 0, &e), *out, *v;
    size_t i;
    if (rows == NULL) {
        store_fail(req, &e);
        return;
    }
    out = json_array();
    json_array_foreach(rows, i, v)
        json_array_append_new(out, json_pack("{s:O, s:O}", "ts_ms", json_object_get(v, "ts_ms"),
                                             "total", json_object_get(v, "total")));
    json_decref(rows);
    respond_new(req, 200, out);
}

/* ---- self-analysis ----------------------------------------------------- */

/* A stored analysis row as the API answers it (new reference). */
static json_t *analysis_out(const json_t *row)
{
    json_t *items = json_object_get(json_object_get(row, "doc"), "items");
    return json_pack("{s:O, s:o, s:O, s:O}", "team", json_object_get(row, "team"), "items",
                     json_is_array(items) ? json_incref(items) : json_array(), "updated_ms",
                     json_object_get(row, "updated_ms"), "author",
                     json_object_get(row, "author"));
}

static void h_analysis_get(api *a, httpd_req *req, const call *c)
{
    store_err e;
    json_t *row = store_analysis_get(a->st, a->exercise, c->team, &e);
    if (row == NULL) {
        if (e.code == STORE_ENOTFOUND)
            httpd_error(req, 404, "not_found", "team %d has no analysis yet", c->team);
        else
            store_fail(req, &e);
        return;
    }
    respond_new(req, 200, analysis_out(row));
    json_decref(row);
}

static void h_analyses(api *a, httpd_req *req, const call *c)
{
    store_err e;
    json_t *rows = store_analyses_list(a->st, a->exercise, STORE_ALL_TEAMS, &e), *out, *v;
    size_t i;
    (void)c;
    if (rows == NULL) {
        store_fail(req, &e);
        return;
    }
    out = json_array();
    json_array_foreach(rows, i, v)
        json_array_append_new(out, analysis_out(v));
    json_decref(rows);
    respond_new(req, 200, out);
}

/* An optional text of an item: absent or null is "", else a string of at
 * most ANALYSIS_TEXT_MAX bytes.  NULL with err when it is not. */
static json_t *analysis_text(const json_t *it, size_t i, const char *key, char *err, size_t len)
{
    const json_t *v = json_object_get(it, key);
    if (v == NULL || json_is_null(v))
        return json_string("");
    if (!json_is_string(v) || json_string_length(v) > ANALYSIS_TEXT_MAX) {
        snprintf(err, len, "items[%zu].%s: expected a string of at most %u bytes", i, key,
                 ANALYSIS_TEXT_MAX);
        return NULL;
    }
    return json_incref((json_t *)v);
}

/* Checks a PUT body against the scenario and builds the document to store,
 * {"items":[{"step","cause","what","improve"}]} with nothing else (new
 * reference).  NULL with err and *status (400, or 500 out of memory). */
static json_t *analysis_doc(const scenario *s, int team, const json_t *b, int *status,
                            char *err, size_t len)
{
    static const char *const causes[] = { "plan", "doing", "unknown", NULL };
    const json_t *items = json_object_get(b, "items"), *tv = json_object_get(b, "team"), *it;
    json_t *list = NULL, *out = NULL;
    size_t i;

    *status = 400;
    if (!json_is_object(b)) {
        snprintf(err, len, "body: expected an object with \"items\"");
        goto cleanup;
    }
    /* The UI sends its team along; it must then be the path's. */
    if (tv && (!json_is_integer(tv) || json_integer_value(tv) != team)) {
        snprintf(err, len, "team: expected %d, the team of the path", team);
        goto cleanup;
    }
    if (!json_is_array(items) || json_array_size(items) > ANALYSIS_ITEMS_MAX) {
        snprintf(err, len, "items: expected an array of at most %d entries", ANALYSIS_ITEMS_MAX);
        goto cleanup;
    }
    list = json_array();
    json_array_foreach(items, i, it) {
        const char *step = json_string_value(json_object_get(it, "step"));
        const char *cause = json_string_value(json_object_get(it, "cause"));
        json_t *what = NULL, *improve = NULL;
        int ok = 0;
        if (!json_is_object(it)) {
            snprintf(err, len, "items[%zu]: expected an object", i);
            goto cleanup;
        }
        if (step == NULL || s == NULL || scenario_step_index(s, step) < 0) {
            snprintf(err, len, "items[%zu].step: expected a step of the exercise's timeline", i);
            goto cleanup;
        }
        /* One entry per step, else a reader could not tell which counts. */
        for (size_t k = 0; k < i; k++)
            if (strcmp(json_string_value(json_object_get(json_array_get(items, k), "step")),
                       step) == 0) {
                snprintf(err, len, "items[%zu].step: %.64s is already items[%zu]", i, step, k);
                goto cleanup;
            }
        for (const char *const *k = causes; cause && *k; k++)
            ok |= strcmp(*k, cause) == 0;
        if (!ok) {
            snprintf(err, len, "items[%zu].cause: expected plan, doing or unknown", i);
            goto cleanup;
        }
        if ((what = analysis_text(it, i, "what", err, len)) == NULL ||
            (improve = analysis_text(it, i, "improve", err, len)) == NULL) {
            json_decref(what);
            goto cleanup;
        }
        /* json_pack takes what and improve, also when it fails. */
        if (json_array_append_new(list, json_pack("{s:s, s:s, s:o, s:o}", "step", step,
                                                  "cause", cause, "what", what, "improve",
                                                  improve)) < 0) {
            *status = 500;
            snprintf(err, len, "out of memory");
            goto cleanup;
        }
    }
    if ((out = json_pack("{s:O}", "items", list)) == NULL) {
        *status = 500;
        snprintf(err, len, "out of memory");
    }
cleanup:
    json_decref(list);
    return out;
}

static void analysis_saved(const store_result *res, void *opaque)
{
    pend *p = opaque;
    if (res->rc < 0) {
        store_fail(p->req, &res->err);
    } else {
        respond_new(p->req, 200, json_pack("{s:i, s:O, s:I, s:s}", "team", p->c.team, "items",
                                           json_object_get(p->j, "items"), "updated_ms",
                                           (json_int_t)p->id, "author", p->c.p.name));
    }
    pend_free(p);
}

static void h_analysis_put(api *a, httpd_req *req, const call *c)
{
    json_t *b = httpd_body_json(req, NULL), *doc;
    char err[256];
    int status;
    pend *p;
    if (b == NULL)
        return;
    doc = analysis_doc(the_scn(a), c->team, b, &status, err, sizeof err);
    json_decref(b);
    if (doc == NULL) {
        httpd_error(req, status, status_code(status), "%s", err);
        return;
    }
    if ((p = pend_new(a, req, c)) == NULL) {
        json_decref(doc);
        return;
    }
    p->j = doc;
    p->id = now_ms();
    if (store_analysis_put(a->st, a->exercise, c->team, doc, c->p.name, p->id, analysis_saved,
                           p) < 0) {
        httpd_error(req, 503, "unavailable", "the store is closing");
        pend_free(p);
    }
}

/* ---- users ------------------------------------------------------------- */

static void h_users(api *a, httpd_req *req, const call *c)
{
    store_err e;
    json_t *rows = store_users_list(a->st, &e), *out, *v;
    size_t i;
    (void)c;
    if (rows == NULL) {
        store_fail(req, &e);
        return;
    }
    out = json_array();
    json_array_foreach(rows, i, v)
        json_array_append_new(out, json_pack("{s:O, s:O, s:O, s:O, s:O}", "id",
                                             json_object_get(v, "id"), "name",
                                             json_object_get(v, "name"), "role",
                                             json_object_get(v, "role"), "team",
                                             json_object_get(v, "team"), "disabled",
                                             json_object_get(v, "disabled")));
    json_decref(rows);
    respond_new(req, 200, out);
}

static void user_stored(const store_result *res, void *opaque)
{
    pend *p = opaque;
    if (res->rc < 0) {
        store_fail(p->req, &res->err);
    } else {
        json_t *out = json_pack("{s:{s:I, s:s, s:s, s:i, s:b}}", "user", "id",
                                (json_int_t)res->id, "name", p->name, "role", p->role, "team",
                                p->team, "disabled", 0);
        if (out && p->generated)
            json_object_set_new(out, "password", json_string(p->pw));
        respond_new(p->req, 201, out);
    }
    pend_free(p);
}

static void user_hash_work(uv_work_t *w)
{
    pend *p = w->data;
    char err[128];
    p->rc = auth_hash_password_kdf(&p->a->kdf, p->pw, p->hash, err, sizeof err);
}

static void user_hash_done(uv_work_t *w, int status)
{
    pend *p = w->data;
    if (status < 0 || p->rc < 0) {
        httpd_error(p->req, 500, "internal", "the password could not be hashed");
        pend_free(p);
        return;
    }
    if (store_user_add(p->a->st, p->name, p->role, p->team, p->hash, now_ms(), user_stored,
                       p) < 0) {
        httpd_error(p->req, 503, "unavailable", "the store is closing");
        pend_free(p);
    }
}

static void h_user_add(api *a, httpd_req *req, const call *c)
{
    json_t *b = httpd_body_json(req, NULL), *tv;
    const char *name, *role, *pw;
    auth_role r;
    char err[160] = "";
    int team = 0;
    pend *p = NULL;
    if (b == NULL)
        return;
    name = json_string_value(json_object_get(b, "name"));
    role = json_string_value(json_object_get(b, "role"));
    pw = json_string_value(json_object_get(b, "password"));
    tv = json_object_get(b, "team");
    r = role ? auth_role_parse(role) : AUTH_ROLE_NONE;
    if (json_is_integer(tv))
        team = (int)json_integer_value(tv);
    if (name == NULL || name[0] == '\0' || strlen(name) > AUTH_NAME_MAX)
        snprintf(err, sizeof err, "name: expected 1 to %d bytes", AUTH_NAME_MAX);
    else if (r == AUTH_ROLE_NONE)
        snprintf(err, sizeof err, "role: expected instructor, member or observer");
    else if (r == AUTH_ROLE_MEMBER && (team < 1 || team > a->n_teams))
        snprintf(err, sizeof err, "team: a member needs a team from 1 to %d", a->n_teams);
    else if (r != AUTH_ROLE_MEMBER && tv && !json_is_null(tv) && team != 0)
        snprintf(err, sizeof err, "team: only members have a team");
    else if (json_object_get(b, "password") &&
             (pw == NULL || strlen(pw) < AUTH_PW_MIN || strlen(pw) > AUTH_PW_MAX))
        snprintf(err, sizeof err, "password: expected %d to %d bytes", AUTH_PW_MIN,
                 AUTH_PW_MAX);
    if (err[0]) {
        httpd_error(req, 400, "invalid", "%s", err);
        goto cleanup;
    }
    if ((p = pend_new(a, req, c)) == NULL)
        goto cleanup;
    snprintf(p->name, sizeof p->name, "%s", name);
    snprintf(p->role, sizeof p->role, "%s", auth_role_name(r));
    p->team = r == AUTH_ROLE_MEMBER ? team : 0;
    if (pw) {
        snprintf(p->pw, sizeof p->pw, "%s", pw);
    } else {
        p->generated = 1;
        auth_generate_password(p->pw, sizeof p->pw);
    }
    p->work.data = p;
    /* Hashing is memory-hard and slow: never on the loop. */
    if (uv_queue_work(a->loop, &p->work, user_hash_work, user_hash_done) < 0) {
        httpd_error(req, 500, "internal", "cannot queue the password hash");
        pend_free(p);
    }
cleanup:
    json_decref(b);
}

/* ---- the routes and the policy ---------------------------------------- */

static const route routes[] = {
    { "POST", "/api/login", h_login, ACC_PUBLIC, 0 },
    { "POST", "/api/logout", h_logout, ACC_SESSION, 0 },
    { "GET", "/api/me", h_me, ACC_SESSION, 0 },
    { "GET", "/api/openapi.json", h_openapi, ACC_PUBLIC, 0 },
    { "GET", "/api/exercise", h_exercise, ACC_SESSION, 0 },
    { "GET", "/api/teams/{team}/map", h_map, ACC_TEAM_READ, 0 },
    { "GET", "/api/teams/{team}/wire", h_wire, ACC_TEAM_READ, 0 },
    { "GET", "/api/teams/{team}/pcaps", h_pcaps, ACC_TEAM_READ, 0 },
    { "GET", "/api/teams/{team}/pcaps/{name}", h_pcap_get, ACC_TEAM_READ, 0 },
    { "GET", "/api/timeline", h_timeline, ACC_READ_ALL, 0 },
    { "GET", "/api/teams/{team}/events", h_team_events, ACC_TEAM_READ, 0 },
    { "GET", "/api/guests", h_guests, ACC_READ_ALL, 0 },
    { "POST", "/api/control", h_control, ACC_STEER, 0 },
    { "GET", "/api/teams/{team}/findings", h_findings, ACC_TEAM_READ, 0 },
    { "POST", "/api/teams/{team}/findings", h_finding_add, ACC_TEAM_WRITE, 0 },
    { "PATCH", "/api/findings/{id}", h_finding_label, ACC_STEER, 0 },
    { "GET", "/api/teams/{team}/reports", h_reports, ACC_TEAM_READ, 0 },
    { "POST", "/api/teams/{team}/reports", h_report_add, ACC_TEAM_WRITE, REPORT_BODY_MAX },
    { "GET", "/api/teams/{team}/reports/{id}", h_report_get, ACC_TEAM_READ, 0 },
    { "PUT", "/api/teams/{team}/reports/{id}", h_report_put, ACC_TEAM_WRITE, REPORT_BODY_MAX },
    { "POST", "/api/teams/{team}/reports/{id}/reviews", h_review_add, ACC_TEAM_STEER,
      REPORT_BODY_MAX },
    { "GET", "/api/teams/{team}/inbox", h_inbox, ACC_TEAM_READ, 0 },
    { "POST", "/api/teams/{team}/inbox/{id}/responses", h_response_add, ACC_TEAM_WRITE, 0 },
    { "POST", "/api/responses/{id}/grade", h_response_grade, ACC_STEER, 0 },
    { "GET", "/api/teams/{team}/score", h_score, ACC_TEAM_READ, 0 },
    { "GET", "/api/scoreboard", h_scoreboard, ACC_READ_ALL, 0 },
    { "GET", "/api/teams/{team}/scores/series", h_series, ACC_TEAM_READ, 0 },
    { "GET", "/api/teams/{team}/analysis", h_analysis_get, ACC_TEAM_READ, 0 },
    { "PUT", "/api/teams/{team}/analysis", h_analysis_put, ACC_TEAM_WRITE, ANALYSIS_BODY_MAX },
    { "GET", "/api/analyses", h_analyses, ACC_READ_ALL, 0 },
    { "GET", "/api/users", h_users, ACC_ADMIN, 0 },
    { "POST", "/api/users", h_user_add, ACC_ADMIN, 0 },
    { "GET", "/api/events", h_events_ws, ACC_SESSION, 0 },
    { "GET", "/api/teams/{team}/hosts/{host}/console", h_console_ws, ACC_CONSOLE, 0 },
};

static int is_write(const char *m)
{
    return strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0;
}

static void dispatch(httpd_req *req, void *opaque)
{
    route_ctx *rc = opaque;
    api *a = rc->a;
    const route *r = rc->r;
    call c;
    auth_err e;
    int ok = 1;
    long long team = 0;

    memset(&c, 0, sizeof c);
    if (r->access == ACC_PUBLIC) {
        r->fn(a, req, &c);
        return;
    }
    if (auth_session_check(a->au, httpd_header(req, "Cookie"), now_ms(), &c.p, &e) < 0) {
        if (e.code == AUTH_EIO)
            httpd_error(req, 500, "internal", "%s", e.msg);
        else
            httpd_error(req, 401, "unauthenticated", "log in first");
        return;
    }
    if (is_write(httpd_method(req)) && !auth_csrf_ok(&c.p, httpd_header(req, AUTH_CSRF_HEADER))) {
        httpd_error(req, 403, "csrf", "missing or wrong " AUTH_CSRF_HEADER " header");
        return;
    }
    if (httpd_param(req, "team")) {
        team = parse_id(httpd_param(req, "team"));
        if (team < 0 || team > 999) {
            httpd_error(req, 404, "not_found", "no such team");
            return;
        }
    }
    switch (r->access) {
    case ACC_SESSION: break;
    case ACC_READ_ALL: ok = auth_can(&c.p, AUTH_READ_TEAM, 0); break;
    case ACC_TEAM_READ: ok = auth_can(&c.p, AUTH_READ_TEAM, (int)team); break;
    case ACC_TEAM_WRITE: ok = auth_can(&c.p, AUTH_WRITE_TEAM, (int)team); break;
    case ACC_TEAM_STEER: ok = auth_can(&c.p, AUTH_STEER, (int)team); break;
    case ACC_STEER: ok = auth_can(&c.p, AUTH_STEER, 0); break;
    case ACC_ADMIN: ok = auth_can(&c.p, AUTH_ADMIN_USERS, 0); break;
    case ACC_CONSOLE: ok = auth_can(&c.p, AUTH_CONSOLE, (int)team); break;
    default: ok = 0;
    }
    if (!ok) {
        httpd_error(req, 403, "forbidden", "not allowed for a %s", auth_role_name(c.p.role)
                                                                     ? auth_role_name(c.p.role)
                                                                     : "user");
        return;
    }
    /* Existence is checked only after the policy, so that it leaks nothing
     * to those who may not see the team. */
    if (team > a->n_teams) {
        httpd_error(req, 404, "not_found", "no team %lld", team);
        return;
    }
    c.team = (int)team;
    r->fn(a, req, &c);
}

api *api_new(uv_loop_t *loop, httpd *h, store *st, auth *au, const api_opts *o,
             const api_ops *ops, char *err, size_t errlen)
{
    api *a = NULL;
    const plan *pl;
    size_t n = sizeof routes / sizeof routes[0];

    if (loop == NULL || h == NULL || st == NULL || au == NULL || o == NULL || ops == NULL ||
        o->exercise == NULL || ops->plan == NULL) {
        snprintf(err, errlen, "api_new: missing argument");
        return NULL;
    }
    if ((pl = ops->plan(ops->opaque)) == NULL) {
        snprintf(err, errlen, "api_new: no plan");
        return NULL;
    }
    if ((a = calloc(1, sizeof *a)) == NULL)
        goto oom;
    a->loop = loop;
    a->h = h;
    a->st = st;
    a->au = au;
    a->ops = *ops;
    a->secure = o->secure_cookies;
    a->kdf = o->kdf;
    if (a->kdf.opslimit == 0 || a->kdf.memlimit == 0) {
        a->kdf.opslimit = AUTH_OPSLIMIT;
        a->kdf.memlimit = AUTH_MEMLIMIT;
    }
    a->n_teams = pl->n_teams;
    if ((a->exercise = strdup(o->exercise)) == NULL ||
        (o->openapi_path && (a->openapi_path = strdup(o->openapi_path)) == NULL) ||
        (a->ctx = calloc(n, sizeof *a->ctx)) == NULL ||
        (a->rings = calloc((size_t)a->n_teams + 1, sizeof *a->rings)) == NULL)
        goto oom;
    for (size_t i = 0; i < n; i++) {
        int rc;
        a->ctx[i].a = a;
        a->ctx[i].r = &routes[i];
        rc = routes[i].limit
                 ? httpd_route_limit(h, routes[i].method, routes[i].path, dispatch, &a->ctx[i],
                                     routes[i].limit)
                 : httpd_route(h, routes[i].method, routes[i].path, dispatch, &a->ctx[i]);
        if (rc < 0) {
            snprintf(err, errlen, "api_new: cannot add route %s %s", routes[i].method,
                     routes[i].path);
            really_free(a);
            return NULL;
        }
    }
    a->n_routes = n;
    if (o->web_dir && httpd_static(h, "/", o->web_dir) < 0) {
        snprintf(err, errlen, "api_new: cannot serve %s", o->web_dir);
        really_free(a);
        return NULL;
    }
    seed_rings(a);
    return a;
oom:
    snprintf(err, errlen, "api_new: out of memory");
    if (a)
        really_free(a);
    return NULL;
}

json_t *api_routes(const api *a)
{
    json_t *out = json_array();
    for (size_t i = 0; a && out && i < a->n_routes; i++)
        json_array_append_new(out, json_pack("{s:s, s:s, s:s}", "method", routes[i].method,
                                             "path", routes[i].path, "access",
                                             acc_names[routes[i].access]));
    return out;
}

void api_free(api *a)
{
    sub *s, *sn;
    con *k, *kn;
    if (a == NULL)
        return;
    a->closing = 1;
    /* Their on_close callbacks unlink them and drop their references. */
    for (s = a->subs; s; s = sn) {
        sn = s->next;
        websock_close(s->ws, 1001, "server shutting down");
    }
    for (k = a->cons; k; k = kn) {
        kn = k->next;
        if (!k->ended) {
            k->ended = 1;
            websock_close(k->ws, 1001, "server shutting down");
        }
    }
    if (a->refs == 0)
        really_free(a);
}
