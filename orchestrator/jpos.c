#include "jpos.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    size_t off;        /* of the pointer text in the arena */
    size_t len;
    uint32_t hash;
    int key_line, key_col;
    int val_line, val_col;
} entry;

struct jpos_index {
    char *arena;       /* pointer strings, back to back */
    size_t alen, acap;
    entry *ents;       /* open addressing; len == 0 means empty slot */
    size_t nents, cap;
    int oom;
};

typedef struct scanner {
    const char *s;
    size_t n, i;
    int line, col;
    jpos_index *ix;
    char *path;        /* current pointer, NUL-terminated */
    size_t plen, pcap;
    int depth;
} scanner;

#define MAX_DEPTH 512

static uint32_t hash_bytes(const char *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 16777619u;
    }
    return h ? h : 1;
}

static int grow_table(jpos_index *ix)
{
    size_t ncap = ix->cap ? ix->cap * 2 : 256;
    entry *n = calloc(ncap, sizeof(*n));
    if (n == NULL)
        return -1;
    for (size_t i = 0; i < ix->cap; i++) {
        entry *e = &ix->ents[i];
        if (e->hash == 0)
            continue;
        size_t j = e->hash & (ncap - 1);
        while (n[j].hash != 0)
            j = (j + 1) & (ncap - 1);
        n[j] = *e;
    }
    free(ix->ents);
    ix->ents = n;
    ix->cap = ncap;
    return 0;
}

static entry *lookup(const jpos_index *ix, const char *p, size_t n, uint32_t h)
{
    if (ix->cap == 0)
        return NULL;
    size_t j = h & (ix->cap - 1);
    while (ix->ents[j].hash != 0) {
        entry *e = &ix->ents[j];
        if (e->hash == h && e->len == n && memcmp(ix->arena + e->off, p, n) == 0)
            return e;
        j = (j + 1) & (ix->cap - 1);
    }
    return NULL;
}

/* Records the current path; key position is given, value position is the
 * scanner's current position. */
static void record(scanner *sc, int kline, int kcol)
{
    jpos_index *ix = sc->ix;
    if (ix->oom)
        return;
    if ((ix->nents + 1) * 4 >= ix->cap * 3 && grow_table(ix) < 0) {
        ix->oom = 1;
        return;
    }
    uint32_t h = hash_bytes(sc->path, sc->plen);
    entry *e = lookup(ix, sc->path, sc->plen, h);
    if (e == NULL) {
        /* Allocated even for the root's empty pointer: arithmetic on a
         * NULL arena is undefined, even with a zero length. */
        if (ix->arena == NULL || ix->alen + sc->plen > ix->acap) {
            size_t ncap = ix->acap ? ix->acap * 2 : 4096;
            while (ncap < ix->alen + sc->plen)
                ncap *= 2;
            char *a = realloc(ix->arena, ncap);
            if (a == NULL) {
                ix->oom = 1;
                return;
            }
            ix->arena = a;
            ix->acap = ncap;
        }
        memcpy(ix->arena + ix->alen, sc->path, sc->plen);
        size_t j = h & (ix->cap - 1);
        while (ix->ents[j].hash != 0)
            j = (j + 1) & (ix->cap - 1);
        e = &ix->ents[j];
        e->off = ix->alen;
        e->len = sc->plen;
        e->hash = h;
        ix->alen += sc->plen;
        ix->nents++;
    }
    e->key_line = kline;
    e->key_col = kcol;
    e->val_line = sc->line;
    e->val_col = sc->col;
}

static int peek(const scanner *sc)
{
    return sc->i < sc->n ? (unsigned char)sc->s[sc->i] : -1;
}

static void advance(scanner *sc)
{
    unsigned char c = (unsigned char)sc->s[sc->i++];
    if (c == '\n') {
        sc->line++;
        sc->col = 1;
    } else if ((c & 0xC0) != 0x80) {
        sc->col++;
    }
}

static void skip_ws(scanner *sc)
{
    int c;
    while ((c = peek(sc)) == ' ' || c == '\t' || c == '\n' || c == '\r')
        advance(sc);
}

static int path_push(scanner *sc, const char *tok, size_t tlen)
{
    if (sc->plen + tlen + 2 > sc->pcap) {
        size_t ncap = sc->pcap ? sc->pcap : 256;
        while (ncap < sc->plen + tlen + 2)
            ncap *= 2;
        char *p = realloc(sc->path, ncap);
        if (p == NULL)
            return -1;
        sc->path = p;
        sc->pcap = ncap;
    }
    sc->path[sc->plen++] = '/';
    memcpy(sc->path + sc->plen, tok, tlen);
    sc->plen += tlen;
    sc->path[sc->plen] = '\0';
    return 0;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static size_t put_utf8(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static int read_hex4(scanner *sc, uint32_t *out)
{
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hexval(peek(sc));
        if (h < 0)
            return -1;
        v = v * 16 + (uint32_t)h;
        advance(sc);
    }
    *out = v;
    return 0;
}

/* Scans a string; when `out` is given, stores the decoded bytes escaped as a
 * JSON Pointer token (malloc'd, length in *olen). */
static int scan_string(scanner *sc, char **out, size_t *olen)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;

    if (peek(sc) != '"')
        return -1;
    advance(sc);
    for (;;) {
        int c = peek(sc);
        char tmp[8];
        size_t tn = 0;
        if (c < 0)
            goto fail;
        if (c == '"') {
            advance(sc);
            break;
        }
        if (c == '\\') {
            advance(sc);
            c = peek(sc);
            if (c < 0)
                goto fail;
            advance(sc);
            switch (c) {
            case 'b': tmp[0] = '\b'; tn = 1; break;
            case 'f': tmp[0] = '\f'; tn = 1; break;
            case 'n': tmp[0] = '\n'; tn = 1; break;
            case 'r': tmp[0] = '\r'; tn = 1; break;
            case 't': tmp[0] = '\t'; tn = 1; break;
            case 'u': {
                uint32_t cp, lo;
                if (read_hex4(sc, &cp) < 0)
                    goto fail;
                if (cp >= 0xD800 && cp < 0xDC00 && peek(sc) == '\\') {
                    advance(sc);
                    if (peek(sc) != 'u')
                        goto fail;
                    advance(sc);
                    if (read_hex4(sc, &lo) < 0)
                        goto fail;
                    if (lo >= 0xDC00 && lo < 0xE000)
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                tn = put_utf8(tmp, cp);
                break;
            }
            default: tmp[0] = (char)c; tn = 1; break;
            }
        } else {
            tmp[0] = (char)c;
            tn = 1;
            advance(sc);
        }
        if (out == NULL)
            continue;
        /* JSON Pointer escaping: '~' -> "~0", '/' -> "~1". */
        char esc[16];
        size_t en = 0;
        for (size_t k = 0; k < tn; k++) {
            if (tmp[k] == '~') {
                esc[en++] = '~';
                esc[en++] = '0';
            } else if (tmp[k] == '/') {
                esc[en++] = '~';
                esc[en++] = '1';
            } else {
                esc[en++] = tmp[k];
            }
        }
        if (len + en + 1 > cap) {
            size_t ncap = cap ? cap * 2 : 32;
            while (ncap < len + en + 1)
                ncap *= 2;
            char *nb = realloc(buf, ncap);
            if (nb == NULL)
                goto fail;
            buf = nb;
            cap = ncap;
        }
        memcpy(buf + len, esc, en);
        len += en;
    }
    if (out != NULL) {
        if (buf == NULL && (buf = malloc(1)) == NULL)
            return -1;
        buf[len] = '\0';
        *out = buf;
        *olen = len;
    }
    return 0;
fail:
    free(buf);
    return -1;
}

static int scan_value(scanner *sc, int kline, int kcol);

static int scan_object(scanner *sc)
{
    advance(sc); /* '{' */
    skip_ws(sc);
    if (peek(sc) == '}') {
        advance(sc);
        return 0;
    }
    for (;;) {
        char *key = NULL;
        size_t klen = 0;
        skip_ws(sc);
        int kline = sc->line, kcol = sc->col;
        if (scan_string(sc, &key, &klen) < 0)
            return -1;
        size_t saved = sc->plen;
        int rc = path_push(sc, key, klen);
        free(key);
        if (rc < 0)
            return -1;
        skip_ws(sc);
        if (peek(sc) != ':')
            return -1;
        advance(sc);
        skip_ws(sc);
        if (scan_value(sc, kline, kcol) < 0)
            return -1;
        sc->plen = saved;
        sc->path[sc->plen] = '\0';
        skip_ws(sc);
        int c = peek(sc);
        if (c == ',') {
            advance(sc);
            continue;
        }
        if (c == '}') {
            advance(sc);
            return 0;
        }
        return -1;
    }
}

static int scan_array(scanner *sc)
{
    size_t idx = 0;
    advance(sc); /* '[' */
    skip_ws(sc);
    if (peek(sc) == ']') {
        advance(sc);
        return 0;
    }
    for (;;) {
        char tok[32];
        int tl = snprintf(tok, sizeof(tok), "%zu", idx++);
        size_t saved = sc->plen;
        skip_ws(sc);
        if (path_push(sc, tok, (size_t)tl) < 0)
            return -1;
        if (scan_value(sc, sc->line, sc->col) < 0)
            return -1;
        sc->plen = saved;
        sc->path[sc->plen] = '\0';
        skip_ws(sc);
        int c = peek(sc);
        if (c == ',') {
            advance(sc);
            continue;
        }
        if (c == ']') {
            advance(sc);
            return 0;
        }
        return -1;
    }
}

static int scan_value(scanner *sc, int kline, int kcol)
{
    int c = peek(sc);
    int rc = 0;

    record(sc, kline, kcol);
    if (++sc->depth > MAX_DEPTH)
        return -1;
    if (c == '{') {
        rc = scan_object(sc);
    } else if (c == '[') {
        rc = scan_array(sc);
    } else if (c == '"') {
        rc = scan_string(sc, NULL, NULL);
    } else if (c < 0) {
        rc = -1;
    } else {
        /* Numbers and literals: run to the next delimiter. */
        while ((c = peek(sc)) >= 0 && c != ',' && c != '}' && c != ']' &&
               c != ' ' && c != '\t' && c != '\n' && c != '\r')
            advance(sc);
    }
    sc->depth--;
    return rc;
}

jpos_index *jpos_build(const char *text, size_t len)
{
    jpos_index *ix = calloc(1, sizeof(*ix));
    scanner sc = { .s = text, .n = len, .line = 1, .col = 1, .ix = ix };

    if (ix == NULL)
        return NULL;
    sc.path = malloc(256);
    if (sc.path == NULL) {
        free(ix);
        return NULL;
    }
    sc.pcap = 256;
    sc.path[0] = '\0';
    /* Skip a UTF-8 byte order mark. */
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        sc.i = 3;
    skip_ws(&sc);
    (void)scan_value(&sc, sc.line, sc.col);
    free(sc.path);
    if (ix->oom) {
        jpos_free(ix);
        return NULL;
    }
    return ix;
}

void jpos_free(jpos_index *ix)
{
    if (ix == NULL)
        return;
    free(ix->arena);
    free(ix->ents);
    free(ix);
}

jpos_loc jpos_find(const jpos_index *ix, const char *ptr, int key)
{
    size_t n = strlen(ptr);
    int first = 1;

    while (ix != NULL) {
        entry *e = lookup(ix, ptr, n, hash_bytes(ptr, n));
        if (e != NULL) {
            if (key && first && e->key_line > 0)
                return (jpos_loc){ e->key_line, e->key_col };
            return (jpos_loc){ e->val_line, e->val_col };
        }
        if (n == 0)
            break;
        while (n > 0 && ptr[n - 1] != '/')
            n--;
        if (n > 0)
            n--; /* drop the '/' too */
        first = 0;
    }
    return (jpos_loc){ 1, 1 };
}

size_t jpos_escape(char *buf, size_t size, const char *key)
{
    size_t n = 0;
    for (const char *p = key; *p; p++) {
        const char *rep = NULL;
        char one[2] = { *p, 0 };
        if (*p == '~')
            rep = "~0";
        else if (*p == '/')
            rep = "~1";
        else
            rep = one;
        for (const char *r = rep; *r; r++) {
            if (n + 1 < size)
                buf[n] = *r;
            n++;
        }
    }
    if (size > 0)
        buf[n < size ? n : size - 1] = '\0';
    return n;
}
