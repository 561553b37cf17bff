#include "virt.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct virt_conn {
    virConnectPtr conn;         /* swapped by a reconnect (under mu) */
    char *uri;
    int cb_id;                  /* domain event callback, -1 when none */
    virt_event_cb cb;
    void *opaque;
    pthread_t thread;
    int thread_started;
    volatile int stopping;
    /* Reconnection (virt_events_keep); mu guards conn, cb_id and the
     * retry timer against the threads that notice a closed connection. */
    pthread_mutex_t mu;
    virt_conn_cb conn_cb;
    void *conn_opaque;
    int keep;                   /* close callback registered on conn */
    int retry_timer;            /* libvirt timeout id, -1 when none */
    unsigned backoff_ms;
    unsigned gen;               /* bumped when conn is lost or replaced (mu) */
};

static pthread_once_t events_once = PTHREAD_ONCE_INIT;
static int events_rc = -1;

/* libvirt prints errors to stderr unless told otherwise; library code must
 * not print, so errors are read from virGetLastError() instead. */
static void silent_error(void *opaque, virErrorPtr e)
{
    (void)opaque;
    (void)e;
}

static void set_err(virt_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_err(virt_err *err, const char *fmt, ...)
{
    char what[256];
    va_list ap;
    virErrorPtr e = virGetLastError();

    if (err == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    err->code = e ? e->code : 0;
    if (e && e->message)
        snprintf(err->msg, sizeof(err->msg), "%s: %s", what, e->message);
    else
        snprintf(err->msg, sizeof(err->msg), "%s", what);
}

static void do_events_init(void)
{
    virSetErrorFunc(NULL, silent_error);
    events_rc = virEventRegisterDefaultImpl();
}

int virt_events_init(virt_err *err)
{
    pthread_once(&events_once, do_events_init);
    if (events_rc < 0) {
        set_err(err, "cannot register libvirt's event loop");
        return -1;
    }
    return 0;
}

virt_conn *virt_open(const char *uri, virt_err *err)
{
    virt_conn *c = calloc(1, sizeof(*c));
    virSetErrorFunc(NULL, silent_error);
    if (c == NULL) {
        snprintf(err->msg, sizeof(err->msg), "out of memory");
        return NULL;
    }
    c->cb_id = -1;
    c->retry_timer = -1;
    c->uri = strdup(uri ? uri : "qemu:///system");
    c->conn = virConnectOpen(c->uri);
    if (c->conn == NULL) {
        set_err(err, "cannot connect to libvirt at %s (is libvirtd running? "
                "`make deps` starts it)", c->uri);
        free(c->uri);
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    virConnSetErrorFunc(c->conn, NULL, silent_error);
    return c;
}

const char *virt_uri(const virt_conn *c)
{
    return c->uri;
}

static void *event_thread(void *arg)
{
    virt_conn *c = arg;
    while (!c->stopping)
        if (virEventRunDefaultImpl() < 0)
            break;
    return NULL;
}

static int lifecycle_cb(virConnectPtr conn, virDomainPtr dom, int event,
                        int detail, void *opaque)
{
    virt_conn *c = opaque;
    virt_event ev = VIRT_EV_OTHER;
    (void)conn;
    switch (event) {
    case VIR_DOMAIN_EVENT_STARTED: ev = VIRT_EV_STARTED; break;
    case VIR_DOMAIN_EVENT_SUSPENDED: ev = VIRT_EV_SUSPENDED; break;
    case VIR_DOMAIN_EVENT_RESUMED: ev = VIRT_EV_RESUMED; break;
    case VIR_DOMAIN_EVENT_STOPPED:
        ev = detail == VIR_DOMAIN_EVENT_STOPPED_CRASHED ? VIRT_EV_CRASHED
                                                        : VIRT_EV_STOPPED;
        break;
    case VIR_DOMAIN_EVENT_CRASHED: ev = VIRT_EV_CRASHED; break;
    default: break;
    }
    if (c->cb)
        c->cb(c->opaque, virDomainGetName(dom), ev);
    return 0;
}

int virt_events_start(virt_conn *c, virt_event_cb cb, void *opaque, virt_err *err)
{
    if (virt_events_init(err) < 0)
        return -1;
    c->cb = cb;
    c->opaque = opaque;
    c->cb_id = virConnectDomainEventRegisterAny(
        c->conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
        VIR_DOMAIN_EVENT_CALLBACK(lifecycle_cb), c, NULL);
    if (c->cb_id < 0) {
        set_err(err, "cannot register for domain events");
        return -1;
    }
    /* A keepalive lets libvirt notice a dead daemon and close the
     * connection instead of hanging. */
    virConnectSetKeepAlive(c->conn, 5, 3);
    if (pthread_create(&c->thread, NULL, event_thread, c) != 0) {
        snprintf(err->msg, sizeof(err->msg), "cannot start the libvirt event thread");
        return -1;
    }
    c->thread_started = 1;
    return 0;
}

/* Wakes virEventRunDefaultImpl so that the thread sees `stopping`. */
static void wake_timer(int timer, void *opaque)
{
    (void)opaque;
    virEventRemoveTimeout(timer);
}

/* ---- Keeping the event connection across daemon restarts ------------- */

static void reconnect_timer(int timer, void *opaque);

/* Arms the next reconnection attempt (mu held). */
static void arm_retry(virt_conn *c)
{
    if (c->stopping || c->retry_timer >= 0)
        return;
    c->retry_timer = virEventAddTimeout((int)c->backoff_ms, reconnect_timer, c, NULL);
}

/* libvirt closed the connection: the daemon stopped or restarted, or the
 * keepalive timed out.  Runs on whichever thread noticed, possibly inside
 * libvirt's client lock: only a timer is armed here. */
static void close_cb(virConnectPtr conn, int reason, void *opaque)
{
    virt_conn *c = opaque;
    const char *why = reason == VIR_CONNECT_CLOSE_REASON_EOF ? "the daemon closed it"
                      : reason == VIR_CONNECT_CLOSE_REASON_KEEPALIVE ? "keepalive timed out"
                      : reason == VIR_CONNECT_CLOSE_REASON_ERROR ? "connection error"
                      : "closed by the client";
    int report;
    pthread_mutex_lock(&c->mu);
    report = !c->stopping && c->conn == conn && c->retry_timer < 0;
    if (c->conn == conn)
        c->gen++; /* streams opened on it are dead too */
    if (report) {
        c->backoff_ms = VIRT_RECONNECT_MIN_MS;
        arm_retry(c);
    }
    pthread_mutex_unlock(&c->mu);
    if (report && c->conn_cb)
        c->conn_cb(c->conn_opaque, VIRT_CONN_LOST, why);
}

/* The event thread: opens a new connection, registers the domain events,
 * the close callback and the keepalive on it, swaps it in, and lets the
 * old one go (its streams hold their own references). */
static void reconnect_timer(int timer, void *opaque)
{
    virt_conn *c = opaque;
    virConnectPtr nc = NULL, old;
    int id = -1, old_id;

    virEventRemoveTimeout(timer);
    pthread_mutex_lock(&c->mu);
    c->retry_timer = -1;
    pthread_mutex_unlock(&c->mu);
    if (c->stopping)
        return;
    nc = virConnectOpen(c->uri);
    if (nc != NULL) {
        virConnSetErrorFunc(nc, NULL, silent_error);
        id = virConnectDomainEventRegisterAny(nc, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                              VIR_DOMAIN_EVENT_CALLBACK(lifecycle_cb), c,
                                              NULL);
    }
    if (id < 0 || virConnectRegisterCloseCallback(nc, close_cb, c, NULL) < 0) {
        if (nc && id >= 0)
            virConnectDomainEventDeregisterAny(nc, id);
        if (nc)
            virConnectClose(nc);
        pthread_mutex_lock(&c->mu);
        c->backoff_ms = c->backoff_ms * 2 > VIRT_RECONNECT_MAX_MS ? VIRT_RECONNECT_MAX_MS
                                                                 : c->backoff_ms * 2;
        arm_retry(c);
        pthread_mutex_unlock(&c->mu);
        return;
    }
    virConnectSetKeepAlive(nc, 5, 3);
    pthread_mutex_lock(&c->mu);
    old = c->conn;
    old_id = c->cb_id;
    c->conn = nc;
    c->cb_id = id;
    c->gen++;
    pthread_mutex_unlock(&c->mu);
    /* On a dead connection these only drop local registrations (and their
     * references), which is what lets the old connection be freed. */
    virConnectUnregisterCloseCallback(old, close_cb);
    if (old_id >= 0)
        virConnectDomainEventDeregisterAny(old, old_id);
    virConnectClose(old);
    if (c->conn_cb)
        c->conn_cb(c->conn_opaque, VIRT_CONN_BACK, c->uri);
}

int virt_events_keep(virt_conn *c, virt_conn_cb cb, void *opaque, virt_err *err)
{
    if (!c->thread_started) {
        snprintf(err->msg, sizeof(err->msg), "reconnection needs the event thread "
                 "(virt_events_start)");
        return -1;
    }
    c->conn_cb = cb;
    c->conn_opaque = opaque;
    if (virConnectRegisterCloseCallback(c->conn, close_cb, c, NULL) < 0) {
        set_err(err, "cannot watch the libvirt connection");
        return -1;
    }
    c->keep = 1;
    return 0;
}

/* A reference to the current connection, for threads other than the event
 * thread (a reconnect may swap it); release it with virConnectClose.  `gen`
 * receives the connection's generation. */
static virConnectPtr conn_ref(virt_conn *c, unsigned *gen)
{
    virConnectPtr p;
    pthread_mutex_lock(&c->mu);
    p = c->conn;
    virConnectRef(p);
    *gen = c->gen;
    pthread_mutex_unlock(&c->mu);
    return p;
}

void virt_close(virt_conn *c)
{
    if (c == NULL)
        return;
    /* The event thread stops first: after the join no reconnect runs and
     * no callback fires, so the connection below is the final one. */
    pthread_mutex_lock(&c->mu);
    c->stopping = 1;
    pthread_mutex_unlock(&c->mu);
    if (c->thread_started) {
        virEventAddTimeout(0, wake_timer, NULL, NULL);
        pthread_join(c->thread, NULL);
    }
    if (c->retry_timer >= 0)
        virEventRemoveTimeout(c->retry_timer);
    if (c->keep)
        virConnectUnregisterCloseCallback(c->conn, close_cb);
    if (c->cb_id >= 0)
        virConnectDomainEventDeregisterAny(c->conn, c->cb_id);
    virConnectClose(c->conn);
    pthread_mutex_destroy(&c->mu);
    free(c->uri);
    free(c);
}

int virt_network_create(virt_conn *c, const char *xml, virt_err *err)
{
    virNetworkPtr n = virNetworkDefineXML(c->conn, xml);
    if (n == NULL) {
        set_err(err, "cannot define network");
        return -1;
    }
    if (virNetworkCreate(n) < 0) {
        set_err(err, "cannot start network %s", virNetworkGetName(n));
        virNetworkUndefine(n);
        virNetworkFree(n);
        return -1;
    }
    virNetworkFree(n);
    return 0;
}

int virt_network_remove(virt_conn *c, const char *name, virt_err *err)
{
    virNetworkPtr n = virNetworkLookupByName(c->conn, name);
    if (n == NULL) {
        virErrorPtr e = virGetLastError();
        if (e && e->code == VIR_ERR_NO_NETWORK)
            return 0;
        set_err(err, "cannot look up network %s", name);
        return -1;
    }
    if (virNetworkIsActive(n) == 1 && virNetworkDestroy(n) < 0) {
        set_err(err, "cannot stop network %s", name);
        virNetworkFree(n);
        return -1;
    }
    if (virNetworkIsPersistent(n) == 1 && virNetworkUndefine(n) < 0) {
        set_err(err, "cannot undefine network %s", name);
        virNetworkFree(n);
        return -1;
    }
    virNetworkFree(n);
    return 1;
}

void virt_strv_free(char **v)
{
    if (v == NULL)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

static int strv_push(char ***v, size_t *n, const char *s)
{
    char **nv = realloc(*v, (*n + 2) * sizeof(char *));
    if (nv == NULL)
        return -1;
    *v = nv;
    nv[*n] = strdup(s);
    if (nv[*n] == NULL)
        return -1;
    (*n)++;
    nv[*n] = NULL;
    return 0;
}

char **virt_network_list(virt_conn *c, const char *prefix, virt_err *err)
{
    virNetworkPtr *nets = NULL;
    char **out = calloc(1, sizeof(char *));
    size_t n = 0;
    int cnt = virConnectListAllNetworks(c->conn, &nets, 0);
    if (cnt < 0 || out == NULL) {
        set_err(err, "cannot list networks");
        free(out);
        return NULL;
    }
    for (int i = 0; i < cnt; i++) {
        const char *name = virNetworkGetName(nets[i]);
        if (name && strncmp(name, prefix, strlen(prefix)) == 0 &&
            strv_push(&out, &n, name) < 0) {
            virt_strv_free(out);
            out = NULL;
            snprintf(err->msg, sizeof(err->msg), "out of memory");
        }
        virNetworkFree(nets[i]);
        if (out == NULL) {
            for (int j = i + 1; j < cnt; j++)
                virNetworkFree(nets[j]);
            break;
        }
    }
    free(nets);
    return out;
}

char *virt_network_bridge(virt_conn *c, const char *name, virt_err *err)
{
    virNetworkPtr n = virNetworkLookupByName(c->conn, name);
    char *br;
    if (n == NULL) {
        set_err(err, "cannot look up network %s", name);
        return NULL;
    }
    br = virNetworkGetBridgeName(n);
    if (br == NULL)
        set_err(err, "network %s has no bridge", name);
    virNetworkFree(n);
    return br;
}

int virt_domain_define(virt_conn *c, const char *xml, virt_err *err)
{
    virDomainPtr d = virDomainDefineXML(c->conn, xml);
    if (d == NULL) {
        set_err(err, "cannot define domain");
        return -1;
    }
    virDomainFree(d);
    return 0;
}

int virt_domain_start(virt_conn *c, const char *name, virt_err *err)
{
    virDomainPtr d = virDomainLookupByName(c->conn, name);
    int rc = 0;
    if (d == NULL) {
        set_err(err, "cannot look up domain %s", name);
        return -1;
    }
    if (virDomainIsActive(d) != 1 && virDomainCreate(d) < 0) {
        set_err(err, "cannot start domain %s", name);
        rc = -1;
    }
    virDomainFree(d);
    return rc;
}

int virt_domain_create(virt_conn *c, const char *xml, virt_err *err)
{
    virDomainPtr d = virDomainDefineXML(c->conn, xml);
    if (d == NULL) {
        set_err(err, "cannot define domain");
        return -1;
    }
    if (virDomainCreate(d) < 0) {
        set_err(err, "cannot start domain %s", virDomainGetName(d));
        virDomainUndefine(d);
        virDomainFree(d);
        return -1;
    }
    virDomainFree(d);
    return 0;
}

int virt_domain_destroy(virt_conn *c, const char *name, virt_err *err)
{
    virDomainPtr d = virDomainLookupByName(c->conn, name);
    int rc = 0;
    if (d == NULL) {
        set_err(err, "cannot look up domain %s", name);
        return -1;
    }
    if (virDomainIsActive(d) == 1 && virDomainDestroy(d) < 0) {
        set_err(err, "cannot stop domain %s", name);
        rc = -1;
    }
    virDomainFree(d);
    return rc;
}

int virt_domain_remove(virt_conn *c, const char *name, virt_err *err)
{
    virDomainPtr d = virDomainLookupByName(c->conn, name);
    if (d == NULL) {
        virErrorPtr e = virGetLastError();
        if (e && e->code == VIR_ERR_NO_DOMAIN)
            return 0;
        set_err(err, "cannot look up domain %s", name);
        return -1;
    }
    if (virDomainIsActive(d) == 1 && virDomainDestroy(d) < 0) {
        /* The domain may have stopped meanwhile; only fail if it runs. */
        if (virDomainIsActive(d) == 1) {
            set_err(err, "cannot stop domain %s", name);
            virDomainFree(d);
            return -1;
        }
    }
    if (virDomainIsPersistent(d) == 1 &&
        virDomainUndefineFlags(d, VIR_DOMAIN_UNDEFINE_MANAGED_SAVE |
                                      VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA) < 0) {
        set_err(err, "cannot undefine domain %s", name);
        virDomainFree(d);
        return -1;
    }
    virDomainFree(d);
    return 1;
}

const char *virt_dom_state_name(virt_dom_state s)
{
    switch (s) {
    case VIRT_DOM_ABSENT: return "absent";
    case VIRT_DOM_RUNNING: return "running";
    case VIRT_DOM_PAUSED: return "paused";
    case VIRT_DOM_SHUTOFF: return "shut off";
    case VIRT_DOM_CRASHED: return "crashed";
    case VIRT_DOM_OTHER: return "other";
    }
    return "?";
}

virt_dom_state virt_domain_state(virt_conn *c, const char *name, virt_err *err)
{
    virDomainPtr d = virDomainLookupByName(c->conn, name);
    int state = 0, reason = 0;
    virt_dom_state out = VIRT_DOM_OTHER;
    if (d == NULL)
        return VIRT_DOM_ABSENT;
    if (virDomainGetState(d, &state, &reason, 0) < 0) {
        set_err(err, "cannot get state of %s", name);
        virDomainFree(d);
        return VIRT_DOM_OTHER;
    }
    switch (state) {
    case VIR_DOMAIN_RUNNING:
    case VIR_DOMAIN_BLOCKED: out = VIRT_DOM_RUNNING; break;
    case VIR_DOMAIN_PAUSED: out = VIRT_DOM_PAUSED; break;
    case VIR_DOMAIN_CRASHED: out = VIRT_DOM_CRASHED; break;
    case VIR_DOMAIN_SHUTOFF:
        out = reason == VIR_DOMAIN_SHUTOFF_CRASHED ? VIRT_DOM_CRASHED
                                                   : VIRT_DOM_SHUTOFF;
        break;
    default: out = VIRT_DOM_OTHER; break;
    }
    virDomainFree(d);
    return out;
}

char *virt_domain_metadata(virt_conn *c, const char *name, virt_err *err)
{
    virDomainPtr d = virDomainLookupByName(c->conn, name);
    char *md;
    if (d == NULL) {
        set_err(err, "cannot look up domain %s", name);
        return NULL;
    }
    md = virDomainGetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, VIRT_METADATA_NS,
                              VIR_DOMAIN_AFFECT_CONFIG);
    virDomainFree(d);
    return md;
}

/* Extracts <exercise>…</exercise> from our metadata element. */
static int metadata_exercise_is(const char *md, const char *exercise)
{
    const char *p = strstr(md, "<exercise>");
    const char *q;
    size_t n = strlen(exercise);
    if (p == NULL)
        return 0;
    p += strlen("<exercise>");
    q = strstr(p, "</exercise>");
    return q != NULL && (size_t)(q - p) == n && strncmp(p, exercise, n) == 0;
}

char **virt_domain_list(virt_conn *c, const char *exercise, virt_err *err)
{
    virDomainPtr *doms = NULL;
    char **out = calloc(1, sizeof(char *));
    size_t n = 0;
    int cnt = virConnectListAllDomains(c->conn, &doms, 0);
    if (cnt < 0 || out == NULL) {
        set_err(err, "cannot list domains");
        free(out);
        return NULL;
    }
    for (int i = 0; i < cnt; i++) {
        char *md = virDomainGetMetadata(doms[i], VIR_DOMAIN_METADATA_ELEMENT,
                                        VIRT_METADATA_NS, VIR_DOMAIN_AFFECT_CONFIG);
        if (md != NULL && (exercise == NULL || metadata_exercise_is(md, exercise)) &&
            out != NULL && strv_push(&out, &n, virDomainGetName(doms[i])) < 0) {
            virt_strv_free(out);
            out = NULL;
            snprintf(err->msg, sizeof(err->msg), "out of memory");
        }
        free(md);
        virDomainFree(doms[i]);
    }
    free(doms);
    return out;
}

int virt_pool_ensure(virt_conn *c, const char *pool, const char *dir, virt_err *err)
{
    virStoragePoolPtr p = virStoragePoolLookupByName(c->conn, pool);
    char *xml = NULL;
    if (p == NULL) {
        if (asprintf(&xml, "<pool type='dir'><name>%s</name><target><path>%s</path>"
                     "</target></pool>", pool, dir) < 0) {
            snprintf(err->msg, sizeof(err->msg), "out of memory");
            return -1;
        }
        p = virStoragePoolDefineXML(c->conn, xml, 0);
        free(xml);
        if (p == NULL) {
            set_err(err, "cannot define storage pool %s", pool);
            return -1;
        }
        if (virStoragePoolBuild(p, 0) < 0) {
            set_err(err, "cannot build storage pool %s", pool);
            virStoragePoolFree(p);
            return -1;
        }
    }
    if (virStoragePoolIsActive(p) != 1 && virStoragePoolCreate(p, 0) < 0) {
        set_err(err, "cannot start storage pool %s", pool);
        virStoragePoolFree(p);
        return -1;
    }
    virStoragePoolRefresh(p, 0);
    virStoragePoolFree(p);
    return 0;
}

static virStoragePoolPtr pool_get(virt_conn *c, const char *pool, virt_err *err)
{
    virStoragePoolPtr p = virStoragePoolLookupByName(c->conn, pool);
    if (p == NULL)
        set_err(err, "cannot look up storage pool %s", pool);
    return p;
}

int virt_volume_create_overlay(virt_conn *c, const char *pool, const char *name,
                               const char *backing, virt_err *err)
{
    virStoragePoolPtr p = pool_get(c, pool, err);
    virStorageVolPtr v;
    char *xml = NULL;
    if (p == NULL)
        return -1;
    /* Capacity 0 with a backing store: libvirt takes the backing image's. */
    if (asprintf(&xml, "<volume><name>%s</name><capacity unit='bytes'>0</capacity>"
                 "<target><format type='qcow2'/><permissions><mode>0644</mode>"
                 "</permissions></target>"
                 "<backingStore><path>%s</path><format type='qcow2'/></backingStore>"
                 "</volume>", name, backing) < 0) {
        virStoragePoolFree(p);
        snprintf(err->msg, sizeof(err->msg), "out of memory");
        return -1;
    }
    v = virStorageVolCreateXML(p, xml, 0);
    free(xml);
    if (v == NULL) {
        set_err(err, "cannot create overlay volume %s over %s", name, backing);
        virStoragePoolFree(p);
        return -1;
    }
    virStorageVolFree(v);
    virStoragePoolFree(p);
    return 0;
}

int virt_volume_remove(virt_conn *c, const char *pool, const char *name,
                       virt_err *err)
{
    virStoragePoolPtr p = virStoragePoolLookupByName(c->conn, pool);
    virStorageVolPtr v;
    if (p == NULL)
        return 0; /* no pool, no volume */
    virStoragePoolRefresh(p, 0);
    v = virStorageVolLookupByName(p, name);
    if (v == NULL) {
        virStoragePoolFree(p);
        return 0;
    }
    if (virStorageVolDelete(v, 0) < 0) {
        set_err(err, "cannot delete volume %s", name);
        virStorageVolFree(v);
        virStoragePoolFree(p);
        return -1;
    }
    virStorageVolFree(v);
    virStoragePoolFree(p);
    return 1;
}

char **virt_volume_list(virt_conn *c, const char *pool, const char *prefix,
                        virt_err *err)
{
    virStoragePoolPtr p = virStoragePoolLookupByName(c->conn, pool);
    virStorageVolPtr *vols = NULL;
    char **out = calloc(1, sizeof(char *));
    size_t n = 0;
    int cnt;
    if (out == NULL) {
        snprintf(err->msg, sizeof(err->msg), "out of memory");
        if (p)
            virStoragePoolFree(p);
        return NULL;
    }
    if (p == NULL)
        return out; /* no pool: no volumes */
    virStoragePoolRefresh(p, 0);
    cnt = virStoragePoolListAllVolumes(p, &vols, 0);
    if (cnt < 0) {
        set_err(err, "cannot list volumes of %s", pool);
        virStoragePoolFree(p);
        free(out);
        return NULL;
    }
    for (int i = 0; i < cnt; i++) {
        const char *name = virStorageVolGetName(vols[i]);
        if (out && name && strncmp(name, prefix, strlen(prefix)) == 0 &&
            strv_push(&out, &n, name) < 0) {
            virt_strv_free(out);
            out = NULL;
            snprintf(err->msg, sizeof(err->msg), "out of memory");
        }
        virStorageVolFree(vols[i]);
    }
    free(vols);
    virStoragePoolFree(p);
    return out;
}

char *virt_volume_path(virt_conn *c, const char *pool, const char *name,
                       virt_err *err)
{
    virStoragePoolPtr p = pool_get(c, pool, err);
    virStorageVolPtr v;
    char *path;
    if (p == NULL)
        return NULL;
    v = virStorageVolLookupByName(p, name);
    if (v == NULL) {
        set_err(err, "cannot look up volume %s", name);
        virStoragePoolFree(p);
        return NULL;
    }
    path = virStorageVolGetPath(v);
    virStorageVolFree(v);
    virStoragePoolFree(p);
    return path;
}

/* ---- Serial consoles ------------------------------------------------------
 *
 * Three threads touch a console: the loop (open, write, close, delivery),
 * the libuv thread pool (the blocking open and the final abort) and
 * libvirt's event thread (stream callbacks: reads and writes).  Lock order:
 * wmu, then libvirt's stream lock, then mu; no libvirt call is ever made
 * while mu is held.
 *
 * Freeing: libvirt's remote driver never calls a stream callback's free
 * function (remoteStreamCallbackFree tests a field that is never NULL), so
 * the end of the callback cannot be learnt from it.  Stream callbacks only
 * run on the single event thread, so after the callback is removed a
 * zero-delay libvirt timeout (the "barrier") added to the same loop runs
 * after any dispatch still in flight; only then is the console freed. */

enum { VC_OPENING, VC_OPEN, VC_ENDED };

#define VC_READ_EVENTS (VIR_STREAM_EVENT_READABLE | VIR_STREAM_EVENT_ERROR | \
                        VIR_STREAM_EVENT_HANGUP)
#define VC_CHUNK 16384
/* Reads per callback: a flooding guest must not starve the event thread;
 * libvirt calls again while data is queued. */
#define VC_READS_PER_EVENT 64

struct virt_console {
    uv_loop_t *loop;
    uv_async_t async;          /* output, end and release reach the loop */
    uv_work_t work;            /* the open, later the abort */
    virt_conn *conn;
    char *domain;
    virt_console_cbs cbs;
    void *opaque;
    virStreamPtr st;           /* set by the open work under wmu */

    /* Loop thread only. */
    int state;
    int closing;               /* virt_console_close was called */
    int work_busy;
    int work_done;             /* the abort has run, or was not needed */
    int handle_closing;
    int open_ok;
    virt_err open_err;
    virt_console_done_cb done;
    void *done_opaque;
    char *deliver;             /* swapped with out on delivery */
    size_t deliver_cap;

    /* Guarded by wmu: the stream callback's registration. */
    pthread_mutex_t wmu;
    int cb_added;              /* a callback was registered once */
    int cb_registered;         /* ... and is still registered */
    int armed;                 /* WRITABLE is among its events */

    /* Guarded by mu. */
    pthread_mutex_t mu;
    char *out;
    size_t out_len, out_cap, out_dropped;
    char *in;
    size_t in_len, in_cap;
    int ended;
    int ended_reported;
    virt_console_end end_why;
    char end_msg[256];
    int released;              /* the barrier ran: no callback will run again */
    unsigned gen;              /* of the connection the open used (mu) */
};

static void vc_err(virt_err *err, const char *msg)
{
    if (err == NULL)
        return;
    err->code = 0;
    snprintf(err->msg, sizeof(err->msg), "%s", msg);
}

const char *virt_console_end_name(virt_console_end why)
{
    switch (why) {
    case VIRT_CONSOLE_EOF: return "eof";
    case VIRT_CONSOLE_ERROR: return "error";
    case VIRT_CONSOLE_OPEN_FAILED: return "open failed";
    }
    return "?";
}

/* Grows *buf to hold `need` bytes, doubling from 4 KiB up to `max`. */
static int vc_reserve(char **buf, size_t *cap, size_t need, size_t max)
{
    size_t ncap = *cap ? *cap : 4096;
    char *nb;
    if (need <= *cap)
        return 0;
    if (need > max)
        return -1;
    while (ncap < need)
        ncap *= 2;
    if (ncap > max)
        ncap = max;
    nb = realloc(*buf, ncap);
    if (nb == NULL)
        return -1;
    *buf = nb;
    *cap = ncap;
    return 0;
}

/* Appends guest output, dropping the oldest bytes beyond
 * VIRT_CONSOLE_OUT_MAX.  Called with mu held. */
static void vc_out_append(virt_console *vc, const char *p, size_t n)
{
    if (n >= VIRT_CONSOLE_OUT_MAX) {
        vc->out_dropped += vc->out_len + (n - VIRT_CONSOLE_OUT_MAX);
        p += n - VIRT_CONSOLE_OUT_MAX;
        n = VIRT_CONSOLE_OUT_MAX;
        vc->out_len = 0;
    } else if (vc->out_len + n > VIRT_CONSOLE_OUT_MAX) {
        size_t drop = vc->out_len + n - VIRT_CONSOLE_OUT_MAX;
        memmove(vc->out, vc->out + drop, vc->out_len - drop);
        vc->out_len -= drop;
        vc->out_dropped += drop;
    }
    if (vc_reserve(&vc->out, &vc->out_cap, vc->out_len + n, VIRT_CONSOLE_OUT_MAX) < 0) {
        vc->out_dropped += n;
        return;
    }
    memcpy(vc->out + vc->out_len, p, n);
    vc->out_len += n;
}

/* Records the end of the stream once and wakes the loop.  Any thread. */
static void vc_set_ended(virt_console *vc, virt_console_end why, const char *msg)
{
    pthread_mutex_lock(&vc->mu);
    if (!vc->ended) {
        vc->ended = 1;
        vc->end_why = why;
        snprintf(vc->end_msg, sizeof(vc->end_msg), "%s", msg);
    }
    uv_async_send(&vc->async);
    pthread_mutex_unlock(&vc->mu);
}

static void vc_last_error(char *msg, size_t len, const char *what)
{
    virErrorPtr e = virGetLastError();
    if (e && e->message)
        snprintf(msg, len, "%s: %s", what, e->message);
    else
        snprintf(msg, len, "%s", what);
}

/* Sends queued input on the event thread.  0, or -1 with `msg` set when the
 * stream failed. */
static int vc_flush_input(virt_console *vc, virStreamPtr st, char *msg, size_t msglen)
{
    char buf[VC_CHUNK];
    int empty;

    for (;;) {
        size_t n;
        int w;
        pthread_mutex_lock(&vc->mu);
        n = vc->in_len < sizeof(buf) ? vc->in_len : sizeof(buf);
        memcpy(buf, vc->in, n);
        pthread_mutex_unlock(&vc->mu);
        if (n == 0)
            break;
        w = virStreamSend(st, buf, n);
        if (w == -2)
            return 0; /* full: WRITABLE stays armed and brings us back */
        if (w < 0) {
            vc_last_error(msg, msglen, "cannot write to the console");
            return -1;
        }
        /* Only this thread consumes input, so the head is still ours. */
        pthread_mutex_lock(&vc->mu);
        memmove(vc->in, vc->in + w, vc->in_len - (size_t)w);
        vc->in_len -= (size_t)w;
        pthread_mutex_unlock(&vc->mu);
    }
    /* Drained: stop asking for WRITABLE (libvirt's remote streams are always
     * writable, so an armed callback would spin), unless the loop queued
     * more meanwhile; wmu orders this against virt_console_write. */
    pthread_mutex_lock(&vc->wmu);
    pthread_mutex_lock(&vc->mu);
    empty = vc->in_len == 0;
    pthread_mutex_unlock(&vc->mu);
    if (empty && vc->armed && vc->cb_registered &&
        virStreamEventUpdateCallback(st, VC_READ_EVENTS) == 0)
        vc->armed = 0;
    pthread_mutex_unlock(&vc->wmu);
    return 0;
}

/* The stream callback, on libvirt's event thread. */
static void vc_stream_cb(virStreamPtr st, int events, void *opaque)
{
    virt_console *vc = opaque;
    char buf[VC_CHUNK];
    char msg[256] = "";
    int ended = 0, got = 0;
    virt_console_end why = VIRT_CONSOLE_EOF;

    if (events & VC_READ_EVENTS) {
        for (int i = 0; i < VC_READS_PER_EVENT; i++) {
            int n = virStreamRecv(st, buf, sizeof(buf));
            if (n > 0) {
                pthread_mutex_lock(&vc->mu);
                vc_out_append(vc, buf, (size_t)n);
                pthread_mutex_unlock(&vc->mu);
                got = 1;
                continue;
            }
            if (n == -2)
                break;
            ended = 1;
            if (n == 0) {
                snprintf(msg, sizeof(msg), "the console stream ended");
            } else {
                why = VIRT_CONSOLE_ERROR;
                vc_last_error(msg, sizeof(msg), "console stream error");
            }
            break;
        }
    }
    if (got) {
        pthread_mutex_lock(&vc->mu);
        uv_async_send(&vc->async);
        pthread_mutex_unlock(&vc->mu);
    }
    if (!ended && (events & (VIR_STREAM_EVENT_HANGUP | VIR_STREAM_EVENT_ERROR))) {
        /* Drivers that report these directly (the remote driver turns them
         * into a readable end instead). */
        ended = 1;
        why = (events & VIR_STREAM_EVENT_ERROR) ? VIRT_CONSOLE_ERROR : VIRT_CONSOLE_EOF;
        snprintf(msg, sizeof(msg), "console stream %s",
                 why == VIRT_CONSOLE_ERROR ? "error" : "hangup");
    }
    if (!ended && (events & VIR_STREAM_EVENT_WRITABLE) &&
        vc_flush_input(vc, st, msg, sizeof(msg)) < 0) {
        ended = 1;
        why = VIRT_CONSOLE_ERROR;
    }
    if (ended) {
        vc_set_ended(vc, why, msg);
        /* An ended stream stays readable; without removal the callback
         * would fire forever.  The loop frees the console later, behind
         * the barrier. */
        pthread_mutex_lock(&vc->wmu);
        if (vc->cb_registered) {
            virStreamEventRemoveCallback(st);
            vc->cb_registered = 0;
            vc->armed = 0;
        }
        pthread_mutex_unlock(&vc->wmu);
    }
}

/* The barrier (see above), on the event thread: no stream callback of this
 * console can be running or run again.  The loop may free the console as
 * soon as it sees `released`, so the wake-up happens under mu. */
static void vc_barrier_cb(int timer, void *opaque)
{
    virt_console *vc = opaque;
    virEventRemoveTimeout(timer);
    pthread_mutex_lock(&vc->mu);
    vc->released = 1;
    uv_async_send(&vc->async);
    pthread_mutex_unlock(&vc->mu);
}

/* Thread pool: the blocking part of the open. */
static void vc_open_work(uv_work_t *w)
{
    virt_console *vc = w->data;
    virConnectPtr conn = NULL;
    virDomainPtr dom = NULL;
    virStreamPtr st = NULL;
    int rc, want_w;
    unsigned gen;

    conn = conn_ref(vc->conn, &gen);
    pthread_mutex_lock(&vc->mu);
    vc->gen = gen;
    pthread_mutex_unlock(&vc->mu);
    dom = virDomainLookupByName(conn, vc->domain);
    if (dom == NULL) {
        set_err(&vc->open_err, "cannot look up domain %s", vc->domain);
        goto cleanup;
    }
    st = virStreamNew(conn, VIR_STREAM_NONBLOCK);
    if (st == NULL) {
        set_err(&vc->open_err, "cannot create a stream for %s", vc->domain);
        goto cleanup;
    }
    /* FORCE: a new viewer takes the console over from a stale client (see
     * virt.h). */
    if (virDomainOpenConsole(dom, NULL, st, VIR_DOMAIN_CONSOLE_FORCE) < 0) {
        set_err(&vc->open_err, "cannot open the console of %s", vc->domain);
        goto cleanup;
    }
    pthread_mutex_lock(&vc->wmu);
    pthread_mutex_lock(&vc->mu);
    want_w = vc->in_len > 0;
    pthread_mutex_unlock(&vc->mu);
    rc = virStreamEventAddCallback(st, VC_READ_EVENTS | (want_w ? VIR_STREAM_EVENT_WRITABLE : 0),
                                   vc_stream_cb, vc, NULL);
    if (rc == 0) {
        vc->st = st;
        vc->cb_added = 1;
        vc->cb_registered = 1;
        vc->armed = want_w;
    }
    pthread_mutex_unlock(&vc->wmu);
    if (rc < 0) {
        set_err(&vc->open_err, "cannot watch the console stream of %s", vc->domain);
        virStreamAbort(st);
        goto cleanup;
    }
    st = NULL; /* now vc->st */
    vc->open_ok = 1;

cleanup:
    if (st)
        virStreamFree(st);
    if (dom)
        virDomainFree(dom);
    if (conn)
        virConnectClose(conn);
}

/* Thread pool: abort and free the stream (a round trip to libvirtd). */
static void vc_abort_work(uv_work_t *w)
{
    virt_console *vc = w->data;
    virStreamAbort(vc->st);
    virStreamFree(vc->st);
    vc->st = NULL;
}

static void vc_free(virt_console *vc)
{
    pthread_mutex_destroy(&vc->mu);
    pthread_mutex_destroy(&vc->wmu);
    free(vc->out);
    free(vc->in);
    free(vc->deliver);
    free(vc->domain);
    free(vc);
}

static void vc_closed_cb(uv_handle_t *h)
{
    virt_console *vc = h->data;
    virt_console_done_cb done = vc->done;
    void *done_opaque = vc->done_opaque;
    vc_free(vc);
    if (done)
        done(done_opaque);
}

/* Frees the console once it is closing, the abort has run and libvirt has
 * released the callback. */
static void vc_maybe_finish(virt_console *vc)
{
    int released;
    if (!vc->closing || vc->work_busy || !vc->work_done || vc->handle_closing)
        return;
    pthread_mutex_lock(&vc->mu);
    released = vc->released;
    pthread_mutex_unlock(&vc->mu);
    if (!released)
        return;
    vc->handle_closing = 1;
    uv_close((uv_handle_t *)&vc->async, vc_closed_cb);
}

static void vc_abort_after(uv_work_t *w, int status)
{
    virt_console *vc = w->data;
    (void)status;
    vc->work_busy = 0;
    vc->work_done = 1;
    vc_maybe_finish(vc);
}

/* Loop: stop the callback, set the barrier, abort the stream off the loop. */
static void vc_teardown(virt_console *vc)
{
    int added;
    pthread_mutex_lock(&vc->wmu);
    added = vc->cb_added;
    if (vc->cb_registered) {
        virStreamEventRemoveCallback(vc->st);
        vc->cb_registered = 0;
        vc->armed = 0;
    }
    pthread_mutex_unlock(&vc->wmu);
    /* Without a barrier (none needed, or none possible: out of memory in
     * libvirt) the console counts as released at once. */
    if (!added || virEventAddTimeout(0, vc_barrier_cb, vc, NULL) < 0) {
        pthread_mutex_lock(&vc->mu);
        vc->released = 1;
        pthread_mutex_unlock(&vc->mu);
    }
    if (vc->st != NULL &&
        uv_queue_work(vc->loop, &vc->work, vc_abort_work, vc_abort_after) == 0) {
        vc->work_busy = 1;
        return;
    }
    vc->work_done = 1;
    vc_maybe_finish(vc);
}

/* Loop: hands buffered output and the end to the callbacks. */
static void vc_deliver(virt_console *vc)
{
    char *tmp;
    size_t len, cap, dropped;
    int report_end = 0;
    virt_console_end why = VIRT_CONSOLE_EOF;
    char msg[256];

    if (vc->closing) {
        vc_maybe_finish(vc);
        return;
    }
    if (vc->state != VC_OPEN)
        return; /* on_open comes first; vc_open_after delivers */
    pthread_mutex_lock(&vc->mu);
    tmp = vc->deliver;
    cap = vc->deliver_cap;
    vc->deliver = vc->out;
    vc->deliver_cap = vc->out_cap;
    vc->out = tmp;
    vc->out_cap = cap;
    len = vc->out_len;
    vc->out_len = 0;
    dropped = vc->out_dropped;
    vc->out_dropped = 0;
    if (vc->ended && !vc->ended_reported) {
        vc->ended_reported = 1;
        report_end = 1;
        why = vc->end_why;
        snprintf(msg, sizeof(msg), "%s", vc->end_msg);
    }
    pthread_mutex_unlock(&vc->mu);

    if (dropped > 0 && vc->cbs.on_data) {
        char mark[96];
        int n = snprintf(mark, sizeof(mark),
                         "\r\n[cyrange: %zu bytes of console output dropped]\r\n", dropped);
        vc->cbs.on_data(vc->opaque, mark, (size_t)n);
        if (vc->closing)
            return;
    }
    if (len > 0 && vc->cbs.on_data) {
        vc->cbs.on_data(vc->opaque, vc->deliver, len);
        if (vc->closing)
            return;
    }
    if (report_end) {
        vc->state = VC_ENDED;
        if (vc->cbs.on_closed)
            vc->cbs.on_closed(vc->opaque, why, msg);
    }
}

static void vc_async_cb(uv_async_t *a)
{
    vc_deliver(a->data);
}

static void vc_open_after(uv_work_t *w, int status)
{
    virt_console *vc = w->data;
    vc->work_busy = 0;
    if (vc->closing) {
        vc_teardown(vc);
        return;
    }
    if (status < 0 || !vc->open_ok) {
        vc->state = VC_ENDED;
        pthread_mutex_lock(&vc->mu);
        vc->ended = 1;
        vc->ended_reported = 1;
        pthread_mutex_unlock(&vc->mu);
        if (vc->cbs.on_closed)
            vc->cbs.on_closed(vc->opaque, VIRT_CONSOLE_OPEN_FAILED,
                              status < 0 ? uv_strerror(status) : vc->open_err.msg);
        return;
    }
    vc->state = VC_OPEN;
    if (vc->cbs.on_open) {
        vc->cbs.on_open(vc->opaque);
        if (vc->closing)
            return;
    }
    vc_deliver(vc); /* output that arrived before this */
}

virt_console *virt_console_open(uv_loop_t *loop, virt_conn *c, const char *domain,
                                const virt_console_cbs *cbs, void *opaque,
                                virt_err *err)
{
    virt_console *vc = NULL;

    if (!c->thread_started) {
        vc_err(err, "consoles need libvirt's event thread (virt_events_start)");
        return NULL;
    }
    vc = calloc(1, sizeof(*vc));
    if (vc == NULL || (vc->domain = strdup(domain)) == NULL) {
        free(vc);
        vc_err(err, "out of memory");
        return NULL;
    }
    vc->loop = loop;
    vc->conn = c;
    vc->cbs = *cbs;
    vc->opaque = opaque;
    vc->state = VC_OPENING;
    vc->work.data = vc;
    vc->async.data = vc;
    pthread_mutex_init(&vc->mu, NULL);
    pthread_mutex_init(&vc->wmu, NULL);
    if (uv_async_init(loop, &vc->async, vc_async_cb) < 0) {
        vc_err(err, "cannot create the console's wake-up handle");
        vc_free(vc);
        return NULL;
    }
    if (uv_queue_work(loop, &vc->work, vc_open_work, vc_open_after) < 0) {
        vc_err(err, "cannot queue the console's open");
        vc->handle_closing = 1;
        uv_close((uv_handle_t *)&vc->async, vc_closed_cb);
        return NULL;
    }
    vc->work_busy = 1;
    return vc;
}

int virt_console_stale(virt_console *vc)
{
    unsigned now, mine;
    if (vc->state != VC_OPEN)
        return 0;
    pthread_mutex_lock(&vc->conn->mu);
    now = vc->conn->gen;
    pthread_mutex_unlock(&vc->conn->mu);
    pthread_mutex_lock(&vc->mu);
    mine = vc->gen;
    pthread_mutex_unlock(&vc->mu);
    return now != mine;
}

int virt_console_write(virt_console *vc, const void *data, size_t len, virt_err *err)
{
    int rc = 0;
    if (vc->closing || vc->state == VC_ENDED) {
        vc_err(err, "the console has ended");
        return -1;
    }
    if (len == 0)
        return 0;
    pthread_mutex_lock(&vc->mu);
    if (vc->ended) {
        vc_err(err, "the console has ended");
        rc = -1;
    } else if (len > VIRT_CONSOLE_IN_MAX - vc->in_len ||
               vc_reserve(&vc->in, &vc->in_cap, vc->in_len + len, VIRT_CONSOLE_IN_MAX) < 0) {
        vc_err(err, "the console's input queue is full");
        rc = -1;
    } else {
        memcpy(vc->in + vc->in_len, data, len);
        vc->in_len += len;
    }
    pthread_mutex_unlock(&vc->mu);
    if (rc < 0)
        return -1;
    pthread_mutex_lock(&vc->wmu);
    if (vc->cb_registered && !vc->armed &&
        virStreamEventUpdateCallback(vc->st, VC_READ_EVENTS | VIR_STREAM_EVENT_WRITABLE) == 0)
        vc->armed = 1;
    pthread_mutex_unlock(&vc->wmu);
    return 0;
}

void virt_console_close(virt_console *vc, virt_console_done_cb done, void *done_opaque)
{
    if (vc == NULL || vc->closing)
        return;
    vc->closing = 1;
    vc->done = done;
    vc->done_opaque = done_opaque;
    if (vc->work_busy)
        return; /* the open is running; vc_open_after tears down */
    vc_teardown(vc);
}
