#include "console.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A session is one guest's stream and its viewers.  Sessions and viewers
 * are only freed outside callback dispatch: a callback may detach any
 * viewer or close the hub, so loops over viewers hold the session
 * (`dispatching`) and detached viewers are swept afterwards. */

enum { S_OPENING, S_OPEN, S_ENDED };

typedef struct console_session console_session;

struct console_viewer {
    console_session *s;
    console_viewer *next;
    console_viewer_cbs cbs;
    void *opaque;
    int detached;
    int pending_open;   /* attached to an open stream: on_open still due */
    int needs_replay;   /* the scroll-back is still due */
    int closed_sent;
};

struct console_session {
    console_hub *hub;
    console_session *next;
    char *domain;
    virt_console *vc;           /* NULL once its close has completed */
    int vc_closing;
    int state;
    int listed;                 /* console_attach may join it */
    console_viewer *viewers;
    size_t nviewers;            /* not detached */
    int dispatching;
    int freeing;
    char *ring;                 /* scroll-back, CONSOLE_SCROLLBACK bytes */
    size_t ring_head, ring_len;
    uv_timer_t grace;
    int grace_armed;
};

struct console_hub {
    uv_loop_t *loop;
    virt_conn *conn;
    unsigned grace_ms;
    console_session *sessions;
    uv_timer_t kick;            /* catches new viewers up after attach */
    uv_timer_t watch;           /* ends stale sessions while any is open */
    int handles_open;           /* kick and watch, until their close */
    int closing;
    int freeing;
    void (*done)(void *opaque);
    void *done_opaque;
};

static void set_msg(char *err, size_t errlen, const char *msg)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s", msg);
}

/* ---- scroll-back ---------------------------------------------------------- */

static void ring_append(console_session *s, const char *data, size_t len)
{
    size_t tail, first;
    if (len >= CONSOLE_SCROLLBACK) {
        memcpy(s->ring, data + len - CONSOLE_SCROLLBACK, CONSOLE_SCROLLBACK);
        s->ring_head = 0;
        s->ring_len = CONSOLE_SCROLLBACK;
        return;
    }
    tail = (s->ring_head + s->ring_len) % CONSOLE_SCROLLBACK;
    first = len < CONSOLE_SCROLLBACK - tail ? len : CONSOLE_SCROLLBACK - tail;
    memcpy(s->ring + tail, data, first);
    memcpy(s->ring, data + first, len - first);
    s->ring_len += len;
    if (s->ring_len > CONSOLE_SCROLLBACK) {
        s->ring_head = (s->ring_head + s->ring_len - CONSOLE_SCROLLBACK) % CONSOLE_SCROLLBACK;
        s->ring_len = CONSOLE_SCROLLBACK;
    }
}

/* The scroll-back in one piece, so a viewer gets it as one frame.  A fresh
 * copy: the callback may cause another replay before it returns. */
static void viewer_replay(console_viewer *v)
{
    console_session *s = v->s;
    size_t first;
    char *buf;
    if (s->ring_len == 0 || v->cbs.on_data == NULL)
        return;
    buf = malloc(s->ring_len);
    if (buf == NULL)
        return;
    first = s->ring_len < CONSOLE_SCROLLBACK - s->ring_head ? s->ring_len
                                                             : CONSOLE_SCROLLBACK - s->ring_head;
    memcpy(buf, s->ring + s->ring_head, first);
    memcpy(buf + first, s->ring, s->ring_len - first);
    v->cbs.on_data(v->opaque, buf, s->ring_len);
    free(buf);
}

/* Delivers what a newly attached viewer is owed: on_open, then the
 * scroll-back.  The caller holds the session. */
static void viewer_catch_up(console_viewer *v)
{
    if (v->pending_open) {
        v->pending_open = 0;
        if (v->cbs.on_open)
            v->cbs.on_open(v->opaque);
    }
    if (v->detached || v->closed_sent || v->s->state == S_ENDED)
        return;
    if (v->needs_replay) {
        v->needs_replay = 0;
        viewer_replay(v);
    }
}

static int viewer_live(const console_viewer *v)
{
    return !v->detached && !v->closed_sent;
}

/* ---- session lifetime ------------------------------------------------------ */

static void hub_maybe_finish(console_hub *h);
static void session_end(console_session *s, console_end why, const char *msg,
                        int catch_up);

static void session_free_cb(uv_handle_t *handle)
{
    console_session *s = handle->data;
    console_hub *h = s->hub;
    console_session **pp;
    for (pp = &h->sessions; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    free(s->ring);
    free(s->domain);
    free(s);
    hub_maybe_finish(h);
}

static void session_maybe_free(console_session *s)
{
    if (s->freeing || s->dispatching > 0 || s->viewers != NULL || s->vc != NULL)
        return;
    s->freeing = 1;
    s->listed = 0;
    uv_close((uv_handle_t *)&s->grace, session_free_cb);
}

static void session_vc_done(void *opaque)
{
    console_session *s = opaque;
    s->vc = NULL;
    session_maybe_free(s);
}

static void session_close_stream(console_session *s)
{
    if (s->vc != NULL && !s->vc_closing) {
        s->vc_closing = 1;
        virt_console_close(s->vc, session_vc_done, s);
    }
}

static void grace_cb(uv_timer_t *t)
{
    console_session *s = t->data;
    s->grace_armed = 0;
    if (s->nviewers == 0)
        session_end(s, CONSOLE_END_SHUTDOWN, "no viewer left", 0);
}

/* Frees detached viewers, then reacts to an empty session: the grace
 * period, or the end of an ended one. */
static void session_sweep(console_session *s)
{
    console_viewer **pp = &s->viewers;
    if (s->dispatching > 0)
        return;
    while (*pp != NULL) {
        console_viewer *v = *pp;
        if (v->detached) {
            *pp = v->next;
            free(v);
        } else {
            pp = &v->next;
        }
    }
    if (s->nviewers == 0 && s->state != S_ENDED && !s->grace_armed) {
        s->grace_armed = 1;
        uv_timer_start(&s->grace, grace_cb, s->hub->grace_ms, 0);
    }
    session_maybe_free(s);
}

static void session_hold(console_session *s)
{
    s->dispatching++;
}

static void session_release(console_session *s)
{
    s->dispatching--;
    session_sweep(s);
}

/* Ends a session: no new viewer joins it, its viewers hear on_closed, its
 * stream closes.  Idempotent. */
static void session_end(console_session *s, console_end why, const char *msg,
                        int catch_up)
{
    if (s->state == S_ENDED)
        return;
    s->state = S_ENDED;
    s->listed = 0;
    if (s->grace_armed) {
        uv_timer_stop(&s->grace);
        s->grace_armed = 0;
    }
    session_hold(s);
    if (catch_up) {
        /* Output that came just before the end still reaches late viewers. */
        for (console_viewer *v = s->viewers; v != NULL; v = v->next)
            if (viewer_live(v) && v->needs_replay) {
                v->pending_open = 0;
                v->needs_replay = 0;
                viewer_replay(v);
            }
    }
    for (console_viewer *v = s->viewers; v != NULL; v = v->next) {
        if (!viewer_live(v))
            continue;
        v->closed_sent = 1;
        if (v->cbs.on_closed)
            v->cbs.on_closed(v->opaque, why, msg);
    }
    session_close_stream(s);
    session_release(s);
}

/* ---- virt_console callbacks ------------------------------------------------ */

static void session_on_open(void *opaque)
{
    console_session *s = opaque;
    if (s->state != S_OPENING)
        return;
    s->state = S_OPEN;
    session_hold(s);
    for (console_viewer *v = s->viewers; v != NULL && s->state == S_OPEN; v = v->next) {
        if (!viewer_live(v))
            continue;
        v->pending_open = 0;
        if (v->cbs.on_open)
            v->cbs.on_open(v->opaque);
    }
    session_release(s);
}

static void session_on_data(void *opaque, const char *data, size_t len)
{
    console_session *s = opaque;
    if (s->state != S_OPEN)
        return;
    ring_append(s, data, len);
    session_hold(s);
    for (console_viewer *v = s->viewers; v != NULL && s->state == S_OPEN; v = v->next) {
        if (!viewer_live(v))
            continue;
        if (v->pending_open || v->needs_replay)
            viewer_catch_up(v); /* the scroll-back already holds `data` */
        else if (v->cbs.on_data)
            v->cbs.on_data(v->opaque, data, len);
    }
    session_release(s);
}

static void session_on_closed(void *opaque, virt_console_end why, const char *msg)
{
    console_session *s = opaque;
    console_end cw = why == VIRT_CONSOLE_EOF     ? CONSOLE_END_EOF
                     : why == VIRT_CONSOLE_ERROR ? CONSOLE_END_ERROR
                                                 : CONSOLE_END_OPEN_FAILED;
    session_end(s, cw, msg, 1);
}

static const virt_console_cbs session_vcbs = {
    .on_open = session_on_open,
    .on_data = session_on_data,
    .on_closed = session_on_closed,
};

#define STALE_MSG "libvirtd restarted: the console stream is gone, reconnect"

/* A session whose stream was opened on a libvirt connection since lost may
 * never hear of its end from libvirt: it is ended here, its viewers told to
 * reconnect.  1 when it was stale. */
static int session_stale(console_session *s)
{
    if (s->state != S_OPEN || s->vc == NULL || s->vc_closing || !virt_console_stale(s->vc))
        return 0;
    session_end(s, CONSOLE_END_ERROR, STALE_MSG, 0);
    return 1;
}

/* Every CONSOLE_WATCH_MS while sessions exist: a viewer left on a stream
 * of a lost connection hears that it ended, even if it never types. */
static void watch_cb(uv_timer_t *t)
{
    console_hub *h = t->data;
    int any = 0;
    for (console_session *s = h->sessions; s != NULL; s = s->next) {
        any = 1;
        if (s->listed)
            session_stale(s);
    }
    if (!any)
        uv_timer_stop(&h->watch);
}

static console_session *session_new(console_hub *h, const char *domain,
                                    char *err, size_t errlen)
{
    console_session *s = calloc(1, sizeof(*s));
    virt_err verr = {0};
    if (s == NULL || (s->domain = strdup(domain)) == NULL ||
        (s->ring = malloc(CONSOLE_SCROLLBACK)) == NULL) {
        if (s != NULL) {
            free(s->domain);
            free(s);
        }
        set_msg(err, errlen, "out of memory");
        return NULL;
    }
    s->hub = h;
    s->state = S_OPENING;
    s->grace.data = s;
    s->vc = virt_console_open(h->loop, h->conn, domain, &session_vcbs, s, &verr);
    if (s->vc == NULL) {
        set_msg(err, errlen, verr.msg);
        free(s->ring);
        free(s->domain);
        free(s);
        return NULL;
    }
    uv_timer_init(h->loop, &s->grace);
    s->listed = 1;
    s->next = h->sessions;
    h->sessions = s;
    if (!uv_is_active((uv_handle_t *)&h->watch))
        uv_timer_start(&h->watch, watch_cb, CONSOLE_WATCH_MS, CONSOLE_WATCH_MS);
    return s;
}

/* ---- hub ------------------------------------------------------------------- */

static void kick_cb(uv_timer_t *t)
{
    console_hub *h = t->data;
    for (console_session *s = h->sessions; s != NULL; s = s->next) {
        if (s->state != S_OPEN)
            continue;
        session_hold(s);
        for (console_viewer *v = s->viewers; v != NULL && s->state == S_OPEN; v = v->next)
            if (viewer_live(v) && (v->pending_open || v->needs_replay))
                viewer_catch_up(v);
        session_release(s);
    }
}

console_hub *console_hub_new(uv_loop_t *loop, virt_conn *conn)
{
    console_hub *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return NULL;
    h->loop = loop;
    h->conn = conn;
    h->grace_ms = CONSOLE_GRACE_MS;
    h->kick.data = h;
    uv_timer_init(loop, &h->kick);
    h->watch.data = h;
    uv_timer_init(loop, &h->watch);
    h->handles_open = 2;
    return h;
}

void console_hub_set_grace(console_hub *h, unsigned ms)
{
    h->grace_ms = ms;
}

static void hub_free_cb(uv_handle_t *handle)
{
    console_hub *h = handle->data;
    if (--h->handles_open > 0)
        return;
    void (*done)(void *) = h->done;
    void *done_opaque = h->done_opaque;
    free(h);
    if (done)
        done(done_opaque);
}

static void hub_maybe_finish(console_hub *h)
{
    if (!h->closing || h->freeing || h->sessions != NULL)
        return;
    h->freeing = 1;
    uv_close((uv_handle_t *)&h->kick, hub_free_cb);
    uv_close((uv_handle_t *)&h->watch, hub_free_cb);
}

void console_hub_close(console_hub *h, void (*done)(void *opaque), void *opaque)
{
    if (h == NULL || h->closing)
        return;
    h->closing = 1;
    h->done = done;
    h->done_opaque = opaque;
    uv_timer_stop(&h->kick);
    uv_timer_stop(&h->watch);
    for (console_session *s = h->sessions; s != NULL; s = s->next)
        session_end(s, CONSOLE_END_SHUTDOWN, "the console service is shutting down", 0);
    hub_maybe_finish(h);
}

size_t console_hub_streams(const console_hub *h)
{
    size_t n = 0;
    for (const console_session *s = h->sessions; s != NULL; s = s->next)
        n += s->listed;
    return n;
}

/* ---- viewers --------------------------------------------------------------- */

console_viewer *console_attach(console_hub *h, const char *domain,
                               const console_viewer_cbs *cbs, void *opaque,
                               char *err, size_t errlen)
{
    console_session *s;
    console_viewer *v;

    if (h->closing) {
        set_msg(err, errlen, "the console service is shutting down");
        return NULL;
    }
    for (s = h->sessions; s != NULL; s = s->next)
        if (s->listed && strcmp(s->domain, domain) == 0)
            break;
    if (s != NULL && session_stale(s))
        s = NULL; /* ended and unlisted: a fresh stream below */
    v = calloc(1, sizeof(*v));
    if (v == NULL) {
        set_msg(err, errlen, "out of memory");
        return NULL;
    }
    if (s == NULL && (s = session_new(h, domain, err, errlen)) == NULL) {
        free(v);
        return NULL;
    }
    if (s->grace_armed) {
        uv_timer_stop(&s->grace);
        s->grace_armed = 0;
    }
    v->s = s;
    v->cbs = *cbs;
    v->opaque = opaque;
    v->needs_replay = 1;
    v->pending_open = s->state == S_OPEN;
    v->next = s->viewers;
    s->viewers = v;
    s->nviewers++;
    /* Never call back from inside attach: the caller has no handle yet. */
    if (v->pending_open)
        uv_timer_start(&h->kick, kick_cb, 0, 0);
    return v;
}

int console_write(console_viewer *v, const void *data, size_t len,
                  char *err, size_t errlen)
{
    console_session *s = v->s;
    virt_err verr = {0};
    if (!viewer_live(v) || s->state == S_ENDED || s->vc == NULL || s->vc_closing) {
        set_msg(err, errlen, "the console has ended");
        return -1;
    }
    if (session_stale(s)) {
        set_msg(err, errlen, STALE_MSG);
        return -1;
    }
    if (virt_console_write(s->vc, data, len, &verr) < 0) {
        set_msg(err, errlen, verr.msg);
        return -1;
    }
    return 0;
}

void console_detach(console_viewer *v)
{
    if (v == NULL || v->detached)
        return;
    v->detached = 1;
    v->s->nviewers--;
    session_sweep(v->s);
}

const char *console_viewer_domain(const console_viewer *v)
{
    return v->s->domain;
}
