/* api_scores — the API's scores and the teams' self-analysis:
 * GET /api/teams/{team}/score, GET /api/scoreboard (served again from a
 * cache until an event or BOARD_TTL_MS), GET /api/teams/{team}/scores/series,
 * GET and PUT /api/teams/{team}/analysis, GET /api/analyses.  The score
 * itself comes from the running exercise (api_ops.score) with the
 * instructors' grades from the store.  Private to the API (api_int.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_int.h"

#define BOARD_TTL_MS 1000               /* longest a scoreboard is served again */
#define ANALYSIS_ITEMS_MAX 200
#define ANALYSIS_TEXT_MAX (8u * 1024)   /* bytes of one "what" or "improve" */

/* {"reports":[...],"injects":[...]} for score.h from the store: each
 * report's latest review with grades, each graded inject response. */
static json_t *grades_of(api *a, int team)
{
    const scenario *s = api_scn(a);
    json_t *reps = store_reports_list(a->st, a->exercise, team, NULL);
    json_t *items = store_inbox_list(a->st, a->exercise, team, NULL);
    json_t *resps = store_responses_list(a->st, a->exercise, team, 0, NULL);
    json_t *gr = json_array(), *gi = json_array(), *v, *w;
    double rmax = 0;
    size_t i, k;
    for (i = 0; s && i < s->n_sections; i++)
        for (k = 0; k < s->sections[i].n_rubric; k++)
            rmax += s->sections[i].rubric[k].points;
    json_array_foreach(reps, i, v) {
        long long id = (long long)json_integer_value(json_object_get(v, "id"));
        json_t *full = store_report_get(a->st, a->exercise, team, id, NULL), *last = NULL;
        const char *gk;
        json_t *gv;
        double pts = 0;
        json_array_foreach(json_object_get(full, "reviews"), k, w)
            if (json_object_size(json_object_get(w, "grades")) > 0)
                last = w;
        if (last && rmax > 0) {
            json_object_foreach(json_object_get(last, "grades"), gk, gv)
                pts += json_number_value(gv);
            json_array_append_new(gr, json_pack("{s:I, s:f, s:f, s:s}", "id", (json_int_t)id,
                                                "points", pts, "max", rmax, "reason",
                                                json_string_value(json_object_get(v, "title"))
                                                    ? json_string_value(json_object_get(v, "title"))
                                                    : ""));
        }
        json_decref(full);
    }
    json_array_foreach(items, i, v) {
        json_t *pv = json_object_get(json_object_get(v, "doc"), "points");
        const char *step = json_string_value(json_object_get(v, "step"));
        double best = -1;
        if (step == NULL || !json_is_number(pv) || json_number_value(pv) <= 0)
            continue;
        json_array_foreach(resps, k, w)
            if (json_equal(json_object_get(w, "inbox_id"), json_object_get(v, "id")) &&
                json_is_number(json_object_get(w, "points")) &&
                json_number_value(json_object_get(w, "points")) > best)
                best = json_number_value(json_object_get(w, "points"));
        if (best >= 0)
            json_array_append_new(gi, json_pack("{s:s, s:f, s:f, s:s}", "step", step, "points",
                                                best, "max", json_number_value(pv), "reason",
                                                "graded response"));
    }
    json_decref(reps);
    json_decref(items);
    json_decref(resps);
    return json_pack("{s:o, s:o}", "reports", gr, "injects", gi);
}

static json_t *score_of(api *a, int team)
{
    json_t *g = grades_of(a, team), *s = NULL;
    if (g && a->ops.score)
        s = a->ops.score(a->ops.opaque, team, g);
    json_decref(g);
    return s;
}

json_t *api_team_score(api *a, int team)
{
    return score_of(a, team);
}

static int is_member(const call *c)
{
    return c->p.role == AUTH_ROLE_MEMBER;
}

void api_h_score(api *a, httpd_req *req, const call *c)
{
    json_t *s = score_of(a, c->team), *steps, *v;
    size_t i;
    if (s == NULL) {
        httpd_error(req, 503, "unavailable", "no score for team %d yet", c->team);
        return;
    }
    /* Members must not learn the script of the steps they missed before
     * the end. */
    steps = json_object_get(s, "steps");
    if (is_member(c) && json_is_array(steps) && strcmp(api_exercise_state(a, NULL), "finished")) {
        json_t *kept = json_array();
        json_array_foreach(steps, i, v)
            json_array_append_new(kept, json_pack("{s:O?, s:O?, s:O?, s:O?}", "step",
                                                  json_object_get(v, "step"), "detected",
                                                  json_object_get(v, "detected"), "finding",
                                                  json_object_get(v, "finding"), "points",
                                                  json_object_get(v, "points")));
        json_object_set_new(s, "steps", kept);
    }
    api_respond_new(req, 200, s);
}

void api_board_forget(api *a)
{
    free(a->board);
    a->board = NULL;
    a->board_len = 0;
}

void api_h_scoreboard(api *a, httpd_req *req, const call *c)
{
    const plan *pl = api_plan(a);
    json_t *out;
    int64_t now = api_now_ms();
    (void)c;
    if (a->board && now - a->board_at >= 0 && now - a->board_at < BOARD_TTL_MS) {
        httpd_respond(req, 200, "application/json", a->board, a->board_len);
        return;
    }
    api_board_forget(a);
    out = json_array();
    for (int t = 0; out && pl && t < pl->n_teams; t++) {
        json_t *s = score_of(a, pl->teams[t].num), *axes = json_object(), *v;
        const char *k;
        json_object_foreach(json_object_get(s, "axes"), k, v)
            json_object_set(axes, k, json_object_get(v, "points"));
        json_array_append_new(out, json_pack("{s:i, s:s, s:O?, s:O?, s:o}", "team",
                                             pl->teams[t].num, "name", pl->teams[t].name,
                                             "total", json_object_get(s, "total"), "max",
                                             json_object_get(s, "max"), "axes", axes));
        json_decref(s);
    }
    a->board = out ? json_dumps(out, JSON_COMPACT) : NULL;
    json_decref(out);
    if (a->board == NULL) {
        httpd_error(req, 500, "internal", "out of memory");
        return;
    }
    a->board_len = strlen(a->board);
    a->board_at = now;
    httpd_respond(req, 200, "application/json", a->board, a->board_len);
}

static json_t *series_point(const json_t *v)
{
    return json_pack("{s:O, s:O}", "ts_ms", json_object_get(v, "ts_ms"), "total",
                     json_object_get(v, "total"));
}

void api_h_series(api *a, httpd_req *req, const call *c)
{
    store_err e;
    json_t *rows = store_scores_series(a->st, a->exercise, c->team, 0, &e);
    api_respond_rows(req, rows, &e, series_point);
}

/* ---- self-analysis ----------------------------------------------------- */

/* A stored analysis row as the API answers it (new reference). */
static json_t *analysis_out(const json_t *row)
{
    json_t *items = json_object_get(json_object_get(row, "doc"), "items");
    return json_pack("{s:O, s:o, s:O, s:O}", "team", json_object_get(row, "team"), "items",
                     json_is_array(items) ? json_incref(items) : json_array(), "updated_ms",
                     json_object_get(row, "updated_ms"), "author",
                     json_object_get(row, "author"));
}

void api_h_analysis_get(api *a, httpd_req *req, const call *c)
{
    store_err e;
    json_t *row = store_analysis_get(a->st, a->exercise, c->team, &e);
    if (row == NULL) {
        if (e.code == STORE_ENOTFOUND)
            httpd_error(req, 404, "not_found", "team %d has no analysis yet", c->team);
        else
            api_store_fail(req, &e);
        return;
    }
    api_respond_new(req, 200, analysis_out(row));
    json_decref(row);
}

void api_h_analyses(api *a, httpd_req *req, const call *c)
{
    store_err e;
    json_t *rows = store_analyses_list(a->st, a->exercise, STORE_ALL_TEAMS, &e);
    (void)c;
    api_respond_rows(req, rows, &e, analysis_out);
}

/* An optional text of an item: absent or null is "", else a string of at
 * most ANALYSIS_TEXT_MAX bytes.  NULL with err when it is not. */
static json_t *analysis_text(const json_t *it, size_t i, const char *key, char *err, size_t len)
{
    const json_t *v = json_object_get(it, key);
    if (v == NULL || json_is_null(v))
        return json_string("");
    if (!json_is_string(v) || json_string_length(v) > ANALYSIS_TEXT_MAX) {
        snprintf(err, len, "items[%zu].%s: expected a string of at most %u bytes", i, key,
                 ANALYSIS_TEXT_MAX);
        return NULL;
    }
    return json_incref((json_t *)v);
}

/* Checks a PUT body against the scenario and builds the document to store,
 * {"items":[{"step","cause","what","improve"}]} with nothing else (new
 * reference).  NULL with err and *status (400, or 500 out of memory). */
static json_t *analysis_doc(const scenario *s, int team, const json_t *b, int *status,
                            char *err, size_t len)
{
    static const char *const causes[] = { "plan", "doing", "unknown", NULL };
    const json_t *items = json_object_get(b, "items"), *tv = json_object_get(b, "team"), *it;
    json_t *list = NULL, *out = NULL;
    size_t i;

    *status = 400;
    if (!json_is_object(b)) {
        snprintf(err, len, "body: expected an object with \"items\"");
        goto cleanup;
    }
    /* The UI sends its team along; it must then be the path's. */
    if (tv && (!json_is_integer(tv) || json_integer_value(tv) != team)) {
        snprintf(err, len, "team: expected %d, the team of the path", team);
        goto cleanup;
    }
    if (!json_is_array(items) || json_array_size(items) > ANALYSIS_ITEMS_MAX) {
        snprintf(err, len, "items: expected an array of at most %d entries", ANALYSIS_ITEMS_MAX);
        goto cleanup;
    }
    list = json_array();
    json_array_foreach(items, i, it) {
        const char *step = json_string_value(json_object_get(it, "step"));
        const char *cause = json_string_value(json_object_get(it, "cause"));
        json_t *what = NULL, *improve = NULL;
        int ok = 0;
        if (!json_is_object(it)) {
            snprintf(err, len, "items[%zu]: expected an object", i);
            goto cleanup;
        }
        if (step == NULL || s == NULL || scenario_step_index(s, step) < 0) {
            snprintf(err, len, "items[%zu].step: expected a step of the exercise's timeline", i);
            goto cleanup;
        }
        /* One entry per step, else a reader could not tell which counts. */
        for (size_t k = 0; k < i; k++)
            if (strcmp(json_string_value(json_object_get(json_array_get(items, k), "step")),
                       step) == 0) {
                snprintf(err, len, "items[%zu].step: %.64s is already items[%zu]", i, step, k);
                goto cleanup;
            }
        for (const char *const *k = causes; cause && *k; k++)
            ok |= strcmp(*k, cause) == 0;
        if (!ok) {
            snprintf(err, len, "items[%zu].cause: expected plan, doing or unknown", i);
            goto cleanup;
        }
        if ((what = analysis_text(it, i, "what", err, len)) == NULL ||
            (improve = analysis_text(it, i, "improve", err, len)) == NULL) {
            json_decref(what);
            goto cleanup;
        }
        /* json_pack takes what and improve, also when it fails. */
        if (json_array_append_new(list, json_pack("{s:s, s:s, s:o, s:o}", "step", step,
                                                  "cause", cause, "what", what, "improve",
                                                  improve)) < 0) {
            *status = 500;
            snprintf(err, len, "out of memory");
            goto cleanup;
        }
    }
    if ((out = json_pack("{s:O}", "items", list)) == NULL) {
        *status = 500;
        snprintf(err, len, "out of memory");
    }
cleanup:
    json_decref(list);
    return out;
}

static void analysis_saved(const store_result *res, void *opaque)
{
    pend *p = opaque;
    if (res->rc < 0) {
        api_store_fail(p->req, &res->err);
    } else {
        api_respond_new(p->req, 200,
                        json_pack("{s:i, s:O, s:I, s:s}", "team", p->c.team, "items",
                                  json_object_get(p->j, "items"), "updated_ms",
                                  (json_int_t)p->id, "author", p->c.p.name));
    }
    api_pend_free(p);
}

void api_h_analysis_put(api *a, httpd_req *req, const call *c)
{
    json_t *b = httpd_body_json(req, NULL), *doc;
    char err[256];
    int status;
    pend *p;
    if (b == NULL)
        return;
    doc = analysis_doc(api_scn(a), c->team, b, &status, err, sizeof err);
    json_decref(b);
    if (doc == NULL) {
        httpd_error(req, status, api_status_code(status), "%s", err);
        return;
    }
    if ((p = api_pend_new(a, req, c, doc)) == NULL)
        return;
    p->id = api_now_ms();
    api_pend_queued(p, store_analysis_put(a->st, a->exercise, c->team, doc, c->p.name, p->id,
                                          analysis_saved, p));
}
