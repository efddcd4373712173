/* The volumes a block migration made on its target, after the migration.
 *
 * Owns the records of made_record.c from the moment the migration thread
 * has left them: a migration that succeeded or failed with the daemon
 * running removes its own record (job.c); one the daemon did not see end (a
 * kill -9 during the copy, a delete on the target that failed) is settled
 * here by the outcome written on its VM, never by guessing:
 *   - the VM is still migrating (a run of ours follows it): later, once
 *     finish() has recorded where it ended (which asks for a sweep);
 *   - the VM ended on the record's target: the volumes are its disks now;
 *     the record goes;
 *   - it ended anywhere else, or the VM is gone (its deletion took its
 *     domain, not those volumes): the volumes are deleted on the target,
 *     then the record goes.
 * The deletion runs on a worker, on a connection of its own to the target
 * (<virtfleet/node_connection.h>), and leaves everything alone when the
 * domain is on the target after all.  A file that a VirtualDisk says it
 * keeps on that node at that path is never deleted.  A record whose target
 * is not connected, or whose deletion failed, is tried again later; while a
 * deletion runs, the VM does not start another migration (it could reuse
 * the very volumes being deleted). */
#include <config.h>
#include "migrate.h"
#include <virtfleet/node_connection.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#define RECORDS_SUBDIR "block-migrations"
#define VD_KIND "VirtualDisk"
#define RETRY_MS 5000   /* a target not connected, a failed delete: look again after */

static const char *libvirt_error(void)
{
    const char *msg = virGetLastErrorMessage();
    return msg && *msg ? msg : "unknown libvirt error";
}

/* ---- any thread: delete them on the target ------------------------------------- */

int mig_made_delete(void *conn, const char *uuid, char (*paths)[MIG_PATH_MAX], size_t n,
                    struct mig_made_outcome *out)
{
    memset(out, 0, sizeof *out);
    if (!n)
        return 0;
    virDomainPtr d = virDomainLookupByUUIDString(conn, uuid);
    if (d) {
        virDomainFree(d);   /* it did arrive (a late failure): the volumes are its disks */
        out->domain_there = true;
        return 0;
    }
    if (virGetLastErrorCode() != VIR_ERR_NO_DOMAIN) {
        snprintf(out->error, sizeof out->error, "looking for domain %s: %s", uuid, libvirt_error());
        return -EIO;
    }
    int rc = 0;
    for (size_t i = 0; i < n && i < MIG_MAX_DISKS; i++) {
        virStorageVolPtr v = virStorageVolLookupByPath(conn, paths[i]);
        if (!v) {
            if (virGetLastErrorCode() == VIR_ERR_NO_STORAGE_VOL)
                continue;   /* never made (it failed before the copy), or gone already */
            if (!out->error[0])
                snprintf(out->error, sizeof out->error, "looking up \"%s\": %s", paths[i],
                         libvirt_error());
            rc = -EIO;
            continue;
        }
        if (virStorageVolDelete(v, 0) == 0)
            out->deleted[i] = true;
        else if (virGetLastErrorCode() != VIR_ERR_NO_STORAGE_VOL) {
            if (!out->error[0])
                snprintf(out->error, sizeof out->error, "deleting \"%s\": %s", paths[i],
                         libvirt_error());
            rc = -EIO;
        }
        virStorageVolFree(v);
    }
    return rc;
}

/* ---- the deletion of a leftover record's volumes, on a worker -------------------- */

struct made_job {
    void *conn;                      /* the target's shared connection, referenced */
    char dir[MIG_PATH_MAX];
    char name[MIG_RECORD_NAME_MAX];
    struct mig_record rec;
    int rc;
    char error[768];
    struct mig_made_outcome out;
    unsigned generation;
};

static void made_job_run(void *opaque)
{
    struct made_job *j = opaque;
    char why[512];
    virConnectPtr own = vf_node_connection_open_own(j->conn, why, sizeof why);
    if (!own) {
        j->rc = -ECONNREFUSED;
        snprintf(j->error, sizeof j->error, "a connection of its own to the target: %s", why);
        return;
    }
    j->rc = mig_made_delete(own, j->rec.vm_uid, j->rec.paths, j->rec.n, &j->out);
    if (j->rc < 0)
        snprintf(j->error, sizeof j->error, "%s", j->out.error);
    virConnectClose(own);
    virResetLastError();
    if (j->rc == 0 && (j->rc = mig_record_remove(j->dir, j->name, why, sizeof why)) < 0)
        snprintf(j->error, sizeof j->error, "%s", why);
}

static void made_job_free(struct made_job *j)
{
    mig_conn_unref(j->conn);
    free(j);
}

static void made_job_done(void *opaque)
{
    struct made_job *j = opaque;
    struct migrate *m = mig_current;
    if (!m || m->generation != j->generation) {
        made_job_free(j);   /* stopped meanwhile: the record stays for the next start */
        return;
    }
    const struct vf_core *core = m->ctx->core;
    json_object_object_del(m->made_pending, j->name);
    if (j->out.domain_there)
        core->log(m->ctx, VF_LOG_INFO, "vm \"%s\": its domain is on node \"%s\": the volumes its "
                  "block migration %s made there are its disks; record dropped", j->rec.vm,
                  j->rec.target, j->name);
    for (size_t i = 0; i < j->rec.n; i++)
        if (j->out.deleted[i])
            core->log(m->ctx, VF_LOG_INFO, "vm \"%s\": deleted \"%s\" on node \"%s\", made there by "
                      "block migration %s, which failed", j->rec.vm, j->rec.paths[i],
                      j->rec.target, j->name);
    if (j->rc < 0) {
        core->log(m->ctx, VF_LOG_WARN, "vm \"%s\": the volumes block migration %s made on node "
                  "\"%s\": %s; trying again in %d s", j->rec.vm, j->name, j->rec.target, j->error,
                  RETRY_MS / 1000);
        m->made_retry_ms = mig_now_ms() + RETRY_MS;
    }
    made_job_free(j);
    mig_kick(m);   /* a migration of the VM waiting for this may start */
}

/* ---- the sweep, on the loop --------------------------------------------------- */

static const struct json_object *vm_by_uid(const struct json_object *vms, const char *uid)
{
    for (size_t i = 0; vms && i < json_object_array_length(vms); i++) {
        const struct json_object *vm = json_object_array_get_idx(vms, i);
        const char *u = mig_string(mig_member(vm, "metadata"), "uid");
        if (u && !strcmp(u, uid))
            return vm;
    }
    return NULL;
}

static bool run_of_vm_uid(const struct migrate *m, const char *uid)
{
    for (const struct mig_run *r = m->runs; r; r = r->next)
        if (r->vm_uid && !strcmp(r->vm_uid, uid))
            return true;
    return false;
}

/* Leave out the files a VirtualDisk says it keeps on the record's target
 * (disks: the VirtualDisks, or NULL when there are none to ask). */
static void keep_disks(struct migrate *m, const char *name, struct mig_record *rec,
                       const struct json_object *disks)
{
    size_t kept = 0;
    for (size_t i = 0; i < rec->n; i++) {
        const char *owner = NULL;
        for (size_t k = 0; disks && k < json_object_array_length(disks); k++) {
            const struct json_object *d = json_object_array_get_idx(disks, k);
            const struct json_object *t = mig_member(mig_member(d, "status"), "target");
            const char *node = mig_string(t, "node"), *path = mig_string(t, "path");
            if (node && path && !strcmp(node, rec->target) && !strcmp(path, rec->paths[i]))
                owner = mig_string(mig_member(d, "metadata"), "name");
        }
        if (owner) {
            m->ctx->core->log(m->ctx, VF_LOG_WARN, "vm \"%s\": \"%s\" on node \"%s\" (block "
                              "migration %s) is VirtualDisk \"%s\" now: left alone", rec->vm,
                              rec->paths[i], rec->target, name, owner);
            continue;
        }
        if (kept != i)
            memcpy(rec->paths[kept], rec->paths[i], MIG_PATH_MAX);
        kept++;
    }
    rec->n = kept;
}

static void drop(struct migrate *m, const char *name, const char *vm)
{
    char err[768];
    if (mig_record_remove(m->made_dir, name, err, sizeof err) < 0) {
        m->ctx->core->log(m->ctx, VF_LOG_ERROR, "vm \"%s\": %s", vm, err);
        m->made_retry_ms = mig_now_ms() + RETRY_MS;
    }
}

/* What becomes of one leftover record. */
static void settle(struct migrate *m, const char *name, const struct json_object *vms,
                   struct json_object **disks, bool *disks_read)
{
    const struct vf_core *core = m->ctx->core;
    char err[768];
    struct made_job *j = calloc(1, sizeof *j);
    if (!j)
        return;
    if (mig_record_read(m->made_dir, name, &j->rec, err, sizeof err) < 0) {
        /* Nothing in it can be trusted to say which files to delete. */
        core->log(m->ctx, VF_LOG_ERROR, "%s; removed, its volumes (if any) are left alone", err);
        drop(m, name, "?");
        free(j);
        return;
    }
    struct mig_record *rec = &j->rec;
    if (run_of_vm_uid(m, rec->vm_uid)) {
        free(j);   /* it still migrates: its end asks for another sweep */
        return;
    }
    const struct json_object *vm = vm_by_uid(vms, rec->vm_uid);
    const char *node = mig_string(mig_member(vm, "status"), "node");
    if (vm && node && !strcmp(node, rec->target)) {
        core->log(m->ctx, VF_LOG_INFO, "vm \"%s\" ended on node \"%s\": the volumes block migration "
                  "%s made there are its disks", rec->vm, rec->target, name);
        drop(m, name, rec->vm);
        free(j);
        return;
    }
    if (!*disks_read) {
        *disks_read = true;
        if (core->object_list(m->ctx, VD_KIND, disks) < 0)
            *disks = NULL;   /* no VirtualDisks here (no images module) */
    }
    keep_disks(m, name, rec, *disks);
    if (!rec->n) {
        drop(m, name, rec->vm);
        free(j);
        return;
    }
    j->conn = mig_conn_ref(m->ctx, rec->target);
    if (!j->conn) {
        core->log(m->ctx, VF_LOG_DEBUG, "vm \"%s\": node \"%s\" is not connected; the volumes "
                  "block migration %s left there wait", rec->vm, rec->target, name);
        m->made_retry_ms = mig_now_ms() + RETRY_MS;
        free(j);
        return;
    }
    snprintf(j->dir, sizeof j->dir, "%s", m->made_dir);
    snprintf(j->name, sizeof j->name, "%s", name);
    j->generation = m->generation;
    core->log(m->ctx, VF_LOG_INFO, "vm \"%s\" %s; deleting the %zu volume(s) its block migration "
              "%s left on node \"%s\"", rec->vm,
              vm ? "ended on its source" : "no longer exists", rec->n, name, rec->target);
    if (core->job_submit(m->ctx, "delete volumes of a failed block migration", made_job_run,
                         made_job_done, j) < 0) {
        m->made_retry_ms = mig_now_ms() + RETRY_MS;
        made_job_free(j);
        return;
    }
    json_object_object_add(m->made_pending, name, json_object_new_string(rec->vm_uid));
}

void mig_made_sweep(struct migrate *m, const struct json_object *vms)
{
    if (!m->made_dir)
        return;
    bool due = m->made_sweep_due || (m->made_retry_ms && mig_now_ms() >= m->made_retry_ms);
    if (!due)
        return;
    m->made_sweep_due = false;
    m->made_retry_ms = 0;
    char **names = NULL;
    size_t n = 0;
    int rc = mig_record_list(m->made_dir, !m->made_swept, &names, &n);
    m->made_swept = true;
    if (rc < 0) {
        m->ctx->core->log(m->ctx, VF_LOG_ERROR, "cannot read \"%s\": %s", m->made_dir,
                          strerror(-rc));
        m->made_retry_ms = mig_now_ms() + RETRY_MS;
        return;
    }
    struct json_object *disks = NULL;
    bool disks_read = false;
    for (size_t i = 0; i < n; i++)
        if (!mig_member(m->made_pending, names[i]))
            settle(m, names[i], vms, &disks, &disks_read);
    json_object_put(disks);
    mig_record_names_free(names, n);
}

bool mig_made_busy(const struct migrate *m, const char *vm_uid)
{
    json_object_object_foreach(m->made_pending, name, uid) {
        (void)name;
        if (vm_uid && !strcmp(json_object_get_string(uid), vm_uid))
            return true;
    }
    return false;
}

int mig_made_start(struct migrate *m)
{
    const char *state = m->ctx->core->state_dir(m->ctx);
    if (!(m->made_pending = json_object_new_object()))
        return -ENOMEM;
    m->made_sweep_due = true;
    if (!state) {
        m->ctx->core->log(m->ctx, VF_LOG_WARN, "no state directory: the volumes a block migration "
                          "makes on its target are not recorded, and are left there when the "
                          "daemon stops during one that then fails");
        return 0;
    }
    char dir[MIG_PATH_MAX];
    if ((size_t)snprintf(dir, sizeof dir, "%s/" RECORDS_SUBDIR, state) >= sizeof dir)
        return -ENAMETOOLONG;
    if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
        int rc = -errno;
        m->ctx->core->log(m->ctx, VF_LOG_ERROR, "cannot create \"%s\": %s", dir, strerror(-rc));
        return rc;
    }
    return (m->made_dir = strdup(dir)) ? 0 : -ENOMEM;
}

void mig_made_stop(struct migrate *m)
{
    free(m->made_dir);
    m->made_dir = NULL;
    json_object_put(m->made_pending);
    m->made_pending = NULL;
}
