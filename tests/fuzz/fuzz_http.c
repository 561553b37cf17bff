/* libFuzzer harness for httpd's request path and websock's frame reader.
 *
 * Every input is the byte stream of one client connection, fed through
 * httpd_conn_feed (no socket): the parser, header and body limits, path
 * decoding and normalisation, routing with parameters, query decoding,
 * JSON bodies, static files (with traversal attempts), a deferred answer,
 * and a websocket route whose frames echo.  A fresh server per input is
 * closed and its loop run dry, so LeakSanitizer sees any leak on any path.
 * Built and run by `make fuzz-http` (tests/fuzz/http.mk).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "httpd.h"
#include "websock.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char root[64];
static int pending;
static size_t sunk;

typedef struct later {
    uv_timer_t t;
    httpd_req *req;
} later;

static void sink(const void *d, size_t len, void *opaque)
{
    (void)d;
    (void)opaque;
    sunk += len;
}

static void h_finding(httpd_req *req, void *opaque)
{
    (void)opaque;
    json_t *j = json_pack("{s:s,s:s,s:s*,s:s*}", "team", httpd_param(req, "team"),
                          "id", httpd_param(req, "id"), "q", httpd_query(req, "q"),
                          "cookie", httpd_header(req, "Cookie"));
    httpd_add_header(req, "Set-Cookie", "sid=1");
    httpd_respond_json(req, 200, j);
    json_decref(j);
}

static void h_post(httpd_req *req, void *opaque)
{
    (void)opaque;
    json_t *j = httpd_body_json(req, NULL);
    if (!j)
        return;
    httpd_respond_json(req, 201, j);
    json_decref(j);
}

static void later_closed(uv_handle_t *h)
{
    free(h->data);
}

static void later_fire(uv_timer_t *t)
{
    later *l = t->data;
    httpd_error(l->req, 409, "conflict", "answered later by %s", httpd_remote(l->req));
    pending--;
    uv_close((uv_handle_t *)&l->t, later_closed);
}

static void h_later(httpd_req *req, void *opaque)
{
    later *l = calloc(1, sizeof *l);
    if (!l) {
        httpd_error(req, 500, "oom", "out of memory");
        return;
    }
    l->req = req;
    uv_timer_init(opaque, &l->t);
    l->t.data = l;
    pending++;
    uv_timer_start(&l->t, later_fire, 0, 0);
}

static void h_file(httpd_req *req, void *opaque)
{
    (void)opaque;
    char p[128];
    snprintf(p, sizeof p, "%s/%s", root, httpd_param(req, "name"));
    httpd_respond_file(req, p, NULL, "capture.pcap");
}

static void ws_msg(websock *ws, int is_text, const char *d, size_t len, void *opaque)
{
    (void)opaque;
    if (len == 5 && memcmp(d, "close", 5) == 0) {
        websock_close(ws, 1000, "bye");
        return;
    }
    if (is_text)
        websock_send_text(ws, d, len);
    else
        websock_send_binary(ws, d, len);
}

static void ws_closed(websock *ws, int code, void *opaque)
{
    (void)ws;
    (void)opaque;
    if (code < 1000 || code > 4999)
        abort();
}

static void h_ws(httpd_req *req, void *opaque)
{
    (void)opaque;
    websock_cbs cbs = {ws_msg, ws_closed, NULL};
    websock_opts o = {.max_message = 4096, .subprotocols = "chat"};
    websock_accept_opts(req, &cbs, &o, NULL);
}

static void make_root(void)
{
    char p[128];
    snprintf(root, sizeof root, "/tmp/cyrange-fuzz-http-XXXXXX");
    if (!mkdtemp(root))
        abort();
    snprintf(p, sizeof p, "%s/www", root);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/www/sub", root);
    mkdir(p, 0755);
    static const struct { const char *name, *text; } files[] = {
        {"www/index.html", "<h1>ui</h1>"}, {"www/app.js", "x()"},
        {"www/sub/index.html", "sub"}, {"secret.txt", "secret"}, {"a.pcap", "pcap"},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", root, files[i].name);
        FILE *f = fopen(p, "w");
        if (!f)
            abort();
        fputs(files[i].text, f);
        fclose(f);
    }
    snprintf(p, sizeof p, "%s/www/out", root);
    if (symlink("../secret.txt", p) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uv_loop_t loop;
    char err[256], p[128];
    if (!root[0])
        make_root();
    if (uv_loop_init(&loop) != 0)
        abort();
    httpd_opts o = {.max_header_bytes = 2048, .max_body_bytes = 4096};
    httpd *h = httpd_new(&loop, &o, err, sizeof err);
    if (!h)
        abort();
    snprintf(p, sizeof p, "%s/www", root);
    if (httpd_route(h, "GET", "/api/teams/{team}/findings/{id}", h_finding, NULL) < 0 ||
        httpd_route(h, "GET", "/api/teams/me/findings/{id}", h_finding, NULL) < 0 ||
        httpd_route(h, "POST", "/api/teams/{team}/findings", h_post, NULL) < 0 ||
        httpd_route_limit(h, "PUT", "/api/report", h_post, NULL, 256) < 0 ||
        httpd_route(h, "GET", "/later", h_later, &loop) < 0 ||
        httpd_route(h, "GET", "/files/{name}", h_file, NULL) < 0 ||
        httpd_route(h, "GET", "/ws", h_ws, NULL) < 0 || httpd_static(h, "/ui", p) < 0)
        abort();
    if (httpd_conn_feed(h, data, size, sink, NULL) < 0)
        abort();
    /* Deferred answers and the work they unblock run on the loop. */
    for (int i = 0; i < 64 && (pending > 0 || i < 2); i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    json_t *st = httpd_stats_json(h);
    json_decref(st);
    httpd_close(h, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (pending != 0 || uv_loop_close(&loop) != 0)
        abort();
    return 0;
}
