/* api_inbox — the API's inbox of injects and the teams' responses:
 * GET /api/teams/{team}/inbox (items with their responses),
 * POST /api/teams/{team}/inbox/{id}/responses, and an instructor's grade
 * of a response, POST /api/responses/{id}/grade.  Private to the API
 * (api_int.h).
 */
#include "api_int.h"

#define RESPONSE_MAX (64u * 1024)

void api_h_inbox(api *a, httpd_req *req, const call *c)
{
    store_err e;
    json_t *items = store_inbox_list(a->st, a->exercise, c->team, &e), *resps = NULL,
           *users = NULL, *out = NULL, *it, *r;
    size_t i, k;
    if (items == NULL || (resps = store_responses_list(a->st, a->exercise, c->team, 0, &e)) ==
                             NULL ||
        (users = store_users_list(a->st, &e)) == NULL) {
        api_store_fail(req, &e);
        goto cleanup;
    }
    out = json_array();
    json_array_foreach(items, i, it) {
        json_t *o = json_pack("{s:O, s:O, s:O, s:O}", "id", json_object_get(it, "id"), "step",
                              json_object_get(it, "step"), "ts_ms",
                              json_object_get(it, "ts_ms"), "deadline_ms",
                              json_object_get(it, "deadline_ms"));
        json_t *doc = json_object_get(it, "doc"), *list = json_array();
        static const char *const keys[] = { "from", "channel", "subject", "body", "points",
                                            NULL };
        for (const char *const *kk = keys; o && *kk; kk++) {
            json_t *v = json_object_get(doc, *kk);
            json_object_set(o, *kk, v ? v : json_null());
        }
        json_array_foreach(resps, k, r) {
            json_t *u, *uv;
            size_t ui;
            const char *uname = NULL;
            if (!json_equal(json_object_get(r, "inbox_id"), json_object_get(it, "id")))
                continue;
            u = json_object_get(r, "user_id");
            json_array_foreach(users, ui, uv)
                if (json_equal(json_object_get(uv, "id"), u))
                    uname = json_string_value(json_object_get(uv, "name"));
            json_array_append_new(list, json_pack("{s:O, s:s?, s:O, s:O, s:O, s:O}", "id",
                                                  json_object_get(r, "id"), "user", uname,
                                                  "ts_ms", json_object_get(r, "ts_ms"), "text",
                                                  json_object_get(r, "text"), "points",
                                                  json_object_get(r, "points"), "grader",
                                                  json_object_get(r, "grader")));
        }
        if (o)
            json_object_set_new(o, "responses", list);
        else
            json_decref(list);
        json_array_append_new(out, o);
    }
    api_respond_new(req, 200, json_incref(out));
cleanup:
    json_decref(out);
    json_decref(items);
    json_decref(resps);
    json_decref(users);
}

static void response_added(const store_result *res, void *opaque)
{
    pend *p = opaque;
    if (res->rc < 0)
        api_store_fail(p->req, &res->err);
    else
        api_pend_announce(p, 201, "response", p->c.team,
                          json_pack("{s:I, s:I, s:s, s:I, s:O, s:n, s:n}", "id",
                                    (json_int_t)res->id, "inbox_id", (json_int_t)p->id, "user",
                                    p->c.p.name, "ts_ms", (json_int_t)api_now_ms(), "text",
                                    json_object_get(p->j, "text"), "points", "grader"));
    api_pend_free(p);
}

void api_h_response_add(api *a, httpd_req *req, const call *c)
{
    long long id = api_path_id(req, "inbox item");
    json_t *b, *text;
    pend *p;
    if (id < 0)
        return;
    if ((b = httpd_body_json(req, NULL)) == NULL)
        return;
    text = json_object_get(b, "text");
    if (!json_is_string(text) || json_string_length(text) == 0 ||
        json_string_length(text) > RESPONSE_MAX) {
        json_decref(b);
        httpd_error(req, 400, "invalid", "text: expected a string of 1 to %u bytes",
                    RESPONSE_MAX);
        return;
    }
    if ((p = api_pend_new(a, req, c, b)) == NULL)
        return;
    p->id = id;
    api_pend_queued(p, store_response_add(a->st, a->exercise, c->team, id, c->p.user_id,
                                          api_now_ms(), json_string_value(text),
                                          response_added, p));
}

/* ---- grades ------------------------------------------------------------- */

static void response_graded(const store_result *res, void *opaque)
{
    pend *p = opaque;
    if (res->rc < 0)
        api_store_fail(p->req, &res->err);
    else
        api_pend_announce(p, 200, "response", p->team,
                          json_pack("{s:I, s:O, s:s}", "id", (json_int_t)p->id, "points",
                                    json_object_get(p->j, "points"), "grader", p->c.p.name));
    api_pend_free(p);
}

void api_h_response_grade(api *a, httpd_req *req, const call *c)
{
    long long id = api_path_id(req, "response");
    json_t *b = NULL, *resps = NULL, *items = NULL, *r = NULL, *it = NULL, *v, *pts;
    double max = -1;
    size_t i;
    store_err e;
    pend *p;
    if (id < 0)
        return;
    if ((resps = store_responses_list(a->st, a->exercise, STORE_ALL_TEAMS, 0, &e)) == NULL ||
        (items = store_inbox_list(a->st, a->exercise, STORE_ALL_TEAMS, &e)) == NULL) {
        api_store_fail(req, &e);
        goto cleanup;
    }
    json_array_foreach(resps, i, v)
        if (json_integer_value(json_object_get(v, "id")) == id)
            r = v;
    json_array_foreach(items, i, v)
        if (r && json_equal(json_object_get(v, "id"), json_object_get(r, "inbox_id")))
            it = v;
    if (r == NULL || it == NULL) {
        httpd_error(req, 404, "not_found", "no response %lld", id);
        goto cleanup;
    }
    if (json_is_number(json_object_get(json_object_get(it, "doc"), "points")))
        max = json_number_value(json_object_get(json_object_get(it, "doc"), "points"));
    if ((b = httpd_body_json(req, NULL)) == NULL)
        goto cleanup;
    pts = json_object_get(b, "points");
    if (!json_is_number(pts) || json_number_value(pts) < 0 ||
        (max >= 0 && json_number_value(pts) > max)) {
        httpd_error(req, 400, "invalid", "points: expected a number from 0 to %g",
                    max >= 0 ? max : 1000.0);
        goto cleanup;
    }
    if ((p = api_pend_new(a, req, c, json_incref(b))) == NULL)
        goto cleanup;
    p->id = id;
    p->team = (int)json_integer_value(json_object_get(r, "team"));
    api_pend_queued(p, store_response_grade(a->st, a->exercise, id, json_number_value(pts),
                                            c->p.name, api_now_ms(), response_graded, p));
cleanup:
    json_decref(b);
    json_decref(resps);
    json_decref(items);
}
