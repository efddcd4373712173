/* The table of core services handed to every module (struct vf_core).  Each
 * entry is a thin adapter that adds what the module must not have to manage:
 * its name on log lines, and tracking of what it holds (timers, fds, watches,
 * routes, kinds) so the core can release it all when the module stops. */
#include <config.h>
#include "modules.h"
#include "module_instance.h"
#include "api.h"
#include "cluster.h"
#include "audit.h"
#include "kinds.h"
#include "log.h"
#include "loop.h"
#include "node_gate.h"
#include "objects.h"
#include "workers.h"
#include "vms_internal.h"

#include <errno.h>
#include <stdlib.h>

struct vf_watch {
    struct vf_store_watch *store_watch;
    vf_watch_fn fn;
    void *opaque;
};

static void svc_log(struct vf_module_ctx *ctx, enum vf_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void svc_log(struct vf_module_ctx *ctx, enum vf_log_level level, const char *fmt, ...)
{
    struct vf_module_instance *m = vf_module_instance_of(ctx);
    va_list ap;
    va_start(ap, fmt);
    vf_log_msgv(m->name, m->log_level, level, fmt, ap);
    va_end(ap);
}

static int svc_kind_register(struct vf_module_ctx *ctx, const struct vf_kind *kind)
{
    struct vf_error err = {0};
    int rc = vf_kinds_register(kind, ctx, &err);
    if (rc < 0)
        svc_log(ctx, VF_LOG_ERROR, "cannot register kind %s: %s", kind->kind, err.message);
    return rc;
}

static int svc_object_get(struct vf_module_ctx *ctx, const char *kind, const char *name,
                          struct json_object **out)
{
    return vf_objects_get(kind, name, out, NULL);
}

static int svc_object_list(struct vf_module_ctx *ctx, const char *kind, struct json_object **out)
{
    return vf_objects_list(kind, out, NULL, NULL);
}

static int svc_object_create(struct vf_module_ctx *ctx, const char *kind,
                             const struct json_object *obj, struct json_object **out,
                             struct vf_error *err)
{
    return vf_objects_create(kind, obj, out, err);
}

static int svc_object_update(struct vf_module_ctx *ctx, const char *kind,
                             const struct json_object *obj, struct json_object **out,
                             struct vf_error *err)
{
    return vf_objects_update(kind, obj, out, err);
}

static int svc_object_update_status(struct vf_module_ctx *ctx, const char *kind, const char *name,
                                    const struct json_object *status, struct json_object **out,
                                    struct vf_error *err)
{
    return vf_objects_update_status(kind, name, status, out, err);
}

static int svc_object_delete(struct vf_module_ctx *ctx, const char *kind, const char *name,
                             struct vf_error *err)
{
    return vf_objects_delete(kind, name, 0, NULL, err);
}

static void watch_adapter(void *opaque, const char *kind, enum vf_watch_event type,
                          const struct json_object *obj)
{
    struct vf_watch *w = opaque;
    w->fn(w->opaque, type, obj);
}

static struct vf_watch *svc_watch_add(struct vf_module_ctx *ctx, const char *kind, vf_watch_fn fn,
                                      void *opaque)
{
    struct vf_module_instance *m = vf_module_instance_of(ctx);
    const char *canonical = NULL;
    if (kind) {
        const struct vf_kind_entry *k = vf_kinds_lookup(kind);
        if (!k) {
            svc_log(ctx, VF_LOG_ERROR, "cannot watch unknown kind \"%s\"", kind);
            return NULL;
        }
        canonical = k->kind->kind;
    }
    struct vf_watch *w = calloc(1, sizeof *w);
    struct vf_watch **grown = realloc(m->watches, (size_t)(m->n_watches + 1) * sizeof *grown);
    if (!w || !grown) {
        free(w);
        return NULL;
    }
    m->watches = grown;
    w->fn = fn;
    w->opaque = opaque;
    struct vf_error err = {0};
    if (vf_store_watch_add(vf_objects_store(), canonical, 0, watch_adapter, w, &w->store_watch,
                           &err) < 0) {
        svc_log(ctx, VF_LOG_ERROR, "cannot watch %s: %s", kind ? kind : "all kinds", err.message);
        free(w);
        return NULL;
    }
    m->watches[m->n_watches++] = w;
    return w;
}

void vf_core_watch_free(struct vf_watch *w)
{
    if (w->store_watch && vf_objects_store())
        vf_store_watch_remove(vf_objects_store(), w->store_watch);
    free(w);
}

static void svc_watch_remove(struct vf_module_ctx *ctx, struct vf_watch *w)
{
    struct vf_module_instance *m = vf_module_instance_of(ctx);
    for (int i = 0; i < m->n_watches; i++)
        if (m->watches[i] == w) {
            m->watches[i] = m->watches[--m->n_watches];
            vf_core_watch_free(w);
            return;
        }
}

static int svc_timer_add(struct vf_module_ctx *ctx, int interval_ms, vf_timer_fn fn, void *opaque)
{
    struct vf_module_instance *m = vf_module_instance_of(ctx);
    int id = vf_loop_timer_add(interval_ms, fn, opaque);
    if (id > 0 && vf_module_track_id(&m->timers, &m->n_timers, id) < 0) {
        vf_loop_timer_remove(id);
        return -ENOMEM;
    }
    return id;
}

static void svc_timer_remove(struct vf_module_ctx *ctx, int id)
{
    struct vf_module_instance *m = vf_module_instance_of(ctx);
    vf_module_untrack_id(m->timers, &m->n_timers, id);
    vf_loop_timer_remove(id);
}

static int svc_fd_add(struct vf_module_ctx *ctx, int fd, int events, vf_fd_fn fn, void *opaque)
{
    struct vf_module_instance *m = vf_module_instance_of(ctx);
    int id = vf_loop_fd_add(fd, events, fn, opaque);
    if (id > 0 && vf_module_track_id(&m->fds, &m->n_fds, id) < 0) {
        vf_loop_fd_remove(id);
        return -ENOMEM;
    }
    return id;
}

static void svc_fd_remove(struct vf_module_ctx *ctx, int id)
{
    struct vf_module_instance *m = vf_module_instance_of(ctx);
    vf_module_untrack_id(m->fds, &m->n_fds, id);
    vf_loop_fd_remove(id);
}

static int svc_job_submit(struct vf_module_ctx *ctx, const char *what, vf_job_run_fn run,
                          vf_job_done_fn done, void *opaque)
{
    return vf_workers_submit(what, run, done, opaque);
}

static int svc_route_add(struct vf_module_ctx *ctx, const char *method, const char *prefix,
                         vf_route_fn fn, void *opaque)
{
    return vf_api_route_add(ctx, vf_module_instance_of(ctx)->name, method, prefix, fn, opaque);
}

static void svc_audit_emit(struct vf_module_ctx *ctx, const char *type,
                           const struct json_object *details)
{
    vf_audit_emit(vf_module_instance_of(ctx)->name, NULL, type, details);
}

static void *svc_node_connection(struct vf_module_ctx *ctx, const char *node)
{
    return vf_cluster_connection(node);
}

static void svc_set_data(struct vf_module_ctx *ctx, void *data)
{
    vf_module_instance_of(ctx)->data = data;
}

static void *svc_get_data(struct vf_module_ctx *ctx)
{
    return vf_module_instance_of(ctx)->data;
}

static const char *svc_state_dir(struct vf_module_ctx *ctx)
{
    return vf_module_state_dir(vf_module_instance_of(ctx));
}

static int svc_loop_post(struct vf_module_ctx *ctx, vf_job_done_fn fn, void *opaque)
{
    (void)ctx; /* any thread: the instance is not looked at */
    return vf_loop_post(fn, opaque);
}

static int svc_vm_migration_target(struct vf_module_ctx *ctx, const char *vm,
                                   const char *node_name, const struct json_object *selector,
                                   const char *const *exclude, char *target, size_t target_len,
                                   struct vf_error *err)
{
    (void)ctx;
    return vf_vms_migration_target(vm, node_name, selector, exclude, target, target_len, err);
}

static int svc_vm_migration_begin(struct vf_module_ctx *ctx, const char *vm, const char *target,
                                  const struct json_object *fields, struct vf_error *err)
{
    (void)ctx;
    return vf_vms_migration_begin(vm, target, fields, err);
}

static int svc_vm_migration_update(struct vf_module_ctx *ctx, const char *vm,
                                   const struct json_object *fields, struct vf_error *err)
{
    (void)ctx;
    return vf_vms_migration_update(vm, fields, err);
}

static int svc_vm_migration_end(struct vf_module_ctx *ctx, const char *vm, const char *node,
                                const struct json_object *fields, struct vf_error *err)
{
    (void)ctx;
    return vf_vms_migration_end(vm, node, fields, err);
}

static const struct vf_core core_services = {
    .size = sizeof(struct vf_core),
    .abi_major = VF_MODULE_ABI_MAJOR,
    .abi_minor = VF_MODULE_ABI_MINOR,
    .log = svc_log,
    .kind_register = svc_kind_register,
    .object_get = svc_object_get,
    .object_list = svc_object_list,
    .object_create = svc_object_create,
    .object_update = svc_object_update,
    .object_update_status = svc_object_update_status,
    .object_delete = svc_object_delete,
    .watch_add = svc_watch_add,
    .watch_remove = svc_watch_remove,
    .timer_add = svc_timer_add,
    .timer_remove = svc_timer_remove,
    .fd_add = svc_fd_add,
    .fd_remove = svc_fd_remove,
    .job_submit = svc_job_submit,
    .route_add = svc_route_add,
    .audit_emit = svc_audit_emit,
    .node_connection = svc_node_connection,
    .set_data = svc_set_data,
    .get_data = svc_get_data,
    .state_dir = svc_state_dir,
    .loop_post = svc_loop_post,
    .vm_migration_target = svc_vm_migration_target,
    .vm_migration_begin = svc_vm_migration_begin,
    .vm_migration_update = svc_vm_migration_update,
    .vm_migration_end = svc_vm_migration_end,
    .node_gate_enter = vf_node_gate_enter,
    .node_gate_leave = vf_node_gate_leave,
};

const struct vf_core *vf_core_services(void)
{
    return &core_services;
}
