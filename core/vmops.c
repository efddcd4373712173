/* VirtualMachineOperations of types Start, Stop and Restart: the core's
 * executor.  (Migrate and Evict belong to the migrate module: they are left
 * exactly as they are, though one in progress keeps the core's operations on
 * the same VM waiting.)
 *
 * An operation never touches libvirt itself; it changes what the VM
 * controller wants and waits for the VM's phase to follow:
 *  - Start and Stop write status.requestedState on the VM (the durable part,
 *    which runPolicy AlwaysOnUnlessStoppedManually and Manual consult);
 *  - Stop, and Restart until the VM has stopped, tell the controller in
 *    memory to stop the VM (with force: destroy at once) on every pass;
 *    Restart's progress (status.stage Stopping, then Starting) is in the
 *    operation, so a restart of the daemon resumes it where it was.
 * One operation per VM runs at a time, oldest first; each is recorded on the
 * VM's status.lastOperation. */
#include <config.h>
#include "vms_internal.h"
#include "json_util.h"
#include "log.h"
#include "objects.h"
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MSG_MAX 768

static struct vf_store *watch_store;
static struct vf_store_watch *watch;

static bool core_type(const char *type)
{
    return vf_json_str_eq(type, "Start") || vf_json_str_eq(type, "Stop") ||
           vf_json_str_eq(type, "Restart");
}

static bool finished(const char *phase)
{
    return vf_json_str_eq(phase, "Completed") || vf_json_str_eq(phase, "Failed");
}

/* ---- writing ------------------------------------------------------------------ */

struct vm_edit {
    const char *op, *type, *phase, *message;
    const char *requested;      /* requestedState to set ... */
    bool set_requested;         /* ... when true (NULL removes it) */
};

static void vm_edit(struct json_object *status, void *opaque)
{
    const struct vm_edit *e = opaque;
    if (e->set_requested) {
        if (e->requested)
            json_object_object_add(status, "requestedState", json_object_new_string(e->requested));
        else
            json_object_object_del(status, "requestedState");
    }
    struct json_object *last = json_object_new_object();
    json_object_object_add(last, "name", json_object_new_string(e->op));
    json_object_object_add(last, "type", json_object_new_string(e->type));
    json_object_object_add(last, "phase", json_object_new_string(e->phase));
    if (e->message)
        json_object_object_add(last, "message", json_object_new_string(e->message));
    json_object_object_add(status, "lastOperation", last);
}

/* The operation's status: phase, a Completed condition, Restart's stage. */
static void op_write(const struct json_object *op, const char *phase, const char *reason,
                     const char *message, const char *stage)
{
    const char *name = vf_object_name(op);
    const struct json_object *old = vf_json_member(op, "status");
    struct json_object *status = vf_json_copy_or_empty(old);
    json_object_object_add(status, "phase", json_object_new_string(phase));
    if (stage)
        json_object_object_add(status, "stage", json_object_new_string(stage));
    const char *cstatus = vf_json_str_eq(phase, "Completed") ? "True" : "False";
    vf_vms_condition_set(status, "Completed", cstatus, reason, message);
    if (!json_object_equal((struct json_object *)old, status)) {
        struct vf_error err = {0};
        if (vf_objects_update_status(VF_VMOP_KIND, name, status, NULL, &err) < 0)
            vf_log_error("vmop \"%s\": cannot write its status: %s", name, err.message);
    }
    json_object_put(status);
}

/* Ends the operation and records the outcome on its VM. */
static void op_finish(const struct json_object *op, const char *vm, bool ok, const char *reason,
                      const char *message)
{
    const char *name = vf_object_name(op);
    const char *type = vf_json_string(vf_json_member(op, "spec"), "type");
    const char *phase = ok ? "Completed" : "Failed";
    op_write(op, phase, reason, message, NULL);
    struct vm_edit e = {.op = name, .type = type, .phase = phase, .message = message};
    if (vm)
        vf_vms_status_edit(vm, vm_edit, &e);
    if (ok)
        vf_log_info("vmop \"%s\": %s of vm \"%s\" completed", name, type, vm ? vm : "?");
    else
        vf_log_warn("vmop \"%s\": %s of vm \"%s\" failed: %s", name, type, vm ? vm : "?",
                    message);
}

/* ---- reading the VM ---------------------------------------------------------------- */

static const char *policy_of(const struct json_object *vm)
{
    const char *p = vf_json_string(vf_json_member(vm, "spec"), "runPolicy");
    return p ? p : "AlwaysOnUnlessStoppedManually";
}

/* Has the VM's start failed for a reason that waiting will not fix?  The
 * message says why. */
static bool start_refused(const struct json_object *vm, char *why, size_t len)
{
    static const char *const reasons[] = {"Unschedulable", "ClassNotReady",
                                          "InvalidConfiguration", "WaitingForIPAddress",
                                          "StartFailed", "CrashLoop"};
    const struct json_object *status = vf_json_member(vm, "status");
    const char *phase = vf_json_string(status, "phase");
    const struct json_object *c = vf_vms_condition(status, "Running");
    if (!c || !(vf_json_str_eq(phase, "Pending") || vf_json_str_eq(phase, "Degraded")))
        return false;
    const char *reason = vf_json_string(c, "reason");
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++) {
        if (vf_json_str_eq(reason, reasons[i])) {
            const char *message = vf_json_string(c, "message");
            snprintf(why, len, "%s", message ? message : reason);
            return true;
        }
    }
    return false;
}

/* ---- the steps ------------------------------------------------------------------- */

/* Pending -> InProgress (or straight to Failed/Completed). */
static void op_begin(const struct json_object *op, const struct json_object *vm)
{
    const char *name = vf_object_name(op);
    const char *type = vf_json_string(vf_json_member(op, "spec"), "type");
    const char *vm_name = vf_object_name(vm);
    const char *policy = policy_of(vm);
    const char *phase = vf_json_string(vf_json_member(vm, "status"), "phase");
    char msg[MSG_MAX];
    struct vm_edit e = {.op = name, .type = type, .phase = "InProgress"};
    const char *stage = NULL;

    if (vf_json_str_eq(type, "Stop") && !strcmp(policy, "AlwaysOn")) {
        snprintf(msg, sizeof msg, "runPolicy AlwaysOn restarts the VM after any stop; set runPolicy "
                 "to AlwaysOnUnlessStoppedManually, Manual or AlwaysOff to stop it");
        op_finish(op, vm_name, false, "RunPolicyAlwaysOn", msg);
        return;
    }
    if (!vf_json_str_eq(type, "Stop") && !strcmp(policy, "AlwaysOff")) {
        snprintf(msg, sizeof msg, "runPolicy AlwaysOff keeps the VM stopped; change runPolicy to "
                 "start it");
        op_finish(op, vm_name, false, "RunPolicyAlwaysOff", msg);
        return;
    }
    if (vf_json_str_eq(type, "Start")) {
        e.set_requested = true;
        e.requested = !strcmp(policy, "Manual") ? "Running" : NULL;
    } else if (vf_json_str_eq(type, "Stop")) {
        e.set_requested = strcmp(policy, "AlwaysOff") != 0;
        e.requested = "Stopped";
    } else {
        /* A VM that is not running is simply started. */
        bool running = vf_json_str_eq(phase, "Running") || vf_json_str_eq(phase, "Starting") ||
                       vf_json_str_eq(phase, "Stopping");
        stage = running ? "Stopping" : "Starting";
        if (!running) {
            e.set_requested = true;
            e.requested = !strcmp(policy, "Manual") ? "Running" : NULL;
        }
    }
    if (vf_vms_status_edit(vm_name, vm_edit, &e) < 0)
        return;   /* reported; tried again on the next pass */
    snprintf(msg, sizeof msg, "%s of vm \"%s\" in progress", type, vm_name);
    op_write(op, "InProgress", "InProgress", msg, stage);
    vf_log_info("vmop \"%s\": %s of vm \"%s\" started", name, type, vm_name);
}

/* InProgress: see whether the VM got there. */
static void op_advance(const struct json_object *op, const struct json_object *vm)
{
    const char *name = vf_object_name(op);
    const struct json_object *spec = vf_json_member(op, "spec");
    const char *type = vf_json_string(spec, "type");
    struct json_object *f = vf_json_member(spec, "force");
    bool force = f && json_object_get_boolean(f);
    const char *vm_name = vf_object_name(vm);
    const struct json_object *vst = vf_json_member(vm, "status");
    const char *phase = vf_json_string(vst, "phase");
    const char *stage = vf_json_string(vf_json_member(op, "status"), "stage");
    char msg[MSG_MAX], why[MSG_MAX];

    bool stopping = vf_json_str_eq(type, "Stop") ||
                    (vf_json_str_eq(type, "Restart") && !vf_json_str_eq(stage, "Starting"));
    if (stopping) {
        if (vf_json_str_eq(phase, "Stopped")) {
            if (vf_json_str_eq(type, "Stop")) {
                snprintf(msg, sizeof msg, "vm \"%s\" is stopped", vm_name);
                op_finish(op, vm_name, true, "Completed", msg);
                return;
            }
            /* Restart: the stop half is done; start it again. */
            const char *policy = policy_of(vm);
            struct vm_edit e = {.op = name, .type = type, .phase = "InProgress",
                                .set_requested = true,
                                .requested = !strcmp(policy, "Manual") ? "Running" : NULL};
            if (vf_vms_status_edit(vm_name, vm_edit, &e) < 0)
                return;
            snprintf(msg, sizeof msg, "vm \"%s\" stopped; starting it again", vm_name);
            op_write(op, "InProgress", "InProgress", msg, "Starting");
            vf_vms_kick();
            return;
        }
        vf_vms_op_stop(vm_name, force);
        return;
    }
    if (vf_json_str_eq(phase, "Running")) {
        snprintf(msg, sizeof msg, "vm \"%s\" runs on node \"%s\"", vm_name,
                 vf_json_string(vst, "node") ? vf_json_string(vst, "node") : "?");
        op_finish(op, vm_name, true, "Completed", msg);
    } else if (start_refused(vm, why, sizeof why)) {
        op_finish(op, vm_name, false, "StartFailed", why);
    } else if (!strcmp(policy_of(vm), "AlwaysOff")) {
        op_finish(op, vm_name, false, "RunPolicyAlwaysOff",
                  "runPolicy AlwaysOff keeps the VM stopped");
    }
}

/* ---- the pass -------------------------------------------------------------------- */

/* Oldest first by creationTimestamp; within its one-second resolution, by
 * name (the store's order). */
static int by_creation(const void *a, const void *b)
{
    const struct json_object *x = *(const struct json_object *const *)a;
    const struct json_object *y = *(const struct json_object *const *)b;
    const char *tx = vf_json_string(vf_json_member(x, "metadata"), "creationTimestamp");
    const char *ty = vf_json_string(vf_json_member(y, "metadata"), "creationTimestamp");
    int c = strcmp(tx ? tx : "", ty ? ty : "");
    return c ? c : strcmp(vf_object_name(x), vf_object_name(y));
}

void vf_vmops_pass(void)
{
    struct json_object *items = NULL;
    struct vf_error err = {0};
    vf_vms_op_flags_clear();
    if (vf_objects_list(VF_VMOP_KIND, &items, NULL, &err) < 0) {
        vf_log_error("vmops: cannot list VirtualMachineOperations: %s", err.message);
        return;
    }
    size_t n = json_object_array_length(items);
    const struct json_object **ops = calloc(n + 1, sizeof *ops);
    struct json_object *busy = json_object_new_object();   /* VMs with an operation in progress */
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const struct json_object *op = json_object_array_get_idx(items, i);
        const struct json_object *spec = vf_json_member(op, "spec");
        const char *phase = vf_json_string(vf_json_member(op, "status"), "phase");
        const char *vm = vf_json_string(spec, "virtualMachineName");
        if (finished(phase) || !vm || !ops)
            continue;
        if (vf_json_str_eq(phase, "InProgress"))
            json_object_object_add(busy, vm, NULL);
        if (core_type(vf_json_string(spec, "type")) &&
            !vf_json_member(vf_json_member(op, "metadata"), "deletionTimestamp"))
            ops[k++] = op;
    }
    if (ops)
        qsort(ops, k, sizeof *ops, by_creation);
    /* In progress first, so that a pending one sees its VM busy. */
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < k; i++) {
            const struct json_object *op = ops[i];
            const char *phase = vf_json_string(vf_json_member(op, "status"), "phase");
            bool in_progress = vf_json_str_eq(phase, "InProgress");
            if (in_progress != (round == 0))
                continue;
            const char *vm_name = vf_json_string(vf_json_member(op, "spec"), "virtualMachineName");
            char msg[MSG_MAX];
            struct json_object *vm = NULL;
            int rc = vf_objects_get(VF_VM_KIND, vm_name, &vm, &err);
            if (rc == -ENOENT ||
                (vm && vf_json_member(vf_json_member(vm, "metadata"), "deletionTimestamp"))) {
                snprintf(msg, sizeof msg, "VirtualMachine \"%s\" %s", vm_name,
                         vm ? "is being deleted" : "not found");
                op_finish(op, NULL, false, vm ? "VirtualMachineTerminating" : "NotFound", msg);
            } else if (rc < 0) {
                vf_log_error("vmop \"%s\": cannot read vm \"%s\": %s", vf_object_name(op),
                             vm_name, err.message);
            } else if (in_progress) {
                op_advance(op, vm);
            } else if (!json_object_object_get_ex(busy, vm_name, NULL)) {
                json_object_object_add(busy, vm_name, NULL);
                op_begin(op, vm);
                /* Refreshed: the VM just changed. */
                struct json_object *cur = NULL, *fresh = NULL;
                if (vf_objects_get(VF_VMOP_KIND, vf_object_name(op), &cur, &err) == 0 &&
                    vf_json_str_eq(vf_json_string(vf_json_member(cur, "status"), "phase"),
                                   "InProgress") &&
                    vf_objects_get(VF_VM_KIND, vm_name, &fresh, &err) == 0)
                    op_advance(cur, fresh);
                json_object_put(cur);
                json_object_put(fresh);
            } else if (!vf_json_str_eq(phase, "Pending")) {
                snprintf(msg, sizeof msg, "waiting for another operation on vm \"%s\"", vm_name);
                op_write(op, "Pending", "Waiting", msg, NULL);
            }
            json_object_put(vm);
        }
    }
    free(ops);
    json_object_put(busy);
    json_object_put(items);
}

static void watch_cb(void *opaque, const char *kind, enum vf_watch_event type,
                     const struct json_object *obj)
{
    (void)opaque;
    (void)kind;
    (void)type;
    (void)obj;
    vf_vms_kick();
}

int vf_vmops_start(void)
{
    struct vf_error err = {0};
    watch_store = vf_objects_store();
    int rc = vf_store_watch_add(watch_store, VF_VMOP_KIND, 0, watch_cb, NULL, &watch, &err);
    if (rc < 0) {
        vf_log_error("vmops: cannot watch VirtualMachineOperations: %s", err.message);
        watch_store = NULL;
    }
    return rc;
}

void vf_vmops_stop(void)
{
    if (watch)
        vf_store_watch_remove(watch_store, watch);
    watch = NULL;
    watch_store = NULL;
}
