/* httpd — HTTP/1.1 on libuv with http-parser; see httpd.h. */
#include "httpd.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <http_parser.h>

#define RBUF_SIZE (64 * 1024)
/* Above this much queued output a connection stops taking new requests and
 * stops reading file chunks: the write queue stays bounded. */
#define OUT_HIGH (256 * 1024)
#define FILE_CHUNK (64 * 1024)
/* Unparsed input kept while a handler works; reading stops above it. */
#define IN_HIGH (64 * 1024)
#define MAX_HEADERS 100
/* After the last response of a connection the socket is shut down and
 * input drained this long, so the client reads the answer instead of a
 * reset. */
#define LINGER_MS 2000

typedef struct sbuf {
    char *p;
    size_t len;
    size_t cap;
    int oom;
} sbuf;

typedef struct route {
    struct route *next;
    char *method;
    char **segs;          /* literal text, or the parameter's name */
    unsigned char *param; /* 1 where segs[i] is a parameter */
    size_t nsegs;
    size_t nliterals;
    httpd_handler fn;
    void *opaque;
    size_t max_body;
} route;

typedef struct mount {
    struct mount *next;
    char *prefix; /* normalised, without trailing '/'; "" for the root */
    size_t plen;
    char *dir;    /* realpath */
} mount;

typedef struct hdr {
    size_t noff, voff; /* offsets into raw until the headers are complete */
    int has_value;
    const char *name;
    const char *value;
} hdr;

typedef struct param {
    char *name;        /* owned */
    const char *value; /* points into segbuf */
} param;

struct httpd_req {
    httpd_conn *c; /* NULL once the client is gone */
    enum http_method method;
    int is_head;
    unsigned short vmajor, vminor;
    int keep_alive;
    int upgrade;
    int pstate;       /* 0 url, 1 header name, 2 header value */
    int headers_done;
    char *raw;        /* url, then header names and values, NUL-separated */
    size_t raw_len, raw_cap;
    hdr *hdrs;
    size_t nhdrs, hdrs_cap;
    char *path;
    char *segbuf;
    char **segs;
    size_t nsegs;
    char *query;
    param *params;
    size_t nparams;
    char **qcache;
    size_t nqcache;
    char *body;
    size_t body_len, body_cap, max_body;
    sbuf rh;          /* extra response headers */
    const route *route;
    const mount *mount;
    char *allow;      /* for 405 */
    int pre_status;   /* answered without a handler (bad path, 404, 405) */
    char pre_code[32];
    char pre_msg[256];
    char remote[64];
};

typedef struct wreq {
    uv_write_t w;
    httpd_conn *c;
    size_t len;
    char data[];
} wreq;

struct httpd_conn {
    httpd *h;
    httpd_conn *prev, *next;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_idle_t kick;
    uv_shutdown_t shut;
    int handles;
    int has_sock;
    void (*sink)(const void *data, size_t len, void *opaque);
    void *sink_opaque;
    http_parser parser;
    httpd_req *cur, *ready, *active;
    char *in;
    size_t in_len, in_cap;
    size_t out_bytes;
    size_t hbytes;
    uint64_t req_deadline;
    int reading, eof, closing, close_after, lingering, processing, rejected;
    int upgraded;
    int err_status;
    char err_code[32];
    char err_msg[192];
    int fd;
    uint64_t foff, fleft;
    int file_keep;
    httpd_upgrade_cbs ucbs;
    void *uopaque;
    char remote[64];
};

typedef struct stats {
    uint64_t conns_total, conns_rejected, requests, upgrades;
    uint64_t resp[6];
    uint64_t bad_request, forbidden, not_found, method_not_allowed, timeouts;
    uint64_t body_too_large, headers_too_large, server_errors;
    uint64_t client_gone, write_stalled, idle_closed;
    uint64_t bytes_in, bytes_out;
} stats;

struct httpd {
    uv_loop_t *loop;
    uv_tcp_t listener;
    int listener_open;
    httpd_opts o;
    char bind[64];
    int port;
    route *routes;
    mount *mounts;
    httpd_conn *conns;
    unsigned nconns;   /* counted against max_connections */
    unsigned nstructs; /* conns not yet freed */
    unsigned nrejecting;
    int closing;
    void (*done)(void *opaque);
    void *done_opaque;
    stats st;
    time_t date_t;
    char date[40];
    char rbuf[RBUF_SIZE];
    char fbuf[FILE_CHUNK];
};

/* ---- small helpers ---- */

static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_adds(sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static void sb_addf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_addf(sbuf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof tmp) {
        sb_add(b, tmp, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb_add(b, big, (size_t)n);
    free(big);
}

static int append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 256;
        while (c < *len + n + 1)
            c *= 2;
        char *p = realloc(*buf, c);
        if (!p)
            return -1;
        *buf = p;
        *cap = c;
    }
    if (n)
        memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
    return 0;
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Decodes %XX (and '+' when plus is set) into out, which has room for n+1
 * bytes.  Fails on a malformed escape or a decoded NUL. */
static int pct_decode(const char *s, size_t n, int plus, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int ch = (unsigned char)s[i];
        if (ch == '%') {
            if (i + 2 >= n)
                return -1;
            int a = hexval((unsigned char)s[i + 1]), b = hexval((unsigned char)s[i + 2]);
            if (a < 0 || b < 0)
                return -1;
            ch = a * 16 + b;
            i += 2;
        } else if (plus && ch == '+') {
            ch = ' ';
        }
        if (ch == 0)
            return -1;
        out[o++] = (char)ch;
    }
    out[o] = '\0';
    return 0;
}

static const char *reason(int status)
{
    switch (status) {
    case 101: return "Switching Protocols";
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Entity";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: break;
    }
    const char *s = http_status_str((enum http_status)status);
    return (s && s[0] != '<') ? s : "Unknown";
}

static const char *date_now(httpd *h)
{
    time_t t = time(NULL);
    if (t != h->date_t) {
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(h->date, sizeof h->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        h->date_t = t;
    }
    return h->date;
}

static void count_status(httpd *h, int status)
{
    int cls = status / 100;
    if (cls >= 1 && cls <= 5)
        h->st.resp[cls]++;
    switch (status) {
    case 400: h->st.bad_request++; break;
    case 403: h->st.forbidden++; break;
    case 404: h->st.not_found++; break;
    case 405: h->st.method_not_allowed++; break;
    case 408: h->st.timeouts++; break;
    case 413: h->st.body_too_large++; break;
    case 431: h->st.headers_too_large++; break;
    default:
        if (cls == 5)
            h->st.server_errors++;
        break;
    }
}

static char *error_body(int status, const char *code, const char *msg, size_t *len)
{
    json_t *j = json_pack("{s:{s:i,s:s,s:s}}", "error", "status", status,
                          "code", code, "message", msg);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!s) {
        /* The message was not valid UTF-8 or memory ran out. */
        j = json_pack("{s:{s:i,s:s,s:s}}", "error", "status", status,
                      "code", code, "message", "(message not printable)");
        s = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
    }
    *len = s ? strlen(s) : 0;
    return s;
}

/* ---- requests ---- */

static void req_free(httpd_req *r)
{
    if (!r)
        return;
    free(r->raw);
    free(r->hdrs);
    free(r->path);
    free(r->segbuf);
    free(r->segs);
    free(r->query);
    for (size_t i = 0; i < r->nparams; i++)
        free(r->params[i].name);
    free(r->params);
    for (size_t i = 0; i < r->nqcache; i++)
        free(r->qcache[i]);
    free(r->qcache);
    free(r->body);
    free(r->rh.p);
    free(r->allow);
    free(r);
}

static httpd_req *req_new(httpd_conn *c)
{
    httpd_req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->c = c;
    r->max_body = c->h->o.max_body_bytes;
    snprintf(r->remote, sizeof r->remote, "%s", c->remote);
    return r;
}

/* ---- connections: forward declarations ---- */

static void conn_process(httpd_conn *c);
static void conn_close_now(httpd_conn *c);
static void conn_close_graceful(httpd_conn *c);
static void conn_timer_update(httpd_conn *c);
static void file_pump(httpd_conn *c);
static void conn_kick(httpd_conn *c);
static void conn_timer_fire(uv_timer_t *t);
static void on_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void server_maybe_done(httpd *h)
{
    if (!h->closing || h->nstructs > 0 || h->listener_open)
        return;
    void (*done)(void *) = h->done;
    void *opaque = h->done_opaque;
    while (h->routes) {
        route *r = h->routes;
        h->routes = r->next;
        for (size_t i = 0; i < r->nsegs; i++)
            free(r->segs[i]);
        free(r->segs);
        free(r->param);
        free(r->method);
        free(r);
    }
    while (h->mounts) {
        mount *m = h->mounts;
        h->mounts = m->next;
        free(m->prefix);
        free(m->dir);
        free(m);
    }
    free(h);
    if (done)
        done(opaque);
}

static void on_handle_closed(uv_handle_t *hd)
{
    httpd_conn *c = hd->data;
    if (--c->handles > 0)
        return;
    httpd *h = c->h;
    free(c->in);
    free(c);
    h->nstructs--;
    server_maybe_done(h);
}

static void on_write(uv_write_t *w, int status)
{
    wreq *wr = (wreq *)w;
    httpd_conn *c = wr->c;
    c->out_bytes -= wr->len;
    free(wr);
    if (c->closing)
        return;
    if (status < 0) {
        conn_close_now(c);
        return;
    }
    if (c->fd >= 0)
        file_pump(c);
    if (c->closing)
        return;
    if (c->upgraded) {
        if (c->out_bytes == 0 && c->ucbs.on_drain && !c->close_after)
            c->ucbs.on_drain(c->uopaque);
        if (!c->closing && c->close_after && c->out_bytes == 0)
            conn_close_graceful(c);
        conn_timer_update(c);
        return;
    }
    if (c->close_after) {
        if (c->out_bytes == 0 && c->fd < 0)
            conn_close_graceful(c);
        return;
    }
    if (c->out_bytes < OUT_HIGH)
        conn_process(c);
    else
        conn_timer_update(c);
}

/* Queues bufs: tries to write at once, copies what the socket did not take. */
static int conn_writev(httpd_conn *c, uv_buf_t *bufs, unsigned n)
{
    size_t total = 0;
    if (c->closing || c->lingering)
        return -1;
    for (unsigned i = 0; i < n; i++)
        total += bufs[i].len;
    c->h->st.bytes_out += total;
    if (!c->has_sock) {
        for (unsigned i = 0; i < n; i++)
            if (c->sink && bufs[i].len)
                c->sink(bufs[i].base, bufs[i].len, c->sink_opaque);
        return 0;
    }
    size_t skip = 0;
    if (c->out_bytes == 0) {
        int r = uv_try_write((uv_stream_t *)&c->tcp, bufs, n);
        if (r >= 0)
            skip = (size_t)r;
        else if (r != UV_EAGAIN && r != UV_ENOSYS) {
            conn_close_now(c);
            return -1;
        }
    }
    if (skip == total)
        return 0;
    wreq *wr = malloc(sizeof *wr + (total - skip));
    if (!wr) {
        conn_close_now(c);
        return -1;
    }
    size_t off = 0;
    for (unsigned i = 0; i < n; i++) {
        size_t l = bufs[i].len;
        const char *b = bufs[i].base;
        if (skip >= l) {
            skip -= l;
            continue;
        }
        memcpy(wr->data + off, b + skip, l - skip);
        off += l - skip;
        skip = 0;
    }
    wr->c = c;
    wr->len = off;
    uv_buf_t one = uv_buf_init(wr->data, (unsigned)off);
    if (uv_write(&wr->w, (uv_stream_t *)&c->tcp, &one, 1, on_write) < 0) {
        free(wr);
        conn_close_now(c);
        return -1;
    }
    c->out_bytes += off;
    if (c->out_bytes == off)
        uv_timer_start(&c->timer, conn_timer_fire, c->h->o.idle_timeout_ms, 0);
    return 0;
}

static void timer_close_cb(uv_timer_t *t)
{
    conn_close_now(t->data);
}

static void on_linger_done(uv_shutdown_t *s, int status)
{
    httpd_conn *c = s->data;
    if (c->closing)
        return;
    if (status < 0 || c->eof) {
        conn_close_now(c);
        return;
    }
    if (!c->reading) {
        c->reading = 1;
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    }
}

/* Finishes the connection once queued output is out: FIN, then drain the
 * client's input for a moment, then close. */
static void conn_close_graceful(httpd_conn *c)
{
    if (c->closing || c->lingering)
        return;
    c->close_after = 1;
    if (c->out_bytes > 0 || c->fd >= 0)
        return;
    if (!c->has_sock) {
        conn_close_now(c);
        return;
    }
    c->lingering = 1;
    uv_timer_stop(&c->timer);
    uv_idle_stop(&c->kick);
    c->shut.data = c;
    if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_linger_done) < 0) {
        conn_close_now(c);
        return;
    }
    uv_timer_start(&c->timer, timer_close_cb, LINGER_MS, 0);
}

static void conn_close_now(httpd_conn *c)
{
    if (c->closing)
        return;
    httpd *h = c->h;
    c->closing = 1;
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    if (c->rejected)
        h->nrejecting--;
    else
        h->nconns--;
    if (c->active) {
        /* The handler still owns it; its answer will be discarded. */
        c->active->c = NULL;
        c->active = NULL;
        h->st.client_gone++;
    }
    req_free(c->cur);
    req_free(c->ready);
    c->cur = c->ready = NULL;
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    if (c->upgraded && c->ucbs.on_close) {
        void (*cb)(void *) = c->ucbs.on_close;
        c->ucbs.on_close = NULL;
        c->ucbs.on_data = NULL;
        c->ucbs.on_drain = NULL;
        cb(c->uopaque);
    }
    if (c->has_sock)
        uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->kick, on_handle_closed);
}

/* Drops the connection with a reset: whatever is still queued in the
 * kernel for a client we give up on is discarded, not trickled out. */
static void conn_abort(httpd_conn *c)
{
    uv_os_fd_t fd;
    if (!c->closing && c->has_sock && uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0) {
        struct linger lg = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    conn_close_now(c);
}

/* Writes a status line and headers.  content_length < 0 means none. */
static int conn_send_head(httpd_conn *c, httpd_req *r, int status,
                          const char *ctype, long long content_length, int keep,
                          const void *body, size_t blen)
{
    sbuf b = {0};
    int ret = -1;
    sb_addf(&b, "HTTP/1.1 %d %s\r\nDate: %s\r\n", status, reason(status),
            date_now(c->h));
    if (ctype)
        sb_addf(&b, "Content-Type: %s\r\n", ctype);
    if (content_length >= 0)
        sb_addf(&b, "Content-Length: %lld\r\n", content_length);
    if (status != 101) {
        if (!keep)
            sb_adds(&b, "Connection: close\r\n");
        else if (r && r->vminor == 0)
            sb_adds(&b, "Connection: keep-alive\r\n");
        sb_adds(&b, "X-Content-Type-Options: nosniff\r\n");
    }
    if (r && r->rh.len)
        sb_add(&b, r->rh.p, r->rh.len);
    sb_adds(&b, "\r\n");
    if (b.oom)
        goto cleanup;
    uv_buf_t bufs[2] = {uv_buf_init(b.p, (unsigned)b.len),
                        uv_buf_init((char *)body, (unsigned)blen)};
    ret = conn_writev(c, bufs, blen ? 2 : 1);
cleanup:
    free(b.p);
    return ret;
}

/* A response went out completely (or its file is streaming). */
static void conn_response_done(httpd_conn *c, int keep)
{
    if (c->closing)
        return;
    if (!keep) {
        c->close_after = 1;
        if (c->fd < 0)
            conn_close_graceful(c);
        return;
    }
    if (c->fd >= 0)
        return;
    conn_kick(c);
}

/* Answers a connection-level error (no usable request) and closes. */
static void conn_fail(httpd_conn *c, int status, const char *code, const char *msg)
{
    size_t len = 0;
    char *body = error_body(status, code, msg, &len);
    count_status(c->h, status);
    req_free(c->cur);
    c->cur = NULL;
    if (body)
        conn_send_head(c, NULL, status, "application/json", (long long)len, 0, body, len);
    free(body);
    conn_close_graceful(c);
}

static void file_pump(httpd_conn *c)
{
    httpd *h = c->h;
    while (c->fd >= 0 && !c->closing && c->out_bytes < OUT_HIGH) {
        if (c->fleft == 0) {
            close(c->fd);
            c->fd = -1;
            conn_response_done(c, c->file_keep);
            return;
        }
        size_t want = c->fleft < FILE_CHUNK ? (size_t)c->fleft : FILE_CHUNK;
        ssize_t n = pread(c->fd, h->fbuf, want, (off_t)c->foff);
        if (n <= 0) {
            /* The file shrank or failed under us: the response cannot be
             * completed, so the client must see the connection end. */
            conn_close_now(c);
            return;
        }
        c->foff += (uint64_t)n;
        c->fleft -= (uint64_t)n;
        uv_buf_t b = uv_buf_init(h->fbuf, (unsigned)n);
        if (conn_writev(c, &b, 1) < 0)
            return;
    }
}

static void on_kick(uv_idle_t *k)
{
    uv_idle_stop(k);
    conn_process(k->data);
}

/* Schedules conn_process on the next loop iteration (not from inside the
 * caller's stack, which may be a handler). */
static void conn_kick(httpd_conn *c)
{
    if (!c->closing && !c->processing)
        uv_idle_start(&c->kick, on_kick);
}

static void conn_timer_fire(uv_timer_t *t)
{
    httpd_conn *c = t->data;
    if (c->closing)
        return;
    if (c->out_bytes > 0) {
        c->h->st.write_stalled++;
        conn_abort(c);
    } else if (c->cur && !c->active) {
        conn_fail(c, 408, "request_timeout", "the request did not arrive in time");
    } else if (!c->active) {
        c->h->st.idle_closed++;
        conn_close_now(c);
    }
}

static void conn_timer_update(httpd_conn *c)
{
    if (c->closing || c->lingering || !c->has_sock)
        return;
    httpd *h = c->h;
    if (c->upgraded && c->out_bytes == 0) {
        uv_timer_stop(&c->timer);
    } else if (c->out_bytes > 0) {
        uv_timer_start(&c->timer, conn_timer_fire, h->o.idle_timeout_ms, 0);
    } else if (c->active) {
        uv_timer_stop(&c->timer);
    } else if (c->cur) {
        uint64_t now = uv_now(h->loop);
        uv_timer_start(&c->timer, conn_timer_fire,
                       c->req_deadline > now ? c->req_deadline - now : 0, 0);
    } else {
        uv_timer_start(&c->timer, conn_timer_fire, h->o.idle_timeout_ms, 0);
    }
}

/* ---- parser callbacks ---- */

static int set_err(httpd_conn *c, int status, const char *code, const char *msg)
{
    c->err_status = status;
    snprintf(c->err_code, sizeof c->err_code, "%s", code);
    snprintf(c->err_msg, sizeof c->err_msg, "%s", msg);
    return -1;
}

static int raw_add(httpd_conn *c, const char *at, size_t len)
{
    httpd_req *r = c->cur;
    c->hbytes += len;
    if (c->hbytes > c->h->o.max_header_bytes)
        return set_err(c, 431, "headers_too_large", "request line and headers are too large");
    if (append(&r->raw, &r->raw_len, &r->raw_cap, at, len) < 0)
        return set_err(c, 500, "out_of_memory", "out of memory");
    return 0;
}

static int on_message_begin(http_parser *p)
{
    httpd_conn *c = p->data;
    req_free(c->cur);
    c->cur = req_new(c);
    if (!c->cur)
        return set_err(c, 500, "out_of_memory", "out of memory");
    c->hbytes = 0;
    c->req_deadline = uv_now(c->h->loop) + c->h->o.request_timeout_ms;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    httpd_conn *c = p->data;
    return raw_add(c, at, len);
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    httpd_conn *c = p->data;
    httpd_req *r = c->cur;
    if (r->headers_done) {
        /* Trailers of a chunked body: counted, not kept. */
        c->hbytes += len;
        return c->hbytes > c->h->o.max_header_bytes
                   ? set_err(c, 431, "headers_too_large", "trailers are too large") : 0;
    }
    if (r->pstate != 1) {
        if (r->nhdrs >= MAX_HEADERS)
            return set_err(c, 431, "headers_too_large", "too many headers");
        if (r->nhdrs == r->hdrs_cap) {
            size_t cap = r->hdrs_cap ? r->hdrs_cap * 2 : 16;
            hdr *n = realloc(r->hdrs, cap * sizeof *n);
            if (!n)
                return set_err(c, 500, "out_of_memory", "out of memory");
            r->hdrs = n;
            r->hdrs_cap = cap;
        }
        if (raw_add(c, "", 1) < 0) /* ends the url or the previous value */
            return -1;
        hdr *hd = &r->hdrs[r->nhdrs++];
        memset(hd, 0, sizeof *hd);
        hd->noff = r->raw_len;
        r->pstate = 1;
        c->hbytes += 4; /* ": " and CRLF */
    }
    return raw_add(c, at, len);
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    httpd_conn *c = p->data;
    httpd_req *r = c->cur;
    if (r->headers_done) {
        c->hbytes += len;
        return c->hbytes > c->h->o.max_header_bytes
                   ? set_err(c, 431, "headers_too_large", "trailers are too large") : 0;
    }
    if (r->pstate != 2) {
        if (raw_add(c, "", 1) < 0)
            return -1;
        r->hdrs[r->nhdrs - 1].voff = r->raw_len;
        r->hdrs[r->nhdrs - 1].has_value = 1;
        r->pstate = 2;
    }
    return raw_add(c, at, len);
}

/* Splits, decodes and normalises the path: no empty or "." segments;
 * ".." anywhere is refused (403), encoded or not. */
static int req_set_path(httpd_req *r, const char *url, size_t len)
{
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (len == 0 || http_parser_parse_url(url, len, 0, &u) != 0) {
        r->pre_status = 400;
        snprintf(r->pre_code, sizeof r->pre_code, "bad_url");
        snprintf(r->pre_msg, sizeof r->pre_msg, "malformed request target");
        return -1;
    }
    const char *ps = "/";
    size_t pl = 1;
    if (u.field_set & (1 << UF_PATH)) {
        ps = url + u.field_data[UF_PATH].off;
        pl = u.field_data[UF_PATH].len;
    }
    const char *qs = "";
    size_t ql = 0;
    if (u.field_set & (1 << UF_QUERY)) {
        qs = url + u.field_data[UF_QUERY].off;
        ql = u.field_data[UF_QUERY].len;
    }
    r->query = strndup(qs, ql);
    char *dec = malloc(pl + 1);
    r->segbuf = malloc(pl + 1);
    r->segs = malloc((pl / 2 + 2) * sizeof *r->segs);
    r->path = malloc(pl + 2);
    if (!r->query || !dec || !r->segbuf || !r->segs || !r->path) {
        free(dec);
        r->pre_status = 500;
        snprintf(r->pre_code, sizeof r->pre_code, "out_of_memory");
        snprintf(r->pre_msg, sizeof r->pre_msg, "out of memory");
        return -1;
    }
    if (pct_decode(ps, pl, 0, dec) < 0 || dec[0] != '/') {
        free(dec);
        r->pre_status = 400;
        snprintf(r->pre_code, sizeof r->pre_code, "bad_path");
        snprintf(r->pre_msg, sizeof r->pre_msg, "malformed path");
        return -1;
    }
    size_t dl = strlen(dec);
    int trailing = dl > 1 && dec[dl - 1] == '/';
    size_t o = 0, pathlen = 0;
    char *s = dec;
    int traversal = 0;
    while (*s) {
        while (*s == '/')
            s++;
        if (!*s)
            break;
        char *e = strchr(s, '/');
        size_t sl = e ? (size_t)(e - s) : strlen(s);
        if (sl == 2 && s[0] == '.' && s[1] == '.')
            traversal = 1;
        if (!(sl == 1 && s[0] == '.')) {
            memcpy(r->segbuf + o, s, sl);
            r->segbuf[o + sl] = '\0';
            r->segs[r->nsegs++] = r->segbuf + o;
            r->path[pathlen++] = '/';
            memcpy(r->path + pathlen, s, sl);
            pathlen += sl;
            o += sl + 1;
        }
        s += sl;
    }
    if (pathlen == 0 || trailing)
        r->path[pathlen++] = '/';
    r->path[pathlen] = '\0';
    free(dec);
    if (traversal) {
        r->pre_status = 403;
        snprintf(r->pre_code, sizeof r->pre_code, "forbidden");
        snprintf(r->pre_msg, sizeof r->pre_msg, "'..' is not allowed in paths");
        return -1;
    }
    return 0;
}

/* Finds the route (or static mount) for the request, or the 404/405. */
static void req_match(httpd *h, httpd_req *r)
{
    const char *m = http_method_str(r->method);
    const route *best = NULL;
    sbuf allow = {0};
    int any = 0;
    for (const route *rt = h->routes; rt; rt = rt->next) {
        if (rt->nsegs != r->nsegs)
            continue;
        size_t i;
        for (i = 0; i < rt->nsegs; i++)
            if (!rt->param[i] && strcmp(rt->segs[i], r->segs[i]) != 0)
                break;
        if (i < rt->nsegs)
            continue;
        any = 1;
        if (!allow.p || !strstr(allow.p, rt->method)) {
            if (allow.len)
                sb_adds(&allow, ", ");
            sb_adds(&allow, rt->method);
            if (strcmp(rt->method, "GET") == 0)
                sb_adds(&allow, ", HEAD");
        }
        int ok = strcmp(rt->method, m) == 0 ||
                 (r->is_head && strcmp(rt->method, "GET") == 0);
        if (ok && (!best || rt->nliterals > best->nliterals))
            best = rt;
    }
    if (best) {
        r->route = best;
        r->max_body = best->max_body;
        for (size_t i = 0; i < best->nsegs; i++)
            if (best->param[i])
                r->nparams++;
        if (r->nparams) {
            r->params = calloc(r->nparams, sizeof *r->params);
            if (!r->params) {
                r->nparams = 0;
                r->pre_status = 500;
                snprintf(r->pre_code, sizeof r->pre_code, "out_of_memory");
                snprintf(r->pre_msg, sizeof r->pre_msg, "out of memory");
                goto cleanup;
            }
            size_t k = 0;
            for (size_t i = 0; i < best->nsegs; i++) {
                if (!best->param[i])
                    continue;
                r->params[k].name = strdup(best->segs[i]);
                r->params[k].value = r->segs[i];
                k++;
            }
        }
        goto cleanup;
    }
    if (any) {
        r->pre_status = 405;
        snprintf(r->pre_code, sizeof r->pre_code, "method_not_allowed");
        snprintf(r->pre_msg, sizeof r->pre_msg, "%s is not allowed on %.200s (allowed: %.40s)",
                 m, r->path, allow.p ? allow.p : "");
        r->allow = allow.p;
        allow.p = NULL;
        goto cleanup;
    }
    const mount *bm = NULL;
    for (const mount *mt = h->mounts; mt; mt = mt->next) {
        if (strncmp(r->path, mt->prefix, mt->plen) != 0)
            continue;
        if (r->path[mt->plen] != '/' && r->path[mt->plen] != '\0')
            continue;
        if (!bm || mt->plen > bm->plen)
            bm = mt;
    }
    if (bm) {
        if (r->method == HTTP_GET || r->method == HTTP_HEAD) {
            r->mount = bm;
        } else {
            r->pre_status = 405;
            snprintf(r->pre_code, sizeof r->pre_code, "method_not_allowed");
            snprintf(r->pre_msg, sizeof r->pre_msg, "%s is not allowed on %.200s (allowed: GET, HEAD)",
                     m, r->path);
            r->allow = strdup("GET, HEAD");
        }
        goto cleanup;
    }
    r->pre_status = 404;
    snprintf(r->pre_code, sizeof r->pre_code, "not_found");
    snprintf(r->pre_msg, sizeof r->pre_msg, "no route for %s %.200s", m, r->path);
cleanup:
    free(allow.p);
}

static int on_headers_complete(http_parser *p)
{
    httpd_conn *c = p->data;
    httpd_req *r = c->cur;
    if (raw_add(c, "", 1) < 0)
        return -1;
    r->headers_done = 1;
    size_t url_len = strlen(r->raw);
    for (size_t i = 0; i < r->nhdrs; i++) {
        hdr *hd = &r->hdrs[i];
        hd->name = r->raw + hd->noff;
        if (hd->has_value) {
            char *v = r->raw + hd->voff;
            size_t vl = strlen(v);
            while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
                v[--vl] = '\0';
            hd->value = v;
        } else {
            hd->value = "";
        }
    }
    r->method = (enum http_method)p->method;
    r->is_head = r->method == HTTP_HEAD;
    r->vmajor = p->http_major;
    r->vminor = p->http_minor;
    if (req_set_path(r, r->raw, url_len) == 0)
        req_match(c->h, r);
    if (p->content_length != ULLONG_MAX && p->content_length > r->max_body) {
        char msg[96];
        snprintf(msg, sizeof msg, "the body is larger than %zu bytes", r->max_body);
        return set_err(c, 413, "body_too_large", msg);
    }
    const char *expect = httpd_header(r, "Expect");
    if (expect && strcasecmp(expect, "100-continue") == 0 && r->vminor >= 1) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        uv_buf_t b = uv_buf_init((char *)cont, sizeof cont - 1);
        conn_writev(c, &b, 1);
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    httpd_conn *c = p->data;
    httpd_req *r = c->cur;
    if (r->body_len + len > r->max_body) {
        char msg[96];
        snprintf(msg, sizeof msg, "the body is larger than %zu bytes", r->max_body);
        return set_err(c, 413, "body_too_large", msg);
    }
    if (append(&r->body, &r->body_len, &r->body_cap, at, len) < 0)
        return set_err(c, 500, "out_of_memory", "out of memory");
    return 0;
}

static int on_message_complete(http_parser *p)
{
    httpd_conn *c = p->data;
    httpd_req *r = c->cur;
    if (!r->body && append(&r->body, &r->body_len, &r->body_cap, "", 0) < 0)
        return set_err(c, 500, "out_of_memory", "out of memory");
    r->keep_alive = http_should_keep_alive(p);
    r->upgrade = p->upgrade;
    c->ready = r;
    c->cur = NULL;
    /* One request at a time: the parser waits until this one is answered. */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- static files ---- */

static const char *mime_type(const char *path)
{
    static const struct { const char *ext, *type; } t[] = {
        {"html", "text/html; charset=utf-8"}, {"htm", "text/html; charset=utf-8"},
        {"css", "text/css; charset=utf-8"}, {"js", "text/javascript; charset=utf-8"},
        {"mjs", "text/javascript; charset=utf-8"}, {"json", "application/json"},
        {"map", "application/json"}, {"txt", "text/plain; charset=utf-8"},
        {"md", "text/markdown; charset=utf-8"}, {"svg", "image/svg+xml"},
        {"png", "image/png"}, {"jpg", "image/jpeg"}, {"jpeg", "image/jpeg"},
        {"gif", "image/gif"}, {"webp", "image/webp"}, {"ico", "image/x-icon"},
        {"woff", "font/woff"}, {"woff2", "font/woff2"}, {"wasm", "application/wasm"},
        {"pdf", "application/pdf"}, {"pcap", "application/vnd.tcpdump.pcap"},
        {"pcapng", "application/x-pcapng"}, {"csv", "text/csv; charset=utf-8"},
    };
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    if (dot)
        for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
            if (strcasecmp(dot + 1, t[i].ext) == 0)
                return t[i].type;
    return "application/octet-stream";
}

/* Does the If-None-Match list contain etag (weak comparison)? */
static int etag_listed(const char *list, const char *etag)
{
    size_t el = strlen(etag);
    const char *s = list;
    while (*s) {
        while (*s == ' ' || *s == ',' || *s == '\t')
            s++;
        if (*s == '*')
            return 1;
        if (s[0] == 'W' && s[1] == '/')
            s += 2;
        if (strncmp(s, etag, el) == 0 && (s[el] == '\0' || s[el] == ',' || s[el] == ' '))
            return 1;
        while (*s && *s != ',')
            s++;
    }
    return 0;
}

static int respond_fd(httpd_req *r, int fd, const struct stat *st,
                      const char *ctype, const char *download_name)
{
    httpd_conn *c = r->c;
    char etag[64], lm[40];
    struct tm tm;
    snprintf(etag, sizeof etag, "\"%llx-%llx\"", (unsigned long long)st->st_size,
             (unsigned long long)st->st_mtim.tv_sec * 1000000000ULL +
                 (unsigned long long)st->st_mtim.tv_nsec);
    gmtime_r(&st->st_mtim.tv_sec, &tm);
    strftime(lm, sizeof lm, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    int status = 200;
    const char *inm = httpd_header(r, "If-None-Match");
    const char *ims = httpd_header(r, "If-Modified-Since");
    if (inm) {
        if (etag_listed(inm, etag))
            status = 304;
    } else if (ims) {
        struct tm it;
        memset(&it, 0, sizeof it);
        const char *end = strptime(ims, "%a, %d %b %Y %H:%M:%S GMT", &it);
        if (end && timegm(&it) >= st->st_mtim.tv_sec)
            status = 304;
    }
    int ret = -1;
    httpd_add_header(r, "ETag", etag);
    httpd_add_header(r, "Last-Modified", lm);
    httpd_add_header(r, "Cache-Control", "no-cache");
    if (download_name) {
        char safe[256];
        size_t i;
        for (i = 0; i < sizeof safe - 1 && download_name[i]; i++) {
            char ch = download_name[i];
            int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                     (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '_';
            safe[i] = ok ? ch : '_';
        }
        safe[i] = '\0';
        char cd[300];
        snprintf(cd, sizeof cd, "attachment; filename=\"%s\"", safe);
        httpd_add_header(r, "Content-Disposition", cd);
    }
    int keep = r->keep_alive && !r->upgrade && !c->h->closing;
    int send_body = status == 200 && !r->is_head && st->st_size > 0;
    count_status(c->h, status);
    if (conn_send_head(c, r, status, status == 304 ? NULL : ctype,
                       status == 304 ? -1 : (long long)st->st_size, keep, NULL, 0) < 0)
        goto cleanup;
    ret = 0;
    if (send_body) {
        c->fd = fd;
        fd = -1;
        c->foff = 0;
        c->fleft = (uint64_t)st->st_size;
        c->file_keep = keep;
        c->active = NULL;
        file_pump(c);
    } else {
        c->active = NULL;
        conn_response_done(c, keep);
    }
cleanup:
    if (c->active == r)
        c->active = NULL;
    if (fd >= 0)
        close(fd);
    req_free(r);
    return ret;
}

int httpd_respond_file(httpd_req *req, const char *path, const char *content_type,
                       const char *download_name)
{
    if (!req->c) {
        req_free(req);
        return 0;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        return httpd_error(req, 404, "not_found", "no such file");
    }
    if (!content_type)
        content_type = mime_type(download_name ? download_name : path);
    return respond_fd(req, fd, &st, content_type, download_name);
}

static int inside(const char *path, const char *dir)
{
    size_t dl = strlen(dir);
    if (strcmp(dir, "/") == 0)
        return 1;
    return strncmp(path, dir, dl) == 0 && (path[dl] == '/' || path[dl] == '\0');
}

static void static_serve(httpd_req *r, const mount *m)
{
    const char *rel = r->path + m->plen;
    char *full = NULL, *res = NULL, *idx = NULL;
    size_t need = strlen(m->dir) + strlen(rel) + 2;
    full = malloc(need);
    if (!full) {
        httpd_error(r, 500, "out_of_memory", "out of memory");
        goto cleanup;
    }
    snprintf(full, need, "%s%s%s", m->dir, rel[0] == '/' ? "" : "/", rel);
    res = realpath(full, NULL);
    if (!res) {
        if (errno == EACCES)
            httpd_error(r, 403, "forbidden", "%s is not readable", r->path);
        else
            httpd_error(r, 404, "not_found", "no file at %s", r->path);
        goto cleanup;
    }
    if (!inside(res, m->dir)) {
        httpd_error(r, 403, "forbidden", "%s leads outside the served directory", r->path);
        goto cleanup;
    }
    struct stat st;
    if (stat(res, &st) < 0) {
        httpd_error(r, 404, "not_found", "no file at %s", r->path);
        goto cleanup;
    }
    if (S_ISDIR(st.st_mode)) {
        size_t pl = strlen(r->path);
        if (pl == 0 || r->path[pl - 1] != '/') {
            sbuf loc = {0};
            sb_adds(&loc, r->path);
            sb_adds(&loc, "/");
            if (r->query && r->query[0]) {
                sb_adds(&loc, "?");
                sb_adds(&loc, r->query);
            }
            if (loc.oom || httpd_add_header(r, "Location", loc.p) < 0) {
                free(loc.p);
                httpd_error(r, 500, "out_of_memory", "out of memory");
                goto cleanup;
            }
            free(loc.p);
            httpd_error(r, 301, "moved", "see %s/", r->path);
            goto cleanup;
        }
        size_t il = strlen(res) + sizeof "/index.html";
        idx = malloc(il);
        if (!idx) {
            httpd_error(r, 500, "out_of_memory", "out of memory");
            goto cleanup;
        }
        snprintf(idx, il, "%s/index.html", res);
        free(res);
        res = realpath(idx, NULL);
        if (!res) {
            httpd_error(r, 404, "not_found", "no file at %s", r->path);
            goto cleanup;
        }
        if (!inside(res, m->dir)) {
            httpd_error(r, 403, "forbidden", "%s leads outside the served directory", r->path);
            goto cleanup;
        }
    }
    /* The resolved path has no symlinks left; O_NOFOLLOW keeps it so. */
    int fd = open(res, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        httpd_error(r, 404, "not_found", "no file at %s", r->path);
        goto cleanup;
    }
    respond_fd(r, fd, &st, mime_type(res), NULL);
cleanup:
    free(full);
    free(res);
    free(idx);
}

/* ---- dispatch and the input loop ---- */

static void conn_dispatch(httpd_conn *c)
{
    httpd_req *r = c->ready;
    c->ready = NULL;
    c->active = r;
    c->h->st.requests++;
    uv_timer_stop(&c->timer);
    if (r->pre_status) {
        if (r->allow)
            httpd_add_header(r, "Allow", r->allow);
        httpd_error(r, r->pre_status, r->pre_code, "%s", r->pre_msg);
    } else if (r->route) {
        r->route->fn(r, r->route->opaque);
    } else if (r->mount) {
        static_serve(r, r->mount);
    } else {
        httpd_error(r, 500, "internal", "request without a destination");
    }
}

/* Runs the parser over buffered input, one request at a time. */
static void conn_process(httpd_conn *c)
{
    if (c->closing || c->processing || c->lingering)
        return;
    c->processing = 1;
    size_t off = 0;
    for (;;) {
        if (c->closing)
            break;
        if (c->upgraded) {
            if (off < c->in_len && c->ucbs.on_data) {
                /* c->in outlives a close inside on_data: it is freed with
                 * the struct, in the handles' close callback. */
                size_t from = off;
                off = c->in_len;
                c->ucbs.on_data(c->in + from, c->in_len - from, c->uopaque);
                continue;
            }
            off = c->in_len;
            break;
        }
        if (c->active || c->fd >= 0 || c->close_after || c->out_bytes >= OUT_HIGH ||
            off >= c->in_len)
            break;
        size_t n = http_parser_execute(&c->parser, &parser_settings, c->in + off,
                                       c->in_len - off);
        off += n;
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (e == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
            if (c->ready)
                conn_dispatch(c);
            continue;
        }
        if (e != HPE_OK) {
            if (c->err_status)
                conn_fail(c, c->err_status, c->err_code, c->err_msg);
            else if (e == HPE_HEADER_OVERFLOW)
                conn_fail(c, 431, "headers_too_large", "request line and headers are too large");
            else
                conn_fail(c, 400, "bad_request", http_errno_description(e));
            off = c->in_len;
            break;
        }
        if (n == 0)
            break;
    }
    if (!c->closing) {
        if (off > 0) {
            memmove(c->in, c->in + off, c->in_len - off);
            c->in_len -= off;
        }
        if (c->in_len == 0 && c->in_cap > RBUF_SIZE) {
            free(c->in);
            c->in = NULL;
            c->in_cap = 0;
        }
    }
    c->processing = 0;
    if (c->closing || c->lingering)
        return;
    if (c->eof) {
        /* The client has sent everything: once what was complete is
         * answered, the rest can only be a partial request. */
        if (c->upgraded || (!c->active && c->fd < 0 && c->out_bytes < OUT_HIGH))
            conn_close_graceful(c);
        return;
    }
    if (c->has_sock && !c->reading && c->in_len < IN_HIGH && !c->close_after) {
        c->reading = 1;
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    }
    conn_timer_update(c);
}

static void on_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf)
{
    httpd_conn *c = hd->data;
    (void)suggested;
    *buf = uv_buf_init(c->h->rbuf, RBUF_SIZE);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    httpd_conn *c = s->data;
    (void)buf;
    if (c->closing || nread == 0)
        return;
    if (nread < 0) {
        if (nread != UV_EOF || c->lingering) {
            conn_close_now(c);
            return;
        }
        c->eof = 1;
        c->reading = 0;
        uv_read_stop(s);
        conn_process(c);
        return;
    }
    c->h->st.bytes_in += (uint64_t)nread;
    if (c->lingering)
        return;
    if (append(&c->in, &c->in_len, &c->in_cap, c->h->rbuf, (size_t)nread) < 0) {
        conn_close_now(c);
        return;
    }
    if (c->in_len >= IN_HIGH && (c->active || c->fd >= 0 || c->out_bytes >= OUT_HIGH)) {
        c->reading = 0;
        uv_read_stop(s);
    }
    conn_process(c);
}

static httpd_conn *conn_new(httpd *h)
{
    httpd_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->h = h;
    c->fd = -1;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    uv_timer_init(h->loop, &c->timer);
    uv_idle_init(h->loop, &c->kick);
    c->timer.data = c;
    c->kick.data = c;
    c->handles = 2;
    c->next = h->conns;
    if (h->conns)
        h->conns->prev = c;
    h->conns = c;
    h->nstructs++;
    h->nconns++;
    h->st.conns_total++;
    return c;
}

static void on_connection(uv_stream_t *srv, int status)
{
    httpd *h = srv->data;
    if (status < 0 || h->closing)
        return;
    httpd_conn *c = conn_new(h);
    if (!c)
        return;
    uv_tcp_init(h->loop, &c->tcp);
    c->tcp.data = c;
    c->handles++;
    c->has_sock = 1;
    if (uv_accept(srv, (uv_stream_t *)&c->tcp) < 0) {
        conn_close_now(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    snprintf(c->remote, sizeof c->remote, "?");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
        char ip[48] = "?";
        int port = 0;
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            uv_ip4_name(a, ip, sizeof ip);
            port = ntohs(a->sin_port);
            snprintf(c->remote, sizeof c->remote, "%s:%d", ip, port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, ip, sizeof ip);
            port = ntohs(a->sin6_port);
            snprintf(c->remote, sizeof c->remote, "[%s]:%d", ip, port);
        }
    }
    if (h->nconns > h->o.max_connections) {
        h->nconns--;
        h->nrejecting++;
        c->rejected = 1;
        h->st.conns_rejected++;
        if (h->nrejecting > h->o.max_connections) {
            /* Even the refusals are too many: just hang up. */
            conn_close_now(c);
            return;
        }
        conn_fail(c, 503, "too_many_connections", "the server has too many connections");
        return;
    }
    c->reading = 1;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    conn_timer_update(c);
}

/* ---- public: server ---- */

httpd *httpd_new(uv_loop_t *loop, const httpd_opts *o, char *err, size_t errlen)
{
    httpd *h = calloc(1, sizeof *h);
    struct sockaddr_storage ss;
    int r;
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->loop = loop;
    if (o)
        h->o = *o;
    snprintf(h->bind, sizeof h->bind, "%s", h->o.bind_addr ? h->o.bind_addr : "127.0.0.1");
    h->o.bind_addr = h->bind;
    if (!h->o.max_header_bytes)
        h->o.max_header_bytes = 16 * 1024;
    if (!h->o.max_body_bytes)
        h->o.max_body_bytes = 1024 * 1024;
    if (!h->o.idle_timeout_ms)
        h->o.idle_timeout_ms = 30000;
    if (!h->o.request_timeout_ms)
        h->o.request_timeout_ms = 10000;
    if (!h->o.max_connections)
        h->o.max_connections = 512;
    if (h->o.backlog <= 0)
        h->o.backlog = 511;
    if (h->o.port < 0 || h->o.port > 65535) {
        snprintf(err, errlen, "port %d out of range", h->o.port);
        goto fail;
    }
    if (uv_ip4_addr(h->bind, h->o.port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(h->bind, h->o.port, (struct sockaddr_in6 *)&ss) != 0) {
        snprintf(err, errlen, "bad bind address '%s'", h->bind);
        goto fail;
    }
    uv_tcp_init(loop, &h->listener);
    h->listener.data = h;
    h->listener_open = 1;
    r = uv_tcp_bind(&h->listener, (struct sockaddr *)&ss, 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&h->listener, h->o.backlog, on_connection);
    if (r < 0) {
        snprintf(err, errlen, "listen on %s:%d: %s", h->bind, h->o.port, uv_strerror(r));
        /* The handle must be closed through the loop; the struct goes with it. */
        h->closing = 1;
        httpd_close(h, NULL, NULL);
        return NULL;
    }
    int sl = sizeof ss;
    if (uv_tcp_getsockname(&h->listener, (struct sockaddr *)&ss, &sl) == 0)
        h->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                                : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return h;
fail:
    free(h);
    return NULL;
}

int httpd_port(const httpd *h)
{
    return h->port;
}

static void on_listener_closed(uv_handle_t *hd)
{
    httpd *h = hd->data;
    h->listener_open = 0;
    server_maybe_done(h);
}

void httpd_close(httpd *h, void (*done)(void *opaque), void *opaque)
{
    if (!h)
        return;
    h->closing = 1;
    h->done = done;
    h->done_opaque = opaque;
    while (h->conns)
        conn_close_now(h->conns);
    if (h->listener_open && !uv_is_closing((uv_handle_t *)&h->listener))
        uv_close((uv_handle_t *)&h->listener, on_listener_closed);
}

static int route_add(httpd *h, const char *method, const char *pattern,
                     httpd_handler fn, void *opaque, size_t max_body)
{
    route *r = NULL;
    char *copy = NULL;
    int ret = -1;
    if (!method || !*method || !pattern || pattern[0] != '/' || !fn)
        return -1;
    r = calloc(1, sizeof *r);
    copy = strdup(pattern);
    if (!r || !copy)
        goto cleanup;
    r->method = strdup(method);
    size_t max = strlen(pattern) / 2 + 1;
    r->segs = calloc(max, sizeof *r->segs);
    r->param = calloc(max, 1);
    if (!r->method || !r->segs || !r->param)
        goto cleanup;
    for (char *m = r->method; *m; m++)
        if (*m >= 'a' && *m <= 'z')
            *m = (char)(*m - 'a' + 'A');
    char *save = NULL;
    for (char *s = strtok_r(copy, "/", &save); s; s = strtok_r(NULL, "/", &save)) {
        size_t l = strlen(s);
        int is_param = l >= 3 && s[0] == '{' && s[l - 1] == '}';
        if (strchr(s, '{') && !is_param)
            goto cleanup;
        r->segs[r->nsegs] = is_param ? strndup(s + 1, l - 2) : strdup(s);
        if (!r->segs[r->nsegs])
            goto cleanup;
        r->param[r->nsegs] = (unsigned char)is_param;
        if (!is_param)
            r->nliterals++;
        r->nsegs++;
    }
    r->fn = fn;
    r->opaque = opaque;
    r->max_body = max_body ? max_body : h->o.max_body_bytes;
    /* Appended: among equally specific routes the first one wins. */
    route **tail = &h->routes;
    while (*tail)
        tail = &(*tail)->next;
    *tail = r;
    r = NULL;
    ret = 0;
cleanup:
    if (r) {
        for (size_t i = 0; i < r->nsegs; i++)
            free(r->segs[i]);
        free(r->segs);
        free(r->param);
        free(r->method);
        free(r);
    }
    free(copy);
    return ret;
}

int httpd_route(httpd *h, const char *method, const char *pattern,
                httpd_handler fn, void *opaque)
{
    return route_add(h, method, pattern, fn, opaque, 0);
}

int httpd_route_limit(httpd *h, const char *method, const char *pattern,
                      httpd_handler fn, void *opaque, size_t max_body_bytes)
{
    if (max_body_bytes == 0)
        return -1;
    return route_add(h, method, pattern, fn, opaque, max_body_bytes);
}

int httpd_static(httpd *h, const char *prefix, const char *dir)
{
    mount *m = NULL;
    int ret = -1;
    if (!prefix || prefix[0] != '/' || strstr(prefix, "..") || !dir)
        return -1;
    m = calloc(1, sizeof *m);
    if (!m)
        return -1;
    m->dir = realpath(dir, NULL);
    m->prefix = strdup(prefix);
    struct stat st;
    if (!m->dir || !m->prefix || stat(m->dir, &st) < 0 || !S_ISDIR(st.st_mode))
        goto cleanup;
    m->plen = strlen(m->prefix);
    while (m->plen > 0 && m->prefix[m->plen - 1] == '/')
        m->prefix[--m->plen] = '\0';
    m->next = h->mounts;
    h->mounts = m;
    m = NULL;
    ret = 0;
cleanup:
    if (m) {
        free(m->dir);
        free(m->prefix);
        free(m);
    }
    return ret;
}

json_t *httpd_stats_json(const httpd *h)
{
    const stats *s = &h->st;
    return json_pack(
        "{s:{s:I,s:I,s:I},s:I,s:I,s:{s:I,s:I,s:I,s:I,s:I},"
        "s:{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I},s:I,s:I}",
        "connections", "active", (json_int_t)h->nconns, "total", (json_int_t)s->conns_total,
        "rejected", (json_int_t)s->conns_rejected,
        "requests", (json_int_t)s->requests, "upgrades", (json_int_t)s->upgrades,
        "responses", "1xx", (json_int_t)s->resp[1], "2xx", (json_int_t)s->resp[2],
        "3xx", (json_int_t)s->resp[3], "4xx", (json_int_t)s->resp[4],
        "5xx", (json_int_t)s->resp[5],
        "errors", "bad_request", (json_int_t)s->bad_request,
        "forbidden", (json_int_t)s->forbidden, "not_found", (json_int_t)s->not_found,
        "method_not_allowed", (json_int_t)s->method_not_allowed,
        "request_timeout", (json_int_t)s->timeouts,
        "body_too_large", (json_int_t)s->body_too_large,
        "headers_too_large", (json_int_t)s->headers_too_large,
        "server_error", (json_int_t)s->server_errors,
        "client_gone", (json_int_t)s->client_gone,
        "write_stalled", (json_int_t)s->write_stalled,
        "idle_closed", (json_int_t)s->idle_closed,
        "bytes_in", (json_int_t)s->bytes_in, "bytes_out", (json_int_t)s->bytes_out);
}

/* ---- public: requests ---- */

const char *httpd_method(const httpd_req *req)
{
    return http_method_str(req->method);
}

const char *httpd_path(const httpd_req *req)
{
    return req->path ? req->path : "/";
}

const char *httpd_query_raw(const httpd_req *req)
{
    return req->query ? req->query : "";
}

const char *httpd_query(httpd_req *req, const char *name)
{
    const char *q = req->query;
    if (!q || !name)
        return NULL;
    size_t nl = strlen(name);
    while (*q) {
        const char *amp = strchr(q, '&');
        size_t pl = amp ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', pl);
        size_t kl = eq ? (size_t)(eq - q) : pl;
        char key[256];
        if (kl < sizeof key && pct_decode(q, kl, 1, key) == 0 && strlen(key) == nl &&
            memcmp(key, name, nl) == 0) {
            const char *v = eq ? eq + 1 : q + pl;
            size_t vl = eq ? pl - kl - 1 : 0;
            char *out = malloc(vl + 1);
            char **nc = realloc(req->qcache, (req->nqcache + 1) * sizeof *nc);
            if (nc)
                req->qcache = nc;
            if (!out || !nc || pct_decode(v, vl, 1, out) < 0) {
                free(out);
                return NULL;
            }
            req->qcache[req->nqcache++] = out;
            return out;
        }
        q += pl;
        if (*q == '&')
            q++;
    }
    return NULL;
}

const char *httpd_param(const httpd_req *req, const char *name)
{
    for (size_t i = 0; i < req->nparams; i++)
        if (req->params[i].name && strcmp(req->params[i].name, name) == 0)
            return req->params[i].value;
    return NULL;
}

const char *httpd_header(const httpd_req *req, const char *name)
{
    if (!req->headers_done)
        return NULL;
    for (size_t i = 0; i < req->nhdrs; i++)
        if (strcasecmp(req->hdrs[i].name, name) == 0)
            return req->hdrs[i].value;
    return NULL;
}

const char *httpd_body(const httpd_req *req, size_t *len)
{
    if (len)
        *len = req->body_len;
    return req->body ? req->body : "";
}

const char *httpd_remote(const httpd_req *req)
{
    return req->remote;
}

int httpd_req_alive(const httpd_req *req)
{
    return req->c != NULL && !req->c->closing;
}

json_t *httpd_body_json(httpd_req *req, json_error_t *jerr)
{
    json_error_t e;
    json_t *j = json_loadb(req->body ? req->body : "", req->body_len,
                           JSON_REJECT_DUPLICATES, &e);
    if (jerr)
        *jerr = e;
    if (!j)
        httpd_error(req, 400, "bad_json", "body:%d:%d: %s", e.line, e.column, e.text);
    return j;
}

int httpd_add_header(httpd_req *req, const char *name, const char *value)
{
    if (!name || !value || !*name || strpbrk(name, "\r\n:") || strpbrk(value, "\r\n"))
        return -1;
    sb_adds(&req->rh, name);
    sb_adds(&req->rh, ": ");
    sb_adds(&req->rh, value);
    sb_adds(&req->rh, "\r\n");
    return req->rh.oom ? -1 : 0;
}

int httpd_respond(httpd_req *req, int status, const char *content_type,
                  const void *body, size_t len)
{
    httpd_conn *c = req->c;
    int ret = 0;
    if (!c) {
        req_free(req);
        return 0;
    }
    if (status < 200 || status > 999)
        status = 500;
    count_status(c->h, status);
    int keep = req->keep_alive && !req->upgrade && !c->h->closing;
    int nobody = status == 204 || status == 304;
    if (conn_send_head(c, req, status, nobody ? NULL : content_type,
                       nobody ? -1 : (long long)len, keep, req->is_head || nobody ? NULL : body,
                       req->is_head || nobody ? 0 : len) < 0)
        ret = -1;
    if (c->active == req)
        c->active = NULL;
    req_free(req);
    conn_response_done(c, keep);
    return ret;
}

int httpd_respond_json(httpd_req *req, int status, json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (!s)
        return httpd_error(req, 500, "internal", "response could not be encoded");
    int r = httpd_respond(req, status, "application/json", s, strlen(s));
    free(s);
    return r;
}

int httpd_error(httpd_req *req, int status, const char *code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t len = 0;
    char *body = error_body(status, code, msg, &len);
    if (!body) {
        static const char oom[] = "{\"error\":{\"status\":500,\"code\":\"out_of_memory\","
                                  "\"message\":\"out of memory\"}}";
        return httpd_respond(req, 500, "application/json", oom, sizeof oom - 1);
    }
    int r = httpd_respond(req, status, "application/json", body, len);
    free(body);
    return r;
}

/* ---- public: upgrade ---- */

httpd_conn *httpd_upgrade(httpd_req *req, const httpd_upgrade_cbs *cbs, void *opaque)
{
    httpd_conn *c = req->c;
    if (!c) {
        req_free(req);
        return NULL;
    }
    count_status(c->h, 101);
    if (conn_send_head(c, req, 101, NULL, -1, 1, NULL, 0) < 0) {
        if (c->active == req)
            c->active = NULL;
        req_free(req);
        return NULL;
    }
    if (c->active == req)
        c->active = NULL;
    req_free(req);
    c->h->st.upgrades++;
    c->upgraded = 1;
    c->ucbs = *cbs;
    c->uopaque = opaque;
    uv_timer_stop(&c->timer);
    if (c->in_len > 0 || c->eof)
        conn_kick(c);
    return c;
}

int httpd_conn_write(httpd_conn *c, const void *a, size_t alen, const void *b, size_t blen)
{
    uv_buf_t bufs[2];
    unsigned n = 0;
    if (alen)
        bufs[n++] = uv_buf_init((char *)a, (unsigned)alen);
    if (blen)
        bufs[n++] = uv_buf_init((char *)b, (unsigned)blen);
    if (n == 0)
        return c->closing ? -1 : 0;
    return conn_writev(c, bufs, n);
}

uv_loop_t *httpd_req_loop(const httpd_req *req)
{
    return req->c && !req->c->closing ? req->c->h->loop : NULL;
}

size_t httpd_conn_buffered(const httpd_conn *c)
{
    return c->out_bytes;
}

void httpd_conn_close(httpd_conn *c, int graceful)
{
    if (graceful)
        conn_close_graceful(c);
    else
        conn_abort(c);
}

int httpd_conn_feed(httpd *h, const void *data, size_t len,
                    void (*sink)(const void *data, size_t len, void *opaque), void *opaque)
{
    httpd_conn *c = conn_new(h);
    if (!c)
        return -1;
    c->sink = sink;
    c->sink_opaque = opaque;
    snprintf(c->remote, sizeof c->remote, "feed");
    if (append(&c->in, &c->in_len, &c->in_cap, data, len) < 0) {
        conn_close_now(c);
        return -1;
    }
    h->st.bytes_in += len;
    c->eof = 1;
    conn_process(c);
    return 0;
}
