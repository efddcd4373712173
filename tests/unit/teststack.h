/* The daemon's machinery for the controller suites (cluster, classes, VMs):
 * a loop thread, two workers, a store in a fresh temporary directory and the
 * cluster, brought up and torn down around each test case exactly as the
 * daemon does.  Header-only like testlib.h; include it after testlib.h. */
#ifndef VF_TESTSTACK_H
#define VF_TESTSTACK_H
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <unistd.h>
#include "core/cluster.h"
#include "core/core_kinds.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/objects.h"
#include "core/store.h"
#include "core/workers.h"

struct vf_test_stack {
    char *dir;                  /* the temporary directory; the store is dir/store.db */
    struct vf_store *store;
    pthread_t loop_thread;
    vf_loop_fn after_up;        /* on the loop thread, once the store and cluster are up */
    vf_loop_fn before_down;     /* on the loop thread, before the cluster stops */
    void *opaque;
};

static void *vf_test_stack_loop(void *arg)
{
    (void)arg;
    vf_loop_run();
    return NULL;
}

static void vf_test_stack_noop(void *opaque)
{
    (void)opaque;
}

static void vf_test_stack_open(void *opaque)
{
    struct vf_test_stack *st = opaque;
    char *path = NULL;
    struct vf_error err = {0};
    ck_assert_int_gt(asprintf(&path, "%s/store.db", st->dir), 0);
    int r = vf_store_open(path, NULL, &st->store, &err);
    ck_assert_msg(r == 0, "store: %s", err.message);
    free(path);
    vf_objects_set_store(st->store);
    ck_assert_int_eq(vf_cluster_init(), 0);
    if (st->after_up)
        st->after_up(st->opaque);
}

static void vf_test_stack_close(void *opaque)
{
    struct vf_test_stack *st = opaque;
    if (st->before_down)
        st->before_down(st->opaque);
    vf_cluster_stop();
    vf_objects_set_store(NULL);
    vf_store_close(st->store);
    st->store = NULL;
}

/* st->after_up / before_down / opaque may be set first. */
static inline void vf_test_stack_up(struct vf_test_stack *st)
{
    st->dir = vf_test_tmpdir();
    ck_assert_int_eq(vf_workers_start(2), 0);
    ck_assert_int_eq(pthread_create(&st->loop_thread, NULL, vf_test_stack_loop, NULL), 0);
    /* Posts are refused until the (re)started loop takes them. */
    while (vf_loop_call(vf_test_stack_noop, NULL) == -ESHUTDOWN)
        usleep(1000);
    vf_loop_call(vf_test_stack_open, st);
}

static inline void vf_test_stack_down(struct vf_test_stack *st)
{
    vf_loop_call(vf_test_stack_close, st);
    vf_loop_quit();
    pthread_join(st->loop_thread, NULL);
    vf_loop_finish();
    /* Jobs still running finish here and free themselves. */
    vf_workers_stop();
    vf_test_rmtree(st->dir);
    free(st->dir);
    st->dir = NULL;
}

/* main()'s part, once per process (forked test cases inherit it): the
 * absolute path of tests/lib/nodes (from $top_srcdir) into nodes_dir, the log
 * level from $VF_TEST_LOG_LEVEL, the loop and the core's kinds.  0 or -1. */
static inline int vf_test_stack_process_init(const char *prog, char nodes_dir[PATH_MAX])
{
    const char *top = getenv("top_srcdir");
    char rel[PATH_MAX];
    snprintf(rel, sizeof rel, "%s/tests/lib/nodes", top && *top ? top : ".");
    if (!realpath(rel, nodes_dir)) {
        fprintf(stderr, "%s: %s: not found (set top_srcdir)\n", prog, rel);
        return -1;
    }
    const char *level = getenv("VF_TEST_LOG_LEVEL");
    int lv = level ? vf_log_level_parse(level) : -1;
    vf_log_open(true, lv >= 0 ? (enum vf_log_level)lv : VF_LOG_ERROR);
    return vf_loop_init() < 0 || vf_core_kinds_register() < 0 ? -1 : 0;
}
#endif
