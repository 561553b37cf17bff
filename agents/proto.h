/* proto: the agent channel wire protocol (agents/PROTOCOL.md, version 1).
 *
 * Shared by the static in-range agent and the orchestrator.  Two parts:
 *
 *  - a line framer (proto_reader) that accumulates bytes, either fed by the
 *    caller (libuv read callbacks) or read from a non-blocking fd, and yields
 *    complete lines, discarding (and counting) lines over the size limit;
 *  - builders and parsers for every message type.
 *
 * Ownership rules, used throughout:
 *  - proto_build_* return a NEW json_t reference (caller json_decref()s it),
 *    or NULL with *err filled.  Input structs are only read; strings are
 *    copied into the JSON.
 *  - proto_parse() fills a caller-owned proto_msg.  The message holds the one
 *    reference to the parsed JSON (msg->root); every `const char *` inside
 *    msg->u points into that JSON and is valid until proto_msg_clear().
 *    Arrays inside msg->u are malloc'd by proto and freed by
 *    proto_msg_clear(); parsed string arrays (caps, dns, groups, argv,
 *    addrs) also end with a NULL element, so argv suits execvp().
 *    json_t pointers inside msg->u are BORROWED.
 *  - proto_parse_*_reply() work the same way on a parsed reply: strings are
 *    borrowed from the message; arrays are freed by the matching _clear().
 *  - proto_line() returns a malloc'd, '\n'-terminated line: free() it.
 *  - Every _free and _clear accepts NULL.
 *
 * Library code: nothing here prints; errors go to a proto_err.
 */
#ifndef CYRANGE_PROTO_H
#define CYRANGE_PROTO_H

#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

#define PROTO_VERSION 1
/* Longest line accepted or produced, without its '\n'. */
#define PROTO_MAX_LINE (1024u * 1024u)
/* exec output is truncated to this many bytes per stream. */
#define PROTO_EXEC_MAX_OUTPUT (64u * 1024u)
#define PROTO_EXEC_DEFAULT_TIMEOUT_MS 10000
#define PROTO_EXEC_MAX_TIMEOUT_MS 3600000
#define PROTO_EXEC_MAX_ARGC 256
#define PROTO_PROBE_DEFAULT_TIMEOUT_MS 2000
#define PROTO_PROBE_MAX_TIMEOUT_MS 60000
/* Bounds of the availability-check fields of a probe. */
#define PROTO_CHECK_MAX_PATH 1024
#define PROTO_CHECK_MAX_HOST 255
#define PROTO_CHECK_MAX_EXPECT 1024
#define PROTO_CHECK_MAX_DETAIL 256

typedef enum proto_errcode {
    PROTO_OK = 0,
    PROTO_ERR_JSON,     /* the line is not one valid JSON object */
    PROTO_ERR_SCHEMA,   /* valid JSON, but a field is missing or wrong */
    PROTO_ERR_OVERSIZE, /* a line or a message exceeds PROTO_MAX_LINE */
    PROTO_ERR_AGAIN,    /* read would block (EAGAIN/EINTR): poll again */
    PROTO_ERR_IO,       /* read() failed; errno_val says why */
    PROTO_ERR_NOMEM,
    PROTO_ERR_ARG       /* the caller passed an invalid struct to a builder */
} proto_errcode;

typedef struct proto_err {
    proto_errcode code;
    int errno_val;  /* for PROTO_ERR_IO */
    int has_id;     /* 1 when the failing request carried an integer "id" */
    long long id;   /* so the agent can still answer that request */
    char msg[256];
} proto_err;

/* ---- line framer ------------------------------------------------------ */

typedef struct proto_reader proto_reader;

/* max_line 0 means PROTO_MAX_LINE.  Returns NULL only when out of memory. */
proto_reader *proto_reader_new(size_t max_line);
void proto_reader_free(proto_reader *r);

/* Append bytes (e.g. from a uv_read_cb).  Call proto_reader_next() until it
 * returns 0 after every feed: that keeps memory bounded by max_line plus one
 * chunk.  Returns 0, or -1 (PROTO_ERR_NOMEM). */
int proto_reader_feed(proto_reader *r, const void *buf, size_t len,
                      proto_err *err);

/* One read() from a non-blocking fd into the buffer.  Returns the number of
 * bytes read (> 0), 0 at end of file, or -1 with err->code PROTO_ERR_AGAIN
 * (nothing to read now) or PROTO_ERR_IO / PROTO_ERR_NOMEM. */
ssize_t proto_reader_read_fd(proto_reader *r, int fd, proto_err *err);

/* Take the next complete line.  Returns 1 and sets *line (NUL-terminated,
 * without '\n' or a trailing '\r') and *len, or 0 when no complete line is
 * buffered.  Empty lines are skipped.  *line is BORROWED: valid until the
 * next call on r. */
int proto_reader_next(proto_reader *r, const char **line, size_t *len);

/* Forget buffered bytes and any line being discarded (after a reconnect). */
void proto_reader_reset(proto_reader *r);

/* Number of lines discarded because they exceeded max_line. */
size_t proto_reader_dropped(const proto_reader *r);

/* Bytes of an incomplete line currently buffered. */
size_t proto_reader_pending(const proto_reader *r);

/* ---- message types ----------------------------------------------------- */

typedef enum proto_type {
    PROTO_T_NONE = 0,
    /* agent -> orchestrator */
    PROTO_T_HELLO,
    PROTO_T_REPLY,
    PROTO_T_EVENT,
    /* orchestrator -> agent */
    PROTO_T_HELLO_REQ,
    PROTO_T_CONFIG,
    PROTO_T_HEALTH,
    PROTO_T_PROBE,
    PROTO_T_EXEC,
    /* a valid object with an integer id but an unknown "t" */
    PROTO_T_UNKNOWN
} proto_type;

/* The wire name of a type ("hello?", "config", ...); NULL for NONE/UNKNOWN. */
const char *proto_type_name(proto_type t);

typedef struct proto_iface {
    const char *name;
    const char *mac; /* "52:54:00:12:34:56", lower case */
} proto_iface;

typedef struct proto_hello {
    int v;                /* PROTO_VERSION when building */
    const char *agent;    /* agent version string */
    const char *exercise; /* NULL when unknown (sent as null) */
    int team;             /* -1 when unknown (sent as null) */
    const char *host;     /* NULL when unknown */
    const char **caps;
    size_t ncaps;
    proto_iface *ifaces;
    size_t nifaces;
} proto_hello;

typedef struct proto_cfg_iface {
    const char *mac;
    int dhcp;         /* 1: run udhcpc; addr/prefix unused */
    const char *addr; /* IPv4 dotted quad when !dhcp */
    int prefix;       /* 0..32 */
} proto_cfg_iface;

typedef struct proto_cfg_file {
    const char *path; /* absolute, no ".." component */
    const char *content;
    size_t content_len; /* content may hold NUL bytes */
    unsigned mode;      /* permission bits, <= 07777 */
} proto_cfg_file;

typedef struct proto_cfg_account {
    const char *name;
    const char *password; /* NULL: leave the password alone */
    const char **groups;
    size_t ngroups;
} proto_cfg_account;

typedef struct proto_kv {
    const char *key; /* [A-Za-z_][A-Za-z0-9_]* */
    const char *value;
} proto_kv;

/* Every pointer may be NULL / count 0 when the field is absent. */
typedef struct proto_config {
    const char *exercise;
    int team; /* -1 when absent */
    const char *host;
    const char *role;
    const char *hostname;
    proto_cfg_iface *ifaces;
    size_t nifaces;
    const char *gateway;
    const char **dns;
    size_t ndns;
    proto_cfg_file *files;
    size_t nfiles;
    proto_cfg_account *accounts;
    size_t naccounts;
    proto_kv *env;
    size_t nenv;
} proto_config;

/* What a probe checks beyond reachability ("kind" on the wire).  NONE is
 * the version-1 probe: no "kind" is sent and the reply has no check
 * fields, so older peers see exactly what they always saw. */
typedef enum proto_check_kind {
    PROTO_CHECK_NONE = 0,
    PROTO_CHECK_TCP,  /* connect, as NONE, but with a check result; with
                         expect, what the service says first must hold it */
    PROTO_CHECK_HTTP, /* GET path; status and body */
    PROTO_CHECK_SMTP, /* the banner */
    PROTO_CHECK_DNS   /* an A query over UDP */
} proto_check_kind;

/* The wire name of a kind ("tcp", "http", ...); NULL for NONE. */
const char *proto_check_kind_name(proto_check_kind k);
/* The kind named s, or -1 when s names none (NULL and "" included). */
int proto_check_kind_parse(const char *s);

/* The fields after timeout_ms were added for availability checks; left
 * zero they make the plain version-1 probe.  Initialise with designated
 * fields (.addr = ...): -Wextra rejects positional initialisers that stop
 * early. */
typedef struct proto_probe {
    const char *proto; /* "tcp", or "udp" for dns (NULL: the kind's) */
    const char *addr;  /* IPv4 dotted quad */
    int port;          /* 1..65535; 0 with a kind: 80, 25, 53 */
    int timeout_ms;    /* 0 means PROTO_PROBE_DEFAULT_TIMEOUT_MS */
    proto_check_kind kind;
    const char *path;           /* http: request path; NULL means "/" */
    const char *host;           /* http: Host header; NULL means addr */
    int expect_status;          /* http: 0 means 200 */
    const char *expect;         /* http body, smtp banner or what a tcp
                                   service says first must contain it;
                                   NULL: not tested */
    const char *name;           /* dns: the name to resolve (required) */
    const char *expect_address; /* dns: an A record must equal it; NULL:
                                   any answer with rcode 0 will do */
} proto_probe;

typedef struct proto_exec {
    const char **argv;
    size_t argc;
    int timeout_ms;         /* 0 means PROTO_EXEC_DEFAULT_TIMEOUT_MS */
    const char *stdin_data; /* optional "stdin" string; may hold NUL bytes */
    size_t stdin_len;
} proto_exec;

typedef struct proto_reply {
    int ok;
    const char *error; /* NULL when ok */
    json_t *body;      /* BORROWED: the whole reply object, for extra fields */
} proto_reply;

typedef struct proto_event {
    const char *kind;
    json_t *body; /* BORROWED: the whole event object */
} proto_event;

typedef struct proto_msg {
    proto_type type;
    const char *t; /* "t" as received (borrowed) */
    int has_id;
    long long id;
    json_t *root; /* OWNED by the message; freed by proto_msg_clear() */
    union {
        proto_hello hello;
        proto_config config;
        proto_probe probe;
        proto_exec exec;
        proto_reply reply;
        proto_event event;
    } u;
} proto_msg;

/* Parse one line into *out (which need not be initialised; it is zeroed).
 * On -1 *out holds nothing to free, and err->has_id/id tell whether the
 * request id could be recovered so the caller can still reply. */
int proto_parse(const char *line, size_t len, proto_msg *out, proto_err *err);

/* Release what proto_parse() put into m and zero it.  Accepts NULL. */
void proto_msg_clear(proto_msg *m);

/* ---- reply payloads ---------------------------------------------------- */

typedef struct proto_health_iface {
    const char *name;
    const char *mac;
    int up;
    const char **addrs; /* "198.18.1.10/24" */
    size_t naddrs;
} proto_health_iface;

typedef struct proto_health {
    double uptime_s;
    double load1;
    long long mem_free_kb;
    long long mem_total_kb;
    proto_health_iface *ifaces;
    size_t nifaces;
    int services_started;
} proto_health;

/* Check fields come after error; left zero they give the version-1
 * reply. */
typedef struct proto_probe_result {
    int reachable;
    double rtt_ms;     /* time to the connect result (also when refused);
                          dns: time to the answer */
    const char *error; /* "ECONNREFUSED", "timeout", ... when !reachable */
    int has_check;     /* 1: a check ran (the request had a kind) and the
                          three fields below are on the wire */
    int check_ok;      /* the check's expectations held */
    int status;        /* http status, smtp code or dns rcode; -1: none was
                          read (sent as null) */
    const char *detail; /* short text for people, e.g. "HTTP 503"; NULL is
                           sent as "" */
} proto_probe_result;

typedef struct proto_exec_result {
    int exit_code; /* exit status, or 128 + signal when killed */
    int signal;    /* 0, or the signal that ended the process */
    int timed_out;
    const char *out; /* raw bytes; invalid UTF-8 is replaced on the wire */
    size_t out_len;
    int out_truncated;
    const char *err;
    size_t err_len;
    int err_truncated;
} proto_exec_result;

/* ---- builders: each returns a NEW reference or NULL ------------------- */

json_t *proto_build_hello(const proto_hello *h, proto_err *err);
json_t *proto_build_event(const char *kind, proto_err *err);
json_t *proto_build_hello_req(long long id, proto_err *err);
json_t *proto_build_config(long long id, const proto_config *c,
                           proto_err *err);
json_t *proto_build_health_req(long long id, proto_err *err);
json_t *proto_build_probe(long long id, const proto_probe *p, proto_err *err);
json_t *proto_build_exec(long long id, const proto_exec *e, proto_err *err);

/* {"t":"reply","id":id,"ok":..} plus "error" when !ok.  has_id 0 sends
 * "id":null (an answer to a line whose id could not be read).  Add
 * type-specific fields to the result with json_object_set_new(). */
json_t *proto_build_reply(int has_id, long long id, int ok, const char *error,
                          proto_err *err);
json_t *proto_build_health_reply(long long id, const proto_health *h,
                                 proto_err *err);
json_t *proto_build_probe_reply(long long id, const proto_probe_result *r,
                                proto_err *err);
json_t *proto_build_exec_reply(long long id, const proto_exec_result *r,
                               proto_err *err);

/* Serialise one message as a compact line ending in '\n'.  Returns a
 * malloc'd string (caller free()s) and its length including the '\n', or
 * NULL (PROTO_ERR_OVERSIZE past PROTO_MAX_LINE, PROTO_ERR_NOMEM). */
char *proto_line(const json_t *msg, size_t *len, proto_err *err);

/* ---- typed views of replies (orchestrator side) ----------------------- */

/* m must be a parsed PROTO_T_REPLY answering a health request.  Strings are
 * borrowed from m; free the arrays with proto_health_clear(). */
int proto_parse_health_reply(const proto_msg *m, proto_health *out,
                             proto_err *err);
void proto_health_clear(proto_health *h);

/* Nothing to free: strings are borrowed from m.  A reply without
 * "check_ok" (an older agent, or a request without kind) gives has_check 0
 * and status -1. */
int proto_parse_probe_reply(const proto_msg *m, proto_probe_result *out,
                            proto_err *err);
int proto_parse_exec_reply(const proto_msg *m, proto_exec_result *out,
                           proto_err *err);

/* ---- small helpers shared by both sides -------------------------------- */

/* 1 when the dotted quad parses and lies in 198.18.0.0/15. */
int proto_addr_in_range(const char *addr);

/* 1 when s is "xx:xx:xx:xx:xx:xx" (hex, either case). */
int proto_mac_valid(const char *s);

#endif /* CYRANGE_PROTO_H */
