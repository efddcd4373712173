#include <config.h>
/* The VirtualMachineClass controller over the real loop, workers, store and
 * cluster, with libvirt's test driver as nodes: the default class, status of
 * Model and Discovery classes (availableNodes, the baseline CPU, what happens
 * when a node cannot say its CPU, recomputing when nodes change), sizing
 * policies and the SizingPolicyMatched condition on VMs, and stopping with a
 * discovery in flight.  Also the pure parts: host CPU extraction and the
 * baseline call. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <time.h>
#include <unistd.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "core/classes.h"
#include "core/cluster.h"
#include "core/config.h"
#include "core/core_kinds.h"
#include "core/domain_xml.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/objects.h"
#include "core/store.h"
#include "core/workers.h"
#include "tests/unit/testlib.h"
#include "tests/unit/teststack.h"

static char nodes_dir[PATH_MAX];   /* absolute tests/lib/nodes */
static struct vf_test_stack stack;

static const char *const skylake =
    "<cpu>\n  <arch>x86_64</arch>\n  <model>Skylake-Client-IBRS</model>\n"
    "  <vendor>Intel</vendor>\n  <feature name='vmx'/>\n</cpu>";
static const char *const haswell =
    "<cpu>\n  <arch>x86_64</arch>\n  <model>Haswell-noTSX</model>\n"
    "  <vendor>Intel</vendor>\n  <feature name='vmx'/>\n</cpu>";

/* The seeds' example sizing policies. */
#define SEED_POLICIES                                                                       \
    "[{\"cores\":{\"min\":1,\"max\":4},\"memory\":{\"min\":\"1Gi\",\"max\":\"8Gi\","        \
    "\"step\":\"512Mi\"},\"coreFractions\":[5,10,20,50,100]},"                              \
    "{\"cores\":{\"min\":5,\"max\":8},\"memory\":{\"min\":\"5Gi\",\"max\":\"16Gi\","        \
    "\"step\":\"1Gi\"},\"coreFractions\":[20,50,100]},"                                     \
    "{\"cores\":{\"min\":9,\"max\":16},\"memory\":{\"min\":\"9Gi\",\"max\":\"32Gi\","       \
    "\"step\":\"1Gi\"},\"coreFractions\":[50,100]},"                                        \
    "{\"cores\":{\"min\":17,\"max\":248},\"memory\":{\"perCore\":{\"min\":\"1Gi\","         \
    "\"max\":\"2Gi\"}},\"coreFractions\":[100]}]"

/* ---- the machinery (teststack.h) plus the controller under test ------------ */

static void start_classes(void *opaque)
{
    *(int *)opaque = vf_classes_start();
}

static void stop_classes(void *opaque)
{
    (void)opaque;
    vf_classes_stop();
}

static void start_classes_checked(void *opaque)
{
    int rc = -1;
    (void)opaque;
    start_classes(&rc);
    ck_assert_int_eq(rc, 0);
}

static void setup(void)
{
    stack.after_up = start_classes_checked;
    stack.before_down = stop_classes;
    vf_test_stack_up(&stack);
}

static void teardown(void)
{
    vf_test_stack_down(&stack);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- calls onto the loop thread ----------------------------------------------- */

static void apply_cfg(void *opaque)
{
    vf_cluster_apply(opaque);
}

/* Configures the nodes; `list` is the inside of nodes = ( ... ). */
static void apply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void apply(const char *fmt, ...)
{
    char list[2048], text[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(list, sizeof list, fmt, ap);
    va_end(ap);
    snprintf(text, sizeof text, "nodes = ( %s );\n", list);
    struct vf_config *cfg = NULL;
    struct vf_config_errors errors = {0};
    int r = vf_config_load_string(text, "test.conf", &cfg, &errors);
    ck_assert_msg(r == 0, "config: %s\n%s", errors.n ? errors.lines[0] : "?", text);
    vf_config_errors_clear(&errors);
    vf_loop_call(apply_cfg, cfg);
    vf_config_free(cfg);
}

/* Nodes a (group=blue) and b (group=green), both from the test driver. */
static void two_nodes(void)
{
    apply("{ name = \"a\"; uri = \"test://%s/node-a.xml\"; labels = { group = \"blue\"; }; },"
          "{ name = \"b\"; uri = \"test://%s/node-b.xml\"; labels = { group = \"green\"; }; }",
          nodes_dir, nodes_dir);
}

struct op {
    enum { OP_GET, OP_CREATE, OP_PATCH, OP_STATUS, OP_DELETE } type;
    const char *kind, *name;
    struct json_object *in, *out;
    int rc;
    struct vf_error err;
};

static void op_on_loop(void *opaque)
{
    struct op *o = opaque;
    switch (o->type) {
    case OP_GET: o->rc = vf_objects_get(o->kind, o->name, &o->out, &o->err); break;
    case OP_CREATE: o->rc = vf_objects_create(o->kind, o->in, &o->out, &o->err); break;
    case OP_PATCH: o->rc = vf_objects_patch(o->kind, o->name, o->in, &o->out, &o->err); break;
    case OP_STATUS:
        o->rc = vf_objects_update_status(o->kind, o->name, o->in, &o->out, &o->err);
        break;
    case OP_DELETE: o->rc = vf_objects_delete(o->kind, o->name, 0, &o->out, &o->err); break;
    }
}

/* Runs an operation; `json` (may be NULL) is its input.  Fails the test when
 * it fails, except a get of something absent (returns NULL). */
static struct json_object *run_op(int type, const char *kind, const char *name, const char *json)
{
    struct op o = {.type = type, .kind = kind, .name = name};
    o.in = json ? vf_test_json(json) : NULL;
    vf_loop_call(op_on_loop, &o);
    json_object_put(o.in);
    if (type == OP_GET && o.rc == -ENOENT)
        return NULL;
    ck_assert_msg(o.rc == 0, "%s %s: %s", kind, name ? name : "", o.err.message);
    return o.out;
}

static void create(const char *kind, const char *json)
{
    json_object_put(run_op(OP_CREATE, kind, NULL, json));
}

static struct json_object *get(const char *kind, const char *name)
{
    return run_op(OP_GET, kind, name, NULL);
}

static const char *field(const struct json_object *obj, const char *path)
{
    struct json_object *v = obj ? vf_test_json_at(obj, path) : NULL;
    return v ? json_object_get_string(v) : NULL;
}

/* The condition of the given type in obj's status, or NULL. */
static struct json_object *condition(const struct json_object *obj, const char *type)
{
    struct json_object *conds = vf_test_json_at(obj, "status.conditions");
    size_t n = conds ? json_object_array_length(conds) : 0;
    for (size_t i = 0; i < n; i++) {
        struct json_object *c = json_object_array_get_idx(conds, i);
        if (!strcmp(field(c, "type"), type))
            return c;
    }
    return NULL;
}

/* Waits until the value at path (a dotted path, or "cond:TYPE.key" for a
 * condition's key) reads `want`; returns the object. */
static struct json_object *wait_for(const char *kind, const char *name, const char *path,
                                    const char *want, int timeout_ms)
{
    char seen[512] = "";
    for (int waited = 0;; waited += 20) {
        struct json_object *obj = get(kind, name);
        const char *v = NULL;
        if (obj && !strncmp(path, "cond:", 5)) {
            char type[64];
            const char *dot = strchr(path + 5, '.');
            snprintf(type, sizeof type, "%.*s", (int)(dot - path - 5), path + 5);
            v = field(condition(obj, type), dot + 1);
        } else if (obj) {
            v = field(obj, path);
        }
        if (v && !strcmp(v, want))
            return obj;
        snprintf(seen, sizeof seen, "%s", obj ? (v ? v : "(absent)") : "(no object)");
        json_object_put(obj);
        ck_assert_msg(waited < timeout_ms, "%s %s: %s is \"%s\" after %d ms, want \"%s\"", kind,
                      name, path, seen, timeout_ms, want);
        sleep_ms(20);
    }
}

static void set_test_cpus(void *opaque)
{
    (void)opaque;
    vf_classes_set_test_host_cpu("a", skylake);
    vf_classes_set_test_host_cpu("b", haswell);
}

/* The availableNodes list as "a,b". */
static void available(const struct json_object *cls, char *buf, size_t len)
{
    struct json_object *nodes = vf_test_json_at(cls, "status.availableNodes");
    ck_assert_ptr_nonnull(nodes);
    buf[0] = '\0';
    for (size_t i = 0; i < json_object_array_length(nodes); i++) {
        size_t used = strlen(buf);
        snprintf(buf + used, len - used, "%s%s", i ? "," : "",
                 json_object_get_string(json_object_array_get_idx(nodes, i)));
    }
}

/* ---- the default class and plain classes ------------------------------------------ */

START_TEST(test_generic_created)
{
    struct json_object *g = wait_for("VirtualMachineClass", "generic", "status.phase", "Ready",
                                     5000);
    ck_assert_str_eq(field(g, "spec.cpu.type"), "Model");
    ck_assert_str_eq(field(g, "spec.cpu.model"), "Nehalem");
    ck_assert_str_eq(field(condition(g, "Ready"), "status"), "True");
    ck_assert_ptr_nonnull(field(condition(g, "Ready"), "lastTransitionTime"));
    /* No nodes yet: nothing available, still Ready (a model needs no discovery). */
    ck_assert_int_eq(json_object_array_length(vf_test_json_at(g, "status.availableNodes")), 0);
    int64_t uid_rv = vf_object_revision(g);
    json_object_put(g);

    /* Starting again (a restart) keeps the class it made. */
    int rc = -1;
    vf_loop_call(stop_classes, NULL);
    vf_loop_call(start_classes, &rc);
    ck_assert_int_eq(rc, 0);
    g = get("VirtualMachineClass", "generic");
    ck_assert_int_eq(vf_object_revision(g), uid_rv);
    json_object_put(g);

    /* An admin's own generic is left as it is. */
    vf_loop_call(stop_classes, NULL);
    struct op del = {.type = OP_DELETE, .kind = "VirtualMachineClass", .name = "generic"};
    vf_loop_call(op_on_loop, &del);
    ck_assert_int_eq(del.rc, 0);
    json_object_put(del.out);
    create("VirtualMachineClass", "{\"metadata\":{\"name\":\"generic\"},"
                                  "\"spec\":{\"cpu\":{\"type\":\"Host\"}}}");
    vf_loop_call(start_classes, &rc);
    ck_assert_int_eq(rc, 0);
    g = wait_for("VirtualMachineClass", "generic", "status.phase", "Ready", 5000);
    ck_assert_str_eq(field(g, "spec.cpu.type"), "Host");
    json_object_put(g);
}
END_TEST

START_TEST(test_model_class_ready_on_selected_nodes)
{
    two_nodes();
    create("VirtualMachineClass",
           "{\"metadata\":{\"name\":\"ivy\"},\"spec\":{\"cpu\":{\"type\":\"Model\","
           "\"model\":\"IvyBridge\"},\"nodeSelector\":{\"matchExpressions\":[{\"key\":"
           "\"group\",\"operator\":\"In\",\"values\":[\"green\"]}]}}}");
    struct json_object *c = wait_for("VirtualMachineClass", "ivy", "status.availableNodes.0", "b",
                                     5000);
    char nodes[64];
    available(c, nodes, sizeof nodes);
    ck_assert_str_eq(nodes, "b");
    ck_assert_str_eq(field(c, "status.phase"), "Ready");
    ck_assert_str_eq(field(condition(c, "Ready"), "reason"), "Ready");
    ck_assert_int_eq(vf_test_json_int(c, "status.observedGeneration"), 1);
    ck_assert_ptr_null(vf_test_json_at(c, "status.baselineCpuXml"));
    json_object_put(c);

    /* generic has no selector: both nodes. */
    c = wait_for("VirtualMachineClass", "generic", "status.availableNodes.1", "b", 5000);
    available(c, nodes, sizeof nodes);
    ck_assert_str_eq(nodes, "a,b");
    json_object_put(c);

    /* A node that goes away leaves the list. */
    apply("{ name = \"a\"; uri = \"test://%s/node-a.xml\"; labels = { group = \"blue\"; }; }",
          nodes_dir);
    c = wait_for("VirtualMachineClass", "generic", "status.availableNodes.0", "a", 5000);
    for (int waited = 0; json_object_array_length(vf_test_json_at(c, "status.availableNodes")) != 1;
         waited += 20) {
        ck_assert_msg(waited < 5000, "generic still lists node b");
        json_object_put(c);
        sleep_ms(20);
        c = get("VirtualMachineClass", "generic");
    }
    json_object_put(c);
    c = wait_for("VirtualMachineClass", "ivy", "status.phase", "Ready", 5000);
    ck_assert_int_eq(json_object_array_length(vf_test_json_at(c, "status.availableNodes")), 0);
    json_object_put(c);
}
END_TEST

/* A class held by a finalizer while it is deleted says so. */
START_TEST(test_terminating)
{
    create("VirtualMachineClass", "{\"metadata\":{\"name\":\"doomed\",\"finalizers\":"
                                  "[\"example.com/hold\"]},\"spec\":{\"cpu\":{\"type\":\"Host\"}}}");
    json_object_put(wait_for("VirtualMachineClass", "doomed", "status.phase", "Ready", 5000));
    struct op del = {.type = OP_DELETE, .kind = "VirtualMachineClass", .name = "doomed"};
    vf_loop_call(op_on_loop, &del);
    ck_assert_int_eq(del.rc, 0);
    json_object_put(del.out);
    struct json_object *c = wait_for("VirtualMachineClass", "doomed", "status.phase",
                                     "Terminating", 5000);
    ck_assert_str_eq(field(condition(c, "Ready"), "status"), "False");
    ck_assert_str_eq(field(condition(c, "Ready"), "reason"), "Terminating");
    json_object_put(c);
}
END_TEST

/* ---- Discovery ------------------------------------------------------------------------ */

/* What libvirt's test driver really does: its capabilities have a host <cpu>
 * without a model, which no baseline accepts, so the class stays Pending and
 * says which node is the problem. */
START_TEST(test_discovery_pending_on_test_driver)
{
    two_nodes();
    create("VirtualMachineClass",
           "{\"metadata\":{\"name\":\"cpux\"},\"spec\":{\"cpu\":{\"type\":\"Discovery\","
           "\"discovery\":{\"nodeSelector\":{\"matchExpressions\":[{\"key\":\"group\","
           "\"operator\":\"In\",\"values\":[\"blue\"]}]}}}}}");
    struct json_object *c = wait_for("VirtualMachineClass", "cpux", "cond:Ready.reason",
                                     "CPUDiscoveryFailed", 5000);
    ck_assert_str_eq(field(c, "status.phase"), "Pending");
    ck_assert_str_eq(field(condition(c, "Ready"), "status"), "False");
    const char *msg = field(condition(c, "Ready"), "message");
    ck_assert_msg(strstr(msg, "node \"a\"") && strstr(msg, "no host CPU model"), "message: %s",
                  msg);
    char nodes[64];
    available(c, nodes, sizeof nodes);
    ck_assert_str_eq(nodes, "a");
    ck_assert_ptr_null(vf_test_json_at(c, "status.baselineCpuXml"));
    json_object_put(c);

    /* A selector that matches no node: Pending for another reason. */
    create("VirtualMachineClass",
           "{\"metadata\":{\"name\":\"cpuz\"},\"spec\":{\"cpu\":{\"type\":\"Discovery\","
           "\"discovery\":{\"nodeSelector\":{\"matchLabels\":{\"group\":\"red\"}}}}}}");
    c = wait_for("VirtualMachineClass", "cpuz", "cond:Ready.reason", "NoNodesSelected", 5000);
    ck_assert_str_eq(field(c, "status.phase"), "Pending");
    ck_assert_int_eq(json_object_array_length(vf_test_json_at(c, "status.availableNodes")), 0);
    json_object_put(c);

    /* A VM of a Pending Discovery class cannot get domain XML yet. */
    struct json_object *vm = vf_test_json(
        "{\"metadata\":{\"name\":\"v\",\"uid\":\"0f8fad5b-d9cb-469f-a165-70867728950e\"},"
        "\"spec\":{\"cpu\":{\"cores\":1},\"memory\":{\"size\":\"1Gi\"}}}");
    c = get("VirtualMachineClass", "cpux");
    struct vf_domain_xml_options o = {.domain_type = "test",
                                      .baseline_cpu_xml = field(c, "status.baselineCpuXml")};
    struct vf_error err = {0};
    char *xml = NULL;
    ck_assert_int_eq(vf_domain_xml(vm, c, &o, &xml, &err), -EAGAIN);
    ck_assert_str_eq(err.message, "class cpux has no discovered CPU yet");
    json_object_put(c);
    json_object_put(vm);
}
END_TEST

/* With host CPUs given for the fake nodes, the whole path: baseline over the
 * selected nodes, status, domain XML that the test driver runs, and a new
 * baseline when the node set changes. */
START_TEST(test_discovery_baseline_follows_nodes)
{
    vf_loop_call(set_test_cpus, NULL);
    two_nodes();
    create("VirtualMachineClass", "{\"metadata\":{\"name\":\"universal\"},\"spec\":{\"cpu\":"
                                  "{\"type\":\"Discovery\",\"discovery\":{}}}}");
    struct json_object *c = wait_for("VirtualMachineClass", "universal", "status.cpu.model",
                                     "Haswell-noTSX", 5000);
    ck_assert_str_eq(field(c, "status.phase"), "Ready");
    ck_assert_str_eq(field(condition(c, "Ready"), "reason"), "CPUDiscovered");
    char nodes[64];
    available(c, nodes, sizeof nodes);
    ck_assert_str_eq(nodes, "a,b");
    const char *baseline = field(c, "status.baselineCpuXml");
    ck_assert_ptr_nonnull(baseline);
    ck_assert_ptr_eq(strstr(baseline, "<cpu"), baseline);
    ck_assert_ptr_nonnull(strstr(baseline, "Haswell-noTSX"));
    /* Features are expanded: the model's own ones are listed, not just extras. */
    struct json_object *enabled = vf_test_json_at(c, "status.cpuFeatures.enabled");
    bool vmx = false, sse42 = false, avx512 = false;
    for (size_t i = 0; i < json_object_array_length(enabled); i++) {
        const char *f = json_object_get_string(json_object_array_get_idx(enabled, i));
        vmx |= !strcmp(f, "vmx");
        sse42 |= !strcmp(f, "sse4.2");
        avx512 |= !strncmp(f, "avx512", 6);
    }
    ck_assert(vmx && sse42 && !avx512);
    ck_assert_int_eq(json_object_array_length(enabled),
                     json_object_array_length(vf_test_json_at(c, "status.cpu.features")));

    /* The class's CPU goes into a domain that libvirt accepts and runs. */
    struct json_object *vm = vf_test_json(
        "{\"metadata\":{\"name\":\"v\",\"uid\":\"0f8fad5b-d9cb-469f-a165-70867728950e\"},"
        "\"spec\":{\"cpu\":{\"cores\":2},\"memory\":{\"size\":\"1Gi\"}}}");
    struct vf_domain_xml_options o = {.domain_type = "test", .baseline_cpu_xml = baseline};
    struct vf_error err = {0};
    char *xml = NULL;
    ck_assert_int_eq(vf_domain_xml(vm, c, &o, &xml, &err), 0);
    virConnectPtr conn = virConnectOpen("test:///default");
    virDomainPtr dom = virDomainDefineXML(conn, xml);
    ck_assert_msg(dom != NULL, "define: %s", virGetLastErrorMessage());
    ck_assert_int_eq(virDomainCreate(dom), 0);
    char *back = virDomainGetXMLDesc(dom, 0);
    ck_assert_ptr_nonnull(strstr(back, "Haswell-noTSX</model>"));
    ck_assert_ptr_nonnull(strstr(back, "cores='2'"));
    free(back);
    virDomainDestroy(dom);
    virDomainUndefine(dom);
    virDomainFree(dom);
    virConnectClose(conn);
    free(xml);
    json_object_put(vm);
    json_object_put(c);

    /* Node b (the older CPU) leaves: the baseline is Skylake's alone. */
    apply("{ name = \"a\"; uri = \"test://%s/node-a.xml\"; labels = { group = \"blue\"; }; }",
          nodes_dir);
    c = wait_for("VirtualMachineClass", "universal", "status.cpu.model", "Skylake-Client-IBRS",
                 5000);
    ck_assert_str_eq(field(c, "status.phase"), "Ready");
    available(c, nodes, sizeof nodes);
    ck_assert_str_eq(nodes, "a");
    json_object_put(c);
}
END_TEST

/* Stopping while a discovery job is queued or running: its result must be
 * dropped without touching freed state (valgrind watches). */
static void create_and_stop(void *opaque)
{
    struct vf_error err = {0};
    struct json_object *obj = vf_test_json("{\"metadata\":{\"name\":\"quick\"},\"spec\":"
                                           "{\"cpu\":{\"type\":\"Discovery\"}}}");
    *(int *)opaque = vf_objects_create("VirtualMachineClass", obj, NULL, &err);
    json_object_put(obj);
    vf_classes_stop();
}

START_TEST(test_stop_with_discovery_in_flight)
{
    vf_loop_call(set_test_cpus, NULL);
    two_nodes();
    json_object_put(wait_for("VirtualMachineClass", "generic", "status.availableNodes.1", "b",
                             5000));
    int rc = -1;
    vf_loop_call(create_and_stop, &rc);
    ck_assert_int_eq(rc, 0);
    sleep_ms(300);
    struct json_object *c = get("VirtualMachineClass", "quick");
    ck_assert_ptr_null(vf_test_json_at(c, "status.baselineCpuXml"));
    json_object_put(c);

    /* Started again, it finishes the work (the test CPUs were forgotten at
     * stop, so this is the test driver's real answer). */
    vf_loop_call(start_classes, &rc);
    ck_assert_int_eq(rc, 0);
    json_object_put(wait_for("VirtualMachineClass", "quick", "cond:Ready.reason",
                             "CPUDiscoveryFailed", 5000));
}
END_TEST

/* ---- sizing policies ----------------------------------------------------------------- */

START_TEST(test_sizing_matches)
{
    struct json_object *cls = vf_test_json("{\"metadata\":{\"name\":\"seed\"},\"spec\":{\"cpu\":"
                                           "{\"type\":\"Host\"},\"sizingPolicies\":"
                                           SEED_POLICIES "}}");
    static const struct {
        const char *spec;
        bool ok;
        const char *why;
    } cases[] = {
        {"{\"cpu\":{\"cores\":2,\"coreFraction\":\"10%\"},\"memory\":{\"size\":\"2Gi\"}}", true,
         ""},
        {"{\"cpu\":{\"cores\":1,\"coreFraction\":\"5%\"},\"memory\":{\"size\":\"1536Mi\"}}", true,
         ""},
        {"{\"cpu\":{\"cores\":4},\"memory\":{\"size\":\"8Gi\"}}", true, ""},
        {"{\"cpu\":{\"cores\":2,\"coreFraction\":\"10%\"},\"memory\":{\"size\":\"1200Mi\"}}",
         false, "memory 1200Mi is not 1Gi plus a multiple of the step 512Mi (policy for 1-4 cores)"},
        {"{\"cpu\":{\"cores\":2},\"memory\":{\"size\":\"512Mi\"}}", false,
         "memory 512Mi is less than the minimum 1Gi (policy for 1-4 cores)"},
        {"{\"cpu\":{\"cores\":4},\"memory\":{\"size\":\"9Gi\"}}", false,
         "memory 9Gi is more than the maximum 8Gi (policy for 1-4 cores)"},
        {"{\"cpu\":{\"cores\":3,\"coreFraction\":\"25%\"},\"memory\":{\"size\":\"2Gi\"}}", false,
         "core fraction 25% is not one of 5%, 10%, 20%, 50%, 100% (policy for 1-4 cores)"},
        {"{\"cpu\":{\"cores\":6,\"coreFraction\":\"20%\"},\"memory\":{\"size\":\"5Gi\"}}", true,
         ""},
        {"{\"cpu\":{\"cores\":6,\"coreFraction\":\"20%\"},\"memory\":{\"size\":\"5632Mi\"}}",
         false, "memory 5632Mi is not 5Gi plus a multiple of the step 1Gi (policy for 5-8 cores)"},
        {"{\"cpu\":{\"cores\":8,\"coreFraction\":\"10%\"},\"memory\":{\"size\":\"8Gi\"}}", false,
         "core fraction 10% is not one of 20%, 50%, 100% (policy for 5-8 cores)"},
        {"{\"cpu\":{\"cores\":12,\"coreFraction\":\"50%\"},\"memory\":{\"size\":\"12Gi\"}}",
         true, ""},
        {"{\"cpu\":{\"cores\":20},\"memory\":{\"size\":\"30Gi\"}}", true, ""},
        {"{\"cpu\":{\"cores\":20},\"memory\":{\"size\":\"50Gi\"}}", false,
         "memory 50Gi is more than 40Gi (2Gi per core x 20 cores) (policy for 17-248 cores)"},
        {"{\"cpu\":{\"cores\":20},\"memory\":{\"size\":\"16Gi\"}}", false,
         "memory 16Gi is less than 20Gi (1Gi per core x 20 cores) (policy for 17-248 cores)"},
        {"{\"cpu\":{\"cores\":20,\"coreFraction\":\"50%\"},\"memory\":{\"size\":\"20Gi\"}}",
         false, "core fraction 50% is not one of 100% (policy for 17-248 cores)"},
        {"{\"cpu\":{\"cores\":300},\"memory\":{\"size\":\"300Gi\"}}", false,
         "300 cores is outside the sizing policies' core ranges (1-248)"},
        {"{\"memory\":{\"size\":\"1Gi\"}}", false, "spec.cpu.cores is not set"},
        {"{\"cpu\":{\"cores\":2}}", false, "spec.memory.size is not set (policy for 1-4 cores)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct json_object *spec = vf_test_json(cases[i].spec);
        char why[256] = "junk";
        bool ok = vf_classes_sizing_matches(cls, spec, why, sizeof why);
        ck_assert_msg(ok == cases[i].ok, "case %zu (%s): %d, %s", i, cases[i].spec, ok, why);
        ck_assert_str_eq(why, cases[i].why);
        json_object_put(spec);
    }
    /* A class without policies takes any size; why may be NULL. */
    struct json_object *plain = vf_test_json("{\"spec\":{\"cpu\":{\"type\":\"Host\"}}}");
    struct json_object *spec = vf_test_json("{\"cpu\":{\"cores\":1000}}");
    ck_assert(vf_classes_sizing_matches(plain, spec, NULL, 0));
    ck_assert(!vf_classes_sizing_matches(cls, spec, NULL, 0));
    json_object_put(spec);
    json_object_put(plain);
    json_object_put(cls);
}
END_TEST

static void set_vm_status(void)
{
    json_object_put(run_op(OP_STATUS, "VirtualMachine", "web",
                           "{\"phase\":\"Stopped\",\"node\":\"a\",\"conditions\":[{\"type\":"
                           "\"Running\",\"status\":\"False\",\"reason\":\"Stopped\"}]}"));
}

START_TEST(test_sizing_condition_on_vms)
{
    create("VirtualMachineClass", "{\"metadata\":{\"name\":\"small\"},\"spec\":{\"cpu\":"
                                  "{\"type\":\"Host\"},\"sizingPolicies\":" SEED_POLICIES "}}");
    create("VirtualMachine", "{\"metadata\":{\"name\":\"web\"},\"spec\":{"
                             "\"virtualMachineClassName\":\"small\",\"cpu\":{\"cores\":2,"
                             "\"coreFraction\":\"10%\"},\"memory\":{\"size\":\"2Gi\"}}}");
    struct json_object *vm = wait_for("VirtualMachine", "web", "cond:SizingPolicyMatched.status",
                                      "True", 5000);
    struct json_object *c = condition(vm, "SizingPolicyMatched");
    ck_assert_str_eq(field(c, "reason"), "SizingPolicyMatched");
    ck_assert_ptr_nonnull(strstr(field(c, "message"), "\"small\""));
    ck_assert_ptr_nonnull(field(c, "lastTransitionTime"));
    json_object_put(vm);

    /* What the VM controller writes stays. */
    set_vm_status();

    /* The class tightens: the VM no longer fits. */
    json_object_put(run_op(OP_PATCH, "VirtualMachineClass", "small",
                           "{\"spec\":{\"sizingPolicies\":[{\"cores\":{\"min\":1,\"max\":4},"
                           "\"memory\":{\"min\":\"512Mi\",\"max\":\"1Gi\"}}]}}"));
    vm = wait_for("VirtualMachine", "web", "cond:SizingPolicyMatched.status", "False", 5000);
    c = condition(vm, "SizingPolicyMatched");
    ck_assert_str_eq(field(c, "reason"), "SizingPolicyNotMatched");
    ck_assert_str_eq(field(c, "message"), "class \"small\": memory 2Gi is more than the maximum "
                                          "1Gi (policy for 1-4 cores)");
    ck_assert_str_eq(field(vm, "status.phase"), "Stopped");
    ck_assert_str_eq(field(vm, "status.node"), "a");
    ck_assert_str_eq(field(condition(vm, "Running"), "reason"), "Stopped");
    ck_assert_int_eq(json_object_array_length(vf_test_json_at(vm, "status.conditions")), 2);
    int64_t rv = vf_object_revision(vm);
    json_object_put(vm);

    /* Nothing changed, nothing written: an unrelated class event is quiet. */
    json_object_put(run_op(OP_PATCH, "VirtualMachineClass", "small",
                           "{\"metadata\":{\"labels\":{\"tier\":\"x\"}}}"));
    sleep_ms(200);
    vm = get("VirtualMachine", "web");
    ck_assert_int_eq(vf_object_revision(vm), rv);
    json_object_put(vm);

    /* The VM shrinks: it fits again. */
    json_object_put(run_op(OP_PATCH, "VirtualMachine", "web",
                           "{\"spec\":{\"memory\":{\"size\":\"1Gi\"}}}"));
    json_object_put(wait_for("VirtualMachine", "web", "cond:SizingPolicyMatched.status", "True",
                             5000));

    /* The class goes away. */
    struct op del = {.type = OP_DELETE, .kind = "VirtualMachineClass", .name = "small"};
    vf_loop_call(op_on_loop, &del);
    ck_assert_int_eq(del.rc, 0);
    json_object_put(del.out);
    vm = wait_for("VirtualMachine", "web", "cond:SizingPolicyMatched.reason",
                  "VirtualMachineClassNotFound", 5000);
    ck_assert_str_eq(field(condition(vm, "SizingPolicyMatched"), "status"), "False");
    json_object_put(vm);

    /* A VM that waits for its class is checked when the class appears. */
    create("VirtualMachineClass", "{\"metadata\":{\"name\":\"small\"},\"spec\":{\"cpu\":"
                                  "{\"type\":\"Host\"}}}");
    vm = wait_for("VirtualMachine", "web", "cond:SizingPolicyMatched.status", "True", 5000);
    ck_assert_str_eq(field(condition(vm, "SizingPolicyMatched"), "message"),
                     "class \"small\" has no sizing policies");
    json_object_put(vm);

    /* The default class applies when the VM names none. */
    create("VirtualMachine", "{\"metadata\":{\"name\":\"plain\"},\"spec\":{\"cpu\":{\"cores\":1},"
                             "\"memory\":{\"size\":\"1Gi\"}}}");
    vm = wait_for("VirtualMachine", "plain", "cond:SizingPolicyMatched.status", "True", 5000);
    ck_assert_ptr_nonnull(strstr(field(condition(vm, "SizingPolicyMatched"), "message"),
                                 "\"generic\""));
    json_object_put(vm);
}
END_TEST

/* ---- pure parts ------------------------------------------------------------------------ */

START_TEST(test_caps_host_cpu)
{
    char *cpu = NULL;
    static const char qemu[] =
        "<capabilities>\n  <host>\n    <uuid>3b7e9a8e-0000-0000-0000-000000000001</uuid>\n"
        "    <cpu>\n      <arch>x86_64</arch>\n      <model>Skylake-Client-IBRS</model>\n"
        "      <feature name='vmx'/>\n    </cpu>\n"
        "    <topology><cells num='1'><cell id='0'><cpus num='1'>"
        "<cpu id='0' socket_id='0' core_id='0' siblings='0'/></cpus></cell></cells></topology>\n"
        "  </host>\n  <guest><os_type>hvm</os_type></guest>\n</capabilities>\n";
    ck_assert_int_eq(vf_classes_caps_host_cpu(qemu, &cpu), 0);
    /* Written out again by libxml2: double quotes, the text as it was. */
    ck_assert_str_eq(cpu, "<cpu>\n      <arch>x86_64</arch>\n      <model>Skylake-Client-IBRS"
                          "</model>\n      <feature name=\"vmx\"/>\n    </cpu>");
    free(cpu);

    /* Odd but valid: a declaration, comments (one that looks like a <cpu>),
     * attributes in double quotes, a namespaced element that is not the
     * host's <cpu>, an entity in an attribute. */
    static const char odd[] =
        "<?xml version=\"1.0\"?>\n<!-- <host><cpu>fake</cpu></host> -->\n"
        "<capabilities xmlns:o=\"urn:other\"><host><!-- <cpu>x</cpu> -->"
        "<o:cpu>other</o:cpu><cpu mode=\"host-model\"><model>kvm64</model>"
        "<feature name=\"a&amp;b\" policy='require'/></cpu></host></capabilities>";
    ck_assert_int_eq(vf_classes_caps_host_cpu(odd, &cpu), 0);
    ck_assert_str_eq(cpu, "<cpu mode=\"host-model\"><model>kvm64</model>"
                          "<feature name=\"a&amp;b\" policy=\"require\"/></cpu>");
    free(cpu);
    cpu = NULL;
    ck_assert_int_eq(vf_classes_caps_host_cpu("<capabilities><host><cpu></cpu></host>"
                                              "</capabilities>", &cpu), -ENOENT);
    ck_assert_ptr_null(cpu);
    /* No DOCTYPE (nor its entities) in libvirt's output. */
    ck_assert_int_eq(vf_classes_caps_host_cpu("<!DOCTYPE c [<!ENTITY e \"kvm64\">]>"
                                              "<c><host><cpu><model>&e;</model></cpu></host></c>",
                                              &cpu), -EINVAL);
    ck_assert_ptr_null(cpu);

    /* Only topology's empty <cpu/> entries: no host CPU. */
    ck_assert_int_eq(vf_classes_caps_host_cpu("<capabilities><host><topology><cpus num='1'>"
                                              "<cpu id='0'/></cpus></topology></host>"
                                              "</capabilities>", &cpu), -ENOENT);
    ck_assert_ptr_null(cpu);
    ck_assert_int_eq(vf_classes_caps_host_cpu("<capabilities><guest><cpu>x</cpu></guest>"
                                              "</capabilities>", &cpu), -ENOENT);
    ck_assert_int_eq(vf_classes_caps_host_cpu("<host><cpus num='1'/></host>", &cpu), -ENOENT);
    /* Two top-level elements: not a document. */
    ck_assert_int_eq(vf_classes_caps_host_cpu("<host><cpus num='1'/></host><cpu>x</cpu>", &cpu),
                     -EINVAL);
    ck_assert_int_eq(vf_classes_caps_host_cpu("", &cpu), -ENOENT);
    ck_assert_int_eq(vf_classes_caps_host_cpu("<host><cpu><model>x</model>", &cpu), -EINVAL);
    ck_assert_int_eq(vf_classes_caps_host_cpu("<host><cpu", &cpu), -EINVAL);
    ck_assert_int_eq(vf_classes_caps_host_cpu(NULL, &cpu), -EINVAL);

    /* The test driver's own capabilities: a <cpu> without a model. */
    virConnectPtr conn = virConnectOpen("test:///default");
    char *caps = virConnectGetCapabilities(conn);
    ck_assert_int_eq(vf_classes_caps_host_cpu(caps, &cpu), 0);
    ck_assert_ptr_null(strstr(cpu, "<model"));
    free(cpu);
    free(caps);
    virConnectClose(conn);
}
END_TEST

START_TEST(test_baseline_on_test_driver)
{
    virConnectPtr conn = virConnectOpen("test:///default");
    const char *cpus[] = {skylake, haswell};
    char why[512] = "", *xml = NULL;
    /* The test driver has no hypervisor baseline: the fallback answers. */
    ck_assert_msg(vf_classes_baseline(conn, cpus, 2, &xml, why, sizeof why) == 0, "%s", why);
    ck_assert_ptr_nonnull(strstr(xml, "<model fallback='allow'>Haswell-noTSX</model>"));
    ck_assert_ptr_nonnull(strstr(xml, "name='sse4.2'"));   /* expanded */
    free(xml);

    const char *bad[] = {"<cpu><arch>i686</arch></cpu>"};
    ck_assert_int_eq(vf_classes_baseline(conn, bad, 1, &xml, why, sizeof why), -EIO);
    ck_assert_ptr_null(xml);
    ck_assert_msg(strstr(why, "computing the baseline CPU failed") &&
                  strstr(why, "Missing CPU model"), "why: %s", why);
    ck_assert_int_eq(vf_classes_baseline(conn, cpus, 0, &xml, why, sizeof why), -EINVAL);
    virConnectClose(conn);
}
END_TEST

static Suite *classes_suite(void)
{
    Suite *s = suite_create("classes");
    struct {
        const char *name;
        const TTest *fn;
        bool fixture;
    } cases[] = {
        {"generic", test_generic_created, true},
        {"model_class", test_model_class_ready_on_selected_nodes, true},
        {"terminating", test_terminating, true},
        {"discovery_test_driver", test_discovery_pending_on_test_driver, true},
        {"discovery_baseline", test_discovery_baseline_follows_nodes, true},
        {"stop_in_flight", test_stop_with_discovery_in_flight, true},
        {"sizing_matches", test_sizing_matches, false},
        {"sizing_condition", test_sizing_condition_on_vms, true},
        {"caps_host_cpu", test_caps_host_cpu, false},
        {"baseline", test_baseline_on_test_driver, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        TCase *tc = tcase_create(cases[i].name);
        if (cases[i].fixture)
            tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, cases[i].fn);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    if (vf_test_stack_process_init("check_classes", nodes_dir) < 0)
        return EXIT_FAILURE;
    return vf_test_run(classes_suite());
}
