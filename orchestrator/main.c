/* cyrange — command-line entry point: usage and dispatch.  The commands
 * live in cli_*.c (see cli.h). */
#include <stdio.h>
#include <string.h>

#include "cli.h"

#define CYRANGE_VERSION "0.1.0"

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
"                                   until all are ready (DHCP clients with\n"
"                                   their lease); rolls back on failure\n"
"  status [EXERCISE] [--json]       teams, hosts, addresses, guest and agent\n"
"                                   state of running exercises\n"
"  down EXERCISE|FILE|--all         remove everything of an exercise\n"
"                                   (idempotent)\n"
"  run FILE [up options] [--keep] [--exit-when-done] [--seed N] [--hold]\n"
"                                   up, then play the attack timeline on every\n"
"                                   team's own clock (Ctrl-C stops and removes)\n"
"  serve FILE [run options] [--listen ADDR:PORT] [--web DIR] [--members N]\n"
"                                   run, with the web UI and HTTP/JSON API\n"
"                                   (accounts printed once; after a crash it\n"
"                                   re-attaches and resumes)\n"
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
"Findings and scores:\n"
"  finding add EXERCISE --team N --description TEXT [--host H] [--ip A]\n"
"     [--domain D] [--url U] [--hash H] [--account A] [--flow P:S:SP-D:DP]\n"
"     [--community-id ID] [--technique T] [--detected TIME] [--action TEXT]\n"
"                                   file a team's finding (stored before the\n"
"                                   answer); `finding add --help` for details\n"
"  finding list EXERCISE [--team N] [--json]\n"
"  finding label EXERCISE ID duplicate|benign|unscripted|none\n"
"                                   instructor relabelling of a finding\n"
"  score EXERCISE [--team N] [--json]\n"
"                                   every team's score with the reason for\n"
"                                   every point (live, or from the records)\n"
"\n"
"Accounts of the web UI and API (<state>/cyrange.db):\n"
"  users add|list|passwd|disable|enable|provision ...\n"
"                                   instructors, team members, observers;\n"
"                                   `users --help` for details\n"
"\n"
"Other:\n"
"  help                             this text\n"
"  version                          print the version\n"
"\n"
"Commands to a running exercise go through the HTTP API when `cyrange serve`\n"
"runs it (its session for the command line is in <state>/EXERCISE/api.json,\n"
"root only), else to the control socket of `cyrange run`; exec and probe\n"
"always use the control socket.\n"
"\n"
"Exit status: 0 success, 1 invalid input or failure, 2 usage error.\n"
"Scenario format: scenarios/FORMAT.md; JSON Schema: scenarios/schema.json.\n",
        out);
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
        return cli_validate(argc - 1, argv + 1);
    if (strcmp(cmd, "plan") == 0)
        return cli_plan(argc - 1, argv + 1);
    if (strcmp(cmd, "up") == 0)
        return cli_up(argc - 1, argv + 1);
    if (strcmp(cmd, "status") == 0)
        return cli_status(argc - 1, argv + 1);
    if (strcmp(cmd, "down") == 0)
        return cli_down(argc - 1, argv + 1);
    if (strcmp(cmd, "exec") == 0)
        return cli_exec(argc - 1, argv + 1);
    if (strcmp(cmd, "run") == 0)
        return cli_run(argc - 1, argv + 1);
    if (strcmp(cmd, "serve") == 0)
        return cli_serve(argc - 1, argv + 1);
    if (strcmp(cmd, "timeline") == 0)
        return cli_timeline(argc - 1, argv + 1);
    if (strcmp(cmd, "journal") == 0)
        return cli_journal(argc - 1, argv + 1);
    if (strcmp(cmd, "start") == 0)
        return cli_steer(argc - 1, argv + 1, "start", 0);
    if (strcmp(cmd, "pause") == 0)
        return cli_steer(argc - 1, argv + 1, "pause", 0);
    if (strcmp(cmd, "resume") == 0)
        return cli_steer(argc - 1, argv + 1, "resume", 0);
    if (strcmp(cmd, "reset") == 0)
        return cli_steer(argc - 1, argv + 1, "reset", 0);
    if (strcmp(cmd, "skip") == 0)
        return cli_steer(argc - 1, argv + 1, "skip", 1);
    if (strcmp(cmd, "inject") == 0)
        return cli_steer(argc - 1, argv + 1, "run", 1);
    if (strcmp(cmd, "probe") == 0)
        return cli_probe(argc - 1, argv + 1);
    if (strcmp(cmd, "finding") == 0)
        return cli_finding(argc - 1, argv + 1);
    if (strcmp(cmd, "score") == 0)
        return cli_score(argc - 1, argv + 1);
    if (strcmp(cmd, "users") == 0)
        return cli_users(argc - 1, argv + 1);
    fprintf(stderr, "cyrange: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return EXIT_USAGE;
}
