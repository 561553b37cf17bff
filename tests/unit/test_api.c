/* Unit tests for api: a real httpd on 127.0.0.1 (ephemeral port), a real
 * store in a temporary directory, real auth (minimum KDF), a real plan of
 * scenarios/targeted-mail.json with 2 teams, and an api_ops inside the test
 * that answers from the store and simple in-memory state (no guests).
 *
 * The loop runs in the main thread; the client runs in a second thread and
 * speaks raw HTTP and WebSocket frames over blocking sockets.  cmocka is not
 * thread-safe, so the client records its first failed check (file:line:
 * expression) and the main thread fails the test with it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "apiclient.h"
#include "cli.h"
#include "findings.h"
#include "score.h"

#define PW "password-123"
#define PCAP_DATA "\xd4\xc3\xb2\xa1" "pcapdata-team1"
#define PCAP_LEN (sizeof PCAP_DATA - 1)

static const auth_kdf kdf_min = { crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_MEMLIMIT_MIN };

typedef struct fix {
    uv_loop_t loop;
    httpd *h;
    store *st;
    auth *au;
    api *a;
    scenario *scn;
    plan *pl;
    uv_async_t done_async;
    uv_timer_t guard;
    pthread_t th;
    void (*client)(struct fix *f);
    int port;
    int finished, timed_out;
    char fail[512];
    char tmp[64];
    char path[128];
    int64_t inbox1, inbox2;
    char clock[16];
    char last_cmd[32];
    int store_closed;
    virt_conn *conn;   /* test:///default, for the console test */
    console_hub *hub;
    atomic_int score_calls; /* o_score runs (on the loop thread) */
} fix;

/* ---- client-side checks ---- */

#define CHECK(f, cond)                                                              \
    do {                                                                            \
        if (!(cond) && !(f)->fail[0])                                               \
            snprintf((f)->fail, sizeof(f)->fail, "%s:%d: %s", __FILE__, __LINE__, #cond); \
    } while (0)

#define CHECK_STATUS(f, r, want)                                                    \
    do {                                                                            \
        if ((r)->status != (want) && !(f)->fail[0])                                 \
            snprintf((f)->fail, sizeof(f)->fail, "%s:%d: status %d, wanted %d: %.300s", \
                     __FILE__, __LINE__, (r)->status, (want),                       \
                     (r)->body ? (r)->body : "");                                   \
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
    json_t *j;
} resp;

typedef struct sess {
    char cookie[128];
    char csrf[64];
} sess;

static int cli_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { 0 };
    struct timeval tv = { 5, 0 };
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
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

static ssize_t cbuf_fill(int fd, cbuf *b)
{
    ssize_t n;
    if (b->cap - b->len < 65536) {
        b->cap = b->cap ? b->cap * 2 : 131072;
        b->d = realloc(b->d, b->cap);
    }
    n = recv(fd, b->d + b->len, b->cap - b->len - 1, 0);
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
            const char *v = s + nl + 1, *e;
            size_t l;
            while (*v == ' ')
                v++;
            e = strstr(v, "\r\n");
            l = e ? (size_t)(e - v) : strlen(v);
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

static void resp_clear(resp *r)
{
    free(r->body);
    json_decref(r->j);
    memset(r, 0, sizeof *r);
}

static int cli_resp(int fd, cbuf *b, resp *r)
{
    char *end, v[64];
    size_t hl, cl, blen = 0;
    resp_clear(r);
    while (!(b->len && (b->d[b->len] = '\0', end = strstr(b->d, "\r\n\r\n"))))
        if (cbuf_fill(fd, b) <= 0)
            return -1;
    hl = (size_t)(end - b->d) + 4;
    cl = hl < sizeof r->head ? hl : sizeof r->head - 1;
    memcpy(r->head, b->d, cl);
    r->head[cl] = '\0';
    r->status = atoi(r->head + 9);
    cbuf_consume(b, hl);
    if (r->status != 101 && r->status != 204 && r->status != 304 &&
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
    r->j = json_loadb(r->body, blen, 0, NULL);
    return 0;
}

/* csrf: 1 the session's token, 0 none, -1 a wrong one. */
static void http(fix *f, const sess *s, const char *method, const char *path, const char *body,
                 int csrf, resp *r)
{
    char head[1024];
    int fd = cli_connect(f->port);
    cbuf b = { 0 };
    size_t blen = body ? strlen(body) : 0;
    int n = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n",
                     method, path);
    if (s && s->cookie[0])
        n += snprintf(head + n, sizeof head - (size_t)n, "Cookie: %s\r\n", s->cookie);
    if (s && csrf)
        n += snprintf(head + n, sizeof head - (size_t)n, "X-CSRF-Token: %s\r\n",
                      csrf > 0 ? s->csrf : "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    n += snprintf(head + n, sizeof head - (size_t)n,
                  "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n", blen);
    resp_clear(r);
    if (fd < 0) {
        CHECK(f, fd >= 0);
        return;
    }
    cli_send(fd, head, (size_t)n);
    if (blen)
        cli_send(fd, body, blen);
    if (cli_resp(fd, &b, r) < 0)
        r->status = -1;
    close(fd);
    free(b.d);
}

static int login(fix *f, const char *name, const char *pw, sess *s, resp *r)
{
    char body[256], v[512];
    memset(s, 0, sizeof *s);
    snprintf(body, sizeof body, "{\"name\":\"%s\",\"password\":\"%s\"}", name, pw);
    http(f, NULL, "POST", "/api/login", body, 0, r);
    if (r->status != 200)
        return -1;
    if (find_header(r->head, "Set-Cookie", v, sizeof v)) {
        char *semi = strchr(v, ';');
        if (semi)
            *semi = '\0';
        snprintf(s->cookie, sizeof s->cookie, "%s", v);
    }
    snprintf(s->csrf, sizeof s->csrf, "%s",
             json_string_value(json_object_get(r->j, "csrf")) ? json_string_value(
                                                                    json_object_get(r->j, "csrf"))
                                                              : "");
    return 0;
}

static void login_ok(fix *f, const char *name, sess *s)
{
    resp r = { 0 };
    CHECK(f, login(f, name, PW, s, &r) == 0);
    CHECK(f, strncmp(s->cookie, AUTH_COOKIE_NAME "=", strlen(AUTH_COOKIE_NAME) + 1) == 0);
    CHECK(f, strlen(s->csrf) == AUTH_TOKEN_LEN);
    resp_clear(&r);
}

static json_int_t jint(const json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

static const char *jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static const char *err_code(const resp *r)
{
    return jstr(json_object_get(r->j, "error"), "code");
}

/* ---- WebSocket client ---- */

static void ws_send(int fd, int op, const void *data, size_t len)
{
    unsigned char h[8], *buf;
    static const unsigned char key[4] = { 0x37, 0xfa, 0x21, 0x3d };
    size_t hl = 2;
    h[0] = (unsigned char)(0x80 | op);
    h[1] = (unsigned char)(0x80 | len); /* short frames only */
    memcpy(h + hl, key, 4);
    hl += 4;
    buf = malloc(hl + len);
    memcpy(buf, h, hl);
    for (size_t i = 0; i < len; i++)
        buf[hl + i] = ((const unsigned char *)data)[i] ^ key[i & 3];
    cli_send(fd, buf, hl + len);
    free(buf);
}

static int ws_read(int fd, cbuf *b, char **data, size_t *len)
{
    unsigned char *h;
    size_t l, hl = 2;
    int op;
    while (b->len < 2)
        if (cbuf_fill(fd, b) <= 0)
            return -1;
    h = (unsigned char *)b->d;
    l = h[1] & 0x7f;
    if (l == 126)
        hl = 4;
    else if (l == 127)
        hl = 10;
    while (b->len < hl)
        if (cbuf_fill(fd, b) <= 0)
            return -1;
    h = (unsigned char *)b->d;
    if (l == 126) {
        l = (size_t)h[2] << 8 | h[3];
    } else if (l == 127) {
        l = 0;
        for (int i = 0; i < 8; i++)
            l = l << 8 | h[2 + i];
    }
    while (b->len < hl + l)
        if (cbuf_fill(fd, b) <= 0)
            return -1;
    h = (unsigned char *)b->d;
    op = h[0] & 0x0f;
    *data = malloc(l + 1);
    memcpy(*data, b->d + hl, l);
    (*data)[l] = '\0';
    *len = l;
    cbuf_consume(b, hl + l);
    return op;
}

static int ws_open(fix *f, const sess *s, const char *path, cbuf *b, resp *r)
{
    char req[1024];
    int fd = cli_connect(f->port);
    snprintf(req, sizeof req,
             "GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
             "Cookie: %s\r\n\r\n",
             path, s ? s->cookie : "");
    cli_send(fd, req, strlen(req));
    if (cli_resp(fd, b, r) < 0)
        r->status = -1;
    return fd;
}

/* The next text frame as JSON (pings are skipped), or NULL. */
static json_t *ws_next_json(int fd, cbuf *b)
{
    for (;;) {
        char *d = NULL;
        size_t l = 0;
        int op = ws_read(fd, b, &d, &l);
        json_t *j;
        if (op == 9) {
            ws_send(fd, 10, d, l);
            free(d);
            continue;
        }
        if (op != 1) {
            free(d);
            return NULL;
        }
        j = json_loadb(d, l, 0, NULL);
        free(d);
        return j;
    }
}

/* ---- the test's api_ops ---- */

static const plan *o_plan(void *opaque)
{
    return ((fix *)opaque)->pl;
}

static json_t *o_command(void *opaque, const json_t *cmd)
{
    fix *f = opaque;
    const char *c = json_string_value(json_object_get(cmd, "cmd"));
    int team = (int)json_integer_value(json_object_get(cmd, "team"));
    json_t *teams = json_array();
    if (c == NULL) {
        json_decref(teams);
        return json_pack("{s:b, s:s}", "ok", 0, "error", "missing 'cmd'");
    }
    if (strcmp(c, "status") == 0) {
        for (int t = 1; t <= f->pl->n_teams; t++)
            json_array_append_new(teams, json_pack(
                "{s:i, s:s, s:f, s:[{s:s, s:s, s:s, s:f}]}", "team", t, "clock", f->clock,
                "elapsed_s", 12.5, "steps", "id", "phish", "action", "phish.deliver", "state",
                "done", "due_s", 60.0));
        return json_pack("{s:b, s:s, s:f, s:o}", "ok", 1, "exercise", f->pl->exercise, "speed",
                         1.0, "teams", teams);
    }
    if (strcmp(c, "guests") == 0) {
        json_t *g = json_array();
        json_decref(teams);
        for (int t = 1; t <= f->pl->n_teams; t++)
            json_array_append_new(g, json_pack("{s:i, s:s, s:s, s:{s:i}}", "team", t, "host",
                                               "mail", "state", "running", "health", "load", 1));
        return json_pack("{s:b, s:o}", "ok", 1, "guests", g);
    }
    if (strcmp(c, "checks") == 0 || strcmp(c, "wire") == 0) {
        for (int t = 1; t <= f->pl->n_teams; t++) {
            if (team && t != team)
                continue;
            if (strcmp(c, "checks") == 0)
                json_array_append_new(teams, json_pack("{s:i, s:[{s:s, s:s, s:b, s:i}]}", "team",
                                                       t, "checks", "id", "mail-smtp", "type",
                                                       "smtp", "up", 1, "probes", 3));
            else
                json_array_append_new(teams, json_pack("{s:i, s:i, s:i, s:[]}", "team", t,
                                                       "packets", 100 * t, "bytes", 6400 * t,
                                                       "captures"));
        }
        return json_pack("{s:b, s:o}", "ok", 1, "teams", teams);
    }
    json_decref(teams);
    snprintf(f->last_cmd, sizeof f->last_cmd, "%s", c);
    if (strcmp(c, "start") == 0 || strcmp(c, "resume") == 0)
        snprintf(f->clock, sizeof f->clock, "running");
    else if (strcmp(c, "pause") == 0)
        snprintf(f->clock, sizeof f->clock, "paused");
    else if (strcmp(c, "reset") == 0)
        snprintf(f->clock, sizeof f->clock, "finished");
    else if (strcmp(c, "skip") == 0)
        return json_pack("{s:b, s:s}", "ok", 0, "error", "unknown or missing 'step'");
    /* What cli_serve does for a step it starts: an instructors-only event
     * of the team. */
    if (f->a) {
        json_t *d = json_pack("{s:s, s:s}", "step", "phish", "summary", "attacker step");
        api_event(f->a, "inject", team ? team : 1, 1, d);
        json_decref(d);
    }
    return json_pack("{s:b}", "ok", 1);
}

static json_t *finding_out(const json_t *row)
{
    json_t *o = json_deep_copy(json_object_get(row, "doc"));
    if (o == NULL)
        o = json_object();
    json_object_set(o, "id", json_object_get(row, "id"));
    json_object_set(o, "team", json_object_get(row, "team"));
    json_object_set(o, "label", json_object_get(row, "label"));
    return o;
}

typedef struct opw {
    fix *f;
    api_done_cb cb;
    void *cbopaque;
    int team;
    int64_t id;
} opw;

static void o_finding_stored(const store_result *res, void *opaque)
{
    opw *w = opaque;
    if (res->rc < 0) {
        w->cb(w->cbopaque, 500, NULL, res->err.msg);
    } else {
        store_err e;
        json_t *row = store_finding_get(w->f->st, w->f->pl->exercise, w->team,
                                        w->id ? w->id : res->id, &e);
        json_t *out = row ? finding_out(row) : NULL;
        /* The exercise announces every stored finding (new or relabelled)
         * before answering, and the API relies on it. */
        if (out && w->f->a)
            api_event(w->f->a, "finding", (int)jint(row, "team"), 0, out);
        w->cb(w->cbopaque, out ? 200 : 500, out, out ? NULL : e.msg);
        json_decref(out);
        json_decref(row);
    }
    free(w);
}

static int o_finding_add(void *opaque, int team, const json_t *finding, const char *by,
                         api_done_cb cb, void *cbopaque)
{
    fix *f = opaque;
    char err[1024];
    struct timespec ts;
    long long now;
    json_t *n;
    opw *w;
    (void)by;
    clock_gettime(CLOCK_REALTIME, &ts);
    now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    n = findings_normalize(finding, f->scn, team, now, err, sizeof err);
    if (n == NULL) {
        cb(cbopaque, 400, NULL, err);
        return 0;
    }
    w = calloc(1, sizeof *w);
    w->f = f;
    w->cb = cb;
    w->cbopaque = cbopaque;
    w->team = team;
    if (store_finding_add(f->st, f->pl->exercise, team, 0, now,
                          jint(n, "detected_ms"), n, o_finding_stored, w) < 0) {
        free(w);
        json_decref(n);
        return -1;
    }
    json_decref(n);
    return 0;
}

static int o_finding_label(void *opaque, long long id, const char *label, const char *by,
                           api_done_cb cb, void *cbopaque)
{
    fix *f = opaque;
    opw *w = calloc(1, sizeof *w);
    w->f = f;
    w->cb = cb;
    w->cbopaque = cbopaque;
    w->team = STORE_ALL_TEAMS;
    w->id = id;
    if (store_finding_label(f->st, f->pl->exercise, id, label, by, 1, o_finding_stored, w) <
        0) {
        free(w);
        return -1;
    }
    return 0;
}

static json_t *o_findings(void *opaque, int team)
{
    fix *f = opaque;
    json_t *rows = store_findings_list(f->st, f->pl->exercise, team, NULL), *out = json_array(),
           *v;
    size_t i;
    json_array_foreach(rows, i, v)
        json_array_append_new(out, finding_out(v));
    json_decref(rows);
    return out;
}

static json_t *o_score(void *opaque, int team, const json_t *grades)
{
    fix *f = opaque;
    score_config c;
    char err[256];
    json_t *in = json_pack("{s:i, s:I, s:O, s:[{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:s}]}",
                           "team", team, "now_ms", (json_int_t)100000, "grades",
                           (json_t *)grades, "steps", "step", "phish", "action", "phish.deliver",
                           "technique", "T1566.001", "actor", "attacker", "target", "mail",
                           "start_ms", (json_int_t)1000, "end_ms", (json_int_t)2000, "outcome",
                           "succeeded", "visibility", "network"), *out;
    atomic_fetch_add(&f->score_calls, 1);
    score_config_defaults(&c);
    out = score_team(&c, in, err, sizeof err);
    json_decref(in);
    return out;
}

static char *o_pcap_dir(void *opaque, int team)
{
    fix *f = opaque;
    char p[128];
    snprintf(p, sizeof p, "%s/pcap%d", f->tmp, team);
    return strdup(p);
}

static const char *o_domain(void *opaque, int team, const char *host)
{
    fix *f = opaque;
    int h = scenario_host_index(f->scn, host);
    /* test:///default has one running guest, "test"; it has no console. */
    if (f->hub && h >= 0)
        return "test";
    if (team < 1 || team > f->pl->n_teams || h < 0)
        return NULL;
    return f->pl->teams[team - 1].hosts[h].domain;
}

static console_hub *o_consoles(void *opaque)
{
    return ((fix *)opaque)->hub;
}

static const api_ops test_ops = { NULL, o_plan, o_command, o_finding_add, o_finding_label,
                                  o_findings, o_score, o_pcap_dir, o_domain, o_consoles };

/* ---- fixture ---- */

typedef struct wait_w {
    int done, rc;
    int64_t id;
    char msg[256];
} wait_w;

static void on_write(const store_result *res, void *opaque)
{
    wait_w *w = opaque;
    w->done = 1;
    w->rc = res->rc;
    w->id = res->id;
    snprintf(w->msg, sizeof w->msg, "%s", res->err.msg);
}

static int64_t wait_write(fix *f, wait_w *w)
{
    while (!w->done)
        uv_run(&f->loop, UV_RUN_ONCE);
    if (w->rc < 0)
        fail_msg("store write: %s", w->msg);
    return w->id;
}

static void add_user(fix *f, const char *name, const char *role, int team)
{
    char hash[AUTH_HASH_MAX], err[256];
    wait_w w = { 0 };
    assert_int_equal(auth_hash_password_kdf(&kdf_min, PW, hash, err, sizeof err), 0);
    assert_int_equal(store_user_add(f->st, name, role, team, hash, 1, on_write, &w), 0);
    wait_write(f, &w);
}

static void write_file(const char *path, const void *d, size_t n)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(d, 1, n, fp), n);
    fclose(fp);
}

static void on_store_closed(void *opaque)
{
    ((fix *)opaque)->store_closed = 1;
}

static void finish(fix *f)
{
    if (f->finished)
        return;
    f->finished = 1;
    /* The routes point into the API: the server goes first. */
    httpd_close(f->h, NULL, NULL);
    api_free(f->a);
    f->a = NULL;
    auth_free(f->au);
    console_hub_close(f->hub, NULL, NULL);
    f->hub = NULL;
    store_close(f->st, on_store_closed, f);
    uv_close((uv_handle_t *)&f->done_async, NULL);
    uv_close((uv_handle_t *)&f->guard, NULL);
}

static void on_client_done(uv_async_t *as)
{
    finish(as->data);
}

static void on_guard(uv_timer_t *t)
{
    fix *f = t->data;
    f->timed_out = 1;
    finish(f);
}

static void *client_main(void *arg)
{
    fix *f = arg;
    f->client(f);
    uv_async_send(&f->done_async);
    return NULL;
}

static void fix_setup(fix *f)
{
    char err[512], p[256];
    diag_list d;
    auth_opts ao = { 0 };
    api_opts o = { 0 };
    api_ops ops = test_ops;
    wait_w w1 = { 0 }, w2 = { 0 }, w3 = { 0 };
    json_t *doc;

    memset(f, 0, sizeof *f);
    assert_int_equal(chdir(CYRANGE_SRCDIR), 0);
    snprintf(f->tmp, sizeof f->tmp, "/tmp/cyrange-api-XXXXXX");
    assert_non_null(mkdtemp(f->tmp));
    snprintf(f->clock, sizeof f->clock, "running");
    assert_int_equal(uv_loop_init(&f->loop), 0);
    diag_init(&d);
    f->scn = scenario_load("scenarios/targeted-mail.json", &d);
    diag_clear(&d);
    assert_non_null(f->scn);
    f->pl = plan_build(f->scn, "apitest", 2, err, sizeof err);
    assert_non_null(f->pl);
    snprintf(f->path, sizeof f->path, "%s/cyrange.db", f->tmp);
    f->st = store_open(&f->loop, f->path, err, sizeof err);
    if (f->st == NULL)
        fail_msg("store_open: %s", err);
    ao.kdf = kdf_min;
    f->au = auth_new(&f->loop, f->st, &ao, err, sizeof err);
    if (f->au == NULL)
        fail_msg("auth_new: %s", err);
    add_user(f, "instr", "instructor", 0);
    add_user(f, "m1", "member", 1);
    add_user(f, "m2", "member", 2);
    add_user(f, "obs", "observer", 0);
    add_user(f, "ratey", "member", 1);
    {
        wait_w we = { 0 }, wt1 = { 0 }, wt2 = { 0 };
        assert_int_equal(store_exercise_put(f->st, "apitest", f->scn->id, f->scn->root, 1,
                                            "running", 1.0, 1, NULL, on_write, &we), 0);
        assert_int_equal(store_team_put(f->st, "apitest", 1, "Team 1", on_write, &wt1), 0);
        assert_int_equal(store_team_put(f->st, "apitest", 2, "Team 2", on_write, &wt2), 0);
        wait_write(f, &we);
        wait_write(f, &wt1);
        wait_write(f, &wt2);
    }
    /* What the orchestrator puts into the inboxes. */
    doc = json_pack("{s:s, s:s, s:s, s:s, s:i}", "from", "Nikkei reporter", "channel", "press",
                    "subject", "Are you investigating a data leak?", "body", "Confirm?",
                    "points", 10);
    assert_int_equal(store_inbox_add(f->st, "apitest", 1, "press", 1000, 1200000, doc, on_write,
                                     &w1), 0);
    assert_int_equal(store_inbox_add(f->st, "apitest", 2, "press", 1000, 1200000, doc, on_write,
                                     &w2), 0);
    assert_int_equal(store_score_snapshot(f->st, "apitest", 1, 5000, 12.5, doc, on_write, &w3),
                     0);
    json_decref(doc);
    f->inbox1 = wait_write(f, &w1);
    f->inbox2 = wait_write(f, &w2);
    wait_write(f, &w3);
    for (int t = 1; t <= 2; t++) {
        snprintf(p, sizeof p, "%s/pcap%d", f->tmp, t);
        assert_int_equal(mkdir(p, 0755), 0);
    }
    snprintf(p, sizeof p, "%s/pcap1/cap-0001.pcap", f->tmp);
    write_file(p, PCAP_DATA, PCAP_LEN);
    snprintf(p, sizeof p, "%s/pcap1/notes.txt", f->tmp);
    write_file(p, "not a capture", 13);
    snprintf(p, sizeof p, "%s/secret.pcap", f->tmp);
    write_file(p, "secret", 6);

    f->h = httpd_new(&f->loop, NULL, err, sizeof err);
    if (f->h == NULL)
        fail_msg("httpd_new: %s", err);
    f->port = httpd_port(f->h);
    ops.opaque = f;
    o.exercise = "apitest";
    o.openapi_path = CYRANGE_SRCDIR "/web/openapi.json";
    o.kdf = kdf_min;
    f->a = api_new(&f->loop, f->h, f->st, f->au, &o, &ops, err, sizeof err);
    if (f->a == NULL)
        fail_msg("api_new: %s", err);
    uv_async_init(&f->loop, &f->done_async, on_client_done);
    f->done_async.data = f;
    uv_timer_init(&f->loop, &f->guard);
    f->guard.data = f;
}

static void fix_run(fix *f, void (*client)(fix *f))
{
    char cmd[128];
    f->client = client;
    uv_timer_start(&f->guard, on_guard, 60000, 0);
    assert_int_equal(pthread_create(&f->th, NULL, client_main, f), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    pthread_join(f->th, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(f->store_closed);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    if (f->conn)
        virt_close(f->conn);
    plan_free(f->pl);
    scenario_free(f->scn);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->tmp);
    assert_int_equal(system(cmd), 0);
    if (f->timed_out)
        fail_msg("the test did not finish within 60 s");
    if (f->fail[0])
        fail_msg("%s", f->fail);
}

/* ---- session ---- */

static void c_session(fix *f)
{
    sess s, old;
    resp r = { 0 };
    char v[64];

    CHECK(f, login(f, "m1", "wrong-password", &s, &r) < 0);
    CHECK_STATUS(f, &r, 401);
    CHECK(f, strcmp(err_code(&r), "unauthenticated") == 0);
    http(f, NULL, "POST", "/api/login", "{\"name\":1}", 0, &r);
    CHECK_STATUS(f, &r, 400);
    http(f, NULL, "POST", "/api/login", "{nope", 0, &r);
    CHECK_STATUS(f, &r, 400);

    CHECK(f, login(f, "m1", PW, &s, &r) == 0);
    CHECK(f, strcmp(jstr(json_object_get(r.j, "user"), "role"), "member") == 0);
    CHECK(f, jint(json_object_get(r.j, "user"), "team") == 1);
    CHECK(f, find_header(r.head, "Set-Cookie", v, sizeof v) != NULL);
    CHECK(f, strcasestr(r.head, "HttpOnly") != NULL);
    CHECK(f, strcasestr(r.head, "SameSite=Strict") != NULL);

    http(f, &s, "GET", "/api/me", NULL, 0, &r);
    CHECK_STATUS(f, &r, 200);
    CHECK(f, strcmp(jstr(json_object_get(r.j, "user"), "name"), "m1") == 0);
    CHECK(f, strcmp(jstr(r.j, "csrf"), s.csrf) == 0);
    CHECK(f, strcmp(jstr(r.j, "exercise"), "apitest") == 0);

    http(f, NULL, "GET", "/api/me", NULL, 0, &r);
    CHECK_STATUS(f, &r, 401);
    CHECK(f, strcmp(err_code(&r), "unauthenticated") == 0);

    /* CSRF: missing and wrong headers on a state-changing request. */
    http(f, &s, "POST", "/api/teams/1/findings", "{}", 0, &r);
    CHECK_STATUS(f, &r, 403);
    CHECK(f, strcmp(err_code(&r), "csrf") == 0);
    http(f, &s, "POST", "/api/teams/1/findings", "{}", -1, &r);
    CHECK_STATUS(f, &r, 403);
    CHECK(f, strcmp(err_code(&r), "csrf") == 0);
    http(f, &s, "POST", "/api/logout", NULL, 0, &r);
    CHECK_STATUS(f, &r, 403);

    old = s;
    http(f, &s, "POST", "/api/logout", NULL, 1, &r);
    CHECK_STATUS(f, &r, 204);
    CHECK(f, strcasestr(r.head, "Set-Cookie: " AUTH_COOKIE_NAME "=;") != NULL ||
                 strcasestr(r.head, "Max-Age=0") != NULL);
    http(f, &old, "GET", "/api/me", NULL, 0, &r);
    CHECK_STATUS(f, &r, 401);

    /* Rate limiting: the sixth failure in the window is refused. */
    for (int i = 0; i < 5; i++) {
        login(f, "ratey", "wrong-password", &s, &r);
        CHECK_STATUS(f, &r, 401);
    }
    CHECK(f, login(f, "ratey", PW, &s, &r) < 0);
    CHECK_STATUS(f, &r, 429);
    CHECK(f, strcmp(err_code(&r), "rate_limited") == 0);
    CHECK(f, find_header(r.head, "Retry-After", v, sizeof v) && atoi(v) > 0);
    resp_clear(&r);
}

static void test_session(void **state)
{
    fix f;
    (void)state;
    fix_setup(&f);
    fix_run(&f, c_session);
}

/* ---- the policy, generated from api_routes() ---- */

static void route_path(const char *pattern, char *out, size_t len)
{
    size_t n = 0;
    for (const char *p = pattern; *p && n + 16 < len;) {
        if (*p == '{') {
            const char *e = strchr(p, '}');
            const char *val = strncmp(p, "{team}", 6) == 0   ? "1"
                              : strncmp(p, "{name}", 6) == 0 ? "cap-0001.pcap"
                              : strncmp(p, "{host}", 6) == 0 ? "mail"
                                                             : "1";
            n += (size_t)snprintf(out + n, len - n, "%s", val);
            p = e ? e + 1 : p + 1;
        } else {
            out[n++] = *p++;
        }
    }
    out[n] = '\0';
}

typedef struct policy_ctx {
    json_t *routes;
} policy_ctx;

static policy_ctx g_policy;

static void c_policy(fix *f)
{
    sess m1, m2, obs, in;
    resp r = { 0 };
    size_t i, n_team = 0, n_steer = 0, n_obs = 0;
    json_t *rt;
    login_ok(f, "m1", &m1);
    login_ok(f, "m2", &m2);
    login_ok(f, "obs", &obs);
    login_ok(f, "instr", &in);
    json_array_foreach(g_policy.routes, i, rt) {
        const char *m = jstr(rt, "method"), *pat = jstr(rt, "path"), *acc = jstr(rt, "access");
        char path[256];
        int is_get = strcmp(m, "GET") == 0;
        route_path(pat, path, sizeof path);
        if (strcmp(acc, "public") == 0)
            continue;
        /* Every other route needs a session. */
        http(f, NULL, m, path, "{}", 0, &r);
        if (r.status != 401 && !f->fail[0])
            snprintf(f->fail, sizeof f->fail, "%s %s without a session: %d", m, pat, r.status);
        /* A member of team 2 on team 1's paths. */
        if (strstr(pat, "{team}")) {
            n_team++;
            http(f, &m2, m, path, "{}", 1, &r);
            if ((r.status != 403 || strcmp(err_code(&r), "forbidden")) && !f->fail[0])
                snprintf(f->fail, sizeof f->fail, "%s %s by team 2: %d %s", m, pat, r.status,
                         r.body);
        }
        /* An observer never writes. */
        if (!is_get && strcmp(pat, "/api/logout") != 0) {
            n_obs++;
            http(f, &obs, m, path, "{}", 1, &r);
            if ((r.status != 403 || strcmp(err_code(&r), "forbidden")) && !f->fail[0])
                snprintf(f->fail, sizeof f->fail, "%s %s by an observer: %d", m, pat, r.status);
        }
        /* Members never steer, administer or see every team. */
        if (strcmp(acc, "steer") == 0 || strcmp(acc, "team_steer") == 0 ||
            strcmp(acc, "admin") == 0 || strcmp(acc, "read_all") == 0) {
            n_steer++;
            http(f, &m1, m, path, "{}", 1, &r);
            if ((r.status != 403 || strcmp(err_code(&r), "forbidden")) && !f->fail[0])
                snprintf(f->fail, sizeof f->fail, "%s %s by a member: %d", m, pat, r.status);
        }
        /* The instructor passes the policy everywhere (whatever the handler
         * then says about the empty body). */
        if (strcmp(pat, "/api/logout") == 0)
            continue;
        http(f, &in, m, path, "{}", 1, &r);
        if ((r.status == 401 || r.status == 403) && !f->fail[0])
            snprintf(f->fail, sizeof f->fail, "%s %s by the instructor: %d", m, pat, r.status);
    }
    CHECK(f, n_team >= 17);
    CHECK(f, n_steer >= 7);
    CHECK(f, n_obs >= 10);
    /* The self-analysis by name, so that the loop above cannot silently
     * skip it: another team's member and an observer's write are refused,
     * and so is the aggregate for a member. */
    http(f, &m2, "GET", "/api/teams/1/analysis", NULL, 0, &r);
    CHECK_STATUS(f, &r, 403);
    http(f, &m2, "PUT", "/api/teams/1/analysis", "{\"items\":[]}", 1, &r);
    CHECK_STATUS(f, &r, 403);
    CHECK(f, strcmp(err_code(&r), "forbidden") == 0);
    http(f, &obs, "PUT", "/api/teams/1/analysis", "{\"items\":[]}", 1, &r);
    CHECK_STATUS(f, &r, 403);
    CHECK(f, strcmp(err_code(&r), "forbidden") == 0);
    http(f, &m1, "GET", "/api/analyses", NULL, 0, &r);
    CHECK_STATUS(f, &r, 403);
    http(f, &m1, "PUT", "/api/teams/1/analysis", "{\"items\":[]}", 0, &r);
    CHECK_STATUS(f, &r, 403);
    CHECK(f, strcmp(err_code(&r), "csrf") == 0);
    /* Observers read every team; a member its own. */
    http(f, &obs, "GET", "/api/teams/2/reports", NULL, 0, &r);
    CHECK_STATUS(f, &r, 200);
    http(f, &m1, "GET", "/api/teams/1/reports", NULL, 0, &r);
    CHECK_STATUS(f, &r, 200);
    /* A team that does not exist: 404 for the instructor, 403 for a member. */
    http(f, &in, "GET", "/api/teams/3/reports", NULL, 0, &r);
    CHECK_STATUS(f, &r, 404);
    http(f, &m1, "GET", "/api/teams/3/reports", NULL, 0, &r);
    CHECK_STATUS(f, &r, 403);
    /* Observers have no consoles. */
    http(f, &obs, "GET", "/api/teams/1/hosts/mail/console", NULL, 0, &r);
    CHECK_STATUS(f, &r, 403);
    resp_clear(&r);
}

static void test_policy(void **state)
{
    fix f;
    (void)state;
    fix_setup(&f);
    g_policy.routes = api_routes(f.a);
    assert_true(json_array_size(g_policy.routes) >= 30);
    fix_run(&f, c_policy);
    json_decref(g_policy.routes);
}

/* ---- exercise, map, wire, timeline, control, pcaps ---- */

static void c_range(fix *f)
{
    sess m1, in, obs;
    resp r = { 0 };
    json_t *v;
    size_t i;
    int found = 0;
    login_ok(f, "m1", &m1);
    login_ok(f, "instr", &in);
    login_ok(f, "obs", &obs);

    http(f, &m1, "GET", "/api/exercise", NULL, 0, &r);
    CHECK_STATUS(f, &r, 200);
    CHECK(f, json_array_size(json_object_get(r.j, "teams")) == 1);
    CHECK(f, strcmp(jstr(json_object_get(r.j, "scenario"), "id"), "targeted-mail") == 0);
    CHECK(f, strcmp(jstr(r.j, "state"), "running") == 0);
    CHECK(f, json_array_size(json_object_get(json_object_get(r.j, "report_template"),
                                             "sections")) == 4);
    http(f, &in, "GET", "/api/exercise", NULL, 0, &r);
    CHECK(f, json_array_size(json_object_get(r.j, "teams")) == 2);

    http(f, &m1, "GET", "/api/teams/1/map", NULL, 0, &r);
    CHECK_STATUS(f, &r, 200);
    CHECK(f, json_array_size(json_object_get(r.j, "hosts")) == f->scn->n_hosts);
    CHECK(f, json_array_size(json_object_get(r.j, "segments")) == f->scn->n_segments);
    CHECK(f, json_array_size(json_object_get(r.j, "checks")) == 1);
    json_array_foreach(json_object_get(r.j, "hosts"), i, v)
        if (strcmp(jstr(v, "name"), "mail") == 0)
            found = strcmp(jstr(v, "state"), "running") == 0 &&
                    json_is_true(json_object_get(v, "agent"));
    CHECK(f, found);

    http(f, &m1, "GET", "/api/teams/1/wire", NULL, 0, &r);
    CHECK_STATUS(f, &r, 200);
    CHECK(f, jint(r.j, "packets") == 100);

    http(f, &obs, "GET", "/api/timeline", NULL, 0, &r);
    CHECK_STATUS(f, &r, 200);
    v = json_array_get(json_object_get(r.j, "teams"), 0);
    CHECK(f, jint(v, "elapsed_ms") == 12500);
    v = json_array_get(json_object_get(v, "steps"), 0);
    CHECK(f, jint(v, "due_ms") == 60000);
    CHECK(f, strcmp(jstr(v, "target"), "mail") == 0);

    http(f, &in, "POST", "/api/control", "{\"cmd\":\"pause\",\"team\":1}", 1, &r);
    CHECK_STATUS(f, &r, 200);
    CHECK(f, json_is_true(json_object_get(r.j, "ok")));
    CHECK(f, strcmp(f->last_cmd, "pause") == 0);
    http(f, &in, "POST", "/api/control", "{\"cmd\":\"explode\"}", 1, &r);
    CHECK_STATUS(f, &r, 400);
    http(f, &in, "POST", "/api/control", "{\"cmd\":\"skip\",\"team\":1}", 1, &r);
    CHECK_STATUS(f, &r, 409);
    http(f, &in, "POST", "/api/control", "{\"cmd\":\"start\",\"team\":7}", 1, &r);
    CHECK_STATUS(f, &r, 400);
    http(f, &in, "GET", "/api/exercise", NULL, 0, &r);
    CHECK(f, strcmp(jstr(r.j, "state"), "held") == 0);

    /* Captures: only .pcap files, downloads, no way out. */
    http(f, &m1, "GET", "/api/teams/1/pcaps", NULL, 0, &r);
    CHECK_STATUS(f, &r, 200);
    CHECK(f, json_array_size(r.j) == 1);
    CHECK(f, strcmp(jstr(json_array_get(r.j, 0), "name"), "cap-0001.pcap") == 0);
    CHECK(f, jint(json_array_get(r.j, 0), "bytes") == (json_int_t)PCAP_LEN);
    CHECK(f, jint(json_array_get(r.j, 0), "modified_ms") > 0);
    http(f, &m1, "GET", "/api/teams/1/pcaps/cap-0001.pcap", NULL, 0, &r);
    CHECK_STATUS(f, &r, 200);
    CHECK(f, r.body_len == PCAP_LEN && memcmp(r.body, PCAP_DATA, PCAP_LEN) == 0);
    CHECK(f, strcasestr(r.head, "application/vnd.tcpdump.pcap") != NULL);
    CHECK(f, strcasestr(r.head, "attachment") != NULL);
    http(f, &m1, "GET", "/api/teams/1/pcaps/notes.txt", NULL, 0, &r);
    CHECK_STATUS(f, &r, 400);
    http(f, &m1, "GET", "/api/teams/1/pcaps/..%2Fsecret.pcap", NULL, 0, &r);
    if ((r.status < 400 || r.status > 404) && !f->fail[0])
        snprintf(f->fail, sizeof f->fail, "traversal: %d %s", r.status, r.body);
    http(f, &m1, "GET", "/api/teams/1/pcaps/..%5C..%5Csecret.pcap", NULL, 0, &r);
    CHECK(f, r.status >= 400 && r.status <= 404);
    http(f, &m1, "GET", "/api/teams/1/pcaps/x%2F..%2F..%2Fsecret.pcap", NULL, 0, &r);
    CHECK(f, r.status >= 400 && r.status <= 404);
    http(f, &m1, "GET", "/api/teams/1/pcaps/../../secret.pcap", NULL, 0, &r);
    CHECK(f, r.status != 200);
    http(f, &m1, "GET", "/api/teams/1/pcaps/.hidden.pcap", NULL, 0, &r);
    CHECK_STATUS(f, &r, 400);
    http(f, &m1, "GET", "/api/teams/1/pcaps/none.pcap", NULL, 0, &r);
    CHECK_STATUS(f, &r, 404);

    /* The API document. */
    http(f, NULL, "GET", "/api/openapi.json", NULL, 0, &r);
    CHECK_STATUS(f, &r, 200);
    CHECK(f, strcmp(jstr(r.j, "openapi"), "3.0.3") == 0);
    resp_clear(&r);
}

static void test_range(void **state)
{
    fix f;
    (void)state;
    fix_setup(&f);
    fix_run(&f, c_range);
}

/* ---- findings, reports, reviews, inbox, scores, users ---- */

static void c_work(fix *f)
{
    sess m1, m2, in, obs, nb;
    resp r = { 0 };
    char path[256], body[1024];
    json_int_t fid, rid, resp_id;
    json_t *v;

    login_ok(f, "m1", &m1);
    login_ok(f, "m2", &m2);
    login_ok(f, "instr", &in);
    login_ok(f, "obs", &obs);

    /* Findings. */
    http(f, &m1, "POST", "/api/teams/1/findings",
         "{\"hosts\":[\"pc1\"],\"technique\":\"T1566.001\",\"description\":\"phishing mail\"}",
         1, &r);
    CHECK_STATUS(f, &r, 201);
    fid = jint(r.j, "id");
    CHECK(f, fid > 0);
    CHECK(f, strcmp(jstr(r.j, "description"), "phishing mail") == 0);
    http(f, &m1, "POST", "/api/teams/1/findings", "{\"hosts\":[\"pc1\"]}", 1, &r);
    CHECK_STATUS(f, &r, 400);
    CHECK(f, strstr(jstr(json_object_get(r.j, "error"), "message"), "description") != NULL);
    http(f, &m1, "GET", "/api/teams/1/findings", NULL, 0, &r);
    CHECK(f, json_array_size(r.j) == 1 && jint(json_array_get(r.j, 0), "id") == fid);
    http(f, &m2, "GET", "/api/teams/2/findings", NULL, 0, &r);
    CHECK(f, json_array_size(r.j) == 0);
    snprintf(path, sizeof path, "/api/findings/%lld", (long long)fid);
    http(f, &in, "PATCH", path, "{\"label\":\"benign\"}", 1, &r);
    CHECK_STATUS(f, &r, 200);
    CHECK(f, strcmp(jstr(r.j, "label"), "benign") == 0);
    http(f, &in, "PATCH", path, "{\"label\":\"great\"}", 1, &r);
    CHECK_STATUS(f, &r, 400);
    http(f, &in, "PATCH", "/api/findings/999", "{\"label\":\"none\"}", 1, &r);
    CHECK(f, r.status >= 400);

    /* Reports: create, save, stale save, submit. */
    http(f, &m1, "POST", "/api/teams/1/reports",
         "{\"title\":\"Phish\",\"sections\":{\"detection\":\"saw a mail\"},\"submit\":false}", 1,
         &r);
    CHECK_STATUS(f, &r, 201);
    rid = jint(r.j, "id");
    CHECK(f, rid > 0 && jint(r.j, "version") == 1);
    http(f, &m1, "POST", "/api/teams/1/reports",
         "{\"title\":\"X\",\"sections\":{\"nonsense\":\"x\"}}", 1, &r);
    CHECK_STATUS(f, &r, 400);
    http(f, &m1, "POST", "/api/teams/1/reports", "{\"sections\":{}}", 1, &r);
    CHECK_STATUS(f, &r, 400);
    {
        /* A section over 64 KiB is refused, a report up to 256 KiB passes
         * the body limit. */
        size_t big = 70 * 1024;
        char *b = malloc(big + 100);
        int n = snprintf(b, 100, "{\"title\":\"Big\",\"sections\":{\"detection\":\"");
        memset(b + n, 'a', big);
        strcpy(b + n + big, "\"}}");
        http(f, &m1, "POST", "/api/teams/1/reports", b, 1, &r);
        CHECK_STATUS(f, &r, 400);
        CHECK(f, strstr(jstr(json_object_get(r.j, "error"), "message"), "detection") != NULL);
        free(b);
    }
    {
        /* Four sections of 60 KiB fit the report routes' 256 KiB limit; a
         * 300 KiB body does not. */
        size_t sec = 60 * 1024, n = 0;
        char *b = malloc(4 * sec + 1024);
        static const char *const ids[] = { "detection", "response", "reporting", "recovery" };
        n += (size_t)sprintf(b, "{\"title\":\"Long\",\"sections\":{");
        for (int i = 0; i < 4; i++) {
            n += (size_t)sprintf(b + n, "%s\"%s\":\"", i ? "," : "", ids[i]);
            memset(b + n, 'x', sec);
            n += sec;
            b[n++] = '"';
        }
        strcpy(b + n, "}}");
        http(f, &m1, "POST", "/api/teams/1/reports", b, 1, &r);
        CHECK_STATUS(f, &r, 201);
        free(b);
        b = malloc(300 * 1024 + 64);
        n = (size_t)sprintf(b, "{\"title\":\"Huge\",\"sections\":{\"detection\":\"");
        memset(b + n, 'y', 300 * 1024);
        strcpy(b + n + 300 * 1024, "\"}}");
        http(f, &m1, "POST", "/api/teams/1/reports", b, 1, &r);
        CHECK_STATUS(f, &r, 413);
        free(b);
    }
    snprintf(path, sizeof path, "/api/teams/1/reports/%lld", (long long)rid);
    http(f, &m1, "PUT", path,
         "{\"base_version\":1,\"sections\":{\"detection\":\"saw a mail\",\"response\":\"blocked\"}}",
         1, &r);
    CHECK_STATUS(f, &r, 200);
    CHECK(f, jint(r.j, "version") == 2);
    http(f, &m1, "PUT", path, "{\"base_version\":1,\"sections\":{\"detection\":\"late\"}}", 1, &r);
    CHECK_STATUS(f, &r, 409);
    CHECK(f, strcmp(err_code(&r), "conflict") == 0);
    http(f, &m1, "PUT", path,
         "{\"base_version\":2,\"sections\":{\"detection\":\"saw a mail from x\"},\"submit\":true}",
         1, &r);
    CHECK_STATUS(f, &r, 200);
    CHECK(f, jint(r.j, "version") == 3);
    http(f, &m1, "GET", path, NULL, 0, &r);
    CHECK_STATUS(f, &r, 200);
    CHECK(f, strcmp(jstr(r.j, "state"), "submitted") == 0);
    CHECK(f, json_array_size(json_object_get(r.j, "versions")) == 3);
    v = json_array_get(json_object_get(r.j, "versions"), 2);
    CHECK(f, strcmp(jstr(json_object_get(v, "sections"), "detection"), "saw a mail from x") == 0);
    CHECK(f, json_is_true(json_object_get(v, "submitted")));
    CHECK(f, strcmp(jstr(v, "author"), "m1") == 0);
    /* Team 2 cannot reach it even through its own path. */
    snprintf(path, sizeof path, "/api/teams/2/reports/%lld", (long long)rid);
    http(f, &m2, "GET", path, NULL, 0, &r);
    CHECK_STATUS(f, &r, 404);
    http(f, &in, "POST", strcat(path, "/reviews"), "{\"version\":3,\"decision\":\"comment\"}", 1,
         &r);
    CHECK_STATUS(f, &r, 404);

    /* Review: validation, return, resubmit, accept. */
    snprintf(path, sizeof path, "/api/teams/1/reports/%lld/reviews", (long long)rid);
    http(f, &in, "POST", path, "{\"version\":3,\"grades\":{\"detection:0\":6},\"decision\":\"return\"}",
         1, &r);
    CHECK_STATUS(f, &r, 400);
    http(f, &in, "POST", path, "{\"version\":3,\"grades\":{\"nosuch:0\":1},\"decision\":\"return\"}",
         1, &r);
    CHECK_STATUS(f, &r, 400);
    http(f, &in, "POST", path, "{\"version\":3,\"grades\":{\"reporting:1\":1},\"decision\":\"return\"}",
         1, &r);
    CHECK_STATUS(f, &r, 400);
    http(f, &in, "POST", path, "{\"version\":3,\"decision\":\"maybe\"}", 1, &r);
    CHECK_STATUS(f, &r, 400);
    http(f, &in, "POST", path,
         "{\"version\":3,\"comments\":[{\"section\":\"detection\",\"quote\":\"saw a mail\","
         "\"text\":\"which host?\"}],\"grades\":{\"detection:0\":4,\"response:1\":3},"
         "\"decision\":\"return\"}",
         1, &r);
    CHECK_STATUS(f, &r, 201);
    CHECK(f, jint(r.j, "id") > 0);
    snprintf(path, sizeof path, "/api/teams/1/reports/%lld", (long long)rid);
    http(f, &m1, "GET", path, NULL, 0, &r);
    CHECK(f, strcmp(jstr(r.j, "state"), "returned") == 0);
    v = json_array_get(json_object_get(r.j, "reviews"), 0);
    CHECK(f, strcmp(jstr(v, "decision"), "return") == 0);
    CHECK(f, jint(json_object_get(v, "grades"), "detection:0") == 4);
    CHECK(f, strcmp(jstr(json_array_get(json_object_get(v, "comments"), 0), "text"),
                    "which host?") == 0);
    http(f, &m1, "PUT", path,
         "{\"base_version\":3,\"sections\":{\"detection\":\"pc1 opened it\"},\"submit\":true}", 1,
         &r);
    CHECK_STATUS(f, &r, 200);
    CHECK(f, jint(r.j, "version") == 4);
    snprintf(path, sizeof path, "/api/teams/1/reports/%lld/reviews", (long long)rid);
    http(f, &in, "POST", path, "{\"version\":3,\"decision\":\"accept\"}", 1, &r);
    CHECK_STATUS(f, &r, 409);
    http(f, &in, "POST", path,
         "{\"version\":4,\"grades\":{\"detection:0\":5,\"response:1\":3},\"decision\":\"accept\"}",
         1, &r);
    CHECK_STATUS(f, &r, 201);
    snprintf(path, sizeof path, "/api/teams/1/reports/%lld", (long long)rid);
    http(f, &m1, "GET", path, NULL, 0, &r);
    CHECK(f, strcmp(jstr(r.j, "state"), "accepted") == 0);
    http(f, &m1, "PUT", path, "{\"base_version\":4,\"sections\":{}}", 1, &r);
    CHECK_STATUS(f, &r, 409);
    http(f, &m1, "GET", "/api/teams/1/reports", NULL, 0, &r);
    CHECK(f, json_array_size(r.j) == 2);
    CHECK(f, jint(json_array_get(r.j, 0), "current_version") == 4);

    /* Inbox and responses. */
    http(f, &m1, "GET", "/api/teams/1/inbox", NULL, 0, &r);
    CHECK_STATUS(f, &r, 200);
    CHECK(f, json_array_size(r.j) == 1);
    v = json_array_get(r.j, 0);
    CHECK(f, jint(v, "id") == f->inbox1);
    CHECK(f, strcmp(jstr(v, "subject"), "Are you investigating a data leak?") == 0);
    CHECK(f, jint(v, "points") == 10);
    snprintf(path, sizeof path, "/api/teams/1/inbox/%lld/responses", (long long)f->inbox2);
    http(f, &m1, "POST", path, "{\"text\":\"hi\"}", 1, &r);
    CHECK_STATUS(f, &r, 404);
    snprintf(path, sizeof path, "/api/teams/1/inbox/%lld/responses", (long long)f->inbox1);
    http(f, &m1, "POST", path, "{\"text\":\"\"}", 1, &r);
    CHECK_STATUS(f, &r, 400);
    http(f, &m1, "POST", path, "{\"text\":\"No comment at this time.\"}", 1, &r);
    CHECK_STATUS(f, &r, 201);
    resp_id = jint(r.j, "id");
    CHECK(f, resp_id > 0);
    snprintf(path, sizeof path, "/api/responses/%lld/grade", (long long)resp_id);
    http(f, &in, "POST", path, "{\"points\":11}", 1, &r);
    CHECK_STATUS(f, &r, 400);
    http(f, &in, "POST", path, "{\"points\":8}", 1, &r);
    CHECK_STATUS(f, &r, 200);
    http(f, &in, "POST", "/api/responses/9999/grade", "{\"points\":1}", 1, &r);
    CHECK_STATUS(f, &r, 404);
    http(f, &m1, "GET", "/api/teams/1/inbox", NULL, 0, &r);
    v = json_array_get(json_object_get(json_array_get(r.j, 0), "responses"), 0);
    CHECK(f, jint(v, "id") == resp_id);
    CHECK(f, strcmp(jstr(v, "user"), "m1") == 0);
    CHECK(f, json_number_value(json_object_get(v, "points")) == 8);
    CHECK(f, strcmp(jstr(v, "grader"), "instr") == 0);

    /* Scores include the grades. */
    http(f, &m1, "GET", "/api/teams/1/score", NULL, 0, &r);
    CHECK_STATUS(f, &r, 200);
    v = json_object_get(r.j, "axes");
    CHECK(f, json_number_value(json_object_get(json_object_get(v, "reports"), "points")) > 0);
    CHECK(f, json_number_value(json_object_get(json_object_get(v, "injects"), "points")) > 0);
    /* A member sees only step id, detected, finding and points of the
     * script before the end; the instructor sees it all. */
    v = json_array_get(json_object_get(r.j, "steps"), 0);
    CHECK(f, v && json_object_size(v) == 4 && strcmp(jstr(v, "step"), "phish") == 0);
    CHECK(f, json_object_get(v, "outcome") == NULL && json_object_get(v, "points") != NULL);
    http(f, &in, "GET", "/api/teams/1/score", NULL, 0, &r);
    v = json_array_get(json_object_get(r.j, "steps"), 0);
    CHECK(f, strcmp(jstr(v, "outcome"), "succeeded") == 0);
    http(f, &m2, "GET", "/api/teams/2/score", NULL, 0, &r);
    CHECK_STATUS(f, &r, 200);
    v = json_object_get(r.j, "axes");
    CHECK(f, json_number_value(json_object_get(json_object_get(v, "reports"), "points")) == 0);
    http(f, &obs, "GET", "/api/scoreboard", NULL, 0, &r);
    CHECK_STATUS(f, &r, 200);
    CHECK(f, json_array_size(r.j) == 2);
    CHECK(f, json_number_value(json_object_get(json_array_get(r.j, 0), "total")) >
                 json_number_value(json_object_get(json_array_get(r.j, 1), "total")));
    CHECK(f, strcmp(jstr(json_array_get(r.j, 1), "name"), "Team 2") == 0 ||
                 jstr(json_array_get(r.j, 1), "name")[0]);
    /* The scoreboard is computed once and served again until something
     * happens; then it is computed anew. */
    {
        int calls = atomic_load(&f->score_calls);
        char *first = json_dumps(r.j, JSON_COMPACT);
        http(f, &in, "GET", "/api/scoreboard", NULL, 0, &r);
        CHECK_STATUS(f, &r, 200);
        CHECK(f, atomic_load(&f->score_calls) == calls);
        char *again = json_dumps(r.j, JSON_COMPACT);
        CHECK(f, first && again && strcmp(first, again) == 0);
        free(first);
        free(again);
        http(f, &in, "POST", "/api/teams/1/reports",
             "{\"title\":\"board\",\"sections\":{\"detection\":\"x\"}}", 1, &r);
        CHECK_STATUS(f, &r, 201);
        http(f, &obs, "GET", "/api/scoreboard", NULL, 0, &r);
        CHECK_STATUS(f, &r, 200);
        CHECK(f, atomic_load(&f->score_calls) == calls + 2);
    }
    http(f, &m1, "GET", "/api/teams/1/scores/series", NULL, 0, &r);
    CHECK_STATUS(f, &r, 200);
    CHECK(f, json_array_size(r.j) == 1 &&
                 json_number_value(json_object_get(json_array_get(r.j, 0), "total")) == 12.5);

    /* Team events: what happened to team 1, in order, none of team 2's. */
    http(f, &m1, "GET", "/api/teams/1/events", NULL, 0, &r);
    CHECK_STATUS(f, &r, 200);
    {
        size_t i;
        int kinds = 0;
        json_int_t last = 0;
        json_array_foreach(r.j, i, v) {
            const char *t = jstr(v, "type");
            kinds |= strcmp(t, "finding") == 0 ? 1 : strcmp(t, "report") == 0 ? 2
                     : strcmp(t, "review") == 0 ? 4 : strcmp(t, "response") == 0 ? 8
                     : strcmp(t, "inject") == 0 ? 16 : 0;
            CHECK(f, jint(v, "seq") > last);
            last = jint(v, "seq");
        }
        CHECK(f, kinds == 31);
        snprintf(path, sizeof path, "/api/teams/1/events?since=%lld", (long long)last);
        http(f, &m1, "GET", path, NULL, 0, &r);
        CHECK(f, json_array_size(r.j) == 0);
    }

    /* Users. */
    http(f, &in, "GET", "/api/users", NULL, 0, &r);
    CHECK_STATUS(f, &r, 200);
    CHECK(f, json_array_size(r.j) == 5);
    CHECK(f, json_object_get(json_array_get(r.j, 0), "pw_hash") == NULL);
    http(f, &in, "POST", "/api/users", "{\"name\":\"newbie\",\"role\":\"member\",\"team\":2}", 1,
         &r);
    CHECK_STATUS(f, &r, 201);
    CHECK(f, strlen(jstr(r.j, "password")) == AUTH_GENPW_LEN);
    CHECK(f, jint(json_object_get(r.j, "user"), "team") == 2);
    snprintf(body, sizeof body, "%s", jstr(r.j, "password"));
    {
        resp r2 = { 0 };
        CHECK(f, login(f, "newbie", body, &nb, &r2) == 0);
        CHECK(f, jint(json_object_get(r2.j, "user"), "team") == 2);
        resp_clear(&r2);
    }
    http(f, &in, "POST", "/api/users", "{\"name\":\"newbie\",\"role\":\"member\",\"team\":2}", 1,
         &r);
    CHECK_STATUS(f, &r, 409);
    http(f, &in, "POST", "/api/users", "{\"name\":\"x\",\"role\":\"member\",\"team\":3}", 1, &r);
    CHECK_STATUS(f, &r, 400);
    http(f, &in, "POST", "/api/users",
         "{\"name\":\"watcher\",\"role\":\"observer\",\"password\":\"long-enough-pw\"}", 1, &r);
    CHECK_STATUS(f, &r, 201);
    CHECK(f, json_object_get(r.j, "password") == NULL);
    {
        resp r2 = { 0 };
        CHECK(f, login(f, "watcher", "long-enough-pw", &nb, &r2) == 0);
        resp_clear(&r2);
    }
    resp_clear(&r);
}

static void test_work(void **state)
{
    fix f;
    (void)state;
    fix_setup(&f);
    fix_run(&f, c_work);
}

/* ---- events WebSocket ---- */

static void c_events(fix *f)
{
    sess m1, m2, in, obs;
    resp r = { 0 }, r2 = { 0 };
    cbuf b1 = { 0 }, bo = { 0 };
    int fd1, fdo;
    json_t *j;

    login_ok(f, "m1", &m1);
    login_ok(f, "m2", &m2);
    login_ok(f, "instr", &in);
    login_ok(f, "obs", &obs);
    fd1 = ws_open(f, NULL, "/api/events", &b1, &r);
    CHECK_STATUS(f, &r, 401);
    close(fd1);
    b1.len = 0;
    fd1 = ws_open(f, &m1, "/api/events", &b1, &r);
    CHECK_STATUS(f, &r, 101);
    fdo = ws_open(f, &obs, "/api/events", &bo, &r);
    CHECK_STATUS(f, &r, 101);

    http(f, &m2, "POST", "/api/teams/2/findings",
         "{\"hosts\":[\"pc1\"],\"description\":\"team two\"}", 1, &r2);
    CHECK_STATUS(f, &r2, 201);
    http(f, &in, "POST", "/api/control", "{\"cmd\":\"start\",\"team\":1}", 1, &r2);
    CHECK_STATUS(f, &r2, 200);
    http(f, &m1, "POST", "/api/teams/1/findings",
         "{\"hosts\":[\"pc1\"],\"description\":\"team one\"}", 1, &r2);
    CHECK_STATUS(f, &r2, 201);
    http(f, &m1, "POST", "/api/teams/1/findings",
         "{\"hosts\":[\"mail\"],\"description\":\"marker\"}", 1, &r2);
    CHECK_STATUS(f, &r2, 201);

    /* The member sees only its two findings, in order. */
    j = ws_next_json(fd1, &b1);
    CHECK(f, j && strcmp(jstr(j, "type"), "finding") == 0 && jint(j, "team") == 1);
    CHECK(f, strcmp(jstr(json_object_get(j, "data"), "description"), "team one") == 0);
    CHECK(f, jint(j, "ts_ms") > 0);
    json_decref(j);
    j = ws_next_json(fd1, &b1);
    CHECK(f, j && strcmp(jstr(json_object_get(j, "data"), "description"), "marker") == 0);
    json_decref(j);

    /* The observer sees everything: team 2's finding, the control's
     * timeline event, the instructors-only inject, then team 1's. */
    {
        const char *want[] = { "finding", "inject", "timeline", "finding", "finding" };
        for (size_t i = 0; i < 5; i++) {
            j = ws_next_json(fdo, &bo);
            if (!(j && strcmp(jstr(j, "type"), want[i]) == 0) && !f->fail[0])
                snprintf(f->fail, sizeof f->fail, "observer event %zu: %s, wanted %s", i,
                         j ? jstr(j, "type") : "none", want[i]);
            json_decref(j);
        }
    }
    /* Closing from the client side ends the subscription cleanly. */
    ws_send(fd1, 8, "\x03\xe8", 2);
    close(fd1);
    close(fdo);
    free(b1.d);
    free(bo.d);
    resp_clear(&r);
    resp_clear(&r2);
}

static void test_events(void **state)
{
    fix f;
    (void)state;
    fix_setup(&f);
    fix_run(&f, c_events);
}

/* A subscriber still connected when the API is freed is closed by it. */
static void c_events_open(fix *f)
{
    sess m1;
    resp r = { 0 };
    cbuf b = { 0 };
    int fd;
    login_ok(f, "m1", &m1);
    fd = ws_open(f, &m1, "/api/events", &b, &r);
    CHECK_STATUS(f, &r, 101);
    /* The console of a team's host without a console hub: 503. */
    http(f, &m1, "GET", "/api/teams/1/hosts/mail/console", NULL, 0, &r);
    CHECK_STATUS(f, &r, 503);
    http(f, &m1, "GET", "/api/teams/1/hosts/nohost/console", NULL, 0, &r);
    CHECK_STATUS(f, &r, 404);
    close(fd);
    free(b.d);
    resp_clear(&r);
}

static void test_events_shutdown(void **state)
{
    fix f;
    (void)state;
    fix_setup(&f);
    fix_run(&f, c_events_open);
}

/* The console WebSocket: attached to the hub, and closed with 1011 when
 * the guest's console cannot be opened (test:///default has none). */
static void c_console(fix *f)
{
    sess m1, in;
    resp r = { 0 };
    cbuf b = { 0 };
    char *d = NULL;
    size_t l = 0;
    int fd, op;
    login_ok(f, "m1", &m1);
    login_ok(f, "instr", &in);
    fd = ws_open(f, &m1, "/api/teams/1/hosts/mail/console", &b, &r);
    CHECK_STATUS(f, &r, 101);
    op = ws_read(fd, &b, &d, &l);
    CHECK(f, op == 8 && l >= 2);
    if (op == 8 && l >= 2) {
        CHECK(f, ((unsigned char)d[0] << 8 | (unsigned char)d[1]) == 1011);
        /* The reason says why, so the viewer's status line can too. */
        CHECK(f, l > 2 + strlen("console unavailable: ") &&
                     memcmp(d + 2, "console unavailable: ", strlen("console unavailable: ")) == 0);
    }
    free(d);
    ws_send(fd, 8, "\x03\xf3", 2);
    close(fd);
    b.len = 0;
    /* A team member of another team and observers never get there. */
    fd = ws_open(f, &in, "/api/teams/2/hosts/mail/console", &b, &r);
    CHECK_STATUS(f, &r, 101);
    close(fd);
    free(b.d);
    resp_clear(&r);
}

static void test_console(void **state)
{
    fix f;
    virt_err err = { 0 };
    (void)state;
    fix_setup(&f);
    assert_int_equal(virt_events_init(&err), 0);
    f.conn = virt_open("test:///default", &err);
    assert_non_null(f.conn);
    assert_int_equal(virt_events_start(f.conn, NULL, NULL, &err), 0);
    f.hub = console_hub_new(&f.loop, f.conn);
    assert_non_null(f.hub);
    fix_run(&f, c_console);
}

/* ---- the self-analysis ---- */

/* A PUT body of `n` items, each "what" `what_len` bytes of 'x' (malloc'd). */
static char *analysis_body(const char *const *steps, size_t n, const char *cause,
                           size_t what_len)
{
    json_t *items = json_array(), *b;
    char *what = malloc(what_len + 1), *out;
    if (what == NULL || items == NULL)
        abort();
    memset(what, 'x', what_len);
    what[what_len] = '\0';
    for (size_t i = 0; i < n; i++)
        json_array_append_new(items, json_pack("{s:s, s:s, s:s, s:s}", "step", steps[i],
                                               "cause", cause, "what", what, "improve",
                                               "a playbook for it"));
    b = json_pack("{s:o}", "items", items);
    out = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    free(what);
    if (out == NULL)
        abort();
    return out;
}

static void c_analysis(fix *f)
{
    static const char *const two[] = { "phish", "beacon" };
    static const char *const dup[] = { "phish", "phish" };
    static const char *const bad[] = { "no-such-step" };
    const char *many[201];
    sess m1, m2, in, obs;
    resp r = { 0 };
    json_t *it;
    char *body, *huge;
    size_t n;
    login_ok(f, "m1", &m1);
    login_ok(f, "m2", &m2);
    login_ok(f, "instr", &in);
    login_ok(f, "obs", &obs);

    /* None yet: 404 for the team, an empty aggregate. */
    http(f, &m1, "GET", "/api/teams/1/analysis", NULL, 0, &r);
    CHECK_STATUS(f, &r, 404);
    CHECK(f, strcmp(err_code(&r), "not_found") == 0);
    http(f, &in, "GET", "/api/analyses", NULL, 0, &r);
    CHECK_STATUS(f, &r, 200);
    CHECK(f, json_is_array(r.j) && json_array_size(r.j) == 0);

    /* A member writes its team's; the answer is the stored document. */
    body = analysis_body(two, 2, "plan", 10);
    http(f, &m1, "PUT", "/api/teams/1/analysis", body, 1, &r);
    free(body);
    CHECK_STATUS(f, &r, 200);
    CHECK(f, jint(r.j, "team") == 1);
    CHECK(f, strcmp(jstr(r.j, "author"), "m1") == 0);
    CHECK(f, jint(r.j, "updated_ms") > 1600000000000LL);
    CHECK(f, json_array_size(json_object_get(r.j, "items")) == 2);
    it = json_array_get(json_object_get(r.j, "items"), 1);
    CHECK(f, strcmp(jstr(it, "step"), "beacon") == 0 && strcmp(jstr(it, "cause"), "plan") == 0 &&
                 strcmp(jstr(it, "what"), "xxxxxxxxxx") == 0 &&
                 strcmp(jstr(it, "improve"), "a playbook for it") == 0);

    /* Read back by the team, an observer and the instructor alike. */
    http(f, &m1, "GET", "/api/teams/1/analysis", NULL, 0, &r);
    CHECK_STATUS(f, &r, 200);
    CHECK(f, strcmp(jstr(r.j, "author"), "m1") == 0);
    CHECK(f, strcmp(jstr(json_array_get(json_object_get(r.j, "items"), 0), "step"), "phish") == 0);
    http(f, &obs, "GET", "/api/teams/1/analysis", NULL, 0, &r);
    CHECK_STATUS(f, &r, 200);
    CHECK(f, json_array_size(json_object_get(r.j, "items")) == 2);
    /* Team 2 has none; team 1's is not visible through it. */
    http(f, &m2, "GET", "/api/teams/2/analysis", NULL, 0, &r);
    CHECK_STATUS(f, &r, 404);

    /* Only the fields of an item are kept; the UI's "team" is accepted
     * when it is the path's; absent or null texts are empty. */
    http(f, &m2, "PUT", "/api/teams/2/analysis",
         "{\"team\":2,\"items\":[{\"step\":\"exfil\",\"cause\":\"doing\",\"what\":null,"
         "\"extra\":\"dropped\"}]}", 1, &r);
    CHECK_STATUS(f, &r, 200);
    it = json_array_get(json_object_get(r.j, "items"), 0);
    CHECK(f, json_object_size(it) == 4 && strcmp(jstr(it, "what"), "") == 0 &&
                 strcmp(jstr(it, "improve"), "") == 0 && json_object_get(it, "extra") == NULL);
    http(f, &m2, "PUT", "/api/teams/2/analysis", "{\"team\":1,\"items\":[]}", 1, &r);
    CHECK_STATUS(f, &r, 400);
    CHECK(f, strstr(jstr(json_object_get(r.j, "error"), "message"), "team") != NULL);

    /* The instructor may write any team's; a PUT replaces the whole. */
    body = analysis_body(two, 1, "unknown", 0);
    http(f, &in, "PUT", "/api/teams/1/analysis", body, 1, &r);
    free(body);
    CHECK_STATUS(f, &r, 200);
    http(f, &m1, "GET", "/api/teams/1/analysis", NULL, 0, &r);
    CHECK(f, json_array_size(json_object_get(r.j, "items")) == 1);
    CHECK(f, strcmp(jstr(json_array_get(json_object_get(r.j, "items"), 0), "cause"),
                    "unknown") == 0);
    CHECK(f, strcmp(jstr(r.j, "author"), "instr") == 0);

    /* The aggregate: every team's, by team. */
    http(f, &obs, "GET", "/api/analyses", NULL, 0, &r);
    CHECK_STATUS(f, &r, 200);
    CHECK(f, json_array_size(r.j) == 2);
    CHECK(f, jint(json_array_get(r.j, 0), "team") == 1 &&
                 jint(json_array_get(r.j, 1), "team") == 2);
    CHECK(f, strcmp(jstr(json_array_get(json_object_get(json_array_get(r.j, 1), "items"), 0),
                         "step"), "exfil") == 0);
    CHECK(f, strcmp(jstr(json_array_get(r.j, 1), "author"), "m2") == 0);
    http(f, &in, "GET", "/api/analyses", NULL, 0, &r);
    CHECK_STATUS(f, &r, 200);

    /* Validation: each rule, with the item it is about. */
    http(f, &m1, "PUT", "/api/teams/1/analysis", "[]", 1, &r);
    CHECK_STATUS(f, &r, 400);
    http(f, &m1, "PUT", "/api/teams/1/analysis", "{\"items\":{}}", 1, &r);
    CHECK_STATUS(f, &r, 400);
    http(f, &m1, "PUT", "/api/teams/1/analysis", "{nope", 1, &r);
    CHECK_STATUS(f, &r, 400);
    body = analysis_body(bad, 1, "plan", 1);
    http(f, &m1, "PUT", "/api/teams/1/analysis", body, 1, &r);
    free(body);
    CHECK_STATUS(f, &r, 400);
    CHECK(f, strstr(jstr(json_object_get(r.j, "error"), "message"), "items[0].step") != NULL);
    body = analysis_body(dup, 2, "plan", 1);
    http(f, &m1, "PUT", "/api/teams/1/analysis", body, 1, &r);
    free(body);
    CHECK_STATUS(f, &r, 400);
    CHECK(f, strstr(jstr(json_object_get(r.j, "error"), "message"), "items[1].step") != NULL);
    body = analysis_body(two, 2, "luck", 1);
    http(f, &m1, "PUT", "/api/teams/1/analysis", body, 1, &r);
    free(body);
    CHECK_STATUS(f, &r, 400);
    CHECK(f, strstr(jstr(json_object_get(r.j, "error"), "message"), "items[0].cause") != NULL);
    http(f, &m1, "PUT", "/api/teams/1/analysis",
         "{\"items\":[{\"step\":\"phish\",\"cause\":null}]}", 1, &r);
    CHECK_STATUS(f, &r, 400);
    http(f, &m1, "PUT", "/api/teams/1/analysis",
         "{\"items\":[{\"step\":\"phish\",\"cause\":\"plan\",\"improve\":7}]}", 1, &r);
    CHECK_STATUS(f, &r, 400);
    CHECK(f, strstr(jstr(json_object_get(r.j, "error"), "message"), "items[0].improve") != NULL);
    http(f, &m1, "PUT", "/api/teams/1/analysis", "{\"items\":[\"phish\"]}", 1, &r);
    CHECK_STATUS(f, &r, 400);
    /* 8 KiB of text is the most; one byte more is refused. */
    body = analysis_body(two, 2, "doing", 8192);
    http(f, &m1, "PUT", "/api/teams/1/analysis", body, 1, &r);
    free(body);
    CHECK_STATUS(f, &r, 200);
    CHECK(f, strlen(jstr(json_array_get(json_object_get(r.j, "items"), 0), "what")) == 8192);
    body = analysis_body(two, 2, "doing", 8193);
    http(f, &m1, "PUT", "/api/teams/1/analysis", body, 1, &r);
    free(body);
    CHECK_STATUS(f, &r, 400);
    CHECK(f, strstr(jstr(json_object_get(r.j, "error"), "message"), "items[0].what") != NULL);
    /* At most 200 items. */
    for (n = 0; n < 201; n++)
        many[n] = "phish";
    body = analysis_body(many, 201, "plan", 0);
    http(f, &m1, "PUT", "/api/teams/1/analysis", body, 1, &r);
    free(body);
    CHECK_STATUS(f, &r, 400);
    CHECK(f, strstr(jstr(json_object_get(r.j, "error"), "message"), "at most 200") != NULL);
    /* A body beyond the route's limit. */
    n = 4u * 1024 * 1024 + 1;
    huge = malloc(n + 1);
    CHECK(f, huge != NULL);
    if (huge) {
        memset(huge, ' ', n);
        huge[0] = '{';
        huge[n - 1] = '}';
        huge[n] = '\0';
        http(f, &m1, "PUT", "/api/teams/1/analysis", huge, 1, &r);
        CHECK_STATUS(f, &r, 413);
        free(huge);
    }
    /* Nothing invalid was stored: the 8 KiB save is the last one. */
    http(f, &m1, "GET", "/api/teams/1/analysis", NULL, 0, &r);
    CHECK_STATUS(f, &r, 200);
    CHECK(f, strcmp(jstr(json_array_get(json_object_get(r.j, "items"), 1), "cause"), "doing") ==
                 0);
    CHECK(f, strcmp(jstr(r.j, "author"), "m1") == 0);
    /* A team that does not exist: 404 for the instructor. */
    http(f, &in, "PUT", "/api/teams/3/analysis", "{\"items\":[]}", 1, &r);
    CHECK_STATUS(f, &r, 404);
    resp_clear(&r);
}

static void test_analysis(void **state)
{
    fix f;
    (void)state;
    fix_setup(&f);
    fix_run(&f, c_analysis);
}

/* ---- the command line through the API ---- */

typedef struct minted {
    int done, rc;
    char name[32];
} minted;

/* What `cyrange serve` does: a session for the CLI in a root-only file. */
static void on_minted(const auth_result *res, void *opaque)
{
    fix *f = ((void **)opaque)[0];
    minted *m = ((void **)opaque)[1];
    char path[256];
    m->done = 1;
    m->rc = res->rc;
    if (res->rc != AUTH_OK)
        return;
    snprintf(m->name, sizeof m->name, "%s", json_string_value(json_object_get(res->user, "name")));
    snprintf(path, sizeof path, "%s/apitest", f->tmp);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/apitest/api.json", f->tmp);
    json_t *doc = json_pack("{s:s, s:i, s:s, s:s}", "host", "127.0.0.1", "port", f->port,
                            "token", res->token, "csrf", res->csrf);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    char *text = json_dumps(doc, 0);
    if (fd >= 0 && text)
        m->rc = write(fd, text, strlen(text)) == (ssize_t)strlen(text) ? 0 : -1;
    if (fd >= 0)
        close(fd);
    free(text);
    json_decref(doc);
}

static void c_cli(fix *f)
{
    char err[512], path[256];
    json_t *req, *reply = NULL;
    int unreachable = 0;
    apiclient *ac = apiclient_open(f->tmp, "apitest", err, sizeof err);

    CHECK(f, ac != NULL);
    if (ac == NULL)
        return;
    /* Steering goes to POST /api/control. */
    req = json_pack("{s:s, s:i}", "cmd", "pause", "team", 1);
    CHECK(f, cli_api_control(ac, req, &reply, &unreachable, err, sizeof err) == 0);
    if (reply == NULL)
        fprintf(stderr, "cli: %s\n", err);
    CHECK(f, reply && json_is_true(json_object_get(reply, "ok")) && !unreachable);
    CHECK(f, strcmp(f->last_cmd, "pause") == 0);
    json_decref(req);
    json_decref(reply);
    /* A refused command carries the server's message. */
    req = json_pack("{s:s, s:i, s:s}", "cmd", "skip", "team", 7, "step", "phish");
    CHECK(f, cli_api_control(ac, req, &reply, &unreachable, err, sizeof err) == 0);
    CHECK(f, reply == NULL && strstr(err, "HTTP 400") && strstr(err, "team"));
    json_decref(req);
    /* Timeline in the control socket's shape (seconds). */
    req = json_pack("{s:s}", "cmd", "status");
    CHECK(f, cli_api_control(ac, req, &reply, &unreachable, err, sizeof err) == 0);
    {
        json_t *t = json_array_get(json_object_get(reply, "teams"), 0);
        json_t *st = json_array_get(json_object_get(t, "steps"), 0);
        CHECK(f, json_number_value(json_object_get(t, "elapsed_s")) == 12.5);
        CHECK(f, json_number_value(json_object_get(st, "due_s")) == 60.0);
        CHECK(f, strcmp(json_string_value(json_object_get(st, "id")), "phish") == 0);
    }
    json_decref(req);
    json_decref(reply);
    req = json_pack("{s:s}", "cmd", "guests");
    CHECK(f, cli_api_control(ac, req, &reply, &unreachable, err, sizeof err) == 0);
    CHECK(f, json_array_size(json_object_get(reply, "guests")) == 2);
    json_decref(req);
    json_decref(reply);
    /* Findings: filed, listed, relabelled. */
    req = json_pack("{s:s, s:i, s:{s:[s], s:s, s:s}}", "cmd", "finding", "team", 1, "finding",
                    "hosts", "pc1", "technique", "T1566.001", "description", "from the CLI");
    CHECK(f, cli_api_control(ac, req, &reply, &unreachable, err, sizeof err) == 0);
    json_int_t id = json_integer_value(json_object_get(reply, "id"));
    CHECK(f, id > 0);
    json_decref(req);
    json_decref(reply);
    req = json_pack("{s:s, s:i}", "cmd", "findings", "team", 1);
    CHECK(f, cli_api_control(ac, req, &reply, &unreachable, err, sizeof err) == 0);
    CHECK(f, json_array_size(json_object_get(reply, "findings")) >= 1);
    json_decref(req);
    json_decref(reply);
    req = json_pack("{s:s, s:I, s:s}", "cmd", "label", "finding", id, "label", "benign");
    CHECK(f, cli_api_control(ac, req, &reply, &unreachable, err, sizeof err) == 0);
    CHECK(f, reply && json_is_true(json_object_get(reply, "ok")));
    json_decref(req);
    json_decref(reply);
    /* Every team's score. */
    req = json_pack("{s:s, s:i}", "cmd", "score", "team", 0);
    CHECK(f, cli_api_control(ac, req, &reply, &unreachable, err, sizeof err) == 0);
    CHECK(f, json_array_size(json_object_get(reply, "teams")) == 2);
    json_decref(req);
    json_decref(reply);
    /* A guest request has no route: the control socket takes it. */
    req = json_pack("{s:s}", "cmd", "guest");
    CHECK(f, cli_api_control(ac, req, &reply, &unreachable, err, sizeof err) == -1);
    json_decref(req);
    apiclient_free(ac);

    /* A file anyone could have written is refused. */
    snprintf(path, sizeof path, "%s/apitest/api.json", f->tmp);
    CHECK(f, chmod(path, 0644) == 0);
    CHECK(f, apiclient_open(f->tmp, "apitest", err, sizeof err) == NULL && strstr(err, "0600"));
    CHECK(f, chmod(path, 0600) == 0);
    /* No file: no API (and no error). */
    CHECK(f, apiclient_open(f->tmp, "other", err, sizeof err) == NULL && err[0] == '\0');
}

static void test_cli(void **state)
{
    fix f;
    minted m = { 0 };
    void *both[2];
    (void)state;
    fix_setup(&f);
    both[0] = &f;
    both[1] = &m;
    assert_int_equal(auth_session_mint_async(f.au, AUTH_ROLE_OBSERVER, on_minted, both), 0);
    while (!m.done)
        uv_run(&f.loop, UV_RUN_ONCE);
    assert_int_equal(m.rc, 0);
    assert_string_equal(m.name, "obs");
    m.done = 0;
    assert_int_equal(auth_session_mint_async(f.au, AUTH_ROLE_INSTRUCTOR, on_minted, both), 0);
    while (!m.done)
        uv_run(&f.loop, UV_RUN_ONCE);
    assert_int_equal(m.rc, 0);
    assert_string_equal(m.name, "instr");
    fix_run(&f, c_cli);
}

/* ---- the document matches the routes ---- */

static void test_openapi_matches_routes(void **state)
{
    fix f;
    json_t *doc, *routes, *paths, *ops, *rt;
    json_error_t je;
    const char *path, *m;
    size_t i, n_doc = 0;
    (void)state;
    fix_setup(&f);
    routes = api_routes(f.a);
    doc = json_load_file(CYRANGE_SRCDIR "/web/openapi.json", 0, &je);
    if (doc == NULL)
        fail_msg("web/openapi.json:%d:%d: %s", je.line, je.column, je.text);
    assert_string_equal(json_string_value(json_object_get(doc, "openapi")), "3.0.3");
    paths = json_object_get(doc, "paths");
    /* Every route is documented... */
    json_array_foreach(routes, i, rt) {
        char lower[8];
        size_t k;
        m = json_string_value(json_object_get(rt, "method"));
        for (k = 0; k < sizeof lower - 1 && m[k]; k++)
            lower[k] = (char)(m[k] | 0x20);
        lower[k] = '\0';
        path = json_string_value(json_object_get(rt, "path"));
        if (json_object_get(json_object_get(paths, path), lower) == NULL)
            fail_msg("%s %s is not in web/openapi.json", m, path);
        if (json_object_get(json_object_get(json_object_get(paths, path), lower), "responses") ==
            NULL)
            fail_msg("%s %s has no responses in web/openapi.json", m, path);
    }
    /* ... and nothing else is. */
    json_object_foreach(paths, path, ops) {
        const char *meth;
        json_t *o;
        json_object_foreach(ops, meth, o) {
            int found = 0;
            (void)o;
            if (strcmp(meth, "parameters") == 0)
                continue;
            n_doc++;
            json_array_foreach(routes, i, rt)
                found |= strcasecmp(json_string_value(json_object_get(rt, "method")), meth) ==
                             0 &&
                         strcmp(json_string_value(json_object_get(rt, "path")), path) == 0;
            if (!found)
                fail_msg("web/openapi.json documents %s %s, which is no route", meth, path);
        }
    }
    assert_int_equal(n_doc, json_array_size(routes));
    json_decref(doc);
    json_decref(routes);
    g_policy.routes = NULL;
    fix_run(&f, c_events_open);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openapi_matches_routes),
        cmocka_unit_test(test_session),
        cmocka_unit_test(test_policy),
        cmocka_unit_test(test_range),
        cmocka_unit_test(test_work),
        cmocka_unit_test(test_analysis),
        cmocka_unit_test(test_cli),
        cmocka_unit_test(test_events),
        cmocka_unit_test(test_events_shutdown),
        cmocka_unit_test(test_console),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
