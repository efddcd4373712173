/* kubectl's JSONPath dialect, the evaluator: walks the tree jsonpath_parse.c
 * built (jsonpath_tree.h) over one document and hands text and the selected
 * values to the caller's sink. */
#include <config.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "jsonpath_tree.h"

/* ---- the evaluator --------------------------------------------------- */

/* Values selected so far, borrowed from the document (NULL is JSON null). */
struct nodeset {
    struct json_object **v;
    size_t n, cap;
};

struct run {
    struct json_object *root;
    const struct vf_jsonpath_sink *sink;
    void *ctx;
};

/* Documents nest far less; this only bounds the recursion of "..". */
#define MAX_DESCENT 512

static int ns_add(struct nodeset *s, struct json_object *o)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        struct json_object **v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return -1;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = o;
    return 0;
}

static void ns_clear(struct nodeset *s)
{
    free(s->v);
    memset(s, 0, sizeof *s);
}

static int eval_path(const struct run *r, const struct path *path, struct json_object *cur,
                     struct nodeset *out);

static int descend(struct json_object *o, struct nodeset *out, int depth)
{
    if (ns_add(out, o) < 0)
        return -1;
    if (depth >= MAX_DESCENT)
        return 0;
    if (json_object_is_type(o, json_type_object)) {
        json_object_object_foreach(o, key, val) {
            (void)key;
            if (descend(val, out, depth + 1) < 0)
                return -1;
        }
    } else if (json_object_is_type(o, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(o); i++)
            if (descend(json_object_array_get_idx(o, i), out, depth + 1) < 0)
                return -1;
    }
    return 0;
}

/* A value of each side or none: kubectl compares one value with one value. */
static int operand_value(const struct run *r, const struct operand *o, struct json_object *cur,
                         struct json_object **out, bool *found)
{
    struct nodeset s = { 0 };

    if (!o->is_path) {
        *out = o->value;
        *found = true;
        return 0;
    }
    if (eval_path(r, &o->path, cur, &s) < 0) {
        ns_clear(&s);
        return -1;
    }
    *found = s.n == 1;
    *out = s.n == 1 ? s.v[0] : NULL;
    ns_clear(&s);
    return 0;
}

static bool is_number(struct json_object *o)
{
    return json_object_is_type(o, json_type_int) || json_object_is_type(o, json_type_double);
}

/* Numbers with numbers, strings with strings (byte order), and == and != for
 * the rest; values of different types are only ever unequal. */
static bool compare(struct json_object *a, struct json_object *b, enum op op)
{
    enum json_type ta = json_object_get_type(a), tb = json_object_get_type(b);
    bool ordered = false;
    int c;

    if (is_number(a) && is_number(b)) {
        ordered = true;
        if (ta == json_type_int && tb == json_type_int) {
            int64_t x = json_object_get_int64(a), y = json_object_get_int64(b);
            c = x < y ? -1 : x > y;
        } else {
            double x = json_object_get_double(a), y = json_object_get_double(b);
            c = x < y ? -1 : x > y;
        }
    } else if (ta == json_type_string && tb == json_type_string) {
        ordered = true;
        c = strcmp(json_object_get_string(a), json_object_get_string(b));
    } else if (ta == tb) {
        c = json_object_equal(a, b) ? 0 : 1;
    } else {
        c = 1;
    }
    switch (op) {
    case OP_EQ: return c == 0;
    case OP_NE: return c != 0;
    case OP_LT: return ordered && c < 0;
    case OP_LE: return ordered && c <= 0;
    case OP_GT: return ordered && c > 0;
    case OP_GE: return ordered && c >= 0;
    case OP_EXISTS: break;
    }
    return false;
}

static int filter_match(const struct run *r, const struct filter *f, struct json_object *e, bool *match)
{
    struct json_object *a, *b;
    bool found_a, found_b;

    *match = false;
    if (f->op == OP_EXISTS) {
        struct nodeset s = { 0 };
        int rc = eval_path(r, &f->left.path, e, &s);
        *match = s.n > 0;
        ns_clear(&s);
        return rc;
    }
    if (operand_value(r, &f->left, e, &a, &found_a) < 0 || operand_value(r, &f->right, e, &b, &found_b) < 0)
        return -1;
    *match = found_a && found_b && compare(a, b, f->op);
    return 0;
}

static long long clamp(long long v, long long len)
{
    if (v < 0)
        v += len;
    return v < 0 ? 0 : v > len ? len : v;
}

static int apply_step(const struct run *r, const struct step *st, const struct nodeset *in,
                      struct nodeset *out)
{
    if (st->kind == STEP_UNION) {
        /* Member by member over all the input, as kubectl's example shows:
         * {.items[*]['metadata.name', 'status.capacity']} gives both names first. */
        for (size_t m = 0; m < st->n_members; m++)
            for (size_t i = 0; i < in->n; i++)
                if (eval_path(r, &st->members[m], in->v[i], out) < 0)
                    return -1;
        return 0;
    }
    for (size_t i = 0; i < in->n; i++) {
        struct json_object *o = in->v[i], *v;
        bool is_array = json_object_is_type(o, json_type_array);
        long long len = is_array ? (long long)json_object_array_length(o) : 0;

        switch (st->kind) {
        case STEP_FIELD:
            if (json_object_is_type(o, json_type_object) && json_object_object_get_ex(o, st->name, &v) &&
                ns_add(out, v) < 0)
                return -1;
            break;
        case STEP_WILDCARD:
            if (json_object_is_type(o, json_type_object)) {
                json_object_object_foreach(o, key, val) {
                    (void)key;
                    if (ns_add(out, val) < 0)
                        return -1;
                }
            }
            for (long long k = 0; k < len; k++)
                if (ns_add(out, json_object_array_get_idx(o, (size_t)k)) < 0)
                    return -1;
            break;
        case STEP_RECURSIVE:
            if (descend(o, out, 0) < 0)
                return -1;
            break;
        case STEP_INDEX: {
            /* -n counts from the end and does not wrap around. */
            long long k = st->index < 0 ? st->index + len : st->index;
            if (is_array && k >= 0 && k < len && ns_add(out, json_object_array_get_idx(o, (size_t)k)) < 0)
                return -1;
            break;
        }
        case STEP_SLICE: {
            long long from = st->has_start ? clamp(st->start, len) : 0;
            long long to = st->has_end ? clamp(st->end, len) : len;
            for (long long k = from; is_array && k < to; k += st->stride) {
                if (ns_add(out, json_object_array_get_idx(o, (size_t)k)) < 0)
                    return -1;
                if (st->stride >= to - k)   /* k + stride might not fit */
                    break;
            }
            break;
        }
        case STEP_FILTER:
            /* On an array's elements, as kubectl: an object is not filtered. */
            for (long long k = 0; k < len; k++) {
                struct json_object *e = json_object_array_get_idx(o, (size_t)k);
                bool match;
                if (filter_match(r, st->filter, e, &match) < 0 || (match && ns_add(out, e) < 0))
                    return -1;
            }
            break;
        case STEP_UNION:
            break;
        }
    }
    return 0;
}

/* Appends to out what path selects from cur. */
static int eval_path(const struct run *r, const struct path *path, struct json_object *cur,
                     struct nodeset *out)
{
    struct nodeset in = { 0 };
    int rc = 0;

    if (ns_add(&in, path->from_root ? r->root : cur) < 0)
        return -1;
    for (size_t i = 0; i < path->n && in.n > 0; i++) {
        struct nodeset next = { 0 };
        rc = apply_step(r, &path->v[i], &in, &next);
        ns_clear(&in);
        in = next;
        if (rc < 0)
            break;
    }
    for (size_t i = 0; rc == 0 && i < in.n; i++)
        rc = ns_add(out, in.v[i]);
    ns_clear(&in);
    return rc;
}

static int run_list(const struct run *r, const struct list *l, struct json_object *cur)
{
    for (size_t i = 0; i < l->n; i++) {
        const struct node *n = &l->v[i];
        struct nodeset s = { 0 };
        int rc = 0;

        switch (n->kind) {
        case NODE_TEXT:
            rc = r->sink->text(r->ctx, n->text, n->len);
            break;
        case NODE_VALUES:
            rc = eval_path(r, &n->path, cur, &s);
            if (rc == 0)
                rc = r->sink->values(r->ctx, s.v, s.n);
            break;
        case NODE_RANGE:
            rc = eval_path(r, &n->path, cur, &s);
            for (size_t k = 0; rc == 0 && k < s.n; k++)
                rc = run_list(r, &n->body, s.v[k]);
            break;
        }
        ns_clear(&s);
        if (rc < 0)
            return -1;
    }
    return 0;
}

int vf_jsonpath_execute(const struct vf_jsonpath *jp, struct json_object *doc,
                        const struct vf_jsonpath_sink *sink, void *ctx)
{
    struct run r = { .root = doc, .sink = sink, .ctx = ctx };
    return run_list(&r, &jp->top, doc);
}
