/* scorecard — records to score input.  See scorecard.h. */
#include "scorecard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "units.h"

void scorecard_config(const scenario *s, score_config *c)
{
    const scn_scoring *sc = &s->scoring;

    score_config_defaults(c);
    c->w_detection = sc->w_detection;
    c->w_availability = sc->w_availability;
    c->w_reports = sc->w_reports;
    c->w_injects = sc->w_injects;
    c->window_ms = sc->detect_window_ms;
    c->full_ms = sc->detect_full_ms;
    c->floor = sc->detect_floor;
    c->fp_penalty = sc->fp_penalty;
    c->fp_cap = sc->fp_cap;
    c->c2_quiet_ms = sc->c2_quiet_ms;
    if (sc->decay && strcmp(sc->decay, "exponential") == 0)
        c->decay = SCORE_DECAY_EXPONENTIAL;
    else if (sc->decay && strcmp(sc->decay, "step") == 0)
        c->decay = SCORE_DECAY_STEP;
    else
        c->decay = SCORE_DECAY_LINEAR;
}

static long long line_ms(const json_t *line, const char *key)
{
    const json_t *v = json_object_get(line, key);
    long long ms = -1;

    if (json_is_number(v))
        return (long long)json_number_value(v);
    if (json_is_string(v) && units_utc_parse(json_string_value(v), &ms) == 0)
        return ms;
    return -1;
}

/* "198.18.2.1:3128" → addr, port. */
static json_t *host_port(const char *s)
{
    const char *colon = s ? strrchr(s, ':') : NULL;
    if (colon == NULL || colon == s)
        return NULL;
    return json_pack("{s:s%, s:i}", "addr", s, (size_t)(colon - s), "port", atoi(colon + 1));
}

/* What a beacon of this step looks like on the wire. */
static json_t *c2_of(const scn_step *st, const json_t *start)
{
    const char *caddr = json_string_value(json_object_get(start, "target_addr"));
    const char *from = json_string_value(json_object_get(start, "actor_addr"));
    const char *channel = json_string_value(json_object_get(st->params, "channel"));
    const json_t *port = json_object_get(st->params, "port");
    int dns = channel && strcmp(channel, "dns") == 0;
    json_t *c;

    if (caddr == NULL)
        return NULL;
    c = json_pack("{s:s, s:I}", "addr", caddr, "port",
                  json_is_integer(port) ? json_integer_value(port) : (json_int_t)(dns ? 53 : 80));
    if (c && from)
        json_object_set_new(c, "from", json_string(from));
    json_t *via = host_port(json_string_value(json_object_get(st->params, "proxy")));
    if (c && via)
        json_object_set_new(c, "via", via);
    else
        json_decref(via);
    return c;
}

/* Marks the step's flows with the "wire" line's verdicts. */
static void apply_wire(json_t *step, const json_t *wire)
{
    json_t *flows = json_object_get(step, "flows");
    size_t i, k;
    json_t *f, *w;

    json_array_foreach(flows, i, f) {
        const char *cid = json_string_value(json_object_get(f, "community_id"));
        json_array_foreach(json_object_get(wire, "flows"), k, w) {
            const char *wc = json_string_value(json_object_get(w, "community_id"));
            if (cid && wc && strcmp(cid, wc) == 0)
                json_object_set(f, "seen", json_object_get(w, "seen"));
        }
    }
}

json_t *scorecard_input(const scenario *s, int team, long long now_ms, const json_t *journal,
                        const json_t *findings, const json_t *check_results,
                        const json_t *wire_flows, const json_t *grades)
{
    json_t *in = json_pack("{s:i, s:I}", "team", team, "now_ms", (json_int_t)now_ms);
    json_t *steps = json_array(), *injects = json_array(), *checks = json_array();
    /* Step id → its latest step object (a reset runs a step again). */
    json_t *by_step = json_object();
    size_t i;
    json_t *line;

    json_array_foreach(journal, i, line) {
        const char *kind = json_string_value(json_object_get(line, "kind"));
        const char *sid = json_string_value(json_object_get(line, "step"));
        int idx = sid ? scenario_step_index(s, sid) : -1;
        if (kind == NULL || idx < 0 || json_integer_value(json_object_get(line, "team")) != team)
            continue;
        const scn_step *st = &s->steps[idx];
        if (strcmp(kind, "step_start") == 0 || strcmp(kind, "inject") == 0) {
            long long start = line_ms(line, "scheduled_ms");
            if (start < 0)
                start = line_ms(line, "ts");
            if (strcmp(st->action, "inject.message") == 0) {
                const json_t *dl = json_object_get(st->params, "deadline");
                int64_t dms = 0;
                if (json_is_string(dl))
                    units_duration_parse(json_string_value(dl), &dms);
                const json_t *pts = json_object_get(st->params, "points");
                json_t *inj = json_pack("{s:s, s:I, s:I, s:n}", "step", st->id, "points",
                                        json_is_integer(pts) ? json_integer_value(pts) : 10,
                                        "start_ms", (json_int_t)start, "responded_ms");
                /* No deadline: nothing is ever late. */
                if (inj && dms > 0)
                    json_object_set_new(inj, "deadline_ms", json_integer(dms));
                json_array_append_new(injects, inj);
                continue;
            }
            json_t *o = json_pack("{s:s, s:s, s:s?, s:s?, s:s?, s:I, s:s, s:s?, s:O?, s:O?}",
                                  "step", st->id, "action", st->action, "technique",
                                  json_string_value(json_object_get(line, "technique")),
                                  "actor", st->actor >= 0 ? s->hosts[st->actor].name : NULL,
                                  "target", st->target >= 0 ? s->hosts[st->target].name : NULL,
                                  "start_ms", (json_int_t)start, "outcome", "running",
                                  "visibility",
                                  json_string_value(json_object_get(line, "visibility")),
                                  "actor_addr", json_object_get(line, "actor_addr"),
                                  "target_addr", json_object_get(line, "target_addr"));
            if (o == NULL)
                continue;
            if (strcmp(st->action, "c2.beacon") == 0) {
                json_t *c2 = c2_of(st, line);
                if (c2)
                    json_object_set_new(o, "c2", c2);
            }
            json_object_set(by_step, st->id, o);
            json_array_append_new(steps, o);
        } else if (strcmp(kind, "step_result") == 0) {
            json_t *o = json_object_get(by_step, st->id);
            if (o == NULL)
                continue;
            const char *outcome = json_string_value(json_object_get(line, "outcome"));
            json_object_set_new(o, "outcome", json_string(outcome ? outcome : "error"));
            long long end = line_ms(line, "ts");
            if (end >= 0)
                json_object_set_new(o, "end_ms", json_integer(end));
            json_t *flows = json_object_get(line, "flows");
            json_object_set_new(o, "flows", flows ? json_deep_copy(flows) : json_array());
            json_t *art = json_object_get(line, "artefacts");
            if (art)
                json_object_set(o, "artefacts", art);
        } else if (strcmp(kind, "wire") == 0) {
            json_t *o = json_object_get(by_step, st->id);
            if (o)
                apply_wire(o, line);
        }
    }
    json_decref(by_step);

    for (size_t k = 0; k < s->n_checks; k++) {
        const scn_check *ck = &s->checks[k];
        json_t *res = json_array();
        json_array_foreach(check_results, i, line) {
            const char *id = json_string_value(json_object_get(line, "check"));
            if (id == NULL || strcmp(id, ck->id) != 0 ||
                json_integer_value(json_object_get(line, "team")) != team)
                continue;
            json_array_append_new(res, json_pack("{s:I, s:b, s:s?}", "ts_ms",
                                                 (json_int_t)line_ms(line, "ts_ms"), "ok",
                                                 json_is_true(json_object_get(line, "ok")),
                                                 "detail",
                                                 json_string_value(json_object_get(line, "detail"))));
        }
        json_array_append_new(checks, json_pack("{s:s, s:f, s:I, s:o}", "id", ck->id, "sla",
                                                ck->sla, "interval_ms",
                                                (json_int_t)ck->interval_ms, "results", res));
    }
    json_object_set_new(in, "steps", steps);
    json_object_set_new(in, "inject_steps", injects);
    json_object_set_new(in, "checks", checks);
    json_object_set_new(in, "findings", findings ? json_deep_copy(findings) : json_array());
    json_object_set_new(in, "wire_flows", wire_flows ? json_deep_copy(wire_flows) : json_array());
    if (grades)
        json_object_set(in, "grades", (json_t *)grades);
    return in;
}

json_t *scorecard_team(const scenario *s, int team, long long now_ms, const json_t *journal,
                       const json_t *findings, const json_t *check_results,
                       const json_t *wire_flows, const json_t *grades, char *err,
                       size_t errlen)
{
    score_config cfg;
    json_t *in, *out;

    scorecard_config(s, &cfg);
    in = scorecard_input(s, team, now_ms, journal, findings, check_results, wire_flows, grades);
    if (in == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    out = score_team(&cfg, in, err, errlen);
    json_decref(in);
    return out;
}
