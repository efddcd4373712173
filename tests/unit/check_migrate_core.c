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
#include "tests/unit/vmtest.h"

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
