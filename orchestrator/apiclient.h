/* apiclient — the command line's side of a running `cyrange serve`'s HTTP
 * API.
 *
 * `cyrange serve` writes <state>/<exercise>/api.json (mode 0600: root only,
 * as the control socket) with its loopback address and an instructor
 * session minted for the local command line.  The CLI then sends its
 * commands through the same routes, checks and audit trail as the web UI
 * (every write is acknowledged only once durable).  Blocking, one request
 * per connection, for a command-line process; never used on the loop.
 */
#ifndef CYRANGE_APICLIENT_H
#define CYRANGE_APICLIENT_H

#include <stddef.h>

#include <jansson.h>

typedef struct apiclient apiclient;

/* Reads the handoff file of `exname`.  NULL with err[0] == '\0' when there
 * is none (no serve runs the exercise), NULL with `err` when it is there
 * but unusable. */
apiclient *apiclient_open(const char *state_dir, const char *exname, char *err,
                          size_t errlen);
/* Wipes the session token.  Accepts NULL. */
void apiclient_free(apiclient *c);

/* Sends `method path` with `body` (borrowed, NULL: none) and waits up to
 * timeout_ms.  Returns the HTTP status with *out the decoded JSON answer
 * (new reference, NULL when the body was empty or not JSON), or -1 with
 * `err` when the server cannot be reached or the answer is malformed
 * (*out NULL). */
int apiclient_call(apiclient *c, const char *method, const char *path, const json_t *body,
                   int timeout_ms, json_t **out, char *err, size_t errlen);

/* The message of an API error answer ({"error":{"message":...}}), or
 * `fallback`. */
const char *apiclient_error_message(const json_t *answer, const char *fallback);

#endif
