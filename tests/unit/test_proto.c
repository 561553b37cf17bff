/* Unit tests for agents/proto: line framing, builders, parsers. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "proto.h"

/* ---- helpers -------------------------------------------------------------- */

/* Collect every line the reader has into one "|"-joined string. */
static void drain(proto_reader *r, char *out, size_t outlen)
{
    const char *line = NULL;
    size_t len = 0, off = strlen(out);

    while (proto_reader_next(r, &line, &len) == 1) {
        assert_int_equal(strlen(line), len);
        off += (size_t)snprintf(out + off, outlen - off, "%s%s",
                                off ? "|" : "", line);
    }
}

static void feed_str(proto_reader *r, const char *s)
{
    proto_err err;

    assert_int_equal(proto_reader_feed(r, s, strlen(s), &err), 0);
}

/* Serialise and parse back: what the other side would see. */
static void roundtrip(json_t *msg, proto_msg *out)
{
    proto_err err;
    size_t len = 0;
    char *line = NULL;

    assert_non_null(msg);
    line = proto_line(msg, &len, &err);
    assert_non_null(line);
    assert_int_equal(line[len - 1], '\n');
    assert_null(memchr(line, '\n', len - 1));
    assert_int_equal(proto_parse(line, len - 1, out, &err), 0);
    free(line);
    json_decref(msg);
}

static const char *jstr_of(const proto_msg *m, const char *key)
{
    return json_string_value(json_object_get(m->root, key));
}

static int parse_str(const char *s, proto_msg *m, proto_err *err)
{
    return proto_parse(s, strlen(s), m, err);
}

/* ---- framing ---------------------------------------------------------------- */

static void test_reader_split_line(void **state)
{
    proto_reader *r = proto_reader_new(0);
    char got[256] = "";

    (void)state;
    assert_non_null(r);
    feed_str(r, "{\"t\":");
    drain(r, got, sizeof(got));
    assert_string_equal(got, "");
    assert_int_equal(proto_reader_pending(r), 5);
    feed_str(r, "\"hello?\",");
    feed_str(r, "\"id\":1}");
    drain(r, got, sizeof(got));
    assert_string_equal(got, "");
    feed_str(r, "\n");
    drain(r, got, sizeof(got));
    assert_string_equal(got, "{\"t\":\"hello?\",\"id\":1}");
    assert_int_equal(proto_reader_pending(r), 0);
    proto_reader_free(r);
}

static void test_reader_many_lines(void **state)
{
    proto_reader *r = proto_reader_new(0);
    char got[256] = "";

    (void)state;
    /* CRLF is tolerated and empty lines are skipped. */
    feed_str(r, "a\nbb\r\n\n\r\nccc\nd");
    drain(r, got, sizeof(got));
    assert_string_equal(got, "a|bb|ccc");
    feed_str(r, "d\ne\n");
    drain(r, got, sizeof(got));
    assert_string_equal(got, "a|bb|ccc|dd|e");
    assert_int_equal(proto_reader_dropped(r), 0);
    proto_reader_free(r);
}

static void test_reader_oversize_small(void **state)
{
    proto_reader *r = proto_reader_new(8);
    char got[256] = "";

    (void)state;
    /* Exactly the limit is fine. */
    feed_str(r, "12345678\n");
    drain(r, got, sizeof(got));
    assert_string_equal(got, "12345678");
    /* A complete overlong line inside one chunk. */
    feed_str(r, "123456789\nok\n");
    drain(r, got, sizeof(got));
    assert_string_equal(got, "12345678|ok");
    assert_int_equal(proto_reader_dropped(r), 1);
    /* An overlong line arriving in pieces, the rest discarded as it
     * comes, and the reader recovers at the next newline. */
    feed_str(r, "abcdef");
    drain(r, got, sizeof(got));
    feed_str(r, "ghijkl");
    drain(r, got, sizeof(got));
    assert_int_equal(proto_reader_dropped(r), 2);
    assert_int_equal(proto_reader_pending(r), 0);
    feed_str(r, "still the same line");
    assert_int_equal(proto_reader_pending(r), 0);
    feed_str(r, "...end\nnext\n");
    drain(r, got, sizeof(got));
    assert_string_equal(got, "12345678|ok|next");
    assert_int_equal(proto_reader_dropped(r), 2);
    proto_reader_free(r);
}

static void test_reader_oversize_default(void **state)
{
    proto_reader *r = proto_reader_new(0);
    char *chunk = malloc(65536);
    char got[256] = "";
    size_t sent = 0;

    (void)state;
    assert_non_null(chunk);
    memset(chunk, 'x', 65536);
    /* 1 MiB + 64 KiB of one line: dropped, memory stays bounded. */
    while (sent <= PROTO_MAX_LINE) {
        feed_str(r, ""); /* a zero-length feed is harmless */
        assert_int_equal(proto_reader_feed(r, chunk, 65536, NULL), 0);
        drain(r, got, sizeof(got));
        assert_true(proto_reader_pending(r) <= PROTO_MAX_LINE + 65536);
        sent += 65536;
    }
    assert_int_equal(proto_reader_dropped(r), 1);
    feed_str(r, "tail\n{\"t\":\"health\",\"id\":2}\n");
    drain(r, got, sizeof(got));
    assert_string_equal(got, "{\"t\":\"health\",\"id\":2}");
    free(chunk);
    proto_reader_free(r);
}

static void test_reader_read_fd(void **state)
{
    proto_reader *r = proto_reader_new(0);
    proto_err err;
    char got[256] = "";
    int p[2];

    (void)state;
    assert_int_equal(pipe2(p, O_NONBLOCK), 0);
    assert_int_equal(proto_reader_read_fd(r, p[0], &err), -1);
    assert_int_equal(err.code, PROTO_ERR_AGAIN);
    assert_int_equal(write(p[1], "x\ny", 3), 3);
    assert_int_equal(proto_reader_read_fd(r, p[0], &err), 3);
    drain(r, got, sizeof(got));
    assert_string_equal(got, "x");
    assert_int_equal(write(p[1], "\n", 1), 1);
    assert_int_equal(proto_reader_read_fd(r, p[0], &err), 1);
    drain(r, got, sizeof(got));
    assert_string_equal(got, "x|y");
    close(p[1]);
    assert_int_equal(proto_reader_read_fd(r, p[0], &err), 0);
    close(p[0]);
    /* A closed fd is an I/O error with errno kept. */
    assert_int_equal(proto_reader_read_fd(r, p[0], &err), -1);
    assert_int_equal(err.code, PROTO_ERR_IO);
    assert_int_equal(err.errno_val, EBADF);
    proto_reader_free(r);
}

static void test_reader_reset_and_null(void **state)
{
    proto_reader *r = proto_reader_new(4);
    char got[64] = "";

    (void)state;
    feed_str(r, "partial");
    proto_reader_reset(r);
    assert_int_equal(proto_reader_pending(r), 0);
    feed_str(r, "ab\n");
    drain(r, got, sizeof(got));
    assert_string_equal(got, "ab");
    proto_reader_free(r);
    proto_reader_free(NULL);
    proto_reader_reset(NULL);
    proto_msg_clear(NULL);
    proto_health_clear(NULL);
    assert_int_equal(proto_reader_dropped(NULL), 0);
    assert_int_equal(proto_reader_next(NULL, NULL, NULL), 0);
}

/* ---- parse errors ------------------------------------------------------------ */

static void test_parse_invalid_json(void **state)
{
    proto_msg m;
    proto_err err;

    (void)state;
    assert_int_equal(parse_str("{\"t\":\"health\",", &m, &err), -1);
    assert_int_equal(err.code, PROTO_ERR_JSON);
    assert_false(err.has_id);
    assert_null(m.root);
    assert_int_equal(parse_str("not json", &m, &err), -1);
    assert_int_equal(err.code, PROTO_ERR_JSON);
    assert_int_equal(parse_str("[1,2]", &m, &err), -1);
    assert_int_equal(err.code, PROTO_ERR_SCHEMA);
    assert_int_equal(parse_str("{\"t\":\"health\",\"id\":1}{}", &m, &err), -1);
    assert_int_equal(err.code, PROTO_ERR_JSON);
    /* One meaning per message: duplicate keys are refused. */
    assert_int_equal(parse_str("{\"t\":\"health\",\"id\":1,\"id\":2}", &m, &err),
                     -1);
    assert_int_equal(err.code, PROTO_ERR_JSON);
}

static void test_parse_missing_fields(void **state)
{
    proto_msg m;
    proto_err err;

    (void)state;
    assert_int_equal(parse_str("{\"id\":7}", &m, &err), -1);
    assert_int_equal(err.code, PROTO_ERR_SCHEMA);
    assert_true(err.has_id);
    assert_int_equal(err.id, 7);
    assert_non_null(strstr(err.msg, "\"t\""));

    assert_int_equal(parse_str("{\"t\":\"health\"}", &m, &err), -1);
    assert_non_null(strstr(err.msg, "\"id\""));
    assert_false(err.has_id);

    assert_int_equal(parse_str("{\"t\":\"health\",\"id\":\"1\"}", &m, &err), -1);
    assert_non_null(strstr(err.msg, "integer"));

    assert_int_equal(parse_str("{\"t\":3,\"id\":1}", &m, &err), -1);
    assert_true(err.has_id);

    assert_int_equal(parse_str("{\"t\":\"probe\",\"id\":9,\"addr\":\"198.18.1.1\"}",
                               &m, &err), -1);
    assert_int_equal(err.id, 9);
    assert_non_null(strstr(err.msg, "\"port\""));

    assert_int_equal(parse_str("{\"t\":\"exec\",\"id\":3}", &m, &err), -1);
    assert_non_null(strstr(err.msg, "\"argv\""));
    assert_int_equal(parse_str("{\"t\":\"exec\",\"id\":3,\"argv\":[]}", &m, &err),
                     -1);
    assert_int_equal(parse_str("{\"t\":\"exec\",\"id\":3,\"argv\":[\"ls\",1]}",
                               &m, &err), -1);
    assert_non_null(strstr(err.msg, "argv[1]"));

    assert_int_equal(parse_str("{\"t\":\"reply\",\"id\":3}", &m, &err), -1);
    assert_non_null(strstr(err.msg, "\"ok\""));
    assert_int_equal(parse_str("{\"t\":\"hello\"}", &m, &err), -1);
    assert_non_null(strstr(err.msg, "\"v\""));
    assert_int_equal(parse_str("{\"t\":\"event\"}", &m, &err), -1);
    assert_non_null(strstr(err.msg, "\"kind\""));
}

static void test_parse_unknown_type(void **state)
{
    proto_msg m;
    proto_err err;

    (void)state;
    assert_int_equal(parse_str("{\"t\":\"reboot\",\"id\":4}", &m, &err), 0);
    assert_int_equal(m.type, PROTO_T_UNKNOWN);
    assert_string_equal(m.t, "reboot");
    assert_true(m.has_id);
    assert_int_equal(m.id, 4);
    proto_msg_clear(&m);
    assert_null(m.root);
    /* Without an id nobody could be answered. */
    assert_int_equal(parse_str("{\"t\":\"reboot\"}", &m, &err), -1);
    assert_int_equal(parse_str("{\"t\":\"health\",\"id\":5,\"extra\":[1]}", &m,
                               &err), 0);
    assert_int_equal(m.type, PROTO_T_HEALTH);
    proto_msg_clear(&m);
    assert_string_equal(proto_type_name(PROTO_T_HELLO_REQ), "hello?");
    assert_null(proto_type_name(PROTO_T_UNKNOWN));
}

static void test_parse_oversize(void **state)
{
    proto_msg m;
    proto_err err;
    char *big = malloc(PROTO_MAX_LINE + 2);

    (void)state;
    assert_non_null(big);
    memset(big, ' ', PROTO_MAX_LINE + 1);
    assert_int_equal(proto_parse(big, PROTO_MAX_LINE + 1, &m, &err), -1);
    assert_int_equal(err.code, PROTO_ERR_OVERSIZE);
    free(big);
}

/* ---- round trips --------------------------------------------------------------- */

static void test_hello_roundtrip(void **state)
{
    const char *caps[] = {"config", "health", "probe", "exec"};
    proto_iface ifs[] = {{"eth0", "52:54:00:00:00:01"}, {"eth1", NULL}};
    proto_hello h = {0};
    proto_msg m;
    proto_err err;

    (void)state;
    h.agent = "0.1.0";
    h.exercise = "ex1";
    h.team = 3;
    h.host = "web";
    h.caps = caps;
    h.ncaps = 4;
    h.ifaces = ifs;
    h.nifaces = 2;
    roundtrip(proto_build_hello(&h, &err), &m);
    assert_int_equal(m.type, PROTO_T_HELLO);
    assert_false(m.has_id);
    assert_int_equal(m.u.hello.v, PROTO_VERSION);
    assert_string_equal(m.u.hello.agent, "0.1.0");
    assert_string_equal(m.u.hello.exercise, "ex1");
    assert_int_equal(m.u.hello.team, 3);
    assert_string_equal(m.u.hello.host, "web");
    assert_int_equal(m.u.hello.ncaps, 4);
    assert_string_equal(m.u.hello.caps[3], "exec");
    assert_null(m.u.hello.caps[4]);
    assert_int_equal(m.u.hello.nifaces, 2);
    assert_string_equal(m.u.hello.ifaces[0].mac, "52:54:00:00:00:01");
    assert_null(m.u.hello.ifaces[1].mac);
    proto_msg_clear(&m);

    /* Unknown identity travels as null. */
    h.exercise = NULL;
    h.team = -1;
    h.host = NULL;
    h.nifaces = 0;
    roundtrip(proto_build_hello(&h, &err), &m);
    assert_null(m.u.hello.exercise);
    assert_int_equal(m.u.hello.team, -1);
    assert_null(m.u.hello.host);
    assert_int_equal(m.u.hello.nifaces, 0);
    proto_msg_clear(&m);

    h.agent = NULL;
    assert_null(proto_build_hello(&h, &err));
    assert_int_equal(err.code, PROTO_ERR_ARG);
}

static void test_simple_requests_roundtrip(void **state)
{
    proto_msg m;
    proto_err err;

    (void)state;
    roundtrip(proto_build_hello_req(11, &err), &m);
    assert_int_equal(m.type, PROTO_T_HELLO_REQ);
    assert_int_equal(m.id, 11);
    proto_msg_clear(&m);
    roundtrip(proto_build_health_req(12, &err), &m);
    assert_int_equal(m.type, PROTO_T_HEALTH);
    assert_int_equal(m.id, 12);
    proto_msg_clear(&m);
    roundtrip(proto_build_event("progress", &err), &m);
    assert_int_equal(m.type, PROTO_T_EVENT);
    assert_string_equal(m.u.event.kind, "progress");
    assert_ptr_equal(m.u.event.body, m.root);
    proto_msg_clear(&m);
}

static void test_config_roundtrip(void **state)
{
    proto_cfg_iface ifs[] = {
        {"52:54:00:aa:bb:01", 0, "198.18.1.10", 24},
        {"52:54:00:AA:BB:02", 1, NULL, 0},
    };
    const char *dns[] = {"198.18.1.10", "198.18.1.11"};
    static const char bin[] = "line1\nA\0B";
    proto_cfg_file files[] = {
        {"/etc/motd", "welcome\n", 8, 0644},
        {"/opt/x/bin.dat", bin, sizeof(bin) - 1, 0755},
    };
    const char *groups[] = {"users", "wheel"};
    proto_cfg_account acc[] = {
        {"alice", "s3cret:x", groups, 2},
        {"bob", NULL, NULL, 0},
    };
    proto_kv env[] = {{"CYR_SERVICES", "http smtp"}, {"CYR_ROLE", "server"}};
    proto_config c = {0};
    proto_msg m;
    proto_err err;
    const proto_config *p = NULL;

    (void)state;
    c.exercise = "ex1";
    c.team = 2;
    c.host = "web";
    c.role = "server";
    c.hostname = "web";
    c.ifaces = ifs;
    c.nifaces = 2;
    c.gateway = "198.18.1.1";
    c.dns = dns;
    c.ndns = 2;
    c.files = files;
    c.nfiles = 2;
    c.accounts = acc;
    c.naccounts = 2;
    c.env = env;
    c.nenv = 2;
    roundtrip(proto_build_config(42, &c, &err), &m);
    assert_int_equal(m.type, PROTO_T_CONFIG);
    assert_int_equal(m.id, 42);
    p = &m.u.config;
    assert_string_equal(p->exercise, "ex1");
    assert_int_equal(p->team, 2);
    assert_string_equal(p->host, "web");
    assert_string_equal(p->role, "server");
    assert_string_equal(p->hostname, "web");
    assert_int_equal(p->nifaces, 2);
    assert_string_equal(p->ifaces[0].addr, "198.18.1.10");
    assert_int_equal(p->ifaces[0].prefix, 24);
    assert_false(p->ifaces[0].dhcp);
    assert_true(p->ifaces[1].dhcp);
    assert_string_equal(p->ifaces[1].mac, "52:54:00:AA:BB:02");
    assert_string_equal(p->gateway, "198.18.1.1");
    assert_int_equal(p->ndns, 2);
    assert_string_equal(p->dns[1], "198.18.1.11");
    assert_int_equal(p->nfiles, 2);
    assert_string_equal(p->files[0].path, "/etc/motd");
    assert_int_equal(p->files[0].mode, 0644);
    assert_int_equal(p->files[1].mode, 0755);
    assert_int_equal(p->files[1].content_len, sizeof(bin) - 1);
    assert_memory_equal(p->files[1].content, bin, sizeof(bin) - 1);
    assert_int_equal(p->naccounts, 2);
    assert_string_equal(p->accounts[0].password, "s3cret:x");
    assert_int_equal(p->accounts[0].ngroups, 2);
    assert_string_equal(p->accounts[0].groups[1], "wheel");
    assert_null(p->accounts[1].password);
    assert_int_equal(p->accounts[1].ngroups, 0);
    assert_int_equal(p->nenv, 2);
    /* Order is kept: host.env is written in the orchestrator's order. */
    assert_string_equal(p->env[0].key, "CYR_SERVICES");
    assert_string_equal(p->env[0].value, "http smtp");
    assert_string_equal(p->env[1].key, "CYR_ROLE");
    proto_msg_clear(&m);

    /* An empty config is valid: nothing to do. */
    assert_int_equal(parse_str("{\"t\":\"config\",\"id\":1}", &m, &err), 0);
    assert_int_equal(m.u.config.team, -1);
    assert_int_equal(m.u.config.nifaces, 0);
    proto_msg_clear(&m);
}

static void test_config_invalid(void **state)
{
    static const struct {
        const char *body;
        const char *expect;
    } cases[] = {
        {"\"ifaces\":[{\"mac\":\"52:54:00:aa:bb\",\"addr\":\"198.18.1.1\","
         "\"prefix\":24}]", "mac"},
        {"\"ifaces\":[{\"mac\":\"52:54:00:aa:bb:cc\",\"addr\":\"198.18.1\","
         "\"prefix\":24}]", "addr"},
        {"\"ifaces\":[{\"mac\":\"52:54:00:aa:bb:cc\",\"addr\":\"198.18.1.1\","
         "\"prefix\":33}]", "prefix"},
        {"\"ifaces\":[{\"mac\":\"52:54:00:aa:bb:cc\"}]", "addr"},
        {"\"ifaces\":{}", "ifaces"},
        {"\"gateway\":\"x\"", "gateway"},
        {"\"dns\":[\"1.2.3.4\",\"nope\"]", "dns[1]"},
        {"\"hostname\":\"bad host\"", "hostname"},
        {"\"team\":\"1\"", "team"},
        {"\"files\":[{\"path\":\"etc/motd\"}]", "path"},
        {"\"files\":[{\"path\":\"/etc/../shadow\"}]", "path"},
        {"\"files\":[{\"path\":\"/etc//x\"}]", "path"},
        {"\"files\":[{\"path\":\"/etc/x\",\"mode\":\"0999\"}]", "mode"},
        {"\"files\":[{\"path\":\"/etc/x\",\"mode\":true}]", "mode"},
        {"\"files\":[{\"path\":\"/etc/x\",\"content\":1}]", "content"},
        {"\"accounts\":[{\"name\":\"Root Kit\"}]", "name"},
        {"\"accounts\":[{\"name\":\"alice\",\"password\":\"a\\nb\"}]",
         "password"},
        {"\"accounts\":[{\"name\":\"alice\",\"groups\":[\"a b\"]}]", "group"},
        {"\"env\":{\"1BAD\":\"x\"}", "env key"},
        {"\"env\":{\"OK\":1}", "env"},
        {"\"env\":[]", "env"},
    };
    char line[512];
    proto_msg m;
    proto_err err;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(line, sizeof(line), "{\"t\":\"config\",\"id\":%zu,%s}", i + 1,
                 cases[i].body);
        if (parse_str(line, &m, &err) == 0) {
            proto_msg_clear(&m);
            fail_msg("accepted: %s", line);
        }
        assert_int_equal(err.code, PROTO_ERR_SCHEMA);
        assert_true(err.has_id);
        assert_int_equal(err.id, (long long)i + 1);
        if (strstr(err.msg, cases[i].expect) == NULL)
            fail_msg("%s: error \"%s\" does not mention \"%s\"", line, err.msg,
                     cases[i].expect);
    }
}

static void test_probe_roundtrip(void **state)
{
    proto_probe p = {.addr = "198.18.1.20", .port = 80};
    proto_msg m;
    proto_err err;

    (void)state;
    roundtrip(proto_build_probe(5, &p, &err), &m);
    assert_int_equal(m.type, PROTO_T_PROBE);
    assert_string_equal(m.u.probe.proto, "tcp");
    assert_string_equal(m.u.probe.addr, "198.18.1.20");
    assert_int_equal(m.u.probe.port, 80);
    assert_int_equal(m.u.probe.timeout_ms, PROTO_PROBE_DEFAULT_TIMEOUT_MS);
    proto_msg_clear(&m);

    assert_int_equal(parse_str("{\"t\":\"probe\",\"id\":1,\"addr\":\"198.18.1.1\","
                               "\"port\":0}", &m, &err), -1);
    assert_int_equal(parse_str("{\"t\":\"probe\",\"id\":1,\"addr\":\"198.18.1.1\","
                               "\"port\":22,\"timeout_ms\":0}", &m, &err), -1);
    assert_int_equal(parse_str("{\"t\":\"probe\",\"id\":1,\"addr\":\"web\","
                               "\"port\":22}", &m, &err), -1);
    assert_non_null(strstr(err.msg, "addr"));
    /* Parsing does not judge the range: the agent refuses, with a reason. */
    assert_int_equal(parse_str("{\"t\":\"probe\",\"id\":1,\"addr\":\"127.0.0.1\","
                               "\"port\":22}", &m, &err), 0);
    proto_msg_clear(&m);
}

/* A version-1 probe: built without kind, it carries no check field, and a
 * version-1 line parses to kind NONE. */
static void test_probe_v1_compat(void **state)
{
    proto_probe p = {.proto = "tcp", .addr = "198.18.1.20", .port = 22,
                     .timeout_ms = 500};
    const char *keys[] = {"kind", "path", "host", "expect_status", "expect",
                          "name", "expect_address"};
    proto_probe_result r = {.reachable = 1, .rtt_ms = 2.5}, rp;
    json_t *j = NULL;
    proto_msg m;
    proto_err err;
    size_t i;

    (void)state;
    j = proto_build_probe(3, &p, &err);
    assert_non_null(j);
    /* t, id, proto, addr, port, timeout_ms: exactly what v1 sent. */
    assert_int_equal(json_object_size(j), 6);
    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        assert_null(json_object_get(j, keys[i]));
    roundtrip(j, &m);
    assert_int_equal(m.u.probe.kind, PROTO_CHECK_NONE);
    assert_null(m.u.probe.path);
    assert_null(m.u.probe.expect);
    assert_null(m.u.probe.name);
    assert_int_equal(m.u.probe.port, 22);
    assert_int_equal(m.u.probe.timeout_ms, 500);
    proto_msg_clear(&m);

    /* An old line, as an old orchestrator writes it. */
    assert_int_equal(parse_str("{\"t\":\"probe\",\"id\":4,\"proto\":\"tcp\","
                               "\"addr\":\"198.18.1.1\",\"port\":25,"
                               "\"timeout_ms\":2000}", &m, &err), 0);
    assert_int_equal(m.u.probe.kind, PROTO_CHECK_NONE);
    assert_string_equal(m.u.probe.proto, "tcp");
    assert_int_equal(m.u.probe.port, 25);
    assert_int_equal(m.u.probe.expect_status, 0);
    proto_msg_clear(&m);
    /* Without kind the port is still required, and other protos parse
     * (the agent answers them unsupported). */
    assert_int_equal(parse_str("{\"t\":\"probe\",\"id\":4,\"addr\":\"198.18.1.1\"}",
                               &m, &err), -1);
    assert_non_null(strstr(err.msg, "port"));
    assert_int_equal(parse_str("{\"t\":\"probe\",\"id\":4,\"proto\":\"icmp\","
                               "\"addr\":\"198.18.1.1\"}", &m, &err), 0);
    assert_int_equal(m.u.probe.port, 0);
    proto_msg_clear(&m);

    /* A reply without check: the v1 keys only; parsed, no check. */
    j = proto_build_probe_reply(5, &r, &err);
    assert_non_null(j);
    assert_null(json_object_get(j, "check_ok"));
    assert_null(json_object_get(j, "status"));
    assert_null(json_object_get(j, "detail"));
    assert_null(json_object_get(j, "error"));
    roundtrip(j, &m);
    assert_int_equal(proto_parse_probe_reply(&m, &rp, &err), 0);
    assert_true(rp.reachable);
    assert_false(rp.has_check);
    assert_int_equal(rp.status, -1);
    assert_null(rp.detail);
    proto_msg_clear(&m);
    /* An old agent's reply to a check request parses the same way. */
    assert_int_equal(parse_str("{\"t\":\"reply\",\"id\":6,\"ok\":true,"
                               "\"reachable\":false,\"rtt_ms\":1,"
                               "\"error\":\"timeout\"}", &m, &err), 0);
    assert_int_equal(proto_parse_probe_reply(&m, &rp, &err), 0);
    assert_false(rp.has_check);
    assert_false(rp.check_ok);
    assert_string_equal(rp.error, "timeout");
    proto_msg_clear(&m);
}

static void test_probe_check_roundtrip(void **state)
{
    proto_probe h = {.addr = "198.18.1.80", .timeout_ms = 5000,
                     .kind = PROTO_CHECK_HTTP, .path = "/index.html?a=1",
                     .host = "www.example.test", .expect_status = 301,
                     .expect = "Welcome \"home\" \xc3\xa9"};
    proto_probe s = {.addr = "198.18.1.25", .kind = PROTO_CHECK_SMTP,
                     .expect = "ESMTP"};
    proto_probe d = {.addr = "198.18.1.53", .port = 5353,
                     .kind = PROTO_CHECK_DNS, .name = "www.example.test.",
                     .expect_address = "198.18.1.80"};
    proto_probe t = {.addr = "198.18.1.22", .port = 22,
                     .kind = PROTO_CHECK_TCP};
    json_t *j = NULL;
    proto_msg m;
    proto_err err;

    (void)state;
    roundtrip(proto_build_probe(1, &h, &err), &m);
    assert_int_equal(m.u.probe.kind, PROTO_CHECK_HTTP);
    assert_string_equal(m.u.probe.proto, "tcp");
    assert_int_equal(m.u.probe.port, 80);
    assert_int_equal(m.u.probe.timeout_ms, 5000);
    assert_string_equal(m.u.probe.path, "/index.html?a=1");
    assert_string_equal(m.u.probe.host, "www.example.test");
    assert_int_equal(m.u.probe.expect_status, 301);
    assert_string_equal(m.u.probe.expect, "Welcome \"home\" \xc3\xa9");
    assert_null(m.u.probe.name);
    assert_string_equal(jstr_of(&m, "kind"), "http");
    proto_msg_clear(&m);
    /* Defaults of an http check: path "/", Host the address, 200. */
    h.path = h.host = h.expect = NULL;
    h.expect_status = 0;
    roundtrip(proto_build_probe(2, &h, &err), &m);
    assert_null(m.u.probe.path);
    assert_null(m.u.probe.host);
    assert_null(m.u.probe.expect);
    assert_int_equal(m.u.probe.expect_status, 200);
    proto_msg_clear(&m);

    roundtrip(proto_build_probe(3, &s, &err), &m);
    assert_int_equal(m.u.probe.kind, PROTO_CHECK_SMTP);
    assert_int_equal(m.u.probe.port, 25);
    assert_string_equal(m.u.probe.expect, "ESMTP");
    assert_string_equal(m.u.probe.proto, "tcp");
    proto_msg_clear(&m);

    roundtrip(proto_build_probe(4, &d, &err), &m);
    assert_int_equal(m.u.probe.kind, PROTO_CHECK_DNS);
    assert_string_equal(m.u.probe.proto, "udp");
    assert_int_equal(m.u.probe.port, 5353);
    assert_string_equal(m.u.probe.name, "www.example.test.");
    assert_string_equal(m.u.probe.expect_address, "198.18.1.80");
    proto_msg_clear(&m);
    d.port = 0;
    d.expect_address = NULL;
    roundtrip(proto_build_probe(5, &d, &err), &m);
    assert_int_equal(m.u.probe.port, 53);
    assert_null(m.u.probe.expect_address);
    proto_msg_clear(&m);
    /* A dns check without a name cannot be built. */
    d.name = NULL;
    assert_null(proto_build_probe(6, &d, &err));
    assert_int_equal(err.code, PROTO_ERR_ARG);
    d.kind = (proto_check_kind)42;
    d.name = "x.test";
    assert_null(proto_build_probe(6, &d, &err));

    roundtrip(proto_build_probe(7, &t, &err), &m);
    assert_int_equal(m.u.probe.kind, PROTO_CHECK_TCP);
    assert_int_equal(m.u.probe.port, 22);
    assert_null(m.u.probe.expect);
    proto_msg_clear(&m);
    t.expect = "SSH-2.0";
    roundtrip(proto_build_probe(7, &t, &err), &m);
    assert_string_equal(m.u.probe.expect, "SSH-2.0");
    proto_msg_clear(&m);
    /* A dns check has no expect (expect_address says it). */
    d.kind = PROTO_CHECK_DNS;
    d.expect = "x";
    j = proto_build_probe(9, &d, &err);
    assert_non_null(j);
    assert_null(json_object_get(j, "expect"));
    json_decref(j);

    /* Fields of another kind are ignored, not parsed. */
    assert_int_equal(parse_str("{\"t\":\"probe\",\"id\":8,\"kind\":\"smtp\","
                               "\"addr\":\"198.18.1.1\",\"path\":7,"
                               "\"name\":\"..\"}", &m, &err), 0);
    assert_null(m.u.probe.path);
    assert_null(m.u.probe.name);
    proto_msg_clear(&m);

    assert_int_equal(proto_check_kind_parse("dns"), PROTO_CHECK_DNS);
    assert_int_equal(proto_check_kind_parse("http"), PROTO_CHECK_HTTP);
    assert_int_equal(proto_check_kind_parse("HTTP"), -1);
    assert_int_equal(proto_check_kind_parse(""), -1);
    assert_int_equal(proto_check_kind_parse(NULL), -1);
    assert_string_equal(proto_check_kind_name(PROTO_CHECK_SMTP), "smtp");
    assert_null(proto_check_kind_name(PROTO_CHECK_NONE));
    assert_null(proto_check_kind_name((proto_check_kind)9));
}

static void test_probe_check_invalid(void **state)
{
    static const struct {
        const char *fields;
        const char *expect;
    } cases[] = {
        {"\"kind\":\"ftp\"", "kind"},
        {"\"kind\":3", "kind"},
        {"\"kind\":\"tcp\"", "port"},
        {"\"kind\":\"http\",\"port\":0", "port"},
        {"\"kind\":\"http\",\"proto\":\"udp\"", "proto"},
        {"\"kind\":\"dns\",\"proto\":\"tcp\",\"name\":\"a.test\"", "proto"},
        {"\"kind\":\"http\",\"path\":\"index.html\"", "path"},
        {"\"kind\":\"http\",\"path\":\"/a b\"", "path"},
        {"\"kind\":\"http\",\"path\":\"/a\\r\\nX: y\"", "path"},
        {"\"kind\":\"http\",\"path\":\"/\\u00e9\"", "path"},
        {"\"kind\":\"http\",\"path\":\"\"", "path"},
        {"\"kind\":\"http\",\"host\":\"a\\nb\"", "host"},
        {"\"kind\":\"http\",\"host\":\"\"", "host"},
        {"\"kind\":\"http\",\"expect_status\":99", "expect_status"},
        {"\"kind\":\"http\",\"expect_status\":600", "expect_status"},
        {"\"kind\":\"http\",\"expect_status\":\"200\"", "expect_status"},
        {"\"kind\":\"smtp\",\"expect\":5", "expect"},
        {"\"kind\":\"dns\"", "name"},
        {"\"kind\":\"dns\",\"name\":\"a..test\"", "name"},
        {"\"kind\":\"dns\",\"name\":\".\"", "name"},
        {"\"kind\":\"dns\",\"name\":\"a b.test\"", "name"},
        {"\"kind\":\"dns\",\"name\":\"a.test\",\"expect_address\":\"web\"",
         "expect_address"},
    };
    char line[512], longname[320], *big = NULL;
    proto_msg m;
    proto_err err;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(line, sizeof(line), "{\"t\":\"probe\",\"id\":%zu,"
                 "\"addr\":\"198.18.1.1\",%s}", i + 1, cases[i].fields);
        if (parse_str(line, &m, &err) == 0) {
            proto_msg_clear(&m);
            fail_msg("accepted: %s", line);
        }
        assert_int_equal(err.code, PROTO_ERR_SCHEMA);
        assert_true(err.has_id);
        assert_int_equal(err.id, (long long)i + 1);
        if (strstr(err.msg, cases[i].expect) == NULL)
            fail_msg("%s: error \"%s\" does not mention \"%s\"", line, err.msg,
                     cases[i].expect);
    }
    /* A label of 64 characters, and a name past 253. */
    memset(longname, 'a', 64);
    longname[64] = '\0';
    snprintf(line, sizeof(line), "{\"t\":\"probe\",\"id\":1,\"kind\":\"dns\","
             "\"addr\":\"198.18.1.1\",\"name\":\"%s.test\"}", longname);
    assert_int_equal(parse_str(line, &m, &err), -1);
    longname[63] = '\0';
    snprintf(line, sizeof(line), "{\"t\":\"probe\",\"id\":1,\"kind\":\"dns\","
             "\"addr\":\"198.18.1.1\",\"name\":\"%s.test\"}", longname);
    assert_int_equal(parse_str(line, &m, &err), 0);
    proto_msg_clear(&m);
    for (i = 0; i < 255; i++)
        longname[i] = (i % 2) ? '.' : 'a';
    longname[255] = '\0';
    snprintf(line, sizeof(line), "{\"t\":\"probe\",\"id\":1,\"kind\":\"dns\","
             "\"addr\":\"198.18.1.1\",\"name\":\"%s\"}", longname);
    assert_int_equal(parse_str(line, &m, &err), -1);
    longname[253] = '\0';
    snprintf(line, sizeof(line), "{\"t\":\"probe\",\"id\":1,\"kind\":\"dns\","
             "\"addr\":\"198.18.1.1\",\"name\":\"%s.\"}", longname);
    assert_int_equal(parse_str(line, &m, &err), 0);
    proto_msg_clear(&m);
    /* expect is bounded. */
    big = malloc(PROTO_CHECK_MAX_EXPECT + 200);
    assert_non_null(big);
    memset(line, 0, sizeof(line));
    i = (size_t)snprintf(big, 200, "{\"t\":\"probe\",\"id\":1,\"kind\":\"smtp\","
                         "\"addr\":\"198.18.1.1\",\"expect\":\"");
    memset(big + i, 'x', PROTO_CHECK_MAX_EXPECT + 1);
    snprintf(big + i + PROTO_CHECK_MAX_EXPECT + 1, 8, "\"}");
    assert_int_equal(parse_str(big, &m, &err), -1);
    assert_non_null(strstr(err.msg, "expect"));
    /* One byte less is fine. */
    snprintf(big + i + PROTO_CHECK_MAX_EXPECT, 8, "\"}");
    assert_int_equal(parse_str(big, &m, &err), 0);
    assert_int_equal(strlen(m.u.probe.expect), PROTO_CHECK_MAX_EXPECT);
    proto_msg_clear(&m);
    free(big);
}

static void test_probe_check_reply(void **state)
{
    proto_probe_result r = {.reachable = 1, .rtt_ms = 0.5, .has_check = 1,
                            .check_ok = 1, .status = 0,
                            .detail = "198.18.1.80"}, rp;
    json_t *j = NULL;
    proto_msg m;
    proto_err err;

    (void)state;
    /* status 0 is a real value (dns NOERROR). */
    roundtrip(proto_build_probe_reply(1, &r, &err), &m);
    assert_int_equal(proto_parse_probe_reply(&m, &rp, &err), 0);
    assert_true(rp.has_check);
    assert_true(rp.check_ok);
    assert_int_equal(rp.status, 0);
    assert_string_equal(rp.detail, "198.18.1.80");
    assert_null(rp.error);
    proto_msg_clear(&m);

    /* No status read: null on the wire, -1 back. */
    r.reachable = 0;
    r.error = "ECONNREFUSED";
    r.check_ok = 0;
    r.status = -1;
    r.detail = NULL;
    j = proto_build_probe_reply(2, &r, &err);
    assert_non_null(j);
    assert_true(json_is_null(json_object_get(j, "status")));
    assert_string_equal(json_string_value(json_object_get(j, "detail")), "");
    assert_true(json_is_false(json_object_get(j, "check_ok")));
    roundtrip(j, &m);
    assert_int_equal(proto_parse_probe_reply(&m, &rp, &err), 0);
    assert_true(rp.has_check);
    assert_false(rp.check_ok);
    assert_int_equal(rp.status, -1);
    assert_string_equal(rp.error, "ECONNREFUSED");
    assert_string_equal(rp.detail, "");
    proto_msg_clear(&m);

    r.reachable = 1;
    r.status = 503;
    r.detail = "HTTP 503 (expected 200), 12 bytes";
    roundtrip(proto_build_probe_reply(3, &r, &err), &m);
    assert_int_equal(proto_parse_probe_reply(&m, &rp, &err), 0);
    assert_int_equal(rp.status, 503);
    assert_false(rp.check_ok);
    assert_string_equal(rp.detail, "HTTP 503 (expected 200), 12 bytes");
    proto_msg_clear(&m);

    /* Wrong types are errors, not silently dropped. */
    assert_int_equal(parse_str("{\"t\":\"reply\",\"id\":6,\"ok\":true,"
                               "\"reachable\":true,\"check_ok\":1}", &m, &err),
                     0);
    assert_int_equal(proto_parse_probe_reply(&m, &rp, &err), -1);
    assert_non_null(strstr(err.msg, "check_ok"));
    proto_msg_clear(&m);
    assert_int_equal(parse_str("{\"t\":\"reply\",\"id\":6,\"ok\":true,"
                               "\"reachable\":true,\"check_ok\":true,"
                               "\"status\":\"200\"}", &m, &err), 0);
    assert_int_equal(proto_parse_probe_reply(&m, &rp, &err), -1);
    assert_non_null(strstr(err.msg, "status"));
    proto_msg_clear(&m);
}

static void test_exec_roundtrip(void **state)
{
    const char *argv[] = {"/bin/sh", "-c", "cat"};
    proto_exec e = {argv, 3, 500, "in\0put", 6};
    proto_msg m;
    proto_err err;

    (void)state;
    roundtrip(proto_build_exec(6, &e, &err), &m);
    assert_int_equal(m.type, PROTO_T_EXEC);
    assert_int_equal(m.u.exec.argc, 3);
    assert_string_equal(m.u.exec.argv[2], "cat");
    assert_null(m.u.exec.argv[3]);
    assert_int_equal(m.u.exec.timeout_ms, 500);
    assert_int_equal(m.u.exec.stdin_len, 6);
    assert_memory_equal(m.u.exec.stdin_data, "in\0put", 6);
    proto_msg_clear(&m);

    e.timeout_ms = 0;
    e.stdin_data = NULL;
    roundtrip(proto_build_exec(7, &e, &err), &m);
    assert_int_equal(m.u.exec.timeout_ms, PROTO_EXEC_DEFAULT_TIMEOUT_MS);
    assert_null(m.u.exec.stdin_data);
    proto_msg_clear(&m);
    e.argc = 0;
    assert_null(proto_build_exec(8, &e, &err));
}

static void test_replies_roundtrip(void **state)
{
    const char *a0[] = {"198.18.1.10/24", "198.18.2.1/16"};
    proto_health_iface hifs[] = {{"eth0", "52:54:00:00:00:01", 1, a0, 2},
                                 {"eth1", NULL, 0, NULL, 0}};
    proto_health h = {12.5, 0.25, 1000, 2000, hifs, 2, 1}, hp;
    proto_probe_result pr = {.rtt_ms = 1.23456, .error = "ECONNREFUSED"}, pp;
    static const char out[] = "ok\n\0bin\xff\xfe\xe2\x82";
    proto_exec_result er = {0}, ep;
    proto_msg m;
    proto_err err;

    (void)state;
    roundtrip(proto_build_health_reply(9, &h, &err), &m);
    assert_int_equal(m.type, PROTO_T_REPLY);
    assert_true(m.u.reply.ok);
    assert_int_equal(proto_parse_health_reply(&m, &hp, &err), 0);
    assert_true(hp.uptime_s == 12.5);
    assert_true(hp.load1 == 0.25);
    assert_int_equal(hp.mem_free_kb, 1000);
    assert_int_equal(hp.mem_total_kb, 2000);
    assert_true(hp.services_started);
    assert_int_equal(hp.nifaces, 2);
    assert_int_equal(hp.ifaces[0].naddrs, 2);
    assert_string_equal(hp.ifaces[0].addrs[1], "198.18.2.1/16");
    assert_true(hp.ifaces[0].up);
    assert_null(hp.ifaces[1].mac);
    assert_false(hp.ifaces[1].up);
    proto_health_clear(&hp);
    /* A health view of a reply that is not one fails cleanly. */
    assert_int_equal(proto_parse_probe_reply(&m, &pp, &err), -1);
    proto_msg_clear(&m);

    roundtrip(proto_build_probe_reply(10, &pr, &err), &m);
    assert_int_equal(proto_parse_probe_reply(&m, &pp, &err), 0);
    assert_false(pp.reachable);
    assert_string_equal(pp.error, "ECONNREFUSED");
    assert_true(pp.rtt_ms > 1.234 && pp.rtt_ms < 1.236);
    proto_msg_clear(&m);
    pr.reachable = 1;
    pr.error = "ignored";
    roundtrip(proto_build_probe_reply(10, &pr, &err), &m);
    assert_int_equal(proto_parse_probe_reply(&m, &pp, &err), 0);
    assert_true(pp.reachable);
    assert_null(pp.error);
    proto_msg_clear(&m);

    /* Raw bytes: NUL survives, invalid UTF-8 becomes U+FFFD. */
    er.exit_code = 137;
    er.signal = 9;
    er.timed_out = 1;
    er.out = out;
    er.out_len = sizeof(out) - 1;
    er.err = "e";
    er.err_len = 1;
    er.err_truncated = 1;
    roundtrip(proto_build_exec_reply(11, &er, &err), &m);
    assert_int_equal(proto_parse_exec_reply(&m, &ep, &err), 0);
    assert_int_equal(ep.exit_code, 137);
    assert_int_equal(ep.signal, 9);
    assert_true(ep.timed_out);
    /* Four bad bytes (the last two a cut-off sequence), four U+FFFD. */
    assert_int_equal(ep.out_len, 7 + 4 * 3);
    assert_memory_equal(ep.out,
                        "ok\n\0bin\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                        "\xef\xbf\xbd",
                        ep.out_len);
    assert_false(ep.out_truncated);
    assert_true(ep.err_truncated);
    assert_string_equal(ep.err, "e");
    proto_msg_clear(&m);

    /* Output past the cap is cut and flagged. */
    er.out = calloc(1, PROTO_EXEC_MAX_OUTPUT + 100);
    er.out_len = PROTO_EXEC_MAX_OUTPUT + 100;
    roundtrip(proto_build_exec_reply(12, &er, &err), &m);
    free((void *)er.out);
    assert_int_equal(proto_parse_exec_reply(&m, &ep, &err), 0);
    assert_int_equal(ep.out_len, PROTO_EXEC_MAX_OUTPUT);
    assert_true(ep.out_truncated);
    proto_msg_clear(&m);
}

static void test_reply_error_and_null_id(void **state)
{
    proto_msg m;
    proto_err err;
    proto_health hp;

    (void)state;
    roundtrip(proto_build_reply(1, 13, 0, "unknown request", &err), &m);
    assert_true(m.has_id);
    assert_false(m.u.reply.ok);
    assert_string_equal(m.u.reply.error, "unknown request");
    assert_int_equal(proto_parse_health_reply(&m, &hp, &err), -1);
    assert_non_null(strstr(err.msg, "unknown request"));
    proto_msg_clear(&m);
    roundtrip(proto_build_reply(0, 0, 0, "invalid JSON", &err), &m);
    assert_false(m.has_id);
    assert_false(m.u.reply.ok);
    proto_msg_clear(&m);
}

static void test_line_limits(void **state)
{
    json_t *msg = json_pack("{s:s,s:s}", "t", "event", "kind", "a\nb");
    proto_err err;
    size_t len = 0;
    char *line = NULL, *big = NULL;

    (void)state;
    line = proto_line(msg, &len, &err);
    assert_string_equal(line, "{\"t\":\"event\",\"kind\":\"a\\nb\"}\n");
    assert_int_equal(len, strlen(line));
    free(line);
    json_decref(msg);

    big = malloc(PROTO_MAX_LINE + 1);
    memset(big, 'x', PROTO_MAX_LINE);
    big[PROTO_MAX_LINE] = '\0';
    msg = json_pack("{s:s,s:s}", "t", "event", "kind", big);
    free(big);
    assert_null(proto_line(msg, &len, &err));
    assert_int_equal(err.code, PROTO_ERR_OVERSIZE);
    json_decref(msg);
    msg = json_array();
    assert_null(proto_line(msg, &len, &err));
    json_decref(msg);
}

static void test_addr_and_mac(void **state)
{
    (void)state;
    assert_true(proto_addr_in_range("198.18.0.0"));
    assert_true(proto_addr_in_range("198.18.1.10"));
    assert_true(proto_addr_in_range("198.19.255.255"));
    assert_false(proto_addr_in_range("198.17.255.255"));
    assert_false(proto_addr_in_range("198.20.0.0"));
    assert_false(proto_addr_in_range("127.0.0.1"));
    assert_false(proto_addr_in_range("10.0.0.1"));
    assert_false(proto_addr_in_range("::1"));
    assert_false(proto_addr_in_range("198.18.1"));
    assert_false(proto_addr_in_range(""));
    assert_false(proto_addr_in_range(NULL));
    assert_true(proto_mac_valid("52:54:00:AB:cd:01"));
    assert_false(proto_mac_valid("52:54:00:ab:cd"));
    assert_false(proto_mac_valid("52-54-00-ab-cd-01"));
    assert_false(proto_mac_valid("52:54:00:ab:cd:0g"));
    assert_false(proto_mac_valid(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reader_split_line),
        cmocka_unit_test(test_reader_many_lines),
        cmocka_unit_test(test_reader_oversize_small),
        cmocka_unit_test(test_reader_oversize_default),
        cmocka_unit_test(test_reader_read_fd),
        cmocka_unit_test(test_reader_reset_and_null),
        cmocka_unit_test(test_parse_invalid_json),
        cmocka_unit_test(test_parse_missing_fields),
        cmocka_unit_test(test_parse_unknown_type),
        cmocka_unit_test(test_parse_oversize),
        cmocka_unit_test(test_hello_roundtrip),
        cmocka_unit_test(test_simple_requests_roundtrip),
        cmocka_unit_test(test_config_roundtrip),
        cmocka_unit_test(test_config_invalid),
        cmocka_unit_test(test_probe_roundtrip),
        cmocka_unit_test(test_probe_v1_compat),
        cmocka_unit_test(test_probe_check_roundtrip),
        cmocka_unit_test(test_probe_check_invalid),
        cmocka_unit_test(test_probe_check_reply),
        cmocka_unit_test(test_exec_roundtrip),
        cmocka_unit_test(test_replies_roundtrip),
        cmocka_unit_test(test_reply_error_and_null_id),
        cmocka_unit_test(test_line_limits),
        cmocka_unit_test(test_addr_and_mac),
    };

    return cmocka_run_group_tests_name("proto", tests, NULL, NULL);
}
