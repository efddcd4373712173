#include <config.h>
/* Placement: filter the nodes, score the ones left, explain a refusal.
 *
 * Cost per decision is one pass over the nodes.  Each node first gets the
 * checks that read no labels (state, free CPU and memory from its VM list's
 * reservations, which also give its score); the label filters (selectors,
 * affinity) run only for a node that would beat the best so far, and
 * anti-affinity then reads only that node's VMs.  Selectors are compiled once
 * per decision rather than re-walking their JSON per node.  So a decision is
 * O(nodes + VMs on the nodes), never O(nodes x all VMs); only affinity by a
 * topology other than the hostname looks at every VM, once per decision.
 * Failure texts are built only on refusal, for the few nodes the explanation
 * names. */
#include "core/placement.h"
#include "core/json_util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "core/label_selector.h"
#include "core/quantity.h"

#define HOSTNAME_TOPOLOGY "kubernetes.io/hostname"
#define EXPLAIN_NODES 5
#define SHARE_SCALE 1000000

enum reason {
    R_OK,
    R_EXCLUDED,
    R_NOT_READY,
    R_CORDONED,
    R_DISK_NODE,
    R_IMAGE_NODE,
    R_CLASS_SELECTOR,
    R_VM_SELECTOR,
    R_NODE_AFFINITY,
    R_ANTI_AFFINITY,
    R_AFFINITY,
    R_CPU,
    R_MEMORY,
    R_COUNT
};

static const char *const reason_names[R_COUNT] = {
    [R_OK] = "fits",
    [R_EXCLUDED] = "excluded",
    [R_NOT_READY] = "NotReady",
    [R_CORDONED] = "cordoned",
    [R_DISK_NODE] = "local disks elsewhere",
    [R_IMAGE_NODE] = "no copy of its CD-ROM image",
    [R_CLASS_SELECTOR] = "class nodeSelector",
    [R_VM_SELECTOR] = "VM nodeSelector",
    [R_NODE_AFFINITY] = "node affinity",
    [R_ANTI_AFFINITY] = "anti-affinity",
    [R_AFFINITY] = "affinity",
    [R_CPU] = "insufficient CPU",
    [R_MEMORY] = "insufficient memory",
};

/* One required (anti-)affinity term of spec.affinity. */
struct term {
    bool anti;
    struct vf_selector *sel;        /* NULL: no labelSelector, which matches no VM */
    const char *topology;           /* NULL: per node (hostname) */
    char desc[160];                 /* the selector as text, for explanations */
    /* Topology other than the hostname: the domains (values of the topology
     * label) where a matching VM runs, and one such VM for each. */
    const char **domains, **domain_vms;
    size_t n_domains;
    /* Affinity only: no VM anywhere matches the term but the VM itself does,
     * so the first VM of a group can go anywhere (as in Kubernetes). */
    bool self_satisfies;
};

struct decision {
    const struct vf_placement_request *req;
    const char *vm_name;
    struct vf_selector *class_sel, *vm_sel;
    struct vf_selector **node_terms;    /* nodeAffinity nodeSelectorTerms: any one must match */
    size_t n_node_terms;
    struct term *terms;
    size_t n_terms;
};

/* What a node looks like once filtered; the reservations are filled in only
 * when the node got as far as the resource filters. */
struct verdict {
    enum reason reason;
    int64_t cpu_reserved, memory_reserved;
    const char *blocking_vm;        /* affinity: the VM in the way */
    size_t term;                    /* affinity: which term failed */
    int selector_index;             /* selectors: the first requirement failed */
};

__attribute__((format(printf, 4, 5)))
static void append(char *buf, size_t len, size_t *used, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (!buf || *used >= len)
        return;
    va_start(ap, fmt);
    n = vsnprintf(buf + *used, len - *used, fmt, ap);
    va_end(ap);
    if (n > 0)
        *used = *used + (size_t)n < len ? *used + (size_t)n : len - 1;
}

/* ---- VM sizes ----------------------------------------------------------- */

/* "25%" or 25; 100 when absent or unreadable (the schema default). */
static int64_t core_fraction(const struct json_object *v)
{
    int64_t pct = 100;

    if (v && json_object_is_type(v, json_type_int)) {
        pct = json_object_get_int64(v);
    } else if (vf_json_as_string(v)) {
        char *end;
        long n = strtol(vf_json_as_string(v), &end, 10);
        if (end != vf_json_as_string(v) && (*end == '%' || *end == '\0'))
            pct = n;
    }
    return pct >= 1 && pct <= 100 ? pct : 100;
}

int64_t vf_placement_vm_cpu_millis(const struct json_object *vm_spec)
{
    const struct json_object *cpu = vf_json_member(vm_spec, "cpu");
    const struct json_object *cores = vf_json_member(cpu, "cores");
    int64_t n = cores && json_object_is_type(cores, json_type_int) ? json_object_get_int64(cores) : 1;

    if (n < 1)
        n = 1;
    /* cores x 1000 millicores x pct / 100, exact in integers. */
    return n * 10 * core_fraction(vf_json_member(cpu, "coreFraction"));
}

int64_t vf_placement_vm_memory(const struct json_object *vm_spec)
{
    const struct json_object *size = vf_json_member(vf_json_member(vm_spec, "memory"), "size");
    int64_t bytes;

    if (size && json_object_is_type(size, json_type_int))
        return json_object_get_int64(size) > 0 ? json_object_get_int64(size) : 0;
    if (vf_json_as_string(size) && vf_quantity_parse(vf_json_as_string(size), &bytes) == 0)
        return bytes;
    return 0;
}

/* ---- the request, compiled ---------------------------------------------- */

static void decision_free(struct decision *d)
{
    vf_selector_free(d->class_sel);
    vf_selector_free(d->vm_sel);
    for (size_t i = 0; i < d->n_node_terms; i++)
        vf_selector_free(d->node_terms[i]);
    free(d->node_terms);
    for (size_t i = 0; i < d->n_terms; i++) {
        vf_selector_free(d->terms[i].sel);
        free(d->terms[i].domains);
        free(d->terms[i].domain_vms);
    }
    free(d->terms);
}

/* requiredDuringSchedulingIgnoredDuringExecution of one affinity kind, or
 * NULL; -EINVAL when it is there but not a list. */
static int required_terms(const struct json_object *kind, const struct json_object **out)
{
    const struct json_object *req = vf_json_member(kind, "requiredDuringSchedulingIgnoredDuringExecution");

    *out = NULL;
    if (kind && !json_object_is_type(kind, json_type_object))
        return -EINVAL;
    if (req && !json_object_is_type(req, json_type_array))
        return -EINVAL;
    *out = req;
    return 0;
}

static int add_vm_terms(struct decision *d, const struct json_object *list, bool anti,
                        char *why, size_t why_len)
{
    const char *what = anti ? "virtualMachineAndPodAntiAffinity" : "virtualMachineAndPodAffinity";

    for (size_t i = 0, n = list ? json_object_array_length(list) : 0; i < n; i++) {
        const struct json_object *t = json_object_array_get_idx(list, i);
        const struct json_object *sel = vf_json_member(t, "labelSelector");
        const char *topology = vf_json_string(t, "topologyKey");
        struct term *term = &d->terms[d->n_terms++];

        term->anti = anti;
        if (!json_object_is_type(t, json_type_object) ||
            (vf_json_member(t, "topologyKey") && !topology) ||
            (sel && vf_selector_compile(sel, &term->sel) < 0)) {
            snprintf(why, why_len, "VM %s: spec.affinity.%s.requiredDuringSchedulingIgnoredDuring"
                     "Execution[%zu]: not a valid term (labelSelector with matchLabels/"
                     "matchExpressions, topologyKey)", d->vm_name, what, i);
            return -EINVAL;
        }
        if (topology && *topology && strcmp(topology, HOSTNAME_TOPOLOGY) != 0)
            term->topology = topology;
        if (term->sel)
            vf_selector_format(term->sel, term->desc, sizeof term->desc);
        else
            snprintf(term->desc, sizeof term->desc, "(no labelSelector)");
    }
    return 0;
}

static int add_node_terms(struct decision *d, const struct json_object *node_affinity,
                          char *why, size_t why_len)
{
    const struct json_object *req, *list;

    if (!node_affinity)
        return 0;
    if (!json_object_is_type(node_affinity, json_type_object))
        goto invalid;
    req = vf_json_member(node_affinity, "requiredDuringSchedulingIgnoredDuringExecution");
    if (!req)
        return 0;
    list = vf_json_member(req, "nodeSelectorTerms");
    if (!json_object_is_type(req, json_type_object) || !list ||
        !json_object_is_type(list, json_type_array))
        goto invalid;
    d->n_node_terms = json_object_array_length(list);
    d->node_terms = calloc(d->n_node_terms ? d->n_node_terms : 1, sizeof *d->node_terms);
    if (!d->node_terms) {
        d->n_node_terms = 0;
        snprintf(why, why_len, "VM %s: out of memory", d->vm_name);
        return -ENOMEM;
    }
    for (size_t i = 0; i < d->n_node_terms; i++) {
        const struct json_object *t = json_object_array_get_idx(list, i);
        /* matchFields selects by node name in Kubernetes; we have no field
         * set, and ignoring it would place a VM where it was kept from. */
        if (vf_json_member(t, "matchFields") || vf_selector_compile(t, &d->node_terms[i]) < 0)
            goto invalid;
    }
    return 0;

invalid:
    snprintf(why, why_len, "VM %s: spec.affinity.nodeAffinity.requiredDuringSchedulingIgnored"
             "DuringExecution: expected nodeSelectorTerms, a list of {matchExpressions} with "
             "operators In, NotIn, Exists or DoesNotExist", d->vm_name);
    return -EINVAL;
}

static int decision_init(struct decision *d, const struct vf_placement_request *req, char *why,
                         size_t why_len)
{
    const struct json_object *aff = req->affinity, *anti_list = NULL, *list = NULL;
    size_t n;
    int r;

    memset(d, 0, sizeof *d);
    d->req = req;
    d->vm_name = req->vm_name ? req->vm_name : "";
    if (vf_selector_compile(req->class_selector, &d->class_sel) < 0) {
        snprintf(why, why_len, "VM %s: the class's spec.nodeSelector is malformed", d->vm_name);
        return -EINVAL;
    }
    if (vf_selector_compile_map(req->vm_node_selector, &d->vm_sel) < 0) {
        snprintf(why, why_len, "VM %s: spec.nodeSelector must map label names to strings",
                 d->vm_name);
        return -EINVAL;
    }
    if (aff && !json_object_is_type(aff, json_type_object)) {
        snprintf(why, why_len, "VM %s: spec.affinity must be an object", d->vm_name);
        return -EINVAL;
    }
    if (required_terms(vf_json_member(aff, "virtualMachineAndPodAntiAffinity"), &anti_list) < 0 ||
        required_terms(vf_json_member(aff, "virtualMachineAndPodAffinity"), &list) < 0) {
        snprintf(why, why_len, "VM %s: spec.affinity: requiredDuringSchedulingIgnoredDuring"
                 "Execution must be a list of terms", d->vm_name);
        return -EINVAL;
    }
    n = (anti_list ? json_object_array_length(anti_list) : 0) +
        (list ? json_object_array_length(list) : 0);
    if (n) {
        d->terms = calloc(n, sizeof *d->terms);
        if (!d->terms) {
            snprintf(why, why_len, "VM %s: out of memory", d->vm_name);
            return -ENOMEM;
        }
    }
    if ((r = add_vm_terms(d, anti_list, true, why, why_len)) < 0 ||
        (r = add_vm_terms(d, list, false, why, why_len)) < 0 ||
        (r = add_node_terms(d, vf_json_member(aff, "nodeAffinity"), why, why_len)) < 0)
        return r;
    return 0;
}

/* ---- affinity ----------------------------------------------------------- */

static bool vm_matches(const struct decision *d, const struct term *t,
                       const struct vf_placement_vm *vm)
{
    /* Labels first: they rule out most VMs, and names are shared prefixes. */
    return t->sel && vf_selector_match(t->sel, vm->labels) && strcmp(vm->name, d->vm_name) != 0;
}

/* The first VM on node (other than the one being placed) that t selects. */
static const char *node_match(const struct decision *d, const struct term *t,
                              const struct vf_placement_node *node)
{
    for (size_t i = 0; i < node->n_vms; i++)
        if (vm_matches(d, t, &node->vms[i]))
            return node->vms[i].name;
    return NULL;
}

static const char *domain_vm(const struct term *t, const char *domain)
{
    for (size_t i = 0; i < t->n_domains; i++)
        if (strcmp(t->domains[i], domain) == 0)
            return t->domain_vms[i];
    return NULL;
}

/* The whole-cluster facts some terms need, gathered once per decision. */
static int terms_prepare(struct decision *d, const struct vf_placement_node *nodes, size_t n_nodes)
{
    for (size_t k = 0; k < d->n_terms; k++) {
        struct term *t = &d->terms[k];
        bool self = !t->anti && t->sel && vf_selector_match(t->sel, d->req->vm_labels);

        if (t->topology) {
            for (size_t i = 0; i < n_nodes; i++) {
                const char *domain = vf_json_string(nodes[i].labels, t->topology), *vm;
                if (!domain || domain_vm(t, domain) || !(vm = node_match(d, t, &nodes[i])))
                    continue;
                if (!t->domains) {
                    /* At most one domain per node. */
                    t->domains = calloc(n_nodes, sizeof *t->domains);
                    t->domain_vms = calloc(n_nodes, sizeof *t->domain_vms);
                    if (!t->domains || !t->domain_vms)
                        return -ENOMEM;
                }
                t->domains[t->n_domains] = domain;
                t->domain_vms[t->n_domains++] = vm;
            }
            t->self_satisfies = self && t->n_domains == 0;
        } else if (self) {
            t->self_satisfies = true;
            for (size_t i = 0; i < n_nodes && t->self_satisfies; i++)
                if (node_match(d, t, &nodes[i]))
                    t->self_satisfies = false;
        }
    }
    return 0;
}

/* Does term t allow node?  *vm names the VM that blocks (anti-affinity). */
static bool term_allows(const struct decision *d, const struct term *t,
                        const struct vf_placement_node *node, const char **vm)
{
    *vm = NULL;
    if (t->topology) {
        const char *domain = vf_json_string(node->labels, t->topology);
        if (!domain)
            return t->anti;   /* no domain: nothing there to avoid, nothing to join */
        *vm = domain_vm(t, domain);
    } else {
        *vm = node_match(d, t, node);
    }
    if (t->anti)
        return *vm == NULL;
    return *vm != NULL || t->self_satisfies;
}

/* ---- filters ------------------------------------------------------------ */

/* The filters come in three stages so that the search can run the cheap
 * ones first (see vf_placement_choose); check_node runs them in the
 * documented order, which is the order a refusal explains. */

static bool image_on_node(const char *const *nodes, const char *name)
{
    for (size_t i = 0; nodes && nodes[i]; i++)
        if (!strcmp(nodes[i], name))
            return true;
    return !nodes;
}

/* Exclusion, Ready, cordon, where the VM's storage is. */
static bool check_state(const struct decision *d, const struct vf_placement_node *node,
                        struct verdict *v)
{
    if (d->req->exclude_node && strcmp(d->req->exclude_node, node->name) == 0)
        v->reason = R_EXCLUDED;
    else if (!node->ready)
        v->reason = R_NOT_READY;
    else if (node->unschedulable)
        v->reason = R_CORDONED;
    else if (d->req->only_node && strcmp(d->req->only_node, node->name) != 0)
        v->reason = R_DISK_NODE;
    else if (!image_on_node(d->req->image_nodes, node->name))
        v->reason = R_IMAGE_NODE;
    return v->reason == R_OK;
}

/* Class and VM nodeSelector, node affinity, VM (anti-)affinity. */
static bool check_labels(const struct decision *d, const struct vf_placement_node *node,
                         struct verdict *v)
{
    int idx;

    if ((idx = vf_selector_mismatch(d->class_sel, node->labels)) >= 0) {
        v->reason = R_CLASS_SELECTOR;
        v->selector_index = idx;
        return false;
    }
    if ((idx = vf_selector_mismatch(d->vm_sel, node->labels)) >= 0) {
        v->reason = R_VM_SELECTOR;
        v->selector_index = idx;
        return false;
    }
    if (d->n_node_terms) {
        size_t i = 0;
        while (i < d->n_node_terms && !vf_selector_match(d->node_terms[i], node->labels))
            i++;
        if (i == d->n_node_terms) {
            v->reason = R_NODE_AFFINITY;
            v->selector_index = vf_selector_mismatch(d->node_terms[0], node->labels);
            return false;
        }
    }
    for (size_t k = 0; k < d->n_terms; k++) {
        if (!term_allows(d, &d->terms[k], node, &v->blocking_vm)) {
            v->reason = d->terms[k].anti ? R_ANTI_AFFINITY : R_AFFINITY;
            v->term = k;
            return false;
        }
    }
    return true;
}

/* Free CPU and memory; fills in the reservations for scoring. */
static bool check_resources(const struct decision *d, const struct vf_placement_node *node,
                            struct verdict *v)
{
    /* The caller leaves the VM being placed out of the lists (placement.h):
     * comparing every name here would cost more than the rest of the pass. */
    for (size_t i = 0; i < node->n_vms; i++) {
        v->cpu_reserved += node->vms[i].cpu_millis;
        v->memory_reserved += node->vms[i].memory_bytes;
    }
    if (node->cpu_capacity_millis - v->cpu_reserved < d->req->cpu_millis)
        v->reason = R_CPU;
    else if (node->memory_capacity_bytes - v->memory_reserved < d->req->memory_bytes)
        v->reason = R_MEMORY;
    return v->reason == R_OK;
}

static void verdict_init(struct verdict *v)
{
    memset(v, 0, sizeof *v);
    v->selector_index = -1;
}

static void check_node(const struct decision *d, const struct vf_placement_node *node,
                       struct verdict *v)
{
    verdict_init(v);
    if (check_state(d, node, v) && check_labels(d, node, v))
        check_resources(d, node, v);
}

/* "insufficient CPU: 500m free, 1000m requested" and the like. */
static void explain_node(const struct decision *d, const struct vf_placement_node *node,
                         const struct verdict *v, char *buf, size_t len, size_t *used)
{
    const struct term *t = v->reason == R_ANTI_AFFINITY || v->reason == R_AFFINITY
                               ? &d->terms[v->term]
                               : NULL;
    char text[512], a[32], b[32];
    int64_t free_amount;

    append(buf, len, used, "%s: ", node->name);
    switch (v->reason) {
    case R_CLASS_SELECTOR:
        vf_selector_explain(d->class_sel, v->selector_index, node->labels, text, sizeof text);
        append(buf, len, used, "%s", text);
        break;
    case R_VM_SELECTOR:
        vf_selector_explain(d->vm_sel, v->selector_index, node->labels, text, sizeof text);
        append(buf, len, used, "%s", text);
        break;
    case R_NODE_AFFINITY:
        vf_selector_explain(d->node_terms[0], v->selector_index, node->labels, text, sizeof text);
        append(buf, len, used, "node affinity: %s", text);
        break;
    case R_ANTI_AFFINITY:
        if (t->topology)
            append(buf, len, used, "anti-affinity: VM %s with %s runs in %s=%s", v->blocking_vm,
                   t->desc, t->topology, vf_json_string(node->labels, t->topology));
        else
            append(buf, len, used, "anti-affinity: VM %s with %s runs there", v->blocking_vm,
                   t->desc);
        break;
    case R_AFFINITY:
        if (t->topology && !vf_json_string(node->labels, t->topology))
            append(buf, len, used, "affinity: no label %s", t->topology);
        else if (t->topology)
            append(buf, len, used, "affinity: no VM with %s runs in %s=%s", t->desc, t->topology,
                   vf_json_string(node->labels, t->topology));
        else
            append(buf, len, used, "affinity: no VM with %s runs there", t->desc);
        break;
    case R_DISK_NODE:
        append(buf, len, used, "the VM's local disks are on node %s", d->req->only_node);
        break;
    case R_IMAGE_NODE:
        append(buf, len, used, "its CD-ROM image is not copied to this node yet");
        break;
    case R_CPU:
        free_amount = node->cpu_capacity_millis - v->cpu_reserved;
        append(buf, len, used, "insufficient CPU: %lldm free, %lldm requested",
               (long long)(free_amount > 0 ? free_amount : 0), (long long)d->req->cpu_millis);
        break;
    case R_MEMORY:
        free_amount = node->memory_capacity_bytes - v->memory_reserved;
        vf_quantity_format(free_amount > 0 ? free_amount : 0, a, sizeof a);
        vf_quantity_format(d->req->memory_bytes, b, sizeof b);
        append(buf, len, used, "insufficient memory: %s free, %s requested", a, b);
        break;
    default:
        append(buf, len, used, "%s", reason_names[v->reason]);
        break;
    }
}

/* ---- scoring ------------------------------------------------------------ */

/* Share of capacity in use after placing, in millionths (full when there is
 * no capacity).  128-bit so that bytes x scale cannot overflow. */
static int64_t share(int64_t reserved, int64_t request, int64_t capacity)
{
    int64_t used = reserved + request;

    if (capacity <= 0)
        return SHARE_SCALE;
    /* 64-bit division where it cannot overflow: it is much the cheaper. */
    if (used >= 0 && used <= INT64_MAX / SHARE_SCALE)
        return used * SHARE_SCALE / capacity;
    return (int64_t)((__int128)used * SHARE_SCALE / capacity);
}

/* VMs on the node with all of the new VM's labels: fewer means better spread. */
static size_t same_labels(const struct decision *d, const struct vf_placement_node *node)
{
    size_t n = 0;
    for (size_t i = 0; i < node->n_vms; i++)
        if (vf_map_selector_matches(d->req->vm_labels, node->vms[i].labels))
            n++;
    return n;
}

struct candidate {
    ssize_t index;
    int64_t score;                  /* mean of CPU and memory share after placing */
    ssize_t spread;                 /* same_labels, or -1 until a tie needs it */
};

static bool better(const struct decision *d, const struct vf_placement_node *nodes,
                   struct candidate *c, struct candidate *best)
{
    if (best->index < 0 || c->score != best->score)
        return best->index < 0 || c->score < best->score;
    if (c->spread < 0)
        c->spread = (ssize_t)same_labels(d, &nodes[c->index]);
    if (best->spread < 0)
        best->spread = (ssize_t)same_labels(d, &nodes[best->index]);
    if (c->spread != best->spread)
        return c->spread < best->spread;
    return strcmp(nodes[c->index].name, nodes[best->index].name) < 0;
}

/* ---- the decision ------------------------------------------------------- */

/* Keep the EXPLAIN_NODES nodes with the smallest names, sorted, so the
 * explanation does not depend on the order the nodes came in.  Run only when
 * every node refused, so the name comparisons cost nothing on success. */
static void remember_refused(const struct vf_placement_node *nodes, size_t *named, size_t *n_named,
                             size_t i)
{
    size_t at = *n_named;
    while (at > 0 && strcmp(nodes[i].name, nodes[named[at - 1]].name) < 0)
        at--;
    if (at >= EXPLAIN_NODES)
        return;
    if (*n_named < EXPLAIN_NODES)
        (*n_named)++;
    memmove(&named[at + 1], &named[at], (*n_named - 1 - at) * sizeof *named);
    named[at] = i;
}

static void explain_refusal(const struct decision *d, const struct vf_placement_node *nodes,
                            size_t n_nodes, const size_t *counts, char *why, size_t why_len)
{
    size_t used = 0, named[EXPLAIN_NODES], n_named = 0;

    for (size_t i = 0; i < n_nodes; i++)
        remember_refused(nodes, named, &n_named, i);

    if (n_nodes == 0) {
        append(why, why_len, &used, "no node can run VM %s: there are no nodes", d->vm_name);
        return;
    }
    append(why, why_len, &used, "no node can run VM %s (%zu node%s checked: ", d->vm_name, n_nodes,
           n_nodes == 1 ? "" : "s");
    for (size_t k = 0; k < n_named; k++) {
        struct verdict v;
        check_node(d, &nodes[named[k]], &v);
        if (k)
            append(why, why_len, &used, "; ");
        explain_node(d, &nodes[named[k]], &v, why, why_len, &used);
    }
    if (n_nodes > n_named) {
        bool first = true;
        append(why, why_len, &used, "; %zu more; in all: ", n_nodes - n_named);
        for (int r = R_OK + 1; r < R_COUNT; r++) {
            if (!counts[r])
                continue;
            append(why, why_len, &used, "%s%zu %s", first ? "" : ", ", counts[r], reason_names[r]);
            first = false;
        }
    }
    append(why, why_len, &used, ")");
}

int vf_placement_choose(const struct vf_placement_request *req, const struct vf_placement_node *nodes,
                        size_t n_nodes, char *why, size_t why_len)
{
    struct decision d;
    struct candidate best = {.index = -1, .spread = -1};
    char scratch[1];

    if (!why || why_len == 0) {
        why = scratch;
        why_len = sizeof scratch;
    }
    why[0] = '\0';
    if (decision_init(&d, req, why, why_len) < 0) {
        decision_free(&d);
        return -1;
    }
    if (terms_prepare(&d, nodes, n_nodes) < 0) {
        snprintf(why, why_len, "VM %s: out of memory", d.vm_name);
        decision_free(&d);
        return -1;
    }
    /* The answer is the best-scored node among those that pass every filter;
     * the filters commute, so the search checks the cheap ones (state, free
     * resources, which also give the score) first and reads labels only for a
     * node that would beat the best so far.  Most nodes never get that far. */
    for (size_t i = 0; i < n_nodes; i++) {
        const struct vf_placement_node *node = &nodes[i];
        struct verdict v;
        struct candidate c = {.index = (ssize_t)i, .spread = -1};

        verdict_init(&v);
        if (!check_state(&d, node, &v) || !check_resources(&d, node, &v))
            continue;
        c.score = (share(v.cpu_reserved, req->cpu_millis, node->cpu_capacity_millis) +
                   share(v.memory_reserved, req->memory_bytes, node->memory_capacity_bytes)) / 2;
        if (better(&d, nodes, &c, &best) && check_labels(&d, node, &v))
            best = c;
    }
    if (best.index < 0) {
        /* Refused: count every node's first failing filter, in order. */
        size_t counts[R_COUNT] = {0};
        for (size_t i = 0; i < n_nodes; i++) {
            struct verdict v;
            check_node(&d, &nodes[i], &v);
            counts[v.reason]++;
        }
        explain_refusal(&d, nodes, n_nodes, counts, why, why_len);
    }
    decision_free(&d);
    return best.index < 0 ? -1 : (int)best.index;
}
