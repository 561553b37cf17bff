/* match-bench — score_team() on a generated team: S ground-truth steps and F
 * findings (seeded; a mixture of flow, host+technique and indicator matches,
 * late ones and ones that match nothing).  The reference, in the same run,
 * is jansson parsing the same input text: the score should cost about as
 * much as reading its input.
 *
 *   match-bench [--steps N] [--findings N] [--runs N] [--seed N] [--goal SECONDS]
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "community_id.h"
#include "score.h"

#define N_HOSTS 200
#define N_DOMAINS 500

static const char *const techniques[] = {
    "T1566.001", "T1204.002", "T1071.001", "T1046",     "T1021.004", "T1048",
    "T1110.001", "T1105",     "T1053.003", "T1486",     "T1489",     "T1491.001",
    "T1498.001", "T1190",     "T1059.004", "T1003.008", "T1078",     "T1041",
};
#define N_TECH (sizeof(techniques) / sizeof(techniques[0]))

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 2685821657736338717ull;
}

static unsigned rn(unsigned n)
{
    return (unsigned)(rnd() % n);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Host i: "h<i>" at 198.18.<1 + i / 250>.<1 + i % 250>; the attacker is
 * 198.18.0.66. */
static void host_addr(unsigned i, char *b, size_t n)
{
    snprintf(b, n, "198.18.%u.%u", 1 + i / 250, 1 + i % 250);
}

static uint32_t ip4(const char *s)
{
    unsigned a, b, c, d;
    sscanf(s, "%u.%u.%u.%u", &a, &b, &c, &d);
    return (a << 24) | (b << 16) | (c << 8) | d;
}

typedef struct gstep {
    int64_t start;
    unsigned actor, target, tech, domain;
    char src[16], dst[16], cid[COMMUNITY_ID_LEN];
    int sport, dport;
} gstep;

static json_t *gen(unsigned ns, unsigned nf, int64_t t0, int64_t *now, size_t *n_expected)
{
    json_t *in = json_object(), *steps = json_array(), *finds = json_array();
    gstep *g = calloc(ns, sizeof(*g));
    unsigned i;
    int64_t span = (int64_t)ns * 8640; /* 10,000 steps over a day */

    *n_expected = 0;
    for (i = 0; i < ns; i++) {
        gstep *s = &g[i];
        char dom[64], url[128], hash[80];
        json_t *art, *flows;
        s->start = t0 + (int64_t)((double)span * i / ns) + rn(5000);
        s->actor = rn(N_HOSTS);
        s->target = rn(N_HOSTS);
        s->tech = rn(N_TECH);
        s->domain = rn(N_DOMAINS);
        if (rn(3) == 0)
            snprintf(s->src, sizeof(s->src), "198.18.0.66");
        else
            host_addr(s->actor, s->src, sizeof(s->src));
        host_addr(s->target, s->dst, sizeof(s->dst));
        s->sport = 32768 + (int)rn(28000);
        s->dport = (int[]){ 22, 25, 80, 443, 445, 3128, 21, 53 }[rn(8)];
        community_id_v1(0, ip4(s->src), ip4(s->dst), 6, (uint16_t)s->sport,
                        (uint16_t)s->dport, s->cid);
        snprintf(dom, sizeof(dom), "d%u.exarnple.test", s->domain);
        snprintf(url, sizeof(url), "http://%s/p/%u/x?id=%u", dom, i % 97, i);
        snprintf(hash, sizeof(hash), "%016llx%016llx", (unsigned long long)rnd(),
                 (unsigned long long)rnd());
        art = json_pack("{s[ss]s[s]s[s]s[]s[s]s[s]}", "ips", s->src, s->dst, "domains", dom,
                        "urls", url, "paths", "accounts", "hanako", "hashes", hash);
        flows = json_pack("[{ss ss si ss si ss sb}]", "proto", "tcp", "src", s->src, "sport",
                          s->sport, "dst", s->dst, "dport", s->dport, "community_id", s->cid,
                          "seen", 1);
        {
            char an[16], tn[16], ta[16], name[16];
            snprintf(an, sizeof(an), "h%u", s->actor);
            snprintf(tn, sizeof(tn), "h%u", s->target);
            snprintf(name, sizeof(name), "s%u", i);
            host_addr(s->target, ta, sizeof(ta));
            json_array_append_new(
                steps, json_pack("{ss ss ss ss ss ss ss sI ss so so}", "step", name, "action", "x",
                                 "technique", techniques[s->tech], "actor", an, "target", tn,
                                 "actor_addr", s->src, "target_addr", ta, "start_ms",
                                 (json_int_t)s->start, "outcome",
                                 rn(20) == 0 ? "failed" : "succeeded", "flows", flows,
                                 "artefacts", art));
        }
    }
    for (i = 0; i < nf; i++) {
        const gstep *s = &g[rn(ns)];
        unsigned kind = rn(100);
        int64_t det = s->start + (int64_t)rn(40 * 60000) - 5000;
        json_t *f = json_pack("{sIsI}", "id", (json_int_t)i + 1, "detected_ms", (json_int_t)det);
        char b[128];
        if (kind < 15) { /* flow by community id */
            json_object_set_new(f, "community_id", json_string(s->cid));
        } else if (kind < 30) { /* flow by 5-tuple, reversed, source port left out */
            json_object_set_new(f, "flow", json_pack("{sssssssi}", "proto", "tcp", "src", s->dst,
                                                     "dst", s->src, "sport", s->dport));
        } else if (kind < 55) { /* host + parent technique */
            char t[16];
            snprintf(b, sizeof(b), "h%u", rn(2) ? s->actor : s->target);
            snprintf(t, sizeof(t), "%.5s", techniques[s->tech]);
            json_object_set_new(f, "hosts", json_pack("[s]", b));
            json_object_set_new(f, "technique", json_string(t));
        } else if (kind < 65) { /* a domain */
            snprintf(b, sizeof(b), "D%u.Exarnple.test", s->domain);
            json_object_set_new(f, "indicators", json_pack("{s[s]}", "domains", b));
        } else if (kind < 75) { /* a URL prefix */
            snprintf(b, sizeof(b), "http://d%u.exarnple.test/p/", s->domain);
            json_object_set_new(f, "indicators", json_pack("{s[s]}", "urls", b));
        } else { /* nothing of the range's attacks */
            snprintf(b, sizeof(b), "198.19.%u.%u", rn(250), rn(250));
            json_object_set_new(f, "indicators", json_pack("{s[s]}", "ips", b));
            json_object_set_new(f, "hosts", json_pack("[s]", "printer"));
            json_object_set_new(f, "technique", json_string("T9999"));
        }
        if (kind < 75)
            (*n_expected)++;
        json_array_append_new(finds, f);
    }
    *now = t0 + span + 3600000;
    json_object_set_new(in, "team", json_integer(1));
    json_object_set_new(in, "now_ms", json_integer((json_int_t)*now));
    json_object_set_new(in, "steps", steps);
    json_object_set_new(in, "findings", finds);
    free(g);
    return in;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static unsigned long arg(int argc, char **argv, const char *name, unsigned long def)
{
    int i;
    for (i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return strtoul(argv[i + 1], NULL, 10);
    return def;
}

int main(int argc, char **argv)
{
    unsigned ns = (unsigned)arg(argc, argv, "--steps", 10000);
    unsigned nf = (unsigned)arg(argc, argv, "--findings", 100000);
    unsigned runs = (unsigned)arg(argc, argv, "--runs", 5);
    double goal = (double)arg(argc, argv, "--goal-ms", 1000) / 1000.0;
    double *ts, *tp, t;
    score_config c;
    json_t *in, *out = NULL;
    char *text, err[256];
    size_t expected, i, matched = 0, pairs = 0, fps = 0, detected = 0;
    int64_t now;
    unsigned r;

    rng_state = arg(argc, argv, "--seed", 1) * 0x9E3779B97F4A7C15ull + 1;
    if (ns == 0 || nf == 0 || runs == 0) {
        fprintf(stderr, "match-bench: --steps, --findings and --runs must be positive\n");
        return 2;
    }
    score_config_defaults(&c);
    in = gen(ns, nf, 1795300000000LL, &now, &expected);
    text = json_dumps(in, JSON_COMPACT);
    json_decref(in);
    if (text == NULL) {
        fprintf(stderr, "match-bench: out of memory\n");
        return 1;
    }
    ts = calloc(runs, sizeof(*ts));
    tp = calloc(runs, sizeof(*tp));
    printf("match-bench: %u steps, %u findings (seed %lu), input %.1f MB, %u runs each\n", ns, nf,
           arg(argc, argv, "--seed", 1), (double)strlen(text) / 1e6, runs);
    for (r = 0; r < runs; r++) {
        json_error_t je;
        t = now_s();
        in = json_loads(text, 0, &je);
        tp[r] = now_s() - t;
        if (in == NULL) {
            fprintf(stderr, "match-bench: %s\n", je.text);
            return 1;
        }
        json_decref(out);
        t = now_s();
        out = score_team(&c, in, err, sizeof(err));
        ts[r] = now_s() - t;
        json_decref(in);
        if (out == NULL) {
            fprintf(stderr, "match-bench: score_team: %s\n", err);
            return 1;
        }
    }
    {
        const json_t *fa = json_object_get(out, "findings"), *sa = json_object_get(out, "steps");
        for (i = 0; i < json_array_size(fa); i++) {
            size_t m = json_array_size(json_object_get(json_array_get(fa, i), "matched"));
            matched += m > 0;
            pairs += m;
            fps += json_is_true(json_object_get(json_array_get(fa, i), "false_positive"));
        }
        for (i = 0; i < json_array_size(sa); i++)
            detected += json_is_true(json_object_get(json_array_get(sa, i), "detected"));
    }
    qsort(ts, runs, sizeof(*ts), cmp_d);
    qsort(tp, runs, sizeof(*tp), cmp_d);
    printf("  score_team      best %7.3f s   median %7.3f s   %8.0f findings/s\n", ts[0],
           ts[runs / 2], nf / ts[runs / 2]);
    printf("  json_loads      best %7.3f s   median %7.3f s   (same input text)\n", tp[0],
           tp[runs / 2]);
    printf("  score/parse ratio: %.2f (median)\n", ts[runs / 2] / tp[runs / 2]);
    printf("  matches: %zu findings matched at least one step (%zu generated to match, some "
           "late or before the step), %zu finding-step pairs, %zu false positives, %zu of %u "
           "steps detected, total %.1f\n",
           matched, expected, pairs, fps, detected, ns,
           json_number_value(json_object_get(out, "total")));
    printf("  goal score_team < %g s: %s\n", goal, ts[runs / 2] < goal ? "met" : "NOT MET");
    json_decref(out);
    free(text);
    free(ts);
    free(tp);
    return 0;
}
