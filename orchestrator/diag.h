/* diag — a list of diagnostics about user input (scenario files, CLI).
 *
 * Library code never prints: it appends diagnostics here and returns -1; only
 * main() decides how they reach the user.  Each diagnostic carries the input
 * position it applies to (file:line:col, 1-based; line 0 = whole file).
 */
#ifndef CYRANGE_DIAG_H
#define CYRANGE_DIAG_H

#include <stddef.h>
#include <stdio.h>

typedef struct diag {
    char *file;     /* owned */
    int line;
    int col;
    char *msg;      /* owned */
    size_t seq;     /* insertion order, keeps sorting stable */
} diag;

typedef struct diag_list {
    diag *items;
    size_t len;
    size_t cap;
    size_t limit;   /* stop recording after this many (0 = 1000) */
    size_t dropped; /* diagnostics not recorded because of the limit */
} diag_list;

void diag_init(diag_list *l);
/* Frees every diagnostic; the list itself may then be reused.  NULL is ok. */
void diag_clear(diag_list *l);
/* Appends a diagnostic.  file may be NULL.  Never fails visibly: on
 * allocation failure the diagnostic is counted in `dropped`. */
void diag_add(diag_list *l, const char *file, int line, int col,
              const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Sorts by file, line, column, then insertion order. */
void diag_sort(diag_list *l);
/* Writes one "file:line:col: message" line per diagnostic. */
void diag_print(const diag_list *l, FILE *out);

#endif
