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
#endif
