/* The configuration file (libconfig): core settings, nodes, virtualization
 * settings and the `modules` group of ModuleConfig-like entries.  Errors name
 * file:line and the setting path. */
#ifndef VF_CONFIG_H
#define VF_CONFIG_H
#include <stdbool.h>
#include <sys/types.h>
#include <virtfleet/module.h>

struct vf_config_node {
    char *name;
    char *uri;                      /* libvirt URI */
    struct json_object *labels;     /* object of string values */
    double cpu_allocation_ratio;    /* allocatable CPUs = whole CPUs x this (overcommit); default 1 */
};

struct vf_config_module {
    char *name;
    bool enabled;
    int version;                    /* settings schema version; 0: not given */
    int log_level;                  /* -1: the daemon's */
    struct json_object *settings;   /* as written (not yet checked against the schema) */
    int line;                       /* where the entry starts, for messages */
};

struct vf_config {
    char *path;
    char *state_dir;                /* default LOCALSTATEDIR/lib/virtfleet */
    char *pidfile;                  /* default RUNSTATEDIR/virtfleetd.pid */
    char *api_socket;               /* default RUNSTATEDIR/virtfleet/virtfleetd.sock */
    mode_t api_socket_mode;         /* default 0660 */
    char *api_socket_group;         /* NULL: the daemon's group */
    enum vf_log_level log_level;    /* default info */
    int workers;                    /* default 4 */
    char *module_dir;               /* NULL: the built-in one */
    struct vf_config_node *nodes;
    unsigned n_nodes;
    struct json_object *virtualization; /* { virtualMachineCIDRs: [...], ... } */
    struct vf_config_module *modules;
    unsigned n_modules;
    /* Private to config.c and settings.c (read it through vf_config_line()):
     * the source line of every setting that was converted to JSON (module
     * settings and the free-form virtualization groups), keyed by its path,
     * e.g. "modules.migrate.settings.bandwidthPerMigration" or
     * "virtualization.dvcr.storage".  Kept instead of the libconfig tree so
     * that a loaded configuration owns no parser state. */
    struct json_object *setting_lines;
};

/* Collected problems, one line each: "FILE:LINE: PATH: what is wrong". */
struct vf_config_errors {
    char **lines;
    unsigned n;
};
void vf_config_errors_add(struct vf_config_errors *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void vf_config_errors_clear(struct vf_config_errors *e);

/* The source line of the setting at `path` (a path under "modules.NAME.settings"
 * or "virtualization." as in messages, list elements as "[i]"), or 0 when it
 * was not written in the file. */
int vf_config_line(const struct vf_config *cfg, const char *path);

/* s in double quotes for a one-line message: control characters escaped (a
 * newline must not split the line) and long values cut with "...".  Returns buf. */
const char *vf_config_quote(const char *s, char *buf, size_t len);

/* Of the n `candidates`, the one `word` is most likely a typo of (edit
 * distance ignoring case of at most 2), or NULL.  For "did you mean" hints. */
const char *vf_config_suggest(const char *word, const char *const *candidates, unsigned n);

/* Parse and check the core part (every problem collected, not just the first).
 * Module settings are checked later against each module's schema
 * (vf_settings_check).  Returns 0 or -EINVAL with errors collected. */
int vf_config_load(const char *path, struct vf_config **out, struct vf_config_errors *errors);
/* vf_config_load() reads the file itself: an unreadable file is one message
 * "FILE: cannot read: REASON" and its negative errno (-ENOENT ...).  Both
 * refuse `@include` (one file, so that every message names it and SIGHUP
 * re-reads all of it) and integers libconfig would silently mangle (too big
 * for 32 bits without an L suffix; a leading zero, which is not octal). */
/* The same, from text (tests, fuzzing); name is used in messages. */
int vf_config_load_string(const char *text, const char *name, struct vf_config **out,
                          struct vf_config_errors *errors);
void vf_config_free(struct vf_config *cfg);
const struct vf_config_module *vf_config_module(const struct vf_config *cfg, const char *name);

/* Check `settings` (as written) against a module's schema; fill defaults,
 * convert sizes to bytes and durations to ms.  *out: a new object.  Problems
 * are reported as "FILE:LINE: modules.NAME.settings.PATH: ...".  A schema's
 * default_value is written as in the file: "true", "42", "640Mi", "5m", a
 * string's text without quotes, and STRINGS as comma-separated items ("a,b";
 * "" for an empty list).  Bounds: min and max both 0 mean unbounded; max 0
 * with min set means "at least min".  Returns 0 or -EINVAL (*out NULL). */
int vf_settings_check(const struct vf_config *cfg, const struct vf_config_module *m,
                      const struct vf_setting *schema, struct json_object **out,
                      struct vf_config_errors *errors);
/* A setting's bounds in words ("a size of at least 1Mi", "an integer between 1
 * and 10") into buf; returns its length, 0 (buf untouched) when unbounded. */
size_t vf_settings_bounds_text(const struct vf_setting *st, char *buf, size_t len);
#endif
