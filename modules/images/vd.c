#include <config.h>
/* VirtualDisk: the kind and its controller.
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
 * to be removed.  Each step on a node is one worker job (vd_volume.c):
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
#include "vd.h"
#include "vd_volume.h"
#include "cvi.h"
#include "ctl_util.h"
#include "vm_refs.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <libvirt/libvirt.h>

#define TICK_MS 1000
#define MSG_MAX 768
#define RETRY_S 5

struct vd_rec {
    char *name;
    char uid[64];
    struct vf_vd_volume_job *job;
    char progress[16];             /* last written */
    bool kick;                     /* reconcile on the next tick */
    int64_t not_before;            /* CLOCK_MONOTONIC seconds: a failed step waits */
    int64_t generation;            /* of the spec last reconciled: a job is made from it */
    /* The source image's file, open from the start of a copy to its end, so
     * that deleting the image meanwhile cannot take it away. */
    int src_fd;
    char src_format[8];
    uint64_t src_virt;
    struct vd_rec *next;
};

struct vf_vd {
    struct vf_images *im;          /* holds a reference */
    struct vf_module_ctx *ctx;
    const struct vf_core *core;
    int refs;                      /* the controller and each job in flight (loop thread) */
    bool stopped;
    struct vf_vd_settings set;
    struct vd_rec *recs;
    struct vf_watch *vd_watch, *cvi_watch, *node_watch;
    int timer;
};

struct job_ctx {
    struct vf_vd *vd;
    char name[256], uid[64];
    char source[256];              /* CREATE from an image: the image's name */
    bool stale;                    /* DELETE of status.staleCopy, not of the disk */
    int64_t generation;            /* of the spec the job was made from */
    struct vf_vd_volume_job *j;
    struct job_ctx *next;          /* in jobs_in_flight */
};

/* Jobs of every instance of the module (it may restart while a job still
 * runs): a volume is worked on by one job at a time.  Loop thread only. */
static struct job_ctx *jobs_in_flight;

/* Volume names carry the disk's uid: one name, one volume. */
static bool volume_busy(const char *volume)
{
    for (struct job_ctx *c = jobs_in_flight; c && volume; c = c->next)
        if (c->j->op != VF_VD_CHOOSE && !strcmp(c->j->volume, volume))
            return true;
    return false;
}

/* ---- small helpers (member, string, str_eq, mono_s: ctl_util.h) ---------------- */

static void set_phase(struct json_object *status, const char *phase, const char *reason,
                      const char *msg)
{
    vf_images_set_str(status, "phase", phase);
    vf_images_condition_set(status, "Ready", str_eq(phase, "Ready"), reason, msg);
}

static void write_status(struct vf_vd *vd, const char *name, struct json_object *status)
{
    vf_images_status_write(vd->core, vd->ctx, VF_VD_KIND, "disk", name, status);
}

/* ---- records ------------------------------------------------------------------- */

static struct vd_rec *rec_find(struct vf_vd *vd, const char *name)
{
    for (struct vd_rec *r = vd->recs; r; r = r->next)
        if (!strcmp(r->name, name))
            return r;
    return NULL;
}

static struct vd_rec *rec_get(struct vf_vd *vd, const char *name)
{
    struct vd_rec *r = rec_find(vd, name);
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

static void source_drop(struct vd_rec *r)
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
    source_drop(r);
    free(r->name);
    free(r);
}

static void vd_unref(struct vf_vd *vd)
{
    if (--vd->refs == 0) {
        vf_images_unref(vd->im);
        free(vd);
    }
}

/* ---- finalizers (the disk's own, and the hold on a source image) --------------------- */

static const char *source_of(const struct json_object *vd_obj)
{
    const struct json_object *ref = member(member(member(vd_obj, "spec"), "dataSource"),
                                           "objectRef");
    return str_eq(string(ref, "kind"), VF_CVI_KIND) ? string(ref, "name") : NULL;
}

/* Hold image `cvi` (finalizer) while a disk is being copied from it, let go
 * when none is: a deleted image then stays Terminating until the copies end. */
static void source_hold_sync(struct vf_vd *vd, const char *cvi)
{
    struct json_object *disks = NULL, *img = NULL;
    bool needed = false;
    if (!cvi || vd->core->object_get(vd->ctx, VF_CVI_KIND, cvi, &img) < 0)
        return;
    if (vd->core->object_list(vd->ctx, VF_VD_KIND, &disks) == 0) {
        for (size_t i = 0; i < json_object_array_length(disks) && !needed; i++) {
            struct json_object *d = json_object_array_get_idx(disks, i);
            const char *name = string(member(d, "metadata"), "name");
            struct vd_rec *r = name ? rec_find(vd, name) : NULL;
            needed = str_eq(source_of(d), cvi) &&
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

/* ---- jobs ---------------------------------------------------------------------------- */

static void reconcile(struct vf_vd *vd, const struct json_object *obj);

static void reconcile_name(struct vf_vd *vd, const char *name)
{
    struct json_object *obj = NULL;
    if (vd->core->object_get(vd->ctx, VF_VD_KIND, name, &obj) == 0) {
        reconcile(vd, obj);
        json_object_put(obj);
    }
}

static void job_run(void *opaque)
{
    struct job_ctx *c = opaque;
    vf_vd_volume_run(c->j);
}

static void job_done(void *opaque);

/* conn: borrowed from the core; the job takes its own reference. */
static void *conn_ref(void *conn)
{
    if (conn && virConnectRef(conn) == 0)
        return conn;
    return NULL;
}

static struct job_ctx *job_submit(struct vf_vd *vd, struct vd_rec *r,
                                  struct vf_vd_volume_job *j, const char *source)
{
    static const char *const what[] = {"disk: choose a node", "disk: create the volume",
                                       "disk: resize the volume", "disk: delete the volume"};
    struct job_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        vf_vd_volume_job_free(j);
        r->kick = true;
        return NULL;
    }
    c->vd = vd;
    c->j = j;
    snprintf(c->name, sizeof c->name, "%s", r->name);
    snprintf(c->uid, sizeof c->uid, "%s", r->uid);
    c->generation = r->generation;
    if (source)
        snprintf(c->source, sizeof c->source, "%s", source);
    vd->refs++;
    if (vd->core->job_submit(vd->ctx, what[j->op], job_run, job_done, c) < 0) {
        vd->refs--;
        vf_vd_volume_job_free(j);
        free(c);
        r->kick = true;
        return NULL;
    }
    c->next = jobs_in_flight;
    jobs_in_flight = c;
    r->job = j;
    r->progress[0] = '\0';
    return c;
}

static void target_set(struct json_object *status, const char *node, const struct vf_vd_class *c,
                       const char *volume, const char *path)
{
    struct json_object *t = json_object_new_object();
    vf_images_set_str(t, "node", node);
    vf_images_set_str(t, "pool", c->pool);
    vf_images_set_str(t, "volume", volume);
    if (path)
        vf_images_set_str(t, "path", path);
    json_object_object_add(t, "shared", json_object_new_boolean(c->shared));
    json_object_object_add(status, "target", t);
}

/* ---- failures -------------------------------------------------------------------------- */

/* status.attempts: the failed attempts at making the volume so far. */
static unsigned attempts_of(const struct json_object *status)
{
    struct json_object *a = member(status, "attempts");
    int64_t n = a && json_object_is_type(a, json_type_int) ? json_object_get_int64(a) : 0;
    return n > 0 && n < 1000000 ? (unsigned)n : 0;
}

/* " (attempt 3)" while attempts have failed before, else "". */
static void attempt_note(const struct json_object *status, char *buf, size_t len)
{
    unsigned n = attempts_of(status);
    buf[0] = '\0';
    if (n)
        snprintf(buf, len, " (attempt %u)", n + 1);
}

/* Final: Failed for the spec of `generation` (status.observedGeneration), so
 * that a new spec starts it over (failed_start_over). */
static void fail(struct vf_vd *vd, struct vd_rec *r, struct json_object *status,
                 int64_t generation, const char *reason, const char *msg)
{
    set_phase(status, "Failed", reason, msg);
    json_object_object_add(status, "observedGeneration", json_object_new_int64(generation));
    json_object_object_del(status, "attempts");
    source_drop(r);
    vd->core->log(vd->ctx, VF_LOG_WARN, "disk \"%s\": failed (%s): %s", r->name, reason, msg);
}

/* A CHOOSE or CREATE that failed: Failed when trying again cannot help, else
 * Provisioning with the Retrying condition until the back-off has passed.
 * The image's file stays open for the next attempt. */
static void attempt_failed(struct vf_vd *vd, struct vd_rec *r, const struct job_ctx *c,
                           struct json_object *status)
{
    const struct vf_vd_volume_job *j = c->j;
    char msg[MSG_MAX];
    if (!vf_vd_failure_transient(j->rc, j->lv_code)) {
        fail(vd, r, status, c->generation, j->err.reason, j->err.message);
        return;
    }
    unsigned n = attempts_of(status) + 1, delay = vf_vd_retry_delay(n, r->uid);
    vf_vd_retry_message(n, j->err.message, delay, msg, sizeof msg);
    json_object_object_add(status, "attempts", json_object_new_int64(n));
    /* Nothing left on the node: free to choose another one, which may have
     * the room or the connection this one lacked. */
    if (j->op == VF_VD_CREATE && j->no_volume)
        json_object_object_del(status, "target");
    set_phase(status, "Provisioning", "Retrying", msg);
    r->not_before = mono_s() + delay;
    r->kick = true;
    vd->core->log(vd->ctx, VF_LOG_WARN, "disk \"%s\": %s", r->name, msg);
}

static void job_done(void *opaque)
{
    struct job_ctx *c = opaque;
    struct vf_vd *vd = c->vd;
    struct vf_vd_volume_job *j = c->j;
    struct json_object *obj = NULL;
    for (struct job_ctx **pp = &jobs_in_flight; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    struct vd_rec *r = vd->stopped ? NULL : rec_find(vd, c->name);
    if (r && r->job == j)
        r->job = NULL;
    if (vd->stopped || !r || strcmp(r->uid, c->uid) ||
        vd->core->object_get(vd->ctx, VF_VD_KIND, c->name, &obj) < 0)
        goto out;
    struct json_object *status = vf_images_status_copy(obj);
    char msg[MSG_MAX], cap[32];
    bool deleting = member(member(obj, "metadata"), "deletionTimestamp") != NULL;
    if (j->rc == -ECANCELED || (deleting && j->op != VF_VD_DELETE)) {
        /* Deleted meanwhile: reconcile takes it from here (its volume is in the status). */
    } else if (j->op == VF_VD_CHOOSE) {
        if (j->rc < 0) {
            /* Still Provisioning (the image stays held). */
            attempt_failed(vd, r, c, status);
        } else {
            const struct vf_vd_class *cls = vf_vd_class_find(&vd->set, string(status,
                                                                        "storageClassName"));
            if (!cls) {
                snprintf(msg, sizeof msg, "storage class \"%s\" is no longer configured",
                         string(status, "storageClassName"));
                fail(vd, r, status, c->generation, "StorageClassNotFound", msg);
            } else {
                /* The durable record first: a restart finds the volume by it. */
                target_set(status, j->chosen, cls, j->volume, NULL);
                set_phase(status, "Provisioning", "Provisioning", "creating the volume");
                vf_images_set_str(status, "progress", "0.0%");
            }
            r->kick = true;
        }
    } else if (j->op == VF_VD_CREATE || j->op == VF_VD_RESIZE) {
        if (j->rc < 0) {
            if (j->op == VF_VD_CREATE) {
                attempt_failed(vd, r, c, status);
            } else {
                /* The volume is as it was: Ready, and the resize is tried again later. */
                set_phase(status, "Ready", "Ready", "the disk is ready to use");
                vf_images_condition_set(status, "Resized", false, j->err.reason, j->err.message);
                r->not_before = mono_s() + RETRY_S * 6;
                r->kick = true;
            }
        } else {
            struct json_object *t = member(status, "target");
            if (j->op == VF_VD_CREATE) {
                source_drop(r);
                json_object_object_del(status, "attempts");
            }
            if (t)
                vf_images_set_str(t, "path", j->path);
            vf_vd_quantity_format(j->capacity_out, cap, sizeof cap);
            vf_images_set_str(status, "capacity", cap);
            vf_images_set_str(status, "progress", "100%");
            set_phase(status, "Ready", "Ready", "the disk is ready to use");
            if (j->op == VF_VD_RESIZE)
                vf_images_condition_set(status, "Resized", true, "Resized",
                                        "the disk has the size the spec asks for");
            vd->core->log(vd->ctx, VF_LOG_INFO, "disk \"%s\": %s on node \"%s\" (%s, %s)",
                          c->name, j->op == VF_VD_CREATE ? "ready" : "resized", j->node, cap,
                          j->path);
        }
    } else if (j->op == VF_VD_DELETE && c->stale) {
        struct json_object *sc = member(status, "staleCopy");
        if (j->rc < 0) {
            vd->core->log(vd->ctx, VF_LOG_WARN, "disk \"%s\": cannot delete the stale copy, "
                          "volume \"%s\" on node \"%s\" (retried): %s", c->name, j->volume,
                          j->node, j->err.message);
            r->not_before = mono_s() + RETRY_S;
            r->kick = true;
        } else {
            if (sc && str_eq(string(sc, "node"), j->node))
                json_object_object_del(status, "staleCopy");
            vd->core->log(vd->ctx, VF_LOG_INFO, "disk \"%s\": the stale copy, volume \"%s\" "
                          "on node \"%s\", is deleted", c->name, j->volume, j->node);
        }
    } else if (j->op == VF_VD_DELETE) {
        if (j->rc < 0) {
            snprintf(msg, sizeof msg, "cannot delete the volume (retried): %s", j->err.message);
            vf_images_condition_set(status, "Ready", false, j->err.reason, msg);
            r->not_before = mono_s() + RETRY_S;
            r->kick = true;
        } else {
            json_object_object_del(status, "target");
            vd->core->log(vd->ctx, VF_LOG_INFO, "disk \"%s\": volume \"%s\" deleted on node "
                          "\"%s\"", c->name, j->volume, j->node);
        }
    }
    write_status(vd, c->name, status);
    bool failed = str_eq(string(status, "phase"), "Failed");
    json_object_put(status);
    if (c->source[0])
        source_hold_sync(vd, c->source);
    else if (failed && source_of(obj))   /* a Failed disk is not reconciled to the end */
        source_hold_sync(vd, source_of(obj));
    /* The next step, now that this one is recorded. */
    reconcile_name(vd, c->name);
out:
    json_object_put(obj);
    vf_vd_volume_job_free(j);
    free(c);
    vd_unref(vd);
}

/* ---- steps --------------------------------------------------------------------------- */

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

/* The node to talk to about a disk's volume: its own; for a shared pool any
 * Ready node will do when its own is not.  NULL: none now. */
static void *volume_conn(struct vf_vd *vd, const struct json_object *target, char *node,
                         size_t len)
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
    return conn_ref(conn);
}

static void volume_name(const char *name, const char *uid, char *buf, size_t len)
{
    /* Readable, and unique across disks of the same name over time. */
    snprintf(buf, len, "vd-%s-%.8s", name, uid);
}

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
        set_phase(status, "Pending", "ImageNotFound", msg);
        return false;
    }
    const struct json_object *is = member(img, "status");
    const char *p = string(member(is, "target"), "path");
    struct json_object *unpacked = member(member(is, "size"), "unpackedBytes");
    bool deleting = member(member(img, "metadata"), "deletionTimestamp") != NULL;
    if (!deleting && str_eq(string(is, "phase"), "Failed")) {
        /* Its import failed for good: waiting cannot help, a new image (or
         * spec.dataSource) can (failed_start_over). */
        snprintf(msg, sizeof msg, "ClusterVirtualImage \"%s\" is Failed: fix it (delete it and "
                 "create it again) or name another image in spec.dataSource", cvi);
        fail(vd, r, status, r->generation, "ImageFailed", msg);
        json_object_put(img);
        return false;
    }
    if (deleting || !str_eq(string(is, "phase"), "Ready") || !p) {
        snprintf(msg, sizeof msg, "ClusterVirtualImage \"%s\" is %s: the disk waits for it to "
                 "be Ready", cvi, deleting ? "being deleted" : string(is, "phase") ?
                 string(is, "phase") : "Pending");
        set_phase(status, "Pending", "ImageNotReady", msg);
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
        set_phase(status, "Pending", "ImageNotReady", msg);
        return false;
    }
    snprintf(r->src_format, sizeof r->src_format, "%s", format);
    r->src_virt = *virt;
    return true;
}

/* No node yet: take the source, then choose a node for the volume. */
static void step_choose(struct vf_vd *vd, struct vd_rec *r, const struct json_object *obj,
                        struct json_object *status, const struct vf_vd_class *cls,
                        uint64_t size)
{
    const char *cvi = source_of(obj);
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
        fail(vd, r, status, r->generation, "SizeTooSmall", msg);
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
        attempt_note(status, note, sizeof note);
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
    attempt_note(status, note, sizeof note);
    snprintf(msg, sizeof msg, "%s%s", cls->shared ? "checking the storage pool"
                                                  : "choosing the node for the volume", note);
    if (job_submit(vd, r, j, NULL))
        set_phase(status, "Provisioning", "ChoosingNode", msg);
}

/* Provisioning with its target recorded: make the volume. */
static void step_create(struct vf_vd *vd, struct vd_rec *r, const struct json_object *obj,
                        struct json_object *status, uint64_t size)
{
    const struct json_object *t = member(status, "target");
    const char *cvi = source_of(obj);
    char format[8] = "qcow2", node[256], msg[MSG_MAX], note[32];
    uint64_t virt = 0;
    if (cvi && !source_take(vd, r, cvi, status, format, &virt)) {
        if (str_eq(string(status, "phase"), "Failed"))
            return;
        /* A restarted daemon lost the file of an image deleted (or imported
         * again) meanwhile: the copy cannot go on.  Made again from scratch
         * once an image of that name is Ready (failed_start_over). */
        snprintf(msg, sizeof msg, "the file of ClusterVirtualImage \"%s\" is gone (the image "
                 "was deleted during the copy): the disk is made again once the image is "
                 "Ready, or name another image in spec.dataSource", cvi);
        fail(vd, r, status, r->generation, "ImageLost", msg);
        return;
    }
    if (volume_busy(string(t, "volume"))) {
        r->kick = true;   /* an earlier job (of a restarted module) lets go first */
        return;
    }
    void *conn = volume_conn(vd, t, node, sizeof node);
    attempt_note(status, note, sizeof note);
    if (!conn) {
        /* A wait, not an attempt: a partial volume there binds the disk to it. */
        snprintf(msg, sizeof msg, "waiting for node \"%s\" to be Ready to create the volume%s",
                 node, note);
        vf_images_condition_set(status, "Ready", false, "NodeNotReady", msg);
        r->kick = true;
        return;
    }
    struct vf_vd_volume_job *j = vf_vd_volume_job_new(VF_VD_CREATE);
    if (!j) {
        virConnectClose(conn);
        r->kick = true;
        return;
    }
    j->conn = conn;
    snprintf(j->node, sizeof j->node, "%s", node);
    snprintf(j->pool, sizeof j->pool, "%s", string(t, "pool"));
    snprintf(j->volume, sizeof j->volume, "%s", string(t, "volume"));
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
    if (job_submit(vd, r, j, cvi)) {
        vf_images_set_str(status, "format", format);
        snprintf(msg, sizeof msg, "%s%s", cvi ? "copying the image into the volume"
                                              : "creating the volume", note);
        set_phase(status, "Provisioning", "Provisioning", msg);
    }
}

static void step_resize(struct vf_vd *vd, struct vd_rec *r, struct json_object *status,
                        uint64_t size, const char *run_vm, const char *run_node)
{
    const struct json_object *t = member(status, "target");
    char node[256], msg[MSG_MAX];
    if (volume_busy(string(t, "volume"))) {
        r->kick = true;
        return;
    }
    void *conn = volume_conn(vd, t, node, sizeof node);
    if (!conn) {
        snprintf(msg, sizeof msg, "waiting for node \"%s\" to be Ready to grow the volume", node);
        vf_images_condition_set(status, "Resized", false, "NodeNotReady", msg);
        r->kick = true;
        return;
    }
    struct vf_vd_volume_job *j = vf_vd_volume_job_new(VF_VD_RESIZE);
    if (!j) {
        virConnectClose(conn);
        r->kick = true;
        return;
    }
    j->conn = conn;
    snprintf(j->node, sizeof j->node, "%s", node);
    snprintf(j->pool, sizeof j->pool, "%s", string(t, "pool"));
    snprintf(j->volume, sizeof j->volume, "%s", string(t, "volume"));
    j->capacity = size;
    if (run_vm[0]) {
        snprintf(j->domain, sizeof j->domain, "%s", run_vm);
        j->dom_conn = conn_ref(vd->core->node_connection(vd->ctx, run_node));
    }
    if (job_submit(vd, r, j, NULL)) {
        vf_images_set_str(status, "phase", "Resizing");
        vf_images_condition_set(status, "Resized", false, "Resizing", run_vm[0]
                                ? "growing the disk of the running VM" : "growing the volume");
    }
}

/* The copy a block migration left on the node the disk was on
 * (status.staleCopy): deleted once the VM runs from the new one, or with the
 * disk.  True when a job for it was submitted (or one is due). */
static bool step_stale(struct vf_vd *vd, struct vd_rec *r, struct json_object *status)
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
    if (volume_busy(volume)) {
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
    struct job_ctx *c = job_submit(vd, r, j, NULL);
    if (c)
        c->stale = true;
    return true;
}

/* Terminating: wait for the VMs, then delete the volume, then let go. */
static void step_delete(struct vf_vd *vd, struct vd_rec *r, const struct json_object *obj,
                        struct json_object *status, const char *users)
{
    const struct json_object *t = member(status, "target");
    char msg[MSG_MAX], node[256];
    vf_images_set_str(status, "phase", "Terminating");
    if (r->job) {
        atomic_store(&r->job->cancel, true);   /* its done() comes back here */
        write_status(vd, r->name, status);
        return;
    }
    source_drop(r);
    if (users[0]) {
        snprintf(msg, sizeof msg, "deletion waits until no virtual machine uses the disk: "
                 "named in spec.blockDeviceRefs of %s", users);
        vf_images_condition_set(status, "InUse", true, "UsedByVirtualMachine", msg);
        write_status(vd, r->name, status);
        return;
    }
    if (vf_images_has_finalizer(obj, VF_CVI_DISK_FINALIZER)) {
        /* An image is being copied from the volume (cvi_disk.c holds the disk):
         * the volume stays until the copy let go; its update brings us back. */
        vf_images_condition_set(status, "InUse", true, "UsedByImage", "deletion waits until "
                                "the ClusterVirtualImage being made from the disk has read it");
        write_status(vd, r->name, status);
        return;
    }
    vf_images_condition_remove(status, "InUse");
    if (step_stale(vd, r, status)) {
        write_status(vd, r->name, status);
        return;
    }
    if (t && string(t, "volume") && volume_busy(string(t, "volume"))) {
        r->kick = true;
        write_status(vd, r->name, status);
        return;
    }
    if (t && string(t, "volume")) {
        void *conn = volume_conn(vd, t, node, sizeof node);
        struct vf_vd_volume_job *j = conn ? vf_vd_volume_job_new(VF_VD_DELETE) : NULL;
        if (!j) {
            if (conn)
                virConnectClose(conn);
            snprintf(msg, sizeof msg, "waiting for node \"%s\" to be Ready to delete the volume",
                     node);
            vf_images_condition_set(status, "Ready", false, "NodeNotReady", msg);
            r->kick = true;
            write_status(vd, r->name, status);
            return;
        }
        j->conn = conn;
        snprintf(j->node, sizeof j->node, "%s", node);
        snprintf(j->pool, sizeof j->pool, "%s", string(t, "pool"));
        snprintf(j->volume, sizeof j->volume, "%s", string(t, "volume"));
        job_submit(vd, r, j, NULL);
        write_status(vd, r->name, status);
        return;
    }
    write_status(vd, r->name, status);
    const char *cvi = source_of(obj);
    if (vf_images_finalizer_update(vd->core, vd->ctx, VF_VD_KIND, obj, VF_VD_FINALIZER, false) == 0)
        vd->core->log(vd->ctx, VF_LOG_INFO, "disk \"%s\": deleted", r->name);
    source_hold_sync(vd, cvi);
}

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
               source_of(obj) &&
               vd->core->object_get(vd->ctx, VF_CVI_KIND, source_of(obj), &img) == 0) {
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
    set_phase(status, "Pending", "Pending", msg);
    r->not_before = 0;
    source_drop(r);
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
        source_drop(r);
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
        step_delete(vd, r, obj, status, users);
        json_object_put(status);
        return;
    }
    r->generation = vf_images_generation(obj);
    if (str_eq(string(status, "phase"), "Failed") && !failed_start_over(vd, r, obj, status)) {
        write_status(vd, name, status);
        json_object_put(status);
        return;
    }
    json_object_object_add(status, "observedGeneration", json_object_new_int64(r->generation));
    const char *phase = string(status, "phase");
    if (r->job || r->not_before > mono_s()) {
        if (r->not_before > mono_s())
            r->kick = true;
        write_status(vd, name, status);
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
        if (sc && step_stale(vd, r, status)) {
            /* A disk made again: the volume its failed attempt left goes first. */
            snprintf(msg, sizeof msg, "deleting volume \"%s\" that a failed attempt left on "
                     "node \"%s\" before the disk is made again", string(sc, "volume"),
                     string(sc, "node"));
            vf_images_condition_set(status, "Ready", false, "Pending", msg);
        } else if (vf_vd_class_resolve(&vd->set, requested, &cls, msg, sizeof msg) < 0) {
            fail(vd, r, status, r->generation, "StorageClassNotFound", msg);
        } else {
            vf_images_set_str(status, "storageClassName", cls->name);
            if (!phase)
                set_phase(status, "Pending", "Pending", "the disk waits to be made");
            step_choose(vd, r, obj, status, cls, size);
        }
    } else if (str_eq(phase, "Provisioning")) {
        step_create(vd, r, obj, status, size);
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
            step_stale(vd, r, status);
        vf_vd_quantity(member(status, "capacity"), &cap);
        if (size > cap)
            step_resize(vd, r, status, size, run_vm, run_node);
        else
            vf_images_set_str(status, "phase", "Ready");
    }
    write_status(vd, name, status);
    /* A copy that ended (or never began) lets go of its image. */
    if (!r->job && !str_eq(string(status, "phase"), "Provisioning") && source_of(obj))
        source_hold_sync(vd, source_of(obj));
    json_object_put(status);
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
        struct vd_rec *r = rec_find(vd, name);
        if (r && str_eq(r->uid, string(member(obj, "metadata"), "uid")))
            rec_free(vd, r);
        return;
    }
    reconcile(vd, obj);
}

void vf_vd_kick(struct vf_vd *vd, const char *name)
{
    struct vd_rec *r = vd && name ? rec_find(vd, name) : NULL;
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
        write_status(vd, r->name, status);
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
        reconcile_name(vd, names[i]);
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
            source_hold_sync(vd, string(member(img, "metadata"), "name"));
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
        vd_unref(vd);
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
    vd_unref(vd);
}
