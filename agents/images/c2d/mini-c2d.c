/* mini-c2d: the attacker role's HTTP command-and-control listener.
 *
 * What the in-range implant and the exfiltration step talk to
 * (agents/agent_act_net.c):
 *   GET /beacon?id=HOST&seq=N   a check-in: logged to the beacon log,
 *                               answered "200 OK" with an empty task list
 *   POST /upload                exfiltrated data (Content-Length bytes, at
 *                               most -z): stored in ROOT/loot/, size logged
 *   GET anything else           a static file under ROOT (tools/ for
 *                               tool.transfer, the staging site), never
 *                               loot/ or dot files
 * Every request is one line of the access log with the peer (through the
 * organisation's proxy the peer is the proxy: what a real C2 sees), the
 * Host header and the user agent.
 *
 * Why not busybox httpd with a CGI: Debian's busybox httpd runs CGIs only
 * under /cgi-bin/ or for existing files with an interpreter suffix, and its
 * reverse proxy is compiled out, so /beacon and /upload cannot reach a
 * script without a redirect the implant would not follow.
 *
 * Listens itself, forks one child per connection (at most MAX_CHILDREN at
 * once), runs in the foreground (start-services keeps it in its own
 * session).  Static.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "srvio.h"

#define HEAD_MAX 16384      /* request line and headers */
#define MAX_CHILDREN 64     /* connections served at once */
#define IO_TIMEOUT_S 30     /* per read or write */
#define CONN_TIMEOUT_S 600  /* a whole connection, uploads included */

struct c2d_opts {
    const char *bind_addr;
    int port;
    const char *root;
    const char *logfile;
    const char *beaconlog;
    long long max_upload;
};

static struct c2d_opts opts = {
    .bind_addr = "0.0.0.0",
    .port = 80,
    .root = "/srv/c2",
    .logfile = "/var/log/c2-http.log",
    .beaconlog = "/var/log/c2-beacons.log",
    .max_upload = 64LL * 1024 * 1024,
};
static int logfd = 2, beaconfd = -1;
static volatile sig_atomic_t children;

struct c2d_req {
    int fd;
    char peer[64];
    char method[16];
    char target[2048];
    char path[2048];
    const char *query;     /* into target, or "" */
    char host[256];
    char ua[256];
    long long content_length;
    int has_length;
    char head[HEAD_MAX + 1];
    size_t head_len;       /* bytes read, headers and the start of the body */
    size_t body_off;       /* where the body starts in head */
    int status;
    long long sent;
};

static void c2d_line(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One line with a timestamp, one write (children share the descriptor). */
static void c2d_line(int fd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    srvio_vlog(fd, NULL, 4096, fmt, ap);
    va_end(ap);
}

/* A client supplied string made safe for one log line. */
static void c2d_clean(const char *in, char *out, size_t len)
{
    srvio_clean(in, out, len, "\"");
}

static int c2d_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void c2d_respond(struct c2d_req *r, int status, const char *reason, const char *ctype,
                        const char *body, size_t len)
{
    char head[512];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.0 %d %s\r\nServer: nginx\r\nContent-Type: %s\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     status, reason, ctype, len);

    r->status = status;
    if (c2d_write_all(r->fd, head, (size_t)n) == 0 && strcmp(r->method, "HEAD") != 0 &&
        c2d_write_all(r->fd, body, len) == 0)
        r->sent = (long long)len;
}

static void c2d_error(struct c2d_req *r, int status, const char *reason)
{
    char body[256];
    int n = snprintf(body, sizeof(body), "<html><body><h1>%d %s</h1></body></html>\n", status,
                     reason);

    c2d_respond(r, status, reason, "text/html", body, (size_t)n);
}

/* Read the request line and headers (the first bytes of a body may come
 * with them).  0, or -1 when the client sent nothing usable. */
static int c2d_read_head(struct c2d_req *r)
{
    char *end = NULL;

    while (r->head_len < HEAD_MAX) {
        ssize_t n = read(r->fd, r->head + r->head_len, HEAD_MAX - r->head_len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        r->head_len += (size_t)n;
        r->head[r->head_len] = '\0';
        if ((end = strstr(r->head, "\r\n\r\n")) != NULL) {
            r->body_off = (size_t)(end - r->head) + 4;
            return 0;
        }
        if ((end = strstr(r->head, "\n\n")) != NULL) {
            r->body_off = (size_t)(end - r->head) + 2;
            return 0;
        }
    }
    return -1;
}

static void c2d_header(struct c2d_req *r, const char *name, char *out, size_t len)
{
    size_t nl = strlen(name);
    const char *p = strchr(r->head, '\n');

    out[0] = '\0';
    while (p != NULL && (size_t)(p - r->head) < r->body_off) {
        p++;
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            size_t o = 0;
            p += nl + 1;
            while (*p == ' ' || *p == '\t')
                p++;
            while (*p && *p != '\r' && *p != '\n' && o + 1 < len)
                out[o++] = *p++;
            out[o] = '\0';
            return;
        }
        p = strchr(p, '\n');
    }
}

static int c2d_parse(struct c2d_req *r)
{
    char version[16], clen[32], *q;
    const char *t;

    if (sscanf(r->head, "%15s %2047s %15s", r->method, r->target, version) != 3 ||
        strncmp(version, "HTTP/", 5) != 0)
        return -1;
    /* A proxy's absolute form: keep the path. */
    t = r->target;
    if (strncasecmp(t, "http://", 7) == 0) {
        t = strchr(t + 7, '/');
        if (t == NULL)
            t = "/";
    }
    snprintf(r->path, sizeof(r->path), "%s", t);
    q = strchr(r->path, '?');
    r->query = "";
    if (q != NULL) {
        *q = '\0';
        r->query = strchr(t, '?') + 1;
    }
    c2d_header(r, "Host", r->host, sizeof(r->host));
    c2d_header(r, "User-Agent", r->ua, sizeof(r->ua));
    c2d_header(r, "Content-Length", clen, sizeof(clen));
    if (clen[0] != '\0') {
        char *e = NULL;
        r->content_length = strtoll(clen, &e, 10);
        r->has_length = e != clen && *e == '\0' && r->content_length >= 0;
    }
    return 0;
}

/* The value of key in a query string, made safe for the log. */
static void c2d_qparam(const char *query, const char *key, char *out, size_t len)
{
    size_t kl = strlen(key);
    const char *p = query;

    out[0] = '\0';
    while (p != NULL && *p) {
        if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
            size_t o = 0;
            for (p += kl + 1; *p && *p != '&' && o + 1 < len; p++)
                out[o++] = (isalnum((unsigned char)*p) || strchr("-_.:", *p)) ? *p : '_';
            out[o] = '\0';
            return;
        }
        p = strchr(p, '&');
        if (p != NULL)
            p++;
    }
}

static void c2d_beacon(struct c2d_req *r)
{
    static const char task[] = "OK\n";
    char id[80], seq[24], host[256], ua[256];

    c2d_qparam(r->query, "id", id, sizeof(id));
    c2d_qparam(r->query, "seq", seq, sizeof(seq));
    c2d_clean(r->host, host, sizeof(host));
    c2d_clean(r->ua, ua, sizeof(ua));
    c2d_line(beaconfd, "beacon id=%s seq=%s from=%s host=%s ua=\"%s\"", id[0] ? id : "-",
             seq[0] ? seq : "-", r->peer, host[0] ? host : "-", ua);
    /* An empty task list: the implant keeps sleeping. */
    c2d_respond(r, 200, "OK", "text/plain", task, sizeof(task) - 1);
}

static void c2d_upload(struct c2d_req *r)
{
    char dir[1024], path[1200], msg[256], stamp[32], who[64];
    long long got = 0, want = r->content_length;
    size_t have = r->head_len - r->body_off;
    time_t now = time(NULL);
    struct tm tm;
    int out, n;

    if (strcmp(r->method, "POST") != 0 && strcmp(r->method, "PUT") != 0) {
        c2d_error(r, 405, "Method Not Allowed");
        return;
    }
    if (!r->has_length) {
        c2d_error(r, 411, "Length Required");
        return;
    }
    if (want > opts.max_upload) {
        c2d_line(beaconfd, "upload refused from=%s bytes=%lld (over %lld)", r->peer, want,
                 opts.max_upload);
        c2d_error(r, 413, "Payload Too Large");
        return;
    }
    snprintf(dir, sizeof(dir), "%s/loot", opts.root);
    mkdir(dir, 0700);
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    /* 198.18.0.1:41234 -> 198.18.0.1-41234: a plain file name. */
    snprintf(who, sizeof(who), "%s", r->peer);
    for (char *w = who; *w; w++)
        if (*w == ':')
            *w = '-';
    snprintf(path, sizeof(path), "%s/%s-%s.bin", dir, stamp, who);
    out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (out < 0) {
        c2d_line(logfd, "upload: %s: %s", path, strerror(errno));
        c2d_error(r, 500, "Internal Server Error");
        return;
    }
    if ((long long)have > want)
        have = (size_t)want;
    if (have > 0 && c2d_write_all(out, r->head + r->body_off, have) == 0)
        got = (long long)have;
    while (got < want) {
        char buf[65536];
        size_t take = want - got < (long long)sizeof(buf) ? (size_t)(want - got) : sizeof(buf);
        ssize_t k = read(r->fd, buf, take);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0 || c2d_write_all(out, buf, (size_t)k) < 0)
            break;
        got += k;
    }
    close(out);
    c2d_line(beaconfd, "upload from=%s bytes=%lld of=%lld file=%s", r->peer, got, want, path);
    if (got < want) {
        r->status = 400; /* the client went away: nothing to answer */
        return;
    }
    n = snprintf(msg, sizeof(msg), "received %lld bytes\n", got);
    c2d_respond(r, 200, "OK", "text/plain", msg, (size_t)n);
}

static const char *c2d_ctype(const char *path)
{
    static const struct {
        const char *ext, *type;
    } t[] = {{".html", "text/html"}, {".htm", "text/html"}, {".txt", "text/plain"},
             {".sh", "text/plain"},  {".css", "text/css"},  {".js", "application/javascript"},
             {".json", "application/json"}, {".png", "image/png"}, {".jpg", "image/jpeg"}};
    const char *dot = strrchr(path, '.');

    for (size_t i = 0; dot && i < sizeof(t) / sizeof(t[0]); i++)
        if (strcasecmp(dot, t[i].ext) == 0)
            return t[i].type;
    return "application/octet-stream";
}

static void c2d_static(struct c2d_req *r)
{
    char file[4096], head[512];
    struct stat st;
    const char *p = r->path;
    int fd, n;

    if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0) {
        c2d_error(r, 405, "Method Not Allowed");
        return;
    }
    /* No way out of the root, no loot, no dot files. */
    if (p[0] != '/' || strstr(p, "/.") != NULL || strncmp(p, "/loot", 5) == 0 ||
        strchr(p, '\\') != NULL) {
        c2d_error(r, 404, "Not Found");
        return;
    }
    snprintf(file, sizeof(file), "%s%s", opts.root, p);
    if (stat(file, &st) == 0 && S_ISDIR(st.st_mode)) {
        size_t l = strlen(file);
        snprintf(file + l, sizeof(file) - l, "%sindex.html", file[l - 1] == '/' ? "" : "/");
    }
    fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        c2d_error(r, 404, "Not Found");
        return;
    }
    n = snprintf(head, sizeof(head),
                 "HTTP/1.0 200 OK\r\nServer: nginx\r\nContent-Type: %s\r\n"
                 "Content-Length: %lld\r\nConnection: close\r\n\r\n",
                 c2d_ctype(file), (long long)st.st_size);
    r->status = 200;
    if (c2d_write_all(r->fd, head, (size_t)n) == 0 && strcmp(r->method, "HEAD") != 0) {
        char buf[65536];
        for (;;) {
            ssize_t k = read(fd, buf, sizeof(buf));
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0 || c2d_write_all(r->fd, buf, (size_t)k) < 0)
                break;
            r->sent += k;
        }
    }
    close(fd);
}

static void c2d_session(int fd, const char *peer)
{
    struct timeval tv = {IO_TIMEOUT_S, 0};
    struct c2d_req *r = calloc(1, sizeof(*r));
    char target[512], ua[256], host[256];

    if (r == NULL)
        return;
    alarm(CONN_TIMEOUT_S);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    r->fd = fd;
    snprintf(r->peer, sizeof(r->peer), "%s", peer);
    if (c2d_read_head(r) < 0 || c2d_parse(r) < 0) {
        if (r->head_len > 0) {
            snprintf(r->method, sizeof(r->method), "-");
            c2d_error(r, 400, "Bad Request");
            c2d_line(logfd, "%s \"-\" 400 %lld \"-\" host=-", peer, r->sent);
        }
        free(r);
        return;
    }
    if (strcmp(r->path, "/beacon") == 0 || strncmp(r->path, "/beacon/", 8) == 0)
        c2d_beacon(r);
    else if (strcmp(r->path, "/upload") == 0)
        c2d_upload(r);
    else
        c2d_static(r);
    c2d_clean(r->target, target, sizeof(target));
    c2d_clean(r->ua, ua, sizeof(ua));
    c2d_clean(r->host, host, sizeof(host));
    c2d_line(logfd, "%s \"%s %s\" %d %lld \"%s\" host=%s", peer, r->method, target, r->status,
             r->sent, ua, host[0] ? host : "-");
    free(r);
}

static void c2d_on_child(int sig)
{
    int saved = errno;

    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0)
        if (children > 0)
            children--;
    errno = saved;
}

static void c2d_usage(void)
{
    fprintf(stderr, "usage: mini-c2d [-b ADDR] [-p PORT] [-r ROOT] [-l LOGFILE] [-B BEACONLOG] "
                    "[-z MAX_UPLOAD_BYTES]\n");
    exit(2);
}

static int c2d_open_log(const char *path)
{
    int fd;

    if (strcmp(path, "-") == 0)
        return 2;
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        fprintf(stderr, "mini-c2d: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    return fd;
}

int main(int argc, char **argv)
{
    struct sockaddr_in sa;
    struct sigaction sig;
    sigset_t chld, old;
    int c, lfd, one = 1;

    while ((c = getopt(argc, argv, "b:p:r:l:B:z:h")) != -1) {
        switch (c) {
        case 'b': opts.bind_addr = optarg; break;
        case 'p': opts.port = atoi(optarg); break;
        case 'r': opts.root = optarg; break;
        case 'l': opts.logfile = optarg; break;
        case 'B': opts.beaconlog = optarg; break;
        case 'z': opts.max_upload = atoll(optarg); break;
        default: c2d_usage();
        }
    }
    if (optind != argc || opts.port <= 0 || opts.port > 65535 || opts.max_upload < 0)
        c2d_usage();
    logfd = c2d_open_log(opts.logfile);
    beaconfd = c2d_open_log(opts.beaconlog);

    memset(&sig, 0, sizeof(sig));
    sig.sa_handler = c2d_on_child;
    sig.sa_flags = SA_RESTART;
    sigaction(SIGCHLD, &sig, NULL);
    sig.sa_handler = SIG_IGN;
    sig.sa_flags = 0;
    sigaction(SIGPIPE, &sig, NULL);

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)opts.port);
    if (inet_pton(AF_INET, opts.bind_addr, &sa.sin_addr) != 1) {
        fprintf(stderr, "mini-c2d: bad address %s\n", opts.bind_addr);
        return 2;
    }
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 64) != 0) {
        fprintf(stderr, "mini-c2d: listen %s:%d: %s\n", opts.bind_addr, opts.port,
                strerror(errno));
        return 1;
    }
    c2d_line(logfd, "mini-c2d listening on %s:%d root=%s", opts.bind_addr, opts.port, opts.root);
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);

    for (;;) {
        struct sockaddr_in peer;
        socklen_t plen = sizeof(peer);
        char pstr[64];
        pid_t pid;
        int fd;

        /* At most MAX_CHILDREN at once: wait for one to end (SIGCHLD is
         * blocked between the test and the wait, so none is missed). */
        sigprocmask(SIG_BLOCK, &chld, &old);
        while (children >= MAX_CHILDREN)
            sigsuspend(&old);
        sigprocmask(SIG_SETMASK, &old, NULL);
        fd = accept4(lfd, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EINTR)
                c2d_line(logfd, "accept: %s", strerror(errno));
            continue;
        }
        inet_ntop(AF_INET, &peer.sin_addr, pstr, sizeof(pstr));
        snprintf(pstr + strlen(pstr), sizeof(pstr) - strlen(pstr), ":%d", ntohs(peer.sin_port));
        sigprocmask(SIG_BLOCK, &chld, &old);
        pid = fork();
        if (pid == 0) {
            close(lfd);
            sigprocmask(SIG_SETMASK, &old, NULL);
            sig.sa_handler = SIG_DFL;
            sigaction(SIGCHLD, &sig, NULL);
            c2d_session(fd, pstr);
            _exit(0);
        }
        if (pid > 0)
            children++;
        else
            c2d_line(logfd, "fork: %s", strerror(errno));
        sigprocmask(SIG_SETMASK, &old, NULL);
        close(fd);
    }
}
