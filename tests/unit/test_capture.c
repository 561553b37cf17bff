/* capture: a real bridge (cybt<pid%1000>) with a veth pair, frames injected
 * into the free veth end with a raw AF_PACKET socket, captured on the
 * bridge through libpcap.  Counters, flows, the written pcap files (read
 * back with pcap_open_offline, and tshark when it is installed), rotation
 * and retention, filters, errors, and the bridge disappearing.  Needs root;
 * the devices are removed in the group teardown, also after a failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "capture.h"
#include "flows.h"

#define N_FRAMES 1000
#define WAIT_MS 5000

static char br[IFNAMSIZ], veth_in[IFNAMSIZ], veth_out[IFNAMSIZ], tmpdir[64];
static int tx = -1;
/* Each test's loop and open capture, so that the teardown can close them
 * when an assertion ends the test early. */
static uv_loop_t loop;
static capture *open_cap;

static int sh(const char *fmt, ...)
{
    char cmd[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    return system(cmd);
}

static void quiet(const char *ifname)
{
    /* No IPv6 means no router solicitations or MLD reports: the only
     * frames on the bridge are the test's own. */
    sh("echo 1 > /proc/sys/net/ipv6/conf/%s/disable_ipv6 2>/dev/null", ifname);
}

static int group_setup(void **state)
{
    unsigned id = (unsigned)getpid() % 1000;
    (void)state;
    if (geteuid() != 0) {
        fprintf(stderr, "test_capture: needs root (creates a bridge)\n");
        return -1;
    }
    snprintf(br, sizeof(br), "cybt%u", id);
    snprintf(veth_in, sizeof(veth_in), "cybt%ua", id);
    snprintf(veth_out, sizeof(veth_out), "cybt%ub", id);
    sh("ip link del %s 2>/dev/null; ip link del %s 2>/dev/null", br, veth_in);
    if (sh("ip link add %s type bridge mcast_snooping 0", br) != 0 ||
        sh("ip link add %s type veth peer name %s", veth_in, veth_out) != 0)
        return -1;
    quiet(br);
    quiet(veth_in);
    quiet(veth_out);
    if (sh("ip link set %s master %s", veth_in, br) != 0 ||
        sh("ip link set %s up && ip link set %s up && ip link set %s up", br, veth_in,
           veth_out) != 0)
        return -1;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/cybtcap.XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    tx = socket(AF_PACKET, SOCK_RAW, 0);
    if (tx < 0)
        return -1;
    struct sockaddr_ll sll = {.sll_family = AF_PACKET,
                              .sll_ifindex = (int)if_nametoindex(veth_out)};
    if (bind(tx, (struct sockaddr *)&sll, sizeof(sll)) != 0)
        return -1;
    /* Give the bridge port time to reach forwarding (no STP: at once). */
    usleep(200000);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (tx >= 0)
        close(tx);
    if (br[0])
        sh("ip link del %s 2>/dev/null; ip link del %s 2>/dev/null", veth_in, br);
    if (tmpdir[0])
        sh("rm -rf %s", tmpdir);
    return 0;
}

static void put16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* A 60-byte frame to an unknown unicast MAC (so the bridge passes it up
 * only because the capture made it promiscuous): TCP or UDP from
 * 198.18.5.1:sport to 198.18.5.2:80, with i in the payload. */
static size_t frame(uint8_t *f, int udp, uint16_t sport, uint32_t i)
{
    memset(f, 0, 60);
    memcpy(f, "\x02\xcb\x00\x00\x00\x01\x02\xcb\x00\x00\x00\x02", 12);
    put16(f + 12, 0x0800);
    uint8_t *ip = f + 14;
    ip[0] = 0x45;
    /* The IPv4 packet fills the 60 bytes: br_netfilter trims frames to
     * the IPv4 total length. */
    put16(ip + 2, 60 - 14);
    ip[8] = 64;
    ip[9] = udp ? 17 : 6;
    put16(ip + 12, 0xC612);
    put16(ip + 14, 0x0501);
    put16(ip + 16, 0xC612);
    put16(ip + 18, 0x0502);
    /* A valid header checksum: with br_netfilter loaded the bridge drops
     * IPv4 frames whose header does not verify. */
    uint32_t sum = 0;
    for (int k = 0; k < 20; k += 2)
        sum += (uint32_t)ip[k] << 8 | ip[k + 1];
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    put16(ip + 10, ~sum & 0xffff);
    uint8_t *l4 = ip + 20;
    put16(l4, sport);
    put16(l4 + 2, 80);
    if (udp) {
        put16(l4 + 4, 60 - 14 - 20);
        put16(l4 + 8, i >> 16);
        put16(l4 + 10, i);
    } else {
        l4[12] = 0x50;
        l4[13] = 0x10;
        put16(l4 + 20, i >> 16);
        put16(l4 + 22, i);
    }
    return 60;
}

static void send_frames(int n, int mix_udp)
{
    uint8_t f[60];
    for (int i = 0; i < n; i++) {
        size_t len = frame(f, mix_udp && i % 2, (uint16_t)(10000 + i % 10), (uint32_t)i);
        ssize_t w;
        int tries = 0;
        while ((w = send(tx, f, len, 0)) < 0 && tries++ < 100)
            usleep(1000); /* ENOBUFS under a burst: retry, bounded */
        assert_int_equal(w, (ssize_t)len);
    }
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs the loop until the capture has read `want` frames or WAIT_MS
 * passed; then on for extra_ms more (to see that nothing else comes). */
static void run_until(capture *c, uint64_t want, int extra_ms)
{
    capture_counters k;
    int64_t end = now_ms() + WAIT_MS;
    do {
        uv_run(&loop, UV_RUN_ONCE);
        capture_stats(c, &k);
    } while (k.packets < want && now_ms() < end);
    end = now_ms() + extra_ms;
    while (now_ms() < end)
        uv_run(&loop, UV_RUN_ONCE);
}

static void on_closed(void *opaque)
{
    *(int *)opaque = 1;
}

static void close_capture(void)
{
    int closed = 0;
    capture *c = open_cap;
    open_cap = NULL;
    capture_close(c, on_closed, &closed);
    while (!closed)
        uv_run(&loop, UV_RUN_ONCE);
}

static capture *start(const capture_opts *o)
{
    char err[256] = "";
    open_cap = capture_open(&loop, o, err, sizeof(err));
    if (!open_cap)
        fail_msg("capture_open on %s: %s", o->ifname, err);
    return open_cap;
}

static int test_setup(void **state)
{
    (void)state;
    open_cap = NULL;
    return uv_loop_init(&loop);
}

static int test_teardown(void **state)
{
    (void)state;
    if (open_cap)
        close_capture();
    uv_run(&loop, UV_RUN_DEFAULT);
    return uv_loop_close(&loop);
}

static long pcap_count(const char *path)
{
    char ebuf[PCAP_ERRBUF_SIZE];
    struct pcap_pkthdr *h;
    const u_char *d;
    long n = 0;
    pcap_t *p = pcap_open_offline(path, ebuf);
    if (!p) {
        print_error("%s: %s\n", path, ebuf);
        return -1;
    }
    while (pcap_next_ex(p, &h, &d) == 1)
        n++;
    pcap_close(p);
    return n;
}

static long tshark_count(const char *path)
{
    char cmd[600], line[64] = "";
    if (system("command -v tshark >/dev/null 2>&1") != 0)
        return -2;
    snprintf(cmd, sizeof(cmd), "tshark -r '%s' -T fields -e frame.number 2>/dev/null | wc -l",
             path);
    FILE *f = popen(cmd, "r");
    if (!f)
        return -1;
    if (!fgets(line, sizeof(line), f))
        line[0] = '\0';
    pclose(f);
    return atol(line);
}

static int promisc(const char *ifname)
{
    char path[128], line[32] = "";
    snprintf(path, sizeof(path), "/sys/class/net/%s/flags", ifname);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    if (!fgets(line, sizeof(line), f))
        line[0] = '\0';
    fclose(f);
    return (strtoul(line, NULL, 16) & IFF_PROMISC) != 0;
}

/* Names in tmpdir/sub starting with prefix, sorted; returns the count. */
static int list_files(const char *dir, const char *prefix, char names[][CAPTURE_PATH_MAX],
                      int max)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    assert_non_null(d);
    while ((e = readdir(d)) && n < max)
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
            snprintf(names[n++], CAPTURE_PATH_MAX, "%s/%s", dir, e->d_name);
    closedir(d);
    qsort(names, (size_t)n, CAPTURE_PATH_MAX, (int (*)(const void *, const void *))strcmp);
    return n;
}

static void subdir(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", tmpdir, name);
    assert_int_equal(mkdir(out, 0700), 0);
}

static void test_capture_basic(void **state)
{
    char err[256] = "", dir[128];
    (void)state;
    subdir(dir, sizeof(dir), "basic");
    flows *ft = flows_new(1000, err, sizeof(err));
    assert_non_null(ft);
    assert_int_equal(promisc(br), 0);
    capture_opts o = {.ifname = br, .segment = 2, .ft = ft, .write = 1, .dir = dir,
                      .prefix = "team1-lan"};
    capture *c = start(&o);
    /* The bridge passes forwarded frames up only in promiscuous mode. */
    assert_int_equal(promisc(br), 1);
    send_frames(N_FRAMES, 0);
    run_until(c, N_FRAMES, 300);
    assert_true(capture_drain(c) >= 0);

    capture_counters k;
    capture_stats(c, &k);
    assert_int_equal(k.packets, N_FRAMES);
    assert_int_equal(k.bytes, 60 * N_FRAMES);
    assert_int_equal(k.written, N_FRAMES);
    assert_int_equal(k.files, 1);
    assert_int_equal(k.kernel_drops, 0);
    assert_int_equal(k.kernel_received, N_FRAMES);
    assert_int_equal(k.errors, 0);
    assert_int_equal(k.failed, 0);
    char file[CAPTURE_PATH_MAX];
    snprintf(file, sizeof(file), "%s", k.file);
    assert_non_null(strstr(file, "/team1-lan-"));
    json_t *j = capture_counters_to_json(&k);
    assert_int_equal(json_integer_value(json_object_get(j, "packets")), N_FRAMES);
    assert_string_equal(json_string_value(json_object_get(j, "file")), file);
    json_decref(j);

    /* Ten flows of a hundred packets each, on segment 2. */
    flows_counters fc;
    flows_get_counters(ft, &fc);
    assert_int_equal(fc.frames, N_FRAMES);
    assert_int_equal(fc.flows_created, 10);
    for (uint16_t p = 10000; p < 10010; p++) {
        const flows_rec *r = flows_find(ft, 6, 0xC6120501u, p, 0xC6120502u, 80);
        assert_non_null(r);
        assert_int_equal(r->packets, N_FRAMES / 10);
        assert_int_equal(r->bytes, 60 * N_FRAMES / 10);
        assert_int_equal(r->segments, 1u << 2);
    }
    close_capture();
    assert_int_equal(promisc(br), 0);

    assert_int_equal(pcap_count(file), N_FRAMES);
    long t = tshark_count(file);
    if (t != -2)
        assert_int_equal(t, N_FRAMES);
    flows_free(ft);
}

static void test_rotation(void **state)
{
    char dir[128], path[CAPTURE_PATH_MAX];
    char names[64][CAPTURE_PATH_MAX];
    (void)state;
    subdir(dir, sizeof(dir), "rotation");
    /* Files this capture did not write, one even with its prefix. */
    snprintf(path, sizeof(path), "%s/other.pcap", dir);
    fclose(fopen(path, "w"));
    snprintf(path, sizeof(path), "%s/rot-19700101T000000Z-999999.pcap", dir);
    fclose(fopen(path, "w"));
    /* Header 24 + 10 records of 16 + 60: ten frames per file. */
    capture_opts o = {.ifname = br, .write = 1, .dir = dir, .prefix = "rot",
                      .rotate_bytes = 24 + 10 * 76, .keep_files = 3};
    capture *c = start(&o);
    send_frames(95, 0);
    run_until(c, 95, 0);
    capture_counters k;
    capture_stats(c, &k);
    assert_int_equal(k.packets, 95);
    assert_int_equal(k.written, 95);
    assert_int_equal(k.files, 10);
    close_capture();

    int n = list_files(dir, "rot-", names, 64);
    assert_int_equal(n, 4); /* three kept, plus the foreign one (first by name) */
    assert_non_null(strstr(names[0], "19700101T000000Z-999999"));
    assert_non_null(strstr(names[1], "-000007.pcap"));
    assert_non_null(strstr(names[2], "-000008.pcap"));
    assert_non_null(strstr(names[3], "-000009.pcap"));
    assert_int_equal(pcap_count(names[1]), 10);
    assert_int_equal(pcap_count(names[2]), 10);
    assert_int_equal(pcap_count(names[3]), 5);
    struct stat st;
    assert_int_equal(stat(names[1], &st), 0);
    assert_int_equal(st.st_size, 24 + 10 * 76);
    assert_int_equal(list_files(dir, "other", names, 64), 1);
}

static void test_rotation_time(void **state)
{
    char dir[128], names[8][CAPTURE_PATH_MAX];
    (void)state;
    subdir(dir, sizeof(dir), "rotation-time");
    capture_opts o = {.ifname = br, .write = 1, .dir = dir, .prefix = "t",
                      .rotate_seconds = 1, .timeout_ms = 50};
    capture *c = start(&o);
    send_frames(10, 0);
    run_until(c, 10, 1200);
    send_frames(7, 0);
    run_until(c, 17, 0);
    close_capture();
    assert_int_equal(list_files(dir, "t-", names, 8), 2);
    assert_int_equal(pcap_count(names[0]), 10);
    assert_int_equal(pcap_count(names[1]), 7);
}

static void test_filter(void **state)
{
    char err[256] = "";
    (void)state;
    flows *ft = flows_new(100, err, sizeof(err));
    capture_opts o = {.ifname = br, .ft = ft, .filter = "udp and dst port 80"};
    capture *c = start(&o);
    send_frames(N_FRAMES, 1);
    /* Half pass; wait on to see that the other half never comes. */
    run_until(c, N_FRAMES / 2, 300);
    capture_counters k;
    capture_stats(c, &k);
    assert_int_equal(k.packets, N_FRAMES / 2);
    assert_int_equal(k.written, 0);
    assert_int_equal(k.files, 0);
    assert_string_equal(k.file, "");
    flows_counters fc;
    flows_get_counters(ft, &fc);
    assert_int_equal(fc.flows_created, 5); /* odd frames: odd source ports */
    assert_non_null(flows_find(ft, 17, 0xC6120501u, 10001, 0xC6120502u, 80));
    assert_null(flows_find(ft, 6, 0xC6120501u, 10000, 0xC6120502u, 80));
    close_capture();
    flows_free(ft);
}

/* Immediate mode hands each frame over at once: capture_drain sees them
 * without waiting for a block timeout, here set long on purpose. */
static void test_immediate(void **state)
{
    (void)state;
    capture_opts o = {.ifname = br, .immediate = 1, .timeout_ms = 5000};
    capture *c = start(&o);
    send_frames(10, 0);
    long got = 0;
    int64_t end = now_ms() + 1000; /* well before the block timeout */
    while (got < 10 && now_ms() < end) {
        long n = capture_drain(c);
        assert_true(n >= 0);
        got += n;
        usleep(1000);
    }
    assert_int_equal(got, 10);
    capture_counters k;
    capture_stats(c, &k);
    assert_int_equal(k.packets, 10);
    close_capture();
}

static void test_errors(void **state)
{
    char err[256] = "";
    (void)state;
    capture_opts o = {.ifname = br, .filter = "tcp port"};
    assert_null(capture_open(&loop, &o, err, sizeof(err)));
    assert_non_null(strstr(err, "bad filter \"tcp port\""));

    capture_opts m = {.ifname = "cybnosuch0"};
    assert_null(capture_open(&loop, &m, err, sizeof(err)));
    assert_non_null(strstr(err, "cybnosuch0"));
    assert_non_null(strstr(err, "no such interface"));

    capture_opts w = {.ifname = br, .write = 1, .dir = "/nonexistent/dir", .prefix = "x"};
    assert_null(capture_open(&loop, &w, err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/dir/x-"));

    capture_opts bad = {.ifname = br, .write = 1, .dir = tmpdir, .prefix = "../x"};
    assert_null(capture_open(&loop, &bad, err, sizeof(err)));
    assert_non_null(strstr(err, "prefix"));
    /* Failed opens leave nothing on the loop and the bridge as it was. */
    assert_int_equal(uv_run(&loop, UV_RUN_NOWAIT), 0);
    assert_int_equal(promisc(br), 0);
}

static void test_interface_disappears(void **state)
{
    char err[256] = "", gone[IFNAMSIZ], dir[128];
    (void)state;
    subdir(dir, sizeof(dir), "gone");
    snprintf(gone, sizeof(gone), "%sz", br);
    assert_int_equal(sh("ip link add %s type bridge mcast_snooping 0", gone), 0);
    quiet(gone);
    assert_int_equal(sh("ip link set %s up", gone), 0);
    capture_opts o = {.ifname = gone, .write = 1, .dir = dir, .prefix = "gone"};
    open_cap = capture_open(&loop, &o, err, sizeof(err));
    if (!open_cap) {
        sh("ip link del %s", gone);
        fail_msg("capture_open: %s", err);
    }
    capture *c = open_cap;
    run_until(c, 0, 200);
    int rc = sh("ip link del %s", gone);
    capture_counters k;
    int64_t end = now_ms() + WAIT_MS;
    do {
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(10000);
        capture_stats(c, &k);
    } while (!k.failed && now_ms() < end);
    assert_int_equal(rc, 0);
    assert_int_equal(k.failed, 1);
    assert_non_null(strstr(k.error, gone));
    assert_int_equal(capture_drain(c), -1);
    /* Stopped, not spinning: no active handle keeps the loop running. */
    assert_int_equal(uv_run(&loop, UV_RUN_NOWAIT), 0);
    close_capture();
    char names[4][CAPTURE_PATH_MAX];
    assert_int_equal(list_files(dir, "gone-", names, 4), 1);
    assert_int_equal(pcap_count(names[0]), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_capture_basic, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_rotation, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_rotation_time, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_filter, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_immediate, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_errors, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_interface_disappears, test_setup, test_teardown),
    };
    return cmocka_run_group_tests_name("capture", tests, group_setup, group_teardown);
}
