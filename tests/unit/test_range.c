/* Unit tests of range provisioning logic: the libvirt XML cyrange writes
 * (golden files), the agent configuration, and virt.c against libvirt's
 * test:///default driver (never a stand-in for the real hypervisor: the
 * integration tests use qemu:///system and real guests). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plan.h"
#include "range.h"
#include "scenario.h"
#include "virt.h"

#define TEST_URI "test:///default"

static scenario *load(const char *path)
{
    diag_list d;
    diag_init(&d);
    scenario *s = scenario_load(path, &d);
    if (s == NULL)
        diag_print(&d, stderr);
    diag_clear(&d);
    return s;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0;
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc(len + 1);
    if (buf && fread(buf, 1, len, f) != len) {
        free(buf);
        buf = NULL;
    }
    if (buf)
        buf[len] = '\0';
    fclose(f);
    return buf;
}

/* Golden comparison; GOLDEN_REGENERATE=1 rewrites the expectation. */
static void golden(const char *name, const char *actual)
{
    char path[256];
    snprintf(path, sizeof(path), "tests/unit/expected/%s", name);
    if (getenv("GOLDEN_REGENERATE")) {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(actual, f);
        fclose(f);
        return;
    }
    char *want = slurp(path);
    if (want == NULL)
        fail_msg("missing %s (GOLDEN_REGENERATE=1 creates it)", path);
    if (strcmp(want, actual) != 0) {
        fprintf(stderr, "--- %s\n+++ actual\n%s", path, actual);
        free(want);
        fail_msg("%s differs", path);
    }
    free(want);
}

typedef struct fixture {
    scenario *s;
    plan *p;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    char err[256];
    f->s = load("scenarios/targeted-mail.json");
    assert_non_null(f->s);
    f->p = plan_build(f->s, "demo", 2, err, sizeof(err));
    assert_non_null(f->p);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    plan_free(f->p);
    scenario_free(f->s);
    free(f);
    return 0;
}

static void test_network_xml_is_l2_only(void **state)
{
    fixture *f = *state;
    for (int t = 0; t < 2; t++)
        for (size_t i = 0; i < f->s->n_segments; i++) {
            char *xml = range_network_xml(f->p, t, (int)i);
            assert_non_null(xml);
            /* No host address, no DHCP on the host, no route out. */
            assert_null(strstr(xml, "<ip"));
            assert_null(strstr(xml, "<forward"));
            assert_null(strstr(xml, "<dns"));
            assert_non_null(strstr(xml, f->p->teams[t].nets[i].bridge));
            if (t == 0 && i == 2)
                golden("demo-t01-office.network.xml", xml);
            free(xml);
        }
}

static void test_domain_xml(void **state)
{
    fixture *f = *state;
    range_opts o = { .domain_type = "qemu", .state_dir = "/var/lib/cyrange" };
    int fw = scenario_host_index(f->s, "fw");
    char *xml = range_domain_xml(f->p, 0, fw, &o, NULL);
    assert_non_null(xml);
    golden("demo-t01-fw.domain.xml", xml);
    assert_non_null(strstr(xml, "<exercise>demo</exercise>"));
    assert_non_null(strstr(xml, "<team>1</team>"));
    assert_non_null(strstr(xml, "<host>fw</host>"));
    assert_non_null(strstr(xml, "name='org.cyrange.agent.0'"));
    assert_non_null(strstr(xml, "/var/lib/cyrange/demo/t01-fw.agent.sock"));
    assert_non_null(strstr(xml, "cyrange.team=1 cyrange.host=fw"));
    /* One NIC per scenario NIC, each on its team's network, in order. */
    const char *p = xml;
    for (size_t k = 0; k < f->s->hosts[fw].n_nics; k++) {
        p = strstr(p, "<interface type='network'>");
        assert_non_null(p);
        char want[128];
        snprintf(want, sizeof(want), "<source network='%s'/>",
                 f->p->teams[0].nets[f->s->hosts[fw].nics[k].segment].name);
        assert_ptr_equal(strstr(p, "<source network="), strstr(p, want));
        p++;
    }
    free(xml);

    range_opts k = { .domain_type = "kvm", .state_dir = "/srv/x" };
    xml = range_domain_xml(f->p, 1, fw, &k, "/srv/x/pool/demo-t02-fw.qcow2");
    assert_non_null(strstr(xml, "<domain type='kvm'>"));
    assert_non_null(strstr(xml, "<team>2</team>"));
    assert_non_null(strstr(xml, "/srv/x/demo/t02-fw.agent.sock"));
    assert_non_null(strstr(xml, "<source file='/srv/x/pool/demo-t02-fw.qcow2'/>"));
    free(xml);
}

static const char *env_get(json_t *cfg, const char *k)
{
    return json_string_value(json_object_get(json_object_get(cfg, "env"), k));
}

static void test_agent_config(void **state)
{
    fixture *f = *state;
    int fw = scenario_host_index(f->s, "fw");
    int pc = scenario_host_index(f->s, "pc1");
    int at = scenario_host_index(f->s, "attacker");
    json_t *c = range_agent_config(f->p, 0, fw);
    assert_non_null(c);
    char *dump = json_dumps(c, JSON_INDENT(2) | JSON_SORT_KEYS);
    golden("demo-t01-fw.config.json", dump);
    free(dump);
    assert_string_equal(json_string_value(json_object_get(c, "t")), "config");
    assert_int_equal(json_array_size(json_object_get(c, "ifaces")), 3);
    /* fw serves DHCP on the office LAN (eth2) with itself as the gateway;
     * targeted-mail has no DNS server of its own, so the simulated
     * internet's resolver (on the attacker host) is everyone's DNS. */
    assert_string_equal(env_get(c, "CYR_DHCP_SERVE"),
                        "eth2,198.18.2.100,198.18.2.199,198.18.2.1,198.18.0.66");
    assert_string_equal(env_get(c, "CYR_DNS"), "198.18.0.66");
    /* With a DNS server of its own (data-leak-sqli's shop), the
     * organisation uses it, never the intruder's resolver. */
    {
        char perr[256];
        scenario *dl = load("scenarios/data-leak-sqli.json");
        assert_non_null(dl);
        plan *dp = plan_build(dl, "dl", 1, perr, sizeof(perr));
        assert_non_null(dp);
        json_t *dc = range_agent_config(dp, 0, scenario_host_index(dl, "fw"));
        assert_non_null(dc);
        assert_string_equal(env_get(dc, "CYR_DNS"), "198.18.1.80");
        assert_string_equal(env_get(dc, "CYR_DHCP_SERVE"),
                            "eth2,198.18.2.100,198.18.2.199,198.18.2.1,198.18.1.80");
        json_decref(dc);
        plan_free(dp);
        scenario_free(dl);
    }
    assert_string_equal(env_get(c, "CYR_SERVICES"), "proxy dhcp ssh");
    assert_string_equal(env_get(c, "CYR_IF_eth0_ROLE"), "internet");
    /* The proxy lets the office out to the simulated internet. */
    assert_string_equal(env_get(c, "CYR_PROXY_ALLOW"), "198.18.0.66 update.exarnple.test");
    json_t *acc = json_array_get(json_object_get(c, "accounts"), 0);
    assert_string_equal(json_string_value(json_object_get(acc, "name")), "netadmin");
    json_t *groups = json_object_get(acc, "groups");
    assert_string_equal(json_string_value(json_array_get(groups, 0)), "wheel");
    json_decref(c);

    c = range_agent_config(f->p, 1, pc);
    assert_int_equal(json_object_get(c, "team") ? json_integer_value(json_object_get(c, "team")) : 0, 2);
    json_t *if0 = json_array_get(json_object_get(c, "ifaces"), 0);
    assert_true(json_is_true(json_object_get(if0, "dhcp")));
    assert_string_equal(json_string_value(json_object_get(if0, "mac")),
                        f->p->teams[1].hosts[pc].nics[0].mac);
    assert_string_equal(env_get(c, "CYR_PROXY"), "198.18.2.1:3128");
    /* The user's mail client reads from the organisation's mail server. */
    assert_string_equal(env_get(c, "CYR_MAIL_SERVER"), "198.18.1.25");
    assert_string_equal(env_get(c, "CYR_MAIL_PASS_hanako"), "Spring2026!");
    assert_string_equal(env_get(c, "CYR_IF_eth0_ADDR"), "dhcp");
    json_decref(c);

    c = range_agent_config(f->p, 0, at);
    assert_string_equal(json_string_value(json_object_get(c, "gateway")), "198.18.0.1");
    /* The C2's DNS answers the beacon's domain. */
    assert_string_equal(env_get(c, "CYR_C2_DOMAIN"), "update.exarnple.test");
    json_decref(c);
}

static void test_agent_config_files(void **state)
{
    fixture *f = *state;
    json_t *c = range_agent_config(f->p, 0, scenario_host_index(f->s, "files"));
    json_t *file = json_array_get(json_object_get(c, "files"), 0);
    assert_string_equal(json_string_value(json_object_get(file, "path")),
                        "/srv/share/finance/budget-2027.csv");
    assert_string_equal(json_string_value(json_object_get(file, "mode")), "0640");
    json_decref(c);
}

/* virt.c against libvirt's test driver: create, find by metadata, remove,
 * and removal is idempotent. */
static void test_virt_lifecycle(void **state)
{
    fixture *f = *state;
    virt_err ve = { 0, "" };
    virt_conn *vc = virt_open(TEST_URI, &ve);
    range_opts o = { .domain_type = "test", .state_dir = "/tmp/cyrange-unit" };
    assert_non_null(vc);

    char *nx = range_network_xml(f->p, 0, 0);
    assert_int_equal(virt_network_create(vc, nx, &ve), 0);
    free(nx);
    char **nets = virt_network_list(vc, "demo-t01-", &ve);
    assert_non_null(nets);
    assert_string_equal(nets[0], "demo-t01-internet");
    assert_null(nets[1]);
    virt_strv_free(nets);
    char *br = virt_network_bridge(vc, "demo-t01-internet", &ve);
    assert_string_equal(br, f->p->teams[0].nets[0].bridge);
    free(br);

    int at = scenario_host_index(f->s, "attacker");
    char *dx = range_domain_xml(f->p, 0, at, &o, NULL);
    assert_int_equal(virt_domain_create(vc, dx, &ve), 0);
    free(dx);
    assert_int_equal(virt_domain_state(vc, "demo-t01-attacker", &ve), VIRT_DOM_RUNNING);
    char **doms = virt_domain_list(vc, "demo", &ve);
    assert_non_null(doms);
    assert_string_equal(doms[0], "demo-t01-attacker");
    assert_null(doms[1]);
    virt_strv_free(doms);
    /* Another exercise's name prefix does not match. */
    doms = virt_domain_list(vc, "dem", &ve);
    assert_null(doms[0]);
    virt_strv_free(doms);
    char *md = virt_domain_metadata(vc, "demo-t01-attacker", &ve);
    assert_non_null(md);
    assert_non_null(strstr(md, "<host>attacker</host>"));
    free(md);

    /* A second define of the same network fails cleanly. */
    nx = range_network_xml(f->p, 0, 0);
    assert_int_equal(virt_network_create(vc, nx, &ve), -1);
    assert_true(strlen(ve.msg) > 0);
    free(nx);

    /* range_down finds both through its own connection. */
    char err[256];
    assert_int_equal(range_down(TEST_URI, "/tmp/cyrange-unit-none", "demo", err,
                                sizeof(err)), 2);
    assert_int_equal(virt_domain_state(vc, "demo-t01-attacker", &ve), VIRT_DOM_ABSENT);
    assert_int_equal(virt_domain_remove(vc, "demo-t01-attacker", &ve), 0);
    assert_int_equal(virt_network_remove(vc, "demo-t01-internet", &ve), 0);
    assert_int_equal(range_down(TEST_URI, "/tmp/cyrange-unit-none", "demo", err,
                                sizeof(err)), 0);
    virt_close(vc);
}

static void test_virt_open_failure(void **state)
{
    (void)state;
    virt_err ve = { 0, "" };
    virt_conn *vc = virt_open("test:///nonexistent/file.xml", &ve);
    assert_null(vc);
    assert_non_null(strstr(ve.msg, "cannot connect"));
}

int main(void)
{
    if (chdir(CYRANGE_SRCDIR) != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_network_xml_is_l2_only),
        cmocka_unit_test(test_domain_xml),
        cmocka_unit_test(test_agent_config),
        cmocka_unit_test(test_agent_config_files),
        cmocka_unit_test(test_virt_lifecycle),
        cmocka_unit_test(test_virt_open_failure),
    };
    return cmocka_run_group_tests_name("range", tests, setup, teardown);
}
