/* VirtualDisk: the kind and settings (vd_kind.c), the controller (vd.c, with
 * its steps in vd_steps.c and its jobs in vd_job.c: vd_internal.h); the
 * libvirt storage work is in vd_volume.c.
 *
 * Storage classes name libvirt storage pools that exist (with the same name)
 * on the nodes: the module setting virtualDisks.storageClasses is a list of
 * "NAME:POOL" or "NAME:POOL:shared" strings.  A shared pool is the same
 * storage on every node (NFS, a cluster file system): its disks go with their
 * VM anywhere.  A local pool's disk lives on the node where its volume was
 * made (status.target.node), and a VM that uses it runs there. */
#ifndef VF_IMAGES_VD_H
#define VF_IMAGES_VD_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <virtfleet/module.h>

#define VF_VD_KIND "VirtualDisk"
#define VF_VD_FINALIZER "virtfleet.io/disk-cleanup"
/* On a ClusterVirtualImage while a disk is being copied from it. */
#define VF_VD_SOURCE_FINALIZER "virtfleet.io/disk-source"
#define VF_VD_MAX_CLASSES 32

struct vf_vd_class {
    char name[64];
    char pool[256];
    bool shared;
};

struct vf_vd_settings {
    struct vf_vd_class classes[VF_VD_MAX_CLASSES];
    size_t n_classes;
    char default_class[64];        /* "" : none */
    char allowed[VF_VD_MAX_CLASSES][64];
    size_t n_allowed;              /* 0: every class may be named */
};

struct vf_images;
struct vf_vd;

/* Read virtualDisks.* from the module's checked settings; errors name the
 * setting (e.g. virtualDisks.storageClasses[1]). */
int vf_vd_settings_read(const struct json_object *settings, struct vf_vd_settings *out,
                        struct vf_error *err);
/* The class a disk gets: `requested` (spec.persistentVolumeClaim.storageClassName,
 * or NULL), else the default, else the only class there is.  -ENOENT with a
 * message saying what to set. */
int vf_vd_class_resolve(const struct vf_vd_settings *s, const char *requested,
                        const struct vf_vd_class **out, char *msg, size_t msg_len);

/* Register the kind, watch disks, images and nodes; *out: the controller.
 * VMs are read from the module's index (im->vm_refs, vm_refs.h), whose watch
 * kicks the disks a changed VM names (vf_vd_kick). */
int vf_vd_start(struct vf_images *im, const struct json_object *settings, struct vf_vd **out);
/* Reconcile disk `name` again on the next tick (1 s); vd may be NULL, and a
 * disk not seen yet is reconciled when its own event comes. */
void vf_vd_kick(struct vf_vd *vd, const char *name);
/* New settings: storage classes apply to disks not made yet. */
int vf_vd_reconfigure(struct vf_vd *vd, const struct json_object *settings);
/* Jobs still running are canceled (a copy is started over after the next start). */
void vf_vd_stop(struct vf_vd *vd);

/* ---- vd_kind.c ---- */

/* The class of that name, or NULL. */
const struct vf_vd_class *vf_vd_class_find(const struct vf_vd_settings *s, const char *name);
/* VirtualDisk (short name vd), validated by vf_vd_validate. */
extern const struct vf_kind vf_vd_kind;
/* The kind's validation (old: the stored object or NULL). */
int vf_vd_validate(struct vf_module_ctx *ctx, const struct json_object *old,
                   struct json_object *obj, struct vf_error *err);
/* "10Gi", "512Mi", "1G", "1048576" or a JSON integer: bytes.  -EINVAL otherwise. */
int vf_vd_quantity(const struct json_object *v, uint64_t *bytes);
/* Bytes as the shortest exact quantity: "10Gi", "1536Mi", "4097". */
void vf_vd_quantity_format(uint64_t bytes, char *buf, size_t len);

/* ---- vd_retry.c ---- */

/* Whether a failed volume job (its rc, and the libvirt error code of the
 * failure or 0) may succeed when tried again unchanged. */
bool vf_vd_failure_transient(int rc, int lv_code);
/* Seconds to wait after failed attempt `attempt` (1, 2, ...): 5 s doubling
 * to 5 min, less up to a fifth chosen by `seed` (the disk's uid). */
unsigned vf_vd_retry_delay(unsigned attempt, const char *seed);
/* "attempt 3 failed: WHAT; next attempt in 20s" (or "in 4m40s", "in 5m"). */
void vf_vd_retry_message(unsigned attempt, const char *what, unsigned delay_s, char *buf,
                         size_t len);
#endif
