/* api_console — the console WebSocket of the API
 * (GET /api/teams/{team}/hosts/{host}/console): a browser's view of a
 * guest's serial console through console.h's hub.  Private to the API
 * (api_int.h).
 */
#include <stdio.h>
#include <stdlib.h>

#include "api_int.h"
#include "websock.h"

#define CONSOLE_BUFFERED_MAX (1024u * 1024)

struct con {
    struct con *next;
    api *a;
    websock *ws;
    console_viewer *v;
    int ended;
};

static void con_unlink(con *k)
{
    con **pp;
    for (pp = &k->a->cons; *pp; pp = &(*pp)->next)
        if (*pp == k) {
            *pp = k->next;
            return;
        }
}

static void con_data(void *opaque, const char *data, size_t len)
{
    con *k = opaque;
    if (k->ended)
        return;
    /* A browser that cannot keep up with the guest loses the console; the
     * scroll-back gives it the screen back on reconnecting. */
    if (websock_buffered(k->ws) > CONSOLE_BUFFERED_MAX) {
        k->ended = 1;
        websock_close(k->ws, 1008, "too slow");
        return;
    }
    websock_send_binary(k->ws, data, len);
}

static void con_closed(void *opaque, console_end why, const char *msg)
{
    con *k = opaque;
    char reason[128];
    if (k->ended)
        return;
    k->ended = 1;
    /* The viewer (and the web UI's status line) learns why; websock cuts
     * the reason to what a close frame holds. */
    snprintf(reason, sizeof reason, "%s%s%s",
             why == CONSOLE_END_OPEN_FAILED ? "console unavailable" : "console ended",
             msg && *msg ? ": " : "", msg ? msg : "");
    websock_close(k->ws, why == CONSOLE_END_EOF || why == CONSOLE_END_SHUTDOWN ? 1000 : 1011,
                  reason);
}

static void con_message(websock *ws, int is_text, const char *data, size_t len, void *opaque)
{
    con *k = opaque;
    char err[128];
    (void)is_text;
    if (k->ended || k->v == NULL)
        return;
    if (console_write(k->v, data, len, err, sizeof err) < 0) {
        k->ended = 1;
        websock_close(ws, 1011, "console input failed");
    }
}

static void con_ws_closed(websock *ws, int code, void *opaque)
{
    con *k = opaque;
    api *a = k->a;
    (void)ws;
    (void)code;
    console_detach(k->v);
    con_unlink(k);
    free(k);
    api_unref(a);
}

void api_h_console_ws(api *a, httpd_req *req, const call *c)
{
    static const websock_cbs wcbs = { con_message, con_ws_closed, NULL };
    static const console_viewer_cbs ccbs = { NULL, con_data, con_closed };
    const char *host = httpd_param(req, "host");
    console_hub *hub = a->ops.consoles ? a->ops.consoles(a->ops.opaque) : NULL;
    const char *dom = a->ops.domain ? a->ops.domain(a->ops.opaque, c->team, host) : NULL;
    websock_opts o = { 0 };
    char err[256];
    con *k;

    if (dom == NULL) {
        httpd_error(req, 404, "not_found", "no host %s in team %d", host, c->team);
        return;
    }
    if (hub == NULL) {
        httpd_error(req, 503, "unavailable", "no consoles in this exercise");
        return;
    }
    if ((k = calloc(1, sizeof *k)) == NULL) {
        httpd_error(req, 500, "internal", "out of memory");
        return;
    }
    k->a = a;
    o.max_message = 64 * 1024;
    o.max_buffered = 2 * CONSOLE_BUFFERED_MAX;
    k->ws = websock_accept_opts(req, &wcbs, &o, k);
    if (k->ws == NULL) {
        free(k);
        return;
    }
    api_ref(a);
    k->next = a->cons;
    a->cons = k;
    k->v = console_attach(hub, dom, &ccbs, k, err, sizeof err);
    if (k->v == NULL)
        con_closed(k, CONSOLE_END_OPEN_FAILED, err);
}

void api_consoles_close(api *a)
{
    con *k, *kn;
    /* Their on_close callbacks unlink them and drop their references. */
    for (k = a->cons; k; k = kn) {
        kn = k->next;
        if (!k->ended) {
            k->ended = 1;
            websock_close(k->ws, 1001, "server shutting down");
        }
    }
}
