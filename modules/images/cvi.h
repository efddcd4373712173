/* ClusterVirtualImage: the kind and its controller (cvi.c, with images made from
 * VirtualDisks in cvi_disk.c), and the images module's state shared with module.c. */
#ifndef VF_IMAGES_CVI_H
#define VF_IMAGES_CVI_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <virtfleet/module.h>
#include "image_store.h"
#include "upload.h"

#define VF_CVI_KIND "ClusterVirtualImage"
#define VF_CVI_FINALIZER "virtfleet.io/image-cleanup"
/* On a VirtualDisk while an image is being copied from it: the disk controller
 * (vd.c) keeps its volume until the copy let go. */
#define VF_CVI_DISK_FINALIZER "virtfleet.io/image-source"

/* Settings in force (module.c fills them from the checked settings). */
struct vf_images_settings {
    char store_path[2048];
    uint64_t quota;
    char listen[256];
    char external_url[1024];     /* base of imageUploadURLs.external; "" : the listener's own */
    int64_t upload_timeout_ms;
    int max_retries;
    int stall_timeout_s;
    struct json_object *insecure_registries; /* array of "host[:port]" talked to over plain HTTP */
    char auth_file[1024];        /* import.authFile: registry credentials; "": none */
};

struct cvi_rec;
struct vf_vm_refs;

/* The module's state.  Reference counted: workers' jobs and the upload
 * listener's hand-overs may still arrive after stop(), and find it marked
 * stopped instead of freed. */
struct vf_images {
    struct vf_module_ctx *ctx;
    const struct vf_core *core;
    atomic_int refs;
    bool stopped;
    struct vf_images_settings set;
    struct vf_dvcr dvcr;
    struct vf_upload_server *upload;
    struct cvi_rec *recs;
    struct vf_cdrom *cdrom;      /* CD-ROM copies on the nodes (cdrom.h) */
    /* VirtualMachines by the disks and images they name (vm_refs.h), fed by
     * vm_watch (module.c), the module's one VM watch; freed with the state. */
    struct vf_vm_refs *vm_refs;
    struct vf_watch *cvi_watch, *vm_watch, *vd_watch;
    int timer;
};

void vf_images_ref(struct vf_images *im);
void vf_images_unref(struct vf_images *im);

/* Register the kind (once per start), watch images, resume imports.  VMs are
 * read from im->vm_refs, whose watch kicks the images a changed VM names. */
int vf_cvi_start(struct vf_images *im);
/* Once the VirtualDisk kind is registered (vd.c starts after): watch disks,
 * which images are made from, and let go of holds left on them. */
int vf_cvi_watch_disks(struct vf_images *im);
/* Cancel running imports (their downloads are kept for a resumed import) and
 * forget every record. */
void vf_cvi_stop(struct vf_images *im);
/* Reconcile image `name` again on the next tick (1 s). */
void vf_cvi_kick(struct vf_images *im, const char *name);
/* Reconcile again the images that wait for VirtualDisk `disk` (a VM that
 * names it changed: it may have let go of it). */
void vf_cvi_kick_waiting_for(struct vf_images *im, const char *disk);
/* The upload listener's hand-over (any thread). */
void vf_cvi_upload_done(void *opaque, struct vf_upload_outcome *outcome);
/* New settings applied live (quota, timeouts, URLs): imports already
 * running keep the limits they started with. */
void vf_cvi_settings_changed(struct vf_images *im);

/* Exposed for the unit test: validation of a ClusterVirtualImage spec as the
 * kind's validate hook does it (old: the stored object or NULL). */
int vf_cvi_validate(struct vf_module_ctx *ctx, const struct json_object *old,
                    struct json_object *obj, struct vf_error *err);
/* Whether an image may be copied now from VirtualDisk `disk`: vd is the disk
 * (NULL: not found), vms the index of VirtualMachines (NULL: none).  0: it is Ready and
 * no VM with a node (whose domain may run) names it; held: a copy that starts
 * over, which may also read a disk being deleted that it holds.  Else -ENOENT,
 * -EAGAIN or -EBUSY with the Ready condition's reason (DiskNotFound,
 * DiskNotReady, DiskInUse) and message. */
int vf_cvi_disk_check(const char *disk, const struct json_object *vd,
                      const struct vf_vm_refs *vms, bool held, char *reason, size_t reason_len,
                      char *msg, size_t msg_len);
/* "285.3Mi": bytes with a binary unit and one decimal. */
void vf_cvi_human_size(uint64_t bytes, char *buf, size_t len);
#endif
