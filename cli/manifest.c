/* YAML/JSON manifests to json-c, driven by libyaml's event parser.
 *
 * The event API (not the document loader) is used so that limits apply while
 * parsing: libyaml's loader would resolve aliases and build the whole tree
 * before we could count anything. */
#include <config.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>
#include "manifest.h"

static bool eq(const char *s, size_t len, const char *lit)
{
    return strlen(lit) == len && memcmp(s, lit, len) == 0;
}

static bool all_in(const char *s, size_t len, const char *set)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '\0' || !strchr(set, s[i]))
            return false;
    return true;
}

#define DIGITS "0123456789"

/* [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )? */
static bool is_core_float(const char *s, size_t len)
{
    size_t i = 0, mant = 0;
    if (i < len && (s[i] == '-' || s[i] == '+'))
        i++;
    while (i < len && s[i] >= '0' && s[i] <= '9')
        i++, mant++;
    if (i < len && s[i] == '.') {
        i++;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++, mant++;
    }
    if (mant == 0)
        return false;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        size_t exp = 0;
        i++;
        if (i < len && (s[i] == '-' || s[i] == '+'))
            i++;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++, exp++;
        if (exp == 0)
            return false;
    }
    return i == len;
}

enum vf_yaml_scalar vf_manifest_classify(const char *s, size_t len)
{
    if (len == 0 || eq(s, len, "~") || eq(s, len, "null") || eq(s, len, "Null") || eq(s, len, "NULL"))
        return VF_YAML_NULL;
    if (eq(s, len, "true") || eq(s, len, "True") || eq(s, len, "TRUE") ||
        eq(s, len, "false") || eq(s, len, "False") || eq(s, len, "FALSE"))
        return VF_YAML_BOOL;
    if (len > 2 && s[0] == '0' && s[1] == 'o' && all_in(s + 2, len - 2, "01234567"))
        return VF_YAML_INT;
    if (len > 2 && s[0] == '0' && s[1] == 'x' && all_in(s + 2, len - 2, DIGITS "abcdefABCDEF"))
        return VF_YAML_INT;
    {
        size_t sign = (s[0] == '-' || s[0] == '+') ? 1 : 0;
        if (all_in(s + sign, len - sign, DIGITS))
            return VF_YAML_INT;
        const char *r = s + sign;
        size_t rlen = len - sign;
        if (eq(r, rlen, ".inf") || eq(r, rlen, ".Inf") || eq(r, rlen, ".INF"))
            return VF_YAML_SPECIAL_FLOAT;
    }
    if (eq(s, len, ".nan") || eq(s, len, ".NaN") || eq(s, len, ".NAN"))
        return VF_YAML_SPECIAL_FLOAT;
    if (is_core_float(s, len))
        return VF_YAML_FLOAT;
    return VF_YAML_STRING;
}

/* Integers in the given base; NULL when the value does not fit int64. */
static struct json_object *parse_int(const char *digits, int base, bool negative)
{
    char *end;
    errno = 0;
    unsigned long long u = strtoull(digits, &end, base);
    if (errno == ERANGE || *end != '\0')
        return NULL;
    if (negative) {
        if (u > (unsigned long long)INT64_MAX + 1)
            return NULL;
        return json_object_new_int64(u == (unsigned long long)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u);
    }
    if (u > INT64_MAX)
        return NULL;
    return json_object_new_int64((int64_t)u);
}

struct json_object *vf_manifest_plain_value(const char *s, size_t len)
{
    enum vf_yaml_scalar kind = vf_manifest_classify(s, len);
    struct json_object *v = NULL;
    char *copy;

    switch (kind) {
    case VF_YAML_NULL:
        return NULL;
    case VF_YAML_BOOL:
        return json_object_new_boolean(s[0] == 't' || s[0] == 'T');
    case VF_YAML_STRING:
    case VF_YAML_SPECIAL_FLOAT:
        return json_object_new_string_len(s, (int)len);
    case VF_YAML_INT:
    case VF_YAML_FLOAT:
        break;
    }
    /* Numbers need a terminated copy for strto*(). */
    copy = strndup(s, len);
    if (!copy)
        return NULL;
    if (kind == VF_YAML_INT) {
        if (copy[0] == '0' && copy[1] == 'x')
            v = parse_int(copy + 2, 16, false);
        else if (copy[0] == '0' && copy[1] == 'o')
            v = parse_int(copy + 2, 8, false);
        else
            v = parse_int(copy + (copy[0] == '-' || copy[0] == '+'), 10, copy[0] == '-');
    } else {
        char *end;
        errno = 0;
        double d = strtod(copy, &end);
        if (errno != ERANGE && *end == '\0')
            v = json_object_new_double(d);
    }
    free(copy);
    /* Out of range: keep the text rather than silently change the number. */
    return v ? v : json_object_new_string_len(s, (int)len);
}

/* ---- the event-driven builder ------------------------------------------ */

struct frame {
    struct json_object *container;   /* borrowed: owned by its parent or the root */
    bool is_map;
    char *key;                       /* a mapping's key awaiting its value */
};

struct builder {
    const char *name;
    char *err;
    size_t errlen;
    struct frame stack[VF_MANIFEST_MAX_DEPTH];
    unsigned depth;
    unsigned long nodes;
    struct json_object *root;
    yaml_mark_t root_mark;
};

static int fail(struct builder *b, yaml_mark_t mark, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct builder *b, yaml_mark_t mark, const char *fmt, ...)
{
    int n = snprintf(b->err, b->errlen, "%s:%zu:%zu: ", b->name, mark.line + 1, mark.column + 1);
    if (n >= 0 && (size_t)n < b->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(b->err + n, b->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static bool is_yaml_tag(const yaml_char_t *tag, const char *what)
{
    return tag && strcmp((const char *)tag, what) == 0;
}

/* Hand a finished value (owned) to its parent, or make it the document root. */
static int attach(struct builder *b, struct json_object *v, yaml_mark_t mark)
{
    if (b->depth == 0) {
        b->root = v;
        b->root_mark = mark;
        return 0;
    }
    struct frame *f = &b->stack[b->depth - 1];
    if (!f->is_map) {
        json_object_array_add(f->container, v);
        return 0;
    }
    json_object_object_add(f->container, f->key, v);
    free(f->key);
    f->key = NULL;
    return 0;
}

static int count_node(struct builder *b, yaml_mark_t mark)
{
    if (++b->nodes > VF_MANIFEST_MAX_NODES)
        return fail(b, mark, "more than %d values in the input; split it into smaller files",
                    VF_MANIFEST_MAX_NODES);
    return 0;
}

/* A scalar in a mapping's key position. */
static int take_key(struct builder *b, struct frame *f, const yaml_event_t *ev)
{
    const char *k = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    if (memchr(k, '\0', len))
        return fail(b, ev->start_mark, "a key contains a NUL character");
    if (json_object_object_get_ex(f->container, k, NULL))
        return fail(b, ev->start_mark, "duplicate key \"%s\"", k);
    f->key = strdup(k);
    return f->key ? 0 : fail(b, ev->start_mark, "out of memory");
}

static int on_scalar(struct builder *b, const yaml_event_t *ev)
{
    const char *s = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    const yaml_char_t *tag = ev->data.scalar.tag;
    struct json_object *v;

    if (count_node(b, ev->start_mark) < 0)
        return -1;
    if (tag && !is_yaml_tag(tag, "!") && !is_yaml_tag(tag, YAML_STR_TAG))
        return fail(b, ev->start_mark, "tag \"%s\" is not supported; quote the value instead",
                    (const char *)tag);
    if (b->depth > 0 && b->stack[b->depth - 1].is_map && !b->stack[b->depth - 1].key)
        return take_key(b, &b->stack[b->depth - 1], ev);

    if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !tag) {
        if (vf_manifest_classify(s, len) == VF_YAML_SPECIAL_FLOAT)
            return fail(b, ev->start_mark, "\"%s\" has no JSON form; quote it to send a string", s);
        v = vf_manifest_plain_value(s, len);
    } else {
        v = json_object_new_string_len(s, (int)len);
    }
    return attach(b, v, ev->start_mark);
}

static int on_start(struct builder *b, const yaml_event_t *ev, bool is_map)
{
    const yaml_char_t *tag = is_map ? ev->data.mapping_start.tag : ev->data.sequence_start.tag;
    struct json_object *c;

    if (count_node(b, ev->start_mark) < 0)
        return -1;
    if (tag && !is_yaml_tag(tag, is_map ? YAML_MAP_TAG : YAML_SEQ_TAG))
        return fail(b, ev->start_mark, "tag \"%s\" is not supported", (const char *)tag);
    if (b->depth > 0 && b->stack[b->depth - 1].is_map && !b->stack[b->depth - 1].key)
        return fail(b, ev->start_mark, "a key must be a plain value, not a %s",
                    is_map ? "mapping" : "sequence");
    if (b->depth == VF_MANIFEST_MAX_DEPTH)
        return fail(b, ev->start_mark, "nested deeper than %d levels", VF_MANIFEST_MAX_DEPTH);
    c = is_map ? json_object_new_object() : json_object_new_array();
    if (!c)
        return fail(b, ev->start_mark, "out of memory");
    if (attach(b, c, ev->start_mark) < 0)
        return -1;
    b->stack[b->depth].container = c;
    b->stack[b->depth].is_map = is_map;
    b->stack[b->depth].key = NULL;
    b->depth++;
    return 0;
}

static void reset_document(struct builder *b)
{
    while (b->depth > 0) {
        free(b->stack[b->depth - 1].key);
        b->depth--;
    }
    json_object_put(b->root);
    b->root = NULL;
}

static int keep_document(struct builder *b, struct vf_manifest *out)
{
    struct vf_manifest_doc *docs;

    /* An empty document (only comments, or "---" alone) parses as null. */
    if (!b->root) {
        reset_document(b);
        return 0;
    }
    docs = realloc(out->docs, (out->n + 1) * sizeof *docs);
    if (!docs)
        return fail(b, b->root_mark, "out of memory");
    out->docs = docs;
    docs[out->n].obj = b->root;
    docs[out->n].line = (unsigned)b->root_mark.line + 1;
    docs[out->n].column = (unsigned)b->root_mark.column + 1;
    out->n++;
    b->root = NULL;
    return 0;
}

static int parser_error(struct builder *b, const yaml_parser_t *p)
{
    const char *problem = p->problem ? p->problem : "cannot parse";
    if (p->error == YAML_MEMORY_ERROR)
        return fail(b, p->problem_mark, "out of memory");
    if (p->context)
        return fail(b, p->problem_mark, "%s (%s at line %zu column %zu)", problem, p->context,
                    p->context_mark.line + 1, p->context_mark.column + 1);
    if (p->error == YAML_READER_ERROR) {
        /* The reader reports a byte offset, not a line. */
        snprintf(b->err, b->errlen, "%s: byte %zu: %s", b->name, p->problem_offset, problem);
        return -1;
    }
    return fail(b, p->problem_mark, "%s", problem);
}

static int handle(struct builder *b, const yaml_event_t *ev, struct vf_manifest *out)
{
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        return on_scalar(b, ev);
    case YAML_MAPPING_START_EVENT:
        return on_start(b, ev, true);
    case YAML_SEQUENCE_START_EVENT:
        return on_start(b, ev, false);
    case YAML_MAPPING_END_EVENT:
    case YAML_SEQUENCE_END_EVENT:
        b->depth--;
        return 0;
    case YAML_ALIAS_EVENT:
        return fail(b, ev->start_mark,
                    "aliases (*%s) are not allowed; write the value out in full",
                    (const char *)ev->data.alias.anchor);
    case YAML_DOCUMENT_START_EVENT:
        reset_document(b);
        return 0;
    case YAML_DOCUMENT_END_EVENT:
        return keep_document(b, out);
    default:
        return 0;
    }
}

int vf_manifest_parse(const char *name, const char *data, size_t len,
                      struct vf_manifest *out, char *err, size_t errlen)
{
    struct builder b = { .name = name, .err = err, .errlen = errlen };
    yaml_parser_t parser;
    int rc = 0;
    bool done = false;

    memset(out, 0, sizeof *out);
    out->name = strdup(name);
    if (!out->name) {
        snprintf(err, errlen, "%s: out of memory", name);
        return -1;
    }
    if (len > VF_MANIFEST_MAX_BYTES) {
        snprintf(err, errlen, "%s: larger than %u MiB", name, VF_MANIFEST_MAX_BYTES >> 20);
        vf_manifest_free(out);
        return -1;
    }
    if (!yaml_parser_initialize(&parser)) {
        snprintf(err, errlen, "%s: out of memory", name);
        vf_manifest_free(out);
        return -1;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
    while (!done && rc == 0) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = parser_error(&b, &parser);
            break;
        }
        rc = handle(&b, &ev, out);
        done = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    reset_document(&b);
    if (rc < 0)
        vf_manifest_free(out);
    return rc;
}

int vf_manifest_load(const char *path, struct vf_manifest *out, char *err, size_t errlen)
{
    bool is_stdin = strcmp(path, "-") == 0;
    const char *name = is_stdin ? "<stdin>" : path;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc;

    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    for (;;) {
        if (len == cap) {
            /* One byte beyond the limit tells "too large" from "exactly the limit". */
            size_t ncap = cap ? cap * 2 : 65536;
            if (ncap > VF_MANIFEST_MAX_BYTES + 1)
                ncap = VF_MANIFEST_MAX_BYTES + 1;
            if (ncap == cap)
                break;
            char *nbuf = realloc(buf, ncap);
            if (!nbuf) {
                snprintf(err, errlen, "%s: out of memory", name);
                rc = -1;
                goto out;
            }
            buf = nbuf;
            cap = ncap;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        snprintf(err, errlen, "%s: read error: %s", name, strerror(errno));
        rc = -1;
        goto out;
    }
    rc = vf_manifest_parse(name, buf ? buf : "", len, out, err, errlen);
out:
    free(buf);
    if (!is_stdin)
        fclose(f);
    return rc;
}

void vf_manifest_free(struct vf_manifest *m)
{
    for (size_t i = 0; i < m->n; i++)
        json_object_put(m->docs[i].obj);
    free(m->docs);
    free(m->name);
    memset(m, 0, sizeof *m);
}
