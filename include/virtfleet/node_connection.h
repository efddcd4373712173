/*
 * virtfleet module SDK: a libvirt connection of a module's own to a node.
 *
 * core->node_connection() hands out the node's shared connection, the one the
 * core and every module make their short calls on.  A call that waits on a
 * node for long (a volume stream, a migration) runs instead on a connection
 * of its own, opened with vf_node_connection_open_own() on the thread that
 * makes the call and closed there when it is done (virConnectClose talks to
 * the node too).  Include it next to <virtfleet/module.h>; it needs libvirt
 * (`pkg-config --cflags --libs libvirt`).
 *
 * Why: libvirt 9.0's RPC client crashes the process when two threads wait on
 * one connection whose node hangs.  A thread waiting for the socket attaches
 * a watch, whose data sits in its stack frame, to the connection's event
 * context and never detaches it when its wait is ended by another thread (a
 * second caller queueing behind it, a keepalive ping or close).  When it
 * gives up and hands the socket to the thread queued behind it, that thread's
 * wait dispatches the stale watch once the socket is ready and reads the
 * first one's dead frame (SIGSEGV in virNetClientIOEventFD).  A node's
 * libvirtd stopped during a copy on the shared connection did exactly that:
 * the copy blocked, the core's heartbeat queued behind it, the keepalive
 * closed the connection, and the daemon crashed when libvirtd was resumed.
 * On a connection of its own only one thread waits, so no watch is left for
 * another, and nothing queues behind a long call for its whole length.
 * Short calls stay on the shared connection, each inside its gate
 * (core->node_gate_enter/node_gate_leave, SDK 1.2): one thread at a time
 * waits there too.
 *
 * The keepalive is the core's (a silent node is dead after about
 * VF_NODE_KEEPALIVE_INTERVAL_S * VF_NODE_KEEPALIVE_COUNT seconds): a call to
 * a hung node fails instead of holding its thread for as long as the node
 * hangs, and every later call on that connection fails at once ("client
 * socket is closed").
 */
#ifndef VIRTFLEET_NODE_CONNECTION_H
#define VIRTFLEET_NODE_CONNECTION_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#ifdef __cplusplus
extern "C" {
#endif

/* libvirt's keepalive on every connection to a node, the core's included. */
#define VF_NODE_KEEPALIVE_INTERVAL_S 5 /* seconds between pings of a silent peer */
#define VF_NODE_KEEPALIVE_COUNT 3      /* unanswered pings before the connection is closed */

/* A new connection to the node `shared` is connected to (same URI, read
 * without a call to the node), with the core's keepalive; a driver without
 * keepalive (test:///) has no node to lose and is returned as it is.  The
 * caller owns it: virConnectClose() it, off the loop thread as well.
 *
 * virConnectOpen may block for as long as the node takes to answer: call it
 * on a worker or a thread of the caller's own, never on the loop thread.
 *
 * NULL on failure, with err (err_len bytes) saying what failed, naming the URI
 * and libvirt's error; libvirt's last error is left set (virGetLastErrorCode()
 * tells a refused connection from an unsupported one). */
static inline virConnectPtr vf_node_connection_open_own(virConnectPtr shared, char *err,
                                                        size_t err_len)
{
    const char *msg;
    char *uri;
    virConnectPtr own;
    if (!shared) {
        snprintf(err, err_len, "the node is not connected");
        return NULL;
    }
    uri = virConnectGetURI(shared);
    if (!uri) {
        msg = virGetLastErrorMessage();
        snprintf(err, err_len, "the URI of the node's connection: %s",
                 msg && *msg ? msg : "unknown libvirt error");
        return NULL;
    }
    own = virConnectOpen(uri);
    if (!own) {
        msg = virGetLastErrorMessage();
        snprintf(err, err_len, "connecting to \"%s\": %s", uri,
                 msg && *msg ? msg : "unknown libvirt error");
    } else if (virConnectSetKeepAlive(own, VF_NODE_KEEPALIVE_INTERVAL_S,
                                      VF_NODE_KEEPALIVE_COUNT) < 0) {
        virResetLastError();
    }
    free(uri);
    return own;
}

#ifdef __cplusplus
}
#endif

#endif /* VIRTFLEET_NODE_CONNECTION_H */
