/* api — the HTTP/JSON API and WebSockets of `cyrange serve`.
 *
 * Every route goes through one dispatcher that applies the policy in the
 * same order: session (401), CSRF on state-changing methods (403 "csrf"),
 * then authorisation through auth_can only (403), then the team's
 * existence (404), and only then the handler, which validates the body.
 * So a member addressing another team learns nothing about it.
 *
 * This file holds the API's life (api_new, api_free), the route table, the
 * dispatcher, the events and the helpers the handlers share (api_int.h).
 * The handlers live by resource in api_users.c (session, users),
 * api_range.c (exercise, map, wire, captures, timeline, guests, control),
 * api_findings.c, api_reports.c (reports, reviews), api_inbox.c (inbox,
 * responses, their grades), api_scores.c (score, scoreboard, series,
 * self-analysis) and api_console.c (the console WebSocket).
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_int.h"
#include "websock.h"

#define RING_SIZE 512                   /* events kept per team */
#define EVENTS_BUFFERED_MAX (256u * 1024) /* a slower subscriber is dropped */

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

typedef void (*route_fn)(api *a, httpd_req *req, const call *c);

typedef struct route {
    const char *method;
    const char *path;
    route_fn fn;
    acc access;
    size_t limit; /* body bytes, 0: the server's default */
} route;

struct route_ctx {
    api *a;
    const route *r;
};

typedef struct ev {
    int64_t seq, ts_ms;
    char type[16];
    char *summary;
    int instructors_only;
} ev;

struct ring {
    ev e[RING_SIZE];
    size_t head, n; /* oldest at head */
};

struct sub {
    struct sub *next;
    api *a;
    websock *ws;
    auth_principal p;
};

/* ---- small helpers ----------------------------------------------------- */

int64_t api_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void api_ref(api *a)
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

void api_unref(api *a)
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

const char *api_status_code(int status)
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

void api_store_fail(httpd_req *req, const store_err *e)
{
    int s = store_status(e->code);
    httpd_error(req, s, api_status_code(s), "%s", e->msg);
}

void api_respond_new(httpd_req *req, int status, json_t *j)
{
    if (j == NULL) {
        httpd_error(req, 500, "internal", "out of memory");
        return;
    }
    httpd_respond_json(req, status, j);
    json_decref(j);
}

void api_respond_rows(httpd_req *req, json_t *rows, const store_err *e,
                      json_t *(*fn)(const json_t *row))
{
    json_t *out, *v;
    size_t i;
    if (rows == NULL) {
        api_store_fail(req, e);
        return;
    }
    if (fn == NULL) {
        api_respond_new(req, 200, rows);
        return;
    }
    out = json_array();
    json_array_foreach(rows, i, v)
        json_array_append_new(out, fn(v));
    json_decref(rows);
    api_respond_new(req, 200, out);
}

long long api_parse_id(const char *s)
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

long long api_path_id(httpd_req *req, const char *what)
{
    long long id = api_parse_id(httpd_param(req, "id"));
    if (id < 0)
        httpd_error(req, 404, "not_found", "no such %s", what);
    return id;
}

const plan *api_plan(const api *a)
{
    return a->ops.plan ? a->ops.plan(a->ops.opaque) : NULL;
}

const scenario *api_scn(const api *a)
{
    const plan *p = api_plan(a);
    return p ? p->scn : NULL;
}

json_t *api_command(api *a, const char *cmd, int team)
{
    json_t *c = json_pack("{s:s, s:i}", "cmd", cmd, "team", team), *r = NULL;
    if (c && a->ops.command)
        r = a->ops.command(a->ops.opaque, c);
    json_decref(c);
    return r;
}

/* "finished" when every team's clock has finished, "running" when one
 * runs, else "held"; *started gets the status's started_ms or 0. */
const char *api_exercise_state(api *a, int64_t *started)
{
    json_t *st = api_command(a, "status", 0);
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

/* ---- pending operations ------------------------------------------------ */

pend *api_pend_new(api *a, httpd_req *req, const call *c, json_t *j)
{
    pend *p = calloc(1, sizeof *p);
    if (p == NULL) {
        json_decref(j);
        httpd_error(req, 500, "internal", "out of memory");
        return NULL;
    }
    p->a = a;
    p->req = req;
    if (c)
        p->c = *c;
    p->j = j;
    api_ref(a);
    return p;
}

void api_pend_free(pend *p)
{
    api *a = p->a;
    json_decref(p->j);
    sodium_memzero(p->pw, sizeof p->pw);
    free(p);
    api_unref(a);
}

void api_pend_queued(pend *p, int rc)
{
    if (rc < 0) {
        httpd_error(p->req, 503, "unavailable", "the store is closing");
        api_pend_free(p);
    }
}

void api_pend_announce(pend *p, int status, const char *type, int team, json_t *out)
{
    api_respond_new(p->req, status, json_incref(out));
    api_event(p->a, type, team, 0, out);
    json_decref(out);
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
    int64_t ts = api_now_ms();
    json_t *msg;
    char *text;
    sub *s, *next;

    if (a == NULL || a->closing || type == NULL)
        return;
    api_board_forget(a);
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

void api_h_events_ws(api *a, httpd_req *req, const call *c)
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

void api_h_team_events(api *a, httpd_req *req, const call *c)
{
    const char *since_s = httpd_query(req, "since");
    long long since = 0;
    ring *r = &a->rings[c->team];
    json_t *out = json_array();
    if (since_s && strcmp(since_s, "0") != 0 && (since = api_parse_id(since_s)) < 0) {
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
    api_respond_new(req, 200, out);
}

/* ---- the API's own document -------------------------------------------- */

void api_h_openapi(api *a, httpd_req *req, const call *c)
{
    (void)c;
    if (a->openapi_path == NULL) {
        httpd_error(req, 404, "not_found", "no API document");
        return;
    }
    httpd_respond_file(req, a->openapi_path, "application/json", NULL);
}

/* ---- the routes and the policy ---------------------------------------- */

/* The handler of a route is in the file of its resource (api_int.h). */
static const route routes[] = {
    { "POST", "/api/login", api_h_login, ACC_PUBLIC, 0 },
    { "POST", "/api/logout", api_h_logout, ACC_SESSION, 0 },
    { "GET", "/api/me", api_h_me, ACC_SESSION, 0 },
    { "GET", "/api/openapi.json", api_h_openapi, ACC_PUBLIC, 0 },
    { "GET", "/api/exercise", api_h_exercise, ACC_SESSION, 0 },
    { "GET", "/api/teams/{team}/map", api_h_map, ACC_TEAM_READ, 0 },
    { "GET", "/api/teams/{team}/wire", api_h_wire, ACC_TEAM_READ, 0 },
    { "GET", "/api/teams/{team}/pcaps", api_h_pcaps, ACC_TEAM_READ, 0 },
    { "GET", "/api/teams/{team}/pcaps/{name}", api_h_pcap_get, ACC_TEAM_READ, 0 },
    { "GET", "/api/timeline", api_h_timeline, ACC_READ_ALL, 0 },
    { "GET", "/api/teams/{team}/events", api_h_team_events, ACC_TEAM_READ, 0 },
    { "GET", "/api/guests", api_h_guests, ACC_READ_ALL, 0 },
    { "POST", "/api/control", api_h_control, ACC_STEER, 0 },
    { "GET", "/api/teams/{team}/findings", api_h_findings, ACC_TEAM_READ, 0 },
    { "POST", "/api/teams/{team}/findings", api_h_finding_add, ACC_TEAM_WRITE, 0 },
    { "PATCH", "/api/findings/{id}", api_h_finding_label, ACC_STEER, 0 },
    { "GET", "/api/teams/{team}/reports", api_h_reports, ACC_TEAM_READ, 0 },
    { "POST", "/api/teams/{team}/reports", api_h_report_add, ACC_TEAM_WRITE, REPORT_BODY_MAX },
    { "GET", "/api/teams/{team}/reports/{id}", api_h_report_get, ACC_TEAM_READ, 0 },
    { "PUT", "/api/teams/{team}/reports/{id}", api_h_report_put, ACC_TEAM_WRITE,
      REPORT_BODY_MAX },
    { "POST", "/api/teams/{team}/reports/{id}/reviews", api_h_review_add, ACC_TEAM_STEER,
      REPORT_BODY_MAX },
    { "GET", "/api/teams/{team}/inbox", api_h_inbox, ACC_TEAM_READ, 0 },
    { "POST", "/api/teams/{team}/inbox/{id}/responses", api_h_response_add, ACC_TEAM_WRITE, 0 },
    { "POST", "/api/responses/{id}/grade", api_h_response_grade, ACC_STEER, 0 },
    { "GET", "/api/teams/{team}/score", api_h_score, ACC_TEAM_READ, 0 },
    { "GET", "/api/scoreboard", api_h_scoreboard, ACC_READ_ALL, 0 },
    { "GET", "/api/teams/{team}/scores/series", api_h_series, ACC_TEAM_READ, 0 },
    { "GET", "/api/teams/{team}/analysis", api_h_analysis_get, ACC_TEAM_READ, 0 },
    { "PUT", "/api/teams/{team}/analysis", api_h_analysis_put, ACC_TEAM_WRITE,
      ANALYSIS_BODY_MAX },
    { "GET", "/api/analyses", api_h_analyses, ACC_READ_ALL, 0 },
    { "GET", "/api/users", api_h_users, ACC_ADMIN, 0 },
    { "POST", "/api/users", api_h_user_add, ACC_ADMIN, 0 },
    { "GET", "/api/events", api_h_events_ws, ACC_SESSION, 0 },
    { "GET", "/api/teams/{team}/hosts/{host}/console", api_h_console_ws, ACC_CONSOLE, 0 },
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
    if (auth_session_check(a->au, httpd_header(req, "Cookie"), api_now_ms(), &c.p, &e) < 0) {
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
        team = api_parse_id(httpd_param(req, "team"));
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
    if (a == NULL)
        return;
    a->closing = 1;
    /* Their on_close callbacks unlink them and drop their references. */
    for (s = a->subs; s; s = sn) {
        sn = s->next;
        websock_close(s->ws, 1001, "server shutting down");
    }
    api_consoles_close(a);
    if (a->refs == 0)
        really_free(a);
}
