/* IP addresses for VMs from virtualization.virtualMachineCIDRs.  The map of
 * issued addresses is rebuilt from the store (VM status.ipAddress) at start,
 * so it survives restarts without a table of its own.  The first and last
 * address of each subnet are never issued.  Loop thread only. */
#ifndef VF_IPAM_H
#define VF_IPAM_H
#include <stdbool.h>
#include <stddef.h>
#include <json-c/json.h>
#include <virtfleet/module.h>

struct vf_ipam;

/* cidrs: JSON array of "a.b.c.d/n" (IPv4; IPv6 too) as the config holds them
 * (already checked for syntax and overlap by config.c). */
int vf_ipam_new(const struct json_object *cidrs, struct vf_ipam **out, struct vf_error *err);
void vf_ipam_free(struct vf_ipam *ipam);
/* Record an address as issued to owner (at start-up, from the store).  -EEXIST
 * when another owner holds it, -ERANGE when it is in no subnet (or is a
 * subnet's first/last address).  An owner holds one address: reserving another
 * moves it there, and the same one again is a no-op. */
int vf_ipam_reserve(struct vf_ipam *ipam, const char *addr, const char *owner, struct vf_error *err);
/* Issue the lowest free address (any subnet, in configured order) to owner; an
 * owner that already holds one gets the same one again.  -ENOSPC when full. */
int vf_ipam_allocate(struct vf_ipam *ipam, const char *owner, char *addr, size_t len,
                     struct vf_error *err);
void vf_ipam_release(struct vf_ipam *ipam, const char *owner);
/* The address owner holds, or NULL. */
const char *vf_ipam_lookup(const struct vf_ipam *ipam, const char *owner);
/* May the subnets change to new_cidrs?  -EBUSY with err naming a removed subnet
 * that still has issued addresses (and which VMs hold them). */
int vf_ipam_check_change(const struct vf_ipam *ipam, const struct json_object *new_cidrs,
                         struct vf_error *err);
/* Move the issued addresses over to a new ipam (after a reload).  Stops at the
 * first address `to` cannot take (-ERANGE, -EEXIST), which check_change rules
 * out; `to` then holds those moved so far. */
int vf_ipam_transfer(const struct vf_ipam *from, struct vf_ipam *to, struct vf_error *err);
#endif
