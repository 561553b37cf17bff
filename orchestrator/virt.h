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

#endif
