/* cli_serve — the API side of `cyrange serve` (see cli_serve.c). */
#ifndef CYRANGE_CLI_SERVE_H
#define CYRANGE_CLI_SERVE_H

#include <jansson.h>
#include <uv.h>

#include "exercise.h"
#include "plan.h"
#include "range.h"
#include "store.h"

typedef struct serve_ctx serve_ctx;

typedef struct serve_opts {
    const char *state_dir;     /* the database is <state_dir>/cyrange.db */
    const char *listen;        /* ADDRESS:PORT, default 127.0.0.1:8080 */
    const char *web_dir;       /* the UI's static files, or NULL */
    const char *openapi_path;  /* web/openapi.json, or NULL */
    int provision;             /* create team accounts and print them once */
    int members;               /* accounts per team (default 2) */
} serve_opts;

/* Opens the store, accounts, the HTTP server and the API.  `p` and `r` are
 * borrowed.  NULL with `err` (nothing left open). */
serve_ctx *serve_open(uv_loop_t *loop, const plan *p, range *r, const serve_opts *o,
                      char *err, size_t errlen);
/* The store, for the exercise's records (borrowed). */
store *serve_store(serve_ctx *s);
int serve_port(const serve_ctx *s);
/* The running exercise answers the API from now on. */
void serve_attach(serve_ctx *s, exercise *x);
/* Stops the API (before the exercise is freed). */
void serve_detach(serve_ctx *s);
/* exercise_event_cb: forwards to the API's /api/events. */
void serve_event(exercise *x, const char *type, int team, int instructors_only,
                 const json_t *data, void *opaque);
/* Closes everything (the store last, after its pending writes); `closed`
 * runs when done.  Accepts NULL. */
void serve_close(serve_ctx *s, void (*closed)(void *opaque), void *opaque);

#endif
