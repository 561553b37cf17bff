/* community_id — Community ID v1 flow hashes (https://github.com/corelight/
 * community-id-spec), so that a flow in the ground-truth journal, in the
 * capture's flow table and in a team's finding can be matched exactly, and
 * so that teams can paste the IDs their own tools (Zeek, Suricata) print.
 */
#ifndef CYRANGE_COMMUNITY_ID_H
#define CYRANGE_COMMUNITY_ID_H

#include <stddef.h>
#include <stdint.h>

#define COMMUNITY_ID_LEN 32   /* "1:" + 28 base64 characters + NUL, rounded */

/* IPv4 flow; addresses in host byte order; proto 6 (TCP), 17 (UDP),
 * 1 (ICMP: ports are type and code) or other (ports ignored).  Writes
 * "1:<base64>" to out.  Direction does not matter: both directions of a
 * flow get the same ID. */
void community_id_v1(uint16_t seed, uint32_t src, uint32_t dst, uint8_t proto,
                     uint16_t sport, uint16_t dport, char out[COMMUNITY_ID_LEN]);
/* Same from dotted quads and a protocol name ("tcp", "udp", "icmp").
 * 0, or -1 when an address or the protocol is malformed. */
int community_id_from_strings(uint16_t seed, const char *src, const char *dst,
                              const char *proto, int sport, int dport,
                              char out[COMMUNITY_ID_LEN]);

#endif
