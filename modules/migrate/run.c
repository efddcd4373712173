/* Migrations that have begun: from the VM marked Migrating (the core's
 * vm_migration_begin, which reserves the target) to the VM handed back on
 * the node its domain runs on (vm_migration_end).  The durable record is
 * the VM's status.migrationState (source, target, operation): after a
 * restart a VM still Migrating is settled by looking at both nodes, never by
 * guessing.  Progress comes from job-stats polls every second, which also
 * drive the timeouts (policy.c); the outcome of a failed or interrupted
 * migration is always read from the nodes, so the VM ends up recorded where
 * its domain really runs. */
#include <config.h>
#include "migrate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <libvirt/libvirt.h>

#define MIB (1024LL * 1024LL)

struct mig_run *mig_run_by_op(struct migrate *m, const char *op_uid)
{
    for (struct mig_run *r = m->runs; r; r = r->next)
        if (op_uid && r->op_uid && !strcmp(r->op_uid, op_uid))
            return r;
    return NULL;
}

struct mig_run *mig_run_by_vm(struct migrate *m, const char *vm)
{
    for (struct mig_run *r = m->runs; r; r = r->next)
        if (vm && !strcmp(r->vm, vm))
            return r;
    return NULL;
}

static void run_free(struct mig_run *r)
{
    free(r->op);
    free(r->op_uid);
    free(r->vm);
    free(r->vm_uid);
    free(r->source);
    free(r->target);
    free(r);
}

static void run_unlink(struct migrate *m, struct mig_run *r)
{
    for (struct mig_run **pp = &m->runs; *pp; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    run_free(r);
}

void mig_runs_free(struct migrate *m)
{
    while (m->runs) {
        struct mig_run *r = m->runs;
        m->runs = r->next;
        run_free(r);
    }
}

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

static struct mig_run *run_new(struct migrate *m, const char *op, const char *op_uid,
                               const char *vm, const char *vm_uid, const char *source,
                               const char *target)
{
    struct mig_run *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->op = dup_or_empty(op);
    r->op_uid = dup_or_empty(op_uid);
    r->vm = dup_or_empty(vm);
    r->vm_uid = dup_or_empty(vm_uid);
    r->source = dup_or_empty(source);
    r->target = dup_or_empty(target);
    if (!r->op || !r->op_uid || !r->vm || !r->vm_uid || !r->source || !r->target) {
        run_free(r);
        return NULL;
    }
    r->clock.best_remaining = -1;
    r->clock.started_ms = r->clock.best_at_ms = mig_now_ms();
    r->next = m->runs;
    m->runs = r;
    return r;
}

/* ---- status ------------------------------------------------------------------- */

static void add_int(struct json_object *o, const char *key, int64_t v)
{
    if (v >= 0)
        json_object_object_add(o, key, json_object_new_int64(v));
}

/* The members of migrationState this module owns, as of now (KubeVirt's
 * names where it has them). */
static struct json_object *fields_of(const struct migrate *m, const struct mig_run *r)
{
    struct json_object *f = json_object_new_object();
    json_object_object_add(f, "migrationUID", json_object_new_string(r->op_uid));
    json_object_object_add(f, "operationName", json_object_new_string(r->op));
    json_object_object_add(f, "startTimestamp", json_object_new_string(r->started));
    json_object_object_add(f, "method", json_object_new_string(r->method));
    json_object_object_add(f, "mode", json_object_new_string(r->post_copy ? "PostCopy" : "PreCopy"));
    json_object_object_add(f, "autoConverge", json_object_new_boolean(r->auto_converge));
    /* That QEMU did slow the guest down (it only does once the guest dirties
     * memory faster than it is copied), not just that it was allowed to. */
    if (r->throttle_max > 0)
        add_int(f, "autoConvergeThrottle", r->throttle_max);
    if (r->have_stats) {
        const struct mig_stats *s = &r->last;
        int64_t total = s->total > 0 ? s->total : s->processed + s->remaining;
        if (total > 0 && s->remaining >= 0) {
            int64_t pct = 100 - (s->remaining * 100 + total - 1) / total;
            add_int(f, "progress", pct < 0 ? 0 : pct > 100 ? 100 : pct);
        }
        add_int(f, "dataProcessed", s->processed);
        add_int(f, "dataRemaining", s->remaining);
        add_int(f, "dataTotal", s->total);
        add_int(f, "memoryDirtyRate", s->dirty_rate);
        add_int(f, "iteration", s->iteration);
        add_int(f, "bandwidth", s->bps);
    }
    if (r->abort_requested)
        json_object_object_add(f, "abortRequested", json_object_new_boolean(true));
    struct json_object *cfg = json_object_new_object();
    add_int(cfg, "bandwidthPerMigration", m->set.bandwidth);
    add_int(cfg, "completionTimeoutPerGiB", m->set.completion_per_gib_s);
    add_int(cfg, "progressTimeout", m->set.progress_timeout_ms / 1000);
    json_object_object_add(cfg, "allowAutoConverge", json_object_new_boolean(m->set.allow_auto_converge));
    json_object_object_add(cfg, "allowPostCopy", json_object_new_boolean(m->set.allow_post_copy));
    json_object_object_add(f, "migrationConfig", cfg);
    return f;
}

/* The operation's copy: the same, plus the nodes. */
static struct json_object *summary_of(const struct migrate *m, const struct mig_run *r)
{
    struct json_object *f = fields_of(m, r);
    json_object_object_del(f, "migrationConfig");
    json_object_object_add(f, "sourceNode", json_object_new_string(r->source));
    json_object_object_add(f, "targetNode", json_object_new_string(r->target));
    return f;
}

static void publish(struct migrate *m, struct mig_run *r)
{
    struct vf_error err = {0};
    struct json_object *f = fields_of(m, r);
    if (m->ctx->core->vm_migration_update(m->ctx, r->vm, f, &err) < 0 && err.status != 409)
        m->ctx->core->log(m->ctx, VF_LOG_WARN, "vm \"%s\": cannot record progress: %s", r->vm,
                          err.message);
    json_object_put(f);
    struct json_object *s = summary_of(m, r);
    char msg[MIG_MSG_MAX];
    snprintf(msg, sizeof msg, "migrating vm \"%s\" from node \"%s\" to node \"%s\"", r->vm,
             r->source, r->target);
    mig_op_status(m, r->op, r->user_abort ? "Terminating" : "InProgress", "InProgress", msg, s);
    json_object_put(s);
}

/* The migration is over: the domain runs on `node`.  Records the outcome on
 * the VM (which the core hands back to its controller) and the operation. */
static void finish(struct migrate *m, struct mig_run *r, const char *node, const char *failure)
{
    const struct vf_core *core = m->ctx->core;
    bool ok = !strcmp(node, r->target);
    char when[32], msg[MIG_MSG_MAX];
    struct vf_error err = {0};
    mig_timestamp(when, sizeof when);
    struct json_object *f = fields_of(m, r);
    json_object_object_add(f, "endTimestamp", json_object_new_string(when));
    json_object_object_add(f, "completed", json_object_new_boolean(true));
    json_object_object_add(f, "failed", json_object_new_boolean(!ok));
    if (ok) {
        json_object_object_add(f, "progress", json_object_new_int(100));
        json_object_object_add(f, "dataRemaining", json_object_new_int(0));
    }
    if (!ok)
        json_object_object_add(f, "failureReason", json_object_new_string(failure ? failure : "failed"));
    if (r->abort_requested)
        json_object_object_add(f, "abortStatus", json_object_new_string(ok ? "Failed" : "Succeeded"));
    /* 404: the VM is gone; 409: it is not Migrating any more (ended already). */
    if (core->vm_migration_end(m->ctx, r->vm, node, f, &err) < 0 && err.status != 404 &&
        err.status != 409) {
        core->log(m->ctx, VF_LOG_ERROR, "vm \"%s\": cannot end its migration: %s; trying again",
                  r->vm, err.message);
        json_object_put(f);
        r->probe_due = true;   /* the next tick looks again */
        return;
    }
    json_object_put(f);
    struct json_object *s = summary_of(m, r);
    json_object_object_add(s, "endTimestamp", json_object_new_string(when));
    if (ok) {
        json_object_object_add(s, "progress", json_object_new_int(100));
        json_object_object_add(s, "dataRemaining", json_object_new_int(0));
        snprintf(msg, sizeof msg, "vm \"%s\" migrated from node \"%s\" to node \"%s\"", r->vm,
                 r->source, r->target);
        core->log(m->ctx, VF_LOG_INFO, "vmop \"%s\": %s", r->op, msg);
    } else {
        json_object_object_add(s, "failureReason", json_object_new_string(failure ? failure : "failed"));
        snprintf(msg, sizeof msg, "%s; vm \"%s\" runs on node \"%s\"", failure ? failure : "failed",
                 r->vm, node);
        core->log(m->ctx, VF_LOG_WARN, "vmop \"%s\": migration failed: %s", r->op, msg);
    }
    if (r->abort_requested)
        json_object_object_add(s, "abortStatus", json_object_new_string(ok ? "Failed" : "Succeeded"));
    if (!r->user_abort)
        mig_op_status(m, r->op, ok ? "Completed" : "Failed", ok ? "Completed" : "MigrationFailed",
                      msg, s);
    json_object_put(s);
    struct json_object *audit = json_object_new_object();
    json_object_object_add(audit, "vm", json_object_new_string(r->vm));
    json_object_object_add(audit, "operation", json_object_new_string(r->op));
    json_object_object_add(audit, "from", json_object_new_string(r->source));
    json_object_object_add(audit, "to", json_object_new_string(r->target));
    json_object_object_add(audit, "result", json_object_new_string(ok ? "Completed" : "Failed"));
    core->audit_emit(m->ctx, "vm.migrate", audit);
    json_object_put(audit);
    mig_op_release(m, r->op);
    run_unlink(m, r);
    m->made_sweep_due = true;   /* a record it left is settled by where it ended */
    mig_kick(m);   /* slots are free */
}

/* ---- results coming back ------------------------------------------------------ */

static struct mig_run *lookup(const char *op_uid, unsigned generation, struct migrate **mp)
{
    struct migrate *m = mig_current;
    if (!m || m->generation != generation)
        return NULL;
    *mp = m;
    return mig_run_by_op(m, op_uid);
}

static void probe_submit(struct migrate *m, struct mig_run *r);

static void call_done(void *opaque)
{
    struct mig_call *call = opaque;
    struct migrate *m = NULL;
    struct mig_run *r = lookup(call->op_uid, call->generation, &m);
    if (r) {
        r->thread = false;
        for (size_t i = 0; i < call->n_made; i++)
            m->ctx->core->log(m->ctx, VF_LOG_INFO, "vm \"%s\": deleted \"%s\" on node \"%s\", "
                              "made there by the failed block migration", r->vm, call->made[i],
                              r->target);
        if (call->made_error[0])
            m->ctx->core->log(m->ctx, VF_LOG_WARN, "vm \"%s\": the volumes its block migration "
                              "made on node \"%s\": %s; left to the next sweep", r->vm, r->target,
                              call->made_error);
        if (call->rc == 0) {
            finish(m, r, r->target, NULL);
        } else {
            if (!r->reason[0])
                snprintf(r->reason, sizeof r->reason, "%s", call->error);
            /* Where does it run now?  Usually the source; a failure late in
             * the handover can leave it on the target. */
            r->probe_due = true;
            probe_submit(m, r);
        }
    }
    mig_call_free(call);
}

static void decide(struct migrate *m, struct mig_run *r, const struct mig_probe *p)
{
    bool src_up = p->source == MIG_DOM_RUNNING || p->source == MIG_DOM_PAUSED;
    bool dst_up = p->target == MIG_DOM_RUNNING || p->target == MIG_DOM_PAUSED;
    if (p->source == MIG_DOM_UNKNOWN || p->target == MIG_DOM_UNKNOWN)
        return;   /* a node is not reachable: look again next tick */
    r->probe_due = false;
    if (p->source_job && src_up) {
        /* libvirt still migrates (PEER2PEER outlives us): follow it. */
        if (!r->attached)
            m->ctx->core->log(m->ctx, VF_LOG_INFO, "vm \"%s\": a migration to node \"%s\" is "
                              "still under way on node \"%s\"; following it", r->vm, r->target,
                              r->source);
        r->attached = true;
        return;
    }
    if (dst_up && !src_up) {
        finish(m, r, r->target, NULL);
    } else if (src_up) {
        if (dst_up)
            m->ctx->core->log(m->ctx, VF_LOG_WARN, "vm \"%s\": runs on node \"%s\" and a copy is "
                              "left on node \"%s\"; the VM stays on the source", r->vm, r->source,
                              r->target);
        finish(m, r, r->source, r->reason[0] ? r->reason : "interrupted by a daemon restart");
    } else {
        /* Running nowhere: record it where its definition is; runPolicy then decides. */
        const char *node = p->source == MIG_DOM_ABSENT && p->target == MIG_DOM_INACTIVE ? r->target
                                                                                         : r->source;
        finish(m, r, node, r->reason[0] ? r->reason : "the domain runs on neither node");
    }
}

static void req_done(void *opaque)
{
    struct mig_req *q = opaque;
    struct migrate *m = NULL;
    struct mig_run *r = lookup(q->op_uid, q->generation, &m);
    if (!r) {
        mig_req_free(q);
        return;
    }
    const struct vf_core *core = m->ctx->core;
    switch (q->type) {
    case MIG_REQ_STATS:
        r->poll_busy = false;
        if (q->rc < 0) {
            /* E.g. the domain already left the source: our call's end tells;
             * a migration we only follow is looked at on both nodes. */
            if (r->attached)
                r->probe_due = true;
            break;
        }
        if (!q->stats.active) {
            if (r->attached)
                r->probe_due = true;   /* the job we followed is over */
            break;
        }
        r->last = q->stats;
        r->have_stats = true;
        if (q->stats.throttle > r->throttle_max)
            r->throttle_max = q->stats.throttle;
        if (q->stats.disk_total > 0 && !r->disk_counted) {
            /* The budget is per GiB of memory and of the disks copied. */
            r->disk_counted = true;
            r->memory = (r->memory > 0 ? r->memory : 0) + q->stats.disk_total;
            r->clock.budget_ms = mig_budget_ms(m->set.completion_per_gib_s, r->memory);
        }
        if (q->stats.postcopy)
            r->post_copy = true;
        r->clock.now_ms = mig_now_ms();
        mig_clock_sample(&r->clock, q->stats.remaining, r->clock.now_ms);
        publish(m, r);
        if (r->abort_requested)
            break;
        switch (mig_clock_decide(&r->clock)) {
        case MIG_ACT_NONE:
            break;
        case MIG_ACT_ABORT_STALLED: {
            char why[MIG_MSG_MAX];
            snprintf(why, sizeof why, "no progress for %lld s (progressTimeout): %lld MiB still "
                     "to copy at iteration %lld, the guest dirties %lld MiB/s",
                     (long long)(r->clock.progress_timeout_ms / 1000),
                     (long long)(q->stats.remaining / MIB), (long long)q->stats.iteration,
                     (long long)(q->stats.dirty_rate / MIB));
            mig_run_abort(m, r, false, why);
            break;
        }
        case MIG_ACT_POSTCOPY: {
            core->log(m->ctx, VF_LOG_INFO, "vm \"%s\": not done within %lld s "
                      "(completionTimeoutPerGiB); switching to post-copy", r->vm,
                      (long long)(r->clock.budget_ms / 1000));
            r->post_copy = r->clock.post_copy_started = true;
            struct mig_req *pc = calloc(1, sizeof *pc);
            if (pc) {
                pc->type = MIG_REQ_POSTCOPY;
                pc->conn = mig_conn_ref(m->ctx, r->source);
                snprintf(pc->uuid, sizeof pc->uuid, "%s", r->vm_uid);
                snprintf(pc->op_uid, sizeof pc->op_uid, "%s", r->op_uid);
                pc->generation = m->generation;
                if (core->job_submit(m->ctx, "migration post-copy", mig_req_run, req_done, pc) < 0)
                    mig_req_free(pc);
            }
            publish(m, r);
            break;
        }
        case MIG_ACT_ABORT_TIMEOUT: {
            char why[MIG_MSG_MAX];
            snprintf(why, sizeof why, "not completed within %lld s (completionTimeoutPerGiB %lld "
                     "x %.2f GiB)%s", (long long)(r->clock.budget_ms / 1000),
                     (long long)m->set.completion_per_gib_s, (double)r->memory / (1024.0 * MIB),
                     r->auto_converge ? ", even with auto-converge" : "");
            mig_run_abort(m, r, false, why);
            break;
        }
        }
        break;
    case MIG_REQ_ABORT:
        r->abort_busy = false;
        if (q->rc < 0)
            core->log(m->ctx, VF_LOG_WARN, "vm \"%s\": %s", r->vm, q->error);
        if (!r->thread)
            r->probe_due = true;   /* attached: see how it ended */
        break;
    case MIG_REQ_POSTCOPY:
        if (q->rc < 0) {
            core->log(m->ctx, VF_LOG_WARN, "vm \"%s\": %s; aborting instead", r->vm, q->error);
            r->post_copy = r->clock.post_copy_started = false;
            char why[MIG_MSG_MAX];
            snprintf(why, sizeof why, "not completed within %lld s (completionTimeoutPerGiB) "
                     "and post-copy failed: %s", (long long)(r->clock.budget_ms / 1000), q->error);
            mig_run_abort(m, r, false, why);
        }
        break;
    case MIG_REQ_PROBE:
        r->probe_busy = false;
        if (!r->thread)
            decide(m, r, &q->probe);
        break;
    }
    mig_req_free(q);
}

static void req_submit(struct migrate *m, struct mig_run *r, enum mig_req_type type,
                       const char *what)
{
    struct mig_req *q = calloc(1, sizeof *q);
    if (!q)
        return;
    q->type = type;
    q->conn = mig_conn_ref(m->ctx, r->source);
    if (type == MIG_REQ_PROBE)
        q->conn2 = mig_conn_ref(m->ctx, r->target);
    snprintf(q->uuid, sizeof q->uuid, "%s", r->vm_uid);
    snprintf(q->op_uid, sizeof q->op_uid, "%s", r->op_uid);
    q->generation = m->generation;
    if (m->ctx->core->job_submit(m->ctx, what, mig_req_run, req_done, q) < 0) {
        mig_req_free(q);
        return;
    }
    if (type == MIG_REQ_STATS)
        r->poll_busy = true;
    else if (type == MIG_REQ_ABORT)
        r->abort_busy = true;
    else if (type == MIG_REQ_PROBE)
        r->probe_busy = true;
}

static void probe_submit(struct migrate *m, struct mig_run *r)
{
    if (!r->probe_busy && !r->thread)
        req_submit(m, r, MIG_REQ_PROBE, "migration probe");
}

/* ---- begin, abort, tick ------------------------------------------------------- */

/* A node's libvirt URI (Node status.uri); is it one on this machine? */
static char *node_uri(struct migrate *m, const char *node, bool *local)
{
    struct json_object *obj = NULL;
    char *uri = NULL;
    if (m->ctx->core->object_get(m->ctx, MIG_NODE_KIND, node, &obj) == 0) {
        const char *u = mig_string(mig_member(obj, "status"), "uri");
        if (u) {
            uri = strdup(u);
            /* No host part: a UNIX socket or the local daemon. */
            const char *p = strstr(u, "://");
            *local = p && (p[3] == '/' || p[3] == '\0');
        }
    }
    json_object_put(obj);
    return uri;
}

/* Must the migration copy the VM's disks?  The VM controller says so in its
 * Migratable condition: reason NonSharedDisks for disks in a node's local
 * pool (BlockMigration), SharedStorage when every disk is on storage both
 * nodes see (LiveMigration); a VM without disks has no such condition. */
static bool has_local_disks(const struct json_object *vm)
{
    struct json_object *conds = mig_member(mig_member(vm, "status"), "conditions");
    if (!conds || !json_object_is_type(conds, json_type_array))
        return false;
    for (size_t i = 0; i < json_object_array_length(conds); i++) {
        const struct json_object *c = json_object_array_get_idx(conds, i);
        const char *type = mig_string(c, "type"), *reason = mig_string(c, "reason");
        if (type && !strcmp(type, "Migratable"))
            return reason && !strcmp(reason, "NonSharedDisks");
    }
    return false;
}

int mig_run_begin(struct migrate *m, const struct json_object *op, const struct json_object *vm,
                  const char *target, struct vf_error *err)
{
    const struct vf_core *core = m->ctx->core;
    const char *source = mig_string(mig_member(vm, "status"), "node");
    const char *vm_name = mig_string(mig_member(vm, "metadata"), "name");
    bool src_local = false, dst_local = false;
    char *src_uri = node_uri(m, source, &src_local);
    char *dst_uri = node_uri(m, target, &dst_local);
    void *conn = mig_conn_ref(m->ctx, source);
    int rc;
    free(src_uri);
    if (!dst_uri || !conn) {
        free(dst_uri);
        mig_conn_unref(conn);
        return vf_error_set(err, -ENOTCONN, 503, "NodeNotReady", "",
                            "node \"%s\" is not connected", dst_uri ? source : target);
    }
    struct mig_run *r = run_new(m, mig_string(mig_member(op, "metadata"), "name"),
                                mig_string(mig_member(op, "metadata"), "uid"), vm_name,
                                mig_string(mig_member(vm, "metadata"), "uid"), source, target);
    struct mig_call *call = calloc(1, sizeof *call);
    if (!r || !call) {
        if (r)
            run_unlink(m, r);
        free(call);
        free(dst_uri);
        mig_conn_unref(conn);
        return vf_error_set(err, -ENOMEM, 500, "InternalError", "", "out of memory");
    }
    struct json_object *force = mig_member(mig_member(op, "spec"), "force");
    r->force = force && json_object_get_boolean(force);
    r->auto_converge = m->set.allow_auto_converge || r->force;
    bool block = has_local_disks(vm);
    snprintf(r->method, sizeof r->method, "%s", block ? "BlockMigration" : "LiveMigration");
    mig_timestamp(r->started, sizeof r->started);
    r->memory = mig_quantity(mig_member(mig_member(mig_member(vm, "spec"), "memory"), "size"));
    r->bandwidth_mib = (unsigned long long)(m->set.bandwidth / MIB);
    if (m->set.bandwidth > 0 && r->bandwidth_mib == 0)
        r->bandwidth_mib = 1;   /* libvirt counts whole MiB/s */
    r->clock.budget_ms = mig_budget_ms(m->set.completion_per_gib_s, r->memory);
    r->clock.progress_timeout_ms = m->set.progress_timeout_ms;
    r->clock.post_copy_allowed = m->set.allow_post_copy;
    r->clock.auto_converge = r->auto_converge;

    /* The VM first: from this write on the target is reserved and a restart
     * finds the migration by the VM. */
    struct json_object *f = fields_of(m, r);
    rc = core->vm_migration_begin(m->ctx, vm_name, target, f, err);
    json_object_put(f);
    if (rc < 0) {
        run_unlink(m, r);
        free(call);
        free(dst_uri);
        mig_conn_unref(conn);
        return rc;
    }
    publish(m, r);

    call->conn = conn;
    if (block)
        call->dconn = mig_conn_ref(m->ctx, target);
    snprintf(call->uuid, sizeof call->uuid, "%s", r->vm_uid);
    call->dconnuri = dst_uri;
    call->flags = VIR_MIGRATE_LIVE | VIR_MIGRATE_PEER2PEER | VIR_MIGRATE_PERSIST_DEST |
                  VIR_MIGRATE_UNDEFINE_SOURCE;
    if (block)
        call->flags |= VIR_MIGRATE_NON_SHARED_DISK;
    if (r->auto_converge)
        call->flags |= VIR_MIGRATE_AUTO_CONVERGE;
    if (m->set.allow_post_copy)
        call->flags |= VIR_MIGRATE_POSTCOPY;
    call->bandwidth_mib = r->bandwidth_mib;
    call->loopback = src_local && dst_local;
    snprintf(call->op_uid, sizeof call->op_uid, "%s", r->op_uid);
    call->generation = m->generation;
    call->done = call_done;
    call->ctx = m->ctx;
    snprintf(call->vm, sizeof call->vm, "%s", vm_name);
    snprintf(call->target, sizeof call->target, "%s", target);
    snprintf(call->records, sizeof call->records, "%s", m->made_dir ? m->made_dir : "");
    if ((rc = mig_call_start(call)) < 0) {
        mig_call_free(call);
        snprintf(r->reason, sizeof r->reason, "cannot start the migration thread: %s",
                 strerror(-rc));
        r->probe_due = true;   /* it did not start: the probe hands the VM back */
        return 0;
    }
    r->thread = true;
    core->log(m->ctx, VF_LOG_INFO, "vmop \"%s\": migrating vm \"%s\" from node \"%s\" to node "
              "\"%s\" (%s, %llu MiB/s%s%s)", r->op, vm_name, source, target, r->method,
              r->bandwidth_mib, r->auto_converge ? ", auto-converge" : "",
              m->set.allow_post_copy ? ", post-copy allowed" : "");
    return 0;
}

int mig_run_recover(struct migrate *m, const struct json_object *vm)
{
    const struct json_object *st = mig_member(vm, "status");
    const struct json_object *ms = mig_member(st, "migrationState");
    const char *vm_name = mig_string(mig_member(vm, "metadata"), "name");
    const char *op_uid = mig_string(ms, "migrationUID");
    char uid_buf[80];
    if (!op_uid) {
        snprintf(uid_buf, sizeof uid_buf, "recovered-%s", vm_name);
        op_uid = uid_buf;
    }
    struct mig_run *r = run_new(m, mig_string(ms, "operationName"), op_uid, vm_name,
                                mig_string(mig_member(vm, "metadata"), "uid"),
                                mig_string(ms, "sourceNode"), mig_string(ms, "targetNode"));
    if (!r)
        return -ENOMEM;
    snprintf(r->method, sizeof r->method, "%s",
             mig_string(ms, "method") ? mig_string(ms, "method") : "LiveMigration");
    snprintf(r->started, sizeof r->started, "%s",
             mig_string(ms, "startTimestamp") ? mig_string(ms, "startTimestamp") : "");
    struct json_object *ab = mig_member(ms, "abortRequested");
    r->abort_requested = ab && json_object_get_boolean(ab);
    r->post_copy = mig_string(ms, "mode") && !strcmp(mig_string(ms, "mode"), "PostCopy");
    r->clock.post_copy_started = r->post_copy;
    r->memory = mig_quantity(mig_member(mig_member(mig_member(vm, "spec"), "memory"), "size"));
    r->clock.budget_ms = mig_budget_ms(m->set.completion_per_gib_s, r->memory);
    r->clock.progress_timeout_ms = m->set.progress_timeout_ms;
    r->probe_due = true;
    m->ctx->core->log(m->ctx, VF_LOG_INFO, "vm \"%s\": was migrating from node \"%s\" to node "
                      "\"%s\" when the module stopped; looking at both nodes", vm_name, r->source,
                      r->target);
    return 0;
}

void mig_run_abort(struct migrate *m, struct mig_run *r, bool user, const char *reason)
{
    if (user)
        r->user_abort = true;
    if (r->abort_requested)
        return;
    r->abort_requested = true;
    snprintf(r->reason, sizeof r->reason, "aborted: %s", reason);
    m->ctx->core->log(m->ctx, VF_LOG_INFO, "vm \"%s\": aborting the migration to node \"%s\": %s",
                      r->vm, r->target, reason);
    if (r->post_copy)
        m->ctx->core->log(m->ctx, VF_LOG_WARN, "vm \"%s\": in post-copy the guest already runs on "
                          "node \"%s\"; the migration is let finish", r->vm, r->target);
    else
        req_submit(m, r, MIG_REQ_ABORT, "migration abort");
    publish(m, r);
}

void mig_run_tick(struct migrate *m)
{
    for (struct mig_run *r = m->runs, *next; r; r = next) {
        next = r->next;   /* decide() may free r, but only from a job's done */
        if (r->probe_due && !r->thread) {
            probe_submit(m, r);
            continue;
        }
        if ((r->thread || r->attached) && !r->poll_busy)
            req_submit(m, r, MIG_REQ_STATS, "migration stats");
    }
}
