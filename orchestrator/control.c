#include "control.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "proto.h"

#define CONTROL_MAX_LINE (64 * 1024)
#define CONTROL_MAX_CLIENTS 16

typedef struct client {
    uv_pipe_t pipe;
    control *c;
    proto_reader *rd;
    struct client *next;
    int refs;                  /* pipe + deferred requests */
    int gone;                  /* the pipe was closed */
} client;

struct control_pending {
    client *cl;
};

struct control {
    uv_pipe_t server;
    char *path;
    control_handler h;
    void *opaque;
    client *clients;
    int n_clients;
    int open_handles;
    int closing;
};

static void maybe_free(control *c)
{
    if (c->closing && c->open_handles == 0) {
        free(c->path);
        free(c);
    }
}

static void client_unref(client *cl)
{
    if (--cl->refs > 0)
        return;
    control *c = cl->c;
    proto_reader_free(cl->rd);
    free(cl);
    c->open_handles--;
    maybe_free(c);
}

static void client_closed(uv_handle_t *h)
{
    client *cl = h->data;
    cl->gone = 1;
    client_unref(cl);
}

static void drop_client(client *cl)
{
    control *c = cl->c;
    client **pp = &c->clients;
    while (*pp && *pp != cl)
        pp = &(*pp)->next;
    if (*pp == NULL)
        return; /* already dropped */
    *pp = cl->next;
    c->n_clients--;
    cl->gone = 1;
    uv_close((uv_handle_t *)&cl->pipe, client_closed);
}

static void write_done(uv_write_t *w, int status)
{
    (void)status;
    free(w->data);
    free(w);
}

static void reply(client *cl, json_t *msg)
{
    char *text = cl->gone ? NULL : json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    if (text == NULL)
        return;
    size_t n = strlen(text);
    char *line = realloc(text, n + 2);
    uv_write_t *w = malloc(sizeof(*w));
    if (line == NULL || w == NULL) {
        free(line ? line : text);
        free(w);
        return;
    }
    line[n] = '\n';
    line[n + 1] = '\0';
    w->data = line;
    uv_buf_t buf = uv_buf_init(line, (unsigned)(n + 1));
    if (uv_write(w, (uv_stream_t *)&cl->pipe, &buf, 1, write_done) < 0) {
        free(line);
        free(w);
    }
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(suggested);
    buf->len = buf->base ? suggested : 0;
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    client *cl = s->data;
    if (n > 0) {
        const char *line;
        size_t len;
        proto_err pe;
        proto_reader_feed(cl->rd, buf->base, (size_t)n, &pe);
        while (proto_reader_next(cl->rd, &line, &len) == 1) {
            json_error_t je;
            json_t *req = json_loadb(line, len, 0, &je);
            if (!json_is_object(req)) {
                reply(cl, json_pack("{s:b, s:s}", "ok", 0, "error",
                                    "expected one JSON object per line"));
            } else {
                control_pending *later = calloc(1, sizeof(*later));
                json_t *r = NULL;
                if (later != NULL) {
                    later->cl = cl;
                    cl->refs++;
                    r = cl->c->h(req, later, cl->c->opaque);
                    if (r != NULL) {
                        /* answered at once: the token is not needed */
                        free(later);
                        cl->refs--;
                    }
                } else {
                    r = json_pack("{s:b, s:s}", "ok", 0, "error", "out of memory");
                }
                if (r != NULL)
                    reply(cl, r);
            }
            json_decref(req);
        }
    } else if (n < 0) {
        drop_client(cl);
    }
    free(buf->base);
}

static void on_connection(uv_stream_t *server, int status)
{
    control *c = server->data;
    client *cl;
    if (status < 0 || c->closing)
        return;
    cl = calloc(1, sizeof(*cl));
    if (cl == NULL)
        return;
    cl->c = c;
    cl->refs = 1;
    cl->rd = proto_reader_new(CONTROL_MAX_LINE);
    uv_pipe_init(server->loop, &cl->pipe, 0);
    cl->pipe.data = cl;
    c->open_handles++;
    if (cl->rd == NULL || uv_accept(server, (uv_stream_t *)&cl->pipe) < 0 ||
        c->n_clients >= CONTROL_MAX_CLIENTS) {
        uv_close((uv_handle_t *)&cl->pipe, client_closed);
        return;
    }
    cl->next = c->clients;
    c->clients = cl;
    c->n_clients++;
    uv_read_start((uv_stream_t *)&cl->pipe, alloc_cb, read_cb);
}

static void server_closed(uv_handle_t *h)
{
    control *c = h->data;
    c->open_handles--;
    maybe_free(c);
}

control *control_listen(uv_loop_t *loop, const char *path, control_handler h,
                        void *opaque, char *err, size_t errlen)
{
    control *c = calloc(1, sizeof(*c));
    int rc;
    if (c == NULL || (c->path = strdup(path)) == NULL) {
        free(c);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->h = h;
    c->opaque = opaque;
    uv_pipe_init(loop, &c->server, 0);
    c->server.data = c;
    c->open_handles = 1;
    unlink(path);
    mode_t old = umask(077);
    rc = uv_pipe_bind(&c->server, path);
    umask(old);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&c->server, 8, on_connection);
    if (rc < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", path, uv_strerror(rc));
        c->closing = 1;
        uv_close((uv_handle_t *)&c->server, server_closed);
        return NULL;
    }
    return c;
}

void control_respond(control_pending *later, json_t *r)
{
    client *cl = later->cl;
    free(later);
    reply(cl, r);
    client_unref(cl);
}

void control_close(control *c)
{
    if (c == NULL || c->closing)
        return;
    c->closing = 1;
    unlink(c->path);
    while (c->clients)
        drop_client(c->clients);
    uv_close((uv_handle_t *)&c->server, server_closed);
}

json_t *control_call(const char *path, const json_t *req, int timeout_ms,
                     char *err, size_t errlen)
{
    struct sockaddr_un sa;
    int fd = -1;
    char *text = NULL;
    size_t cap = 1 << 20;
    char *buf = malloc(cap);
    size_t have = 0;
    json_t *out = NULL;
    struct timespec t0, t1;

    if (buf == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "socket path too long: %s", path);
        free(buf);
        return NULL;
    }
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        snprintf(err, errlen, "no orchestrator is running this exercise (%s: %s); "
                 "start it with `cyrange run`", path, strerror(errno));
        goto cleanup;
    }
    text = json_dumps(req, JSON_COMPACT);
    if (text == NULL) {
        snprintf(err, errlen, "out of memory");
        goto cleanup;
    }
    size_t n = strlen(text);
    if (write(fd, text, n) != (ssize_t)n || write(fd, "\n", 1) != 1) {
        snprintf(err, errlen, "cannot send: %s", strerror(errno));
        goto cleanup;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        struct pollfd p = { fd, POLLIN, 0 };
        clock_gettime(CLOCK_MONOTONIC, &t1);
        long left = timeout_ms - ((t1.tv_sec - t0.tv_sec) * 1000 +
                                  (t1.tv_nsec - t0.tv_nsec) / 1000000);
        if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
            snprintf(err, errlen, "no answer from the orchestrator within %d ms",
                     timeout_ms);
            goto cleanup;
        }
        ssize_t got = read(fd, buf + have, cap - 1 - have);
        if (got <= 0) {
            snprintf(err, errlen, "the orchestrator closed the connection");
            goto cleanup;
        }
        have += (size_t)got;
        buf[have] = '\0';
        char *nl = memchr(buf, '\n', have);
        if (nl) {
            out = json_loadb(buf, (size_t)(nl - buf), 0, NULL);
            if (out == NULL)
                snprintf(err, errlen, "garbled answer from the orchestrator");
            break;
        }
        if (have >= cap - 1) {
            snprintf(err, errlen, "answer too long");
            goto cleanup;
        }
    }
cleanup:
    free(text);
    free(buf);
    if (fd >= 0)
        close(fd);
    return out;
}
