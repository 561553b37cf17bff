/* capture — one packet capture per Linux bridge device, on a libuv loop.
 *
 * The only module that includes <pcap.h>.  A capture opens the bridge in
 * promiscuous mode (a Linux bridge passes forwarded frames up to its own
 * packet taps only when IFF_PROMISC is set on it) through libpcap's
 * TPACKET_V3 memory-mapped ring, feeds every frame to a flow table, counts
 * it and, when asked, writes it into rotating pcap files named
 * <dir>/<prefix>-YYYYmmddTHHMMSSZ-<seq>.pcap.
 *
 * The ring is read when its descriptor turns readable (a block is full or
 * its timeout_ms block timeout retired it) and on a timer of the same
 * period, so frames reach the flow table at most about timeout_ms after
 * they were captured.  When the interface goes away (a team's range is torn
 * down) the capture stops, keeps its counters and reports failed.
 */
#ifndef CYRANGE_CAPTURE_H
#define CYRANGE_CAPTURE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "flows.h"

#define CAPTURE_PATH_MAX 512

typedef struct capture capture;

/* Zero means "the default" for every number. */
typedef struct capture_opts {
    const char *ifname;     /* the bridge, required */
    unsigned segment;       /* the segment number given to flows_add_frame */
    flows *ft;              /* borrowed, may be NULL; must outlive the capture */
    int write;              /* 1: write pcap files; 0: count and flow only */
    const char *dir;        /* where the files go (exists), required with write */
    const char *prefix;     /* file name prefix ([A-Za-z0-9._-]), required with write */
    int snaplen;            /* default 65535 */
    size_t buffer_bytes;    /* kernel ring, default 32 MiB */
    int timeout_ms;         /* TPACKET_V3 block timeout and drain period, default 100 */
    int immediate;          /* immediate mode (TPACKET_V2, a wakeup per packet); default off */
    const char *filter;     /* BPF filter expression, NULL or "" for none */
    uint64_t rotate_bytes;  /* start a new file past this size, default 64 MiB */
    unsigned rotate_seconds; /* ... or once a file is this old, default 600 */
    unsigned keep_files;    /* keep at most this many of our files, default 20 */
    int batch;              /* packets per pcap_dispatch call, default -1 (a whole ring pass) */
    size_t file_buffer;     /* stdio buffer of the pcap file, default 16 KiB */
} capture_opts;

typedef struct capture_counters {
    uint64_t packets;       /* frames read from the ring */
    uint64_t bytes;         /* their wire lengths */
    uint64_t written;       /* frames written to pcap files */
    uint64_t files;         /* pcap files opened */
    uint64_t kernel_received; /* pcap_stats ps_recv: frames the socket accepted */
    uint64_t kernel_drops;  /* pcap_stats ps_drop: lost because the ring was full */
    uint64_t if_drops;      /* pcap_stats ps_ifdrop: the interface's own drops since open */
    uint64_t errors;        /* write and read errors */
    int failed;             /* 1: the capture stopped (interface gone, read error) */
    char file[CAPTURE_PATH_MAX]; /* the file being written, "" when none */
    char error[256];        /* the last error, "" when none */
} capture_counters;

/* Opens and starts a capture on loop.  NULL with err on failure (no such
 * interface, no permission, bad filter, unwritable dir, ...); nothing is
 * left on the loop then. */
capture *capture_open(uv_loop_t *loop, const capture_opts *o, char *err, size_t errlen);

/* Copies the counters, with fresh kernel statistics (cumulative since the
 * capture opened; the last known values once it failed). */
void capture_stats(capture *c, capture_counters *out);

/* Reads every frame the kernel has handed over so far (it hands a block
 * over when it is full or timeout_ms after its first frame) into the flow
 * table and the file, and flushes the file.  Returns the number of frames
 * read, or -1 when the capture has failed. */
long capture_drain(capture *c);

typedef void (*capture_close_cb)(void *opaque);
/* Stops reading, closes the current file (flushed, a valid pcap), then,
 * once libuv has closed the handles, closes pcap, frees c and calls cb
 * (may be NULL).  c must not be used after this call. */
void capture_close(capture *c, capture_close_cb cb, void *opaque);

/* The counters as an object (new reference). */
json_t *capture_counters_to_json(const capture_counters *k);

#endif
