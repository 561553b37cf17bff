/* cli_serve — what `cyrange serve` adds to `cyrange run`: the durable store
 * (<state>/cyrange.db), accounts and sessions, the HTTP/JSON API with its
 * WebSockets, guest consoles, and the web UI's static files.
 *
 * cli_range.c brings the range up (or attaches to it after a crash) and
 * plays the exercise; it calls serve_open() before creating the exercise
 * (whose records then go to the store too), serve_attach() once the
 * exercise exists, and serve_close() when it stops.
 */
#include "cli_serve.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <errno.h>
#include <sodium.h>

#include "api.h"
#include "auth.h"
#include "console.h"
#include "httpd.h"
#include "store.h"

struct serve_ctx {
    uv_loop_t *loop;
    const plan *p;
    range *r;
    store *st;
    auth *au;
    httpd *h;
    api *a;
    console_hub *hub;
    exercise *x;
    int port;
    char bind[64];
    char *cli_file;            /* <state>/<exercise>/api.json, once written */
    uint64_t cli_minted;       /* uv_now() of its session, 0: none yet */
    char *state_dir;
    int closing;
    uv_timer_t score_timer;    /* score snapshots for the plots */
    int score_timer_on;
    size_t pending;            /* closes not yet completed */
    void (*closed)(void *opaque);
    void *closed_opaque;
};

/* ---- api_ops on top of the exercise ------------------------------------ */

static const plan *op_plan(void *opaque)
{
    return ((serve_ctx *)opaque)->p;
}

static json_t *op_command(void *opaque, const json_t *cmd)
{
    serve_ctx *s = opaque;
    if (s->x == NULL)
        return json_pack("{s:b, s:s}", "ok", 0, "error", "the exercise is not running");
    return exercise_command(s->x, cmd);
}

static int op_finding_add(void *opaque, int team, const json_t *finding, const char *by,
                          api_done_cb cb, void *cbopaque)
{
    serve_ctx *s = opaque;
    if (s->x == NULL)
        return -1;
    return exercise_finding_add(s->x, team, finding, by, cb, cbopaque);
}

static int op_finding_label(void *opaque, long long id, const char *label, const char *by,
                            api_done_cb cb, void *cbopaque)
{
    serve_ctx *s = opaque;
    if (s->x == NULL)
        return -1;
    return exercise_finding_label(s->x, id, label, by, cb, cbopaque);
}

static json_t *op_findings(void *opaque, int team)
{
    serve_ctx *s = opaque;
    return s->x ? exercise_findings(s->x, team) : json_array();
}

static json_t *op_score(void *opaque, int team, const json_t *grades)
{
    serve_ctx *s = opaque;
    char err[256];
    return s->x ? exercise_score(s->x, team, grades, err, sizeof(err)) : NULL;
}

static char *op_pcap_dir(void *opaque, int team)
{
    serve_ctx *s = opaque;
    return s->x ? exercise_pcap_dir(s->x, team) : NULL;
}

static const char *op_domain(void *opaque, int team, const char *host)
{
    serve_ctx *s = opaque;
    int g = range_guest_find(s->r, team, host);
    return g >= 0 ? range_guest_domain(s->r, (size_t)g) : NULL;
}

static console_hub *op_consoles(void *opaque)
{
    serve_ctx *s = opaque;
    if (s->hub == NULL && range_virt_events(s->r) != NULL)
        s->hub = console_hub_new(s->loop, range_virt_events(s->r));
    return s->hub;
}

/* ---- score over time ------------------------------------------------------ */

#define SCORE_SNAPSHOT_MS 30000

static void cli_session_start(serve_ctx *s);

/* The command line's session is renewed at half its life, so a range
 * served longer than a session lasts still answers the CLI. */
#define CLI_SESSION_RENEW_MS (AUTH_SESSION_TTL_MS / 2)

static void on_score_timer(uv_timer_t *t)
{
    serve_ctx *s = t->data;
    struct timespec now;

    if (s->cli_minted && !s->closing && uv_now(s->loop) - s->cli_minted > CLI_SESSION_RENEW_MS) {
        s->cli_minted = uv_now(s->loop);
        cli_session_start(s);
    }
    if (s->x == NULL || s->a == NULL)
        return;
    clock_gettime(CLOCK_REALTIME, &now);
    long long ms = (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    for (int team = 1; team <= s->p->n_teams; team++) {
        json_t *b = api_team_score(s->a, team);
        if (b == NULL)
            continue;
        double total = json_number_value(json_object_get(b, "total"));
        store_score_snapshot(s->st, s->p->exercise, team, ms, total, b, NULL, NULL);
        json_t *ev = json_pack("{s:i, s:f, s:O?}", "team", team, "total", total, "max",
                               json_object_get(b, "max"));
        api_event(s->a, "score", team, 0, ev);
        json_decref(ev);
        json_decref(b);
    }
}

/* ---- setup and teardown -------------------------------------------------- */

static int parse_listen(const char *listen, char *bind, size_t blen, int *port)
{
    const char *colon = listen ? strrchr(listen, ':') : NULL;
    char *end = NULL;
    long v;

    if (colon == NULL || colon == listen || (size_t)(colon - listen) >= blen)
        return -1;
    v = strtol(colon + 1, &end, 10);
    if (*end != '\0' || v < 1 || v > 65535)
        return -1;
    memcpy(bind, listen, (size_t)(colon - listen));
    bind[colon - listen] = '\0';
    *port = (int)v;
    return 0;
}

/* ---- the local CLI's way in ------------------------------------------ */

/* The command line reaches a running serve through the API: it finds the
 * address and an instructor session in <state>/<exercise>/api.json,
 * readable by root only (as the control socket is), written atomically. */
static void cli_session_minted(const auth_result *res, void *opaque)
{
    serve_ctx *s = opaque;
    char *path = NULL, *tmp = NULL, *text = NULL;
    const char *host = s->bind;
    json_t *doc = NULL;
    int fd = -1;

    if (s->closing)
        return;
    if (res->rc != AUTH_OK) {
        fprintf(stderr, "cyrange serve: the command line will use the control socket: %s\n",
                res->err.msg);
        return;
    }
    if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0 || host[0] == '\0')
        host = strchr(host, ':') ? "::1" : "127.0.0.1";
    doc = json_pack("{s:s, s:i, s:s, s:s, s:s, s:i}", "host", host, "port", s->port, "token",
                    res->token, "csrf", res->csrf, "user",
                    json_string_value(json_object_get(res->user, "name")), "pid",
                    (int)getpid());
    text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    if (text == NULL || asprintf(&path, "%s/%s/api.json", s->state_dir, s->p->exercise) < 0 ||
        asprintf(&tmp, "%s.tmp", path) < 0)
        goto cleanup;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || fchmod(fd, 0600) < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) ||
        fsync(fd) < 0 || close(fd) < 0 || (fd = -1, rename(tmp, path) < 0)) {
        fprintf(stderr, "cyrange serve: cannot write %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        unlink(tmp);
        goto cleanup;
    }
    free(s->cli_file);
    s->cli_file = path;
    s->cli_minted = uv_now(s->loop);
    path = NULL;
cleanup:
    if (text)
        sodium_memzero(text, strlen(text));
    free(text);
    free(tmp);
    free(path);
    json_decref(doc);
}

static void cli_session_start(serve_ctx *s)
{
    if (auth_session_mint_async(s->au, AUTH_ROLE_INSTRUCTOR, cli_session_minted, s) < 0)
        fprintf(stderr, "cyrange serve: the command line will use the control socket\n");
}

static void print_credentials(const auth_result *res, void *opaque)
{
    serve_ctx *s = opaque;
    size_t i;
    json_t *u;
    int shown = 0;

    if (res->rc != AUTH_OK) {
        fprintf(stderr, "cyrange serve: cannot create the team accounts: %s\n", res->err.msg);
        cli_session_start(s);
        return;
    }
    json_array_foreach(res->users, i, u)
        shown += json_is_string(json_object_get(u, "password"));
    /* The table always: whoever runs the exercise needs the names, also
     * when every account exists already. */
    printf("\naccounts (%s):\n  %-14s %-11s %-5s %s\n",
           shown ? "new passwords are shown only this once"
                 : "the team accounts exist already; `cyrange users list`",
           "USER", "ROLE", "TEAM", "PASSWORD");
    json_array_foreach(res->users, i, u) {
        const char *pw = json_string_value(json_object_get(u, "password"));
        json_t *team = json_object_get(u, "team");
        char tbuf[8] = "-";
        if (json_is_integer(team))
            snprintf(tbuf, sizeof(tbuf), "%lld", (long long)json_integer_value(team));
        printf("  %-14s %-11s %-5s %s\n", json_string_value(json_object_get(u, "name")),
               json_string_value(json_object_get(u, "role")), tbuf,
               pw ? pw : "(exists; `cyrange users passwd NAME` sets a new one)");
    }
    printf("web UI: http://%s:%d/\n\n", s->bind, s->port);
    fflush(stdout);
    cli_session_start(s);
}

serve_ctx *serve_open(uv_loop_t *loop, const plan *p, range *r, const serve_opts *o,
                      char *err, size_t errlen)
{
    serve_ctx *s = calloc(1, sizeof(*s));
    char *db = NULL, oerr[512];

    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->loop = loop;
    s->p = p;
    s->r = r;
    if ((s->state_dir = strdup(o->state_dir)) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (parse_listen(o->listen ? o->listen : "127.0.0.1:8080", s->bind, sizeof(s->bind),
                     &s->port) < 0) {
        snprintf(err, errlen, "--listen is ADDRESS:PORT, e.g. 127.0.0.1:8080");
        goto fail;
    }
    if (asprintf(&db, "%s/cyrange.db", o->state_dir) < 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    s->st = store_open(loop, db, oerr, sizeof(oerr));
    if (s->st == NULL) {
        snprintf(err, errlen, "store %s: %s", db, oerr);
        goto fail;
    }
    auth_opts ao = { 0 };
    s->au = auth_new(loop, s->st, &ao, oerr, sizeof(oerr));
    if (s->au == NULL) {
        snprintf(err, errlen, "auth: %s", oerr);
        goto fail;
    }
    httpd_opts ho = { .bind_addr = s->bind, .port = s->port };
    s->h = httpd_new(loop, &ho, oerr, sizeof(oerr));
    if (s->h == NULL) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", s->bind, s->port, oerr);
        goto fail;
    }
    s->port = httpd_port(s->h);
    static const api_ops ops_template = { NULL, op_plan, op_command, op_finding_add,
                                          op_finding_label, op_findings, op_score,
                                          op_pcap_dir, op_domain, op_consoles };
    api_ops ops = ops_template;
    ops.opaque = s;
    api_opts apo = { .exercise = p->exercise, .web_dir = o->web_dir,
                     .openapi_path = o->openapi_path };
    s->a = api_new(loop, s->h, s->st, s->au, &apo, &ops, oerr, sizeof(oerr));
    if (s->a == NULL) {
        snprintf(err, errlen, "api: %s", oerr);
        goto fail;
    }
    uv_timer_init(loop, &s->score_timer);
    s->score_timer.data = s;
    s->score_timer_on = 1;
    uv_timer_start(&s->score_timer, on_score_timer, 5000, SCORE_SNAPSHOT_MS);
    if (o->provision)
        auth_provision_team_users(s->au, p->n_teams, o->members > 0 ? o->members : 2,
                                  print_credentials, s);
    else {
        printf("web UI: http://%s:%d/\n", s->bind, s->port);
        cli_session_start(s);
    }
    free(db);
    return s;
fail:
    free(db);
    serve_close(s, NULL, NULL);
    return NULL;
}

store *serve_store(serve_ctx *s)
{
    return s ? s->st : NULL;
}

int serve_port(const serve_ctx *s)
{
    return s ? s->port : 0;
}

void serve_attach(serve_ctx *s, exercise *x)
{
    if (s)
        s->x = x;
}

void serve_detach(serve_ctx *s)
{
    /* From now on the API's operations answer "not running": nothing
     * reaches the exercise, which is freed next. */
    if (s)
        s->x = NULL;
}

void serve_event(exercise *x, const char *type, int team, int instructors_only,
                 const json_t *data, void *opaque)
{
    serve_ctx *s = opaque;
    (void)x;
    if (s && s->a)
        api_event(s->a, type, team, instructors_only, data);
}

static void close_step(void *opaque)
{
    serve_ctx *s = opaque;
    if (--s->pending > 0)
        return;
    if (s->closed)
        s->closed(s->closed_opaque);
    free(s->state_dir);
    free(s);
}

static void timer_closed(uv_handle_t *h)
{
    close_step(h->data);
}

/* The HTTP server is closed (its routes point into the API): the API, the
 * consoles and the accounts go, the store last, once its pending writes
 * are committed. */
static void httpd_closed(void *opaque)
{
    serve_ctx *s = opaque;
    s->h = NULL;
    api_free(s->a);
    s->a = NULL;
    if (s->hub) {
        s->pending++;
        console_hub_close(s->hub, close_step, s);
        s->hub = NULL;
    }
    auth_free(s->au);
    s->au = NULL;
    if (s->st) {
        s->pending++;
        store_close(s->st, close_step, s);
        s->st = NULL;
    }
    close_step(s);
}

void serve_close(serve_ctx *s, void (*closed)(void *opaque), void *opaque)
{
    if (s == NULL) {
        if (closed)
            closed(opaque);
        return;
    }
    s->closed = closed;
    s->closed_opaque = opaque;
    s->closing = 1;
    s->pending = 1;
    /* The command line falls back to the control socket from now on. */
    if (s->cli_file) {
        unlink(s->cli_file);
        free(s->cli_file);
        s->cli_file = NULL;
    }
    if (s->score_timer_on) {
        s->score_timer_on = 0;
        s->pending++;
        uv_close((uv_handle_t *)&s->score_timer, timer_closed);
    }
    if (s->h)
        httpd_close(s->h, httpd_closed, s);
    else
        httpd_closed(s);
}
