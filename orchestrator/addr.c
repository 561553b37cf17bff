#include "addr.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

int addr_parse(const char *s, uint32_t *out)
{
    uint32_t a = 0;
    for (int part = 0; part < 4; part++) {
        int v = 0, digits = 0;
        if (part > 0) {
            if (*s != '.')
                return -1;
            s++;
        }
        if (s[0] == '0' && isdigit((unsigned char)s[1]))
            return -1; /* leading zeros read as octal by some tools */
        while (isdigit((unsigned char)*s)) {
            v = v * 10 + (*s - '0');
            if (v > 255 || ++digits > 3)
                return -1;
            s++;
        }
        if (digits == 0)
            return -1;
        a = (a << 8) | (uint32_t)v;
    }
    if (*s != '\0')
        return -1;
    *out = a;
    return 0;
}

int addr_parse_cidr(const char *s, uint32_t *net, int *prefix)
{
    char buf[32];
    const char *slash = strchr(s, '/');
    if (slash == NULL || (size_t)(slash - s) >= sizeof(buf))
        return -1;
    memcpy(buf, s, (size_t)(slash - s));
    buf[slash - s] = '\0';
    if (addr_parse(buf, net) < 0)
        return -1;
    const char *p = slash + 1;
    int v = 0, digits = 0;
    while (isdigit((unsigned char)*p)) {
        v = v * 10 + (*p - '0');
        if (v > 32 || ++digits > 2)
            return -1;
        p++;
    }
    if (digits == 0 || *p != '\0')
        return -1;
    *prefix = v;
    return 0;
}

uint32_t addr_mask(int prefix)
{
    return prefix <= 0 ? 0 : (prefix >= 32 ? 0xFFFFFFFFu : ~(0xFFFFFFFFu >> prefix));
}

int addr_in(uint32_t addr, uint32_t net, int prefix)
{
    uint32_t m = addr_mask(prefix);
    return (addr & m) == (net & m);
}

int addr_in_range_space(uint32_t addr)
{
    return addr_in(addr, ADDR_RANGE_NET, ADDR_RANGE_PREFIX);
}

char *addr_format(uint32_t a, char *buf, size_t size)
{
    snprintf(buf, size, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255,
             a & 255);
    return buf;
}
