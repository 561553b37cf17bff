/* apiload — an open-loop HTTP/1.1 load generator for POST requests.
 *
 * Requests are scheduled at a fixed rate (request i at t0 + i/rate) for a
 * bounded duration and sent over N keep-alive connections, one request in
 * flight per connection.  A request waits in a queue when every connection
 * is busy; its latency counts from its scheduled time, not from when it was
 * written, so a slow server cannot hide its queueing (no coordinated
 * omission).  Every 2xx answer counts as acknowledged; the "id" of each 201
 * answer's JSON body is written, one a line, to --ids-out as it arrives, so
 * that a server killed in the middle can be checked against it.
 *
 *   apiload --port N [--host 127.0.0.1] [--path /api/teams/1/reports]
 *           [--rate 500] [--duration 20] [--conns 32] [--cookie C]
 *           [--csrf T] [--ids-out FILE] [--section detection]
 *           [--drain 5]
 *
 * Output: one summary line per figure and a final machine-readable line
 * "RESULT scheduled=.. sent=.. acked=.. failed=.. unsent=.. p50_ms=..
 * p90_ms=.. p99_ms=.. max_ms=.. rate=..".  Loopback and bounded: at most
 * 100 s, 20,000 requests/s, 1,024 connections.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 1024
#define MAX_RATE 20000
#define MAX_DURATION_S 100
#define RBUF 65536
#define RECONNECT_MS 100

typedef struct conn {
    int fd;                 /* -1 when closed */
    int connecting;
    int busy;               /* a request is in flight */
    uint64_t sched_ns;      /* scheduled time of the request in flight */
    char *out;              /* request bytes not yet written */
    size_t out_len, out_off;
    char in[RBUF];
    size_t in_len;
    uint64_t retry_ns;      /* no reconnect before this */
} conn;

typedef struct opts {
    const char *host, *path, *cookie, *csrf, *ids_out, *section;
    int port, conns;
    double rate, duration, drain;
} opts;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void conn_close(conn *c, uint64_t now)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->connecting = 0;
    c->busy = 0;
    c->in_len = 0;
    c->out_len = c->out_off = 0;
    c->retry_ns = now + (uint64_t)RECONNECT_MS * 1000000u;
}

static int conn_open(conn *c, const struct sockaddr_in *sa)
{
    int one = 1;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0) {
        c->connecting = 0;
        return 0;
    }
    if (errno == EINPROGRESS) {
        c->connecting = 1;
        return 0;
    }
    close(c->fd);
    c->fd = -1;
    return -1;
}

/* The request for sequence number `seq`: a report body in one section. */
static char *build_request(const opts *o, unsigned long seq, size_t *len)
{
    char body[512], *req = NULL;
    int blen = snprintf(body, sizeof(body),
                        "{\"title\":\"apiload %lu\",\"submit\":false,\"sections\":"
                        "{\"%s\":\"Report %lu of the load run: beacon from web to "
                        "198.18.0.66 seen in the capture, host isolated.\"}}",
                        seq, o->section, seq);
    int n = asprintf(&req,
                     "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                     "Content-Length: %d\r\n%s%s%s%s%s%s\r\n%s",
                     o->path, o->host, o->port, blen,
                     o->cookie ? "Cookie: " : "", o->cookie ? o->cookie : "",
                     o->cookie ? "\r\n" : "",
                     o->csrf ? "X-CSRF-Token: " : "", o->csrf ? o->csrf : "",
                     o->csrf ? "\r\n" : "", body);
    if (n < 0)
        return NULL;
    *len = (size_t)n;
    return req;
}

/* Parses a complete response in c->in: 1 done (status, body, total length
 * set), 0 more bytes needed, -1 malformed. */
static int parse_response(const conn *c, int *status, const char **body, size_t *blen,
                          size_t *total, int *close_after)
{
    const char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    const char *p;
    size_t hlen, clen = 0;
    if (end == NULL)
        return c->in_len >= RBUF ? -1 : 0;
    hlen = (size_t)(end - c->in) + 4;
    if (c->in_len < 12 || memcmp(c->in, "HTTP/1.", 7) != 0)
        return -1;
    *status = atoi(c->in + 9);
    *close_after = 0;
    for (p = c->in; p < end; p++) {
        if (*p != '\n')
            continue;
        if (strncasecmp(p + 1, "Content-Length:", 15) == 0)
            clen = strtoul(p + 16, NULL, 10);
        else if (strncasecmp(p + 1, "Connection: close", 17) == 0)
            *close_after = 1;
    }
    if (hlen + clen > RBUF)
        return -1;
    if (c->in_len < hlen + clen)
        return 0;
    *body = c->in + hlen;
    *blen = clen;
    *total = hlen + clen;
    return 1;
}

/* The "id" of a JSON answer, or -1. */
static long long body_id(const char *body, size_t len)
{
    char tmp[256];
    const char *p;
    if (len >= sizeof(tmp))
        len = sizeof(tmp) - 1;
    memcpy(tmp, body, len);
    tmp[len] = '\0';
    p = strstr(tmp, "\"id\":");
    return p ? strtoll(p + 5, NULL, 10) : -1;
}

static void usage(void)
{
    fputs("usage: apiload --port N [--host ADDR] [--path P] [--rate R] [--duration S]\n"
          "               [--conns N] [--cookie C] [--csrf T] [--ids-out FILE]\n"
          "               [--section ID] [--drain S]\n", stderr);
}

static volatile sig_atomic_t stop_flag;

static void on_sigint(int sig)
{
    (void)sig;
    stop_flag = 1;
}

int main(int argc, char **argv)
{
    opts o = { "127.0.0.1", "/api/teams/1/reports", NULL, NULL, NULL, "detection",
               0, 32, 500, 20, 5 };
    static const struct option lo[] = {
        { "host", required_argument, NULL, 'h' }, { "port", required_argument, NULL, 'p' },
        { "path", required_argument, NULL, 'P' }, { "rate", required_argument, NULL, 'r' },
        { "duration", required_argument, NULL, 'd' }, { "conns", required_argument, NULL, 'c' },
        { "cookie", required_argument, NULL, 'k' }, { "csrf", required_argument, NULL, 't' },
        { "ids-out", required_argument, NULL, 'o' }, { "section", required_argument, NULL, 's' },
        { "drain", required_argument, NULL, 'D' }, { NULL, 0, NULL, 0 },
    };
    int ch, rc = 1;
    conn *cs = NULL;
    struct pollfd *pfd = NULL;
    uint64_t *lat = NULL;
    FILE *ids = NULL;
    unsigned long total, next = 0, sent = 0, acked = 0, failed = 0, unsent = 0;
    unsigned long st2xx = 0, st4xx = 0, st5xx = 0, neterr = 0;
    size_t nlat = 0;
    struct sockaddr_in sa;

    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'h': o.host = optarg; break;
        case 'p': o.port = atoi(optarg); break;
        case 'P': o.path = optarg; break;
        case 'r': o.rate = atof(optarg); break;
        case 'd': o.duration = atof(optarg); break;
        case 'c': o.conns = atoi(optarg); break;
        case 'k': o.cookie = optarg; break;
        case 't': o.csrf = optarg; break;
        case 'o': o.ids_out = optarg; break;
        case 's': o.section = optarg; break;
        case 'D': o.drain = atof(optarg); break;
        default: usage(); return 2;
        }
    }
    if (o.port < 1 || o.port > 65535 || o.rate <= 0 || o.rate > MAX_RATE ||
        o.duration <= 0 || o.duration > MAX_DURATION_S || o.conns < 1 ||
        o.conns > MAX_CONNS || o.drain < 0 || o.drain > 30) {
        usage();
        return 2;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)o.port);
    if (inet_pton(AF_INET, o.host, &sa.sin_addr) != 1) {
        fprintf(stderr, "apiload: --host must be an IPv4 address\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_sigint);
    signal(SIGTERM, on_sigint);

    total = (unsigned long)(o.rate * o.duration + 0.5);
    cs = calloc((size_t)o.conns, sizeof(*cs));
    pfd = calloc((size_t)o.conns, sizeof(*pfd));
    lat = calloc(total ? total : 1, sizeof(*lat));
    if (cs == NULL || pfd == NULL || lat == NULL) {
        fprintf(stderr, "apiload: out of memory\n");
        goto cleanup;
    }
    if (o.ids_out && (ids = fopen(o.ids_out, "w")) == NULL) {
        fprintf(stderr, "apiload: %s: %s\n", o.ids_out, strerror(errno));
        goto cleanup;
    }
    for (int i = 0; i < o.conns; i++) {
        cs[i].fd = -1;
        if (conn_open(&cs[i], &sa) < 0)
            cs[i].retry_ns = 0;
    }

    uint64_t t0 = now_ns() + 50000000u; /* connections settle first */
    uint64_t period = (uint64_t)(1e9 / o.rate);
    uint64_t end_ns = t0 + (uint64_t)(o.duration * 1e9);
    uint64_t drain_end = end_ns + (uint64_t)(o.drain * 1e9);

    for (;;) {
        uint64_t now = now_ns();
        int busy = 0;

        for (int i = 0; i < o.conns; i++)
            busy += cs[i].busy;
        if (stop_flag || now >= drain_end || (next >= total && busy == 0))
            break;

        /* Hand due requests to idle, connected connections, oldest first. */
        for (int i = 0; i < o.conns && next < total; i++) {
            conn *c = &cs[i];
            if (t0 + next * period > now)
                break;
            if (c->fd < 0 && now >= c->retry_ns && conn_open(c, &sa) < 0) {
                c->retry_ns = now + (uint64_t)RECONNECT_MS * 1000000u;
                neterr++;
            }
            if (c->fd < 0 || c->busy || c->connecting)
                continue;
            c->out = build_request(&o, next + 1, &c->out_len);
            if (c->out == NULL)
                goto cleanup;
            c->out_off = 0;
            c->busy = 1;
            c->sched_ns = t0 + next * period;
            next++;
            sent++;
        }
        /* With every connection down, requests due longer than a second
         * ago are given up: the server is gone, the load stays bounded. */
        int up = 0;
        for (int i = 0; i < o.conns; i++)
            up += cs[i].fd >= 0;
        while (!up && next < total && t0 + next * period + 1000000000u < now) {
            next++;
            unsent++;
        }
        if (next < total && now >= end_ns + 1000000000u) {
            /* A second past the end, requests still queued are given up
             * and reported as unsent. */
            unsent += total - next;
            next = total;
        }

        int timeout_ms = 100;
        if (next < total) {
            uint64_t due = t0 + next * period;
            timeout_ms = due <= now ? 0 : (int)((due - now) / 1000000u);
            if (timeout_ms > 100)
                timeout_ms = 100;
        }
        for (int i = 0; i < o.conns; i++) {
            conn *c = &cs[i];
            pfd[i].fd = c->fd;
            pfd[i].events = 0;
            pfd[i].revents = 0;
            if (c->fd < 0)
                continue;
            if (c->connecting || (c->busy && c->out_off < c->out_len))
                pfd[i].events |= POLLOUT;
            pfd[i].events |= POLLIN;
        }
        if (poll(pfd, (nfds_t)o.conns, timeout_ms) < 0 && errno != EINTR) {
            perror("apiload: poll");
            goto cleanup;
        }
        now = now_ns();
        for (int i = 0; i < o.conns; i++) {
            conn *c = &cs[i];
            short re = pfd[i].revents;
            if (c->fd < 0 || re == 0)
                continue;
            if (c->connecting) {
                int e = 0;
                socklen_t el = sizeof(e);
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el);
                if (e != 0) {
                    neterr++;
                    conn_close(c, now);
                    continue;
                }
                c->connecting = 0;
            }
            if ((re & POLLOUT) && c->busy && c->out_off < c->out_len) {
                ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                                 MSG_NOSIGNAL);
                if (w > 0) {
                    c->out_off += (size_t)w;
                    if (c->out_off == c->out_len) {
                        free(c->out);
                        c->out = NULL;
                    }
                } else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
                    goto lost;
                }
            }
            if (re & (POLLIN | POLLHUP | POLLERR)) {
                ssize_t r = recv(c->fd, c->in + c->in_len, RBUF - c->in_len, 0);
                if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
                    goto lost;
                if (r < 0)
                    continue;
                c->in_len += (size_t)r;
                if (!c->busy) /* unsolicited bytes: the server closes */
                    goto lost;
                int status = 0, close_after = 0;
                const char *body = NULL;
                size_t blen = 0, tot = 0;
                int pr = parse_response(c, &status, &body, &blen, &tot, &close_after);
                if (pr < 0)
                    goto lost;
                if (pr == 0)
                    continue;
                lat[nlat++] = now - c->sched_ns;
                if (status >= 200 && status < 300) {
                    st2xx++;
                    acked++;
                    if (ids && status == 201) {
                        long long id = body_id(body, blen);
                        if (id >= 0) {
                            fprintf(ids, "%lld\n", id);
                            fflush(ids);
                        }
                    }
                } else {
                    failed++;
                    if (status >= 500)
                        st5xx++;
                    else
                        st4xx++;
                }
                memmove(c->in, c->in + tot, c->in_len - tot);
                c->in_len -= tot;
                c->busy = 0;
                free(c->out);
                c->out = NULL;
                if (close_after)
                    conn_close(c, 0);
            }
            continue;
        lost:
            /* The request in flight has no answer: not acknowledged. */
            if (c->busy) {
                failed++;
                neterr++;
            }
            free(c->out);
            c->out = NULL;
            conn_close(c, now);
        }
    }
    for (int i = 0; i < o.conns; i++)
        if (cs[i].busy)
            failed++; /* no answer within the drain time */
    unsent += total - next;

    qsort(lat, nlat, sizeof(*lat), cmp_u64);
#define PCT(q) (nlat ? (double)lat[(size_t)((q) * (double)(nlat - 1))] / 1e6 : 0.0)
    double p50 = PCT(0.50), p90 = PCT(0.90), p99 = PCT(0.99);
    double pmax = nlat ? (double)lat[nlat - 1] / 1e6 : 0.0;
    double run_s = o.duration;
    printf("apiload: POST %s at %.0f/s for %.0f s over %d connections (open loop)\n",
           o.path, o.rate, o.duration, o.conns);
    printf("  scheduled %lu  sent %lu  acked %lu (2xx)  failed %lu (4xx %lu, 5xx %lu, "
           "no answer %lu)  unsent %lu  net errors %lu\n",
           total, sent, acked, failed, st4xx, st5xx,
           failed - st4xx - st5xx, unsent, neterr);
    printf("  latency from the scheduled time: p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  "
           "max %.2f ms\n", p50, p90, p99, pmax);
    printf("RESULT scheduled=%lu sent=%lu acked=%lu failed=%lu unsent=%lu p50_ms=%.3f "
           "p90_ms=%.3f p99_ms=%.3f max_ms=%.3f rate=%.1f\n",
           total, sent, acked, failed, unsent, p50, p90, p99, pmax, (double)acked / run_s);
    (void)st2xx;
    rc = 0;

cleanup:
    if (ids)
        fclose(ids);
    for (int i = 0; cs && i < o.conns; i++) {
        free(cs[i].out);
        if (cs[i].fd >= 0)
            close(cs[i].fd);
    }
    free(cs);
    free(pfd);
    free(lat);
    return rc;
}
