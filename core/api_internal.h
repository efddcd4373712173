/* Shared between the API server's files (api.c, api_ops.c, api_watch.c,
 * api_routes.c, api_selector.c, api_reply.c): not part of any public interface;
 * nothing outside core/api*.c may include it.  Which thread may call what is
 * said below; "loop thread" is the daemon's single event loop. */
#ifndef VF_API_INTERNAL_H
#define VF_API_INTERNAL_H
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <sys/types.h>
#include <json-c/json.h>
#include <virtfleet/module.h>

#include "audit.h"

struct MHD_Daemon;
struct MHD_Response;
struct api_watch;       /* api_watch.c */
struct api_selector;    /* api_selector.c */

/* ---- api.c: the server's state and small helpers --------------------------- */

struct api_server {
    struct MHD_Daemon *mhd;
    char *socket_path;
    dev_t socket_dev;
    ino_t socket_ino;
    size_t max_body;
    atomic_bool stopping;
    pthread_mutex_t lock;        /* guards `watches` */
    struct api_watch *watches;   /* open streams, for vf_api_stop to wake */
};
extern struct api_server api;

/* ts = now + ms on CLOCK_MONOTONIC, for conditions made by api_cond_init(). */
void api_deadline(struct timespec *ts, int64_t ms);
/* A condition variable that times out on CLOCK_MONOTONIC; 0 or a negative errno. */
int api_cond_init(pthread_cond_t *cond);

/* ---- api_reply.c: what a request is answered with ------------------------- */

struct api_reply {
    unsigned status;
    char *body;                 /* JSON text; NULL: out of memory */
    char *allow;                /* 405: the Allow header */
    struct api_watch *watch;    /* set: stream this watch */
};

/* Serializes and drops obj.  The loop thread for objects from the store. */
void api_reply_json(struct api_reply *r, unsigned status, struct json_object *obj);
void api_reply_errorf(struct api_reply *r, unsigned status, const char *reason,
                      const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* From a failed object operation: its vf_error when filled, else the errno. */
void api_reply_error(struct api_reply *r, int rc, const struct vf_error *err);

/* ---- api_selector.c: ?labelSelector= -------------------------------------- */

/* "k=v,k==v,k!=v,k,!k" -> *out (NULL for an empty selector); on error r holds
 * the reply (400, or 500 when out of memory). */
int api_selector_parse(const char *text, struct api_selector **out, struct api_reply *r);
/* A NULL selector matches everything. */
bool api_selector_match(const struct api_selector *sel, const struct json_object *obj);
void api_selector_free(struct api_selector *sel);

/* ---- one request, handed from its connection thread to the loop thread ----- */

enum api_op_type {
    OP_DISCOVERY,
    OP_MODULES,
    OP_LIST,
    OP_WATCH,
    OP_GET,
    OP_CREATE,
    OP_REPLACE,
    OP_PATCH,
    OP_STATUS,
    OP_DELETE,
    OP_ROUTE,
};

enum api_op_state { OP_PENDING, OP_RUNNING, OP_DONE };

struct api_op {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    enum api_op_state state;
    bool abandoned;             /* the connection gave up: the loop thread frees the op */

    /* The request, owned by the op (it may outlive the connection). */
    enum api_op_type type;
    char *method, *path, *kind, *name, *module, *rest;
    struct json_object *body, *query;
    struct api_selector *sel;
    int64_t rv;
    int64_t timeout_s;
    int fd;
    struct vf_audit_actor actor;

    struct api_reply reply;
};

/* ---- the operations; loop thread, each fills op->reply --------------------- */

/* api_ops.c: runs op by its type. */
void api_op_run(struct api_op *op);
/* api_watch.c: opens a watch stream (op->reply.watch). */
void api_op_watch(struct api_op *op);
/* api_routes.c: calls the module route that serves op->module and op->rest. */
void api_op_route(struct api_op *op);

/* ---- api_watch.c: watch streams ------------------------------------------- */

/* Loop thread: the store watch is gone with it. */
void api_watch_free(struct api_watch *w);
/* Connection thread: the streaming response of w.  Consumes w: the response
 * owns it, or it is freed (on the loop thread) when there is no response. */
struct MHD_Response *api_watch_response(struct api_watch *w);
/* Any thread: wakes every blocked watch reader, to see api.stopping. */
void api_stop_wake_watches(void);
#endif
