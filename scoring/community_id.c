#include "community_id.h"

#include <nettle/base64.h>
#include <nettle/sha1.h>
#include <string.h>

#include "addr.h"

/* ICMP types whose reply type makes a two-way "port" pair (spec, §ICMP). */
static int icmp_pair(uint8_t type, uint8_t *other)
{
    switch (type) {
    case 8: *other = 0; return 1;    /* echo / echo reply */
    case 0: *other = 8; return 1;
    case 13: *other = 14; return 1;  /* timestamp */
    case 14: *other = 13; return 1;
    case 15: *other = 16; return 1;  /* information */
    case 16: *other = 15; return 1;
    case 10: *other = 9; return 1;   /* router solicitation / advert */
    case 9: *other = 10; return 1;
    case 17: *other = 18; return 1;  /* address mask */
    case 18: *other = 17; return 1;
    }
    return 0;
}

void community_id_v1(uint16_t seed, uint32_t src, uint32_t dst, uint8_t proto,
                     uint16_t sport, uint16_t dport, char out[COMMUNITY_ID_LEN])
{
    uint8_t buf[2 + 4 + 4 + 1 + 1 + 2 + 2];
    uint8_t digest[SHA1_DIGEST_SIZE];
    struct sha1_ctx ctx;
    int has_ports = proto == 6 || proto == 17 || proto == 132 || proto == 1;
    int one_way = 0;

    if (proto == 1) {
        /* ICMP: the "ports" are type and code; a request/reply pair maps
         * both directions to one flow, other messages are one-way. */
        uint8_t other;
        if (icmp_pair((uint8_t)sport, &other))
            dport = other;
        else
            one_way = 1;
    }
    /* Order the endpoints so that both directions hash alike: the smaller
     * address (then port) first. */
    if (!one_way && (src > dst || (src == dst && sport > dport))) {
        uint32_t ta = src;
        uint16_t tp = sport;
        src = dst;
        dst = ta;
        sport = dport;
        dport = tp;
    }
    size_t n = 0;
    buf[n++] = (uint8_t)(seed >> 8);
    buf[n++] = (uint8_t)seed;
    buf[n++] = (uint8_t)(src >> 24);
    buf[n++] = (uint8_t)(src >> 16);
    buf[n++] = (uint8_t)(src >> 8);
    buf[n++] = (uint8_t)src;
    buf[n++] = (uint8_t)(dst >> 24);
    buf[n++] = (uint8_t)(dst >> 16);
    buf[n++] = (uint8_t)(dst >> 8);
    buf[n++] = (uint8_t)dst;
    buf[n++] = proto;
    buf[n++] = 0; /* padding */
    if (has_ports) {
        buf[n++] = (uint8_t)(sport >> 8);
        buf[n++] = (uint8_t)sport;
        buf[n++] = (uint8_t)(dport >> 8);
        buf[n++] = (uint8_t)dport;
    }
    sha1_init(&ctx);
    sha1_update(&ctx, n, buf);
    sha1_digest(&ctx, sizeof(digest), digest);
    memcpy(out, "1:", 2);
    base64_encode_raw((char *)out + 2, sizeof(digest), digest);
    out[2 + BASE64_ENCODE_RAW_LENGTH(SHA1_DIGEST_SIZE)] = '\0';
}

int community_id_from_strings(uint16_t seed, const char *src, const char *dst,
                              const char *proto, int sport, int dport,
                              char out[COMMUNITY_ID_LEN])
{
    uint32_t a, b;
    uint8_t p;
    if (src == NULL || dst == NULL || proto == NULL || addr_parse(src, &a) < 0 ||
        addr_parse(dst, &b) < 0 || sport < 0 || sport > 65535 || dport < 0 ||
        dport > 65535)
        return -1;
    if (strcmp(proto, "tcp") == 0)
        p = 6;
    else if (strcmp(proto, "udp") == 0)
        p = 17;
    else if (strcmp(proto, "icmp") == 0)
        p = 1;
    else
        return -1;
    community_id_v1(seed, a, b, p, (uint16_t)sport, (uint16_t)dport, out);
    return 0;
}
