/* pktgen — sends a bounded number of 60-byte UDP/IPv4 frames on one
 * interface as fast as it can, or at a target rate, for the capture
 * benchmark.  AF_PACKET with PACKET_QDISC_BYPASS and sendmmsg batches; the
 * source port cycles through --flows values so the frames make that many
 * distinct 5-tuples (198.18.200.1 -> 198.18.200.2, both in the range's
 * 198.18.0.0/15).  Prints the achieved rate.
 *
 *   pktgen -i IFACE [-n COUNT] [-t MAX_SECONDS] [-r KPPS] [-f FLOWS] [-b BATCH]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FRAME_LEN 60
#define MAX_COUNT 100000000L
#define MAX_SECONDS 300
#define MAX_FLOWS 65536
#define MAX_BATCH 1024

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void put16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* A UDP frame whose IPv4 packet fills the 60 bytes exactly (bridges with
 * br_netfilter trim frames to the IPv4 length and drop bad checksums). */
static void build(uint8_t *f, unsigned sport)
{
    memset(f, 0, FRAME_LEN);
    memcpy(f, "\x02\xcb\xbe\x00\x00\x01\x02\xcb\xbe\x00\x00\x02", 12);
    put16(f + 12, 0x0800);
    uint8_t *ip = f + 14;
    ip[0] = 0x45;
    put16(ip + 2, FRAME_LEN - 14);
    ip[8] = 64;
    ip[9] = 17;
    memcpy(ip + 12, "\xc6\x12\xc8\x01\xc6\x12\xc8\x02", 8);
    uint32_t sum = 0;
    for (int k = 0; k < 20; k += 2)
        sum += (uint32_t)ip[k] << 8 | ip[k + 1];
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    put16(ip + 10, ~sum & 0xffff);
    uint8_t *udp = ip + 20;
    put16(udp, sport);
    put16(udp + 2, 9);
    put16(udp + 4, FRAME_LEN - 14 - 20);
}

static void usage(void)
{
    fprintf(stderr, "usage: pktgen -i IFACE [-n COUNT] [-t MAX_SECONDS] [-r KPPS] "
                    "[-f FLOWS] [-b BATCH]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *ifname = NULL;
    long count = 5000000, flows = 1000, batch = 64;
    double max_s = 30, kpps = 0;
    int opt;

    while ((opt = getopt(argc, argv, "i:n:t:r:f:b:")) != -1) {
        switch (opt) {
        case 'i': ifname = optarg; break;
        case 'n': count = atol(optarg); break;
        case 't': max_s = atof(optarg); break;
        case 'r': kpps = atof(optarg); break;
        case 'f': flows = atol(optarg); break;
        case 'b': batch = atol(optarg); break;
        default: usage();
        }
    }
    if (!ifname || count < 1 || count > MAX_COUNT || max_s <= 0 || max_s > MAX_SECONDS ||
        kpps < 0 || flows < 1 || flows > MAX_FLOWS || batch < 1 || batch > MAX_BATCH)
        usage();

    int fd = socket(AF_PACKET, SOCK_RAW, 0);
    if (fd < 0) {
        perror("pktgen: socket (root needed)");
        return 1;
    }
    struct sockaddr_ll sll = {.sll_family = AF_PACKET,
                              .sll_ifindex = (int)if_nametoindex(ifname)};
    if (!sll.sll_ifindex || bind(fd, (struct sockaddr *)&sll, sizeof(sll)) != 0) {
        fprintf(stderr, "pktgen: %s: %s\n", ifname, strerror(errno));
        return 1;
    }
    int one = 1;
    /* Straight to the driver: the frames are the load, not the qdisc. */
    setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one));

    uint8_t *frames = malloc((size_t)flows * FRAME_LEN);
    struct mmsghdr *msgs = calloc((size_t)batch, sizeof(*msgs));
    struct iovec *iov = calloc((size_t)batch, sizeof(*iov));
    if (!frames || !msgs || !iov) {
        fprintf(stderr, "pktgen: out of memory\n");
        return 1;
    }
    for (long i = 0; i < flows; i++)
        build(frames + i * FRAME_LEN, (unsigned)(10000 + i));

    long sent = 0, retries = 0, next_flow = 0;
    double t0 = now_s(), deadline = t0 + max_s, t = t0;
    while (sent < count && t < deadline) {
        long n = count - sent < batch ? count - sent : batch;
        for (long k = 0; k < n; k++) {
            iov[k].iov_base = frames + next_flow * FRAME_LEN;
            iov[k].iov_len = FRAME_LEN;
            msgs[k].msg_hdr.msg_iov = &iov[k];
            msgs[k].msg_hdr.msg_iovlen = 1;
            next_flow = next_flow + 1 == flows ? 0 : next_flow + 1;
        }
        int r = sendmmsg(fd, msgs, (unsigned)n, 0);
        if (r < 0) {
            if (errno != ENOBUFS && errno != EAGAIN && errno != EINTR) {
                perror("pktgen: sendmmsg");
                return 1;
            }
            retries++;
            r = 0;
        }
        /* Frames not sent are sent next round with the same flows. */
        next_flow = ((next_flow - (n - r)) % flows + flows) % flows;
        sent += r;
        t = now_s();
        if (kpps > 0) {
            /* Token bucket: never ahead of rate * elapsed. */
            double due = t0 + (double)sent / (kpps * 1000);
            while (t < due && t < deadline) {
                if (due - t > 0.0002) {
                    struct timespec ts = {0, (long)((due - t - 0.0001) * 1e9)};
                    nanosleep(&ts, NULL);
                }
                t = now_s();
            }
        }
    }
    double el = now_s() - t0;
    printf("pktgen: sent %ld frames of %d bytes in %.3f s: %.1f kpps (%ld flows, %ld "
           "busy retries)\n", sent, FRAME_LEN, el, (double)sent / el / 1000, flows, retries);
    free(frames);
    free(msgs);
    free(iov);
    close(fd);
    return sent == count ? 0 : 3;
}
