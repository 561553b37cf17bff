/* cli_users — accounts of the web UI and API.
 *
 *   cyrange users add NAME --role instructor|member|observer [--team N]
 *                 [--password-stdin]
 *   cyrange users list [--json]
 *   cyrange users passwd NAME [--password-stdin]
 *   cyrange users disable|enable NAME
 *   cyrange users provision --teams N [--members M] [--json]
 *
 * Works directly on <state>/cyrange.db with its own loop, which runs until
 * every write is committed.  A generated password is printed once and
 * never stored; a typed one is read without echo.  CYRANGE_AUTH_KDF=min
 * makes argon2id as cheap as libsodium allows: for tests only (a login
 * with the server's cost rehashes such a password).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "auth.h"
#include "cli.h"
#include "store.h"

/* Until orchestrator/cli.h declares it (a repeated declaration is
 * harmless once it does). */
int cli_users(int argc, char **argv);

static const char users_usage[] =
    "usage: cyrange users add NAME --role instructor|member|observer [--team N]\n"
    "                     [--password-stdin]\n"
    "       cyrange users list [--json]\n"
    "       cyrange users passwd NAME [--password-stdin]\n"
    "       cyrange users disable NAME\n"
    "       cyrange users enable NAME\n"
    "       cyrange users provision --teams N [--members M] [--json]\n"
    "\n"
    "Accounts of the web UI and API, in <state>/cyrange.db (CYRANGE_STATE_DIR,\n"
    "default /var/lib/cyrange).  Without --password-stdin a password is\n"
    "generated and printed once; it is never stored.  `cyrange users CMD --help`\n"
    "describes each command.\n";

static const char add_usage[] =
    "usage: cyrange users add NAME --role instructor|member|observer [--team N]\n"
    "                     [--password-stdin]\n"
    "\n"
    "Creates an account.  A member belongs to exactly one team (--team N,\n"
    "1..99); instructors and observers to none.  NAME: 1..64 letters, digits,\n"
    "'.', '_' or '-'.\n"
    "  --password-stdin   read the password (8..256 bytes, one line) from\n"
    "                     standard input, without echo on a terminal;\n"
    "                     otherwise one is generated and printed once\n";

static const char list_usage[] =
    "usage: cyrange users list [--json]\n"
    "\n"
    "Every account with its role, team and state (never a password hash).\n";

static const char passwd_usage[] =
    "usage: cyrange users passwd NAME [--password-stdin]\n"
    "\n"
    "Sets a new password: read from standard input (8..256 bytes, one line,\n"
    "no echo on a terminal) or generated and printed once.\n";

static const char disable_usage[] =
    "usage: cyrange users disable NAME\n"
    "       cyrange users enable NAME\n"
    "\n"
    "A disabled account cannot log in, and its sessions end at once.\n";

static const char provision_usage[] =
    "usage: cyrange users provision --teams N [--members M] [--json]\n"
    "\n"
    "Creates team members t01-1 .. tNN-M (M: 1..20, default 2) and an\n"
    "`instructor` account when there is no instructor, and prints the new\n"
    "credentials once.  Existing accounts are left as they are.\n";

/* One CLI run's database. */
typedef struct users_db {
    uv_loop_t loop;
    int loop_ok;
    store *st;
    auth_kdf kdf;
} users_db;

/* What one write's callback saw. */
typedef struct wbox {
    int done;
    int rc;
    int code;
    char msg[256];
} wbox;

static void on_write(const store_result *r, void *opaque)
{
    wbox *b = opaque;
    b->done = 1;
    b->rc = r->rc;
    b->code = r->err.code;
    snprintf(b->msg, sizeof(b->msg), "%s", r->err.msg);
}

static void on_store_closed(void *opaque)
{
    *(int *)opaque = 1;
}

static void run_until(users_db *db, const int *flag)
{
    while (!*flag)
        if (uv_run(&db->loop, UV_RUN_ONCE) == 0 && !*flag)
            break;
}

static int mkdir_p(const char *path)
{
    char tmp[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(tmp))
        return -1;
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(tmp, 0750) < 0 && errno != EEXIST ? -1 : 0;
}

static int db_open(users_db *db)
{
    char path[4096], err[512];
    const char *kdf = getenv("CYRANGE_AUTH_KDF");
    const char *dir = cli_state_dir();
    mode_t old_mask;

    memset(db, 0, sizeof(*db));
    if (kdf && strcmp(kdf, "min") == 0) {
        db->kdf.opslimit = crypto_pwhash_OPSLIMIT_MIN;
        db->kdf.memlimit = crypto_pwhash_MEMLIMIT_MIN;
    }
    if (mkdir_p(dir) < 0) {
        fprintf(stderr, "cyrange users: cannot create %s: %s\n", dir, strerror(errno));
        return -1;
    }
    if (uv_loop_init(&db->loop) != 0) {
        fprintf(stderr, "cyrange users: no event loop\n");
        return -1;
    }
    db->loop_ok = 1;
    snprintf(path, sizeof(path), "%s/cyrange.db", dir);
    /* The database holds password hashes: a new one is the owner's only. */
    old_mask = umask(077);
    db->st = store_open(&db->loop, path, err, sizeof(err));
    umask(old_mask);
    if (db->st == NULL) {
        fprintf(stderr, "cyrange users: %s\n", err);
        uv_loop_close(&db->loop);
        db->loop_ok = 0;
        return -1;
    }
    return 0;
}

static void db_close(users_db *db)
{
    int closed = 0;
    if (db->st) {
        store_close(db->st, on_store_closed, &closed);
        run_until(db, &closed);
        db->st = NULL;
    }
    if (db->loop_ok) {
        uv_run(&db->loop, UV_RUN_DEFAULT);
        uv_loop_close(&db->loop);
        db->loop_ok = 0;
    }
}

static int name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > AUTH_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* One line from stdin, echo off on a terminal.  0, or -1 after saying
 * why. */
static int read_line_noecho(const char *prompt, char buf[AUTH_PW_MAX + 2])
{
    struct termios old, quiet;
    int tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
    size_t n = 0;
    int c, too_long = 0, nul = 0;

    if (tty) {
        fputs(prompt, stderr);
        fflush(stderr);
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        quiet.c_lflag |= ECHONL;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    while ((c = getchar()) != EOF && c != '\n') {
        if (c == '\0')
            nul = 1;
        if (n < AUTH_PW_MAX + 1)
            buf[n++] = (char)c;
        else
            too_long = 1;
    }
    if (tty)
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    buf[n] = '\0';
    if (too_long || n > AUTH_PW_MAX || n < AUTH_PW_MIN || nul) {
        sodium_memzero(buf, AUTH_PW_MAX + 2);
        fprintf(stderr, "cyrange users: a password is %d..%d bytes on one line%s\n",
                AUTH_PW_MIN, AUTH_PW_MAX, nul ? ", without NUL bytes" : "");
        return -1;
    }
    return 0;
}

static int read_password(const char *name, char buf[AUTH_PW_MAX + 2])
{
    char prompt[128], again[AUTH_PW_MAX + 2];
    int rc;
    snprintf(prompt, sizeof(prompt), "Password for %s: ", name);
    if (read_line_noecho(prompt, buf) < 0)
        return -1;
    if (!isatty(STDIN_FILENO))
        return 0;
    /* A typo typed blind would lock the account out: ask twice. */
    if (read_line_noecho("Again: ", again) < 0) {
        sodium_memzero(buf, AUTH_PW_MAX + 2);
        return -1;
    }
    rc = strcmp(buf, again) == 0 ? 0 : -1;
    sodium_memzero(again, sizeof(again));
    if (rc < 0) {
        sodium_memzero(buf, AUTH_PW_MAX + 2);
        fprintf(stderr, "cyrange users: the passwords differ\n");
    }
    return rc;
}

/* The new password, typed or generated, hashed into hash. */
static int new_password(const users_db *db, const char *name, int from_stdin,
                        char pw[AUTH_PW_MAX + 2], char hash[AUTH_HASH_MAX])
{
    char err[256];
    if (from_stdin) {
        if (read_password(name, pw) < 0)
            return -1;
    } else if (auth_generate_password(pw, AUTH_PW_MAX + 2) < 0) {
        fprintf(stderr, "cyrange users: no random password\n");
        return -1;
    }
    if (auth_hash_password_kdf(&db->kdf, pw, hash, err, sizeof(err)) < 0) {
        sodium_memzero(pw, AUTH_PW_MAX + 2);
        fprintf(stderr, "cyrange users: %s\n", err);
        return -1;
    }
    return 0;
}

/* The user's id, or -1 after saying why. */
static int64_t user_id(users_db *db, const char *name)
{
    store_err e = { 0, "" };
    json_t *u;
    int64_t id;
    if (!name_ok(name)) {
        fprintf(stderr, "cyrange users: no user '%s'\n", name);
        return -1;
    }
    u = store_user_get_by_name(db->st, name, &e);
    if (u == NULL) {
        if (e.code == STORE_ENOTFOUND)
            fprintf(stderr, "cyrange users: no user '%s'\n", name);
        else
            fprintf(stderr, "cyrange users: %s\n", e.msg);
        return -1;
    }
    id = json_integer_value(json_object_get(u, "id"));
    json_decref(u);
    return id;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs the loop until the write of box is acknowledged; EXIT_OK when it
 * committed. */
static int wait_write(users_db *db, wbox *b, int queued, const char *what)
{
    if (queued < 0) {
        fprintf(stderr, "cyrange users: %s: the store refused the write\n", what);
        return EXIT_INVALID;
    }
    run_until(db, &b->done);
    if (!b->done) {
        fprintf(stderr, "cyrange users: %s: no answer from the store\n", what);
        return EXIT_INVALID;
    }
    if (b->rc != 0) {
        fprintf(stderr, "cyrange users: %s: %s\n", what, b->msg);
        return EXIT_INVALID;
    }
    return EXIT_OK;
}

static int users_add(int argc, char **argv)
{
    static const struct option opts[] = {
        { "role", required_argument, NULL, 'r' },
        { "team", required_argument, NULL, 't' },
        { "password-stdin", no_argument, NULL, 'p' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    users_db db;
    wbox b = { 0, 0, 0, "" };
    char pw[AUTH_PW_MAX + 2] = "", hash[AUTH_HASH_MAX];
    const char *role_s = NULL, *name;
    auth_role role;
    int team = 0, from_stdin = 0, c, rc = EXIT_INVALID;

    optind = 0;
    while ((c = getopt_long(argc, argv, "r:t:ph", opts, NULL)) != -1) {
        switch (c) {
        case 'r': role_s = optarg; break;
        case 't':
            if (cli_parse_teams(optarg, &team) < 0) {
                fprintf(stderr, "cyrange users add: --team is 1..99\n");
                return EXIT_USAGE;
            }
            break;
        case 'p': from_stdin = 1; break;
        case 'h': fputs(add_usage, stdout); return EXIT_OK;
        default: fputs(add_usage, stderr); return EXIT_USAGE;
        }
    }
    if (argc - optind != 1 || role_s == NULL) {
        fputs("cyrange users add: NAME and --role are required\n", stderr);
        fputs(add_usage, stderr);
        return EXIT_USAGE;
    }
    name = argv[optind];
    role = auth_role_parse(role_s);
    if (role == AUTH_ROLE_NONE) {
        fprintf(stderr, "cyrange users add: --role is instructor, member or observer\n");
        return EXIT_USAGE;
    }
    if (role == AUTH_ROLE_MEMBER && team == 0) {
        fprintf(stderr, "cyrange users add: a member needs --team N\n");
        return EXIT_USAGE;
    }
    if (role != AUTH_ROLE_MEMBER && team != 0) {
        fprintf(stderr, "cyrange users add: an %s has no team\n", role_s);
        return EXIT_USAGE;
    }
    if (!name_ok(name)) {
        fprintf(stderr, "cyrange users add: a user name is 1..%d letters, digits, '.', "
                        "'_' or '-'\n", AUTH_NAME_MAX);
        return EXIT_USAGE;
    }
    if (db_open(&db) < 0)
        return EXIT_INVALID;
    {
        store_err e = { 0, "" };
        json_t *u = store_user_get_by_name(db.st, name, &e);
        if (u) {
            json_decref(u);
            fprintf(stderr, "cyrange users: user '%s' exists\n", name);
            goto cleanup;
        }
    }
    if (new_password(&db, name, from_stdin, pw, hash) < 0)
        goto cleanup;
    rc = wait_write(&db, &b,
                    store_user_add(db.st, name, auth_role_name(role), team, hash, now_ms(),
                                   on_write, &b),
                    name);
    if (rc == EXIT_OK && b.code == STORE_OK) {
        if (team)
            printf("created %s (%s of team %d)\n", name, role_s, team);
        else
            printf("created %s (%s)\n", name, role_s);
        if (!from_stdin)
            printf("password (shown once): %s\n", pw);
    }
cleanup:
    sodium_memzero(pw, sizeof(pw));
    db_close(&db);
    return rc;
}

static int users_list(int argc, char **argv)
{
    static const struct option opts[] = {
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    users_db db;
    store_err e = { 0, "" };
    json_t *all, *u;
    size_t i;
    int json = 0, c;

    optind = 0;
    while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'h': fputs(list_usage, stdout); return EXIT_OK;
        default: fputs(list_usage, stderr); return EXIT_USAGE;
        }
    }
    if (argc - optind != 0) {
        fputs(list_usage, stderr);
        return EXIT_USAGE;
    }
    if (db_open(&db) < 0)
        return EXIT_INVALID;
    all = store_users_list(db.st, &e);
    db_close(&db);
    if (all == NULL) {
        fprintf(stderr, "cyrange users: %s\n", e.msg);
        return EXIT_INVALID;
    }
    if (json) {
        json_dumpf(all, stdout, JSON_INDENT(2));
        putchar('\n');
    } else {
        printf("%-5s %-24s %-10s %-4s %-8s %s\n", "ID", "NAME", "ROLE", "TEAM", "STATE",
               "CREATED");
        json_array_foreach(all, i, u) {
            time_t t = (time_t)(json_integer_value(json_object_get(u, "created_ms")) / 1000);
            struct tm tm;
            char when[32], team[8] = "-";
            gmtime_r(&t, &tm);
            strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
            if (json_is_integer(json_object_get(u, "team")))
                snprintf(team, sizeof(team), "%lld",
                         (long long)json_integer_value(json_object_get(u, "team")));
            printf("%-5lld %-24s %-10s %-4s %-8s %s\n",
                   (long long)json_integer_value(json_object_get(u, "id")),
                   json_string_value(json_object_get(u, "name")),
                   json_string_value(json_object_get(u, "role")), team,
                   json_is_true(json_object_get(u, "disabled")) ? "disabled" : "active",
                   when);
        }
    }
    json_decref(all);
    return EXIT_OK;
}

static int users_passwd(int argc, char **argv)
{
    static const struct option opts[] = {
        { "password-stdin", no_argument, NULL, 'p' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    users_db db;
    wbox b = { 0, 0, 0, "" };
    char pw[AUTH_PW_MAX + 2] = "", hash[AUTH_HASH_MAX];
    int from_stdin = 0, c, rc = EXIT_INVALID;
    int64_t id;

    optind = 0;
    while ((c = getopt_long(argc, argv, "ph", opts, NULL)) != -1) {
        switch (c) {
        case 'p': from_stdin = 1; break;
        case 'h': fputs(passwd_usage, stdout); return EXIT_OK;
        default: fputs(passwd_usage, stderr); return EXIT_USAGE;
        }
    }
    if (argc - optind != 1) {
        fputs(passwd_usage, stderr);
        return EXIT_USAGE;
    }
    if (db_open(&db) < 0)
        return EXIT_INVALID;
    id = user_id(&db, argv[optind]);
    if (id < 0)
        goto cleanup;
    if (new_password(&db, argv[optind], from_stdin, pw, hash) < 0)
        goto cleanup;
    rc = wait_write(&db, &b, store_user_set_password(db.st, id, hash, on_write, &b),
                    argv[optind]);
    if (rc == EXIT_OK) {
        printf("password of %s changed\n", argv[optind]);
        if (!from_stdin)
            printf("password (shown once): %s\n", pw);
    }
cleanup:
    sodium_memzero(pw, sizeof(pw));
    db_close(&db);
    return rc;
}

static int users_disable(int argc, char **argv, int disable)
{
    static const struct option opts[] = {
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    users_db db;
    wbox b = { 0, 0, 0, "" };
    int c, rc = EXIT_INVALID;
    int64_t id;

    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'h': fputs(disable_usage, stdout); return EXIT_OK;
        default: fputs(disable_usage, stderr); return EXIT_USAGE;
        }
    }
    if (argc - optind != 1) {
        fputs(disable_usage, stderr);
        return EXIT_USAGE;
    }
    if (db_open(&db) < 0)
        return EXIT_INVALID;
    id = user_id(&db, argv[optind]);
    if (id >= 0) {
        rc = wait_write(&db, &b, store_user_disable(db.st, id, disable, on_write, &b),
                        argv[optind]);
        if (rc == EXIT_OK)
            printf("%s %s\n", argv[optind], disable ? "disabled" : "enabled");
    }
    db_close(&db);
    return rc;
}

typedef struct prov_box {
    int done;
    int rc;
    int json;
} prov_box;

static void on_provisioned(const auth_result *res, void *opaque)
{
    prov_box *pb = opaque;
    const json_t *users = res->users;
    json_t *u;
    size_t i;
    int created = 0;

    pb->done = 1;
    pb->rc = res->rc;
    if (res->rc != 0)
        fprintf(stderr, "cyrange users provision: %s\n", res->err.msg);
    if (users == NULL)
        return;
    if (pb->json) {
        json_dumpf(users, stdout, JSON_INDENT(2));
        putchar('\n');
        fflush(stdout);
        return;
    }
    printf("%-12s %-10s %-4s %s\n", "NAME", "ROLE", "TEAM", "PASSWORD (shown once)");
    json_array_foreach(users, i, u) {
        const char *pw = json_string_value(json_object_get(u, "password"));
        char team[8] = "-";
        if (json_is_integer(json_object_get(u, "team")))
            snprintf(team, sizeof(team), "%lld",
                     (long long)json_integer_value(json_object_get(u, "team")));
        printf("%-12s %-10s %-4s %s\n", json_string_value(json_object_get(u, "name")),
               json_string_value(json_object_get(u, "role")), team,
               pw ? pw : json_is_true(json_object_get(u, "existing")) ? "(exists, unchanged)"
                                                                     : "(not created)");
        created += pw != NULL;
    }
    printf("%d account%s created\n", created, created == 1 ? "" : "s");
    fflush(stdout);
}

static int users_provision(int argc, char **argv)
{
    static const struct option opts[] = {
        { "teams", required_argument, NULL, 't' },
        { "members", required_argument, NULL, 'm' },
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    users_db db;
    prov_box pb = { 0, -1, 0 };
    auth_opts ao;
    auth *a = NULL;
    char err[512];
    int teams = 0, members = 2, c;

    optind = 0;
    while ((c = getopt_long(argc, argv, "t:m:jh", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            if (cli_parse_teams(optarg, &teams) < 0) {
                fprintf(stderr, "cyrange users provision: --teams is 1..99\n");
                return EXIT_USAGE;
            }
            break;
        case 'm': {
            char *end = NULL;
            long v = strtol(optarg, &end, 10);
            if (optarg[0] == '\0' || *end != '\0' || v < 1 || v > 20) {
                fprintf(stderr, "cyrange users provision: --members is 1..20\n");
                return EXIT_USAGE;
            }
            members = (int)v;
            break;
        }
        case 'j': pb.json = 1; break;
        case 'h': fputs(provision_usage, stdout); return EXIT_OK;
        default: fputs(provision_usage, stderr); return EXIT_USAGE;
        }
    }
    if (argc - optind != 0 || teams == 0) {
        fputs("cyrange users provision: --teams N is required\n", stderr);
        fputs(provision_usage, stderr);
        return EXIT_USAGE;
    }
    if (db_open(&db) < 0)
        return EXIT_INVALID;
    memset(&ao, 0, sizeof(ao));
    ao.kdf = db.kdf;
    a = auth_new(&db.loop, db.st, &ao, err, sizeof(err));
    if (a == NULL) {
        fprintf(stderr, "cyrange users: %s\n", err);
    } else if (auth_provision_team_users(a, teams, members, on_provisioned, &pb) < 0) {
        fprintf(stderr, "cyrange users: out of memory\n");
    } else {
        run_until(&db, &pb.done);
    }
    auth_free(a);
    db_close(&db);
    return pb.done && pb.rc == 0 ? EXIT_OK : EXIT_INVALID;
}

int cli_users(int argc, char **argv)
{
    const char *sub = argc >= 2 ? argv[1] : NULL;
    if (sub == NULL) {
        fputs(users_usage, stderr);
        return EXIT_USAGE;
    }
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
        fputs(users_usage, stdout);
        return EXIT_OK;
    }
    if (strcmp(sub, "add") == 0)
        return users_add(argc - 1, argv + 1);
    if (strcmp(sub, "list") == 0)
        return users_list(argc - 1, argv + 1);
    if (strcmp(sub, "passwd") == 0)
        return users_passwd(argc - 1, argv + 1);
    if (strcmp(sub, "disable") == 0)
        return users_disable(argc - 1, argv + 1, 1);
    if (strcmp(sub, "enable") == 0)
        return users_disable(argc - 1, argv + 1, 0);
    if (strcmp(sub, "provision") == 0)
        return users_provision(argc - 1, argv + 1);
    fprintf(stderr, "cyrange users: unknown command '%s'\n", sub);
    fputs(users_usage, stderr);
    return EXIT_USAGE;
}
