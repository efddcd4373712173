#include <config.h>
/* Kubernetes label selectors.  A selector is a list of requirements that all
 * must hold: matchLabels pairs (key=value) first, then matchExpressions in
 * order.  The JSON form is matched directly (no allocation) for one-off
 * checks; placement compiles a selector once and matches it against many
 * nodes, which saves re-walking the selector's JSON per node. */
#include "core/label_selector.h"
#include "core/json_util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum op { OP_IN, OP_NOT_IN, OP_EXISTS, OP_DOES_NOT_EXIST, OP_COUNT };

static const char *const op_names[] = {"In", "NotIn", "Exists", "DoesNotExist"};

struct requirement {
    const char *key;
    enum op op;
    const char *value;                  /* key=value (matchLabels, map selectors) */
    const struct json_object *values;   /* In/NotIn from matchExpressions: strings */
};

struct vf_selector {
    size_t n;
    struct requirement req[];
};

static bool value_listed(const struct requirement *r, const char *v)
{
    if (r->value)
        return strcmp(r->value, v) == 0;
    size_t n = json_object_array_length(r->values);
    for (size_t i = 0; i < n; i++) {
        const char *s = vf_json_as_string(json_object_array_get_idx(r->values, i));
        if (s && strcmp(s, v) == 0)
            return true;
    }
    return false;
}

/* Kubernetes semantics: In needs the key present with a listed value; NotIn
 * holds when the key is absent or its value is not listed. */
static bool requirement_holds(const struct requirement *r, const struct json_object *labels)
{
    const char *v = vf_json_string(labels, r->key);
    switch (r->op) {
    case OP_IN: return v && value_listed(r, v);
    case OP_NOT_IN: return !v || !value_listed(r, v);
    case OP_EXISTS: return v != NULL;
    case OP_DOES_NOT_EXIST: return v == NULL;
    case OP_COUNT: break;
    }
    return false;
}

/* Fill r from one matchExpressions element; -EINVAL when malformed, so that a
 * selector we cannot read never matches by accident. */
static int requirement_parse(const struct json_object *expr, struct requirement *r)
{
    const char *key = vf_json_string(expr, "key");
    const char *op = vf_json_string(expr, "operator");
    const struct json_object *values = vf_json_member(expr, "values");
    size_t n_values = 0;

    memset(r, 0, sizeof *r);
    if (!key || !op)
        return -EINVAL;
    r->key = key;
    int found = 0;
    while (found < OP_COUNT && strcmp(op, op_names[found]) != 0)
        found++;
    if (found == OP_COUNT)
        return -EINVAL;
    r->op = (enum op)found;
    if (values && !json_object_is_type(values, json_type_null)) {
        if (!json_object_is_type(values, json_type_array))
            return -EINVAL;
        n_values = json_object_array_length(values);
        for (size_t i = 0; i < n_values; i++)
            if (!vf_json_as_string(json_object_array_get_idx(values, i)))
                return -EINVAL;
    }
    if ((r->op == OP_IN || r->op == OP_NOT_IN) && n_values == 0)
        return -EINVAL;
    if ((r->op == OP_EXISTS || r->op == OP_DOES_NOT_EXIST) && n_values != 0)
        return -EINVAL;
    r->values = n_values ? values : NULL;
    return 0;
}

static bool map_holds(const struct json_object *map, const struct json_object *labels)
{
    if (!map)
        return true;
    if (!json_object_is_type(map, json_type_object))
        return false;
    json_object_object_foreach((struct json_object *)map, key, val) {
        const char *want = vf_json_as_string(val), *have = vf_json_string(labels, key);
        if (!want || !have || strcmp(want, have) != 0)
            return false;
    }
    return true;
}

bool vf_selector_matches(const struct json_object *selector, const struct json_object *labels)
{
    const struct json_object *exprs;

    if (!selector)
        return true;
    if (!json_object_is_type(selector, json_type_object))
        return false;
    if (!map_holds(vf_json_member(selector, "matchLabels"), labels))
        return false;
    exprs = vf_json_member(selector, "matchExpressions");
    if (!exprs)
        return true;
    if (!json_object_is_type(exprs, json_type_array))
        return false;
    for (size_t i = 0, n = json_object_array_length(exprs); i < n; i++) {
        struct requirement r;
        if (requirement_parse(json_object_array_get_idx(exprs, i), &r) < 0 ||
            !requirement_holds(&r, labels))
            return false;
    }
    return true;
}

bool vf_map_selector_matches(const struct json_object *map, const struct json_object *labels)
{
    return map_holds(map, labels);
}

/* ---- compiled selectors ------------------------------------------------- */

static size_t object_length(const struct json_object *o)
{
    return o && json_object_is_type(o, json_type_object) ? (size_t)json_object_object_length(o) : 0;
}

/* Append map's pairs as key=value requirements. */
static int add_map(const struct json_object *map, struct vf_selector *sel)
{
    if (!map)
        return 0;
    if (!json_object_is_type(map, json_type_object))
        return -EINVAL;
    json_object_object_foreach((struct json_object *)map, key, val) {
        struct requirement *r = &sel->req[sel->n++];
        r->key = key;
        r->op = OP_IN;
        r->value = vf_json_as_string(val);
        r->values = NULL;
        if (!r->value)
            return -EINVAL;
    }
    return 0;
}

static struct vf_selector *selector_alloc(size_t n)
{
    struct vf_selector *sel = calloc(1, sizeof *sel + n * sizeof sel->req[0]);
    return sel;
}

int vf_selector_compile(const struct json_object *selector, struct vf_selector **out)
{
    const struct json_object *labels = NULL, *exprs = NULL;
    size_t n_exprs = 0;
    struct vf_selector *sel;
    int r;

    *out = NULL;
    if (selector) {
        if (!json_object_is_type(selector, json_type_object))
            return -EINVAL;
        labels = vf_json_member(selector, "matchLabels");
        exprs = vf_json_member(selector, "matchExpressions");
        if (exprs && !json_object_is_type(exprs, json_type_array))
            return -EINVAL;
        n_exprs = exprs ? json_object_array_length(exprs) : 0;
    }
    sel = selector_alloc(object_length(labels) + n_exprs);
    if (!sel)
        return -ENOMEM;
    r = add_map(labels, sel);
    for (size_t i = 0; r == 0 && i < n_exprs; i++)
        r = requirement_parse(json_object_array_get_idx(exprs, i), &sel->req[sel->n++]);
    if (r < 0) {
        free(sel);
        return r;
    }
    *out = sel;
    return 0;
}

int vf_selector_compile_map(const struct json_object *map, struct vf_selector **out)
{
    struct vf_selector *sel;
    int r;

    *out = NULL;
    sel = selector_alloc(object_length(map));
    if (!sel)
        return -ENOMEM;
    r = add_map(map, sel);
    if (r < 0) {
        free(sel);
        return r;
    }
    *out = sel;
    return 0;
}

void vf_selector_free(struct vf_selector *sel)
{
    free(sel);
}

bool vf_selector_is_empty(const struct vf_selector *sel)
{
    return !sel || sel->n == 0;
}

int vf_selector_mismatch(const struct vf_selector *sel, const struct json_object *labels)
{
    if (!sel)
        return -1;
    for (size_t i = 0; i < sel->n; i++)
        if (!requirement_holds(&sel->req[i], labels))
            return (int)i;
    return -1;
}

/* ---- text --------------------------------------------------------------- */

/* snprintf that appends at *used and never overruns buf (truncates instead). */
__attribute__((format(printf, 4, 5)))
static void append(char *buf, size_t len, size_t *used, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (*used >= len)
        return;
    va_start(ap, fmt);
    n = vsnprintf(buf + *used, len - *used, fmt, ap);
    va_end(ap);
    if (n > 0)
        *used = *used + (size_t)n < len ? *used + (size_t)n : len - 1;
}

static void requirement_format(const struct requirement *r, char *buf, size_t len, size_t *used)
{
    if (r->value) {
        append(buf, len, used, "%s=%s", r->key, r->value);
        return;
    }
    append(buf, len, used, "%s %s", r->key, op_names[r->op]);
    if (r->values) {
        size_t n = json_object_array_length(r->values);
        append(buf, len, used, " (");
        for (size_t i = 0; i < n; i++)
            append(buf, len, used, "%s%s", i ? ", " : "",
                   vf_json_as_string(json_object_array_get_idx(r->values, i)));
        append(buf, len, used, ")");
    }
}

void vf_selector_format(const struct vf_selector *sel, char *buf, size_t len)
{
    size_t used = 0;

    if (!buf || len == 0)
        return;
    buf[0] = '\0';
    for (size_t i = 0; sel && i < sel->n; i++) {
        if (i)
            append(buf, len, &used, ", ");
        requirement_format(&sel->req[i], buf, len, &used);
    }
}

void vf_selector_describe(const struct json_object *selector, char *buf, size_t len)
{
    struct vf_selector *sel;

    if (!buf || len == 0)
        return;
    if (vf_selector_compile(selector, &sel) < 0) {
        snprintf(buf, len, "(malformed selector)");
        return;
    }
    vf_selector_format(sel, buf, len);
    vf_selector_free(sel);
}

void vf_selector_explain(const struct vf_selector *sel, int index, const struct json_object *labels,
                         char *buf, size_t len)
{
    const struct requirement *r;
    const char *have;
    size_t used = 0;

    if (!buf || len == 0)
        return;
    buf[0] = '\0';
    if (!sel || index < 0 || (size_t)index >= sel->n)
        return;
    r = &sel->req[index];
    have = vf_json_string(labels, r->key);
    if (have)
        append(buf, len, &used, "label %s=%s does not match ", r->key, have);
    else
        append(buf, len, &used, "no label %s, required by ", r->key);
    requirement_format(r, buf, len, &used);
}
