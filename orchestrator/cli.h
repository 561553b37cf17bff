/* cli — the cyrange command line: one file per group of commands.
 *
 *   cli_scenario.c  validate, plan
 *   cli_range.c     up, run (and the running exercise's control socket),
 *                   status, down
 *   cli_steer.c     timeline, start/pause/resume/reset, skip/inject,
 *                   journal, exec, probe
 *   cli_score.c     finding add/list/label, score
 *   cli_users.c     users (accounts of the web UI and API)
 *   cli_common.c    what they share
 *
 * Only these files and main.c print: the modules they call report through
 * diagnostics lists and error buffers.
 */
#ifndef CYRANGE_CLI_H
#define CYRANGE_CLI_H

#include <jansson.h>
#include <stddef.h>

/* Exit codes, as documented in README.md. */
enum { EXIT_OK = 0, EXIT_INVALID = 1, EXIT_USAGE = 2 };

/* CYRANGE_STATE_DIR, or /var/lib/cyrange. */
const char *cli_state_dir(void);
/* --teams N: 0, or -1 when not 1..99. */
int cli_parse_teams(const char *arg, int *out);
/* A whole file, NUL-terminated (malloc'd), or NULL. */
char *cli_read_text(const char *path, size_t *len);
/* Sends `req` (stolen) to the running exercise `exname`: through the HTTP
 * API when `cyrange serve` runs it, else to the control socket of
 * `cyrange run`.  0 with the {"ok":true} reply in *reply_out (new
 * reference), or -1 with `err`; prints nothing. */
int cli_call(const char *exname, json_t *req, json_t **reply_out, char *err, size_t errlen);
/* cli_api.c: `req` as the control socket takes it, through the API of
 * `ac` (an apiclient).  -1 when it has no route there; else 0 with *reply
 * (new reference) or NULL and `err`; *unreachable when serve did not
 * answer. */
struct apiclient;
int cli_api_control(struct apiclient *ac, const json_t *req, json_t **reply, int *unreachable,
                    char *err, size_t errlen);
/* cli_call() that prints the error: on
 * {"ok":true} returns EXIT_OK with the reply in *reply_out (new reference;
 * NULL: dropped), else prints the error and returns EXIT_INVALID. */
int cli_control(const char *exname, json_t *req, json_t **reply_out);
/* EXERCISE [--team N] [--json], the arguments of the query commands:
 * -1 with *ex, *team (0: all) and *json set, or the exit code to return
 * (`usage` printed: to stdout for --help, else to stderr). */
int cli_parse_query(int argc, char **argv, const char *usage, const char **ex, int *team,
                    int *json);
/* CYRANGE_WEB, or web/ of the source tree the binary was built in
 * (malloc'd). */
char *cli_default_web_dir(void);
/* CYRANGE_IMAGES, or images/ next to the binary (malloc'd). */
char *cli_default_images_dir(void);

/* Commands: argv[0] is the command's name; each returns an exit code. */
int cli_validate(int argc, char **argv);
int cli_plan(int argc, char **argv);
int cli_up(int argc, char **argv);
int cli_run(int argc, char **argv);
int cli_serve(int argc, char **argv);
int cli_status(int argc, char **argv);
int cli_down(int argc, char **argv);
int cli_timeline(int argc, char **argv);
int cli_journal(int argc, char **argv);
/* start | pause | resume | reset (needs_step 0), skip | inject (1). */
int cli_steer(int argc, char **argv, const char *cmd, int needs_step);
int cli_exec(int argc, char **argv);
int cli_probe(int argc, char **argv);
int cli_finding(int argc, char **argv);
int cli_score(int argc, char **argv);
int cli_users(int argc, char **argv);

#endif
