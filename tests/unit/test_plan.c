/* Unit tests for plan: the per-team layout computed from a scenario. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "diag.h"
#include "plan.h"
#include "scenario.h"

#ifndef CYRANGE_SRCDIR
#define CYRANGE_SRCDIR "."
#endif

#define SHIPPED "scenarios/targeted-mail.json"
#define IFNAMSIZ_MAX 15 /* Linux interface names: 15 characters + NUL */

static int setup(void **state)
{
    diag_list d;
    if (chdir(CYRANGE_SRCDIR) != 0)
        return -1;
    diag_init(&d);
    *state = scenario_load(SHIPPED, &d);
    if (*state == NULL)
        diag_print(&d, stderr);
    diag_clear(&d);
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    scenario_free(*state);
    return 0;
}

static plan *build(const scenario *s, const char *ex, int teams)
{
    char err[256] = "";
    plan *p = plan_build(s, ex, teams, err, sizeof(err));
    if (p == NULL)
        fail_msg("plan_build: %s", err);
    return p;
}

static char *text_of(const plan *p)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(plan_write_text(p, f), 0);
    fclose(f);
    return buf;
}

static void test_names(void **state)
{
    const scenario *s = *state;
    plan *p = build(s, NULL, 2);
    assert_string_equal(p->exercise, "targeted-mail"); /* the scenario id */
    assert_ptr_equal(p->scn, s);
    assert_int_equal(p->n_teams, 2);
    const plan_team *t2 = &p->teams[1];
    assert_int_equal(t2->num, 2);
    assert_string_equal(t2->tag, "t02");
    assert_string_equal(t2->name, "Team 2");
    assert_string_equal(t2->nets[2].name, "targeted-mail-t02-office");
    assert_int_equal(t2->nets[2].segment, 2);
    assert_string_equal(t2->hosts[4].domain, "targeted-mail-t02-pc1");
    assert_int_equal(t2->hosts[4].host, 4);
    assert_string_equal(t2->hosts[1].nics[2].ifname, "eth2");
    assert_int_equal(t2->hosts[1].nics[2].segment, 2);
    plan_free(p);

    p = build(s, "drill-7", 1);
    assert_string_equal(p->exercise, "drill-7");
    assert_string_equal(p->teams[0].nets[0].name, "drill-7-t01-internet");
    assert_string_equal(p->teams[0].hosts[0].domain, "drill-7-t01-attacker");
    plan_free(p);
}

static void test_bad_arguments(void **state)
{
    const scenario *s = *state;
    char err[256];
    const char *bad_names[] = { "", "Drill", "1drill", "drill-", "dr ill", "dr_ill",
                                "a-name-that-is-25-chars-x" };
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        err[0] = '\0';
        assert_false(plan_exercise_name_ok(bad_names[i]));
        assert_null(plan_build(s, bad_names[i], 2, err, sizeof(err)));
        assert_non_null(strstr(err, "malformed exercise name"));
    }
    assert_true(plan_exercise_name_ok("a"));
    assert_true(plan_exercise_name_ok("a-name-that-is-24-chars1"));
    assert_null(plan_build(s, NULL, 0, err, sizeof(err)));
    assert_non_null(strstr(err, "team count"));
    assert_null(plan_build(s, NULL, SCENARIO_MAX_TEAMS + 1, err, sizeof(err)));
    assert_non_null(strstr(err, "team count"));
    plan_free(NULL);
}

static void test_deterministic(void **state)
{
    const scenario *s = *state;
    plan *a = build(s, NULL, 3), *b = build(s, NULL, 3);
    char *ta = text_of(a), *tb = text_of(b);
    assert_string_equal(ta, tb);
    json_t *ja = plan_to_json(a), *jb = plan_to_json(b);
    assert_true(json_equal(ja, jb));
    /* A fresh load of the same file gives the same plan too. */
    diag_list d;
    diag_init(&d);
    scenario *s2 = scenario_load(SHIPPED, &d);
    assert_non_null(s2);
    plan *c = build(s2, NULL, 3);
    char *tc = text_of(c);
    assert_string_equal(ta, tc);
    /* Team 2 is the same whether 2 or 3 teams are planned. */
    plan *two = build(s, NULL, 2);
    for (size_t h = 0; h < s->n_hosts; h++)
        for (size_t k = 0; k < s->hosts[h].n_nics; k++)
            assert_string_equal(two->teams[1].hosts[h].nics[k].mac,
                                a->teams[1].hosts[h].nics[k].mac);
    /* Another exercise name gives other MACs and bridges. */
    plan *other = build(s, "other", 3);
    assert_string_not_equal(other->teams[0].hosts[0].nics[0].mac,
                            a->teams[0].hosts[0].nics[0].mac);
    assert_string_not_equal(other->teams[0].nets[0].bridge, a->teams[0].nets[0].bridge);
    plan_free(other);
    plan_free(two);
    json_decref(ja);
    json_decref(jb);
    free(ta);
    free(tb);
    free(tc);
    plan_free(a);
    plan_free(b);
    plan_free(c);
    scenario_free(s2);
    diag_clear(&d);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorts `v` and fails on any repeated string. */
static void assert_unique(char **v, size_t n, const char *what)
{
    qsort(v, n, sizeof(*v), cmp_str);
    for (size_t i = 1; i < n; i++)
        if (strcmp(v[i - 1], v[i]) == 0)
            fail_msg("%s '%s' appears twice", what, v[i]);
}

static void test_99_teams_unique(void **state)
{
    const scenario *s = *state;
    plan *p = build(s, NULL, SCENARIO_MAX_TEAMS);
    size_t n_nics = 0;
    for (size_t h = 0; h < s->n_hosts; h++)
        n_nics += s->hosts[h].n_nics;
    size_t nm = (size_t)p->n_teams * n_nics, nb = (size_t)p->n_teams * s->n_segments,
           nd = (size_t)p->n_teams * s->n_hosts, im = 0, ib = 0, id = 0;
    char **macs = calloc(nm, sizeof(char *)), **bridges = calloc(nb, sizeof(char *)),
         **nets = calloc(nb, sizeof(char *)), **doms = calloc(nd, sizeof(char *));
    assert_true(macs && bridges && nets && doms);
    for (int t = 0; t < p->n_teams; t++) {
        plan_team *tm = &p->teams[t];
        char tag[8];
        snprintf(tag, sizeof(tag), "t%02d", t + 1);
        assert_string_equal(tm->tag, tag);
        for (size_t i = 0; i < s->n_segments; i++) {
            const char *br = tm->nets[i].bridge;
            assert_true(strlen(br) <= IFNAMSIZ_MAX);
            assert_memory_equal(br, "cy", 2);
            for (const char *c = br; *c; c++)
                assert_true(isalnum((unsigned char)*c));
            bridges[ib] = tm->nets[i].bridge;
            nets[ib++] = tm->nets[i].name;
        }
        for (size_t h = 0; h < s->n_hosts; h++) {
            doms[id++] = tm->hosts[h].domain;
            for (size_t k = 0; k < s->hosts[h].n_nics; k++) {
                char *mac = tm->hosts[h].nics[k].mac;
                assert_int_equal(strlen(mac), 17);
                assert_memory_equal(mac, "52:54:00:", 9); /* QEMU's OUI */
                macs[im++] = mac;
            }
        }
    }
    assert_unique(macs, nm, "MAC");
    assert_unique(bridges, nb, "bridge");
    assert_unique(nets, nb, "network");
    assert_unique(doms, nd, "domain");
    free(macs);
    free(bridges);
    free(nets);
    free(doms);
    plan_free(p);
}

static void test_bridge_names_fit_ifnamsiz(void **state)
{
    (void)state;
    /* The worst case: the validator's maximum of 64 segments, team 99, and
     * an exercise name that hashes to any six hex digits.  Built by hand:
     * plan_build only reads names and counts. */
    scenario s;
    memset(&s, 0, sizeof(s));
    s.id = "worst-case";
    s.team_name = "Team {n}";
    s.n_segments = 64;
    s.segments = calloc(s.n_segments, sizeof(*s.segments));
    assert_non_null(s.segments);
    for (size_t i = 0; i < s.n_segments; i++)
        s.segments[i].name = "s";
    char err[256];
    plan *p = plan_build(&s, NULL, SCENARIO_MAX_TEAMS, err, sizeof(err));
    assert_non_null(p);
    for (int t = 0; t < p->n_teams; t += 49)
        for (size_t i = 0; i < s.n_segments; i += 1 + i / 2)
            assert_true(strlen(p->teams[t].nets[i].bridge) <= IFNAMSIZ_MAX);
    const char *last = p->teams[98].nets[63].bridge;
    assert_true(strlen(last) <= IFNAMSIZ_MAX);
    assert_string_equal(last + 8, "t99n63");
    plan_free(p);
    free(s.segments);
}

static json_t *must_get(json_t *o, const char *key, json_type type)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL || json_typeof(v) != type)
        fail_msg("member '%s' missing or of the wrong type", key);
    return v;
}

static void test_json_shape(void **state)
{
    const scenario *s = *state;
    plan *p = build(s, NULL, 2);
    json_t *j = plan_to_json(p);
    assert_non_null(j);
    assert_string_equal(json_string_value(must_get(j, "exercise", JSON_STRING)),
                        "targeted-mail");
    assert_string_equal(json_string_value(must_get(j, "scenario", JSON_STRING)),
                        "targeted-mail");
    must_get(j, "title", JSON_STRING);
    assert_string_equal(json_string_value(must_get(j, "level", JSON_STRING)), "A");
    assert_int_equal(json_integer_value(must_get(j, "duration_s", JSON_INTEGER)), 7200);
    assert_true(json_real_value(must_get(j, "speed", JSON_REAL)) == 12.0);
    assert_int_equal(json_integer_value(must_get(j, "wall_duration_s", JSON_INTEGER)), 600);

    json_t *teams = must_get(j, "teams", JSON_ARRAY);
    assert_int_equal(json_array_size(teams), 2);
    size_t i, k;
    json_t *team, *net, *host, *nic;
    json_array_foreach(teams, i, team) {
        assert_int_equal(json_integer_value(must_get(team, "team", JSON_INTEGER)),
                         (json_int_t)i + 1);
        must_get(team, "tag", JSON_STRING);
        must_get(team, "name", JSON_STRING);
        json_t *nets = must_get(team, "networks", JSON_ARRAY);
        assert_int_equal(json_array_size(nets), s->n_segments);
        json_array_foreach(nets, k, net) {
            must_get(net, "segment", JSON_STRING);
            must_get(net, "network", JSON_STRING);
            must_get(net, "bridge", JSON_STRING);
            must_get(net, "cidr", JSON_STRING);
            must_get(net, "role", JSON_STRING);
        }
        json_t *dhcp = must_get(json_array_get(nets, 2), "dhcp", JSON_OBJECT);
        assert_string_equal(json_string_value(must_get(dhcp, "server", JSON_STRING)), "fw");
        assert_int_equal(json_array_size(must_get(dhcp, "range", JSON_ARRAY)), 2);
        assert_null(json_object_get(json_array_get(nets, 0), "dhcp"));
        json_t *hosts = must_get(team, "hosts", JSON_ARRAY);
        assert_int_equal(json_array_size(hosts), s->n_hosts);
        json_array_foreach(hosts, k, host) {
            must_get(host, "host", JSON_STRING);
            must_get(host, "domain", JSON_STRING);
            must_get(host, "role", JSON_STRING);
            must_get(host, "image_kind", JSON_STRING);
            must_get(host, "image", JSON_STRING);
            must_get(host, "vcpus", JSON_INTEGER);
            must_get(host, "memory_mib", JSON_INTEGER);
            json_t *nics = must_get(host, "nics", JSON_ARRAY);
            assert_int_equal(json_array_size(nics), s->hosts[k].n_nics);
            size_t n;
            json_array_foreach(nics, n, nic) {
                must_get(nic, "ifname", JSON_STRING);
                must_get(nic, "mac", JSON_STRING);
                must_get(nic, "segment", JSON_STRING);
                must_get(nic, "network", JSON_STRING);
                must_get(nic, "address", JSON_STRING);
            }
        }
        json_t *pc1 = json_array_get(hosts, 4);
        assert_string_equal(json_string_value(json_object_get(
            json_array_get(json_object_get(pc1, "nics"), 0), "address")), "dhcp");
        assert_string_equal(json_string_value(json_object_get(json_array_get(hosts, 2),
                                                              "gateway")), "198.18.1.1");
    }

    json_t *tl = must_get(j, "timeline", JSON_ARRAY);
    assert_int_equal(json_array_size(tl), s->n_steps);
    json_t *st;
    json_array_foreach(tl, i, st) {
        must_get(st, "id", JSON_STRING);
        must_get(st, "action", JSON_STRING);
        must_get(st, "visibility", JSON_STRING);
        if (s->steps[i].offset_ms < 0) {
            assert_true(json_is_true(json_object_get(st, "on_demand")));
            assert_null(json_object_get(st, "offset_s"));
        } else {
            assert_true(json_real_value(must_get(st, "offset_s", JSON_REAL)) ==
                        (double)s->steps[i].offset_ms / 1000);
            must_get(st, "wall_offset_s", JSON_REAL);
        }
    }
    json_t *phish = json_array_get(tl, 0);
    assert_true(json_real_value(json_object_get(phish, "jitter_s")) == 60.0);
    assert_true(json_real_value(json_object_get(phish, "wall_offset_s")) == 25.0);
    assert_string_equal(json_string_value(json_object_get(json_array_get(tl, 1), "after")),
                        "phish");
    must_get(json_array_get(tl, 4), "when", JSON_OBJECT);
    /* It serialises. */
    char *dump = json_dumps(j, JSON_INDENT(2));
    assert_non_null(dump);
    free(dump);
    json_decref(j);
    plan_free(p);
}

static void test_text(void **state)
{
    const scenario *s = *state;
    plan *p = build(s, NULL, 2);
    char *t = text_of(p);
    assert_non_null(strstr(t, "exercise targeted-mail: scenario targeted-mail \""));
    assert_non_null(strstr(t, "level A, duration 2h, speed x12 (10m wall clock), 2 teams\n"));
    assert_non_null(strstr(t, "\nteam t01 \"Team 1\"\n"));
    assert_non_null(strstr(t, "\nteam t02 \"Team 2\"\n"));
    assert_non_null(strstr(t, "DHCP by fw 198.18.2.100-198.18.2.199"));
    assert_non_null(strstr(t, "  +00:05:00  wall +00:00:25  phish "));
    assert_non_null(strstr(t, "(+0..1m)"));
    assert_non_null(strstr(t, "  on demand  wall -          lateral-ftp "));
    assert_non_null(strstr(t, " (conditional)\n"));
    /* Sorted by offset, on-demand steps last. */
    assert_true(strstr(t, " press ") < strstr(t, " lateral-ftp "));
    assert_true(strstr(t, " exfil ") < strstr(t, " press "));
    free(t);
    plan_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_99_teams_unique),
        cmocka_unit_test(test_bridge_names_fit_ifnamsiz),
        cmocka_unit_test(test_json_shape),
        cmocka_unit_test(test_text),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
