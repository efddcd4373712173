/* The images module's index of VirtualMachines by the objects they name.
 *
 * The disk and image controllers ask "which VMs name VirtualDisk d (or image
 * i), and how do they stand" on every reconcile.  Listing the VMs from the
 * store for that is a read and a JSON parse of every VM, per reconcile, and
 * every VM change used to kick every disk: O(disks x VMs) parses per change.
 * The module's one VirtualMachine watch (module.c) feeds this index instead,
 * and the controllers read it: a lookup by (kind, name), and the objects a
 * VM named before and after a change, to kick only those.
 *
 * Per VM it keeps what the controllers read: name, uid, status.phase,
 * status.node, whether it is being deleted, and the (kind, name) of each
 * entry of spec.blockDeviceRefs (both strings; other entries are not
 * references; an entry named twice counts once).  Keyed by VM name: an event for a VM recreated
 * under the same name with a new uid replaces the old one; a DELETED event
 * of an older uid than the one kept is ignored.  Loop thread only. */
#ifndef VF_IMAGES_VM_REFS_H
#define VF_IMAGES_VM_REFS_H
#include <stdbool.h>
#include <stddef.h>
#include <json-c/json.h>
#include <virtfleet/module.h>

/* One entry of a VM's spec.blockDeviceRefs. */
struct vf_vm_ref {
    char *kind, *name;
};

/* One VirtualMachine as the index keeps it. */
struct vf_vm_info {
    char *name, *uid;
    char *phase;                   /* status.phase, or NULL */
    char *node;                    /* status.node, or NULL */
    bool deleting;                 /* metadata.deletionTimestamp is set */
    struct vf_vm_ref *refs;        /* distinct (kind, name) pairs */
    size_t n_refs;
};

struct vf_vm_refs;

struct vf_vm_refs *vf_vm_refs_new(void);
void vf_vm_refs_free(struct vf_vm_refs *idx);

/* Called for each (kind, name) a VM named before or after a change, once
 * each; it must not change the index. */
typedef void (*vf_vm_refs_touched_fn)(void *opaque, const char *kind, const char *name);

/* Apply one watch event of VirtualMachine vm; touched (may be NULL) hears of
 * what the VM named before and after it.  -ENOMEM leaves the index as it was;
 * an object without a name is ignored (0). */
int vf_vm_refs_apply(struct vf_vm_refs *idx, enum vf_watch_event type,
                     const struct json_object *vm, vf_vm_refs_touched_fn touched, void *opaque);

/* The VMs whose spec.blockDeviceRefs name kind/name, sorted by VM name (as
 * the store lists them); *n their count (0: NULL).  Valid until the next
 * vf_vm_refs_apply. */
const struct vf_vm_info *const *vf_vm_refs_users(const struct vf_vm_refs *idx, const char *kind,
                                                 const char *name, size_t *n);

/* The VM of that name, or NULL. */
const struct vf_vm_info *vf_vm_refs_vm(const struct vf_vm_refs *idx, const char *name);

/* How many VMs the index holds. */
size_t vf_vm_refs_count(const struct vf_vm_refs *idx);
#endif
