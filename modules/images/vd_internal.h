/* What the parts of the VirtualDisk controller share: the records, the
 * reconcile and its state machine (vd.c), the steps that start a volume job
 * (vd_steps.c) and the jobs from submit to done (vd_job.c).  Private to them;
 * vd.h is what module.c sees, vd_volume.h the worker side of a job. */
#ifndef VF_IMAGES_VD_INTERNAL_H
#define VF_IMAGES_VD_INTERNAL_H
#include "vd.h"
#include "vd_volume.h"
#include "cvi.h"
#include "ctl_util.h"              /* member, string, str_eq, mono_s */

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <json-c/json.h>

#define MSG_MAX 768
#define RETRY_S 5

/* The controller's record of one disk (vd->recs).  Loop thread only. */
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

/* One volume job on the loop side: made by vf_vd_job_submit, freed by its
 * done() (vd_job.c). */
struct job_ctx {
    struct vf_vd *vd;
    char name[256], uid[64];
    char source[256];              /* CREATE from an image: the image's name */
    bool stale;                    /* DELETE of status.staleCopy, not of the disk */
    int64_t generation;            /* of the spec the job was made from */
    struct vf_vd_volume_job *j;
    struct job_ctx *next;          /* in jobs_in_flight */
};

/* ---- small helpers ------------------------------------------------------------------ */

static inline void vf_vd_set_phase(struct json_object *status, const char *phase,
                                   const char *reason, const char *msg)
{
    vf_images_set_str(status, "phase", phase);
    vf_images_condition_set(status, "Ready", str_eq(phase, "Ready"), reason, msg);
}

static inline void vf_vd_write_status(struct vf_vd *vd, const char *name,
                                      struct json_object *status)
{
    vf_images_status_write(vd->core, vd->ctx, VF_VD_KIND, "disk", name, status);
}

/* ---- the controller (vd.c) ---------------------------------------------------------- */

/* The record of disk `name`, or NULL. */
struct vd_rec *vf_vd_rec_find(struct vf_vd *vd, const char *name);
/* Close the source image's file a record holds open, if any. */
void vf_vd_source_drop(struct vd_rec *r);
/* One reference less (a job's, the controller's): the last frees vd. */
void vf_vd_unref(struct vf_vd *vd);
/* The ClusterVirtualImage disk vd_obj is made from, or NULL. */
const char *vf_vd_source_of(const struct json_object *vd_obj);
/* Hold image `cvi` (VF_VD_SOURCE_FINALIZER) while a disk is being copied from
 * it, let go when none is.  NULL cvi: nothing to do. */
void vf_vd_source_hold_sync(struct vf_vd *vd, const char *cvi);
/* Reconcile disk `name` now, if it exists. */
void vf_vd_reconcile_name(struct vf_vd *vd, const char *name);

/* ---- the steps (vd_steps.c) ----------------------------------------------------------
 * Each looks at what it waits for and submits its job, or sets the status
 * saying why not (r->kick set when a tick should look again). */

/* No node yet: take the source image, then CHOOSE a node in class cls. */
void vf_vd_step_choose(struct vf_vd *vd, struct vd_rec *r, const struct json_object *obj,
                       struct json_object *status, const struct vf_vd_class *cls,
                       uint64_t size);
/* Provisioning with its target recorded: CREATE the volume. */
void vf_vd_step_create(struct vf_vd *vd, struct vd_rec *r, const struct json_object *obj,
                       struct json_object *status, uint64_t size);
/* The spec asks for more than status.capacity: RESIZE, online when VM run_vm
 * runs from the disk on node run_node (run_vm "" when none runs). */
void vf_vd_step_resize(struct vf_vd *vd, struct vd_rec *r, struct json_object *status,
                       uint64_t size, const char *run_vm, const char *run_node);
/* DELETE status.staleCopy; true when a job for it was submitted (or one is due). */
bool vf_vd_step_stale(struct vf_vd *vd, struct vd_rec *r, struct json_object *status);
/* Terminating: wait for the VMs and images using it, DELETE the volume, drop
 * the finalizer; writes the status.  users: the VMs naming it ("" when none). */
void vf_vd_step_delete(struct vf_vd *vd, struct vd_rec *r, const struct json_object *obj,
                       struct json_object *status, const char *users);

/* ---- the jobs (vd_job.c) ------------------------------------------------------------ */

/* Whether a job in flight (of any instance of the module) works on `volume`. */
bool vf_vd_volume_busy(const char *volume);
/* Submit j (taken, freed on failure) for r's disk; source: the image a CREATE
 * copies, or NULL.  NULL when it could not be submitted (r->kick set). */
struct job_ctx *vf_vd_job_submit(struct vf_vd *vd, struct vd_rec *r,
                                 struct vf_vd_volume_job *j, const char *source);
/* " (attempt 3)" while attempts have failed before, else "". */
void vf_vd_attempt_note(const struct json_object *status, char *buf, size_t len);
/* Final: phase Failed for the spec of `generation`, made again once the spec
 * or the cause changes (failed_start_over in vd.c). */
void vf_vd_fail(struct vf_vd *vd, struct vd_rec *r, struct json_object *status,
                int64_t generation, const char *reason, const char *msg);
#endif
