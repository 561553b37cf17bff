/* Unit tests for scenario: the model a valid scenario loads into, defaults,
 * and how invalid input is reported. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "diag.h"
#include "scenario.h"

#ifndef CYRANGE_SRCDIR
#define CYRANGE_SRCDIR "."
#endif

#define SHIPPED "scenarios/targeted-mail.json"
#define MIN_MS (60 * 1000LL)

static int to_srcdir(void **state)
{
    (void)state;
    return chdir(CYRANGE_SRCDIR);
}

static uint32_t ip(const char *s)
{
    uint32_t a = 0;
    assert_int_equal(addr_parse(s, &a), 0);
    return a;
}

/* Loads `text` as "mem/test.json"; prints the diagnostics when it fails
 * unexpectedly. */
static scenario *load_text(const char *text, diag_list *d)
{
    return scenario_load_buffer("mem/test.json", text, strlen(text), d);
}

static scenario *load_ok(const char *text)
{
    diag_list d;
    diag_init(&d);
    scenario *s = load_text(text, &d);
    if (s == NULL) {
        diag_sort(&d);
        diag_print(&d, stderr);
    }
    assert_int_equal(d.len, 0);
    diag_clear(&d);
    assert_non_null(s);
    return s;
}

/* A minimal valid scenario, with `extra` members spliced in at the top. */
static char *minimal(const char *extra, const char *hosts)
{
    char *t = NULL;
    int n = asprintf(&t,
        "{\"format\": 1, \"id\": \"mini\", \"title\": \"Mini\", \"level\": \"C\",\n"
        " \"duration\": \"1h\", %s\n"
        " \"segments\": [ {\"name\": \"lan\", \"cidr\": \"198.18.10.0/24\", "
        "\"role\": \"internal\"} ],\n"
        " \"hosts\": [ %s ]}\n",
        extra ? extra : "",
        hosts ? hosts
              : "{\"name\": \"srv\", \"role\": \"server\", \"nics\": "
                "[{\"segment\": \"lan\", \"address\": \"198.18.10.10\"}]}");
    assert_true(n > 0);
    return t;
}

static void test_shipped_counts_and_meta(void **state)
{
    (void)state;
    diag_list d;
    diag_init(&d);
    scenario *s = scenario_load(SHIPPED, &d);
    if (s == NULL)
        diag_print(&d, stderr);
    assert_non_null(s);
    assert_int_equal(d.len, 0);
    assert_string_equal(s->file, SHIPPED);
    assert_string_equal(s->id, "targeted-mail");
    assert_string_equal(s->level, "A");
    assert_non_null(s->title);
    assert_non_null(s->description);
    assert_int_equal(s->duration_ms, 120 * MIN_MS);
    assert_true(s->speed == 12.0);
    assert_string_equal(s->domain, "example.test");
    assert_int_equal(s->team_count, 2);
    assert_string_equal(s->team_name, "Team {n}");
    assert_int_equal(s->n_segments, 3);
    assert_int_equal(s->n_hosts, 5);
    assert_int_equal(s->n_steps, 8);
    assert_int_equal(s->n_checks, 3);
    assert_int_equal(s->n_sections, 4);
    assert_true(json_is_object(s->root));
    scenario_free(s);
    diag_clear(&d);
}

static void test_shipped_network(void **state)
{
    (void)state;
    diag_list d;
    diag_init(&d);
    scenario *s = scenario_load(SHIPPED, &d);
    assert_non_null(s);

    assert_int_equal(scenario_segment_index(s, "internet"), 0);
    assert_int_equal(scenario_segment_index(s, "office"), 2);
    assert_int_equal(scenario_segment_index(s, "nope"), -1);
    const scn_segment *office = &s->segments[2];
    assert_string_equal(office->role, "office");
    assert_int_equal(office->net, ip("198.18.2.0"));
    assert_int_equal(office->prefix, 24);
    assert_int_equal(office->dhcp_host, scenario_host_index(s, "fw"));
    assert_int_equal(office->dhcp_first, ip("198.18.2.100"));
    assert_int_equal(office->dhcp_last, ip("198.18.2.199"));
    assert_int_equal(s->segments[0].dhcp_host, -1);

    int fw = scenario_host_index(s, "fw");
    assert_int_equal(fw, 1);
    assert_int_equal(scenario_host_index(s, "FW"), -1);
    const scn_host *h = &s->hosts[fw];
    assert_string_equal(h->role, "router");
    assert_int_equal(h->image_kind, SCN_IMAGE_ROLE);
    assert_string_equal(h->image, "router");
    assert_int_equal(h->n_nics, 3);
    for (size_t k = 0; k < 3; k++) {
        assert_int_equal(h->nics[k].segment, (int)k);
        assert_int_equal(h->nics[k].dhcp, 0);
    }
    assert_int_equal(h->nics[2].addr, ip("198.18.2.1"));
    assert_int_equal(h->gateway, 0);
    assert_int_equal(h->n_services, 3);
    assert_string_equal(h->services[0].name, "proxy");
    assert_string_equal(h->services[0].proto, "tcp"); /* default */
    assert_int_equal(h->services[0].port, 3128);
    assert_string_equal(h->services[1].proto, "udp");
    assert_int_equal(h->n_accounts, 1);
    assert_int_equal(h->accounts[0].admin, 1);
    assert_null(h->accounts[0].groups[0]);

    /* Defaults: image from the role, one vCPU. */
    const scn_host *att = &s->hosts[scenario_host_index(s, "attacker")];
    assert_string_equal(att->image, "attacker");
    assert_int_equal(att->vcpus, 1);
    assert_int_equal(att->memory_mib, 128);

    const scn_host *pc1 = &s->hosts[scenario_host_index(s, "pc1")];
    assert_string_equal(pc1->image, "workstation");
    assert_int_equal(pc1->nics[0].dhcp, 1);
    assert_int_equal(pc1->nics[0].addr, 0);
    assert_string_equal(pc1->accounts[0].groups[0], "users");
    assert_null(pc1->accounts[0].groups[1]);

    const scn_host *mail = &s->hosts[scenario_host_index(s, "mail")];
    assert_int_equal(mail->gateway, ip("198.18.1.1"));

    const scn_host *files = &s->hosts[scenario_host_index(s, "files")];
    assert_int_equal(files->n_files, 1);
    assert_string_equal(files->files[0].path, "/srv/share/finance/budget-2027.csv");
    assert_int_equal(files->files[0].mode, 0640);
    assert_non_null(strstr(files->files[0].content, "sales,120000\n"));
    scenario_free(s);
    diag_clear(&d);
}

static void test_shipped_timeline(void **state)
{
    (void)state;
    diag_list d;
    diag_init(&d);
    scenario *s = scenario_load(SHIPPED, &d);
    assert_non_null(s);
    static const struct {
        const char *id;
        int64_t offset, latest;
        const char *after;
    } want[] = {
        { "phish", 5 * MIN_MS, 6 * MIN_MS, NULL },
        { "open", 15 * MIN_MS, 16 * MIN_MS, "phish" },
        { "beacon", 16 * MIN_MS, 17 * MIN_MS, "open" },
        { "discover", 31 * MIN_MS, 32 * MIN_MS, "beacon" },
        { "lateral", 41 * MIN_MS, 42 * MIN_MS, "discover" },
        { "lateral-ftp", -1, 0, NULL },
        { "exfil", 56 * MIN_MS, 57 * MIN_MS, "lateral" },
        { "press", 70 * MIN_MS, 70 * MIN_MS, NULL },
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const scn_step *st = &s->steps[i];
        assert_string_equal(st->id, want[i].id);
        assert_int_equal(scenario_step_index(s, want[i].id), (int)i);
        assert_int_equal(st->offset_ms, want[i].offset);
        if (want[i].offset >= 0)
            assert_int_equal(st->latest_ms, want[i].latest);
        assert_int_equal(st->after, want[i].after ? scenario_step_index(s, want[i].after)
                                                  : -1);
        assert_true(json_is_object(st->params));
    }
    assert_int_equal(scenario_step_index(s, "nope"), -1);

    const scn_step *phish = &s->steps[0];
    assert_string_equal(phish->action, "phish.deliver");
    assert_int_equal(phish->actor, scenario_host_index(s, "attacker"));
    assert_int_equal(phish->target, scenario_host_index(s, "mail"));
    assert_int_equal(phish->at_ms, 5 * MIN_MS);
    assert_int_equal(phish->jitter_ms, MIN_MS);
    assert_string_equal(phish->technique, "T1566.001"); /* from the table */
    assert_string_equal(phish->visibility, "network");
    assert_string_equal(json_string_value(json_object_get(phish->params, "subject")),
                        "Revised bonus table");
    assert_non_null(phish->description);
    assert_null(phish->success);
    assert_null(phish->when);

    const scn_step *open = &s->steps[1];
    assert_int_equal(open->at_ms, 10 * MIN_MS); /* the delay */
    assert_int_equal(open->target, -1);
    assert_string_equal(open->visibility, "host");
    assert_string_equal(json_string_value(json_object_get(open->success, "type")),
                        "reported");

    const scn_step *lateral = &s->steps[4];
    assert_non_null(lateral->when);
    assert_int_equal(lateral->otherwise, scenario_step_index(s, "lateral-ftp"));
    assert_int_equal(s->steps[5].on_demand, 1);
    assert_int_equal(s->steps[5].otherwise, -1);

    const scn_step *press = &s->steps[7];
    assert_int_equal(press->actor, -1);
    assert_null(press->technique);
    assert_string_equal(press->visibility, "inbox");

    /* Checks, with the defaults of their types. */
    const scn_check *smtp = &s->checks[0];
    assert_string_equal(smtp->id, "mail-smtp");
    assert_string_equal(smtp->type, "smtp");
    assert_int_equal(smtp->port, 25);
    assert_int_equal(smtp->from, scenario_host_index(s, "attacker"));
    assert_int_equal(smtp->target, scenario_host_index(s, "mail"));
    assert_int_equal(smtp->interval_ms, 30000);
    assert_int_equal(smtp->timeout_ms, 5000);
    assert_true(smtp->sla == 0.95);
    assert_int_equal(s->checks[1].port, 21);
    assert_int_equal(s->checks[2].port, 80);
    assert_true(s->checks[2].sla == 0.0);
    assert_int_equal(s->checks[2].interval_ms, MIN_MS);

    /* Scoring and the report template. */
    assert_true(s->scoring.w_detection == 40 && s->scoring.w_availability == 20 &&
                s->scoring.w_reports == 30 && s->scoring.w_injects == 10);
    assert_int_equal(s->scoring.detect_window_ms, 45 * MIN_MS);
    assert_int_equal(s->scoring.detect_full_ms, 10 * MIN_MS);
    assert_string_equal(s->scoring.decay, "linear");
    assert_true(s->scoring.detect_floor == 0.25);
    assert_int_equal(s->scoring.c2_quiet_ms, 5 * MIN_MS);
    assert_string_equal(s->sections[0].id, "detection");
    assert_int_equal(s->sections[0].required, 1);
    assert_int_equal(s->sections[0].n_rubric, 2);
    assert_int_equal(s->sections[0].rubric[1].points, 5);
    assert_string_equal(s->sections[3].id, "recovery");
    scenario_free(s);
    diag_clear(&d);
}

static void test_defaults(void **state)
{
    (void)state;
    char *t = minimal(NULL,
        "{\"name\": \"fw\", \"role\": \"firewall\", \"nics\": [{\"segment\": \"lan\", "
        "\"address\": \"198.18.10.1\"}]},"
        "{\"name\": \"c2\", \"role\": \"c2\", \"memory\": \"1G\", \"vcpus\": 2, "
        "\"nics\": [{\"segment\": \"lan\", \"address\": \"198.18.10.2\"}]}");
    scenario *s = load_ok(t);
    assert_int_equal(s->team_count, 2);
    assert_string_equal(s->team_name, "Team {n}");
    assert_string_equal(s->domain, "range.test");
    assert_true(s->speed == 1.0);
    assert_int_equal(s->n_steps, 0);
    assert_int_equal(s->n_checks, 0);
    assert_null(s->description);
    assert_string_equal(s->hosts[0].image, "router");   /* firewall */
    assert_string_equal(s->hosts[1].image, "attacker"); /* c2 */
    assert_int_equal(s->hosts[1].memory_mib, 1024);
    assert_int_equal(s->hosts[1].vcpus, 2);
    /* Default scoring and the four required report sections. */
    assert_true(s->scoring.w_detection == 40 && s->scoring.w_availability == 30 &&
                s->scoring.w_reports == 20 && s->scoring.w_injects == 10);
    assert_int_equal(s->scoring.detect_window_ms, 30 * MIN_MS);
    assert_int_equal(s->scoring.detect_full_ms, 5 * MIN_MS);
    assert_string_equal(s->scoring.decay, "linear");
    assert_int_equal(s->n_sections, 4);
    const char *ids[] = { "detection", "response", "reporting", "recovery" };
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(s->sections[i].id, ids[i]);
        assert_int_equal(s->sections[i].required, 1);
        assert_non_null(s->sections[i].title);
    }
    scenario_free(s);
    free(t);
}

static void test_team_names(void **state)
{
    (void)state;
    char *t = minimal("\"teams\": {\"count\": 5, \"name\": \"{n}. Blue {n}\"},", NULL);
    scenario *s = load_ok(t);
    assert_int_equal(s->team_count, 5);
    char *n = scenario_team_name(s, 3);
    assert_string_equal(n, "3. Blue {n}"); /* the first {n} only */
    free(n);
    n = scenario_team_name(s, 42);
    assert_string_equal(n, "42. Blue {n}");
    free(n);
    free(s->team_name);
    s->team_name = strdup("Team");
    n = scenario_team_name(s, 1);
    assert_string_equal(n, "Team");
    free(n);
    free(s->team_name);
    s->team_name = NULL;
    n = scenario_team_name(s, 7);
    assert_string_equal(n, "Team 7");
    free(n);
    scenario_free(s);
    free(t);
}

static void test_offsets_and_chains(void **state)
{
    (void)state;
    char *t = minimal(
        "\"timeline\": ["
        " {\"id\": \"c\", \"after\": \"b\", \"delay\": 30, \"jitter\": \"5s\","
        "  \"action\": \"inject.message\", \"params\": {\"from\": \"a\", \"subject\": \"b\", \"body\": \"c\"}},"
        " {\"id\": \"b\", \"after\": \"a\", \"delay\": \"1m\", \"action\": \"inject.message\","
        "  \"params\": {\"from\": \"a\", \"subject\": \"b\", \"body\": \"c\"}},"
        " {\"id\": \"a\", \"at\": \"10m\", \"jitter\": \"2m\", \"action\": \"inject.message\","
        "  \"params\": {\"from\": \"a\", \"subject\": \"b\", \"body\": \"c\"}},"
        " {\"id\": \"od\", \"on_demand\": true, \"action\": \"inject.message\","
        "  \"params\": {\"from\": \"a\", \"subject\": \"b\", \"body\": \"c\"}},"
        " {\"id\": \"after-od\", \"after\": \"od\", \"delay\": \"59m\", \"action\": \"inject.message\","
        "  \"params\": {\"from\": \"a\", \"subject\": \"b\", \"body\": \"c\"}}"
        "],", NULL);
    scenario *s = load_ok(t);
    /* Declared before their predecessors: order does not matter. */
    assert_int_equal(s->steps[2].offset_ms, 10 * MIN_MS);
    assert_int_equal(s->steps[2].latest_ms, 12 * MIN_MS);
    assert_int_equal(s->steps[1].offset_ms, 11 * MIN_MS);
    assert_int_equal(s->steps[1].latest_ms, 13 * MIN_MS);
    assert_int_equal(s->steps[0].offset_ms, 11 * MIN_MS + 30000);
    assert_int_equal(s->steps[0].latest_ms, 13 * MIN_MS + 35000);
    /* On demand, and anything after an on-demand step, has no offset. */
    assert_int_equal(s->steps[3].offset_ms, -1);
    assert_int_equal(s->steps[4].offset_ms, -1);
    scenario_free(s);
    free(t);
}

static void test_long_after_chain(void **state)
{
    (void)state;
    /* A chain of thousands of steps, declared in reverse: no recursion. */
    size_t n = 5000, cap = n * 200 + 1024, len = 0;
    char *steps = malloc(cap);
    assert_non_null(steps);
    len += (size_t)snprintf(steps + len, cap - len, "\"timeline\": [");
    for (size_t i = n; i-- > 0;) {
        if (i == 0)
            len += (size_t)snprintf(steps + len, cap - len, "{\"id\": \"s0\", \"at\": 0,");
        else
            len += (size_t)snprintf(steps + len, cap - len,
                                    "{\"id\": \"s%zu\", \"after\": \"s%zu\", \"delay\": \"500ms\",",
                                    i, i - 1);
        len += (size_t)snprintf(steps + len, cap - len,
                                " \"action\": \"inject.message\", \"params\": {\"from\": "
                                "\"a\", \"subject\": \"b\", \"body\": \"c\"}}%s",
                                i ? "," : "");
    }
    snprintf(steps + len, cap - len, "],");
    char *t = minimal(steps, NULL);
    scenario *s = load_ok(t);
    assert_int_equal(s->n_steps, n);
    assert_int_equal(s->steps[0].offset_ms, (int64_t)(n - 1) * 500);
    assert_int_equal(s->steps[n - 1].offset_ms, 0);
    scenario_free(s);
    free(t);
    free(steps);
}

static void test_disk_image_relative_to_file(void **state)
{
    (void)state;
    const char *host =
        "{\"name\": \"legacy\", \"role\": \"other\", \"image\": {\"disk\": \"disk/base.qcow2\"},"
        " \"nics\": [{\"segment\": \"lan\", \"address\": \"198.18.10.10\"}]}";
    char *t = minimal(NULL, host);
    diag_list d;
    diag_init(&d);
    scenario *s = scenario_load_buffer("tests/golden/cases/x.json", t, strlen(t), &d);
    assert_non_null(s);
    assert_int_equal(s->hosts[0].image_kind, SCN_IMAGE_DISK);
    assert_string_equal(s->hosts[0].image, "tests/golden/cases/disk/base.qcow2");
    scenario_free(s);

    /* The same text elsewhere: the disk is looked up beside that file. */
    s = scenario_load_buffer("elsewhere/x.json", t, strlen(t), &d);
    assert_null(s);
    assert_int_equal(d.len, 1);
    assert_non_null(strstr(d.items[0].msg, "not found (looked at elsewhere/disk/base.qcow2)"));
    diag_clear(&d);
    free(t);
}

static void test_bom_and_unterminated_buffer(void **state)
{
    (void)state;
    char *t = minimal(NULL, NULL);
    size_t n = strlen(t);
    char *b = malloc(n + 3 + 8);
    assert_non_null(b);
    memcpy(b, "\xef\xbb\xbf", 3);
    memcpy(b + 3, t, n);
    memcpy(b + 3 + n, "garbage!", 8); /* beyond len: never read */
    diag_list d;
    diag_init(&d);
    scenario *s = scenario_load_buffer("mem/bom.json", b, n + 3, &d);
    assert_non_null(s);
    assert_int_equal(d.len, 0);
    scenario_free(s);
    free(b);
    free(t);
}

static void test_bad_buffer_reports_everything(void **state)
{
    (void)state;
    /* Exactly seven problems, each reported once, sorted by position. */
    const char *text =
        "{\"format\": 2, \"id\": \"x\", \"title\": \"t\", \"level\": \"D\",\n"
        " \"duration\": \"1h\", \"colour\": 1,\n"
        " \"segments\": [ {\"name\": \"lan\", \"cidr\": \"198.18.10.0/24\", \"role\": \"internal\"} ],\n"
        " \"hosts\": [ {\"name\": \"a\", \"role\": \"server\", \"nics\": [{\"segment\": \"lam\", "
        "\"address\": \"198.18.10.1\"}]},\n"
        "            {\"name\": \"b\", \"role\": \"server\", \"vcpus\": 99, \"nics\": "
        "[{\"segment\": \"lan\", \"address\": \"10.0.0.1\"}]} ],\n"
        " \"timeline\": [ {\"id\": \"s\", \"at\": \"2h\", \"action\": \"inject.message\","
        " \"params\": {\"from\": \"a\", \"subject\": \"b\", \"body\": \"c\"}} ]}";
    diag_list d;
    diag_init(&d);
    scenario *s = load_text(text, &d);
    assert_null(s);
    assert_int_equal(d.len, 7);
    assert_int_equal(d.dropped, 0);
    diag_sort(&d);
    static const struct { int line, col; const char *start; } want[] = {
        { 1, 12, "unsupported format 2" },
        { 1, 49, "unknown level 'D'" },
        { 2, 20, "unknown key 'colour'" },          /* at the key */
        { 4, 66, "unknown segment 'lam' (did you mean 'lan'?)" },
        { 5, 54, "'vcpus' must be between 1 and 8, got 99" },
        { 5, 97, "address 10.0.0.1 is outside 198.18.0.0/15" },
        { 6, 34, "step 's' may start at 2h" },
    };
    for (size_t i = 0; i < d.len; i++) {
        assert_string_equal(d.items[i].file, "mem/test.json");
        if (d.items[i].line != want[i].line || d.items[i].col != want[i].col ||
            strncmp(d.items[i].msg, want[i].start, strlen(want[i].start)) != 0)
            fail_msg("diagnostic %zu is %d:%d: %s", i, d.items[i].line,
                     d.items[i].col, d.items[i].msg);
    }
    diag_clear(&d);
}

static void test_diag_limit(void **state)
{
    (void)state;
    /* 200 unknown keys, but only 50 are kept; the rest are counted. */
    size_t cap = 200 * 16 + 64, len = 0;
    char *extra = malloc(cap);
    assert_non_null(extra);
    extra[0] = '\0';
    for (int i = 0; i < 200; i++)
        len += (size_t)snprintf(extra + len, cap - len, "\"k%d\": %d,", i, i);
    char *t = minimal(extra, NULL);
    diag_list d;
    diag_init(&d);
    d.limit = 50;
    assert_null(load_text(t, &d));
    assert_int_equal(d.len, 50);
    assert_int_equal(d.dropped, 150);
    /* What the user sees: 50 lines, then how many more there were. */
    char *out = NULL;
    size_t outlen = 0;
    FILE *f = open_memstream(&out, &outlen);
    assert_non_null(f);
    diag_sort(&d);
    diag_print(&d, f);
    fclose(f);
    assert_non_null(strstr(out, "mem/test.json:2:"));
    assert_non_null(strstr(out, "\n(150 more errors not shown)\n"));
    free(out);
    diag_clear(&d);
    assert_int_equal(d.limit, 50); /* kept for reuse */
    free(extra);
    free(t);
}

static void test_not_json_or_not_object(void **state)
{
    (void)state;
    diag_list d;
    diag_init(&d);
    assert_null(scenario_load_buffer("e.json", "", 0, &d));
    assert_null(scenario_load_buffer("a.json", "\n [1]", 5, &d));
    assert_null(scenario_load_buffer("s.json", "{\"a\": tru}", 10, &d));
    assert_null(scenario_load_buffer("d.json", "{\"a\":1,\n \"a\":2}", 15, &d));
    assert_int_equal(d.len, 4);
    assert_int_equal(d.items[0].line, 1);
    assert_non_null(strstr(d.items[0].msg, "invalid JSON"));
    assert_int_equal(d.items[1].line, 2); /* at the value, not at 1:1 */
    assert_int_equal(d.items[1].col, 2);
    assert_string_equal(d.items[1].msg, "a scenario is a JSON object, got an array");
    assert_int_equal(d.items[2].col, 7);  /* start of the token "tru" */
    assert_int_equal(d.items[3].line, 2); /* start of the duplicate key */
    assert_int_equal(d.items[3].col, 2);
    assert_non_null(strstr(d.items[3].msg, "duplicate object key"));
    diag_clear(&d);

    /* Duplicate keys with escaped quotes, multibyte characters, or too long
     * for jansson to quote: still at the start of the second key. */
    const char *dups[] = {
        "{\"k\\\"\xc3\xa9\\\\\": 1,\n  \"k\\\"\xc3\xa9\\\\\": 2}",
        "{\"a-key-much-longer-than-twenty-bytes\": 1, \"a-key-much-longer-than-twenty-bytes\": 2}",
        "{\"\": 1, \"\": 2}",
    };
    const int cols[] = { 3, 44, 9 };
    for (size_t i = 0; i < 3; i++) {
        assert_null(scenario_load_buffer("k.json", dups[i], strlen(dups[i]), &d));
        assert_int_equal(d.len, 1);
        assert_non_null(strstr(d.items[0].msg, "duplicate object key"));
        if (d.items[0].col != cols[i])
            fail_msg("case %zu: %d:%d: %s", i, d.items[0].line, d.items[0].col,
                     d.items[0].msg);
        diag_clear(&d);
    }
}

static void test_files_that_cannot_be_read(void **state)
{
    (void)state;
    diag_list d;
    diag_init(&d);
    assert_null(scenario_load("tests/golden/cases/does-not-exist.json", &d));
    assert_int_equal(d.len, 1);
    assert_int_equal(d.items[0].line, 0);
    assert_non_null(strstr(d.items[0].msg, "cannot open"));
    diag_clear(&d);
    /* Larger than the loader accepts (64 MiB), without a file on disk. */
    assert_null(scenario_load("/dev/zero", &d));
    assert_int_equal(d.len, 1);
    assert_non_null(strstr(d.items[0].msg, "file is larger than 64 MiB"));
    diag_clear(&d);
    /* A directory opens but cannot be read. */
    assert_null(scenario_load("tests/golden/cases", &d));
    assert_int_equal(d.len, 1);
    assert_non_null(strstr(d.items[0].msg, "read error"));
    diag_clear(&d);
    scenario_free(NULL);
}

static void test_every_golden_case_loads_cleanly(void **state)
{
    (void)state;
    /* Valid or not, every golden input loads and frees without leaking
     * (valgrind checks) and gives the same answer twice. */
    FILE *table = fopen("tests/golden/cases.txt", "r");
    char line[512];
    int loaded = 0;
    assert_non_null(table);
    while (fgets(line, sizeof(line), table)) {
        char name[128], cmd[32], input[256] = "", path[400];
        int want;
        if (line[0] == '#' || sscanf(line, "%127s %31s %d %255s", name, cmd, &want,
                                     input) < 3)
            continue;
        if (input[0] && strchr(input, '/'))
            snprintf(path, sizeof(path), "%s", input);
        else
            snprintf(path, sizeof(path), "tests/golden/cases/%s.json",
                     input[0] ? input : name);
        if (access(path, R_OK) != 0)
            continue;
        diag_list d1, d2;
        diag_init(&d1);
        diag_init(&d2);
        scenario *a = scenario_load(path, &d1);
        scenario *b = scenario_load(path, &d2);
        assert_int_equal(a == NULL, b == NULL);
        assert_int_equal(a == NULL, want != 0);
        assert_int_equal(d1.len, d2.len);
        for (size_t i = 0; i < d1.len; i++)
            assert_string_equal(d1.items[i].msg, d2.items[i].msg);
        scenario_free(a);
        scenario_free(b);
        diag_clear(&d1);
        diag_clear(&d2);
        loaded++;
    }
    fclose(table);
    assert_true(loaded >= 45);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_counts_and_meta),
        cmocka_unit_test(test_shipped_network),
        cmocka_unit_test(test_shipped_timeline),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_team_names),
        cmocka_unit_test(test_offsets_and_chains),
        cmocka_unit_test(test_long_after_chain),
        cmocka_unit_test(test_disk_image_relative_to_file),
        cmocka_unit_test(test_bom_and_unterminated_buffer),
        cmocka_unit_test(test_bad_buffer_reports_everything),
        cmocka_unit_test(test_diag_limit),
        cmocka_unit_test(test_not_json_or_not_object),
        cmocka_unit_test(test_files_that_cannot_be_read),
        cmocka_unit_test(test_every_golden_case_loads_cleanly),
    };
    return cmocka_run_group_tests(tests, to_srcdir, NULL);
}
