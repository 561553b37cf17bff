/* score: timeliness shapes, the matching window and tiers, labels, false
 * positives, landing, availability (checks, outages, containment), reports
 * and injects, malformed input; then the golden cases of
 * tests/golden/scoring (GOLDEN_REGENERATE=1 rewrites their expected.json). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "score.h"

#define T0 10000000LL /* a step's start in these tests */
#define MIN 60000LL

/* The beacon step of targeted-mail, as the journal reports it. */
#define BEACON_STEP                                                                        \
    "{\"step\":\"beacon\",\"action\":\"c2.beacon\",\"technique\":\"T1071.001\","          \
    "\"actor\":\"pc1\",\"target\":\"attacker\",\"actor_addr\":\"198.18.2.100\","          \
    "\"target_addr\":\"198.18.0.66\",\"start_ms\":10000000,\"outcome\":\"succeeded\","    \
    "\"flows\":[{\"proto\":\"tcp\",\"src\":\"198.18.2.100\",\"sport\":40000,"             \
    "\"dst\":\"198.18.2.1\",\"dport\":3128,\"community_id\":\"1:LQU9qZlK+B5F3KDmev6m5PMibrg=\"," \
    "\"seen\":true}],"                                                                    \
    "\"artefacts\":{\"ips\":[\"198.18.0.66\"],\"domains\":[\"update.exarnple.test\"],"    \
    "\"urls\":[\"http://update.exarnple.test/c2/beacon?id=7\"],\"paths\":[],"            \
    "\"accounts\":[],\"hashes\":[]}}"

static json_t *load(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    if (j == NULL)
        fail_msg("test JSON: %s at %d:%d", je.text, je.line, je.column);
    return j;
}

/* Scores text with c (defaults when NULL); the result must not be NULL. */
static json_t *score_text(const score_config *c, const char *text)
{
    score_config d;
    char err[256];
    json_t *in = load(text), *out;
    if (c == NULL) {
        score_config_defaults(&d);
        c = &d;
    }
    out = score_team(c, in, err, sizeof(err));
    if (out == NULL)
        fail_msg("score_team: %s", err);
    json_decref(in);
    return out;
}

/* One finding against the beacon step, at now = start + 1h. */
static json_t *score_one(const char *finding)
{
    char text[4096];
    snprintf(text, sizeof(text), "{\"team\":1,\"now_ms\":%lld,\"steps\":[" BEACON_STEP
             "],\"findings\":[%s]}", T0 + 60 * MIN, finding);
    return score_text(NULL, text);
}

static double num(const json_t *o, const char *path)
{
    json_t *v = json_object_get(o, path);
    if (!json_is_number(v))
        fail_msg("%s: not a number", path);
    return json_number_value(v);
}

static const json_t *axis(const json_t *out, const char *name)
{
    return json_object_get(json_object_get(out, "axes"), name);
}

static const char *item_reason(const json_t *out, const char *ax, size_t i)
{
    const json_t *items = json_object_get(axis(out, ax), "items");
    const char *r = json_string_value(json_object_get(json_array_get(items, i), "reason"));
    if (r == NULL)
        fail_msg("%s.items[%zu]: no reason", ax, i);
    return r;
}

static const json_t *step_out(const json_t *out, size_t i)
{
    return json_array_get(json_object_get(out, "steps"), i);
}

static const json_t *finding_out(const json_t *out, size_t i)
{
    return json_array_get(json_object_get(out, "findings"), i);
}

static void assert_near(double a, double b)
{
    if (fabs(a - b) > 1e-9)
        fail_msg("%.12f != %.12f", a, b);
}

/* Output points are rounded to 0.1. */
static void assert_rounded(double out, double exact)
{
    assert_near(out, round(exact * 10.0) / 10.0);
}

static void test_timeliness_shapes(void **state)
{
    score_config c;
    (void)state;
    score_config_defaults(&c); /* window 30m, full 5m, floor 0.2 */
    assert_near(score_timeliness(&c, 0), 1.0);
    assert_near(score_timeliness(&c, 5 * MIN), 1.0);
    assert_near(score_timeliness(&c, 17 * MIN + 30000), 0.6); /* halfway: 1 - 0.8/2 */
    assert_near(score_timeliness(&c, 30 * MIN), 0.2);
    assert_near(score_timeliness(&c, 30 * MIN + 1), 0.0);
    assert_near(score_timeliness(&c, -1), 0.0);
    c.decay = SCORE_DECAY_EXPONENTIAL;
    assert_near(score_timeliness(&c, 5 * MIN), 1.0);
    assert_near(score_timeliness(&c, 17 * MIN + 30000), 0.2 + 0.8 * exp(-1.5));
    assert_near(score_timeliness(&c, 30 * MIN), 0.2 + 0.8 * exp(-3.0));
    assert_near(score_timeliness(&c, 31 * MIN), 0.0);
    c.decay = SCORE_DECAY_STEP;
    assert_near(score_timeliness(&c, 5 * MIN), 1.0);
    assert_near(score_timeliness(&c, 5 * MIN + 1), 0.2);
    assert_near(score_timeliness(&c, 30 * MIN), 0.2);
    assert_near(score_timeliness(&c, 30 * MIN + 1), 0.0);
    /* full == window: full credit to the end, nothing after. */
    c.full_ms = c.window_ms;
    assert_near(score_timeliness(&c, 30 * MIN), 1.0);
    assert_near(score_timeliness(&c, 30 * MIN + 1), 0.0);
}

static void test_config_json(void **state)
{
    score_config c, d;
    char err[256];
    json_t *j;
    (void)state;
    score_config_defaults(&c);
    j = load("{\"weights\":{\"detection\":50,\"injects\":0},\"window_ms\":2700000,"
             "\"full_ms\":600000,\"decay\":\"exponential\",\"floor\":0.25,"
             "\"fp_penalty\":2.5,\"fp_cap\":10,\"c2_quiet_ms\":60000}");
    assert_int_equal(score_config_from_json(&c, j, err, sizeof(err)), 0);
    json_decref(j);
    assert_near(c.w_detection, 50);
    assert_near(c.w_availability, 30); /* untouched */
    assert_near(c.w_injects, 0);
    assert_int_equal(c.window_ms, 2700000);
    assert_int_equal(c.full_ms, 600000);
    assert_int_equal(c.decay, SCORE_DECAY_EXPONENTIAL);
    assert_near(c.floor, 0.25);
    assert_near(c.fp_penalty, 2.5);
    assert_int_equal(c.c2_quiet_ms, 60000);

    score_config_defaults(&c);
    d = c;
    j = load("{\"window_ms\":\"30m\"}");
    assert_int_equal(score_config_from_json(&c, j, err, sizeof(err)), -1);
    assert_string_equal(err, "window_ms: expected an integer from 60000 to 86400000");
    json_decref(j);
    /* Unchanged on error (field by field: the struct has padding). */
    assert_int_equal(c.window_ms, d.window_ms);
    assert_int_equal(c.full_ms, d.full_ms);
    assert_near(c.w_detection, d.w_detection);
    j = load("{\"full_ms\":60000,\"window_ms\":3600000,\"floor\":2}");
    assert_int_equal(score_config_from_json(&c, j, err, sizeof(err)), -1);
    assert_string_equal(err, "floor: expected a number from 0 to 1");
    json_decref(j);
    assert_int_equal(c.window_ms, d.window_ms); /* nothing half-applied */
    assert_int_equal(c.full_ms, d.full_ms);
    j = load("{\"full_ms\":3600000}");
    assert_int_equal(score_config_from_json(&c, j, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "full_ms"));
    json_decref(j);
    j = load("{\"weights\":{\"detection\":0,\"availability\":0,\"reports\":0,\"injects\":0}}");
    assert_int_equal(score_config_from_json(&c, j, err, sizeof(err)), -1);
    assert_string_equal(err, "weights: at least one must be positive");
    json_decref(j);
    j = load("{\"decay\":\"cubic\"}");
    assert_int_equal(score_config_from_json(&c, j, err, sizeof(err)), -1);
    json_decref(j);
    j = load("{\"windw_ms\":60000}");
    assert_int_equal(score_config_from_json(&c, j, err, sizeof(err)), -1);
    assert_string_equal(err, "windw_ms: unknown key");
    json_decref(j);
}

/* The time window: 5 s before the start is in, 1 ms more is out; the end
 * of the window is in (at the floor), 1 ms more is out. */
static void test_window_boundaries(void **state)
{
    static const struct {
        long long at;
        int matched;
        double credit;
    } cases[] = {
        { T0 - 5000, 1, 40.0 },
        { T0 - 5001, 0, 0.0 },
        { T0 + 30 * MIN, 1, 8.0 }, /* 40 x floor 0.2 */
        { T0 + 30 * MIN + 1, 0, 0.0 },
        { T0 + 5 * MIN, 1, 40.0 },
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char f[256];
        json_t *out;
        snprintf(f, sizeof(f), "{\"id\":1,\"detected_ms\":%lld,"
                 "\"community_id\":\"1:LQU9qZlK+B5F3KDmev6m5PMibrg=\"}", cases[i].at);
        out = score_one(f);
        assert_int_equal(json_is_true(json_object_get(step_out(out, 0), "detected")),
                         cases[i].matched);
        assert_near(num(step_out(out, 0), "credit"), cases[i].credit);
        /* An unmatched finding is a false positive: 40 - 5 is not taken
         * from a zero credit, the axis stays at 0. */
        assert_near(num(axis(out, "detection"), "points"), cases[i].matched ? cases[i].credit
                                                                            : 0.0);
        assert_int_equal(json_is_true(json_object_get(finding_out(out, 0), "false_positive")),
                         !cases[i].matched);
        json_decref(out);
    }
}

static void test_tiers(void **state)
{
    json_t *out;
    (void)state;
    /* 5-tuple in the reverse orientation, source port left out. */
    out = score_one("{\"id\":1,\"detected_ms\":10060000,\"flow\":{\"proto\":\"tcp\","
                    "\"src\":\"198.18.2.1\",\"sport\":3128,\"dst\":\"198.18.2.100\"}}");
    assert_string_equal(json_string_value(json_object_get(step_out(out, 0), "tier")), "flow");
    assert_near(num(step_out(out, 0), "credit"), 40.0);
    assert_non_null(strstr(item_reason(out, "detection", 0),
                           "flow tcp 198.18.2.1:3128 -> 198.18.2.100:*"));
    json_decref(out);
    /* Wrong destination port: not the flow; the addresses still are
     * indicators of the step. */
    out = score_one("{\"id\":1,\"detected_ms\":10060000,\"flow\":{\"proto\":\"tcp\","
                    "\"src\":\"198.18.2.100\",\"dst\":\"198.18.2.1\",\"dport\":80}}");
    assert_string_equal(json_string_value(json_object_get(step_out(out, 0), "tier")),
                        "indicator");
    assert_near(num(step_out(out, 0), "credit"), 20.0);
    json_decref(out);
    /* Parent technique and a host by address. */
    out = score_one("{\"id\":1,\"detected_ms\":10060000,\"hosts\":[\"198.18.2.100\"],"
                    "\"technique\":\"T1071\"}");
    assert_string_equal(json_string_value(json_object_get(step_out(out, 0), "tier")),
                        "host+technique");
    assert_near(num(step_out(out, 0), "credit"), 32.0);
    assert_string_equal(item_reason(out, "detection", 0),
                        "+32.0 detection of step beacon: finding #1 matched by host "
                        "198.18.2.100 and technique T1071, 1m00s after start (of 40.0: "
                        "host+technique x0.8, timeliness 1.00)");
    json_decref(out);
    /* A sibling technique is not related: that finding is a false positive. */
    out = score_one("{\"id\":1,\"detected_ms\":10060000,\"hosts\":[\"PC1\"],"
                    "\"technique\":\"T1071.004\"}");
    assert_true(json_is_null(json_object_get(step_out(out, 0), "tier")));
    assert_true(json_is_true(json_object_get(finding_out(out, 0), "false_positive")));
    json_decref(out);
    /* Domain, case-insensitive, with the root's dot. */
    out = score_one("{\"id\":1,\"detected_ms\":10060000,"
                    "\"indicators\":{\"domains\":[\"Update.EXARNPLE.test.\"]}}");
    assert_string_equal(json_string_value(json_object_get(step_out(out, 0), "tier")),
                        "indicator");
    json_decref(out);
    /* URL prefix at a '/' boundary matches; a prefix inside a segment does not. */
    out = score_one("{\"id\":1,\"detected_ms\":10060000,"
                    "\"indicators\":{\"urls\":[\"HTTP://update.exarnple.test/c2\"]}}");
    assert_string_equal(json_string_value(json_object_get(step_out(out, 0), "tier")),
                        "indicator");
    assert_non_null(strstr(item_reason(out, "detection", 0), "indicator URL"));
    json_decref(out);
    out = score_one("{\"id\":1,\"detected_ms\":10060000,"
                    "\"indicators\":{\"urls\":[\"http://update.exarnple.test/c\"]}}");
    assert_true(json_is_false(json_object_get(step_out(out, 0), "detected")));
    json_decref(out);
}

/* The flow finding wins though it came later; at equal tiers the earlier,
 * then the lower id.  The losers are neither credited nor false positives. */
static void test_best_finding(void **state)
{
    json_t *out;
    const json_t *f;
    (void)state;
    out = score_one("{\"id\":1,\"detected_ms\":10060000,\"hosts\":[\"pc1\"],"
                    "\"technique\":\"T1071.001\"},"
                    "{\"id\":2,\"detected_ms\":10600000,"
                    "\"community_id\":\"1:LQU9qZlK+B5F3KDmev6m5PMibrg=\"}");
    assert_int_equal(json_integer_value(json_object_get(step_out(out, 0), "finding")), 2);
    assert_int_equal(json_integer_value(json_object_get(step_out(out, 0), "delay_ms")), 600000);
    assert_rounded(num(step_out(out, 0), "credit"), 40.0 * (1.0 - 0.8 * 5.0 / 25.0));
    f = finding_out(out, 0);
    assert_int_equal(json_integer_value(json_object_get(f, "id")), 1);
    assert_true(json_is_false(json_object_get(f, "false_positive")));
    assert_int_equal(json_array_size(json_object_get(f, "credited")), 0);
    assert_int_equal(json_array_size(json_object_get(f, "matched")), 1);
    assert_near(num(out, "precision"), 1.0);
    json_decref(out);
    /* Same tier: earliest wins (id 5 detected before id 3). */
    out = score_one("{\"id\":3,\"detected_ms\":10120000,\"hosts\":[\"pc1\"],"
                    "\"technique\":\"T1071\"},"
                    "{\"id\":5,\"detected_ms\":10060000,\"hosts\":[\"attacker\"],"
                    "\"technique\":\"T1071.001\"}");
    assert_int_equal(json_integer_value(json_object_get(step_out(out, 0), "finding")), 5);
    json_decref(out);
    /* Same tier and time: the lower id; findings come out ordered by id. */
    out = score_one("{\"id\":9,\"detected_ms\":10060000,\"hosts\":[\"pc1\"],"
                    "\"technique\":\"T1071\"},"
                    "{\"id\":4,\"detected_ms\":10060000,\"hosts\":[\"pc1\"],"
                    "\"technique\":\"T1071\"}");
    assert_int_equal(json_integer_value(json_object_get(step_out(out, 0), "finding")), 4);
    assert_int_equal(json_integer_value(json_object_get(finding_out(out, 0), "id")), 4);
    assert_int_equal(json_integer_value(json_object_get(finding_out(out, 1), "id")), 9);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(out, "false_positives"),
                                                        "count")), 0);
    json_decref(out);
}

/* One finding (the attacker's address) covers two steps. */
static void test_one_finding_many_steps(void **state)
{
    char text[4096];
    json_t *out;
    const json_t *matched;
    (void)state;
    snprintf(text, sizeof(text),
             "{\"now_ms\":%lld,\"steps\":[" BEACON_STEP ","
             "{\"step\":\"exfil\",\"technique\":\"T1048\",\"actor\":\"files\","
             "\"target\":\"attacker\",\"target_addr\":\"198.18.0.66\",\"start_ms\":%lld,"
             "\"outcome\":\"succeeded\",\"points\":3,\"artefacts\":{\"ips\":[\"198.18.0.66\"]}}],"
             "\"findings\":[{\"id\":1,\"detected_ms\":%lld,"
             "\"indicators\":{\"ips\":[\"198.18.0.66\"]}}]}",
             T0 + 60 * MIN, T0 + 2 * MIN, T0 + 3 * MIN);
    out = score_text(NULL, text);
    assert_true(json_is_null(json_object_get(out, "team")));
    /* Shares by points: 10 and 30; indicator tier halves them. */
    assert_near(num(step_out(out, 0), "credit"), 5.0);
    assert_near(num(step_out(out, 1), "credit"), 15.0);
    assert_near(num(axis(out, "detection"), "points"), 20.0);
    matched = json_object_get(finding_out(out, 0), "credited");
    assert_int_equal(json_array_size(matched), 2);
    assert_string_equal(json_string_value(json_array_get(matched, 1)), "exfil");
    assert_near(num(out, "recall"), 1.0);
    json_decref(out);
}

static void test_labels(void **state)
{
    json_t *out;
    const char *cid = "\"community_id\":\"1:LQU9qZlK+B5F3KDmev6m5PMibrg=\"";
    char f[1024];
    (void)state;
    snprintf(f, sizeof(f),
             "{\"id\":1,\"detected_ms\":10060000,%s,\"label\":\"duplicate\"},"
             "{\"id\":2,\"detected_ms\":10060000,%s,\"label\":\"benign\"},"
             "{\"id\":3,\"detected_ms\":10060000,%s,\"label\":\"unscripted\"},"
             "{\"id\":4,\"detected_ms\":10060000,\"hosts\":[\"mail\"],\"label\":\"duplicate\"},"
             "{\"id\":5,\"detected_ms\":10060000,\"hosts\":[\"mail\"],\"label\":\"unscripted\"}",
             cid, cid, cid);
    out = score_one(f);
    /* Nobody may take credit: the only matching findings are labelled. */
    assert_true(json_is_false(json_object_get(step_out(out, 0), "detected")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(out, "false_positives"),
                                                        "count")), 1);
    assert_true(json_is_false(json_object_get(finding_out(out, 0), "false_positive")));
    assert_int_equal(json_array_size(json_object_get(finding_out(out, 0), "matched")), 0);
    assert_true(json_is_true(json_object_get(finding_out(out, 1), "false_positive")));
    assert_int_equal(json_array_size(json_object_get(finding_out(out, 1), "matched")), 1);
    assert_true(json_is_false(json_object_get(finding_out(out, 2), "false_positive")));
    assert_true(json_is_false(json_object_get(finding_out(out, 3), "false_positive")));
    assert_true(json_is_false(json_object_get(finding_out(out, 4), "false_positive")));
    assert_near(num(out, "precision"), 0.0);
    assert_near(num(out, "recall"), 0.0);
    assert_string_equal(item_reason(out, "detection", 1),
                        "-5.0 false positive: finding #2 labelled benign by an instructor");
    json_decref(out);
}

/* Six false positives at 5 points are capped at 20, and the axis keeps the
 * 12 points of credit it had above zero. */
static void test_fp_cap(void **state)
{
    char f[2048] = "{\"id\":100,\"detected_ms\":10060000,\"hosts\":[\"pc1\"],"
                   "\"technique\":\"T1071\"}";
    json_t *out;
    const json_t *items;
    int i;
    (void)state;
    for (i = 0; i < 6; i++)
        snprintf(f + strlen(f), sizeof(f) - strlen(f),
                 ",{\"id\":%d,\"detected_ms\":10060000,\"hosts\":[\"files\"]}", i + 1);
    out = score_one(f);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(out, "false_positives"),
                                                        "count")), 6);
    assert_near(num(json_object_get(out, "false_positives"), "points"), -20.0);
    assert_near(num(axis(out, "detection"), "points"), 12.0);
    items = json_object_get(axis(out, "detection"), "items");
    assert_int_equal(json_array_size(items), 7);
    assert_near(num(json_array_get(items, 4), "points"), -5.0);
    assert_near(num(json_array_get(items, 5), "points"), 0.0);
    assert_non_null(strstr(item_reason(out, "detection", 5), "(penalty capped)"));
    assert_near(num(finding_out(out, 5), "penalty"), 0.0);
    json_decref(out);
    /* A smaller credit: the axis stops at 0 and says so. */
    out = score_one("{\"id\":100,\"detected_ms\":11200000,\"indicators\":{\"ips\":"
                    "[\"198.18.0.66\"]}},{\"id\":1,\"detected_ms\":10060000},"
                    "{\"id\":2,\"detected_ms\":10060000},{\"id\":3,\"detected_ms\":10060000},"
                    "{\"id\":4,\"detected_ms\":10060000},{\"id\":5,\"detected_ms\":10060000}");
    /* 40 x 0.5 x timeliness(15m) = 10.4, less than the 20 taken. */
    assert_near(num(axis(out, "detection"), "points"), 0.0);
    assert_string_equal(item_reason(out, "detection", 6),
                        "+9.6 false positives beyond the detection credit are not taken "
                        "(the axis never goes below 0)");
    json_decref(out);
}

static void test_never_landed(void **state)
{
    char text[4096];
    json_t *out;
    (void)state;
    snprintf(text, sizeof(text),
             "{\"now_ms\":%lld,\"steps\":["
             "{\"step\":\"lateral\",\"technique\":\"T1021.004\",\"actor\":\"pc1\","
             "\"target\":\"files\",\"start_ms\":%lld,\"outcome\":\"failed\","
             "\"flows\":[{\"proto\":\"tcp\",\"src\":\"198.18.2.100\",\"dst\":\"198.18.1.21\","
             "\"dport\":22,\"seen\":false}]},"
             "{\"step\":\"skipped\",\"outcome\":\"skipped\"},"
             "{\"step\":\"brute\",\"technique\":\"T1110.001\",\"actor\":\"pc1\","
             "\"target\":\"files\",\"start_ms\":%lld,\"outcome\":\"failed\","
             "\"flows\":[{\"proto\":\"tcp\",\"src\":\"198.18.2.100\",\"dst\":\"198.18.1.21\","
             "\"dport\":21,\"seen\":true}]}],"
             "\"findings\":[{\"id\":1,\"detected_ms\":%lld,\"hosts\":[\"files\"],"
             "\"technique\":\"T1021\"}]}",
             T0 + 60 * MIN, T0, T0 + MIN, T0 + 2 * MIN);
    out = score_text(NULL, text);
    assert_true(json_is_false(json_object_get(step_out(out, 0), "landed")));
    assert_true(json_is_false(json_object_get(step_out(out, 1), "landed")));
    assert_true(json_is_true(json_object_get(step_out(out, 2), "landed")));
    assert_string_equal(item_reason(out, "detection", 0),
                        "0 detection of step lateral: not scored: never landed (outcome failed)");
    /* The finding names the never-landed lateral move: no credit, a false
     * positive; the failed but seen brute force is the whole axis. */
    assert_true(json_is_true(json_object_get(finding_out(out, 0), "false_positive")));
    assert_near(num(step_out(out, 2), "max"), 40.0);
    assert_int_equal(json_integer_value(json_object_get(out, "landed_steps")), 1);
    assert_near(num(out, "recall"), 0.0);
    json_decref(out);
    /* A step still running has landed: a finding about it is a detection. */
    snprintf(text, sizeof(text),
             "{\"now_ms\":%lld,\"steps\":[{\"step\":\"exfil\",\"technique\":\"T1048\","
             "\"actor\":\"files\",\"start_ms\":%lld,\"outcome\":\"running\"}],"
             "\"findings\":[{\"id\":1,\"detected_ms\":%lld,\"hosts\":[\"files\"],"
             "\"technique\":\"T1048\"}]}",
             T0 + 10 * MIN, T0, T0 + 2 * MIN);
    out = score_text(NULL, text);
    assert_true(json_is_true(json_object_get(step_out(out, 0), "landed")));
    assert_near(num(step_out(out, 0), "credit"), 32.0);
    json_decref(out);
}

#define CHECK_RESULTS(ok_pattern)                                                          \
    do {                                                                                   \
        int k_;                                                                            \
        for (k_ = 0; k_ < (int)strlen(ok_pattern); k_++)                                  \
            snprintf(text + strlen(text), sizeof(text) - strlen(text),                     \
                     "%s{\"ts_ms\":%lld,\"ok\":%s}", k_ ? "," : "", T0 + k_ * 30000LL,     \
                     (ok_pattern)[k_] == '+' ? "true" : "false");                          \
    } while (0)

static void test_checks(void **state)
{
    char text[8192];
    json_t *out;
    const json_t *it;
    (void)state;
    /* 24 probes: 2 down, 1 up, 6 down (3m), 15 up -> 16/24 up; informative
     * check all down; now is after the last probe. */
    snprintf(text, sizeof(text), "{\"now_ms\":%lld,\"checks\":["
             "{\"id\":\"mail-smtp\",\"sla\":0.95,\"interval_ms\":30000,\"results\":[",
             T0 + 30 * MIN);
    CHECK_RESULTS("--+------+++++++++++++++");
    snprintf(text + strlen(text), sizeof(text) - strlen(text),
             "]},{\"id\":\"files-ftp\",\"sla\":0.9,\"results\":[");
    CHECK_RESULTS("+++++---");
    snprintf(text + strlen(text), sizeof(text) - strlen(text),
             "]},{\"id\":\"c2-reachable\",\"sla\":0,\"results\":[");
    CHECK_RESULTS("---");
    snprintf(text + strlen(text), sizeof(text) - strlen(text),
             "]},{\"id\":\"dns\",\"sla\":0.5,\"results\":[{\"ts_ms\":%lld,\"ok\":false}]}]}",
             T0 + 31 * MIN);
    out = score_text(NULL, text);
    /* Three scored checks (sla > 0), 10 points each. */
    assert_string_equal(item_reason(out, "availability", 0),
                        "+7.0 availability check mail-smtp: 66% up (SLA 95%), 2 outages "
                        "totalling 4m00s (longest 3m00s), each restored within 3m00s of impact");
    assert_rounded(num(json_array_get(json_object_get(axis(out, "availability"), "items"), 0),
                       "points"), 10.0 * (16.0 / 24.0) / 0.95);
    it = json_array_get(json_object_get(axis(out, "availability"), "items"), 1);
    assert_string_equal(json_string_value(json_object_get(it, "reason")),
                        "+6.9 availability check files-ftp: 62% up (SLA 90%), 1 outage, "
                        "down for 27m30s and not restored");
    assert_true(json_is_null(json_object_get(json_array_get(json_object_get(it, "outages"), 0),
                                             "end_ms")));
    assert_string_equal(item_reason(out, "availability", 2),
                        "0 availability check c2-reachable: 0% up (SLA 0: informative, not "
                        "scored), 1 outage, down for 30m00s and not restored");
    /* A probe after now does not count yet. */
    assert_string_equal(item_reason(out, "availability", 3),
                        "0 availability check dns: no probe result yet (SLA 50%)");
    json_decref(out);
    /* One outage, restored, over SLA: full credit. */
    text[0] = '\0';
    snprintf(text, sizeof(text), "{\"now_ms\":%lld,\"checks\":[{\"id\":\"web\",\"sla\":0.5,"
             "\"results\":[", T0 + 30 * MIN);
    CHECK_RESULTS("+---------++++++++++");
    snprintf(text + strlen(text), sizeof(text) - strlen(text), "]}]}");
    out = score_text(NULL, text);
    assert_string_equal(item_reason(out, "availability", 0),
                        "+30.0 availability check web: 55% up (SLA 50%), 1 outage of 4m30s, "
                        "restored 4m30s after impact");
    json_decref(out);
}

static void test_containment(void **state)
{
    char text[4096];
    json_t *out;
    const char *step =
        "{\"step\":\"beacon\",\"technique\":\"T1071.001\",\"actor\":\"pc1\","
        "\"actor_addr\":\"198.18.2.100\",\"start_ms\":10000000,\"outcome\":\"succeeded\","
        "\"c2\":{\"addr\":\"198.18.0.66\",\"port\":80,\"via\":{\"addr\":\"198.18.2.1\","
        "\"port\":3128}}}";
    (void)state;
    /* Beacons through the proxy until start + 12m, now start + 20m: quiet
     * for 8m >= 5m, contained 12m after the start: linear 1 - 0.8 * 7/25. */
    snprintf(text, sizeof(text), "{\"now_ms\":%lld,\"steps\":[%s],\"wire_flows\":["
             "{\"proto\":\"tcp\",\"src\":\"198.18.2.100\",\"sport\":40001,\"dst\":\"198.18.2.1\","
             "\"dport\":3128,\"first\":%lld,\"last\":%lld,\"packets\":10},"
             "{\"proto\":\"tcp\",\"src\":\"198.18.2.1\",\"sport\":40001,\"dst\":\"198.18.0.66\","
             "\"dport\":80,\"first\":%lld,\"last\":%lld,\"packets\":10},"
             "{\"proto\":\"tcp\",\"src\":\"198.18.2.100\",\"sport\":40002,\"dst\":\"198.18.2.1\","
             "\"dport\":3128,\"first\":%lld,\"last\":%lld,\"packets\":10}]}",
             T0 + 20 * MIN, step, T0 + 11 * MIN, T0 + 12 * MIN, T0 + MIN, T0 + 2 * MIN,
             T0 - 10 * MIN, T0 - 9 * MIN);
    out = score_text(NULL, text);
    assert_rounded(num(axis(out, "availability"), "points"), 30.0 * (1.0 - 0.8 * 7.0 / 25.0));
    assert_string_equal(item_reason(out, "availability", 0),
                        "+23.3 containment of C2 198.18.0.66:80 (step beacon): contained "
                        "12m00s after the step started, quiet for 8m00s");
    json_decref(out);
    /* Still beaconing: last seen 20 s before now. */
    snprintf(text, sizeof(text), "{\"now_ms\":%lld,\"steps\":[%s],\"wire_flows\":["
             "{\"src\":\"198.18.2.1\",\"sport\":40001,\"dst\":\"198.18.0.66\","
             "\"dport\":80,\"first\":%lld,\"last\":%lld}]}",
             T0 + 20 * MIN, step, T0 + MIN, T0 + 20 * MIN - 20000);
    out = score_text(NULL, text);
    assert_near(num(axis(out, "availability"), "points"), 0.0);
    assert_string_equal(item_reason(out, "availability", 0),
                        "0 containment of C2 198.18.0.66:80 (step beacon): still beaconing, "
                        "last seen 20s ago");
    json_decref(out);
    /* Nothing on the wire: contained at the start once quiet for 5m, not
     * before. */
    snprintf(text, sizeof(text), "{\"now_ms\":%lld,\"steps\":[%s]}", T0 + 5 * MIN, step);
    out = score_text(NULL, text);
    assert_near(num(axis(out, "availability"), "points"), 30.0);
    assert_non_null(strstr(item_reason(out, "availability", 0), "is the capture running?"));
    json_decref(out);
    snprintf(text, sizeof(text), "{\"now_ms\":%lld,\"steps\":[%s]}", T0 + 5 * MIN - 1, step);
    out = score_text(NULL, text);
    assert_near(num(axis(out, "availability"), "points"), 0.0);
    assert_non_null(strstr(item_reason(out, "availability", 0), "no beacon seen yet"));
    json_decref(out);
}

static void test_reports_injects(void **state)
{
    json_t *out;
    (void)state;
    out = score_text(NULL, "{\"now_ms\":5000000,\"grades\":{\"reports\":["
                     "{\"id\":3,\"points\":8,\"max\":10,\"reason\":\"clear timeline\"},"
                     "{\"id\":4,\"points\":2,\"max\":10}],"
                     "\"injects\":[{\"step\":\"press\",\"points\":5,\"max\":10}]},"
                     "\"inject_steps\":["
                     "{\"step\":\"press\",\"points\":10,\"deadline_ms\":1200000,"
                     "\"start_ms\":1000000,\"responded_ms\":1500000},"
                     "{\"step\":\"ceo\",\"points\":10,\"deadline_ms\":1200000,"
                     "\"start_ms\":1000000,\"responded_ms\":null},"
                     "{\"step\":\"legal\",\"points\":10,\"deadline_ms\":1200000,"
                     "\"start_ms\":4000000},"
                     "{\"step\":\"it\",\"points\":10,\"deadline_ms\":60000,"
                     "\"start_ms\":4000000,\"responded_ms\":4100000}]}");
    assert_near(num(axis(out, "reports"), "points"), 10.0);
    assert_string_equal(item_reason(out, "reports", 0),
                        "+8.0 report #3: 8/10: clear timeline");
    /* 5 of (10 graded + 10 missed). */
    assert_near(num(axis(out, "injects"), "points"), 2.5);
    assert_string_equal(item_reason(out, "injects", 1),
                        "0 inject ceo: no response within deadline (0/10)");
    assert_string_equal(item_reason(out, "injects", 2),
                        "0 inject legal: awaiting a response, deadline in 3m20s");
    assert_string_equal(item_reason(out, "injects", 3),
                        "0 inject it: responded 1m40s after it was sent (after the deadline), "
                        "not graded yet");
    json_decref(out);
    out = score_text(NULL, "{\"now_ms\":0}");
    assert_string_equal(item_reason(out, "reports", 0), "0 reports: not graded yet");
    assert_string_equal(item_reason(out, "injects", 0), "0 injects: not graded yet");
    assert_near(num(out, "total"), 0.0);
    assert_near(num(out, "max"), 100.0);
    assert_true(json_is_null(json_object_get(out, "precision")));
    assert_true(json_is_null(json_object_get(out, "recall")));
    json_decref(out);
}

static void test_malformed(void **state)
{
    static const struct {
        const char *in, *err;
    } cases[] = {
        { "[]", "input: expected an object" },
        { "{}", "now_ms: missing; expected an integer" },
        { "{\"now_ms\":1.5}", "now_ms: expected an integer" },
        { "{\"now_ms\":1,\"steps\":{}}", "steps: expected an array" },
        { "{\"now_ms\":1,\"findings\":[{\"id\":1,\"detected_ms\":1},{\"id\":2,"
          "\"detected_ms\":\"10:00\"}]}",
          "findings[1].detected_ms: expected an integer" },
        { "{\"now_ms\":1,\"findings\":[{\"id\":1}]}",
          "findings[0].detected_ms: missing; expected an integer" },
        { "{\"now_ms\":1,\"findings\":[{\"id\":1,\"detected_ms\":1,\"label\":\"wrong\"}]}",
          "findings[0].label: expected null, \"duplicate\", \"benign\" or \"unscripted\"" },
        { "{\"now_ms\":1,\"findings\":[{\"id\":1,\"detected_ms\":1,\"indicators\":"
          "{\"ips\":[\"198.18.0.1\",7]}}]}",
          "findings[0].indicators.ips[1]: expected a string" },
        { "{\"now_ms\":1,\"findings\":[{\"id\":1,\"detected_ms\":1,\"flow\":{\"dport\":70000}}]}",
          "findings[0].flow.dport: expected a port from 0 to 65535" },
        { "{\"now_ms\":1,\"steps\":[{\"step\":\"a\",\"outcome\":\"succeeded\"}]}",
          "steps[0].start_ms: missing; expected an integer" },
        { "{\"now_ms\":1,\"steps\":[{\"step\":\"a\",\"outcome\":\"done\",\"start_ms\":1}]}",
          "steps[0].outcome: expected succeeded, running, failed, error, skipped or timeout" },
        { "{\"now_ms\":1,\"steps\":[{\"step\":\"a\",\"outcome\":\"failed\",\"flows\":"
          "[{\"seen\":1}]}]}",
          "steps[0].flows[0].seen: expected true or false" },
        { "{\"now_ms\":1,\"steps\":[{\"step\":\"a\",\"outcome\":\"succeeded\",\"start_ms\":1,"
          "\"c2\":{\"port\":80}}]}",
          "steps[0].c2.addr: missing; expected a string" },
        { "{\"now_ms\":1,\"checks\":[{\"id\":\"x\",\"results\":[{\"ts_ms\":1}]}]}",
          "checks[0].results[0].ok: missing; expected true or false" },
        { "{\"now_ms\":1,\"checks\":[{\"id\":\"x\",\"sla\":2}]}",
          "checks[0].sla: expected a number from 0 to 1" },
        { "{\"now_ms\":1,\"wire_flows\":[{\"src\":\"a\",\"dst\":\"b\",\"first\":1}]}",
          "wire_flows[0].last: missing; expected an integer" },
        { "{\"now_ms\":1,\"grades\":{\"reports\":[{\"id\":1,\"points\":11,\"max\":10}]}}",
          "grades.reports[0].points: expected a number from 0 to max (10)" },
        { "{\"now_ms\":1,\"inject_steps\":[{\"step\":\"press\",\"points\":10}]}",
          "inject_steps[0].start_ms: missing; expected an integer" },
    };
    score_config c;
    char err[256];
    size_t i;
    (void)state;
    score_config_defaults(&c);
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *in = load(cases[i].in), *out;
        err[0] = '\0';
        out = score_team(&c, in, err, sizeof(err));
        if (out != NULL)
            fail_msg("case %zu: accepted", i);
        assert_string_equal(err, cases[i].err);
        json_decref(in);
    }
}

static void test_format_text(void **state)
{
    json_t *out;
    char *t;
    (void)state;
    out = score_one("{\"id\":7,\"detected_ms\":10192000,"
                    "\"community_id\":\"1:LQU9qZlK+B5F3KDmev6m5PMibrg=\"},"
                    "{\"id\":9,\"detected_ms\":10060000,\"hosts\":[\"mail\"]}");
    t = score_format_text(out);
    assert_non_null(t);
    assert_non_null(strstr(t, "team 1: 35.0 / 100.0\n"));
    assert_non_null(strstr(t, "detection      35.0 / 40.0\n"));
    assert_non_null(strstr(t, "    +40.0 detection of step beacon: finding #7 matched by "
                              "community-id 1:LQU9\xe2\x80\xa6, 3m12s after start\n"));
    assert_non_null(strstr(t, "    -5.0 false positive: finding #9 matches no step\n"));
    assert_non_null(strstr(t, "precision 0.500, recall 1.000\n"));
    free(t);
    json_decref(out);
    assert_null(score_format_text(NULL));
    out = json_integer(3);
    assert_null(score_format_text(out));
    json_decref(out);
}

/* ------------------------------------------------------------------ */
/* Golden cases                                                        */

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *canon(const json_t *j)
{
    return json_dumps(j, JSON_SORT_KEYS | JSON_INDENT(2) | JSON_REAL_PRECISION(12));
}

static void test_golden(void **state)
{
    const char *dir = "tests/golden/scoring";
    int regen = getenv("GOLDEN_REGENERATE") != NULL;
    char *names[256];
    size_t n = 0, i, failed = 0;
    struct dirent *de;
    DIR *d;
    (void)state;

    d = opendir(dir);
    assert_non_null(d);
    while ((de = readdir(d)) != NULL && n < 256) {
        char p[512];
        if (de->d_name[0] == '.')
            continue;
        snprintf(p, sizeof(p), "%s/%s/input.json", dir, de->d_name);
        if (access(p, R_OK) == 0)
            names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof(*names), cmp_names);
    assert_true(n >= 8);
    for (i = 0; i < n; i++) {
        char ip[512], ep[512], err[512];
        json_error_t je;
        json_t *in, *out = NULL, *exp, *cfg;
        score_config c;
        char *got, *want = NULL;

        snprintf(ip, sizeof(ip), "%s/%s/input.json", dir, names[i]);
        snprintf(ep, sizeof(ep), "%s/%s/expected.json", dir, names[i]);
        in = json_load_file(ip, 0, &je);
        if (in == NULL)
            fail_msg("%s:%d:%d: %s", ip, je.line, je.column, je.text);
        score_config_defaults(&c);
        err[0] = '\0';
        cfg = json_object_get(in, "config");
        if (cfg == NULL || score_config_from_json(&c, cfg, err, sizeof(err)) == 0)
            out = score_team(&c, in, err, sizeof(err));
        /* A case may expect an error: {"error": "..."}. */
        if (out == NULL)
            out = json_pack("{ss}", "error", err);
        got = canon(out);
        if (regen) {
            FILE *f = fopen(ep, "w");
            assert_non_null(f);
            fprintf(f, "%s\n", got);
            fclose(f);
            printf("regenerated %s\n", ep);
        } else {
            exp = json_load_file(ep, 0, &je);
            if (exp == NULL) {
                printf("%s: missing or unreadable (%s); GOLDEN_REGENERATE=1 writes it\n", ep,
                       je.text);
                failed++;
            } else {
                want = canon(exp);
                if (strcmp(got, want) != 0) {
                    printf("%s: differs from the score of %s:\n%s\n", ep, ip, got);
                    failed++;
                }
                json_decref(exp);
            }
        }
        free(want);
        free(got);
        json_decref(out);
        json_decref(in);
        free(names[i]);
    }
    assert_int_equal(failed, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timeliness_shapes),
        cmocka_unit_test(test_config_json),
        cmocka_unit_test(test_window_boundaries),
        cmocka_unit_test(test_tiers),
        cmocka_unit_test(test_best_finding),
        cmocka_unit_test(test_one_finding_many_steps),
        cmocka_unit_test(test_labels),
        cmocka_unit_test(test_fp_cap),
        cmocka_unit_test(test_never_landed),
        cmocka_unit_test(test_checks),
        cmocka_unit_test(test_containment),
        cmocka_unit_test(test_reports_injects),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_format_text),
        cmocka_unit_test(test_golden),
    };
    if (chdir(CYRANGE_SRCDIR) < 0)
        return 1;
    return cmocka_run_group_tests_name("score", tests, NULL, NULL);
}
