/* httpd — an HTTP/1.1 server on the libuv loop, the transport of the API.
 *
 * Requests are parsed by Debian's http-parser (whose prefix, http_, is not
 * ours).  One connection processes its requests in order, one at a time:
 * while a handler has not answered, the parser is paused and reading stops,
 * so pipelined requests wait and output never queues without bound.
 * Limits: header bytes (431), body bytes (413, per route if wanted), the
 * time a request may take to arrive (408), idle keep-alive connections
 * (closed), the connection count (503).  Every error answer is JSON:
 *   {"error":{"status":404,"code":"not_found","message":"no route for GET /x"}}
 *
 * Routes are "/literal/{param}/..." patterns per method (HEAD also matches
 * GET routes, without the body); static directories are served under a
 * prefix (GET/HEAD, ETag + Last-Modified + 304, streamed from disk, no way
 * out of the directory, not even by symlink).
 *
 * Request lifetime: the server creates an httpd_req per request and calls
 * the route's handler with it.  The handler must answer it exactly once,
 * then or later, with httpd_respond*, httpd_error, a failing
 * httpd_body_json or websock_accept; the answer frees the request.  When
 * the client goes away (or httpd_close runs) before the answer, the request
 * stays valid until it is answered: the late answer is discarded safely
 * (httpd_req_alive() says whether anyone still listens).  A request that is
 * never answered is leaked, and its connection stays stalled.
 */
#ifndef CYRANGE_HTTPD_H
#define CYRANGE_HTTPD_H

#include <stddef.h>

#include <jansson.h>
#include <uv.h>

typedef struct httpd httpd;
typedef struct httpd_req httpd_req;
typedef struct httpd_conn httpd_conn;

typedef struct httpd_opts {
    const char *bind_addr;       /* IPv4/IPv6 literal; NULL = "127.0.0.1" */
    int port;                    /* 0 = ephemeral, see httpd_port() */
    size_t max_header_bytes;     /* request line + headers; 0 = 16 KiB */
    size_t max_body_bytes;       /* 0 = 1 MiB; routes may override */
    unsigned idle_timeout_ms;    /* keep-alive idle, stalled writes; 0 = 30 s */
    unsigned request_timeout_ms; /* headers + body must arrive; 0 = 10 s */
    unsigned max_connections;    /* beyond: 503 and close; 0 = 512 */
    int backlog;                 /* listen(2) backlog; 0 = 511 */
} httpd_opts;

/* A route handler.  `req` is owned by the server until answered. */
typedef void (*httpd_handler)(httpd_req *req, void *opaque);

/* Binds and listens.  `o` may be NULL (all defaults); it is copied.  Returns
 * NULL with a message in err on failure (a listener that failed to listen
 * is closed through the loop: run it before uv_loop_close). */
httpd *httpd_new(uv_loop_t *loop, const httpd_opts *o, char *err, size_t errlen);
/* The port actually bound (useful with port 0). */
int httpd_port(const httpd *h);

/* Adds a route.  `method` is "GET", "POST", ...; `pattern` starts with '/',
 * its segments are literals or "{name}" parameters; both are copied.  A
 * literal segment beats a parameter when two routes match.  Returns 0, or
 * -1 on a malformed pattern or out of memory. */
int httpd_route(httpd *h, const char *method, const char *pattern,
                httpd_handler fn, void *opaque);
/* Same, with this route's own body limit (bytes, > 0). */
int httpd_route_limit(httpd *h, const char *method, const char *pattern,
                      httpd_handler fn, void *opaque, size_t max_body_bytes);
/* Serves the files under `dir` at URL `prefix` ("/" or "/ui", ...); `dir`
 * must exist (it is resolved once, now).  Routes take precedence; the
 * longest matching prefix wins.  Returns 0 or -1. */
int httpd_static(httpd *h, const char *prefix, const char *dir);

/* Closes the listener and every connection; `done` (may be NULL) is called
 * once all their handles are closed and the server is freed.  Requests not
 * yet answered stay valid (see above). */
void httpd_close(httpd *h, void (*done)(void *opaque), void *opaque);

/* Counters: connections, requests, responses by class, errors.  New
 * reference. */
json_t *httpd_stats_json(const httpd *h);

/* Request accessors.  Returned strings belong to the request and live as
 * long as it does; they are NUL-terminated. */
const char *httpd_method(const httpd_req *req);  /* "GET", "HEAD", ... */
const char *httpd_path(const httpd_req *req);    /* decoded, normalised */
const char *httpd_query_raw(const httpd_req *req); /* after '?', or "" */
/* The first value of query parameter `name`, decoded ('+' is a space), or
 * NULL when absent. */
const char *httpd_query(httpd_req *req, const char *name);
/* A "{name}" parameter of the matched route, or NULL. */
const char *httpd_param(const httpd_req *req, const char *name);
/* The first header called `name` (case-insensitive), or NULL. */
const char *httpd_header(const httpd_req *req, const char *name);
/* The body (NUL-terminated, may contain NULs); *len gets its length. */
const char *httpd_body(const httpd_req *req, size_t *len);
/* "address:port" of the client. */
const char *httpd_remote(const httpd_req *req);
/* 1 while the client is still connected and the request unanswered. */
int httpd_req_alive(const httpd_req *req);

/* Parses the body as JSON.  Returns a new reference, or NULL after having
 * answered 400 {"code":"bad_json","message":"body:LINE:COL: ..."} (the
 * request is then freed: the handler must just return).  `jerr` may be
 * NULL; otherwise it gets jansson's error. */
json_t *httpd_body_json(httpd_req *req, json_error_t *jerr);

/* Adds a response header (copied), e.g. Set-Cookie.  Names and values with
 * CR or LF are refused (-1). */
int httpd_add_header(httpd_req *req, const char *name, const char *value);
/* Answers.  `body` is copied; `content_type` may be NULL when len is 0.
 * All of these free the request; they return 0, or -1 when the answer
 * could not be queued (the connection is then closed; the request is
 * freed all the same).  An answer to a request whose client is gone
 * returns 0 and is discarded. */
int httpd_respond(httpd_req *req, int status, const char *content_type,
                  const void *body, size_t len);
/* `j` is borrowed. */
int httpd_respond_json(httpd_req *req, int status, json_t *j);
/* The JSON error shape above; `code` is a short snake_case word. */
int httpd_error(httpd_req *req, int status, const char *code,
                const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Streams the file at `path` from disk.  `content_type` NULL = by the
 * extension; `download_name` non-NULL adds Content-Disposition: attachment.
 * A missing file answers 404 JSON.  Conditional GETs get 304. */
int httpd_respond_file(httpd_req *req, const char *path,
                       const char *content_type, const char *download_name);

/* Connection takeover after "101 Switching Protocols", for websock.
 * httpd_upgrade answers `req` with 101 (plus the headers added to it) and
 * hands the connection over: from then on every byte received goes to
 * on_data, on_drain is called when queued output has been written, and
 * on_close exactly once when the connection is gone (after which the
 * httpd_conn must not be used).  Returns NULL (and answers 500) when the
 * client is gone or out of memory; the request is freed either way. */
typedef struct httpd_upgrade_cbs {
    void (*on_data)(const char *data, size_t len, void *opaque);
    void (*on_drain)(void *opaque);
    void (*on_close)(void *opaque);
} httpd_upgrade_cbs;

httpd_conn *httpd_upgrade(httpd_req *req, const httpd_upgrade_cbs *cbs,
                          void *opaque);
/* Queues `a` then `b` (either may be empty), copied.  Returns 0 or -1. */
int httpd_conn_write(httpd_conn *c, const void *a, size_t alen,
                     const void *b, size_t blen);
/* The loop the request's server runs on, or NULL when the client is gone. */
uv_loop_t *httpd_req_loop(const httpd_req *req);
/* Bytes queued but not yet written to the socket. */
size_t httpd_conn_buffered(const httpd_conn *c);
/* Closes the connection, after queued output when `graceful`.  on_close
 * follows (later, from the loop). */
void httpd_conn_close(httpd_conn *c, int graceful);

/* Test and fuzz entry: runs `data` through a connection without a socket,
 * as if a client had sent it and then half-closed.  Every byte the server
 * would send goes to `sink` (may be NULL).  The connection finishes on the
 * loop: run it (uv_run) to complete.  Returns 0, or -1 when out of memory. */
int httpd_conn_feed(httpd *h, const void *data, size_t len,
                    void (*sink)(const void *data, size_t len, void *opaque),
                    void *opaque);

#endif
