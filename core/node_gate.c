/* Striped by the connection's address: no registration, no table to keep
 * in step with the nodes.  Two connections may share a stripe, which only
 * makes one wait for the other's call (at worst the keepalive, about 15 s,
 * when that node hangs); 256 stripes make that rare. */
#include <config.h>
#include <pthread.h>
#include <stdint.h>
#include "node_gate.h"

#define STRIPES 256

static pthread_mutex_t stripes[STRIPES] = {[0 ... STRIPES - 1] = PTHREAD_MUTEX_INITIALIZER};

static pthread_mutex_t *stripe_of(const void *conn)
{
    uintptr_t a = (uintptr_t)conn;
    return &stripes[(a >> 4 ^ a >> 12) % STRIPES];
}

void vf_node_gate_enter(void *conn)
{
    if (conn)
        pthread_mutex_lock(stripe_of(conn));
}

void vf_node_gate_leave(void *conn)
{
    if (conn)
        pthread_mutex_unlock(stripe_of(conn));
}
