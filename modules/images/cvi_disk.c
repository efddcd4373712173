#include <config.h>
/* ClusterVirtualImage: images made from a VirtualDisk (spec.dataSource type
 * ObjectRef, kind VirtualDisk), the controller's side of them.  cvi.c is the
 * controller every source shares and calls in here where such an image
 * differs; the worker reads the disk's volume in cvi_import.c.
 *
 * Owns: the finalizer virtfleet.io/image-source on a VirtualDisk while an
 * image is being copied from it (the disk stays, with its volume, until the
 * copy let go: taken before the import starts, let go once no import reads the
 * disk and no image is Provisioning from it), and status.source.virtualDisk
 * of such an image.  Watches: VirtualDisk (an image waits for its disk; the
 * module's VM watch kicks the images waiting for a disk a changed VM names,
 * vf_cvi_kick_waiting_for).
 *
 * Kept apart so that what a disk source adds (waiting for the disk, never
 * copying a disk a VM runs from, the hold on the disk across daemon restarts)
 * reads in one place, and cvi.c keeps to what every image needs. */
#include "cvi_internal.h"
#include "ctl_util.h"
#include "vd.h"
#include "vm_refs.h"

#include <errno.h>
#include <stdio.h>
#include <libvirt/libvirt.h>

const char *vf_cvi_disk_source_of(const struct json_object *obj)
{
    const struct json_object *ref = member(member(member(obj, "spec"), "dataSource"),
                                           "objectRef");
    return str_eq(string(ref, "kind"), VF_VD_KIND) ? string(ref, "name") : NULL;
}

struct vf_vd_volume_job *vf_cvi_disk_download_job(struct vf_images *im, const char *disk)
{
    struct json_object *vd = NULL;
    struct vf_vd_volume_job *j = NULL;
    if (im->core->object_get(im->ctx, VF_VD_KIND, disk, &vd) < 0)
        return NULL;
    const struct json_object *t = member(member(vd, "status"), "target");
    const char *node = string(t, "node"), *pool = string(t, "pool");
    const char *volume = string(t, "volume");
    void *conn = node ? im->core->node_connection(im->ctx, node) : NULL;
    if (pool && volume && conn && virConnectRef(conn) == 0) {
        if ((j = vf_vd_volume_job_new(VF_VD_DOWNLOAD)) != NULL) {
            j->conn = conn;
            snprintf(j->node, sizeof j->node, "%s", node);
            snprintf(j->pool, sizeof j->pool, "%s", pool);
            snprintf(j->volume, sizeof j->volume, "%s", volume);
        } else {
            virConnectClose(conn);
        }
    }
    json_object_put(vd);
    return j;
}

int vf_cvi_disk_check(const char *disk, const struct json_object *vd,
                      const struct vf_vm_refs *vms, bool held, char *reason, size_t reason_len,
                      char *msg, size_t msg_len)
{
    const struct json_object *st = member(vd, "status"), *t = member(st, "target");
    const char *phase = string(st, "phase");
    bool deleting = member(member(vd, "metadata"), "deletionTimestamp") != NULL;
    if (!vd) {
        snprintf(reason, reason_len, "DiskNotFound");
        snprintf(msg, msg_len, "VirtualDisk \"%s\" not found: the image waits for it", disk);
        return -ENOENT;
    }
    /* A copy that starts over (a restarted daemon) reads on from a disk it
     * holds, also one deleted meanwhile: the hold kept its volume. */
    bool readable = (str_eq(phase, "Ready") && !deleting) ||
                    (held && deleting && vf_images_has_finalizer(vd, VF_CVI_DISK_FINALIZER));
    if (!readable || !string(t, "node") || !string(t, "pool") || !string(t, "volume")) {
        snprintf(reason, reason_len, "DiskNotReady");
        snprintf(msg, msg_len, "VirtualDisk \"%s\" is %s: the image waits for it to be Ready",
                 disk, deleting ? "being deleted" : phase ? phase : "Pending");
        return -EAGAIN;
    }
    size_t n;
    const struct vf_vm_info *const *users = vf_vm_refs_users(vms, VF_VD_KIND, disk, &n);
    for (size_t i = 0; i < n; i++) {   /* by VM name: the first one is named */
        const char *node = users[i]->node;
        if (!node || !*node)
            continue;
        /* Its domain may run and write the disk: a copy would be torn. */
        snprintf(reason, reason_len, "DiskInUse");
        snprintf(msg, msg_len, "VirtualDisk \"%s\" is in use by VirtualMachine \"%s\" on node "
                 "\"%s\": stop the VM first (an image is made only from a disk no VM runs from)",
                 disk, users[i]->name, node);
        return -EBUSY;
    }
    return 0;
}

/* Not needed any more: none with an import of the disk running, none
 * Provisioning from it (a restarted daemon resumes those).  The hold itself is
 * taken by vf_cvi_disk_begin, before the import starts. */
void vf_cvi_disk_hold_sync(struct vf_images *im, const char *disk)
{
    struct json_object *vd = NULL, *imgs = NULL;
    bool needed = false;
    if (!disk || !im->vd_watch || im->core->object_get(im->ctx, VF_VD_KIND, disk, &vd) < 0)
        return;
    if (!vf_images_has_finalizer(vd, VF_CVI_DISK_FINALIZER) ||
        im->core->object_list(im->ctx, VF_CVI_KIND, &imgs) < 0) {
        json_object_put(vd);
        return;
    }
    /* Canceled jobs too: they may still be reading. */
    for (const struct import_job *j = vf_cvi_jobs_in_flight(); j && !needed; j = j->next)
        needed = j->src == SRC_DISK && str_eq(j->vd_name, disk);
    for (size_t i = 0; i < json_object_array_length(imgs) && !needed; i++) {
        struct json_object *img = json_object_array_get_idx(imgs, i);
        needed = str_eq(vf_cvi_disk_source_of(img), disk) &&
                 str_eq(string(member(img, "status"), "phase"), "Provisioning") &&
                 !member(member(img, "metadata"), "deletionTimestamp");
    }
    json_object_put(imgs);
    if (!needed &&
        vf_images_finalizer_update(im->core, im->ctx, VF_VD_KIND, vd, VF_CVI_DISK_FINALIZER,
                                   false) == 0)
        im->core->log(im->ctx, VF_LOG_INFO, "disk \"%s\": no image is copied from it any more",
                      disk);
    json_object_put(vd);
}

void vf_cvi_disk_begin(struct vf_images *im, struct cvi_rec *r, const struct json_object *obj,
                       struct json_object *status, const char *disk, bool resume)
{
    struct json_object *vd = NULL;
    char reason[64], msg[MSG_MAX];
    snprintf(r->waited_disk, sizeof r->waited_disk, "%s", disk);
    if (!im->vd_watch) {
        /* The disks' kind comes with vd.c, which starts after: its watch's
         * first events bring this image back. */
        r->wait_disk = true;
        if (!string(status, "phase"))
            vf_images_set_str(status, "phase", "Pending");
        return;
    }
    if (im->core->object_get(im->ctx, VF_VD_KIND, disk, &vd) < 0)
        vd = NULL;
    int rc = vf_cvi_disk_check(disk, vd, im->vm_refs, resume, reason, sizeof reason, msg,
                               sizeof msg);
    const char *node = string(member(member(vd, "status"), "target"), "node");
    bool keep = false;
    if (rc == 0 && !im->core->node_connection(im->ctx, node)) {
        snprintf(reason, sizeof reason, "NodeNotReady");
        snprintf(msg, sizeof msg, "waiting for node \"%s\", which holds VirtualDisk \"%s\", to "
                 "be Ready", node, disk);
        r->kick = true;   /* nodes are not watched here: looked at again on the tick */
        rc = -EAGAIN;
        /* A copy under way (a restarted daemon, before it reached the node)
         * stays Provisioning, and so keeps its hold on the disk. */
        keep = resume;
    }
    /* Taken before the import starts, so that the disk's volume stays while it runs. */
    if (rc == 0 && !vf_images_has_finalizer(vd, VF_CVI_DISK_FINALIZER) &&
        vf_images_finalizer_update(im->core, im->ctx, VF_VD_KIND, vd, VF_CVI_DISK_FINALIZER,
                                   true) < 0) {
        r->kick = true;
        rc = -EAGAIN;
        snprintf(reason, sizeof reason, "DiskNotReady");
        snprintf(msg, sizeof msg, "VirtualDisk \"%s\" changed: looking again", disk);
    }
    r->wait_disk = rc < 0;
    if (rc < 0) {
        if (!keep)
            vf_images_set_str(status, "phase", "Pending");
        vf_images_condition_set(status, "Ready", false, reason, msg);
    } else {
        const struct json_object *t = member(member(vd, "status"), "target");
        const char *format = str_eq(string(member(vd, "status"), "format"), "qcow2") ? "qcow2"
                                                                                     : "raw";
        if (vf_cvi_job_start(im, r, obj, SRC_DISK, disk, format)) {
            snprintf(msg, sizeof msg, "copying VirtualDisk \"%s\" (volume \"%s\" on node \"%s\")",
                     disk, string(t, "volume"), node);
            vf_images_set_str(status, "phase", "Provisioning");
            vf_images_set_str(status, "progress", "0.0%");
            vf_images_condition_set(status, "Ready", false, "Provisioning", msg);
        } else if (!string(status, "phase")) {
            vf_images_set_str(status, "phase", "Pending");
        }
    }
    json_object_put(vd);
}

struct json_object *vf_cvi_disk_read_from(const struct import_job *j)
{
    struct json_object *from = json_object_new_object();
    vf_images_set_str(from, "name", j->vd_name);
    vf_images_set_str(from, "node", j->vol->node);
    vf_images_set_str(from, "pool", j->vol->pool);
    vf_images_set_str(from, "volume", j->vol->volume);
    return from;
}

/* ---- watch ------------------------------------------------------------------------ */

/* A disk that gets Ready, or is let go by its VM, may be copied now. */
static void on_vd(void *opaque, enum vf_watch_event type, const struct json_object *obj)
{
    struct vf_images *im = opaque;
    (void)type;
    (void)obj;
    for (struct cvi_rec *r = im->recs; r; r = r->next)
        if (r->wait_disk)
            r->kick = true;
}

int vf_cvi_watch_disks(struct vf_images *im)
{
    struct json_object *disks = NULL;
    im->vd_watch = im->core->watch_add(im->ctx, VF_VD_KIND, on_vd, im);
    if (!im->vd_watch)
        return -EIO;
    /* Holds left by a daemon that stopped mid-copy go unless the copy resumes. */
    if (im->core->object_list(im->ctx, VF_VD_KIND, &disks) < 0)
        return 0;
    for (size_t i = 0; i < json_object_array_length(disks); i++) {
        struct json_object *d = json_object_array_get_idx(disks, i);
        if (vf_images_has_finalizer(d, VF_CVI_DISK_FINALIZER))
            vf_cvi_disk_hold_sync(im, string(member(d, "metadata"), "name"));
    }
    json_object_put(disks);
    return 0;
}
