/* cli_score — findings and scores.
 *
 *   cyrange finding add EXERCISE --team N [evidence...] --description TEXT
 *   cyrange finding list EXERCISE [--team N] [--json]
 *   cyrange finding label EXERCISE ID duplicate|benign|unscripted|none
 *   cyrange score EXERCISE [--team N] [--json]
 *
 * Findings go to the running `cyrange run`, which stores them before it
 * answers.  `score` asks the running exercise, or, when it is over, scores
 * from its records (<state>/records/EXERCISE/).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "findings.h"
#include "journal.h"
#include "range.h"
#include "scenario.h"
#include "scorecard.h"

static const char finding_usage[] =
    "usage: cyrange finding add EXERCISE --team N --description TEXT [evidence...]\n"
    "       cyrange finding list EXERCISE [--team N] [--json]\n"
    "       cyrange finding label EXERCISE ID duplicate|benign|unscripted|none\n"
    "\n"
    "Evidence for `add` (at least one of --host, an indicator, --flow or\n"
    "--community-id):\n"
    "  --host H               an affected host (name or 198.18.x.y), repeatable\n"
    "  --ip A --domain D --url U --hash H --account A\n"
    "                         indicators, each repeatable\n"
    "  --flow PROTO:SRC:SPORT-DST:DPORT   e.g. tcp:198.18.2.100:0-198.18.2.1:3128\n"
    "                         (port 0: any)\n"
    "  --community-id ID      a Community ID v1 (\"1:...\")\n"
    "  --technique T1071.001  the ATT&CK technique\n"
    "  --detected TIME        when it was detected (UTC, 2026-11-22T10:03:00Z;\n"
    "                         default: now)\n"
    "  --action TEXT          what the team did about it\n"
    "  --json FILE|-          the whole finding as JSON (see orchestrator/findings.h)\n";

static void add_str(json_t *obj, const char *key, const char *v)
{
    json_t *a = json_object_get(obj, key);
    if (a == NULL) {
        a = json_array();
        json_object_set_new(obj, key, a);
    }
    json_array_append_new(a, json_string(v));
}

/* "tcp:198.18.2.100:0-198.18.2.1:3128" */
static json_t *parse_flow(const char *s)
{
    char proto[8], src[32], dst[32];
    int sport, dport, n = 0;

    if (sscanf(s, "%7[a-z]:%31[0-9.]:%d-%31[0-9.]:%d%n", proto, src, &sport, dst, &dport,
               &n) != 5 || s[n] != '\0')
        return NULL;
    return json_pack("{s:s, s:s, s:i, s:s, s:i}", "proto", proto, "src", src, "sport", sport,
                     "dst", dst, "dport", dport);
}

static int finding_add(int argc, char **argv)
{
    static const struct option opts[] = {
        { "team", required_argument, NULL, 't' },  { "host", required_argument, NULL, 'H' },
        { "ip", required_argument, NULL, 'i' },    { "domain", required_argument, NULL, 'd' },
        { "url", required_argument, NULL, 'u' },   { "hash", required_argument, NULL, 'x' },
        { "account", required_argument, NULL, 'a' }, { "flow", required_argument, NULL, 'f' },
        { "community-id", required_argument, NULL, 'c' },
        { "technique", required_argument, NULL, 'T' },
        { "detected", required_argument, NULL, 'D' },
        { "description", required_argument, NULL, 'm' },
        { "action", required_argument, NULL, 'A' }, { "json", required_argument, NULL, 'j' },
        { "by", required_argument, NULL, 'b' },    { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int team = 0, c;
    json_t *f = json_object(), *ind = json_object(), *reply = NULL;
    const char *by = NULL;

    optind = 1;
    while ((c = getopt_long(argc, argv, "t:h", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            if (cli_parse_teams(optarg, &team) < 0)
                goto usage;
            break;
        case 'H': add_str(f, "hosts", optarg); break;
        case 'i': add_str(ind, "ips", optarg); break;
        case 'd': add_str(ind, "domains", optarg); break;
        case 'u': add_str(ind, "urls", optarg); break;
        case 'x': add_str(ind, "hashes", optarg); break;
        case 'a': add_str(ind, "accounts", optarg); break;
        case 'f': {
            json_t *fl = parse_flow(optarg);
            if (fl == NULL) {
                fprintf(stderr, "cyrange finding: --flow is PROTO:SRC:SPORT-DST:DPORT, "
                                "e.g. tcp:198.18.2.100:0-198.18.2.1:3128\n");
                goto fail;
            }
            json_object_set_new(f, "flow", fl);
            break;
        }
        case 'c': json_object_set_new(f, "community_id", json_string(optarg)); break;
        case 'T': json_object_set_new(f, "technique", json_string(optarg)); break;
        case 'D': json_object_set_new(f, "detected", json_string(optarg)); break;
        case 'm': json_object_set_new(f, "description", json_string(optarg)); break;
        case 'A': json_object_set_new(f, "action", json_string(optarg)); break;
        case 'b': by = optarg; break;
        case 'j': {
            json_error_t je;
            json_t *doc = strcmp(optarg, "-") == 0 ? json_loadf(stdin, 0, &je)
                                                   : json_load_file(optarg, 0, &je);
            if (doc == NULL || !json_is_object(doc)) {
                fprintf(stderr, "%s:%d:%d: %s\n", strcmp(optarg, "-") ? optarg : "<stdin>",
                        je.line, je.column, doc ? "a finding is a JSON object" : je.text);
                json_decref(doc);
                goto fail;
            }
            json_object_update(f, doc);
            json_decref(doc);
            break;
        }
        case 'h':
            fputs(finding_usage, stdout);
            json_decref(f);
            json_decref(ind);
            return EXIT_OK;
        default:
            goto usage;
        }
    }
    if (argc - optind != 1 || team == 0) {
        fputs("cyrange finding add: EXERCISE and --team N are required\n", stderr);
        goto usage;
    }
    if (json_object_size(ind) > 0)
        json_object_set(f, "indicators", ind);
    json_decref(ind);
    ind = NULL;
    json_t *req = json_pack("{s:s, s:i, s:o, s:s?}", "cmd", "finding", "team", team, "finding",
                            f, "by", by);
    f = NULL;
    int rc = cli_control(argv[optind], req, &reply);
    if (rc == EXIT_OK)
        printf("finding #%lld filed for team %d\n",
               (long long)json_integer_value(json_object_get(reply, "id")), team);
    json_decref(reply);
    return rc;
usage:
    fputs(finding_usage, stderr);
    json_decref(f);
    json_decref(ind);
    return EXIT_USAGE;
fail:
    json_decref(f);
    json_decref(ind);
    return EXIT_INVALID;
}

static void print_finding(const json_t *f)
{
    json_t *ind = json_object_get(f, "indicators");
    const char *key;
    json_t *v;
    size_t i;
    json_t *it;
    time_t t = (time_t)(json_integer_value(json_object_get(f, "detected_ms")) / 1000);
    struct tm tm;
    char when[32];

    gmtime_r(&t, &tm);
    strftime(when, sizeof(when), "%H:%M:%SZ", &tm);
    printf("#%-4lld team %lld  detected %s%s%s  %s\n",
           (long long)json_integer_value(json_object_get(f, "id")),
           (long long)json_integer_value(json_object_get(f, "team")), when,
           json_is_string(json_object_get(f, "label")) ? "  label " : "",
           json_is_string(json_object_get(f, "label"))
               ? json_string_value(json_object_get(f, "label")) : "",
           json_string_value(json_object_get(f, "description")));
    printf("       ");
    json_array_foreach(json_object_get(f, "hosts"), i, it)
        printf(" host %s", json_string_value(it));
    json_object_foreach(ind, key, v)
        json_array_foreach(v, i, it)
            printf(" %.*s %s", (int)strlen(key) - 1, key, json_string_value(it));
    if (json_object_get(f, "technique"))
        printf(" technique %s", json_string_value(json_object_get(f, "technique")));
    if (json_object_get(f, "community_id"))
        printf(" community-id %s", json_string_value(json_object_get(f, "community_id")));
    printf("\n");
}

static int finding_list(int argc, char **argv)
{
    int team, json;
    const char *ex = NULL;
    json_t *reply = NULL;
    int q = cli_parse_query(argc, argv, finding_usage, &ex, &team, &json);
    if (q >= 0)
        return q;
    int rc = cli_control(ex, json_pack("{s:s, s:i}", "cmd", "findings", "team", team),
                         &reply);
    if (rc != EXIT_OK)
        return rc;
    json_t *list = json_object_get(reply, "findings");
    if (json) {
        json_dumpf(list, stdout, JSON_INDENT(2));
        putchar('\n');
    } else {
        size_t i;
        json_t *f;
        if (json_array_size(list) == 0)
            printf("no findings\n");
        json_array_foreach(list, i, f)
            print_finding(f);
    }
    json_decref(reply);
    return EXIT_OK;
}

static int finding_label(int argc, char **argv)
{
    const char *label = NULL;
    char *end = NULL;

    if (argc != 4) {
        fputs(finding_usage, stderr);
        return EXIT_USAGE;
    }
    long id = strtol(argv[2], &end, 10);
    if (*end != '\0' || id <= 0 || findings_label_parse(argv[3], &label) < 0) {
        fputs(finding_usage, stderr);
        return EXIT_USAGE;
    }
    int rc = cli_control(argv[1], json_pack("{s:s, s:i, s:s, s:s}", "cmd", "label", "finding",
                                            (int)id, "label", argv[3], "by", "cli"), NULL);
    if (rc == EXIT_OK)
        printf("finding #%ld: %s\n", id, label ? label : "label cleared");
    return rc;
}

int cli_finding(int argc, char **argv)
{
    if (argc < 2) {
        fputs(finding_usage, stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "add") == 0)
        return finding_add(argc - 1, argv + 1);
    if (strcmp(argv[1], "list") == 0)
        return finding_list(argc - 1, argv + 1);
    if (strcmp(argv[1], "label") == 0)
        return finding_label(argc - 1, argv + 1);
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(finding_usage, stdout);
        return EXIT_OK;
    }
    fputs(finding_usage, stderr);
    return EXIT_USAGE;
}

/* Scores from the records of an exercise that is no longer running. */
static json_t *score_offline(const char *exname, int team, char *err, size_t errlen)
{
    char *dir = range_records_dir(cli_state_dir(), exname), *path = NULL;
    json_t *jlog = NULL, *flog = NULL, *clog = NULL, *out = NULL;
    scenario *s = NULL;
    diag_list d;

    diag_init(&d);
    if (dir == NULL || asprintf(&path, "%s/scenario.json", dir) < 0) {
        snprintf(err, errlen, "out of memory");
        goto cleanup;
    }
    if ((s = scenario_load(path, &d)) == NULL) {
        snprintf(err, errlen, "no running exercise %s, and no records in %s "
                 "(run it with `cyrange run`)", exname, dir);
        goto cleanup;
    }
    free(path);
    path = NULL;
    const char *names[3] = { "journal", "findings", "checks" };
    json_t **logs[3] = { &jlog, &flog, &clog };
    for (int i = 0; i < 3; i++) {
        if (asprintf(&path, "%s/%s.jsonl", dir, names[i]) < 0)
            goto cleanup;
        *logs[i] = journal_read(path);
        if (*logs[i] == NULL)
            *logs[i] = json_array();
        free(path);
        path = NULL;
    }
    /* The end of the exercise is its last record. */
    long long end = 0;
    struct stat st;
    if (asprintf(&path, "%s/journal.jsonl", dir) >= 0 && stat(path, &st) == 0)
        end = (long long)st.st_mtime * 1000;
    json_t *teams = json_array();
    for (int t = 1; t <= s->team_count && t <= SCENARIO_MAX_TEAMS; t++) {
        int seen = 0;
        size_t i;
        json_t *l;
        json_array_foreach(jlog, i, l)
            seen |= json_integer_value(json_object_get(l, "team")) == t;
        if ((team && t != team) || !seen)
            continue;
        json_t *fl = findings_fold(flog, t);
        json_t *b = scorecard_team(s, t, end, jlog, fl, clog, NULL, NULL, err, errlen);
        json_decref(fl);
        if (b == NULL) {
            json_decref(teams);
            goto cleanup;
        }
        json_array_append_new(teams, b);
    }
    out = json_pack("{s:b, s:o}", "ok", 1, "teams", teams);
cleanup:
    json_decref(jlog);
    json_decref(flog);
    json_decref(clog);
    scenario_free(s);
    diag_clear(&d);
    free(path);
    free(dir);
    return out;
}

int cli_score(int argc, char **argv)
{
    static const char usage[] =
        "usage: cyrange score EXERCISE [--team N] [--json]\n\n"
        "Every team's score with the reason for every point: detection (findings\n"
        "matched to the ground truth), false positives, availability (checks, C2\n"
        "containment), reports and injects.  Asks the running exercise, or scores\n"
        "from its records once it is over.\n";
    int team, json;
    const char *ex = NULL;
    json_t *reply = NULL;
    char *sock = NULL, err[512];
    struct stat st;
    int q = cli_parse_query(argc, argv, usage, &ex, &team, &json);
    if (q >= 0)
        return q;
    if (asprintf(&sock, "%s/%s/control.sock", cli_state_dir(), ex) < 0)
        return EXIT_INVALID;
    int running = stat(sock, &st) == 0;
    free(sock);
    if (running) {
        int rc = cli_control(ex, json_pack("{s:s, s:i}", "cmd", "score", "team", team), &reply);
        if (rc != EXIT_OK)
            return rc;
    } else if ((reply = score_offline(ex, team, err, sizeof(err))) == NULL) {
        fprintf(stderr, "cyrange score: %s\n", err);
        return EXIT_INVALID;
    }
    json_t *teams = json_object_get(reply, "teams");
    if (json) {
        json_dumpf(teams, stdout, JSON_INDENT(2));
        putchar('\n');
    } else {
        size_t i;
        json_t *b;
        json_array_foreach(teams, i, b) {
            char *text = score_format_text(b);
            fputs(text ? text : "(cannot format the score)\n", stdout);
            free(text);
        }
    }
    json_decref(reply);
    return EXIT_OK;
}
