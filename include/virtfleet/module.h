/*
 * virtfleet module SDK: the only header a virtfleet module includes.
 *
 * A module is a shared object in the daemon's module directory that exports one
 * symbol, VF_MODULE_SYMBOL ("virtfleet_module"), a `struct vf_module`.  The daemon
 * checks the descriptor's ABI version before it touches anything else:
 *   - abi_major must equal the daemon's VF_MODULE_ABI_MAJOR;
 *   - abi_minor may be lower than the daemon's (features are only ever appended);
 *   - size tells the daemon how much of the descriptor the module knows about.
 * In return the daemon hands the module a `struct vf_core` table of services whose
 * first field is its size; a module built against a newer minor checks
 * `core->size` before it calls an appended service (VF_CORE_HAS()).
 *
 * Threading: every callback below (configure, start, reconfigure, stop, watch,
 * timer, fd, job done, route, kind validation) runs on the daemon's single event
 * loop thread, which owns the store and all object state: no locks are needed.
 * Blocking work goes to core->job_submit(); only its `run` function runs on a
 * worker thread, and it must not call any core service other than log().
 *
 * Objects are json-c objects shaped like Kubernetes resources:
 *   { "apiVersion", "kind", "metadata": { name, uid, resourceVersion, generation,
 *     creationTimestamp, labels, finalizers, deletionTimestamp }, "spec", "status" }.
 * Ownership: an object a service returns through `**out` belongs to the caller
 * (json_object_put() it); an object passed in is borrowed (never consumed).
 *
 * Errors: services return 0 or a negative errno and, where they take one, fill a
 * `struct vf_error` that says what is wrong and where (HTTP status, reason, field).
 */
#ifndef VIRTFLEET_MODULE_H
#define VIRTFLEET_MODULE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <json-c/json.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VF_MODULE_ABI_MAJOR 1 /* bump: incompatible change; every module must be rebuilt */
#define VF_MODULE_ABI_MINOR 2 /* bump: something appended; older modules still load */

#define VF_MODULE_SYMBOL "virtfleet_module"
#define VF_API_GROUP "virtfleet.io"
#define VF_API_VERSION "v1alpha2"

/* ---- errors ------------------------------------------------------------ */

struct vf_error {
    int status;         /* HTTP status: 400 invalid, 404 missing, 409 conflict, 422 ... */
    char reason[32];    /* machine-readable: Invalid, NotFound, Conflict, AlreadyExists ... */
    char field[128];    /* the offending field as a path, e.g. "spec.cpu.type"; may be "" */
    char message[512];  /* what is wrong and what to do, in words */
};

/* Fill *err (if not NULL) and return -errno_value, so a caller can write
 * `return vf_error_set(err, -EINVAL, 400, "Invalid", "spec.cpu", "...")`. */
static inline int vf_error_set(struct vf_error *err, int errno_value, int status,
                               const char *reason, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static inline int vf_error_set(struct vf_error *err, int errno_value, int status,
                               const char *reason, const char *field, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->status = status;
        snprintf(err->reason, sizeof err->reason, "%s", reason ? reason : "");
        snprintf(err->field, sizeof err->field, "%s", field ? field : "");
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return errno_value < 0 ? errno_value : -errno_value;
}

/* ---- logging ----------------------------------------------------------- */

enum vf_log_level { VF_LOG_ERROR = 0, VF_LOG_WARN = 1, VF_LOG_INFO = 2, VF_LOG_DEBUG = 3 };

/* ---- settings: each module declares its schema, the core validates ------ */

enum vf_setting_type {
    VF_SETTING_BOOL,     /* true / false */
    VF_SETTING_INT,      /* integer within [min, max] */
    VF_SETTING_STRING,   /* any string, or one of `choices` when set */
    VF_SETTING_SIZE,     /* "640Mi", "50G", "1048576": delivered as an int64 of bytes */
    VF_SETTING_DURATION, /* "150s", "5m", "2h", "300": delivered as an int64 of milliseconds */
    VF_SETTING_STRINGS,  /* a list of strings */
    VF_SETTING_GROUP,    /* a nested group whose members are `children` */
};

enum vf_setting_flags {
    VF_SETTING_REQUIRED = 1 << 0, /* no default: the admin must set it */
    VF_SETTING_RESTART = 1 << 1,  /* a change restarts the module instead of reconfigure() */
};

struct vf_setting {
    const char *name;                 /* camelCase, as in the seeds: "bandwidthPerMigration" */
    enum vf_setting_type type;
    const char *default_value;        /* in the config file's syntax ("640Mi", "true"); NULL: none */
    int64_t min, max;                 /* bounds for INT, SIZE, DURATION (both 0: unbounded) */
    unsigned flags;                   /* enum vf_setting_flags */
    const char *const *choices;       /* STRING: NULL-terminated allowed values, or NULL */
    const struct vf_setting *children;/* GROUP: members, ended by an entry with name == NULL */
    const char *description;          /* one line, shown by `virtfleetd --list-modules` */
};

/* ---- kinds: resource types a module (or the core) registers -------------- */

enum vf_field_type {
    VF_FIELD_ANY,      /* not checked */
    VF_FIELD_STRING,
    VF_FIELD_INT,      /* integer within [min, max] when both are not 0 */
    VF_FIELD_BOOL,
    VF_FIELD_OBJECT,   /* members in `children`; unknown members are refused */
    VF_FIELD_MAP,      /* object with free keys whose values are strings (labels) */
    VF_FIELD_ARRAY,    /* elements described by children[0] */
    VF_FIELD_QUANTITY, /* "1Gi", "512Mi", "2" (string or integer) */
    VF_FIELD_PERCENT,  /* "25%" */
};

enum vf_field_flags {
    VF_FIELD_REQUIRED = 1 << 0,
    VF_FIELD_IMMUTABLE = 1 << 1, /* may not change once the object exists */
    VF_FIELD_DNS_LABEL = 1 << 2, /* STRING: an RFC 1123 label (a-z0-9-, <= 63) */
};

struct vf_field {
    const char *name;
    enum vf_field_type type;
    unsigned flags;                   /* enum vf_field_flags */
    const char *const *enum_values;   /* STRING: NULL-terminated allowed values, or NULL */
    const struct vf_field *children;  /* OBJECT: members, ended by name == NULL; ARRAY: [0] */
    int64_t min, max;                 /* INT bounds; ARRAY: max elements when max != 0 */
};

struct vf_core;

/* What every callback receives: the module's handle.  Only `core` is public; the
 * daemon keeps the rest of its per-module state behind it. */
struct vf_module_ctx {
    const struct vf_core *core;
};

struct vf_kind {
    const char *kind;        /* "VirtualMachine" */
    const char *plural;      /* "virtualmachines": the URL path segment */
    const char *singular;    /* "virtualmachine" */
    const char *short_name;  /* "vm" */
    const struct vf_field *spec;   /* schema of .spec (ended by name == NULL); NULL: any */
    /* Extra checks after the schema passed, on create (old == NULL) and update.
     * May fill defaults into `obj`.  Return 0 or a negative errno with *err filled. */
    int (*validate)(struct vf_module_ctx *ctx, const struct json_object *old,
                    struct json_object *obj, struct vf_error *err);
    /* Columns for `virtfleet get`: NULL-terminated pairs of header and dotted path,
     * e.g. { "PHASE", "status.phase", "NODE", "status.node", NULL }.  NAME and AGE are
     * always shown first and last. */
    const char *const *columns;
    unsigned flags;          /* enum vf_kind_flags */
};

enum vf_kind_flags {
    /* API clients may list, get and watch but never write: objects of this kind
     * are written by the daemon and its modules only (e.g. AuditEvent). */
    VF_KIND_API_READ_ONLY = 1 << 0,
};

/* ---- watches, timers, fds, jobs, routes --------------------------------- */

enum vf_watch_event { VF_WATCH_ADDED, VF_WATCH_MODIFIED, VF_WATCH_DELETED };

/* `obj` is borrowed for the duration of the call. */
typedef void (*vf_watch_fn)(void *opaque, enum vf_watch_event type, const struct json_object *obj);
typedef void (*vf_timer_fn)(void *opaque);
typedef void (*vf_fd_fn)(void *opaque, int fd, int events); /* events: POLLIN / POLLOUT bits */
typedef void (*vf_job_run_fn)(void *opaque);   /* on a worker thread */
typedef void (*vf_job_done_fn)(void *opaque);  /* back on the loop thread, after run */

struct vf_request {
    const char *method;             /* "GET", "POST", ... */
    const char *path;               /* full path, e.g. "/apis/virtfleet.io/v1alpha2/migrate/status" */
    const char *path_rest;          /* what follows the registered prefix */
    const char *(*query)(const struct vf_request *req, const char *key); /* NULL if absent */
    const struct json_object *body; /* parsed JSON body or NULL */
    uint32_t peer_uid, peer_gid;    /* SO_PEERCRED of the caller */
    int32_t peer_pid;
    void *internal;                 /* the core's */
};

/* A route handler fills *response (owned by the core afterwards) and returns the
 * HTTP status, or returns a negative errno with *err filled. */
typedef int (*vf_route_fn)(void *opaque, const struct vf_request *req,
                           struct json_object **response, struct vf_error *err);

struct vf_watch;

/* The services the core offers.  Append only; never reorder or remove. */
struct vf_core {
    uint32_t size;                /* sizeof(struct vf_core) in the running daemon */
    uint16_t abi_major, abi_minor;

    void (*log)(struct vf_module_ctx *ctx, enum vf_log_level level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

    /* Store.  Kinds are named by kind ("VirtualMachine"), plural or short name. */
    int (*kind_register)(struct vf_module_ctx *ctx, const struct vf_kind *kind);
    int (*object_get)(struct vf_module_ctx *ctx, const char *kind, const char *name,
                      struct json_object **out);
    /* *out: a JSON array of objects sorted by name. */
    int (*object_list)(struct vf_module_ctx *ctx, const char *kind, struct json_object **out);
    /* Validated like an API request; metadata is filled in.  out may be NULL. */
    int (*object_create)(struct vf_module_ctx *ctx, const char *kind, const struct json_object *obj,
                         struct json_object **out, struct vf_error *err);
    /* Replaces spec/metadata; refused with -ESTALE (409) when obj's
     * metadata.resourceVersion is set and not current. */
    int (*object_update)(struct vf_module_ctx *ctx, const char *kind, const struct json_object *obj,
                         struct json_object **out, struct vf_error *err);
    /* Replaces .status only (controllers own status; users own spec). */
    int (*object_update_status)(struct vf_module_ctx *ctx, const char *kind, const char *name,
                                const struct json_object *status, struct json_object **out,
                                struct vf_error *err);
    /* With finalizers present this marks metadata.deletionTimestamp instead. */
    int (*object_delete)(struct vf_module_ctx *ctx, const char *kind, const char *name,
                         struct vf_error *err);
    /* Calls fn for every current object (as ADDED), then for every change.  kind NULL: all. */
    struct vf_watch *(*watch_add)(struct vf_module_ctx *ctx, const char *kind, vf_watch_fn fn,
                                  void *opaque);
    void (*watch_remove)(struct vf_module_ctx *ctx, struct vf_watch *watch);

    /* Loop.  Timers repeat every interval_ms until removed; ids are > 0. */
    int (*timer_add)(struct vf_module_ctx *ctx, int interval_ms, vf_timer_fn fn, void *opaque);
    void (*timer_remove)(struct vf_module_ctx *ctx, int timer_id);
    int (*fd_add)(struct vf_module_ctx *ctx, int fd, int events, vf_fd_fn fn, void *opaque);
    void (*fd_remove)(struct vf_module_ctx *ctx, int fd_watch_id);

    /* Workers: run() on a worker thread, then done() on the loop thread.  done()
     * is called once for every job whose run() finished, even when the module
     * stopped in between: keep what a job needs in its opaque (not in state that
     * stop() frees) and let done() free it.  Jobs still queued when the daemon
     * exits are dropped without either call. */
    int (*job_submit)(struct vf_module_ctx *ctx, const char *what, vf_job_run_fn run,
                      vf_job_done_fn done, void *opaque);

    /* HTTP: handle METHOD on the API socket for paths under
     * /apis/virtfleet.io/v1alpha2/modules/<module name>/<prefix>. */
    int (*route_add)(struct vf_module_ctx *ctx, const char *method, const char *prefix,
                     vf_route_fn fn, void *opaque);

    /* Audit: record a security-relevant event (type like "vm.create").  `details`
     * is borrowed.  Delivered in order to every watcher of kind AuditEvent. */
    void (*audit_emit)(struct vf_module_ctx *ctx, const char *type,
                       const struct json_object *details);

    /* Cluster: the libvirt connection (virConnectPtr) of a Ready node, or NULL.
     * Borrowed: valid until the loop iteration ends; take virConnectRef to keep it. */
    void *(*node_connection)(struct vf_module_ctx *ctx, const char *node);

    /* The module's own private data slot. */
    void (*set_data)(struct vf_module_ctx *ctx, void *data);
    void *(*get_data)(struct vf_module_ctx *ctx);
    /* The module's state directory (created on demand), e.g. $statedir/modules/<name>. */
    const char *(*state_dir)(struct vf_module_ctx *ctx);

    /* ---- ABI 1.1 ---- */

    /* Run fn(opaque) on the loop thread soon.  The one service that may be called
     * from any thread (a worker, or a thread the module started itself, e.g. a
     * listener): the way such a thread hands results back.  -ENOMEM on failure. */
    int (*loop_post)(struct vf_module_ctx *ctx, vf_job_done_fn fn, void *opaque);

    /* Live migration (for the migrate module; also ABI 1.1: nothing shipped in between).
     * A VM being migrated has status.phase "Migrating" and status.migrationState
     * { sourceNode, targetNode, ...the caller's fields }.  From begin to end the VM
     * controller leaves the VM alone and placement reserves its CPU and memory on
     * both nodes; a restarted daemon keeps both reservations until end is called.
     * The caller moves the domain (libvirt) and must end every migration it began. */

    /* Choose a node Running VM `vm` could move to: the placement a start gets (node
     * Ready and not cordoned, class and VM nodeSelector, affinity, free CPU and memory
     * counting every reservation, migrations included), never the VM's own node.
     * node_name: that node only (spec.migrate.nodeName), or NULL; selector: a map of
     * labels the target must also carry (spec.migrate.nodeSelector), or NULL; exclude:
     * a NULL-terminated list of further nodes to leave out, or NULL.  Fills target.
     * Errors: -ENOSPC (422 Unschedulable: the reasons node by node), -EBUSY (409: the
     * VM is not Running or is being deleted), -ENOENT (404), -EINVAL (422). */
    int (*vm_migration_target)(struct vf_module_ctx *ctx, const char *vm, const char *node_name,
                               const struct json_object *selector, const char *const *exclude,
                               char *target, size_t target_len, struct vf_error *err);
    /* Begin: checks that the VM is Running and that `target` still fits it, then in one
     * status write sets phase Migrating and migrationState to a copy of `fields` (may be
     * NULL) plus sourceNode and targetNode.  Errors as vm_migration_target. */
    int (*vm_migration_begin)(struct vf_module_ctx *ctx, const char *vm, const char *target,
                              const struct json_object *fields, struct vf_error *err);
    /* Progress: replace the members of migrationState named in `fields` (a JSON null
     * removes one).  Writes only when something changed.  -EBUSY when not Migrating. */
    int (*vm_migration_update)(struct vf_module_ctx *ctx, const char *vm,
                               const struct json_object *fields, struct vf_error *err);
    /* End: the domain now runs on `node` (migrationState.sourceNode or targetNode).
     * Merges `fields` as update does, sets status.node to node and phase Running, and
     * frees the other node's reservation; the VM controller takes the VM back, confirms
     * the domain there (runPolicy applies if it is not running) and moves on.
     * -EBUSY when not Migrating, -EINVAL when node is neither source nor target. */
    int (*vm_migration_end)(struct vf_module_ctx *ctx, const char *vm, const char *node,
                            const struct json_object *fields, struct vf_error *err);

    /* ---- ABI 1.2 ---- */

    /* The gate of a node's shared connection (node_connection()): a worker makes its
     * libvirt calls on it between enter and leave, so that one thread at a time waits
     * on it.  libvirt 9.0 crashes the process when two threads wait on one connection
     * whose node hangs past the keepalive (see <virtfleet/node_connection.h>).  Any
     * thread but the loop's; never nested (enter one connection's gate at a time);
     * long calls go on a connection of their own instead. */
    void (*node_gate_enter)(void *conn);
    void (*node_gate_leave)(void *conn);
};

/* Does this daemon's core table have `member`?  For modules built against a newer minor. */
#define VF_CORE_HAS(core, member) \
    ((core)->size >= offsetof(struct vf_core, member) + sizeof((core)->member))

/* The one symbol a module exports.  The first three fields never move. */
struct vf_module {
    uint16_t abi_major;           /* VF_MODULE_ABI_MAJOR at build time */
    uint16_t abi_minor;           /* VF_MODULE_ABI_MINOR at build time */
    uint32_t size;                /* sizeof(struct vf_module) at build time */
    const char *name;             /* must equal the file name without .so */
    const char *version;          /* the module's own version, "1.2.0" */
    const char *summary;          /* one line */
    int settings_version;         /* the settings schema version the config's `version` names */
    const struct vf_setting *settings; /* ended by name == NULL; NULL: no settings */

    /* Validate settings (already checked against `settings` and defaulted by the
     * core; sizes in bytes, durations in ms).  No side effects.  May be NULL. */
    int (*configure)(struct vf_module_ctx *ctx, const struct json_object *settings,
                     struct vf_error *err);
    /* Register kinds, watches, routes; begin work. */
    int (*start)(struct vf_module_ctx *ctx, const struct json_object *settings);
    /* Apply new settings while running.  NULL: the core restarts the module. */
    int (*reconfigure)(struct vf_module_ctx *ctx, const struct json_object *settings);
    /* Stop work and free what start() made.  Watches, timers, fds and routes the
     * module still holds are removed by the core after stop returns. */
    void (*stop)(struct vf_module_ctx *ctx);
};

/* Define the descriptor: VF_MODULE_DEFINE(.name = "example", .version = "1.0", ...) */
#define VF_MODULE_DEFINE(...)                                                   \
    __attribute__((visibility("default"))) const struct vf_module virtfleet_module = { \
        .abi_major = VF_MODULE_ABI_MAJOR,                                       \
        .abi_minor = VF_MODULE_ABI_MINOR,                                       \
        .size = sizeof(struct vf_module),                                       \
        __VA_ARGS__}


#ifdef __cplusplus
}
#endif
#endif
