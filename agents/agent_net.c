/* agent_net: interfaces, IPv4 addresses and the default route, through
 * getifaddrs, ioctl and rtnetlink (no iproute2 needed in the image). */
#include "agent.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <linux/if_packet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static int prefix_of(const struct sockaddr *mask)
{
    uint32_t m;
    int p = 0;

    if (mask == NULL || mask->sa_family != AF_INET)
        return 32;
    m = ntohl(((const struct sockaddr_in *)mask)->sin_addr.s_addr);
    while (m & 0x80000000u) {
        p++;
        m <<= 1;
    }
    return p;
}

static agent_net_if *find_or_add(agent_net_if **ifs, size_t *n, size_t *cap,
                                 const char *name)
{
    size_t i;

    for (i = 0; i < *n; i++)
        if (strcmp((*ifs)[i].name, name) == 0)
            return &(*ifs)[i];
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        agent_net_if *nifs = realloc(*ifs, ncap * sizeof(*nifs));
        if (nifs == NULL)
            return NULL;
        *ifs = nifs;
        *cap = ncap;
    }
    memset(&(*ifs)[*n], 0, sizeof(**ifs));
    snprintf((*ifs)[*n].name, sizeof((*ifs)[*n].name), "%s", name);
    return &(*ifs)[(*n)++];
}

static int cmp_index(const void *x, const void *y)
{
    const agent_net_if *a = x, *b = y;

    return (a->index > b->index) - (a->index < b->index);
}

int agent_net_list(agent_net_if **out, size_t *n, char *err, size_t errlen)
{
    struct ifaddrs *ifa = NULL, *p = NULL;
    agent_net_if *ifs = NULL, *f = NULL;
    size_t cnt = 0, cap = 0;

    *out = NULL;
    *n = 0;
    if (getifaddrs(&ifa) < 0) {
        snprintf(err, errlen, "getifaddrs: %s", strerror(errno));
        return -1;
    }
    for (p = ifa; p != NULL; p = p->ifa_next) {
        f = find_or_add(&ifs, &cnt, &cap, p->ifa_name);
        if (f == NULL) {
            snprintf(err, errlen, "out of memory");
            free(ifs);
            freeifaddrs(ifa);
            return -1;
        }
        f->up = (p->ifa_flags & IFF_UP) != 0;
        f->loopback = (p->ifa_flags & IFF_LOOPBACK) != 0;
        if (p->ifa_addr == NULL)
            continue;
        if (p->ifa_addr->sa_family == AF_PACKET) {
            const struct sockaddr_ll *ll = (const void *)p->ifa_addr;
            f->index = ll->sll_ifindex;
            if (ll->sll_halen == 6)
                snprintf(f->mac, sizeof(f->mac),
                         "%02x:%02x:%02x:%02x:%02x:%02x", ll->sll_addr[0],
                         ll->sll_addr[1], ll->sll_addr[2], ll->sll_addr[3],
                         ll->sll_addr[4], ll->sll_addr[5]);
        } else if (p->ifa_addr->sa_family == AF_INET &&
                   f->naddrs < sizeof(f->addrs) / sizeof(f->addrs[0])) {
            agent_net_addr *ad = &f->addrs[f->naddrs++];
            char buf[INET_ADDRSTRLEN];
            ad->addr = ((const struct sockaddr_in *)p->ifa_addr)->sin_addr;
            ad->prefix = prefix_of(p->ifa_netmask);
            inet_ntop(AF_INET, &ad->addr, buf, sizeof(buf));
            snprintf(ad->str, sizeof(ad->str), "%s/%d", buf, ad->prefix);
        }
    }
    freeifaddrs(ifa);
    for (size_t i = 0; i < cnt; i++)
        if (ifs[i].index == 0)
            ifs[i].index = (int)if_nametoindex(ifs[i].name);
    if (cnt > 1)
        qsort(ifs, cnt, sizeof(*ifs), cmp_index);
    *out = ifs;
    *n = cnt;
    return 0;
}

int agent_net_link_up(const char *ifname, char *err, size_t errlen)
{
    struct ifreq ifr;
    int fd, rc = -1;

    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) {
        snprintf(err, errlen, "%s: get flags: %s", ifname, strerror(errno));
        goto cleanup;
    }
    if (!(ifr.ifr_flags & IFF_UP)) {
        ifr.ifr_flags |= IFF_UP;
        if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0) {
            snprintf(err, errlen, "%s: set up: %s", ifname, strerror(errno));
            goto cleanup;
        }
    }
    rc = 0;

cleanup:
    close(fd);
    return rc;
}

/* One rtnetlink request with its acknowledgement. */
struct nl_req {
    struct nlmsghdr nh;
    union {
        struct ifaddrmsg ifa;
        struct rtmsg rt;
    } u;
    char attrs[256];
};

static void nl_attr(struct nl_req *r, unsigned short type, const void *data,
                    size_t len)
{
    struct rtattr *rta = (struct rtattr *)((char *)r + NLMSG_ALIGN(
                                                           r->nh.nlmsg_len));

    rta->rta_type = type;
    rta->rta_len = (unsigned short)RTA_LENGTH(len);
    memcpy(RTA_DATA(rta), data, len);
    r->nh.nlmsg_len = NLMSG_ALIGN(r->nh.nlmsg_len) + RTA_ALIGN(rta->rta_len);
}

static int nl_talk(struct nl_req *r, char *err, size_t errlen)
{
    struct sockaddr_nl sa;
    struct timeval tv = {.tv_sec = 2, .tv_usec = 0};
    char buf[4096];
    int fd, rc = -1;
    ssize_t n;

    fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) {
        snprintf(err, errlen, "netlink socket: %s", strerror(errno));
        return -1;
    }
    /* The kernel answers at once; the timeout only guards the loop. */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    memset(&sa, 0, sizeof(sa));
    sa.nl_family = AF_NETLINK;
    r->nh.nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
    r->nh.nlmsg_seq = 1;
    if (sendto(fd, r, r->nh.nlmsg_len, 0, (struct sockaddr *)&sa,
               sizeof(sa)) < 0) {
        snprintf(err, errlen, "netlink send: %s", strerror(errno));
        goto cleanup;
    }
    for (;;) {
        struct nlmsghdr *h = NULL;
        n = recv(fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(err, errlen, "netlink recv: %s",
                     n < 0 ? strerror(errno) : "closed");
            goto cleanup;
        }
        for (h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n);
             h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_type == NLMSG_ERROR) {
                const struct nlmsgerr *e = NLMSG_DATA(h);
                if (e->error == 0) {
                    rc = 0;
                } else {
                    snprintf(err, errlen, "%s", strerror(-e->error));
                }
                goto cleanup;
            }
        }
    }

cleanup:
    close(fd);
    return rc;
}

static int addr_msg(int type, int flags, int ifindex, struct in_addr addr,
                    int prefix, char *err, size_t errlen)
{
    struct nl_req r;

    memset(&r, 0, sizeof(r));
    r.nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg));
    r.nh.nlmsg_type = (unsigned short)type;
    r.nh.nlmsg_flags = (unsigned short)flags;
    r.u.ifa.ifa_family = AF_INET;
    r.u.ifa.ifa_prefixlen = (unsigned char)prefix;
    r.u.ifa.ifa_scope = RT_SCOPE_UNIVERSE;
    r.u.ifa.ifa_index = (unsigned)ifindex;
    nl_attr(&r, IFA_LOCAL, &addr, sizeof(addr));
    nl_attr(&r, IFA_ADDRESS, &addr, sizeof(addr));
    if (type == RTM_NEWADDR && prefix < 31) {
        /* Set the broadcast address the way `ip addr add ... brd +` does. */
        struct in_addr brd;
        uint32_t mask = prefix ? 0xFFFFFFFFu << (32 - prefix) : 0;
        brd.s_addr = htonl(ntohl(addr.s_addr) | ~mask);
        nl_attr(&r, IFA_BROADCAST, &brd, sizeof(brd));
    }
    return nl_talk(&r, err, errlen);
}

int agent_net_addr_add(int ifindex, struct in_addr addr, int prefix,
                       char *err, size_t errlen)
{
    /* REPLACE makes a second identical config a no-op. */
    return addr_msg(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, ifindex, addr,
                    prefix, err, errlen);
}

int agent_net_addr_del(int ifindex, struct in_addr addr, int prefix,
                       char *err, size_t errlen)
{
    return addr_msg(RTM_DELADDR, 0, ifindex, addr, prefix, err, errlen);
}

int agent_net_default_route(struct in_addr gw, char *err, size_t errlen)
{
    struct nl_req r;

    memset(&r, 0, sizeof(r));
    r.nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct rtmsg));
    r.nh.nlmsg_type = RTM_NEWROUTE;
    r.nh.nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE;
    r.u.rt.rtm_family = AF_INET;
    r.u.rt.rtm_dst_len = 0;
    r.u.rt.rtm_table = RT_TABLE_MAIN;
    r.u.rt.rtm_protocol = RTPROT_BOOT;
    r.u.rt.rtm_scope = RT_SCOPE_UNIVERSE;
    r.u.rt.rtm_type = RTN_UNICAST;
    nl_attr(&r, RTA_GATEWAY, &gw, sizeof(gw));
    return nl_talk(&r, err, errlen);
}
