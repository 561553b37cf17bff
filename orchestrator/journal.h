/* journal — the ground-truth record of an exercise, one JSON object per
 * line in <state>/<exercise>/journal.jsonl.
 *
 * Every step's start and result, with actor, target, addresses, ATT&CK
 * technique and the flows the agent reports, and every instructor action,
 * lands here before anyone is told it happened (each line is written and
 * fsync'd), so scoring can later match the teams' findings against exactly
 * what was done.  The store issue moves it into SQLite; the format stays.
 */
#ifndef CYRANGE_JOURNAL_H
#define CYRANGE_JOURNAL_H

#include <jansson.h>

typedef struct journal journal;

/* Opens (creating or appending to) `path`.  NULL with `err` on failure. */
journal *journal_open(const char *path, char *err, size_t errlen);
void journal_close(journal *j);
/* Appends `entry` (borrowed) with a "ts" (UTC, ms) added, durably.
 * 0, or -1 when the write failed (the caller reports it). */
int journal_append(journal *j, json_t *entry);
/* Reads every entry of a journal file (new reference: array), or NULL. */
json_t *journal_read(const char *path);

#endif
