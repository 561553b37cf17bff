#include "scenario.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "action_table.h"
#include "addr.h"
#include "jpos.h"
#include "units.h"

#define MAX_SCENARIO_BYTES (64 * 1024 * 1024)

const char *const scenario_role_images[] = { "router", "server", "workstation",
                                             "attacker", NULL };
static const char *const host_roles[] = { "attacker", "router", "firewall",
                                          "server", "workstation", "c2",
                                          "other", NULL };
static const char *const segment_roles[] = { "internet", "dmz", "internal",
                                             "office", "server", "management",
                                             "partner", "ot", NULL };
static const char *const levels[] = { "A", "B", "C", NULL };
static const char *const visibilities[] = { "network", "host", "inbox",
                                            "none", NULL };
static const char *const check_types[] = { "tcp", "http", "dns", "smtp", NULL };
static const char *const protos[] = { "tcp", "udp", NULL };
static const char *const decays[] = { "linear", "exponential", "step", NULL };
static const char *const success_types[] = { "reported", "response_contains",
                                             "file_exists", "check_down",
                                             NULL };
static const char *const outcomes[] = { "succeeded", "failed", NULL };
static const char *const states[] = { "up", "down", NULL };
static const char *const required_sections[] = { "detection", "response",
                                                  "reporting", "recovery",
                                                  NULL };

/* ---------------------------------------------------------------------- */
/* Validation context: the JSON Pointer of the value being checked, so that
 * every diagnostic can be placed at its line and column. */

typedef struct vctx {
    const char *file;
    char *dir;             /* of the scenario file, for relative paths */
    jpos_index *pos;
    diag_list *diags;
    char *path;
    size_t plen, pcap;
    int nerr;
    int oom;
} vctx;

static size_t push_key(vctx *c, const char *key)
{
    size_t saved = c->plen;
    size_t need = jpos_escape(NULL, 0, key) + 2;
    if (c->plen + need > c->pcap) {
        size_t ncap = c->pcap ? c->pcap * 2 : 256;
        while (ncap < c->plen + need)
            ncap *= 2;
        char *p = realloc(c->path, ncap);
        if (p == NULL) {
            c->oom = 1;
            return saved;
        }
        c->path = p;
        c->pcap = ncap;
    }
    c->path[c->plen++] = '/';
    c->plen += jpos_escape(c->path + c->plen, c->pcap - c->plen, key);
    return saved;
}

static size_t push_idx(vctx *c, size_t i)
{
    char tok[32];
    snprintf(tok, sizeof(tok), "%zu", i);
    return push_key(c, tok);
}

static void pop(vctx *c, size_t saved)
{
    c->plen = saved;
    if (c->path)
        c->path[c->plen] = '\0';
}

static const char *cur_path(vctx *c)
{
    return c->path ? c->path : "";
}

static void verr_at(vctx *c, int at_key, const char *fmt, va_list ap)
{
    char *msg = NULL;
    jpos_loc loc = jpos_find(c->pos, cur_path(c), at_key);
    if (vasprintf(&msg, fmt, ap) < 0) {
        c->oom = 1;
        c->nerr++;
        return;
    }
    diag_add(c->diags, c->file, loc.line, loc.col, "%s", msg);
    free(msg);
    c->nerr++;
}

/* Error about the value at the current path. */
static void err(vctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void err(vctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verr_at(c, 0, fmt, ap);
    va_end(ap);
}

/* Error about member `key` of the current object (at its key when at_key). */
static void err_member(vctx *c, const char *key, int at_key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void err_member(vctx *c, const char *key, int at_key, const char *fmt, ...)
{
    va_list ap;
    size_t saved = push_key(c, key);
    va_start(ap, fmt);
    verr_at(c, at_key, fmt, ap);
    va_end(ap);
    pop(c, saved);
}

/* ---------------------------------------------------------------------- */
/* Small helpers */

/* Edit distance with adjacent transpositions (optimal string alignment),
 * so that "nmae" is one edit away from "name". */
static size_t levenshtein(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t d[3][65];
    if (la > 64 || lb > 64)
        return 99;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t *cur = d[i % 3], *prev = d[(i - 1) % 3], *pp = d[(i + 1) % 3];
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = prev[j - 1] + cost;
            if (prev[j] + 1 < best)
                best = prev[j] + 1;
            if (cur[j - 1] + 1 < best)
                best = cur[j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                pp[j - 2] + 1 < best)
                best = pp[j - 2] + 1;
            cur[j] = best;
        }
    }
    return d[la % 3][lb];
}

/* Returns the candidate closest to `word`, or NULL when none is close. */
static const char *nearest(const char *word, const char *const *cands, size_t n)
{
    const char *best = NULL;
    size_t bestd = (size_t)-1;
    size_t wl = strlen(word);
    size_t limit = wl <= 4 ? 1 : (wl <= 8 ? 2 : 3);
    for (size_t i = 0; i < n && cands[i]; i++) {
        size_t d = levenshtein(word, cands[i]);
        if (d < bestd) {
            bestd = d;
            best = cands[i];
        }
    }
    return bestd <= limit ? best : NULL;
}

static size_t list_len(const char *const *l)
{
    size_t n = 0;
    while (l[n])
        n++;
    return n;
}

static int in_list(const char *s, const char *const *l)
{
    for (; *l; l++)
        if (strcmp(s, *l) == 0)
            return 1;
    return 0;
}

/* "a, b or c" */
static void join_list(const char *const *l, char *buf, size_t size)
{
    size_t n = list_len(l), off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && off < size; i++) {
        const char *sep = i == 0 ? "" : (i + 1 == n ? " or " : ", ");
        off += (size_t)snprintf(buf + off, size - off, "%s%s", sep, l[i]);
    }
}

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "a value";
}

static int name_ok(const char *s, size_t maxlen)
{
    size_t n = strlen(s);
    if (n == 0 || n > maxlen || !islower((unsigned char)s[0]))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!(islower((unsigned char)ch) || isdigit((unsigned char)ch) || ch == '-'))
            return 0;
    }
    return s[n - 1] != '-';
}

/* DNS domain: dot-separated labels of [a-z0-9-], 1-63 each, 253 in all. */
static int domain_ok(const char *s)
{
    size_t n = strlen(s), label = 0;
    if (n == 0 || n > 253 || s[0] == '.' || s[n - 1] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '.') {
            if (label == 0 || s[i - 1] == '-')
                return 0;
            label = 0;
            continue;
        }
        if (!(islower((unsigned char)ch) || isdigit((unsigned char)ch) || ch == '-'))
            return 0;
        if ((label == 0 && ch == '-') || ++label > 63)
            return 0;
    }
    return s[n - 1] != '-';
}

static int step_id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64 || !isalnum((unsigned char)s[0]))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!(islower((unsigned char)ch) || isdigit((unsigned char)ch) ||
              ch == '-' || ch == '_' || ch == '.'))
            return 0;
    }
    return 1;
}

static int technique_ok(const char *s)
{
    /* T1234 or T1234.001 */
    if (s[0] != 'T')
        return 0;
    for (int i = 1; i <= 4; i++)
        if (!isdigit((unsigned char)s[i]))
            return 0;
    if (s[5] == '\0')
        return 1;
    if (s[5] != '.')
        return 0;
    for (int i = 6; i <= 8; i++)
        if (!isdigit((unsigned char)s[i]))
            return 0;
    return s[9] == '\0';
}

static char *xstrdup(vctx *c, const char *s)
{
    char *d;
    if (s == NULL)
        return NULL;
    d = strdup(s);
    if (d == NULL)
        c->oom = 1;
    return d;
}

static void *xcalloc(vctx *c, size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (p == NULL)
        c->oom = 1;
    return p;
}

/* ---------------------------------------------------------------------- */
/* Field specs: which keys an object may have, of which type. */

typedef enum ftype {
    F_STR = 1, F_INT, F_NUM, F_BOOL, F_OBJ, F_ARR, F_DUR, F_SIZE,
    F_STR_OR_OBJ, F_ANY,
} ftype;

typedef struct fspec {
    const char *key;
    ftype type;
    int required;
} fspec;

static const char *ftype_name(ftype t)
{
    switch (t) {
    case F_STR: return "a string";
    case F_INT: return "an integer";
    case F_NUM: return "a number";
    case F_BOOL: return "true or false";
    case F_OBJ: return "an object";
    case F_ARR: return "an array";
    case F_DUR: return "a duration (e.g. \"90s\", \"5m\", \"1h30m\") or seconds";
    case F_SIZE: return "a size (e.g. \"128M\", \"1G\") or MiB";
    case F_STR_OR_OBJ: return "a string or an object";
    case F_ANY: return "a value";
    }
    return "a value";
}

static int type_ok(ftype t, const json_t *v)
{
    switch (t) {
    case F_STR: return json_is_string(v);
    case F_INT: return json_is_integer(v);
    case F_NUM: return json_is_number(v);
    case F_BOOL: return json_is_boolean(v);
    case F_OBJ: return json_is_object(v);
    case F_ARR: return json_is_array(v);
    case F_DUR:
    case F_SIZE: return json_is_string(v) || json_is_integer(v);
    case F_STR_OR_OBJ: return json_is_string(v) || json_is_object(v);
    case F_ANY: return 1;
    }
    return 0;
}

/* Checks that `obj` (at the current path) is an object with only known
 * keys, all required keys, and values of the right JSON types.  Returns 0
 * when `obj` is an object (even with member errors), -1 when it is not. */
static int check_fields(vctx *c, const json_t *obj, const char *what,
                        const fspec *spec)
{
    const char *key;
    json_t *v;
    const char *names[64];
    size_t n = 0;

    if (!json_is_object(obj)) {
        err(c, "expected %s to be an object, got %s", what, json_kind(obj));
        return -1;
    }
    for (const fspec *f = spec; f->key && n < 63; f++)
        names[n++] = f->key;
    names[n] = NULL;

    json_object_foreach((json_t *)obj, key, v) {
        const fspec *f = NULL;
        for (const fspec *g = spec; g->key; g++)
            if (strcmp(g->key, key) == 0)
                f = g;
        if (f == NULL) {
            const char *near = nearest(key, names, n);
            if (near)
                err_member(c, key, 1, "unknown key '%s' in %s (did you mean '%s'?)",
                           key, what, near);
            else
                err_member(c, key, 1, "unknown key '%s' in %s", key, what);
            continue;
        }
        if (!type_ok(f->type, v))
            err_member(c, key, 0, "expected '%s' to be %s, got %s", key,
                       ftype_name(f->type), json_kind(v));
    }
    for (const fspec *f = spec; f->key; f++)
        if (f->required && json_object_get(obj, f->key) == NULL)
            err(c, "%s is missing required key '%s'", what, f->key);
    return 0;
}

/* Typed getters: NULL/default when absent or of the wrong type (the type
 * error was already reported by check_fields). */
static const char *get_str(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static int get_bool(const json_t *o, const char *k, int dflt)
{
    json_t *v = json_object_get(o, k);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

/* Integer with bounds; reports out-of-range values. */
static long long get_int(vctx *c, const json_t *o, const char *k, long long dflt,
                         long long lo, long long hi)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_integer(v))
        return dflt;
    long long x = json_integer_value(v);
    if (x < lo || x > hi) {
        err_member(c, k, 0, "'%s' must be between %lld and %lld, got %lld", k,
                   lo, hi, x);
        return dflt;
    }
    return x;
}

static double get_num(vctx *c, const json_t *o, const char *k, double dflt,
                      double lo, double hi)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_number(v))
        return dflt;
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi)) {
        err_member(c, k, 0, "'%s' must be between %g and %g, got %g", k, lo, hi, x);
        return dflt;
    }
    return x;
}

/* Parses a duration value (string or integer seconds). 0 ok, -1 bad. */
static int duration_value(const json_t *v, int64_t *ms)
{
    if (json_is_integer(v)) {
        json_int_t s = json_integer_value(v);
        if (s < 0)
            return -1;
        /* Larger than any bound: let the caller's range check report it. */
        *ms = (int64_t)(s > 30LL * 86400 ? 30LL * 86400 + 1 : s) * 1000;
        return 0;
    }
    if (json_is_string(v))
        return units_duration_parse(json_string_value(v), ms);
    return -1;
}

static int64_t get_dur(vctx *c, const json_t *o, const char *k, int64_t dflt,
                       int64_t lo, int64_t hi)
{
    json_t *v = json_object_get(o, k);
    int64_t ms;
    char a[32], b[32];
    if (v == NULL || !type_ok(F_DUR, v))
        return dflt;
    if (duration_value(v, &ms) < 0) {
        if (json_is_string(v))
            err_member(c, k, 0, "malformed duration '%s' for '%s': expected e.g. "
                       "\"90s\", \"5m\", \"1h30m\"", json_string_value(v), k);
        else
            err_member(c, k, 0, "'%s' must be a non-negative number of seconds", k);
        return dflt;
    }
    if (ms < lo || ms > hi) {
        units_duration_format(lo, a, sizeof(a));
        units_duration_format(hi, b, sizeof(b));
        err_member(c, k, 0, "'%s' must be between %s and %s", k, a, b);
        return dflt;
    }
    return ms;
}

/* String member that must be one of `choices`. */
static const char *get_enum(vctx *c, const json_t *o, const char *k,
                            const char *const *choices, const char *dflt)
{
    const char *s = get_str(o, k);
    char all[256];
    if (s == NULL)
        return dflt;
    if (!in_list(s, choices)) {
        const char *near = nearest(s, choices, list_len(choices));
        join_list(choices, all, sizeof(all));
        if (near)
            err_member(c, k, 0, "unknown %s '%s' (did you mean '%s'?); expected %s",
                       k, s, near, all);
        else
            err_member(c, k, 0, "unknown %s '%s'; expected %s", k, s, all);
        return dflt;
    }
    return s;
}

/* Name index: jansson object mapping name -> integer index. */
static int index_add(vctx *c, json_t *ix, const char *name, size_t i,
                     const char *what, const char *field)
{
    json_t *prev = json_object_get(ix, name);
    if (prev != NULL) {
        err_member(c, field, 0, "duplicate %s '%s' (first defined as %s #%lld)",
                   what, name, what, (long long)json_integer_value(prev) + 1);
        return -1;
    }
    if (json_object_set_new(ix, name, json_integer((json_int_t)i)) < 0)
        c->oom = 1;
    return 0;
}

static int index_get(const json_t *ix, const char *name)
{
    json_t *v = json_object_get(ix, name);
    return v ? (int)json_integer_value(v) : -1;
}

/* Reports an unknown reference with the closest known name. */
static void err_unknown_ref(vctx *c, const char *key, const char *what,
                            const char *name, const json_t *ix)
{
    const char *best = NULL;
    size_t bestd = (size_t)-1, wl = strlen(name);
    size_t limit = wl <= 4 ? 1 : (wl <= 8 ? 2 : 3);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)ix, k, v) {
        size_t d = levenshtein(name, k);
        if (d < bestd) {
            bestd = d;
            best = k;
        }
    }
    if (best && bestd <= limit)
        err_member(c, key, 0, "unknown %s '%s' (did you mean '%s'?)", what, name, best);
    else
        err_member(c, key, 0, "unknown %s '%s'", what, name);
}

/* ---------------------------------------------------------------------- */
/* The loader proper. */

typedef struct loader {
    vctx c;
    scenario *s;
    json_t *host_ix, *seg_ix, *step_ix, *check_ix;
} loader;

static const fspec top_spec[] = {
    { "$schema", F_STR, 0 },
    { "format", F_INT, 1 },
    { "id", F_STR, 1 },
    { "title", F_STR, 1 },
    { "description", F_STR, 0 },
    { "level", F_STR, 1 },
    { "duration", F_DUR, 1 },
    { "speed", F_NUM, 0 },
    { "domain", F_STR, 0 },
    { "teams", F_OBJ, 0 },
    { "segments", F_ARR, 1 },
    { "hosts", F_ARR, 1 },
    { "timeline", F_ARR, 0 },
    { "checks", F_ARR, 0 },
    { "scoring", F_OBJ, 0 },
    { "report", F_OBJ, 0 },
    { NULL, 0, 0 }
};

static void load_meta(loader *L, const json_t *root)
{
    vctx *c = &L->c;
    scenario *s = L->s;
    json_t *fmt = json_object_get(root, "format");
    const char *id = get_str(root, "id");

    if (json_is_integer(fmt) && json_integer_value(fmt) != SCENARIO_FORMAT)
        err_member(c, "format", 0, "unsupported format %lld; this cyrange reads "
                   "format %d", (long long)json_integer_value(fmt), SCENARIO_FORMAT);
    if (id != NULL && !name_ok(id, 24))
        err_member(c, "id", 0, "malformed id '%s': expected 1-24 characters "
                   "a-z, 0-9 and '-', starting with a letter, not ending with '-'", id);
    s->id = xstrdup(c, id);
    s->title = xstrdup(c, get_str(root, "title"));
    s->description = xstrdup(c, get_str(root, "description"));
    s->level = xstrdup(c, get_enum(c, root, "level", levels, NULL));
    s->duration_ms = get_dur(c, root, "duration", 0, 60 * 1000LL,
                             7 * 24 * 3600 * 1000LL);
    s->speed = get_num(c, root, "speed", 1.0, 0.01, 1000.0);
    if (json_is_number(json_object_get(root, "speed")) && s->speed <= 0)
        s->speed = 1.0;
    const char *dom = get_str(root, "domain");
    if (dom != NULL && !domain_ok(dom))
        err_member(c, "domain", 0, "malformed DNS domain '%s': expected labels of "
                   "a-z, 0-9 and '-' separated by dots, e.g. \"example.test\"", dom);
    s->domain = xstrdup(c, dom ? dom : "range.test");
    const char *title = get_str(root, "title");
    if (title != NULL && title[strspn(title, " \t")] == '\0')
        err_member(c, "title", 0, "the title must not be empty");

    s->team_count = 2;
    s->team_name = xstrdup(c, "Team {n}");
    json_t *teams = json_object_get(root, "teams");
    if (json_is_object(teams)) { /* other types: reported by check_fields */
        static const fspec spec[] = {
            { "count", F_INT, 0 }, { "name", F_STR, 0 }, { NULL, 0, 0 }
        };
        size_t saved = push_key(c, "teams");
        if (check_fields(c, teams, "teams", spec) == 0) {
            s->team_count = (int)get_int(c, teams, "count", 2, 1, SCENARIO_MAX_TEAMS);
            const char *pat = get_str(teams, "name");
            if (pat != NULL) {
                if (strstr(pat, "{n}") == NULL)
                    err_member(c, "name", 0, "team name pattern '%s' must contain "
                               "{n} (the team number) so that teams differ", pat);
                free(s->team_name);
                s->team_name = xstrdup(c, pat);
            }
        }
        pop(c, saved);
    }
}

static void load_segments(loader *L, const json_t *arr)
{
    vctx *c = &L->c;
    scenario *s = L->s;
    static const fspec spec[] = {
        { "name", F_STR, 1 }, { "cidr", F_STR, 1 }, { "role", F_STR, 1 },
        { "dhcp", F_OBJ, 0 }, { "description", F_STR, 0 }, { NULL, 0, 0 }
    };
    size_t n = json_array_size(arr);
    size_t base = push_key(c, "segments");

    if (n == 0)
        err(c, "a scenario needs at least one segment");
    if (n > 64) {
        /* Bridge names must fit in 15 characters (IFNAMSIZ). */
        err(c, "a scenario has at most 64 segments, got %zu", n);
        n = 64;
    }
    s->segments = xcalloc(c, n, sizeof(*s->segments));
    if (s->segments == NULL)
        goto out;
    s->n_segments = n;
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(arr, i);
        scn_segment *g = &s->segments[i];
        size_t saved = push_idx(c, i);
        g->dhcp_host = -1;
        g->prefix = -1;
        if (check_fields(c, o, "segment", spec) < 0) {
            pop(c, saved);
            continue;
        }
        const char *name = get_str(o, "name");
        if (name != NULL) {
            if (!name_ok(name, 24))
                err_member(c, "name", 0, "malformed segment name '%s': expected "
                           "1-24 characters a-z, 0-9 and '-', starting with a letter, not ending with '-'",
                           name);
            else
                index_add(c, L->seg_ix, name, i, "segment", "name");
            g->name = xstrdup(c, name);
        }
        g->role = xstrdup(c, get_enum(c, o, "role", segment_roles, NULL));
        const char *cidr = get_str(o, "cidr");
        if (cidr != NULL) {
            uint32_t net;
            int prefix;
            char buf[20];
            if (addr_parse_cidr(cidr, &net, &prefix) < 0) {
                err_member(c, "cidr", 0, "malformed CIDR '%s': expected e.g. "
                           "\"198.18.1.0/24\"", cidr);
            } else if (prefix < 16 || prefix > 29) {
                err_member(c, "cidr", 0, "prefix /%d of '%s' must be between /16 "
                           "and /29", prefix, cidr);
            } else if (!addr_in_range_space(net)) {
                err_member(c, "cidr", 0, "segment %s is outside 198.18.0.0/15, the "
                           "only space ranges may use", cidr);
            } else if ((net & ~addr_mask(prefix)) != 0) {
                err_member(c, "cidr", 0, "'%s' has host bits set; did you mean "
                           "%s/%d?", cidr,
                           addr_format(net & addr_mask(prefix), buf, sizeof(buf)),
                           prefix);
            } else {
                g->net = net;
                g->prefix = prefix;
                for (size_t j = 0; j < i; j++) {
                    scn_segment *h = &s->segments[j];
                    if (h->prefix < 0)
                        continue;
                    int p = h->prefix < prefix ? h->prefix : prefix;
                    if (addr_in(net, h->net, p)) {
                        err_member(c, "cidr", 0, "segment %s overlaps segment '%s' "
                                   "(%s/%d)", cidr, h->name ? h->name : "?",
                                   addr_format(h->net, buf, sizeof(buf)), h->prefix);
                        break;
                    }
                }
            }
        }
        pop(c, saved);
    }
out:
    pop(c, base);
}

static void load_nics(loader *L, scn_host *h, const json_t *arr)
{
    vctx *c = &L->c;
    scenario *s = L->s;
    static const fspec spec[] = {
        { "segment", F_STR, 1 }, { "address", F_STR, 0 }, { "dhcp", F_BOOL, 0 },
        { NULL, 0, 0 }
    };
    size_t n = json_array_size(arr);
    if (n == 0 || n > 8) {
        err(c, "a host needs between 1 and 8 NICs, got %zu", n);
        if (n == 0)
            return;
        n = 8;
    }
    h->nics = xcalloc(c, n, sizeof(*h->nics));
    if (h->nics == NULL)
        return;
    h->n_nics = n;
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(arr, i);
        scn_nic *nic = &h->nics[i];
        size_t saved = push_idx(c, i);
        nic->segment = -1;
        if (check_fields(c, o, "NIC", spec) < 0) {
            pop(c, saved);
            continue;
        }
        const char *seg = get_str(o, "segment");
        if (seg != NULL) {
            nic->segment = index_get(L->seg_ix, seg);
            if (nic->segment < 0)
                err_unknown_ref(c, "segment", "segment", seg, L->seg_ix);
            for (size_t j = 0; j < i && nic->segment >= 0; j++)
                if (h->nics[j].segment == nic->segment) {
                    err_member(c, "segment", 0, "host '%s' has two NICs on segment "
                               "'%s'", h->name ? h->name : "?", seg);
                    break;
                }
        }
        const char *a = get_str(o, "address");
        int dhcp = get_bool(o, "dhcp", 0);
        if (a != NULL && dhcp) {
            err(c, "a NIC has either 'address' or \"dhcp\": true, not both");
        } else if (a == NULL && !dhcp) {
            err(c, "a NIC needs 'address' or \"dhcp\": true");
        } else if (dhcp) {
            nic->dhcp = 1;
        } else {
            uint32_t ad;
            if (strchr(a, '/') != NULL) {
                err_member(c, "address", 0, "address '%s' must not carry a prefix: "
                           "the segment gives it", a);
            } else if (addr_parse(a, &ad) < 0) {
                err_member(c, "address", 0, "malformed IPv4 address '%s'", a);
            } else if (!addr_in_range_space(ad)) {
                err_member(c, "address", 0, "address %s is outside 198.18.0.0/15, "
                           "the only space ranges may use", a);
            } else if (nic->segment >= 0 && s->segments[nic->segment].prefix >= 0) {
                scn_segment *g = &s->segments[nic->segment];
                uint32_t m = addr_mask(g->prefix);
                char nb[20];
                if (!addr_in(ad, g->net, g->prefix))
                    err_member(c, "address", 0, "address %s is outside segment '%s' "
                               "(%s/%d)", a, g->name,
                               addr_format(g->net, nb, sizeof(nb)), g->prefix);
                else if ((ad & ~m) == 0 || (ad & ~m) == ~m)
                    err_member(c, "address", 0, "address %s is the network or "
                               "broadcast address of segment '%s'", a, g->name);
                else
                    nic->addr = ad;
            }
        }
        pop(c, saved);
    }
}

static void load_services(loader *L, scn_host *h, const json_t *arr)
{
    vctx *c = &L->c;
    static const fspec spec[] = {
        { "name", F_STR, 1 }, { "proto", F_STR, 0 }, { "port", F_INT, 1 },
        { NULL, 0, 0 }
    };
    size_t n = json_array_size(arr);
    h->services = xcalloc(c, n, sizeof(*h->services));
    if (h->services == NULL)
        return;
    h->n_services = n;
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(arr, i);
        scn_service *sv = &h->services[i];
        size_t saved = push_idx(c, i);
        if (check_fields(c, o, "service", spec) == 0) {
            const char *name = get_str(o, "name");
            if (name != NULL && !name_ok(name, 32))
                err_member(c, "name", 0, "malformed service name '%s': expected "
                           "a-z, 0-9 and '-', starting with a letter, not ending with '-'", name);
            for (size_t j = 0; name && j < i; j++)
                if (h->services[j].name && strcmp(h->services[j].name, name) == 0) {
                    err_member(c, "name", 0, "duplicate service '%s' on host '%s'",
                               name, h->name ? h->name : "?");
                    break;
                }
            sv->name = xstrdup(c, name);
            sv->proto = xstrdup(c, get_enum(c, o, "proto", protos, "tcp"));
            sv->port = (int)get_int(c, o, "port", 0, 1, 65535);
            for (size_t j = 0; j < i && sv->port; j++)
                if (h->services[j].port == sv->port && h->services[j].proto &&
                    sv->proto && strcmp(h->services[j].proto, sv->proto) == 0) {
                    err_member(c, "port", 0, "%s port %d is already used by service "
                               "'%s'", sv->proto, sv->port,
                               h->services[j].name ? h->services[j].name : "?");
                    break;
                }
        }
        pop(c, saved);
    }
}

static void load_accounts(loader *L, scn_host *h, const json_t *arr)
{
    vctx *c = &L->c;
    static const fspec spec[] = {
        { "name", F_STR, 1 }, { "password", F_STR, 1 }, { "groups", F_ARR, 0 },
        { "admin", F_BOOL, 0 }, { NULL, 0, 0 }
    };
    size_t n = json_array_size(arr);
    h->accounts = xcalloc(c, n, sizeof(*h->accounts));
    if (h->accounts == NULL)
        return;
    h->n_accounts = n;
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(arr, i);
        scn_account *a = &h->accounts[i];
        size_t saved = push_idx(c, i);
        if (check_fields(c, o, "account", spec) == 0) {
            const char *name = get_str(o, "name");
            if (name != NULL) {
                if (!name_ok(name, 32))
                    err_member(c, "name", 0, "malformed account name '%s': expected "
                               "a-z, 0-9 and '-', starting with a letter, not ending with '-'", name);
                for (size_t j = 0; j < i; j++)
                    if (h->accounts[j].name && strcmp(h->accounts[j].name, name) == 0) {
                        err_member(c, "name", 0, "duplicate account '%s'", name);
                        break;
                    }
            }
            a->name = xstrdup(c, name);
            a->password = xstrdup(c, get_str(o, "password"));
            a->admin = get_bool(o, "admin", 0);
            json_t *groups = json_object_get(o, "groups");
            size_t ng = json_array_size(groups);
            size_t kept = 0; /* packed: the list ends at its first NULL */
            a->groups = xcalloc(c, ng + 1, sizeof(char *));
            for (size_t g = 0; g < ng && a->groups; g++) {
                json_t *gv = json_array_get(groups, g);
                if (!json_is_string(gv) || !name_ok(json_string_value(gv), 32)) {
                    size_t s2 = push_key(c, "groups");
                    size_t s3 = push_idx(c, g);
                    if (json_is_string(gv))
                        err(c, "malformed group name '%s': expected a-z, 0-9 and "
                            "'-', starting with a letter, not ending with '-'", json_string_value(gv));
                    else
                        err(c, "expected a group name, got %s", json_kind(gv));
                    pop(c, s3);
                    pop(c, s2);
                    continue;
                }
                a->groups[kept++] = xstrdup(c, json_string_value(gv));
            }
        }
        pop(c, saved);
    }
}

static void load_files(loader *L, scn_host *h, const json_t *arr)
{
    vctx *c = &L->c;
    static const fspec spec[] = {
        { "path", F_STR, 1 }, { "content", F_STR, 1 }, { "mode", F_STR, 0 },
        { NULL, 0, 0 }
    };
    size_t n = json_array_size(arr);
    h->files = xcalloc(c, n, sizeof(*h->files));
    if (h->files == NULL)
        return;
    h->n_files = n;
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(arr, i);
        scn_file *f = &h->files[i];
        size_t saved = push_idx(c, i);
        if (check_fields(c, o, "file", spec) == 0) {
            const char *path = get_str(o, "path");
            if (path != NULL) {
                if (path[0] != '/' || strstr(path, "/../") != NULL ||
                    (strlen(path) >= 3 && strcmp(path + strlen(path) - 3, "/..") == 0))
                    err_member(c, "path", 0, "file path '%s' must be absolute and "
                               "must not contain '..'", path);
                for (size_t j = 0; j < i; j++)
                    if (h->files[j].path && strcmp(h->files[j].path, path) == 0) {
                        err_member(c, "path", 0, "file '%s' is placed twice", path);
                        break;
                    }
            }
            f->path = xstrdup(c, path);
            f->content = xstrdup(c, get_str(o, "content"));
            f->mode = 0644;
            const char *mode = get_str(o, "mode");
            if (mode != NULL) {
                char *end = NULL;
                size_t ml = strlen(mode);
                unsigned long m = strtoul(mode, &end, 8);
                /* Only octal digits: strtoul alone would take " 644" or "+644". */
                if (ml < 3 || ml > 4 || strspn(mode, "01234567") != ml || *end != '\0')
                    err_member(c, "mode", 0, "malformed file mode '%s': expected "
                               "octal such as \"0644\"", mode);
                else
                    f->mode = (unsigned)m;
            }
        }
        pop(c, saved);
    }
}

static void load_image(loader *L, scn_host *h, const json_t *img)
{
    vctx *c = &L->c;
    char all[128];
    if (img == NULL) {
        /* The role image of the same name, when there is one. */
        const char *dflt = NULL;
        if (h->role && in_list(h->role, scenario_role_images))
            dflt = h->role;
        else if (h->role && strcmp(h->role, "firewall") == 0)
            dflt = "router";
        else if (h->role && strcmp(h->role, "c2") == 0)
            dflt = "attacker";
        if (dflt == NULL) {
            err(c, "host '%s' needs an 'image' (role %s has no default image)",
                h->name ? h->name : "?", h->role ? h->role : "?");
            return;
        }
        h->image_kind = SCN_IMAGE_ROLE;
        h->image = xstrdup(c, dflt);
        return;
    }
    size_t saved = push_key(c, "image");
    if (json_is_string(img)) {
        const char *name = json_string_value(img);
        if (!in_list(name, scenario_role_images)) {
            const char *near = nearest(name, scenario_role_images,
                                       list_len(scenario_role_images));
            join_list(scenario_role_images, all, sizeof(all));
            if (near)
                err(c, "unknown role image '%s' (did you mean '%s'?); expected %s, "
                    "or {\"disk\": \"file.qcow2\"}", name, near, all);
            else
                err(c, "unknown role image '%s'; expected %s, or "
                    "{\"disk\": \"file.qcow2\"}", name, all);
        } else {
            h->image_kind = SCN_IMAGE_ROLE;
            h->image = xstrdup(c, name);
        }
    } else if (json_is_object(img)) { /* other types: see check_fields */
        static const fspec spec[] = {
            { "disk", F_STR, 1 }, { NULL, 0, 0 }
        };
        if (check_fields(c, img, "image", spec) == 0 && get_str(img, "disk")) {
            const char *disk = get_str(img, "disk");
            char *full = NULL;
            struct stat st;
            size_t dl = strlen(disk);
            if (dl < 6 || strcmp(disk + dl - 6, ".qcow2") != 0) {
                err_member(c, "disk", 0, "disk image '%s' must be a .qcow2 file", disk);
            } else {
                if (disk[0] == '/')
                    full = xstrdup(c, disk);
                else if (asprintf(&full, "%s/%s", c->dir, disk) < 0)
                    full = NULL, c->oom = 1;
                if (full != NULL && (stat(full, &st) < 0 || !S_ISREG(st.st_mode)))
                    err_member(c, "disk", 0, "disk image '%s' not found (looked at %s)",
                               disk, full);
                h->image_kind = SCN_IMAGE_DISK;
                h->image = full;
            }
        }
    }
    pop(c, saved);
}

static void load_hosts(loader *L, const json_t *arr)
{
    vctx *c = &L->c;
    scenario *s = L->s;
    static const fspec spec[] = {
        { "name", F_STR, 1 }, { "role", F_STR, 1 }, { "image", F_STR_OR_OBJ, 0 },
        { "vcpus", F_INT, 0 }, { "memory", F_SIZE, 0 }, { "nics", F_ARR, 1 },
        { "gateway", F_STR, 0 }, { "services", F_ARR, 0 },
        { "accounts", F_ARR, 0 }, { "files", F_ARR, 0 },
        { "description", F_STR, 0 }, { NULL, 0, 0 }
    };
    size_t n = json_array_size(arr);
    size_t base = push_key(c, "hosts");

    if (n == 0)
        err(c, "a scenario needs at least one host");
    s->hosts = xcalloc(c, n, sizeof(*s->hosts));
    if (s->hosts == NULL)
        goto out;
    s->n_hosts = n;
    /* Names first, so that references between hosts resolve in any order. */
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(arr, i);
        const char *name = get_str(o, "name");
        if (name == NULL)
            continue;
        size_t saved = push_idx(c, i);
        if (!name_ok(name, 24))
            err_member(c, "name", 0, "malformed host name '%s': expected 1-24 "
                       "characters a-z, 0-9 and '-', starting with a letter, not ending with '-'", name);
        else
            index_add(c, L->host_ix, name, i, "host", "name");
        s->hosts[i].name = xstrdup(c, name);
        pop(c, saved);
    }
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(arr, i);
        scn_host *h = &s->hosts[i];
        size_t saved = push_idx(c, i);
        if (check_fields(c, o, "host", spec) < 0) {
            pop(c, saved);
            continue;
        }
        h->role = xstrdup(c, get_enum(c, o, "role", host_roles, NULL));
        if (h->role != NULL || json_object_get(o, "image") != NULL)
            load_image(L, h, json_object_get(o, "image"));
        h->vcpus = (int)get_int(c, o, "vcpus", 1, 1, 8);
        h->memory_mib = 128;
        json_t *mem = json_object_get(o, "memory");
        if (mem != NULL && type_ok(F_SIZE, mem)) {
            int64_t mib = -1;
            int malformed = 0;
            if (json_is_integer(mem))
                mib = json_integer_value(mem);
            else if (units_size_parse_mib(json_string_value(mem), &mib) < 0)
                malformed = 1;
            if (malformed)
                err_member(c, "memory", 0, "malformed memory size '%s': expected e.g. "
                           "\"128M\" or \"1G\"", json_string_value(mem));
            else if (mib < 64 || mib > 16384)
                err_member(c, "memory", 0, "memory must be between 64M and 16G, "
                           "got %lld MiB", (long long)mib);
            else
                h->memory_mib = (int)mib;
        }
        json_t *v;
        if ((v = json_object_get(o, "nics")) != NULL && json_is_array(v)) {
            size_t s2 = push_key(c, "nics");
            load_nics(L, h, v);
            pop(c, s2);
        }
        if ((v = json_object_get(o, "services")) != NULL && json_is_array(v)) {
            size_t s2 = push_key(c, "services");
            load_services(L, h, v);
            pop(c, s2);
        }
        if ((v = json_object_get(o, "accounts")) != NULL && json_is_array(v)) {
            size_t s2 = push_key(c, "accounts");
            load_accounts(L, h, v);
            pop(c, s2);
        }
        if ((v = json_object_get(o, "files")) != NULL && json_is_array(v)) {
            size_t s2 = push_key(c, "files");
            load_files(L, h, v);
            pop(c, s2);
        }
        const char *gw = get_str(o, "gateway");
        if (gw != NULL) {
            uint32_t g;
            int on_lan = 0;
            if (addr_parse(gw, &g) < 0) {
                err_member(c, "gateway", 0, "malformed IPv4 address '%s'", gw);
            } else {
                int own = 0, edge = 0;
                for (size_t k = 0; k < h->n_nics; k++) {
                    scn_nic *nic = &h->nics[k];
                    if (nic->segment >= 0 && s->segments[nic->segment].prefix >= 0 &&
                        addr_in(g, s->segments[nic->segment].net,
                                s->segments[nic->segment].prefix)) {
                        uint32_t m = addr_mask(s->segments[nic->segment].prefix);
                        on_lan = 1;
                        edge |= (g & ~m) == 0 || (g & ~m) == ~m;
                    }
                    own |= !nic->dhcp && nic->addr == g;
                }
                if (!on_lan)
                    err_member(c, "gateway", 0, "gateway %s is on none of the segments "
                               "of host '%s'", gw, h->name ? h->name : "?");
                else if (own)
                    err_member(c, "gateway", 0, "gateway %s is an address of host '%s' itself",
                               gw, h->name ? h->name : "?");
                else if (edge)
                    err_member(c, "gateway", 0, "gateway %s is the network or broadcast "
                               "address of its segment", gw);
                else
                    h->gateway = g;
            }
        }
        pop(c, saved);
    }
out:
    pop(c, base);
}

/* Address collisions, and DHCP servers and pools (needs hosts). */
static void check_addresses(loader *L, const json_t *root)
{
    vctx *c = &L->c;
    scenario *s = L->s;
    json_t *seen = json_object();
    json_t *segs = json_object_get(root, "segments");
    char key[64], ab[20];

    if (seen == NULL) {
        c->oom = 1;
        return;
    }
    size_t base = push_key(c, "hosts");
    for (size_t i = 0; i < s->n_hosts; i++) {
        scn_host *h = &s->hosts[i];
        for (size_t k = 0; k < h->n_nics; k++) {
            scn_nic *nic = &h->nics[k];
            if (nic->dhcp || nic->addr == 0 || nic->segment < 0)
                continue;
            snprintf(key, sizeof(key), "%u", nic->addr);
            json_t *prev = json_object_get(seen, key);
            size_t s1 = push_idx(c, i), s2 = push_key(c, "nics"), s3 = push_idx(c, k);
            if (prev != NULL) {
                err_member(c, "address", 0, "address %s is already used by host '%s'",
                           addr_format(nic->addr, ab, sizeof(ab)),
                           json_string_value(prev));
            } else {
                json_object_set_new(seen, key, json_string(h->name ? h->name : "?"));
            }
            pop(c, s3);
            pop(c, s2);
            pop(c, s1);
        }
    }
    pop(c, base);

    base = push_key(c, "segments");
    for (size_t i = 0; i < s->n_segments; i++) {
        scn_segment *g = &s->segments[i];
        json_t *o = json_array_get(segs, i);
        json_t *d = json_object_get(o, "dhcp");
        if (!json_is_object(d) || g->prefix < 0)
            continue; /* a non-object was reported with the segment */
        static const fspec spec[] = {
            { "server", F_STR, 1 }, { "range", F_ARR, 1 }, { NULL, 0, 0 }
        };
        const char *gname = g->name ? g->name : "?"; /* reported if absent */
        size_t s1 = push_idx(c, i);
        size_t s2 = push_key(c, "dhcp");
        if (check_fields(c, d, "dhcp", spec) == 0) {
            const char *srv = get_str(d, "server");
            if (srv != NULL) {
                int hi = index_get(L->host_ix, srv);
                if (hi < 0) {
                    err_unknown_ref(c, "server", "host", srv, L->host_ix);
                } else {
                    int has_static = 0;
                    for (size_t k = 0; k < s->hosts[hi].n_nics; k++)
                        if (s->hosts[hi].nics[k].segment == (int)i &&
                            !s->hosts[hi].nics[k].dhcp)
                            has_static = 1;
                    if (!has_static)
                        err_member(c, "server", 0, "DHCP server '%s' needs a NIC with "
                                   "a static address on segment '%s'", srv, gname);
                    else
                        g->dhcp_host = hi;
                }
            }
            json_t *r = json_object_get(d, "range");
            if (json_is_array(r)) {
                uint32_t a[2] = { 0, 0 };
                uint32_t m = addr_mask(g->prefix);
                int ok = json_array_size(r) == 2;
                if (!ok)
                    err_member(c, "range", 0, "DHCP range must be [first, last]");
                /* Both ends are checked, so that both get reported. */
                for (size_t k = 0; json_array_size(r) == 2 && k < 2; k++) {
                    const char *as = json_string_value(json_array_get(r, k));
                    size_t s3 = push_key(c, "range"), s4 = push_idx(c, k);
                    if (as == NULL || addr_parse(as, &a[k]) < 0) {
                        err(c, "expected an IPv4 address in the DHCP range");
                        ok = 0;
                    } else if (!addr_in(a[k], g->net, g->prefix)) {
                        err(c, "DHCP address %s is outside segment '%s'", as, gname);
                        ok = 0;
                    } else if ((a[k] & ~m) == 0 || (a[k] & ~m) == ~m) {
                        /* A pool must not hand out these two. */
                        err(c, "DHCP address %s is the network or broadcast address "
                            "of segment '%s'", as, gname);
                        ok = 0;
                    }
                    pop(c, s4);
                    pop(c, s3);
                }
                if (ok && a[0] > a[1]) {
                    err_member(c, "range", 0, "DHCP range starts after it ends");
                    ok = 0;
                }
                if (ok) {
                    g->dhcp_first = a[0];
                    g->dhcp_last = a[1];
                    for (size_t hh = 0; hh < s->n_hosts; hh++)
                        for (size_t k = 0; k < s->hosts[hh].n_nics; k++) {
                            scn_nic *nic = &s->hosts[hh].nics[k];
                            if (!nic->dhcp && nic->segment == (int)i &&
                                nic->addr >= a[0] && nic->addr <= a[1])
                                err_member(c, "range", 0, "DHCP range includes %s, the "
                                           "static address of host '%s'",
                                           addr_format(nic->addr, ab, sizeof(ab)),
                                           s->hosts[hh].name ? s->hosts[hh].name : "?");
                        }
                }
            }
        }
        pop(c, s2);
        pop(c, s1);
    }
    pop(c, base);

    /* A NIC that asks for DHCP on a segment without a server. */
    base = push_key(c, "hosts");
    for (size_t i = 0; i < s->n_hosts; i++) {
        scn_host *h = &s->hosts[i];
        for (size_t k = 0; k < h->n_nics; k++) {
            scn_nic *nic = &h->nics[k];
            if (!nic->dhcp || nic->segment < 0)
                continue;
            scn_segment *g = &s->segments[nic->segment];
            json_t *d = json_object_get(json_array_get(segs, (size_t)nic->segment),
                                        "dhcp");
            if (d == NULL && g->prefix >= 0) {
                size_t s1 = push_idx(c, i), s2 = push_key(c, "nics"),
                       s3 = push_idx(c, k);
                err_member(c, "dhcp", 0, "segment '%s' has no DHCP server; give "
                           "the NIC an address or add \"dhcp\" to the segment",
                           g->name);
                pop(c, s3);
                pop(c, s2);
                pop(c, s1);
            }
        }
    }
    pop(c, base);
    json_decref(seen);
}

/* Checks one parameter value against the action table, with the check the
 * agent itself applies (action_param_check); unknown enum values also get
 * the nearest known one suggested. */
static void check_param(vctx *c, const action_param *p, const json_t *v)
{
    char msg[512], all[256];
    if (p->type == ACTION_P_ENUM && json_is_string(v) &&
        !in_list(json_string_value(v), p->choices)) {
        const char *near = nearest(json_string_value(v), p->choices,
                                   list_len(p->choices));
        join_list(p->choices, all, sizeof(all));
        if (near)
            err(c, "parameter '%s': unknown value '%s' (did you mean '%s'?); "
                "expected %s", p->name, json_string_value(v), near, all);
        else
            err(c, "parameter '%s': unknown value '%s'; expected %s", p->name,
                json_string_value(v), all);
        return;
    }
    if (p->type == ACTION_P_ENUM && !json_is_string(v)) {
        join_list(p->choices, all, sizeof(all));
        err(c, "parameter '%s' must be one of %s", p->name, all);
        return;
    }
    if (action_param_check(p, v, msg, sizeof(msg)) < 0)
        err(c, "%s", msg);
}

/* Validates `params` (at the current path, may be NULL) for action `t`. */
static void check_params(vctx *c, const action_type *t, const json_t *params)
{
    const char *key;
    json_t *v;
    const char *names[32];
    size_t n = 0;

    if (params != NULL && !json_is_object(params))
        return; /* already reported by check_fields of the step or cleanup */
    for (const action_param *p = t->params; p->name && n < 31; p++)
        names[n++] = p->name;
    names[n] = NULL;
    if (params != NULL) {
        json_object_foreach((json_t *)params, key, v) {
            const action_param *p = action_param_find(t, key);
            size_t saved = push_key(c, key);
            if (p == NULL) {
                const char *near = nearest(key, names, n);
                jpos_loc loc = jpos_find(c->pos, cur_path(c), 1);
                if (near)
                    diag_add(c->diags, c->file, loc.line, loc.col,
                             "unknown parameter '%s' for action %s (did you mean "
                             "'%s'?)", key, t->name, near);
                else
                    diag_add(c->diags, c->file, loc.line, loc.col,
                             "unknown parameter '%s' for action %s", key, t->name);
                c->nerr++;
            } else {
                check_param(c, p, v);
            }
            pop(c, saved);
        }
    }
    for (const action_param *p = t->params; p->name; p++)
        if (p->required && json_object_get(params, p->name) == NULL)
            err(c, "action %s needs parameter '%s' (%s)", t->name, p->name, p->help);
}

/* Checks an action type name at member `key`; returns the type or NULL. */
static const action_type *check_action_name(vctx *c, const json_t *o, const char *key)
{
    const char *name = get_str(o, key);
    const char *names[64];
    size_t n = 0;
    if (name == NULL)
        return NULL;
    const action_type *t = action_find(name);
    if (t != NULL)
        return t;
    for (const action_type *a = action_types; a->name && n < 63; a++)
        names[n++] = a->name;
    names[n] = NULL;
    const char *near = nearest(name, names, n);
    if (near)
        err_member(c, key, 0, "unknown action type '%s' (did you mean '%s'?)", name,
                   near);
    else
        err_member(c, key, 0, "unknown action type '%s' (see scenarios/FORMAT.md "
                   "for the list)", name);
    return NULL;
}

static void load_steps(loader *L, const json_t *arr)
{
    vctx *c = &L->c;
    scenario *s = L->s;
    static const fspec spec[] = {
        { "id", F_STR, 1 }, { "at", F_DUR, 0 }, { "after", F_STR, 0 },
        { "delay", F_DUR, 0 }, { "jitter", F_DUR, 0 }, { "actor", F_STR, 0 },
        { "action", F_STR, 1 }, { "params", F_OBJ, 0 }, { "target", F_STR, 0 },
        { "technique", F_STR, 0 }, { "visibility", F_STR, 0 },
        { "success", F_OBJ, 0 }, { "cleanup", F_OBJ, 0 }, { "when", F_OBJ, 0 },
        { "otherwise", F_STR, 0 }, { "on_demand", F_BOOL, 0 },
        { "description", F_STR, 0 }, { NULL, 0, 0 }
    };
    size_t n = json_array_size(arr);
    size_t base = push_key(c, "timeline");

    s->steps = xcalloc(c, n, sizeof(*s->steps));
    if (s->steps == NULL)
        goto out;
    s->n_steps = n;
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(arr, i);
        const char *id = get_str(o, "id");
        s->steps[i].after = -1;
        s->steps[i].actor = -1;
        s->steps[i].target = -1;
        s->steps[i].otherwise = -1;
        s->steps[i].offset_ms = -1;
        if (id == NULL)
            continue;
        size_t saved = push_idx(c, i);
        if (!step_id_ok(id))
            err_member(c, "id", 0, "malformed step id '%s': expected 1-64 characters "
                       "a-z, 0-9, '-', '_' and '.'", id);
        else
            index_add(c, L->step_ix, id, i, "step", "id");
        s->steps[i].id = xstrdup(c, id);
        pop(c, saved);
    }
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(arr, i);
        scn_step *st = &s->steps[i];
        size_t saved = push_idx(c, i);
        if (check_fields(c, o, "step", spec) < 0) {
            pop(c, saved);
            continue;
        }
        st->description = xstrdup(c, get_str(o, "description"));
        st->on_demand = get_bool(o, "on_demand", 0);
        int has_at = json_object_get(o, "at") != NULL;
        int has_after = json_object_get(o, "after") != NULL;
        if (st->on_demand && (has_at || has_after))
            err_member(c, has_at ? "at" : "after", 1, "an on_demand step runs only "
                       "when triggered; remove '%s'", has_at ? "at" : "after");
        else if (has_at && has_after)
            err_member(c, "after", 1, "a step has either 'at' or 'after', not both");
        else if (!has_at && !has_after && !st->on_demand)
            err(c, "step '%s' needs 'at' (offset from the start) or 'after' (another "
                "step), or \"on_demand\": true", st->id ? st->id : "?");
        if (json_object_get(o, "delay") != NULL && !has_after)
            err_member(c, "delay", 1, "'delay' applies only together with 'after'");
        if (has_at)
            st->at_ms = get_dur(c, o, "at", 0, 0, 30LL * 86400 * 1000);
        else
            st->at_ms = get_dur(c, o, "delay", 0, 0, 30LL * 86400 * 1000);
        st->jitter_ms = get_dur(c, o, "jitter", 0, 0, 24LL * 3600 * 1000);
        const char *after = get_str(o, "after");
        if (after != NULL && has_after && !has_at) {
            st->after = index_get(L->step_ix, after);
            if (st->after < 0)
                err_unknown_ref(c, "after", "step", after, L->step_ix);
        }

        const action_type *t = check_action_name(c, o, "action");
        st->action = xstrdup(c, get_str(o, "action"));
        const char *actor = get_str(o, "actor");
        const char *target = get_str(o, "target");
        if (actor != NULL) {
            st->actor = index_get(L->host_ix, actor);
            if (st->actor < 0)
                err_unknown_ref(c, "actor", "host", actor, L->host_ix);
        }
        if (target != NULL) {
            st->target = index_get(L->host_ix, target);
            if (st->target < 0)
                err_unknown_ref(c, "target", "host", target, L->host_ix);
        }
        if (t != NULL) {
            if (t->needs_actor && actor == NULL)
                err(c, "action %s needs an 'actor' (the host it runs on)", t->name);
            if (!t->needs_actor && actor != NULL)
                err_member(c, "actor", 1, "action %s takes no actor", t->name);
            if (t->target == ACTION_TARGET_REQUIRED && target == NULL)
                err(c, "action %s needs a 'target' host", t->name);
            if (t->target == ACTION_TARGET_NONE && target != NULL)
                err_member(c, "target", 1, "action %s takes no target (it acts on "
                           "its actor)", t->name);
            if (st->actor >= 0 && st->actor == st->target)
                err_member(c, "target", 0, "a step's target must differ from its "
                           "actor");
            size_t sp = push_key(c, "params");
            check_params(c, t, json_object_get(o, "params"));
            pop(c, sp);
        }
        json_t *params = json_object_get(o, "params");
        st->params = json_is_object(params) ? json_incref(params) : json_object();

        const char *tech = get_str(o, "technique");
        if (tech != NULL && !technique_ok(tech))
            err_member(c, "technique", 0, "malformed ATT&CK technique id '%s': "
                       "expected T1234 or T1234.001", tech);
        if (tech == NULL && t != NULL)
            tech = t->technique;
        st->technique = xstrdup(c, tech);
        const char *vis = get_enum(c, o, "visibility", visibilities, NULL);
        if (vis == NULL && t != NULL)
            vis = t->visibility;
        st->visibility = xstrdup(c, vis);

        json_t *succ = json_object_get(o, "success");
        if (json_is_object(succ)) {
            static const fspec sspec[] = {
                { "type", F_STR, 1 }, { "value", F_STR, 0 }, { "check", F_STR, 0 },
                { NULL, 0, 0 }
            };
            size_t s2 = push_key(c, "success");
            if (check_fields(c, succ, "success condition", sspec) == 0) {
                const char *ty = get_enum(c, succ, "type", success_types, NULL);
                if (ty && (strcmp(ty, "response_contains") == 0 ||
                           strcmp(ty, "file_exists") == 0) &&
                    get_str(succ, "value") == NULL)
                    err(c, "success condition %s needs 'value'", ty);
                if (ty && strcmp(ty, "check_down") == 0 && get_str(succ, "check") == NULL)
                    err(c, "success condition check_down needs 'check' (a check id)");
            }
            pop(c, s2);
            st->success = json_incref(succ);
        }
        json_t *cl = json_object_get(o, "cleanup");
        if (json_is_object(cl)) {
            static const fspec cspec[] = {
                { "action", F_STR, 1 }, { "params", F_OBJ, 0 }, { NULL, 0, 0 }
            };
            size_t s2 = push_key(c, "cleanup");
            if (check_fields(c, cl, "cleanup", cspec) == 0) {
                const action_type *ct = check_action_name(c, cl, "action");
                if (ct != NULL) {
                    size_t sp = push_key(c, "params");
                    check_params(c, ct, json_object_get(cl, "params"));
                    pop(c, sp);
                }
            }
            pop(c, s2);
            st->cleanup = json_incref(cl);
        }
        json_t *when = json_object_get(o, "when");
        if (json_is_object(when))
            st->when = json_incref(when);
        pop(c, saved);
    }
out:
    pop(c, base);
}

/* Cross-references of steps (when, otherwise, success checks), cycles and
 * offsets.  Runs after checks are loaded. */
static void resolve_steps(loader *L, const json_t *arr)
{
    vctx *c = &L->c;
    scenario *s = L->s;
    size_t n = s->n_steps;
    size_t base = push_key(c, "timeline");
    int *state = xcalloc(c, n, sizeof(int)); /* 0 new, 1 on path, 2 done */
    size_t *stack = xcalloc(c, n + 1, sizeof(size_t));
    char dur1[32], dur2[32];

    if (state == NULL || stack == NULL)
        goto out;
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(arr, i);
        scn_step *st = &s->steps[i];
        size_t saved = push_idx(c, i);
        if (st->when != NULL) {
            static const fspec wspec[] = {
                { "step", F_STR, 0 }, { "outcome", F_STR, 0 }, { "check", F_STR, 0 },
                { "state", F_STR, 0 }, { "reachable", F_STR, 0 }, { "port", F_INT, 0 },
                { NULL, 0, 0 }
            };
            size_t s2 = push_key(c, "when");
            if (check_fields(c, st->when, "condition", wspec) == 0) {
                int kinds = (get_str(st->when, "step") != NULL) +
                            (get_str(st->when, "check") != NULL) +
                            (get_str(st->when, "reachable") != NULL);
                const char *ref;
                if (kinds != 1)
                    err(c, "a condition names exactly one of 'step', 'check' or "
                        "'reachable'");
                if ((ref = get_str(st->when, "step")) != NULL) {
                    int si = index_get(L->step_ix, ref);
                    if (si < 0)
                        err_unknown_ref(c, "step", "step", ref, L->step_ix);
                    else if (si == (int)i)
                        err_member(c, "step", 0, "a step's condition cannot refer to "
                                   "the step itself");
                    if (get_str(st->when, "outcome") == NULL)
                        err(c, "a 'step' condition needs 'outcome' (succeeded or "
                            "failed)");
                    get_enum(c, st->when, "outcome", outcomes, NULL);
                }
                if ((ref = get_str(st->when, "check")) != NULL) {
                    if (index_get(L->check_ix, ref) < 0)
                        err_unknown_ref(c, "check", "check", ref, L->check_ix);
                    if (get_str(st->when, "state") == NULL)
                        err(c, "a 'check' condition needs 'state' (up or down)");
                    get_enum(c, st->when, "state", states, NULL);
                }
                if ((ref = get_str(st->when, "reachable")) != NULL) {
                    if (index_get(L->host_ix, ref) < 0)
                        err_unknown_ref(c, "reachable", "host", ref, L->host_ix);
                    if (json_object_get(st->when, "port") == NULL)
                        err(c, "a 'reachable' condition needs 'port'");
                    get_int(c, st->when, "port", 0, 1, 65535);
                }
                /* A qualifier that belongs to another kind of condition is
                 * a mistake, not something to ignore. */
                static const char *const qual[][2] = {
                    { "outcome", "step" }, { "state", "check" }, { "port", "reachable" }
                };
                for (size_t q = 0; q < 3; q++)
                    if (json_object_get(st->when, qual[q][0]) != NULL &&
                        json_object_get(st->when, qual[q][1]) == NULL)
                        err_member(c, qual[q][0], 1, "'%s' applies only to a '%s' "
                                   "condition", qual[q][0], qual[q][1]);
            }
            pop(c, s2);
        }
        const char *oth = get_str(o, "otherwise");
        if (oth != NULL) {
            st->otherwise = index_get(L->step_ix, oth);
            if (st->when == NULL)
                err_member(c, "otherwise", 1, "'otherwise' needs a 'when' condition");
            if (st->otherwise < 0)
                err_unknown_ref(c, "otherwise", "step", oth, L->step_ix);
            else if (st->otherwise == (int)i)
                err_member(c, "otherwise", 0, "a step cannot be its own 'otherwise'");
            else if (!s->steps[st->otherwise].on_demand)
                err_member(c, "otherwise", 0, "step '%s' is an 'otherwise' branch and "
                           "must be marked \"on_demand\": true", oth);
        }
        json_t *succ = st->success;
        const char *chk = succ ? get_str(succ, "check") : NULL;
        if (chk != NULL && index_get(L->check_ix, chk) < 0) {
            size_t s2 = push_key(c, "success");
            err_unknown_ref(c, "check", "check", chk, L->check_ix);
            pop(c, s2);
        }
        pop(c, saved);
    }

    /* Offsets along `after` chains, with cycle detection (iterative: chains
     * may be thousands of steps long). */
    for (size_t i = 0; i < n; i++) {
        size_t depth = 0;
        size_t cur = i;
        if (state[i] == 2)
            continue;
        while (state[cur] == 0) {
            state[cur] = 1;
            stack[depth++] = cur;
            if (s->steps[cur].after < 0)
                break;
            cur = (size_t)s->steps[cur].after;
        }
        if (state[cur] == 1 && s->steps[cur].after >= 0) {
            /* cur is on the current path: the chain from cur loops. */
            char chain[512];
            size_t off = 0, k = 0;
            while (k < depth && stack[k] != cur)
                k++;
            for (size_t m = k; m < depth && off < sizeof(chain); m++)
                off += (size_t)snprintf(chain + off, sizeof(chain) - off, "%s -> ",
                                        s->steps[stack[m]].id);
            if (off < sizeof(chain))
                snprintf(chain + off, sizeof(chain) - off, "%s", s->steps[cur].id);
            for (size_t m = k; m < depth; m++) {
                size_t si = stack[m];
                size_t s1 = push_idx(c, si);
                err_member(c, "after", 0, "step '%s' is in an 'after' cycle: %s",
                           s->steps[si].id, chain);
                pop(c, s1);
                state[si] = 2;
                s->steps[si].offset_ms = -1;
            }
            depth = k;
        }
        /* Unwind: offsets from the chain's root. */
        while (depth > 0) {
            size_t si = stack[--depth];
            scn_step *st = &s->steps[si];
            state[si] = 2;
            if (st->on_demand) {
                st->offset_ms = -1;
            } else if (st->after < 0) {
                st->offset_ms = st->at_ms;
                st->latest_ms = st->at_ms + st->jitter_ms;
            } else {
                const scn_step *pr = &s->steps[st->after];
                st->offset_ms = pr->offset_ms < 0 ? -1 : pr->offset_ms + st->at_ms;
                st->latest_ms = pr->latest_ms + st->at_ms + st->jitter_ms;
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        scn_step *st = &s->steps[i];
        if (st->offset_ms < 0 || s->duration_ms <= 0)
            continue;
        if (st->latest_ms > s->duration_ms) {
            size_t s1 = push_idx(c, i);
            const char *k = st->after >= 0 ? "after" : "at";
            units_duration_format(st->latest_ms, dur1, sizeof(dur1));
            units_duration_format(s->duration_ms, dur2, sizeof(dur2));
            err_member(c, k, 0, "step '%s' may start at %s, after the end of the "
                       "scenario (duration %s)", st->id ? st->id : "?", dur1, dur2);
            pop(c, s1);
        }
    }
out:
    free(state);
    free(stack);
    pop(c, base);
}

static void load_checks(loader *L, const json_t *arr)
{
    vctx *c = &L->c;
    scenario *s = L->s;
    static const fspec spec[] = {
        { "id", F_STR, 1 }, { "type", F_STR, 1 }, { "from", F_STR, 1 },
        { "target", F_STR, 1 }, { "port", F_INT, 0 }, { "interval", F_DUR, 0 },
        { "timeout", F_DUR, 0 }, { "sla", F_NUM, 0 }, { "path", F_STR, 0 },
        { "expect_status", F_INT, 0 }, { "expect", F_STR, 0 }, { "name", F_STR, 0 },
        { "expect_address", F_STR, 0 }, { "description", F_STR, 0 },
        { NULL, 0, 0 }
    };
    size_t n = json_array_size(arr);
    size_t base = push_key(c, "checks");

    s->checks = xcalloc(c, n, sizeof(*s->checks));
    if (s->checks == NULL)
        goto out;
    s->n_checks = n;
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(arr, i);
        scn_check *k = &s->checks[i];
        size_t saved = push_idx(c, i);
        k->from = -1;
        k->target = -1;
        if (check_fields(c, o, "check", spec) < 0) {
            pop(c, saved);
            continue;
        }
        const char *id = get_str(o, "id");
        if (id != NULL) {
            if (!step_id_ok(id))
                err_member(c, "id", 0, "malformed check id '%s'", id);
            else
                index_add(c, L->check_ix, id, i, "check", "id");
        }
        k->id = xstrdup(c, id);
        const char *type = get_enum(c, o, "type", check_types, NULL);
        k->type = xstrdup(c, type);
        const char *from = get_str(o, "from"), *target = get_str(o, "target");
        if (from && (k->from = index_get(L->host_ix, from)) < 0)
            err_unknown_ref(c, "from", "host", from, L->host_ix);
        if (target && (k->target = index_get(L->host_ix, target)) < 0)
            err_unknown_ref(c, "target", "host", target, L->host_ix);
        if (k->from >= 0 && k->from == k->target)
            err_member(c, "target", 0, "a check's target must differ from its vantage "
                       "host ('from')");
        const char *cpath = get_str(o, "path");
        if (cpath && cpath[0] != '/')
            err_member(c, "path", 0, "'path' must be a URL path starting with '/', "
                       "got '%s'", cpath);
        if (json_object_get(o, "expect") && type && strcmp(type, "dns") == 0)
            err_member(c, "expect", 1, "'expect' (text the answer contains) does not "
                       "apply to dns checks; use 'expect_address'");
        int dport = 0;
        if (type) {
            if (strcmp(type, "http") == 0) dport = 80;
            else if (strcmp(type, "dns") == 0) dport = 53;
            else if (strcmp(type, "smtp") == 0) dport = 25;
            else if (json_object_get(o, "port") == NULL)
                err(c, "a tcp check needs 'port'");
            static const char *const http_only[] = { "path", "expect_status", NULL };
            static const char *const dns_only[] = { "name", "expect_address", NULL };
            for (const char *const *f = http_only; *f; f++)
                if (json_object_get(o, *f) && strcmp(type, "http") != 0)
                    err_member(c, *f, 1, "'%s' applies to http checks only", *f);
            for (const char *const *f = dns_only; *f; f++)
                if (json_object_get(o, *f) && strcmp(type, "dns") != 0)
                    err_member(c, *f, 1, "'%s' applies to dns checks only", *f);
            if (strcmp(type, "dns") == 0 && json_object_get(o, "name") == NULL)
                err(c, "a dns check needs 'name' (the name to resolve)");
        }
        k->port = (int)get_int(c, o, "port", dport, 1, 65535);
        get_int(c, o, "expect_status", 200, 100, 599);
        const char *ea = get_str(o, "expect_address");
        uint32_t tmp;
        if (ea && addr_parse(ea, &tmp) < 0)
            err_member(c, "expect_address", 0, "malformed IPv4 address '%s'", ea);
        k->interval_ms = get_dur(c, o, "interval", 30000, 1000, 3600000);
        k->timeout_ms = get_dur(c, o, "timeout", 5000, 100, 60000);
        if (k->timeout_ms > k->interval_ms)
            err(c, "a check's timeout must not exceed its interval");
        k->sla = get_num(c, o, "sla", 0.95, 0.0, 1.0);
        k->params = json_incref(o);
        pop(c, saved);
    }
out:
    pop(c, base);
}

static void load_scoring(loader *L, const json_t *o)
{
    vctx *c = &L->c;
    scn_scoring *sc = &L->s->scoring;
    static const fspec spec[] = {
        { "weights", F_OBJ, 0 }, { "detection", F_OBJ, 0 },
        { "false_positives", F_OBJ, 0 }, { "containment", F_OBJ, 0 },
        { NULL, 0, 0 }
    };
    sc->w_detection = 40;
    sc->w_availability = 30;
    sc->w_reports = 20;
    sc->w_injects = 10;
    sc->detect_window_ms = 30 * 60000;
    sc->detect_full_ms = 5 * 60000;
    sc->decay = xstrdup(c, "linear");
    sc->detect_floor = 0.2;
    sc->fp_penalty = 5;
    sc->fp_cap = 20;
    sc->c2_quiet_ms = 5 * 60000;
    if (!json_is_object(o))
        return; /* absent, or of another type: reported by check_fields */
    size_t base = push_key(c, "scoring");
    if (check_fields(c, o, "scoring", spec) == 0) {
        json_t *w = json_object_get(o, "weights");
        if (json_is_object(w)) {
            static const fspec wspec[] = {
                { "detection", F_NUM, 0 }, { "availability", F_NUM, 0 },
                { "reports", F_NUM, 0 }, { "injects", F_NUM, 0 }, { NULL, 0, 0 }
            };
            size_t s1 = push_key(c, "weights");
            if (check_fields(c, w, "weights", wspec) == 0) {
                sc->w_detection = get_num(c, w, "detection", sc->w_detection, 0, 1000);
                sc->w_availability = get_num(c, w, "availability", sc->w_availability,
                                             0, 1000);
                sc->w_reports = get_num(c, w, "reports", sc->w_reports, 0, 1000);
                sc->w_injects = get_num(c, w, "injects", sc->w_injects, 0, 1000);
                if (sc->w_detection + sc->w_availability + sc->w_reports +
                    sc->w_injects <= 0)
                    err(c, "at least one scoring weight must be positive");
            }
            pop(c, s1);
        }
        json_t *d = json_object_get(o, "detection");
        if (json_is_object(d)) {
            static const fspec dspec[] = {
                { "window", F_DUR, 0 }, { "full_credit", F_DUR, 0 },
                { "decay", F_STR, 0 }, { "floor", F_NUM, 0 }, { NULL, 0, 0 }
            };
            size_t s1 = push_key(c, "detection");
            if (check_fields(c, d, "detection scoring", dspec) == 0) {
                sc->detect_window_ms = get_dur(c, d, "window", sc->detect_window_ms,
                                               60000, 24LL * 3600000);
                sc->detect_full_ms = get_dur(c, d, "full_credit", sc->detect_full_ms,
                                             0, 24LL * 3600000);
                const char *dc = get_enum(c, d, "decay", decays, NULL);
                if (dc) {
                    free(sc->decay);
                    sc->decay = xstrdup(c, dc);
                }
                sc->detect_floor = get_num(c, d, "floor", sc->detect_floor, 0, 1);
                if (sc->detect_full_ms > sc->detect_window_ms)
                    err(c, "'full_credit' must not exceed 'window'");
            }
            pop(c, s1);
        }
        json_t *f = json_object_get(o, "false_positives");
        if (json_is_object(f)) {
            static const fspec fspec_[] = {
                { "penalty", F_NUM, 0 }, { "cap", F_NUM, 0 }, { NULL, 0, 0 }
            };
            size_t s1 = push_key(c, "false_positives");
            if (check_fields(c, f, "false_positives", fspec_) == 0) {
                sc->fp_penalty = get_num(c, f, "penalty", sc->fp_penalty, 0, 1000);
                sc->fp_cap = get_num(c, f, "cap", sc->fp_cap, 0, 10000);
            }
            pop(c, s1);
        }
        json_t *ct = json_object_get(o, "containment");
        if (json_is_object(ct)) {
            static const fspec cspec[] = { { "c2_quiet", F_DUR, 0 }, { NULL, 0, 0 } };
            size_t s1 = push_key(c, "containment");
            if (check_fields(c, ct, "containment", cspec) == 0)
                sc->c2_quiet_ms = get_dur(c, ct, "c2_quiet", sc->c2_quiet_ms, 10000,
                                          24LL * 3600000);
            pop(c, s1);
        }
    }
    pop(c, base);
}

static const char *const default_titles[] = { "Detection", "Response",
                                              "Reporting", "Recovery" };

static void load_report(loader *L, const json_t *o)
{
    vctx *c = &L->c;
    scenario *s = L->s;
    static const fspec spec[] = { { "sections", F_ARR, 1 }, { NULL, 0, 0 } };
    static const fspec sspec[] = {
        { "id", F_STR, 1 }, { "title", F_STR, 1 }, { "prompt", F_STR, 0 },
        { "required", F_BOOL, 0 }, { "rubric", F_ARR, 0 }, { NULL, 0, 0 }
    };
    static const fspec rspec[] = {
        { "criterion", F_STR, 1 }, { "points", F_INT, 1 }, { NULL, 0, 0 }
    };

    if (!json_is_object(o)) { /* another type was reported by check_fields */
        size_t n = list_len(required_sections);
        s->sections = xcalloc(c, n, sizeof(*s->sections));
        if (s->sections == NULL)
            return;
        s->n_sections = n;
        for (size_t i = 0; i < n; i++) {
            s->sections[i].id = xstrdup(c, required_sections[i]);
            s->sections[i].title = xstrdup(c, default_titles[i]);
            s->sections[i].required = 1;
        }
        return;
    }
    size_t base = push_key(c, "report");
    if (check_fields(c, o, "report", spec) == 0) {
        json_t *arr = json_object_get(o, "sections");
        size_t n = json_array_size(arr);
        size_t s1 = push_key(c, "sections");
        s->sections = xcalloc(c, n, sizeof(*s->sections));
        s->n_sections = s->sections ? n : 0;
        for (size_t i = 0; i < s->n_sections; i++) {
            json_t *so = json_array_get(arr, i);
            scn_section *sec = &s->sections[i];
            size_t s2 = push_idx(c, i);
            if (check_fields(c, so, "report section", sspec) == 0) {
                const char *id = get_str(so, "id");
                if (id && !step_id_ok(id))
                    err_member(c, "id", 0, "malformed section id '%s'", id);
                for (size_t j = 0; id && j < i; j++)
                    if (s->sections[j].id && strcmp(s->sections[j].id, id) == 0) {
                        err_member(c, "id", 0, "duplicate report section '%s'", id);
                        break;
                    }
                sec->id = xstrdup(c, id);
                sec->title = xstrdup(c, get_str(so, "title"));
                sec->prompt = xstrdup(c, get_str(so, "prompt"));
                sec->required = get_bool(so, "required", 1);
                json_t *rub = json_object_get(so, "rubric");
                size_t nr = json_array_size(rub);
                sec->rubric = xcalloc(c, nr, sizeof(*sec->rubric));
                sec->n_rubric = sec->rubric ? nr : 0;
                size_t s3 = push_key(c, "rubric");
                for (size_t r = 0; r < sec->n_rubric; r++) {
                    json_t *ro = json_array_get(rub, r);
                    size_t s4 = push_idx(c, r);
                    if (check_fields(c, ro, "rubric item", rspec) == 0) {
                        sec->rubric[r].criterion = xstrdup(c, get_str(ro, "criterion"));
                        sec->rubric[r].points = (int)get_int(c, ro, "points", 0, 0, 1000);
                    }
                    pop(c, s4);
                }
                pop(c, s3);
            }
            pop(c, s2);
        }
        pop(c, s1);
        /* Without a sections array, check_fields has said so already. */
        for (const char *const *r = required_sections; json_is_array(arr) && *r; r++) {
            int found = 0;
            for (size_t i = 0; i < s->n_sections; i++)
                if (s->sections[i].id && strcmp(s->sections[i].id, *r) == 0)
                    found = 1;
            if (!found)
                err_member(c, "sections", 0, "the report template lacks the '%s' "
                           "section (every report covers detection, response, "
                           "reporting and recovery)", *r);
        }
    }
    pop(c, base);
}

/* ---------------------------------------------------------------------- */

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

static size_t count_codepoints(const char *p, size_t n)
{
    size_t cps = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)p[i] & 0xC0) != 0x80)
            cps++;
    return cps;
}

/* jansson puts a syntax error on the last character it read: the end of the
 * offending token, or the character before a byte it could not decode.
 * People look for the start of the token, as for every other diagnostic, so
 * move the column there when the token can be found in the text. */
static int json_error_column(const char *text, size_t len, const json_error_t *e)
{
    int col = e->column > 0 ? e->column : 1;
    size_t pos = e->position > 0 ? (size_t)e->position : 0;
    const char *near = strstr(e->text, " near '");

    if (pos > len)
        return col;
    if (json_error_code(e) == json_error_duplicate_key) {
        /* The key just read ends at pos - 1: walk back to its opening
         * quote (an unescaped '"': keys hold no raw newlines). */
        size_t i;
        if (pos < 2 || text[pos - 1] != '"')
            return col;
        for (i = pos - 1; i > 0; i--) {
            size_t bs = 0;
            if (text[i - 1] != '"')
                continue;
            while (bs < i - 1 && text[i - 2 - bs] == '\\')
                bs++;
            if (bs % 2 == 0)
                break;
        }
        if (i == 0)
            return col;
        size_t cps = count_codepoints(text + i - 1, pos - i);
        return (size_t)col > cps ? col - (int)cps : 1;
    }
    if (strncmp(e->text, "unable to decode byte", 21) == 0 ||
        strncmp(e->text, "control character", 17) == 0)
        return (e->column > 0 ? e->column : 0) + 1;
    if (near != NULL && (strncmp(e->text, "invalid token", 13) == 0 ||
                         strncmp(e->text, "unexpected token", 16) == 0 ||
                         strstr(e->text, " expected near '") != NULL)) {
        const char *tok = near + 7;
        size_t tl = strlen(tok);
        if (tl < 2 || tok[tl - 1] != '\'')
            return col;
        tl--;
        if (tl > pos || memcmp(text + pos - tl, tok, tl) != 0 ||
            memchr(tok, '\n', tl) != NULL)
            return col;
        size_t cps = count_codepoints(tok, tl);
        if (cps > 0 && (size_t)col >= cps)
            col -= (int)(cps - 1);
    }
    return col;
}

scenario *scenario_load_buffer(const char *name, const char *text, size_t len,
                               diag_list *diags)
{
    loader L;
    json_error_t jerr;
    json_t *root = NULL;
    scenario *s = NULL;
    size_t before = diags->len + diags->dropped;

    memset(&L, 0, sizeof(L));
    L.c.file = name;
    L.c.diags = diags;
    /* RFC 8259 lets parsers ignore a byte order mark; Windows editors write
     * one.  jansson does not, so skip it here (jpos skips it too). */
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
        text += 3;
        len -= 3;
    }
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        diag_add(diags, name, jerr.line > 0 ? jerr.line : 1,
                 json_error_column(text, len, &jerr), "invalid JSON: %s", jerr.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        /* Point at the value itself, past leading white space. */
        int line = 1, col = 1;
        for (size_t i = 0; i < len && strchr(" \t\r\n", text[i]) && text[i]; i++) {
            if (text[i] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        diag_add(diags, name, line, col, "a scenario is a JSON object, got %s",
                 json_kind(root));
        json_decref(root);
        return NULL;
    }
    L.c.pos = jpos_build(text, len);
    L.c.dir = dir_of(name);
    L.s = calloc(1, sizeof(*L.s));
    L.host_ix = json_object();
    L.seg_ix = json_object();
    L.step_ix = json_object();
    L.check_ix = json_object();
    L.c.path = calloc(1, 256);
    L.c.pcap = 256;
    if (L.c.pos == NULL || L.c.dir == NULL || L.s == NULL || L.host_ix == NULL ||
        L.seg_ix == NULL || L.step_ix == NULL || L.check_ix == NULL ||
        L.c.path == NULL) {
        diag_add(diags, name, 0, 0, "out of memory");
        goto cleanup;
    }
    s = L.s;
    s->root = root;
    root = NULL;
    s->file = strdup(name);

    check_fields(&L.c, s->root, "the scenario", top_spec);
    load_meta(&L, s->root);
    json_t *v;
    if ((v = json_object_get(s->root, "segments")) && json_is_array(v))
        load_segments(&L, v);
    if ((v = json_object_get(s->root, "hosts")) && json_is_array(v))
        load_hosts(&L, v);
    check_addresses(&L, s->root);
    if ((v = json_object_get(s->root, "checks")) && json_is_array(v))
        load_checks(&L, v);
    if ((v = json_object_get(s->root, "timeline")) && json_is_array(v)) {
        load_steps(&L, v);
        resolve_steps(&L, v);
    }
    load_scoring(&L, json_object_get(s->root, "scoring"));
    load_report(&L, json_object_get(s->root, "report"));
    if (L.c.oom)
        diag_add(diags, name, 0, 0, "out of memory");

cleanup:
    if (diags->len + diags->dropped > before || L.c.oom) {
        scenario_free(L.s);
        s = NULL;
    }
    json_decref(root);
    json_decref(L.host_ix);
    json_decref(L.seg_ix);
    json_decref(L.step_ix);
    json_decref(L.check_ix);
    jpos_free(L.c.pos);
    free(L.c.dir);
    free(L.c.path);
    return s;
}

scenario *scenario_load(const char *path, diag_list *diags)
{
    FILE *f = NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    scenario *s = NULL;

    f = fopen(path, "rb");
    if (f == NULL) {
        diag_add(diags, path, 0, 0, "cannot open: %s", strerror(errno));
        return NULL;
    }
    for (;;) {
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 65536;
            if (ncap > MAX_SCENARIO_BYTES + 1)
                ncap = MAX_SCENARIO_BYTES + 1;
            if (ncap == cap) {
                diag_add(diags, path, 0, 0, "file is larger than %d MiB",
                         MAX_SCENARIO_BYTES >> 20);
                goto cleanup;
            }
            char *nb = realloc(buf, ncap);
            if (nb == NULL) {
                diag_add(diags, path, 0, 0, "out of memory");
                goto cleanup;
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        diag_add(diags, path, 0, 0, "read error: %s", strerror(errno));
        goto cleanup;
    }
    s = scenario_load_buffer(path, buf, len, diags);
cleanup:
    fclose(f);
    free(buf);
    return s;
}

void scenario_free(scenario *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n_segments; i++) {
        free(s->segments[i].name);
        free(s->segments[i].role);
    }
    free(s->segments);
    for (size_t i = 0; i < s->n_hosts; i++) {
        scn_host *h = &s->hosts[i];
        free(h->name);
        free(h->role);
        free(h->image);
        free(h->nics);
        for (size_t k = 0; k < h->n_services; k++) {
            free(h->services[k].name);
            free(h->services[k].proto);
        }
        free(h->services);
        for (size_t k = 0; k < h->n_accounts; k++) {
            free(h->accounts[k].name);
            free(h->accounts[k].password);
            for (char **g = h->accounts[k].groups; g && *g; g++)
                free(*g);
            free(h->accounts[k].groups);
        }
        free(h->accounts);
        for (size_t k = 0; k < h->n_files; k++) {
            free(h->files[k].path);
            free(h->files[k].content);
        }
        free(h->files);
    }
    free(s->hosts);
    for (size_t i = 0; i < s->n_steps; i++) {
        scn_step *st = &s->steps[i];
        free(st->id);
        free(st->action);
        free(st->technique);
        free(st->visibility);
        free(st->description);
        json_decref(st->params);
        json_decref(st->success);
        json_decref(st->cleanup);
        json_decref(st->when);
    }
    free(s->steps);
    for (size_t i = 0; i < s->n_checks; i++) {
        free(s->checks[i].id);
        free(s->checks[i].type);
        json_decref(s->checks[i].params);
    }
    free(s->checks);
    for (size_t i = 0; i < s->n_sections; i++) {
        free(s->sections[i].id);
        free(s->sections[i].title);
        free(s->sections[i].prompt);
        for (size_t r = 0; r < s->sections[i].n_rubric; r++)
            free(s->sections[i].rubric[r].criterion);
        free(s->sections[i].rubric);
    }
    free(s->sections);
    free(s->scoring.decay);
    free(s->file);
    free(s->id);
    free(s->title);
    free(s->description);
    free(s->level);
    free(s->team_name);
    free(s->domain);
    json_decref(s->root);
    free(s);
}

int scenario_host_index(const scenario *s, const char *name)
{
    for (size_t i = 0; i < s->n_hosts; i++)
        if (s->hosts[i].name && strcmp(s->hosts[i].name, name) == 0)
            return (int)i;
    return -1;
}

int scenario_segment_index(const scenario *s, const char *name)
{
    for (size_t i = 0; i < s->n_segments; i++)
        if (s->segments[i].name && strcmp(s->segments[i].name, name) == 0)
            return (int)i;
    return -1;
}

int scenario_step_index(const scenario *s, const char *id)
{
    for (size_t i = 0; i < s->n_steps; i++)
        if (s->steps[i].id && strcmp(s->steps[i].id, id) == 0)
            return (int)i;
    return -1;
}

char *scenario_team_name(const scenario *s, int team)
{
    const char *pat = s->team_name ? s->team_name : "Team {n}";
    const char *p = strstr(pat, "{n}");
    char *out = NULL;
    if (p == NULL)
        return strdup(pat);
    if (asprintf(&out, "%.*s%d%s", (int)(p - pat), pat, team, p + 3) < 0)
        return NULL;
    return out;
}
