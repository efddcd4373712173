/* Shared between the migrate module's files; not part of any interface.
 * Loop thread only, except the functions marked "any thread" (job.c). */
#ifndef VF_MIGRATE_H
#define VF_MIGRATE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <virtfleet/module.h>

#define MIG_VMOP_KIND "VirtualMachineOperation"
#define MIG_VM_KIND "VirtualMachine"
#define MIG_NODE_KIND "Node"
/* Held by every Migrate/Evict operation this module runs: deleting one that
 * is in flight aborts the migration before the operation goes away. */
#define MIG_FINALIZER "virtfleet.io/migration"
/* Labels on a VirtualMachineOperation.  The priority label orders the queue
 * (drain > user > rebalance; absent or unknown: user); `virtfleet drain`
 * sets drain and names the node it empties in the drain-node label, which
 * is how uncordon finds the evictions it cancels. */
#define MIG_LABEL_PRIORITY "virtfleet.io/migration-priority"
#define MIG_LABEL_DRAIN_NODE "virtfleet.io/drain-node"
#define MIG_MSG_MAX 768

/* ---- settings (module.c) -------------------------------------------------- */

struct mig_settings {
    int64_t out_per_node, in_per_node;
    int64_t per_cluster;             /* 0: the number of schedulable nodes */
    int64_t bandwidth;               /* bytes per second; 0: unlimited */
    int64_t completion_per_gib_s;    /* seconds per GiB of memory and migrated disk */
    int64_t progress_timeout_ms;
    bool allow_auto_converge, allow_post_copy;
};

/* ---- queue.c: which waiting migrations may start (pure) -------------------- */

enum mig_priority { MIG_PRIO_REBALANCE = 0, MIG_PRIO_USER = 1, MIG_PRIO_DRAIN = 2 };
enum mig_priority mig_priority_of(const char *label_value);
const char *mig_priority_name(enum mig_priority p);

struct mig_waiting {                 /* one Pending operation */
    const char *name;
    enum mig_priority priority;
    const char *created;             /* metadata.creationTimestamp (RFC 3339, UTC) */
    uint64_t arrival;                /* the order this module first saw it in */
};
/* Sort for starting: higher priority first, then oldest (creation time,
 * then arrival, then name): FIFO within a priority. */
void mig_queue_sort(struct mig_waiting *w, size_t n);

/* Slots in use, per node and in all. */
struct mig_counts {
    const char **nodes;
    int64_t *out, *in;
    size_t n, cap;
    int64_t total;
};
void mig_counts_free(struct mig_counts *c);
/* Add one migration from source to target. -ENOMEM. */
int mig_counts_add(struct mig_counts *c, const char *source, const char *target);
int64_t mig_counts_out(const struct mig_counts *c, const char *node);
int64_t mig_counts_in(const struct mig_counts *c, const char *node);
/* Why a migration from source may not start now (NULL: it may, as far as
 * the cluster and outbound limits go), in words for the operation's status. */
const char *mig_limits_block(const struct mig_settings *s, int64_t cluster_limit,
                             const struct mig_counts *c, const char *source, char *buf,
                             size_t len);

/* ---- policy.c: progress and timeouts (pure) ------------------------------ */

enum mig_action {
    MIG_ACT_NONE,
    MIG_ACT_ABORT_STALLED,   /* no progress for progressTimeout */
    MIG_ACT_POSTCOPY,        /* past the completion budget: switch to post-copy */
    MIG_ACT_ABORT_TIMEOUT,   /* past the budget, nothing left to try */
};
struct mig_clock {
    int64_t now_ms, started_ms;
    int64_t best_remaining;          /* the least dataRemaining seen (-1: none yet) */
    int64_t best_at_ms;              /* when it was seen (or the start) */
    int64_t budget_ms;               /* completionTimeoutPerGiB x GiB */
    int64_t progress_timeout_ms;
    bool post_copy_allowed, post_copy_started, auto_converge;
};
/* A new dataRemaining sample: progress is a new low. */
void mig_clock_sample(struct mig_clock *c, int64_t remaining, int64_t now_ms);
enum mig_action mig_clock_decide(const struct mig_clock *c);
/* The completion budget in ms for `bytes` of memory and disk. */
int64_t mig_budget_ms(int64_t per_gib_s, int64_t bytes);
/* "128Mi", "1Gi", "512M", 1048576 -> bytes; -1 when unreadable. */
int64_t mig_quantity(const struct json_object *v);

/* ---- job.c: libvirt, off the loop thread ----------------------------------- */

/* What a job-stats poll found (VIR_DOMAIN_JOB_*). */
struct mig_stats {
    bool active;                     /* a job runs on the source */
    int64_t processed, remaining, total;  /* bytes */
    int64_t dirty_rate;              /* bytes per second */
    int64_t iteration;
    int64_t bps;                     /* measured bytes per second */
    int64_t elapsed_ms;
    bool postcopy;                   /* the job reports post-copy */
    int64_t throttle;                /* auto-converge's CPU throttle in percent (-1: none) */
    int64_t disk_total;              /* bytes of disk a block migration copies (-1: none) */
};

/* What a probe of both nodes found. */
enum mig_dom { MIG_DOM_UNKNOWN, MIG_DOM_ABSENT, MIG_DOM_INACTIVE, MIG_DOM_RUNNING,
               MIG_DOM_PAUSED };
struct mig_probe {
    enum mig_dom source, target;
    bool source_job;                 /* a libvirt job still runs on the source */
    char error[256];
};

/* The migration itself on a thread of its own (it takes as long as it
 * takes; the shared workers stay free). */
#define MIG_MAX_DISKS 16
#define MIG_PATH_MAX 1024
struct mig_call {
    /* In: */
    void *conn;                      /* virConnectPtr of the source, referenced */
    void *dconn;                     /* the target's (block migration), referenced, may be NULL */
    char uuid[64];                   /* the domain (= the VM's uid) */
    char *dconnuri;                  /* the target's libvirt URI, for PEER2PEER */
    unsigned long flags;
    unsigned long long bandwidth_mib;
    bool loopback;                   /* both nodes on this machine: 127.0.0.1 */
    /* Out: */
    int rc;
    char error[512];
    char vm[256], target[256];       /* names, for the record of the volumes made */
    char records[MIG_PATH_MAX];      /* where that record goes ("": not kept) */
    /* Out: disk files the target lacked before a block migration (recorded in
     * records/<op_uid> before the copy); after a failed one, those deleted
     * there again. */
    char made[MIG_MAX_DISKS][MIG_PATH_MAX];
    size_t n_made;
    char made_error[768];            /* what went wrong with them or their record */
    /* Who to tell: */
    char op_uid[64];
    unsigned generation;
    vf_job_done_fn done;
    struct vf_module_ctx *ctx;
};
/* Starts the thread; on success it owns `call` and posts done(call) to the
 * loop when the migration returned.  -errno otherwise (call stays the caller's). */
int mig_call_start(struct mig_call *call);
/* The files of a domain XML's writable file disks (at most max). Pure. */
size_t mig_disk_paths(const char *xml, char paths[][MIG_PATH_MAX], size_t max);
void mig_call_free(struct mig_call *call);

/* ---- made_record.c: the durable list of volumes a block migration made (pure) -- */

#define MIG_RECORD_NAME_MAX 128
struct mig_record {
    char vm[256], vm_uid[64], target[256];
    char paths[MIG_MAX_DISKS][MIG_PATH_MAX];
    size_t n;
};
/* Write dir/name whole or not at all (temporary file, fsync, rename, fsync
 * of dir).  -errno, with err saying what and where. */
int mig_record_write(const char *dir, const char *name, const struct mig_record *rec, char *err,
                     size_t len);
/* -ENOENT: no such record; -EINVAL: not a whole one. */
int mig_record_read(const char *dir, const char *name, struct mig_record *rec, char *err,
                    size_t len);
/* Gone already is fine. */
int mig_record_remove(const char *dir, const char *name, char *err, size_t len);
/* The records in dir, sorted (a missing dir has none); drop_temporary: also
 * delete the temporary files of writes a kill interrupted. */
int mig_record_list(const char *dir, bool drop_temporary, char ***names, size_t *n);
void mig_record_names_free(char **names, size_t n);

/* ---- made_volumes.c: leftover records, settled ---------------------------------- */

struct mig_made_outcome {
    bool domain_there;               /* the domain is on the target: its disks, left alone */
    bool deleted[MIG_MAX_DISKS];
    char error[512];                 /* the first failure */
};
/* Any thread: delete on the target (conn, a virConnectPtr) the volumes at
 * `paths` a block migration of domain `uuid` made there, unless the domain is
 * there.  0 when every one is dealt with (a volume gone already is). */
int mig_made_delete(void *conn, const char *uuid, char (*paths)[MIG_PATH_MAX], size_t n,
                    struct mig_made_outcome *out);

/* Short libvirt requests on the core's workers. */
enum mig_req_type { MIG_REQ_STATS, MIG_REQ_ABORT, MIG_REQ_POSTCOPY, MIG_REQ_PROBE };
struct mig_req {
    enum mig_req_type type;
    void *conn, *conn2;              /* source (and target, PROBE), referenced, may be NULL */
    char uuid[64];
    int rc;
    char error[512];
    struct mig_stats stats;
    struct mig_probe probe;
    char op_uid[64];
    unsigned generation;
};
/* run() for job_submit. */
void mig_req_run(void *opaque);
void mig_req_free(struct mig_req *r);
/* A reference to a node's connection (NULL when it is not Ready). */
void *mig_conn_ref(struct vf_module_ctx *ctx, const char *node);
void mig_conn_unref(void *conn);
/* The core's gate of a node's shared connection around calls on it (job.c); init
 * once at start. */
void mig_gate_init(const struct vf_core *core);
void mig_gate_enter(void *conn);
void mig_gate_leave(void *conn);

/* ---- run.c: migrations that have begun ------------------------------------------ */

struct mig_run {
    char *op, *op_uid, *vm, *vm_uid, *source, *target;
    bool force;
    bool thread;                     /* our virDomainMigrateToURI3 is in flight */
    bool attached;                   /* found after a restart: follow the source's job */
    bool probe_due, probe_busy, poll_busy;
    bool abort_requested, abort_busy;
    bool user_abort;                 /* the operation (or the VM) is being deleted */
    bool post_copy;                  /* switched (or switching) to post-copy */
    bool auto_converge;
    int64_t throttle_max;            /* the most auto-converge throttled the guest, percent */
    char reason[MIG_MSG_MAX];        /* why we aborted it, or what failed */
    char method[16], started[32];
    int64_t memory;                  /* bytes the budget is computed from: memory, plus the
                                      * disks once a block migration's stats name them */
    bool disk_counted;
    unsigned long long bandwidth_mib;
    struct mig_clock clock;
    struct mig_stats last;
    bool have_stats;
    struct mig_run *next;
};

struct migrate {
    struct vf_module_ctx *ctx;
    struct mig_settings set;
    struct vf_watch *w_op, *w_vm, *w_node;
    int tick, kick;
    struct mig_run *runs;
    struct json_object *arrival;     /* operation name -> the order it was first seen in */
    uint64_t arrival_seq;
    unsigned generation;
    int64_t started_ms;
    /* made_volumes.c */
    char *made_dir;                  /* <state_dir>/block-migrations, NULL: none */
    struct json_object *made_pending;    /* record name -> VM uid, deletion in flight */
    bool made_sweep_due, made_swept;
    int64_t made_retry_ms;           /* sweep again at (0: no need) */
};
/* The running instance (NULL when stopped): what results of threads and
 * jobs check, together with the generation they were started under. */
extern struct migrate *mig_current;

int64_t mig_now_ms(void);
void mig_timestamp(char *buf, size_t len);
/* Ask for a pass soon (module.c). */
void mig_kick(struct migrate *m);
/* Set condition `type` in a status (module.c). */
void mig_condition_set(struct json_object *status, const char *type, const char *cstatus,
                       const char *reason, const char *message);
const char *mig_string(const struct json_object *o, const char *key);
struct json_object *mig_member(const struct json_object *o, const char *key);
/* Write an operation's status: phase, the Completed condition, and (when
 * not NULL) its migrationState summary.  Re-reads the operation. */
void mig_op_status(struct migrate *m, const char *op, const char *phase, const char *reason,
                   const char *message, const struct json_object *summary);
/* Remove our finalizer from an operation (which, when it is being deleted, goes). */
void mig_op_release(struct migrate *m, const char *op);

struct mig_run *mig_run_by_op(struct migrate *m, const char *op_uid);
struct mig_run *mig_run_by_vm(struct migrate *m, const char *vm);
/* Begin the migration of `vm` (a VM object) for operation `op` to target.
 * On failure returns < 0 with *err filled: nothing has changed. */
int mig_run_begin(struct migrate *m, const struct json_object *op, const struct json_object *vm,
                  const char *target, struct vf_error *err);
/* A VM found Migrating with no run (a restart): look at both nodes and end it. */
int mig_run_recover(struct migrate *m, const struct json_object *vm);
/* Abort: by whom in words ("the operation was deleted") becomes the reason. */
void mig_run_abort(struct migrate *m, struct mig_run *r, bool user, const char *reason);
/* Every second: job-stats polls, timeouts, probes. */
void mig_run_tick(struct migrate *m);
void mig_runs_free(struct migrate *m);

/* made_volumes.c, loop thread: settle the leftover records (when asked:
 * made_sweep_due, or a retry is due); vms: the VirtualMachines. */
void mig_made_sweep(struct migrate *m, const struct json_object *vms);
/* Are volumes of this VM's being deleted (it must not migrate meanwhile)? */
bool mig_made_busy(const struct migrate *m, const char *vm_uid);
int mig_made_start(struct migrate *m);
void mig_made_stop(struct migrate *m);
#endif
