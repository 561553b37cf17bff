/* findings — validation and normalisation of team findings.  See
 * findings.h. */
#include "findings.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "addr.h"
#include "units.h"

#define MAX_TEXT 4000
#define MAX_ITEMS 64

typedef struct errbuf {
    char *buf;
    size_t len;
    size_t used;
    int n;
} errbuf;

static void fail(errbuf *e, const char *fmt, ...)
{
    va_list ap;
    int w;

    e->n++;
    if (e->used + 3 >= e->len)
        return;
    if (e->used > 0) {
        memcpy(e->buf + e->used, "; ", 3);
        e->used += 2;
    }
    va_start(ap, fmt);
    w = vsnprintf(e->buf + e->used, e->len - e->used, fmt, ap);
    va_end(ap);
    if (w > 0)
        e->used += (size_t)w < e->len - e->used ? (size_t)w : e->len - e->used - 1;
}

static int valid_ip(const char *s)
{
    uint32_t a;
    return addr_parse(s, &a) == 0;
}

static int in_range_ip(const char *s)
{
    uint32_t a;
    return addr_parse(s, &a) == 0 && (a & 0xfffe0000u) == 0xc6120000u;
}

static int valid_hash(const char *s)
{
    size_t n = strlen(s);
    if (n != 32 && n != 40 && n != 64)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i]))
            return 0;
    return 1;
}

static int valid_domain(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 253)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '.' && s[i] != '_')
            return 0;
    return 1;
}

static int valid_technique(const char *s)
{
    /* T1234 or T1234.001 (MITRE ATT&CK). */
    if (s[0] != 'T' || strlen(s) < 5)
        return 0;
    for (int i = 1; i < 5; i++)
        if (!isdigit((unsigned char)s[i]))
            return 0;
    if (s[5] == '\0')
        return 1;
    return s[5] == '.' && isdigit((unsigned char)s[6]) && isdigit((unsigned char)s[7]) &&
           isdigit((unsigned char)s[8]) && s[9] == '\0';
}

static int valid_community_id(const char *s)
{
    /* "1:" + base64 of a SHA-1 (28 characters). */
    if (strncmp(s, "1:", 2) != 0 || strlen(s) != 30)
        return 0;
    for (const char *p = s + 2; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '+' && *p != '/' && *p != '=')
            return 0;
    return 1;
}

static json_t *string_list(const json_t *v, const char *key, errbuf *e,
                           int (*valid)(const char *), const char *what)
{
    json_t *out = json_array();
    size_t i;
    json_t *it;

    if (v == NULL)
        return out;
    if (!json_is_array(v)) {
        fail(e, "%s: expected an array of strings", key);
        return out;
    }
    if (json_array_size(v) > MAX_ITEMS)
        fail(e, "%s: at most %d entries", key, MAX_ITEMS);
    json_array_foreach(v, i, it) {
        const char *s = json_string_value(it);
        if (s == NULL || *s == '\0' || strlen(s) > 512) {
            fail(e, "%s[%zu]: expected a non-empty string (up to 512 characters)", key, i);
            continue;
        }
        if (valid && !valid(s)) {
            fail(e, "%s[%zu]: \"%s\" is not %s", key, i, s, what);
            continue;
        }
        json_array_append(out, it);
    }
    return out;
}

static int host_ok(const char *s, const scenario *scn)
{
    return scenario_host_index(scn, s) >= 0 || in_range_ip(s);
}

static json_t *check_flow(const json_t *f, errbuf *e)
{
    const char *proto = json_string_value(json_object_get(f, "proto"));
    const char *src = json_string_value(json_object_get(f, "src"));
    const char *dst = json_string_value(json_object_get(f, "dst"));
    json_t *out;

    if (!json_is_object(f)) {
        fail(e, "flow: expected an object {proto, src, sport, dst, dport}");
        return NULL;
    }
    if (proto == NULL || (strcmp(proto, "tcp") && strcmp(proto, "udp") && strcmp(proto, "icmp")))
        fail(e, "flow.proto: expected \"tcp\", \"udp\" or \"icmp\"");
    if (src == NULL || !valid_ip(src))
        fail(e, "flow.src: expected an IPv4 address");
    if (dst == NULL || !valid_ip(dst))
        fail(e, "flow.dst: expected an IPv4 address");
    out = json_pack("{s:s?, s:s?, s:s?}", "proto", proto, "src", src, "dst", dst);
    for (int k = 0; k < 2; k++) {
        const char *key = k ? "dport" : "sport";
        const json_t *p = json_object_get(f, key);
        if (p == NULL)
            continue;
        if (!json_is_integer(p) || json_integer_value(p) < 0 || json_integer_value(p) > 65535)
            fail(e, "flow.%s: expected a port 0..65535 (0: any)", key);
        else
            json_object_set(out, key, (json_t *)p);
    }
    return out;
}

json_t *findings_normalize(const json_t *in, const scenario *s, int team, long long now_ms,
                           char *err, size_t errlen)
{
    static const char *const known[] = { "detected", "hosts", "indicators", "flow",
                                         "community_id", "technique", "description",
                                         "action" };
    errbuf e = { err, errlen, 0, 0 };
    json_t *out = NULL, *ind = NULL;
    const char *key;
    json_t *v;
    long long detected = now_ms;
    int evidence = 0;

    if (errlen)
        err[0] = '\0';
    if (!json_is_object(in)) {
        fail(&e, "a finding is a JSON object");
        return NULL;
    }
    json_object_foreach((json_t *)in, key, v) {
        size_t i;
        for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
            if (strcmp(key, known[i]) == 0)
                break;
        if (i == sizeof(known) / sizeof(known[0]))
            fail(&e, "%s: unknown key (known: detected, hosts, indicators, flow, "
                     "community_id, technique, description, action)", key);
    }
    out = json_pack("{s:i, s:I, s:n}", "team", team, "submitted_ms", now_ms, "label");
    if (out == NULL) {
        fail(&e, "out of memory");
        return NULL;
    }
    v = json_object_get(in, "detected");
    if (json_is_integer(v)) {
        detected = json_integer_value(v);
    } else if (json_is_string(v)) {
        if (units_utc_parse(json_string_value(v), &detected) < 0)
            fail(&e, "detected: expected a UTC time like 2026-11-22T10:03:00Z");
    } else if (v != NULL) {
        fail(&e, "detected: expected a UTC time string or milliseconds since the epoch");
    }
    if (detected > now_ms + 60000)
        fail(&e, "detected: in the future");
    json_object_set_new(out, "detected_ms", json_integer(detected));

    v = json_object_get(in, "hosts");
    json_t *hosts = string_list(v, "hosts", &e, NULL, NULL);
    size_t i;
    json_t *h;
    json_array_foreach(hosts, i, h) {
        if (!host_ok(json_string_value(h), s))
            fail(&e, "hosts[%zu]: \"%s\" is neither a host of the scenario nor an address "
                     "in 198.18.0.0/15", i, json_string_value(h));
    }
    evidence += json_array_size(hosts) > 0;
    json_object_set_new(out, "hosts", hosts);

    v = json_object_get(in, "indicators");
    if (v != NULL && !json_is_object(v))
        fail(&e, "indicators: expected an object with ips, domains, urls, hashes, accounts");
    ind = json_object();
    static const struct {
        const char *key, *what;
        int (*valid)(const char *);
    } kinds[] = { { "ips", "an IPv4 address", valid_ip },
                  { "domains", "a domain name", valid_domain },
                  { "urls", "a URL", NULL },
                  { "hashes", "an MD5, SHA-1 or SHA-256 in hex", valid_hash },
                  { "accounts", "an account", NULL } };
    json_object_foreach(json_is_object(v) ? v : NULL, key, h) {
        size_t k;
        for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
            if (strcmp(key, kinds[k].key) == 0)
                break;
        if (k == sizeof(kinds) / sizeof(kinds[0]))
            fail(&e, "indicators.%s: unknown kind (known: ips, domains, urls, hashes, "
                     "accounts)", key);
    }
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        char path[64];
        snprintf(path, sizeof(path), "indicators.%s", kinds[k].key);
        json_t *l = string_list(json_is_object(v) ? json_object_get(v, kinds[k].key) : NULL,
                                path, &e, kinds[k].valid, kinds[k].what);
        evidence += json_array_size(l) > 0;
        json_object_set_new(ind, kinds[k].key, l);
    }
    json_object_set_new(out, "indicators", ind);

    v = json_object_get(in, "flow");
    if (v != NULL) {
        json_t *f = check_flow(v, &e);
        if (f) {
            json_object_set_new(out, "flow", f);
            evidence++;
        }
    }
    v = json_object_get(in, "community_id");
    if (v != NULL) {
        if (!json_is_string(v) || !valid_community_id(json_string_value(v)))
            fail(&e, "community_id: expected a Community ID v1 like "
                     "\"1:LQU9qZlK+B5F3KDmev6m5PMibrg=\"");
        else {
            json_object_set(out, "community_id", v);
            evidence++;
        }
    }
    v = json_object_get(in, "technique");
    if (v != NULL) {
        if (!json_is_string(v) || !valid_technique(json_string_value(v)))
            fail(&e, "technique: expected an ATT&CK technique id like T1071 or T1071.001");
        else
            json_object_set(out, "technique", v);
    }
    for (int k = 0; k < 2; k++) {
        const char *name = k ? "action" : "description";
        v = json_object_get(in, name);
        if (v == NULL) {
            if (k == 0)
                fail(&e, "description: required (what was seen, where, how)");
            continue;
        }
        if (!json_is_string(v) || strlen(json_string_value(v)) > MAX_TEXT ||
            (k == 0 && *json_string_value(v) == '\0'))
            fail(&e, "%s: expected a %stext of up to %d bytes", name, k ? "" : "non-empty ",
                 MAX_TEXT);
        else
            json_object_set(out, name, v);
    }
    if (evidence == 0)
        fail(&e, "a finding must name at least one host, indicator, flow or community_id");
    if (e.n > 0) {
        json_decref(out);
        return NULL;
    }
    return out;
}

int findings_label_parse(const char *label, const char **out)
{
    static const char *const names[] = { "duplicate", "benign", "unscripted" };

    if (label == NULL || *label == '\0' || strcmp(label, "none") == 0) {
        *out = NULL;
        return 0;
    }
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(label, names[i]) == 0) {
            *out = names[i];
            return 0;
        }
    return -1;
}

static int by_id(const void *a, const void *b)
{
    json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "id"));
    json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "id"));
    return (x > y) - (x < y);
}

json_t *findings_fold(const json_t *log, int team)
{
    json_t *byid = json_object(), *out = json_array();
    size_t i, n = 0;
    json_t *line;
    char key[32];

    json_array_foreach(log, i, line) {
        const char *kind = json_string_value(json_object_get(line, "kind"));
        if (kind == NULL)
            continue;
        if (strcmp(kind, "finding") == 0) {
            json_int_t id = json_integer_value(json_object_get(line, "id"));
            int t = (int)json_integer_value(json_object_get(line, "team"));
            if (id <= 0 || (team && t != team))
                continue;
            json_t *f = json_deep_copy(line);
            json_object_del(f, "kind");
            json_object_del(f, "ts");
            snprintf(key, sizeof(key), "%lld", (long long)id);
            json_object_set_new(byid, key, f);
        } else if (strcmp(kind, "label") == 0) {
            snprintf(key, sizeof(key), "%lld",
                     (long long)json_integer_value(json_object_get(line, "finding")));
            json_t *f = json_object_get(byid, key);
            if (f) {
                json_t *l = json_object_get(line, "label");
                json_object_set(f, "label", l ? l : json_null());
                json_object_set(f, "label_by", json_object_get(line, "by"));
            }
        }
    }
    const char *k;
    json_t *f;
    json_object_foreach(byid, k, f) {
        json_array_append(out, f);
        n++;
    }
    json_decref(byid);
    if (n > 1) {
        json_t **v = malloc(n * sizeof(*v));
        if (v) {
            for (i = 0; i < n; i++)
                v[i] = json_incref(json_array_get(out, i));
            qsort(v, n, sizeof(*v), by_id);
            json_array_clear(out);
            for (i = 0; i < n; i++)
                json_array_append_new(out, v[i]);
            free(v);
        }
    }
    return out;
}
