/* api — the HTTP/JSON API and WebSockets of `cyrange serve` (the contract
 * is web/openapi.json; every route is listed there and a test keeps the two
 * in step).
 *
 * The API owns the routes, authentication and authorisation (auth.h), the
 * team scoping of every read and write, the reports, reviews, inbox and
 * grades (store.h), the events WebSocket and the console WebSockets
 * (console.h).  What only the running exercise knows (its timeline, the
 * range, captures, checks, scores, findings) it asks through api_ops,
 * implemented by cli_serve.c on top of exercise.h.  Everything runs on the
 * loop thread.
 */
#ifndef CYRANGE_API_H
#define CYRANGE_API_H

#include <jansson.h>
#include <uv.h>

#include "auth.h"
#include "console.h"
#include "httpd.h"
#include "plan.h"
#include "store.h"

typedef struct api api;

/* The answer of an asynchronous operation: `result` (borrowed) on success,
 * else an HTTP status and a message. */
typedef void (*api_done_cb)(void *cbopaque, int http_status, const json_t *result,
                            const char *error);

typedef struct api_ops {
    void *opaque;
    /* The plan of the running exercise (borrowed, lives as long as the
     * API). */
    const plan *(*plan)(void *opaque);
    /* An instructor command or a query, as exercise_command() takes them:
     * {"cmd":"status"|"start"|"pause"|"resume"|"reset"|"skip"|"run"|
     *  "guests"|"checks"|"wire", "team":N, "step":"id"}.  New reference. */
    json_t *(*command)(void *opaque, const json_t *cmd);
    /* Files a finding of `team` (the body as findings.h describes it); the
     * callback gets the stored finding (with "id") once it is durable, or
     * 400 with the validation message.  0, or -1 when it cannot start. */
    int (*finding_add)(void *opaque, int team, const json_t *finding, const char *by,
                       api_done_cb cb, void *cbopaque);
    /* Relabels finding `id` (label NULL clears it). */
    int (*finding_label)(void *opaque, long long id, const char *label, const char *by,
                         api_done_cb cb, void *cbopaque);
    /* The findings of `team` (0: all), new reference. */
    json_t *(*findings)(void *opaque, int team);
    /* The score breakdown of `team` with the instructors' grades
     * ({"reports":[{"id","points","max","reason"}],"injects":[{"step",
     * "points","max","reason"}]}, borrowed), new reference or NULL. */
    json_t *(*score)(void *opaque, int team, const json_t *grades);
    /* `team`'s pcap folder (malloc'd) or NULL. */
    char *(*pcap_dir)(void *opaque, int team);
    /* The libvirt domain of `host` in `team` (borrowed) or NULL. */
    const char *(*domain)(void *opaque, int team, const char *host);
    /* The consoles of the range's guests (borrowed) or NULL. */
    console_hub *(*consoles)(void *opaque);
} api_ops;

typedef struct api_opts {
    const char *exercise;      /* the exercise id (store key) */
    const char *web_dir;       /* static files of the UI, or NULL */
    const char *openapi_path;  /* web/openapi.json, served at /api/openapi.json */
    int secure_cookies;        /* behind TLS */
    auth_kdf kdf;              /* argon2id cost of POST /api/users' hashes,
                                * {0, 0}: auth.h's defaults (use the same
                                * as auth_new's) */
} api_opts;

/* Registers every route on `h`.  Borrowed: loop, h, st, au, ops (they must
 * outlive the API).  NULL with `err`. */
api *api_new(uv_loop_t *loop, httpd *h, store *st, auth *au, const api_opts *o,
             const api_ops *ops, char *err, size_t errlen);

/* Broadcasts an event to the /api/events subscribers allowed to see it:
 * `team` 0 is exercise-wide; `instructors_only` keeps it from members
 * (attacker steps, timeline details).  `data` is borrowed. */
void api_event(api *a, const char *type, int team, int instructors_only, const json_t *data);

/* `team`'s score with the instructors' grades, as GET
 * /api/teams/{team}/score gives it to an instructor (new reference), or
 * NULL. */
json_t *api_team_score(api *a, int team);

/* Every registered route as [{"method","path","access"}] (new reference),
 * for the test that compares them with web/openapi.json.  "access" is who
 * may use it: "public", "session", "read_all" (instructors, observers),
 * "team_read", "team_write", "team_steer", "steer", "admin", "console". */
json_t *api_routes(const api *a);

/* Closes the WebSockets (events and consoles) and frees the API once
 * they and every pending write have called back (keep the loop running).
 * The httpd is the caller's: its routes point into the API, so close it
 * (httpd_close) before calling this.  Accepts NULL. */
void api_free(api *a);

#endif
