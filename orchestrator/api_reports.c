/* api_reports — the API's incident reports and their reviews:
 * GET and POST /api/teams/{team}/reports, GET and PUT
 * /api/teams/{team}/reports/{id}, POST /api/teams/{team}/reports/{id}/reviews.
 * A report's sections and a review's grades are checked against the
 * scenario's report template and rubrics.  Private to the API (api_int.h).
 */
#include <stdio.h>
#include <string.h>

#include "api_int.h"

#define SECTION_MAX (64u * 1024)        /* bytes of one report section */
#define TITLE_MAX 200

static const scn_section *section_of(const scenario *s, const char *id, size_t len)
{
    for (size_t i = 0; s && i < s->n_sections; i++)
        if (strlen(s->sections[i].id) == len && strncmp(s->sections[i].id, id, len) == 0)
            return &s->sections[i];
    return NULL;
}

/* Checks "sections": an object of the scenario's section ids to strings of
 * at most SECTION_MAX bytes.  0, or -1 with err. */
static int sections_ok(const scenario *s, const json_t *secs, char *err, size_t len)
{
    const char *k;
    json_t *v;
    if (!json_is_object(secs)) {
        snprintf(err, len, "sections: expected an object of section texts");
        return -1;
    }
    json_object_foreach((json_t *)secs, k, v) {
        if (section_of(s, k, strlen(k)) == NULL) {
            snprintf(err, len, "sections.%.64s: not a section of this exercise's report", k);
            return -1;
        }
        if (!json_is_string(v) || json_string_length(v) > SECTION_MAX) {
            snprintf(err, len, "sections.%.64s: expected a string of at most %u bytes", k,
                     SECTION_MAX);
            return -1;
        }
    }
    return 0;
}

void api_h_reports(api *a, httpd_req *req, const call *c)
{
    store_err e;
    json_t *rows = store_reports_list(a->st, a->exercise, c->team, &e);
    api_respond_rows(req, rows, &e, NULL);
}

void api_h_report_get(api *a, httpd_req *req, const call *c)
{
    long long id = api_path_id(req, "report");
    store_err e;
    json_t *r, *v;
    size_t i;
    if (id < 0)
        return;
    if ((r = store_report_get(a->st, a->exercise, c->team, id, &e)) == NULL) {
        api_store_fail(req, &e);
        return;
    }
    json_array_foreach(json_object_get(r, "versions"), i, v) {
        json_t *doc = json_object_get(v, "doc");
        json_object_set_new(v, "sections", doc ? json_incref(doc) : json_object());
        json_object_del(v, "doc");
    }
    api_respond_new(req, 200, r);
}

static void report_saved(const store_result *res, void *opaque)
{
    pend *p = opaque;
    if (res->rc < 0)
        api_store_fail(p->req, &res->err);
    else
        api_pend_announce(p, p->id ? 200 : 201, "report", p->c.team,
                          json_pack("{s:I, s:I, s:s}", "id", (json_int_t)res->id, "version",
                                    (json_int_t)res->version, "state",
                                    json_is_true(json_object_get(p->j, "submit"))
                                        ? "submitted"
                                        : "draft"));
    api_pend_free(p);
}

/* A new report (id 0) or a new version of report `id`. */
static void report_save(api *a, httpd_req *req, const call *c, long long id)
{
    json_t *b = httpd_body_json(req, NULL), *title, *submit, *secs, *base;
    char err[256];
    pend *p;
    if (b == NULL)
        return;
    title = json_object_get(b, "title");
    submit = json_object_get(b, "submit");
    secs = json_object_get(b, "sections");
    base = json_object_get(b, "base_version");
    if (!json_is_object(b)) {
        snprintf(err, sizeof err, "body: expected an object");
    } else if ((id == 0 || title) &&
               (!json_is_string(title) || json_string_length(title) == 0 ||
                json_string_length(title) > TITLE_MAX)) {
        snprintf(err, sizeof err, "title: expected a string of 1 to %d bytes", TITLE_MAX);
    } else if (submit && !json_is_boolean(submit)) {
        snprintf(err, sizeof err, "submit: expected true or false");
    } else if (id > 0 && (!json_is_integer(base) || json_integer_value(base) < 1)) {
        snprintf(err, sizeof err, "base_version: expected the version the edit started from");
    } else if (sections_ok(api_scn(a), secs, err, sizeof err) == 0) {
        err[0] = '\0';
    }
    if (err[0]) {
        json_decref(b);
        httpd_error(req, 400, "invalid", "%s", err);
        return;
    }
    if ((p = api_pend_new(a, req, c, b)) == NULL)
        return;
    p->id = id;
    api_pend_queued(p, store_report_save(a->st, a->exercise, c->team, id,
                                         id ? json_integer_value(base) : 0,
                                         json_string_value(title), secs, json_is_true(submit),
                                         c->p.name, api_now_ms(), report_saved, p));
}

void api_h_report_add(api *a, httpd_req *req, const call *c)
{
    report_save(a, req, c, 0);
}

void api_h_report_put(api *a, httpd_req *req, const call *c)
{
    long long id = api_path_id(req, "report");
    if (id >= 0)
        report_save(a, req, c, id);
}

/* ---- reviews ------------------------------------------------------------ */

/* Checks a review's comments and grades against the scenario's sections
 * and rubrics.  0, or -1 with err. */
static int review_ok(const scenario *s, const json_t *comments, const json_t *grades,
                     char *err, size_t len)
{
    size_t i;
    json_t *v;
    const char *k;
    if (comments && !json_is_array(comments)) {
        snprintf(err, len, "comments: expected an array");
        return -1;
    }
    json_array_foreach(comments, i, v) {
        const char *sec = json_string_value(json_object_get(v, "section"));
        json_t *q = json_object_get(v, "quote");
        if (!json_is_object(v) || !json_is_string(json_object_get(v, "text")) ||
            json_string_length(json_object_get(v, "text")) > SECTION_MAX) {
            snprintf(err, len, "comments[%zu].text: expected a string", i);
            return -1;
        }
        if (sec && section_of(s, sec, strlen(sec)) == NULL) {
            snprintf(err, len, "comments[%zu].section: not a section of the report", i);
            return -1;
        }
        if (q && !json_is_null(q) && !json_is_string(q)) {
            snprintf(err, len, "comments[%zu].quote: expected a string", i);
            return -1;
        }
    }
    if (grades && !json_is_object(grades)) {
        snprintf(err, len, "grades: expected an object of \"section:index\": points");
        return -1;
    }
    json_object_foreach((json_t *)grades, k, v) {
        const char *colon = strchr(k, ':');
        const scn_section *sc = colon ? section_of(s, k, (size_t)(colon - k)) : NULL;
        long long idx = colon && colon[1] == '0' && colon[2] == '\0' ? 0 : colon ? api_parse_id(colon + 1) : -1;
        if (sc == NULL || idx < 0 || (size_t)idx >= sc->n_rubric) {
            snprintf(err, len, "grades.%.64s: expected \"section:index\" of a rubric criterion", k);
            return -1;
        }
        if (!json_is_number(v) || json_number_value(v) < 0 ||
            json_number_value(v) > sc->rubric[idx].points) {
            snprintf(err, len, "grades.%.64s: expected points from 0 to %d", k,
                     sc->rubric[idx].points);
            return -1;
        }
    }
    return 0;
}

static void review_added(const store_result *res, void *opaque)
{
    pend *p = opaque;
    if (res->rc < 0)
        api_store_fail(p->req, &res->err);
    else
        api_pend_announce(p, 201, "review", p->c.team,
                          json_pack("{s:I, s:I, s:O}", "id", (json_int_t)res->id, "report",
                                    (json_int_t)p->id, "decision",
                                    json_object_get(p->j, "decision")));
    api_pend_free(p);
}

void api_h_review_add(api *a, httpd_req *req, const call *c)
{
    long long id = api_path_id(req, "report");
    json_t *b, *rep, *ver, *comments, *grades;
    const char *dec;
    char err[256] = "";
    store_err e;
    pend *p;
    if (id < 0)
        return;
    /* The report must be the path's team's: the store's review write only
     * knows the exercise. */
    if ((rep = store_report_get(a->st, a->exercise, c->team, id, &e)) == NULL) {
        api_store_fail(req, &e);
        return;
    }
    json_decref(rep);
    if ((b = httpd_body_json(req, NULL)) == NULL)
        return;
    ver = json_object_get(b, "version");
    comments = json_object_get(b, "comments");
    grades = json_object_get(b, "grades");
    dec = json_string_value(json_object_get(b, "decision"));
    if (!json_is_integer(ver) || json_integer_value(ver) < 1)
        snprintf(err, sizeof err, "version: expected the reviewed version");
    else if (dec == NULL || (strcmp(dec, "comment") && strcmp(dec, "return") &&
                             strcmp(dec, "accept")))
        snprintf(err, sizeof err, "decision: expected comment, return or accept");
    else
        review_ok(api_scn(a), comments, grades, err, sizeof err);
    if (err[0]) {
        json_decref(b);
        httpd_error(req, 400, "invalid", "%s", err);
        return;
    }
    if ((p = api_pend_new(a, req, c, b)) == NULL)
        return;
    p->id = id;
    if (comments == NULL)
        json_object_set_new(b, "comments", json_array());
    if (grades == NULL)
        json_object_set_new(b, "grades", json_object());
    api_pend_queued(p, store_review_add(a->st, a->exercise, id, json_integer_value(ver),
                                        c->p.name, api_now_ms(),
                                        json_object_get(b, "comments"),
                                        json_object_get(b, "grades"), dec, review_added, p));
}
