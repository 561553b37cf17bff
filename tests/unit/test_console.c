/* Unit tests of the console hub and virt_console without a daemon: libvirt's
 * test:///default driver has domains but no consoles, so every open fails
 * for real (no such domain, or no console support) and the lifecycle around
 * it runs through the real thread pool, event thread and async handles.
 * Opening real consoles is tests/integration/console.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "console.h"
#include "virt.h"

typedef struct tv {
    int opened, closed, data;
    console_end why;
    char msg[512];
    int in_attach;          /* set while console_attach runs */
    int detach_on_close;    /* detach itself from on_closed */
    console_viewer *self;
} tv;

static int hub_done_calls;

static void tv_open(void *o)
{
    tv *t = o;
    assert_false(t->in_attach);
    t->opened++;
}

static void tv_data(void *o, const char *d, size_t n)
{
    tv *t = o;
    (void)d;
    (void)n;
    t->data++;
}

static void tv_closed(void *o, console_end why, const char *msg)
{
    tv *t = o;
    assert_false(t->in_attach);
    t->closed++;
    t->why = why;
    snprintf(t->msg, sizeof(t->msg), "%s", msg);
    if (t->detach_on_close) {
        console_detach(t->self);
        t->self = NULL;
    }
}

static const console_viewer_cbs tv_cbs = {tv_open, tv_data, tv_closed};

static void hub_done(void *o)
{
    (void)o;
    hub_done_calls++;
}

typedef struct fixture {
    uv_loop_t loop;
    virt_conn *conn;
    console_hub *hub;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    virt_err err = {0};
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(virt_events_init(&err), 0);
    f->conn = virt_open("test:///default", &err);
    assert_non_null(f->conn);
    assert_int_equal(virt_events_start(f->conn, NULL, NULL, &err), 0);
    f->hub = console_hub_new(&f->loop, f->conn);
    assert_non_null(f->hub);
    hub_done_calls = 0;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f->hub)
        console_hub_close(f->hub, hub_done, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    virt_close(f->conn);
    free(f);
    return 0;
}

static void tick_cb(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until `*flag` reaches `want` (bounded: 10 s). */
static void run_until(fixture *f, const int *flag, int want)
{
    uint64_t end = uv_hrtime() + 10000000000ull;
    uv_timer_t tick;
    uv_timer_init(&f->loop, &tick);
    uv_timer_start(&tick, tick_cb, 20, 20);
    while (*flag < want && uv_hrtime() < end)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(*flag, want);
}

static console_viewer *attach(fixture *f, const char *dom, tv *t)
{
    char err[256] = "";
    console_viewer *v;
    t->in_attach = 1;
    v = console_attach(f->hub, dom, &tv_cbs, t, err, sizeof(err));
    t->in_attach = 0;
    assert_non_null(v);
    t->self = v;
    return v;
}

static void test_missing_domain_fails_open(void **state)
{
    fixture *f = *state;
    tv t = {0};
    console_viewer *v = attach(f, "cyb-no-such-guest", &t);
    assert_int_equal(console_hub_streams(f->hub), 1);
    run_until(f, &t.closed, 1);
    assert_int_equal(t.opened, 0);
    assert_int_equal(t.why, CONSOLE_END_OPEN_FAILED);
    assert_non_null(strstr(t.msg, "cyb-no-such-guest"));
    /* An ended session is no longer joinable. */
    assert_int_equal(console_hub_streams(f->hub), 0);
    char err[128] = "";
    assert_int_equal(console_write(v, "x", 1, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "ended"));
    console_detach(v);
}

static void test_driver_without_consoles_fails_open(void **state)
{
    fixture *f = *state;
    tv t = {0};
    console_viewer *v = attach(f, "test", &t); /* test:///default's running guest */
    run_until(f, &t.closed, 1);
    assert_int_equal(t.why, CONSOLE_END_OPEN_FAILED);
    assert_non_null(strstr(t.msg, "cannot open the console of test"));
    console_detach(v);
}

static void test_viewers_share_one_stream(void **state)
{
    fixture *f = *state;
    tv a = {0}, b = {0};
    char err[128] = "";
    console_viewer *va = attach(f, "cyb-shared", &a);
    console_viewer *vb = attach(f, "cyb-shared", &b);
    assert_int_equal(console_hub_streams(f->hub), 1);
    assert_string_equal(console_viewer_domain(vb), "cyb-shared");
    /* Input before the stream is open is queued, not refused. */
    assert_int_equal(console_write(va, "root\r", 5, err, sizeof(err)), 0);
    run_until(f, &b.closed, 1);
    assert_int_equal(a.closed, 1);
    assert_int_equal(a.why, CONSOLE_END_OPEN_FAILED);
    console_detach(va);
    console_detach(vb);
}

static void test_detach_inside_on_closed(void **state)
{
    fixture *f = *state;
    tv a = {.detach_on_close = 1}, b = {.detach_on_close = 1};
    attach(f, "cyb-detach", &a);
    attach(f, "cyb-detach", &b);
    run_until(f, &a.closed, 1);
    assert_int_equal(b.closed, 1);
    assert_null(a.self);
    assert_null(b.self);
}

/* The last viewer leaves while the open is still running: the stream is
 * closed after the grace period, never reported to anyone. */
static void test_grace_closes_unwatched_stream(void **state)
{
    fixture *f = *state;
    tv a = {0};
    console_hub_set_grace(f->hub, 0);
    console_viewer *v = attach(f, "cyb-grace", &a);
    console_detach(v);
    assert_int_equal(console_hub_streams(f->hub), 1);
    for (int i = 0; i < 100 && console_hub_streams(f->hub) > 0; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT), uv_sleep(10);
    assert_int_equal(console_hub_streams(f->hub), 0);
    assert_int_equal(a.closed, 0);
}

/* Closing the hub while opens are in flight: viewers hear SHUTDOWN, done
 * runs only after they detach and every stream is gone. */
static void test_hub_close_while_opening(void **state)
{
    fixture *f = *state;
    tv a = {0}, b = {0};
    char err[128] = "";
    console_viewer *va = attach(f, "cyb-close-1", &a);
    console_viewer *vb = attach(f, "cyb-close-2", &b);
    console_hub_close(f->hub, hub_done, NULL);
    f->hub = NULL;
    assert_int_equal(a.closed, 1);
    assert_int_equal(a.why, CONSOLE_END_SHUTDOWN);
    assert_int_equal(b.closed, 1);
    assert_int_equal(console_write(va, "x", 1, err, sizeof(err)), -1);
    for (int i = 0; i < 50; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT), uv_sleep(10);
    assert_int_equal(hub_done_calls, 0); /* viewers still attached */
    console_detach(va);
    console_detach(vb);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(hub_done_calls, 1);
    /* The open failures that arrive after the close reach nobody. */
    assert_int_equal(a.closed, 1);
    assert_int_equal(b.closed, 1);
}

static void test_attach_after_close_refused(void **state)
{
    fixture *f = *state;
    tv a = {0};
    char err[128] = "";
    console_hub *h = f->hub;
    console_hub_close(h, hub_done, NULL);
    f->hub = NULL;
    /* done is deferred to the loop, so h is still valid here. */
    assert_null(console_attach(h, "test", &tv_cbs, &a, err, sizeof(err)));
    assert_non_null(strstr(err, "shutting down"));
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(hub_done_calls, 1);
}

static void test_virt_console_needs_event_thread(void **state)
{
    fixture *f = *state;
    virt_err err = {0};
    virt_conn *c = virt_open("test:///default", &err);
    static const virt_console_cbs cbs = {0};
    assert_non_null(c);
    assert_null(virt_console_open(&f->loop, c, "test", &cbs, NULL, &err));
    assert_non_null(strstr(err.msg, "virt_events_start"));
    virt_close(c);
}

typedef struct vt {
    int closed, done;
    virt_console_end why;
} vt;

static void vt_closed(void *o, virt_console_end why, const char *msg)
{
    vt *t = o;
    (void)msg;
    t->closed++;
    t->why = why;
}

static void vt_done(void *o)
{
    ((vt *)o)->done++;
}

/* virt_console alone: input queue bound, close during the open. */
static void test_virt_console_input_bound_and_close(void **state)
{
    fixture *f = *state;
    static const virt_console_cbs cbs = {NULL, NULL, vt_closed};
    virt_err err = {0};
    vt t = {0};
    char *big = calloc(1, VIRT_CONSOLE_IN_MAX);
    virt_console *vc = virt_console_open(&f->loop, f->conn, "test", &cbs, &t, &err);
    assert_non_null(vc);
    assert_non_null(big);
    assert_int_equal(virt_console_write(vc, big, VIRT_CONSOLE_IN_MAX - 1, &err), 0);
    assert_int_equal(virt_console_write(vc, big, 2, &err), -1);
    assert_non_null(strstr(err.msg, "full"));
    assert_int_equal(virt_console_write(vc, big, 1, &err), 0);
    free(big);
    virt_console_close(vc, vt_done, &t);
    run_until(f, &t.done, 1);
    assert_int_equal(t.closed, 0); /* nothing after close */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_missing_domain_fails_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_driver_without_consoles_fails_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_viewers_share_one_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_detach_inside_on_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grace_closes_unwatched_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hub_close_while_opening, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attach_after_close_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_virt_console_needs_event_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_virt_console_input_bound_and_close, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
