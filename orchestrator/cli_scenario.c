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
#include "diag.h"
#include "plan.h"
#include "scenario.h"

int cli_validate(int argc, char **argv)
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

int cli_plan(int argc, char **argv)
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
            if (cli_parse_teams(optarg, &teams) < 0) {
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
