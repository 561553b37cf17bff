/* Community ID v1: the spec's published vectors (as Zeek's test suite
 * carries them), and direction independence. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "community_id.h"

static void test_vectors(void **state)
{
    char id[COMMUNITY_ID_LEN];
    (void)state;
    assert_int_equal(community_id_from_strings(0, "1.2.3.4", "5.6.7.8", "tcp", 1122,
                                               3344, id), 0);
    assert_string_equal(id, "1:wCb3OG7yAFWelaUydu0D+125CLM=");
    assert_int_equal(community_id_from_strings(0, "1.2.3.4", "5.6.7.8", "udp", 1122,
                                               3344, id), 0);
    assert_string_equal(id, "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg=");
}

static void test_direction_independent(void **state)
{
    char a[COMMUNITY_ID_LEN], b[COMMUNITY_ID_LEN];
    (void)state;
    community_id_from_strings(0, "198.18.2.147", "198.18.0.66", "tcp", 40312, 80, a);
    community_id_from_strings(0, "198.18.0.66", "198.18.2.147", "tcp", 80, 40312, b);
    assert_string_equal(a, b);
    /* Same addresses, other ports: another flow. */
    community_id_from_strings(0, "198.18.2.147", "198.18.0.66", "tcp", 40313, 80, b);
    assert_string_not_equal(a, b);
    /* The seed changes the ID. */
    community_id_from_strings(1, "198.18.2.147", "198.18.0.66", "tcp", 40312, 80, b);
    assert_string_not_equal(a, b);
    /* An ICMP echo and its reply are one flow. */
    community_id_from_strings(0, "198.18.1.1", "198.18.1.10", "icmp", 8, 0, a);
    community_id_from_strings(0, "198.18.1.10", "198.18.1.1", "icmp", 0, 0, b);
    assert_string_equal(a, b);
}

static void test_bad_input(void **state)
{
    char id[COMMUNITY_ID_LEN];
    (void)state;
    assert_int_equal(community_id_from_strings(0, "1.2.3", "5.6.7.8", "tcp", 1, 2, id), -1);
    assert_int_equal(community_id_from_strings(0, "1.2.3.4", "5.6.7.8", "sctp2", 1, 2, id), -1);
    assert_int_equal(community_id_from_strings(0, "1.2.3.4", "5.6.7.8", "tcp", 70000, 2, id), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_direction_independent),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests_name("community_id", tests, NULL, NULL);
}
