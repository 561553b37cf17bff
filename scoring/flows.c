#include "flows.h"

#include <stdlib.h>
#include <string.h>

#include "addr.h"

#define NONE UINT32_MAX
#define MAX_FLOWS (16u * 1024u * 1024u)

/* The normalised key: side a is the lower (address, port) pair, as in
 * Community ID, except for one-way ICMP messages, which keep their
 * direction. */
typedef struct fkey {
    uint32_t a, b;
    uint16_t pa, pb;
    uint8_t proto;
} fkey;

/* What a packet reads and writes sits in the first two cache lines: key,
 * links and the hot half of the record. */
typedef struct entry {
    fkey key;
    uint32_t hash;      /* of key */
    uint32_t prev, next; /* recency list (oldest first); next links the free list */
    uint8_t orig_is_a;  /* the originator is side a of the key */
    int64_t moved_us;   /* when the flow last moved to the young end */
    flows_rec rec;
    uint32_t cid_hash;  /* of rec.community_id */
} __attribute__((aligned(64))) entry;

struct flows {
    entry *pool;
    size_t cap;
    uint32_t free_head;
    uint32_t *slots;     /* key index: entry index + 1, 0 = empty */
    uint32_t *cid_slots; /* Community ID index, same layout */
    uint32_t mask;
    uint32_t lru_head, lru_tail;
    flows_rec *fin;      /* ring of finished flows */
    size_t fin_head, fin_len;
    flows_counters c;
};

/* A parsed packet: addresses and ports as on the wire. */
typedef struct pkt {
    uint32_t src, dst;
    uint16_t sport, dport;
    uint8_t proto;
    uint8_t tcp_flags;
} pkt;

enum { PARSE_FLOW = 1, PARSE_NON_IP = 0, PARSE_MALFORMED = -1 };

static uint32_t rd16(const uint8_t *p)
{
    return (uint32_t)p[0] << 8 | p[1];
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Every read below is preceded by a length check against caplen, and layer
 * 4 is bounded by the IPv4 total length so that Ethernet padding is never
 * taken for a header. */
static int parse(const uint8_t *f, size_t caplen, pkt *p)
{
    size_t off = 14;
    if (caplen < 14)
        return PARSE_MALFORMED;
    uint32_t type = rd16(f + 12);
    if (type == 0x8100 || type == 0x88a8) {
        if (caplen < 18)
            return PARSE_MALFORMED;
        type = rd16(f + 16);
        off = 18;
    }
    if (type != 0x0800)
        return PARSE_NON_IP;
    if (caplen < off + 20)
        return PARSE_MALFORMED;
    const uint8_t *ip = f + off;
    if (ip[0] >> 4 != 4)
        return PARSE_MALFORMED;
    size_t ihl = (size_t)(ip[0] & 0x0f) * 4;
    size_t totlen = rd16(ip + 2);
    if (ihl < 20 || totlen < ihl)
        return PARSE_MALFORMED;
    size_t limit = caplen - off; /* bytes of the IP packet we have */
    if (totlen < limit)
        limit = totlen;
    p->proto = ip[9];
    p->src = rd32(ip + 12);
    p->dst = rd32(ip + 16);
    p->sport = p->dport = 0;
    p->tcp_flags = 0;
    if ((rd16(ip + 6) & 0x1fff) != 0)
        return PARSE_FLOW; /* a later fragment: no ports */
    const uint8_t *l4 = ip + ihl;
    switch (p->proto) {
    case 6:
    case 17:
    case 132:
        if (limit < ihl + 4)
            return PARSE_MALFORMED;
        p->sport = (uint16_t)rd16(l4);
        p->dport = (uint16_t)rd16(l4 + 2);
        if (p->proto == 6 && limit >= ihl + 14)
            p->tcp_flags = l4[13];
        break;
    case 1:
        if (limit < ihl + 2)
            return PARSE_MALFORMED;
        p->sport = l4[0];
        p->dport = l4[1];
        break;
    default:
        break;
    }
    return PARSE_FLOW;
}

/* ICMP request/reply pairs, as Community ID pairs them (spec, ICMP). */
static int icmp_other(uint16_t type, uint16_t *other)
{
    static const uint8_t pairs[][2] = {
        {8, 0}, {0, 8}, {13, 14}, {14, 13}, {15, 16}, {16, 15},
        {10, 9}, {9, 10}, {17, 18}, {18, 17},
    };
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++)
        if (pairs[i][0] == type) {
            *other = pairs[i][1];
            return 1;
        }
    return 0;
}

/* Builds the key of a packet; *swapped tells whether the packet's source
 * is side b. */
static void make_key(uint8_t proto, uint32_t src, uint16_t sport, uint32_t dst,
                     uint16_t dport, fkey *k, int *swapped)
{
    int one_way = 0;
    if (proto == 1) {
        uint16_t other;
        if (icmp_other(sport, &other))
            dport = other;
        else
            one_way = 1;
    } else if (proto != 6 && proto != 17 && proto != 132) {
        sport = dport = 0;
    }
    memset(k, 0, sizeof(*k));
    k->proto = proto;
    if (!one_way && (src > dst || (src == dst && sport > dport))) {
        k->a = dst;
        k->pa = dport;
        k->b = src;
        k->pb = sport;
        *swapped = 1;
    } else {
        k->a = src;
        k->pa = sport;
        k->b = dst;
        k->pb = dport;
        *swapped = 0;
    }
}

static uint32_t key_hash(const fkey *k)
{
    uint64_t h = ((uint64_t)k->a << 32 | k->b) * 0x9E3779B97F4A7C15ull;
    h ^= ((uint64_t)k->pa << 32 | (uint64_t)k->pb << 16 | k->proto) * 0xC2B2AE3D27D4EB4Full;
    /* The finaliser of MurmurHash3 spreads every input bit. */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return (uint32_t)h;
}

static int key_eq(const fkey *x, const fkey *y)
{
    return x->a == y->a && x->b == y->b && x->pa == y->pa && x->pb == y->pb &&
           x->proto == y->proto;
}

static uint32_t cid_hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++) {
        h ^= (uint8_t)*s;
        h *= 16777619u;
    }
    return h;
}

static uint32_t slot_home(const flows *ft, int cid, uint32_t v)
{
    const entry *e = &ft->pool[v - 1];
    return (cid ? e->cid_hash : e->hash) & ft->mask;
}

static void index_insert(flows *ft, uint32_t *slots, uint32_t h, uint32_t idx)
{
    uint32_t i = h & ft->mask;
    while (slots[i])
        i = (i + 1) & ft->mask;
    slots[i] = idx + 1;
}

/* Linear probing with backward-shift deletion: no tombstones, so probe
 * lengths stay short however long the table runs. */
static void index_remove(flows *ft, int cid, uint32_t idx)
{
    uint32_t *slots = cid ? ft->cid_slots : ft->slots;
    const entry *e = &ft->pool[idx];
    uint32_t i = (cid ? e->cid_hash : e->hash) & ft->mask;
    while (slots[i] != idx + 1) {
        if (!slots[i])
            return; /* not indexed; cannot happen */
        i = (i + 1) & ft->mask;
    }
    uint32_t j = i;
    for (;;) {
        j = (j + 1) & ft->mask;
        if (!slots[j])
            break;
        uint32_t k = slot_home(ft, cid, slots[j]);
        /* Move slots[j] back into the hole at i unless its home lies
         * cyclically in (i, j]. */
        int stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            slots[i] = slots[j];
            i = j;
        }
    }
    slots[i] = 0;
}

static void lru_unlink(flows *ft, uint32_t idx)
{
    entry *e = &ft->pool[idx];
    if (e->prev != NONE)
        ft->pool[e->prev].next = e->next;
    else
        ft->lru_head = e->next;
    if (e->next != NONE)
        ft->pool[e->next].prev = e->prev;
    else
        ft->lru_tail = e->prev;
    e->prev = e->next = NONE;
}

static void lru_append(flows *ft, uint32_t idx)
{
    entry *e = &ft->pool[idx];
    e->next = NONE;
    e->prev = ft->lru_tail;
    if (ft->lru_tail != NONE)
        ft->pool[ft->lru_tail].next = idx;
    else
        ft->lru_head = idx;
    ft->lru_tail = idx;
}

static void remove_entry(flows *ft, uint32_t idx)
{
    index_remove(ft, 0, idx);
    index_remove(ft, 1, idx);
    lru_unlink(ft, idx);
    ft->pool[idx].next = ft->free_head;
    ft->free_head = idx;
    ft->c.active--;
}

static void finish(flows *ft, const flows_rec *rec)
{
    if (ft->fin_len == ft->cap) {
        /* Nobody has collected the finished flows: the oldest goes. */
        ft->fin_head = (ft->fin_head + 1) % ft->cap;
        ft->fin_len--;
        ft->c.finished_dropped++;
    }
    ft->fin[(ft->fin_head + ft->fin_len) % ft->cap] = *rec;
    ft->fin_len++;
    ft->c.finished = ft->fin_len;
}

flows *flows_new(size_t max_flows, char *err, size_t errlen)
{
    flows *ft = NULL;
    if (max_flows < 1 || max_flows > MAX_FLOWS) {
        snprintf(err, errlen, "flow table size %zu out of range 1..%u", max_flows, MAX_FLOWS);
        return NULL;
    }
    size_t nslots = 2;
    while (nslots < 2 * max_flows)
        nslots <<= 1;
    ft = calloc(1, sizeof(*ft));
    if (!ft)
        goto nomem;
    ft->cap = max_flows;
    ft->mask = (uint32_t)(nslots - 1);
    ft->pool = aligned_alloc(64, max_flows * sizeof(*ft->pool));
    ft->slots = calloc(nslots, sizeof(*ft->slots));
    ft->cid_slots = calloc(nslots, sizeof(*ft->cid_slots));
    ft->fin = malloc(max_flows * sizeof(*ft->fin));
    if (!ft->pool || !ft->slots || !ft->cid_slots || !ft->fin)
        goto nomem;
    for (size_t i = 0; i < max_flows; i++)
        ft->pool[i].next = i + 1 < max_flows ? (uint32_t)(i + 1) : NONE;
    ft->free_head = 0;
    ft->lru_head = ft->lru_tail = NONE;
    return ft;

nomem:
    snprintf(err, errlen, "out of memory for a table of %zu flows", max_flows);
    flows_free(ft);
    return NULL;
}

void flows_free(flows *ft)
{
    if (!ft)
        return;
    free(ft->pool);
    free(ft->slots);
    free(ft->cid_slots);
    free(ft->fin);
    free(ft);
}

static uint32_t lookup(const flows *ft, const fkey *k, uint32_t h)
{
    uint32_t i = h & ft->mask;
    while (ft->slots[i]) {
        const entry *e = &ft->pool[ft->slots[i] - 1];
        if (e->hash == h && key_eq(&e->key, k))
            return ft->slots[i] - 1;
        i = (i + 1) & ft->mask;
    }
    return NONE;
}

static uint32_t create(flows *ft, const fkey *k, uint32_t h, const pkt *p, int swapped,
                       unsigned seg, int64_t ts_us)
{
    if (ft->free_head == NONE) {
        /* Full: the least recently seen flow makes room. */
        uint32_t old = ft->lru_head;
        finish(ft, &ft->pool[old].rec);
        remove_entry(ft, old);
        ft->c.evicted++;
    }
    uint32_t idx = ft->free_head;
    entry *e = &ft->pool[idx];
    ft->free_head = e->next;
    memset(e, 0, sizeof(*e));
    e->key = *k;
    e->hash = h;
    flows_rec *r = &e->rec;
    r->proto = p->proto;
    /* A first packet that is a SYN-ACK comes from the responder: the
     * capture started mid-handshake. */
    int from_responder = p->proto == 6 && (p->tcp_flags & 0x12) == 0x12;
    if (from_responder) {
        r->src = p->dst;
        r->sport = p->dport;
        r->dst = p->src;
        r->dport = p->sport;
    } else {
        r->src = p->src;
        r->sport = p->sport;
        r->dst = p->dst;
        r->dport = p->dport;
    }
    if (p->proto != 6 && p->proto != 17 && p->proto != 132 && p->proto != 1)
        r->sport = r->dport = 0;
    e->orig_is_a = (uint8_t)((!swapped) != from_responder);
    r->first_us = r->last_us = ts_us;
    r->count_segment = seg;
    community_id_v1(0, r->src, r->dst, r->proto, r->sport, r->dport, r->community_id);
    e->cid_hash = cid_hash(r->community_id);
    index_insert(ft, ft->slots, h, idx);
    index_insert(ft, ft->cid_slots, e->cid_hash, idx);
    e->moved_us = ts_us;
    lru_append(ft, idx);
    ft->c.active++;
    ft->c.flows_created++;
    return idx;
}

int flows_add_frame(flows *ft, unsigned seg, const uint8_t *frame, size_t caplen,
                    size_t wirelen, int64_t ts_us)
{
    pkt p;
    fkey k;
    int swapped;

    if (seg >= FLOWS_MAX_SEGMENTS)
        return -1;
    ft->c.frames++;
    ft->c.bytes += wirelen;
    int r = frame ? parse(frame, caplen, &p) : PARSE_MALFORMED;
    if (r == PARSE_NON_IP) {
        ft->c.non_ip++;
        return 0;
    }
    if (r == PARSE_MALFORMED) {
        ft->c.malformed++;
        return 0;
    }
    make_key(p.proto, p.src, p.sport, p.dst, p.dport, &k, &swapped);
    uint32_t h = key_hash(&k);
    uint32_t idx = lookup(ft, &k, h);
    if (idx == NONE)
        idx = create(ft, &k, h, &p, swapped, seg, ts_us);
    else if (ts_us - ft->pool[idx].moved_us >= FLOWS_RECENCY_US) {
        ft->pool[idx].moved_us = ts_us;
        if (idx != ft->lru_tail) {
            lru_unlink(ft, idx);
            lru_append(ft, idx);
        }
    }
    entry *e = &ft->pool[idx];
    flows_rec *rec = &e->rec;
    int forward = (!swapped) == e->orig_is_a;
    rec->segments |= (uint64_t)1 << seg;
    if (ts_us > rec->last_us)
        rec->last_us = ts_us;
    if (p.proto == 6) {
        uint8_t fl = p.tcp_flags;
        if ((fl & 0x12) == 0x02)
            rec->tcp |= FLOWS_TCP_SYN;
        if ((fl & 0x12) == 0x12)
            rec->tcp |= FLOWS_TCP_SYNACK;
        if (fl & 0x01)
            rec->tcp |= forward ? FLOWS_TCP_FIN_ORIG : FLOWS_TCP_FIN_RESP;
        if (fl & 0x04)
            rec->tcp |= FLOWS_TCP_RST;
        if ((fl & 0x12) == 0x10 && forward && (rec->tcp & FLOWS_TCP_SYNACK))
            rec->tcp |= FLOWS_TCP_ACK;
    }
    /* The same packet routed onto another segment of the team: seen, not
     * counted again. */
    if (seg != rec->count_segment)
        return 1;
    if (forward) {
        rec->packets++;
        rec->bytes += wirelen;
    } else {
        rec->packets_rev++;
        rec->bytes_rev += wirelen;
    }
    return 1;
}

static int is_closed(const flows_rec *r)
{
    return r->proto == 6 && ((r->tcp & FLOWS_TCP_RST) ||
                             ((r->tcp & FLOWS_TCP_FIN_ORIG) && (r->tcp & FLOWS_TCP_FIN_RESP)));
}

size_t flows_expire(flows *ft, int64_t now_us, int64_t idle_us, flows_cb cb, void *opaque)
{
    size_t n = 0;
    while (ft->fin_len) {
        if (cb)
            cb(&ft->fin[ft->fin_head], opaque);
        ft->fin_head = (ft->fin_head + 1) % ft->cap;
        ft->fin_len--;
        n++;
    }
    ft->c.finished = 0;
    /* The recency list is ordered by the time each flow last moved, which
     * is at most its last activity: the walk stops at the first flow that
     * moved too recently for either timeout. */
    int64_t younger = idle_us < FLOWS_CLOSED_IDLE_US ? idle_us : FLOWS_CLOSED_IDLE_US;
    uint32_t idx = ft->lru_head;
    while (idx != NONE) {
        entry *e = &ft->pool[idx];
        uint32_t next = e->next;
        if (now_us - e->moved_us <= younger)
            break;
        int64_t idle = now_us - e->rec.last_us;
        if (idle > idle_us || (idle > FLOWS_CLOSED_IDLE_US && is_closed(&e->rec))) {
            if (cb)
                cb(&e->rec, opaque);
            remove_entry(ft, idx);
            n++;
        }
        idx = next;
    }
    return n;
}

const flows_rec *flows_find_cid(const flows *ft, const char *community_id)
{
    uint32_t h = cid_hash(community_id);
    for (uint32_t i = h & ft->mask; ft->cid_slots[i]; i = (i + 1) & ft->mask) {
        const entry *e = &ft->pool[ft->cid_slots[i] - 1];
        if (e->cid_hash == h && strcmp(e->rec.community_id, community_id) == 0)
            return &e->rec;
    }
    for (size_t i = 0; i < ft->fin_len; i++) {
        const flows_rec *r = &ft->fin[(ft->fin_head + i) % ft->cap];
        if (strcmp(r->community_id, community_id) == 0)
            return r;
    }
    return NULL;
}

static int rec_matches(const flows_rec *r, uint8_t proto, uint32_t src, uint16_t sport,
                       uint32_t dst, uint16_t dport)
{
    fkey x, y;
    int s;
    make_key(proto, src, sport, dst, dport, &x, &s);
    make_key(r->proto, r->src, r->sport, r->dst, r->dport, &y, &s);
    if (key_eq(&x, &y))
        return 1;
    if (proto != 1)
        return 0;
    make_key(proto, dst, sport, src, dport, &x, &s);
    return key_eq(&x, &y);
}

const flows_rec *flows_find(const flows *ft, uint8_t proto, uint32_t src, uint16_t sport,
                            uint32_t dst, uint16_t dport)
{
    fkey k;
    int swapped;
    make_key(proto, src, sport, dst, dport, &k, &swapped);
    uint32_t idx = lookup(ft, &k, key_hash(&k));
    if (idx == NONE && proto == 1) {
        /* One-way ICMP keys keep their direction: try the other one. */
        make_key(proto, dst, sport, src, dport, &k, &swapped);
        idx = lookup(ft, &k, key_hash(&k));
    }
    if (idx != NONE)
        return &ft->pool[idx].rec;
    for (size_t i = 0; i < ft->fin_len; i++) {
        const flows_rec *r = &ft->fin[(ft->fin_head + i) % ft->cap];
        if (rec_matches(r, proto, src, sport, dst, dport))
            return r;
    }
    return NULL;
}

void flows_get_counters(const flows *ft, flows_counters *out)
{
    *out = ft->c;
}

json_t *flows_rec_to_json(const flows_rec *rec)
{
    char src[16], dst[16];
    json_t *o = NULL, *segs = NULL, *tcp = NULL, *proto = NULL;

    switch (rec->proto) {
    case 6: proto = json_string("tcp"); break;
    case 17: proto = json_string("udp"); break;
    case 1: proto = json_string("icmp"); break;
    default: proto = json_integer(rec->proto); break;
    }
    segs = json_array();
    tcp = json_pack("{s:b,s:b,s:b,s:b}", "syn", (rec->tcp & FLOWS_TCP_SYN) != 0,
                    "synack", (rec->tcp & FLOWS_TCP_SYNACK) != 0,
                    "fin", (rec->tcp & (FLOWS_TCP_FIN_ORIG | FLOWS_TCP_FIN_RESP)) != 0,
                    "rst", (rec->tcp & FLOWS_TCP_RST) != 0);
    if (!proto || !segs || !tcp)
        goto cleanup;
    for (unsigned i = 0; i < FLOWS_MAX_SEGMENTS; i++)
        if (rec->segments & ((uint64_t)1 << i))
            if (json_array_append_new(segs, json_integer(i)) != 0)
                goto cleanup;
    /* "o" steals proto, segs and tcp even on failure. */
    o = json_pack("{s:o,s:s,s:i,s:s,s:i,s:I,s:I,s:I,s:I,s:I,s:I,s:s,s:o,s:o}",
                  "proto", proto, "src", addr_format(rec->src, src, sizeof(src)),
                  "sport", (int)rec->sport, "dst", addr_format(rec->dst, dst, sizeof(dst)),
                  "dport", (int)rec->dport, "packets", (json_int_t)rec->packets,
                  "bytes", (json_int_t)rec->bytes, "packets_rev", (json_int_t)rec->packets_rev,
                  "bytes_rev", (json_int_t)rec->bytes_rev,
                  "first", (json_int_t)(rec->first_us / 1000),
                  "last", (json_int_t)(rec->last_us / 1000),
                  "community_id", rec->community_id, "segments", segs, "tcp", tcp);
    return o;

cleanup:
    json_decref(proto);
    json_decref(segs);
    json_decref(tcp);
    return NULL;
}

json_t *flows_to_json(const flows *ft)
{
    json_t *arr = json_array();
    if (!arr)
        return NULL;
    for (size_t i = 0; i < ft->fin_len; i++)
        if (json_array_append_new(arr, flows_rec_to_json(&ft->fin[(ft->fin_head + i) % ft->cap])))
            goto cleanup;
    for (uint32_t idx = ft->lru_head; idx != NONE; idx = ft->pool[idx].next)
        if (json_array_append_new(arr, flows_rec_to_json(&ft->pool[idx].rec)))
            goto cleanup;
    return arr;

cleanup:
    json_decref(arr);
    return NULL;
}

json_t *flows_counters_to_json(const flows_counters *c)
{
    return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
                     "frames", (json_int_t)c->frames, "bytes", (json_int_t)c->bytes,
                     "non_ip", (json_int_t)c->non_ip, "malformed", (json_int_t)c->malformed,
                     "flows_created", (json_int_t)c->flows_created,
                     "evicted", (json_int_t)c->evicted,
                     "finished_dropped", (json_int_t)c->finished_dropped,
                     "active", (json_int_t)c->active, "finished", (json_int_t)c->finished);
}
