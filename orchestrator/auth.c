/* auth — roles, argon2id passwords, sessions, CSRF and login rate limiting
 * (see auth.h).  Everything slow (argon2id) runs on the libuv thread pool;
 * the loop only looks users up, keeps the rate table and queues writes. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"

#define RATE_KEY_MAX (2 + AUTH_NAME_MAX + 1)
#define TOKEN_BYTES 32
#define PROV_MAX_TEAMS 99
#define PROV_MAX_MEMBERS 20

/* One rate-limited key: "n:NAME" or "a:ADDRESS". */
typedef struct rate_entry {
    char key[RATE_KEY_MAX];
    int used;
    int failures;  /* inside the current window */
    int inflight;  /* logins started and not yet judged */
    int lockouts;  /* how many times locked: the back-off exponent */
    int64_t window_start;
    int64_t lock_until;
    int64_t last_ms;
} rate_entry;

struct auth {
    uv_loop_t *loop;
    store *st;
    auth_kdf kdf;
    int64_t ttl_ms;
    int name_max, addr_max;
    int64_t window_ms, lock_ms, lock_max_ms;
    int64_t (*now_fn)(void *opaque);
    void *now_opaque;
    rate_entry *rate;
    int nrate;
    int verifying; /* logins on the thread pool now */
    int max_verifying;
    /* An unknown user's password is verified against this hash, so that
     * answering "bad credentials" costs the same time either way. */
    char dummy_hash[AUTH_HASH_MAX];
    int pending; /* operations whose callbacks have not run yet */
    int closing;
};

enum { RATE_FAIL, RATE_OK, RATE_NEUTRAL };

/* ---- small helpers ------------------------------------------------------ */

static void set_err(auth_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(auth_err *e, int code, const char *fmt, ...)
{
    va_list ap;
    if (e == NULL)
        return;
    e->code = code;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
}

static int64_t real_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t auth_now(const auth *a)
{
    return a->now_fn ? a->now_fn(a->now_opaque) : real_now_ms();
}

static void auth_destroy(auth *a)
{
    if (a->rate)
        sodium_memzero(a->rate, sizeof(*a->rate) * (size_t)a->nrate);
    free(a->rate);
    free(a);
}

/* One pending operation is over; the last one frees a closing auth. */
static void auth_unref(auth *a)
{
    a->pending--;
    if (a->closing && a->pending == 0)
        auth_destroy(a);
}

static void kdf_resolve(const auth_kdf *in, auth_kdf *out)
{
    out->opslimit = in && in->opslimit ? in->opslimit : AUTH_OPSLIMIT;
    out->memlimit = in && in->memlimit ? in->memlimit : AUTH_MEMLIMIT;
}

static void random_token(char out[AUTH_TOKEN_LEN + 1])
{
    unsigned char bin[TOKEN_BYTES];
    randombytes_buf(bin, sizeof(bin));
    sodium_bin2base64(out, AUTH_TOKEN_LEN + 1, bin, sizeof(bin),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(bin, sizeof(bin));
}

static int token_wellformed(const char *t, size_t len)
{
    if (len != AUTH_TOKEN_LEN)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = t[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

/* The first well-formed cyrange_session value of a Cookie header, copied
 * into out; 0, or -1 when there is none. */
static int cookie_token(const char *hdr, char out[AUTH_TOKEN_LEN + 1])
{
    static const char name[] = AUTH_COOKIE_NAME;
    const size_t nlen = sizeof(name) - 1;
    const char *p = hdr;

    if (hdr == NULL)
        return -1;
    while (*p) {
        const char *end, *eq, *v, *ve;
        while (*p == ' ' || *p == '\t' || *p == ';')
            p++;
        end = strchr(p, ';');
        if (end == NULL)
            end = p + strlen(p);
        eq = memchr(p, '=', (size_t)(end - p));
        if (eq && (size_t)(eq - p) == nlen && memcmp(p, name, nlen) == 0) {
            v = eq + 1;
            ve = end;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            if (ve - v >= 2 && v[0] == '"' && ve[-1] == '"') {
                v++;
                ve--;
            }
            if (token_wellformed(v, (size_t)(ve - v))) {
                memcpy(out, v, AUTH_TOKEN_LEN);
                out[AUTH_TOKEN_LEN] = '\0';
                return 0;
            }
        }
        p = end;
    }
    return -1;
}

/* ---- deferred answers --------------------------------------------------- */

/* Answers that are known at once still reach the caller later, from the
 * loop, like every other answer: a no-op job on the thread pool is the
 * simplest way there without a handle to close. */
typedef struct deferred {
    uv_work_t work;
    auth *a;
    auth_cb cb;
    void *opaque;
    auth_result res;
} deferred;

static void deferred_work(uv_work_t *w)
{
    (void)w;
}

static void deferred_after(uv_work_t *w, int status)
{
    deferred *d = w->data;
    (void)status;
    d->cb(&d->res, d->opaque);
    auth_unref(d->a);
    free(d);
}

static int defer_error(auth *a, auth_cb cb, void *opaque, int code, int retry_after_s,
                       const char *msg)
{
    deferred *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return -1;
    d->a = a;
    d->cb = cb;
    d->opaque = opaque;
    d->res.rc = -1;
    d->res.retry_after_s = retry_after_s;
    set_err(&d->res.err, code, "%s", msg);
    d->work.data = d;
    if (uv_queue_work(a->loop, &d->work, deferred_work, deferred_after) != 0) {
        free(d);
        return -1;
    }
    a->pending++;
    return 0;
}

/* ---- life cycle --------------------------------------------------------- */

auth *auth_new(uv_loop_t *loop, store *st, const auth_opts *opts, char *err, size_t errlen)
{
    static const auth_opts zero;
    auth *a = NULL;
    char pw[AUTH_GENPW_LEN + 1];

    if (opts == NULL)
        opts = &zero;
    if (loop == NULL || st == NULL) {
        snprintf(err, errlen, "auth: a loop and a store are required");
        return NULL;
    }
    if (sodium_init() < 0) {
        snprintf(err, errlen, "auth: libsodium failed to initialise");
        return NULL;
    }
    a = calloc(1, sizeof(*a));
    if (a == NULL)
        goto nomem;
    a->loop = loop;
    a->st = st;
    kdf_resolve(&opts->kdf, &a->kdf);
    a->ttl_ms = opts->session_ttl_ms > 0 ? opts->session_ttl_ms : AUTH_SESSION_TTL_MS;
    a->name_max = opts->name_max_failures > 0 ? opts->name_max_failures : 5;
    a->addr_max = opts->addr_max_failures > 0 ? opts->addr_max_failures : 20;
    a->window_ms = opts->window_ms > 0 ? opts->window_ms : 5 * 60 * 1000;
    a->lock_ms = opts->lock_ms > 0 ? opts->lock_ms : 60 * 1000;
    a->lock_max_ms = opts->lock_max_ms > 0 ? opts->lock_max_ms : 3600 * 1000;
    if (a->lock_max_ms < a->lock_ms)
        a->lock_max_ms = a->lock_ms;
    a->nrate = opts->rate_entries > 0 ? opts->rate_entries : 4096;
    a->max_verifying = opts->max_logins > 0 ? opts->max_logins : 64;
    a->now_fn = opts->now_ms;
    a->now_opaque = opts->now_opaque;
    a->rate = calloc((size_t)a->nrate, sizeof(*a->rate));
    if (a->rate == NULL)
        goto nomem;
    auth_generate_password(pw, sizeof(pw));
    if (auth_hash_password_kdf(&a->kdf, pw, a->dummy_hash, err, errlen) < 0) {
        sodium_memzero(pw, sizeof(pw));
        auth_destroy(a);
        return NULL;
    }
    sodium_memzero(pw, sizeof(pw));
    return a;
nomem:
    snprintf(err, errlen, "auth: out of memory");
    if (a)
        auth_destroy(a);
    return NULL;
}

void auth_free(auth *a)
{
    if (a == NULL)
        return;
    a->closing = 1;
    if (a->pending == 0)
        auth_destroy(a);
}

/* ---- passwords ---------------------------------------------------------- */

int auth_hash_password_kdf(const auth_kdf *kdf, const char *pw, char out[AUTH_HASH_MAX],
                           char *err, size_t errlen)
{
    auth_kdf k;
    kdf_resolve(kdf, &k);
    if (pw == NULL) {
        snprintf(err, errlen, "no password");
        return -1;
    }
    if (sodium_init() < 0) {
        snprintf(err, errlen, "libsodium failed to initialise");
        return -1;
    }
    if (crypto_pwhash_str_alg(out, pw, strlen(pw), k.opslimit, k.memlimit,
                              crypto_pwhash_ALG_ARGON2ID13) != 0) {
        snprintf(err, errlen, "argon2id failed (out of memory? memlimit %zu bytes)",
                 k.memlimit);
        return -1;
    }
    return 0;
}

int auth_hash_password(const char *pw, char out[AUTH_HASH_MAX], char *err, size_t errlen)
{
    return auth_hash_password_kdf(NULL, pw, out, err, errlen);
}

int auth_verify_password(const char *hash, const char *pw)
{
    if (hash == NULL || pw == NULL || sodium_init() < 0)
        return -1;
    return crypto_pwhash_str_verify(hash, pw, strlen(pw)) == 0 ? 0 : -1;
}

int auth_needs_rehash(const char *hash, const auth_kdf *kdf)
{
    auth_kdf k;
    int r;
    if (hash == NULL || sodium_init() < 0)
        return -1;
    kdf_resolve(kdf, &k);
    /* libsodium judges an argon2i string by argon2i's own rules: only
     * argon2id is current here. */
    if (strncmp(hash, "$argon2id$", 10) != 0)
        return strncmp(hash, "$argon2i$", 9) == 0 ? 1 : -1;
    r = crypto_pwhash_str_needs_rehash(hash, k.opslimit, k.memlimit);
    return r < 0 ? -1 : r;
}

int auth_generate_password(char *buf, size_t len)
{
    /* 32 symbols, so one random byte's low 5 bits pick one uniformly. */
    static const char alphabet[] = "abcdefghijkmnpqrstuvwxyz23456789";
    unsigned char r[16];
    size_t o = 0;
    if (buf == NULL || len <= AUTH_GENPW_LEN)
        return -1;
    if (sodium_init() < 0)
        return -1;
    randombytes_buf(r, sizeof(r));
    for (size_t i = 0; i < sizeof(r); i++) {
        if (i > 0 && i % 4 == 0)
            buf[o++] = '-';
        buf[o++] = alphabet[r[i] & 31];
    }
    buf[o] = '\0';
    sodium_memzero(r, sizeof(r));
    return 0;
}

void auth_token_hash(const char *token, char out[AUTH_TOKEN_HASH_LEN + 1])
{
    unsigned char h[32];
    if (token == NULL)
        token = "";
    crypto_generichash(h, sizeof(h), (const unsigned char *)token, strlen(token), NULL, 0);
    sodium_bin2hex(out, AUTH_TOKEN_HASH_LEN + 1, h, sizeof(h));
}

/* ---- rate limiting ------------------------------------------------------ */

static void rate_key(char out[RATE_KEY_MAX], char kind, const char *s)
{
    snprintf(out, RATE_KEY_MAX, "%c:%s", kind, s);
}

/* Counters of a key that has been quiet for longer than any lockout are
 * forgotten, so old lockouts do not lengthen new ones forever. */
static void rate_age(const auth *a, rate_entry *e, int64_t now)
{
    if (e->inflight == 0 && e->lock_until <= now &&
        now - e->last_ms > a->lock_max_ms + a->window_ms) {
        e->failures = 0;
        e->lockouts = 0;
    }
    if (now - e->window_start > a->window_ms) {
        e->failures = 0;
        e->window_start = now;
    }
}

static rate_entry *rate_find(auth *a, const char *key, int create, int64_t now)
{
    rate_entry *victim = NULL;
    int vclass = 3;
    for (int i = 0; i < a->nrate; i++) {
        rate_entry *e = &a->rate[i];
        int cls;
        if (e->used && strcmp(e->key, key) == 0) {
            rate_age(a, e, now);
            return e;
        }
        if (!create)
            continue;
        /* Eviction preference: a free slot, then an idle unlocked key,
         * then an idle locked key, then the oldest of all. */
        cls = !e->used ? 0 : e->inflight ? 3 : e->lock_until > now ? 2 : 1;
        if (victim == NULL || cls < vclass || (cls == vclass && e->last_ms < victim->last_ms)) {
            victim = e;
            vclass = cls;
        }
    }
    if (!create || victim == NULL)
        return NULL;
    memset(victim, 0, sizeof(*victim));
    victim->used = 1;
    snprintf(victim->key, sizeof(victim->key), "%s", key);
    victim->window_start = now;
    victim->last_ms = now;
    return victim;
}

/* 0 when the key may try now; else -1 and *retry_after in seconds. */
static int rate_entry_check(const auth *a, rate_entry *e, int max, int64_t now,
                            int *retry_after)
{
    int64_t wait = 0;
    if (e == NULL)
        return 0;
    rate_age(a, e, now);
    if (e->lock_until > now)
        wait = e->lock_until - now;
    else if (e->failures + e->inflight >= max)
        wait = 1000; /* attempts of this window are all in flight */
    if (wait == 0)
        return 0;
    if (retry_after) {
        int s = (int)((wait + 999) / 1000);
        if (s > *retry_after)
            *retry_after = s;
    }
    return -1;
}

int auth_rate_check(auth *a, const char *name, const char *remote_addr, long long now_ms,
                    int *retry_after_s)
{
    char key[RATE_KEY_MAX];
    int ra = 0, rc = 0;
    if (a == NULL)
        return -1;
    if (name) {
        rate_key(key, 'n', name);
        if (rate_entry_check(a, rate_find(a, key, 0, now_ms), a->name_max, now_ms, &ra) < 0)
            rc = -1;
    }
    if (remote_addr) {
        rate_key(key, 'a', remote_addr);
        if (rate_entry_check(a, rate_find(a, key, 0, now_ms), a->addr_max, now_ms, &ra) < 0)
            rc = -1;
    }
    if (retry_after_s)
        *retry_after_s = rc < 0 ? ra : 0;
    return rc;
}

static void rate_begin(auth *a, const char *key, int64_t now)
{
    rate_entry *e = rate_find(a, key, 1, now);
    if (e) {
        e->inflight++;
        e->last_ms = now;
    }
}

static void rate_end(auth *a, const char *key, int max, int outcome, int is_name, int64_t now)
{
    rate_entry *e = rate_find(a, key, 0, now);
    if (e == NULL)
        return; /* evicted meanwhile */
    if (e->inflight > 0)
        e->inflight--;
    e->last_ms = now;
    if (outcome == RATE_OK) {
        /* The account's record goes; the address keeps its lockout level
         * so that one good account cannot launder a guessing address. */
        e->failures = 0;
        if (is_name) {
            e->lockouts = 0;
            e->lock_until = 0;
        }
        return;
    }
    if (outcome != RATE_FAIL)
        return;
    e->failures++;
    if (e->failures >= max) {
        int64_t lock = a->lock_ms;
        for (int i = 0; i < e->lockouts && lock < a->lock_max_ms; i++)
            lock *= 2;
        if (lock > a->lock_max_ms)
            lock = a->lock_max_ms;
        e->lock_until = now + lock;
        e->lockouts++;
        e->failures = 0;
        e->window_start = now;
    }
}

/* ---- login -------------------------------------------------------------- */

typedef struct login {
    uv_work_t work;
    auth *a;
    auth_cb cb;
    void *opaque;
    char name_key[RATE_KEY_MAX];
    char addr_key[RATE_KEY_MAX];
    int has_addr;
    char *pw; /* a copy, wiped when verified */
    char hash[AUTH_HASH_MAX];
    char newhash[AUTH_HASH_MAX];
    int rehashed;
    int unknown; /* verify against the dummy hash and fail */
    json_t *user;
    int64_t user_id;
    int disabled;
    int verified;
    char token[AUTH_TOKEN_LEN + 1];
    char csrf[AUTH_TOKEN_LEN + 1];
    char token_hash[AUTH_TOKEN_HASH_LEN + 1];
    int64_t expires_ms;
} login;

static void login_finish(login *l, int code, const char *msg)
{
    auth_result res;
    auth *a = l->a;
    memset(&res, 0, sizeof(res));
    if (code == AUTH_OK) {
        res.user = l->user;
        res.token = l->token;
        res.csrf = l->csrf;
        res.expires_ms = l->expires_ms;
    } else {
        res.rc = -1;
        set_err(&res.err, code, "%s", msg);
    }
    l->cb(&res, l->opaque);
    sodium_memzero(l->token, sizeof(l->token));
    json_decref(l->user);
    free(l);
    auth_unref(a);
}

static void on_aux_done(const store_result *res, void *opaque)
{
    (void)res;
    auth_unref(opaque);
}

static void on_session_added(const store_result *res, void *opaque)
{
    login *l = opaque;
    char msg[300];
    if (res->rc != 0) {
        snprintf(msg, sizeof(msg), "session not stored: %s", res->err.msg);
        login_finish(l, AUTH_EIO, msg);
        return;
    }
    login_finish(l, AUTH_OK, "");
}

static void login_work(uv_work_t *w)
{
    login *l = w->data;
    const auth *a = l->a;
    int ok = crypto_pwhash_str_verify(l->hash, l->pw, strlen(l->pw)) == 0;
    if (l->unknown)
        ok = 0;
    l->verified = ok;
    if (ok && !l->disabled && auth_needs_rehash(l->hash, &a->kdf) == 1) {
        char err[128];
        l->rehashed = auth_hash_password_kdf(&a->kdf, l->pw, l->newhash, err,
                                             sizeof(err)) == 0;
    }
}

static void login_after(uv_work_t *w, int status)
{
    login *l = w->data;
    auth *a = l->a;
    int64_t now = auth_now(a);

    sodium_memzero(l->pw, strlen(l->pw));
    free(l->pw);
    l->pw = NULL;
    a->verifying--;
    if (status != 0 || a->closing) {
        login_finish(l, AUTH_ECLOSED, "the server is shutting down");
        return;
    }
    if (!l->verified || l->disabled) {
        int outcome = l->verified ? RATE_NEUTRAL : RATE_FAIL;
        rate_end(a, l->name_key, a->name_max, outcome, 1, now);
        if (l->has_addr)
            rate_end(a, l->addr_key, a->addr_max, outcome, 0, now);
        if (!l->verified)
            login_finish(l, AUTH_EBADCRED, "wrong user name or password");
        else
            login_finish(l, AUTH_EDISABLED, "this account is disabled");
        return;
    }
    rate_end(a, l->name_key, a->name_max, RATE_OK, 1, now);
    if (l->has_addr)
        rate_end(a, l->addr_key, a->addr_max, RATE_OK, 0, now);
    /* The cost changed since this hash was made: keep the new one. */
    if (l->rehashed &&
        store_user_set_password(a->st, l->user_id, l->newhash, on_aux_done, a) == 0)
        a->pending++;
    /* Expired sessions go whenever someone logs in: no timer needed. */
    if (store_session_purge_expired(a->st, now, on_aux_done, a) == 0)
        a->pending++;
    random_token(l->token);
    random_token(l->csrf);
    auth_token_hash(l->token, l->token_hash);
    l->expires_ms = now + a->ttl_ms;
    if (store_session_add(a->st, l->token_hash, l->user_id, now, l->expires_ms, l->csrf,
                          on_session_added, l) < 0)
        login_finish(l, AUTH_EIO, "the store is closing");
}

int auth_login_async(auth *a, const char *name, const char *password,
                     const char *remote_addr, auth_cb cb, void *opaque)
{
    login *l = NULL;
    int64_t now;
    int retry = 0;
    size_t nlen = name ? strlen(name) : 0;
    size_t plen = password ? strlen(password) : 0;
    store_err se = { 0, "" };

    if (a == NULL || cb == NULL)
        return -1;
    now = auth_now(a);
    if (auth_rate_check(a, name ? name : "", remote_addr, now, &retry) < 0)
        return defer_error(a, cb, opaque, AUTH_ERATE, retry,
                           "too many failed logins: try again later");
    /* A flood of logins must not queue without bound behind argon2id. */
    if (a->verifying >= a->max_verifying)
        return defer_error(a, cb, opaque, AUTH_ERATE, 1, "too many logins at once: try again");
    l = calloc(1, sizeof(*l));
    if (l == NULL)
        return -1;
    l->a = a;
    l->cb = cb;
    l->opaque = opaque;
    l->work.data = l;
    rate_key(l->name_key, 'n', name ? name : "");
    if (remote_addr) {
        l->has_addr = 1;
        rate_key(l->addr_key, 'a', remote_addr);
    }
    /* An over-long password is verified (and fails) like any other, so
     * only the copy is bounded. */
    l->pw = malloc(plen <= AUTH_PW_MAX ? plen + 1 : 1);
    if (l->pw == NULL) {
        free(l);
        return -1;
    }
    if (plen <= AUTH_PW_MAX) {
        memcpy(l->pw, password ? password : "", plen);
        l->pw[plen] = '\0';
    } else {
        l->pw[0] = '\0';
        l->unknown = 1;
    }

    if (nlen >= 1 && nlen <= AUTH_NAME_MAX)
        l->user = store_user_get_by_name(a->st, name, &se);
    else
        se.code = STORE_ENOTFOUND;
    if (l->user) {
        const char *h = json_string_value(json_object_get(l->user, "pw_hash"));
        snprintf(l->hash, sizeof(l->hash), "%s", h ? h : a->dummy_hash);
        if (h == NULL)
            l->unknown = 1;
        l->user_id = json_integer_value(json_object_get(l->user, "id"));
        l->disabled = json_is_true(json_object_get(l->user, "disabled"));
        json_object_del(l->user, "pw_hash");
    } else if (se.code == STORE_ENOTFOUND || se.code == STORE_EINVAL) {
        snprintf(l->hash, sizeof(l->hash), "%s", a->dummy_hash);
        l->unknown = 1;
    } else {
        char msg[300];
        snprintf(msg, sizeof(msg), "user lookup failed: %s", se.msg);
        sodium_memzero(l->pw, strlen(l->pw));
        free(l->pw);
        free(l);
        return defer_error(a, cb, opaque, AUTH_EIO, 0, msg);
    }
    if (uv_queue_work(a->loop, &l->work, login_work, login_after) != 0) {
        sodium_memzero(l->pw, strlen(l->pw));
        free(l->pw);
        json_decref(l->user);
        free(l);
        return -1;
    }
    rate_begin(a, l->name_key, now);
    if (l->has_addr)
        rate_begin(a, l->addr_key, now);
    a->verifying++;
    a->pending++;
    return 0;
}

/* A session without a password, for the local command line: `cyrange
 * serve` hands its token to the CLI through a root-only file, as the
 * control socket's permissions did before. */
int auth_session_mint_async(auth *a, auth_role role, auth_cb cb, void *opaque)
{
    store_err se = { 0, "" };
    json_t *users, *u, *pick = NULL;
    size_t i;
    login *l;
    int64_t now;

    if (a == NULL || cb == NULL)
        return -1;
    users = store_users_list(a->st, &se);
    if (users == NULL)
        return defer_error(a, cb, opaque, AUTH_EIO, 0, se.msg);
    json_array_foreach(users, i, u)
        if (pick == NULL && !json_is_true(json_object_get(u, "disabled")) &&
            auth_role_parse(json_string_value(json_object_get(u, "role"))) == role)
            pick = u;
    if (pick == NULL) {
        json_decref(users);
        return defer_error(a, cb, opaque, AUTH_EBADCRED, 0,
                           "no enabled account has that role");
    }
    l = calloc(1, sizeof(*l));
    if (l == NULL || (l->user = json_deep_copy(pick)) == NULL) {
        free(l);
        json_decref(users);
        return -1;
    }
    json_decref(users);
    json_object_del(l->user, "pw_hash");
    l->a = a;
    l->cb = cb;
    l->opaque = opaque;
    l->user_id = json_integer_value(json_object_get(l->user, "id"));
    now = auth_now(a);
    random_token(l->token);
    random_token(l->csrf);
    auth_token_hash(l->token, l->token_hash);
    l->expires_ms = now + a->ttl_ms;
    if (store_session_add(a->st, l->token_hash, l->user_id, now, l->expires_ms, l->csrf,
                          on_session_added, l) < 0) {
        sodium_memzero(l->token, sizeof(l->token));
        json_decref(l->user);
        free(l);
        return -1;
    }
    a->pending++;
    return 0;
}

/* ---- sessions ----------------------------------------------------------- */

int auth_session_check(auth *a, const char *cookie_header, long long now_ms,
                       auth_principal *out, auth_err *e)
{
    char token[AUTH_TOKEN_LEN + 1], th[AUTH_TOKEN_HASH_LEN + 1];
    store_err se = { 0, "" };
    json_t *s = NULL;
    const char *name, *role, *csrf;
    int rc = -1;

    if (out)
        memset(out, 0, sizeof(*out));
    if (a == NULL || out == NULL) {
        set_err(e, AUTH_EINVAL, "auth_session_check: bad arguments");
        return -1;
    }
    if (cookie_token(cookie_header, token) < 0) {
        set_err(e, AUTH_ENOSESSION, "not logged in");
        return -1;
    }
    auth_token_hash(token, th);
    sodium_memzero(token, sizeof(token));
    s = store_session_get(a->st, th, now_ms, &se);
    if (s == NULL) {
        if (se.code == STORE_ENOTFOUND || se.code == STORE_EINVAL)
            set_err(e, AUTH_ENOSESSION, "the session has expired or ended");
        else
            set_err(e, AUTH_EIO, "session lookup failed: %s", se.msg);
        return -1;
    }
    name = json_string_value(json_object_get(s, "name"));
    role = json_string_value(json_object_get(s, "role"));
    csrf = json_string_value(json_object_get(s, "csrf"));
    out->user_id = json_integer_value(json_object_get(s, "user_id"));
    out->role = auth_role_parse(role);
    out->team = (int)json_integer_value(json_object_get(s, "team"));
    out->expires_ms = json_integer_value(json_object_get(s, "expires_ms"));
    if (json_is_true(json_object_get(s, "disabled")) || name == NULL || csrf == NULL ||
        strlen(name) > AUTH_NAME_MAX || strlen(csrf) > AUTH_TOKEN_LEN ||
        out->role == AUTH_ROLE_NONE || (out->role == AUTH_ROLE_MEMBER) != (out->team >= 1)) {
        set_err(e, AUTH_ENOSESSION, "the session's account is disabled or invalid");
        goto cleanup;
    }
    if (out->role != AUTH_ROLE_MEMBER)
        out->team = 0;
    snprintf(out->name, sizeof(out->name), "%s", name);
    snprintf(out->csrf, sizeof(out->csrf), "%s", csrf);
    memcpy(out->token_hash, th, sizeof(out->token_hash));
    rc = 0;
cleanup:
    if (rc < 0)
        memset(out, 0, sizeof(*out));
    json_decref(s);
    return rc;
}

typedef struct logout {
    auth *a;
    auth_cb cb;
    void *opaque;
} logout;

static void on_session_deleted(const store_result *res, void *opaque)
{
    logout *lo = opaque;
    auth *a = lo->a;
    auth_result r;
    memset(&r, 0, sizeof(r));
    if (res->rc != 0) {
        r.rc = -1;
        if (res->err.code == STORE_ENOTFOUND || res->err.code == STORE_EINVAL)
            set_err(&r.err, AUTH_ENOSESSION, "no such session");
        else
            set_err(&r.err, AUTH_EIO, "session not deleted: %s", res->err.msg);
    }
    lo->cb(&r, lo->opaque);
    free(lo);
    auth_unref(a);
}

int auth_logout_async(auth *a, const char *cookie_header, auth_cb cb, void *opaque)
{
    char token[AUTH_TOKEN_LEN + 1], th[AUTH_TOKEN_HASH_LEN + 1];
    logout *lo;
    if (a == NULL || cb == NULL)
        return -1;
    if (cookie_token(cookie_header, token) < 0)
        return defer_error(a, cb, opaque, AUTH_ENOSESSION, 0, "no such session");
    auth_token_hash(token, th);
    sodium_memzero(token, sizeof(token));
    lo = calloc(1, sizeof(*lo));
    if (lo == NULL)
        return -1;
    lo->a = a;
    lo->cb = cb;
    lo->opaque = opaque;
    if (store_session_delete(a->st, th, on_session_deleted, lo) < 0) {
        free(lo);
        return -1;
    }
    a->pending++;
    return 0;
}

/* ---- CSRF and cookies --------------------------------------------------- */

int auth_csrf_ok(const auth_principal *p, const char *header_value)
{
    size_t n;
    if (p == NULL || header_value == NULL || p->csrf[0] == '\0')
        return 0;
    n = strlen(p->csrf);
    if (strlen(header_value) != n)
        return 0;
    return sodium_memcmp(p->csrf, header_value, n) == 0;
}

int auth_set_cookie(const char *token, long max_age_s, int secure, char *buf, size_t len)
{
    int n;
    if (token == NULL || !token_wellformed(token, strlen(token)) || max_age_s < 0 ||
        buf == NULL)
        return -1;
    n = snprintf(buf, len, "%s=%s; Path=/; Max-Age=%ld; HttpOnly; SameSite=Strict%s",
                 AUTH_COOKIE_NAME, token, max_age_s, secure ? "; Secure" : "");
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

int auth_clear_cookie(int secure, char *buf, size_t len)
{
    int n;
    if (buf == NULL)
        return -1;
    n = snprintf(buf, len, "%s=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict%s",
                 AUTH_COOKIE_NAME, secure ? "; Secure" : "");
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* ---- roles and authorisation -------------------------------------------- */

int auth_can(const auth_principal *p, auth_action act, int team)
{
    if (p == NULL || team < 0)
        return 0;
    switch (p->role) {
    case AUTH_ROLE_INSTRUCTOR:
        return act == AUTH_READ_TEAM || act == AUTH_WRITE_TEAM || act == AUTH_STEER ||
               act == AUTH_ADMIN_USERS || act == AUTH_CONSOLE;
    case AUTH_ROLE_OBSERVER:
        return act == AUTH_READ_TEAM;
    case AUTH_ROLE_MEMBER:
        /* Only the member's own team, never the exercise-wide view. */
        if (p->team < 1 || team != p->team)
            return 0;
        return act == AUTH_READ_TEAM || act == AUTH_WRITE_TEAM || act == AUTH_CONSOLE;
    case AUTH_ROLE_NONE:
        break;
    }
    return 0;
}

int auth_read_scope(const auth_principal *p)
{
    if (p == NULL)
        return -1;
    switch (p->role) {
    case AUTH_ROLE_INSTRUCTOR:
    case AUTH_ROLE_OBSERVER:
        return STORE_ALL_TEAMS;
    case AUTH_ROLE_MEMBER:
        return p->team >= 1 ? p->team : -1;
    case AUTH_ROLE_NONE:
        break;
    }
    return -1;
}

auth_role auth_role_parse(const char *s)
{
    if (s == NULL)
        return AUTH_ROLE_NONE;
    if (strcmp(s, "instructor") == 0)
        return AUTH_ROLE_INSTRUCTOR;
    if (strcmp(s, "member") == 0)
        return AUTH_ROLE_MEMBER;
    if (strcmp(s, "observer") == 0)
        return AUTH_ROLE_OBSERVER;
    return AUTH_ROLE_NONE;
}

const char *auth_role_name(auth_role r)
{
    switch (r) {
    case AUTH_ROLE_INSTRUCTOR:
        return "instructor";
    case AUTH_ROLE_MEMBER:
        return "member";
    case AUTH_ROLE_OBSERVER:
        return "observer";
    case AUTH_ROLE_NONE:
        break;
    }
    return NULL;
}

/* ---- provisioning ------------------------------------------------------- */

typedef struct prov prov;

typedef struct prov_user {
    uv_work_t work;
    prov *p;
    char name[AUTH_NAME_MAX + 1];
    const char *role;
    int team;
    int existing;
    int hash_ok;
    int created;
    char pw[AUTH_GENPW_LEN + 1];
    char hash[AUTH_HASH_MAX];
} prov_user;

struct prov {
    auth *a;
    auth_cb cb;
    void *opaque;
    uv_work_t kick; /* when nothing needs hashing */
    prov_user *u;
    int n;
    int hashing;
    int adding;
    int code; /* first failure, AUTH_OK when none */
    char msg[256];
};

static void prov_fail(prov *p, int code, const char *msg)
{
    if (p->code == AUTH_OK) {
        p->code = code;
        snprintf(p->msg, sizeof(p->msg), "%s", msg);
    }
}

static void prov_finish(prov *p)
{
    auth *a = p->a;
    auth_result res;
    json_t *users = json_array();

    memset(&res, 0, sizeof(res));
    for (int i = 0; i < p->n && users; i++) {
        prov_user *u = &p->u[i];
        json_t *o = json_pack("{s:s, s:s, s:o}", "name", u->name, "role", u->role, "team",
                              u->team ? json_integer(u->team) : json_null());
        if (o == NULL)
            continue;
        if (u->existing)
            json_object_set_new(o, "existing", json_true());
        else if (u->created)
            json_object_set_new(o, "password", json_string(u->pw));
        else
            json_object_set_new(o, "created", json_false());
        json_array_append_new(users, o);
    }
    if (users == NULL)
        prov_fail(p, AUTH_EIO, "out of memory");
    if (p->code != AUTH_OK) {
        res.rc = -1;
        set_err(&res.err, p->code, "%s", p->msg);
    }
    res.users = users;
    p->cb(&res, p->opaque);
    /* The generated passwords were shown once: wipe every copy. */
    for (size_t i = 0; users && i < json_array_size(users); i++) {
        json_t *pw = json_object_get(json_array_get(users, i), "password");
        if (json_is_string(pw))
            sodium_memzero((char *)json_string_value(pw), json_string_length(pw));
    }
    json_decref(users);
    for (int i = 0; i < p->n; i++)
        sodium_memzero(p->u[i].pw, sizeof(p->u[i].pw));
    free(p->u);
    free(p);
    auth_unref(a);
}

static void on_prov_added(const store_result *res, void *opaque)
{
    prov_user *u = opaque;
    prov *p = u->p;
    if (res->rc == 0) {
        u->created = 1;
    } else {
        if (res->err.code == STORE_ECONFLICT) {
            /* Someone created it in between: it is theirs now. */
            u->existing = 1;
            sodium_memzero(u->pw, sizeof(u->pw));
        } else {
            prov_fail(p, AUTH_EIO, res->err.msg);
        }
    }
    if (--p->adding == 0)
        prov_finish(p);
}

/* Every password is hashed: store the new accounts. */
static void prov_store(prov *p)
{
    int64_t now = auth_now(p->a);
    if (p->a->closing)
        prov_fail(p, AUTH_ECLOSED, "the server is shutting down");
    p->adding = 1; /* held until every write is queued */
    for (int i = 0; i < p->n && p->code == AUTH_OK; i++) {
        prov_user *u = &p->u[i];
        if (u->existing)
            continue;
        if (!u->hash_ok) {
            prov_fail(p, AUTH_EIO, "argon2id failed (out of memory?)");
            break;
        }
        if (store_user_add(p->a->st, u->name, u->role, u->team, u->hash, now, on_prov_added,
                           u) < 0) {
            prov_fail(p, AUTH_EIO, "the store is closing");
            break;
        }
        p->adding++;
    }
    if (--p->adding == 0)
        prov_finish(p);
}

static void prov_hash_work(uv_work_t *w)
{
    prov_user *u = w->data;
    char err[128];
    u->hash_ok = auth_hash_password_kdf(&u->p->a->kdf, u->pw, u->hash, err, sizeof(err)) == 0;
}

static void prov_hash_after(uv_work_t *w, int status)
{
    prov_user *u = w->data;
    prov *p = u->p;
    if (status != 0)
        u->hash_ok = 0;
    if (--p->hashing == 0)
        prov_store(p);
}

static void prov_kick_after(uv_work_t *w, int status)
{
    prov *p = w->data;
    (void)status;
    if (--p->hashing == 0)
        prov_store(p);
}

static int prov_want(prov *p, const char *name, const char *role, int team)
{
    store_err se = { 0, "" };
    prov_user *u = &p->u[p->n];
    json_t *row = store_user_get_by_name(p->a->st, name, &se);
    memset(u, 0, sizeof(*u));
    u->p = p;
    u->work.data = u;
    snprintf(u->name, sizeof(u->name), "%s", name);
    u->role = role;
    u->team = team;
    if (row) {
        u->existing = 1;
        json_decref(row);
    } else if (se.code != STORE_ENOTFOUND) {
        prov_fail(p, AUTH_EIO, se.msg);
        return -1;
    } else if (auth_generate_password(u->pw, sizeof(u->pw)) < 0) {
        prov_fail(p, AUTH_EIO, "no random password");
        return -1;
    }
    p->n++;
    return 0;
}

int auth_provision_team_users(auth *a, int n_teams, int members_per_team, auth_cb cb,
                              void *opaque)
{
    prov *p = NULL;
    json_t *all = NULL;
    store_err se = { 0, "" };
    int have_instructor = 0, cap, queued = 0;
    char instructor[AUTH_NAME_MAX + 1] = "instructor";
    size_t i;
    json_t *row;

    if (a == NULL || cb == NULL)
        return -1;
    if (n_teams < 1 || n_teams > PROV_MAX_TEAMS || members_per_team < 1 ||
        members_per_team > PROV_MAX_MEMBERS)
        return defer_error(a, cb, opaque, AUTH_EINVAL, 0,
                           "teams must be 1..99 and members per team 1..20");
    all = store_users_list(a->st, &se);
    if (all == NULL)
        return defer_error(a, cb, opaque, AUTH_EIO, 0, se.msg);
    /* The first instructor account is listed (as existing) beside the team
     * accounts, so whoever starts the exercise knows which name to use. */
    json_array_foreach(all, i, row)
        if (!have_instructor &&
            auth_role_parse(json_string_value(json_object_get(row, "role"))) ==
                AUTH_ROLE_INSTRUCTOR) {
            have_instructor = 1;
            snprintf(instructor, sizeof(instructor), "%s",
                     json_string_value(json_object_get(row, "name")));
        }
    json_decref(all);

    cap = n_teams * members_per_team + 1;
    p = calloc(1, sizeof(*p));
    if (p == NULL || (p->u = calloc((size_t)cap, sizeof(*p->u))) == NULL) {
        free(p);
        return -1;
    }
    p->a = a;
    p->cb = cb;
    p->opaque = opaque;
    p->kick.data = p;
    prov_want(p, instructor, "instructor", 0);
    for (int t = 1; t <= n_teams && p->code == AUTH_OK; t++)
        for (int m = 1; m <= members_per_team && p->code == AUTH_OK; m++) {
            char name[AUTH_NAME_MAX + 1];
            snprintf(name, sizeof(name), "t%02d-%d", t, m);
            prov_want(p, name, "member", t);
        }
    if (p->code != AUTH_OK) {
        int rc = defer_error(a, cb, opaque, p->code, 0, p->msg);
        for (int k = 0; k < p->n; k++)
            sodium_memzero(p->u[k].pw, sizeof(p->u[k].pw));
        free(p->u);
        free(p);
        return rc;
    }
    /* Each new account hashes on its own job: the pool runs them side by
     * side. */
    for (int k = 0; k < p->n; k++) {
        prov_user *u = &p->u[k];
        if (u->existing)
            continue;
        if (uv_queue_work(a->loop, &u->work, prov_hash_work, prov_hash_after) == 0) {
            p->hashing++;
            queued++;
        }
    }
    if (queued == 0) {
        if (uv_queue_work(a->loop, &p->kick, deferred_work, prov_kick_after) != 0) {
            free(p->u);
            free(p);
            return -1;
        }
        p->hashing++;
    }
    a->pending++;
    return 0;
}
