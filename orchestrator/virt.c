#include "virt.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct virt_conn {
    virConnectPtr conn;
    char *uri;
    int cb_id;                  /* domain event callback, -1 when none */
    virt_event_cb cb;
    void *opaque;
    pthread_t thread;
    int thread_started;
    volatile int stopping;
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
    c->uri = strdup(uri ? uri : "qemu:///system");
    c->conn = virConnectOpen(c->uri);
    if (c->conn == NULL) {
        set_err(err, "cannot connect to libvirt at %s (is libvirtd running? "
                "`make deps` starts it)", c->uri);
        free(c->uri);
        free(c);
        return NULL;
    }
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

void virt_close(virt_conn *c)
{
    if (c == NULL)
        return;
    if (c->cb_id >= 0)
        virConnectDomainEventDeregisterAny(c->conn, c->cb_id);
    if (c->thread_started) {
        c->stopping = 1;
        virEventAddTimeout(0, wake_timer, NULL, NULL);
        pthread_join(c->thread, NULL);
    }
    virConnectClose(c->conn);
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
