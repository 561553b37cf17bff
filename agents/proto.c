/* proto: agent channel framing, builders and parsers.  See proto.h. */
#include "proto.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Bytes asked from the kernel per read(). */
#define READ_CHUNK (64u * 1024u)

/* ---- errors ------------------------------------------------------------ */

static void err_set(proto_err *err, proto_errcode code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void err_set(proto_err *err, proto_errcode code, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
}

static void err_reset(proto_err *err)
{
    if (err != NULL)
        memset(err, 0, sizeof(*err));
}

/* ---- line framer -------------------------------------------------------- */

struct proto_reader {
    char *buf;
    size_t cap;
    size_t start;   /* first byte not yet handed out */
    size_t end;     /* one past the last buffered byte */
    size_t scan;    /* where the search for '\n' resumes */
    size_t max_line;
    size_t dropped;
    int discarding; /* inside an oversize line: drop until '\n' */
};

proto_reader *proto_reader_new(size_t max_line)
{
    proto_reader *r = calloc(1, sizeof(*r));

    if (r == NULL)
        return NULL;
    r->max_line = max_line ? max_line : PROTO_MAX_LINE;
    return r;
}

void proto_reader_free(proto_reader *r)
{
    if (r == NULL)
        return;
    free(r->buf);
    free(r);
}

void proto_reader_reset(proto_reader *r)
{
    if (r == NULL)
        return;
    r->start = r->end = r->scan = 0;
    r->discarding = 0;
}

size_t proto_reader_dropped(const proto_reader *r)
{
    return r ? r->dropped : 0;
}

size_t proto_reader_pending(const proto_reader *r)
{
    return r ? r->end - r->start : 0;
}

/* Make room for `need` more bytes after r->end, compacting first so the
 * buffer never holds more than the current partial line plus new data. */
static int reader_room(proto_reader *r, size_t need, proto_err *err)
{
    size_t ncap;
    char *nbuf = NULL;

    if (r->start == r->end) {
        r->start = r->end = r->scan = 0;
    } else if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->scan -= r->start;
        r->start = 0;
    }
    if (r->cap - r->end >= need)
        return 0;
    ncap = r->cap ? r->cap : READ_CHUNK;
    while (ncap - r->end < need) {
        if (ncap > SIZE_MAX / 2) {
            err_set(err, PROTO_ERR_NOMEM, "line buffer too large");
            return -1;
        }
        ncap *= 2;
    }
    nbuf = realloc(r->buf, ncap);
    if (nbuf == NULL) {
        err_set(err, PROTO_ERR_NOMEM, "out of memory");
        return -1;
    }
    r->buf = nbuf;
    r->cap = ncap;
    return 0;
}

int proto_reader_feed(proto_reader *r, const void *buf, size_t len,
                      proto_err *err)
{
    const char *p = buf;
    const char *nl = NULL;

    err_reset(err);
    if (r == NULL || (buf == NULL && len > 0)) {
        err_set(err, PROTO_ERR_ARG, "reader_feed: NULL argument");
        return -1;
    }
    /* Bytes of an oversize line are never buffered, so a peer that sends an
     * endless line cannot make us grow. */
    if (r->discarding) {
        nl = memchr(p, '\n', len);
        if (nl == NULL)
            return 0;
        r->discarding = 0;
        len -= (size_t)(nl + 1 - p);
        p = nl + 1;
    }
    if (len == 0)
        return 0;
    if (reader_room(r, len + 1, err) < 0)
        return -1;
    memcpy(r->buf + r->end, p, len);
    r->end += len;
    return 0;
}

ssize_t proto_reader_read_fd(proto_reader *r, int fd, proto_err *err)
{
    ssize_t n;

    err_reset(err);
    if (r == NULL) {
        err_set(err, PROTO_ERR_ARG, "reader_read_fd: NULL reader");
        return -1;
    }
    if (reader_room(r, READ_CHUNK + 1, err) < 0)
        return -1;
    /* Leave one byte spare so a final line can always be NUL-terminated. */
    n = read(fd, r->buf + r->end, r->cap - r->end - 1);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            err_set(err, PROTO_ERR_AGAIN, "no data");
        } else {
            err_set(err, PROTO_ERR_IO, "read: %s", strerror(errno));
            if (err != NULL)
                err->errno_val = errno;
        }
        return -1;
    }
    r->end += (size_t)n;
    return n;
}

int proto_reader_next(proto_reader *r, const char **line, size_t *len)
{
    const char *nl = NULL;
    size_t lstart, llen;

    if (r == NULL || r->buf == NULL)
        return 0;
    for (;;) {
        if (r->discarding) {
            nl = memchr(r->buf + r->start, '\n', r->end - r->start);
            if (nl == NULL) {
                r->start = r->end = r->scan = 0;
                return 0;
            }
            r->start = r->scan = (size_t)(nl - r->buf) + 1;
            r->discarding = 0;
            continue;
        }
        if (r->scan < r->start)
            r->scan = r->start;
        nl = memchr(r->buf + r->scan, '\n', r->end - r->scan);
        if (nl == NULL) {
            r->scan = r->end;
            if (r->end - r->start > r->max_line) {
                /* The line already exceeds the limit: drop what we hold
                 * and the rest of it as it arrives. */
                r->dropped++;
                r->discarding = 1;
                r->start = r->end = r->scan = 0;
            }
            return 0;
        }
        lstart = r->start;
        llen = (size_t)(nl - r->buf) - lstart;
        r->start = r->scan = lstart + llen + 1;
        if (llen > 0 && r->buf[lstart + llen - 1] == '\r')
            llen--;
        if (llen > r->max_line) {
            r->dropped++;
            continue;
        }
        if (llen == 0)
            continue;
        r->buf[lstart + llen] = '\0';
        *line = r->buf + lstart;
        *len = llen;
        return 1;
    }
}

/* ---- small validators --------------------------------------------------- */

int proto_addr_in_range(const char *addr)
{
    struct in_addr a;
    uint32_t h;

    if (addr == NULL || inet_pton(AF_INET, addr, &a) != 1)
        return 0;
    h = ntohl(a.s_addr);
    /* 198.18.0.0/15: the benchmark-testing block the ranges live in. */
    return (h & 0xFFFE0000u) == 0xC6120000u;
}

int proto_mac_valid(const char *s)
{
    size_t i;

    if (s == NULL || strlen(s) != 17)
        return 0;
    for (i = 0; i < 17; i++) {
        if (i % 3 == 2) {
            if (s[i] != ':')
                return 0;
        } else if (!((s[i] >= '0' && s[i] <= '9') ||
                     (s[i] >= 'a' && s[i] <= 'f') ||
                     (s[i] >= 'A' && s[i] <= 'F'))) {
            return 0;
        }
    }
    return 1;
}

static int ipv4_valid(const char *s)
{
    struct in_addr a;

    return s != NULL && inet_pton(AF_INET, s, &a) == 1;
}

/* Login and group names as busybox adduser accepts them. */
static int name_valid(const char *s)
{
    size_t i, n = s ? strlen(s) : 0;

    if (n == 0 || n > 32)
        return 0;
    if (!((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
        return 0;
    for (i = 1; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

static int hostname_valid(const char *s)
{
    size_t i, n = s ? strlen(s) : 0;

    if (n == 0 || n > 63 || s[0] == '-' || s[0] == '.')
        return 0;
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

static int env_key_valid(const char *s)
{
    size_t i, n = s ? strlen(s) : 0;

    if (n == 0 || n > 128)
        return 0;
    for (i = 0; i < n; i++) {
        char c = s[i];
        int alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                    c == '_';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
            return 0;
    }
    return 1;
}

/* Absolute, no "." or ".." component, no empty component: a config file
 * can then never escape the agent's root prefix. */
static int file_path_valid(const char *s)
{
    const char *p = s;

    if (s == NULL || s[0] != '/' || strlen(s) > 4096 || s[1] == '\0')
        return 0;
    while (*p == '/') {
        const char *c = p + 1;
        size_t n = strcspn(c, "/");
        if (n == 0)
            return 0;
        if ((n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
            return 0;
        p = c + n;
    }
    return *p == '\0';
}

/* ---- JSON field access ---------------------------------------------------- */

/* A string field without embedded NUL.  Returns 1 found, 0 absent or null
 * (when null_ok), -1 error. */
static int get_str(json_t *obj, const char *key, int required, int null_ok,
                   const char **out, proto_err *err)
{
    json_t *v = json_object_get(obj, key);

    *out = NULL;
    if (v == NULL || (null_ok && json_is_null(v))) {
        if (required) {
            err_set(err, PROTO_ERR_SCHEMA, "missing field \"%s\"", key);
            return -1;
        }
        return 0;
    }
    if (!json_is_string(v)) {
        err_set(err, PROTO_ERR_SCHEMA, "field \"%s\" must be a string", key);
        return -1;
    }
    if (strlen(json_string_value(v)) != json_string_length(v)) {
        err_set(err, PROTO_ERR_SCHEMA, "field \"%s\" contains a NUL byte",
                key);
        return -1;
    }
    *out = json_string_value(v);
    return 1;
}

/* An integer field within [lo, hi].  Same return convention as get_str. */
static int get_int(json_t *obj, const char *key, int required, int null_ok,
                   long long lo, long long hi, long long *out, proto_err *err)
{
    json_t *v = json_object_get(obj, key);

    if (v == NULL || (null_ok && json_is_null(v))) {
        if (required) {
            err_set(err, PROTO_ERR_SCHEMA, "missing field \"%s\"", key);
            return -1;
        }
        return 0;
    }
    if (!json_is_integer(v)) {
        err_set(err, PROTO_ERR_SCHEMA, "field \"%s\" must be an integer", key);
        return -1;
    }
    *out = json_integer_value(v);
    if (*out < lo || *out > hi) {
        err_set(err, PROTO_ERR_SCHEMA, "field \"%s\" must be in %lld..%lld",
                key, lo, hi);
        return -1;
    }
    return 1;
}

static int get_bool(json_t *obj, const char *key, int required, int *out,
                    proto_err *err)
{
    json_t *v = json_object_get(obj, key);

    *out = 0;
    if (v == NULL) {
        if (required) {
            err_set(err, PROTO_ERR_SCHEMA, "missing field \"%s\"", key);
            return -1;
        }
        return 0;
    }
    if (!json_is_boolean(v)) {
        err_set(err, PROTO_ERR_SCHEMA, "field \"%s\" must be true or false",
                key);
        return -1;
    }
    *out = json_is_true(v);
    return 1;
}

static int get_number(json_t *obj, const char *key, int required, double *out,
                      proto_err *err)
{
    json_t *v = json_object_get(obj, key);

    *out = 0;
    if (v == NULL) {
        if (required) {
            err_set(err, PROTO_ERR_SCHEMA, "missing field \"%s\"", key);
            return -1;
        }
        return 0;
    }
    if (!json_is_number(v)) {
        err_set(err, PROTO_ERR_SCHEMA, "field \"%s\" must be a number", key);
        return -1;
    }
    *out = json_number_value(v);
    return 1;
}

/* An optional array field; *out is NULL when absent.  Returns -1 on a wrong
 * type or more than max elements. */
static int get_array(json_t *obj, const char *key, int required, size_t max,
                     json_t **out, proto_err *err)
{
    json_t *v = json_object_get(obj, key);

    *out = NULL;
    if (v == NULL) {
        if (required) {
            err_set(err, PROTO_ERR_SCHEMA, "missing field \"%s\"", key);
            return -1;
        }
        return 0;
    }
    if (!json_is_array(v)) {
        err_set(err, PROTO_ERR_SCHEMA, "field \"%s\" must be an array", key);
        return -1;
    }
    if (json_array_size(v) > max) {
        err_set(err, PROTO_ERR_SCHEMA, "field \"%s\" has more than %zu items",
                key, max);
        return -1;
    }
    *out = v;
    return 1;
}

/* Array of strings into a malloc'd vector of borrowed pointers. */
static int get_str_array(json_t *obj, const char *key, int required,
                         size_t max, const char ***out, size_t *n,
                         proto_err *err)
{
    json_t *arr = NULL;
    const char **vec = NULL;
    size_t i;
    int rc;

    *out = NULL;
    *n = 0;
    rc = get_array(obj, key, required, max, &arr, err);
    if (rc <= 0)
        return rc;
    /* NULL-terminated, so argv can go straight to execvp(). */
    vec = calloc(json_array_size(arr) + 1, sizeof(*vec));
    if (vec == NULL) {
        err_set(err, PROTO_ERR_NOMEM, "out of memory");
        return -1;
    }
    for (i = 0; i < json_array_size(arr); i++) {
        json_t *s = json_array_get(arr, i);
        if (!json_is_string(s) ||
            strlen(json_string_value(s)) != json_string_length(s)) {
            err_set(err, PROTO_ERR_SCHEMA,
                    "%s[%zu] must be a string without NUL bytes", key, i);
            free(vec);
            return -1;
        }
        vec[i] = json_string_value(s);
    }
    *out = vec;
    *n = json_array_size(arr);
    return 1;
}

/* ---- per-type parsers --------------------------------------------------- */

static void append_where(proto_err *err, const char *arr, size_t i)
{
    size_t l;

    if (err == NULL)
        return;
    l = strlen(err->msg);
    if (l < sizeof(err->msg) - 1)
        snprintf(err->msg + l, sizeof(err->msg) - l, " in %s[%zu]", arr, i);
}

static int parse_hello(json_t *root, proto_hello *h, proto_err *err)
{
    json_t *arr = NULL;
    long long v = 0, team = -1;
    size_t i;

    h->team = -1;
    if (get_int(root, "v", 1, 0, 0, 1000000, &v, err) < 0 ||
        get_str(root, "agent", 1, 0, &h->agent, err) < 0 ||
        get_str(root, "exercise", 0, 1, &h->exercise, err) < 0 ||
        get_int(root, "team", 0, 1, 0, 1000000, &team, err) < 0 ||
        get_str(root, "host", 0, 1, &h->host, err) < 0 ||
        get_str_array(root, "caps", 0, 64, &h->caps, &h->ncaps, err) < 0 ||
        get_array(root, "ifaces", 0, 1024, &arr, err) < 0)
        return -1;
    h->v = (int)v;
    h->team = (int)team;
    if (arr == NULL || json_array_size(arr) == 0)
        return 0;
    h->ifaces = calloc(json_array_size(arr), sizeof(*h->ifaces));
    if (h->ifaces == NULL) {
        err_set(err, PROTO_ERR_NOMEM, "out of memory");
        return -1;
    }
    h->nifaces = json_array_size(arr);
    for (i = 0; i < h->nifaces; i++) {
        json_t *o = json_array_get(arr, i);
        if (!json_is_object(o)) {
            err_set(err, PROTO_ERR_SCHEMA, "ifaces[%zu] must be an object", i);
            return -1;
        }
        if (get_str(o, "name", 1, 0, &h->ifaces[i].name, err) < 0 ||
            get_str(o, "mac", 0, 1, &h->ifaces[i].mac, err) < 0) {
            append_where(err, "ifaces", i);
            return -1;
        }
    }
    return 0;
}

static int parse_cfg_ifaces(json_t *root, proto_config *c, proto_err *err)
{
    json_t *arr = NULL;
    size_t i;

    if (get_array(root, "ifaces", 0, 64, &arr, err) < 0)
        return -1;
    if (arr == NULL || json_array_size(arr) == 0)
        return 0;
    c->ifaces = calloc(json_array_size(arr), sizeof(*c->ifaces));
    if (c->ifaces == NULL) {
        err_set(err, PROTO_ERR_NOMEM, "out of memory");
        return -1;
    }
    c->nifaces = json_array_size(arr);
    for (i = 0; i < c->nifaces; i++) {
        json_t *o = json_array_get(arr, i);
        proto_cfg_iface *f = &c->ifaces[i];
        long long prefix = 0;

        if (!json_is_object(o)) {
            err_set(err, PROTO_ERR_SCHEMA, "ifaces[%zu] must be an object", i);
            return -1;
        }
        if (get_str(o, "mac", 1, 0, &f->mac, err) < 0 ||
            get_bool(o, "dhcp", 0, &f->dhcp, err) < 0)
            goto bad;
        if (!proto_mac_valid(f->mac)) {
            err_set(err, PROTO_ERR_SCHEMA, "field \"mac\" must look like "
                    "52:54:00:12:34:56");
            goto bad;
        }
        if (f->dhcp)
            continue;
        if (get_str(o, "addr", 1, 0, &f->addr, err) < 0 ||
            get_int(o, "prefix", 1, 0, 0, 32, &prefix, err) < 0)
            goto bad;
        if (!ipv4_valid(f->addr)) {
            err_set(err, PROTO_ERR_SCHEMA,
                    "field \"addr\" must be an IPv4 address");
            goto bad;
        }
        f->prefix = (int)prefix;
    }
    return 0;
bad:
    append_where(err, "ifaces", i);
    return -1;
}

static int parse_cfg_files(json_t *root, proto_config *c, proto_err *err)
{
    json_t *arr = NULL;
    size_t i;

    if (get_array(root, "files", 0, 4096, &arr, err) < 0)
        return -1;
    if (arr == NULL || json_array_size(arr) == 0)
        return 0;
    c->files = calloc(json_array_size(arr), sizeof(*c->files));
    if (c->files == NULL) {
        err_set(err, PROTO_ERR_NOMEM, "out of memory");
        return -1;
    }
    c->nfiles = json_array_size(arr);
    for (i = 0; i < c->nfiles; i++) {
        json_t *o = json_array_get(arr, i);
        proto_cfg_file *f = &c->files[i];
        json_t *content = NULL, *mode = NULL;

        if (!json_is_object(o)) {
            err_set(err, PROTO_ERR_SCHEMA, "files[%zu] must be an object", i);
            return -1;
        }
        if (get_str(o, "path", 1, 0, &f->path, err) < 0)
            goto bad;
        if (!file_path_valid(f->path)) {
            err_set(err, PROTO_ERR_SCHEMA, "field \"path\" must be absolute "
                    "without \".\", \"..\" or empty components");
            goto bad;
        }
        content = json_object_get(o, "content");
        if (content != NULL && !json_is_string(content)) {
            err_set(err, PROTO_ERR_SCHEMA,
                    "field \"content\" must be a string");
            goto bad;
        }
        f->content = content ? json_string_value(content) : "";
        f->content_len = content ? json_string_length(content) : 0;
        f->mode = 0644;
        mode = json_object_get(o, "mode");
        if (json_is_string(mode)) {
            const char *s = json_string_value(mode);
            char *end = NULL;
            unsigned long m = strtoul(s, &end, 8);
            if (*s == '\0' || *end != '\0' || m > 07777) {
                err_set(err, PROTO_ERR_SCHEMA,
                        "field \"mode\" must be octal like \"0644\"");
                goto bad;
            }
            f->mode = (unsigned)m;
        } else if (json_is_integer(mode)) {
            json_int_t m = json_integer_value(mode);
            if (m < 0 || m > 07777) {
                err_set(err, PROTO_ERR_SCHEMA,
                        "field \"mode\" must be in 0..07777");
                goto bad;
            }
            f->mode = (unsigned)m;
        } else if (mode != NULL) {
            err_set(err, PROTO_ERR_SCHEMA,
                    "field \"mode\" must be an octal string or an integer");
            goto bad;
        }
    }
    return 0;
bad:
    append_where(err, "files", i);
    return -1;
}

static int parse_cfg_accounts(json_t *root, proto_config *c, proto_err *err)
{
    json_t *arr = NULL;
    size_t i, j;

    if (get_array(root, "accounts", 0, 1024, &arr, err) < 0)
        return -1;
    if (arr == NULL || json_array_size(arr) == 0)
        return 0;
    c->accounts = calloc(json_array_size(arr), sizeof(*c->accounts));
    if (c->accounts == NULL) {
        err_set(err, PROTO_ERR_NOMEM, "out of memory");
        return -1;
    }
    c->naccounts = json_array_size(arr);
    for (i = 0; i < c->naccounts; i++) {
        json_t *o = json_array_get(arr, i);
        proto_cfg_account *a = &c->accounts[i];

        if (!json_is_object(o)) {
            err_set(err, PROTO_ERR_SCHEMA, "accounts[%zu] must be an object",
                    i);
            return -1;
        }
        if (get_str(o, "name", 1, 0, &a->name, err) < 0 ||
            get_str(o, "password", 0, 1, &a->password, err) < 0 ||
            get_str_array(o, "groups", 0, 64, &a->groups, &a->ngroups, err) <
                0)
            goto bad;
        if (!name_valid(a->name)) {
            err_set(err, PROTO_ERR_SCHEMA, "field \"name\" must be a login "
                    "name ([a-z_][a-z0-9_.-]*, at most 32)");
            goto bad;
        }
        /* chpasswd reads "name:password" lines. */
        if (a->password != NULL && strpbrk(a->password, "\n\r") != NULL) {
            err_set(err, PROTO_ERR_SCHEMA,
                    "field \"password\" must not contain a newline");
            goto bad;
        }
        for (j = 0; j < a->ngroups; j++) {
            if (!name_valid(a->groups[j])) {
                err_set(err, PROTO_ERR_SCHEMA,
                        "group \"%.40s\" is not a valid group name",
                        a->groups[j]);
                goto bad;
            }
        }
    }
    return 0;
bad:
    append_where(err, "accounts", i);
    return -1;
}

static int parse_cfg_env(json_t *root, proto_config *c, proto_err *err)
{
    json_t *obj = json_object_get(root, "env");
    const char *key = NULL;
    json_t *v = NULL;
    size_t i = 0;

    if (obj == NULL || json_is_null(obj))
        return 0;
    if (!json_is_object(obj)) {
        err_set(err, PROTO_ERR_SCHEMA, "field \"env\" must be an object");
        return -1;
    }
    if (json_object_size(obj) == 0)
        return 0;
    if (json_object_size(obj) > 4096) {
        err_set(err, PROTO_ERR_SCHEMA, "field \"env\" has too many keys");
        return -1;
    }
    c->env = calloc(json_object_size(obj), sizeof(*c->env));
    if (c->env == NULL) {
        err_set(err, PROTO_ERR_NOMEM, "out of memory");
        return -1;
    }
    json_object_foreach(obj, key, v) {
        if (!env_key_valid(key)) {
            err_set(err, PROTO_ERR_SCHEMA,
                    "env key \"%.60s\" is not a shell variable name", key);
            return -1;
        }
        if (!json_is_string(v) ||
            strlen(json_string_value(v)) != json_string_length(v)) {
            err_set(err, PROTO_ERR_SCHEMA,
                    "env \"%.60s\" must be a string without NUL bytes", key);
            return -1;
        }
        c->env[i].key = key;
        c->env[i].value = json_string_value(v);
        i++;
    }
    c->nenv = i;
    return 0;
}

static int parse_config(json_t *root, proto_config *c, proto_err *err)
{
    long long team = -1;
    size_t i;

    c->team = -1;
    if (get_str(root, "exercise", 0, 1, &c->exercise, err) < 0 ||
        get_int(root, "team", 0, 1, 0, 1000000, &team, err) < 0 ||
        get_str(root, "host", 0, 1, &c->host, err) < 0 ||
        get_str(root, "role", 0, 1, &c->role, err) < 0 ||
        get_str(root, "hostname", 0, 1, &c->hostname, err) < 0 ||
        get_str(root, "gateway", 0, 1, &c->gateway, err) < 0 ||
        get_str_array(root, "dns", 0, 8, &c->dns, &c->ndns, err) < 0)
        return -1;
    c->team = (int)team;
    if (c->hostname != NULL && !hostname_valid(c->hostname)) {
        err_set(err, PROTO_ERR_SCHEMA, "field \"hostname\" must be letters, "
                "digits, '-' and '.', at most 63");
        return -1;
    }
    if (c->gateway != NULL && !ipv4_valid(c->gateway)) {
        err_set(err, PROTO_ERR_SCHEMA,
                "field \"gateway\" must be an IPv4 address");
        return -1;
    }
    for (i = 0; i < c->ndns; i++) {
        if (!ipv4_valid(c->dns[i])) {
            err_set(err, PROTO_ERR_SCHEMA,
                    "dns[%zu] must be an IPv4 address", i);
            return -1;
        }
    }
    if (parse_cfg_ifaces(root, c, err) < 0 ||
        parse_cfg_files(root, c, err) < 0 ||
        parse_cfg_accounts(root, c, err) < 0 ||
        parse_cfg_env(root, c, err) < 0)
        return -1;
    return 0;
}

/* ---- probes and availability checks ------------------------------------- */

static const char *const check_kind_names[] = {NULL, "tcp", "http", "smtp",
                                               "dns"};

const char *proto_check_kind_name(proto_check_kind k)
{
    if ((int)k <= 0 ||
        (size_t)k >= sizeof(check_kind_names) / sizeof(check_kind_names[0]))
        return NULL;
    return check_kind_names[k];
}

int proto_check_kind_parse(const char *s)
{
    size_t i;

    if (s == NULL)
        return -1;
    for (i = 1; i < sizeof(check_kind_names) / sizeof(check_kind_names[0]);
         i++)
        if (strcmp(s, check_kind_names[i]) == 0)
            return (int)i;
    return -1;
}

/* The transport a kind runs on: a dns check is one UDP exchange. */
static const char *check_transport(proto_check_kind k)
{
    return k == PROTO_CHECK_DNS ? "udp" : "tcp";
}

static int check_default_port(proto_check_kind k)
{
    switch (k) {
    case PROTO_CHECK_HTTP:
        return 80;
    case PROTO_CHECK_SMTP:
        return 25;
    case PROTO_CHECK_DNS:
        return 53;
    default:
        return 0;
    }
}

/* Visible ASCII only: the path and Host go into the request line and a
 * header verbatim, so a space, CR or LF could forge another request. */
static int visible_ascii(const char *s, size_t max)
{
    size_t i, n = s ? strlen(s) : 0;

    if (n == 0 || n > max)
        return 0;
    for (i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return 0;
    return 1;
}

/* A DNS name the agent can encode: labels of 1..63 letters, digits, '-'
 * or '_', at most 253 characters, one optional trailing dot. */
static int dns_name_valid(const char *s)
{
    size_t i, n = s ? strlen(s) : 0, label = 0;

    if (n > 0 && s[n - 1] == '.')
        n--;
    if (n == 0 || n > 253)
        return 0;
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0)
                return 0;
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return 0;
        if (++label > 63)
            return 0;
    }
    return 1;
}

/* The fields only a kind uses; those of other kinds are ignored. */
static int parse_check_fields(json_t *root, proto_probe *p, proto_err *err)
{
    long long status = 200;

    switch (p->kind) {
    case PROTO_CHECK_HTTP:
        if (get_str(root, "path", 0, 1, &p->path, err) < 0 ||
            get_str(root, "host", 0, 1, &p->host, err) < 0 ||
            get_int(root, "expect_status", 0, 1, 100, 599, &status, err) < 0 ||
            get_str(root, "expect", 0, 1, &p->expect, err) < 0)
            return -1;
        if (p->path != NULL &&
            (p->path[0] != '/' || !visible_ascii(p->path,
                                                 PROTO_CHECK_MAX_PATH))) {
            err_set(err, PROTO_ERR_SCHEMA, "field \"path\" must start with "
                    "'/' and hold at most %d visible ASCII characters",
                    PROTO_CHECK_MAX_PATH);
            return -1;
        }
        if (p->host != NULL && !visible_ascii(p->host, PROTO_CHECK_MAX_HOST)) {
            err_set(err, PROTO_ERR_SCHEMA, "field \"host\" must hold 1..%d "
                    "visible ASCII characters", PROTO_CHECK_MAX_HOST);
            return -1;
        }
        p->expect_status = (int)status;
        break;
    case PROTO_CHECK_SMTP:
    case PROTO_CHECK_TCP:
        if (get_str(root, "expect", 0, 1, &p->expect, err) < 0)
            return -1;
        break;
    case PROTO_CHECK_DNS:
        if (get_str(root, "name", 1, 0, &p->name, err) < 0 ||
            get_str(root, "expect_address", 0, 1, &p->expect_address,
                    err) < 0)
            return -1;
        if (!dns_name_valid(p->name)) {
            err_set(err, PROTO_ERR_SCHEMA, "field \"name\" must be a DNS "
                    "name (labels of 1..63 letters, digits, '-', '_')");
            return -1;
        }
        if (p->expect_address != NULL && !ipv4_valid(p->expect_address)) {
            err_set(err, PROTO_ERR_SCHEMA, "field \"expect_address\" must be "
                    "an IPv4 address");
            return -1;
        }
        break;
    default:
        break;
    }
    if (p->expect != NULL && strlen(p->expect) > PROTO_CHECK_MAX_EXPECT) {
        err_set(err, PROTO_ERR_SCHEMA, "field \"expect\" is longer than %d "
                "bytes", PROTO_CHECK_MAX_EXPECT);
        return -1;
    }
    return 0;
}

static int parse_probe(json_t *root, proto_probe *p, proto_err *err)
{
    long long port = 0, tmo = PROTO_PROBE_DEFAULT_TIMEOUT_MS;
    const char *kind = NULL;
    int port_required, k;

    if (get_str(root, "kind", 0, 1, &kind, err) < 0 ||
        get_str(root, "proto", 0, 0, &p->proto, err) < 0 ||
        get_str(root, "addr", 1, 0, &p->addr, err) < 0 ||
        get_int(root, "timeout_ms", 0, 0, 1, PROTO_PROBE_MAX_TIMEOUT_MS, &tmo,
                err) < 0)
        return -1;
    if (kind != NULL) {
        k = proto_check_kind_parse(kind);
        if (k < 0) {
            err_set(err, PROTO_ERR_SCHEMA, "field \"kind\" must be \"tcp\", "
                    "\"http\", \"smtp\" or \"dns\"");
            return -1;
        }
        p->kind = (proto_check_kind)k;
    }
    if (p->proto == NULL)
        p->proto = check_transport(p->kind);
    if (p->kind != PROTO_CHECK_NONE &&
        strcmp(p->proto, check_transport(p->kind)) != 0) {
        err_set(err, PROTO_ERR_SCHEMA, "field \"proto\" must be \"%s\" for "
                "kind \"%s\"", check_transport(p->kind),
                proto_check_kind_name(p->kind));
        return -1;
    }
    /* The version-1 rule: a tcp probe names its port; a check may take
     * its service's usual one. */
    port_required = p->kind == PROTO_CHECK_TCP ||
                    (p->kind == PROTO_CHECK_NONE &&
                     strcmp(p->proto, "tcp") == 0);
    port = check_default_port(p->kind);
    if ((port_required || p->kind != PROTO_CHECK_NONE) &&
        get_int(root, "port", port_required, 0, 1, 65535, &port, err) < 0)
        return -1;
    if (!ipv4_valid(p->addr)) {
        err_set(err, PROTO_ERR_SCHEMA, "field \"addr\" must be an IPv4 "
                "address");
        return -1;
    }
    p->port = (int)port;
    p->timeout_ms = (int)tmo;
    return parse_check_fields(root, p, err);
}

static int parse_exec(json_t *root, proto_exec *e, proto_err *err)
{
    long long tmo = PROTO_EXEC_DEFAULT_TIMEOUT_MS;
    json_t *in = NULL;

    if (get_str_array(root, "argv", 1, PROTO_EXEC_MAX_ARGC, &e->argv, &e->argc,
                      err) < 0 ||
        get_int(root, "timeout_ms", 0, 0, 1, PROTO_EXEC_MAX_TIMEOUT_MS, &tmo,
                err) < 0)
        return -1;
    if (e->argc == 0 || e->argv[0][0] == '\0') {
        err_set(err, PROTO_ERR_SCHEMA,
                "field \"argv\" must name a program to run");
        return -1;
    }
    e->timeout_ms = (int)tmo;
    in = json_object_get(root, "stdin");
    if (in != NULL && !json_is_null(in)) {
        if (!json_is_string(in)) {
            err_set(err, PROTO_ERR_SCHEMA, "field \"stdin\" must be a string");
            return -1;
        }
        e->stdin_data = json_string_value(in);
        e->stdin_len = json_string_length(in);
    }
    return 0;
}

/* Requests and answers, by wire name. */
static const struct {
    const char *name;
    proto_type type;
    int needs_id;
} msg_types[] = {
    {"hello", PROTO_T_HELLO, 0},
    {"reply", PROTO_T_REPLY, 0},
    {"event", PROTO_T_EVENT, 0},
    {"hello?", PROTO_T_HELLO_REQ, 1},
    {"config", PROTO_T_CONFIG, 1},
    {"health", PROTO_T_HEALTH, 1},
    {"probe", PROTO_T_PROBE, 1},
    {"exec", PROTO_T_EXEC, 1},
};

const char *proto_type_name(proto_type t)
{
    size_t i;

    for (i = 0; i < sizeof(msg_types) / sizeof(msg_types[0]); i++)
        if (msg_types[i].type == t)
            return msg_types[i].name;
    return NULL;
}

/* Frees what the per-type parsers allocated; strings belong to root. */
static void msg_free_arrays(proto_msg *m)
{
    size_t i;

    switch (m->type) {
    case PROTO_T_HELLO:
        free(m->u.hello.caps);
        free(m->u.hello.ifaces);
        break;
    case PROTO_T_CONFIG:
        free(m->u.config.ifaces);
        free(m->u.config.dns);
        free(m->u.config.files);
        for (i = 0; i < m->u.config.naccounts; i++)
            free(m->u.config.accounts[i].groups);
        free(m->u.config.accounts);
        free(m->u.config.env);
        break;
    case PROTO_T_EXEC:
        free(m->u.exec.argv);
        break;
    default:
        break;
    }
}

void proto_msg_clear(proto_msg *m)
{
    if (m == NULL)
        return;
    msg_free_arrays(m);
    json_decref(m->root);
    memset(m, 0, sizeof(*m));
}

int proto_parse(const char *line, size_t len, proto_msg *out, proto_err *err)
{
    json_error_t jerr;
    json_t *root = NULL, *id = NULL;
    const char *t = NULL;
    size_t i;
    int needs_id = 1, rc = -1;

    err_reset(err);
    memset(out, 0, sizeof(*out));
    if (line == NULL) {
        err_set(err, PROTO_ERR_ARG, "parse: NULL line");
        return -1;
    }
    if (len > PROTO_MAX_LINE) {
        err_set(err, PROTO_ERR_OVERSIZE, "line of %zu bytes exceeds %u", len,
                PROTO_MAX_LINE);
        return -1;
    }
    /* NUL bytes are legal inside strings (exec output); reject duplicate
     * keys so a message has one meaning. */
    root = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
                      &jerr);
    if (root == NULL) {
        err_set(err, PROTO_ERR_JSON, "invalid JSON at column %d: %s",
                jerr.column, jerr.text);
        return -1;
    }
    out->root = root;
    if (!json_is_object(root)) {
        err_set(err, PROTO_ERR_SCHEMA, "message must be a JSON object");
        goto cleanup;
    }
    id = json_object_get(root, "id");
    if (json_is_integer(id)) {
        out->has_id = 1;
        out->id = json_integer_value(id);
        if (err != NULL) {
            err->has_id = 1;
            err->id = out->id;
        }
    }
    if (get_str(root, "t", 1, 0, &t, err) < 0)
        goto cleanup;
    out->t = t;
    out->type = PROTO_T_UNKNOWN;
    for (i = 0; i < sizeof(msg_types) / sizeof(msg_types[0]); i++) {
        if (strcmp(t, msg_types[i].name) == 0) {
            out->type = msg_types[i].type;
            needs_id = msg_types[i].needs_id;
            break;
        }
    }
    if (id != NULL && !json_is_null(id) && !json_is_integer(id)) {
        err_set(err, PROTO_ERR_SCHEMA, "field \"id\" must be an integer");
        goto cleanup;
    }
    if (needs_id && !out->has_id) {
        err_set(err, PROTO_ERR_SCHEMA, "missing field \"id\" in \"%.40s\"", t);
        goto cleanup;
    }

    switch (out->type) {
    case PROTO_T_HELLO:
        if (parse_hello(root, &out->u.hello, err) < 0)
            goto cleanup;
        break;
    case PROTO_T_REPLY:
        out->u.reply.body = root;
        if (get_bool(root, "ok", 1, &out->u.reply.ok, err) < 0 ||
            get_str(root, "error", 0, 1, &out->u.reply.error, err) < 0)
            goto cleanup;
        break;
    case PROTO_T_EVENT:
        out->u.event.body = root;
        if (get_str(root, "kind", 1, 0, &out->u.event.kind, err) < 0)
            goto cleanup;
        break;
    case PROTO_T_CONFIG:
        if (parse_config(root, &out->u.config, err) < 0)
            goto cleanup;
        break;
    case PROTO_T_PROBE:
        if (parse_probe(root, &out->u.probe, err) < 0)
            goto cleanup;
        break;
    case PROTO_T_EXEC:
        if (parse_exec(root, &out->u.exec, err) < 0)
            goto cleanup;
        break;
    default:
        break;
    }
    rc = 0;

cleanup:
    /* On failure err->has_id/id still name the request, so the caller can
     * answer it; the message itself holds nothing. */
    if (rc < 0)
        proto_msg_clear(out);
    return rc;
}

/* ---- builders ------------------------------------------------------------ */

/* Set obj[key] = v (stealing v).  On NULL v or failure, note the error. */
static int put(json_t *obj, const char *key, json_t *v, proto_err *err)
{
    if (v == NULL || json_object_set_new(obj, key, v) < 0) {
        err_set(err, PROTO_ERR_NOMEM, "cannot set \"%s\" (out of memory or "
                "invalid UTF-8)", key);
        return -1;
    }
    return 0;
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *str_array(const char **v, size_t n)
{
    json_t *arr = json_array();
    size_t i;

    if (arr == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        if (v[i] == NULL || json_array_append_new(arr, json_string(v[i])) < 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

static json_t *msg_new(const char *t, int with_id, long long id,
                       proto_err *err)
{
    json_t *m = json_object();

    if (m == NULL) {
        err_set(err, PROTO_ERR_NOMEM, "out of memory");
        return NULL;
    }
    if (put(m, "t", json_string(t), err) < 0 ||
        (with_id && put(m, "id", json_integer(id), err) < 0)) {
        json_decref(m);
        return NULL;
    }
    return m;
}

json_t *proto_build_hello(const proto_hello *h, proto_err *err)
{
    json_t *m = NULL, *ifs = NULL;
    size_t i;

    err_reset(err);
    if (h == NULL || h->agent == NULL) {
        err_set(err, PROTO_ERR_ARG, "hello: agent version required");
        return NULL;
    }
    m = msg_new("hello", 0, 0, err);
    if (m == NULL)
        return NULL;
    if (put(m, "v", json_integer(h->v ? h->v : PROTO_VERSION), err) < 0 ||
        put(m, "agent", json_string(h->agent), err) < 0 ||
        put(m, "exercise", str_or_null(h->exercise), err) < 0 ||
        put(m, "team", h->team >= 0 ? json_integer(h->team) : json_null(),
            err) < 0 ||
        put(m, "host", str_or_null(h->host), err) < 0 ||
        put(m, "caps", str_array(h->caps, h->ncaps), err) < 0)
        goto fail;
    ifs = json_array();
    if (put(m, "ifaces", ifs, err) < 0)
        goto fail;
    for (i = 0; i < h->nifaces; i++) {
        json_t *o = json_object();
        if (o == NULL || json_array_append_new(ifs, o) < 0 ||
            h->ifaces[i].name == NULL ||
            put(o, "name", json_string(h->ifaces[i].name), err) < 0 ||
            put(o, "mac", str_or_null(h->ifaces[i].mac), err) < 0) {
            err_set(err, PROTO_ERR_ARG, "hello: bad ifaces[%zu]", i);
            goto fail;
        }
    }
    return m;
fail:
    json_decref(m);
    return NULL;
}

json_t *proto_build_event(const char *kind, proto_err *err)
{
    json_t *m = NULL;

    err_reset(err);
    if (kind == NULL) {
        err_set(err, PROTO_ERR_ARG, "event: kind required");
        return NULL;
    }
    m = msg_new("event", 0, 0, err);
    if (m != NULL && put(m, "kind", json_string(kind), err) < 0) {
        json_decref(m);
        return NULL;
    }
    return m;
}

json_t *proto_build_hello_req(long long id, proto_err *err)
{
    err_reset(err);
    return msg_new("hello?", 1, id, err);
}

json_t *proto_build_health_req(long long id, proto_err *err)
{
    err_reset(err);
    return msg_new("health", 1, id, err);
}

static int build_cfg_ifaces(json_t *m, const proto_config *c, proto_err *err)
{
    json_t *arr = json_array();
    size_t i;

    if (put(m, "ifaces", arr, err) < 0)
        return -1;
    for (i = 0; i < c->nifaces; i++) {
        const proto_cfg_iface *f = &c->ifaces[i];
        json_t *o = json_object();
        if (o == NULL || json_array_append_new(arr, o) < 0 || f->mac == NULL)
            goto bad;
        if (put(o, "mac", json_string(f->mac), err) < 0)
            goto bad;
        if (f->dhcp) {
            if (put(o, "dhcp", json_true(), err) < 0)
                goto bad;
        } else if (f->addr == NULL ||
                   put(o, "addr", json_string(f->addr), err) < 0 ||
                   put(o, "prefix", json_integer(f->prefix), err) < 0) {
            goto bad;
        }
    }
    return 0;
bad:
    err_set(err, PROTO_ERR_ARG, "config: bad ifaces[%zu]", i);
    return -1;
}

static int build_cfg_files(json_t *m, const proto_config *c, proto_err *err)
{
    json_t *arr = json_array();
    char mode[16];
    size_t i;

    if (put(m, "files", arr, err) < 0)
        return -1;
    for (i = 0; i < c->nfiles; i++) {
        const proto_cfg_file *f = &c->files[i];
        json_t *o = json_object();
        if (o == NULL || json_array_append_new(arr, o) < 0 || f->path == NULL)
            goto bad;
        snprintf(mode, sizeof(mode), "%04o", f->mode & 07777);
        if (put(o, "path", json_string(f->path), err) < 0 ||
            put(o, "content",
                json_stringn(f->content ? f->content : "",
                             f->content ? f->content_len : 0),
                err) < 0 ||
            put(o, "mode", json_string(mode), err) < 0)
            goto bad;
    }
    return 0;
bad:
    err_set(err, PROTO_ERR_ARG, "config: bad files[%zu]", i);
    return -1;
}

static int build_cfg_accounts(json_t *m, const proto_config *c,
                              proto_err *err)
{
    json_t *arr = json_array();
    size_t i;

    if (put(m, "accounts", arr, err) < 0)
        return -1;
    for (i = 0; i < c->naccounts; i++) {
        const proto_cfg_account *a = &c->accounts[i];
        json_t *o = json_object();
        if (o == NULL || json_array_append_new(arr, o) < 0 || a->name == NULL)
            goto bad;
        if (put(o, "name", json_string(a->name), err) < 0 ||
            (a->password != NULL &&
             put(o, "password", json_string(a->password), err) < 0) ||
            put(o, "groups", str_array(a->groups, a->ngroups), err) < 0)
            goto bad;
    }
    return 0;
bad:
    err_set(err, PROTO_ERR_ARG, "config: bad accounts[%zu]", i);
    return -1;
}

json_t *proto_build_config(long long id, const proto_config *c, proto_err *err)
{
    json_t *m = NULL, *env = NULL;
    size_t i;

    err_reset(err);
    if (c == NULL) {
        err_set(err, PROTO_ERR_ARG, "config: NULL");
        return NULL;
    }
    m = msg_new("config", 1, id, err);
    if (m == NULL)
        return NULL;
    if ((c->exercise && put(m, "exercise", json_string(c->exercise), err) < 0) ||
        (c->team >= 0 && put(m, "team", json_integer(c->team), err) < 0) ||
        (c->host && put(m, "host", json_string(c->host), err) < 0) ||
        (c->role && put(m, "role", json_string(c->role), err) < 0) ||
        (c->hostname && put(m, "hostname", json_string(c->hostname), err) < 0))
        goto fail;
    if (build_cfg_ifaces(m, c, err) < 0)
        goto fail;
    if ((c->gateway && put(m, "gateway", json_string(c->gateway), err) < 0) ||
        put(m, "dns", str_array(c->dns, c->ndns), err) < 0)
        goto fail;
    if (build_cfg_files(m, c, err) < 0 || build_cfg_accounts(m, c, err) < 0)
        goto fail;
    env = json_object();
    if (put(m, "env", env, err) < 0)
        goto fail;
    for (i = 0; i < c->nenv; i++) {
        if (c->env[i].key == NULL || c->env[i].value == NULL ||
            put(env, c->env[i].key, json_string(c->env[i].value), err) < 0) {
            err_set(err, PROTO_ERR_ARG, "config: bad env[%zu]", i);
            goto fail;
        }
    }
    return m;
fail:
    json_decref(m);
    return NULL;
}

static int build_check_fields(json_t *m, const proto_probe *p,
                              proto_err *err)
{
    switch (p->kind) {
    case PROTO_CHECK_HTTP:
        if ((p->path && put(m, "path", json_string(p->path), err) < 0) ||
            (p->host && put(m, "host", json_string(p->host), err) < 0) ||
            put(m, "expect_status",
                json_integer(p->expect_status > 0 ? p->expect_status : 200),
                err) < 0 ||
            (p->expect && put(m, "expect", json_string(p->expect), err) < 0))
            return -1;
        return 0;
    case PROTO_CHECK_SMTP:
    case PROTO_CHECK_TCP:
        if (p->expect && put(m, "expect", json_string(p->expect), err) < 0)
            return -1;
        return 0;
    case PROTO_CHECK_DNS:
        if (p->name == NULL) {
            err_set(err, PROTO_ERR_ARG, "probe: a dns check needs a name");
            return -1;
        }
        if (put(m, "name", json_string(p->name), err) < 0 ||
            (p->expect_address &&
             put(m, "expect_address", json_string(p->expect_address), err) <
                 0))
            return -1;
        return 0;
    default:
        return 0;
    }
}

json_t *proto_build_probe(long long id, const proto_probe *p, proto_err *err)
{
    json_t *m = NULL;

    err_reset(err);
    if (p == NULL || p->addr == NULL) {
        err_set(err, PROTO_ERR_ARG, "probe: addr required");
        return NULL;
    }
    if (p->kind != PROTO_CHECK_NONE && proto_check_kind_name(p->kind) == NULL) {
        err_set(err, PROTO_ERR_ARG, "probe: unknown kind %d", (int)p->kind);
        return NULL;
    }
    m = msg_new("probe", 1, id, err);
    if (m == NULL)
        return NULL;
    if ((p->kind != PROTO_CHECK_NONE &&
         put(m, "kind", json_string(proto_check_kind_name(p->kind)), err) <
             0) ||
        put(m, "proto",
            json_string(p->proto ? p->proto : check_transport(p->kind)),
            err) < 0 ||
        put(m, "addr", json_string(p->addr), err) < 0 ||
        (p->port > 0 && put(m, "port", json_integer(p->port), err) < 0) ||
        put(m, "timeout_ms",
            json_integer(p->timeout_ms > 0 ? p->timeout_ms
                                           : PROTO_PROBE_DEFAULT_TIMEOUT_MS),
            err) < 0 ||
        build_check_fields(m, p, err) < 0) {
        json_decref(m);
        return NULL;
    }
    return m;
}

json_t *proto_build_exec(long long id, const proto_exec *e, proto_err *err)
{
    json_t *m = NULL;

    err_reset(err);
    if (e == NULL || e->argc == 0 || e->argv == NULL) {
        err_set(err, PROTO_ERR_ARG, "exec: argv required");
        return NULL;
    }
    m = msg_new("exec", 1, id, err);
    if (m == NULL)
        return NULL;
    if (put(m, "argv", str_array(e->argv, e->argc), err) < 0 ||
        put(m, "timeout_ms",
            json_integer(e->timeout_ms > 0 ? e->timeout_ms
                                           : PROTO_EXEC_DEFAULT_TIMEOUT_MS),
            err) < 0 ||
        (e->stdin_data != NULL &&
         put(m, "stdin", json_stringn(e->stdin_data, e->stdin_len), err) < 0)) {
        json_decref(m);
        return NULL;
    }
    return m;
}

json_t *proto_build_reply(int has_id, long long id, int ok, const char *error,
                          proto_err *err)
{
    json_t *m = NULL;

    err_reset(err);
    m = msg_new("reply", 0, 0, err);
    if (m == NULL)
        return NULL;
    if (put(m, "id", has_id ? json_integer(id) : json_null(), err) < 0 ||
        put(m, "ok", json_boolean(ok), err) < 0 ||
        (!ok && put(m, "error", json_string(error ? error : "failed"), err) <
                    0)) {
        json_decref(m);
        return NULL;
    }
    return m;
}

/* json_real() refuses NaN and infinities; the wire gets 0 instead. */
static json_t *real_or_zero(double d)
{
    return json_real(isfinite(d) ? d : 0.0);
}

json_t *proto_build_health_reply(long long id, const proto_health *h,
                                 proto_err *err)
{
    json_t *m = NULL, *ifs = NULL;
    size_t i;

    if (h == NULL) {
        err_reset(err);
        err_set(err, PROTO_ERR_ARG, "health: NULL");
        return NULL;
    }
    m = proto_build_reply(1, id, 1, NULL, err);
    if (m == NULL)
        return NULL;
    if (put(m, "uptime_s", real_or_zero(h->uptime_s), err) < 0 ||
        put(m, "load1", real_or_zero(h->load1), err) < 0 ||
        put(m, "mem_free_kb", json_integer(h->mem_free_kb), err) < 0 ||
        put(m, "mem_total_kb", json_integer(h->mem_total_kb), err) < 0 ||
        put(m, "services_started", json_boolean(h->services_started), err) <
            0)
        goto fail;
    ifs = json_array();
    if (put(m, "ifaces", ifs, err) < 0)
        goto fail;
    for (i = 0; i < h->nifaces; i++) {
        const proto_health_iface *f = &h->ifaces[i];
        json_t *o = json_object();
        if (o == NULL || json_array_append_new(ifs, o) < 0 ||
            f->name == NULL ||
            put(o, "name", json_string(f->name), err) < 0 ||
            put(o, "mac", str_or_null(f->mac), err) < 0 ||
            put(o, "addrs", str_array(f->addrs, f->naddrs), err) < 0 ||
            put(o, "up", json_boolean(f->up), err) < 0) {
            err_set(err, PROTO_ERR_ARG, "health: bad ifaces[%zu]", i);
            goto fail;
        }
    }
    return m;
fail:
    json_decref(m);
    return NULL;
}

json_t *proto_build_probe_reply(long long id, const proto_probe_result *r,
                                proto_err *err)
{
    json_t *m = NULL;
    double rtt;

    if (r == NULL) {
        err_reset(err);
        err_set(err, PROTO_ERR_ARG, "probe reply: NULL");
        return NULL;
    }
    m = proto_build_reply(1, id, 1, NULL, err);
    if (m == NULL)
        return NULL;
    /* Microsecond resolution is plenty and keeps the line short. */
    rtt = round(r->rtt_ms * 1000.0) / 1000.0;
    if (put(m, "reachable", json_boolean(r->reachable), err) < 0 ||
        put(m, "rtt_ms", real_or_zero(rtt), err) < 0 ||
        (!r->reachable &&
         put(m, "error", json_string(r->error ? r->error : "unreachable"),
             err) < 0)) {
        json_decref(m);
        return NULL;
    }
    /* Only a check reply carries these: a version-1 orchestrator gets the
     * reply it always got. */
    if (r->has_check &&
        (put(m, "check_ok", json_boolean(r->check_ok), err) < 0 ||
         put(m, "status", r->status >= 0 ? json_integer(r->status)
                                         : json_null(), err) < 0 ||
         put(m, "detail", json_string(r->detail ? r->detail : ""), err) <
             0)) {
        json_decref(m);
        return NULL;
    }
    return m;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0.  Same
 * rules as jansson: no overlongs, no surrogates, nothing past U+10FFFF. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    size_t len, i;
    uint32_t cp;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        len = 2;
        cp = s[0] & 0x1F;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        len = 3;
        cp = s[0] & 0x0F;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        len = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* A JSON string of raw bytes: invalid UTF-8 becomes U+FFFD. */
static json_t *bytes_to_json(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    char *buf = NULL;
    size_t i = 0, o = 0;
    json_t *j = NULL;

    if (s == NULL)
        return json_string("");
    buf = malloc(n * 3 + 1);
    if (buf == NULL)
        return NULL;
    while (i < n) {
        size_t l = utf8_seq(p + i, n - i);
        if (l == 0) {
            memcpy(buf + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(buf + o, p + i, l);
            o += l;
            i += l;
        }
    }
    j = json_stringn(buf, o);
    free(buf);
    return j;
}

json_t *proto_build_exec_reply(long long id, const proto_exec_result *r,
                               proto_err *err)
{
    json_t *m = NULL;
    size_t olen, elen;

    if (r == NULL) {
        err_reset(err);
        err_set(err, PROTO_ERR_ARG, "exec reply: NULL");
        return NULL;
    }
    m = proto_build_reply(1, id, 1, NULL, err);
    if (m == NULL)
        return NULL;
    /* The caller should already have capped output; cap again so a reply
     * can never outgrow the line limit. */
    olen = r->out_len > PROTO_EXEC_MAX_OUTPUT ? PROTO_EXEC_MAX_OUTPUT
                                              : r->out_len;
    elen = r->err_len > PROTO_EXEC_MAX_OUTPUT ? PROTO_EXEC_MAX_OUTPUT
                                              : r->err_len;
    if (put(m, "exit", json_integer(r->exit_code), err) < 0 ||
        put(m, "signal", json_integer(r->signal), err) < 0 ||
        put(m, "timed_out", json_boolean(r->timed_out), err) < 0 ||
        put(m, "stdout", bytes_to_json(r->out, olen), err) < 0 ||
        put(m, "stderr", bytes_to_json(r->err, elen), err) < 0 ||
        put(m, "stdout_truncated",
            json_boolean(r->out_truncated || olen < r->out_len), err) < 0 ||
        put(m, "stderr_truncated",
            json_boolean(r->err_truncated || elen < r->err_len), err) < 0) {
        json_decref(m);
        return NULL;
    }
    return m;
}

char *proto_line(const json_t *msg, size_t *len, proto_err *err)
{
    char *s = NULL, *line = NULL;
    size_t n;

    err_reset(err);
    if (msg == NULL || !json_is_object(msg)) {
        err_set(err, PROTO_ERR_ARG, "line: message must be an object");
        return NULL;
    }
    s = json_dumps(msg, JSON_COMPACT | JSON_REAL_PRECISION(12));
    if (s == NULL) {
        err_set(err, PROTO_ERR_NOMEM, "cannot serialise message");
        return NULL;
    }
    n = strlen(s);
    if (n > PROTO_MAX_LINE) {
        err_set(err, PROTO_ERR_OVERSIZE, "message of %zu bytes exceeds %u", n,
                PROTO_MAX_LINE);
        free(s);
        return NULL;
    }
    line = realloc(s, n + 2);
    if (line == NULL) {
        err_set(err, PROTO_ERR_NOMEM, "out of memory");
        free(s);
        return NULL;
    }
    line[n] = '\n';
    line[n + 1] = '\0';
    if (len != NULL)
        *len = n + 1;
    return line;
}

/* ---- typed views of replies -------------------------------------------- */

static int reply_check(const proto_msg *m, proto_err *err)
{
    if (m == NULL || m->type != PROTO_T_REPLY || m->root == NULL) {
        err_set(err, PROTO_ERR_ARG, "not a parsed reply");
        return -1;
    }
    if (!m->u.reply.ok) {
        err_set(err, PROTO_ERR_SCHEMA, "reply is not ok: %s",
                m->u.reply.error ? m->u.reply.error : "(no error text)");
        return -1;
    }
    return 0;
}

void proto_health_clear(proto_health *h)
{
    size_t i;

    if (h == NULL)
        return;
    for (i = 0; i < h->nifaces; i++)
        free(h->ifaces[i].addrs);
    free(h->ifaces);
    memset(h, 0, sizeof(*h));
}

int proto_parse_health_reply(const proto_msg *m, proto_health *out,
                             proto_err *err)
{
    json_t *arr = NULL;
    long long v = 0;
    size_t i;

    err_reset(err);
    memset(out, 0, sizeof(*out));
    if (reply_check(m, err) < 0)
        return -1;
    if (get_number(m->root, "uptime_s", 1, &out->uptime_s, err) < 0 ||
        get_number(m->root, "load1", 1, &out->load1, err) < 0 ||
        get_int(m->root, "mem_free_kb", 1, 0, 0, LLONG_MAX, &v, err) < 0)
        goto fail;
    out->mem_free_kb = v;
    v = 0;
    if (get_int(m->root, "mem_total_kb", 0, 0, 0, LLONG_MAX, &v, err) < 0 ||
        get_bool(m->root, "services_started", 1, &out->services_started,
                 err) < 0 ||
        get_array(m->root, "ifaces", 1, 1024, &arr, err) < 0)
        goto fail;
    out->mem_total_kb = v;
    if (json_array_size(arr) == 0)
        return 0;
    out->ifaces = calloc(json_array_size(arr), sizeof(*out->ifaces));
    if (out->ifaces == NULL) {
        err_set(err, PROTO_ERR_NOMEM, "out of memory");
        goto fail;
    }
    out->nifaces = json_array_size(arr);
    for (i = 0; i < out->nifaces; i++) {
        json_t *o = json_array_get(arr, i);
        proto_health_iface *f = &out->ifaces[i];
        if (!json_is_object(o)) {
            err_set(err, PROTO_ERR_SCHEMA, "ifaces[%zu] must be an object", i);
            goto fail;
        }
        if (get_str(o, "name", 1, 0, &f->name, err) < 0 ||
            get_str(o, "mac", 0, 1, &f->mac, err) < 0 ||
            get_bool(o, "up", 1, &f->up, err) < 0 ||
            get_str_array(o, "addrs", 1, 256, &f->addrs, &f->naddrs, err) <
                0) {
            append_where(err, "ifaces", i);
            goto fail;
        }
    }
    return 0;
fail:
    proto_health_clear(out);
    return -1;
}

int proto_parse_probe_reply(const proto_msg *m, proto_probe_result *out,
                            proto_err *err)
{
    long long status = -1;
    int rc;

    err_reset(err);
    memset(out, 0, sizeof(*out));
    out->status = -1;
    if (reply_check(m, err) < 0)
        return -1;
    if (get_bool(m->root, "reachable", 1, &out->reachable, err) < 0 ||
        get_number(m->root, "rtt_ms", 0, &out->rtt_ms, err) < 0 ||
        get_str(m->root, "error", 0, 1, &out->error, err) < 0)
        return -1;
    rc = get_bool(m->root, "check_ok", 0, &out->check_ok, err);
    if (rc < 0)
        return -1;
    out->has_check = rc;
    if (get_int(m->root, "status", 0, 1, 0, 65535, &status, err) < 0 ||
        get_str(m->root, "detail", 0, 1, &out->detail, err) < 0)
        return -1;
    out->status = (int)status;
    return 0;
}

int proto_parse_exec_reply(const proto_msg *m, proto_exec_result *out,
                           proto_err *err)
{
    json_t *o = NULL, *e = NULL;
    long long code = 0, sig = 0;

    err_reset(err);
    memset(out, 0, sizeof(*out));
    if (reply_check(m, err) < 0)
        return -1;
    if (get_int(m->root, "exit", 1, 0, INT32_MIN, INT32_MAX, &code, err) < 0 ||
        get_int(m->root, "signal", 0, 0, 0, 1024, &sig, err) < 0 ||
        get_bool(m->root, "timed_out", 0, &out->timed_out, err) < 0 ||
        get_bool(m->root, "stdout_truncated", 0, &out->out_truncated, err) <
            0 ||
        get_bool(m->root, "stderr_truncated", 0, &out->err_truncated, err) < 0)
        return -1;
    out->exit_code = (int)code;
    out->signal = (int)sig;
    o = json_object_get(m->root, "stdout");
    e = json_object_get(m->root, "stderr");
    if ((o != NULL && !json_is_string(o)) || (e != NULL && !json_is_string(e))) {
        err_set(err, PROTO_ERR_SCHEMA, "stdout and stderr must be strings");
        return -1;
    }
    out->out = o ? json_string_value(o) : "";
    out->out_len = o ? json_string_length(o) : 0;
    out->err = e ? json_string_value(e) : "";
    out->err_len = e ? json_string_length(e) : 0;
    return 0;
}
