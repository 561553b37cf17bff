/* scenario — load, validate and hold an exercise scenario (format v1).
 *
 * scenario_load() parses the JSON, checks every field and cross-reference,
 * and reports *every* problem as a diagnostic at its file:line:col; it
 * returns NULL when any was found.  A scenario it returns is consistent:
 * references are resolved to indexes, addresses lie in their segments and
 * in 198.18.0.0/15, step offsets are computed.  The format is documented in
 * scenarios/FORMAT.md; scenarios/schema.json is its JSON Schema.
 */
#ifndef CYRANGE_SCENARIO_H
#define CYRANGE_SCENARIO_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "diag.h"

#define SCENARIO_FORMAT 1
#define SCENARIO_MAX_TEAMS 99

typedef struct scn_segment {
    char *name;
    char *role;            /* internet, dmz, internal, office, ... */
    uint32_t net;
    int prefix;
    int dhcp_host;         /* index into hosts, -1 when no DHCP */
    uint32_t dhcp_first, dhcp_last;
} scn_segment;

typedef struct scn_nic {
    int segment;           /* index into segments */
    int dhcp;              /* 1: address from the segment's DHCP server */
    uint32_t addr;         /* when !dhcp */
} scn_nic;

typedef struct scn_service {
    char *name;
    char *proto;           /* "tcp" or "udp" */
    int port;
} scn_service;

typedef struct scn_account {
    char *name;
    char *password;
    char **groups;         /* NULL-terminated */
    int admin;
} scn_account;

typedef struct scn_file {
    char *path;
    char *content;
    unsigned mode;
} scn_file;

typedef enum scn_image_kind {
    SCN_IMAGE_ROLE,        /* built-in role image: router, server, ... */
    SCN_IMAGE_DISK,        /* user base disk (qcow2), copy-on-write per team */
} scn_image_kind;

typedef struct scn_host {
    char *name;
    char *role;
    scn_image_kind image_kind;
    char *image;           /* role image name, or absolute disk path */
    int vcpus;
    int memory_mib;
    uint32_t gateway;      /* 0 when none */
    scn_nic *nics;
    size_t n_nics;
    scn_service *services;
    size_t n_services;
    scn_account *accounts;
    size_t n_accounts;
    scn_file *files;
    size_t n_files;
} scn_host;

typedef struct scn_step {
    char *id;
    char *action;
    int actor;             /* host index, -1 for none */
    int target;            /* host index, -1 for none */
    int after;             /* step index, -1 when scheduled with `at` */
    int64_t at_ms;         /* `at`, or `delay` after the `after` step */
    int64_t jitter_ms;
    int64_t offset_ms;     /* resolved nominal offset from the start, -1 for
                              on-demand steps */
    int64_t latest_ms;     /* latest possible start: jitter along the chain */
    int on_demand;         /* runs only when triggered (branch, instructor) */
    char *technique;       /* NULL for none */
    char *visibility;
    json_t *params;        /* new reference, object */
    json_t *success;       /* new reference or NULL */
    json_t *cleanup;       /* new reference or NULL */
    json_t *when;          /* new reference or NULL */
    int otherwise;         /* step index to run when `when` fails, or -1 */
    char *description;
} scn_step;

typedef struct scn_check {
    char *id;
    char *type;            /* tcp, http, dns, smtp */
    int from;              /* vantage host index */
    int target;            /* host index */
    int port;
    int64_t interval_ms;
    int64_t timeout_ms;
    double sla;            /* required fraction of successful probes */
    json_t *params;        /* type-specific (path, expect, name ...), new ref */
} scn_check;

typedef struct scn_rubric {
    char *criterion;
    int points;
} scn_rubric;

typedef struct scn_section {
    char *id;
    char *title;
    char *prompt;
    int required;
    scn_rubric *rubric;
    size_t n_rubric;
} scn_section;

typedef struct scn_scoring {
    double w_detection, w_availability, w_reports, w_injects;
    int64_t detect_window_ms;      /* a finding counts up to this late */
    int64_t detect_full_ms;        /* full credit up to this late */
    char *decay;                   /* linear, exponential, step */
    double detect_floor;           /* credit fraction at the window's end */
    double fp_penalty;
    double fp_cap;
    int64_t c2_quiet_ms;           /* no beacon seen this long = contained */
} scn_scoring;

typedef struct scenario {
    char *file;
    char *id;
    char *title;
    char *description;
    char *level;                   /* "A", "B" or "C" */
    int64_t duration_ms;
    double speed;
    int team_count;
    char *team_name;               /* pattern with {n} */
    char *domain;                  /* DNS domain inside the range */
    scn_segment *segments;
    size_t n_segments;
    scn_host *hosts;
    size_t n_hosts;
    scn_step *steps;
    size_t n_steps;
    scn_check *checks;
    size_t n_checks;
    scn_scoring scoring;
    scn_section *sections;
    size_t n_sections;
    json_t *root;                  /* the parsed document, new reference */
} scenario;

/* Loads `path`.  On any problem returns NULL with every diagnostic in
 * `diags` (which the caller owns).  The caller frees the result with
 * scenario_free(). */
scenario *scenario_load(const char *path, diag_list *diags);
/* Same, from memory; `name` is used in diagnostics and to resolve relative
 * disk image paths (relative to its directory). */
scenario *scenario_load_buffer(const char *name, const char *text, size_t len,
                               diag_list *diags);
void scenario_free(scenario *s);

/* Lookups by name; -1 when absent. */
int scenario_host_index(const scenario *s, const char *name);
int scenario_segment_index(const scenario *s, const char *name);
int scenario_step_index(const scenario *s, const char *id);

/* Builds the team's display name from the pattern ("Team {n}" -> "Team 3").
 * Returns a malloc'd string or NULL. */
char *scenario_team_name(const scenario *s, int team);

/* Names of the built-in role images, NULL-terminated. */
extern const char *const scenario_role_images[];

#endif
