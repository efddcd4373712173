#include <config.h>
/* IP address management for VMs.
 *
 * Each subnet keeps its issued addresses as an array of leases sorted by
 * offset from the network address.  Offsets 1..last-1 are issuable, so while
 * leases[i] has offset i+1 the addresses are packed; the lowest free address
 * is where that first stops holding, found by binary search.  That makes
 * allocate O(log n) with memory proportional to what is issued, whether the
 * subnet is a /30 or an IPv6 /64 (where a bitmap of 2^64 bits is out of the
 * question).  Inserting in the middle moves pointers, which for the sizes a
 * fleet issues (tens of thousands) costs microseconds.  Owners are found
 * through a hash table of the same leases.
 *
 * Addresses are 128-bit integers (IPv4 in the low 32 bits), so both families
 * share one code path. */
#include "core/ipam.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef unsigned __int128 u128;

#define CIDRS_FIELD "virtualization.virtualMachineCIDRs"
#define NAMED_OWNERS 5

struct subnet;

struct lease {
    char *owner;
    struct subnet *subnet;
    u128 offset;
    char addr[INET6_ADDRSTRLEN];
    struct lease *next;             /* owner hash chain */
};

struct subnet {
    int family;
    unsigned prefix;
    u128 base;                      /* the network address */
    u128 last;                      /* offset of the last address (never issued) */
    char cidr[INET6_ADDRSTRLEN + 5];
    struct lease **leases;          /* sorted by offset */
    size_t n, cap;
};

struct vf_ipam {
    struct subnet *subnets;
    size_t n_subnets;
    struct lease **buckets;         /* by owner; n_buckets is a power of two */
    size_t n_buckets, n_leases;
};

/* ---- addresses ---------------------------------------------------------- */

static unsigned addr_bits(int family)
{
    return family == AF_INET ? 32 : 128;
}

static int addr_parse(const char *text, int *family, u128 *value)
{
    unsigned char bytes[16];
    unsigned n;

    if (inet_pton(AF_INET, text, bytes) == 1) {
        *family = AF_INET;
        n = 4;
    } else if (inet_pton(AF_INET6, text, bytes) == 1) {
        *family = AF_INET6;
        n = 16;
    } else {
        return -EINVAL;
    }
    *value = 0;
    for (unsigned i = 0; i < n; i++)
        *value = (*value << 8) | bytes[i];
    return 0;
}

static void addr_format(int family, u128 value, char *buf, size_t len)
{
    unsigned char bytes[16];
    unsigned n = addr_bits(family) / 8;

    for (unsigned i = n; i-- > 0; value >>= 8)
        bytes[i] = (unsigned char)(value & 0xff);
    if (!inet_ntop(family, bytes, buf, (socklen_t)len))
        snprintf(buf, len, "?");
}

/* "10.66.10.0/24" or "fd00::/64" into s (without leases). */
static int subnet_parse(const char *text, struct subnet *s)
{
    char addr[INET6_ADDRSTRLEN + 1], *end;
    const char *slash = text ? strchr(text, '/') : NULL;
    unsigned long prefix;
    unsigned host_bits;
    u128 host_mask;

    memset(s, 0, sizeof *s);
    if (!slash || (size_t)(slash - text) >= sizeof addr || slash[1] < '0' || slash[1] > '9')
        return -EINVAL;
    memcpy(addr, text, (size_t)(slash - text));
    addr[slash - text] = '\0';
    if (addr_parse(addr, &s->family, &s->base) < 0)
        return -EINVAL;
    prefix = strtoul(slash + 1, &end, 10);
    if (*end || prefix > addr_bits(s->family))
        return -EINVAL;
    s->prefix = (unsigned)prefix;
    host_bits = addr_bits(s->family) - s->prefix;
    host_mask = host_bits == 128 ? ~(u128)0 : ((u128)1 << host_bits) - 1;
    if (s->base & host_mask)
        return -EINVAL;             /* host bits set: config.c says which was meant */
    s->last = host_mask;
    addr_format(s->family, s->base, addr, sizeof addr);
    snprintf(s->cidr, sizeof s->cidr, "%s/%u", addr, s->prefix);
    return 0;
}

static bool subnet_contains(const struct subnet *s, int family, u128 value)
{
    return family == s->family && (value & ~s->last) == s->base;
}

static bool subnet_same(const struct subnet *a, const struct subnet *b)
{
    return a->family == b->family && a->prefix == b->prefix && a->base == b->base;
}

/* May the address at offset be issued?  Not the first (network address; for
 * IPv6 the subnet-router anycast address) nor the last (broadcast). */
static bool offset_usable(const struct subnet *s, u128 offset)
{
    return offset >= 1 && offset < s->last;
}

/* ---- leases ------------------------------------------------------------- */

static size_t owner_hash(const char *owner)
{
    uint64_t h = 14695981039346656037ULL;   /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)owner; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return (size_t)h;
}

static struct lease *owner_find(const struct vf_ipam *ipam, const char *owner)
{
    struct lease *l = ipam->buckets[owner_hash(owner) & (ipam->n_buckets - 1)];
    while (l && strcmp(l->owner, owner) != 0)
        l = l->next;
    return l;
}

static int owner_grow(struct vf_ipam *ipam)
{
    size_t n = ipam->n_buckets * 2;
    struct lease **b = calloc(n, sizeof *b);

    if (!b)
        return -ENOMEM;
    for (size_t i = 0; i < ipam->n_buckets; i++) {
        for (struct lease *l = ipam->buckets[i], *next; l; l = next) {
            size_t h = owner_hash(l->owner) & (n - 1);
            next = l->next;
            l->next = b[h];
            b[h] = l;
        }
    }
    free(ipam->buckets);
    ipam->buckets = b;
    ipam->n_buckets = n;
    return 0;
}

/* Index of the first lease in s with offset >= offset. */
static size_t lower_bound(const struct subnet *s, u128 offset)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->leases[mid]->offset < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static struct lease *subnet_find(const struct subnet *s, u128 offset)
{
    size_t i = lower_bound(s, offset);
    return i < s->n && s->leases[i]->offset == offset ? s->leases[i] : NULL;
}

/* The lowest issuable offset not issued, or 0 when the subnet is full. */
static u128 subnet_lowest_free(const struct subnet *s)
{
    size_t lo = 0, hi = s->n;
    u128 offset;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->leases[mid]->offset == (u128)mid + 1)
            lo = mid + 1;
        else
            hi = mid;
    }
    offset = (u128)lo + 1;
    return offset_usable(s, offset) ? offset : 0;
}

/* Issue offset in s to owner (which holds nothing yet). */
static int lease_add(struct vf_ipam *ipam, struct subnet *s, u128 offset, const char *owner,
                     struct lease **out)
{
    struct lease *l;
    size_t at, h;

    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        struct lease **grown = realloc(s->leases, cap * sizeof *grown);
        if (!grown)
            return -ENOMEM;
        s->leases = grown;
        s->cap = cap;
    }
    if (ipam->n_leases + 1 > ipam->n_buckets && owner_grow(ipam) < 0)
        return -ENOMEM;
    l = calloc(1, sizeof *l);
    if (!l || !(l->owner = strdup(owner))) {
        free(l);
        return -ENOMEM;
    }
    l->subnet = s;
    l->offset = offset;
    addr_format(s->family, s->base + offset, l->addr, sizeof l->addr);
    at = lower_bound(s, offset);
    memmove(&s->leases[at + 1], &s->leases[at], (s->n - at) * sizeof *s->leases);
    s->leases[at] = l;
    s->n++;
    h = owner_hash(owner) & (ipam->n_buckets - 1);
    l->next = ipam->buckets[h];
    ipam->buckets[h] = l;
    ipam->n_leases++;
    if (out)
        *out = l;
    return 0;
}

static void lease_remove(struct vf_ipam *ipam, struct lease *l)
{
    struct subnet *s = l->subnet;
    size_t at = lower_bound(s, l->offset);
    struct lease **p = &ipam->buckets[owner_hash(l->owner) & (ipam->n_buckets - 1)];

    memmove(&s->leases[at], &s->leases[at + 1], (s->n - at - 1) * sizeof *s->leases);
    s->n--;
    while (*p != l)
        p = &(*p)->next;
    *p = l->next;
    ipam->n_leases--;
    free(l->owner);
    free(l);
}

/* ---- the interface ------------------------------------------------------ */

static int subnets_parse(const struct json_object *cidrs, struct subnet **out, size_t *n_out,
                         struct vf_error *err)
{
    size_t n;
    struct subnet *subnets;

    *out = NULL;
    *n_out = 0;
    if (cidrs && !json_object_is_type(cidrs, json_type_array))
        return vf_error_set(err, -EINVAL, 400, "Invalid", CIDRS_FIELD,
                            CIDRS_FIELD ": expected a list of CIDRs like [\"10.66.10.0/24\"]");
    n = cidrs ? json_object_array_length(cidrs) : 0;
    subnets = calloc(n ? n : 1, sizeof *subnets);
    if (!subnets)
        return vf_error_set(err, -ENOMEM, 500, "InternalError", CIDRS_FIELD,
                            CIDRS_FIELD ": out of memory");
    for (size_t i = 0; i < n; i++) {
        struct json_object *v = json_object_array_get_idx(cidrs, i);
        const char *text = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
        if (subnet_parse(text, &subnets[i]) < 0) {
            free(subnets);
            return vf_error_set(err, -EINVAL, 400, "Invalid", CIDRS_FIELD,
                                CIDRS_FIELD "[%zu]: expected a CIDR like \"10.66.10.0/24\" "
                                "without host bits, got \"%s\"", i, text ? text : "(not a string)");
        }
    }
    *out = subnets;
    *n_out = n;
    return 0;
}

int vf_ipam_new(const struct json_object *cidrs, struct vf_ipam **out, struct vf_error *err)
{
    struct vf_ipam *ipam;
    int r;

    *out = NULL;
    ipam = calloc(1, sizeof *ipam);
    if (!ipam)
        return vf_error_set(err, -ENOMEM, 500, "InternalError", "", "ipam: out of memory");
    r = subnets_parse(cidrs, &ipam->subnets, &ipam->n_subnets, err);
    if (r < 0) {
        free(ipam);
        return r;
    }
    ipam->n_buckets = 64;
    ipam->buckets = calloc(ipam->n_buckets, sizeof *ipam->buckets);
    if (!ipam->buckets) {
        vf_ipam_free(ipam);
        return vf_error_set(err, -ENOMEM, 500, "InternalError", "", "ipam: out of memory");
    }
    *out = ipam;
    return 0;
}

void vf_ipam_free(struct vf_ipam *ipam)
{
    if (!ipam)
        return;
    for (size_t i = 0; i < ipam->n_subnets; i++) {
        for (size_t k = 0; k < ipam->subnets[i].n; k++) {
            free(ipam->subnets[i].leases[k]->owner);
            free(ipam->subnets[i].leases[k]);
        }
        free(ipam->subnets[i].leases);
    }
    free(ipam->subnets);
    free(ipam->buckets);
    free(ipam);
}

int vf_ipam_reserve(struct vf_ipam *ipam, const char *addr, const char *owner, struct vf_error *err)
{
    struct lease *held, *other;
    struct subnet *s = NULL;
    int family;
    u128 value, offset;

    if (!addr || addr_parse(addr, &family, &value) < 0)
        return vf_error_set(err, -EINVAL, 400, "Invalid", "", "VM %s: \"%s\" is not an IP address",
                            owner, addr ? addr : "");
    for (size_t i = 0; i < ipam->n_subnets && !s; i++)
        if (subnet_contains(&ipam->subnets[i], family, value))
            s = &ipam->subnets[i];
    if (!s)
        return vf_error_set(err, -ERANGE, 422, "Invalid", "",
                            "VM %s: address %s is in none of " CIDRS_FIELD, owner, addr);
    offset = value - s->base;
    if (!offset_usable(s, offset))
        return vf_error_set(err, -ERANGE, 422, "Invalid", "",
                            "VM %s: address %s is the %s address of subnet %s, which is never "
                            "issued", owner, addr, offset ? "last" : "first", s->cidr);
    other = subnet_find(s, offset);
    if (other && strcmp(other->owner, owner) == 0)
        return 0;
    if (other)
        return vf_error_set(err, -EEXIST, 409, "Conflict", "",
                            "VM %s: address %s (subnet %s) is already issued to VM %s", owner,
                            other->addr, s->cidr, other->owner);
    /* One address per VM: reserving another one moves the VM there. */
    held = owner_find(ipam, owner);
    if (lease_add(ipam, s, offset, owner, NULL) < 0)
        return vf_error_set(err, -ENOMEM, 500, "InternalError", "", "VM %s: out of memory", owner);
    if (held)
        lease_remove(ipam, held);
    return 0;
}

int vf_ipam_allocate(struct vf_ipam *ipam, const char *owner, char *addr, size_t len,
                     struct vf_error *err)
{
    struct lease *l = owner_find(ipam, owner);

    for (size_t i = 0; !l && i < ipam->n_subnets; i++) {
        struct subnet *s = &ipam->subnets[i];
        u128 offset = subnet_lowest_free(s);
        if (offset && lease_add(ipam, s, offset, owner, &l) < 0)
            return vf_error_set(err, -ENOMEM, 500, "InternalError", "", "VM %s: out of memory",
                                owner);
    }
    if (!l) {
        char list[256] = "";
        size_t used = 0;
        for (size_t i = 0; i < ipam->n_subnets && used < sizeof list; i++) {
            int n = snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
                             ipam->subnets[i].cidr);
            used += n > 0 ? (size_t)n : 0;
        }
        return vf_error_set(err, -ENOSPC, 409, "Conflict", "",
                            "VM %s: no free IP address: every address of " CIDRS_FIELD
                            " (%s) is issued; add a subnet", owner,
                            ipam->n_subnets ? list : "none configured");
    }
    if (addr && len)
        snprintf(addr, len, "%s", l->addr);
    return 0;
}

void vf_ipam_release(struct vf_ipam *ipam, const char *owner)
{
    struct lease *l = owner_find(ipam, owner);
    if (l)
        lease_remove(ipam, l);
}

const char *vf_ipam_lookup(const struct vf_ipam *ipam, const char *owner)
{
    const struct lease *l = owner_find(ipam, owner);
    return l ? l->addr : NULL;
}

/* Would the new subnets still issue this address? */
static bool still_issuable(const struct subnet *subnets, size_t n, const struct lease *l)
{
    u128 value = l->subnet->base + l->offset;
    for (size_t i = 0; i < n; i++)
        if (subnet_contains(&subnets[i], l->subnet->family, value))
            return offset_usable(&subnets[i], value - subnets[i].base);
    return false;
}

int vf_ipam_check_change(const struct vf_ipam *ipam, const struct json_object *new_cidrs,
                         struct vf_error *err)
{
    struct subnet *next;
    size_t n_next;
    int r = subnets_parse(new_cidrs, &next, &n_next, err);

    if (r < 0)
        return r;
    for (size_t i = 0; i < ipam->n_subnets && r == 0; i++) {
        const struct subnet *s = &ipam->subnets[i];
        char owners[400] = "";
        size_t used = 0, stranded = 0;
        bool kept = false;

        for (size_t k = 0; k < n_next && !kept; k++)
            kept = subnet_same(s, &next[k]);
        if (kept)
            continue;
        /* A removed subnet is fine as long as a new one (a wider one, say)
         * still covers every address issued from it. */
        for (size_t k = 0; k < s->n; k++) {
            const struct lease *l = s->leases[k];
            int n;
            if (still_issuable(next, n_next, l))
                continue;
            if (stranded++ >= NAMED_OWNERS || used >= sizeof owners)
                continue;
            n = snprintf(owners + used, sizeof owners - used, "%s%s (%s)", stranded > 1 ? ", " : "",
                         l->owner, l->addr);
            used += n > 0 ? (size_t)n : 0;
        }
        if (stranded)
            r = vf_error_set(err, -EBUSY, 409, "Conflict", CIDRS_FIELD,
                             CIDRS_FIELD ": subnet %s cannot be removed: %zu address%s issued "
                             "from it, to VM%s %s%s; move or delete those VMs first", s->cidr,
                             stranded, stranded == 1 ? " is" : "es are", stranded == 1 ? "" : "s",
                             owners, stranded > NAMED_OWNERS ? " and more" : "");
    }
    free(next);
    return r;
}

int vf_ipam_transfer(const struct vf_ipam *from, struct vf_ipam *to, struct vf_error *err)
{
    for (size_t i = 0; i < from->n_subnets; i++) {
        const struct subnet *s = &from->subnets[i];
        for (size_t k = 0; k < s->n; k++) {
            int r = vf_ipam_reserve(to, s->leases[k]->addr, s->leases[k]->owner, err);
            if (r < 0)
                return r;
        }
    }
    return 0;
}
