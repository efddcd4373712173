#include <config.h>
/* Label selectors (each operator, absent keys, empty selectors, text) and
 * placement (each filter, scoring and spread, determinism, the explanation of
 * a refusal, affinity, exact CPU and memory accounting at the boundary). */
#include <errno.h>

#include "core/label_selector.h"
#include "core/placement.h"
#include "tests/unit/testlib.h"

#define GI ((int64_t)1 << 30)

/* ---- a small cluster to place on ---------------------------------------- */

#define MAX_NODES 16
#define MAX_VMS 32

struct cluster {
    struct vf_placement_node nodes[MAX_NODES];
    struct vf_placement_vm vms[MAX_NODES][MAX_VMS];
    struct json_object *owned[MAX_NODES * (MAX_VMS + 1) + 16];
    size_t n_nodes, n_owned;
    char why[2048];
};

static const struct json_object *own(struct cluster *c, const char *json)
{
    struct json_object *o = json ? vf_test_json(json) : NULL;
    if (o) {
        ck_assert_uint_lt(c->n_owned, sizeof c->owned / sizeof c->owned[0]);
        c->owned[c->n_owned++] = o;
    }
    return o;
}

/* A Ready node with 4 CPUs and 8Gi; labels as JSON text or NULL. */
static struct vf_placement_node *add_node(struct cluster *c, const char *name, const char *labels)
{
    struct vf_placement_node *n = &c->nodes[c->n_nodes];
    ck_assert_uint_lt(c->n_nodes, MAX_NODES);
    n->name = name;
    n->ready = true;
    n->labels = own(c, labels);
    n->cpu_capacity_millis = 4000;
    n->memory_capacity_bytes = 8 * GI;
    n->vms = c->vms[c->n_nodes];
    c->n_nodes++;
    return n;
}

static void add_vm(struct cluster *c, size_t node, const char *name, const char *labels,
                   int64_t cpu_millis, int64_t memory)
{
    struct vf_placement_node *n = &c->nodes[node];
    ck_assert_uint_lt(n->n_vms, MAX_VMS);
    c->vms[node][n->n_vms++] = (struct vf_placement_vm){
        .name = name, .labels = own(c, labels), .cpu_millis = cpu_millis, .memory_bytes = memory};
}

static void cluster_free(struct cluster *c)
{
    for (size_t i = 0; i < c->n_owned; i++)
        json_object_put(c->owned[i]);
    c->n_owned = 0;
}

static int choose(struct cluster *c, const struct vf_placement_request *req)
{
    c->why[0] = 'x';
    c->why[1] = '\0';
    return vf_placement_choose(req, c->nodes, c->n_nodes, c->why, sizeof c->why);
}

static struct vf_placement_request request(const char *name, int64_t cpu, int64_t mem)
{
    return (struct vf_placement_request){.vm_name = name, .cpu_millis = cpu, .memory_bytes = mem};
}

#define ck_assert_contains(haystack, needle) \
    ck_assert_msg(strstr((haystack), (needle)) != NULL, "\"%s\" lacks \"%s\"", (haystack), (needle))

/* ---- selectors ----------------------------------------------------------- */

static bool sel_matches(const char *selector, const char *labels)
{
    struct json_object *s = selector ? vf_test_json(selector) : NULL;
    struct json_object *l = labels ? vf_test_json(labels) : NULL;
    struct vf_selector *compiled;
    bool direct = vf_selector_matches(s, l);

    /* The compiled form must always agree with the direct one. */
    ck_assert_int_eq(vf_selector_compile(s, &compiled), 0);
    ck_assert_int_eq(vf_selector_match(compiled, l), direct);
    vf_selector_free(compiled);
    json_object_put(s);
    json_object_put(l);
    return direct;
}

#define EXPR(op, values) \
    "{\"matchExpressions\":[{\"key\":\"group\",\"operator\":\"" op "\"" values "}]}"

START_TEST(selector_in)
{
    ck_assert(sel_matches(EXPR("In", ",\"values\":[\"green\",\"blue\"]"), "{\"group\":\"blue\"}"));
    ck_assert(!sel_matches(EXPR("In", ",\"values\":[\"green\"]"), "{\"group\":\"blue\"}"));
    ck_assert(!sel_matches(EXPR("In", ",\"values\":[\"green\"]"), "{\"zone\":\"a\"}"));
    ck_assert(!sel_matches(EXPR("In", ",\"values\":[\"green\"]"), NULL));
}
END_TEST

START_TEST(selector_not_in)
{
    ck_assert(!sel_matches(EXPR("NotIn", ",\"values\":[\"green\"]"), "{\"group\":\"green\"}"));
    ck_assert(sel_matches(EXPR("NotIn", ",\"values\":[\"green\"]"), "{\"group\":\"blue\"}"));
    /* Kubernetes: NotIn holds when the key is absent. */
    ck_assert(sel_matches(EXPR("NotIn", ",\"values\":[\"green\"]"), "{\"zone\":\"a\"}"));
    ck_assert(sel_matches(EXPR("NotIn", ",\"values\":[\"green\"]"), NULL));
}
END_TEST

START_TEST(selector_exists)
{
    ck_assert(sel_matches(EXPR("Exists", ""), "{\"group\":\"\"}"));
    ck_assert(!sel_matches(EXPR("Exists", ""), "{\"zone\":\"a\"}"));
    ck_assert(sel_matches(EXPR("DoesNotExist", ""), "{\"zone\":\"a\"}"));
    ck_assert(sel_matches(EXPR("DoesNotExist", ""), NULL));
    ck_assert(!sel_matches(EXPR("DoesNotExist", ""), "{\"group\":\"x\"}"));
}
END_TEST

START_TEST(selector_empty)
{
    ck_assert(sel_matches(NULL, NULL));
    ck_assert(sel_matches("{}", NULL));
    ck_assert(sel_matches("{}", "{\"a\":\"b\"}"));
    ck_assert(sel_matches("{\"matchLabels\":{},\"matchExpressions\":[]}", "{\"a\":\"b\"}"));
    ck_assert(vf_map_selector_matches(NULL, NULL));
}
END_TEST

START_TEST(selector_labels_and_expressions)
{
    const char *sel = "{\"matchLabels\":{\"zone\":\"a\"},\"matchExpressions\":["
                      "{\"key\":\"group\",\"operator\":\"In\",\"values\":[\"green\"]}]}";
    struct json_object *map = vf_test_json("{\"zone\":\"a\",\"cpu\":\"intel\"}");
    struct json_object *l1 = vf_test_json("{\"zone\":\"a\",\"cpu\":\"intel\",\"x\":\"y\"}");
    struct json_object *l2 = vf_test_json("{\"zone\":\"a\",\"cpu\":\"amd\"}");

    ck_assert(sel_matches(sel, "{\"zone\":\"a\",\"group\":\"green\"}"));
    ck_assert(!sel_matches(sel, "{\"zone\":\"b\",\"group\":\"green\"}"));
    ck_assert(!sel_matches(sel, "{\"zone\":\"a\",\"group\":\"blue\"}"));
    ck_assert(vf_map_selector_matches(map, l1));
    ck_assert(!vf_map_selector_matches(map, l2));
    ck_assert(!vf_map_selector_matches(map, NULL));
    json_object_put(map);
    json_object_put(l1);
    json_object_put(l2);
}
END_TEST

START_TEST(selector_text)
{
    struct json_object *s = vf_test_json(
        "{\"matchLabels\":{\"zone\":\"a\"},\"matchExpressions\":["
        "{\"key\":\"group\",\"operator\":\"In\",\"values\":[\"green\",\"blue\"]},"
        "{\"key\":\"gpu\",\"operator\":\"DoesNotExist\"}]}");
    struct json_object *labels = vf_test_json("{\"zone\":\"a\",\"group\":\"red\"}");
    struct vf_selector *sel;
    char buf[256];

    vf_selector_describe(s, buf, sizeof buf);
    ck_assert_str_eq(buf, "zone=a, group In (green, blue), gpu DoesNotExist");
    ck_assert_int_eq(vf_selector_compile(s, &sel), 0);
    ck_assert_int_eq(vf_selector_mismatch(sel, labels), 1);
    vf_selector_explain(sel, 1, labels, buf, sizeof buf);
    ck_assert_str_eq(buf, "label group=red does not match group In (green, blue)");
    vf_selector_explain(sel, 0, NULL, buf, sizeof buf);
    ck_assert_str_eq(buf, "no label zone, required by zone=a");
    /* Truncation keeps the buffer a string. */
    vf_selector_describe(s, buf, 8);
    ck_assert_str_eq(buf, "zone=a,");
    vf_selector_free(sel);
    json_object_put(s);
    json_object_put(labels);
}
END_TEST

START_TEST(selector_malformed)
{
    struct vf_selector *sel = (struct vf_selector *)1;
    struct json_object *bad = vf_test_json(EXPR("Like", ",\"values\":[\"g\"]"));
    struct json_object *no_values = vf_test_json(EXPR("In", ""));
    struct json_object *labels = vf_test_json("{\"group\":\"g\"}");

    /* A selector we cannot read must never match by accident. */
    ck_assert(!vf_selector_matches(bad, labels));
    ck_assert(!vf_selector_matches(no_values, labels));
    ck_assert_int_eq(vf_selector_compile(bad, &sel), -EINVAL);
    ck_assert_ptr_null(sel);
    ck_assert_int_eq(vf_selector_compile(no_values, &sel), -EINVAL);
    json_object_put(bad);
    json_object_put(no_values);
    json_object_put(labels);
}
END_TEST

/* ---- VM sizes ------------------------------------------------------------ */

START_TEST(vm_sizes)
{
    struct json_object *a = vf_test_json("{\"cpu\":{\"cores\":4,\"coreFraction\":\"25%\"},"
                                         "\"memory\":{\"size\":\"1536Mi\"}}");
    struct json_object *b = vf_test_json("{\"cpu\":{\"cores\":3}}");
    struct json_object *c = vf_test_json("{\"cpu\":{\"cores\":2,\"coreFraction\":\"5%\"},"
                                         "\"memory\":{\"size\":\"1G\"}}");

    ck_assert_int_eq(vf_placement_vm_cpu_millis(a), 1000);
    ck_assert_int_eq(vf_placement_vm_memory(a), 1536LL << 20);
    ck_assert_int_eq(vf_placement_vm_cpu_millis(b), 3000);
    ck_assert_int_eq(vf_placement_vm_memory(b), 0);
    ck_assert_int_eq(vf_placement_vm_cpu_millis(c), 100);
    ck_assert_int_eq(vf_placement_vm_memory(c), 1000000000);
    json_object_put(a);
    json_object_put(b);
    json_object_put(c);
}
END_TEST

/* ---- filters ------------------------------------------------------------- */

START_TEST(filter_state)
{
    struct cluster c = {0};
    struct vf_placement_request req = request("vm", 1000, GI);

    add_node(&c, "node-a", NULL)->ready = false;
    add_node(&c, "node-b", NULL)->unschedulable = true;
    add_node(&c, "node-c", NULL);
    ck_assert_int_eq(choose(&c, &req), 2);
    req.exclude_node = "node-c";
    ck_assert_int_eq(choose(&c, &req), -1);
    ck_assert_str_eq(c.why, "no node can run VM vm (3 nodes checked: node-a: NotReady; "
                            "node-b: cordoned; node-c: excluded)");
    cluster_free(&c);
}
END_TEST

START_TEST(filter_selectors)
{
    struct cluster c = {0};
    struct vf_placement_request req = request("vm", 1000, GI);

    add_node(&c, "node-a", "{\"group\":\"blue\",\"zone\":\"a\"}");
    add_node(&c, "node-b", "{\"group\":\"green\",\"zone\":\"a\"}");
    add_node(&c, "node-c", "{\"group\":\"green\",\"zone\":\"b\"}");
    req.class_selector = own(&c, EXPR("In", ",\"values\":[\"green\"]"));
    ck_assert_int_eq(choose(&c, &req), 1);   /* b and c tie; the name decides */
    req.vm_node_selector = own(&c, "{\"zone\":\"b\"}");
    ck_assert_int_eq(choose(&c, &req), 2);
    req.vm_node_selector = own(&c, "{\"zone\":\"c\"}");
    ck_assert_int_eq(choose(&c, &req), -1);
    ck_assert_contains(c.why, "node-a: label group=blue does not match group In (green)");
    ck_assert_contains(c.why, "node-b: label zone=a does not match zone=c");
    ck_assert_contains(c.why, "node-c: label zone=b does not match zone=c");
    req.class_selector = own(&c, EXPR("Exists", ""));
    req.vm_node_selector = NULL;
    c.nodes[0].labels = NULL;
    ck_assert_int_eq(choose(&c, &req), 1);
    cluster_free(&c);
}
END_TEST

START_TEST(filter_cpu_boundary)
{
    struct cluster c = {0};
    struct vf_placement_request req = request("vm", 500, GI);

    add_node(&c, "node-a", NULL)->cpu_capacity_millis = 2000;
    add_vm(&c, 0, "x", NULL, 1000, 0);
    add_vm(&c, 0, "y", NULL, 500, 0);
    ck_assert_int_eq(choose(&c, &req), 0);   /* exactly the free 500m fits */
    req.cpu_millis = 501;
    ck_assert_int_eq(choose(&c, &req), -1);
    ck_assert_str_eq(c.why, "no node can run VM vm (1 node checked: node-a: insufficient CPU: "
                            "500m free, 501m requested)");
    cluster_free(&c);
}
END_TEST

START_TEST(filter_memory_boundary)
{
    struct cluster c = {0};
    struct vf_placement_request req = request("vm", 100, 2 * GI);

    add_node(&c, "node-a", NULL);   /* 8Gi */
    add_vm(&c, 0, "x", NULL, 100, 6 * GI);
    ck_assert_int_eq(choose(&c, &req), 0);
    req.memory_bytes = 2 * GI + 1;
    ck_assert_int_eq(choose(&c, &req), -1);
    ck_assert_contains(c.why, "node-a: insufficient memory: 2Gi free, 2147483649 requested");
    /* CPU is checked before memory. */
    req.cpu_millis = 4000;
    ck_assert_int_eq(choose(&c, &req), -1);
    ck_assert_contains(c.why, "node-a: insufficient CPU: 3900m free, 4000m requested");
    cluster_free(&c);
}
END_TEST

/* ---- scoring ------------------------------------------------------------- */

START_TEST(score_least_reserved)
{
    struct cluster c = {0};
    struct vf_placement_request req = request("vm", 500, GI);

    add_node(&c, "node-a", NULL);
    add_node(&c, "node-b", NULL);
    add_node(&c, "node-c", NULL);
    add_vm(&c, 0, "x", NULL, 2000, GI);
    add_vm(&c, 1, "y", NULL, 1000, GI);
    add_vm(&c, 2, "z", NULL, 1000, 3 * GI);
    ck_assert_int_eq(choose(&c, &req), 1);
    cluster_free(&c);
}
END_TEST

START_TEST(score_spreads)
{
    struct cluster c = {0};
    char names[9][8];
    size_t per_node[3] = {0};
    struct vf_placement_request req;

    add_node(&c, "node-a", NULL);
    add_node(&c, "node-b", NULL);
    add_node(&c, "node-c", NULL);
    for (int i = 0; i < 9; i++) {
        int chosen;
        snprintf(names[i], sizeof names[i], "vm-%d", i);
        req = request(names[i], 400, GI / 2);
        chosen = choose(&c, &req);
        ck_assert_int_ge(chosen, 0);
        add_vm(&c, (size_t)chosen, names[i], NULL, req.cpu_millis, req.memory_bytes);
        per_node[chosen]++;
    }
    ck_assert_uint_eq(per_node[0], 3);
    ck_assert_uint_eq(per_node[1], 3);
    ck_assert_uint_eq(per_node[2], 3);
    cluster_free(&c);
}
END_TEST

START_TEST(score_spread_by_labels)
{
    struct cluster c = {0};
    struct vf_placement_request req = request("web-2", 500, GI);

    /* Equal reservations: fewer VMs with the same labels wins over the name. */
    add_node(&c, "node-a", NULL);
    add_node(&c, "node-b", NULL);
    add_vm(&c, 0, "web-1", "{\"app\":\"web\",\"tier\":\"front\"}", 1000, GI);
    add_vm(&c, 1, "db-1", "{\"app\":\"db\"}", 1000, GI);
    req.vm_labels = own(&c, "{\"app\":\"web\"}");
    ck_assert_int_eq(choose(&c, &req), 1);
    req.vm_labels = own(&c, "{\"app\":\"db\"}");
    ck_assert_int_eq(choose(&c, &req), 0);
    cluster_free(&c);
}
END_TEST

START_TEST(deterministic)
{
    struct cluster c = {0}, r = {0};
    struct vf_placement_request req = request("vm", 1000, GI);
    char first[2048];
    int chosen;

    add_node(&c, "node-c", NULL);
    add_node(&c, "node-a", NULL);
    add_node(&c, "node-b", NULL);
    add_node(&c, "node-d", NULL);
    add_vm(&c, 3, "x", NULL, 500, GI);
    chosen = choose(&c, &req);
    ck_assert_str_eq(c.nodes[chosen].name, "node-a");
    ck_assert_int_eq(choose(&c, &req), chosen);
    /* The same nodes in another order: the same node, the same explanation. */
    for (int i = 3; i >= 0; i--) {
        struct vf_placement_node *n = add_node(&r, c.nodes[i].name, NULL);
        for (size_t k = 0; k < c.nodes[i].n_vms; k++)
            add_vm(&r, r.n_nodes - 1, c.nodes[i].vms[k].name, NULL, c.nodes[i].vms[k].cpu_millis,
                   c.nodes[i].vms[k].memory_bytes);
        (void)n;
    }
    chosen = choose(&r, &req);
    ck_assert_str_eq(r.nodes[chosen].name, "node-a");
    req.cpu_millis = 5000;
    ck_assert_int_eq(choose(&c, &req), -1);
    snprintf(first, sizeof first, "%s", c.why);
    ck_assert_int_eq(choose(&r, &req), -1);
    ck_assert_str_eq(r.why, first);
    ck_assert_str_eq(first, "no node can run VM vm (4 nodes checked: node-a: insufficient CPU: "
                            "4000m free, 5000m requested; node-b: insufficient CPU: 4000m free, "
                            "5000m requested; node-c: insufficient CPU: 4000m free, 5000m "
                            "requested; node-d: insufficient CPU: 3500m free, 5000m requested)");
    cluster_free(&c);
    cluster_free(&r);
}
END_TEST

START_TEST(explanation)
{
    struct cluster c = {0};
    struct vf_placement_request req = request("web-2", 1000, GI);

    add_node(&c, "node-a", "{\"group\":\"blue\"}");
    add_node(&c, "node-b", "{\"group\":\"green\"}")->ready = false;
    add_node(&c, "node-c", "{\"group\":\"green\"}")->unschedulable = true;
    add_node(&c, "node-d", "{\"group\":\"green\"}");
    add_vm(&c, 3, "big", NULL, 3500, GI);
    add_node(&c, "node-e", "{\"group\":\"green\"}");
    add_vm(&c, 4, "web-1", "{\"app\":\"web\"}", 500, GI);
    add_node(&c, "node-f", "{\"group\":\"green\"}")->ready = false;
    add_node(&c, "node-g", NULL);
    req.vm_labels = own(&c, "{\"app\":\"web\"}");
    req.class_selector = own(&c, EXPR("In", ",\"values\":[\"green\"]"));
    req.affinity = own(&c, "{\"virtualMachineAndPodAntiAffinity\":{"
                           "\"requiredDuringSchedulingIgnoredDuringExecution\":[{\"labelSelector\":"
                           "{\"matchLabels\":{\"app\":\"web\"}},\"topologyKey\":"
                           "\"kubernetes.io/hostname\"}]}}");
    ck_assert_int_eq(choose(&c, &req), -1);
    ck_assert_str_eq(c.why,
                     "no node can run VM web-2 (7 nodes checked: "
                     "node-a: label group=blue does not match group In (green); "
                     "node-b: NotReady; node-c: cordoned; "
                     "node-d: insufficient CPU: 500m free, 1000m requested; "
                     "node-e: anti-affinity: VM web-1 with app=web runs there; "
                     "2 more; in all: 2 NotReady, 1 cordoned, 2 class nodeSelector, "
                     "1 anti-affinity, 1 insufficient CPU)");
    /* A short buffer is cut, never overrun. */
    char small[20];
    ck_assert_int_eq(vf_placement_choose(&req, c.nodes, c.n_nodes, small, sizeof small), -1);
    ck_assert_uint_eq(strlen(small), sizeof small - 1);
    ck_assert_int_eq(vf_placement_choose(&req, c.nodes, 0, c.why, sizeof c.why), -1);
    ck_assert_str_eq(c.why, "no node can run VM web-2: there are no nodes");
    cluster_free(&c);
}
END_TEST

/* ---- affinity ------------------------------------------------------------ */

#define TERM(kind, sel, topo)                                                           \
    "{\"" kind "\":{\"requiredDuringSchedulingIgnoredDuringExecution\":[{\"labelSelector\":" \
    sel ",\"topologyKey\":\"" topo "\"}]}}"

START_TEST(anti_affinity)
{
    struct cluster c = {0};
    struct vf_placement_request req = request("web-3", 500, GI);

    add_node(&c, "node-a", "{\"zone\":\"z1\"}");
    add_node(&c, "node-b", "{\"zone\":\"z1\"}");
    add_node(&c, "node-c", "{\"zone\":\"z2\"}");
    add_vm(&c, 0, "web-1", "{\"app\":\"web\"}", 500, GI);
    add_vm(&c, 2, "db-1", "{\"app\":\"db\"}", 3000, 4 * GI);
    req.vm_labels = own(&c, "{\"app\":\"web\"}");
    req.affinity = own(&c, TERM("virtualMachineAndPodAntiAffinity",
                                "{\"matchLabels\":{\"app\":\"web\"}}", "kubernetes.io/hostname"));
    ck_assert_int_eq(choose(&c, &req), 1);
    /* By zone: node-b shares z1 with web-1, so only node-c is left. */
    req.affinity = own(&c, TERM("virtualMachineAndPodAntiAffinity",
                                "{\"matchLabels\":{\"app\":\"web\"}}", "zone"));
    ck_assert_int_eq(choose(&c, &req), 2);
    c.nodes[2].ready = false;
    ck_assert_int_eq(choose(&c, &req), -1);
    ck_assert_contains(c.why, "node-b: anti-affinity: VM web-1 with app=web runs in zone=z1");
    /* The VM itself never counts against itself. */
    c.nodes[1].ready = false;
    c.vms[0][0].name = "web-3";
    ck_assert_int_eq(choose(&c, &req), 0);
    cluster_free(&c);
}
END_TEST

START_TEST(affinity)
{
    struct cluster c = {0};
    struct vf_placement_request req = request("app-2", 500, GI);

    add_node(&c, "node-a", "{\"zone\":\"z1\"}");
    add_node(&c, "node-b", "{\"zone\":\"z2\"}");
    add_node(&c, "node-c", "{\"zone\":\"z2\"}");
    add_node(&c, "node-d", NULL);
    req.vm_labels = own(&c, "{\"app\":\"shop\"}");
    req.affinity = own(&c, TERM("virtualMachineAndPodAffinity",
                                "{\"matchLabels\":{\"app\":\"db\"}}", "kubernetes.io/hostname"));
    /* No db VM anywhere and the VM is not one itself: nowhere to go. */
    ck_assert_int_eq(choose(&c, &req), -1);
    ck_assert_contains(c.why, "node-a: affinity: no VM with app=db runs there");
    add_vm(&c, 2, "db-1", "{\"app\":\"db\"}", 500, GI);
    ck_assert_int_eq(choose(&c, &req), 2);
    /* By zone: node-b is in db-1's zone and emptier. */
    req.affinity = own(&c, TERM("virtualMachineAndPodAffinity",
                                "{\"matchLabels\":{\"app\":\"db\"}}", "zone"));
    ck_assert_int_eq(choose(&c, &req), 1);
    c.nodes[1].ready = c.nodes[2].ready = false;
    ck_assert_int_eq(choose(&c, &req), -1);
    ck_assert_contains(c.why, "node-a: affinity: no VM with app=db runs in zone=z1");
    ck_assert_contains(c.why, "node-d: affinity: no label zone");
    /* The first VM of a group may go anywhere (Kubernetes' rule). */
    c.nodes[1].ready = c.nodes[2].ready = true;
    c.n_nodes = 2;
    req.vm_labels = own(&c, "{\"app\":\"db\"}");
    req.affinity = own(&c, TERM("virtualMachineAndPodAffinity",
                                "{\"matchLabels\":{\"app\":\"db\"}}", "kubernetes.io/hostname"));
    ck_assert_int_eq(choose(&c, &req), 0);
    cluster_free(&c);
}
END_TEST

START_TEST(node_affinity)
{
    struct cluster c = {0};
    struct vf_placement_request req = request("vm", 500, GI);

    add_node(&c, "node-a", "{\"zone\":\"z1\"}");
    add_node(&c, "node-b", "{\"zone\":\"z2\",\"ssd\":\"yes\"}");
    add_node(&c, "node-c", "{\"zone\":\"z3\"}");
    add_vm(&c, 1, "x", NULL, 100, 0);
    /* nodeSelectorTerms are ORed. */
    req.affinity = own(&c, "{\"nodeAffinity\":{\"requiredDuringSchedulingIgnoredDuringExecution\":"
                           "{\"nodeSelectorTerms\":[{\"matchExpressions\":[{\"key\":\"ssd\","
                           "\"operator\":\"Exists\"}]},{\"matchExpressions\":[{\"key\":\"zone\","
                           "\"operator\":\"In\",\"values\":[\"z3\"]}]}]}}}");
    ck_assert_int_eq(choose(&c, &req), 2);
    c.nodes[2].ready = false;
    ck_assert_int_eq(choose(&c, &req), 1);
    c.nodes[1].ready = false;
    ck_assert_int_eq(choose(&c, &req), -1);
    ck_assert_contains(c.why, "node-a: node affinity: no label ssd, required by ssd Exists");
    cluster_free(&c);
}
END_TEST

START_TEST(malformed_affinity)
{
    struct cluster c = {0};
    struct vf_placement_request req = request("vm", 500, GI);

    add_node(&c, "node-a", NULL);
    req.affinity = own(&c, "{\"virtualMachineAndPodAntiAffinity\":{"
                           "\"requiredDuringSchedulingIgnoredDuringExecution\":{}}}");
    ck_assert_int_eq(choose(&c, &req), -1);
    ck_assert_contains(c.why, "VM vm: spec.affinity");
    req.affinity = own(&c, TERM("virtualMachineAndPodAffinity",
                                "{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"Gt\"}]}",
                                "kubernetes.io/hostname"));
    ck_assert_int_eq(choose(&c, &req), -1);
    ck_assert_contains(c.why, "virtualMachineAndPodAffinity");
    req.affinity = NULL;
    req.vm_node_selector = own(&c, "{\"zone\":1}");
    ck_assert_int_eq(choose(&c, &req), -1);
    ck_assert_contains(c.why, "spec.nodeSelector");
    cluster_free(&c);
}
END_TEST

/* One TCase per behaviour, named after its test. */
#define ADD_CASE(s, test)                        \
    do {                                         \
        TCase *tc_ = tcase_create(#test);        \
        tcase_add_test(tc_, test);               \
        suite_add_tcase((s), tc_);               \
    } while (0)

static Suite *placement_suite(void)
{
    Suite *s = suite_create("placement");
    ADD_CASE(s, selector_in);
    ADD_CASE(s, selector_not_in);
    ADD_CASE(s, selector_exists);
    ADD_CASE(s, selector_empty);
    ADD_CASE(s, selector_labels_and_expressions);
    ADD_CASE(s, selector_text);
    ADD_CASE(s, selector_malformed);
    ADD_CASE(s, vm_sizes);
    ADD_CASE(s, filter_state);
    ADD_CASE(s, filter_selectors);
    ADD_CASE(s, filter_cpu_boundary);
    ADD_CASE(s, filter_memory_boundary);
    ADD_CASE(s, score_least_reserved);
    ADD_CASE(s, score_spreads);
    ADD_CASE(s, score_spread_by_labels);
    ADD_CASE(s, deterministic);
    ADD_CASE(s, explanation);
    ADD_CASE(s, anti_affinity);
    ADD_CASE(s, affinity);
    ADD_CASE(s, node_affinity);
    ADD_CASE(s, malformed_affinity);
    return s;
}

int main(void)
{
    return vf_test_run(placement_suite());
}
