#include <config.h>
/* The VirtualMachineClass controller.
 *
 * Owns: the default class `generic` (created when absent), the status of every
 * class (phase, availableNodes, the Ready condition and, for Discovery
 * classes, the baseline CPU of their nodes), and the SizingPolicyMatched
 * condition of every VirtualMachine.
 * Watches: VirtualMachineClass (status, and sizing re-evaluation of the
 * class's VMs when its sizingPolicies change), Node (availableNodes and the
 * Discovery baseline follow the set of Ready nodes) and VirtualMachine
 * (SizingPolicyMatched follows the VM's size).
 *
 * A Discovery baseline needs every selected node's host <cpu> from its
 * capabilities and a baseline call on one of them; both block on the network,
 * so they run as one worker job per class, in a job group (workers.h): a result
 * that comes back after the controller stopped is dropped without touching
 * freed memory, and one for a class deleted or asked again since is ignored.
 *
 * Every status is rebuilt from the store and written only when it differs from
 * what is stored, so the controller's own writes (which come back as watch
 * events) settle after one round. */
#include "classes.h"
#include "json_util.h"
#include "cluster.h"
#include "label_selector.h"
#include "log.h"
#include "node_gate.h"
#include "objects.h"
#include "quantity.h"
#include "store.h"
#include "workers.h"
#include "xml_query.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#define CLASS_KIND "VirtualMachineClass"
#define NODE_KIND "Node"
#define VM_KIND "VirtualMachine"
#define SIZING_CONDITION "SizingPolicyMatched"
#define TIME_MAX 32
#define MESSAGE_MAX 512
/* A failed discovery is tried again on a Node event at least this long after
 * the failure (Ready nodes publish a heartbeat at least once a minute). */
#define DISCOVERY_RETRY_S 60
/* Host <cpu> elements of real hosts are a few KiB; more is not a CPU. */
#define HOST_CPU_MAX (64 * 1024)

/* ---- state (loop thread) ---------------------------------------------------- */

struct class_state {
    struct class_state *next;
    char *name;
    bool seen;                      /* policies holds what the class last said */
    struct json_object *policies;   /* spec.sizingPolicies last seen (own copy) or NULL */
    /* Discovery: the last finished computation, for the node set `result_key`
     * (node names joined by ","); exactly one of baseline / error is set. */
    char *result_key;
    char *baseline;
    char *error;
    time_t failed_at;
    uint64_t job_id;                /* a computation in flight, 0 when none */
};

static struct class_state *classes;
static struct vf_store_watch *watch_classes, *watch_nodes, *watch_vms;
static bool started;

/* For tests: host CPUs of nodes whose capabilities name none. */
struct test_cpu {
    struct test_cpu *next;
    char *node, *xml;
};
static struct test_cpu *test_cpus;

/* ---- jobs (CPU discovery on workers) ------------------------------------------ */

struct job {
    uint64_t seq;                  /* which request of its class this answers */
    char *class_name, *key;
    size_t n;
    char **nodes;
    virConnectPtr *conns;          /* one reference each */
    char **fallback_cpus;          /* per node, from test_cpus, or NULL */
    char *baseline, *error;        /* the result */
};

static void job_release(void *opaque);
/* vf_classes_stop() drops them all. */
static struct vf_job_group discovery_jobs = {.name = "CPU discovery", .release = job_release};
static uint64_t jobs_next_seq = 1;

/* ---- small helpers ------------------------------------------------------------ */

static void time_now(char buf[TIME_MAX])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, TIME_MAX, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static bool str_eq(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* Replaces *dst with a copy of src (NULL allowed). */
static void set_str(char **dst, const char *src)
{
    char *copy = src ? strdup(src) : NULL;
    free(*dst);
    *dst = copy;
}

/* A quantity (string or integer bytes) at o.key; -1 when absent or malformed
 * (the schema checked the syntax). */
static int64_t get_quantity(const struct json_object *o, const char *key)
{
    struct json_object *v = vf_json_member(o, key);
    int64_t bytes;
    if (!v)
        return -1;
    if (json_object_is_type(v, json_type_int))
        return json_object_get_int64(v);
    if (json_object_is_type(v, json_type_string) &&
        vf_quantity_parse(json_object_get_string(v), &bytes) == 0)
        return bytes;
    return -1;
}

static const char *qty(int64_t bytes, char *buf, unsigned len)
{
    vf_quantity_format(bytes, buf, len);
    return buf;
}

/* ---- sizing policies --------------------------------------------------------- */

/* "25%" -> 25; 100 when absent (the VM kind's default). */
static int vm_fraction(const struct json_object *cpu)
{
    const char *s = vf_json_string(cpu, "coreFraction");
    int n = 0, i = 0;
    if (!s)
        return 100;
    while (s[i] >= '0' && s[i] <= '9' && i < 4)
        n = n * 10 + (s[i++] - '0');
    return i > 0 && strcmp(s + i, "%") == 0 ? n : -1;
}

static bool memory_fits(const struct json_object *mem, int64_t cores, int64_t size,
                        char *why, size_t why_len)
{
    char a[32], b[32], c[32];
    struct json_object *per_core = vf_json_member(mem, "perCore");
    int64_t min, max;
    if (per_core) {
        int64_t pmin = get_quantity(per_core, "min"), pmax = get_quantity(per_core, "max");
        min = pmin >= 0 ? pmin * cores : -1;
        max = pmax >= 0 ? pmax * cores : -1;
        if (min >= 0 && size < min) {
            snprintf(why, why_len, "memory %s is less than %s (%s per core x %lld cores)",
                     qty(size, a, sizeof a), qty(min, b, sizeof b), qty(pmin, c, sizeof c),
                     (long long)cores);
            return false;
        }
        if (max >= 0 && size > max) {
            snprintf(why, why_len, "memory %s is more than %s (%s per core x %lld cores)",
                     qty(size, a, sizeof a), qty(max, b, sizeof b), qty(pmax, c, sizeof c),
                     (long long)cores);
            return false;
        }
    } else {
        min = get_quantity(mem, "min");
        max = get_quantity(mem, "max");
        if (min >= 0 && size < min) {
            snprintf(why, why_len, "memory %s is less than the minimum %s",
                     qty(size, a, sizeof a), qty(min, b, sizeof b));
            return false;
        }
        if (max >= 0 && size > max) {
            snprintf(why, why_len, "memory %s is more than the maximum %s",
                     qty(size, a, sizeof a), qty(max, b, sizeof b));
            return false;
        }
    }
    int64_t step = get_quantity(mem, "step");
    int64_t base = min > 0 ? min : 0;
    if (step > 0 && (size - base) % step != 0) {
        snprintf(why, why_len, "memory %s is not %s plus a multiple of the step %s",
                 qty(size, a, sizeof a), qty(base, b, sizeof b), qty(step, c, sizeof c));
        return false;
    }
    return true;
}

bool vf_classes_sizing_matches(const struct json_object *vmclass, const struct json_object *vm_spec,
                               char *why, size_t why_len)
{
    char scratch[8];
    if (!why || why_len == 0) {
        why = scratch;
        why_len = sizeof scratch;
    }
    why[0] = '\0';
    struct json_object *policies = vf_json_member(vf_json_member(vmclass, "spec"), "sizingPolicies");
    size_t n = policies && json_object_is_type(policies, json_type_array)
                   ? json_object_array_length(policies) : 0;
    if (n == 0)
        return true;

    struct json_object *cpu = vf_json_member(vm_spec, "cpu");
    int64_t cores = vf_json_int(cpu, "cores", 0);
    if (cores < 1) {
        snprintf(why, why_len, "spec.cpu.cores is not set");
        return false;
    }
    const struct json_object *policy = NULL;
    for (size_t i = 0; i < n && !policy; i++) {
        const struct json_object *p = json_object_array_get_idx(policies, i);
        struct json_object *range = vf_json_member(p, "cores");
        if (cores >= vf_json_int(range, "min", 1) && cores <= vf_json_int(range, "max", INT64_MAX))
            policy = p;
    }
    if (!policy) {
        const struct json_object *first = json_object_array_get_idx(policies, 0);
        const struct json_object *last = json_object_array_get_idx(policies, n - 1);
        snprintf(why, why_len, "%lld cores is outside the sizing policies' core ranges (%lld-%lld)",
                 (long long)cores, (long long)vf_json_int(vf_json_member(first, "cores"), "min", 1),
                 (long long)vf_json_int(vf_json_member(last, "cores"), "max", 0));
        return false;
    }
    struct json_object *range = vf_json_member(policy, "cores");
    char where[64];
    snprintf(where, sizeof where, " (policy for %lld-%lld cores)",
             (long long)vf_json_int(range, "min", 1), (long long)vf_json_int(range, "max", 0));

    struct json_object *mem = vf_json_member(policy, "memory");
    if (mem) {
        int64_t size = get_quantity(vf_json_member(vm_spec, "memory"), "size");
        if (size < 0) {
            snprintf(why, why_len, "spec.memory.size is not set%s", where);
            return false;
        }
        if (!memory_fits(mem, cores, size, why, why_len)) {
            size_t used = strlen(why);
            snprintf(why + used, why_len - used, "%s", where);
            return false;
        }
    }
    struct json_object *fractions = vf_json_member(policy, "coreFractions");
    if (fractions && json_object_is_type(fractions, json_type_array)) {
        int want = vm_fraction(cpu);
        size_t nf = json_object_array_length(fractions);
        bool found = false;
        for (size_t i = 0; i < nf && !found; i++)
            found = json_object_get_int64(json_object_array_get_idx(fractions, i)) == want;
        if (!found) {
            char list[128] = "";
            size_t used = 0;
            for (size_t i = 0; i < nf && used < sizeof list; i++) {
                int w = snprintf(list + used, sizeof list - used, "%s%lld%%", i ? ", " : "",
                                 (long long)json_object_get_int64(
                                     json_object_array_get_idx(fractions, i)));
                if (w < 0)
                    break;
                used += (size_t)w;
            }
            snprintf(why, why_len, "core fraction %s is not one of %s%s",
                     vf_json_string(cpu, "coreFraction") ? vf_json_string(cpu, "coreFraction") : "100%",
                     list, where);
            return false;
        }
    }
    return true;
}

/* ---- SizingPolicyMatched on VMs -------------------------------------------------- */

/* The condition as it should read now; lastTransitionTime is added by
 * merge_condition. */
static struct json_object *sizing_condition(const struct json_object *vm,
                                            const struct json_object *vmclass,
                                            const char *class_name)
{
    char why[MESSAGE_MAX - 128], message[MESSAGE_MAX];
    const char *status, *reason;
    if (!vmclass) {
        status = "False";
        reason = "VirtualMachineClassNotFound";
        snprintf(message, sizeof message, "class \"%s\" does not exist", class_name);
    } else if (vf_classes_sizing_matches(vmclass, vf_json_member(vm, "spec"), why, sizeof why)) {
        status = "True";
        reason = SIZING_CONDITION;
        if (vf_json_member(vf_json_member(vmclass, "spec"), "sizingPolicies"))
            snprintf(message, sizeof message, "the VM's size fits the sizing policies of class "
                                              "\"%s\"", class_name);
        else
            snprintf(message, sizeof message, "class \"%s\" has no sizing policies", class_name);
    } else {
        status = "False";
        reason = "SizingPolicyNotMatched";
        snprintf(message, sizeof message, "class \"%s\": %s", class_name, why);
    }
    struct json_object *c = json_object_new_object();
    json_object_object_add(c, "type", json_object_new_string(SIZING_CONDITION));
    json_object_object_add(c, "status", json_object_new_string(status));
    json_object_object_add(c, "reason", json_object_new_string(reason));
    json_object_object_add(c, "message", json_object_new_string(message));
    return c;
}

/* A copy of `status` (an object or NULL) whose conditions hold `cond` (taken)
 * in place of the condition of the same type, keeping that one's
 * lastTransitionTime when its status did not change.  Everything else other
 * controllers wrote stays. */
static struct json_object *merge_condition(const struct json_object *status,
                                           struct json_object *cond)
{
    struct json_object *out = status && json_object_is_type(status, json_type_object)
                                  ? vf_json_copy(status) : json_object_new_object();
    const char *type = vf_json_string(cond, "type");
    struct json_object *conds = vf_json_member(out, "conditions");
    if (!conds || !json_object_is_type(conds, json_type_array)) {
        conds = json_object_new_array();
        json_object_object_add(out, "conditions", conds);
    }
    size_t n = json_object_array_length(conds), at = n;
    for (size_t i = 0; i < n; i++)
        if (str_eq(vf_json_string(json_object_array_get_idx(conds, i), "type"), type))
            at = i;
    const struct json_object *old = at < n ? json_object_array_get_idx(conds, at) : NULL;
    const char *since = old && str_eq(vf_json_string(old, "status"), vf_json_string(cond, "status"))
                            ? vf_json_string(old, "lastTransitionTime") : NULL;
    char now[TIME_MAX];
    if (!since) {
        time_now(now);
        since = now;
    }
    json_object_object_add(cond, "lastTransitionTime", json_object_new_string(since));
    if (at < n)
        json_object_array_put_idx(conds, at, cond);
    else
        json_object_array_add(conds, cond);
    return out;
}

/* Does the VM's status already carry this condition (ignoring its time)? */
static bool condition_current(const struct json_object *vm, const struct json_object *cond)
{
    struct json_object *conds = vf_json_member(vf_json_member(vm, "status"), "conditions");
    size_t n = conds && json_object_is_type(conds, json_type_array)
                   ? json_object_array_length(conds) : 0;
    for (size_t i = 0; i < n; i++) {
        const struct json_object *c = json_object_array_get_idx(conds, i);
        if (!str_eq(vf_json_string(c, "type"), vf_json_string(cond, "type")))
            continue;
        static const char *const keys[] = {"status", "reason", "message"};
        for (size_t k = 0; k < 3; k++)
            if (!str_eq(vf_json_string(c, keys[k]), vf_json_string(cond, keys[k])))
                return false;
        return vf_json_string(c, "lastTransitionTime") != NULL;
    }
    return false;
}

/* vmclass: the VM's class, or NULL when it does not exist. */
static void vm_evaluate(const struct json_object *vm, const struct json_object *vmclass)
{
    const char *name = vf_json_string(vf_json_member(vm, "metadata"), "name");
    const char *class_name = vf_json_string(vf_json_member(vm, "spec"), "virtualMachineClassName");
    if (!name)
        return;
    if (!class_name)
        class_name = "generic";
    struct json_object *cond = sizing_condition(vm, vmclass, class_name);
    if (condition_current(vm, cond)) {
        json_object_put(cond);
        return;
    }
    /* Re-read: the watch's copy may be older than what the VM controller has
     * written since, and its status fields must survive this write. */
    struct vf_error err = {0};
    struct json_object *cur = NULL;
    int rc = vf_objects_get(VM_KIND, name, &cur, &err);
    if (rc < 0) {
        json_object_put(cond);
        if (rc != -ENOENT)
            vf_log_error("VM \"%s\": cannot read it to set %s: %s", name, SIZING_CONDITION,
                         err.message);
        return;
    }
    if (condition_current(cur, cond)) {
        json_object_put(cond);
        json_object_put(cur);
        return;
    }
    const char *verdict = vf_json_string(cond, "status");
    bool matched = str_eq(verdict, "True");
    char message[MESSAGE_MAX];
    snprintf(message, sizeof message, "%s", vf_json_string(cond, "message"));
    struct json_object *status = merge_condition(vf_json_member(cur, "status"), cond);
    rc = vf_objects_update_status(VM_KIND, name, status, NULL, &err);
    if (rc < 0 && rc != -ENOENT)
        vf_log_error("VM \"%s\": cannot write %s: %s", name, SIZING_CONDITION, err.message);
    else if (rc == 0 && !matched)
        vf_log_info("VM \"%s\": %s is False: %s", name, SIZING_CONDITION, message);
    json_object_put(status);
    json_object_put(cur);
}

/* Looks the class up for one VM. */
static void vm_evaluate_lookup(const struct json_object *vm)
{
    const char *class_name = vf_json_string(vf_json_member(vm, "spec"), "virtualMachineClassName");
    struct vf_error err = {0};
    struct json_object *vmclass = NULL;
    int rc = vf_objects_get(CLASS_KIND, class_name ? class_name : "generic", &vmclass, &err);
    if (rc < 0 && rc != -ENOENT) {
        vf_log_error("VM \"%s\": cannot read class \"%s\": %s",
                     vf_json_string(vf_json_member(vm, "metadata"), "name"),
                     class_name ? class_name : "generic", err.message);
        return;
    }
    vm_evaluate(vm, vmclass);
    json_object_put(vmclass);
}

/* Every VM of the class (vmclass NULL: the class is gone). */
static void vms_evaluate_class(const char *class_name, const struct json_object *vmclass)
{
    struct vf_error err = {0};
    struct json_object *vms = NULL;
    if (vf_objects_list(VM_KIND, &vms, NULL, &err) < 0) {
        vf_log_error("class \"%s\": cannot list VMs to check their sizing: %s", class_name,
                     err.message);
        return;
    }
    size_t n = json_object_array_length(vms);
    for (size_t i = 0; i < n; i++) {
        const struct json_object *vm = json_object_array_get_idx(vms, i);
        const char *c = vf_json_string(vf_json_member(vm, "spec"), "virtualMachineClassName");
        if (str_eq(c ? c : "generic", class_name))
            vm_evaluate(vm, vmclass);
    }
    json_object_put(vms);
}

/* ---- host CPUs and the baseline -------------------------------------------------- */

/* The host's <cpu>...</cpu> element in a capabilities document: the first
 * child <cpu> of <host> (<topology>'s <cpu .../> entries sit deeper and are
 * never taken for it), written out again by libxml2 (attribute quotes may
 * differ from libvirt's; libvirt reads either). */
#define CAPS_HOST_CPU "(//host)[1]/cpu[1]"

int vf_classes_caps_host_cpu(const char *caps, char **cpu_xml)
{
    struct vf_xml x;
    *cpu_xml = NULL;
    if (!caps)
        return -EINVAL;
    int rc = vf_xml_parse(&x, caps);
    if (rc < 0)
        return rc;
    xmlXPathObjectPtr r = vf_xml_select(&x, NULL, CAPS_HOST_CPU);
    xmlBufferPtr out = NULL;
    if (!r || vf_xml_count(&x, NULL, CAPS_HOST_CPU "/node()") <= 0)
        rc = -ENOENT;   /* none, or an empty <cpu/> */
    else if (!(out = xmlBufferCreate()))
        rc = -ENOMEM;
    else if (xmlNodeDump(out, x.doc, xmlXPathNodeSetItem(r->nodesetval, 0), 0, 0) < 0)
        rc = -ENOMEM;
    else if (xmlBufferLength(out) > HOST_CPU_MAX)
        rc = -ERANGE;
    else if (!(*cpu_xml = strdup((const char *)xmlBufferContent(out))))
        rc = -ENOMEM;
    xmlBufferFree(out);
    xmlXPathFreeObject(r);
    vf_xml_free(&x);
    return rc;
}

/* "what: libvirt's words for the last error", then clears the error. */
static void last_error(char *buf, size_t len, const char *what)
{
    const char *msg = virGetLastErrorMessage();
    snprintf(buf, len, "%s: %s", what, msg ? msg : "unknown error");
    virResetLastError();
}

int vf_classes_baseline(void *conn, const char **cpus, unsigned n, char **xml, char *why,
                        size_t why_len)
{
    *xml = NULL;
    if (!conn || n == 0) {
        snprintf(why, why_len, "no CPUs to compute a baseline of");
        return -EINVAL;
    }
    /* Expanded features: the result names every feature it requires, so the
     * class's status says exactly what a VM gets, whatever models the nodes
     * know.  virttype NULL lets each node's libvirt take its best (KVM when it
     * has it, else TCG), as the domain does. */
    char *x = virConnectBaselineHypervisorCPU(conn, NULL, "x86_64", NULL, NULL, cpus, n,
                                              VIR_CONNECT_BASELINE_CPU_EXPAND_FEATURES);
    if (!x && virGetLastErrorCode() == VIR_ERR_NO_SUPPORT) {
        /* Older libvirt and the test driver: the host-only baseline, which
         * ignores what the hypervisor can emulate but is still common to all. */
        virResetLastError();
        x = virConnectBaselineCPU(conn, cpus, n, VIR_CONNECT_BASELINE_CPU_EXPAND_FEATURES);
    }
    if (!x) {
        last_error(why, why_len, "computing the baseline CPU failed");
        return -EIO;
    }
    *xml = x;
    return 0;
}

static void job_free(struct job *j)
{
    if (!j)
        return;
    for (size_t i = 0; i < j->n; i++) {
        if (j->conns && j->conns[i])
            virConnectClose(j->conns[i]);
        if (j->nodes)
            free(j->nodes[i]);
        if (j->fallback_cpus)
            free(j->fallback_cpus[i]);
    }
    free(j->conns);
    free(j->nodes);
    free(j->fallback_cpus);
    free(j->class_name);
    free(j->key);
    free(j->baseline);
    free(j->error);
    free(j);
}

static void job_release(void *opaque)
{
    job_free(opaque);
}

static void discover_work(struct job *j)
{
    char why[MESSAGE_MAX];
    const char **cpus = calloc(j->n, sizeof *cpus);
    char **owned = calloc(j->n, sizeof *owned);
    if (!cpus || !owned) {
        j->error = strdup("out of memory");
        goto out;
    }
    for (size_t i = 0; i < j->n; i++) {
        vf_node_gate_enter(j->conns[i]);
        char *caps = virConnectGetCapabilities(j->conns[i]);
        vf_node_gate_leave(j->conns[i]);
        if (!caps) {
            char what[128];
            snprintf(what, sizeof what, "node \"%s\": reading its capabilities failed",
                     j->nodes[i]);
            last_error(why, sizeof why, what);
            j->error = strdup(why);
            goto out;
        }
        /* A host <cpu> without a model (libvirt's test driver) cannot be
         * baselined: libvirt would only say "Missing CPU model name". */
        char model[128];
        int rc = vf_cluster_caps_cpu_model(caps, model, sizeof model);
        if (rc == 0)
            rc = vf_classes_caps_host_cpu(caps, &owned[i]);
        free(caps);
        if (rc < 0 && j->fallback_cpus[i]) {
            free(owned[i]);
            owned[i] = strdup(j->fallback_cpus[i]);
            rc = owned[i] ? 0 : -ENOMEM;
        }
        if (rc < 0) {
            snprintf(why, sizeof why, "node \"%s\": its capabilities name no host CPU model "
                                      "(%s), so it cannot take part in a CPU baseline",
                     j->nodes[i], rc == -ENOENT ? "libvirt reports none" : strerror(-rc));
            j->error = strdup(why);
            goto out;
        }
        cpus[i] = owned[i];
    }
    vf_node_gate_enter(j->conns[0]);
    int brc = vf_classes_baseline(j->conns[0], cpus, (unsigned)j->n, &j->baseline, why,
                                  sizeof why);
    vf_node_gate_leave(j->conns[0]);
    if (brc < 0) {
        char full[MESSAGE_MAX + 64];
        snprintf(full, sizeof full, "nodes %.200s: %s", j->key, why);
        j->error = strdup(full);
    }
out:
    if (owned)
        for (size_t i = 0; i < j->n; i++)
            free(owned[i]);
    free(owned);
    free(cpus);
    if (!j->baseline && !j->error)
        j->error = strdup("out of memory");
}

/* On a worker. */
static void job_run(void *opaque)
{
    discover_work(opaque);
}

static struct class_state *state_find(const char *name)
{
    for (struct class_state *s = classes; s; s = s->next)
        if (strcmp(s->name, name) == 0)
            return s;
    return NULL;
}

static void class_reconcile(const char *name, const struct json_object *nodes);

/* Loop thread. */
static void job_done(void *opaque)
{
    struct job *j = opaque;
    struct class_state *s = state_find(j->class_name);
    if (s && s->job_id == j->seq) {
        s->job_id = 0;
        set_str(&s->result_key, j->key);
        set_str(&s->baseline, j->baseline);
        set_str(&s->error, j->error);
        s->failed_at = j->error ? time(NULL) : 0;
        if (j->error)
            vf_log_warn("class \"%s\": CPU discovery failed: %s", j->class_name, j->error);
        else
            vf_log_info("class \"%s\": baseline CPU of nodes %s computed", j->class_name, j->key);
        class_reconcile(j->class_name, NULL);
    }
}

/* Starts the computation for the selected nodes (names in `selected`, joined
 * in `key`).  On failure the class records the error as its result. */
static void discovery_start(struct class_state *s, const struct json_object *selected,
                            const char *key)
{
    size_t n = json_object_array_length(selected);
    struct job *j = calloc(1, sizeof *j);
    char why[MESSAGE_MAX] = "out of memory";
    if (!j)
        goto fail;
    j->class_name = strdup(s->name);
    j->key = strdup(key);
    j->nodes = calloc(n, sizeof *j->nodes);
    j->conns = calloc(n, sizeof *j->conns);
    j->fallback_cpus = calloc(n, sizeof *j->fallback_cpus);
    j->n = n;
    if (!j->class_name || !j->key || !j->nodes || !j->conns || !j->fallback_cpus)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        const char *node = json_object_get_string(json_object_array_get_idx(selected, i));
        virConnectPtr conn = vf_cluster_connection(node);
        if (!(j->nodes[i] = strdup(node)))
            goto fail;
        if (!conn) {
            snprintf(why, sizeof why, "node \"%s\": not connected", node);
            goto fail;
        }
        /* The job's own reference: the cluster may drop the node meanwhile. */
        virConnectRef(conn);
        j->conns[i] = conn;
        for (struct test_cpu *t = test_cpus; t; t = t->next)
            if (strcmp(t->node, node) == 0 && !(j->fallback_cpus[i] = strdup(t->xml)))
                goto fail;
    }
    uint64_t seq = j->seq = jobs_next_seq++;
    int rc = vf_job_group_submit(&discovery_jobs, "CPU discovery", job_run, job_done, j);
    j = NULL;   /* the group's now, released on failure too */
    if (rc < 0) {
        snprintf(why, sizeof why, "cannot start the CPU discovery job: %s", strerror(-rc));
        goto fail;
    }
    s->job_id = seq;
    return;
fail:
    job_free(j);
    vf_log_warn("class \"%s\": CPU discovery of nodes %.400s: %s", s->name, key, why);
    set_str(&s->result_key, key);
    set_str(&s->baseline, NULL);
    set_str(&s->error, why);
    s->failed_at = time(NULL);
}

/* The model and required features of a baseline <cpu> (libvirt's output):
 * features without a policy or with policy='require'; disabled or optional
 * ones are not something a VM can rely on. */
static struct json_object *cpu_summary(const char *xml, struct json_object **features)
{
    struct json_object *out = json_object_new_object();
    struct vf_xml x;
    char text[256];
    *features = json_object_new_array();
    if (vf_xml_parse(&x, xml) == 0) {
        if (vf_xml_string(&x, NULL, "/cpu/model", text, sizeof text) == 0 && text[0])
            json_object_object_add(out, "model", json_object_new_string(text));
        xmlXPathObjectPtr r =
            vf_xml_select(&x, NULL, "/cpu/feature[not(@policy) or @policy='require']");
        int count = r ? xmlXPathNodeSetGetLength(r->nodesetval) : 0;
        for (int i = 0; i < count; i++)
            if (vf_xml_string(&x, xmlXPathNodeSetItem(r->nodesetval, i), "@name", text,
                              sizeof text) == 0 && text[0])
                json_object_array_add(*features, json_object_new_string(text));
        xmlXPathFreeObject(r);
    }
    vf_xml_free(&x);
    json_object_object_add(out, "features", json_object_get(*features));
    return out;
}

/* ---- class status ------------------------------------------------------------------ */

static bool node_ready(const struct json_object *node)
{
    return str_eq(vf_json_string(vf_json_member(node, "status"), "phase"), "Ready");
}

static struct json_object *nodes_list(void)
{
    struct vf_error err = {0};
    struct json_object *nodes = NULL;
    if (vf_objects_list(NODE_KIND, &nodes, NULL, &err) < 0) {
        vf_log_error("classes: cannot list nodes: %s", err.message);
        return NULL;
    }
    return nodes;
}

/* Names (sorted, as the store lists them) of the Ready nodes the class may use. */
static struct json_object *select_nodes(const struct json_object *vmclass,
                                        const struct json_object *nodes)
{
    struct json_object *spec = vf_json_member(vmclass, "spec");
    struct json_object *cpu = vf_json_member(spec, "cpu");
    struct json_object *sel = vf_json_member(spec, "nodeSelector");
    struct json_object *discovery = str_eq(vf_json_string(cpu, "type"), "Discovery")
                                        ? vf_json_member(vf_json_member(cpu, "discovery"), "nodeSelector") : NULL;
    struct json_object *out = json_object_new_array();
    size_t n = nodes ? json_object_array_length(nodes) : 0;
    for (size_t i = 0; i < n; i++) {
        const struct json_object *node = json_object_array_get_idx(nodes, i);
        struct json_object *labels = vf_json_member(vf_json_member(node, "metadata"), "labels");
        const char *name = vf_json_string(vf_json_member(node, "metadata"), "name");
        if (name && node_ready(node) && vf_selector_matches(sel, labels) &&
            vf_selector_matches(discovery, labels))
            json_object_array_add(out, json_object_new_string(name));
    }
    return out;
}

/* "a,b,c": names the node set in messages and as the key of a computation.
 * A new string, or NULL when out of memory. */
static char *join_names(const struct json_object *names)
{
    size_t n = json_object_array_length(names), len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(json_object_get_string(json_object_array_get_idx(names, i))) + 1;
    char *out = malloc(len);
    if (!out)
        return NULL;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i)
            strcat(out, ",");
        strcat(out, json_object_get_string(json_object_array_get_idx(names, i)));
    }
    return out;
}

struct verdict {
    const char *phase, *status, *reason;
    char message[MESSAGE_MAX + 128];
};

/* Decides the Discovery part: starts, keeps or reuses the computation for the
 * current node set, and adds the CPU to the status when there is one. */
static void discovery_status(struct class_state *s, const struct json_object *selected,
                             const char *key, struct json_object *status, struct verdict *v)
{
    if (json_object_array_length(selected) == 0) {
        v->phase = "Pending";
        v->status = "False";
        v->reason = "NoNodesSelected";
        snprintf(v->message, sizeof v->message,
                 "no Ready node matches the class's node selectors; the CPU is discovered "
                 "once one does");
        return;
    }
    bool have = str_eq(s->result_key, key);
    bool retry = have && s->error && time(NULL) - s->failed_at >= DISCOVERY_RETRY_S;
    if ((!have || retry) && s->job_id == 0) {
        discovery_start(s, selected, key);
        have = str_eq(s->result_key, key);   /* a failure to start is a result */
    }
    if (!have || s->job_id != 0) {
        v->phase = "Pending";
        v->status = "False";
        v->reason = "DiscoveringCPU";
        snprintf(v->message, sizeof v->message, "computing the baseline CPU of nodes %.400s", key);
        return;
    }
    if (s->error) {
        v->phase = "Pending";
        v->status = "False";
        v->reason = "CPUDiscoveryFailed";
        snprintf(v->message, sizeof v->message, "%s", s->error);
        return;
    }
    struct json_object *features;
    struct json_object *cpu = cpu_summary(s->baseline, &features);
    json_object_object_add(cpu, "type", json_object_new_string("Discovery"));
    json_object_object_add(status, "cpu", cpu);
    struct json_object *cf = json_object_new_object();
    json_object_object_add(cf, "enabled", features);
    json_object_object_add(status, "cpuFeatures", cf);
    json_object_object_add(status, "baselineCpuXml", json_object_new_string(s->baseline));
    v->phase = "Ready";
    v->status = "True";
    v->reason = "CPUDiscovered";
    snprintf(v->message, sizeof v->message, "baseline CPU %.64s of nodes %.400s",
             vf_json_string(cpu, "model") ? vf_json_string(cpu, "model") : "(no model)", key);
}

static bool owned_status_key(const char *key)
{
    static const char *const owned[] = {"phase", "availableNodes", "conditions", "cpu",
                                        "cpuFeatures", "baselineCpuXml", "observedGeneration"};
    for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++)
        if (strcmp(key, owned[i]) == 0)
            return true;
    return false;
}

static struct class_state *state_get(const char *name)
{
    struct class_state *s = state_find(name);
    if (s)
        return s;
    s = calloc(1, sizeof *s);
    if (!s || !(s->name = strdup(name))) {
        free(s);
        return NULL;
    }
    s->next = classes;
    classes = s;
    return s;
}

static void state_forget(const char *name)
{
    for (struct class_state **pp = &classes; *pp; pp = &(*pp)->next) {
        struct class_state *s = *pp;
        if (strcmp(s->name, name) == 0) {
            *pp = s->next;
            /* A job in flight finds no state and is dropped in job_done. */
            json_object_put(s->policies);
            free(s->name);
            free(s->result_key);
            free(s->baseline);
            free(s->error);
            free(s);
            return;
        }
    }
}

/* nodes: the Node objects, or NULL to list them here. */
static void class_reconcile(const char *name, const struct json_object *nodes)
{
    struct vf_error err = {0};
    struct json_object *obj = NULL, *listed = NULL;
    int rc = vf_objects_get(CLASS_KIND, name, &obj, &err);
    if (rc == -ENOENT) {
        bool known = state_find(name) != NULL;
        state_forget(name);
        if (known)
            vms_evaluate_class(name, NULL);
        return;
    }
    if (rc < 0) {
        vf_log_error("class \"%s\": cannot read it: %s", name, err.message);
        return;
    }
    struct class_state *s = state_get(name);
    if (!s) {
        vf_log_error("class \"%s\": out of memory", name);
        json_object_put(obj);
        return;
    }
    if (!nodes)
        nodes = listed = nodes_list();

    struct json_object *meta = vf_json_member(obj, "metadata");
    struct json_object *spec = vf_json_member(obj, "spec");
    struct json_object *selected = select_nodes(obj, nodes);
    struct json_object *status = json_object_new_object();
    struct verdict v = {.phase = "Ready", .status = "True", .reason = "Ready"};
    char *key = join_names(selected);
    if (!key) {
        vf_log_error("class \"%s\": out of memory", name);
        json_object_put(selected);
        json_object_put(status);
        json_object_put(listed);
        json_object_put(obj);
        return;
    }
    snprintf(v.message, sizeof v.message, "%zu Ready node(s) can run VMs of this class%s%.400s",
             json_object_array_length(selected), key[0] ? ": " : "", key);
    if (str_eq(vf_json_string(vf_json_member(spec, "cpu"), "type"), "Discovery"))
        discovery_status(s, selected, key, status, &v);
    free(key);
    if (vf_json_member(meta, "deletionTimestamp")) {
        v.phase = "Terminating";
        v.status = "False";
        v.reason = "Terminating";
        snprintf(v.message, sizeof v.message, "the class is being deleted");
    }
    json_object_object_add(status, "phase", json_object_new_string(v.phase));
    json_object_object_add(status, "availableNodes", selected);
    json_object_object_add(status, "observedGeneration",
                           json_object_new_int64(vf_json_int(meta, "generation", 0)));
    struct json_object *old = vf_json_member(obj, "status");
    if (old && json_object_is_type(old, json_type_object)) {
        json_object_object_foreach(old, k, val) {
            if (!owned_status_key(k))
                json_object_object_add(status, k, json_object_get(val));
        }
    }
    struct json_object *cond = json_object_new_object();
    json_object_object_add(cond, "type", json_object_new_string("Ready"));
    json_object_object_add(cond, "status", json_object_new_string(v.status));
    json_object_object_add(cond, "reason", json_object_new_string(v.reason));
    json_object_object_add(cond, "message", json_object_new_string(v.message));
    /* Take the old conditions so the Ready one keeps its transition time. */
    struct json_object *old_conds = vf_json_member(old, "conditions");
    struct json_object *tmp = json_object_new_object();
    if (old_conds)
        json_object_object_add(tmp, "conditions", vf_json_copy(old_conds));
    struct json_object *merged = merge_condition(tmp, cond);
    json_object_object_add(status, "conditions",
                           json_object_get(vf_json_member(merged, "conditions")));
    json_object_put(merged);
    json_object_put(tmp);

    if (!json_object_equal(status, old)) {
        rc = vf_objects_update_status(CLASS_KIND, name, status, NULL, &err);
        if (rc < 0 && rc != -ENOENT)
            vf_log_error("class \"%s\": cannot write its status: %s", name, err.message);
        else if (rc == 0 && !str_eq(vf_json_string(old, "phase"), v.phase))
            vf_log_info("class \"%s\": %s (%s)", name, v.phase, v.message);
    }
    json_object_put(status);

    /* Sizing is re-checked for the class's VMs when the policies change (and
     * when the class appears, for VMs that waited for it). */
    struct json_object *policies = vf_json_member(spec, "sizingPolicies");
    if (!s->seen || !json_object_equal(policies, s->policies)) {
        json_object_put(s->policies);
        s->policies = vf_json_copy(policies);
        s->seen = true;
        vms_evaluate_class(name, obj);
    }
    json_object_put(listed);
    json_object_put(obj);
}

/* ---- watches ----------------------------------------------------------------------- */

static void reconcile_all_classes(void)
{
    struct vf_error err = {0};
    struct json_object *items = NULL;
    if (vf_objects_list(CLASS_KIND, &items, NULL, &err) < 0) {
        vf_log_error("classes: cannot list classes: %s", err.message);
        return;
    }
    struct json_object *nodes = nodes_list();
    size_t n = json_object_array_length(items);
    for (size_t i = 0; i < n; i++) {
        const char *name = vf_object_name(json_object_array_get_idx(items, i));
        if (name)
            class_reconcile(name, nodes);
    }
    json_object_put(nodes);
    json_object_put(items);
}

static void on_event(void *opaque, const char *kind, enum vf_watch_event type,
                     const struct json_object *obj)
{
    (void)opaque;
    if (!started)
        return;
    const char *name = vf_object_name(obj);
    if (!name)
        return;
    if (strcmp(kind, CLASS_KIND) == 0)
        class_reconcile(name, NULL);
    else if (strcmp(kind, NODE_KIND) == 0)
        reconcile_all_classes();
    else if (strcmp(kind, VM_KIND) == 0 && type != VF_WATCH_DELETED)
        vm_evaluate_lookup(obj);
}

/* The seeds: "By default, a single VirtualMachineClass `generic` resource is
 * automatically created", a Nehalem CPU that most nodes can run and migrate. */
static int ensure_generic(void)
{
    struct vf_error err = {0};
    struct json_object *cur = NULL;
    int rc = vf_objects_get(CLASS_KIND, "generic", &cur, &err);
    json_object_put(cur);
    if (rc != -ENOENT) {
        if (rc < 0)
            vf_log_error("class \"generic\": cannot read it: %s", err.message);
        return rc;
    }
    struct json_object *obj = json_tokener_parse(
        "{\"apiVersion\": \"" VF_API_GROUP "/" VF_API_VERSION "\", \"kind\": \"" CLASS_KIND "\","
        " \"metadata\": {\"name\": \"generic\"},"
        " \"spec\": {\"cpu\": {\"type\": \"Model\", \"model\": \"Nehalem\"}}}");
    if (!obj)
        return -ENOMEM;
    rc = vf_objects_create(CLASS_KIND, obj, NULL, &err);
    json_object_put(obj);
    if (rc == -EEXIST)
        return 0;
    if (rc < 0)
        vf_log_error("class \"generic\": cannot create it: %s", err.message);
    else
        vf_log_info("class \"generic\" created (CPU model Nehalem)");
    return rc;
}

int vf_classes_start(void)
{
    struct vf_store *st = vf_objects_store();
    struct vf_error err = {0};
    if (started)
        return 0;
    if (!st) {
        vf_log_error("classes: the store is not open");
        return -ENODEV;
    }
    int rc = ensure_generic();
    if (rc < 0)
        return rc;
    started = true;
    static const char *const kinds[] = {CLASS_KIND, NODE_KIND, VM_KIND};
    struct vf_store_watch **slots[] = {&watch_classes, &watch_nodes, &watch_vms};
    for (size_t i = 0; i < 3; i++) {
        rc = vf_store_watch_add(st, kinds[i], 0, on_event, NULL, slots[i], &err);
        if (rc < 0) {
            vf_log_error("classes: cannot watch %s objects: %s", kinds[i], err.message);
            vf_classes_stop();
            return rc;
        }
    }
    return 0;
}

void vf_classes_stop(void)
{
    struct vf_store *st = vf_objects_store();
    struct vf_store_watch **slots[] = {&watch_classes, &watch_nodes, &watch_vms};
    for (size_t i = 0; i < 3; i++) {
        if (*slots[i] && st)
            vf_store_watch_remove(st, *slots[i]);
        *slots[i] = NULL;
    }
    started = false;
    while (classes)
        state_forget(classes->name);
    vf_job_group_drop_all(&discovery_jobs);
    vf_classes_set_test_host_cpu(NULL, NULL);
}

void vf_classes_set_test_host_cpu(const char *node, const char *cpu_xml)
{
    for (struct test_cpu **pp = &test_cpus; *pp;) {
        struct test_cpu *t = *pp;
        if (!node || strcmp(t->node, node) == 0) {
            *pp = t->next;
            free(t->node);
            free(t->xml);
            free(t);
        } else {
            pp = &t->next;
        }
    }
    if (!node || !cpu_xml)
        return;
    struct test_cpu *t = calloc(1, sizeof *t);
    if (!t || !(t->node = strdup(node)) || !(t->xml = strdup(cpu_xml))) {
        if (t)
            free(t->node);
        free(t);
        vf_log_error("classes: out of memory");
        return;
    }
    t->next = test_cpus;
    test_cpus = t;
}
