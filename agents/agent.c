/* agent: cyrange-agent main loop, channel handling and request dispatch.
 *
 * The agent talks to the orchestrator over one channel (agents/PROTOCOL.md):
 * normally the virtio-serial port org.cyrange.agent.0, for tests a UNIX
 * socket, a pty or stdin/stdout.  It never opens a network socket that
 * listens: probes only connect out, inside 198.18.0.0/15.
 */
#include "agent.h"
#include "agent_action.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

/* How often a disconnected channel is looked at again: fast enough that a
 * reconnecting orchestrator gets its hello promptly, slow enough to cost
 * nothing in an idle guest. */
#define CHAN_RECHECK_MS 200
#define CHAN_REOPEN_MS 500
/* Reads per wakeup, so a chatty peer cannot starve probes and jobs. */
#define CHAN_READS_PER_WAKEUP 16

/* ---- small shared helpers ---------------------------------------------- */

long long agent_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

long long agent_now_ms(void)
{
    return agent_now_us() / 1000;
}

void agent_log(const char *fmt, ...)
{
    struct timespec ts;
    struct tm tm;
    char stamp[32];
    va_list ap;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(stderr, "%s.%03ldZ cyrange-agent: ", stamp, ts.tv_nsec / 1000000);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

int agent_path(const agent *a, const char *abs, char *out, size_t outlen)
{
    int n = snprintf(out, outlen, "%s%s", a->opts.root, abs);

    return (n < 0 || (size_t)n >= outlen) ? -1 : 0;
}

int agent_watch(agent *a, int fd, short events, agent_io_fn fn, void *ctx)
{
    if (a->npfds >= AGENT_MAX_POLLFDS)
        return -1;
    a->pfds[a->npfds].fd = fd;
    a->pfds[a->npfds].events = events;
    a->pfds[a->npfds].revents = 0;
    a->pcbs[a->npfds].fn = fn;
    a->pcbs[a->npfds].ctx = ctx;
    a->npfds++;
    return 0;
}

/* ---- channel ------------------------------------------------------------- */

static void chan_flush(agent *a);
static void chan_lost(agent *a, const char *why);

void agent_send(agent *a, json_t *msg)
{
    agent_chan *c = &a->chan;
    proto_err err;
    char *line = NULL;
    size_t len = 0;

    if (msg == NULL)
        return;
    if (!c->connected)
        goto cleanup;
    line = proto_line(msg, &len, &err);
    if (line == NULL) {
        agent_log("cannot send a message: %s", err.msg);
        goto cleanup;
    }
    if (c->out_len - c->out_off + len > AGENT_MAX_OUTQ) {
        agent_log("output queue full (%zu bytes): message dropped",
                  c->out_len - c->out_off);
        goto cleanup;
    }
    if (c->out_off > 0 && c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (c->out_len + len > c->out_cap) {
        size_t ncap = c->out_cap ? c->out_cap : 65536;
        char *nbuf = NULL;
        /* Compact before growing: sent bytes are dead weight. */
        if (c->out_off > 0) {
            memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
            c->out_len -= c->out_off;
            c->out_off = 0;
        }
        while (ncap < c->out_len + len)
            ncap *= 2;
        if (ncap > c->out_cap) {
            nbuf = realloc(c->out, ncap);
            if (nbuf == NULL) {
                agent_log("out of memory: message dropped");
                goto cleanup;
            }
            c->out = nbuf;
            c->out_cap = ncap;
        }
    }
    memcpy(c->out + c->out_len, line, len);
    c->out_len += len;
    chan_flush(a);

cleanup:
    free(line);
    json_decref(msg);
}

void agent_send_gen(agent *a, unsigned gen, json_t *msg)
{
    if (gen != a->chan.gen) {
        agent_log("dropped a reply meant for an earlier connection");
        json_decref(msg);
        return;
    }
    agent_send(a, msg);
}

void agent_reply_error(agent *a, int has_id, long long id, const char *fmt,
                       ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    agent_send(a, proto_build_reply(has_id, id, 0, msg, NULL));
}

void agent_send_hello(agent *a)
{
    proto_err err;
    json_t *hello = agent_sys_hello(a, &err);

    if (hello == NULL) {
        agent_log("cannot build hello: %s", err.msg);
        return;
    }
    agent_send(a, hello);
}

static void chan_flush(agent *a)
{
    agent_chan *c = &a->chan;

    while (c->connected && c->out_off < c->out_len) {
        ssize_t n = write(c->wfd, c->out + c->out_off, c->out_len - c->out_off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            chan_lost(a, strerror(errno));
            return;
        }
        c->out_off += (size_t)n;
    }
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
}

static void chan_connected(agent *a)
{
    agent_chan *c = &a->chan;

    c->connected = 1;
    c->gen++;
    c->last_errno = 0;
    proto_reader_reset(c->rd);
    c->out_off = c->out_len = 0;
    agent_log("channel %s: host connected", c->path);
    agent_send_hello(a);
}

/* The host side went away.  Whatever was queued was meant for the old
 * connection, so it is dropped; the next connection starts with a hello. */
static void chan_lost(agent *a, const char *why)
{
    agent_chan *c = &a->chan;

    if (c->connected)
        agent_log("channel %s: host disconnected (%s)", c->path, why);
    c->connected = 0;
    c->out_off = c->out_len = 0;
    proto_reader_reset(c->rd);
    switch (c->kind) {
    case AGENT_CHAN_DEVICE:
        /* A virtio port must not be reopened while open: keep the fd and
         * look at it again later. */
        c->retry_at = agent_now_ms() + CHAN_RECHECK_MS;
        break;
    case AGENT_CHAN_SOCKET:
        if (c->rfd >= 0)
            close(c->rfd);
        c->rfd = c->wfd = -1;
        c->retry_at = agent_now_ms() + CHAN_REOPEN_MS;
        break;
    case AGENT_CHAN_STDIO:
        a->stop = 1;
        break;
    }
}

/* The virtio port for our channel name when no udev made the
 * /dev/virtio-ports symlink: sysfs names every port. */
static int chan_find_port(char *out, size_t outlen)
{
    DIR *d = NULL;
    struct dirent *de = NULL;
    char best[NAME_MAX + 1] = "";
    char path[PATH_MAX];
    int found = 0;

    if (access("/dev/virtio-ports/" AGENT_CHANNEL_NAME, F_OK) == 0) {
        snprintf(out, outlen, "/dev/virtio-ports/%s", AGENT_CHANNEL_NAME);
        return 0;
    }
    d = opendir("/sys/class/virtio-ports");
    if (d != NULL) {
        while ((de = readdir(d)) != NULL) {
            char *name = NULL;
            if (de->d_name[0] == '.')
                continue;
            snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name",
                     de->d_name);
            name = agent_sys_read_file(path, 256, NULL);
            if (name != NULL) {
                name[strcspn(name, "\n")] = '\0';
                if (strcmp(name, AGENT_CHANNEL_NAME) == 0) {
                    snprintf(out, outlen, "/dev/%s", de->d_name);
                    found = 1;
                }
                free(name);
            }
            if (found)
                break;
        }
        closedir(d);
        if (found)
            return 0;
    }
    /* Last resort: the first port 1 of any virtio-serial device. */
    d = opendir("/dev");
    if (d == NULL)
        return -1;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (strncmp(de->d_name, "vport", 5) == 0 && l > 7 &&
            strcmp(de->d_name + l - 2, "p1") == 0 && l < sizeof(best) &&
            (best[0] == '\0' || strcmp(de->d_name, best) < 0))
            snprintf(best, sizeof(best), "%s", de->d_name);
    }
    closedir(d);
    if (best[0] == '\0')
        return -1;
    snprintf(out, outlen, "/dev/%s", best);
    return 0;
}

static void chan_open_failed(agent *a, int e, const char *what)
{
    agent_chan *c = &a->chan;

    if (e != c->last_errno)
        agent_log("channel %s: %s: %s (retrying)", c->path[0] ? c->path :
                  "(virtio port " AGENT_CHANNEL_NAME ")", what, strerror(e));
    c->last_errno = e;
    c->retry_at = agent_now_ms() + CHAN_REOPEN_MS;
}

/* Open (or reconnect) the channel when it is not open. */
static void chan_open(agent *a)
{
    agent_chan *c = &a->chan;
    struct sockaddr_un sun;
    struct stat st;
    int fd = -1;

    if (a->opts.channel == NULL) {
        if (chan_find_port(c->path, sizeof(c->path)) < 0) {
            chan_open_failed(a, ENOENT, "no virtio port yet");
            return;
        }
    }
    if (stat(c->path, &st) < 0) {
        chan_open_failed(a, errno, "stat");
        return;
    }
    if (S_ISSOCK(st.st_mode)) {
        c->kind = AGENT_CHAN_SOCKET;
        memset(&sun, 0, sizeof(sun));
        sun.sun_family = AF_UNIX;
        if (strlen(c->path) >= sizeof(sun.sun_path)) {
            chan_open_failed(a, ENAMETOOLONG, "socket path");
            return;
        }
        memcpy(sun.sun_path, c->path, strlen(c->path));
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            chan_open_failed(a, errno, "socket");
            return;
        }
        if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
            int e = errno;
            close(fd);
            chan_open_failed(a, e, "connect");
            return;
        }
        if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
            int e = errno;
            close(fd);
            chan_open_failed(a, e, "fcntl");
            return;
        }
        c->rfd = c->wfd = fd;
        chan_connected(a);
        return;
    }
    c->kind = AGENT_CHAN_DEVICE;
    /* Exactly one open for the agent's lifetime: a second open of a virtio
     * port fails (EBUSY) and breaks the channel. */
    fd = open(c->path, O_RDWR | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        chan_open_failed(a, errno, "open");
        return;
    }
    if (isatty(fd)) {
        struct termios tio;
        /* A pty in cooked mode would echo and cap lines at 4 KiB. */
        if (tcgetattr(fd, &tio) == 0) {
            cfmakeraw(&tio);
            tcsetattr(fd, TCSANOW, &tio);
        }
    }
    c->rfd = c->wfd = fd;
    if (a->opts.channel_out != NULL) {
        /* A FIFO is one-way: answers go to a second one.  O_RDWR on a FIFO
         * never blocks and never reports a missing reader. */
        fd = open(a->opts.channel_out, O_RDWR | O_NONBLOCK | O_NOCTTY |
                                           O_CLOEXEC);
        if (fd < 0) {
            int e = errno;
            close(c->rfd);
            c->rfd = c->wfd = -1;
            chan_open_failed(a, e, "open --channel-out");
            return;
        }
        c->wfd = fd;
    }
    agent_log("channel %s: opened", c->path);
    /* Connected or not is decided by the first look at it. */
    c->retry_at = 0;
}

/* For an open device without a connected host: does the host listen now?
 * A virtio port reports POLLHUP while the host end is closed. */
static void chan_recheck(agent *a)
{
    agent_chan *c = &a->chan;
    struct pollfd p = {.fd = c->rfd, .events = POLLIN};

    if (poll(&p, 1, 0) < 0)
        return;
    if (p.revents & (POLLHUP | POLLERR | POLLNVAL)) {
        c->retry_at = agent_now_ms() + CHAN_RECHECK_MS;
        return;
    }
    chan_connected(a);
}

static void dispatch(agent *a, const char *line, size_t len);

static void chan_on_io(agent *a, void *ctx, int fd, short revents)
{
    agent_chan *c = &a->chan;
    proto_err err;
    const char *line = NULL;
    size_t len = 0;
    int i;

    (void)ctx;
    (void)fd;
    if (revents & POLLOUT)
        chan_flush(a);
    if (!c->connected || !(revents & (POLLIN | POLLHUP | POLLERR)))
        return;
    for (i = 0; i < CHAN_READS_PER_WAKEUP && c->connected; i++) {
        size_t dropped = proto_reader_dropped(c->rd);
        ssize_t n = proto_reader_read_fd(c->rd, c->rfd, &err);
        if (n == 0) {
            chan_lost(a, "end of file");
            return;
        }
        if (n < 0) {
            if (err.code == PROTO_ERR_AGAIN) {
                /* No data but a hangup: the host closed its end. */
                if ((revents & (POLLHUP | POLLERR)) && i == 0)
                    chan_lost(a, "hangup");
                return;
            }
            /* A pty whose other side closed reads EIO. */
            chan_lost(a, err.msg);
            return;
        }
        while (c->connected && proto_reader_next(c->rd, &line, &len) == 1)
            dispatch(a, line, len);
        if (proto_reader_dropped(c->rd) != dropped) {
            agent_log("dropped an oversize line (%zu so far)",
                      proto_reader_dropped(c->rd));
            agent_reply_error(a, 0, 0, "line longer than %u bytes discarded",
                              PROTO_MAX_LINE);
        }
    }
}

/* stdin/stdout: separate fds for reading and writing. */
static void chan_on_out(agent *a, void *ctx, int fd, short revents)
{
    (void)ctx;
    (void)fd;
    if (revents & (POLLERR | POLLHUP)) {
        chan_lost(a, "output closed");
        return;
    }
    chan_flush(a);
}

/* ---- requests ------------------------------------------------------------ */

static void exec_done(agent *a, agent_job *job)
{
    proto_exec_result r;
    proto_err err;
    json_t *reply = NULL;

    agent_job_result(job, &r);
    reply = proto_build_exec_reply(job->tag, &r, &err);
    if (reply == NULL)
        reply = proto_build_reply(1, job->tag, 0, err.msg, NULL);
    agent_send_gen(a, job->gen, reply);
}

static void handle_exec(agent *a, const proto_msg *m)
{
    agent_job_spec spec;
    char err[256];

    memset(&spec, 0, sizeof(spec));
    spec.argv = m->u.exec.argv;
    spec.stdin_data = m->u.exec.stdin_data;
    spec.stdin_len = m->u.exec.stdin_len;
    spec.timeout_ms = m->u.exec.timeout_ms;
    spec.max_output = PROTO_EXEC_MAX_OUTPUT;
    spec.done = exec_done;
    spec.tag = m->id;
    spec.gen = a->chan.gen;
    if (agent_job_start(a, &spec, err, sizeof(err)) < 0)
        agent_reply_error(a, 1, m->id, "exec: %s", err);
}

/* An action request runs as `cyrange-agent --run-action` (agent_action.c);
 * this is what its job remembers. */
typedef struct action_run {
    char step[72];
    int timeout_ms;
    int stopped; /* killed by an action_stop */
} action_run;

static void action_done(agent *a, agent_job *job)
{
    action_run *run = job->arg;
    json_t *reply = NULL;

    reply = act_reply_build(job->tag, job->buf[1], job->len[1], job->buf[2],
                            job->len[2], job->status, job->timed_out,
                            run ? run->timeout_ms : 0, run ? run->stopped : 0);
    if (reply == NULL)
        reply = proto_build_reply(1, job->tag, 0, "action: out of memory",
                                  NULL);
    agent_log("action %s (request %lld) ended", run ? run->step : "?",
              job->tag);
    agent_send_gen(a, job->gen, reply);
    free(run);
    job->arg = NULL;
}

static void handle_action(agent *a, const proto_msg *m)
{
    static const char *const argv[] = {"/proc/self/exe", "--run-action", NULL};
    agent_job_spec spec;
    action_run *run = NULL;
    json_t *in = NULL;
    char err[512], *input = NULL;
    act_req q;

    if (act_req_parse(m->root, &q, err, sizeof(err)) < 0) {
        agent_reply_error(a, 1, m->id, "%s", err);
        return;
    }
    run = calloc(1, sizeof(*run));
    in = json_copy(m->root);
    if (run == NULL || in == NULL) {
        agent_reply_error(a, 1, m->id, "action: out of memory");
        goto cleanup;
    }
    snprintf(run->step, sizeof(run->step), "%s", q.step);
    run->timeout_ms = act_timeout_ms(&q);
    /* The child gets our --root and the deadline it will be killed at. */
    if (a->opts.root[0] != '\0')
        json_object_set_new(in, "root", json_string(a->opts.root));
    json_object_set_new(in, "deadline_ms", json_integer(run->timeout_ms));
    input = json_dumps(in, JSON_COMPACT);
    if (input == NULL) {
        agent_reply_error(a, 1, m->id, "action: out of memory");
        goto cleanup;
    }
    memset(&spec, 0, sizeof(spec));
    spec.argv = argv;
    spec.fn = agent_run_action_main;
    spec.stdin_data = input;
    spec.stdin_len = strlen(input);
    spec.timeout_ms = run->timeout_ms;
    /* Enough for 64 flows and the evidence lists, which are capped. */
    spec.max_output = 256u * 1024u;
    spec.done = action_done;
    spec.arg = run;
    spec.tag = m->id;
    spec.gen = a->chan.gen;
    if (agent_job_start(a, &spec, err, sizeof(err)) < 0) {
        agent_reply_error(a, 1, m->id, "action: %s", err);
        goto cleanup;
    }
    agent_log("action %s: %s (request %lld, up to %d ms)", q.step, q.action,
              m->id, run->timeout_ms);
    run = NULL;

cleanup:
    free(run);
    free(input);
    json_decref(in);
}

static void handle_action_stop(agent *a, const proto_msg *m)
{
    const json_t *v = json_object_get(m->root, "step");
    const char *step = NULL;
    agent_job *j = NULL;
    json_t *reply = NULL;
    int stopped;

    if (v != NULL && !json_is_null(v)) {
        if (!json_is_string(v)) {
            agent_reply_error(a, 1, m->id, "field \"step\" must be a string");
            return;
        }
        step = json_string_value(v);
    }
    /* Background daemons (implants) by their pid files ... */
    stopped = act_stop(a->opts.root, step);
    /* ... and actions still running for the step (a flood, a scan). */
    for (j = a->jobs; j != NULL; j = j->next) {
        action_run *run = j->arg;
        if (j->done != action_done || run == NULL || j->exited || run->stopped ||
            (step != NULL && strcmp(run->step, step) != 0))
            continue;
        if (kill(-j->pid, SIGKILL) < 0)
            kill(j->pid, SIGKILL);
        run->stopped = 1;
        stopped++;
    }
    agent_log("action_stop %s: %d stopped", step ? step : "(all)", stopped);
    reply = proto_build_reply(1, m->id, 1, NULL, NULL);
    if (reply != NULL)
        json_object_set_new(reply, "stopped", json_integer(stopped));
    agent_send(a, reply);
}

/* Action jobs' records, before the jobs themselves are dropped at exit. */
static void actions_free(agent *a)
{
    agent_job *j = NULL;

    for (j = a->jobs; j != NULL; j = j->next) {
        if (j->done == action_done) {
            free(j->arg);
            j->arg = NULL;
        }
    }
}

static void dispatch(agent *a, const char *line, size_t len)
{
    proto_msg m;
    proto_err err;
    json_t *reply = NULL;

    if (proto_parse(line, len, &m, &err) < 0) {
        agent_reply_error(a, err.has_id, err.id, "%s", err.msg);
        return;
    }
    switch (m.type) {
    case PROTO_T_HELLO_REQ:
        agent_send(a, proto_build_reply(1, m.id, 1, NULL, NULL));
        agent_send_hello(a);
        break;
    case PROTO_T_HEALTH:
        reply = agent_sys_health(a, m.id, &err);
        if (reply == NULL)
            agent_reply_error(a, 1, m.id, "health: %s", err.msg);
        else
            agent_send(a, reply);
        break;
    case PROTO_T_PROBE:
        agent_probe_start(a, m.id, &m.u.probe);
        break;
    case PROTO_T_EXEC:
        handle_exec(a, &m);
        break;
    case PROTO_T_CONFIG:
        agent_config_start(a, &m);
        break;
    case PROTO_T_UNKNOWN:
        /* Request types proto does not parse itself. */
        if (strcmp(m.t, "action") == 0)
            handle_action(a, &m);
        else if (strcmp(m.t, "action_stop") == 0)
            handle_action_stop(a, &m);
        else
            agent_reply_error(a, 1, m.id, "unknown request");
        break;
    case PROTO_T_HELLO:
    case PROTO_T_REPLY:
    case PROTO_T_EVENT:
        /* Our own kind of message: answering it could loop forever on a
         * channel that echoes (a FIFO, a pty in cooked mode). */
        agent_log("ignored a \"%s\" message", m.t);
        break;
    default:
        agent_reply_error(a, 1, m.id, "unknown request");
        break;
    }
    proto_msg_clear(&m);
}

/* ---- signals ------------------------------------------------------------- */

static void on_signal(agent *a, void *ctx, int fd, short revents)
{
    struct signalfd_siginfo si;

    (void)ctx;
    (void)revents;
    while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGCHLD) {
            /* Reaping frees jobs whose fds later callbacks of this round
             * may still name; do it once the round is over. */
            a->need_reap = 1;
        } else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
            agent_log("signal %u: stopping", si.ssi_signo);
            a->stop = 1;
        }
    }
}

static int signals_setup(agent *a)
{
    sigset_t set;

    /* A closed channel must surface as EPIPE, not kill the agent. */
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return -1;
    a->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    return a->sigfd < 0 ? -1 : 0;
}

/* ---- main loop ------------------------------------------------------------ */

static long long min_deadline(long long a, long long b)
{
    if (a == 0)
        return b;
    if (b == 0)
        return a;
    return a < b ? a : b;
}

static void loop(agent *a)
{
    agent_chan *c = &a->chan;

    while (!a->stop) {
        long long now = agent_now_ms(), deadline = 0;
        int timeout = -1, n;
        size_t i;

        if (c->rfd < 0 && now >= c->retry_at)
            chan_open(a);
        else if (c->rfd >= 0 && !c->connected && now >= c->retry_at)
            chan_recheck(a);

        a->npfds = 0;
        agent_watch(a, a->sigfd, POLLIN, on_signal, NULL);
        if (c->connected) {
            short ev = POLLIN;
            if (c->wfd == c->rfd && c->out_off < c->out_len)
                ev |= POLLOUT;
            agent_watch(a, c->rfd, ev, chan_on_io, NULL);
            if (c->wfd != c->rfd && c->out_off < c->out_len)
                agent_watch(a, c->wfd, POLLOUT, chan_on_out, NULL);
        } else if (c->kind != AGENT_CHAN_STDIO) {
            deadline = c->retry_at > now ? c->retry_at : now + 1;
        }
        agent_probe_watch(a);
        agent_job_watch(a);
        deadline = min_deadline(deadline, agent_probe_deadline(a));
        deadline = min_deadline(deadline, agent_job_deadline(a));
        if (deadline != 0)
            timeout = deadline > now ? (int)(deadline - now) : 0;

        n = poll(a->pfds, a->npfds, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            agent_log("poll: %s", strerror(errno));
            break;
        }
        for (i = 0; i < a->npfds && !a->stop; i++) {
            if (a->pfds[i].revents != 0)
                a->pcbs[i].fn(a, a->pcbs[i].ctx, a->pfds[i].fd,
                              a->pfds[i].revents);
        }
        if (a->need_reap) {
            a->need_reap = 0;
            agent_job_reap(a);
        }
        now = agent_now_ms();
        agent_probe_tick(a, now);
        agent_job_tick(a, now);
    }
}

/* ---- start-up ------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
        "usage: cyrange-agent [--channel PATH|-] [--channel-out PATH]\n"
        "                     [--foreground] [--root DIR]\n"
        "                     [--dry-net] [--cmdline FILE] [--exercise NAME]\n"
        "                     [--team N] [--host NAME] [--version]\n"
        "\n"
        "  --channel PATH  virtio port, pty, or UNIX socket (connected as a\n"
        "                  client); '-' is stdin/stdout.  Default:\n"
        "                  /dev/virtio-ports/" AGENT_CHANNEL_NAME ", else the\n"
        "                  port sysfs names so, else the first /dev/vport*p1\n"
        "  --channel-out PATH  write answers here instead (a FIFO pair)\n"
        "  --foreground    do not daemonise; log to stderr\n"
        "  --root DIR      prefix for every file the agent writes (tests);\n"
        "                  env CYRANGE_AGENT_ROOT\n"
        "  --dry-net       record network changes in the config reply instead\n"
        "                  of making them; env CYRANGE_AGENT_DRY_NET=1\n"
        "  --cmdline FILE  read cyrange.* identity from FILE (/proc/cmdline)\n"
        "  --exercise, --team, --host  identity overrides; env\n"
        "                  CYRANGE_EXERCISE, CYRANGE_TEAM, CYRANGE_HOST\n"
        "\n"
        "Internal modes (the agent runs itself so): --run-action reads one\n"
        "action request on stdin and prints its result; --implant … is the\n"
        "beaconing implant (agents/agent_action.h).\n");
}

static int parse_team(const char *s, int *out)
{
    char *end = NULL;
    long v = strtol(s, &end, 10);

    if (*s == '\0' || *end != '\0' || v < 0 || v > 1000000)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_args(agent_opts *o, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"channel", required_argument, NULL, 'c'},
        {"channel-out", required_argument, NULL, 'o'},
        {"foreground", no_argument, NULL, 'f'},
        {"root", required_argument, NULL, 'r'},
        {"dry-net", no_argument, NULL, 'n'},
        {"cmdline", required_argument, NULL, 'k'},
        {"exercise", required_argument, NULL, 'e'},
        {"team", required_argument, NULL, 't'},
        {"host", required_argument, NULL, 'H'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *root = getenv("CYRANGE_AGENT_ROOT");
    const char *s = NULL;
    int ch;

    o->cmdline_path = "/proc/cmdline";
    o->team = -1;
    o->exercise = getenv("CYRANGE_EXERCISE");
    o->host = getenv("CYRANGE_HOST");
    s = getenv("CYRANGE_TEAM");
    if (s != NULL && *s != '\0' && parse_team(s, &o->team) < 0) {
        fprintf(stderr, "cyrange-agent: CYRANGE_TEAM: not a team number\n");
        return -1;
    }
    s = getenv("CYRANGE_AGENT_DRY_NET");
    o->dry_net = s != NULL && strcmp(s, "1") == 0;
    while ((ch = getopt_long(argc, argv, "c:o:fr:nk:e:t:H:Vh", longopts,
                             NULL)) != -1) {
        switch (ch) {
        case 'c': o->channel = optarg; break;
        case 'o': o->channel_out = optarg; break;
        case 'f': o->foreground = 1; break;
        case 'r': root = optarg; break;
        case 'n': o->dry_net = 1; break;
        case 'k': o->cmdline_path = optarg; break;
        case 'e': o->exercise = optarg; break;
        case 'H': o->host = optarg; break;
        case 't':
            if (parse_team(optarg, &o->team) < 0) {
                fprintf(stderr, "cyrange-agent: --team: not a number\n");
                return -1;
            }
            break;
        case 'V':
            printf("cyrange-agent %s (protocol v%d)\n", AGENT_VERSION,
                   PROTO_VERSION);
            exit(0);
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (o->channel_out != NULL &&
        (o->channel == NULL || strcmp(o->channel, "-") == 0)) {
        fprintf(stderr, "cyrange-agent: --channel-out needs --channel PATH\n");
        return -1;
    }
    if (optind != argc) {
        usage(stderr);
        return -1;
    }
    if (root != NULL && *root != '\0') {
        size_t l = strlen(root);
        if (root[0] != '/' || l >= sizeof(o->root)) {
            fprintf(stderr, "cyrange-agent: root must be an absolute path\n");
            return -1;
        }
        memcpy(o->root, root, l + 1);
        /* "/" and "/x/" both mean the prefix without a trailing slash. */
        while (l > 0 && o->root[l - 1] == '/')
            o->root[--l] = '\0';
    }
    return 0;
}

/* Children and the channel expect fds 0-2 to exist, and a daemon must not
 * hold the terminal it was started from. */
static int daemonize(const agent *a)
{
    char logpath[PATH_MAX], dir[PATH_MAX], err[256];
    pid_t pid;
    int fd;

    pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0)
        _exit(0);
    setsid();
    fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fd >= 0) {
        dup2(fd, 0);
        if (fd > 2)
            close(fd);
    }
    fd = -1;
    if (agent_path(a, AGENT_LOG_DIR, dir, sizeof(dir)) == 0 &&
        agent_sys_mkdirs(dir, err, sizeof(err)) == 0 &&
        agent_path(a, AGENT_LOG_DIR "/agent.log", logpath,
                   sizeof(logpath)) == 0)
        fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0)
        fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2)
            close(fd);
    }
    return 0;
}

static void ensure_std_fds(void)
{
    int fd;

    do {
        fd = open("/dev/null", O_RDWR);
    } while (fd >= 0 && fd <= 2);
    if (fd > 2)
        close(fd);
}

static void identity_init(agent *a)
{
    const agent_opts *o = &a->opts;

    a->team = -1;
    agent_sys_identity(a, o->cmdline_path);
    if (o->exercise != NULL) {
        free(a->exercise);
        a->exercise = strdup(o->exercise);
    }
    if (o->host != NULL) {
        free(a->host);
        a->host = strdup(o->host);
    }
    if (o->team >= 0)
        a->team = o->team;
}

int main(int argc, char **argv)
{
    agent a;
    char marker[PATH_MAX];
    int rc = 1;

    /* The same binary is the action runner and the implant. */
    if (argc >= 2 && strcmp(argv[1], "--run-action") == 0)
        return agent_run_action_main();
    if (argc >= 2 && strcmp(argv[1], "--implant") == 0)
        return agent_implant_main(argc - 2, argv + 2);
    memset(&a, 0, sizeof(a));
    a.sigfd = -1;
    a.chan.rfd = a.chan.wfd = -1;
    if (parse_args(&a.opts, argc, argv) < 0)
        return 2;
    ensure_std_fds();
    umask(022);
    /* init may start us without PATH; udhcpc, adduser and chpasswd live in
     * the sbin folders. */
    if (getenv("PATH") == NULL)
        setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin", 1);
    if (!a.opts.foreground && (a.opts.channel == NULL ||
                               strcmp(a.opts.channel, "-") != 0)) {
        if (daemonize(&a) < 0) {
            perror("cyrange-agent: fork");
            return 1;
        }
    }
    identity_init(&a);
    if (agent_path(&a, AGENT_STATE_DIR "/services.started", marker,
                   sizeof(marker)) == 0)
        a.services_started = access(marker, F_OK) == 0;
    a.chan.rd = proto_reader_new(0);
    if (a.chan.rd == NULL || signals_setup(&a) < 0) {
        agent_log("start-up failed: %s", strerror(errno));
        goto cleanup;
    }
    if (a.opts.channel != NULL && strcmp(a.opts.channel, "-") == 0) {
        a.chan.kind = AGENT_CHAN_STDIO;
        snprintf(a.chan.path, sizeof(a.chan.path), "stdio");
        a.chan.rfd = 0;
        a.chan.wfd = 1;
        fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
        fcntl(1, F_SETFL, fcntl(1, F_GETFL) | O_NONBLOCK);
        chan_connected(&a);
    } else if (a.opts.channel != NULL) {
        snprintf(a.chan.path, sizeof(a.chan.path), "%s", a.opts.channel);
    }
    agent_log("version %s starting (exercise %s, team %d, host %s%s%s)",
              AGENT_VERSION, a.exercise ? a.exercise : "?", a.team,
              a.host ? a.host : "?", a.opts.root[0] ? ", root " : "",
              a.opts.root);
    loop(&a);
    rc = 0;

cleanup:
    actions_free(&a);
    agent_job_kill_all(&a);
    agent_probe_free_all(&a);
    agent_config_free(a.config);
    if (a.chan.kind != AGENT_CHAN_STDIO && a.chan.wfd >= 0 &&
        a.chan.wfd != a.chan.rfd)
        close(a.chan.wfd);
    if (a.chan.kind != AGENT_CHAN_STDIO && a.chan.rfd >= 0)
        close(a.chan.rfd);
    if (a.sigfd >= 0)
        close(a.sigfd);
    proto_reader_free(a.chan.rd);
    free(a.chan.out);
    free(a.exercise);
    free(a.host);
    free(a.role);
    return rc;
}
