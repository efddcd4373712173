/* kubectl's JSONPath dialect, the parser: a template becomes a tree
 * (jsonpath_tree.h) once, which jsonpath_eval.c then walks per document.
 * Semantics follow kubernetes.io's "JSONPath Support" page; where that page
 * is silent the choices are noted at the spot. */
#include <config.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "jsonpath_tree.h"

static void path_clear(struct path *p);

static void operand_clear(struct operand *o)
{
    path_clear(&o->path);
    json_object_put(o->value);
}

static void path_clear(struct path *p)
{
    for (size_t i = 0; i < p->n; i++) {
        struct step *s = &p->v[i];
        free(s->name);
        for (size_t m = 0; m < s->n_members; m++)
            path_clear(&s->members[m]);
        free(s->members);
        if (s->filter) {
            operand_clear(&s->filter->left);
            operand_clear(&s->filter->right);
            free(s->filter);
        }
    }
    free(p->v);
    memset(p, 0, sizeof *p);
}

static void list_clear(struct list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].text);
        path_clear(&l->v[i].path);
        list_clear(&l->v[i].body);
    }
    free(l->v);
    memset(l, 0, sizeof *l);
}

void vf_jsonpath_free(struct vf_jsonpath *jp)
{
    if (!jp)
        return;
    list_clear(&jp->top);
    free(jp);
}

/* ---- the parser ------------------------------------------------------ */

struct parser {
    const char *s;
    size_t pos, len;
    int depth;              /* ranges and filters open around pos */
    bool failed;
    char *err;
    size_t errlen;
};

#define QUOTED_TEMPLATE_MAX 200

/* The first error wins: later ones are consequences. */
__attribute__((format(printf, 3, 4)))
static int fail(struct parser *p, size_t offset, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (p->failed)
        return -1;
    p->failed = true;
    if (!p->errlen)
        return -1;
    /* A long template is cut in the message; the offset still locates the fault. */
    n = snprintf(p->err, p->errlen, "jsonpath \"%.*s%s\": at offset %zu: ",
                 (int)(p->len > QUOTED_TEMPLATE_MAX ? QUOTED_TEMPLATE_MAX : p->len), p->s,
                 p->len > QUOTED_TEMPLATE_MAX ? "..." : "", offset);
    if (n < 0 || (size_t)n >= p->errlen)
        return -1;
    va_start(ap, fmt);
    vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static int oom(struct parser *p)
{
    if (!p->failed && p->errlen)
        snprintf(p->err, p->errlen, "out of memory");
    p->failed = true;
    return -1;
}

static char peek(const struct parser *p)
{
    return p->pos < p->len ? p->s[p->pos] : '\0';
}

static char peek_at(const struct parser *p, size_t ahead)
{
    return p->pos + ahead < p->len ? p->s[p->pos + ahead] : '\0';
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void skip_space(struct parser *p)
{
    while (is_space(peek(p)))
        p->pos++;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int expect(struct parser *p, char c, const char *what)
{
    if (peek(p) != c)
        return fail(p, p->pos, "expected %s", what);
    p->pos++;
    return 0;
}

/* Takes word when it is followed by a character that cannot continue it. */
static bool take_word(struct parser *p, const char *word)
{
    size_t n = strlen(word);
    char after;

    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
        return false;
    after = peek_at(p, n);
    if ((after >= 'a' && after <= 'z') || (after >= 'A' && after <= 'Z') || is_digit(after) ||
        after == '_' || after == '-' || after == '.')
        return false;
    p->pos += n;
    return true;
}

static int enter(struct parser *p, size_t offset)
{
    if (++p->depth > VF_JSONPATH_MAX_DEPTH)
        return fail(p, offset, "nesting deeper than %d levels of range and filter", VF_JSONPATH_MAX_DEPTH);
    return 0;
}

/* A growable buffer for names and strings. */
struct buf {
    char *s;
    size_t n, cap;
};

static int buf_add(struct parser *p, struct buf *b, char c)
{
    if (b->n + 2 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        char *s = realloc(b->s, cap);
        if (!s)
            return oom(p);
        b->s = s;
        b->cap = cap;
    }
    b->s[b->n++] = c;
    b->s[b->n] = '\0';
    return 0;
}

/* The character a backslash escape stands for, or -1.  \. is for keys only,
 * where an unescaped dot separates fields. */
static int unescape(char c, bool in_key)
{
    switch (c) {
    case 'n': return '\n';
    case 't': return '\t';
    case 'r': return '\r';
    case '"': return '"';
    case '\'': return '\'';
    case '\\': return '\\';
    case '.': return in_key ? '.' : -1;
    default: return -1;
    }
}

static int bad_escape(struct parser *p, size_t offset, bool in_key)
{
    if (offset + 1 >= p->len)
        return fail(p, offset, "expected a character after \"\\\"");
    return fail(p, offset, "unknown escape \"\\%c\": expected \\n, \\t, \\r, \\\", \\', \\\\%s",
                p->s[offset + 1], in_key ? " or \\." : "");
}

/* The character at pos, a backslash escape read as what it stands for,
 * appended to b; pos moves past it. */
static int take_char(struct parser *p, struct buf *b, bool in_key)
{
    char c = peek(p);
    if (c == '\\') {
        int e = unescape(peek_at(p, 1), in_key);
        if (e < 0)
            return bad_escape(p, p->pos, in_key);
        c = (char)e;
        p->pos++;
    }
    p->pos++;
    return buf_add(p, b, c);
}

/* A "..." or '...' string at pos, without its quotes (malloc'd into *out). */
static int parse_string(struct parser *p, char **out, size_t *outlen)
{
    char quote = peek(p);
    size_t open = p->pos;
    struct buf b = { 0 };

    p->pos++;
    if (buf_add(p, &b, '\0') < 0)       /* so that "" is an empty string, not NULL */
        return -1;
    b.n = 0;
    for (;;) {
        char c = peek(p);
        if (p->pos >= p->len) {
            free(b.s);
            return fail(p, open, "expected a closing %c for this string", quote);
        }
        if (c == quote) {
            p->pos++;
            break;
        }
        if (take_char(p, &b, false) < 0) {
            free(b.s);
            return -1;
        }
    }
    *out = b.s;
    if (outlen)
        *outlen = b.n;
    return 0;
}

static struct step *add_step(struct parser *p, struct path *path, enum step_kind kind)
{
    struct step *v = realloc(path->v, (path->n + 1) * sizeof *v);
    if (!v) {
        oom(p);
        return NULL;
    }
    path->v = v;
    memset(&v[path->n], 0, sizeof *v);
    v[path->n].kind = kind;
    return &v[path->n++];
}

static int add_field(struct parser *p, struct path *path, char *name)
{
    struct step *s = add_step(p, path, STEP_FIELD);
    if (!s) {
        free(name);
        return -1;
    }
    s->name = name;
    return 0;
}

/* Characters that end a name after a dot (unless escaped with \). */
static bool ends_name(char c)
{
    return c == '\0' || is_space(c) || strchr(".[](){},'\"=!<>", c) != NULL;
}

/* .name: kubectl's \. keeps a dot inside the name (label keys). */
static int parse_dotted_name(struct parser *p, struct path *path)
{
    struct buf b = { 0 };

    while (!ends_name(peek(p))) {
        if (take_char(p, &b, true) < 0) {
            free(b.s);
            return -1;
        }
    }
    return add_field(p, path, b.s);
}

/* ['a.b\.c']: as kubectl, a dot inside the quotes separates fields, and \.
 * is a dot in a key ("{['metadata.name']}" is the name). */
static int parse_quoted_key(struct parser *p, struct path *path)
{
    char quote = peek(p);
    size_t open = p->pos;
    struct buf b = { 0 };

    p->pos++;
    for (;;) {
        char c = peek(p);
        if (p->pos >= p->len) {
            free(b.s);
            return fail(p, open, "expected a closing %c for this key", quote);
        }
        if (c == quote || (c == '.')) {
            if (buf_add(p, &b, '\0') < 0) {  /* an empty key is a key */
                free(b.s);
                return -1;
            }
            b.n--;
            if (add_field(p, path, b.s) < 0)
                return -1;
            memset(&b, 0, sizeof b);
            p->pos++;
            if (c == quote)
                return 0;
            continue;
        }
        if (take_char(p, &b, true) < 0) {
            free(b.s);
            return -1;
        }
    }
}

/* An optional integer at pos: returns 1 when there was one, 0 when not. */
static int parse_int(struct parser *p, long long *out)
{
    size_t start = p->pos;
    bool negative = false;
    long long v = 0;

    if (peek(p) == '-') {
        negative = true;
        p->pos++;
    }
    if (!is_digit(peek(p))) {
        if (negative)
            return fail(p, p->pos, "expected a digit after \"-\"");
        return 0;
    }
    while (is_digit(peek(p))) {
        int digit = peek(p) - '0';
        if (v > (INT64_MAX - digit) / 10)
            return fail(p, start, "number too large");
        v = v * 10 + digit;
        p->pos++;
    }
    *out = negative ? -v : v;
    return 1;
}

/* n, or start:end, or start:end:step, each part optional in a slice. */
static int parse_index_or_slice(struct parser *p, struct path *path)
{
    long long a = 0, b = 0, c = 1;
    int has_a, has_b = 0, has_c = 0;
    struct step *s;

    if ((has_a = parse_int(p, &a)) < 0)
        return -1;
    skip_space(p);
    if (peek(p) != ':') {
        s = add_step(p, path, STEP_INDEX);
        if (!s)
            return -1;
        s->index = a;
        return 0;
    }
    p->pos++;
    skip_space(p);
    if ((has_b = parse_int(p, &b)) < 0)
        return -1;
    skip_space(p);
    if (peek(p) == ':') {
        size_t at;
        p->pos++;
        skip_space(p);
        at = p->pos;
        if ((has_c = parse_int(p, &c)) < 0)
            return -1;
        /* kubectl refuses a step below 1: no walking backwards. */
        if (has_c && c < 1)
            return fail(p, at, "expected a step greater than 0");
    }
    s = add_step(p, path, STEP_SLICE);
    if (!s)
        return -1;
    s->start = a;
    s->has_start = has_a;
    s->end = b;
    s->has_end = has_b;
    s->stride = has_c ? c : 1;
    return 0;
}

static int parse_path(struct parser *p, struct path *path);

static const char operand_help[] = "@, $, a number, a quoted string, true, false or null";

static int parse_operand(struct parser *p, struct operand *o, const char *after_op)
{
    char c = peek(p);
    size_t start = p->pos;

    if (c == '@' || c == '$') {
        o->is_path = true;
        return parse_path(p, &o->path);
    }
    if (c == '"' || c == '\'') {
        char *s;
        size_t n;
        if (parse_string(p, &s, &n) < 0)
            return -1;
        o->value = json_object_new_string_len(s, (int)n);
        free(s);
        return o->value ? 0 : oom(p);
    }
    if (c == '-' || is_digit(c)) {
        /* JSON's number syntax: -?digits(.digits)?([eE][+-]?digits)? */
        bool integer = true;
        char *text, *end;
        if (c == '-')
            p->pos++;
        if (!is_digit(peek(p)))
            return fail(p, p->pos, "expected a digit after \"-\"");
        while (is_digit(peek(p)))
            p->pos++;
        if (peek(p) == '.' && is_digit(peek_at(p, 1))) {
            integer = false;
            p->pos++;
            while (is_digit(peek(p)))
                p->pos++;
        }
        if (peek(p) == 'e' || peek(p) == 'E') {
            integer = false;
            p->pos++;
            if (peek(p) == '+' || peek(p) == '-')
                p->pos++;
            if (!is_digit(peek(p)))
                return fail(p, p->pos, "expected the exponent's digits");
            while (is_digit(peek(p)))
                p->pos++;
        }
        text = strndup(p->s + start, p->pos - start);
        if (!text)
            return oom(p);
        errno = 0;
        if (integer) {
            long long v = strtoll(text, &end, 10);
            if (errno == ERANGE)
                integer = false;
            else
                o->value = json_object_new_int64(v);
        }
        if (!integer)
            o->value = json_object_new_double(strtod(text, &end));
        free(text);
        return o->value ? 0 : oom(p);
    }
    if (take_word(p, "true") || take_word(p, "false")) {
        o->value = json_object_new_boolean(p->s[start] == 't');
        return o->value ? 0 : oom(p);
    }
    if (take_word(p, "null"))
        return 0;
    if (after_op)
        return fail(p, start, "expected a value after \"%s\"", after_op);
    return fail(p, start, "expected %s", operand_help);
}

/* ?( ... ) after the "[": pos at "?". */
static int parse_filter(struct parser *p, struct path *path)
{
    static const struct { const char *text; enum op op; } ops[] = {
        { "==", OP_EQ }, { "!=", OP_NE }, { "<=", OP_LE }, { ">=", OP_GE },
        { "=", OP_EQ },     /* kubectl takes a single = too */
        { "<", OP_LT }, { ">", OP_GT },
    };
    struct step *s;
    size_t i;

    if (enter(p, p->pos) < 0)
        return -1;
    p->pos++;
    skip_space(p);
    if (expect(p, '(', "\"(\" after \"?\"") < 0)
        return -1;
    s = add_step(p, path, STEP_FILTER);
    if (!s)
        return -1;
    s->filter = calloc(1, sizeof *s->filter);
    if (!s->filter)
        return oom(p);
    skip_space(p);
    if (parse_operand(p, &s->filter->left, NULL) < 0)
        return -1;
    skip_space(p);
    for (i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (strncmp(p->s + p->pos, ops[i].text, strlen(ops[i].text)) == 0)
            break;
    if (i == sizeof ops / sizeof ops[0]) {
        if (peek(p) != ')')
            return fail(p, p->pos, "expected an operator (==, !=, <, <=, >, >=) or \")\"");
        if (!s->filter->left.is_path)
            return fail(p, p->pos, "expected an operator after a value: only a path can stand alone");
        s->filter->op = OP_EXISTS;
    } else {
        s->filter->op = ops[i].op;
        p->pos += strlen(ops[i].text);
        skip_space(p);
        if (parse_operand(p, &s->filter->right, ops[i].text) < 0)
            return -1;
        skip_space(p);
    }
    if (expect(p, ')', "\")\" to close the filter") < 0)
        return -1;
    p->depth--;
    return 0;
}

/* [ ... ]: pos at "[". */
static int parse_bracket(struct parser *p, struct path *path)
{
    size_t open = p->pos;
    struct path *union_members = NULL;
    size_t n_members = 0;
    struct step *s;

    p->pos++;
    skip_space(p);
    if (peek(p) == '?') {
        if (parse_filter(p, path) < 0)
            return -1;
        skip_space(p);
        return expect(p, ']', "\"]\" after the filter");
    }
    if (peek(p) == '*') {
        p->pos++;
        skip_space(p);
        if (!add_step(p, path, STEP_WILDCARD))
            return -1;
        return expect(p, ']', "\"]\" after \"*\"");
    }
    for (;;) {
        char c = peek(p);
        struct path *grown = realloc(union_members, (n_members + 1) * sizeof *grown);
        if (!grown) {
            oom(p);
            goto fail;
        }
        union_members = grown;
        memset(&union_members[n_members], 0, sizeof *grown);
        n_members++;
        if (c == '\'' || c == '"') {
            if (parse_quoted_key(p, &union_members[n_members - 1]) < 0)
                goto fail;
        } else if (c == '-' || c == ':' || is_digit(c)) {
            if (parse_index_or_slice(p, &union_members[n_members - 1]) < 0)
                goto fail;
        } else if (n_members == 1) {
            fail(p, p->pos, "expected an index, a slice, a quoted key, \"*\" or \"?(\" after \"[\"");
            goto fail;
        } else {
            fail(p, p->pos, "expected an index, a slice or a quoted key after \",\"");
            goto fail;
        }
        skip_space(p);
        if (peek(p) == ']') {
            p->pos++;
            break;
        }
        if (peek(p) != ',') {
            fail(p, p->pos, "expected \",\" or \"]\" (the \"[\" is at offset %zu)", open);
            goto fail;
        }
        p->pos++;
        skip_space(p);
    }
    if (n_members == 1) {
        /* One member: its steps join the path. */
        struct path *m = &union_members[0];
        for (size_t i = 0; i < m->n; i++) {
            s = add_step(p, path, m->v[i].kind);
            if (!s)
                goto fail;
            *s = m->v[i];
            memset(&m->v[i], 0, sizeof m->v[i]);
        }
        path_clear(m);
        free(union_members);
        return 0;
    }
    s = add_step(p, path, STEP_UNION);
    if (!s)
        goto fail;
    s->members = union_members;
    s->n_members = n_members;
    return 0;
fail:
    for (size_t i = 0; i < n_members; i++)
        path_clear(&union_members[i]);
    free(union_members);
    return -1;
}

/* [$|@] then steps.  The caller checks that something was there. */
static int parse_path(struct parser *p, struct path *path)
{
    if (peek(p) == '$') {
        path->from_root = true;
        p->pos++;
    } else if (peek(p) == '@') {
        p->pos++;
    }
    for (;;) {
        char c = peek(p);
        if (c == '.' && peek_at(p, 1) == '.') {
            p->pos += 2;
            if (!add_step(p, path, STEP_RECURSIVE))
                return -1;
            c = peek(p);
            if (c == '*') {
                p->pos++;
                if (!add_step(p, path, STEP_WILDCARD))
                    return -1;
            } else if (c == '[') {
                continue;
            } else if (!ends_name(c)) {
                if (parse_dotted_name(p, path) < 0)
                    return -1;
            } else {
                return fail(p, p->pos, "expected a field name, \"*\" or \"[\" after \"..\"");
            }
        } else if (c == '.') {
            p->pos++;
            c = peek(p);
            if (c == '*') {
                p->pos++;
                if (!add_step(p, path, STEP_WILDCARD))
                    return -1;
            } else if (!ends_name(c)) {
                if (parse_dotted_name(p, path) < 0)
                    return -1;
            } else {
                return fail(p, p->pos, "expected a field name or \"*\" after \".\"");
            }
        } else if (c == '[') {
            if (parse_bracket(p, path) < 0)
                return -1;
        } else {
            return 0;
        }
    }
}

/* An expression inside {}: pos at its first character. */
static int parse_expression(struct parser *p, struct path *path, const char *what)
{
    char c = peek(p);

    if (c != '.' && c != '[' && c != '$' && c != '@')
        return fail(p, p->pos, "expected %s", what);
    if (parse_path(p, path) < 0)
        return -1;
    skip_space(p);
    if (peek(p) != '}')
        return fail(p, p->pos, "expected \"}\"");
    p->pos++;
    return 0;
}

static struct node *add_node(struct parser *p, struct list *l, enum node_kind kind)
{
    struct node *v = realloc(l->v, (l->n + 1) * sizeof *v);
    if (!v) {
        oom(p);
        return NULL;
    }
    l->v = v;
    memset(&v[l->n], 0, sizeof *v);
    v[l->n].kind = kind;
    return &v[l->n++];
}

static int add_text(struct parser *p, struct list *l, const char *s, size_t len)
{
    struct node *n = add_node(p, l, NODE_TEXT);
    if (!n)
        return -1;
    n->text = malloc(len + 1);
    if (!n->text)
        return oom(p);
    memcpy(n->text, s, len);
    n->text[len] = '\0';
    n->len = len;
    return 0;
}

#define NO_RANGE SIZE_MAX

/* Text and {...} until the end, or until the {end} of the range opened at
 * range_open. */
static int parse_list(struct parser *p, struct list *l, size_t range_open)
{
    while (p->pos < p->len) {
        const char *brace = memchr(p->s + p->pos, '{', p->len - p->pos);
        size_t stop = brace ? (size_t)(brace - p->s) : p->len, open;
        struct node *n;

        if (stop > p->pos && add_text(p, l, p->s + p->pos, stop - p->pos) < 0)
            return -1;
        p->pos = stop;
        if (!brace)
            break;
        open = p->pos++;
        skip_space(p);
        if (peek(p) == '"') {
            char *s;
            size_t len;
            if (parse_string(p, &s, &len) < 0)
                return -1;
            n = add_node(p, l, NODE_TEXT);
            if (!n) {
                free(s);
                return -1;
            }
            n->text = s;
            n->len = len;
            skip_space(p);
            if (expect(p, '}', "\"}\" after the string") < 0)
                return -1;
        } else if (take_word(p, "end")) {
            skip_space(p);
            if (expect(p, '}', "\"}\" after \"end\"") < 0)
                return -1;
            if (range_open == NO_RANGE)
                return fail(p, open, "{end} without {range}");
            return 0;
        } else if (take_word(p, "range")) {
            skip_space(p);
            if (enter(p, open) < 0)
                return -1;
            n = add_node(p, l, NODE_RANGE);
            if (!n)
                return -1;
            if (parse_expression(p, &n->path, "a path after \"range\", such as .items[*]") < 0 ||
                parse_list(p, &n->body, open) < 0)
                return -1;
            p->depth--;
        } else {
            n = add_node(p, l, NODE_VALUES);
            if (!n)
                return -1;
            if (parse_expression(p, &n->path,
                                 "a path such as .metadata.name, a \"quoted string\", range or end") < 0)
                return -1;
        }
    }
    if (range_open != NO_RANGE)
        return fail(p, range_open, "{range} without {end}");
    return 0;
}

struct vf_jsonpath *vf_jsonpath_parse(const char *tmpl, char *err, size_t errlen)
{
    struct parser p = { .s = tmpl, .len = strlen(tmpl), .err = err, .errlen = errlen };
    struct vf_jsonpath *jp;

    if (p.len > VF_JSONPATH_MAX_LEN) {
        snprintf(err, errlen, "jsonpath template of %zu bytes: longer than the limit of %d",
                 p.len, VF_JSONPATH_MAX_LEN);
        return NULL;
    }
    jp = calloc(1, sizeof *jp);
    if (!jp) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (parse_list(&p, &jp->top, NO_RANGE) < 0 || p.failed) {
        vf_jsonpath_free(jp);
        return NULL;
    }
    return jp;
}

