/* api_int.h — private to the API: shared only by orchestrator/api*.c (the
 * API split by resource), never installed nor included elsewhere.  The
 * API's interface is api.h.
 *
 * api.c holds struct api's life, the routes, the policy, the events and the
 * helpers below; each api_<resource>.c holds the handlers of its routes.  A
 * handler runs once the policy has let its request through (see api.c) and
 * answers it, now or from a callback through a pend.
 */
#ifndef CYRANGE_API_INT_H
#define CYRANGE_API_INT_H

#include <stdint.h>

#include "api.h"

/* Body limits of the routes that take more than the server's default. */
#define REPORT_BODY_MAX (256u * 1024)     /* bytes of a report request */
/* 200 items of two full texts (api_scores.c), with room for JSON escapes. */
#define ANALYSIS_BODY_MAX (4u * 1024 * 1024)

/* Private to api.c (ring, sub, route_ctx) and api_console.c (con). */
typedef struct ring ring;
typedef struct sub sub;
typedef struct route_ctx route_ctx;
typedef struct con con;

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

/* What a handler gets once the policy has let the request through. */
typedef struct call {
    auth_principal p; /* zeroed for public routes */
    int team;         /* {team}, else 0 */
} call;

/* An operation that answers its request later, from a callback.  It holds
 * a reference on the API, so api_free waits for it. */
typedef struct pend {
    api *a;
    httpd_req *req;
    call c;
    int64_t id;
    json_t *j;     /* owned: the body or document being written */
    int team;      /* the graded response's team; the new user's */
    /* POST /api/users: the new user, hashed off the loop. */
    uv_work_t work;
    int rc;
    char name[AUTH_NAME_MAX + 1];
    char role[16];
    char pw[AUTH_PW_MAX + 1];
    int generated;
    char hash[AUTH_HASH_MAX];
} pend;

/* ---- helpers (api.c) ---------------------------------------------------- */

int64_t api_now_ms(void);
void api_ref(api *a);
void api_unref(api *a);

/* The error code of an HTTP status ("invalid", "not_found", ...). */
const char *api_status_code(int status);
/* Answers the store's error with its status. */
void api_store_fail(httpd_req *req, const store_err *e);
/* Answers `j` (taken) with `status`; 500 when j is NULL. */
void api_respond_new(httpd_req *req, int status, json_t *j);
/* Answers `rows` (taken), each mapped through `fn` (NULL: as they are),
 * or the store's error `e` when rows is NULL. */
void api_respond_rows(httpd_req *req, json_t *rows, const store_err *e,
                      json_t *(*fn)(const json_t *row));

/* A strictly positive decimal id, or -1. */
long long api_parse_id(const char *s);
/* The path's {id}, or -1 once it has answered 404 "no such <what>". */
long long api_path_id(httpd_req *req, const char *what);

const plan *api_plan(const api *a);
const scenario *api_scn(const api *a);
/* The answer of exercise command `cmd` for `team` (new reference) or NULL. */
json_t *api_command(api *a, const char *cmd, int team);
/* "finished", "running" or "held"; *started gets the start or 0. */
const char *api_exercise_state(api *a, int64_t *started);

/* A pend for `req`, holding `j` (taken, may be NULL), or NULL once it has
 * answered 500 (j released). */
pend *api_pend_new(api *a, httpd_req *req, const call *c, json_t *j);
void api_pend_free(pend *p);
/* Takes the return of the store write that `p` waits for: when it could
 * not start (< 0), answers 503 and frees p. */
void api_pend_queued(pend *p, int rc);
/* From a store write's callback: answers `out` (taken) with `status` and
 * announces it to `team` as event `type`. */
void api_pend_announce(pend *p, int status, const char *type, int team, json_t *out);

/* ---- api_scores.c -------------------------------------------------------- */

/* Drops the cached scoreboard: something that may change a score happened. */
void api_board_forget(api *a);

/* ---- api_console.c ------------------------------------------------------- */

/* Closes every console WebSocket (api_free). */
void api_consoles_close(api *a);

/* ---- the handlers, by file ------------------------------------------------ */

/* api.c */
void api_h_openapi(api *a, httpd_req *req, const call *c);
void api_h_team_events(api *a, httpd_req *req, const call *c);
void api_h_events_ws(api *a, httpd_req *req, const call *c);
/* api_users.c */
void api_h_login(api *a, httpd_req *req, const call *c);
void api_h_logout(api *a, httpd_req *req, const call *c);
void api_h_me(api *a, httpd_req *req, const call *c);
void api_h_users(api *a, httpd_req *req, const call *c);
void api_h_user_add(api *a, httpd_req *req, const call *c);
/* api_range.c */
void api_h_exercise(api *a, httpd_req *req, const call *c);
void api_h_map(api *a, httpd_req *req, const call *c);
void api_h_wire(api *a, httpd_req *req, const call *c);
void api_h_pcaps(api *a, httpd_req *req, const call *c);
void api_h_pcap_get(api *a, httpd_req *req, const call *c);
void api_h_timeline(api *a, httpd_req *req, const call *c);
void api_h_guests(api *a, httpd_req *req, const call *c);
void api_h_control(api *a, httpd_req *req, const call *c);
/* api_findings.c */
void api_h_findings(api *a, httpd_req *req, const call *c);
void api_h_finding_add(api *a, httpd_req *req, const call *c);
void api_h_finding_label(api *a, httpd_req *req, const call *c);
/* api_reports.c */
void api_h_reports(api *a, httpd_req *req, const call *c);
void api_h_report_get(api *a, httpd_req *req, const call *c);
void api_h_report_add(api *a, httpd_req *req, const call *c);
void api_h_report_put(api *a, httpd_req *req, const call *c);
void api_h_review_add(api *a, httpd_req *req, const call *c);
/* api_inbox.c */
void api_h_inbox(api *a, httpd_req *req, const call *c);
void api_h_response_add(api *a, httpd_req *req, const call *c);
void api_h_response_grade(api *a, httpd_req *req, const call *c);
/* api_scores.c */
void api_h_score(api *a, httpd_req *req, const call *c);
void api_h_scoreboard(api *a, httpd_req *req, const call *c);
void api_h_series(api *a, httpd_req *req, const call *c);
void api_h_analysis_get(api *a, httpd_req *req, const call *c);
void api_h_analysis_put(api *a, httpd_req *req, const call *c);
void api_h_analyses(api *a, httpd_req *req, const call *c);
/* api_console.c */
void api_h_console_ws(api *a, httpd_req *req, const call *c);

#endif
