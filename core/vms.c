/* The VirtualMachine controller.  It owns, in each VM's status: phase, node,
 * ipAddress, macAddress, class, observedGeneration, lastOperation,
 * requestedState and the conditions ClassReady, IPAddressReady, DisksReady, Migratable, Running,
 * NodeReady and DomainConflict (other controllers' fields are kept: every
 * write re-reads the VM).  It watches VirtualMachines, Nodes and
 * VirtualMachineClasses in the store (and VirtualDisks and
 * ClusterVirtualImages, for VMs waiting for their disks: vm_disks.c), and
 * listens to the cluster for node connections and domain lifecycle events.
 *
 * Level-triggered: each pass compares what the store says (phase, node) with
 * what is known of the domain (from node scans, lifecycle events and the
 * results of jobs) and takes one step.  The durable record is the status:
 * the node a VM is meant to run on is written (phase Starting) before its
 * domain is started, and cleared only after its domain is confirmed gone from
 * that node, so a crash at any point is recovered by looking at that node,
 * and a VM whose node is unreachable is never started anywhere else (after
 * fencing, that is the coldstandby module's call).
 *
 * Stops come in two kinds: those asked for through virtfleet (phase Stopping
 * is written first, so they are recognised after a restart too) and those
 * that were not (a Running VM whose domain stopped), which runPolicy answers;
 * repeated unexpected stops back off (1 s doubling to 5 min, phase Degraded).
 * A stopped VM's domain is undefined: the next start defines it again from
 * the current spec, on whichever node placement then chooses.
 *
 * Live migration is the migrate module's: it asks for a target and marks the
 * VM Migrating through vf_vms_migration_begin() (which reserves the target),
 * and hands it back with vf_vms_migration_end() (those services live in
 * vm_migration.c); in between this controller leaves the VM alone and only
 * counts its reservations on both nodes. */
#include <config.h>
#include "vms.h"
#include "vms_internal.h"
#include "json_util.h"
#include "cluster.h"
#include "domain_xml.h"
#include "vm_disks.h"
#include "ipam.h"
#include "log.h"
#include "loop.h"
#include "objects.h"
#include "placement.h"
#include "quantity.h"
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <libvirt/libvirt.h>

#define FINALIZER "virtfleet.io/vm-cleanup"
#define NODE_KIND "Node"
#define CLASS_KIND VF_VMCLASS_KIND
#define MSG_MAX VF_VM_MSG_MAX

enum {
    GRACE_DEFAULT_S = 60,
    RESTART_BACKOFF_FIRST_MS = 1000,
    RESTART_BACKOFF_MAX_MS = 300000,
    /* A domain that ran this long before stopping was not crash-looping. */
    STABLE_RUN_MS = 600000,
    JOB_RETRY_FIRST_MS = 1000,
    JOB_RETRY_MAX_MS = 60000,
    SCAN_RETRY_MS = 5000,
};

enum want { WANT_KEEP, WANT_RUN, WANT_STOP };

enum action_type { ACT_NONE, ACT_START, ACT_STOP, ACT_CLEANUP, ACT_PROBE, ACT_FINALIZE };

struct action {
    enum action_type type;
    char *xml;          /* ACT_START */
    bool force;         /* ACT_STOP */
    /* ACT_START on a libvirt network: the NIC's MAC and the address its DHCP
     * host entry hands out ("" when the VM has none). */
    bool net;
    char mac[18];
    char ip[64];
};

struct node_rec {
    char *name;
    bool up;            /* its connection is Ready (cluster listener) */
    bool scanned;       /* its domains were listed since it came up */
    bool scan_busy;
    uint64_t conn_seq;  /* which connection: scans of an older one are stale */
    int scan_timer;     /* retry of a failed scan */
    char domain_type[8];
    struct node_rec *next;
};

/* What placement counts of a VM, from the object the controller last saw:
 * kept here so that a pass does not read and parse every VM from the store
 * (that made each create cost O(all VMs)).  Fed by the VM watch and, at once,
 * by the controller's own status writes: a reservation counts before the
 * write's watch event arrives, or two VMs placed in one pass could both take
 * a node's last room. */
struct vm_seen {
    bool known;
    int64_t rv;                 /* metadata.resourceVersion of what was seen, or -1 */
    char *phase, *node;         /* status.phase, status.node */
    char *target;               /* status.migrationState.targetNode */
    int64_t cpu_millis, memory_bytes;   /* as placement counts the spec */
    struct json_object *labels; /* a copy of metadata.labels, or NULL */
};

struct vm_rec {
    char *name;
    char uid[VF_VM_UID_MAX];
    struct vm_seen seen;
    char *node;                 /* status.node as last seen */
    /* What is known of its domain: on obs_node, in state obs, as of obs_seq. */
    char *obs_node;
    enum vf_dom_state obs;
    uint64_t obs_seq;
    char stop_reason[64];       /* from the last stop event: "destroyed", "crashed" ... */
    char *conflict_node;        /* its domain also runs there */
    bool busy;                  /* a job for it is in flight */
    char start_error[VF_VM_ERROR_MAX];
    /* Stopping. */
    bool shutdown_sent, grace_expired;
    int grace_timer;
    /* Restart backoff after unexpected stops. */
    unsigned failures;
    int64_t started_ms, retry_at_ms;
    int retry_timer;
    /* A failed job is not repeated before this. */
    unsigned job_failures;
    int64_t hold_until_ms;
    int hold_timer;
    /* From vmops.c, every pass. */
    bool op_stop, op_force;
    /* Meant to run but unplaced: waits for capacity or an address that
     * another VM may give back. */
    bool waiting;
    struct vm_rec *next;
};

/* What placement needs, gathered once per pass (and again after a VM is
 * placed, since that changes the reservations): the Nodes from the store, the
 * VMs from their records' vm_seen.  vm_items holds references to the names
 * and labels vms[] points to, so that a record changed or freed meanwhile
 * leaves nothing dangling. */
struct place_ctx {
    bool valid;
    struct json_object *node_items, *vm_items;
    struct vf_placement_node *nodes;
    size_t n_nodes;
    struct vf_placement_vm *vms;
};

static struct {
    bool started;
    struct vf_store *store;
    struct vf_store_watch *vm_watch, *node_watch, *class_watch, *disk_watch, *image_watch;
    struct vf_ipam *ipam;
    char *network;              /* virtualization.libvirtNetwork, or NULL */
    struct node_rec *nodes;
    struct vm_rec *vms;
    struct json_object *dirty;  /* names of VMs to reconcile (an object used as a set) */
    bool all_dirty;
    int pass_timer;
    uint64_t seq;               /* orders events, scans and jobs */
    struct place_ctx place;
} C;

static void listener_node_up(void *opaque, const char *node, void *conn);
static void listener_node_down(void *opaque, const char *node);
static void listener_domain_event(void *opaque, const char *node, const char *domain_name,
                                  const unsigned char uuid[16], int event, int detail);
static const struct vf_cluster_listener listener = {
    .node_up = listener_node_up,
    .node_down = listener_node_down,
    .domain_event = listener_domain_event,
};

/* ---- small helpers ---------------------------------------------------------- */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void time_now(char *buf, size_t len)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Replace *dst with a copy of src (NULL clears). */
static void str_set(char **dst, const char *src)
{
    if (vf_json_str_eq(*dst, src))
        return;
    free(*dst);
    *dst = src ? strdup(src) : NULL;
}

const struct json_object *vf_vms_condition(const struct json_object *status, const char *type)
{
    struct json_object *conds = vf_json_member(status, "conditions");
    if (!conds || !json_object_is_type(conds, json_type_array))
        return NULL;
    for (size_t i = 0; i < json_object_array_length(conds); i++) {
        struct json_object *c = json_object_array_get_idx(conds, i);
        if (vf_json_str_eq(vf_json_string(c, "type"), type))
            return c;
    }
    return NULL;
}

void vf_vms_condition_set(struct json_object *status, const char *type, const char *cstatus,
                          const char *reason, const char *message)
{
    struct json_object *conds = vf_json_member(status, "conditions");
    if (!conds || !json_object_is_type(conds, json_type_array)) {
        conds = json_object_new_array();
        json_object_object_add(status, "conditions", conds);
    }
    struct json_object *c = (struct json_object *)vf_vms_condition(status, type);
    char when[32];
    if (!c) {
        c = json_object_new_object();
        json_object_object_add(c, "type", json_object_new_string(type));
        json_object_array_add(conds, c);
    }
    if (!vf_json_str_eq(vf_json_string(c, "status"), cstatus) ||
        !vf_json_string(c, "lastTransitionTime")) {
        time_now(when, sizeof when);
        json_object_object_add(c, "lastTransitionTime", json_object_new_string(when));
    }
    json_object_object_add(c, "status", json_object_new_string(cstatus));
    json_object_object_add(c, "reason", json_object_new_string(reason));
    json_object_object_add(c, "message", json_object_new_string(message ? message : ""));
}

void vf_vms_condition_remove(struct json_object *status, const char *type)
{
    struct json_object *conds = vf_json_member(status, "conditions");
    if (!conds || !json_object_is_type(conds, json_type_array))
        return;
    for (size_t i = 0; i < json_object_array_length(conds); i++) {
        if (vf_json_str_eq(vf_json_string(json_object_array_get_idx(conds, i), "type"), type)) {
            json_object_array_del_idx(conds, i, 1);
            return;
        }
    }
}

/* The delay after the n-th consecutive failure: first, doubling, up to max. */
static int64_t backoff(unsigned n, int64_t first, int64_t max)
{
    int64_t d = first;
    for (unsigned i = 1; i < n && d < max; i++)
        d *= 2;
    return d < max ? d : max;
}

/* ---- records ----------------------------------------------------------------- */

static struct node_rec *node_rec(const char *name)
{
    for (struct node_rec *n = C.nodes; n; n = n->next)
        if (vf_json_str_eq(n->name, name))
            return n;
    return NULL;
}

static struct node_rec *node_rec_get(const char *name)
{
    struct node_rec *n = node_rec(name);
    if (n)
        return n;
    n = calloc(1, sizeof *n);
    if (!n || !(n->name = strdup(name))) {
        free(n);
        return NULL;
    }
    n->next = C.nodes;
    C.nodes = n;
    return n;
}

static struct vm_rec *vm_rec(const char *name)
{
    for (struct vm_rec *v = C.vms; v; v = v->next)
        if (vf_json_str_eq(v->name, name))
            return v;
    return NULL;
}

static struct vm_rec *vm_rec_by_uid(const char *uid)
{
    for (struct vm_rec *v = C.vms; v; v = v->next)
        if (uid && *uid && !strcasecmp(v->uid, uid))
            return v;
    return NULL;
}

static void timer_clear(int *id)
{
    if (*id > 0)
        vf_loop_timer_remove(*id);
    *id = 0;
}

static void seen_clear(struct vm_seen *s)
{
    free(s->phase);
    free(s->node);
    free(s->target);
    json_object_put(s->labels);
    memset(s, 0, sizeof *s);
}

static int64_t rv_of(const struct json_object *obj)
{
    struct json_object *rv = vf_json_member(vf_json_member(obj, "metadata"), "resourceVersion");
    if (!rv)
        return -1;
    if (json_object_is_type(rv, json_type_int))
        return json_object_get_int64(rv);
    char *end;
    long long n = strtoll(json_object_get_string(rv), &end, 10);
    return *end ? -1 : n;
}

/* Replace what placement counts of the VM with obj, unless obj is older than
 * what was seen (the watch event of an earlier write, delivered after a
 * status write of the controller already recorded a newer version). */
static void seen_set(struct vm_rec *v, const struct json_object *obj)
{
    struct vm_seen *s = &v->seen;
    int64_t rv = rv_of(obj);
    if (s->known && rv >= 0 && s->rv >= 0 && rv < s->rv)
        return;
    const struct json_object *st = vf_json_member(obj, "status");
    const struct json_object *spec = vf_json_member(obj, "spec");
    s->known = true;
    s->rv = rv;
    str_set(&s->phase, vf_json_string(st, "phase"));
    str_set(&s->node, vf_json_string(st, "node"));
    str_set(&s->target, vf_json_string(vf_json_member(st, "migrationState"), "targetNode"));
    s->cpu_millis = vf_placement_vm_cpu_millis(spec);
    s->memory_bytes = vf_placement_vm_memory(spec);
    const struct json_object *labels = vf_json_member(vf_json_member(obj, "metadata"), "labels");
    if (!s->labels || !labels || !json_object_equal(s->labels, (struct json_object *)labels)) {
        json_object_put(s->labels);
        s->labels = vf_json_copy(labels);
    }
}

static void vm_rec_free(struct vm_rec *v)
{
    seen_clear(&v->seen);
    timer_clear(&v->grace_timer);
    timer_clear(&v->retry_timer);
    timer_clear(&v->hold_timer);
    free(v->name);
    free(v->node);
    free(v->obs_node);
    free(v->conflict_node);
    free(v);
}

static void vm_rec_drop(const char *name)
{
    for (struct vm_rec **pp = &C.vms; *pp; pp = &(*pp)->next) {
        if (vf_json_str_eq((*pp)->name, name)) {
            struct vm_rec *v = *pp;
            *pp = v->next;
            vm_rec_free(v);
            return;
        }
    }
}

/* The record of the VM object (a VM deleted and created again under the same
 * name is a new VM: its record starts afresh). */
static struct vm_rec *vm_rec_get(const struct json_object *obj)
{
    const char *name = vf_object_name(obj);
    const char *uid = vf_json_string(vf_json_member(obj, "metadata"), "uid");
    if (!name || !uid)
        return NULL;
    struct vm_rec *v = vm_rec(name);
    if (v && strcasecmp(v->uid, uid)) {
        vm_rec_drop(name);
        v = NULL;
    }
    if (!v) {
        v = calloc(1, sizeof *v);
        if (!v || !(v->name = strdup(name))) {
            free(v);
            vf_log_error("vm \"%s\": out of memory", name);
            return NULL;
        }
        snprintf(v->uid, sizeof v->uid, "%s", uid);
        v->next = C.vms;
        C.vms = v;
    }
    str_set(&v->node, vf_json_string(vf_json_member(obj, "status"), "node"));
    seen_set(v, obj);
    return v;
}

static void observe(struct vm_rec *v, const char *node, enum vf_dom_state state, uint64_t seq)
{
    str_set(&v->obs_node, state == VF_DOM_UNKNOWN ? NULL : node);
    v->obs = state;
    v->obs_seq = seq;
}

/* ---- scheduling passes ------------------------------------------------------------ */

static void pass_run(void *opaque);

void vf_vms_kick(void)
{
    if (!C.started || C.pass_timer > 0)
        return;
    int id = vf_loop_timer_add(0, pass_run, NULL);
    if (id < 0)
        vf_log_error("vms: cannot schedule a reconciliation pass: %s", strerror(-id));
    else
        C.pass_timer = id;
}

static void mark_dirty(const char *name)
{
    if (C.dirty && name)
        json_object_object_add(C.dirty, name, NULL);
    vf_vms_kick();
}

static void mark_all_dirty(void)
{
    C.all_dirty = true;
    vf_vms_kick();
}

/* Something was given back (a node's reservation, an address, an
 * anti-affinity constraint): the VMs that wait for one try again on the next
 * pass.  Nothing else would bring them back before a node's status changes. */
static void wake_waiting(void)
{
    for (struct vm_rec *v = C.vms; v; v = v->next)
        if (v->waiting)
            mark_dirty(v->name);
}

static void ip_release(const char *name)
{
    if (C.ipam && vf_ipam_lookup(C.ipam, name)) {
        vf_ipam_release(C.ipam, name);
        wake_waiting();
    }
}

static void kick_timer(void *opaque)
{
    int *id = opaque;
    timer_clear(id);
    mark_all_dirty();
}

/* A one-shot timer stored in *id that marks everything dirty. */
static void timer_arm(int *id, int64_t delay_ms)
{
    timer_clear(id);
    int rc = vf_loop_timer_add((int)(delay_ms > 0 ? delay_ms : 0), kick_timer, id);
    if (rc < 0)
        vf_log_error("vms: cannot start a timer: %s", strerror(-rc));
    else
        *id = rc;
}

/* ---- status ------------------------------------------------------------------------ */

void vf_vms_written(const struct json_object *obj)
{
    const char *uid = vf_json_string(vf_json_member(obj, "metadata"), "uid");
    struct vm_rec *v = vm_rec(vf_object_name(obj));
    if (v && uid && !strcasecmp(v->uid, uid))
        seen_set(v, obj);
    else
        vm_rec_get(obj);   /* a VM new under that name: as its watch event will do */
    C.place.valid = false;
}

static int status_write(const char *name, const struct json_object *old, struct json_object *status)
{
    if (old && json_object_equal((struct json_object *)old, status))
        return 0;
    struct vf_error err = {0};
    struct json_object *out = NULL;
    int rc = vf_objects_update_status(VF_VM_KIND, name, status, &out, &err);
    if (rc < 0 && rc != -ENOENT)
        vf_log_error("vm \"%s\": cannot write its status: %s", name, err.message);
    if (rc == 0 && out)
        vf_vms_written(out);
    json_object_put(out);
    return rc;
}

int vf_vms_status_edit(const char *vm, void (*edit)(struct json_object *status, void *opaque),
                       void *opaque)
{
    struct json_object *obj = NULL;
    struct vf_error err = {0};
    int rc = vf_objects_get(VF_VM_KIND, vm, &obj, &err);
    if (rc < 0)
        return rc;
    struct json_object *old = vf_json_member(obj, "status");
    struct json_object *status = vf_json_copy_or_empty(old);
    edit(status, opaque);
    rc = status_write(vm, old, status);
    json_object_put(status);
    json_object_put(obj);
    return rc;
}

static void set_phase(struct json_object *status, const char *phase)
{
    vf_json_set_string(status, "phase", phase);
}

static void set_running(struct vm_rec *v, struct json_object *status, const char *node)
{
    char msg[MSG_MAX];
    set_phase(status, "Running");
    snprintf(msg, sizeof msg, "the domain runs on node \"%s\"", node);
    vf_vms_condition_set(status, "Running", "True", "Running", msg);
    if (!v->started_ms)
        v->started_ms = mono_ms();
}

/* ---- what the VM should be doing ------------------------------------------------------ */

static const char *run_policy(const struct json_object *spec)
{
    const char *p = vf_json_string(spec, "runPolicy");
    return p ? p : "AlwaysOnUnlessStoppedManually";
}

/* status.requestedState is the durable part of a Start/Stop operation
 * (KubeVirt keeps its stateChangeRequests in status for the same reason). */
static enum want want_of(const struct vm_rec *v, const struct json_object *spec,
                         const struct json_object *status)
{
    const char *policy = run_policy(spec);
    const char *req = vf_json_string(status, "requestedState");
    if (v->op_stop || !strcmp(policy, "AlwaysOff"))
        return WANT_STOP;
    if (!strcmp(policy, "AlwaysOn"))
        return WANT_RUN;
    if (!strcmp(policy, "Manual"))
        return vf_json_str_eq(req, "Running")   ? WANT_RUN
               : vf_json_str_eq(req, "Stopped") ? WANT_STOP
                                                : WANT_KEEP;
    return vf_json_str_eq(req, "Stopped") ? WANT_STOP : WANT_RUN;
}

/* ---- IP addresses ------------------------------------------------------------------------ */

/* Gives the VM the address it asks for, or any; false (with the condition
 * saying why) when it cannot have one. */
static bool ensure_ip(const char *name, const struct json_object *spec, struct json_object *status)
{
    if (!C.ipam) {
        vf_vms_condition_remove(status, "IPAddressReady");
        return true;
    }
    const char *want = vf_json_string(spec, "ipAddress");
    const char *held = vf_ipam_lookup(C.ipam, name);
    struct vf_error err = {0};
    char addr[64], msg[MSG_MAX];
    int rc = 0;
    if (want) {
        if (!vf_json_str_eq(held, want)) {
            ip_release(name);
            rc = vf_ipam_reserve(C.ipam, want, name, &err);
        }
        snprintf(addr, sizeof addr, "%s", want);
    } else if (held) {
        snprintf(addr, sizeof addr, "%s", held);
    } else {
        rc = vf_ipam_allocate(C.ipam, name, addr, sizeof addr, &err);
    }
    if (rc < 0) {
        const char *reason = rc == -EEXIST   ? "AddressInUse"
                             : rc == -ERANGE ? "AddressOutOfRange"
                             : rc == -ENOSPC ? "NoFreeAddress"
                                             : "AddressNotIssued";
        snprintf(msg, sizeof msg, "%s", err.message[0] ? err.message : strerror(-rc));
        const struct json_object *old = vf_vms_condition(status, "IPAddressReady");
        if (!old || !vf_json_str_eq(vf_json_string(old, "message"), msg))
            vf_log_warn("vm \"%s\": no IP address: %s", name, msg);
        vf_vms_condition_set(status, "IPAddressReady", "False", reason, msg);
        vf_json_set_string(status, "ipAddress", NULL);
        return false;
    }
    if (!vf_json_str_eq(vf_json_string(status, "ipAddress"), addr))
        vf_log_info("vm \"%s\": IP address \"%s\"", name, addr);
    vf_json_set_string(status, "ipAddress", addr);
    snprintf(msg, sizeof msg, "address %s issued", addr);
    vf_vms_condition_set(status, "IPAddressReady", "True", "Issued", msg);
    return true;
}

/* ---- the network interface ---------------------------------------------------------------- */

/* With virtualization.libvirtNetwork the domain gets a NIC whose MAC follows
 * from the VM's address (domain_xml.h; from its uid when it has none), shown
 * as status.macAddress, and its node a DHCP host entry for the address
 * (vm_jobs.c).  Settled at each start: a reload changes the network of VMs
 * started afterwards, running VMs keep theirs. */
static void nic_prepare(const struct vm_rec *v, struct json_object *status,
                        struct vf_domain_xml_options *opts, struct action *a)
{
    const char *ip = vf_json_string(status, "ipAddress");
    a->net = C.network != NULL;
    a->mac[0] = a->ip[0] = '\0';
    if (!C.network) {
        vf_json_set_string(status, "macAddress", NULL);
        return;
    }
    if (!ip || vf_domain_mac_from_ip(ip, a->mac) < 0)
        vf_domain_mac_from_uid(v->uid, a->mac);
    else
        snprintf(a->ip, sizeof a->ip, "%s", ip);
    opts->network = C.network;
    opts->mac = a->mac;
    vf_json_set_string(status, "macAddress", a->mac);
}

/* ---- placement --------------------------------------------------------------------------- */

static void place_reset(void)
{
    json_object_put(C.place.node_items);
    json_object_put(C.place.vm_items);
    free(C.place.nodes);
    free(C.place.vms);
    memset(&C.place, 0, sizeof C.place);
}

/* A VM holds its node's resources while its domain may run there. */
static bool reserves(const char *phase)
{
    static const char *const phases[] = {"Starting", "Running", "Migrating", "Stopping"};
    for (size_t i = 0; i < sizeof phases / sizeof phases[0]; i++)
        if (vf_json_str_eq(phase, phases[i]))
            return true;
    return false;
}

static int64_t cpu_millis_of(const struct json_object *v)
{
    if (!v)
        return 0;
    if (json_object_is_type(v, json_type_int))
        return json_object_get_int64(v) * 1000;
    const char *s = json_object_get_string((struct json_object *)v);
    char *end;
    long long n = strtoll(s, &end, 10);
    if (*end == 'm')
        return n;
    return n * 1000;
}

static int64_t memory_of(const struct json_object *v)
{
    int64_t bytes = 0;
    if (!v)
        return 0;
    if (json_object_is_type(v, json_type_int))
        return json_object_get_int64(v);
    if (vf_quantity_parse(json_object_get_string((struct json_object *)v), &bytes) < 0)
        return 0;
    return bytes;
}

/* The VMs that hold some node's resources, by name as the store lists them:
 * placement names the first VM that stands in a VM's way. */
static int by_name(const void *a, const void *b)
{
    return strcmp((*(struct vm_rec *const *)a)->name, (*(struct vm_rec *const *)b)->name);
}

/* A VM holds its node (status.node) while its domain may run there; a VM
 * being migrated also holds its target (status.migrationState.targetNode)
 * until the migration ends: either may be where it runs afterwards. */
static bool holds(const struct vm_seen *s, const char *node)
{
    return (vf_json_str_eq(s->node, node) && reserves(s->phase)) ||
           (vf_json_str_eq(s->phase, "Migrating") && vf_json_str_eq(s->target, node));
}

static int place_build(void)
{
    struct vf_error err = {0};
    if (C.place.valid)
        return 0;
    place_reset();
    if (vf_objects_list(NODE_KIND, &C.place.node_items, NULL, &err) < 0) {
        vf_log_error("vms: cannot read the store for placement: %s", err.message);
        place_reset();
        return -EIO;
    }
    size_t nn = json_object_array_length(C.place.node_items);
    size_t nv = 0;
    for (struct vm_rec *v = C.vms; v; v = v->next)
        if (v->seen.known && reserves(v->seen.phase))   /* Migrating among them */
            nv++;
    struct vm_rec **held = calloc(nv + 1, sizeof *held);
    C.place.nodes = calloc(nn + 1, sizeof *C.place.nodes);
    /* A migrating VM counts on two nodes: at most two entries per VM. */
    C.place.vms = calloc(2 * nv + 1, sizeof *C.place.vms);
    C.place.vm_items = json_object_new_array();
    if (!held || !C.place.nodes || !C.place.vms || !C.place.vm_items) {
        free(held);
        place_reset();
        return -ENOMEM;
    }
    nv = 0;
    for (struct vm_rec *v = C.vms; v; v = v->next)
        if (v->seen.known && reserves(v->seen.phase))   /* Migrating among them */
            held[nv++] = v;
    qsort(held, nv, sizeof *held, by_name);
    /* The VMs grouped by node: each node's slice of vms[] is contiguous. */
    size_t used = 0;
    for (size_t i = 0; i < nn; i++) {
        const struct json_object *n = json_object_array_get_idx(C.place.node_items, i);
        const struct json_object *st = vf_json_member(n, "status");
        const struct json_object *alloc = vf_json_member(st, "allocatable");
        struct vf_placement_node *pn = &C.place.nodes[C.place.n_nodes++];
        const struct node_rec *nr = node_rec(vf_object_name(n));
        struct json_object *unsched = vf_json_member(vf_json_member(n, "spec"), "unschedulable");
        pn->name = vf_object_name(n);
        pn->ready =
            vf_json_str_eq(vf_json_string(st, "phase"), "Ready") && nr && nr->up && nr->scanned;
        pn->unschedulable = unsched && json_object_get_boolean(unsched);
        pn->labels = vf_json_member(vf_json_member(n, "metadata"), "labels");
        pn->cpu_capacity_millis = cpu_millis_of(vf_json_member(alloc, "cpu"));
        pn->memory_capacity_bytes = memory_of(vf_json_member(alloc, "memory"));
        pn->vms = &C.place.vms[used];
        for (size_t k = 0; k < nv; k++) {
            const struct vm_rec *v = held[k];
            if (!holds(&v->seen, pn->name))
                continue;
            /* The view keeps its own references: records may change or go
             * while it is in use. */
            struct json_object *name = json_object_new_string(v->name);
            if (!name) {
                free(held);
                place_reset();
                return -ENOMEM;
            }
            json_object_array_add(C.place.vm_items, name);
            if (v->seen.labels)
                json_object_array_add(C.place.vm_items, json_object_get(v->seen.labels));
            struct vf_placement_vm *pv = &C.place.vms[used++];
            pv->name = json_object_get_string(name);
            pv->labels = v->seen.labels;
            pv->cpu_millis = v->seen.cpu_millis;
            pv->memory_bytes = v->seen.memory_bytes;
            pn->n_vms++;
        }
    }
    free(held);
    C.place.valid = true;
    return 0;
}

int vf_vms_place_nodes(const struct vf_placement_node **nodes, size_t *n)
{
    place_reset();
    int rc = place_build();
    *nodes = C.place.nodes;
    *n = C.place.n_nodes;
    return rc;
}

void vf_vms_place_forget(void)
{
    place_reset();
}

static bool all_up_nodes_scanned(void)
{
    for (struct node_rec *n = C.nodes; n; n = n->next)
        if (n->up && !n->scanned)
            return false;
    return true;
}

/* The VM's disks (spec.blockDeviceRefs, see vm_disks.h).  false: it waits,
 * with DisksReady False and the Running condition saying why.  true: *disks
 * filled (vf_vm_disks_free), DisksReady True, and Migratable saying whether
 * moving the VM copies its storage (BlockMigration: a disk is in a pool only
 * its node sees) or not.  A VM without disks carries neither condition. */
static bool disks_resolve(struct vm_rec *v, const struct json_object *obj,
                          struct json_object *status, struct vf_vm_disks *disks)
{
    char reason[64], msg[MSG_MAX];
    int rc = vf_vm_disks_resolve(obj, disks, reason, sizeof reason, msg, sizeof msg);
    if (rc < 0) {
        const struct json_object *old = vf_vms_condition(status, "DisksReady");
        if (!old || !vf_json_str_eq(vf_json_string(old, "message"), msg))
            vf_log_info("vm \"%s\": pending: %s", v->name, msg);
        vf_vms_condition_set(status, "DisksReady", "False", reason, msg);
        vf_vms_condition_set(status, "Running", "False",
                             rc == -EINVAL ? "InvalidConfiguration" : "DisksNotReady", msg);
        return false;
    }
    if (disks->n == 0) {
        vf_vms_condition_remove(status, "DisksReady");
        vf_vms_condition_remove(status, "Migratable");
        return true;
    }
    snprintf(msg, sizeof msg, "%zu disk%s ready", disks->n, disks->n == 1 ? "" : "s");
    vf_vms_condition_set(status, "DisksReady", "True", "Ready", msg);
    if (disks->local) {
        snprintf(msg, sizeof msg, "a disk is in a storage pool only node \"%s\" sees: moving "
                 "the VM copies it (BlockMigration)", disks->node);
        vf_vms_condition_set(status, "Migratable", "True", "NonSharedDisks", msg);
    } else {
        vf_vms_condition_set(status, "Migratable", "True", "SharedStorage",
                             "every disk is on shared storage: moving the VM copies memory only "
                             "(LiveMigration)");
    }
    return true;
}

/* Choose a node, build the domain, and set phase Starting there.  Returns
 * ACT_START with the XML, or ACT_NONE with the conditions saying why not. */
static struct action place(struct vm_rec *v, const struct json_object *obj,
                           struct json_object *status)
{
    struct action a = {.type = ACT_NONE};
    const struct json_object *spec = vf_json_member(obj, "spec");
    const char *class_name = vf_json_string(spec, "virtualMachineClassName");
    char msg[MSG_MAX], why[MSG_MAX] = "";
    struct json_object *vmclass = NULL;
    struct vf_error err = {0};

    set_phase(status, "Pending");
    if (!class_name)
        class_name = "generic";
    if (vf_objects_get(CLASS_KIND, class_name, &vmclass, &err) < 0) {
        snprintf(msg, sizeof msg, "VirtualMachineClass \"%s\" not found", class_name);
        vf_vms_condition_set(status, "ClassReady", "False", "NotFound", msg);
        vf_vms_condition_set(status, "Running", "False", "ClassNotReady", msg);
        return a;
    }
    const struct json_object *cst = vf_json_member(vmclass, "status");
    const char *cphase = vf_json_string(cst, "phase");
    if (cphase && strcmp(cphase, "Ready")) {
        const struct json_object *cc = vf_vms_condition(cst, "Ready");
        snprintf(msg, sizeof msg, "VirtualMachineClass \"%s\" is %s%s%s", class_name, cphase,
                 cc && vf_json_string(cc, "message") ? ": " : "",
                 cc ? vf_json_string(cc, "message") : "");
        vf_vms_condition_set(status, "ClassReady", "False", "NotReady", msg);
        vf_vms_condition_set(status, "Running", "False", "ClassNotReady", msg);
        json_object_put(vmclass);
        return a;
    }
    snprintf(msg, sizeof msg, "VirtualMachineClass \"%s\" is ready", class_name);
    vf_vms_condition_set(status, "ClassReady", "True", "Ready", msg);

    struct vf_vm_disks disks;
    if (!disks_resolve(v, obj, status, &disks)) {
        json_object_put(vmclass);
        return a;
    }
    if (place_build() < 0) {
        vf_vm_disks_free(&disks);
        json_object_put(vmclass);
        return a;
    }
    struct vf_placement_request req = {
        .vm_name = v->name,
        .vm_labels = vf_json_member(vf_json_member(obj, "metadata"), "labels"),
        .cpu_millis = vf_placement_vm_cpu_millis(spec),
        .memory_bytes = vf_placement_vm_memory(spec),
        .class_selector = vf_json_member(vf_json_member(vmclass, "spec"), "nodeSelector"),
        .vm_node_selector = vf_json_member(spec, "nodeSelector"),
        .affinity = vf_json_member(spec, "affinity"),
        .only_node = disks.node[0] ? disks.node : NULL,
        .image_nodes = (const char *const *)disks.image_nodes,
    };
    int idx = vf_placement_choose(&req, C.place.nodes, C.place.n_nodes, why, sizeof why);
    if (idx < 0) {
        const struct json_object *old = vf_vms_condition(status, "Running");
        if (!old || !vf_json_str_eq(vf_json_string(old, "message"), why))
            vf_log_info("vm \"%s\": pending: %s", v->name, why);
        vf_vms_condition_set(status, "Running", "False", "Unschedulable", why);
        vf_vm_disks_free(&disks);
        json_object_put(vmclass);
        return a;
    }
    const char *node = C.place.nodes[idx].name;
    const struct node_rec *nr = node_rec(node);
    struct vf_domain_xml_options opts = {
        .domain_type = nr && nr->domain_type[0] ? nr->domain_type : "qemu",
        .baseline_cpu_xml = vf_json_string(cst, "baselineCpuXml"),
        .disks = disks.disks,
        .n_disks = disks.n,
    };
    nic_prepare(v, status, &opts, &a);
    char *xml = NULL;
    int rc = vf_domain_xml(obj, vmclass, &opts, &xml, &err);
    vf_vm_disks_free(&disks);
    if (rc == -EAGAIN) {
        /* A Discovery class whose CPU is not computed yet. */
        vf_vms_condition_set(status, "ClassReady", "False", "NotReady", err.message);
        vf_vms_condition_set(status, "Running", "False", "ClassNotReady", err.message);
        json_object_put(vmclass);
        return a;
    }
    if (rc < 0) {
        snprintf(msg, sizeof msg, "cannot build the domain: %s", err.message);
        const struct json_object *old = vf_vms_condition(status, "Running");
        if (!old || !vf_json_str_eq(vf_json_string(old, "message"), msg))
            vf_log_error("vm \"%s\": %s", v->name, msg);
        vf_vms_condition_set(status, "Running", "False", "InvalidConfiguration", msg);
        json_object_put(vmclass);
        return a;
    }
    json_object_put(vmclass);
    vf_json_set_string(status, "node", node);
    set_phase(status, "Starting");
    snprintf(msg, sizeof msg, "starting on node \"%s\"", node);
    vf_vms_condition_set(status, "Running", "False", "Starting", msg);
    C.place.valid = false;   /* its reservation counts from now on */
    a.type = ACT_START;
    a.xml = xml;
    return a;
}

/* Rebuild the domain XML of a VM already assigned to a node (a start that
 * must be repeated, e.g. after a restart of the daemon). */
static struct action restart_on_node(struct vm_rec *v, const struct json_object *obj,
                                     struct json_object *status, const char *node)
{
    struct action a = {.type = ACT_NONE};
    const struct json_object *spec = vf_json_member(obj, "spec");
    const char *class_name = vf_json_string(spec, "virtualMachineClassName");
    struct json_object *vmclass = NULL;
    struct vf_error err = {0};
    char msg[MSG_MAX];
    if (vf_objects_get(CLASS_KIND, class_name ? class_name : "generic", &vmclass, &err) < 0) {
        snprintf(v->start_error, sizeof v->start_error, "%s", err.message);
        return a;
    }
    struct vf_vm_disks disks;
    if (!disks_resolve(v, obj, status, &disks)) {
        const struct json_object *dc = vf_vms_condition(status, "DisksReady");
        snprintf(v->start_error, sizeof v->start_error, "%s",
                 dc ? vf_json_string(dc, "message") : "");
        json_object_put(vmclass);
        return a;
    }
    if (disks.node[0] && strcmp(disks.node, node)) {
        /* Placed before its disk moved: start over where the disk is. */
        snprintf(v->start_error, sizeof v->start_error, "its local disks are on node \"%s\"",
                 disks.node);
        vf_vm_disks_free(&disks);
        json_object_put(vmclass);
        return a;
    }
    if (!vf_vm_disks_on_node(&disks, node)) {
        snprintf(v->start_error, sizeof v->start_error,
                 "node \"%s\" holds no copy of its CD-ROM image", node);
        vf_vm_disks_free(&disks);
        json_object_put(vmclass);
        return a;
    }
    const struct node_rec *nr = node_rec(node);
    struct vf_domain_xml_options opts = {
        .domain_type = nr && nr->domain_type[0] ? nr->domain_type : "qemu",
        .baseline_cpu_xml = vf_json_string(vf_json_member(vmclass, "status"), "baselineCpuXml"),
        .disks = disks.disks,
        .n_disks = disks.n,
    };
    nic_prepare(v, status, &opts, &a);
    char *xml = NULL;
    int xrc = vf_domain_xml(obj, vmclass, &opts, &xml, &err);
    vf_vm_disks_free(&disks);
    if (xrc < 0) {
        snprintf(v->start_error, sizeof v->start_error, "cannot build the domain: %s",
                 err.message);
    } else {
        snprintf(msg, sizeof msg, "starting on node \"%s\"", node);
        vf_vms_condition_set(status, "Running", "False", "Starting", msg);
        a.type = ACT_START;
        a.xml = xml;
    }
    json_object_put(vmclass);
    return a;
}

/* ---- the steps ------------------------------------------------------------------------- */

/* The domain stopped without virtfleet asking: runPolicy decides. */
static void unexpected_stop(struct vm_rec *v, const struct json_object *spec,
                            struct json_object *status, const char *node, enum want want)
{
    char msg[MSG_MAX], how[96];
    int64_t now = mono_ms();
    snprintf(how, sizeof how, "%s", v->stop_reason[0] ? v->stop_reason : "stopped");
    if (v->obs == VF_DOM_ABSENT)
        snprintf(how, sizeof how, "vanished");
    if (v->started_ms && now - v->started_ms > STABLE_RUN_MS)
        v->failures = 0;
    v->started_ms = 0;
    /* Manual never restarts on its own, whatever started it last. */
    if (!strcmp(run_policy(spec), "Manual") && want == WANT_RUN)
        want = WANT_KEEP;
    if (want == WANT_RUN) {
        v->failures++;
        if (v->failures == 1) {
            v->retry_at_ms = 0;
            snprintf(msg, sizeof msg, "the domain %s on node \"%s\" unexpectedly; restarting (runPolicy %s)",
                     how, node, run_policy(spec));
            set_phase(status, "Pending");
            vf_vms_condition_set(status, "Running", "False", "Restarting", msg);
            vf_log_warn("vm \"%s\": %s", v->name, msg);
        } else {
            int64_t delay = backoff(v->failures - 1, RESTART_BACKOFF_FIRST_MS, RESTART_BACKOFF_MAX_MS);
            v->retry_at_ms = now + delay;
            snprintf(msg, sizeof msg, "the domain %s on node \"%s\" unexpectedly, %u times in a row; "
                     "restarting in %lld s (runPolicy %s)", how, node, v->failures,
                     (long long)(delay / 1000), run_policy(spec));
            set_phase(status, "Degraded");
            vf_vms_condition_set(status, "Running", "False", "CrashLoop", msg);
            vf_log_warn("vm \"%s\": %s", v->name, msg);
        }
        return;
    }
    snprintf(msg, sizeof msg, "the domain %s on node \"%s\"; runPolicy %s does not restart it", how,
             node, run_policy(spec));
    set_phase(status, "Stopped");
    vf_vms_condition_set(status, "Running", "False", "Stopped", msg);
    /* A Manual VM's start request is used up: it stays stopped. */
    if (!strcmp(run_policy(spec), "Manual"))
        vf_json_set_string(status, "requestedState", NULL);
    vf_log_info("vm \"%s\": %s", v->name, msg);
}

/* The VM is assigned to a node: follow its domain there. */
static struct action step_on_node(struct vm_rec *v, const struct json_object *obj,
                                  struct json_object *status, const char *node, enum want want,
                                  bool deleting)
{
    struct action a = {.type = ACT_NONE};
    const struct json_object *spec = vf_json_member(obj, "spec");
    const char *phase = vf_json_string(status, "phase");
    const struct node_rec *nr = node_rec(node);
    char msg[MSG_MAX];

    if (deleting)
        set_phase(status, "Terminating");
    if (!nr || !nr->up) {
        snprintf(msg, sizeof msg, "node \"%s\" is not Ready; the VM stays assigned to it (its "
                 "domain may still run there) until the node is back or fenced", node);
        vf_vms_condition_set(status, "NodeReady", "False", "NodeNotReady", msg);
        return a;
    }
    vf_vms_condition_remove(status, "NodeReady");
    if (!nr->scanned || v->busy || mono_ms() < v->hold_until_ms)
        return a;
    if (v->obs == VF_DOM_UNKNOWN || !vf_json_str_eq(v->obs_node, node)) {
        a.type = ACT_PROBE;
        return a;
    }
    enum vf_dom_state obs = v->obs;
    bool gone = obs == VF_DOM_ABSENT;

    if (deleting) {
        vf_vms_condition_set(status, "Running", "False", "Terminating", "the VM is being deleted");
        if (gone)
            vf_json_set_string(status, "node", NULL);
        else
            a.type = ACT_CLEANUP;
        return a;
    }
    if (!vf_json_str_eq(phase, "Stopping")) {
        v->shutdown_sent = v->grace_expired = false;
        timer_clear(&v->grace_timer);
    }
    if (vf_json_str_eq(phase, "Starting")) {
        if (obs == VF_DOM_ACTIVE) {
            set_running(v, status, node);
            vf_log_info("vm \"%s\": running on node \"%s\"", v->name, node);
        } else if (v->start_error[0]) {
            v->failures++;
            int64_t delay = backoff(v->failures, RESTART_BACKOFF_FIRST_MS, RESTART_BACKOFF_MAX_MS);
            v->retry_at_ms = mono_ms() + delay;
            snprintf(msg, sizeof msg, "node \"%s\": %s; retrying in %lld s", node, v->start_error,
                     (long long)(delay / 1000));
            set_phase(status, "Degraded");
            vf_vms_condition_set(status, "Running", "False", "StartFailed", msg);
            v->start_error[0] = '\0';
            a.type = gone ? ACT_NONE : ACT_CLEANUP;
            if (gone)
                vf_json_set_string(status, "node", NULL);
        } else if (want == WANT_STOP) {
            set_phase(status, "Stopped");
            vf_vms_condition_set(status, "Running", "False", "Stopped", "stopped before it started");
            a.type = gone ? ACT_NONE : ACT_CLEANUP;
            if (gone)
                vf_json_set_string(status, "node", NULL);
        } else {
            a = restart_on_node(v, obj, status, node);
        }
        return a;
    }
    if (vf_json_str_eq(phase, "Stopping")) {
        if (obs == VF_DOM_ACTIVE) {
            if (v->op_force || v->grace_expired) {
                a.type = ACT_STOP;
                a.force = true;
            } else if (!v->shutdown_sent) {
                a.type = ACT_STOP;
            }
            return a;
        }
        set_phase(status, "Stopped");
        vf_vms_condition_set(status, "Running", "False", "Stopped",
                             "stopped through virtfleet");
        vf_log_info("vm \"%s\": stopped on node \"%s\"", v->name, node);
        v->started_ms = 0;
        if (gone)
            vf_json_set_string(status, "node", NULL);
        else
            a.type = ACT_CLEANUP;
        return a;
    }
    if (obs == VF_DOM_ACTIVE) {
        if (!vf_json_str_eq(phase, "Running"))
            vf_log_info("vm \"%s\": its domain runs on node \"%s\"; phase Running", v->name, node);
        set_running(v, status, node);
        if (want == WANT_STOP) {
            set_phase(status, "Stopping");
            vf_vms_condition_set(status, "Running", "False", "Stopping",
                                 v->op_stop ? "stopping: requested by an operation"
                                            : "stopping: runPolicy or a Stop operation");
            a.type = ACT_STOP;
            a.force = v->op_force;
        }
        return a;
    }
    if (vf_json_str_eq(phase, "Running"))
        unexpected_stop(v, spec, status, node, want);
    /* Not running and not meant to be here any more: the definition goes,
     * then the node is let go. */
    if (gone)
        vf_json_set_string(status, "node", NULL);
    else
        a.type = ACT_CLEANUP;
    return a;
}

static bool has_finalizer(const struct json_object *meta)
{
    return vf_json_array_has(vf_json_member(meta, "finalizers"), FINALIZER);
}

/* Adds (add) or removes our finalizer; the resulting watch event brings the
 * VM back for its next step. */
static int finalizer_update(const struct json_object *obj, bool add)
{
    const char *name = vf_object_name(obj);
    struct json_object *copy = vf_json_copy_or_empty(obj);
    struct json_object *meta = vf_json_member(copy, "metadata");
    struct json_object *f = vf_json_member(meta, "finalizers");
    struct json_object *next = json_object_new_array();
    if (f && json_object_is_type(f, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(f); i++) {
            struct json_object *e = json_object_array_get_idx(f, i);
            if (!vf_json_str_eq(json_object_get_string(e), FINALIZER))
                json_object_array_add(next, json_object_get(e));
        }
    }
    if (add)
        json_object_array_add(next, json_object_new_string(FINALIZER));
    json_object_object_add(meta, "finalizers", next);
    json_object_object_del(copy, "status");
    struct vf_error err = {0};
    int rc = vf_objects_update(VF_VM_KIND, copy, NULL, &err);
    json_object_put(copy);
    if (rc < 0 && rc != -ENOENT && rc != -ESTALE)
        vf_log_error("vm \"%s\": cannot %s its finalizer: %s", name, add ? "add" : "remove",
                     err.message);
    return rc;
}

/* The VM has no node: adopt a domain found running, or place and start it,
 * or keep it stopped. */
static struct action step_unplaced(struct vm_rec *v, const struct json_object *obj,
                                   struct json_object *status, enum want want, bool deleting,
                                   bool ip_ok)
{
    struct action a = {.type = ACT_NONE};
    const struct json_object *spec = vf_json_member(obj, "spec");
    const char *phase = vf_json_string(status, "phase");
    char msg[MSG_MAX];

    vf_vms_condition_remove(status, "NodeReady");
    if (deleting) {
        set_phase(status, "Terminating");
        vf_vms_condition_set(status, "Running", "False", "Terminating", "the VM is being deleted");
        a.type = ACT_FINALIZE;
        return a;
    }
    if (v->obs == VF_DOM_ACTIVE && v->obs_node && !v->conflict_node) {
        /* Its domain runs on a node the store did not record (a start whose
         * status write was lost, or a domain started by hand): adopt it. */
        vf_log_warn("vm \"%s\": its domain runs on node \"%s\", which the store did not record; "
                    "adopted", v->name, v->obs_node);
        vf_json_set_string(status, "node", v->obs_node);
        set_running(v, status, v->obs_node);
        return a;
    }
    if (want != WANT_RUN) {
        v->failures = 0;
        v->retry_at_ms = 0;
        timer_clear(&v->retry_timer);
        if (!vf_json_str_eq(phase, "Stopped") ||
            !vf_vms_condition(status, "Running")) {
            const char *policy = run_policy(spec);
            if (want == WANT_STOP && !strcmp(policy, "AlwaysOff"))
                snprintf(msg, sizeof msg, "runPolicy AlwaysOff keeps the VM stopped");
            else if (want == WANT_STOP)
                snprintf(msg, sizeof msg, "stopped through virtfleet; a Start operation starts it");
            else
                snprintf(msg, sizeof msg, "runPolicy Manual: a Start operation starts the VM");
            set_phase(status, "Stopped");
            vf_vms_condition_set(status, "Running", "False", "Stopped", msg);
        }
        return a;
    }
    if (!ip_ok) {
        set_phase(status, "Pending");
        vf_vms_condition_set(status, "Running", "False", "WaitingForIPAddress",
                             "the VM cannot have the IP address it needs; see IPAddressReady");
        return a;
    }
    if (v->retry_at_ms > mono_ms()) {
        if (v->retry_timer <= 0)
            timer_arm(&v->retry_timer, v->retry_at_ms - mono_ms());
        return a;
    }
    if (v->conflict_node) {
        set_phase(status, "Pending");
        return a;
    }
    if (!all_up_nodes_scanned()) {
        /* A node not yet listed may run this VM's domain. */
        if (!phase)
            set_phase(status, "Pending");
        return a;
    }
    return place(v, obj, status);
}

static void action_run(struct vm_rec *v, const struct json_object *obj, struct action *a);

static void reconcile(const struct json_object *obj)
{
    const char *name = vf_object_name(obj);
    const struct json_object *meta = vf_json_member(obj, "metadata");
    const struct json_object *spec = vf_json_member(obj, "spec");
    const struct json_object *old = vf_json_member(obj, "status");
    bool deleting = vf_json_member(meta, "deletionTimestamp") != NULL;
    struct vm_rec *v = vm_rec_get(obj);
    if (!v)
        return;
    if (!has_finalizer(meta)) {
        if (!deleting)
            finalizer_update(obj, true);
        return;
    }
    const char *phase = vf_json_string(old, "phase");
    if (vf_json_str_eq(phase, "Migrating") && !deleting)
        return;   /* the migrate module's until it ends */

    struct json_object *status = vf_json_copy_or_empty(old);
    struct json_object *gen = vf_json_member(meta, "generation");
    if (gen)
        json_object_object_add(status, "observedGeneration", json_object_get(gen));
    const char *class_name = vf_json_string(spec, "virtualMachineClassName");
    vf_json_set_string(status, "class", class_name ? class_name : "generic");
    bool ip_ok = deleting || ensure_ip(name, spec, status);
    if (v->conflict_node) {
        char msg[MSG_MAX];
        snprintf(msg, sizeof msg, "a domain of this VM runs on node \"%s\" although the VM is "
                 "assigned to %s%s%s; it is left alone: stop it there by hand", v->conflict_node,
                 v->node ? "node \"" : "no node", v->node ? v->node : "", v->node ? "\"" : "");
        vf_vms_condition_set(status, "DomainConflict", "True", "RunningElsewhere", msg);
    } else {
        vf_vms_condition_remove(status, "DomainConflict");
    }
    enum want want = want_of(v, spec, status);
    const char *node = vf_json_string(status, "node");
    struct action a = node ? step_on_node(v, obj, status, node, want, deleting)
                           : step_unplaced(v, obj, status, want, deleting, ip_ok);
    v->waiting =
        !deleting && want == WANT_RUN && !vf_json_string(status, "node") && a.type == ACT_NONE;
    /* The status first: a start happens only once its node is on record. */
    int rc = status_write(name, old, status);
    str_set(&v->node, vf_json_string(status, "node"));
    if (rc == 0 && vf_json_string(old, "node") && !vf_json_string(status, "node"))
        wake_waiting();   /* its node's reservation is free again */
    if (rc == 0)
        action_run(v, obj, &a);
    else if (a.type == ACT_START)
        C.place.valid = false;
    free(a.xml);
    json_object_put(status);
}

/* ---- jobs --------------------------------------------------------------------------- */

static void job_done(struct vf_vm_job *j);

static int grace_ms_of(const struct json_object *spec)
{
    struct json_object *g = vf_json_member(spec, "terminationGracePeriodSeconds");
    int64_t s = g ? json_object_get_int64(g) : GRACE_DEFAULT_S;
    return (int)(s < 0 ? 0 : s) * 1000;
}

/* net: for START on a libvirt network (its entry), NULL otherwise; ip: the
 * VM's address, which CLEANUP's removal of its entries matches. */
static void submit(struct vm_rec *v, enum vf_vm_job_type type, const char *node, char *xml,
                   bool force, int grace_ms, const struct action *net, const char *ip)
{
    static const char *const what[] = {"vm scan", "vm start", "vm stop", "vm cleanup",
                                       "vm probe"};
    struct vf_vm_job *j = vf_vm_job_new(type, node, v->name, v->uid);
    if (j && vf_vm_job_set_net(j, net && net->net ? C.network : NULL, net ? net->mac : NULL,
                               net ? net->ip : ip) < 0) {
        vf_vm_job_free(j);
        j = NULL;
    }
    if (!j) {
        free(xml);
        vf_log_error("vm \"%s\": out of memory", v->name);
        return;
    }
    j->xml = xml;
    j->force = force;
    j->seq = ++C.seq;
    j->done = job_done;
    j->grace_ms = grace_ms;
    int rc = vf_vm_job_submit(j, vf_cluster_connection(node), what[type]);
    if (rc < 0) {
        vf_log_error("vm \"%s\": node \"%s\": cannot submit the %s: %s", v->name, node, what[type],
                     strerror(-rc));
        return;
    }
    v->busy = true;
}

static void action_run(struct vm_rec *v, const struct json_object *obj, struct action *a)
{
    const char *node = v->node;
    switch (a->type) {
    case ACT_NONE:
        return;
    case ACT_START:
        v->start_error[0] = '\0';
        v->stop_reason[0] = '\0';
        submit(v, VF_VM_JOB_START, node, a->xml, false, 0, a, NULL);
        a->xml = NULL;
        return;
    case ACT_STOP:
        submit(v, VF_VM_JOB_STOP, node, NULL, a->force, grace_ms_of(vf_json_member(obj, "spec")),
               NULL, NULL);
        return;
    case ACT_CLEANUP:
        submit(v, VF_VM_JOB_CLEANUP, node, NULL, true, 0, NULL,
               vf_json_string(vf_json_member(obj, "status"), "ipAddress"));
        return;
    case ACT_PROBE:
        submit(v, VF_VM_JOB_PROBE, node, NULL, false, 0, NULL, NULL);
        return;
    case ACT_FINALIZE:
        ip_release(v->name);
        /* The update deletes the VM, and its watch event frees v. */
        if (finalizer_update(obj, false) == 0)
            vf_log_info("vm \"%s\": cleaned up; deleted", vf_object_name(obj));
        return;
    }
}

static void grace_expired(void *opaque)
{
    struct vm_rec *v = opaque;
    timer_clear(&v->grace_timer);
    v->grace_expired = true;
    vf_log_info("vm \"%s\": still running after its termination grace period; destroying it",
                v->name);
    mark_dirty(v->name);
}

static void job_done(struct vf_vm_job *j)
{
    struct vm_rec *v = vm_rec(j->vm);
    if (!v || strcasecmp(v->uid, j->uuid))
        return;   /* the VM is gone (or is another one now) */
    v->busy = false;
    /* An event that arrived while the job ran is newer than its result. */
    if (v->obs_seq <= j->seq && j->state != VF_DOM_UNKNOWN)
        observe(v, j->node, j->state, j->seq);
    if (j->rc < 0) {
        v->job_failures++;
        int64_t delay = backoff(v->job_failures, JOB_RETRY_FIRST_MS, JOB_RETRY_MAX_MS);
        v->hold_until_ms = mono_ms() + delay;
        timer_arm(&v->hold_timer, delay);
        vf_log_error("vm \"%s\": node \"%s\": %s", v->name, j->node, j->error);
        if (j->type == VF_VM_JOB_START)
            snprintf(v->start_error, sizeof v->start_error, "%s", j->error);
    } else {
        v->job_failures = 0;
        v->hold_until_ms = 0;
    }
    if (j->type == VF_VM_JOB_START && j->rc == 0)
        v->started_ms = mono_ms();
    if (j->type == VF_VM_JOB_STOP && j->rc == 0) {
        v->shutdown_sent = j->shutdown_sent;
        if (j->shutdown_sent && v->grace_timer <= 0) {
            int id = vf_loop_timer_add(j->grace_ms, grace_expired, v);
            if (id > 0)
                v->grace_timer = id;
        }
    }
    mark_dirty(v->name);
}

/* ---- nodes and domain events ----------------------------------------------------------- */

static void scan_submit(struct node_rec *nr);

static void scan_retry(void *opaque)
{
    struct node_rec *nr = opaque;
    timer_clear(&nr->scan_timer);
    if (nr->up && !nr->scanned && !nr->scan_busy)
        scan_submit(nr);
}

static void stale_cleanup(const char *node, const struct vf_vm_domain *d, const char *vm)
{
    struct vf_vm_job *j = vf_vm_job_new(VF_VM_JOB_CLEANUP, node, vm, d->uuid);
    if (!j || vf_vm_job_set_net(j, NULL, NULL, C.ipam ? vf_ipam_lookup(C.ipam, vm) : NULL) < 0) {
        vf_vm_job_free(j);
        return;
    }
    j->detached = true;
    vf_log_info("vm \"%s\": node \"%s\" still has a shut-off definition of it (domain \"%s\"); "
                "undefining it", vm, node, d->name);
    vf_vm_job_submit(j, vf_cluster_connection(node), "vm cleanup");
}

static void scan_done(struct vf_vm_job *j)
{
    struct node_rec *nr = node_rec(j->node);
    if (!nr || nr->conn_seq != j->conn_seq)
        return;   /* listed an older connection */
    nr->scan_busy = false;
    if (!nr->up)
        return;
    if (j->rc < 0) {
        vf_log_warn("vms: node \"%s\": %s; listing again in %d s", j->node, j->error,
                    SCAN_RETRY_MS / 1000);
        int id = vf_loop_timer_add(SCAN_RETRY_MS, scan_retry, nr);
        if (id > 0)
            nr->scan_timer = id;
        return;
    }
    snprintf(nr->domain_type, sizeof nr->domain_type, "%s", j->domain_type);
    for (size_t i = 0; i < j->n_domains; i++) {
        const struct vf_vm_domain *d = &j->domains[i];
        struct vm_rec *v = vm_rec_by_uid(d->vm_uid[0] ? d->vm_uid : d->uuid);
        if (!v) {
            if (d->vm_uid[0])
                vf_log_warn("vms: node \"%s\": domain \"%s\" carries virtfleet metadata (VM uid "
                            "%s) but no VirtualMachine has that uid; left alone", j->node,
                            d->name, d->vm_uid);
            continue;
        }
        if (v->obs_seq > j->seq)
            continue;   /* an event since the listing says more */
        bool elsewhere = v->node && strcmp(v->node, j->node);
        bool twice = !v->node && v->obs == VF_DOM_ACTIVE && v->obs_node &&
                     strcmp(v->obs_node, j->node) && d->state == VF_DOM_ACTIVE;
        if (!elsewhere && !twice) {
            observe(v, j->node, d->state, j->seq);
        } else if (d->state == VF_DOM_ACTIVE) {
            if (!vf_json_str_eq(v->conflict_node, j->node))
                vf_log_error("vm \"%s\": its domain runs on node \"%s\" although the VM is on "
                             "node \"%s\"; not touched: stop one of them by hand", v->name,
                             j->node, v->node ? v->node : v->obs_node);
            str_set(&v->conflict_node, j->node);
        } else {
            stale_cleanup(j->node, d, v->name);
        }
    }
    /* VMs assigned to this node whose domain the listing did not show. */
    for (struct vm_rec *v = C.vms; v; v = v->next) {
        if (!vf_json_str_eq(v->node, j->node) || v->obs_seq > j->seq)
            continue;
        if (vf_json_str_eq(v->obs_node, j->node) && v->obs_seq == j->seq)
            continue;
        observe(v, j->node, VF_DOM_ABSENT, j->seq);
    }
    nr->scanned = true;
    vf_log_debug("vms: node \"%s\": %zu domains listed", j->node, j->n_domains);
    mark_all_dirty();
}

static void scan_submit(struct node_rec *nr)
{
    struct vf_vm_job *j = vf_vm_job_new(VF_VM_JOB_SCAN, nr->name, NULL, NULL);
    if (!j)
        return;
    j->seq = ++C.seq;
    j->conn_seq = nr->conn_seq;
    j->done = scan_done;
    if (vf_vm_job_submit(j, vf_cluster_connection(nr->name), "vm scan") == 0)
        nr->scan_busy = true;
}

static void listener_node_up(void *opaque, const char *node, void *conn)
{
    (void)opaque;
    (void)conn;
    struct node_rec *nr = node_rec_get(node);
    if (!nr)
        return;
    nr->up = true;
    nr->scanned = false;
    nr->conn_seq = ++C.seq;
    timer_clear(&nr->scan_timer);
    scan_submit(nr);
    mark_all_dirty();
}

static void listener_node_down(void *opaque, const char *node)
{
    (void)opaque;
    struct node_rec *nr = node_rec(node);
    if (!nr)
        return;
    nr->up = false;
    nr->scanned = false;
    nr->scan_busy = false;
    nr->conn_seq = ++C.seq;
    timer_clear(&nr->scan_timer);
    for (struct vm_rec *v = C.vms; v; v = v->next)
        if (vf_json_str_eq(v->obs_node, node))
            observe(v, NULL, VF_DOM_UNKNOWN, ++C.seq);
    mark_all_dirty();
}

static const char *stop_detail(int detail)
{
    switch (detail) {
    case VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN: return "was shut down by its guest";
    case VIR_DOMAIN_EVENT_STOPPED_DESTROYED: return "was destroyed";
    case VIR_DOMAIN_EVENT_STOPPED_CRASHED: return "crashed";
    case VIR_DOMAIN_EVENT_STOPPED_MIGRATED: return "migrated away";
    case VIR_DOMAIN_EVENT_STOPPED_SAVED: return "was saved";
    case VIR_DOMAIN_EVENT_STOPPED_FAILED: return "failed";
    default: return "stopped";
    }
}

static void listener_domain_event(void *opaque, const char *node, const char *domain_name,
                                  const unsigned char uuid[16], int event, int detail)
{
    (void)opaque;
    char uuid_str[VIR_UUID_STRING_BUFLEN];
    snprintf(uuid_str, sizeof uuid_str,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", uuid[0],
             uuid[1], uuid[2], uuid[3], uuid[4], uuid[5], uuid[6], uuid[7], uuid[8], uuid[9],
             uuid[10], uuid[11], uuid[12], uuid[13], uuid[14], uuid[15]);
    struct vm_rec *v = vm_rec_by_uid(uuid_str);
    if (!v)
        return;   /* not a domain of ours */
    enum vf_dom_state state;
    switch (event) {
    case VIR_DOMAIN_EVENT_STARTED:
    case VIR_DOMAIN_EVENT_RESUMED:
    case VIR_DOMAIN_EVENT_SUSPENDED:
    case VIR_DOMAIN_EVENT_PMSUSPENDED:
        state = VF_DOM_ACTIVE;
        break;
    case VIR_DOMAIN_EVENT_STOPPED:
    case VIR_DOMAIN_EVENT_CRASHED:
        state = VF_DOM_INACTIVE;
        snprintf(v->stop_reason, sizeof v->stop_reason, "%s",
                 event == VIR_DOMAIN_EVENT_CRASHED ? "crashed" : stop_detail(detail));
        break;
    case VIR_DOMAIN_EVENT_UNDEFINED:
        state = VF_DOM_ABSENT;
        break;
    case VIR_DOMAIN_EVENT_DEFINED:
        if (vf_json_str_eq(v->obs_node, node) && v->obs != VF_DOM_ABSENT)
            return;
        state = VF_DOM_INACTIVE;
        break;
    default:
        return;   /* SHUTDOWN: STOPPED follows */
    }
    vf_log_debug("vm \"%s\": node \"%s\": domain \"%s\" event %d/%d", v->name, node, domain_name,
                 event, detail);
    /* A post-copy migration resumes the guest on its target before the
     * migrate module hands the VM over: part of the migration too. */
    bool migration = (event == VIR_DOMAIN_EVENT_STARTED &&
                      detail == VIR_DOMAIN_EVENT_STARTED_MIGRATED) ||
                     (event == VIR_DOMAIN_EVENT_RESUMED &&
                      (detail == VIR_DOMAIN_EVENT_RESUMED_MIGRATED ||
                       detail == VIR_DOMAIN_EVENT_RESUMED_POSTCOPY)) ||
                     (event == VIR_DOMAIN_EVENT_SUSPENDED &&
                      (detail == VIR_DOMAIN_EVENT_SUSPENDED_MIGRATED ||
                       detail == VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY)) ||
                     (event == VIR_DOMAIN_EVENT_STOPPED &&
                      detail == VIR_DOMAIN_EVENT_STOPPED_MIGRATED);
    if (!v->node || vf_json_str_eq(v->node, node)) {
        observe(v, node, state, ++C.seq);
    } else if (state == VF_DOM_ACTIVE && !migration) {
        if (!vf_json_str_eq(v->conflict_node, node))
            vf_log_error("vm \"%s\": its domain started on node \"%s\" although the VM is on "
                         "node \"%s\"; not touched: stop one of them by hand", v->name, node,
                         v->node);
        str_set(&v->conflict_node, node);
    }
    if (state != VF_DOM_ACTIVE && vf_json_str_eq(v->conflict_node, node)) {
        vf_log_info("vm \"%s\": its domain on node \"%s\" is no longer running; conflict over",
                    v->name, node);
        str_set(&v->conflict_node, NULL);
    }
    mark_dirty(v->name);
}

/* ---- watches and the pass -------------------------------------------------------------- */

static void vm_watch_cb(void *opaque, const char *kind, enum vf_watch_event type,
                        const struct json_object *obj)
{
    (void)opaque;
    (void)kind;
    const char *name = vf_object_name(obj);
    if (!name)
        return;
    if (type == VF_WATCH_DELETED) {
        struct vm_rec *v = vm_rec(name);
        const char *uid = vf_json_string(vf_json_member(obj, "metadata"), "uid");
        if (v && uid && !strcasecmp(v->uid, uid)) {
            vm_rec_drop(name);
            ip_release(name);
        }
        C.place.valid = false;
        /* Its labels no longer keep anti-affine VMs away. */
        wake_waiting();
        vf_vms_kick();
        return;
    }
    vm_rec_get(obj);
    C.place.valid = false;
    mark_dirty(name);
}

/* A disk or an image changed: the VMs waiting for theirs look again. */
static void disk_watch_cb(void *opaque, const char *kind, enum vf_watch_event type,
                          const struct json_object *obj)
{
    (void)opaque;
    (void)kind;
    (void)type;
    (void)obj;
    wake_waiting();
}

static void other_watch_cb(void *opaque, const char *kind, enum vf_watch_event type,
                           const struct json_object *obj)
{
    (void)opaque;
    (void)kind;
    (void)type;
    (void)obj;
    C.place.valid = false;
    mark_all_dirty();
}

/* Each node's reservation as placement counts it, for the Node's status
 * (the cluster writes only what changed). */
static void report_reservations(void)
{
    if (place_build() < 0)
        return;
    for (size_t i = 0; i < C.place.n_nodes; i++) {
        const struct vf_placement_node *pn = &C.place.nodes[i];
        struct vf_cluster_reserved r = {.vms = (int64_t)pn->n_vms};
        for (size_t k = 0; k < pn->n_vms; k++) {
            r.cpu_millis += pn->vms[k].cpu_millis;
            r.memory_bytes += pn->vms[k].memory_bytes;
        }
        vf_cluster_node_reserved(pn->name, &r);
    }
}

static void pass_run(void *opaque)
{
    (void)opaque;
    timer_clear(&C.pass_timer);
    if (!C.started)
        return;
    struct json_object *dirty = C.dirty;
    bool all = C.all_dirty;
    C.dirty = json_object_new_object();
    C.all_dirty = false;
    vf_vmops_pass();

    struct vf_error err = {0};
    if (all) {
        struct json_object *items = NULL;
        if (vf_objects_list(VF_VM_KIND, &items, NULL, &err) < 0) {
            vf_log_error("vms: cannot list VirtualMachines: %s", err.message);
        } else {
            for (size_t i = 0; i < json_object_array_length(items); i++)
                reconcile(json_object_array_get_idx(items, i));
        }
        json_object_put(items);
    } else {
        json_object_object_foreach(dirty, name, unused) {
            (void)unused;
            struct json_object *obj = NULL;
            if (vf_objects_get(VF_VM_KIND, name, &obj, &err) == 0)
                reconcile(obj);
            json_object_put(obj);
        }
    }
    json_object_put(dirty);
    report_reservations();
    place_reset();
}

/* ---- vm_migration.c's hooks -------------------------------------------------------------- */

const char *vf_vms_network(void)
{
    return C.network;
}

void vf_vms_migration_ended(const char *vm, const char *node)
{
    struct vm_rec *v = vm_rec(vm);
    if (v) {
        str_set(&v->node, node);
        /* A listing of the target made while the domain arrived there took
         * it for a second copy: it is the VM's own now. */
        if (vf_json_str_eq(v->conflict_node, node))
            str_set(&v->conflict_node, NULL);
    }
    C.place.valid = false;
    wake_waiting();   /* the other node's reservation is free again */
    mark_dirty(vm);
}

/* ---- vmops.c's hooks ------------------------------------------------------------------- */

void vf_vms_op_flags_clear(void)
{
    for (struct vm_rec *v = C.vms; v; v = v->next)
        v->op_stop = v->op_force = false;
}

void vf_vms_op_stop(const char *vm, bool force)
{
    struct vm_rec *v = vm_rec(vm);
    if (!v)
        return;
    if (!v->op_stop || (force && !v->op_force))
        mark_dirty(vm);
    v->op_stop = true;
    v->op_force = v->op_force || force;
}

/* ---- the interface ------------------------------------------------------------------------ */

static const char *network_of(const struct vf_config *cfg)
{
    return vf_json_string(cfg ? cfg->virtualization : NULL, "libvirtNetwork");
}

static const struct json_object *cidrs_of(const struct vf_config *cfg)
{
    const struct json_object *c =
        vf_json_member(cfg ? cfg->virtualization : NULL, "virtualMachineCIDRs");
    return c && json_object_is_type(c, json_type_array) && json_object_array_length(c) ? c : NULL;
}

/* Addresses already issued (status.ipAddress) are the ipam's memory. */
static void ipam_rebuild(struct vf_ipam *ipam)
{
    struct json_object *items = NULL;
    struct vf_error err = {0};
    if (vf_objects_list(VF_VM_KIND, &items, NULL, &err) < 0) {
        vf_log_error("vms: cannot list VirtualMachines: %s", err.message);
        return;
    }
    for (size_t i = 0; i < json_object_array_length(items); i++) {
        const struct json_object *vm = json_object_array_get_idx(items, i);
        const char *addr = vf_json_string(vf_json_member(vm, "status"), "ipAddress");
        if (addr && vf_ipam_reserve(ipam, addr, vf_object_name(vm), &err) < 0)
            vf_log_warn("vm \"%s\": its address \"%s\" cannot be kept: %s", vf_object_name(vm),
                        addr, err.message);
    }
    json_object_put(items);
}

int vf_vms_start(const struct vf_config *cfg)
{
    if (C.started)
        return 0;
    struct vf_error err = {0};
    int rc;
    memset(&C, 0, sizeof C);
    C.store = vf_objects_store();
    if (!C.store) {
        vf_log_error("vms: the store is not open");
        return -ENODEV;
    }
    const struct json_object *cidrs = cidrs_of(cfg);
    if (cidrs) {
        if ((rc = vf_ipam_new(cidrs, &C.ipam, &err)) < 0) {
            vf_log_error("vms: virtualization.virtualMachineCIDRs: %s", err.message);
            return rc;
        }
        ipam_rebuild(C.ipam);
    }
    if (network_of(cfg) && !(C.network = strdup(network_of(cfg)))) {
        vf_log_error("vms: out of memory");
        vf_ipam_free(C.ipam);
        memset(&C, 0, sizeof C);
        return -ENOMEM;
    }
    C.dirty = json_object_new_object();
    C.started = true;
    if ((rc = vf_store_watch_add(C.store, VF_VM_KIND, 0, vm_watch_cb, NULL, &C.vm_watch, &err)) < 0 ||
        (rc = vf_store_watch_add(C.store, NODE_KIND, 0, other_watch_cb, NULL, &C.node_watch,
                                 &err)) < 0 ||
        (rc = vf_store_watch_add(C.store, CLASS_KIND, 0, other_watch_cb, NULL, &C.class_watch,
                                 &err)) < 0 ||
        (rc = vf_store_watch_add(C.store, "VirtualDisk", 0, disk_watch_cb, NULL, &C.disk_watch,
                                 &err)) < 0 ||
        (rc = vf_store_watch_add(C.store, "ClusterVirtualImage", 0, disk_watch_cb, NULL,
                                 &C.image_watch, &err)) < 0) {
        vf_log_error("vms: cannot watch the store: %s", err.message);
        vf_vms_stop();
        return rc;
    }
    if ((rc = vf_vmops_start()) < 0 || (rc = vf_cluster_listen(&listener)) < 0) {
        vf_vms_stop();
        return rc;
    }
    mark_all_dirty();
    return 0;
}

int vf_vms_check_config(const struct vf_config *cfg, struct vf_config_errors *errors)
{
    const struct json_object *cidrs = cidrs_of(cfg);
    struct vf_error err = {0};
    int line = vf_config_line(cfg, "virtualization.virtualMachineCIDRs");
    char where[512];
    if (line > 0)
        snprintf(where, sizeof where, "%s:%d", cfg->path ? cfg->path : "config", line);
    else
        snprintf(where, sizeof where, "%s", cfg->path ? cfg->path : "config");
    if (cidrs) {
        struct vf_ipam *probe = NULL;
        if (vf_ipam_new(cidrs, &probe, &err) < 0) {
            vf_config_errors_add(errors, "%s: virtualization.virtualMachineCIDRs: %s", where,
                                 err.message);
            return -EINVAL;
        }
        vf_ipam_free(probe);
    }
    if (!C.started || !C.ipam)
        return 0;
    struct json_object *empty = json_object_new_array();
    int rc = vf_ipam_check_change(C.ipam, cidrs ? cidrs : empty, &err);
    json_object_put(empty);
    if (rc < 0) {
        vf_config_errors_add(errors, "%s: virtualization.virtualMachineCIDRs: %s", where,
                             err.message);
        return -EBUSY;
    }
    return 0;
}

void vf_vms_apply_config(const struct vf_config *cfg)
{
    if (!C.started)
        return;
    const char *network = network_of(cfg);
    if (!vf_json_str_eq(C.network, network)) {
        vf_log_info("vms: virtualization.libvirtNetwork is now %s%s%s; VMs started from now on "
                    "use it, running ones keep theirs", network ? "\"" : "",
                    network ? network : "unset", network ? "\"" : "");
        str_set(&C.network, network);
    }
    const struct json_object *cidrs = cidrs_of(cfg);
    struct vf_ipam *next = NULL;
    struct vf_error err = {0};
    if (cidrs) {
        if (vf_ipam_new(cidrs, &next, &err) < 0) {
            vf_log_error("vms: virtualization.virtualMachineCIDRs: %s; addresses unchanged",
                         err.message);
            return;
        }
        if (C.ipam && vf_ipam_transfer(C.ipam, next, &err) < 0) {
            vf_log_error("vms: virtualization.virtualMachineCIDRs: %s; addresses unchanged",
                         err.message);
            vf_ipam_free(next);
            return;
        }
        if (!C.ipam)
            ipam_rebuild(next);
    }
    if (C.ipam)
        vf_ipam_free(C.ipam);
    C.ipam = next;
    mark_all_dirty();
}

void vf_vms_stop(void)
{
    if (!C.started)
        return;
    vf_cluster_unlisten(&listener);
    vf_vmops_stop();
    if (C.vm_watch)
        vf_store_watch_remove(C.store, C.vm_watch);
    if (C.node_watch)
        vf_store_watch_remove(C.store, C.node_watch);
    if (C.class_watch)
        vf_store_watch_remove(C.store, C.class_watch);
    if (C.disk_watch)
        vf_store_watch_remove(C.store, C.disk_watch);
    if (C.image_watch)
        vf_store_watch_remove(C.store, C.image_watch);
    timer_clear(&C.pass_timer);
    vf_vm_jobs_drop_all();
    while (C.vms) {
        struct vm_rec *v = C.vms;
        C.vms = v->next;
        vm_rec_free(v);
    }
    while (C.nodes) {
        struct node_rec *n = C.nodes;
        C.nodes = n->next;
        timer_clear(&n->scan_timer);
        free(n->name);
        free(n);
    }
    place_reset();
    if (C.ipam)
        vf_ipam_free(C.ipam);
    free(C.network);
    json_object_put(C.dirty);
    memset(&C, 0, sizeof C);
}
