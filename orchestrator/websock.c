/* websock — RFC 6455 over an httpd connection; see websock.h. */
#include "websock.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <nettle/base64.h>
#include <nettle/sha1.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

enum { OP_CONT = 0, OP_TEXT = 1, OP_BIN = 2, OP_CLOSE = 8, OP_PING = 9, OP_PONG = 10 };

struct websock {
    httpd_conn *c; /* NULL once the connection is gone */
    websock_cbs cbs;
    void *opaque;
    websock_opts o;
    char proto[64];
    uv_timer_t timer;
    /* The frame being read. */
    unsigned char hdr[14];
    size_t hlen, hneed;
    int in_payload;
    int fin, opcode;
    unsigned char mask[4];
    uint64_t plen, pgot;
    unsigned char ctrl[125];
    /* The message being assembled. */
    char *msg;
    size_t msg_len, msg_cap;
    int msg_op;
    int close_sent, close_rcvd, failed;
    int code;
    int traffic, ping_out;
};

/* ---- helpers ---- */

void websock_accept_key(const char *key, char out[29])
{
    struct sha1_ctx ctx;
    uint8_t dig[SHA1_DIGEST_SIZE];
    sha1_init(&ctx);
    sha1_update(&ctx, strlen(key), (const uint8_t *)key);
    sha1_update(&ctx, sizeof WS_GUID - 1, (const uint8_t *)WS_GUID);
    sha1_digest(&ctx, sizeof dig, dig);
    base64_encode_raw(out, sizeof dig, dig);
    out[BASE64_ENCODE_RAW_LENGTH(SHA1_DIGEST_SIZE)] = '\0';
}

int websock_utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (i + n >= len)
            return 0;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += n + 1;
    }
    return 1;
}

/* Does the comma-separated header value contain `token` (any case)? */
static int has_token(const char *list, const char *token)
{
    size_t tl = strlen(token);
    const char *s = list;
    while (s && *s) {
        while (*s == ' ' || *s == '\t' || *s == ',')
            s++;
        const char *e = s;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > s && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if ((size_t)(t - s) == tl && strncasecmp(s, token, tl) == 0)
            return 1;
        s = e;
    }
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    websock *ws = h->data;
    free(ws->msg);
    free(ws);
}

/* ---- output ---- */

static void on_timer(uv_timer_t *t);

static int send_frame(websock *ws, int opcode, const void *data, size_t len)
{
    unsigned char h[10];
    size_t hl;
    if (!ws->c)
        return -1;
    /* Pongs count too: a peer that pings without reading must not grow
     * the queue.  Only the one close frame is exempt. */
    if (opcode != OP_CLOSE && httpd_conn_buffered(ws->c) + len > ws->o.max_buffered) {
        /* A client this slow would make us queue without bound: drop it,
         * from the loop rather than inside the caller's send. */
        ws->failed = 1;
        ws->code = 1008;
        uv_timer_start(&ws->timer, on_timer, 0, 0);
        return -1;
    }
    h[0] = (unsigned char)(0x80 | opcode);
    if (len < 126) {
        h[1] = (unsigned char)len;
        hl = 2;
    } else if (len <= 0xFFFF) {
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
    return httpd_conn_write(ws->c, h, hl, data, len);
}

static void send_close(websock *ws, int code, const char *reason)
{
    unsigned char p[125];
    size_t pl = 0;
    if (ws->close_sent || !ws->c)
        return;
    ws->close_sent = 1;
    if (code != 1005 && code != 1006) {
        p[0] = (unsigned char)(code >> 8);
        p[1] = (unsigned char)code;
        pl = 2;
        if (reason) {
            size_t rl = strlen(reason);
            if (rl > sizeof p - 2)
                rl = sizeof p - 2;
            /* Never cut a UTF-8 sequence in two. */
            while (rl > 0 && !websock_utf8_valid(reason, rl))
                rl--;
            memcpy(p + 2, reason, rl);
            pl += rl;
        }
    }
    send_frame(ws, OP_CLOSE, p, pl);
}

/* Fails the connection: a close frame with `code`, then TCP closes. */
static void ws_fail(websock *ws, int code, const char *reason)
{
    if (ws->failed || !ws->c)
        return;
    ws->failed = 1;
    ws->code = code;
    send_close(ws, code, reason);
    if (ws->c)
        httpd_conn_close(ws->c, 1);
}

/* ---- httpd callbacks ---- */

static void on_conn_close(void *opaque)
{
    websock *ws = opaque;
    int code = ws->code;
    if (!ws->failed && !ws->close_rcvd && !ws->close_sent)
        code = 1006;
    ws->c = NULL;
    uv_timer_stop(&ws->timer);
    ws->cbs.on_close(ws, code ? code : 1006, ws->opaque);
    uv_close((uv_handle_t *)&ws->timer, on_timer_closed);
}

static void on_conn_drain(void *opaque)
{
    websock *ws = opaque;
    if (ws->cbs.on_drain && ws->c && !ws->close_sent)
        ws->cbs.on_drain(ws, ws->opaque);
}

static int valid_close_code(int code)
{
    if (code >= 3000 && code <= 4999)
        return 1;
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014);
}

static void frame_done(websock *ws)
{
    ws->in_payload = 0;
    ws->hlen = 0;
    ws->hneed = 2;
    switch (ws->opcode) {
    case OP_PING:
        if (!ws->close_sent)
            send_frame(ws, OP_PONG, ws->ctrl, (size_t)ws->plen);
        return;
    case OP_PONG:
        return;
    case OP_CLOSE: {
        int code = 1005;
        if (ws->plen == 1) {
            ws_fail(ws, 1002, "close frame of one byte");
            return;
        }
        if (ws->plen >= 2) {
            code = ws->ctrl[0] << 8 | ws->ctrl[1];
            if (!valid_close_code(code)) {
                ws_fail(ws, 1002, "invalid close code");
                return;
            }
            if (!websock_utf8_valid((const char *)ws->ctrl + 2, (size_t)ws->plen - 2)) {
                ws_fail(ws, 1007, "close reason is not UTF-8");
                return;
            }
        }
        ws->close_rcvd = 1;
        ws->code = code;
        /* Echo the code; the server closes TCP first (RFC 6455 7.1.1). */
        send_close(ws, code == 1005 ? 1000 : code, NULL);
        if (ws->c)
            httpd_conn_close(ws->c, 1);
        return;
    }
    default:
        break;
    }
    ws->msg_len += (size_t)ws->plen;
    if (!ws->fin)
        return;
    int text = ws->msg_op == OP_TEXT;
    ws->msg_op = 0;
    size_t len = ws->msg_len;
    ws->msg_len = 0;
    if (text && !websock_utf8_valid(ws->msg, len)) {
        ws_fail(ws, 1007, "text message is not UTF-8");
        return;
    }
    ws->msg[len] = '\0';
    if (!ws->close_sent)
        ws->cbs.on_message(ws, text, ws->msg, len, ws->opaque);
    if (ws->msg_cap > 64 * 1024 && ws->msg_len == 0) {
        free(ws->msg);
        ws->msg = NULL;
        ws->msg_cap = 0;
    }
}

/* The frame header is complete: check it and prepare for the payload. */
static int header_done(websock *ws)
{
    const unsigned char *h = ws->hdr;
    size_t off = 2;
    uint64_t len = h[1] & 0x7F;
    if (len == 126) {
        len = (uint64_t)h[2] << 8 | h[3];
        off = 4;
    } else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | h[2 + i];
        off = 10;
        if (len >> 63) {
            ws_fail(ws, 1002, "frame length with the top bit set");
            return -1;
        }
    }
    memcpy(ws->mask, h + off, 4);
    ws->plen = len;
    ws->pgot = 0;
    if (ws->opcode >= OP_CLOSE) {
        if (ws->opcode > OP_PONG) {
            ws_fail(ws, 1002, "unknown control opcode");
            return -1;
        }
        if (!ws->fin || len > 125) {
            ws_fail(ws, 1002, "control frames must be whole and short");
            return -1;
        }
    } else {
        if (ws->opcode > OP_BIN) {
            ws_fail(ws, 1002, "unknown opcode");
            return -1;
        }
        if (ws->opcode == OP_CONT && !ws->msg_op) {
            ws_fail(ws, 1002, "continuation without a message");
            return -1;
        }
        if (ws->opcode != OP_CONT && ws->msg_op) {
            ws_fail(ws, 1002, "new message inside a fragmented one");
            return -1;
        }
        if (len > ws->o.max_message || ws->msg_len + len > ws->o.max_message) {
            ws_fail(ws, 1009, "message too big");
            return -1;
        }
        if (ws->opcode != OP_CONT) {
            ws->msg_op = ws->opcode;
            ws->msg_len = 0;
        }
        size_t need = ws->msg_len + (size_t)len + 1;
        if (need > ws->msg_cap) {
            size_t cap = ws->msg_cap ? ws->msg_cap : 1024;
            while (cap < need)
                cap *= 2;
            char *m = realloc(ws->msg, cap);
            if (!m) {
                ws_fail(ws, 1011, "out of memory");
                return -1;
            }
            ws->msg = m;
            ws->msg_cap = cap;
        }
    }
    ws->in_payload = 1;
    if (len == 0)
        frame_done(ws);
    return 0;
}

static void on_conn_data(const char *data, size_t len, void *opaque)
{
    websock *ws = opaque;
    const unsigned char *p = (const unsigned char *)data;
    if (len)
        ws->traffic = 1, ws->ping_out = 0;
    while (len > 0 && ws->c && !ws->failed && !ws->close_rcvd) {
        if (!ws->in_payload) {
            size_t n = ws->hneed - ws->hlen;
            if (n > len)
                n = len;
            memcpy(ws->hdr + ws->hlen, p, n);
            ws->hlen += n;
            p += n;
            len -= n;
            if (ws->hlen == 2 && ws->hneed == 2) {
                unsigned b0 = ws->hdr[0], b1 = ws->hdr[1];
                if (b0 & 0x70) {
                    ws_fail(ws, 1002, "reserved bits set");
                    return;
                }
                if (!(b1 & 0x80)) {
                    ws_fail(ws, 1002, "client frames must be masked");
                    return;
                }
                ws->fin = (b0 & 0x80) != 0;
                ws->opcode = (int)(b0 & 0x0F);
                unsigned l7 = b1 & 0x7F;
                ws->hneed = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + 4;
            }
            if (ws->hlen == ws->hneed && header_done(ws) < 0)
                return;
            continue;
        }
        uint64_t left = ws->plen - ws->pgot;
        size_t n = left < len ? (size_t)left : len;
        unsigned char *dst = ws->opcode >= OP_CLOSE
                                 ? ws->ctrl + ws->pgot
                                 : (unsigned char *)ws->msg + ws->msg_len + ws->pgot;
        for (size_t i = 0; i < n; i++)
            dst[i] = p[i] ^ ws->mask[(ws->pgot + i) & 3];
        ws->pgot += n;
        p += n;
        len -= n;
        if (ws->pgot == ws->plen)
            frame_done(ws);
    }
}

static void on_timer(uv_timer_t *t)
{
    websock *ws = t->data;
    if (!ws->c)
        return;
    if (ws->close_sent || ws->ping_out || ws->failed) {
        /* Dropped for its backlog, or the peer did not answer our close or
         * our ping in time. */
        if (!ws->close_sent && !ws->failed)
            ws->code = 1006, ws->failed = 1;
        httpd_conn_close(ws->c, 0);
        return;
    }
    if (!ws->traffic) {
        send_frame(ws, OP_PING, "", 0);
        ws->ping_out = 1;
    }
    ws->traffic = 0;
}

/* ---- public ---- */

websock *websock_accept(httpd_req *req, const websock_cbs *cbs, void *opaque)
{
    return websock_accept_opts(req, cbs, NULL, opaque);
}

websock *websock_accept_opts(httpd_req *req, const websock_cbs *cbs,
                             const websock_opts *o, void *opaque)
{
    const char *up = httpd_header(req, "Upgrade");
    const char *conn = httpd_header(req, "Connection");
    const char *ver = httpd_header(req, "Sec-WebSocket-Version");
    const char *key = httpd_header(req, "Sec-WebSocket-Key");
    websock *ws = NULL;
    uv_loop_t *loop = httpd_req_loop(req);
    if (!loop) {
        httpd_respond(req, 500, NULL, NULL, 0); /* discarded: nobody listens */
        return NULL;
    }
    if (!cbs || !cbs->on_message || !cbs->on_close) {
        httpd_error(req, 500, "internal", "websocket without callbacks");
        return NULL;
    }
    if (strcmp(httpd_method(req), "GET") != 0 || !up || !has_token(up, "websocket") ||
        !conn || !has_token(conn, "upgrade")) {
        httpd_error(req, 400, "bad_handshake", "a websocket needs GET with "
                    "Upgrade: websocket and Connection: Upgrade");
        return NULL;
    }
    if (!ver || strcmp(ver, "13") != 0) {
        httpd_add_header(req, "Sec-WebSocket-Version", "13");
        httpd_error(req, 426, "bad_version", "websocket version 13 is required");
        return NULL;
    }
    struct base64_decode_ctx b64;
    uint8_t raw[BASE64_DECODE_LENGTH(24) + 4];
    size_t rl = sizeof raw;
    size_t kl = key ? strlen(key) : 0;
    base64_decode_init(&b64);
    if (kl != 24 || !base64_decode_update(&b64, &rl, raw, kl, key) ||
        !base64_decode_final(&b64) || rl != 16) {
        httpd_error(req, 400, "bad_handshake", "Sec-WebSocket-Key must be 16 bytes in base64");
        return NULL;
    }
    ws = calloc(1, sizeof *ws);
    if (!ws) {
        httpd_error(req, 500, "out_of_memory", "out of memory");
        return NULL;
    }
    if (o)
        ws->o = *o;
    ws->o.subprotocols = NULL;
    if (!ws->o.max_message)
        ws->o.max_message = 1024 * 1024;
    if (!ws->o.max_buffered)
        ws->o.max_buffered = 4 * 1024 * 1024;
    if (!ws->o.ping_interval_ms)
        ws->o.ping_interval_ms = 30000;
    if (!ws->o.close_timeout_ms)
        ws->o.close_timeout_ms = 5000;
    ws->cbs = *cbs;
    ws->opaque = opaque;
    ws->hneed = 2;
    const char *offered = httpd_header(req, "Sec-WebSocket-Protocol");
    if (o && o->subprotocols && offered) {
        const char *s = offered;
        while (*s && !ws->proto[0]) {
            while (*s == ' ' || *s == ',')
                s++;
            const char *e = s;
            while (*e && *e != ',' && *e != ' ')
                e++;
            if (e > s && (size_t)(e - s) < sizeof ws->proto) {
                char tok[64];
                memcpy(tok, s, (size_t)(e - s));
                tok[e - s] = '\0';
                if (has_token(o->subprotocols, tok))
                    snprintf(ws->proto, sizeof ws->proto, "%s", tok);
            }
            s = e;
        }
    }
    char accept[29];
    websock_accept_key(key, accept);
    if (httpd_add_header(req, "Upgrade", "websocket") < 0 ||
        httpd_add_header(req, "Connection", "Upgrade") < 0 ||
        httpd_add_header(req, "Sec-WebSocket-Accept", accept) < 0 ||
        (ws->proto[0] && httpd_add_header(req, "Sec-WebSocket-Protocol", ws->proto) < 0)) {
        free(ws);
        httpd_error(req, 500, "out_of_memory", "out of memory");
        return NULL;
    }
    static const httpd_upgrade_cbs ucbs = {on_conn_data, on_conn_drain, on_conn_close};
    uv_timer_init(loop, &ws->timer);
    ws->timer.data = ws;
    ws->c = httpd_upgrade(req, &ucbs, ws);
    if (!ws->c) {
        uv_close((uv_handle_t *)&ws->timer, on_timer_closed);
        return NULL;
    }
    uv_timer_start(&ws->timer, on_timer, ws->o.ping_interval_ms, ws->o.ping_interval_ms);
    return ws;
}

int websock_send_text(websock *ws, const char *data, size_t len)
{
    if (!ws->c || ws->close_sent || ws->failed)
        return -1;
    return send_frame(ws, OP_TEXT, data, len);
}

int websock_send_binary(websock *ws, const void *data, size_t len)
{
    if (!ws->c || ws->close_sent || ws->failed)
        return -1;
    return send_frame(ws, OP_BIN, data, len);
}

void websock_close(websock *ws, int code, const char *reason)
{
    if (!ws->c || ws->close_sent || ws->failed)
        return;
    if (!valid_close_code(code))
        code = 1000;
    ws->code = code;
    send_close(ws, code, reason);
    if (ws->c)
        uv_timer_start(&ws->timer, on_timer, ws->o.close_timeout_ms, 0);
}

size_t websock_buffered(const websock *ws)
{
    return ws->c ? httpd_conn_buffered(ws->c) : 0;
}

const char *websock_protocol(const websock *ws)
{
    return ws->proto[0] ? ws->proto : NULL;
}
