/* control — the running orchestrator's local control socket.
 *
 * A UNIX stream socket (mode 0600, in the exercise's state folder) where
 * `cyrange pause|resume|skip|inject|reset|timeline` send one JSON object per
 * line and get one JSON object back.  Only root on the host reaches it; the
 * HTTP API of a later issue offers the same commands with authentication.
 */
#ifndef CYRANGE_CONTROL_H
#define CYRANGE_CONTROL_H

#include <jansson.h>
#include <uv.h>

typedef struct control control;
typedef struct control_pending control_pending;

/* Handles one request (borrowed): returns the reply (new reference), or
 * NULL to answer later with control_respond(`later`, reply) — for requests
 * that wait on a guest.  `later` stays valid until answered even if the
 * client has gone. */
typedef json_t *(*control_handler)(const json_t *req, control_pending *later,
                                   void *opaque);

/* Answers a deferred request (reply: new reference, stolen). */
void control_respond(control_pending *later, json_t *reply);

/* Listens on `path` (an old socket file there is replaced).  NULL with
 * `err`. */
control *control_listen(uv_loop_t *loop, const char *path, control_handler h,
                        void *opaque, char *err, size_t errlen);
/* Stops listening, closes clients and removes the socket file; the struct
 * is freed once every handle is closed. */
void control_close(control *c);

/* Client side (blocking, for the CLI): sends `req` (borrowed), returns the
 * reply (new reference) or NULL with `err`. */
json_t *control_call(const char *path, const json_t *req, int timeout_ms,
                     char *err, size_t errlen);

#endif
