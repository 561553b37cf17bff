/* agent_job: child processes for exec requests, account tools, udhcpc and
 * start-services.  Pipes are non-blocking and watched by the main poll();
 * children are reaped on SIGCHLD, so nothing here waits. */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Output read after the child exited, per stream, before giving up on a
 * background grandchild that keeps writing. */
#define DRAIN_LIMIT (1024u * 1024u)

static void job_close_fd(agent_job *j, int i)
{
    if (j->fds[i] >= 0) {
        close(j->fds[i]);
        j->fds[i] = -1;
    }
}

static void job_free(agent_job *j)
{
    int i;

    if (j == NULL)
        return;
    for (i = 0; i < 3; i++) {
        job_close_fd(j, i);
        free(j->buf[i]);
    }
    free(j->in);
    free(j);
}

/* Read what is available on stream i; keep up to max_output bytes and
 * discard the rest so the child never blocks on a full pipe. */
static void job_read(agent_job *j, int i, size_t limit)
{
    char tmp[16384];
    size_t total = 0;

    while (j->fds[i] >= 0 && total < limit) {
        ssize_t n = read(j->fds[i], tmp, sizeof(tmp));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                job_close_fd(j, i);
            return;
        }
        if (n == 0) {
            job_close_fd(j, i);
            return;
        }
        total += (size_t)n;
        if (j->len[i] < j->max_output) {
            size_t keep = (size_t)n;
            if (keep > j->max_output - j->len[i]) {
                keep = j->max_output - j->len[i];
                j->truncated[i] = 1;
            }
            memcpy(j->buf[i] + j->len[i], tmp, keep);
            j->len[i] += keep;
        } else {
            j->truncated[i] = 1;
        }
    }
}

static void job_write_stdin(agent_job *j)
{
    while (j->fds[0] >= 0 && j->in_off < j->in_len) {
        ssize_t n = write(j->fds[0], j->in + j->in_off, j->in_len - j->in_off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            /* EPIPE: the child does not read its input; that is its call. */
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                job_close_fd(j, 0);
            return;
        }
        j->in_off += (size_t)n;
    }
    if (j->in_off >= j->in_len)
        job_close_fd(j, 0);
}

static void job_unlink(agent *a, agent_job *j)
{
    agent_job **pp = &a->jobs;

    while (*pp != NULL && *pp != j)
        pp = &(*pp)->next;
    if (*pp == j) {
        *pp = j->next;
        a->njobs--;
    }
}

/* The child has exited: take the output still in the pipes, report, free. */
static void job_finish(agent *a, agent_job *j)
{
    job_read(j, 1, DRAIN_LIMIT);
    job_read(j, 2, DRAIN_LIMIT);
    job_unlink(a, j);
    if (j->done != NULL)
        j->done(a, j);
    job_free(j);
}

static void job_on_io(agent *a, void *ctx, int fd, short revents)
{
    agent_job *j = ctx;
    int i;

    (void)a;
    (void)revents;
    for (i = 0; i < 3; i++) {
        if (j->fds[i] != fd)
            continue;
        if (i == 0)
            job_write_stdin(j);
        else
            job_read(j, i, 256u * 1024u);
    }
}

void agent_job_watch(agent *a)
{
    agent_job *j = NULL;

    for (j = a->jobs; j != NULL; j = j->next) {
        if (j->fds[0] >= 0)
            agent_watch(a, j->fds[0], POLLOUT, job_on_io, j);
        if (j->fds[1] >= 0)
            agent_watch(a, j->fds[1], POLLIN, job_on_io, j);
        if (j->fds[2] >= 0)
            agent_watch(a, j->fds[2], POLLIN, job_on_io, j);
    }
}

long long agent_job_deadline(const agent *a)
{
    const agent_job *j = NULL;
    long long d = 0;

    for (j = a->jobs; j != NULL; j = j->next)
        if (j->deadline != 0 && (d == 0 || j->deadline < d))
            d = j->deadline;
    return d;
}

void agent_job_tick(agent *a, long long now)
{
    agent_job *j = NULL;

    for (j = a->jobs; j != NULL; j = j->next) {
        if (j->deadline == 0 || now < j->deadline || j->exited)
            continue;
        /* The whole process group: `sh -c` leaves its children behind
         * otherwise, holding our pipes open. */
        if (kill(-j->pid, SIGKILL) < 0)
            kill(j->pid, SIGKILL);
        j->timed_out = 1;
        j->deadline = 0;
    }
}

void agent_job_reap(agent *a)
{
    pid_t pid;
    int status;
    size_t i;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        agent_job *j = NULL;
        for (j = a->jobs; j != NULL; j = j->next)
            if (j->pid == pid)
                break;
        if (j != NULL) {
            j->exited = 1;
            j->status = status;
            job_finish(a, j);
            continue;
        }
        for (i = 0; i < sizeof(a->bg) / sizeof(a->bg[0]); i++) {
            if (a->bg[i].pid != pid)
                continue;
            if (WIFEXITED(status))
                agent_log("%s (pid %d) exited %d", a->bg[i].name, (int)pid,
                          WEXITSTATUS(status));
            else if (WIFSIGNALED(status))
                agent_log("%s (pid %d) killed by signal %d", a->bg[i].name,
                          (int)pid, WTERMSIG(status));
            a->bg[i].pid = 0;
        }
    }
}

/* In the child between fork and exec: undo what the agent set for itself. */
static void child_setup(int fd0, int fd1, int fd2, int new_session)
{
    sigset_t none;
    int fds[3] = {fd0, fd1, fd2};
    int i;

    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    if (new_session)
        setsid();
    else
        setpgid(0, 0);
    for (i = 0; i < 3; i++) {
        if (fds[i] == i)
            fcntl(i, F_SETFD, 0); /* keep it across exec */
        else
            dup2(fds[i], i);
    }
    if (chdir("/") < 0)
        _exit(127);
}

static int pipe_parent_nonblock(int p[2], int parent_end)
{
    if (pipe2(p, O_CLOEXEC) < 0)
        return -1;
    return fcntl(p[parent_end], F_SETFL, O_NONBLOCK);
}

int agent_job_start(agent *a, const agent_job_spec *spec, char *err,
                    size_t errlen)
{
    agent_job *j = NULL;
    int pin[2] = {-1, -1}, pout[2] = {-1, -1}, perr[2] = {-1, -1};
    int devnull = -1, rc = -1;
    pid_t pid;

    if (a->njobs >= AGENT_MAX_JOBS) {
        snprintf(err, errlen, "busy: %d processes already running",
                 AGENT_MAX_JOBS);
        return -1;
    }
    j = calloc(1, sizeof(*j));
    if (j == NULL)
        goto nomem;
    j->fds[0] = j->fds[1] = j->fds[2] = -1;
    j->max_output = spec->max_output;
    j->done = spec->done;
    j->arg = spec->arg;
    j->tag = spec->tag;
    j->gen = spec->gen;
    snprintf(j->name, sizeof(j->name), "%s", spec->argv[0]);
    j->buf[1] = malloc(spec->max_output + 1);
    j->buf[2] = malloc(spec->max_output + 1);
    if (j->buf[1] == NULL || j->buf[2] == NULL)
        goto nomem;
    if (spec->stdin_len > 0) {
        j->in = malloc(spec->stdin_len);
        if (j->in == NULL)
            goto nomem;
        memcpy(j->in, spec->stdin_data, spec->stdin_len);
        j->in_len = spec->stdin_len;
        if (pipe_parent_nonblock(pin, 1) < 0)
            goto syserr;
    } else {
        devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (devnull < 0)
            goto syserr;
    }
    if (pipe_parent_nonblock(pout, 0) < 0 || pipe_parent_nonblock(perr, 0) < 0)
        goto syserr;
    pid = fork();
    if (pid < 0)
        goto syserr;
    if (pid == 0) {
        child_setup(devnull >= 0 ? devnull : pin[0], pout[1], perr[1], 0);
        if (spec->fn != NULL) {
            /* Without an exec, nothing closes the agent's own descriptors
             * (channel, probes, other jobs' pipes): close them here. */
            for (int fd = 3; fd < 1024; fd++)
                close(fd);
            _exit(spec->fn());
        }
        execvp(spec->argv[0], (char *const *)spec->argv);
        dprintf(2, "cyrange-agent: cannot run %s: %s\n", spec->argv[0],
                strerror(errno));
        _exit(127);
    }
    /* Also in the parent, so a timeout kill cannot race the child's own
     * setpgid. */
    setpgid(pid, pid);
    j->pid = pid;
    j->fds[0] = pin[1];
    j->fds[1] = pout[0];
    j->fds[2] = perr[0];
    pin[1] = pout[0] = perr[0] = -1;
    if (spec->timeout_ms > 0)
        j->deadline = agent_now_ms() + spec->timeout_ms;
    j->next = a->jobs;
    a->jobs = j;
    a->njobs++;
    j = NULL;
    if (a->jobs->fds[0] >= 0)
        job_write_stdin(a->jobs);
    rc = 0;
    goto cleanup;

nomem:
    snprintf(err, errlen, "out of memory");
    goto cleanup;
syserr:
    snprintf(err, errlen, "cannot start %s: %s", spec->argv[0],
             strerror(errno));
cleanup:
    if (pin[0] >= 0) close(pin[0]);
    if (pin[1] >= 0) close(pin[1]);
    if (pout[0] >= 0) close(pout[0]);
    if (pout[1] >= 0) close(pout[1]);
    if (perr[0] >= 0) close(perr[0]);
    if (perr[1] >= 0) close(perr[1]);
    if (devnull >= 0)
        close(devnull);
    job_free(j);
    return rc;
}

pid_t agent_job_spawn_bg(agent *a, const char *const *argv,
                         const char *log_path, char *err, size_t errlen)
{
    int in = -1, out = -1;
    pid_t pid = -1;
    size_t i;

    in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    out = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (in < 0 || out < 0) {
        snprintf(err, errlen, "open %s: %s", in < 0 ? "/dev/null" : log_path,
                 strerror(errno));
        goto cleanup;
    }
    pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        goto cleanup;
    }
    if (pid == 0) {
        child_setup(in, out, out, 1);
        execvp(argv[0], (char *const *)argv);
        dprintf(2, "cyrange-agent: cannot run %s: %s\n", argv[0],
                strerror(errno));
        _exit(127);
    }
    for (i = 0; i < sizeof(a->bg) / sizeof(a->bg[0]); i++) {
        if (a->bg[i].pid == 0) {
            a->bg[i].pid = pid;
            snprintf(a->bg[i].name, sizeof(a->bg[i].name), "%s", argv[0]);
            break;
        }
    }

cleanup:
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    return pid;
}

void agent_job_kill_all(agent *a)
{
    agent_job *j = a->jobs, *next = NULL;

    for (; j != NULL; j = next) {
        next = j->next;
        if (!j->exited && kill(-j->pid, SIGKILL) < 0)
            kill(j->pid, SIGKILL);
        waitpid(j->pid, NULL, 0);
        job_free(j);
    }
    a->jobs = NULL;
    a->njobs = 0;
}

void agent_job_result(const agent_job *j, proto_exec_result *r)
{
    memset(r, 0, sizeof(*r));
    if (WIFEXITED(j->status)) {
        r->exit_code = WEXITSTATUS(j->status);
    } else if (WIFSIGNALED(j->status)) {
        r->signal = WTERMSIG(j->status);
        r->exit_code = 128 + r->signal;
    }
    r->timed_out = j->timed_out;
    r->out = j->buf[1];
    r->out_len = j->len[1];
    r->out_truncated = j->truncated[1];
    r->err = j->buf[2];
    r->err_len = j->len[2];
    r->err_truncated = j->truncated[2];
}
