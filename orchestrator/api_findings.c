/* api_findings — the API's findings routes: GET and POST
 * /api/teams/{team}/findings, PATCH /api/findings/{id} (an instructor's
 * label).  The running exercise files and stores them (api_ops,
 * findings.h).  Private to the API (api_int.h).
 */
#include "api_int.h"
#include "findings.h"

void api_h_findings(api *a, httpd_req *req, const call *c)
{
    json_t *f = a->ops.findings ? a->ops.findings(a->ops.opaque, c->team) : json_array();
    api_respond_new(req, 200, f);
}

static void finding_done(void *opaque, int status, const json_t *result, const char *error)
{
    pend *p = opaque;
    if (status >= 200 && status < 300 && result) {
        /* The exercise announces findings itself (api_ops.finding_add and
         * the CLI's alike), so no event here. */
        httpd_respond_json(p->req, p->id ? 200 : 201, (json_t *)result);
    } else {
        int s = status >= 400 ? status : 500;
        httpd_error(p->req, s, api_status_code(s), "%s", error ? error : "the finding failed");
    }
    api_pend_free(p);
}

void api_h_finding_add(api *a, httpd_req *req, const call *c)
{
    json_t *b = httpd_body_json(req, NULL);
    pend *p;
    if (b == NULL)
        return;
    if (!json_is_object(b)) {
        json_decref(b);
        httpd_error(req, 400, "invalid", "body: expected a finding object");
        return;
    }
    if ((p = api_pend_new(a, req, c, NULL)) == NULL) {
        json_decref(b);
        return;
    }
    if (a->ops.finding_add == NULL ||
        a->ops.finding_add(a->ops.opaque, c->team, b, c->p.name, finding_done, p) < 0) {
        httpd_error(req, 503, "unavailable", "findings cannot be filed now");
        api_pend_free(p);
    }
    json_decref(b);
}

void api_h_finding_label(api *a, httpd_req *req, const call *c)
{
    long long id = api_parse_id(httpd_param(req, "id"));
    json_t *b = httpd_body_json(req, NULL);
    const char *label = NULL;
    pend *p;
    if (b == NULL)
        return;
    if (id < 0 || !json_is_string(json_object_get(b, "label")) ||
        findings_label_parse(json_string_value(json_object_get(b, "label")), &label) < 0) {
        json_decref(b);
        httpd_error(req, id < 0 ? 404 : 400, id < 0 ? "not_found" : "invalid",
                    id < 0 ? "no such finding" : "label: expected duplicate, benign, unscripted or none");
        return;
    }
    json_decref(b);
    if ((p = api_pend_new(a, req, c, NULL)) == NULL)
        return;
    p->id = id;
    if (a->ops.finding_label == NULL ||
        a->ops.finding_label(a->ops.opaque, id, label, c->p.name, finding_done, p) < 0) {
        httpd_error(req, 503, "unavailable", "findings cannot be relabelled now");
        api_pend_free(p);
    }
}
