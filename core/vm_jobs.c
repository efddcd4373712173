/* The VM controller's libvirt work: every call on a node's connection (a
 * round trip to a remote libvirtd, or seconds for virDomainCreate) runs here
 * on a worker, never on the loop.  A job reports what it did and the state it
 * left the domain in; the controller decides what that means, on the loop.
 *
 * The jobs form one group of workers.h: vf_vm_jobs_drop_all() (the controller
 * stopping) lets go of them all, so a result that arrives later is dropped
 * without touching freed state.
 *
 * A VM on a libvirt network has a DHCP host entry there (vm_network.h) for as
 * long as its domain is defined on the node: START writes it before defining
 * the domain, and whatever undefines the domain (CLEANUP) removes the entries
 * of the networks the domain's own XML names, so that a reload that changed
 * the network still cleans up the old one. */
#include <config.h>
#include "vms_internal.h"
#include "domain_xml.h"
#include "log.h"
#include "loop.h"
#include "node_gate.h"
#include "vm_network.h"
#include "workers.h"
#include "xml_query.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

static void job_release(void *opaque)
{
    vf_vm_job_free(opaque);
}

static struct vf_job_group vm_jobs = {.name = "vm", .release = job_release};

const char *vf_dom_state_name(enum vf_dom_state s)
{
    switch (s) {
    case VF_DOM_ABSENT: return "absent";
    case VF_DOM_INACTIVE: return "shut off";
    case VF_DOM_ACTIVE: return "running";
    default: return "unknown";
    }
}

struct vf_vm_job *vf_vm_job_new(enum vf_vm_job_type type, const char *node, const char *vm,
                                const char *uuid)
{
    struct vf_vm_job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->type = type;
    j->node = strdup(node);
    j->vm = vm ? strdup(vm) : NULL;
    snprintf(j->uuid, sizeof j->uuid, "%s", uuid ? uuid : "");
    if (!j->node || (vm && !j->vm)) {
        vf_vm_job_free(j);
        return NULL;
    }
    return j;
}

int vf_vm_job_set_net(struct vf_vm_job *j, const char *network, const char *mac, const char *ip)
{
    free(j->network);
    j->network = network ? strdup(network) : NULL;
    snprintf(j->mac, sizeof j->mac, "%s", mac ? mac : "");
    snprintf(j->ip, sizeof j->ip, "%s", ip ? ip : "");
    return network && !j->network ? -ENOMEM : 0;
}

void vf_vm_job_free(struct vf_vm_job *j)
{
    if (!j)
        return;
    if (j->conn)
        virConnectClose(j->conn);
    if (j->peer)
        virConnectClose(j->peer);
    free(j->network);
    free(j->node);
    free(j->vm);
    free(j->xml);
    free(j->domains);
    free(j);
}

/* ---- worker side ---------------------------------------------------------- */

static void job_fail(struct vf_vm_job *j, int rc, const char *what)
{
    const char *msg = virGetLastErrorMessage();
    snprintf(j->error, sizeof j->error, "%s: %s", what, msg ? msg : "unknown error");
    virResetLastError();
    j->rc = rc;
}

static enum vf_dom_state dom_state(virDomainPtr dom)
{
    int active = virDomainIsActive(dom);
    if (active < 0) {
        virResetLastError();
        return VF_DOM_UNKNOWN;
    }
    return active ? VF_DOM_ACTIVE : VF_DOM_INACTIVE;
}

/* The VM's domain, or NULL: absent (state ABSENT, rc 0) or an error. */
static virDomainPtr lookup(struct vf_vm_job *j)
{
    virDomainPtr dom = virDomainLookupByUUIDString(j->conn, j->uuid);
    if (dom) {
        j->state = dom_state(dom);
        return dom;
    }
    if (virGetLastErrorCode() == VIR_ERR_NO_DOMAIN) {
        virResetLastError();
        j->state = VF_DOM_ABSENT;
    } else {
        job_fail(j, -EIO, "looking up the domain failed");
        j->state = VF_DOM_UNKNOWN;
    }
    return NULL;
}

/* A CPU that libvirt can run as a KVM guest says so in its capabilities:
 * <guest><arch><domain type='kvm'/> (unreadable ones: plain QEMU). */
static void read_domain_type(struct vf_vm_job *j)
{
    const char *type = virConnectGetType(j->conn);
    if (type && !strcasecmp(type, "TEST")) {
        snprintf(j->domain_type, sizeof j->domain_type, "test");
        return;
    }
    char *caps = virConnectGetCapabilities(j->conn);
    struct vf_xml x;
    bool kvm = vf_xml_parse(&x, caps) == 0 &&
               vf_xml_count(&x, NULL, "/capabilities/guest/arch/domain[@type='kvm']") > 0;
    vf_xml_free(&x);
    free(caps);
    virResetLastError();
    snprintf(j->domain_type, sizeof j->domain_type, "%s", kvm ? "kvm" : "qemu");
}

static void scan_work(struct vf_vm_job *j)
{
    virDomainPtr *doms = NULL;
    int n = virConnectListAllDomains(j->conn, &doms, 0);
    if (n < 0) {
        job_fail(j, -EIO, "listing domains failed");
        return;
    }
    j->domains = calloc((size_t)n + 1, sizeof *j->domains);
    for (int i = 0; i < n; i++) {
        if (j->domains) {
            struct vf_vm_domain *d = &j->domains[j->n_domains];
            const char *name = virDomainGetName(doms[i]);
            snprintf(d->name, sizeof d->name, "%s", name ? name : "");
            if (virDomainGetUUIDString(doms[i], d->uuid) < 0)
                d->uuid[0] = '\0';
            d->state = dom_state(doms[i]);
            char *xml = virDomainGetXMLDesc(doms[i], 0);
            if (!xml || vf_domain_xml_vm_uid(xml, d->vm_uid, sizeof d->vm_uid) < 0)
                d->vm_uid[0] = '\0';
            free(xml);
            virResetLastError();
            j->n_domains++;
        }
        virDomainFree(doms[i]);
    }
    free(doms);
    if (!j->domains) {
        snprintf(j->error, sizeof j->error, "listing domains: out of memory");
        j->rc = -ENOMEM;
        return;
    }
    read_domain_type(j);
    j->rc = 0;
}

/* ---- network interfaces ------------------------------------------------------ */

#define NICS_MAX 4

/* The networks dom's XML attaches it to; 0 when none (or unreadable). */
static size_t domain_nics(virDomainPtr dom, struct vf_vm_nic *nics)
{
    char *xml = dom ? virDomainGetXMLDesc(dom, 0) : NULL;
    size_t n = xml ? vf_vm_network_nics(xml, nics, NICS_MAX) : 0;
    free(xml);
    virResetLastError();
    return n;
}

/* Best effort: the entry goes with the definition it belongs to, and a
 * network gone from the node must not keep a VM from being deleted. */
static void nics_remove(struct vf_vm_job *j, virConnectPtr conn, const char *node,
                        const struct vf_vm_nic *nics, size_t n)
{
    char msg[VF_VM_ERROR_MAX];
    for (size_t i = 0; i < n; i++)
        if (vf_vm_network_remove(conn, nics[i].network, nics[i].mac, j->vm,
                                 j->ip[0] ? j->ip : NULL, msg, sizeof msg) < 0)
            vf_log_warn("vm \"%s\": node \"%s\": removing its DHCP host entry failed: %s",
                        j->vm, node, msg);
}

/* START: the entry that hands the VM its address, before its domain exists. */
static int start_net(struct vf_vm_job *j, virDomainPtr old)
{
    if (old) {
        /* An inactive definition from before a reload may name another network. */
        struct vf_vm_nic nics[NICS_MAX];
        size_t n = domain_nics(old, nics), keep = 0;
        for (size_t i = 0; i < n; i++)
            if (!j->network || strcmp(nics[i].network, j->network))
                nics[keep++] = nics[i];
        nics_remove(j, j->conn, j->node, nics, keep);
    }
    if (!j->network || !j->ip[0])
        return 0;
    char msg[VF_VM_ERROR_MAX - 32];
    int rc = vf_vm_network_add(j->conn, j->network, j->mac[0] ? j->mac : NULL, j->vm, j->ip, msg,
                               sizeof msg);
    if (rc < 0) {
        snprintf(j->error, sizeof j->error, "%s", msg);
        j->rc = rc;
    }
    return rc;
}

static void start_work(struct vf_vm_job *j)
{
    virDomainPtr dom = lookup(j);
    if (j->rc < 0)
        return;
    if (j->state == VF_DOM_ACTIVE) {
        virDomainFree(dom);   /* already running: never start twice */
        return;
    }
    int rc = start_net(j, dom);
    /* Defining again replaces an inactive definition: the domain then starts
     * from the current spec. */
    if (dom)
        virDomainFree(dom);
    if (rc < 0)
        return;
    dom = virDomainDefineXML(j->conn, j->xml);
    if (!dom) {
        job_fail(j, -EINVAL, "defining the domain failed");
        if (j->network && j->ip[0]) {
            struct vf_vm_nic nic;
            memset(&nic, 0, sizeof nic);
            snprintf(nic.network, sizeof nic.network, "%s", j->network);
            snprintf(nic.mac, sizeof nic.mac, "%s", j->mac);
            nics_remove(j, j->conn, j->node, &nic, 1);
        }
        return;
    }
    j->state = VF_DOM_INACTIVE;
    if (virDomainCreate(dom) < 0) {
        job_fail(j, -EIO, "starting the domain failed");
        j->state = dom_state(dom);
    } else {
        j->state = VF_DOM_ACTIVE;
    }
    virDomainFree(dom);
}

static void stop_work(struct vf_vm_job *j)
{
    virDomainPtr dom = lookup(j);
    if (!dom)
        return;
    if (j->state == VF_DOM_ACTIVE) {
        if (j->force) {
            if (virDomainDestroy(dom) < 0)
                job_fail(j, -EIO, "destroying the domain failed");
        } else if (virDomainShutdown(dom) < 0) {
            job_fail(j, -EIO, "asking the guest to shut down failed");
        } else {
            j->shutdown_sent = true;
        }
        j->state = dom_state(dom);
        if (j->state != VF_DOM_ACTIVE)
            j->shutdown_sent = false;
    }
    virDomainFree(dom);
}

static void cleanup_work(struct vf_vm_job *j)
{
    virDomainPtr dom = lookup(j);
    if (!dom)
        return;
    struct vf_vm_nic nics[NICS_MAX];
    size_t n_nics = domain_nics(dom, nics);
    if (j->state == VF_DOM_ACTIVE && virDomainDestroy(dom) < 0) {
        job_fail(j, -EIO, "destroying the domain failed");
        j->state = dom_state(dom);
        virDomainFree(dom);
        return;
    }
    /* Whatever libvirt keeps beside the definition goes with it; drivers that
     * know none of these flags take the plain call. */
    unsigned flags = VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
                     VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA | VIR_DOMAIN_UNDEFINE_NVRAM;
    int rc = virDomainUndefineFlags(dom, flags);
    if (rc < 0 && (virGetLastErrorCode() == VIR_ERR_NO_SUPPORT ||
                   virGetLastErrorCode() == VIR_ERR_INVALID_ARG)) {
        virResetLastError();
        rc = virDomainUndefine(dom);
    }
    if (rc < 0) {
        job_fail(j, -EIO, "undefining the domain failed");
        j->state = dom_state(dom);
    } else {
        j->state = VF_DOM_ABSENT;
        nics_remove(j, j->conn, j->node, nics, n_nics);
    }
    virDomainFree(dom);
}

/* Migration: the networks come from the VM's domain on the peer node (where
 * it runs), else from one still defined here, else from the caller. */
static void net_work(struct vf_vm_job *j)
{
    struct vf_vm_nic nics[NICS_MAX];
    size_t n = 0;
    virConnectPtr where[2] = {j->peer, j->conn};
    for (int k = 0; k < 2 && !n; k++) {
        vf_node_gate_enter(where[k]);
        virDomainPtr dom = where[k] ? virDomainLookupByUUIDString(where[k], j->uuid) : NULL;
        virResetLastError();
        if (dom) {
            n = domain_nics(dom, nics);
            virDomainFree(dom);
        }
        vf_node_gate_leave(where[k]);
    }
    if (!n && j->network && j->mac[0]) {
        snprintf(nics[0].network, sizeof nics[0].network, "%s", j->network);
        snprintf(nics[0].mac, sizeof nics[0].mac, "%s", j->mac);
        n = 1;
    }
    vf_node_gate_enter(j->conn);
    if (j->type == VF_VM_JOB_NET_REMOVE)
        nics_remove(j, j->conn, j->node, nics, n);
    for (size_t i = 0; j->type == VF_VM_JOB_NET_ADD && i < n && j->ip[0]; i++) {
        char msg[VF_VM_ERROR_MAX - 32];
        int rc = vf_vm_network_add(j->conn, nics[i].network, nics[i].mac, j->vm, j->ip, msg,
                                   sizeof msg);
        if (rc < 0) {
            snprintf(j->error, sizeof j->error, "%s", msg);
            j->rc = rc;
        }
    }
    vf_node_gate_leave(j->conn);
}

static void probe_work(struct vf_vm_job *j)
{
    virDomainPtr dom = lookup(j);
    if (dom)
        virDomainFree(dom);
}

/* Every call on the node's shared connection inside its gate (node_gate.h);
 * a migration's network job reads the peer first, in the peer's gate. */
static void job_run(void *opaque)
{
    struct vf_vm_job *j = opaque;
    if (j->type == VF_VM_JOB_NET_ADD || j->type == VF_VM_JOB_NET_REMOVE) {
        net_work(j);
        return;
    }
    vf_node_gate_enter(j->conn);
    switch (j->type) {
    case VF_VM_JOB_SCAN: scan_work(j); break;
    case VF_VM_JOB_START: start_work(j); break;
    case VF_VM_JOB_STOP: stop_work(j); break;
    case VF_VM_JOB_CLEANUP: cleanup_work(j); break;
    case VF_VM_JOB_PROBE: probe_work(j); break;
    case VF_VM_JOB_NET_ADD:
    case VF_VM_JOB_NET_REMOVE: break;
    }
    vf_node_gate_leave(j->conn);
}

/* ---- loop side ---------------------------------------------------------------- */

static void job_done(void *opaque)
{
    struct vf_vm_job *j = opaque;
    if (j->done)
        j->done(j);
}

int vf_vm_job_submit(struct vf_vm_job *j, void *conn, const char *what)
{
    if (!conn) {
        vf_vm_job_free(j);
        return -ENOTCONN;
    }
    virConnectRef(conn);
    j->conn = conn;
    return vf_job_group_submit(&vm_jobs, what, job_run, job_done, j);
}

void vf_vm_jobs_drop_all(void)
{
    vf_job_group_drop_all(&vm_jobs);
}
