/* The kinds registry and object validation (see kinds.h).
 *
 * Validation walks the object only where the schema leads (struct vf_field
 * tables), so a hostile body costs at most one pass over what it sent and the
 * recursion depth is bounded by the schema, not by the input.  Each error names
 * the field as a path ("spec.cpu.cores") both in vf_error.field and at the start
 * of the message.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/kinds.h"
#include "core/json_util.h"

#define KINDS_MAX 64
#define PATH_MAX_LEN 128 /* sizeof(vf_error.field) */
#define LABEL_NAME_MAX 63
#define LABEL_PREFIX_MAX 253
#define GENERATE_NAME_MAX 58 /* + 5 random characters = a 63-character label */
#define FINALIZERS_MAX 64
#define ANNOTATIONS_TOTAL_MAX (256 * 1024)

#define API_VERSION_CANONICAL VF_API_GROUP "/" VF_API_VERSION
#define API_VERSION_DECKHOUSE "virtualization.deckhouse.io/" VF_API_VERSION

static struct vf_kind_entry kinds[KINDS_MAX];
static unsigned kinds_count;

/* ---- registry ---------------------------------------------------------- */

static bool name_matches(const struct vf_kind *k, const char *name)
{
    const char *names[] = {k->kind, k->plural, k->singular, k->short_name};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i] && *names[i] && !strcasecmp(names[i], name))
            return true;
    return false;
}

int vf_kinds_register(const struct vf_kind *kind, struct vf_module_ctx *owner, struct vf_error *err)
{
    if (!kind || !kind->kind || !*kind->kind || !kind->plural || !*kind->plural)
        return vf_error_set(err, -EINVAL, 400, "Invalid", "",
                            "kind registration needs a kind and a plural name");
    const char *names[] = {kind->kind, kind->plural, kind->singular, kind->short_name};
    for (unsigned i = 0; i < kinds_count; i++) {
        for (size_t j = 0; j < sizeof names / sizeof names[0]; j++) {
            if (names[j] && *names[j] && name_matches(kinds[i].kind, names[j]))
                return vf_error_set(err, -EEXIST, 409, "AlreadyExists", "",
                                    "kind %s: the name \"%s\" is already taken by kind %s",
                                    kind->kind, names[j], kinds[i].kind->kind);
        }
    }
    if (kinds_count == KINDS_MAX)
        return vf_error_set(err, -ENOSPC, 500, "InternalError", "",
                            "kind %s: too many kinds (at most %d)", kind->kind, KINDS_MAX);
    kinds[kinds_count].kind = kind;
    kinds[kinds_count].owner = owner;
    kinds_count++;
    return 0;
}

void vf_kinds_unregister_owner(struct vf_module_ctx *owner)
{
    unsigned kept = 0;
    for (unsigned i = 0; i < kinds_count; i++)
        if (kinds[i].owner != owner)
            kinds[kept++] = kinds[i];
    memset(&kinds[kept], 0, (kinds_count - kept) * sizeof kinds[0]);
    kinds_count = kept;
}

const struct vf_kind_entry *vf_kinds_lookup(const char *name)
{
    if (!name || !*name)
        return NULL;
    for (unsigned i = 0; i < kinds_count; i++)
        if (name_matches(kinds[i].kind, name))
            return &kinds[i];
    return NULL;
}

const struct vf_kind_entry *vf_kinds_at(unsigned i)
{
    return i < kinds_count ? &kinds[i] : NULL;
}

/* ---- syntax helpers ---------------------------------------------------- */

static bool is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(char c)
{
    return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

bool vf_is_dns_label(const char *s)
{
    size_t n;
    if (!s)
        return false;
    n = strlen(s);
    if (n == 0 || n > 63 || !is_lower_alnum(s[0]) || !is_lower_alnum(s[n - 1]))
        return false;
    for (size_t i = 1; i + 1 < n; i++)
        if (!is_lower_alnum(s[i]) && s[i] != '-')
            return false;
    return true;
}

/* RFC 1123 subdomain: dot-separated labels, at most 253 characters. */
static bool is_dns_subdomain(const char *s, size_t n)
{
    size_t start = 0;
    if (n == 0 || n > LABEL_PREFIX_MAX)
        return false;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            char label[64];
            size_t len = i - start;
            if (len == 0 || len > 63)
                return false;
            memcpy(label, s + start, len);
            label[len] = '\0';
            if (!vf_is_dns_label(label))
                return false;
            start = i + 1;
        }
    }
    return true;
}

/* The name part of a label key or a label value:
 * [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?, at most 63 characters. */
static bool is_label_name(const char *s, size_t n)
{
    if (n == 0 || n > LABEL_NAME_MAX || !is_alnum(s[0]) || !is_alnum(s[n - 1]))
        return false;
    for (size_t i = 1; i + 1 < n; i++)
        if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
            return false;
    return true;
}

/* A Kubernetes qualified name: [prefix/]name, prefix a DNS subdomain. */
static bool is_qualified_name(const char *s)
{
    const char *slash = strchr(s, '/');
    if (!slash)
        return is_label_name(s, strlen(s));
    return is_dns_subdomain(s, (size_t)(slash - s)) && is_label_name(slash + 1, strlen(slash + 1));
}

static bool is_label_value(const char *s)
{
    size_t n = strlen(s);
    return n == 0 || is_label_name(s, n);
}

/* A Kubernetes quantity as the schemas need it: a non-negative integer or
 * decimal with an optional binary (Ki..Ei) or decimal (m, k..E) suffix.  Only
 * the syntax is checked here: "100m" CPU and "10Gi" memory are both valid, and
 * the kind's own hook converts the fields it uses. */
static bool is_quantity(const char *s)
{
    static const char *const suffixes[] = {"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "m", "k",
                                           "M", "G", "T", "P", "E", NULL};
    size_t digits = 0, i = 0;
    while (s[i] >= '0' && s[i] <= '9') {
        i++;
        digits++;
    }
    if (s[i] == '.') {
        i++;
        while (s[i] >= '0' && s[i] <= '9') {
            i++;
            digits++;
        }
    }
    if (digits == 0 || digits > 30)
        return false;
    for (size_t k = 0; suffixes[k]; k++)
        if (!strcmp(s + i, suffixes[k]))
            return true;
    return false;
}

/* ---- field paths ------------------------------------------------------- */

struct path {
    char buf[PATH_MAX_LEN];
    size_t len;
};

/* Appends ".name" (or "name" at the root); returns the old length to restore. */
static size_t path_push(struct path *p, const char *name)
{
    size_t old = p->len;
    int n = snprintf(p->buf + p->len, sizeof p->buf - p->len, "%s%s", p->len ? "." : "", name);
    if (n > 0)
        p->len = p->len + (size_t)n < sizeof p->buf ? p->len + (size_t)n : sizeof p->buf - 1;
    return old;
}

static size_t path_push_index(struct path *p, size_t index)
{
    size_t old = p->len;
    int n = snprintf(p->buf + p->len, sizeof p->buf - p->len, "[%zu]", index);
    if (n > 0)
        p->len = p->len + (size_t)n < sizeof p->buf ? p->len + (size_t)n : sizeof p->buf - 1;
    return old;
}

static void path_pop(struct path *p, size_t old)
{
    p->len = old;
    p->buf[old] = '\0';
}

#define invalid(err, p, fmt, ...)                                                  \
    vf_error_set((err), -EINVAL, 400, "Invalid", (p)->buf, "%s: " fmt, (p)->buf, \
                 ##__VA_ARGS__)

static const char *type_name(enum vf_field_type t)
{
    switch (t) {
    case VF_FIELD_STRING: return "a string";
    case VF_FIELD_INT: return "an integer";
    case VF_FIELD_BOOL: return "true or false";
    case VF_FIELD_OBJECT: return "an object";
    case VF_FIELD_MAP: return "an object of strings";
    case VF_FIELD_ARRAY: return "a list";
    case VF_FIELD_QUANTITY: return "a quantity such as \"1Gi\", \"512Mi\" or \"2\"";
    case VF_FIELD_PERCENT: return "a percentage such as \"25%\"";
    default: return "a value";
    }
}

/* "a, b, c" into buf, truncated with "..." when it does not fit. */
static void join_names(char *buf, size_t len, const char *const *names, size_t count,
                       const struct vf_field *fields)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; fields ? fields[i].name != NULL : i < count; i++) {
        const char *n = fields ? fields[i].name : names[i];
        int w = snprintf(buf + used, len - used, "%s%s", i ? ", " : "", n);
        if (w < 0 || (size_t)w >= len - used) {
            if (len > 4)
                strcpy(buf + len - 4, "...");
            return;
        }
        used += (size_t)w;
    }
}

/* ---- schema walk ------------------------------------------------------- */

static int check_value(const struct vf_field *f, struct json_object *val, struct json_object *old,
                       bool has_old, struct path *p, struct vf_error *err);

/* Members of an OBJECT: unknown keys, required members, immutable members that
 * were removed, then each present member. */
static int check_members(const struct vf_field *children, struct json_object *val,
                         struct json_object *old, bool has_old, struct path *p,
                         struct vf_error *err)
{
    json_object_object_foreach(val, key, member_val) {
        bool known = false;
        (void)member_val;
        for (const struct vf_field *c = children; c->name; c++)
            if (!strcmp(c->name, key)) {
                known = true;
                break;
            }
        if (!known) {
            char names[320];
            size_t mark = path_push(p, key);
            join_names(names, sizeof names, NULL, 0, children);
            int r = invalid(err, p, "unknown field; known fields: %s", names);
            path_pop(p, mark);
            return r;
        }
    }
    for (const struct vf_field *c = children; c->name; c++) {
        struct json_object *v = vf_json_member(val, c->name);
        struct json_object *o = vf_json_member(old, c->name);
        size_t mark = path_push(p, c->name);
        int r = 0;
        if (!v) {
            if (c->flags & VF_FIELD_REQUIRED)
                r = invalid(err, p, "required field is missing");
            else if ((c->flags & VF_FIELD_IMMUTABLE) && has_old && o)
                r = invalid(err, p, "field is immutable and cannot be removed");
        } else {
            r = check_value(c, v, o, has_old, p, err);
        }
        path_pop(p, mark);
        if (r < 0)
            return r;
    }
    return 0;
}

static int check_string(const struct vf_field *f, struct json_object *val, struct path *p,
                        struct vf_error *err)
{
    const char *s = json_object_get_string(val);
    if (f->enum_values) {
        for (const char *const *e = f->enum_values; *e; e++)
            if (!strcmp(*e, s))
                return 0;
        char names[320];
        size_t n = 0;
        while (f->enum_values[n])
            n++;
        join_names(names, sizeof names, f->enum_values, n, NULL);
        return invalid(err, p, "\"%.64s\" is not allowed; allowed values: %s", s, names);
    }
    if ((f->flags & VF_FIELD_DNS_LABEL) && !vf_is_dns_label(s))
        return invalid(err, p,
                       "\"%.64s\" is not a DNS label (lowercase letters, digits and '-', "
                       "starting and ending with a letter or digit, at most 63 characters)",
                       s);
    return 0;
}

static int check_percent(const struct vf_field *f, struct json_object *val, struct path *p,
                         struct vf_error *err)
{
    int64_t lo = f->min || f->max ? f->min : 1, hi = f->min || f->max ? f->max : 100;
    const char *s;
    int64_t n = 0;
    size_t i = 0;

    if (!json_object_is_type(val, json_type_string))
        return invalid(err, p, "must be %s", type_name(f->type));
    s = json_object_get_string(val);
    while (s[i] >= '0' && s[i] <= '9' && i < 4)
        n = n * 10 + (s[i++] - '0');
    if (i == 0 || strcmp(s + i, "%") != 0)
        return invalid(err, p, "\"%.64s\" is not a percentage such as \"25%%\"", s);
    if (n < lo || n > hi)
        return invalid(err, p, "%s is out of range [%" PRId64 "%%, %" PRId64 "%%]", s, lo, hi);
    return 0;
}

static int check_value(const struct vf_field *f, struct json_object *val, struct json_object *old,
                       bool has_old, struct path *p, struct vf_error *err)
{
    int r;

    if ((f->flags & VF_FIELD_IMMUTABLE) && has_old && !json_object_equal(val, old))
        return invalid(err, p, "field is immutable; it cannot change once the object exists");

    switch (f->type) {
    case VF_FIELD_ANY:
        return 0;
    case VF_FIELD_STRING:
        if (!json_object_is_type(val, json_type_string))
            return invalid(err, p, "must be %s", type_name(f->type));
        return check_string(f, val, p, err);
    case VF_FIELD_INT: {
        if (!json_object_is_type(val, json_type_int))
            return invalid(err, p, "must be %s", type_name(f->type));
        int64_t n = json_object_get_int64(val);
        if ((f->min || f->max) && (n < f->min || n > f->max))
            return invalid(err, p, "%" PRId64 " is out of range [%" PRId64 ", %" PRId64 "]", n,
                           f->min, f->max);
        return 0;
    }
    case VF_FIELD_BOOL:
        if (!json_object_is_type(val, json_type_boolean))
            return invalid(err, p, "must be %s", type_name(f->type));
        return 0;
    case VF_FIELD_OBJECT:
        if (!json_object_is_type(val, json_type_object))
            return invalid(err, p, "must be %s", type_name(f->type));
        if (!f->children)
            return 0; /* free-form by design */
        return check_members(f->children, val, old, has_old, p, err);
    case VF_FIELD_MAP:
        if (!json_object_is_type(val, json_type_object))
            return invalid(err, p, "must be %s", type_name(f->type));
        json_object_object_foreach(val, key, v) {
            if (!json_object_is_type(v, json_type_string)) {
                size_t mark = path_push(p, key);
                r = invalid(err, p, "must be a string");
                path_pop(p, mark);
                return r;
            }
        }
        return 0;
    case VF_FIELD_ARRAY: {
        if (!json_object_is_type(val, json_type_array))
            return invalid(err, p, "must be %s", type_name(f->type));
        size_t n = json_object_array_length(val);
        if (f->max && n > (size_t)f->max)
            return invalid(err, p, "has %zu elements; at most %" PRId64 " are allowed", n, f->max);
        if (!f->children)
            return 0;
        size_t old_n = old && json_object_is_type(old, json_type_array)
                           ? json_object_array_length(old)
                           : 0;
        for (size_t i = 0; i < n; i++) {
            struct json_object *e = json_object_array_get_idx(val, i);
            struct json_object *o = i < old_n ? json_object_array_get_idx(old, i) : NULL;
            size_t mark = path_push_index(p, i);
            if (!e || json_object_is_type(e, json_type_null))
                r = invalid(err, p, "must not be null");
            else
                r = check_value(&f->children[0], e, o, has_old && o, p, err);
            path_pop(p, mark);
            if (r < 0)
                return r;
        }
        return 0;
    }
    case VF_FIELD_QUANTITY:
        if (json_object_is_type(val, json_type_int)) {
            if (json_object_get_int64(val) < 0)
                return invalid(err, p, "must not be negative");
            return 0;
        }
        if (!json_object_is_type(val, json_type_string) ||
            !is_quantity(json_object_get_string(val)))
            return invalid(err, p, "%s%.64s%s is not %s",
                           json_object_is_type(val, json_type_string) ? "\"" : "",
                           json_object_get_string(val),
                           json_object_is_type(val, json_type_string) ? "\"" : "",
                           type_name(f->type));
        return 0;
    case VF_FIELD_PERCENT:
        return check_percent(f, val, p, err);
    }
    return 0;
}

/* ---- metadata ---------------------------------------------------------- */

static int check_labels(struct json_object *labels, bool values_are_labels, struct path *p,
                        struct vf_error *err)
{
    size_t total = 0;
    int r;

    if (!json_object_is_type(labels, json_type_object))
        return invalid(err, p, "must be an object of strings");
    json_object_object_foreach(labels, key, v) {
        size_t mark = path_push(p, key);
        r = 0;
        if (!is_qualified_name(key))
            r = invalid(err, p,
                        "\"%.80s\" is not a valid key: an optional DNS subdomain prefix and '/', "
                        "then at most 63 characters of letters, digits, '-', '_' and '.', "
                        "starting and ending with a letter or digit",
                        key);
        else if (!json_object_is_type(v, json_type_string))
            r = invalid(err, p, "must be a string");
        else if (values_are_labels && !is_label_value(json_object_get_string(v)))
            r = invalid(err, p,
                        "\"%.64s\" is not a valid label value: at most 63 characters of letters, "
                        "digits, '-', '_' and '.', starting and ending with a letter or digit",
                        json_object_get_string(v));
        path_pop(p, mark);
        if (r < 0)
            return r;
        total += strlen(key) + (size_t)json_object_get_string_len(v);
    }
    if (!values_are_labels && total > ANNOTATIONS_TOTAL_MAX)
        return invalid(err, p, "total size %zu exceeds %d bytes", total, ANNOTATIONS_TOTAL_MAX);
    return 0;
}

static int check_finalizers(struct json_object *f, struct path *p, struct vf_error *err)
{
    size_t n;
    if (!json_object_is_type(f, json_type_array))
        return invalid(err, p, "must be a list of strings");
    n = json_object_array_length(f);
    if (n > FINALIZERS_MAX)
        return invalid(err, p, "has %zu elements; at most %d are allowed", n, FINALIZERS_MAX);
    for (size_t i = 0; i < n; i++) {
        struct json_object *e = json_object_array_get_idx(f, i);
        size_t mark = path_push_index(p, i);
        int r = 0;
        if (!e || !json_object_is_type(e, json_type_string))
            r = invalid(err, p, "must be a string");
        else if (!is_qualified_name(json_object_get_string(e)))
            r = invalid(err, p, "\"%.80s\" is not a valid finalizer name such as "
                                "\"virtfleet.io/cleanup\"",
                        json_object_get_string(e));
        path_pop(p, mark);
        if (r < 0)
            return r;
    }
    return 0;
}

static int check_generate_name(const char *s, struct path *p, struct vf_error *err)
{
    size_t n = strlen(s);
    bool ok = n > 0 && n <= GENERATE_NAME_MAX && is_lower_alnum(s[0]);
    for (size_t i = 1; ok && i < n; i++)
        ok = is_lower_alnum(s[i]) || s[i] == '-';
    if (!ok)
        return invalid(err, p,
                       "\"%.64s\" is not a valid prefix: lowercase letters, digits and '-', "
                       "starting with a letter or digit, at most %d characters",
                       s, GENERATE_NAME_MAX);
    return 0;
}

static const char *const meta_keys[] = {
    "name",       "generateName",     "labels",          "annotations",
    "finalizers", "uid",              "resourceVersion", "generation",
    "creationTimestamp", "deletionTimestamp", "namespace",
};
#define META_KEYS_COUNT (sizeof meta_keys / sizeof meta_keys[0])

static int check_metadata(const struct vf_kind *k, const struct json_object *old,
                          struct json_object *meta, struct path *p, struct vf_error *err)
{
    struct json_object *v;
    int r;

    if (!meta || !json_object_is_type(meta, json_type_object))
        return invalid(err, p, "must be an object with at least a name or a generateName");

    json_object_object_foreach(meta, key, val) {
        bool known = false;
        (void)val;
        for (size_t i = 0; i < META_KEYS_COUNT; i++)
            if (!strcmp(meta_keys[i], key))
                known = true;
        if (!known) {
            char names[320];
            size_t mark = path_push(p, key);
            join_names(names, sizeof names, meta_keys, META_KEYS_COUNT, NULL);
            r = invalid(err, p, "unknown field; known fields: %s", names);
            path_pop(p, mark);
            return r;
        }
    }
    /* Objects have no namespace here; manifests written for Kubernetes may
     * still carry one. */
    json_object_object_del(meta, "namespace");

    static const char *const string_keys[] = {"uid", "creationTimestamp", "deletionTimestamp"};
    for (size_t i = 0; i < sizeof string_keys / sizeof string_keys[0]; i++) {
        if ((v = vf_json_member(meta, string_keys[i])) && !json_object_is_type(v, json_type_string)) {
            size_t mark = path_push(p, string_keys[i]);
            r = invalid(err, p, "must be a string");
            path_pop(p, mark);
            return r;
        }
    }
    if ((v = vf_json_member(meta, "generation")) && !json_object_is_type(v, json_type_int)) {
        size_t mark = path_push(p, "generation");
        r = invalid(err, p, "must be an integer");
        path_pop(p, mark);
        return r;
    }
    if ((v = vf_json_member(meta, "resourceVersion")) && !json_object_is_type(v, json_type_string) &&
        !json_object_is_type(v, json_type_int)) {
        size_t mark = path_push(p, "resourceVersion");
        r = invalid(err, p, "must be a string such as \"42\"");
        path_pop(p, mark);
        return r;
    }

    struct json_object *name = vf_json_member(meta, "name");
    struct json_object *gen = vf_json_member(meta, "generateName");
    struct json_object *old_name = vf_json_member(vf_json_member(old, "metadata"), "name");
    size_t mark = path_push(p, "name");
    if (name && (!json_object_is_type(name, json_type_string) ||
                 !vf_is_dns_label(json_object_get_string(name))))
        r = invalid(err, p,
                    "%s%.64s%s is not a valid name: lowercase letters, digits and '-', starting "
                    "and ending with a letter or digit, at most 63 characters",
                    json_object_is_type(name, json_type_string) ? "\"" : "",
                    json_object_get_string(name),
                    json_object_is_type(name, json_type_string) ? "\"" : "");
    else if (!name && (old || !gen))
        r = invalid(err, p, "required field is missing%s", old ? "" : " (or set generateName)");
    else if (old && old_name && strcmp(json_object_get_string(name),
                                       json_object_get_string(old_name)) != 0)
        r = invalid(err, p, "a %s cannot be renamed (it is \"%s\")", k->kind,
                    json_object_get_string(old_name));
    else
        r = 0;
    path_pop(p, mark);
    if (r < 0)
        return r;

    if (gen) {
        mark = path_push(p, "generateName");
        r = json_object_is_type(gen, json_type_string)
                ? check_generate_name(json_object_get_string(gen), p, err)
                : invalid(err, p, "must be a string");
        path_pop(p, mark);
        if (r < 0)
            return r;
    }
    if ((v = vf_json_member(meta, "labels"))) {
        mark = path_push(p, "labels");
        r = check_labels(v, true, p, err);
        path_pop(p, mark);
        if (r < 0)
            return r;
    }
    if ((v = vf_json_member(meta, "annotations"))) {
        mark = path_push(p, "annotations");
        r = check_labels(v, false, p, err);
        path_pop(p, mark);
        if (r < 0)
            return r;
    }
    if ((v = vf_json_member(meta, "finalizers"))) {
        mark = path_push(p, "finalizers");
        r = check_finalizers(v, p, err);
        path_pop(p, mark);
        if (r < 0)
            return r;
    }
    return 0;
}

/* ---- the whole object -------------------------------------------------- */

static const char *const top_keys[] = {"apiVersion", "kind", "metadata", "spec", "status"};
#define TOP_KEYS_COUNT (sizeof top_keys / sizeof top_keys[0])

static int check_api_version(struct json_object *obj, struct path *p, struct vf_error *err)
{
    struct json_object *v = vf_json_member(obj, "apiVersion");
    size_t mark = path_push(p, "apiVersion");
    int r = 0;

    if (!v) {
        json_object_object_add(obj, "apiVersion", json_object_new_string(API_VERSION_CANONICAL));
    } else if (!json_object_is_type(v, json_type_string)) {
        r = invalid(err, p, "must be a string such as \"%s\"", API_VERSION_CANONICAL);
    } else if (!strcmp(json_object_get_string(v), API_VERSION_DECKHOUSE)) {
        /* The seeds' manifests apply unchanged; we store one spelling. */
        json_object_object_add(obj, "apiVersion", json_object_new_string(API_VERSION_CANONICAL));
    } else if (strcmp(json_object_get_string(v), API_VERSION_CANONICAL) != 0) {
        r = invalid(err, p, "\"%.64s\" is not supported; use \"%s\" (or \"%s\")",
                    json_object_get_string(v), API_VERSION_CANONICAL, API_VERSION_DECKHOUSE);
    }
    path_pop(p, mark);
    return r;
}

static int check_kind(const struct vf_kind *k, struct json_object *obj, struct path *p,
                      struct vf_error *err)
{
    struct json_object *v = vf_json_member(obj, "kind");
    size_t mark = path_push(p, "kind");
    int r = 0;

    if (!v)
        json_object_object_add(obj, "kind", json_object_new_string(k->kind));
    else if (!json_object_is_type(v, json_type_string) ||
             strcmp(json_object_get_string(v), k->kind) != 0)
        r = invalid(err, p, "\"%.64s\" does not match the kind being written, %s",
                    json_object_get_string(v), k->kind);
    path_pop(p, mark);
    return r;
}

int vf_kinds_validate(const struct vf_kind_entry *e, const struct json_object *old,
                      struct json_object *obj, struct vf_error *err)
{
    const struct vf_kind *k = e->kind;
    struct path p = {.buf = "", .len = 0};
    struct json_object *v;
    size_t mark;
    int r;

    if (!obj || !json_object_is_type(obj, json_type_object))
        return vf_error_set(err, -EINVAL, 400, "Invalid", "",
                            "a %s must be a JSON object", k->kind);
    json_object_object_foreach(obj, key, val) {
        bool known = false;
        (void)val;
        for (size_t i = 0; i < TOP_KEYS_COUNT; i++)
            if (!strcmp(top_keys[i], key))
                known = true;
        if (!known) {
            char names[128];
            mark = path_push(&p, key);
            join_names(names, sizeof names, top_keys, TOP_KEYS_COUNT, NULL);
            r = invalid(err, &p, "unknown field; known fields: %s", names);
            path_pop(&p, mark);
            return r;
        }
    }
    if ((r = check_api_version(obj, &p, err)) < 0)
        return r;
    if ((r = check_kind(k, obj, &p, err)) < 0)
        return r;

    mark = path_push(&p, "metadata");
    r = check_metadata(k, old, vf_json_member(obj, "metadata"), &p, err);
    path_pop(&p, mark);
    if (r < 0)
        return r;

    if ((v = vf_json_member(obj, "status")) && !json_object_is_type(v, json_type_object)) {
        mark = path_push(&p, "status");
        r = invalid(err, &p, "must be an object");
        path_pop(&p, mark);
        return r;
    }

    v = vf_json_member(obj, "spec");
    mark = path_push(&p, "spec");
    if (v && !json_object_is_type(v, json_type_object)) {
        r = invalid(err, &p, "must be an object");
    } else if (k->spec) {
        /* An absent spec is an empty one, so its required fields are named. */
        struct json_object *empty = v ? NULL : json_object_new_object();
        r = check_members(k->spec, v ? v : empty, vf_json_member(old, "spec"), old != NULL, &p, err);
        json_object_put(empty);
    }
    path_pop(&p, mark);
    if (r < 0)
        return r;

    if (k->validate)
        return k->validate(e->owner, old, obj, err);
    return 0;
}
