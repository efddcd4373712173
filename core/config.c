/* The configuration file: libconfig syntax, checked as a whole so that an
 * admin sees every problem at once ("FILE:LINE: PATH: what is wrong"), and a
 * bad file on SIGHUP is refused before anything is applied.  Module settings
 * are only converted to JSON here; settings.c checks them against each
 * module's schema once the modules are loaded. */
#include <config.h>
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libconfig.h>

#ifndef LOCALSTATEDIR
#define LOCALSTATEDIR "/var"
#endif
#ifndef RUNSTATEDIR
#define RUNSTATEDIR "/run"
#endif

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
/* Dotted paths in messages; deeper nesting than fits is refused anyway. */
#define PATH_MAX_LEN 512
/* Free-form groups (module settings, virtualization) nest at most this deep:
 * real settings are shallow, and the bound keeps recursion small. */
#define JSON_DEPTH_MAX 32
/* A configuration file is a few kilobytes; refuse to slurp anything huge. */
#define FILE_SIZE_MAX (4 << 20)
#define WORKERS_MAX 64
/* libvirt keeps a network as NAME.xml; a sane name is short. */
#define LIBVIRT_NETWORK_MAX 64

/* ---- collected errors ------------------------------------------------------ */

void vf_config_errors_add(struct vf_config_errors *e, const char *fmt, ...)
{
    va_list ap;
    char **lines;
    char *line;
    int n;

    if (!e)
        return;
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    line = malloc((size_t)n + 1);
    if (!line)
        return;
    va_start(ap, fmt);
    vsnprintf(line, (size_t)n + 1, fmt, ap);
    va_end(ap);
    lines = realloc(e->lines, (e->n + 1) * sizeof *lines);
    if (!lines) {
        free(line);
        return;
    }
    lines[e->n++] = line;
    e->lines = lines;
}

void vf_config_errors_clear(struct vf_config_errors *e)
{
    if (!e)
        return;
    for (unsigned i = 0; i < e->n; i++)
        free(e->lines[i]);
    free(e->lines);
    e->lines = NULL;
    e->n = 0;
}

/* ---- "did you mean" ---------------------------------------------------------- */

/* Edit distance (insertions, deletions, substitutions and swaps of adjacent
 * letters: "debgu" is one edit from "debug") ignoring case, so that
 * "virtualMachineCidrs" is a typo of "virtualMachineCIDRs".  Names are short;
 * longer ones are not worth a suggestion. */
static unsigned edit_distance(const char *a, const char *b)
{
    enum { MAXLEN = 64 };
    unsigned rows[3][MAXLEN + 1];
    unsigned *prev2 = rows[0], *prev = rows[1], *cur = rows[2];
    size_t la = strlen(a), lb = strlen(b);

    if (la > MAXLEN || lb > MAXLEN)
        return ~0u;
    for (size_t j = 0; j <= lb; j++)
        prev[j] = (unsigned)j;
    for (size_t i = 1; i <= la; i++) {
        unsigned *t;
        cur[0] = (unsigned)i;
        for (size_t j = 1; j <= lb; j++) {
            int ca = tolower((unsigned char)a[i - 1]), cb = tolower((unsigned char)b[j - 1]);
            unsigned best = prev[j - 1] + (ca != cb);
            if (prev[j] + 1 < best)
                best = prev[j] + 1;
            if (cur[j - 1] + 1 < best)
                best = cur[j - 1] + 1;
            if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == cb && prev2[j - 2] + 1 < best)
                best = prev2[j - 2] + 1;
            cur[j] = best;
        }
        t = prev2;
        prev2 = prev;
        prev = cur;
        cur = t;
    }
    return prev[lb];
}

const char *vf_config_suggest(const char *word, const char *const *candidates, unsigned n)
{
    const char *best = NULL;
    unsigned best_d = ~0u;

    if (!word)
        return NULL;
    for (unsigned i = 0; i < n; i++) {
        unsigned d = edit_distance(word, candidates[i]);
        size_t longer = strlen(word) > strlen(candidates[i]) ? strlen(word) : strlen(candidates[i]);
        /* Two edits on a three-letter word is a different word, not a typo. */
        if (d <= 2 && 3 * d <= longer && d < best_d) {
            best = candidates[i];
            best_d = d;
        }
    }
    return best;
}

/* ---- the loader ------------------------------------------------------------ */

struct loader {
    const char *file;
    struct vf_config_errors *errors;
    unsigned problems;
    bool include_seen;          /* @include found: do not let libconfig parse */
    struct vf_config *cfg;
};

static void problem_at(struct loader *ld, unsigned line, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void problem_at(struct loader *ld, unsigned line, const char *path, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ld->problems++;
    if (path)
        vf_config_errors_add(ld->errors, "%s:%u: %s: %s", ld->file, line, path, msg);
    else
        vf_config_errors_add(ld->errors, "%s:%u: %s", ld->file, line, msg);
}

#define problem(ld, s, path, ...) problem_at((ld), config_setting_source_line(s), (path), __VA_ARGS__)

const char *vf_config_quote(const char *s, char *buf, size_t len)
{
    size_t o = 0;

    if (len < 8)
        return "\"\"";
    buf[o++] = '"';
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (o + 8 >= len) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(buf + o, len - o, "\\x%02x", c);
        } else {
            buf[o++] = (char)c;
        }
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

#define QUOTE_MAX 100
#define Q(s) vf_config_quote((s), (char[QUOTE_MAX]){0}, QUOTE_MAX)

/* "the string "x"", "the integer 5", "a group": what was written instead. */
static const char *got(const config_setting_t *s, char *buf, size_t len)
{
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_GROUP:
        return "a group";
    case CONFIG_TYPE_LIST:
        return "a list";
    case CONFIG_TYPE_ARRAY:
        return "an array";
    case CONFIG_TYPE_INT:
        snprintf(buf, len, "the integer %d", config_setting_get_int(s));
        return buf;
    case CONFIG_TYPE_INT64:
        snprintf(buf, len, "the integer %lld", config_setting_get_int64(s));
        return buf;
    case CONFIG_TYPE_FLOAT:
        snprintf(buf, len, "the float %g", config_setting_get_float(s));
        return buf;
    case CONFIG_TYPE_BOOL:
        return config_setting_get_bool(s) ? "the boolean true" : "the boolean false";
    case CONFIG_TYPE_STRING: {
        char q[QUOTE_MAX];
        snprintf(buf, len, "the string %s", vf_config_quote(config_setting_get_string(s), q, sizeof q));
        return buf;
    }
    default:
        return "nothing";
    }
}

#define GOT(s) got((s), (char[QUOTE_MAX + 16]){0}, QUOTE_MAX + 16)

static void path_member(char *buf, const char *parent, const char *name)
{
    if (parent && *parent)
        snprintf(buf, PATH_MAX_LEN, "%s.%s", parent, name);
    else
        snprintf(buf, PATH_MAX_LEN, "%s", name);
}

static void path_index(char *buf, const char *parent, unsigned i)
{
    snprintf(buf, PATH_MAX_LEN, "%s[%u]", parent, i);
}

static void unknown_key(struct loader *ld, const config_setting_t *s, const char *path,
                        const char *const *known, unsigned n)
{
    const char *hint = vf_config_suggest(config_setting_name(s), known, n);
    char list[512];
    size_t o = 0;

    if (hint) {
        problem(ld, s, path, "unknown setting; did you mean \"%s\"?", hint);
        return;
    }
    list[0] = '\0';
    for (unsigned i = 0; i < n && o < sizeof list; i++)
        o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "", known[i]);
    problem(ld, s, path, "unknown setting (known: %s)", list);
}

static bool setting_int(const config_setting_t *s, long long *v)
{
    if (config_setting_type(s) == CONFIG_TYPE_INT) {
        *v = config_setting_get_int(s);
        return true;
    }
    if (config_setting_type(s) == CONFIG_TYPE_INT64) {
        *v = config_setting_get_int64(s);
        return true;
    }
    return false;
}

/* The string value of s, or NULL with the problem reported. */
static const char *want_string(struct loader *ld, const config_setting_t *s, const char *path)
{
    if (config_setting_type(s) != CONFIG_TYPE_STRING) {
        problem(ld, s, path, "expected a string, got %s", GOT(s));
        return NULL;
    }
    return config_setting_get_string(s);
}

static bool want_group(struct loader *ld, const config_setting_t *s, const char *path,
                       const char *example)
{
    if (config_setting_type(s) == CONFIG_TYPE_GROUP)
        return true;
    problem(ld, s, path, "expected a group like %s, got %s", example, GOT(s));
    return false;
}

static void replace_string(char **dst, const char *value)
{
    char *copy = strdup(value);
    if (!copy)
        return;
    free(*dst);
    *dst = copy;
}

static void load_abs_path(struct loader *ld, const config_setting_t *s, const char *path,
                          char **dst)
{
    const char *v = want_string(ld, s, path);

    if (!v)
        return;
    if (v[0] != '/') {
        problem(ld, s, path, "expected an absolute path, got %s", Q(v));
        return;
    }
    replace_string(dst, v);
}

static const char *const log_level_names[] = { "error", "warn", "info", "debug" };

/* -1 with the problem reported. */
static int load_log_level(struct loader *ld, const config_setting_t *s, const char *path)
{
    const char *v = want_string(ld, s, path);
    const char *hint;

    if (!v)
        return -1;
    for (unsigned i = 0; i < ARRAY_SIZE(log_level_names); i++)
        if (strcmp(v, log_level_names[i]) == 0)
            return (int)i;
    hint = vf_config_suggest(v, log_level_names, ARRAY_SIZE(log_level_names));
    if (hint)
        problem(ld, s, path, "expected one of error, warn, info, debug, got %s; did you mean \"%s\"?",
                Q(v), hint);
    else
        problem(ld, s, path, "expected one of error, warn, info, debug, got %s", Q(v));
    return -1;
}

static void load_workers(struct loader *ld, const config_setting_t *s, const char *path)
{
    long long v;

    if (!setting_int(s, &v)) {
        problem(ld, s, path, "expected an integer, got %s", GOT(s));
        return;
    }
    if (v < 1 || v > WORKERS_MAX) {
        problem(ld, s, path, "expected an integer between 1 and %d, got %lld", WORKERS_MAX, v);
        return;
    }
    ld->cfg->workers = (int)v;
}

/* A mode is written as an octal string ("0660") because libconfig reads 0660
 * as the decimal 660; an integer is taken as the mode's value (432, 0x1b0). */
static void load_mode(struct loader *ld, const config_setting_t *s, const char *path)
{
    static const char want[] = "expected a file mode from \"0000\" to \"0777\" (an octal string like \"0660\")";
    long long v;

    if (setting_int(s, &v)) {
        if (v < 0 || v > 0777) {
            problem(ld, s, path, "%s, got %lld", want, v);
            return;
        }
    } else if (config_setting_type(s) == CONFIG_TYPE_STRING) {
        const char *t = config_setting_get_string(s);
        size_t n = strlen(t);
        char *end;
        if (n == 0 || n > 4 || strspn(t, "01234567") != n) {
            problem(ld, s, path, "%s, got %s", want, Q(t));
            return;
        }
        v = strtoll(t, &end, 8);
        if (v > 0777) {
            problem(ld, s, path, "%s, got %s", want, Q(t));
            return;
        }
    } else {
        problem(ld, s, path, "%s, got %s", want, GOT(s));
        return;
    }
    ld->cfg->api_socket_mode = (mode_t)v;
}

static void load_api(struct loader *ld, const config_setting_t *g, const char *path)
{
    static const char *const keys[] = { "socket", "mode", "group" };
    char p[PATH_MAX_LEN];

    if (!want_group(ld, g, path, "{ socket = \"/run/virtfleet/virtfleetd.sock\"; }"))
        return;
    for (int i = 0; i < config_setting_length(g); i++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        const char *name = config_setting_name(s);
        path_member(p, path, name);
        if (strcmp(name, "socket") == 0) {
            const char *v = want_string(ld, s, p);
            if (!v)
                continue;
            if (v[0] != '/')
                problem(ld, s, p, "expected an absolute path, got %s", Q(v));
            else if (strlen(v) >= sizeof(((struct sockaddr_un *)0)->sun_path))
                problem(ld, s, p, "path too long for a unix socket (%zu bytes, at most %zu)",
                        strlen(v), sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
            else
                replace_string(&ld->cfg->api_socket, v);
        } else if (strcmp(name, "mode") == 0) {
            load_mode(ld, s, p);
        } else if (strcmp(name, "group") == 0) {
            const char *v = want_string(ld, s, p);
            if (v && !*v)
                problem(ld, s, p, "expected a group name, got \"\"");
            else if (v)
                replace_string(&ld->cfg->api_socket_group, v);
        } else {
            unknown_key(ld, s, p, keys, ARRAY_SIZE(keys));
        }
    }
}

/* ---- names and labels --------------------------------------------------------- */

static bool is_alnum_lower(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* RFC 1123 label: what a node name becomes in URLs, logs and status fields. */
static bool is_dns_label(const char *s, size_t n)
{
    if (n == 0 || n > 63 || !is_alnum_lower(s[0]) || !is_alnum_lower(s[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_alnum_lower(s[i]) && s[i] != '-')
            return false;
    return true;
}

static bool is_dns_subdomain(const char *s, size_t n)
{
    size_t start = 0;

    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            if (!is_dns_label(s + start, i - start))
                return false;
            start = i + 1;
        }
    }
    return true;
}

/* The name part of a Kubernetes label key, and a label value when non-empty:
 * at most 63 of [A-Za-z0-9_.-], beginning and ending alphanumeric. */
static bool is_label_name(const char *s, size_t n)
{
    if (n == 0 || n > 63 || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("-_.", s[i]))
            return false;
    return true;
}

static bool is_label_key(const char *key)
{
    const char *slash = strchr(key, '/');

    if (!slash)
        return is_label_name(key, strlen(key));
    return is_dns_subdomain(key, (size_t)(slash - key)) && is_label_name(slash + 1, strlen(slash + 1));
}

static bool is_label_value(const char *v)
{
    return *v == '\0' || is_label_name(v, strlen(v));
}

static const char label_key_rule[] =
    "a label key is an optional DNS subdomain prefix and \"/\", then at most 63 "
    "letters, digits, \"-\", \"_\" or \".\", beginning and ending with a letter or digit";
static const char label_value_rule[] =
    "a label value is empty or at most 63 letters, digits, \"-\", \"_\" or \".\", "
    "beginning and ending with a letter or digit";

static void add_label(struct loader *ld, const config_setting_t *s, const char *path,
                      struct json_object *labels, const char *key, const char *value)
{
    if (!is_label_key(key)) {
        problem(ld, s, path, "invalid label key %s: %s", Q(key), label_key_rule);
        return;
    }
    if (!is_label_value(value)) {
        problem(ld, s, path, "invalid value %s for label %s: %s", Q(value), Q(key), label_value_rule);
        return;
    }
    if (json_object_object_get_ex(labels, key, NULL)) {
        problem(ld, s, path, "label %s given twice", Q(key));
        return;
    }
    json_object_object_add(labels, key, json_object_new_string(value));
}

/* labels = { zone = "a"; } for plain keys, or labels = [ "topology.kubernetes.io/zone=a" ]
 * because libconfig names cannot contain the "/" and "." of prefixed keys. */
static struct json_object *load_labels(struct loader *ld, const config_setting_t *g,
                                       const char *path)
{
    struct json_object *labels = json_object_new_object();
    char p[PATH_MAX_LEN];
    int type = config_setting_type(g);

    if (!labels)
        return NULL;
    if (type != CONFIG_TYPE_GROUP && type != CONFIG_TYPE_ARRAY && type != CONFIG_TYPE_LIST) {
        problem(ld, g, path, "expected a group like { zone = \"a\"; } or a list like "
                "[ \"topology.kubernetes.io/zone=a\" ], got %s", GOT(g));
        return labels;
    }
    for (int i = 0; i < config_setting_length(g); i++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        const char *v;
        if (type == CONFIG_TYPE_GROUP) {
            path_member(p, path, config_setting_name(s));
            v = want_string(ld, s, p);
            if (v)
                add_label(ld, s, p, labels, config_setting_name(s), v);
        } else {
            char *key, *eq;
            path_index(p, path, (unsigned)i);
            v = want_string(ld, s, p);
            if (!v)
                continue;
            eq = strchr(v, '=');
            if (!eq) {
                problem(ld, s, p, "expected \"key=value\", got %s", Q(v));
                continue;
            }
            key = strndup(v, (size_t)(eq - v));
            if (key)
                add_label(ld, s, p, labels, key, eq + 1);
            free(key);
        }
    }
    return labels;
}

static void load_node(struct loader *ld, const config_setting_t *g, const char *path)
{
    static const char *const keys[] = { "name", "uri", "labels", "cpuAllocationRatio" };
    struct vf_config *cfg = ld->cfg;
    struct vf_config_node *node = &cfg->nodes[cfg->n_nodes++];
    node->cpu_allocation_ratio = 1.0;
    bool have_name = false, have_uri = false;
    char p[PATH_MAX_LEN];

    for (int i = 0; i < config_setting_length(g); i++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        const char *name = config_setting_name(s);
        const char *v;
        path_member(p, path, name);
        if (strcmp(name, "name") == 0) {
            have_name = true;
            v = want_string(ld, s, p);
            if (!v)
                continue;
            if (!is_dns_label(v, strlen(v))) {
                problem(ld, s, p, "expected a DNS label (at most 63 lowercase letters, digits "
                        "or \"-\", beginning and ending with a letter or digit), got %s", Q(v));
                continue;
            }
            for (unsigned j = 0; j + 1 < cfg->n_nodes; j++) {
                if (cfg->nodes[j].name && strcmp(cfg->nodes[j].name, v) == 0) {
                    problem(ld, s, p, "duplicate node name %s; nodes[%u] has it too", Q(v), j);
                    v = NULL;
                    break;
                }
            }
            if (v)
                node->name = strdup(v);
        } else if (strcmp(name, "uri") == 0) {
            have_uri = true;
            v = want_string(ld, s, p);
            if (!v)
                continue;
            /* Every libvirt URI names a driver and a colon ("test:///default"). */
            if (!strchr(v, ':') || v[0] == ':')
                problem(ld, s, p, "expected a libvirt URI like \"qemu+ssh://root@host1/system\", got %s",
                        Q(v));
            else
                node->uri = strdup(v);
        } else if (strcmp(name, "labels") == 0) {
            json_object_put(node->labels);
            node->labels = load_labels(ld, s, p);
        } else if (strcmp(name, "cpuAllocationRatio") == 0) {
            long long whole;
            double r = setting_int(s, &whole) ? (double)whole
                     : config_setting_type(s) == CONFIG_TYPE_FLOAT ? config_setting_get_float(s) : -1;
            if (!(r >= 0.1 && r <= 64))
                problem(ld, s, p, "expected a number between 0.1 and 64 (e.g. 4.0: each CPU may "
                        "be reserved four times), got %s", GOT(s));
            else
                node->cpu_allocation_ratio = r;
        } else {
            unknown_key(ld, s, p, keys, ARRAY_SIZE(keys));
        }
    }
    if (!have_name) {
        path_member(p, path, "name");
        problem(ld, g, p, "required setting missing");
    }
    if (!have_uri) {
        path_member(p, path, "uri");
        problem(ld, g, p, "required setting missing");
    }
    if (!node->labels)
        node->labels = json_object_new_object();
}

static void load_nodes(struct loader *ld, const config_setting_t *list, const char *path)
{
    static const char example[] = "( { name = \"node-1\"; uri = \"qemu+ssh://root@host1/system\"; } )";
    struct vf_config *cfg = ld->cfg;
    int n;
    char p[PATH_MAX_LEN];

    if (config_setting_type(list) != CONFIG_TYPE_LIST) {
        problem(ld, list, path, "expected a list of groups like %s, got %s", example, GOT(list));
        return;
    }
    n = config_setting_length(list);
    if (n == 0)
        return;
    cfg->nodes = calloc((size_t)n, sizeof *cfg->nodes);
    if (!cfg->nodes) {
        problem(ld, list, path, "out of memory");
        return;
    }
    for (int i = 0; i < n; i++) {
        const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
        path_index(p, path, (unsigned)i);
        if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
            problem(ld, g, p, "expected a group like { name = \"node-1\"; uri = \"qemu+ssh://root@host1/system\"; }, got %s",
                    GOT(g));
            continue;
        }
        load_node(ld, g, p);
    }
}

/* ---- free-form groups as JSON --------------------------------------------------- */

static void record_line(struct loader *ld, const char *path, const config_setting_t *s)
{
    json_object_object_add(ld->cfg->setting_lines, path,
                           json_object_new_int((int)config_setting_source_line(s)));
}

/* The setting as written: groups -> objects, lists and arrays -> arrays,
 * scalars -> JSON scalars.  Records each setting's line under its path. */
static struct json_object *to_json(struct loader *ld, const config_setting_t *s, const char *path,
                                   unsigned depth)
{
    struct json_object *o = NULL;
    char p[PATH_MAX_LEN];

    record_line(ld, path, s);
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_GROUP:
    case CONFIG_TYPE_LIST:
    case CONFIG_TYPE_ARRAY: {
        bool group = config_setting_type(s) == CONFIG_TYPE_GROUP;
        if (depth >= JSON_DEPTH_MAX) {
            problem(ld, s, path, "nested too deeply (at most %d levels)", JSON_DEPTH_MAX);
            return NULL;
        }
        o = group ? json_object_new_object() : json_object_new_array();
        for (int i = 0; o && i < config_setting_length(s); i++) {
            const config_setting_t *c = config_setting_get_elem(s, (unsigned)i);
            struct json_object *v;
            if (group)
                path_member(p, path, config_setting_name(c));
            else
                path_index(p, path, (unsigned)i);
            v = to_json(ld, c, p, depth + 1);
            if (!v)
                continue;
            if (group)
                json_object_object_add(o, config_setting_name(c), v);
            else
                json_object_array_add(o, v);
        }
        return o;
    }
    case CONFIG_TYPE_INT:
        return json_object_new_int64(config_setting_get_int(s));
    case CONFIG_TYPE_INT64:
        return json_object_new_int64(config_setting_get_int64(s));
    case CONFIG_TYPE_FLOAT:
        return json_object_new_double(config_setting_get_float(s));
    case CONFIG_TYPE_BOOL:
        return json_object_new_boolean(config_setting_get_bool(s));
    case CONFIG_TYPE_STRING:
        return json_object_new_string(config_setting_get_string(s));
    default:
        return NULL;
    }
}

/* ---- virtualization ------------------------------------------------------------ */

struct cidr {
    int family;
    unsigned char addr[16];
    unsigned prefix;
    unsigned line;
    char text[INET6_ADDRSTRLEN + 8];
};

static unsigned addr_bytes(int family)
{
    return family == AF_INET ? 4 : 16;
}

/* Do the first `bits` bits of a and b agree? */
static bool prefix_equal(const unsigned char *a, const unsigned char *b, unsigned bits)
{
    unsigned full = bits / 8, rest = bits % 8;

    if (memcmp(a, b, full) != 0)
        return false;
    if (rest) {
        unsigned char mask = (unsigned char)(0xff << (8 - rest));
        return (a[full] & mask) == (b[full] & mask);
    }
    return true;
}

/* Parse "10.66.10.0/24" or "fd00::/64" into c (with c->text canonical).
 * Returns false with the problem reported. */
static bool cidr_parse(struct loader *ld, const config_setting_t *s, const char *path,
                       const char *v, struct cidr *c)
{
    char addr[INET6_ADDRSTRLEN + 1];
    const char *slash = strchr(v, '/');
    unsigned max, nbytes;
    unsigned char net[16];
    size_t n;

    memset(c, 0, sizeof *c);
    if (!slash || (size_t)(slash - v) >= sizeof addr)
        goto malformed;
    memcpy(addr, v, (size_t)(slash - v));
    addr[slash - v] = '\0';
    if (inet_pton(AF_INET, addr, c->addr) == 1)
        c->family = AF_INET;
    else if (inet_pton(AF_INET6, addr, c->addr) == 1)
        c->family = AF_INET6;
    else
        goto malformed;
    max = c->family == AF_INET ? 32 : 128;
    n = strlen(slash + 1);
    if (n == 0 || n > 3 || strspn(slash + 1, "0123456789") != n)
        goto malformed;
    c->prefix = (unsigned)atoi(slash + 1);
    if (c->prefix > max) {
        problem(ld, s, path, "%s: prefix length must be between 0 and %u", v, max);
        return false;
    }
    /* The first and last addresses of a subnet are reserved (seeds, admin guide). */
    if (c->prefix > max - 2) {
        problem(ld, s, path, "%s: too small for virtual machines (the first and last addresses are "
                "reserved); use a prefix length of at most %u", v, max - 2);
        return false;
    }
    nbytes = addr_bytes(c->family);
    memset(net, 0, sizeof net);
    memcpy(net, c->addr, nbytes);
    for (unsigned bit = c->prefix; bit < nbytes * 8; bit++)
        net[bit / 8] &= (unsigned char)~(0x80 >> (bit % 8));
    inet_ntop(c->family, net, addr, sizeof addr);
    snprintf(c->text, sizeof c->text, "%s/%u", addr, c->prefix);
    if (memcmp(net, c->addr, nbytes) != 0) {
        problem(ld, s, path, "%s: host bits set; did you mean %s?", v, c->text);
        return false;
    }
    return true;

malformed:
    problem(ld, s, path, "expected a CIDR like \"10.66.10.0/24\", got %s", Q(v));
    return false;
}

static struct json_object *load_cidrs(struct loader *ld, const config_setting_t *list,
                                      const char *path)
{
    struct json_object *out = json_object_new_array();
    struct cidr *seen;
    unsigned n_seen = 0;
    int n;
    char p[PATH_MAX_LEN];

    if (!out)
        return NULL;
    if (config_setting_type(list) != CONFIG_TYPE_ARRAY && config_setting_type(list) != CONFIG_TYPE_LIST) {
        problem(ld, list, path, "expected a list of CIDRs like [ \"10.66.10.0/24\" ], got %s", GOT(list));
        return out;
    }
    n = config_setting_length(list);
    seen = calloc((size_t)n + 1, sizeof *seen);
    if (!seen)
        return out;
    for (int i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(list, (unsigned)i);
        struct cidr *c = &seen[n_seen];
        const char *v;
        bool ok = true;

        path_index(p, path, (unsigned)i);
        v = want_string(ld, s, p);
        if (!v || !cidr_parse(ld, s, p, v, c))
            continue;
        c->line = config_setting_source_line(s);
        for (unsigned j = 0; j < n_seen && ok; j++) {
            unsigned shorter = seen[j].prefix < c->prefix ? seen[j].prefix : c->prefix;
            if (seen[j].family == c->family && prefix_equal(seen[j].addr, c->addr, shorter)) {
                problem(ld, s, p, "%s overlaps %s (line %u)", c->text, seen[j].text, seen[j].line);
                ok = false;
            }
        }
        if (!ok)
            continue;
        json_object_array_add(out, json_object_new_string(c->text));
        n_seen++;
    }
    free(seen);
    return out;
}

/* The libvirt network VM interfaces join: a name libvirt accepts on every
 * node (it keeps the network as NAME.xml, hence no "/"), checked here so that
 * a typo fails the load or reload instead of every start. */
static struct json_object *load_libvirt_network(struct loader *ld, const config_setting_t *s,
                                                const char *path)
{
    const char *v = want_string(ld, s, path);
    if (!v)
        return NULL;
    record_line(ld, path, s);
    if (!*v) {
        problem(ld, s, path, "must not be empty (leave the setting out for VMs without a "
                "network interface)");
        return NULL;
    }
    if (strlen(v) > LIBVIRT_NETWORK_MAX) {
        problem(ld, s, path, "%s is longer than %d characters", Q(v), LIBVIRT_NETWORK_MAX);
        return NULL;
    }
    for (const char *c = v; *c; c++) {
        if (*c == '/' || (unsigned char)*c < 0x20 || *c == 0x7f) {
            problem(ld, s, path, "%s is not a libvirt network name (no \"/\" or control "
                    "characters)", Q(v));
            return NULL;
        }
    }
    return json_object_new_string(v);
}

static void load_virtualization(struct loader *ld, const config_setting_t *g, const char *path)
{
    /* After the first two, free-form groups the seeds place under the
     * virtualization settings; the modules that own them check them. */
    static const char *const keys[] = { "virtualMachineCIDRs", "libvirtNetwork", "virtualImages",
                                        "virtualDisks", "dvcr", "audit" };
    struct json_object *virt = ld->cfg->virtualization;
    char p[PATH_MAX_LEN];

    if (!want_group(ld, g, path, "{ virtualMachineCIDRs = [ \"10.66.10.0/24\" ]; }"))
        return;
    for (int i = 0; i < config_setting_length(g); i++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        const char *name = config_setting_name(s);
        struct json_object *v;
        path_member(p, path, name);
        if (strcmp(name, "virtualMachineCIDRs") == 0) {
            v = load_cidrs(ld, s, p);
        } else if (strcmp(name, "libvirtNetwork") == 0) {
            v = load_libvirt_network(ld, s, p);
        } else {
            bool known = false;
            for (unsigned k = 2; k < ARRAY_SIZE(keys); k++)
                known = known || strcmp(name, keys[k]) == 0;
            if (!known) {
                unknown_key(ld, s, p, keys, ARRAY_SIZE(keys));
                continue;
            }
            if (!want_group(ld, s, p, "{ ... }"))
                continue;
            v = to_json(ld, s, p, 2);
        }
        if (v)
            json_object_object_add(virt, name, v);
    }
}

/* ---- modules ----------------------------------------------------------------------- */

static void load_module(struct loader *ld, const config_setting_t *g, const char *path)
{
    static const char *const keys[] = { "enabled", "version", "log_level", "settings" };
    struct vf_config *cfg = ld->cfg;
    struct vf_config_module *m = &cfg->modules[cfg->n_modules++];
    bool have_enabled = false;
    char p[PATH_MAX_LEN];

    m->name = strdup(config_setting_name(g));
    m->log_level = -1;
    m->line = (int)config_setting_source_line(g);
    record_line(ld, path, g);
    for (int i = 0; i < config_setting_length(g); i++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        const char *name = config_setting_name(s);
        long long v;
        path_member(p, path, name);
        if (strcmp(name, "enabled") == 0) {
            have_enabled = true;
            if (config_setting_type(s) != CONFIG_TYPE_BOOL)
                problem(ld, s, p, "expected a boolean (true or false), got %s", GOT(s));
            else
                m->enabled = config_setting_get_bool(s);
        } else if (strcmp(name, "version") == 0) {
            if (!setting_int(s, &v))
                problem(ld, s, p, "expected an integer, got %s", GOT(s));
            else if (v < 1 || v > INT32_MAX)
                problem(ld, s, p, "expected a settings version of at least 1, got %lld", v);
            else
                m->version = (int)v;
        } else if (strcmp(name, "log_level") == 0) {
            m->log_level = load_log_level(ld, s, p);
        } else if (strcmp(name, "settings") == 0) {
            if (!want_group(ld, s, p, "{ bandwidthPerMigration = \"640Mi\"; }"))
                continue;
            json_object_put(m->settings);
            m->settings = to_json(ld, s, p, 3);
        } else {
            unknown_key(ld, s, p, keys, ARRAY_SIZE(keys));
        }
    }
    if (!have_enabled) {
        path_member(p, path, "enabled");
        problem(ld, g, p, "required setting missing");
    }
    if (!m->settings)
        m->settings = json_object_new_object();
}

static void load_modules(struct loader *ld, const config_setting_t *g, const char *path)
{
    struct vf_config *cfg = ld->cfg;
    char p[PATH_MAX_LEN];
    int n;

    if (!want_group(ld, g, path, "{ migrate = { enabled = true; }; }"))
        return;
    n = config_setting_length(g);
    if (n == 0)
        return;
    cfg->modules = calloc((size_t)n, sizeof *cfg->modules);
    if (!cfg->modules) {
        problem(ld, g, path, "out of memory");
        return;
    }
    for (int i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        path_member(p, path, config_setting_name(s));
        if (want_group(ld, s, p, "{ enabled = true; }"))
            load_module(ld, s, p);
    }
}

/* ---- the root ----------------------------------------------------------------------- */

static void load_root(struct loader *ld, const config_setting_t *root)
{
    static const char *const keys[] = { "state_dir", "pidfile", "log_level", "workers",
                                        "module_dir", "api", "nodes", "virtualization",
                                        "modules" };
    struct vf_config *cfg = ld->cfg;

    for (int i = 0; i < config_setting_length(root); i++) {
        const config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
        const char *name = config_setting_name(s);
        if (strcmp(name, "state_dir") == 0) {
            load_abs_path(ld, s, name, &cfg->state_dir);
        } else if (strcmp(name, "pidfile") == 0) {
            load_abs_path(ld, s, name, &cfg->pidfile);
        } else if (strcmp(name, "module_dir") == 0) {
            load_abs_path(ld, s, name, &cfg->module_dir);
        } else if (strcmp(name, "log_level") == 0) {
            int level = load_log_level(ld, s, name);
            if (level >= 0)
                cfg->log_level = (enum vf_log_level)level;
        } else if (strcmp(name, "workers") == 0) {
            load_workers(ld, s, name);
        } else if (strcmp(name, "api") == 0) {
            load_api(ld, s, name);
        } else if (strcmp(name, "nodes") == 0) {
            load_nodes(ld, s, name);
        } else if (strcmp(name, "virtualization") == 0) {
            load_virtualization(ld, s, name);
        } else if (strcmp(name, "modules") == 0) {
            load_modules(ld, s, name);
        } else {
            unknown_key(ld, s, name, keys, ARRAY_SIZE(keys));
        }
    }
}

/* ---- what libconfig would accept but get wrong ------------------------------------- */

static bool is_name_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '*' || c == '-';
}

/* An integer token at p (outside strings and comments); returns its end.
 * libconfig 1.5 wraps integers too big for 32 bits (5000000000 becomes
 * 705032704) and reads 0660 as decimal; both are refused instead of letting a
 * size or a mode change silently. */
static const char *scan_number(struct loader *ld, const char *text, const char *p, unsigned line)
{
    const char *start = p;
    bool negative = p > text && p[-1] == '-';
    bool hex = p[0] == '0' && (p[1] == 'x' || p[1] == 'X');
    bool overflow = false, is64 = false;
    unsigned __int128 v = 0;
    unsigned __int128 limit;

    if (hex) {
        for (p += 2; isxdigit((unsigned char)*p); p++) {
            v = v * 16 + (unsigned)(isdigit((unsigned char)*p) ? *p - '0' : (tolower((unsigned char)*p) - 'a' + 10));
            overflow = overflow || v > UINT64_MAX;
        }
    } else {
        for (; isdigit((unsigned char)*p); p++) {
            v = v * 10 + (unsigned)(*p - '0');
            overflow = overflow || v > UINT64_MAX;
        }
        if (*p == '.' || *p == 'e' || *p == 'E') {
            /* A float: libconfig parses those as doubles, nothing to check. */
            while (isdigit((unsigned char)*p) || *p == '.' || *p == 'e' || *p == 'E' ||
                   ((*p == '-' || *p == '+') && (p[-1] == 'e' || p[-1] == 'E')))
                p++;
            return p;
        }
    }
    if (*p == 'L') {
        is64 = true;
        while (*p == 'L')
            p++;
    }
    if (is64)
        limit = negative && !hex ? (unsigned __int128)INT64_MAX + 1 : (unsigned __int128)INT64_MAX;
    else
        limit = negative && !hex ? (unsigned __int128)INT32_MAX + 1 : (unsigned __int128)INT32_MAX;
    if (overflow || v > limit) {
        if (is64)
            problem_at(ld, line, NULL, "syntax error: %.*s does not fit in a 64-bit integer",
                       (int)(p - start > 40 ? 40 : p - start), start);
        else
            problem_at(ld, line, NULL, "syntax error: %.*s does not fit in a 32-bit integer; "
                       "append L for a 64-bit one (%.*sL)",
                       (int)(p - start > 40 ? 40 : p - start), start,
                       (int)(p - start > 40 ? 40 : p - start), start);
    } else if (!hex && start[0] == '0' && p - start > 1 && isdigit((unsigned char)start[1])) {
        problem_at(ld, line, NULL, "syntax error: %.*s has a leading zero, which libconfig does "
                   "not read as octal; write a file mode as a string (\"%.*s\")",
                   (int)(p - start > 40 ? 40 : p - start), start,
                   (int)(p - start > 40 ? 40 : p - start), start);
    }
    return p;
}

/* Walk the text the way libconfig's scanner does (strings, three comment
 * styles) to find what it would accept but get wrong, and @include, which
 * is refused so that the configuration is one file and every message names it. */
static void prescan(struct loader *ld, const char *text)
{
    const char *p = text;
    unsigned line = 1;

    while (*p) {
        char c = *p;
        if (c == '\n') {
            line++;
            p++;
        } else if (c == '"') {
            for (p++; *p && *p != '"'; p++) {
                if (*p == '\\' && p[1])
                    p++;
                if (*p == '\n')
                    line++;
            }
            if (*p)
                p++;
        } else if (c == '#' || (c == '/' && p[1] == '/')) {
            while (*p && *p != '\n')
                p++;
        } else if (c == '/' && p[1] == '*') {
            for (p += 2; *p && !(p[0] == '*' && p[1] == '/'); p++)
                if (*p == '\n')
                    line++;
            if (*p)
                p += 2;
        } else if (c == '@' && strncmp(p, "@include", 8) == 0) {
            problem_at(ld, line, NULL, "@include is not supported; keep the whole configuration "
                       "in this one file");
            ld->include_seen = true;
            p += 8;
        } else if (isalpha((unsigned char)c) || c == '_' || c == '*') {
            while (is_name_char(*p))
                p++;
        } else if (isdigit((unsigned char)c)) {
            p = scan_number(ld, text, p, line);
        } else {
            p++;
        }
    }
}

/* ---- entry points --------------------------------------------------------------------- */

static struct vf_config *config_new(const char *name)
{
    struct vf_config *cfg = calloc(1, sizeof *cfg);

    if (!cfg)
        return NULL;
    cfg->path = strdup(name);
    cfg->state_dir = strdup(LOCALSTATEDIR "/lib/virtfleet");
    cfg->pidfile = strdup(RUNSTATEDIR "/virtfleetd.pid");
    cfg->api_socket = strdup(RUNSTATEDIR "/virtfleet/virtfleetd.sock");
    cfg->api_socket_mode = 0660;
    cfg->log_level = VF_LOG_INFO;
    cfg->workers = 4;
    cfg->virtualization = json_object_new_object();
    cfg->setting_lines = json_object_new_object();
    if (!cfg->path || !cfg->state_dir || !cfg->pidfile || !cfg->api_socket ||
        !cfg->virtualization || !cfg->setting_lines) {
        vf_config_free(cfg);
        return NULL;
    }
    json_object_object_add(cfg->virtualization, "virtualMachineCIDRs", json_object_new_array());
    return cfg;
}

int vf_config_load_string(const char *text, const char *name, struct vf_config **out,
                          struct vf_config_errors *errors)
{
    struct vf_config_errors local = { 0 };
    struct loader ld = { .file = name ? name : "(string)", .errors = errors ? errors : &local };
    config_t lc;

    *out = NULL;
    if (!text)
        return -EINVAL;
    ld.cfg = config_new(ld.file);
    if (!ld.cfg)
        return -ENOMEM;
    prescan(&ld, text);
    config_init(&lc);
    /* After an @include (reported) libconfig must not parse: it would open the file. */
    if (!ld.include_seen && !config_read_string(&lc, text)) {
        const char *why = config_error_text(&lc);
        /* libconfig's own text is often just "syntax error": say it once. */
        if (!why || strcmp(why, "syntax error") == 0)
            problem_at(&ld, (unsigned)config_error_line(&lc), NULL, "syntax error");
        else
            problem_at(&ld, (unsigned)config_error_line(&lc), NULL, "syntax error: %s", why);
    } else if (ld.problems == 0) {
        load_root(&ld, config_root_setting(&lc));
    }
    config_destroy(&lc);
    vf_config_errors_clear(&local);
    if (ld.problems) {
        vf_config_free(ld.cfg);
        return -EINVAL;
    }
    *out = ld.cfg;
    return 0;
}

int vf_config_load(const char *path, struct vf_config **out, struct vf_config_errors *errors)
{
    struct stat st;
    char *text = NULL;
    size_t used = 0;
    int fd, r = 0;

    *out = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0) {
        r = -errno;
        vf_config_errors_add(errors, "%s: cannot read: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > FILE_SIZE_MAX) {
        r = -EINVAL;
        vf_config_errors_add(errors, "%s: cannot read: %s", path,
                             S_ISREG(st.st_mode) ? "larger than 4 MiB" : "not a regular file");
        goto out;
    }
    text = malloc((size_t)st.st_size + 1);
    if (!text) {
        r = -ENOMEM;
        goto out;
    }
    while (used < (size_t)st.st_size) {
        ssize_t n = read(fd, text + used, (size_t)st.st_size - used);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = -errno;
            vf_config_errors_add(errors, "%s: cannot read: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        used += (size_t)n;
    }
    text[used] = '\0';
    if (strlen(text) != used) {
        unsigned line = 1;
        for (const char *c = text; *c; c++)
            line += *c == '\n';
        vf_config_errors_add(errors, "%s:%u: syntax error: NUL byte", path, line);
        r = -EINVAL;
        goto out;
    }
    r = vf_config_load_string(text, path, out, errors);
out:
    if (fd >= 0)
        close(fd);
    free(text);
    return r;
}

void vf_config_free(struct vf_config *cfg)
{
    if (!cfg)
        return;
    free(cfg->path);
    free(cfg->state_dir);
    free(cfg->pidfile);
    free(cfg->api_socket);
    free(cfg->api_socket_group);
    free(cfg->module_dir);
    for (unsigned i = 0; i < cfg->n_nodes; i++) {
        free(cfg->nodes[i].name);
        free(cfg->nodes[i].uri);
        json_object_put(cfg->nodes[i].labels);
    }
    free(cfg->nodes);
    json_object_put(cfg->virtualization);
    for (unsigned i = 0; i < cfg->n_modules; i++) {
        free(cfg->modules[i].name);
        json_object_put(cfg->modules[i].settings);
    }
    free(cfg->modules);
    json_object_put(cfg->setting_lines);
    free(cfg);
}

const struct vf_config_module *vf_config_module(const struct vf_config *cfg, const char *name)
{
    if (!cfg || !name)
        return NULL;
    for (unsigned i = 0; i < cfg->n_modules; i++)
        if (cfg->modules[i].name && strcmp(cfg->modules[i].name, name) == 0)
            return &cfg->modules[i];
    return NULL;
}

int vf_config_line(const struct vf_config *cfg, const char *path)
{
    struct json_object *line;

    if (!cfg || !cfg->setting_lines || !path ||
        !json_object_object_get_ex(cfg->setting_lines, path, &line))
        return 0;
    return json_object_get_int(line);
}
