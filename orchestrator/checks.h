/* checks — the scenario's availability checks, run for every team from the
 * vantage host's agent on each check's interval.
 *
 * A check is an agent probe with an expectation (tcp connect, an HTTP
 * status and text, an SMTP banner, a DNS answer; agents/PROTOCOL.md).  Each
 * result goes to the caller's callback (which journals it) and updates the
 * check's state, which answers `when: {"check": ...}` conditions and feeds
 * the availability score.  A probe still running when the next one is due
 * is not doubled: the round is counted as skipped.
 */
#ifndef CYRANGE_CHECKS_H
#define CYRANGE_CHECKS_H

#include <jansson.h>
#include <uv.h>

#include "plan.h"
#include "range.h"

typedef struct checks checks;

/* One result: {"kind":"check","team":N,"check":id,"ts_ms":..,"ok":bool,
 * "rtt_ms":..,"status":N,"detail":".."} (borrowed). */
typedef void (*checks_result_cb)(checks *c, int team, const json_t *result, void *opaque);

/* `p` and `r` are borrowed and must outlive the checks.  NULL when out of
 * memory. */
checks *checks_new(uv_loop_t *loop, const plan *p, range *r, checks_result_cb cb,
                   void *opaque);
/* Starts every team's probes, spread over each check's interval. */
int checks_start(checks *c);
/* Runs every check of `team` (0: all teams) now, out of turn. */
void checks_run_now(checks *c, int team);
/* Latest state of check `id` in `team`: 1 up, 0 down, -1 unknown (never
 * run, or no such check). */
int checks_state(const checks *c, int team, const char *id);
/* Per check of `team`: {"id","type","from","target","up","last_ok_ms",
 * "last_detail","probes","ok","skipped","sla"} (new reference: array). */
json_t *checks_status(const checks *c, int team);
/* Stops the timers; the memory goes once every handle is closed and every
 * probe in flight has answered or been cancelled by its link.  Accepts
 * NULL. */
void checks_close(checks *c);

#endif
