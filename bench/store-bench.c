/* store-bench — acknowledged report saves through the store: writes/s and
 * ack latency at an offered rate (500/s by default, open loop: latency is
 * measured from when each save was due, so a stalled loop shows) and at the
 * maximum rate (a fixed number of saves in flight), for the group-committed
 * store beside the naive reference in the same run: the same statements,
 * one transaction and one fsync per write, run on the loop.
 *
 *   store-bench [--dir DIR] [--rate N] [--seconds S] [--count N] [--inflight N]
 *
 * DIR must be on the disk the orchestrator will use (tmpfs makes fsync
 * free and the comparison meaningless).  Prints a table, the ratios and
 * whether the goal (500/s, p99 < 50 ms) is met.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "store.h"

#define GOAL_RATE 500.0
#define GOAL_P99_MS 50.0

typedef struct run {
    uv_loop_t *loop;
    store *st;
    uv_timer_t tick;
    json_t *doc;
    int naive;
    /* What to do. */
    int total;
    double rate;    /* > 0: paced; 0: keep `inflight` saves in flight */
    int inflight;
    /* Progress. */
    uint64_t t0;
    int issued;
    int done;
    int failed;
    int outstanding;
    uint64_t *due;  /* per save: the time its latency counts from (ns) */
    double *lat_ms;
    uint64_t t_end;
    char err[256];
} run;

typedef struct req {
    run *r;
    int i;
} req;

static void issue(run *r);

static void on_saved(const store_result *res, void *opaque)
{
    req *q = opaque;
    run *r = q->r;
    uint64_t now = uv_hrtime();
    r->lat_ms[q->i] = (double)(now - r->due[q->i]) / 1e6;
    if (res->rc != 0) {
        r->failed++;
        snprintf(r->err, sizeof(r->err), "%s", res->err.msg);
    }
    r->done++;
    r->outstanding--;
    free(q);
    if (r->done == r->total) {
        r->t_end = now;
        uv_timer_stop(&r->tick);
        return;
    }
    if (r->rate == 0)
        issue(r);
}

static int save_one(run *r, uint64_t due)
{
    req *q = malloc(sizeof(*q));
    int team = 1 + r->issued % 10;
    char title[64];
    if (q == NULL)
        return -1;
    q->r = r;
    q->i = r->issued;
    r->due[q->i] = due;
    snprintf(title, sizeof(title), "Incident report %d", r->issued);
    if (store_report_save(r->st, "bench", team, 0, 0, title, r->doc, 1, "bench",
                          (int64_t)(due / 1000000), on_saved, q) < 0) {
        free(q);
        return -1;
    }
    r->issued++;
    r->outstanding++;
    return 0;
}

/* Issues every save that is due (paced) or refills the window (max rate). */
static void issue(run *r)
{
    uint64_t now = uv_hrtime();
    if (r->rate > 0) {
        while (r->issued < r->total) {
            uint64_t due = r->t0 + (uint64_t)((double)r->issued * 1e9 / r->rate);
            if (due > now)
                break;
            if (save_one(r, due) < 0)
                break;
        }
    } else {
        while (r->issued < r->total && r->outstanding < r->inflight)
            if (save_one(r, uv_hrtime()) < 0)
                break;
    }
}

static void on_tick(uv_timer_t *t)
{
    issue(t->data);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void on_closed(void *opaque)
{
    *(int *)opaque = 1;
}

typedef struct result {
    double wps, p50, p99, max;
    uint64_t commits;
    int failed;
} result;

static void ack_exercise(const store_result *res, void *opaque)
{
    int *rc = opaque;
    *rc = res->rc == 0 ? 1 : -1;
}

static int bench_one(uv_loop_t *loop, const char *dir, int naive, double rate, int total,
                     int inflight, json_t *doc, result *out)
{
    char path[512], err[256];
    store_opts opts = { 0, naive };
    store_stats s;
    run r;
    int ok = 0, closed = 0, rc = -1;

    memset(&r, 0, sizeof(r));
    snprintf(path, sizeof(path), "%s/bench-%s-%s.db", dir, naive ? "naive" : "group",
             rate > 0 ? "paced" : "max");
    unlink(path);
    snprintf(err, sizeof(err), "%s-wal", path);
    unlink(err);
    snprintf(err, sizeof(err), "%s-shm", path);
    unlink(err);
    r.st = store_open_opts(loop, path, &opts, err, sizeof(err));
    if (r.st == NULL) {
        fprintf(stderr, "store-bench: %s\n", err);
        return -1;
    }
    r.loop = loop;
    r.doc = doc;
    r.naive = naive;
    r.total = total;
    r.rate = rate;
    r.inflight = inflight;
    r.due = calloc((size_t)total, sizeof(*r.due));
    r.lat_ms = calloc((size_t)total, sizeof(*r.lat_ms));
    if (r.due == NULL || r.lat_ms == NULL)
        goto cleanup;
    if (store_exercise_put(r.st, "bench", "bench", NULL, 0, "running", 1.0, 0, NULL,
                           ack_exercise, &ok) < 0)
        goto cleanup;
    while (ok == 0)
        uv_run(loop, UV_RUN_ONCE);
    if (ok < 0)
        goto cleanup;

    uv_timer_init(loop, &r.tick);
    r.tick.data = &r;
    r.t0 = uv_hrtime();
    uv_timer_start(&r.tick, on_tick, 0, 1);
    while (r.done < r.total)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&r.tick, NULL);

    store_stats_get(r.st, &s);
    qsort(r.lat_ms, (size_t)total, sizeof(double), cmp_double);
    out->wps = total / ((double)(r.t_end - r.t0) / 1e9);
    out->p50 = r.lat_ms[total / 2];
    out->p99 = r.lat_ms[(size_t)((double)total * 0.99)];
    out->max = r.lat_ms[total - 1];
    out->commits = s.commits;
    out->failed = r.failed;
    if (r.failed)
        fprintf(stderr, "store-bench: %d saves failed, last: %s\n", r.failed, r.err);
    rc = r.failed ? -1 : 0;

cleanup:
    store_close(r.st, on_closed, &closed);
    while (!closed)
        uv_run(loop, UV_RUN_ONCE);
    uv_run(loop, UV_RUN_NOWAIT);
    free(r.due);
    free(r.lat_ms);
    unlink(path);
    return rc;
}

static void row(const char *name, const result *x, int total)
{
    printf("  %-26s %9.0f %9.2f %9.2f %9.2f %8llu %8.1f\n", name, x->wps, x->p50, x->p99,
           x->max, (unsigned long long)x->commits, (double)total / (double)x->commits);
}

int main(int argc, char **argv)
{
    const char *dir = "build/bench/store";
    double rate = GOAL_RATE, seconds = 5;
    int count = 20000, inflight = 256, paced_total;
    uv_loop_t loop;
    json_t *doc;
    char *docs;
    result gp, np, gm, nm;
    struct statfs fs;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (strcmp(argv[i], "--rate") == 0 && i + 1 < argc)
            rate = atof(argv[++i]);
        else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc)
            count = atoi(argv[++i]);
        else if (strcmp(argv[i], "--inflight") == 0 && i + 1 < argc)
            inflight = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: store-bench [--dir DIR] [--rate N] [--seconds S] "
                            "[--count N] [--inflight N]\n");
            return 2;
        }
    }
    paced_total = (int)(rate * seconds);
    if (rate <= 0 || paced_total < 100 || count < 100 || inflight < 1 ||
        paced_total > 1000000 || count > 1000000) {
        fprintf(stderr, "store-bench: rate*seconds and count must be 100..1000000\n");
        return 2;
    }
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        fprintf(stderr, "store-bench: %s: %s\n", dir, strerror(errno));
        return 1;
    }
    if (statfs(dir, &fs) == 0 && fs.f_type == 0x01021994)
        fprintf(stderr, "store-bench: warning: %s is tmpfs, fsync costs nothing there\n", dir);

    /* A report of ordinary size: the four CYDER sections, ~1.5 kB. */
    doc = json_object();
    {
        static const char *const sections[] = { "detection", "response", "reporting",
                                                "recovery" };
        char text[400];
        memset(text, 'x', sizeof(text) - 1);
        text[sizeof(text) - 1] = '\0';
        for (int i = 0; i < 4; i++)
            json_object_set_new(doc, sections[i], json_string(text));
    }
    docs = json_dumps(doc, JSON_COMPACT);
    uv_loop_init(&loop);

    printf("store-bench: store_report_save, acknowledged when durable; %s; doc %zu bytes\n",
           dir, strlen(docs));
    printf("  paced: %.0f/s for %.0f s (%d saves, latency from due time); "
           "max: %d saves, %d in flight\n", rate, seconds, paced_total, count, inflight);
    free(docs);
    if (bench_one(&loop, dir, 0, rate, paced_total, 0, doc, &gp) < 0 ||
        bench_one(&loop, dir, 1, rate, paced_total, 0, doc, &np) < 0 ||
        bench_one(&loop, dir, 0, 0, count, inflight, doc, &gm) < 0 ||
        bench_one(&loop, dir, 1, 0, count, inflight, doc, &nm) < 0) {
        json_decref(doc);
        uv_loop_close(&loop);
        return 1;
    }
    printf("  %-26s %9s %9s %9s %9s %8s %8s\n", "", "writes/s", "p50 ms", "p99 ms", "max ms",
           "commits", "w/commit");
    row("group commit, paced", &gp, paced_total);
    row("naive (txn/write), paced", &np, paced_total);
    row("group commit, max rate", &gm, count);
    row("naive (txn/write), max", &nm, count);
    printf("  max-rate ratio group/naive: %.1fx writes/s; paced p99 ratio naive/group: %.1fx\n",
           gm.wps / nm.wps, np.p99 / gp.p99);
    if (rate >= GOAL_RATE)
        printf("  goal %.0f/s with p99 < %.0f ms (store alone): %s (%.0f/s, p99 %.2f ms)\n",
               GOAL_RATE, GOAL_P99_MS,
               gp.wps >= GOAL_RATE * 0.98 && gp.p99 < GOAL_P99_MS ? "met" : "NOT MET",
               gp.wps, gp.p99);
    json_decref(doc);
    uv_loop_close(&loop);
    return 0;
}
