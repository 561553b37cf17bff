/* websock — WebSocket (RFC 6455) server connections over httpd.
 *
 * A route handler upgrades its request with websock_accept(); from then on
 * the connection carries frames: client frames must be masked, messages may
 * be fragmented, text must be UTF-8, pings are answered, idle connections
 * are pinged, and the close handshake is done for the caller.  Protocol
 * errors close with 1002 (protocol), 1007 (bad UTF-8) or 1009 (message too
 * big).
 *
 * Output is bounded: websock_buffered() tells how much is queued, so a
 * producer (a guest's serial console) can wait for on_drain.  A send that
 * would queue more than max_buffered drops the client at once, without a
 * close frame (it would sit behind the backlog); on_close then gets 1008.
 *
 * Lifetime: the websock is valid from websock_accept() until its on_close
 * callback returns; on_close is called exactly once, from the loop.
 */
#ifndef CYRANGE_WEBSOCK_H
#define CYRANGE_WEBSOCK_H

#include <stddef.h>

#include "httpd.h"

typedef struct websock websock;

typedef struct websock_cbs {
    /* A complete message; `data` is borrowed for the call (text messages
     * are valid UTF-8 and NUL-terminated, binary ones too, for
     * convenience). */
    void (*on_message)(websock *ws, int is_text, const char *data, size_t len,
                       void *opaque);
    /* The connection is gone.  `code`: the peer's close code (1005 when its
     * close frame had none), ours when we closed or failed it, 1006 when it
     * dropped without a close frame.  Required. */
    void (*on_close)(websock *ws, int code, void *opaque);
    /* Everything queued has been written.  Optional. */
    void (*on_drain)(websock *ws, void *opaque);
} websock_cbs;

typedef struct websock_opts {
    size_t max_message;         /* 0 = 1 MiB; beyond: close 1009 */
    size_t max_buffered;        /* 0 = 4 MiB; beyond: dropped, 1008 */
    unsigned ping_interval_ms;  /* 0 = 30 s: a ping after that long without
                                 * traffic; no answer within another
                                 * interval drops the connection (1006) */
    unsigned close_timeout_ms;  /* 0 = 5 s to wait for the peer's close */
    const char *subprotocols;   /* comma-separated list we speak, or NULL;
                                 * the first one the client offers is
                                 * echoed */
} websock_opts;

/* Validates the handshake of `req` (GET, Upgrade: websocket, Connection:
 * upgrade, Sec-WebSocket-Version: 13, a 16-byte Sec-WebSocket-Key) and
 * answers 101.  On failure answers 400 (426 for another version) and
 * returns NULL; the request is answered either way.  `cbs` is copied. */
websock *websock_accept(httpd_req *req, const websock_cbs *cbs, void *opaque);
/* Same, with options (`o` may be NULL; it is copied). */
websock *websock_accept_opts(httpd_req *req, const websock_cbs *cbs,
                             const websock_opts *o, void *opaque);

/* Send one message.  Return 0, or -1 when closing/closed or when the
 * output limit dropped the client. */
int websock_send_text(websock *ws, const char *data, size_t len);
int websock_send_binary(websock *ws, const void *data, size_t len);
/* Starts the close handshake (reason may be NULL, at most 123 bytes are
 * sent).  on_close follows when the peer answers or after close_timeout. */
void websock_close(websock *ws, int code, const char *reason);
/* Bytes queued for the client and not yet written. */
size_t websock_buffered(const websock *ws);
/* The subprotocol agreed on, or NULL. */
const char *websock_protocol(const websock *ws);

/* Sec-WebSocket-Accept for a key: base64(SHA-1(key + GUID)), 28 chars. */
void websock_accept_key(const char *key, char out[29]);
/* 1 when s[0..len) is valid UTF-8 (no overlongs, surrogates, > U+10FFFF). */
int websock_utf8_valid(const char *s, size_t len);

#endif
