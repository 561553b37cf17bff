/* Unit tests of the store against real SQLite files in a temporary
 * directory: migrations, every entity's write and read, report versions and
 * reviews, team scoping, self-analyses, group commit, a failing operation
 * inside a batch, draining on close and durability across SIGKILL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store.h"

typedef struct fx {
    uv_loop_t loop;
    uv_timer_t tick; /* keeps every wait bounded: the loop wakes up often */
    char dir[64];
    char path[128];
    store *st;
} fx;

/* What one write's callback saw. */
typedef struct box {
    int calls;
    int rc;
    int code;
    int64_t id;
    int64_t version;
    char msg[256];
} box;

static void on_box(const store_result *r, void *opaque)
{
    box *b = opaque;
    b->calls++;
    b->rc = r->rc;
    b->code = r->err.code;
    b->id = r->id;
    b->version = r->version;
    snprintf(b->msg, sizeof(b->msg), "%s", r->err.msg);
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until *counter reaches want, for at most 30 s. */
static void run_until(fx *f, const int *counter, int want)
{
    uint64_t t0 = uv_hrtime();
    while (*counter < want && uv_hrtime() - t0 < 30ULL * 1000000000ULL)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_true(*counter >= want);
}

/* Queues one write and waits for its callback. */
#define DO(f, b, call)                                                        \
    do {                                                                      \
        memset(&(b), 0, sizeof(b));                                           \
        assert_int_equal((call), 0);                                          \
        run_until((f), &(b).calls, 1);                                        \
        assert_int_equal((b).calls, 1);                                       \
    } while (0)

#define OK(f, b, call)                                                        \
    do {                                                                      \
        DO(f, b, call);                                                       \
        if ((b).rc != 0)                                                      \
            fail_msg("%s failed: %s", #call, (b).msg);                        \
    } while (0)

static void on_closed(void *opaque)
{
    (*(int *)opaque)++;
}

static void close_store(fx *f)
{
    int closed = 0;
    if (f->st == NULL)
        return;
    store_close(f->st, on_closed, &closed);
    run_until(f, &closed, 1);
    f->st = NULL;
}

static void open_store(fx *f, int max_version)
{
    char err[256] = "";
    store_opts o = { max_version, 0 };
    f->st = store_open_opts(&f->loop, f->path, &o, err, sizeof(err));
    if (f->st == NULL)
        fail_msg("store_open: %s", err);
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/cyrange-store-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/cyrange.db", f->dir);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(uv_timer_init(&f->loop, &f->tick), 0);
    assert_int_equal(uv_timer_start(&f->tick, on_tick, 50, 50), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    close_store(f);
    uv_close((uv_handle_t *)&f->tick, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void put_exercise(fx *f, const char *ex)
{
    box b;
    json_t *scn = json_pack("{s:s, s:i}", "id", "targeted-mail", "format", 1);
    OK(f, b, store_exercise_put(f->st, ex, "targeted-mail", scn, 1000, "running", 60.0, 42,
                                NULL, on_box, &b));
    json_decref(scn);
    OK(f, b, store_team_put(f->st, ex, 1, "blue-1", on_box, &b));
    OK(f, b, store_team_put(f->st, ex, 2, "blue-2", on_box, &b));
}

static int64_t jint(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    if (!json_is_integer(v))
        fail_msg("%s is not an integer", k);
    return json_integer_value(v);
}

static const char *jstr(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    if (!json_is_string(v))
        fail_msg("%s is not a string", k);
    return json_string_value(v);
}

/* ---- migrations ------------------------------------------------------- */

static void test_migrate_from_empty(void **state)
{
    fx *f = *state;
    store_stats s;
    store_err e;
    json_t *users;
    open_store(f, 0);
    store_stats_get(f->st, &s);
    assert_int_equal(store_schema_latest(), 3);
    assert_int_equal(s.schema_version, store_schema_latest());
    users = store_users_list(f->st, &e);
    assert_non_null(users);
    assert_int_equal(json_array_size(users), 0);
    json_decref(users);
}

static void test_migrate_old_database(void **state)
{
    fx *f = *state;
    store_stats s;
    store_err e = { 0, "" };
    json_t *x;
    box b;

    open_store(f, 1);
    store_stats_get(f->st, &s);
    assert_int_equal(s.schema_version, 1);
    put_exercise(f, "ex1");
    /* Version 1 has no users table yet. */
    assert_null(store_users_list(f->st, &e));
    assert_int_equal(e.code, STORE_EIO);
    assert_non_null(strstr(e.msg, "no such table"));
    close_store(f);

    open_store(f, 0);
    store_stats_get(f->st, &s);
    assert_int_equal(s.schema_version, store_schema_latest());
    x = store_exercise_get(f->st, "ex1", &e);
    assert_non_null(x);
    assert_string_equal(jstr(x, "state"), "running");
    json_decref(x);
    OK(f, b, store_user_add(f->st, "alice", "instructor", 0, "$argon2id$x", 5, on_box, &b));
    assert_true(b.id > 0);
}

/* A version-2 database (users, reports, no analyses) gains the analyses
 * table and keeps what it had. */
static void test_migrate_2_to_3(void **state)
{
    fx *f = *state;
    store_stats s;
    store_err e = { 0, "" };
    json_t *x, *doc = json_pack("{s:[{s:s, s:s}]}", "items", "step", "phish", "cause", "plan");
    box b;

    open_store(f, 2);
    store_stats_get(f->st, &s);
    assert_int_equal(s.schema_version, 2);
    put_exercise(f, "ex1");
    OK(f, b, store_user_add(f->st, "alice", "member", 1, "$argon2id$x", 5, on_box, &b));
    assert_null(store_analysis_get(f->st, "ex1", 1, &e));
    assert_int_equal(e.code, STORE_EIO);
    assert_non_null(strstr(e.msg, "no such table"));
    DO(f, b, store_analysis_put(f->st, "ex1", 1, doc, "alice", 10, on_box, &b));
    assert_int_equal(b.rc, -1);
    close_store(f);

    open_store(f, 0);
    store_stats_get(f->st, &s);
    assert_int_equal(s.schema_version, 3);
    x = store_user_get_by_name(f->st, "alice", &e);
    assert_non_null(x);
    json_decref(x);
    assert_null(store_analysis_get(f->st, "ex1", 1, &e));
    assert_int_equal(e.code, STORE_ENOTFOUND);
    OK(f, b, store_analysis_put(f->st, "ex1", 1, doc, "alice", 10, on_box, &b));
    x = store_analysis_get(f->st, "ex1", 1, &e);
    assert_non_null(x);
    assert_true(json_equal(json_object_get(x, "doc"), doc));
    json_decref(x);
    json_decref(doc);
}

static void patch_user_version(const char *path, uint32_t v)
{
    unsigned char be[4] = { (unsigned char)(v >> 24), (unsigned char)(v >> 16),
                            (unsigned char)(v >> 8), (unsigned char)v };
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    /* user_version is the big-endian word at offset 60 of the header. */
    assert_int_equal(pwrite(fd, be, 4, 60), 4);
    close(fd);
}

static void test_newer_schema_refused(void **state)
{
    fx *f = *state;
    char err[256] = "";
    int fd;
    store *st;

    open_store(f, 0);
    put_exercise(f, "ex1");
    close_store(f); /* the last connection checkpoints the WAL into the file */
    patch_user_version(f->path, 99);
    st = store_open(&f->loop, f->path, err, sizeof(err));
    assert_null(st);
    assert_non_null(strstr(err, "schema version 99 is newer than this cyrange (3)"));

    /* Back to the real version, it opens and the data is there. */
    patch_user_version(f->path, (uint32_t)store_schema_latest());
    open_store(f, 0);
    close_store(f);

    /* A file that is not a database is refused too. */
    unlink(f->path);
    fd = open(f->path, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    for (int i = 0; i < 64; i++)
        assert_int_equal(write(fd, "garbage!", 8), 8);
    close(fd);
    st = store_open(&f->loop, f->path, err, sizeof(err));
    assert_null(st);
    assert_non_null(strstr(err, "not a database"));
}

static void test_reopen_keeps_data(void **state)
{
    fx *f = *state;
    json_t *doc = json_pack("{s:s}", "what", "beacon to 198.18.200.5");
    json_t *list;
    store_err e;
    box b;

    open_store(f, 0);
    put_exercise(f, "ex1");
    OK(f, b, store_finding_add(f->st, "ex1", 1, 0, 2000, 1900, doc, on_box, &b));
    close_store(f);
    open_store(f, 0);
    list = store_findings_list(f->st, "ex1", 1, &e);
    assert_non_null(list);
    assert_int_equal(json_array_size(list), 1);
    assert_true(json_equal(json_object_get(json_array_get(list, 0), "doc"), doc));
    json_decref(list);
    json_decref(doc);
}

/* ---- entities --------------------------------------------------------- */

static void test_exercise_team_host_timeline(void **state)
{
    fx *f = *state;
    json_t *x, *l, *tl = json_pack("{s:i, s:[s]}", "clock_ms", 12345, "done", "a");
    store_err e;
    box b;

    open_store(f, 0);
    put_exercise(f, "ex1");
    x = store_exercise_get(f->st, "ex1", &e);
    assert_non_null(x);
    assert_string_equal(jstr(json_object_get(x, "scenario"), "id"), "targeted-mail");
    assert_int_equal(jint(x, "seed"), 42);
    assert_true(json_real_value(json_object_get(x, "speed")) == 60.0);
    assert_true(json_is_null(json_object_get(x, "options")));
    json_decref(x);

    OK(f, b, store_exercise_set_state(f->st, "ex1", "stopped", on_box, &b));
    DO(f, b, store_exercise_set_state(f->st, "nope", "stopped", on_box, &b));
    assert_int_equal(b.code, STORE_ENOTFOUND);
    DO(f, b, store_exercise_set_state(f->st, "ex1", "paused", on_box, &b));
    assert_int_equal(b.code, STORE_EINVAL);
    l = store_exercises_list(f->st, &e);
    assert_int_equal(json_array_size(l), 1);
    assert_string_equal(jstr(json_array_get(l, 0), "state"), "stopped");
    assert_null(json_object_get(json_array_get(l, 0), "scenario"));
    json_decref(l);
    assert_null(store_exercise_get(f->st, "nope", &e));
    assert_int_equal(e.code, STORE_ENOTFOUND);

    l = store_teams_list(f->st, "ex1", &e);
    assert_int_equal(json_array_size(l), 2);
    assert_string_equal(jstr(json_array_get(l, 1), "name"), "blue-2");
    json_decref(l);
    DO(f, b, store_team_put(f->st, "ex1", 0, "zero", on_box, &b));
    assert_int_equal(b.code, STORE_EINVAL);

    OK(f, b, store_host_put(f->st, "ex1", 1, "mail", "cyb-ex1-t1-mail", "defined", NULL, 10,
                            on_box, &b));
    OK(f, b, store_host_put(f->st, "ex1", 1, "mail", "cyb-ex1-t1-mail", "running", "agent ok",
                            20, on_box, &b));
    OK(f, b, store_host_put(f->st, "ex1", 2, "mail", "cyb-ex1-t2-mail", "running", NULL, 20,
                            on_box, &b));
    l = store_hosts_list(f->st, "ex1", 1, &e);
    assert_int_equal(json_array_size(l), 1);
    assert_string_equal(jstr(json_array_get(l, 0), "state"), "running");
    assert_string_equal(jstr(json_array_get(l, 0), "detail"), "agent ok");
    json_decref(l);
    l = store_hosts_list(f->st, "ex1", STORE_ALL_TEAMS, &e);
    assert_int_equal(json_array_size(l), 2);
    json_decref(l);
    /* A host for a missing exercise: the foreign key says not found. */
    DO(f, b, store_host_put(f->st, "ghost", 1, "mail", NULL, "running", NULL, 1, on_box, &b));
    assert_int_equal(b.code, STORE_ENOTFOUND);
    assert_non_null(strstr(b.msg, "FOREIGN KEY constraint failed"));

    OK(f, b, store_timeline_put(f->st, "ex1", 1, tl, 30, on_box, &b));
    json_object_set_new(tl, "clock_ms", json_integer(20000));
    OK(f, b, store_timeline_put(f->st, "ex1", 1, tl, 40, on_box, &b));
    x = store_timeline_get(f->st, "ex1", 1, &e);
    assert_non_null(x);
    assert_true(json_equal(json_object_get(x, "state"), tl));
    assert_int_equal(jint(x, "updated_ms"), 40);
    json_decref(x);
    assert_null(store_timeline_get(f->st, "ex1", 2, &e));
    assert_int_equal(e.code, STORE_ENOTFOUND);
    l = store_timeline_list(f->st, "ex1", &e);
    assert_int_equal(json_array_size(l), 1);
    json_decref(l);
    json_decref(tl);
}

static void test_journal_flows_checks(void **state)
{
    fx *f = *state;
    json_t *l, *entry = json_pack("{s:s, s:s}", "event", "step.start", "actor", "att");
    json_t *flows;
    int64_t seq[3];
    store_err e;
    box b;

    open_store(f, 0);
    put_exercise(f, "ex1");
    for (int i = 0; i < 3; i++) {
        OK(f, b, store_journal_append(f->st, "ex1", i == 2 ? 2 : 1, 100 + i, "step.start",
                                      "scan", entry, on_box, &b));
        seq[i] = b.id;
    }
    assert_true(seq[0] < seq[1] && seq[1] < seq[2]);
    l = store_journal_list(f->st, "ex1", 1, 0, 0, &e);
    assert_int_equal(json_array_size(l), 2);
    assert_true(json_equal(json_object_get(json_array_get(l, 0), "entry"), entry));
    json_decref(l);
    l = store_journal_list(f->st, "ex1", 0, seq[0], 0, &e);
    assert_int_equal(json_array_size(l), 2);
    assert_int_equal(jint(json_array_get(l, 0), "seq"), seq[1]);
    json_decref(l);
    l = store_journal_list(f->st, "ex1", 0, 0, 1, &e);
    assert_int_equal(json_array_size(l), 1);
    json_decref(l);

    flows = json_pack("[{s:s, s:s, s:s, s:i, s:s, s:i, s:i, s:i, s:i, s:i},"
                      " {s:s, s:i, s:s, s:i, s:s, s:i, s:i, s:i, s:i, s:i}]",
                      "community_id", "1:aaa", "proto", "tcp", "src", "198.18.1.66", "sport", 40000,
                      "dst", "198.18.1.10", "dport", 80, "first_ms", 1000, "last_ms", 1500,
                      "packets", 10, "bytes", 900,
                      "community_id", "1:bbb", "proto", 17, "src", "198.18.1.20", "sport", 5353,
                      "dst", "198.18.1.1", "dport", 53, "first_ms", 2000, "last_ms", 2000,
                      "packets", 1, "bytes", 80);
    OK(f, b, store_flows_put(f->st, "ex1", 1, flows, on_box, &b));
    assert_int_equal(b.id, 2);
    /* A later summary of flow aaa replaces its counters. */
    json_object_set_new(json_array_get(flows, 0), "last_ms", json_integer(3000));
    json_object_set_new(json_array_get(flows, 0), "packets", json_integer(25));
    OK(f, b, store_flows_put(f->st, "ex1", 1, flows, on_box, &b));
    l = store_flows_list(f->st, "ex1", 1, 0, 0, &e);
    assert_int_equal(json_array_size(l), 2);
    assert_string_equal(jstr(json_array_get(l, 0), "community_id"), "1:aaa");
    assert_int_equal(jint(json_array_get(l, 0), "packets"), 25);
    assert_int_equal(jint(json_array_get(l, 0), "last_ms"), 3000);
    assert_string_equal(jstr(json_array_get(l, 0), "proto"), "tcp");
    assert_int_equal(jint(json_array_get(l, 1), "proto"), 17);
    assert_true(json_equal(json_object_get(json_array_get(l, 0), "doc"), json_array_get(flows, 0)));
    json_decref(l);
    l = store_flows_list(f->st, "ex1", 1, 2500, 0, &e);
    assert_int_equal(json_array_size(l), 1);
    json_decref(l);
    l = store_flows_list(f->st, "ex1", 2, 0, 0, &e);
    assert_int_equal(json_array_size(l), 0);
    json_decref(l);
    /* A flow without ports is refused as a whole. */
    json_object_del(json_array_get(flows, 1), "sport");
    DO(f, b, store_flows_put(f->st, "ex1", 1, flows, on_box, &b));
    assert_int_equal(b.code, STORE_EINVAL);
    assert_non_null(strstr(b.msg, "flows[1].sport"));
    json_decref(flows);

    OK(f, b, store_check_add(f->st, "ex1", 1, "web-up", 100, 1, NULL, on_box, &b));
    OK(f, b, store_check_add(f->st, "ex1", 1, "web-up", 200, 0, "connection refused", on_box, &b));
    OK(f, b, store_check_add(f->st, "ex1", 1, "mail-up", 200, 1, NULL, on_box, &b));
    OK(f, b, store_check_add(f->st, "ex1", 2, "web-up", 200, 1, NULL, on_box, &b));
    l = store_check_list(f->st, "ex1", 1, "web-up", 0, &e);
    assert_int_equal(json_array_size(l), 2);
    assert_true(json_is_true(json_object_get(json_array_get(l, 0), "ok")));
    assert_true(json_is_false(json_object_get(json_array_get(l, 1), "ok")));
    assert_string_equal(jstr(json_array_get(l, 1), "detail"), "connection refused");
    json_decref(l);
    l = store_check_list(f->st, "ex1", 1, NULL, 150, &e);
    assert_int_equal(json_array_size(l), 2);
    json_decref(l);
    json_decref(entry);
}

static void test_findings_inbox_scores(void **state)
{
    fx *f = *state;
    json_t *l, *x, *doc = json_pack("{s:s}", "summary", "phishing mail");
    store_err e;
    int64_t fid, inbox, resp, uid;
    box b;

    open_store(f, 0);
    put_exercise(f, "ex1");
    OK(f, b, store_user_add(f->st, "bob", "member", 1, "$argon2id$bob", 1, on_box, &b));
    uid = b.id;
    OK(f, b, store_finding_add(f->st, "ex1", 1, uid, 2000, 1500, doc, on_box, &b));
    fid = b.id;
    OK(f, b, store_finding_label(f->st, "ex1", fid, "benign", "carol", 3000, on_box, &b));
    x = store_finding_get(f->st, "ex1", 1, fid, &e);
    assert_non_null(x);
    assert_string_equal(jstr(x, "label"), "benign");
    assert_string_equal(jstr(x, "label_by"), "carol");
    assert_int_equal(jint(x, "user_id"), uid);
    assert_int_equal(jint(x, "detected_ms"), 1500);
    json_decref(x);
    DO(f, b, store_finding_label(f->st, "ex1", fid, "great", "carol", 3000, on_box, &b));
    assert_int_equal(b.code, STORE_EINVAL);
    DO(f, b, store_finding_label(f->st, "ex2", fid, "benign", "carol", 3000, on_box, &b));
    assert_int_equal(b.code, STORE_ENOTFOUND);
    OK(f, b, store_finding_label(f->st, "ex1", fid, NULL, NULL, 3100, on_box, &b));
    x = store_finding_get(f->st, "ex1", 1, fid, &e);
    assert_true(json_is_null(json_object_get(x, "label")));
    json_decref(x);
    /* Unknown user: the foreign key refuses it. */
    DO(f, b, store_finding_add(f->st, "ex1", 1, 9999, 2000, 1500, doc, on_box, &b));
    assert_int_equal(b.code, STORE_ENOTFOUND);
    DO(f, b, store_finding_add(f->st, "ex1", 1, 0, 2000, 1500, NULL, on_box, &b));
    assert_int_equal(b.code, STORE_EINVAL);

    OK(f, b, store_inbox_add(f->st, "ex1", 1, "press", 4000, 4000 + 600000, doc, on_box, &b));
    inbox = b.id;
    l = store_inbox_list(f->st, "ex1", 1, &e);
    assert_int_equal(json_array_size(l), 1);
    assert_int_equal(jint(json_array_get(l, 0), "deadline_ms"), 604000);
    json_decref(l);
    OK(f, b, store_response_add(f->st, "ex1", 1, inbox, uid, 5000, "we isolated the PC", on_box, &b));
    resp = b.id;
    OK(f, b, store_response_grade(f->st, "ex1", resp, 7.5, "carol", 6000, on_box, &b));
    DO(f, b, store_response_grade(f->st, "ex2", resp, 7.5, "carol", 6000, on_box, &b));
    assert_int_equal(b.code, STORE_ENOTFOUND);
    l = store_responses_list(f->st, "ex1", 1, inbox, &e);
    assert_int_equal(json_array_size(l), 1);
    assert_string_equal(jstr(json_array_get(l, 0), "text"), "we isolated the PC");
    assert_true(json_real_value(json_object_get(json_array_get(l, 0), "points")) == 7.5);
    json_decref(l);

    for (int i = 0; i < 3; i++) {
        json_t *bd = json_pack("{s:i}", "detection", 10 * i);
        OK(f, b, store_score_snapshot(f->st, "ex1", 1 + (i == 2), 1000 * (i + 1), 10.0 * i, bd,
                                      on_box, &b));
        json_decref(bd);
    }
    l = store_scores_series(f->st, "ex1", 1, 0, &e);
    assert_int_equal(json_array_size(l), 2);
    assert_int_equal(jint(json_object_get(json_array_get(l, 1), "breakdown"), "detection"), 10);
    json_decref(l);
    l = store_scores_series(f->st, "ex1", 0, 1500, &e);
    assert_int_equal(json_array_size(l), 2);
    json_decref(l);
    json_decref(doc);
}

static void test_users_sessions(void **state)
{
    fx *f = *state;
    json_t *x, *l;
    store_err e;
    int64_t alice, bob;
    box b;

    open_store(f, 0);
    OK(f, b, store_user_add(f->st, "alice", "instructor", 0, "$argon2id$v=19$a", 1, on_box, &b));
    alice = b.id;
    OK(f, b, store_user_add(f->st, "bob", "member", 2, "$argon2id$v=19$b", 2, on_box, &b));
    bob = b.id;
    DO(f, b, store_user_add(f->st, "alice", "observer", 0, "$argon2id$x", 3, on_box, &b));
    assert_int_equal(b.code, STORE_ECONFLICT);
    assert_non_null(strstr(b.msg, "UNIQUE"));
    DO(f, b, store_user_add(f->st, "dave", "member", 0, "$argon2id$x", 3, on_box, &b));
    assert_int_equal(b.code, STORE_EINVAL);
    DO(f, b, store_user_add(f->st, "eve", "root", 0, "$argon2id$x", 3, on_box, &b));
    assert_int_equal(b.code, STORE_EINVAL);

    x = store_user_get_by_name(f->st, "bob", &e);
    assert_non_null(x);
    assert_string_equal(jstr(x, "pw_hash"), "$argon2id$v=19$b");
    assert_string_equal(jstr(x, "role"), "member");
    assert_int_equal(jint(x, "team"), 2);
    assert_true(json_is_false(json_object_get(x, "disabled")));
    json_decref(x);
    x = store_user_get(f->st, alice, &e);
    assert_null(json_object_get(x, "pw_hash"));
    assert_true(json_is_null(json_object_get(x, "team")));
    json_decref(x);
    l = store_users_list(f->st, &e);
    assert_int_equal(json_array_size(l), 2);
    for (size_t i = 0; i < 2; i++)
        assert_null(json_object_get(json_array_get(l, i), "pw_hash"));
    json_decref(l);
    assert_null(store_user_get_by_name(f->st, "zed", &e));
    assert_int_equal(e.code, STORE_ENOTFOUND);

    OK(f, b, store_user_set_password(f->st, bob, "$argon2id$new", on_box, &b));
    x = store_user_get_by_name(f->st, "bob", &e);
    assert_string_equal(jstr(x, "pw_hash"), "$argon2id$new");
    json_decref(x);
    DO(f, b, store_user_set_password(f->st, 777, "$argon2id$new", on_box, &b));
    assert_int_equal(b.code, STORE_ENOTFOUND);

    OK(f, b, store_session_add(f->st, "h1", bob, 100, 1000, "csrf1", on_box, &b));
    OK(f, b, store_session_add(f->st, "h2", alice, 100, 500, "csrf2", on_box, &b));
    OK(f, b, store_session_add(f->st, "h3", alice, 100, 2000, "csrf3", on_box, &b));
    DO(f, b, store_session_add(f->st, "h1", alice, 100, 2000, "csrf", on_box, &b));
    assert_int_equal(b.code, STORE_ECONFLICT);
    x = store_session_get(f->st, "h1", 200, &e);
    assert_non_null(x);
    assert_string_equal(jstr(x, "name"), "bob");
    assert_string_equal(jstr(x, "csrf"), "csrf1");
    assert_int_equal(jint(x, "team"), 2);
    json_decref(x);
    assert_null(store_session_get(f->st, "h2", 600, &e)); /* expired */
    assert_int_equal(e.code, STORE_ENOTFOUND);
    OK(f, b, store_session_purge_expired(f->st, 600, on_box, &b));
    assert_int_equal(b.id, 1);
    OK(f, b, store_session_delete(f->st, "h3", on_box, &b));
    DO(f, b, store_session_delete(f->st, "h3", on_box, &b));
    assert_int_equal(b.code, STORE_ENOTFOUND);

    /* Disabling a user ends their sessions at once. */
    OK(f, b, store_user_disable(f->st, bob, 1, on_box, &b));
    assert_null(store_session_get(f->st, "h1", 200, &e));
    x = store_user_get(f->st, bob, &e);
    assert_true(json_is_true(json_object_get(x, "disabled")));
    json_decref(x);
}

/* ---- reports and reviews ---------------------------------------------- */

static json_t *report_doc(const char *detection)
{
    return json_pack("{s:s, s:s, s:s, s:s}", "detection", detection, "response", "isolated",
                     "reporting", "told the CISO", "recovery", "reimaged");
}

static void test_report_versions_and_reviews(void **state)
{
    fx *f = *state;
    json_t *doc1 = report_doc("v1"), *doc2 = report_doc("v2"), *doc3 = report_doc("v3");
    json_t *r, *versions, *comments, *grades;
    store_err e;
    int64_t rid;
    box b;

    open_store(f, 0);
    put_exercise(f, "ex1");
    OK(f, b, store_report_save(f->st, "ex1", 1, 0, 0, "Incident 1", doc1, 0, "bob", 10,
                               on_box, &b));
    rid = b.id;
    assert_int_equal(b.version, 1);
    OK(f, b, store_report_save(f->st, "ex1", 1, rid, 1, NULL, doc2, 0, "bob", 20, on_box, &b));
    assert_int_equal(b.version, 2);
    /* A second editor who also started from version 1 is told so. */
    DO(f, b, store_report_save(f->st, "ex1", 1, rid, 1, NULL, doc3, 0, "ann", 21, on_box, &b));
    assert_int_equal(b.code, STORE_ECONFLICT);
    assert_non_null(strstr(b.msg, "at version 2"));
    OK(f, b, store_report_save(f->st, "ex1", 1, rid, 2, "Incident 1 (final)", doc3, 1, "ann", 30,
                               on_box, &b));
    assert_int_equal(b.version, 3);

    r = store_report_get(f->st, "ex1", 1, rid, &e);
    assert_non_null(r);
    assert_string_equal(jstr(r, "state"), "submitted");
    assert_string_equal(jstr(r, "title"), "Incident 1 (final)");
    assert_int_equal(jint(r, "current_version"), 3);
    versions = json_object_get(r, "versions");
    assert_int_equal(json_array_size(versions), 3);
    assert_true(json_equal(json_object_get(json_array_get(versions, 0), "doc"), doc1));
    assert_true(json_equal(json_object_get(json_array_get(versions, 1), "doc"), doc2));
    assert_true(json_is_false(json_object_get(json_array_get(versions, 1), "submitted")));
    assert_true(json_is_true(json_object_get(json_array_get(versions, 2), "submitted")));
    assert_string_equal(jstr(json_array_get(versions, 2), "author"), "ann");
    json_decref(r);

    comments = json_pack("[{s:s, s:s, s:s}]", "section", "detection", "quote", "v3",
                         "text", "which host?");
    grades = json_pack("{s:i, s:i}", "0", 3, "1", 2);
    OK(f, b, store_review_add(f->st, "ex1", rid, 2, "carol", 40, comments, NULL, "comment",
                              on_box, &b));
    /* Returning an old version is refused: the team has moved on. */
    DO(f, b, store_review_add(f->st, "ex1", rid, 2, "carol", 41, comments, grades, "return",
                              on_box, &b));
    assert_int_equal(b.code, STORE_ECONFLICT);
    DO(f, b, store_review_add(f->st, "ex1", rid, 9, "carol", 41, comments, grades, "comment",
                              on_box, &b));
    assert_int_equal(b.code, STORE_ENOTFOUND);
    DO(f, b, store_review_add(f->st, "ex2", rid, 3, "carol", 41, comments, grades, "comment",
                              on_box, &b));
    assert_int_equal(b.code, STORE_ENOTFOUND);
    OK(f, b, store_review_add(f->st, "ex1", rid, 3, "carol", 42, comments, grades, "return",
                              on_box, &b));
    r = store_report_get(f->st, "ex1", 1, rid, &e);
    assert_string_equal(jstr(r, "state"), "returned");
    assert_int_equal(json_array_size(json_object_get(r, "reviews")), 2);
    assert_true(json_equal(json_object_get(json_array_get(json_object_get(r, "reviews"), 1),
                                           "grades"), grades));
    json_decref(r);
    /* A returned report cannot be accepted until it is submitted again. */
    DO(f, b, store_review_add(f->st, "ex1", rid, 3, "carol", 43, NULL, grades, "accept",
                              on_box, &b));
    assert_int_equal(b.code, STORE_ECONFLICT);
    OK(f, b, store_report_save(f->st, "ex1", 1, rid, 3, NULL, doc3, 1, "bob", 50, on_box, &b));
    assert_int_equal(b.version, 4);
    OK(f, b, store_review_add(f->st, "ex1", rid, 4, "carol", 60, NULL, grades, "accept",
                              on_box, &b));
    r = store_report_get(f->st, "ex1", 1, rid, &e);
    assert_string_equal(jstr(r, "state"), "accepted");
    json_decref(r);
    /* Accepted is final. */
    DO(f, b, store_report_save(f->st, "ex1", 1, rid, 4, NULL, doc1, 0, "bob", 70, on_box, &b));
    assert_int_equal(b.code, STORE_ECONFLICT);
    DO(f, b, store_review_add(f->st, "ex1", rid, 4, "carol", 60, NULL, NULL, "maybe",
                              on_box, &b));
    assert_int_equal(b.code, STORE_EINVAL);
    /* Invalid saves. */
    DO(f, b, store_report_save(f->st, "ex1", 1, 0, 0, NULL, doc1, 0, "bob", 10, on_box, &b));
    assert_int_equal(b.code, STORE_EINVAL);
    DO(f, b, store_report_save(f->st, "ex1", 1, 0, 0, "t", comments, 0, "bob", 10, on_box, &b));
    assert_int_equal(b.code, STORE_EINVAL);

    json_decref(comments);
    json_decref(grades);
    json_decref(doc1);
    json_decref(doc2);
    json_decref(doc3);
}

/* ---- team scoping ----------------------------------------------------- */

static void test_team_scoping(void **state)
{
    fx *f = *state;
    json_t *doc = report_doc("secret of team 1"), *l;
    store_err e;
    int64_t fid, rid, inbox;
    box b;

    open_store(f, 0);
    put_exercise(f, "ex1");
    put_exercise(f, "ex2");
    OK(f, b, store_finding_add(f->st, "ex1", 1, 0, 1, 1, doc, on_box, &b));
    fid = b.id;
    OK(f, b, store_report_save(f->st, "ex1", 1, 0, 0, "t1", doc, 0, "bob", 1, on_box, &b));
    rid = b.id;
    OK(f, b, store_inbox_add(f->st, "ex1", 1, "press", 1, 0, doc, on_box, &b));
    inbox = b.id;
    OK(f, b, store_response_add(f->st, "ex1", 1, inbox, 0, 2, "answer of team 1", on_box, &b));

    /* Team 2 of the same exercise sees nothing of team 1. */
    l = store_findings_list(f->st, "ex1", 2, &e);
    assert_int_equal(json_array_size(l), 0);
    json_decref(l);
    assert_null(store_finding_get(f->st, "ex1", 2, fid, &e));
    assert_int_equal(e.code, STORE_ENOTFOUND);
    l = store_reports_list(f->st, "ex1", 2, &e);
    assert_int_equal(json_array_size(l), 0);
    json_decref(l);
    assert_null(store_report_get(f->st, "ex1", 2, rid, &e));
    assert_int_equal(e.code, STORE_ENOTFOUND);
    l = store_inbox_list(f->st, "ex1", 2, &e);
    assert_int_equal(json_array_size(l), 0);
    json_decref(l);
    l = store_responses_list(f->st, "ex1", 2, inbox, &e);
    assert_int_equal(json_array_size(l), 0);
    json_decref(l);
    l = store_responses_list(f->st, "ex1", 2, 0, &e);
    assert_int_equal(json_array_size(l), 0);
    json_decref(l);
    /* Nor can it write into team 1's report or answer team 1's inbox. */
    DO(f, b, store_report_save(f->st, "ex1", 2, rid, 1, NULL, doc, 0, "mallory", 3, on_box, &b));
    assert_int_equal(b.code, STORE_ENOTFOUND);
    DO(f, b, store_response_add(f->st, "ex1", 2, inbox, 0, 3, "hijack", on_box, &b));
    assert_int_equal(b.code, STORE_ENOTFOUND);
    /* Team 1 of another exercise is another team. */
    l = store_findings_list(f->st, "ex2", 1, &e);
    assert_int_equal(json_array_size(l), 0);
    json_decref(l);
    assert_null(store_report_get(f->st, "ex2", 1, rid, &e));
    assert_int_equal(e.code, STORE_ENOTFOUND);
    /* Negative teams are refused rather than read as "all". */
    assert_null(store_findings_list(f->st, "ex1", -1, &e));
    assert_int_equal(e.code, STORE_EINVAL);

    /* The owner and the instructor view see it; nothing was changed. */
    l = store_findings_list(f->st, "ex1", 1, &e);
    assert_int_equal(json_array_size(l), 1);
    json_decref(l);
    l = store_responses_list(f->st, "ex1", STORE_ALL_TEAMS, 0, &e);
    assert_int_equal(json_array_size(l), 1);
    assert_string_equal(jstr(json_array_get(l, 0), "text"), "answer of team 1");
    json_decref(l);
    l = store_report_get(f->st, "ex1", 1, rid, &e);
    assert_int_equal(json_array_size(json_object_get(l, "versions")), 1);
    json_decref(l);
    json_decref(doc);
}

/* ---- self-analysis ---------------------------------------------------- */

static json_t *analysis_doc(const char *step, const char *cause, const char *what)
{
    return json_pack("{s:[{s:s, s:s, s:s, s:s}]}", "items", "step", step, "cause", cause,
                     "what", what, "improve", "");
}

static void test_analyses(void **state)
{
    fx *f = *state;
    json_t *d1 = analysis_doc("phish", "plan", "no playbook for mail"), *d1b, *d2, *x, *l;
    json_t *notobj = json_array();
    store_err e = { 0, "" };
    box b;

    d1b = analysis_doc("beacon", "doing", "saw it, did not escalate");
    d2 = analysis_doc("phish", "unknown", "secret of team 2");
    open_store(f, 0);
    put_exercise(f, "ex1");
    put_exercise(f, "ex2");

    /* None yet: "not found" for the team, an empty list for everyone. */
    assert_null(store_analysis_get(f->st, "ex1", 1, &e));
    assert_int_equal(e.code, STORE_ENOTFOUND);
    l = store_analyses_list(f->st, "ex1", STORE_ALL_TEAMS, &e);
    assert_non_null(l);
    assert_int_equal(json_array_size(l), 0);
    json_decref(l);

    OK(f, b, store_analysis_put(f->st, "ex1", 1, d1, "alice", 100, on_box, &b));
    OK(f, b, store_analysis_put(f->st, "ex1", 2, d2, "carol", 150, on_box, &b));
    x = store_analysis_get(f->st, "ex1", 1, &e);
    assert_non_null(x);
    assert_int_equal(jint(x, "team"), 1);
    assert_true(json_equal(json_object_get(x, "doc"), d1));
    assert_int_equal(jint(x, "updated_ms"), 100);
    assert_string_equal(jstr(x, "author"), "alice");
    json_decref(x);

    /* A second put replaces the whole document, its time and author. */
    OK(f, b, store_analysis_put(f->st, "ex1", 1, d1b, NULL, 200, on_box, &b));
    x = store_analysis_get(f->st, "ex1", 1, &e);
    assert_non_null(x);
    assert_true(json_equal(json_object_get(x, "doc"), d1b));
    assert_int_equal(jint(x, "updated_ms"), 200);
    assert_true(json_is_null(json_object_get(x, "author")));
    json_decref(x);

    /* Scoping: each team reads its own; another exercise has none. */
    x = store_analysis_get(f->st, "ex1", 2, &e);
    assert_non_null(x);
    assert_string_equal(jstr(json_array_get(json_object_get(json_object_get(x, "doc"), "items"),
                                            0), "what"), "secret of team 2");
    json_decref(x);
    assert_null(store_analysis_get(f->st, "ex2", 1, &e));
    assert_int_equal(e.code, STORE_ENOTFOUND);
    l = store_analyses_list(f->st, "ex1", 1, &e);
    assert_int_equal(json_array_size(l), 1);
    assert_true(json_equal(json_object_get(json_array_get(l, 0), "doc"), d1b));
    json_decref(l);
    l = store_analyses_list(f->st, "ex1", STORE_ALL_TEAMS, &e);
    assert_int_equal(json_array_size(l), 2);
    assert_int_equal(jint(json_array_get(l, 0), "team"), 1);
    assert_int_equal(jint(json_array_get(l, 1), "team"), 2);
    assert_string_equal(jstr(json_array_get(l, 1), "author"), "carol");
    json_decref(l);
    l = store_analyses_list(f->st, "ex2", STORE_ALL_TEAMS, &e);
    assert_int_equal(json_array_size(l), 0);
    json_decref(l);

    /* Get-one never means "any team"; negative teams are refused. */
    assert_null(store_analysis_get(f->st, "ex1", 0, &e));
    assert_int_equal(e.code, STORE_EINVAL);
    assert_null(store_analyses_list(f->st, "ex1", -1, &e));
    assert_int_equal(e.code, STORE_EINVAL);
    assert_null(store_analysis_get(f->st, NULL, 1, &e));
    assert_int_equal(e.code, STORE_EINVAL);

    /* Invalid writes fail through the callback and change nothing. */
    DO(f, b, store_analysis_put(f->st, "ex1", 0, d1, "alice", 300, on_box, &b));
    assert_int_equal(b.code, STORE_EINVAL);
    DO(f, b, store_analysis_put(f->st, "ex1", 1, NULL, "alice", 300, on_box, &b));
    assert_int_equal(b.code, STORE_EINVAL);
    DO(f, b, store_analysis_put(f->st, "ex1", 1, notobj, "alice", 300, on_box, &b));
    assert_int_equal(b.code, STORE_EINVAL);
    DO(f, b, store_analysis_put(f->st, NULL, 1, d1, "alice", 300, on_box, &b));
    assert_int_equal(b.code, STORE_EINVAL);
    /* A team or an exercise that does not exist. */
    DO(f, b, store_analysis_put(f->st, "ex1", 3, d1, "alice", 300, on_box, &b));
    assert_int_equal(b.code, STORE_ENOTFOUND);
    DO(f, b, store_analysis_put(f->st, "ghost", 1, d1, "alice", 300, on_box, &b));
    assert_int_equal(b.code, STORE_ENOTFOUND);
    x = store_analysis_get(f->st, "ex1", 1, &e);
    assert_int_equal(jint(x, "updated_ms"), 200);
    json_decref(x);

    /* Durable: it is there after reopening. */
    close_store(f);
    open_store(f, 0);
    x = store_analysis_get(f->st, "ex1", 1, &e);
    assert_non_null(x);
    assert_true(json_equal(json_object_get(x, "doc"), d1b));
    json_decref(x);

    json_decref(notobj);
    json_decref(d1);
    json_decref(d1b);
    json_decref(d2);
}

/* ---- group commit, failures, close ------------------------------------ */

#define N_GROUP 1000

typedef struct counter {
    int done;
    int ok;
    int calls[N_GROUP];
    int64_t ids[N_GROUP];
} counter;

typedef struct slot {
    counter *c;
    int i;
} slot;

static void on_counted(const store_result *r, void *opaque)
{
    slot *s = opaque;
    s->c->calls[s->i]++;
    s->c->ids[s->i] = r->id;
    s->c->ok += r->rc == 0;
    s->c->done++;
}

static void test_group_commit(void **state)
{
    fx *f = *state;
    counter *c = calloc(1, sizeof(*c));
    slot *slots = calloc(N_GROUP, sizeof(*slots));
    json_t *entry = json_pack("{s:s}", "event", "tick"), *l;
    store_stats s0, s1;
    store_err e;

    assert_non_null(c);
    assert_non_null(slots);
    open_store(f, 0);
    put_exercise(f, "ex1");
    store_stats_get(f->st, &s0);
    for (int i = 0; i < N_GROUP; i++) {
        slots[i].c = c;
        slots[i].i = i;
        assert_int_equal(store_journal_append(f->st, "ex1", 1, i, "tick", NULL, entry,
                                              on_counted, &slots[i]), 0);
    }
    run_until(f, &c->done, N_GROUP);
    /* Give a stray second callback a chance to show up. */
    uv_run(&f->loop, UV_RUN_NOWAIT);
    store_stats_get(f->st, &s1);
    assert_int_equal(c->done, N_GROUP);
    assert_int_equal(c->ok, N_GROUP);
    for (int i = 0; i < N_GROUP; i++) {
        assert_int_equal(c->calls[i], 1);
        if (i > 0)
            assert_true(c->ids[i] > c->ids[i - 1]); /* queue order is kept */
    }
    l = store_journal_list(f->st, "ex1", 1, 0, 0, &e);
    assert_int_equal(json_array_size(l), N_GROUP);
    json_decref(l);
    assert_int_equal(s1.ops - s0.ops, N_GROUP);
    print_message("group commit: %d writes in %llu commits (largest batch %llu)\n", N_GROUP,
                  (unsigned long long)(s1.commits - s0.commits),
                  (unsigned long long)s1.max_batch);
    assert_true(s1.commits - s0.commits <= N_GROUP / 10);
    assert_true(s1.max_batch > 1);
    json_decref(entry);
    free(slots);
    free(c);
}

static void test_failing_op_keeps_batch(void **state)
{
    fx *f = *state;
    counter *c = calloc(1, sizeof(*c));
    slot *slots = calloc(N_GROUP, sizeof(*slots));
    json_t *doc = json_pack("{s:s}", "x", "y"), *l;
    store_stats s;
    store_err e;
    int n = 300, good = 0;

    assert_non_null(c);
    assert_non_null(slots);
    open_store(f, 0);
    put_exercise(f, "ex1");
    /* Every third finding names a missing exercise and fails inside the
     * writer (a foreign key), between good ones of the same batches. */
    for (int i = 0; i < n; i++) {
        slots[i].c = c;
        slots[i].i = i;
        assert_int_equal(store_finding_add(f->st, i % 3 == 1 ? "ghost" : "ex1", 1, 0, i, i, doc,
                                           on_counted, &slots[i]), 0);
        good += i % 3 != 1;
    }
    run_until(f, &c->done, n);
    store_stats_get(f->st, &s);
    assert_int_equal(c->ok, good);
    assert_int_equal(s.failed, (uint64_t)(n - good));
    assert_true(s.max_batch > 1);
    l = store_findings_list(f->st, "ex1", 1, &e);
    assert_int_equal(json_array_size(l), good);
    /* Exactly the acknowledged ids are stored. */
    for (int i = 0, k = 0; i < n; i++) {
        if (i % 3 == 1) {
            assert_int_equal(c->ids[i], 0);
            continue;
        }
        assert_int_equal(jint(json_array_get(l, k++), "id"), c->ids[i]);
    }
    json_decref(l);
    json_decref(doc);
    free(slots);
    free(c);
}

static void test_invalid_is_async(void **state)
{
    fx *f = *state;
    box b;
    memset(&b, 0, sizeof(b));
    open_store(f, 0);
    /* Even a refused write answers later, never from inside the call. */
    assert_int_equal(store_finding_label(f->st, "ex1", 1, "nope", "x", 1, on_box, &b), 0);
    assert_int_equal(b.calls, 0);
    run_until(f, &b.calls, 1);
    assert_int_equal(b.code, STORE_EINVAL);
    DO(f, b, store_team_put(f->st, "ex1", 1, "bad \xff utf8", on_box, &b));
    assert_int_equal(b.code, STORE_EINVAL);
}

typedef struct close_probe {
    counter *c;
    int closed;
    int done_at_close;
} close_probe;

static void on_probe_closed(void *opaque)
{
    close_probe *p = opaque;
    p->closed++;
    p->done_at_close = p->c->done;
}

static void test_close_drains(void **state)
{
    fx *f = *state;
    counter *c = calloc(1, sizeof(*c));
    slot *slots = calloc(100, sizeof(*slots));
    close_probe probe = { c, 0, 0 };
    json_t *entry = json_pack("{}"), *l;
    store_err e;
    box b;

    assert_non_null(c);
    assert_non_null(slots);
    open_store(f, 0);
    put_exercise(f, "ex1");
    for (int i = 0; i < 100; i++) {
        slots[i].c = c;
        slots[i].i = i;
        assert_int_equal(store_journal_append(f->st, "ex1", 1, i, "k", NULL, entry,
                                              on_counted, &slots[i]), 0);
    }
    store_close(f->st, on_probe_closed, &probe);
    /* After close, writes are refused and no callback is promised. */
    memset(&b, 0, sizeof(b));
    assert_int_equal(store_journal_append(f->st, "ex1", 1, 0, "k", NULL, entry, on_box, &b), -1);
    f->st = NULL;
    run_until(f, &probe.closed, 1);
    /* Every pending write answered, successfully, before the close callback. */
    assert_int_equal(probe.done_at_close, 100);
    assert_int_equal(c->ok, 100);
    assert_int_equal(b.calls, 0);
    open_store(f, 0);
    l = store_journal_list(f->st, "ex1", 1, 0, 0, &e);
    assert_int_equal(json_array_size(l), 100);
    json_decref(l);
    json_decref(entry);
    free(slots);
    free(c);
}

/* The benchmark's reference mode: same operations, one commit each. */
static void test_naive_mode(void **state)
{
    fx *f = *state;
    store_opts o = { 0, 1 };
    char err[256];
    store_stats s;
    json_t *doc = json_pack("{}"), *l;
    store_err e;
    box b[10];

    f->st = store_open_opts(&f->loop, f->path, &o, err, sizeof(err));
    assert_non_null(f->st);
    put_exercise(f, "ex1");
    memset(b, 0, sizeof(b));
    for (int i = 0; i < 10; i++) {
        assert_int_equal(store_finding_add(f->st, "ex1", 1, 0, i, i, doc, on_box, &b[i]), 0);
        assert_int_equal(b[i].calls, 0); /* callbacks still come later */
    }
    run_until(f, &b[9].calls, 1);
    store_stats_get(f->st, &s);
    assert_int_equal(s.commits, 13); /* exercise, two teams, ten findings */
    assert_int_equal(s.max_batch, 1);
    for (int i = 0; i < 10; i++)
        assert_int_equal(b[i].calls, 1);
    l = store_findings_list(f->st, "ex1", 1, &e);
    assert_int_equal(json_array_size(l), 10);
    json_decref(l);
    json_decref(doc);
}

/* ---- crash durability ------------------------------------------------- */

typedef struct child_ctx {
    store *st;
    int fd;
    int64_t next;   /* the client's own number for each finding */
    int inflight;
} child_ctx;

typedef struct child_req {
    child_ctx *x;
    int64_t n;
} child_req;

static void child_submit(child_ctx *x);

static void child_acked(const store_result *r, void *opaque)
{
    child_req *q = opaque;
    child_ctx *x = q->x;
    x->inflight--;
    /* The number is recorded only after the store said it is durable: this
     * file is the client's view of what was acknowledged.  The client's own
     * number, not the row id, so a store that acknowledged too early could
     * not hide it. */
    if (r->rc == 0 && write(x->fd, &q->n, sizeof(q->n)) != (ssize_t)sizeof(q->n))
        _exit(3);
    free(q);
    child_submit(x);
}

static void child_submit(child_ctx *x)
{
    while (x->inflight < 64) {
        child_req *q = malloc(sizeof(*q));
        json_t *doc = json_pack("{s:I}", "n", (json_int_t)x->next);
        if (q == NULL || doc == NULL)
            _exit(4);
        q->x = x;
        q->n = x->next++;
        if (store_finding_add(x->st, "ex1", 1, 0, 1, 1, doc, child_acked, q) < 0)
            _exit(4);
        json_decref(doc);
        x->inflight++;
    }
}

static void child_main(const char *db, const char *acks, int64_t first)
{
    uv_loop_t loop;
    char err[256];
    child_ctx x = { NULL, -1, first, 0 };
    if (uv_loop_init(&loop) != 0)
        _exit(5);
    x.fd = open(acks, O_WRONLY | O_CREAT | O_APPEND, 0600);
    x.st = store_open(&loop, db, err, sizeof(err));
    if (x.fd < 0 || x.st == NULL)
        _exit(6);
    child_submit(&x);
    uv_run(&loop, UV_RUN_DEFAULT);
    _exit(7); /* never reached: the parent kills us */
}

static void test_crash_durability(void **state)
{
    fx *f = *state;
    char acks[160];
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    int64_t total_acked = 0;

    print_message("crash durability: seed %u\n", seed);
    srand(seed);
    open_store(f, 0);
    put_exercise(f, "ex1");
    close_store(f);
    snprintf(acks, sizeof(acks), "%s/acks", f->dir);

    for (int round = 0; round < 4; round++) {
        int status, fd;
        pid_t pid;
        int64_t n, n_acked = 0, n_stored;
        json_t *l, *seen;
        store_err e;
        size_t i;
        json_t *v;

        unlink(acks);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            child_main(f->path, acks, (int64_t)round << 40);
        /* Once the child has acknowledged something (bounded wait), kill it
         * at a random moment within the next 300 ms. */
        for (int t = 0; t < 3000; t++) {
            struct stat sb;
            if (stat(acks, &sb) == 0 && sb.st_size >= 8 * 16)
                break;
            usleep(10000);
        }
        usleep((useconds_t)(rand() % 300000));
        assert_int_equal(kill(pid, SIGKILL), 0);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

        open_store(f, 0);
        l = store_findings_list(f->st, "ex1", 1, &e);
        assert_non_null(l);
        seen = json_object();
        json_array_foreach(l, i, v) {
            char key[32];
            snprintf(key, sizeof(key), "%lld", (long long)jint(json_object_get(v, "doc"), "n"));
            json_object_set_new(seen, key, json_true());
        }
        n_stored = (int64_t)json_array_size(l);
        fd = open(acks, O_RDONLY);
        assert_true(fd >= 0);
        while (read(fd, &n, sizeof(n)) == (ssize_t)sizeof(n)) {
            char key[32];
            snprintf(key, sizeof(key), "%lld", (long long)n);
            if (json_object_get(seen, key) == NULL)
                fail_msg("round %d: acknowledged finding n=%lld is not stored", round,
                         (long long)n);
            n_acked++;
        }
        close(fd);
        total_acked += n_acked;
        print_message("crash durability: round %d: %lld acknowledged in this round, "
                      "%lld stored in all\n", round, (long long)n_acked, (long long)n_stored);
        assert_true(n_acked > 0);
        assert_true(n_stored >= total_acked);
        json_decref(seen);
        json_decref(l);
        close_store(f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_migrate_from_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_old_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_2_to_3, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_keeps_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exercise_team_host_timeline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_flows_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_findings_inbox_scores, setup, teardown),
        cmocka_unit_test_setup_teardown(test_users_sessions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_versions_and_reviews, setup, teardown),
        cmocka_unit_test_setup_teardown(test_team_scoping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_analyses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failing_op_keeps_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_is_async, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_drains, setup, teardown),
        cmocka_unit_test_setup_teardown(test_naive_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_durability, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
