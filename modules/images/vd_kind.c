#include <config.h>
/* VirtualDisk, the parts that need no controller: the kind (schema,
 * columns, validation), quantities, and the virtualDisks.* settings with the
 * choice of a disk's storage class. */
#include "vd.h"
#include "ctl_util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- quantities ------------------------------------------------------------------ */

int vf_vd_quantity(const struct json_object *v, uint64_t *bytes)
{
    static const struct {
        const char *suffix;
        uint64_t mult;
    } units[] = {{"Ki", 1ULL << 10}, {"Mi", 1ULL << 20}, {"Gi", 1ULL << 30}, {"Ti", 1ULL << 40},
                 {"Pi", 1ULL << 50}, {"Ei", 1ULL << 60}, {"k", 1000ULL}, {"K", 1000ULL},
                 {"M", 1000000ULL}, {"G", 1000000000ULL}, {"T", 1000000000000ULL},
                 {"P", 1000000000000000ULL}, {"E", 1000000000000000000ULL}, {"", 1}};
    if (!v)
        return -EINVAL;
    if (json_object_is_type(v, json_type_int)) {
        int64_t n = json_object_get_int64(v);
        if (n < 0)
            return -EINVAL;
        *bytes = (uint64_t)n;
        return 0;
    }
    if (!json_object_is_type(v, json_type_string))
        return -EINVAL;
    const char *s = json_object_get_string((struct json_object *)v);
    uint64_t whole = 0, frac = 0, frac_div = 1;
    size_t i = 0;
    if (s[0] < '0' || s[0] > '9')
        return -EINVAL;
    for (; s[i] >= '0' && s[i] <= '9'; i++) {
        if (whole > (UINT64_MAX - 9) / 10)
            return -ERANGE;
        whole = whole * 10 + (uint64_t)(s[i] - '0');
    }
    if (s[i] == '.') {
        i++;
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        for (; s[i] >= '0' && s[i] <= '9'; i++)
            if (frac_div < 1000000000ULL) {
                frac = frac * 10 + (uint64_t)(s[i] - '0');
                frac_div *= 10;
            }
    }
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
        if (strcmp(s + i, units[u].suffix))
            continue;
        if (whole > UINT64_MAX / units[u].mult)
            return -ERANGE;
        /* A fraction of a byte rounds up: a disk is never smaller than asked. */
        uint64_t f = (uint64_t)(((unsigned __int128)frac * units[u].mult + frac_div - 1) /
                                frac_div);
        if (whole * units[u].mult > UINT64_MAX - f)
            return -ERANGE;
        *bytes = whole * units[u].mult + f;
        return 0;
    }
    return -EINVAL;
}

void vf_vd_quantity_format(uint64_t bytes, char *buf, size_t len)
{
    static const char *const units[] = {"Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
    int u = -1;
    while (bytes && bytes % 1024 == 0 && u < 5) {
        bytes /= 1024;
        u++;
    }
    snprintf(buf, len, "%" PRIu64 "%s", bytes, u < 0 ? "" : units[u]);
}

/* ---- settings -------------------------------------------------------------------- */

static bool dns_label(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= 63 && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == n &&
           s[0] != '-' && s[n - 1] != '-';
}

const struct vf_vd_class *vf_vd_class_find(const struct vf_vd_settings *s, const char *name)
{
    for (size_t i = 0; name && i < s->n_classes; i++)
        if (!strcmp(s->classes[i].name, name))
            return &s->classes[i];
    return NULL;
}

int vf_vd_settings_read(const struct json_object *settings, struct vf_vd_settings *out,
                        struct vf_error *err)
{
    const struct json_object *g = member(settings, "virtualDisks");
    struct json_object *list = member(g, "storageClasses");
    struct json_object *allowed = member(g, "allowedStorageClassNames");
    const char *def = string(g, "defaultStorageClassName");
    char field[96];
    memset(out, 0, sizeof *out);
    size_t n = list && json_object_is_type(list, json_type_array) ? json_object_array_length(list)
                                                                  : 0;
    if (n > VF_VD_MAX_CLASSES)
        return vf_error_set(err, -EINVAL, 400, "Invalid", "virtualDisks.storageClasses",
                            "virtualDisks.storageClasses: at most %d classes", VF_VD_MAX_CLASSES);
    for (size_t i = 0; i < n; i++) {
        const char *e = json_object_get_string(json_object_array_get_idx(list, i));
        struct vf_vd_class *c = &out->classes[out->n_classes];
        const char *c1 = e ? strchr(e, ':') : NULL;
        const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        size_t nl = c1 ? (size_t)(c1 - e) : 0;
        size_t pl = c1 ? (c2 ? (size_t)(c2 - c1 - 1) : strlen(c1 + 1)) : 0;
        snprintf(field, sizeof field, "virtualDisks.storageClasses[%zu]", i);
        if (!c1 || nl == 0 || nl >= sizeof c->name || pl == 0 || pl >= sizeof c->pool ||
            (c2 && strcmp(c2 + 1, "shared")))
            return vf_error_set(err, -EINVAL, 400, "Invalid", field,
                                "%s: \"%s\" is not \"NAME:POOL\" or \"NAME:POOL:shared\" (a "
                                "storage class and the libvirt storage pool of that name on "
                                "every node)", field, e ? e : "");
        memcpy(c->name, e, nl);
        c->name[nl] = '\0';
        memcpy(c->pool, c1 + 1, pl);
        c->pool[pl] = '\0';
        c->shared = c2 != NULL;
        if (!dns_label(c->name) || strchr(c->pool, '/'))
            return vf_error_set(err, -EINVAL, 400, "Invalid", field,
                                "%s: the class name \"%s\" must be a DNS label (a-z, 0-9, -) and "
                                "the pool name \"%s\" a libvirt pool name", field, c->name,
                                c->pool);
        for (size_t k = 0; k < out->n_classes; k++)
            if (!strcmp(out->classes[k].name, c->name))
                return vf_error_set(err, -EINVAL, 400, "Invalid", field,
                                    "%s: storage class \"%s\" is listed twice", field, c->name);
        out->n_classes++;
    }
    size_t na = allowed && json_object_is_type(allowed, json_type_array)
                    ? json_object_array_length(allowed) : 0;
    for (size_t i = 0; i < na && out->n_allowed < VF_VD_MAX_CLASSES; i++)
        snprintf(out->allowed[out->n_allowed++], sizeof out->allowed[0], "%s",
                 json_object_get_string(json_object_array_get_idx(allowed, i)));
    if (def)
        snprintf(out->default_class, sizeof out->default_class, "%s", def);
    /* Names that point at no class are mistakes only once classes are declared. */
    if (out->n_classes > 0) {
        if (def && !vf_vd_class_find(out, def))
            return vf_error_set(err, -EINVAL, 400, "Invalid",
                                "virtualDisks.defaultStorageClassName",
                                "virtualDisks.defaultStorageClassName: \"%s\" is not in "
                                "virtualDisks.storageClasses", def);
        for (size_t i = 0; i < out->n_allowed; i++) {
            bool found = false;
            for (size_t k = 0; k < out->n_classes; k++)
                found = found || !strcmp(out->classes[k].name, out->allowed[i]);
            if (!found) {
                snprintf(field, sizeof field, "virtualDisks.allowedStorageClassNames[%zu]", i);
                return vf_error_set(err, -EINVAL, 400, "Invalid", field,
                                    "%s: \"%s\" is not in virtualDisks.storageClasses", field,
                                    out->allowed[i]);
            }
        }
    }
    return 0;
}

int vf_vd_class_resolve(const struct vf_vd_settings *s, const char *requested,
                        const struct vf_vd_class **out, char *msg, size_t msg_len)
{
    const char *want = requested && *requested ? requested : NULL;
    *out = NULL;
    if (!want && s->default_class[0])
        want = s->default_class;
    if (!want && s->n_classes == 1)
        want = s->classes[0].name;
    if (!want) {
        snprintf(msg, msg_len, s->n_classes ? "the disk names no storage class and the module "
                                              "has no virtualDisks.defaultStorageClassName: set "
                                              "spec.persistentVolumeClaim.storageClassName"
                                            : "no storage class is configured: set the images "
                                              "module's virtualDisks.storageClasses (e.g. "
                                              "[ \"local:default\" ])");
        return -ENOENT;
    }
    if (requested && *requested && s->n_allowed) {
        bool ok = false;
        for (size_t i = 0; i < s->n_allowed; i++)
            ok = ok || !strcmp(s->allowed[i], requested);
        if (!ok) {
            snprintf(msg, msg_len, "storage class \"%s\" is not in the images module's "
                     "virtualDisks.allowedStorageClassNames", requested);
            return -ENOENT;
        }
    }
    for (size_t i = 0; i < s->n_classes; i++)
        if (!strcmp(s->classes[i].name, want)) {
            *out = &s->classes[i];
            return 0;
        }
    snprintf(msg, msg_len, "storage class \"%s\" is not one of the images module's "
             "virtualDisks.storageClasses", want);
    return -ENOENT;
}

/* ---- the kind --------------------------------------------------------------------- */

static const char *const source_types[] = {"ObjectRef", "HTTP", "ContainerImage", "Upload", NULL};
static const char *const ref_kinds[] = {"ClusterVirtualImage", "VirtualImage",
                                        "VirtualDiskSnapshot", NULL};

static const struct vf_field pvc_fields[] = {
    {.name = "size", .type = VF_FIELD_QUANTITY},
    {.name = "storageClassName", .type = VF_FIELD_STRING, .flags = VF_FIELD_DNS_LABEL},
    {.name = NULL},
};
static const struct vf_field object_ref_fields[] = {
    {.name = "kind", .type = VF_FIELD_STRING, .flags = VF_FIELD_REQUIRED, .enum_values = ref_kinds},
    {.name = "name", .type = VF_FIELD_STRING, .flags = VF_FIELD_REQUIRED | VF_FIELD_DNS_LABEL},
    {.name = "namespace", .type = VF_FIELD_STRING},
    {.name = NULL},
};
static const struct vf_field data_source_fields[] = {
    {.name = "type", .type = VF_FIELD_STRING, .flags = VF_FIELD_REQUIRED,
     .enum_values = source_types},
    {.name = "objectRef", .type = VF_FIELD_OBJECT, .children = object_ref_fields},
    {.name = "http", .type = VF_FIELD_ANY},
    {.name = "containerImage", .type = VF_FIELD_ANY},
    {.name = NULL},
};
static const struct vf_field vd_spec[] = {
    {.name = "persistentVolumeClaim", .type = VF_FIELD_OBJECT, .children = pvc_fields},
    {.name = "dataSource", .type = VF_FIELD_OBJECT, .children = data_source_fields},
    {.name = NULL},
};
static const char *const vd_columns[] = {"PHASE", "status.phase", "CAPACITY", "status.capacity",
                                         "PROGRESS", "status.progress", "STORAGECLASS",
                                         "status.storageClassName", "TARGETNODE",
                                         "status.target.node", NULL};

const struct vf_kind vf_vd_kind = {
    .kind = VF_VD_KIND,
    .plural = "virtualdisks",
    .singular = "virtualdisk",
    .short_name = "vd",
    .spec = vd_spec,
    .validate = vf_vd_validate,
    .columns = vd_columns,
};

int vf_vd_validate(struct vf_module_ctx *ctx, const struct json_object *old,
                   struct json_object *obj, struct vf_error *err)
{
    (void)ctx;
    const struct json_object *spec = member(obj, "spec");
    const struct json_object *pvc = member(spec, "persistentVolumeClaim");
    const struct json_object *ds = member(spec, "dataSource");
    const char *name = string(member(obj, "metadata"), "name");
    struct json_object *size = member(pvc, "size");
    uint64_t bytes = 0;
    if (!name)
        name = "";
    if (size && (vf_vd_quantity(size, &bytes) < 0 || bytes == 0))
        return vf_error_set(err, -EINVAL, 400, "Invalid", "spec.persistentVolumeClaim.size",
                            "spec.persistentVolumeClaim.size: give a size such as \"10Gi\"");
    if (!ds && !size)
        return vf_error_set(err, -EINVAL, 400, "Invalid", "spec.persistentVolumeClaim.size",
                            "spec.persistentVolumeClaim.size: required for a blank disk (one "
                            "without spec.dataSource)");
    if (ds) {
        const char *type = string(ds, "type");
        const struct json_object *ref = member(ds, "objectRef");
        if (!str_eq(type, "ObjectRef"))
            return vf_error_set(err, -EINVAL, 422, "Invalid", "spec.dataSource.type",
                                "spec.dataSource.type: a disk is made from a ClusterVirtualImage "
                                "here (type ObjectRef); import the %s source as a "
                                "ClusterVirtualImage first", type ? type : "");
        if (!ref)
            return vf_error_set(err, -EINVAL, 400, "Invalid", "spec.dataSource.objectRef",
                                "spec.dataSource.objectRef: required for type ObjectRef");
        if (!str_eq(string(ref, "kind"), "ClusterVirtualImage"))
            return vf_error_set(err, -EINVAL, 422, "Invalid", "spec.dataSource.objectRef.kind",
                                "spec.dataSource.objectRef.kind: disks are made from a "
                                "ClusterVirtualImage here; %s is not supported",
                                string(ref, "kind"));
        if (member(ds, "http") || member(ds, "containerImage"))
            return vf_error_set(err, -EINVAL, 400, "Invalid", "spec.dataSource",
                                "spec.dataSource: only objectRef goes with type ObjectRef");
    }
    if (!old)
        return 0;
    /* A Failed disk is made again from scratch with its new spec (vd.c), and
     * whatever a failed attempt left is deleted first: nothing made from the
     * old spec has to stay, so every field may change (a source that exists,
     * a class that is configured, a size that holds the image). */
    if (str_eq(string(member(old, "status"), "phase"), "Failed"))
        return 0;
    /* What the volume was made from and where stays; only the size may grow. */
    const struct json_object *ospec = member(old, "spec");
    if (!json_object_equal(member(ospec, "dataSource"), (struct json_object *)ds))
        return vf_error_set(err, -EINVAL, 422, "Invalid", "spec.dataSource",
                            "spec.dataSource: VirtualDisk \"%s\": cannot change; create a new "
                            "disk", name);
    const char *ocls = string(member(ospec, "persistentVolumeClaim"), "storageClassName");
    const char *ncls = string(pvc, "storageClassName");
    if ((ocls || ncls) && !str_eq(ocls, ncls))
        return vf_error_set(err, -EINVAL, 422, "Invalid",
                            "spec.persistentVolumeClaim.storageClassName",
                            "spec.persistentVolumeClaim.storageClassName: VirtualDisk \"%s\": "
                            "cannot change; create a new disk", name);
    uint64_t old_bytes = 0, cap = 0;
    struct json_object *osize = member(member(ospec, "persistentVolumeClaim"), "size");
    if (osize && !size)
        return vf_error_set(err, -EINVAL, 422, "Invalid", "spec.persistentVolumeClaim.size",
                            "spec.persistentVolumeClaim.size: VirtualDisk \"%s\": cannot be "
                            "removed once set", name);
    if (osize && vf_vd_quantity(osize, &old_bytes) == 0 && bytes < old_bytes)
        return vf_error_set(err, -EINVAL, 422, "Invalid", "spec.persistentVolumeClaim.size",
                            "spec.persistentVolumeClaim.size: VirtualDisk \"%s\": a disk only "
                            "grows (it is %s)", name, json_object_get_string(osize));
    struct json_object *capv = member(member(old, "status"), "capacity");
    if (size && capv && vf_vd_quantity(capv, &cap) == 0 && bytes < cap)
        return vf_error_set(err, -EINVAL, 422, "Invalid", "spec.persistentVolumeClaim.size",
                            "spec.persistentVolumeClaim.size: VirtualDisk \"%s\": a disk only "
                            "grows (its capacity is %s)", name, json_object_get_string(capv));
    return 0;
}
