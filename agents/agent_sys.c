/* agent_sys: identity, file helpers, hello and health for cyrange-agent. */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *agent_sys_read_file(const char *path, size_t max, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    ssize_t r;
    int fd;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    buf = malloc(max + 1);
    if (buf == NULL)
        goto cleanup;
    while (n < max) {
        r = read(fd, buf + n, max - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            free(buf);
            buf = NULL;
            goto cleanup;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    if (len != NULL)
        *len = n;

cleanup:
    close(fd);
    return buf;
}

int agent_sys_mkdirs(const char *dir, char *err, size_t errlen)
{
    char path[PATH_MAX];
    size_t i, l = strlen(dir);

    if (l == 0 || l >= sizeof(path)) {
        snprintf(err, errlen, "bad directory \"%s\"", dir);
        return -1;
    }
    memcpy(path, dir, l + 1);
    for (i = 1; i <= l; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        path[i] = '\0';
        if (mkdir(path, 0755) < 0 && errno != EEXIST) {
            snprintf(err, errlen, "mkdir %s: %s", path, strerror(errno));
            return -1;
        }
        if (i < l)
            path[i] = '/';
    }
    return 0;
}

int agent_sys_write_file(const char *path, const char *data, size_t len,
                         unsigned mode, char *err, size_t errlen)
{
    char tmp[PATH_MAX], dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    size_t off = 0;
    int fd = -1, rc = -1;

    if (slash == NULL || (size_t)(slash - path) >= sizeof(dir) ||
        snprintf(tmp, sizeof(tmp), "%s.cyrange-XXXXXX", path) >=
            (int)sizeof(tmp)) {
        snprintf(err, errlen, "bad path \"%s\"", path);
        return -1;
    }
    memcpy(dir, path, (size_t)(slash - path));
    dir[slash - path] = '\0';
    if (dir[0] != '\0' && agent_sys_mkdirs(dir, err, errlen) < 0)
        return -1;
    /* Write beside the target and rename, so nobody sees half a file and a
     * symlink at the target is replaced rather than followed. */
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "create %s: %s", tmp, strerror(errno));
        return -1;
    }
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "write %s: %s", tmp, strerror(errno));
            goto cleanup;
        }
        off += (size_t)n;
    }
    if (fchmod(fd, mode & 07777) < 0) {
        snprintf(err, errlen, "chmod %s: %s", tmp, strerror(errno));
        goto cleanup;
    }
    if (close(fd) < 0) {
        fd = -1;
        snprintf(err, errlen, "close %s: %s", tmp, strerror(errno));
        goto cleanup;
    }
    fd = -1;
    if (rename(tmp, path) < 0) {
        snprintf(err, errlen, "rename to %s: %s", path, strerror(errno));
        goto cleanup;
    }
    rc = 0;

cleanup:
    if (fd >= 0)
        close(fd);
    if (rc < 0)
        unlink(tmp);
    return rc;
}

/* Value of key=value in a kernel command line, unquoted; malloc'd. */
static char *cmdline_value(const char *cmdline, const char *key)
{
    size_t klen = strlen(key);
    const char *p = cmdline;

    while (*p != '\0') {
        const char *start, *end;
        while (*p == ' ' || *p == '\t' || *p == '\n')
            p++;
        start = p;
        /* The kernel lets a value be double-quoted to hold spaces. */
        while (*p != '\0' && *p != ' ' && *p != '\t' && *p != '\n') {
            if (*p == '"') {
                p++;
                while (*p != '\0' && *p != '"')
                    p++;
                if (*p == '"')
                    p++;
            } else {
                p++;
            }
        }
        end = p;
        if ((size_t)(end - start) > klen && strncmp(start, key, klen) == 0 &&
            start[klen] == '=') {
            const char *v = start + klen + 1;
            size_t vlen = (size_t)(end - v);
            if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"') {
                v++;
                vlen -= 2;
            }
            return strndup(v, vlen);
        }
    }
    return NULL;
}

int agent_sys_identity(agent *a, const char *cmdline_path)
{
    char *cmdline = agent_sys_read_file(cmdline_path, 8192, NULL);
    char *v = NULL;

    if (cmdline == NULL)
        return -1;
    if ((v = cmdline_value(cmdline, "cyrange.exercise")) != NULL) {
        free(a->exercise);
        a->exercise = v;
    }
    if ((v = cmdline_value(cmdline, "cyrange.host")) != NULL) {
        free(a->host);
        a->host = v;
    }
    if ((v = cmdline_value(cmdline, "cyrange.team")) != NULL) {
        char *end = NULL;
        long t = strtol(v, &end, 10);
        if (*v != '\0' && *end == '\0' && t >= 0 && t <= 1000000)
            a->team = (int)t;
        free(v);
    }
    free(cmdline);
    return 0;
}

json_t *agent_sys_hello(agent *a, proto_err *err)
{
    static const char *caps[] = {"config", "health", "probe", "exec", "action"};
    agent_net_if *ifs = NULL;
    proto_iface *pifs = NULL;
    proto_hello h;
    size_t n = 0, i, k = 0;
    char nerr[256];
    json_t *msg = NULL;

    memset(&h, 0, sizeof(h));
    /* Without the interface list the hello is still worth sending. */
    if (agent_net_list(&ifs, &n, nerr, sizeof(nerr)) < 0)
        n = 0;
    if (n > 0) {
        pifs = calloc(n, sizeof(*pifs));
        if (pifs == NULL)
            n = 0;
    }
    for (i = 0; i < n; i++) {
        if (ifs[i].loopback)
            continue;
        pifs[k].name = ifs[i].name;
        pifs[k].mac = ifs[i].mac[0] ? ifs[i].mac : NULL;
        k++;
    }
    h.v = PROTO_VERSION;
    h.agent = AGENT_VERSION;
    h.exercise = a->exercise;
    h.team = a->team;
    h.host = a->host;
    h.caps = caps;
    h.ncaps = sizeof(caps) / sizeof(caps[0]);
    h.ifaces = pifs;
    h.nifaces = k;
    msg = proto_build_hello(&h, err);
    free(pifs);
    free(ifs);
    return msg;
}

/* "Key:   12345 kB" from /proc/meminfo, or -1. */
static long long meminfo_kb(const char *meminfo, const char *key)
{
    const char *p = meminfo;
    size_t klen = strlen(key);

    while (p != NULL && *p != '\0') {
        if (strncmp(p, key, klen) == 0 && p[klen] == ':')
            return strtoll(p + klen + 1, NULL, 10);
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return -1;
}

json_t *agent_sys_health(agent *a, long long id, proto_err *err)
{
    agent_net_if *ifs = NULL;
    proto_health h;
    proto_health_iface *hifs = NULL;
    const char **addrs = NULL;
    char *s = NULL, nerr[256];
    size_t n = 0, i, j, k = 0, naddrs = 0, ai = 0;
    long long v;
    json_t *msg = NULL;

    memset(&h, 0, sizeof(h));
    if ((s = agent_sys_read_file("/proc/uptime", 256, NULL)) != NULL)
        h.uptime_s = strtod(s, NULL);
    free(s);
    if ((s = agent_sys_read_file("/proc/loadavg", 256, NULL)) != NULL)
        h.load1 = strtod(s, NULL);
    free(s);
    if ((s = agent_sys_read_file("/proc/meminfo", 16384, NULL)) != NULL) {
        /* MemAvailable is what a new process can really get. */
        v = meminfo_kb(s, "MemAvailable");
        h.mem_free_kb = v >= 0 ? v : meminfo_kb(s, "MemFree");
        h.mem_total_kb = meminfo_kb(s, "MemTotal");
        if (h.mem_free_kb < 0)
            h.mem_free_kb = 0;
        if (h.mem_total_kb < 0)
            h.mem_total_kb = 0;
    }
    free(s);
    h.services_started = a->services_started;
    if (agent_net_list(&ifs, &n, nerr, sizeof(nerr)) < 0)
        n = 0;
    for (i = 0; i < n; i++)
        naddrs += ifs[i].naddrs;
    if (n > 0)
        hifs = calloc(n, sizeof(*hifs));
    if (naddrs > 0)
        addrs = calloc(naddrs, sizeof(*addrs));
    if ((n > 0 && hifs == NULL) || (naddrs > 0 && addrs == NULL)) {
        if (err != NULL) {
            err->code = PROTO_ERR_NOMEM;
            snprintf(err->msg, sizeof(err->msg), "out of memory");
        }
        goto cleanup;
    }
    for (i = 0; i < n; i++) {
        if (ifs[i].loopback)
            continue;
        hifs[k].name = ifs[i].name;
        hifs[k].mac = ifs[i].mac[0] ? ifs[i].mac : NULL;
        hifs[k].up = ifs[i].up;
        hifs[k].addrs = addrs + ai;
        for (j = 0; j < ifs[i].naddrs; j++)
            addrs[ai++] = ifs[i].addrs[j].str;
        hifs[k].naddrs = ifs[i].naddrs;
        k++;
    }
    h.ifaces = hifs;
    h.nifaces = k;
    msg = proto_build_health_reply(id, &h, err);

cleanup:
    free(addrs);
    free(hifs);
    free(ifs);
    return msg;
}
