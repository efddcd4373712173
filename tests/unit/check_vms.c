/* The VirtualMachine controller and the core's VirtualMachineOperations over
 * the real loop, workers, store and cluster, with libvirt's test driver as
 * the nodes (each test:///PATH/node.xml connection is a private fake node):
 * placement and start, IP addresses, runPolicy, Stop/Start/Restart
 * operations, unexpected stops, deletion, refused reloads, and a restart of
 * the controller that must start nothing twice. */
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

/* ---- objects and domains, from the test thread (more in vmtest.h) -------- */

static void vmop_create(const char *name, const char *vm, const char *type, bool force)
{
    char json[1024];
    snprintf(json, sizeof json,
             "{\"kind\":\"VirtualMachineOperation\",\"metadata\":{\"name\":\"%s\"},"
             "\"spec\":{\"virtualMachineName\":\"%s\",\"type\":\"%s\",\"force\":%s}}",
             name, vm, type, force ? "true" : "false");
    create("VirtualMachineOperation", json);
}

static void delete_on_loop(void *opaque)
{
    struct obj_req *q = opaque;
    q->rc = vf_objects_delete(q->kind, q->name, 0, NULL, &q->err);
}

static void delete(const char *kind, const char *name)
{
    struct obj_req q = {.kind = kind, .name = name};
    vf_loop_call(delete_on_loop, &q);
    ck_assert_msg(q.rc == 0, "delete %s %s: %s", kind, name, q.err.message);
}

static void dom_destroy(const char *node, const char *name)
{
    struct dom_req q = {.node = node, .name = name, .destroy = true};
    vf_loop_call(dom_on_loop, &q);
    ck_assert_msg(q.exists, "domain %s not on %s", name, node);
}

/* ---- networks, through the daemon's own connections --------------------------- */

struct net_req {
    const char *node, *network;
    const char *add;        /* a <host> to add first, or NULL */
    char *xml;              /* the network's XML afterwards */
};

static void net_on_loop(void *opaque)
{
    struct net_req *q = opaque;
    virConnectPtr conn = vf_cluster_connection(q->node);
    ck_assert_msg(conn != NULL, "node %s is not connected", q->node);
    virNetworkPtr n = virNetworkLookupByName(conn, q->network);
    ck_assert_msg(n != NULL, "network %s not on %s", q->network, q->node);
    if (q->add)
        ck_assert_int_eq(virNetworkUpdate(n, VIR_NETWORK_UPDATE_COMMAND_ADD_LAST,
                                          VIR_NETWORK_SECTION_IP_DHCP_HOST, 0, q->add,
                                          VIR_NETWORK_UPDATE_AFFECT_LIVE |
                                              VIR_NETWORK_UPDATE_AFFECT_CONFIG), 0);
    q->xml = virNetworkGetXMLDesc(n, 0);
    virNetworkFree(n);
}

/* The network's XML (free()); add: a host entry to add before. */
static char *net_xml(const char *node, const char *network, const char *add)
{
    struct net_req q = {.node = node, .network = network, .add = add};
    vf_loop_call(net_on_loop, &q);
    ck_assert_ptr_nonnull(q.xml);
    return q.xml;
}

struct dom_xml_req {
    const char *node, *name;
    char *xml;
};

static void dom_xml_on_loop(void *opaque)
{
    struct dom_xml_req *q = opaque;
    virDomainPtr d = virDomainLookupByName(vf_cluster_connection(q->node), q->name);
    ck_assert_msg(d != NULL, "domain %s not on %s", q->name, q->node);
    q->xml = virDomainGetXMLDesc(d, 0);
    virDomainFree(d);
}

static char *dom_xml(const char *node, const char *name)
{
    struct dom_xml_req q = {.node = node, .name = name};
    vf_loop_call(dom_xml_on_loop, &q);
    ck_assert_ptr_nonnull(q.xml);
    return q.xml;
}

#define ASSERT_HAS(hay, needle) \
    ck_assert_msg(strstr((hay), (needle)) != NULL, "missing \"%s\" in:\n%s", (needle), (hay))
#define ASSERT_LACKS(hay, needle) \
    ck_assert_msg(strstr((hay), (needle)) == NULL, "unexpected \"%s\" in:\n%s", (needle), (hay))

/* ---- the tests ---------------------------------------------------------------- */

START_TEST(test_placed_running_with_ip)
{
    /* Placement sees only connected nodes: let both come up first. */
    wait_field("Node", "node-a", "status.phase", "Ready", 5000);
    wait_field("Node", "node-b", "status.phase", "Ready", 5000);
    vm_create("web", "");
    wait_phase("web", "Running");
    struct json_object *vm = get("VirtualMachine", "web");
    const char *node = vf_test_json_str(vm, "status.node");
    ck_assert_ptr_nonnull(node);
    /* node-a has the most room (8 CPUs, 16 GiB against 4 and 8). */
    ck_assert_str_eq(node, "node-a");
    ck_assert_str_eq(vf_test_json_str(vm, "status.ipAddress"), "10.66.10.1");
    ck_assert_str_eq(vf_test_json_str(vm, "status.class"), "generic");
    ck_assert_str_eq(vf_test_json_str(vm, "metadata.finalizers.0"), "virtfleet.io/vm-cleanup");
    ck_assert_int_eq(vf_test_json_int(vm, "status.observedGeneration"), 1);
    struct dom_req d = dom(node, "web");
    ck_assert_int_eq(d.exists, 1);
    ck_assert_int_eq(d.active, 1);
    ck_assert_int_eq(dom("node-b", "web").exists, 0);
    json_object_put(vm);

    vm_create("db", ",\"ipAddress\":\"10.66.10.5\"");
    wait_phase("db", "Running");
    wait_field("VirtualMachine", "db", "status.ipAddress", "10.66.10.5", 1000);
}
END_TEST

START_TEST(test_ip_refused)
{
    vm_create("out", ",\"ipAddress\":\"10.99.0.5\"");
    struct json_object *vm = wait_condition("out", "IPAddressReady", "AddressOutOfRange");
    ck_assert_str_eq(vf_test_json_str(condition(vm, "IPAddressReady"), "status"), "False");
    json_object_put(vm);
    wait_phase("out", "Pending");
    vm = get("VirtualMachine", "out");
    ck_assert_ptr_null(vf_test_json_at(vm, "status.node"));
    json_object_put(vm);

    vm_create("first", "");
    wait_field("VirtualMachine", "first", "status.ipAddress", "10.66.10.1", 5000);
    vm_create("taken", ",\"ipAddress\":\"10.66.10.1\"");
    json_object_put(wait_condition("taken", "IPAddressReady", "AddressInUse"));
    wait_phase("taken", "Pending");
}
END_TEST

START_TEST(test_always_off_stays_stopped)
{
    vm_create("off", ",\"runPolicy\":\"AlwaysOff\"");
    wait_phase("off", "Stopped");
    sleep_ms(300);
    wait_phase("off", "Stopped");
    ck_assert_int_eq(dom("node-a", "off").exists, 0);
    ck_assert_int_eq(dom("node-b", "off").exists, 0);
    /* It still holds its address. */
    wait_field("VirtualMachine", "off", "status.ipAddress", "10.66.10.1", 1000);
}
END_TEST

START_TEST(test_stop_and_start_operations)
{
    vm_create("app", "");
    wait_phase("app", "Running");
    char *node = field_dup("VirtualMachine", "app", "status.node");

    vmop_create("stop-app", "app", "Stop", false);
    wait_field("VirtualMachineOperation", "stop-app", "status.phase", "Completed", 5000);
    wait_phase("app", "Stopped");
    wait_field("VirtualMachine", "app", "status.lastOperation.name", "stop-app", 1000);
    wait_field("VirtualMachine", "app", "status.lastOperation.phase", "Completed", 1000);
    /* A stopped VM's domain is gone, and AlwaysOnUnlessStoppedManually
     * leaves it stopped. */
    sleep_ms(400);
    wait_phase("app", "Stopped");
    ck_assert_int_eq(dom(node, "app").exists, 0);
    ck_assert_ptr_null(field_dup("VirtualMachine", "app", "status.node"));

    vmop_create("start-app", "app", "Start", false);
    wait_field("VirtualMachineOperation", "start-app", "status.phase", "Completed", 5000);
    wait_phase("app", "Running");
    wait_field("VirtualMachine", "app", "status.lastOperation.name", "start-app", 1000);
    char *now = field_dup("VirtualMachine", "app", "status.node");
    ck_assert_int_eq(dom(now, "app").active, 1);
    free(now);
    free(node);
}
END_TEST

START_TEST(test_restart_operation)
{
    vm_create("rs", "");
    wait_phase("rs", "Running");
    char *node = field_dup("VirtualMachine", "rs", "status.node");
    int id = dom(node, "rs").id;
    vmop_create("restart-rs", "rs", "Restart", true);
    wait_field("VirtualMachineOperation", "restart-rs", "status.phase", "Completed", 5000);
    wait_phase("rs", "Running");
    char *now = field_dup("VirtualMachine", "rs", "status.node");
    struct dom_req d = dom(now, "rs");
    ck_assert_int_eq(d.active, 1);
    /* A new domain: on another node (ids count from 1 per test node) or a new id. */
    ck_assert(strcmp(now, node) != 0 || d.id != id);
    free(now);
    free(node);
}
END_TEST

START_TEST(test_operations_refused_by_policy)
{
    vm_create("on", ",\"runPolicy\":\"AlwaysOn\"");
    vm_create("off", ",\"runPolicy\":\"AlwaysOff\"");
    wait_phase("on", "Running");
    wait_phase("off", "Stopped");
    vmop_create("stop-on", "on", "Stop", false);
    vmop_create("start-off", "off", "Start", false);
    vmop_create("start-none", "nosuchvm", "Start", false);
    wait_field("VirtualMachineOperation", "stop-on", "status.phase", "Failed", 5000);
    wait_field("VirtualMachineOperation", "start-off", "status.phase", "Failed", 5000);
    wait_field("VirtualMachineOperation", "start-none", "status.phase", "Failed", 5000);
    wait_field("VirtualMachineOperation", "start-none", "status.conditions.0.reason", "NotFound",
               1000);
    wait_phase("on", "Running");
    wait_phase("off", "Stopped");
}
END_TEST

/* Destroys the VM's domain behind the controller's back and waits until the
 * VM runs again in a new domain, within timeout_ms.  The restart may land on
 * the other node (a stopped VM is placed anew), where the test driver's domain
 * ids count from 1 again: a new domain is a new node or a new id. */
static void destroy_and_wait_restart(const char *vm, int timeout_ms)
{
    char *node = field_dup("VirtualMachine", vm, "status.node");
    ck_assert_ptr_nonnull(node);
    int id = dom(node, vm).id;
    dom_destroy(node, vm);
    for (int waited = 0;; waited += 20) {
        char *n = field_dup("VirtualMachine", vm, "status.node");
        char *p = field_dup("VirtualMachine", vm, "status.phase");
        bool up = n && p && !strcmp(p, "Running");
        struct dom_req d = up ? dom(n, vm) : (struct dom_req){0};
        bool moved = up && strcmp(n, node) != 0;
        free(n);
        free(p);
        if (up && d.active == 1 && (moved || d.id != id)) {
            free(node);
            return;
        }
        ck_assert_msg(waited < timeout_ms, "vm %s was not restarted", vm);
        sleep_ms(20);
    }
}

START_TEST(test_always_on_restarted_after_destroy)
{
    vm_create("ha", ",\"runPolicy\":\"AlwaysOn\"");
    wait_phase("ha", "Running");
    destroy_and_wait_restart("ha", 5000);
    json_object_put(wait_condition("ha", "Running", "Running"));
}
END_TEST

START_TEST(test_repeated_stops_degrade)
{
    vm_create("flaky", ",\"runPolicy\":\"AlwaysOn\"");
    wait_phase("flaky", "Running");
    destroy_and_wait_restart("flaky", 5000);
    char *node = field_dup("VirtualMachine", "flaky", "status.node");
    dom_destroy(node, "flaky");
    free(node);
    /* The second unexpected stop in a row waits (1 s) before restarting. */
    wait_phase("flaky", "Degraded");
    struct json_object *vm = wait_condition("flaky", "Running", "CrashLoop");
    const char *msg = vf_test_json_str(condition(vm, "Running"), "message");
    ck_assert_msg(strstr(msg, "2 times in a row"), "message: %s", msg);
    json_object_put(vm);
    wait_phase("flaky", "Running");
}
END_TEST

START_TEST(test_manual_not_restarted)
{
    vm_create("man", ",\"runPolicy\":\"Manual\"");
    wait_phase("man", "Stopped");
    sleep_ms(200);
    wait_phase("man", "Stopped");
    vmop_create("start-man", "man", "Start", false);
    wait_field("VirtualMachineOperation", "start-man", "status.phase", "Completed", 5000);
    wait_phase("man", "Running");
    char *node = field_dup("VirtualMachine", "man", "status.node");
    dom_destroy(node, "man");
    wait_phase("man", "Stopped");
    sleep_ms(400);
    wait_phase("man", "Stopped");
    ck_assert_int_eq(dom(node, "man").exists, 0);
    free(node);
}
END_TEST

START_TEST(test_node_selector_without_match_is_pending)
{
    /* Only Ready nodes are judged by their labels. */
    wait_field("Node", "node-a", "status.phase", "Ready", 5000);
    wait_field("Node", "node-b", "status.phase", "Ready", 5000);
    vm_create("picky", ",\"nodeSelector\":{\"group\":\"red\"}");
    struct json_object *vm = wait_condition("picky", "Running", "Unschedulable");
    ck_assert_str_eq(vf_test_json_str(vm, "status.phase"), "Pending");
    const char *msg = vf_test_json_str(condition(vm, "Running"), "message");
    ck_assert_msg(strstr(msg, "group=red") && strstr(msg, "node-a") && strstr(msg, "node-b"),
                  "explanation: %s", msg);
    json_object_put(vm);

    vm_create("green", ",\"nodeSelector\":{\"group\":\"green\"}");
    wait_phase("green", "Running");
    wait_field("VirtualMachine", "green", "status.node", "node-b", 1000);
}
END_TEST

START_TEST(test_delete_undefines_and_releases)
{
    vm_create("gone", "");
    wait_phase("gone", "Running");
    char *node = field_dup("VirtualMachine", "gone", "status.node");
    wait_field("VirtualMachine", "gone", "status.ipAddress", "10.66.10.1", 1000);
    delete("VirtualMachine", "gone");
    wait_field("VirtualMachine", "gone", "status.phase", NULL, 5000);
    ck_assert_int_eq(dom(node, "gone").exists, 0);
    /* Its address is free again: the next VM gets the lowest one. */
    vm_create("next", "");
    wait_field("VirtualMachine", "next", "status.ipAddress", "10.66.10.1", 5000);
    free(node);
}
END_TEST

/* A VM that waits for an address gets it as soon as its holder is deleted
 * (not at the next unrelated change, such as a node's status a minute later). */
START_TEST(test_waiting_vm_gets_released_address)
{
    vm_create("holder", "");
    wait_field("VirtualMachine", "holder", "status.ipAddress", "10.66.10.1", 5000);
    vm_create("wants", ",\"ipAddress\":\"10.66.10.1\"");
    json_object_put(wait_condition("wants", "IPAddressReady", "AddressInUse"));
    wait_phase("wants", "Pending");
    delete("VirtualMachine", "holder");
    wait_field("VirtualMachine", "holder", "status.phase", NULL, 5000);
    wait_field("VirtualMachine", "wants", "status.ipAddress", "10.66.10.1", 2000);
    wait_field("VirtualMachine", "wants", "status.phase", "Running", 2000);
}
END_TEST

/* Likewise for room on a node: a VM stopped by an operation gives back its
 * node's CPUs, and the VM that waited for them starts there at once. */
START_TEST(test_waiting_vm_gets_freed_capacity)
{
    /* node-b (group green) has 4 CPUs. */
    vm_create("hog", ",\"cpu\":{\"cores\":4},\"nodeSelector\":{\"group\":\"green\"}");
    wait_phase("hog", "Running");
    vm_create("late", ",\"cpu\":{\"cores\":2},\"nodeSelector\":{\"group\":\"green\"}");
    struct json_object *vm = wait_condition("late", "Running", "Unschedulable");
    const char *msg = vf_test_json_str(condition(vm, "Running"), "message");
    ck_assert_msg(strstr(msg, "node-b") && strstr(msg, "CPU"), "explanation: %s", msg);
    json_object_put(vm);
    /* The Node shows what the running VM holds. */
    wait_field("Node", "node-b", "status.reserved.cpu", "4", 2000);
    wait_field("Node", "node-b", "status.reserved.virtualMachines", "1", 1000);
    vmop_create("stop-hog", "hog", "Stop", true);
    wait_phase("hog", "Stopped");
    wait_field("VirtualMachine", "late", "status.phase", "Running", 2000);
    wait_field("VirtualMachine", "late", "status.node", "node-b", 1000);
    wait_field("Node", "node-b", "status.reserved.cpu", "2", 2000);
}
END_TEST

/* Placement counts a VM's reservation from the controller's own status
 * write, not from the write's watch event: two VMs that reach one pass
 * together cannot both take a node's last room. */
static void create_pair_on_loop(void *opaque)
{
    struct obj_req *q = opaque;
    for (int i = 0; i < 2; i++) {
        char json[512];
        snprintf(json, sizeof json,
                 "{\"kind\":\"VirtualMachine\",\"metadata\":{\"name\":\"pair-%d\"},"
                 "\"spec\":{\"cpu\":{\"cores\":3},\"memory\":{\"size\":\"128Mi\"},"
                 "\"nodeSelector\":{\"group\":\"green\"},"
                 "\"terminationGracePeriodSeconds\":1}}", i);
        struct json_object *obj = vf_test_json(json);
        q->rc = vf_objects_create("VirtualMachine", obj, NULL, &q->err);
        json_object_put(obj);
        if (q->rc < 0)
            return;
    }
}

START_TEST(test_last_room_taken_once)
{
    /* node-b (group green) has 4 CPUs: room for one VM of 3. */
    wait_field("Node", "node-b", "status.phase", "Ready", 5000);
    struct obj_req q = {0};
    vf_loop_call(create_pair_on_loop, &q);   /* both before any pass runs */
    ck_assert_msg(q.rc == 0, "create: %s", q.err.message);
    const char *names[] = {"pair-0", "pair-1"};
    int running = -1;
    for (int waited = 0; running < 0; waited += 20) {
        for (int i = 0; i < 2 && running < 0; i++) {
            char *phase = field_dup("VirtualMachine", names[i], "status.phase");
            if (phase && !strcmp(phase, "Running"))
                running = i;
            free(phase);
        }
        ck_assert_msg(waited < 5000, "neither VM of the pair runs");
        sleep_ms(20);
    }
    struct json_object *vm = wait_condition(names[1 - running], "Running", "Unschedulable");
    ck_assert_str_eq(vf_test_json_str(vm, "status.phase"), "Pending");
    ck_assert_ptr_null(vf_test_json_at(vm, "status.node"));
    json_object_put(vm);
    wait_field("Node", "node-b", "status.reserved.cpu", "3", 2000);
    wait_field("Node", "node-b", "status.reserved.virtualMachines", "1", 1000);
    /* Some time later, still only one of them. */
    sleep_ms(300);
    char *phase = field_dup("VirtualMachine", names[1 - running], "status.phase");
    ck_assert_str_eq(phase, "Pending");
    free(phase);
    ck_assert_int_eq(dom("node-b", NULL).count, 1);
}
END_TEST

/* A deleted VM gives back its node's room (a stopped one too, see
 * freed_capacity), and the Node's status.reserved says so. */
START_TEST(test_deleted_vm_frees_its_room)
{
    vm_create("hog", ",\"cpu\":{\"cores\":3},\"nodeSelector\":{\"group\":\"green\"}");
    wait_phase("hog", "Running");
    vm_create("next", ",\"cpu\":{\"cores\":3},\"nodeSelector\":{\"group\":\"green\"}");
    json_object_put(wait_condition("next", "Running", "Unschedulable"));
    wait_field("Node", "node-b", "status.reserved.cpu", "3", 2000);
    delete("VirtualMachine", "hog");
    wait_field("VirtualMachine", "hog", "status.phase", NULL, 5000);
    wait_field("VirtualMachine", "next", "status.phase", "Running", 2000);
    wait_field("VirtualMachine", "next", "status.node", "node-b", 1000);
    wait_field("Node", "node-b", "status.reserved.cpu", "3", 2000);
    wait_field("Node", "node-b", "status.reserved.virtualMachines", "1", 1000);
    /* And with nothing left, nothing reserved. */
    vmop_create("stop-next", "next", "Stop", true);
    wait_phase("next", "Stopped");
    wait_field("Node", "node-b", "status.reserved.cpu", "0", 2000);
    wait_field("Node", "node-b", "status.reserved.virtualMachines", "0", 1000);
}
END_TEST

static void controller_restart(void *opaque)
{
    (void)opaque;
    vf_vms_stop();
    ck_assert_int_eq(vf_vms_start(cfg), 0);
}

/* node -> VMs placed there, from the store: the reservations. */
static void reservations(char *buf, size_t len)
{
    const char *names[] = {"r1", "r2", "r3"};
    buf[0] = '\0';
    for (size_t i = 0; i < 3; i++) {
        char *n = field_dup("VirtualMachine", names[i], "status.node");
        char *ip = field_dup("VirtualMachine", names[i], "status.ipAddress");
        size_t used = strlen(buf);
        snprintf(buf + used, len - used, "%s=%s/%s ", names[i], n ? n : "-", ip ? ip : "-");
        free(n);
        free(ip);
    }
}

START_TEST(test_controller_restart_starts_nothing_twice)
{
    vm_create("r1", "");
    vm_create("r2", "");
    vm_create("r3", ",\"runPolicy\":\"AlwaysOff\"");
    wait_phase("r1", "Running");
    wait_phase("r2", "Running");
    wait_phase("r3", "Stopped");
    char before[256], after[256];
    reservations(before, sizeof before);
    int count_a = dom("node-a", NULL).count, count_b = dom("node-b", NULL).count;
    char *n1 = field_dup("VirtualMachine", "r1", "status.node");
    char *n2 = field_dup("VirtualMachine", "r2", "status.node");
    int id1 = dom(n1, "r1").id, id2 = dom(n2, "r2").id;
    char *rv = field_dup("VirtualMachine", "r1", "metadata.resourceVersion");

    vf_loop_call(controller_restart, NULL);
    sleep_ms(500);
    wait_phase("r1", "Running");
    wait_phase("r2", "Running");
    wait_phase("r3", "Stopped");
    reservations(after, sizeof after);
    ck_assert_str_eq(before, after);
    ck_assert_int_eq(dom("node-a", NULL).count, count_a);
    ck_assert_int_eq(dom("node-b", NULL).count, count_b);
    ck_assert_int_eq(dom(n1, "r1").id, id1);
    ck_assert_int_eq(dom(n2, "r2").id, id2);
    /* Converged without rewriting what it already said. */
    char *rv_after = field_dup("VirtualMachine", "r1", "metadata.resourceVersion");
    ck_assert_str_eq(rv_after, rv);
    free(rv);
    free(rv_after);
    free(n1);
    free(n2);
}
END_TEST

struct check_req {
    const char *extra;
    int rc;
    struct vf_config_errors errors;
};

static void check_on_loop(void *opaque)
{
    struct check_req *q = opaque;
    struct vf_config *next = config(q->extra);
    q->rc = vf_vms_check_config(next, &q->errors);
    if (q->rc == 0)
        vf_vms_apply_config(next);
    vf_config_free(next);
}

START_TEST(test_reload_keeps_used_subnets)
{
    vm_create("held", "");
    wait_field("VirtualMachine", "held", "status.ipAddress", "10.66.10.1", 5000);
    struct check_req q = {.extra = "virtualization = { virtualMachineCIDRs = [ \"10.77.0.0/24\" ]; };"};
    vf_loop_call(check_on_loop, &q);
    ck_assert_int_eq(q.rc, -EBUSY);
    ck_assert_uint_eq(q.errors.n, 1);
    ck_assert_msg(strstr(q.errors.lines[0], CIDR) && strstr(q.errors.lines[0], "held"),
                  "message: %s", q.errors.lines[0]);
    vf_config_errors_clear(&q.errors);

    /* Adding a subnet is fine, and the issued address stays. */
    struct check_req ok = {
        .extra = "virtualization = { virtualMachineCIDRs = [ \"" CIDR "\", \"10.77.0.0/24\" ]; };"};
    vf_loop_call(check_on_loop, &ok);
    ck_assert_int_eq(ok.rc, 0);
    vm_create("later", "");
    wait_field("VirtualMachine", "later", "status.ipAddress", "10.66.10.2", 5000);
    wait_field("VirtualMachine", "held", "status.ipAddress", "10.66.10.1", 1000);
}
END_TEST

static void no_cidrs_setup(void)
{
    setup_with("");
}

START_TEST(test_without_cidrs_no_address)
{
    vm_create("plain", "");
    wait_phase("plain", "Running");
    ck_assert_ptr_null(field_dup("VirtualMachine", "plain", "status.ipAddress"));
}
END_TEST

/* ---- virtualization.libvirtNetwork: node-a has the networks vfnet and
 * othernet (tests/lib/nodes/node-a.xml), node-b vfnet only --------------------- */

#define ON_A ",\"nodeSelector\":{\"group\":\"blue\"}"
#define ON_B ",\"nodeSelector\":{\"group\":\"green\"}"
#define WEB_HOST "<host mac='02:00:0a:42:0a:01' name='web' ip='10.66.10.1'/>"

static void network_setup(void)
{
    setup_with("virtualization = { virtualMachineCIDRs = [ \"" CIDR "\" ];\n"
               "  libvirtNetwork = \"vfnet\"; };");
}

START_TEST(test_network_dhcp_host_entry)
{
    wait_field("Node", "node-a", "status.phase", "Ready", 5000);
    /* Entries in the way: one for the address the VM gets, one with its name
     * (both stale, e.g. from VMs deleted while the node was away), and one of
     * someone else that must stay. */
    free(net_xml("node-a", "vfnet", "<host mac='52:54:00:00:00:99' name='old' ip='10.66.10.1'/>"));
    free(net_xml("node-a", "vfnet", "<host mac='52:54:00:00:00:98' name='web' ip='10.66.10.50'/>"));
    char *x = net_xml("node-a", "vfnet",
                      "<host mac='52:54:00:00:00:97' name='keep' ip='10.66.10.60'/>");
    ASSERT_HAS(x, "name='old'");
    free(x);

    vm_create("web", ON_A);
    wait_phase("web", "Running");
    wait_field("VirtualMachine", "web", "status.macAddress", "02:00:0a:42:0a:01", 1000);
    x = net_xml("node-a", "vfnet", NULL);
    ASSERT_HAS(x, WEB_HOST);
    ASSERT_LACKS(x, "name='old'");
    ASSERT_LACKS(x, "10.66.10.50");
    ASSERT_HAS(x, "<host mac='52:54:00:00:00:97' name='keep' ip='10.66.10.60'/>");
    free(x);
    char *d = dom_xml("node-a", "web");
    ASSERT_HAS(d, "<mac address='02:00:0a:42:0a:01'/>");
    ASSERT_HAS(d, "<source network='vfnet'");
    ASSERT_HAS(d, "<model type='virtio'/>");
    free(d);

    /* Deleted: the entry goes with the domain; the other one stays. */
    delete("VirtualMachine", "web");
    wait_field("VirtualMachine", "web", "status.phase", NULL, 5000);
    ck_assert_int_eq(dom("node-a", "web").exists, 0);
    x = net_xml("node-a", "vfnet", NULL);
    ASSERT_LACKS(x, "02:00:0a:42:0a:01");
    ASSERT_LACKS(x, "name='web'");
    ASSERT_HAS(x, "name='keep'");
    free(x);
}
END_TEST

static void othernet_setup(void)
{
    setup_with("virtualization = { virtualMachineCIDRs = [ \"" CIDR "\" ];\n"
               "  libvirtNetwork = \"othernet\"; };");
}

/* The start fails on a node without the network, and says so. */
START_TEST(test_network_missing_fails_start)
{
    wait_field("Node", "node-b", "status.phase", "Ready", 5000);
    vm_create("lost", ON_B);
    struct json_object *vm = wait_condition("lost", "Running", "StartFailed");
    const char *msg = vf_test_json_str(condition(vm, "Running"), "message");
    ck_assert_msg(strstr(msg, "node \"node-b\"") && strstr(msg, "network \"othernet\"") &&
                  strstr(msg, "no such libvirt network on the node"), "message: %s", msg);
    json_object_put(vm);
    /* Nothing was defined there. */
    ck_assert_int_eq(dom("node-b", "lost").exists, 0);
}
END_TEST

/* The network has no DHCP subnet for the VM's address. */
START_TEST(test_network_wrong_subnet_fails_start)
{
    wait_field("Node", "node-a", "status.phase", "Ready", 5000);
    vm_create("astray", ON_A);
    struct json_object *vm = wait_condition("astray", "Running", "StartFailed");
    const char *msg = vf_test_json_str(condition(vm, "Running"), "message");
    ck_assert_msg(strstr(msg, "node \"node-a\"") && strstr(msg, "network \"othernet\"") &&
                  strstr(msg, "the address 10.66.10.1 is in none of its DHCP subnets "
                              "(192.168.50.0/24)"), "message: %s", msg);
    json_object_put(vm);
    ck_assert_int_eq(dom("node-a", "astray").exists, 0);
    char *x = net_xml("node-a", "othernet", NULL);
    ASSERT_LACKS(x, "<host");
    free(x);
}
END_TEST

static void network6_setup(void)
{
    setup_with("virtualization = { virtualMachineCIDRs = [ \"fd00:66::/120\" ];\n"
               "  libvirtNetwork = \"vfnet\"; };");
}

/* IPv6: a <host name= ip=/> (libvirt allows no MAC there) under the IPv6
 * <ip>; a Stop undefines the domain and takes the entry along. */
START_TEST(test_network_ipv6_entry)
{
    wait_field("Node", "node-a", "status.phase", "Ready", 5000);
    vm_create("six", ON_A);
    wait_phase("six", "Running");
    wait_field("VirtualMachine", "six", "status.ipAddress", "fd00:66::1", 1000);
    char *mac = field_dup("VirtualMachine", "six", "status.macAddress");
    ck_assert_ptr_nonnull(mac);
    ck_assert_int_eq(strncmp(mac, "06:", 3), 0);
    char *x = net_xml("node-a", "vfnet", NULL);
    const char *v6 = strstr(x, "family='ipv6'");
    ck_assert_ptr_nonnull(v6);
    const char *host = strstr(x, "<host name='six' ip='fd00:66::1'/>");
    ck_assert_msg(host && host > v6, "no IPv6 host entry under the IPv6 <ip> in:\n%s", x);
    free(x);
    char *d = dom_xml("node-a", "six");
    char want[64];
    snprintf(want, sizeof want, "<mac address='%s'/>", mac);
    ASSERT_HAS(d, want);
    free(d);

    vmop_create("stop-six", "six", "Stop", false);
    wait_phase("six", "Stopped");
    /* The node is let go once the definition (and the entry) is gone. */
    for (int waited = 0;; waited += 20) {
        char *node = field_dup("VirtualMachine", "six", "status.node");
        bool gone = !node;
        free(node);
        if (gone)
            break;
        ck_assert_msg(waited < 5000, "vm six still on its node after 5 s");
        sleep_ms(20);
    }
    ck_assert_int_eq(dom("node-a", "six").exists, 0);
    x = net_xml("node-a", "vfnet", NULL);
    ASSERT_LACKS(x, "name='six'");
    free(x);
    free(mac);
}
END_TEST

/* A reload that unsets the network: VMs started afterwards get no interface;
 * the running one keeps its entry, which goes with it when it is deleted. */
START_TEST(test_network_reload)
{
    wait_field("Node", "node-a", "status.phase", "Ready", 5000);
    vm_create("web", ON_A);
    wait_phase("web", "Running");
    struct check_req q = {.extra = "virtualization = { virtualMachineCIDRs = [ \"" CIDR "\" ]; };"};
    vf_loop_call(check_on_loop, &q);
    ck_assert_int_eq(q.rc, 0);
    vm_create("plain", ON_A);
    wait_phase("plain", "Running");
    ck_assert_ptr_null(field_dup("VirtualMachine", "plain", "status.macAddress"));
    char *d = dom_xml("node-a", "plain");
    ASSERT_LACKS(d, "<interface");
    free(d);
    wait_field("VirtualMachine", "web", "status.macAddress", "02:00:0a:42:0a:01", 1000);
    char *x = net_xml("node-a", "vfnet", NULL);
    ASSERT_HAS(x, WEB_HOST);
    ASSERT_LACKS(x, "name='plain'");
    free(x);
    delete("VirtualMachine", "web");
    wait_field("VirtualMachine", "web", "status.phase", NULL, 5000);
    x = net_xml("node-a", "vfnet", NULL);
    ASSERT_LACKS(x, "name='web'");
    free(x);
}
END_TEST

struct mig_req {
    const char *op, *vm, *node;
    int rc;
    struct vf_error err;
};

static void mig_on_loop(void *opaque)
{
    struct mig_req *q = opaque;
    if (!strcmp(q->op, "begin"))
        q->rc = vf_vms_migration_begin(q->vm, q->node, NULL, &q->err);
    else
        q->rc = vf_vms_migration_end(q->vm, q->node, NULL, &q->err);
}

/* Polls the network's XML until it has (or lacks) needle. */
static void wait_net(const char *node, const char *network, const char *needle, bool has)
{
    for (int waited = 0;; waited += 20) {
        char *x = net_xml(node, network, NULL);
        bool found = strstr(x, needle) != NULL;
        ck_assert_msg(found == has || waited < 5000, "node %s network %s: %s \"%s\" after 5 s:\n%s",
                      node, network, has ? "no" : "still", needle, x);
        free(x);
        if (found == has)
            return;
        sleep_ms(20);
    }
}

/* A live migration: the entry is added on the target when it begins and
 * removed from the source when the VM ends on the target. */
START_TEST(test_network_follows_migration)
{
    wait_field("Node", "node-a", "status.phase", "Ready", 5000);
    wait_field("Node", "node-b", "status.phase", "Ready", 5000);
    vm_create("web", "");
    wait_phase("web", "Running");
    wait_field("VirtualMachine", "web", "status.node", "node-a", 1000);
    wait_net("node-a", "vfnet", WEB_HOST, true);
    char *x = net_xml("node-b", "vfnet", NULL);
    ASSERT_LACKS(x, "name='web'");
    free(x);

    struct mig_req q = {.op = "begin", .vm = "web", .node = "node-b"};
    vf_loop_call(mig_on_loop, &q);
    ck_assert_msg(q.rc == 0, "begin: %s", q.err.message);
    wait_net("node-b", "vfnet", WEB_HOST, true);
    struct move_req m = {.from = "node-a", .to = "node-b", .name = "web"};
    vf_loop_call(move_on_loop, &m);
    q = (struct mig_req){.op = "end", .vm = "web", .node = "node-b"};
    vf_loop_call(mig_on_loop, &q);
    ck_assert_msg(q.rc == 0, "end: %s", q.err.message);
    wait_net("node-a", "vfnet", WEB_HOST, false);
    x = net_xml("node-b", "vfnet", NULL);
    ASSERT_HAS(x, WEB_HOST);
    free(x);
    wait_field("VirtualMachine", "web", "status.node", "node-b", 1000);
}
END_TEST

static Suite *vms_suite(void)
{
    Suite *s = suite_create("vms");
#define ADD_CASE(name, fn, set, tear)                              \
    do {                                                           \
        TCase *tc = tcase_create(name);                            \
        tcase_add_checked_fixture(tc, set, tear);                  \
        tcase_set_timeout(tc, 60);                                 \
        tcase_add_test(tc, fn);                                    \
        suite_add_tcase(s, tc);                                    \
    } while (0)
    ADD_CASE("placed_running", test_placed_running_with_ip, setup, teardown);
    ADD_CASE("ip_refused", test_ip_refused, setup, teardown);
    ADD_CASE("always_off", test_always_off_stays_stopped, setup, teardown);
    ADD_CASE("stop_start_ops", test_stop_and_start_operations, setup, teardown);
    ADD_CASE("restart_op", test_restart_operation, setup, teardown);
    ADD_CASE("ops_refused", test_operations_refused_by_policy, setup, teardown);
    ADD_CASE("always_on", test_always_on_restarted_after_destroy, setup, teardown);
    ADD_CASE("crash_loop", test_repeated_stops_degrade, setup, teardown);
    ADD_CASE("manual", test_manual_not_restarted, setup, teardown);
    ADD_CASE("unschedulable", test_node_selector_without_match_is_pending, setup, teardown);
    ADD_CASE("delete", test_delete_undefines_and_releases, setup, teardown);
    ADD_CASE("released_address", test_waiting_vm_gets_released_address, setup, teardown);
    ADD_CASE("freed_capacity", test_waiting_vm_gets_freed_capacity, setup, teardown);
    ADD_CASE("last_room_once", test_last_room_taken_once, setup, teardown);
    ADD_CASE("deleted_frees_room", test_deleted_vm_frees_its_room, setup, teardown);
    ADD_CASE("controller_restart", test_controller_restart_starts_nothing_twice, setup,
             teardown);
    ADD_CASE("reload_cidrs", test_reload_keeps_used_subnets, setup, teardown);
    ADD_CASE("no_cidrs", test_without_cidrs_no_address, no_cidrs_setup, teardown);
    ADD_CASE("network_entry", test_network_dhcp_host_entry, network_setup, teardown);
    ADD_CASE("network_missing", test_network_missing_fails_start, othernet_setup, teardown);
    ADD_CASE("network_migration", test_network_follows_migration, network_setup, teardown);
    ADD_CASE("network_subnet", test_network_wrong_subnet_fails_start, othernet_setup, teardown);
    ADD_CASE("network_ipv6", test_network_ipv6_entry, network6_setup, teardown);
    ADD_CASE("network_reload", test_network_reload, network_setup, teardown);
#undef ADD_CASE
    return s;
}

int main(void)
{
    if (vf_test_stack_process_init("check_vms", nodes_dir) < 0)
        return EXIT_FAILURE;
    return vf_test_run(vms_suite());
}
