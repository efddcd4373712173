/* Routes modules register under /apis/GROUP/VER/modules/MODULE/ (struct
 * vf_core.route_add): the table of them and the dispatch of a request to the
 * longest matching prefix.  Loop thread only. */
#include <config.h> /* autoconf's; core/config.h is the daemon's configuration */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "api_internal.h"
#include "kinds.h"
#include "log.h"

struct api_route {
    struct api_route *next;
    struct vf_module_ctx *owner;
    char *module;
    char *method;
    char *prefix;               /* without a leading '/' */
    vf_route_fn fn;
    void *opaque;
};
static struct api_route *api_routes;

static bool api_route_matches(const struct api_route *rt, const char *rest)
{
    size_t len = strlen(rt->prefix);

    if (strncmp(rest, rt->prefix, len))
        return false;
    /* Whole path segments only: prefix "vm" must not catch "vms". */
    return len == 0 || rt->prefix[len - 1] == '/' || rest[len] == '\0' || rest[len] == '/';
}

static const char *api_route_query(const struct vf_request *req, const char *key)
{
    const struct api_op *op = req->internal;
    struct json_object *v;

    if (!op->query || !json_object_object_get_ex(op->query, key, &v))
        return NULL;
    return json_object_get_string(v);
}

void api_op_route(struct api_op *op)
{
    const struct api_route *best = NULL;
    struct json_object *response = NULL;
    struct vf_error err = { 0 };
    struct vf_request req;
    char allow[128] = "";
    bool found = false;
    int r;

    for (const struct api_route *rt = api_routes; rt; rt = rt->next) {
        if (strcmp(rt->module, op->module) || !api_route_matches(rt, op->rest))
            continue;
        found = true;
        if (!strcmp(rt->method, op->method) ||
            (!strcmp(op->method, "HEAD") && !strcmp(rt->method, "GET"))) {
            if (!best || strlen(rt->prefix) > strlen(best->prefix))
                best = rt;
        } else if (!strstr(allow, rt->method)) {
            size_t used = strlen(allow);
            snprintf(allow + used, sizeof allow - used, "%s%s", used ? ", " : "", rt->method);
        }
    }
    if (!best && found) {
        op->reply.allow = strdup(allow);
        api_reply_errorf(&op->reply, 405, "MethodNotAllowed", "",
                         "%s is not allowed on %s; allowed: %s", op->method, op->path, allow);
        return;
    }
    if (!best) {
        api_reply_errorf(&op->reply, 404, "NotFound", "", "no such path: %s", op->path);
        return;
    }
    req = (struct vf_request){
        .method = op->method,
        .path = op->path,
        .path_rest = op->rest + strlen(best->prefix),
        .query = api_route_query,
        .body = op->body,
        .peer_uid = op->actor.uid,
        .peer_gid = op->actor.gid,
        .peer_pid = op->actor.pid,
        .internal = op,
    };
    r = best->fn(best->opaque, &req, &response, &err);
    if (r < 0) {
        json_object_put(response);
        if (err.status == 0)
            vf_error_set(&err, r, 500, "InternalError", "", "module %s: %s %s failed: %s",
                         best->module, op->method, op->path, strerror(-r));
        api_reply_error(&op->reply, r, &err);
        return;
    }
    if (r != 0 && (r < 100 || r > 599)) {
        json_object_put(response);
        api_reply_errorf(&op->reply, 500, "InternalError", "",
                         "module %s: route %s answered with HTTP status %d", best->module,
                         op->path, r);
        return;
    }
    api_reply_json(&op->reply, r ? (unsigned)r : 200,
                   response ? response : json_object_new_object());
}

int vf_api_route_add(struct vf_module_ctx *owner, const char *module_name, const char *method,
                     const char *prefix, vf_route_fn fn, void *opaque)
{
    struct api_route *rt;

    if (!module_name || !vf_is_dns_label(module_name) || !method || !method[0] || !fn) {
        vf_log_error("api: route of module \"%s\": module name, method and handler are required",
                     module_name ? module_name : "");
        return -EINVAL;
    }
    for (const char *c = method; *c; c++) {
        if (*c < 'A' || *c > 'Z') {
            vf_log_error("api: route of module %s: method \"%s\" is not an upper-case HTTP "
                         "method", module_name, method);
            return -EINVAL;
        }
    }
    if (!prefix)
        prefix = "";
    while (*prefix == '/')
        prefix++;
    for (rt = api_routes; rt; rt = rt->next) {
        if (!strcmp(rt->module, module_name) && !strcmp(rt->method, method) &&
            !strcmp(rt->prefix, prefix)) {
            vf_log_error("api: route %s /modules/%s/%s is already registered", method,
                         module_name, prefix);
            return -EEXIST;
        }
    }
    rt = calloc(1, sizeof *rt);
    if (!rt || !(rt->module = strdup(module_name)) || !(rt->method = strdup(method)) ||
        !(rt->prefix = strdup(prefix))) {
        if (rt) {
            free(rt->module);
            free(rt->method);
            free(rt);
        }
        vf_log_error("api: route %s /modules/%s/%s: out of memory", method, module_name, prefix);
        return -ENOMEM;
    }
    rt->owner = owner;
    rt->fn = fn;
    rt->opaque = opaque;
    rt->next = api_routes;
    api_routes = rt;
    return 0;
}

void vf_api_routes_remove_owner(struct vf_module_ctx *owner)
{
    struct api_route **pp = &api_routes;

    while (*pp) {
        struct api_route *rt = *pp;
        if (rt->owner == owner) {
            *pp = rt->next;
            free(rt->module);
            free(rt->method);
            free(rt->prefix);
            free(rt);
        } else {
            pp = &rt->next;
        }
    }
}
