/* The event loop.  libvirt's default event implementation does the polling:
 * libvirt's own keepalives and domain event callbacks need it anyway, so the
 * daemon's timers, fds and cross-thread wake-ups share it.
 *
 * Other threads hand work over through a queue and an eventfd registered with
 * the loop.  After vf_loop_run returns, posts are still queued while the daemon
 * tears down (the API posts its watch removals then); vf_loop_finish runs what
 * is queued and refuses later posts with -ESHUTDOWN, so no thread can wait
 * forever on a loop that has gone. */
#include <config.h>
#include "loop.h"
#include "log.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

struct posted {
    vf_loop_fn fn;
    void *opaque;
    struct posted *next;
};

/* A vf_loop_call() waiting for its function to run. */
struct call_wait {
    vf_loop_fn fn;
    void *opaque;
    bool done;
    pthread_cond_t cond;
};

static pthread_mutex_t queue_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t call_done = PTHREAD_COND_INITIALIZER;
static struct posted *queue_head, *queue_tail;
static int wake_fd = -1;
static int quit_requested;      /* atomic: set from any thread */
static bool accepting;          /* under queue_lock: posts are taken */
static pthread_t loop_thread;   /* written before loop_thread_set is released */
static bool loop_thread_set;    /* atomic */

static void loop_drain(void)
{
    for (;;) {
        pthread_mutex_lock(&queue_lock);
        struct posted *p = queue_head;
        if (p) {
            queue_head = p->next;
            if (!queue_head)
                queue_tail = NULL;
        }
        pthread_mutex_unlock(&queue_lock);
        if (!p)
            return;
        p->fn(p->opaque);
        free(p);
    }
}

static void loop_wake_cb(int watch, int fd, int events, void *opaque)
{
    uint64_t n;
    /* The counter only says "look at the queue"; its value does not matter. */
    while (read(fd, &n, sizeof n) < 0 && errno == EINTR)
        ;
    loop_drain();
}

static void loop_wake(void)
{
    uint64_t one = 1;
    /* Best effort: a full counter (EAGAIN) already means a wake-up is pending. */
    ssize_t r = write(wake_fd, &one, sizeof one);
    (void)r;
}

/* libvirt reports its own errors through this; the daemon reports them where
 * they matter (with the object named), so the default stderr dump is silenced. */
static void loop_libvirt_error_sink(void *opaque, virErrorPtr err)
{
    if (err && err->level == VIR_ERR_ERROR)
        vf_log_debug("libvirt: %s", err->message ? err->message : "(no message)");
}

int vf_loop_init(void)
{
    if (wake_fd >= 0)
        return 0;
    virSetErrorFunc(NULL, loop_libvirt_error_sink);
    if (virEventRegisterDefaultImpl() < 0) {
        vf_log_error("event loop: libvirt's default event implementation failed to register");
        return -EIO;
    }
    wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd < 0) {
        int e = errno;
        vf_log_error("event loop: eventfd failed: %s", strerror(e));
        return -e;
    }
    if (virEventAddHandle(wake_fd, VIR_EVENT_HANDLE_READABLE, loop_wake_cb, NULL, NULL) < 0) {
        vf_log_error("event loop: cannot watch the wake-up descriptor");
        return -EIO;
    }
    pthread_mutex_lock(&queue_lock);
    accepting = true;
    pthread_mutex_unlock(&queue_lock);
    return 0;
}

int vf_loop_run(void)
{
    loop_thread = pthread_self();
    __atomic_store_n(&loop_thread_set, true, __ATOMIC_RELEASE);
    __atomic_store_n(&quit_requested, 0, __ATOMIC_RELAXED);
    pthread_mutex_lock(&queue_lock);
    accepting = true;
    pthread_mutex_unlock(&queue_lock);

    int rc = 0;
    while (!__atomic_load_n(&quit_requested, __ATOMIC_RELAXED)) {
        if (virEventRunDefaultImpl() < 0) {
            vf_log_error("event loop: iteration failed");
            rc = -EIO;
            break;
        }
    }
    return rc;
}

void vf_loop_finish(void)
{
    pthread_mutex_lock(&queue_lock);
    accepting = false;
    pthread_mutex_unlock(&queue_lock);
    loop_drain();
}

void vf_loop_quit(void)
{
    __atomic_store_n(&quit_requested, 1, __ATOMIC_RELAXED);
    if (wake_fd >= 0)
        loop_wake();   /* write(2) is async-signal-safe */
}

bool vf_loop_on_loop_thread(void)
{
    return __atomic_load_n(&loop_thread_set, __ATOMIC_ACQUIRE) &&
           pthread_equal(loop_thread, pthread_self());
}

int vf_loop_post(vf_loop_fn fn, void *opaque)
{
    struct posted *p = malloc(sizeof *p);
    if (!p)
        return -ENOMEM;
    *p = (struct posted){.fn = fn, .opaque = opaque};
    pthread_mutex_lock(&queue_lock);
    if (!accepting) {
        pthread_mutex_unlock(&queue_lock);
        free(p);
        return -ESHUTDOWN;
    }
    if (queue_tail)
        queue_tail->next = p;
    else
        queue_head = p;
    queue_tail = p;
    pthread_mutex_unlock(&queue_lock);
    loop_wake();
    return 0;
}

static void call_run(void *opaque)
{
    struct call_wait *w = opaque;
    w->fn(w->opaque);
    pthread_mutex_lock(&queue_lock);
    w->done = true;
    pthread_mutex_unlock(&queue_lock);
    pthread_cond_broadcast(&call_done);
}

int vf_loop_call(vf_loop_fn fn, void *opaque)
{
    if (vf_loop_on_loop_thread()) {
        fn(opaque);
        return 0;
    }
    struct call_wait w = {.fn = fn, .opaque = opaque};
    int rc = vf_loop_post(call_run, &w);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&queue_lock);
    while (!w.done)
        pthread_cond_wait(&call_done, &queue_lock);
    pthread_mutex_unlock(&queue_lock);
    return 0;
}

/* ---- timers and fds: thin adapters over libvirt's event API ---- */

struct loop_cb {
    vf_loop_fn fn;
    vf_loop_fd_fn fd_fn;
    void *opaque;
};

static void loop_cb_free(void *opaque)
{
    free(opaque);
}

static void loop_timer_cb(int timer, void *opaque)
{
    struct loop_cb *cb = opaque;
    cb->fn(cb->opaque);
}

int vf_loop_timer_add(int interval_ms, vf_loop_fn fn, void *opaque)
{
    struct loop_cb *cb = calloc(1, sizeof *cb);
    if (!cb)
        return -ENOMEM;
    cb->fn = fn;
    cb->opaque = opaque;
    int id = virEventAddTimeout(interval_ms, loop_timer_cb, cb, loop_cb_free);
    if (id < 0) {
        free(cb);
        return -EIO;
    }
    /* libvirt's timer ids start at 1, so 0 never names a timer. */
    return id;
}

void vf_loop_timer_remove(int id)
{
    if (id > 0)
        virEventRemoveTimeout(id);
}

static int loop_events_to_libvirt(int events)
{
    int v = 0;
    if (events & POLLIN)
        v |= VIR_EVENT_HANDLE_READABLE;
    if (events & POLLOUT)
        v |= VIR_EVENT_HANDLE_WRITABLE;
    return v;
}

static void loop_fd_cb(int watch, int fd, int events, void *opaque)
{
    struct loop_cb *cb = opaque;
    int ev = 0;
    if (events & VIR_EVENT_HANDLE_READABLE)
        ev |= POLLIN;
    if (events & VIR_EVENT_HANDLE_WRITABLE)
        ev |= POLLOUT;
    if (events & VIR_EVENT_HANDLE_ERROR)
        ev |= POLLERR;
    if (events & VIR_EVENT_HANDLE_HANGUP)
        ev |= POLLHUP;
    cb->fd_fn(cb->opaque, fd, ev);
}

int vf_loop_fd_add(int fd, int events, vf_loop_fd_fn fn, void *opaque)
{
    struct loop_cb *cb = calloc(1, sizeof *cb);
    if (!cb)
        return -ENOMEM;
    cb->fd_fn = fn;
    cb->opaque = opaque;
    int id = virEventAddHandle(fd, loop_events_to_libvirt(events), loop_fd_cb, cb, loop_cb_free);
    if (id < 0) {
        free(cb);
        return -EIO;
    }
    /* libvirt's handle ids start at 1 as well (the wake-up fd took the first). */
    return id;
}

void vf_loop_fd_remove(int id)
{
    if (id > 0)
        virEventRemoveHandle(id);
}
