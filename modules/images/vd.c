#include <config.h>
/* VirtualDisk: the controller (the kind is in vd_kind.c; the steps that start
 * volume jobs are in vd_steps.c, the jobs from submit to done in vd_job.c).
 *
 * Owns: VirtualDisk objects (status, finalizer virtfleet.io/disk-cleanup), their
 * libvirt volumes on the nodes, and the finalizer virtfleet.io/disk-source on a
 * ClusterVirtualImage while a disk is being copied from it (the image stays
 * Terminating until the copy let go of it).  Watches: VirtualDisk (reconciled,
 * level-triggered), ClusterVirtualImage (a disk waits for its source) and Node
 * (a disk waits for a node).  VMs (attachedToVirtualMachines, and a deleted
 * disk is held while a VM names it) are read from the module's index
 * (vm_refs.h); its watch in module.c kicks only the disks a changed VM named
 * before or after the change (vf_vd_kick).
 *
 * The durable record is the status: the node, pool and volume are written
 * (phase Provisioning) before the volume is made, so a restarted daemon finds
 * an unfinished copy and starts it over, and a deleted disk's volume is found
 * to be removed.  Each step on a node is one worker job (vd_volume.c),
 * started by vd_steps.c, its result written by vd_job.c:
 *   Pending -> CHOOSE a node (local pools: the one with most room) ->
 *   Provisioning (target written) -> CREATE -> Ready -> (spec size grows)
 *   Resizing -> RESIZE -> Ready;  deleted -> Terminating -> DELETE -> gone.
 * A node that is not Ready is waited for.  A CHOOSE or CREATE that fails for
 * a passing reason (vd_retry.c tells which) is tried again after a back-off,
 * the disk staying Provisioning with the condition Ready=False reason
 * Retrying ("attempt 3 failed: ...; next attempt in 20s"); a disk without a
 * volume yet (none chosen, or the failed CREATE left none) chooses its node
 * again each time, one whose CREATE may have left a partial volume stays on
 * that node, whose next CREATE deletes it first.  A final failure (a Failed
 * source image, a storage class that does not exist, a size below the
 * image's, a request libvirt calls invalid) is phase Failed, and stays so
 * until its spec changes (status.observedGeneration is the generation that
 * failed) or its cause is gone (the class configured, the image Ready
 * again): then it is made again from scratch, after the volume a failed
 * attempt may have left is deleted (status.staleCopy).
 *
 * The count of failed attempts is in the status (status.attempts), the time
 * of the next one only in memory: a restarted daemon tries again at once.  A
 * restart is most often an admin's fix of what failed, one early attempt per
 * restart costs little, and the count keeps the back-off growing from where
 * it was instead of starting over at 5 s. */
#include "vd_internal.h"
#include "vm_refs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TICK_MS 1000

/* ---- records ------------------------------------------------------------------- */

struct vd_rec *vf_vd_rec_find(struct vf_vd *vd, const char *name)
{
    for (struct vd_rec *r = vd->recs; r; r = r->next)
        if (!strcmp(r->name, name))
            return r;
    return NULL;
}

static struct vd_rec *rec_get(struct vf_vd *vd, const char *name)
{
    struct vd_rec *r = vf_vd_rec_find(vd, name);
    if (r)
        return r;
    if (!(r = calloc(1, sizeof *r)) || !(r->name = strdup(name))) {
        free(r);
        return NULL;
    }
    r->src_fd = -1;
    r->next = vd->recs;
    vd->recs = r;
    return r;
}

void vf_vd_source_drop(struct vd_rec *r)
{
    if (r->src_fd >= 0)
        close(r->src_fd);
    r->src_fd = -1;
}

static void rec_free(struct vf_vd *vd, struct vd_rec *r)
{
    for (struct vd_rec **pp = &vd->recs; *pp; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    if (r->job)
        atomic_store(&r->job->cancel, true);   /* its done() finds no record */
    vf_vd_source_drop(r);
    free(r->name);
    free(r);
}

void vf_vd_unref(struct vf_vd *vd)
{
    if (--vd->refs == 0) {
        vf_images_unref(vd->im);
        free(vd);
    }
}

/* ---- finalizers (the disk's own, and the hold on a source image) --------------------- */

const char *vf_vd_source_of(const struct json_object *vd_obj)
{
    const struct json_object *ref = member(member(member(vd_obj, "spec"), "dataSource"),
                                           "objectRef");
    return str_eq(string(ref, "kind"), VF_CVI_KIND) ? string(ref, "name") : NULL;
}

/* Hold image `cvi` (finalizer) while a disk is being copied from it, let go
 * when none is: a deleted image then stays Terminating until the copies end. */
void vf_vd_source_hold_sync(struct vf_vd *vd, const char *cvi)
{
    struct json_object *disks = NULL, *img = NULL;
    bool needed = false;
    if (!cvi || vd->core->object_get(vd->ctx, VF_CVI_KIND, cvi, &img) < 0)
        return;
    if (vd->core->object_list(vd->ctx, VF_VD_KIND, &disks) == 0) {
        for (size_t i = 0; i < json_object_array_length(disks) && !needed; i++) {
            struct json_object *d = json_object_array_get_idx(disks, i);
            const char *name = string(member(d, "metadata"), "name");
            struct vd_rec *r = name ? vf_vd_rec_find(vd, name) : NULL;
            needed = str_eq(vf_vd_source_of(d), cvi) &&
                     (str_eq(string(member(d, "status"), "phase"), "Provisioning") ||
                      (r && (r->src_fd >= 0 || (r->job && r->job->op == VF_VD_CREATE))));
        }
        json_object_put(disks);
    }
    vf_images_finalizer_update(vd->core, vd->ctx, VF_CVI_KIND, img, VF_VD_SOURCE_FINALIZER,
                               needed);
    json_object_put(img);
}

/* ---- VMs that use a disk ---------------------------------------------------------- */

/* status.attachedToVirtualMachines from the VMs that name the disk; users:
 * their names for messages ("" when none); running: a VM whose domain runs
 * now (name and node, for an online resize). */
static void attached_update(struct vf_vd *vd, const char *disk, struct json_object *status,
                            char *users, size_t users_len, char *run_vm, char *run_node,
                            size_t run_len)
{
    struct json_object *list = json_object_new_array();
    size_t o = 0, n;
    users[0] = run_vm[0] = run_node[0] = '\0';
    const struct vf_vm_info *const *vms = vf_vm_refs_users(vd->im->vm_refs, VF_VD_KIND, disk, &n);
    for (size_t i = 0; i < n; i++) {   /* by VM name */
        const char *vmname = vms[i]->name, *phase = vms[i]->phase, *node = vms[i]->node;
        bool mounted = node && (str_eq(phase, "Running") || str_eq(phase, "Migrating") ||
                                str_eq(phase, "Stopping") || str_eq(phase, "Starting"));
        struct json_object *e = json_object_new_object();
        vf_images_set_str(e, "name", vmname);
        json_object_object_add(e, "mounted", json_object_new_boolean(mounted));
        json_object_array_add(list, e);
        if (o < users_len)
            o += (size_t)snprintf(users + o, users_len - o, "%s\"%s\"", o ? ", " : "", vmname);
        if (mounted && str_eq(phase, "Running") && !run_vm[0]) {
            snprintf(run_vm, run_len, "%s", vmname);
            snprintf(run_node, run_len, "%s", node);
        }
    }
    if (json_object_array_length(list))
        json_object_object_add(status, "attachedToVirtualMachines", list);
    else {
        json_object_put(list);
        json_object_object_del(status, "attachedToVirtualMachines");
    }
}

/* ---- reconcile ------------------------------------------------------------------------ */

/* The reason of status's Ready condition, or NULL. */
static const char *ready_reason(const struct json_object *status)
{
    struct json_object *conds = member(status, "conditions");
    size_t n = conds && json_object_is_type(conds, json_type_array)
                   ? json_object_array_length(conds) : 0;
    for (size_t i = 0; i < n; i++) {
        struct json_object *c = json_object_array_get_idx(conds, i);
        if (str_eq(string(c, "type"), "Ready"))
            return string(c, "reason");
    }
    return NULL;
}

/* A Failed disk is made again from scratch when what failed may pass now:
 * its spec changed since (vd_kind.c lets every field of a Failed disk
 * change), its storage class is configured now, or its source image is Ready
 * (deleted and imported again).  True with the status reset to Pending; the
 * volume a failed attempt may have left becomes status.staleCopy, deleted
 * before a node is chosen (it may be in another pool or on another node). */
static bool failed_start_over(struct vf_vd *vd, struct vd_rec *r, const struct json_object *obj,
                              struct json_object *status)
{
    struct json_object *og = member(status, "observedGeneration"), *img = NULL;
    const char *reason = ready_reason(status), *why = NULL;
    const struct vf_vd_class *cls;
    char msg[MSG_MAX];
    if (r->job)
        return false;
    if (!og || json_object_get_int64(og) != r->generation) {
        why = "its spec changed";
    } else if (str_eq(reason, "StorageClassNotFound")) {
        const char *requested =
            string(member(member(obj, "spec"), "persistentVolumeClaim"), "storageClassName");
        if (vf_vd_class_resolve(&vd->set, requested, &cls, msg, sizeof msg) == 0)
            why = "its storage class is configured now";
    } else if ((str_eq(reason, "ImageFailed") || str_eq(reason, "ImageLost")) &&
               vf_vd_source_of(obj) &&
               vd->core->object_get(vd->ctx, VF_CVI_KIND, vf_vd_source_of(obj), &img) == 0) {
        if (str_eq(string(member(img, "status"), "phase"), "Ready") &&
            !member(member(img, "metadata"), "deletionTimestamp"))
            why = "its image is Ready now";
        json_object_put(img);
    }
    if (!why)
        return false;
    struct json_object *t = member(status, "target");
    if (t && string(t, "node") && string(t, "pool") && string(t, "volume") &&
        !member(status, "staleCopy")) {
        struct json_object *sc = json_object_new_object();
        vf_images_set_str(sc, "node", string(t, "node"));
        vf_images_set_str(sc, "pool", string(t, "pool"));
        vf_images_set_str(sc, "volume", string(t, "volume"));
        json_object_object_add(status, "staleCopy", sc);
    }
    static const char *const made[] = {"target", "storageClassName", "format", "capacity",
                                       "progress", "attempts"};
    for (size_t i = 0; i < sizeof made / sizeof made[0]; i++)
        json_object_object_del(status, made[i]);
    snprintf(msg, sizeof msg, "the disk was Failed and is made again: %s", why);
    vf_vd_set_phase(status, "Pending", "Pending", msg);
    r->not_before = 0;
    vf_vd_source_drop(r);
    vd->core->log(vd->ctx, VF_LOG_INFO, "disk \"%s\": was Failed; %s: made again from scratch",
                  r->name, why);
    return true;
}

static void reconcile(struct vf_vd *vd, const struct json_object *obj)
{
    const struct json_object *meta = member(obj, "metadata");
    const char *name = string(meta, "name"), *uid = string(meta, "uid");
    if (!name || !uid)
        return;
    struct vd_rec *r = rec_get(vd, name);
    if (!r)
        return;
    r->kick = false;
    if (strcmp(r->uid, uid)) {
        /* A new disk under an old name: what ran for the old one stops. */
        if (r->job)
            atomic_store(&r->job->cancel, true);
        r->job = NULL;
        vf_vd_source_drop(r);
        snprintf(r->uid, sizeof r->uid, "%s", uid);
        r->progress[0] = '\0';
        r->not_before = 0;
    }
    bool deleting = member(meta, "deletionTimestamp") != NULL;
    if (!deleting && !vf_images_has_finalizer(obj, VF_VD_FINALIZER)) {
        /* Its event brings the disk back. */
        vf_images_finalizer_update(vd->core, vd->ctx, VF_VD_KIND, obj, VF_VD_FINALIZER, true);
        return;
    }
    struct json_object *status = vf_images_status_copy(obj);
    char users[MSG_MAX], run_vm[256], run_node[256], msg[MSG_MAX];
    attached_update(vd, name, status, users, sizeof users, run_vm, run_node, sizeof run_vm);
    if (deleting) {
        vf_vd_step_delete(vd, r, obj, status, users);
        json_object_put(status);
        return;
    }
    r->generation = vf_images_generation(obj);
    if (str_eq(string(status, "phase"), "Failed") && !failed_start_over(vd, r, obj, status)) {
        vf_vd_write_status(vd, name, status);
        json_object_put(status);
        return;
    }
    json_object_object_add(status, "observedGeneration", json_object_new_int64(r->generation));
    const char *phase = string(status, "phase");
    if (r->job || r->not_before > mono_s()) {
        if (r->not_before > mono_s())
            r->kick = true;
        vf_vd_write_status(vd, name, status);
        json_object_put(status);
        return;
    }
    uint64_t size = 0;
    struct json_object *sz = member(member(member(obj, "spec"), "persistentVolumeClaim"), "size");
    if (sz)
        vf_vd_quantity(sz, &size);
    const struct json_object *t = member(status, "target");
    if (!t || !string(t, "node")) {
        const struct vf_vd_class *cls;
        const struct json_object *sc = member(status, "staleCopy");
        const char *requested =
            string(member(member(obj, "spec"), "persistentVolumeClaim"), "storageClassName");
        if (sc && vf_vd_step_stale(vd, r, status)) {
            /* A disk made again: the volume its failed attempt left goes first. */
            snprintf(msg, sizeof msg, "deleting volume \"%s\" that a failed attempt left on "
                     "node \"%s\" before the disk is made again", string(sc, "volume"),
                     string(sc, "node"));
            vf_images_condition_set(status, "Ready", false, "Pending", msg);
        } else if (vf_vd_class_resolve(&vd->set, requested, &cls, msg, sizeof msg) < 0) {
            vf_vd_fail(vd, r, status, r->generation, "StorageClassNotFound", msg);
        } else {
            vf_images_set_str(status, "storageClassName", cls->name);
            if (!phase)
                vf_vd_set_phase(status, "Pending", "Pending", "the disk waits to be made");
            vf_vd_step_choose(vd, r, obj, status, cls, size);
        }
    } else if (str_eq(phase, "Provisioning")) {
        vf_vd_step_create(vd, r, obj, status, size);
    } else if (str_eq(phase, "Ready") || str_eq(phase, "Resizing")) {
        uint64_t cap = 0;
        struct json_object *shared = member(t, "shared");
        if (run_vm[0] && !(shared && json_object_get_boolean(shared)) &&
            !str_eq(run_node, string(t, "node"))) {
            /* Its VM runs elsewhere: a block migration copied the disk there (at the
             * same path), and that copy is the disk now.  The old one is recorded
             * (status.staleCopy, durable across restarts) and deleted below: the
             * VM running from the new copy proves nothing uses it. */
            vd->core->log(vd->ctx, VF_LOG_INFO, "disk \"%s\": moved with VM \"%s\" from node "
                          "\"%s\" to node \"%s\"; deleting the stale copy there", name, run_vm,
                          string(t, "node"), run_node);
            struct json_object *sc = json_object_new_object();
            vf_images_set_str(sc, "node", string(t, "node"));
            vf_images_set_str(sc, "pool", string(t, "pool"));
            vf_images_set_str(sc, "volume", string(t, "volume"));
            json_object_object_add(status, "staleCopy", sc);
            vf_images_set_str((struct json_object *)t, "node", run_node);
        }
        /* Only while the VM runs from the disk's node: a migration back and
         * forth in between may have made the stale node the disk's again. */
        if (member(status, "staleCopy") && run_vm[0] && str_eq(run_node, string(t, "node")))
            vf_vd_step_stale(vd, r, status);
        vf_vd_quantity(member(status, "capacity"), &cap);
        if (size > cap)
            vf_vd_step_resize(vd, r, status, size, run_vm, run_node);
        else
            vf_images_set_str(status, "phase", "Ready");
    }
    vf_vd_write_status(vd, name, status);
    /* A copy that ended (or never began) lets go of its image. */
    if (!r->job && !str_eq(string(status, "phase"), "Provisioning") && vf_vd_source_of(obj))
        vf_vd_source_hold_sync(vd, vf_vd_source_of(obj));
    json_object_put(status);
}

void vf_vd_reconcile_name(struct vf_vd *vd, const char *name)
{
    struct json_object *obj = NULL;
    if (vd->core->object_get(vd->ctx, VF_VD_KIND, name, &obj) == 0) {
        reconcile(vd, obj);
        json_object_put(obj);
    }
}

/* ---- watches, tick ------------------------------------------------------------------ */

static void kick_all(struct vf_vd *vd)
{
    for (struct vd_rec *r = vd->recs; r; r = r->next)
        r->kick = true;
}

static void on_vd(void *opaque, enum vf_watch_event type, const struct json_object *obj)
{
    struct vf_vd *vd = opaque;
    const char *name = string(member(obj, "metadata"), "name");
    if (!name)
        return;
    if (type == VF_WATCH_DELETED) {
        struct vd_rec *r = vf_vd_rec_find(vd, name);
        if (r && str_eq(r->uid, string(member(obj, "metadata"), "uid")))
            rec_free(vd, r);
        return;
    }
    reconcile(vd, obj);
}

void vf_vd_kick(struct vf_vd *vd, const char *name)
{
    struct vd_rec *r = vd && name ? vf_vd_rec_find(vd, name) : NULL;
    if (r)
        r->kick = true;
}

/* Images and nodes change what disks wait for: look again on the tick.  Any
 * disk may wait for any of them (its source image, the node of its volume, a
 * node to choose), so all are looked at; VM changes are targeted instead
 * (vf_vd_kick). */
static void on_other(void *opaque, enum vf_watch_event type, const struct json_object *obj)
{
    (void)type;
    (void)obj;
    kick_all(opaque);
}

static void progress_write(struct vf_vd *vd, struct vd_rec *r, const char *progress)
{
    if (!strcmp(r->progress, progress))
        return;
    struct json_object *obj = NULL;
    if (vd->core->object_get(vd->ctx, VF_VD_KIND, r->name, &obj) < 0)
        return;
    struct json_object *status = vf_images_status_copy(obj);
    if (str_eq(string(status, "phase"), "Provisioning")) {
        vf_images_set_str(status, "progress", progress);
        vf_vd_write_status(vd, r->name, status);
        snprintf(r->progress, sizeof r->progress, "%s", progress);
    }
    json_object_put(status);
    json_object_put(obj);
}

static void tick(void *opaque)
{
    struct vf_vd *vd = opaque;
    char names[64][256];
    size_t n = 0;
    int64_t now = mono_s();
    for (struct vd_rec *r = vd->recs; r; r = r->next) {
        if (r->job && r->job->op == VF_VD_CREATE) {
            char p[16];
            vf_images_progress_text(atomic_load(&r->job->done_bytes),
                                    atomic_load(&r->job->total_bytes), p, sizeof p);
            progress_write(vd, r, p);
        }
        if (r->kick && !r->job && r->not_before <= now && n < 64)
            snprintf(names[n++], sizeof names[0], "%s", r->name);
    }
    /* Reconciling may add or free records: by name, after the walk. */
    for (size_t i = 0; i < n; i++)
        vf_vd_reconcile_name(vd, names[i]);
}

/* Holds on images left by a daemon that stopped mid-copy are released once
 * no disk is being copied from them. */
static void holds_resync(struct vf_vd *vd)
{
    struct json_object *imgs = NULL;
    if (vd->core->object_list(vd->ctx, VF_CVI_KIND, &imgs) < 0)
        return;
    for (size_t i = 0; i < json_object_array_length(imgs); i++) {
        struct json_object *img = json_object_array_get_idx(imgs, i);
        if (vf_images_has_finalizer(img, VF_VD_SOURCE_FINALIZER))
            vf_vd_source_hold_sync(vd, string(member(img, "metadata"), "name"));
    }
    json_object_put(imgs);
}

/* ---- start / stop ------------------------------------------------------------------- */

int vf_vd_start(struct vf_images *im, const struct json_object *settings, struct vf_vd **out)
{
    const struct vf_core *core = im->core;
    struct vf_error err = {0};
    *out = NULL;
    struct vf_vd *vd = calloc(1, sizeof *vd);
    if (!vd)
        return -ENOMEM;
    int rc = vf_vd_settings_read(settings, &vd->set, &err);
    if (rc < 0) {
        core->log(im->ctx, VF_LOG_ERROR, "%s", err.message);
        free(vd);
        return rc;
    }
    vd->im = im;
    vf_images_ref(im);
    vd->ctx = im->ctx;
    vd->core = core;
    vd->refs = 1;
    vd->timer = -1;
    if ((rc = core->kind_register(vd->ctx, &vf_vd_kind)) < 0) {
        vf_vd_unref(vd);
        return rc;
    }
    *out = vd;
    vd->vd_watch = core->watch_add(vd->ctx, VF_VD_KIND, on_vd, vd);
    vd->cvi_watch = core->watch_add(vd->ctx, VF_CVI_KIND, on_other, vd);
    vd->node_watch = core->watch_add(vd->ctx, "Node", on_other, vd);
    vd->timer = core->timer_add(vd->ctx, TICK_MS, tick, vd);
    if (!vd->vd_watch || !vd->cvi_watch || !vd->node_watch || vd->timer < 0)
        return -EIO;
    holds_resync(vd);
    return 0;
}

int vf_vd_reconfigure(struct vf_vd *vd, const struct json_object *settings)
{
    struct vf_error err = {0};
    struct vf_vd_settings set;
    int rc = vf_vd_settings_read(settings, &set, &err);
    if (rc < 0) {
        vd->core->log(vd->ctx, VF_LOG_ERROR, "%s", err.message);
        return rc;
    }
    vd->set = set;
    kick_all(vd);
    return 0;
}

void vf_vd_stop(struct vf_vd *vd)
{
    if (!vd)
        return;
    vd->stopped = true;
    /* Watches and the timer go with the module (the core removes them). */
    if (vd->timer > 0)
        vd->core->timer_remove(vd->ctx, vd->timer);
    if (vd->vd_watch)
        vd->core->watch_remove(vd->ctx, vd->vd_watch);
    if (vd->cvi_watch)
        vd->core->watch_remove(vd->ctx, vd->cvi_watch);
    if (vd->node_watch)
        vd->core->watch_remove(vd->ctx, vd->node_watch);
    while (vd->recs)
        rec_free(vd, vd->recs);
    vf_vd_unref(vd);
}
