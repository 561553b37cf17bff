#include "srvio.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void srvio_vlog(int fd, const char *tag, size_t max, const char *fmt, va_list ap)
{
    char line[SRVIO_LINE_MAX], ts[32];
    time_t now = time(NULL);
    struct tm tm;
    int n;

    if (fd < 0)
        return;
    if (max > sizeof(line))
        max = sizeof(line);
    localtime_r(&now, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    if (tag)
        n = snprintf(line, max, "%s %s[%d]: ", ts, tag, (int)getpid());
    else
        n = snprintf(line, max, "%s ", ts);
    n += vsnprintf(line + n, max - (size_t)n - 1, fmt, ap);
    if (n > (int)max - 2)
        n = (int)max - 2;
    line[n++] = '\n';
    if (write(fd, line, (size_t)n) < 0) {
        /* nowhere else to report it */
    }
}

void srvio_clean(const char *in, char *out, size_t len, const char *also)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && o + 1 < len; p++)
        out[o++] = (*p >= 32 && *p < 127 && !(also && strchr(also, *p))) ? (char)*p
                                                                         : '?';
    out[o] = '\0';
}

void srvio_vreply(int fd, size_t max, const char *fmt, va_list ap)
{
    char line[SRVIO_LINE_MAX];
    int n;

    if (max > sizeof(line))
        max = sizeof(line);
    n = vsnprintf(line, max - 2, fmt, ap);
    if (n < 0)
        return;
    if (n > (int)max - 3)
        n = (int)max - 3;
    line[n++] = '\r';
    line[n++] = '\n';
    for (int off = 0; off < n;) {
        ssize_t w = write(fd, line + off, (size_t)(n - off));
        if (w <= 0) {
            if (w < 0 && errno == EINTR)
                continue;
            _exit(0);
        }
        off += (int)w;
    }
}
