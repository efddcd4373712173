/* The cluster: Node objects from the configuration, connections over the
 * real loop and workers to libvirt's test driver (each test:///PATH/node.xml
 * connection is a private fake node), failures and backoff, reconnects,
 * heartbeats, reconciliation of the node set, and stopping with jobs in
 * flight.  Also the host CPU model extraction from capabilities. */
#include <config.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <time.h>
#include <unistd.h>
#include <libvirt/libvirt.h>

#include "core/cluster.h"
#include "core/config.h"
#include "core/core_kinds.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/objects.h"
#include "core/store.h"
#include "core/workers.h"
#include "tests/unit/testlib.h"
#include "tests/unit/teststack.h"

#define BAD_URI "qemu+unix:///system?socket=/nonexistent/sock"

static char nodes_dir[PATH_MAX];   /* absolute tests/lib/nodes */
static struct vf_test_stack stack;

/* ---- the machinery (teststack.h) ------------------------------------------- */

static void reset_heartbeat(void *opaque)
{
    (void)opaque;
    vf_cluster_set_heartbeat_ms(0);
}

static void setup(void)
{
    stack.before_down = reset_heartbeat;
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

/* ---- calls onto the loop thread ------------------------------------------ */

static void apply_cfg(void *opaque)
{
    vf_cluster_apply(opaque);
}

/* Stops in the same loop turn as the apply, so every connect job is still
 * queued or running when the cluster lets go of it. */
static void apply_cfg_and_stop(void *opaque)
{
    vf_cluster_apply(opaque);
    vf_cluster_stop();
}

static bool stop_after_apply;

/* Applies a configuration whose nodes = ( ... ) list is given as text. */
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
    vf_loop_call(stop_after_apply ? apply_cfg_and_stop : apply_cfg, cfg);
    vf_config_free(cfg);
}

struct get_req {
    const char *name;
    struct json_object *obj;
    int rc;
};

static void get_on_loop(void *opaque)
{
    struct get_req *g = opaque;
    struct vf_error err = {0};
    g->rc = vf_objects_get("Node", g->name, &g->obj, &err);
}

/* The Node object, or NULL when there is none. */
static struct json_object *node_get(const char *name)
{
    struct get_req g = {.name = name};
    vf_loop_call(get_on_loop, &g);
    if (g.rc == -ENOENT)
        return NULL;
    ck_assert_msg(g.rc == 0, "get %s: %d", name, g.rc);
    return g.obj;
}

struct conn_req {
    const char *name;
    void *conn;
};

static void conn_on_loop(void *opaque)
{
    struct conn_req *c = opaque;
    c->conn = vf_cluster_connection(c->name);
}

static void *connection(const char *name)
{
    struct conn_req c = {.name = name};
    vf_loop_call(conn_on_loop, &c);
    return c.conn;
}

struct backoff_req {
    const char *name;
    unsigned failures;
    int delay_ms;
    int rc;
};

static void backoff_on_loop(void *opaque)
{
    struct backoff_req *b = opaque;
    b->rc = vf_cluster_node_backoff(b->name, &b->failures, &b->delay_ms);
}

static void heartbeat_400ms(void *opaque)
{
    (void)opaque;
    vf_cluster_set_heartbeat_ms(400);
}

static void revision_on_loop(void *opaque)
{
    *(int64_t *)opaque = vf_store_revision(stack.store);
}

static int64_t revision(void)
{
    int64_t rv = 0;
    vf_loop_call(revision_on_loop, &rv);
    return rv;
}

static void stop_on_loop(void *opaque)
{
    (void)opaque;
    vf_cluster_stop();
}

/* The string form of the value at path ("8" for 8), or NULL. */
static const char *field(struct json_object *obj, const char *path)
{
    struct json_object *v = obj ? vf_test_json_at(obj, path) : NULL;
    return v ? json_object_get_string(v) : NULL;
}

/* Waits until the node's value at path reads `want` (NULL: the object is
 * gone); returns the object (NULL when gone).  Fails after timeout_ms. */
static struct json_object *wait_field(const char *name, const char *path, const char *want,
                                      int timeout_ms)
{
    const char *last = NULL;
    char seen[256] = "";
    for (int waited = 0;; waited += 20) {
        struct json_object *obj = node_get(name);
        if (!want && !obj)
            return NULL;
        if (want && obj && (last = field(obj, path)) && !strcmp(last, want))
            return obj;
        snprintf(seen, sizeof seen, "%s", obj ? (field(obj, path) ? field(obj, path) : "(absent)")
                                              : "(no object)");
        json_object_put(obj);
        ck_assert_msg(waited < timeout_ms, "node %s: %s is \"%s\" after %d ms, want \"%s\"", name,
                      path, seen, timeout_ms, want ? want : "(no object)");
        sleep_ms(20);
    }
}

static void node_uri(char *buf, size_t len, const char *file)
{
    snprintf(buf, len, "test://%s/%s", nodes_dir, file);
}

/* ---- connecting ------------------------------------------------------------ */

START_TEST(test_ready_with_capacity_and_labels)
{
    char a[PATH_MAX + 16], b[PATH_MAX + 16];
    node_uri(a, sizeof a, "node-a.xml");
    node_uri(b, sizeof b, "node-b.xml");
    apply("{ name = \"a\"; uri = \"%s\"; labels = { zone = \"z1\"; rack = \"r1\"; }; },"
          "{ name = \"b\"; uri = \"%s\"; }", a, b);

    struct json_object *na = wait_field("a", "status.phase", "Ready", 5000);
    ck_assert_str_eq(field(na, "status.capacity.cpu"), "8");
    ck_assert_str_eq(field(na, "status.capacity.memory"), "16Gi");
    ck_assert_str_eq(field(na, "status.allocatable.cpu"), "8");
    ck_assert_str_eq(field(na, "status.allocatable.memory"), "16Gi");
    ck_assert_str_eq(field(na, "metadata.labels.zone"), "z1");
    ck_assert_str_eq(field(na, "metadata.labels.rack"), "r1");
    ck_assert_str_eq(field(na, "status.uri"), a);
    ck_assert_str_eq(field(na, "status.schedulable"), "true");
    ck_assert_str_eq(field(na, "status.nodeInfo.hypervisor"), "TEST");
    ck_assert_str_eq(field(na, "status.nodeInfo.architecture"), "x86_64");
    ck_assert_ptr_nonnull(field(na, "status.nodeInfo.hostname"));
    unsigned long v = 0;
    char version[32];
    ck_assert_int_eq(virGetVersion(&v, NULL, NULL), 0);
    snprintf(version, sizeof version, "%lu.%lu.%lu", v / 1000000, v / 1000 % 1000, v % 1000);
    ck_assert_str_eq(field(na, "status.nodeInfo.libvirtVersion"), version);
    ck_assert_str_eq(field(na, "status.conditions.0.type"), "Ready");
    ck_assert_str_eq(field(na, "status.conditions.0.status"), "True");
    ck_assert_str_eq(field(na, "status.conditions.0.reason"), "Connected");
    ck_assert_ptr_nonnull(strstr(field(na, "status.conditions.0.message"), "\"a\""));
    ck_assert_ptr_nonnull(field(na, "status.conditions.0.lastTransitionTime"));
    ck_assert_ptr_nonnull(field(na, "status.conditions.0.lastHeartbeatTime"));
    ck_assert_ptr_nonnull(field(na, "status.lastHeartbeatTime"));
    json_object_put(na);

    struct json_object *nb = wait_field("b", "status.phase", "Ready", 5000);
    ck_assert_str_eq(field(nb, "status.capacity.cpu"), "4");
    ck_assert_str_eq(field(nb, "status.capacity.memory"), "8Gi");
    ck_assert_int_eq(json_object_object_length(vf_test_json_at(nb, "metadata.labels")), 0);
    json_object_put(nb);

    ck_assert_ptr_nonnull(connection("a"));
    ck_assert_ptr_nonnull(connection("b"));
    ck_assert_ptr_ne(connection("a"), connection("b"));
    ck_assert_ptr_null(connection("nope"));
}
END_TEST

START_TEST(test_unreachable_is_not_ready)
{
    char a[PATH_MAX + 16];
    node_uri(a, sizeof a, "node-a.xml");
    apply("{ name = \"a\"; uri = \"%s\"; }, { name = \"c\"; uri = \"" BAD_URI "\"; }", a);

    struct json_object *nc = wait_field("c", "status.conditions.0.reason", "ConnectFailed", 5000);
    ck_assert_str_eq(field(nc, "status.phase"), "NotReady");
    ck_assert_str_eq(field(nc, "status.schedulable"), "false");
    ck_assert_str_eq(field(nc, "status.conditions.0.status"), "False");
    const char *msg = field(nc, "status.conditions.0.message");
    ck_assert_ptr_nonnull(strstr(msg, "node \"c\""));
    /* libvirt's own words name what failed. */
    ck_assert_msg(strstr(msg, "/nonexistent/sock") != NULL, "message: %s", msg);
    ck_assert_ptr_null(vf_test_json_at(nc, "status.capacity"));
    json_object_put(nc);
    ck_assert_ptr_null(connection("c"));

    /* One bad node does not hold the others back. */
    json_object_put(wait_field("a", "status.phase", "Ready", 5000));
    ck_assert_ptr_nonnull(connection("a"));
}
END_TEST

/* ---- reconciling the node set ---------------------------------------------- */

START_TEST(test_removed_node_is_deleted)
{
    char a[PATH_MAX + 16], b[PATH_MAX + 16];
    node_uri(a, sizeof a, "node-a.xml");
    node_uri(b, sizeof b, "node-b.xml");
    apply("{ name = \"a\"; uri = \"%s\"; }, { name = \"b\"; uri = \"%s\"; }", a, b);
    struct json_object *na = wait_field("a", "status.phase", "Ready", 5000);
    json_object_put(wait_field("b", "status.phase", "Ready", 5000));
    void *conn_a = connection("a");

    apply("{ name = \"a\"; uri = \"%s\"; }", a);
    ck_assert_ptr_null(node_get("b"));
    ck_assert_ptr_null(connection("b"));
    /* The node that stays is not reconnected. */
    ck_assert_ptr_eq(connection("a"), conn_a);
    struct json_object *again = node_get("a");
    ck_assert_str_eq(field(again, "status.conditions.0.lastTransitionTime"),
                     field(na, "status.conditions.0.lastTransitionTime"));
    json_object_put(again);
    json_object_put(na);
}
END_TEST

START_TEST(test_labels_follow_config)
{
    char a[PATH_MAX + 16];
    node_uri(a, sizeof a, "node-a.xml");
    apply("{ name = \"a\"; uri = \"%s\"; labels = { zone = \"z1\"; rack = \"r1\"; }; }", a);
    json_object_put(wait_field("a", "status.phase", "Ready", 5000));
    void *conn_a = connection("a");

    apply("{ name = \"a\"; uri = \"%s\"; labels = [ \"topology.kubernetes.io/zone=z2\" ]; }", a);
    struct json_object *na = node_get("a");
    struct json_object *labels = vf_test_json_at(na, "metadata.labels");
    ck_assert_int_eq(json_object_object_length(labels), 1);
    ck_assert_str_eq(json_object_get_string(json_object_object_get(labels,
                                                                   "topology.kubernetes.io/zone")),
                     "z2");
    json_object_put(na);
    ck_assert_ptr_eq(connection("a"), conn_a);
}
END_TEST

START_TEST(test_cpu_allocation_ratio)
{
    char a[PATH_MAX + 16];
    node_uri(a, sizeof a, "node-a.xml");
    apply("{ name = \"a\"; uri = \"%s\"; cpuAllocationRatio = 2.5; }", a);
    struct json_object *na = wait_field("a", "status.phase", "Ready", 5000);
    ck_assert_str_eq(field(na, "status.capacity.cpu"), "8");
    ck_assert_str_eq(field(na, "status.allocatable.cpu"), "20");
    json_object_put(na);
    /* A reload changes it live, without reconnecting. */
    void *conn_a = connection("a");
    apply("{ name = \"a\"; uri = \"%s\"; }", a);
    json_object_put(wait_field("a", "status.allocatable.cpu", "8", 2000));
    ck_assert_ptr_eq(connection("a"), conn_a);
}
END_TEST

START_TEST(test_changed_uri_reconnects)
{
    char a[PATH_MAX + 16], b[PATH_MAX + 16];
    node_uri(a, sizeof a, "node-a.xml");
    node_uri(b, sizeof b, "node-b.xml");
    apply("{ name = \"a\"; uri = \"%s\"; }", a);
    json_object_put(wait_field("a", "status.capacity.cpu", "8", 5000));

    apply("{ name = \"a\"; uri = \"%s\"; }", b);
    struct json_object *na = wait_field("a", "status.capacity.cpu", "4", 5000);
    ck_assert_str_eq(field(na, "status.phase"), "Ready");
    ck_assert_str_eq(field(na, "status.uri"), b);
    json_object_put(na);
    ck_assert_ptr_nonnull(connection("a"));
}
END_TEST

static void create_ghost(void *opaque)
{
    struct vf_error err = {0};
    struct json_object *obj = vf_test_json("{\"kind\":\"Node\",\"metadata\":{\"name\":\"ghost\"},"
                                           "\"spec\":{}}");
    *(int *)opaque = vf_objects_create("Node", obj, NULL, &err);
    json_object_put(obj);
}

START_TEST(test_unconfigured_objects_deleted)
{
    char a[PATH_MAX + 16];
    int rc = -1;
    vf_loop_call(create_ghost, &rc);
    ck_assert_int_eq(rc, 0);
    node_uri(a, sizeof a, "node-a.xml");
    apply("{ name = \"a\"; uri = \"%s\"; }", a);
    ck_assert_ptr_null(node_get("ghost"));
    json_object_put(wait_field("a", "status.phase", "Ready", 5000));
}
END_TEST

static void cordon_a(void *opaque)
{
    struct vf_error err = {0};
    struct json_object *patch = vf_test_json("{\"spec\":{\"unschedulable\":true}}");
    *(int *)opaque = vf_objects_patch("Node", "a", patch, NULL, &err);
    json_object_put(patch);
}

START_TEST(test_cordon_clears_schedulable)
{
    char a[PATH_MAX + 16];
    int rc = -1;
    node_uri(a, sizeof a, "node-a.xml");
    apply("{ name = \"a\"; uri = \"%s\"; }", a);
    json_object_put(wait_field("a", "status.schedulable", "true", 5000));
    vf_loop_call(cordon_a, &rc);
    ck_assert_int_eq(rc, 0);
    struct json_object *na = wait_field("a", "status.schedulable", "false", 2000);
    ck_assert_str_eq(field(na, "status.phase"), "Ready");
    json_object_put(na);
    /* A cordoned node is still connected: its VMs are managed. */
    ck_assert_ptr_nonnull(connection("a"));
}
END_TEST

static void reserve_a(void *opaque)
{
    vf_cluster_node_reserved("a", opaque);
}

START_TEST(test_reserved_is_shown)
{
    char a[PATH_MAX + 16];
    node_uri(a, sizeof a, "node-a.xml");
    apply("{ name = \"a\"; uri = \"%s\"; }", a);
    struct json_object *na = wait_field("a", "status.phase", "Ready", 5000);
    ck_assert_str_eq(field(na, "status.reserved.cpu"), "0");
    ck_assert_str_eq(field(na, "status.reserved.memory"), "0");
    ck_assert_str_eq(field(na, "status.reserved.virtualMachines"), "0");
    json_object_put(na);
    struct vf_cluster_reserved r = {.cpu_millis = 1500, .memory_bytes = 768LL << 20, .vms = 2};
    vf_loop_call(reserve_a, &r);
    na = wait_field("a", "status.reserved.cpu", "1500m", 2000);
    ck_assert_str_eq(field(na, "status.reserved.memory"), "768Mi");
    ck_assert_str_eq(field(na, "status.reserved.virtualMachines"), "2");
    json_object_put(na);
    r.cpu_millis = 2000;
    vf_loop_call(reserve_a, &r);
    json_object_put(wait_field("a", "status.reserved.cpu", "2", 2000));
}
END_TEST

/* ---- backoff and reconnect ------------------------------------------------- */

START_TEST(test_backoff_grows)
{
    apply("{ name = \"c\"; uri = \"" BAD_URI "\"; }");
    unsigned last = 0;
    for (int waited = 0; last < 3; waited += 20) {
        struct backoff_req b = {.name = "c"};
        vf_loop_call(backoff_on_loop, &b);
        ck_assert_int_eq(b.rc, 0);
        ck_assert_uint_ge(b.failures, last);
        if (b.failures > 0 && b.delay_ms > 0) {
            /* 1 s, 2 s, 4 s ... */
            int want = 1000 << (b.failures - 1);
            ck_assert_int_eq(b.delay_ms, want > 60000 ? 60000 : want);
        }
        last = b.failures;
        ck_assert_msg(waited < 10000, "only %u attempts in 10 s", last);
        sleep_ms(20);
    }
    struct backoff_req gone = {.name = "nope"};
    vf_loop_call(backoff_on_loop, &gone);
    ck_assert_int_eq(gone.rc, -ENOENT);
}
END_TEST

static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "r"), *out = fopen(to, "w");
    char buf[4096];
    size_t n;
    ck_assert_ptr_nonnull(in);
    ck_assert_ptr_nonnull(out);
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        ck_assert_uint_eq(fwrite(buf, 1, n, out), n);
    fclose(in);
    ck_assert_int_eq(fclose(out), 0);
}

/* A node that comes up after a failed attempt is picked up by the retry, and
 * the backoff starts over. */
START_TEST(test_reconnect_after_failure)
{
    char late[PATH_MAX], src[PATH_MAX + 16];
    snprintf(late, sizeof late, "%s/late.xml", stack.dir);
    apply("{ name = \"l\"; uri = \"test://%s\"; }", late);
    struct json_object *nl = wait_field("l", "status.conditions.0.reason", "ConnectFailed", 5000);
    ck_assert_ptr_nonnull(strstr(field(nl, "status.conditions.0.message"), "late.xml"));
    json_object_put(nl);
    ck_assert_ptr_null(connection("l"));

    snprintf(src, sizeof src, "%s/node-b.xml", nodes_dir);
    copy_file(src, late);
    nl = wait_field("l", "status.phase", "Ready", 8000);
    ck_assert_str_eq(field(nl, "status.conditions.0.reason"), "Connected");
    ck_assert_str_eq(field(nl, "status.capacity.cpu"), "4");
    json_object_put(nl);
    ck_assert_ptr_nonnull(connection("l"));
    struct backoff_req b = {.name = "l"};
    vf_loop_call(backoff_on_loop, &b);
    ck_assert_uint_eq(b.failures, 0);
    ck_assert_int_eq(b.delay_ms, 0);
}
END_TEST

/* ---- heartbeats ------------------------------------------------------------- */

START_TEST(test_heartbeat_refreshes_cheaply)
{
    char a[PATH_MAX + 16];
    node_uri(a, sizeof a, "node-a.xml");
    vf_loop_call(heartbeat_400ms, NULL);
    apply("{ name = \"a\"; uri = \"%s\"; }", a);
    struct json_object *na = wait_field("a", "status.phase", "Ready", 5000);
    char beat[64], transition[64];
    snprintf(beat, sizeof beat, "%s", field(na, "status.lastHeartbeatTime"));
    snprintf(transition, sizeof transition, "%s",
             field(na, "status.conditions.0.lastTransitionTime"));
    json_object_put(na);

    /* Timestamps have one-second resolution. */
    for (int waited = 0;; waited += 50) {
        na = node_get("a");
        bool moved = strcmp(field(na, "status.lastHeartbeatTime"), beat) != 0;
        if (moved) {
            ck_assert_str_eq(field(na, "status.conditions.0.lastTransitionTime"), transition);
            ck_assert_str_eq(field(na, "status.phase"), "Ready");
            json_object_put(na);
            break;
        }
        json_object_put(na);
        ck_assert_msg(waited < 5000, "lastHeartbeatTime stays \"%s\"", beat);
        sleep_ms(50);
    }

    /* Timestamps have one-second resolution and the store skips writes that
     * change nothing, so unthrottled 400 ms heartbeats would write at every
     * second boundary: at least 3 times in 3.2 s.  Throttled to one
     * heartbeat-only write per 6 heartbeats (2.4 s), at most 2. */
    int64_t before = revision();
    sleep_ms(3200);
    int64_t writes = revision() - before;
    ck_assert_msg(writes <= 2, "%lld status writes in 3.2 s of 400 ms heartbeats",
                  (long long)writes);
}
END_TEST

struct closed_req {
    const char *name;
    bool heartbeat;
    void *hb_conn;
    int rc;
};

static void hb_conn_on_loop(void *opaque)
{
    struct closed_req *c = opaque;
    c->hb_conn = vf_cluster_heartbeat_connection(c->name);
}

static void *heartbeat_connection(const char *name)
{
    struct closed_req c = {.name = name};
    vf_loop_call(hb_conn_on_loop, &c);
    return c.hb_conn;
}

static void closed_on_loop(void *opaque)
{
    struct closed_req *c = opaque;
    c->rc = vf_cluster_connection_closed(c->name, c->heartbeat, VIR_CONNECT_CLOSE_REASON_KEEPALIVE);
}

/* The heartbeat probes on a connection of its own; libvirt closing either
 * one takes the node down (ConnectionLost, naming the one), and the
 * reconnect brings both back. */
START_TEST(test_two_connections_either_closing)
{
    char a[PATH_MAX + 16];
    node_uri(a, sizeof a, "node-a.xml");
    vf_loop_call(heartbeat_400ms, NULL);
    apply("{ name = \"a\"; uri = \"%s\"; }", a);
    json_object_put(wait_field("a", "status.phase", "Ready", 5000));
    ck_assert_ptr_nonnull(connection("a"));
    ck_assert_ptr_nonnull(heartbeat_connection("a"));
    ck_assert_ptr_ne(connection("a"), heartbeat_connection("a"));

    static const struct {
        bool heartbeat;
        const char *says;
    } cases[] = {{true, "\"a\": heartbeat connection to"}, {false, "\"a\": connection to"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct closed_req c = {.name = "a", .heartbeat = cases[i].heartbeat};
        vf_loop_call(closed_on_loop, &c);
        ck_assert_int_eq(c.rc, 0);
        /* Down at once: the loop handles the close before our next call. */
        ck_assert_ptr_null(connection("a"));
        ck_assert_ptr_null(heartbeat_connection("a"));
        struct json_object *na = wait_field("a", "status.conditions.0.reason", "ConnectionLost",
                                            2000);
        ck_assert_str_eq(field(na, "status.phase"), "NotReady");
        const char *msg = field(na, "status.conditions.0.message");
        ck_assert_msg(strstr(msg, cases[i].says) && strstr(msg, "keepalive timeout"),
                      "message: %s", msg);
        json_object_put(na);

        /* The retry (1 s backoff) reconnects both, and heartbeats go on. */
        na = wait_field("a", "status.phase", "Ready", 8000);
        char beat[64];
        snprintf(beat, sizeof beat, "%s", field(na, "status.lastHeartbeatTime"));
        json_object_put(na);
        ck_assert_ptr_nonnull(connection("a"));
        ck_assert_ptr_nonnull(heartbeat_connection("a"));
        ck_assert_ptr_ne(connection("a"), heartbeat_connection("a"));
        for (int waited = 0;; waited += 50) {
            na = node_get("a");
            bool moved = strcmp(field(na, "status.lastHeartbeatTime"), beat) != 0;
            ck_assert_str_eq(field(na, "status.phase"), "Ready");
            json_object_put(na);
            if (moved)
                break;
            ck_assert_msg(waited < 20000, "no heartbeat after the reconnect");
            sleep_ms(50);
        }
    }
    struct closed_req gone = {.name = "nope"};
    vf_loop_call(closed_on_loop, &gone);
    ck_assert_int_eq(gone.rc, -ENOENT);
}
END_TEST

/* ---- stopping ----------------------------------------------------------------- */

START_TEST(test_stop_with_jobs_in_flight)
{
    char a[PATH_MAX + 16], b[PATH_MAX + 16];
    node_uri(a, sizeof a, "node-a.xml");
    node_uri(b, sizeof b, "node-b.xml");
    stop_after_apply = true;
    apply("{ name = \"a\"; uri = \"%s\"; }, { name = \"b\"; uri = \"%s\"; },"
          "{ name = \"c\"; uri = \"" BAD_URI "\"; }", a, b);
    stop_after_apply = false;
    /* The connect jobs' results arrive after the stop and must be dropped
     * (valgrind sees whether anything freed is touched or leaked). */
    ck_assert_ptr_null(connection("a"));
    sleep_ms(300);
    ck_assert_ptr_null(connection("a"));
    struct json_object *na = node_get("a");
    ck_assert_str_eq(field(na, "status.conditions.0.reason"), "Connecting");
    json_object_put(na);
    vf_loop_call(stop_on_loop, NULL);   /* stopping twice is harmless */

    /* The cluster starts again from the same store. */
    apply("{ name = \"a\"; uri = \"%s\"; }", a);
    json_object_put(wait_field("a", "status.phase", "Ready", 5000));
    ck_assert_ptr_null(node_get("b"));
    ck_assert_ptr_nonnull(connection("a"));
}
END_TEST

/* ---- capabilities ---------------------------------------------------------------- */

START_TEST(test_caps_cpu_model)
{
    char buf[64];
    static const char qemu[] =
        "<capabilities>\n  <host>\n    <uuid>3b7e9a8e-0000-0000-0000-000000000001</uuid>\n"
        "    <cpu>\n      <arch>x86_64</arch>\n      <model>Skylake-Client-IBRS</model>\n"
        "      <vendor>Intel</vendor>\n      <topology sockets='1' cores='2' threads='1'/>\n"
        "      <feature name='vmx'/>\n    </cpu>\n"
        "    <topology><cells num='1'><cell id='0'><cpus num='2'>"
        "<cpu id='0' socket_id='0' core_id='0' siblings='0'/></cpus></cell></cells></topology>\n"
        "    <secmodel><model>none</model></secmodel>\n  </host>\n"
        "  <guest><os_type>hvm</os_type></guest>\n</capabilities>\n";
    ck_assert_int_eq(vf_cluster_caps_cpu_model(qemu, buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "Skylake-Client-IBRS");

    /* libvirt's test driver: no host CPU model, but a <model> elsewhere. */
    static const char test_driver[] =
        "<capabilities><host><cpu><arch>i686</arch><features><pae/></features>"
        "<pages unit='KiB' size='4'/></cpu><secmodel><model>testSecurity</model></secmodel>"
        "</host></capabilities>";
    ck_assert_int_eq(vf_cluster_caps_cpu_model(test_driver, buf, sizeof buf), -ENOENT);
    ck_assert_str_eq(buf, "");

    /* Only topology's empty <cpu/> elements: not the host CPU. */
    ck_assert_int_eq(vf_cluster_caps_cpu_model("<host><cpus num='1'><cpu id='0'/></cpus>"
                                               "<model>x</model></host>", buf, sizeof buf),
                     -ENOENT);
    ck_assert_int_eq(vf_cluster_caps_cpu_model("", buf, sizeof buf), -ENOENT);
    ck_assert_int_eq(vf_cluster_caps_cpu_model("<host><cpu><model>kvm64</model>", buf, sizeof buf),
                     -EINVAL);
    ck_assert_int_eq(vf_cluster_caps_cpu_model("<host><cpu><model>kvm64", buf, sizeof buf),
                     -EINVAL);
    ck_assert_int_eq(vf_cluster_caps_cpu_model("<host><cpu><model>a&amp;b</model></cpu></host>",
                                               buf, sizeof buf),
                     -EINVAL);
    ck_assert_int_eq(vf_cluster_caps_cpu_model("<host><cpu><model> kvm64 </model></cpu></host>",
                                               buf, sizeof buf),
                     0);
    ck_assert_str_eq(buf, "kvm64");
    ck_assert_int_eq(vf_cluster_caps_cpu_model("<host><cpu><model>Skylake-Client</model></cpu>"
                                               "</host>", buf, 8),
                     -ERANGE);
    ck_assert_int_eq(vf_cluster_caps_cpu_model("<host><cpu><model/></cpu></host>", buf,
                                               sizeof buf),
                     -ENOENT);
    ck_assert_int_eq(vf_cluster_caps_cpu_model(NULL, buf, sizeof buf), -EINVAL);

    /* Odd but valid XML: a declaration, comments (one hiding a fake model,
     * one inside the name), attributes in double quotes, CDATA, and a model
     * in another namespace that is not libvirt's. */
    ck_assert_int_eq(vf_cluster_caps_cpu_model(
                         "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- <model>fake</model> -->"
                         "<capabilities xmlns:o=\"urn:other\"><host><uuid>u</uuid>"
                         "<cpu mode=\"host-model\"><o:model>Other</o:model>"
                         "<model fallback=\"allow\">Sky<!-- x -->lake</model></cpu></host>"
                         "</capabilities>", buf, sizeof buf),
                     0);
    ck_assert_str_eq(buf, "Skylake");
    ck_assert_int_eq(vf_cluster_caps_cpu_model("<capabilities><host><cpu><model><![CDATA[kvm64]]>"
                                               "</model></cpu></host></capabilities>",
                                               buf, sizeof buf),
                     0);
    ck_assert_str_eq(buf, "kvm64");
    /* Only the first <host>'s direct <cpu>: a deeper one is not the host CPU. */
    ck_assert_int_eq(vf_cluster_caps_cpu_model("<capabilities><host><x><cpu><model>kvm64</model>"
                                               "</cpu></x></host></capabilities>", buf, sizeof buf),
                     -ENOENT);
    /* Markup in the name, a character reference to a byte no model has, and a
     * DOCTYPE (libvirt writes none; its entities are never expanded). */
    ck_assert_int_eq(vf_cluster_caps_cpu_model("<host><cpu><model>kvm<b/>64</model></cpu></host>",
                                               buf, sizeof buf),
                     -EINVAL);
    ck_assert_int_eq(vf_cluster_caps_cpu_model("<host><cpu><model>kvm&#x3c;64</model></cpu></host>",
                                               buf, sizeof buf),
                     -EINVAL);
    ck_assert_int_eq(vf_cluster_caps_cpu_model("<!DOCTYPE host [<!ENTITY m \"kvm64\">]>"
                                               "<host><cpu><model>&m;</model></cpu></host>",
                                               buf, sizeof buf),
                     -EINVAL);
    ck_assert_str_eq(buf, "");
}
END_TEST

static Suite *cluster_suite(void)
{
    Suite *s = suite_create("cluster");
#define ADD_CASE(name, fn, fixture)                                \
    do {                                                           \
        TCase *tc = tcase_create(name);                            \
        if (fixture)                                               \
            tcase_add_checked_fixture(tc, setup, teardown);        \
        tcase_set_timeout(tc, 120);                                \
        tcase_add_test(tc, fn);                                    \
        suite_add_tcase(s, tc);                                    \
    } while (0)
    ADD_CASE("ready", test_ready_with_capacity_and_labels, 1);
    ADD_CASE("unreachable", test_unreachable_is_not_ready, 1);
    ADD_CASE("removed_node", test_removed_node_is_deleted, 1);
    ADD_CASE("labels", test_labels_follow_config, 1);
    ADD_CASE("changed_uri", test_changed_uri_reconnects, 1);
    ADD_CASE("cpu_allocation_ratio", test_cpu_allocation_ratio, 1);
    ADD_CASE("unconfigured_objects", test_unconfigured_objects_deleted, 1);
    ADD_CASE("cordon", test_cordon_clears_schedulable, 1);
    ADD_CASE("reserved", test_reserved_is_shown, 1);
    ADD_CASE("backoff", test_backoff_grows, 1);
    ADD_CASE("reconnect", test_reconnect_after_failure, 1);
    ADD_CASE("heartbeat", test_heartbeat_refreshes_cheaply, 1);
    ADD_CASE("two_connections", test_two_connections_either_closing, 1);
    ADD_CASE("stop_in_flight", test_stop_with_jobs_in_flight, 1);
    ADD_CASE("caps_cpu_model", test_caps_cpu_model, 0);
#undef ADD_CASE
    return s;
}

int main(void)
{
    if (vf_test_stack_process_init("check_cluster", nodes_dir) < 0)
        return EXIT_FAILURE;
    return vf_test_run(cluster_suite());
}
