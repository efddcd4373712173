/* The API's operations on objects, run on the loop thread: discovery, the
 * modules' state, list, get and the writes (create, replace, merge patch,
 * status, delete), each audited.  Watches are in api_watch.c, module routes in
 * api_routes.c.  Every operation answers in op->reply, serialized to text here
 * because json-c objects from the store are not safe to print from two threads. */
#include <config.h> /* autoconf's; core/config.h is the daemon's configuration */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "audit.h"
#include "kinds.h"
#include "modules.h"
#include "objects.h"

#define API_LIST_API_VERSION VF_API_GROUP "/" VF_API_VERSION

/* The canonical kind name ("VirtualMachine") for any accepted spelling. */
static const char *api_kind_name(const char *any)
{
    const struct vf_kind_entry *e = vf_kinds_lookup(any);
    return e ? e->kind->kind : any;
}

static void api_audit(const struct api_op *op, const char *type, const struct json_object *obj)
{
    struct json_object *details = json_object_new_object(), *meta = NULL, *v;

    json_object_object_add(details, "kind", json_object_new_string(api_kind_name(op->kind)));
    if (obj && json_object_object_get_ex(obj, "metadata", &meta)) {
        if (json_object_object_get_ex(meta, "name", &v))
            json_object_object_add(details, "name", json_object_get(v));
        if (json_object_object_get_ex(meta, "uid", &v))
            json_object_object_add(details, "uid", json_object_get(v));
        if (json_object_object_get_ex(meta, "resourceVersion", &v))
            json_object_object_add(details, "resourceVersion", json_object_get(v));
    } else if (op->name) {
        json_object_object_add(details, "name", json_object_new_string(op->name));
    }
    vf_audit_emit(NULL, &op->actor, type, details);
    json_object_put(details);
}

static void op_discovery(struct api_op *op)
{
    struct json_object *res = json_object_new_array(), *top = json_object_new_object();
    const struct vf_kind_entry *e;

    for (unsigned i = 0; (e = vf_kinds_at(i)) != NULL; i++) {
        const struct vf_kind *k = e->kind;
        struct json_object *o = json_object_new_object(), *shorts = json_object_new_array(),
                           *cols = json_object_new_array();

        json_object_object_add(o, "kind", json_object_new_string(k->kind));
        json_object_object_add(o, "plural", json_object_new_string(k->plural ? k->plural : ""));
        json_object_object_add(o, "singular",
                               json_object_new_string(k->singular ? k->singular : ""));
        if (k->short_name)
            json_object_array_add(shorts, json_object_new_string(k->short_name));
        json_object_object_add(o, "shortNames", shorts);
        for (const char *const *c = k->columns; c && c[0] && c[1]; c += 2) {
            struct json_object *pair = json_object_new_array();
            json_object_array_add(pair, json_object_new_string(c[0]));
            json_object_array_add(pair, json_object_new_string(c[1]));
            json_object_array_add(cols, pair);
        }
        json_object_object_add(o, "columns", cols);
        json_object_array_add(res, o);
    }
    json_object_object_add(top, "resources", res);
    api_reply_json(&op->reply, 200, top);
}

static void op_modules(struct api_op *op)
{
    struct json_object *top = json_object_new_object(), *items = vf_modules_status();

    json_object_object_add(top, "items", items ? items : json_object_new_array());
    api_reply_json(&op->reply, 200, top);
}

/* Without a selector the stored texts are the items as they are: splice them
 * into the list instead of parsing and re-serialising every object. */
static void op_list_unfiltered(struct api_op *op)
{
    struct vf_error err = { 0 };
    const char *kind = NULL;
    char *items = NULL, *body = NULL;
    size_t len = 0;
    int64_t rev = 0;
    int r = vf_objects_list_text(op->kind, &items, &len, &rev, &kind, &err);

    if (r < 0) {
        api_reply_error(&op->reply, r, &err);
        return;
    }
    if (asprintf(&body, "{\"apiVersion\":\"%s\",\"kind\":\"%sList\",\"metadata\":"
                 "{\"resourceVersion\":\"%" PRId64 "\"},\"items\":[%s]}",
                 API_LIST_API_VERSION, kind, rev, items) < 0)
        body = NULL;
    free(items);
    op->reply.status = 200;
    free(op->reply.body);
    op->reply.body = body;
}

static void op_list(struct api_op *op)
{
    if (!op->sel) {
        op_list_unfiltered(op);
        return;
    }
    struct vf_error err = { 0 };
    struct json_object *items = NULL, *top, *meta, *kept;
    int64_t rev = 0;
    char kind[160], rv[24];
    int r = vf_objects_list(op->kind, &items, &rev, &err);

    if (r < 0) {
        api_reply_error(&op->reply, r, &err);
        return;
    }
    kept = json_object_new_array();
    for (size_t i = 0, n = json_object_array_length(items); i < n; i++) {
        struct json_object *o = json_object_array_get_idx(items, i);
        if (api_selector_match(op->sel, o))
            json_object_array_add(kept, json_object_get(o));
    }
    json_object_put(items);
    snprintf(kind, sizeof kind, "%sList", api_kind_name(op->kind));
    snprintf(rv, sizeof rv, "%" PRId64, rev);
    top = json_object_new_object();
    meta = json_object_new_object();
    json_object_object_add(top, "apiVersion", json_object_new_string(API_LIST_API_VERSION));
    json_object_object_add(top, "kind", json_object_new_string(kind));
    json_object_object_add(meta, "resourceVersion", json_object_new_string(rv));
    json_object_object_add(top, "metadata", meta);
    json_object_object_add(top, "items", kept);
    api_reply_json(&op->reply, 200, top);
}

static void op_get(struct api_op *op)
{
    struct vf_error err = { 0 };
    struct json_object *obj = NULL;
    int r = vf_objects_get(op->kind, op->name, &obj, &err);

    if (r < 0)
        api_reply_error(&op->reply, r, &err);
    else
        api_reply_json(&op->reply, 200, obj);
}

/* PUT bodies name the object they replace; a mismatch with the URL is almost
 * always a wrong file, so refuse it instead of guessing which one was meant. */
static int api_check_body_name(struct api_op *op)
{
    struct json_object *meta = NULL, *name = NULL;

    if (!json_object_object_get_ex(op->body, "metadata", &meta)) {
        meta = json_object_new_object();
        json_object_object_add(op->body, "metadata", meta);
    }
    if (!json_object_is_type(meta, json_type_object)) {
        api_reply_errorf(&op->reply, 400, "BadRequest", "metadata", "metadata must be an object");
        return -EINVAL;
    }
    if (!json_object_object_get_ex(meta, "name", &name)) {
        json_object_object_add(meta, "name", json_object_new_string(op->name));
        return 0;
    }
    if (!json_object_is_type(name, json_type_string) ||
        strcmp(json_object_get_string(name), op->name)) {
        api_reply_errorf(&op->reply, 400, "BadRequest", "metadata.name",
                         "metadata.name \"%s\" in the body does not match the name \"%s\" in the "
                         "URL", json_object_get_string(name), op->name);
        return -EINVAL;
    }
    return 0;
}

static void op_write(struct api_op *op)
{
    struct vf_error err = { 0 };
    struct json_object *obj = NULL, *status = NULL;
    const char *event = "object.update";
    unsigned code = 200;
    int r;

    const struct vf_kind_entry *k = vf_kinds_lookup(op->kind);
    if (k && (k->kind->flags & VF_KIND_API_READ_ONLY)) {
        api_reply_errorf(&op->reply, 403, "Forbidden", "",
                         "%s objects are written by virtfleetd only; clients may get, list and "
                         "watch them", k->kind->kind);
        return;
    }
    switch (op->type) {
    case OP_CREATE:
        r = vf_objects_create(op->kind, op->body, &obj, &err);
        event = "object.create";
        code = 201;
        break;
    case OP_REPLACE:
        if (api_check_body_name(op) < 0)
            return;
        r = vf_objects_update(op->kind, op->body, &obj, &err);
        break;
    case OP_PATCH:
        r = vf_objects_patch(op->kind, op->name, op->body, &obj, &err);
        break;
    case OP_STATUS:
        if (api_check_body_name(op) < 0)
            return;
        if (!json_object_object_get_ex(op->body, "status", &status) ||
            !json_object_is_type(status, json_type_object)) {
            api_reply_errorf(&op->reply, 400, "BadRequest", "status",
                             "the body must carry .status as an object");
            return;
        }
        r = vf_objects_update_status(op->kind, op->name, status, &obj, &err);
        event = "object.status";
        break;
    case OP_DELETE:
        r = vf_objects_delete(op->kind, op->name, op->rv, &obj, &err);
        event = "object.delete";
        break;
    default:
        r = -EINVAL;
        api_reply_errorf(&op->reply, 500, "InternalError", "", "unexpected write operation %d",
                         (int)op->type);
        return;
    }
    if (r < 0) {
        json_object_put(obj);
        api_reply_error(&op->reply, r, &err);
        return;
    }
    api_audit(op, event, obj);
    if (obj)
        api_reply_json(&op->reply, code, obj);
    else
        api_reply_json(&op->reply, code, json_object_new_object());
}

void api_op_run(struct api_op *op)
{
    switch (op->type) {
    case OP_DISCOVERY:
        op_discovery(op);
        break;
    case OP_MODULES:
        op_modules(op);
        break;
    case OP_LIST:
        op_list(op);
        break;
    case OP_WATCH:
        api_op_watch(op);
        break;
    case OP_GET:
        op_get(op);
        break;
    case OP_ROUTE:
        api_op_route(op);
        break;
    default:
        op_write(op);
        break;
    }
}
