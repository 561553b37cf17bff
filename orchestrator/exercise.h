/* exercise — a running exercise: the range, one timeline per team, the
 * ground-truth journal and the instructor controls.
 *
 * For every step a team's timeline fires, the exercise sends the action to
 * the actor guest's agent (or, for narrative injects, to the team's inbox),
 * journals the start and the agent's result (outcome, flows, evidence) and
 * reports the result back to the timeline.  Conditions on checks and on
 * reachability are evaluated by TCP probes from the guests.
 */
#ifndef CYRANGE_EXERCISE_H
#define CYRANGE_EXERCISE_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "plan.h"
#include "range.h"

typedef struct exercise exercise;

/* Progress lines for the operator's terminal (borrowed). */
typedef void (*exercise_log_cb)(exercise *x, int team, const char *msg, void *opaque);

/* `p` and `r` are borrowed (r already up).  The journal and the inboxes go
 * to `dir`.  NULL with `err`. */
exercise *exercise_new(uv_loop_t *loop, const plan *p, range *r, const char *dir,
                       uint64_t seed, exercise_log_cb log, void *opaque,
                       char *err, size_t errlen);
/* Starts every team's clock. */
int exercise_start(exercise *x);
/* Executes an instructor command: {"cmd": "status" | "pause" | "resume" |
 * "skip" | "run" | "reset" | "start", "team": N (0 or absent: every team),
 * "step": "id"}.  Returns a new reference: {"ok": true, ...} or
 * {"ok": false, "error": "..."}. */
json_t *exercise_command(exercise *x, const json_t *cmd);
/* Every team's progress (new reference). */
json_t *exercise_status(const exercise *x);
/* 1 when every team's timeline has finished. */
int exercise_finished(const exercise *x);
/* Frees timelines and the journal (the range is the caller's). */
void exercise_free(exercise *x);

#endif
