/* mini-ftpd: the server role's file share over FTP.
 *
 * Debian's busybox has no ftpd (nor inetd), so the file share is this small
 * server: USER/PASS against the image's real accounts (imgauth; root is
 * refused, as with ftpusers), optional read-only anonymous access, the
 * session confined to the share with chroot(2) and run with the user's
 * uid/gids, PASV/EPSV/PORT data connections, LIST/NLST/RETR/STOR/APPE/DELE/
 * MKD/RMD/RNFR/RNTO/SIZE/MDTM.  Every login attempt and file transfer is one
 * line in the log, so exfiltration and brute force are visible.
 *
 * Listens itself and forks one child per connection; runs in the
 * foreground.  Static.
 */
#include "imgauth.h"
#include "srvio.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define CMD_MAX 1024

struct ftpd_opts {
    const char *bind_addr;
    int port;
    const char *root;
    const char *logfile;
    int anonymous;
    int pasv_min, pasv_max;
    int fail_delay_ms;
};

struct ftpd_session {
    int fd;
    struct sockaddr_in local; /* control connection, for PASV's address */
    char peer[64];
    char user[IMGAUTH_NAME_MAX];
    int logged_in;
    int readonly;
    int pasv_fd;                /* listening socket after PASV/EPSV, or -1 */
    struct sockaddr_in port_sa; /* after PORT */
    int have_port;
    char rnfr[CMD_MAX];
    off_t rest;
    char buf[4096];
    size_t blen;
};

static struct ftpd_opts opts = {
    .bind_addr = "0.0.0.0",
    .port = 21,
    .root = "/srv/share",
    .logfile = "/var/log/ftp.log",
    .anonymous = 0,
    .pasv_min = 30000,
    .pasv_max = 30099,
    .fail_delay_ms = 300,
};
static int logfd = 2;

static void ftpd_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void ftpd_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    srvio_vlog(logfd, "mini-ftpd", 2048, fmt, ap);
    va_end(ap);
}

static void ftpd_clean(const char *in, char *out, size_t len)
{
    srvio_clean(in, out, len, NULL);
}

static void ftpd_reply(struct ftpd_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void ftpd_reply(struct ftpd_session *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    srvio_vreply(s->fd, 2048, fmt, ap);
    va_end(ap);
}

static int ftpd_readline(struct ftpd_session *s, char *line, size_t len)
{
    size_t o = 0;
    for (;;) {
        char *nl = memchr(s->buf, '\n', s->blen);
        size_t take = nl ? (size_t)(nl - s->buf) + 1 : s->blen;
        for (size_t i = 0; i < take; i++)
            if (o + 1 < len)
                line[o++] = s->buf[i];
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
    return (int)o;
}

static void ftpd_fail_delay(void)
{
    struct timespec ts = {opts.fail_delay_ms / 1000, (long)(opts.fail_delay_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void ftpd_close_data(struct ftpd_session *s)
{
    if (s->pasv_fd >= 0)
        close(s->pasv_fd);
    s->pasv_fd = -1;
    s->have_port = 0;
}

/* Open a listening socket for PASV/EPSV on the control connection's local
 * address, in the configured port range.  Returns the port or -1. */
static int ftpd_pasv_listen(struct ftpd_session *s)
{
    ftpd_close_data(s);
    int span = opts.pasv_max - opts.pasv_min + 1;
    int start = (int)(getpid() % span);
    for (int i = 0; i < span; i++) {
        int port = opts.pasv_min + (start + i) % span;
        struct sockaddr_in sa = s->local;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -1;
        sa.sin_port = htons((unsigned short)port);
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(fd, 1) == 0) {
            s->pasv_fd = fd;
            return port;
        }
        close(fd);
    }
    return -1;
}

/* The data connection, after "150".  Returns an fd or -1. */
static int ftpd_data_open(struct ftpd_session *s)
{
    int fd = -1;
    if (s->pasv_fd >= 0) {
        struct pollfd p = {s->pasv_fd, POLLIN, 0};
        if (poll(&p, 1, 30000) == 1) {
            struct sockaddr_in peer;
            socklen_t pl = sizeof(peer);
            fd = accept4(s->pasv_fd, (struct sockaddr *)&peer, &pl, SOCK_CLOEXEC);
            char pstr[64];
            inet_ntop(AF_INET, &peer.sin_addr, pstr, sizeof(pstr));
            /* Only the client itself may take the data connection. */
            if (fd >= 0 && strcmp(pstr, s->peer) != 0) {
                close(fd);
                fd = -1;
            }
        }
    } else if (s->have_port) {
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&s->port_sa, sizeof(s->port_sa)) != 0) {
            close(fd);
            fd = -1;
        }
    }
    ftpd_close_data(s);
    return fd;
}

static int ftpd_write_all(int fd, const char *b, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

static void ftpd_mode(mode_t m, char *out)
{
    out[0] = S_ISDIR(m) ? 'd' : S_ISLNK(m) ? 'l' : '-';
    const char *rwx = "rwxrwxrwx";
    for (int i = 0; i < 9; i++)
        out[i + 1] = (m & (1u << (8 - i))) ? rwx[i] : '-';
    out[10] = '\0';
}

static void ftpd_list_one(int dfd, const char *path, const char *name, int names_only)
{
    char line[1024], mode[11], when[32];
    struct stat st;
    if (names_only) {
        snprintf(line, sizeof(line), "%s\r\n", name);
    } else {
        if (lstat(path, &st) != 0)
            return;
        struct tm tm;
        localtime_r(&st.st_mtime, &tm);
        strftime(when, sizeof(when), "%b %e %H:%M", &tm);
        ftpd_mode(st.st_mode, mode);
        snprintf(line, sizeof(line), "%s %3lu %-8u %-8u %10lld %s %s\r\n", mode,
                 (unsigned long)st.st_nlink, (unsigned)st.st_uid, (unsigned)st.st_gid,
                 (long long)st.st_size, when, name);
    }
    ftpd_write_all(dfd, line, strlen(line));
}

static void ftpd_list(struct ftpd_session *s, const char *arg, int names_only)
{
    struct stat st;
    /* Clients send ls options ("-la"); there are no file names like that. */
    while (*arg == '-') {
        arg += strcspn(arg, " ");
        while (*arg == ' ')
            arg++;
    }
    const char *path = *arg ? arg : ".";
    if (stat(path, &st) != 0) {
        ftpd_reply(s, "550 %s: %s", path, strerror(errno));
        ftpd_close_data(s);
        return;
    }
    ftpd_reply(s, "150 Here comes the directory listing.");
    int dfd = ftpd_data_open(s);
    if (dfd < 0) {
        ftpd_reply(s, "425 Can't open data connection.");
        return;
    }
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            char full[2048];
            if (e->d_name[0] == '.' && (names_only || e->d_name[1] == '\0' ||
                                        (e->d_name[1] == '.' && e->d_name[2] == '\0')))
                continue;
            snprintf(full, sizeof(full), "%s/%s", path, e->d_name);
            ftpd_list_one(dfd, full, e->d_name, names_only);
        }
        if (d)
            closedir(d);
    } else {
        ftpd_list_one(dfd, path, path, names_only);
    }
    close(dfd);
    ftpd_reply(s, "226 Directory send OK.");
}

static void ftpd_retr(struct ftpd_session *s, const char *path)
{
    char cwd[1024] = "", clean[1024];
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ftpd_clean(path, clean, sizeof(clean));
    if (!getcwd(cwd, sizeof(cwd)))
        snprintf(cwd, sizeof(cwd), "?");
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ftpd_log("retr-failed user=%s from=%s cwd=%s path=%s", s->user, s->peer, cwd, clean);
        ftpd_reply(s, "550 Failed to open file.");
        if (fd >= 0)
            close(fd);
        ftpd_close_data(s);
        return;
    }
    if (s->rest > 0 && lseek(fd, s->rest, SEEK_SET) < 0)
        s->rest = 0;
    ftpd_reply(s, "150 Opening BINARY mode data connection for %s (%lld bytes).", clean,
               (long long)st.st_size);
    int dfd = ftpd_data_open(s);
    if (dfd < 0) {
        close(fd);
        ftpd_reply(s, "425 Can't open data connection.");
        return;
    }
    char b[16384];
    long long total = 0;
    ssize_t r;
    int err = 0;
    while ((r = read(fd, b, sizeof(b))) > 0) {
        if (ftpd_write_all(dfd, b, (size_t)r) != 0) {
            err = 1;
            break;
        }
        total += r;
    }
    close(fd);
    close(dfd);
    s->rest = 0;
    ftpd_log("retr user=%s from=%s cwd=%s path=%s bytes=%lld%s", s->user, s->peer, cwd, clean,
             total, err ? " incomplete" : "");
    ftpd_reply(s, err ? "426 Transfer aborted." : "226 Transfer complete.");
}

static void ftpd_stor(struct ftpd_session *s, const char *path, int append)
{
    char cwd[1024] = "", clean[1024];
    ftpd_clean(path, clean, sizeof(clean));
    if (!getcwd(cwd, sizeof(cwd)))
        snprintf(cwd, sizeof(cwd), "?");
    if (s->readonly) {
        ftpd_reply(s, "550 Permission denied.");
        ftpd_close_data(s);
        return;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (append ? O_APPEND : O_TRUNC),
                  0664);
    if (fd < 0) {
        ftpd_log("stor-failed user=%s from=%s cwd=%s path=%s error=%s", s->user, s->peer, cwd,
                 clean, strerror(errno));
        ftpd_reply(s, "553 Could not create file.");
        ftpd_close_data(s);
        return;
    }
    ftpd_reply(s, "150 Ok to send data.");
    int dfd = ftpd_data_open(s);
    if (dfd < 0) {
        close(fd);
        ftpd_reply(s, "425 Can't open data connection.");
        return;
    }
    char b[16384];
    long long total = 0;
    ssize_t r;
    int err = 0;
    while ((r = read(dfd, b, sizeof(b))) > 0) {
        if (ftpd_write_all(fd, b, (size_t)r) != 0) {
            err = 1;
            break;
        }
        total += r;
    }
    if (r < 0)
        err = 1;
    close(dfd);
    if (close(fd) != 0)
        err = 1;
    ftpd_log("%s user=%s from=%s cwd=%s path=%s bytes=%lld%s", append ? "appe" : "stor",
             s->user, s->peer, cwd, clean, total, err ? " incomplete" : "");
    ftpd_reply(s, err ? "451 Transfer failed." : "226 Transfer complete.");
}

/* Log in: chroot into the share, drop to the user's ids. */
static int ftpd_login(struct ftpd_session *s, const char *pass)
{
    struct imgauth_user u;
    int anon = strcmp(s->user, "anonymous") == 0 || strcmp(s->user, "ftp") == 0;
    char cpass[128];
    ftpd_clean(pass, cpass, sizeof(cpass));

    if (anon) {
        if (!opts.anonymous)
            goto fail;
        memset(&u, 0, sizeof(u));
        snprintf(u.name, sizeof(u.name), "anonymous");
        u.uid = 65534;
        u.gid = 65534;
        s->readonly = 1;
    } else {
        if (imgauth_lookup(s->user, &u) != 0 || u.uid == 0 || imgauth_check(s->user, pass) != 0)
            goto fail;
    }
    if (chdir(opts.root) != 0 || chroot(opts.root) != 0 || chdir("/") != 0) {
        ftpd_log("login-error user=%s: chroot %s: %s", s->user, opts.root, strerror(errno));
        return -1;
    }
    if (setgroups((size_t)u.ngroups, u.groups) != 0 || setgid(u.gid) != 0 || setuid(u.uid) != 0) {
        ftpd_log("login-error user=%s: cannot drop privileges: %s", s->user, strerror(errno));
        _exit(1);
    }
    if (anon)
        ftpd_log("login ok user=anonymous from=%s password=%s", s->peer, cpass);
    else
        ftpd_log("login ok user=%s from=%s", s->user, s->peer);
    s->logged_in = 1;
    return 0;
fail:
    ftpd_log("login failed user=%s from=%s", s->user, s->peer);
    ftpd_fail_delay();
    return -1;
}

static void ftpd_session_run(int fd, const char *peer)
{
    struct ftpd_session s;
    char line[CMD_MAX], verb[8], clean[CMD_MAX];
    int fails = 0;

    memset(&s, 0, sizeof(s));
    s.fd = fd;
    s.pasv_fd = -1;
    snprintf(s.peer, sizeof(s.peer), "%s", peer);
    socklen_t ll = sizeof(s.local);
    getsockname(fd, (struct sockaddr *)&s.local, &ll);
    ftpd_log("connect from=%s", peer);
    ftpd_reply(&s, "220 FTP server ready.");
    for (;;) {
        alarm(600);
        if (ftpd_readline(&s, line, sizeof(line)) < 0)
            break;
        size_t vl = strcspn(line, " ");
        if (vl >= sizeof(verb))
            vl = sizeof(verb) - 1;
        for (size_t i = 0; i < vl; i++)
            verb[i] = (char)toupper((unsigned char)line[i]);
        verb[vl] = '\0';
        char *arg = line + strcspn(line, " ");
        while (*arg == ' ')
            arg++;

        if (strcmp(verb, "USER") == 0) {
            if (s.logged_in) {
                ftpd_reply(&s, "530 Can't change to another user.");
                continue;
            }
            ftpd_clean(arg, s.user, sizeof(s.user));
            ftpd_reply(&s, "331 Please specify the password.");
            continue;
        }
        if (strcmp(verb, "PASS") == 0) {
            if (s.logged_in) {
                ftpd_reply(&s, "230 Already logged in.");
            } else if (!s.user[0]) {
                ftpd_reply(&s, "503 Login with USER first.");
            } else if (ftpd_login(&s, arg) == 0) {
                ftpd_reply(&s, "230 Login successful.");
            } else {
                ftpd_reply(&s, "530 Login incorrect.");
                if (++fails >= 5)
                    break;
            }
            continue;
        }
        if (strcmp(verb, "QUIT") == 0) {
            ftpd_reply(&s, "221 Goodbye.");
            break;
        }
        if (strcmp(verb, "SYST") == 0) {
            ftpd_reply(&s, "215 UNIX Type: L8");
            continue;
        }
        if (strcmp(verb, "FEAT") == 0) {
            ftpd_reply(&s, "211-Features:");
            ftpd_reply(&s, " EPSV\r\n PASV\r\n SIZE\r\n MDTM\r\n REST STREAM\r\n UTF8");
            ftpd_reply(&s, "211 End");
            continue;
        }
        if (strcmp(verb, "NOOP") == 0) {
            ftpd_reply(&s, "200 NOOP ok.");
            continue;
        }
        if (strcmp(verb, "OPTS") == 0) {
            ftpd_reply(&s, "200 Always in UTF8 mode.");
            continue;
        }
        if (!s.logged_in) {
            ftpd_reply(&s, "530 Please login with USER and PASS.");
            continue;
        }

        if (strcmp(verb, "PWD") == 0 || strcmp(verb, "XPWD") == 0) {
            char cwd[1024];
            if (!getcwd(cwd, sizeof(cwd)))
                snprintf(cwd, sizeof(cwd), "/");
            ftpd_reply(&s, "257 \"%s\" is the current directory", cwd);
        } else if (strcmp(verb, "CWD") == 0 || strcmp(verb, "XCWD") == 0) {
            if (chdir(*arg ? arg : "/") == 0)
                ftpd_reply(&s, "250 Directory successfully changed.");
            else
                ftpd_reply(&s, "550 Failed to change directory.");
        } else if (strcmp(verb, "CDUP") == 0 || strcmp(verb, "XCUP") == 0) {
            if (chdir("..") == 0)
                ftpd_reply(&s, "250 Directory successfully changed.");
            else
                ftpd_reply(&s, "550 Failed to change directory.");
        } else if (strcmp(verb, "TYPE") == 0) {
            ftpd_reply(&s, "200 Switching to %s mode.",
                       toupper((unsigned char)arg[0]) == 'A' ? "ASCII" : "Binary");
        } else if (strcmp(verb, "MODE") == 0 || strcmp(verb, "STRU") == 0) {
            ftpd_reply(&s, "200 Ok.");
        } else if (strcmp(verb, "PASV") == 0) {
            int port = ftpd_pasv_listen(&s);
            unsigned char *a = (unsigned char *)&s.local.sin_addr;
            if (port < 0)
                ftpd_reply(&s, "425 Can't open passive connection.");
            else
                ftpd_reply(&s, "227 Entering Passive Mode (%u,%u,%u,%u,%d,%d).", a[0], a[1], a[2],
                           a[3], port >> 8, port & 255);
        } else if (strcmp(verb, "EPSV") == 0) {
            int port = ftpd_pasv_listen(&s);
            if (port < 0)
                ftpd_reply(&s, "425 Can't open passive connection.");
            else
                ftpd_reply(&s, "229 Entering Extended Passive Mode (|||%d|)", port);
        } else if (strcmp(verb, "PORT") == 0) {
            unsigned int h[6];
            char ip[32];
            ftpd_close_data(&s);
            if (sscanf(arg, "%u,%u,%u,%u,%u,%u", &h[0], &h[1], &h[2], &h[3], &h[4], &h[5]) != 6 ||
                h[0] > 255 || h[1] > 255 || h[2] > 255 || h[3] > 255 || h[4] > 255 ||
                h[5] > 255) {
                ftpd_reply(&s, "501 Illegal PORT command.");
                continue;
            }
            snprintf(ip, sizeof(ip), "%u.%u.%u.%u", h[0], h[1], h[2], h[3]);
            /* No FTP bounce: data goes back to the client only. */
            if (strcmp(ip, s.peer) != 0) {
                ftpd_log("port-refused user=%s from=%s target=%s", s.user, s.peer, ip);
                ftpd_reply(&s, "500 Illegal PORT command.");
                continue;
            }
            memset(&s.port_sa, 0, sizeof(s.port_sa));
            s.port_sa.sin_family = AF_INET;
            s.port_sa.sin_port = htons((unsigned short)(h[4] * 256 + h[5]));
            inet_pton(AF_INET, ip, &s.port_sa.sin_addr);
            s.have_port = 1;
            ftpd_reply(&s, "200 PORT command successful.");
        } else if (strcmp(verb, "LIST") == 0) {
            ftpd_list(&s, arg, 0);
        } else if (strcmp(verb, "NLST") == 0) {
            ftpd_list(&s, arg, 1);
        } else if (strcmp(verb, "REST") == 0) {
            s.rest = (off_t)atoll(arg);
            ftpd_reply(&s, "350 Restart position accepted (%lld).", (long long)s.rest);
        } else if (strcmp(verb, "RETR") == 0) {
            ftpd_retr(&s, arg);
        } else if (strcmp(verb, "STOR") == 0 || strcmp(verb, "APPE") == 0) {
            ftpd_stor(&s, arg, verb[0] == 'A');
        } else if (strcmp(verb, "SIZE") == 0 || strcmp(verb, "MDTM") == 0) {
            struct stat st;
            if (stat(arg, &st) != 0 || !S_ISREG(st.st_mode)) {
                ftpd_reply(&s, "550 Could not get file %s.", verb[0] == 'S' ? "size" : "time");
            } else if (verb[0] == 'S') {
                ftpd_reply(&s, "213 %lld", (long long)st.st_size);
            } else {
                char t[32];
                struct tm tm;
                gmtime_r(&st.st_mtime, &tm);
                strftime(t, sizeof(t), "%Y%m%d%H%M%S", &tm);
                ftpd_reply(&s, "213 %s", t);
            }
        } else if (strcmp(verb, "DELE") == 0 || strcmp(verb, "MKD") == 0 ||
                   strcmp(verb, "XMKD") == 0 || strcmp(verb, "RMD") == 0 ||
                   strcmp(verb, "XRMD") == 0 || strcmp(verb, "RNFR") == 0 ||
                   strcmp(verb, "RNTO") == 0) {
            int rc;
            ftpd_clean(arg, clean, sizeof(clean));
            if (s.readonly) {
                ftpd_reply(&s, "550 Permission denied.");
                continue;
            }
            if (strcmp(verb, "RNFR") == 0) {
                struct stat st;
                if (lstat(arg, &st) != 0) {
                    ftpd_reply(&s, "550 RNFR command failed.");
                } else {
                    snprintf(s.rnfr, sizeof(s.rnfr), "%s", arg);
                    ftpd_reply(&s, "350 Ready for RNTO.");
                }
                continue;
            }
            if (strcmp(verb, "RNTO") == 0) {
                char from[CMD_MAX];
                if (!s.rnfr[0]) {
                    ftpd_reply(&s, "503 RNFR required first.");
                    continue;
                }
                rc = rename(s.rnfr, arg);
                ftpd_clean(s.rnfr, from, sizeof(from));
                ftpd_log("rename user=%s from=%s path=%s to=%s%s", s.user, s.peer, from, clean,
                         rc ? " failed" : "");
                s.rnfr[0] = '\0';
                ftpd_reply(&s, rc ? "550 Rename failed." : "250 Rename successful.");
                continue;
            }
            if (verb[0] == 'D')
                rc = unlink(arg);
            else if (verb[0] == 'M' || verb[1] == 'M')
                rc = mkdir(arg, 0775);
            else
                rc = rmdir(arg);
            ftpd_log("%s user=%s from=%s path=%s%s",
                     verb[0] == 'D' ? "dele" : (verb[0] == 'M' || verb[1] == 'M') ? "mkd" : "rmd",
                     s.user, s.peer, clean, rc ? " failed" : "");
            if (rc != 0)
                ftpd_reply(&s, "550 %s failed: %s.", verb, strerror(errno));
            else if (verb[0] == 'M' || verb[1] == 'M')
                ftpd_reply(&s, "257 \"%s\" created", clean);
            else
                ftpd_reply(&s, "250 %s ok.", verb);
        } else if (strcmp(verb, "ABOR") == 0) {
            ftpd_close_data(&s);
            ftpd_reply(&s, "225 No transfer to ABOR.");
        } else {
            ftpd_reply(&s, "502 Command not implemented.");
        }
    }
    ftpd_log("disconnect from=%s user=%s", peer, s.user[0] ? s.user : "-");
}

static void ftpd_usage(void)
{
    fprintf(stderr, "usage: mini-ftpd [-b ADDR] [-p PORT] [-r ROOT] [-l LOGFILE] [-a]\n"
                    "                 [-P MIN:MAX] [-f FAIL_DELAY_MS]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct sockaddr_in sa;
    struct sigaction sig;
    int c, lfd, one = 1;

    while ((c = getopt(argc, argv, "b:p:r:l:aP:f:h")) != -1) {
        switch (c) {
        case 'b': opts.bind_addr = optarg; break;
        case 'p': opts.port = atoi(optarg); break;
        case 'r': opts.root = optarg; break;
        case 'l': opts.logfile = optarg; break;
        case 'a': opts.anonymous = 1; break;
        case 'P':
            if (sscanf(optarg, "%d:%d", &opts.pasv_min, &opts.pasv_max) != 2)
                ftpd_usage();
            break;
        case 'f': opts.fail_delay_ms = atoi(optarg); break;
        default: ftpd_usage();
        }
    }
    if (optind != argc || opts.port <= 0 || opts.port > 65535 || opts.pasv_min <= 0 ||
        opts.pasv_max > 65535 || opts.pasv_min > opts.pasv_max || opts.fail_delay_ms < 0)
        ftpd_usage();
    if (strcmp(opts.logfile, "-") != 0) {
        logfd = open(opts.logfile, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (logfd < 0) {
            fprintf(stderr, "mini-ftpd: %s: %s\n", opts.logfile, strerror(errno));
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
        fprintf(stderr, "mini-ftpd: bad address %s\n", opts.bind_addr);
        return 2;
    }
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 64) != 0) {
        fprintf(stderr, "mini-ftpd: listen %s:%d: %s\n", opts.bind_addr, opts.port,
                strerror(errno));
        return 1;
    }
    ftpd_log("listening on %s:%d root=%s anonymous=%s", opts.bind_addr, opts.port, opts.root,
             opts.anonymous ? "yes" : "no");
    for (;;) {
        struct sockaddr_in peer;
        socklen_t plen = sizeof(peer);
        char pstr[64];
        int fd = accept4(lfd, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EINTR)
                ftpd_log("accept: %s", strerror(errno));
            continue;
        }
        inet_ntop(AF_INET, &peer.sin_addr, pstr, sizeof(pstr));
        pid_t pid = fork();
        if (pid == 0) {
            close(lfd);
            sig.sa_handler = SIG_DFL;
            sigaction(SIGCHLD, &sig, NULL);
            ftpd_session_run(fd, pstr);
            _exit(0);
        }
        if (pid < 0)
            ftpd_log("fork: %s", strerror(errno));
        close(fd);
    }
}
