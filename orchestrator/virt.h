/* virt — the only module that talks to libvirt.
 *
 * Small synchronous calls; callers that run on the libuv loop must make
 * them from the thread pool (uv_queue_work), never on the loop.  A virt_conn
 * may be used from several threads (libvirt connections are thread-safe).
 * Errors land in a caller-supplied virt_err; nothing is printed.
 */
#ifndef CYRANGE_VIRT_H
#define CYRANGE_VIRT_H

#include <stddef.h>
#include <uv.h>

typedef struct virt_conn virt_conn;

typedef struct virt_err {
    int code;           /* libvirt error code, 0 when not from libvirt */
    char msg[512];
} virt_err;

typedef enum virt_dom_state {
    VIRT_DOM_ABSENT,
    VIRT_DOM_RUNNING,
    VIRT_DOM_PAUSED,
    VIRT_DOM_SHUTOFF,
    VIRT_DOM_CRASHED,
    VIRT_DOM_OTHER,
} virt_dom_state;

/* Domain lifecycle events as delivered by virt_events_start's thread. */
typedef enum virt_event {
    VIRT_EV_STARTED,
    VIRT_EV_STOPPED,     /* shut down, destroyed or failed */
    VIRT_EV_CRASHED,
    VIRT_EV_SUSPENDED,
    VIRT_EV_RESUMED,
    VIRT_EV_OTHER,
} virt_event;

/* Called on libvirt's event thread, not on the libuv loop: forward it (e.g.
 * uv_async_send) and return quickly.  `domain` is borrowed. */
typedef void (*virt_event_cb)(void *opaque, const char *domain, virt_event ev);

/* Registers libvirt's event implementation; must precede virt_open when
 * events are wanted.  Idempotent.  0 or -1. */
int virt_events_init(virt_err *err);
/* Opens `uri` (NULL: qemu:///system) and silences libvirt's own printing. */
virt_conn *virt_open(const char *uri, virt_err *err);
void virt_close(virt_conn *c);
const char *virt_uri(const virt_conn *c);

/* Starts a thread running libvirt's event loop and registers `cb` for every
 * domain's lifecycle events.  Stopped by virt_close.  0 or -1. */
int virt_events_start(virt_conn *c, virt_event_cb cb, void *opaque, virt_err *err);

/* What happened to a kept event connection (virt_events_keep). */
typedef enum virt_conn_change {
    VIRT_CONN_LOST,      /* libvirt closed it; reconnecting with back-off */
    VIRT_CONN_BACK,      /* a new connection is in place, events registered */
} virt_conn_change;

/* LOST is called on whichever thread noticed the close (libvirt's event
 * thread, or a thread making a call on the connection); BACK on libvirt's
 * event thread, where the connection may be used (domain events missed in
 * between are not replayed: read the states again).  Forward it and return
 * quickly.  `msg` is borrowed. */
typedef void (*virt_conn_cb)(void *opaque, virt_conn_change what, const char *msg);

#define VIRT_RECONNECT_MIN_MS 250u
#define VIRT_RECONNECT_MAX_MS 5000u

/* Keeps an event connection (after virt_events_start) across a restart of
 * libvirtd: when libvirt closes it (daemon stopped or restarted, keepalive
 * timed out), a new one to the same URI is opened on the event thread,
 * retried with back-off (VIRT_RECONNECT_MIN_MS doubling to _MAX_MS), and
 * the domain events are registered on it again.  The virt_conn pointer
 * stays the same, so consoles opened afterwards use the new connection;
 * consoles open at the time end with VIRT_CONSOLE_ERROR.  While a
 * reconnection can happen, only the console functions and `cb` may use
 * this virt_conn; virt_close stops retrying.  `cb` may be NULL.  0 or -1. */
int virt_events_keep(virt_conn *c, virt_conn_cb cb, void *opaque, virt_err *err);

/* Defines and starts a network from XML (persistent, no autostart). */
int virt_network_create(virt_conn *c, const char *xml, virt_err *err);
/* Stops and undefines a network.  Returns 1 when removed, 0 when absent,
 * -1 on error. */
int virt_network_remove(virt_conn *c, const char *name, virt_err *err);
/* Names of networks starting with `prefix`: a malloc'd NULL-terminated
 * array of malloc'd strings (free with virt_strv_free), or NULL on error. */
char **virt_network_list(virt_conn *c, const char *prefix, virt_err *err);
/* The bridge device of a network, malloc'd, or NULL. */
char *virt_network_bridge(virt_conn *c, const char *name, virt_err *err);

/* Defines and starts a domain from XML (persistent). */
int virt_domain_create(virt_conn *c, const char *xml, virt_err *err);
/* Defines a domain without starting it. */
int virt_domain_define(virt_conn *c, const char *xml, virt_err *err);
int virt_domain_start(virt_conn *c, const char *name, virt_err *err);
/* Forcibly stops and undefines a domain.  1 removed, 0 absent, -1 error. */
int virt_domain_remove(virt_conn *c, const char *name, virt_err *err);
/* Forcibly stops a domain (keeps its definition).  0 or -1. */
int virt_domain_destroy(virt_conn *c, const char *name, virt_err *err);
virt_dom_state virt_domain_state(virt_conn *c, const char *name, virt_err *err);
const char *virt_dom_state_name(virt_dom_state s);
/* Domains whose cyrange metadata names `exercise` (or, when `exercise` is
 * NULL, every cyrange domain): a NULL-terminated array, or NULL on error. */
char **virt_domain_list(virt_conn *c, const char *exercise, virt_err *err);
/* The cyrange metadata element of a domain (XML, malloc'd) or NULL. */
char *virt_domain_metadata(virt_conn *c, const char *name, virt_err *err);

/* Makes sure a directory storage pool exists and runs.  0 or -1. */
int virt_pool_ensure(virt_conn *c, const char *pool, const char *dir, virt_err *err);
/* Creates a qcow2 copy-on-write volume over `backing` (a qcow2 file). */
int virt_volume_create_overlay(virt_conn *c, const char *pool, const char *name,
                               const char *backing, virt_err *err);
/* Deletes a volume.  1 removed, 0 absent, -1 error. */
int virt_volume_remove(virt_conn *c, const char *pool, const char *name,
                       virt_err *err);
/* Names of the pool's volumes starting with `prefix` (NULL-terminated). */
char **virt_volume_list(virt_conn *c, const char *pool, const char *prefix,
                        virt_err *err);
/* Path of a volume, malloc'd, or NULL. */
char *virt_volume_path(virt_conn *c, const char *pool, const char *name,
                       virt_err *err);

void virt_strv_free(char **v);

/* The XML namespace of cyrange's domain metadata. */
#define VIRT_METADATA_NS  "https://cyrange.org/xmlns/range/1"
#define VIRT_METADATA_KEY "cyrange"

/* ---- Serial consoles ------------------------------------------------------
 *
 * A virt_console is one libvirt console stream (virDomainOpenConsole on the
 * domain's first console, non-blocking) bridged to a libuv loop.
 *
 * Threads: virt_console_open, _write and _close are called on the loop
 * thread and never block it: the open and the final abort run on the libuv
 * thread pool, reads and writes happen in stream callbacks on libvirt's event
 * thread (virt_events_start), and output reaches the loop through a
 * mutex-protected buffer and a uv_async_t.  Every virt_console_cbs callback
 * runs on the loop thread.
 *
 * Takeover: the console is opened with VIR_DOMAIN_CONSOLE_FORCE, so opening
 * it takes the console away from any other client (a stale viewer, or
 * `virsh console`); that other client's stream ends.  The reverse also
 * holds: when someone else forces the console, this one ends with
 * on_closed.
 *
 * Output that the loop does not collect fast enough is bounded
 * (VIRT_CONSOLE_OUT_MAX): the oldest bytes are dropped and replaced by a
 * marker line "[cyrange: N bytes of console output dropped]".
 *
 * Requirements: virt_events_init before virt_open, and virt_events_start on
 * the connection (its thread runs the stream callbacks; cb may be NULL).
 * Every console must be closed, and its done callback have run, before
 * virt_close.
 */

typedef struct virt_console virt_console;

/* Why a console ended. */
typedef enum virt_console_end {
    VIRT_CONSOLE_EOF,          /* the stream ended: guest stopped, or the
                                  daemon closed the console */
    VIRT_CONSOLE_ERROR,        /* stream error: taken over by another client
                                  (FORCE), guest destroyed, daemon gone */
    VIRT_CONSOLE_OPEN_FAILED,  /* no such domain, not running, no console */
} virt_console_end;

/* Called on the loop thread; `data` and `msg` are borrowed for the call.
 * A callback may call virt_console_close on its own console. */
typedef struct virt_console_cbs {
    /* The stream is open (optional, may be NULL). */
    void (*on_open)(void *opaque);
    /* Guest output, in order, coalesced. */
    void (*on_data)(void *opaque, const char *data, size_t len);
    /* The console ended (called at most once; never after
     * virt_console_close).  The handle stays valid: close it. */
    void (*on_closed)(void *opaque, virt_console_end why, const char *msg);
} virt_console_cbs;

/* Called on the loop thread once the console is gone and freed. */
typedef void (*virt_console_done_cb)(void *opaque);

#define VIRT_CONSOLE_OUT_MAX (256u * 1024) /* output waiting for the loop */
#define VIRT_CONSOLE_IN_MAX (64u * 1024)   /* input waiting for the guest */

/* Starts opening the console of running domain `domain` (copied).  Returns
 * at once; the outcome arrives as on_open or on_closed(OPEN_FAILED).  `cbs`
 * is copied; `opaque` is passed to every callback.  NULL (and `err`) when
 * nothing could be started: out of memory, or no event thread.  The caller
 * owns the handle and must end it with virt_console_close. */
virt_console *virt_console_open(uv_loop_t *loop, virt_conn *c, const char *domain,
                                const virt_console_cbs *cbs, void *opaque,
                                virt_err *err);
/* 1 when the console's stream was opened on a libvirt connection that has
 * since been lost (libvirtd restarted): it will carry nothing again, even if
 * libvirt has not reported its end yet.  Loop thread. */
int virt_console_stale(virt_console *vc);
/* Queues `len` bytes of input for the guest (copied), also before the
 * stream is open.  0, or -1 (and `err`) when the console has ended or the
 * input queue (VIRT_CONSOLE_IN_MAX) would overflow; nothing is queued then. */
int virt_console_write(virt_console *vc, const void *data, size_t len,
                       virt_err *err);
/* Ends the console: no callback of `cbs` runs any more; the stream is
 * aborted off the loop; `done(done_opaque)` (may be NULL) runs on the loop
 * when everything is freed.  Call exactly once; vc is invalid afterwards. */
void virt_console_close(virt_console *vc, virt_console_done_cb done,
                        void *done_opaque);
const char *virt_console_end_name(virt_console_end why);

#endif
