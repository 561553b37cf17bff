#include "action_table.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#define SEC  1000LL
#define MIN  (60 * SEC)
#define HOUR (60 * MIN)

static const char *const scan_modes[] = { "connect", "syn", NULL };
static const char *const brute_services[] = { "ssh", "http-basic", "ftp",
                                              "smtp", NULL };
static const char *const exploit_kinds[] = { "sqli", "traversal", "cmdi", NULL };
static const char *const c2_channels[] = { "http", "dns", NULL };
static const char *const lateral_methods[] = { "ssh", NULL };
static const char *const persist_kinds[] = { "cron", "account", NULL };
static const char *const flood_kinds[] = { "syn", "udp", "http", NULL };
static const char *const inject_channels[] = { "mail", "phone", "press",
                                               "regulator", "customer",
                                               "management", "partner", NULL };
static const char *const http_methods[] = { "GET", "POST", NULL };

static const action_param p_portscan[] = {
    { "ports", ACTION_P_PORTS, 1, 1, 65535, NULL, "ports to try, e.g. \"22,80,1000-1100\"" },
    { "mode", ACTION_P_ENUM, 0, 0, 0, scan_modes, "connect (full handshake) or syn (half-open)" },
    { "rate", ACTION_P_INT, 0, 1, 1000, NULL, "probes per second" },
    { "timeout", ACTION_P_DURATION, 0, 100, 10 * SEC, NULL, "per-probe timeout" },
    { NULL, 0, 0, 0, 0, NULL, NULL }
};

static const action_param p_bruteforce[] = {
    { "service", ACTION_P_ENUM, 1, 0, 0, brute_services, "protocol to attack" },
    { "port", ACTION_P_INT, 0, 1, 65535, NULL, "port (default: the service's)" },
    { "users", ACTION_P_STRLIST, 1, 1, 100, NULL, "account names to try" },
    { "passwords", ACTION_P_STRLIST, 1, 1, 1000, NULL, "password list" },
    { "attempts", ACTION_P_INT, 0, 1, 1000, NULL, "at most this many tries" },
    { "rate", ACTION_P_INT, 0, 1, 50, NULL, "tries per second" },
    { "path", ACTION_P_URLPATH, 0, 0, 0, NULL, "URL path for http-basic" },
    { NULL, 0, 0, 0, 0, NULL, NULL }
};

static const action_param p_exploit[] = {
    { "kind", ACTION_P_ENUM, 1, 0, 0, exploit_kinds, "sqli, traversal or cmdi" },
    { "path", ACTION_P_URLPATH, 1, 0, 0, NULL, "URL path of the vulnerable page" },
    { "port", ACTION_P_INT, 0, 1, 65535, NULL, "HTTP port (default 80)" },
    { "param", ACTION_P_STRING, 0, 0, 0, NULL, "request parameter carrying the payload" },
    { "payload", ACTION_P_STRING, 0, 0, 0, NULL, "payload (default: a stock one for the kind)" },
    { "method", ACTION_P_ENUM, 0, 0, 0, http_methods, "GET or POST" },
    { "expect", ACTION_P_STRING, 0, 0, 0, NULL, "success when the response contains this" },
    { "requests", ACTION_P_INT, 0, 1, 100, NULL, "requests to send" },
    { NULL, 0, 0, 0, 0, NULL, NULL }
};

static const action_param p_phish[] = {
    { "mailbox", ACTION_P_STRING, 1, 0, 0, NULL, "recipient user@host" },
    { "from", ACTION_P_STRING, 1, 0, 0, NULL, "sender address" },
    { "subject", ACTION_P_STRING, 1, 0, 0, NULL, "subject line" },
    { "body", ACTION_P_STRING, 0, 0, 0, NULL, "message text" },
    { "attachment", ACTION_P_STRING, 0, 0, 0, NULL, "attachment file name (carries the implant)" },
    { "link", ACTION_P_STRING, 0, 0, 0, NULL, "URL in the body" },
    { "port", ACTION_P_INT, 0, 1, 65535, NULL, "SMTP port (default 25)" },
    { NULL, 0, 0, 0, 0, NULL, NULL }
};

static const action_param p_phish_open[] = {
    { "user", ACTION_P_STRING, 1, 0, 0, NULL, "the workstation user who opens the mail" },
    { "subject", ACTION_P_STRING, 0, 0, 0, NULL, "open the message with this subject" },
    { NULL, 0, 0, 0, 0, NULL, NULL }
};

static const action_param p_beacon[] = {
    { "channel", ACTION_P_ENUM, 1, 0, 0, c2_channels, "http or dns" },
    { "interval", ACTION_P_DURATION, 1, 1 * SEC, 1 * HOUR, NULL, "time between beacons" },
    { "jitter", ACTION_P_DURATION, 0, 0, 1 * HOUR, NULL, "random extra delay per beacon" },
    { "proxy", ACTION_P_STRING, 0, 0, 0, NULL, "host:port of the proxy to go through" },
    { "port", ACTION_P_INT, 0, 1, 65535, NULL, "C2 port (default 80 / 53)" },
    { "domain", ACTION_P_STRING, 0, 0, 0, NULL, "C2 domain (for dns and Host:)" },
    { "count", ACTION_P_INT, 0, 1, 10000, NULL, "stop after this many beacons" },
    { "duration", ACTION_P_DURATION, 0, 1 * SEC, 8 * HOUR, NULL, "stop after this long" },
    { NULL, 0, 0, 0, 0, NULL, NULL }
};

static const action_param p_transfer[] = {
    { "path", ACTION_P_STRING, 1, 0, 0, NULL, "where the tool lands on the actor" },
    { "url", ACTION_P_STRING, 0, 0, 0, NULL, "where it is fetched from (default: the target's C2)" },
    { "bytes", ACTION_P_INT, 0, 1, 10 * 1024 * 1024, NULL, "size" },
    { NULL, 0, 0, 0, 0, NULL, NULL }
};

static const action_param p_lateral[] = {
    { "method", ACTION_P_ENUM, 0, 0, 0, lateral_methods, "how to log in" },
    { "user", ACTION_P_STRING, 1, 0, 0, NULL, "stolen account" },
    { "password", ACTION_P_STRING, 1, 0, 0, NULL, "its password" },
    { "implant", ACTION_P_BOOL, 0, 0, 0, NULL, "start the implant on the target (default true)" },
    { NULL, 0, 0, 0, 0, NULL, NULL }
};

static const action_param p_persist[] = {
    { "kind", ACTION_P_ENUM, 1, 0, 0, persist_kinds, "cron entry or new account" },
    { "name", ACTION_P_STRING, 1, 0, 0, NULL, "cron job or account name" },
    { "schedule", ACTION_P_STRING, 0, 0, 0, NULL, "cron schedule" },
    { "password", ACTION_P_STRING, 0, 0, 0, NULL, "for kind=account" },
    { NULL, 0, 0, 0, 0, NULL, NULL }
};

static const action_param p_exfil[] = {
    { "channel", ACTION_P_ENUM, 1, 0, 0, c2_channels, "http (POST) or dns" },
    { "bytes", ACTION_P_INT, 1, 1, 10 * 1024 * 1024, NULL, "how much to send" },
    { "source", ACTION_P_STRING, 0, 0, 0, NULL, "file or folder taken from" },
    { "port", ACTION_P_INT, 0, 1, 65535, NULL, "destination port" },
    { "domain", ACTION_P_STRING, 0, 0, 0, NULL, "domain for dns exfiltration" },
    { "proxy", ACTION_P_STRING, 0, 0, 0, NULL, "host:port of the proxy to go through" },
    { NULL, 0, 0, 0, 0, NULL, NULL }
};

static const action_param p_flood[] = {
    { "kind", ACTION_P_ENUM, 1, 0, 0, flood_kinds, "syn, udp or http" },
    { "port", ACTION_P_INT, 1, 1, 65535, NULL, "target port" },
    { "rate", ACTION_P_INT, 1, 1, 5000, NULL, "packets or requests per second" },
    { "duration", ACTION_P_DURATION, 1, 1 * SEC, 10 * MIN, NULL, "how long" },
    { "path", ACTION_P_URLPATH, 0, 0, 0, NULL, "URL path for http" },
    { NULL, 0, 0, 0, 0, NULL, NULL }
};

static const action_param p_encrypt[] = {
    { "path", ACTION_P_STRING, 1, 0, 0, NULL, "share folder whose files are encrypted" },
    { "note", ACTION_P_STRING, 0, 0, 0, NULL, "ransom note text" },
    { "max_files", ACTION_P_INT, 0, 1, 10000, NULL, "at most this many files" },
    { NULL, 0, 0, 0, 0, NULL, NULL }
};

static const action_param p_service_stop[] = {
    { "service", ACTION_P_STRING, 1, 0, 0, NULL, "service name as in the host's services" },
    { NULL, 0, 0, 0, 0, NULL, NULL }
};

static const action_param p_deface[] = {
    { "path", ACTION_P_STRING, 1, 0, 0, NULL, "web page file to replace" },
    { "content", ACTION_P_STRING, 1, 0, 0, NULL, "what the page shows afterwards" },
    { NULL, 0, 0, 0, 0, NULL, NULL }
};

static const action_param p_inject[] = {
    { "from", ACTION_P_STRING, 1, 0, 0, NULL, "who the message comes from" },
    { "subject", ACTION_P_STRING, 1, 0, 0, NULL, "subject" },
    { "body", ACTION_P_STRING, 1, 0, 0, NULL, "text shown in the team's inbox" },
    { "channel", ACTION_P_ENUM, 0, 0, 0, inject_channels, "kind of sender" },
    { "deadline", ACTION_P_DURATION, 0, 1 * MIN, 24 * HOUR, NULL, "time allowed for a response" },
    { "points", ACTION_P_INT, 0, 0, 1000, NULL, "weight of the response in the injects axis" },
    { NULL, 0, 0, 0, 0, NULL, NULL }
};

const action_type action_types[] = {
    { "recon.portscan", "T1046", "network", 1, ACTION_TARGET_REQUIRED, p_portscan,
      "TCP port scan of a target host" },
    { "cred.bruteforce", "T1110.001", "network", 1, ACTION_TARGET_REQUIRED, p_bruteforce,
      "password guessing against ssh, http basic auth, ftp or smtp" },
    { "web.exploit", "T1190", "network", 1, ACTION_TARGET_REQUIRED, p_exploit,
      "SQL injection, path traversal or command injection over HTTP" },
    { "phish.deliver", "T1566.001", "network", 1, ACTION_TARGET_REQUIRED, p_phish,
      "phishing mail sent over SMTP to the mail server (the target)" },
    { "phish.open", "T1204.002", "host", 1, ACTION_TARGET_OPTIONAL, p_phish_open,
      "the user on the actor workstation opens the mail; the implant starts" },
    { "c2.beacon", "T1071.001", "network", 1, ACTION_TARGET_REQUIRED, p_beacon,
      "implant beacons to the C2 host (the target)" },
    { "tool.transfer", "T1105", "network", 1, ACTION_TARGET_OPTIONAL, p_transfer,
      "download of an attacker tool to the actor" },
    { "lateral.move", "T1021.004", "network", 1, ACTION_TARGET_REQUIRED, p_lateral,
      "log in to the target with stolen credentials and start the implant" },
    { "persistence", "T1053.003", "host", 1, ACTION_TARGET_NONE, p_persist,
      "cron entry or new account on the actor" },
    { "exfil", "T1048", "network", 1, ACTION_TARGET_REQUIRED, p_exfil,
      "data sent to the target (attacker side) over HTTP POST or DNS" },
    { "dos.flood", "T1498.001", "network", 1, ACTION_TARGET_REQUIRED, p_flood,
      "SYN, UDP or HTTP flood at a bounded rate" },
    { "impact.encrypt", "T1486", "host", 1, ACTION_TARGET_NONE, p_encrypt,
      "encrypt the files of a share on the actor (a backup remains)" },
    { "impact.service_stop", "T1489", "host", 1, ACTION_TARGET_NONE, p_service_stop,
      "stop a service on the actor" },
    { "impact.deface", "T1491.001", "host", 1, ACTION_TARGET_NONE, p_deface,
      "replace a web page on the actor" },
    { "inject.message", NULL, "inbox", 0, ACTION_TARGET_NONE, p_inject,
      "narrative message to the team's inbox" },
    { NULL, NULL, NULL, 0, ACTION_TARGET_NONE, NULL, NULL }
};

const action_type *action_find(const char *name)
{
    for (const action_type *t = action_types; t->name; t++)
        if (strcmp(t->name, name) == 0)
            return t;
    return NULL;
}

const action_param *action_param_find(const action_type *t, const char *name)
{
    for (const action_param *p = t->params; p->name; p++)
        if (strcmp(p->name, name) == 0)
            return p;
    return NULL;
}

static int read_port(const char **s, long *out)
{
    long v = 0;
    int digits = 0;
    while (isdigit((unsigned char)**s)) {
        v = v * 10 + (**s - '0');
        if (v > 65535)
            return -1;
        (*s)++;
        digits++;
    }
    if (digits == 0 || v < 1)
        return -1;
    *out = v;
    return 0;
}

int64_t action_ports_count(const char *s)
{
    int64_t count = 0;
    if (s == NULL || *s == '\0')
        return -1;
    for (;;) {
        long lo, hi;
        if (read_port(&s, &lo) < 0)
            return -1;
        hi = lo;
        if (*s == '-') {
            s++;
            if (read_port(&s, &hi) < 0 || hi < lo)
                return -1;
        }
        count += hi - lo + 1;
        if (*s == '\0')
            return count;
        if (*s != ',')
            return -1;
        s++;
    }
}

/* ---- value checks shared by the validator and the agent ---------------- */

#define DURATION_MAX_MS (30LL * 24 * HOUR)

static int duration_parse(const char *s, int64_t *ms)
{
    int64_t total = 0;
    int last_rank = 6; /* units in decreasing order: d h m s ms */

    if (*s == '\0')
        return -1;
    while (*s) {
        int64_t v = 0, mult;
        int digits = 0, rank;
        while (isdigit((unsigned char)*s)) {
            v = v * 10 + (*s - '0');
            if (v > DURATION_MAX_MS)
                return -1;
            s++;
            digits++;
        }
        if (digits == 0)
            return -1;
        if (strncmp(s, "ms", 2) == 0) {
            mult = 1; rank = 1; s += 2;
        } else if (*s == 's') {
            mult = SEC; rank = 2; s++;
        } else if (*s == 'm') {
            mult = MIN; rank = 3; s++;
        } else if (*s == 'h') {
            mult = HOUR; rank = 4; s++;
        } else if (*s == 'd') {
            mult = 24 * HOUR; rank = 5; s++;
        } else {
            return -1;
        }
        if (rank >= last_rank)
            return -1;
        last_rank = rank;
        total += v * mult;
        if (total > DURATION_MAX_MS)
            return -1;
    }
    *ms = total;
    return 0;
}

int action_duration_value(const json_t *v, int64_t *ms)
{
    if (json_is_integer(v)) {
        json_int_t sec = json_integer_value(v);
        if (sec < 0)
            return -1;
        /* Larger than any bound: let the caller's range check report it. */
        if (sec > DURATION_MAX_MS / SEC)
            *ms = DURATION_MAX_MS + SEC;
        else
            *ms = (int64_t)sec * SEC;
        return 0;
    }
    if (json_is_string(v))
        return duration_parse(json_string_value(v), ms);
    return -1;
}

static void format_ms(int64_t ms, char *buf, size_t len)
{
    if (ms % HOUR == 0 && ms >= HOUR)
        snprintf(buf, len, "%lldh", (long long)(ms / HOUR));
    else if (ms % MIN == 0 && ms >= MIN)
        snprintf(buf, len, "%lldm", (long long)(ms / MIN));
    else if (ms % SEC == 0)
        snprintf(buf, len, "%llds", (long long)(ms / SEC));
    else
        snprintf(buf, len, "%lldms", (long long)ms);
}

static int in_choices(const char *s, const char *const *choices)
{
    for (; *choices; choices++)
        if (strcmp(s, *choices) == 0)
            return 1;
    return 0;
}

static void join_choices(const char *const *choices, char *buf, size_t len)
{
    size_t n = 0;

    buf[0] = '\0';
    for (; *choices && n < len; choices++) {
        int w = snprintf(buf + n, len - n, "%s%s", n ? ", " : "", *choices);
        if (w < 0)
            break;
        n += (size_t)w;
    }
}

int action_param_check(const action_param *p, const json_t *v, char *msg,
                       size_t len)
{
    char a[32], b[32], all[256];
    int64_t ms, cnt;
    size_t i, n;

    switch (p->type) {
    case ACTION_P_STRING:
        if (json_is_string(v) && json_string_length(v) > 0)
            return 0;
        snprintf(msg, len, "parameter '%s' must be a non-empty string (%s)",
                 p->name, p->help);
        return -1;
    case ACTION_P_URLPATH:
        if (json_is_string(v) && json_string_value(v)[0] == '/')
            return 0;
        snprintf(msg, len, "parameter '%s' must be a URL path starting with "
                 "'/'", p->name);
        return -1;
    case ACTION_P_INT:
        if (!json_is_integer(v)) {
            snprintf(msg, len, "parameter '%s' must be an integer (%s)",
                     p->name, p->help);
            return -1;
        }
        if (json_integer_value(v) < p->min || json_integer_value(v) > p->max) {
            snprintf(msg, len, "parameter '%s' must be between %lld and %lld, "
                     "got %lld", p->name, (long long)p->min,
                     (long long)p->max, (long long)json_integer_value(v));
            return -1;
        }
        return 0;
    case ACTION_P_BOOL:
        if (json_is_boolean(v))
            return 0;
        snprintf(msg, len, "parameter '%s' must be true or false", p->name);
        return -1;
    case ACTION_P_DURATION:
        if (action_duration_value(v, &ms) < 0) {
            snprintf(msg, len, "parameter '%s' must be a duration such as "
                     "\"30s\" or \"5m\"", p->name);
            return -1;
        }
        if (ms < p->min || ms > p->max) {
            format_ms(p->min, a, sizeof(a));
            format_ms(p->max, b, sizeof(b));
            snprintf(msg, len, "parameter '%s' must be between %s and %s",
                     p->name, a, b);
            return -1;
        }
        return 0;
    case ACTION_P_ENUM:
        if (json_is_string(v) && in_choices(json_string_value(v), p->choices))
            return 0;
        join_choices(p->choices, all, sizeof(all));
        snprintf(msg, len, "parameter '%s' must be one of %s", p->name, all);
        return -1;
    case ACTION_P_STRLIST:
        n = json_array_size(v);
        if (json_is_array(v) && n >= 1 && (int64_t)n <= p->max) {
            for (i = 0; i < n; i++) {
                const json_t *e = json_array_get(v, i);
                if (!json_is_string(e) || json_string_length(e) == 0)
                    break;
            }
            if (i == n)
                return 0;
        }
        snprintf(msg, len, "parameter '%s' must be an array of 1 to %lld "
                 "non-empty strings", p->name, (long long)p->max);
        return -1;
    case ACTION_P_PORTS:
        cnt = json_is_string(v) ? action_ports_count(json_string_value(v)) : -1;
        if (cnt < 0) {
            snprintf(msg, len, "parameter '%s' must be a port list such as "
                     "\"22,80,8000-8100\"", p->name);
            return -1;
        }
        if (cnt > p->max) {
            snprintf(msg, len, "parameter '%s' names %lld ports, at most %lld "
                     "are allowed", p->name, (long long)cnt, (long long)p->max);
            return -1;
        }
        return 0;
    }
    snprintf(msg, len, "parameter '%s' has an unknown type", p->name);
    return -1;
}

int action_params_check(const action_type *t, const json_t *params,
                        char *msg, size_t len)
{
    const action_param *p = NULL;
    const char *key = NULL;
    json_t *v = NULL;

    if (params != NULL && !json_is_object(params)) {
        snprintf(msg, len, "params of %s must be an object", t->name);
        return -1;
    }
    if (params != NULL) {
        json_object_foreach((json_t *)params, key, v) {
            p = action_param_find(t, key);
            if (p == NULL) {
                snprintf(msg, len, "unknown parameter '%s' for action %s", key,
                         t->name);
                return -1;
            }
            if (action_param_check(p, v, msg, len) < 0)
                return -1;
        }
    }
    for (p = t->params; p->name; p++) {
        if (p->required && json_object_get(params, p->name) == NULL) {
            snprintf(msg, len, "action %s needs parameter '%s' (%s)", t->name,
                     p->name, p->help);
            return -1;
        }
    }
    return 0;
}
