/* httpbench — serves GET /api/scoreboard through httpd for bench/http-bench.sh.
 *
 *   httpbench [--size BYTES] [--port N] [--body-out FILE]
 *
 * The body is a scoreboard as the API would send it (teams with scores,
 * findings and check results), generated once and padded to exactly BYTES
 * (default 4096).  --body-out writes the same bytes to FILE so that nginx
 * can serve them.  Prints "port N" once listening; SIGINT/SIGTERM stop it.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <uv.h>

#include "httpd.h"

static char *body;
static size_t body_len;
static httpd *server;
static uv_signal_t sigint_h, sigterm_h;

static void h_scoreboard(httpd_req *req, void *opaque)
{
    (void)opaque;
    httpd_respond(req, 200, "application/json", body, body_len);
}

static void h_stats(httpd_req *req, void *opaque)
{
    (void)opaque;
    json_t *j = httpd_stats_json(server);
    httpd_respond_json(req, 200, j);
    json_decref(j);
}

/* A scoreboard of as many teams as fit, then a pad member to the byte. */
static char *make_body(size_t size, size_t *len)
{
    json_t *root = json_pack("{s:s,s:s,s:i,s:[]}", "exercise", "bench-targeted-mail",
                             "phase", "running", "elapsed_s", 5423, "teams");
    json_t *teams = json_object_get(root, "teams");
    char *text = NULL;
    for (int t = 1; t < 10000; t++) {
        char name[32];
        snprintf(name, sizeof name, "team-%02d", t);
        json_t *team = json_pack(
            "{s:i,s:s,s:i,s:i,s:{s:i,s:i,s:i},s:[{s:s,s:b},{s:s,s:b},{s:s,s:b}]}",
            "team", t, "name", name, "score", 1000 - 37 * t % 400, "rank", t,
            "findings", "accepted", 7 + t % 5, "rejected", t % 3, "pending", t % 2,
            "checks", "id", "mail-restored", "ok", t % 2, "id", "c2-blocked", "ok", 1,
            "id", "report-filed", "ok", t % 3 == 0);
        json_array_append_new(teams, team);
        char *s = json_dumps(root, JSON_COMPACT);
        if (strlen(s) + 12 > size) {
            free(s);
            json_array_remove(teams, json_array_size(teams) - 1);
            break;
        }
        free(s);
    }
    text = json_dumps(root, JSON_COMPACT);
    size_t n = strlen(text);
    /* Replace the final '}' by ,"pad":"xxx"} up to the exact size. */
    if (n + 10 <= size) {
        size_t pad = size - n - 9;
        char *out = malloc(size + 1);
        memcpy(out, text, n - 1);
        memcpy(out + n - 1, ",\"pad\":\"", 8);
        memset(out + n + 7, 'x', pad);
        memcpy(out + n + 7 + pad, "\"}", 2);
        out[size] = '\0';
        free(text);
        text = out;
        n = size;
    }
    json_decref(root);
    *len = n;
    return text;
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)signum;
    (void)s;
    httpd_close(server, NULL, NULL);
    uv_close((uv_handle_t *)&sigint_h, NULL);
    uv_close((uv_handle_t *)&sigterm_h, NULL);
}

int main(int argc, char **argv)
{
    size_t size = 4096;
    int port = 0;
    const char *out = NULL;
    char err[256];
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--size") == 0 && i + 1 < argc)
            size = strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--body-out") == 0 && i + 1 < argc)
            out = argv[++i];
        else {
            fprintf(stderr, "usage: httpbench [--size BYTES] [--port N] [--body-out FILE]\n");
            return 2;
        }
    }
    if (size < 64 || size > 64 * 1024 * 1024) {
        fprintf(stderr, "httpbench: --size must be 64 B to 64 MiB\n");
        return 2;
    }
    body = make_body(size, &body_len);
    if (out) {
        FILE *f = fopen(out, "wb");
        if (!f || fwrite(body, 1, body_len, f) != body_len || fclose(f) != 0) {
            fprintf(stderr, "httpbench: cannot write %s\n", out);
            return 1;
        }
    }
    uv_loop_t *loop = uv_default_loop();
    httpd_opts o = {.port = port, .max_connections = 4096};
    server = httpd_new(loop, &o, err, sizeof err);
    if (!server) {
        fprintf(stderr, "httpbench: %s\n", err);
        return 1;
    }
    httpd_route(server, "GET", "/api/scoreboard", h_scoreboard, NULL);
    httpd_route(server, "GET", "/stats", h_stats, NULL);
    uv_signal_init(loop, &sigint_h);
    uv_signal_init(loop, &sigterm_h);
    uv_signal_start(&sigint_h, on_signal, SIGINT);
    uv_signal_start(&sigterm_h, on_signal, SIGTERM);
    printf("port %d\nbody %zu\n", httpd_port(server), body_len);
    fflush(stdout);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    free(body);
    return 0;
}
