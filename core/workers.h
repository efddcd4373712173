/* A fixed pool of worker threads for blocking work.  run() executes on a worker;
 * done() is posted back to the loop thread. */
#ifndef VF_WORKERS_H
#define VF_WORKERS_H
#include "loop.h"

int vf_workers_start(unsigned nthreads);
/* Finishes jobs already running, drops queued ones (their done() is not called
 * after vf_workers_stop returns).  Joins the threads. */
void vf_workers_stop(void);
/* Loop thread.  `what` names the job in logs.  done may be NULL. */
int vf_workers_submit(const char *what, vf_loop_fn run, vf_loop_fn done, void *opaque);

/* Jobs an owner can let go of all at once (when it stops or starts over)
 * while some are still queued or running, without waiting for them: a dropped
 * job's run() is skipped if it had not started, its done() is never called,
 * and its opaque is released with the group's release() - at once when it was
 * idle, else by its worker as soon as run() returns.  Otherwise done() runs
 * on the loop thread and the group releases the opaque right after it. */
struct vf_job_group {
    const char *name;                 /* for logs */
    void (*release)(void *opaque);    /* frees a job's opaque */
};
/* Loop thread.  Takes opaque: released on failure too.  `what` must outlive
 * the job (a string literal). */
int vf_job_group_submit(struct vf_job_group *group, const char *what, vf_loop_fn run,
                        vf_loop_fn done, void *opaque);
/* Loop thread.  Drops every job of the group, as described above. */
void vf_job_group_drop_all(struct vf_job_group *group);
#endif
