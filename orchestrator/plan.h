/* plan — the concrete per-team layout of an exercise, computed from a
 * validated scenario: libvirt network and bridge names, domain names, MAC
 * addresses, addresses and the timeline's absolute offsets.
 *
 * Deterministic: the same scenario, exercise name and team count always
 * give the same plan, so `cyrange plan` shows exactly what `cyrange up`
 * will create, and a restarted orchestrator can recompute names.
 */
#ifndef CYRANGE_PLAN_H
#define CYRANGE_PLAN_H

#include <jansson.h>
#include <stdio.h>

#include "scenario.h"

typedef struct plan_net {
    int segment;            /* index into the scenario's segments */
    char *name;             /* libvirt network: <exercise>-tNN-<segment> */
    char *bridge;           /* Linux bridge, at most 15 characters */
} plan_net;

typedef struct plan_nic {
    int segment;
    char mac[18];           /* 52:54:00:xx:xx:xx */
    char ifname[8];         /* eth0, eth1 ... in NIC order */
} plan_nic;

typedef struct plan_host {
    int host;               /* index into the scenario's hosts */
    char *domain;           /* libvirt domain: <exercise>-tNN-<host> */
    plan_nic *nics;         /* n = the scenario host's n_nics */
} plan_host;

typedef struct plan_team {
    int num;                /* 1-based */
    char tag[4];            /* "t01" */
    char *name;             /* from the scenario's team name pattern */
    plan_net *nets;         /* one per segment */
    plan_host *hosts;       /* one per host */
} plan_team;

typedef struct plan {
    const scenario *scn;    /* borrowed: must outlive the plan */
    char *exercise;         /* exercise name (defaults to the scenario id) */
    int n_teams;
    plan_team *teams;
} plan;

/* Builds the plan.  `exercise` may be NULL (the scenario id).  Returns NULL
 * with a message in `err` (at least 256 bytes) on bad arguments or out of
 * memory.  Free with plan_free(). */
plan *plan_build(const scenario *s, const char *exercise, int teams,
                 char *err, size_t errlen);
void plan_free(plan *p);

/* 1 when `name` is usable as an exercise name (a-z, 0-9, '-', <= 24). */
int plan_exercise_name_ok(const char *name);

/* The plan as JSON (new reference), or NULL when out of memory. */
json_t *plan_to_json(const plan *p);
/* Writes the plan as text for people. */
int plan_write_text(const plan *p, FILE *out);

#endif
