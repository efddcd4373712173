#include <config.h>
/* VirtualDisk: the steps of the state machine (vd.c describes it and calls
 * them from reconcile) that start a volume job: CHOOSE a node, CREATE the
 * volume (from an image or empty), RESIZE it, DELETE a stale copy or the
 * disk's volume.  Each looks at what it waits for (a Ready node, the source
 * image, no other job on the volume), sets the status saying so, or builds
 * the job with its node connections and submits it (vd_job.c, which also
 * writes what the job did).  A deleted disk ends here too: once no VM or
 * image uses it and its volume is gone, its finalizer is dropped.
 *
 * Owns: taking the source image for a copy (its finalizer
 * virtfleet.io/disk-source, set here, let go by vd.c once no copy needs it,
 * and its file opened into the disk's record) and the choice of the nodes a
 * job talks to.
 *
 * Kept apart so that reconcile in vd.c reads as the state machine, and what
 * each step needs before its job can run reads here, one step at a time. */
#include "vd_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <libvirt/libvirt.h>

/* ---- the nodes and the volume a job works on ------------------------------------------ */

/* conn: borrowed from the core; the job takes its own reference. */
static void *conn_ref(void *conn)
{
    if (conn && virConnectRef(conn) == 0)
        return conn;
    return NULL;
}

/* Ready nodes (not cordoned) with a connection, sorted by name (the store's order). */
static size_t candidates(struct vf_vd *vd, struct vf_vd_volume_job *j)
{
    struct json_object *nodes = NULL;
    if (vd->core->object_list(vd->ctx, "Node", &nodes) < 0)
        return 0;
    for (size_t i = 0; i < json_object_array_length(nodes) &&
                       j->n_candidates < VF_VD_MAX_CANDIDATES; i++) {
        struct json_object *n = json_object_array_get_idx(nodes, i);
        const char *name = string(member(n, "metadata"), "name");
        struct json_object *unsched = member(member(n, "spec"), "unschedulable");
        if (!name || !str_eq(string(member(n, "status"), "phase"), "Ready") ||
            (unsched && json_object_get_boolean(unsched)))
            continue;
        void *conn = conn_ref(vd->core->node_connection(vd->ctx, name));
        if (!conn)
            continue;
        struct vf_vd_candidate *c = &j->candidates[j->n_candidates++];
        snprintf(c->node, sizeof c->node, "%s", name);
        c->conn = conn;
    }
    json_object_put(nodes);
    return j->n_candidates;
}

/* A job of `op` on the volume status.target names, on its node's connection
 * (for a shared pool any Ready node's will do); node: the node it would run
 * on.  NULL when that node is not Ready (*node_down) or without memory. */
static struct vf_vd_volume_job *volume_job(struct vf_vd *vd, enum vf_vd_op op,
                                           const struct json_object *target, char *node,
                                           size_t len, bool *node_down)
{
    const char *own = string(target, "node");
    struct json_object *shared = member(target, "shared");
    void *conn = own ? vd->core->node_connection(vd->ctx, own) : NULL;
    snprintf(node, len, "%s", own ? own : "");
    if (!conn && shared && json_object_get_boolean(shared)) {
        struct vf_vd_volume_job probe = {0};
        if (candidates(vd, &probe) > 0) {
            snprintf(node, len, "%s", probe.candidates[0].node);
            conn = vd->core->node_connection(vd->ctx, node);
        }
        for (size_t i = 0; i < probe.n_candidates; i++)
            virConnectClose(probe.candidates[i].conn);
    }
    conn = conn_ref(conn);
    *node_down = !conn;
    struct vf_vd_volume_job *j = conn ? vf_vd_volume_job_new(op) : NULL;
    if (!j) {
        if (conn)
            virConnectClose(conn);
        return NULL;
    }
    j->conn = conn;
    snprintf(j->node, sizeof j->node, "%s", node);
    snprintf(j->pool, sizeof j->pool, "%s", string(target, "pool"));
    snprintf(j->volume, sizeof j->volume, "%s", string(target, "volume"));
    return j;
}

static void volume_name(const char *name, const char *uid, char *buf, size_t len)
{
    /* Readable, and unique across disks of the same name over time. */
    snprintf(buf, len, "vd-%s-%.8s", name, uid);
}

/* ---- the source image ---------------------------------------------------------------- */

/* The image a disk is made from: Ready, its file and its size.  Else false
 * with the condition set. */
static bool source_ready(struct vf_vd *vd, struct vd_rec *r, const char *cvi,
                         struct json_object *status, char *path, size_t path_len, char *format,
                         uint64_t *virt)
{
    struct json_object *img = NULL;
    char msg[MSG_MAX];
    if (vd->core->object_get(vd->ctx, VF_CVI_KIND, cvi, &img) < 0) {
        snprintf(msg, sizeof msg, "ClusterVirtualImage \"%s\" not found: the disk waits for it",
                 cvi);
        vf_vd_set_phase(status, "Pending", "ImageNotFound", msg);
        return false;
    }
    const struct json_object *is = member(img, "status");
    const char *p = string(member(is, "target"), "path");
    struct json_object *unpacked = member(member(is, "size"), "unpackedBytes");
    bool deleting = member(member(img, "metadata"), "deletionTimestamp") != NULL;
    if (!deleting && str_eq(string(is, "phase"), "Failed")) {
        /* Its import failed for good: waiting cannot help, a new image (or
         * spec.dataSource) can (failed_start_over, vd.c). */
        snprintf(msg, sizeof msg, "ClusterVirtualImage \"%s\" is Failed: fix it (delete it and "
                 "create it again) or name another image in spec.dataSource", cvi);
        vf_vd_fail(vd, r, status, r->generation, "ImageFailed", msg);
        json_object_put(img);
        return false;
    }
    if (deleting || !str_eq(string(is, "phase"), "Ready") || !p) {
        snprintf(msg, sizeof msg, "ClusterVirtualImage \"%s\" is %s: the disk waits for it to "
                 "be Ready", cvi, deleting ? "being deleted" : string(is, "phase") ?
                 string(is, "phase") : "Pending");
        vf_vd_set_phase(status, "Pending", "ImageNotReady", msg);
        json_object_put(img);
        return false;
    }
    snprintf(path, path_len, "%s", p);
    snprintf(format, 8, "%s", str_eq(string(is, "format"), "qcow2") ? "qcow2" : "raw");
    *virt = 0;
    if (unpacked)
        *virt = (uint64_t)strtoull(json_object_get_string(unpacked), NULL, 10);
    json_object_put(img);
    return true;
}

/* Hold the image (finalizer) and open its file: from here on deleting the
 * image waits for this disk, and the open file outlives its removal.  false
 * with the status set when the image is not there to copy. */
static bool source_take(struct vf_vd *vd, struct vd_rec *r, const char *cvi,
                        struct json_object *status, char *format, uint64_t *virt)
{
    char path[4096];
    struct json_object *img = NULL;
    if (vd->core->object_get(vd->ctx, VF_CVI_KIND, cvi, &img) == 0) {
        if (!member(member(img, "metadata"), "deletionTimestamp") || r->src_fd >= 0)
            vf_images_finalizer_update(vd->core, vd->ctx, VF_CVI_KIND, img,
                                       VF_VD_SOURCE_FINALIZER, true);
        json_object_put(img);
    }
    if (r->src_fd >= 0) {
        /* Opened before: the image may be going, its file is still ours. */
        snprintf(format, 8, "%s", r->src_format);
        *virt = r->src_virt;
        return true;
    }
    if (!source_ready(vd, r, cvi, status, path, sizeof path, format, virt))
        return false;
    if ((r->src_fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        char msg[MSG_MAX];
        snprintf(msg, sizeof msg, "cannot open the file of ClusterVirtualImage \"%s\": %s", cvi,
                 strerror(errno));
        vf_vd_set_phase(status, "Pending", "ImageNotReady", msg);
        return false;
    }
    snprintf(r->src_format, sizeof r->src_format, "%s", format);
    r->src_virt = *virt;
    return true;
}

/* ---- steps --------------------------------------------------------------------------- */

/* No node yet: take the source, then choose a node for the volume. */
void vf_vd_step_choose(struct vf_vd *vd, struct vd_rec *r, const struct json_object *obj,
                       struct json_object *status, const struct vf_vd_class *cls,
                       uint64_t size)
{
    const char *cvi = vf_vd_source_of(obj);
    char format[8], msg[MSG_MAX], need[32], have[32], note[32];
    uint64_t virt = 0;
    if (cvi && !source_take(vd, r, cvi, status, format, &virt)) {
        r->kick = true;
        return;
    }
    if (cvi && size && size < virt) {
        vf_vd_quantity_format(size, have, sizeof have);
        vf_vd_quantity_format(virt, need, sizeof need);
        snprintf(msg, sizeof msg, "spec.persistentVolumeClaim.size %s is smaller than the "
                 "image (%s): make it at least that", have, need);
        vf_vd_fail(vd, r, status, r->generation, "SizeTooSmall", msg);
        return;
    }
    struct vf_vd_volume_job *j = vf_vd_volume_job_new(VF_VD_CHOOSE);
    if (!j) {
        r->kick = true;
        return;
    }
    snprintf(j->pool, sizeof j->pool, "%s", cls->pool);
    volume_name(r->name, r->uid, j->volume, sizeof j->volume);
    j->capacity = size > virt ? size : virt;
    struct stat st;
    /* Room for the copy's data: its holes take none. */
    if (r->src_fd >= 0 && fstat(r->src_fd, &st) == 0)
        j->src_bytes = (uint64_t)st.st_blocks * 512;
    if (candidates(vd, j) == 0) {
        /* A wait, not an attempt: nothing was tried, and a Node event ends it. */
        vf_vd_volume_job_free(j);
        vf_vd_attempt_note(status, note, sizeof note);
        snprintf(msg, sizeof msg, "waiting for a Ready node to create the volume on%s", note);
        vf_images_condition_set(status, "Ready", false, "NoNodeReady", msg);
        if (!string(status, "phase"))
            vf_images_set_str(status, "phase", "Pending");
        r->kick = true;
        return;
    }
    if (cls->shared) {
        /* Every node sees the same pool: the first one answers for all. */
        for (size_t i = 1; i < j->n_candidates; i++)
            virConnectClose(j->candidates[i].conn);
        j->n_candidates = 1;
    }
    vf_vd_attempt_note(status, note, sizeof note);
    snprintf(msg, sizeof msg, "%s%s", cls->shared ? "checking the storage pool"
                                                  : "choosing the node for the volume", note);
    if (vf_vd_job_submit(vd, r, j, NULL))
        vf_vd_set_phase(status, "Provisioning", "ChoosingNode", msg);
}

/* Provisioning with its target recorded: make the volume. */
void vf_vd_step_create(struct vf_vd *vd, struct vd_rec *r, const struct json_object *obj,
                       struct json_object *status, uint64_t size)
{
    const struct json_object *t = member(status, "target");
    const char *cvi = vf_vd_source_of(obj);
    char format[8] = "qcow2", node[256], msg[MSG_MAX], note[32];
    uint64_t virt = 0;
    if (cvi && !source_take(vd, r, cvi, status, format, &virt)) {
        if (str_eq(string(status, "phase"), "Failed"))
            return;
        /* A restarted daemon lost the file of an image deleted (or imported
         * again) meanwhile: the copy cannot go on.  Made again from scratch
         * once an image of that name is Ready (failed_start_over, vd.c). */
        snprintf(msg, sizeof msg, "the file of ClusterVirtualImage \"%s\" is gone (the image "
                 "was deleted during the copy): the disk is made again once the image is "
                 "Ready, or name another image in spec.dataSource", cvi);
        vf_vd_fail(vd, r, status, r->generation, "ImageLost", msg);
        return;
    }
    if (vf_vd_volume_busy(string(t, "volume"))) {
        r->kick = true;   /* an earlier job (of a restarted module) lets go first */
        return;
    }
    bool node_down;
    struct vf_vd_volume_job *j = volume_job(vd, VF_VD_CREATE, t, node, sizeof node, &node_down);
    vf_vd_attempt_note(status, note, sizeof note);
    if (!j) {
        if (node_down) {
            /* A wait, not an attempt: a partial volume there binds the disk to it. */
            snprintf(msg, sizeof msg, "waiting for node \"%s\" to be Ready to create the "
                     "volume%s", node, note);
            vf_images_condition_set(status, "Ready", false, "NodeNotReady", msg);
        }
        r->kick = true;
        return;
    }
    if (cvi) {
        struct stat st;
        if ((j->src_fd = fcntl(r->src_fd, F_DUPFD_CLOEXEC, 0)) < 0 ||
            fstat(j->src_fd, &st) < 0) {
            snprintf(msg, sizeof msg, "cannot read the file of ClusterVirtualImage \"%s\": %s",
                     cvi, strerror(errno));
            vf_images_condition_set(status, "Ready", false, "ImageNotReady", msg);
            vf_vd_volume_job_free(j);
            r->kick = true;
            return;
        }
        j->src_bytes = (uint64_t)st.st_size;
    }
    snprintf(j->format, sizeof j->format, "%s", format);
    j->capacity = size > virt ? size : virt;
    if (vf_vd_job_submit(vd, r, j, cvi)) {
        vf_images_set_str(status, "format", format);
        snprintf(msg, sizeof msg, "%s%s", cvi ? "copying the image into the volume"
                                              : "creating the volume", note);
        vf_vd_set_phase(status, "Provisioning", "Provisioning", msg);
    }
}

void vf_vd_step_resize(struct vf_vd *vd, struct vd_rec *r, struct json_object *status,
                       uint64_t size, const char *run_vm, const char *run_node)
{
    const struct json_object *t = member(status, "target");
    char node[256], msg[MSG_MAX];
    if (vf_vd_volume_busy(string(t, "volume"))) {
        r->kick = true;
        return;
    }
    bool node_down;
    struct vf_vd_volume_job *j = volume_job(vd, VF_VD_RESIZE, t, node, sizeof node, &node_down);
    if (!j) {
        if (node_down) {
            snprintf(msg, sizeof msg, "waiting for node \"%s\" to be Ready to grow the volume",
                     node);
            vf_images_condition_set(status, "Resized", false, "NodeNotReady", msg);
        }
        r->kick = true;
        return;
    }
    j->capacity = size;
    if (run_vm[0]) {
        snprintf(j->domain, sizeof j->domain, "%s", run_vm);
        j->dom_conn = conn_ref(vd->core->node_connection(vd->ctx, run_node));
    }
    if (vf_vd_job_submit(vd, r, j, NULL)) {
        vf_images_set_str(status, "phase", "Resizing");
        vf_images_condition_set(status, "Resized", false, "Resizing", run_vm[0]
                                ? "growing the disk of the running VM" : "growing the volume");
    }
}

/* The copy a block migration left on the node the disk was on
 * (status.staleCopy): deleted once the VM runs from the new one, or with the
 * disk.  True when a job for it was submitted (or one is due). */
bool vf_vd_step_stale(struct vf_vd *vd, struct vd_rec *r, struct json_object *status)
{
    const struct json_object *sc = member(status, "staleCopy");
    const char *node = string(sc, "node"), *pool = string(sc, "pool");
    const char *volume = string(sc, "volume");
    if (!node || !pool || !volume)
        return false;
    if (str_eq(node, string(member(status, "target"), "node"))) {
        /* The disk is back on that node: the copy there is the disk. */
        json_object_object_del(status, "staleCopy");
        return false;
    }
    if (vf_vd_volume_busy(volume)) {
        r->kick = true;
        return true;
    }
    void *conn = conn_ref(vd->core->node_connection(vd->ctx, node));
    struct vf_vd_volume_job *j = conn ? vf_vd_volume_job_new(VF_VD_DELETE) : NULL;
    if (!j) {
        if (conn)
            virConnectClose(conn);
        r->not_before = mono_s() + RETRY_S;
        r->kick = true;
        return true;
    }
    j->conn = conn;
    snprintf(j->node, sizeof j->node, "%s", node);
    snprintf(j->pool, sizeof j->pool, "%s", pool);
    snprintf(j->volume, sizeof j->volume, "%s", volume);
    struct job_ctx *c = vf_vd_job_submit(vd, r, j, NULL);
    if (c)
        c->stale = true;
    return true;
}

/* Terminating: wait for the VMs, then delete the volume, then let go. */
void vf_vd_step_delete(struct vf_vd *vd, struct vd_rec *r, const struct json_object *obj,
                       struct json_object *status, const char *users)
{
    const struct json_object *t = member(status, "target");
    char msg[MSG_MAX], node[256];
    vf_images_set_str(status, "phase", "Terminating");
    if (r->job) {
        atomic_store(&r->job->cancel, true);   /* its done() comes back here */
        vf_vd_write_status(vd, r->name, status);
        return;
    }
    vf_vd_source_drop(r);
    if (users[0]) {
        snprintf(msg, sizeof msg, "deletion waits until no virtual machine uses the disk: "
                 "named in spec.blockDeviceRefs of %s", users);
        vf_images_condition_set(status, "InUse", true, "UsedByVirtualMachine", msg);
        vf_vd_write_status(vd, r->name, status);
        return;
    }
    if (vf_images_has_finalizer(obj, VF_CVI_DISK_FINALIZER)) {
        /* An image is being copied from the volume (cvi_disk.c holds the disk):
         * the volume stays until the copy let go; its update brings us back. */
        vf_images_condition_set(status, "InUse", true, "UsedByImage", "deletion waits until "
                                "the ClusterVirtualImage being made from the disk has read it");
        vf_vd_write_status(vd, r->name, status);
        return;
    }
    vf_images_condition_remove(status, "InUse");
    if (vf_vd_step_stale(vd, r, status)) {
        vf_vd_write_status(vd, r->name, status);
        return;
    }
    if (t && string(t, "volume") && vf_vd_volume_busy(string(t, "volume"))) {
        r->kick = true;
        vf_vd_write_status(vd, r->name, status);
        return;
    }
    if (t && string(t, "volume")) {
        bool node_down;
        struct vf_vd_volume_job *j =
            volume_job(vd, VF_VD_DELETE, t, node, sizeof node, &node_down);
        if (!j) {
            if (node_down) {
                snprintf(msg, sizeof msg, "waiting for node \"%s\" to be Ready to delete the "
                         "volume", node);
                vf_images_condition_set(status, "Ready", false, "NodeNotReady", msg);
            }
            r->kick = true;
            vf_vd_write_status(vd, r->name, status);
            return;
        }
        vf_vd_job_submit(vd, r, j, NULL);
        vf_vd_write_status(vd, r->name, status);
        return;
    }
    vf_vd_write_status(vd, r->name, status);
    const char *cvi = vf_vd_source_of(obj);
    if (vf_images_finalizer_update(vd->core, vd->ctx, VF_VD_KIND, obj, VF_VD_FINALIZER, false) == 0)
        vd->core->log(vd->ctx, VF_LOG_INFO, "disk \"%s\": deleted", r->name);
    vf_vd_source_hold_sync(vd, cvi);
}
