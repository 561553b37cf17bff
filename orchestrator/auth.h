/* auth — who may do what: roles, passwords, sessions, CSRF and login rate
 * limiting.  No HTTP parsing here: the API hands in header values.
 *
 * Roles: an instructor steers and sees everything; a team member reads and
 * writes only its own team's data and consoles; an observer reads every
 * team but never writes.  auth_can() is the one place of that policy.
 *
 * Passwords are argon2id strings (libsodium crypto_pwhash, memory-hard).
 * One hash with the default limits (OPSLIMIT_INTERACTIVE = 2 passes,
 * MEMLIMIT_INTERACTIVE = 64 MiB) took 44 ms (median of 9; a verify 45-64
 * ms) on the 2-core development host, MODERATE (3 passes, 256 MiB) 418
 * ms: logins verify on the libuv thread pool, never on the loop.
 *
 * Sessions: the token is 32 random bytes, base64url without padding (43
 * characters), and goes only into the cookie `cyrange_session`; the store
 * keeps its BLAKE2b hash (auth_token_hash), so a copy of the database opens
 * no session.  Every session has its own CSRF token that state-changing
 * requests send back in the X-CSRF-Token header; the cookie itself is
 * HttpOnly and SameSite=Strict.
 *
 * Rate limiting is in memory, per account name and per remote address, in
 * one table with a fixed number of entries.  Every failure counts; reaching
 * the limit inside the window locks the key for a time that doubles with
 * every further lockout (up to a cap); a success clears the name's record
 * and the address's failure count.
 *
 * Every function taking an `auth *` runs on the loop thread given to
 * auth_new; the others (passwords, tokens, cookies, auth_can) are pure and
 * may run on any thread.  Strings passed in are borrowed (copied when
 * kept).  Times are milliseconds since the Unix epoch.
 */
#ifndef CYRANGE_AUTH_H
#define CYRANGE_AUTH_H

#include <jansson.h>
#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "store.h"

/* Error codes of auth_err.code. */
enum {
    AUTH_OK = 0,
    AUTH_EINVAL,     /* bad argument (400) */
    AUTH_EBADCRED,   /* unknown user or wrong password: one answer (401) */
    AUTH_EDISABLED,  /* right password, account disabled (403) */
    AUTH_ERATE,      /* too many failures: retry_after_s (429) */
    AUTH_ENOSESSION, /* no cookie, unknown, expired or disabled session (401) */
    AUTH_EIO,        /* the store or the system failed (500) */
    AUTH_ECLOSED     /* auth_free ran before the operation finished */
};

typedef struct auth_err {
    int code;      /* AUTH_* */
    char msg[256]; /* one line */
} auth_err;

typedef enum auth_role {
    AUTH_ROLE_NONE = 0,
    AUTH_ROLE_INSTRUCTOR,
    AUTH_ROLE_MEMBER,
    AUTH_ROLE_OBSERVER
} auth_role;

typedef enum auth_action {
    AUTH_READ_TEAM,   /* read a team's data (team 0: every team's) */
    AUTH_WRITE_TEAM,  /* findings, reports, responses of a team */
    AUTH_STEER,       /* start/pause/reset/inject, relabel, grade */
    AUTH_ADMIN_USERS, /* create, disable, reset passwords */
    AUTH_CONSOLE      /* a guest console of a team: a console is a write */
} auth_action;

#define AUTH_COOKIE_NAME "cyrange_session"
#define AUTH_CSRF_HEADER "X-CSRF-Token"
#define AUTH_TOKEN_LEN 43     /* base64url of 32 bytes, no padding */
#define AUTH_TOKEN_HASH_LEN 64 /* hex of a 32-byte BLAKE2b */
#define AUTH_NAME_MAX 64      /* bytes of a user name */
#define AUTH_PW_MIN 8         /* bytes of a password a person chooses */
#define AUTH_PW_MAX 256
#define AUTH_GENPW_LEN 19     /* "abcd-efgh-jkmn-pqrs": 16 symbols, 80 bits */
#define AUTH_HASH_MAX crypto_pwhash_STRBYTES
#define AUTH_SESSION_TTL_MS (12LL * 3600 * 1000)

/* The argon2id cost.  {0, 0} means the defaults below; tests and
 * `CYRANGE_AUTH_KDF=min` use crypto_pwhash_OPSLIMIT_MIN/MEMLIMIT_MIN. */
typedef struct auth_kdf {
    unsigned long long opslimit;
    size_t memlimit;
} auth_kdf;
#define AUTH_OPSLIMIT crypto_pwhash_OPSLIMIT_INTERACTIVE
#define AUTH_MEMLIMIT crypto_pwhash_MEMLIMIT_INTERACTIVE

/* The logged-in user of a request, filled by auth_session_check. */
typedef struct auth_principal {
    int64_t user_id;
    char name[AUTH_NAME_MAX + 1];
    auth_role role;
    int team; /* a member's team (>= 1); 0 for the other roles */
    char csrf[AUTH_TOKEN_LEN + 1];
    char token_hash[AUTH_TOKEN_HASH_LEN + 1];
    int64_t expires_ms;
} auth_principal;

typedef struct auth auth;

typedef struct auth_opts {
    auth_kdf kdf;             /* {0, 0}: AUTH_OPSLIMIT, AUTH_MEMLIMIT */
    int64_t session_ttl_ms;   /* 0: AUTH_SESSION_TTL_MS */
    int name_max_failures;    /* 0: 5 per window per account name */
    int addr_max_failures;    /* 0: 20 per window per address (a class
                                 behind one NAT shares an address) */
    int64_t window_ms;        /* 0: 5 minutes */
    int64_t lock_ms;          /* 0: 60 s, the first lockout */
    int64_t lock_max_ms;      /* 0: 1 hour, the longest lockout */
    int rate_entries;         /* 0: 4096 keys in the table */
    int max_logins;           /* 0: 64 logins verifying at once; more are
                                 AUTH_ERATE (retry after 1 s) */
    /* The clock of logins and rate limiting; NULL: the real time. */
    int64_t (*now_ms)(void *opaque);
    void *now_opaque;
} auth_opts;

/* What an asynchronous operation's callback gets (borrowed, valid only
 * during the callback; the token and the generated passwords are wiped
 * right after it returns). */
typedef struct auth_result {
    int rc;             /* 0 or -1 */
    auth_err err;
    int retry_after_s;  /* AUTH_ERATE: seconds until the next try */
    const json_t *user; /* login: the user (id, name, role, team, ...; no
                           pw_hash) */
    const char *token;  /* login: the plain session token for the cookie */
    const char *csrf;   /* login: the session's CSRF token */
    int64_t expires_ms; /* login: when the session ends */
    const json_t *users; /* provisioning: [{name, role, team, password} or
                            {name, role, team, existing: true}; on a
                            failure, {..., created: false} for the ones
                            not created] */
} auth_result;

typedef void (*auth_cb)(const auth_result *res, void *opaque);

/* ---- life cycle -------------------------------------------------------- */

/* `st` is borrowed and must stay open until every started operation's
 * callback has run.  opts may be NULL.  NULL with err on failure. */
auth *auth_new(uv_loop_t *loop, store *st, const auth_opts *opts, char *err,
               size_t errlen);
/* Frees `a` now, or when its last pending operation ends: those still
 * run their callbacks (AUTH_ECLOSED when it is too late to finish), so
 * call auth_free before store_close and keep the loop running.  Accepts
 * NULL. */
void auth_free(auth *a);

/* ---- passwords (any thread) -------------------------------------------- */

/* argon2id string of `pw` (NUL-terminated) with the default cost, or
 * with `kdf` (NULL: defaults). */
int auth_hash_password(const char *pw, char out[AUTH_HASH_MAX], char *err, size_t errlen);
int auth_hash_password_kdf(const auth_kdf *kdf, const char *pw, char out[AUTH_HASH_MAX],
                           char *err, size_t errlen);
/* 0 when `pw` matches `hash`, else -1. */
int auth_verify_password(const char *hash, const char *pw);
/* 1 when `hash` is not argon2id with the cost `kdf` (NULL: defaults),
 * 0 when it is, -1 when it is not a password hash. */
int auth_needs_rehash(const char *hash, const auth_kdf *kdf);
/* A readable random password: AUTH_GENPW_LEN characters from
 * "abcdefghijkmnpqrstuvwxyz23456789" (no 0/o, 1/l/i) in four groups of
 * four joined by '-'.  len must be > AUTH_GENPW_LEN; else -1. */
int auth_generate_password(char *buf, size_t len);

/* ---- logins and sessions ----------------------------------------------- */

/* Looks `name` up, verifies `password` on the thread pool, and on success
 * stores a new session and calls back, once the session is durable, with
 * user, token and csrf.  Errors: AUTH_EBADCRED (unknown user and wrong
 * password alike; an unknown user costs a verify against a dummy hash, so
 * the time tells nothing either), AUTH_EDISABLED (only with the right
 * password), AUTH_ERATE (retry_after_s), AUTH_EIO.  remote_addr may be
 * NULL (no per-address limit).  Returns 0 when started: cb runs exactly
 * once, later, on the loop; -1 (out of memory) and cb will not run. */
int auth_login_async(auth *a, const char *name, const char *password,
                     const char *remote_addr, auth_cb cb, void *opaque);
/* Stores a new session, without a password, for the first enabled account
 * of `role` and calls back, once it is durable, with user, token and csrf
 * as a login does; AUTH_EBADCRED when no enabled account has the role.
 * For `cyrange serve` to hand to the local CLI only.  0 when started (cb
 * runs once, later), -1: cb will not run. */
int auth_session_mint_async(auth *a, auth_role role, auth_cb cb, void *opaque);
/* Fills `out` from the session named by the Cookie header value (NULL:
 * none).  0, or -1 with e (may be NULL): AUTH_ENOSESSION when there is no
 * usable session, AUTH_EIO when the store failed. */
int auth_session_check(auth *a, const char *cookie_header, long long now_ms,
                       auth_principal *out, auth_err *e);
/* Ends the session named by the Cookie header.  0 when started (cb runs
 * once, later; AUTH_ENOSESSION when there was none), -1: cb will not run. */
int auth_logout_async(auth *a, const char *cookie_header, auth_cb cb, void *opaque);
/* 0 when `remote_addr`/`name` may try to log in at now_ms, else -1 with
 * *retry_after_s (may be NULL) set.  Either key may be NULL. */
int auth_rate_check(auth *a, const char *name, const char *remote_addr, long long now_ms,
                    int *retry_after_s);
/* Hex BLAKE2b-256 of a token: what the store keeps. */
void auth_token_hash(const char *token, char out[AUTH_TOKEN_HASH_LEN + 1]);

/* ---- CSRF and cookies -------------------------------------------------- */

/* 1 when the X-CSRF-Token header value (NULL: missing) is the session's
 * token, compared in constant time; else 0. */
int auth_csrf_ok(const auth_principal *p, const char *header_value);
/* The Set-Cookie value for `token`; secure adds "; Secure" (the server is
 * behind TLS).  0, or -1 when the token is malformed or buf too small. */
int auth_set_cookie(const char *token, long max_age_s, int secure, char *buf, size_t len);
/* The Set-Cookie value that ends the session cookie in the browser. */
int auth_clear_cookie(int secure, char *buf, size_t len);

/* ---- roles and authorisation ------------------------------------------- */

/* 1 when `p` may do `a` to `team` (0: exercise-wide, every team), else 0.
 * READ_TEAM: instructor and observer any team, member only its own (never
 * 0).  WRITE_TEAM: instructor any, member its own, observer never.
 * STEER, ADMIN_USERS: instructor only.  CONSOLE: instructor, or a member
 * of that team; observer never.  p NULL: 0. */
int auth_can(const auth_principal *p, auth_action a, int team);
/* The team to pass to the store's scoped reads: a member's own team,
 * STORE_ALL_TEAMS for instructors and observers, -1 for nobody. */
int auth_read_scope(const auth_principal *p);
auth_role auth_role_parse(const char *s); /* AUTH_ROLE_NONE when unknown */
const char *auth_role_name(auth_role r);  /* "instructor", ...; NULL */

/* ---- provisioning ------------------------------------------------------ */

/* Creates the members t01-1 .. tNN-M (role member, team N) and an
 * `instructor` account when no instructor exists, each with a generated
 * password (hashed on the thread pool).  Existing accounts are left alone;
 * the first existing instructor is listed among them.
 * The callback gets res->users: every wanted account, with its password
 * when it was created now, or "existing": true; the passwords are shown
 * only there, never stored or logged.  n_teams 1..99, members 1..20.
 * 0 when started (cb runs once, later), -1 (out of memory): cb will not
 * run. */
int auth_provision_team_users(auth *a, int n_teams, int members_per_team, auth_cb cb,
                              void *opaque);

#endif
