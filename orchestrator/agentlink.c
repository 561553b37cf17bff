#include "agentlink.h"

#include <stdlib.h>
#include <string.h>

#define RETRY_MS 250
#define HELLO_EVERY_MS 1000

typedef struct pending {
    struct pending *next;
    long long id;
    uint64_t deadline;
    agentlink_reply_cb cb;
    void *opaque;
} pending;

/* One connection attempt owns its pipe; freed in the pipe's close cb. */
typedef struct conn {
    uv_pipe_t pipe;
    uv_connect_t req;
    agentlink *l;
} conn;

struct agentlink {
    uv_loop_t *loop;
    char *path;
    agentlink_cbs cbs;
    void *opaque;
    uv_timer_t timer;        /* retries, hello requests, request timeouts */
    conn *c;                 /* current connection, NULL when none */
    int connected;
    int hello_seen;
    int closing;
    int open_handles;        /* timer + conn pipes not yet closed */
    uint64_t next_retry;
    uint64_t next_hello;
    long long next_id;
    pending *pending;
    proto_reader *rd;
    void (*done)(void *);
    void *done_opaque;
};

static void maybe_free(agentlink *l)
{
    if (!l->closing || l->open_handles > 0)
        return;
    void (*done)(void *) = l->done;
    void *dop = l->done_opaque;
    proto_reader_free(l->rd);
    free(l->path);
    free(l);
    if (done)
        done(dop);
}

static void conn_closed(uv_handle_t *h)
{
    conn *c = h->data;
    agentlink *l = c->l;
    free(c);
    l->open_handles--;
    maybe_free(l);
}

static void fail_pending(agentlink *l, const char *why)
{
    pending *p = l->pending;
    l->pending = NULL;
    while (p) {
        pending *n = p->next;
        p->cb(l, NULL, why, p->opaque);
        free(p);
        p = n;
    }
}

static void drop_conn(agentlink *l, const char *why)
{
    conn *c = l->c;
    int was = l->connected;
    if (c == NULL)
        return;
    l->c = NULL;
    l->connected = 0;
    l->hello_seen = 0;
    uv_close((uv_handle_t *)&c->pipe, conn_closed);
    proto_reader_reset(l->rd);
    fail_pending(l, why);
    if (was && l->cbs.state && !l->closing)
        l->cbs.state(l, 0, l->opaque);
    l->next_retry = uv_now(l->loop) + RETRY_MS;
}

static void write_done(uv_write_t *w, int status)
{
    (void)status; /* a failed write shows up as a read error/EOF too */
    free(w->data);
    free(w);
}

static int send_line(agentlink *l, json_t *msg)
{
    proto_err perr;
    size_t len = 0;
    char *line = proto_line(msg, &len, &perr);
    uv_write_t *w;
    uv_buf_t buf;
    if (line == NULL || l->c == NULL)
        goto fail;
    w = malloc(sizeof(*w));
    if (w == NULL)
        goto fail;
    w->data = line;
    buf = uv_buf_init(line, (unsigned)len);
    if (uv_write(w, (uv_stream_t *)&l->c->pipe, &buf, 1, write_done) < 0) {
        free(w);
        goto fail;
    }
    return 0;
fail:
    free(line);
    return -1;
}

static void handle_line(agentlink *l, const char *line, size_t len)
{
    proto_msg m;
    proto_err perr;
    if (proto_parse(line, len, &m, &perr) < 0)
        return; /* a garbled line from a guest is ignored, never fatal */
    if (m.type == PROTO_T_HELLO) {
        l->hello_seen = 1;
        if (l->cbs.hello)
            l->cbs.hello(l, &m, l->opaque);
    } else if (m.type == PROTO_T_REPLY && m.has_id) {
        pending **pp = &l->pending;
        while (*pp && (*pp)->id != m.id)
            pp = &(*pp)->next;
        if (*pp) {
            pending *p = *pp;
            *pp = p->next;
            p->cb(l, &m, NULL, p->opaque);
            free(p);
        }
    } else if (m.type == PROTO_T_EVENT) {
        if (l->cbs.event)
            l->cbs.event(l, &m, l->opaque);
    }
    proto_msg_clear(&m);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(suggested);
    buf->len = buf->base ? suggested : 0;
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    conn *c = s->data;
    agentlink *l = c->l;
    if (n > 0 && l->c == c) {
        const char *line;
        size_t len;
        proto_err perr;
        proto_reader_feed(l->rd, buf->base, (size_t)n, &perr);
        while (l->c == c && proto_reader_next(l->rd, &line, &len) == 1)
            handle_line(l, line, len);
    } else if (n < 0 && l->c == c) {
        drop_conn(l, n == UV_EOF ? "channel closed" : uv_strerror((int)n));
    }
    free(buf->base);
}

static void connect_cb(uv_connect_t *req, int status)
{
    conn *c = req->data;
    agentlink *l = c->l;
    if (l->c != c)
        return; /* superseded or closing */
    if (status < 0 || l->closing) {
        l->c = NULL;
        uv_close((uv_handle_t *)&c->pipe, conn_closed);
        l->next_retry = uv_now(l->loop) + RETRY_MS;
        return;
    }
    l->connected = 1;
    l->next_hello = uv_now(l->loop);
    uv_read_start((uv_stream_t *)&c->pipe, alloc_cb, read_cb);
    if (l->cbs.state)
        l->cbs.state(l, 1, l->opaque);
}

static void try_connect(agentlink *l)
{
    conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    c->l = l;
    if (uv_pipe_init(l->loop, &c->pipe, 0) < 0) {
        free(c);
        return;
    }
    l->open_handles++;
    c->pipe.data = c;
    c->req.data = c;
    l->c = c;
    uv_pipe_connect(&c->req, &c->pipe, l->path, connect_cb);
}

static void tick(uv_timer_t *t)
{
    agentlink *l = t->data;
    uint64_t now = uv_now(l->loop);
    if (l->closing)
        return;
    if (l->c == NULL && now >= l->next_retry)
        try_connect(l);
    if (l->connected && !l->hello_seen && now >= l->next_hello) {
        /* The agent may have said hello before we connected: ask again. */
        proto_err perr;
        json_t *m = proto_build_hello_req(0, &perr);
        if (m) {
            send_line(l, m);
            json_decref(m);
        }
        l->next_hello = now + HELLO_EVERY_MS;
    }
    /* Expired requests. */
    pending **pp = &l->pending;
    while (*pp) {
        pending *p = *pp;
        if (now >= p->deadline) {
            *pp = p->next;
            p->cb(l, NULL, "timeout", p->opaque);
            free(p);
        } else {
            pp = &p->next;
        }
    }
}

agentlink *agentlink_new(uv_loop_t *loop, const char *path,
                         const agentlink_cbs *cbs, void *opaque)
{
    agentlink *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->loop = loop;
    l->path = strdup(path);
    l->rd = proto_reader_new(0);
    if (l->path == NULL || l->rd == NULL) {
        free(l->path);
        proto_reader_free(l->rd);
        free(l);
        return NULL;
    }
    if (cbs)
        l->cbs = *cbs;
    l->opaque = opaque;
    l->next_id = 1;
    uv_timer_init(loop, &l->timer);
    l->timer.data = l;
    l->open_handles = 1;
    return l;
}

int agentlink_start(agentlink *l)
{
    try_connect(l);
    return uv_timer_start(&l->timer, tick, 100, 100) < 0 ? -1 : 0;
}

int agentlink_request(agentlink *l, json_t *msg, int timeout_ms,
                      agentlink_reply_cb cb, void *opaque)
{
    pending *p = NULL;
    if (msg == NULL)
        return -1;
    if (!l->connected || l->closing)
        goto fail;
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        goto fail;
    p->id = l->next_id++;
    p->cb = cb;
    p->opaque = opaque;
    p->deadline = uv_now(l->loop) + (uint64_t)(timeout_ms > 0 ? timeout_ms : 10000);
    if (json_object_set_new(msg, "id", json_integer(p->id)) < 0 ||
        send_line(l, msg) < 0)
        goto fail;
    json_decref(msg);
    p->next = l->pending;
    l->pending = p;
    return 0;
fail:
    free(p);
    json_decref(msg);
    return -1;
}

int agentlink_connected(const agentlink *l)
{
    return l->connected;
}

int agentlink_has_hello(const agentlink *l)
{
    return l->hello_seen;
}

static void timer_closed(uv_handle_t *h)
{
    agentlink *l = h->data;
    l->open_handles--;
    maybe_free(l);
}

void agentlink_close(agentlink *l, void (*done)(void *opaque), void *opaque)
{
    if (l == NULL || l->closing)
        return;
    l->closing = 1;
    l->done = done;
    l->done_opaque = opaque;
    if (l->c) {
        conn *c = l->c;
        l->c = NULL;
        l->connected = 0;
        uv_close((uv_handle_t *)&c->pipe, conn_closed);
    }
    fail_pending(l, "closed");
    uv_close((uv_handle_t *)&l->timer, timer_closed);
}
