/* score — one team's score from the ground truth, its findings, checks,
 * wire flows and grades.  Pure: everything comes in as JSON, time included.
 *
 * The rules, in one place:
 *
 * Landing.  A step landed when its outcome is "succeeded", or "running" (it
 * started and its result has not come back: the attack is under way, and a
 * team that sees it early must not be penalised), or one of its flows was
 * seen on the team's wire.  Steps that never landed are listed
 * ("not scored: never landed") and take no part in matching, credit or
 * recall: a finding that only resembles an attempt that never happened is
 * no detection.
 *
 * Matching.  A finding can match a landed step when it was detected within
 * [start - SCORE_CLOCK_SLACK_MS, start + window].  Tiers, best first:
 *   flow            the finding's community id is one of the step's flows',
 *                   or its flow equals one of them in either orientation
 *                   (both addresses needed; an absent or 0 port, and an
 *                   absent protocol, match anything);
 *   host+technique  the techniques are equal or parent and child (T1071 ~
 *                   T1071.001, not siblings) and one of the finding's hosts
 *                   is the step's actor or target, by name or address;
 *   indicator       an indicator equals one of the step's artefacts: ips
 *                   (the finding's flow addresses count as ips, the step's
 *                   flow addresses too), domains (case-insensitive; a step's
 *                   URL host counts as a domain), hashes and accounts
 *                   (case-insensitive), paths (exact), urls (equal, or the
 *                   finding's scheme://host/path is the step's or a prefix of
 *                   it that ends at a '/'; scheme and host case-insensitive,
 *                   query and fragment ignored for the prefix).
 * Each step is credited once, to its best unlabelled finding (tier, then
 * earliest detected_ms, then lowest id); one finding may cover several steps.
 * A finding detected before the step started (within the slack) counts as
 * detected at the start.
 *
 * Labels.  "duplicate": not matched, never credit, never a false positive.
 * "benign": a false positive even when it matches.  "unscripted": neither
 * credit nor penalty.  An unlabelled finding that matches no landed step is a
 * false positive; one that matches but loses every step to a better finding
 * is neither.
 *
 * Detection axis.  A landed step's share is w_detection * points / sum of the
 * landed steps' points; its credit is share * tier multiplier *
 * timeliness(delay).  False positives cost fp_penalty each (in id order) up
 * to fp_cap in all, taken from the detection axis, which never goes below 0.
 *
 * Availability axis.  Items: each check with sla > 0 (sla 0 is reported,
 * not scored) and one containment item per succeeded step with a "c2"; each
 * item weighs the same.  A check's credit is min(1, ok fraction / sla) over
 * its results up to now_ms (no result yet: 0).  An outage runs from the
 * first failing probe to the next success (or now, when not restored).
 * Containment: sightings are wire flows to c2.addr:c2.port, or from c2.from
 * to via.addr:via.port, seen after the step started; the C2 counts as
 * contained at the last sighting once nothing has been seen for c2_quiet_ms,
 * and the credit is timeliness(contained - start) with the detection window.
 * A succeeded beacon (the agent saw its first answer) with no sighting at all
 * is counted as contained at the step's start once c2_quiet_ms has passed:
 * the team cannot be asked to stop traffic the range never saw, and the
 * reason text points at the capture.
 *
 * Reports and injects axes.  Sum of grade points / sum of grade max, times
 * the weight.  An inject whose deadline passed without a response and without
 * a grade adds its points to the max (it is lost, not "not graded yet").
 */
#include "score.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TIER_NONE = 0, TIER_IND = 1, TIER_HT = 2, TIER_FLOW = 3 };
enum { LABEL_NONE, LABEL_DUPLICATE, LABEL_BENIGN, LABEL_UNSCRIPTED };

static const char *const tier_names[] = { NULL, "indicator", "host+technique", "flow" };
static const double tier_mult[] = { 0.0, SCORE_TIER_INDICATOR, SCORE_TIER_HOST_TECHNIQUE,
                                    SCORE_TIER_FLOW };
static const char *const label_names[] = { NULL, "duplicate", "benign", "unscripted" };

/* The kinds of indicator, as named in "artefacts" and "indicators". */
static const char *const ind_keys[] = { "ips", "domains", "urls", "paths", "hashes", "accounts" };
static const char ind_type[] = { 'i', 'd', 'u', 'p', 'x', 'a' };
static const char *const ind_label[] = { "address", "domain", "URL", "path", "hash", "account" };
#define N_IND (sizeof(ind_keys) / sizeof(ind_keys[0]))

/* ------------------------------------------------------------------ */
/* Configuration and timeliness                                        */

void score_config_defaults(score_config *c)
{
    c->w_detection = 40;
    c->w_availability = 30;
    c->w_reports = 20;
    c->w_injects = 10;
    c->window_ms = 30 * 60000;
    c->full_ms = 5 * 60000;
    c->decay = SCORE_DECAY_LINEAR;
    c->floor = 0.2;
    c->fp_penalty = 5;
    c->fp_cap = 20;
    c->c2_quiet_ms = 5 * 60000;
}

static int cfg_num(const json_t *o, const char *key, const char *path, double lo, double hi,
                   double *out, char *err, size_t errlen)
{
    const json_t *v = json_object_get(o, key);
    if (v == NULL)
        return 0;
    if (!json_is_number(v) || json_number_value(v) < lo || json_number_value(v) > hi) {
        snprintf(err, errlen, "%s%s: expected a number from %g to %g", path, key, lo, hi);
        return -1;
    }
    *out = json_number_value(v);
    return 0;
}

static int cfg_ms(const json_t *o, const char *key, int64_t lo, int64_t hi, int64_t *out,
                  char *err, size_t errlen)
{
    const json_t *v = json_object_get(o, key);
    if (v == NULL)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        snprintf(err, errlen, "%s: expected an integer from %lld to %lld", key, (long long)lo,
                 (long long)hi);
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

int score_config_from_json(score_config *c, const json_t *j, char *err, size_t errlen)
{
    static const char *const known[] = { "weights", "window_ms", "full_ms", "decay", "floor",
                                         "fp_penalty", "fp_cap", "c2_quiet_ms" };
    static const char *const wkeys[] = { "detection", "availability", "reports", "injects" };
    score_config n = *c;
    const json_t *w, *d, *v;
    const char *key;
    double *wv[4];
    size_t i;

    if (!json_is_object(j)) {
        snprintf(err, errlen, "config: expected an object");
        return -1;
    }
    json_object_foreach((json_t *)j, key, v) {
        for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
            if (strcmp(key, known[i]) == 0)
                break;
        if (i == sizeof(known) / sizeof(known[0])) {
            snprintf(err, errlen, "%s: unknown key", key);
            return -1;
        }
    }
    wv[0] = &n.w_detection;
    wv[1] = &n.w_availability;
    wv[2] = &n.w_reports;
    wv[3] = &n.w_injects;
    w = json_object_get(j, "weights");
    if (w != NULL) {
        if (!json_is_object(w)) {
            snprintf(err, errlen, "weights: expected an object");
            return -1;
        }
        json_object_foreach((json_t *)w, key, v) {
            for (i = 0; i < 4; i++)
                if (strcmp(key, wkeys[i]) == 0)
                    break;
            if (i == 4) {
                snprintf(err, errlen, "weights.%s: unknown key", key);
                return -1;
            }
        }
        for (i = 0; i < 4; i++)
            if (cfg_num(w, wkeys[i], "weights.", 0, 1000, wv[i], err, errlen) < 0)
                return -1;
        if (n.w_detection + n.w_availability + n.w_reports + n.w_injects <= 0) {
            snprintf(err, errlen, "weights: at least one must be positive");
            return -1;
        }
    }
    if (cfg_ms(j, "window_ms", 60000, 86400000, &n.window_ms, err, errlen) < 0 ||
        cfg_ms(j, "full_ms", 0, 86400000, &n.full_ms, err, errlen) < 0 ||
        cfg_ms(j, "c2_quiet_ms", 10000, 86400000, &n.c2_quiet_ms, err, errlen) < 0 ||
        cfg_num(j, "floor", "", 0, 1, &n.floor, err, errlen) < 0 ||
        cfg_num(j, "fp_penalty", "", 0, 1000, &n.fp_penalty, err, errlen) < 0 ||
        cfg_num(j, "fp_cap", "", 0, 10000, &n.fp_cap, err, errlen) < 0)
        return -1;
    if (n.full_ms > n.window_ms) {
        snprintf(err, errlen, "full_ms: %lld is longer than window_ms (%lld)",
                 (long long)n.full_ms, (long long)n.window_ms);
        return -1;
    }
    d = json_object_get(j, "decay");
    if (d != NULL) {
        const char *s = json_string_value(d);
        if (s != NULL && strcmp(s, "linear") == 0)
            n.decay = SCORE_DECAY_LINEAR;
        else if (s != NULL && strcmp(s, "exponential") == 0)
            n.decay = SCORE_DECAY_EXPONENTIAL;
        else if (s != NULL && strcmp(s, "step") == 0)
            n.decay = SCORE_DECAY_STEP;
        else {
            snprintf(err, errlen, "decay: expected \"linear\", \"exponential\" or \"step\"");
            return -1;
        }
    }
    *c = n;
    return 0;
}

double score_timeliness(const score_config *c, int64_t d)
{
    double x;
    if (d < 0 || d > c->window_ms)
        return 0.0;
    if (d <= c->full_ms || c->window_ms <= c->full_ms)
        return 1.0;
    x = (double)(d - c->full_ms) / (double)(c->window_ms - c->full_ms);
    switch (c->decay) {
    case SCORE_DECAY_EXPONENTIAL:
        return c->floor + (1.0 - c->floor) * exp(-3.0 * x);
    case SCORE_DECAY_STEP:
        return c->floor;
    case SCORE_DECAY_LINEAR:
    default:
        return 1.0 - (1.0 - c->floor) * x;
    }
}

/* ------------------------------------------------------------------ */
/* Small helpers: rounding, durations, growable text                   */

static double r1(double x)
{
    double v = round(x * 10.0) / 10.0;
    return v == 0.0 ? 0.0 : v; /* no "-0.0" in the output */
}

static json_t *jr1(double x)
{
    return json_real(r1(x));
}

/* "+8.0", "-5.0", or "0": the signed points a reason starts with. */
static void fmt_points(char *b, size_t n, double x)
{
    double v = r1(x);
    if (v == 0.0)
        snprintf(b, n, "0");
    else
        snprintf(b, n, "%+.1f", v);
}

/* Human durations: 45s, 3m12s, 1h02m. */
static void fmt_dur(char *b, size_t n, int64_t ms)
{
    long long s;
    const char *sign = "";
    if (ms < 0) {
        sign = "-";
        ms = -ms;
    }
    s = (long long)(ms / 1000);
    if (s < 60)
        snprintf(b, n, "%s%llds", sign, s);
    else if (s < 3600)
        snprintf(b, n, "%s%lldm%02llds", sign, s / 60, s % 60);
    else
        snprintf(b, n, "%s%lldh%02lldm", sign, s / 3600, (s % 3600) / 60);
}

typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    int k;
    if (b->oom)
        return;
    for (;;) {
        va_start(ap, fmt);
        k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = 1;
            return;
        }
        if (b->p != NULL && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        {
            size_t want = (b->cap ? b->cap * 2 : 256) + (size_t)k;
            char *q = realloc(b->p, want);
            if (q == NULL) {
                b->oom = 1;
                return;
            }
            b->p = q;
            b->cap = want;
        }
    }
}

/* ------------------------------------------------------------------ */
/* Input access with JSON paths in the errors                          */

/* "path.key", or "key" at the top level. */
#define PJ(path) (path), *(path) ? "." : ""

typedef struct perr {
    char *err;
    size_t errlen;
} perr;

static int fail(perr *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(perr *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->err, e->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static int nomem(perr *e)
{
    return fail(e, "out of memory");
}

/* Absent and null are the same: "not given". */
static const json_t *field(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_null(v) ? NULL : v;
}

static int get_int(perr *e, const json_t *o, const char *path, const char *key, int required,
                   int64_t def, int64_t *out)
{
    const json_t *v = field(o, key);
    if (v == NULL) {
        if (required)
            return fail(e, "%s%s%s: missing; expected an integer", PJ(path), key);
        *out = def;
        return 0;
    }
    if (!json_is_integer(v))
        return fail(e, "%s%s%s: expected an integer", PJ(path), key);
    *out = json_integer_value(v);
    return 0;
}

static int get_port(perr *e, const json_t *o, const char *path, const char *key, int64_t *out)
{
    if (get_int(e, o, path, key, 0, 0, out) < 0)
        return -1;
    if (*out < 0 || *out > 65535)
        return fail(e, "%s%s%s: expected a port from 0 to 65535", PJ(path), key);
    return 0;
}

static int get_num(perr *e, const json_t *o, const char *path, const char *key, int required,
                   double def, double *out)
{
    const json_t *v = field(o, key);
    if (v == NULL) {
        if (required)
            return fail(e, "%s%s%s: missing; expected a number", PJ(path), key);
        *out = def;
        return 0;
    }
    if (!json_is_number(v))
        return fail(e, "%s%s%s: expected a number", PJ(path), key);
    *out = json_number_value(v);
    return 0;
}

static int get_str(perr *e, const json_t *o, const char *path, const char *key, int required,
                   const char **out)
{
    const json_t *v = field(o, key);
    *out = NULL;
    if (v == NULL)
        return required ? fail(e, "%s%s%s: missing; expected a string", PJ(path), key) : 0;
    if (!json_is_string(v))
        return fail(e, "%s%s%s: expected a string", PJ(path), key);
    *out = json_string_value(v);
    return 0;
}

static int get_bool(perr *e, const json_t *o, const char *path, const char *key, int required,
                    int *out)
{
    const json_t *v = field(o, key);
    if (v == NULL) {
        *out = 0;
        return required ? fail(e, "%s%s%s: missing; expected true or false", PJ(path), key) : 0;
    }
    if (!json_is_boolean(v))
        return fail(e, "%s%s%s: expected true or false", PJ(path), key);
    *out = json_is_true(v);
    return 0;
}

static int get_arr(perr *e, const json_t *o, const char *path, const char *key,
                   const json_t **out)
{
    const json_t *v = field(o, key);
    *out = v;
    if (v != NULL && !json_is_array(v))
        return fail(e, "%s%s%s: expected an array", path, *path ? "." : "", key);
    return 0;
}

static int get_obj(perr *e, const json_t *o, const char *path, const char *key,
                   const json_t **out)
{
    const json_t *v = field(o, key);
    *out = v;
    if (v != NULL && !json_is_object(v))
        return fail(e, "%s%s%s: expected an object", path, *path ? "." : "", key);
    return 0;
}

static int check_strings(perr *e, const json_t *a, const char *path)
{
    size_t i;
    for (i = 0; i < json_array_size(a); i++)
        if (!json_is_string(json_array_get(a, i)))
            return fail(e, "%s[%zu]: expected a string", path, i);
    return 0;
}

/* An artefacts/indicators object: known keys must be arrays of strings. */
static int check_indicators(perr *e, const json_t *o, const char *path)
{
    char p[160];
    size_t k;
    for (k = 0; k < N_IND; k++) {
        const json_t *a;
        if (get_arr(e, o, path, ind_keys[k], &a) < 0)
            return -1;
        snprintf(p, sizeof(p), "%s.%s", path, ind_keys[k]);
        if (a != NULL && check_strings(e, a, p) < 0)
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* The model                                                           */

typedef struct sflow {
    const char *proto, *src, *dst, *cid;
    int64_t sport, dport;
} sflow;

typedef struct sstep {
    const char *name, *technique, *actor, *target, *actor_addr, *target_addr, *outcome;
    int64_t start;
    double weight, share, credit;
    int landed;
    sflow *flows;
    size_t nflows;
    const json_t *artefacts;
    int has_c2;
    const char *c2_addr, *via_addr, *c2_from;
    int64_t c2_port, via_port;
    long best; /* index of the credited finding, -1 none */
    int best_tier;
} sstep;

typedef struct sfind {
    int64_t id, detected;
    size_t idx;
    int label;
    const json_t *hosts, *ind;
    const char *fproto, *fsrc, *fdst, *cid, *technique;
    int64_t fsport, fdport;
    size_t m_off, m_n; /* its matches in ctx.matches */
    int best_tier, fp;
    double penalty;
} sfind;

typedef struct smatch {
    uint32_t step;
    uint8_t tier;
} smatch;

/* A string-keyed index: key -> steps (input indices) in start order. */
typedef struct ient {
    char *key;
    size_t klen;
    uint64_t h;
    uint32_t *v;
    uint32_t n, cap;
} ient;

typedef struct imap {
    ient *t;
    size_t cap, n;
} imap;

typedef struct ctx {
    const score_config *c;
    perr e;
    int64_t now;
    sstep *steps;
    size_t nsteps;
    sfind *finds;
    size_t nfinds;
    size_t *forder; /* findings by id */
    smatch *matches;
    size_t nmatches, cmatches;
    imap idx;
    char *kb; /* key builder */
    size_t kbcap;
    uint32_t *stamp; /* per step: 1 + the finding last considered */
    uint8_t *ttier;  /* per step: that finding's best tier so far */
    uint32_t *tmp;   /* the steps the current finding matches */
    size_t ntmp;
    int oom;
} ctx;

/* ------------------------------------------------------------------ */
/* The index                                                           */

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    size_t i;
    for (i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static ient *imap_slot(const imap *m, const char *k, size_t n, uint64_t h)
{
    size_t i = (size_t)h & (m->cap - 1);
    for (;;) {
        ient *s = &m->t[i];
        if (s->key == NULL || (s->h == h && s->klen == n && memcmp(s->key, k, n) == 0))
            return s;
        i = (i + 1) & (m->cap - 1);
    }
}

static const ient *imap_get(const imap *m, const char *k, size_t n)
{
    const ient *s;
    if (m->cap == 0)
        return NULL;
    s = imap_slot(m, k, n, hash_bytes(k, n));
    return s->key ? s : NULL;
}

static int imap_grow(imap *m)
{
    imap g;
    size_t i;
    g.cap = m->cap ? m->cap * 2 : 1024;
    g.n = m->n;
    g.t = calloc(g.cap, sizeof(*g.t));
    if (g.t == NULL)
        return -1;
    for (i = 0; i < m->cap; i++)
        if (m->t[i].key != NULL)
            *imap_slot(&g, m->t[i].key, m->t[i].klen, m->t[i].h) = m->t[i];
    free(m->t);
    *m = g;
    return 0;
}

/* Steps are added in start order, so each list stays sorted by start; a
 * step added twice under one key (an address that is both an artefact and a
 * flow end) is kept once. */
static int imap_add(imap *m, const char *k, size_t n, uint32_t step)
{
    uint64_t h = hash_bytes(k, n);
    ient *s;
    if ((m->n + 1) * 2 > m->cap && imap_grow(m) < 0)
        return -1;
    s = imap_slot(m, k, n, h);
    if (s->key == NULL) {
        s->key = malloc(n + 1);
        if (s->key == NULL)
            return -1;
        memcpy(s->key, k, n);
        s->key[n] = '\0';
        s->klen = n;
        s->h = h;
        m->n++;
    }
    if (s->n > 0 && s->v[s->n - 1] == step)
        return 0;
    if (s->n == s->cap) {
        uint32_t nc = s->cap ? s->cap * 2 : 4;
        uint32_t *q = realloc(s->v, nc * sizeof(*q));
        if (q == NULL)
            return -1;
        s->v = q;
        s->cap = nc;
    }
    s->v[s->n++] = step;
    return 0;
}

static void imap_free(imap *m)
{
    size_t i;
    for (i = 0; i < m->cap; i++) {
        free(m->t[i].key);
        free(m->t[i].v);
    }
    free(m->t);
    m->t = NULL;
    m->cap = m->n = 0;
}

/* Builds "<type><value>" in ctx->kb, lowercased when asked; returns its
 * length, or -1 when out of memory. */
static long mkkey(ctx *x, char type, const char *s, size_t n, int lower)
{
    size_t i;
    if (n + 2 > x->kbcap) {
        size_t nc = (n + 2) * 2;
        char *q = realloc(x->kb, nc);
        if (q == NULL)
            return -1;
        x->kb = q;
        x->kbcap = nc;
    }
    x->kb[0] = type;
    for (i = 0; i < n; i++)
        x->kb[i + 1] = lower ? (char)tolower((unsigned char)s[i]) : s[i];
    /* A domain's trailing dot is the root, not part of the name. */
    if (type == 'd' && n > 0 && s[n - 1] == '.')
        n--;
    x->kb[n + 1] = '\0';
    return (long)(n + 1);
}

/* A URL's origin (scheme://host[:port]) length, and its base (without
 * query and fragment) length. */
static void url_parts(const char *u, size_t *origin, size_t *base)
{
    const char *p = strstr(u, "://");
    const char *q;
    p = p ? p + 3 : u;
    q = p + strcspn(p, "/?#");
    *origin = (size_t)(q - u);
    *base = (size_t)(q + strcspn(q, "?#") - u);
}

/* Whether the finding's URL f names the step's URL s (rule at the top). */
static int url_matches(const char *f, const char *s)
{
    size_t fo, fb, so, sb, i;
    url_parts(f, &fo, &fb);
    url_parts(s, &so, &sb);
    if (fo != so)
        return 0;
    for (i = 0; i < fo; i++)
        if (tolower((unsigned char)f[i]) != tolower((unsigned char)s[i]))
            return 0;
    if (strcmp(f + fo, s + so) == 0)
        return 1;
    if (fb - fo > sb - so || memcmp(f + fo, s + so, fb - fo) != 0)
        return 0;
    /* A prefix must end at a path boundary: /upd is not /update. */
    return fb - fo == sb - so || (fb > fo && f[fb - 1] == '/') || s[so + (fb - fo)] == '/';
}

static int add_key(ctx *x, char type, const char *s, int lower, uint32_t step)
{
    size_t n = strlen(s), o, b;
    long k;
    if (n == 0)
        return 0;
    if (type == 'u') {
        url_parts(s, &o, &b);
        n = o;
    }
    k = mkkey(x, type, s, n, lower);
    if (k < 0 || imap_add(&x->idx, x->kb, (size_t)k, step) < 0)
        return -1;
    return 0;
}

static int cmp_i64_idx(const void *a, const void *b)
{
    const int64_t *p = a, *q = b;
    if (p[0] != q[0])
        return p[0] < q[0] ? -1 : 1;
    return p[1] < q[1] ? -1 : p[1] > q[1];
}

/* Indexes every landed step, in start order. */
static int build_index(ctx *x)
{
    int64_t *ord = NULL;
    size_t i, j, k, n = 0;
    int rc = -1;

    ord = malloc((x->nsteps ? x->nsteps : 1) * 2 * sizeof(*ord));
    if (ord == NULL)
        goto cleanup;
    for (i = 0; i < x->nsteps; i++)
        if (x->steps[i].landed) {
            ord[2 * n] = x->steps[i].start;
            ord[2 * n + 1] = (int64_t)i;
            n++;
        }
    qsort(ord, n, 2 * sizeof(*ord), cmp_i64_idx);
    for (j = 0; j < n; j++) {
        uint32_t si = (uint32_t)ord[2 * j + 1];
        const sstep *s = &x->steps[si];
        const char *hosts[4] = { s->actor, s->target, s->actor_addr, s->target_addr };
        for (k = 0; k < 4; k++)
            if (hosts[k] != NULL && add_key(x, 'h', hosts[k], 1, si) < 0)
                goto cleanup;
        for (k = 0; k < s->nflows; k++) {
            const sflow *f = &s->flows[k];
            if (f->cid != NULL && add_key(x, 'c', f->cid, 0, si) < 0)
                goto cleanup;
            if (f->src != NULL && f->dst != NULL) {
                /* One key for both orientations: the lower address first. */
                const char *a = strcmp(f->src, f->dst) <= 0 ? f->src : f->dst;
                const char *b = a == f->src ? f->dst : f->src;
                char pair[256];
                snprintf(pair, sizeof(pair), "%s|%s", a, b);
                if (add_key(x, 'f', pair, 0, si) < 0)
                    goto cleanup;
            }
            if ((f->src != NULL && add_key(x, 'i', f->src, 0, si) < 0) ||
                (f->dst != NULL && add_key(x, 'i', f->dst, 0, si) < 0))
                goto cleanup;
        }
        for (k = 0; k < N_IND; k++) {
            const json_t *a = json_object_get(s->artefacts, ind_keys[k]);
            size_t m;
            for (m = 0; m < json_array_size(a); m++) {
                const char *v = json_string_value(json_array_get(a, m));
                int lower = ind_type[k] != 'i' && ind_type[k] != 'p';
                if (add_key(x, ind_type[k], v, lower, si) < 0)
                    goto cleanup;
                if (ind_type[k] == 'u') {
                    /* The URL's host is a domain of the step too. */
                    const char *h = strstr(v, "://");
                    size_t hl;
                    long kl;
                    h = h ? h + 3 : v;
                    hl = strcspn(h, ":/?#");
                    if (hl > 0) {
                        kl = mkkey(x, 'd', h, hl, 1);
                        if (kl < 0 || imap_add(&x->idx, x->kb, (size_t)kl, si) < 0)
                            goto cleanup;
                    }
                }
            }
        }
    }
    rc = 0;
cleanup:
    free(ord);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Matching                                                            */

static int technique_related(const char *a, const char *b)
{
    size_t la, lb;
    if (a == NULL || b == NULL || *a == '\0' || *b == '\0')
        return 0;
    la = strlen(a);
    lb = strlen(b);
    if (la == lb)
        return strcasecmp(a, b) == 0;
    if (la < lb)
        return strncasecmp(a, b, la) == 0 && b[la] == '.';
    return strncasecmp(a, b, lb) == 0 && a[lb] == '.';
}

static int port_ok(int64_t want, int64_t have)
{
    return want == 0 || want == have;
}

/* The step's flow that the finding's 5-tuple names, or NULL. */
static const sflow *flow_match(const sfind *f, const sstep *s)
{
    size_t k;
    for (k = 0; k < s->nflows; k++) {
        const sflow *g = &s->flows[k];
        if (g->src == NULL || g->dst == NULL)
            continue;
        if (f->fproto != NULL && g->proto != NULL && strcasecmp(f->fproto, g->proto) != 0)
            continue;
        if (strcmp(f->fsrc, g->src) == 0 && strcmp(f->fdst, g->dst) == 0 &&
            port_ok(f->fsport, g->sport) && port_ok(f->fdport, g->dport))
            return g;
        if (strcmp(f->fsrc, g->dst) == 0 && strcmp(f->fdst, g->src) == 0 &&
            port_ok(f->fsport, g->dport) && port_ok(f->fdport, g->sport))
            return g;
    }
    return NULL;
}

static int url_in_step(const char *u, const sstep *s)
{
    const json_t *a = json_object_get(s->artefacts, "urls");
    size_t m;
    for (m = 0; m < json_array_size(a); m++)
        if (url_matches(u, json_string_value(json_array_get(a, m))))
            return 1;
    return 0;
}

static void consider(ctx *x, size_t fi, uint32_t si, int tier)
{
    if (x->stamp[si] != fi + 1) {
        x->stamp[si] = (uint32_t)(fi + 1);
        x->ttier[si] = (uint8_t)tier;
        x->tmp[x->ntmp++] = si;
    } else if (x->ttier[si] < tier) {
        x->ttier[si] = (uint8_t)tier;
    }
}

/* Tries every step under key (already in ctx->kb) whose time window holds
 * the finding, at the given tier. */
static void probe(ctx *x, size_t fi, size_t klen, int tier, const char *url)
{
    const sfind *f = &x->finds[fi];
    const ient *en = imap_get(&x->idx, x->kb, klen);
    int64_t lo_start, hi_start;
    size_t lo, hi;

    if (en == NULL)
        return;
    /* detected in [start - slack, start + window] <=> start in
     * [detected - window, detected + slack]. */
    lo_start = f->detected - x->c->window_ms;
    hi_start = f->detected + SCORE_CLOCK_SLACK_MS;
    lo = 0;
    hi = en->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (x->steps[en->v[mid]].start < lo_start)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < en->n; lo++) {
        uint32_t si = en->v[lo];
        const sstep *s = &x->steps[si];
        if (s->start > hi_start)
            break;
        if (x->stamp[si] == fi + 1 && x->ttier[si] >= tier)
            continue;
        switch (x->kb[0]) {
        case 'f':
            if (flow_match(f, s) == NULL)
                continue;
            break;
        case 'h':
            if (!technique_related(f->technique, s->technique))
                continue;
            break;
        case 'u':
            if (!url_in_step(url, s))
                continue;
            break;
        default:
            break;
        }
        consider(x, fi, si, tier);
    }
}

static void probe_value(ctx *x, size_t fi, char type, const char *v, int lower, int tier)
{
    size_t n = strlen(v), o, b;
    long k;
    if (n == 0)
        return;
    if (type == 'u') {
        url_parts(v, &o, &b);
        n = o;
    }
    k = mkkey(x, type, v, n, lower);
    if (k < 0) {
        x->oom = 1;
        return;
    }
    probe(x, fi, (size_t)k, tier, v);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t p = *(const uint32_t *)a, q = *(const uint32_t *)b;
    return p < q ? -1 : p > q;
}

static int match_finding(ctx *x, size_t fi)
{
    sfind *f = &x->finds[fi];
    size_t k, m;

    x->ntmp = 0;
    f->m_off = x->nmatches;
    f->m_n = 0;
    f->best_tier = TIER_NONE;
    if (f->label == LABEL_DUPLICATE)
        return 0;
    if (f->cid != NULL)
        probe_value(x, fi, 'c', f->cid, 0, TIER_FLOW);
    if (f->fsrc != NULL && f->fdst != NULL) {
        const char *a = strcmp(f->fsrc, f->fdst) <= 0 ? f->fsrc : f->fdst;
        const char *b = a == f->fsrc ? f->fdst : f->fsrc;
        char pair[256];
        snprintf(pair, sizeof(pair), "%s|%s", a, b);
        probe_value(x, fi, 'f', pair, 0, TIER_FLOW);
    }
    if (f->technique != NULL)
        for (m = 0; m < json_array_size(f->hosts); m++)
            probe_value(x, fi, 'h', json_string_value(json_array_get(f->hosts, m)), 1,
                        TIER_HT);
    for (k = 0; k < N_IND; k++) {
        const json_t *a = json_object_get(f->ind, ind_keys[k]);
        int lower = ind_type[k] != 'i' && ind_type[k] != 'p';
        for (m = 0; m < json_array_size(a); m++)
            probe_value(x, fi, ind_type[k], json_string_value(json_array_get(a, m)), lower,
                        TIER_IND);
    }
    if (f->fsrc != NULL)
        probe_value(x, fi, 'i', f->fsrc, 0, TIER_IND);
    if (f->fdst != NULL)
        probe_value(x, fi, 'i', f->fdst, 0, TIER_IND);
    if (x->oom)
        return -1;

    qsort(x->tmp, x->ntmp, sizeof(*x->tmp), cmp_u32);
    if (x->nmatches + x->ntmp > x->cmatches) {
        size_t nc = (x->nmatches + x->ntmp) * 2 + 64;
        smatch *q = realloc(x->matches, nc * sizeof(*q));
        if (q == NULL)
            return -1;
        x->matches = q;
        x->cmatches = nc;
    }
    for (m = 0; m < x->ntmp; m++) {
        smatch *sm = &x->matches[x->nmatches++];
        sm->step = x->tmp[m];
        sm->tier = x->ttier[x->tmp[m]];
        if (sm->tier > f->best_tier)
            f->best_tier = sm->tier;
    }
    f->m_n = x->ntmp;
    return 0;
}

/* Whether finding a beats finding b for a step (tier, detected, id, order). */
static int finding_better(const sfind *a, int ta, const sfind *b, int tb)
{
    if (ta != tb)
        return ta > tb;
    if (a->detected != b->detected)
        return a->detected < b->detected;
    if (a->id != b->id)
        return a->id < b->id;
    return a->idx < b->idx;
}

/* How the credited finding matched its step, for the reason text (the
 * tier's criterion checked again on this one pair). */
static void describe_match(const sfind *f, const sstep *s, int tier, char *b, size_t n)
{
    size_t k, m;
    if (tier == TIER_FLOW) {
        if (f->cid != NULL)
            for (k = 0; k < s->nflows; k++)
                if (s->flows[k].cid != NULL && strcmp(s->flows[k].cid, f->cid) == 0) {
                    snprintf(b, n, "community-id %.6s\xe2\x80\xa6", f->cid);
                    return;
                }
        if (f->fsrc != NULL && f->fdst != NULL && flow_match(f, s) != NULL) {
            char sp[16] = "*", dp[16] = "*";
            if (f->fsport)
                snprintf(sp, sizeof(sp), "%lld", (long long)f->fsport);
            if (f->fdport)
                snprintf(dp, sizeof(dp), "%lld", (long long)f->fdport);
            snprintf(b, n, "flow %s %s:%s -> %s:%s", f->fproto ? f->fproto : "*", f->fsrc, sp,
                     f->fdst, dp);
            return;
        }
    } else if (tier == TIER_HT) {
        const char *hs[4] = { s->actor, s->target, s->actor_addr, s->target_addr };
        for (m = 0; m < json_array_size(f->hosts); m++) {
            const char *h = json_string_value(json_array_get(f->hosts, m));
            for (k = 0; k < 4; k++)
                if (hs[k] != NULL && strcasecmp(h, hs[k]) == 0) {
                    snprintf(b, n, "host %s and technique %s", h, f->technique);
                    return;
                }
        }
    } else if (tier == TIER_IND) {
        /* Rebuild this step's one-step sets the slow way: it is one pair. */
        for (k = 0; k < N_IND; k++) {
            const json_t *fa = json_object_get(f->ind, ind_keys[k]);
            const json_t *sa = json_object_get(s->artefacts, ind_keys[k]);
            for (m = 0; m < json_array_size(fa); m++) {
                const char *v = json_string_value(json_array_get(fa, m));
                size_t q;
                if (ind_type[k] == 'u') {
                    if (url_in_step(v, s)) {
                        snprintf(b, n, "indicator URL %s", v);
                        return;
                    }
                    continue;
                }
                for (q = 0; q < json_array_size(sa); q++) {
                    const char *w = json_string_value(json_array_get(sa, q));
                    int eq = ind_type[k] == 'i' || ind_type[k] == 'p' ? strcmp(v, w) == 0
                                                                     : strcasecmp(v, w) == 0;
                    if (!eq && ind_type[k] == 'd') {
                        size_t lv = strlen(v), lw = strlen(w);
                        if (lv > 0 && v[lv - 1] == '.')
                            lv--;
                        if (lw > 0 && w[lw - 1] == '.')
                            lw--;
                        eq = lv == lw && strncasecmp(v, w, lv) == 0;
                    }
                    if (eq) {
                        snprintf(b, n, "indicator %s %s", ind_label[k], v);
                        return;
                    }
                }
                if (ind_type[k] == 'i')
                    for (q = 0; q < s->nflows; q++)
                        if ((s->flows[q].src && strcmp(s->flows[q].src, v) == 0) ||
                            (s->flows[q].dst && strcmp(s->flows[q].dst, v) == 0)) {
                            snprintf(b, n, "indicator address %s", v);
                            return;
                        }
                if (ind_type[k] == 'd') {
                    const json_t *su = json_object_get(s->artefacts, "urls");
                    for (q = 0; q < json_array_size(su); q++) {
                        const char *u = json_string_value(json_array_get(su, q));
                        const char *h = strstr(u, "://");
                        size_t lv = strlen(v);
                        h = h ? h + 3 : u;
                        if (lv > 0 && v[lv - 1] == '.')
                            lv--;
                        if (strcspn(h, ":/?#") == lv && strncasecmp(h, v, lv) == 0) {
                            snprintf(b, n, "indicator domain %s", v);
                            return;
                        }
                    }
                }
            }
        }
        {
            const char *fa[2] = { f->fsrc, f->fdst };
            for (m = 0; m < 2; m++) {
                if (fa[m] == NULL)
                    continue;
                for (k = 0; k < s->nflows; k++)
                    if ((s->flows[k].src && strcmp(s->flows[k].src, fa[m]) == 0) ||
                        (s->flows[k].dst && strcmp(s->flows[k].dst, fa[m]) == 0))
                        break;
                if (k < s->nflows) {
                    snprintf(b, n, "flow address %s", fa[m]);
                    return;
                }
                {
                    const json_t *ips = json_object_get(s->artefacts, "ips");
                    for (k = 0; k < json_array_size(ips); k++)
                        if (strcmp(json_string_value(json_array_get(ips, k)), fa[m]) == 0) {
                            snprintf(b, n, "flow address %s", fa[m]);
                            return;
                        }
                }
            }
        }
    }
    snprintf(b, n, "%s", tier_names[tier] ? tier_names[tier] : "?");
}

/* ------------------------------------------------------------------ */
/* Parsing                                                             */

static int parse_steps(ctx *x, const json_t *arr)
{
    char p[64], q[96];
    size_t i, k;

    x->nsteps = json_array_size(arr);
    x->steps = calloc(x->nsteps ? x->nsteps : 1, sizeof(*x->steps));
    if (x->steps == NULL)
        return fail(&x->e, "out of memory");
    for (i = 0; i < x->nsteps; i++) {
        const json_t *o = json_array_get(arr, i), *flows, *c2, *via;
        sstep *s = &x->steps[i];
        int seen_any = 0;
        int64_t ignored;

        s->best = -1;
        snprintf(p, sizeof(p), "steps[%zu]", i);
        if (!json_is_object(o))
            return fail(&x->e, "%s: expected an object", p);
        if (get_str(&x->e, o, p, "step", 1, &s->name) < 0 ||
            get_str(&x->e, o, p, "outcome", 1, &s->outcome) < 0 ||
            get_str(&x->e, o, p, "technique", 0, &s->technique) < 0 ||
            get_str(&x->e, o, p, "actor", 0, &s->actor) < 0 ||
            get_str(&x->e, o, p, "target", 0, &s->target) < 0 ||
            get_str(&x->e, o, p, "actor_addr", 0, &s->actor_addr) < 0 ||
            get_str(&x->e, o, p, "target_addr", 0, &s->target_addr) < 0 ||
            get_int(&x->e, o, p, "end_ms", 0, 0, &ignored) < 0 ||
            get_num(&x->e, o, p, "points", 0, 1.0, &s->weight) < 0 ||
            get_arr(&x->e, o, p, "flows", &flows) < 0 ||
            get_obj(&x->e, o, p, "artefacts", &s->artefacts) < 0 ||
            get_obj(&x->e, o, p, "c2", &c2) < 0)
            return -1;
        if (strcmp(s->outcome, "succeeded") != 0 && strcmp(s->outcome, "running") != 0 &&
            strcmp(s->outcome, "failed") != 0 && strcmp(s->outcome, "error") != 0 &&
            strcmp(s->outcome, "skipped") != 0 && strcmp(s->outcome, "timeout") != 0)
            return fail(&x->e,
                        "%s.outcome: expected succeeded, running, failed, error, skipped or "
                        "timeout", p);
        if (s->weight < 0)
            return fail(&x->e, "%s.points: expected a number >= 0", p);
        snprintf(q, sizeof(q), "%s.artefacts", p);
        if (s->artefacts != NULL && check_indicators(&x->e, s->artefacts, q) < 0)
            return -1;
        s->nflows = json_array_size(flows);
        s->flows = calloc(s->nflows ? s->nflows : 1, sizeof(*s->flows));
        if (s->flows == NULL)
            return fail(&x->e, "out of memory");
        for (k = 0; k < s->nflows; k++) {
            const json_t *fo = json_array_get(flows, k);
            sflow *f = &s->flows[k];
            int seen;
            snprintf(q, sizeof(q), "%s.flows[%zu]", p, k);
            if (!json_is_object(fo))
                return fail(&x->e, "%s: expected an object", q);
            if (get_str(&x->e, fo, q, "proto", 0, &f->proto) < 0 ||
                get_str(&x->e, fo, q, "src", 0, &f->src) < 0 ||
                get_str(&x->e, fo, q, "dst", 0, &f->dst) < 0 ||
                get_str(&x->e, fo, q, "community_id", 0, &f->cid) < 0 ||
                get_port(&x->e, fo, q, "sport", &f->sport) < 0 ||
                get_port(&x->e, fo, q, "dport", &f->dport) < 0 ||
                get_bool(&x->e, fo, q, "seen", 0, &seen) < 0)
                return -1;
            seen_any |= seen;
        }
        s->landed = strcmp(s->outcome, "succeeded") == 0 || strcmp(s->outcome, "running") == 0 ||
                    seen_any;
        if (get_int(&x->e, o, p, "start_ms", s->landed, 0, &s->start) < 0)
            return -1;
        if (c2 != NULL) {
            snprintf(q, sizeof(q), "%s.c2", p);
            s->has_c2 = 1;
            if (get_str(&x->e, c2, q, "addr", 1, &s->c2_addr) < 0 ||
                get_port(&x->e, c2, q, "port", &s->c2_port) < 0 ||
                get_str(&x->e, c2, q, "from", 0, &s->c2_from) < 0 ||
                get_obj(&x->e, c2, q, "via", &via) < 0)
                return -1;
            if (s->c2_from == NULL)
                s->c2_from = s->actor_addr;
            if (via != NULL) {
                snprintf(q, sizeof(q), "%s.c2.via", p);
                if (get_str(&x->e, via, q, "addr", 1, &s->via_addr) < 0 ||
                    get_port(&x->e, via, q, "port", &s->via_port) < 0)
                    return -1;
            }
        }
    }
    return 0;
}

static int cmp_find_order(const void *a, const void *b)
{
    const int64_t *p = a, *q = b;
    if (p[0] != q[0])
        return p[0] < q[0] ? -1 : 1;
    return p[1] < q[1] ? -1 : p[1] > q[1];
}

static int parse_findings(ctx *x, const json_t *arr)
{
    char p[64], q[96];
    int64_t *ord = NULL;
    size_t i;
    int rc = -1;

    x->nfinds = json_array_size(arr);
    x->finds = calloc(x->nfinds ? x->nfinds : 1, sizeof(*x->finds));
    x->forder = calloc(x->nfinds ? x->nfinds : 1, sizeof(*x->forder));
    ord = malloc((x->nfinds ? x->nfinds : 1) * 2 * sizeof(*ord));
    if (x->finds == NULL || x->forder == NULL || ord == NULL) {
        free(ord);
        return fail(&x->e, "out of memory");
    }
    for (i = 0; i < x->nfinds; i++) {
        const json_t *o = json_array_get(arr, i), *flow, *lab;
        sfind *f = &x->finds[i];
        int64_t submitted;

        f->idx = i;
        snprintf(p, sizeof(p), "findings[%zu]", i);
        if (!json_is_object(o)) {
            fail(&x->e, "%s: expected an object", p);
            goto cleanup;
        }
        if (get_int(&x->e, o, p, "id", 1, 0, &f->id) < 0 ||
            get_int(&x->e, o, p, "submitted_ms", 0, INT64_MIN, &submitted) < 0 ||
            get_int(&x->e, o, p, "detected_ms", submitted == INT64_MIN, submitted,
                    &f->detected) < 0 ||
            get_arr(&x->e, o, p, "hosts", &f->hosts) < 0 ||
            get_obj(&x->e, o, p, "indicators", &f->ind) < 0 ||
            get_obj(&x->e, o, p, "flow", &flow) < 0 ||
            get_str(&x->e, o, p, "community_id", 0, &f->cid) < 0 ||
            get_str(&x->e, o, p, "technique", 0, &f->technique) < 0)
            goto cleanup;
        snprintf(q, sizeof(q), "%s.hosts", p);
        if (check_strings(&x->e, f->hosts, q) < 0)
            goto cleanup;
        snprintf(q, sizeof(q), "%s.indicators", p);
        if (f->ind != NULL && check_indicators(&x->e, f->ind, q) < 0)
            goto cleanup;
        if (flow != NULL) {
            snprintf(q, sizeof(q), "%s.flow", p);
            if (get_str(&x->e, flow, q, "proto", 0, &f->fproto) < 0 ||
                get_str(&x->e, flow, q, "src", 0, &f->fsrc) < 0 ||
                get_str(&x->e, flow, q, "dst", 0, &f->fdst) < 0 ||
                get_port(&x->e, flow, q, "sport", &f->fsport) < 0 ||
                get_port(&x->e, flow, q, "dport", &f->fdport) < 0)
                goto cleanup;
        }
        lab = field(o, "label");
        if (lab == NULL)
            f->label = LABEL_NONE;
        else if (json_is_string(lab) && strcmp(json_string_value(lab), "duplicate") == 0)
            f->label = LABEL_DUPLICATE;
        else if (json_is_string(lab) && strcmp(json_string_value(lab), "benign") == 0)
            f->label = LABEL_BENIGN;
        else if (json_is_string(lab) && strcmp(json_string_value(lab), "unscripted") == 0)
            f->label = LABEL_UNSCRIPTED;
        else {
            fail(&x->e, "%s.label: expected null, \"duplicate\", \"benign\" or \"unscripted\"",
                 p);
            goto cleanup;
        }
        ord[2 * i] = f->id;
        ord[2 * i + 1] = (int64_t)i;
    }
    qsort(ord, x->nfinds, 2 * sizeof(*ord), cmp_find_order);
    for (i = 0; i < x->nfinds; i++)
        x->forder[i] = (size_t)ord[2 * i + 1];
    rc = 0;
cleanup:
    free(ord);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Axes                                                                */

typedef struct axis {
    json_t *items;
    double points, max;
} axis;

/* Appends {"points","reason"} (plus the fields of extra, stolen) and the
 * reason to the flat list. */
static int add_item(axis *a, json_t *reasons, double pts, json_t *extra, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int add_item(axis *a, json_t *reasons, double pts, json_t *extra, const char *fmt, ...)
{
    char body[1024], line[1100], ps[32];
    json_t *it;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    fmt_points(ps, sizeof(ps), pts);
    snprintf(line, sizeof(line), "%s %s", ps, body);
    it = extra ? extra : json_object();
    if (it == NULL || json_object_set_new(it, "points", jr1(pts)) < 0 ||
        json_object_set_new(it, "reason", json_string(line)) < 0 ||
        json_array_append_new(a->items, it) < 0) {
        json_decref(it);
        return -1;
    }
    return json_array_append_new(reasons, json_string(line));
}

static int detection_axis(ctx *x, axis *a, json_t *reasons, json_t *fpo, size_t *n_fp)
{
    const score_config *c = x->c;
    double total_w = 0, credit = 0, fp_total = 0;
    char how[256], dur[32];
    size_t i, m;

    for (i = 0; i < x->nsteps; i++)
        if (x->steps[i].landed)
            total_w += x->steps[i].weight;
    /* Credit: every unlabelled finding competes for the steps it matches. */
    for (i = 0; i < x->nfinds; i++) {
        const sfind *f = &x->finds[i];
        if (f->label != LABEL_NONE)
            continue;
        for (m = 0; m < f->m_n; m++) {
            const smatch *sm = &x->matches[f->m_off + m];
            sstep *s = &x->steps[sm->step];
            if (s->best < 0 || finding_better(f, sm->tier, &x->finds[s->best], s->best_tier)) {
                s->best = (long)i;
                s->best_tier = sm->tier;
            }
        }
    }
    for (i = 0; i < x->nsteps; i++) {
        sstep *s = &x->steps[i];
        if (!s->landed) {
            if (add_item(a, reasons, 0, NULL,
                         "detection of step %s: not scored: never landed (outcome %s)",
                         s->name, s->outcome) < 0)
                return -1;
            continue;
        }
        s->share = total_w > 0 ? c->w_detection * s->weight / total_w : 0;
        if (s->best < 0) {
            if (add_item(a, reasons, 0, NULL, "detection of step %s: missed", s->name) < 0)
                return -1;
            continue;
        }
        {
            const sfind *f = &x->finds[s->best];
            int64_t d = f->detected - s->start;
            double t = score_timeliness(c, d < 0 ? 0 : d);
            char extra[96] = "";
            s->credit = s->share * tier_mult[s->best_tier] * t;
            credit += s->credit;
            describe_match(f, s, s->best_tier, how, sizeof(how));
            if (d < 0) {
                fmt_dur(dur, sizeof(dur), -d);
                snprintf(how + strlen(how), sizeof(how) - strlen(how), ", %s before start", dur);
            } else {
                fmt_dur(dur, sizeof(dur), d);
                snprintf(how + strlen(how), sizeof(how) - strlen(how), ", %s after start", dur);
            }
            if (s->best_tier != TIER_FLOW || t < 1.0)
                snprintf(extra, sizeof(extra), " (of %.1f: %s x%.1f, timeliness %.2f)",
                         r1(s->share), tier_names[s->best_tier], tier_mult[s->best_tier], t);
            if (add_item(a, reasons, s->credit, NULL,
                         "detection of step %s: finding #%lld matched by %s%s", s->name,
                         (long long)f->id, how, extra) < 0)
                return -1;
        }
    }
    /* False positives, in id order, up to the cap. */
    *n_fp = 0;
    for (i = 0; i < x->nfinds; i++) {
        sfind *f = &x->finds[x->forder[i]];
        double pen;
        f->fp = f->label == LABEL_BENIGN || (f->label == LABEL_NONE && f->m_n == 0);
        if (!f->fp)
            continue;
        (*n_fp)++;
        pen = c->fp_penalty;
        if (fp_total + pen > c->fp_cap)
            pen = c->fp_cap - fp_total > 0 ? c->fp_cap - fp_total : 0;
        fp_total += pen;
        f->penalty = pen;
        if (add_item(a, reasons, -pen, NULL, "false positive: finding #%lld %s%s",
                     (long long)f->id,
                     f->label == LABEL_BENIGN ? "labelled benign by an instructor"
                                              : "matches no step",
                     pen < c->fp_penalty ? " (penalty capped)" : "") < 0)
            return -1;
    }
    a->max = c->w_detection;
    a->points = credit - fp_total;
    if (a->points < 0) {
        if (add_item(a, reasons, -a->points, NULL,
                     "false positives beyond the detection credit are not taken "
                     "(the axis never goes below 0)") < 0)
            return -1;
        a->points = 0;
    }
    if (json_object_set_new(fpo, "count", json_integer((json_int_t)*n_fp)) < 0 ||
        json_object_set_new(fpo, "points", jr1(-fp_total)) < 0)
        return -1;
    return 0;
}

typedef struct presult {
    int64_t ts;
    size_t idx;
    int ok;
} presult;

static int cmp_presult(const void *a, const void *b)
{
    const presult *p = a, *q = b;
    if (p->ts != q->ts)
        return p->ts < q->ts ? -1 : 1;
    return p->idx < q->idx ? -1 : p->idx > q->idx;
}

/* One check: its credit, outages and reason. */
static int check_item(ctx *x, const json_t *o, size_t ci, double share, axis *a,
                      json_t *reasons)
{
    char p[64], q[96], ds[32], ls[32], text[512];
    const char *id;
    const json_t *res;
    presult *r = NULL;
    json_t *outs = NULL, *extra = NULL;
    size_t i, n = 0, ok = 0, nout = 0, restored = 0;
    int64_t interval, out_start = 0, longest = 0, total = 0, last_len = 0;
    int in_out = 0, rc = -1;
    double sla, up = 0, credit = 0;

    snprintf(p, sizeof(p), "checks[%zu]", ci);
    if (!json_is_object(o))
        return fail(&x->e, "%s: expected an object", p);
    if (get_str(&x->e, o, p, "id", 1, &id) < 0 ||
        get_num(&x->e, o, p, "sla", 0, 0.95, &sla) < 0 ||
        get_int(&x->e, o, p, "interval_ms", 0, 0, &interval) < 0 ||
        get_arr(&x->e, o, p, "results", &res) < 0)
        return -1;
    if (sla < 0 || sla > 1)
        return fail(&x->e, "%s.sla: expected a number from 0 to 1", p);
    r = calloc(json_array_size(res) + 1, sizeof(*r));
    outs = json_array();
    if (r == NULL || outs == NULL) {
        fail(&x->e, "out of memory");
        goto cleanup;
    }
    for (i = 0; i < json_array_size(res); i++) {
        const json_t *ro = json_array_get(res, i);
        const char *detail;
        snprintf(q, sizeof(q), "%s.results[%zu]", p, i);
        if (!json_is_object(ro)) {
            fail(&x->e, "%s: expected an object", q);
            goto cleanup;
        }
        if (get_int(&x->e, ro, q, "ts_ms", 1, 0, &r[n].ts) < 0 ||
            get_bool(&x->e, ro, q, "ok", 1, &r[n].ok) < 0 ||
            get_str(&x->e, ro, q, "detail", 0, &detail) < 0)
            goto cleanup;
        if (r[n].ts > x->now)
            continue; /* not yet, as far as this score is concerned */
        r[n].idx = i;
        n++;
    }
    qsort(r, n, sizeof(*r), cmp_presult);
    for (i = 0; i < n; i++) {
        ok += r[i].ok != 0;
        if (!r[i].ok && !in_out) {
            in_out = 1;
            out_start = r[i].ts;
        } else if (r[i].ok && in_out) {
            int64_t len = r[i].ts - out_start;
            json_t *oo = json_pack("{sIsIsI}", "start_ms", (json_int_t)out_start, "end_ms",
                                   (json_int_t)r[i].ts, "duration_ms", (json_int_t)len);
            if (oo == NULL || json_array_append_new(outs, oo) < 0) {
                nomem(&x->e);
                goto cleanup;
            }
            in_out = 0;
            nout++;
            restored++;
            total += len;
            last_len = len;
            if (len > longest)
                longest = len;
        }
    }
    if (in_out) {
        int64_t len = x->now - out_start;
        json_t *oo = json_pack("{sIsnsI}", "start_ms", (json_int_t)out_start, "end_ms",
                               "duration_ms", (json_int_t)len);
        if (oo == NULL || json_array_append_new(outs, oo) < 0) {
            nomem(&x->e);
            goto cleanup;
        }
        nout++;
        total += len;
        last_len = len;
        if (len > longest)
            longest = len;
    }
    if (n > 0) {
        up = (double)ok / (double)n;
        credit = sla > 0 ? (up / sla < 1.0 ? up / sla : 1.0) : 0;
    }
    /* "91% up": rounded down, so that 99.6% never reads as 100%. */
    if (n == 0)
        snprintf(text, sizeof(text), "availability check %s: no probe result yet", id);
    else
        snprintf(text, sizeof(text), "availability check %s: %d%% up", id,
                 (int)floor(up * 100.0 + 1e-9));
    if (sla > 0)
        snprintf(text + strlen(text), sizeof(text) - strlen(text), " (SLA %g%%)", sla * 100.0);
    else
        snprintf(text + strlen(text), sizeof(text) - strlen(text),
                 " (SLA 0: informative, not scored)");
    fmt_dur(ds, sizeof(ds), total);
    fmt_dur(ls, sizeof(ls), longest);
    if (n > 0 && nout == 0)
        snprintf(text + strlen(text), sizeof(text) - strlen(text), ", no outage");
    else if (n > 0 && nout == 1 && restored == 1)
        snprintf(text + strlen(text), sizeof(text) - strlen(text),
                 ", 1 outage of %s, restored %s after impact", ds, ds);
    else if (n > 0 && nout == 1)
        snprintf(text + strlen(text), sizeof(text) - strlen(text),
                 ", 1 outage, down for %s and not restored", ds);
    else if (n > 0) {
        snprintf(text + strlen(text), sizeof(text) - strlen(text),
                 ", %zu outages totalling %s (longest %s)", nout, ds, ls);
        if (restored == nout)
            snprintf(text + strlen(text), sizeof(text) - strlen(text),
                     ", each restored within %s of impact", ls);
        else {
            fmt_dur(ls, sizeof(ls), last_len);
            snprintf(text + strlen(text), sizeof(text) - strlen(text),
                     ", down again for %s and not restored", ls);
        }
    }
    extra = json_pack("{sssOsfsf}", "check", id, "outages", outs, "up",
                      round(up * 1000.0) / 1000.0, "sla", sla);
    if (extra == NULL) {
        nomem(&x->e);
        goto cleanup;
    }
    if (add_item(a, reasons, share * credit, extra, "%s", text) < 0) {
        extra = NULL; /* add_item released it */
        nomem(&x->e);
        goto cleanup;
    }
    extra = NULL;
    a->points += share * credit;
    rc = 0;
cleanup:
    json_decref(extra);
    json_decref(outs);
    free(r);
    return rc;
}

static int streq(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}

/* One containment item for a succeeded step with a C2. */
static int containment_item(ctx *x, const sstep *s, const json_t *wire, double share, axis *a,
                            json_t *reasons)
{
    const score_config *c = x->c;
    int64_t last = INT64_MIN, quiet;
    char c2[96], d1[32], d2[32];
    size_t i;
    int seen = 0;
    double credit = 0;
    json_t *extra;

    snprintf(c2, sizeof(c2), "C2 %s:%lld", s->c2_addr, (long long)s->c2_port);
    for (i = 0; i < json_array_size(wire); i++) {
        const json_t *w = json_array_get(wire, i);
        const char *src = json_string_value(json_object_get(w, "src"));
        const char *dst = json_string_value(json_object_get(w, "dst"));
        int64_t dport = json_integer_value(json_object_get(w, "dport"));
        int64_t first = json_integer_value(json_object_get(w, "first"));
        int64_t wl = json_integer_value(json_object_get(w, "last"));
        int hit = (streq(dst, s->c2_addr) && dport == s->c2_port) ||
                  (s->via_addr != NULL && streq(src, s->c2_from) && streq(dst, s->via_addr) &&
                   dport == s->via_port);
        if (!hit || wl < s->start - SCORE_CLOCK_SLACK_MS || first > x->now)
            continue;
        if (wl > x->now)
            wl = x->now;
        seen = 1;
        if (wl > last)
            last = wl;
    }
    if (!seen)
        last = s->start;
    quiet = x->now - last;
    extra = json_pack("{sssssbso}", "step", s->name, "c2", c2 + 3, "contained",
                      quiet >= c->c2_quiet_ms, "contained_ms",
                      quiet >= c->c2_quiet_ms ? json_integer((json_int_t)last) : json_null());
    if (extra == NULL)
        return nomem(&x->e);
    if (seen && quiet >= c->c2_quiet_ms) {
        int64_t d = last - s->start;
        credit = score_timeliness(c, d < 0 ? 0 : d);
        fmt_dur(d1, sizeof(d1), d < 0 ? 0 : d);
        fmt_dur(d2, sizeof(d2), quiet);
        if (add_item(a, reasons, share * credit, extra,
                     "containment of %s (step %s): contained %s after the step started, "
                     "quiet for %s%s",
                     c2, s->name, d1, d2,
                     credit == 0 ? " (after the window)" : "") < 0)
            return fail(&x->e, "out of memory");
    } else if (seen) {
        fmt_dur(d1, sizeof(d1), quiet);
        if (add_item(a, reasons, 0, extra,
                     "containment of %s (step %s): still beaconing, last seen %s ago", c2,
                     s->name, d1) < 0)
            return fail(&x->e, "out of memory");
    } else if (quiet >= c->c2_quiet_ms) {
        credit = score_timeliness(c, 0);
        if (add_item(a, reasons, share * credit, extra,
                     "containment of %s (step %s): no beacon seen on the wire since the "
                     "step started; counted as contained at the start (is the capture "
                     "running?)",
                     c2, s->name) < 0)
            return fail(&x->e, "out of memory");
    } else {
        fmt_dur(d1, sizeof(d1), quiet < 0 ? 0 : quiet);
        fmt_dur(d2, sizeof(d2), c->c2_quiet_ms);
        if (add_item(a, reasons, 0, extra,
                     "containment of %s (step %s): no beacon seen yet, %s since the step "
                     "started (contained after %s quiet)",
                     c2, s->name, d1, d2) < 0)
            return fail(&x->e, "out of memory");
    }
    a->points += share * credit;
    return 0;
}

static int availability_axis(ctx *x, const json_t *in, axis *a, json_t *reasons)
{
    const json_t *checks, *wire;
    size_t i, nitems = 0;
    double share;
    char p[64];

    a->max = x->c->w_availability;
    if (get_arr(&x->e, in, "", "checks", &checks) < 0 ||
        get_arr(&x->e, in, "", "wire_flows", &wire) < 0)
        return -1;
    /* Validate the wire flows once, before any use. */
    for (i = 0; i < json_array_size(wire); i++) {
        const json_t *w = json_array_get(wire, i);
        const char *sv;
        int64_t iv;
        snprintf(p, sizeof(p), "wire_flows[%zu]", i);
        if (!json_is_object(w))
            return fail(&x->e, "%s: expected an object", p);
        if (get_str(&x->e, w, p, "src", 1, &sv) < 0 || get_str(&x->e, w, p, "dst", 1, &sv) < 0 ||
            get_port(&x->e, w, p, "sport", &iv) < 0 || get_port(&x->e, w, p, "dport", &iv) < 0 ||
            get_int(&x->e, w, p, "first", 1, 0, &iv) < 0 ||
            get_int(&x->e, w, p, "last", 1, 0, &iv) < 0 ||
            get_int(&x->e, w, p, "packets", 0, 0, &iv) < 0)
            return -1;
    }
    for (i = 0; i < json_array_size(checks); i++) {
        const json_t *sla = json_object_get(json_array_get(checks, i), "sla");
        /* An absent sla is the format's default, 0.95. */
        if (sla == NULL || json_is_null(sla) || !json_is_number(sla) ||
            json_number_value(sla) > 0)
            nitems++;
    }
    for (i = 0; i < x->nsteps; i++)
        if (x->steps[i].has_c2 && strcmp(x->steps[i].outcome, "succeeded") == 0)
            nitems++;
    share = nitems ? a->max / (double)nitems : 0;
    for (i = 0; i < json_array_size(checks); i++) {
        const json_t *sla = json_object_get(json_array_get(checks, i), "sla");
        int scored = sla == NULL || json_is_null(sla) || !json_is_number(sla) ||
                     json_number_value(sla) > 0;
        if (check_item(x, json_array_get(checks, i), i, scored ? share : 0, a, reasons) < 0)
            return -1;
    }
    for (i = 0; i < x->nsteps; i++)
        if (x->steps[i].has_c2 && strcmp(x->steps[i].outcome, "succeeded") == 0 &&
            containment_item(x, &x->steps[i], wire, share, a, reasons) < 0)
            return -1;
    if (nitems == 0 &&
        add_item(a, reasons, 0, NULL, "availability: no check and no C2 step to score yet") < 0)
        return fail(&x->e, "out of memory");
    return 0;
}

static int grade_fields(ctx *x, const json_t *g, const char *p, double *pts, double *max)
{
    if (!json_is_object(g))
        return fail(&x->e, "%s: expected an object", p);
    if (get_num(&x->e, g, p, "points", 1, 0, pts) < 0 ||
        get_num(&x->e, g, p, "max", 1, 0, max) < 0)
        return -1;
    if (*max < 0)
        return fail(&x->e, "%s.max: expected a number >= 0", p);
    if (*pts < 0 || *pts > *max)
        return fail(&x->e, "%s.points: expected a number from 0 to max (%g)", p, *max);
    return 0;
}

static int reports_axis(ctx *x, const json_t *grades, axis *a, json_t *reasons)
{
    const json_t *arr;
    double sp = 0, sm = 0, pts, max;
    size_t i;
    char p[64];

    a->max = x->c->w_reports;
    if (get_arr(&x->e, grades ? grades : json_null(), "grades", "reports", &arr) < 0)
        return -1;
    for (i = 0; i < json_array_size(arr); i++) {
        snprintf(p, sizeof(p), "grades.reports[%zu]", i);
        if (grade_fields(x, json_array_get(arr, i), p, &pts, &max) < 0)
            return -1;
        sp += pts;
        sm += max;
    }
    if (sm <= 0)
        return add_item(a, reasons, 0, NULL, "reports: not graded yet") < 0
                   ? fail(&x->e, "out of memory")
                   : 0;
    for (i = 0; i < json_array_size(arr); i++) {
        const json_t *g = json_array_get(arr, i), *id = json_object_get(g, "id");
        const char *why = json_string_value(json_object_get(g, "reason"));
        char ids[64];
        pts = json_number_value(json_object_get(g, "points"));
        max = json_number_value(json_object_get(g, "max"));
        if (json_is_integer(id))
            snprintf(ids, sizeof(ids), "#%lld", (long long)json_integer_value(id));
        else if (json_is_string(id))
            snprintf(ids, sizeof(ids), "%s", json_string_value(id));
        else
            snprintf(ids, sizeof(ids), "%zu", i + 1);
        if (add_item(a, reasons, a->max * pts / sm, NULL, "report %s: %g/%g%s%s", ids, pts,
                     max, why ? ": " : "", why ? why : "") < 0)
            return fail(&x->e, "out of memory");
    }
    a->points = a->max * sp / sm;
    return 0;
}

static int injects_axis(ctx *x, const json_t *grades, const json_t *isteps, axis *a,
                        json_t *reasons)
{
    const json_t *arr;
    double sp = 0, sm = 0, pts, max;
    size_t i, j;
    char p[64], d1[32];

    a->max = x->c->w_injects;
    if (get_arr(&x->e, grades ? grades : json_null(), "grades", "injects", &arr) < 0)
        return -1;
    for (i = 0; i < json_array_size(arr); i++) {
        const char *step;
        snprintf(p, sizeof(p), "grades.injects[%zu]", i);
        if (grade_fields(x, json_array_get(arr, i), p, &pts, &max) < 0 ||
            get_str(&x->e, json_array_get(arr, i), p, "step", 1, &step) < 0)
            return -1;
        sp += pts;
        sm += max;
    }
    /* Validate the inject steps and add the missed ones to the max. */
    for (i = 0; i < json_array_size(isteps); i++) {
        const json_t *o = json_array_get(isteps, i);
        const char *step;
        int64_t start, deadline, responded;
        double ip;
        snprintf(p, sizeof(p), "inject_steps[%zu]", i);
        if (!json_is_object(o))
            return fail(&x->e, "%s: expected an object", p);
        if (get_str(&x->e, o, p, "step", 1, &step) < 0 ||
            get_num(&x->e, o, p, "points", 0, 0, &ip) < 0 ||
            get_int(&x->e, o, p, "deadline_ms", 0, -1, &deadline) < 0 ||
            get_int(&x->e, o, p, "start_ms", 1, 0, &start) < 0 ||
            get_int(&x->e, o, p, "responded_ms", 0, -1, &responded) < 0)
            return -1;
        if (ip < 0)
            return fail(&x->e, "%s.points: expected a number >= 0", p);
        for (j = 0; j < json_array_size(arr); j++)
            if (streq(json_string_value(json_object_get(json_array_get(arr, j), "step")), step))
                break;
        if (j == json_array_size(arr) && field(o, "responded_ms") == NULL && deadline >= 0 &&
            x->now > start + deadline)
            sm += ip;
    }
    if (sm <= 0) {
        if (add_item(a, reasons, 0, NULL, "injects: not graded yet") < 0)
            return fail(&x->e, "out of memory");
    } else {
        for (i = 0; i < json_array_size(arr); i++) {
            const json_t *g = json_array_get(arr, i);
            const char *why = json_string_value(json_object_get(g, "reason"));
            pts = json_number_value(json_object_get(g, "points"));
            max = json_number_value(json_object_get(g, "max"));
            if (add_item(a, reasons, a->max * pts / sm, NULL, "inject %s: %g/%g%s%s",
                         json_string_value(json_object_get(g, "step")), pts, max,
                         why ? ": " : "", why ? why : "") < 0)
                return fail(&x->e, "out of memory");
        }
        a->points = a->max * sp / sm;
    }
    for (i = 0; i < json_array_size(isteps); i++) {
        const json_t *o = json_array_get(isteps, i);
        const char *step = json_string_value(json_object_get(o, "step"));
        const json_t *dl = field(o, "deadline_ms"), *rs = field(o, "responded_ms");
        int64_t start = json_integer_value(json_object_get(o, "start_ms"));
        double ip = json_number_value(json_object_get(o, "points"));
        int r;
        for (j = 0; j < json_array_size(arr); j++)
            if (streq(json_string_value(json_object_get(json_array_get(arr, j), "step")), step))
                break;
        if (j < json_array_size(arr))
            continue; /* graded: listed above */
        if (rs != NULL) {
            int64_t late = json_integer_value(rs) - start;
            fmt_dur(d1, sizeof(d1), late);
            r = add_item(a, reasons, 0, NULL, "inject %s: responded %s after it was sent%s, "
                         "not graded yet", step, d1,
                         dl && late > json_integer_value(dl) ? " (after the deadline)" : "");
        } else if (dl != NULL && x->now > start + json_integer_value(dl)) {
            r = add_item(a, reasons, 0, NULL, "inject %s: no response within deadline (0/%g)",
                         step, ip);
        } else if (dl != NULL) {
            fmt_dur(d1, sizeof(d1), start + json_integer_value(dl) - x->now);
            r = add_item(a, reasons, 0, NULL, "inject %s: awaiting a response, deadline in %s",
                         step, d1);
        } else {
            r = add_item(a, reasons, 0, NULL, "inject %s: awaiting a response (no deadline)",
                         step);
        }
        if (r < 0)
            return fail(&x->e, "out of memory");
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Output                                                              */

static json_t *axis_json(const axis *a)
{
    return json_pack("{sososO}", "points", jr1(a->points), "max", jr1(a->max), "items",
                     a->items);
}

static json_t *steps_json(const ctx *x)
{
    json_t *arr = json_array();
    size_t i;
    if (arr == NULL)
        return NULL;
    for (i = 0; i < x->nsteps; i++) {
        const sstep *s = &x->steps[i];
        const sfind *f = s->best >= 0 ? &x->finds[s->best] : NULL;
        json_t *o = json_pack(
            "{sssssbsbsososososo}", "step", s->name, "outcome", s->outcome, "landed",
            s->landed, "detected", f != NULL, "finding",
            f ? json_integer((json_int_t)f->id) : json_null(), "tier",
            f ? json_string(tier_names[s->best_tier]) : json_null(), "delay_ms",
            f ? json_integer((json_int_t)(f->detected - s->start)) : json_null(), "max",
            jr1(s->share), "credit", jr1(s->credit));
        if (o == NULL || json_object_set_new(o, "points", json_real(s->weight)) < 0 ||
            json_array_append_new(arr, o) < 0) {
            json_decref(o);
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

static json_t *findings_json(const ctx *x, size_t *tp)
{
    json_t *arr = json_array();
    size_t i, m;
    *tp = 0;
    if (arr == NULL)
        return NULL;
    for (i = 0; i < x->nfinds; i++) {
        const sfind *f = &x->finds[x->forder[i]];
        json_t *matched = json_array(), *credited = json_array(), *o;
        if (f->label == LABEL_NONE && f->m_n > 0)
            (*tp)++;
        for (m = 0; m < f->m_n; m++) {
            const smatch *sm = &x->matches[f->m_off + m];
            json_array_append_new(matched, json_string(x->steps[sm->step].name));
            if (x->steps[sm->step].best == (long)x->forder[i])
                json_array_append_new(credited, json_string(x->steps[sm->step].name));
        }
        o = json_pack("{sIsosososososbso}", "id", (json_int_t)f->id, "label",
                      label_names[f->label] ? json_string(label_names[f->label]) : json_null(),
                      "matched", matched, "credited", credited, "best_tier",
                      f->best_tier ? json_string(tier_names[f->best_tier]) : json_null(),
                      "detected_ms", json_integer((json_int_t)f->detected), "false_positive",
                      f->fp, "penalty", jr1(-f->penalty));
        if (o == NULL || json_array_append_new(arr, o) < 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

static json_t *ratio(size_t num, size_t den)
{
    return den ? json_real(round(1000.0 * (double)num / (double)den) / 1000.0) : json_null();
}

static void ctx_free(ctx *x)
{
    size_t i;
    for (i = 0; i < x->nsteps; i++)
        free(x->steps[i].flows);
    free(x->steps);
    free(x->finds);
    free(x->forder);
    free(x->matches);
    free(x->kb);
    free(x->stamp);
    free(x->ttier);
    free(x->tmp);
    imap_free(&x->idx);
}

json_t *score_team(const score_config *c, const json_t *in, char *err, size_t errlen)
{
    ctx x;
    axis ax[4];
    static const char *const axis_names[] = { "detection", "availability", "reports",
                                              "injects" };
    const json_t *steps, *finds, *grades, *isteps, *team;
    json_t *out = NULL, *reasons = NULL, *fpo = NULL, *axes = NULL, *sj = NULL, *fj = NULL;
    size_t i, n_fp = 0, tp = 0, landed = 0, detected = 0;
    double total = 0, max = 0;

    memset(&x, 0, sizeof(x));
    memset(ax, 0, sizeof(ax));
    x.c = c;
    x.e.err = err;
    x.e.errlen = errlen;
    if (errlen > 0)
        err[0] = '\0';
    if (!json_is_object(in)) {
        fail(&x.e, "input: expected an object");
        goto cleanup;
    }
    team = field(in, "team");
    if (team != NULL && !json_is_integer(team)) {
        fail(&x.e, "team: expected an integer");
        goto cleanup;
    }
    if (get_int(&x.e, in, "", "now_ms", 1, 0, &x.now) < 0)
        goto cleanup;
    if (get_arr(&x.e, in, "", "steps", &steps) < 0 ||
        get_arr(&x.e, in, "", "findings", &finds) < 0 ||
        get_obj(&x.e, in, "", "grades", &grades) < 0 ||
        get_arr(&x.e, in, "", "inject_steps", &isteps) < 0 || parse_steps(&x, steps) < 0 ||
        parse_findings(&x, finds) < 0)
        goto cleanup;

    x.stamp = calloc(x.nsteps + 1, sizeof(*x.stamp));
    x.ttier = calloc(x.nsteps + 1, sizeof(*x.ttier));
    x.tmp = calloc(x.nsteps + 1, sizeof(*x.tmp));
    if (x.stamp == NULL || x.ttier == NULL || x.tmp == NULL || build_index(&x) < 0) {
        nomem(&x.e);
        goto cleanup;
    }
    for (i = 0; i < x.nfinds; i++)
        if (match_finding(&x, i) < 0) {
            nomem(&x.e);
            goto cleanup;
        }

    reasons = json_array();
    fpo = json_object();
    for (i = 0; i < 4; i++)
        if ((ax[i].items = json_array()) == NULL) {
            nomem(&x.e);
            goto cleanup;
        }
    if (reasons == NULL || fpo == NULL) {
        nomem(&x.e);
        goto cleanup;
    }
    if (detection_axis(&x, &ax[0], reasons, fpo, &n_fp) < 0) {
        nomem(&x.e);
        goto cleanup;
    }
    if (availability_axis(&x, in, &ax[1], reasons) < 0 ||
        reports_axis(&x, grades, &ax[2], reasons) < 0 ||
        injects_axis(&x, grades, isteps, &ax[3], reasons) < 0)
        goto cleanup;

    axes = json_object();
    if (axes == NULL) {
        nomem(&x.e);
        goto cleanup;
    }
    for (i = 0; i < 4; i++) {
        total += ax[i].points;
        max += ax[i].max;
        if (json_object_set_new(axes, axis_names[i], axis_json(&ax[i])) < 0) {
            nomem(&x.e);
            goto cleanup;
        }
    }
    for (i = 0; i < x.nsteps; i++)
        if (x.steps[i].landed) {
            landed++;
            detected += x.steps[i].best >= 0;
        }
    sj = steps_json(&x);
    fj = findings_json(&x, &tp);
    if (sj == NULL || fj == NULL) {
        nomem(&x.e);
        goto cleanup;
    }
    out = json_pack("{sOsososOsOsosososOsOsO}", "team", team ? (json_t *)team : json_null(),
                    "total", jr1(total), "max", jr1(max), "axes", axes, "false_positives",
                    fpo, "precision", ratio(tp, tp + n_fp), "recall", ratio(detected, landed),
                    "landed_steps", json_integer((json_int_t)landed), "steps", sj,
                    "findings", fj, "reasons", reasons);
    if (out == NULL) {
        nomem(&x.e);
        goto cleanup;
    }
cleanup:
    for (i = 0; i < 4; i++)
        json_decref(ax[i].items);
    json_decref(reasons);
    json_decref(fpo);
    json_decref(axes);
    json_decref(sj);
    json_decref(fj);
    ctx_free(&x);
    return out;
}

/* ------------------------------------------------------------------ */
/* Text                                                                */

char *score_format_text(const json_t *b)
{
    static const char *const names[] = { "detection", "availability", "reports", "injects" };
    const json_t *axes = json_object_get(b, "axes"), *team = json_object_get(b, "team");
    const json_t *fp = json_object_get(b, "false_positives");
    const json_t *pr = json_object_get(b, "precision"), *rc = json_object_get(b, "recall");
    sbuf s = { NULL, 0, 0, 0 };
    size_t i, k;

    if (!json_is_object(b) || !json_is_object(axes))
        return NULL;
    if (json_is_integer(team))
        sb_printf(&s, "team %lld: ", (long long)json_integer_value(team));
    sb_printf(&s, "%.1f / %.1f\n", json_number_value(json_object_get(b, "total")),
              json_number_value(json_object_get(b, "max")));
    for (i = 0; i < 4; i++) {
        const json_t *a = json_object_get(axes, names[i]);
        const json_t *items = json_object_get(a, "items");
        sb_printf(&s, "%-13s %5.1f / %.1f\n", names[i],
                  json_number_value(json_object_get(a, "points")),
                  json_number_value(json_object_get(a, "max")));
        for (k = 0; k < json_array_size(items); k++)
            sb_printf(&s, "    %s\n",
                      json_string_value(json_object_get(json_array_get(items, k), "reason")));
    }
    sb_printf(&s, "false positives: %lld (%.1f)\n",
              (long long)json_integer_value(json_object_get(fp, "count")),
              json_number_value(json_object_get(fp, "points")));
    sb_printf(&s, "precision ");
    if (json_is_number(pr))
        sb_printf(&s, "%.3f", json_number_value(pr));
    else
        sb_printf(&s, "n/a");
    sb_printf(&s, ", recall ");
    if (json_is_number(rc))
        sb_printf(&s, "%.3f\n", json_number_value(rc));
    else
        sb_printf(&s, "n/a\n");
    if (s.oom) {
        free(s.p);
        return NULL;
    }
    return s.p;
}
