#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct journal {
    int fd;
};

journal *journal_open(const char *path, char *err, size_t errlen)
{
    journal *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    j->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (j->fd < 0) {
        snprintf(err, errlen, "cannot open journal %s: %s", path, strerror(errno));
        free(j);
        return NULL;
    }
    return j;
}

void journal_close(journal *j)
{
    if (j == NULL)
        return;
    close(j->fd);
    free(j);
}

int journal_append(journal *j, json_t *entry)
{
    struct timespec ts;
    char stamp[40];
    struct tm tm;
    char *line = NULL;
    size_t len;
    int rc = -1;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
             tm.tm_sec, ts.tv_nsec / 1000000);
    json_object_set_new(entry, "ts", json_string(stamp));
    line = json_dumps(entry, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (line == NULL)
        return -1;
    len = strlen(line);
    line[len++] = '\n'; /* json_dumps leaves room: it NUL-terminates */
    /* One write per entry with O_APPEND keeps lines whole; fdatasync makes
     * it durable before anyone is told. */
    if (write(j->fd, line, len) == (ssize_t)len && fdatasync(j->fd) == 0)
        rc = 0;
    free(line);
    return rc;
}

json_t *journal_read(const char *path)
{
    FILE *f = fopen(path, "r");
    json_t *arr = json_array();
    char *line = NULL;
    size_t cap = 0;
    if (f == NULL || arr == NULL) {
        if (f)
            fclose(f);
        json_decref(arr);
        return NULL;
    }
    while (getline(&line, &cap, f) > 0) {
        json_t *e = json_loads(line, 0, NULL);
        if (e)
            json_array_append_new(arr, e);
    }
    free(line);
    fclose(f);
    return arr;
}
