/* score — one team's score: findings matched to the ground truth of the
 * timeline, availability (checks and C2 containment), reports and injects.
 *
 * Pure logic: no files, no sockets, no clock (the caller passes now_ms in the
 * input).  JSON in, JSON out.  The input of score_team() is one team:
 *
 *   {"team": 1, "now_ms": ms,
 *    "steps": [{"step", "action", "technique", "actor", "target",
 *               "actor_addr", "target_addr", "start_ms", "end_ms",
 *               "outcome": succeeded|running|failed|error|skipped|timeout,
 *               "visibility", "points" (default 1),
 *               "flows": [{"proto","src","sport","dst","dport","community_id","seen"}],
 *               "artefacts": {"ips","domains","urls","paths","accounts","hashes"},
 *               "c2": {"addr","port","via":{"addr","port"},"from"}}],
 *    "findings": [{"id", "submitted_ms", "detected_ms" (default submitted_ms),
 *                  "hosts": [], "indicators": {"ips","domains","urls","paths",
 *                  "hashes","accounts"}, "flow": {"proto","src","sport","dst","dport"},
 *                  "community_id", "technique", "description", "action",
 *                  "label": null|"duplicate"|"benign"|"unscripted"}],
 *    "checks": [{"id", "sla", "interval_ms", "results": [{"ts_ms","ok","detail"}]}],
 *    "wire_flows": [{"src","sport","dst","dport","first","last",...}] (flows_rec_to_json),
 *    "grades": {"reports": [{"id","points","max","reason"}],
 *               "injects": [{"step","points","max","reason"}]},
 *    "inject_steps": [{"step","points","deadline_ms","start_ms","responded_ms"|null}]}
 *
 * Every array is optional; times are integers, milliseconds since the epoch
 * (deadline_ms and interval_ms are durations).  The rules (tiers, time
 * window, timeliness, labels, false positives, availability, containment)
 * are described at the top of score.c; the output at score_team().
 */
#ifndef CYRANGE_SCORE_H
#define CYRANGE_SCORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* A finding may be detected this long before its step starts (the guests'
 * and the team's clocks are not the orchestrator's). */
#define SCORE_CLOCK_SLACK_MS 5000

/* Credit multiplier of each match quality tier. */
#define SCORE_TIER_FLOW           1.0  /* community id or 5-tuple */
#define SCORE_TIER_HOST_TECHNIQUE 0.8  /* a host of the step + its technique */
#define SCORE_TIER_INDICATOR      0.5  /* an address, domain, URL, hash ... */

typedef enum { SCORE_DECAY_LINEAR, SCORE_DECAY_EXPONENTIAL, SCORE_DECAY_STEP } score_decay;

typedef struct score_config {
    /* Relative weights; the total scale is their sum (100 by default). */
    double w_detection, w_availability, w_reports, w_injects;
    /* Detection timeliness: full credit up to full_ms, decay to floor at
     * window_ms, nothing after. */
    int64_t window_ms, full_ms;
    score_decay decay;
    double floor;
    /* Points (on the total scale) per false positive, and at most in all. */
    double fp_penalty, fp_cap;
    /* No C2 beacon on the wire for this long means contained. */
    int64_t c2_quiet_ms;
} score_config;

/* 40/30/20/10, window 30m, full credit 5m, linear, floor 0.2, 5 points per
 * false positive capped at 20, C2 quiet 5m. */
void score_config_defaults(score_config *c);

/* Overrides the fields of *c (start from score_config_defaults) with the
 * keys of j (borrowed), every key optional:
 *   {"weights":{"detection":40,"availability":30,"reports":20,"injects":10},
 *    "window_ms":1800000,"full_ms":300000,"decay":"linear"|"exponential"|"step",
 *    "floor":0.2,"fp_penalty":5,"fp_cap":20,"c2_quiet_ms":300000}
 * Bounds are those of the scenario format (scenarios/FORMAT.md, scoring).
 * 0, or -1 with the offending key named in err (e.g. "window_ms: expected an
 * integer from 60000 to 86400000"); *c is unchanged on error. */
int score_config_from_json(score_config *c, const json_t *j, char *err, size_t errlen);

/* The credit fraction (0..1) of something done delay_ms after it was due:
 * 1 up to full_ms, then down to floor at window_ms (linear; exponential
 * floor + (1-floor)*exp(-3*(d-full)/(window-full)); step: floor), 0 for a
 * negative delay or one beyond window_ms. */
double score_timeliness(const score_config *c, int64_t delay_ms);

/* Scores one team (input: see above, borrowed).  Returns a new reference:
 *   {"team","total","max",
 *    "axes":{"detection"|"availability"|"reports"|"injects":
 *            {"points","max","items":[{"points","reason",...}]}},
 *    "false_positives":{"count","points"},
 *    "steps":[{"step","outcome","landed","detected","finding","tier",
 *              "delay_ms","max","credit","points"}],
 *    "findings":[{"id","label","matched":[step..],"best_tier","credited":[step..],
 *                 "false_positive"}],
 *    "precision","recall","reasons":[..]}
 * Points are rounded to 0.1, precision and recall to 0.001 (null when
 * undefined); steps keep their input order, findings are ordered by id.
 * NULL on malformed input, with the JSON path in err (e.g.
 * "findings[3].detected_ms: expected an integer"). */
json_t *score_team(const score_config *c, const json_t *input, char *err, size_t errlen);

/* A human-readable rendering of a score_team() result (borrowed), one
 * reason per line; malloc'd, the caller frees it.  NULL when out of memory
 * or when breakdown is not such a result. */
char *score_format_text(const json_t *breakdown);

#endif
