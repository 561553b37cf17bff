/* agent_probe: TCP reachability probes.  Each probe is one non-blocking
 * connect() watched by the main poll(), so many run at once while other
 * requests are answered.  Probes only connect out, and only to addresses
 * inside 198.18.0.0/15: the agent can never be turned against a real
 * network. */
#include "agent.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct agent_probe {
    agent_probe *next;
    long long id;
    unsigned gen; /* connection the request came on */
    int fd;
    long long start_us;
    long long deadline; /* monotonic ms */
};

static const char *errno_name(int e, char *buf, size_t len)
{
    const char *n = strerrorname_np(e);

    if (n != NULL)
        return n;
    snprintf(buf, len, "errno %d", e);
    return buf;
}

static void probe_reply(agent *a, unsigned gen, long long id, int reachable,
                        long long start_us, const char *error)
{
    proto_probe_result r;
    proto_err err;
    json_t *msg = NULL;

    r.reachable = reachable;
    r.rtt_ms = (double)(agent_now_us() - start_us) / 1000.0;
    r.error = error;
    msg = proto_build_probe_reply(id, &r, &err);
    if (msg == NULL)
        msg = proto_build_reply(1, id, 0, err.msg, NULL);
    agent_send_gen(a, gen, msg);
}

static void probe_unlink_free(agent *a, agent_probe *p)
{
    agent_probe **pp = &a->probes;

    while (*pp != NULL && *pp != p)
        pp = &(*pp)->next;
    if (*pp == p) {
        *pp = p->next;
        a->nprobes--;
    }
    if (p->fd >= 0)
        close(p->fd);
    free(p);
}

void agent_probe_start(agent *a, long long id, const proto_probe *req)
{
    struct sockaddr_in sin;
    agent_probe *p = NULL;
    char ebuf[32];
    long long start;
    int fd = -1;

    if (strcmp(req->proto, "tcp") != 0) {
        agent_reply_error(a, 1, id, "probe: unsupported proto \"%.20s\"",
                          req->proto);
        return;
    }
    if (!proto_addr_in_range(req->addr)) {
        agent_reply_error(a, 1, id,
                          "probe refused: %.40s is outside 198.18.0.0/15",
                          req->addr);
        return;
    }
    if (a->nprobes >= AGENT_MAX_PROBES) {
        agent_reply_error(a, 1, id, "busy: %d probes already running",
                          AGENT_MAX_PROBES);
        return;
    }
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((unsigned short)req->port);
    inet_pton(AF_INET, req->addr, &sin.sin_addr);
    start = agent_now_us();
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        agent_reply_error(a, 1, id, "probe: socket: %s", strerror(errno));
        return;
    }
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0) {
        close(fd);
        probe_reply(a, a->chan.gen, id, 1, start, NULL);
        return;
    }
    if (errno != EINPROGRESS) {
        /* No route, refused on the spot, ...: the probe ran. */
        int e = errno;
        close(fd);
        probe_reply(a, a->chan.gen, id, 0, start,
                    errno_name(e, ebuf, sizeof(ebuf)));
        return;
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        close(fd);
        agent_reply_error(a, 1, id, "probe: out of memory");
        return;
    }
    p->id = id;
    p->gen = a->chan.gen;
    p->fd = fd;
    p->start_us = start;
    p->deadline = start / 1000 + req->timeout_ms;
    p->next = a->probes;
    a->probes = p;
    a->nprobes++;
}

static void probe_on_io(agent *a, void *ctx, int fd, short revents)
{
    agent_probe *p = ctx;
    char ebuf[32];
    socklen_t len = sizeof(int);
    int soerr = 0;

    (void)fd;
    (void)revents;
    if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
        soerr = errno;
    if (soerr == 0)
        probe_reply(a, p->gen, p->id, 1, p->start_us, NULL);
    else
        probe_reply(a, p->gen, p->id, 0, p->start_us,
                    errno_name(soerr, ebuf, sizeof(ebuf)));
    probe_unlink_free(a, p);
}

void agent_probe_watch(agent *a)
{
    agent_probe *p = NULL;

    for (p = a->probes; p != NULL; p = p->next)
        agent_watch(a, p->fd, POLLOUT, probe_on_io, p);
}

long long agent_probe_deadline(const agent *a)
{
    const agent_probe *p = NULL;
    long long d = 0;

    for (p = a->probes; p != NULL; p = p->next)
        if (d == 0 || p->deadline < d)
            d = p->deadline;
    return d;
}

void agent_probe_tick(agent *a, long long now)
{
    agent_probe *p = a->probes, *next = NULL;

    for (; p != NULL; p = next) {
        next = p->next;
        if (now < p->deadline)
            continue;
        probe_reply(a, p->gen, p->id, 0, p->start_us, "timeout");
        probe_unlink_free(a, p);
    }
}

void agent_probe_free_all(agent *a)
{
    while (a->probes != NULL)
        probe_unlink_free(a, a->probes);
}
