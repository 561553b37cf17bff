/* wire — what really crossed each team's LAN: one capture per segment
 * bridge of every team (scoring/capture.h), one flow table per team
 * (scoring/flows.h), rotating pcap files and flow summaries in the
 * exercise's records.
 *
 * Layout under the records folder:
 *   pcap/tNN/<segment>-<time>-<seq>.pcap   rotating captures (Wireshark)
 *   flows-tNN.jsonl                         finished flows, one per line
 *   wire-tNN.json                           counters, rewritten as they change
 *
 * The exercise asks wire_mark() whether the flows an agent reported for a
 * step were seen on the wire, and gives scoring the team's flows.
 */
#ifndef CYRANGE_WIRE_H
#define CYRANGE_WIRE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "plan.h"

typedef struct wire wire;

/* Zero means "the default". */
typedef struct wire_opts {
    const char *dir;           /* the exercise's records folder (exists) */
    int write;                 /* 1: write pcap files (default for `run`) */
    size_t buffer_bytes;       /* per capture, default 8 MiB */
    uint64_t rotate_bytes;     /* default 64 MiB */
    unsigned rotate_seconds;   /* default 600 */
    unsigned keep_files;       /* per capture, default 20 */
    const char *filter;        /* BPF filter for every capture, or NULL */
    size_t max_flows;          /* per team flow table, default 65536 */
    int idle_s;                /* a flow idle this long is finished, default 60 */
} wire_opts;

/* Starts a capture on every bridge of every team of `p` (borrowed; it must
 * outlive the wire).  The bridges must exist (the range is up).  NULL with
 * `err` when any capture cannot start (nothing is left running). */
wire *wire_new(uv_loop_t *loop, const plan *p, const wire_opts *o, char *err, size_t errlen);

/* For each flow of `flows` (borrowed: an agent's flows with community_id),
 * whether `team`'s captures saw it: a new array of {"community_id","seen",
 * "packets","bytes","first","last","segments"} in the same order.  Drains
 * the captures first. */
json_t *wire_mark(wire *w, int team, const json_t *flows);

/* Every flow of `team`, finished and live, as scoring's wire_flows (new
 * reference). */
json_t *wire_flows(wire *w, int team);

/* `team`'s counters: {"packets","bytes","kernel_drops","if_drops","written",
 * "files","flows_active","flows_finished","captures":[{"segment","bridge",
 * ...capture counters}]} (new reference). */
json_t *wire_counters(wire *w, int team);

/* Captures `team`'s bridges again after its range was rebuilt (a reset
 * recreates the bridges): closes the old captures, opens new ones, keeps
 * the flow table.  0, or -1 with `err` when a bridge cannot be captured. */
int wire_team_reopen(wire *w, int team, char *err, size_t errlen);

/* `team`'s pcap folder (malloc'd). */
char *wire_pcap_dir(const wire *w, int team);

/* Stops every capture (files flushed and closed), writes the remaining
 * flows and the final counters, and frees everything once the captures'
 * handles are closed.  Accepts NULL. */
void wire_close(wire *w);

#endif
