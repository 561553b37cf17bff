/* checks — availability checks through the vantage hosts' agents.  See
 * checks.h. */
#include "checks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agentlink.h"
#include "proto.h"

typedef struct check_slot {
    checks *c;
    uv_timer_t timer;
    int team;
    size_t k;           /* index in the scenario's checks */
    int inflight;
    int up;             /* -1 unknown */
    long long last_ok_ms;
    long long last_ms;
    unsigned probes, oks, skipped;
    char detail[200];
} check_slot;

struct checks {
    uv_loop_t *loop;
    const plan *p;
    range *r;
    checks_result_cb cb;
    void *opaque;
    check_slot *slots;  /* team-major: slot (t-1) * n_checks + k */
    size_t n_slots;
    size_t open_handles;
    size_t inflight;
    int closing;
};

static long long wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void maybe_free(checks *c)
{
    if (c->closing && c->open_handles == 0 && c->inflight == 0) {
        free(c->slots);
        free(c);
    }
}

checks *checks_new(uv_loop_t *loop, const plan *p, range *r, checks_result_cb cb,
                   void *opaque)
{
    checks *c = calloc(1, sizeof(*c));
    size_t n = (size_t)p->n_teams * p->scn->n_checks;

    if (c == NULL)
        return NULL;
    c->slots = n ? calloc(n, sizeof(*c->slots)) : NULL;
    if (n && c->slots == NULL) {
        free(c);
        return NULL;
    }
    c->loop = loop;
    c->p = p;
    c->r = r;
    c->cb = cb;
    c->opaque = opaque;
    c->n_slots = n;
    for (size_t i = 0; i < n; i++) {
        check_slot *s = &c->slots[i];
        s->c = c;
        s->team = (int)(i / p->scn->n_checks) + 1;
        s->k = i % p->scn->n_checks;
        s->up = -1;
        uv_timer_init(loop, &s->timer);
        s->timer.data = s;
        c->open_handles++;
    }
    return c;
}

static void finish(check_slot *s, int ok, double rtt_ms, long long status, const char *detail)
{
    checks *c = s->c;
    const scn_check *ck = &c->p->scn->checks[s->k];
    long long now = wall_ms();
    json_t *res;

    s->probes++;
    s->last_ms = now;
    if (ok) {
        s->oks++;
        s->last_ok_ms = now;
    }
    s->up = ok;
    snprintf(s->detail, sizeof(s->detail), "%s", detail ? detail : "");
    res = json_pack("{s:s, s:i, s:s, s:I, s:b, s:f, s:s}", "kind", "check", "team", s->team,
                    "check", ck->id, "ts_ms", now, "ok", ok, "rtt_ms", rtt_ms, "detail",
                    s->detail);
    if (res && status >= 0)
        json_object_set_new(res, "status", json_integer(status));
    if (res && c->cb)
        c->cb(c, s->team, res, c->opaque);
    json_decref(res);
}

static void on_reply(agentlink *l, const proto_msg *m, const char *why, void *opaque)
{
    check_slot *s = opaque;
    checks *c = s->c;
    char text[200];
    (void)l;

    s->inflight = 0;
    c->inflight--;
    if (c->closing) {
        maybe_free(c);
        return;
    }
    if (m == NULL) {
        snprintf(text, sizeof(text), "no answer from the vantage host's agent (%s)",
                 why ? why : "closed");
        finish(s, 0, 0, -1, text);
        return;
    }
    if (!m->u.reply.ok) {
        snprintf(text, sizeof(text), "probe refused: %s",
                 m->u.reply.error ? m->u.reply.error : "?");
        finish(s, 0, 0, -1, text);
        return;
    }
    const json_t *b = m->u.reply.body;
    const json_t *cok = json_object_get(b, "check_ok");
    int reach = json_is_true(json_object_get(b, "reachable"));
    /* An agent without expectations answers reachability only. */
    int ok = cok ? json_is_true(cok) : reach;
    const char *detail = json_string_value(json_object_get(b, "detail"));
    const char *error = json_string_value(json_object_get(b, "error"));
    const json_t *st = json_object_get(b, "status");
    if (detail == NULL) {
        snprintf(text, sizeof(text), "%s%s%s", reach ? "reachable" : "unreachable",
                 error ? ": " : "", error ? error : "");
        detail = text;
    }
    finish(s, ok, json_number_value(json_object_get(b, "rtt_ms")),
           json_is_integer(st) ? json_integer_value(st) : -1, detail);
}

/* The agent request for one check: a probe with the check's kind and its
 * expectations (new reference, or NULL). */
static json_t *check_request(const scn_check *ck, const char *addr)
{
    const json_t *pa = ck->params;
    proto_probe pr = { .addr = addr, .port = ck->port, .timeout_ms = (int)ck->timeout_ms };
    proto_err pe;

    if (strcmp(ck->type, "http") == 0) {
        pr.kind = PROTO_CHECK_HTTP;
        pr.path = json_string_value(json_object_get(pa, "path"));
        pr.expect_status = (int)json_integer_value(json_object_get(pa, "expect_status"));
    } else if (strcmp(ck->type, "smtp") == 0) {
        pr.kind = PROTO_CHECK_SMTP;
    } else if (strcmp(ck->type, "dns") == 0) {
        pr.kind = PROTO_CHECK_DNS;
        pr.name = json_string_value(json_object_get(pa, "name"));
        pr.expect_address = json_string_value(json_object_get(pa, "expect_address"));
    } else {
        pr.kind = PROTO_CHECK_TCP;
    }
    pr.expect = json_string_value(json_object_get(pa, "expect"));
    return proto_build_probe(0, &pr, &pe);
}

static void run_slot(check_slot *s)
{
    checks *c = s->c;
    const scenario *scn = c->p->scn;
    const scn_check *ck = &scn->checks[s->k];
    char addr[32], text[200];

    if (c->closing)
        return;
    if (s->inflight) {
        s->skipped++;
        return;
    }
    int g = range_guest_find(c->r, s->team, scn->hosts[ck->from].name);
    agentlink *l = g >= 0 ? range_guest_link(c->r, (size_t)g) : NULL;
    if (l == NULL || !agentlink_connected(l)) {
        snprintf(text, sizeof(text), "vantage host %s has no agent connection",
                 scn->hosts[ck->from].name);
        finish(s, 0, 0, -1, text);
        return;
    }
    if (range_host_address(c->r, s->team, ck->from, ck->target, addr, sizeof(addr)) < 0) {
        snprintf(text, sizeof(text), "%s has no address yet", scn->hosts[ck->target].name);
        finish(s, 0, 0, -1, text);
        return;
    }
    json_t *req = check_request(ck, addr);
    if (req == NULL) {
        finish(s, 0, 0, -1, "out of memory");
        return;
    }
    s->inflight = 1;
    c->inflight++;
    if (agentlink_request(l, req, (int)ck->timeout_ms + 3000, on_reply, s) < 0) {
        s->inflight = 0;
        c->inflight--;
        finish(s, 0, 0, -1, "cannot send the probe to the vantage host's agent");
    }
}

static void on_timer(uv_timer_t *t)
{
    run_slot(t->data);
}

int checks_start(checks *c)
{
    for (size_t i = 0; i < c->n_slots; i++) {
        check_slot *s = &c->slots[i];
        uint64_t iv = (uint64_t)c->p->scn->checks[s->k].interval_ms;
        /* Spread first probes over the interval so teams and checks do not
         * all probe in the same millisecond. */
        uint64_t first = 1000 + iv * (uint64_t)i / (uint64_t)c->n_slots;
        uv_timer_start(&s->timer, on_timer, first, iv);
    }
    return 0;
}

void checks_run_now(checks *c, int team)
{
    for (size_t i = 0; i < c->n_slots; i++)
        if (team == 0 || c->slots[i].team == team)
            run_slot(&c->slots[i]);
}

int checks_state(const checks *c, int team, const char *id)
{
    for (size_t i = 0; c && i < c->n_slots; i++)
        if (c->slots[i].team == team && strcmp(c->p->scn->checks[c->slots[i].k].id, id) == 0)
            return c->slots[i].up;
    return -1;
}

json_t *checks_status(const checks *c, int team)
{
    json_t *arr = json_array();
    const scenario *scn = c->p->scn;

    for (size_t i = 0; arr && i < c->n_slots; i++) {
        const check_slot *s = &c->slots[i];
        const scn_check *ck = &scn->checks[s->k];
        if (s->team != team)
            continue;
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:f, s:s}", "id", ck->id,
                              "type", ck->type, "from", scn->hosts[ck->from].name, "target",
                              scn->hosts[ck->target].name, "probes", s->probes, "ok", s->oks,
                              "skipped", s->skipped, "sla", ck->sla, "last_detail", s->detail);
        if (o == NULL)
            continue;
        json_object_set_new(o, "up", s->up < 0 ? json_null() : json_boolean(s->up));
        json_object_set_new(o, "last_ok_ms", s->last_ok_ms ? json_integer(s->last_ok_ms)
                                                           : json_null());
        json_array_append_new(arr, o);
    }
    return arr;
}

static void on_closed(uv_handle_t *h)
{
    check_slot *s = h->data;
    checks *c = s->c;
    c->open_handles--;
    maybe_free(c);
}

void checks_close(checks *c)
{
    if (c == NULL)
        return;
    c->closing = 1;
    if (c->n_slots == 0) {
        maybe_free(c);
        return;
    }
    for (size_t i = 0; i < c->n_slots; i++)
        uv_close((uv_handle_t *)&c->slots[i].timer, on_closed);
}
