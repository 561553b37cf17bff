/* cyrange — command-line entry point.  Only this file decides what the user
 * sees: library modules report through diag lists and error buffers. */
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

#include "addr.h"
#include "agentlink.h"
#include "control.h"
#include "diag.h"
#include "exercise.h"
#include "journal.h"
#include "plan.h"
#include "range.h"
#include "scenario.h"

#define CYRANGE_VERSION "0.1.0"

/* Exit codes, as documented in README.md. */
enum { EXIT_OK = 0, EXIT_INVALID = 1, EXIT_USAGE = 2 };

static void usage(FILE *out)
{
    fputs(
"usage: cyrange COMMAND [OPTIONS] [ARGS]\n"
"\n"
"Cyber-defence exercise range orchestrator: every team gets its own isolated\n"
"copy of an organisation's network on real QEMU guests, a scripted attacker\n"
"plays the scenario, and detections are scored against what crossed the wire.\n"
"\n"
"Scenario commands:\n"
"  validate FILE...                 check scenarios; prints every error as\n"
"                                   file:line:col: message, or \"scenario OK\"\n"
"  plan FILE [--teams N] [--name EXERCISE] [--json]\n"
"                                   print the concrete per-team plan (dry run)\n"
"\n"
"Range commands (root; libvirtd must run: `make deps` starts it):\n"
"  up FILE [--teams N] [--name EXERCISE] [--connect URI]\n"
"     [--domain-type qemu|kvm] [--images DIR] [--timeout SECONDS]\n"
"     [--keep-on-failure]            create every team's isolated LAN and\n"
"                                   guests, configure their agents, and wait\n"
"                                   until all are ready; rolls back on failure\n"
"  status [EXERCISE] [--json]       teams, hosts, addresses, guest and agent\n"
"                                   state of running exercises\n"
"  down EXERCISE|FILE|--all         remove everything of an exercise\n"
"                                   (idempotent)\n"
"  run FILE [up options] [--keep] [--exit-when-done] [--seed N] [--hold]\n"
"                                   up, then play the attack timeline on every\n"
"                                   team's own clock (Ctrl-C stops and removes)\n"
"  timeline EXERCISE [--team N] [--json]\n"
"                                   every team's clock and steps\n"
"  journal EXERCISE [--team N]      the ground-truth journal as JSON\n"
"  start|pause|resume|reset EXERCISE [--team N]\n"
"                                   steer a running exercise (reset: fresh\n"
"                                   guests and the timeline from zero)\n"
"  skip|inject EXERCISE STEP [--team N]\n"
"                                   skip a step, or run one now\n"
"  exec EXERCISE --team N --host H -- CMD...\n"
"                                   run a command in a guest through its agent\n"
"  probe EXERCISE --team N --host H ADDRESS PORT\n"
"                                   TCP connect from a guest (range addresses\n"
"                                   only); exit 0 when reachable\n"
"\n"
"Other:\n"
"  help                             this text\n"
"  version                          print the version\n"
"\n"
"Exit status: 0 success, 1 invalid input or failure, 2 usage error.\n"
"Scenario format: scenarios/FORMAT.md; JSON Schema: scenarios/schema.json.\n",
        out);
}

static int cmd_validate(int argc, char **argv)
{
    int bad = 0;
    static const struct option opts[] = {
        { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 }
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            puts("usage: cyrange validate FILE...\n\nChecks each scenario and "
                 "prints every problem as file:line:col: message.\nExit 0 when all "
                 "are valid, 1 when any is not, 2 on usage errors.");
            return EXIT_OK;
        }
        return EXIT_USAGE;
    }
    if (optind >= argc) {
        fputs("cyrange validate: no scenario file given\n"
              "usage: cyrange validate FILE...\n", stderr);
        return EXIT_USAGE;
    }
    for (int i = optind; i < argc; i++) {
        diag_list d;
        diag_init(&d);
        scenario *s = scenario_load(argv[i], &d);
        if (s == NULL) {
            diag_sort(&d);
            diag_print(&d, stderr);
            bad = 1;
        } else {
            printf("%s: scenario OK (%zu segment%s, %zu host%s, %zu step%s, "
                   "%zu check%s)\n", argv[i],
                   s->n_segments, s->n_segments == 1 ? "" : "s",
                   s->n_hosts, s->n_hosts == 1 ? "" : "s",
                   s->n_steps, s->n_steps == 1 ? "" : "s",
                   s->n_checks, s->n_checks == 1 ? "" : "s");
        }
        scenario_free(s);
        diag_clear(&d);
    }
    return bad ? EXIT_INVALID : EXIT_OK;
}

static int parse_teams(const char *arg, int *out)
{
    char *end = NULL;
    long v = strtol(arg, &end, 10);
    if (arg[0] == '\0' || *end != '\0' || v < 1 || v > SCENARIO_MAX_TEAMS)
        return -1;
    *out = (int)v;
    return 0;
}

static int cmd_plan(int argc, char **argv)
{
    static const struct option opts[] = {
        { "teams", required_argument, NULL, 't' },
        { "name", required_argument, NULL, 'n' },
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int teams = 0, json = 0, c, rc = EXIT_INVALID;
    const char *name = NULL;
    diag_list d;
    scenario *s = NULL;
    plan *p = NULL;
    char err[256];

    optind = 1;
    while ((c = getopt_long(argc, argv, "t:n:jh", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            if (parse_teams(optarg, &teams) < 0) {
                fprintf(stderr, "cyrange plan: --teams must be 1..%d, got '%s'\n",
                        SCENARIO_MAX_TEAMS, optarg);
                return EXIT_USAGE;
            }
            break;
        case 'n': name = optarg; break;
        case 'j': json = 1; break;
        case 'h':
            puts("usage: cyrange plan FILE [--teams N] [--name EXERCISE] [--json]\n\n"
                 "Prints what `cyrange up` would create for every team: libvirt\n"
                 "networks and bridges, domains, MACs and addresses, and the\n"
                 "timeline with absolute offsets.  --teams defaults to the\n"
                 "scenario's team count; --name to the scenario id.");
            return EXIT_OK;
        default:
            return EXIT_USAGE;
        }
    }
    if (argc - optind != 1) {
        fputs("usage: cyrange plan FILE [--teams N] [--name EXERCISE] [--json]\n",
              stderr);
        return EXIT_USAGE;
    }
    if (name != NULL && !plan_exercise_name_ok(name)) {
        fprintf(stderr, "cyrange plan: malformed exercise name '%s': expected 1-24 "
                "characters a-z, 0-9 and '-', starting with a letter\n", name);
        return EXIT_USAGE;
    }
    diag_init(&d);
    s = scenario_load(argv[optind], &d);
    if (s == NULL) {
        diag_sort(&d);
        diag_print(&d, stderr);
        goto cleanup;
    }
    p = plan_build(s, name, teams ? teams : s->team_count, err, sizeof(err));
    if (p == NULL) {
        fprintf(stderr, "cyrange plan: %s\n", err);
        goto cleanup;
    }
    if (json) {
        json_t *j = plan_to_json(p);
        if (j == NULL || json_dumpf(j, stdout, JSON_INDENT(2)) < 0) {
            json_decref(j);
            fputs("cyrange plan: out of memory\n", stderr);
            goto cleanup;
        }
        fputc('\n', stdout);
        json_decref(j);
    } else if (plan_write_text(p, stdout) < 0) {
        fputs("cyrange plan: write error\n", stderr);
        goto cleanup;
    }
    rc = EXIT_OK;
cleanup:
    plan_free(p);
    scenario_free(s);
    diag_clear(&d);
    return rc;
}

/* ---- range commands -------------------------------------------------- */

static const char *state_dir(void)
{
    const char *d = getenv("CYRANGE_STATE_DIR");
    return d && *d ? d : RANGE_STATE_DIR;
}

/* build/cyrange -> build/images, unless CYRANGE_IMAGES says otherwise. */
static char *default_images_dir(const char *argv0)
{
    const char *env = getenv("CYRANGE_IMAGES");
    char exe[PATH_MAX];
    char *out = NULL;
    ssize_t n;
    if (env && *env)
        return strdup(env);
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            if (asprintf(&out, "%s/images", exe) < 0)
                out = NULL;
            return out;
        }
    }
    (void)argv0;
    return strdup("build/images");
}

static char *read_text(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0;
    if (f == NULL)
        return NULL;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 65536;
            char *nb = realloc(buf, cap + 1);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

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

static json_t *on_control(const json_t *req, control_pending *later, void *opaque)
{
    up_ctx *c = opaque;
    const char *cmd = json_string_value(json_object_get(req, "cmd"));
    if (cmd && strcmp(cmd, "guest") == 0)
        return guest_request(c, req, later);
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
    printf("ground-truth journal: %s/journal.jsonl\n", records);
    c->x = exercise_new(c->loop, p, c->r, records, seed, on_exercise_log, c, err,
                        sizeof(err));
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
    if (c->hold)
        printf("clocks are held: `cyrange start %s [--team N]` starts them\n",
               p->exercise);
    else
        exercise_start(c->x);
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
    exercise_free(c->x);
    c->x = NULL;
    free(sock);
    free(dir);
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
    const char *cmdname = run ? "run" : "up";

    o.domain_type = "qemu";
    o.state_dir = state_dir();
    optind = 1;
    while ((c = getopt_long(argc, argv, "t:n:c:d:i:T:kh", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            if (parse_teams(optarg, &teams) < 0) {
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
    text = read_text(argv[optind], &tlen);
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
            fprintf(stderr, "cyrange up: exercise '%s' is already up (%d teams); "
                    "`cyrange down %s` first, or use --name\n", p->exercise, tt,
                    p->exercise);
            free(sp);
            goto cleanup;
        }
    }
    if (o.images_dir == NULL) {
        images = default_images_dir(argv[0]);
        o.images_dir = images;
    }
    if (range_state_save(p, &o, text, tlen, err, sizeof(err)) < 0) {
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
    if (range_up(ctx.r, on_up_done, &ctx, err, sizeof(err)) < 0) {
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
    return rc;
}

static int cmd_up(int argc, char **argv)
{
    return up_or_run(argc, argv, 0);
}

static int cmd_run(int argc, char **argv)
{
    return up_or_run(argc, argv, 1);
}

/* ---- instructor commands to a running `cyrange run` --------------------- */

static int control_cmd(const char *exname, json_t *req, json_t **reply_out)
{
    char *path = NULL, err[512];
    json_t *reply;
    if (asprintf(&path, "%s/%s/control.sock", state_dir(), exname) < 0) {
        json_decref(req);
        return EXIT_INVALID;
    }
    reply = control_call(path, req, 30000, err, sizeof(err));
    free(path);
    json_decref(req);
    if (reply == NULL) {
        fprintf(stderr, "cyrange: %s\n", err);
        return EXIT_INVALID;
    }
    if (!json_is_true(json_object_get(reply, "ok"))) {
        fprintf(stderr, "cyrange: %s\n",
                json_string_value(json_object_get(reply, "error")) ?: "refused");
        json_decref(reply);
        return EXIT_INVALID;
    }
    if (reply_out)
        *reply_out = reply;
    else
        json_decref(reply);
    return EXIT_OK;
}

/* pause | resume | reset EXERCISE [--team N]; skip | inject EXERCISE STEP
 * [--team N] */
static int cmd_steer(int argc, char **argv, const char *cmd, int needs_step)
{
    static const struct option opts[] = {
        { "team", required_argument, NULL, 't' }, { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int team = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "t:h", opts, NULL)) != -1) {
        if (c == 't' && parse_teams(optarg, &team) == 0)
            continue;
        if (c == 'h') {
            printf("usage: cyrange %s EXERCISE%s [--team N]\n\nSent to the running "
                   "`cyrange run` of EXERCISE; without --team, every team.\n",
                   argv[0], needs_step ? " STEP" : "");
            return EXIT_OK;
        }
        fprintf(stderr, "usage: cyrange %s EXERCISE%s [--team N]\n", argv[0],
                needs_step ? " STEP" : "");
        return EXIT_USAGE;
    }
    if (argc - optind != (needs_step ? 2 : 1)) {
        fprintf(stderr, "usage: cyrange %s EXERCISE%s [--team N]\n", argv[0],
                needs_step ? " STEP" : "");
        return EXIT_USAGE;
    }
    json_t *req = json_pack("{s:s, s:i}", "cmd", cmd, "team", team);
    if (needs_step)
        json_object_set_new(req, "step", json_string(argv[optind + 1]));
    int rc = control_cmd(argv[optind], req, NULL);
    if (rc == EXIT_OK)
        printf("%s: %s done%s\n", argv[optind], argv[0],
               team ? "" : " for every team");
    return rc;
}

static int cmd_timeline(int argc, char **argv)
{
    static const struct option opts[] = {
        { "team", required_argument, NULL, 't' }, { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 }
    };
    int team = 0, json = 0, c;
    json_t *reply = NULL;
    optind = 1;
    while ((c = getopt_long(argc, argv, "t:jh", opts, NULL)) != -1) {
        if (c == 't' && parse_teams(optarg, &team) == 0)
            continue;
        if (c == 'j') {
            json = 1;
            continue;
        }
        if (c == 'h') {
            puts("usage: cyrange timeline EXERCISE [--team N] [--json]\n\nEvery "
                 "team's clock and the state of every step, from the running\n"
                 "`cyrange run`.");
            return EXIT_OK;
        }
        return EXIT_USAGE;
    }
    if (argc - optind != 1) {
        fputs("usage: cyrange timeline EXERCISE [--team N] [--json]\n", stderr);
        return EXIT_USAGE;
    }
    int rc = control_cmd(argv[optind], json_pack("{s:s}", "cmd", "status"), &reply);
    if (rc != EXIT_OK)
        return rc;
    if (json) {
        json_dumpf(reply, stdout, JSON_INDENT(2));
        putchar('\n');
        json_decref(reply);
        return EXIT_OK;
    }
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(reply, "teams"), i, t) {
        int tn = (int)json_integer_value(json_object_get(t, "team"));
        if (team && tn != team)
            continue;
        double el = json_number_value(json_object_get(t, "elapsed_s"));
        printf("team t%02d  clock %-8s exercise time %s%02d:%02d:%02d\n", tn,
               json_string_value(json_object_get(t, "clock")), "+",
               (int)el / 3600, (int)el / 60 % 60, (int)el % 60);
        size_t k;
        json_t *st;
        json_array_foreach(json_object_get(t, "steps"), k, st) {
            json_t *when = json_object_get(st, "started_s");
            if (when == NULL)
                when = json_object_get(st, "due_s");
            char at[24] = "";
            if (when) {
                double w = json_number_value(when);
                snprintf(at, sizeof(at), "+%02d:%02d:%02d", (int)w / 3600,
                         (int)w / 60 % 60, (int)w % 60);
            }
            printf("  %-10s %-22s %-20s %-10s %s\n", at,
                   json_string_value(json_object_get(st, "id")),
                   json_string_value(json_object_get(st, "action")),
                   json_string_value(json_object_get(st, "state")),
                   json_string_value(json_object_get(st, "detail")) ?: "");
        }
    }
    json_decref(reply);
    return EXIT_OK;
}

/* cyrange journal EXERCISE [--team N]: the ground truth as one JSON
 * document (entries of other teams are left out; exercise-wide entries
 * stay). */
static int cmd_journal(int argc, char **argv)
{
    static const struct option opts[] = {
        { "team", required_argument, NULL, 't' }, { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int team = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "t:h", opts, NULL)) != -1) {
        if (c == 't' && parse_teams(optarg, &team) == 0)
            continue;
        if (c == 'h') {
            puts("usage: cyrange journal EXERCISE [--team N]\n\nExports the "
                 "ground-truth journal (every step's start and result, flows with\n"
                 "Community IDs, artefacts, injects, instructor actions) as JSON.\n"
                 "It outlives the range: `down` keeps it.");
            return EXIT_OK;
        }
        return EXIT_USAGE;
    }
    if (argc - optind != 1 || !plan_exercise_name_ok(argv[optind])) {
        fputs("usage: cyrange journal EXERCISE [--team N]\n", stderr);
        return EXIT_USAGE;
    }
    char *dir = range_records_dir(state_dir(), argv[optind]);
    char *path = NULL;
    if (dir == NULL || asprintf(&path, "%s/journal.jsonl", dir) < 0) {
        free(dir);
        return EXIT_INVALID;
    }
    json_t *all = journal_read(path);
    if (all == NULL) {
        fprintf(stderr, "cyrange journal: no journal for exercise '%s' (%s)\n",
                argv[optind], path);
        free(dir);
        free(path);
        return EXIT_INVALID;
    }
    json_t *out = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(all, i, e) {
        json_t *t = json_object_get(e, "team");
        if (team == 0 || !json_is_integer(t) || json_integer_value(t) == team)
            json_array_append(out, e);
    }
    json_t *doc = json_pack("{s:s, s:s, s:o}", "exercise", argv[optind], "journal", path,
                            "entries", out);
    if (team)
        json_object_set_new(doc, "team", json_integer(team));
    json_dumpf(doc, stdout, JSON_INDENT(2));
    putchar('\n');
    json_decref(doc);
    json_decref(all);
    free(dir);
    free(path);
    return EXIT_OK;
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
        char *sock = NULL, cerr[256];
        json_t *reply = NULL;
        if (asprintf(&sock, "%s/%s/control.sock", state_dir(), exname) >= 0 &&
            access(sock, F_OK) == 0)
            reply = control_call(sock, json_pack("{s:s}", "cmd", "guests"), 10000,
                                 cerr, sizeof(cerr));
        free(sock);
        if (reply != NULL) {
            json_t *guests = json_object_get(reply, "guests");
            if (json) {
                json_array_append_new(jall, json_pack("{s:s, s:b, s:O}", "exercise",
                                      exname, "running", 1, "guests", guests));
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
            }
            json_decref(reply);
            diag_clear(&d);
            return EXIT_OK;
        }
    }
    if (range_state_load(state_dir(), exname, &spath, &origin, &teams, &uri,
                         &dtype) < 0) {
        fprintf(stderr, "cyrange status: no exname '%s' is up\n", exname);
        goto cleanup;
    }
    /* The copy taken at `up`, named after the original so that relative
     * disk image paths resolve as they did then. */
    text = read_text(spath, &tlen);
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
    o.state_dir = state_dir();
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

static int cmd_status(int argc, char **argv)
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
        list = range_state_list(state_dir());
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

static int cmd_down(int argc, char **argv)
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
        list = range_state_list(state_dir());
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
        int n = range_down(uri, state_dir(), *e, err, sizeof(err));
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

/* ---- one request to one guest's agent (exec, probe) -------------------- */

typedef struct req_ctx {
    uv_loop_t *loop;
    agentlink *link;
    json_t *req;          /* sent once the agent said hello */
    int timeout_ms;
    int done;
    int rc;
    int is_exec;
    uv_timer_t timer;
} req_ctx;

static void req_reply(agentlink *l, const proto_msg *m, const char *why, void *opaque)
{
    req_ctx *c = opaque;
    (void)l;
    c->done = 1;
    if (m == NULL) {
        fprintf(stderr, "cyrange: no answer from the agent: %s\n", why);
        c->rc = EXIT_INVALID;
        return;
    }
    if (!m->u.reply.ok) {
        fprintf(stderr, "cyrange: agent: %s\n", m->u.reply.error ? m->u.reply.error : "?");
        c->rc = EXIT_INVALID;
        return;
    }
    json_t *b = m->u.reply.body;
    if (c->is_exec) {
        fputs(json_string_value(json_object_get(b, "stdout")) ?: "", stdout);
        fputs(json_string_value(json_object_get(b, "stderr")) ?: "", stderr);
        json_t *ex = json_object_get(b, "exit");
        c->rc = json_is_integer(ex) ? (int)json_integer_value(ex) : 125;
        if (json_is_true(json_object_get(b, "timed_out")))
            fprintf(stderr, "cyrange: command timed out\n");
    } else {
        json_t *copy = json_deep_copy(b);
        json_object_del(copy, "t");
        json_object_del(copy, "id");
        json_dumpf(copy, stdout, JSON_COMPACT);
        putchar('\n');
        json_decref(copy);
        c->rc = json_is_true(json_object_get(b, "reachable")) ? EXIT_OK : EXIT_INVALID;
    }
}

static void req_hello(agentlink *l, const proto_msg *m, void *opaque)
{
    req_ctx *c = opaque;
    (void)m;
    if (c->req == NULL)
        return;
    json_t *r = c->req;
    c->req = NULL;
    if (agentlink_request(l, r, c->timeout_ms, req_reply, c) < 0) {
        fprintf(stderr, "cyrange: cannot send the request\n");
        c->done = 1;
        c->rc = EXIT_INVALID;
    }
}

static void req_timeout(uv_timer_t *t)
{
    req_ctx *c = t->data;
    if (c->req != NULL) {
        fprintf(stderr, "cyrange: the agent did not say hello in time (is the guest "
                "up? is another orchestrator attached to it?)\n");
        c->done = 1;
        c->rc = EXIT_INVALID;
    }
}

/* Prints a relayed exec/probe answer as a direct one would be. */
static int relay_result(json_t *b, int is_exec)
{
    if (!json_is_true(json_object_get(b, "ok"))) {
        fprintf(stderr, "cyrange: %s\n",
                json_string_value(json_object_get(b, "error")) ?: "refused");
        return EXIT_INVALID;
    }
    if (!json_is_true(json_object_get(b, "agent_ok"))) {
        fprintf(stderr, "cyrange: agent: %s\n",
                json_string_value(json_object_get(b, "error")) ?: "?");
        return EXIT_INVALID;
    }
    if (is_exec) {
        fputs(json_string_value(json_object_get(b, "stdout")) ?: "", stdout);
        fputs(json_string_value(json_object_get(b, "stderr")) ?: "", stderr);
        json_t *ex = json_object_get(b, "exit");
        return json_is_integer(ex) ? (int)json_integer_value(ex) : 125;
    }
    json_object_del(b, "ok");
    json_object_del(b, "agent_ok");
    json_object_set_new(b, "ok", json_true());
    json_dumpf(b, stdout, JSON_COMPACT);
    putchar('\n');
    return json_is_true(json_object_get(b, "reachable")) ? EXIT_OK : EXIT_INVALID;
}

static int agent_request(const char *exname, int team, const char *host,
                         json_t *req, int timeout_ms, int is_exec)
{
    uv_loop_t loop;
    req_ctx c = { 0 };
    char *path = NULL;
    static const agentlink_cbs cbs = { req_hello, NULL, NULL };
    struct stat st;

    /* While `cyrange run` holds the channels, it relays the request. */
    if (asprintf(&path, "%s/%s/control.sock", state_dir(), exname) >= 0 &&
        access(path, F_OK) == 0) {
        char cerr[256];
        json_t *creq = json_pack("{s:s, s:i, s:s, s:O, s:i}", "cmd", "guest", "team",
                                 team, "host", host, "request", req, "timeout_ms",
                                 timeout_ms);
        json_t *rep = control_call(path, creq, timeout_ms + 10000, cerr, sizeof(cerr));
        json_decref(creq);
        free(path);
        json_decref(req);
        if (rep == NULL) {
            fprintf(stderr, "cyrange: %s\n", cerr);
            return EXIT_INVALID;
        }
        int rc = relay_result(rep, is_exec);
        json_decref(rep);
        return rc;
    }
    free(path);
    path = NULL;
    if (asprintf(&path, "%s/%s/t%02d-%s.agent.sock", state_dir(), exname, team,
                 host) < 0) {
        json_decref(req);
        return EXIT_INVALID;
    }
    if (stat(path, &st) < 0) {
        fprintf(stderr, "cyrange: no agent channel %s (is exname '%s' up with "
                "team %d and host '%s'?)\n", path, exname, team, host);
        free(path);
        json_decref(req);
        return EXIT_INVALID;
    }
    uv_loop_init(&loop);
    c.loop = &loop;
    c.req = req;
    c.timeout_ms = timeout_ms;
    c.is_exec = is_exec;
    c.link = agentlink_new(&loop, path, &cbs, &c);
    uv_timer_init(&loop, &c.timer);
    c.timer.data = &c;
    uv_timer_start(&c.timer, req_timeout, 10000, 0);
    if (c.link == NULL || agentlink_start(c.link) < 0) {
        c.done = 1;
        c.rc = EXIT_INVALID;
    }
    while (!c.done && uv_run(&loop, UV_RUN_ONCE))
        ;
    json_decref(c.req);
    agentlink_close(c.link, NULL, NULL);
    uv_close((uv_handle_t *)&c.timer, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    free(path);
    return c.rc;
}

/* EXERCISE --team N --host H: shared by exec and probe. */
static int parse_target(int argc, char **argv, const char *cmd, const char **ex,
                        int *team, const char **host, int *timeout_ms)
{
    static const struct option opts[] = {
        { "team", required_argument, NULL, 't' },
        { "host", required_argument, NULL, 'H' },
        { "timeout", required_argument, NULL, 'T' },
        { NULL, 0, NULL, 0 }
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "t:H:T:", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            if (parse_teams(optarg, team) < 0)
                goto usage;
            break;
        case 'H': *host = optarg; break;
        case 'T': *timeout_ms = atoi(optarg) * 1000; break;
        default: goto usage;
        }
    }
    if (optind >= argc || *team == 0 || *host == NULL)
        goto usage;
    *ex = argv[optind++];
    return 0;
usage:
    if (strcmp(cmd, "exec") == 0)
        fputs("usage: cyrange exec EXERCISE --team N --host HOST [--timeout S] -- "
              "COMMAND [ARG...]\n", stderr);
    else
        fputs("usage: cyrange probe EXERCISE --team N --host HOST [--timeout S] "
              "ADDRESS PORT\n", stderr);
    return -1;
}

static int cmd_exec(int argc, char **argv)
{
    const char *ex = NULL, *host = NULL;
    int team = 0, timeout = 30000;
    if (parse_target(argc, argv, "exec", &ex, &team, &host, &timeout) < 0)
        return EXIT_USAGE;
    if (optind < argc && strcmp(argv[optind], "--") == 0)
        optind++;
    if (optind >= argc) {
        fputs("cyrange exec: no command given\n", stderr);
        return EXIT_USAGE;
    }
    json_t *args = json_array();
    for (int i = optind; i < argc; i++)
        json_array_append_new(args, json_string(argv[i]));
    json_t *req = json_pack("{s:s, s:o, s:i}", "t", "exec", "argv", args,
                            "timeout_ms", timeout);
    return agent_request(ex, team, host, req, timeout + 5000, 1);
}

static int cmd_probe(int argc, char **argv)
{
    const char *ex = NULL, *host = NULL;
    int team = 0, timeout = 3000;
    uint32_t a;
    if (parse_target(argc, argv, "probe", &ex, &team, &host, &timeout) < 0)
        return EXIT_USAGE;
    if (argc - optind != 2 || addr_parse(argv[optind], &a) < 0 ||
        atoi(argv[optind + 1]) < 1 || atoi(argv[optind + 1]) > 65535) {
        fputs("usage: cyrange probe EXERCISE --team N --host HOST ADDRESS PORT\n", stderr);
        return EXIT_USAGE;
    }
    json_t *req = json_pack("{s:s, s:s, s:s, s:i, s:i}", "t", "probe", "proto", "tcp",
                            "addr", argv[optind], "port", atoi(argv[optind + 1]),
                            "timeout_ms", timeout);
    return agent_request(ex, team, host, req, timeout + 5000, 0);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 ||
        strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return EXIT_OK;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("cyrange %s\n", CYRANGE_VERSION);
        return EXIT_OK;
    }
    if (strcmp(cmd, "validate") == 0)
        return cmd_validate(argc - 1, argv + 1);
    if (strcmp(cmd, "plan") == 0)
        return cmd_plan(argc - 1, argv + 1);
    if (strcmp(cmd, "up") == 0)
        return cmd_up(argc - 1, argv + 1);
    if (strcmp(cmd, "status") == 0)
        return cmd_status(argc - 1, argv + 1);
    if (strcmp(cmd, "down") == 0)
        return cmd_down(argc - 1, argv + 1);
    if (strcmp(cmd, "exec") == 0)
        return cmd_exec(argc - 1, argv + 1);
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc - 1, argv + 1);
    if (strcmp(cmd, "timeline") == 0)
        return cmd_timeline(argc - 1, argv + 1);
    if (strcmp(cmd, "journal") == 0)
        return cmd_journal(argc - 1, argv + 1);
    if (strcmp(cmd, "start") == 0)
        return cmd_steer(argc - 1, argv + 1, "start", 0);
    if (strcmp(cmd, "pause") == 0)
        return cmd_steer(argc - 1, argv + 1, "pause", 0);
    if (strcmp(cmd, "resume") == 0)
        return cmd_steer(argc - 1, argv + 1, "resume", 0);
    if (strcmp(cmd, "reset") == 0)
        return cmd_steer(argc - 1, argv + 1, "reset", 0);
    if (strcmp(cmd, "skip") == 0)
        return cmd_steer(argc - 1, argv + 1, "skip", 1);
    if (strcmp(cmd, "inject") == 0)
        return cmd_steer(argc - 1, argv + 1, "run", 1);
    if (strcmp(cmd, "probe") == 0)
        return cmd_probe(argc - 1, argv + 1);
    fprintf(stderr, "cyrange: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return EXIT_USAGE;
}
