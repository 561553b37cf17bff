/* Tests of the real cyrange-agent binary, driven over its channel the way
 * the orchestrator drives it: a UNIX socket (the agent connects as a
 * client), a pty, and stdin/stdout.
 *
 * As root the whole test moves into fresh network and UTS namespaces first,
 * with veth links made there: probes then go to addresses inside
 * 198.18.0.0/15 without any packet leaving the machine, and a real
 * (non-dry) config can set addresses, routes and the hostname.  Without
 * root those cases are skipped; everything else still runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <pty.h>
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
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "proto.h"

#ifndef CYRANGE_AGENT_BIN
#define CYRANGE_AGENT_BIN "build/cyrange-agent"
#endif

/* MACs of the veth links the namespace setup creates. */
#define MAC_STATIC "52:54:00:c0:ff:10"
#define MAC_DHCP "52:54:00:c0:ff:11"

static struct {
    char dir[64];     /* temp folder for everything below */
    char bin[512];    /* agent binary */
    char fakebin[128];
    char fakelog[128];
    int netns;        /* 1 when in our own namespaces with veth links */
    char static_if[32];
} g;

typedef struct agent_proc {
    pid_t pid;
    int fd;         /* our end of the channel */
    int lfd;        /* listening socket, for reconnects */
    proto_reader *rd;
    char root[96];
    char sock[96];
    proto_msg pending[64];
    size_t npending;
    int hellos;
    proto_msg hello; /* the one sent on connect */
} agent_proc;

/* The check servers (below), also stopped by the group teardown. */
static void ck_stop(void);

/* ---- helpers ---------------------------------------------------------------- */

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

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
}

static char *read_file(const char *path)
{
    static char buf[65536];
    FILE *f = fopen(path, "r");
    size_t n;

    if (f == NULL)
        return NULL;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static int wait_for_file(const char *path, int timeout_ms)
{
    long long end = now_ms() + timeout_ms;

    while (now_ms() < end) {
        if (access(path, F_OK) == 0)
            return 0;
        usleep(10000);
    }
    return -1;
}

static int accept_timeout(int lfd, int timeout_ms)
{
    struct pollfd p = {.fd = lfd, .events = POLLIN};

    if (poll(&p, 1, timeout_ms) != 1)
        return -1;
    return accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
}

static void send_line(agent_proc *ap, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void send_line(agent_proc *ap, const char *fmt, ...)
{
    char buf[8192];
    va_list ap2;
    int n;

    va_start(ap2, fmt);
    n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap2);
    va_end(ap2);
    assert_true(n > 0 && (size_t)n < sizeof(buf) - 1);
    buf[n++] = '\n';
    assert_int_equal(write(ap->fd, buf, (size_t)n), n);
}

static void send_msg(agent_proc *ap, json_t *msg)
{
    proto_err err;
    size_t len = 0, off = 0;
    char *line = proto_line(msg, &len, &err);

    assert_non_null(line);
    while (off < len) {
        ssize_t n = write(ap->fd, line + off, len - off);
        assert_true(n > 0);
        off += (size_t)n;
    }
    free(line);
    json_decref(msg);
}

/* Next message from the agent, or -1 after timeout_ms. */
static int recv_msg(agent_proc *ap, int timeout_ms, proto_msg *out)
{
    long long end = now_ms() + timeout_ms;
    const char *line = NULL;
    size_t len = 0;
    proto_err err;

    for (;;) {
        struct pollfd p = {.fd = ap->fd, .events = POLLIN};
        long long left;
        ssize_t n;

        if (proto_reader_next(ap->rd, &line, &len) == 1) {
            if (proto_parse(line, len, out, &err) < 0)
                fail_msg("agent sent an invalid line (%s): %s", err.msg, line);
            if (out->type == PROTO_T_HELLO)
                ap->hellos++;
            return 0;
        }
        left = end - now_ms();
        if (left <= 0 || poll(&p, 1, (int)left) != 1)
            return -1;
        n = proto_reader_read_fd(ap->rd, ap->fd, &err);
        if (n == 0)
            return -1;
        if (n < 0 && err.code != PROTO_ERR_AGAIN)
            return -1;
    }
}

/* The reply to request id (earlier-arrived replies are kept aside). */
static void wait_reply(agent_proc *ap, long long id, int timeout_ms,
                       proto_msg *out)
{
    long long end = now_ms() + timeout_ms;
    size_t i;

    for (i = 0; i < ap->npending; i++) {
        if (ap->pending[i].has_id && ap->pending[i].id == id) {
            *out = ap->pending[i];
            memmove(&ap->pending[i], &ap->pending[i + 1],
                    (ap->npending - i - 1) * sizeof(ap->pending[0]));
            ap->npending--;
            return;
        }
    }
    for (;;) {
        long long left = end - now_ms();
        if (left <= 0 || recv_msg(ap, (int)left, out) < 0)
            fail_msg("no reply to request %lld within %d ms", id, timeout_ms);
        if (out->type == PROTO_T_REPLY && out->has_id && out->id == id)
            return;
        if (out->type == PROTO_T_REPLY &&
            ap->npending < sizeof(ap->pending) / sizeof(ap->pending[0])) {
            ap->pending[ap->npending++] = *out;
            continue;
        }
        proto_msg_clear(out);
    }
}

static void wait_hello(agent_proc *ap, int timeout_ms, proto_msg *out)
{
    long long end = now_ms() + timeout_ms;

    for (;;) {
        long long left = end - now_ms();
        if (left <= 0 || recv_msg(ap, (int)left, out) < 0)
            fail_msg("no hello within %d ms", timeout_ms);
        if (out->type == PROTO_T_HELLO)
            return;
        if (out->type == PROTO_T_REPLY &&
            ap->npending < sizeof(ap->pending) / sizeof(ap->pending[0])) {
            ap->pending[ap->npending++] = *out;
            continue;
        }
        proto_msg_clear(out);
    }
}

static const char *jstr(const proto_msg *m, const char *key)
{
    return json_string_value(json_object_get(m->root, key));
}

/* Does the JSON array field `key` of m hold string s? */
static int jarray_has(const proto_msg *m, const char *key, const char *s)
{
    json_t *arr = json_object_get(m->root, key), *v = NULL;
    size_t i;

    json_array_foreach(arr, i, v) {
        if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
            return 1;
    }
    return 0;
}

static void dump_actions(const proto_msg *m)
{
    char *s = json_dumps(m->root, JSON_INDENT(1));

    print_message("reply: %s\n", s ? s : "?");
    free(s);
}

/* Start the agent on a UNIX socket with its own root folder. */
static void agent_start(agent_proc *ap, const char *name, int dry_net)
{
    struct sockaddr_un sun;
    char log[256];
    pid_t pid;

    memset(ap, 0, sizeof(*ap));
    ap->fd = ap->lfd = -1;
    snprintf(ap->root, sizeof(ap->root), "%s/root-%s", g.dir, name);
    snprintf(ap->sock, sizeof(ap->sock), "%s/%s.sock", g.dir, name);
    snprintf(log, sizeof(log), "%s/%s.log", g.dir, name);
    assert_int_equal(sh("mkdir -p %s/etc/cyrange", ap->root), 0);
    ap->rd = proto_reader_new(0);
    ap->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(ap->lfd >= 0);
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", ap->sock);
    unlink(ap->sock);
    assert_int_equal(bind(ap->lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    assert_int_equal(listen(ap->lfd, 1), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char path[1024];
        /* A crashed test must not leave agents behind. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0)
            dup2(fd, 2);
        snprintf(path, sizeof(path), "%s:%s", g.fakebin, getenv("PATH"));
        setenv("PATH", path, 1);
        setenv("CYR_FAKE_LOG", g.fakelog, 1);
        setenv("CYR_FAKE_ROOT", ap->root, 1);
        setenv("CYRANGE_EXERCISE", "ex-test", 1);
        setenv("CYRANGE_TEAM", "7", 1);
        unsetenv("CYRANGE_HOST");
        unsetenv("CYRANGE_AGENT_DRY_NET");
        if (dry_net)
            execl(g.bin, g.bin, "--channel", ap->sock, "--foreground",
                  "--root", ap->root, "--host", "web", "--cmdline",
                  "/dev/null", "--dry-net", (char *)NULL);
        else
            execl(g.bin, g.bin, "--channel", ap->sock, "--foreground",
                  "--root", ap->root, "--host", "web", "--cmdline",
                  "/dev/null", (char *)NULL);
        _exit(127);
    }
    ap->pid = pid;
    ap->fd = accept_timeout(ap->lfd, 5000);
    if (ap->fd < 0)
        fail_msg("agent did not connect to %s (log %s)", ap->sock, log);
    wait_hello(ap, 5000, &ap->hello);
}

static void agent_stop(agent_proc *ap)
{
    int st = 0;
    size_t i;

    if (ap->pid > 0) {
        kill(ap->pid, SIGTERM);
        waitpid(ap->pid, &st, 0);
        ap->pid = 0;
    }
    if (ap->fd >= 0)
        close(ap->fd);
    if (ap->lfd >= 0)
        close(ap->lfd);
    ap->fd = ap->lfd = -1;
    unlink(ap->sock);
    for (i = 0; i < ap->npending; i++)
        proto_msg_clear(&ap->pending[i]);
    ap->npending = 0;
    proto_msg_clear(&ap->hello);
    proto_reader_free(ap->rd);
    ap->rd = NULL;
}

/* ---- fixtures ---------------------------------------------------------------- */

static int setup_netns(void)
{
    if (geteuid() != 0 || unshare(CLONE_NEWNET | CLONE_NEWUTS) < 0)
        return -1;
    /* cyrt0: probe target net, the peer never answers ARP (timeouts);
     * cyrc0/cyrc1: links the config test gives addresses by MAC. */
    if (sh("ip link set lo up && "
           "ip addr add 198.18.0.1/32 dev lo && "
           "ip link add cyrt0 type veth peer name cyrt1 && "
           "ip addr add 198.18.9.1/24 dev cyrt0 && "
           "ip link set cyrt0 up && ip link set cyrt1 up && "
           "ip link add cyrc0 address " MAC_STATIC " type veth peer name cyrp0 && "
           "ip link add cyrc1 address " MAC_DHCP " type veth peer name cyrp1 && "
           "ip link set cyrp0 up && ip link set cyrp1 up") != 0)
        return -1;
    if (sethostname("cyr-test", 8) < 0)
        return -1;
    snprintf(g.static_if, sizeof(g.static_if), "cyrc0");
    return 0;
}

static int group_setup(void **state)
{
    const char *bin = getenv("CYRANGE_AGENT_BIN");
    static const char fake[] =
        "#!/bin/sh\n"
        "# Stand-in for busybox account and DHCP tools: log and emulate.\n"
        "me=$(basename \"$0\")\n"
        "echo \"$me $*\" >> \"$CYR_FAKE_LOG\"\n"
        "r=$CYR_FAKE_ROOT\n"
        "case $me:$# in\n"
        "chpasswd:*) sed 's/^/stdin: /' >> \"$CYR_FAKE_LOG\" ;;\n"
        "adduser:2) echo \"$2:x:1000:1000::/home/$2:/bin/sh\" >> $r/etc/passwd ;;\n"
        "addgroup:1) echo \"$1:x:1001:\" >> $r/etc/group ;;\n"
        "addgroup:2) sed -i \"s/^$2:\\([^:]*\\):\\([^:]*\\):\\$/$2:\\1:\\2:$1/\" "
        "$r/etc/group ;;\n"
        "esac\n"
        "exit 0\n";
    char path[256];
    const char *tools[] = {"adduser", "addgroup", "chpasswd", "udhcpc"};
    size_t i;

    (void)state;
    /* A hung agent must fail the run, not stall it. */
    alarm(300);
    snprintf(g.bin, sizeof(g.bin), "%s", bin ? bin : CYRANGE_AGENT_BIN);
    if (access(g.bin, X_OK) < 0) {
        fprintf(stderr, "agent binary %s: %s\n", g.bin, strerror(errno));
        return -1;
    }
    snprintf(g.dir, sizeof(g.dir), "/tmp/cyrange-test-agent.XXXXXX");
    if (mkdtemp(g.dir) == NULL)
        return -1;
    /* libvirt-style: nothing of ours outside the temp folder. */
    chmod(g.dir, 0755);
    snprintf(g.fakebin, sizeof(g.fakebin), "%s/fakebin", g.dir);
    snprintf(g.fakelog, sizeof(g.fakelog), "%s/fake.log", g.dir);
    mkdir(g.fakebin, 0755);
    for (i = 0; i < sizeof(tools) / sizeof(tools[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", g.fakebin, tools[i]);
        write_file(path, fake, 0755);
    }
    g.netns = setup_netns() == 0;
    if (!g.netns)
        fprintf(stderr, "test_agent: not root or no namespaces: probe and "
                        "real-network cases are skipped\n");
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    ck_stop();
    if (g.dir[0] != '\0' && getenv("CYRANGE_TEST_KEEP") == NULL)
        sh("rm -rf %s", g.dir);
    return 0;
}

static int agent_setup(void **state)
{
    agent_proc *ap = calloc(1, sizeof(*ap));

    if (ap == NULL)
        return -1;
    agent_start(ap, "main", 0);
    *state = ap;
    return 0;
}

static int agent_setup_dry(void **state)
{
    agent_proc *ap = calloc(1, sizeof(*ap));

    if (ap == NULL)
        return -1;
    agent_start(ap, "dry", 1);
    *state = ap;
    return 0;
}

static int agent_teardown(void **state)
{
    agent_proc *ap = *state;

    agent_stop(ap);
    free(ap);
    return 0;
}

static void exec_req(agent_proc *ap, long long id, int timeout_ms,
                     const char *in, size_t in_len, int argc, ...);

/* ---- hello, health, bad input -------------------------------------------------- */

static void test_hello_on_connect(void **state)
{
    agent_proc *ap = *state;
    proto_msg m = ap->hello;

    memset(&ap->hello, 0, sizeof(ap->hello));
    assert_int_equal(m.type, PROTO_T_HELLO);
    assert_int_equal(m.u.hello.v, PROTO_VERSION);
    assert_string_equal(m.u.hello.exercise, "ex-test");
    assert_int_equal(m.u.hello.team, 7);
    assert_string_equal(m.u.hello.host, "web");
    assert_int_equal(m.u.hello.ncaps, 5);
    assert_true(jarray_has(&m, "caps", "exec"));
    assert_true(jarray_has(&m, "caps", "action"));
    if (g.netns) {
        size_t i;
        int seen = 0;
        for (i = 0; i < m.u.hello.nifaces; i++)
            if (m.u.hello.ifaces[i].mac != NULL &&
                strcmp(m.u.hello.ifaces[i].mac, MAC_STATIC) == 0)
                seen = 1;
        assert_true(seen);
    }
    proto_msg_clear(&m);

    send_line(ap, "{\"t\":\"hello?\",\"id\":1}");
    wait_reply(ap, 1, 2000, &m);
    assert_true(m.u.reply.ok);
    proto_msg_clear(&m);
    wait_hello(ap, 2000, &m);
    assert_int_equal(ap->hellos, 2);
    proto_msg_clear(&m);
}

static void test_health(void **state)
{
    agent_proc *ap = *state;
    proto_health h;
    proto_err err;
    proto_msg m;
    long long t0;

    t0 = now_ms();
    send_msg(ap, proto_build_health_req(2, &err));
    wait_reply(ap, 2, 2000, &m);
    print_message("health round trip %lld ms\n", now_ms() - t0);
    assert_int_equal(proto_parse_health_reply(&m, &h, &err), 0);
    assert_true(h.uptime_s > 0);
    assert_true(h.mem_total_kb > 0);
    assert_true(h.mem_free_kb > 0);
    assert_false(h.services_started);
    proto_health_clear(&h);
    proto_msg_clear(&m);
}

static void test_bad_input_replies(void **state)
{
    agent_proc *ap = *state;
    proto_msg m;
    proto_err err;
    char *big = NULL;
    size_t off = 0, len = PROTO_MAX_LINE + 100;

    /* No id can be read: the answer has "id":null. */
    send_line(ap, "this is not json");
    assert_int_equal(recv_msg(ap, 2000, &m), 0);
    assert_int_equal(m.type, PROTO_T_REPLY);
    assert_false(m.has_id);
    assert_false(m.u.reply.ok);
    assert_non_null(strstr(m.u.reply.error, "invalid JSON"));
    proto_msg_clear(&m);

    /* The agent's own message types are never answered: on a channel
     * that echoes, answering would loop forever. */
    send_line(ap, "{\"t\":\"reply\",\"id\":4,\"ok\":true}");
    send_line(ap, "{\"t\":\"hello\",\"v\":1,\"agent\":\"x\"}");
    send_line(ap, "{\"t\":\"reboot\",\"id\":5}");
    assert_int_equal(recv_msg(ap, 2000, &m), 0);
    assert_int_equal(m.id, 5);
    proto_msg_clear(&m);
    send_line(ap, "{\"t\":\"reboot\",\"id\":5}");
    wait_reply(ap, 5, 2000, &m);
    assert_false(m.u.reply.ok);
    assert_string_equal(m.u.reply.error, "unknown request");
    proto_msg_clear(&m);

    send_line(ap, "{\"t\":\"probe\",\"id\":6,\"addr\":\"198.18.1.1\"}");
    wait_reply(ap, 6, 2000, &m);
    assert_false(m.u.reply.ok);
    assert_non_null(strstr(m.u.reply.error, "port"));
    proto_msg_clear(&m);

    /* An oversize line is discarded with a notice, not a crash. */
    big = malloc(len + 1);
    assert_non_null(big);
    memset(big, 'x', len);
    big[len] = '\n';
    while (off < len + 1) {
        ssize_t n = write(ap->fd, big + off, len + 1 - off);
        assert_true(n > 0);
        off += (size_t)n;
    }
    free(big);
    assert_int_equal(recv_msg(ap, 5000, &m), 0);
    assert_int_equal(m.type, PROTO_T_REPLY);
    assert_false(m.has_id);
    assert_non_null(strstr(m.u.reply.error, "discarded"));
    proto_msg_clear(&m);

    /* And the agent still answers. */
    send_msg(ap, proto_build_health_req(7, &err));
    wait_reply(ap, 7, 2000, &m);
    assert_true(m.u.reply.ok);
    proto_msg_clear(&m);
}

static void test_reconnect_sends_hello(void **state)
{
    agent_proc *ap = *state;
    proto_msg m;
    proto_err err;

    /* The orchestrator goes away (with an exec still running) and comes
     * back: a fresh hello, and no answer to what the old peer asked. */
    exec_req(ap, 9, 5000, NULL, 0, 2, "sleep", "0.3");
    usleep(50000);
    close(ap->fd);
    proto_reader_reset(ap->rd);
    ap->fd = accept_timeout(ap->lfd, 5000);
    assert_true(ap->fd >= 0);
    wait_hello(ap, 3000, &m);
    proto_msg_clear(&m);
    send_msg(ap, proto_build_health_req(8, &err));
    wait_reply(ap, 8, 2000, &m);
    assert_true(m.u.reply.ok);
    proto_msg_clear(&m);
    usleep(500000);
    send_msg(ap, proto_build_health_req(10, &err));
    assert_int_equal(recv_msg(ap, 2000, &m), 0);
    assert_int_equal(m.id, 10);
    proto_msg_clear(&m);
}

/* ---- probes ------------------------------------------------------------------- */

static void probe(agent_proc *ap, long long id, const char *addr, int port,
                  int timeout_ms)
{
    proto_probe p = {
        .proto = "tcp", .addr = addr, .port = port, .timeout_ms = timeout_ms};
    proto_err err;

    send_msg(ap, proto_build_probe(id, &p, &err));
}

static void test_probe_refused_outside_range(void **state)
{
    agent_proc *ap = *state;
    const char *addrs[] = {"127.0.0.1", "10.0.0.1", "198.20.0.1",
                           "198.17.255.255"};
    proto_msg m;
    size_t i;

    for (i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
        probe(ap, 100 + (long long)i, addrs[i], 22, 300);
        wait_reply(ap, 100 + (long long)i, 2000, &m);
        assert_false(m.u.reply.ok);
        assert_non_null(strstr(m.u.reply.error, "198.18.0.0/15"));
        assert_null(json_object_get(m.root, "reachable"));
        proto_msg_clear(&m);
    }
}

static void test_probe_in_range(void **state)
{
    agent_proc *ap = *state;
    struct sockaddr_in sin;
    proto_probe_result r;
    proto_err err;
    proto_msg m;
    socklen_t slen = sizeof(sin);
    long long t0;
    int lfd, port;

    if (!g.netns)
        skip();
    /* A listener on a range address inside our namespace. */
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    inet_pton(AF_INET, "198.18.0.1", &sin.sin_addr);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(lfd, 8), 0);
    getsockname(lfd, (struct sockaddr *)&sin, &slen);
    port = ntohs(sin.sin_port);

    probe(ap, 200, "198.18.0.1", port, 1000);
    wait_reply(ap, 200, 2000, &m);
    assert_int_equal(proto_parse_probe_reply(&m, &r, &err), 0);
    assert_true(r.reachable);
    assert_true(r.rtt_ms >= 0 && r.rtt_ms < 1000);
    /* A probe without kind gets the version-1 reply, nothing more. */
    assert_false(r.has_check);
    assert_null(json_object_get(m.root, "check_ok"));
    assert_null(json_object_get(m.root, "status"));
    assert_null(json_object_get(m.root, "detail"));
    proto_msg_clear(&m);
    close(lfd);

    probe(ap, 201, "198.18.0.1", port, 1000);
    wait_reply(ap, 201, 2000, &m);
    assert_int_equal(proto_parse_probe_reply(&m, &r, &err), 0);
    assert_false(r.reachable);
    assert_string_equal(r.error, "ECONNREFUSED");
    proto_msg_clear(&m);

    /* Nobody answers ARP on cyrt0's link: the short timeout decides. */
    t0 = now_ms();
    probe(ap, 202, "198.18.9.2", 80, 300);
    wait_reply(ap, 202, 3000, &m);
    assert_int_equal(proto_parse_probe_reply(&m, &r, &err), 0);
    assert_false(r.reachable);
    assert_string_equal(r.error, "timeout");
    assert_true(now_ms() - t0 < 1500);
    proto_msg_clear(&m);
}

static void test_probe_unreachable_quick(void **state)
{
    agent_proc *ap = *state;
    proto_probe_result r;
    proto_err err;
    proto_msg m;
    long long t0;

    /* Outside our namespace this would send a packet off the machine. */
    if (!g.netns)
        skip();
    t0 = now_ms();
    probe(ap, 210, "198.19.77.1", 80, 400);
    wait_reply(ap, 210, 3000, &m);
    assert_int_equal(proto_parse_probe_reply(&m, &r, &err), 0);
    assert_false(r.reachable);
    assert_non_null(r.error);
    assert_true(strlen(r.error) > 0);
    assert_true(now_ms() - t0 < 1500);
    proto_msg_clear(&m);
}

static void test_probe_concurrent(void **state)
{
    agent_proc *ap = *state;
    proto_err err;
    proto_msg m;
    long long t0;
    int i;

    if (!g.netns)
        skip();
    t0 = now_ms();
    for (i = 0; i < 6; i++) {
        char addr[32];
        snprintf(addr, sizeof(addr), "198.18.9.%d", 10 + i);
        probe(ap, 300 + i, addr, 80, 600);
    }
    /* Answered while the probes are still in flight. */
    send_msg(ap, proto_build_health_req(399, &err));
    assert_int_equal(recv_msg(ap, 2000, &m), 0);
    assert_int_equal(m.type, PROTO_T_REPLY);
    assert_int_equal(m.id, 399);
    assert_true(now_ms() - t0 < 400);
    proto_msg_clear(&m);
    for (i = 0; i < 6; i++) {
        wait_reply(ap, 300 + i, 3000, &m);
        assert_true(m.u.reply.ok);
        assert_string_equal(jstr(&m, "error"), "timeout");
        proto_msg_clear(&m);
    }
    /* Six 600 ms probes in parallel, not 3.6 s in a row. */
    assert_true(now_ms() - t0 < 1800);
}

/* ---- availability checks ------------------------------------------------------ */

/* Tiny servers the check tests probe: HTTP, SMTP and DNS on a dummy link of
 * our own (198.18.254.1 and .2) in the test's network namespace.  They run
 * in one thread of the test, started after the agent (so the agent's fork
 * never sees a second thread), and never use cmocka. */

#define CK_A "198.18.254.1"
#define CK_B "198.18.254.2"
#define CK_HTTP_PORT 8080
#define CK_SILENT_PORT 8081 /* accepts and never says a word */
#define CK_CLOSED_PORT 8099 /* nobody listens */
#define CK_SMTP_PORT 2525
#define CK_DNS_PORT 5353
#define CK_DNS_CLOSED_PORT 5354
#define CK_MAX_HELD 300

static struct {
    char ifname[IF_NAMESIZE - 1]; /* room for the veth peer's "p" */
    int made;
    int running;
    pthread_t th;
    int stop[2];
    int http, silent, smtp_a, smtp_b, dns;
    int held[CK_MAX_HELD]; /* connections kept open until the end */
    size_t nheld;
    pthread_mutex_t mu;
    char request[2048];    /* the last HTTP request, as received */
    int quit_seen;         /* the SMTP client said QUIT */
    unsigned char query[512]; /* the last DNS query */
    size_t query_len;
} ck = {.stop = {-1, -1}, .http = -1, .silent = -1, .smtp_a = -1,
        .smtp_b = -1, .dns = -1, .mu = PTHREAD_MUTEX_INITIALIZER};

static void ck_hold(int fd)
{
    if (ck.nheld < CK_MAX_HELD)
        ck.held[ck.nheld++] = fd;
    else
        close(fd);
}

static void ck_send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n <= 0)
            return;
        p += n;
        len -= (size_t)n;
    }
}

/* Reads until the blank line ending a request or timeout_ms. */
static size_t ck_read_until(int fd, char *buf, size_t cap, const char *end,
                            int timeout_ms)
{
    size_t len = 0;
    long long stop = now_ms() + timeout_ms;

    buf[0] = '\0';
    while (len + 1 < cap && strstr(buf, end) == NULL) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        long long left = stop - now_ms();
        ssize_t n;
        if (left <= 0 || poll(&p, 1, (int)left) != 1)
            break;
        n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
    }
    return len;
}

static void ck_http(int fd)
{
    static char big[200 * 1024];
    char req[2048], path[256] = "", hdr[256], body[1600];
    size_t blen;

    ck_read_until(fd, req, sizeof(req), "\r\n\r\n", 2000);
    pthread_mutex_lock(&ck.mu);
    snprintf(ck.request, sizeof(ck.request), "%s", req);
    pthread_mutex_unlock(&ck.mu);
    if (sscanf(req, "GET %255s ", path) != 1)
        path[0] = '\0';
    if (strcmp(path, "/ok") == 0) {
        /* 1500 bytes with the expected text in the middle. */
        memset(body, '.', 1500);
        memcpy(body + 700, "<h1>Welcome</h1>", 16);
        blen = 1500;
        snprintf(hdr, sizeof(hdr), "HTTP/1.1 200 OK\r\nContent-Type: text/html"
                 "\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", blen);
        ck_send_all(fd, hdr, strlen(hdr));
        ck_send_all(fd, body, blen);
    } else if (strcmp(path, "/down") == 0) {
        static const char r[] = "HTTP/1.1 503 Service Unavailable\r\n"
                                "Content-Length: 5\r\n\r\ndown\n";
        ck_send_all(fd, r, sizeof(r) - 1);
    } else if (strcmp(path, "/big") == 0) {
        /* No length, 200 KiB, the text only at the very end. */
        static const char h[] = "HTTP/1.0 200 OK\r\n\r\n";
        memset(big, 'x', sizeof(big));
        memcpy(big + sizeof(big) - 8, "Welcome\n", 8);
        ck_send_all(fd, h, sizeof(h) - 1);
        ck_send_all(fd, big, sizeof(big));
    } else if (strcmp(path, "/keep") == 0) {
        /* Ignores "Connection: close": the length must end the read. */
        static const char r[] = "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n"
                                "Connection: keep-alive\r\n\r\nWelcome here";
        ck_send_all(fd, r, sizeof(r) - 1);
        ck_hold(fd);
        return;
    } else if (strcmp(path, "/stall") == 0) {
        static const char r[] = "HTTP/1.0 200 OK\r\n";
        ck_send_all(fd, r, sizeof(r) - 1);
        ck_hold(fd);
        return;
    } else if (strcmp(path, "/close") == 0) {
        /* Hangs up without a word. */
    } else if (strcmp(path, "/junk") == 0) {
        static const char r[] = "\xff\xfe SSH-2.0-OpenSSH\r\n";
        ck_send_all(fd, r, sizeof(r) - 1);
    } else {
        static const char r[] = "HTTP/1.0 404 Not Found\r\n\r\nnothing\n";
        ck_send_all(fd, r, sizeof(r) - 1);
    }
    close(fd);
}

static void ck_smtp(int fd, int good)
{
    char buf[256];

    if (!good) {
        static const char r[] = "554 no service here\r\n";
        ck_send_all(fd, r, sizeof(r) - 1);
        close(fd);
        return;
    }
    /* A multi-line banner in two pieces: the agent must wait for the
     * last line. */
    ck_send_all(fd, "220-mail.example.test ESMTP ready\r\n", 35);
    usleep(50000);
    ck_send_all(fd, "220 mail ESMTP\r\n", 16);
    ck_read_until(fd, buf, sizeof(buf), "\r\n", 2000);
    if (strcmp(buf, "QUIT\r\n") == 0) {
        pthread_mutex_lock(&ck.mu);
        ck.quit_seen = 1;
        pthread_mutex_unlock(&ck.mu);
        ck_send_all(fd, "221 bye\r\n", 9);
    }
    close(fd);
}

static size_t ck_put16(unsigned char *b, size_t o, unsigned v)
{
    b[o] = (unsigned char)(v >> 8);
    b[o + 1] = (unsigned char)v;
    return o + 2;
}

/* An RR header: name (given as bytes), type, class IN, ttl 60, rdlen. */
static size_t ck_rr(unsigned char *b, size_t o, const unsigned char *name,
                    size_t nlen, unsigned type, unsigned rdlen)
{
    memcpy(b + o, name, nlen);
    o += nlen;
    o = ck_put16(b, o, type);
    o = ck_put16(b, o, 1);
    o = ck_put16(b, o, 0);
    o = ck_put16(b, o, 60);
    return ck_put16(b, o, rdlen);
}

static size_t ck_a(unsigned char *b, size_t o, const unsigned char *name,
                   size_t nlen, const char *addr)
{
    o = ck_rr(b, o, name, nlen, 1, 4);
    inet_pton(AF_INET, addr, b + o);
    return o + 4;
}

static void ck_dns(int fd)
{
    static const unsigned char ptr_q[] = {0xC0, 0x0C}; /* the question */
    unsigned char q[512], r[1024];
    char name[256];
    struct sockaddr_in from;
    socklen_t flen = sizeof(from);
    ssize_t n = recvfrom(fd, q, sizeof(q), 0, (struct sockaddr *)&from,
                         &flen);
    size_t o = 12, nl = 0, qend;
    unsigned an = 0, rcode = 0;

    if (n < 17)
        return;
    pthread_mutex_lock(&ck.mu);
    memcpy(ck.query, q, (size_t)n);
    ck.query_len = (size_t)n;
    pthread_mutex_unlock(&ck.mu);
    /* The question's name as text. */
    while (o < (size_t)n && q[o] != 0 && q[o] < 64 &&
           o + 1 + q[o] < (size_t)n && nl + q[o] + 2 < sizeof(name)) {
        if (nl > 0)
            name[nl++] = '.';
        memcpy(name + nl, q + o + 1, q[o]);
        nl += q[o];
        o += 1 + (size_t)q[o];
    }
    name[nl] = '\0';
    qend = o + 5;
    if (qend > (size_t)n)
        return;
    memcpy(r, q, qend);
    o = qend;
    if (strcmp(name, "silent.example.test") == 0) {
        return;
    } else if (strcmp(name, "www.example.test") == 0) {
        /* www CNAME web.<the question's example.test>, web A 198.18.1.80:
         * the A record's name is a pointer into the CNAME's data. */
        static const unsigned char cname[] = {3, 'w', 'e', 'b', 0xC0, 16};
        size_t at;
        o = ck_rr(r, o, ptr_q, 2, 5, sizeof(cname));
        at = o;
        memcpy(r + o, cname, sizeof(cname));
        o += sizeof(cname);
        {
            unsigned char ptr[2] = {(unsigned char)(0xC0 | (at >> 8)),
                                    (unsigned char)at};
            o = ck_a(r, o, ptr, 2, "198.18.1.80");
        }
        an = 2;
    } else if (strcmp(name, "multi.example.test") == 0) {
        o = ck_a(r, o, ptr_q, 2, "198.18.1.81");
        o = ck_a(r, o, ptr_q, 2, "198.18.1.82");
        an = 2;
    } else if (strcmp(name, "empty.example.test") == 0) {
        an = 0;
    } else if (strcmp(name, "wrongid.example.test") == 0) {
        /* A stray answer with another id first: it must be ignored. */
        r[0] ^= 0x5a;
        r[2] = 0x81;
        r[3] = 0x80;
        ck_put16(r, 4, 1);
        ck_put16(r, 6, 1);
        ck_a(r, o, ptr_q, 2, "198.18.1.66");
        sendto(fd, r, o + 16, 0, (struct sockaddr *)&from, flen);
        r[0] ^= 0x5a;
        o = ck_a(r, o, ptr_q, 2, "198.18.1.80");
        an = 1;
    } else if (strcmp(name, "trunc.example.test") == 0) {
        /* One answer announced, cut inside its fixed fields. */
        o = ck_a(r, o, ptr_q, 2, "198.18.1.80") - 10;
        an = 1;
    } else if (strcmp(name, "cut.example.test") == 0) {
        /* The data length runs past the end of the datagram. */
        o = ck_a(r, o, ptr_q, 2, "198.18.1.80") - 2;
        an = 1;
    } else if (strcmp(name, "loop.example.test") == 0) {
        /* A name that points at itself. */
        unsigned char self[2] = {(unsigned char)(0xC0 | (o >> 8)),
                                 (unsigned char)o};
        o = ck_a(r, o, self, 2, "198.18.1.80");
        an = 1;
    } else if (strcmp(name, "loop2.example.test") == 0) {
        /* Two labels whose pointers lead to each other. */
        unsigned char two[6] = {1, 'a', 0xC0, 0, 0xC0, 0};
        two[3] = (unsigned char)(o + 4);
        two[5] = (unsigned char)o;
        o = ck_a(r, o, two, 6, "198.18.1.80");
        an = 1;
    } else if (strcmp(name, "far.example.test") == 0) {
        /* A pointer past the end of the message. */
        static const unsigned char far[2] = {0xC3, 0xFF};
        o = ck_a(r, o, far, 2, "198.18.1.80");
        an = 1;
    } else if (strcmp(name, "ext.example.test") == 0) {
        /* A reserved label type (0x40). */
        static const unsigned char ext[3] = {0x41, 'x', 0};
        o = ck_a(r, o, ext, 3, "198.18.1.80");
        an = 1;
    } else if (strcmp(name, "badlen.example.test") == 0) {
        /* An A record of five bytes. */
        o = ck_rr(r, o, ptr_q, 2, 1, 5);
        memcpy(r + o, "\306\22\1\120\0", 5);
        o += 5;
        an = 1;
    } else if (strcmp(name, "header.example.test") == 0) {
        /* Eleven bytes: too short to be an answer at all, then silence. */
        o = 11;
    } else {
        rcode = 3; /* NXDOMAIN */
    }
    r[2] = 0x81; /* QR, RD */
    r[3] = (unsigned char)(0x80 | rcode); /* RA */
    ck_put16(r, 4, 1);
    ck_put16(r, 6, an);
    ck_put16(r, 8, 0);
    ck_put16(r, 10, 0);
    sendto(fd, r, o, 0, (struct sockaddr *)&from, flen);
}

static void *ck_main(void *arg)
{
    (void)arg;
    for (;;) {
        struct pollfd p[6] = {
            {.fd = ck.stop[0], .events = POLLIN},
            {.fd = ck.http, .events = POLLIN},
            {.fd = ck.silent, .events = POLLIN},
            {.fd = ck.smtp_a, .events = POLLIN},
            {.fd = ck.smtp_b, .events = POLLIN},
            {.fd = ck.dns, .events = POLLIN},
        };
        int fd;

        if (poll(p, 6, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[0].revents)
            break;
        if (p[1].revents && (fd = accept4(ck.http, NULL, NULL,
                                          SOCK_CLOEXEC)) >= 0)
            ck_http(fd);
        if (p[2].revents && (fd = accept4(ck.silent, NULL, NULL,
                                          SOCK_CLOEXEC)) >= 0)
            ck_hold(fd);
        if (p[3].revents && (fd = accept4(ck.smtp_a, NULL, NULL,
                                          SOCK_CLOEXEC)) >= 0)
            ck_smtp(fd, 1);
        if (p[4].revents && (fd = accept4(ck.smtp_b, NULL, NULL,
                                          SOCK_CLOEXEC)) >= 0)
            ck_smtp(fd, 0);
        if (p[5].revents)
            ck_dns(ck.dns);
    }
    return NULL;
}

static int ck_socket(const char *addr, int port, int type)
{
    struct sockaddr_in sin;
    int one = 1, fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((unsigned short)port);
    inet_pton(AF_INET, addr, &sin.sin_addr);
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
        (type == SOCK_STREAM && listen(fd, 512) < 0)) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Stops the servers and removes the dummy link; safe to call twice and
 * after a half-done start. */
static void ck_stop(void)
{
    size_t i;

    if (ck.running) {
        if (write(ck.stop[1], "x", 1) != 1)
            pthread_cancel(ck.th);
        pthread_join(ck.th, NULL);
        ck.running = 0;
    }
    for (i = 0; i < ck.nheld; i++)
        close(ck.held[i]);
    ck.nheld = 0;
    if (ck.stop[0] >= 0) {
        close(ck.stop[0]);
        close(ck.stop[1]);
    }
    ck.stop[0] = ck.stop[1] = -1;
    if (ck.http >= 0)
        close(ck.http);
    if (ck.silent >= 0)
        close(ck.silent);
    if (ck.smtp_a >= 0)
        close(ck.smtp_a);
    if (ck.smtp_b >= 0)
        close(ck.smtp_b);
    if (ck.dns >= 0)
        close(ck.dns);
    ck.http = ck.silent = ck.smtp_a = ck.smtp_b = ck.dns = -1;
    if (ck.made) {
        sh("ip link del %s 2>/dev/null", ck.ifname);
        ck.made = 0;
    }
}

static int ck_start(void)
{
    snprintf(ck.ifname, sizeof(ck.ifname), "cybck%d", (int)(getpid() % 1000));
    sh("ip link del %s 2>/dev/null", ck.ifname);
    /* A dummy link; kernels built without CONFIG_DUMMY get a veth pair
     * (its peer, <name>p, goes with it). */
    if (sh("ip link add %s type dummy 2>/dev/null", ck.ifname) != 0 &&
        sh("ip link add %s type veth peer name %sp && ip link set %sp up",
           ck.ifname, ck.ifname, ck.ifname) != 0)
        return -1;
    ck.made = 1;
    if (sh("ip addr add " CK_A "/32 dev %s && ip addr add " CK_B "/32 dev %s "
           "&& ip link set %s up", ck.ifname, ck.ifname, ck.ifname) != 0)
        goto fail;
    ck.http = ck_socket(CK_A, CK_HTTP_PORT, SOCK_STREAM);
    ck.silent = ck_socket(CK_A, CK_SILENT_PORT, SOCK_STREAM);
    ck.smtp_a = ck_socket(CK_A, CK_SMTP_PORT, SOCK_STREAM);
    ck.smtp_b = ck_socket(CK_B, CK_SMTP_PORT, SOCK_STREAM);
    ck.dns = ck_socket(CK_B, CK_DNS_PORT, SOCK_DGRAM);
    if (ck.http < 0 || ck.silent < 0 || ck.smtp_a < 0 || ck.smtp_b < 0 ||
        ck.dns < 0 || pipe2(ck.stop, O_CLOEXEC) < 0)
        goto fail;
    ck.quit_seen = 0;
    ck.request[0] = '\0';
    ck.query_len = 0;
    if (pthread_create(&ck.th, NULL, ck_main, NULL) != 0)
        goto fail;
    ck.running = 1;
    return 0;
fail:
    ck_stop();
    return -1;
}

static int check_setup(void **state)
{
    /* The agent first: its fork happens while we have one thread. */
    if (agent_setup(state) < 0)
        return -1;
    if (g.netns && ck_start() < 0) {
        fprintf(stderr, "test_agent: cannot start the check servers\n");
        agent_teardown(state);
        return -1;
    }
    return 0;
}

static int check_teardown(void **state)
{
    ck_stop();
    return agent_teardown(state);
}

/* Runs one check; *r views m (clear it after use).  Returns the time the
 * answer took in ms. */
static long long run_check(agent_proc *ap, long long id, const proto_probe *p,
                           proto_msg *m, proto_probe_result *r)
{
    long long t0 = now_ms();
    proto_err err;

    send_msg(ap, proto_build_probe(id, p, &err));
    wait_reply(ap, id, p->timeout_ms + 3000, m);
    if (!m->u.reply.ok)
        fail_msg("check %lld refused: %s", id, m->u.reply.error);
    if (proto_parse_probe_reply(m, r, &err) < 0)
        fail_msg("check %lld: bad reply: %s", id, err.msg);
    assert_true(r->has_check);
    assert_non_null(r->detail);
    return now_ms() - t0;
}

static void expect_detail(const proto_probe_result *r, const char *want)
{
    if (strcmp(r->detail, want) != 0)
        fail_msg("detail \"%s\", expected \"%s\"", r->detail, want);
}

static void expect_detail_has(const proto_probe_result *r, const char *want)
{
    if (strstr(r->detail, want) == NULL)
        fail_msg("detail \"%s\" lacks \"%s\"", r->detail, want);
}

static void test_check_http(void **state)
{
    agent_proc *ap = *state;
    proto_probe p = {.addr = CK_A, .port = CK_HTTP_PORT, .timeout_ms = 3000,
                     .kind = PROTO_CHECK_HTTP, .path = "/ok",
                     .host = "www.example.test", .expect = "Welcome"};
    proto_probe_result r;
    proto_msg m;
    long long ms;

    if (!g.netns)
        skip();
    ms = run_check(ap, 500, &p, &m, &r);
    print_message("http check round trip %lld ms (connect %.3f ms)\n", ms,
                  r.rtt_ms);
    assert_true(r.reachable);
    assert_true(r.check_ok);
    assert_int_equal(r.status, 200);
    expect_detail(&r, "HTTP 200, 1500 bytes, contains \"Welcome\"");
    assert_null(r.error);
    proto_msg_clear(&m);
    pthread_mutex_lock(&ck.mu);
    assert_string_equal(ck.request,
                        "GET /ok HTTP/1.0\r\nHost: www.example.test\r\n"
                        "User-Agent: cyrange-check\r\nConnection: close\r\n\r\n");
    pthread_mutex_unlock(&ck.mu);

    /* Host defaults to the address; text that is not there fails. */
    p.host = NULL;
    p.expect = "Goodbye";
    run_check(ap, 501, &p, &m, &r);
    assert_true(r.reachable);
    assert_false(r.check_ok);
    assert_int_equal(r.status, 200);
    expect_detail(&r, "HTTP 200, 1500 bytes, does not contain \"Goodbye\"");
    proto_msg_clear(&m);
    pthread_mutex_lock(&ck.mu);
    assert_non_null(strstr(ck.request, "\r\nHost: " CK_A "\r\n"));
    pthread_mutex_unlock(&ck.mu);

    /* A wrong status. */
    p.path = "/down";
    p.expect = NULL;
    run_check(ap, 502, &p, &m, &r);
    assert_false(r.check_ok);
    assert_int_equal(r.status, 503);
    expect_detail(&r, "HTTP 503 (expected 200), 5 bytes");
    proto_msg_clear(&m);
    /* ... which is right when asked for. */
    p.expect_status = 503;
    p.expect = "down";
    run_check(ap, 503, &p, &m, &r);
    assert_true(r.check_ok);
    expect_detail(&r, "HTTP 503, 5 bytes, contains \"down\"");
    proto_msg_clear(&m);
    p.expect_status = 0;

    p.path = "/nothing-here";
    run_check(ap, 504, &p, &m, &r);
    assert_false(r.check_ok);
    assert_int_equal(r.status, 404);
    proto_msg_clear(&m);

    /* The length ends a response the server keeps open. */
    p.path = "/keep";
    p.expect = "Welcome";
    p.timeout_ms = 5000;
    ms = run_check(ap, 505, &p, &m, &r);
    assert_true(r.check_ok);
    expect_detail(&r, "HTTP 200, 12 bytes, contains \"Welcome\"");
    assert_true(ms < 2000);
    proto_msg_clear(&m);

    /* Only 64 KiB are read: text past them is not seen. */
    p.path = "/big";
    ms = run_check(ap, 506, &p, &m, &r);
    assert_false(r.check_ok);
    assert_int_equal(r.status, 200);
    expect_detail_has(&r, "(first 64 KiB)");
    expect_detail_has(&r, "does not contain \"Welcome\"");
    assert_true(ms < 3000);
    proto_msg_clear(&m);

    /* Not HTTP at all: the bytes are quoted as printable ASCII. */
    p.path = "/junk";
    p.expect = NULL;
    run_check(ap, 507, &p, &m, &r);
    assert_false(r.check_ok);
    assert_int_equal(r.status, -1);
    assert_true(json_is_null(json_object_get(m.root, "status")));
    expect_detail(&r, "not an HTTP response: \"?? SSH-2.0-OpenSSH\"");
    proto_msg_clear(&m);

    p.path = "/close";
    run_check(ap, 508, &p, &m, &r);
    assert_true(r.reachable);
    assert_false(r.check_ok);
    expect_detail(&r, "closed without a response");
    proto_msg_clear(&m);
}

static void test_check_http_failures(void **state)
{
    agent_proc *ap = *state;
    proto_probe p = {.addr = CK_A, .port = CK_CLOSED_PORT, .timeout_ms = 2000,
                     .kind = PROTO_CHECK_HTTP, .path = "/ok"};
    proto_probe_result r;
    proto_msg m;
    long long ms;

    if (!g.netns)
        skip();
    /* Refused. */
    run_check(ap, 520, &p, &m, &r);
    assert_false(r.reachable);
    assert_string_equal(r.error, "ECONNREFUSED");
    assert_false(r.check_ok);
    assert_int_equal(r.status, -1);
    expect_detail(&r, "ECONNREFUSED");
    proto_msg_clear(&m);

    /* A server that accepts and never answers. */
    p.port = CK_SILENT_PORT;
    p.timeout_ms = 400;
    ms = run_check(ap, 521, &p, &m, &r);
    assert_true(r.reachable);
    assert_null(r.error);
    assert_false(r.check_ok);
    expect_detail(&r, "timeout after 400 ms in read");
    assert_true(ms >= 390 && ms < 1500);
    proto_msg_clear(&m);

    /* A status line and then nothing. */
    p.port = CK_HTTP_PORT;
    p.path = "/stall";
    run_check(ap, 522, &p, &m, &r);
    assert_false(r.check_ok);
    expect_detail(&r, "timeout after 400 ms in read (17 bytes received)");
    proto_msg_clear(&m);

    /* Nobody answers ARP on cyrt0's link: the connect times out. */
    p.addr = "198.18.9.2";
    p.timeout_ms = 300;
    ms = run_check(ap, 523, &p, &m, &r);
    assert_false(r.reachable);
    assert_string_equal(r.error, "timeout");
    assert_false(r.check_ok);
    expect_detail(&r, "timeout after 300 ms in connect");
    assert_true(ms < 1500);
    proto_msg_clear(&m);

    /* A plain tcp check. */
    p.kind = PROTO_CHECK_TCP;
    p.addr = CK_A;
    p.port = CK_HTTP_PORT;
    p.timeout_ms = 1000;
    run_check(ap, 524, &p, &m, &r);
    assert_true(r.reachable);
    assert_true(r.check_ok);
    assert_int_equal(r.status, -1);
    assert_true(strncmp(r.detail, "connected in ", 13) == 0);
    proto_msg_clear(&m);
    p.port = CK_CLOSED_PORT;
    run_check(ap, 525, &p, &m, &r);
    assert_false(r.reachable);
    assert_false(r.check_ok);
    expect_detail(&r, "ECONNREFUSED");
    proto_msg_clear(&m);

    /* With expect, what the service says first must hold the text; the
     * check ends as soon as it has come. */
    p.port = CK_SMTP_PORT;
    p.expect = "220 mail";
    p.timeout_ms = 3000;
    ms = run_check(ap, 526, &p, &m, &r);
    assert_true(r.check_ok);
    assert_int_equal(r.status, -1);
    expect_detail(&r, "banner 220-mail.example.test ESMTP ready, contains "
                      "\"220 mail\"");
    assert_true(ms < 1000);
    proto_msg_clear(&m);
    p.expect = "SSH-2.0";
    p.timeout_ms = 400;
    run_check(ap, 527, &p, &m, &r);
    assert_true(r.reachable);
    assert_false(r.check_ok);
    expect_detail(&r, "timeout after 400 ms in read (51 bytes received)");
    proto_msg_clear(&m);
    p.port = CK_SILENT_PORT;
    run_check(ap, 528, &p, &m, &r);
    assert_false(r.check_ok);
    expect_detail(&r, "timeout after 400 ms in read");
    proto_msg_clear(&m);
}

static void test_check_refused_outside_range(void **state)
{
    agent_proc *ap = *state;
    proto_probe h = {.addr = "10.0.0.1", .port = 80, .timeout_ms = 300,
                     .kind = PROTO_CHECK_HTTP};
    proto_probe d = {.addr = "127.0.0.53", .timeout_ms = 300,
                     .kind = PROTO_CHECK_DNS, .name = "www.example.test"};
    proto_err err;
    proto_msg m;

    send_msg(ap, proto_build_probe(530, &h, &err));
    wait_reply(ap, 530, 2000, &m);
    assert_false(m.u.reply.ok);
    assert_non_null(strstr(m.u.reply.error, "198.18.0.0/15"));
    assert_null(json_object_get(m.root, "check_ok"));
    proto_msg_clear(&m);
    send_msg(ap, proto_build_probe(531, &d, &err));
    wait_reply(ap, 531, 2000, &m);
    assert_false(m.u.reply.ok);
    assert_non_null(strstr(m.u.reply.error, "198.18.0.0/15"));
    proto_msg_clear(&m);
    /* A bad check field is answered with that id and the field's name. */
    send_line(ap, "{\"t\":\"probe\",\"id\":532,\"kind\":\"http\",\"addr\":"
                  "\"198.18.254.1\",\"path\":\"/a\\r\\nX: 1\"}");
    wait_reply(ap, 532, 2000, &m);
    assert_false(m.u.reply.ok);
    assert_non_null(strstr(m.u.reply.error, "path"));
    proto_msg_clear(&m);
}

static void test_check_smtp(void **state)
{
    agent_proc *ap = *state;
    /* Only the banner's last line says "220 mail". */
    proto_probe p = {.addr = CK_A, .port = CK_SMTP_PORT, .timeout_ms = 3000,
                     .kind = PROTO_CHECK_SMTP, .expect = "220 mail"};
    proto_probe_result r;
    proto_msg m;
    long long end;
    int quit = 0;

    if (!g.netns)
        skip();
    run_check(ap, 540, &p, &m, &r);
    assert_true(r.reachable);
    assert_true(r.check_ok);
    assert_int_equal(r.status, 220);
    expect_detail(&r, "banner 220-mail.example.test ESMTP ready, contains "
                      "\"220 mail\"");
    proto_msg_clear(&m);
    /* The agent says goodbye. */
    for (end = now_ms() + 2000; now_ms() < end && !quit; usleep(10000)) {
        pthread_mutex_lock(&ck.mu);
        quit = ck.quit_seen;
        pthread_mutex_unlock(&ck.mu);
    }
    assert_true(quit);

    p.expect = "Postfix";
    run_check(ap, 541, &p, &m, &r);
    assert_false(r.check_ok);
    assert_int_equal(r.status, 220);
    expect_detail_has(&r, "does not contain \"Postfix\"");
    proto_msg_clear(&m);

    /* Not 220. */
    p.addr = CK_B;
    p.expect = NULL;
    run_check(ap, 542, &p, &m, &r);
    assert_true(r.reachable);
    assert_false(r.check_ok);
    assert_int_equal(r.status, 554);
    expect_detail(&r, "banner 554 no service here");
    proto_msg_clear(&m);

    /* No banner within the time. */
    p.addr = CK_A;
    p.port = CK_SILENT_PORT;
    p.timeout_ms = 400;
    run_check(ap, 543, &p, &m, &r);
    assert_true(r.reachable);
    assert_false(r.check_ok);
    assert_int_equal(r.status, -1);
    expect_detail(&r, "timeout after 400 ms in read");
    proto_msg_clear(&m);

    p.port = CK_CLOSED_PORT;
    run_check(ap, 544, &p, &m, &r);
    assert_false(r.reachable);
    assert_string_equal(r.error, "ECONNREFUSED");
    assert_false(r.check_ok);
    proto_msg_clear(&m);

    /* An HTTP server is not a mail server. */
    p.port = CK_HTTP_PORT;
    p.timeout_ms = 3000;
    run_check(ap, 545, &p, &m, &r);
    assert_false(r.check_ok);
    proto_msg_clear(&m);
}

static void test_check_dns(void **state)
{
    agent_proc *ap = *state;
    proto_probe p = {.addr = CK_B, .port = CK_DNS_PORT, .timeout_ms = 2000,
                     .kind = PROTO_CHECK_DNS, .name = "www.example.test",
                     .expect_address = "198.18.1.80"};
    static const unsigned char qname[] = "\3www\7example\4test";
    proto_probe_result r;
    proto_msg m;
    long long ms;

    if (!g.netns)
        skip();
    run_check(ap, 560, &p, &m, &r);
    assert_true(r.reachable);
    assert_true(r.check_ok);
    assert_int_equal(r.status, 0);
    expect_detail(&r, "198.18.1.80");
    proto_msg_clear(&m);
    /* The query as sent: RD, one question, type A, class IN. */
    pthread_mutex_lock(&ck.mu);
    assert_int_equal(ck.query_len, 12 + sizeof(qname) + 4);
    assert_int_equal(ck.query[2], 0x01);
    assert_int_equal(ck.query[5], 1);
    assert_memory_equal(ck.query + 12, qname, sizeof(qname));
    assert_memory_equal(ck.query + 12 + sizeof(qname), "\0\1\0\1", 4);
    pthread_mutex_unlock(&ck.mu);

    p.name = "www.example.test.";
    p.expect_address = NULL;
    run_check(ap, 561, &p, &m, &r);
    assert_true(r.check_ok);
    expect_detail(&r, "198.18.1.80");
    proto_msg_clear(&m);

    /* The wrong address. */
    p.name = "multi.example.test";
    p.expect_address = "198.18.1.80";
    run_check(ap, 562, &p, &m, &r);
    assert_true(r.reachable);
    assert_false(r.check_ok);
    assert_int_equal(r.status, 0);
    expect_detail(&r, "198.18.1.81, 198.18.1.82 (expected 198.18.1.80)");
    proto_msg_clear(&m);
    p.expect_address = "198.18.1.82";
    run_check(ap, 563, &p, &m, &r);
    assert_true(r.check_ok);
    proto_msg_clear(&m);

    p.name = "missing.example.test";
    p.expect_address = NULL;
    run_check(ap, 564, &p, &m, &r);
    assert_true(r.reachable);
    assert_false(r.check_ok);
    assert_int_equal(r.status, 3);
    expect_detail(&r, "NXDOMAIN");
    proto_msg_clear(&m);

    /* No A record: fine without an expected address, not with one. */
    p.name = "empty.example.test";
    run_check(ap, 565, &p, &m, &r);
    assert_true(r.check_ok);
    expect_detail(&r, "no A record");
    proto_msg_clear(&m);
    p.expect_address = "198.18.1.80";
    run_check(ap, 566, &p, &m, &r);
    assert_false(r.check_ok);
    expect_detail(&r, "no A record (expected 198.18.1.80)");
    proto_msg_clear(&m);

    /* An answer with another id is not ours. */
    p.name = "wrongid.example.test";
    run_check(ap, 567, &p, &m, &r);
    assert_true(r.check_ok);
    expect_detail(&r, "198.18.1.80");
    proto_msg_clear(&m);

    /* No answer. */
    p.name = "silent.example.test";
    p.timeout_ms = 400;
    ms = run_check(ap, 568, &p, &m, &r);
    assert_false(r.reachable);
    assert_string_equal(r.error, "timeout");
    assert_false(r.check_ok);
    expect_detail(&r, "timeout after 400 ms in read");
    assert_true(ms < 1500);
    proto_msg_clear(&m);

    /* Nobody on the port: the ICMP error ends the check early. */
    p.port = CK_DNS_CLOSED_PORT;
    p.name = "www.example.test";
    p.timeout_ms = 2000;
    ms = run_check(ap, 569, &p, &m, &r);
    assert_false(r.reachable);
    assert_string_equal(r.error, "ECONNREFUSED");
    assert_false(r.check_ok);
    assert_true(ms < 1000);
    proto_msg_clear(&m);
}

static void test_check_dns_malformed(void **state)
{
    agent_proc *ap = *state;
    static const char *const names[] = {
        "trunc.example.test", "cut.example.test", "loop.example.test",
        "loop2.example.test", "far.example.test", "ext.example.test",
        "badlen.example.test"};
    proto_probe p = {.addr = CK_B, .port = CK_DNS_PORT, .timeout_ms = 2000,
                     .kind = PROTO_CHECK_DNS};
    proto_probe_result r;
    proto_err err;
    proto_msg m;
    size_t i;
    int st = 0;

    if (!g.netns)
        skip();
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        p.name = names[i];
        run_check(ap, 580 + (long long)i, &p, &m, &r);
        if (r.check_ok || strncmp(r.detail, "malformed answer", 16) != 0)
            fail_msg("%s: check_ok %d, detail \"%s\"", names[i], r.check_ok,
                     r.detail);
        assert_true(r.reachable);
        assert_int_equal(r.status, 0);
        proto_msg_clear(&m);
    }
    /* Too short to be an answer: ignored, so the check times out. */
    p.name = "header.example.test";
    p.timeout_ms = 300;
    run_check(ap, 590, &p, &m, &r);
    assert_false(r.reachable);
    expect_detail(&r, "timeout after 300 ms in read");
    proto_msg_clear(&m);
    /* The agent is alive and well. */
    send_msg(ap, proto_build_health_req(591, &err));
    wait_reply(ap, 591, 2000, &m);
    assert_true(m.u.reply.ok);
    proto_msg_clear(&m);
    assert_int_equal(waitpid(ap->pid, &st, WNOHANG), 0);
}

/* At most AGENT_MAX_PROBES (256) at once; more are refused as busy, and
 * every accepted one still ends at its deadline. */
static void test_check_limit(void **state)
{
    agent_proc *ap = *state;
    proto_probe p = {.addr = CK_B, .port = CK_DNS_PORT, .timeout_ms = 1500,
                     .kind = PROTO_CHECK_DNS, .name = "silent.example.test"};
    proto_err err;
    proto_msg m;
    int i, busy = 0, timeouts = 0;
    long long t0;

    if (!g.netns)
        skip();
    t0 = now_ms();
    for (i = 0; i < 260; i++)
        send_msg(ap, proto_build_probe(1000 + i, &p, &err));
    while (busy + timeouts < 260) {
        if (recv_msg(ap, 5000, &m) < 0)
            fail_msg("%d busy, %d timeouts, then nothing", busy, timeouts);
        if (m.type == PROTO_T_REPLY && m.id >= 1000 && m.id < 1260) {
            if (!m.u.reply.ok && strstr(m.u.reply.error, "busy") != NULL)
                busy++;
            else if (m.u.reply.ok &&
                     strcmp(jstr(&m, "detail"),
                            "timeout after 1500 ms in read") == 0)
                timeouts++;
            else
                fail_msg("unexpected reply to %lld", m.id);
        }
        proto_msg_clear(&m);
    }
    print_message("256 dns checks of 1500 ms at once: all answered in "
                  "%lld ms\n", now_ms() - t0);
    assert_int_equal(busy, 4);
    assert_int_equal(timeouts, 256);
    /* In parallel: about one timeout, not 256 of them. */
    assert_true(now_ms() - t0 < 4000);
}

/* ---- exec ------------------------------------------------------------------------ */

static void exec_req(agent_proc *ap, long long id, int timeout_ms,
                     const char *in, size_t in_len, int argc, ...)
{
    const char *argv[16];
    proto_exec e = {argv, (size_t)argc, timeout_ms, in, in_len};
    proto_err err;
    va_list va;
    int i;

    va_start(va, argc);
    for (i = 0; i < argc && i < 16; i++)
        argv[i] = va_arg(va, const char *);
    va_end(va);
    send_msg(ap, proto_build_exec(id, &e, &err));
}

static void test_exec_status_output(void **state)
{
    agent_proc *ap = *state;
    proto_exec_result r;
    proto_err err;
    proto_msg m;
    long long t0 = now_ms();

    exec_req(ap, 400, 5000, NULL, 0, 3, "/bin/sh", "-c",
             "echo out; echo err >&2; exit 3");
    wait_reply(ap, 400, 5000, &m);
    print_message("exec round trip %lld ms\n", now_ms() - t0);
    assert_int_equal(proto_parse_exec_reply(&m, &r, &err), 0);
    assert_int_equal(r.exit_code, 3);
    assert_int_equal(r.signal, 0);
    assert_false(r.timed_out);
    assert_string_equal(r.out, "out\n");
    assert_string_equal(r.err, "err\n");
    proto_msg_clear(&m);

    exec_req(ap, 401, 5000, NULL, 0, 1, "/nonexistent/tool");
    wait_reply(ap, 401, 5000, &m);
    assert_int_equal(proto_parse_exec_reply(&m, &r, &err), 0);
    assert_int_equal(r.exit_code, 127);
    assert_non_null(strstr(r.err, "/nonexistent/tool"));
    proto_msg_clear(&m);

    /* Input may hold NUL bytes; output is bytes too. */
    exec_req(ap, 402, 5000, "hello\0world", 11, 1, "cat");
    wait_reply(ap, 402, 5000, &m);
    assert_int_equal(proto_parse_exec_reply(&m, &r, &err), 0);
    assert_int_equal(r.exit_code, 0);
    assert_int_equal(r.out_len, 11);
    assert_memory_equal(r.out, "hello\0world", 11);
    proto_msg_clear(&m);
}

static void test_exec_timeout_kills_group(void **state)
{
    agent_proc *ap = *state;
    proto_exec_result r;
    proto_err err;
    proto_msg m;
    char path[64], *stat = NULL;
    long long t0 = now_ms();
    int pid;

    /* The shell prints its background child's pid and waits. */
    exec_req(ap, 410, 300, NULL, 0, 3, "/bin/sh", "-c",
             "sleep 30 & echo $!; wait");
    wait_reply(ap, 410, 3000, &m);
    assert_true(now_ms() - t0 < 2000);
    assert_int_equal(proto_parse_exec_reply(&m, &r, &err), 0);
    assert_true(r.timed_out);
    assert_int_equal(r.signal, 9);
    assert_int_equal(r.exit_code, 137);
    pid = atoi(r.out);
    assert_true(pid > 0);
    proto_msg_clear(&m);
    /* The grandchild died with the group (gone, or a zombie of init). */
    usleep(100000);
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    stat = read_file(path);
    if (stat != NULL) {
        char *p = strrchr(stat, ')');
        assert_non_null(p);
        assert_int_equal(p[2], 'Z');
    }
}

static void test_exec_large_output(void **state)
{
    agent_proc *ap = *state;
    proto_exec_result r;
    proto_err err;
    proto_msg m;
    size_t i;

    exec_req(ap, 420, 5000, NULL, 0, 3, "/bin/sh", "-c",
             "head -c 300000 /dev/zero | tr '\\0' a; echo done >&2");
    wait_reply(ap, 420, 5000, &m);
    assert_int_equal(proto_parse_exec_reply(&m, &r, &err), 0);
    assert_int_equal(r.exit_code, 0);
    assert_int_equal(r.out_len, PROTO_EXEC_MAX_OUTPUT);
    assert_true(r.out_truncated);
    for (i = 0; i < r.out_len; i++)
        assert_int_equal(r.out[i], 'a');
    assert_string_equal(r.err, "done\n");
    assert_false(r.err_truncated);
    proto_msg_clear(&m);
}

static void test_exec_concurrent(void **state)
{
    agent_proc *ap = *state;
    proto_err err;
    proto_msg m;
    long long t0 = now_ms();

    exec_req(ap, 430, 5000, NULL, 0, 2, "sleep", "1");
    exec_req(ap, 431, 5000, NULL, 0, 2, "echo", "fast");
    send_msg(ap, proto_build_health_req(432, &err));
    /* The slow exec does not hold the others up. */
    assert_int_equal(recv_msg(ap, 3000, &m), 0);
    assert_true(m.id == 431 || m.id == 432);
    proto_msg_clear(&m);
    assert_int_equal(recv_msg(ap, 3000, &m), 0);
    assert_true(m.id == 431 || m.id == 432);
    proto_msg_clear(&m);
    assert_true(now_ms() - t0 < 800);
    wait_reply(ap, 430, 3000, &m);
    assert_true(m.u.reply.ok);
    assert_int_equal(json_integer_value(json_object_get(m.root, "exit")), 0);
    proto_msg_clear(&m);
}

/* ---- config ----------------------------------------------------------------------- */

/* A MAC the agent can match: our veth link, or the host's first NIC. */
static void pick_iface(agent_proc *ap, char *mac, char *name)
{
    proto_msg m;
    size_t i;

    if (g.netns) {
        strcpy(mac, MAC_STATIC);
        strcpy(name, "cyrc0");
        return;
    }
    send_line(ap, "{\"t\":\"hello?\",\"id\":499}");
    wait_hello(ap, 3000, &m);
    for (i = 0; i < m.u.hello.nifaces; i++) {
        if (m.u.hello.ifaces[i].mac != NULL) {
            strcpy(mac, m.u.hello.ifaces[i].mac);
            snprintf(name, 32, "%s", m.u.hello.ifaces[i].name);
            proto_msg_clear(&m);
            return;
        }
    }
    proto_msg_clear(&m);
    skip();
}

static json_t *config_json(long long id, const char *mac, const char *addr)
{
    json_t *c = json_pack(
        "{s:s,s:I,s:s,s:i,s:s,s:s,s:[{s:s,s:s,s:i}],s:s,s:[s],"
        "s:[{s:s,s:s,s:s},{s:s,s:s,s:s}],"
        "s:[{s:s,s:s,s:[s,s]}],"
        "s:{s:s,s:s,s:s}}",
        "t", "config", "id", (json_int_t)id, "exercise", "ex-cfg", "team", 4,
        "host", "web1", "hostname", "cyr-web1",
        "ifaces", "mac", mac, "addr", addr, "prefix", 24,
        "gateway", "198.18.1.1", "dns", "198.18.1.53",
        "files", "path", "/etc/motd", "content", "welcome\n", "mode", "0640",
        "path", "/opt/app/run.sh", "content", "#!/bin/sh\necho hi\n", "mode",
        "0755",
        "accounts", "name", "alice", "password", "pw:1'x", "groups", "users",
        "wheel",
        "env", "CYR_SERVICES", "http smtp", "CYR_DOMAIN", "team4.example",
        "CYR_NOTE", "it's \"quoted\"");

    assert_non_null(c);
    return c;
}

static void check_mode(const char *root, const char *rel, mode_t mode)
{
    char path[512];
    struct stat st;

    snprintf(path, sizeof(path), "%s%s", root, rel);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, mode);
}

static void test_config_dry(void **state)
{
    agent_proc *ap = *state;
    char mac[32] = "", ifname[32] = "", path[512], want[256], host0[64];
    char host1[64];
    const char *env = NULL, *log = NULL;
    proto_msg m;

    pick_iface(ap, mac, ifname);
    gethostname(host0, sizeof(host0));
    unlink(g.fakelog);
    /* An image with a users group but no wheel, and a start-services. */
    snprintf(path, sizeof(path), "%s/etc/group", ap->root);
    write_file(path, "root:x:0:\nusers:x:100:\n", 0644);
    snprintf(path, sizeof(path), "%s/etc/cyrange/start-services", ap->root);
    snprintf(want, sizeof(want),
             "#!/bin/sh\necho started >> %s/services.ran\n", ap->root);
    write_file(path, want, 0755);

    send_msg(ap, config_json(500, mac, "198.18.1.10"));
    wait_reply(ap, 500, 10000, &m);
    if (!m.u.reply.ok)
        dump_actions(&m);
    assert_true(m.u.reply.ok);
    assert_true(json_is_true(json_object_get(m.root, "dry_net")));
    snprintf(want, sizeof(want), "addr add 198.18.1.10/24 dev %s", ifname);
    assert_true(jarray_has(&m, "actions", want));
    snprintf(want, sizeof(want), "link up %s", ifname);
    assert_true(jarray_has(&m, "actions", want));
    assert_true(jarray_has(&m, "actions", "route replace default via 198.18.1.1"));
    assert_true(jarray_has(&m, "actions", "hostname cyr-web1"));
    assert_true(jarray_has(&m, "actions", "adduser -D alice"));
    assert_true(jarray_has(&m, "actions", "addgroup alice users"));
    assert_true(jarray_has(&m, "actions", "addgroup wheel"));
    assert_true(jarray_has(&m, "actions", "start-services"));
    assert_true(json_is_true(json_object_get(m.root, "services_started")));
    proto_msg_clear(&m);

    /* Dry: neither the hostname nor the addresses changed. */
    gethostname(host1, sizeof(host1));
    assert_string_equal(host0, host1);
    if (g.netns)
        assert_int_equal(sh("ip -4 addr show dev cyrc0 | grep -q 198.18.1.10"),
                         1);

    check_mode(ap->root, "/etc/motd", 0640);
    check_mode(ap->root, "/opt/app/run.sh", 0755);
    snprintf(path, sizeof(path), "%s/etc/motd", ap->root);
    assert_string_equal(read_file(path), "welcome\n");
    snprintf(path, sizeof(path), "%s/etc/hostname", ap->root);
    assert_string_equal(read_file(path), "cyr-web1\n");
    snprintf(path, sizeof(path), "%s/etc/resolv.conf", ap->root);
    assert_non_null(strstr(read_file(path), "search team4.example\n"
                                            "nameserver 198.18.1.53\n"));
    snprintf(path, sizeof(path), "%s/etc/cyrange/host.env", ap->root);
    env = read_file(path);
    assert_non_null(env);
    assert_non_null(strstr(env, "\nCYR_SERVICES='http smtp'\n"));
    assert_non_null(strstr(env, "\nCYR_NOTE='it'\\''s \"quoted\"'\n"));
    assert_non_null(strstr(env, "\nCYR_EXERCISE='ex-cfg'\n"));
    assert_non_null(strstr(env, "\nCYR_TEAM='4'\n"));
    assert_non_null(strstr(env, "\nCYR_HOST='web1'\n"));
    assert_non_null(strstr(env, "\nCYR_GATEWAY='198.18.1.1'\n"));
    assert_non_null(strstr(env, "\nCYR_DNS='198.18.1.53'\n"));
    snprintf(want, sizeof(want), "\nCYR_IFACES='%s'\n", ifname);
    assert_non_null(strstr(env, want));
    /* The env file sources cleanly in sh. */
    assert_int_equal(sh(". %s && test \"$CYR_NOTE\" = \"it's \\\"quoted\\\"\"",
                        path), 0);

    log = read_file(g.fakelog);
    assert_non_null(log);
    assert_non_null(strstr(log, "adduser -D alice\n"));
    assert_non_null(strstr(log, "addgroup wheel\n"));
    assert_non_null(strstr(log, "addgroup alice users\n"));
    assert_non_null(strstr(log, "addgroup alice wheel\n"));
    assert_non_null(strstr(log, "chpasswd \nstdin: alice:pw:1'x\n"));
    assert_null(strstr(log, "udhcpc"));

    snprintf(path, sizeof(path), "%s/services.ran", ap->root);
    assert_int_equal(wait_for_file(path, 3000), 0);

    /* The same config again: harmless, and services start only once. */
    send_msg(ap, config_json(501, mac, "198.18.1.10"));
    wait_reply(ap, 501, 10000, &m);
    assert_true(m.u.reply.ok);
    assert_true(jarray_has(&m, "actions", "start-services: already started"));
    /* The (emulated) tools recorded the account: not created again. */
    assert_false(jarray_has(&m, "actions", "adduser -D alice"));
    assert_false(jarray_has(&m, "actions", "addgroup alice users"));
    assert_false(jarray_has(&m, "actions", "addgroup wheel"));
    assert_true(jarray_has(&m, "actions", "chpasswd (1 accounts)"));
    proto_msg_clear(&m);
    usleep(200000);
    snprintf(path, sizeof(path), "%s/services.ran", ap->root);
    assert_string_equal(read_file(path), "started\n");

    send_line(ap, "{\"t\":\"health\",\"id\":502}");
    wait_reply(ap, 502, 2000, &m);
    assert_true(json_is_true(json_object_get(m.root, "services_started")));
    proto_msg_clear(&m);
}

static void test_config_unknown_mac(void **state)
{
    agent_proc *ap = *state;
    char path[512];
    proto_msg m;

    send_line(ap, "{\"t\":\"config\",\"id\":510,\"ifaces\":[{\"mac\":"
                  "\"02:00:00:de:ad:01\",\"addr\":\"198.18.5.5\",\"prefix\":24}],"
                  "\"files\":[{\"path\":\"/etc/never\",\"content\":\"x\"}]}");
    wait_reply(ap, 510, 5000, &m);
    assert_false(m.u.reply.ok);
    assert_non_null(strstr(m.u.reply.error, "02:00:00:de:ad:01"));
    proto_msg_clear(&m);
    /* Validation comes before action: nothing was written. */
    snprintf(path, sizeof(path), "%s/etc/never", ap->root);
    assert_int_equal(access(path, F_OK), -1);

    /* An invalid file path never reaches the disk either. */
    send_line(ap, "{\"t\":\"config\",\"id\":511,\"files\":[{\"path\":"
                  "\"/etc/../../escape\",\"content\":\"x\"}]}");
    wait_reply(ap, 511, 5000, &m);
    assert_false(m.u.reply.ok);
    assert_non_null(strstr(m.u.reply.error, "path"));
    proto_msg_clear(&m);
}

static int iface_has_addr(agent_proc *ap, long long id, const char *ifname,
                          const char *cidr, int *up)
{
    proto_health h;
    proto_err err;
    proto_msg m;
    size_t i, j;
    int found = 0;

    send_msg(ap, proto_build_health_req(id, &err));
    wait_reply(ap, id, 2000, &m);
    assert_int_equal(proto_parse_health_reply(&m, &h, &err), 0);
    for (i = 0; i < h.nifaces; i++) {
        if (strcmp(h.ifaces[i].name, ifname) != 0)
            continue;
        *up = h.ifaces[i].up;
        /* Without cidr: how many addresses the link has. */
        if (cidr == NULL)
            found = (int)h.ifaces[i].naddrs;
        for (j = 0; cidr != NULL && j < h.ifaces[i].naddrs; j++)
            if (strcmp(h.ifaces[i].addrs[j], cidr) == 0)
                found = 1;
    }
    proto_health_clear(&h);
    proto_msg_clear(&m);
    return found;
}

static void test_config_real_network(void **state)
{
    agent_proc *ap = *state;
    char host[64], want[512];
    const char *log = NULL;
    proto_msg m;
    json_t *c = NULL;
    int up = 0, i;

    if (!g.netns)
        skip();
    unlink(g.fakelog);
    c = config_json(600, MAC_STATIC, "198.18.1.10");
    /* A second interface on DHCP. */
    json_array_append_new(json_object_get(c, "ifaces"),
                          json_pack("{s:s,s:b}", "mac", MAC_DHCP, "dhcp", 1));
    send_msg(ap, c);
    wait_reply(ap, 600, 10000, &m);
    if (!m.u.reply.ok)
        dump_actions(&m);
    assert_true(m.u.reply.ok);
    assert_true(json_is_false(json_object_get(m.root, "dry_net")));
    proto_msg_clear(&m);

    assert_int_equal(iface_has_addr(ap, 601, "cyrc0", "198.18.1.10/24", &up), 1);
    assert_true(up);
    assert_int_equal(sh("ip route show default | grep -q 'via 198.18.1.1 dev cyrc0'"),
                     0);
    gethostname(host, sizeof(host));
    assert_string_equal(host, "cyr-web1");
    assert_int_equal(sh("ip link show cyrc1 | grep -q ',UP'"), 0);
    /* udhcpc runs in the background: give it a moment to log. */
    snprintf(want, sizeof(want),
             "udhcpc -i cyrc1 -s %s/etc/cyrange/udhcpc.script -b -p %s/run/"
             "cyrange/udhcpc.cyrc1.pid\n", ap->root, ap->root);
    for (i = 0; i < 200; i++) {
        log = read_file(g.fakelog);
        if (log != NULL && strstr(log, want) != NULL)
            break;
        usleep(10000);
    }
    assert_non_null(log);
    assert_non_null(strstr(log, want));
    snprintf(want, sizeof(want), "%s/etc/cyrange/host.env", ap->root);
    assert_non_null(strstr(read_file(want), "\nCYR_IF_cyrc1_ADDR='dhcp'\n"));

    /* A new address replaces the old one; the same one twice is a no-op. */
    send_msg(ap, config_json(602, MAC_STATIC, "198.18.1.11"));
    wait_reply(ap, 602, 10000, &m);
    assert_true(m.u.reply.ok);
    assert_true(jarray_has(&m, "actions", "addr del 198.18.1.10/24 dev cyrc0"));
    proto_msg_clear(&m);
    assert_int_equal(iface_has_addr(ap, 603, "cyrc0", "198.18.1.11/24", &up), 1);
    assert_int_equal(iface_has_addr(ap, 604, "cyrc0", NULL, &up), 1);
    send_msg(ap, config_json(605, MAC_STATIC, "198.18.1.11"));
    wait_reply(ap, 605, 10000, &m);
    assert_true(m.u.reply.ok);
    proto_msg_clear(&m);
    assert_int_equal(iface_has_addr(ap, 606, "cyrc0", NULL, &up), 1);
}

/* ---- other channel kinds -------------------------------------------------------------- */

static void test_channel_pty(void **state)
{
    agent_proc ap;
    proto_err err;
    proto_msg m;
    char name[128], log[256];
    int master = -1, slave = -1;
    pid_t pid;

    (void)state;
    memset(&ap, 0, sizeof(ap));
    assert_int_equal(openpty(&master, &slave, name, NULL, NULL), 0);
    snprintf(log, sizeof(log), "%s/pty.log", g.dir);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (fd >= 0)
            dup2(fd, 2);
        execl(g.bin, g.bin, "--channel", name, "--foreground", "--root",
              g.dir, "--cmdline", "/dev/null", (char *)NULL);
        _exit(127);
    }
    /* The agent puts the pty in raw mode itself; our side too, or the
     * line discipline would echo our requests back at us. */
    {
        struct termios tio;
        tcgetattr(master, &tio);
        cfmakeraw(&tio);
        tcsetattr(master, TCSANOW, &tio);
    }
    close(slave);
    ap.pid = pid;
    ap.fd = master;
    ap.lfd = -1;
    ap.rd = proto_reader_new(0);
    wait_hello(&ap, 5000, &m);
    proto_msg_clear(&m);
    send_msg(&ap, proto_build_health_req(700, &err));
    wait_reply(&ap, 700, 3000, &m);
    assert_true(m.u.reply.ok);
    proto_msg_clear(&m);
    agent_stop(&ap);
}

static void test_channel_fifo_pair(void **state)
{
    agent_proc ap;
    proto_err err;
    proto_msg m;
    char in[256], out[256], log[256];
    pid_t pid;

    (void)state;
    memset(&ap, 0, sizeof(ap));
    snprintf(in, sizeof(in), "%s/in.fifo", g.dir);
    snprintf(out, sizeof(out), "%s/out.fifo", g.dir);
    snprintf(log, sizeof(log), "%s/fifo.log", g.dir);
    assert_int_equal(mkfifo(in, 0600), 0);
    assert_int_equal(mkfifo(out, 0600), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (fd >= 0)
            dup2(fd, 2);
        execl(g.bin, g.bin, "--channel", in, "--channel-out", out,
              "--foreground", "--root", g.dir, "--cmdline", "/dev/null",
              (char *)NULL);
        _exit(127);
    }
    ap.pid = pid;
    ap.lfd = -1;
    ap.rd = proto_reader_new(0);
    /* Our ends: we write requests into `in` and read answers from `out`. */
    ap.fd = open(out, O_RDWR | O_CLOEXEC);
    assert_true(ap.fd >= 0);
    wait_hello(&ap, 5000, &m);
    proto_msg_clear(&m);
    {
        int wfd = open(in, O_RDWR | O_CLOEXEC);
        int rfd = ap.fd;
        assert_true(wfd >= 0);
        ap.fd = wfd;
        send_msg(&ap, proto_build_health_req(900, &err));
        ap.fd = rfd;
        wait_reply(&ap, 900, 3000, &m);
        assert_true(m.u.reply.ok);
        proto_msg_clear(&m);
        close(wfd);
    }
    agent_stop(&ap);
}

static void test_hello_from_cmdline(void **state)
{
    agent_proc ap;
    proto_msg m;
    char cmdline[256], log[256];
    int sv[2], st = 0;
    pid_t pid;

    (void)state;
    memset(&ap, 0, sizeof(ap));
    snprintf(cmdline, sizeof(cmdline), "%s/cmdline", g.dir);
    write_file(cmdline, "BOOT_IMAGE=/vmlinuz console=ttyS0 "
                        "cyrange.exercise=\"ex one\" cyrange.team=12 "
                        "xcyrange.host=no cyrange.host=mail quiet\n", 0644);
    snprintf(log, sizeof(log), "%s/cmdline.log", g.dir);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (fd >= 0)
            dup2(fd, 2);
        dup2(sv[1], 0);
        dup2(sv[1], 1);
        unsetenv("CYRANGE_EXERCISE");
        unsetenv("CYRANGE_TEAM");
        unsetenv("CYRANGE_HOST");
        execl(g.bin, g.bin, "--channel", "-", "--root", g.dir, "--cmdline",
              cmdline, (char *)NULL);
        _exit(127);
    }
    close(sv[1]);
    ap.fd = sv[0];
    ap.lfd = -1;
    ap.rd = proto_reader_new(0);
    wait_hello(&ap, 5000, &m);
    assert_string_equal(m.u.hello.exercise, "ex one");
    assert_int_equal(m.u.hello.team, 12);
    assert_string_equal(m.u.hello.host, "mail");
    proto_msg_clear(&m);
    close(ap.fd);
    ap.fd = -1;
    waitpid(pid, &st, 0);
    assert_true(WIFEXITED(st));
    agent_stop(&ap);
}

static void test_channel_stdio(void **state)
{
    agent_proc ap;
    proto_err err;
    proto_msg m;
    char log[256];
    int sv[2], st = 0;
    long long t0;
    pid_t pid;

    (void)state;
    memset(&ap, 0, sizeof(ap));
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    snprintf(log, sizeof(log), "%s/stdio.log", g.dir);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (fd >= 0)
            dup2(fd, 2);
        dup2(sv[1], 0);
        dup2(sv[1], 1);
        execl(g.bin, g.bin, "--channel", "-", "--root", g.dir, "--cmdline",
              "/dev/null", (char *)NULL);
        _exit(127);
    }
    close(sv[1]);
    ap.fd = sv[0];
    ap.lfd = -1;
    ap.rd = proto_reader_new(0);
    wait_hello(&ap, 5000, &m);
    proto_msg_clear(&m);
    send_msg(&ap, proto_build_health_req(800, &err));
    wait_reply(&ap, 800, 3000, &m);
    assert_true(m.u.reply.ok);
    proto_msg_clear(&m);
    /* End of input ends a stdio agent. */
    t0 = now_ms();
    shutdown(ap.fd, SHUT_WR);
    while (waitpid(pid, &st, WNOHANG) == 0 && now_ms() - t0 < 3000)
        usleep(10000);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    agent_stop(&ap);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hello_on_connect, agent_setup,
                                        agent_teardown),
        cmocka_unit_test_setup_teardown(test_health, agent_setup,
                                        agent_teardown),
        cmocka_unit_test_setup_teardown(test_bad_input_replies, agent_setup,
                                        agent_teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_sends_hello,
                                        agent_setup, agent_teardown),
        cmocka_unit_test_setup_teardown(test_probe_refused_outside_range,
                                        agent_setup, agent_teardown),
        cmocka_unit_test_setup_teardown(test_probe_in_range, agent_setup,
                                        agent_teardown),
        cmocka_unit_test_setup_teardown(test_probe_unreachable_quick,
                                        agent_setup, agent_teardown),
        cmocka_unit_test_setup_teardown(test_probe_concurrent, agent_setup,
                                        agent_teardown),
        cmocka_unit_test_setup_teardown(test_check_http, check_setup,
                                        check_teardown),
        cmocka_unit_test_setup_teardown(test_check_http_failures,
                                        check_setup, check_teardown),
        cmocka_unit_test_setup_teardown(test_check_refused_outside_range,
                                        check_setup, check_teardown),
        cmocka_unit_test_setup_teardown(test_check_smtp, check_setup,
                                        check_teardown),
        cmocka_unit_test_setup_teardown(test_check_dns, check_setup,
                                        check_teardown),
        cmocka_unit_test_setup_teardown(test_check_dns_malformed,
                                        check_setup, check_teardown),
        cmocka_unit_test_setup_teardown(test_check_limit, check_setup,
                                        check_teardown),
        cmocka_unit_test_setup_teardown(test_exec_status_output, agent_setup,
                                        agent_teardown),
        cmocka_unit_test_setup_teardown(test_exec_timeout_kills_group,
                                        agent_setup, agent_teardown),
        cmocka_unit_test_setup_teardown(test_exec_large_output, agent_setup,
                                        agent_teardown),
        cmocka_unit_test_setup_teardown(test_exec_concurrent, agent_setup,
                                        agent_teardown),
        cmocka_unit_test_setup_teardown(test_config_dry, agent_setup_dry,
                                        agent_teardown),
        cmocka_unit_test_setup_teardown(test_config_unknown_mac,
                                        agent_setup_dry, agent_teardown),
        cmocka_unit_test_setup_teardown(test_config_real_network, agent_setup,
                                        agent_teardown),
        cmocka_unit_test(test_channel_pty),
        cmocka_unit_test(test_channel_fifo_pair),
        cmocka_unit_test(test_hello_from_cmdline),
        cmocka_unit_test(test_channel_stdio),
    };

    return cmocka_run_group_tests_name("agent", tests, group_setup,
                                       group_teardown);
}
