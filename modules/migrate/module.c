/* The migrate module: live migration of VMs between nodes, and the node
 * maintenance that `virtfleet drain` drives.
 *
 * Owns: VirtualMachineOperations of type Migrate and Evict (their status,
 * and the finalizer virtfleet.io/migration that lets a deletion abort a
 * migration in flight), and through the core's vm_migration_* services the
 * VM's phase Migrating and status.migrationState.
 * Watches: VirtualMachineOperations, VirtualMachines (a VM deleted while it
 * migrates aborts the migration) and Nodes (an uncordoned node cancels the
 * drain evictions that have not started).
 *
 * A pass (after any change, and every second) walks the operations: new
 * ones get the finalizer and phase Pending; Pending ones wait in a queue
 * ordered by priority (label virtfleet.io/migration-priority: drain, user,
 * rebalance) and age, and start while parallelMigrationsPerCluster and the
 * per-node outbound and inbound limits allow; a target is chosen by the
 * core's placement only when one starts (waiting holds nothing). */
#include <config.h>
#include "migrate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct migrate *mig_current;
static unsigned generations;
/* After the module starts, a refusal of placement is not final for this long
 * (and for 8 times as long while a node is still connecting): a node not yet
 * connected and listed is no candidate yet.  A node that never comes back
 * does not keep operations waiting for ever. */
#define STARTUP_GRACE_MS 15000

/* ---- helpers ------------------------------------------------------------------ */

int64_t mig_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* RFC 3339 with milliseconds: migrations of small guests take about a
 * second, and their overlaps are judged from these. */
void mig_timestamp(char *buf, size_t len)
{
    struct timespec ts;
    struct tm tm;
    char secs[32];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(secs, sizeof secs, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, len, "%s.%03ldZ", secs, ts.tv_nsec / 1000000);
}

struct json_object *mig_member(const struct json_object *o, const char *key)
{
    struct json_object *v = NULL;
    if (!o || !json_object_is_type(o, json_type_object) ||
        !json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
        return NULL;
    return v;
}

const char *mig_string(const struct json_object *o, const char *key)
{
    struct json_object *v = mig_member(o, key);
    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static bool str_eq(const char *a, const char *b)
{
    return a && b && !strcmp(a, b);
}

static bool flag(const struct json_object *o, const char *key)
{
    struct json_object *v = mig_member(o, key);
    return v && json_object_get_boolean(v);
}

static struct json_object *copy(const struct json_object *o)
{
    struct json_object *c = NULL;
    if (!o || json_object_deep_copy((struct json_object *)o, &c, NULL) < 0)
        return json_object_new_object();
    return c;
}

void mig_condition_set(struct json_object *status, const char *type, const char *cstatus,
                       const char *reason, const char *message)
{
    struct json_object *conds = mig_member(status, "conditions");
    if (!conds || !json_object_is_type(conds, json_type_array)) {
        conds = json_object_new_array();
        json_object_object_add(status, "conditions", conds);
    }
    struct json_object *c = NULL;
    for (size_t i = 0; i < json_object_array_length(conds); i++)
        if (str_eq(mig_string(json_object_array_get_idx(conds, i), "type"), type))
            c = json_object_array_get_idx(conds, i);
    if (!c) {
        c = json_object_new_object();
        json_object_object_add(c, "type", json_object_new_string(type));
        json_object_array_add(conds, c);
    }
    if (!str_eq(mig_string(c, "status"), cstatus) || !mig_string(c, "lastTransitionTime")) {
        char when[32];
        mig_timestamp(when, sizeof when);
        json_object_object_add(c, "lastTransitionTime", json_object_new_string(when));
    }
    json_object_object_add(c, "status", json_object_new_string(cstatus));
    json_object_object_add(c, "reason", json_object_new_string(reason));
    json_object_object_add(c, "message", json_object_new_string(message ? message : ""));
}

void mig_op_status(struct migrate *m, const char *op, const char *phase, const char *reason,
                   const char *message, const struct json_object *summary)
{
    const struct vf_core *core = m->ctx->core;
    struct json_object *obj = NULL;
    if (core->object_get(m->ctx, MIG_VMOP_KIND, op, &obj) < 0)
        return;
    const struct json_object *old = mig_member(obj, "status");
    struct json_object *status = copy(old);
    json_object_object_add(status, "phase", json_object_new_string(phase));
    mig_condition_set(status, "Completed", str_eq(phase, "Completed") ? "True" : "False", reason,
                      message);
    if (summary) {
        json_object_object_add(status, "migrationState", copy(summary));
        struct json_object *p = mig_member(summary, "progress");
        if (p) {
            char pct[16];
            snprintf(pct, sizeof pct, "%d%%", json_object_get_int(p));
            json_object_object_add(status, "progress", json_object_new_string(pct));
        }
    }
    if (!old || !json_object_equal((struct json_object *)old, status)) {
        struct vf_error err = {0};
        if (core->object_update_status(m->ctx, MIG_VMOP_KIND, op, status, NULL, &err) < 0 &&
            err.status != 404)
            core->log(m->ctx, VF_LOG_ERROR, "vmop \"%s\": cannot write its status: %s", op,
                      err.message);
    }
    json_object_put(status);
    json_object_put(obj);
}

static bool has_finalizer(const struct json_object *op)
{
    struct json_object *f = mig_member(mig_member(op, "metadata"), "finalizers");
    for (size_t i = 0; f && json_object_is_type(f, json_type_array) &&
                       i < json_object_array_length(f); i++)
        if (str_eq(json_object_get_string(json_object_array_get_idx(f, i)), MIG_FINALIZER))
            return true;
    return false;
}

static void finalizer_set(struct migrate *m, const char *op, bool add)
{
    const struct vf_core *core = m->ctx->core;
    struct json_object *obj = NULL;
    if (core->object_get(m->ctx, MIG_VMOP_KIND, op, &obj) < 0 || has_finalizer(obj) == add) {
        json_object_put(obj);
        return;
    }
    struct json_object *meta = mig_member(obj, "metadata");
    struct json_object *f = mig_member(meta, "finalizers");
    struct json_object *next = json_object_new_array();
    for (size_t i = 0; f && json_object_is_type(f, json_type_array) &&
                       i < json_object_array_length(f); i++) {
        struct json_object *e = json_object_array_get_idx(f, i);
        if (!str_eq(json_object_get_string(e), MIG_FINALIZER))
            json_object_array_add(next, json_object_get(e));
    }
    if (add)
        json_object_array_add(next, json_object_new_string(MIG_FINALIZER));
    json_object_object_add(meta, "finalizers", next);
    json_object_object_del(obj, "status");
    struct vf_error err = {0};
    if (core->object_update(m->ctx, MIG_VMOP_KIND, obj, NULL, &err) < 0 && err.status != 404 &&
        err.status != 409)
        core->log(m->ctx, VF_LOG_ERROR, "vmop \"%s\": cannot %s its finalizer: %s", op,
                  add ? "add" : "remove", err.message);
    json_object_put(obj);
}

void mig_op_release(struct migrate *m, const char *op)
{
    if (op && *op)
        finalizer_set(m, op, false);
}

/* ---- the pass ----------------------------------------------------------------- */

static bool ours(const struct json_object *op)
{
    const char *type = mig_string(mig_member(op, "spec"), "type");
    return str_eq(type, "Migrate") || str_eq(type, "Evict");
}

static bool finished(const char *phase)
{
    return str_eq(phase, "Completed") || str_eq(phase, "Failed");
}

static const struct json_object *find(const struct json_object *items, const char *name)
{
    for (size_t i = 0; items && i < json_object_array_length(items); i++) {
        const struct json_object *o = json_object_array_get_idx(items, i);
        if (str_eq(mig_string(mig_member(o, "metadata"), "name"), name))
            return o;
    }
    return NULL;
}

static const char *name_of(const struct json_object *o)
{
    return mig_string(mig_member(o, "metadata"), "name");
}

static void fail(struct migrate *m, const struct json_object *op, const char *reason,
                 const char *message)
{
    m->ctx->core->log(m->ctx, VF_LOG_WARN, "vmop \"%s\": failed: %s", name_of(op), message);
    mig_op_status(m, name_of(op), "Failed", reason, message, NULL);
    mig_op_release(m, name_of(op));
}

static uint64_t arrival(struct migrate *m, const char *name)
{
    struct json_object *v = mig_member(m->arrival, name);
    if (v)
        return (uint64_t)json_object_get_int64(v);
    json_object_object_add(m->arrival, name, json_object_new_int64((int64_t)++m->arrival_seq));
    return m->arrival_seq;
}

/* An operation InProgress with no run of ours: the daemon stopped around
 * its beginning or its end.  The VM's migrationState says which. */
static void orphan(struct migrate *m, const struct json_object *op, const struct json_object *vm)
{
    const struct json_object *st = mig_member(vm, "status");
    const struct json_object *ms = mig_member(st, "migrationState");
    const char *uid = mig_string(mig_member(op, "metadata"), "uid");
    if (vm && str_eq(mig_string(ms, "migrationUID"), uid) && flag(ms, "completed")) {
        bool failed = flag(ms, "failed");
        const char *why = mig_string(ms, "failureReason");
        char msg[MIG_MSG_MAX];
        snprintf(msg, sizeof msg, "%s; vm \"%s\" runs on node \"%s\"",
                 failed ? (why ? why : "failed") : "migrated", name_of(vm),
                 mig_string(st, "node") ? mig_string(st, "node") : "?");
        struct json_object *s = copy(ms);
        json_object_object_del(s, "migrationConfig");
        mig_op_status(m, name_of(op), failed ? "Failed" : "Completed",
                      failed ? "MigrationFailed" : "Completed", msg, s);
        json_object_put(s);
        mig_op_release(m, name_of(op));
        return;
    }
    /* It never began (the VM was not marked): it simply waits again. */
    mig_op_status(m, name_of(op), "Pending", "Waiting", "queued again after a restart", NULL);
}

static int64_t cluster_limit(const struct migrate *m, const struct json_object *nodes)
{
    if (m->set.per_cluster > 0)
        return m->set.per_cluster;
    int64_t n = 0;
    for (size_t i = 0; nodes && i < json_object_array_length(nodes); i++) {
        const struct json_object *node = json_object_array_get_idx(nodes, i);
        if (str_eq(mig_string(mig_member(node, "status"), "phase"), "Ready") &&
            !flag(mig_member(node, "spec"), "unschedulable"))
            n++;
    }
    return n > 0 ? n : 1;
}

/* Is another operation in progress on this VM (a core Start/Stop/Restart)? */
static const char *busy_with(const struct json_object *ops, const char *vm, const char *self)
{
    for (size_t i = 0; i < json_object_array_length(ops); i++) {
        const struct json_object *o = json_object_array_get_idx(ops, i);
        if (!str_eq(mig_string(mig_member(o, "spec"), "virtualMachineName"), vm) ||
            str_eq(name_of(o), self))
            continue;
        if (str_eq(mig_string(mig_member(o, "status"), "phase"), "InProgress"))
            return name_of(o);
    }
    return NULL;
}

static void wait_status(struct migrate *m, const struct json_object *op, const char *msg)
{
    const struct json_object *st = mig_member(op, "status");
    const struct json_object *c = NULL;
    struct json_object *conds = mig_member(st, "conditions");
    for (size_t i = 0; conds && i < json_object_array_length(conds); i++)
        if (str_eq(mig_string(json_object_array_get_idx(conds, i), "type"), "Completed"))
            c = json_object_array_get_idx(conds, i);
    if (str_eq(mig_string(st, "phase"), "Pending") && c && str_eq(mig_string(c, "message"), msg))
        return;
    mig_op_status(m, name_of(op), "Pending", "Waiting", msg, NULL);
}

/* Is a node still connecting (a start, a reconnect)? */
static bool connecting(const struct json_object *nodes)
{
    for (size_t i = 0; nodes && i < json_object_array_length(nodes); i++) {
        struct json_object *conds =
            mig_member(mig_member(json_object_array_get_idx(nodes, i), "status"), "conditions");
        for (size_t k = 0; conds && json_object_is_type(conds, json_type_array) &&
                           k < json_object_array_length(conds); k++) {
            const struct json_object *c = json_object_array_get_idx(conds, k);
            if (str_eq(mig_string(c, "type"), "Ready") && str_eq(mig_string(c, "reason"), "Connecting"))
                return true;
        }
    }
    return false;
}

/* Try to start one waiting operation; returns true when it began. */
static bool try_start(struct migrate *m, const struct json_object *op, const struct json_object *ops,
                      const struct json_object *vms, const struct json_object *nodes,
                      struct mig_counts *counts, int64_t limit)
{
    const struct vf_core *core = m->ctx->core;
    const struct json_object *spec = mig_member(op, "spec");
    const char *vm_name = mig_string(spec, "virtualMachineName");
    const struct json_object *vm = find(vms, vm_name);
    const struct json_object *vst = mig_member(vm, "status");
    const char *phase = mig_string(vst, "phase");
    const char *source = mig_string(vst, "node");
    char msg[MIG_MSG_MAX], target[256];
    struct vf_error err = {0};

    /* An eviction for a drain that uncordon has ended: cancelled. */
    const char *drain_node = mig_string(mig_member(mig_member(op, "metadata"), "labels"),
                                        MIG_LABEL_DRAIN_NODE);
    if (drain_node) {
        const struct json_object *dn = find(nodes, drain_node);
        if (!flag(mig_member(dn, "spec"), "unschedulable")) {
            core->log(m->ctx, VF_LOG_INFO, "vmop \"%s\": node \"%s\" is no longer cordoned; the "
                      "eviction of vm \"%s\" is cancelled", name_of(op), drain_node, vm_name);
            core->object_delete(m->ctx, MIG_VMOP_KIND, name_of(op), &err);
            return false;
        }
    }
    if (!vm) {
        snprintf(msg, sizeof msg, "VirtualMachine \"%s\" not found", vm_name);
        fail(m, op, "NotFound", msg);
        return false;
    }
    if (mig_member(mig_member(vm, "metadata"), "deletionTimestamp")) {
        snprintf(msg, sizeof msg, "VirtualMachine \"%s\" is being deleted", vm_name);
        fail(m, op, "VirtualMachineTerminating", msg);
        return false;
    }
    const char *other = busy_with(ops, vm_name, name_of(op));
    if (other || str_eq(phase, "Migrating")) {
        snprintf(msg, sizeof msg, "waiting for operation \"%s\" on vm \"%s\"",
                 other ? other : "(a migration)", vm_name);
        wait_status(m, op, msg);
        return false;
    }
    if (mig_made_busy(m, mig_string(mig_member(vm, "metadata"), "uid"))) {
        snprintf(msg, sizeof msg, "waiting: the volumes an earlier block migration of vm \"%s\" "
                 "left on its target are being deleted", vm_name);
        wait_status(m, op, msg);
        return false;
    }
    if (!str_eq(phase, "Running") || !source) {
        snprintf(msg, sizeof msg, "vm \"%s\" is %s; only a Running VM can be migrated", vm_name,
                 phase ? phase : "new");
        fail(m, op, "NotRunning", msg);
        return false;
    }
    if (!core->node_connection(m->ctx, source)) {
        snprintf(msg, sizeof msg, "waiting: node \"%s\" is not connected", source);
        wait_status(m, op, msg);
        return false;
    }
    const char *blocked = mig_limits_block(&m->set, limit, counts, source, msg, sizeof msg);
    if (blocked) {
        wait_status(m, op, blocked);
        return false;
    }
    /* Nodes whose inbound slots are taken are left out; if only they would
     * do, the operation waits for one of them. */
    size_t n_nodes = json_object_array_length(nodes);
    const char **full = calloc(n_nodes + 1, sizeof *full);
    size_t n_full = 0;
    for (size_t i = 0; full && i < n_nodes; i++) {
        const char *nn = name_of(json_object_array_get_idx(nodes, i));
        if (nn && mig_counts_in(counts, nn) >= m->set.in_per_node)
            full[n_full++] = nn;
    }
    const struct json_object *mspec = mig_member(spec, "migrate");
    const char *node_name = mig_string(mspec, "nodeName");
    const struct json_object *selector = mig_member(mspec, "nodeSelector");
    int rc = core->vm_migration_target(m->ctx, vm_name, node_name, selector, full, target,
                                       sizeof target, &err);
    if (rc == 0 && node_name && n_full) {
        for (size_t i = 0; i < n_full; i++)
            if (str_eq(full[i], node_name))
                rc = -EAGAIN;
    }
    if (rc == -ENOSPC || rc == -EAGAIN) {
        struct vf_error err2 = {0};
        char t2[256];
        if (n_full && core->vm_migration_target(m->ctx, vm_name, node_name, selector, NULL, t2,
                                                sizeof t2, &err2) == 0) {
            snprintf(msg, sizeof msg, "waiting: node \"%s\" has %lld of %lld inbound migrations "
                     "running (parallelInboundMigrationsPerNode)", t2,
                     (long long)mig_counts_in(counts, t2), (long long)m->set.in_per_node);
            wait_status(m, op, msg);
            free(full);
            return false;
        }
    }
    free(full);
    /* Just after a start the nodes are still connecting (and being listed):
     * "no node" then means "not yet". */
    int64_t up = mig_now_ms() - m->started_ms;
    if (rc == -ENOSPC && (up < STARTUP_GRACE_MS || (up < 8 * STARTUP_GRACE_MS && connecting(nodes)))) {
        snprintf(msg, sizeof msg, "waiting: nodes are still connecting (%s)", err.message);
        wait_status(m, op, msg);
        return false;
    }
    if (rc < 0) {
        snprintf(msg, sizeof msg, "no node to move vm \"%s\" to: %s", vm_name, err.message);
        fail(m, op, rc == -ENOSPC ? "NoTarget" : err.reason[0] ? err.reason : "Invalid", msg);
        return false;
    }
    if (mig_run_begin(m, op, vm, target, &err) < 0) {
        if (err.status == 409 || err.status == 503) {
            wait_status(m, op, err.message);
        } else {
            snprintf(msg, sizeof msg, "cannot begin: %s", err.message);
            fail(m, op, "MigrationFailed", msg);
        }
        return false;
    }
    return true;
}

static void pass(struct migrate *m)
{
    const struct vf_core *core = m->ctx->core;
    struct json_object *ops = NULL, *vms = NULL, *nodes = NULL;
    if (core->object_list(m->ctx, MIG_VMOP_KIND, &ops) < 0 ||
        core->object_list(m->ctx, MIG_VM_KIND, &vms) < 0 ||
        core->object_list(m->ctx, MIG_NODE_KIND, &nodes) < 0) {
        core->log(m->ctx, VF_LOG_ERROR, "cannot read the store");
        goto out;
    }
    /* VMs Migrating with no run of ours: left by a restart. */
    for (size_t i = 0; i < json_object_array_length(vms); i++) {
        const struct json_object *vm = json_object_array_get_idx(vms, i);
        if (str_eq(mig_string(mig_member(vm, "status"), "phase"), "Migrating") &&
            !mig_run_by_vm(m, name_of(vm)))
            mig_run_recover(m, vm);
        struct mig_run *r = mig_run_by_vm(m, name_of(vm));
        if (r && mig_member(mig_member(vm, "metadata"), "deletionTimestamp") && !r->abort_requested)
            mig_run_abort(m, r, false, "the VM is being deleted");
    }
    /* The volumes of block migrations that ended without us seeing it. */
    mig_made_sweep(m, vms);
    /* Runs whose VM is gone altogether cannot be ended: forget them. */
    size_t n = json_object_array_length(ops);
    struct mig_waiting *waiting = calloc(n + 1, sizeof *waiting);
    size_t n_waiting = 0;
    for (size_t i = 0; waiting && i < n; i++) {
        const struct json_object *op = json_object_array_get_idx(ops, i);
        if (!ours(op))
            continue;
        const struct json_object *meta = mig_member(op, "metadata");
        const char *name = name_of(op);
        const char *phase = mig_string(mig_member(op, "status"), "phase");
        bool deleting = mig_member(meta, "deletionTimestamp") != NULL;
        struct mig_run *r = mig_run_by_op(m, mig_string(meta, "uid"));
        if (r) {
            if (deleting && !r->user_abort)
                mig_run_abort(m, r, true, "the operation was deleted");
            continue;
        }
        if (finished(phase)) {
            if (has_finalizer(op))
                mig_op_release(m, name);
            continue;
        }
        if (deleting) {
            /* Not begun (or begun by an earlier run whose VM is settled). */
            const struct json_object *vm =
                find(vms, mig_string(mig_member(op, "spec"), "virtualMachineName"));
            if (str_eq(phase, "InProgress") && vm &&
                str_eq(mig_string(mig_member(vm, "status"), "phase"), "Migrating"))
                continue;   /* its recovery run ends it first */
            mig_op_release(m, name);
            continue;
        }
        if (!has_finalizer(op)) {
            finalizer_set(m, name, true);
            continue;   /* the update comes back as a watch event */
        }
        if (str_eq(phase, "InProgress") || str_eq(phase, "Terminating")) {
            orphan(m, op, find(vms, mig_string(mig_member(op, "spec"), "virtualMachineName")));
            continue;
        }
        if (!phase)
            mig_op_status(m, name, "Pending", "Queued", "queued", NULL);
        waiting[n_waiting++] = (struct mig_waiting){
            .name = name,
            .priority = mig_priority_of(mig_string(mig_member(meta, "labels"), MIG_LABEL_PRIORITY)),
            .created = mig_string(meta, "creationTimestamp"),
            .arrival = arrival(m, name),
        };
    }
    mig_queue_sort(waiting, n_waiting);
    struct mig_counts counts = {0};
    for (struct mig_run *r = m->runs; r; r = r->next)
        mig_counts_add(&counts, r->source, r->target);
    int64_t limit = cluster_limit(m, nodes);
    for (size_t i = 0; i < n_waiting; i++) {
        const struct json_object *op = find(ops, waiting[i].name);
        /* The run's node names are the counts' (borrowed): they live as long as it. */
        if (try_start(m, op, ops, vms, nodes, &counts, limit)) {
            struct mig_run *r = mig_run_by_op(m, mig_string(mig_member(op, "metadata"), "uid"));
            if (r)
                mig_counts_add(&counts, r->source, r->target);
        }
    }
    mig_counts_free(&counts);
    free(waiting);
out:
    json_object_put(ops);
    json_object_put(vms);
    json_object_put(nodes);
}

static void kick_run(void *opaque)
{
    struct migrate *m = opaque;
    if (m->kick > 0)
        m->ctx->core->timer_remove(m->ctx, m->kick);
    m->kick = 0;
    pass(m);
}

void mig_kick(struct migrate *m)
{
    if (m->kick > 0)
        return;
    int id = m->ctx->core->timer_add(m->ctx, 0, kick_run, m);
    if (id > 0)
        m->kick = id;
}

static void tick(void *opaque)
{
    struct migrate *m = opaque;
    mig_run_tick(m);
    pass(m);
}

static void on_change(void *opaque, enum vf_watch_event type, const struct json_object *obj)
{
    struct migrate *m = opaque;
    if (type == VF_WATCH_DELETED) {
        const char *name = name_of(obj);
        if (name && mig_member(m->arrival, name) && ours(obj))
            json_object_object_del(m->arrival, name);
    }
    mig_kick(m);
}

/* ---- settings and lifecycle ---------------------------------------------------- */

static const struct vf_setting migrate_settings[] = {
    {.name = "parallelMigrationsPerCluster", .type = VF_SETTING_INT, .default_value = "0",
     .min = 0, .max = 1000,
     .description = "migrations at once in the cluster; 0: as many as nodes VMs may run on"},
    {.name = "parallelOutboundMigrationsPerNode", .type = VF_SETTING_INT, .default_value = "1",
     .min = 1, .max = 100, .description = "migrations at once away from one node"},
    {.name = "parallelInboundMigrationsPerNode", .type = VF_SETTING_INT, .default_value = "1",
     .min = 1, .max = 100, .description = "migrations at once onto one node"},
    {.name = "bandwidthPerMigration", .type = VF_SETTING_SIZE, .default_value = "640Mi",
     .min = 0, .max = (int64_t)1 << 50,
     .description = "bytes per second one migration may use (0: unlimited)"},
    {.name = "completionTimeoutPerGiB", .type = VF_SETTING_INT, .default_value = "800",
     .min = 1, .max = 86400,
     .description = "seconds per GiB of memory and disk before a migration is pushed or aborted"},
    {.name = "progressTimeout", .type = VF_SETTING_DURATION, .default_value = "150s",
     .min = 1000, .max = 86400 * 1000,
     .description = "a migration whose remaining data makes no new low for this long is aborted"},
    {.name = "allowAutoConverge", .type = VF_SETTING_BOOL, .default_value = "false",
     .description = "let QEMU throttle the guest's CPU so that its migration converges"},
    {.name = "allowPostCopy", .type = VF_SETTING_BOOL, .default_value = "false",
     .description = "switch a migration past its completion budget to post-copy"},
    {.name = NULL},
};

static int64_t setting(const struct json_object *s, const char *key)
{
    struct json_object *v = mig_member(s, key);
    return v ? json_object_get_int64(v) : 0;
}

static void settings_read(struct mig_settings *out, const struct json_object *s)
{
    out->per_cluster = setting(s, "parallelMigrationsPerCluster");
    out->out_per_node = setting(s, "parallelOutboundMigrationsPerNode");
    out->in_per_node = setting(s, "parallelInboundMigrationsPerNode");
    out->bandwidth = setting(s, "bandwidthPerMigration");
    out->completion_per_gib_s = setting(s, "completionTimeoutPerGiB");
    out->progress_timeout_ms = setting(s, "progressTimeout");
    out->allow_auto_converge = flag(s, "allowAutoConverge");
    out->allow_post_copy = flag(s, "allowPostCopy");
}

static int migrate_configure(struct vf_module_ctx *ctx, const struct json_object *settings,
                             struct vf_error *err)
{
    const struct vf_core *core = ctx->core;
    if (!VF_CORE_HAS(core, vm_migration_end))
        return vf_error_set(err, -ENOTSUP, 400, "Unsupported", "",
                            "this virtfleetd has no live-migration services (needs ABI 1.1 with "
                            "vm_migration_*)");
    struct mig_settings s;
    settings_read(&s, settings);
    if (s.bandwidth > 0 && s.bandwidth < 1024 * 1024)
        return vf_error_set(err, -EINVAL, 400, "Invalid", "bandwidthPerMigration",
                            "at least 1Mi per second (libvirt counts whole MiB/s), or 0 for "
                            "unlimited");
    return 0;
}

static int migrate_start(struct vf_module_ctx *ctx, const struct json_object *settings)
{
    const struct vf_core *core = ctx->core;
    struct migrate *m = calloc(1, sizeof *m);
    if (!m || !(m->arrival = json_object_new_object())) {
        free(m);
        return -ENOMEM;
    }
    m->ctx = ctx;
    m->generation = ++generations;
    m->started_ms = mig_now_ms();
    settings_read(&m->set, settings);
    core->set_data(ctx, m);
    mig_current = m;
    mig_gate_init(core);
    m->w_op = core->watch_add(ctx, MIG_VMOP_KIND, on_change, m);
    m->w_vm = core->watch_add(ctx, MIG_VM_KIND, on_change, m);
    m->w_node = core->watch_add(ctx, MIG_NODE_KIND, on_change, m);
    m->tick = core->timer_add(ctx, 1000, tick, m);
    int made = mig_made_start(m);
    if (!m->w_op || !m->w_vm || !m->w_node || m->tick < 0 || made < 0) {
        /* The core removes what a module whose start fails still holds. */
        mig_current = NULL;
        core->set_data(ctx, NULL);
        mig_made_stop(m);
        json_object_put(m->arrival);
        free(m);
        return -EIO;
    }
    core->log(ctx, VF_LOG_INFO, "started: %lld outbound / %lld inbound per node, %s per cluster, "
              "%lld MiB/s per migration", (long long)m->set.out_per_node,
              (long long)m->set.in_per_node, m->set.per_cluster ? "a fixed number" : "one per node",
              (long long)(m->set.bandwidth / (1024 * 1024)));
    mig_kick(m);
    return 0;
}

static int migrate_reconfigure(struct vf_module_ctx *ctx, const struct json_object *settings)
{
    struct migrate *m = ctx->core->get_data(ctx);
    settings_read(&m->set, settings);
    ctx->core->log(ctx, VF_LOG_INFO, "settings applied to migrations that start from now on");
    mig_kick(m);
    return 0;
}

static void migrate_stop(struct vf_module_ctx *ctx)
{
    struct migrate *m = ctx->core->get_data(ctx);
    if (!m)
        return;
    /* Migrations in flight go on in libvirt; the next start settles them. */
    mig_current = NULL;
    mig_runs_free(m);
    mig_made_stop(m);
    json_object_put(m->arrival);
    free(m);
    ctx->core->set_data(ctx, NULL);
}

VF_MODULE_DEFINE(
    .name = "migrate",
    .version = "1.0.0",
    .summary = "live migration of VMs with limits, timeouts and abort; node drain",
    .settings_version = 1,
    .settings = migrate_settings,
    .configure = migrate_configure,
    .start = migrate_start,
    .reconfigure = migrate_reconfigure,
    .stop = migrate_stop,
);
