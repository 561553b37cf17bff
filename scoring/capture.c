#include "capture.h"

#include <errno.h>
#include <fcntl.h>
#include <pcap.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEF_SNAPLEN 65535
#define DEF_BUFFER (32u * 1024u * 1024u)
#define DEF_TIMEOUT_MS 100
#define DEF_ROTATE_BYTES (64ull * 1024 * 1024)
#define DEF_ROTATE_SECONDS 600
#define DEF_KEEP_FILES 20
/* A stdio buffer that stays in the CPU cache: the kernel copies it into
 * the page cache faster than a cold 1 MiB one (measured with bench-capture:
 * ~95 against ~130 ns per 60-byte frame), at one write(2) per ~200 frames. */
#define DEF_FILE_BUFFER (16u * 1024u)
/* One poll wakeup reads at most this many frames, so that one busy bridge
 * cannot starve the rest of the loop; level-triggered polling brings us
 * back for the rest. */
#define MAX_PER_WAKEUP 200000
#define PCAP_REC_HDR 16 /* bytes of a pcap record header */

struct capture {
    uv_loop_t *loop;
    uv_poll_t poll;
    uv_timer_t timer;
    int handles_open;
    pcap_t *p;
    int fd;
    capture_opts o;      /* strings point at the copies below */
    char *ifname, *dir, *prefix;
    /* The current file. */
    pcap_dumper_t *dump;
    char *file_buf;
    uint64_t file_bytes, file_packets;
    uint64_t file_started_ms;
    unsigned seq;
    /* Names of the files this capture wrote, oldest first (retention). */
    char (*kept)[CAPTURE_PATH_MAX];
    unsigned nkept;
    capture_counters k;
    int stopped;
    capture_close_cb close_cb;
    void *close_opaque;
};

static void set_error(capture *c, const char *fmt, const char *a, const char *b)
{
    snprintf(c->k.error, sizeof(c->k.error), fmt, a, b);
    c->k.errors++;
}

/* Closes the current file; 0, or -1 when buffered data could not be
 * written (the file is closed anyway). */
static int file_close(capture *c)
{
    int rc = 0;
    if (!c->dump)
        return 0;
    FILE *f = pcap_dump_file(c->dump);
    if (fflush(f) != 0 || ferror(f)) {
        set_error(c, "writing %s: %s", c->k.file, strerror(errno));
        rc = -1;
    }
    pcap_dump_close(c->dump);
    c->dump = NULL;
    free(c->file_buf);
    c->file_buf = NULL;
    c->k.file[0] = '\0';
    return rc;
}

/* Deletes the oldest files this capture wrote beyond keep_files; only our
 * own names (which start with our prefix) are ever removed. */
static void retain(capture *c, const char *newest)
{
    if (c->nkept == c->o.keep_files) {
        const char *old = c->kept[0];
        const char *base = strrchr(old, '/');
        base = base ? base + 1 : old;
        if (strncmp(base, c->prefix, strlen(c->prefix)) == 0 && unlink(old) != 0 &&
            errno != ENOENT)
            set_error(c, "removing %s: %s", old, strerror(errno));
        memmove(c->kept[0], c->kept[1], (size_t)(c->nkept - 1) * sizeof(c->kept[0]));
        c->nkept--;
    }
    snprintf(c->kept[c->nkept++], CAPTURE_PATH_MAX, "%s", newest);
}

static int file_open(capture *c, char *err, size_t errlen)
{
    char path[CAPTURE_PATH_MAX], stamp[32];
    struct tm tm;
    time_t now = time(NULL);
    FILE *f = NULL;
    int fd = -1, created = 0;

    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    int n = snprintf(path, sizeof(path), "%s/%s-%s-%06u.pcap", c->dir, c->prefix, stamp,
                     c->seq);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        snprintf(err, errlen, "capture file name in %s too long", c->dir);
        return -1;
    }
    c->file_buf = malloc(c->o.file_buffer);
    if (!c->file_buf) {
        snprintf(err, errlen, "out of memory for the file buffer");
        return -1;
    }
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0) {
        snprintf(err, errlen, "creating %s: %s", path, strerror(errno));
        goto cleanup;
    }
    created = 1;
    f = fdopen(fd, "wb");
    if (!f) {
        snprintf(err, errlen, "opening %s: %s", path, strerror(errno));
        goto cleanup;
    }
    fd = -1;
    /* Our own buffer and no stdio locking: pcap_dump makes two fwrite
     * calls per frame, and only this thread touches the stream. */
    setvbuf(f, c->file_buf, _IOFBF, c->o.file_buffer);
    __fsetlocking(f, FSETLOCKING_BYCALLER);
    /* pcap_dump_fopen fails only on the link type here (the header goes
     * into the stdio buffer), and leaves f open then. */
    c->dump = pcap_dump_fopen(c->p, f);
    if (!c->dump) {
        snprintf(err, errlen, "writing %s: %s", path, pcap_geterr(c->p));
        goto cleanup;
    }
    f = NULL;
    c->seq++;
    c->k.files++;
    c->file_bytes = 24; /* the pcap file header */
    c->file_packets = 0;
    c->file_started_ms = uv_now(c->loop);
    snprintf(c->k.file, sizeof(c->k.file), "%s", path);
    retain(c, path);
    return 0;

cleanup:
    if (f)
        fclose(f);
    if (fd >= 0)
        close(fd);
    if (created)
        unlink(path);
    free(c->file_buf);
    c->file_buf = NULL;
    return -1;
}

/* On an error, frames are still counted and flowed but no longer
 * written (c->dump stays NULL) until the capture is reopened. */
static void rotate(capture *c)
{
    char err[sizeof(c->k.error)];
    if (file_close(c) != 0)
        return;
    if (file_open(c, err, sizeof(err)) != 0)
        set_error(c, "%s%s", err, "");
}

static void on_packet(u_char *user, const struct pcap_pkthdr *h, const u_char *bytes)
{
    capture *c = (capture *)user;
    c->k.packets++;
    c->k.bytes += h->len;
    if (c->o.ft)
        flows_add_frame(c->o.ft, c->o.segment, bytes, h->caplen, h->len,
                        (int64_t)h->ts.tv_sec * 1000000 + h->ts.tv_usec);
    if (!c->dump)
        return;
    uint64_t rec = PCAP_REC_HDR + (uint64_t)h->caplen;
    if (c->file_packets &&
        (c->file_bytes + rec > c->o.rotate_bytes ||
         uv_now(c->loop) - c->file_started_ms >= (uint64_t)c->o.rotate_seconds * 1000)) {
        rotate(c);
        if (!c->dump)
            return;
    }
    pcap_dump((u_char *)c->dump, h, bytes);
    c->file_bytes += rec;
    c->file_packets++;
    c->k.written++;
}

/* Stops reading for good, keeping counters; the file is closed so that
 * what was written stays a valid pcap. */
static void fail(capture *c, const char *why)
{
    if (c->stopped)
        return;
    set_error(c, "capture on %s stopped: %s", c->ifname, why);
    c->k.failed = 1;
    c->stopped = 1;
    uv_poll_stop(&c->poll);
    uv_timer_stop(&c->timer);
    file_close(c);
}

static long drain(capture *c, long max)
{
    long total = 0;
    while (!c->stopped && (max < 0 || total < max)) {
        int n = pcap_dispatch(c->p, c->o.batch, on_packet, (u_char *)c);
        if (n < 0) {
            fail(c, pcap_geterr(c->p));
            return -1;
        }
        if (n == 0)
            break;
        total += n;
    }
    return total;
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    capture *c = h->data;
    (void)events;
    if (status < 0) {
        /* POLLERR: the socket reports an error (ENETDOWN when the bridge
         * is gone); read what is left, then stop. */
        drain(c, -1);
        fail(c, "the interface went down or disappeared");
        return;
    }
    drain(c, MAX_PER_WAKEUP);
}

static void on_timer(uv_timer_t *t)
{
    capture *c = t->data;
    drain(c, MAX_PER_WAKEUP);
    if (c->dump && c->file_packets &&
        uv_now(c->loop) - c->file_started_ms >= (uint64_t)c->o.rotate_seconds * 1000)
        rotate(c);
    if (c->dump && ferror(pcap_dump_file(c->dump))) {
        set_error(c, "writing %s: %s", c->k.file, "stream error");
        file_close(c);
    }
}

static void free_capture(capture *c)
{
    if (!c)
        return;
    if (c->p)
        pcap_close(c->p);
    free(c->ifname);
    free(c->dir);
    free(c->prefix);
    free(c->kept);
    free(c);
}

static int prefix_ok(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '_' || *s == '-'))
            return 0;
    return 1;
}

static int activate(capture *c, char *err, size_t errlen)
{
    char ebuf[PCAP_ERRBUF_SIZE] = "";
    struct bpf_program prog;

    c->p = pcap_create(c->ifname, ebuf);
    if (!c->p) {
        snprintf(err, errlen, "capture on %s: %s", c->ifname, ebuf);
        return -1;
    }
    if (pcap_set_snaplen(c->p, c->o.snaplen) != 0 || pcap_set_promisc(c->p, 1) != 0 ||
        pcap_set_timeout(c->p, c->o.timeout_ms) != 0 ||
        pcap_set_buffer_size(c->p, (int)c->o.buffer_bytes) != 0 ||
        pcap_set_immediate_mode(c->p, c->o.immediate ? 1 : 0) != 0) {
        snprintf(err, errlen, "capture on %s: cannot set options", c->ifname);
        return -1;
    }
    int rc = pcap_activate(c->p);
    if (rc < 0) {
        const char *detail = pcap_geterr(c->p);
        if (rc == PCAP_ERROR_NO_SUCH_DEVICE)
            snprintf(err, errlen, "capture on %s: no such interface", c->ifname);
        else if (rc == PCAP_ERROR_PERM_DENIED)
            snprintf(err, errlen, "capture on %s: permission denied (root or CAP_NET_RAW "
                     "needed)%s%s", c->ifname, *detail ? ": " : "", detail);
        else
            snprintf(err, errlen, "capture on %s: %s%s%s", c->ifname, pcap_statustostr(rc),
                     *detail ? ": " : "", detail);
        return -1;
    }
    if (c->o.ft && pcap_datalink(c->p) != DLT_EN10MB) {
        snprintf(err, errlen, "capture on %s: not an Ethernet device (link type %s)",
                 c->ifname, pcap_datalink_val_to_name(pcap_datalink(c->p)));
        return -1;
    }
    if (c->o.filter && *c->o.filter) {
        if (pcap_compile(c->p, &prog, c->o.filter, 1, PCAP_NETMASK_UNKNOWN) != 0) {
            snprintf(err, errlen, "capture on %s: bad filter \"%s\": %s", c->ifname,
                     c->o.filter, pcap_geterr(c->p));
            return -1;
        }
        rc = pcap_setfilter(c->p, &prog);
        pcap_freecode(&prog);
        if (rc != 0) {
            snprintf(err, errlen, "capture on %s: setting filter \"%s\": %s", c->ifname,
                     c->o.filter, pcap_geterr(c->p));
            return -1;
        }
    }
    if (pcap_setnonblock(c->p, 1, ebuf) != 0) {
        snprintf(err, errlen, "capture on %s: %s", c->ifname, ebuf);
        return -1;
    }
    c->fd = pcap_get_selectable_fd(c->p);
    if (c->fd < 0) {
        snprintf(err, errlen, "capture on %s: no selectable descriptor", c->ifname);
        return -1;
    }
    return 0;
}

capture *capture_open(uv_loop_t *loop, const capture_opts *o, char *err, size_t errlen)
{
    capture *c = NULL;

    if (!o->ifname || !*o->ifname) {
        snprintf(err, errlen, "capture: no interface name");
        return NULL;
    }
    if (o->segment >= FLOWS_MAX_SEGMENTS) {
        snprintf(err, errlen, "capture on %s: segment %u out of range 0..%d", o->ifname,
                 o->segment, FLOWS_MAX_SEGMENTS - 1);
        return NULL;
    }
    if (o->write && (!o->dir || !*o->dir || !o->prefix || !prefix_ok(o->prefix))) {
        snprintf(err, errlen, "capture on %s: writing needs a directory and a prefix of "
                 "letters, digits, '.', '_' or '-'", o->ifname);
        return NULL;
    }
    c = calloc(1, sizeof(*c));
    if (!c)
        goto nomem;
    c->loop = loop;
    c->fd = -1;
    c->o = *o;
    if (!c->o.snaplen)
        c->o.snaplen = DEF_SNAPLEN;
    if (!c->o.buffer_bytes)
        c->o.buffer_bytes = DEF_BUFFER;
    if (!c->o.timeout_ms)
        c->o.timeout_ms = DEF_TIMEOUT_MS;
    if (!c->o.rotate_bytes)
        c->o.rotate_bytes = DEF_ROTATE_BYTES;
    if (!c->o.rotate_seconds)
        c->o.rotate_seconds = DEF_ROTATE_SECONDS;
    if (!c->o.keep_files)
        c->o.keep_files = DEF_KEEP_FILES;
    if (!c->o.batch)
        c->o.batch = -1;
    if (!c->o.file_buffer)
        c->o.file_buffer = DEF_FILE_BUFFER;
    if (c->o.snaplen < 64 || c->o.timeout_ms < 0 || c->o.buffer_bytes > (size_t)1 << 30) {
        snprintf(err, errlen, "capture on %s: snaplen >= 64, timeout >= 0 and a buffer of "
                 "at most 1 GiB are needed", o->ifname);
        goto cleanup;
    }
    c->ifname = strdup(o->ifname);
    c->dir = strdup(o->dir ? o->dir : "");
    c->prefix = strdup(o->prefix ? o->prefix : "");
    c->kept = calloc(c->o.keep_files, sizeof(*c->kept));
    if (!c->ifname || !c->dir || !c->prefix || !c->kept)
        goto nomem;
    c->o.ifname = c->ifname;
    c->o.dir = c->dir;
    c->o.prefix = c->prefix;
    if (activate(c, err, errlen) != 0)
        goto cleanup;
    c->o.filter = NULL; /* compiled into the kernel; the string is not kept */
    if (c->o.write && file_open(c, err, errlen) != 0)
        goto cleanup;
    /* The poll handle first: it is the one whose init can fail, and
     * nothing needs closing then. */
    int rc = uv_poll_init(loop, &c->poll, c->fd);
    if (rc != 0) {
        snprintf(err, errlen, "capture on %s: polling: %s", c->ifname, uv_strerror(rc));
        goto cleanup;
    }
    uv_timer_init(loop, &c->timer);
    c->poll.data = c;
    c->timer.data = c;
    c->handles_open = 2;
    uv_poll_start(&c->poll, UV_READABLE, on_poll);
    uv_timer_start(&c->timer, on_timer, (uint64_t)c->o.timeout_ms,
                   (uint64_t)c->o.timeout_ms);
    return c;

nomem:
    snprintf(err, errlen, "capture on %s: out of memory", o->ifname);
cleanup:
    if (c && c->dump) {
        /* Opened but not started: the file is ours and empty. */
        char path[CAPTURE_PATH_MAX];
        snprintf(path, sizeof(path), "%s", c->k.file);
        file_close(c);
        unlink(path);
    }
    free_capture(c);
    return NULL;
}

void capture_stats(capture *c, capture_counters *out)
{
    struct pcap_stat st;
    /* libpcap on Linux sums the kernel's reset-on-read PACKET_STATISTICS,
     * so these are totals since activation. */
    if (!c->stopped && pcap_stats(c->p, &st) == 0) {
        c->k.kernel_received = st.ps_recv;
        c->k.kernel_drops = st.ps_drop;
        c->k.if_drops = st.ps_ifdrop;
    }
    *out = c->k;
}

long capture_drain(capture *c)
{
    if (c->stopped)
        return -1;
    long n = drain(c, -1);
    if (n >= 0 && c->dump && pcap_dump_flush(c->dump) != 0) {
        set_error(c, "writing %s: %s", c->k.file, strerror(errno));
        file_close(c);
    }
    return n;
}

static void on_closed(uv_handle_t *h)
{
    capture *c = h->data;
    if (--c->handles_open > 0)
        return;
    capture_close_cb cb = c->close_cb;
    void *opaque = c->close_opaque;
    free_capture(c);
    if (cb)
        cb(opaque);
}

void capture_close(capture *c, capture_close_cb cb, void *opaque)
{
    if (!c->stopped) {
        /* What the kernel has already handed over still counts. */
        drain(c, -1);
        c->stopped = 1;
    }
    file_close(c);
    c->close_cb = cb;
    c->close_opaque = opaque;
    uv_close((uv_handle_t *)&c->poll, on_closed);
    uv_close((uv_handle_t *)&c->timer, on_closed);
}

json_t *capture_counters_to_json(const capture_counters *k)
{
    return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:b,s:s?,s:s?}",
                     "packets", (json_int_t)k->packets, "bytes", (json_int_t)k->bytes,
                     "written", (json_int_t)k->written, "files", (json_int_t)k->files,
                     "kernel_received", (json_int_t)k->kernel_received,
                     "kernel_drops", (json_int_t)k->kernel_drops,
                     "if_drops", (json_int_t)k->if_drops, "errors", (json_int_t)k->errors,
                     "failed", k->failed, "file", k->file[0] ? k->file : NULL,
                     "error", k->error[0] ? k->error : NULL);
}
