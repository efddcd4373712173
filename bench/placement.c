#include <config.h>
/* Placement benchmark: 10,000 VMs placed one after another on 1,000 nodes,
 * each placed VM added to its node's list so reservations and anti-affinity
 * accumulate as they would in a filling cluster.  Node labels zone/group/cpu;
 * about a third of the VMs carry a class nodeSelector with matchExpressions,
 * a third a VM nodeSelector map, every fifth anti-affinity to its own app
 * label, and a few ask for labels no node has.  Prints the total time, the
 * decisions per second and how many VMs were refused.
 *
 *   make bench/placement && ./bench/placement [vms] [nodes] */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/placement.h"

struct node_state {
    char name[32];
    struct json_object *labels;
    struct vf_placement_vm *vms;
    size_t n_vms, cap;
};

static const char *const class_selectors[] = {
    "{\"matchExpressions\":[{\"key\":\"group\",\"operator\":\"In\",\"values\":[\"green\",\"blue\"]}]}",
    "{\"matchExpressions\":[{\"key\":\"cpu\",\"operator\":\"NotIn\",\"values\":[\"amd\"]},"
    "{\"key\":\"zone\",\"operator\":\"Exists\"}]}",
    "{\"matchLabels\":{\"zone\":\"z1\"},\"matchExpressions\":[{\"key\":\"gpu\",\"operator\":"
    "\"DoesNotExist\"}]}",
    /* No node has group purple: these VMs are refused. */
    "{\"matchExpressions\":[{\"key\":\"group\",\"operator\":\"In\",\"values\":[\"purple\"]}]}",
};
static const char *const vm_selectors[] = {
    "{\"zone\":\"z2\"}",
    "{\"group\":\"red\"}",
    "{\"cpu\":\"intel\",\"zone\":\"z3\"}",
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct json_object *parse(const char *text)
{
    struct json_object *o = json_tokener_parse(text);
    if (!o) {
        fprintf(stderr, "placement bench: bad built-in JSON: %s\n", text);
        exit(1);
    }
    return o;
}

static int node_add_vm(struct node_state *n, const struct vf_placement_vm *vm)
{
    if (n->n_vms == n->cap) {
        size_t cap = n->cap ? n->cap * 2 : 8;
        struct vf_placement_vm *grown = realloc(n->vms, cap * sizeof *grown);
        if (!grown)
            return -ENOMEM;
        n->vms = grown;
        n->cap = cap;
    }
    n->vms[n->n_vms++] = *vm;
    return 0;
}

int main(int argc, char **argv)
{
    size_t n_vms = argc > 1 ? strtoul(argv[1], NULL, 10) : 10000;
    size_t n_nodes = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000;
    const size_t n_class = sizeof class_selectors / sizeof class_selectors[0];
    const size_t n_map = sizeof vm_selectors / sizeof vm_selectors[0];
    struct node_state *state = calloc(n_nodes ? n_nodes : 1, sizeof *state);
    struct vf_placement_node *nodes = calloc(n_nodes ? n_nodes : 1, sizeof *nodes);
    struct json_object **vm_labels = calloc(n_vms ? n_vms : 1, sizeof *vm_labels);
    struct json_object **affinity = calloc(n_vms ? n_vms : 1, sizeof *affinity);
    char **names = calloc(n_vms ? n_vms : 1, sizeof *names);
    struct json_object *classes[sizeof class_selectors / sizeof class_selectors[0]];
    struct json_object *maps[sizeof vm_selectors / sizeof vm_selectors[0]];
    size_t refused = 0, by_class = 0, by_map = 0, anti = 0;
    char why[2048], first_refusal[2048] = "";
    double start, elapsed;

    if (!state || !nodes || !vm_labels || !affinity || !names) {
        fprintf(stderr, "placement bench: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < n_class; i++)
        classes[i] = parse(class_selectors[i]);
    for (size_t i = 0; i < n_map; i++)
        maps[i] = parse(vm_selectors[i]);

    static const char *const groups[] = {"green", "blue", "red"};
    for (size_t i = 0; i < n_nodes; i++) {
        struct node_state *n = &state[i];
        snprintf(n->name, sizeof n->name, "node-%04zu", i);
        n->labels = json_object_new_object();
        json_object_object_add(n->labels, "zone", json_object_new_string((const char *[]){
            "z0", "z1", "z2", "z3"}[i % 4]));
        json_object_object_add(n->labels, "group", json_object_new_string(groups[(i / 4) % 3]));
        json_object_object_add(n->labels, "cpu", json_object_new_string(i % 5 < 3 ? "intel" : "amd"));
        json_object_object_add(n->labels, "kubernetes.io/hostname", json_object_new_string(n->name));
        nodes[i].name = n->name;
        nodes[i].ready = i % 50 != 49;
        nodes[i].unschedulable = i % 73 == 72;
        nodes[i].labels = n->labels;
        nodes[i].cpu_capacity_millis = 16000;
        nodes[i].memory_capacity_bytes = (int64_t)64 << 30;
    }

    for (size_t v = 0; v < n_vms; v++) {
        char app[32];
        if (asprintf(&names[v], "vm-%05zu", v) < 0)
            return 1;
        snprintf(app, sizeof app, "app-%zu", v % 400);
        vm_labels[v] = json_object_new_object();
        json_object_object_add(vm_labels[v], "app", json_object_new_string(app));
        if (v % 5 == 0) {
            char text[256];
            snprintf(text, sizeof text, "{\"virtualMachineAndPodAntiAffinity\":{"
                     "\"requiredDuringSchedulingIgnoredDuringExecution\":[{\"labelSelector\":"
                     "{\"matchLabels\":{\"app\":\"%s\"}},\"topologyKey\":\"kubernetes.io/hostname\"}]}}",
                     app);
            affinity[v] = parse(text);
        }
    }

    start = now();
    for (size_t v = 0; v < n_vms; v++) {
        /* Sizes: 1-4 cores at 25/50/100%, 1-8 GiB. */
        int64_t cores = 1 + (int64_t)(v % 4), pct = (int64_t[]){25, 50, 100}[v % 3];
        struct vf_placement_request req = {
            .vm_name = names[v],
            .vm_labels = vm_labels[v],
            .cpu_millis = cores * 10 * pct,
            .memory_bytes = (int64_t)(1 + v % 8) << 30,
            .affinity = affinity[v],
        };
        int chosen;

        switch (v % 3) {
        case 0:
            /* One in 25 of these asks for a group no node has. */
            req.class_selector = classes[v % 75 == 0 ? n_class - 1 : (v / 3) % (n_class - 1)];
            by_class++;
            break;
        case 1:
            req.vm_node_selector = maps[(v / 3) % n_map];
            by_map++;
            break;
        default:
            break;
        }
        anti += affinity[v] != NULL;
        chosen = vf_placement_choose(&req, nodes, n_nodes, why, sizeof why);
        if (chosen < 0) {
            if (!refused)
                snprintf(first_refusal, sizeof first_refusal, "%s", why);
            refused++;
            continue;
        }
        struct vf_placement_vm vm = {
            .name = names[v],
            .labels = vm_labels[v],
            .cpu_millis = req.cpu_millis,
            .memory_bytes = req.memory_bytes,
        };
        if (node_add_vm(&state[chosen], &vm) < 0) {
            fprintf(stderr, "placement bench: out of memory\n");
            return 1;
        }
        nodes[chosen].vms = state[chosen].vms;
        nodes[chosen].n_vms = state[chosen].n_vms;
    }
    elapsed = now() - start;

    printf("placement: %zu VMs on %zu nodes (%zu with a class nodeSelector, %zu with a VM "
           "nodeSelector, %zu with anti-affinity)\n", n_vms, n_nodes, by_class, by_map, anti);
    printf("placement: %.3f s total, %.0f decisions/s, %.1f us per decision, %zu refused\n",
           elapsed, elapsed > 0 ? (double)n_vms / elapsed : 0.0,
           n_vms ? elapsed * 1e6 / (double)n_vms : 0.0, refused);
    if (refused)
        printf("placement: first refusal: %s\n", first_refusal);

    for (size_t i = 0; i < n_nodes; i++) {
        json_object_put(state[i].labels);
        free(state[i].vms);
    }
    for (size_t v = 0; v < n_vms; v++) {
        json_object_put(vm_labels[v]);
        json_object_put(affinity[v]);
        free(names[v]);
    }
    for (size_t i = 0; i < n_class; i++)
        json_object_put(classes[i]);
    for (size_t i = 0; i < n_map; i++)
        json_object_put(maps[i]);
    free(state);
    free(nodes);
    free(vm_labels);
    free(affinity);
    free(names);
    return 0;
}
