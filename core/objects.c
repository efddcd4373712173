/* Object operations for the API and modules: resolve the kind by any of its
 * names, validate against the kind's schema, then write to the store.  The
 * store keeps metadata and the event log; this file keeps the rules about
 * what a client may send (see objects.h).
 */
#include <config.h>

#include <errno.h>
#include <string.h>

#include "core/kinds.h"
#include "core/json_util.h"
#include "core/objects.h"

static struct vf_store *objects_store;

void vf_objects_set_store(struct vf_store *st)
{
    objects_store = st;
}

struct vf_store *vf_objects_store(void)
{
    return objects_store;
}

/* ---- helpers ----------------------------------------------------------- */

static int unknown_kind(const char *kind, struct vf_error *err)
{
    char known[384];
    size_t used = 0;
    const struct vf_kind_entry *e;

    known[0] = '\0';
    for (unsigned i = 0; (e = vf_kinds_at(i)); i++) {
        int w = snprintf(known + used, sizeof known - used, "%s%s", i ? ", " : "", e->kind->kind);
        if (w < 0 || (size_t)w >= sizeof known - used) {
            strcpy(known + sizeof known - 4, "...");
            break;
        }
        used += (size_t)w;
    }
    return vf_error_set(err, -ENOENT, 404, "NotFound", "", "unknown kind \"%.64s\"; known kinds: %s",
                        kind ? kind : "", used ? known : "(none)");
}

/* Resolves the kind and checks that the store is there. */
static int resolve(const char *kind, const struct vf_kind_entry **out, struct vf_error *err)
{
    *out = vf_kinds_lookup(kind);
    if (!*out)
        return unknown_kind(kind, err);
    if (!objects_store)
        return vf_error_set(err, -ENODEV, 503, "ServiceUnavailable", "",
                            "%s: the store is not open", (*out)->kind->kind);
    return 0;
}

/* Reads errors of the store (which carry no vf_error) as the caller's. */
static int read_error(int r, const char *kind, const char *name, struct vf_error *err)
{
    if (r == -ENOENT)
        return vf_error_set(err, -ENOENT, 404, "NotFound", "", "%s \"%s\" not found", kind, name);
    return vf_error_set(err, r, 500, "InternalError", "",
                        "%s \"%s\": reading the store failed (see the daemon log)", kind, name);
}

/* The stored copy of kind/name. */
static int read_stored(const struct vf_kind_entry *e, const char *name, struct json_object **out,
                       struct vf_error *err)
{
    int r = vf_store_get(objects_store, e->kind->kind, name, out);
    return r < 0 ? read_error(r, e->kind->kind, name, err) : 0;
}

static int need_object(const struct vf_kind_entry *e, const struct json_object *obj,
                       const char *what, struct vf_error *err)
{
    if (!obj || !json_object_is_type(obj, json_type_object))
        return vf_error_set(err, -EINVAL, 400, "Invalid", "", "%s: the %s must be a JSON object",
                            e->kind->kind, what);
    return 0;
}

/* ---- reads ------------------------------------------------------------- */

int vf_objects_get(const char *kind, const char *name, struct json_object **out,
                   struct vf_error *err)
{
    const struct vf_kind_entry *e;
    int r;

    *out = NULL;
    if ((r = resolve(kind, &e, err)) < 0)
        return r;
    return read_stored(e, name ? name : "", out, err);
}

int vf_objects_list(const char *kind, struct json_object **items, int64_t *revision,
                    struct vf_error *err)
{
    const struct vf_kind_entry *e;
    int r;

    *items = NULL;
    if ((r = resolve(kind, &e, err)) < 0)
        return r;
    r = vf_store_list(objects_store, e->kind->kind, items, revision);
    if (r < 0)
        return vf_error_set(err, r, 500, "InternalError", "",
                            "%s: listing failed (see the daemon log)", e->kind->kind);
    return 0;
}

int vf_objects_list_text(const char *kind, char **text, size_t *len, int64_t *revision,
                         const char **kind_name, struct vf_error *err)
{
    const struct vf_kind_entry *e;
    int r;

    *text = NULL;
    if ((r = resolve(kind, &e, err)) < 0)
        return r;
    if (kind_name)
        *kind_name = e->kind->kind;
    r = vf_store_list_text(objects_store, e->kind->kind, text, len, revision);
    if (r < 0)
        return vf_error_set(err, r, 500, "InternalError", "",
                            "%s: listing failed (see the daemon log)", e->kind->kind);
    return 0;
}

/* ---- writes ------------------------------------------------------------ */

int vf_objects_create(const char *kind, const struct json_object *obj, struct json_object **out,
                      struct vf_error *err)
{
    const struct vf_kind_entry *e;
    struct json_object *copy;
    int r;

    if (out)
        *out = NULL;
    if ((r = resolve(kind, &e, err)) < 0 || (r = need_object(e, obj, "object", err)) < 0)
        return r;
    copy = vf_json_copy(obj);
    r = vf_kinds_validate(e, NULL, copy, err);
    if (r == 0)
        r = vf_store_create(objects_store, e->kind->kind, copy, out, err);
    json_object_put(copy);
    return r;
}

int vf_objects_update(const char *kind, const struct json_object *obj, struct json_object **out,
                      struct vf_error *err)
{
    const struct vf_kind_entry *e;
    struct json_object *copy, *old = NULL;
    const char *name;
    int r;

    if (out)
        *out = NULL;
    if ((r = resolve(kind, &e, err)) < 0 || (r = need_object(e, obj, "object", err)) < 0)
        return r;
    name = vf_object_name(obj);
    if (!name || !*name)
        return vf_error_set(err, -EINVAL, 400, "Invalid", "metadata.name",
                            "metadata.name: required field is missing; a %s to update needs "
                            "its name",
                            e->kind->kind);
    if ((r = read_stored(e, name, &old, err)) < 0)
        return r;
    copy = vf_json_copy(obj);
    r = vf_kinds_validate(e, old, copy, err);
    if (r == 0)
        r = vf_store_update(objects_store, e->kind->kind, copy, out, err);
    json_object_put(copy);
    json_object_put(old);
    return r;
}

/* RFC 7386: members set to null are removed, objects merge recursively, any
 * other value replaces.  target and patch are objects; recursion follows the
 * patch, whose depth json-c's parser already bounds. */
static void merge_patch(struct json_object *target, const struct json_object *patch)
{
    json_object_object_foreach((struct json_object *)patch, key, val) {
        if (!val || json_object_is_type(val, json_type_null)) {
            json_object_object_del(target, key);
        } else if (json_object_is_type(val, json_type_object)) {
            struct json_object *cur = vf_json_member(target, key);
            if (!cur || !json_object_is_type(cur, json_type_object)) {
                cur = json_object_new_object();
                json_object_object_add(target, key, cur);
            }
            merge_patch(cur, val);
        } else {
            json_object_object_add(target, key, vf_json_copy(val));
        }
    }
}

/* What a merge patch may touch: spec, and of metadata only labels,
 * annotations and finalizers (plus resourceVersion as a precondition).  Other
 * members may be present when they repeat the stored value, as clients that
 * patch with a whole object do. */
static int check_patch(const struct vf_kind_entry *e, const char *name,
                       const struct json_object *stored, const struct json_object *patch,
                       struct vf_error *err)
{
    json_object_object_foreach((struct json_object *)patch, key, val) {
        /* spec is the point of a patch; apiVersion and kind are checked by the
         * validation that follows (which also accepts the deckhouse group). */
        if (!strcmp(key, "spec") || !strcmp(key, "apiVersion") || !strcmp(key, "kind"))
            continue;
        if (!strcmp(key, "status"))
            return vf_error_set(err, -EINVAL, 400, "Invalid", "status",
                                "status: %s \"%s\": status cannot be patched; it belongs to the "
                                "controllers",
                                e->kind->kind, name);
        if (!strcmp(key, "metadata")) {
            if (!json_object_is_type(val, json_type_object))
                return vf_error_set(err, -EINVAL, 400, "Invalid", "metadata",
                                    "metadata: %s \"%s\": must be an object", e->kind->kind,
                                    name);
            struct json_object *meta = vf_json_member(stored, "metadata");
            json_object_object_foreach(val, mkey, mval) {
                char field[64];
                if (!strcmp(mkey, "labels") || !strcmp(mkey, "annotations") ||
                    !strcmp(mkey, "finalizers") || !strcmp(mkey, "resourceVersion"))
                    continue;
                if (json_object_equal(mval, vf_json_member(meta, mkey)))
                    continue;
                snprintf(field, sizeof field, "metadata.%.40s", mkey);
                return vf_error_set(err, -EINVAL, 400, "Invalid", field,
                                    "%s: %s \"%s\": cannot be changed by a patch; only labels, "
                                    "annotations, finalizers and spec can",
                                    field, e->kind->kind, name);
            }
            continue;
        }
        if (json_object_equal(val, vf_json_member(stored, key)))
            continue;
        return vf_error_set(err, -EINVAL, 400, "Invalid", key,
                            "%.64s: %s \"%s\": cannot be changed by a patch; only labels, "
                            "annotations, finalizers and spec can",
                            key, e->kind->kind, name);
    }
    return 0;
}

int vf_objects_patch(const char *kind, const char *name, const struct json_object *patch,
                     struct json_object **out, struct vf_error *err)
{
    const struct vf_kind_entry *e;
    struct json_object *stored = NULL, *merged;
    int r;

    if (out)
        *out = NULL;
    if ((r = resolve(kind, &e, err)) < 0 || (r = need_object(e, patch, "patch", err)) < 0)
        return r;
    if ((r = read_stored(e, name ? name : "", &stored, err)) < 0)
        return r;
    if ((r = check_patch(e, name, stored, patch, err)) < 0) {
        json_object_put(stored);
        return r;
    }
    merged = vf_json_copy(stored);
    merge_patch(merged, patch);
    /* Without a precondition in the patch, the patch applies to what was just
     * read; the store still refuses it if that changed meanwhile. */
    struct json_object *meta = vf_json_member(merged, "metadata");
    if (meta && !vf_json_member(vf_json_member(patch, "metadata"), "resourceVersion")) {
        struct json_object *rv = vf_json_member(vf_json_member(stored, "metadata"), "resourceVersion");
        if (rv)
            json_object_object_add(meta, "resourceVersion", vf_json_copy(rv));
    }
    r = vf_kinds_validate(e, stored, merged, err);
    if (r == 0)
        r = vf_store_update(objects_store, e->kind->kind, merged, out, err);
    json_object_put(merged);
    json_object_put(stored);
    return r;
}

int vf_objects_update_status(const char *kind, const char *name, const struct json_object *status,
                             struct json_object **out, struct vf_error *err)
{
    const struct vf_kind_entry *e;
    int r;

    if (out)
        *out = NULL;
    if ((r = resolve(kind, &e, err)) < 0)
        return r;
    if (status && !json_object_is_type(status, json_type_object))
        return vf_error_set(err, -EINVAL, 400, "Invalid", "status",
                            "status: %s \"%s\": must be a JSON object", e->kind->kind,
                            name ? name : "");
    return vf_store_update_status(objects_store, e->kind->kind, name, status, 0, out, err);
}

int vf_objects_delete(const char *kind, const char *name, int64_t expected_rv,
                      struct json_object **out, struct vf_error *err)
{
    const struct vf_kind_entry *e;
    int r;

    if (out)
        *out = NULL;
    if ((r = resolve(kind, &e, err)) < 0)
        return r;
    return vf_store_delete(objects_store, e->kind->kind, name, expected_rv, out, err);
}
