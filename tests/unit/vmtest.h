/* What the VirtualMachine suites (check_vms, check_migrate_core) share: the
 * two fake nodes of tests/lib/nodes in a config, the stack brought up with the
 * VM controller running, and helpers that read, create and wait for objects
 * and look at domains from the test thread through the loop thread.
 * Header-only like teststack.h; include it after testlib.h and teststack.h,
 * once per suite (it holds the suite's stack and config). */
#ifndef VF_VMTEST_H
#define VF_VMTEST_H
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include "core/cluster.h"
#include "core/config.h"
#include "core/loop.h"
#include "core/objects.h"
#include "core/vms.h"
#include "tests/unit/testlib.h"
#include "tests/unit/teststack.h"

/* The VM addresses setup() gives the controller. */
#define CIDR "10.66.10.0/29"

/* The suite's main() fills nodes_dir (vf_test_stack_process_init). */
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

/* Moves the domain of `name` from one test node to the other, as a migration
 * with PERSIST_DEST | UNDEFINE_SOURCE leaves it (the test driver cannot
 * migrate).  Runs on the loop thread: vf_loop_call(move_on_loop, &req). */
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
#endif
