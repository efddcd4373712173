#include <config.h>
/* Status, condition and finalizer helpers of the images controllers; see
 * ctl_util.h. */
#include "ctl_util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* o.key when it is an array (its length into *n), else NULL with *n = 0. */
static struct json_object *array_at(const struct json_object *o, const char *key, size_t *n)
{
    struct json_object *a = member(o, key);
    bool is_array = json_object_is_type(a, json_type_array);
    *n = is_array ? json_object_array_length(a) : 0;
    return is_array ? a : NULL;
}

void vf_images_set_str(struct json_object *o, const char *key, const char *v)
{
    if (v)
        json_object_object_add(o, key, json_object_new_string(v));
    else
        json_object_object_del(o, key);
}

int64_t vf_images_generation(const struct json_object *obj)
{
    struct json_object *g = member(member(obj, "metadata"), "generation");
    return g ? json_object_get_int64(g) : 0;
}

struct json_object *vf_images_status_copy(const struct json_object *obj)
{
    struct json_object *s = member(obj, "status"), *copy = NULL;
    if (s && json_object_deep_copy(s, &copy, NULL) == 0)
        return copy;
    return json_object_new_object();
}

void vf_images_status_write(const struct vf_core *core, struct vf_module_ctx *ctx,
                            const char *kind, const char *noun, const char *name,
                            struct json_object *status)
{
    struct vf_error err = {0};
    int rc = core->object_update_status(ctx, kind, name, status, NULL, &err);
    if (rc < 0 && rc != -ENOENT)
        core->log(ctx, VF_LOG_ERROR, "%s \"%s\": cannot write its status: %s", noun, name,
                  err.message);
}

void vf_images_rfc3339(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void vf_images_condition_set(struct json_object *status, const char *type, bool ok,
                             const char *reason, const char *msg)
{
    size_t n;
    struct json_object *conds = array_at(status, "conditions", &n), *c = NULL;
    if (!conds) {
        conds = json_object_new_array();
        json_object_object_add(status, "conditions", conds);
    }
    for (size_t i = 0; i < n; i++)   /* the last of that type, should there be two */
        if (str_eq(string(json_object_array_get_idx(conds, i), "type"), type))
            c = json_object_array_get_idx(conds, i);
    if (!c) {
        c = json_object_new_object();
        json_object_array_add(conds, c);
        vf_images_set_str(c, "type", type);
    }
    const char *st = ok ? "True" : "False";
    if (!str_eq(string(c, "status"), st) || !string(c, "lastTransitionTime")) {
        char when[32];
        vf_images_rfc3339((int64_t)time(NULL), when, sizeof when);
        vf_images_set_str(c, "lastTransitionTime", when);
    }
    vf_images_set_str(c, "status", st);
    vf_images_set_str(c, "reason", reason);
    vf_images_set_str(c, "message", msg);
}

void vf_images_condition_remove(struct json_object *status, const char *type)
{
    size_t n;
    struct json_object *conds = array_at(status, "conditions", &n);
    if (!conds)
        return;
    struct json_object *kept = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        struct json_object *e = json_object_array_get_idx(conds, i);
        if (!str_eq(string(e, "type"), type))
            json_object_array_add(kept, json_object_get(e));
    }
    json_object_object_add(status, "conditions", kept);
}

bool vf_images_has_finalizer(const struct json_object *obj, const char *which)
{
    size_t n;
    struct json_object *f = array_at(member(obj, "metadata"), "finalizers", &n);
    for (size_t i = 0; i < n; i++)
        if (str_eq(json_object_get_string(json_object_array_get_idx(f, i)), which))
            return true;
    return false;
}

int vf_images_finalizer_update(const struct vf_core *core, struct vf_module_ctx *ctx,
                               const char *kind, const struct json_object *obj,
                               const char *which, bool add)
{
    if (vf_images_has_finalizer(obj, which) == add)
        return 0;
    struct json_object *copy = NULL;
    if (json_object_deep_copy((struct json_object *)obj, &copy, NULL) < 0)
        return -ENOMEM;
    size_t n;
    struct json_object *meta = member(copy, "metadata");
    struct json_object *f = array_at(meta, "finalizers", &n);
    struct json_object *next = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        struct json_object *e = json_object_array_get_idx(f, i);
        if (!str_eq(json_object_get_string(e), which))
            json_object_array_add(next, json_object_get(e));
    }
    if (add)
        json_object_array_add(next, json_object_new_string(which));
    json_object_object_add(meta, "finalizers", next);
    json_object_object_del(copy, "status");
    struct vf_error err = {0};
    int rc = core->object_update(ctx, kind, copy, NULL, &err);
    json_object_put(copy);
    if (rc < 0 && rc != -ENOENT && rc != -ESTALE)
        core->log(ctx, VF_LOG_ERROR, "%s \"%s\": cannot %s finalizer %s: %s", kind,
                  string(member(obj, "metadata"), "name"), add ? "add" : "remove", which,
                  err.message);
    return rc;
}

void vf_images_progress_text(uint64_t done, uint64_t total, char *buf, size_t len)
{
    double pct = total ? 100.0 * (double)done / (double)total : 0.0;
    if (pct > 100.0)
        pct = 100.0;
    snprintf(buf, len, "%.1f%%", (double)(int64_t)(pct * 10) / 10);
}
