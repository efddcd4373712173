/* DHCP host entries for VMs in a libvirt network (see vm_network.h).
 *
 * No XML library is linked (domain_xml.c writes XML the same way): libvirt's
 * own network and domain XML is read with a small tag scanner that knows
 * start, end and empty tags, attributes in either quote style and the five
 * predefined entities, and skips comments, declarations and text.  What it
 * reads comes from libvirt, not from users; still, every value is bounded and
 * anything malformed ends the scan. */
#include <config.h>
#include "vm_network.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <libvirt/virterror.h>

#define ATTR_MAX 256
#define NET_IPS_MAX 32

/* ---- a tag scanner ---------------------------------------------------------- */

struct tag {
    const char *name;
    size_t name_len;
    bool end;           /* </name> */
    bool empty;         /* <name .../> */
    const char *attrs, *attrs_end;
};

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The next element tag at or after *p; false at the end or on anything
 * malformed. */
static bool next_tag(const char **p, struct tag *t)
{
    const char *s = *p;
    for (;;) {
        s = strchr(s, '<');
        if (!s)
            return false;
        if (!strncmp(s, "<!--", 4)) {
            s = strstr(s + 4, "-->");
            if (!s)
                return false;
            s += 3;
            continue;
        }
        if (s[1] == '?' || s[1] == '!') {
            s = strchr(s, '>');
            if (!s)
                return false;
            continue;
        }
        break;
    }
    memset(t, 0, sizeof *t);
    s++;
    if (*s == '/') {
        t->end = true;
        s++;
    }
    t->name = s;
    while (*s && !is_space(*s) && *s != '>' && *s != '/')
        s++;
    t->name_len = (size_t)(s - t->name);
    if (!t->name_len)
        return false;
    t->attrs = s;
    /* '>' cannot appear unescaped inside libvirt's attribute values. */
    const char *gt = strchr(s, '>');
    if (!gt)
        return false;
    t->empty = gt > s && gt[-1] == '/';
    t->attrs_end = t->empty ? gt - 1 : gt;
    *p = gt + 1;
    return true;
}

static bool tag_is(const struct tag *t, const char *name)
{
    return t->name_len == strlen(name) && !strncmp(t->name, name, t->name_len);
}

/* The value of attribute `key`, entities replaced, into out; false when it is
 * absent, malformed or does not fit. */
static bool attr(const struct tag *t, const char *key, char *out, size_t len)
{
    static const struct { const char *ent; char c; } ents[] = {
        {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&apos;", '\''}, {"&quot;", '"'},
    };
    size_t klen = strlen(key);
    const char *a = t->attrs;
    while (a < t->attrs_end) {
        while (a < t->attrs_end && is_space(*a))
            a++;
        const char *n = a;
        while (a < t->attrs_end && *a != '=' && !is_space(*a))
            a++;
        size_t nlen = (size_t)(a - n);
        while (a < t->attrs_end && is_space(*a))
            a++;
        if (nlen == 0 || a >= t->attrs_end || *a != '=')
            return false;
        a++;
        while (a < t->attrs_end && is_space(*a))
            a++;
        if (a >= t->attrs_end || (*a != '\'' && *a != '"'))
            return false;
        char q = *a++;
        const char *v = a;
        while (a < t->attrs_end && *a != q)
            a++;
        if (a >= t->attrs_end)
            return false;
        const char *vend = a++;
        if (nlen != klen || strncmp(n, key, klen))
            continue;
        size_t o = 0;
        for (const char *c = v; c < vend; c++) {
            char ch = *c;
            if (ch == '&') {
                size_t k = 0;
                for (; k < sizeof ents / sizeof ents[0]; k++) {
                    size_t el = strlen(ents[k].ent);
                    if ((size_t)(vend - c) >= el && !strncmp(c, ents[k].ent, el)) {
                        ch = ents[k].c;
                        c += el - 1;
                        break;
                    }
                }
                if (k == sizeof ents / sizeof ents[0])
                    return false;   /* a character reference: never in our values */
            }
            if (o + 1 >= len)
                return false;
            out[o++] = ch;
        }
        out[o] = '\0';
        return true;
    }
    return false;
}

/* ---- the domain's interfaces -------------------------------------------------- */

size_t vf_vm_network_nics(const char *xml, struct vf_vm_nic *nics, size_t n)
{
    const char *p = xml;
    struct tag t;
    size_t found = 0;
    bool in = false;
    struct vf_vm_nic cur;
    char type[32];
    while (p && found < n && next_tag(&p, &t)) {
        if (!in) {
            if (!t.end && !t.empty && tag_is(&t, "interface") &&
                attr(&t, "type", type, sizeof type) && !strcmp(type, "network")) {
                in = true;
                memset(&cur, 0, sizeof cur);
            }
            continue;
        }
        if (t.end && tag_is(&t, "interface")) {
            in = false;
            if (cur.network[0] && cur.mac[0])
                nics[found++] = cur;
        } else if (!t.end && tag_is(&t, "source")) {
            if (!attr(&t, "network", cur.network, sizeof cur.network))
                cur.network[0] = '\0';
        } else if (!t.end && tag_is(&t, "mac")) {
            if (!attr(&t, "address", cur.mac, sizeof cur.mac))
                cur.mac[0] = '\0';
        }
    }
    return found;
}

/* ---- the network's <ip> elements and host entries -------------------------------- */

struct addr {
    int family;
    unsigned char b[16];
};

struct net_ip {
    struct addr net;
    unsigned prefix;
    bool dhcp;
};

struct host {
    int ip_index;                   /* the <ip> it is under */
    char mac[18], ip[64];
    char name[ATTR_MAX], id[ATTR_MAX];
    bool has_mac, has_name, has_ip, has_id;
};

struct net_view {
    struct net_ip ips[NET_IPS_MAX];
    int n_ips;
    struct host *hosts;
    size_t n_hosts;
};

static bool addr_parse(const char *s, struct addr *a)
{
    memset(a, 0, sizeof *a);
    if (inet_pton(AF_INET, s, a->b) == 1)
        a->family = AF_INET;
    else if (inet_pton(AF_INET6, s, a->b) == 1)
        a->family = AF_INET6;
    else
        return false;
    return true;
}

static bool addr_eq(const struct addr *a, const struct addr *b)
{
    return a->family == b->family && !memcmp(a->b, b->b, a->family == AF_INET ? 4 : 16);
}

/* Does subnet ip hold a? */
static bool subnet_holds(const struct net_ip *ip, const struct addr *a)
{
    if (ip->net.family != a->family)
        return false;
    unsigned full = ip->prefix / 8, rest = ip->prefix % 8;
    if (memcmp(ip->net.b, a->b, full))
        return false;
    if (!rest)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (ip->net.b[full] & mask) == (a->b[full] & mask);
}

/* An <ip> element's subnet: prefix= or netmask=, else libvirt's defaults
 * (the address's class for IPv4, 64 for IPv6). */
static bool ip_parse(const struct tag *t, struct net_ip *ip)
{
    char v[64];
    memset(ip, 0, sizeof *ip);
    if (!attr(t, "address", v, sizeof v) || !addr_parse(v, &ip->net))
        return false;
    unsigned max = ip->net.family == AF_INET ? 32 : 128;
    if (attr(t, "prefix", v, sizeof v)) {
        char *end;
        unsigned long n = strtoul(v, &end, 10);
        if (*end || n > max)
            return false;
        ip->prefix = (unsigned)n;
    } else if (ip->net.family == AF_INET && attr(t, "netmask", v, sizeof v)) {
        struct addr m;
        if (!addr_parse(v, &m) || m.family != AF_INET)
            return false;
        uint32_t bits = ((uint32_t)m.b[0] << 24) | ((uint32_t)m.b[1] << 16) |
                        ((uint32_t)m.b[2] << 8) | m.b[3];
        while (bits & 0x80000000u) {
            ip->prefix++;
            bits <<= 1;
        }
    } else if (ip->net.family == AF_INET) {
        ip->prefix = ip->net.b[0] < 128 ? 8 : ip->net.b[0] < 192 ? 16 : 24;
    } else {
        ip->prefix = 64;
    }
    for (unsigned bit = ip->prefix; bit < max; bit++)
        ip->net.b[bit / 8] &= (unsigned char)~(0x80 >> (bit % 8));
    return true;
}

static void view_free(struct net_view *v)
{
    free(v->hosts);
    memset(v, 0, sizeof *v);
}

/* The <ip> elements (in order: their index is libvirt's parentIndex) and the
 * host entries under each one's <dhcp>. */
static int view_parse(const char *xml, struct net_view *v)
{
    const char *p = xml;
    struct tag t;
    int cur = -1;        /* inside <ip> number cur */
    bool in_dhcp = false;
    memset(v, 0, sizeof *v);
    while (next_tag(&p, &t)) {
        if (tag_is(&t, "ip")) {
            if (t.end) {
                cur = -1;
                in_dhcp = false;
                continue;
            }
            if (v->n_ips >= NET_IPS_MAX) {
                view_free(v);
                return -E2BIG;
            }
            struct net_ip *ip = &v->ips[v->n_ips];
            if (!ip_parse(&t, ip))
                ip->net.family = AF_UNSPEC;   /* counts for the index, holds nothing */
            cur = t.empty ? -1 : v->n_ips;
            v->n_ips++;
        } else if (cur >= 0 && tag_is(&t, "dhcp")) {
            v->ips[cur].dhcp = true;
            in_dhcp = !t.end && !t.empty;
        } else if (cur >= 0 && in_dhcp && !t.end && tag_is(&t, "host")) {
            struct host *h = realloc(v->hosts, (v->n_hosts + 1) * sizeof *h);
            if (!h) {
                view_free(v);
                return -ENOMEM;
            }
            v->hosts = h;
            h = &v->hosts[v->n_hosts++];
            memset(h, 0, sizeof *h);
            h->ip_index = cur;
            h->has_mac = attr(&t, "mac", h->mac, sizeof h->mac);
            h->has_ip = attr(&t, "ip", h->ip, sizeof h->ip);
            h->has_name = attr(&t, "name", h->name, sizeof h->name);
            h->has_id = attr(&t, "id", h->id, sizeof h->id);
        }
    }
    return 0;
}

/* ---- updates ---------------------------------------------------------------------- */

static void xml_escape_to(char *out, size_t len, const char *s)
{
    size_t o = 0;
    for (; *s && o + 7 < len; s++) {
        const char *rep = NULL;
        switch (*s) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '\'': rep = "&apos;"; break;
        case '"': rep = "&quot;"; break;
        }
        if (rep) {
            memcpy(out + o, rep, strlen(rep));
            o += strlen(rep);
        } else {
            out[o++] = *s;
        }
    }
    out[o] = '\0';
}

/* <host .../> with the attributes h has, as libvirt's update API takes it. */
static void host_xml(const struct host *h, char *out, size_t len)
{
    char e[4 * ATTR_MAX];
    size_t o = (size_t)snprintf(out, len, "<host");
    if (h->has_mac && o < len)
        o += (size_t)snprintf(out + o, len - o, " mac='%s'", h->mac);
    if (h->has_id && o < len) {
        xml_escape_to(e, sizeof e, h->id);
        o += (size_t)snprintf(out + o, len - o, " id='%s'", e);
    }
    if (h->has_name && o < len) {
        xml_escape_to(e, sizeof e, h->name);
        o += (size_t)snprintf(out + o, len - o, " name='%s'", e);
    }
    if (h->has_ip && o < len)
        o += (size_t)snprintf(out + o, len - o, " ip='%s'", h->ip);
    if (o < len)
        snprintf(out + o, len - o, "/>");
}

static const char *last_error(void)
{
    const char *m = virGetLastErrorMessage();
    return m ? m : "unknown error";
}

/* What the VM's entry is and how to recognise its stale ones. */
struct want {
    struct host h;              /* the entry to add */
    struct addr ip;
};

enum match { MATCH_ADD, MATCH_REMOVE };

/* Is existing entry e in the way of w (adding), or one of w's (removing)? */
static bool entry_matches(const struct host *e, const struct want *w, enum match how)
{
    struct addr ea;
    bool same_mac = w->h.has_mac && e->has_mac && !strcasecmp(e->mac, w->h.mac);
    bool same_ip = e->has_ip && addr_parse(e->ip, &ea) && addr_eq(&ea, &w->ip);
    bool same_name = e->has_name && !strcmp(e->name, w->h.name);
    if (how == MATCH_REMOVE)
        return same_mac || (same_ip && same_name);
    return same_mac || same_ip || same_name;
}

static bool entry_is(const struct host *e, const struct want *w, int ip_index)
{
    struct addr ea;
    return e->ip_index == ip_index && e->has_mac == w->h.has_mac &&
           (!e->has_mac || !strcasecmp(e->mac, w->h.mac)) && !e->has_id && e->has_name &&
           !strcmp(e->name, w->h.name) && e->has_ip && addr_parse(e->ip, &ea) &&
           addr_eq(&ea, &w->ip);
}

/* One view of the network (the running one, or its persistent definition):
 * which=VIR_NETWORK_UPDATE_AFFECT_LIVE or _CONFIG. */
static int update_one(virNetworkPtr net, const char *network, unsigned which, bool active,
                      const struct want *w, enum match how, char *msg, size_t len)
{
    const char *view_name = which == VIR_NETWORK_UPDATE_AFFECT_LIVE ? "running network"
                                                                    : "persistent definition";
    unsigned xml_flags = which == VIR_NETWORK_UPDATE_AFFECT_CONFIG && active
                             ? VIR_NETWORK_XML_INACTIVE : 0;
    char *xml = virNetworkGetXMLDesc(net, xml_flags);
    if (!xml && xml_flags) {
        /* A driver that keeps no separate definition shows the one it has. */
        virResetLastError();
        xml = virNetworkGetXMLDesc(net, 0);
    }
    if (!xml) {
        snprintf(msg, len, "network \"%s\": reading its %s failed: %s", network, view_name,
                 last_error());
        return -EIO;
    }
    struct net_view v;
    int rc = view_parse(xml, &v);
    free(xml);
    if (rc < 0) {
        snprintf(msg, len, "network \"%s\": cannot read its %s: %s", network, view_name,
                 rc == -E2BIG ? "too many <ip> elements" : "out of memory");
        return rc;
    }
    int target = -1;
    if (how == MATCH_ADD) {
        for (int i = 0; i < v.n_ips && target < 0; i++)
            if (v.ips[i].dhcp && subnet_holds(&v.ips[i], &w->ip))
                target = i;
        if (target < 0) {
            char have[512] = "";
            size_t o = 0;
            for (int i = 0; i < v.n_ips && o < sizeof have; i++) {
                char a[INET6_ADDRSTRLEN];
                if (v.ips[i].net.family == AF_UNSPEC)
                    continue;
                inet_ntop(v.ips[i].net.family, v.ips[i].net.b, a, sizeof a);
                o += (size_t)snprintf(have + o, sizeof have - o, "%s%s/%u%s", o ? ", " : "", a,
                                      v.ips[i].prefix, v.ips[i].dhcp ? "" : " without DHCP");
            }
            snprintf(msg, len, "network \"%s\": the address %s is in none of its DHCP subnets "
                     "(%s)", network, w->h.ip, o ? have : "it has no <ip> element");
            view_free(&v);
            return -ERANGE;
        }
        bool in_place = false, others = false;
        for (size_t i = 0; i < v.n_hosts; i++) {
            if (entry_is(&v.hosts[i], w, target))
                in_place = true;
            else if (entry_matches(&v.hosts[i], w, MATCH_ADD))
                others = true;
        }
        if (in_place && !others) {
            view_free(&v);
            return 0;
        }
    }
    char hx[6 * ATTR_MAX];
    for (size_t i = 0; i < v.n_hosts; i++) {
        if (!entry_matches(&v.hosts[i], w, how))
            continue;
        host_xml(&v.hosts[i], hx, sizeof hx);
        /* Gone meanwhile ("not found") is what was wanted; anything else
         * makes the add below fail with libvirt's reason. */
        if (virNetworkUpdate(net, VIR_NETWORK_UPDATE_COMMAND_DELETE,
                             VIR_NETWORK_SECTION_IP_DHCP_HOST, v.hosts[i].ip_index, hx, which) < 0)
            virResetLastError();
    }
    view_free(&v);
    if (how == MATCH_REMOVE)
        return 0;
    host_xml(&w->h, hx, sizeof hx);
    if (virNetworkUpdate(net, VIR_NETWORK_UPDATE_COMMAND_ADD_LAST,
                         VIR_NETWORK_SECTION_IP_DHCP_HOST, target, hx, which) < 0) {
        snprintf(msg, len, "network \"%s\": adding the DHCP host entry %s to its %s failed: %s",
                 network, hx, view_name, last_error());
        virResetLastError();
        return -EIO;
    }
    return 0;
}

static int update(virConnectPtr conn, const char *network, const char *mac, const char *name,
                  const char *ip, enum match how, char *msg, size_t len)
{
    struct want w;
    memset(&w, 0, sizeof w);
    /* Removing needs no address: the MAC alone finds an IPv4 entry. */
    if ((ip || how == MATCH_ADD) && (!ip || !addr_parse(ip, &w.ip))) {
        snprintf(msg, len, "network \"%s\": \"%s\" is not an IP address", network,
                 ip ? ip : "");
        return -EINVAL;
    }
    if (strlen(name) >= sizeof w.h.name || (mac && strlen(mac) >= sizeof w.h.mac)) {
        snprintf(msg, len, "network \"%s\": name or MAC too long for a host entry", network);
        return -EINVAL;
    }
    snprintf(w.h.ip, sizeof w.h.ip, "%s", ip ? ip : "");
    snprintf(w.h.name, sizeof w.h.name, "%s", name);
    w.h.has_ip = ip != NULL;
    w.h.has_name = true;
    /* libvirt refuses a MAC in an IPv6 host entry. */
    if (mac && w.ip.family != AF_INET6) {
        snprintf(w.h.mac, sizeof w.h.mac, "%s", mac);
        w.h.has_mac = true;
    }
    virNetworkPtr net = virNetworkLookupByName(conn, network);
    if (!net) {
        bool absent = virGetLastErrorCode() == VIR_ERR_NO_NETWORK;
        if (absent && how == MATCH_REMOVE) {
            virResetLastError();
            return 0;
        }
        snprintf(msg, len, "network \"%s\": %s", network,
                 absent ? "no such libvirt network on the node" : last_error());
        virResetLastError();
        return absent ? -ENOENT : -EIO;
    }
    int active = virNetworkIsActive(net), persistent = virNetworkIsPersistent(net);
    int rc = 0;
    if (active < 0 || persistent < 0) {
        snprintf(msg, len, "network \"%s\": reading its state failed: %s", network, last_error());
        rc = -EIO;
    }
    if (rc == 0 && active)
        rc = update_one(net, network, VIR_NETWORK_UPDATE_AFFECT_LIVE, true, &w, how, msg, len);
    if (rc == 0 && persistent)
        rc = update_one(net, network, VIR_NETWORK_UPDATE_AFFECT_CONFIG, active, &w, how, msg,
                        len);
    virResetLastError();
    virNetworkFree(net);
    return rc;
}

int vf_vm_network_add(virConnectPtr conn, const char *network, const char *mac, const char *name,
                      const char *ip, char *msg, size_t len)
{
    return update(conn, network, mac, name, ip, MATCH_ADD, msg, len);
}

int vf_vm_network_remove(virConnectPtr conn, const char *network, const char *mac,
                         const char *name, const char *ip, char *msg, size_t len)
{
    return update(conn, network, mac, name, ip, MATCH_REMOVE, msg, len);
}
