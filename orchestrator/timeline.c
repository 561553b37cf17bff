#include "timeline.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct tl_step {
    timeline_step_state state;
    int64_t due_ms;         /* exercise time it is due, -1 unknown */
    int64_t started_ms;     /* exercise time it started, -1 not yet */
    int64_t ended_ms;       /* exercise time of its result, -1 not yet */
    char *detail;           /* last result or reason, owned */
    int forced;             /* run by an instructor: skip its condition */
} tl_step;

struct timeline {
    uv_loop_t *loop;
    const scenario *s;
    int team;
    uint64_t seed, rng;
    timeline_ops ops;
    void *opaque;
    tl_step *steps;
    timeline_clock clock;
    int64_t acc_ms;         /* exercise time accumulated before resumed_at */
    uint64_t resumed_at;    /* loop time (ms) the clock last started */
    uv_timer_t timer;
    int freeing;
    int in_fire;            /* re-entrancy guard */
    int ended_reported;
    int fake;               /* tests: the clock is fake_now, no timer */
    uint64_t fake_now;
};

/* Wall-clock milliseconds: the loop's, or the test's fake clock. */
static uint64_t wall_ms(const timeline *tl)
{
    return tl->fake ? tl->fake_now : uv_now(tl->loop);
}

/* xorshift64*: small, seedable, reproducible jitter per team. */
static uint64_t rnd(timeline *tl)
{
    uint64_t x = tl->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    tl->rng = x;
    return x * 2685821657736338717ULL;
}

static int64_t draw_jitter(timeline *tl, int64_t max)
{
    return max > 0 ? (int64_t)(rnd(tl) % (uint64_t)(max + 1)) : 0;
}

static void event(timeline *tl, int step, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void event(timeline *tl, int step, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    if (tl->ops.event == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    tl->ops.event(tl, step, buf, tl->opaque);
}

static void set_detail(tl_step *st, const char *d)
{
    free(st->detail);
    st->detail = d ? strdup(d) : NULL;
}

int64_t timeline_elapsed_ms(const timeline *tl)
{
    if (tl->clock != TL_RUNNING_CLOCK)
        return tl->acc_ms;
    uint64_t now = wall_ms(tl);
    return tl->acc_ms + (int64_t)((double)(now - tl->resumed_at) * tl->s->speed);
}

static void arm(timeline *tl);

static void reset_steps(timeline *tl)
{
    for (size_t i = 0; i < tl->s->n_steps; i++) {
        tl_step *st = &tl->steps[i];
        st->state = tl->s->steps[i].on_demand ? TL_ON_DEMAND : TL_PENDING;
        st->due_ms = st->started_ms = st->ended_ms = -1;
        st->forced = 0;
        set_detail(st, NULL);
    }
    tl->rng = tl->seed ? tl->seed : 0x9E3779B97F4A7C15ULL;
    tl->ended_reported = 0;
}

timeline *timeline_new(uv_loop_t *loop, const scenario *s, int team, uint64_t seed,
                       const timeline_ops *ops, void *opaque)
{
    timeline *tl = calloc(1, sizeof(*tl));
    if (tl == NULL)
        return NULL;
    tl->steps = calloc(s->n_steps ? s->n_steps : 1, sizeof(*tl->steps));
    if (tl->steps == NULL) {
        free(tl);
        return NULL;
    }
    tl->loop = loop;
    tl->s = s;
    tl->team = team;
    tl->seed = seed ^ ((uint64_t)team * 0xD1B54A32D192ED03ULL);
    if (ops)
        tl->ops = *ops;
    tl->opaque = opaque;
    tl->clock = TL_STOPPED;
    uv_timer_init(loop, &tl->timer);
    tl->timer.data = tl;
    reset_steps(tl);
    return tl;
}

static void timer_closed(uv_handle_t *h)
{
    timeline *tl = h->data;
    for (size_t i = 0; i < tl->s->n_steps; i++)
        free(tl->steps[i].detail);
    free(tl->steps);
    free(tl);
}

void timeline_free(timeline *tl)
{
    if (tl == NULL || tl->freeing)
        return;
    tl->freeing = 1;
    uv_timer_stop(&tl->timer);
    uv_close((uv_handle_t *)&tl->timer, timer_closed);
}

/* The steps whose clock starts when `parent` starts (or is passed over). */
static void release_children(timeline *tl, int parent)
{
    int64_t now = timeline_elapsed_ms(tl);
    for (size_t i = 0; i < tl->s->n_steps; i++) {
        const scn_step *ss = &tl->s->steps[i];
        tl_step *st = &tl->steps[i];
        if (ss->after != parent || st->state != TL_PENDING)
            continue;
        st->state = TL_SCHEDULED;
        st->due_ms = now + ss->at_ms + draw_jitter(tl, ss->jitter_ms);
    }
}

static void start_step(timeline *tl, int i, const char *why)
{
    tl_step *st = &tl->steps[i];
    st->state = TL_RUNNING;
    st->started_ms = timeline_elapsed_ms(tl);
    event(tl, i, "step %s started%s%s", tl->s->steps[i].id, why ? ": " : "",
          why ? why : "");
    release_children(tl, i);
    if (tl->ops.run)
        tl->ops.run(tl, i, tl->opaque);
}

/* Conditions on other steps are decided here; the rest by the owner. */
static int step_condition(timeline *tl, const json_t *when, int *holds, char *why,
                          size_t len)
{
    const char *ref = json_string_value(json_object_get(when, "step"));
    const char *want = json_string_value(json_object_get(when, "outcome"));
    if (ref == NULL)
        return 0;
    int si = scenario_step_index(tl->s, ref);
    timeline_step_state ss = si >= 0 ? tl->steps[si].state : TL_PENDING;
    int ok = ss == TL_SUCCEEDED;
    int failed = ss == TL_FAILED || ss == TL_NOT_TAKEN || ss == TL_SKIPPED;
    /* A parent still running counts as not (yet) succeeded. */
    *holds = want && strcmp(want, "failed") == 0 ? failed : ok;
    snprintf(why, len, "step %s is %s", ref, timeline_state_name(ss));
    return 1;
}

static void decide(timeline *tl, int i, int holds, const char *why)
{
    const scn_step *ss = &tl->s->steps[i];
    tl_step *st = &tl->steps[i];
    if (holds) {
        start_step(tl, i, why);
        return;
    }
    st->state = TL_NOT_TAKEN;
    st->started_ms = st->ended_ms = timeline_elapsed_ms(tl);
    set_detail(st, why);
    event(tl, i, "step %s not taken: %s", ss->id, why ? why : "condition false");
    release_children(tl, i);
    if (ss->otherwise >= 0) {
        tl_step *o = &tl->steps[ss->otherwise];
        if (o->state == TL_ON_DEMAND || o->state == TL_PENDING) {
            o->forced = 1;
            start_step(tl, ss->otherwise, "branch taken instead");
        }
    }
}

static void begin(timeline *tl, int i)
{
    const scn_step *ss = &tl->s->steps[i];
    tl_step *st = &tl->steps[i];
    if (ss->when == NULL || st->forced) {
        start_step(tl, i, st->forced ? "run by an instructor" : NULL);
        return;
    }
    int holds = 0;
    char why[256];
    if (step_condition(tl, ss->when, &holds, why, sizeof(why))) {
        decide(tl, i, holds, why);
        return;
    }
    if (tl->ops.condition == NULL) {
        decide(tl, i, 0, "no way to evaluate the condition");
        return;
    }
    st->state = TL_CHECKING;
    tl->ops.condition(tl, i, ss->when, tl->opaque);
}

static int all_final(const timeline *tl)
{
    for (size_t i = 0; i < tl->s->n_steps; i++) {
        timeline_step_state x = tl->steps[i].state;
        if (x == TL_PENDING || x == TL_SCHEDULED || x == TL_CHECKING || x == TL_RUNNING)
            return 0;
    }
    return 1;
}

static void fire(uv_timer_t *t)
{
    timeline *tl = t->data;
    if (tl->clock != TL_RUNNING_CLOCK || tl->in_fire)
        return;
    tl->in_fire = 1;
    for (;;) {
        int64_t now = timeline_elapsed_ms(tl);
        int best = -1;
        for (size_t i = 0; i < tl->s->n_steps; i++) {
            tl_step *st = &tl->steps[i];
            if (st->state == TL_SCHEDULED && st->due_ms <= now &&
                (best < 0 || st->due_ms < tl->steps[best].due_ms))
                best = (int)i;
        }
        if (best < 0)
            break;
        begin(tl, best);
        if (tl->clock != TL_RUNNING_CLOCK)
            break; /* an operation paused or reset the clock */
    }
    tl->in_fire = 0;
    if (tl->clock == TL_RUNNING_CLOCK && timeline_elapsed_ms(tl) >= tl->s->duration_ms &&
        !tl->ended_reported) {
        tl->ended_reported = 1;
        event(tl, -1, "the scenario's duration has passed");
    }
    arm(tl);
}

/* Sets the timer for the earliest due step, in wall-clock time. */
static void arm(timeline *tl)
{
    int64_t next = -1;
    if (tl->freeing || tl->clock != TL_RUNNING_CLOCK)
        return;
    for (size_t i = 0; i < tl->s->n_steps; i++)
        if (tl->steps[i].state == TL_SCHEDULED &&
            (next < 0 || tl->steps[i].due_ms < next))
            next = tl->steps[i].due_ms;
    if (!tl->ended_reported && (next < 0 || tl->s->duration_ms < next))
        next = tl->s->duration_ms;
    if (next < 0) {
        uv_timer_stop(&tl->timer);
        return;
    }
    if (tl->fake)
        return; /* the test advances the clock and fires */
    int64_t wait = next - timeline_elapsed_ms(tl);
    uint64_t wall = wait <= 0 ? 0 : (uint64_t)((double)wait / tl->s->speed) + 1;
    uv_timer_start(&tl->timer, fire, wall, 0);
}

int timeline_start(timeline *tl)
{
    if (tl->clock != TL_STOPPED)
        return -1;
    tl->clock = TL_RUNNING_CLOCK;
    tl->acc_ms = 0;
    tl->resumed_at = wall_ms(tl);
    for (size_t i = 0; i < tl->s->n_steps; i++) {
        const scn_step *ss = &tl->s->steps[i];
        if (ss->on_demand || ss->after >= 0)
            continue;
        tl->steps[i].state = TL_SCHEDULED;
        tl->steps[i].due_ms = ss->at_ms + draw_jitter(tl, ss->jitter_ms);
    }
    event(tl, -1, "timeline started");
    arm(tl);
    return 0;
}

int timeline_pause(timeline *tl)
{
    if (tl->clock != TL_RUNNING_CLOCK)
        return -1;
    tl->acc_ms = timeline_elapsed_ms(tl);
    tl->clock = TL_PAUSED;
    uv_timer_stop(&tl->timer);
    event(tl, -1, "timeline paused");
    return 0;
}

int timeline_resume(timeline *tl)
{
    if (tl->clock != TL_PAUSED)
        return -1;
    tl->clock = TL_RUNNING_CLOCK;
    tl->resumed_at = wall_ms(tl);
    event(tl, -1, "timeline resumed");
    arm(tl);
    return 0;
}

void timeline_reset(timeline *tl)
{
    uv_timer_stop(&tl->timer);
    tl->clock = TL_STOPPED;
    tl->acc_ms = 0;
    reset_steps(tl);
    event(tl, -1, "timeline reset");
}

int timeline_skip(timeline *tl, int i)
{
    if (i < 0 || (size_t)i >= tl->s->n_steps)
        return -1;
    tl_step *st = &tl->steps[i];
    if (st->state != TL_PENDING && st->state != TL_SCHEDULED &&
        st->state != TL_ON_DEMAND)
        return -1;
    st->state = TL_SKIPPED;
    st->started_ms = st->ended_ms = timeline_elapsed_ms(tl);
    event(tl, i, "step %s skipped by an instructor", tl->s->steps[i].id);
    /* The story goes on: its dependants count from now. */
    release_children(tl, i);
    arm(tl);
    return 0;
}

int timeline_run_now(timeline *tl, int i)
{
    if (i < 0 || (size_t)i >= tl->s->n_steps || tl->clock == TL_STOPPED)
        return -1;
    tl_step *st = &tl->steps[i];
    if (st->state != TL_PENDING && st->state != TL_SCHEDULED &&
        st->state != TL_ON_DEMAND)
        return -1;
    st->forced = 1;
    start_step(tl, i, "run now by an instructor");
    arm(tl);
    return 0;
}

void timeline_step_result(timeline *tl, int i, int succeeded, const char *detail)
{
    if (i < 0 || (size_t)i >= tl->s->n_steps || tl->steps[i].state != TL_RUNNING)
        return; /* late result after a reset: ignored */
    tl_step *st = &tl->steps[i];
    st->state = succeeded ? TL_SUCCEEDED : TL_FAILED;
    st->ended_ms = timeline_elapsed_ms(tl);
    set_detail(st, detail);
    event(tl, i, "step %s %s%s%s", tl->s->steps[i].id,
          succeeded ? "succeeded" : "failed", detail ? ": " : "", detail ? detail : "");
    if (all_final(tl))
        event(tl, -1, "every step has run");
}

void timeline_condition_result(timeline *tl, int i, int holds, const char *why)
{
    if (i < 0 || (size_t)i >= tl->s->n_steps || tl->steps[i].state != TL_CHECKING)
        return;
    decide(tl, i, holds, why);
    arm(tl);
}

void timeline_use_fake_clock(timeline *tl, uint64_t now_ms)
{
    tl->fake = 1;
    tl->fake_now = now_ms;
}

void timeline_advance(timeline *tl, uint64_t ms)
{
    if (!tl->fake)
        return;
    tl->fake_now += ms;
    fire(&tl->timer);
}

int timeline_team(const timeline *tl) { return tl->team; }
timeline_clock timeline_clock_state(const timeline *tl) { return tl->clock; }

timeline_step_state timeline_state(const timeline *tl, int i)
{
    return tl->steps[i].state;
}

int64_t timeline_step_time_ms(const timeline *tl, int i)
{
    const tl_step *st = &tl->steps[i];
    return st->started_ms >= 0 ? st->started_ms : st->due_ms;
}

int64_t timeline_step_due_ms(const timeline *tl, int i)
{
    return tl->steps[i].due_ms;
}

const char *timeline_state_name(timeline_step_state s)
{
    switch (s) {
    case TL_PENDING: return "pending";
    case TL_SCHEDULED: return "scheduled";
    case TL_CHECKING: return "checking";
    case TL_RUNNING: return "running";
    case TL_SUCCEEDED: return "succeeded";
    case TL_FAILED: return "failed";
    case TL_SKIPPED: return "skipped";
    case TL_NOT_TAKEN: return "not taken";
    case TL_ON_DEMAND: return "on demand";
    }
    return "?";
}

const char *timeline_clock_name(timeline_clock c)
{
    switch (c) {
    case TL_STOPPED: return "stopped";
    case TL_RUNNING_CLOCK: return "running";
    case TL_PAUSED: return "paused";
    case TL_ENDED: return "ended";
    }
    return "?";
}

json_t *timeline_to_json(const timeline *tl)
{
    json_t *o = json_pack("{s:i, s:s, s:f, s:[]}", "team", tl->team, "clock",
                          timeline_clock_name(tl->clock), "elapsed_s",
                          (double)timeline_elapsed_ms(tl) / 1000.0, "steps");
    json_t *arr = o ? json_object_get(o, "steps") : NULL;
    for (size_t i = 0; arr && i < tl->s->n_steps; i++) {
        const tl_step *st = &tl->steps[i];
        json_t *so = json_pack("{s:s, s:s, s:s}", "id", tl->s->steps[i].id, "action",
                               tl->s->steps[i].action, "state",
                               timeline_state_name(st->state));
        if (so == NULL)
            continue;
        if (st->due_ms >= 0)
            json_object_set_new(so, "due_s", json_real((double)st->due_ms / 1000.0));
        if (st->started_ms >= 0)
            json_object_set_new(so, "started_s", json_real((double)st->started_ms / 1000.0));
        if (st->ended_ms >= 0)
            json_object_set_new(so, "ended_s", json_real((double)st->ended_ms / 1000.0));
        if (st->detail)
            json_object_set_new(so, "detail", json_string(st->detail));
        json_array_append_new(arr, so);
    }
    return o;
}

static int state_parse(const char *name, timeline_step_state *out)
{
    for (int v = TL_PENDING; v <= TL_ON_DEMAND; v++)
        if (name && strcmp(name, timeline_state_name((timeline_step_state)v)) == 0) {
            *out = (timeline_step_state)v;
            return 0;
        }
    return -1;
}

static int64_t secs_ms(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_number(v) ? (int64_t)(json_number_value(v) * 1000.0 + 0.5) : -1;
}

int timeline_restore(timeline *tl, const json_t *snap, int64_t downtime_ms)
{
    const char *clock = json_string_value(json_object_get(snap, "clock"));
    const json_t *steps = json_object_get(snap, "steps");
    int rerun = 0;

    if (clock == NULL || !json_is_array(steps) || tl->clock != TL_STOPPED)
        return -1;
    uv_timer_stop(&tl->timer);
    reset_steps(tl);
    for (size_t i = 0; i < tl->s->n_steps; i++) {
        size_t k;
        const json_t *so, *found = NULL;
        json_array_foreach(steps, k, so) {
            const char *id = json_string_value(json_object_get(so, "id"));
            if (id && strcmp(id, tl->s->steps[i].id) == 0)
                found = so;
        }
        tl_step *st = &tl->steps[i];
        if (found == NULL || state_parse(json_string_value(json_object_get(found, "state")),
                                         &st->state) < 0)
            continue;
        st->due_ms = secs_ms(found, "due_s");
        st->started_ms = secs_ms(found, "started_s");
        st->ended_ms = secs_ms(found, "ended_s");
        set_detail(st, json_string_value(json_object_get(found, "detail")));
    }
    tl->acc_ms = secs_ms(snap, "elapsed_s");
    if (tl->acc_ms < 0)
        tl->acc_ms = 0;
    if (strcmp(clock, "running") == 0) {
        /* The exercise's clock kept running while the orchestrator was
         * down: steps that fell due meanwhile run now, late. */
        tl->acc_ms += (int64_t)((double)(downtime_ms > 0 ? downtime_ms : 0) * tl->s->speed);
        tl->clock = TL_RUNNING_CLOCK;
    } else if (strcmp(clock, "paused") == 0) {
        tl->clock = TL_PAUSED;
    } else if (strcmp(clock, "ended") == 0) {
        tl->clock = TL_ENDED;
    } else {
        tl->clock = TL_STOPPED;
    }
    /* A step that was running has no result: run it again. */
    for (size_t i = 0; i < tl->s->n_steps; i++) {
        tl_step *st = &tl->steps[i];
        if (st->state == TL_RUNNING || st->state == TL_CHECKING) {
            st->state = TL_SCHEDULED;
            st->due_ms = tl->acc_ms;
            st->started_ms = -1;
            set_detail(st, "run again: the orchestrator restarted while it ran");
            rerun++;
        }
    }
    tl->resumed_at = wall_ms(tl);
    tl->ended_reported = tl->acc_ms >= tl->s->duration_ms;
    event(tl, -1, "timeline restored after a restart at %.1f s (%s), %d step%s to run again",
          (double)tl->acc_ms / 1000.0, clock, rerun, rerun == 1 ? "" : "s");
    arm(tl);
    return 0;
}
