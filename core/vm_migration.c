/* Live migration, as the VM controller sees it: the services the migrate
 * module calls through core_services.c (vm_migration_target/begin/update/end
 * of module.h).  This file owns the checks those services make (the VM is
 * Running, or Migrating, and not being deleted; the target exists, is not the
 * source and fits), the phase change Running -> Migrating -> Running with
 * status.migrationState { sourceNode, targetNode, ...the module's fields },
 * and the VM's DHCP host entries following it from node to node.
 *
 * The migration itself is the module's.  While a VM is Migrating the
 * controller (vms.c) leaves it alone and placement counts it on both nodes;
 * vms.c keeps its records and placement view private and lends them through
 * the few vf_vms_*() calls of vms_internal.h. */
#include <config.h>
#include "vms_internal.h"
#include "json_util.h"
#include "cluster.h"
#include "log.h"
#include "objects.h"
#include "placement.h"
#include "vm_disks.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libvirt/libvirt.h>

/* The VM's spec.nodeSelector with a migration's extra labels added; a label
 * both name with different values can be met by no node: refused. */
static int merged_selector(const struct json_object *vm_sel, const struct json_object *extra,
                           struct json_object **out, struct vf_error *err)
{
    struct json_object *m = vf_json_copy_or_empty(vm_sel);
    if (extra && json_object_is_type(extra, json_type_object)) {
        json_object_object_foreach((struct json_object *)extra, k, val) {
            const char *want = json_object_get_string(val);
            const char *have = vf_json_string(m, k);
            if (have && !vf_json_str_eq(have, want)) {
                json_object_put(m);
                return vf_error_set(err, -EINVAL, 422, "Invalid", "spec.migrate.nodeSelector",
                                    "label %s=%s conflicts with the VM's nodeSelector %s=%s", k,
                                    want ? want : "", k, have);
            }
            json_object_object_add(m, k, json_object_new_string(want ? want : ""));
        }
    }
    *out = m;
    return 0;
}

/* Placement for a VM that runs on `source`: only (a node name) or any node
 * but source and those in exclude.  Fills target, or -ENOSPC with why. */
static int migration_choose(const struct json_object *vm, const char *source, const char *only,
                            const struct json_object *selector, const char *const *exclude,
                            char *target, size_t len, struct vf_error *err)
{
    const char *name = vf_object_name(vm);
    const struct json_object *spec = vf_json_member(vm, "spec");
    const char *class_name = vf_json_string(spec, "virtualMachineClassName");
    struct json_object *vmclass = NULL, *sel = NULL;
    char why[VF_VM_MSG_MAX] = "";
    int rc;
    if (!class_name)
        class_name = "generic";
    if (vf_objects_get(VF_VMCLASS_KIND, class_name, &vmclass, err) < 0)
        return vf_error_set(err, -ENOENT, 422, "ClassNotFound", "spec.virtualMachineClassName",
                            "VirtualMachineClass \"%s\" not found", class_name);
    if ((rc = merged_selector(vf_json_member(spec, "nodeSelector"), selector, &sel, err)) < 0) {
        json_object_put(vmclass);
        return rc;
    }
    const struct vf_placement_node *all = NULL;
    size_t n_all = 0;
    if ((rc = vf_vms_place_nodes(&all, &n_all)) < 0) {
        json_object_put(vmclass);
        json_object_put(sel);
        return vf_error_set(err, rc, 500, "InternalError", "", "cannot read the store for placement");
    }
    struct vf_placement_node *nodes = calloc(n_all + 1, sizeof *nodes);
    size_t n = 0;
    bool found = !only;
    for (size_t i = 0; nodes && i < n_all; i++) {
        const struct vf_placement_node *pn = &all[i];
        bool skip = only && !vf_json_str_eq(pn->name, only);
        for (size_t k = 0; !only && exclude && exclude[k]; k++)
            skip = skip || vf_json_str_eq(pn->name, exclude[k]);
        found = found || vf_json_str_eq(pn->name, only);
        if (!skip)
            nodes[n++] = *pn;
    }
    struct vf_placement_request req = {
        .vm_name = name,
        .vm_labels = vf_json_member(vf_json_member(vm, "metadata"), "labels"),
        .cpu_millis = vf_placement_vm_cpu_millis(spec),
        .memory_bytes = vf_placement_vm_memory(spec),
        .class_selector = vf_json_member(vf_json_member(vmclass, "spec"), "nodeSelector"),
        .vm_node_selector = json_object_object_length(sel) ? sel : NULL,
        .affinity = vf_json_member(spec, "affinity"),
        .exclude_node = source,
    };
    /* The target must hold copies of its CD-ROM images (local disks are
     * copied by the migration itself). */
    struct vf_vm_disks disks;
    char reason[64], msg[VF_VM_MSG_MAX];
    if (vf_vm_disks_resolve(vm, &disks, reason, sizeof reason, msg, sizeof msg) == 0)
        req.image_nodes = (const char *const *)disks.image_nodes;
    int idx = -1;
    if (!nodes)
        rc = vf_error_set(err, -ENOMEM, 500, "InternalError", "", "out of memory");
    else if (!found)
        rc = vf_error_set(err, -ENOENT, 422, "NodeNotFound", "spec.migrate.nodeName",
                          "node \"%s\" not found", only);
    else if (only && vf_json_str_eq(only, source))
        rc = vf_error_set(err, -EINVAL, 422, "Invalid", "spec.migrate.nodeName",
                          "vm \"%s\" already runs on node \"%s\"", name, only);
    else if ((idx = vf_placement_choose(&req, nodes, n, why, sizeof why)) < 0)
        rc = vf_error_set(err, -ENOSPC, 422, "Unschedulable", "", "%s", why);
    else
        snprintf(target, len, "%s", nodes[idx].name);
    free(nodes);
    vf_vm_disks_free(&disks);
    vf_vms_place_forget();
    json_object_put(vmclass);
    json_object_put(sel);
    return idx < 0 ? rc : 0;
}

/* The VM, when it is in `phase` (NULL: Running or Migrating) and not being
 * deleted; else -EBUSY (409) saying what it is. */
static int migration_vm(const char *vm, const char *phase, struct json_object **out,
                        struct vf_error *err)
{
    struct json_object *obj = NULL;
    if (vf_objects_get(VF_VM_KIND, vm, &obj, NULL) < 0)
        return vf_error_set(err, -ENOENT, 404, "NotFound", "spec.virtualMachineName",
                            "VirtualMachine \"%s\" not found", vm);
    const struct json_object *st = vf_json_member(obj, "status");
    const char *now = vf_json_string(st, "phase");
    bool deleting = vf_json_member(vf_json_member(obj, "metadata"), "deletionTimestamp") != NULL;
    if (deleting || !vf_json_string(st, "node") || !vf_json_str_eq(now, phase)) {
        vf_error_set(err, -EBUSY, 409, "NotRunning", "",
                     "vm \"%s\" is %s%s; only a %s VM %s", vm,
                     deleting ? "being deleted" : now ? now : "new",
                     vf_json_string(st, "node") ? "" : " on no node", phase,
                     vf_json_str_eq(phase, "Running") ? "can be migrated"
                                                      : "has a migration to update");
        json_object_put(obj);
        return -EBUSY;
    }
    *out = obj;
    return 0;
}

/* Replace each member of migrationState named in fields (a null value removes it). */
static void migration_merge(struct json_object *status, const struct json_object *fields)
{
    struct json_object *ms = vf_json_member(status, "migrationState");
    if (!ms || !json_object_is_type(ms, json_type_object)) {
        ms = json_object_new_object();
        json_object_object_add(status, "migrationState", ms);
    }
    if (!fields || !json_object_is_type(fields, json_type_object))
        return;
    json_object_object_foreach((struct json_object *)fields, k, val) {
        if (!val)
            json_object_object_del(ms, k);
        else
            json_object_object_add(ms, k, vf_json_copy_or_empty(val));
    }
}

static void net_job_done(struct vf_vm_job *j)
{
    if (j->rc < 0)
        vf_log_warn("vm \"%s\": node \"%s\": %s", j->vm, j->node, j->error);
}

/* The VM's DHCP host entries follow a migration: added on the target when it
 * begins (the guest may renew its lease there at any time after), removed
 * from the node it left when it ends.  Which networks: those its domain on
 * `peer` names.  Best effort (logged): the migration does not wait for it.
 * Only VMs started with a NIC (status.macAddress) have entries. */
static void migration_net(const struct json_object *obj, enum vf_vm_job_type type,
                          const char *node, const char *peer)
{
    const struct json_object *st = vf_json_member(obj, "status");
    const char *mac = vf_json_string(st, "macAddress");
    if (!mac || !node || !peer)
        return;
    struct vf_vm_job *j = vf_vm_job_new(type, node, vf_object_name(obj),
                                        vf_json_string(vf_json_member(obj, "metadata"), "uid"));
    if (!j || vf_vm_job_set_net(j, vf_vms_network(), mac, vf_json_string(st, "ipAddress")) < 0) {
        vf_vm_job_free(j);
        return;
    }
    j->detached = true;
    j->done = net_job_done;
    void *pc = vf_cluster_connection(peer);
    if (pc) {
        virConnectRef(pc);
        j->peer = pc;
    }
    int rc = vf_vm_job_submit(j, vf_cluster_connection(node),
                              type == VF_VM_JOB_NET_ADD ? "vm dhcp add" : "vm dhcp remove");
    if (rc < 0)
        vf_log_warn("vm \"%s\": node \"%s\": cannot update its DHCP host entry: %s",
                    vf_object_name(obj), node, strerror(-rc));
}

int vf_vms_migration_target(const char *vm, const char *node_name,
                            const struct json_object *selector, const char *const *exclude,
                            char *target, size_t len, struct vf_error *err)
{
    struct json_object *obj = NULL;
    int rc = migration_vm(vm, "Running", &obj, err);
    if (rc < 0)
        return rc;
    rc = migration_choose(obj, vf_json_string(vf_json_member(obj, "status"), "node"), node_name,
                          selector, exclude, target, len, err);
    json_object_put(obj);
    return rc;
}

int vf_vms_migration_begin(const char *vm, const char *target, const struct json_object *fields,
                           struct vf_error *err)
{
    struct json_object *obj = NULL;
    char chosen[256], msg[VF_VM_MSG_MAX];
    int rc = migration_vm(vm, "Running", &obj, err);
    if (rc < 0)
        return rc;
    const struct json_object *old = vf_json_member(obj, "status");
    const char *source = vf_json_string(old, "node");
    /* The target must still fit now that the caller is about to use it. */
    if ((rc = migration_choose(obj, source, target, NULL, NULL, chosen, sizeof chosen, err)) < 0) {
        json_object_put(obj);
        return rc;
    }
    struct json_object *status = vf_json_copy_or_empty(old);
    json_object_object_del(status, "migrationState");   /* a new migration, a new record */
    migration_merge(status, fields);
    struct json_object *ms = vf_json_member(status, "migrationState");
    json_object_object_add(ms, "sourceNode", json_object_new_string(source));
    json_object_object_add(ms, "targetNode", json_object_new_string(target));
    vf_json_set_string(status, "phase", "Migrating");
    snprintf(msg, sizeof msg, "migrating from node \"%s\" to node \"%s\"", source, target);
    vf_vms_condition_set(status, "Running", "True", "Migrating", msg);
    struct json_object *out = NULL;
    rc = vf_objects_update_status(VF_VM_KIND, vm, status, &out, err);
    json_object_put(status);
    if (rc == 0 && out)
        vf_vms_written(out);
    json_object_put(out);
    if (rc == 0)
        migration_net(obj, VF_VM_JOB_NET_ADD, target, source);
    json_object_put(obj);
    vf_vms_place_forget();   /* the target is reserved from now on */
    if (rc == 0)
        vf_log_info("vm \"%s\": %s", vm, msg);
    return rc;
}

int vf_vms_migration_update(const char *vm, const struct json_object *fields, struct vf_error *err)
{
    struct json_object *obj = NULL;
    int rc = migration_vm(vm, "Migrating", &obj, err);
    if (rc < 0)
        return rc;
    const struct json_object *old = vf_json_member(obj, "status");
    struct json_object *status = vf_json_copy_or_empty(old);
    migration_merge(status, fields);
    struct json_object *out = NULL;
    if (!json_object_equal((struct json_object *)old, status))
        rc = vf_objects_update_status(VF_VM_KIND, vm, status, &out, err);
    json_object_put(status);
    if (rc == 0 && out)
        vf_vms_written(out);
    json_object_put(out);
    json_object_put(obj);
    return rc;
}

int vf_vms_migration_end(const char *vm, const char *node, const struct json_object *fields,
                         struct vf_error *err)
{
    struct json_object *obj = NULL, *cur = NULL;
    char msg[VF_VM_MSG_MAX];
    /* A VM deleted meanwhile still gets its node right: its cleanup needs it. */
    if (vf_objects_get(VF_VM_KIND, vm, &cur, NULL) < 0)
        return vf_error_set(err, -ENOENT, 404, "NotFound", "", "VirtualMachine \"%s\" not found", vm);
    obj = cur;
    const struct json_object *old = vf_json_member(obj, "status");
    const struct json_object *oms = vf_json_member(old, "migrationState");
    if (!vf_json_str_eq(vf_json_string(old, "phase"), "Migrating")) {
        json_object_put(obj);
        return vf_error_set(err, -EBUSY, 409, "NotMigrating", "", "vm \"%s\" is not Migrating", vm);
    }
    const char *source = vf_json_string(oms, "sourceNode");
    const char *target = vf_json_string(oms, "targetNode");
    if (!vf_json_str_eq(node, source) && !vf_json_str_eq(node, target)) {
        json_object_put(obj);
        return vf_error_set(err, -EINVAL, 400, "Invalid", "", "vm \"%s\": node \"%s\" is neither "
                            "the migration's source nor its target", vm, node ? node : "");
    }
    struct json_object *status = vf_json_copy_or_empty(old);
    migration_merge(status, fields);
    vf_json_set_string(status, "node", node);
    vf_json_set_string(status, "phase", "Running");
    snprintf(msg, sizeof msg, "the domain runs on node \"%s\"", node);
    vf_vms_condition_set(status, "Running", "True", "Running", msg);
    struct json_object *out = NULL;
    int rc = vf_objects_update_status(VF_VM_KIND, vm, status, &out, err);
    json_object_put(status);
    if (rc == 0 && out)
        vf_vms_written(out);
    json_object_put(out);
    if (rc == 0) {
        /* The node it did not end on: the source, or the target of a
         * migration that failed. */
        const char *left = vf_json_str_eq(node, target) ? source : target;
        migration_net(obj, VF_VM_JOB_NET_REMOVE, left, node);
    }
    json_object_put(obj);
    if (rc < 0)
        return rc;
    vf_vms_migration_ended(vm, node);
    vf_log_info("vm \"%s\": migration ended; it runs on node \"%s\"", vm, node);
    return 0;
}
