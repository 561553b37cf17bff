/* Unit tests for units: durations and memory sizes as scenarios write them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "units.h"

#define SEC 1000LL
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

static int64_t dur(const char *s)
{
    int64_t ms = -42;
    assert_int_equal(units_duration_parse(s, &ms), 0);
    return ms;
}

static void bad_dur(const char *s)
{
    int64_t ms = -42;
    if (units_duration_parse(s, &ms) != -1)
        fail_msg("duration '%s' was accepted as %lld ms", s ? s : "(NULL)",
                 (long long)ms);
    assert_int_equal(ms, -42); /* untouched on failure */
}

static void test_duration_valid(void **state)
{
    (void)state;
    assert_int_equal(dur("250ms"), 250);
    assert_int_equal(dur("0ms"), 0);
    assert_int_equal(dur("0s"), 0);
    assert_int_equal(dur("90s"), 90 * SEC);
    assert_int_equal(dur("5m"), 5 * MIN);
    assert_int_equal(dur("2h"), 2 * HOUR);
    assert_int_equal(dur("1h30m"), 90 * MIN);
    assert_int_equal(dur("1m30s"), 90 * SEC);
    assert_int_equal(dur("1s500ms"), 1500);
    assert_int_equal(dur("1h1ms"), HOUR + 1);
    assert_int_equal(dur("1d"), DAY);
    assert_int_equal(dur("1d2h3m4s5ms"), DAY + 2 * HOUR + 3 * MIN + 4 * SEC + 5);
    assert_int_equal(dur("90m"), 90 * MIN);        /* no carrying needed */
    assert_int_equal(dur("3600s"), HOUR);
    assert_int_equal(dur("007s"), 7 * SEC);        /* leading zeros are digits */
}

static void test_duration_malformed(void **state)
{
    (void)state;
    int64_t ms = 0;
    assert_int_equal(units_duration_parse(NULL, &ms), -1);
    bad_dur("");
    bad_dur("90");        /* a bare number must be a JSON number */
    bad_dur("s");
    bad_dur("ms");
    bad_dur("h1");
    bad_dur("1h 30m");
    bad_dur(" 1h");
    bad_dur("1h ");
    bad_dur("1.5h");
    bad_dur("-1m");
    bad_dur("+1m");
    bad_dur("1H");
    bad_dur("1M");
    bad_dur("1w");
    bad_dur("1hm");
    bad_dur("1mss");
    bad_dur("1sm");
}

static void test_duration_unit_order(void **state)
{
    (void)state;
    /* Units must come in decreasing order, each at most once. */
    bad_dur("30m1h");
    bad_dur("1m1m");
    bad_dur("1s1m");
    bad_dur("1ms1s");
    bad_dur("1ms1ms");
    bad_dur("1h1d");
    bad_dur("1d1d");
    bad_dur("1d1h1d");
    bad_dur("1s1h");
}

static void test_duration_bounds(void **state)
{
    (void)state;
    /* At most 30 days, whatever the spelling; no overflow on the way. */
    assert_int_equal(dur("30d"), 30 * DAY);
    assert_int_equal(dur("720h"), 30 * DAY);
    assert_int_equal(dur("2592000s"), 30 * DAY);
    assert_int_equal(dur("2592000000ms"), 30 * DAY);
    assert_int_equal(dur("29d23h59m59s999ms"), 30 * DAY - 1);
    bad_dur("31d");
    bad_dur("721h");
    bad_dur("30d1ms");
    bad_dur("2592000001ms");
    bad_dur("99999999999999999999s");
    bad_dur("9223372036854775807ms");
    bad_dur("18446744073709551617h");
    bad_dur("29d24h1ms");
}

static const char *fmt(int64_t ms)
{
    static char buf[64];
    units_duration_format(ms, buf, sizeof(buf));
    return buf;
}

static void test_duration_format(void **state)
{
    (void)state;
    char small[4];
    assert_string_equal(fmt(0), "0s");
    assert_string_equal(fmt(-5), "0s");
    assert_string_equal(fmt(250), "250ms");
    assert_string_equal(fmt(SEC), "1s");
    assert_string_equal(fmt(61 * SEC), "1m1s");
    assert_string_equal(fmt(HOUR), "1h");
    assert_string_equal(fmt(90 * MIN), "1h30m");
    assert_string_equal(fmt(HOUR + SEC + 1), "1h1s1ms");
    assert_string_equal(fmt(7 * DAY), "168h");
    /* Formatting then parsing gives the value back. */
    const int64_t vals[] = { 1, 999, SEC, 59 * SEC + 1, 2 * HOUR + 5,
                             30 * DAY, 12345678 };
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
        assert_int_equal(dur(fmt(vals[i])), vals[i]);
    /* Truncates and terminates a small buffer. */
    units_duration_format(HOUR + 30 * MIN, small, sizeof(small));
    assert_string_equal(small, "1h3");
}

static const char *clk(int64_t ms)
{
    static char buf[64];
    units_clock_format(ms, buf, sizeof(buf));
    return buf;
}

static void test_clock_format(void **state)
{
    (void)state;
    assert_string_equal(clk(0), "+00:00:00");
    assert_string_equal(clk(5 * MIN), "+00:05:00");
    assert_string_equal(clk(HOUR + 2 * MIN + 3 * SEC), "+01:02:03");
    assert_string_equal(clk(25 * HOUR + MIN + SEC + 1), "+25:01:01.001");
    assert_string_equal(clk(250), "+00:00:00.250");
    assert_string_equal(clk(-1500), "-00:00:01.500");
    assert_string_equal(clk(30 * DAY), "+720:00:00");
}

static int64_t mib(const char *s)
{
    int64_t v = -42;
    assert_int_equal(units_size_parse_mib(s, &v), 0);
    return v;
}

static void bad_size(const char *s)
{
    int64_t v = -42;
    if (units_size_parse_mib(s, &v) != -1)
        fail_msg("size '%s' was accepted as %lld MiB", s ? s : "(NULL)",
                 (long long)v);
    assert_int_equal(v, -42);
}

static void test_sizes(void **state)
{
    (void)state;
    assert_int_equal(mib("128M"), 128);
    assert_int_equal(mib("128MiB"), 128);
    assert_int_equal(mib("512"), 512);       /* bare MiB */
    assert_int_equal(mib("0"), 0);           /* bounds are the caller's */
    assert_int_equal(mib("1G"), 1024);
    assert_int_equal(mib("16GiB"), 16384);
    assert_int_equal(mib("131072K"), 128);
    assert_int_equal(mib("1024KiB"), 1);
    assert_int_equal(mib("0K"), 0);
    assert_int_equal(mib("1099511627776"), 1099511627776LL); /* 2^40 */
    bad_size(NULL);
    bad_size("");
    bad_size("M");
    bad_size("1000K");       /* not a whole number of MiB */
    bad_size("1.5G");
    bad_size("-1M");
    bad_size("1T");
    bad_size("1 G");
    bad_size("1g");
    bad_size("1GB");
    bad_size("128MB");
    bad_size("1099511627777");            /* above 2^40 */
    bad_size("99999999999999999999999G"); /* no overflow */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duration_valid),
        cmocka_unit_test(test_duration_malformed),
        cmocka_unit_test(test_duration_unit_order),
        cmocka_unit_test(test_duration_bounds),
        cmocka_unit_test(test_duration_format),
        cmocka_unit_test(test_clock_format),
        cmocka_unit_test(test_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
