/* agent: internals of the in-range agent (cyrange-agent), shared by its
 * source files agent.c (main loop, channel, dispatch), agent_sys.c (files,
 * identity, health), agent_net.c (interfaces, addresses, routes),
 * agent_job.c (child processes), agent_probe.c (probes and availability
 * checks: tcp, http, smtp, dns) and
 * agent_config.c (the config request).
 *
 * Everything runs on one poll() loop in one thread: no function here may
 * block for longer than a local system call.
 */
#ifndef CYRANGE_AGENT_H
#define CYRANGE_AGENT_H

#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <stddef.h>
#include <sys/types.h>

#include "proto.h"

#define AGENT_VERSION "0.1.0"
#define AGENT_CHANNEL_NAME "org.cyrange.agent.0"
#define AGENT_MAX_POLLFDS 512
#define AGENT_MAX_PROBES 256
#define AGENT_MAX_JOBS 32
#define AGENT_MAX_OUTQ (32u * 1024u * 1024u)
#define AGENT_UDHCPC_SCRIPT "/etc/cyrange/udhcpc.script"
#define AGENT_START_SERVICES "/etc/cyrange/start-services"
#define AGENT_HOST_ENV "/etc/cyrange/host.env"
#define AGENT_STATE_DIR "/run/cyrange"
#define AGENT_LOG_DIR "/var/log/cyrange"

typedef struct agent agent;
typedef struct agent_job agent_job;
typedef struct agent_probe agent_probe;
typedef struct agent_config_run agent_config_run;

/* ---- agent.c ------------------------------------------------------------ */

typedef void (*agent_io_fn)(agent *a, void *ctx, int fd, short revents);

typedef struct agent_opts {
    const char *channel;      /* NULL: find the virtio port */
    const char *channel_out;  /* separate write side (a FIFO pair) */
    int foreground;
    char root[PATH_MAX];      /* prefix for every file written; "" is / */
    int dry_net;              /* record network changes instead of making them */
    const char *cmdline_path; /* kernel command line to read identity from */
    const char *exercise;     /* identity overrides (flags or environment) */
    const char *host;
    int team;                 /* -1: not overridden */
} agent_opts;

typedef enum agent_chan_kind {
    AGENT_CHAN_DEVICE, /* virtio port, pty, tty, fifo: opened once */
    AGENT_CHAN_SOCKET, /* UNIX socket: reconnected when the peer goes */
    AGENT_CHAN_STDIO   /* stdin/stdout: the agent exits at end of input */
} agent_chan_kind;

typedef struct agent_chan {
    agent_chan_kind kind;
    char path[PATH_MAX];
    int rfd, wfd;
    int connected;
    unsigned gen;       /* bumped at every (re)connection */
    long long retry_at; /* monotonic ms of the next open/reconnect check */
    int last_errno;     /* so a failing open is logged once, not forever */
    proto_reader *rd;
    char *out;
    size_t out_len, out_off, out_cap;
} agent_chan;

struct agent {
    agent_opts opts;
    char *exercise; /* identity: kernel command line, overrides, config */
    char *host;
    char *role;
    int team;
    agent_chan chan;
    int sigfd;
    int stop;
    int need_reap; /* SIGCHLD seen: reap after this round of callbacks */
    int services_started;
    agent_job *jobs;
    size_t njobs;
    agent_probe *probes;
    size_t nprobes;
    agent_config_run *config;
    /* Children started in their own session (udhcpc, start-services),
     * remembered only to log how they ended. */
    struct agent_bg {
        pid_t pid;
        char name[32];
    } bg[16];
    /* Rebuilt before every poll(). */
    struct pollfd pfds[AGENT_MAX_POLLFDS];
    struct {
        agent_io_fn fn;
        void *ctx;
    } pcbs[AGENT_MAX_POLLFDS];
    size_t npfds;
};

/* Monotonic clock. */
long long agent_now_ms(void);
long long agent_now_us(void);

/* Log a line to stderr (the agent's log).  Only the agent prints. */
void agent_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Queue one message for the orchestrator; takes the reference.  Dropped
 * (and decref'd) while the host side is not connected. */
void agent_send(agent *a, json_t *msg);
/* Same, for the answer to a request that arrived on connection `gen`:
 * dropped when the channel has reconnected since, because the new peer
 * never asked. */
void agent_send_gen(agent *a, unsigned gen, json_t *msg);
void agent_reply_error(agent *a, int has_id, long long id, const char *fmt,
                       ...) __attribute__((format(printf, 4, 5)));
void agent_send_hello(agent *a);

/* Watch fd for events in the next poll(); fn runs when one arrives. */
int agent_watch(agent *a, int fd, short events, agent_io_fn fn, void *ctx);

/* root-prefixed path: opts.root + abs.  Returns 0, -1 when too long. */
int agent_path(const agent *a, const char *abs, char *out, size_t outlen);

/* ---- agent_sys.c -------------------------------------------------------- */

/* Identity from the kernel command line file (cyrange.exercise=,
 * cyrange.team=, cyrange.host=); missing keys leave fields untouched. */
int agent_sys_identity(agent *a, const char *cmdline_path);
/* Write a whole file atomically (temp + rename), creating parents. */
int agent_sys_write_file(const char *path, const char *data, size_t len,
                         unsigned mode, char *err, size_t errlen);
int agent_sys_mkdirs(const char *dir, char *err, size_t errlen);
/* Read a small file into a malloc'd NUL-terminated buffer, or NULL. */
char *agent_sys_read_file(const char *path, size_t max, size_t *len);
/* The health reply for request id (new reference) or NULL. */
json_t *agent_sys_health(agent *a, long long id, proto_err *err);
/* The hello message (new reference) or NULL. */
json_t *agent_sys_hello(agent *a, proto_err *err);

/* ---- agent_net.c -------------------------------------------------------- */

typedef struct agent_net_addr {
    struct in_addr addr;
    int prefix;
    char str[INET_ADDRSTRLEN + 4]; /* "198.18.1.10/24" */
} agent_net_addr;

typedef struct agent_net_if {
    char name[IF_NAMESIZE];
    char mac[18]; /* "" when the link has no Ethernet address */
    int index;
    int up;
    int loopback;
    agent_net_addr addrs[16];
    size_t naddrs;
} agent_net_if;

/* Every link, sorted by index.  *out is malloc'd (free()). */
int agent_net_list(agent_net_if **out, size_t *n, char *err, size_t errlen);
int agent_net_link_up(const char *ifname, char *err, size_t errlen);
int agent_net_addr_add(int ifindex, struct in_addr addr, int prefix,
                       char *err, size_t errlen);
int agent_net_addr_del(int ifindex, struct in_addr addr, int prefix,
                       char *err, size_t errlen);
int agent_net_default_route(struct in_addr gw, char *err, size_t errlen);

/* ---- agent_job.c -------------------------------------------------------- */

typedef void (*agent_job_done_fn)(agent *a, agent_job *job);

typedef struct agent_job_spec {
    const char *const *argv;
    /* When set, the forked child runs fn() and exits with its value
     * instead of exec'ing argv (argv[0] still names the job).  Saves the
     * exec of the agent binary, which costs tens of milliseconds under TCG,
     * on the path from a scheduled step to its first packet. */
    int (*fn)(void);
    const char *stdin_data;
    size_t stdin_len;
    int timeout_ms;    /* 0: no limit */
    size_t max_output; /* bytes kept per stream */
    agent_job_done_fn done;
    void *arg;         /* for done(): job->arg */
    long long tag;     /* for done(): job->tag (the request id) */
    unsigned gen;      /* for done(): job->gen (connection) */
} agent_job_spec;

struct agent_job {
    agent_job *next;
    pid_t pid;
    int fds[3]; /* stdin (write end), stdout, stderr (read ends); -1 closed */
    char *in;
    size_t in_len, in_off;
    char *buf[3]; /* [1] stdout, [2] stderr */
    size_t len[3];
    int truncated[3];
    size_t max_output;
    long long deadline; /* monotonic ms; 0 when none or already killed */
    int exited;
    int status;
    int timed_out;
    agent_job_done_fn done;
    void *arg;
    long long tag;
    unsigned gen;
    char name[64];
};

/* Start a child; done() runs once it has exited and its output is read,
 * then the job is freed.  Returns 0, or -1 with err. */
int agent_job_start(agent *a, const agent_job_spec *spec, char *err,
                    size_t errlen);
/* Start a child in its own session with output appended to log_path and
 * nothing to wait for.  Returns the pid or -1. */
pid_t agent_job_spawn_bg(agent *a, const char *const *argv,
                         const char *log_path, char *err, size_t errlen);
/* Reap children after SIGCHLD. */
void agent_job_reap(agent *a);
void agent_job_watch(agent *a);
long long agent_job_deadline(const agent *a);
void agent_job_tick(agent *a, long long now);
/* Kill and forget every job (shutdown). */
void agent_job_kill_all(agent *a);
/* Fill an exec result view of a finished job. */
void agent_job_result(const agent_job *job, proto_exec_result *r);

/* ---- agent_probe.c ------------------------------------------------------ */

/* Run a probe request (a check when p->kind is set); the reply is sent
 * when the probe ends.  Copies what it needs: p may be freed on return. */
void agent_probe_start(agent *a, long long id, const proto_probe *p);
void agent_probe_watch(agent *a);
long long agent_probe_deadline(const agent *a);
void agent_probe_tick(agent *a, long long now);
void agent_probe_free_all(agent *a);

/* ---- agent_config.c ----------------------------------------------------- */

/* Apply a config request.  Takes what msg holds (msg is zeroed); replies
 * once addresses, files and accounts are done. */
void agent_config_start(agent *a, proto_msg *msg);
void agent_config_free(agent_config_run *c);

#endif /* CYRANGE_AGENT_H */
