/* Output formats.  Tables follow kubectl's printer (text/tabwriter with a
 * padding of three); AGE follows apimachinery's duration.HumanDuration, so
 * admins read the same figures they know from kubectl. */
#include <config.h>
#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>
#include "jsonpath.h"
#include "manifest.h"
#include "render.h"

#define COLUMN_GAP 3

void vf_render_age(time_t now, time_t then, char *buf, size_t len)
{
    long long s = (long long)difftime(now, then);
    long long m, h, d;

    if (s < -1) {
        snprintf(buf, len, "<invalid>");
        return;
    }
    if (s < 0)
        s = 0;
    if (s < 60 * 2) {
        snprintf(buf, len, "%llds", s);
        return;
    }
    m = s / 60;
    if (m < 10) {
        if (s % 60)
            snprintf(buf, len, "%lldm%llds", m, s % 60);
        else
            snprintf(buf, len, "%lldm", m);
        return;
    }
    if (m < 60 * 3) {
        snprintf(buf, len, "%lldm", m);
        return;
    }
    h = m / 60;
    if (h < 8) {
        if (m % 60)
            snprintf(buf, len, "%lldh%lldm", h, m % 60);
        else
            snprintf(buf, len, "%lldh", h);
        return;
    }
    if (h < 48) {
        snprintf(buf, len, "%lldh", h);
        return;
    }
    d = h / 24;
    if (h < 24 * 8) {
        if (h % 24)
            snprintf(buf, len, "%lldd%lldh", d, h % 24);
        else
            snprintf(buf, len, "%lldd", d);
        return;
    }
    if (h < 24 * 365 * 2) {
        snprintf(buf, len, "%lldd", d);
        return;
    }
    if (h < 24 * 365 * 8) {
        if (d % 365)
            snprintf(buf, len, "%lldy%lldd", d / 365, d % 365);
        else
            snprintf(buf, len, "%lldy", d / 365);
        return;
    }
    snprintf(buf, len, "%lldy", d / 365);
}

static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int vf_render_parse_time(const char *s, time_t *out)
{
    struct tm tm = { 0 };
    long offset = 0;
    const char *p;

    if (!s || strlen(s) < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
        s[13] != ':' || s[16] != ':')
        return -1;
    int year = digits(s, 4);
    if (year < 1)
        return -1;
    tm.tm_year = year - 1900;
    tm.tm_mon = digits(s + 5, 2) - 1;
    tm.tm_mday = digits(s + 8, 2);
    tm.tm_hour = digits(s + 11, 2);
    tm.tm_min = digits(s + 14, 2);
    tm.tm_sec = digits(s + 17, 2);
    if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 ||
        tm.tm_mday > 31 || tm.tm_hour < 0 || tm.tm_hour > 23 || tm.tm_min < 0 || tm.tm_min > 59 ||
        tm.tm_sec < 0 || tm.tm_sec > 60)
        return -1;
    p = s + 19;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return -1;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
        offset = 0;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        int hh = digits(p + 1, 2), mm = digits(p + 4, 2);
        if (hh < 0 || hh > 23 || mm < 0 || mm > 59)
            return -1;
        offset = (hh * 3600L + mm * 60L) * (*p == '-' ? -1 : 1);
    } else {
        return -1;
    }
    *out = timegm(&tm) - offset;
    return 0;
}

struct json_object *vf_render_lookup(struct json_object *obj, const char *path)
{
    const char *p = path;
    char key[256];

    if (*p == '.')
        p++;
    while (*p && obj) {
        if (*p == '[') {
            char *end;
            long idx = strtol(p + 1, &end, 10);
            if (end == p + 1 || *end != ']' || idx < 0 || !json_object_is_type(obj, json_type_array) ||
                (size_t)idx >= json_object_array_length(obj))
                return NULL;
            obj = json_object_array_get_idx(obj, (size_t)idx);
            p = end + 1;
        } else {
            size_t k = 0;
            while (*p && *p != '.' && *p != '[') {
                if (*p == '\\' && p[1])
                    p++;
                if (k == sizeof key - 1)
                    return NULL;
                key[k++] = *p++;
            }
            key[k] = '\0';
            if (!json_object_is_type(obj, json_type_object) || !json_object_object_get_ex(obj, key, &obj))
                return NULL;
        }
        if (*p == '.')
            p++;
    }
    return obj;
}

static void sanitize(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = (*s == '\n' || *s == '\t') ? ' ' : '?';
}

static char *scalar_text(struct json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_null:
        return strdup("");
    case json_type_string:
        return strdup(json_object_get_string(v));
    case json_type_boolean:
        return strdup(json_object_get_boolean(v) ? "true" : "false");
    default:
        return strdup(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    }
}

char *vf_render_cell(struct json_object *v)
{
    char *s;

    if (json_object_is_type(v, json_type_array)) {
        size_t n = json_object_array_length(v), len = 0;
        s = strdup("");
        for (size_t i = 0; i < n && s; i++) {
            struct json_object *e = json_object_array_get_idx(v, i);
            char *part = json_object_is_type(e, json_type_array) ? strdup("[...]") : scalar_text(e);
            char *grown = part ? realloc(s, len + strlen(part) + 2) : NULL;
            if (!grown) {
                free(part);
                free(s);
                return NULL;
            }
            s = grown;
            len += (size_t)sprintf(s + len, "%s%s", i ? "," : "", part);
            free(part);
        }
    } else {
        s = scalar_text(v);
    }
    if (s)
        sanitize(s);
    return s;
}

char *vf_render_labels(struct json_object *obj)
{
    struct json_object *labels = vf_render_lookup(obj, "metadata.labels");
    char *s = NULL;
    size_t len = 0;

    if (!json_object_is_type(labels, json_type_object) || json_object_object_length(labels) == 0)
        return strdup("<none>");
    json_object_object_foreach(labels, key, val) {
        const char *v = json_object_is_type(val, json_type_string) ? json_object_get_string(val) : "";
        char *grown = realloc(s, len + strlen(key) + strlen(v) + 3);
        if (!grown) {
            free(s);
            return NULL;
        }
        s = grown;
        len += (size_t)sprintf(s + len, "%s%s=%s", len ? "," : "", key, v);
    }
    sanitize(s);
    return s;
}

/* ---- tables ---------------------------------------------------------- */

struct vf_table {
    size_t ncols;
    char **headers;
    size_t *width;
    char **cells;       /* pending rows, row-major */
    size_t nrows;
    bool header_done;
};

/* Width on screen: UTF-8 continuation bytes take no column. */
static size_t display_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            w++;
    return w;
}

struct vf_table *vf_table_new(size_t ncols, const char *const *headers)
{
    struct vf_table *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->ncols = ncols;
    t->headers = calloc(ncols, sizeof *t->headers);
    t->width = calloc(ncols, sizeof *t->width);
    if (!t->headers || !t->width) {
        vf_table_free(t);
        return NULL;
    }
    for (size_t i = 0; i < ncols; i++) {
        t->headers[i] = strdup(headers[i]);
        if (!t->headers[i]) {
            vf_table_free(t);
            return NULL;
        }
        t->width[i] = display_width(headers[i]);
    }
    return t;
}

struct vf_table *vf_table_for_kind(const struct vf_column *cols, size_t ncols, bool wide)
{
    size_t n = ncols + 2 + (wide ? 1 : 0), i = 0;
    const char **headers = calloc(n, sizeof *headers);
    struct vf_table *t;

    if (!headers)
        return NULL;
    headers[i++] = "NAME";
    for (size_t c = 0; c < ncols; c++)
        headers[i++] = cols[c].header;
    if (wide)
        headers[i++] = "LABELS";
    headers[i] = "AGE";
    t = vf_table_new(n, headers);
    free(headers);
    return t;
}

void vf_table_add_row(struct vf_table *t, const char *const *cells)
{
    char **grown = realloc(t->cells, (t->nrows + 1) * t->ncols * sizeof *grown);
    if (!grown)
        return;
    t->cells = grown;
    for (size_t i = 0; i < t->ncols; i++) {
        char *c = strdup(cells[i] ? cells[i] : "");
        if (c)
            sanitize(c);
        grown[t->nrows * t->ncols + i] = c;
    }
    t->nrows++;
}

void vf_table_add_object(struct vf_table *t, struct json_object *obj, const struct vf_column *cols,
                         size_t ncols, bool wide, time_t now)
{
    char **cells = calloc(t->ncols, sizeof *cells);
    char age[32] = "<unknown>";
    time_t created;
    size_t i = 0;

    if (!cells)
        return;
    cells[i++] = vf_render_cell(vf_render_lookup(obj, "metadata.name"));
    for (size_t c = 0; c < ncols && i < t->ncols; c++)
        cells[i++] = vf_render_cell(vf_render_lookup(obj, cols[c].path));
    if (wide && i < t->ncols)
        cells[i++] = vf_render_labels(obj);
    if (vf_render_parse_time(json_object_get_string(vf_render_lookup(obj, "metadata.creationTimestamp")),
                             &created) == 0)
        vf_render_age(now, created, age, sizeof age);
    if (i < t->ncols)
        cells[i] = strdup(age);
    vf_table_add_row(t, (const char *const *)cells);
    for (i = 0; i < t->ncols; i++)
        free(cells[i]);
    free(cells);
}

static void print_row(const struct vf_table *t, char *const *cells, FILE *out)
{
    size_t last = t->ncols;

    /* No padding after the last non-empty cell: no trailing blanks. */
    while (last > 1 && (!cells[last - 1] || !*cells[last - 1]))
        last--;
    for (size_t i = 0; i < last; i++) {
        const char *c = cells[i] ? cells[i] : "";
        fputs(c, out);
        if (i + 1 < last)
            fprintf(out, "%*s", (int)(t->width[i] - display_width(c) + COLUMN_GAP), "");
    }
    fputc('\n', out);
}

void vf_table_flush(struct vf_table *t, FILE *out)
{
    for (size_t r = 0; r < t->nrows; r++)
        for (size_t i = 0; i < t->ncols; i++) {
            const char *c = t->cells[r * t->ncols + i];
            size_t w = c ? display_width(c) : 0;
            if (w > t->width[i])
                t->width[i] = w;
        }
    if (!t->header_done && (t->nrows > 0)) {
        print_row(t, t->headers, out);
        t->header_done = true;
    }
    for (size_t r = 0; r < t->nrows; r++) {
        print_row(t, t->cells + r * t->ncols, out);
        for (size_t i = 0; i < t->ncols; i++)
            free(t->cells[r * t->ncols + i]);
    }
    t->nrows = 0;
}

size_t vf_table_pending(const struct vf_table *t)
{
    return t->nrows;
}

void vf_table_free(struct vf_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    for (size_t i = 0; t->headers && i < t->ncols; i++)
        free(t->headers[i]);
    free(t->headers);
    free(t->width);
    free(t);
}

/* ---- JSON and YAML --------------------------------------------------- */

int vf_render_json(FILE *out, struct json_object *obj)
{
    const char *s = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PRETTY |
                                                   JSON_C_TO_STRING_SPACED |
                                                   JSON_C_TO_STRING_NOSLASHESCAPE);
    return fprintf(out, "%s\n", s) < 0 ? -1 : 0;
}

static int emit(yaml_emitter_t *e, yaml_event_t *ev)
{
    return yaml_emitter_emit(e, ev) ? 0 : -1;
}

static int emit_string(yaml_emitter_t *e, const char *s, size_t len)
{
    yaml_event_t ev;
    bool plain_ok = vf_manifest_classify(s, len) == VF_YAML_STRING;
    yaml_scalar_style_t style = YAML_ANY_SCALAR_STYLE;

    if (memchr(s, '\n', len))
        style = YAML_LITERAL_SCALAR_STYLE;
    else if (!plain_ok)
        style = YAML_DOUBLE_QUOTED_SCALAR_STYLE;
    yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)len, plain_ok, 1, style);
    return emit(e, &ev);
}

static int emit_plain(yaml_emitter_t *e, const char *s)
{
    yaml_event_t ev;
    yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)strlen(s), 1, 1,
                                 YAML_PLAIN_SCALAR_STYLE);
    return emit(e, &ev);
}

static int emit_value(yaml_emitter_t *e, struct json_object *v)
{
    yaml_event_t ev;
    char num[32];

    switch (json_object_get_type(v)) {
    case json_type_null:
        return emit_plain(e, "null");
    case json_type_boolean:
        return emit_plain(e, json_object_get_boolean(v) ? "true" : "false");
    case json_type_int:
        snprintf(num, sizeof num, "%" PRId64, json_object_get_int64(v));
        return emit_plain(e, num);
    case json_type_double:
        return emit_plain(e, json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
    case json_type_string:
        return emit_string(e, json_object_get_string(v), (size_t)json_object_get_string_len(v));
    case json_type_array:
        yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE);
        if (emit(e, &ev) < 0)
            return -1;
        for (size_t i = 0; i < json_object_array_length(v); i++)
            if (emit_value(e, json_object_array_get_idx(v, i)) < 0)
                return -1;
        yaml_sequence_end_event_initialize(&ev);
        return emit(e, &ev);
    case json_type_object:
        yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE);
        if (emit(e, &ev) < 0)
            return -1;
        json_object_object_foreach(v, key, val) {
            if (emit_string(e, key, strlen(key)) < 0 || emit_value(e, val) < 0)
                return -1;
        }
        yaml_mapping_end_event_initialize(&ev);
        return emit(e, &ev);
    }
    return -1;
}

int vf_render_yaml(FILE *out, struct json_object *obj)
{
    yaml_emitter_t e;
    yaml_event_t ev;
    int rc = -1;

    if (!yaml_emitter_initialize(&e))
        return -1;
    yaml_emitter_set_output_file(&e, out);
    yaml_emitter_set_unicode(&e, 1);
    yaml_emitter_set_width(&e, -1);
    yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
    if (emit(&e, &ev) < 0)
        goto out;
    yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
    if (emit(&e, &ev) < 0 || emit_value(&e, obj) < 0)
        goto out;
    yaml_document_end_event_initialize(&ev, 1);
    if (emit(&e, &ev) < 0)
        goto out;
    yaml_stream_end_event_initialize(&ev);
    if (emit(&e, &ev) < 0)
        goto out;
    rc = yaml_emitter_flush(&e) ? 0 : -1;
out:
    yaml_emitter_delete(&e);
    return rc;
}

/* kubectl's printing of -o jsonpath: the values of one {EXPR} separated by a
 * space, strings raw (no quotes, no escaping: scripts read them), JSON null as
 * nothing (as an absent field), anything else as compact JSON. */
static int jsonpath_text(void *ctx, const char *s, size_t len)
{
    return fwrite(s, 1, len, ctx) == len ? 0 : -1;
}

static int jsonpath_values(void *ctx, struct json_object *const *v, size_t n)
{
    FILE *out = ctx;

    for (size_t i = 0; i < n; i++) {
        const char *s = "";
        if (i && fputc(' ', out) == EOF)
            return -1;
        if (json_object_is_type(v[i], json_type_string))
            s = json_object_get_string(v[i]);
        else if (v[i])
            s = json_object_to_json_string_ext(v[i], JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        if (fputs(s, out) == EOF)
            return -1;
    }
    return 0;
}

int vf_render_jsonpath(FILE *out, struct json_object *obj, const struct vf_jsonpath *tmpl)
{
    static const struct vf_jsonpath_sink sink = { jsonpath_text, jsonpath_values };
    return vf_jsonpath_execute(tmpl, obj, &sink, out);
}

/* ---- describe -------------------------------------------------------- */

#define FIELD_WIDTH 18

/* A subtree as YAML, every line indented; used for Spec and Status. */
static int yaml_indented(FILE *out, struct json_object *obj, int indent)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    int rc;

    if (!mem)
        return -1;
    rc = vf_render_yaml(mem, obj);
    fclose(mem);
    if (rc == 0) {
        char *save = NULL;
        for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
            fprintf(out, "%*s%s\n", indent, "", line);
    }
    free(buf);
    return rc;
}

static void field(FILE *out, const char *label, const char *value)
{
    fprintf(out, "%-*s%s\n", FIELD_WIDTH, label, value ? value : "<none>");
}

static void field_json(FILE *out, const char *label, struct json_object *v)
{
    char *s = v ? vf_render_cell(v) : NULL;
    field(out, label, s);
    free(s);
}

static void timestamp_field(FILE *out, const char *label, struct json_object *ts, time_t now)
{
    const char *s = json_object_get_string(ts);
    time_t t;
    char age[32], line[128];

    if (!ts)
        return;
    if (vf_render_parse_time(s, &t) == 0) {
        vf_render_age(now, t, age, sizeof age);
        snprintf(line, sizeof line, "%s (%s ago)", s, age);
        field(out, label, line);
    } else {
        field(out, label, s);
    }
}

static void describe_labels(FILE *out, struct json_object *obj)
{
    struct json_object *labels = vf_render_lookup(obj, "metadata.labels");
    bool first = true;

    if (!json_object_is_type(labels, json_type_object) || json_object_object_length(labels) == 0) {
        field(out, "Labels:", "<none>");
        return;
    }
    json_object_object_foreach(labels, key, val) {
        char *v = vf_render_cell(val);
        fprintf(out, "%-*s%s=%s\n", FIELD_WIDTH, first ? "Labels:" : "", key, v ? v : "");
        free(v);
        first = false;
    }
}

static void describe_conditions(FILE *out, struct json_object *conds)
{
    static const char *const headers[] = { "TYPE", "STATUS", "REASON", "MESSAGE" };
    static const char *const paths[] = { "type", "status", "reason", "message" };
    struct vf_table *t;
    char *buf = NULL;
    size_t len = 0;
    FILE *mem;

    fprintf(out, "  Conditions:\n");
    if (!json_object_is_type(conds, json_type_array) || json_object_array_length(conds) == 0) {
        fprintf(out, "    <none>\n");
        return;
    }
    t = vf_table_new(4, headers);
    if (!t)
        return;
    for (size_t i = 0; i < json_object_array_length(conds); i++) {
        struct json_object *c = json_object_array_get_idx(conds, i);
        char *cells[4];
        for (int j = 0; j < 4; j++)
            cells[j] = vf_render_cell(vf_render_lookup(c, paths[j]));
        vf_table_add_row(t, (const char *const *)cells);
        for (int j = 0; j < 4; j++)
            free(cells[j]);
    }
    /* Rendered aside so that every line gets the same indent. */
    mem = open_memstream(&buf, &len);
    if (mem) {
        vf_table_flush(t, mem);
        fclose(mem);
        char *save = NULL;
        for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
            fprintf(out, "    %s\n", line);
        free(buf);
    }
    vf_table_free(t);
}

int vf_render_describe(FILE *out, struct json_object *obj, time_t now)
{
    struct json_object *spec = vf_render_lookup(obj, "spec");
    struct json_object *status = vf_render_lookup(obj, "status");

    field_json(out, "Name:", vf_render_lookup(obj, "metadata.name"));
    field_json(out, "Kind:", vf_render_lookup(obj, "kind"));
    field_json(out, "API Version:", vf_render_lookup(obj, "apiVersion"));
    describe_labels(out, obj);
    timestamp_field(out, "Created:", vf_render_lookup(obj, "metadata.creationTimestamp"), now);
    timestamp_field(out, "Deleting since:", vf_render_lookup(obj, "metadata.deletionTimestamp"), now);
    field_json(out, "UID:", vf_render_lookup(obj, "metadata.uid"));
    field_json(out, "Resource Version:", vf_render_lookup(obj, "metadata.resourceVersion"));
    field_json(out, "Generation:", vf_render_lookup(obj, "metadata.generation"));

    fprintf(out, "Spec:\n");
    if (json_object_is_type(spec, json_type_object) && json_object_object_length(spec) > 0) {
        if (yaml_indented(out, spec, 2) < 0)
            return -1;
    } else {
        fprintf(out, "  <none>\n");
    }

    fprintf(out, "Status:\n");
    if (!json_object_is_type(status, json_type_object)) {
        fprintf(out, "  <none>\n");
        return 0;
    }
    {
        char *phase = vf_render_cell(vf_render_lookup(status, "phase"));
        fprintf(out, "  Phase: %s\n", phase && *phase ? phase : "<none>");
        free(phase);
    }
    /* The other status fields, in the server's order, without the two above. */
    {
        struct json_object *rest = json_object_new_object();
        if (!rest)
            return -1;
        json_object_object_foreach(status, key, val) {
            if (strcmp(key, "phase") != 0 && strcmp(key, "conditions") != 0)
                json_object_object_add(rest, key, json_object_get(val));
        }
        int rc = json_object_object_length(rest) > 0 ? yaml_indented(out, rest, 2) : 0;
        json_object_put(rest);
        if (rc < 0)
            return -1;
    }
    describe_conditions(out, vf_render_lookup(status, "conditions"));
    return 0;
}
