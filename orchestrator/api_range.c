/* api_range — the API's routes about the exercise and its range:
 * GET /api/exercise, the team's map, wire counters and captures
 * (/api/teams/{team}/map, /wire, /pcaps, /pcaps/{name}), GET /api/timeline,
 * GET /api/guests and POST /api/control.  What only the running exercise
 * knows comes through api_ops.  Private to the API (api_int.h).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "addr.h"
#include "api_int.h"

/* ---- exercise and range ------------------------------------------------ */

static json_t *report_template(const scenario *s)
{
    json_t *secs = json_array();
    for (size_t i = 0; secs && i < s->n_sections; i++) {
        const scn_section *sc = &s->sections[i];
        json_t *rub = json_array();
        for (size_t k = 0; rub && k < sc->n_rubric; k++)
            json_array_append_new(rub, json_pack("{s:s, s:i}", "criterion",
                                                 sc->rubric[k].criterion, "points",
                                                 sc->rubric[k].points));
        json_array_append_new(secs, json_pack("{s:s, s:s?, s:s?, s:b, s:o}", "id", sc->id,
                                              "title", sc->title, "prompt", sc->prompt,
                                              "required", sc->required, "rubric", rub));
    }
    return json_pack("{s:o}", "sections", secs);
}

void api_h_exercise(api *a, httpd_req *req, const call *c)
{
    const plan *pl = api_plan(a);
    const scenario *s = pl ? pl->scn : NULL;
    json_t *teams, *out;
    int64_t started = 0;
    const char *state;
    if (s == NULL) {
        httpd_error(req, 503, "unavailable", "no exercise is loaded");
        return;
    }
    teams = json_array();
    for (int t = 0; teams && t < pl->n_teams; t++) {
        if (!auth_can(&c->p, AUTH_READ_TEAM, pl->teams[t].num))
            continue;
        json_array_append_new(teams, json_pack("{s:i, s:s}", "team", pl->teams[t].num, "name",
                                               pl->teams[t].name));
    }
    state = api_exercise_state(a, &started);
    out = json_pack("{s:s, s:{s:s, s:s?, s:s?, s:s?, s:I, s:f}, s:o, s:s, s:o, s:o}", "id",
                    a->exercise, "scenario", "id", s->id, "title", s->title, "description",
                    s->description, "level", s->level, "duration_ms",
                    (json_int_t)s->duration_ms, "speed", s->speed, "teams", teams, "state",
                    state, "started_ms", started > 0 ? json_integer(started) : json_null(),
                    "report_template", report_template(s));
    api_respond_new(req, 200, out);
}

/* The first entry of answer.teams[] (or answer[key][]) for `team`. */
static json_t *team_entry(const json_t *arr, int team)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
        if (json_integer_value(json_object_get(v, "team")) == team)
            return v;
    return NULL;
}

void api_h_map(api *a, httpd_req *req, const call *c)
{
    const plan *pl = api_plan(a);
    const scenario *s = pl->scn;
    const plan_team *pt = &pl->teams[c->team - 1];
    json_t *guests = api_command(a, "guests", c->team);
    json_t *checks = api_command(a, "checks", c->team);
    json_t *segs = json_array(), *hosts = json_array(), *out, *ck;
    char buf[32], ab[16];

    for (size_t i = 0; segs && i < s->n_segments; i++) {
        snprintf(buf, sizeof buf, "%s/%d", addr_format(s->segments[i].net, ab, sizeof ab),
                 s->segments[i].prefix);
        json_array_append_new(segs, json_pack("{s:s, s:s, s:s, s:s}", "name",
                                              s->segments[i].name, "cidr", buf, "role",
                                              s->segments[i].role, "bridge",
                                              pt->nets[i].bridge));
    }
    for (size_t h = 0; hosts && h < s->n_hosts; h++) {
        const scn_host *sh = &s->hosts[h];
        json_t *addrs = json_array(), *svcs = json_array(), *g = NULL, *gv, *hl;
        size_t i;
        for (i = 0; addrs && i < sh->n_nics; i++)
            json_array_append_new(addrs, json_pack("{s:s, s:o}", "segment",
                                                   s->segments[sh->nics[i].segment].name,
                                                   "address", sh->nics[i].dhcp
                                                       ? json_string("dhcp")
                                                       : json_string(addr_format(
                                                             sh->nics[i].addr, ab, sizeof ab))));
        for (i = 0; svcs && i < sh->n_services; i++)
            json_array_append_new(svcs, json_pack("{s:s, s:s, s:i}", "name",
                                                  sh->services[i].name, "proto",
                                                  sh->services[i].proto, "port",
                                                  sh->services[i].port));
        json_array_foreach(json_object_get(guests, "guests"), i, gv) {
            const char *hn = json_string_value(json_object_get(gv, "host"));
            if (json_integer_value(json_object_get(gv, "team")) == c->team && hn &&
                strcmp(hn, sh->name) == 0) {
                g = gv;
                break;
            }
        }
        hl = json_object_get(g, "health");
        json_array_append_new(hosts, json_pack(
            "{s:s, s:s, s:s, s:o, s:o, s:s, s:b, s:O}", "name", sh->name, "role", sh->role,
            "image", sh->image, "addresses", addrs, "services", svcs, "state",
            json_string_value(json_object_get(g, "state"))
                ? json_string_value(json_object_get(g, "state"))
                : "unknown",
            "agent", json_is_boolean(json_object_get(g, "agent"))
                         ? json_is_true(json_object_get(g, "agent"))
                         : hl != NULL && !json_is_null(hl),
            "health", hl ? hl : json_null()));
    }
    ck = json_object_get(team_entry(json_object_get(checks, "teams"), c->team), "checks");
    out = json_pack("{s:i, s:o, s:o, s:o}", "team", c->team, "segments", segs, "hosts", hosts,
                    "checks", ck ? json_incref(ck) : json_array());
    json_decref(guests);
    json_decref(checks);
    api_respond_new(req, 200, out);
}

void api_h_wire(api *a, httpd_req *req, const call *c)
{
    json_t *w = api_command(a, "wire", c->team);
    json_t *t = team_entry(json_object_get(w, "teams"), c->team);
    if (t == NULL) {
        json_decref(w);
        httpd_error(req, 503, "unavailable", "no capture for team %d", c->team);
        return;
    }
    httpd_respond_json(req, 200, t);
    json_decref(w);
}

/* A pcap file name: no path, no hidden file, ends in ".pcap". */
static int pcap_name_ok(const char *n)
{
    size_t l = n ? strlen(n) : 0;
    if (l <= 5 || l > 255 || n[0] == '.' || strchr(n, '/') || strchr(n, '\\'))
        return 0;
    return strcmp(n + l - 5, ".pcap") == 0;
}

void api_h_pcaps(api *a, httpd_req *req, const call *c)
{
    char *dir = a->ops.pcap_dir ? a->ops.pcap_dir(a->ops.opaque, c->team) : NULL;
    json_t *out = json_array();
    DIR *d = dir ? opendir(dir) : NULL;
    struct dirent *de;
    while (d && out && (de = readdir(d)) != NULL) {
        char path[4096];
        struct stat sb;
        if (!pcap_name_ok(de->d_name))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (stat(path, &sb) < 0 || !S_ISREG(sb.st_mode))
            continue;
        json_array_append_new(out, json_pack("{s:s, s:I, s:I}", "name", de->d_name, "bytes",
                                             (json_int_t)sb.st_size, "modified_ms",
                                             (json_int_t)sb.st_mtim.tv_sec * 1000 +
                                                 sb.st_mtim.tv_nsec / 1000000));
    }
    if (d)
        closedir(d);
    free(dir);
    api_respond_new(req, 200, out);
}

void api_h_pcap_get(api *a, httpd_req *req, const call *c)
{
    const char *name = httpd_param(req, "name");
    char *dir;
    char path[4096];
    if (!pcap_name_ok(name)) {
        httpd_error(req, 400, "invalid", "name: expected a file name ending in .pcap");
        return;
    }
    dir = a->ops.pcap_dir ? a->ops.pcap_dir(a->ops.opaque, c->team) : NULL;
    if (dir == NULL) {
        httpd_error(req, 404, "not_found", "no captures for team %d", c->team);
        return;
    }
    snprintf(path, sizeof path, "%s/%s", dir, name);
    free(dir);
    httpd_respond_file(req, path, "application/vnd.tcpdump.pcap", name);
}

/* ---- timeline and control --------------------------------------------- */

static json_t *ms_of(const json_t *o, const char *key_s)
{
    const json_t *v = json_object_get(o, key_s);
    if (!json_is_number(v))
        return json_null();
    return json_integer((json_int_t)(json_number_value(v) * 1000.0 + 0.5));
}

void api_h_timeline(api *a, httpd_req *req, const call *c)
{
    const scenario *s = api_scn(a);
    json_t *st = api_command(a, "status", 0), *teams = json_array(), *tv, *sv;
    size_t i, k;
    (void)c;
    json_array_foreach(json_object_get(st, "teams"), i, tv) {
        json_t *steps = json_array();
        json_array_foreach(json_object_get(tv, "steps"), k, sv) {
            const char *id = json_string_value(json_object_get(sv, "id"));
            int si = s && id ? scenario_step_index(s, id) : -1;
            const scn_step *sp = si >= 0 ? &s->steps[si] : NULL;
            json_array_append_new(steps, json_pack(
                "{s:s?, s:O?, s:s?, s:s?, s:O?, s:o, s:o, s:o, s:O?, s:O?}", "id", id, "action",
                json_object_get(sv, "action"), "actor",
                sp && sp->actor >= 0 ? s->hosts[sp->actor].name : NULL, "target",
                sp && sp->target >= 0 ? s->hosts[sp->target].name : NULL, "state",
                json_object_get(sv, "state"), "due_ms", ms_of(sv, "due_s"), "started_ms",
                ms_of(sv, "started_s"), "ended_ms", ms_of(sv, "ended_s"), "outcome",
                json_object_get(sv, "outcome"), "detail", json_object_get(sv, "detail")));
        }
        json_array_append_new(teams, json_pack("{s:O, s:O?, s:o, s:O?, s:o}", "team",
                                               json_object_get(tv, "team"), "clock",
                                               json_object_get(tv, "clock"), "elapsed_ms",
                                               ms_of(tv, "elapsed_s"), "speed",
                                               json_object_get(st, "speed"), "steps", steps));
    }
    json_decref(st);
    api_respond_new(req, 200, json_pack("{s:o}", "teams", teams));
}

/* Every guest's state and health, the capture counters and the checks of
 * every team: what `cyrange status` shows of a running exercise. */
void api_h_guests(api *a, httpd_req *req, const call *c)
{
    json_t *r = api_command(a, "guests", 0);
    (void)c;
    if (r == NULL || !json_is_true(json_object_get(r, "ok"))) {
        json_decref(r);
        httpd_error(req, 503, "unavailable", "the exercise is not running");
        return;
    }
    json_object_del(r, "ok");
    api_respond_new(req, 200, r);
}

void api_h_control(api *a, httpd_req *req, const call *c)
{
    static const char *const cmds[] = { "start", "pause", "resume", "reset", "skip", "run",
                                        NULL };
    json_t *b = httpd_body_json(req, NULL), *cmd = NULL, *r = NULL, *tv;
    const char *name, *step;
    int ok = 0;
    (void)c;
    if (b == NULL)
        return;
    name = json_string_value(json_object_get(b, "cmd"));
    for (const char *const *k = cmds; name && *k; k++)
        ok |= strcmp(*k, name) == 0;
    tv = json_object_get(b, "team");
    step = json_string_value(json_object_get(b, "step"));
    if (!ok) {
        httpd_error(req, 400, "invalid", "cmd: expected start, pause, resume, reset, skip or run");
        goto cleanup;
    }
    if (tv && !json_is_null(tv) &&
        (!json_is_integer(tv) || json_integer_value(tv) < 0 ||
         json_integer_value(tv) > a->n_teams)) {
        httpd_error(req, 400, "invalid", "team: expected 0 (every team) to %d", a->n_teams);
        goto cleanup;
    }
    if (json_object_get(b, "step") && step == NULL) {
        httpd_error(req, 400, "invalid", "step: expected a step id");
        goto cleanup;
    }
    cmd = json_pack("{s:s, s:i, s:s?}", "cmd", name, "team",
                    json_is_integer(tv) ? (int)json_integer_value(tv) : 0, "step", step);
    r = cmd && a->ops.command ? a->ops.command(a->ops.opaque, cmd) : NULL;
    if (r == NULL) {
        httpd_error(req, 500, "internal", "the exercise did not answer");
        goto cleanup;
    }
    if (!json_is_true(json_object_get(r, "ok"))) {
        const char *e = json_string_value(json_object_get(r, "error"));
        httpd_error(req, 409, "conflict", "%s", e ? e : "the command failed");
        goto cleanup;
    }
    httpd_respond_json(req, 200, r);
    api_event(a, "timeline", json_is_integer(tv) ? (int)json_integer_value(tv) : 0, 1, cmd);
cleanup:
    json_decref(r);
    json_decref(cmd);
    json_decref(b);
}
