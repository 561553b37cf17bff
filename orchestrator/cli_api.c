/* cli_api — the control commands of the command line, sent through the
 * HTTP API of a running `cyrange serve` (see apiclient.h).
 *
 * Each command of the control socket maps to the route the web UI uses,
 * so a command typed on the host goes through the same validation,
 * durability and audit as a click: the answer is turned back into the
 * control socket's reply shape, and the commands above it need not know
 * which way it went.  Commands with no route here (a guest request:
 * `cyrange exec`, `probe`) stay on the root-only control socket.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apiclient.h"
#include "cli.h"

#define API_TIMEOUT_MS 60000 /* a reset of a team rebuilds its guests first */

/* One call; the answer on a 2xx (new reference, never NULL), else NULL
 * with the server's message in `err`.  *unreachable is set when the
 * server could not be reached at all. */
static json_t *call(apiclient *ac, const char *method, const char *path, const json_t *body,
                    int *unreachable, char *err, size_t errlen)
{
    json_t *ans = NULL;
    int st = apiclient_call(ac, method, path, body, API_TIMEOUT_MS, &ans, err, errlen);
    if (st < 0) {
        *unreachable = 1;
        return NULL;
    }
    if (st < 200 || st > 299) {
        snprintf(err, errlen, "%s (HTTP %d)", apiclient_error_message(ans, "refused"), st);
        json_decref(ans);
        return NULL;
    }
    return ans ? ans : json_object();
}

/* The seconds field `key_s` from the API's milliseconds `key_ms`. */
static void seconds_of(json_t *dst, const char *key_s, const json_t *src, const char *key_ms)
{
    const json_t *v = json_object_get(src, key_ms);
    if (json_is_integer(v))
        json_object_set_new(dst, key_s, json_real((double)json_integer_value(v) / 1000.0));
}

/* GET /api/timeline in the shape of the control socket's "status". */
static json_t *status_of(const json_t *tl)
{
    json_t *teams = json_array(), *tv, *sv;
    size_t i, k;
    json_array_foreach(json_object_get(tl, "teams"), i, tv) {
        json_t *t = json_pack("{s:O?, s:O?, s:O?}", "team", json_object_get(tv, "team"),
                              "clock", json_object_get(tv, "clock"), "speed",
                              json_object_get(tv, "speed"));
        json_t *steps = json_array();
        seconds_of(t, "elapsed_s", tv, "elapsed_ms");
        json_array_foreach(json_object_get(tv, "steps"), k, sv) {
            json_t *s = json_deep_copy(sv);
            seconds_of(s, "due_s", sv, "due_ms");
            seconds_of(s, "started_s", sv, "started_ms");
            seconds_of(s, "ended_s", sv, "ended_ms");
            json_object_del(s, "due_ms");
            json_object_del(s, "started_ms");
            json_object_del(s, "ended_ms");
            json_array_append_new(steps, s);
        }
        json_object_set_new(t, "steps", steps);
        json_array_append_new(teams, t);
    }
    return json_pack("{s:b, s:o}", "ok", 1, "teams", teams);
}

/* Every team's score (team 0) or one team's, as {"teams":[...]}. */
static json_t *scores_of(apiclient *ac, int team, int *unreachable, char *err, size_t errlen)
{
    json_t *teams = json_array(), *ex = NULL, *tv;
    char path[64];
    size_t i;
    if (team == 0 && (ex = call(ac, "GET", "/api/exercise", NULL, unreachable, err,
                                errlen)) == NULL) {
        json_decref(teams);
        return NULL;
    }
    for (i = 0; team ? i < 1 : i < json_array_size(json_object_get(ex, "teams")); i++) {
        tv = json_array_get(json_object_get(ex, "teams"), i);
        snprintf(path, sizeof(path), "/api/teams/%d/score",
                 team ? team : (int)json_integer_value(json_object_get(tv, "team")));
        json_t *s = call(ac, "GET", path, NULL, unreachable, err, errlen);
        if (s == NULL) {
            json_decref(teams);
            json_decref(ex);
            return NULL;
        }
        json_array_append_new(teams, s);
    }
    json_decref(ex);
    return json_pack("{s:b, s:o}", "ok", 1, "teams", teams);
}

/* -1 when `req` has no route here (the caller uses the control socket);
 * else 0 with *reply (new reference, {"ok":...} as the control socket
 * answers) or with *reply NULL and `err`; *unreachable when the server
 * did not answer at all. */
int cli_api_control(apiclient *ac, const json_t *req, json_t **reply, int *unreachable,
                    char *err, size_t errlen)
{
    static const char *const steer[] = { "start", "pause", "resume", "reset", "skip", "run",
                                         NULL };
    const char *cmd = json_string_value(json_object_get(req, "cmd"));
    int team = (int)json_integer_value(json_object_get(req, "team"));
    char path[96];
    json_t *ans = NULL, *body = NULL;

    *reply = NULL;
    *unreachable = 0;
    if (cmd == NULL)
        return -1;
    for (const char *const *k = steer; *k; k++)
        if (strcmp(*k, cmd) == 0) {
            body = json_pack("{s:s, s:i}", "cmd", cmd, "team", team);
            if (json_is_string(json_object_get(req, "step")))
                json_object_set(body, "step", json_object_get(req, "step"));
            *reply = call(ac, "POST", "/api/control", body, unreachable, err, errlen);
            json_decref(body);
            return 0;
        }
    if (strcmp(cmd, "status") == 0) {
        if ((ans = call(ac, "GET", "/api/timeline", NULL, unreachable, err, errlen)) != NULL)
            *reply = status_of(ans);
    } else if (strcmp(cmd, "guests") == 0) {
        if ((*reply = call(ac, "GET", "/api/guests", NULL, unreachable, err, errlen)) != NULL)
            json_object_set_new(*reply, "ok", json_true());
    } else if (strcmp(cmd, "findings") == 0) {
        snprintf(path, sizeof(path), "/api/teams/%d/findings", team);
        if ((ans = call(ac, "GET", path, NULL, unreachable, err, errlen)) != NULL)
            *reply = json_pack("{s:b, s:O}", "ok", 1, "findings", ans);
    } else if (strcmp(cmd, "finding") == 0) {
        snprintf(path, sizeof(path), "/api/teams/%d/findings", team);
        if ((*reply = call(ac, "POST", path, json_object_get(req, "finding"), unreachable, err,
                           errlen)) != NULL)
            json_object_set_new(*reply, "ok", json_true());
    } else if (strcmp(cmd, "label") == 0) {
        snprintf(path, sizeof(path), "/api/findings/%lld",
                 (long long)json_integer_value(json_object_get(req, "finding")));
        body = json_pack("{s:O}", "label", json_object_get(req, "label"));
        if ((*reply = call(ac, "PATCH", path, body, unreachable, err, errlen)) != NULL)
            json_object_set_new(*reply, "ok", json_true());
        json_decref(body);
    } else if (strcmp(cmd, "score") == 0) {
        *reply = scores_of(ac, team, unreachable, err, errlen);
    } else {
        return -1;
    }
    json_decref(ans);
    return 0;
}
