/* agent_probe: reachability probes and availability checks.  Each probe is
 * one non-blocking socket watched by the main poll(), moving through
 * connect, send and read as the socket allows, so many run at once while
 * other requests are answered; nothing here waits.  A probe reads at most
 * a bounded number of bytes and ends at its deadline.  Probes only connect
 * out, and only to addresses inside 198.18.0.0/15: the agent can never be
 * turned against a real network. */
#include "agent.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

/* Bytes read from an HTTP server: enough for a page to contain the
 * expected text, little enough for 256 checks at once. */
#define PROBE_HTTP_MAX_READ (64u * 1024u)
/* An SMTP banner, multi-line ones included, or what a tcp check with an
 * expected text reads. */
#define PROBE_MAX_BANNER (4u * 1024u)
/* One DNS answer datagram (EDNS0 sizes are never asked for). */
#define PROBE_DNS_MAX_ANSWER 4096u
/* Datagrams looked at per wakeup, so stray traffic cannot keep us busy. */
#define PROBE_DNS_MAX_DGRAMS 16
/* Compression pointers followed in one name: a loop ends here. */
#define PROBE_DNS_MAX_HOPS 32
/* A records named in a detail. */
#define PROBE_DNS_MAX_ADDRS 4
/* Characters of server text or of the expected text quoted in a detail. */
#define PROBE_QUOTE_MAX 60

typedef enum probe_phase {
    PHASE_CONNECT,
    PHASE_SEND,
    PHASE_READ
} probe_phase;

static const char *const phase_names[] = {"connect", "send", "read"};

struct agent_probe {
    agent_probe *next;
    long long id;
    unsigned gen; /* connection the request came on */
    int fd;
    long long start_us;
    long long deadline; /* monotonic ms */
    int timeout_ms;
    proto_check_kind kind;
    probe_phase phase;
    int reachable; /* connected (tcp), or an answer arrived (dns) */
    double rtt_ms; /* set when reachable became known */
    /* What is sent: the HTTP request or the DNS query. */
    char *out;
    size_t out_len, out_off;
    /* What came back, at most max_in bytes (plus a NUL). */
    char *in;
    size_t in_len, max_in;
    /* Expectations, copied: the request is freed once start returns. */
    char *expect;
    int expect_status;
    int has_expect_addr;
    struct in_addr expect_addr;
    uint16_t dns_id;
};

static const char *errno_name(int e, char *buf, size_t len)
{
    const char *n = strerrorname_np(e);

    if (n != NULL)
        return n;
    snprintf(buf, len, "errno %d", e);
    return buf;
}

static double elapsed_ms(long long start_us)
{
    return (double)(agent_now_us() - start_us) / 1000.0;
}

/* Server text and the expected text as printable ASCII, cut at the first
 * line end: a detail is one short line of valid UTF-8 whatever the server
 * sent. */
static void quote(char *dst, size_t dstlen, const char *src, size_t len)
{
    size_t i, o = 0;

    if (dstlen == 0)
        return;
    for (i = 0; i < len && o + 1 < dstlen; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c == '\r' || c == '\n')
            break;
        if (o >= PROBE_QUOTE_MAX) {
            if (o + 4 <= dstlen - 1) {
                memcpy(dst + o, "...", 3);
                o += 3;
            }
            break;
        }
        dst[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    dst[o] = '\0';
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
    free(p->out);
    free(p->in);
    free(p->expect);
    free(p);
}

/* Send the reply and forget the probe.  A probe without kind answers in
 * the version-1 form (proto_build_probe_reply leaves the check out). */
static void probe_finish(agent *a, agent_probe *p, int check_ok, int status,
                         const char *detail, const char *error)
{
    proto_probe_result r;
    proto_err err;
    json_t *msg = NULL;

    memset(&r, 0, sizeof(r));
    r.reachable = p->reachable;
    r.rtt_ms = p->reachable ? p->rtt_ms : elapsed_ms(p->start_us);
    r.error = p->reachable ? NULL : error;
    r.has_check = p->kind != PROTO_CHECK_NONE;
    r.check_ok = check_ok;
    r.status = status;
    r.detail = detail;
    msg = proto_build_probe_reply(p->id, &r, &err);
    if (msg == NULL)
        msg = proto_build_reply(1, p->id, 0, err.msg, NULL);
    agent_send_gen(a, p->gen, msg);
    probe_unlink_free(a, p);
}

/* The probe never got through: refused, unreachable, no answer. */
static void probe_fail_unreachable(agent *a, agent_probe *p, int e)
{
    char ebuf[32];
    const char *name = errno_name(e, ebuf, sizeof(ebuf));

    p->reachable = 0;
    probe_finish(a, p, 0, -1, name, name);
}

static void probe_fail_io(agent *a, agent_probe *p, const char *what, int e)
{
    char ebuf[32], detail[PROTO_CHECK_MAX_DETAIL];

    snprintf(detail, sizeof(detail), "%s: %s", what,
             errno_name(e, ebuf, sizeof(ebuf)));
    probe_finish(a, p, 0, -1, detail, NULL);
}

/* ", contains \"X\"" or ", does not contain \"X\"" after a detail. */
static int expect_note(const agent_probe *p, const char *data, size_t len,
                       char *note, size_t notelen)
{
    char q[PROBE_QUOTE_MAX + 8];
    int found;

    note[0] = '\0';
    if (p->expect == NULL)
        return 1;
    found = p->expect[0] == '\0' ||
            memmem(data, len, p->expect, strlen(p->expect)) != NULL;
    quote(q, sizeof(q), p->expect, strlen(p->expect));
    snprintf(note, notelen, ", %s \"%s\"", found ? "contains" : "does not contain",
             q);
    return found;
}

/* ---- http ----------------------------------------------------------------- */

/* The status of "HTTP/x.y NNN ...", or -1. */
static int http_status(const char *buf, size_t len)
{
    const char *sp = NULL, *eol = memchr(buf, '\n', len);
    size_t n = eol ? (size_t)(eol - buf) : len;

    if (n < 12 || memcmp(buf, "HTTP/", 5) != 0)
        return -1;
    sp = memchr(buf, ' ', n);
    if (sp == NULL || (size_t)(sp - buf) + 4 > n)
        return -1;
    if (sp[1] < '1' || sp[1] > '9' || sp[2] < '0' || sp[2] > '9' ||
        sp[3] < '0' || sp[3] > '9')
        return -1;
    if ((size_t)(sp - buf) + 4 < n && sp[4] != ' ' && sp[4] != '\r')
        return -1;
    return (sp[1] - '0') * 100 + (sp[2] - '0') * 10 + (sp[3] - '0');
}

/* Offset of the body (after the blank line), or 0 while headers go on. */
static size_t http_body_off(const char *buf, size_t len)
{
    const char *e = memmem(buf, len, "\r\n\r\n", 4);
    const char *f = memmem(buf, len, "\n\n", 2);

    if (e != NULL && (f == NULL || e < f))
        return (size_t)(e - buf) + 4;
    if (f != NULL)
        return (size_t)(f - buf) + 2;
    return 0;
}

/* Content-Length from the headers, or -1 when absent or unreadable. */
static long long http_content_length(const char *buf, size_t hdr_len)
{
    const char *p = buf, *end = buf + hdr_len;

    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        size_t n = eol ? (size_t)(eol - p) : (size_t)(end - p);
        if (n > 15 && strncasecmp(p, "content-length:", 15) == 0) {
            long long v = 0;
            size_t i = 15;
            int digits = 0;
            while (i < n && (p[i] == ' ' || p[i] == '\t'))
                i++;
            for (; i < n && p[i] >= '0' && p[i] <= '9' && digits < 12; i++) {
                v = v * 10 + (p[i] - '0');
                digits++;
            }
            return digits > 0 ? v : -1;
        }
        p += n + 1;
    }
    return -1;
}

/* 1 when the whole response is here before the server closes: a server
 * that ignores "Connection: close" is not waited for past its body. */
static int http_complete(const agent_probe *p)
{
    size_t off = http_body_off(p->in, p->in_len);
    long long cl;
    int st;

    if (off == 0)
        return 0;
    st = http_status(p->in, p->in_len);
    if (st == 204 || st == 304 || (st >= 100 && st < 200))
        return 1;
    cl = http_content_length(p->in, off);
    return cl >= 0 && (unsigned long long)(p->in_len - off) >=
                          (unsigned long long)cl;
}

static void http_evaluate(agent *a, agent_probe *p)
{
    char detail[PROTO_CHECK_MAX_DETAIL], note[PROBE_QUOTE_MAX + 48];
    char q[PROBE_QUOTE_MAX + 8], exp[32] = "";
    int st = http_status(p->in, p->in_len), ok;
    size_t off, body;

    if (st < 0) {
        quote(q, sizeof(q), p->in, p->in_len);
        if (p->in_len == 0)
            snprintf(detail, sizeof(detail), "closed without a response");
        else
            snprintf(detail, sizeof(detail), "not an HTTP response: \"%s\"",
                     q);
        probe_finish(a, p, 0, -1, detail, NULL);
        return;
    }
    off = http_body_off(p->in, p->in_len);
    if (off == 0) {
        snprintf(detail, sizeof(detail), "HTTP %d, response ends inside "
                 "the headers", st);
        probe_finish(a, p, 0, st, detail, NULL);
        return;
    }
    body = p->in_len - off;
    ok = expect_note(p, p->in + off, body, note, sizeof(note));
    if (st != p->expect_status) {
        ok = 0;
        snprintf(exp, sizeof(exp), " (expected %d)", p->expect_status);
    }
    snprintf(detail, sizeof(detail), "HTTP %d%s, %zu bytes%s%s", st, exp, body,
             p->in_len >= p->max_in ? " (first 64 KiB)" : "", note);
    probe_finish(a, p, ok, st, detail, NULL);
}

static int http_request(agent_probe *p, const proto_probe *req)
{
    const char *path = req->path ? req->path : "/";
    const char *host = req->host ? req->host : req->addr;
    int n;

    /* Both are visible ASCII of bounded length (checked by proto). */
    p->out_len = strlen(path) + strlen(host) + 96;
    p->out = malloc(p->out_len);
    if (p->out == NULL)
        return -1;
    n = snprintf(p->out, p->out_len,
                 "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: cyrange-check\r\n"
                 "Connection: close\r\n\r\n",
                 path, host);
    if (n < 0 || (size_t)n >= p->out_len)
        return -1;
    p->out_len = (size_t)n;
    return 0;
}

/* ---- smtp ----------------------------------------------------------------- */

/* 1 when the banner is complete: its last line is "NNN text" (a line
 * "NNN-text" says more follow); text that is not SMTP ends at its first
 * line. */
static int smtp_complete(const char *buf, size_t len)
{
    size_t pos = 0;

    while (pos < len) {
        const char *eol = memchr(buf + pos, '\n', len - pos);
        size_t n;
        if (eol == NULL)
            return 0;
        n = (size_t)(eol - (buf + pos));
        if (n < 4 || buf[pos + 3] != '-')
            return 1;
        pos += n + 1;
    }
    return 0;
}

static void smtp_evaluate(agent *a, agent_probe *p)
{
    char detail[PROTO_CHECK_MAX_DETAIL], note[PROBE_QUOTE_MAX + 48];
    char q[PROBE_QUOTE_MAX + 8];
    int code = -1, ok;

    if (p->in_len == 0) {
        snprintf(detail, sizeof(detail), "closed without a banner");
        probe_finish(a, p, 0, -1, detail, NULL);
        return;
    }
    if (p->in_len >= 3 && p->in[0] >= '1' && p->in[0] <= '5' &&
        p->in[1] >= '0' && p->in[1] <= '9' && p->in[2] >= '0' &&
        p->in[2] <= '9' &&
        (p->in_len == 3 || p->in[3] == ' ' || p->in[3] == '-' ||
         p->in[3] == '\r' || p->in[3] == '\n'))
        code = (p->in[0] - '0') * 100 + (p->in[1] - '0') * 10 +
               (p->in[2] - '0');
    ok = expect_note(p, p->in, p->in_len, note, sizeof(note)) && code == 220;
    quote(q, sizeof(q), p->in, p->in_len);
    snprintf(detail, sizeof(detail), "banner %s%s", q, note);
    /* A polite goodbye; the server's 221 is not waited for. */
    if (send(p->fd, "QUIT\r\n", 6, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
        /* Gone already: nothing more to say to it. */
    }
    probe_finish(a, p, ok, code, detail, NULL);
}

/* ---- tcp with an expected text ---------------------------------------------- */

/* The text has come: no need to wait for more. */
static int tcp_complete(const agent_probe *p)
{
    return memmem(p->in, p->in_len, p->expect, strlen(p->expect)) != NULL;
}

/* What a service says first (ssh, ftp, ...) must contain the text. */
static void tcp_evaluate(agent *a, agent_probe *p)
{
    char detail[PROTO_CHECK_MAX_DETAIL], note[PROBE_QUOTE_MAX + 48];
    char q[PROBE_QUOTE_MAX + 8];
    int ok = expect_note(p, p->in, p->in_len, note, sizeof(note));

    quote(q, sizeof(q), p->in, p->in_len);
    snprintf(detail, sizeof(detail), "%s%s%s", p->in_len ? "banner " : "",
             p->in_len ? q : "closed without a word", note);
    probe_finish(a, p, ok, -1, detail, NULL);
}

/* ---- dns ------------------------------------------------------------------ */

static int dns_query(agent_probe *p, const char *name)
{
    unsigned char *q = NULL;
    size_t o = 12, nlen = strlen(name);
    const char *s = name;

    /* Header, the labels (the name's length plus two), type and class. */
    q = calloc(1, 12 + nlen + 2 + 4);
    if (q == NULL)
        return -1;
    if (getrandom(&p->dns_id, sizeof(p->dns_id), GRND_NONBLOCK) !=
        (ssize_t)sizeof(p->dns_id))
        p->dns_id = (uint16_t)(agent_now_us() ^ (long long)getpid());
    q[0] = (unsigned char)(p->dns_id >> 8);
    q[1] = (unsigned char)p->dns_id;
    q[2] = 0x01; /* RD: the resolver may recurse */
    q[5] = 1;    /* QDCOUNT */
    /* The name was checked by proto: labels of 1..63, one optional
     * trailing dot. */
    while (*s != '\0') {
        const char *dot = strchr(s, '.');
        size_t l = dot ? (size_t)(dot - s) : strlen(s);
        q[o++] = (unsigned char)l;
        memcpy(q + o, s, l);
        o += l;
        s += l;
        if (*s == '.')
            s++;
    }
    q[o++] = 0;
    q[o++] = 0;
    q[o++] = 1; /* QTYPE A */
    q[o++] = 0;
    q[o++] = 1; /* QCLASS IN */
    p->out = (char *)q;
    p->out_len = o;
    return 0;
}

/* Steps over the name at *off (labels, or a compression pointer that may
 * lead to more).  Returns 0 with *off past the name, or -1 when the name
 * runs off the message, loops, uses a reserved label type or exceeds 255
 * bytes. */
static int dns_skip_name(const unsigned char *m, size_t len, size_t *off)
{
    size_t pos = *off, end = 0, total = 0;
    int hops = 0;

    for (;;) {
        unsigned c;
        if (pos >= len)
            return -1;
        c = m[pos];
        if (c == 0) {
            if (hops == 0)
                end = pos + 1;
            break;
        }
        if ((c & 0xC0) == 0xC0) {
            if (pos + 1 >= len || ++hops > PROBE_DNS_MAX_HOPS)
                return -1;
            if (hops == 1)
                end = pos + 2;
            pos = ((size_t)(c & 0x3F) << 8) | m[pos + 1];
            continue;
        }
        if ((c & 0xC0) != 0)
            return -1;
        total += c + 1;
        if (total > 255)
            return -1;
        pos += c + 1;
    }
    *off = end;
    return 0;
}

static const char *dns_rcode_name(int rcode)
{
    static const char *const names[] = {"NOERROR", "FORMERR", "SERVFAIL",
                                        "NXDOMAIN", "NOTIMP", "REFUSED"};

    if (rcode >= 0 && (size_t)rcode < sizeof(names) / sizeof(names[0]))
        return names[rcode];
    return NULL;
}

static void dns_evaluate(agent *a, agent_probe *p, const unsigned char *m,
                         size_t len)
{
    char detail[PROTO_CHECK_MAX_DETAIL], exp[48] = "";
    struct in_addr addrs[PROBE_DNS_MAX_ADDRS];
    unsigned qd, an, i;
    size_t off = 12, naddrs = 0, total = 0, o = 0;
    int rcode = m[3] & 0x0F, matched = 0;
    const char *rname = dns_rcode_name(rcode);

    if (rcode != 0) {
        if (rname != NULL)
            snprintf(detail, sizeof(detail), "%s", rname);
        else
            snprintf(detail, sizeof(detail), "rcode %d", rcode);
        probe_finish(a, p, 0, rcode, detail, NULL);
        return;
    }
    qd = ((unsigned)m[4] << 8) | m[5];
    an = ((unsigned)m[6] << 8) | m[7];
    for (i = 0; i < qd; i++) {
        if (dns_skip_name(m, len, &off) < 0 || off + 4 > len)
            goto malformed;
        off += 4;
    }
    for (i = 0; i < an; i++) {
        unsigned type, cls, rdlen;
        if (dns_skip_name(m, len, &off) < 0 || off + 10 > len)
            goto malformed;
        type = ((unsigned)m[off] << 8) | m[off + 1];
        cls = ((unsigned)m[off + 2] << 8) | m[off + 3];
        rdlen = ((unsigned)m[off + 8] << 8) | m[off + 9];
        off += 10;
        if (off + rdlen > len)
            goto malformed;
        if (type == 1 && cls == 1) {
            struct in_addr ia;
            if (rdlen != 4)
                goto malformed;
            memcpy(&ia.s_addr, m + off, 4);
            if (p->has_expect_addr && ia.s_addr == p->expect_addr.s_addr)
                matched = 1;
            if (naddrs < PROBE_DNS_MAX_ADDRS)
                addrs[naddrs++] = ia;
            total++;
        }
        off += rdlen;
    }
    if (p->has_expect_addr && !matched) {
        char ebuf[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &p->expect_addr, ebuf, sizeof(ebuf));
        snprintf(exp, sizeof(exp), " (expected %s)", ebuf);
    }
    if (total == 0) {
        o = (size_t)snprintf(detail, sizeof(detail), "no A record");
    } else {
        for (i = 0; i < naddrs && o < sizeof(detail); i++) {
            char abuf[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, &addrs[i], abuf, sizeof(abuf));
            o += (size_t)snprintf(detail + o, sizeof(detail) - o, "%s%s",
                                  i ? ", " : "", abuf);
        }
        if (total > naddrs && o < sizeof(detail))
            o += (size_t)snprintf(detail + o, sizeof(detail) - o,
                                  " and %zu more", total - naddrs);
    }
    if (o < sizeof(detail))
        snprintf(detail + o, sizeof(detail) - o, "%s", exp);
    probe_finish(a, p, !p->has_expect_addr || matched, rcode, detail, NULL);
    return;
malformed:
    snprintf(detail, sizeof(detail), "malformed answer (%zu bytes%s)", len,
             (m[2] & 0x02) ? ", truncated flag set" : "");
    probe_finish(a, p, 0, rcode, detail, NULL);
}

/* The query, once: a lost datagram is a failed check (checks repeat on
 * their interval).  A connected UDP socket hears ICMP errors for its
 * peer, so a closed port shows as ECONNREFUSED. */
static void dns_send(agent *a, agent_probe *p)
{
    p->phase = PHASE_SEND;
    if (send(p->fd, p->out, p->out_len, MSG_DONTWAIT) < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return; /* poll() says when there is room */
        probe_fail_unreachable(a, p, errno);
        return;
    }
    p->out_off = p->out_len;
    p->phase = PHASE_READ;
}

/* Datagrams until one answers our query; others (a wrong id, not an
 * answer, too short to be one) are dropped. */
static void dns_on_read(agent *a, agent_probe *p)
{
    unsigned char m[PROBE_DNS_MAX_ANSWER];
    int i;

    for (i = 0; i < PROBE_DNS_MAX_DGRAMS; i++) {
        ssize_t n = recv(p->fd, m, sizeof(m), MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return;
            /* ICMP port unreachable and friends, on the connected socket. */
            probe_fail_unreachable(a, p, errno);
            return;
        }
        if (n < 12 || (m[2] & 0x80) == 0 ||
            (((uint16_t)m[0] << 8) | m[1]) != p->dns_id)
            continue;
        p->reachable = 1;
        p->rtt_ms = elapsed_ms(p->start_us);
        dns_evaluate(a, p, m, (size_t)n);
        return;
    }
}

/* ---- the state machine ------------------------------------------------------ */

static void tcp_on_read(agent *a, agent_probe *p)
{
    for (;;) {
        ssize_t n;
        if (p->in_len >= p->max_in)
            goto done;
        n = recv(p->fd, p->in + p->in_len, p->max_in - p->in_len,
                 MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return;
            /* A server that resets after its answer still answered. */
            if (p->in_len > 0 && errno == ECONNRESET)
                goto done;
            probe_fail_io(a, p, "read", errno);
            return;
        }
        if (n == 0)
            goto done;
        p->in_len += (size_t)n;
        p->in[p->in_len] = '\0';
        if (p->kind == PROTO_CHECK_HTTP   ? http_complete(p)
            : p->kind == PROTO_CHECK_SMTP ? smtp_complete(p->in, p->in_len)
                                          : tcp_complete(p))
            goto done;
    }
done:
    if (p->kind == PROTO_CHECK_HTTP)
        http_evaluate(a, p);
    else if (p->kind == PROTO_CHECK_SMTP)
        smtp_evaluate(a, p);
    else
        tcp_evaluate(a, p);
}

static void probe_start_read(agent *a, agent_probe *p)
{
    p->phase = PHASE_READ;
    p->max_in = p->kind == PROTO_CHECK_HTTP ? PROBE_HTTP_MAX_READ
                                            : PROBE_MAX_BANNER;
    p->in = malloc(p->max_in + 1);
    if (p->in == NULL) {
        probe_fail_io(a, p, "read", ENOMEM);
        return;
    }
    p->in[0] = '\0';
    /* The answer may be there already; otherwise poll() says when. */
    tcp_on_read(a, p);
}

static void probe_on_send(agent *a, agent_probe *p)
{
    while (p->out_off < p->out_len) {
        ssize_t n = send(p->fd, p->out + p->out_off, p->out_len - p->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return;
            probe_fail_io(a, p, "send", errno);
            return;
        }
        p->out_off += (size_t)n;
    }
    probe_start_read(a, p);
}

static void probe_connected(agent *a, agent_probe *p)
{
    p->reachable = 1;
    p->rtt_ms = elapsed_ms(p->start_us);
    switch (p->kind) {
    case PROTO_CHECK_HTTP:
        p->phase = PHASE_SEND;
        probe_on_send(a, p);
        break;
    case PROTO_CHECK_SMTP:
        probe_start_read(a, p);
        break;
    case PROTO_CHECK_TCP:
        if (p->expect != NULL && p->expect[0] != '\0') {
            probe_start_read(a, p);
            break;
        }
        /* fall through */
    default: {
        char detail[64];
        snprintf(detail, sizeof(detail), "connected in %.1f ms", p->rtt_ms);
        probe_finish(a, p, 1, -1, detail, NULL);
        break;
    }
    }
}

static void probe_on_io(agent *a, void *ctx, int fd, short revents)
{
    agent_probe *p = ctx;
    socklen_t len = sizeof(int);
    int soerr = 0;

    (void)fd;
    (void)revents;
    switch (p->phase) {
    case PHASE_CONNECT:
        if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
            soerr = errno;
        if (soerr != 0)
            probe_fail_unreachable(a, p, soerr);
        else
            probe_connected(a, p);
        break;
    case PHASE_SEND:
        if (p->kind == PROTO_CHECK_DNS)
            dns_send(a, p);
        else
            probe_on_send(a, p);
        break;
    case PHASE_READ:
        if (p->kind == PROTO_CHECK_DNS)
            dns_on_read(a, p);
        else
            tcp_on_read(a, p);
        break;
    }
}

/* Copies what the probe needs from the request (which is freed when this
 * returns).  Returns -1 only when out of memory. */
static int probe_copy_check(agent_probe *p, const proto_probe *req)
{
    p->kind = req->kind;
    p->expect_status = req->expect_status > 0 ? req->expect_status : 200;
    if (req->expect != NULL && req->kind != PROTO_CHECK_NONE &&
        req->kind != PROTO_CHECK_DNS) {
        p->expect = strdup(req->expect);
        if (p->expect == NULL)
            return -1;
    }
    if (req->kind == PROTO_CHECK_DNS) {
        if (req->expect_address != NULL &&
            inet_pton(AF_INET, req->expect_address, &p->expect_addr) == 1)
            p->has_expect_addr = 1;
        if (dns_query(p, req->name) < 0)
            return -1;
    }
    if (req->kind == PROTO_CHECK_HTTP && http_request(p, req) < 0)
        return -1;
    return 0;
}

void agent_probe_start(agent *a, long long id, const proto_probe *req)
{
    struct sockaddr_in sin;
    agent_probe *p = NULL;
    int dns = req->kind == PROTO_CHECK_DNS;

    if (req->kind == PROTO_CHECK_NONE && strcmp(req->proto, "tcp") != 0) {
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
    if (req->kind == PROTO_CHECK_DNS && req->name == NULL) {
        agent_reply_error(a, 1, id, "probe: a dns check needs a name");
        return;
    }
    if (a->nprobes >= AGENT_MAX_PROBES) {
        agent_reply_error(a, 1, id, "busy: %d probes already running",
                          AGENT_MAX_PROBES);
        return;
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL || probe_copy_check(p, req) < 0) {
        if (p != NULL) {
            p->fd = -1;
            probe_unlink_free(a, p);
        }
        agent_reply_error(a, 1, id, "probe: out of memory");
        return;
    }
    p->id = id;
    p->gen = a->chan.gen;
    p->timeout_ms = req->timeout_ms > 0 ? req->timeout_ms
                                        : PROTO_PROBE_DEFAULT_TIMEOUT_MS;
    p->fd = socket(AF_INET,
                   (dns ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK |
                       SOCK_CLOEXEC,
                   0);
    if (p->fd < 0) {
        agent_reply_error(a, 1, id, "probe: socket: %s", strerror(errno));
        probe_unlink_free(a, p);
        return;
    }
    /* Linked from here on: every end goes through probe_finish(). */
    p->next = a->probes;
    a->probes = p;
    a->nprobes++;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((unsigned short)req->port);
    inet_pton(AF_INET, req->addr, &sin.sin_addr);
    p->start_us = agent_now_us();
    p->deadline = p->start_us / 1000 + p->timeout_ms;
    if (connect(p->fd, (struct sockaddr *)&sin, sizeof(sin)) == 0) {
        if (dns)
            dns_send(a, p);
        else
            probe_connected(a, p);
        return;
    }
    if (errno != EINPROGRESS) {
        /* No route, refused on the spot, ...: the probe ran. */
        probe_fail_unreachable(a, p, errno);
        return;
    }
    p->phase = PHASE_CONNECT;
}

void agent_probe_watch(agent *a)
{
    agent_probe *p = NULL;

    for (p = a->probes; p != NULL; p = p->next)
        agent_watch(a, p->fd, p->phase == PHASE_READ ? POLLIN : POLLOUT,
                    probe_on_io, p);
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
    char detail[PROTO_CHECK_MAX_DETAIL];

    for (; p != NULL; p = next) {
        next = p->next;
        if (now < p->deadline)
            continue;
        snprintf(detail, sizeof(detail), "timeout after %d ms in %s",
                 p->timeout_ms, phase_names[p->phase]);
        if (p->in_len > 0)
            snprintf(detail + strlen(detail), sizeof(detail) - strlen(detail),
                     " (%zu bytes received)", p->in_len);
        /* Unreachable unless the connection got through; a dns query only
         * reached its server when an answer came. */
        probe_finish(a, p, 0, -1, detail, "timeout");
    }
}

void agent_probe_free_all(agent *a)
{
    while (a->probes != NULL)
        probe_unlink_free(a, a->probes);
}
