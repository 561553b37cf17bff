/* Unit tests for findings (validation, labels, folding the log), UTC times
 * (units_utc_parse) and scorecard (journal lines to score input). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "findings.h"
#include "scorecard.h"
#include "units.h"

#define NOW 1795313300000LL /* 2026-11-22T02:08:20Z */

static scenario *scn;

static int setup(void **state)
{
    diag_list d;
    (void)state;
    if (chdir(CYRANGE_SRCDIR) != 0)
        return -1;
    diag_init(&d);
    scn = scenario_load("scenarios/targeted-mail.json", &d);
    diag_clear(&d);
    return scn ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    scenario_free(scn);
    return 0;
}

static json_t *parse(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    if (j == NULL)
        fail_msg("bad test JSON at %d:%d: %s", je.line, je.column, je.text);
    return j;
}

static json_t *norm(const char *text, char *err, size_t errlen)
{
    json_t *in = parse(text);
    json_t *out = findings_normalize(in, scn, 1, NOW, err, errlen);
    json_decref(in);
    return out;
}

static void test_utc(void **state)
{
    long long ms = 0;
    (void)state;
    assert_int_equal(units_utc_parse("2026-11-22T02:08:20Z", &ms), 0);
    assert_int_equal(ms, NOW);
    assert_int_equal(units_utc_parse("2026-11-22T02:08:20.5Z", &ms), 0);
    assert_int_equal(ms, NOW + 500);
    assert_int_equal(units_utc_parse("2026-11-22T02:08:20.123Z", &ms), 0);
    assert_int_equal(ms, NOW + 123);
    assert_int_equal(units_utc_parse("2026-11-22T11:08:20+09:00", &ms), 0);
    assert_int_equal(ms, NOW);
    assert_int_equal(units_utc_parse("2026-11-21T21:08:20-05:00", &ms), 0);
    assert_int_equal(ms, NOW);
    const char *bad[] = { "", "2026-11-22", "2026-11-22T02:08:20", "2026-13-22T02:08:20Z",
                          "2026-11-22T25:08:20Z", "2026-11-22T02:08:20.Z",
                          "2026-11-22T02:08:20Zjunk", "2026-11-22 02:08:20Z",
                          "2026-11-22T02:08:20+9:00" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ms = -7;
        if (units_utc_parse(bad[i], &ms) == 0)
            fail_msg("'%s' accepted", bad[i]);
        assert_int_equal(ms, -7);
    }
}

static void test_valid_finding(void **state)
{
    char err[512];
    (void)state;
    json_t *f = norm("{\"detected\":\"2026-11-22T02:08:00Z\",\"hosts\":[\"pc1\",\"198.18.2.100\"],"
                     "\"indicators\":{\"ips\":[\"198.18.0.66\"],\"domains\":[\"update.exarnple.test\"],"
                     "\"hashes\":[\"d41d8cd98f00b204e9800998ecf8427e\"]},"
                     "\"flow\":{\"proto\":\"tcp\",\"src\":\"198.18.2.100\",\"dst\":\"198.18.2.1\",\"dport\":3128},"
                     "\"community_id\":\"1:LQU9qZlK+B5F3KDmev6m5PMibrg=\",\"technique\":\"T1071.001\","
                     "\"description\":\"beacon through the proxy\",\"action\":\"blocked at proxy\"}",
                     err, sizeof(err));
    if (f == NULL)
        fail_msg("rejected: %s", err);
    assert_int_equal(json_integer_value(json_object_get(f, "detected_ms")), NOW - 20000);
    assert_int_equal(json_integer_value(json_object_get(f, "submitted_ms")), NOW);
    assert_int_equal(json_integer_value(json_object_get(f, "team")), 1);
    assert_true(json_is_null(json_object_get(f, "label")));
    assert_null(json_object_get(f, "detected"));
    assert_int_equal(json_array_size(json_object_get(f, "hosts")), 2);
    json_t *ind = json_object_get(f, "indicators");
    assert_int_equal(json_array_size(json_object_get(ind, "ips")), 1);
    assert_int_equal(json_array_size(json_object_get(ind, "urls")), 0);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(f, "flow"), "dport")),
                     3128);
    assert_null(json_object_get(json_object_get(f, "flow"), "sport"));
    json_decref(f);

    /* Minimal: a host and a description; detected defaults to now. */
    f = norm("{\"hosts\":[\"files\"],\"description\":\"odd ssh login\"}", err, sizeof(err));
    if (f == NULL)
        fail_msg("rejected: %s", err);
    assert_int_equal(json_integer_value(json_object_get(f, "detected_ms")), NOW);
    json_decref(f);
    f = norm("{\"hosts\":[\"files\"],\"description\":\"x\",\"detected\":1795313000000}", err,
             sizeof(err));
    assert_non_null(f);
    assert_int_equal(json_integer_value(json_object_get(f, "detected_ms")), 1795313000000LL);
    json_decref(f);
}

static void expect_error(const char *text, const char *needle)
{
    char err[1024];
    json_t *f = norm(text, err, sizeof(err));
    if (f != NULL)
        fail_msg("accepted: %s", text);
    if (strstr(err, needle) == NULL)
        fail_msg("error for %s is '%s', expected to contain '%s'", text, err, needle);
}

static void test_invalid_findings(void **state)
{
    (void)state;
    expect_error("[]", "a finding is a JSON object");
    expect_error("{\"hosts\":[\"pc1\"]}", "description: required");
    expect_error("{\"hosts\":[\"pc1\"],\"description\":\"\"}", "description: expected a non-empty");
    expect_error("{\"description\":\"x\"}", "at least one host, indicator");
    expect_error("{\"hosts\":[\"pc9\"],\"description\":\"x\"}", "hosts[0]: \"pc9\" is neither");
    expect_error("{\"hosts\":[\"10.0.0.1\"],\"description\":\"x\"}", "hosts[0]");
    expect_error("{\"hosts\":\"pc1\",\"description\":\"x\"}", "hosts: expected an array");
    expect_error("{\"hosts\":[\"pc1\"],\"description\":\"x\",\"colour\":1}", "colour: unknown key");
    expect_error("{\"indicators\":{\"ips\":[\"300.1.1.1\"]},\"description\":\"x\"}",
                 "indicators.ips[0]: \"300.1.1.1\" is not an IPv4 address");
    expect_error("{\"indicators\":{\"hashes\":[\"abc\"]},\"description\":\"x\"}",
                 "indicators.hashes[0]");
    expect_error("{\"indicators\":{\"domains\":[\"a b\"]},\"description\":\"x\"}",
                 "indicators.domains[0]");
    expect_error("{\"indicators\":{\"macs\":[\"x\"]},\"description\":\"x\",\"hosts\":[\"pc1\"]}",
                 "indicators.macs: unknown kind");
    expect_error("{\"indicators\":[],\"description\":\"x\",\"hosts\":[\"pc1\"]}",
                 "indicators: expected an object");
    expect_error("{\"flow\":{\"proto\":\"gre\",\"src\":\"198.18.0.1\",\"dst\":\"198.18.0.2\"},"
                 "\"description\":\"x\"}", "flow.proto");
    expect_error("{\"flow\":{\"proto\":\"tcp\",\"src\":\"198.18.0.1\",\"dst\":\"198.18.0.2\","
                 "\"dport\":70000},\"description\":\"x\"}", "flow.dport");
    expect_error("{\"community_id\":\"2:abc\",\"description\":\"x\"}", "community_id: expected");
    expect_error("{\"hosts\":[\"pc1\"],\"technique\":\"T10\",\"description\":\"x\"}", "technique");
    expect_error("{\"hosts\":[\"pc1\"],\"technique\":\"T1071.1\",\"description\":\"x\"}",
                 "technique");
    expect_error("{\"hosts\":[\"pc1\"],\"detected\":\"yesterday\",\"description\":\"x\"}",
                 "detected: expected a UTC time");
    expect_error("{\"hosts\":[\"pc1\"],\"detected\":\"2027-01-01T00:00:00Z\",\"description\":\"x\"}",
                 "detected: in the future");
    /* Every problem is reported, not only the first. */
    char err[1024];
    json_t *f = norm("{\"hosts\":[\"pc9\"],\"technique\":\"X\",\"flow\":{}}", err, sizeof(err));
    assert_null(f);
    assert_non_null(strstr(err, "hosts[0]"));
    assert_non_null(strstr(err, "technique"));
    assert_non_null(strstr(err, "flow.proto"));
    assert_non_null(strstr(err, "description"));
}

static void test_labels_and_fold(void **state)
{
    const char *l = "x";
    (void)state;
    assert_int_equal(findings_label_parse("benign", &l), 0);
    assert_string_equal(l, "benign");
    assert_int_equal(findings_label_parse("none", &l), 0);
    assert_null(l);
    assert_int_equal(findings_label_parse("", &l), 0);
    assert_int_equal(findings_label_parse("maybe", &l), -1);

    json_t *log = parse("["
        "{\"kind\":\"finding\",\"id\":2,\"team\":1,\"description\":\"b\",\"label\":null,\"ts\":\"t\"},"
        "{\"kind\":\"finding\",\"id\":1,\"team\":2,\"description\":\"a\",\"label\":null},"
        "{\"kind\":\"finding\",\"id\":3,\"team\":1,\"description\":\"c\",\"label\":null},"
        "{\"kind\":\"label\",\"finding\":2,\"label\":\"duplicate\",\"by\":\"cli\"},"
        "{\"kind\":\"label\",\"finding\":3,\"label\":\"benign\"},"
        "{\"kind\":\"label\",\"finding\":3,\"label\":null},"
        "{\"kind\":\"label\",\"finding\":99,\"label\":\"benign\"}]");
    json_t *all = findings_fold(log, 0);
    assert_int_equal(json_array_size(all), 3);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(json_integer_value(json_object_get(json_array_get(all, i), "id")),
                         (json_int_t)i + 1);
    json_t *f2 = json_array_get(all, 1);
    assert_string_equal(json_string_value(json_object_get(f2, "label")), "duplicate");
    assert_null(json_object_get(f2, "kind"));
    assert_null(json_object_get(f2, "ts"));
    assert_true(json_is_null(json_object_get(json_array_get(all, 2), "label")));
    json_t *t1 = findings_fold(log, 1);
    assert_int_equal(json_array_size(t1), 2);
    json_t *t3 = findings_fold(log, 3);
    assert_int_equal(json_array_size(t3), 0);
    json_decref(all);
    json_decref(t1);
    json_decref(t3);
    json_decref(log);
}

/* Journal lines of one beacon step become one scoring step with its C2,
 * its flows marked by the "wire" line, and an inject becomes an inject
 * step; other teams' lines are ignored. */
static void test_scorecard_input(void **state)
{
    (void)state;
    json_t *journal = parse("["
        "{\"kind\":\"step_start\",\"team\":1,\"step\":\"beacon\",\"technique\":\"T1071.001\","
        " \"visibility\":\"network\",\"scheduled_ms\":1795313000000,"
        " \"target_addr\":\"198.18.0.66\",\"actor_addr\":\"198.18.2.100\"},"
        "{\"kind\":\"step_start\",\"team\":2,\"step\":\"beacon\",\"scheduled_ms\":1},"
        "{\"kind\":\"step_result\",\"team\":1,\"step\":\"beacon\",\"outcome\":\"succeeded\","
        " \"ts\":\"2026-11-22T02:03:21Z\","
        " \"flows\":[{\"proto\":\"tcp\",\"src\":\"198.18.2.100\",\"sport\":4000,\"dst\":\"198.18.2.1\","
        "   \"dport\":3128,\"community_id\":\"1:AAAAAAAAAAAAAAAAAAAAAAAAAAA=\"}],"
        " \"artefacts\":{\"domains\":[\"update.exarnple.test\"]}},"
        "{\"kind\":\"wire\",\"team\":1,\"step\":\"beacon\",\"flows\":[{\"community_id\":"
        "   \"1:AAAAAAAAAAAAAAAAAAAAAAAAAAA=\",\"seen\":true}]},"
        "{\"kind\":\"inject\",\"team\":1,\"step\":\"press\",\"ts\":\"2026-11-22T02:08:20Z\"}]");
    json_t *checks = parse("[{\"kind\":\"check\",\"team\":1,\"check\":\"mail-smtp\",\"ts_ms\":5,"
                           "\"ok\":true,\"detail\":\"banner 220\"},"
                           "{\"kind\":\"check\",\"team\":2,\"check\":\"mail-smtp\",\"ts_ms\":6,"
                           "\"ok\":false}]");
    json_t *in = scorecard_input(scn, 1, NOW, journal, NULL, checks, NULL, NULL);
    assert_non_null(in);
    json_t *steps = json_object_get(in, "steps");
    assert_int_equal(json_array_size(steps), 1);
    json_t *s = json_array_get(steps, 0);
    assert_string_equal(json_string_value(json_object_get(s, "step")), "beacon");
    assert_string_equal(json_string_value(json_object_get(s, "actor")), "pc1");
    assert_string_equal(json_string_value(json_object_get(s, "target")), "attacker");
    assert_string_equal(json_string_value(json_object_get(s, "outcome")), "succeeded");
    assert_int_equal(json_integer_value(json_object_get(s, "start_ms")), 1795313000000LL);
    assert_int_equal(json_integer_value(json_object_get(s, "end_ms")), 1795313001000LL);
    json_t *c2 = json_object_get(s, "c2");
    assert_string_equal(json_string_value(json_object_get(c2, "addr")), "198.18.0.66");
    assert_int_equal(json_integer_value(json_object_get(c2, "port")), 80);
    assert_string_equal(json_string_value(json_object_get(c2, "from")), "198.18.2.100");
    assert_string_equal(json_string_value(json_object_get(json_object_get(c2, "via"), "addr")),
                        "198.18.2.1");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(c2, "via"), "port")), 3128);
    assert_true(json_is_true(json_object_get(json_array_get(json_object_get(s, "flows"), 0), "seen")));
    json_t *inj = json_object_get(in, "inject_steps");
    assert_int_equal(json_array_size(inj), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(inj, 0), "deadline_ms")),
                     20 * 60000);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(inj, 0), "start_ms")), NOW);
    json_t *ck = json_object_get(in, "checks");
    assert_int_equal(json_array_size(ck), scn->n_checks);
    assert_int_equal(json_array_size(json_object_get(json_array_get(ck, 0), "results")), 1);
    json_decref(in);

    /* And it scores: the beacon is missed (no findings) but recorded. */
    char err[256];
    json_t *b = scorecard_team(scn, 1, NOW, journal, NULL, checks, NULL, NULL, err, sizeof(err));
    if (b == NULL)
        fail_msg("score: %s", err);
    assert_int_equal(json_integer_value(json_object_get(b, "team")), 1);
    assert_non_null(json_object_get(b, "steps"));
    json_decref(b);
    json_decref(journal);
    json_decref(checks);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utc),
        cmocka_unit_test(test_valid_finding),
        cmocka_unit_test(test_invalid_findings),
        cmocka_unit_test(test_labels_and_fold),
        cmocka_unit_test(test_scorecard_input),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
