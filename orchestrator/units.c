#include "units.h"

#include <ctype.h>
#include <stdio.h>
#include <time.h>
#include <string.h>

#define MAX_MS (30LL * 24 * 3600 * 1000)

int units_duration_parse(const char *s, int64_t *ms)
{
    int64_t total = 0;
    int last_rank = 6; /* units must come in decreasing order: d h m s ms */

    if (s == NULL || *s == '\0')
        return -1;
    while (*s) {
        int64_t v = 0;
        int digits = 0;
        int64_t mult;
        int rank;
        while (isdigit((unsigned char)*s)) {
            v = v * 10 + (*s - '0');
            if (v > MAX_MS)
                return -1;
            s++;
            digits++;
        }
        if (digits == 0)
            return -1;
        if (strncmp(s, "ms", 2) == 0) {
            mult = 1; rank = 1; s += 2;
        } else if (*s == 'h') {
            mult = 3600000; rank = 4; s++;
        } else if (*s == 'm') {
            mult = 60000; rank = 3; s++;
        } else if (*s == 's') {
            mult = 1000; rank = 2; s++;
        } else if (*s == 'd') {
            mult = 86400000; rank = 5; s++;
        } else {
            return -1;
        }
        if (rank >= last_rank)
            return -1;
        last_rank = rank;
        total += v * mult;
        if (total > MAX_MS)
            return -1;
    }
    *ms = total;
    return 0;
}

void units_duration_format(int64_t ms, char *buf, size_t size)
{
    char tmp[64];
    size_t n = 0;
    int64_t h, m, s;

    if (ms < 0)
        ms = 0;
    if (ms == 0) {
        snprintf(buf, size, "0s");
        return;
    }
    h = ms / 3600000;
    ms %= 3600000;
    m = ms / 60000;
    ms %= 60000;
    s = ms / 1000;
    ms %= 1000;
    tmp[0] = '\0';
    if (h)
        n += (size_t)snprintf(tmp + n, sizeof(tmp) - n, "%lldh", (long long)h);
    if (m)
        n += (size_t)snprintf(tmp + n, sizeof(tmp) - n, "%lldm", (long long)m);
    if (s)
        n += (size_t)snprintf(tmp + n, sizeof(tmp) - n, "%llds", (long long)s);
    if (ms)
        snprintf(tmp + n, sizeof(tmp) - n, "%lldms", (long long)ms);
    snprintf(buf, size, "%s", tmp);
}

void units_clock_format(int64_t ms, char *buf, size_t size)
{
    int neg = ms < 0;
    if (neg)
        ms = -ms;
    long long h = ms / 3600000, m = ms / 60000 % 60, s = ms / 1000 % 60;
    long long frac = ms % 1000;
    if (frac)
        snprintf(buf, size, "%c%02lld:%02lld:%02lld.%03lld", neg ? '-' : '+',
                 h, m, s, frac);
    else
        snprintf(buf, size, "%c%02lld:%02lld:%02lld", neg ? '-' : '+', h, m, s);
}

int units_size_parse_mib(const char *s, int64_t *mib)
{
    int64_t v = 0;
    int digits = 0;

    if (s == NULL)
        return -1;
    while (isdigit((unsigned char)*s)) {
        v = v * 10 + (*s - '0');
        if (v > (1LL << 40))
            return -1;
        s++;
        digits++;
    }
    if (digits == 0)
        return -1;
    if (strcmp(s, "M") == 0 || strcmp(s, "MiB") == 0 || *s == '\0') {
        *mib = v;
    } else if (strcmp(s, "G") == 0 || strcmp(s, "GiB") == 0) {
        *mib = v * 1024;
    } else if (strcmp(s, "K") == 0 || strcmp(s, "KiB") == 0) {
        if (v % 1024)
            return -1;
        *mib = v / 1024;
    } else {
        return -1;
    }
    return 0;
}

/* "2026-11-22T10:03:00Z", with optional ".mmm" and "+hh:mm"/"-hh:mm". */
int units_utc_parse(const char *s, long long *out)
{
    struct tm tm = { 0 };
    int ms = 0, n = 0;
    const char *p;

    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6 || n != 19)
        return -1;
    p = s + n;
    if (*p == '.') {
        int digits = 0;
        for (p++; isdigit((unsigned char)*p); p++, digits++)
            if (digits < 3)
                ms = ms * 10 + (*p - '0');
        if (digits == 0)
            return -1;
        for (; digits < 3; digits++)
            ms *= 10;
    }
    long long off = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int hh, mm;
        if (sscanf(p + 1, "%2d:%2d%n", &hh, &mm, &n) != 2 || n != 5 || hh > 23 || mm > 59)
            return -1;
        off = (hh * 60LL + mm) * 60000LL * (*p == '+' ? 1 : -1);
        p += 6;
    } else {
        return -1;
    }
    if (*p != '\0' || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 ||
        tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    *out = (long long)t * 1000 + ms - off;
    return 0;
}
