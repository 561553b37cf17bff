/* findings — what a team says it detected: validation and the normalised
 * form that scoring matches against the ground truth.
 *
 * A finding as submitted (by `cyrange finding add` now, by the API later):
 *   {"detected": "2026-11-22T10:03:00Z" | ms since the epoch (default: now),
 *    "hosts": ["pc1", "198.18.2.100"],
 *    "indicators": {"ips": [], "domains": [], "urls": [], "hashes": [], "accounts": []},
 *    "flow": {"proto": "tcp", "src": "..", "sport": N, "dst": "..", "dport": N},
 *    "community_id": "1:...", "technique": "T1071.001",
 *    "description": "...", "action": "..."}
 * Every key but `description` is optional, but a finding must name at least
 * one host, indicator, flow or community id.  The normalised form adds
 * "team", "submitted_ms", "detected_ms" and "label" (null) and drops
 * "detected".
 */
#ifndef CYRANGE_FINDINGS_H
#define CYRANGE_FINDINGS_H

#include <jansson.h>

#include "scenario.h"

/* Validates `in` (borrowed) for `team` of scenario `s`, submitted at
 * `now_ms`.  Returns the normalised finding (new reference, without "id")
 * or NULL with every problem in `err`, "; "-separated, each naming its key
 * (e.g. "indicators.ips[1]: 10.0.0.1 is not an address of the range"). */
json_t *findings_normalize(const json_t *in, const scenario *s, int team, long long now_ms,
                           char *err, size_t errlen);

/* 0 and the label's canonical name in *out for "duplicate", "benign",
 * "unscripted" or "none"/"" (NULL: the label is cleared); -1 otherwise. */
int findings_label_parse(const char *label, const char **out);

/* Folds a findings log (the lines of findings.jsonl: {"kind":"finding",...}
 * and {"kind":"label","finding":id,"label":..}) into the current findings
 * of `team` (0: every team), ordered by id.  `log` is borrowed; returns a
 * new reference (array). */
json_t *findings_fold(const json_t *log, int team);

#endif
