/* The core's live-migration services (vm_migration_target/begin/update/end,
 * core/vms.c) over the real loop, workers, store, cluster and VM controller,
 * with libvirt's test driver as the nodes (node-a: 8 CPUs, group blue; node-b:
 * 4 CPUs, group green): the target placement chooses and why it refuses, the
 * target's reservation while a VM is Migrating, the controller leaving it
 * alone, and the hand-back on either node.  The domain "moves" by hand
 * (the test driver cannot migrate), as the migrate module's libvirt call would. */
#include <config.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <time.h>
#include <unistd.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "core/cluster.h"
#include "core/config.h"
#include "core/core_kinds.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/objects.h"
#include "core/store.h"
#include "core/vms.h"
#include "core/vms_internal.h"
#include "core/workers.h"
#include "tests/unit/testlib.h"
#include "tests/unit/teststack.h"

#define CIDR "10.66.10.0/29"

static char nodes_dir[PATH_MAX];   /* absolute tests/lib/nodes */
static struct vf_test_stack stack;
static struct vf_config *cfg;

/* ---- the machinery: loop thread, workers, store, cluster, controller ----- */

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static struct vf_config *config(const char *extra)
{
    char text[4096];
    struct vf_config *c = NULL;
    struct vf_config_errors errors = {0};
    snprintf(text, sizeof text,
             "nodes = (\n"
             "  { name = \"node-a\"; uri = \"test://%s/node-a.xml\"; labels = { group = \"blue\"; }; },\n"
             "  { name = \"node-b\"; uri = \"test://%s/node-b.xml\"; labels = { group = \"green\"; }; }\n"
             ");\n%s\n",
             nodes_dir, nodes_dir, extra);
    int r = vf_config_load_string(text, "test.conf", &c, &errors);
    ck_assert_msg(r == 0, "config: %s\n%s", errors.n ? errors.lines[0] : "?", text);
    vf_config_errors_clear(&errors);
    return c;
}

/* After the stack is up: the class every VM here uses (the classes
 * controller is not under test: its status stays empty, which the VM
 * controller accepts), the nodes, and the controller under test. */
static void start_vms(void *opaque)
{
    struct vf_error err = {0};
    (void)opaque;
    struct json_object *cls = vf_test_json(
        "{\"kind\":\"VirtualMachineClass\",\"metadata\":{\"name\":\"generic\"},"
        "\"spec\":{\"cpu\":{\"type\":\"Model\",\"model\":\"Nehalem\"}}}");
    int r = vf_objects_create("VirtualMachineClass", cls, NULL, &err);
    ck_assert_msg(r == 0, "class: %s", err.message);
    json_object_put(cls);
    vf_cluster_apply(cfg);
    ck_assert_int_eq(vf_vms_start(cfg), 0);
}

static void stop_vms(void *opaque)
{
    (void)opaque;
    vf_vms_stop();
}

static void setup_with(const char *extra)
{
    cfg = config(extra);
    stack.after_up = start_vms;
    stack.before_down = stop_vms;
    vf_test_stack_up(&stack);
}

static void setup(void)
{
    setup_with("virtualization = { virtualMachineCIDRs = [ \"" CIDR "\" ]; };");
}

static void teardown(void)
{
    vf_test_stack_down(&stack);
    vf_config_free(cfg);
    cfg = NULL;
}

/* ---- objects, from the test thread --------------------------------------- */

struct obj_req {
    const char *kind, *name;
    struct json_object *obj;
    int rc;
    struct vf_error err;
};

static void create_on_loop(void *opaque)
{
    struct obj_req *q = opaque;
    q->rc = vf_objects_create(q->kind, q->obj, NULL, &q->err);
}

static void create(const char *kind, const char *json)
{
    struct obj_req q = {.kind = kind, .obj = vf_test_json(json)};
    vf_loop_call(create_on_loop, &q);
    ck_assert_msg(q.rc == 0, "create %s: %s", kind, q.err.message);
    json_object_put(q.obj);
}

static void vm_create(const char *name, const char *spec_extra)
{
    char json[2048];
    snprintf(json, sizeof json,
             "{\"kind\":\"VirtualMachine\",\"metadata\":{\"name\":\"%s\"},\"spec\":{"
             "\"cpu\":{\"cores\":1},\"memory\":{\"size\":\"128Mi\"},"
             "\"terminationGracePeriodSeconds\":1%s}}",
             name, spec_extra);
    create("VirtualMachine", json);
}

static void get_on_loop(void *opaque)
{
    struct obj_req *q = opaque;
    q->rc = vf_objects_get(q->kind, q->name, &q->obj, &q->err);
}

/* The object, or NULL when there is none. */
static struct json_object *get(const char *kind, const char *name)
{
    struct obj_req q = {.kind = kind, .name = name};
    vf_loop_call(get_on_loop, &q);
    if (q.rc == -ENOENT)
        return NULL;
    ck_assert_msg(q.rc == 0, "get %s %s: %s", kind, name, q.err.message);
    return q.obj;
}

static char *field_dup(const char *kind, const char *name, const char *path)
{
    struct json_object *obj = get(kind, name);
    struct json_object *v = obj ? vf_test_json_at(obj, path) : NULL;
    char *s = v ? strdup(json_object_get_string(v)) : NULL;
    json_object_put(obj);
    return s;
}

/* Waits until kind/name's value at path reads `want` (NULL: the object is
 * gone).  Fails after timeout_ms with what it saw. */
static void wait_field(const char *kind, const char *name, const char *path, const char *want,
                       int timeout_ms)
{
    char seen[512] = "";
    for (int waited = 0;; waited += 20) {
        struct json_object *obj = get(kind, name);
        struct json_object *v = obj ? vf_test_json_at(obj, path) : NULL;
        const char *s = v ? json_object_get_string(v) : NULL;
        if ((!want && !obj) || (want && s && !strcmp(s, want))) {
            json_object_put(obj);
            return;
        }
        snprintf(seen, sizeof seen, "%s (status %s)",
                 obj ? (s ? s : "(absent)") : "(no object)",
                 obj && vf_test_json_at(obj, "status")
                     ? json_object_to_json_string(vf_test_json_at(obj, "status"))
                     : "-");
        json_object_put(obj);
        ck_assert_msg(waited < timeout_ms, "%s %s: %s is %s after %d ms, want \"%s\"", kind, name,
                      path, seen, timeout_ms, want ? want : "(no object)");
        sleep_ms(20);
    }
}

/* The condition `type` of obj's status, borrowed, or NULL. */
static struct json_object *condition(struct json_object *obj, const char *type)
{
    struct json_object *conds = vf_test_json_at(obj, "status.conditions");
    for (size_t i = 0; conds && i < json_object_array_length(conds); i++) {
        struct json_object *c = json_object_array_get_idx(conds, i);
        const char *t = vf_test_json_str(c, "type");
        if (t && !strcmp(t, type))
            return c;
    }
    return NULL;
}

/* Waits until the VM's condition `type` has `reason`; returns the VM. */
static struct json_object *wait_condition(const char *vm, const char *type, const char *reason)
{
    for (int waited = 0;; waited += 20) {
        struct json_object *obj = get("VirtualMachine", vm);
        struct json_object *c = obj ? condition(obj, type) : NULL;
        const char *r = c ? vf_test_json_str(c, "reason") : NULL;
        if (r && !strcmp(r, reason))
            return obj;
        ck_assert_msg(waited < 5000, "vm %s: condition %s is %s, want reason %s", vm, type,
                      c ? json_object_to_json_string(c) : "(absent)", reason);
        json_object_put(obj);
        sleep_ms(20);
    }
}

static void wait_phase(const char *vm, const char *phase)
{
    wait_field("VirtualMachine", vm, "status.phase", phase, 5000);
}

/* ---- domains, through the daemon's own connections ---------------------- */

struct dom_req {
    const char *node, *name;
    bool destroy;
    int exists;       /* 1, 0 */
    int active;
    int id;
    int count;
};

static void dom_on_loop(void *opaque)
{
    struct dom_req *q = opaque;
    virConnectPtr conn = vf_cluster_connection(q->node);
    ck_assert_msg(conn != NULL, "node %s is not connected", q->node);
    q->count = virConnectNumOfDomains(conn) + virConnectNumOfDefinedDomains(conn);
    q->exists = 0;
    if (!q->name)
        return;
    virDomainPtr d = virDomainLookupByName(conn, q->name);
    if (!d) {
        virResetLastError();
        return;
    }
    q->exists = 1;
    if (q->destroy)
        ck_assert_int_eq(virDomainDestroy(d), 0);
    q->active = virDomainIsActive(d);
    q->id = (int)virDomainGetID(d);
    virDomainFree(d);
}

static struct dom_req dom(const char *node, const char *name)
{
    struct dom_req q = {.node = node, .name = name};
    vf_loop_call(dom_on_loop, &q);
    return q;
}

/* ---- migration services, called on the loop thread ---------------------- */

struct mig_req {
    const char *op, *vm, *node;
    const char *const *exclude;
    struct json_object *fields;
    char target[64];
    int rc;
    struct vf_error err;
};

static void mig_on_loop(void *opaque)
{
    struct mig_req *q = opaque;
    if (!strcmp(q->op, "target"))
        q->rc = vf_vms_migration_target(q->vm, q->node, q->fields, q->exclude, q->target,
                                        sizeof q->target, &q->err);
    else if (!strcmp(q->op, "begin"))
        q->rc = vf_vms_migration_begin(q->vm, q->node, q->fields, &q->err);
    else if (!strcmp(q->op, "update"))
        q->rc = vf_vms_migration_update(q->vm, q->fields, &q->err);
    else
        q->rc = vf_vms_migration_end(q->vm, q->node, q->fields, &q->err);
}

static struct mig_req mig(const char *op, const char *vm, const char *node, const char *fields,
                          const char *const *exclude)
{
    struct mig_req q = {.op = op, .vm = vm, .node = node, .exclude = exclude,
                        .fields = fields ? vf_test_json(fields) : NULL};
    vf_loop_call(mig_on_loop, &q);
    json_object_put(q.fields);
    q.fields = NULL;
    return q;
}

struct patch_req {
    const char *node;
    bool on;
    int rc;
};

static void cordon_on_loop(void *opaque)
{
    struct patch_req *q = opaque;
    struct json_object *p = vf_test_json(q->on ? "{\"spec\":{\"unschedulable\":true}}"
                                               : "{\"spec\":{\"unschedulable\":false}}");
    q->rc = vf_objects_patch("Node", q->node, p, NULL, NULL);
    json_object_put(p);
}

static void cordon(const char *node, bool on)
{
    struct patch_req q = {.node = node, .on = on};
    vf_loop_call(cordon_on_loop, &q);
    ck_assert_int_eq(q.rc, 0);
}

/* Move the domain of `name` from one test node to the other, as a migration
 * with PERSIST_DEST | UNDEFINE_SOURCE leaves it. */
struct move_req {
    const char *from, *to, *name;
};

static void move_on_loop(void *opaque)
{
    struct move_req *q = opaque;
    virConnectPtr src = vf_cluster_connection(q->from), dst = vf_cluster_connection(q->to);
    ck_assert(src && dst);
    virDomainPtr d = virDomainLookupByName(src, q->name);
    ck_assert(d);
    char *xml = virDomainGetXMLDesc(d, VIR_DOMAIN_XML_INACTIVE);
    ck_assert(xml);
    ck_assert_int_eq(virDomainDestroy(d), 0);
    ck_assert_int_eq(virDomainUndefine(d), 0);
    virDomainFree(d);
    virDomainPtr n = virDomainDefineXML(dst, xml);
    ck_assert(n);
    ck_assert_int_eq(virDomainCreate(n), 0);
    virDomainFree(n);
    free(xml);
}

static void running_on(const char *vm, const char *node)
{
    wait_field("VirtualMachine", vm, "status.phase", "Running", 5000);
    wait_field("VirtualMachine", vm, "status.node", node, 5000);
}

/* ---- the tests ---------------------------------------------------------------- */

START_TEST(test_target_choice_and_refusals)
{
    vm_create("mv", ",\"nodeSelector\":{}");
    wait_phase("mv", "Running");
    char *src = field_dup("VirtualMachine", "mv", "status.node");
    const char *other = strcmp(src, "node-a") ? "node-a" : "node-b";
    struct mig_req q = mig("target", "mv", NULL, NULL, NULL);
    ck_assert_msg(q.rc == 0, "target: %s", q.err.message);
    ck_assert_str_eq(q.target, other);

    q = mig("target", "mv", src, NULL, NULL);
    ck_assert_int_eq(q.rc, -EINVAL);
    ck_assert_msg(strstr(q.err.message, "already runs on"), "%s", q.err.message);
    q = mig("target", "mv", "node-z", NULL, NULL);
    ck_assert_int_eq(q.rc, -ENOENT);
    q = mig("target", "mv", NULL, "{\"group\":\"red\"}", NULL);
    ck_assert_int_eq(q.rc, -ENOSPC);
    ck_assert_msg(strstr(q.err.message, "group=red"), "%s", q.err.message);
    const char *excl[] = {other, NULL};
    q = mig("target", "mv", NULL, NULL, excl);
    ck_assert_int_eq(q.rc, -ENOSPC);
    cordon(other, true);
    q = mig("target", "mv", NULL, NULL, NULL);
    ck_assert_int_eq(q.rc, -ENOSPC);
    ck_assert_msg(strstr(q.err.message, "cordoned"), "%s", q.err.message);
    cordon(other, false);
    /* Only a Running VM: a stopped one is refused. */
    vm_create("off", ",\"runPolicy\":\"AlwaysOff\"");
    wait_phase("off", "Stopped");
    q = mig("target", "off", NULL, NULL, NULL);
    ck_assert_int_eq(q.rc, -EBUSY);
    ck_assert_msg(strstr(q.err.message, "Stopped"), "%s", q.err.message);
    free(src);
}
END_TEST

START_TEST(test_begin_reserves_target_end_on_source)
{
    /* big (4 CPUs) starts on node-a (node-b cordoned meanwhile); node-b has 4 CPUs. */
    wait_field("Node", "node-b", "status.phase", "Ready", 5000);
    cordon("node-b", true);
    vm_create("big", ",\"cpu\":{\"cores\":4}");
    running_on("big", "node-a");
    cordon("node-b", false);
    struct mig_req q = mig("begin", "big", "node-b",
                           "{\"migrationUID\":\"u1\",\"method\":\"LiveMigration\"}", NULL);
    ck_assert_msg(q.rc == 0, "begin: %s", q.err.message);
    struct json_object *vm = get("VirtualMachine", "big");
    ck_assert_str_eq(vf_test_json_str(vm, "status.phase"), "Migrating");
    ck_assert_str_eq(vf_test_json_str(vm, "status.node"), "node-a");
    ck_assert_str_eq(vf_test_json_str(vm, "status.migrationState.sourceNode"), "node-a");
    ck_assert_str_eq(vf_test_json_str(vm, "status.migrationState.targetNode"), "node-b");
    ck_assert_str_eq(vf_test_json_str(vm, "status.migrationState.method"), "LiveMigration");
    json_object_put(vm);
    /* A second begin is refused: it is not Running. */
    q = mig("begin", "big", "node-b", NULL, NULL);
    ck_assert_int_eq(q.rc, -EBUSY);
    /* node-b's 4 CPUs are reserved for it: a 2-CPU VM for node-b waits. */
    vm_create("late", ",\"cpu\":{\"cores\":2},\"nodeSelector\":{\"group\":\"green\"}");
    vm = wait_condition("late", "Running", "Unschedulable");
    json_object_put(vm);
    /* Progress merges; null removes. */
    q = mig("update", "big", NULL, "{\"progress\":40,\"method\":null}", NULL);
    ck_assert_msg(q.rc == 0, "update: %s", q.err.message);
    vm = get("VirtualMachine", "big");
    ck_assert_int_eq(vf_test_json_int(vm, "status.migrationState.progress"), 40);
    ck_assert_ptr_null(vf_test_json_at(vm, "status.migrationState.method"));
    ck_assert_str_eq(vf_test_json_str(vm, "status.migrationState.migrationUID"), "u1");
    json_object_put(vm);
    /* The controller leaves a Migrating VM alone. */
    sleep_ms(300);
    wait_field("VirtualMachine", "big", "status.phase", "Migrating", 100);
    /* A node that is neither source nor target is refused. */
    q = mig("end", "big", "node-z", NULL, NULL);
    ck_assert_int_eq(q.rc, -EINVAL);
    /* Aborted: back on the source; node-b is free for "late". */
    q = mig("end", "big", "node-a", "{\"failed\":true,\"abortStatus\":\"Succeeded\"}", NULL);
    ck_assert_msg(q.rc == 0, "end: %s", q.err.message);
    running_on("big", "node-a");
    running_on("late", "node-b");
    vm = get("VirtualMachine", "big");
    ck_assert_str_eq(vf_test_json_str(vm, "status.migrationState.abortStatus"), "Succeeded");
    json_object_put(vm);
    ck_assert_int_eq(dom("node-a", "big").active, 1);
    q = mig("update", "big", NULL, "{\"progress\":1}", NULL);
    ck_assert_int_eq(q.rc, -EBUSY);
}
END_TEST

START_TEST(test_end_on_target_hands_back)
{
    vm_create("mv", ",\"nodeSelector\":{}");
    wait_phase("mv", "Running");
    char *src = field_dup("VirtualMachine", "mv", "status.node");
    const char *dst = strcmp(src, "node-a") ? "node-a" : "node-b";
    struct mig_req q = mig("begin", "mv", dst, NULL, NULL);
    ck_assert_msg(q.rc == 0, "begin: %s", q.err.message);
    struct move_req m = {.from = src, .to = dst, .name = "mv"};
    vf_loop_call(move_on_loop, &m);
    int id = dom(dst, "mv").id;
    sleep_ms(300);   /* events from both nodes arrive; the controller must not act */
    wait_field("VirtualMachine", "mv", "status.phase", "Migrating", 100);
    q = mig("end", "mv", dst, "{\"completed\":true}", NULL);
    ck_assert_msg(q.rc == 0, "end: %s", q.err.message);
    running_on("mv", dst);
    sleep_ms(500);
    /* The same run of the domain: taken over, not restarted. */
    struct dom_req d = dom(dst, "mv");
    ck_assert_int_eq(d.active, 1);
    ck_assert_int_eq(d.id, id);
    ck_assert_int_eq(dom(src, "mv").exists, 0);
    wait_field("VirtualMachine", "mv", "status.phase", "Running", 100);
    free(src);
}
END_TEST

static Suite *migrate_core_suite(void)
{
    Suite *s = suite_create("migrate_core");
#define ADD_CASE(name, fn)                                         \
    do {                                                           \
        TCase *tc = tcase_create(name);                            \
        tcase_add_checked_fixture(tc, setup, teardown);            \
        tcase_set_timeout(tc, 60);                                 \
        tcase_add_test(tc, fn);                                    \
        suite_add_tcase(s, tc);                                    \
    } while (0)
    ADD_CASE("target choice and refusals", test_target_choice_and_refusals);
    ADD_CASE("begin reserves the target, end on the source", test_begin_reserves_target_end_on_source);
    ADD_CASE("end on the target hands the VM back", test_end_on_target_hands_back);
#undef ADD_CASE
    return s;
}

int main(void)
{
    if (vf_test_stack_process_init("check_migrate_core", nodes_dir) < 0)
        return EXIT_FAILURE;
    return vf_test_run(migrate_core_suite());
}
