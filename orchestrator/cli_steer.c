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
#include "addr.h"
#include "agentlink.h"
#include "control.h"
#include "journal.h"
#include "plan.h"
#include "proto.h"
#include "range.h"

/* ---- instructor commands to a running `cyrange run` --------------------- */

/* pause | resume | reset EXERCISE [--team N]; skip | inject EXERCISE STEP
 * [--team N] */
int cli_steer(int argc, char **argv, const char *cmd, int needs_step)
{
    static const struct option opts[] = {
        { "team", required_argument, NULL, 't' }, { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int team = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "t:h", opts, NULL)) != -1) {
        if (c == 't' && cli_parse_teams(optarg, &team) == 0)
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
    int rc = cli_control(argv[optind], req, NULL);
    if (rc == EXIT_OK)
        printf("%s: %s done%s\n", argv[optind], argv[0],
               team ? "" : " for every team");
    return rc;
}

int cli_timeline(int argc, char **argv)
{
    int team, json;
    const char *ex = NULL;
    json_t *reply = NULL;
    int q = cli_parse_query(argc, argv,
                            "usage: cyrange timeline EXERCISE [--team N] [--json]\n\nEvery "
                            "team's clock and the state of every step, from the running\n"
                            "`cyrange run`.\n", &ex, &team, &json);
    if (q >= 0)
        return q;
    int rc = cli_control(ex, json_pack("{s:s}", "cmd", "status"), &reply);
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
int cli_journal(int argc, char **argv)
{
    static const struct option opts[] = {
        { "team", required_argument, NULL, 't' }, { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int team = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "t:h", opts, NULL)) != -1) {
        if (c == 't' && cli_parse_teams(optarg, &team) == 0)
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
    char *dir = range_records_dir(cli_state_dir(), argv[optind]);
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
    if (asprintf(&path, "%s/%s/control.sock", cli_state_dir(), exname) >= 0 &&
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
    if (asprintf(&path, "%s/%s/t%02d-%s.agent.sock", cli_state_dir(), exname, team,
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
            if (cli_parse_teams(optarg, team) < 0)
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

int cli_exec(int argc, char **argv)
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

int cli_probe(int argc, char **argv)
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
