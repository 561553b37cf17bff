/* flows — a per-team flow table fed with raw Ethernet frames.
 *
 * Pure: no I/O, no pcap, no clock (the caller passes timestamps).  Frames
 * are parsed defensively (every byte read is bounds-checked against caplen):
 * Ethernet with at most one 802.1Q/802.1ad tag, IPv4 (IHL honoured; only a
 * first fragment carries ports), TCP/UDP/SCTP ports, ICMP type and code as
 * ports (as Community ID does); other IPv4 protocols make flows with ports
 * 0, and frames without IPv4 (ARP, IPv6, ...) are only counted.
 *
 * A flow's key is the 5-tuple ordered as Community ID orders it, so both
 * directions are one flow, while the record keeps the originator (the first
 * packet's source, or the destination when that first packet is a TCP
 * SYN-ACK) as src.  A packet that a router forwards between two segments of
 * the same team is seen on both bridges: it is counted only on the segment
 * where the flow was first seen, and the other segment's bit is set.
 *
 * The table holds at most max_flows live flows.  When it is full, the least
 * recently seen flow is evicted into the "finished" queue, which
 * flows_expire() hands out (with the idle and closed flows); the queue is
 * bounded too, and its overflow is counted.  Recency is kept to
 * FLOWS_RECENCY_US: a flow moves to the young end of the recency list at
 * most that often, which saves three cache misses per packet on a busy
 * table; eviction and expiry are exact to that resolution.
 */
#ifndef CYRANGE_FLOWS_H
#define CYRANGE_FLOWS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "community_id.h"

typedef struct flows flows;

/* TCP flags seen on a flow (flows_rec.tcp). */
#define FLOWS_TCP_SYN      0x01u /* SYN without ACK, from the originator */
#define FLOWS_TCP_SYNACK   0x02u /* SYN+ACK, from the responder */
#define FLOWS_TCP_FIN_ORIG 0x04u /* FIN from the originator */
#define FLOWS_TCP_FIN_RESP 0x08u /* FIN from the responder */
#define FLOWS_TCP_RST      0x10u /* RST, either way */
#define FLOWS_TCP_ACK      0x20u /* a bare ACK from the originator after SYN-ACK */

/* Segments are numbered 0..FLOWS_MAX_SEGMENTS-1 (one bit each). */
#define FLOWS_MAX_SEGMENTS 64

/* Resolution of recency (eviction order and expiry), see above. */
#define FLOWS_RECENCY_US 100000

/* A TCP flow closed by FIN both ways or by RST is expired after this much
 * idle time even when the caller's idle timeout is longer. */
#define FLOWS_CLOSED_IDLE_US 5000000

/* The fields every packet updates come first, next to the table's own
 * per-flow data. */
typedef struct flows_rec {
    uint64_t packets, bytes;         /* originator -> responder (wire bytes) */
    uint64_t packets_rev, bytes_rev; /* responder -> originator */
    int64_t last_us;        /* packet timestamps, UTC microseconds */
    uint64_t segments;      /* bit n: seen on segment n */
    unsigned count_segment; /* the segment whose packets are counted */
    unsigned tcp;           /* FLOWS_TCP_* bits */
    int64_t first_us;
    uint8_t proto;          /* IPv4 protocol number */
    uint32_t src, dst;      /* host order, originator orientation */
    uint16_t sport, dport;  /* ICMP: type and code of the first packet */
    char community_id[COMMUNITY_ID_LEN]; /* v1, seed 0 */
} flows_rec;

typedef struct flows_counters {
    uint64_t frames;        /* every frame given to flows_add_frame */
    uint64_t bytes;         /* their wire lengths */
    uint64_t non_ip;        /* frames without IPv4 (ARP, IPv6, ...) */
    uint64_t malformed;     /* IPv4 frames too short or inconsistent to key */
    uint64_t flows_created;
    uint64_t evicted;       /* live flows pushed out because the table was full */
    uint64_t finished_dropped; /* finished flows lost because nobody expired them */
    uint64_t active;        /* live flows now */
    uint64_t finished;      /* finished flows waiting for flows_expire */
} flows_counters;

/* A table for at most max_flows live flows (1..16,777,216); the finished
 * queue holds as many.  NULL with err on a bad size or no memory. */
flows *flows_new(size_t max_flows, char *err, size_t errlen);
void flows_free(flows *ft);

/* One captured frame: caplen bytes at frame (borrowed, not kept), wirelen
 * its length on the wire, ts_us its UTC timestamp in microseconds, seg the
 * segment (bridge) it was captured on.  1 when the frame belongs to a flow,
 * 0 when it was only counted (non-IP or malformed), -1 when seg is out of
 * range (nothing counted). */
int flows_add_frame(flows *ft, unsigned seg, const uint8_t *frame, size_t caplen,
                    size_t wirelen, int64_t ts_us);

/* Called once per flow handed out; rec is borrowed and valid only during
 * the call, which must not call back into the table. */
typedef void (*flows_cb)(const flows_rec *rec, void *opaque);

/* Hands to cb (may be NULL: the flows are just dropped) first every
 * finished (evicted) flow, then every live flow idle for more than idle_us
 * at now_us, or, when TCP closed it (FIN both ways, or RST), idle for more
 * than FLOWS_CLOSED_IDLE_US; all of them leave the table.  Returns how many
 * were handed out. */
size_t flows_expire(flows *ft, int64_t now_us, int64_t idle_us, flows_cb cb, void *opaque);

/* Lookups among live and finished flows; borrowed pointers, valid until
 * the next call that changes the table. */
const flows_rec *flows_find_cid(const flows *ft, const char *community_id);
/* By 5-tuple in either orientation, addresses in host order; for ICMP the
 * ports are type and code. */
const flows_rec *flows_find(const flows *ft, uint8_t proto, uint32_t src, uint16_t sport,
                            uint32_t dst, uint16_t dport);

void flows_get_counters(const flows *ft, flows_counters *out);

/* Every live and finished flow, oldest activity first (new reference:
 * array), or NULL on no memory. */
json_t *flows_to_json(const flows *ft);
/* One flow (new reference: object): proto ("tcp", "udp", "icmp" or the
 * number), src, sport, dst, dport, packets, bytes, packets_rev, bytes_rev,
 * first and last (UTC ms), community_id, segments (array of numbers), tcp
 * ({syn, synack, fin, rst} booleans). */
json_t *flows_rec_to_json(const flows_rec *rec);
/* The counters as an object (new reference). */
json_t *flows_counters_to_json(const flows_counters *c);

#endif
