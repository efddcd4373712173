/* Module settings against the module's declared schema: the config loader
 * keeps settings as written, and once a module is loaded its schema says what
 * they mean.  The output is what the module's configure()/start() receive:
 * defaults filled, sizes in bytes, durations in milliseconds, so no module
 * parses a quantity itself. */
#include <config.h>
#include "config.h"
#include "quantity.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#define PATH_MAX_LEN 512
#define TEXT_MAX 100

struct checker {
    const struct vf_config *cfg;
    const char *file;
    int fallback_line;          /* the module entry's line */
    struct vf_config_errors *errors;
    unsigned problems;
    bool in_default;            /* checking a schema's default_value: the module's bug */
};

/* The line of path, or of the nearest enclosing setting that was written. */
static int line_of(const struct checker *ck, const char *path)
{
    char p[PATH_MAX_LEN];

    snprintf(p, sizeof p, "%s", path);
    for (;;) {
        int line = vf_config_line(ck->cfg, p);
        char *cut;
        if (line > 0)
            return line;
        cut = strrchr(p, '.');
        if (strrchr(p, '[') > cut)
            cut = strrchr(p, '[');
        if (!cut)
            return ck->fallback_line;
        *cut = '\0';
    }
}

static void problem(struct checker *ck, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void problem(struct checker *ck, const char *path, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ck->problems++;
    vf_config_errors_add(ck->errors, "%s:%d: %s: %s%s", ck->file, line_of(ck, path), path,
                         ck->in_default ? "the module's default is invalid: " : "", msg);
}

#define Q(s) vf_config_quote((s), (char[TEXT_MAX]){0}, TEXT_MAX)

/* What was written, for "expected X, got Y". */
static const char *got(struct json_object *v, char *buf, size_t len)
{
    char q[TEXT_MAX];

    switch (json_object_get_type(v)) {
    case json_type_object:
        return "a group";
    case json_type_array:
        return "a list";
    case json_type_int:
        snprintf(buf, len, "the integer %lld", (long long)json_object_get_int64(v));
        return buf;
    case json_type_double:
        snprintf(buf, len, "the float %g", json_object_get_double(v));
        return buf;
    case json_type_boolean:
        return json_object_get_boolean(v) ? "the boolean true" : "the boolean false";
    case json_type_string:
        snprintf(buf, len, "the string %s", vf_config_quote(json_object_get_string(v), q, sizeof q));
        return buf;
    default:
        return "nothing";
    }
}

#define GOT(v) got((v), (char[TEXT_MAX + 16]){0}, TEXT_MAX + 16)

/* What the value was, for "got ...": strings quoted, numbers bare. */
static const char *written(struct json_object *v, char *buf, size_t len)
{
    if (json_object_is_type(v, json_type_string))
        return vf_config_quote(json_object_get_string(v), buf, len);
    snprintf(buf, len, "%lld", (long long)json_object_get_int64(v));
    return buf;
}

#define WRITTEN(v) written((v), (char[TEXT_MAX]){0}, TEXT_MAX)

static void path_member(char *buf, const char *parent, const char *name)
{
    snprintf(buf, PATH_MAX_LEN, "%s.%s", parent, name);
}

/* ---- bounds ---------------------------------------------------------------- */

enum bounds { IN_BOUNDS, BELOW, ABOVE };

static enum bounds bounds_check(const struct vf_setting *st, int64_t v)
{
    if (st->min == 0 && st->max == 0)
        return IN_BOUNDS;
    if (v < st->min)
        return BELOW;
    /* max 0 with a min set: "at least min" (see config.h). */
    if (st->max != 0 && v > st->max)
        return ABOVE;
    return IN_BOUNDS;
}

typedef void (*format_fn)(int64_t v, char *buf, unsigned len);

static void format_int(int64_t v, char *buf, unsigned len)
{
    snprintf(buf, len, "%lld", (long long)v);
}

/* "an integer between 1 and 10", "a size of at least 1Mi". */
static void bounds_text(const struct vf_setting *st, const char *what, format_fn fmt, char *buf,
                        size_t len)
{
    char lo[32], hi[32];

    fmt(st->min, lo, sizeof lo);
    fmt(st->max, hi, sizeof hi);
    if (st->max == 0)
        snprintf(buf, len, "%s of at least %s", what, lo);
    else
        snprintf(buf, len, "%s between %s and %s", what, lo, hi);
}

size_t vf_settings_bounds_text(const struct vf_setting *st, char *buf, size_t len)
{
    bool size = st->type == VF_SETTING_SIZE;
    if (st->min == 0 && st->max == 0)
        return 0;
    if (size || st->type == VF_SETTING_DURATION)
        bounds_text(st, size ? "a size" : "a duration", size ? vf_quantity_format : vf_duration_format,
                    buf, len);
    else
        bounds_text(st, "an integer", format_int, buf, len);
    return strlen(buf);
}

/* ---- values ---------------------------------------------------------------- */

static int check_group(struct checker *ck, const struct vf_setting *children,
                       struct json_object *in, const char *path, struct json_object **out);

/* A size or duration: a string parsed by `parse`, or an integer in `unit`s. */
static int check_amount(struct checker *ck, const struct vf_setting *st, struct json_object *v,
                        const char *path, struct json_object **out)
{
    bool size = st->type == VF_SETTING_SIZE;
    const char *what = size ? "a size" : "a duration";
    const char *like = size ? "a size like \"640Mi\"" : "a duration like \"150s\" or \"1h30m\"";
    format_fn fmt = size ? vf_quantity_format : vf_duration_format;
    int64_t amount;
    char text[96];
    int r;

    if (json_object_is_type(v, json_type_string)) {
        const char *s = json_object_get_string(v);
        r = size ? vf_quantity_parse(s, &amount) : vf_duration_parse(s, &amount);
        if (r == -ERANGE) {
            problem(ck, path, "%s is too large", Q(s));
            return -EINVAL;
        }
        if (r < 0) {
            problem(ck, path, "expected %s, got %s", like, Q(s));
            return -EINVAL;
        }
    } else if (json_object_is_type(v, json_type_int)) {
        amount = json_object_get_int64(v);
        if (amount < 0) {
            problem(ck, path, "expected %s, got %lld", like, (long long)amount);
            return -EINVAL;
        }
        /* A bare number is bytes for a size and seconds for a duration. */
        if (!size) {
            if (amount > INT64_MAX / 1000) {
                problem(ck, path, "%lld is too large", (long long)amount);
                return -EINVAL;
            }
            amount *= 1000;
        }
    } else {
        problem(ck, path, "expected %s, got %s", like, GOT(v));
        return -EINVAL;
    }
    if (bounds_check(st, amount) != IN_BOUNDS) {
        bounds_text(st, what, fmt, text, sizeof text);
        problem(ck, path, "expected %s, got %s", text, WRITTEN(v));
        return -EINVAL;
    }
    *out = json_object_new_int64(amount);
    return 0;
}

static int check_string(struct checker *ck, const struct vf_setting *st, struct json_object *v,
                        const char *path, struct json_object **out)
{
    const char *s;
    char list[512];
    size_t o = 0;
    unsigned n = 0;
    const char *hint;

    if (!json_object_is_type(v, json_type_string)) {
        problem(ck, path, "expected a string, got %s", GOT(v));
        return -EINVAL;
    }
    s = json_object_get_string(v);
    if (st->choices) {
        for (n = 0; st->choices[n]; n++)
            if (strcmp(s, st->choices[n]) == 0)
                break;
        if (!st->choices[n]) {
            list[0] = '\0';
            for (unsigned i = 0; i < n && o < sizeof list; i++)
                o += (size_t)snprintf(list + o, sizeof list - o, "%s\"%s\"", i ? ", " : "",
                                      st->choices[i]);
            hint = vf_config_suggest(s, st->choices, n);
            if (hint)
                problem(ck, path, "expected one of %s, got %s; did you mean \"%s\"?", list, Q(s), hint);
            else
                problem(ck, path, "expected one of %s, got %s", list, Q(s));
            return -EINVAL;
        }
    }
    *out = json_object_new_string(s);
    return 0;
}

static int check_strings(struct checker *ck, struct json_object *v, const char *path,
                         struct json_object **out)
{
    struct json_object *arr;
    char p[PATH_MAX_LEN];
    int r = 0;

    if (!json_object_is_type(v, json_type_array)) {
        problem(ck, path, "expected a list of strings like [ \"a\", \"b\" ], got %s", GOT(v));
        return -EINVAL;
    }
    arr = json_object_new_array();
    for (size_t i = 0; i < json_object_array_length(v); i++) {
        struct json_object *e = json_object_array_get_idx(v, i);
        if (!json_object_is_type(e, json_type_string)) {
            snprintf(p, sizeof p, "%s[%zu]", path, i);
            problem(ck, p, "expected a string, got %s", GOT(e));
            r = -EINVAL;
            continue;
        }
        json_object_array_add(arr, json_object_new_string(json_object_get_string(e)));
    }
    if (r < 0) {
        json_object_put(arr);
        return r;
    }
    *out = arr;
    return 0;
}

/* Check v (borrowed) against st; *out: the converted value (new). */
static int check_value(struct checker *ck, const struct vf_setting *st, struct json_object *v,
                       const char *path, struct json_object **out)
{
    char text[96];

    *out = NULL;
    switch (st->type) {
    case VF_SETTING_BOOL:
        if (!json_object_is_type(v, json_type_boolean)) {
            problem(ck, path, "expected a boolean (true or false), got %s", GOT(v));
            return -EINVAL;
        }
        *out = json_object_new_boolean(json_object_get_boolean(v));
        return 0;
    case VF_SETTING_INT:
        if (!json_object_is_type(v, json_type_int)) {
            problem(ck, path, "expected an integer, got %s", GOT(v));
            return -EINVAL;
        }
        if (bounds_check(st, json_object_get_int64(v)) != IN_BOUNDS) {
            bounds_text(st, "an integer", format_int, text, sizeof text);
            problem(ck, path, "expected %s, got %lld", text, (long long)json_object_get_int64(v));
            return -EINVAL;
        }
        *out = json_object_new_int64(json_object_get_int64(v));
        return 0;
    case VF_SETTING_STRING:
        return check_string(ck, st, v, path, out);
    case VF_SETTING_SIZE:
    case VF_SETTING_DURATION:
        return check_amount(ck, st, v, path, out);
    case VF_SETTING_STRINGS:
        return check_strings(ck, v, path, out);
    case VF_SETTING_GROUP:
        if (!json_object_is_type(v, json_type_object)) {
            problem(ck, path, "expected a group, got %s", GOT(v));
            return -EINVAL;
        }
        return check_group(ck, st->children, v, path, out);
    }
    problem(ck, path, "the module's schema has an unknown setting type %d", (int)st->type);
    return -EINVAL;
}

/* default_value, written as in the file (see config.h), as the JSON the file
 * would have produced; NULL when it cannot be read at all. */
static struct json_object *default_json(const struct vf_setting *st)
{
    const char *d = st->default_value;

    switch (st->type) {
    case VF_SETTING_BOOL:
        if (strcmp(d, "true") == 0 || strcmp(d, "false") == 0)
            return json_object_new_boolean(d[0] == 't');
        return json_object_new_string(d);
    case VF_SETTING_INT: {
        char *end;
        long long v;
        errno = 0;
        /* As in the file: decimal or 0x hex, never octal. */
        v = strtoll(d, &end, d[0] == '0' && (d[1] == 'x' || d[1] == 'X') ? 16 : 10);
        if (*d && !*end && errno == 0)
            return json_object_new_int64(v);
        return json_object_new_string(d);
    }
    case VF_SETTING_STRINGS: {
        struct json_object *arr = json_object_new_array();
        const char *p = d;
        while (arr && *p) {
            size_t n = strcspn(p, ",");
            size_t b = 0, e = n;
            while (b < e && p[b] == ' ')
                b++;
            while (e > b && p[e - 1] == ' ')
                e--;
            json_object_array_add(arr, json_object_new_string_len(p + b, (int)(e - b)));
            p += n;
            if (*p == ',')
                p++;
        }
        return arr;
    }
    default:
        return json_object_new_string(d);
    }
}

static const struct vf_setting *schema_find(const struct vf_setting *children, const char *name)
{
    for (const struct vf_setting *st = children; st && st->name; st++)
        if (strcmp(st->name, name) == 0)
            return st;
    return NULL;
}

static void unknown_setting(struct checker *ck, const struct vf_setting *children,
                            const char *name, const char *path)
{
    const char *names[64];
    unsigned n = 0;
    char list[512];
    size_t o = 0;
    const char *hint;

    for (const struct vf_setting *st = children; st && st->name && n < 64; st++)
        names[n++] = st->name;
    hint = vf_config_suggest(name, names, n);
    if (hint) {
        problem(ck, path, "unknown setting; did you mean \"%s\"?", hint);
        return;
    }
    if (n == 0) {
        problem(ck, path, "unknown setting (this module has no settings here)");
        return;
    }
    list[0] = '\0';
    for (unsigned i = 0; i < n && o < sizeof list; i++)
        o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "", names[i]);
    problem(ck, path, "unknown setting (known: %s)", list);
}

/* in: the group as written (borrowed), or NULL when absent (only defaults). */
static int check_group(struct checker *ck, const struct vf_setting *children,
                       struct json_object *in, const char *path, struct json_object **out)
{
    struct json_object *obj = json_object_new_object();
    char p[PATH_MAX_LEN];
    int r = 0;

    *out = NULL;
    if (!obj)
        return -ENOMEM;
    if (in) {
        json_object_object_foreach(in, key, val) {
            (void)val;
            if (!schema_find(children, key)) {
                path_member(p, path, key);
                unknown_setting(ck, children, key, p);
                r = -EINVAL;
            }
        }
    }
    for (const struct vf_setting *st = children; st && st->name; st++) {
        struct json_object *v = NULL, *conv = NULL;
        path_member(p, path, st->name);
        if (in && json_object_object_get_ex(in, st->name, &v)) {
            if (check_value(ck, st, v, p, &conv) < 0)
                r = -EINVAL;
        } else if (st->flags & VF_SETTING_REQUIRED) {
            problem(ck, p, "required setting missing");
            r = -EINVAL;
        } else if (st->type == VF_SETTING_GROUP) {
            /* Absent group: its members' defaults still apply. */
            if (check_group(ck, st->children, NULL, p, &conv) < 0)
                r = -EINVAL;
        } else if (st->default_value) {
            struct json_object *d = default_json(st);
            bool was = ck->in_default;
            ck->in_default = true;
            if (!d || check_value(ck, st, d, p, &conv) < 0)
                r = -EINVAL;
            ck->in_default = was;
            json_object_put(d);
        }
        if (conv)
            json_object_object_add(obj, st->name, conv);
    }
    if (r < 0) {
        json_object_put(obj);
        return r;
    }
    *out = obj;
    return 0;
}

int vf_settings_check(const struct vf_config *cfg, const struct vf_config_module *m,
                      const struct vf_setting *schema, struct json_object **out,
                      struct vf_config_errors *errors)
{
    struct checker ck = {
        .cfg = cfg,
        .file = cfg && cfg->path ? cfg->path : "(config)",
        .fallback_line = m ? m->line : 0,
        .errors = errors,
    };
    char path[PATH_MAX_LEN];
    int r;

    *out = NULL;
    if (!m || !m->name)
        return -EINVAL;
    snprintf(path, sizeof path, "modules.%s.settings", m->name);
    r = check_group(&ck, schema, m->settings, path, out);
    if (r == 0 && ck.problems)
        r = -EINVAL;
    if (r < 0) {
        json_object_put(*out);
        *out = NULL;
    }
    return r;
}
