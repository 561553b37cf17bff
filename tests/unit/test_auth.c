/* Unit tests of auth (orchestrator/auth.c) and `cyrange users`
 * (orchestrator/cli_users.c) against a real store in a temporary directory
 * and a real libuv loop: passwords, logins end to end, sessions, logout,
 * rate limiting, CSRF, cookies, the authorisation matrix, provisioning and
 * the CLI.  argon2id runs with libsodium's minimum cost (the memory limit
 * is a parameter of auth), so the suite stays fast under valgrind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "cli.h"
#include "store.h"

/* Until orchestrator/cli.h declares it. */
int cli_users(int argc, char **argv);

static const auth_kdf kdf_min = { crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_MEMLIMIT_MIN };

typedef struct fx {
    uv_loop_t loop;
    uv_timer_t tick; /* keeps every wait bounded: the loop wakes up often */
    char dir[64];
    char path[128];
    store *st;
    auth *a;
    int64_t now; /* the fake clock of auth */
} fx;

typedef struct wbox {
    int calls;
    int rc;
    int code;
    int64_t id;
    char msg[256];
} wbox;

typedef struct lbox {
    int calls;
    int rc;
    int code;
    int retry;
    char token[64];
    char csrf[64];
    int64_t expires;
    json_t *user;
    json_t *users;
    char msg[256];
} lbox;

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

static void on_write(const store_result *r, void *opaque)
{
    wbox *b = opaque;
    b->calls++;
    b->rc = r->rc;
    b->code = r->err.code;
    b->id = r->id;
    snprintf(b->msg, sizeof(b->msg), "%s", r->err.msg);
}

static void on_auth(const auth_result *r, void *opaque)
{
    lbox *b = opaque;
    b->calls++;
    b->rc = r->rc;
    b->code = r->err.code;
    b->retry = r->retry_after_s;
    b->expires = r->expires_ms;
    snprintf(b->msg, sizeof(b->msg), "%s", r->err.msg);
    snprintf(b->token, sizeof(b->token), "%s", r->token ? r->token : "");
    snprintf(b->csrf, sizeof(b->csrf), "%s", r->csrf ? r->csrf : "");
    json_decref(b->user);
    b->user = r->user ? json_deep_copy(r->user) : NULL;
    json_decref(b->users);
    b->users = r->users ? json_deep_copy(r->users) : NULL;
}

static void lbox_clear(lbox *b)
{
    json_decref(b->user);
    json_decref(b->users);
    memset(b, 0, sizeof(*b));
}

static int64_t fake_now(void *opaque)
{
    return ((fx *)opaque)->now;
}

static void run_until(fx *f, const int *counter, int want)
{
    uint64_t t0 = uv_hrtime();
    while (*counter < want && uv_hrtime() - t0 < 30ULL * 1000000000ULL)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_true(*counter >= want);
}

static void on_closed(void *opaque)
{
    (*(int *)opaque)++;
}

static void open_store(fx *f)
{
    char err[256] = "";
    f->st = store_open(&f->loop, f->path, err, sizeof(err));
    if (f->st == NULL)
        fail_msg("store_open: %s", err);
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

static void new_auth(fx *f, const auth_opts *extra)
{
    char err[256] = "";
    auth_opts o;
    if (extra)
        o = *extra;
    else
        memset(&o, 0, sizeof(o));
    o.kdf = kdf_min;
    o.now_ms = fake_now;
    o.now_opaque = f;
    auth_free(f->a);
    f->a = auth_new(&f->loop, f->st, &o, err, sizeof(err));
    if (f->a == NULL)
        fail_msg("auth_new: %s", err);
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
    snprintf(f->dir, sizeof(f->dir), "/tmp/cyrange-auth-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/cyrange.db", f->dir);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(uv_timer_init(&f->loop, &f->tick), 0);
    assert_int_equal(uv_timer_start(&f->tick, on_tick, 50, 50), 0);
    f->now = 1790000000000LL;
    open_store(f);
    new_auth(f, NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    auth_free(f->a);
    close_store(f);
    uv_close((uv_handle_t *)&f->tick, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* Adds a user with a password hashed at the minimum cost; its id. */
static int64_t add_user(fx *f, const char *name, const char *role, int team, const char *pw)
{
    char hash[AUTH_HASH_MAX], err[256];
    wbox b = { 0 };
    assert_int_equal(auth_hash_password_kdf(&kdf_min, pw, hash, err, sizeof(err)), 0);
    assert_int_equal(store_user_add(f->st, name, role, team, hash, f->now, on_write, &b), 0);
    run_until(f, &b.calls, 1);
    if (b.rc != 0)
        fail_msg("store_user_add %s: %s", name, b.msg);
    return b.id;
}

static void login(fx *f, lbox *b, const char *name, const char *pw, const char *addr)
{
    lbox_clear(b);
    assert_int_equal(auth_login_async(f->a, name, pw, addr, on_auth, b), 0);
    run_until(f, &b->calls, 1);
    assert_int_equal(b->calls, 1);
}

static void cookie_of(const lbox *b, char *buf, size_t len)
{
    snprintf(buf, len, "theme=dark; %s=%s; lang=en", AUTH_COOKIE_NAME, b->token);
}

/* ---- passwords ---------------------------------------------------------- */

static void test_hash_verify(void **state)
{
    char h[AUTH_HASH_MAX], h2[AUTH_HASH_MAX], err[256];
    const auth_kdf moderate = { 3, 1 << 20 };
    (void)state;

    assert_int_equal(auth_hash_password_kdf(&kdf_min, "correct horse", h, err, sizeof(err)), 0);
    assert_memory_equal(h, "$argon2id$", 10);
    assert_int_equal(auth_verify_password(h, "correct horse"), 0);
    assert_int_equal(auth_verify_password(h, "correct horsE"), -1);
    assert_int_equal(auth_verify_password(h, ""), -1);
    assert_int_equal(auth_verify_password("not a hash", "correct horse"), -1);
    assert_int_equal(auth_verify_password(NULL, "x"), -1);
    /* A fresh salt every time. */
    assert_int_equal(auth_hash_password_kdf(&kdf_min, "correct horse", h2, err, sizeof(err)), 0);
    assert_string_not_equal(h, h2);

    /* Rehash when the cost differs from the one asked for. */
    assert_int_equal(auth_needs_rehash(h, &kdf_min), 0);
    assert_int_equal(auth_needs_rehash(h, NULL), 1);
    assert_int_equal(auth_needs_rehash(h, &moderate), 1);
    assert_int_equal(auth_needs_rehash("garbage", NULL), -1);
    /* argon2i is verified but always rehashed to argon2id. */
    assert_int_equal(crypto_pwhash_str_alg(h2, "pw", 2, 3, 1 << 20, crypto_pwhash_ALG_ARGON2I13),
                     0);
    assert_memory_equal(h2, "$argon2i$", 9);
    assert_int_equal(auth_verify_password(h2, "pw"), 0);
    assert_int_equal(auth_needs_rehash(h2, &moderate), 1);
}

static void test_hash_default_cost(void **state)
{
    char h[AUTH_HASH_MAX], err[256];
    (void)state;
    /* The production cost, once: m=65536 KiB, t=2. */
    assert_int_equal(auth_hash_password("a long passphrase", h, err, sizeof(err)), 0);
    assert_non_null(strstr(h, "$argon2id$v=19$m=65536,t=2,p=1$"));
    assert_int_equal(auth_needs_rehash(h, NULL), 0);
    assert_int_equal(auth_verify_password(h, "a long passphrase"), 0);
}

static void test_generate_password(void **state)
{
    static const char alphabet[] = "abcdefghijkmnpqrstuvwxyz23456789";
    char seen[100][AUTH_GENPW_LEN + 1];
    char small[AUTH_GENPW_LEN];
    int counts[32] = { 0 };
    (void)state;

    assert_int_equal(auth_generate_password(small, sizeof(small)), -1);
    assert_int_equal(auth_generate_password(NULL, 100), -1);
    for (int i = 0; i < 100; i++) {
        char *p = seen[i];
        assert_int_equal(auth_generate_password(p, sizeof(seen[i])), 0);
        assert_int_equal(strlen(p), AUTH_GENPW_LEN);
        for (int k = 0; k < AUTH_GENPW_LEN; k++) {
            if (k % 5 == 4) {
                assert_int_equal(p[k], '-');
                continue;
            }
            const char *at = strchr(alphabet, p[k]);
            if (at == NULL || p[k] == '\0')
                fail_msg("'%c' is not in the alphabet (%s)", p[k], p);
            counts[at - alphabet]++;
        }
        for (int j = 0; j < i; j++)
            assert_string_not_equal(seen[j], p);
    }
    /* 1,600 symbols over 32: every symbol turns up (expected 50 each). */
    for (int s = 0; s < 32; s++)
        assert_true(counts[s] > 10);
}

/* ---- logins and sessions ------------------------------------------------ */

static void test_login_session(void **state)
{
    fx *f = *state;
    lbox b = { 0 };
    auth_principal p;
    auth_err e;
    char cookie[256], setc[256];
    int64_t id = add_user(f, "alice", "member", 3, "alice-password");

    login(f, &b, "alice", "alice-password", "198.18.0.10");
    if (b.rc != 0)
        fail_msg("login: %s", b.msg);
    assert_int_equal(strlen(b.token), AUTH_TOKEN_LEN);
    assert_int_equal(strlen(b.csrf), AUTH_TOKEN_LEN);
    assert_string_not_equal(b.token, b.csrf);
    assert_int_equal(b.expires, f->now + AUTH_SESSION_TTL_MS);
    assert_non_null(b.user);
    assert_null(json_object_get(b.user, "pw_hash"));
    assert_string_equal(json_string_value(json_object_get(b.user, "name")), "alice");
    assert_int_equal(json_integer_value(json_object_get(b.user, "id")), id);

    /* The cookie the API sets, and the session it names. */
    assert_int_equal(auth_set_cookie(b.token, 43200, 0, setc, sizeof(setc)), 0);
    assert_memory_equal(setc, "cyrange_session=", 16);
    cookie_of(&b, cookie, sizeof(cookie));
    assert_int_equal(auth_session_check(f->a, cookie, f->now + 1000, &p, &e), 0);
    assert_int_equal(p.user_id, id);
    assert_string_equal(p.name, "alice");
    assert_int_equal(p.role, AUTH_ROLE_MEMBER);
    assert_int_equal(p.team, 3);
    assert_string_equal(p.csrf, b.csrf);
    assert_int_equal(p.expires_ms, b.expires);
    assert_int_equal(auth_read_scope(&p), 3);

    /* Only the whole, exact token opens the session. */
    memset(&e, 0, sizeof(e));
    assert_int_equal(auth_session_check(f->a, NULL, f->now, &p, &e), -1);
    assert_int_equal(e.code, AUTH_ENOSESSION);
    assert_int_equal(p.user_id, 0);
    assert_int_equal(auth_session_check(f->a, "cyrange_session=", f->now, &p, &e), -1);
    snprintf(cookie, sizeof(cookie), "cyrange_session=%.42s", b.token);
    assert_int_equal(auth_session_check(f->a, cookie, f->now, &p, &e), -1);
    snprintf(cookie, sizeof(cookie), "cyrange_session=%.42sA", b.token);
    if (strcmp(cookie + 16, b.token) != 0) {
        assert_int_equal(auth_session_check(f->a, cookie, f->now, &p, &e), -1);
        assert_int_equal(e.code, AUTH_ENOSESSION);
    }
    snprintf(cookie, sizeof(cookie), "xcyrange_session=%s", b.token);
    assert_int_equal(auth_session_check(f->a, cookie, f->now, &p, &e), -1);
    /* A quoted value and a stale cookie of the same name before it. */
    snprintf(cookie, sizeof(cookie), "cyrange_session=junk;cyrange_session=\"%s\"", b.token);
    assert_int_equal(auth_session_check(f->a, cookie, f->now, &p, &e), 0);
    assert_string_equal(p.name, "alice");
    lbox_clear(&b);
}

static void test_observer_instructor_principal(void **state)
{
    fx *f = *state;
    lbox b = { 0 };
    auth_principal p;
    char cookie[256];

    add_user(f, "olga", "observer", 0, "observer-pw");
    add_user(f, "ivan", "instructor", 0, "instructor-pw");
    login(f, &b, "olga", "observer-pw", NULL);
    assert_int_equal(b.rc, 0);
    cookie_of(&b, cookie, sizeof(cookie));
    assert_int_equal(auth_session_check(f->a, cookie, f->now, &p, NULL), 0);
    assert_int_equal(p.role, AUTH_ROLE_OBSERVER);
    assert_int_equal(p.team, 0);
    assert_int_equal(auth_read_scope(&p), STORE_ALL_TEAMS);
    login(f, &b, "ivan", "instructor-pw", NULL);
    assert_int_equal(b.rc, 0);
    cookie_of(&b, cookie, sizeof(cookie));
    assert_int_equal(auth_session_check(f->a, cookie, f->now, &p, NULL), 0);
    assert_int_equal(p.role, AUTH_ROLE_INSTRUCTOR);
    assert_int_equal(auth_read_scope(&p), STORE_ALL_TEAMS);
    assert_int_equal(auth_read_scope(NULL), -1);
    lbox_clear(&b);
}

static double login_seconds(fx *f, const char *name, const char *pw)
{
    lbox b = { 0 };
    uint64_t t0 = uv_hrtime();
    login(f, &b, name, pw, NULL);
    assert_int_equal(b.code, AUTH_EBADCRED);
    lbox_clear(&b);
    return (double)(uv_hrtime() - t0) / 1e9;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static void test_bad_credentials(void **state)
{
    fx *f = *state;
    lbox w = { 0 }, u = { 0 };
    auth_opts o;
    double tw[5], tu[5];

    add_user(f, "bob", "member", 1, "bob-password");
    login(f, &w, "bob", "wrong-password", NULL);
    login(f, &u, "nobody", "bob-password", NULL);
    assert_int_equal(w.rc, -1);
    assert_int_equal(u.rc, -1);
    assert_int_equal(w.code, AUTH_EBADCRED);
    assert_int_equal(u.code, AUTH_EBADCRED);
    assert_string_equal(w.msg, u.msg);
    assert_null(w.user);
    assert_string_equal(w.token, "");
    /* Names that cannot exist and over-long passwords answer the same. */
    login(f, &u, "", "x", NULL);
    assert_int_equal(u.code, AUTH_EBADCRED);
    {
        char longpw[AUTH_PW_MAX + 10];
        memset(longpw, 'p', sizeof(longpw) - 1);
        longpw[sizeof(longpw) - 1] = '\0';
        login(f, &u, "bob", longpw, NULL);
        assert_int_equal(u.code, AUTH_EBADCRED);
    }
    login(f, &u, NULL, NULL, NULL);
    assert_int_equal(u.code, AUTH_EBADCRED);

    /* An unknown user costs an argon2id verify too: with a cost that
     * dominates the time (16 MiB), the medians are alike.  The limits are
     * loose so that a busy host cannot fail the test; skipping the verify
     * would make the unknown user ~100x faster. */
    memset(&o, 0, sizeof(o));
    o.name_max_failures = 1000;
    o.addr_max_failures = 1000;
    new_auth(f, &o);
    {
        char hash[AUTH_HASH_MAX], err[256];
        const auth_kdf k = { 2, 16u << 20 };
        wbox b = { 0 };
        char e2[256];
        auth_opts o2 = o;
        o2.kdf = k;
        o2.now_ms = fake_now;
        o2.now_opaque = f;
        assert_int_equal(auth_hash_password_kdf(&k, "carol-password", hash, err, sizeof(err)),
                         0);
        assert_int_equal(store_user_add(f->st, "carol", "observer", 0, hash, f->now, on_write,
                                        &b), 0);
        run_until(f, &b.calls, 1);
        assert_int_equal(b.rc, 0);
        auth_free(f->a);
        f->a = auth_new(&f->loop, f->st, &o2, e2, sizeof(e2));
        assert_non_null(f->a);
    }
    for (int i = 0; i < 5; i++) {
        tw[i] = login_seconds(f, "carol", "not-carols-password");
        tu[i] = login_seconds(f, "mallory", "not-carols-password");
    }
    qsort(tw, 5, sizeof(double), cmp_double);
    qsort(tu, 5, sizeof(double), cmp_double);
    print_message("median wrong password %.1f ms, unknown user %.1f ms\n", tw[2] * 1e3,
                  tu[2] * 1e3);
    assert_true(tu[2] > 0.4 * tw[2]);
    assert_true(tw[2] > 0.4 * tu[2]);
    lbox_clear(&w);
    lbox_clear(&u);
}

static void test_disabled(void **state)
{
    fx *f = *state;
    lbox b = { 0 };
    wbox w = { 0 };
    auth_principal p;
    auth_err e;
    char cookie[256];
    int64_t id = add_user(f, "dave", "member", 2, "dave-password");

    login(f, &b, "dave", "dave-password", NULL);
    assert_int_equal(b.rc, 0);
    cookie_of(&b, cookie, sizeof(cookie));
    assert_int_equal(auth_session_check(f->a, cookie, f->now, &p, NULL), 0);

    assert_int_equal(store_user_disable(f->st, id, 1, on_write, &w), 0);
    run_until(f, &w.calls, 1);
    assert_int_equal(w.rc, 0);
    /* The open session ends with the account. */
    assert_int_equal(auth_session_check(f->a, cookie, f->now, &p, &e), -1);
    assert_int_equal(e.code, AUTH_ENOSESSION);
    login(f, &b, "dave", "dave-password", NULL);
    assert_int_equal(b.code, AUTH_EDISABLED);
    assert_null(b.user);
    /* Only the right password learns that the account is disabled. */
    login(f, &b, "dave", "guess", NULL);
    assert_int_equal(b.code, AUTH_EBADCRED);

    memset(&w, 0, sizeof(w));
    assert_int_equal(store_user_disable(f->st, id, 0, on_write, &w), 0);
    run_until(f, &w.calls, 1);
    login(f, &b, "dave", "dave-password", NULL);
    assert_int_equal(b.rc, 0);
    lbox_clear(&b);
}

static void test_rate_limit_name(void **state)
{
    fx *f = *state;
    lbox b = { 0 };
    int retry = -1;

    add_user(f, "erin", "member", 1, "erin-password");
    for (int i = 0; i < 5; i++) {
        login(f, &b, "erin", "wrong", i % 2 ? "198.18.0.1" : "198.18.0.2");
        assert_int_equal(b.code, AUTH_EBADCRED);
    }
    /* Locked for the name, from any address and even with the right
     * password, for the first lockout's 60 s. */
    login(f, &b, "erin", "erin-password", "198.18.0.3");
    assert_int_equal(b.code, AUTH_ERATE);
    assert_int_equal(b.retry, 60);
    assert_int_equal(auth_rate_check(f->a, "erin", NULL, f->now, &retry), -1);
    assert_int_equal(retry, 60);
    assert_int_equal(auth_rate_check(f->a, "someone-else", "198.18.0.3", f->now, &retry), 0);
    assert_int_equal(retry, 0);
    f->now += 30 * 1000;
    login(f, &b, "erin", "erin-password", NULL);
    assert_int_equal(b.code, AUTH_ERATE);
    assert_int_equal(b.retry, 30);

    /* Back-off: the next lockout lasts twice as long. */
    f->now += 31 * 1000;
    for (int i = 0; i < 5; i++) {
        login(f, &b, "erin", "wrong", NULL);
        assert_int_equal(b.code, AUTH_EBADCRED);
    }
    login(f, &b, "erin", "erin-password", NULL);
    assert_int_equal(b.code, AUTH_ERATE);
    assert_int_equal(b.retry, 120);

    /* A success resets the name: five more failures are needed again. */
    f->now += 121 * 1000;
    login(f, &b, "erin", "erin-password", NULL);
    assert_int_equal(b.rc, 0);
    for (int i = 0; i < 4; i++) {
        login(f, &b, "erin", "wrong", NULL);
        assert_int_equal(b.code, AUTH_EBADCRED);
    }
    login(f, &b, "erin", "erin-password", NULL);
    assert_int_equal(b.rc, 0);
    for (int i = 0; i < 5; i++) {
        login(f, &b, "erin", "wrong", NULL);
        assert_int_equal(b.code, AUTH_EBADCRED);
    }
    login(f, &b, "erin", "erin-password", NULL);
    assert_int_equal(b.code, AUTH_ERATE);
    /* and after the success the back-off starts over at 60 s. */
    assert_int_equal(b.retry, 60);

    /* Failures spread wider than the window do not add up. */
    add_user(f, "frank", "member", 1, "frank-password");
    for (int i = 0; i < 12; i++) {
        login(f, &b, "frank", "wrong", NULL);
        assert_int_equal(b.code, AUTH_EBADCRED);
        f->now += 80 * 1000; /* 4 per 5 minutes */
    }
    lbox_clear(&b);
}

static void test_rate_limit_concurrent(void **state)
{
    fx *f = *state;
    lbox b[7];
    int done = 0, rate = 0, bad = 0;

    memset(b, 0, sizeof(b));
    add_user(f, "gina", "member", 1, "gina-password");
    /* Guesses in flight count: a burst cannot outrun the limit. */
    for (int i = 0; i < 7; i++)
        assert_int_equal(auth_login_async(f->a, "gina", "wrong", NULL, on_auth, &b[i]), 0);
    for (;;) {
        done = 0;
        for (int i = 0; i < 7; i++)
            done += b[i].calls;
        if (done == 7)
            break;
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    for (int i = 0; i < 7; i++) {
        rate += b[i].code == AUTH_ERATE;
        bad += b[i].code == AUTH_EBADCRED;
        lbox_clear(&b[i]);
    }
    assert_int_equal(bad, 5);
    assert_int_equal(rate, 2);

    /* At most max_logins verify at once, whoever asks. */
    {
        auth_opts o;
        static const char *who[4] = { "gina", "u1", "u2", "u3" };
        memset(&o, 0, sizeof(o));
        o.max_logins = 3;
        new_auth(f, &o);
        for (int i = 0; i < 4; i++)
            assert_int_equal(auth_login_async(f->a, who[i], i ? "x" : "gina-password", NULL,
                                              on_auth, &b[i]), 0);
        for (int i = 0; i < 4; i++)
            run_until(f, &b[i].calls, 1);
        assert_int_equal(b[0].rc, 0);
        assert_int_equal(b[1].code, AUTH_EBADCRED);
        assert_int_equal(b[2].code, AUTH_EBADCRED);
        assert_int_equal(b[3].code, AUTH_ERATE);
        assert_int_equal(b[3].retry, 1);
        /* and the slots come back. */
        lbox_clear(&b[3]);
        assert_int_equal(auth_login_async(f->a, "u3", "x", NULL, on_auth, &b[3]), 0);
        run_until(f, &b[3].calls, 1);
        assert_int_equal(b[3].code, AUTH_EBADCRED);
        for (int i = 0; i < 4; i++)
            lbox_clear(&b[i]);
    }
}

static void test_rate_limit_address(void **state)
{
    fx *f = *state;
    lbox b = { 0 };
    char name[32];

    add_user(f, "hank", "member", 1, "hank-password");
    add_user(f, "iris", "member", 2, "iris-password");
    /* 20 failures from one address, each on another name. */
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof(name), "guess%d", i);
        login(f, &b, name, "wrong", "198.18.5.5");
        assert_int_equal(b.code, AUTH_EBADCRED);
    }
    login(f, &b, "hank", "hank-password", "198.18.5.5");
    assert_int_equal(b.code, AUTH_ERATE);
    assert_true(b.retry > 0);
    /* Another address, and the same name from it, are not affected. */
    login(f, &b, "hank", "hank-password", "198.18.5.6");
    assert_int_equal(b.rc, 0);

    /* A success clears the address's failures. */
    f->now += 61 * 1000;
    for (int i = 0; i < 19; i++) {
        snprintf(name, sizeof(name), "other%d", i);
        login(f, &b, name, "wrong", "198.18.6.6");
        assert_int_equal(b.code, AUTH_EBADCRED);
    }
    login(f, &b, "iris", "iris-password", "198.18.6.6");
    assert_int_equal(b.rc, 0);
    for (int i = 0; i < 19; i++) {
        snprintf(name, sizeof(name), "more%d", i);
        login(f, &b, name, "wrong", "198.18.6.6");
        assert_int_equal(b.code, AUTH_EBADCRED);
    }
    login(f, &b, "iris", "iris-password", "198.18.6.6");
    assert_int_equal(b.rc, 0);

    /* but not its lockout level: one good account cannot launder an
     * address that guesses.  The next lockout of 198.18.5.5 lasts 120 s. */
    login(f, &b, "iris", "iris-password", "198.18.5.5");
    assert_int_equal(b.rc, 0);
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof(name), "again%d", i);
        login(f, &b, name, "wrong", "198.18.5.5");
        assert_int_equal(b.code, AUTH_EBADCRED);
    }
    login(f, &b, "iris", "iris-password", "198.18.5.5");
    assert_int_equal(b.code, AUTH_ERATE);
    assert_int_equal(b.retry, 120);
    lbox_clear(&b);
}

static void test_rate_table_bounded(void **state)
{
    fx *f = *state;
    lbox b = { 0 };
    auth_opts o;
    char name[32];
    int retry;

    memset(&o, 0, sizeof(o));
    o.rate_entries = 8;
    new_auth(f, &o);
    add_user(f, "jack", "member", 1, "jack-password");
    for (int i = 0; i < 5; i++) {
        login(f, &b, "jack", "wrong", NULL);
        assert_int_equal(b.code, AUTH_EBADCRED);
    }
    /* Many other names pass through an 8-entry table: idle unlocked keys
     * go first, so jack's lockout survives. */
    for (int i = 0; i < 30; i++) {
        snprintf(name, sizeof(name), "n%d", i);
        login(f, &b, name, "wrong", NULL);
        assert_int_equal(b.code, AUTH_EBADCRED);
    }
    assert_int_equal(auth_rate_check(f->a, "jack", NULL, f->now, &retry), -1);
    login(f, &b, "jack", "jack-password", NULL);
    assert_int_equal(b.code, AUTH_ERATE);
    lbox_clear(&b);
}

static void test_expired_session(void **state)
{
    fx *f = *state;
    lbox b = { 0 };
    auth_opts o;
    auth_principal p;
    auth_err e;
    char cookie[256];

    memset(&o, 0, sizeof(o));
    o.session_ttl_ms = 60 * 1000;
    new_auth(f, &o);
    add_user(f, "kate", "member", 4, "kate-password");
    login(f, &b, "kate", "kate-password", NULL);
    assert_int_equal(b.rc, 0);
    assert_int_equal(b.expires, f->now + 60 * 1000);
    cookie_of(&b, cookie, sizeof(cookie));
    assert_int_equal(auth_session_check(f->a, cookie, f->now + 59999, &p, &e), 0);
    assert_int_equal(auth_session_check(f->a, cookie, f->now + 60000, &p, &e), -1);
    assert_int_equal(e.code, AUTH_ENOSESSION);
    assert_string_equal(p.name, "");

    /* The next login purges it from the database. */
    f->now += 120 * 1000;
    {
        char th[AUTH_TOKEN_HASH_LEN + 1];
        json_t *s;
        store_err se;
        auth_token_hash(b.token, th);
        s = store_session_get(f->st, th, 0, &se);
        assert_non_null(s);
        json_decref(s);
        login(f, &b, "kate", "kate-password", NULL);
        assert_int_equal(b.rc, 0);
        /* Purge and session writes are acknowledged in order. */
        close_store(f);
        open_store(f);
        s = store_session_get(f->st, th, 0, &se);
        assert_null(s);
        assert_int_equal(se.code, STORE_ENOTFOUND);
        auth_free(f->a);
        f->a = NULL;
        new_auth(f, NULL);
    }
    lbox_clear(&b);
}

static void test_logout(void **state)
{
    fx *f = *state;
    lbox b = { 0 }, other = { 0 }, lo = { 0 };
    auth_principal p;
    char cookie[256], cookie2[256];

    add_user(f, "liam", "member", 1, "liam-password");
    login(f, &b, "liam", "liam-password", NULL);
    login(f, &other, "liam", "liam-password", NULL);
    assert_int_equal(b.rc, 0);
    assert_int_equal(other.rc, 0);
    assert_string_not_equal(b.token, other.token);
    cookie_of(&b, cookie, sizeof(cookie));
    cookie_of(&other, cookie2, sizeof(cookie2));

    assert_int_equal(auth_logout_async(f->a, cookie, on_auth, &lo), 0);
    run_until(f, &lo.calls, 1);
    assert_int_equal(lo.rc, 0);
    assert_int_equal(auth_session_check(f->a, cookie, f->now, &p, NULL), -1);
    /* Only that session ended. */
    assert_int_equal(auth_session_check(f->a, cookie2, f->now, &p, NULL), 0);

    lbox_clear(&lo);
    assert_int_equal(auth_logout_async(f->a, cookie, on_auth, &lo), 0);
    run_until(f, &lo.calls, 1);
    assert_int_equal(lo.code, AUTH_ENOSESSION);
    lbox_clear(&lo);
    assert_int_equal(auth_logout_async(f->a, NULL, on_auth, &lo), 0);
    assert_int_equal(lo.calls, 0); /* never from inside the call */
    run_until(f, &lo.calls, 1);
    assert_int_equal(lo.code, AUTH_ENOSESSION);
    lbox_clear(&lo);
    lbox_clear(&b);
    lbox_clear(&other);
}

static void test_csrf(void **state)
{
    fx *f = *state;
    lbox b = { 0 };
    auth_principal p;
    char cookie[256], wrong[64];

    add_user(f, "mia", "member", 1, "mia-password");
    login(f, &b, "mia", "mia-password", NULL);
    assert_int_equal(b.rc, 0);
    cookie_of(&b, cookie, sizeof(cookie));
    assert_int_equal(auth_session_check(f->a, cookie, f->now, &p, NULL), 0);

    assert_int_equal(auth_csrf_ok(&p, NULL), 0);
    assert_int_equal(auth_csrf_ok(&p, ""), 0);
    snprintf(wrong, sizeof(wrong), "%s", b.csrf);
    wrong[10] = wrong[10] == 'A' ? 'B' : 'A';
    assert_int_equal(auth_csrf_ok(&p, wrong), 0);
    wrong[10] = b.csrf[10];
    wrong[strlen(wrong) - 1] = '\0';
    assert_int_equal(auth_csrf_ok(&p, wrong), 0);
    snprintf(wrong, sizeof(wrong), "%sx", b.csrf);
    assert_int_equal(auth_csrf_ok(&p, wrong), 0);
    /* The session token is not the CSRF token. */
    assert_int_equal(auth_csrf_ok(&p, b.token), 0);
    assert_int_equal(auth_csrf_ok(&p, b.csrf), 1);
    assert_int_equal(auth_csrf_ok(NULL, b.csrf), 0);
    lbox_clear(&b);
}

/* ---- authorisation ------------------------------------------------------ */

static void test_matrix(void **state)
{
    /* Expected answers, written out: [role][action][target], target 0:
     * own team (2), 1: another team (5), 2: exercise-wide (0). */
    static const struct {
        auth_role role;
        int team;
        int allow[5][3];
    } m[] = {
        { AUTH_ROLE_INSTRUCTOR, 0,
          { /* READ */ { 1, 1, 1 }, /* WRITE */ { 1, 1, 1 }, /* STEER */ { 1, 1, 1 },
            /* ADMIN */ { 1, 1, 1 }, /* CONSOLE */ { 1, 1, 1 } } },
        { AUTH_ROLE_MEMBER, 2,
          { { 1, 0, 0 }, { 1, 0, 0 }, { 0, 0, 0 }, { 0, 0, 0 }, { 1, 0, 0 } } },
        { AUTH_ROLE_OBSERVER, 0,
          { { 1, 1, 1 }, { 0, 0, 0 }, { 0, 0, 0 }, { 0, 0, 0 }, { 0, 0, 0 } } },
        { AUTH_ROLE_NONE, 0,
          { { 0, 0, 0 }, { 0, 0, 0 }, { 0, 0, 0 }, { 0, 0, 0 }, { 0, 0, 0 } } },
        /* A member without a team (never stored) may do nothing. */
        { AUTH_ROLE_MEMBER, 0,
          { { 0, 0, 0 }, { 0, 0, 0 }, { 0, 0, 0 }, { 0, 0, 0 }, { 0, 0, 0 } } },
    };
    static const auth_action acts[5] = { AUTH_READ_TEAM, AUTH_WRITE_TEAM, AUTH_STEER,
                                         AUTH_ADMIN_USERS, AUTH_CONSOLE };
    const int targets[3] = { 2, 5, 0 };
    (void)state;

    for (size_t r = 0; r < sizeof(m) / sizeof(m[0]); r++) {
        auth_principal p;
        memset(&p, 0, sizeof(p));
        p.role = m[r].role;
        p.team = m[r].team;
        for (int a = 0; a < 5; a++)
            for (int t = 0; t < 3; t++) {
                int got = auth_can(&p, acts[a], targets[t]);
                if (got != m[r].allow[a][t])
                    fail_msg("role %d team %d action %d target %d: got %d", m[r].role,
                             m[r].team, a, targets[t], got);
            }
        /* A negative team is never a target. */
        for (int a = 0; a < 5; a++)
            assert_int_equal(auth_can(&p, acts[a], -1), 0);
    }
    for (int a = 0; a < 5; a++)
        assert_int_equal(auth_can(NULL, acts[a], 1), 0);
    assert_int_equal(auth_role_parse("instructor"), AUTH_ROLE_INSTRUCTOR);
    assert_int_equal(auth_role_parse("member"), AUTH_ROLE_MEMBER);
    assert_int_equal(auth_role_parse("observer"), AUTH_ROLE_OBSERVER);
    assert_int_equal(auth_role_parse("admin"), AUTH_ROLE_NONE);
    assert_int_equal(auth_role_parse(NULL), AUTH_ROLE_NONE);
    assert_string_equal(auth_role_name(AUTH_ROLE_OBSERVER), "observer");
    assert_null(auth_role_name(AUTH_ROLE_NONE));
}

/* ---- cookies and tokens ------------------------------------------------- */

static void test_cookies(void **state)
{
    const char *tok = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcd";
    char buf[256], tiny[40];
    (void)state;

    assert_int_equal(strlen(tok), 42);
    assert_int_equal(auth_set_cookie(tok, 10, 0, buf, sizeof(buf)), -1);
    tok = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcde";
    assert_int_equal(auth_set_cookie(tok, 43200, 0, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "cyrange_session=AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcde; "
                             "Path=/; Max-Age=43200; HttpOnly; SameSite=Strict");
    assert_int_equal(auth_set_cookie(tok, 60, 1, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "cyrange_session=AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcde; "
                             "Path=/; Max-Age=60; HttpOnly; SameSite=Strict; Secure");
    assert_int_equal(auth_set_cookie(tok, 60, 0, tiny, sizeof(tiny)), -1);
    /* No header injection through the token. */
    assert_int_equal(auth_set_cookie("AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_ab\r\nX",
                                     60, 0, buf, sizeof(buf)), -1);
    assert_int_equal(auth_set_cookie("AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abc;", 60, 0, buf,
                                     sizeof(buf)), -1);
    assert_int_equal(auth_set_cookie(NULL, 60, 0, buf, sizeof(buf)), -1);
    assert_int_equal(auth_clear_cookie(0, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "cyrange_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict");
    assert_int_equal(auth_clear_cookie(1, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "cyrange_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict; "
                             "Secure");
    assert_int_equal(auth_clear_cookie(1, tiny, 10), -1);
}

/* Whether `needle` occurs in the file's bytes. */
static int file_contains(const char *path, const char *needle)
{
    size_t len = 0, n = strlen(needle);
    char *buf = NULL;
    FILE *fp = fopen(path, "rb");
    int found = 0;
    if (fp == NULL)
        return 0;
    fseek(fp, 0, SEEK_END);
    len = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    buf = malloc(len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, len, fp), len);
    fclose(fp);
    for (size_t i = 0; i + n <= len && !found; i++)
        found = memcmp(buf + i, needle, n) == 0;
    free(buf);
    return found;
}

static void test_token_hash_not_token(void **state)
{
    fx *f = *state;
    lbox b = { 0 };
    char th[AUTH_TOKEN_HASH_LEN + 1], th2[AUTH_TOKEN_HASH_LEN + 1], wal[160];

    add_user(f, "nina", "observer", 0, "nina-password");
    login(f, &b, "nina", "nina-password", NULL);
    assert_int_equal(b.rc, 0);
    auth_token_hash(b.token, th);
    assert_int_equal(strlen(th), AUTH_TOKEN_HASH_LEN);
    assert_string_not_equal(th, b.token);
    for (int i = 0; i < AUTH_TOKEN_HASH_LEN; i++)
        assert_non_null(strchr("0123456789abcdef", th[i]));
    auth_token_hash(b.token, th2);
    assert_string_equal(th, th2);
    /* BLAKE2b-256 of "", the known vector. */
    auth_token_hash("", th2);
    assert_string_equal(th2, "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8");

    /* Everything on disk: the hash is there, the token is not. */
    close_store(f);
    snprintf(wal, sizeof(wal), "%s-wal", f->path);
    assert_true(file_contains(f->path, th) || file_contains(wal, th));
    assert_false(file_contains(f->path, b.token));
    assert_false(file_contains(wal, b.token));
    assert_false(file_contains(f->path, "nina-password"));
    assert_false(file_contains(wal, "nina-password"));
    open_store(f);
    auth_free(f->a);
    f->a = NULL;
    new_auth(f, NULL);
    lbox_clear(&b);
}

static void test_rehash_on_login(void **state)
{
    fx *f = *state;
    lbox b = { 0 };
    auth_opts o;
    json_t *u;
    const char *h;
    const auth_kdf stronger = { 3, 1u << 20 };

    add_user(f, "otto", "member", 1, "otto-password");
    memset(&o, 0, sizeof(o));
    new_auth(f, &o);
    /* The server now asks for a higher cost: the next login upgrades the
     * stored hash, and the password still works. */
    {
        char err[256];
        o.kdf = stronger;
        o.now_ms = fake_now;
        o.now_opaque = f;
        auth_free(f->a);
        f->a = auth_new(&f->loop, f->st, &o, err, sizeof(err));
        assert_non_null(f->a);
    }
    login(f, &b, "otto", "otto-password", NULL);
    assert_int_equal(b.rc, 0);
    auth_free(f->a);
    f->a = NULL;
    close_store(f); /* every queued write is durable */
    open_store(f);
    u = store_user_get_by_name(f->st, "otto", NULL);
    assert_non_null(u);
    h = json_string_value(json_object_get(u, "pw_hash"));
    assert_int_equal(auth_needs_rehash(h, &stronger), 0);
    assert_int_equal(auth_verify_password(h, "otto-password"), 0);
    json_decref(u);
    new_auth(f, NULL);
    lbox_clear(&b);
}

/* ---- provisioning ------------------------------------------------------- */

static void test_provision(void **state)
{
    fx *f = *state;
    lbox b = { 0 }, l = { 0 };
    json_t *all, *u;
    size_t i;
    char t02pw[AUTH_GENPW_LEN + 1] = "";

    add_user(f, "t01-2", "member", 1, "already-there");
    assert_int_equal(auth_provision_team_users(f->a, 2, 2, on_auth, &b), 0);
    assert_int_equal(b.calls, 0);
    run_until(f, &b.calls, 1);
    if (b.rc != 0)
        fail_msg("provision: %s", b.msg);
    assert_int_equal(json_array_size(b.users), 5);
    static const char *names[] = { "instructor", "t01-1", "t01-2", "t02-1", "t02-2" };
    static const int teams[] = { 0, 1, 1, 2, 2 };
    json_array_foreach(b.users, i, u) {
        const char *pw = json_string_value(json_object_get(u, "password"));
        assert_string_equal(json_string_value(json_object_get(u, "name")), names[i]);
        assert_string_equal(json_string_value(json_object_get(u, "role")),
                            i == 0 ? "instructor" : "member");
        if (teams[i])
            assert_int_equal(json_integer_value(json_object_get(u, "team")), teams[i]);
        else
            assert_true(json_is_null(json_object_get(u, "team")));
        if (i == 2) {
            assert_null(pw);
            assert_true(json_is_true(json_object_get(u, "existing")));
        } else {
            assert_non_null(pw);
            assert_int_equal(strlen(pw), AUTH_GENPW_LEN);
            assert_null(json_object_get(u, "existing"));
        }
        if (i == 3)
            snprintf(t02pw, sizeof(t02pw), "%s", pw);
    }
    /* The shown password logs in as member of team 2. */
    login(f, &l, "t02-1", t02pw, NULL);
    assert_int_equal(l.rc, 0);
    assert_int_equal(json_integer_value(json_object_get(l.user, "team")), 2);
    /* The existing account kept its password. */
    login(f, &l, "t01-2", "already-there", NULL);
    assert_int_equal(l.rc, 0);

    /* Twice: nothing new, no password shown. */
    lbox_clear(&b);
    assert_int_equal(auth_provision_team_users(f->a, 2, 2, on_auth, &b), 0);
    run_until(f, &b.calls, 1);
    assert_int_equal(b.rc, 0);
    /* The existing instructor is listed too, so the caller can name it. */
    assert_int_equal(json_array_size(b.users), 5);
    json_array_foreach(b.users, i, u) {
        assert_null(json_object_get(u, "password"));
        assert_true(json_is_true(json_object_get(u, "existing")));
    }
    assert_string_equal(json_string_value(json_object_get(json_array_get(b.users, 0), "role")),
                        "instructor");
    all = store_users_list(f->st, NULL);
    assert_int_equal(json_array_size(all), 5);
    json_decref(all);

    /* A third team adds only its members; bad sizes are refused. */
    lbox_clear(&b);
    assert_int_equal(auth_provision_team_users(f->a, 3, 1, on_auth, &b), 0);
    run_until(f, &b.calls, 1);
    assert_int_equal(b.rc, 0);
    all = store_users_list(f->st, NULL);
    assert_int_equal(json_array_size(all), 6);
    json_decref(all);
    lbox_clear(&b);
    assert_int_equal(auth_provision_team_users(f->a, 0, 2, on_auth, &b), 0);
    run_until(f, &b.calls, 1);
    assert_int_equal(b.code, AUTH_EINVAL);
    lbox_clear(&b);
    assert_int_equal(auth_provision_team_users(f->a, 2, 21, on_auth, &b), 0);
    run_until(f, &b.calls, 1);
    assert_int_equal(b.code, AUTH_EINVAL);
    lbox_clear(&b);
    lbox_clear(&l);
}

/* auth_free with a login in flight: the callback still runs, once. */
static void test_free_while_pending(void **state)
{
    fx *f = *state;
    lbox b = { 0 };
    add_user(f, "pete", "member", 1, "pete-password");
    assert_int_equal(auth_login_async(f->a, "pete", "pete-password", NULL, on_auth, &b), 0);
    auth_free(f->a);
    f->a = NULL;
    run_until(f, &b.calls, 1);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.code, AUTH_ECLOSED);
    new_auth(f, NULL);
    lbox_clear(&b);
}

/* ---- the CLI ------------------------------------------------------------ */

typedef struct out {
    int rc;
    char text[16384];
    char errtext[4096];
} out;

static void slurp(const char *path, char *buf, size_t len)
{
    FILE *fp = fopen(path, "rb");
    size_t n = 0;
    buf[0] = '\0';
    if (fp) {
        n = fread(buf, 1, len - 1, fp);
        fclose(fp);
    }
    buf[n] = '\0';
}

/* Runs cli_users with argv, `input` on stdin (NULL: empty), capturing
 * stdout and stderr. */
static void run_cli(fx *f, out *o, const char *input, ...)
{
    char *argv[16], path_in[160], path_out[160], path_err[160];
    int argc = 0, fd, s0, s1, s2;
    va_list ap;
    FILE *fp;

    va_start(ap, input);
    for (char *a; (a = va_arg(ap, char *)) != NULL && argc < 15;)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    snprintf(path_in, sizeof(path_in), "%s/stdin", f->dir);
    snprintf(path_out, sizeof(path_out), "%s/stdout", f->dir);
    snprintf(path_err, sizeof(path_err), "%s/stderr", f->dir);
    fp = fopen(path_in, "wb");
    assert_non_null(fp);
    if (input)
        fputs(input, fp);
    fclose(fp);

    fflush(stdout);
    fflush(stderr);
    s0 = dup(0);
    s1 = dup(1);
    s2 = dup(2);
    fd = open(path_in, O_RDONLY);
    dup2(fd, 0);
    close(fd);
    fd = open(path_out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 1);
    close(fd);
    fd = open(path_err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    close(fd);
    clearerr(stdin);
    o->rc = cli_users(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(s0, 0);
    dup2(s1, 1);
    dup2(s2, 2);
    close(s0);
    close(s1);
    close(s2);
    clearerr(stdin);
    slurp(path_out, o->text, sizeof(o->text));
    slurp(path_err, o->errtext, sizeof(o->errtext));
}

static void test_cli(void **state)
{
    fx *f = *state;
    out *o = calloc(1, sizeof(*o));
    char pw[64] = "", *at;
    json_t *list, *u;
    json_error_t je;
    size_t i;
    int found = 0;

    assert_non_null(o);
    /* The CLI opens the database itself. */
    auth_free(f->a);
    f->a = NULL;
    close_store(f);
    setenv("CYRANGE_STATE_DIR", f->dir, 1);
    setenv("CYRANGE_AUTH_KDF", "min", 1);

    run_cli(f, o, NULL, "users", "add", "alice", "--role", "member", "--team", "2", NULL);
    if (o->rc != EXIT_OK)
        fail_msg("users add: %s", o->errtext);
    assert_non_null(strstr(o->text, "created alice (member of team 2)"));
    at = strstr(o->text, "password (shown once): ");
    assert_non_null(at);
    snprintf(pw, sizeof(pw), "%.*s", AUTH_GENPW_LEN, at + strlen("password (shown once): "));
    assert_int_equal(strlen(pw), AUTH_GENPW_LEN);

    run_cli(f, o, NULL, "users", "add", "alice", "--role", "member", "--team", "2", NULL);
    assert_int_equal(o->rc, EXIT_INVALID);
    assert_non_null(strstr(o->errtext, "cyrange users: user 'alice' exists"));
    run_cli(f, o, NULL, "users", "add", "bob", "--role", "member", NULL);
    assert_int_equal(o->rc, EXIT_USAGE);
    assert_non_null(strstr(o->errtext, "a member needs --team"));
    run_cli(f, o, NULL, "users", "add", "olga", "--role", "observer", "--team", "1", NULL);
    assert_int_equal(o->rc, EXIT_USAGE);
    run_cli(f, o, NULL, "users", "add", "x y", "--role", "observer", NULL);
    assert_int_equal(o->rc, EXIT_USAGE);
    run_cli(f, o, NULL, "users", "add", "zed", "--role", "admin", NULL);
    assert_int_equal(o->rc, EXIT_USAGE);
    run_cli(f, o, "short\n", "users", "add", "olga", "--role", "observer", "--password-stdin",
            NULL);
    assert_int_equal(o->rc, EXIT_INVALID);
    assert_non_null(strstr(o->errtext, "8..256 bytes"));
    run_cli(f, o, "olga-observes\n", "users", "add", "olga", "--role", "observer",
            "--password-stdin", NULL);
    if (o->rc != EXIT_OK)
        fail_msg("users add olga: %s", o->errtext);
    assert_null(strstr(o->text, "password"));
    assert_null(strstr(o->text, "olga-observes"));

    /* list never shows hashes. */
    run_cli(f, o, NULL, "users", "list", "--json", NULL);
    assert_int_equal(o->rc, EXIT_OK);
    assert_null(strstr(o->text, "argon2"));
    list = json_loads(o->text, 0, &je);
    assert_non_null(list);
    assert_int_equal(json_array_size(list), 2);
    json_array_foreach(list, i, u) {
        assert_null(json_object_get(u, "pw_hash"));
        if (strcmp(json_string_value(json_object_get(u, "name")), "alice") == 0) {
            found = 1;
            assert_int_equal(json_integer_value(json_object_get(u, "team")), 2);
        }
    }
    assert_true(found);
    json_decref(list);
    run_cli(f, o, NULL, "users", "list", NULL);
    assert_int_equal(o->rc, EXIT_OK);
    assert_non_null(strstr(o->text, "alice"));
    assert_non_null(strstr(o->text, "observer"));
    assert_null(strstr(o->text, "argon2"));

    /* The printed password works; passwd replaces it. */
    open_store(f);
    new_auth(f, NULL);
    {
        lbox b = { 0 };
        login(f, &b, "alice", pw, NULL);
        assert_int_equal(b.rc, 0);
        login(f, &b, "olga", "olga-observes", NULL);
        assert_int_equal(b.rc, 0);
        lbox_clear(&b);
    }
    auth_free(f->a);
    f->a = NULL;
    close_store(f);

    run_cli(f, o, "a new secret for alice\r\n", "users", "passwd", "alice",
            "--password-stdin", NULL);
    if (o->rc != EXIT_OK)
        fail_msg("users passwd: %s", o->errtext);
    assert_non_null(strstr(o->text, "password of alice changed"));
    run_cli(f, o, NULL, "users", "passwd", "nobody", NULL);
    assert_int_equal(o->rc, EXIT_INVALID);
    assert_non_null(strstr(o->errtext, "cyrange users: no user 'nobody'"));
    run_cli(f, o, NULL, "users", "disable", "olga", NULL);
    assert_int_equal(o->rc, EXIT_OK);
    run_cli(f, o, NULL, "users", "disable", "ghost", NULL);
    assert_int_equal(o->rc, EXIT_INVALID);
    assert_non_null(strstr(o->errtext, "cyrange users: no user 'ghost'"));

    open_store(f);
    new_auth(f, NULL);
    {
        lbox b = { 0 };
        login(f, &b, "alice", pw, NULL);
        assert_int_equal(b.code, AUTH_EBADCRED);
        login(f, &b, "alice", "a new secret for alice", NULL);
        assert_int_equal(b.rc, 0);
        login(f, &b, "olga", "olga-observes", NULL);
        assert_int_equal(b.code, AUTH_EDISABLED);
        lbox_clear(&b);
    }
    auth_free(f->a);
    f->a = NULL;
    close_store(f);

    run_cli(f, o, NULL, "users", "enable", "olga", NULL);
    assert_int_equal(o->rc, EXIT_OK);
    run_cli(f, o, NULL, "users", "list", NULL);
    assert_null(strstr(o->text, "disabled"));

    /* provision prints the new credentials once. */
    run_cli(f, o, NULL, "users", "provision", "--teams", "2", "--members", "1", NULL);
    if (o->rc != EXIT_OK)
        fail_msg("users provision: %s", o->errtext);
    assert_non_null(strstr(o->text, "instructor"));
    assert_non_null(strstr(o->text, "t02-1"));
    assert_non_null(strstr(o->text, "3 accounts created"));
    run_cli(f, o, NULL, "users", "provision", "--teams", "2", "--members", "1", NULL);
    assert_int_equal(o->rc, EXIT_OK);
    assert_non_null(strstr(o->text, "(exists, unchanged)"));
    assert_non_null(strstr(o->text, "0 accounts created"));

    /* Help for every command, usage errors. */
    static const char *subs[] = { "add", "list", "passwd", "disable", "enable", "provision" };
    for (size_t k = 0; k < 6; k++) {
        run_cli(f, o, NULL, "users", subs[k], "--help", NULL);
        assert_int_equal(o->rc, EXIT_OK);
        assert_non_null(strstr(o->text, "usage: cyrange users"));
    }
    run_cli(f, o, NULL, "users", "--help", NULL);
    assert_int_equal(o->rc, EXIT_OK);
    run_cli(f, o, NULL, "users", NULL);
    assert_int_equal(o->rc, EXIT_USAGE);
    run_cli(f, o, NULL, "users", "frobnicate", NULL);
    assert_int_equal(o->rc, EXIT_USAGE);
    run_cli(f, o, NULL, "users", "provision", NULL);
    assert_int_equal(o->rc, EXIT_USAGE);

    unsetenv("CYRANGE_STATE_DIR");
    unsetenv("CYRANGE_AUTH_KDF");
    open_store(f);
    new_auth(f, NULL);
    free(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_verify),
        cmocka_unit_test(test_hash_default_cost),
        cmocka_unit_test(test_generate_password),
        cmocka_unit_test(test_matrix),
        cmocka_unit_test(test_cookies),
        cmocka_unit_test_setup_teardown(test_login_session, setup, teardown),
        cmocka_unit_test_setup_teardown(test_observer_instructor_principal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_credentials, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disabled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit_address, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_table_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired_session, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csrf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_hash_not_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rehash_on_login, setup, teardown),
        cmocka_unit_test_setup_teardown(test_provision, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_while_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli, setup, teardown),
    };
    /* Unbuffered, so that each CLI run reads its own stdin file. */
    setvbuf(stdin, NULL, _IONBF, 0);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
