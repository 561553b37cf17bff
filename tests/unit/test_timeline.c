/* Unit tests of the per-team attack clock, on a real libuv loop.  The
 * scenario runs at speed 1000 (one nominal second = 1 ms of wall time), so
 * the tests check order and decisions, never timings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scenario.h"
#include "timeline.h"

static const char *SCN =
"{ \"format\": 1, \"id\": \"tl\", \"title\": \"timeline test\", \"level\": \"A\",\n"
"  \"duration\": \"1h\", \"speed\": 1000,\n"
"  \"segments\": [ { \"name\": \"lan\", \"cidr\": \"198.18.1.0/24\", \"role\": \"internal\" } ],\n"
"  \"hosts\": [\n"
"    { \"name\": \"att\", \"role\": \"attacker\", \"nics\": [ { \"segment\": \"lan\", \"address\": \"198.18.1.66\" } ] },\n"
"    { \"name\": \"web\", \"role\": \"server\", \"nics\": [ { \"segment\": \"lan\", \"address\": \"198.18.1.10\" } ] } ],\n"
"  \"checks\": [ { \"id\": \"web-up\", \"type\": \"tcp\", \"from\": \"att\", \"target\": \"web\", \"port\": 80 } ],\n"
"  \"timeline\": [\n"
"    { \"id\": \"a\", \"at\": \"10s\", \"actor\": \"att\", \"action\": \"recon.portscan\", \"target\": \"web\", \"params\": { \"ports\": \"80\" } },\n"
"    { \"id\": \"b\", \"after\": \"a\", \"delay\": \"20s\", \"jitter\": \"5s\", \"actor\": \"att\", \"action\": \"recon.portscan\", \"target\": \"web\", \"params\": { \"ports\": \"22\" } },\n"
"    { \"id\": \"c\", \"after\": \"b\", \"delay\": \"10s\", \"actor\": \"att\", \"action\": \"recon.portscan\", \"target\": \"web\", \"params\": { \"ports\": \"23\" },\n"
"      \"when\": { \"step\": \"b\", \"outcome\": \"succeeded\" }, \"otherwise\": \"alt\" },\n"
"    { \"id\": \"alt\", \"on_demand\": true, \"actor\": \"att\", \"action\": \"recon.portscan\", \"target\": \"web\", \"params\": { \"ports\": \"24\" } },\n"
"    { \"id\": \"d\", \"at\": \"50m\", \"actor\": \"att\", \"action\": \"recon.portscan\", \"target\": \"web\", \"params\": { \"ports\": \"25\" },\n"
"      \"when\": { \"check\": \"web-up\", \"state\": \"down\" } },\n"
"    { \"id\": \"press\", \"at\": \"55m\", \"action\": \"inject.message\", \"params\": { \"from\": \"x\", \"subject\": \"y\", \"body\": \"z\" } }\n"
"  ] }\n";

typedef struct rec {
    timeline *tl;
    char order[32][16];
    int n;
    int fail_b;          /* report step b as failed */
    int cond_calls;
    int cond_holds;
    int stop_after;      /* stop the loop after this many runs */
    uv_loop_t *loop;
} rec;

static void on_run(timeline *tl, int step, void *opaque)
{
    rec *r = opaque;
    const scenario *s = NULL;
    (void)s;
    snprintf(r->order[r->n++], sizeof(r->order[0]), "%d", step);
    /* Results arrive at once, except when a test wants otherwise. */
    timeline_step_result(tl, step, !(r->fail_b && step == 1), "done");
    if (r->stop_after && r->n >= r->stop_after)
        uv_stop(r->loop);
}

static void on_condition(timeline *tl, int step, const json_t *when, void *opaque)
{
    rec *r = opaque;
    assert_non_null(json_object_get(when, "check"));
    r->cond_calls++;
    timeline_condition_result(tl, step, r->cond_holds, "check web-up is up");
}

static scenario *load(void)
{
    diag_list d;
    diag_init(&d);
    scenario *s = scenario_load_buffer("tl.json", SCN, strlen(SCN), &d);
    if (s == NULL)
        diag_print(&d, stderr);
    diag_clear(&d);
    assert_non_null(s);
    return s;
}

static void run_until_done(uv_loop_t *loop, timeline *tl, const scenario *s)
{
    /* Bounded: the whole hour of exercise time is 3.6 s of wall time. */
    for (int i = 0; i < 20000; i++) {
        int busy = 0;
        for (size_t k = 0; k < s->n_steps; k++) {
            timeline_step_state st = timeline_state(tl, (int)k);
            busy |= st == TL_PENDING || st == TL_SCHEDULED || st == TL_CHECKING ||
                    st == TL_RUNNING;
        }
        if (!busy)
            return;
        uv_run(loop, UV_RUN_ONCE);
    }
    fail_msg("timeline did not finish");
}

static void free_tl(uv_loop_t *loop, timeline *tl)
{
    timeline_free(tl);
    uv_run(loop, UV_RUN_DEFAULT);
}

static void test_order_and_branch(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    scenario *s = load();
    rec r = { 0 };
    r.loop = &loop;
    timeline_ops ops = { on_run, on_condition, NULL };
    timeline *tl = timeline_new(&loop, s, 1, 42, &ops, &r);
    assert_int_equal(timeline_start(tl), 0);
    assert_int_equal(timeline_start(tl), -1);
    run_until_done(&loop, tl, s);
    /* a, b, c (b succeeded), then d is decided by the check (up: not
     * taken), then the press inject. */
    assert_int_equal(r.n, 4);
    assert_string_equal(r.order[0], "0");
    assert_string_equal(r.order[1], "1");
    assert_string_equal(r.order[2], "2");
    assert_string_equal(r.order[3], "5");
    assert_int_equal(r.cond_calls, 1);
    assert_int_equal(timeline_state(tl, 4), TL_NOT_TAKEN);
    assert_int_equal(timeline_state(tl, 3), TL_ON_DEMAND);
    /* b is due 20 s plus 0-5 s of jitter after a started. */
    int64_t gap = timeline_step_due_ms(tl, 1) - timeline_step_time_ms(tl, 0);
    assert_true(gap >= 20000 && gap <= 25000);
    free_tl(&loop, tl);
    scenario_free(s);
    uv_loop_close(&loop);
}

static void test_failed_parent_takes_otherwise(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    scenario *s = load();
    rec r = { 0 };
    r.loop = &loop;
    r.fail_b = 1;
    r.cond_holds = 1;
    timeline_ops ops = { on_run, on_condition, NULL };
    timeline *tl = timeline_new(&loop, s, 1, 42, &ops, &r);
    timeline_start(tl);
    run_until_done(&loop, tl, s);
    assert_int_equal(timeline_state(tl, 1), TL_FAILED);
    assert_int_equal(timeline_state(tl, 2), TL_NOT_TAKEN);
    assert_int_equal(timeline_state(tl, 3), TL_SUCCEEDED);   /* alt ran */
    assert_int_equal(timeline_state(tl, 4), TL_SUCCEEDED);   /* check held */
    free_tl(&loop, tl);
    scenario_free(s);
    uv_loop_close(&loop);
}

static void idle_done(uv_timer_t *t)
{
    uv_stop(t->loop);
}

/* Runs the loop for `ms` of wall time (the timeline's timer is stopped
 * while paused, so only this timer keeps the loop alive). */
static void idle_ms(uv_loop_t *loop, int ms)
{
    uv_timer_t t;
    uv_timer_init(loop, &t);
    uv_timer_start(&t, idle_done, (uint64_t)ms, 0);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

static void test_pause_resume_skip(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    scenario *s = load();
    rec r = { 0 };
    r.loop = &loop;
    r.stop_after = 1;
    timeline_ops ops = { on_run, on_condition, NULL };
    timeline *tl = timeline_new(&loop, s, 2, 7, &ops, &r);
    timeline_start(tl);
    uv_run(&loop, UV_RUN_DEFAULT);          /* until a has run */
    assert_int_equal(r.n, 1);
    assert_int_equal(timeline_pause(tl), 0);
    assert_int_equal(timeline_pause(tl), -1);
    int64_t frozen = timeline_elapsed_ms(tl);
    idle_ms(&loop, 60);                      /* 60 nominal seconds */
    assert_int_equal(r.n, 1);                /* nothing ran while paused */
    assert_int_equal(timeline_elapsed_ms(tl), frozen);
    assert_int_equal(timeline_skip(tl, 1), 0);
    assert_int_equal(timeline_state(tl, 1), TL_SKIPPED);
    assert_int_equal(timeline_skip(tl, 0), -1);   /* already done */
    r.stop_after = 0;
    assert_int_equal(timeline_resume(tl), 0);
    run_until_done(&loop, tl, s);
    /* c's condition (b succeeded) fails after the skip: alt runs. */
    assert_int_equal(timeline_state(tl, 2), TL_NOT_TAKEN);
    assert_int_equal(timeline_state(tl, 3), TL_SUCCEEDED);
    free_tl(&loop, tl);
    scenario_free(s);
    uv_loop_close(&loop);
}

static void test_run_now_and_reset(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    scenario *s = load();
    rec r = { 0 };
    r.loop = &loop;
    timeline_ops ops = { on_run, on_condition, NULL };
    timeline *tl = timeline_new(&loop, s, 1, 42, &ops, &r);
    assert_int_equal(timeline_run_now(tl, 3), -1);   /* clock not started */
    timeline_start(tl);
    assert_int_equal(timeline_run_now(tl, 3), 0);    /* on-demand step */
    assert_int_equal(timeline_state(tl, 3), TL_SUCCEEDED);
    assert_int_equal(timeline_run_now(tl, 3), -1);   /* already ran */
    assert_int_equal(timeline_run_now(tl, 4), 0);    /* forced: no condition */
    assert_int_equal(r.cond_calls, 0);
    timeline_reset(tl);
    assert_int_equal(timeline_clock_state(tl), TL_STOPPED);
    assert_int_equal(timeline_elapsed_ms(tl), 0);
    for (size_t i = 0; i < s->n_steps; i++)
        assert_true(timeline_state(tl, (int)i) == TL_PENDING ||
                    timeline_state(tl, (int)i) == TL_ON_DEMAND);
    json_t *j = timeline_to_json(tl);
    assert_int_equal(json_array_size(json_object_get(j, "steps")), s->n_steps);
    assert_string_equal(json_string_value(json_object_get(j, "clock")), "stopped");
    json_decref(j);
    free_tl(&loop, tl);
    scenario_free(s);
    uv_loop_close(&loop);
}

static void test_jitter_reproducible(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    scenario *s = load();
    int64_t gaps[3];
    for (int k = 0; k < 3; k++) {
        rec r = { 0 };
        r.loop = &loop;
        timeline_ops ops = { on_run, on_condition, NULL };
        /* runs 0 and 1: same team and seed; run 2: another team. */
        timeline *tl = timeline_new(&loop, s, k == 2 ? 3 : 1, 99, &ops, &r);
        timeline_start(tl);
        run_until_done(&loop, tl, s);
        gaps[k] = timeline_step_due_ms(tl, 1) - timeline_step_time_ms(tl, 0);
        free_tl(&loop, tl);
    }
    /* Same seed and team: the same jitter draw. */
    assert_int_equal(gaps[0], gaps[1]);
    assert_true(gaps[2] >= 20000 && gaps[2] <= 25000);
    scenario_free(s);
    uv_loop_close(&loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_branch),
        cmocka_unit_test(test_failed_parent_takes_otherwise),
        cmocka_unit_test(test_pause_resume_skip),
        cmocka_unit_test(test_run_now_and_reset),
        cmocka_unit_test(test_jitter_reproducible),
    };
    return cmocka_run_group_tests_name("timeline", tests, NULL, NULL);
}
