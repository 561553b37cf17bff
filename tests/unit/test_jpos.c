/* Unit tests for jpos: where keys and values of a JSON text sit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jpos.h"

/* Position of `ptr` (value, or key when `key`) as "line:col". */
static const char *at(const jpos_index *ix, const char *ptr, int key)
{
    static char buf[32];
    jpos_loc l = jpos_find(ix, ptr, key);
    snprintf(buf, sizeof(buf), "%d:%d", l.line, l.col);
    return buf;
}

static jpos_index *build(const char *text)
{
    jpos_index *ix = jpos_build(text, strlen(text));
    assert_non_null(ix);
    return ix;
}

static void test_root_and_members(void **state)
{
    (void)state;
    jpos_index *ix = build("\n  {\"a\": 1,\n   \"bb\" :  \"x\",\n \"c\":{\"d\":true}}");
    assert_string_equal(at(ix, "", 0), "2:3");
    assert_string_equal(at(ix, "", 1), "2:3"); /* the root has no key */
    assert_string_equal(at(ix, "/a", 1), "2:4");
    assert_string_equal(at(ix, "/a", 0), "2:9");
    assert_string_equal(at(ix, "/bb", 1), "3:4");
    assert_string_equal(at(ix, "/bb", 0), "3:12");
    assert_string_equal(at(ix, "/c", 0), "4:6");
    assert_string_equal(at(ix, "/c/d", 1), "4:7");
    assert_string_equal(at(ix, "/c/d", 0), "4:11");
    jpos_free(ix);
}

static void test_nested_arrays(void **state)
{
    (void)state;
    jpos_index *ix = build("[1, [2, [3, {\"k\": [4,\n5]}]], [], {}]");
    assert_string_equal(at(ix, "/0", 0), "1:2");
    assert_string_equal(at(ix, "/1", 0), "1:5");
    assert_string_equal(at(ix, "/1/0", 0), "1:6");
    assert_string_equal(at(ix, "/1/1/0", 0), "1:10");
    assert_string_equal(at(ix, "/1/1/1", 0), "1:13");
    assert_string_equal(at(ix, "/1/1/1/k/0", 0), "1:20");
    assert_string_equal(at(ix, "/1/1/1/k/1", 0), "2:1");
    /* For array elements the "key" position is the element itself. */
    assert_string_equal(at(ix, "/1/1/1/k/1", 1), "2:1");
    assert_string_equal(at(ix, "/2", 0), "2:8");
    assert_string_equal(at(ix, "/3", 0), "2:12");
    jpos_free(ix);
}

static void test_escaped_keys(void **state)
{
    (void)state;
    /* RFC 6901: '~' is written "~0" and '/' is written "~1". */
    jpos_index *ix = build("{\"a/b\": 1, \"~x\": 2, \"~1\": 3, \"m~/n\": {\"/\": 4}}");
    assert_string_equal(at(ix, "/a~1b", 1), "1:2");
    assert_string_equal(at(ix, "/~0x", 1), "1:12");
    assert_string_equal(at(ix, "/~01", 1), "1:21");
    assert_string_equal(at(ix, "/m~0~1n", 1), "1:30");
    assert_string_equal(at(ix, "/m~0~1n/~1", 0), "1:44");
    /* Unescaped spellings are different pointers: they fall back. */
    assert_string_equal(at(ix, "/a/b", 0), "1:1");
    jpos_free(ix);
}

static void test_escapes_in_keys_and_strings(void **state)
{
    (void)state;
    /* JSON escapes in keys are decoded before the pointer is made, and
     * escaped quotes inside strings do not end them. */
    jpos_index *ix = build("{\"q\": \"a\\\"b\\\\\", \"\\u00e9t\\u00e9\": 1, "
                           "\"\\ud83d\\ude00\": 2, \"t\\tab\": 3, \"z\": 4}");
    assert_string_equal(at(ix, "/q", 0), "1:7");
    assert_string_equal(at(ix, "/\xc3\xa9t\xc3\xa9", 1), "1:17");
    assert_string_equal(at(ix, "/\xf0\x9f\x98\x80", 1), "1:37");
    assert_string_equal(at(ix, "/t\tab", 1), "1:56");
    assert_string_equal(at(ix, "/z", 1), "1:68");
    jpos_free(ix);
}

static void test_unicode_columns(void **state)
{
    (void)state;
    /* Columns count code points (as jansson's do), not bytes: 2-, 3- and
     * 4-byte UTF-8 sequences are one column each. */
    jpos_index *ix = build("{\"\xc3\xa9\": \"\xe6\x94\xbb\xe6\x92\x83\xf0\x9f\x9b\xa1\", \"k\": 1,\n"
                           " \"\xe6\xbc\x94\": [\"\xc3\xa9\", 2]}");
    assert_string_equal(at(ix, "/\xc3\xa9", 0), "1:7");
    assert_string_equal(at(ix, "/k", 1), "1:14");
    assert_string_equal(at(ix, "/k", 0), "1:19");
    assert_string_equal(at(ix, "/\xe6\xbc\x94", 1), "2:2");
    assert_string_equal(at(ix, "/\xe6\xbc\x94/1", 0), "2:13");
    jpos_free(ix);
}

static void test_line_endings_and_bom(void **state)
{
    (void)state;
    /* CR counts as a column like any character (jansson does the same);
     * a tab is one column; LF starts a new line. */
    jpos_index *ix = build("{\r\n\t\"a\": 1,\r\n\t\t\"b\": 2\r\n}");
    assert_string_equal(at(ix, "/a", 1), "2:2");
    assert_string_equal(at(ix, "/b", 0), "3:8");
    jpos_free(ix);

    /* A UTF-8 byte order mark takes no column. */
    ix = build("\xef\xbb\xbf{\"a\": 1}");
    assert_string_equal(at(ix, "", 0), "1:1");
    assert_string_equal(at(ix, "/a", 0), "1:7");
    jpos_free(ix);
}

static void test_fallback_to_ancestor(void **state)
{
    (void)state;
    jpos_index *ix = build("{\n \"hosts\": [\n  {\"name\": \"a\"}\n ]\n}");
    /* A missing member points at its object: the nearest indexed
     * ancestor's value, never its key. */
    assert_string_equal(at(ix, "/hosts/0/nics", 0), "3:3");
    assert_string_equal(at(ix, "/hosts/0/nics", 1), "3:3");
    assert_string_equal(at(ix, "/hosts/0/nics/3/address", 1), "3:3");
    assert_string_equal(at(ix, "/hosts/7", 0), "2:11");
    assert_string_equal(at(ix, "/nothing/at/all", 0), "1:1");
    /* Prefixes of a token are not ancestors. */
    assert_string_equal(at(ix, "/host", 0), "1:1");
    assert_string_equal(at(ix, "/hostsx/0", 0), "1:1");
    jpos_free(ix);

    /* No index at all: 1:1. */
    jpos_loc l = jpos_find(NULL, "/a", 1);
    assert_int_equal(l.line, 1);
    assert_int_equal(l.col, 1);
}

static void test_malformed_prefix_is_indexed(void **state)
{
    (void)state;
    /* On malformed JSON the index covers what came before the error. */
    const char *text = "{\"a\": 1, \"b\": [1, 2 \"c\": 3}";
    jpos_index *ix = jpos_build(text, strlen(text));
    assert_non_null(ix);
    assert_string_equal(at(ix, "/a", 0), "1:7");
    assert_string_equal(at(ix, "/b/1", 0), "1:19");
    assert_string_equal(at(ix, "/c", 0), "1:1");
    jpos_free(ix);

    /* Truncated inputs of every length: no crash, no leak. */
    const char *doc = "{\"k\\u00e9y\": [1, {\"x\": \"s\\\"t\"}, tru], \"z\": null}";
    for (size_t n = 0; n <= strlen(doc); n++) {
        ix = jpos_build(doc, n);
        assert_non_null(ix);
        jpos_free(ix);
    }
}

static void test_not_nul_terminated(void **state)
{
    (void)state;
    char buf[16];
    memcpy(buf, "{\"a\": 12345}XXX", 16);
    jpos_index *ix = jpos_build(buf, 9); /* "{\"a\": 123" */
    assert_non_null(ix);
    assert_string_equal(at(ix, "/a", 0), "1:7");
    jpos_free(ix);

    ix = jpos_build("", 0);
    assert_non_null(ix);
    assert_string_equal(at(ix, "", 0), "1:1");
    jpos_free(ix);
}

static void test_duplicate_member_last_wins(void **state)
{
    (void)state;
    /* The loader rejects duplicates, but the index must stay sane. */
    jpos_index *ix = build("{\"a\": 1,\n \"a\": 2}");
    assert_string_equal(at(ix, "/a", 1), "2:2");
    assert_string_equal(at(ix, "/a", 0), "2:7");
    jpos_free(ix);
}

static void test_many_members(void **state)
{
    (void)state;
    /* Enough entries to grow the hash table several times. */
    size_t n = 20000, cap = n * 40 + 16, len = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    len += (size_t)snprintf(text + len, cap - len, "{\"list\": [\n");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(text + len, cap - len, "%s{\"k%zu\": %zu}\n",
                                i ? "," : "", i, i);
    len += (size_t)snprintf(text + len, cap - len, "]}");
    jpos_index *ix = jpos_build(text, len);
    assert_non_null(ix);
    assert_string_equal(at(ix, "/list/0/k0", 1), "2:2");
    assert_string_equal(at(ix, "/list/19999/k19999", 0), "20001:13");
    assert_string_equal(at(ix, "/list/12345", 0), "12347:2");
    assert_string_equal(at(ix, "/list/12345/k1", 0), "12347:2");
    jpos_free(ix);
    free(text);
}

static void test_deep_nesting(void **state)
{
    (void)state;
    /* Deeper than the scanner follows: it stops there, without crashing;
     * later members fall back to their ancestors. */
    size_t depth = 3000;
    char *text = malloc(2 * depth + 64);
    assert_non_null(text);
    size_t len = (size_t)sprintf(text, "{\"a\": 1, \"deep\": ");
    memset(text + len, '[', depth);
    len += depth;
    memset(text + len, ']', depth);
    len += depth;
    len += (size_t)sprintf(text + len, ", \"z\": 2}");
    jpos_index *ix = jpos_build(text, len);
    assert_non_null(ix);
    assert_string_equal(at(ix, "/a", 0), "1:7");
    assert_string_equal(at(ix, "/deep", 1), "1:10");
    assert_string_equal(at(ix, "/deep/0/0", 0), "1:20");
    jpos_free(ix);
    free(text);
}

static void test_escape_function(void **state)
{
    (void)state;
    char buf[16];
    assert_int_equal(jpos_escape(buf, sizeof(buf), "plain"), 5);
    assert_string_equal(buf, "plain");
    assert_int_equal(jpos_escape(buf, sizeof(buf), "a/b~c"), 7);
    assert_string_equal(buf, "a~1b~0c");
    assert_int_equal(jpos_escape(buf, sizeof(buf), ""), 0);
    assert_string_equal(buf, "");
    /* Like snprintf: the needed length, a truncated and terminated copy. */
    assert_int_equal(jpos_escape(buf, 4, "~~~~"), 8);
    assert_string_equal(buf, "~0~");
    assert_int_equal(jpos_escape(NULL, 0, "/x/"), 5);
    buf[0] = 'Q';
    assert_int_equal(jpos_escape(buf, 1, "abc"), 3);
    assert_string_equal(buf, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_root_and_members),
        cmocka_unit_test(test_nested_arrays),
        cmocka_unit_test(test_escaped_keys),
        cmocka_unit_test(test_escapes_in_keys_and_strings),
        cmocka_unit_test(test_unicode_columns),
        cmocka_unit_test(test_line_endings_and_bom),
        cmocka_unit_test(test_fallback_to_ancestor),
        cmocka_unit_test(test_malformed_prefix_is_indexed),
        cmocka_unit_test(test_not_nul_terminated),
        cmocka_unit_test(test_duplicate_member_last_wins),
        cmocka_unit_test(test_many_members),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_escape_function),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
