/* A VM's spec.blockDeviceRefs resolved into the disks its domain gets, or the
 * reason it must wait.  The VM controller asks before it places and starts a
 * VM; the disks themselves belong to the images module (VirtualDisk,
 * ClusterVirtualImage), read here from the store only.
 *
 *   VirtualDisk           Ready, not being deleted, not being copied into an
 *                         image, not in use by another VM
 *                         that has a node; a disk in a local (non-shared)
 *                         pool pins the VM to status.target.node
 *   ClusterVirtualImage   a CD-ROM image (status.cdrom) is attached read-only:
 *                         the copy in a node's pool when the images module
 *                         keeps copies on the nodes (status.cdromCopies; the
 *                         VM runs only where one is complete), else the image
 *                         store's file (nodes on the daemon's host); any
 *                         other image is refused: make a VirtualDisk from it */
#ifndef VF_VM_DISKS_H
#define VF_VM_DISKS_H
#include <stdbool.h>
#include <stddef.h>
#include <json-c/json.h>
#include "domain_xml.h"

struct vf_vm_disks {
    struct vf_domain_disk *disks;  /* n of them, in the refs' order (boot order) */
    size_t n;
    char node[256];                /* "" or the node the VM's local disks live on */
    bool local;                    /* a disk is on storage only its node sees: moving the VM
                                      means copying it (block migration) */
    char **image_nodes;            /* NULL-terminated: the nodes holding a copy of every
                                      CD-ROM image it names; NULL: any node */
};

/* A new reference to object kind/name, or NULL when there is none. */
typedef struct json_object *(*vf_vm_disks_lookup_fn)(void *opaque, const char *kind,
                                                     const char *name);

/* 0: every disk is ready and *out holds them (free with vf_vm_disks_free).
 * -EAGAIN: the VM waits (a disk is missing, not Ready, being deleted, in use by
 * another VM, or local disks live on different nodes).  -EINVAL: the refs can
 * never work as written (an image that is not a CD-ROM, an unsupported kind).
 * Either error fills reason (a condition reason such as "DiskNotReady") and
 * msg (names the disk and says what to do).  vms: every VM (for the in-use
 * check; the VM itself is skipped), or NULL. */
int vf_vm_disks_resolve_with(const struct json_object *vm, vf_vm_disks_lookup_fn lookup,
                             void *opaque, const struct json_object *vms,
                             struct vf_vm_disks *out, char *reason, size_t reason_len,
                             char *msg, size_t msg_len);
/* The same, reading the disks, images and VMs from the store. */
int vf_vm_disks_resolve(const struct json_object *vm, struct vf_vm_disks *out, char *reason,
                        size_t reason_len, char *msg, size_t msg_len);
void vf_vm_disks_free(struct vf_vm_disks *d);
/* Whether the resolved disks can be used on node (its CD-ROM copies). */
bool vf_vm_disks_on_node(const struct vf_vm_disks *d, const char *node);
#endif
