/* virtfleet drain NODE: maintenance mode, as `kubectl drain` does it for the
 * seeds.  It cordons the node (spec.unschedulable), asks the migrate module
 * to move each VM away with an Evict operation (labelled
 * virtfleet.io/drain-node=NODE and virtfleet.io/migration-priority=drain, so
 * they go before user requests and uncordon can find and cancel the ones
 * that have not started), then follows them until no VM (matching the
 * selector) is left on the node.  Exit 0 when the node is empty; 1 with one
 * line per VM that could not be moved and why, on --timeout, or on Ctrl+C,
 * which leaves the node cordoned and the evictions queued. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "commands.h"

#define NODES "nodes"
#define VMS "virtualmachines"
#define VMOPS "virtualmachineoperations"
#define LABEL_DRAIN_NODE "virtfleet.io/drain-node"
#define LABEL_PRIORITY "virtfleet.io/migration-priority"
/* The seeds' VM-only drain selects the pods of VMs by this label's presence:
 * every virtfleet VM is a VM, so it selects them all. */
#define SEEDS_VM_POD_LABEL "vm.kubevirt.internal.virtualization.deckhouse.io/name"
#define POLL_MS 200
/* An operation the migrate module has not even queued by then is nobody's. */
#define UNCLAIMED_S 15

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

struct drain_vm {
    char *name, *op, *last;   /* last: the progress line printed last */
    char *failure;            /* why it cannot be moved, once known */
    time_t asked;             /* when its operation was created or found */
    bool gone;
};

struct drain {
    struct vf_cli *cli;
    const char *node, *selector;
    struct drain_vm *vms;
    size_t n, cap;
};

static const char *str_at(struct json_object *o, const char *a, const char *b)
{
    struct json_object *x = NULL, *y = NULL;
    if (!o || !json_object_object_get_ex(o, a, &x))
        return NULL;
    if (!b)
        return json_object_is_type(x, json_type_string) ? json_object_get_string(x) : NULL;
    if (!json_object_object_get_ex(x, b, &y) || !json_object_is_type(y, json_type_string))
        return NULL;
    return json_object_get_string(y);
}

/* One request; 0 with *r filled (any HTTP status), or the exit status after
 * reporting a transport failure. */
static int request(struct drain *d, const char *method, const char *path, const char *ctype,
                   struct json_object *body, struct vf_response *r)
{
    int rc = vf_client_request(d->cli->client, method, path, ctype, body, r);
    if (rc < 0) {
        fprintf(stderr, "error: %s\n", vf_client_error(d->cli->client));
        return rc == -ENOTCONN ? VF_EXIT_CONNECT : VF_EXIT_ERROR;
    }
    return 0;
}

static void refused(const char *what, const struct vf_response *r)
{
    const char *reason, *message, *field;
    vf_response_error(r, &reason, &message, &field);
    fprintf(stderr, "error: %s: %s\n", what, *message ? message : reason);
}

static int cordon(struct drain *d)
{
    struct vf_response r = {0};
    char *path = vf_client_path(NODES, d->node, NULL, false, NULL);
    struct json_object *patch = json_object_new_object(), *spec = json_object_new_object();
    json_object_object_add(spec, "unschedulable", json_object_new_boolean(true));
    json_object_object_add(patch, "spec", spec);
    int rc = path ? request(d, "PATCH", path, "application/merge-patch+json", patch, &r)
                  : VF_EXIT_ERROR;
    json_object_put(patch);
    free(path);
    if (rc)
        return rc;
    if (r.status == 404) {
        fprintf(stderr, "error: node \"%s\" not found\n", d->node);
        rc = VF_EXIT_ERROR;
    } else if (r.status >= 400) {
        refused("cannot cordon the node", &r);
        rc = VF_EXIT_ERROR;
    } else {
        printf("node/%s cordoned\n", d->node);
    }
    vf_response_clear(&r);
    return rc;
}

/* GET a list; *items borrowed from r. */
static int list(struct drain *d, const char *plural, const char *selector, struct vf_response *r,
                struct json_object **items)
{
    char *path = vf_client_path(plural, NULL, selector, false, NULL);
    int rc = path ? request(d, "GET", path, NULL, NULL, r) : VF_EXIT_ERROR;
    free(path);
    if (rc)
        return rc;
    if (r->status >= 400) {
        refused(plural, r);
        vf_response_clear(r);
        return VF_EXIT_ERROR;
    }
    if (!json_object_object_get_ex(r->body, "items", items) ||
        !json_object_is_type(*items, json_type_array)) {
        fprintf(stderr, "error: %s: the daemon's answer has no items\n", plural);
        vf_response_clear(r);
        return VF_EXIT_ERROR;
    }
    return 0;
}

static struct drain_vm *vm_find(struct drain *d, const char *name)
{
    for (size_t i = 0; i < d->n; i++)
        if (!strcmp(d->vms[i].name, name))
            return &d->vms[i];
    return NULL;
}

static struct drain_vm *vm_add(struct drain *d, const char *name)
{
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        struct drain_vm *v = realloc(d->vms, cap * sizeof *v);
        if (!v)
            return NULL;
        d->vms = v;
        d->cap = cap;
    }
    struct drain_vm *v = &d->vms[d->n];
    memset(v, 0, sizeof *v);
    if (!(v->name = strdup(name)))
        return NULL;
    d->n++;
    return v;
}

static void set_str(char **dst, const char *s)
{
    free(*dst);
    *dst = s ? strdup(s) : NULL;
}

static bool op_unfinished_for(struct json_object *op, const char *vm)
{
    const char *type = str_at(op, "spec", "type");
    const char *phase = str_at(op, "status", "phase");
    return str_at(op, "spec", "virtualMachineName") &&
           !strcmp(str_at(op, "spec", "virtualMachineName"), vm) && type &&
           (!strcmp(type, "Evict") || !strcmp(type, "Migrate")) &&
           !(phase && (!strcmp(phase, "Completed") || !strcmp(phase, "Failed")));
}

/* An Evict operation for v (or one that already exists). */
static int evict(struct drain *d, struct drain_vm *v, struct json_object *ops)
{
    for (size_t i = 0; ops && i < json_object_array_length(ops); i++) {
        struct json_object *op = json_object_array_get_idx(ops, i);
        if (op_unfinished_for(op, v->name)) {
            set_str(&v->op, str_at(op, "metadata", "name"));
            v->asked = time(NULL);
            printf("vm/%s: already being moved by vmop/%s\n", v->name, v->op);
            return 0;
        }
    }
    char gen[300];
    snprintf(gen, sizeof gen, "drain-%.40s-", v->name);
    struct json_object *op = json_object_new_object(), *meta = json_object_new_object(),
                       *labels = json_object_new_object(), *spec = json_object_new_object();
    json_object_object_add(op, "apiVersion", json_object_new_string("virtfleet.io/v1alpha2"));
    json_object_object_add(op, "kind", json_object_new_string("VirtualMachineOperation"));
    json_object_object_add(meta, "generateName", json_object_new_string(gen));
    json_object_object_add(labels, LABEL_DRAIN_NODE, json_object_new_string(d->node));
    json_object_object_add(labels, LABEL_PRIORITY, json_object_new_string("drain"));
    json_object_object_add(meta, "labels", labels);
    json_object_object_add(op, "metadata", meta);
    json_object_object_add(spec, "virtualMachineName", json_object_new_string(v->name));
    json_object_object_add(spec, "type", json_object_new_string("Evict"));
    json_object_object_add(op, "spec", spec);
    struct vf_response r = {0};
    char *path = vf_client_path(VMOPS, NULL, NULL, false, NULL);
    int rc = path ? request(d, "POST", path, "application/json", op, &r) : VF_EXIT_ERROR;
    free(path);
    json_object_put(op);
    if (rc)
        return rc;
    if (r.status >= 400) {
        const char *reason, *message, *field;
        vf_response_error(&r, &reason, &message, &field);
        char why[600];
        snprintf(why, sizeof why, "cannot create its Evict operation: %s", *message ? message : reason);
        set_str(&v->failure, why);
    } else {
        set_str(&v->op, str_at(r.body, "metadata", "name"));
        v->asked = time(NULL);
        printf("vm/%s: evicting (vmop/%s)\n", v->name, v->op ? v->op : "?");
    }
    vf_response_clear(&r);
    return 0;
}

static void progress(struct drain_vm *v, const char *line)
{
    if (v->last && !strcmp(v->last, line))
        return;
    printf("vm/%s: %s\n", v->name, line);
    fflush(stdout);
    set_str(&v->last, line);
}

/* Reads the operation of v and notes where it stands. */
static void follow(struct drain_vm *v, struct json_object *ops)
{
    struct json_object *op = NULL;
    for (size_t i = 0; v->op && ops && i < json_object_array_length(ops); i++) {
        struct json_object *o = json_object_array_get_idx(ops, i);
        if (str_at(o, "metadata", "name") && !strcmp(str_at(o, "metadata", "name"), v->op))
            op = o;
    }
    if (!op) {
        set_str(&v->failure, "its Evict operation was deleted (cancelled by uncordon, or by hand)");
        return;
    }
    const char *phase = str_at(op, "status", "phase");
    char line[700];
    struct json_object *conds = NULL;
    const char *message = NULL;
    if (json_object_object_get_ex(json_object_object_get(op, "status"), "conditions", &conds))
        for (size_t i = 0; i < json_object_array_length(conds); i++)
            message = str_at(json_object_array_get_idx(conds, i), "message", NULL);
    if (!phase && time(NULL) - v->asked > UNCLAIMED_S) {
        set_str(&v->failure, "nothing took up its Evict operation: is the migrate module enabled "
                             "(virtfleet modules)?");
        return;
    }
    if (phase && !strcmp(phase, "Failed")) {
        set_str(&v->failure, message ? message : "its Evict operation failed");
        return;
    }
    if (phase && !strcmp(phase, "InProgress")) {
        struct json_object *ms = NULL;
        json_object_object_get_ex(json_object_object_get(op, "status"), "migrationState", &ms);
        const char *to = str_at(ms, "targetNode", NULL);
        const char *pct = str_at(op, "status", "progress");
        snprintf(line, sizeof line, "migrating to node %s%s%s%s", to ? to : "?",
                 pct ? " (" : "", pct ? pct : "", pct ? ")" : "");
    } else {
        snprintf(line, sizeof line, "%s%s%s", phase ? phase : "queued", message ? ": " : "",
                 message ? message : "");
    }
    progress(v, line);
}

/* One look at the node: 0 when drained, 1 when only unmovable VMs are left,
 * 2 to go on waiting, or an exit status + 10 on a transport error. */
static int step(struct drain *d, bool first)
{
    struct vf_response rv = {0}, ro = {0};
    struct json_object *vms = NULL, *ops = NULL;
    int rc = list(d, VMS, d->selector, &rv, &vms);
    if (rc)
        return rc + 10;
    if ((rc = list(d, VMOPS, NULL, &ro, &ops))) {
        vf_response_clear(&rv);
        return rc + 10;
    }
    for (size_t i = 0; i < d->n; i++)
        d->vms[i].gone = true;
    size_t left = 0, stuck = 0;
    for (size_t i = 0; i < json_object_array_length(vms); i++) {
        struct json_object *vm = json_object_array_get_idx(vms, i);
        const char *name = str_at(vm, "metadata", "name");
        const char *node = str_at(vm, "status", "node");
        if (!name || !node || strcmp(node, d->node))
            continue;
        struct drain_vm *v = vm_find(d, name);
        if (!v && !(v = vm_add(d, name))) {
            vf_response_clear(&rv);
            vf_response_clear(&ro);
            return VF_EXIT_ERROR + 10;
        }
        v->gone = false;
        left++;
        if (!v->op && !v->failure && (rc = evict(d, v, ops))) {
            vf_response_clear(&rv);
            vf_response_clear(&ro);
            return rc + 10;
        }
        if (!v->failure && !first)
            follow(v, ops);
        if (v->failure)
            stuck++;
    }
    for (size_t i = 0; i < d->n; i++) {
        struct drain_vm *v = &d->vms[i];
        if (v->gone && v->name[0]) {
            const char *to = NULL;
            for (size_t k = 0; k < json_object_array_length(vms); k++) {
                struct json_object *vm = json_object_array_get_idx(vms, k);
                if (!strcmp(str_at(vm, "metadata", "name"), v->name))
                    to = str_at(vm, "status", "node");
            }
            printf("vm/%s: evicted%s%s\n", v->name, to ? " to node " : "", to ? to : "");
            v->name[0] = '\0';   /* reported once */
        }
    }
    vf_response_clear(&rv);
    vf_response_clear(&ro);
    if (!left)
        return 0;
    return stuck == left ? 1 : 2;
}

static void report(const struct drain *d, const char *why)
{
    fprintf(stderr, "error: node %s not drained%s%s; it stays cordoned:\n", d->node,
            why ? ": " : "", why ? why : "");
    for (size_t i = 0; i < d->n; i++) {
        const struct drain_vm *v = &d->vms[i];
        if (v->name[0])
            fprintf(stderr, "  vm/%s: %s\n", v->name,
                    v->failure ? v->failure : v->last ? v->last : "not moved yet");
    }
}

int vf_cmd_drain(struct vf_cli *cli, int argc, char **args)
{
    if (argc != 1) {
        fprintf(stderr, "error: name one node, e.g. virtfleet drain node-1\n");
        return VF_EXIT_USAGE;
    }
    struct drain d = {.cli = cli, .node = args[0], .selector = cli->selector};
    if (d.selector && !strcmp(d.selector, SEEDS_VM_POD_LABEL))
        d.selector = NULL;
    long limit_s = cli->timeout_given ? cli->timeout : 0;
    struct sigaction sa = {.sa_handler = on_sigint}, old;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);

    int status = cordon(&d);
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (bool first = true; !status; first = false) {
        int s = step(&d, first);
        if (s >= 10) {
            status = s - 10;
            break;
        }
        if (s == 0) {
            printf("node/%s drained\n", d.node);
            break;
        }
        if (s == 1) {
            report(&d, "these VMs cannot be moved");
            status = VF_EXIT_ERROR;
            break;
        }
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (limit_s && now.tv_sec - start.tv_sec >= limit_s) {
            report(&d, "timed out");
            status = VF_EXIT_ERROR;
            break;
        }
        fflush(stdout);
        if (!interrupted)
            usleep(POLL_MS * 1000);
        if (interrupted) {
            fprintf(stderr, "drain of node %s interrupted: it stays cordoned and the evictions "
                    "already asked for go on; `virtfleet uncordon %s` ends maintenance and "
                    "cancels those not yet started\n", d.node, d.node);
            status = VF_EXIT_ERROR;
            break;
        }
    }
    sigaction(SIGINT, &old, NULL);
    for (size_t i = 0; i < d.n; i++) {
        free(d.vms[i].name);
        free(d.vms[i].op);
        free(d.vms[i].last);
        free(d.vms[i].failure);
    }
    free(d.vms);
    return status;
}
