/* Unit tests for addr: IPv4 parsing, prefixes and the range's address space. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "addr.h"

static uint32_t ip(const char *s)
{
    uint32_t a = 0xDEADBEEF;
    if (addr_parse(s, &a) != 0)
        fail_msg("'%s' was rejected", s);
    return a;
}

static void bad_ip(const char *s)
{
    uint32_t a = 0xDEADBEEF;
    if (addr_parse(s, &a) != -1)
        fail_msg("'%s' was accepted as %08x", s, a);
    assert_int_equal(a, 0xDEADBEEF);
}

static void test_parse(void **state)
{
    (void)state;
    assert_int_equal(ip("198.18.0.1"), 0xC6120001u);
    assert_int_equal(ip("0.0.0.0"), 0);
    assert_int_equal(ip("255.255.255.255"), 0xFFFFFFFFu);
    assert_int_equal(ip("10.0.0.1"), 0x0A000001u);
    assert_int_equal(ip("1.20.255.0"), 0x0114FF00u);
}

static void test_parse_rejects(void **state)
{
    (void)state;
    bad_ip("");
    bad_ip("1");
    bad_ip("1.2.3");
    bad_ip("1.2.3.4.5");
    bad_ip("1.2.3.");
    bad_ip(".1.2.3");
    bad_ip("1..2.3");
    bad_ip("256.0.0.1");
    bad_ip("1.2.3.256");
    bad_ip("1.2.3.1000");
    bad_ip("01.2.3.4");     /* leading zeros read as octal by some tools */
    bad_ip("1.2.3.04");
    bad_ip("1.2.3.00");
    bad_ip("1.2.3.0000");
    bad_ip("1.2.3.-4");
    bad_ip("+1.2.3.4");
    bad_ip(" 1.2.3.4");
    bad_ip("1.2.3.4 ");
    bad_ip("1.2.3.4\n");
    bad_ip("a.b.c.d");
    bad_ip("0x1.2.3.4");
    bad_ip("1.2.3.4/24");
    bad_ip("::1");
    bad_ip("99999999999.1.1.1");
}

static void test_parse_cidr(void **state)
{
    (void)state;
    uint32_t net = 0;
    int prefix = -1;
    assert_int_equal(addr_parse_cidr("198.18.0.0/15", &net, &prefix), 0);
    assert_int_equal(net, 0xC6120000u);
    assert_int_equal(prefix, 15);
    assert_int_equal(addr_parse_cidr("0.0.0.0/0", &net, &prefix), 0);
    assert_int_equal(prefix, 0);
    assert_int_equal(addr_parse_cidr("198.18.1.7/32", &net, &prefix), 0);
    assert_int_equal(net, 0xC6120107u);
    assert_int_equal(prefix, 32);
    /* Host bits are the caller's business: they are kept. */
    assert_int_equal(addr_parse_cidr("198.18.3.77/24", &net, &prefix), 0);
    assert_int_equal(net, 0xC612034Du);

    const char *bad[] = {
        "198.18.0.0", "198.18.0.0/", "198.18.0.0/33", "198.18.0.0/100",
        "198.18.0.0/024", "198.18.0.0/1a", "198.18.0.0/-1", "198.18.0.0/8/8",
        "198.18.0/24", "/24", "198.018.0.0/24", "198.18.0.0 /24",
        "198.18.0.0/ 24", "1111111111111111111111111111111111.1.1.1/8", "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        net = 0xDEADBEEF;
        prefix = -7;
        if (addr_parse_cidr(bad[i], &net, &prefix) != -1)
            fail_msg("'%s' was accepted", bad[i]);
        assert_int_equal(prefix, -7);
    }
}

static void test_mask(void **state)
{
    (void)state;
    assert_int_equal(addr_mask(0), 0);
    assert_int_equal(addr_mask(-3), 0);
    assert_int_equal(addr_mask(1), 0x80000000u);
    assert_int_equal(addr_mask(8), 0xFF000000u);
    assert_int_equal(addr_mask(15), 0xFFFE0000u);
    assert_int_equal(addr_mask(24), 0xFFFFFF00u);
    assert_int_equal(addr_mask(29), 0xFFFFFFF8u);
    assert_int_equal(addr_mask(31), 0xFFFFFFFEu);
    assert_int_equal(addr_mask(32), 0xFFFFFFFFu);
    assert_int_equal(addr_mask(40), 0xFFFFFFFFu);
}

static void test_in(void **state)
{
    (void)state;
    uint32_t net = ip("198.18.4.0");
    assert_true(addr_in(ip("198.18.4.0"), net, 23));
    assert_true(addr_in(ip("198.18.5.255"), net, 23));
    assert_false(addr_in(ip("198.18.6.0"), net, 23));
    assert_false(addr_in(ip("198.18.3.255"), net, 23));
    /* The network's own host bits do not matter. */
    assert_true(addr_in(ip("198.18.5.1"), ip("198.18.4.77"), 23));
    assert_true(addr_in(ip("1.2.3.4"), ip("9.9.9.9"), 0));
    assert_true(addr_in(net, net, 32));
    assert_false(addr_in(net + 1, net, 32));
}

static void test_range_space(void **state)
{
    (void)state;
    assert_int_equal(ADDR_RANGE_NET, ip("198.18.0.0"));
    assert_true(addr_in_range_space(ip("198.18.0.0")));
    assert_true(addr_in_range_space(ip("198.18.200.1")));
    assert_true(addr_in_range_space(ip("198.19.255.255")));
    assert_false(addr_in_range_space(ip("198.17.255.255")));
    assert_false(addr_in_range_space(ip("198.20.0.0")));
    assert_false(addr_in_range_space(ip("10.0.0.1")));
    assert_false(addr_in_range_space(ip("192.168.1.1")));
    assert_false(addr_in_range_space(0));
    assert_false(addr_in_range_space(0xFFFFFFFFu));
}

static void test_format(void **state)
{
    (void)state;
    char buf[16], small[8];
    const char *samples[] = { "0.0.0.0", "198.18.0.1", "255.255.255.255",
                              "10.200.3.45" };
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++)
        assert_string_equal(addr_format(ip(samples[i]), buf, sizeof(buf)),
                            samples[i]);
    /* Returns its buffer; truncates a short one and terminates it. */
    assert_ptr_equal(addr_format(1, buf, sizeof(buf)), buf);
    addr_format(ip("198.18.0.1"), small, sizeof(small));
    assert_string_equal(small, "198.18.");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_parse_cidr),
        cmocka_unit_test(test_mask),
        cmocka_unit_test(test_in),
        cmocka_unit_test(test_range_space),
        cmocka_unit_test(test_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
