/* wire — per-team captures, flow tables and their records.  See wire.h. */
#include "wire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "capture.h"
#include "flows.h"

#define TICK_MS 5000
/* Finished flows kept in memory for wire_mark() and scoring, per team;
 * beyond this they are only in flows-tNN.jsonl. */
#define DONE_MAX 200000

typedef struct wire_cap {
    struct wire *w;
    int team;                  /* 1-based */
    int seg;
    capture *cap;
    char bridge[16];
} wire_cap;

typedef struct wire_team {
    flows *ft;
    json_t *done;              /* community id → the latest finished flow */
    FILE *flog;                /* flows-tNN.jsonl */
    char *pcap_dir;
    uint64_t finished;
    uint64_t done_dropped;
} wire_team;

struct wire {
    uv_loop_t *loop;
    const plan *p;
    wire_opts o;
    char *dir;
    wire_team *teams;
    wire_cap *caps;
    size_t ncaps;
    uv_timer_t tick;
    int tick_on;
    size_t open;               /* captures and the timer not yet closed */
    int closing;
};

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int mkdir_p(const char *path)
{
    char buf[1024];
    size_t n = strlen(path);

    if (n >= sizeof(buf))
        return -1;
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0750) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(buf, 0750) < 0 && errno != EEXIST ? -1 : 0;
}

static void on_finished(const flows_rec *rec, void *opaque)
{
    wire_team *t = opaque;
    json_t *j = flows_rec_to_json(rec);

    if (j == NULL)
        return;
    t->finished++;
    if (t->flog) {
        char *line = json_dumps(j, JSON_COMPACT);
        if (line) {
            fprintf(t->flog, "%s\n", line);
            free(line);
        }
    }
    if (json_object_size(t->done) < DONE_MAX || json_object_get(t->done, rec->community_id))
        json_object_set(t->done, rec->community_id, j);
    else
        t->done_dropped++;
    json_decref(j);
}

static void write_counters(wire *w, int team)
{
    char *path = NULL, *tmp = NULL;
    json_t *c = wire_counters(w, team);

    if (c && asprintf(&path, "%s/wire-t%02d.json", w->dir, team) >= 0 &&
        asprintf(&tmp, "%s.tmp", path) >= 0 && json_dump_file(c, tmp, JSON_INDENT(2)) == 0)
        rename(tmp, path);
    json_decref(c);
    free(path);
    free(tmp);
}

static void expire_team(wire *w, int team, int64_t idle_us)
{
    wire_team *t = &w->teams[team - 1];
    flows_expire(t->ft, now_us(), idle_us, on_finished, t);
    if (t->flog)
        fflush(t->flog);
}

static void on_tick(uv_timer_t *h)
{
    wire *w = h->data;
    for (int team = 1; team <= w->p->n_teams; team++) {
        expire_team(w, team, (int64_t)w->o.idle_s * 1000000);
        write_counters(w, team);
    }
}

static void on_handle_closed(void *opaque)
{
    wire *w = opaque;
    if (--w->open > 0 || !w->closing)
        return;
    for (int i = 0; w->teams && i < w->p->n_teams; i++) {
        flows_free(w->teams[i].ft);
        json_decref(w->teams[i].done);
        if (w->teams[i].flog)
            fclose(w->teams[i].flog);
        free(w->teams[i].pcap_dir);
    }
    free(w->teams);
    free(w->caps);
    free(w->dir);
    free(w);
}

static void on_timer_closed(uv_handle_t *h)
{
    on_handle_closed(h->data);
}

/* Closes every capture and the timer; the last close frees the wire. */
static void wire_abort(wire *w)
{
    w->closing = 1;
    w->open++; /* our own reference, dropped below */
    if (w->tick_on) {
        w->tick_on = 0;
        uv_close((uv_handle_t *)&w->tick, on_timer_closed);
    }
    for (size_t i = 0; i < w->ncaps; i++)
        if (w->caps[i].cap) {
            capture_close(w->caps[i].cap, on_handle_closed, w);
            w->caps[i].cap = NULL;
        }
    on_handle_closed(w);
}

static int open_cap(wire *w, wire_cap *c, char *err, size_t errlen)
{
    const scenario *s = w->p->scn;
    wire_team *wt = &w->teams[c->team - 1];
    char cerr[512];
    capture_opts co = {
        .ifname = c->bridge,
        .segment = (unsigned)c->seg,
        .ft = wt->ft,
        .write = w->o.write,
        .dir = wt->pcap_dir,
        .prefix = s->segments[c->seg].name,
        .buffer_bytes = w->o.buffer_bytes,
        .rotate_bytes = w->o.rotate_bytes,
        .rotate_seconds = w->o.rotate_seconds,
        .keep_files = w->o.keep_files,
        .filter = w->o.filter,
    };
    c->cap = capture_open(w->loop, &co, cerr, sizeof(cerr));
    if (c->cap == NULL) {
        snprintf(err, errlen, "capture on %s (team %d, segment %s): %s", c->bridge, c->team,
                 s->segments[c->seg].name, cerr);
        return -1;
    }
    w->open++;
    return 0;
}

int wire_team_reopen(wire *w, int team, char *err, size_t errlen)
{
    int rc = 0;
    for (size_t i = 0; w && i < w->ncaps; i++) {
        wire_cap *c = &w->caps[i];
        if (c->team != team)
            continue;
        if (c->cap) {
            capture_close(c->cap, on_handle_closed, w);
            c->cap = NULL;
        }
        if (open_cap(w, c, err, errlen) < 0)
            rc = -1;
    }
    return rc;
}

wire *wire_new(uv_loop_t *loop, const plan *p, const wire_opts *o, char *err, size_t errlen)
{
    wire *w = calloc(1, sizeof(*w));
    const scenario *s = p->scn;

    if (w == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    w->loop = loop;
    w->p = p;
    w->o = *o;
    if (w->o.buffer_bytes == 0)
        w->o.buffer_bytes = 8u << 20;
    if (w->o.max_flows == 0)
        w->o.max_flows = 65536;
    if (w->o.idle_s <= 0)
        w->o.idle_s = 60;
    w->dir = strdup(o->dir);
    w->teams = calloc((size_t)p->n_teams, sizeof(*w->teams));
    w->caps = calloc((size_t)p->n_teams * (s->n_segments ? s->n_segments : 1), sizeof(*w->caps));
    if (w->dir == NULL || w->teams == NULL || w->caps == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (int t = 0; t < p->n_teams; t++) {
        wire_team *wt = &w->teams[t];
        char *path = NULL;
        if ((wt->ft = flows_new(w->o.max_flows, err, errlen)) == NULL)
            goto fail;
        wt->done = json_object();
        if (asprintf(&wt->pcap_dir, "%s/pcap/t%02d", w->dir, t + 1) < 0 || wt->done == NULL) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        if (w->o.write && mkdir_p(wt->pcap_dir) < 0) {
            snprintf(err, errlen, "cannot create %s: %s", wt->pcap_dir, strerror(errno));
            goto fail;
        }
        if (asprintf(&path, "%s/flows-t%02d.jsonl", w->dir, t + 1) < 0) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        wt->flog = fopen(path, "a");
        if (wt->flog == NULL) {
            snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
            free(path);
            goto fail;
        }
        free(path);
        for (size_t g = 0; g < s->n_segments; g++) {
            wire_cap *c = &w->caps[w->ncaps++];
            c->w = w;
            c->team = t + 1;
            c->seg = (int)g;
            snprintf(c->bridge, sizeof(c->bridge), "%s", p->teams[t].nets[g].bridge);
            if (open_cap(w, c, err, errlen) < 0)
                goto fail;
        }
    }
    uv_timer_init(loop, &w->tick);
    w->tick.data = w;
    w->tick_on = 1;
    w->open++;
    uv_timer_start(&w->tick, on_tick, TICK_MS, TICK_MS);
    return w;
fail:
    wire_abort(w);
    return NULL;
}

json_t *wire_mark(wire *w, int team, const json_t *flows_in)
{
    json_t *out = json_array();
    size_t i;
    json_t *f;

    if (w == NULL || team < 1 || team > w->p->n_teams)
        return out;
    for (size_t k = 0; k < w->ncaps; k++)
        if (w->caps[k].team == team && w->caps[k].cap)
            capture_drain(w->caps[k].cap);
    wire_team *t = &w->teams[team - 1];
    json_array_foreach(flows_in, i, f) {
        const char *cid = json_string_value(json_object_get(f, "community_id"));
        const flows_rec *rec = cid ? flows_find_cid(t->ft, cid) : NULL;
        json_t *seen = rec ? flows_rec_to_json(rec)
                           : json_incref(json_object_get(t->done, cid ? cid : ""));
        json_t *m = json_pack("{s:s?, s:b}", "community_id", cid, "seen", seen != NULL);
        if (m && seen) {
            const char *keys[] = { "packets", "bytes", "packets_rev", "bytes_rev", "first",
                                   "last", "segments" };
            for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
                json_object_set(m, keys[k], json_object_get(seen, keys[k]));
        }
        json_decref(seen);
        json_array_append_new(out, m);
    }
    return out;
}

json_t *wire_flows(wire *w, int team)
{
    json_t *out;
    const char *k;
    json_t *v;

    if (w == NULL || team < 1 || team > w->p->n_teams)
        return json_array();
    wire_team *t = &w->teams[team - 1];
    out = flows_to_json(t->ft);
    if (out == NULL)
        return json_array();
    json_object_foreach(t->done, k, v)
        json_array_append(out, v);
    return out;
}

json_t *wire_counters(wire *w, int team)
{
    uint64_t packets = 0, bytes = 0, kd = 0, ifd = 0, written = 0, files = 0;
    json_t *caps = json_array();
    flows_counters fc;

    if (w == NULL || team < 1 || team > w->p->n_teams)
        return json_object();
    for (size_t k = 0; k < w->ncaps; k++) {
        wire_cap *c = &w->caps[k];
        capture_counters cc;
        if (c->team != team || c->cap == NULL)
            continue;
        capture_stats(c->cap, &cc);
        packets += cc.packets;
        bytes += cc.bytes;
        kd += cc.kernel_drops;
        ifd += cc.if_drops;
        written += cc.written;
        files += cc.files;
        json_t *j = capture_counters_to_json(&cc);
        if (j) {
            json_object_set_new(j, "segment",
                                json_string(w->p->scn->segments[c->seg].name));
            json_object_set_new(j, "bridge", json_string(c->bridge));
            json_array_append_new(caps, j);
        }
    }
    wire_team *t = &w->teams[team - 1];
    flows_get_counters(t->ft, &fc);
    return json_pack("{s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "team", team,
                     "packets", (json_int_t)packets, "bytes", (json_int_t)bytes,
                     "kernel_drops", (json_int_t)kd, "if_drops", (json_int_t)ifd, "written",
                     (json_int_t)written, "files", (json_int_t)files, "flows_active",
                     (json_int_t)fc.active, "flows_finished", (json_int_t)t->finished,
                     "non_ip", (json_int_t)fc.non_ip, "captures", caps);
}

char *wire_pcap_dir(const wire *w, int team)
{
    if (w == NULL || team < 1 || team > w->p->n_teams)
        return NULL;
    return strdup(w->teams[team - 1].pcap_dir);
}

void wire_close(wire *w)
{
    if (w == NULL)
        return;
    /* Everything still live is finished now; then the final counters. */
    for (int team = 1; team <= w->p->n_teams; team++) {
        for (size_t k = 0; k < w->ncaps; k++)
            if (w->caps[k].team == team && w->caps[k].cap)
                capture_drain(w->caps[k].cap);
        expire_team(w, team, -1);
        write_counters(w, team);
    }
    wire_abort(w);
}
