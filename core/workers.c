/* Worker threads for blocking work (downloads, migrations, fence commands).
 * A job's run() happens on a worker; its done() is posted to the loop thread,
 * which alone may touch objects. */
#include <config.h>
#include "workers.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
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
