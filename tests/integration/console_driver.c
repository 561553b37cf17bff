/* console_driver — drives a real guest's serial console through console_hub,
 * for tests/integration/console.sh.
 *
 *   console_driver [--uri URI] DOMAIN USER PASSWORD
 *
 * Logs in on the getty, runs commands and waits for their output (the
 * expected text is computed by the guest's shell, so the echo of the typed
 * command never matches), then checks: two viewers share one stream and
 * both see output, the scroll-back (bounded to CONSOLE_SCROLLBACK) is
 * replayed to late viewers and after a re-attach in the grace period, the
 * stream closes after the grace period and reopens, a second hub forcing
 * the console takes it over, and destroying the guest ends the viewer with
 * on_closed.  The guest is destroyed at the end.  Prints "ok"/"FAIL" lines
 * and figures; exit status 0 only when every check passed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "console.h"
#include "virt.h"

#define OUT_KEEP (2u << 20)
#define GRACE_MS 2000u

typedef struct vw {
    const char *name;
    console_viewer *v;
    int opened, closed, ndata;
    console_end why;
    char msg[512];
    char *buf;           /* output since attach (the last OUT_KEEP bytes) */
    size_t len;
    size_t base;         /* total offset of buf[0] */
    size_t first_len;    /* size of the first chunk (the replay) */
} vw;

static uv_loop_t loop;
static virt_conn *conn;
static const char *domain;
static int passed, failed;
static int hubs_done;

static void ok(const char *what)
{
    passed++;
    printf("ok   - %s\n", what);
    fflush(stdout);
}

static void fail(const char *what, const vw *w)
{
    failed++;
    printf("FAIL - %s\n", what);
    if (w != NULL) {
        size_t n = w->len < 600 ? w->len : 600;
        printf("       last output of %s: ", w->name);
        for (size_t i = w->len - n; i < w->len; i++) {
            unsigned char c = (unsigned char)w->buf[i];
            if (c == '\n')
                fputs("\\n", stdout);
            else if (c == '\r')
                fputs("\\r", stdout);
            else if (c < 32 || c > 126)
                printf("\\x%02x", c);
            else
                putchar(c);
        }
        putchar('\n');
    }
    fflush(stdout);
}

static void check(int cond, const char *what, const vw *w)
{
    if (cond)
        ok(what);
    else
        fail(what, w);
}

static void w_open(void *o)
{
    ((vw *)o)->opened++;
}

static void w_data(void *o, const char *d, size_t n)
{
    vw *w = o;
    if (w->ndata++ == 0)
        w->first_len = n;
    if (w->len + n > OUT_KEEP) {
        size_t drop = w->len + n - OUT_KEEP;
        if (drop > w->len)
            drop = w->len;
        memmove(w->buf, w->buf + drop, w->len - drop);
        w->len -= drop;
        w->base += drop;
    }
    if (n > OUT_KEEP)
        n = OUT_KEEP; /* not reached: chunks are at most 256 KiB */
    memcpy(w->buf + w->len, d, n);
    w->len += n;
}

static void w_closed(void *o, console_end why, const char *msg)
{
    vw *w = o;
    w->closed++;
    w->why = why;
    snprintf(w->msg, sizeof(w->msg), "%s", msg);
}

static const console_viewer_cbs wcbs = {w_open, w_data, w_closed};

static double now_s(void)
{
    return (double)uv_hrtime() / 1e9;
}

static void tick_cb(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until pred(arg) holds or `secs` pass.  1 when it held. */
static int run_until(int (*pred)(void *), void *arg, double secs)
{
    uv_timer_t tick;
    double end = now_s() + secs;
    int held;
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, tick_cb, 50, 50);
    while (!(held = pred(arg)) && now_s() < end)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    return held;
}

static int never(void *arg)
{
    (void)arg;
    return 0;
}

static void pump(double secs)
{
    run_until(never, NULL, secs);
}

typedef struct want {
    vw *w;
    const char *text;
    size_t since;        /* total offset to search from */
} want;

static int has_text(void *arg)
{
    want *q = arg;
    vw *w = q->w;
    size_t from = q->since > w->base ? q->since - w->base : 0;
    if (from >= w->len)
        return 0;
    return memmem(w->buf + from, w->len - from, q->text, strlen(q->text)) != NULL;
}

static size_t total(const vw *w)
{
    return w->base + w->len;
}

static int wait_text(vw *w, const char *text, size_t since, double secs)
{
    want q = {w, text, since};
    return run_until(has_text, &q, secs);
}

static int is_open(void *arg)
{
    return ((vw *)arg)->opened > 0 || ((vw *)arg)->closed > 0;
}

static int is_closed(void *arg)
{
    return ((vw *)arg)->closed > 0;
}

static int type_text(vw *w, const char *s)
{
    char err[256];
    if (console_write(w->v, s, strlen(s), err, sizeof(err)) < 0) {
        printf("       write from %s failed: %s\n", w->name, err);
        return -1;
    }
    return 0;
}

static int attach(console_hub *h, vw *w, const char *name)
{
    char err[256];
    memset(w, 0, sizeof(*w));
    w->name = name;
    w->buf = malloc(OUT_KEEP);
    if (w->buf == NULL)
        return -1;
    w->v = console_attach(h, domain, &wcbs, w, err, sizeof(err));
    if (w->v == NULL) {
        printf("       attach %s: %s\n", name, err);
        return -1;
    }
    return 0;
}

static void detach(vw *w)
{
    console_detach(w->v);
    w->v = NULL;
}

static void vw_free(vw *w)
{
    free(w->buf);
    w->buf = NULL;
}

/* Types `echo cyrange-$((n+1))` from `from` and waits for cyrange-<n+1>
 * in every viewer of `seen`.  The round trip in seconds, or -1. */
static double echo_roundtrip(vw *from, vw **seen, int nseen, double secs)
{
    char cmd[64], expect[32];
    size_t since[8];
    unsigned n = (unsigned)rand() % 900000 + 100000;
    double t0;
    snprintf(cmd, sizeof(cmd), "echo cyrange-$((%u+1))\r", n);
    snprintf(expect, sizeof(expect), "cyrange-%u", n + 1);
    for (int i = 0; i < nseen; i++)
        since[i] = total(seen[i]);
    t0 = now_s();
    if (type_text(from, cmd) < 0)
        return -1;
    for (int i = 0; i < nseen; i++)
        if (!wait_text(seen[i], expect, since[i], secs))
            return -1;
    return now_s() - t0;
}

static void destroy_work(uv_work_t *w)
{
    virt_err err = {0};
    if (virt_domain_destroy(conn, domain, &err) < 0)
        snprintf((char *)w->data, 512, "%s", err.msg);
}

static int destroy_finished;

static void destroy_after(uv_work_t *w, int status)
{
    (void)w;
    (void)status;
    destroy_finished = 1;
}

static int destroy_is_done(void *arg)
{
    (void)arg;
    return destroy_finished;
}

static void print_handle(uv_handle_t *hd, void *arg)
{
    (void)arg;
    printf("       open handle: %s%s\n", uv_handle_type_name(uv_handle_get_type(hd)),
           uv_is_closing(hd) ? " (closing)" : "");
}

static void hub_done(void *o)
{
    (void)o;
    hubs_done++;
}

static int two_done(void *arg)
{
    (void)arg;
    return hubs_done == 2;
}

int main(int argc, char **argv)
{
    const char *uri = NULL, *user, *pass;
    virt_err err = {0};
    console_hub *h1 = NULL, *h2 = NULL;
    vw a = {0}, b = {0}, c = {0}, d = {0}, e = {0}, f = {0};
    vw *all[] = {&a, &b, &c, &d, &e, &f};
    vw *pair[2];
    char line[256], destroy_err[512] = "";
    uv_work_t destroy_req;
    double t, t0;
    int argi = 1;

    if (argc > 2 && strcmp(argv[1], "--uri") == 0) {
        uri = argv[2];
        argi = 3;
    }
    if (argc - argi != 3) {
        fprintf(stderr, "usage: console_driver [--uri URI] DOMAIN USER PASSWORD\n");
        return 2;
    }
    domain = argv[argi];
    user = argv[argi + 1];
    pass = argv[argi + 2];
    srand((unsigned)time(NULL) ^ (unsigned)getpid());

    uv_loop_init(&loop);
    if (virt_events_init(&err) < 0 || (conn = virt_open(uri, &err)) == NULL ||
        virt_events_start(conn, NULL, NULL, &err) < 0) {
        printf("FAIL - libvirt: %s\n", err.msg);
        return 1;
    }
    h1 = console_hub_new(&loop, conn);
    console_hub_set_grace(h1, GRACE_MS);

    /* --- one viewer: open, log in, run a command ------------------------- */
    t0 = now_s();
    if (attach(h1, &a, "A") < 0 || !run_until(is_open, &a, 30) || !a.opened) {
        fail("viewer A: the console opens", NULL);
        printf("       %s\n", a.msg);
        goto out;
    }
    snprintf(line, sizeof(line), "viewer A: the console opens (%.0f ms)", (now_s() - t0) * 1000);
    ok(line);

    /* The getty may still be starting: nudge it until it prompts. */
    t0 = now_s();
    {
        int got = 0;
        for (int i = 0; i < 40 && !got; i++) {
            size_t since = total(&a);
            type_text(&a, "\r");
            got = wait_text(&a, "login:", since, 3);
        }
        check(got, "a login: prompt after a newline", &a);
        if (!got)
            goto out;
    }
    {
        size_t since = total(&a);
        snprintf(line, sizeof(line), "%s\r", user);
        type_text(&a, line);
        check(wait_text(&a, "assword:", since, 15), "password prompt after the user name", &a);
        since = total(&a);
        snprintf(line, sizeof(line), "%s\r", pass);
        type_text(&a, line);
        pair[0] = &a;
        t = echo_roundtrip(&a, pair, 1, 30);
        snprintf(line, sizeof(line), "logged in as %s; echo cyrange-$((N+1)) printed cyrange-<N+1>",
                 user);
        check(t >= 0, line, &a);
        if (t < 0)
            goto out;
    }
    {
        double best = 1e9, sum = 0;
        int n = 0;
        for (int i = 0; i < 10; i++) {
            t = echo_roundtrip(&a, pair, 1, 10);
            if (t < 0)
                break;
            sum += t;
            best = t < best ? t : best;
            n++;
        }
        snprintf(line, sizeof(line), "10 command round trips (keys in, output out): "
                 "mean %.1f ms, best %.1f ms", n ? sum / n * 1000 : 0.0, best * 1000);
        check(n == 10, line, &a);
    }

    /* --- two viewers share the stream ------------------------------------ */
    if (attach(h1, &b, "B") < 0)
        goto out;
    check(console_hub_streams(h1) == 1, "a second viewer shares the one stream", NULL);
    check(run_until(is_open, &b, 10) && b.opened, "viewer B: on_open", &b);
    check(wait_text(&b, "cyrange-", 0, 5), "viewer B: the scroll-back is replayed (earlier output)",
          &b);
    pair[0] = &a;
    pair[1] = &b;
    t = echo_roundtrip(&b, pair, 2, 20);
    check(t >= 0, "input typed in B runs; output reaches A and B", &b);
    t = echo_roundtrip(&a, pair, 2, 20);
    check(t >= 0, "input typed in A runs; output reaches A and B", &a);

    /* --- the scroll-back is bounded -------------------------------------- */
    {
        size_t since = total(&a);
        unsigned n = (unsigned)rand() % 900000 + 100000;
        double rate;
        snprintf(line, sizeof(line), "seq 1 12000; echo cyrange-$((%u+1))\r", n);
        t0 = now_s();
        type_text(&a, line);
        snprintf(line, sizeof(line), "cyrange-%u", n + 1);
        check(wait_text(&a, line, since, 120), "a flood of ~80 KB of output arrives whole", &a);
        rate = (double)(total(&a) - since) / (now_s() - t0);
        check(memmem(a.buf, a.len, "\r\n11999\r\n12000\r\n", 16) != NULL,
              "the flood's last lines are intact", &a);
        printf("       figure: console output %.0f KB/s under TCG\n", rate / 1024);
        if (attach(h1, &c, "C") < 0)
            goto out;
        run_until(is_open, &c, 10);
        wait_text(&c, line, 0, 5);
        snprintf(line, sizeof(line), "a late viewer gets exactly the last %u bytes (got %zu)",
                 CONSOLE_SCROLLBACK, c.first_len);
        check(c.first_len == CONSOLE_SCROLLBACK, line, &c);
        snprintf(line, sizeof(line), "cyrange-%u", n + 1);
        check(memmem(c.buf, c.first_len, line, strlen(line)) != NULL,
              "... and they end with the newest output", &c);
    }

    /* --- detach everyone, re-attach within the grace period -------------- */
    detach(&a);
    detach(&b);
    detach(&c);
    pump(0.2);
    check(console_hub_streams(h1) == 1, "the stream outlives its last viewer (grace period)", NULL);
    vw_free(&a);
    vw_free(&b);
    vw_free(&c);
    if (attach(h1, &d, "D") < 0)
        goto out;
    check(run_until(is_open, &d, 5) && d.opened && wait_text(&d, "cyrange-", 0, 5),
          "re-attached within the grace period: the scroll-back is replayed", &d);
    pair[0] = &d;
    check(echo_roundtrip(&d, pair, 1, 20) >= 0, "the re-attached viewer types and sees output", &d);

    /* --- after the grace period the stream closes, and reopens ----------- */
    detach(&d);
    vw_free(&d);
    pump(GRACE_MS / 1000.0 + 1.5);
    check(console_hub_streams(h1) == 0, "no stream once the grace period is over", NULL);
    if (attach(h1, &e, "E") < 0)
        goto out;
    check(run_until(is_open, &e, 20) && e.opened, "a new viewer reopens the console", &e);
    check(e.len == 0, "a reopened stream has no stale scroll-back", &e);
    pair[0] = &e;
    check(echo_roundtrip(&e, pair, 1, 20) >= 0, "the shell is still logged in on the reopened console",
          &e);

    /* --- another client forces the console: takeover -------------------- */
    h2 = console_hub_new(&loop, conn);
    t0 = now_s();
    if (attach(h2, &f, "F") < 0)
        goto out;
    check(run_until(is_open, &f, 20) && f.opened, "a second hub opens the same console (FORCE)", &f);
    check(run_until(is_closed, &e, 20), "the first hub's viewer gets on_closed on takeover", &e);
    snprintf(line, sizeof(line), "takeover reason: %s (%s), %.0f ms", 
             e.why == CONSOLE_END_ERROR ? "error" : e.why == CONSOLE_END_EOF ? "eof" : "other",
             e.msg, (now_s() - t0) * 1000);
    check(e.why == CONSOLE_END_ERROR || e.why == CONSOLE_END_EOF, line, &e);
    check(type_text(&e, "x") < 0, "writing to an ended console fails", &e);
    pair[0] = &f;
    check(echo_roundtrip(&f, pair, 1, 20) >= 0, "the new owner types and sees output", &f);

    /* --- the guest is destroyed while attached --------------------------- */
    destroy_req.data = destroy_err;
    t0 = now_s();
    uv_queue_work(&loop, &destroy_req, destroy_work, destroy_after);
    check(run_until(is_closed, &f, 30), "destroying the guest ends the viewer with on_closed", &f);
    snprintf(line, sizeof(line), "destroy reason: %s (%s), %.0f ms after the destroy began",
             f.why == CONSOLE_END_ERROR ? "error" : f.why == CONSOLE_END_EOF ? "eof" : "other",
             f.msg, (now_s() - t0) * 1000);
    check(f.why == CONSOLE_END_ERROR || f.why == CONSOLE_END_EOF, line, &f);
    check(run_until(destroy_is_done, NULL, 30) && destroy_err[0] == '\0',
          "virt_domain_destroy succeeded", NULL);
    if (destroy_err[0])
        printf("       %s\n", destroy_err);
    check(console_hub_streams(h2) == 0, "no stream is left after the guest died", NULL);

out:
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (all[i]->v)
            detach(all[i]);
    console_hub_close(h1, hub_done, NULL);
    if (h2)
        console_hub_close(h2, hub_done, NULL);
    else
        hubs_done++;
    check(run_until(two_done, NULL, 10), "both hubs close and free everything", NULL);
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        vw_free(all[i]);
    uv_run(&loop, UV_RUN_NOWAIT);
    if (uv_loop_close(&loop) != 0) {
        uv_walk(&loop, print_handle, NULL);
        fail("no libuv handle or request is left", NULL);
    } else {
        ok("no libuv handle or request is left");
    }
    virt_close(conn);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 && passed > 0 ? 0 : 1;
}
