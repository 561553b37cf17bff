/* jpos — where every key and value of a JSON text sits (line and column).
 *
 * jansson parses the scenario but forgets positions; validation needs them
 * to say "file:line:col".  jpos scans the same text once and indexes every
 * member and element by its JSON Pointer (RFC 6901), e.g. "/hosts/3/nics/0".
 * The root is "".  Lines and columns are 1-based; columns count Unicode
 * code points, as jansson's own error columns do.
 */
#ifndef CYRANGE_JPOS_H
#define CYRANGE_JPOS_H

#include <stddef.h>

typedef struct jpos_index jpos_index;

typedef struct jpos_loc {
    int line;
    int col;
} jpos_loc;

/* Builds the index of `text` (need not be NUL-terminated).  Returns NULL
 * only when out of memory; on malformed JSON the index covers what came
 * before the error.  The caller owns the result: jpos_free(). */
jpos_index *jpos_build(const char *text, size_t len);
void jpos_free(jpos_index *ix);

/* Position of the value at `ptr`, or of its member key when `key` is
 * nonzero (for array elements and the root, the value).  When `ptr` is not
 * indexed, the nearest indexed ancestor's value position is returned.
 * Never fails: the fallback is 1:1. */
jpos_loc jpos_find(const jpos_index *ix, const char *ptr, int key);

/* Appends one pointer token for `key` to a buffer, escaping '~' and '/'.
 * Returns the number of bytes the token needs (like snprintf). */
size_t jpos_escape(char *buf, size_t size, const char *key);

#endif
