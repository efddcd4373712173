/* The libvirt side of a migration, off the loop thread.  The migration
 * itself (virDomainMigrateToURI3, PEER2PEER) runs on a thread of its own:
 * it lasts as long as the copy does and must not hold one of the core's few
 * workers.  PEER2PEER lets the source libvirtd drive the whole migration, so
 * one that is under way when virtfleetd dies finishes (or fails) without
 * us, and the next start only has to look at both nodes (MIG_REQ_PROBE).
 * The volumes a block migration makes on the target are recorded before the
 * copy (made_record.c), so that they are deleted after a failure even when
 * the daemon did not see it (made_volumes.c).
 * Short requests (job stats, abort, post-copy, probe) go to the core's
 * workers on the node's shared connection.  Nothing here touches the store:
 * results go back to the loop. */
#include <config.h>
#include "migrate.h"
#include <virtfleet/node_connection.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

/* The core's gate of a node's shared connection (module.h node_gate_enter):
 * one thread at a time waits on it.  The services table is the same for every
 * instance of the module: set once at start, read by the workers after. */
static const struct vf_core *gate_core;

void mig_gate_init(const struct vf_core *core)
{
    gate_core = core;
}

void mig_gate_enter(void *conn)
{
    if (gate_core && conn)
        gate_core->node_gate_enter(conn);
}

void mig_gate_leave(void *conn)
{
    if (gate_core && conn)
        gate_core->node_gate_leave(conn);
}

void *mig_conn_ref(struct vf_module_ctx *ctx, const char *node)
{
    virConnectPtr c = node ? ctx->core->node_connection(ctx, node) : NULL;
    if (c && virConnectRef(c) < 0)
        return NULL;
    return c;
}

void mig_conn_unref(void *conn)
{
    if (conn)
        virConnectClose(conn);
}

static void last_error(char *buf, size_t len, const char *what)
{
    const char *msg = virGetLastErrorMessage();
    snprintf(buf, len, "%s: %s", what, msg && *msg ? msg : "unknown libvirt error");
}

/* ---- the migration thread --------------------------------------------------- */

/* The long call runs on a connection of the thread's own to the source,
 * opened and closed here: the stats polls and an abort on the shared one would
 * wait next to it for as long as the copy lasts, which crashes the daemon when
 * the node hangs (the libvirt 9.0 hazard, see <virtfleet/node_connection.h>).
 * On a hung node its keepalive fails the call, and the probe that follows a
 * failure finds out what libvirt made of it. */
static virConnectPtr own_connection_open(struct mig_call *call)
{
    char why[sizeof call->error - 64];
    if (!call->conn) {
        snprintf(call->error, sizeof call->error, "the source node is not connected");
        return NULL;
    }
    virConnectPtr own = vf_node_connection_open_own(call->conn, why, sizeof why);
    if (!own)
        snprintf(call->error, sizeof call->error, "the migration's own connection to the source: %s",
                 why);
    return own;
}

void mig_call_free(struct mig_call *call)
{
    if (!call)
        return;
    mig_conn_unref(call->conn);
    mig_conn_unref(call->dconn);
    free(call->dconnuri);
    free(call);
}

/* ---- disks a block migration makes on the target ------------------------------- */

/* Before a block migration: which of the disks' files the target lacks.
 * libvirt pre-creates those (a volume of the same name and capacity in the
 * target's pool at that directory) and, when the migration fails, leaves
 * them there; they are ours to remove then. */
static void disks_missing_on_target(struct mig_call *call, virDomainPtr dom)
{
    char *xml = virDomainGetXMLDesc(dom, 0);
    char (*paths)[MIG_PATH_MAX] = calloc(MIG_MAX_DISKS, MIG_PATH_MAX);
    if (xml && paths) {
        size_t n = mig_disk_paths(xml, paths, MIG_MAX_DISKS);
        mig_gate_enter(call->dconn);
        for (size_t i = 0; i < n; i++) {
            virStorageVolPtr v = virStorageVolLookupByPath(call->dconn, paths[i]);
            virErrorPtr e = v ? NULL : virGetLastError();
            if (v)
                virStorageVolFree(v);
            else if (e && e->code == VIR_ERR_NO_STORAGE_VOL)
                snprintf(call->made[call->n_made++], MIG_PATH_MAX, "%s", paths[i]);
        }
        mig_gate_leave(call->dconn);
    }
    free(paths);
    free(xml);
}

/* Before the copy: the list of what libvirt is about to make, kept where a
 * restart finds it (made_record.c).  Without it a kill during the copy would
 * leave those volumes for ever, so a migration whose list cannot be written
 * does not begin. */
static int disks_record(struct mig_call *call)
{
    if (!call->n_made || !call->records[0])
        return 0;
    struct mig_record *rec = calloc(1, sizeof *rec);
    if (!rec) {
        snprintf(call->error, sizeof call->error, "out of memory");
        return -ENOMEM;
    }
    snprintf(rec->vm, sizeof rec->vm, "%s", call->vm);
    snprintf(rec->vm_uid, sizeof rec->vm_uid, "%s", call->uuid);
    snprintf(rec->target, sizeof rec->target, "%s", call->target);
    memcpy(rec->paths, call->made, sizeof rec->paths);
    rec->n = call->n_made;
    char why[sizeof call->error - 96];
    int rc = mig_record_write(call->records, call->op_uid, rec, why, sizeof why);
    if (rc < 0)
        snprintf(call->error, sizeof call->error, "cannot record the volumes the block migration "
                 "makes on node \"%s\": %s", call->target, why);
    free(rec);
    return rc;
}

/* The outcome is dealt with: the record has done its job. */
static void disks_record_drop(struct mig_call *call)
{
    char why[sizeof call->made_error];
    if (call->records[0] && mig_record_remove(call->records, call->op_uid, why, sizeof why) < 0)
        snprintf(call->made_error, sizeof call->made_error, "%s", why);
}

/* After a failed block migration: the domain is not on the target, so the
 * volumes libvirt made there for it are a copy nobody uses: delete them.
 * Should that fail, the record stays, and made_volumes.c tries again. */
static void disks_remove_from_target(struct mig_call *call)
{
    if (!call->n_made)
        return;
    struct mig_made_outcome *out = calloc(1, sizeof *out);
    if (!out) {
        snprintf(call->made_error, sizeof call->made_error, "out of memory");
        call->n_made = 0;
        return;
    }
    mig_gate_enter(call->dconn);
    int rc = mig_made_delete(call->dconn, call->uuid, call->made, call->n_made, out);
    mig_gate_leave(call->dconn);
    size_t kept = 0;
    for (size_t i = 0; i < call->n_made; i++) {
        if (!out->deleted[i])
            continue;
        if (kept != i)   /* (snprintf onto itself printed "") */
            memcpy(call->made[kept], call->made[i], MIG_PATH_MAX);
        kept++;
    }
    call->n_made = kept;   /* now: the ones deleted, for the log */
    if (rc < 0)
        snprintf(call->made_error, sizeof call->made_error, "%s", out->error);
    else
        disks_record_drop(call);
    free(out);
}

static void *call_main(void *opaque)
{
    struct mig_call *call = opaque;
    virTypedParameterPtr params = NULL;
    int n = 0, max = 0;
    virDomainPtr dom = NULL;
    virConnectPtr own = own_connection_open(call);
    if (!own) {
        call->rc = -ECONNREFUSED;
        goto out;
    }
    dom = virDomainLookupByUUIDString(own, call->uuid);
    if (!dom) {
        call->rc = -ENOENT;
        last_error(call->error, sizeof call->error, "the domain is not on the source");
        goto out;
    }
    /* Both nodes on this machine (tests, a lab): libvirt refuses 127.0.0.1 as
     * a node's migration_host, so the destination is told to listen there
     * and the source to connect there. */
    if (call->loopback &&
        (virTypedParamsAddString(&params, &n, &max, VIR_MIGRATE_PARAM_URI, "tcp://127.0.0.1") < 0 ||
         virTypedParamsAddString(&params, &n, &max, VIR_MIGRATE_PARAM_LISTEN_ADDRESS,
                                 "127.0.0.1") < 0))
        goto param_failed;
    if (call->bandwidth_mib &&
        (virTypedParamsAddULLong(&params, &n, &max, VIR_MIGRATE_PARAM_BANDWIDTH,
                                 call->bandwidth_mib) < 0 ||
         ((call->flags & VIR_MIGRATE_POSTCOPY) &&
          virTypedParamsAddULLong(&params, &n, &max, VIR_MIGRATE_PARAM_BANDWIDTH_POSTCOPY,
                                  call->bandwidth_mib) < 0)))
        goto param_failed;
    if ((call->flags & VIR_MIGRATE_NON_SHARED_DISK) && call->dconn) {
        disks_missing_on_target(call, dom);
        if ((call->rc = disks_record(call)) < 0) {
            call->n_made = 0;   /* nothing was made */
            goto out;
        }
    }
    if (virDomainMigrateToURI3(dom, call->dconnuri, params, (unsigned)n, call->flags) < 0) {
        call->rc = -EIO;
        last_error(call->error, sizeof call->error, "migration failed");
        if (call->dconn)
            disks_remove_from_target(call);
    } else {
        call->n_made = 0;   /* they are the VM's disks now */
        disks_record_drop(call);
    }
    goto out;
param_failed:
    call->rc = -ENOMEM;
    last_error(call->error, sizeof call->error, "migration parameters");
out:
    virTypedParamsFree(params, n);
    if (dom)
        virDomainFree(dom);
    if (own) {
        /* Talks to the node, or fails at once on a connection the keepalive closed. */
        virConnectClose(own);
        virResetLastError();
    }
    if (call->ctx->core->loop_post(call->ctx, call->done, call) < 0)
        mig_call_free(call);   /* the daemon is going away: nobody is left to tell */
    return NULL;
}

int mig_call_start(struct mig_call *call)
{
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &attr, call_main, call);
    pthread_attr_destroy(&attr);
    return rc ? -rc : 0;
}

/* ---- short requests ------------------------------------------------------------ */

void mig_req_free(struct mig_req *r)
{
    if (!r)
        return;
    mig_conn_unref(r->conn);
    mig_conn_unref(r->conn2);
    free(r);
}

static int64_t param_ll(virTypedParameterPtr p, int n, const char *name)
{
    unsigned long long v = 0;
    if (virTypedParamsGetULLong(p, n, name, &v) <= 0)
        return -1;
    return (int64_t)v;
}

static void stats(struct mig_req *r, virDomainPtr dom)
{
    virTypedParameterPtr p = NULL;
    int n = 0, type = VIR_DOMAIN_JOB_NONE;
    if (virDomainGetJobStats(dom, &type, &p, &n, 0) < 0) {
        r->rc = -EIO;
        last_error(r->error, sizeof r->error, "job stats");
        return;
    }
    struct mig_stats *s = &r->stats;
    s->active = type == VIR_DOMAIN_JOB_BOUNDED || type == VIR_DOMAIN_JOB_UNBOUNDED;
    s->processed = param_ll(p, n, VIR_DOMAIN_JOB_DATA_PROCESSED);
    s->remaining = param_ll(p, n, VIR_DOMAIN_JOB_DATA_REMAINING);
    s->total = param_ll(p, n, VIR_DOMAIN_JOB_DATA_TOTAL);
    int64_t pages = param_ll(p, n, VIR_DOMAIN_JOB_MEMORY_DIRTY_RATE);
    int64_t page = param_ll(p, n, VIR_DOMAIN_JOB_MEMORY_PAGE_SIZE);
    s->dirty_rate = pages >= 0 ? pages * (page > 0 ? page : 4096) : -1;
    s->iteration = param_ll(p, n, VIR_DOMAIN_JOB_MEMORY_ITERATION);
    s->bps = param_ll(p, n, VIR_DOMAIN_JOB_MEMORY_BPS);
    s->elapsed_ms = param_ll(p, n, VIR_DOMAIN_JOB_TIME_ELAPSED);
    int64_t postcopy = param_ll(p, n, VIR_DOMAIN_JOB_MEMORY_POSTCOPY_REQS);
    s->postcopy = postcopy > 0;
    int throttle = -1;   /* an int parameter, unlike the byte counts */
    if (virTypedParamsGetInt(p, n, VIR_DOMAIN_JOB_AUTO_CONVERGE_THROTTLE, &throttle) <= 0)
        throttle = -1;
    s->throttle = throttle;
    s->disk_total = param_ll(p, n, VIR_DOMAIN_JOB_DISK_TOTAL);
    virTypedParamsFree(p, n);
}

static enum mig_dom dom_state(virConnectPtr conn, const char *uuid, bool *job)
{
    if (!conn)
        return MIG_DOM_UNKNOWN;
    virDomainPtr d = virDomainLookupByUUIDString(conn, uuid);
    if (!d) {
        virErrorPtr e = virGetLastError();
        return e && e->code == VIR_ERR_NO_DOMAIN ? MIG_DOM_ABSENT : MIG_DOM_UNKNOWN;
    }
    int state = 0, reason = 0;
    enum mig_dom out = MIG_DOM_UNKNOWN;
    if (virDomainGetState(d, &state, &reason, 0) == 0) {
        switch (state) {
        case VIR_DOMAIN_RUNNING: out = MIG_DOM_RUNNING; break;
        case VIR_DOMAIN_PAUSED: out = MIG_DOM_PAUSED; break;
        case VIR_DOMAIN_BLOCKED: out = MIG_DOM_RUNNING; break;
        default: out = MIG_DOM_INACTIVE; break;
        }
    }
    if (job) {
        virDomainJobInfo info;
        *job = virDomainGetJobInfo(d, &info) == 0 && info.type != VIR_DOMAIN_JOB_NONE &&
               info.type != VIR_DOMAIN_JOB_COMPLETED && info.type != VIR_DOMAIN_JOB_FAILED &&
               info.type != VIR_DOMAIN_JOB_CANCELLED;
    }
    virDomainFree(d);
    return out;
}

static void req_on_source(struct mig_req *r)
{
    if (!r->conn) {
        r->rc = -ENOTCONN;
        snprintf(r->error, sizeof r->error, "the source node is not connected");
        return;
    }
    virDomainPtr dom = virDomainLookupByUUIDString(r->conn, r->uuid);
    if (!dom) {
        r->rc = -ENOENT;
        last_error(r->error, sizeof r->error, "the domain is not on the source");
        return;
    }
    switch (r->type) {
    case MIG_REQ_STATS:
        stats(r, dom);
        break;
    case MIG_REQ_ABORT:
        if (virDomainAbortJob(dom) < 0) {
            r->rc = -EIO;
            last_error(r->error, sizeof r->error, "abort");
        }
        break;
    case MIG_REQ_POSTCOPY:
        if (virDomainMigrateStartPostCopy(dom, 0) < 0) {
            r->rc = -EIO;
            last_error(r->error, sizeof r->error, "switch to post-copy");
        }
        break;
    case MIG_REQ_PROBE:
        break;
    }
    virDomainFree(dom);
}

/* Each node's calls inside its connection's gate, one node at a time. */
void mig_req_run(void *opaque)
{
    struct mig_req *r = opaque;
    if (r->type == MIG_REQ_PROBE) {
        mig_gate_enter(r->conn);
        r->probe.source = dom_state(r->conn, r->uuid, &r->probe.source_job);
        mig_gate_leave(r->conn);
        mig_gate_enter(r->conn2);
        r->probe.target = dom_state(r->conn2, r->uuid, NULL);
        mig_gate_leave(r->conn2);
        return;
    }
    mig_gate_enter(r->conn);
    req_on_source(r);
    mig_gate_leave(r->conn);
}
