#include "range.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "addr.h"
#include "agentlink.h"
#include "proto.h"
#include "virt.h"

#define CONFIG_TIMEOUT_MS 15000
#define HEALTH_TIMEOUT_MS 5000
/* A DHCP client's server is another guest of the team, booting as well. */
#define LEASE_TIMEOUT_MS 120000
#define LEASE_POLL_MS 1000

typedef struct range_guest {
    range *r;
    int team_idx;               /* 0-based */
    int host;                   /* scenario host index */
    char *domain;
    char *sock;
    char *console_log;
    char *volume;               /* overlay volume name, NULL for role images */
    range_guest_state state;
    agentlink *link;
    uint64_t t_started;
    uint64_t t_ready;
    json_t *health;             /* last health reply */
    int answered;               /* attach: agent answered or gave up */
    int configuring;
    int leasing;                /* configured, waiting for its DHCP lease */
    int lease_asking;           /* a health request for it is out */
    uint64_t t_configured;
} range_guest;

/* Messages from the worker thread to the loop. */
typedef struct wmsg {
    struct wmsg *next;
    int kind;                   /* WM_* */
    int guest;
    char *text;
} wmsg;

enum { WM_INFO, WM_STARTED, WM_FAIL, WM_DOMEVENT };

struct range {
    uv_loop_t *loop;
    const plan *plan;
    range_opts opts;
    char *state_dir;
    char *ex_dir;
    range_guest *guests;
    size_t n_guests;
    range_progress_cb progress;
    void *progress_opaque;
    range_done_cb done;
    void *done_opaque;
    /* worker */
    uv_work_t work;
    int work_busy;
    int rolling_back;
    char failure[1024];
    int failed;
    int finished;
    pthread_mutex_t mu;
    wmsg *inbox, **inbox_tail;
    uv_async_t async;
    uv_timer_t timer;           /* boot timeout / attach timeout */
    int handles_open;
    int attach_mode;
    void (*closed)(void *);
    void *closed_opaque;
    int closing;
    int links_open;
    virt_conn *events;          /* libvirt connection delivering events */
    int rebuild_team;           /* 1-based team being rebuilt, 0 none */
    range_done_cb rebuild_cb;
    void *rebuild_opaque;
    uv_work_t rebuild_work;
    int rebuild_failed;
    char rebuild_msg[512];
    uv_timer_t monitor;         /* periodic health requests (run) */
    int monitor_on;
    uv_timer_t lease;           /* polls guests waiting for a DHCP lease */
};

/* ---------------------------------------------------------------------- */
/* XML */

/* Appends `s` to a growing buffer with XML escaping.  Names in cyrange are
 * restricted to [a-z0-9-], but paths and cmdline values come from options. */
static void xml_escape(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '\'': fputs("&apos;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

char *range_network_xml(const plan *p, int t, int seg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    const plan_net *n = &p->teams[t].nets[seg];
    if (f == NULL)
        return NULL;
    /* No <ip> and no <forward>: an isolated L2 segment.  The host has no
     * address on it, runs no dnsmasq for it and routes nothing to it. */
    fputs("<network>\n  <name>", f);
    xml_escape(f, n->name);
    fputs("</name>\n  <bridge name='", f);
    xml_escape(f, n->bridge);
    fputs("' stp='off' delay='0'/>\n</network>\n", f);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

static const char *image_file(const scn_host *h)
{
    return h->image_kind == SCN_IMAGE_DISK ? "disk-boot.cpio.gz" : NULL;
}

char *range_domain_xml(const plan *p, int t, int hi, const range_opts *o,
                       const char *disk_path)
{
    const scenario *s = p->scn;
    const scn_host *h = &s->hosts[hi];
    const plan_team *tm = &p->teams[t];
    const plan_host *ph = &tm->hosts[hi];
    const char *state = o->state_dir ? o->state_dir : RANGE_STATE_DIR;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL)
        return NULL;
    fprintf(f, "<domain type='%s'>\n  <name>", o->domain_type ? o->domain_type : "qemu");
    xml_escape(f, ph->domain);
    fputs("</name>\n", f);
    fputs("  <title>", f);
    xml_escape(f, tm->name);
    fputs(" / ", f);
    xml_escape(f, h->name);
    fputs("</title>\n", f);
    /* The metadata lets a restarted orchestrator (or `cyrange down`) find
     * the range's domains again without any other state. */
    fprintf(f, "  <metadata>\n    <%s:range xmlns:%s='%s'>\n", VIRT_METADATA_KEY,
            VIRT_METADATA_KEY, VIRT_METADATA_NS);
    fputs("      <exercise>", f);
    xml_escape(f, p->exercise);
    fprintf(f, "</exercise>\n      <team>%d</team>\n      <host>", tm->num);
    xml_escape(f, h->name);
    fputs("</host>\n      <scenario>", f);
    xml_escape(f, s->id);
    fprintf(f, "</scenario>\n    </%s:range>\n  </metadata>\n", VIRT_METADATA_KEY);
    fprintf(f, "  <memory unit='MiB'>%d</memory>\n  <vcpu>%d</vcpu>\n",
            h->memory_mib, h->vcpus);
    fputs("  <os>\n    <type arch='x86_64' machine='pc'>hvm</type>\n", f);
    fprintf(f, "    <kernel>%s/images/vmlinuz</kernel>\n", state);
    if (image_file(h))
        fprintf(f, "    <initrd>%s/images/%s</initrd>\n", state, image_file(h));
    else
        fprintf(f, "    <initrd>%s/images/%s.cpio.gz</initrd>\n", state, h->image);
    fprintf(f, "    <cmdline>console=ttyS0 panic=-1 cyrange.exercise=%s "
            "cyrange.team=%d cyrange.host=%s%s</cmdline>\n", p->exercise, tm->num,
            h->name, h->image_kind == SCN_IMAGE_DISK ? " root=/dev/vda rw" : "");
    fputs("  </os>\n  <features><acpi/></features>\n", f);
    fputs("  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>restart</on_reboot>\n"
          "  <on_crash>destroy</on_crash>\n", f);
    fputs("  <devices>\n", f);
    if (disk_path) {
        fputs("    <disk type='file' device='disk'>\n"
              "      <driver name='qemu' type='qcow2'/>\n      <source file='", f);
        xml_escape(f, disk_path);
        fputs("'/>\n      <target dev='vda' bus='virtio'/>\n    </disk>\n", f);
    }
    for (size_t k = 0; k < h->n_nics; k++) {
        const plan_nic *n = &ph->nics[k];
        fputs("    <interface type='network'>\n      <source network='", f);
        xml_escape(f, tm->nets[n->segment].name);
        fprintf(f, "'/>\n      <mac address='%s'/>\n      <model type='virtio'/>\n"
                "    </interface>\n", n->mac);
    }
    fprintf(f, "    <serial type='pty'>\n      <log file='%s/%s/%s-%s.console.log' "
            "append='on'/>\n      <target port='0'/>\n    </serial>\n", state,
            p->exercise, tm->tag, h->name);
    fputs("    <console type='pty'><target type='serial' port='0'/></console>\n", f);
    fprintf(f, "    <channel type='unix'>\n      <source mode='bind' "
            "path='%s/%s/%s-%s.agent.sock'/>\n      <target type='virtio' "
            "name='org.cyrange.agent.0'/>\n    </channel>\n", state, p->exercise,
            tm->tag, h->name);
    fputs("    <memballoon model='none'/>\n  </devices>\n</domain>\n", f);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* ---------------------------------------------------------------------- */
/* Agent configuration */

static const scn_service *find_service(const scn_host *h, const char *name)
{
    for (size_t i = 0; i < h->n_services; i++)
        if (strcmp(h->services[i].name, name) == 0)
            return &h->services[i];
    return NULL;
}

/* First static address of host `hi`, preferring segment `seg` (or -1). */
static uint32_t host_addr(const scenario *s, int hi, int seg)
{
    const scn_host *h = &s->hosts[hi];
    for (size_t k = 0; k < h->n_nics; k++)
        if (!h->nics[k].dhcp && (seg < 0 || h->nics[k].segment == seg))
            return h->nics[k].addr;
    return seg >= 0 ? host_addr(s, hi, -1) : 0;
}

static void env_set(json_t *env, const char *k, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void env_set(json_t *env, const char *k, const char *fmt, ...)
{
    char *v = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&v, fmt, ap) >= 0) {
        json_object_set_new(env, k, json_string(v));
        free(v);
    }
    va_end(ap);
}

/* Appends " word" to a malloc'd string. */
static void str_append(char **s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void str_append(char **s, const char *fmt, ...)
{
    char *add = NULL, *n = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&add, fmt, ap) < 0)
        add = NULL;
    va_end(ap);
    if (add == NULL)
        return;
    if (asprintf(&n, "%s%s%s", *s ? *s : "", *s && **s ? " " : "", add) >= 0) {
        free(*s);
        *s = n;
    }
    free(add);
}

json_t *range_agent_config(const plan *p, int t, int hi)
{
    const scenario *s = p->scn;
    const scn_host *h = &s->hosts[hi];
    const plan_host *ph = &p->teams[t].hosts[hi];
    char ab[20], gw[20] = "";
    char *services = NULL, *ifaces = NULL, *dhcp_serve = NULL, *hosts = NULL;
    uint32_t dns = 0, gwa = h->gateway;
    json_t *m = json_object(), *jif = json_array(), *env = json_object();
    json_t *files = json_array(), *accounts = json_array(), *jdns = json_array();

    if (!m || !jif || !env || !files || !accounts || !jdns)
        goto oom;
    /* The organisation's DNS server: the first host offering "dns" that is
     * not on the simulated internet (the attacker may run a rogue one
     * there); any "dns" host when there is no other. */
    for (int pass = 0; pass < 2 && !dns; pass++)
        for (size_t i = 0; i < s->n_hosts && !dns; i++) {
            const scn_host *d = &s->hosts[i];
            int external = 0;
            if (!find_service(d, "dns"))
                continue;
            for (size_t k = 0; k < d->n_nics; k++)
                external |= strcmp(s->segments[d->nics[k].segment].role, "internet") == 0;
            if (pass == 1 || !external)
                dns = host_addr(s, (int)i, -1);
        }
    /* A host with a single static NIC and no explicit gateway uses the
     * segment's router (a host offering DHCP or "proxy" on it), if any. */
    for (size_t k = 0; k < h->n_nics; k++) {
        const scn_nic *n = &h->nics[k];
        char cidr[24];
        json_t *o;
        if (n->dhcp) {
            o = json_pack("{s:s, s:b}", "mac", ph->nics[k].mac, "dhcp", 1);
            snprintf(cidr, sizeof(cidr), "dhcp");
        } else {
            o = json_pack("{s:s, s:s, s:i}", "mac", ph->nics[k].mac, "addr",
                          addr_format(n->addr, ab, sizeof(ab)), "prefix",
                          s->segments[n->segment].prefix);
            snprintf(cidr, sizeof(cidr), "%s/%d", ab, s->segments[n->segment].prefix);
        }
        json_array_append_new(jif, o);
        str_append(&ifaces, "%s", ph->nics[k].ifname);
        char key[64];
        snprintf(key, sizeof(key), "CYR_IF_%s_ADDR", ph->nics[k].ifname);
        env_set(env, key, "%s", cidr);
        snprintf(key, sizeof(key), "CYR_IF_%s_SEGMENT", ph->nics[k].ifname);
        env_set(env, key, "%s", s->segments[n->segment].name);
        snprintf(key, sizeof(key), "CYR_IF_%s_ROLE", ph->nics[k].ifname);
        env_set(env, key, "%s", s->segments[n->segment].role);
        /* DHCP service for the segments this host serves. */
        const scn_segment *g = &s->segments[n->segment];
        if (g->dhcp_host == hi) {
            char a[20], b[20];
            str_append(&dhcp_serve, "%s,%s,%s,%s,%s", ph->nics[k].ifname,
                       addr_format(g->dhcp_first, a, sizeof(a)),
                       addr_format(g->dhcp_last, b, sizeof(b)),
                       addr_format(n->addr, ab, sizeof(ab)),
                       dns ? addr_format(dns, gw, sizeof(gw)) : "");
        }
    }
    if (gwa)
        addr_format(gwa, gw, sizeof(gw));
    for (size_t i = 0; i < h->n_services; i++)
        str_append(&services, "%s", h->services[i].name);
    for (size_t i = 0; i < s->n_hosts; i++) {
        uint32_t a = host_addr(s, (int)i, -1);
        if (a)
            str_append(&hosts, "%s=%s", s->hosts[i].name, addr_format(a, ab, sizeof(ab)));
    }
    for (size_t i = 0; i < h->n_files; i++) {
        char mode[8];
        snprintf(mode, sizeof(mode), "%04o", h->files[i].mode & 07777);
        json_array_append_new(files, json_pack("{s:s, s:s, s:s}", "path",
                              h->files[i].path, "content", h->files[i].content,
                              "mode", mode));
    }
    for (size_t i = 0; i < h->n_accounts; i++) {
        const scn_account *a = &h->accounts[i];
        json_t *groups = json_array();
        for (char **gp = a->groups; gp && *gp; gp++)
            json_array_append_new(groups, json_string(*gp));
        if (a->admin)
            json_array_append_new(groups, json_string("wheel"));
        json_array_append_new(accounts, json_pack("{s:s, s:s, s:o}", "name", a->name,
                              "password", a->password, "groups", groups));
    }
    if (dns)
        json_array_append_new(jdns, json_string(addr_format(dns, ab, sizeof(ab))));

    env_set(env, "CYR_EXERCISE", "%s", p->exercise);
    env_set(env, "CYR_TEAM", "%d", p->teams[t].num);
    env_set(env, "CYR_HOST", "%s", h->name);
    env_set(env, "CYR_ROLE", "%s", h->role);
    env_set(env, "CYR_SERVICES", "%s", services ? services : "");
    env_set(env, "CYR_IFACES", "%s", ifaces ? ifaces : "");
    env_set(env, "CYR_GATEWAY", "%s", gw);
    env_set(env, "CYR_DNS", "%s", dns ? addr_format(dns, ab, sizeof(ab)) : "");
    env_set(env, "CYR_DOMAIN", "%s", s->domain);
    env_set(env, "CYR_DHCP_SERVE", "%s", dhcp_serve ? dhcp_serve : "");
    env_set(env, "CYR_HOSTS", "%s", hosts ? hosts : "");
    /* The C2's DNS answers the domains the attack's steps aim at it. */
    {
        char *c2dom = NULL;
        for (size_t i = 0; i < s->n_steps; i++) {
            const char *d = json_string_value(json_object_get(s->steps[i].params, "domain"));
            if (d && s->steps[i].target == hi && (c2dom == NULL || !strstr(c2dom, d)))
                str_append(&c2dom, "%s", d);
        }
        if (c2dom)
            env_set(env, "CYR_C2_DOMAIN", "%s", c2dom);
        free(c2dom);
    }
    /* The forward proxy lets the office reach the simulated internet: its
     * hosts' addresses and the domains the scenario's steps use.  Teams
     * contain a C2 by blocking it there (tinyproxy's filter) or at the
     * firewall. */
    if (find_service(h, "proxy")) {
        char *allow = NULL;
        for (size_t i = 0; i < s->n_hosts; i++)
            for (size_t k = 0; k < s->hosts[i].n_nics; k++) {
                const scn_nic *n = &s->hosts[i].nics[k];
                if (!n->dhcp && strcmp(s->segments[n->segment].role, "internet") == 0 &&
                    (int)i != hi)
                    str_append(&allow, "%s", addr_format(n->addr, ab, sizeof(ab)));
            }
        for (size_t i = 0; i < s->n_steps; i++) {
            const char *d = json_string_value(json_object_get(s->steps[i].params, "domain"));
            if (d && (allow == NULL || !strstr(allow, d)))
                str_append(&allow, "%s", d);
        }
        if (allow)
            env_set(env, "CYR_PROXY_ALLOW", "%s", allow);
        free(allow);
    }
    /* The users' mail client: the organisation's mail server (a host with
     * "smtp" that is not on the internet) and each user's saved password. */
    if (strcmp(h->role, "workstation") == 0) {
        int mail = -1;
        for (int pass = 0; pass < 2 && mail < 0; pass++)
            for (size_t i = 0; i < s->n_hosts && mail < 0; i++) {
                int external = 0;
                if (!find_service(&s->hosts[i], "smtp") || (int)i == hi)
                    continue;
                for (size_t k = 0; k < s->hosts[i].n_nics; k++)
                    external |= strcmp(s->segments[s->hosts[i].nics[k].segment].role,
                                       "internet") == 0;
                if (pass == 1 || !external)
                    mail = (int)i;
            }
        if (mail >= 0) {
            env_set(env, "CYR_MAIL_SERVER", "%s",
                    addr_format(host_addr(s, mail, -1), ab, sizeof(ab)));
            for (size_t k = 0; k < h->n_accounts; k++) {
                const scn_account *a = &h->accounts[k];
                const char *pw = a->password;
                for (size_t q = 0; q < s->hosts[mail].n_accounts; q++)
                    if (strcmp(s->hosts[mail].accounts[q].name, a->name) == 0)
                        pw = s->hosts[mail].accounts[q].password;
                char key[80];
                size_t n = (size_t)snprintf(key, sizeof(key), "CYR_MAIL_PASS_%s", a->name);
                for (size_t c = strlen("CYR_MAIL_PASS_"); c < n && c < sizeof(key); c++)
                    if (!((key[c] >= 'a' && key[c] <= 'z') || (key[c] >= 'A' && key[c] <= 'Z') ||
                          (key[c] >= '0' && key[c] <= '9')))
                        key[c] = '_';
                env_set(env, key, "%s", pw);
            }
        }
    }
    /* Workstations' forward proxy: a host offering "proxy" on one of this
     * host's segments. */
    for (size_t i = 0; i < s->n_hosts; i++) {
        const scn_service *px = find_service(&s->hosts[i], "proxy");
        if (px == NULL || (int)i == hi)
            continue;
        for (size_t k = 0; k < h->n_nics; k++) {
            uint32_t a = host_addr(s, (int)i, h->nics[k].segment);
            if (a && addr_in(a, s->segments[h->nics[k].segment].net,
                             s->segments[h->nics[k].segment].prefix)) {
                env_set(env, "CYR_PROXY", "%s:%d", addr_format(a, ab, sizeof(ab)),
                        px->port);
                break;
            }
        }
    }

    json_object_set_new(m, "t", json_string("config"));
    json_object_set_new(m, "exercise", json_string(p->exercise));
    json_object_set_new(m, "team", json_integer(p->teams[t].num));
    json_object_set_new(m, "host", json_string(h->name));
    json_object_set_new(m, "role", json_string(h->role));
    json_object_set_new(m, "hostname", json_string(h->name));
    json_object_set_new(m, "ifaces", jif);
    if (gwa)
        json_object_set_new(m, "gateway", json_string(gw));
    json_object_set_new(m, "dns", jdns);
    json_object_set_new(m, "files", files);
    json_object_set_new(m, "accounts", accounts);
    json_object_set_new(m, "env", env);
    free(services);
    free(ifaces);
    free(dhcp_serve);
    free(hosts);
    return m;
oom:
    json_decref(m);
    json_decref(jif);
    json_decref(env);
    json_decref(files);
    json_decref(accounts);
    json_decref(jdns);
    free(services);
    free(ifaces);
    free(dhcp_serve);
    free(hosts);
    return NULL;
}

/* ---------------------------------------------------------------------- */
/* State on disk: <state>/<exercise>/range.json and scenario.json */

char *range_exercise_dir(const char *state_dir, const char *exercise)
{
    char *d = NULL;
    if (asprintf(&d, "%s/%s", state_dir ? state_dir : RANGE_STATE_DIR, exercise) < 0)
        return NULL;
    return d;
}

char *range_records_dir(const char *state_dir, const char *exercise)
{
    char *d = NULL;
    if (asprintf(&d, "%s/records/%s", state_dir ? state_dir : RANGE_STATE_DIR,
                 exercise) < 0)
        return NULL;
    return d;
}

static int mkdir_p(const char *path, mode_t mode);

int range_records_prepare(const char *dir)
{
    return mkdir_p(dir, 0750);
}

static int mkdir_p(const char *path, mode_t mode)
{
    char tmp[4096];
    size_t n = strlen(path);
    if (n >= sizeof(tmp))
        return -1;
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(tmp, mode) < 0 && errno != EEXIST)
        return -1;
    return 0;
}

/* QEMU runs as libvirt-qemu and must create the agent sockets here. */
static void give_to_qemu(const char *path)
{
    struct passwd *pw = getpwnam("libvirt-qemu");
    if (pw != NULL && chown(path, pw->pw_uid, pw->pw_gid) == 0)
        return;
    chmod(path, 0777);
}

int range_state_save(const plan *p, const range_opts *o, const char *text,
                     size_t len, char *err, size_t errlen)
{
    const char *state = o->state_dir ? o->state_dir : RANGE_STATE_DIR;
    char *dir = range_exercise_dir(state, p->exercise);
    char *path = NULL;
    FILE *f = NULL;
    json_t *j = NULL;
    int rc = -1;

    if (dir == NULL || mkdir_p(state, 0755) < 0 || mkdir_p(dir, 0750) < 0) {
        snprintf(err, errlen, "cannot create %s: %s", dir ? dir : state,
                 strerror(errno));
        goto cleanup;
    }
    chmod(state, 0755);
    give_to_qemu(dir);
    if (asprintf(&path, "%s/scenario.json", dir) < 0 || (f = fopen(path, "w")) == NULL ||
        fwrite(text, 1, len, f) != len || fclose(f) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", path ? path : dir, strerror(errno));
        f = NULL;
        goto cleanup;
    }
    f = NULL;
    free(path);
    path = NULL;
    char *origin = realpath(p->scn->file, NULL);
    j = json_pack("{s:s, s:s, s:s, s:i, s:s, s:s}", "exercise", p->exercise,
                  "scenario_id", p->scn->id,
                  "scenario_origin", origin ? origin : p->scn->file,
                  "teams", p->n_teams,
                  "uri", o->uri ? o->uri : "qemu:///system",
                  "domain_type", o->domain_type ? o->domain_type : "qemu");
    if (j == NULL || asprintf(&path, "%s/range.json", dir) < 0 ||
        json_dump_file(j, path, JSON_INDENT(2)) < 0) {
        snprintf(err, errlen, "cannot write the range state in %s", dir);
        free(origin);
        goto cleanup;
    }
    free(origin);
    rc = 0;
cleanup:
    if (f)
        fclose(f);
    json_decref(j);
    free(path);
    free(dir);
    return rc;
}

int range_state_load(const char *state_dir, const char *exercise,
                     char **scenario_path, char **origin, int *teams, char **uri,
                     char **domain_type)
{
    char *dir = range_exercise_dir(state_dir, exercise);
    char *path = NULL;
    json_t *j = NULL;
    int rc = -1;
    if (dir == NULL || asprintf(&path, "%s/range.json", dir) < 0)
        goto cleanup;
    j = json_load_file(path, 0, NULL);
    if (j == NULL)
        goto cleanup;
    *teams = (int)json_integer_value(json_object_get(j, "teams"));
    if (origin)
        *origin = strdup(json_string_value(json_object_get(j, "scenario_origin")) ?: "");
    if (uri)
        *uri = strdup(json_string_value(json_object_get(j, "uri")) ?: "qemu:///system");
    if (domain_type)
        *domain_type = strdup(json_string_value(json_object_get(j, "domain_type")) ?: "qemu");
    if (asprintf(scenario_path, "%s/scenario.json", dir) < 0)
        goto cleanup;
    rc = 0;
cleanup:
    json_decref(j);
    free(path);
    free(dir);
    return rc;
}

char **range_state_list(const char *state_dir)
{
    DIR *d = opendir(state_dir ? state_dir : RANGE_STATE_DIR);
    char **out = calloc(1, sizeof(char *));
    size_t n = 0;
    struct dirent *e;
    if (out == NULL) {
        if (d)
            closedir(d);
        return NULL;
    }
    if (d == NULL)
        return out;
    while ((e = readdir(d)) != NULL) {
        char path[4096];
        struct stat st;
        if (e->d_name[0] == '.' || !plan_exercise_name_ok(e->d_name))
            continue;
        snprintf(path, sizeof(path), "%s/%s/range.json",
                 state_dir ? state_dir : RANGE_STATE_DIR, e->d_name);
        if (stat(path, &st) < 0)
            continue;
        char **nv = realloc(out, (n + 2) * sizeof(char *));
        if (nv == NULL)
            break;
        out = nv;
        out[n] = strdup(e->d_name);
        if (out[n] == NULL)
            break;
        out[++n] = NULL;
    }
    closedir(d);
    return out;
}

static void rm_tree(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    if (d == NULL) {
        unlink(path);
        return;
    }
    while ((e = readdir(d)) != NULL) {
        char sub[4096];
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
        struct stat st;
        if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
            rm_tree(sub);
        else
            unlink(sub);
    }
    closedir(d);
    rmdir(path);
}

/* "<exercise>-tNN-" exactly: "lab" must not match "lab-t1"'s objects. */
static int owned_name(const char *name, const char *exercise)
{
    size_t n = strlen(exercise);
    return strncmp(name, exercise, n) == 0 && name[n] == '-' && name[n + 1] == 't' &&
           name[n + 2] >= '0' && name[n + 2] <= '9' && name[n + 3] >= '0' &&
           name[n + 3] <= '9' && name[n + 4] == '-';
}

typedef struct dom_job {
    virt_conn *vc;
    const char *name;
    int rc;
    virt_err err;
    pthread_t th;
    int started;
} dom_job;

static void *dom_remove_thread(void *arg)
{
    dom_job *j = arg;
    j->rc = virt_domain_remove(j->vc, j->name, &j->err);
    return NULL;
}

int range_down(const char *uri, const char *state_dir, const char *exercise,
               char *err, size_t errlen)
{
    virt_err ve = { 0, "" };
    virt_conn *vc = virt_open(uri, &ve);
    char **doms = NULL, **nets = NULL, **vols = NULL, **all = NULL;
    char *dir = NULL, *prefix = NULL;
    int removed = 0, failed = 0;

    err[0] = '\0';
    if (vc == NULL) {
        snprintf(err, errlen, "%s", ve.msg);
        return -1;
    }
    /* Domains: by metadata, and by name in case the metadata is gone.
     * Stopping a TCG guest takes 1-2 s, so they are removed in parallel. */
    doms = virt_domain_list(vc, exercise, &ve);
    all = virt_domain_list(vc, NULL, &ve);
    {
        size_t n = 0;
        for (char **d = doms; d && *d; d++)
            n++;
        for (char **d = all; d && *d; d++)
            n += owned_name(*d, exercise);
        dom_job *jobs = calloc(n ? n : 1, sizeof(*jobs));
        size_t k = 0;
        for (char **d = doms; jobs && d && *d; d++)
            jobs[k++] = (dom_job){ vc, *d, 0, { 0, "" }, 0, 0 };
        for (char **d = all; jobs && d && *d; d++) {
            int dup = 0;
            for (size_t j = 0; j < k; j++)
                dup |= strcmp(jobs[j].name, *d) == 0;
            if (owned_name(*d, exercise) && !dup)
                jobs[k++] = (dom_job){ vc, *d, 0, { 0, "" }, 0, 0 };
        }
        for (size_t j = 0; jobs && j < k; j++)
            jobs[j].started = pthread_create(&jobs[j].th, NULL, dom_remove_thread,
                                             &jobs[j]) == 0;
        for (size_t j = 0; jobs && j < k; j++) {
            if (jobs[j].started)
                pthread_join(jobs[j].th, NULL);
            else
                dom_remove_thread(&jobs[j]);
            if (jobs[j].rc < 0 && !failed++)
                snprintf(err, errlen, "%s", jobs[j].err.msg);
            removed += jobs[j].rc > 0;
        }
        free(jobs);
    }
    if (asprintf(&prefix, "%s-t", exercise) < 0)
        prefix = NULL;
    nets = prefix ? virt_network_list(vc, prefix, &ve) : NULL;
    for (char **n = nets; n && *n; n++) {
        if (!owned_name(*n, exercise))
            continue;
        int rc = virt_network_remove(vc, *n, &ve);
        if (rc < 0 && !failed++)
            snprintf(err, errlen, "%s", ve.msg);
        removed += rc > 0;
    }
    vols = prefix ? virt_volume_list(vc, RANGE_POOL, prefix, &ve) : NULL;
    for (char **v = vols; v && *v; v++) {
        if (!owned_name(*v, exercise))
            continue;
        int rc = virt_volume_remove(vc, RANGE_POOL, *v, &ve);
        if (rc < 0 && !failed++)
            snprintf(err, errlen, "%s", ve.msg);
        removed += rc > 0;
    }
    dir = range_exercise_dir(state_dir, exercise);
    if (dir != NULL && !failed) {
        struct stat st;
        if (stat(dir, &st) == 0) {
            rm_tree(dir);
            removed++;
        }
    }
    virt_strv_free(doms);
    virt_strv_free(all);
    virt_strv_free(nets);
    virt_strv_free(vols);
    free(prefix);
    free(dir);
    virt_close(vc);
    return failed ? -1 : removed;
}

/* ---------------------------------------------------------------------- */
/* The running range on the loop */

static void post(range *r, int kind, int guest, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void post(range *r, int kind, int guest, const char *fmt, ...)
{
    wmsg *m = calloc(1, sizeof(*m));
    va_list ap;
    if (m == NULL)
        return;
    m->kind = kind;
    m->guest = guest;
    va_start(ap, fmt);
    if (vasprintf(&m->text, fmt, ap) < 0)
        m->text = NULL;
    va_end(ap);
    pthread_mutex_lock(&r->mu);
    *r->inbox_tail = m;
    r->inbox_tail = &m->next;
    pthread_mutex_unlock(&r->mu);
    uv_async_send(&r->async);
}

static void emit(range *r, range_event_kind k, int g, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void emit(range *r, range_event_kind k, int g, const char *fmt, ...)
{
    char *msg = NULL;
    va_list ap;
    if (r->progress == NULL)
        return;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    r->progress(r, k, g, msg ? msg : "", r->progress_opaque);
    free(msg);
}

range *range_new(uv_loop_t *loop, const plan *p, const range_opts *o)
{
    range *r = calloc(1, sizeof(*r));
    size_t n = (size_t)p->n_teams * p->scn->n_hosts;
    if (r == NULL)
        return NULL;
    r->loop = loop;
    r->plan = p;
    r->opts = *o;
    r->state_dir = strdup(o->state_dir ? o->state_dir : RANGE_STATE_DIR);
    r->opts.state_dir = r->state_dir;
    r->ex_dir = range_exercise_dir(r->state_dir, p->exercise);
    r->guests = calloc(n ? n : 1, sizeof(*r->guests));
    r->n_guests = n;
    r->inbox_tail = &r->inbox;
    pthread_mutex_init(&r->mu, NULL);
    if (r->state_dir == NULL || r->ex_dir == NULL || r->guests == NULL)
        goto oom;
    for (int t = 0; t < p->n_teams; t++) {
        for (size_t h = 0; h < p->scn->n_hosts; h++) {
            range_guest *g = &r->guests[(size_t)t * p->scn->n_hosts + h];
            const plan_team *tm = &p->teams[t];
            g->r = r;
            g->team_idx = t;
            g->host = (int)h;
            g->domain = strdup(tm->hosts[h].domain);
            if (asprintf(&g->sock, "%s/%s-%s.agent.sock", r->ex_dir, tm->tag,
                         p->scn->hosts[h].name) < 0)
                g->sock = NULL;
            if (asprintf(&g->console_log, "%s/%s-%s.console.log", r->ex_dir, tm->tag,
                         p->scn->hosts[h].name) < 0)
                g->console_log = NULL;
            if (p->scn->hosts[h].image_kind == SCN_IMAGE_DISK &&
                asprintf(&g->volume, "%s.qcow2", tm->hosts[h].domain) < 0)
                g->volume = NULL;
            if (g->domain == NULL || g->sock == NULL || g->console_log == NULL)
                goto oom;
        }
    }
    return r;
oom:
    r->closing = 1;
    range_close(r, NULL, NULL);
    return NULL;
}

void range_set_progress(range *r, range_progress_cb cb, void *opaque)
{
    r->progress = cb;
    r->progress_opaque = opaque;
}

size_t range_guest_count(const range *r) { return r->n_guests; }
range_guest_state range_guest_get_state(const range *r, size_t g) { return r->guests[g].state; }
const char *range_guest_domain(const range *r, size_t g) { return r->guests[g].domain; }
int range_guest_team(const range *r, size_t g) { return r->guests[g].team_idx + 1; }
int range_guest_host(const range *r, size_t g) { return r->guests[g].host; }
const json_t *range_guest_health(const range *r, size_t g) { return r->guests[g].health; }
struct agentlink *range_guest_link(const range *r, size_t g) { return r->guests[g].link; }

double range_guest_ready_s(const range *r, size_t g)
{
    const range_guest *x = &r->guests[g];
    if (x->t_ready == 0 || x->t_started == 0)
        return -1;
    return (double)(x->t_ready - x->t_started) / 1000.0;
}

int range_guest_find(const range *r, int team, const char *host)
{
    for (size_t i = 0; i < r->n_guests; i++)
        if (r->guests[i].team_idx + 1 == team &&
            strcmp(r->plan->scn->hosts[r->guests[i].host].name, host) == 0)
            return (int)i;
    return -1;
}

const char *range_guest_state_name(range_guest_state s)
{
    switch (s) {
    case RANGE_G_PENDING: return "pending";
    case RANGE_G_STARTED: return "booting";
    case RANGE_G_HELLO: return "configuring";
    case RANGE_G_READY: return "ready";
    case RANGE_G_STOPPED: return "stopped";
    case RANGE_G_CRASHED: return "crashed";
    case RANGE_G_FAILED: return "failed";
    }
    return "?";
}

/* --- the worker (thread pool): everything that calls libvirt ----------- */

static int copy_file(const char *src, const char *dst, char *err, size_t errlen)
{
    char tmp[4200], buf[65536];
    int in = -1, out = -1, rc = -1;
    struct stat ss, ds;
    ssize_t n;

    if (stat(src, &ss) < 0) {
        snprintf(err, errlen, "image %s is missing (run `make images`)", src);
        return -1;
    }
    /* Unchanged since the last copy: keep it (guests may be using it). */
    if (stat(dst, &ds) == 0 && ds.st_size == ss.st_size && ds.st_mtime >= ss.st_mtime)
        return 0;
    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", dst, (long)getpid());
    in = open(src, O_RDONLY | O_CLOEXEC);
    out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (in < 0 || out < 0) {
        snprintf(err, errlen, "cannot copy %s to %s: %s", src, dst, strerror(errno));
        goto cleanup;
    }
    while ((n = read(in, buf, sizeof(buf))) > 0)
        if (write(out, buf, (size_t)n) != n) {
            n = -1;
            break;
        }
    if (n < 0 || fsync(out) < 0 || close(out) < 0) {
        out = -1;
        snprintf(err, errlen, "cannot copy %s to %s: %s", src, dst, strerror(errno));
        unlink(tmp);
        goto cleanup;
    }
    out = -1;
    if (rename(tmp, dst) < 0) {
        snprintf(err, errlen, "cannot install %s: %s", dst, strerror(errno));
        unlink(tmp);
        goto cleanup;
    }
    rc = 0;
cleanup:
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    return rc;
}

/* Where a user base disk is installed for libvirt-qemu to read: one copy per
 * scenario and file name, the backing file of every team's overlay. */
static void user_disk_path(const range *r, const scn_host *h, char *buf, size_t len)
{
    const char *base = strrchr(h->image, '/');
    snprintf(buf, len, "%s/images/user/%s-%s", r->state_dir, r->plan->scn->id,
             base ? base + 1 : h->image);
}

/* Copies the kernel and the images the scenario uses to the state folder,
 * which libvirt-qemu can read (a clone under /root is not searchable). */
static int install_images(range *r, char *err, size_t errlen)
{
    const scenario *s = r->plan->scn;
    const char *src = r->opts.images_dir ? r->opts.images_dir : "build/images";
    char a[4200], b[4200];

    snprintf(b, sizeof(b), "%s/images", r->state_dir);
    if (mkdir_p(b, 0755) < 0) {
        snprintf(err, errlen, "cannot create %s: %s", b, strerror(errno));
        return -1;
    }
    snprintf(b, sizeof(b), "%s/images/user", r->state_dir);
    mkdir_p(b, 0755);
    snprintf(a, sizeof(a), "%s/vmlinuz", src);
    snprintf(b, sizeof(b), "%s/images/vmlinuz", r->state_dir);
    if (copy_file(a, b, err, errlen) < 0)
        return -1;
    for (size_t i = 0; i < s->n_hosts; i++) {
        const scn_host *h = &s->hosts[i];
        const char *f = h->image_kind == SCN_IMAGE_DISK ? "disk-boot" : h->image;
        snprintf(a, sizeof(a), "%s/%s.cpio.gz", src, f);
        snprintf(b, sizeof(b), "%s/images/%s.cpio.gz", r->state_dir, f);
        if (copy_file(a, b, err, errlen) < 0)
            return -1;
        if (h->image_kind == SCN_IMAGE_DISK) {
            user_disk_path(r, h, b, sizeof(b));
            if (copy_file(h->image, b, err, errlen) < 0)
                return -1;
        }
    }
    return 0;
}

static void write_sysctl(const char *path, const char *val)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    if (write(fd, val, strlen(val)) < 0) {
        /* best effort: reported by the isolation test if it matters */
    }
    close(fd);
}

static int run_quiet(char *const argv[])
{
    pid_t pid = fork();
    int st = 0;
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open("/dev/null", O_RDWR);
        if (fd >= 0) {
            dup2(fd, 0);
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The host must not be reachable from a range: the bridge has no address,
 * but Linux would still answer ARP for the host's other addresses on it and
 * accept IPv6 link-local traffic.  Turn both off, and drop anything that
 * arrives from a range bridge for the host itself. */
static void harden_bridge(const char *br)
{
    char path[256];
    snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/disable_ipv6", br);
    write_sysctl(path, "1");
    snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/%s/arp_ignore", br);
    write_sysctl(path, "8");
    snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/%s/forwarding", br);
    write_sysctl(path, "0");
    char *check[] = { "iptables", "-w", "-C", "INPUT", "-i", "cy+", "-j", "DROP", NULL };
    char *add[] = { "iptables", "-w", "-I", "INPUT", "-i", "cy+", "-j", "DROP", NULL };
    if (run_quiet(check) != 0)
        run_quiet(add);
    /* Routed (not bridged) traffic from a range bridge: with br_netfilter,
     * frames bridged between guests pass FORWARD too and must stay. */
    char *fcheck[] = { "iptables", "-w", "-C", "FORWARD", "-i", "cy+", "-m", "physdev",
                       "!", "--physdev-is-bridged", "-j", "DROP", NULL };
    char *fadd[] = { "iptables", "-w", "-I", "FORWARD", "-i", "cy+", "-m", "physdev",
                     "!", "--physdev-is-bridged", "-j", "DROP", NULL };
    if (run_quiet(fcheck) != 0)
        run_quiet(fadd);
}

/* libvirt's event thread: find the guest and hand the event to the loop. */
static void dom_event(void *opaque, const char *domain, virt_event ev)
{
    range *r = opaque;
    for (size_t i = 0; i < r->n_guests; i++)
        if (strcmp(r->guests[i].domain, domain) == 0) {
            post(r, WM_DOMEVENT, (int)i, "%d", (int)ev);
            return;
        }
}

/* The event connection went away with libvirtd or came back.  Guests run
 * on (QEMU outlives the daemon), but events of the gap are lost: once back,
 * each guest's state is read again (on libvirt's event thread, where the
 * new connection may be used) and handed to the loop as if it were an
 * event; domain_event ignores what does not change a state. */
static void events_conn(void *opaque, virt_conn_change what, const char *msg)
{
    range *r = opaque;
    if (what == VIRT_CONN_LOST) {
        post(r, WM_INFO, -1, "libvirt event connection lost (%s); reconnecting", msg);
        return;
    }
    post(r, WM_INFO, -1, "libvirt event connection back (%s)", msg);
    for (size_t i = 0; i < r->n_guests; i++) {
        virt_err ve = { 0, "" };
        virt_dom_state st = virt_domain_state(r->events, r->guests[i].domain, &ve);
        int ev = st == VIRT_DOM_RUNNING ? VIRT_EV_STARTED
                 : st == VIRT_DOM_SHUTOFF ? VIRT_EV_STOPPED
                 : st == VIRT_DOM_CRASHED ? VIRT_EV_CRASHED : -1;
        if (ev >= 0)
            post(r, WM_DOMEVENT, (int)i, "%d", ev);
    }
}

/* Opens the event connection (worker thread) and keeps it across libvirtd
 * restarts.  Events are advisory: a failure here is reported but does not
 * stop the range. */
static void open_events(range *r)
{
    virt_err ve = { 0, "" };
    if (virt_events_init(&ve) < 0) {
        post(r, WM_INFO, -1, "no libvirt events: %s", ve.msg);
        return;
    }
    r->events = virt_open(r->opts.uri, &ve);
    if (r->events == NULL || virt_events_start(r->events, dom_event, r, &ve) < 0 ||
        virt_events_keep(r->events, events_conn, r, &ve) < 0)
        post(r, WM_INFO, -1, "no libvirt events: %s", ve.msg);
}

static void up_work(uv_work_t *w)
{
    range *r = w->data;
    const plan *p = r->plan;
    const scenario *s = p->scn;
    virt_err ve = { 0, "" };
    virt_conn *vc = NULL;
    char err[1024] = "";
    char **existing = NULL;
    int need_pool = 0;

    open_events(r);
    vc = virt_open(r->opts.uri, &ve);
    if (vc == NULL) {
        post(r, WM_FAIL, -1, "%s", ve.msg);
        return;
    }
    post(r, WM_INFO, -1, "connected to %s", virt_uri(vc));
    if (install_images(r, err, sizeof(err)) < 0) {
        post(r, WM_FAIL, -1, "%s", err);
        goto done;
    }
    for (size_t i = 0; i < s->n_hosts; i++)
        need_pool |= s->hosts[i].image_kind == SCN_IMAGE_DISK;
    if (need_pool) {
        char dir[4200];
        snprintf(dir, sizeof(dir), "%s/pool", r->state_dir);
        if (virt_pool_ensure(vc, RANGE_POOL, dir, &ve) < 0) {
            post(r, WM_FAIL, -1, "%s", ve.msg);
            goto done;
        }
    }
    for (int t = 0; t < p->n_teams; t++) {
        for (size_t i = 0; i < s->n_segments; i++) {
            char *xml = range_network_xml(p, t, (int)i);
            int rc = xml ? virt_network_create(vc, xml, &ve) : -1;
            free(xml);
            if (rc < 0) {
                post(r, WM_FAIL, -1, "network %s: %s", p->teams[t].nets[i].name,
                     xml ? ve.msg : "out of memory");
                goto done;
            }
            harden_bridge(p->teams[t].nets[i].bridge);
        }
        post(r, WM_INFO, -1, "%s: %zu isolated network%s up", p->teams[t].tag,
             s->n_segments, s->n_segments == 1 ? "" : "s");
    }
    for (size_t gi = 0; gi < r->n_guests; gi++) {
        range_guest *g = &r->guests[gi];
        const scn_host *h = &s->hosts[g->host];
        char *disk = NULL, *xml = NULL;
        if (g->volume) {
            char backing[4200];
            user_disk_path(r, h, backing, sizeof(backing));
            if (virt_volume_create_overlay(vc, RANGE_POOL, g->volume, backing, &ve) < 0 ||
                (disk = virt_volume_path(vc, RANGE_POOL, g->volume, &ve)) == NULL) {
                post(r, WM_FAIL, (int)gi, "%s: %s", g->domain, ve.msg);
                goto done;
            }
        }
        if (r->opts.fail_at_host && strcmp(r->opts.fail_at_host, h->name) == 0 &&
            g->team_idx == p->n_teams - 1) {
            free(disk);
            post(r, WM_FAIL, (int)gi, "%s: refused on purpose (--fail-at %s)",
                 g->domain, h->name);
            goto done;
        }
        xml = range_domain_xml(p, g->team_idx, g->host, &r->opts, disk);
        free(disk);
        if (xml == NULL || virt_domain_create(vc, xml, &ve) < 0) {
            post(r, WM_FAIL, (int)gi, "domain %s: %s", g->domain,
                 xml ? ve.msg : "out of memory");
            free(xml);
            goto done;
        }
        free(xml);
        post(r, WM_STARTED, (int)gi, "%s started", g->domain);
    }
done:
    virt_strv_free(existing);
    virt_close(vc);
}

static void rollback_work(uv_work_t *w)
{
    range *r = w->data;
    char err[512];
    int n = range_down(r->opts.uri, r->state_dir, r->plan->exercise, err, sizeof(err));
    if (n < 0)
        post(r, WM_INFO, -1, "rollback incomplete: %s", err);
    else
        post(r, WM_INFO, -1, "rolled back: removed %d object%s", n, n == 1 ? "" : "s");
}

static void finish(range *r, int ok, const char *msg)
{
    if (r->finished)
        return;
    r->finished = 1;
    uv_timer_stop(&r->timer);
    if (r->done)
        r->done(r, ok, msg, r->done_opaque);
}

static void rollback_done(uv_work_t *w, int status)
{
    range *r = w->data;
    (void)status;
    r->work_busy = 0;
    finish(r, 0, r->failure);
}

static void close_links(range *r);

static void start_rollback(range *r)
{
    close_links(r);
    if (r->opts.keep_on_failure) {
        emit(r, RANGE_EV_INFO, -1, "keeping what was created (--keep-on-failure); "
             "`cyrange down` removes it");
        finish(r, 0, r->failure);
        return;
    }
    emit(r, RANGE_EV_INFO, -1, "rolling back everything created so far");
    r->rolling_back = 1;
    r->work_busy = 1;
    r->work.data = r;
    if (uv_queue_work(r->loop, &r->work, rollback_work, rollback_done) < 0) {
        r->work_busy = 0;
        finish(r, 0, r->failure);
    }
}

static void fail(range *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(range *r, const char *fmt, ...)
{
    va_list ap;
    if (r->failed || r->finished)
        return;
    r->failed = 1;
    va_start(ap, fmt);
    vsnprintf(r->failure, sizeof(r->failure), fmt, ap);
    va_end(ap);
    emit(r, RANGE_EV_INFO, -1, "failed: %s", r->failure);
    if (r->attach_mode) {
        finish(r, 0, r->failure);
        return;
    }
    if (!r->work_busy)
        start_rollback(r);
    /* else: up_done starts the rollback when the worker returns. */
}

void range_interrupt(range *r, const char *why)
{
    fail(r, "%s", why);
}

static void check_rebuild_done(range *r)
{
    if (r->rebuild_team == 0)
        return;
    for (size_t i = 0; i < r->n_guests; i++)
        if (r->guests[i].team_idx + 1 == r->rebuild_team &&
            r->guests[i].state != RANGE_G_READY)
            return;
    int team = r->rebuild_team;
    r->rebuild_team = 0;
    if (r->rebuild_cb) {
        char msg[128];
        snprintf(msg, sizeof(msg), "team %d has fresh guests, every agent ready", team);
        r->rebuild_cb(r, 1, msg, r->rebuild_opaque);
    }
}

static void check_all_ready(range *r)
{
    check_rebuild_done(r);
    if (r->work_busy || r->failed || r->finished)
        return;
    for (size_t i = 0; i < r->n_guests; i++)
        if (r->guests[i].state != RANGE_G_READY)
            return;
    finish(r, 1, "every agent is ready");
}

static void guest_ready(range *r, range_guest *g, const char *how)
{
    g->state = RANGE_G_READY;
    g->t_ready = uv_now(r->loop);
    emit(r, RANGE_EV_GUEST, (int)(g - r->guests), "%s ready (%.1f s after start%s)",
         g->domain, range_guest_ready_s(r, (size_t)(g - r->guests)), how);
    check_all_ready(r);
}

static int has_dhcp(const range *r, const range_guest *g)
{
    const scn_host *h = &r->plan->scn->hosts[g->host];
    for (size_t k = 0; k < h->n_nics; k++)
        if (h->nics[k].dhcp)
            return 1;
    return 0;
}

/* 1 when every DHCP NIC of `g` (known by its MAC) has an IPv4 address in
 * the agent's health reply. */
static int leased(const range *r, const range_guest *g, const json_t *health)
{
    const scn_host *h = &r->plan->scn->hosts[g->host];
    const plan_host *ph = &r->plan->teams[g->team_idx].hosts[g->host];
    for (size_t k = 0; k < h->n_nics; k++) {
        json_t *f, *a;
        size_t i, j;
        int found = 0;
        if (!h->nics[k].dhcp)
            continue;
        json_array_foreach(json_object_get(health, "ifaces"), i, f) {
            const char *mac = json_string_value(json_object_get(f, "mac"));
            if (mac == NULL || strcasecmp(mac, ph->nics[k].mac) != 0)
                continue;
            json_array_foreach(json_object_get(f, "addrs"), j, a)
                found |= json_is_string(a) && strchr(json_string_value(a), '.') != NULL;
        }
        if (!found)
            return 0;
    }
    return 1;
}

static void lease_reply(agentlink *l, const proto_msg *m, const char *why, void *opaque)
{
    range_guest *g = opaque;
    range *r = g->r;
    (void)l;
    (void)why;
    g->lease_asking = 0;
    if (!g->leasing || r->failed || r->closing)
        return;
    if (m != NULL && m->u.reply.ok && leased(r, g, m->u.reply.body)) {
        json_decref(g->health);
        g->health = json_incref(m->u.reply.body);
        g->leasing = 0;
        guest_ready(r, g, ", with its DHCP lease");
    }
}

/* Steps may start once the range is ready: a DHCP client without its lease
 * yet would meet "Network is unreachable", so such a guest is ready only
 * once its agent reports an address on every DHCP NIC. */
static void lease_tick(uv_timer_t *t)
{
    range *r = t->data;
    int waiting = 0;
    for (size_t i = 0; i < r->n_guests && !r->failed && !r->closing; i++) {
        range_guest *g = &r->guests[i];
        proto_err pe;
        json_t *req;
        if (!g->leasing)
            continue;
        waiting = 1;
        if (uv_now(r->loop) - g->t_configured > LEASE_TIMEOUT_MS) {
            g->leasing = 0;
            fail(r, "%s: no DHCP lease %d s after its configuration (is the team's DHCP "
                 "server up on its segment?)", g->domain, LEASE_TIMEOUT_MS / 1000);
            return;
        }
        if (g->lease_asking || g->link == NULL || !agentlink_connected(g->link))
            continue;
        if ((req = proto_build_health_req(0, &pe)) != NULL &&
            agentlink_request(g->link, req, HEALTH_TIMEOUT_MS, lease_reply, g) == 0)
            g->lease_asking = 1;
    }
    if (!waiting || r->failed || r->closing)
        uv_timer_stop(t);
}

static void config_reply(agentlink *l, const proto_msg *m, const char *why, void *opaque)
{
    range_guest *g = opaque;
    range *r = g->r;
    (void)l;
    g->configuring = 0;
    if (m == NULL) {
        if (!r->failed && !r->closing)
            fail(r, "%s: agent did not apply its configuration: %s", g->domain, why);
        return;
    }
    if (!m->u.reply.ok) {
        fail(r, "%s: agent refused its configuration: %s", g->domain,
             m->u.reply.error ? m->u.reply.error : "?");
        return;
    }
    if (has_dhcp(r, g)) {
        g->leasing = 1;
        g->t_configured = uv_now(r->loop);
        emit(r, RANGE_EV_GUEST, (int)(g - r->guests), "%s: configured, waiting for its DHCP lease",
             g->domain);
        if (!uv_is_active((uv_handle_t *)&r->lease))
            uv_timer_start(&r->lease, lease_tick, 0, LEASE_POLL_MS);
        return;
    }
    guest_ready(r, g, "");
}

static void health_reply(agentlink *l, const proto_msg *m, const char *why, void *opaque)
{
    range_guest *g = opaque;
    range *r = g->r;
    (void)l;
    (void)why;
    if (m != NULL && m->u.reply.ok) {
        json_decref(g->health);
        g->health = json_incref(m->u.reply.body);
        g->state = RANGE_G_READY;
    }
    if (!g->answered) {
        g->answered = 1;
        for (size_t i = 0; i < r->n_guests; i++)
            if (r->guests[i].link && !r->guests[i].answered)
                return;
        finish(r, 1, "every agent answered");
    }
}

static void monitor_reply(agentlink *l, const proto_msg *m, const char *why, void *opaque)
{
    range_guest *g = opaque;
    (void)l;
    (void)why;
    if (m != NULL && m->u.reply.ok) {
        json_decref(g->health);
        g->health = json_incref(m->u.reply.body);
    }
}

static void monitor_tick(uv_timer_t *t)
{
    range *r = t->data;
    for (size_t i = 0; i < r->n_guests; i++) {
        range_guest *g = &r->guests[i];
        proto_err pe;
        if (g->state != RANGE_G_READY || g->link == NULL || !agentlink_connected(g->link))
            continue;
        json_t *req = proto_build_health_req(0, &pe);
        if (req)
            agentlink_request(g->link, req, HEALTH_TIMEOUT_MS, monitor_reply, g);
    }
}

int range_monitor(range *r, int interval_ms)
{
    if (r->monitor_on || r->closing)
        return -1;
    if (uv_timer_init(r->loop, &r->monitor) < 0)
        return -1;
    r->monitor.data = r;
    r->monitor_on = 1;
    r->handles_open++;
    monitor_tick(&r->monitor);
    return uv_timer_start(&r->monitor, monitor_tick, (uint64_t)interval_ms,
                          (uint64_t)interval_ms) < 0 ? -1 : 0;
}

static void on_hello(agentlink *l, const proto_msg *m, void *opaque)
{
    range_guest *g = opaque;
    range *r = g->r;
    (void)m;
    if (r->attach_mode) {
        proto_err pe;
        json_t *req = proto_build_health_req(0, &pe);
        if (req == NULL || agentlink_request(l, req, HEALTH_TIMEOUT_MS, health_reply, g) < 0)
            health_reply(l, NULL, "send failed", g);
        return;
    }
    if (g->configuring || g->state == RANGE_G_READY)
        return;
    g->state = RANGE_G_HELLO;
    emit(r, RANGE_EV_GUEST, (int)(g - r->guests), "%s: agent hello after %.1f s",
         g->domain, (double)(uv_now(r->loop) - g->t_started) / 1000.0);
    json_t *cfg = range_agent_config(r->plan, g->team_idx, g->host);
    if (cfg == NULL) {
        fail(r, "%s: out of memory", g->domain);
        return;
    }
    g->configuring = 1;
    if (agentlink_request(l, cfg, CONFIG_TIMEOUT_MS, config_reply, g) < 0) {
        g->configuring = 0;
        fail(r, "%s: cannot send the configuration", g->domain);
    }
}

static void link_closed(void *opaque)
{
    range *r = opaque;
    r->links_open--;
    if (r->closing && r->links_open == 0 && r->handles_open == 0 && r->closed) {
        void (*cb)(void *) = r->closed;
        void *op = r->closed_opaque;
        r->closed = NULL;
        cb(op);
    }
}

static void start_link(range *r, range_guest *g)
{
    static const agentlink_cbs cbs = { on_hello, NULL, NULL };
    if (g->link)
        return;
    g->link = agentlink_new(r->loop, g->sock, &cbs, g);
    if (g->link == NULL) {
        fail(r, "out of memory");
        return;
    }
    r->links_open++;
    agentlink_start(g->link);
}

static void close_links(range *r)
{
    for (size_t i = 0; i < r->n_guests; i++) {
        if (r->guests[i].link) {
            agentlink *l = r->guests[i].link;
            r->guests[i].link = NULL;
            agentlink_close(l, link_closed, r);
        }
    }
}

/* A domain stopped or crashed: the guest is shown as such; during `up` it
 * is a failure (the range is rolled back). */
static void domain_event(range *r, range_guest *g, int ev)
{
    int gi = (int)(g - r->guests);
    if (ev == VIRT_EV_CRASHED || ev == VIRT_EV_STOPPED) {
        if (g->state == RANGE_G_PENDING || r->rolling_back || r->closing)
            return;
        g->state = ev == VIRT_EV_CRASHED ? RANGE_G_CRASHED : RANGE_G_STOPPED;
        emit(r, RANGE_EV_GUEST, gi, "%s %s", g->domain,
             ev == VIRT_EV_CRASHED ? "crashed" : "stopped");
        if (!r->attach_mode && !r->finished)
            fail(r, "%s %s while the range was coming up", g->domain,
                 ev == VIRT_EV_CRASHED ? "crashed" : "stopped");
    } else if (ev == VIRT_EV_STARTED &&
               (g->state == RANGE_G_STOPPED || g->state == RANGE_G_CRASHED)) {
        g->state = RANGE_G_STARTED;
        g->t_started = uv_now(r->loop);
        emit(r, RANGE_EV_GUEST, gi, "%s started again", g->domain);
    }
}

static void async_cb(uv_async_t *a)
{
    range *r = a->data;
    wmsg *m;
    pthread_mutex_lock(&r->mu);
    m = r->inbox;
    r->inbox = NULL;
    r->inbox_tail = &r->inbox;
    pthread_mutex_unlock(&r->mu);
    while (m) {
        wmsg *n = m->next;
        const char *text = m->text ? m->text : "";
        if (m->kind == WM_INFO) {
            emit(r, RANGE_EV_INFO, m->guest, "%s", text);
        } else if (m->kind == WM_STARTED && m->guest >= 0) {
            range_guest *g = &r->guests[m->guest];
            g->state = RANGE_G_STARTED;
            g->t_started = uv_now(r->loop);
            emit(r, RANGE_EV_GUEST, m->guest, "%s", text);
            if (!r->failed)
                start_link(r, g);
        } else if (m->kind == WM_DOMEVENT && m->guest >= 0) {
            domain_event(r, &r->guests[m->guest], atoi(text));
        } else if (m->kind == WM_FAIL) {
            if (m->guest >= 0)
                r->guests[m->guest].state = RANGE_G_FAILED;
            fail(r, "%s", text);
        }
        free(m->text);
        free(m);
        m = n;
    }
}

static void up_done(uv_work_t *w, int status)
{
    range *r = w->data;
    (void)status;
    async_cb(&r->async); /* messages posted just before the worker ended */
    r->work_busy = 0;
    if (r->failed) {
        start_rollback(r);
        return;
    }
    emit(r, RANGE_EV_INFO, -1, "all %zu guests started; waiting for their agents",
         r->n_guests);
    check_all_ready(r);
}

static void timeout_cb(uv_timer_t *t)
{
    range *r = t->data;
    char list[768] = "";
    size_t off = 0, missing = 0;
    for (size_t i = 0; i < r->n_guests; i++) {
        range_guest *g = &r->guests[i];
        int waiting = r->attach_mode ? (g->link && !g->answered)
                                     : g->state != RANGE_G_READY;
        if (!waiting)
            continue;
        missing++;
        if (off < sizeof(list) - 64)
            off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s (%s)",
                                    off ? ", " : "", g->domain,
                                    range_guest_state_name(g->state));
    }
    if (r->attach_mode) {
        for (size_t i = 0; i < r->n_guests; i++)
            r->guests[i].answered = 1;
        finish(r, missing == 0, missing ? list : "every agent answered");
        return;
    }
    if (r->work_busy) {
        /* Still creating objects: the timeout counts from the last start. */
        uv_timer_start(&r->timer, timeout_cb, 5000, 0);
        return;
    }
    fail(r, "timeout: %zu guest%s not ready: %s (see the console logs in %s)",
         missing, missing == 1 ? "" : "s", list, r->ex_dir);
}

static int init_handles(range *r, char *err, size_t errlen)
{
    if (uv_async_init(r->loop, &r->async, async_cb) < 0 ||
        uv_timer_init(r->loop, &r->timer) < 0 || uv_timer_init(r->loop, &r->lease) < 0) {
        snprintf(err, errlen, "cannot initialise loop handles");
        return -1;
    }
    r->async.data = r;
    r->timer.data = r;
    r->lease.data = r;
    r->handles_open = 3;
    return 0;
}

int range_up(range *r, range_done_cb done, void *opaque, char *err, size_t errlen)
{
    r->done = done;
    r->done_opaque = opaque;
    if (init_handles(r, err, errlen) < 0)
        return -1;
    r->work.data = r;
    r->work_busy = 1;
    if (uv_queue_work(r->loop, &r->work, up_work, up_done) < 0) {
        r->work_busy = 0;
        snprintf(err, errlen, "cannot queue the provisioning work");
        return -1;
    }
    uv_timer_start(&r->timer, timeout_cb,
                   (uint64_t)(r->opts.boot_timeout_ms > 0 ? r->opts.boot_timeout_ms
                                                          : 180000), 0);
    return 0;
}

/* Attach: domain states are read in the worker, links then start. */
static void attach_work(uv_work_t *w)
{
    range *r = w->data;
    virt_err ve = { 0, "" };
    open_events(r);
    virt_conn *vc = virt_open(r->opts.uri, &ve);
    if (vc == NULL) {
        post(r, WM_FAIL, -1, "%s", ve.msg);
        return;
    }
    for (size_t i = 0; i < r->n_guests; i++) {
        virt_dom_state st = virt_domain_state(vc, r->guests[i].domain, &ve);
        range_guest_state gs = RANGE_G_PENDING;
        switch (st) {
        case VIRT_DOM_RUNNING: gs = RANGE_G_STARTED; break;
        case VIRT_DOM_CRASHED: gs = RANGE_G_CRASHED; break;
        case VIRT_DOM_SHUTOFF:
        case VIRT_DOM_PAUSED: gs = RANGE_G_STOPPED; break;
        default: gs = RANGE_G_PENDING; break;
        }
        r->guests[i].state = gs; /* the loop reads it only after the work */
    }
    virt_close(vc);
}

static void attach_done(uv_work_t *w, int status)
{
    range *r = w->data;
    int any = 0;
    (void)status;
    async_cb(&r->async);
    r->work_busy = 0;
    if (r->failed)
        return;
    for (size_t i = 0; i < r->n_guests; i++) {
        range_guest *g = &r->guests[i];
        if (g->state == RANGE_G_STARTED) {
            g->t_started = uv_now(r->loop);
            start_link(r, g);
            any = 1;
        } else {
            g->answered = 1;
        }
    }
    if (!any)
        finish(r, 1, "no guest is running");
}

int range_attach(range *r, int timeout_ms, range_done_cb done, void *opaque,
                 char *err, size_t errlen)
{
    r->attach_mode = 1;
    r->done = done;
    r->done_opaque = opaque;
    if (init_handles(r, err, errlen) < 0)
        return -1;
    r->work.data = r;
    r->work_busy = 1;
    if (uv_queue_work(r->loop, &r->work, attach_work, attach_done) < 0) {
        r->work_busy = 0;
        snprintf(err, errlen, "cannot queue work");
        return -1;
    }
    uv_timer_start(&r->timer, timeout_cb, (uint64_t)(timeout_ms > 0 ? timeout_ms : 5000), 0);
    return 0;
}

/* Team reset: every guest of the team is stopped and started again.  Role
 * images keep nothing across a boot and disk guests get a fresh overlay, so
 * the team starts from the scenario's initial state ("recurrence"). */
static void rebuild_work(uv_work_t *w)
{
    range *r = w->data;
    const scenario *s = r->plan->scn;
    virt_err ve = { 0, "" };
    virt_conn *vc = virt_open(r->opts.uri, &ve);
    if (vc == NULL) {
        r->rebuild_failed = 1;
        snprintf(r->rebuild_msg, sizeof(r->rebuild_msg), "%s", ve.msg);
        return;
    }
    for (size_t gi = 0; gi < r->n_guests; gi++) {
        range_guest *g = &r->guests[gi];
        if (g->team_idx + 1 != r->rebuild_team)
            continue;
        if (virt_domain_destroy(vc, g->domain, &ve) < 0 && virt_domain_state(vc, g->domain, &ve) == VIRT_DOM_RUNNING) {
            r->rebuild_failed = 1;
            snprintf(r->rebuild_msg, sizeof(r->rebuild_msg), "%s: %s", g->domain, ve.msg);
            break;
        }
        if (g->volume) {
            const scn_host *h = &s->hosts[g->host];
            char backing[4200];
            user_disk_path(r, h, backing, sizeof(backing));
            if (virt_volume_remove(vc, RANGE_POOL, g->volume, &ve) < 0 ||
                virt_volume_create_overlay(vc, RANGE_POOL, g->volume, backing, &ve) < 0) {
                r->rebuild_failed = 1;
                snprintf(r->rebuild_msg, sizeof(r->rebuild_msg), "%s: %s", g->domain, ve.msg);
                break;
            }
        }
        if (virt_domain_start(vc, g->domain, &ve) < 0) {
            r->rebuild_failed = 1;
            snprintf(r->rebuild_msg, sizeof(r->rebuild_msg), "%s: %s", g->domain, ve.msg);
            break;
        }
        post(r, WM_STARTED, (int)gi, "%s restarted", g->domain);
    }
    virt_close(vc);
}

static void rebuild_done(uv_work_t *w, int status)
{
    range *r = w->data;
    (void)status;
    async_cb(&r->async);
    if (r->rebuild_failed) {
        int team = r->rebuild_team;
        r->rebuild_team = 0;
        if (r->rebuild_cb)
            r->rebuild_cb(r, 0, r->rebuild_msg, r->rebuild_opaque);
        (void)team;
        return;
    }
    check_rebuild_done(r);
}

int range_team_rebuild(range *r, int team, range_done_cb done, void *opaque,
                       char *err, size_t errlen)
{
    if (team < 1 || team > r->plan->n_teams) {
        snprintf(err, errlen, "no team %d", team);
        return -1;
    }
    if (r->rebuild_team != 0) {
        snprintf(err, errlen, "team %d is being reset already", r->rebuild_team);
        return -1;
    }
    r->rebuild_team = team;
    r->rebuild_cb = done;
    r->rebuild_opaque = opaque;
    r->rebuild_failed = 0;
    for (size_t i = 0; i < r->n_guests; i++) {
        range_guest *g = &r->guests[i];
        if (g->team_idx + 1 != team)
            continue;
        g->state = RANGE_G_PENDING;
        g->t_ready = 0;
        g->configuring = 0;
        if (g->link) {
            agentlink *l = g->link;
            g->link = NULL;
            agentlink_close(l, link_closed, r);
        }
    }
    r->rebuild_work.data = r;
    if (uv_queue_work(r->loop, &r->rebuild_work, rebuild_work, rebuild_done) < 0) {
        r->rebuild_team = 0;
        snprintf(err, errlen, "cannot queue the reset");
        return -1;
    }
    return 0;
}

static void handle_closed(uv_handle_t *h)
{
    range *r = h->data;
    r->handles_open--;
    if (r->handles_open == 0 && r->links_open == 0 && r->closed) {
        void (*cb)(void *) = r->closed;
        void *op = r->closed_opaque;
        r->closed = NULL;
        cb(op);
    }
}

static void range_free(range *r)
{
    virt_close(r->events);
    for (size_t i = 0; r->guests && i < r->n_guests; i++) {
        free(r->guests[i].domain);
        free(r->guests[i].sock);
        free(r->guests[i].console_log);
        free(r->guests[i].volume);
        json_decref(r->guests[i].health);
    }
    while (r->inbox) {
        wmsg *n = r->inbox->next;
        free(r->inbox->text);
        free(r->inbox);
        r->inbox = n;
    }
    pthread_mutex_destroy(&r->mu);
    free(r->guests);
    free(r->state_dir);
    free(r->ex_dir);
    free(r);
}

typedef struct close_ctx {
    range *r;
    void (*closed)(void *);
    void *opaque;
} close_ctx;

static void all_closed(void *opaque)
{
    close_ctx *c = opaque;
    range_free(c->r);
    if (c->closed)
        c->closed(c->opaque);
    free(c);
}

void range_close(range *r, void (*closed)(void *opaque), void *opaque)
{
    close_ctx *c;
    if (r == NULL)
        return;
    c = malloc(sizeof(*c));
    if (c == NULL)
        return; /* leak rather than crash on OOM at teardown */
    c->r = r;
    c->closed = closed;
    c->opaque = opaque;
    r->closing = 1;
    r->closed = all_closed;
    r->closed_opaque = c;
    /* Stop libvirt's event thread first: it posts to r->async. */
    virt_close(r->events);
    r->events = NULL;
    close_links(r);
    if (r->handles_open >= 3) {
        uv_close((uv_handle_t *)&r->async, handle_closed);
        uv_close((uv_handle_t *)&r->timer, handle_closed);
        uv_close((uv_handle_t *)&r->lease, handle_closed);
        if (r->monitor_on)
            uv_close((uv_handle_t *)&r->monitor, handle_closed);
    } else if (r->links_open == 0) {
        r->closed = NULL;
        all_closed(c);
    }
}

/* The address `from` uses to reach `hi`: a static address on a segment
 * they share, else any static address, else (a DHCP host) the address its
 * agent last reported. */
int range_host_address(const range *r, int team, int from, int hi, char *buf, size_t len)
{
    const scenario *s = r->plan->scn;
    const scn_host *h = &s->hosts[hi];
    uint32_t best = 0;
    for (size_t k = 0; k < h->n_nics && !best; k++) {
        if (h->nics[k].dhcp)
            continue;
        if (from >= 0)
            for (size_t m = 0; m < s->hosts[from].n_nics; m++)
                if (s->hosts[from].nics[m].segment == h->nics[k].segment)
                    best = h->nics[k].addr;
    }
    for (size_t k = 0; k < h->n_nics && !best; k++)
        if (!h->nics[k].dhcp)
            best = h->nics[k].addr;
    if (best) {
        addr_format(best, buf, len);
        return 0;
    }
    int g = range_guest_find(r, team, h->name);
    const json_t *hl = g >= 0 ? range_guest_health(r, (size_t)g) : NULL;
    json_t *ifs = hl ? json_object_get(hl, "ifaces") : NULL;
    size_t i;
    json_t *ifc;
    json_array_foreach(ifs, i, ifc) {
        const char *a = json_string_value(json_array_get(json_object_get(ifc, "addrs"), 0));
        if (a) {
            snprintf(buf, len, "%.*s", (int)strcspn(a, "/"), a);
            return 0;
        }
    }
    return -1;
}

struct virt_conn *range_virt_events(const range *r)
{
    return r->events;
}
