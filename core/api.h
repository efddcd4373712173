/* The REST/JSON API on a unix socket, served by libmicrohttpd.
 *
 * Paths (GROUP is virtfleet.io or virtualization.deckhouse.io, VER v1alpha2):
 *   GET    /version, /healthz
 *   GET    /apis/GROUP/VER                      discovery: the registered kinds
 *   GET    /apis/GROUP/VER/modules              the modules and their state
 *   GET    /apis/GROUP/VER/PLURAL               list (?labelSelector=k=v,k!=v,k)
 *   GET    /apis/GROUP/VER/PLURAL?watch=1[&resourceVersion=N]   JSON lines
 *   POST   /apis/GROUP/VER/PLURAL               create (201)
 *   GET    /apis/GROUP/VER/PLURAL/NAME
 *   PUT    /apis/GROUP/VER/PLURAL/NAME          replace (409 on stale resourceVersion)
 *   PATCH  /apis/GROUP/VER/PLURAL/NAME          JSON merge patch
 *   PUT    /apis/GROUP/VER/PLURAL/NAME/status   replace status
 *   DELETE /apis/GROUP/VER/PLURAL/NAME
 *   ANY    /apis/GROUP/VER/modules/MODULE/...   routes registered by modules
 * Errors: {"error":{"code":N,"reason":"...","message":"...","field":"..."}}.
 *
 * Each connection runs on its own libmicrohttpd thread; everything that touches
 * objects is handed to the loop thread with vf_loop_call().  Watches stream from
 * a per-connection queue that the loop thread fills. */
#ifndef VF_API_H
#define VF_API_H
#include <stddef.h>
#include <sys/types.h>
#include <virtfleet/module.h>

struct vf_api_options {
    const char *socket_path;
    mode_t socket_mode;         /* e.g. 0660 */
    gid_t socket_gid;           /* (gid_t)-1: leave the group alone */
    size_t max_body;            /* bytes; 0: default 4 MiB */
    unsigned max_connections;   /* 0: default 256 */
};

int vf_api_start(const struct vf_api_options *opts, struct vf_error *err);
/* Closes the socket, ends watches, waits for requests in flight. */
void vf_api_stop(void);

/* Loop thread: routes registered by modules (see struct vf_core.route_add). */
int vf_api_route_add(struct vf_module_ctx *owner, const char *module_name, const char *method,
                     const char *prefix, vf_route_fn fn, void *opaque);
void vf_api_routes_remove_owner(struct vf_module_ctx *owner);

/* Decoding of request bodies, bounded: at most max_depth nesting, max_members
 * members per object/array and the body size the server already enforced.
 * Returns the object (new reference) or NULL with *err filled (400). */
struct json_object *vf_api_parse_body(const char *data, size_t len, struct vf_error *err);
#endif
