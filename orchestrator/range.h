/* range — real per-team ranges: provisioning on libvirt, the agents'
 * configuration, status, teardown and rollback.
 *
 * `up` creates, for every team of a plan, one L2-only libvirt network per
 * segment and one domain per host, connects every guest's agent channel,
 * sends each agent its configuration and reports when all are ready.  Any
 * failure (libvirt refusing an object, a missing image, an agent that does
 * not come up in time) removes everything created so far.  `down` removes
 * everything of an exercise, found by name and domain metadata, so it works
 * even when the orchestrator that made the range is gone.
 *
 * Only virt.c talks to libvirt; libvirt calls run on the libuv thread pool.
 */
#ifndef CYRANGE_RANGE_H
#define CYRANGE_RANGE_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "plan.h"
#include "scenario.h"

#define RANGE_STATE_DIR "/var/lib/cyrange"
#define RANGE_POOL "cyrange"

typedef struct range_opts {
    const char *uri;            /* libvirt URI; NULL: qemu:///system */
    const char *domain_type;    /* "qemu" (TCG) or "kvm" */
    const char *images_dir;     /* where `make images` put its output */
    const char *state_dir;      /* NULL: RANGE_STATE_DIR */
    int boot_timeout_ms;        /* every agent ready within this; 0: 180 s */
    int keep_on_failure;        /* debugging: no rollback */
    const char *fail_at_host;   /* tests: refuse to create this host's
                                   domain in the last team (rollback test) */
} range_opts;

typedef enum range_guest_state {
    RANGE_G_PENDING,            /* not created yet */
    RANGE_G_STARTED,            /* domain running, agent not heard yet */
    RANGE_G_HELLO,              /* agent said hello, configuring */
    RANGE_G_READY,              /* agent applied its configuration */
    RANGE_G_STOPPED,            /* the domain stopped */
    RANGE_G_CRASHED,
    RANGE_G_FAILED,
} range_guest_state;

typedef struct range range;

typedef enum range_event_kind {
    RANGE_EV_INFO,              /* progress text */
    RANGE_EV_GUEST,             /* a guest changed state */
} range_event_kind;

/* Progress and completion callbacks run on the loop.  `msg` is borrowed. */
typedef void (*range_progress_cb)(range *r, range_event_kind kind, int guest,
                                  const char *msg, void *opaque);
/* ok: 1 when every agent is ready; else `msg` says what failed, after the
 * rollback finished. */
typedef void (*range_done_cb)(range *r, int ok, const char *msg, void *opaque);

/* Creates the range object for `p` (borrowed; must outlive the range). */
range *range_new(uv_loop_t *loop, const plan *p, const range_opts *o);
void range_set_progress(range *r, range_progress_cb cb, void *opaque);
/* Starts provisioning.  0, or -1 with a message in `err`. */
int range_up(range *r, range_done_cb done, void *opaque, char *err, size_t errlen);
/* Attaches to an existing range (status, serve): connects every agent and
 * reads domain states; `done` is called once every guest answered or after
 * `timeout_ms`.  Never creates or removes anything. */
int range_attach(range *r, int timeout_ms, range_done_cb done, void *opaque,
                 char *err, size_t errlen);
/* Resets team `team` (1-based) of a running range: its guests are stopped
 * and started again from the scenario's initial state (fresh overlays for
 * disk guests) and reconfigured; `done` runs when every agent of the team is
 * ready again, or on failure.  0, or -1 with `err`. */
int range_team_rebuild(range *r, int team, range_done_cb done, void *opaque,
                       char *err, size_t errlen);
/* Asks every ready guest's agent for its health every `interval_ms` (and
 * now), so that status, DHCP addresses and guest health stay current
 * while an exercise runs.  0 or -1. */
int range_monitor(range *r, int interval_ms);
/* Fails a running `up` (e.g. on Ctrl-C): everything is rolled back and the
 * done callback reports `why`. */
void range_interrupt(range *r, const char *why);
/* Closes agent links and handles; `closed` runs when all are freed. */
void range_close(range *r, void (*closed)(void *opaque), void *opaque);

size_t range_guest_count(const range *r);
range_guest_state range_guest_get_state(const range *r, size_t g);
const char *range_guest_state_name(range_guest_state s);
const char *range_guest_domain(const range *r, size_t g);
int range_guest_team(const range *r, size_t g);     /* 1-based */
int range_guest_host(const range *r, size_t g);     /* scenario index */
/* Seconds from domain start to agent ready (or -1). */
double range_guest_ready_s(const range *r, size_t g);
/* Last health reply of the guest (borrowed JSON or NULL). */
const json_t *range_guest_health(const range *r, size_t g);
/* The guest's agent link, for requests (NULL when not connected). */
struct agentlink *range_guest_link(const range *r, size_t g);
/* Index of team `team` (1-based), host `name`, or -1. */
int range_guest_find(const range *r, int team, const char *host);
/* The libvirt connection that delivers the range's events (its event loop
 * runs), for guest consoles; NULL before up/attach opened it or when events
 * are unavailable.  Borrowed. */
struct virt_conn *range_virt_events(const range *r);
/* The IPv4 address host `from` (scenario index, -1: any) uses to reach host
 * `hi` in `team`, into `buf`.  -1 when it has none yet (a DHCP host whose
 * agent has not reported). */
int range_host_address(const range *r, int team, int from, int hi, char *buf, size_t len);

/* Paths of an exercise's state (malloc'd). */
char *range_exercise_dir(const char *state_dir, const char *exercise);
/* Where an exercise's records (the ground-truth journal) live: outside the
 * range's own folder, so that `down` never removes them (malloc'd). */
char *range_records_dir(const char *state_dir, const char *exercise);
/* Creates that folder (and its parents).  0 or -1 (errno). */
int range_records_prepare(const char *dir);

/* Writes the exercise's state (scenario copy, teams, options) so that later
 * commands find the range.  0 or -1 with `err`. */
int range_state_save(const plan *p, const range_opts *o, const char *scenario_text,
                     size_t len, char *err, size_t errlen);
/* Reads back what range_state_save stored: the path of the scenario copy
 * to load and the original file's path (its name for diagnostics and for
 * relative disk image paths), both malloc'd, and the team count and
 * options.  Pointers may be NULL.  0, or -1 when the exercise has no state
 * (not up). */
int range_state_load(const char *state_dir, const char *exercise,
                     char **scenario_path, char **origin, int *teams, char **uri,
                     char **domain_type);
/* Names of exercises with state under `state_dir` (NULL-terminated). */
char **range_state_list(const char *state_dir);

/* Removes everything of `exercise`: domains (by metadata and name),
 * networks, volumes, sockets and state.  Idempotent.  Synchronous: do not
 * call on a running loop.  Returns the number of objects removed, or -1 with
 * `err` (after removing all it could). */
int range_down(const char *uri, const char *state_dir, const char *exercise,
               char *err, size_t errlen);

/* XML builders (pure; exposed for unit and golden tests).  malloc'd. */
char *range_network_xml(const plan *p, int team_idx, int seg);
char *range_domain_xml(const plan *p, int team_idx, int host,
                       const range_opts *o, const char *disk_path);
/* The agent configuration of one guest as a protocol message (new ref). */
json_t *range_agent_config(const plan *p, int team_idx, int host);

#endif
