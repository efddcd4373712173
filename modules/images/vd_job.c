#include <config.h>
/* VirtualDisk: the loop side of a volume job, from submit to done.  The
 * steps that decide to start one are in vd_steps.c, the work a worker does in
 * vd_volume.c.
 *
 * Owns: the list of jobs in flight (a volume is worked on by one job at a
 * time, across restarts of the module), and what a finished job writes to
 * the disk's status: the target a CHOOSE found, the volume a CREATE or RESIZE
 * made, a DELETE that let go, and a failure, final (phase Failed) or to be
 * tried again after a back-off (vd_retry.c tells which and when).  Then it
 * reconciles the disk (vd.c) for the next step.
 *
 * Kept apart so that what a job's result means for the status reads in one
 * place, next to the failures and attempts it counts. */
#include "vd_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- submit ------------------------------------------------------------------------- */

/* Jobs of every instance of the module (it may restart while a job still
 * runs): a volume is worked on by one job at a time.  Loop thread only. */
static struct job_ctx *jobs_in_flight;

/* Volume names carry the disk's uid: one name, one volume. */
bool vf_vd_volume_busy(const char *volume)
{
    for (struct job_ctx *c = jobs_in_flight; c && volume; c = c->next)
        if (c->j->op != VF_VD_CHOOSE && !strcmp(c->j->volume, volume))
            return true;
    return false;
}

static void job_run(void *opaque)
{
    struct job_ctx *c = opaque;
    vf_vd_volume_run(c->j);
}

static void job_done(void *opaque);

struct job_ctx *vf_vd_job_submit(struct vf_vd *vd, struct vd_rec *r,
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

/* ---- failures -------------------------------------------------------------------------- */

/* status.attempts: the failed attempts at making the volume so far. */
static unsigned attempts_of(const struct json_object *status)
{
    struct json_object *a = member(status, "attempts");
    int64_t n = a && json_object_is_type(a, json_type_int) ? json_object_get_int64(a) : 0;
    return n > 0 && n < 1000000 ? (unsigned)n : 0;
}

void vf_vd_attempt_note(const struct json_object *status, char *buf, size_t len)
{
    unsigned n = attempts_of(status);
    buf[0] = '\0';
    if (n)
        snprintf(buf, len, " (attempt %u)", n + 1);
}

/* Final: Failed for the spec of `generation` (status.observedGeneration), so
 * that a new spec starts it over (failed_start_over, vd.c). */
void vf_vd_fail(struct vf_vd *vd, struct vd_rec *r, struct json_object *status,
                int64_t generation, const char *reason, const char *msg)
{
    vf_vd_set_phase(status, "Failed", reason, msg);
    json_object_object_add(status, "observedGeneration", json_object_new_int64(generation));
    json_object_object_del(status, "attempts");
    vf_vd_source_drop(r);
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
        vf_vd_fail(vd, r, status, c->generation, j->err.reason, j->err.message);
        return;
    }
    unsigned n = attempts_of(status) + 1, delay = vf_vd_retry_delay(n, r->uid);
    vf_vd_retry_message(n, j->err.message, delay, msg, sizeof msg);
    json_object_object_add(status, "attempts", json_object_new_int64(n));
    /* Nothing left on the node: free to choose another one, which may have
     * the room or the connection this one lacked. */
    if (j->op == VF_VD_CREATE && j->no_volume)
        json_object_object_del(status, "target");
    vf_vd_set_phase(status, "Provisioning", "Retrying", msg);
    r->not_before = mono_s() + delay;
    r->kick = true;
    vd->core->log(vd->ctx, VF_LOG_WARN, "disk \"%s\": %s", r->name, msg);
}

/* ---- done ----------------------------------------------------------------------------- */

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
    struct vd_rec *r = vd->stopped ? NULL : vf_vd_rec_find(vd, c->name);
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
                vf_vd_fail(vd, r, status, c->generation, "StorageClassNotFound", msg);
            } else {
                /* The durable record first: a restart finds the volume by it. */
                target_set(status, j->chosen, cls, j->volume, NULL);
                vf_vd_set_phase(status, "Provisioning", "Provisioning", "creating the volume");
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
                vf_vd_set_phase(status, "Ready", "Ready", "the disk is ready to use");
                vf_images_condition_set(status, "Resized", false, j->err.reason, j->err.message);
                r->not_before = mono_s() + RETRY_S * 6;
                r->kick = true;
            }
        } else {
            struct json_object *t = member(status, "target");
            if (j->op == VF_VD_CREATE) {
                vf_vd_source_drop(r);
                json_object_object_del(status, "attempts");
            }
            if (t)
                vf_images_set_str(t, "path", j->path);
            vf_vd_quantity_format(j->capacity_out, cap, sizeof cap);
            vf_images_set_str(status, "capacity", cap);
            vf_images_set_str(status, "progress", "100%");
            vf_vd_set_phase(status, "Ready", "Ready", "the disk is ready to use");
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
    vf_vd_write_status(vd, c->name, status);
    bool failed = str_eq(string(status, "phase"), "Failed");
    json_object_put(status);
    if (c->source[0])
        vf_vd_source_hold_sync(vd, c->source);
    else if (failed && vf_vd_source_of(obj))   /* a Failed disk is not reconciled to the end */
        vf_vd_source_hold_sync(vd, vf_vd_source_of(obj));
    /* The next step, now that this one is recorded. */
    vf_vd_reconcile_name(vd, c->name);
out:
    json_object_put(obj);
    vf_vd_volume_job_free(j);
    free(c);
    vf_vd_unref(vd);
}
