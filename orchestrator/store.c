#include "store.h"

#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "CYRG": a database with another application id is somebody else's. */
#define STORE_APP_ID 0x43595247
/* One transaction takes at most this many operations, so one batch never
 * holds the write lock for long. */
#define BATCH_MAX 4096
/* Operations waiting for the writer; beyond this, writes are refused
 * rather than growing without bound. */
#define QUEUE_MAX 200000
#define FLOWS_MAX 50000
#define LIST_LIMIT 10000
#define CACHE_MAX 96
#define OP_MAXV 12
#define FLOW_NV 11

/* ---- schema ----------------------------------------------------------- */

/* Migrations, in order; migration i brings user_version from i to i + 1.
 * Never edit a shipped one: append a new one. */
static const char *const MIGRATIONS[] = {
    /* 1: the runtime of an exercise (range, timeline, ground truth, capture,
     * checks). */
    "CREATE TABLE exercises("
    " id TEXT PRIMARY KEY, scenario_id TEXT NOT NULL, scenario_json TEXT,"
    " created_ms INTEGER NOT NULL,"
    " state TEXT NOT NULL CHECK(state IN ('running','stopped')),"
    " speed REAL NOT NULL, seed INTEGER NOT NULL, options_json TEXT);"
    "CREATE TABLE teams("
    " exercise TEXT NOT NULL REFERENCES exercises(id),"
    " team INTEGER NOT NULL CHECK(team >= 1), name TEXT NOT NULL,"
    " PRIMARY KEY(exercise, team)) WITHOUT ROWID;"
    "CREATE TABLE hosts("
    " exercise TEXT NOT NULL REFERENCES exercises(id), team INTEGER NOT NULL,"
    " host TEXT NOT NULL, domain TEXT, state TEXT NOT NULL, detail TEXT,"
    " updated_ms INTEGER NOT NULL, PRIMARY KEY(exercise, team, host)) WITHOUT ROWID;"
    "CREATE TABLE timeline("
    " exercise TEXT NOT NULL REFERENCES exercises(id), team INTEGER NOT NULL,"
    " state_json TEXT NOT NULL, updated_ms INTEGER NOT NULL,"
    " PRIMARY KEY(exercise, team)) WITHOUT ROWID;"
    "CREATE TABLE journal("
    " seq INTEGER PRIMARY KEY, exercise TEXT NOT NULL REFERENCES exercises(id),"
    " team INTEGER NOT NULL, ts_ms INTEGER NOT NULL, kind TEXT NOT NULL,"
    " step TEXT, entry_json TEXT NOT NULL);"
    "CREATE INDEX journal_scope ON journal(exercise, team, seq);"
    "CREATE TABLE flows("
    " exercise TEXT NOT NULL REFERENCES exercises(id), team INTEGER NOT NULL,"
    " community_id TEXT NOT NULL, proto NOT NULL, src TEXT NOT NULL,"
    " sport INTEGER NOT NULL, dst TEXT NOT NULL, dport INTEGER NOT NULL,"
    " first_ms INTEGER NOT NULL, last_ms INTEGER NOT NULL,"
    " packets INTEGER NOT NULL, bytes INTEGER NOT NULL, doc_json TEXT NOT NULL,"
    " PRIMARY KEY(exercise, team, community_id, first_ms));"
    "CREATE INDEX flows_last ON flows(exercise, team, last_ms);"
    "CREATE TABLE check_results("
    " exercise TEXT NOT NULL REFERENCES exercises(id), team INTEGER NOT NULL,"
    " check_id TEXT NOT NULL, ts_ms INTEGER NOT NULL, ok INTEGER NOT NULL,"
    " detail TEXT);"
    "CREATE INDEX check_results_scope ON check_results(exercise, team, check_id, ts_ms);",

    /* 2: what people do through the API (users, findings, reports, inbox,
     * scores). */
    "CREATE TABLE users("
    " id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
    " role TEXT NOT NULL CHECK(role IN ('instructor','member','observer')),"
    " team INTEGER CHECK(team IS NULL OR team >= 1), pw_hash TEXT NOT NULL,"
    " created_ms INTEGER NOT NULL, disabled INTEGER NOT NULL DEFAULT 0,"
    " CHECK((role = 'member') = (team IS NOT NULL)));"
    "CREATE TABLE sessions("
    " token_hash TEXT PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id),"
    " created_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL,"
    " csrf TEXT NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX sessions_user ON sessions(user_id);"
    "CREATE INDEX sessions_expiry ON sessions(expires_ms);"
    "CREATE TABLE findings("
    " id INTEGER PRIMARY KEY, exercise TEXT NOT NULL REFERENCES exercises(id),"
    " team INTEGER NOT NULL CHECK(team >= 1), user_id INTEGER REFERENCES users(id),"
    " submitted_ms INTEGER NOT NULL, detected_ms INTEGER, doc_json TEXT NOT NULL,"
    " label TEXT CHECK(label IN ('duplicate','benign','unscripted')),"
    " label_by TEXT, label_ms INTEGER);"
    "CREATE INDEX findings_scope ON findings(exercise, team, id);"
    "CREATE TABLE reports("
    " id INTEGER PRIMARY KEY, exercise TEXT NOT NULL REFERENCES exercises(id),"
    " team INTEGER NOT NULL CHECK(team >= 1), title TEXT NOT NULL,"
    " state TEXT NOT NULL CHECK(state IN ('draft','submitted','returned','accepted')),"
    " created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
    " current_version INTEGER NOT NULL);"
    "CREATE INDEX reports_scope ON reports(exercise, team, id);"
    "CREATE TABLE report_versions("
    " report INTEGER NOT NULL REFERENCES reports(id), version INTEGER NOT NULL,"
    " doc_json TEXT NOT NULL, author TEXT, ts_ms INTEGER NOT NULL,"
    " submitted INTEGER NOT NULL, PRIMARY KEY(report, version)) WITHOUT ROWID;"
    "CREATE TABLE reviews("
    " id INTEGER PRIMARY KEY, report INTEGER NOT NULL, version INTEGER NOT NULL,"
    " reviewer TEXT NOT NULL, ts_ms INTEGER NOT NULL, comments_json TEXT NOT NULL,"
    " grades_json TEXT NOT NULL,"
    " decision TEXT NOT NULL CHECK(decision IN ('comment','return','accept')),"
    " FOREIGN KEY(report, version) REFERENCES report_versions(report, version));"
    "CREATE INDEX reviews_report ON reviews(report, id);"
    "CREATE TABLE inbox("
    " id INTEGER PRIMARY KEY, exercise TEXT NOT NULL REFERENCES exercises(id),"
    " team INTEGER NOT NULL CHECK(team >= 1), step TEXT, ts_ms INTEGER NOT NULL,"
    " deadline_ms INTEGER, doc_json TEXT NOT NULL);"
    "CREATE INDEX inbox_scope ON inbox(exercise, team, id);"
    "CREATE TABLE responses("
    " id INTEGER PRIMARY KEY, inbox_id INTEGER NOT NULL REFERENCES inbox(id),"
    " team INTEGER NOT NULL, user_id INTEGER REFERENCES users(id),"
    " ts_ms INTEGER NOT NULL, text TEXT NOT NULL, points REAL, grader TEXT,"
    " graded_ms INTEGER);"
    "CREATE INDEX responses_inbox ON responses(inbox_id, id);"
    "CREATE TABLE scores("
    " exercise TEXT NOT NULL REFERENCES exercises(id), team INTEGER NOT NULL,"
    " ts_ms INTEGER NOT NULL, total REAL NOT NULL, breakdown_json TEXT);"
    "CREATE INDEX scores_scope ON scores(exercise, team, ts_ms);",

    /* 3: each team's self-analysis after the exercise, one document per
     * team, replaced as a whole. */
    "CREATE TABLE analyses("
    " exercise TEXT NOT NULL REFERENCES exercises(id),"
    " team INTEGER NOT NULL CHECK(team >= 1), doc_json TEXT NOT NULL,"
    " updated_ms INTEGER NOT NULL, author TEXT,"
    " PRIMARY KEY(exercise, team),"
    " FOREIGN KEY(exercise, team) REFERENCES teams(exercise, team)) WITHOUT ROWID;",
};
#define N_MIGRATIONS ((int)(sizeof(MIGRATIONS) / sizeof(MIGRATIONS[0])))

/* ---- types ------------------------------------------------------------ */

enum { SV_NULL, SV_INT, SV_REAL, SV_TEXT };

/* One bound value; a text value is owned by whoever holds the sval. */
typedef struct sval {
    int t;
    int64_t i;
    double d;
    char *s;
} sval;

/* A connection with its prepared statements, keyed by the address of the
 * SQL literal: every statement is prepared once per connection. */
typedef struct conn {
    sqlite3 *db;
    int n;
    const char *sql[CACHE_MAX];
    sqlite3_stmt *stmt[CACHE_MAX];
} conn;

typedef struct op op;
/* Runs on the writer thread inside the op's savepoint: 0, or -1 with
 * o->res.err set. */
typedef int (*op_run)(conn *c, op *o);

enum {
    OPF_ROWID = 1,       /* res.id = last insert rowid */
    OPF_CHANGES = 2,     /* res.id = rows changed */
    OPF_NEED_CHANGE = 4, /* no row changed: STORE_ENOTFOUND */
};

struct op {
    op *next;
    op_run run;
    const char *sql;
    const char *sql2;   /* run after sql with the same values, if set */
    const char *what;   /* for messages */
    unsigned flags;
    int nv;
    sval v[OP_MAXV];
    sval *rows;         /* store_flows_put: nrows * FLOW_NV values */
    int nrows;
    int prefailed;      /* invalid before it reached the writer */
    store_cb cb;
    void *opaque;
    store_result res;
};

struct store {
    uv_loop_t *loop;
    uv_async_t async;   /* the writer's "results are ready" */
    uv_thread_t thread;
    uv_mutex_t mu;      /* guards everything down to `stats` */
    uv_cond_t cv;
    op *q_head, *q_tail;
    uint64_t q_len;
    op *d_head, *d_tail;
    int closing;
    int writer_done;
    store_stats stats;
    /* Loop thread only. */
    int naive;
    int thread_started;
    int torn_down;
    void (*close_cb)(void *opaque);
    void *close_opaque;
    conn w;             /* the writer thread's, except during open/close */
    conn r;             /* the loop thread's, read-only */
};

/* ---- errors ----------------------------------------------------------- */

static void set_err(store_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(store_err *e, int code, const char *fmt, ...)
{
    va_list ap;
    if (e == NULL)
        return;
    e->code = code;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
}

/* Maps a failed SQLite call to a store code: key clashes are conflicts,
 * a missing parent row is "not found", other constraints are bad input,
 * everything else is an I/O failure. */
static void db_err(store_err *e, sqlite3 *db, int rc, const char *what)
{
    int code = STORE_EIO;
    int ext = db ? sqlite3_extended_errcode(db) : rc;
    if ((rc & 0xff) == SQLITE_CONSTRAINT) {
        if (ext == SQLITE_CONSTRAINT_PRIMARYKEY || ext == SQLITE_CONSTRAINT_UNIQUE)
            code = STORE_ECONFLICT;
        else if (ext == SQLITE_CONSTRAINT_FOREIGNKEY)
            code = STORE_ENOTFOUND;
        else
            code = STORE_EINVAL;
    }
    set_err(e, code, "%s: %s", what, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

/* ---- statements ------------------------------------------------------- */

static sqlite3_stmt *prep(conn *c, const char *sql, store_err *e)
{
    sqlite3_stmt *s = NULL;
    int rc;
    for (int i = 0; i < c->n; i++)
        if (c->sql[i] == sql)
            return c->stmt[i];
    if (c->n == CACHE_MAX) {
        set_err(e, STORE_EIO, "statement cache full");
        return NULL;
    }
    rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL);
    if (rc != SQLITE_OK) {
        db_err(e, c->db, rc, "prepare");
        sqlite3_finalize(s);
        return NULL;
    }
    c->sql[c->n] = sql;
    c->stmt[c->n++] = s;
    return s;
}

static void conn_close(conn *c)
{
    for (int i = 0; i < c->n; i++)
        sqlite3_finalize(c->stmt[i]);
    c->n = 0;
    if (c->db)
        sqlite3_close(c->db);
    c->db = NULL;
}

/* Binds v[0..nv) to ?1..?nv, skipping values the statement does not use,
 * so two statements of one operation can share one value list. */
static int bind_all(conn *c, sqlite3_stmt *s, const sval *v, int nv, store_err *e)
{
    int np = sqlite3_bind_parameter_count(s);
    for (int i = 0; i < nv && i < np; i++) {
        int rc;
        switch (v[i].t) {
        case SV_INT: rc = sqlite3_bind_int64(s, i + 1, v[i].i); break;
        case SV_REAL: rc = sqlite3_bind_double(s, i + 1, v[i].d); break;
        case SV_TEXT: rc = sqlite3_bind_text(s, i + 1, v[i].s, -1, SQLITE_STATIC); break;
        default: rc = sqlite3_bind_null(s, i + 1); break;
        }
        if (rc != SQLITE_OK) {
            db_err(e, c->db, rc, "bind");
            return -1;
        }
    }
    return 0;
}

/* Prepares, binds and steps once.  Returns the statement positioned on its
 * first row (*row = 1) or done (*row = 0); the caller reads and calls
 * done().  NULL on failure (already reset). */
static sqlite3_stmt *run_stmt(conn *c, const char *sql, const sval *v, int nv,
                              int *row, const char *what, store_err *e)
{
    sqlite3_stmt *s = prep(c, sql, e);
    int rc;
    if (s == NULL)
        return NULL;
    if (bind_all(c, s, v, nv, e) < 0) {
        sqlite3_clear_bindings(s);
        return NULL;
    }
    rc = sqlite3_step(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        db_err(e, c->db, rc, what);
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
        return NULL;
    }
    *row = rc == SQLITE_ROW;
    return s;
}

/* Ends a statement so it holds no read snapshot and no borrowed text. */
static void done(sqlite3_stmt *s)
{
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
}

static int exec_one(conn *c, const char *sql, const sval *v, int nv,
                    const char *what, store_err *e)
{
    int row;
    sqlite3_stmt *s = run_stmt(c, sql, v, nv, &row, what, e);
    if (s == NULL)
        return -1;
    done(s);
    return 0;
}

/* ---- rows to JSON (reads) --------------------------------------------- */

static int ends_with(const char *s, const char *suffix, size_t *stem)
{
    size_t n = strlen(s), m = strlen(suffix);
    if (n <= m || strcmp(s + n - m, suffix) != 0)
        return 0;
    *stem = n - m;
    return 1;
}

static json_t *row_object(sqlite3_stmt *s)
{
    json_t *o = json_object();
    int n = sqlite3_column_count(s);
    for (int i = 0; o && i < n; i++) {
        const char *name = sqlite3_column_name(s, i);
        int type = sqlite3_column_type(s, i);
        char key[64];
        size_t stem;
        json_t *val = NULL;
        snprintf(key, sizeof(key), "%s", name);
        if (ends_with(name, "_json", &stem) && stem < sizeof(key)) {
            key[stem] = '\0';
            if (type != SQLITE_NULL)
                val = json_loadb((const char *)sqlite3_column_text(s, i),
                                 (size_t)sqlite3_column_bytes(s, i),
                                 JSON_DECODE_ANY, NULL);
        } else if (ends_with(name, "_bool", &stem) && stem < sizeof(key)) {
            key[stem] = '\0';
            if (type != SQLITE_NULL)
                val = json_boolean(sqlite3_column_int64(s, i) != 0);
        } else if (type == SQLITE_INTEGER) {
            val = json_integer(sqlite3_column_int64(s, i));
        } else if (type == SQLITE_FLOAT) {
            val = json_real(sqlite3_column_double(s, i));
        } else if (type != SQLITE_NULL) {
            val = json_stringn((const char *)sqlite3_column_text(s, i),
                               (size_t)sqlite3_column_bytes(s, i));
        }
        json_object_set_new(o, key, val ? val : json_null());
    }
    return o;
}

/* Every row of a read as an array (new reference), or NULL with e. */
static json_t *q_rows(store *st, const char *sql, const sval *v, int nv, store_err *e)
{
    json_t *arr = json_array();
    sqlite3_stmt *s = NULL;
    int row = 0;
    if (arr == NULL) {
        set_err(e, STORE_EIO, "out of memory");
        return NULL;
    }
    s = run_stmt(&st->r, sql, v, nv, &row, "read", e);
    if (s == NULL) {
        json_decref(arr);
        return NULL;
    }
    while (row) {
        int rc;
        if (json_array_append_new(arr, row_object(s)) < 0) {
            set_err(e, STORE_EIO, "out of memory");
            goto fail;
        }
        rc = sqlite3_step(s);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
            db_err(e, st->r.db, rc, "read");
            goto fail;
        }
        row = rc == SQLITE_ROW;
    }
    done(s);
    return arr;
fail:
    done(s);
    json_decref(arr);
    return NULL;
}

/* The first row (new reference), or NULL: STORE_ENOTFOUND when none. */
static json_t *q_one(store *st, const char *sql, const sval *v, int nv,
                     const char *what, store_err *e)
{
    json_t *arr = q_rows(st, sql, v, nv, e);
    json_t *o = NULL;
    if (arr == NULL)
        return NULL;
    if (json_array_size(arr) == 0)
        set_err(e, STORE_ENOTFOUND, "no such %s", what);
    else
        o = json_incref(json_array_get(arr, 0));
    json_decref(arr);
    return o;
}

#define VI(x) ((sval){ .t = SV_INT, .i = (int64_t)(x) })
#define VT(x) ((sval){ .t = (x) ? SV_TEXT : SV_NULL, .s = (char *)(x) })
#define NV(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* ---- operations (loop side) ------------------------------------------- */

static void op_free(op *o)
{
    if (o == NULL)
        return;
    for (int i = 0; i < o->nv; i++)
        free(o->v[i].s);
    for (int i = 0; i < o->nrows * FLOW_NV; i++)
        free(o->rows[i].s);
    free(o->rows);
    free(o);
}

/* A new operation, or NULL when the store is closing or memory ran out. */
static op *op_new(store *st, op_run run, const char *sql, unsigned flags,
                  const char *what, store_cb cb, void *opaque)
{
    op *o;
    int closing;
    uv_mutex_lock(&st->mu);
    closing = st->closing || st->q_len >= QUEUE_MAX;
    uv_mutex_unlock(&st->mu);
    if (closing || (o = calloc(1, sizeof(*o))) == NULL)
        return NULL;
    o->run = run;
    o->sql = sql;
    o->flags = flags;
    o->what = what;
    o->cb = cb;
    o->opaque = opaque;
    return o;
}

static void op_bad(op *o, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Marks an operation invalid: it still goes through the queue, so its
 * callback runs later like every other's, never from inside the call. */
static void op_bad(op *o, int code, const char *fmt, ...)
{
    va_list ap;
    if (o->prefailed)
        return;
    o->prefailed = 1;
    o->res.rc = -1;
    o->res.err.code = code;
    va_start(ap, fmt);
    vsnprintf(o->res.err.msg, sizeof(o->res.err.msg), fmt, ap);
    va_end(ap);
}

static int utf8_ok(const char *s)
{
    json_t *t = json_string(s);
    json_decref(t);
    return t != NULL;
}

static void val_text(op *o, sval *v, const char *s, int required, const char *name)
{
    v->t = SV_NULL;
    if (s == NULL) {
        if (required)
            op_bad(o, STORE_EINVAL, "%s is required", name);
        return;
    }
    if (!utf8_ok(s)) {
        op_bad(o, STORE_EINVAL, "%s is not UTF-8", name);
        return;
    }
    if ((v->s = strdup(s)) == NULL) {
        op_bad(o, STORE_EIO, "out of memory");
        return;
    }
    v->t = SV_TEXT;
}

static void op_text(op *o, const char *s, int required, const char *name)
{
    val_text(o, &o->v[o->nv++], s, required, name);
}

static void op_int(op *o, int64_t i)
{
    o->v[o->nv].t = SV_INT;
    o->v[o->nv++].i = i;
}

static void op_real(op *o, double d)
{
    o->v[o->nv].t = SV_REAL;
    o->v[o->nv++].d = d;
}

/* A positive id, or NULL for 0 (optional references). */
static void op_ref(op *o, int64_t id)
{
    if (id > 0)
        op_int(o, id);
    else
        o->v[o->nv++].t = SV_NULL;
}

/* Serializes a document now, on the loop thread: the writer thread never
 * touches jansson values, whose reference counts belong to the loop. */
static void op_json(op *o, const json_t *doc, int required, const char *name)
{
    sval *v = &o->v[o->nv++];
    v->t = SV_NULL;
    if (doc == NULL) {
        if (required)
            op_bad(o, STORE_EINVAL, "%s is required", name);
        return;
    }
    v->s = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
    if (v->s == NULL) {
        op_bad(o, STORE_EINVAL, "%s cannot be serialized", name);
        return;
    }
    v->t = SV_TEXT;
}

static int in_set(const char *s, const char *const *set)
{
    for (; s && *set; set++)
        if (strcmp(s, *set) == 0)
            return 1;
    return 0;
}

static int run_batch(store *st, op *batch);
static void batch_done(store *st, op *batch, op *last, uint64_t n, int committed);

static int submit(store *st, op *o)
{
    int rc = 0;
    if (st->naive) {
        /* The reference: one transaction and one fsync per write, with the
         * loop waiting for the disk. */
        batch_done(st, o, o, 1, run_batch(st, o));
        return 0;
    }
    uv_mutex_lock(&st->mu);
    if (st->closing) {
        rc = -1;
    } else {
        if (st->q_tail)
            st->q_tail->next = o;
        else
            st->q_head = o;
        st->q_tail = o;
        st->q_len++;
        uv_cond_signal(&st->cv);
    }
    uv_mutex_unlock(&st->mu);
    if (rc < 0)
        op_free(o);
    return rc;
}

/* ---- operations (writer side) ----------------------------------------- */

static int run_exec(conn *c, op *o)
{
    if (exec_one(c, o->sql, o->v, o->nv, o->what, &o->res.err) < 0)
        return -1;
    if ((o->flags & OPF_NEED_CHANGE) && sqlite3_changes(c->db) == 0) {
        set_err(&o->res.err, STORE_ENOTFOUND, "%s: no such row in scope", o->what);
        return -1;
    }
    if (o->flags & OPF_ROWID)
        o->res.id = sqlite3_last_insert_rowid(c->db);
    if (o->flags & OPF_CHANGES)
        o->res.id = sqlite3_changes(c->db);
    if (o->sql2 && exec_one(c, o->sql2, o->v, o->nv, o->what, &o->res.err) < 0)
        return -1;
    return 0;
}

static const char SQL_FLOW_PUT[] =
    "INSERT INTO flows(exercise, team, community_id, proto, src, sport, dst, dport,"
    " first_ms, last_ms, packets, bytes, doc_json)"
    " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
    " ON CONFLICT(exercise, team, community_id, first_ms) DO UPDATE SET"
    " last_ms = max(last_ms, excluded.last_ms), packets = excluded.packets,"
    " bytes = excluded.bytes, doc_json = excluded.doc_json";

static int run_flows(conn *c, op *o)
{
    /* Each row's values follow the exercise and team of the op. */
    for (int r = 0; r < o->nrows; r++) {
        sval v[2 + FLOW_NV];
        v[0] = o->v[0];
        v[1] = o->v[1];
        memcpy(v + 2, o->rows + (size_t)r * FLOW_NV, sizeof(sval) * FLOW_NV);
        if (exec_one(c, SQL_FLOW_PUT, v, NV(v), "flow", &o->res.err) < 0)
            return -1;
    }
    o->res.id = o->nrows;
    return 0;
}

/* store_report_save values: ex, team, report_id, base_version, title, doc,
 * submit, author, ts_ms. */
static int run_report_save(conn *c, op *o)
{
    static const char sel[] =
        "SELECT current_version, state FROM reports"
        " WHERE id = ?3 AND exercise = ?1 AND team = ?2";
    static const char ins_report[] =
        "INSERT INTO reports(exercise, team, title, state, created_ms, updated_ms,"
        " current_version) VALUES(?1, ?2, ?5, CASE WHEN ?7 THEN 'submitted'"
        " ELSE 'draft' END, ?9, ?9, 1)";
    static const char upd_report[] =
        "UPDATE reports SET current_version = current_version + 1,"
        " title = coalesce(?5, title), updated_ms = ?9,"
        " state = CASE WHEN ?7 THEN 'submitted' ELSE 'draft' END WHERE id = ?3";
    static const char ins_version[] =
        "INSERT INTO report_versions(report, version, doc_json, author, ts_ms, submitted)"
        " SELECT id, current_version, ?6, ?8, ?9, ?7 FROM reports WHERE id = ?3";
    store_err *e = &o->res.err;
    int64_t id = o->v[2].i, base = o->v[3].i, cur;
    int row;

    if (id == 0) {
        if (exec_one(c, ins_report, o->v, o->nv, "report", e) < 0)
            return -1;
        o->v[2].i = id = sqlite3_last_insert_rowid(c->db);
        cur = 0;
    } else {
        sqlite3_stmt *s = run_stmt(c, sel, o->v, o->nv, &row, "report", e);
        char state[16] = "";
        if (s == NULL)
            return -1;
        cur = row ? sqlite3_column_int64(s, 0) : 0;
        if (row)
            snprintf(state, sizeof(state), "%s", (const char *)sqlite3_column_text(s, 1));
        done(s);
        if (!row) {
            set_err(e, STORE_ENOTFOUND, "no report %lld in this team", (long long)id);
            return -1;
        }
        if (strcmp(state, "accepted") == 0) {
            set_err(e, STORE_ECONFLICT, "report %lld is accepted and final", (long long)id);
            return -1;
        }
        if (cur != base) {
            set_err(e, STORE_ECONFLICT,
                    "report %lld is at version %lld, the save was based on %lld",
                    (long long)id, (long long)cur, (long long)base);
            return -1;
        }
        if (exec_one(c, upd_report, o->v, o->nv, "report", e) < 0)
            return -1;
    }
    if (exec_one(c, ins_version, o->v, o->nv, "report version", e) < 0)
        return -1;
    o->res.id = id;
    o->res.version = cur + 1;
    return 0;
}

/* store_review_add values: ex, report, version, reviewer, ts_ms, comments,
 * grades, decision. */
static int run_review_add(conn *c, op *o)
{
    static const char sel[] =
        "SELECT r.current_version, r.state, v.version FROM reports r"
        " LEFT JOIN report_versions v ON v.report = r.id AND v.version = ?3"
        " WHERE r.id = ?2 AND r.exercise = ?1";
    static const char ins[] =
        "INSERT INTO reviews(report, version, reviewer, ts_ms, comments_json,"
        " grades_json, decision) VALUES(?2, ?3, ?4, ?5, ?6, ?7, ?8)";
    static const char upd[] =
        "UPDATE reports SET state = CASE ?8 WHEN 'return' THEN 'returned'"
        " ELSE 'accepted' END, updated_ms = ?5 WHERE id = ?2";
    store_err *e = &o->res.err;
    const char *decision = o->v[7].s;
    int64_t cur, ver = o->v[2].i;
    int row, has_version;
    char state[16] = "";
    sqlite3_stmt *s = run_stmt(c, sel, o->v, o->nv, &row, "review", e);

    if (s == NULL)
        return -1;
    cur = row ? sqlite3_column_int64(s, 0) : 0;
    if (row)
        snprintf(state, sizeof(state), "%s", (const char *)sqlite3_column_text(s, 1));
    has_version = row && sqlite3_column_type(s, 2) != SQLITE_NULL;
    done(s);
    if (!row) {
        set_err(e, STORE_ENOTFOUND, "no report %lld in this exercise", (long long)o->v[1].i);
        return -1;
    }
    if (!has_version) {
        set_err(e, STORE_ENOTFOUND, "report %lld has no version %lld",
                (long long)o->v[1].i, (long long)ver);
        return -1;
    }
    if (strcmp(decision, "comment") != 0) {
        if (strcmp(state, "submitted") != 0) {
            set_err(e, STORE_ECONFLICT, "report %lld is %s, not submitted",
                    (long long)o->v[1].i, state);
            return -1;
        }
        if (ver != cur) {
            set_err(e, STORE_ECONFLICT, "report %lld is at version %lld, not %lld",
                    (long long)o->v[1].i, (long long)cur, (long long)ver);
            return -1;
        }
    }
    if (exec_one(c, ins, o->v, o->nv, "review", e) < 0)
        return -1;
    o->res.id = sqlite3_last_insert_rowid(c->db);
    if (strcmp(decision, "comment") != 0 && exec_one(c, upd, o->v, o->nv, "review", e) < 0)
        return -1;
    return 0;
}

/* ---- the writer thread ------------------------------------------------ */

static const char SQL_BEGIN[] = "BEGIN IMMEDIATE";
static const char SQL_COMMIT[] = "COMMIT";
static const char SQL_ROLLBACK[] = "ROLLBACK";
static const char SQL_SAVEPOINT[] = "SAVEPOINT op";
static const char SQL_ROLLBACK_TO[] = "ROLLBACK TO op";
static const char SQL_RELEASE[] = "RELEASE op";

static void fail_all(op *o, op *stop, const store_err *why)
{
    for (; o != stop; o = o->next) {
        if (o->res.rc == 0) {
            o->res.rc = -1;
            o->res.err = *why;
            o->res.id = 0;
            o->res.version = 0;
        }
    }
}

/* Runs a batch in one transaction, one savepoint per operation.  Sets
 * every op's res; returns 1 when the transaction committed. */
static int run_batch(store *st, op *batch)
{
    conn *c = &st->w;
    store_err e = { 0, "" };
    op *o;

    if (exec_one(c, SQL_BEGIN, NULL, 0, "begin", &e) < 0) {
        fail_all(batch, NULL, &e);
        return 0;
    }
    for (o = batch; o; o = o->next) {
        if (o->prefailed)
            continue;
        if (exec_one(c, SQL_SAVEPOINT, NULL, 0, "savepoint", &e) < 0)
            goto abort;
        if (o->run(c, o) == 0) {
            if (exec_one(c, SQL_RELEASE, NULL, 0, "release", &e) < 0)
                goto abort;
            continue;
        }
        o->res.rc = -1;
        o->res.id = 0;
        o->res.version = 0;
        /* An I/O error can make SQLite roll back the whole transaction;
         * then nothing of this batch is on disk and the rest must not run
         * outside a transaction. */
        if (sqlite3_get_autocommit(c->db)) {
            set_err(&e, STORE_EIO, "transaction rolled back: %s", o->res.err.msg);
            goto abort;
        }
        if (exec_one(c, SQL_ROLLBACK_TO, NULL, 0, "rollback to", &e) < 0 ||
            exec_one(c, SQL_RELEASE, NULL, 0, "release", &e) < 0)
            goto abort;
    }
    if (exec_one(c, SQL_COMMIT, NULL, 0, "commit", &e) == 0)
        return 1;
abort:
    if (!sqlite3_get_autocommit(c->db)) {
        store_err ignored;
        exec_one(c, SQL_ROLLBACK, NULL, 0, "rollback", &ignored);
    }
    fail_all(batch, NULL, &e);
    return 0;
}

/* Hands a finished batch to the loop, where the callbacks run. */
static void batch_done(store *st, op *batch, op *last, uint64_t n, int committed)
{
    uint64_t failed = 0;
    for (op *o = batch; o; o = o->next)
        failed += o->res.rc != 0;
    uv_mutex_lock(&st->mu);
    if (st->d_tail)
        st->d_tail->next = batch;
    else
        st->d_head = batch;
    st->d_tail = last;
    st->stats.ops += n;
    st->stats.failed += failed;
    st->stats.batches++;
    st->stats.commits += committed;
    if (n > st->stats.max_batch)
        st->stats.max_batch = n;
    uv_mutex_unlock(&st->mu);
    uv_async_send(&st->async);
}

static void writer_main(void *arg)
{
    store *st = arg;
    for (;;) {
        op *batch, *last;
        uint64_t n = 0;
        int committed;

        uv_mutex_lock(&st->mu);
        while (st->q_head == NULL && !st->closing)
            uv_cond_wait(&st->cv, &st->mu);
        if (st->q_head == NULL) {
            st->writer_done = 1;
            uv_mutex_unlock(&st->mu);
            uv_async_send(&st->async);
            return;
        }
        batch = last = st->q_head;
        for (n = 1; last->next && n < BATCH_MAX; n++)
            last = last->next;
        st->q_head = last->next;
        if (st->q_head == NULL)
            st->q_tail = NULL;
        st->q_len -= n;
        last->next = NULL;
        uv_mutex_unlock(&st->mu);

        committed = run_batch(st, batch);
        batch_done(st, batch, last, n, committed);
    }
}

/* ---- the loop side ---------------------------------------------------- */

static void on_closed(uv_handle_t *h)
{
    store *st = h->data;
    void (*cb)(void *) = st->close_cb;
    void *opaque = st->close_opaque;
    uv_mutex_destroy(&st->mu);
    uv_cond_destroy(&st->cv);
    free(st);
    if (cb)
        cb(opaque);
}

static void teardown(store *st)
{
    st->torn_down = 1;
    if (st->thread_started)
        uv_thread_join(&st->thread);
    conn_close(&st->w);
    conn_close(&st->r);
    uv_close((uv_handle_t *)&st->async, on_closed);
}

static void on_async(uv_async_t *h)
{
    store *st = h->data;
    op *list;
    int writer_done;

    uv_mutex_lock(&st->mu);
    list = st->d_head;
    st->d_head = st->d_tail = NULL;
    writer_done = st->writer_done;
    uv_mutex_unlock(&st->mu);
    while (list) {
        op *next = list->next;
        if (list->cb)
            list->cb(&list->res, list->opaque);
        op_free(list);
        list = next;
    }
    if (writer_done && !st->torn_down)
        teardown(st);
}

static int pragma(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", sql, msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int pragma_int(sqlite3 *db, const char *sql, int64_t *out, char *err, size_t errlen)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        *out = sqlite3_column_int64(s, 0);
        sqlite3_finalize(s);
        return 0;
    }
    snprintf(err, errlen, "%s: %s", sql, sqlite3_errmsg(db));
    sqlite3_finalize(s);
    return -1;
}

static int pragma_text(sqlite3 *db, const char *sql, char *out, size_t outlen,
                       char *err, size_t errlen)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        snprintf(out, outlen, "%s", (const char *)sqlite3_column_text(s, 0));
        sqlite3_finalize(s);
        return 0;
    }
    snprintf(err, errlen, "%s: %s", sql, sqlite3_errmsg(db));
    sqlite3_finalize(s);
    return -1;
}

/* Brings the schema from its version up to `target`, one transaction per
 * migration, so a crash leaves the file at some whole version. */
static int migrate(sqlite3 *db, int target, int *version, char *err, size_t errlen)
{
    int64_t v, app;
    if (pragma_int(db, "PRAGMA application_id", &app, err, errlen) < 0 ||
        pragma_int(db, "PRAGMA user_version", &v, err, errlen) < 0)
        return -1;
    if (app != 0 && app != STORE_APP_ID) {
        snprintf(err, errlen, "not a cyrange database (application id %lld)", (long long)app);
        return -1;
    }
    if (v > N_MIGRATIONS || v < 0) {
        snprintf(err, errlen, "database schema version %lld is newer than this cyrange (%d)",
                 (long long)v, N_MIGRATIONS);
        return -1;
    }
    for (; v < target; v++) {
        char sql[96];
        char *msg = NULL;
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %lld; PRAGMA application_id = %d;",
                 (long long)v + 1, STORE_APP_ID);
        if (pragma(db, "BEGIN IMMEDIATE", err, errlen) < 0)
            return -1;
        if (sqlite3_exec(db, MIGRATIONS[v], NULL, NULL, &msg) != SQLITE_OK ||
            sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK ||
            sqlite3_exec(db, "COMMIT", NULL, NULL, &msg) != SQLITE_OK) {
            snprintf(err, errlen, "migration %lld: %s", (long long)v + 1,
                     msg ? msg : sqlite3_errmsg(db));
            sqlite3_free(msg);
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return -1;
        }
    }
    *version = (int)v;
    return 0;
}

int store_schema_latest(void)
{
    return N_MIGRATIONS;
}

store *store_open_opts(uv_loop_t *loop, const char *path, const store_opts *opts,
                       char *err, size_t errlen)
{
    store *st = calloc(1, sizeof(*st));
    char mode[16];
    int max_version = opts ? opts->max_version : 0;
    int rc, target = max_version > 0 && max_version < N_MIGRATIONS ? max_version : N_MIGRATIONS;

    if (st == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    st->loop = loop;
    /* Each connection is used by one thread at a time (the writer's by the
     * writer thread, the reader's by the loop), so SQLite's own mutexes are
     * not needed. */
    rc = sqlite3_open_v2(path, &st->w.db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s", path,
                 st->w.db ? sqlite3_errmsg(st->w.db) : sqlite3_errstr(rc));
        goto cleanup;
    }
    sqlite3_extended_result_codes(st->w.db, 1);
    sqlite3_busy_timeout(st->w.db, 5000);
    if (pragma_text(st->w.db, "PRAGMA journal_mode = WAL", mode, sizeof(mode), err, errlen) < 0)
        goto cleanup;
    if (strcmp(mode, "wal") != 0) {
        snprintf(err, errlen, "%s: cannot use WAL mode (got %s)", path, mode);
        goto cleanup;
    }
    if (pragma(st->w.db, "PRAGMA synchronous = FULL", err, errlen) < 0 ||
        pragma(st->w.db, "PRAGMA foreign_keys = ON", err, errlen) < 0 ||
        migrate(st->w.db, target, &st->stats.schema_version, err, errlen) < 0)
        goto cleanup;

    rc = sqlite3_open_v2(path, &st->r.db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s for reading: %s", path,
                 st->r.db ? sqlite3_errmsg(st->r.db) : sqlite3_errstr(rc));
        goto cleanup;
    }
    sqlite3_extended_result_codes(st->r.db, 1);
    sqlite3_busy_timeout(st->r.db, 5000);
    if (pragma(st->r.db, "PRAGMA query_only = ON", err, errlen) < 0)
        goto cleanup;

    if (uv_mutex_init(&st->mu) != 0) {
        snprintf(err, errlen, "cannot create a mutex");
        goto cleanup;
    }
    if (uv_cond_init(&st->cv) != 0) {
        snprintf(err, errlen, "cannot create a condition variable");
        uv_mutex_destroy(&st->mu);
        goto cleanup;
    }
    if ((rc = uv_async_init(loop, &st->async, on_async)) != 0) {
        snprintf(err, errlen, "uv_async_init: %s", uv_strerror(rc));
        uv_mutex_destroy(&st->mu);
        uv_cond_destroy(&st->cv);
        goto cleanup;
    }
    st->async.data = st;
    if (opts && opts->naive) {
        st->naive = 1;
        return st;
    }
    if ((rc = uv_thread_create(&st->thread, writer_main, st)) != 0) {
        snprintf(err, errlen, "cannot start the writer thread: %s", uv_strerror(rc));
        /* The handle exists now: the store is freed in its close callback. */
        teardown(st);
        return NULL;
    }
    st->thread_started = 1;
    return st;

cleanup:
    conn_close(&st->w);
    conn_close(&st->r);
    free(st);
    return NULL;
}

store *store_open(uv_loop_t *loop, const char *path, char *err, size_t errlen)
{
    return store_open_opts(loop, path, NULL, err, errlen);
}

void store_close(store *st, void (*cb)(void *opaque), void *opaque)
{
    if (st == NULL)
        return;
    uv_mutex_lock(&st->mu);
    if (st->closing) {
        uv_mutex_unlock(&st->mu);
        return;
    }
    st->closing = 1;
    st->close_cb = cb;
    st->close_opaque = opaque;
    uv_cond_signal(&st->cv);
    /* Without a writer thread, nothing is pending beyond the done list. */
    if (st->naive)
        st->writer_done = 1;
    uv_mutex_unlock(&st->mu);
    if (st->naive)
        uv_async_send(&st->async);
}

void store_stats_get(store *st, store_stats *out)
{
    uv_mutex_lock(&st->mu);
    *out = st->stats;
    out->queued = st->q_len;
    uv_mutex_unlock(&st->mu);
}

/* ---- writes ----------------------------------------------------------- */

static const char *const EX_STATES[] = { "running", "stopped", NULL };
static const char *const LABELS[] = { "duplicate", "benign", "unscripted", NULL };
static const char *const DECISIONS[] = { "comment", "return", "accept", NULL };
static const char *const ROLES[] = { "instructor", "member", "observer", NULL };

static void check_team(op *o, int team, int all_ok)
{
    if (team < (all_ok ? 0 : 1))
        op_bad(o, STORE_EINVAL, "team %d is out of range", team);
}

int store_exercise_put(store *st, const char *ex, const char *scenario_id,
                       const json_t *scenario, int64_t created_ms,
                       const char *state, double speed, int64_t seed,
                       const json_t *options, store_cb cb, void *opaque)
{
    static const char sql[] =
        "INSERT INTO exercises(id, scenario_id, scenario_json, created_ms, state, speed,"
        " seed, options_json) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
        " ON CONFLICT(id) DO UPDATE SET scenario_id = excluded.scenario_id,"
        " scenario_json = excluded.scenario_json, state = excluded.state,"
        " speed = excluded.speed, seed = excluded.seed, options_json = excluded.options_json";
    op *o = op_new(st, run_exec, sql, 0, "exercise", cb, opaque);
    if (o == NULL)
        return -1;
    op_text(o, ex, 1, "exercise id");
    op_text(o, scenario_id, 1, "scenario id");
    op_json(o, scenario, 0, "scenario");
    op_int(o, created_ms);
    op_text(o, state, 1, "state");
    op_real(o, speed);
    op_int(o, seed);
    op_json(o, options, 0, "options");
    if (!in_set(state, EX_STATES))
        op_bad(o, STORE_EINVAL, "exercise state must be running or stopped");
    return submit(st, o);
}

int store_exercise_set_state(store *st, const char *ex, const char *state,
                             store_cb cb, void *opaque)
{
    static const char sql[] = "UPDATE exercises SET state = ?2 WHERE id = ?1";
    op *o = op_new(st, run_exec, sql, OPF_NEED_CHANGE, "exercise", cb, opaque);
    if (o == NULL)
        return -1;
    op_text(o, ex, 1, "exercise id");
    op_text(o, state, 1, "state");
    if (!in_set(state, EX_STATES))
        op_bad(o, STORE_EINVAL, "exercise state must be running or stopped");
    return submit(st, o);
}

int store_team_put(store *st, const char *ex, int team, const char *name,
                   store_cb cb, void *opaque)
{
    static const char sql[] =
        "INSERT INTO teams(exercise, team, name) VALUES(?1, ?2, ?3)"
        " ON CONFLICT(exercise, team) DO UPDATE SET name = excluded.name";
    op *o = op_new(st, run_exec, sql, 0, "team", cb, opaque);
    if (o == NULL)
        return -1;
    op_text(o, ex, 1, "exercise id");
    op_int(o, team);
    op_text(o, name, 1, "team name");
    check_team(o, team, 0);
    return submit(st, o);
}

int store_host_put(store *st, const char *ex, int team, const char *host,
                   const char *domain, const char *state, const char *detail,
                   int64_t updated_ms, store_cb cb, void *opaque)
{
    static const char sql[] =
        "INSERT INTO hosts(exercise, team, host, domain, state, detail, updated_ms)"
        " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(exercise, team, host) DO UPDATE"
        " SET domain = excluded.domain, state = excluded.state, detail = excluded.detail,"
        " updated_ms = excluded.updated_ms";
    op *o = op_new(st, run_exec, sql, 0, "host", cb, opaque);
    if (o == NULL)
        return -1;
    op_text(o, ex, 1, "exercise id");
    op_int(o, team);
    op_text(o, host, 1, "host");
    op_text(o, domain, 0, "domain");
    op_text(o, state, 1, "host state");
    op_text(o, detail, 0, "detail");
    op_int(o, updated_ms);
    check_team(o, team, 0);
    return submit(st, o);
}

int store_timeline_put(store *st, const char *ex, int team, const json_t *state,
                       int64_t updated_ms, store_cb cb, void *opaque)
{
    static const char sql[] =
        "INSERT INTO timeline(exercise, team, state_json, updated_ms) VALUES(?1, ?2, ?3, ?4)"
        " ON CONFLICT(exercise, team) DO UPDATE SET state_json = excluded.state_json,"
        " updated_ms = excluded.updated_ms";
    op *o = op_new(st, run_exec, sql, 0, "timeline", cb, opaque);
    if (o == NULL)
        return -1;
    op_text(o, ex, 1, "exercise id");
    op_int(o, team);
    op_json(o, state, 1, "timeline state");
    op_int(o, updated_ms);
    check_team(o, team, 0);
    return submit(st, o);
}

int store_journal_append(store *st, const char *ex, int team, int64_t ts_ms,
                         const char *kind, const char *step, const json_t *entry,
                         store_cb cb, void *opaque)
{
    static const char sql[] =
        "INSERT INTO journal(exercise, team, ts_ms, kind, step, entry_json)"
        " VALUES(?1, ?2, ?3, ?4, ?5, ?6)";
    op *o = op_new(st, run_exec, sql, OPF_ROWID, "journal entry", cb, opaque);
    if (o == NULL)
        return -1;
    op_text(o, ex, 1, "exercise id");
    op_int(o, team);
    op_int(o, ts_ms);
    op_text(o, kind, 1, "kind");
    op_text(o, step, 0, "step");
    op_json(o, entry, 1, "journal entry");
    check_team(o, team, 1);
    return submit(st, o);
}

/* One flow object to FLOW_NV values: community_id, proto, src, sport, dst,
 * dport, first_ms, last_ms, packets, bytes, doc. */
static void flow_row(op *o, size_t idx, const json_t *f, sval *v)
{
    static const char *const ints[] = { "sport", "dport", "first_ms", "last_ms",
                                        "packets", "bytes" };
    static const int slot[] = { 3, 5, 6, 7, 8, 9 };
    const json_t *proto = json_object_get(f, "proto");
    char name[48];
    if (!json_is_object(f)) {
        op_bad(o, STORE_EINVAL, "flows[%zu] is not an object", idx);
        return;
    }
    snprintf(name, sizeof(name), "flows[%zu].community_id", idx);
    val_text(o, &v[0], json_string_value(json_object_get(f, "community_id")), 1, name);
    snprintf(name, sizeof(name), "flows[%zu].src", idx);
    val_text(o, &v[2], json_string_value(json_object_get(f, "src")), 1, name);
    snprintf(name, sizeof(name), "flows[%zu].dst", idx);
    val_text(o, &v[4], json_string_value(json_object_get(f, "dst")), 1, name);
    /* The capture may name the protocol ("tcp") or number it (6). */
    if (json_is_integer(proto)) {
        v[1].t = SV_INT;
        v[1].i = json_integer_value(proto);
    } else {
        snprintf(name, sizeof(name), "flows[%zu].proto", idx);
        val_text(o, &v[1], json_string_value(proto), 1, name);
    }
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        const json_t *n = json_object_get(f, ints[i]);
        if (!json_is_integer(n)) {
            op_bad(o, STORE_EINVAL, "flows[%zu].%s must be an integer", idx, ints[i]);
            return;
        }
        v[slot[i]].t = SV_INT;
        v[slot[i]].i = json_integer_value(n);
    }
    v[10].s = json_dumps(f, JSON_COMPACT);
    if (v[10].s)
        v[10].t = SV_TEXT;
    else
        op_bad(o, STORE_EIO, "out of memory");
}

int store_flows_put(store *st, const char *ex, int team, const json_t *flows,
                    store_cb cb, void *opaque)
{
    op *o = op_new(st, run_flows, NULL, 0, "flows", cb, opaque);
    size_t n = json_array_size(flows);
    if (o == NULL)
        return -1;
    op_text(o, ex, 1, "exercise id");
    op_int(o, team);
    check_team(o, team, 0);
    if (!json_is_array(flows) || n > FLOWS_MAX) {
        op_bad(o, STORE_EINVAL, "flows must be an array of at most %d", FLOWS_MAX);
    } else if (n > 0) {
        o->rows = calloc(n * FLOW_NV, sizeof(sval));
        if (o->rows == NULL) {
            op_free(o);
            return -1;
        }
        o->nrows = (int)n;
        for (size_t i = 0; i < n && !o->prefailed; i++)
            flow_row(o, i, json_array_get(flows, i), o->rows + i * FLOW_NV);
    }
    return submit(st, o);
}

int store_check_add(store *st, const char *ex, int team, const char *check_id,
                    int64_t ts_ms, int ok, const char *detail,
                    store_cb cb, void *opaque)
{
    static const char sql[] =
        "INSERT INTO check_results(exercise, team, check_id, ts_ms, ok, detail)"
        " VALUES(?1, ?2, ?3, ?4, ?5, ?6)";
    op *o = op_new(st, run_exec, sql, 0, "check result", cb, opaque);
    if (o == NULL)
        return -1;
    op_text(o, ex, 1, "exercise id");
    op_int(o, team);
    op_text(o, check_id, 1, "check id");
    op_int(o, ts_ms);
    op_int(o, ok != 0);
    op_text(o, detail, 0, "detail");
    check_team(o, team, 0);
    return submit(st, o);
}

int store_finding_add(store *st, const char *ex, int team, int64_t user_id,
                      int64_t submitted_ms, int64_t detected_ms, const json_t *doc,
                      store_cb cb, void *opaque)
{
    static const char sql[] =
        "INSERT INTO findings(exercise, team, user_id, submitted_ms, detected_ms, doc_json)"
        " VALUES(?1, ?2, ?3, ?4, ?5, ?6)";
    op *o = op_new(st, run_exec, sql, OPF_ROWID, "finding", cb, opaque);
    if (o == NULL)
        return -1;
    op_text(o, ex, 1, "exercise id");
    op_int(o, team);
    op_ref(o, user_id);
    op_int(o, submitted_ms);
    op_int(o, detected_ms);
    op_json(o, doc, 1, "finding");
    check_team(o, team, 0);
    return submit(st, o);
}

int store_finding_label(store *st, const char *ex, int64_t finding_id,
                        const char *label, const char *label_by, int64_t label_ms,
                        store_cb cb, void *opaque)
{
    static const char sql[] =
        "UPDATE findings SET label = ?3, label_by = ?4, label_ms = ?5"
        " WHERE id = ?2 AND exercise = ?1";
    op *o = op_new(st, run_exec, sql, OPF_NEED_CHANGE, "finding", cb, opaque);
    if (o == NULL)
        return -1;
    op_text(o, ex, 1, "exercise id");
    op_int(o, finding_id);
    op_text(o, label, 0, "label");
    op_text(o, label_by, label != NULL, "label_by");
    op_int(o, label_ms);
    if (label && !in_set(label, LABELS))
        op_bad(o, STORE_EINVAL, "label must be duplicate, benign or unscripted");
    return submit(st, o);
}

int store_report_save(store *st, const char *ex, int team, int64_t report_id,
                      int64_t base_version, const char *title, const json_t *doc,
                      int submit_it, const char *author, int64_t ts_ms,
                      store_cb cb, void *opaque)
{
    op *o = op_new(st, run_report_save, NULL, 0, "report", cb, opaque);
    if (o == NULL)
        return -1;
    op_text(o, ex, 1, "exercise id");
    op_int(o, team);
    op_int(o, report_id);
    op_int(o, base_version);
    op_text(o, title, report_id == 0, "title");
    op_json(o, doc, 1, "report document");
    op_int(o, submit_it != 0);
    op_text(o, author, 0, "author");
    op_int(o, ts_ms);
    check_team(o, team, 0);
    if (doc && !json_is_object(doc))
        op_bad(o, STORE_EINVAL, "a report document is an object of sections");
    if (report_id < 0 || (report_id == 0 && base_version != 0))
        op_bad(o, STORE_EINVAL, "a new report has no base version");
    return submit(st, o);
}

int store_review_add(store *st, const char *ex, int64_t report_id, int64_t version,
                     const char *reviewer, int64_t ts_ms, const json_t *comments,
                     const json_t *grades, const char *decision,
                     store_cb cb, void *opaque)
{
    op *o = op_new(st, run_review_add, NULL, 0, "review", cb, opaque);
    json_t *empty_list = json_array(), *empty_obj = json_object();
    if (o == NULL) {
        json_decref(empty_list);
        json_decref(empty_obj);
        return -1;
    }
    op_text(o, ex, 1, "exercise id");
    op_int(o, report_id);
    op_int(o, version);
    op_text(o, reviewer, 1, "reviewer");
    op_int(o, ts_ms);
    op_json(o, comments ? comments : empty_list, 1, "comments");
    op_json(o, grades ? grades : empty_obj, 1, "grades");
    op_text(o, decision, 1, "decision");
    json_decref(empty_list);
    json_decref(empty_obj);
    if (comments && !json_is_array(comments))
        op_bad(o, STORE_EINVAL, "comments must be an array");
    if (grades && !json_is_object(grades))
        op_bad(o, STORE_EINVAL, "grades must be an object");
    if (!in_set(decision, DECISIONS))
        op_bad(o, STORE_EINVAL, "decision must be comment, return or accept");
    return submit(st, o);
}

int store_inbox_add(store *st, const char *ex, int team, const char *step,
                    int64_t ts_ms, int64_t deadline_ms, const json_t *doc,
                    store_cb cb, void *opaque)
{
    static const char sql[] =
        "INSERT INTO inbox(exercise, team, step, ts_ms, deadline_ms, doc_json)"
        " VALUES(?1, ?2, ?3, ?4, ?5, ?6)";
    op *o = op_new(st, run_exec, sql, OPF_ROWID, "inbox item", cb, opaque);
    if (o == NULL)
        return -1;
    op_text(o, ex, 1, "exercise id");
    op_int(o, team);
    op_text(o, step, 0, "step");
    op_int(o, ts_ms);
    op_ref(o, deadline_ms);
    op_json(o, doc, 1, "inbox message");
    check_team(o, team, 0);
    return submit(st, o);
}

int store_response_add(store *st, const char *ex, int team, int64_t inbox_id,
                       int64_t user_id, int64_t ts_ms, const char *text,
                       store_cb cb, void *opaque)
{
    /* The insert copies from the team's own inbox row, so an item of
     * another team inserts nothing and reads as not found. */
    static const char sql[] =
        "INSERT INTO responses(inbox_id, team, user_id, ts_ms, text)"
        " SELECT id, team, ?4, ?5, ?6 FROM inbox WHERE id = ?3 AND exercise = ?1 AND team = ?2";
    op *o = op_new(st, run_exec, sql, OPF_ROWID | OPF_NEED_CHANGE, "inbox item", cb, opaque);
    if (o == NULL)
        return -1;
    op_text(o, ex, 1, "exercise id");
    op_int(o, team);
    op_int(o, inbox_id);
    op_ref(o, user_id);
    op_int(o, ts_ms);
    op_text(o, text, 1, "response text");
    check_team(o, team, 0);
    return submit(st, o);
}

int store_response_grade(store *st, const char *ex, int64_t response_id,
                         double points, const char *grader, int64_t graded_ms,
                         store_cb cb, void *opaque)
{
    static const char sql[] =
        "UPDATE responses SET points = ?3, grader = ?4, graded_ms = ?5 WHERE id = ?2"
        " AND inbox_id IN (SELECT id FROM inbox WHERE exercise = ?1)";
    op *o = op_new(st, run_exec, sql, OPF_NEED_CHANGE, "response", cb, opaque);
    if (o == NULL)
        return -1;
    op_text(o, ex, 1, "exercise id");
    op_int(o, response_id);
    op_real(o, points);
    op_text(o, grader, 1, "grader");
    op_int(o, graded_ms);
    return submit(st, o);
}

int store_score_snapshot(store *st, const char *ex, int team, int64_t ts_ms,
                         double total, const json_t *breakdown,
                         store_cb cb, void *opaque)
{
    static const char sql[] =
        "INSERT INTO scores(exercise, team, ts_ms, total, breakdown_json)"
        " VALUES(?1, ?2, ?3, ?4, ?5)";
    op *o = op_new(st, run_exec, sql, 0, "score", cb, opaque);
    if (o == NULL)
        return -1;
    op_text(o, ex, 1, "exercise id");
    op_int(o, team);
    op_int(o, ts_ms);
    op_real(o, total);
    op_json(o, breakdown, 0, "breakdown");
    check_team(o, team, 0);
    return submit(st, o);
}

int store_analysis_put(store *st, const char *ex, int team, const json_t *doc,
                       const char *author, int64_t updated_ms, store_cb cb, void *opaque)
{
    static const char sql[] =
        "INSERT INTO analyses(exercise, team, doc_json, updated_ms, author)"
        " VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(exercise, team) DO UPDATE SET"
        " doc_json = excluded.doc_json, updated_ms = excluded.updated_ms,"
        " author = excluded.author";
    op *o = op_new(st, run_exec, sql, 0, "analysis", cb, opaque);
    if (o == NULL)
        return -1;
    op_text(o, ex, 1, "exercise id");
    op_int(o, team);
    op_json(o, doc, 1, "analysis");
    op_int(o, updated_ms);
    op_text(o, author, 0, "author");
    check_team(o, team, 0);
    if (doc && !json_is_object(doc))
        op_bad(o, STORE_EINVAL, "an analysis is an object");
    return submit(st, o);
}

int store_user_add(store *st, const char *name, const char *role, int team,
                   const char *pw_hash, int64_t created_ms,
                   store_cb cb, void *opaque)
{
    static const char sql[] =
        "INSERT INTO users(name, role, team, pw_hash, created_ms) VALUES(?1, ?2, ?3, ?4, ?5)";
    op *o = op_new(st, run_exec, sql, OPF_ROWID, "user", cb, opaque);
    if (o == NULL)
        return -1;
    op_text(o, name, 1, "user name");
    op_text(o, role, 1, "role");
    op_ref(o, team);
    op_text(o, pw_hash, 1, "password hash");
    op_int(o, created_ms);
    if (!in_set(role, ROLES))
        op_bad(o, STORE_EINVAL, "role must be instructor, member or observer");
    else if ((strcmp(role, "member") == 0) != (team >= 1))
        op_bad(o, STORE_EINVAL, "a member has a team >= 1, other roles none");
    if (name && name[0] == '\0')
        op_bad(o, STORE_EINVAL, "user name is empty");
    return submit(st, o);
}

int store_user_set_password(store *st, int64_t user_id, const char *pw_hash,
                            store_cb cb, void *opaque)
{
    static const char sql[] = "UPDATE users SET pw_hash = ?2 WHERE id = ?1";
    op *o = op_new(st, run_exec, sql, OPF_NEED_CHANGE, "user", cb, opaque);
    if (o == NULL)
        return -1;
    op_int(o, user_id);
    op_text(o, pw_hash, 1, "password hash");
    return submit(st, o);
}

int store_user_disable(store *st, int64_t user_id, int disabled,
                       store_cb cb, void *opaque)
{
    static const char sql[] = "UPDATE users SET disabled = ?2 WHERE id = ?1";
    /* A disabled user's sessions end in the same transaction. */
    static const char sql2[] = "DELETE FROM sessions WHERE user_id = ?1 AND ?2 <> 0";
    op *o = op_new(st, run_exec, sql, OPF_NEED_CHANGE, "user", cb, opaque);
    if (o == NULL)
        return -1;
    o->sql2 = sql2;
    op_int(o, user_id);
    op_int(o, disabled != 0);
    return submit(st, o);
}

int store_session_add(store *st, const char *token_hash, int64_t user_id,
                      int64_t created_ms, int64_t expires_ms, const char *csrf,
                      store_cb cb, void *opaque)
{
    static const char sql[] =
        "INSERT INTO sessions(token_hash, user_id, created_ms, expires_ms, csrf)"
        " VALUES(?1, ?2, ?3, ?4, ?5)";
    op *o = op_new(st, run_exec, sql, 0, "session", cb, opaque);
    if (o == NULL)
        return -1;
    op_text(o, token_hash, 1, "token hash");
    op_int(o, user_id);
    op_int(o, created_ms);
    op_int(o, expires_ms);
    op_text(o, csrf, 1, "csrf token");
    return submit(st, o);
}

int store_session_delete(store *st, const char *token_hash, store_cb cb, void *opaque)
{
    static const char sql[] = "DELETE FROM sessions WHERE token_hash = ?1";
    op *o = op_new(st, run_exec, sql, OPF_NEED_CHANGE, "session", cb, opaque);
    if (o == NULL)
        return -1;
    op_text(o, token_hash, 1, "token hash");
    return submit(st, o);
}

int store_session_purge_expired(store *st, int64_t now_ms, store_cb cb, void *opaque)
{
    static const char sql[] = "DELETE FROM sessions WHERE expires_ms <= ?1";
    op *o = op_new(st, run_exec, sql, OPF_CHANGES, "session", cb, opaque);
    if (o == NULL)
        return -1;
    op_int(o, now_ms);
    return submit(st, o);
}

/* ---- reads ------------------------------------------------------------ */

/* Reads refuse what the writes would refuse, so a bad argument is a 400,
 * not an empty answer. */
static int read_args(const char *ex, int team, store_err *e)
{
    if (ex == NULL || !utf8_ok(ex)) {
        set_err(e, STORE_EINVAL, "exercise id is required");
        return -1;
    }
    if (team < 0) {
        set_err(e, STORE_EINVAL, "team %d is out of range", team);
        return -1;
    }
    return 0;
}

json_t *store_exercise_get(store *st, const char *ex, store_err *e)
{
    sval v[] = { VT(ex) };
    if (read_args(ex, 0, e) < 0)
        return NULL;
    return q_one(st, "SELECT id, scenario_id, scenario_json, created_ms, state, speed, seed,"
                     " options_json FROM exercises WHERE id = ?1", v, NV(v), "exercise", e);
}

json_t *store_exercises_list(store *st, store_err *e)
{
    return q_rows(st, "SELECT id, scenario_id, created_ms, state, speed, seed, options_json"
                      " FROM exercises ORDER BY created_ms DESC, id", NULL, 0, e);
}

json_t *store_teams_list(store *st, const char *ex, store_err *e)
{
    sval v[] = { VT(ex) };
    if (read_args(ex, 0, e) < 0)
        return NULL;
    return q_rows(st, "SELECT team, name FROM teams WHERE exercise = ?1 ORDER BY team",
                  v, NV(v), e);
}

json_t *store_hosts_list(store *st, const char *ex, int team, store_err *e)
{
    sval v[] = { VT(ex), VI(team) };
    if (read_args(ex, team, e) < 0)
        return NULL;
    return q_rows(st, "SELECT team, host, domain, state, detail, updated_ms FROM hosts"
                      " WHERE exercise = ?1 AND (?2 = 0 OR team = ?2) ORDER BY team, host",
                  v, NV(v), e);
}

json_t *store_timeline_get(store *st, const char *ex, int team, store_err *e)
{
    sval v[] = { VT(ex), VI(team) };
    if (read_args(ex, team, e) < 0)
        return NULL;
    return q_one(st, "SELECT team, state_json, updated_ms FROM timeline"
                     " WHERE exercise = ?1 AND team = ?2", v, NV(v), "timeline", e);
}

json_t *store_timeline_list(store *st, const char *ex, store_err *e)
{
    sval v[] = { VT(ex) };
    if (read_args(ex, 0, e) < 0)
        return NULL;
    return q_rows(st, "SELECT team, state_json, updated_ms FROM timeline"
                      " WHERE exercise = ?1 ORDER BY team", v, NV(v), e);
}

static int limit_of(int limit)
{
    return limit <= 0 || limit > LIST_LIMIT ? LIST_LIMIT : limit;
}

json_t *store_journal_list(store *st, const char *ex, int team, int64_t since_seq,
                           int limit, store_err *e)
{
    sval v[] = { VT(ex), VI(team), VI(since_seq), VI(limit_of(limit)) };
    if (read_args(ex, team, e) < 0)
        return NULL;
    return q_rows(st, "SELECT seq, team, ts_ms, kind, step, entry_json FROM journal"
                      " WHERE exercise = ?1 AND (?2 = 0 OR team = ?2) AND seq > ?3"
                      " ORDER BY seq LIMIT ?4", v, NV(v), e);
}

json_t *store_flows_list(store *st, const char *ex, int team, int64_t since_ms,
                         int limit, store_err *e)
{
    sval v[] = { VT(ex), VI(team), VI(since_ms), VI(limit_of(limit)) };
    if (read_args(ex, team, e) < 0)
        return NULL;
    return q_rows(st, "SELECT team, community_id, proto, src, sport, dst, dport, first_ms,"
                      " last_ms, packets, bytes, doc_json FROM flows"
                      " WHERE exercise = ?1 AND (?2 = 0 OR team = ?2) AND last_ms >= ?3"
                      " ORDER BY first_ms, team, community_id LIMIT ?4", v, NV(v), e);
}

json_t *store_check_list(store *st, const char *ex, int team, const char *check_id,
                         int64_t since_ms, store_err *e)
{
    sval v[] = { VT(ex), VI(team), VT(check_id), VI(since_ms) };
    if (read_args(ex, team, e) < 0)
        return NULL;
    return q_rows(st, "SELECT team, check_id, ts_ms, ok AS ok_bool, detail FROM check_results"
                      " WHERE exercise = ?1 AND (?2 = 0 OR team = ?2)"
                      " AND (?3 IS NULL OR check_id = ?3) AND ts_ms >= ?4"
                      " ORDER BY ts_ms, team, check_id", v, NV(v), e);
}

#define FINDING_COLS \
    "SELECT id, team, user_id, submitted_ms, detected_ms, doc_json, label, label_by," \
    " label_ms FROM findings WHERE exercise = ?1 AND (?2 = 0 OR team = ?2)"

json_t *store_findings_list(store *st, const char *ex, int team, store_err *e)
{
    sval v[] = { VT(ex), VI(team) };
    if (read_args(ex, team, e) < 0)
        return NULL;
    return q_rows(st, FINDING_COLS " ORDER BY id", v, NV(v), e);
}

json_t *store_finding_get(store *st, const char *ex, int team, int64_t finding_id,
                          store_err *e)
{
    sval v[] = { VT(ex), VI(team), VI(finding_id) };
    if (read_args(ex, team, e) < 0)
        return NULL;
    return q_one(st, FINDING_COLS " AND id = ?3", v, NV(v), "finding", e);
}

#define REPORT_COLS \
    "SELECT id, team, title, state, created_ms, updated_ms, current_version FROM reports" \
    " WHERE exercise = ?1 AND (?2 = 0 OR team = ?2)"

json_t *store_reports_list(store *st, const char *ex, int team, store_err *e)
{
    sval v[] = { VT(ex), VI(team) };
    if (read_args(ex, team, e) < 0)
        return NULL;
    return q_rows(st, REPORT_COLS " ORDER BY id", v, NV(v), e);
}

json_t *store_report_get(store *st, const char *ex, int team, int64_t report_id,
                         store_err *e)
{
    sval v[] = { VT(ex), VI(team), VI(report_id) };
    sval vr[] = { VI(report_id) };
    json_t *r = NULL, *versions = NULL, *reviews = NULL;
    if (read_args(ex, team, e) < 0)
        return NULL;
    /* The report row is read in scope first; versions and reviews are only
     * read for a report the caller may see. */
    r = q_one(st, REPORT_COLS " AND id = ?3", v, NV(v), "report", e);
    if (r == NULL)
        return NULL;
    versions = q_rows(st, "SELECT version, doc_json, author, ts_ms, submitted AS submitted_bool"
                          " FROM report_versions WHERE report = ?1 ORDER BY version",
                      vr, NV(vr), e);
    reviews = q_rows(st, "SELECT id, version, reviewer, ts_ms, comments_json, grades_json,"
                         " decision FROM reviews WHERE report = ?1 ORDER BY id", vr, NV(vr), e);
    if (versions == NULL || reviews == NULL) {
        json_decref(r);
        json_decref(versions);
        json_decref(reviews);
        return NULL;
    }
    json_object_set_new(r, "versions", versions);
    json_object_set_new(r, "reviews", reviews);
    return r;
}

json_t *store_inbox_list(store *st, const char *ex, int team, store_err *e)
{
    sval v[] = { VT(ex), VI(team) };
    if (read_args(ex, team, e) < 0)
        return NULL;
    return q_rows(st, "SELECT id, team, step, ts_ms, deadline_ms, doc_json FROM inbox"
                      " WHERE exercise = ?1 AND (?2 = 0 OR team = ?2) ORDER BY id",
                  v, NV(v), e);
}

json_t *store_responses_list(store *st, const char *ex, int team, int64_t inbox_id,
                             store_err *e)
{
    sval v[] = { VT(ex), VI(team), VI(inbox_id) };
    if (read_args(ex, team, e) < 0)
        return NULL;
    return q_rows(st, "SELECT r.id, r.inbox_id, r.team, r.user_id, r.ts_ms, r.text, r.points,"
                      " r.grader, r.graded_ms FROM responses r JOIN inbox i ON i.id = r.inbox_id"
                      " WHERE i.exercise = ?1 AND (?2 = 0 OR i.team = ?2)"
                      " AND (?3 = 0 OR r.inbox_id = ?3) ORDER BY r.id", v, NV(v), e);
}

json_t *store_scores_series(store *st, const char *ex, int team, int64_t since_ms,
                            store_err *e)
{
    sval v[] = { VT(ex), VI(team), VI(since_ms) };
    if (read_args(ex, team, e) < 0)
        return NULL;
    return q_rows(st, "SELECT team, ts_ms, total, breakdown_json FROM scores"
                      " WHERE exercise = ?1 AND (?2 = 0 OR team = ?2) AND ts_ms >= ?3"
                      " ORDER BY ts_ms, team", v, NV(v), e);
}

#define ANALYSIS_COLS \
    "SELECT team, doc_json, updated_ms, author FROM analyses WHERE exercise = ?1"

json_t *store_analysis_get(store *st, const char *ex, int team, store_err *e)
{
    sval v[] = { VT(ex), VI(team) };
    if (read_args(ex, team, e) < 0)
        return NULL;
    /* One team's document: 0 would read as "any team", never wanted here. */
    if (team < 1) {
        set_err(e, STORE_EINVAL, "team %d is out of range", team);
        return NULL;
    }
    return q_one(st, ANALYSIS_COLS " AND team = ?2", v, NV(v), "analysis", e);
}

json_t *store_analyses_list(store *st, const char *ex, int team, store_err *e)
{
    sval v[] = { VT(ex), VI(team) };
    if (read_args(ex, team, e) < 0)
        return NULL;
    return q_rows(st, ANALYSIS_COLS " AND (?2 = 0 OR team = ?2) ORDER BY team", v, NV(v), e);
}

#define USER_COLS "SELECT id, name, role, team, created_ms, disabled AS disabled_bool"

json_t *store_user_get_by_name(store *st, const char *name, store_err *e)
{
    sval v[] = { VT(name) };
    if (name == NULL || !utf8_ok(name)) {
        set_err(e, STORE_EINVAL, "user name is required");
        return NULL;
    }
    return q_one(st, USER_COLS ", pw_hash FROM users WHERE name = ?1", v, NV(v), "user", e);
}

json_t *store_user_get(store *st, int64_t user_id, store_err *e)
{
    sval v[] = { VI(user_id) };
    return q_one(st, USER_COLS " FROM users WHERE id = ?1", v, NV(v), "user", e);
}

json_t *store_users_list(store *st, store_err *e)
{
    return q_rows(st, USER_COLS " FROM users ORDER BY id", NULL, 0, e);
}

json_t *store_session_get(store *st, const char *token_hash, int64_t now_ms,
                          store_err *e)
{
    sval v[] = { VT(token_hash), VI(now_ms) };
    if (token_hash == NULL || !utf8_ok(token_hash)) {
        set_err(e, STORE_EINVAL, "token hash is required");
        return NULL;
    }
    return q_one(st, "SELECT s.token_hash, s.user_id, s.created_ms, s.expires_ms, s.csrf,"
                     " u.name, u.role, u.team, u.disabled AS disabled_bool"
                     " FROM sessions s JOIN users u ON u.id = s.user_id"
                     " WHERE s.token_hash = ?1 AND s.expires_ms > ?2", v, NV(v), "session", e);
}
