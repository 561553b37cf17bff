/* flows: frames crafted byte by byte, fed to a real table.  Handshakes in
 * both address orders, UDP, ICMP, VLAN, fragments, truncation at every
 * length and random garbage (run under ASan/valgrind: every frame sits in
 * a buffer of exactly its length), two segments, eviction, expiry, the
 * Community ID vector of the spec, and the index under churn. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "community_id.h"
#include "flows.h"

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_ACK 0x10

typedef struct fspec {
    int vlan;
    uint8_t proto;
    const char *src, *dst;
    uint16_t sport, dport; /* ICMP: type, code */
    uint8_t flags;
    uint16_t frag;         /* flags and offset field of IPv4 */
    size_t payload;
} fspec;

static uint32_t ip(const char *s)
{
    uint32_t a = 0;
    assert_int_equal(addr_parse(s, &a), 0);
    return a;
}

static void put16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, v >> 16);
    put16(p + 2, v);
}

/* Writes an Ethernet frame into buf (at least 256 bytes); returns its
 * length. */
static size_t build(uint8_t *buf, const fspec *s)
{
    size_t n = 0, l4len;
    memset(buf, 0, 256);
    memcpy(buf, "\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02", 12);
    n = 12;
    if (s->vlan) {
        put16(buf + n, 0x8100);
        put16(buf + n + 2, 42);
        n += 4;
    }
    put16(buf + n, 0x0800);
    n += 2;
    uint8_t *iph = buf + n;
    switch (s->proto) {
    case 6: l4len = 20; break;
    case 17: l4len = 8; break;
    case 1: l4len = 8; break;
    default: l4len = 4; break;
    }
    if (s->frag & 0x1fff)
        l4len = 0;
    size_t tot = 20 + l4len + s->payload;
    iph[0] = 0x45;
    put16(iph + 2, (uint32_t)tot);
    put16(iph + 4, 0x1234);
    put16(iph + 6, s->frag);
    iph[8] = 64;
    iph[9] = s->proto;
    put32(iph + 12, ip(s->src));
    put32(iph + 16, ip(s->dst));
    uint8_t *l4 = iph + 20;
    if (l4len && (s->proto == 6 || s->proto == 17)) {
        put16(l4, s->sport);
        put16(l4 + 2, s->dport);
        if (s->proto == 6) {
            l4[12] = 0x50;
            l4[13] = s->flags;
        } else {
            put16(l4 + 4, (uint32_t)(8 + s->payload));
        }
    } else if (l4len && s->proto == 1) {
        l4[0] = (uint8_t)s->sport;
        l4[1] = (uint8_t)s->dport;
    }
    for (size_t i = 0; i < s->payload; i++)
        l4[l4len + i] = (uint8_t)('a' + i % 26);
    n += tot;
    return n < 60 ? 60 : n; /* Ethernet pads to the minimum frame */
}

/* Feeds one frame from a heap buffer of exactly caplen bytes, so that any
 * read past the end is caught by the sanitizers. */
static int feed_exact(flows *ft, unsigned seg, const uint8_t *frame, size_t caplen,
                      size_t wirelen, int64_t ts)
{
    uint8_t *copy = malloc(caplen ? caplen : 1);
    assert_non_null(copy);
    if (caplen)
        memcpy(copy, frame, caplen);
    int r = flows_add_frame(ft, seg, copy, caplen, wirelen, ts);
    free(copy);
    return r;
}

static int feed(flows *ft, unsigned seg, const fspec *s, int64_t ts)
{
    uint8_t buf[256];
    size_t n = build(buf, s);
    return feed_exact(ft, seg, buf, n, n, ts);
}

static flows *table(size_t n)
{
    char err[128];
    flows *ft = flows_new(n, err, sizeof(err));
    assert_non_null(ft);
    return ft;
}

static void check_handshake(const char *client, const char *server)
{
    flows *ft = table(16);
    fspec syn = {.proto = 6, .src = client, .sport = 40000, .dst = server, .dport = 80,
                 .flags = TCP_SYN};
    fspec synack = {.proto = 6, .src = server, .sport = 80, .dst = client, .dport = 40000,
                    .flags = TCP_SYN | TCP_ACK};
    fspec ack = syn, data = synack, fin1 = syn, fin2 = synack;
    ack.flags = TCP_ACK;
    data.flags = TCP_ACK | TCP_PSH;
    data.payload = 100;
    fin1.flags = TCP_FIN | TCP_ACK;
    fin2.flags = TCP_FIN | TCP_ACK;

    assert_int_equal(feed(ft, 0, &syn, 1000000), 1);
    assert_int_equal(feed(ft, 0, &synack, 1001000), 1);
    assert_int_equal(feed(ft, 0, &ack, 1002000), 1);
    assert_int_equal(feed(ft, 0, &data, 1003000), 1);

    flows_counters c;
    flows_get_counters(ft, &c);
    assert_int_equal(c.flows_created, 1);
    assert_int_equal(c.active, 1);
    assert_int_equal(c.frames, 4);
    assert_int_equal(c.bytes, 60 + 60 + 60 + 154);

    const flows_rec *r = flows_find(ft, 6, ip(client), 40000, ip(server), 80);
    assert_non_null(r);
    assert_ptr_equal(r, flows_find(ft, 6, ip(server), 80, ip(client), 40000));
    assert_int_equal(r->src, ip(client));
    assert_int_equal(r->sport, 40000);
    assert_int_equal(r->dst, ip(server));
    assert_int_equal(r->dport, 80);
    assert_int_equal(r->packets, 2);
    assert_int_equal(r->bytes, 120);
    assert_int_equal(r->packets_rev, 2);
    assert_int_equal(r->bytes_rev, 60 + 154);
    assert_int_equal(r->first_us, 1000000);
    assert_int_equal(r->last_us, 1003000);
    assert_int_equal(r->tcp, FLOWS_TCP_SYN | FLOWS_TCP_SYNACK | FLOWS_TCP_ACK);
    assert_null(flows_find(ft, 6, ip(client), 40001, ip(server), 80));

    char cid[COMMUNITY_ID_LEN];
    community_id_from_strings(0, client, server, "tcp", 40000, 80, cid);
    assert_string_equal(r->community_id, cid);
    assert_ptr_equal(flows_find_cid(ft, cid), r);

    /* FIN both ways: closed, expired after 5 s idle even with a long idle
     * timeout. */
    feed(ft, 0, &fin1, 2000000);
    feed(ft, 0, &fin2, 2001000);
    assert_int_equal(r->tcp & (FLOWS_TCP_FIN_ORIG | FLOWS_TCP_FIN_RESP),
                     FLOWS_TCP_FIN_ORIG | FLOWS_TCP_FIN_RESP);
    assert_int_equal(flows_expire(ft, 2001000 + 4000000, 60000000, NULL, NULL), 0);
    assert_int_equal(flows_expire(ft, 2001000 + 5000001, 60000000, NULL, NULL), 1);
    assert_null(flows_find_cid(ft, cid));
    flows_free(ft);
}

static void test_tcp_handshake(void **state)
{
    (void)state;
    /* Client below and above the server in address order: the key swaps
     * in one of them, the originator stays the client in both. */
    check_handshake("198.18.1.10", "198.18.1.1");
    check_handshake("198.18.1.1", "198.18.1.10");
    /* Same address both ends, client port above the server's. */
    check_handshake("198.18.1.5", "198.18.1.5");
}

static void test_synack_first(void **state)
{
    (void)state;
    flows *ft = table(4);
    fspec synack = {.proto = 6, .src = "198.18.0.1", .sport = 443, .dst = "198.18.0.9",
                    .dport = 5555, .flags = TCP_SYN | TCP_ACK};
    feed(ft, 0, &synack, 10);
    const flows_rec *r = flows_find(ft, 6, ip("198.18.0.9"), 5555, ip("198.18.0.1"), 443);
    assert_non_null(r);
    /* The capture started mid-handshake: the SYN-ACK's sender responds. */
    assert_int_equal(r->src, ip("198.18.0.9"));
    assert_int_equal(r->dport, 443);
    assert_int_equal(r->packets, 0);
    assert_int_equal(r->packets_rev, 1);
    flows_free(ft);
}

static void test_community_id_vector(void **state)
{
    (void)state;
    flows *ft = table(4);
    fspec s = {.proto = 6, .src = "128.232.110.120", .sport = 34855, .dst = "66.35.250.204",
               .dport = 80, .flags = TCP_SYN};
    feed(ft, 0, &s, 0);
    const flows_rec *r = flows_find_cid(ft, "1:LQU9qZlK+B5F3KDmev6m5PMibrg=");
    assert_non_null(r);
    assert_string_equal(r->community_id, "1:LQU9qZlK+B5F3KDmev6m5PMibrg=");
    assert_int_equal(r->src, ip("128.232.110.120"));
    flows_free(ft);
}

static void test_udp(void **state)
{
    (void)state;
    flows *ft = table(4);
    fspec q = {.proto = 17, .src = "198.18.2.50", .sport = 53000, .dst = "198.18.1.2",
               .dport = 53, .payload = 30};
    fspec a = {.proto = 17, .src = "198.18.1.2", .sport = 53, .dst = "198.18.2.50",
               .dport = 53000, .payload = 90};
    feed(ft, 3, &q, 5000);
    feed(ft, 3, &a, 6000);
    feed(ft, 3, &q, 7000);
    const flows_rec *r = flows_find(ft, 17, ip("198.18.1.2"), 53, ip("198.18.2.50"), 53000);
    assert_non_null(r);
    assert_int_equal(r->proto, 17);
    assert_int_equal(r->src, ip("198.18.2.50"));
    assert_int_equal(r->sport, 53000);
    assert_int_equal(r->packets, 2);
    assert_int_equal(r->packets_rev, 1);
    assert_int_equal(r->bytes, 2 * (14 + 20 + 8 + 30));
    assert_int_equal(r->bytes_rev, 14 + 20 + 8 + 90);
    assert_int_equal(r->segments, 1u << 3);
    assert_int_equal(r->tcp, 0);
    char cid[COMMUNITY_ID_LEN];
    community_id_from_strings(0, "198.18.2.50", "198.18.1.2", "udp", 53000, 53, cid);
    assert_string_equal(r->community_id, cid);
    flows_free(ft);
}

static void test_icmp(void **state)
{
    (void)state;
    flows *ft = table(8);
    fspec req = {.proto = 1, .src = "198.18.1.1", .sport = 8, .dst = "198.18.1.10", .dport = 0,
                 .payload = 56};
    fspec rep = {.proto = 1, .src = "198.18.1.10", .sport = 0, .dst = "198.18.1.1", .dport = 0,
                 .payload = 56};
    fspec unreach = {.proto = 1, .src = "198.18.1.10", .sport = 3, .dst = "198.18.1.1",
                     .dport = 3, .payload = 28};
    feed(ft, 0, &req, 1);
    feed(ft, 0, &rep, 2);
    feed(ft, 0, &req, 3);
    feed(ft, 0, &rep, 4);
    feed(ft, 0, &unreach, 5);
    flows_counters c;
    flows_get_counters(ft, &c);
    assert_int_equal(c.flows_created, 2);
    const flows_rec *r = flows_find(ft, 1, ip("198.18.1.1"), 8, ip("198.18.1.10"), 0);
    assert_non_null(r);
    assert_int_equal(r->src, ip("198.18.1.1"));
    assert_int_equal(r->sport, 8);
    assert_int_equal(r->dport, 0);
    assert_int_equal(r->packets, 2);
    assert_int_equal(r->packets_rev, 2);
    char cid[COMMUNITY_ID_LEN];
    community_id_from_strings(0, "198.18.1.10", "198.18.1.1", "icmp", 0, 0, cid);
    assert_string_equal(r->community_id, cid);
    /* The reply's orientation finds the same flow. */
    assert_ptr_equal(flows_find(ft, 1, ip("198.18.1.10"), 0, ip("198.18.1.1"), 0), r);
    const flows_rec *u = flows_find(ft, 1, ip("198.18.1.10"), 3, ip("198.18.1.1"), 3);
    assert_non_null(u);
    assert_ptr_not_equal(u, r);
    /* A one-way message keeps its direction, yet either orientation finds it. */
    assert_ptr_equal(flows_find(ft, 1, ip("198.18.1.1"), 3, ip("198.18.1.10"), 3), u);
    assert_int_equal(u->packets, 1);
    community_id_from_strings(0, "198.18.1.10", "198.18.1.1", "icmp", 3, 3, cid);
    assert_string_equal(u->community_id, cid);
    flows_free(ft);
}

static void test_vlan(void **state)
{
    (void)state;
    flows *ft = table(4);
    fspec s = {.proto = 6, .src = "198.18.3.4", .sport = 1234, .dst = "198.18.3.5",
               .dport = 22, .flags = TCP_SYN};
    fspec tagged = s;
    tagged.vlan = 1;
    tagged.src = "198.18.3.5";
    tagged.sport = 22;
    tagged.dst = "198.18.3.4";
    tagged.dport = 1234;
    tagged.flags = TCP_SYN | TCP_ACK;
    assert_int_equal(feed(ft, 0, &s, 1), 1);
    assert_int_equal(feed(ft, 0, &tagged, 2), 1);
    flows_counters c;
    flows_get_counters(ft, &c);
    assert_int_equal(c.flows_created, 1);
    const flows_rec *r = flows_find(ft, 6, ip("198.18.3.4"), 1234, ip("198.18.3.5"), 22);
    assert_non_null(r);
    assert_int_equal(r->packets, 1);
    assert_int_equal(r->packets_rev, 1);
    assert_int_equal(r->bytes_rev, 60); /* padded to the minimum */
    assert_int_equal(r->tcp, FLOWS_TCP_SYN | FLOWS_TCP_SYNACK);
    flows_free(ft);
}

static void test_fragments(void **state)
{
    (void)state;
    flows *ft = table(4);
    fspec first = {.proto = 17, .src = "198.18.0.7", .sport = 5000, .dst = "198.18.0.8",
                   .dport = 6000, .frag = 0x2000, .payload = 100};
    fspec later = first;
    later.frag = 0x0000 | 14; /* offset 112 bytes, last fragment */
    assert_int_equal(feed(ft, 0, &first, 1), 1);
    assert_int_equal(feed(ft, 0, &later, 2), 1);
    const flows_rec *r = flows_find(ft, 17, ip("198.18.0.7"), 5000, ip("198.18.0.8"), 6000);
    assert_non_null(r);
    assert_int_equal(r->packets, 1);
    /* A later fragment has no ports: a flow of its own with ports 0. */
    const flows_rec *f = flows_find(ft, 17, ip("198.18.0.7"), 0, ip("198.18.0.8"), 0);
    assert_non_null(f);
    assert_ptr_not_equal(f, r);
    assert_int_equal(f->sport, 0);
    assert_int_equal(f->packets, 1);
    flows_free(ft);
}

static void test_other_protocols(void **state)
{
    (void)state;
    flows *ft = table(4);
    fspec gre = {.proto = 47, .src = "198.18.0.1", .dst = "198.18.0.2", .payload = 20};
    uint8_t buf[256];
    size_t n = build(buf, &gre);
    /* Bytes where ports would be must not make ports for GRE. */
    buf[14 + 20] = 0x12;
    buf[14 + 21] = 0x34;
    assert_int_equal(feed_exact(ft, 0, buf, n, n, 1), 1);
    const flows_rec *r = flows_find(ft, 47, ip("198.18.0.2"), 0, ip("198.18.0.1"), 0);
    assert_non_null(r);
    assert_int_equal(r->sport, 0);
    json_t *j = flows_rec_to_json(r);
    assert_int_equal(json_integer_value(json_object_get(j, "proto")), 47);
    json_decref(j);

    /* ARP and IPv6 are counted, not flows. */
    uint8_t arp[60] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06};
    uint8_t v6[60] = {0x33, 0x33, 0, 0, 0, 1, 2, 0, 0, 0, 0, 1, 0x86, 0xdd, 0x60};
    assert_int_equal(feed_exact(ft, 0, arp, sizeof(arp), sizeof(arp), 2), 0);
    assert_int_equal(feed_exact(ft, 0, v6, sizeof(v6), sizeof(v6), 3), 0);
    assert_int_equal(flows_add_frame(ft, FLOWS_MAX_SEGMENTS, arp, sizeof(arp), 60, 4), -1);
    flows_counters c;
    flows_get_counters(ft, &c);
    assert_int_equal(c.frames, 3);
    assert_int_equal(c.non_ip, 2);
    assert_int_equal(c.flows_created, 1);
    assert_int_equal(c.bytes, n + 120);
    flows_free(ft);
}

/* Every prefix of real frames: nothing read out of bounds (the sanitizers
 * would stop the test), and the frame makes a flow exactly when its ports
 * are in the prefix. */
static void test_truncated(void **state)
{
    (void)state;
    fspec specs[] = {
        {.proto = 6, .src = "198.18.0.1", .sport = 1, .dst = "198.18.0.2", .dport = 2,
         .flags = TCP_SYN, .payload = 10},
        {.vlan = 1, .proto = 17, .src = "198.18.0.1", .sport = 1, .dst = "198.18.0.2",
         .dport = 2, .payload = 10},
        {.proto = 1, .src = "198.18.0.1", .sport = 8, .dst = "198.18.0.2", .payload = 10},
    };
    for (size_t s = 0; s < sizeof(specs) / sizeof(specs[0]); s++) {
        uint8_t buf[256];
        size_t n = build(buf, &specs[s]);
        size_t need = (specs[s].vlan ? 18 : 14) + 20 + (specs[s].proto == 1 ? 2 : 4);
        for (size_t len = 0; len <= n; len++) {
            flows *ft = table(2);
            int r = feed_exact(ft, 0, buf, len, n, 7);
            assert_int_equal(r, len >= need ? 1 : 0);
            flows_counters c;
            flows_get_counters(ft, &c);
            assert_int_equal(c.frames, 1);
            assert_int_equal(c.malformed, len >= need ? 0 : 1);
            flows_free(ft);
        }
    }
    /* NULL frame with a length. */
    flows *ft = table(2);
    assert_int_equal(flows_add_frame(ft, 0, NULL, 100, 100, 0), 0);
    flows_free(ft);
}

static uint32_t rng_next(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* Random bytes behind a valid Ethernet/IPv4 start, with lying IHL, total
 * length and fragment fields. */
static void test_garbage(void **state)
{
    (void)state;
    flows *ft = table(64);
    uint32_t seed = 12345;
    uint64_t flows_frames = 0;
    for (int i = 0; i < 20000; i++) {
        uint8_t buf[128];
        size_t len = rng_next(&seed) % sizeof(buf);
        for (size_t j = 0; j < len; j++)
            buf[j] = (uint8_t)rng_next(&seed);
        if (len > 14 && i % 2 == 0) {
            buf[12] = 0x08;
            buf[13] = 0x00;
            buf[14] = (uint8_t)(0x40 | (buf[14] & 0x0f));
        }
        int r = feed_exact(ft, (unsigned)(i % 3), buf, len, len, i);
        assert_true(r == 0 || r == 1);
        flows_frames += (uint64_t)r;
        if (i % 1000 == 999)
            flows_expire(ft, i, 100, NULL, NULL);
    }
    flows_counters c;
    flows_get_counters(ft, &c);
    assert_int_equal(c.frames, 20000);
    assert_int_equal(c.non_ip + c.malformed + flows_frames, 20000);
    assert_true(flows_frames > 1000); /* the IPv4 half mostly parses */
    flows_free(ft);
}

static void test_two_segments(void **state)
{
    (void)state;
    flows *ft = table(8);
    fspec out = {.proto = 6, .src = "198.18.2.50", .sport = 41000, .dst = "198.18.1.10",
                 .dport = 25, .flags = TCP_SYN};
    fspec back = {.proto = 6, .src = "198.18.1.10", .sport = 25, .dst = "198.18.2.50",
                  .dport = 41000, .flags = TCP_SYN | TCP_ACK};
    /* The router forwards each packet from one bridge to the other. */
    feed(ft, 2, &out, 100);
    feed(ft, 1, &out, 150);
    feed(ft, 1, &back, 200);
    feed(ft, 2, &back, 250);
    const flows_rec *r = flows_find(ft, 6, ip("198.18.2.50"), 41000, ip("198.18.1.10"), 25);
    assert_non_null(r);
    assert_int_equal(r->packets, 1);
    assert_int_equal(r->packets_rev, 1);
    assert_int_equal(r->bytes, 60);
    assert_int_equal(r->segments, (1u << 1) | (1u << 2));
    assert_int_equal(r->count_segment, 2);
    assert_int_equal(r->last_us, 250);
    flows_counters c;
    flows_get_counters(ft, &c);
    assert_int_equal(c.frames, 4);
    assert_int_equal(c.flows_created, 1);

    json_t *j = flows_rec_to_json(r);
    json_t *segs = json_object_get(j, "segments");
    assert_int_equal(json_array_size(segs), 2);
    assert_int_equal(json_integer_value(json_array_get(segs, 0)), 1);
    assert_int_equal(json_integer_value(json_array_get(segs, 1)), 2);
    json_decref(j);
    flows_free(ft);
}

static void udp_flow(fspec *s, uint16_t port)
{
    memset(s, 0, sizeof(*s));
    s->proto = 17;
    s->src = "198.18.0.1";
    s->dst = "198.18.0.2";
    s->sport = port;
    s->dport = 9;
}

typedef struct seen {
    int n;
    uint16_t sports[16];
} seen;

static void collect(const flows_rec *r, void *opaque)
{
    seen *s = opaque;
    if (s->n < 16)
        s->sports[s->n] = r->sport;
    s->n++;
}

static void test_eviction(void **state)
{
    (void)state;
    flows *ft = table(4);
    fspec s;
    for (uint16_t p = 1; p <= 4; p++) {
        udp_flow(&s, p);
        feed(ft, 0, &s, p * 1000000);
    }
    /* Flow 1 is seen again: flow 2 is now the least recently seen.  Flow
     * 3, seen again within the recency resolution, does not move. */
    udp_flow(&s, 1);
    feed(ft, 0, &s, 5000000);
    udp_flow(&s, 3);
    feed(ft, 0, &s, 3000000 + FLOWS_RECENCY_US - 1);
    udp_flow(&s, 5);
    feed(ft, 0, &s, 6000000);
    flows_counters c;
    flows_get_counters(ft, &c);
    assert_int_equal(c.evicted, 1);
    assert_int_equal(c.active, 4);
    assert_int_equal(c.finished, 1);
    assert_int_equal(c.flows_created, 5);
    /* Still found, among the finished flows. */
    const flows_rec *r = flows_find(ft, 17, ip("198.18.0.1"), 2, ip("198.18.0.2"), 9);
    assert_non_null(r);
    assert_int_equal(r->last_us, 2000000);
    assert_non_null(flows_find_cid(ft, r->community_id));
    json_t *all = flows_to_json(ft);
    assert_int_equal(json_array_size(all), 5);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(all, 0), "sport")), 2);
    json_decref(all);

    /* The finished flow is handed out first, then nothing is idle. */
    seen got = {0};
    assert_int_equal(flows_expire(ft, 6000000, 10000000, collect, &got), 1);
    assert_int_equal(got.n, 1);
    assert_int_equal(got.sports[0], 2);
    assert_null(flows_find(ft, 17, ip("198.18.0.1"), 2, ip("198.18.0.2"), 9));

    /* Flow 3 is now the oldest: it goes next, though its last packet came
     * after flow 4's first. */
    udp_flow(&s, 6);
    feed(ft, 0, &s, 6500000);
    memset(&got, 0, sizeof(got));
    assert_int_equal(flows_expire(ft, 6500000, 10000000, collect, &got), 1);
    assert_int_equal(got.sports[0], 3);
    assert_null(flows_find(ft, 17, ip("198.18.0.1"), 3, ip("198.18.0.2"), 9));
    assert_non_null(flows_find(ft, 17, ip("198.18.0.1"), 4, ip("198.18.0.2"), 9));
    /* Nobody collects: the finished queue (4) overflows and counts it. */
    for (uint16_t p = 10; p < 20; p++) {
        udp_flow(&s, p);
        feed(ft, 0, &s, 7000000 + p);
    }
    flows_get_counters(ft, &c);
    assert_int_equal(c.evicted, 12);
    assert_int_equal(c.finished, 4);
    assert_int_equal(c.finished_dropped, 6);
    flows_free(ft);
}

static void test_expiry(void **state)
{
    (void)state;
    flows *ft = table(16);
    fspec s;
    udp_flow(&s, 1);
    feed(ft, 0, &s, 0);
    udp_flow(&s, 2);
    feed(ft, 0, &s, 10000000);
    /* A reset TCP flow and a half-closed one, both old enough. */
    fspec rst = {.proto = 6, .src = "198.18.0.1", .sport = 7, .dst = "198.18.0.3", .dport = 8,
                 .flags = TCP_RST};
    fspec half = {.proto = 6, .src = "198.18.0.1", .sport = 9, .dst = "198.18.0.3",
                  .dport = 8, .flags = TCP_FIN | TCP_ACK};
    feed(ft, 0, &rst, 14000000);
    feed(ft, 0, &half, 14000000);
    udp_flow(&s, 3);
    feed(ft, 0, &s, 20000000);

    seen got = {0};
    /* now 25 s, idle 12 s: flow 1 (25 s) and 2 (15 s) go; the RST flow
     * (11 s idle) goes as closed; the half-closed one and flow 3 stay. */
    assert_int_equal(flows_expire(ft, 25000000, 12000000, collect, &got), 3);
    assert_int_equal(got.n, 3);
    assert_int_equal(got.sports[0], 1);
    assert_int_equal(got.sports[1], 2);
    assert_int_equal(got.sports[2], 7);
    flows_counters c;
    flows_get_counters(ft, &c);
    assert_int_equal(c.active, 2);
    assert_null(flows_find(ft, 17, ip("198.18.0.1"), 1, ip("198.18.0.2"), 9));
    assert_non_null(flows_find(ft, 17, ip("198.18.0.1"), 3, ip("198.18.0.2"), 9));
    assert_non_null(flows_find(ft, 6, ip("198.18.0.1"), 9, ip("198.18.0.3"), 8));
    assert_int_equal(flows_expire(ft, 100000000, 12000000, NULL, NULL), 2);
    flows_get_counters(ft, &c);
    assert_int_equal(c.active, 0);
    flows_free(ft);
}

static void test_json(void **state)
{
    (void)state;
    flows *ft = table(4);
    fspec syn = {.proto = 6, .src = "198.18.1.10", .sport = 40000, .dst = "198.18.1.1",
                 .dport = 80, .flags = TCP_SYN};
    feed(ft, 5, &syn, 1700000000123456);
    json_t *arr = flows_to_json(ft);
    assert_int_equal(json_array_size(arr), 1);
    json_t *o = json_array_get(arr, 0);
    assert_string_equal(json_string_value(json_object_get(o, "proto")), "tcp");
    assert_string_equal(json_string_value(json_object_get(o, "src")), "198.18.1.10");
    assert_int_equal(json_integer_value(json_object_get(o, "sport")), 40000);
    assert_string_equal(json_string_value(json_object_get(o, "dst")), "198.18.1.1");
    assert_int_equal(json_integer_value(json_object_get(o, "dport")), 80);
    assert_int_equal(json_integer_value(json_object_get(o, "packets")), 1);
    assert_int_equal(json_integer_value(json_object_get(o, "bytes")), 60);
    assert_int_equal(json_integer_value(json_object_get(o, "packets_rev")), 0);
    assert_int_equal(json_integer_value(json_object_get(o, "bytes_rev")), 0);
    assert_int_equal(json_integer_value(json_object_get(o, "first")), 1700000000123);
    assert_int_equal(json_integer_value(json_object_get(o, "last")), 1700000000123);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(o, "segments"), 0)), 5);
    json_t *tcp = json_object_get(o, "tcp");
    assert_true(json_is_true(json_object_get(tcp, "syn")));
    assert_true(json_is_false(json_object_get(tcp, "synack")));
    assert_true(json_is_false(json_object_get(tcp, "fin")));
    assert_true(json_is_false(json_object_get(tcp, "rst")));
    char cid[COMMUNITY_ID_LEN];
    community_id_from_strings(0, "198.18.1.10", "198.18.1.1", "tcp", 40000, 80, cid);
    assert_string_equal(json_string_value(json_object_get(o, "community_id")), cid);
    json_decref(arr);

    flows_counters c;
    flows_get_counters(ft, &c);
    json_t *cj = flows_counters_to_json(&c);
    assert_int_equal(json_integer_value(json_object_get(cj, "frames")), 1);
    assert_int_equal(json_integer_value(json_object_get(cj, "flows_created")), 1);
    json_decref(cj);
    flows_free(ft);
}

/* Many creations, evictions and expiries in a small table: every flow the
 * table lists is found again by tuple and by Community ID, which checks
 * the backward-shift deletion of both indexes. */
static void test_churn(void **state)
{
    (void)state;
    flows *ft = table(50);
    uint32_t seed = 99;
    char a[16], b[16];
    for (int i = 0; i < 20000; i++) {
        fspec s;
        memset(&s, 0, sizeof(s));
        uint32_t r = rng_next(&seed);
        s.proto = r % 3 == 0 ? 6 : 17;
        addr_format(0xC6120000u | (r >> 8 & 0x3), a, sizeof(a));
        addr_format(0xC6120000u | (r >> 10 & 0x3), b, sizeof(b));
        s.src = a;
        s.dst = b;
        s.sport = (uint16_t)(r >> 12 & 0x1f);
        s.dport = 80;
        feed(ft, 0, &s, i);
        if (r % 97 == 0)
            flows_expire(ft, i, (int64_t)(r % 200), NULL, NULL);
        if (i % 500 == 0 || i > 19900) {
            json_t *all = flows_to_json(ft);
            flows_counters c;
            flows_get_counters(ft, &c);
            assert_int_equal(json_array_size(all), c.active + c.finished);
            size_t k;
            json_t *o;
            json_array_foreach(all, k, o) {
                uint32_t sa, da;
                addr_parse(json_string_value(json_object_get(o, "src")), &sa);
                addr_parse(json_string_value(json_object_get(o, "dst")), &da);
                const char *cid = json_string_value(json_object_get(o, "community_id"));
                int proto = strcmp(json_string_value(json_object_get(o, "proto")), "tcp") ? 17 : 6;
                const flows_rec *f = flows_find(ft, (uint8_t)proto, da,
                    (uint16_t)json_integer_value(json_object_get(o, "dport")), sa,
                    (uint16_t)json_integer_value(json_object_get(o, "sport")));
                assert_non_null(f);
                assert_string_equal(f->community_id, cid);
                assert_non_null(flows_find_cid(ft, cid));
            }
            json_decref(all);
        }
    }
    flows_free(ft);
}

static void test_bad_size(void **state)
{
    char err[128] = "";
    (void)state;
    assert_null(flows_new(0, err, sizeof(err)));
    assert_non_null(strstr(err, "out of range"));
    flows_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tcp_handshake),
        cmocka_unit_test(test_synack_first),
        cmocka_unit_test(test_community_id_vector),
        cmocka_unit_test(test_udp),
        cmocka_unit_test(test_icmp),
        cmocka_unit_test(test_vlan),
        cmocka_unit_test(test_fragments),
        cmocka_unit_test(test_other_protocols),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_two_segments),
        cmocka_unit_test(test_eviction),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_churn),
        cmocka_unit_test(test_bad_size),
    };
    return cmocka_run_group_tests_name("flows", tests, NULL, NULL);
}
