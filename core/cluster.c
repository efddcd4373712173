/* The cluster controller: owns the libvirt connection of every configured node
 * and the Node objects that describe them.  It watches Node objects only for
 * spec.unschedulable (a cordon), which it reflects in status.schedulable.
 *
 * Everything that can block (virConnectOpen on a remote URI, every call on a
 * connection) runs on a worker; the node table, the store and all decisions
 * stay on the loop thread.  Worker jobs are found again through an id rather
 * than a pointer, so a result that arrives after its node was removed, its URI
 * changed or the cluster stopped is recognised as stale and dropped without
 * touching freed memory: the node's `gen` names its current connection
 * attempt, and vf_cluster_stop() takes every job out of the table (a job still
 * running is then freed by its worker).
 *
 * A node goes Connecting -> Ready, or -> NotReady (ConnectFailed) and retries
 * with exponential backoff.  A Ready node is probed every heartbeat; a failed
 * probe (Unreachable) or libvirt's close callback (ConnectionLost) drops the
 * connection and enters the same backoff.
 *
 * The heartbeat probes on a connection of its own, opened by the connect job
 * next to the shared one (same URI, same keepalive, its own close callback)
 * and dropped with it: libvirt 9.0's RPC client crashes when two threads wait
 * on one connection whose node hangs past the keepalive (see
 * <virtfleet/node_connection.h>), and the heartbeat, every few seconds on a
 * worker, would be the second waiter next to any long call a module makes on
 * the shared one.  Either connection closing takes the node down; the
 * reconnect opens both again.
 *
 * Controllers subscribe with vf_cluster_listen(): they hear when a node's
 * connection comes up or goes, and every domain lifecycle event, which is
 * registered on each connection (on the worker that opens it) and dropped
 * with the connection. */
#include <config.h>
#include "cluster.h"
#include "json_util.h"
#include "log.h"
#include "loop.h"
#include "objects.h"
#include "quantity.h"
#include "store.h"
#include "workers.h"
#include "xml_query.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <virtfleet/node_connection.h>

#define NODE_KIND "Node"
#define MESSAGE_MAX 512
#define TIME_MAX 32

enum {
    HEARTBEAT_DEFAULT_MS = 10000,
    /* A status whose only news is its heartbeat time is written at most once
     * per this many heartbeats (60 s by default): heartbeats must not turn
     * into a stream of store writes and watch events. */
    HEARTBEAT_WRITE_EVERY = 6,
};
static const int backoff_first_ms = 1000;
static const int backoff_max_ms = 60000;

/* What a node says about itself, read on a worker. */
struct node_facts {
    unsigned cpus;
    unsigned long long memory_kib;
    char arch[32];
    char hostname[256];
    char cpu_model[64];
    char hypervisor[32];
    char libvirt_version[32];
};

enum node_state {
    NODE_CONNECTING, /* a connect job is in flight */
    NODE_READY,      /* conn is open and answered its last probe */
    NODE_WAITING,    /* no connection; retry_timer will try again */
};

struct node {
    char *name, *uri;
    struct json_object *labels;  /* the configured ones (own copy) */
    double cpu_allocation_ratio; /* configured CPU overcommit */
    enum node_state state;
    virConnectPtr conn;          /* NODE_READY only: shared with controllers and modules */
    virConnectPtr hb_conn;       /* NODE_READY only: the heartbeat's own */
    int event_id;                /* its lifecycle callback, or -1 */
    uint64_t gen;                /* the current connection (attempt); older results are stale */
    bool heartbeat_busy;
    int retry_timer;
    int retry_delay_ms;
    unsigned failures;           /* consecutive connect failures and losses */
    bool unschedulable;          /* spec.unschedulable, from the watch */

    /* What the status says. */
    bool have_facts;
    struct node_facts facts;
    bool ready;
    char reason[32];
    char message[MESSAGE_MAX];
    char transition_time[TIME_MAX];
    char probe_time[TIME_MAX];   /* the condition's lastHeartbeatTime: last probe */
    char contact_time[TIME_MAX]; /* status.lastHeartbeatTime: last answer from the node */
    struct vf_cluster_reserved reserved; /* by VMs, as the VM controller last said */
    struct json_object *written; /* last status written, without heartbeat times */
    int64_t written_ms;          /* when (monotonic) */

    bool seen;                   /* vf_cluster_apply: still configured */
    struct node *next;
};

enum job_type { JOB_CONNECT, JOB_HEARTBEAT, JOB_DROP };

struct job {
    uint64_t id;
    enum job_type type;
    char *node;
    uint64_t gen;
    char *uri;                   /* JOB_CONNECT */
    virConnectPtr conn;          /* CONNECT: the new connection; HEARTBEAT: a reference */
    virConnectPtr hb_conn;       /* CONNECT: the new heartbeat connection; HEARTBEAT: a
                                  * reference to the node's, the one it probes on */
    int event_id;                /* CONNECT, DROP: its lifecycle callback, or -1 */
    virConnectCloseFunc closed;  /* DROP: the close callback registered on conn */
    int rc;
    char error[MESSAGE_MAX];
    struct node_facts facts;
};

static void job_release(void *opaque);
/* Connect and heartbeat jobs; vf_cluster_stop() drops them all. */
static struct vf_job_group cluster_jobs = {.name = "cluster", .release = job_release};

static struct node *nodes;
static bool started;
static int heartbeat_ms = HEARTBEAT_DEFAULT_MS;
static int heartbeat_timer;
static uint64_t gen_counter;
static struct vf_store *watch_store;
static struct vf_store_watch *node_watch;

/* Slots rather than a list: a listener may unlisten (or another listen) from
 * inside a callback while the slots are being walked. */
enum { LISTENERS_MAX = 16 };
static const struct vf_cluster_listener *listeners[LISTENERS_MAX];

/* ---- small helpers ------------------------------------------------------ */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void time_now(char buf[TIME_MAX])
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, TIME_MAX, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void copy_str(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src ? src : "");
}

/* The delay after the n-th consecutive failure: 1 s, 2 s, 4 s ... 60 s. */
static int backoff_ms(unsigned failures)
{
    int d = backoff_first_ms;
    for (unsigned i = 1; i < failures && d < backoff_max_ms; i++)
        d *= 2;
    return d < backoff_max_ms ? d : backoff_max_ms;
}

static struct node *node_find(const char *name)
{
    for (struct node *n = nodes; n; n = n->next)
        if (name && !strcmp(n->name, name))
            return n;
    return NULL;
}

/* Labels compare with NULL meaning none. */
static bool labels_equal(const struct json_object *a, const struct json_object *b)
{
    struct json_object *empty = json_object_new_object();
    bool eq = json_object_equal((struct json_object *)(a ? a : empty),
                                (struct json_object *)(b ? b : empty));
    json_object_put(empty);
    return eq;
}

/* A copy of labels (NULL meaning none: an empty object), or NULL when it cannot be made. */
static struct json_object *labels_copy(const struct json_object *labels)
{
    return labels ? vf_json_copy(labels) : json_object_new_object();
}

/* ---- capabilities: the host CPU model ------------------------------------ */

/* The host's <cpu> is the first child <cpu> of <host>; <topology>'s
 * <cpu id=.../> entries sit deeper and are never taken for it, nor is a
 * <model> elsewhere (<secmodel>'s). */
#define CAPS_MODEL "(//host)[1]/cpu[1]/model[1]"

int vf_cluster_caps_cpu_model(const char *caps, char *buf, size_t len)
{
    char text[256];   /* longer than any model name */
    struct vf_xml x;
    int rc;

    if (!buf || !len)
        return -EINVAL;
    buf[0] = '\0';
    if (!caps)
        return -EINVAL;
    if ((rc = vf_xml_parse(&x, caps)) < 0)
        return rc;
    /* Markup inside the model means this is not what we think. */
    if (vf_xml_count(&x, NULL, CAPS_MODEL "/*") != 0)
        rc = -EINVAL;
    else
        rc = vf_xml_string(&x, NULL, CAPS_MODEL, text, sizeof text);
    vf_xml_free(&x);
    if (rc < 0)
        return rc;
    const char *model = text, *model_end = text + strlen(text);
    while (model < model_end && strchr(" \t\r\n", *model))
        model++;
    while (model_end > model && strchr(" \t\r\n", model_end[-1]))
        model_end--;
    if (model == model_end)
        return -ENOENT;
    for (const char *c = model; c < model_end; c++) {
        /* Model names are like "Skylake-Client-IBRS" or "kvm64"; anything else
         * (an entity's character, control bytes) means this is not what we
         * think. */
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              strchr("-_.+ ", *c)))
            return -EINVAL;
    }
    if ((size_t)(model_end - model) >= len)
        return -ERANGE;
    memcpy(buf, model, (size_t)(model_end - model));
    buf[model_end - model] = '\0';
    return 0;
}

/* ---- worker side: jobs ---------------------------------------------------- */

static void conn_closed(virConnectPtr conn, int reason, void *opaque);
static void hb_conn_closed(virConnectPtr conn, int reason, void *opaque);
static int domain_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail,
                            void *opaque);

/* Lets go of a connection with its callbacks: a round trip for a live one
 * (see connection_retire()). */
static void connection_dispose(virConnectPtr conn, int event_id, virConnectCloseFunc closed)
{
    if (event_id >= 0)
        virConnectDomainEventDeregisterAny(conn, event_id);
    virConnectUnregisterCloseCallback(conn, closed);
    virConnectClose(conn);
    virResetLastError();
}

static void job_free(struct job *j)
{
    if (!j)
        return;
    /* A connect job's connections that were never adopted, and a drop job's
     * that was never run, carry our callbacks; a heartbeat job only holds
     * references. */
    if (j->conn && j->type == JOB_HEARTBEAT)
        virConnectClose(j->conn);
    else if (j->conn)
        connection_dispose(j->conn, j->event_id, j->type == JOB_DROP ? j->closed : conn_closed);
    if (j->hb_conn && j->type == JOB_HEARTBEAT)
        virConnectClose(j->hb_conn);
    else if (j->hb_conn)
        connection_dispose(j->hb_conn, -1, hb_conn_closed);
    free(j->node);
    free(j->uri);
    free(j);
}

static void job_release(void *opaque)
{
    job_free(opaque);
}

static void job_error(struct job *j, int rc, const char *what)
{
    const char *msg = virGetLastErrorMessage();
    snprintf(j->error, sizeof j->error, "node \"%s\": %s: %s", j->node, what,
             msg ? msg : "unknown error");
    virResetLastError();
    j->rc = rc;
}

static int read_node_info(virConnectPtr conn, struct node_facts *f)
{
    virNodeInfo info;
    if (virNodeGetInfo(conn, &info) < 0)
        return -EIO;
    f->cpus = info.cpus;
    f->memory_kib = info.memory;
    copy_str(f->arch, sizeof f->arch, info.model);
    return 0;
}

/* Identity is informative: a node that cannot say its hostname is still
 * usable, so failures here are only logged. */
static void read_identity(virConnectPtr conn, const char *node, struct node_facts *f)
{
    char *host = virConnectGetHostname(conn);
    if (host) {
        copy_str(f->hostname, sizeof f->hostname, host);
        free(host);
    } else {
        vf_log_debug("node \"%s\": no hostname: %s", node, virGetLastErrorMessage());
    }
    unsigned long v;
    if (virConnectGetLibVersion(conn, &v) == 0)
        snprintf(f->libvirt_version, sizeof f->libvirt_version, "%lu.%lu.%lu", v / 1000000,
                 v / 1000 % 1000, v % 1000);
    else
        vf_log_debug("node \"%s\": no libvirt version: %s", node, virGetLastErrorMessage());
    copy_str(f->hypervisor, sizeof f->hypervisor, virConnectGetType(conn));
    char *caps = virConnectGetCapabilities(conn);
    if (caps) {
        int rc = vf_cluster_caps_cpu_model(caps, f->cpu_model, sizeof f->cpu_model);
        if (rc < 0 && rc != -ENOENT)
            vf_log_warn("node \"%s\": cannot read the host CPU model from its capabilities: %s",
                        node, strerror(-rc));
        free(caps);
    } else {
        vf_log_debug("node \"%s\": no capabilities: %s", node, virGetLastErrorMessage());
    }
    virResetLastError();
}

/* Opens j->uri with the close callback `closed` (told this attempt's id) and
 * the keepalive; `which` names the connection in messages.  0, or -errno with
 * j->error set. */
static int connection_open(struct job *j, const char *which, virConnectCloseFunc closed,
                           virConnectPtr *out)
{
    char what[MESSAGE_MAX];
    virConnectPtr conn = virConnectOpen(j->uri);
    *out = NULL;
    if (!conn) {
        snprintf(what, sizeof what, "%s to \"%s\" failed", which, j->uri);
        job_error(j, -ECONNREFUSED, what);
        return -ECONNREFUSED;
    }
    /* The id of this attempt, not a pointer: the callback may fire after the
     * node is gone. */
    if (virConnectRegisterCloseCallback(conn, closed, (void *)(uintptr_t)j->gen, NULL) < 0)
        vf_log_debug("node \"%s\": no close notifications for the %s: %s", j->node, which,
                     virGetLastErrorMessage());
    if (virConnectSetKeepAlive(conn, VF_NODE_KEEPALIVE_INTERVAL_S, VF_NODE_KEEPALIVE_COUNT) < 0) {
        if (virGetLastErrorCode() == VIR_ERR_NO_SUPPORT)
            vf_log_debug("node \"%s\": keepalive not supported by \"%s\"; heartbeats only",
                         j->node, j->uri);
        else
            vf_log_warn("node \"%s\": keepalive not enabled on the %s: %s", j->node, which,
                        virGetLastErrorMessage());
    }
    virResetLastError();
    *out = conn;
    return 0;
}

static void connect_work(struct job *j)
{
    virConnectPtr conn, hb_conn;
    if (connection_open(j, "connect", conn_closed, &conn) < 0)
        return;
    if (read_node_info(conn, &j->facts) < 0) {
        job_error(j, -EIO, "reading node info failed");
        connection_dispose(conn, -1, conn_closed);
        return;
    }
    read_identity(conn, j->node, &j->facts);
    if (connection_open(j, "heartbeat connection", hb_conn_closed, &hb_conn) < 0) {
        connection_dispose(conn, -1, conn_closed);
        return;
    }
    /* Registered here, not on the loop: on a remote node it is a round trip.
     * Events that arrive before the loop adopts the connection are dropped
     * (the node is not Ready yet); listeners list the domains on node_up. */
    j->event_id = virConnectDomainEventRegisterAny(conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                                   VIR_DOMAIN_EVENT_CALLBACK(domain_lifecycle),
                                                   (void *)(uintptr_t)j->gen, NULL);
    if (j->event_id < 0) {
        vf_log_warn("node \"%s\": no domain lifecycle events: %s", j->node,
                    virGetLastErrorMessage());
        virResetLastError();
    }
    j->conn = conn;
    j->hb_conn = hb_conn;
    j->rc = 0;
}

/* Probes on the heartbeat's own connection.  Whether the shared one is alive
 * is a local check (no call to the node, no wait behind its callers): its
 * close callback normally says so first. */
static void heartbeat_work(struct job *j)
{
    const char *dead = virConnectIsAlive(j->conn) != 1      ? "the connection is dead"
                       : virConnectIsAlive(j->hb_conn) != 1 ? "the heartbeat connection is dead"
                                                            : NULL;
    if (dead) {
        snprintf(j->error, sizeof j->error, "node \"%s\": heartbeat: %s", j->node, dead);
        virResetLastError();
        j->rc = -ENOTCONN;
        return;
    }
    if (read_node_info(j->hb_conn, &j->facts) < 0) {
        job_error(j, -EIO, "heartbeat: reading node info failed");
        return;
    }
    j->rc = 0;
}

/* On a worker. */
static void job_run(void *opaque)
{
    struct job *j = opaque;
    switch (j->type) {
    case JOB_CONNECT: connect_work(j); break;
    case JOB_HEARTBEAT: heartbeat_work(j); break;
    case JOB_DROP:
        connection_dispose(j->conn, j->event_id, j->closed);
        j->conn = NULL;
        break;
    }
}

static void connect_done(struct job *j);
static void heartbeat_done(struct job *j);

/* Loop thread. */
static void job_done(void *opaque)
{
    struct job *j = opaque;
    if (j->type == JOB_CONNECT)
        connect_done(j);
    else if (j->type == JOB_HEARTBEAT)
        heartbeat_done(j);
}

static struct job *job_new(enum job_type type, const struct node *n)
{
    struct job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->type = type;
    j->gen = n->gen;
    j->event_id = -1;
    j->node = strdup(n->name);
    if (type == JOB_CONNECT)
        j->uri = strdup(n->uri);
    if (!j->node || (type == JOB_CONNECT && !j->uri)) {
        job_free(j);
        return NULL;
    }
    return j;
}

/* Takes j (frees it on failure).  `what` must be a string literal: the
 * worker pool keeps the pointer. */
static int job_submit(struct job *j, const char *what)
{
    return vf_job_group_submit(&cluster_jobs, what, job_run, job_done, j);
}

/* ---- Node objects --------------------------------------------------------- */

static struct json_object *quantity(unsigned long long kib)
{
    char buf[32];
    vf_quantity_format((int64_t)(kib * 1024), buf, sizeof buf);
    return json_object_new_string(buf);
}

/* ratio: CPUs counted this many times (allocatable with overcommit); 1 for capacity. */
static struct json_object *capacity_build(const struct node_facts *f, double ratio)
{
    struct json_object *c = json_object_new_object();
    json_object_object_add(c, "cpu", json_object_new_int64((int64_t)(f->cpus * ratio)));
    json_object_object_add(c, "memory", quantity(f->memory_kib));
    return c;
}

static void add_string(struct json_object *o, const char *key, const char *value)
{
    if (value && value[0])
        json_object_object_add(o, key, json_object_new_string(value));
}

/* CPUs as Kubernetes writes them: "2", or "1500m" for a fraction. */
static struct json_object *cpu_quantity(int64_t millis)
{
    char buf[32];
    if (millis % 1000 == 0)
        snprintf(buf, sizeof buf, "%lld", (long long)(millis / 1000));
    else
        snprintf(buf, sizeof buf, "%lldm", (long long)millis);
    return json_object_new_string(buf);
}

static struct json_object *reserved_build(const struct vf_cluster_reserved *r)
{
    char mem[32];
    struct json_object *o = json_object_new_object();
    vf_quantity_format(r->memory_bytes, mem, sizeof mem);
    json_object_object_add(o, "cpu", cpu_quantity(r->cpu_millis));
    json_object_object_add(o, "memory", json_object_new_string(mem));
    json_object_object_add(o, "virtualMachines", json_object_new_int64(r->vms));
    return o;
}

/* The status as this controller sees it.  Without times it is the part whose
 * change is worth a write. */
static struct json_object *status_build(const struct node *n, bool with_times)
{
    struct json_object *s = json_object_new_object();
    json_object_object_add(s, "phase", json_object_new_string(n->ready ? "Ready" : "NotReady"));
    json_object_object_add(s, "uri", json_object_new_string(n->uri));
    /* Ready and not cordoned: what placement may use. */
    json_object_object_add(s, "schedulable", json_object_new_boolean(n->ready && !n->unschedulable));
    if (n->have_facts) {
        const struct node_facts *f = &n->facts;
        json_object_object_add(s, "capacity", capacity_build(f, 1.0));
        /* Nothing is reserved for the host yet: all of it is allocatable, CPUs
         * times the configured overcommit. */
        json_object_object_add(s, "allocatable", capacity_build(f, n->cpu_allocation_ratio));
        struct json_object *info = json_object_new_object();
        add_string(info, "hostname", f->hostname);
        add_string(info, "cpuModel", f->cpu_model);
        add_string(info, "architecture", f->arch);
        add_string(info, "hypervisor", f->hypervisor);
        add_string(info, "libvirtVersion", f->libvirt_version);
        json_object_object_add(s, "nodeInfo", info);
    }
    json_object_object_add(s, "reserved", reserved_build(&n->reserved));
    struct json_object *c = json_object_new_object();
    json_object_object_add(c, "type", json_object_new_string("Ready"));
    json_object_object_add(c, "status", json_object_new_string(n->ready ? "True" : "False"));
    json_object_object_add(c, "reason", json_object_new_string(n->reason));
    json_object_object_add(c, "message", json_object_new_string(n->message));
    json_object_object_add(c, "lastTransitionTime", json_object_new_string(n->transition_time));
    if (with_times)
        add_string(c, "lastHeartbeatTime", n->probe_time);
    struct json_object *conds = json_object_new_array();
    json_object_array_add(conds, c);
    json_object_object_add(s, "conditions", conds);
    if (with_times)
        add_string(s, "lastHeartbeatTime", n->contact_time);
    return s;
}

static bool owned_status_key(const char *key)
{
    static const char *const owned[] = {"phase", "uri", "schedulable", "capacity", "allocatable",
                                        "nodeInfo", "reserved", "conditions", "lastHeartbeatTime"};
    for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++)
        if (!strcmp(key, owned[i]))
            return true;
    return false;
}

/* Make the Node object exist with the configured labels (config wins over
 * labels set through the API).  Reads spec.unschedulable on the way. */
static int node_object_ensure(struct node *n)
{
    struct vf_error err = {0};
    struct json_object *cur = NULL;
    int rc = vf_objects_get(NODE_KIND, n->name, &cur, &err);
    if (rc == -ENOENT) {
        struct json_object *obj = json_object_new_object();
        struct json_object *meta = json_object_new_object();
        json_object_object_add(obj, "apiVersion",
                               json_object_new_string(VF_API_GROUP "/" VF_API_VERSION));
        json_object_object_add(obj, "kind", json_object_new_string(NODE_KIND));
        json_object_object_add(meta, "name", json_object_new_string(n->name));
        json_object_object_add(meta, "labels", labels_copy(n->labels));
        json_object_object_add(obj, "metadata", meta);
        json_object_object_add(obj, "spec", json_object_new_object());
        rc = vf_objects_create(NODE_KIND, obj, NULL, &err);
        json_object_put(obj);
        if (rc < 0) {
            vf_log_error("node \"%s\": cannot create its Node object: %s", n->name, err.message);
            return rc;
        }
        n->unschedulable = false;
        /* A new object has no status: the next publish must write. */
        json_object_put(n->written);
        n->written = NULL;
        return 0;
    }
    if (rc < 0) {
        vf_log_error("node \"%s\": cannot read its Node object: %s", n->name, err.message);
        return rc;
    }
    struct json_object *u = vf_json_member(vf_json_member(cur, "spec"), "unschedulable");
    n->unschedulable = u && json_object_get_boolean(u);
    struct json_object *meta = vf_json_member(cur, "metadata");
    if (!labels_equal(vf_json_member(meta, "labels"), n->labels)) {
        json_object_object_add(meta, "labels", labels_copy(n->labels));
        rc = vf_objects_update(NODE_KIND, cur, NULL, &err);
        if (rc < 0)
            vf_log_error("node \"%s\": cannot update its labels: %s", n->name, err.message);
        else
            vf_log_info("node \"%s\": labels set to %s", n->name,
                        json_object_to_json_string_ext(n->labels, JSON_C_TO_STRING_PLAIN |
                                                                JSON_C_TO_STRING_NOSLASHESCAPE));
    }
    json_object_put(cur);
    return rc;
}

/* Write the status when something but heartbeat times changed, or when the
 * last write is HEARTBEAT_WRITE_EVERY heartbeats old. */
static void node_publish(struct node *n)
{
    struct json_object *sig = status_build(n, false);
    int64_t now = mono_ms();
    if (n->written && json_object_equal(sig, n->written) &&
        now - n->written_ms < (int64_t)heartbeat_ms * HEARTBEAT_WRITE_EVERY) {
        json_object_put(sig);
        return;
    }
    struct json_object *status = status_build(n, true);
    struct vf_error err = {0};
    struct json_object *cur = NULL;
    int rc = vf_objects_get(NODE_KIND, n->name, &cur, &err);
    bool reported = false;
    if (rc == -ENOENT) {
        /* Deleted through the API while configured: a configured node always
         * has its object, as a kubelet re-registers its Node. */
        if ((rc = node_object_ensure(n)) == 0)
            vf_log_info("node \"%s\": Node object recreated", n->name);
        reported = rc < 0;
    } else if (rc == 0) {
        /* Keep what other controllers added to the status. */
        struct json_object *old = vf_json_member(cur, "status");
        if (old && json_object_is_type(old, json_type_object)) {
            json_object_object_foreach(old, key, val) {
                if (!owned_status_key(key))
                    json_object_object_add(status, key, json_object_get(val));
            }
        }
    } else {
        vf_log_error("node \"%s\": cannot read its Node object: %s", n->name, err.message);
        reported = true;
    }
    json_object_put(cur);
    if (rc == 0)
        rc = vf_objects_update_status(NODE_KIND, n->name, status, NULL, &err);
    if (rc < 0) {
        if (!reported)
            vf_log_error("node \"%s\": cannot write its status: %s", n->name, err.message);
        json_object_put(sig);   /* n->written stays: the next publish retries */
    } else {
        json_object_put(n->written);
        n->written = sig;
        n->written_ms = now;
    }
    json_object_put(status);
}

/* ---- node state ------------------------------------------------------------ */

static void node_set_condition(struct node *n, bool ready, const char *reason,
                               const char *message)
{
    char now[TIME_MAX];
    time_now(now);
    if (ready != n->ready || !n->transition_time[0])
        copy_str(n->transition_time, sizeof n->transition_time, now);
    n->ready = ready;
    copy_str(n->reason, sizeof n->reason, reason);
    copy_str(n->message, sizeof n->message, message);
    copy_str(n->probe_time, sizeof n->probe_time, now);
}

/* Forget the connection and any pending retry.  The generation moves on, so
 * results of jobs still in flight for the old one are dropped. */
static void listeners_node_down(const char *node);

static void connection_retire(virConnectPtr conn, int event_id, virConnectCloseFunc closed);

static void node_disconnect(struct node *n)
{
    bool was_ready = n->state == NODE_READY;
    if (n->conn)
        connection_retire(n->conn, n->event_id, conn_closed);
    n->conn = NULL;
    n->event_id = -1;
    if (n->hb_conn)
        connection_retire(n->hb_conn, -1, hb_conn_closed);
    n->hb_conn = NULL;
    if (n->retry_timer > 0)
        vf_loop_timer_remove(n->retry_timer);
    n->retry_timer = 0;
    n->retry_delay_ms = 0;
    n->heartbeat_busy = false;
    n->gen = ++gen_counter;
    n->state = NODE_WAITING;
    if (was_ready)
        listeners_node_down(n->name);
}

static void node_connect(struct node *n);

static void node_retry(void *opaque)
{
    struct node *n = opaque;
    /* Loop timers repeat: this one is used once. */
    vf_loop_timer_remove(n->retry_timer);
    n->retry_timer = 0;
    n->retry_delay_ms = 0;
    node_connect(n);
}

/* The node cannot be used: publish why and try again after the backoff.  The
 * caller logs (only the first failure of a series at warn). */
static void node_down(struct node *n, const char *reason, const char *message)
{
    node_disconnect(n);
    n->failures++;
    node_set_condition(n, false, reason, message);
    n->retry_delay_ms = backoff_ms(n->failures);
    int id = vf_loop_timer_add(n->retry_delay_ms, node_retry, n);
    if (id < 0) {
        vf_log_error("node \"%s\": cannot schedule a reconnect: %s", n->name, strerror(-id));
        n->retry_delay_ms = 0;
    } else {
        n->retry_timer = id;
    }
    node_publish(n);
}

static void node_connect(struct node *n)
{
    node_disconnect(n);
    n->state = NODE_CONNECTING;
    struct job *j = job_new(JOB_CONNECT, n);
    int rc = j ? job_submit(j, "node connect") : -ENOMEM;
    if (rc < 0) {
        char msg[MESSAGE_MAX];
        snprintf(msg, sizeof msg, "node \"%s\": cannot start connecting: %s", n->name,
                 strerror(-rc));
        if (n->failures == 0)
            vf_log_error("%s", msg);
        node_down(n, "ConnectFailed", msg);
    }
}

static void connect_done(struct job *j)
{
    struct node *n = node_find(j->node);
    if (!n || n->gen != j->gen || n->state != NODE_CONNECTING) {
        vf_log_debug("node \"%s\": a superseded connection attempt finished; dropped", j->node);
        return;
    }
    if (j->rc < 0) {
        if (n->failures == 0)
            vf_log_warn("%s; retrying with backoff (1 s doubling up to %d s)", j->error,
                        backoff_max_ms / 1000);
        else
            vf_log_debug("%s; retry %u", j->error, n->failures);
        node_down(n, "ConnectFailed", j->error);
        return;
    }
    n->conn = j->conn;
    n->hb_conn = j->hb_conn;
    n->event_id = j->event_id;
    j->conn = j->hb_conn = NULL;   /* adopted, with their close and event callbacks */
    n->state = NODE_READY;
    n->facts = j->facts;
    n->have_facts = true;
    n->failures = 0;
    char msg[MESSAGE_MAX], mem[32];
    snprintf(msg, sizeof msg, "node \"%s\": connected to \"%s\"", n->name, n->uri);
    node_set_condition(n, true, "Connected", msg);
    copy_str(n->contact_time, sizeof n->contact_time, n->probe_time);
    vf_quantity_format((int64_t)(n->facts.memory_kib * 1024), mem, sizeof mem);
    vf_log_info("node \"%s\": connected to \"%s\" (%u CPUs, %s)", n->name, n->uri, n->facts.cpus,
                mem);
    node_publish(n);
    for (int i = 0; i < LISTENERS_MAX; i++) {
        const struct vf_cluster_listener *l = listeners[i];
        /* A listener may disconnect the node from its callback. */
        if (l && l->node_up && n->state == NODE_READY)
            l->node_up(l->opaque, n->name, n->conn);
    }
}

static void heartbeat_done(struct job *j)
{
    struct node *n = node_find(j->node);
    if (!n || n->gen != j->gen || n->state != NODE_READY)
        return;
    n->heartbeat_busy = false;
    if (j->rc < 0) {
        vf_log_warn("%s; reconnecting", j->error);
        n->failures = 0;
        node_down(n, "Unreachable", j->error);
        return;
    }
    /* CPUs can be hot-plugged and memory resized: keep capacity current. */
    n->facts.cpus = j->facts.cpus;
    n->facts.memory_kib = j->facts.memory_kib;
    copy_str(n->facts.arch, sizeof n->facts.arch, j->facts.arch);
    time_now(n->probe_time);
    copy_str(n->contact_time, sizeof n->contact_time, n->probe_time);
    node_publish(n);
}

static const char *close_reason(int reason)
{
    switch (reason) {
    case VIR_CONNECT_CLOSE_REASON_ERROR: return "an I/O error";
    case VIR_CONNECT_CLOSE_REASON_EOF: return "end of file from the peer";
    case VIR_CONNECT_CLOSE_REASON_KEEPALIVE: return "keepalive timeout";
    case VIR_CONNECT_CLOSE_REASON_CLIENT: return "closed by the client";
    default: return "an unknown reason";
    }
}

struct closed_event {
    uint64_t gen;
    virConnectPtr conn;  /* compared only: it may be gone by now */
    int reason;
    const char *which;   /* "connection" or "heartbeat connection" */
};

static void retired_closed(virConnectPtr conn);

static void conn_closed_on_loop(void *opaque)
{
    struct closed_event *ev = opaque;
    retired_closed(ev->conn);
    for (struct node *n = nodes; n; n = n->next) {
        if (n->gen != ev->gen || n->state != NODE_READY)
            continue;
        char msg[MESSAGE_MAX];
        snprintf(msg, sizeof msg, "node \"%s\": %s to \"%s\" lost: %s", n->name, ev->which,
                 n->uri, close_reason(ev->reason));
        vf_log_warn("%s; reconnecting", msg);
        n->failures = 0;
        node_down(n, "ConnectionLost", msg);
        break;
    }
    free(ev);
}

/* libvirt calls these from whichever thread noticed the close: hand it to
 * the loop by generation number, never by node pointer. */
static void closed_post(virConnectPtr conn, void *opaque, int reason, const char *which)
{
    struct closed_event *ev = malloc(sizeof *ev);
    if (!ev)
        return;
    ev->gen = (uintptr_t)opaque;
    ev->conn = conn;
    ev->reason = reason;
    ev->which = which;
    if (vf_loop_post(conn_closed_on_loop, ev) < 0)
        free(ev);
}

static void conn_closed(virConnectPtr conn, int reason, void *opaque)
{
    closed_post(conn, opaque, reason, "connection");
}

static void hb_conn_closed(virConnectPtr conn, int reason, void *opaque)
{
    closed_post(conn, opaque, reason, "heartbeat connection");
}

/* ---- connections let go of ---------------------------------------------------- */

/* Closing a connection, and deregistering its event callback, is a round trip
 * to the node: on a node that hangs it waits for the keepalive, and next to a
 * module's call on the same connection it is the second waiter libvirt 9.0
 * crashes on.  Yet a node goes down as soon as ONE of its two connections
 * closes, the other most likely still open to the same hung libvirtd.  So the
 * loop thread disposes of a connection only once it is dead (every call then
 * fails at once); a live one is retired: kept with its callbacks (their
 * generation is stale, so they are ignored) until its close callback says it
 * is gone, or, still alive when its keepalive would have closed it (the node
 * answers), it is closed on a worker. */
struct retired {
    virConnectPtr conn;
    int event_id;
    virConnectCloseFunc closed;
    int timer;
    struct retired *next;
};
static struct retired *retired_list;

static void retired_unlink(struct retired *r)
{
    for (struct retired **p = &retired_list; *p; p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            break;
        }
    }
    if (r->timer > 0)
        vf_loop_timer_remove(r->timer);
}

static void retired_drop(struct retired *r)
{
    retired_unlink(r);
    if (virConnectIsAlive(r->conn) == 1) {
        struct job *j = calloc(1, sizeof *j);
        if (j) {
            j->type = JOB_DROP;
            j->conn = r->conn;
            j->event_id = r->event_id;
            j->closed = r->closed;
        }
        /* On failure the job (and the connection with it) is freed here. */
        if (!j || job_submit(j, "node connection close") < 0)
            vf_log_warn("cluster: no worker to close a connection on; closing it here");
        if (!j)
            connection_dispose(r->conn, r->event_id, r->closed);
    } else {
        virResetLastError();
        connection_dispose(r->conn, r->event_id, r->closed);
    }
    free(r);
}

static void retired_timeout(void *opaque)
{
    retired_drop(opaque);
}

static void retired_closed(virConnectPtr conn)
{
    for (struct retired *r = retired_list; r; r = r->next) {
        if (r->conn == conn) {
            retired_drop(r);
            return;
        }
    }
}

static void connection_retire(virConnectPtr conn, int event_id, virConnectCloseFunc closed)
{
    /* A silent peer is dead after interval * (count + 1) at the latest. */
    const int wait_ms = VF_NODE_KEEPALIVE_INTERVAL_S * (VF_NODE_KEEPALIVE_COUNT + 1) * 1000 + 2000;
    struct retired *r = NULL;
    if (virConnectIsAlive(conn) == 1 && (r = calloc(1, sizeof *r))) {
        r->timer = vf_loop_timer_add(wait_ms, retired_timeout, r);
        if (r->timer < 0) {
            free(r);
            r = NULL;
        }
    }
    virResetLastError();
    if (!r) {
        connection_dispose(conn, event_id, closed);
        return;
    }
    r->conn = conn;
    r->event_id = event_id;
    r->closed = closed;
    r->next = retired_list;
    retired_list = r;
}

/* ---- listeners and domain events -------------------------------------------- */

static void listeners_node_down(const char *node)
{
    for (int i = 0; i < LISTENERS_MAX; i++) {
        const struct vf_cluster_listener *l = listeners[i];
        if (l && l->node_down)
            l->node_down(l->opaque, node);
    }
}

struct domain_event {
    uint64_t gen;
    char *name;
    unsigned char uuid[VIR_UUID_BUFLEN];
    int event, detail;
};

static void domain_event_deliver(struct domain_event *ev)
{
    for (struct node *n = nodes; n; n = n->next) {
        if (n->gen != ev->gen)
            continue;
        if (n->state != NODE_READY)
            return;
        char *node = strdup(n->name);   /* a listener may remove the node */
        if (!node)
            return;
        for (int i = 0; i < LISTENERS_MAX; i++) {
            const struct vf_cluster_listener *l = listeners[i];
            if (l && l->domain_event)
                l->domain_event(l->opaque, node, ev->name, ev->uuid, ev->event, ev->detail);
        }
        free(node);
        return;
    }
}

static void domain_event_on_loop(void *opaque)
{
    struct domain_event *ev = opaque;
    domain_event_deliver(ev);
    free(ev->name);
    free(ev);
}

/* libvirt dispatches events from its event loop, which is ours, so this
 * normally runs on the loop thread; should a driver call it from elsewhere,
 * the event is handed over.  The node is found by connection generation. */
static int domain_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail,
                            void *opaque)
{
    (void)conn;
    struct domain_event *ev = calloc(1, sizeof *ev);
    const char *name = virDomainGetName(dom);
    if (!ev || !(ev->name = strdup(name ? name : "")) || virDomainGetUUID(dom, ev->uuid) < 0) {
        if (ev)
            free(ev->name);
        free(ev);
        return 0;
    }
    ev->gen = (uintptr_t)opaque;
    ev->event = event;
    ev->detail = detail;
    if (vf_loop_on_loop_thread()) {
        domain_event_on_loop(ev);
    } else if (vf_loop_post(domain_event_on_loop, ev) < 0) {
        free(ev->name);
        free(ev);
    }
    return 0;
}

int vf_cluster_listen(const struct vf_cluster_listener *l)
{
    int slot = -1;
    for (int i = 0; i < LISTENERS_MAX; i++) {
        if (listeners[i] == l)
            return 0;
        if (!listeners[i] && slot < 0)
            slot = i;
    }
    if (slot < 0) {
        vf_log_error("cluster: too many listeners (at most %d)", LISTENERS_MAX);
        return -ENOSPC;
    }
    listeners[slot] = l;
    if (l->node_up) {
        for (struct node *n = nodes; n; n = n->next)
            if (n->state == NODE_READY && listeners[slot] == l)
                l->node_up(l->opaque, n->name, n->conn);
    }
    return 0;
}

void vf_cluster_unlisten(const struct vf_cluster_listener *l)
{
    for (int i = 0; i < LISTENERS_MAX; i++)
        if (listeners[i] == l)
            listeners[i] = NULL;
}

static void heartbeat_tick(void *opaque)
{
    (void)opaque;
    for (struct node *n = nodes; n; n = n->next) {
        if (n->state != NODE_READY || n->heartbeat_busy)
            continue;
        struct job *j = job_new(JOB_HEARTBEAT, n);
        if (!j)
            continue;
        j->conn = n->conn;
        virConnectRef(j->conn);
        j->hb_conn = n->hb_conn;
        virConnectRef(j->hb_conn);
        if (job_submit(j, "node heartbeat") < 0)
            vf_log_debug("node \"%s\": heartbeat skipped: no worker available", n->name);
        else
            n->heartbeat_busy = true;
    }
}

static void node_free(struct node *n)
{
    node_disconnect(n);
    json_object_put(n->labels);
    json_object_put(n->written);
    free(n->name);
    free(n->uri);
    free(n);
}

static struct node *node_new(const struct vf_config_node *c)
{
    struct node *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->name = strdup(c->name);
    n->uri = strdup(c->uri);
    n->labels = labels_copy(c->labels);
    n->cpu_allocation_ratio = c->cpu_allocation_ratio;
    n->state = NODE_WAITING;
    n->event_id = -1;
    if (!n->name || !n->uri || !n->labels) {
        node_free(n);
        return NULL;
    }
    return n;
}

static void node_watch_cb(void *opaque, const char *kind, enum vf_watch_event type,
                          const struct json_object *obj)
{
    (void)opaque;
    (void)kind;
    if (type == VF_WATCH_DELETED)
        return;
    struct node *n = node_find(vf_object_name(obj));
    if (!n)
        return;
    struct json_object *u = vf_json_member(vf_json_member(obj, "spec"), "unschedulable");
    bool unschedulable = u && json_object_get_boolean(u);
    if (unschedulable == n->unschedulable)
        return;
    n->unschedulable = unschedulable;
    vf_log_info("node \"%s\": %s", n->name, unschedulable ? "cordoned" : "uncordoned");
    node_publish(n);
}

/* ---- the interface -------------------------------------------------------- */

int vf_cluster_init(void)
{
    if (started)
        return 0;
    struct vf_store *st = vf_objects_store();
    if (!st) {
        vf_log_error("cluster: the store is not open");
        return -ENODEV;
    }
    struct vf_error err = {0};
    int rc = vf_store_watch_add(st, NODE_KIND, 0, node_watch_cb, NULL, &node_watch, &err);
    if (rc < 0) {
        vf_log_error("cluster: cannot watch Node objects: %s", err.message);
        return rc;
    }
    watch_store = st;
    rc = vf_loop_timer_add(heartbeat_ms, heartbeat_tick, NULL);
    if (rc < 0) {
        vf_log_error("cluster: cannot start the heartbeat timer: %s", strerror(-rc));
        vf_store_watch_remove(watch_store, node_watch);
        node_watch = NULL;
        watch_store = NULL;
        return rc;
    }
    heartbeat_timer = rc;
    started = true;
    return 0;
}

/* Node objects whose node is no longer configured (e.g. removed while the
 * daemon was down) describe nothing: they go. */
static void delete_unconfigured_objects(void)
{
    struct json_object *items = NULL;
    struct vf_error err = {0};
    if (vf_objects_list(NODE_KIND, &items, NULL, &err) < 0) {
        vf_log_error("cluster: cannot list Node objects: %s", err.message);
        return;
    }
    size_t len = json_object_array_length(items);
    for (size_t i = 0; i < len; i++) {
        const char *name = vf_object_name(json_object_array_get_idx(items, i));
        if (!name || node_find(name))
            continue;
        int rc = vf_objects_delete(NODE_KIND, name, 0, NULL, &err);
        if (rc == 0)
            vf_log_info("node \"%s\": not configured; Node object deleted", name);
        else if (rc != -ENOENT)
            vf_log_error("node \"%s\": cannot delete its Node object: %s", name, err.message);
    }
    json_object_put(items);
}

static void node_add(const struct vf_config_node *c)
{
    struct node *n = node_new(c);
    if (!n) {
        vf_log_error("node \"%s\": out of memory", c->name);
        return;
    }
    n->seen = true;
    n->next = nodes;
    nodes = n;
    node_object_ensure(n);
    char msg[MESSAGE_MAX];
    snprintf(msg, sizeof msg, "node \"%s\": connecting to \"%s\"", n->name, n->uri);
    node_set_condition(n, false, "Connecting", msg);
    node_publish(n);
    node_connect(n);
}

static void node_reconfigure(struct node *n, const struct vf_config_node *c)
{
    n->seen = true;
    if (n->cpu_allocation_ratio != c->cpu_allocation_ratio) {
        n->cpu_allocation_ratio = c->cpu_allocation_ratio;
        node_publish(n);
    }
    if (!labels_equal(n->labels, c->labels)) {
        struct json_object *labels = labels_copy(c->labels);
        if (labels) {
            json_object_put(n->labels);
            n->labels = labels;
            node_object_ensure(n);
        }
    }
    if (strcmp(n->uri, c->uri)) {
        char *uri = strdup(c->uri);
        if (!uri) {
            vf_log_error("node \"%s\": out of memory", n->name);
            return;
        }
        vf_log_info("node \"%s\": URI changed from \"%s\" to \"%s\"; reconnecting", n->name,
                    n->uri, uri);
        node_disconnect(n);
        free(n->uri);
        n->uri = uri;
        n->failures = 0;
        char msg[MESSAGE_MAX];
        snprintf(msg, sizeof msg, "node \"%s\": connecting to \"%s\"", n->name, n->uri);
        node_set_condition(n, false, "Connecting", msg);
        node_publish(n);
        node_connect(n);
    }
}

void vf_cluster_apply(const struct vf_config *cfg)
{
    if (!started && vf_cluster_init() < 0)
        return;
    for (struct node *n = nodes; n; n = n->next)
        n->seen = false;
    for (unsigned i = 0; i < cfg->n_nodes; i++) {
        const struct vf_config_node *c = &cfg->nodes[i];
        if (!c->name || !c->uri)
            continue;
        struct node *n = node_find(c->name);
        if (n)
            node_reconfigure(n, c);
        else
            node_add(c);
    }
    for (struct node **pp = &nodes; *pp;) {
        struct node *n = *pp;
        if (n->seen) {
            pp = &n->next;
            continue;
        }
        *pp = n->next;
        vf_log_info("node \"%s\": removed from the configuration; disconnecting", n->name);
        node_free(n);
    }
    delete_unconfigured_objects();
}

void vf_cluster_stop(void)
{
    if (heartbeat_timer > 0)
        vf_loop_timer_remove(heartbeat_timer);
    heartbeat_timer = 0;
    if (node_watch)
        vf_store_watch_remove(watch_store, node_watch);
    node_watch = NULL;
    watch_store = NULL;

    vf_job_group_drop_all(&cluster_jobs);

    while (nodes) {
        struct node *n = nodes;
        nodes = n->next;
        node_free(n);
    }
    /* Shutting down: what is left is closed here, as a live node answers. */
    while (retired_list) {
        struct retired *r = retired_list;
        retired_unlink(r);
        connection_dispose(r->conn, r->event_id, r->closed);
        free(r);
    }
    started = false;
}

void *vf_cluster_connection(const char *node)
{
    struct node *n = node_find(node);
    return n && n->state == NODE_READY ? n->conn : NULL;
}

void vf_cluster_node_reserved(const char *node, const struct vf_cluster_reserved *reserved)
{
    struct node *n = node_find(node);
    if (!n || memcmp(&n->reserved, reserved, sizeof *reserved) == 0)
        return;
    n->reserved = *reserved;
    node_publish(n);
}

void vf_cluster_set_heartbeat_ms(int ms)
{
    heartbeat_ms = ms > 0 ? ms : HEARTBEAT_DEFAULT_MS;
    if (heartbeat_timer > 0) {
        vf_loop_timer_remove(heartbeat_timer);
        int id = vf_loop_timer_add(heartbeat_ms, heartbeat_tick, NULL);
        if (id < 0)
            vf_log_error("cluster: cannot restart the heartbeat timer: %s", strerror(-id));
        heartbeat_timer = id > 0 ? id : 0;
    }
}

int vf_cluster_node_backoff(const char *node, unsigned *failures, int *delay_ms)
{
    struct node *n = node_find(node);
    if (!n)
        return -ENOENT;
    if (failures)
        *failures = n->failures;
    if (delay_ms)
        *delay_ms = n->retry_timer > 0 ? n->retry_delay_ms : 0;
    return 0;
}

void *vf_cluster_heartbeat_connection(const char *node)
{
    struct node *n = node_find(node);
    return n && n->state == NODE_READY ? n->hb_conn : NULL;
}

int vf_cluster_connection_closed(const char *node, bool heartbeat, int reason)
{
    struct node *n = node_find(node);
    if (!n || n->state != NODE_READY)
        return -ENOENT;
    if (heartbeat)
        hb_conn_closed(n->hb_conn, reason, (void *)(uintptr_t)n->gen);
    else
        conn_closed(n->conn, reason, (void *)(uintptr_t)n->gen);
    return 0;
}
