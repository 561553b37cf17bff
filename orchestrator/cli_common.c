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
#include "apiclient.h"
#include "control.h"
#include "range.h"
#include "scenario.h"

const char *cli_state_dir(void)
{
    const char *d = getenv("CYRANGE_STATE_DIR");
    return d && *d ? d : RANGE_STATE_DIR;
}

/* build/cyrange -> build/images, unless CYRANGE_IMAGES says otherwise. */
char *cli_default_images_dir(void)
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
    return strdup("build/images");
}

char *cli_default_web_dir(void)
{
    const char *env = getenv("CYRANGE_WEB");
    char exe[PATH_MAX], *out = NULL;
    ssize_t n;
    struct stat st;

    if (env && *env)
        return strdup(env);
    /* build/cyrange or build/asan/cyrange in a source tree. */
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        for (int up = 1; up <= 3; up++) {
            char *slash = strrchr(exe, '/');
            if (slash == NULL)
                break;
            *slash = '\0';
            free(out);
            if (asprintf(&out, "%s/web/index.html", exe) < 0)
                return NULL;
            if (stat(out, &st) == 0) {
                out[strlen(out) - strlen("/index.html")] = '\0';
                return out;
            }
        }
        free(out);
    }
    return strdup("web");
}

char *cli_read_text(const char *path, size_t *len)
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

int cli_parse_teams(const char *arg, int *out)
{
    char *end = NULL;
    long v = strtol(arg, &end, 10);
    if (arg[0] == '\0' || *end != '\0' || v < 1 || v > SCENARIO_MAX_TEAMS)
        return -1;
    *out = (int)v;
    return 0;
}

int cli_call(const char *exname, json_t *req, json_t **reply_out, char *err, size_t errlen)
{
    char *path = NULL;
    json_t *reply = NULL;
    apiclient *ac = apiclient_open(cli_state_dir(), exname, err, errlen);
    int unreachable = 0;

    *reply_out = NULL;
    /* A running `cyrange serve` is asked through its API; when it is gone
     * (killed, its file left behind) or for what has no route, the
     * control socket of `cyrange run` is. */
    if (ac && cli_api_control(ac, req, &reply, &unreachable, err, errlen) == 0 &&
        !unreachable) {
        apiclient_free(ac);
        json_decref(req);
        if (reply == NULL)
            return -1;
        goto answered;
    }
    apiclient_free(ac);
    if (asprintf(&path, "%s/%s/control.sock", cli_state_dir(), exname) < 0) {
        json_decref(req);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    reply = control_call(path, req, 30000, err, errlen);
    free(path);
    json_decref(req);
    if (reply == NULL)
        return -1;
answered:
    if (!json_is_true(json_object_get(reply, "ok"))) {
        snprintf(err, errlen, "%s",
                 json_string_value(json_object_get(reply, "error")) ?: "refused");
        json_decref(reply);
        return -1;
    }
    *reply_out = reply;
    return 0;
}

int cli_control(const char *exname, json_t *req, json_t **reply_out)
{
    char err[1024];
    json_t *reply = NULL;
    if (cli_call(exname, req, &reply, err, sizeof(err)) < 0) {
        fprintf(stderr, "cyrange: %s\n", err);
        return EXIT_INVALID;
    }
    if (reply_out)
        *reply_out = reply;
    else
        json_decref(reply);
    return EXIT_OK;
}

int cli_parse_query(int argc, char **argv, const char *usage, const char **ex, int *team,
                    int *json)
{
    static const struct option opts[] = {
        { "team", required_argument, NULL, 't' }, { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 }
    };
    int c;

    *team = 0;
    *json = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "t:jh", opts, NULL)) != -1) {
        if (c == 't' && cli_parse_teams(optarg, team) == 0)
            continue;
        if (c == 'j') {
            *json = 1;
            continue;
        }
        fputs(usage, c == 'h' ? stdout : stderr);
        return c == 'h' ? EXIT_OK : EXIT_USAGE;
    }
    if (argc - optind != 1) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    *ex = argv[optind];
    return -1;
}
