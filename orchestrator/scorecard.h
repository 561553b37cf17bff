/* scorecard — turns an exercise's records into scoring/score.h's input and
 * scores a team.
 *
 * The records are what the running exercise writes (and what stays after
 * it): the ground-truth journal (step_start, step_result and "wire" lines
 * that mark each flow seen or not on the team's LAN), the folded findings,
 * the availability check results and the flow summaries of the capture.
 * The same code scores a running exercise and a finished one.
 */
#ifndef CYRANGE_SCORECARD_H
#define CYRANGE_SCORECARD_H

#include <jansson.h>

#include "scenario.h"
#include "score.h"

/* The scenario's scoring rules as score_config. */
void scorecard_config(const scenario *s, score_config *out);

/* score_team()'s input for `team` (new reference).  Every array argument is
 * borrowed and may be NULL: `journal` (journal lines), `findings` (folded,
 * findings_fold()), `check_results` (check result lines, any team),
 * `wire_flows` (flow summaries of this team), `grades` ({"reports": [...],
 * "injects": [...]} or NULL). */
json_t *scorecard_input(const scenario *s, int team, long long now_ms, const json_t *journal,
                        const json_t *findings, const json_t *check_results,
                        const json_t *wire_flows, const json_t *grades);

/* scorecard_input() then score_team(): the breakdown (new reference) or
 * NULL with `err`. */
json_t *scorecard_team(const scenario *s, int team, long long now_ms, const json_t *journal,
                       const json_t *findings, const json_t *check_results,
                       const json_t *wire_flows, const json_t *grades, char *err,
                       size_t errlen);

#endif
