/* capbench — runs the capture module alone, in its real configuration
 * (flow table and pcap files), on one interface for a bounded time or
 * until SIGINT/SIGTERM, then prints packets, drops and CPU per packet.
 *
 *   capbench -i IFACE -d DIR [-s MAX_SECONDS] [-B BUFFER_BYTES] [-b BATCH]
 *            [-w 0|1] [-F FLOWS] [-T TIMEOUT_MS] [-W FILE_BUFFER_BYTES]
 *
 * The last line is machine-readable: "capbench: key=value ...".
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "capture.h"
#include "flows.h"

typedef struct bench {
    uv_loop_t loop;
    uv_timer_t deadline;
    uv_timer_t expire;
    uv_signal_t sigint, sigterm;
    capture *cap;
    flows *ft;
    uint64_t expired;
    int closing;
} bench;

static void on_handle_closed(uv_handle_t *h)
{
    (void)h;
}

static void on_capture_closed(void *opaque)
{
    bench *b = opaque;
    uv_close((uv_handle_t *)&b->deadline, on_handle_closed);
    uv_close((uv_handle_t *)&b->expire, on_handle_closed);
    uv_close((uv_handle_t *)&b->sigint, on_handle_closed);
    uv_close((uv_handle_t *)&b->sigterm, on_handle_closed);
}

static void count_expired(const flows_rec *r, void *opaque)
{
    (void)r;
    ((bench *)opaque)->expired++;
}

static void stop(bench *b)
{
    capture_counters k;
    flows_counters fc;
    if (b->closing)
        return;
    b->closing = 1;
    capture_drain(b->cap);
    capture_stats(b->cap, &k);
    flows_get_counters(b->ft, &fc);
    printf("capbench: packets %llu, bytes %llu, written %llu in %llu file(s), kernel "
           "received %llu, kernel drops %llu, interface drops %llu, errors %llu%s%s\n",
           (unsigned long long)k.packets, (unsigned long long)k.bytes,
           (unsigned long long)k.written, (unsigned long long)k.files,
           (unsigned long long)k.kernel_received, (unsigned long long)k.kernel_drops,
           (unsigned long long)k.if_drops, (unsigned long long)k.errors,
           k.error[0] ? ": " : "", k.error);
    if (k.kernel_received != k.packets + k.kernel_drops)
        printf("capbench: note: kernel received %llu != packets + drops %llu\n",
               (unsigned long long)k.kernel_received,
               (unsigned long long)(k.packets + k.kernel_drops));
    printf("capbench: flows created %llu, active %llu, evicted %llu, expired %llu\n",
           (unsigned long long)fc.flows_created, (unsigned long long)fc.active,
           (unsigned long long)fc.evicted, (unsigned long long)b->expired);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    printf("capbench: packets=%llu drops=%llu if_drops=%llu cpu_s=%.3f ns_per_packet=%.1f\n",
           (unsigned long long)k.packets, (unsigned long long)k.kernel_drops,
           (unsigned long long)k.if_drops, cpu, k.packets ? cpu * 1e9 / (double)k.packets : 0);
    fflush(stdout);
    capture_close(b->cap, on_capture_closed, b);
}

static void on_deadline(uv_timer_t *t)
{
    stop(t->data);
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)signum;
    stop(s->data);
}

/* As the orchestrator will: hand idle flows out and read the counters
 * once a second (reading them often also shows that the kernel statistics
 * add up rather than restart at each read). */
static void on_expire(uv_timer_t *t)
{
    bench *b = t->data;
    capture_counters k;
    capture_stats(b->cap, &k);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    flows_expire(b->ft, (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000, 60000000,
                 count_expired, b);
}

int main(int argc, char **argv)
{
    static bench b;
    capture_opts o = {.write = 1, .prefix = "capbench"};
    double secs = 60;
    long nflows = 65536;
    char err[256];
    int opt;

    while ((opt = getopt(argc, argv, "i:d:s:B:b:w:F:T:W:")) != -1) {
        switch (opt) {
        case 'i': o.ifname = optarg; break;
        case 'd': o.dir = optarg; break;
        case 's': secs = atof(optarg); break;
        case 'B': o.buffer_bytes = (size_t)atol(optarg); break;
        case 'b': o.batch = atoi(optarg); break;
        case 'w': o.write = atoi(optarg); break;
        case 'F': nflows = atol(optarg); break;
        case 'T': o.timeout_ms = atoi(optarg); break;
        case 'W': o.file_buffer = (size_t)atol(optarg); break;
        default:
            fprintf(stderr, "usage: capbench -i IFACE -d DIR [-s MAX_SECONDS] [-B BUFFER_BYTES] "
                            "[-b BATCH] [-w 0|1] [-F FLOWS] [-T TIMEOUT_MS] "
                            "[-W FILE_BUFFER]\n");
            return 2;
        }
    }
    if (!o.ifname || (o.write && !o.dir) || secs <= 0 || secs > 600) {
        fprintf(stderr, "capbench: -i and -d are needed, -s at most 600\n");
        return 2;
    }
    /* -F 0: no flow table, to measure the capture and the files alone. */
    b.ft = flows_new(nflows ? (size_t)nflows : 1, err, sizeof(err));
    if (!b.ft) {
        fprintf(stderr, "capbench: %s\n", err);
        return 1;
    }
    o.ft = nflows ? b.ft : NULL;
    uv_loop_init(&b.loop);
    b.cap = capture_open(&b.loop, &o, err, sizeof(err));
    if (!b.cap) {
        fprintf(stderr, "capbench: %s\n", err);
        return 1;
    }
    uv_timer_init(&b.loop, &b.deadline);
    uv_timer_init(&b.loop, &b.expire);
    uv_signal_init(&b.loop, &b.sigint);
    uv_signal_init(&b.loop, &b.sigterm);
    b.deadline.data = b.expire.data = b.sigint.data = b.sigterm.data = &b;
    uv_timer_start(&b.deadline, on_deadline, (uint64_t)(secs * 1000), 0);
    uv_timer_start(&b.expire, on_expire, 1000, 1000);
    uv_signal_start(&b.sigint, on_signal, SIGINT);
    uv_signal_start(&b.sigterm, on_signal, SIGTERM);
    printf("capbench: capturing on %s\n", o.ifname);
    fflush(stdout);
    uv_run(&b.loop, UV_RUN_DEFAULT);
    uv_loop_close(&b.loop);
    flows_free(b.ft);
    return 0;
}
