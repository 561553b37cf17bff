/* mini-smtpd: the server role's mail receiver.
 *
 * Speaks enough SMTP for an exercise: HELO/EHLO, MAIL, RCPT, DATA, RSET,
 * NOOP, VRFY, HELP, QUIT and AUTH PLAIN/LOGIN checked against the image's
 * real accounts (imgauth), so a brute force against it is meaningful and
 * leaves a trail.  Mail for local users (a recipient without a domain or in
 * one of the local domains, whose local part is an account) is appended to
 * /var/mail/<user> in mbox format; mail for other domains is refused unless
 * the client authenticated, and is then kept in the outbound spool, since a
 * range has no real internet.  Every connection, authentication attempt,
 * accepted or refused message is one line in the log file.
 *
 * Listens itself and forks one child per connection; runs in the
 * foreground (start-services keeps it in its own session).  Static.
 */
#include "imgauth.h"
#include "srvio.h"

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
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_LEN 1000 /* RFC 5321 text line, with CRLF */
#define RCPT_MAX 50
#define ADDR_MAX 256

struct smtpd_opts {
    const char *bind_addr;
    int port;
    const char *maildir;
    const char *spooldir;
    const char *logfile;
    const char *hostname;
    char domains[1024]; /* comma separated local domains */
    long max_size;
    int fail_delay_ms;
};

struct smtpd_session {
    int fd;
    char peer[64];
    char helo[128];
    char from[ADDR_MAX];
    char rcpt[RCPT_MAX][ADDR_MAX];
    char rcpt_user[RCPT_MAX][IMGAUTH_NAME_MAX]; /* empty: outbound */
    int nrcpt;
    char auth_user[IMGAUTH_NAME_MAX];
    int has_from;
    /* input buffer */
    char buf[8192];
    size_t blen;
};

static struct smtpd_opts opts = {
    .bind_addr = "0.0.0.0",
    .port = 25,
    .maildir = "/var/mail",
    .spooldir = "/var/spool/outbound",
    .logfile = "/var/log/mail.log",
    .hostname = NULL,
    .domains = "",
    .max_size = 10L * 1024 * 1024,
    .fail_delay_ms = 300,
};
static int logfd = 2;

static void smtpd_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void smtpd_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    srvio_vlog(logfd, "mini-smtpd", 2048, fmt, ap);
    va_end(ap);
}

/* Make a client supplied string safe for one log line. */
static void smtpd_clean(const char *in, char *out, size_t len)
{
    srvio_clean(in, out, len, NULL);
}

static void smtpd_reply(struct smtpd_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void smtpd_reply(struct smtpd_session *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    srvio_vreply(s->fd, 1024, fmt, ap);
    va_end(ap);
}

/* Read one line (without CRLF) into LINE.  Returns its length, -1 on EOF,
 * -2 when the line was longer than LEN-1 (it is consumed and dropped). */
static int smtpd_readline(struct smtpd_session *s, char *line, size_t len)
{
    int too_long = 0;
    size_t o = 0;
    for (;;) {
        char *nl = memchr(s->buf, '\n', s->blen);
        size_t take = nl ? (size_t)(nl - s->buf) + 1 : s->blen;
        for (size_t i = 0; i < take; i++) {
            if (o + 1 < len)
                line[o++] = s->buf[i];
            else
                too_long = 1;
        }
        memmove(s->buf, s->buf + take, s->blen - take);
        s->blen -= take;
        if (nl)
            break;
        ssize_t r = read(s->fd, s->buf, sizeof(s->buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        s->blen = (size_t)r;
    }
    line[o] = '\0';
    while (o > 0 && (line[o - 1] == '\n' || line[o - 1] == '\r'))
        line[--o] = '\0';
    return too_long ? -2 : (int)o;
}

static void smtpd_fail_delay(void)
{
    struct timespec ts = {opts.fail_delay_ms / 1000, (long)(opts.fail_delay_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Extract the address between < and > after a "FROM:"/"TO:" prefix. */
static int smtpd_addr(const char *arg, char *out, size_t len)
{
    const char *lt = strchr(arg, '<');
    const char *gt = lt ? strchr(lt, '>') : NULL;
    size_t n;
    if (lt && gt) {
        n = (size_t)(gt - lt - 1);
        lt++;
    } else {
        while (*arg == ' ')
            arg++;
        lt = arg;
        n = strcspn(arg, " ");
    }
    if (n >= len)
        return -1;
    memcpy(out, lt, n);
    out[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)out[i] < 33 || out[i] == 127)
            return -1;
    return 0;
}

static int smtpd_local_domain(const char *dom)
{
    const char *p = opts.domains;
    size_t n = strlen(dom);
    if (n == 0)
        return 1;
    while (*p) {
        size_t l = strcspn(p, ",");
        if (l == n && strncasecmp(p, dom, n) == 0)
            return 1;
        p += l;
        if (*p == ',')
            p++;
    }
    return 0;
}

static void smtpd_reset(struct smtpd_session *s)
{
    s->from[0] = '\0';
    s->has_from = 0;
    s->nrcpt = 0;
}

static void smtpd_auth_result(struct smtpd_session *s, const char *user, const char *pass,
                              const char *mech)
{
    char cu[IMGAUTH_NAME_MAX * 2];
    smtpd_clean(user, cu, sizeof(cu));
    if (imgauth_check(user, pass) == 0) {
        snprintf(s->auth_user, sizeof(s->auth_user), "%s", user);
        smtpd_log("auth ok mech=%s user=%s from=%s", mech, cu, s->peer);
        smtpd_reply(s, "235 2.7.0 Authentication successful");
    } else {
        smtpd_log("auth failed mech=%s user=%s from=%s", mech, cu, s->peer);
        smtpd_fail_delay();
        smtpd_reply(s, "535 5.7.8 Authentication credentials invalid");
    }
}

static void smtpd_auth(struct smtpd_session *s, char *arg)
{
    char line[LINE_MAX_LEN];
    char dec[512];
    char mech[16] = "";
    char *init = NULL;
    int n;

    if (s->auth_user[0]) {
        smtpd_reply(s, "503 5.5.1 Already authenticated");
        return;
    }
    n = 0;
    while (arg[n] && arg[n] != ' ' && n < (int)sizeof(mech) - 1) {
        mech[n] = (char)toupper((unsigned char)arg[n]);
        n++;
    }
    mech[n] = '\0';
    if (arg[n] == ' ')
        init = arg + n + 1;

    if (strcmp(mech, "PLAIN") == 0) {
        if (!init || !*init) {
            smtpd_reply(s, "334 ");
            if (smtpd_readline(s, line, sizeof(line)) < 0)
                _exit(0);
            init = line;
        }
        if (strcmp(init, "*") == 0) {
            smtpd_reply(s, "501 5.0.0 Authentication aborted");
            return;
        }
        n = imgauth_b64decode(init, dec, sizeof(dec));
        /* authzid \0 authcid \0 password */
        char *u = n > 0 ? memchr(dec, '\0', (size_t)n) : NULL;
        char *p = u ? memchr(u + 1, '\0', (size_t)(n - (u + 1 - dec))) : NULL;
        if (!u || !p) {
            smtpd_log("auth malformed mech=PLAIN from=%s", s->peer);
            smtpd_reply(s, "501 5.5.2 Cannot decode response");
            return;
        }
        smtpd_auth_result(s, u + 1, p + 1, "PLAIN");
    } else if (strcmp(mech, "LOGIN") == 0) {
        char user[IMGAUTH_NAME_MAX * 2];
        if (init && *init) {
            if (imgauth_b64decode(init, user, sizeof(user)) < 0) {
                smtpd_reply(s, "501 5.5.2 Cannot decode response");
                return;
            }
        } else {
            smtpd_reply(s, "334 VXNlcm5hbWU6"); /* Username: */
            if (smtpd_readline(s, line, sizeof(line)) < 0)
                _exit(0);
            if (strcmp(line, "*") == 0 ||
                imgauth_b64decode(line, user, sizeof(user)) < 0) {
                smtpd_reply(s, "501 5.5.2 Cannot decode response");
                return;
            }
        }
        smtpd_reply(s, "334 UGFzc3dvcmQ6"); /* Password: */
        if (smtpd_readline(s, line, sizeof(line)) < 0)
            _exit(0);
        if (strcmp(line, "*") == 0 || imgauth_b64decode(line, dec, sizeof(dec)) < 0) {
            smtpd_reply(s, "501 5.5.2 Cannot decode response");
            return;
        }
        smtpd_auth_result(s, user, dec, "LOGIN");
    } else {
        smtpd_reply(s, "504 5.5.4 Unrecognized authentication type");
    }
}

static void smtpd_rcpt(struct smtpd_session *s, const char *arg)
{
    char addr[ADDR_MAX], local[ADDR_MAX], clean[ADDR_MAX];
    const char *at;
    struct imgauth_user u;

    if (!s->has_from) {
        smtpd_reply(s, "503 5.5.1 Need MAIL command");
        return;
    }
    if (s->nrcpt >= RCPT_MAX) {
        smtpd_reply(s, "452 4.5.3 Too many recipients");
        return;
    }
    if (strncasecmp(arg, "TO:", 3) != 0 || smtpd_addr(arg + 3, addr, sizeof(addr)) != 0 ||
        !addr[0]) {
        smtpd_reply(s, "501 5.5.4 Syntax: RCPT TO:<address>");
        return;
    }
    smtpd_clean(addr, clean, sizeof(clean));
    at = strrchr(addr, '@');
    snprintf(local, sizeof(local), "%.*s", at ? (int)(at - addr) : (int)strlen(addr), addr);
    for (char *p = local; *p; p++)
        *p = (char)tolower((unsigned char)*p);

    if (smtpd_local_domain(at ? at + 1 : "")) {
        const char *user = local;
        if (strcmp(local, "postmaster") == 0 || strcmp(local, "abuse") == 0)
            user = "root";
        if (imgauth_lookup(user, &u) != 0) {
            smtpd_log("reject rcpt=<%s> from=%s reason=unknown-user", clean, s->peer);
            smtpd_reply(s, "550 5.1.1 <%s>: Recipient address rejected: User unknown", clean);
            return;
        }
        snprintf(s->rcpt_user[s->nrcpt], IMGAUTH_NAME_MAX, "%s", u.name);
    } else if (s->auth_user[0]) {
        s->rcpt_user[s->nrcpt][0] = '\0';
    } else {
        smtpd_log("reject rcpt=<%s> from=%s reason=relay-denied", clean, s->peer);
        smtpd_reply(s, "554 5.7.1 <%s>: Relay access denied", clean);
        return;
    }
    snprintf(s->rcpt[s->nrcpt], ADDR_MAX, "%s", addr);
    s->nrcpt++;
    smtpd_reply(s, "250 2.1.5 Ok");
}

/* Append the message in TMP (a stream positioned at 0) to PATH in mbox
 * format, creating it owned by UID with group mail. */
static int smtpd_append(const char *path, FILE *tmp, const char *from, uid_t uid, gid_t gid)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0660);
    FILE *out;
    char line[LINE_MAX_LEN + 2];
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    int rc = 0;

    if (fd < 0)
        return -1;
    if (fchown(fd, uid, gid) != 0) {
        /* keep going: the mail matters more than its owner */
    }
    if (flock(fd, LOCK_EX) != 0) {
        close(fd);
        return -1;
    }
    out = fdopen(fd, "a");
    if (!out) {
        close(fd);
        return -1;
    }
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a %b %e %H:%M:%S %Y", &tm);
    fprintf(out, "From %s %s\n", from[0] ? from : "MAILER-DAEMON", date);
    rewind(tmp);
    while (fgets(line, sizeof(line), tmp)) {
        if (strncmp(line, "From ", 5) == 0)
            fputc('>', out);
        fputs(line, out);
    }
    fputc('\n', out);
    if (fflush(out) != 0 || ferror(tmp))
        rc = -1;
    fclose(out);
    return rc;
}

static void smtpd_data(struct smtpd_session *s)
{
    char line[LINE_MAX_LEN + 2];
    char date[64], id[32];
    FILE *tmp;
    long size = 0;
    int toolong = 0, n;
    time_t now = time(NULL);
    struct tm tm;

    if (!s->has_from || s->nrcpt == 0) {
        smtpd_reply(s, "503 5.5.1 Need RCPT command");
        return;
    }
    tmp = tmpfile();
    if (!tmp) {
        smtpd_reply(s, "451 4.3.0 Local error");
        return;
    }
    snprintf(id, sizeof(id), "%lX%05X", (unsigned long)now, (unsigned int)getpid() & 0xfffff);
    localtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
    fprintf(tmp, "Received: from %s (%s)\n\tby %s (mini-smtpd) with ESMTP%s id %s;\n\t%s\n",
            s->helo[0] ? s->helo : "unknown", s->peer, opts.hostname, s->auth_user[0] ? "A" : "",
            id, date);
    smtpd_reply(s, "354 End data with <CR><LF>.<CR><LF>");
    for (;;) {
        n = smtpd_readline(s, line, sizeof(line));
        if (n == -1)
            _exit(0);
        if (n == -2) {
            toolong = 1;
            continue;
        }
        if (strcmp(line, ".") == 0)
            break;
        const char *p = line[0] == '.' ? line + 1 : line;
        size += (long)strlen(p) + 1;
        if (size <= opts.max_size)
            fprintf(tmp, "%s\n", p);
    }
    if (size > opts.max_size) {
        fclose(tmp);
        smtpd_log("reject from=<%s> peer=%s reason=too-big size=%ld", s->from, s->peer, size);
        smtpd_reply(s, "552 5.3.4 Message size exceeds fixed limit");
        smtpd_reset(s);
        return;
    }
    if (toolong)
        smtpd_log("warning id=%s: over-long lines truncated", id);

    int delivered = 0;
    for (int i = 0; i < s->nrcpt; i++) {
        char path[512], clean[ADDR_MAX];
        struct imgauth_user u;
        uid_t uid = 0;
        gid_t gid = 8; /* mail */
        smtpd_clean(s->rcpt[i], clean, sizeof(clean));
        if (s->rcpt_user[i][0]) {
            if (imgauth_lookup(s->rcpt_user[i], &u) == 0)
                uid = u.uid;
            snprintf(path, sizeof(path), "%s/%s", opts.maildir, s->rcpt_user[i]);
        } else {
            mkdir(opts.spooldir, 0700);
            snprintf(path, sizeof(path), "%s/%s", opts.spooldir, id);
        }
        if (smtpd_append(path, tmp, s->from, uid, gid) == 0) {
            delivered++;
            smtpd_log("id=%s from=<%s> to=<%s> peer=%s helo=%s auth=%s size=%ld %s=%s", id,
                      s->from, clean, s->peer, s->helo, s->auth_user[0] ? s->auth_user : "-",
                      size, s->rcpt_user[i][0] ? "delivered" : "queued", path);
        } else {
            smtpd_log("id=%s to=<%s> error=%s path=%s", id, clean, strerror(errno), path);
        }
    }
    fclose(tmp);
    if (delivered)
        smtpd_reply(s, "250 2.0.0 Ok: queued as %s", id);
    else
        smtpd_reply(s, "451 4.3.0 Local delivery failed");
    smtpd_reset(s);
}

static void smtpd_session_run(int fd, const char *peer)
{
    struct smtpd_session s;
    char line[LINE_MAX_LEN + 2];
    char verb[16];
    int n;

    memset(&s, 0, sizeof(s));
    s.fd = fd;
    snprintf(s.peer, sizeof(s.peer), "%s", peer);
    smtpd_log("connect from=%s", peer);
    smtpd_reply(&s, "220 %s ESMTP mini-smtpd", opts.hostname);
    for (;;) {
        alarm(300);
        n = smtpd_readline(&s, line, sizeof(line));
        if (n == -1)
            break;
        if (n == -2) {
            smtpd_reply(&s, "500 5.5.2 Line too long");
            continue;
        }
        size_t vl = strcspn(line, " ");
        if (vl >= sizeof(verb))
            vl = sizeof(verb) - 1;
        for (size_t i = 0; i < vl; i++)
            verb[i] = (char)toupper((unsigned char)line[i]);
        verb[vl] = '\0';
        char *arg = line + strcspn(line, " ");
        while (*arg == ' ')
            arg++;

        if (strcmp(verb, "HELO") == 0 || strcmp(verb, "EHLO") == 0) {
            char clean[128];
            smtpd_clean(*arg ? arg : "unknown", clean, sizeof(clean));
            snprintf(s.helo, sizeof(s.helo), "%s", clean);
            smtpd_reset(&s);
            if (verb[0] == 'H') {
                smtpd_reply(&s, "250 %s", opts.hostname);
            } else {
                smtpd_reply(&s, "250-%s", opts.hostname);
                smtpd_reply(&s, "250-SIZE %ld", opts.max_size);
                smtpd_reply(&s, "250-8BITMIME");
                smtpd_reply(&s, "250-AUTH PLAIN LOGIN");
                smtpd_reply(&s, "250 HELP");
            }
        } else if (strcmp(verb, "MAIL") == 0) {
            char addr[ADDR_MAX];
            if (s.has_from) {
                smtpd_reply(&s, "503 5.5.1 Sender already specified");
            } else if (strncasecmp(arg, "FROM:", 5) != 0 ||
                       smtpd_addr(arg + 5, addr, sizeof(addr)) != 0) {
                smtpd_reply(&s, "501 5.5.4 Syntax: MAIL FROM:<address>");
            } else {
                smtpd_clean(addr, s.from, sizeof(s.from));
                s.has_from = 1;
                smtpd_reply(&s, "250 2.1.0 Ok");
            }
        } else if (strcmp(verb, "RCPT") == 0) {
            smtpd_rcpt(&s, arg);
        } else if (strcmp(verb, "DATA") == 0) {
            smtpd_data(&s);
        } else if (strcmp(verb, "AUTH") == 0) {
            smtpd_auth(&s, arg);
        } else if (strcmp(verb, "RSET") == 0) {
            smtpd_reset(&s);
            smtpd_reply(&s, "250 2.0.0 Ok");
        } else if (strcmp(verb, "NOOP") == 0) {
            smtpd_reply(&s, "250 2.0.0 Ok");
        } else if (strcmp(verb, "VRFY") == 0) {
            smtpd_reply(&s, "252 2.0.0 Cannot VRFY user");
        } else if (strcmp(verb, "HELP") == 0) {
            smtpd_reply(&s, "214 2.0.0 HELO EHLO MAIL RCPT DATA RSET NOOP VRFY AUTH QUIT");
        } else if (strcmp(verb, "QUIT") == 0) {
            smtpd_reply(&s, "221 2.0.0 Bye");
            break;
        } else if (strcmp(verb, "STARTTLS") == 0) {
            smtpd_reply(&s, "454 4.7.0 TLS not available");
        } else {
            smtpd_reply(&s, "502 5.5.2 Error: command not recognized");
        }
    }
    smtpd_log("disconnect from=%s", peer);
}

static void smtpd_usage(void)
{
    fprintf(stderr,
            "usage: mini-smtpd [-b ADDR] [-p PORT] [-n HOSTNAME] [-d DOMAIN,...] [-m MAILDIR]\n"
            "                  [-s SPOOLDIR] [-l LOGFILE] [-z MAXBYTES] [-f FAIL_DELAY_MS]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static char host[256];
    struct sockaddr_in sa;
    struct sigaction sig;
    int c, lfd, one = 1;

    while ((c = getopt(argc, argv, "b:p:n:d:m:s:l:z:f:h")) != -1) {
        switch (c) {
        case 'b': opts.bind_addr = optarg; break;
        case 'p': opts.port = atoi(optarg); break;
        case 'n': opts.hostname = optarg; break;
        case 'd': snprintf(opts.domains, sizeof(opts.domains), "%s", optarg); break;
        case 'm': opts.maildir = optarg; break;
        case 's': opts.spooldir = optarg; break;
        case 'l': opts.logfile = optarg; break;
        case 'z': opts.max_size = atol(optarg); break;
        case 'f': opts.fail_delay_ms = atoi(optarg); break;
        default: smtpd_usage();
        }
    }
    if (optind != argc || opts.port <= 0 || opts.port > 65535 || opts.fail_delay_ms < 0)
        smtpd_usage();
    if (!opts.hostname) {
        if (gethostname(host, sizeof(host) - 1) != 0)
            snprintf(host, sizeof(host), "localhost");
        opts.hostname = host;
    }
    if (strcmp(opts.logfile, "-") != 0) {
        logfd = open(opts.logfile, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (logfd < 0) {
            fprintf(stderr, "mini-smtpd: %s: %s\n", opts.logfile, strerror(errno));
            return 1;
        }
    }

    memset(&sig, 0, sizeof(sig));
    sig.sa_handler = SIG_IGN;
    sig.sa_flags = SA_NOCLDWAIT;
    sigaction(SIGCHLD, &sig, NULL);
    sig.sa_flags = 0;
    sigaction(SIGPIPE, &sig, NULL);

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)opts.port);
    if (inet_pton(AF_INET, opts.bind_addr, &sa.sin_addr) != 1) {
        fprintf(stderr, "mini-smtpd: bad address %s\n", opts.bind_addr);
        return 2;
    }
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 64) != 0) {
        fprintf(stderr, "mini-smtpd: listen %s:%d: %s\n", opts.bind_addr, opts.port,
                strerror(errno));
        return 1;
    }
    smtpd_log("listening on %s:%d host=%s domains=%s", opts.bind_addr, opts.port, opts.hostname,
              opts.domains[0] ? opts.domains : "(none)");

    for (;;) {
        struct sockaddr_in peer;
        socklen_t plen = sizeof(peer);
        char pstr[64];
        int fd = accept4(lfd, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EINTR)
                smtpd_log("accept: %s", strerror(errno));
            continue;
        }
        inet_ntop(AF_INET, &peer.sin_addr, pstr, sizeof(pstr));
        pid_t pid = fork();
        if (pid == 0) {
            close(lfd);
            sig.sa_handler = SIG_DFL;
            sigaction(SIGCHLD, &sig, NULL);
            smtpd_session_run(fd, pstr);
            _exit(0);
        }
        if (pid < 0)
            smtpd_log("fork: %s", strerror(errno));
        close(fd);
    }
}
