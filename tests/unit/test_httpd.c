/* Unit tests for httpd and websock: a real server on 127.0.0.1 (ephemeral
 * port) on a libuv loop in the main thread, and a client in a second thread
 * speaking raw HTTP and WebSocket frames over plain blocking sockets.
 *
 * cmocka is not thread-safe, so the client thread records its first failed
 * check (file:line: expression) and the main thread fails the test with it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "httpd.h"
#include "websock.h"

#define BIG_SIZE (5 * 1024 * 1024)

typedef struct fix {
    uv_loop_t loop;
    httpd *h;
    uv_async_t done_async;
    uv_timer_t guard;
    pthread_t th;
    void (*client)(struct fix *f);
    int port;
    int client_done;
    int deferred_pending;
    int finished;
    int timed_out;
    char fail[512];
    json_t *stats;
    char tmp[64];
    /* Server-side observations. */
    int ws_closes;
    int ws_close_code;
    int ws_send_failed;
    size_t ws_max_buffered;
    int feed_done;
} fix;

static fix *g_fix; /* handlers reach the fixture through their opaque */

/* ---- client-side checks ---- */

#define CHECK(f, cond)                                                          \
    do {                                                                        \
        if (!(cond) && !(f)->fail[0])                                           \
            snprintf((f)->fail, sizeof (f)->fail, "%s:%d: %s", __FILE__, __LINE__, \
                     #cond);                                                    \
    } while (0)

typedef struct cbuf {
    char *d;
    size_t len, cap;
} cbuf;

typedef struct resp {
    int status;
    char head[8192];
    char *body;
    size_t body_len;
} resp;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int cli_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void cli_send(int fd, const void *d, size_t n)
{
    const char *p = d;
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void cli_sends(int fd, const char *s)
{
    cli_send(fd, s, strlen(s));
}

/* Reads more into b; returns bytes read, 0 on EOF, -1 on error/timeout. */
static ssize_t cbuf_fill(int fd, cbuf *b)
{
    if (b->cap - b->len < 65536) {
        b->cap = b->cap ? b->cap * 2 : 131072;
        b->d = realloc(b->d, b->cap);
    }
    ssize_t n = recv(fd, b->d + b->len, b->cap - b->len - 1, 0);
    if (n > 0)
        b->len += (size_t)n;
    return n;
}

static void cbuf_consume(cbuf *b, size_t n)
{
    memmove(b->d, b->d + n, b->len - n);
    b->len -= n;
}

static const char *find_header(const char *head, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name);
    const char *s = strstr(head, "\r\n");
    while (s && s[2]) {
        s += 2;
        if (strncasecmp(s, name, nl) == 0 && s[nl] == ':') {
            const char *v = s + nl + 1;
            while (*v == ' ')
                v++;
            const char *e = strstr(v, "\r\n");
            size_t l = e ? (size_t)(e - v) : strlen(v);
            if (l >= outlen)
                l = outlen - 1;
            memcpy(out, v, l);
            out[l] = '\0';
            return out;
        }
        s = strstr(s, "\r\n");
    }
    return NULL;
}

/* Reads one response; no_body for HEAD.  Returns 0, or -1 (EOF first). */
static int cli_resp(int fd, cbuf *b, resp *r, int no_body)
{
    char *end;
    free(r->body);
    memset(r, 0, sizeof *r);
    while (!(b->len && (b->d[b->len] = '\0', end = strstr(b->d, "\r\n\r\n"))))
        if (cbuf_fill(fd, b) <= 0)
            return -1;
    size_t hl = (size_t)(end - b->d) + 4;
    size_t cl = hl < sizeof r->head ? hl : sizeof r->head - 1;
    memcpy(r->head, b->d, cl);
    r->head[cl] = '\0';
    r->status = atoi(r->head + 9);
    cbuf_consume(b, hl);
    char v[64];
    size_t blen = 0;
    if (!no_body && r->status != 304 && r->status != 101 && r->status != 100 &&
        find_header(r->head, "Content-Length", v, sizeof v))
        blen = strtoull(v, NULL, 10);
    while (b->len < blen)
        if (cbuf_fill(fd, b) <= 0)
            return -1;
    r->body = malloc(blen + 1);
    memcpy(r->body, b->d, blen);
    r->body[blen] = '\0';
    r->body_len = blen;
    cbuf_consume(b, blen);
    return 0;
}

/* One request on a new connection. */
static int cli_once(int port, const char *req, resp *r)
{
    int fd = cli_connect(port);
    cbuf b = {0};
    if (fd < 0)
        return -1;
    cli_sends(fd, req);
    int ret = cli_resp(fd, &b, r, strncmp(req, "HEAD", 4) == 0);
    close(fd);
    free(b.d);
    return ret;
}

/* 1 when the server closes within ms (EOF or reset). */
static int cli_closed_within(int fd, cbuf *b, int ms)
{
    uint64_t until = now_ms() + (uint64_t)ms;
    while (now_ms() < until) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 50) > 0) {
            ssize_t n = cbuf_fill(fd, b);
            if (n == 0 || (n < 0 && errno != EAGAIN))
                return 1;
        }
    }
    return 0;
}

/* ---- websocket client frames ---- */

static void ws_send(int fd, int op, int fin, int masked, const void *data, size_t len)
{
    unsigned char h[14];
    size_t hl = 2;
    static const unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
    h[0] = (unsigned char)((fin ? 0x80 : 0) | op);
    if (len < 126) {
        h[1] = (unsigned char)len;
    } else if (len < 65536) {
        h[1] = 126;
        h[2] = (unsigned char)(len >> 8);
        h[3] = (unsigned char)len;
        hl = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
        hl = 10;
    }
    if (masked) {
        h[1] |= 0x80;
        memcpy(h + hl, key, 4);
        hl += 4;
    }
    unsigned char *buf = malloc(hl + len);
    memcpy(buf, h, hl);
    for (size_t i = 0; i < len; i++)
        buf[hl + i] = ((const unsigned char *)data)[i] ^ (masked ? key[i & 3] : 0);
    cli_send(fd, buf, hl + len);
    free(buf);
}

/* Reads one server frame; returns the opcode or -1.  Server frames must be
 * unmasked and final here. */
static int ws_read(int fd, cbuf *b, char **data, size_t *len)
{
    while (b->len < 2)
        if (cbuf_fill(fd, b) <= 0)
            return -1;
    unsigned char *h = (unsigned char *)b->d;
    if (h[1] & 0x80)
        return -2; /* server frames are never masked */
    size_t l = h[1] & 0x7f, hl = 2;
    if (l == 126)
        hl = 4;
    else if (l == 127)
        hl = 10;
    while (b->len < hl)
        if (cbuf_fill(fd, b) <= 0)
            return -1;
    h = (unsigned char *)b->d;
    if (l == 126)
        l = (size_t)h[2] << 8 | h[3];
    else if (l == 127) {
        l = 0;
        for (int i = 0; i < 8; i++)
            l = l << 8 | h[2 + i];
    }
    while (b->len < hl + l)
        if (cbuf_fill(fd, b) <= 0)
            return -1;
    h = (unsigned char *)b->d;
    int op = h[0] & 0x0f;
    *data = malloc(l + 1);
    memcpy(*data, b->d + hl, l);
    (*data)[l] = '\0';
    *len = l;
    cbuf_consume(b, hl + l);
    return op;
}

static int ws_connect(fix *f, const char *path, cbuf *b, resp *r)
{
    int fd = cli_connect(f->port);
    char req[512];
    snprintf(req, sizeof req,
             "GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
             path);
    cli_sends(fd, req);
    CHECK(f, cli_resp(fd, b, r, 0) == 0);
    CHECK(f, r->status == 101);
    return fd;
}

/* Expects a close frame with `code`, then the server closing TCP. */
static void ws_expect_close(fix *f, int fd, cbuf *b, int code)
{
    char *d = NULL;
    size_t l = 0;
    int op = ws_read(fd, b, &d, &l);
    CHECK(f, op == 8);
    CHECK(f, l >= 2);
    if (op == 8 && l >= 2)
        CHECK(f, ((unsigned char)d[0] << 8 | (unsigned char)d[1]) == code);
    free(d);
    CHECK(f, cli_closed_within(fd, b, 3000));
}

/* ---- server side ---- */

static void finish_if_done(fix *f)
{
    if (f->finished || !f->client_done || f->deferred_pending > 0)
        return;
    f->finished = 1;
    f->stats = httpd_stats_json(f->h);
    httpd_close(f->h, NULL, NULL);
    uv_close((uv_handle_t *)&f->done_async, NULL);
    uv_close((uv_handle_t *)&f->guard, NULL);
}

static void on_client_done(uv_async_t *a)
{
    fix *f = a->data;
    f->client_done = 1;
    finish_if_done(f);
}

static void on_guard(uv_timer_t *t)
{
    fix *f = t->data;
    f->timed_out = 1;
    f->client_done = 1;
    f->deferred_pending = 0;
    finish_if_done(f);
}

static void *client_main(void *arg)
{
    fix *f = arg;
    f->client(f);
    uv_async_send(&f->done_async);
    return NULL;
}

static void h_hello(httpd_req *req, void *opaque)
{
    (void)opaque;
    httpd_respond(req, 200, "text/plain", "hello", 5);
}

static void h_finding(httpd_req *req, void *opaque)
{
    (void)opaque;
    const char *q = httpd_query(req, "x");
    json_t *j = json_pack("{s:s,s:s,s:s*}", "team", httpd_param(req, "team"), "id",
                          httpd_param(req, "id"), "q", q);
    httpd_respond_json(req, 200, j);
    json_decref(j);
}

static void h_me(httpd_req *req, void *opaque)
{
    (void)opaque;
    json_t *j = json_pack("{s:b,s:s}", "me", 1, "id", httpd_param(req, "id"));
    httpd_respond_json(req, 200, j);
    json_decref(j);
}

static void h_headers(httpd_req *req, void *opaque)
{
    (void)opaque;
    const char *v = httpd_header(req, "x-test");
    char body[256];
    snprintf(body, sizeof body, "%s|%s", v ? v : "(none)", httpd_remote(req));
    httpd_add_header(req, "Set-Cookie", "sid=abc; HttpOnly");
    CHECK(g_fix, httpd_add_header(req, "Bad", "a\r\nInjected: 1") == -1);
    httpd_respond(req, 200, "text/plain", body, strlen(body));
}

static void h_echo(httpd_req *req, void *opaque)
{
    (void)opaque;
    json_t *j = httpd_body_json(req, NULL);
    if (!j)
        return;
    httpd_respond_json(req, 200, j);
    json_decref(j);
}

static void h_len(httpd_req *req, void *opaque)
{
    (void)opaque;
    size_t len = 0;
    httpd_body(req, &len);
    char b[32];
    snprintf(b, sizeof b, "%zu", len);
    httpd_respond(req, 200, "text/plain", b, strlen(b));
}

typedef struct later {
    uv_timer_t t;
    httpd_req *req;
    fix *f;
} later;

static void later_closed(uv_handle_t *h)
{
    free(h->data);
}

static void later_fire(uv_timer_t *t)
{
    later *l = t->data;
    httpd_respond(l->req, 200, "text/plain", "slow", 4);
    l->f->deferred_pending--;
    uv_close((uv_handle_t *)&l->t, later_closed);
    finish_if_done(l->f);
}

static void h_slow(httpd_req *req, void *opaque)
{
    fix *f = g_fix;
    later *l = calloc(1, sizeof *l);
    l->req = req;
    l->f = f;
    uv_timer_init(&f->loop, &l->t);
    l->t.data = l;
    f->deferred_pending++;
    uv_timer_start(&l->t, later_fire, (uint64_t)(uintptr_t)opaque, 0);
}

static void h_download(httpd_req *req, void *opaque)
{
    fix *f = opaque;
    char p[128];
    snprintf(p, sizeof p, "%s/root/big.bin", f->tmp);
    httpd_respond_file(req, p, NULL, "cap team1.pcap");
}

static void ws_msg(websock *ws, int is_text, const char *data, size_t len, void *opaque)
{
    fix *f = opaque;
    if (is_text && len == 5 && memcmp(data, "flood", 5) == 0) {
        /* Never read by the client: the queue must hit its limit. */
        static char chunk[256 * 1024];
        for (int i = 0; i < 400; i++) {
            if (websock_buffered(ws) > f->ws_max_buffered)
                f->ws_max_buffered = websock_buffered(ws);
            if (websock_send_binary(ws, chunk, sizeof chunk) < 0) {
                f->ws_send_failed = 1;
                return;
            }
        }
        return;
    }
    if (is_text && len == 3 && memcmp(data, "bye", 3) == 0) {
        websock_close(ws, 1000, "server says bye");
        return;
    }
    if (is_text)
        websock_send_text(ws, data, len);
    else
        websock_send_binary(ws, data, len);
}

static void ws_closed(websock *ws, int code, void *opaque)
{
    fix *f = opaque;
    f->ws_closes++;
    f->ws_close_code = code;
    CHECK(f, websock_send_text(ws, "x", 1) == -1);
}

static void h_ws(httpd_req *req, void *opaque)
{
    fix *f = opaque;
    websock_cbs cbs = {ws_msg, ws_closed, NULL};
    websock_opts o = {.max_message = 1024, .ping_interval_ms = 150,
                      .max_buffered = 1024 * 1024, .subprotocols = "chat, cyrange"};
    websock_accept_opts(req, &cbs, &o, f);
}

static void fix_setup(fix *f, const httpd_opts *o)
{
    char err[256] = "";
    memset(f, 0, sizeof *f);
    g_fix = f;
    assert_int_equal(uv_loop_init(&f->loop), 0);
    httpd_opts d = {0};
    f->h = httpd_new(&f->loop, o ? o : &d, err, sizeof err);
    if (!f->h)
        fail_msg("httpd_new: %s", err);
    f->port = httpd_port(f->h);
    assert_true(f->port > 0);
    httpd *h = f->h;
    assert_int_equal(httpd_route(h, "GET", "/hello", h_hello, f), 0);
    assert_int_equal(httpd_route(h, "GET", "/api/teams/{team}/findings/{id}", h_finding, f), 0);
    assert_int_equal(httpd_route(h, "GET", "/api/teams/me/findings/{id}", h_me, f), 0);
    assert_int_equal(httpd_route(h, "GET", "/headers", h_headers, f), 0);
    assert_int_equal(httpd_route(h, "POST", "/api/echo", h_echo, f), 0);
    assert_int_equal(httpd_route_limit(h, "POST", "/big", h_len, f, 8192), 0);
    assert_int_equal(httpd_route(h, "GET", "/slow", h_slow, (void *)(uintptr_t)50), 0);
    assert_int_equal(httpd_route(h, "GET", "/slow300", h_slow, (void *)(uintptr_t)300), 0);
    assert_int_equal(httpd_route(h, "GET", "/download", h_download, f), 0);
    assert_int_equal(httpd_route(h, "GET", "/ws", h_ws, f), 0);
    assert_int_equal(httpd_route(h, "GET", "/bad/{x", h_hello, f), -1);
    assert_int_equal(httpd_route(h, "GET", "nope", h_hello, f), -1);
    uv_async_init(&f->loop, &f->done_async, on_client_done);
    f->done_async.data = f;
    uv_timer_init(&f->loop, &f->guard);
    f->guard.data = f;
}

static void write_file(const char *path, const void *d, size_t n)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(d, 1, n, fp), n);
    fclose(fp);
}

static void make_tree(fix *f)
{
    char p[256];
    snprintf(f->tmp, sizeof f->tmp, "/tmp/cyrange-httpd-XXXXXX");
    assert_non_null(mkdtemp(f->tmp));
    snprintf(p, sizeof p, "%s/root", f->tmp);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/root/sub", f->tmp);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/root/index.html", f->tmp);
    write_file(p, "<h1>cyrange</h1>\n", 17);
    snprintf(p, sizeof p, "%s/root/app.js", f->tmp);
    write_file(p, "console.log(1);\n", 16);
    snprintf(p, sizeof p, "%s/root/sub/index.html", f->tmp);
    write_file(p, "sub\n", 4);
    snprintf(p, sizeof p, "%s/secret.txt", f->tmp);
    write_file(p, "secret\n", 7);
    snprintf(p, sizeof p, "%s/root/link", f->tmp);
    assert_int_equal(symlink("../secret.txt", p), 0);
    snprintf(p, sizeof p, "%s/root/dirlink", f->tmp);
    assert_int_equal(symlink("..", p), 0);
    unsigned char *big = malloc(BIG_SIZE);
    for (size_t i = 0; i < BIG_SIZE; i++)
        big[i] = (unsigned char)(i * 31 + (i >> 12));
    snprintf(p, sizeof p, "%s/root/big.bin", f->tmp);
    write_file(p, big, BIG_SIZE);
    free(big);
    snprintf(p, sizeof p, "%s/root", f->tmp);
    assert_int_equal(httpd_static(f->h, "/ui", p), 0);
}

static void rm_tree(fix *f)
{
    if (!f->tmp[0])
        return;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->tmp);
    assert_int_equal(system(cmd), 0);
}

static void fix_run(fix *f, void (*client)(fix *f))
{
    f->client = client;
    uv_timer_start(&f->guard, on_guard, 20000, 0);
    assert_int_equal(pthread_create(&f->th, NULL, client_main, f), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    pthread_join(f->th, NULL);
    /* Late callbacks (closes) run now. */
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    rm_tree(f);
    if (f->timed_out)
        fail_msg("the test did not finish within 20 s");
    if (f->fail[0]) {
        json_decref(f->stats);
        fail_msg("%s", f->fail);
    }
}

static json_int_t stat_of(const fix *f, const char *group, const char *name)
{
    json_t *g = group ? json_object_get(f->stats, group) : f->stats;
    return json_integer_value(json_object_get(g, name));
}

/* ---- tests ---- */

static void c_routing(fix *f)
{
    resp r = {0};
    char v[128];
    CHECK(f, cli_once(f->port, "GET /api/teams/blue/findings/42?x=a%20b+c&y=1 HTTP/1.1\r\nHost: x\r\n\r\n", &r) == 0);
    CHECK(f, r.status == 200);
    CHECK(f, strcmp(r.body, "{\"team\":\"blue\",\"id\":\"42\",\"q\":\"a b c\"}") == 0);
    CHECK(f, find_header(r.head, "Content-Type", v, sizeof v) && strcmp(v, "application/json") == 0);
    CHECK(f, cli_once(f->port, "GET /api/teams/me/findings/7 HTTP/1.1\r\n\r\n", &r) == 0);
    CHECK(f, strcmp(r.body, "{\"me\":true,\"id\":\"7\"}") == 0);
    /* Percent-decoded, with empty and "." segments normalised away. */
    CHECK(f, cli_once(f->port, "GET //api/./teams/bl%75e/findings/1/ HTTP/1.1\r\n\r\n", &r) == 0);
    CHECK(f, strcmp(r.body, "{\"team\":\"blue\",\"id\":\"1\"}") == 0);
    CHECK(f, cli_once(f->port, "HEAD /hello HTTP/1.1\r\n\r\n", &r) == 0);
    CHECK(f, r.status == 200 && r.body_len == 0);
    CHECK(f, find_header(r.head, "Content-Length", v, sizeof v) && strcmp(v, "5") == 0);
    CHECK(f, cli_once(f->port, "GET /headers HTTP/1.1\r\nx-TEST: v1  \r\n\r\n", &r) == 0);
    CHECK(f, strncmp(r.body, "v1|127.0.0.1:", 13) == 0);
    CHECK(f, find_header(r.head, "set-cookie", v, sizeof v) && strcmp(v, "sid=abc; HttpOnly") == 0);
    CHECK(f, !find_header(r.head, "Injected", v, sizeof v));
    free(r.body);
}

static void test_routing(void **state)
{
    (void)state;
    fix f;
    fix_setup(&f, NULL);
    fix_run(&f, c_routing);
    json_decref(f.stats);
}

static void c_errors(fix *f)
{
    resp r = {0};
    cbuf b = {0};
    char v[128];
    int fd = cli_connect(f->port);
    cli_sends(fd, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(f, cli_resp(fd, &b, &r, 0) == 0);
    CHECK(f, r.status == 404);
    CHECK(f, strcmp(r.body, "{\"error\":{\"status\":404,\"code\":\"not_found\","
                            "\"message\":\"no route for GET /nope\"}}") == 0);
    /* The connection survives the 404. */
    cli_sends(fd, "POST /hello HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi");
    CHECK(f, cli_resp(fd, &b, &r, 0) == 0);
    CHECK(f, r.status == 405);
    CHECK(f, find_header(r.head, "Allow", v, sizeof v) && strcmp(v, "GET, HEAD") == 0);
    CHECK(f, strstr(r.body, "\"code\":\"method_not_allowed\"") != NULL);
    cli_sends(fd, "DELETE /api/teams/a/findings/1 HTTP/1.1\r\n\r\n");
    CHECK(f, cli_resp(fd, &b, &r, 0) == 0);
    CHECK(f, r.status == 405);
    cli_sends(fd, "GET /a/%zz HTTP/1.1\r\n\r\n");
    CHECK(f, cli_resp(fd, &b, &r, 0) == 0);
    CHECK(f, r.status == 400 && strstr(r.body, "bad_path"));
    cli_sends(fd, "GET /a/%00b HTTP/1.1\r\n\r\n");
    CHECK(f, cli_resp(fd, &b, &r, 0) == 0);
    CHECK(f, r.status == 400);
    cli_sends(fd, "GET /hello HTTP/1.1\r\n\r\n");
    CHECK(f, cli_resp(fd, &b, &r, 0) == 0);
    CHECK(f, r.status == 200);
    close(fd);
    /* A request the parser refuses: 400 JSON, then the server closes. */
    fd = cli_connect(f->port);
    b.len = 0;
    cli_sends(fd, "GARBAGE\r\n\r\n");
    CHECK(f, cli_resp(fd, &b, &r, 0) == 0);
    CHECK(f, r.status == 400);
    CHECK(f, strstr(r.body, "{\"error\":{\"status\":400,\"code\":\"bad_request\"") == r.body);
    CHECK(f, find_header(r.head, "Connection", v, sizeof v) && strcmp(v, "close") == 0);
    CHECK(f, cli_closed_within(fd, &b, 3000));
    close(fd);
    fd = cli_connect(f->port);
    b.len = 0;
    cli_sends(fd, "POST /api/echo HTTP/1.1\r\nContent-Length: 1x\r\n\r\n");
    CHECK(f, cli_resp(fd, &b, &r, 0) == 0);
    CHECK(f, r.status == 400);
    CHECK(f, cli_closed_within(fd, &b, 3000));
    close(fd);
    free(r.body);
    free(b.d);
}

static void test_errors(void **state)
{
    (void)state;
    fix f;
    fix_setup(&f, NULL);
    fix_run(&f, c_errors);
    assert_int_equal(stat_of(&f, "errors", "not_found"), 1);
    assert_int_equal(stat_of(&f, "errors", "method_not_allowed"), 2);
    assert_int_equal(stat_of(&f, "errors", "bad_request"), 4);
    assert_int_equal(stat_of(&f, "responses", "2xx"), 1);
    json_decref(f.stats);
}

static void c_keepalive(fix *f)
{
    resp r = {0};
    cbuf b = {0};
    char v[64];
    int fd = cli_connect(f->port);
    for (int i = 0; i < 3; i++) {
        cli_sends(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
        CHECK(f, cli_resp(fd, &b, &r, 0) == 0);
        CHECK(f, r.status == 200 && strcmp(r.body, "hello") == 0);
        CHECK(f, !find_header(r.head, "Connection", v, sizeof v));
    }
    cli_sends(fd, "GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n");
    CHECK(f, cli_resp(fd, &b, &r, 0) == 0);
    CHECK(f, find_header(r.head, "Connection", v, sizeof v) && strcmp(v, "close") == 0);
    CHECK(f, cli_closed_within(fd, &b, 3000));
    close(fd);
    /* HTTP/1.0 closes unless asked to keep alive. */
    fd = cli_connect(f->port);
    b.len = 0;
    cli_sends(fd, "GET /hello HTTP/1.0\r\n\r\n");
    CHECK(f, cli_resp(fd, &b, &r, 0) == 0);
    CHECK(f, r.status == 200);
    CHECK(f, cli_closed_within(fd, &b, 3000));
    close(fd);
    fd = cli_connect(f->port);
    b.len = 0;
    cli_sends(fd, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    CHECK(f, cli_resp(fd, &b, &r, 0) == 0);
    CHECK(f, find_header(r.head, "Connection", v, sizeof v) && strcasecmp(v, "keep-alive") == 0);
    cli_sends(fd, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    CHECK(f, cli_resp(fd, &b, &r, 0) == 0);
    CHECK(f, r.status == 200);
    close(fd);
    free(r.body);
    free(b.d);
}

static void test_keepalive(void **state)
{
    (void)state;
    fix f;
    fix_setup(&f, NULL);
    fix_run(&f, c_keepalive);
    assert_int_equal(stat_of(&f, "connections", "total"), 3);
    assert_int_equal(stat_of(&f, NULL, "requests"), 7);
    json_decref(f.stats);
}

static void c_pipelined(fix *f)
{
    resp r = {0};
    cbuf b = {0};
    int fd = cli_connect(f->port);
    uint64_t t0 = now_ms();
    /* The slow one first: the others must wait for it, in order. */
    cli_sends(fd, "GET /slow HTTP/1.1\r\n\r\nGET /hello HTTP/1.1\r\n\r\n"
                  "POST /api/echo HTTP/1.1\r\nContent-Length: 7\r\n\r\n[1,2,3]"
                  "GET /api/teams/t/findings/9 HTTP/1.1\r\n\r\n");
    CHECK(f, cli_resp(fd, &b, &r, 0) == 0);
    CHECK(f, r.status == 200 && strcmp(r.body, "slow") == 0);
    CHECK(f, now_ms() - t0 >= 45);
    CHECK(f, cli_resp(fd, &b, &r, 0) == 0);
    CHECK(f, strcmp(r.body, "hello") == 0);
    CHECK(f, cli_resp(fd, &b, &r, 0) == 0);
    CHECK(f, strcmp(r.body, "[1,2,3]") == 0);
    CHECK(f, cli_resp(fd, &b, &r, 0) == 0);
    CHECK(f, strcmp(r.body, "{\"team\":\"t\",\"id\":\"9\"}") == 0);
    /* Deferred answer alone. */
    t0 = now_ms();
    cli_sends(fd, "GET /slow HTTP/1.1\r\n\r\n");
    CHECK(f, cli_resp(fd, &b, &r, 0) == 0);
    CHECK(f, strcmp(r.body, "slow") == 0 && now_ms() - t0 >= 45);
    close(fd);
    free(r.body);
    free(b.d);
}

static void test_pipelined_and_deferred(void **state)
{
    (void)state;
    fix f;
    fix_setup(&f, NULL);
    fix_run(&f, c_pipelined);
    json_decref(f.stats);
}

static void c_client_gone(fix *f)
{
    resp r = {0};
    /* Reset before the answer. */
    int fd = cli_connect(f->port);
    cli_sends(fd, "GET /slow300 HTTP/1.1\r\n\r\n");
    usleep(50 * 1000);
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
    /* Plain close (FIN) before the answer. */
    fd = cli_connect(f->port);
    cli_sends(fd, "GET /slow300 HTTP/1.1\r\n\r\nGET /hello HTTP/1.1\r\n\r\n");
    usleep(50 * 1000);
    close(fd);
    /* The server is still fine. */
    CHECK(f, cli_once(f->port, "GET /hello HTTP/1.1\r\n\r\n", &r) == 0);
    CHECK(f, r.status == 200);
    free(r.body);
}

static void test_client_gone(void **state)
{
    (void)state;
    fix f;
    fix_setup(&f, NULL);
    fix_run(&f, c_client_gone);
    /* The reset connection orphaned its request; the answer was dropped. */
    assert_true(stat_of(&f, "errors", "client_gone") >= 1);
    assert_true(stat_of(&f, NULL, "requests") >= 3);
    json_decref(f.stats);
}

static void c_limits(fix *f)
{
    resp r = {0};
    cbuf b = {0};
    char big[6000];
    memset(big, 'a', sizeof big);
    int fd = cli_connect(f->port);
    char req[256];
    snprintf(req, sizeof req, "POST /api/echo HTTP/1.1\r\nContent-Length: 2000\r\n\r\n");
    cli_sends(fd, req);
    CHECK(f, cli_resp(fd, &b, &r, 0) == 0);
    CHECK(f, r.status == 413);
    CHECK(f, strstr(r.body, "\"code\":\"body_too_large\""));
    CHECK(f, cli_closed_within(fd, &b, 3000));
    close(fd);
    /* Chunked: the limit is found while reading. */
    fd = cli_connect(f->port);
    b.len = 0;
    cli_sends(fd, "POST /api/echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 3; i++) {
        cli_sends(fd, "200\r\n");
        cli_send(fd, big, 0x200);
        cli_sends(fd, "\r\n");
    }
    CHECK(f, cli_resp(fd, &b, &r, 0) == 0);
    CHECK(f, r.status == 413);
    close(fd);
    /* A route with its own, larger limit. */
    fd = cli_connect(f->port);
    b.len = 0;
    cli_sends(fd, "POST /big HTTP/1.1\r\nContent-Length: 5000\r\n\r\n");
    cli_send(fd, big, 5000);
    CHECK(f, cli_resp(fd, &b, &r, 0) == 0);
    CHECK(f, r.status == 200 && strcmp(r.body, "5000") == 0);
    /* Expect: 100-continue gets its interim answer. */
    cli_sends(fd, "POST /big HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
    CHECK(f, cli_resp(fd, &b, &r, 0) == 0);
    CHECK(f, r.status == 100);
    cli_sends(fd, "abc");
    CHECK(f, cli_resp(fd, &b, &r, 0) == 0);
    CHECK(f, r.status == 200 && strcmp(r.body, "3") == 0);
    close(fd);
    /* Headers too large. */
    fd = cli_connect(f->port);
    b.len = 0;
    cli_sends(fd, "GET /hello HTTP/1.1\r\nX-Big: ");
    cli_send(fd, big, 2000);
    cli_sends(fd, "\r\n\r\n");
    CHECK(f, cli_resp(fd, &b, &r, 0) == 0);
    CHECK(f, r.status == 431);
    CHECK(f, strstr(r.body, "\"code\":\"headers_too_large\""));
    CHECK(f, cli_closed_within(fd, &b, 3000));
    close(fd);
    /* Too many small headers. */
    fd = cli_connect(f->port);
    b.len = 0;
    cli_sends(fd, "GET /hello HTTP/1.1\r\n");
    for (int i = 0; i < 120; i++)
        cli_sends(fd, "A: b\r\n");
    cli_sends(fd, "\r\n");
    CHECK(f, cli_resp(fd, &b, &r, 0) == 0);
    CHECK(f, r.status == 431);
    close(fd);
    free(r.body);
    free(b.d);
}

static void test_limits(void **state)
{
    (void)state;
    fix f;
    httpd_opts o = {.max_body_bytes = 1024, .max_header_bytes = 1024};
    fix_setup(&f, &o);
    fix_run(&f, c_limits);
    assert_int_equal(stat_of(&f, "errors", "body_too_large"), 2);
    assert_int_equal(stat_of(&f, "errors", "headers_too_large"), 2);
    json_decref(f.stats);
}

static void c_timeouts(fix *f)
{
    resp r = {0};
    cbuf b = {0};
    /* Idle keep-alive connection. */
    int fd = cli_connect(f->port);
    cli_sends(fd, "GET /hello HTTP/1.1\r\n\r\n");
    CHECK(f, cli_resp(fd, &b, &r, 0) == 0);
    uint64_t t0 = now_ms();
    CHECK(f, cli_closed_within(fd, &b, 3000));
    uint64_t dt = now_ms() - t0;
    CHECK(f, dt >= 150 && dt < 2000);
    close(fd);
    /* Never says anything. */
    fd = cli_connect(f->port);
    b.len = 0;
    CHECK(f, cli_closed_within(fd, &b, 3000));
    close(fd);
    /* Slow headers: 408. */
    fd = cli_connect(f->port);
    b.len = 0;
    t0 = now_ms();
    cli_sends(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n");
    usleep(100 * 1000);
    cli_sends(fd, "X-A: 1\r\n");
    CHECK(f, cli_resp(fd, &b, &r, 0) == 0);
    CHECK(f, r.status == 408);
    CHECK(f, strstr(r.body, "\"code\":\"request_timeout\""));
    dt = now_ms() - t0;
    CHECK(f, dt >= 350 && dt < 2000);
    close(fd);
    free(r.body);
    free(b.d);
}

static void test_timeouts(void **state)
{
    (void)state;
    fix f;
    httpd_opts o = {.idle_timeout_ms = 200, .request_timeout_ms = 400};
    fix_setup(&f, &o);
    fix_run(&f, c_timeouts);
    assert_int_equal(stat_of(&f, "errors", "request_timeout"), 1);
    assert_int_equal(stat_of(&f, "errors", "idle_closed"), 2);
    json_decref(f.stats);
}

static void c_conn_limit(fix *f)
{
    resp r = {0};
    cbuf b1 = {0}, b2 = {0}, b3 = {0};
    int a = cli_connect(f->port), c = cli_connect(f->port);
    cli_sends(a, "GET /hello HTTP/1.1\r\n\r\n");
    CHECK(f, cli_resp(a, &b1, &r, 0) == 0 && r.status == 200);
    cli_sends(c, "GET /hello HTTP/1.1\r\n\r\n");
    CHECK(f, cli_resp(c, &b2, &r, 0) == 0 && r.status == 200);
    int d = cli_connect(f->port);
    CHECK(f, cli_resp(d, &b3, &r, 0) == 0);
    CHECK(f, r.status == 503);
    CHECK(f, strstr(r.body, "\"code\":\"too_many_connections\""));
    CHECK(f, cli_closed_within(d, &b3, 3000));
    close(d);
    close(a);
    usleep(100 * 1000);
    /* A slot is free again. */
    CHECK(f, cli_once(f->port, "GET /hello HTTP/1.1\r\n\r\n", &r) == 0);
    CHECK(f, r.status == 200);
    close(c);
    free(r.body);
    free(b1.d);
    free(b2.d);
    free(b3.d);
}

static void test_conn_limit(void **state)
{
    (void)state;
    fix f;
    httpd_opts o = {.max_connections = 2};
    fix_setup(&f, &o);
    fix_run(&f, c_conn_limit);
    assert_int_equal(stat_of(&f, "connections", "rejected"), 1);
    json_decref(f.stats);
}

static void c_static(fix *f)
{
    resp r = {0};
    cbuf b = {0};
    char v[256], etag[128], lm[128], req[512];
    CHECK(f, cli_once(f->port, "GET /ui/ HTTP/1.1\r\n\r\n", &r) == 0);
    CHECK(f, r.status == 200 && strcmp(r.body, "<h1>cyrange</h1>\n") == 0);
    CHECK(f, find_header(r.head, "Content-Type", v, sizeof v) &&
                 strcmp(v, "text/html; charset=utf-8") == 0);
    CHECK(f, cli_once(f->port, "GET /ui HTTP/1.1\r\n\r\n", &r) == 0);
    CHECK(f, r.status == 301 && find_header(r.head, "Location", v, sizeof v) &&
                 strcmp(v, "/ui/") == 0);
    CHECK(f, cli_once(f->port, "GET /ui/sub/ HTTP/1.1\r\n\r\n", &r) == 0);
    CHECK(f, r.status == 200 && strcmp(r.body, "sub\n") == 0);
    CHECK(f, cli_once(f->port, "GET /ui/app.js HTTP/1.1\r\n\r\n", &r) == 0);
    CHECK(f, r.status == 200 && strcmp(r.body, "console.log(1);\n") == 0);
    CHECK(f, find_header(r.head, "Content-Type", v, sizeof v) &&
                 strcmp(v, "text/javascript; charset=utf-8") == 0);
    CHECK(f, find_header(r.head, "ETag", etag, sizeof etag));
    CHECK(f, find_header(r.head, "Last-Modified", lm, sizeof lm));
    snprintf(req, sizeof req, "GET /ui/app.js HTTP/1.1\r\nIf-None-Match: %s\r\n\r\n", etag);
    CHECK(f, cli_once(f->port, req, &r) == 0);
    CHECK(f, r.status == 304 && r.body_len == 0);
    snprintf(req, sizeof req, "GET /ui/app.js HTTP/1.1\r\nIf-Modified-Since: %s\r\n\r\n", lm);
    CHECK(f, cli_once(f->port, req, &r) == 0);
    CHECK(f, r.status == 304);
    CHECK(f, cli_once(f->port, "GET /ui/app.js HTTP/1.1\r\nIf-None-Match: \"other\"\r\n\r\n", &r) == 0);
    CHECK(f, r.status == 200);
    CHECK(f, cli_once(f->port, "GET /ui/app.js HTTP/1.1\r\n"
                               "If-Modified-Since: Mon, 01 Jan 2001 00:00:00 GMT\r\n\r\n", &r) == 0);
    CHECK(f, r.status == 200);
    /* Ways out of the directory. */
    static const char *const bad[] = {
        "/ui/../secret.txt", "/ui/%2e%2e/secret.txt", "/ui/sub/%2E%2E/%2e%2e/secret.txt",
        "/ui/..%2fsecret.txt", "/ui/sub/..%5c..%5csecret.txt", "/ui/link", "/ui/dirlink/secret.txt",
        "/ui/%2e%2e%2f%2e%2e%2fetc/passwd", "/../../etc/passwd",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(req, sizeof req, "GET %s HTTP/1.1\r\n\r\n", bad[i]);
        CHECK(f, cli_once(f->port, req, &r) == 0);
        CHECK(f, r.status == 403 || r.status == 404);
        CHECK(f, strncmp(r.body, "{\"error\":", 9) == 0);
        if (r.status != 403 && r.status != 404 && !f->fail[0])
            snprintf(f->fail, sizeof f->fail, "%s answered %d", bad[i], r.status);
    }
    CHECK(f, cli_once(f->port, "GET /ui/missing.css HTTP/1.1\r\n\r\n", &r) == 0);
    CHECK(f, r.status == 404 && strstr(r.body, "\"code\":\"not_found\""));
    CHECK(f, cli_once(f->port, "PUT /ui/app.js HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &r) == 0);
    CHECK(f, r.status == 405);
    /* 5 MB streamed, on a keep-alive connection, then a HEAD. */
    int fd = cli_connect(f->port);
    cli_sends(fd, "GET /ui/big.bin HTTP/1.1\r\n\r\nHEAD /ui/big.bin HTTP/1.1\r\n\r\n");
    CHECK(f, cli_resp(fd, &b, &r, 0) == 0);
    CHECK(f, r.status == 200 && r.body_len == BIG_SIZE);
    int same = r.body_len == BIG_SIZE;
    for (size_t i = 0; same && i < BIG_SIZE; i++)
        same = (unsigned char)r.body[i] == (unsigned char)(i * 31 + (i >> 12));
    CHECK(f, same);
    CHECK(f, cli_resp(fd, &b, &r, 1) == 0);
    CHECK(f, r.status == 200 && find_header(r.head, "Content-Length", v, sizeof v) &&
                 strcmp(v, "5242880") == 0);
    close(fd);
    /* A handler sends a file under a name. */
    CHECK(f, cli_once(f->port, "GET /download HTTP/1.1\r\n\r\n", &r) == 0);
    CHECK(f, r.status == 200 && r.body_len == BIG_SIZE);
    CHECK(f, find_header(r.head, "Content-Disposition", v, sizeof v) &&
                 strcmp(v, "attachment; filename=\"cap_team1.pcap\"") == 0);
    CHECK(f, find_header(r.head, "Content-Type", v, sizeof v) &&
                 strcmp(v, "application/vnd.tcpdump.pcap") == 0);
    free(r.body);
    free(b.d);
}

static void test_static(void **state)
{
    (void)state;
    fix f;
    fix_setup(&f, NULL);
    make_tree(&f);
    fix_run(&f, c_static);
    json_decref(f.stats);
}

static void c_json(fix *f)
{
    resp r = {0};
    CHECK(f, cli_once(f->port, "POST /api/echo HTTP/1.1\r\nContent-Length: 10\r\n\r\n{\"a\": 1,}\n", &r) == 0);
    CHECK(f, r.status == 400);
    json_error_t e;
    json_t *j = json_loads(r.body, 0, &e);
    const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    CHECK(f, strcmp(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                    "bad_json") == 0);
    CHECK(f, msg && strncmp(msg, "body:1:9: ", 10) == 0);
    json_decref(j);
    CHECK(f, cli_once(f->port, "POST /api/echo HTTP/1.1\r\nContent-Length: 13\r\n\r\n{\n  \"a\": tru}", &r) == 0);
    CHECK(f, r.status == 400 && strstr(r.body, "body:2:"));
    CHECK(f, cli_once(f->port, "POST /api/echo HTTP/1.1\r\nContent-Length: 14\r\n\r\n{\"a\":[1,\"\xc3\xa9\"]}", &r) == 0);
    CHECK(f, r.status == 200 && strcmp(r.body, "{\"a\":[1,\"\xc3\xa9\"]}") == 0);
    CHECK(f, cli_once(f->port, "POST /api/echo HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &r) == 0);
    CHECK(f, r.status == 400 && strstr(r.body, "bad_json"));
    free(r.body);
}

static void test_json_body(void **state)
{
    (void)state;
    fix f;
    fix_setup(&f, NULL);
    fix_run(&f, c_json);
    json_decref(f.stats);
}

static void c_ws(fix *f)
{
    resp r = {0};
    cbuf b = {0};
    char v[128], *d = NULL;
    size_t l = 0;
    /* RFC 6455's sample key. */
    int fd = cli_connect(f->port);
    cli_sends(fd, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                  "Sec-WebSocket-Protocol: foo, cyrange\r\n\r\n");
    CHECK(f, cli_resp(fd, &b, &r, 0) == 0);
    CHECK(f, r.status == 101);
    CHECK(f, find_header(r.head, "Sec-WebSocket-Accept", v, sizeof v) &&
                 strcmp(v, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0);
    CHECK(f, find_header(r.head, "Upgrade", v, sizeof v) && strcasecmp(v, "websocket") == 0);
    CHECK(f, find_header(r.head, "Sec-WebSocket-Protocol", v, sizeof v) && strcmp(v, "cyrange") == 0);
    /* Masked text echo, and binary. */
    ws_send(fd, 1, 1, 1, "hello", 5);
    CHECK(f, ws_read(fd, &b, &d, &l) == 1 && l == 5 && memcmp(d, "hello", 5) == 0);
    free(d);
    ws_send(fd, 2, 1, 1, "\x00\x01\xff", 3);
    CHECK(f, ws_read(fd, &b, &d, &l) == 2 && l == 3 && memcmp(d, "\x00\x01\xff", 3) == 0);
    free(d);
    /* 200 bytes: the 16-bit length form, both ways. */
    char mid[200];
    memset(mid, 'm', sizeof mid);
    ws_send(fd, 1, 1, 1, mid, sizeof mid);
    CHECK(f, ws_read(fd, &b, &d, &l) == 1 && l == sizeof mid && memcmp(d, mid, l) == 0);
    free(d);
    /* Fragmented, with a ping between the fragments. */
    ws_send(fd, 1, 0, 1, "Hel", 3);
    ws_send(fd, 9, 1, 1, "p1", 2);
    ws_send(fd, 0, 0, 1, "l", 1);
    ws_send(fd, 0, 1, 1, "o \xc3\xa9", 4);
    CHECK(f, ws_read(fd, &b, &d, &l) == 10 && l == 2 && memcmp(d, "p1", 2) == 0);
    free(d);
    CHECK(f, ws_read(fd, &b, &d, &l) == 1 && l == 8 && memcmp(d, "Hello \xc3\xa9", 8) == 0);
    free(d);
    /* Idle: the server pings (every 150 ms here); we answer. */
    CHECK(f, ws_read(fd, &b, &d, &l) == 9);
    free(d);
    ws_send(fd, 10, 1, 1, "", 0);
    /* Close handshake started by the client. */
    ws_send(fd, 8, 1, 1, "\x03\xe8" "bye", 5);
    ws_expect_close(f, fd, &b, 1000);
    close(fd);
    /* Handshake failures. */
    CHECK(f, cli_once(f->port, "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", &r) == 0);
    CHECK(f, r.status == 426 && find_header(r.head, "Sec-WebSocket-Version", v, sizeof v));
    CHECK(f, cli_once(f->port, "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                               "Sec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n\r\n", &r) == 0);
    CHECK(f, r.status == 400 && strstr(r.body, "bad_handshake"));
    CHECK(f, cli_once(f->port, "GET /ws HTTP/1.1\r\n\r\n", &r) == 0);
    CHECK(f, r.status == 400);
    free(r.body);
    free(b.d);
}

static void test_websocket(void **state)
{
    (void)state;
    fix f;
    fix_setup(&f, NULL);
    char acc[29];
    websock_accept_key("dGhlIHNhbXBsZSBub25jZQ==", acc);
    assert_string_equal(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    fix_run(&f, c_ws);
    assert_int_equal(f.ws_closes, 1);
    assert_int_equal(f.ws_close_code, 1000);
    assert_int_equal(stat_of(&f, NULL, "upgrades"), 1);
    json_decref(f.stats);
}

static void c_ws_errors(fix *f)
{
    resp r = {0};
    cbuf b = {0};
    char big[2000];
    memset(big, 'x', sizeof big);
    int fd = ws_connect(f, "/ws", &b, &r);
    ws_send(fd, 1, 1, 0, "hello", 5);
    ws_expect_close(f, fd, &b, 1002);
    close(fd);
    b.len = 0;
    fd = ws_connect(f, "/ws", &b, &r);
    ws_send(fd, 2, 1, 1, big, sizeof big);
    ws_expect_close(f, fd, &b, 1009);
    close(fd);
    b.len = 0;
    fd = ws_connect(f, "/ws", &b, &r);
    ws_send(fd, 1, 0, 1, big, 600);
    ws_send(fd, 0, 1, 1, big, 600); /* the whole message is too big */
    ws_expect_close(f, fd, &b, 1009);
    close(fd);
    b.len = 0;
    fd = ws_connect(f, "/ws", &b, &r);
    ws_send(fd, 1, 1, 1, "\xc3\x28", 2);
    ws_expect_close(f, fd, &b, 1007);
    close(fd);
    b.len = 0;
    fd = ws_connect(f, "/ws", &b, &r);
    ws_send(fd, 0, 1, 1, "x", 1); /* continuation of nothing */
    ws_expect_close(f, fd, &b, 1002);
    close(fd);
    b.len = 0;
    fd = ws_connect(f, "/ws", &b, &r);
    ws_send(fd, 9, 0, 1, "x", 1); /* fragmented ping */
    ws_expect_close(f, fd, &b, 1002);
    close(fd);
    b.len = 0;
    /* The server starts the close handshake. */
    fd = ws_connect(f, "/ws", &b, &r);
    ws_send(fd, 1, 1, 1, "bye", 3);
    char *d = NULL;
    size_t l = 0;
    CHECK(f, ws_read(fd, &b, &d, &l) == 8 && l >= 2 && d[0] == 0x03 && (unsigned char)d[1] == 0xe8);
    free(d);
    ws_send(fd, 8, 1, 1, "\x03\xe8", 2);
    CHECK(f, cli_closed_within(fd, &b, 3000));
    close(fd);
    free(r.body);
    free(b.d);
}

static void test_websocket_errors(void **state)
{
    (void)state;
    fix f;
    fix_setup(&f, NULL);
    fix_run(&f, c_ws_errors);
    assert_int_equal(f.ws_closes, 7);
    assert_int_equal(f.ws_close_code, 1000);
    json_decref(f.stats);
}

static void c_ws_flood(fix *f)
{
    resp r = {0};
    cbuf b = {0};
    int fd = ws_connect(f, "/ws", &b, &r);
    ws_send(fd, 1, 1, 1, "flood", 5);
    /* Not reading for a while: the server must drop us instead of
     * queueing without bound; what it did send is then read up to the
     * reset or the end. */
    usleep(500 * 1000);
    CHECK(f, cli_closed_within(fd, &b, 5000));

    close(fd);
    free(r.body);
    free(b.d);
}

static void test_websocket_slow_consumer(void **state)
{
    (void)state;
    fix f;
    fix_setup(&f, NULL);
    fix_run(&f, c_ws_flood);
    assert_int_equal(f.ws_send_failed, 1);
    assert_true(f.ws_max_buffered <= 1024 * 1024);
    assert_int_equal(f.ws_closes, 1);
    assert_int_equal(f.ws_close_code, 1008);
    json_decref(f.stats);
}

typedef struct sinkbuf {
    char d[65536];
    size_t len;
} sinkbuf;

static void sink(const void *data, size_t len, void *opaque)
{
    sinkbuf *s = opaque;
    if (s->len + len < sizeof s->d) {
        memcpy(s->d + s->len, data, len);
        s->len += len;
    }
}

static void test_feed(void **state)
{
    (void)state;
    fix f;
    sinkbuf *s = calloc(1, sizeof *s);
    fix_setup(&f, NULL);
    static const char in[] = "GET /hello HTTP/1.1\r\n\r\n"
                             "POST /api/echo HTTP/1.1\r\nContent-Length: 4\r\n\r\n[{}]"
                             "GET /nope HTTP/1.1\r\n\r\nGET /hel";
    assert_int_equal(httpd_conn_feed(f.h, in, sizeof in - 1, sink, s), 0);
    f.client_done = 1;
    uv_run(&f.loop, UV_RUN_NOWAIT);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    finish_if_done(&f);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f.loop), 0);
    s->d[s->len] = '\0';
    const char *a = strstr(s->d, "\r\n\r\nhello");
    const char *b = strstr(s->d, "\r\n\r\n[{}]");
    const char *c = strstr(s->d, "no route for GET /nope");
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_true(a < b && b < c);
    assert_int_equal(stat_of(&f, NULL, "requests"), 3);
    json_decref(f.stats);
    free(s);
}

static void test_close_with_pending(void **state)
{
    (void)state;
    /* httpd_close while a handler still holds its request: the late answer
     * is discarded safely (valgrind/ASan watch this). */
    fix f;
    fix_setup(&f, NULL);
    static const char in[] = "GET /slow HTTP/1.1\r\n\r\n";
    assert_int_equal(httpd_conn_feed(f.h, in, sizeof in - 1, NULL, NULL), 0);
    assert_int_equal(f.deferred_pending, 1);
    f.stats = httpd_stats_json(f.h);
    httpd_close(f.h, NULL, NULL);
    f.finished = 1;
    uv_close((uv_handle_t *)&f.done_async, NULL);
    uv_close((uv_handle_t *)&f.guard, NULL);
    uv_run(&f.loop, UV_RUN_DEFAULT); /* the deferred answer fires after the close */
    assert_int_equal(f.deferred_pending, 0);
    assert_int_equal(uv_loop_close(&f.loop), 0);
    json_decref(f.stats);
}

static void test_bind_errors(void **state)
{
    (void)state;
    uv_loop_t loop;
    char err[256] = "";
    assert_int_equal(uv_loop_init(&loop), 0);
    httpd *a = httpd_new(&loop, NULL, err, sizeof err);
    assert_non_null(a);
    httpd_opts o = {.port = httpd_port(a)};
    assert_null(httpd_new(&loop, &o, err, sizeof err));
    assert_non_null(strstr(err, "address already in use"));
    httpd_opts bad = {.bind_addr = "not-an-address"};
    assert_null(httpd_new(&loop, &bad, err, sizeof err));
    assert_string_equal(err, "bad bind address 'not-an-address'");
    assert_int_equal(httpd_static(a, "/x", "/nonexistent/dir"), -1);
    assert_int_equal(httpd_static(a, "/x/../y", "/tmp"), -1);
    httpd_close(a, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT); /* also frees the failed second server */
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routing),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_keepalive),
        cmocka_unit_test(test_pipelined_and_deferred),
        cmocka_unit_test(test_client_gone),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_conn_limit),
        cmocka_unit_test(test_static),
        cmocka_unit_test(test_json_body),
        cmocka_unit_test(test_websocket),
        cmocka_unit_test(test_websocket_errors),
        cmocka_unit_test(test_websocket_slow_consumer),
        cmocka_unit_test(test_feed),
        cmocka_unit_test(test_close_with_pending),
        cmocka_unit_test(test_bind_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
