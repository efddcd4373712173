/* Shared between the VM controller's files (vms.c, vm_migration.c, vmops.c,
 * vm_jobs.c): not part of any public interface.  Loop thread only unless
 * noted. */
#ifndef VF_VMS_INTERNAL_H
#define VF_VMS_INTERNAL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>

struct vf_error;            /* include/virtfleet/module.h */
struct vf_placement_node;   /* placement.h */

#define VF_VM_KIND "VirtualMachine"
#define VF_VMOP_KIND "VirtualMachineOperation"
#define VF_VMCLASS_KIND "VirtualMachineClass"
#define VF_VM_UID_MAX 64
#define VF_VM_ERROR_MAX 512
#define VF_VM_MSG_MAX 768           /* a condition's message */

/* ---- vm_jobs.c: blocking libvirt work on workers --------------------------- */

/* What is known of a VM's domain on one node. */
enum vf_dom_state { VF_DOM_UNKNOWN, VF_DOM_ABSENT, VF_DOM_INACTIVE, VF_DOM_ACTIVE };
const char *vf_dom_state_name(enum vf_dom_state s);

enum vf_vm_job_type {
    VF_VM_JOB_SCAN,     /* list a node's domains (and its domain type) */
    VF_VM_JOB_START,    /* define `xml` (when absent or inactive) and start it */
    VF_VM_JOB_STOP,     /* graceful shutdown, or destroy when `force` */
    VF_VM_JOB_CLEANUP,  /* destroy if active, then undefine */
    VF_VM_JOB_PROBE,    /* read the domain's state */
    /* Live migration: add the VM's DHCP host entries on this node (its target)
     * or remove them (the node it left), for the networks its domain on
     * `peer` (else here) is attached to.  Best effort: failures are logged. */
    VF_VM_JOB_NET_ADD,
    VF_VM_JOB_NET_REMOVE,
};

struct vf_vm_domain {               /* one domain a scan found */
    char name[256];
    char uuid[VF_VM_UID_MAX];       /* its libvirt UUID */
    char vm_uid[VF_VM_UID_MAX];     /* the vf:vm metadata uid, or "" when not ours */
    enum vf_dom_state state;
};

struct vf_vm_job;
typedef void (*vf_vm_job_done_fn)(struct vf_vm_job *j);

struct vf_vm_job {
    /* Request (set before submitting). */
    enum vf_vm_job_type type;
    char *node;
    char *vm;                       /* VM name (not for SCAN) */
    char uuid[VF_VM_UID_MAX];       /* the VM's uid = its domain's UUID */
    char *xml;                      /* START */
    bool force;                     /* STOP */
    int grace_ms;                   /* STOP: how long a graceful shutdown may take */
    uint64_t seq;                   /* the caller's: what the result must be checked against */
    uint64_t conn_seq;              /* SCAN: which connection of the node it listed */
    bool detached;                  /* CLEANUP of a stale copy: no VM waits for it */
    /* The VM's network interface (virtualization.libvirtNetwork).  START:
     * when network and ip are set, the DHCP host entry that hands ip to the
     * guest is written on the node before the domain starts.  CLEANUP and
     * NET_*: ip (may be "") finds the VM's entries; network and mac are used
     * only when no domain tells which network it is attached to. */
    char *network;
    char mac[18];
    char ip[64];
    void *peer;                     /* NET_*: another node's connection (a reference) */
    vf_vm_job_done_fn done;         /* on the loop thread; the job is freed after it */

    /* Result. */
    int rc;                         /* 0 or a negative errno with `error` set */
    char error[VF_VM_ERROR_MAX];
    enum vf_dom_state state;        /* the domain's state when the job ended */
    bool shutdown_sent;             /* STOP: asked the guest to shut down; it still runs */
    struct vf_vm_domain *domains;   /* SCAN */
    size_t n_domains;
    char domain_type[8];            /* SCAN: "test", "kvm" or "qemu" */

    /* Private to vm_jobs.c. */
    void *conn;
};

/* Set j's network interface fields (network may be NULL, ip and mac too). */
int vf_vm_job_set_net(struct vf_vm_job *j, const char *network, const char *mac, const char *ip);
/* A new job for node (and vm, which may be NULL for a scan), or NULL. */
struct vf_vm_job *vf_vm_job_new(enum vf_vm_job_type type, const char *node, const char *vm,
                                const char *uuid);
void vf_vm_job_free(struct vf_vm_job *j);
/* Takes j (freed on failure).  conn: the node's virConnectPtr (a reference is
 * taken for the job).  `what` must be a string literal. */
int vf_vm_job_submit(struct vf_vm_job *j, void *conn, const char *what);
/* Forget every job: done() is not called any more; running jobs free
 * themselves on their worker. */
void vf_vm_jobs_drop_all(void);

/* ---- vms.c: for vmops.c ------------------------------------------------------ */

/* vmops.c tells the controller, on every pass, which VMs an operation in
 * progress wants stopped (Stop and the first half of Restart).  In memory:
 * the operations in the store are the durable record. */
void vf_vms_op_flags_clear(void);
void vf_vms_op_stop(const char *vm, bool force);
/* Re-read the VM, let edit() change the controller's own status fields, and
 * write the status when it changed.  -ENOENT when the VM is gone. */
int vf_vms_status_edit(const char *vm, void (*edit)(struct json_object *status, void *opaque),
                       void *opaque);
/* Schedule a reconciliation pass soon (never runs it from inside the caller). */
void vf_vms_kick(void);

/* Set or replace the condition `type` in status.conditions; the transition time
 * only moves when its status changes, so re-applying the same state is no write. */
void vf_vms_condition_set(struct json_object *status, const char *type, const char *cstatus,
                          const char *reason, const char *message);
void vf_vms_condition_remove(struct json_object *status, const char *type);
const struct json_object *vf_vms_condition(const struct json_object *status, const char *type);

/* ---- vms.c: for vm_migration.c ---------------------------------------------- */

/* The nodes placement chooses from, read afresh from the store, each with the
 * VMs that hold its resources (a migrating VM on both nodes), as the
 * controller last saw them (their watch, and vf_vms_written).  They stay
 * valid until vf_vms_place_forget() or the next pass.  0, -EIO or -ENOMEM. */
int vf_vms_place_nodes(const struct vf_placement_node **nodes, size_t *n);
/* Drop placement's view: reservations changed, or the caller is done with it. */
void vf_vms_place_forget(void);
/* obj (the *out of vf_objects_update_status) is what the VM is now: a write
 * of its status outside vms.c's own (a migration's) tells the controller at
 * once, so that placement counts it before the write's watch event arrives. */
void vf_vms_written(const struct json_object *obj);
/* virtualization.libvirtNetwork, or NULL. */
const char *vf_vms_network(void);
/* vm's migration ended with its domain on node (status written): the
 * controller's record follows, VMs waiting for capacity look again (the other
 * node's reservation is free) and vm is reconciled soon. */
void vf_vms_migration_ended(const char *vm, const char *node);

/* ---- vm_migration.c: live migration, for the migrate module (core_services.c)
 * A VM being migrated is in phase Migrating with status.migrationState
 * { sourceNode, targetNode, ...the module's fields }: the controller leaves it
 * alone and placement counts it on both nodes until the migration ends.
 * These are the services vm_migration_target/begin/update/end of module.h,
 * whose comments say what each checks and returns. */
int vf_vms_migration_target(const char *vm, const char *node_name,
                            const struct json_object *selector, const char *const *exclude,
                            char *target, size_t len, struct vf_error *err);
int vf_vms_migration_begin(const char *vm, const char *target, const struct json_object *fields,
                           struct vf_error *err);
int vf_vms_migration_update(const char *vm, const struct json_object *fields, struct vf_error *err);
int vf_vms_migration_end(const char *vm, const char *node, const struct json_object *fields,
                         struct vf_error *err);

/* ---- vmops.c: for vms.c ------------------------------------------------------ */

int vf_vmops_start(void);
void vf_vmops_stop(void);
/* Advance every Start/Stop/Restart operation; called at the start of each pass. */
void vf_vmops_pass(void);
#endif
