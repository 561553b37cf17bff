/* srvio: what the role images' small network daemons (mini-smtpd,
 * mini-ftpd, mini-c2d) share: timestamped log lines written in one write
 * (children share an O_APPEND descriptor), client strings made safe for a
 * log line, and CRLF protocol replies. */
#ifndef SRVIO_H
#define SRVIO_H

#include <stdarg.h>
#include <stddef.h>

#define SRVIO_LINE_MAX 4096

/* Writes "TIMESTAMP TAG[PID]: MESSAGE\n" to fd ("TIMESTAMP MESSAGE\n" when
 * tag is NULL), truncated to max bytes (at most SRVIO_LINE_MAX).  Nothing
 * happens when fd < 0. */
void srvio_vlog(int fd, const char *tag, size_t max, const char *fmt, va_list ap);
/* Copies in to out, replacing control and non-ASCII bytes, and any byte in
 * `also` (may be NULL), with '?'. */
void srvio_clean(const char *in, char *out, size_t len, const char *also);
/* Writes the message plus CRLF to fd, truncated to max bytes (at most
 * SRVIO_LINE_MAX); a client that is gone ends the session (_exit(0)). */
void srvio_vreply(int fd, size_t max, const char *fmt, va_list ap);

#endif
