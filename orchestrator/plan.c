#include "plan.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "units.h"

static uint32_t fnv1a(const char *s, uint32_t h)
{
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h;
}

int plan_exercise_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 24 || !islower((unsigned char)name[0]) || name[n - 1] == '-')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!islower((unsigned char)name[i]) && !isdigit((unsigned char)name[i]) &&
            name[i] != '-')
            return 0;
    return 1;
}

void plan_free(plan *p)
{
    if (p == NULL)
        return;
    for (int t = 0; p->teams && t < p->n_teams; t++) {
        plan_team *tm = &p->teams[t];
        for (size_t i = 0; tm->nets && i < p->scn->n_segments; i++) {
            free(tm->nets[i].name);
            free(tm->nets[i].bridge);
        }
        free(tm->nets);
        for (size_t i = 0; tm->hosts && i < p->scn->n_hosts; i++) {
            free(tm->hosts[i].domain);
            free(tm->hosts[i].nics);
        }
        free(tm->hosts);
        free(tm->name);
    }
    free(p->teams);
    free(p->exercise);
    free(p);
}

/* MACs are derived from names so that a re-created range gets the same
 * ones; the rare collision is resolved by re-hashing with a salt.  A small
 * open-addressing set keeps the check linear in the number of NICs. */
typedef struct mac_set {
    uint32_t *slots;       /* 24-bit MAC suffix + 1; 0 = empty */
    size_t cap;
} mac_set;

static int mac_set_add(mac_set *m, uint32_t v)
{
    size_t i = (v * 2654435761u) & (m->cap - 1);
    while (m->slots[i] != 0) {
        if (m->slots[i] == v + 1)
            return 0;
        i = (i + 1) & (m->cap - 1);
    }
    m->slots[i] = v + 1;
    return 1;
}

plan *plan_build(const scenario *s, const char *exercise, int teams,
                 char *err, size_t errlen)
{
    plan *p = NULL;
    const char *ex = exercise ? exercise : s->id;
    mac_set macs = { NULL, 0 };

    if (!plan_exercise_name_ok(ex)) {
        snprintf(err, errlen, "malformed exercise name '%s': expected 1-24 "
                 "characters a-z, 0-9 and '-', starting with a letter", ex);
        return NULL;
    }
    if (teams < 1 || teams > SCENARIO_MAX_TEAMS) {
        snprintf(err, errlen, "team count must be between 1 and %d, got %d",
                 SCENARIO_MAX_TEAMS, teams);
        return NULL;
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        goto oom;
    p->scn = s;
    p->exercise = strdup(ex);
    p->teams = calloc((size_t)teams, sizeof(*p->teams));
    if (p->exercise == NULL || p->teams == NULL)
        goto oom;
    p->n_teams = teams;
    uint32_t exh = fnv1a(ex, 2166136261u);
    size_t nics = 0;
    for (size_t h = 0; h < s->n_hosts; h++)
        nics += s->hosts[h].n_nics;
    nics *= (size_t)teams;
    macs.cap = 64;
    while (macs.cap < nics * 2)
        macs.cap *= 2;
    macs.slots = calloc(macs.cap, sizeof(*macs.slots));
    if (macs.slots == NULL)
        goto oom;
    for (int t = 0; t < teams; t++) {
        plan_team *tm = &p->teams[t];
        tm->num = t + 1;
        snprintf(tm->tag, sizeof(tm->tag), "t%02d", t + 1);
        tm->name = scenario_team_name(s, t + 1);
        tm->nets = calloc(s->n_segments, sizeof(*tm->nets));
        tm->hosts = calloc(s->n_hosts, sizeof(*tm->hosts));
        if (tm->name == NULL || tm->nets == NULL || tm->hosts == NULL)
            goto oom;
        for (size_t i = 0; i < s->n_segments; i++) {
            plan_net *n = &tm->nets[i];
            n->segment = (int)i;
            if (asprintf(&n->name, "%s-%s-%s", ex, tm->tag, s->segments[i].name) < 0) {
                n->name = NULL;
                goto oom;
            }
            /* "cy" + 6 hex of the exercise + team + segment: within
             * IFNAMSIZ and recognisable in `ip link`.  libvirt refuses a
             * bridge name another network uses, so the rare clash between
             * two exercises fails `up` cleanly instead of merging LANs. */
            if (asprintf(&n->bridge, "cy%06xt%02dn%zu", exh & 0xffffff, t + 1, i) < 0) {
                n->bridge = NULL;
                goto oom;
            }
        }
        for (size_t h = 0; h < s->n_hosts; h++) {
            plan_host *ph = &tm->hosts[h];
            const scn_host *sh = &s->hosts[h];
            ph->host = (int)h;
            if (asprintf(&ph->domain, "%s-%s-%s", ex, tm->tag, sh->name) < 0) {
                ph->domain = NULL;
                goto oom;
            }
            ph->nics = calloc(sh->n_nics ? sh->n_nics : 1, sizeof(*ph->nics));
            if (ph->nics == NULL)
                goto oom;
            for (size_t k = 0; k < sh->n_nics; k++) {
                plan_nic *nic = &ph->nics[k];
                char seed[160];
                uint32_t salt = 0;
                nic->segment = sh->nics[k].segment;
                snprintf(nic->ifname, sizeof(nic->ifname), "eth%u", (unsigned)(k & 7));
                uint32_t m;
                do {
                    snprintf(seed, sizeof(seed), "%s/%d/%s/%zu/%u", ex, t + 1,
                             sh->name, k, salt++);
                    m = fnv1a(seed, 2166136261u) & 0xffffff;
                } while (!mac_set_add(&macs, m) && salt < 100000);
                snprintf(nic->mac, sizeof(nic->mac), "52:54:00:%02x:%02x:%02x",
                         (m >> 16) & 255, (m >> 8) & 255, m & 255);
            }
        }
    }
    free(macs.slots);
    return p;
oom:
    snprintf(err, errlen, "out of memory");
    free(macs.slots);
    plan_free(p);
    return NULL;
}

static json_t *nic_json(const plan *p, const plan_team *tm, const scn_host *sh,
                        const plan_host *ph, size_t k)
{
    const scn_nic *n = &sh->nics[k];
    const scn_segment *g = &p->scn->segments[n->segment];
    char ab[20];
    json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "ifname", ph->nics[k].ifname,
                          "mac", ph->nics[k].mac, "segment", g->name,
                          "network", tm->nets[n->segment].name);
    if (o == NULL)
        return NULL;
    if (n->dhcp) {
        json_object_set_new(o, "address", json_string("dhcp"));
    } else {
        char cidr[24];
        snprintf(cidr, sizeof(cidr), "%s/%d", addr_format(n->addr, ab, sizeof(ab)),
                 g->prefix);
        json_object_set_new(o, "address", json_string(cidr));
    }
    return o;
}

json_t *plan_to_json(const plan *p)
{
    const scenario *s = p->scn;
    char buf[64];
    json_t *root = json_object(), *teams = json_array(), *tl = json_array();

    if (root == NULL || teams == NULL || tl == NULL)
        goto oom;
    json_object_set_new(root, "exercise", json_string(p->exercise));
    json_object_set_new(root, "scenario", json_string(s->id));
    json_object_set_new(root, "title", json_string(s->title));
    json_object_set_new(root, "level", json_string(s->level));
    json_object_set_new(root, "duration_s", json_integer(s->duration_ms / 1000));
    json_object_set_new(root, "speed", json_real(s->speed));
    json_object_set_new(root, "wall_duration_s",
                        json_integer((json_int_t)((double)s->duration_ms / s->speed / 1000)));
    for (int t = 0; t < p->n_teams; t++) {
        const plan_team *tm = &p->teams[t];
        json_t *to = json_object(), *nets = json_array(), *hosts = json_array();
        if (to == NULL || nets == NULL || hosts == NULL) {
            json_decref(to);
            json_decref(nets);
            json_decref(hosts);
            goto oom;
        }
        json_object_set_new(to, "team", json_integer(tm->num));
        json_object_set_new(to, "tag", json_string(tm->tag));
        json_object_set_new(to, "name", json_string(tm->name));
        for (size_t i = 0; i < s->n_segments; i++) {
            const scn_segment *g = &s->segments[i];
            char cidr[24];
            snprintf(cidr, sizeof(cidr), "%s/%d", addr_format(g->net, buf, sizeof(buf)),
                     g->prefix);
            json_t *no = json_pack("{s:s, s:s, s:s, s:s, s:s}", "segment", g->name,
                                   "network", tm->nets[i].name, "bridge",
                                   tm->nets[i].bridge, "cidr", cidr, "role", g->role);
            if (no && g->dhcp_host >= 0) {
                char a[20], b[20];
                json_object_set_new(no, "dhcp", json_pack("{s:s, s:[s,s]}", "server",
                    s->hosts[g->dhcp_host].name,
                    "range", addr_format(g->dhcp_first, a, sizeof(a)),
                    addr_format(g->dhcp_last, b, sizeof(b))));
            }
            json_array_append_new(nets, no);
        }
        for (size_t h = 0; h < s->n_hosts; h++) {
            const scn_host *sh = &s->hosts[h];
            const plan_host *ph = &tm->hosts[h];
            json_t *nics = json_array();
            for (size_t k = 0; k < sh->n_nics; k++)
                json_array_append_new(nics, nic_json(p, tm, sh, ph, k));
            json_t *ho = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:o}",
                                   "host", sh->name, "domain", ph->domain,
                                   "role", sh->role,
                                   "image_kind", sh->image_kind == SCN_IMAGE_DISK
                                                     ? "disk" : "role",
                                   "image", sh->image, "vcpus", sh->vcpus,
                                   "memory_mib", sh->memory_mib, "nics", nics);
            if (ho && sh->gateway)
                json_object_set_new(ho, "gateway",
                                    json_string(addr_format(sh->gateway, buf, sizeof(buf))));
            json_array_append_new(hosts, ho);
        }
        json_object_set_new(to, "networks", nets);
        json_object_set_new(to, "hosts", hosts);
        json_array_append_new(teams, to);
    }
    for (size_t i = 0; i < s->n_steps; i++) {
        const scn_step *st = &s->steps[i];
        json_t *so = json_pack("{s:s, s:s}", "id", st->id, "action", st->action);
        if (so == NULL)
            goto oom;
        if (st->offset_ms >= 0) {
            json_object_set_new(so, "offset_s", json_real((double)st->offset_ms / 1000));
            json_object_set_new(so, "wall_offset_s",
                                json_real((double)st->offset_ms / s->speed / 1000));
        } else {
            json_object_set_new(so, "on_demand", json_true());
        }
        if (st->jitter_ms)
            json_object_set_new(so, "jitter_s", json_real((double)st->jitter_ms / 1000));
        if (st->actor >= 0)
            json_object_set_new(so, "actor", json_string(s->hosts[st->actor].name));
        if (st->target >= 0)
            json_object_set_new(so, "target", json_string(s->hosts[st->target].name));
        if (st->technique)
            json_object_set_new(so, "technique", json_string(st->technique));
        json_object_set_new(so, "visibility", json_string(st->visibility));
        if (st->after >= 0)
            json_object_set_new(so, "after", json_string(s->steps[st->after].id));
        if (st->when)
            json_object_set_new(so, "when", json_incref(st->when));
        json_array_append_new(tl, so);
    }
    json_object_set_new(root, "teams", teams);
    json_object_set_new(root, "timeline", tl);
    return root;
oom:
    json_decref(root);
    json_decref(teams);
    json_decref(tl);
    return NULL;
}

/* Steps sorted by offset (on-demand last), ties in file order. */
static const scenario *sort_scn;
static int step_cmp(const void *a, const void *b)
{
    const scn_step *x = &sort_scn->steps[*(const size_t *)a];
    const scn_step *y = &sort_scn->steps[*(const size_t *)b];
    int64_t ox = x->offset_ms < 0 ? INT64_MAX : x->offset_ms;
    int64_t oy = y->offset_ms < 0 ? INT64_MAX : y->offset_ms;
    if (ox != oy)
        return ox < oy ? -1 : 1;
    return *(const size_t *)a < *(const size_t *)b ? -1 : 1;
}

int plan_write_text(const plan *p, FILE *out)
{
    const scenario *s = p->scn;
    char d1[32], d2[32], ab[20];
    size_t *order = NULL;

    units_duration_format(s->duration_ms, d1, sizeof(d1));
    units_duration_format((int64_t)((double)s->duration_ms / s->speed), d2, sizeof(d2));
    fprintf(out, "exercise %s: scenario %s \"%s\"\n", p->exercise, s->id, s->title);
    fprintf(out, "level %s, duration %s, speed x%g (%s wall clock), %d team%s\n",
            s->level, d1, s->speed, d2, p->n_teams, p->n_teams == 1 ? "" : "s");
    for (int t = 0; t < p->n_teams; t++) {
        const plan_team *tm = &p->teams[t];
        fprintf(out, "\nteam %s \"%s\"\n  networks (L2 only: no host address, no "
                "forward, no NAT):\n", tm->tag, tm->name);
        for (size_t i = 0; i < s->n_segments; i++) {
            const scn_segment *g = &s->segments[i];
            char cidr[24];
            snprintf(cidr, sizeof(cidr), "%s/%d", addr_format(g->net, ab, sizeof(ab)),
                     g->prefix);
            fprintf(out, "    %-32s bridge %-14s %-18s %s", tm->nets[i].name,
                    tm->nets[i].bridge, cidr, g->role);
            if (g->dhcp_host >= 0) {
                char a[20], b[20];
                fprintf(out, ", DHCP by %s %s-%s", s->hosts[g->dhcp_host].name,
                        addr_format(g->dhcp_first, a, sizeof(a)),
                        addr_format(g->dhcp_last, b, sizeof(b)));
            }
            fputc('\n', out);
        }
        fprintf(out, "  hosts:\n");
        for (size_t h = 0; h < s->n_hosts; h++) {
            const scn_host *sh = &s->hosts[h];
            const plan_host *ph = &tm->hosts[h];
            fprintf(out, "    %-32s %-11s %s%s, %d vCPU, %d MiB\n", ph->domain,
                    sh->role, sh->image_kind == SCN_IMAGE_DISK ? "disk " : "image ",
                    sh->image, sh->vcpus, sh->memory_mib);
            for (size_t k = 0; k < sh->n_nics; k++) {
                const scn_nic *n = &sh->nics[k];
                const scn_segment *g = &s->segments[n->segment];
                char addr[24];
                if (n->dhcp)
                    snprintf(addr, sizeof(addr), "dhcp");
                else
                    snprintf(addr, sizeof(addr), "%s/%d",
                             addr_format(n->addr, ab, sizeof(ab)), g->prefix);
                fprintf(out, "      %-5s %s  %-12s %s\n", ph->nics[k].ifname,
                        ph->nics[k].mac, g->name, addr);
            }
        }
    }
    fprintf(out, "\ntimeline (every team runs it on its own clock; wall = nominal / "
            "speed):\n");
    if (s->n_steps == 0)
        fprintf(out, "  (no steps)\n");
    order = malloc((s->n_steps ? s->n_steps : 1) * sizeof(*order));
    if (order == NULL)
        return -1;
    for (size_t i = 0; i < s->n_steps; i++)
        order[i] = i;
    sort_scn = s;
    qsort(order, s->n_steps, sizeof(*order), step_cmp);
    for (size_t n = 0; n < s->n_steps; n++) {
        const scn_step *st = &s->steps[order[n]];
        char c1[32], c2[32], jit[40] = "";
        if (st->offset_ms >= 0) {
            units_clock_format(st->offset_ms, c1, sizeof(c1));
            units_clock_format((int64_t)((double)st->offset_ms / s->speed), c2,
                               sizeof(c2));
        } else {
            snprintf(c1, sizeof(c1), "on demand");
            snprintf(c2, sizeof(c2), "-");
        }
        if (st->jitter_ms) {
            char j[32];
            units_duration_format(st->jitter_ms, j, sizeof(j));
            snprintf(jit, sizeof(jit), " (+0..%s)", j);
        }
        fprintf(out, "  %-10s wall %-10s %-22s %-20s", c1, c2, st->id, st->action);
        if (st->actor >= 0)
            fprintf(out, " %s", s->hosts[st->actor].name);
        if (st->target >= 0)
            fprintf(out, " -> %s", s->hosts[st->target].name);
        if (st->technique)
            fprintf(out, " [%s]", st->technique);
        fprintf(out, "%s", jit);
        if (st->when)
            fprintf(out, " (conditional)");
        fputc('\n', out);
    }
    free(order);
    return ferror(out) ? -1 : 0;
}
