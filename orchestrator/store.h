/* store — the durable state of every exercise, in one SQLite database.
 *
 * This is the only module that speaks SQL.  The database runs in WAL mode
 * with synchronous=FULL, so a committed transaction survives a SIGKILL or a
 * power cut, and versioned migrations (PRAGMA user_version) bring an older
 * file up to date; a file written by a newer cyrange is refused.
 *
 * Writes are asynchronous and group-committed: each store_* write below
 * queues one operation and returns at once; a writer thread takes every
 * queued operation, runs them in ONE transaction (each inside its own
 * SAVEPOINT, so a failing operation does not sink the others), commits
 * (one fsync for the whole batch) and hands the results back to the loop,
 * where each operation's callback runs.  A write may be acknowledged to a
 * client only from that callback, with res->rc == 0: only then is it on
 * disk.
 *
 * Reads are synchronous, on the loop thread, through a second, read-only
 * connection (WAL readers never wait for the writer); they see every write
 * whose callback has run.  Reads return jansson values as NEW references
 * (the caller json_decref's them), NULL with `e` filled on failure.  Rows
 * become objects keyed by column name; columns holding JSON documents come
 * back parsed under their name without the "_json" suffix (doc_json ->
 * "doc"), flags as booleans, absent values as null.
 *
 * Team scoping: every function that takes `team` returns or touches only
 * that team's rows of that exercise.  STORE_ALL_TEAMS (0) means every team
 * and is for instructor views only: the API must pass a member's own team,
 * and then no function below can reach another team's rows (a report or
 * inbox item of another team is STORE_ENOTFOUND, exactly like a missing one).
 *
 * Every function must be called on the loop thread given to store_open.
 * Strings and jansson values passed in are borrowed (copied or serialized
 * before the call returns).  Times are milliseconds since the Unix epoch.
 */
#ifndef CYRANGE_STORE_H
#define CYRANGE_STORE_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

typedef struct store store;

/* Error codes, so the API can answer 400/404/409/500. */
enum {
    STORE_OK = 0,
    STORE_EINVAL,    /* bad argument or constraint (400) */
    STORE_ENOTFOUND, /* no such row, or not in the caller's scope (404) */
    STORE_ECONFLICT, /* duplicate key, stale version, final state (409) */
    STORE_EIO        /* SQLite or the disk failed (500) */
};

#define STORE_ALL_TEAMS 0

typedef struct store_err {
    int code;      /* STORE_* */
    char msg[256]; /* one line, includes sqlite3_errmsg where it applies */
} store_err;

/* What a write's callback gets (borrowed, valid during the callback). */
typedef struct store_result {
    int rc;          /* 0: durable; -1: failed, see err */
    store_err err;
    int64_t id;      /* new row id (journal seq, finding, report, review,
                        inbox, response, user) or rows changed (purges) */
    int64_t version; /* store_report_save: the version just written */
} store_result;

/* Runs on the loop thread once the operation is durable or has failed.
 * It may call any store function, including new writes. */
typedef void (*store_cb)(const store_result *res, void *opaque);

typedef struct store_stats {
    int schema_version;
    uint64_t ops;       /* operations completed (ok or failed) */
    uint64_t failed;    /* operations that failed */
    uint64_t batches;   /* transactions the writer ran */
    uint64_t commits;   /* successful COMMITs (one fsync each) */
    uint64_t max_batch; /* most operations in one transaction */
    uint64_t queued;    /* operations waiting now */
} store_stats;

/* ---- life cycle ------------------------------------------------------- */

/* Opens or creates the database at `path` (its directory must exist),
 * applies the migrations and starts the writer thread.  NULL with `err`
 * on failure, including "database schema version N is newer than this
 * cyrange (M)". */
store *store_open(uv_loop_t *loop, const char *path, char *err, size_t errlen);
/* Options for tests and the benchmark; store_open uses all zeros. */
typedef struct store_opts {
    int max_version; /* apply migrations only up to this one (0: all), to
                        build an old database and migrate it */
    int naive;       /* no writer thread: every write is its own transaction
                        run at once on the loop (fsync included), callbacks
                        still later: the benchmark's reference, never for
                        production */
} store_opts;
store *store_open_opts(uv_loop_t *loop, const char *path, const store_opts *opts,
                       char *err, size_t errlen);
/* Refuses new writes, lets the writer finish every queued one (their
 * callbacks run first), closes the database and frees `st`; then `cb`
 * (may be NULL) runs on the loop.  `st` must not be used after this call
 * except from those pending callbacks (reads work there; new writes
 * return -1). */
void store_close(store *st, void (*cb)(void *opaque), void *opaque);
void store_stats_get(store *st, store_stats *out);
/* The schema version this code migrates to. */
int store_schema_latest(void);

/* ---- writes -----------------------------------------------------------
 * Each returns 0 when queued: `cb` (may be NULL) will run exactly once,
 * later, on the loop, also when the arguments are invalid (STORE_EINVAL).
 * -1 when the store is closing or memory ran out: `cb` will not run.
 * Optional strings and documents may be NULL (stored as NULL). */

/* Exercises (upsert by id).  state: "running" | "stopped". */
int store_exercise_put(store *st, const char *ex, const char *scenario_id,
                       const json_t *scenario, int64_t created_ms,
                       const char *state, double speed, int64_t seed,
                       const json_t *options, store_cb cb, void *opaque);
int store_exercise_set_state(store *st, const char *ex, const char *state,
                             store_cb cb, void *opaque);
/* Teams of an exercise (upsert), team >= 1. */
int store_team_put(store *st, const char *ex, int team, const char *name,
                   store_cb cb, void *opaque);
/* A guest's state (upsert by exercise, team, host). */
int store_host_put(store *st, const char *ex, int team, const char *host,
                   const char *domain, const char *state, const char *detail,
                   int64_t updated_ms, store_cb cb, void *opaque);
/* A team's progress snapshot for resuming after a crash (upsert). */
int store_timeline_put(store *st, const char *ex, int team, const json_t *state,
                       int64_t updated_ms, store_cb cb, void *opaque);
/* Ground truth (append): res->id is the entry's seq.  team 0: exercise-wide. */
int store_journal_append(store *st, const char *ex, int team, int64_t ts_ms,
                         const char *kind, const char *step, const json_t *entry,
                         store_cb cb, void *opaque);
/* Flow summaries, an array of objects with community_id, proto, src, sport,
 * dst, dport, first_ms, last_ms, packets, bytes (all required; the whole
 * object is kept as the flow's doc); upsert by (community_id, first_ms):
 * a later summary of the same flow replaces last_ms, counters and doc.
 * One operation for the whole array; res->id is the count. */
int store_flows_put(store *st, const char *ex, int team, const json_t *flows,
                    store_cb cb, void *opaque);
/* One run of a check (append). */
int store_check_add(store *st, const char *ex, int team, const char *check_id,
                    int64_t ts_ms, int ok, const char *detail,
                    store_cb cb, void *opaque);
/* A team's finding (append): res->id is the finding id. */
int store_finding_add(store *st, const char *ex, int team, int64_t user_id,
                      int64_t submitted_ms, int64_t detected_ms, const json_t *doc,
                      store_cb cb, void *opaque);
/* Instructor relabel: label "duplicate" | "benign" | "unscripted", or NULL
 * to clear.  STORE_ENOTFOUND when the finding is not in `ex`. */
int store_finding_label(store *st, const char *ex, int64_t finding_id,
                        const char *label, const char *label_by, int64_t label_ms,
                        store_cb cb, void *opaque);
/* Saves a report as a new version (every version is kept).  report_id 0
 * creates the report (base_version must be 0; title required) and writes
 * version 1.  Otherwise base_version must be the report's current version
 * (else STORE_ECONFLICT: someone saved in between), the report must be
 * the team's (else STORE_ENOTFOUND) and not yet accepted (STORE_ECONFLICT).
 * title NULL keeps the title.  submit: the new state is "submitted", else
 * "draft".  doc: an object, the CYDER sections (detection, response,
 * reporting, recovery).  res->id: report id; res->version: new version. */
int store_report_save(store *st, const char *ex, int team, int64_t report_id,
                      int64_t base_version, const char *title, const json_t *doc,
                      int submit, const char *author, int64_t ts_ms,
                      store_cb cb, void *opaque);
/* An instructor's review of one version of a report of `ex`.  comments: an
 * array of {section, quote or offset, text}; grades: {criterion: points}.
 * decision "comment" (any version), or "return" / "accept", which need the
 * report submitted and `version` its current version (else
 * STORE_ECONFLICT) and set its state to "returned" / "accepted".
 * res->id: review id. */
int store_review_add(store *st, const char *ex, int64_t report_id, int64_t version,
                     const char *reviewer, int64_t ts_ms, const json_t *comments,
                     const json_t *grades, const char *decision,
                     store_cb cb, void *opaque);
/* A message to a team's inbox (team >= 1); deadline_ms 0: none.
 * res->id: inbox id. */
int store_inbox_add(store *st, const char *ex, int team, const char *step,
                    int64_t ts_ms, int64_t deadline_ms, const json_t *doc,
                    store_cb cb, void *opaque);
/* A team's answer to one of ITS inbox items (else STORE_ENOTFOUND).
 * res->id: response id. */
int store_response_add(store *st, const char *ex, int team, int64_t inbox_id,
                       int64_t user_id, int64_t ts_ms, const char *text,
                       store_cb cb, void *opaque);
/* Grades a response of `ex` (regrading replaces the points). */
int store_response_grade(store *st, const char *ex, int64_t response_id,
                         double points, const char *grader, int64_t graded_ms,
                         store_cb cb, void *opaque);
/* A score snapshot for the score-over-time plot. */
int store_score_snapshot(store *st, const char *ex, int team, int64_t ts_ms,
                         double total, const json_t *breakdown,
                         store_cb cb, void *opaque);
/* A team's self-analysis after the exercise (team >= 1): one document per
 * team, replaced as a whole (upsert).  doc: an object (the API checks its
 * items); author may be NULL.  A team that is not in `ex` is
 * STORE_ENOTFOUND. */
int store_analysis_put(store *st, const char *ex, int team, const json_t *doc,
                       const char *author, int64_t updated_ms, store_cb cb, void *opaque);
/* Users.  role: "instructor" | "member" | "observer"; a member has a team
 * >= 1, the others team 0.  pw_hash: the caller's argon2id string, stored
 * as given.  A taken name is STORE_ECONFLICT.  res->id: user id. */
int store_user_add(store *st, const char *name, const char *role, int team,
                   const char *pw_hash, int64_t created_ms,
                   store_cb cb, void *opaque);
int store_user_set_password(store *st, int64_t user_id, const char *pw_hash,
                            store_cb cb, void *opaque);
int store_user_disable(store *st, int64_t user_id, int disabled,
                       store_cb cb, void *opaque);
/* Sessions, keyed by the HASH of the token (the caller hashes it). */
int store_session_add(store *st, const char *token_hash, int64_t user_id,
                      int64_t created_ms, int64_t expires_ms, const char *csrf,
                      store_cb cb, void *opaque);
int store_session_delete(store *st, const char *token_hash,
                         store_cb cb, void *opaque);
/* Deletes sessions with expires_ms <= now_ms; res->id: how many. */
int store_session_purge_expired(store *st, int64_t now_ms,
                                store_cb cb, void *opaque);

/* ---- reads (synchronous; NEW references; NULL with `e` on failure) ------
 * `e` may be NULL.  "Get one" functions fail with STORE_ENOTFOUND when the
 * row is missing or out of scope; lists return an empty array instead. */

json_t *store_exercise_get(store *st, const char *ex, store_err *e);
/* Every exercise, without the scenario document, newest first. */
json_t *store_exercises_list(store *st, store_err *e);
json_t *store_teams_list(store *st, const char *ex, store_err *e);
json_t *store_hosts_list(store *st, const char *ex, int team, store_err *e);
json_t *store_timeline_get(store *st, const char *ex, int team, store_err *e);
/* Every team's snapshot of `ex` (resuming after a crash). */
json_t *store_timeline_list(store *st, const char *ex, store_err *e);
/* Entries with seq > since_seq, oldest first, at most `limit` (0: 10,000). */
json_t *store_journal_list(store *st, const char *ex, int team, int64_t since_seq,
                           int limit, store_err *e);
/* Flows with last_ms >= since_ms, by first_ms, at most `limit` (0: 10,000). */
json_t *store_flows_list(store *st, const char *ex, int team, int64_t since_ms,
                         int limit, store_err *e);
/* Check runs with ts_ms >= since_ms; check_id NULL: every check. */
json_t *store_check_list(store *st, const char *ex, int team, const char *check_id,
                         int64_t since_ms, store_err *e);
json_t *store_findings_list(store *st, const char *ex, int team, store_err *e);
json_t *store_finding_get(store *st, const char *ex, int team, int64_t finding_id,
                          store_err *e);
/* Reports without their versions. */
json_t *store_reports_list(store *st, const char *ex, int team, store_err *e);
/* One report with "versions" (every version, oldest first, with its doc)
 * and "reviews" (oldest first). */
json_t *store_report_get(store *st, const char *ex, int team, int64_t report_id,
                         store_err *e);
json_t *store_inbox_list(store *st, const char *ex, int team, store_err *e);
/* Responses of the team (inbox_id 0: to every item). */
json_t *store_responses_list(store *st, const char *ex, int team, int64_t inbox_id,
                             store_err *e);
/* Snapshots with ts_ms >= since_ms, by time. */
json_t *store_scores_series(store *st, const char *ex, int team, int64_t since_ms,
                            store_err *e);
/* The team's self-analysis {team, doc, updated_ms, author}; STORE_ENOTFOUND
 * when it has none yet, STORE_EINVAL for team < 1 (one team only). */
json_t *store_analysis_get(store *st, const char *ex, int team, store_err *e);
/* The analyses of every team (team 0) or of one team, by team. */
json_t *store_analyses_list(store *st, const char *ex, int team, store_err *e);
/* A user WITH pw_hash (for login only: never send it to a client). */
json_t *store_user_get_by_name(store *st, const char *name, store_err *e);
/* A user without pw_hash. */
json_t *store_user_get(store *st, int64_t user_id, store_err *e);
/* Every user without pw_hash, by id. */
json_t *store_users_list(store *st, store_err *e);
/* A live session (expires_ms > now_ms) with its user's id, name, role, team
 * and disabled flag; STORE_ENOTFOUND when missing or expired. */
json_t *store_session_get(store *st, const char *token_hash, int64_t now_ms,
                          store_err *e);

#endif
