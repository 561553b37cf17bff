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
#include "store.h"

typedef struct exercise exercise;

/* Progress lines for the operator's terminal (borrowed). */
typedef void (*exercise_log_cb)(exercise *x, int team, const char *msg, void *opaque);

/* Something teams or instructors may want to see live: type is "step",
 * "timeline", "finding", "check", "inject" or "guest"; `team` 0 is
 * exercise-wide; `instructors_only` marks attacker details.  `data` is
 * borrowed. */
typedef void (*exercise_event_cb)(exercise *x, const char *type, int team,
                                  int instructors_only, const json_t *data, void *opaque);

typedef struct exercise_opts {
    store *st;                 /* durable state (borrowed), or NULL: records only */
    int resume;                /* pick up a previous run of this exercise (after
                                  a crash): records are appended to, findings,
                                  labels and timelines are read back */
    exercise_event_cb event;
    void *event_opaque;
} exercise_opts;

/* `p` and `r` are borrowed (r already up).  The journal and the other
 * records go to `dir`; with a store, findings, injects, check results,
 * timeline progress and the journal go to it as well.  `o` may be NULL.
 * NULL with `err`. */
exercise *exercise_new(uv_loop_t *loop, const plan *p, range *r, const char *dir,
                       uint64_t seed, exercise_log_cb log, void *opaque,
                       const exercise_opts *o, char *err, size_t errlen);

/* The answer of exercise_finding_add/label: the stored finding (borrowed)
 * or NULL with an HTTP-like status (400 invalid, 404 no such finding, 500)
 * and a message. */
typedef void (*exercise_done_cb)(void *cbopaque, int status, const json_t *result,
                                 const char *error);
/* Files `finding` (borrowed; findings.h) for `team`; `cb` runs once it is
 * durable (or refused).  0, or -1 when `cb` will not run. */
int exercise_finding_add(exercise *x, int team, const json_t *finding, const char *by,
                         exercise_done_cb cb, void *cbopaque);
/* Relabels finding `id` (label NULL: cleared). */
int exercise_finding_label(exercise *x, long long id, const char *label, const char *by,
                           exercise_done_cb cb, void *cbopaque);
/* The current findings of `team` (0: all), new reference. */
json_t *exercise_findings(exercise *x, int team);
/* `team`'s score (scoring/score.h breakdown) with instructors' grades
 * (borrowed, may be NULL), new reference or NULL with `err`. */
json_t *exercise_score(exercise *x, int team, const json_t *grades, char *err, size_t errlen);
/* `team`'s pcap folder (malloc'd). */
char *exercise_pcap_dir(exercise *x, int team);
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
/* Frees timelines and the journal (the range is the caller's).  Agent
 * requests still in flight are orphaned: their replies, delivered when the
 * range closes its links, are dropped.  x itself is freed once libuv has
 * closed its timer (the loop must run again, as range_close does). */
void exercise_free(exercise *x);

#endif
