#include "diag.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void diag_init(diag_list *l)
{
    memset(l, 0, sizeof(*l));
}

void diag_clear(diag_list *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->len; i++) {
        free(l->items[i].file);
        free(l->items[i].msg);
    }
    free(l->items);
    size_t limit = l->limit;
    memset(l, 0, sizeof(*l));
    l->limit = limit;
}

void diag_add(diag_list *l, const char *file, int line, int col,
              const char *fmt, ...)
{
    size_t limit = l->limit ? l->limit : 1000;
    char *msg = NULL;
    char *fcopy = NULL;
    va_list ap;

    if (l->len >= limit) {
        l->dropped++;
        return;
    }
    if (l->len == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 16;
        diag *n = realloc(l->items, ncap * sizeof(*n));
        if (n == NULL) {
            l->dropped++;
            return;
        }
        l->items = n;
        l->cap = ncap;
    }
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    if (file != NULL)
        fcopy = strdup(file);
    if (msg == NULL || (file != NULL && fcopy == NULL)) {
        free(msg);
        free(fcopy);
        l->dropped++;
        return;
    }
    l->items[l->len] = (diag){ fcopy, line, col, msg, l->len };
    l->len++;
}

static int diag_cmp(const void *a, const void *b)
{
    const diag *x = a, *y = b;
    int c = strcmp(x->file ? x->file : "", y->file ? y->file : "");
    if (c != 0)
        return c;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->col != y->col)
        return x->col < y->col ? -1 : 1;
    return x->seq < y->seq ? -1 : (x->seq > y->seq);
}

void diag_sort(diag_list *l)
{
    if (l->len > 1)
        qsort(l->items, l->len, sizeof(l->items[0]), diag_cmp);
}

void diag_print(const diag_list *l, FILE *out)
{
    for (size_t i = 0; i < l->len; i++) {
        const diag *d = &l->items[i];
        fprintf(out, "%s:%d:%d: %s\n", d->file ? d->file : "<input>",
                d->line, d->col, d->msg);
    }
    if (l->dropped)
        fprintf(out, "(%zu more errors not shown)\n", l->dropped);
}
