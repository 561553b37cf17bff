#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "cli.h"
#include "cli_serve.h"
#include "findings.h"
#include "addr.h"
#include "agentlink.h"
#include "control.h"
#include "diag.h"
#include "exercise.h"
#include "plan.h"
#include "range.h"
#include "scenario.h"

typedef struct up_ctx {
    uv_loop_t *loop;
    range *r;
    uv_signal_t sigint, sigterm;
    int ok;
    int done;
    uint64_t t0;
    int signals;     /* sigint/sigterm initialised */
    /* cyrange run */
    exercise *x;
    control *ctl;
    int playing;
    int exit_when_done;
    int stop;
    uv_timer_t done_timer;
    int done_timer_on;
    int hold;        /* clocks wait for `cyrange start` */
    /* cyrange serve */
    int serve;
    int resume;      /* the range was up already: attached after a restart */
    serve_opts sopts;
    serve_ctx *sv;
} up_ctx;

static void on_progress(range *r, range_event_kind kind, int guest, const char *msg,
                        void *opaque)
{
    up_ctx *c = opaque;
    (void)r;
    (void)kind;
    (void)guest;
    printf("[%6.1fs] %s\n", (double)(uv_now(c->loop) - c->t0) / 1000.0, msg);
    fflush(stdout);
}

static void close_signals(up_ctx *c)
{
    if (!c->signals)
        return;
    if (!uv_is_closing((uv_handle_t *)&c->sigint))
        uv_close((uv_handle_t *)&c->sigint, NULL);
    if (!uv_is_closing((uv_handle_t *)&c->sigterm))
        uv_close((uv_handle_t *)&c->sigterm, NULL);
}

static void on_up_done(range *r, int ok, const char *msg, void *opaque)
{
    up_ctx *c = opaque;
    (void)r;
    c->ok = ok;
    c->done = 1;
    if (!ok)
        fprintf(stderr, "cyrange up: %s\n", msg);
    close_signals(c);
}

static void on_signal(uv_signal_t *h, int signum)
{
    up_ctx *c = h->data;
    (void)signum;
    if (c->playing) {
        /* `run`: stop playing; the caller tears the range down. */
        fprintf(stderr, "cyrange: stopping the exercise\n");
        c->stop = 1;
        uv_stop(c->loop);
        return;
    }
    /* Handled as a failure: the range is rolled back, nothing is left. */
    fprintf(stderr, "cyrange: interrupted; rolling back\n");
    range_interrupt(c->r, "interrupted by signal");
}

static void print_guest_table(const plan *p, range *r, FILE *out)
{
    const scenario *s = p->scn;
    char ab[20];
    fprintf(out, "%-4s %-12s %-32s %-12s %-8s %s\n", "TEAM", "HOST", "DOMAIN",
            "STATE", "READY", "ADDRESSES");
    for (size_t i = 0; i < range_guest_count(r); i++) {
        const scn_host *h = &s->hosts[range_guest_host(r, i)];
        char addrs[256] = "";
        size_t off = 0;
        const json_t *hl = range_guest_health(r, i);
        json_t *ifs = hl ? json_object_get(hl, "ifaces") : NULL;
        if (ifs) {
            size_t k;
            json_t *ifc;
            json_array_foreach(ifs, k, ifc) {
                size_t a;
                json_t *ad;
                json_array_foreach(json_object_get(ifc, "addrs"), a, ad)
                    off += (size_t)snprintf(addrs + off, sizeof(addrs) - off, "%s%s",
                                            off ? " " : "", json_string_value(ad));
            }
        } else {
            for (size_t k = 0; k < h->n_nics; k++)
                off += (size_t)snprintf(addrs + off, sizeof(addrs) - off, "%s%s",
                                        off ? " " : "",
                                        h->nics[k].dhcp ? "dhcp"
                                        : addr_format(h->nics[k].addr, ab, sizeof(ab)));
        }
        double rs = range_guest_ready_s(r, i);
        char ready[16] = "-";
        if (rs >= 0)
            snprintf(ready, sizeof(ready), "%.1fs", rs);
        fprintf(out, "t%02d  %-12s %-32s %-12s %-8s %s\n", range_guest_team(r, i),
                h->name, range_guest_domain(r, i),
                range_guest_state_name(range_guest_get_state(r, i)), ready, addrs);
    }
}

static void on_exercise_log(exercise *x, int team, const char *msg, void *opaque)
{
    up_ctx *c = opaque;
    (void)x;
    if (team > 0)
        printf("[%6.1fs] t%02d %s\n", (double)(uv_now(c->loop) - c->t0) / 1000.0, team, msg);
    else
        printf("[%6.1fs] %s\n", (double)(uv_now(c->loop) - c->t0) / 1000.0, msg);
    fflush(stdout);
}

static void guest_reply(agentlink *l, const proto_msg *m, const char *why, void *opaque)
{
    control_pending *later = opaque;
    (void)l;
    if (m == NULL) {
        control_respond(later, json_pack("{s:b, s:s}", "ok", 0, "error", why));
        return;
    }
    json_t *b = json_deep_copy(m->u.reply.body);
    json_object_del(b, "t");
    json_object_del(b, "id");
    json_object_set_new(b, "agent_ok", json_boolean(m->u.reply.ok));
    json_object_set_new(b, "ok", json_true());
    control_respond(later, b);
}

/* exec and probe on a guest of the running exercise: its channel is held
 * by this process, so the request goes through here. */
static json_t *guest_request(up_ctx *c, const json_t *req, control_pending *later)
{
    int team = (int)json_integer_value(json_object_get(req, "team"));
    const char *host = json_string_value(json_object_get(req, "host"));
    json_t *msg = json_object_get(req, "request");
    int g = host ? range_guest_find(c->r, team, host) : -1;
    agentlink *l = g >= 0 ? range_guest_link(c->r, (size_t)g) : NULL;
    const char *t = json_string_value(json_object_get(msg, "t"));
    int timeout = (int)json_integer_value(json_object_get(req, "timeout_ms"));

    if (g < 0)
        return json_pack("{s:b, s:s}", "ok", 0, "error", "no such team/host");
    if (l == NULL || !agentlink_connected(l))
        return json_pack("{s:b, s:s}", "ok", 0, "error", "the guest's agent is not connected");
    if (t == NULL || (strcmp(t, "exec") != 0 && strcmp(t, "probe") != 0))
        return json_pack("{s:b, s:s}", "ok", 0, "error", "only exec and probe are relayed");
    if (agentlink_request(l, json_deep_copy(msg), timeout > 0 ? timeout : 30000,
                          guest_reply, later) < 0)
        return json_pack("{s:b, s:s}", "ok", 0, "error", "cannot send to the agent");
    return NULL;
}

/* A finding or label stored (or refused): the control client's answer.
 * Without a store the exercise answers at once, inside the call: the reply
 * is then returned by the handler instead of sent later. */
typedef struct finding_wait {
    control_pending *later;
    int in_call;
    json_t *reply;
} finding_wait;

static void finding_done(void *cbopaque, int status, const json_t *result, const char *error)
{
    finding_wait *w = cbopaque;
    json_t *reply = result ? json_pack("{s:b, s:O*, s:O}", "ok", 1, "id",
                                       json_object_get(result, "id"), "finding", result)
                           : json_pack("{s:b, s:s, s:i}", "ok", 0, "error",
                                       error ? error : "failed", "status", status);
    if (w->in_call) {
        w->reply = reply;
        return;
    }
    control_respond(w->later, reply);
    free(w);
}

/* Runs an asynchronous finding operation for the control socket. */
static json_t *finding_call(up_ctx *c, const json_t *req, int label_op,
                            control_pending *later)
{
    finding_wait *w = calloc(1, sizeof(*w));
    const char *by = json_string_value(json_object_get(req, "by"));
    int rc;

    if (w == NULL)
        return json_pack("{s:b, s:s}", "ok", 0, "error", "out of memory");
    w->later = later;
    w->in_call = 1;
    if (label_op) {
        const char *label = NULL;
        if (findings_label_parse(json_string_value(json_object_get(req, "label")), &label) < 0) {
            free(w);
            return json_pack("{s:b, s:s}", "ok", 0, "error",
                             "label is duplicate, benign, unscripted or none");
        }
        rc = exercise_finding_label(c->x, json_integer_value(json_object_get(req, "finding")),
                                    label, by, finding_done, w);
    } else {
        rc = exercise_finding_add(c->x, (int)json_integer_value(json_object_get(req, "team")),
                                  json_object_get(req, "finding"), by, finding_done, w);
    }
    w->in_call = 0;
    if (rc < 0) {
        json_decref(w->reply);
        free(w);
        return json_pack("{s:b, s:s}", "ok", 0, "error", "cannot store it");
    }
    if (w->reply) {
        json_t *reply = w->reply;
        free(w);
        return reply;
    }
    return NULL;
}

static json_t *on_control(const json_t *req, control_pending *later, void *opaque)
{
    up_ctx *c = opaque;
    const char *cmd = json_string_value(json_object_get(req, "cmd"));
    if (cmd && strcmp(cmd, "guest") == 0)
        return guest_request(c, req, later);
    if (cmd && (strcmp(cmd, "finding") == 0 || strcmp(cmd, "label") == 0))
        return finding_call(c, req, strcmp(cmd, "label") == 0, later);
    return exercise_command(c->x, req);
}

static void check_done(uv_timer_t *t)
{
    up_ctx *c = t->data;
    if (c->exit_when_done && exercise_finished(c->x)) {
        printf("[%6.1fs] every team's timeline has finished\n",
               (double)(uv_now(c->loop) - c->t0) / 1000.0);
        c->stop = 1;
        uv_stop(c->loop);
    }
}

static void serve_closed(void *opaque)
{
    *(int *)opaque = 1;
}

/* `cyrange run`: the range is up; play every team's timeline until Ctrl-C
 * (or, with --exit-when-done, until every step has run). */
static int play(up_ctx *c, const plan *p, const char *state, uint64_t seed)
{
    char err[512];
    char *dir = range_exercise_dir(state, p->exercise);
    char *records = range_records_dir(state, p->exercise);
    char *sock = NULL;
    int rc = EXIT_INVALID;

    if (dir == NULL || records == NULL || asprintf(&sock, "%s/control.sock", dir) < 0) {
        free(dir);
        free(records);
        return EXIT_INVALID;
    }
    if (range_records_prepare(records) < 0) {
        fprintf(stderr, "cyrange run: cannot create %s: %s\n", records, strerror(errno));
        free(dir);
        free(records);
        free(sock);
        return EXIT_INVALID;
    }
    /* The records keep the scenario, so the exercise can be scored and
     * reviewed after its range is gone. */
    {
        char *from = NULL, *to = NULL, *text = NULL;
        size_t len = 0;
        FILE *f = NULL;
        if (asprintf(&from, "%s/scenario.json", dir) >= 0 &&
            asprintf(&to, "%s/scenario.json", records) >= 0 &&
            (text = cli_read_text(from, &len)) != NULL && (f = fopen(to, "w")) != NULL) {
            if (fwrite(text, 1, len, f) != len)
                fprintf(stderr, "cyrange run: cannot write %s\n", to);
        }
        if (f)
            fclose(f);
        free(text);
        free(from);
        free(to);
    }
    printf("ground-truth journal: %s/journal.jsonl\n", records);
    exercise_opts xo = { .resume = c->resume };
    if (c->serve) {
        c->sopts.provision = !c->resume;
        c->sv = serve_open(c->loop, p, c->r, &c->sopts, err, sizeof(err));
        if (c->sv == NULL) {
            fprintf(stderr, "cyrange serve: %s\n", err);
            goto cleanup;
        }
        xo.st = serve_store(c->sv);
        xo.event = serve_event;
        xo.event_opaque = c->sv;
    }
    c->x = exercise_new(c->loop, p, c->r, records, seed, on_exercise_log, c, &xo, err,
                        sizeof(err));
    serve_attach(c->sv, c->x);
    if (c->x == NULL) {
        fprintf(stderr, "cyrange run: %s\n", err);
        goto cleanup;
    }
    range_monitor(c->r, 10000);
    c->ctl = control_listen(c->loop, sock, on_control, c, err, sizeof(err));
    if (c->ctl == NULL) {
        fprintf(stderr, "cyrange run: %s\n", err);
        goto cleanup;
    }
    printf("\nplaying the timeline (speed x%g); control: cyrange pause|resume|skip|"
           "inject|reset %s ..., cyrange timeline %s; Ctrl-C stops\n",
           p->scn->speed, p->exercise, p->exercise);
    fflush(stdout);
    c->playing = 1;
    if (c->resume)
        printf("resumed: every team's timeline continues where it was\n");
    else if (c->hold)
        printf("clocks are held: `cyrange start %s [--team N]` starts them\n",
               p->exercise);
    else
        exercise_start(c->x);
    fflush(stdout);
    uv_timer_init(c->loop, &c->done_timer);
    c->done_timer.data = c;
    c->done_timer_on = 1;
    uv_timer_start(&c->done_timer, check_done, 1000, 1000);
    while (!c->stop)
        uv_run(c->loop, UV_RUN_DEFAULT);
    rc = EXIT_OK;
cleanup:
    c->playing = 0;
    if (c->done_timer_on)
        uv_close((uv_handle_t *)&c->done_timer, NULL);
    control_close(c->ctl);
    serve_detach(c->sv);
    exercise_free(c->x);
    c->x = NULL;
    if (c->sv) {
        /* The consoles need libvirt's event loop to close: wait for the
         * API side to be gone before the range closes its connection. */
        int closed = 0;
        serve_close(c->sv, serve_closed, &closed);
        c->sv = NULL;
        while (!closed && uv_run(c->loop, UV_RUN_ONCE))
            ;
    }
    free(sock);
    free(dir);
    free(records);
    return rc;
}

static int up_or_run(int argc, char **argv, int run)
{
    static const struct option opts[] = {
        { "keep", no_argument, NULL, 'K' },
        { "exit-when-done", no_argument, NULL, 'E' },
        { "seed", required_argument, NULL, 'S' },
        { "hold", no_argument, NULL, 'O' },
        { "teams", required_argument, NULL, 't' },
        { "name", required_argument, NULL, 'n' },
        { "connect", required_argument, NULL, 'c' },
        { "domain-type", required_argument, NULL, 'd' },
        { "images", required_argument, NULL, 'i' },
        { "timeout", required_argument, NULL, 'T' },
        { "keep-on-failure", no_argument, NULL, 'k' },
        { "fail-at", required_argument, NULL, 'F' },
        { "listen", required_argument, NULL, 'L' },
        { "web", required_argument, NULL, 'W' },
        { "members", required_argument, NULL, 'M' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int teams = 0, c, rc = EXIT_INVALID;
    range_opts o = { 0 };
    const char *name = NULL;
    char *images = NULL, *text = NULL;
    size_t tlen = 0;
    diag_list d;
    scenario *s = NULL;
    plan *p = NULL;
    char err[1024];
    uv_loop_t loop;
    up_ctx ctx = { 0 };
    int keep = 0;
    uint64_t seed = 0;
    const char *cmdname = run == 2 ? "serve" : run ? "run" : "up";
    char *web = NULL, *openapi = NULL;

    o.domain_type = "qemu";
    o.state_dir = cli_state_dir();
    ctx.serve = run == 2;
    if (ctx.serve) {
        web = cli_default_web_dir();
        if (web && asprintf(&openapi, "%s/openapi.json", web) < 0)
            openapi = NULL;
        ctx.sopts.state_dir = o.state_dir;
        ctx.sopts.web_dir = web;
        ctx.sopts.openapi_path = openapi;
    }
    optind = 1;
    while ((c = getopt_long(argc, argv, "t:n:c:d:i:T:kh", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            if (cli_parse_teams(optarg, &teams) < 0) {
                fprintf(stderr, "cyrange up: --teams must be 1..%d\n", SCENARIO_MAX_TEAMS);
                return EXIT_USAGE;
            }
            break;
        case 'n': name = optarg; break;
        case 'c': o.uri = optarg; break;
        case 'd':
            if (strcmp(optarg, "qemu") != 0 && strcmp(optarg, "kvm") != 0) {
                fprintf(stderr, "cyrange up: --domain-type is qemu or kvm\n");
                return EXIT_USAGE;
            }
            o.domain_type = optarg;
            break;
        case 'i': o.images_dir = optarg; break;
        case 'T': {
            char *end = NULL;
            long v = strtol(optarg, &end, 10);
            if (*end != '\0' || v < 5 || v > 3600) {
                fprintf(stderr, "cyrange up: --timeout is 5..3600 seconds\n");
                return EXIT_USAGE;
            }
            o.boot_timeout_ms = (int)v * 1000;
            break;
        }
        case 'k': o.keep_on_failure = 1; break;
        case 'F': o.fail_at_host = optarg; break;
        case 'K':
            if (!run)
                return EXIT_USAGE;
            keep = 1;
            break;
        case 'L':
        case 'W':
        case 'M':
            if (!ctx.serve) {
                fprintf(stderr, "cyrange %s: --listen, --web and --members are for "
                        "`cyrange serve`\n", cmdname);
                return EXIT_USAGE;
            }
            if (c == 'L')
                ctx.sopts.listen = optarg;
            else if (c == 'W')
                ctx.sopts.web_dir = optarg;
            else
                ctx.sopts.members = atoi(optarg);
            break;
        case 'E':
            if (!run)
                return EXIT_USAGE;
            ctx.exit_when_done = 1;
            break;
        case 'S':
            if (!run)
                return EXIT_USAGE;
            seed = strtoull(optarg, NULL, 10);
            break;
        case 'O':
            if (!run)
                return EXIT_USAGE;
            ctx.hold = 1;
            break;
        case 'h':
            if (run == 2) {
                puts("usage: cyrange serve FILE [up options] [--listen ADDR:PORT] [--web DIR]\n"
                     "       [--members N] [--keep] [--seed N] [--hold]\n\n"
                     "`cyrange run` with the web UI and the HTTP/JSON API (default\n"
                     "http://127.0.0.1:8080/; the contract is web/openapi.json): teams\n"
                     "work in their range from a browser (map, consoles, findings, reports,\n"
                     "inbox, score), instructors watch, steer and review.  Everything is\n"
                     "kept in <state>/cyrange.db (SQLite).  The first start creates an\n"
                     "instructor account and --members accounts per team (default 2) and\n"
                     "prints their passwords once.  If the exercise is already up (the\n"
                     "orchestrator was killed), serve attaches to its guests and resumes\n"
                     "every team's timeline where it was.  Ctrl-C stops and removes the\n"
                     "range (--keep leaves it up).");
                return EXIT_OK;
            }
            if (run) {
                puts("usage: cyrange run FILE [up options] [--keep] [--exit-when-done]\n"
                     "       [--seed N]\n\n"
                     "Brings the range up as `cyrange up` does, then plays the scenario's\n"
                     "timeline on every team's own clock: attacker actions through the\n"
                     "actors' agents, narrative injects to the teams' inboxes, every start\n"
                     "and result in the ground-truth journal\n"
                     "(/var/lib/cyrange/EXERCISE/journal.jsonl).  Instructors steer it with\n"
                     "cyrange pause|resume|skip|inject|reset and watch it with cyrange\n"
                     "timeline.  Ctrl-C stops and removes the range (--keep leaves it up);\n"
                     "--exit-when-done stops once every step has run; --seed fixes the\n"
                     "jitter; --hold waits for `cyrange start` (e.g. after the briefing).");
                return EXIT_OK;
            }
            puts("usage: cyrange up FILE [--teams N] [--name EXERCISE] [--connect URI]\n"
                 "       [--domain-type qemu|kvm] [--images DIR] [--timeout SECONDS]\n"
                 "       [--keep-on-failure]\n\n"
                 "Creates, for every team, one isolated L2-only libvirt network per\n"
                 "segment and one QEMU guest per host, configures every guest's agent\n"
                 "over its virtio-serial channel and returns when all are ready.\n"
                 "Any failure (or Ctrl-C) removes everything created so far.\n"
                 "Defaults: teams from the scenario, exercise name = scenario id,\n"
                 "qemu:///system, domain type qemu (TCG; use kvm on real hardware),\n"
                 "images next to the binary (build/images), timeout 180 s.");
            return EXIT_OK;
        default:
            return EXIT_USAGE;
        }
    }
    if (argc - optind != 1) {
        fprintf(stderr, "usage: cyrange %s FILE [--teams N] [options]; see cyrange %s "
                "--help\n", cmdname, cmdname);
        return EXIT_USAGE;
    }
    if (name && !plan_exercise_name_ok(name)) {
        fprintf(stderr, "cyrange up: malformed exercise name '%s'\n", name);
        return EXIT_USAGE;
    }
    diag_init(&d);
    text = cli_read_text(argv[optind], &tlen);
    s = text ? scenario_load_buffer(argv[optind], text, tlen, &d)
             : scenario_load(argv[optind], &d);
    if (s == NULL) {
        diag_sort(&d);
        diag_print(&d, stderr);
        goto cleanup;
    }
    p = plan_build(s, name, teams ? teams : s->team_count, err, sizeof(err));
    if (p == NULL) {
        fprintf(stderr, "cyrange up: %s\n", err);
        goto cleanup;
    }
    {
        char *sp = NULL;
        int tt;
        if (range_state_load(o.state_dir, p->exercise, &sp, NULL, &tt, NULL, NULL) == 0) {
            free(sp);
            if (ctx.serve && tt == p->n_teams) {
                /* The orchestrator died; its guests kept running. */
                ctx.resume = 1;
            } else {
                fprintf(stderr, "cyrange %s: exercise '%s' is already up (%d teams); "
                        "`cyrange down %s` first, or use --name\n", cmdname, p->exercise,
                        tt, p->exercise);
                goto cleanup;
            }
        }
    }
    if (o.images_dir == NULL) {
        images = cli_default_images_dir();
        o.images_dir = images;
    }
    if (!ctx.resume && range_state_save(p, &o, text, tlen, err, sizeof(err)) < 0) {
        fprintf(stderr, "cyrange up: %s\n", err);
        goto cleanup;
    }
    uv_loop_init(&loop);
    ctx.loop = &loop;
    ctx.t0 = uv_now(&loop);
    ctx.r = range_new(&loop, p, &o);
    if (ctx.r == NULL) {
        fputs("cyrange up: out of memory\n", stderr);
        uv_loop_close(&loop);
        goto cleanup;
    }
    range_set_progress(ctx.r, on_progress, &ctx);
    printf("bringing up exercise %s: %d team%s x %zu host%s = %zu guests (%s)\n",
           p->exercise, p->n_teams, p->n_teams == 1 ? "" : "s", s->n_hosts,
           s->n_hosts == 1 ? "" : "s", range_guest_count(ctx.r), o.domain_type);
    fflush(stdout);
    uv_signal_init(&loop, &ctx.sigint);
    uv_signal_init(&loop, &ctx.sigterm);
    ctx.sigint.data = ctx.sigterm.data = &ctx;
    ctx.signals = 1;
    uv_signal_start(&ctx.sigint, on_signal, SIGINT);
    uv_signal_start(&ctx.sigterm, on_signal, SIGTERM);
    if (ctx.resume) {
        printf("exercise %s is up already: attaching to its guests\n", p->exercise);
        fflush(stdout);
    }
    if ((ctx.resume ? range_attach(ctx.r, o.boot_timeout_ms ? o.boot_timeout_ms : 60000,
                                   on_up_done, &ctx, err, sizeof(err))
                    : range_up(ctx.r, on_up_done, &ctx, err, sizeof(err))) < 0) {
        fprintf(stderr, "cyrange up: %s\n", err);
        close_signals(&ctx);
    }
    while (!ctx.done && uv_run(&loop, UV_RUN_ONCE))
        ;
    if (ctx.ok) {
        printf("\nexercise %s is up in %.1f s:\n", p->exercise,
               (double)(uv_now(&loop) - ctx.t0) / 1000.0);
        print_guest_table(p, ctx.r, stdout);
        rc = EXIT_OK;
        if (run) {
            /* up's signal handlers were closed when it finished. */
            uv_run(&loop, UV_RUN_NOWAIT);
            ctx.signals = 0;
            uv_signal_init(&loop, &ctx.sigint);
            uv_signal_init(&loop, &ctx.sigterm);
            ctx.sigint.data = ctx.sigterm.data = &ctx;
            ctx.signals = 1;
            uv_signal_start(&ctx.sigint, on_signal, SIGINT);
            uv_signal_start(&ctx.sigterm, on_signal, SIGTERM);
            rc = play(&ctx, p, o.state_dir, seed);
        }
    }
    range_close(ctx.r, NULL, NULL);
    close_signals(&ctx);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    if (run && ctx.ok && !keep) {
        int n = range_down(o.uri, o.state_dir, p->exercise, err, sizeof(err));
        if (n < 0) {
            fprintf(stderr, "cyrange run: teardown incomplete: %s\n", err);
            rc = EXIT_INVALID;
        } else {
            printf("exercise %s removed (%d objects)\n", p->exercise, n);
        }
    }
cleanup:
    plan_free(p);
    scenario_free(s);
    diag_clear(&d);
    free(images);
    free(text);
    free(web);
    free(openapi);
    return rc;
}

int cli_up(int argc, char **argv)
{
    return up_or_run(argc, argv, 0);
}

int cli_run(int argc, char **argv)
{
    return up_or_run(argc, argv, 1);
}

int cli_serve(int argc, char **argv)
{
    return up_or_run(argc, argv, 2);
}

/* Capture counters and availability checks of a running exercise. */
static void print_wire_and_checks(const json_t *reply)
{
    size_t i, k;
    json_t *w, *c, *ck;

    if (json_array_size(json_object_get(reply, "wire")) > 0)
        printf("\n%-4s %12s %14s %8s %8s %7s %6s\n", "TEAM", "PACKETS", "BYTES", "DROPS",
               "FLOWS", "FINISHED", "FILES");
    json_array_foreach(json_object_get(reply, "wire"), i, w)
        printf("t%02d  %12lld %14lld %8lld %8lld %7lld %6lld\n",
               (int)json_integer_value(json_object_get(w, "team")),
               (long long)json_integer_value(json_object_get(w, "packets")),
               (long long)json_integer_value(json_object_get(w, "bytes")),
               (long long)(json_integer_value(json_object_get(w, "kernel_drops")) +
                           json_integer_value(json_object_get(w, "if_drops"))),
               (long long)json_integer_value(json_object_get(w, "flows_active")),
               (long long)json_integer_value(json_object_get(w, "flows_finished")),
               (long long)json_integer_value(json_object_get(w, "files")));
    json_array_foreach(json_object_get(reply, "checks"), i, c) {
        json_array_foreach(json_object_get(c, "checks"), k, ck) {
            if (i == 0 && k == 0)
                printf("\n%-4s %-16s %-5s %6s %s\n", "TEAM", "CHECK", "UP", "OK", "LAST");
            json_t *up = json_object_get(ck, "up");
            printf("t%02d  %-16s %-5s %3lld/%-3lld %s\n",
                   (int)json_integer_value(json_object_get(c, "team")),
                   json_string_value(json_object_get(ck, "id")),
                   json_is_null(up) ? "?" : json_is_true(up) ? "up" : "DOWN",
                   (long long)json_integer_value(json_object_get(ck, "ok")),
                   (long long)json_integer_value(json_object_get(ck, "probes")),
                   json_string_value(json_object_get(ck, "last_detail")));
        }
    }
}

static int status_one(const char *exname, int json, json_t *jall)
{
    char *spath = NULL, *origin = NULL, *uri = NULL, *dtype = NULL, *text = NULL;
    size_t tlen = 0;
    int teams = 0, rc = EXIT_INVALID;
    diag_list d;
    scenario *s = NULL;
    plan *p = NULL;
    char err[512];
    uv_loop_t loop;
    up_ctx ctx = { 0 };
    range_opts o = { 0 };

    diag_init(&d);
    /* A running `cyrange run` holds the agents' channels: ask it. */
    {
        char cerr[512];
        json_t *reply = NULL;
        if (cli_call(exname, json_pack("{s:s}", "cmd", "guests"), &reply, cerr,
                     sizeof(cerr)) < 0)
            reply = NULL;
        if (reply != NULL) {
            json_t *guests = json_object_get(reply, "guests");
            if (json) {
                json_array_append_new(jall, json_pack("{s:s, s:b, s:O, s:O*, s:O*}", "exercise",
                                      exname, "running", 1, "guests", guests, "wire",
                                      json_object_get(reply, "wire"), "checks",
                                      json_object_get(reply, "checks")));
            } else {
                size_t i;
                json_t *g;
                printf("exercise %s (being run by `cyrange run`)\n", exname);
                printf("%-4s %-12s %-32s %-12s %s\n", "TEAM", "HOST", "DOMAIN",
                       "STATE", "ADDRESSES");
                json_array_foreach(guests, i, g) {
                    char addrs[256] = "";
                    size_t off = 0, k, a;
                    json_t *ifc, *ad;
                    json_array_foreach(json_object_get(json_object_get(g, "health"), "ifaces"), k, ifc)
                        json_array_foreach(json_object_get(ifc, "addrs"), a, ad)
                            off += (size_t)snprintf(addrs + off, sizeof(addrs) - off, "%s%s",
                                                    off ? " " : "", json_string_value(ad));
                    printf("t%02d  %-12s %-32s %-12s %s\n",
                           (int)json_integer_value(json_object_get(g, "team")),
                           json_string_value(json_object_get(g, "host")),
                           json_string_value(json_object_get(g, "domain")),
                           json_string_value(json_object_get(g, "state")), addrs);
                }
                print_wire_and_checks(reply);
            }
            json_decref(reply);
            diag_clear(&d);
            return EXIT_OK;
        }
    }
    if (range_state_load(cli_state_dir(), exname, &spath, &origin, &teams, &uri,
                         &dtype) < 0) {
        fprintf(stderr, "cyrange status: no exname '%s' is up\n", exname);
        goto cleanup;
    }
    /* The copy taken at `up`, named after the original so that relative
     * disk image paths resolve as they did then. */
    text = cli_read_text(spath, &tlen);
    s = text ? scenario_load_buffer(origin && *origin ? origin : spath, text, tlen, &d)
             : scenario_load(spath, &d);
    if (s == NULL) {
        diag_print(&d, stderr);
        goto cleanup;
    }
    p = plan_build(s, exname, teams, err, sizeof(err));
    if (p == NULL) {
        fprintf(stderr, "cyrange status: %s\n", err);
        goto cleanup;
    }
    o.uri = uri;
    o.domain_type = dtype;
    o.state_dir = cli_state_dir();
    uv_loop_init(&loop);
    ctx.loop = &loop;
    ctx.r = range_new(&loop, p, &o);
    if (ctx.r == NULL || range_attach(ctx.r, 5000, on_up_done, &ctx, err, sizeof(err)) < 0) {
        fprintf(stderr, "cyrange status: %s\n", ctx.r ? err : "out of memory");
        ctx.done = 1;
    }
    while (!ctx.done && uv_run(&loop, UV_RUN_ONCE))
        ;
    if (ctx.r) {
        if (json) {
            json_t *ex = json_pack("{s:s, s:s, s:i, s:[]}", "exname", exname,
                                   "scenario", s->id, "teams", teams, "guests");
            for (size_t i = 0; ex && i < range_guest_count(ctx.r); i++) {
                const json_t *hl = range_guest_health(ctx.r, i);
                json_t *g = json_pack("{s:i, s:s, s:s, s:s}", "team",
                    range_guest_team(ctx.r, i), "host",
                    s->hosts[range_guest_host(ctx.r, i)].name, "domain",
                    range_guest_domain(ctx.r, i), "state",
                    range_guest_state_name(range_guest_get_state(ctx.r, i)));
                if (g && hl)
                    json_object_set(g, "health", (json_t *)hl);
                json_array_append_new(json_object_get(ex, "guests"), g);
            }
            json_array_append_new(jall, ex);
        } else {
            printf("exname %s (scenario %s, %d team%s)\n", exname, s->id, teams,
                   teams == 1 ? "" : "s");
            print_guest_table(p, ctx.r, stdout);
        }
        range_close(ctx.r, NULL, NULL);
        rc = EXIT_OK;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
cleanup:
    plan_free(p);
    scenario_free(s);
    diag_clear(&d);
    free(spath);
    free(origin);
    free(text);
    free(uri);
    free(dtype);
    return rc;
}

int cli_status(int argc, char **argv)
{
    static const struct option opts[] = {
        { "json", no_argument, NULL, 'j' }, { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int json = 0, c, rc = EXIT_OK;
    json_t *all = json_array();
    char **list = NULL;
    optind = 1;
    while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
        if (c == 'j') {
            json = 1;
        } else if (c == 'h') {
            puts("usage: cyrange status [EXERCISE] [--json]\n\nShows every team's "
                 "hosts: libvirt domain, guest and agent state, addresses the\n"
                 "agent reports, for one exercise or all that are up.");
            json_decref(all);
            return EXIT_OK;
        } else {
            json_decref(all);
            return EXIT_USAGE;
        }
    }
    if (argc - optind > 1) {
        json_decref(all);
        fputs("usage: cyrange status [EXERCISE] [--json]\n", stderr);
        return EXIT_USAGE;
    }
    if (argc - optind == 1) {
        rc = status_one(argv[optind], json, all);
    } else {
        list = range_state_list(cli_state_dir());
        if (list == NULL || list[0] == NULL) {
            if (!json)
                puts("no exercise is up");
        }
        for (char **e = list; e && *e; e++) {
            if (status_one(*e, json, all) != EXIT_OK)
                rc = EXIT_INVALID;
            if (!json && e[1])
                putchar('\n');
        }
        for (char **e = list; e && *e; e++)
            free(*e);
        free(list);
    }
    if (json) {
        json_dumpf(all, stdout, JSON_INDENT(2));
        putchar('\n');
    }
    json_decref(all);
    return rc;
}

int cli_down(int argc, char **argv)
{
    static const struct option opts[] = {
        { "connect", required_argument, NULL, 'c' },
        { "all", no_argument, NULL, 'a' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char *uri = NULL;
    int all = 0, c, rc = EXIT_OK;
    char err[512];
    char **list = NULL;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:ah", opts, NULL)) != -1) {
        switch (c) {
        case 'c': uri = optarg; break;
        case 'a': all = 1; break;
        case 'h':
            puts("usage: cyrange down EXERCISE|SCENARIO-FILE|--all [--connect URI]\n\n"
                 "Removes every domain, network, volume, socket and state file of\n"
                 "the exercise.  Safe to repeat; finds the exercise's domains by their\n"
                 "metadata even without the orchestrator's state.");
            return EXIT_OK;
        default:
            return EXIT_USAGE;
        }
    }
    if ((all && argc - optind != 0) || (!all && argc - optind != 1)) {
        fputs("usage: cyrange down EXERCISE|SCENARIO-FILE|--all\n", stderr);
        return EXIT_USAGE;
    }
    if (all) {
        list = range_state_list(cli_state_dir());
    } else {
        const char *arg = argv[optind];
        char *ex = NULL;
        size_t n = strlen(arg);
        if (n > 5 && strcmp(arg + n - 5, ".json") == 0) {
            diag_list d;
            diag_init(&d);
            scenario *s = scenario_load(arg, &d);
            if (s == NULL) {
                diag_print(&d, stderr);
                diag_clear(&d);
                return EXIT_INVALID;
            }
            ex = strdup(s->id);
            scenario_free(s);
            diag_clear(&d);
        } else if (!plan_exercise_name_ok(arg)) {
            fprintf(stderr, "cyrange down: malformed exercise name '%s'\n", arg);
            return EXIT_USAGE;
        } else {
            ex = strdup(arg);
        }
        list = calloc(2, sizeof(char *));
        if (list == NULL || ex == NULL) {
            free(ex);
            free(list);
            return EXIT_INVALID;
        }
        list[0] = ex;
    }
    for (char **e = list; e && *e; e++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int n = range_down(uri, cli_state_dir(), *e, err, sizeof(err));
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        if (n < 0) {
            fprintf(stderr, "cyrange down: %s: %s\n", *e, err);
            rc = EXIT_INVALID;
        } else if (n == 0) {
            printf("%s: nothing to remove\n", *e);
        } else {
            printf("%s: removed %d object%s in %.1f s\n", *e, n, n == 1 ? "" : "s", secs);
        }
        free(*e);
    }
    free(list);
    return rc;
}
