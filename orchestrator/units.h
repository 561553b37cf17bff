/* units — durations and sizes as organisers write them in scenarios.
 *
 * Durations: "250ms", "90s", "5m", "1h30m", "2h", or a bare integer of
 * seconds given as a JSON number (handled by the caller).  Sizes: "96M",
 * "1G", "512K" (binary units) or bare MiB.
 */
#ifndef CYRANGE_UNITS_H
#define CYRANGE_UNITS_H

#include <stddef.h>
#include <stdint.h>

/* Parses a duration into milliseconds.  Returns 0, or -1 when malformed or
 * larger than 30 days. */
int units_duration_parse(const char *s, int64_t *ms);
/* Formats milliseconds compactly ("1h30m", "45s", "250ms", "0s"). */
void units_duration_format(int64_t ms, char *buf, size_t size);
/* Formats milliseconds as a clock offset "+HH:MM:SS" (".mmm" if needed). */
void units_clock_format(int64_t ms, char *buf, size_t size);
/* Parses a memory size into MiB ("128M", "1G", "131072K").  Returns -1 when
 * malformed or not a whole number of MiB. */
int units_size_parse_mib(const char *s, int64_t *mib);

/* Parses a UTC time "2026-11-22T10:03:00Z" (optional ".mmm", or an offset
 * "+09:00" instead of Z) into milliseconds since the epoch.  0 or -1. */
int units_utc_parse(const char *s, long long *ms);

#endif
