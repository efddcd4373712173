/* The core's private view of one module: shared by the loader (modules.c) and
 * the service table (core_services.c).  Modules see only `ctx`. */
#ifndef VF_MODULE_INSTANCE_H
#define VF_MODULE_INSTANCE_H
#include <stddef.h>
#include <ltdl.h>
#include "modules.h"
#include "store.h"

struct vf_module_watch;

struct vf_module_instance {
    struct vf_module_ctx ctx;          /* first: handed to the module */
    char *name;
    char *file;
    lt_dlhandle handle;                /* resident: never closed */
    const struct vf_module *desc;      /* NULL until loaded */
    enum vf_module_state state;
    bool enabled;                      /* as the configuration says */
    char reason[512];                  /* why Failed (or Disabled) */
    int log_level;                     /* -1: the daemon's */
    struct json_object *settings;      /* checked settings in force, or NULL */
    void *data;                        /* the module's set_data() slot */
    char *state_dir;
    /* What the module holds, released by the core after stop(). */
    int *timers, n_timers;
    int *fds, n_fds;
    struct vf_watch **watches;
    int n_watches;
    struct vf_module_instance *next;
};

static inline struct vf_module_instance *vf_module_instance_of(struct vf_module_ctx *ctx)
{
    return (struct vf_module_instance *)((char *)ctx - offsetof(struct vf_module_instance, ctx));
}

/* Remember / forget an id so it can be released when the module stops. */
int vf_module_track_id(int **ids, int *n, int id);
void vf_module_untrack_id(int *ids, int *n, int id);
/* $state_dir/modules/NAME, created on first use; NULL if it cannot be. */
const char *vf_module_state_dir(struct vf_module_instance *m);
/* Remove a module's watch and free it (core_services.c). */
void vf_core_watch_free(struct vf_watch *w);
#endif
