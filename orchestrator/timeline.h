/* timeline — one team's attack clock on the libuv loop.
 *
 * Every team plays the scenario's timeline on its own clock: `at` steps fire
 * at their offset, `after` steps a `delay` after their parent *started*
 * (long-running actions such as a C2 beacon keep going while later steps
 * run), each plus a random jitter drawn per team.  The clock runs at the
 * scenario's speed factor and stops while paused.  A step with a `when`
 * condition runs only if it holds; otherwise its `otherwise` branch runs
 * instead.  Instructors can skip a step, run one now, pause, resume and
 * reset the clock.
 *
 * The timeline decides *when*; its owner decides *how*: ops->run executes
 * a step (through the actor's agent) and reports back with
 * timeline_step_result(); ops->condition evaluates conditions that need the
 * range (check state, reachability) and answers with
 * timeline_condition_result().
 */
#ifndef CYRANGE_TIMELINE_H
#define CYRANGE_TIMELINE_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "scenario.h"

typedef struct timeline timeline;

typedef enum timeline_step_state {
    TL_PENDING,       /* waiting for its parent step */
    TL_SCHEDULED,     /* due at a known exercise time */
    TL_CHECKING,      /* its condition is being evaluated */
    TL_RUNNING,       /* dispatched, no result yet */
    TL_SUCCEEDED,
    TL_FAILED,
    TL_SKIPPED,       /* by an instructor */
    TL_NOT_TAKEN,     /* its condition did not hold */
    TL_ON_DEMAND,     /* runs only when triggered */
} timeline_step_state;

typedef enum timeline_clock {
    TL_STOPPED,       /* not started (or reset) */
    TL_RUNNING_CLOCK,
    TL_PAUSED,
    TL_ENDED,         /* the scenario's duration has passed */
} timeline_clock;

typedef struct timeline_ops {
    /* Execute step `step` now; report with timeline_step_result(). */
    void (*run)(timeline *tl, int step, void *opaque);
    /* Evaluate `when` (borrowed) of `step` when it names a check or a
     * reachability test; answer with timeline_condition_result(), possibly
     * later.  May be NULL: such conditions then count as not holding. */
    void (*condition)(timeline *tl, int step, const json_t *when, void *opaque);
    /* Progress for journals and screens: `what` is a short sentence. */
    void (*event)(timeline *tl, int step, const char *what, void *opaque);
} timeline_ops;

/* `s` is borrowed and must outlive the timeline; `team` is 1-based; `seed`
 * makes the jitter reproducible.  NULL when out of memory. */
timeline *timeline_new(uv_loop_t *loop, const scenario *s, int team, uint64_t seed,
                       const timeline_ops *ops, void *opaque);
/* Closes the timer; the struct is freed in its close callback. */
void timeline_free(timeline *tl);

int timeline_start(timeline *tl);                 /* 0, -1 if already started */
int timeline_pause(timeline *tl);                 /* 0, -1 if not running */
int timeline_resume(timeline *tl);                /* 0, -1 if not paused */
/* Back to the beginning: every step pending, clock stopped at zero. */
void timeline_reset(timeline *tl);
/* Instructor controls on one step.  0, or -1 when the step cannot be
 * skipped / run in its current state (finished, running). */
int timeline_skip(timeline *tl, int step);
int timeline_run_now(timeline *tl, int step);

/* Results from the owner. */
void timeline_step_result(timeline *tl, int step, int succeeded, const char *detail);
void timeline_condition_result(timeline *tl, int step, int holds, const char *why);

/* Tests: the clock becomes a fake one at `now_ms` (wall milliseconds) that
 * only timeline_advance() moves; no timer is armed.  Call before start. */
void timeline_use_fake_clock(timeline *tl, uint64_t now_ms);
/* Tests: moves the fake clock by `ms` of wall time and runs what is due. */
void timeline_advance(timeline *tl, uint64_t ms);

int timeline_team(const timeline *tl);
timeline_clock timeline_clock_state(const timeline *tl);
/* Exercise time elapsed, in nominal milliseconds (speed applied). */
int64_t timeline_elapsed_ms(const timeline *tl);
timeline_step_state timeline_state(const timeline *tl, int step);
/* Exercise time the step is due (SCHEDULED) or started (later states);
 * -1 when unknown. */
int64_t timeline_step_time_ms(const timeline *tl, int step);
/* Exercise time the step was (or is) due: its offset plus the jitter drawn
 * for it; -1 before it is scheduled. */
int64_t timeline_step_due_ms(const timeline *tl, int step);
const char *timeline_state_name(timeline_step_state s);
const char *timeline_clock_name(timeline_clock c);
/* The team's progress as JSON (new reference). */
json_t *timeline_to_json(const timeline *tl);
/* Puts a stopped timeline back where timeline_to_json() `snap` (borrowed)
 * left it, `downtime_ms` later: a running clock moves on by the downtime
 * (steps due meanwhile run at once), a step that was running is run again.
 * 0, or -1 when `snap` is not a snapshot or the clock is not stopped. */
int timeline_restore(timeline *tl, const json_t *snap, int64_t downtime_ms);

#endif
