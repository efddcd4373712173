/* DHCP host entries for VMs in a libvirt network (see vm_network.h).
 *
 * libvirt's own network and domain XML is read with XPath (xml_query.h):
 * where an element sits is libvirt's fixed schema; quoting, entities, comments
 * and namespaces are the parser's business.  What it reads comes from
 * libvirt, not from users; still, every value is bounded (one that does not
 * fit is taken as absent) and a document that does not parse yields nothing. */
#include <config.h>
#include "vm_network.h"
#include "xml_query.h"

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

/* ---- the domain's interfaces -------------------------------------------------- */

size_t vf_vm_network_nics(const char *xml, struct vf_vm_nic *nics, size_t n)
{
    struct vf_xml x;
    size_t found = 0;
    if (vf_xml_parse(&x, xml) < 0)
        return 0;
    xmlXPathObjectPtr r = vf_xml_select(&x, NULL, "/domain/devices/interface[@type='network']");
    int count = r ? xmlXPathNodeSetGetLength(r->nodesetval) : 0;
    for (int i = 0; i < count && found < n; i++) {
        xmlNodePtr ifc = xmlXPathNodeSetItem(r->nodesetval, i);
        struct vf_vm_nic cur;
        memset(&cur, 0, sizeof cur);
        /* Values too long to be ours fail to fit: the interface is skipped. */
        if (vf_xml_string(&x, ifc, "source/@network", cur.network, sizeof cur.network) == 0 &&
            vf_xml_string(&x, ifc, "mac/@address", cur.mac, sizeof cur.mac) == 0 &&
            cur.network[0] && cur.mac[0])
            nics[found++] = cur;
    }
    xmlXPathFreeObject(r);
    vf_xml_free(&x);
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
static bool ip_parse(struct vf_xml *x, xmlNodePtr node, struct net_ip *ip)
{
    char v[64];
    memset(ip, 0, sizeof *ip);
    if (vf_xml_string(x, node, "@address", v, sizeof v) < 0 || !addr_parse(v, &ip->net))
        return false;
    unsigned max = ip->net.family == AF_INET ? 32 : 128;
    if (vf_xml_string(x, node, "@prefix", v, sizeof v) == 0) {
        char *end;
        unsigned long n = strtoul(v, &end, 10);
        if (*end || n > max)
            return false;
        ip->prefix = (unsigned)n;
    } else if (ip->net.family == AF_INET && vf_xml_string(x, node, "@netmask", v, sizeof v) == 0) {
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

/* The <host> entries under the <dhcp> of <ip> number ip_index (node). */
static int hosts_parse(struct vf_xml *x, xmlNodePtr node, int ip_index, struct net_view *v)
{
    xmlXPathObjectPtr r = vf_xml_select(x, node, "dhcp/host");
    int count = r ? xmlXPathNodeSetGetLength(r->nodesetval) : 0;
    if (count == 0) {
        xmlXPathFreeObject(r);
        return 0;
    }
    struct host *hosts = realloc(v->hosts, (v->n_hosts + (size_t)count) * sizeof *hosts);
    if (!hosts) {
        xmlXPathFreeObject(r);
        return -ENOMEM;
    }
    v->hosts = hosts;
    for (int i = 0; i < count; i++) {
        xmlNodePtr hn = xmlXPathNodeSetItem(r->nodesetval, i);
        struct host *h = &v->hosts[v->n_hosts++];
        memset(h, 0, sizeof *h);
        h->ip_index = ip_index;
        h->has_mac = vf_xml_string(x, hn, "@mac", h->mac, sizeof h->mac) == 0;
        h->has_ip = vf_xml_string(x, hn, "@ip", h->ip, sizeof h->ip) == 0;
        h->has_name = vf_xml_string(x, hn, "@name", h->name, sizeof h->name) == 0;
        h->has_id = vf_xml_string(x, hn, "@id", h->id, sizeof h->id) == 0;
    }
    xmlXPathFreeObject(r);
    return 0;
}

/* The network's <ip> elements (in order: their index is libvirt's
 * parentIndex) and the host entries under each one's <dhcp>.  0, -E2BIG,
 * -ENOMEM, or -EINVAL / -ENOENT when the XML does not parse. */
static int view_parse(const char *xml, struct net_view *v)
{
    struct vf_xml x;
    memset(v, 0, sizeof *v);
    int rc = vf_xml_parse(&x, xml);
    if (rc < 0)
        return rc;
    xmlXPathObjectPtr ips = vf_xml_select(&x, NULL, "/network/ip");
    int count = ips ? xmlXPathNodeSetGetLength(ips->nodesetval) : 0;
    if (count > NET_IPS_MAX)
        rc = -E2BIG;
    for (int i = 0; rc == 0 && i < count; i++) {
        xmlNodePtr node = xmlXPathNodeSetItem(ips->nodesetval, i);
        struct net_ip *ip = &v->ips[v->n_ips++];
        if (!ip_parse(&x, node, ip))
            ip->net.family = AF_UNSPEC;   /* counts for the index, holds nothing */
        ip->dhcp = vf_xml_count(&x, node, "dhcp") > 0;
        rc = hosts_parse(&x, node, i, v);
    }
    xmlXPathFreeObject(ips);
    vf_xml_free(&x);
    if (rc < 0)
        view_free(v);
    return rc;
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
                 rc == -E2BIG    ? "too many <ip> elements"
                 : rc == -ENOMEM ? "out of memory"
                                 : "libvirt's XML does not parse");
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
