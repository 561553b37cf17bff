/* agentlink — the orchestrator's side of one guest's agent channel.
 *
 * Connects (and reconnects) to the UNIX socket libvirt/QEMU binds for the
 * guest's virtio-serial port, reads JSON lines through agents/proto, matches
 * replies to requests by id, and reports hellos.  Everything runs on the
 * libuv loop.  Lifecycle: agentlink_new → agentlink_start → … →
 * agentlink_close (the struct is freed in its handles' close callbacks).
 */
#ifndef CYRANGE_AGENTLINK_H
#define CYRANGE_AGENTLINK_H

#include <jansson.h>
#include <uv.h>

#include "proto.h"

typedef struct agentlink agentlink;

typedef struct agentlink_cbs {
    /* A hello arrived (also after every reconnect).  `m` is borrowed. */
    void (*hello)(agentlink *l, const proto_msg *m, void *opaque);
    /* An unsolicited event.  `m` is borrowed. */
    void (*event)(agentlink *l, const proto_msg *m, void *opaque);
    /* The channel connected (1) or was lost (0). */
    void (*state)(agentlink *l, int connected, void *opaque);
} agentlink_cbs;

/* Reply callback: `m` is the reply (borrowed), or NULL when the request
 * timed out or the channel was closed, with a reason in `why`. */
typedef void (*agentlink_reply_cb)(agentlink *l, const proto_msg *m,
                                   const char *why, void *opaque);

/* `path` is copied.  Returns NULL when out of memory. */
agentlink *agentlink_new(uv_loop_t *loop, const char *path,
                         const agentlink_cbs *cbs, void *opaque);
/* Starts connecting; retries every 250 ms while the socket is missing or
 * refuses, and asks for a hello every second until one arrives. */
int agentlink_start(agentlink *l);
/* Sends `msg` (reference stolen) after setting its "id".  `cb` is called
 * exactly once.  Returns 0, or -1 (then cb is not called) when not
 * connected or out of memory. */
int agentlink_request(agentlink *l, json_t *msg, int timeout_ms,
                      agentlink_reply_cb cb, void *opaque);
int agentlink_connected(const agentlink *l);
int agentlink_has_hello(const agentlink *l);
/* Closes the link: pending requests get their callback with "closed", then
 * `done` (may be NULL) is called once everything is freed. */
void agentlink_close(agentlink *l, void (*done)(void *opaque), void *opaque);

#endif
