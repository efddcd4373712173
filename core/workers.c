/* Worker threads for blocking work (downloads, migrations, fence commands).
 * A job's run() happens on a worker; its done() is posted to the loop thread,
 * which alone may touch objects. */
#include <config.h>
#include "workers.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct job {
    const char *what;
    vf_loop_fn run, done;
    void *opaque;
    struct job *next;
};

static pthread_mutex_t jobs_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t jobs_ready = PTHREAD_COND_INITIALIZER;
static struct job *jobs_head, *jobs_tail;
static bool stopping;
static pthread_t *threads;
static unsigned n_threads;

static void *worker_main(void *arg)
{
    for (;;) {
        pthread_mutex_lock(&jobs_lock);
        while (!jobs_head && !stopping)
            pthread_cond_wait(&jobs_ready, &jobs_lock);
        if (stopping) {
            pthread_mutex_unlock(&jobs_lock);
            return NULL;
        }
        struct job *j = jobs_head;
        jobs_head = j->next;
        if (!jobs_head)
            jobs_tail = NULL;
        pthread_mutex_unlock(&jobs_lock);

        j->run(j->opaque);
        if (j->done && vf_loop_post(j->done, j->opaque) < 0)
            vf_log_warn("job %s finished while the daemon stops; its result is dropped", j->what);
        free(j);
    }
}

int vf_workers_start(unsigned nthreads)
{
    if (threads)
        return 0;
    threads = calloc(nthreads, sizeof *threads);
    if (!threads)
        return -ENOMEM;
    stopping = false;
    for (n_threads = 0; n_threads < nthreads; n_threads++) {
        int rc = pthread_create(&threads[n_threads], NULL, worker_main, NULL);
        if (rc) {
            vf_log_error("workers: cannot start thread %u: %s", n_threads, strerror(rc));
            vf_workers_stop();
            return -rc;
        }
    }
    return 0;
}

void vf_workers_stop(void)
{
    pthread_mutex_lock(&jobs_lock);
    stopping = true;
    struct job *j = jobs_head;
    jobs_head = jobs_tail = NULL;
    pthread_mutex_unlock(&jobs_lock);
    pthread_cond_broadcast(&jobs_ready);
    while (j) {
        struct job *next = j->next;
        vf_log_info("job %s dropped: the daemon stops before it started", j->what);
        free(j);
        j = next;
    }
    for (unsigned i = 0; i < n_threads; i++)
        pthread_join(threads[i], NULL);
    free(threads);
    threads = NULL;
    n_threads = 0;
}

int vf_workers_submit(const char *what, vf_loop_fn run, vf_loop_fn done, void *opaque)
{
    struct job *j = malloc(sizeof *j);
    if (!j)
        return -ENOMEM;
    *j = (struct job){.what = what, .run = run, .done = done, .opaque = opaque};
    pthread_mutex_lock(&jobs_lock);
    if (stopping || !threads) {
        pthread_mutex_unlock(&jobs_lock);
        free(j);
        return -ESHUTDOWN;
    }
    if (jobs_tail)
        jobs_tail->next = j;
    else
        jobs_head = j;
    jobs_tail = j;
    pthread_mutex_unlock(&jobs_lock);
    pthread_cond_signal(&jobs_ready);
    return 0;
}

/* ---- job groups ----------------------------------------------------------------
 * Workers and the loop find a grouped job again by id, never by pointer: the
 * owner may have dropped (and released) it in between. */

struct grouped_job {
    uint64_t id;
    struct vf_job_group *group;
    vf_loop_fn run, done;
    void *opaque;
    bool running, orphaned;           /* under grouped_lock */
    struct grouped_job *next;
};

static pthread_mutex_t grouped_lock = PTHREAD_MUTEX_INITIALIZER;
static struct grouped_job *grouped;   /* queued or running, not dropped */
static uint64_t grouped_next_id = 1;

/* Under grouped_lock. */
static struct grouped_job *grouped_find(uint64_t id, bool unlink)
{
    for (struct grouped_job **pp = &grouped; *pp; pp = &(*pp)->next) {
        struct grouped_job *g = *pp;
        if (g->id == id) {
            if (unlink)
                *pp = g->next;
            return g;
        }
    }
    return NULL;
}

static void grouped_run(void *opaque)
{
    uint64_t id = (uintptr_t)opaque;
    pthread_mutex_lock(&grouped_lock);
    struct grouped_job *g = grouped_find(id, false);
    if (g)
        g->running = true;
    pthread_mutex_unlock(&grouped_lock);
    if (!g)
        return;   /* dropped before it started */
    g->run(g->opaque);
    pthread_mutex_lock(&grouped_lock);
    g->running = false;
    bool orphaned = g->orphaned;
    pthread_mutex_unlock(&grouped_lock);
    if (orphaned) {   /* dropped while it ran: nobody else will release it */
        g->group->release(g->opaque);
        free(g);
    }
}

static void grouped_done(void *opaque)
{
    uint64_t id = (uintptr_t)opaque;
    pthread_mutex_lock(&grouped_lock);
    struct grouped_job *g = grouped_find(id, true);
    pthread_mutex_unlock(&grouped_lock);
    if (!g)
        return;   /* dropped */
    if (g->done)
        g->done(g->opaque);
    g->group->release(g->opaque);
    free(g);
}

int vf_job_group_submit(struct vf_job_group *group, const char *what, vf_loop_fn run,
                        vf_loop_fn done, void *opaque)
{
    struct grouped_job *g = calloc(1, sizeof *g);
    if (!g) {
        group->release(opaque);
        return -ENOMEM;
    }
    *g = (struct grouped_job){.group = group, .run = run, .done = done, .opaque = opaque};
    pthread_mutex_lock(&grouped_lock);
    uint64_t id = g->id = grouped_next_id++;
    g->next = grouped;
    grouped = g;
    pthread_mutex_unlock(&grouped_lock);
    int rc = vf_workers_submit(what, grouped_run, grouped_done, (void *)(uintptr_t)id);
    if (rc < 0) {
        pthread_mutex_lock(&grouped_lock);
        grouped_find(id, true);
        pthread_mutex_unlock(&grouped_lock);
        group->release(opaque);
        free(g);
    }
    return rc;
}

void vf_job_group_drop_all(struct vf_job_group *group)
{
    struct grouped_job *idle = NULL;
    pthread_mutex_lock(&grouped_lock);
    for (struct grouped_job **pp = &grouped; *pp;) {
        struct grouped_job *g = *pp;
        if (g->group != group) {
            pp = &g->next;
            continue;
        }
        *pp = g->next;
        if (g->running) {
            g->orphaned = true;
        } else {
            g->next = idle;
            idle = g;
        }
    }
    pthread_mutex_unlock(&grouped_lock);
    while (idle) {
        struct grouped_job *next = idle->next;
        group->release(idle->opaque);
        free(idle);
        idle = next;
    }
}
