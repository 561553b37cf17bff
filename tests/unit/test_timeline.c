/* Unit tests of the per-team attack clock against a fake clock: the tests
 * move time themselves (timeline_advance), so every due time and start time
 * is exact and nothing depends on how fast the machine is.  The scenario
 * runs at speed 1000: one millisecond of wall time is one nominal second. */
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

/* Advances the fake clock one wall millisecond (= one nominal second) at a
 * time until no step is waiting; bounded by the scenario's hour. */
static void run_until_done(uv_loop_t *loop, timeline *tl, const scenario *s)
{
    (void)loop;
    for (int i = 0; i < 4000; i++) {
        int busy = 0;
        for (size_t k = 0; k < s->n_steps; k++) {
            timeline_step_state st = timeline_state(tl, (int)k);
            busy |= st == TL_PENDING || st == TL_SCHEDULED || st == TL_CHECKING ||
                    st == TL_RUNNING;
        }
        if (!busy)
            return;
        timeline_advance(tl, 1);
    }
    fail_msg("timeline did not finish");
}

static timeline *new_tl(uv_loop_t *loop, const scenario *s, int team, uint64_t seed,
                        rec *r)
{
    static const timeline_ops ops = { on_run, on_condition, NULL };
    timeline *tl = timeline_new(loop, s, team, seed, &ops, r);
    assert_non_null(tl);
    timeline_use_fake_clock(tl, 1000000);
    r->tl = tl;
    return tl;
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
    timeline *tl = new_tl(&loop, s, 1, 42, &r);
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
    /* a starts exactly at its offset; b is due 20 s plus 0-5 s of jitter
     * after a started, and starts exactly when due (the clock moves in
     * whole nominal seconds, so the jitter is rounded up to one). */
    assert_int_equal(timeline_step_time_ms(tl, 0), 10000);
    int64_t gap = timeline_step_due_ms(tl, 1) - timeline_step_time_ms(tl, 0);
    assert_true(gap >= 20000 && gap <= 25000);
    int64_t late = timeline_step_time_ms(tl, 1) - timeline_step_due_ms(tl, 1);
    assert_true(late >= 0 && late < 1000);
    /* c comes 10 s after b started, the inject at 55 m. */
    assert_true(timeline_step_time_ms(tl, 2) - timeline_step_time_ms(tl, 1) >= 10000);
    assert_true(timeline_step_time_ms(tl, 2) - timeline_step_time_ms(tl, 1) < 11000);
    assert_int_equal(timeline_step_time_ms(tl, 5), 55 * 60000);
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
    timeline *tl = new_tl(&loop, s, 1, 42, &r);
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

static void test_pause_resume_skip(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    scenario *s = load();
    rec r = { 0 };
    r.loop = &loop;
    timeline *tl = new_tl(&loop, s, 2, 7, &r);
    timeline_start(tl);
    timeline_advance(tl, 10);                /* 10 nominal s: a runs */
    assert_int_equal(r.n, 1);
    assert_int_equal(timeline_pause(tl), 0);
    assert_int_equal(timeline_pause(tl), -1);
    int64_t frozen = timeline_elapsed_ms(tl);
    timeline_advance(tl, 600);               /* 10 nominal minutes */
    assert_int_equal(r.n, 1);                /* nothing ran while paused */
    assert_int_equal(timeline_elapsed_ms(tl), frozen);
    assert_int_equal(timeline_skip(tl, 1), 0);
    assert_int_equal(timeline_state(tl, 1), TL_SKIPPED);
    assert_int_equal(timeline_skip(tl, 0), -1);   /* already done */
    assert_int_equal(timeline_resume(tl), 0);
    assert_int_equal(timeline_resume(tl), -1);
    run_until_done(&loop, tl, s);
    /* The clock went on from where it stopped: c (after the skipped b) is
     * 10 s after the skip, not 10 minutes later. */
    assert_true(timeline_step_time_ms(tl, 2) - frozen >= 10000);
    assert_true(timeline_step_time_ms(tl, 2) - frozen < 11000);
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
    timeline *tl = new_tl(&loop, s, 1, 42, &r);
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
    int64_t first = -1;
    int differ = 0;
    /* Jitter stays within its bounds for every team and seed, the same
     * seed and team draw the same, and draws do vary. */
    for (int k = 0; k < 40; k++) {
        int64_t gaps[2];
        for (int rep = 0; rep < 2; rep++) {
            rec r = { 0 };
            r.loop = &loop;
            timeline *tl = new_tl(&loop, s, 1 + k % 4, (uint64_t)k, &r);
            timeline_start(tl);
            timeline_advance(tl, 10);        /* a starts at 10 s */
            gaps[rep] = timeline_step_due_ms(tl, 1) - timeline_step_time_ms(tl, 0);
            free_tl(&loop, tl);
        }
        assert_int_equal(gaps[0], gaps[1]);
        assert_true(gaps[0] >= 20000 && gaps[0] <= 25000);
        if (first < 0)
            first = gaps[0];
        differ |= gaps[0] != first;
    }
    assert_true(differ);
    scenario_free(s);
    uv_loop_close(&loop);
}

/* A snapshot restored into a fresh timeline (an orchestrator restarted after
 * a crash) keeps what had run, moves the clock on by the downtime, and runs
 * only what is left; a step that was running runs again. */
static void test_restore_after_crash(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    scenario *s = load();
    rec r = { 0 };
    r.loop = &loop;
    timeline *tl = new_tl(&loop, s, 1, 42, &r);
    assert_int_equal(timeline_start(tl), 0);
    for (int i = 0; i < 40; i++)
        timeline_advance(tl, 1);          /* 40 nominal seconds: a and b ran */
    assert_int_equal(timeline_state(tl, 0), TL_SUCCEEDED);
    assert_int_equal(timeline_state(tl, 1), TL_SUCCEEDED);
    json_t *snap = timeline_to_json(tl);
    assert_non_null(snap);
    /* Through text, as the store keeps it. */
    char *text = json_dumps(snap, JSON_COMPACT);
    json_decref(snap);
    snap = json_loads(text, 0, NULL);
    free(text);
    free_tl(&loop, tl);

    rec r2 = { 0 };
    r2.loop = &loop;
    timeline *t2 = new_tl(&loop, s, 1, 42, &r2);
    assert_int_equal(timeline_restore(t2, snap, 3), 0);   /* away 3 ms = 3 s */
    assert_int_equal(timeline_restore(t2, snap, 0), -1);  /* not stopped any more */
    assert_int_equal(timeline_clock_state(t2), TL_RUNNING_CLOCK);
    assert_int_equal(timeline_state(t2, 0), TL_SUCCEEDED);
    assert_int_equal(timeline_state(t2, 1), TL_SUCCEEDED);
    assert_true(timeline_elapsed_ms(t2) >= 43000 && timeline_elapsed_ms(t2) < 44000);
    run_until_done(&loop, t2, s);
    /* Only c and the inject ran after the restart: a and b did not again. */
    assert_int_equal(r2.n, 2);
    assert_string_equal(r2.order[0], "2");
    assert_string_equal(r2.order[1], "5");
    free_tl(&loop, t2);

    /* A step caught running is run again at once. */
    json_t *steps = json_object_get(snap, "steps");
    json_object_set_new(json_array_get(steps, 1), "state", json_string("running"));
    rec r3 = { 0 };
    r3.loop = &loop;
    timeline *t3 = new_tl(&loop, s, 1, 42, &r3);
    assert_int_equal(timeline_restore(t3, snap, 0), 0);
    assert_int_equal(timeline_state(t3, 1), TL_SCHEDULED);
    timeline_advance(t3, 1);
    assert_true(r3.n >= 1);
    assert_string_equal(r3.order[0], "1");
    free_tl(&loop, t3);

    /* Not a snapshot. */
    rec r4 = { 0 };
    r4.loop = &loop;
    timeline *t4 = new_tl(&loop, s, 1, 42, &r4);
    json_t *bad = json_pack("{s:s}", "clock", "running");
    assert_int_equal(timeline_restore(t4, bad, 0), -1);
    json_decref(bad);
    free_tl(&loop, t4);
    json_decref(snap);
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
        cmocka_unit_test(test_restore_after_crash),
    };
    return cmocka_run_group_tests_name("timeline", tests, NULL, NULL);
}
