/* agent_config: apply a config request (agents/PROTOCOL.md).
 *
 * Order: map interfaces by MAC (nothing is changed when one is missing),
 * network (links, addresses, udhcpc, default route), hostname,
 * resolv.conf, files, host.env, then accounts through busybox tools run
 * one after another as child processes (never blocking the loop), then
 * start-services once.  The reply comes at the end and lists every action,
 * so --dry-net shows exactly what a real run would do.  Each step is
 * idempotent: the same config twice changes nothing the second time.
 */
#include "agent.h"

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define CMD_TIMEOUT_MS 15000
#define CMD_MAX_ARGS 5

typedef struct cfg_cmd {
    char *argv[CMD_MAX_ARGS + 1];
    char *in;
    size_t in_len;
} cfg_cmd;

struct agent_config_run {
    proto_msg msg; /* the request; config strings point into it */
    long long id;
    unsigned gen; /* connection the request came on */
    json_t *actions;
    json_t *errors;
    json_t *ifmap;
    char (*ifnames)[IF_NAMESIZE]; /* per config iface */
    cfg_cmd *cmds;
    size_t ncmds, next;
};

static void cfg_act(agent_config_run *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void cfg_fail(agent_config_run *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void cfg_act(agent_config_run *c, const char *fmt, ...)
{
    char buf[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    json_array_append_new(c->actions, json_string(buf));
}

static void cfg_fail(agent_config_run *c, const char *fmt, ...)
{
    char buf[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    agent_log("config: %s", buf);
    json_array_append_new(c->errors, json_string(buf));
}

void agent_config_free(agent_config_run *c)
{
    size_t i, k;

    if (c == NULL)
        return;
    for (i = 0; i < c->ncmds; i++) {
        for (k = 0; k < CMD_MAX_ARGS && c->cmds[i].argv[k] != NULL; k++)
            free(c->cmds[i].argv[k]);
        free(c->cmds[i].in);
    }
    free(c->cmds);
    free(c->ifnames);
    json_decref(c->actions);
    json_decref(c->errors);
    json_decref(c->ifmap);
    proto_msg_clear(&c->msg);
    free(c);
}

/* Queue a command; argv ends with NULL.  stdin is copied. */
static int cfg_cmd_add(agent_config_run *c, const char *in, size_t in_len,
                       const char *const *argv)
{
    cfg_cmd *cmds = NULL, *cmd = NULL;
    size_t k;

    cmds = realloc(c->cmds, (c->ncmds + 1) * sizeof(*cmds));
    if (cmds == NULL)
        return -1;
    c->cmds = cmds;
    cmd = &c->cmds[c->ncmds++];
    memset(cmd, 0, sizeof(*cmd));
    for (k = 0; k < CMD_MAX_ARGS && argv[k] != NULL; k++)
        cmd->argv[k] = strdup(argv[k]);
    if (in_len > 0) {
        cmd->in = malloc(in_len);
        if (cmd->in != NULL) {
            memcpy(cmd->in, in, in_len);
            cmd->in_len = in_len;
        }
    }
    return 0;
}

static void set_str(char **dst, const char *src)
{
    if (src == NULL)
        return;
    free(*dst);
    *dst = strdup(src);
}

/* ---- network --------------------------------------------------------------- */

static const agent_net_if *if_by_mac(const agent_net_if *ifs, size_t n,
                                     const char *mac)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (strcasecmp(ifs[i].mac, mac) == 0)
            return &ifs[i];
    return NULL;
}

static int udhcpc_running(const agent *a, const char *pidfile)
{
    char *s = agent_sys_read_file(pidfile, 64, NULL);
    long pid = s ? strtol(s, NULL, 10) : 0;

    (void)a;
    free(s);
    return pid > 0 && kill((pid_t)pid, 0) == 0;
}

static void cfg_udhcpc(agent *a, agent_config_run *c, const char *ifname)
{
    char script[PATH_MAX], pidfile[PATH_MAX], log[PATH_MAX], name[96];
    char dir[PATH_MAX], err[256] = "path too long";

    snprintf(name, sizeof(name), AGENT_STATE_DIR "/udhcpc.%s.pid", ifname);
    if (agent_path(a, AGENT_UDHCPC_SCRIPT, script, sizeof(script)) < 0 ||
        agent_path(a, name, pidfile, sizeof(pidfile)) < 0 ||
        agent_path(a, AGENT_LOG_DIR "/udhcpc.log", log, sizeof(log)) < 0) {
        cfg_fail(c, "udhcpc %s: path too long", ifname);
        return;
    }
    cfg_act(c, "udhcpc -i %s -s %s -b -p %s", ifname, script, pidfile);
    if (a->opts.dry_net)
        return;
    if (agent_path(a, AGENT_STATE_DIR, dir, sizeof(dir)) < 0 ||
        agent_sys_mkdirs(dir, err, sizeof(err)) < 0 ||
        agent_path(a, AGENT_LOG_DIR, dir, sizeof(dir)) < 0 ||
        agent_sys_mkdirs(dir, err, sizeof(err)) < 0) {
        cfg_fail(c, "udhcpc %s: %s", ifname, err);
        return;
    }
    if (udhcpc_running(a, pidfile)) {
        cfg_act(c, "udhcpc on %s already running", ifname);
        return;
    }
    {
        const char *argv[] = {"udhcpc", "-i", ifname, "-s", script,
                              "-b", "-p", pidfile, NULL};
        if (agent_job_spawn_bg(a, argv, log, err, sizeof(err)) < 0)
            cfg_fail(c, "udhcpc %s: %s", ifname, err);
    }
}

static void cfg_network(agent *a, agent_config_run *c, const agent_net_if *ifs,
                        size_t nifs)
{
    const proto_config *cfg = &c->msg.u.config;
    const agent_net_if *nif = NULL;
    struct in_addr want;
    char err[256];
    size_t i, k;
    int dry = a->opts.dry_net;

    /* Services bind to localhost; an initramfs leaves lo down. */
    cfg_act(c, "link up lo");
    if (!dry && agent_net_link_up("lo", err, sizeof(err)) < 0)
        cfg_fail(c, "link up lo: %s", err);
    for (i = 0; i < cfg->nifaces; i++) {
        const proto_cfg_iface *f = &cfg->ifaces[i];
        nif = if_by_mac(ifs, nifs, f->mac);
        cfg_act(c, "link up %s", nif->name);
        if (!dry && agent_net_link_up(nif->name, err, sizeof(err)) < 0)
            cfg_fail(c, "link up %s: %s", nif->name, err);
        if (f->dhcp) {
            cfg_udhcpc(a, c, nif->name);
            continue;
        }
        inet_pton(AF_INET, f->addr, &want);
        /* The config is the truth: other IPv4 addresses go. */
        for (k = 0; k < nif->naddrs; k++) {
            const agent_net_addr *ad = &nif->addrs[k];
            if (ad->addr.s_addr == want.s_addr && ad->prefix == f->prefix)
                continue;
            cfg_act(c, "addr del %s dev %s", ad->str, nif->name);
            if (!dry && agent_net_addr_del(nif->index, ad->addr, ad->prefix,
                                           err, sizeof(err)) < 0)
                cfg_fail(c, "addr del %s dev %s: %s", ad->str, nif->name,
                         err);
        }
        cfg_act(c, "addr add %s/%d dev %s", f->addr, f->prefix, nif->name);
        if (!dry && agent_net_addr_add(nif->index, want, f->prefix, err,
                                       sizeof(err)) < 0)
            cfg_fail(c, "addr add %s/%d dev %s: %s", f->addr, f->prefix,
                     nif->name, err);
    }
    if (cfg->gateway != NULL) {
        struct in_addr gw;
        inet_pton(AF_INET, cfg->gateway, &gw);
        cfg_act(c, "route replace default via %s", cfg->gateway);
        if (!dry && agent_net_default_route(gw, err, sizeof(err)) < 0)
            cfg_fail(c, "route default via %s: %s", cfg->gateway, err);
    }
}

/* ---- files ------------------------------------------------------------------ */

static void cfg_write(agent *a, agent_config_run *c, const char *abs,
                      const char *data, size_t len, unsigned mode)
{
    char path[PATH_MAX], err[512];

    if (agent_path(a, abs, path, sizeof(path)) < 0) {
        cfg_fail(c, "%s: path too long", abs);
        return;
    }
    cfg_act(c, "write %s mode %04o (%zu bytes)", abs, mode, len);
    if (agent_sys_write_file(path, data, len, mode, err, sizeof(err)) < 0)
        cfg_fail(c, "write %s: %s", abs, err);
}

/* Growable string for file contents. */
typedef struct sbuf {
    char *s;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_add(sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void sb_add(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->oom)
        return;
    for (;;) {
        size_t room = b->cap - b->len;
        va_start(ap, fmt);
        n = vsnprintf(b->s ? b->s + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        {
            size_t ncap = b->cap ? b->cap * 2 : 1024;
            char *ns = NULL;
            while (ncap - b->len <= (size_t)n)
                ncap *= 2;
            ns = realloc(b->s, ncap);
            if (ns == NULL) {
                b->oom = 1;
                return;
            }
            b->s = ns;
            b->cap = ncap;
        }
    }
}

/* value in single quotes for sh: ' becomes '\'' */
static void sb_quote(sbuf *b, const char *v)
{
    sb_add(b, "'");
    for (; *v != '\0'; v++) {
        if (*v == '\'')
            sb_add(b, "'\\''");
        else
            sb_add(b, "%c", *v);
    }
    sb_add(b, "'");
}

static const char *env_get(const proto_config *cfg, const char *key)
{
    size_t i;

    for (i = 0; i < cfg->nenv; i++)
        if (strcmp(cfg->env[i].key, key) == 0)
            return cfg->env[i].value;
    return NULL;
}

static void env_line(sbuf *b, const char *key, const char *value)
{
    sb_add(b, "%s=", key);
    sb_quote(b, value);
    sb_add(b, "\n");
}

/* Derived keys fill what the orchestrator left out: only the agent knows
 * which interface name a MAC got. */
static void env_derived(agent *a, agent_config_run *c, sbuf *b)
{
    const proto_config *cfg = &c->msg.u.config;
    char key[128], val[64];
    sbuf list = {0};
    size_t i;

    if (a->exercise && !env_get(cfg, "CYR_EXERCISE"))
        env_line(b, "CYR_EXERCISE", a->exercise);
    if (a->team >= 0 && !env_get(cfg, "CYR_TEAM")) {
        snprintf(val, sizeof(val), "%d", a->team);
        env_line(b, "CYR_TEAM", val);
    }
    if (a->host && !env_get(cfg, "CYR_HOST"))
        env_line(b, "CYR_HOST", a->host);
    if (a->role && !env_get(cfg, "CYR_ROLE"))
        env_line(b, "CYR_ROLE", a->role);
    for (i = 0; i < cfg->nifaces; i++) {
        const proto_cfg_iface *f = &cfg->ifaces[i];
        size_t k;
        sb_add(&list, "%s%s", i ? " " : "", c->ifnames[i]);
        snprintf(key, sizeof(key), "CYR_IF_%s_ADDR", c->ifnames[i]);
        /* Interface names may hold '-' or '.'; shell names may not. */
        for (k = 7; key[k] != '\0'; k++)
            if (!((key[k] >= 'A' && key[k] <= 'Z') ||
                  (key[k] >= 'a' && key[k] <= 'z') ||
                  (key[k] >= '0' && key[k] <= '9')))
                key[k] = '_';
        if (env_get(cfg, key))
            continue;
        if (f->dhcp)
            snprintf(val, sizeof(val), "dhcp");
        else
            snprintf(val, sizeof(val), "%s/%d", f->addr, f->prefix);
        env_line(b, key, val);
    }
    if (cfg->nifaces > 0 && !env_get(cfg, "CYR_IFACES") && list.s != NULL)
        env_line(b, "CYR_IFACES", list.s);
    free(list.s);
    if (cfg->gateway && !env_get(cfg, "CYR_GATEWAY"))
        env_line(b, "CYR_GATEWAY", cfg->gateway);
    if (cfg->ndns > 0 && !env_get(cfg, "CYR_DNS")) {
        sbuf dns = {0};
        for (i = 0; i < cfg->ndns; i++)
            sb_add(&dns, "%s%s", i ? " " : "", cfg->dns[i]);
        if (dns.s != NULL)
            env_line(b, "CYR_DNS", dns.s);
        free(dns.s);
    }
}

static void cfg_files(agent *a, agent_config_run *c)
{
    const proto_config *cfg = &c->msg.u.config;
    char err[256];
    sbuf b = {0};
    size_t i;
    const char *domain = env_get(cfg, "CYR_DOMAIN");

    if (cfg->hostname != NULL) {
        cfg_act(c, "hostname %s", cfg->hostname);
        if (!a->opts.dry_net &&
            sethostname(cfg->hostname, strlen(cfg->hostname)) < 0)
            cfg_fail(c, "sethostname %s: %s", cfg->hostname, strerror(errno));
        sb_add(&b, "%s\n", cfg->hostname);
        if (!b.oom)
            cfg_write(a, c, "/etc/hostname", b.s, b.len, 0644);
        b.len = 0;
    }
    if (cfg->ndns > 0) {
        sb_add(&b, "# written by cyrange-agent\n");
        if (domain != NULL && *domain != '\0')
            sb_add(&b, "search %s\n", domain);
        for (i = 0; i < cfg->ndns; i++)
            sb_add(&b, "nameserver %s\n", cfg->dns[i]);
        if (!b.oom)
            cfg_write(a, c, "/etc/resolv.conf", b.s, b.len, 0644);
        b.len = 0;
    }
    for (i = 0; i < cfg->nfiles; i++)
        cfg_write(a, c, cfg->files[i].path, cfg->files[i].content,
                  cfg->files[i].content_len, cfg->files[i].mode);

    sb_add(&b, "# written by cyrange-agent from the orchestrator's config\n");
    for (i = 0; i < cfg->nenv; i++)
        env_line(&b, cfg->env[i].key, cfg->env[i].value);
    env_derived(a, c, &b);
    if (b.oom) {
        snprintf(err, sizeof(err), "out of memory");
        cfg_fail(c, "host.env: %s", err);
    } else {
        cfg_write(a, c, AGENT_HOST_ENV, b.s, b.len, 0644);
    }
    free(b.s);
}

/* ---- accounts ----------------------------------------------------------------- */

/* Is there a line starting "name:" in file text? */
static const char *db_line(const char *db, const char *name)
{
    size_t n = strlen(name);
    const char *p = db;

    while (p != NULL && *p != '\0') {
        if (strncmp(p, name, n) == 0 && p[n] == ':')
            return p;
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return NULL;
}

/* Is user listed in the member field of a group line? */
static int group_has(const char *line, const char *user)
{
    const char *members = line, *end = strchr(line, '\n');
    size_t ul = strlen(user);
    int colons = 0;

    while (colons < 3 && members != NULL && (end == NULL || members < end)) {
        members = strchr(members, ':');
        if (members != NULL)
            members++;
        colons++;
    }
    if (members == NULL || (end != NULL && members > end))
        return 0;
    for (;;) {
        size_t l = strcspn(members, ",\n");
        if (l == ul && strncmp(members, user, ul) == 0)
            return 1;
        if (members[l] != ',')
            return 0;
        members += l + 1;
    }
}

static void cfg_accounts(agent *a, agent_config_run *c)
{
    const proto_config *cfg = &c->msg.u.config;
    char path[PATH_MAX];
    char *passwd = NULL, *group = NULL;
    sbuf pw = {0};
    size_t i, j;

    if (cfg->naccounts == 0)
        return;
    if (agent_path(a, "/etc/passwd", path, sizeof(path)) == 0)
        passwd = agent_sys_read_file(path, 4u << 20, NULL);
    if (agent_path(a, "/etc/group", path, sizeof(path)) == 0)
        group = agent_sys_read_file(path, 4u << 20, NULL);
    for (i = 0; i < cfg->naccounts; i++) {
        const proto_cfg_account *ac = &cfg->accounts[i];
        if (db_line(passwd, ac->name) == NULL) {
            cfg_act(c, "adduser -D %s", ac->name);
            cfg_cmd_add(c, NULL, 0,
                        (const char *[]){"adduser", "-D", ac->name, NULL});
        }
        for (j = 0; j < ac->ngroups; j++) {
            const char *gl = db_line(group, ac->groups[j]);
            if (gl == NULL) {
                cfg_act(c, "addgroup %s", ac->groups[j]);
                cfg_cmd_add(c, NULL, 0,
                            (const char *[]){"addgroup", ac->groups[j], NULL});
            }
            if (gl == NULL || !group_has(gl, ac->name)) {
                cfg_act(c, "addgroup %s %s", ac->name, ac->groups[j]);
                cfg_cmd_add(c, NULL, 0,
                            (const char *[]){"addgroup", ac->name,
                                             ac->groups[j], NULL});
            }
        }
        if (ac->password != NULL)
            sb_add(&pw, "%s:%s\n", ac->name, ac->password);
    }
    if (pw.len > 0 && !pw.oom) {
        cfg_act(c, "chpasswd (%zu accounts)", cfg->naccounts);
        cfg_cmd_add(c, pw.s, pw.len, (const char *[]){"chpasswd", NULL});
    }
    /* Passwords must not linger in the heap longer than needed. */
    if (pw.s != NULL)
        explicit_bzero(pw.s, pw.cap);
    free(pw.s);
    free(passwd);
    free(group);
}

/* ---- finishing ------------------------------------------------------------------ */

static void cfg_start_services(agent *a, agent_config_run *c)
{
    char script[PATH_MAX], marker[PATH_MAX], log[PATH_MAX], dir[PATH_MAX];
    char err[256];
    struct stat st;

    if (agent_path(a, AGENT_START_SERVICES, script, sizeof(script)) < 0 ||
        agent_path(a, AGENT_STATE_DIR "/services.started", marker,
                   sizeof(marker)) < 0 ||
        agent_path(a, AGENT_LOG_DIR, dir, sizeof(dir)) < 0 ||
        agent_path(a, AGENT_LOG_DIR "/start-services.log", log,
                   sizeof(log)) < 0)
        return;
    if (a->services_started || access(marker, F_OK) == 0) {
        a->services_started = 1;
        cfg_act(c, "start-services: already started");
        return;
    }
    if (stat(script, &st) < 0 || !S_ISREG(st.st_mode) ||
        access(script, X_OK) < 0) {
        cfg_act(c, "start-services: %s not present", AGENT_START_SERVICES);
        return;
    }
    if (agent_sys_mkdirs(dir, err, sizeof(err)) < 0) {
        cfg_fail(c, "start-services: %s", err);
        return;
    }
    cfg_act(c, "start-services");
    {
        const char *argv[] = {script, NULL};
        if (agent_job_spawn_bg(a, argv, log, err, sizeof(err)) < 0) {
            cfg_fail(c, "start-services: %s", err);
            return;
        }
    }
    /* Once per boot, even when the agent restarts: /run is fresh at boot. */
    a->services_started = 1;
    if (agent_sys_write_file(marker, "1\n", 2, 0644, err, sizeof(err)) < 0)
        cfg_fail(c, "start-services marker: %s", err);
}

static void cfg_finish(agent *a)
{
    agent_config_run *c = a->config;
    json_t *reply = NULL;
    char errtext[1024] = "";
    size_t i, off = 0;

    cfg_start_services(a, c);
    for (i = 0; i < json_array_size(c->errors); i++) {
        int n = snprintf(errtext + off, sizeof(errtext) - off, "%s%s",
                         i ? "; " : "",
                         json_string_value(json_array_get(c->errors, i)));
        if (n < 0 || (size_t)n >= sizeof(errtext) - off)
            break;
        off += (size_t)n;
    }
    reply = proto_build_reply(1, c->id, json_array_size(c->errors) == 0,
                              errtext, NULL);
    if (reply != NULL) {
        json_object_set(reply, "actions", c->actions);
        json_object_set(reply, "ifaces", c->ifmap);
        json_object_set_new(reply, "dry_net", json_boolean(a->opts.dry_net));
        json_object_set_new(reply, "services_started",
                            json_boolean(a->services_started));
        if (json_array_size(c->errors) > 0)
            json_object_set(reply, "errors", c->errors);
    }
    agent_log("config %lld applied: %zu actions, %zu errors", c->id,
              json_array_size(c->actions), json_array_size(c->errors));
    a->config = NULL;
    agent_send_gen(a, c->gen, reply);
    agent_config_free(c);
}

static void cfg_run_next(agent *a);

static void cfg_cmd_done(agent *a, agent_job *job)
{
    agent_config_run *c = a->config;
    proto_exec_result r;

    if (c == NULL)
        return;
    agent_job_result(job, &r);
    if (r.exit_code != 0) {
        /* The tool's first stderr line says what went wrong. */
        size_t l = 0;
        while (l < r.err_len && l < 200 && r.err[l] != '\n')
            l++;
        cfg_fail(c, "%s exited %d%s%.*s", job->name, r.exit_code,
                 l ? ": " : "", (int)l, r.err);
    }
    c->next++;
    cfg_run_next(a);
}

static void cfg_run_next(agent *a)
{
    agent_config_run *c = a->config;
    char err[256];

    while (c->next < c->ncmds) {
        cfg_cmd *cmd = &c->cmds[c->next];
        agent_job_spec spec;

        memset(&spec, 0, sizeof(spec));
        spec.argv = (const char *const *)cmd->argv;
        spec.stdin_data = cmd->in;
        spec.stdin_len = cmd->in_len;
        spec.timeout_ms = CMD_TIMEOUT_MS;
        spec.max_output = 4096;
        spec.done = cfg_cmd_done;
        if (agent_job_start(a, &spec, err, sizeof(err)) == 0)
            return;
        cfg_fail(c, "%s: %s", cmd->argv[0], err);
        c->next++;
    }
    cfg_finish(a);
}

void agent_config_start(agent *a, proto_msg *msg)
{
    agent_config_run *c = NULL;
    const proto_config *cfg = NULL;
    agent_net_if *ifs = NULL;
    size_t nifs = 0, i;
    char err[256];
    long long id = msg->id;

    if (a->config != NULL) {
        agent_reply_error(a, 1, id, "config: another config is in progress");
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        goto nomem;
    c->id = id;
    c->gen = a->chan.gen;
    c->msg = *msg;
    memset(msg, 0, sizeof(*msg));
    cfg = &c->msg.u.config;
    c->actions = json_array();
    c->errors = json_array();
    c->ifmap = json_array();
    c->ifnames = calloc(cfg->nifaces + 1, sizeof(*c->ifnames));
    if (c->actions == NULL || c->errors == NULL || c->ifmap == NULL ||
        c->ifnames == NULL)
        goto nomem;

    /* Validate before acting: an unknown MAC changes nothing. */
    if (agent_net_list(&ifs, &nifs, err, sizeof(err)) < 0) {
        agent_reply_error(a, 1, id, "config: %s", err);
        goto cleanup;
    }
    for (i = 0; i < cfg->nifaces; i++) {
        const agent_net_if *nif = if_by_mac(ifs, nifs, cfg->ifaces[i].mac);
        json_t *o = NULL;
        if (nif == NULL) {
            agent_reply_error(a, 1, id, "config: no interface with MAC %s",
                              cfg->ifaces[i].mac);
            goto cleanup;
        }
        snprintf(c->ifnames[i], sizeof(c->ifnames[i]), "%s", nif->name);
        o = json_pack("{s:s,s:s}", "mac", cfg->ifaces[i].mac, "name",
                      nif->name);
        if (o == NULL || json_array_append_new(c->ifmap, o) < 0)
            goto nomem;
    }

    set_str(&a->exercise, cfg->exercise);
    set_str(&a->host, cfg->host);
    set_str(&a->role, cfg->role);
    if (cfg->team >= 0)
        a->team = cfg->team;

    cfg_network(a, c, ifs, nifs);
    cfg_files(a, c);
    cfg_accounts(a, c);
    free(ifs);
    a->config = c;
    cfg_run_next(a);
    return;

nomem:
    agent_reply_error(a, 1, id, "config: out of memory");
cleanup:
    free(ifs);
    agent_config_free(c);
}
