#include <config.h>
/* CD-ROM images copied into the nodes' pools (see cdrom.h).
 *
 * Owns: status.cdromCopies of ClusterVirtualImages (written through cvi.c's
 * reconcile, or read-modify-written fresh from the store when a copy ends) and
 * the volumes "cvi-<name>-<uid8>.iso" in the class's pool.  Watches: Node (a
 * node that becomes Ready may need a copy).  Each copy or removal is one
 * worker job of vd_volume.c on one node; an image has at most one at a time. */
#include "cdrom.h"
#include "cvi_internal.h"
#include "ctl_util.h"
#include "vd.h"
#include "vd_volume.h"
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

#define RETRY_S 30
#define RETRY_CHECK_MS 5000   /* how often failed steps whose wait is over are looked at */

struct cd_rec {
    char *name;
    char uid[64];
    struct vf_vd_volume_job *job;  /* in flight, or NULL */
    int64_t not_before;            /* CLOCK_MONOTONIC seconds: a failed step waits */
    struct cd_rec *next;
};

struct vf_cdrom {
    struct vf_images *im;
    struct vf_module_ctx *ctx;
    const struct vf_core *core;
    int refs;                      /* the controller and each job in flight */
    bool stopped;
    bool enabled;                  /* a class for the copies is configured */
    struct vf_vd_class cls;
    struct cd_rec *recs;
    struct vf_watch *node_watch;
    int retry_timer;               /* 0: none */
};

struct cd_job {
    struct vf_cdrom *cd;
    char name[256], uid[64];
    char listed[256];              /* the node the record lists for the volume */
    struct vf_vd_volume_job *j;
    struct cd_job *next;           /* in jobs_in_flight */
};

/* Jobs of every instance of the module (it may restart while one runs): a
 * volume is worked on by one job at a time. */
static struct cd_job *jobs_in_flight;

static bool listed(const struct json_object *names, const char *name)
{
    for (size_t i = 0; names && i < json_object_array_length(names); i++)
        if (str_eq(json_object_get_string(json_object_array_get_idx(names, i)), name))
            return true;
    return false;
}

static bool volume_busy(const char *uid, const char *node)
{
    for (struct cd_job *c = jobs_in_flight; c; c = c->next)
        if (!strcmp(c->uid, uid) && !strcmp(c->listed, node))
            return true;
    return false;
}

/* ---- records -------------------------------------------------------------------- */

static struct cd_rec *rec_get(struct vf_cdrom *cd, const char *name, const char *uid)
{
    struct cd_rec *r;
    for (r = cd->recs; r; r = r->next)
        if (!strcmp(r->name, name))
            break;
    if (!r) {
        if (!(r = calloc(1, sizeof *r)) || !(r->name = strdup(name))) {
            free(r);
            return NULL;
        }
        r->next = cd->recs;
        cd->recs = r;
    }
    if (strcmp(r->uid, uid)) {
        /* A new image under an old name: the old one's job ends on its own. */
        if (r->job)
            atomic_store(&r->job->cancel, true);
        r->job = NULL;
        r->not_before = 0;
        snprintf(r->uid, sizeof r->uid, "%s", uid);
    }
    return r;
}

static void rec_drop(struct vf_cdrom *cd, const char *name)
{
    for (struct cd_rec **pp = &cd->recs; *pp; pp = &(*pp)->next) {
        struct cd_rec *r = *pp;
        if (strcmp(r->name, name))
            continue;
        *pp = r->next;
        free(r->name);
        free(r);
        return;
    }
}

static void cd_unref(struct vf_cdrom *cd)
{
    if (--cd->refs > 0)
        return;
    while (cd->recs)
        rec_drop(cd, cd->recs->name);
    vf_images_unref(cd->im);
    free(cd);
}

/* ---- the record in the image's status ---------------------------------------------- */

/* A deep copy of the stored image's status.cdromCopies, or NULL: the stored
 * record is the one to build on (the status a reconcile writes may be older). */
static struct json_object *copies_stored(struct vf_cdrom *cd, const char *name, const char *uid)
{
    struct json_object *obj = NULL, *out = NULL;
    if (cd->core->object_get(cd->ctx, VF_CVI_KIND, name, &obj) < 0)
        return NULL;
    struct json_object *copies = member(member(obj, "status"), "cdromCopies");
    if (copies && str_eq(string(member(obj, "metadata"), "uid"), uid))
        json_object_deep_copy(copies, &out, NULL);
    json_object_put(obj);
    return out;
}

static struct json_object *copies_new(const struct vf_cdrom *cd, const char *name,
                                      const char *uid)
{
    char volume[256];
    struct json_object *c = json_object_new_object();
    /* Readable, and unique across images of the same name over time. */
    snprintf(volume, sizeof volume, "cvi-%s-%.8s.iso", name, uid);
    vf_images_set_str(c, "storageClassName", cd->cls.name);
    vf_images_set_str(c, "pool", cd->cls.pool);
    vf_images_set_str(c, "volume", volume);
    json_object_object_add(c, "shared", json_object_new_boolean(cd->cls.shared));
    json_object_object_add(c, "nodes", json_object_new_array());
    return c;
}

/* In the record `copies`: node joins (add) or leaves the list of nodes with
 * a copy; message replaces the last failure (NULL: none). */
static void copies_set_node(struct json_object *copies, const char *node, bool add,
                            const char *message)
{
    struct json_object *nodes = member(copies, "nodes");
    struct json_object *kept = json_object_new_array();
    for (size_t i = 0; nodes && i < json_object_array_length(nodes); i++) {
        const char *n = json_object_get_string(json_object_array_get_idx(nodes, i));
        if (!str_eq(n, node))
            json_object_array_add(kept, json_object_new_string(n));
    }
    if (add)
        json_object_array_add(kept, json_object_new_string(node));
    json_object_object_add(copies, "nodes", kept);
    vf_images_set_str(copies, "message", message);
}

/* The same as a read-modify-write of the stored record (a job that ended,
 * outside any reconcile). */
static void copies_update(struct vf_cdrom *cd, const char *name, const char *uid,
                          const char *node, bool add, const char *message)
{
    struct json_object *obj = NULL;
    if (cd->core->object_get(cd->ctx, VF_CVI_KIND, name, &obj) < 0)
        return;
    struct json_object *status = vf_images_status_copy(obj);
    struct json_object *copies = member(status, "cdromCopies");
    if (str_eq(string(member(obj, "metadata"), "uid"), uid) && copies) {
        copies_set_node(copies, node, add, message);
        vf_images_status_write(cd->core, cd->ctx, VF_CVI_KIND, "image", name, status);
    }
    json_object_put(status);
    json_object_put(obj);
}

/* ---- jobs ------------------------------------------------------------------------------ */

static void job_run(void *opaque)
{
    struct cd_job *c = opaque;
    vf_vd_volume_run(c->j);
}

static void job_done(void *opaque)
{
    struct cd_job *c = opaque;
    struct vf_cdrom *cd = c->cd;
    struct vf_vd_volume_job *j = c->j;
    for (struct cd_job **pp = &jobs_in_flight; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    struct cd_rec *r = NULL;
    for (r = cd->recs; r && strcmp(r->name, c->name); r = r->next)
        ;
    if (r && r->job == j)
        r->job = NULL;
    if (!cd->stopped && !atomic_load(&j->cancel)) {
        bool create = j->op == VF_VD_CREATE;
        char msg[MSG_MAX];
        if (j->rc == 0) {
            copies_update(cd, c->name, c->uid, c->listed, create, NULL);
            cd->core->log(cd->ctx, VF_LOG_INFO, "image \"%s\": CD-ROM copy %s on node \"%s\" "
                          "(pool \"%s\", volume \"%s\")", c->name, create ? "made" : "removed",
                          j->node, j->pool, j->volume);
        } else {
            snprintf(msg, sizeof msg, "node \"%s\": %s the CD-ROM copy failed: %s; retried in "
                     "%ds", j->node, create ? "making" : "removing", j->err.message, RETRY_S);
            cd->core->log(cd->ctx, VF_LOG_ERROR, "image \"%s\": %s", c->name, msg);
            copies_update(cd, c->name, c->uid, c->listed, !create, msg);
            if (r)
                r->not_before = mono_s() + RETRY_S;
        }
        vf_cvi_kick(cd->im, c->name);
    }
    vf_vd_volume_job_free(j);
    free(c);
    cd_unref(cd);
}

/* The job runs on node `via` through conn (borrowed from the core; the job
 * takes its own reference) for the copy the record lists under `node`. */
static bool job_submit(struct vf_cdrom *cd, struct cd_rec *r, struct vf_vd_volume_job *j,
                       const char *node, const char *via, void *conn)
{
    struct cd_job *c = calloc(1, sizeof *c);
    if (!c || virConnectRef(conn) < 0) {
        free(c);
        vf_vd_volume_job_free(j);
        return false;
    }
    j->conn = conn;
    snprintf(j->node, sizeof j->node, "%s", via);
    snprintf(c->listed, sizeof c->listed, "%s", node);
    c->cd = cd;
    c->j = j;
    snprintf(c->name, sizeof c->name, "%s", r->name);
    snprintf(c->uid, sizeof c->uid, "%s", r->uid);
    cd->refs++;
    if (cd->core->job_submit(cd->ctx, j->op == VF_VD_CREATE ? "image: copy a CD-ROM to a node"
                                                            : "image: remove a CD-ROM copy",
                             job_run, job_done, c) < 0) {
        cd->refs--;
        vf_vd_volume_job_free(j);
        free(c);
        return false;
    }
    c->next = jobs_in_flight;
    jobs_in_flight = c;
    r->job = j;
    return true;
}

static struct vf_vd_volume_job *job_new(enum vf_vd_op op, const struct json_object *copies)
{
    struct vf_vd_volume_job *j = vf_vd_volume_job_new(op);
    if (!j)
        return NULL;
    snprintf(j->pool, sizeof j->pool, "%s", string(copies, "pool"));
    snprintf(j->volume, sizeof j->volume, "%s", string(copies, "volume"));
    snprintf(j->format, sizeof j->format, "raw");
    return j;
}

/* ---- copying ------------------------------------------------------------------------------ */

/* Whether a VM names the image: copies are made for VMs, not ahead of them. */
static bool wanted(struct vf_cdrom *cd, const char *name)
{
    size_t n;
    const struct vf_vm_info *const *vms = vf_vm_refs_users(cd->im->vm_refs, VF_CVI_KIND, name, &n);
    for (size_t i = 0; i < n; i++)
        if (!vms[i]->deleting)
            return true;
    return false;
}

/* Start a copy onto the first Ready node (by name) that lacks one. */
static void copy_next(struct vf_cdrom *cd, struct cd_rec *r, const struct json_object *status,
                      const struct json_object *copies)
{
    const struct json_object *have = member(copies, "nodes");
    struct json_object *shared = member(copies, "shared"), *nodes = NULL;
    const char *path = string(member(status, "target"), "path");
    if (!path || (shared && json_object_get_boolean(shared) && json_object_array_length(have)))
        return;
    if (cd->core->object_list(cd->ctx, "Node", &nodes) < 0)
        return;
    for (size_t i = 0; i < json_object_array_length(nodes); i++) {
        struct json_object *n = json_object_array_get_idx(nodes, i);
        const char *node = string(member(n, "metadata"), "name");
        if (!node || listed(have, node) || volume_busy(r->uid, node) ||
            !str_eq(string(member(n, "status"), "phase"), "Ready"))
            continue;
        void *conn = cd->core->node_connection(cd->ctx, node);
        struct vf_vd_volume_job *j = conn ? job_new(VF_VD_CREATE, copies) : NULL;
        struct stat st;
        if (!j)
            continue;
        /* Open now: the copy keeps the file even if the image goes meanwhile. */
        j->src_fd = open(path, O_RDONLY | O_CLOEXEC);
        if (j->src_fd < 0 || fstat(j->src_fd, &st) < 0) {
            cd->core->log(cd->ctx, VF_LOG_ERROR, "image \"%s\": cannot open \"%s\": %s", r->name,
                          path, strerror(errno));
            vf_vd_volume_job_free(j);
            r->not_before = mono_s() + RETRY_S;
            break;
        }
        j->src_bytes = j->capacity = (uint64_t)st.st_size;
        if (job_submit(cd, r, j, node, node, conn))
            break;
    }
    json_object_put(nodes);
}

void vf_cdrom_sync(struct vf_cdrom *cd, const char *name, const char *uid,
                   struct json_object *status)
{
    struct json_object *cdrom = member(status, "cdrom");
    if (!cd || cd->stopped || !cdrom || !json_object_get_boolean(cdrom) ||
        !str_eq(string(status, "phase"), "Ready"))
        return;
    struct json_object *copies = copies_stored(cd, name, uid);
    if (!copies && !cd->enabled)
        return;
    if (!copies)
        copies = copies_new(cd, name, uid);
    json_object_object_add(status, "cdromCopies", copies);
    struct cd_rec *r = rec_get(cd, name, uid);
    if (r && !r->job && r->not_before <= mono_s() && wanted(cd, name))
        copy_next(cd, r, status, copies);
}

/* ---- removal ---------------------------------------------------------------------------- */

static bool node_exists(struct vf_cdrom *cd, const char *node)
{
    struct json_object *obj = NULL;
    if (cd->core->object_get(cd->ctx, "Node", node, &obj) < 0)
        return false;
    json_object_put(obj);
    return true;
}

/* The connection to remove a copy through: its node's; for a shared pool any
 * Ready node's will do. */
static void *removal_conn(struct vf_cdrom *cd, const char *node, bool shared, char *via,
                          size_t len)
{
    void *conn = cd->core->node_connection(cd->ctx, node);
    struct json_object *nodes = NULL;
    snprintf(via, len, "%s", node);
    if (conn || !shared || cd->core->object_list(cd->ctx, "Node", &nodes) < 0)
        return conn;
    for (size_t i = 0; !conn && i < json_object_array_length(nodes); i++) {
        struct json_object *n = json_object_array_get_idx(nodes, i);
        const char *other = string(member(n, "metadata"), "name");
        if (other && str_eq(string(member(n, "status"), "phase"), "Ready") &&
            (conn = cd->core->node_connection(cd->ctx, other)))
            snprintf(via, len, "%s", other);
    }
    json_object_put(nodes);
    return conn;
}

bool vf_cdrom_release(struct vf_cdrom *cd, const char *name, const char *uid,
                      struct json_object *status)
{
    if (!cd || cd->stopped)
        return !member(status, "cdromCopies");
    struct json_object *copies = copies_stored(cd, name, uid);
    struct json_object *nodes = member(copies, "nodes");
    struct cd_rec *r = rec_get(cd, name, uid);
    if (!copies || !nodes || json_object_array_length(nodes) == 0) {
        json_object_object_del(status, "cdromCopies");
        json_object_put(copies);
        rec_drop(cd, name);
        return true;
    }
    json_object_object_add(status, "cdromCopies", copies);
    if (!r || r->job || r->not_before > mono_s())
        return false;
    const char *node = json_object_get_string(json_object_array_get_idx(nodes, 0));
    if (!node_exists(cd, node)) {
        /* A node taken out of the cluster took its copy along.  Into the
         * status the caller writes (a store write here would be undone). */
        copies_set_node(copies, node, false, NULL);
        vf_cvi_kick(cd->im, name);
        return false;
    }
    char via[256];
    struct json_object *shared = member(copies, "shared");
    void *conn = removal_conn(cd, node, shared && json_object_get_boolean(shared), via,
                              sizeof via);
    struct vf_vd_volume_job *j = conn ? job_new(VF_VD_DELETE, copies) : NULL;
    if (!j || !job_submit(cd, r, j, node, via, conn)) {
        char msg[MSG_MAX];
        snprintf(msg, sizeof msg, "waiting for node \"%s\" to remove its CD-ROM copy", node);
        vf_images_set_str(copies, "message", msg);
        r->not_before = mono_s() + RETRY_S;
    }
    return false;
}

/* ---- settings, watches, lifetime ---------------------------------------------------------- */

static void settings_apply(struct vf_cdrom *cd, const struct json_object *settings)
{
    struct vf_vd_settings vds;
    struct vf_error err = {0};
    const char *want = string(member(settings, "virtualImages"), "defaultStorageClassName");
    const struct vf_vd_class *cls = NULL;
    cd->enabled = false;
    if (!want || vf_vd_settings_read(settings, &vds, &err) < 0)
        return;
    if (!(cls = vf_vd_class_find(&vds, want))) {
        cd->core->log(cd->ctx, VF_LOG_WARN, "virtualImages.defaultStorageClassName \"%s\" is not "
                      "one of virtualDisks.storageClasses: CD-ROM images are attached from the "
                      "image store, which only nodes on this host can open", want);
        return;
    }
    cd->cls = *cls;
    cd->enabled = true;
}

static void on_node(void *opaque, enum vf_watch_event type, const struct json_object *obj)
{
    struct vf_cdrom *cd = opaque;
    (void)type;
    (void)obj;
    for (struct cd_rec *r = cd->recs; r; r = r->next)
        vf_cvi_kick(cd->im, r->name);   /* a flag: nothing runs from here */
}

/* A failed copy or removal waits RETRY_S, then its image is reconciled again:
 * by this timer, not by whichever event happens to come next. */
static void retry_due(void *opaque)
{
    struct vf_cdrom *cd = opaque;
    int64_t now = mono_s();
    for (struct cd_rec *r = cd->recs; r; r = r->next)
        if (!r->job && r->not_before && r->not_before <= now) {
            r->not_before = 0;
            vf_cvi_kick(cd->im, r->name);
        }
}

int vf_cdrom_start(struct vf_images *im, const struct json_object *settings,
                   struct vf_cdrom **out)
{
    struct vf_cdrom *cd = calloc(1, sizeof *cd);
    if (!cd)
        return -ENOMEM;
    vf_images_ref(im);
    cd->im = im;
    cd->ctx = im->ctx;
    cd->core = im->core;
    cd->refs = 1;
    settings_apply(cd, settings);
    *out = cd;
    /* After *out is set: the replay of the nodes kicks images through cvi.c. */
    if (!(cd->node_watch = cd->core->watch_add(cd->ctx, "Node", on_node, cd)) ||
        (cd->retry_timer = cd->core->timer_add(cd->ctx, RETRY_CHECK_MS, retry_due, cd)) < 0) {
        vf_cdrom_stop(cd);
        *out = NULL;
        return -ENOMEM;
    }
    return 0;
}

void vf_cdrom_reconfigure(struct vf_cdrom *cd, const struct json_object *settings)
{
    if (cd)
        settings_apply(cd, settings);
}

void vf_cdrom_stop(struct vf_cdrom *cd)
{
    if (!cd)
        return;
    cd->stopped = true;
    if (cd->node_watch)
        cd->core->watch_remove(cd->ctx, cd->node_watch);
    if (cd->retry_timer > 0)
        cd->core->timer_remove(cd->ctx, cd->retry_timer);
    for (struct cd_rec *r = cd->recs; r; r = r->next)
        if (r->job)
            atomic_store(&r->job->cancel, true);
    cd_unref(cd);
}
