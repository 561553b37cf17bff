/* apiclient — see apiclient.h. */
#include "apiclient.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <http_parser.h>
#include <sodium.h>

#include "auth.h"

#define HANDOFF_MAX 4096             /* api.json is a few hundred bytes */
#define ANSWER_MAX (64 * 1024 * 1024) /* a score or findings list of a long day */

struct apiclient {
    char host[64];
    char port[8];
    char token[AUTH_TOKEN_LEN + 1];
    char csrf[AUTH_TOKEN_LEN + 1];
};

typedef struct answer {
    char *body;
    size_t len, cap;
    int complete;
    int too_big;
} answer;

static void wipe_free(apiclient *c)
{
    sodium_memzero(c, sizeof(*c));
    free(c);
}

apiclient *apiclient_open(const char *state_dir, const char *exname, char *err,
                          size_t errlen)
{
    char path[4096], buf[HANDOFF_MAX + 1];
    apiclient *c = NULL;
    json_t *doc = NULL;
    json_error_t je;
    struct stat st;
    ssize_t n;
    int fd;

    err[0] = '\0';
    snprintf(path, sizeof(path), "%s/%s/api.json", state_dir, exname);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT)
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    /* Anyone who could write it could steer the exercise. */
    if (fstat(fd, &st) < 0 || st.st_uid != 0 || (st.st_mode & 077) != 0) {
        snprintf(err, errlen, "%s: must belong to root with mode 0600", path);
        close(fd);
        return NULL;
    }
    n = read(fd, buf, HANDOFF_MAX);
    close(fd);
    if (n <= 0) {
        snprintf(err, errlen, "%s: empty or unreadable", path);
        return NULL;
    }
    buf[n] = '\0';
    doc = json_loads(buf, 0, &je);
    sodium_memzero(buf, sizeof(buf));
    c = calloc(1, sizeof(*c));
    const char *host = json_string_value(json_object_get(doc, "host"));
    const char *token = json_string_value(json_object_get(doc, "token"));
    const char *csrf = json_string_value(json_object_get(doc, "csrf"));
    json_int_t port = json_integer_value(json_object_get(doc, "port"));
    if (c == NULL || host == NULL || token == NULL || csrf == NULL || port <= 0 ||
        port > 65535 || strlen(host) >= sizeof(c->host) || strlen(token) > AUTH_TOKEN_LEN ||
        strlen(csrf) > AUTH_TOKEN_LEN) {
        snprintf(err, errlen, "%s: not a handoff file of `cyrange serve`", path);
        json_decref(doc);
        if (c)
            wipe_free(c);
        return NULL;
    }
    snprintf(c->host, sizeof(c->host), "%s", host);
    snprintf(c->port, sizeof(c->port), "%d", (int)port);
    snprintf(c->token, sizeof(c->token), "%s", token);
    snprintf(c->csrf, sizeof(c->csrf), "%s", csrf);
    json_decref(doc);
    return c;
}

void apiclient_free(apiclient *c)
{
    if (c)
        wipe_free(c);
}

const char *apiclient_error_message(const json_t *answer_doc, const char *fallback)
{
    const char *m = json_string_value(
        json_object_get(json_object_get(answer_doc, "error"), "message"));
    return m ? m : fallback;
}

static long long ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for `events` on fd until `deadline`; 0, or -1 on a timeout. */
static int wait_fd(int fd, short events, long long deadline)
{
    for (;;) {
        long long left = deadline - ms_now();
        struct pollfd p = { fd, events, 0 };
        if (left <= 0)
            return -1;
        int r = poll(&p, 1, (int)left);
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return -1;
    }
}

static int connect_to(const apiclient *c, long long deadline, char *err, size_t errlen)
{
    struct addrinfo hints, *ai = NULL;
    int fd = -1, r, soerr = 0;
    socklen_t sl = sizeof(soerr);

    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    if ((r = getaddrinfo(c->host, c->port, &hints, &ai)) != 0) {
        snprintf(err, errlen, "%s:%s: %s", c->host, c->port, gai_strerror(r));
        return -1;
    }
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS)) {
        snprintf(err, errlen, "cannot reach cyrange serve at %s:%s: %s", c->host, c->port,
                 strerror(errno));
        goto fail;
    }
    if (wait_fd(fd, POLLOUT, deadline) < 0 ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr != 0) {
        snprintf(err, errlen, "cannot reach cyrange serve at %s:%s: %s", c->host, c->port,
                 soerr ? strerror(soerr) : "timed out");
        goto fail;
    }
    freeaddrinfo(ai);
    return fd;
fail:
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    return -1;
}

static int send_all(int fd, const char *p, size_t len, long long deadline)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
            wait_fd(fd, POLLOUT, deadline) == 0)
            continue;
        return -1;
    }
    return 0;
}

static int on_body(http_parser *hp, const char *at, size_t len)
{
    answer *a = hp->data;
    if (a->len + len > ANSWER_MAX) {
        a->too_big = 1;
        return -1;
    }
    if (a->len + len + 1 > a->cap) {
        size_t cap = a->cap ? a->cap : 4096;
        while (cap < a->len + len + 1)
            cap *= 2;
        char *nb = realloc(a->body, cap);
        if (nb == NULL)
            return -1;
        a->body = nb;
        a->cap = cap;
    }
    memcpy(a->body + a->len, at, len);
    a->len += len;
    a->body[a->len] = '\0';
    return 0;
}

static int on_complete(http_parser *hp)
{
    ((answer *)hp->data)->complete = 1;
    return 0;
}

int apiclient_call(apiclient *c, const char *method, const char *path, const json_t *body,
                   int timeout_ms, json_t **out, char *err, size_t errlen)
{
    long long deadline = ms_now() + (timeout_ms > 0 ? timeout_ms : 30000);
    char *payload = NULL, *head = NULL, buf[16384];
    http_parser_settings hs;
    http_parser hp;
    answer a = { 0 };
    int fd = -1, status = -1, hl;

    *out = NULL;
    if (body && (payload = json_dumps(body, JSON_COMPACT)) == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    hl = asprintf(&head,
                  "%s %s HTTP/1.1\r\nHost: %s:%s\r\nUser-Agent: cyrange-cli\r\n"
                  "Accept: application/json\r\nConnection: close\r\n"
                  "Cookie: " AUTH_COOKIE_NAME "=%s\r\n" AUTH_CSRF_HEADER ": %s\r\n"
                  "%sContent-Length: %zu\r\n\r\n",
                  method, path, c->host, c->port, c->token, c->csrf,
                  payload ? "Content-Type: application/json\r\n" : "",
                  payload ? strlen(payload) : (size_t)0);
    if (hl < 0) {
        head = NULL;
        snprintf(err, errlen, "out of memory");
        goto cleanup;
    }
    if ((fd = connect_to(c, deadline, err, errlen)) < 0)
        goto cleanup;
    if (send_all(fd, head, (size_t)hl, deadline) < 0 ||
        (payload && send_all(fd, payload, strlen(payload), deadline) < 0)) {
        snprintf(err, errlen, "cyrange serve at %s:%s: cannot send: %s", c->host, c->port,
                 strerror(errno));
        goto cleanup;
    }
    http_parser_settings_init(&hs);
    hs.on_body = on_body;
    hs.on_message_complete = on_complete;
    http_parser_init(&hp, HTTP_RESPONSE);
    hp.data = &a;
    while (!a.complete) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (wait_fd(fd, POLLIN, deadline) < 0) {
                snprintf(err, errlen, "cyrange serve at %s:%s did not answer within %d ms",
                         c->host, c->port, timeout_ms);
                goto cleanup;
            }
            continue;
        }
        if (n < 0) {
            snprintf(err, errlen, "cyrange serve at %s:%s: %s", c->host, c->port,
                     strerror(errno));
            goto cleanup;
        }
        /* n == 0 tells the parser the connection ended (an answer
         * without a length ends there). */
        size_t used = http_parser_execute(&hp, &hs, buf, (size_t)n);
        if (HTTP_PARSER_ERRNO(&hp) != HPE_OK || used != (size_t)n) {
            snprintf(err, errlen, "cyrange serve at %s:%s: %s", c->host, c->port,
                     a.too_big ? "the answer is too large"
                               : http_errno_description(HTTP_PARSER_ERRNO(&hp)));
            goto cleanup;
        }
        if (n == 0 && !a.complete) {
            snprintf(err, errlen, "cyrange serve at %s:%s closed the connection early",
                     c->host, c->port);
            goto cleanup;
        }
    }
    status = (int)hp.status_code;
    if (a.len > 0)
        *out = json_loadb(a.body, a.len, 0, NULL);
cleanup:
    if (fd >= 0)
        close(fd);
    if (head) {
        sodium_memzero(head, strlen(head));
        free(head);
    }
    free(payload);
    free(a.body);
    return status;
}
