/* The gates of the nodes' shared connections: one thread at a time waits on
 * each (libvirt 9.0 crashes the process when two threads wait on one
 * connection whose node hangs past the keepalive; see
 * <virtfleet/node_connection.h>).  Workers take a connection's gate around
 * their calls on it; the SDK hands the same pair to modules
 * (node_gate_enter/leave), so the core's calls and every module's share it. */
#ifndef VF_NODE_GATE_H
#define VF_NODE_GATE_H

void vf_node_gate_enter(void *conn);
void vf_node_gate_leave(void *conn);
#endif
