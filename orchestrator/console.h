/* console — shared serial consoles of guests for the web UI.
 *
 * A console_hub keeps at most one live libvirt console stream per guest
 * (virt_console) and fans it out to any number of viewers: an instructor
 * can watch while a trainee types.  Output goes to every viewer; input from
 * any viewer goes to the guest.  The last CONSOLE_SCROLLBACK bytes of output
 * are kept and replayed to a viewer that attaches to a running session, so
 * that it sees the prompt.  When the last viewer detaches, the stream stays
 * open for a grace period (CONSOLE_GRACE_MS, console_hub_set_grace) so that
 * a page reload does not drop it, then closes.
 *
 * Takeover: streams are opened with VIR_DOMAIN_CONSOLE_FORCE (virt.h), so
 * the hub takes a guest's console from any other client (a stale viewer,
 * `virsh console`), and loses it, with on_closed(CONSOLE_END_ERROR), when
 * another client forces it.
 *
 * Daemon restarts: a stream opened on a libvirt connection that was since
 * lost carries nothing again, and libvirt does not always report its end.
 * The hub checks its sessions every CONSOLE_WATCH_MS (and on each attach and
 * write) and ends such a session with on_closed(CONSOLE_END_ERROR, "libvirtd
 * restarted ..."); the next attach opens a fresh stream.
 *
 * Threads: every function here is called on the hub's loop thread, and
 * every callback runs on it.  The connection must have libvirt's event
 * thread running (virt_events_init before virt_open, then
 * virt_events_start) and must outlive the hub.
 *
 * Ownership: the caller owns the hub (end it with console_hub_close) and
 * each viewer (end it with console_detach, exactly once, also after
 * on_closed).  Callbacks may call console_write, console_detach (of any
 * viewer) and console_hub_close; data and messages passed to callbacks are
 * borrowed for the call.
 */
#ifndef CYRANGE_CONSOLE_H
#define CYRANGE_CONSOLE_H

#include <stddef.h>
#include <uv.h>

#include "virt.h"

#define CONSOLE_SCROLLBACK (64u * 1024)
#define CONSOLE_GRACE_MS 5000u
#define CONSOLE_WATCH_MS 2000u

typedef struct console_hub console_hub;
typedef struct console_viewer console_viewer;

/* Why a viewer's console ended. */
typedef enum console_end {
    CONSOLE_END_EOF,         /* the guest's console closed (guest stopped) */
    CONSOLE_END_ERROR,       /* stream error: guest destroyed, another
                                client forced the console, daemon gone */
    CONSOLE_END_OPEN_FAILED, /* no such guest, not running, no console */
    CONSOLE_END_SHUTDOWN,    /* console_hub_close */
} console_end;

typedef struct console_viewer_cbs {
    /* The console is live (optional).  Called once: when the stream opens,
     * or soon after console_attach when it already is open. */
    void (*on_open)(void *opaque);
    /* Guest output: first the scroll-back replay, then live output. */
    void (*on_data)(void *opaque, const char *data, size_t len);
    /* The console ended; called at most once.  The viewer stays valid until
     * console_detach, which the owner still calls. */
    void (*on_closed)(void *opaque, console_end why, const char *msg);
} console_viewer_cbs;

/* A hub on `loop` over `conn` (borrowed; must outlive the hub).  NULL when
 * out of memory. */
console_hub *console_hub_new(uv_loop_t *loop, virt_conn *conn);
/* How long a stream stays open after its last viewer left (default
 * CONSOLE_GRACE_MS).  Applies to later departures. */
void console_hub_set_grace(console_hub *h, unsigned ms);
/* Ends every session: attached viewers get on_closed(CONSOLE_END_SHUTDOWN),
 * streams close, and done(opaque) (may be NULL) runs once every viewer has
 * detached and every stream is closed; the hub is freed before that.  No
 * attach afterwards.  NULL is accepted (done is then not called). */
void console_hub_close(console_hub *h, void (*done)(void *opaque), void *opaque);

/* Attaches a viewer to the console of running guest `domain` (copied),
 * opening its stream unless one is already shared.  Callbacks never run
 * inside console_attach.  `cbs` is copied.  NULL with `err` when the hub is
 * closing or memory is short; a guest that cannot be opened is reported
 * through on_closed(CONSOLE_END_OPEN_FAILED). */
console_viewer *console_attach(console_hub *h, const char *domain,
                               const console_viewer_cbs *cbs, void *opaque,
                               char *err, size_t errlen);
/* Sends input (copied) to the guest; allowed before the stream is open.
 * 0, or -1 with `err` when the console ended or its input queue is full. */
int console_write(console_viewer *v, const void *data, size_t len,
                  char *err, size_t errlen);
/* Detaches and frees the viewer; no callback of it runs afterwards.  NULL
 * is accepted. */
void console_detach(console_viewer *v);

/* Live streams (opening, open or in their grace period), for tests and
 * status.  Streams that are closing are not counted. */
size_t console_hub_streams(const console_hub *h);
/* The domain a viewer watches (borrowed). */
const char *console_viewer_domain(const console_viewer *v);

#endif
