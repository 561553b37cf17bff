/* api_users — the API's session and user routes: POST /api/login,
 * POST /api/logout, GET /api/me, GET and POST /api/users.  Private to the
 * API (api_int.h).
 */
#include <stdio.h>
#include <string.h>

#include "api_int.h"

/* ---- session ----------------------------------------------------------- */

static void login_done(const auth_result *res, void *opaque)
{
    pend *p = opaque;
    httpd_req *req = p->req;
    if (res->rc == 0) {
        char cookie[256];
        const json_t *u = res->user;
        json_t *out;
        long max_age = (long)((res->expires_ms - api_now_ms()) / 1000);
        if (auth_set_cookie(res->token, max_age > 0 ? max_age : 0, p->a->secure, cookie,
                            sizeof cookie) < 0) {
            httpd_error(req, 500, "internal", "cannot build the session cookie");
            api_pend_free(p);
            return;
        }
        httpd_add_header(req, "Set-Cookie", cookie);
        out = json_pack("{s:{s:O, s:O, s:O, s:O}, s:s}", "user", "id",
                        json_object_get(u, "id"), "name", json_object_get(u, "name"), "role",
                        json_object_get(u, "role"), "team", json_object_get(u, "team"), "csrf",
                        res->csrf);
        api_respond_new(req, 200, out);
    } else {
        switch (res->err.code) {
        case AUTH_EBADCRED:
            httpd_error(req, 401, "unauthenticated", "wrong name or password");
            break;
        case AUTH_EDISABLED:
            httpd_error(req, 403, "forbidden", "this account is disabled");
            break;
        case AUTH_ERATE: {
            char ra[16];
            snprintf(ra, sizeof ra, "%d", res->retry_after_s > 0 ? res->retry_after_s : 1);
            httpd_add_header(req, "Retry-After", ra);
            httpd_error(req, 429, "rate_limited", "too many attempts, retry in %s s", ra);
            break;
        }
        case AUTH_EINVAL:
            httpd_error(req, 400, "invalid", "%s", res->err.msg);
            break;
        default:
            httpd_error(req, 500, "internal", "%s", res->err.msg);
        }
    }
    api_pend_free(p);
}

void api_h_login(api *a, httpd_req *req, const call *c)
{
    json_t *b = httpd_body_json(req, NULL);
    const char *name, *pw;
    char addr[128];
    char *colon;
    pend *p;
    if (b == NULL)
        return;
    name = json_string_value(json_object_get(b, "name"));
    pw = json_string_value(json_object_get(b, "password"));
    if (name == NULL || pw == NULL) {
        json_decref(b);
        httpd_error(req, 400, "invalid", "name and password: required strings");
        return;
    }
    /* The rate limit is per address, not per connection's port. */
    snprintf(addr, sizeof addr, "%s", httpd_remote(req));
    if ((colon = strrchr(addr, ':')) != NULL)
        *colon = '\0';
    if ((p = api_pend_new(a, req, c, NULL)) == NULL) {
        json_decref(b);
        return;
    }
    if (auth_login_async(a->au, name, pw, addr, login_done, p) < 0) {
        httpd_error(req, 500, "internal", "out of memory");
        api_pend_free(p);
    }
    json_decref(b);
}

static void logout_done(const auth_result *res, void *opaque)
{
    pend *p = opaque;
    char cookie[256];
    if (res->rc < 0 && res->err.code != AUTH_ENOSESSION) {
        httpd_error(p->req, 500, "internal", "%s", res->err.msg);
    } else {
        if (auth_clear_cookie(p->a->secure, cookie, sizeof cookie) == 0)
            httpd_add_header(p->req, "Set-Cookie", cookie);
        httpd_respond(p->req, 204, NULL, NULL, 0);
    }
    api_pend_free(p);
}

void api_h_logout(api *a, httpd_req *req, const call *c)
{
    pend *p = api_pend_new(a, req, c, NULL);
    if (p == NULL)
        return;
    if (auth_logout_async(a->au, httpd_header(req, "Cookie"), logout_done, p) < 0) {
        httpd_error(req, 500, "internal", "out of memory");
        api_pend_free(p);
    }
}

static json_t *user_json(const auth_principal *p)
{
    return json_pack("{s:I, s:s, s:s, s:i}", "id", (json_int_t)p->user_id, "name", p->name,
                     "role", auth_role_name(p->role), "team", p->team);
}

void api_h_me(api *a, httpd_req *req, const call *c)
{
    api_respond_new(req, 200, json_pack("{s:o, s:s, s:s}", "user", user_json(&c->p), "csrf",
                                        c->p.csrf, "exercise", a->exercise));
}

/* ---- users ------------------------------------------------------------- */

/* A user row as GET /api/users lists it: never its password hash. */
static json_t *user_row(const json_t *v)
{
    return json_pack("{s:O, s:O, s:O, s:O, s:O}", "id", json_object_get(v, "id"), "name",
                     json_object_get(v, "name"), "role", json_object_get(v, "role"), "team",
                     json_object_get(v, "team"), "disabled", json_object_get(v, "disabled"));
}

void api_h_users(api *a, httpd_req *req, const call *c)
{
    store_err e;
    json_t *rows = store_users_list(a->st, &e);
    (void)c;
    api_respond_rows(req, rows, &e, user_row);
}

static void user_stored(const store_result *res, void *opaque)
{
    pend *p = opaque;
    if (res->rc < 0) {
        api_store_fail(p->req, &res->err);
    } else {
        json_t *out = json_pack("{s:{s:I, s:s, s:s, s:i, s:b}}", "user", "id",
                                (json_int_t)res->id, "name", p->name, "role", p->role, "team",
                                p->team, "disabled", 0);
        if (out && p->generated)
            json_object_set_new(out, "password", json_string(p->pw));
        api_respond_new(p->req, 201, out);
    }
    api_pend_free(p);
}

static void user_hash_work(uv_work_t *w)
{
    pend *p = w->data;
    char err[128];
    p->rc = auth_hash_password_kdf(&p->a->kdf, p->pw, p->hash, err, sizeof err);
}

static void user_hash_done(uv_work_t *w, int status)
{
    pend *p = w->data;
    if (status < 0 || p->rc < 0) {
        httpd_error(p->req, 500, "internal", "the password could not be hashed");
        api_pend_free(p);
        return;
    }
    api_pend_queued(p, store_user_add(p->a->st, p->name, p->role, p->team, p->hash,
                                      api_now_ms(), user_stored, p));
}

void api_h_user_add(api *a, httpd_req *req, const call *c)
{
    json_t *b = httpd_body_json(req, NULL), *tv;
    const char *name, *role, *pw;
    auth_role r;
    char err[160] = "";
    int team = 0;
    pend *p = NULL;
    if (b == NULL)
        return;
    name = json_string_value(json_object_get(b, "name"));
    role = json_string_value(json_object_get(b, "role"));
    pw = json_string_value(json_object_get(b, "password"));
    tv = json_object_get(b, "team");
    r = role ? auth_role_parse(role) : AUTH_ROLE_NONE;
    if (json_is_integer(tv))
        team = (int)json_integer_value(tv);
    if (name == NULL || name[0] == '\0' || strlen(name) > AUTH_NAME_MAX)
        snprintf(err, sizeof err, "name: expected 1 to %d bytes", AUTH_NAME_MAX);
    else if (r == AUTH_ROLE_NONE)
        snprintf(err, sizeof err, "role: expected instructor, member or observer");
    else if (r == AUTH_ROLE_MEMBER && (team < 1 || team > a->n_teams))
        snprintf(err, sizeof err, "team: a member needs a team from 1 to %d", a->n_teams);
    else if (r != AUTH_ROLE_MEMBER && tv && !json_is_null(tv) && team != 0)
        snprintf(err, sizeof err, "team: only members have a team");
    else if (json_object_get(b, "password") &&
             (pw == NULL || strlen(pw) < AUTH_PW_MIN || strlen(pw) > AUTH_PW_MAX))
        snprintf(err, sizeof err, "password: expected %d to %d bytes", AUTH_PW_MIN,
                 AUTH_PW_MAX);
    if (err[0]) {
        httpd_error(req, 400, "invalid", "%s", err);
        goto cleanup;
    }
    if ((p = api_pend_new(a, req, c, NULL)) == NULL)
        goto cleanup;
    snprintf(p->name, sizeof p->name, "%s", name);
    snprintf(p->role, sizeof p->role, "%s", auth_role_name(r));
    p->team = r == AUTH_ROLE_MEMBER ? team : 0;
    if (pw) {
        snprintf(p->pw, sizeof p->pw, "%s", pw);
    } else {
        p->generated = 1;
        auth_generate_password(p->pw, sizeof p->pw);
    }
    p->work.data = p;
    /* Hashing is memory-hard and slow: never on the loop. */
    if (uv_queue_work(a->loop, &p->work, user_hash_work, user_hash_done) < 0) {
        httpd_error(req, 500, "internal", "cannot queue the password hash");
        api_pend_free(p);
    }
cleanup:
    json_decref(b);
}
