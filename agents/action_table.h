/* action_table — the attacker/inject action types a scenario may use.
 *
 * One table, shared by the scenario validator (orchestrator) and the agent
 * that executes the actions, so a parameter is checked by the same rule in
 * both places.  Every numeric parameter has hard bounds: no action can run
 * away (duration, bytes, packet rate, attempts).
 */
#ifndef CYRANGE_ACTION_TABLE_H
#define CYRANGE_ACTION_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

typedef enum action_ptype {
    ACTION_P_STRING,   /* non-empty string */
    ACTION_P_INT,      /* integer within [min, max] */
    ACTION_P_BOOL,
    ACTION_P_DURATION, /* duration string or seconds, within [min, max] ms */
    ACTION_P_ENUM,     /* one of `choices` (NULL-terminated) */
    ACTION_P_STRLIST,  /* non-empty array of non-empty strings, len <= max */
    ACTION_P_PORTS,    /* "22,80,8000-8100": ports 1..65535, at most max */
    ACTION_P_URLPATH,  /* string starting with '/' */
} action_ptype;

typedef struct action_param {
    const char *name;
    action_ptype type;
    int required;
    int64_t min, max;            /* INT, DURATION (ms), STRLIST/PORTS count */
    const char *const *choices;  /* ENUM */
    const char *help;            /* one line, for docs and errors */
} action_param;

typedef enum action_target {
    ACTION_TARGET_NONE,      /* must not have a target */
    ACTION_TARGET_OPTIONAL,
    ACTION_TARGET_REQUIRED,
} action_target;

typedef struct action_type {
    const char *name;            /* "recon.portscan" */
    const char *technique;       /* default MITRE ATT&CK id, NULL for none */
    const char *visibility;      /* default: "network", "host" or "inbox" */
    int needs_actor;             /* 1: acts from a host, 0: no actor */
    action_target target;
    const action_param *params;  /* terminated by a zeroed entry */
    const char *summary;
} action_type;

/* The table, terminated by an entry whose name is NULL. */
extern const action_type action_types[];

/* Returns the type called `name`, or NULL. */
const action_type *action_find(const char *name);
/* Returns the parameter called `name` of `t`, or NULL. */
const action_param *action_param_find(const action_type *t, const char *name);
/* Counts the ports in a port spec; -1 when malformed. */
int64_t action_ports_count(const char *spec);

/* A duration value as scenarios write it: a non-negative integer number of
 * seconds, or a string such as "250ms", "90s", "5m", "1h30m", "2d" (units
 * in decreasing order).  Returns 0 with *ms, or -1 when malformed.  Values
 * beyond 30 days come back as 30 days + 1 s so that a bounds check rejects
 * them. */
int action_duration_value(const json_t *v, int64_t *ms);

/* Checks one parameter value against its table entry, by the same rules as
 * the scenario validator.  Returns 0, or -1 with one line in msg naming the
 * parameter and what was expected. */
int action_param_check(const action_param *p, const json_t *v, char *msg,
                       size_t len);

/* Checks a params object (NULL: none given) against type t: every member
 * known and valid, every required parameter present.  Returns 0, or -1 with
 * the first problem in msg. */
int action_params_check(const action_type *t, const json_t *params,
                        char *msg, size_t len);

#endif
