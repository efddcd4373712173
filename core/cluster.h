/* The cluster: one libvirt connection per configured node, kept alive and
 * reconnected with backoff, published as Node objects whose status says
 * whether the node is Ready, its capacity and CPU.  Loop thread only, except
 * where noted. */
#ifndef VF_CLUSTER_H
#define VF_CLUSTER_H
#include <stddef.h>
#include <stdint.h>
#include "config.h"

/* Register the Node kind's controller state (a watch on Node objects for
 * spec.unschedulable, the heartbeat timer).  Once, after the store is set and
 * vf_loop_init(); vf_cluster_apply() calls it when it was not. */
int vf_cluster_init(void);
/* Make the set of nodes match cfg->nodes: new nodes connect, removed ones
 * disconnect (their Node objects are deleted), changed URIs reconnect, labels
 * are copied into the Node objects' metadata.labels (replacing what the API
 * set: the config wins).  Node objects of nodes not in cfg are deleted. */
void vf_cluster_apply(const struct vf_config *cfg);
/* Disconnect everything (shutdown).  Before the store closes (it removes a
 * watch); results of jobs still in flight are dropped safely, and a job still
 * running frees itself on its worker (vf_workers_stop() waits for it).  Node
 * statuses are left as they are: the next start marks them Connecting. */
void vf_cluster_stop(void);
/* The connection (a virConnectPtr) of a node that is Ready, else NULL.  Borrowed. */
void *vf_cluster_connection(const char *node);

/* What VMs reserve on a node (placement's accounting: cores x coreFraction,
 * memory, VMs placed there or migrating to or from it), shown in the Node's
 * status.reserved.  The VM controller reports it; a change is written at once. */
struct vf_cluster_reserved {
    int64_t cpu_millis;
    int64_t memory_bytes;
    int64_t vms;
};
void vf_cluster_node_reserved(const char *node, const struct vf_cluster_reserved *reserved);

/* Listeners: how controllers learn that a node's connection came up or went
 * away and what libvirt says about domains (lifecycle events, registered on
 * every connection as it comes up).  All callbacks run on the loop thread.
 * node_up: the node just became Ready (its Node status already says so);
 * `conn` is the virConnectPtr, borrowed like vf_cluster_connection().
 * node_down: the node's connection is gone (lost, failed probe, reconfigured,
 * removed or the cluster stopping).  domain_event: a VIR_DOMAIN_EVENT_ID_LIFECYCLE
 * event (virDomainEventType and its detail) from a Ready node.  Any callback
 * may be NULL.  The listener is kept by pointer: it must stay valid until
 * vf_cluster_unlisten(). */
struct vf_cluster_listener {
    void (*node_up)(void *opaque, const char *node, void *conn);
    void (*node_down)(void *opaque, const char *node);
    void (*domain_event)(void *opaque, const char *node, const char *domain_name,
                         const unsigned char uuid[16], int event, int detail);
    void *opaque;
};
/* Loop thread.  Calls node_up at once for every node already Ready, so a
 * controller started late misses nothing.  -ENOSPC when too many listen. */
int vf_cluster_listen(const struct vf_cluster_listener *l);
/* Loop thread; safe from inside a listener callback. */
void vf_cluster_unlisten(const struct vf_cluster_listener *l);

/* The heartbeat interval in milliseconds (default 10000).  Tests shorten it;
 * takes effect at once.  A status whose only change is its heartbeat time is
 * written at most every 6 intervals (60 s by default) to keep writes cheap. */
void vf_cluster_set_heartbeat_ms(int ms);
/* For tests: a node's consecutive connection failures and the delay of its
 * pending reconnect attempt in ms (0 when none is pending).  -ENOENT when the
 * node is not configured. */
int vf_cluster_node_backoff(const char *node, unsigned *failures, int *delay_ms);
/* For tests: the heartbeat's own connection of a Ready node (a virConnectPtr,
 * borrowed), else NULL. */
void *vf_cluster_heartbeat_connection(const char *node);
/* For tests: what libvirt's close callback of a Ready node's shared
 * (heartbeat false) or heartbeat connection does when the node drops it, with
 * `reason` a virConnectCloseReason (the test driver never closes).  -ENOENT
 * when the node is not Ready. */
int vf_cluster_connection_closed(const char *node, bool heartbeat, int reason);
/* The host CPU model in a capabilities document (<host><cpu><model>), copied
 * into buf.  Exposed for tests and fuzzing: the document comes from the node.
 * 0, -ENOENT when absent, -EINVAL when malformed, -ERANGE when too long. */
int vf_cluster_caps_cpu_model(const char *caps, char *buf, size_t len);
#endif
