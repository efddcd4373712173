/* Placement: which node a VM should run on.  A pure, deterministic function of
 * its inputs (the controller gathers them from the store), so it is cheap to
 * test and to benchmark, and it explains every refusal.
 *
 * Filters, in order: node Ready, not cordoned (spec.unschedulable), the node
 * of the VM's local disks (when it has any), the class's
 * spec.nodeSelector, the VM's spec.nodeSelector, the VM's affinity rules
 * (required anti-affinity / affinity to VMs by labels, per node), free CPU
 * (reserved = sum over VMs placed on the node of cores x coreFraction, in
 * millicores) and free memory.  Score: least reserved (CPU and memory share
 * after placing), then fewest VMs of the same labels (spread), then the node
 * name (determinism). */
#ifndef VF_PLACEMENT_H
#define VF_PLACEMENT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>

struct vf_placement_vm {            /* a VM already placed, for affinity and reservation */
    const char *name;
    const struct json_object *labels;   /* metadata.labels or NULL */
    int64_t cpu_millis;             /* cores x coreFraction x 1000 / 100 */
    int64_t memory_bytes;
};

struct vf_placement_node {
    const char *name;
    bool ready;                     /* status.phase == Ready */
    bool unschedulable;             /* spec.unschedulable (cordon) */
    const struct json_object *labels;
    int64_t cpu_capacity_millis;    /* allocatable CPUs x 1000 */
    int64_t memory_capacity_bytes;
    /* VMs currently placed on (or reserved for) this node.  Leave out the VM
     * being placed: its reservation would count twice (affinity ignores a VM
     * of the request's name either way). */
    const struct vf_placement_vm *vms;
    size_t n_vms;
};

struct vf_placement_request {
    const char *vm_name;
    const struct json_object *vm_labels;
    int64_t cpu_millis;
    int64_t memory_bytes;
    const struct json_object *class_selector;   /* class spec.nodeSelector or NULL */
    const struct json_object *vm_node_selector; /* VM spec.nodeSelector (map) or NULL */
    const struct json_object *affinity;         /* VM spec.affinity or NULL, see below */
    const char *exclude_node;                   /* e.g. the source of a migration, or NULL */
    const char *only_node;                      /* the node of the VM's local disks, or NULL */
    /* The nodes that hold a copy of each of the VM's CD-ROM images
     * (NULL-terminated), or NULL: any node. */
    const char *const *image_nodes;
};
/* spec.affinity, a subset of Kubernetes' shape:
 *   { "virtualMachineAndPodAntiAffinity": { "requiredDuringSchedulingIgnoredDuringExecution":
 *       [ { "labelSelector": {matchLabels, matchExpressions}, "topologyKey": "kubernetes.io/hostname" } ] },
 *     "virtualMachineAndPodAffinity": { same shape } }
 * topologyKey kubernetes.io/hostname (per node) is the one supported; other keys
 * group nodes by that node label's value. */

/* Choose a node.  Returns the index of the chosen node in nodes[], or -1 with
 * `why` explaining, e.g. "no node satisfies nodeSelector group=green (3 nodes
 * checked: node-a: label group=blue; node-b: NotReady; node-c: cordoned)". */
int vf_placement_choose(const struct vf_placement_request *req, const struct vf_placement_node *nodes,
                        size_t n_nodes, char *why, size_t why_len);
/* Millicores a VM reserves: cores x coreFraction ("25%", default 100%). */
int64_t vf_placement_vm_cpu_millis(const struct json_object *vm_spec);
/* Bytes of memory a VM reserves (spec.memory.size). */
int64_t vf_placement_vm_memory(const struct json_object *vm_spec);
#endif
