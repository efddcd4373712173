/* The event loop: libvirt's default event implementation, run by one thread that
 * owns the store and all object state.  Other threads (API connections, workers)
 * hand work to it with vf_loop_post() / vf_loop_call(). */
#ifndef VF_LOOP_H
#define VF_LOOP_H
#include <stdbool.h>

typedef void (*vf_loop_fn)(void *opaque);

/* Register libvirt's default event loop and the cross-thread wake-up.  Once. */
int vf_loop_init(void);
/* Run on the calling thread (which becomes the loop thread) until vf_loop_quit(). */
int vf_loop_run(void);
/* From any thread, including signal-safe contexts: make vf_loop_run() return. */
void vf_loop_quit(void);
/* On the loop thread after vf_loop_run() returned and the producers (API,
 * workers) stopped: run what is still queued, then refuse further posts. */
void vf_loop_finish(void);
bool vf_loop_on_loop_thread(void);

/* From any thread: run fn(opaque) on the loop thread soon.  Never blocks. */
int vf_loop_post(vf_loop_fn fn, void *opaque);
/* From any thread other than the loop thread: run fn on the loop thread and wait
 * for it to finish.  On the loop thread itself, calls fn directly. */
int vf_loop_call(vf_loop_fn fn, void *opaque);

/* Loop-thread only.  Return an id > 0 or a negative errno. */
int vf_loop_timer_add(int interval_ms, vf_loop_fn fn, void *opaque);
void vf_loop_timer_remove(int id);
typedef void (*vf_loop_fd_fn)(void *opaque, int fd, int events);
int vf_loop_fd_add(int fd, int events, vf_loop_fd_fn fn, void *opaque);
void vf_loop_fd_remove(int id);
#endif
