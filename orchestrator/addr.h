/* addr — IPv4 addresses and prefixes, and the range's address policy.
 *
 * Addresses are host-order uint32_t.  Ranges may only use 198.18.0.0/15
 * (RFC 2544 benchmarking space), see DESIGN.md section 4.
 */
#ifndef CYRANGE_ADDR_H
#define CYRANGE_ADDR_H

#include <stddef.h>
#include <stdint.h>

#define ADDR_RANGE_NET    0xC6120000u /* 198.18.0.0 */
#define ADDR_RANGE_PREFIX 15

/* Parses dotted quad (no leading zeros, no shorthand).  0 or -1. */
int addr_parse(const char *s, uint32_t *out);
/* Parses "a.b.c.d/p".  0 or -1. */
int addr_parse_cidr(const char *s, uint32_t *net, int *prefix);
uint32_t addr_mask(int prefix);
/* 1 when addr lies in net/prefix. */
int addr_in(uint32_t addr, uint32_t net, int prefix);
/* 1 when addr lies in 198.18.0.0/15. */
int addr_in_range_space(uint32_t addr);
/* Formats into buf (at least 16 bytes). Returns buf. */
char *addr_format(uint32_t addr, char *buf, size_t size);

#endif
