/* The module loader and lifecycle.
 *
 * Modules are opened with libltdl from the module directory only (by name:
 * DIR/NAME.so), resident, and never closed: a disabled module is stopped and
 * forgotten but its code stays mapped, so no stale function pointer can ever
 * jump into unmapped memory.  The ABI is checked before anything else in the
 * descriptor is read.  A module that fails is marked Failed with its reason;
 * the daemon and the other modules go on. */
#include <config.h>
#include "modules.h"
#include "module_instance.h"
#include "api.h"
#include "audit.h"
#include "kinds.h"
#include "log.h"
#include "loop.h"
#include "objects.h"

#include <dirent.h>
#include <stdarg.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef MODULEDIR
#define MODULEDIR "/usr/lib/virtfleet/modules"
#endif

static struct vf_module_instance *instances;
static char *module_dir;
static char *state_root;
static bool ltdl_ready;

/* The descriptor's fields up to and including stop() are required of every
 * module of this major version. */
#define DESC_MIN_SIZE (offsetof(struct vf_module, stop) + sizeof(void (*)(void)))

int vf_modules_init(const char *dir)
{
    if (!dir || !*dir)
        dir = getenv("VIRTFLEET_MODULE_DIR");
    if (!dir || !*dir)
        dir = MODULEDIR;
    if (!ltdl_ready) {
        if (lt_dlinit() != 0) {
            vf_log_error("module loader: lt_dlinit failed: %s", lt_dlerror());
            return -EIO;
        }
        ltdl_ready = true;
    }
    if (module_dir && strcmp(module_dir, dir) != 0 && instances)
        vf_log_warn("module directory changes to \"%s\" only for modules not loaded yet", dir);
    free(module_dir);
    module_dir = strdup(dir);
    return module_dir ? 0 : -ENOMEM;
}

const char *vf_modules_dir(void)
{
    return module_dir ? module_dir : MODULEDIR;
}

void vf_modules_set_state_root(const char *state_dir)
{
    free(state_root);
    state_root = state_dir ? strdup(state_dir) : NULL;
}

static bool name_is_safe(const char *name)
{
    if (!name || !*name || strlen(name) > 64)
        return false;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
            return false;
    return true;
}

static struct vf_module_instance *instance_find(const char *name)
{
    for (struct vf_module_instance *m = instances; m; m = m->next)
        if (strcmp(m->name, name) == 0)
            return m;
    return NULL;
}

static struct vf_module_instance *instance_get(const char *name)
{
    struct vf_module_instance *m = instance_find(name);
    if (m)
        return m;
    m = calloc(1, sizeof *m);
    if (!m || !(m->name = strdup(name))) {
        free(m);
        return NULL;
    }
    m->ctx.core = vf_core_services();
    m->log_level = -1;
    m->state = VF_MODULE_DISABLED;
    /* Keep the list sorted by name: listings then need no sort. */
    struct vf_module_instance **pp = &instances;
    while (*pp && strcmp((*pp)->name, name) < 0)
        pp = &(*pp)->next;
    m->next = *pp;
    *pp = m;
    return m;
}

/* Open the module's file and check its descriptor.  On failure *why says what
 * is wrong and what to do, in one line. */
static int instance_load(struct vf_module_instance *m, char *why, size_t whylen)
{
    if (m->desc)
        return 0;
    if (!name_is_safe(m->name)) {
        snprintf(why, whylen, "\"%s\" is not a module name (lower-case letters, digits, _ and -)",
                 m->name);
        return -EINVAL;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.so", vf_modules_dir(), m->name);
    struct stat st;
    if (stat(path, &st) < 0) {
        snprintf(why, whylen, "no module \"%s\": %s not found (installed modules are in %s)",
                 m->name, path, vf_modules_dir());
        return -ENOENT;
    }
    if (!m->handle) {
        lt_dladvise advise;
        lt_dladvise_init(&advise);
        lt_dladvise_resident(&advise);
        lt_dladvise_local(&advise);
        m->handle = lt_dlopenadvise(path, advise);
        lt_dladvise_destroy(&advise);
        if (!m->handle) {
            snprintf(why, whylen, "%s: cannot load: %s", path, lt_dlerror());
            return -ENOEXEC;
        }
    }
    free(m->file);
    m->file = strdup(path);
    const struct vf_module *d = lt_dlsym(m->handle, VF_MODULE_SYMBOL);
    if (!d) {
        snprintf(why, whylen,
                 "%s: does not export \"" VF_MODULE_SYMBOL "\": not a virtfleet module "
                 "(define it with VF_MODULE_DEFINE from <virtfleet/module.h>)", path);
        return -ENOEXEC;
    }
    if (d->abi_major != VF_MODULE_ABI_MAJOR) {
        snprintf(why, whylen,
                 "%s: built for module ABI %u.%u, this virtfleetd provides %d.%d: rebuild the "
                 "module against virtfleet-module %d.x", path, d->abi_major, d->abi_minor,
                 VF_MODULE_ABI_MAJOR, VF_MODULE_ABI_MINOR, VF_MODULE_ABI_MAJOR);
        return -ENOEXEC;
    }
    if (d->abi_minor > VF_MODULE_ABI_MINOR) {
        snprintf(why, whylen,
                 "%s: built for module ABI %u.%u, newer than this virtfleetd's %d.%d: upgrade "
                 "virtfleetd or rebuild the module", path, d->abi_major, d->abi_minor,
                 VF_MODULE_ABI_MAJOR, VF_MODULE_ABI_MINOR);
        return -ENOEXEC;
    }
    if (d->size < DESC_MIN_SIZE) {
        snprintf(why, whylen, "%s: descriptor of %u bytes is too small for ABI %u.%u", path,
                 d->size, d->abi_major, d->abi_minor);
        return -ENOEXEC;
    }
    if (!d->name || strcmp(d->name, m->name) != 0) {
        snprintf(why, whylen, "%s: the module calls itself \"%s\"; its file must be named %s.so",
                 path, d->name ? d->name : "(null)", d->name ? d->name : "NAME");
        return -ENOEXEC;
    }
    if (!d->start || !d->stop) {
        snprintf(why, whylen, "%s: the descriptor lacks start() or stop()", path);
        return -ENOEXEC;
    }
    m->desc = d;
    return 0;
}

/* Everything short of starting: load, settings schema, version, configure().
 * *settings (new object) on success.  Problems are added to errors, prefixed
 * with the config's file:line. */
static int instance_prepare(struct vf_module_instance *m, const struct vf_config *cfg,
                            const struct vf_config_module *entry, struct json_object **settings,
                            struct vf_config_errors *errors)
{
    char why[1024];
    *settings = NULL;
    int rc = instance_load(m, why, sizeof why);
    if (rc < 0) {
        vf_config_errors_add(errors, "%s:%d: modules.%s: %s", cfg->path, entry->line, m->name, why);
        return rc;
    }
    if (entry->version > m->desc->settings_version && m->desc->settings_version > 0) {
        vf_config_errors_add(errors,
                             "%s:%d: modules.%s.version: %d is newer than the settings version %d "
                             "this module understands", cfg->path, entry->line, m->name,
                             entry->version, m->desc->settings_version);
        return -EINVAL;
    }
    static const struct vf_setting none[] = {{.name = NULL}};
    rc = vf_settings_check(cfg, entry, m->desc->settings ? m->desc->settings : none, settings,
                           errors);
    if (rc < 0)
        return rc;
    if (m->desc->configure) {
        struct vf_error err = {0};
        int saved = m->log_level;
        m->log_level = entry->log_level;
        rc = m->desc->configure(&m->ctx, *settings, &err);
        m->log_level = saved;
        if (rc < 0) {
            char path[256];
            snprintf(path, sizeof path, "modules.%s.settings%s%s", m->name,
                     err.field[0] ? "." : "", err.field);
            int line = vf_config_line(cfg, path);
            vf_config_errors_add(errors, "%s:%d: %s: %s", cfg->path, line ? line : entry->line,
                                 path, err.message[0] ? err.message : "refused by the module");
            json_object_put(*settings);
            *settings = NULL;
            return rc < 0 ? rc : -EINVAL;
        }
    }
    return 0;
}

int vf_modules_check(const struct vf_config *cfg, struct vf_config_errors *errors)
{
    int rc = 0;
    for (unsigned i = 0; i < cfg->n_modules; i++) {
        const struct vf_config_module *entry = &cfg->modules[i];
        struct vf_module_instance *m = instance_get(entry->name);
        if (!m)
            return -ENOMEM;
        char why[1024];
        /* A disabled entry for a module that is not installed is fine: the admin
         * may keep settings for a module a distribution ships separately. */
        if (!entry->enabled && instance_load(m, why, sizeof why) == -ENOENT)
            continue;
        struct json_object *settings;
        if (instance_prepare(m, cfg, entry, &settings, errors) < 0)
            rc = -EINVAL;
        json_object_put(settings);
    }
    return rc;
}

static void instance_release(struct vf_module_instance *m)
{
    for (int i = 0; i < m->n_timers; i++)
        vf_loop_timer_remove(m->timers[i]);
    for (int i = 0; i < m->n_fds; i++)
        vf_loop_fd_remove(m->fds[i]);
    for (int i = 0; i < m->n_watches; i++)
        vf_core_watch_free(m->watches[i]);
    free(m->watches);
    m->watches = NULL;
    m->n_timers = m->n_fds = m->n_watches = 0;
    vf_api_routes_remove_owner(&m->ctx);
    vf_kinds_unregister_owner(&m->ctx);
    m->data = NULL;
}

static void instance_fail(struct vf_module_instance *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void instance_fail(struct vf_module_instance *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->reason, sizeof m->reason, fmt, ap);
    va_end(ap);
    m->state = VF_MODULE_FAILED;
    json_object_put(m->settings);
    m->settings = NULL;
    vf_log_error("module %s disabled: %s", m->name, m->reason);
}

static void instance_stop(struct vf_module_instance *m, const char *why)
{
    if (m->state != VF_MODULE_RUNNING)
        return;
    m->desc->stop(&m->ctx);
    instance_release(m);
    m->state = VF_MODULE_DISABLED;
    snprintf(m->reason, sizeof m->reason, "%s", why);
    json_object_put(m->settings);
    m->settings = NULL;
    vf_log_info("module %s stopped (%s)", m->name, why);
}

static void instance_start(struct vf_module_instance *m, struct json_object *settings)
{
    m->settings = settings;
    m->reason[0] = '\0';
    int rc = m->desc->start(&m->ctx, settings);
    if (rc < 0) {
        instance_release(m);
        instance_fail(m, "start failed: %s", strerror(-rc));
        return;
    }
    m->state = VF_MODULE_RUNNING;
    vf_log_info("module %s %s started", m->name, m->desc->version ? m->desc->version : "");
}

/* Does any setting that differs between a and b say it needs a restart? */
static bool needs_restart(const struct vf_setting *schema, struct json_object *a,
                          struct json_object *b)
{
    for (const struct vf_setting *s = schema; s && s->name; s++) {
        struct json_object *va = NULL, *vb = NULL;
        json_object_object_get_ex(a, s->name, &va);
        json_object_object_get_ex(b, s->name, &vb);
        if (json_object_equal(va, vb))
            continue;
        if (s->flags & VF_SETTING_RESTART)
            return true;
        if (s->type == VF_SETTING_GROUP && needs_restart(s->children, va, vb))
            return true;
    }
    return false;
}

static void instance_apply(struct vf_module_instance *m, const struct vf_config *cfg,
                           const struct vf_config_module *entry)
{
    m->enabled = entry && entry->enabled;
    if (!m->enabled) {
        const char *why = entry ? "disabled in the configuration" : "not in the configuration";
        instance_stop(m, why);
        m->state = VF_MODULE_DISABLED;
        snprintf(m->reason, sizeof m->reason, "%s", why);
        return;
    }
    struct vf_config_errors errors = {0};
    struct json_object *settings;
    m->log_level = entry->log_level;
    if (instance_prepare(m, cfg, entry, &settings, &errors) < 0) {
        instance_stop(m, "settings rejected");
        instance_fail(m, "%s", errors.n ? errors.lines[0] : "settings rejected");
        vf_config_errors_clear(&errors);
        return;
    }
    vf_config_errors_clear(&errors);

    if (m->state != VF_MODULE_RUNNING) {
        instance_start(m, settings);
        return;
    }
    if (json_object_equal(m->settings, settings)) {
        json_object_put(settings);
        return;
    }
    if (!m->desc->reconfigure || needs_restart(m->desc->settings, m->settings, settings)) {
        instance_stop(m, "restarting for new settings");
        instance_start(m, settings);
        return;
    }
    int rc = m->desc->reconfigure(&m->ctx, settings);
    if (rc < 0) {
        instance_stop(m, "reconfigure failed");
        json_object_put(settings);
        instance_fail(m, "reconfigure failed: %s", strerror(-rc));
        return;
    }
    json_object_put(m->settings);
    m->settings = settings;
    vf_log_info("module %s reconfigured", m->name);
}

void vf_modules_apply(const struct vf_config *cfg)
{
    for (unsigned i = 0; i < cfg->n_modules; i++)
        if (!instance_get(cfg->modules[i].name))
            vf_log_error("module %s: out of memory", cfg->modules[i].name);
    for (struct vf_module_instance *m = instances; m; m = m->next) {
        bool was_running = m->state == VF_MODULE_RUNNING;
        instance_apply(m, cfg, vf_config_module(cfg, m->name));
        bool running = m->state == VF_MODULE_RUNNING;
        if (was_running != running) {
            struct json_object *details = json_object_new_object();
            json_object_object_add(details, "module", json_object_new_string(m->name));
            json_object_object_add(details, "reason", json_object_new_string(m->reason));
            vf_audit_emit(NULL, NULL, running ? "module.start" : "module.stop", details);
            json_object_put(details);
        }
    }
}

void vf_modules_stop_all(void)
{
    for (struct vf_module_instance *m = instances; m; m = m->next)
        instance_stop(m, "the daemon stops");
}

/* Modules present in the directory but never configured show up as Disabled. */
static void discover_directory(void)
{
    DIR *dir = opendir(vf_modules_dir());
    if (!dir)
        return;
    struct dirent *e;
    while ((e = readdir(dir))) {
        size_t len = strlen(e->d_name);
        if (len <= 3 || strcmp(e->d_name + len - 3, ".so") != 0)
            continue;
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(len - 3), e->d_name);
        if (!name_is_safe(name) || instance_find(name))
            continue;
        struct vf_module_instance *m = instance_get(name);
        if (m)
            snprintf(m->reason, sizeof m->reason, "not in the configuration");
    }
    closedir(dir);
}

static const char *state_name(enum vf_module_state s)
{
    switch (s) {
    case VF_MODULE_RUNNING: return "Running";
    case VF_MODULE_FAILED: return "Failed";
    default: return "Disabled";
    }
}

struct json_object *vf_modules_status(void)
{
    discover_directory();
    struct json_object *items = json_object_new_array();
    for (struct vf_module_instance *m = instances; m; m = m->next) {
        char why[1024];
        if (!m->desc)
            instance_load(m, why, sizeof why);   /* for version and summary only */
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(m->name));
        json_object_object_add(o, "enabled", json_object_new_boolean(m->enabled));
        json_object_object_add(o, "state", json_object_new_string(state_name(m->state)));
        json_object_object_add(o, "reason", json_object_new_string(m->reason));
        if (m->desc) {
            json_object_object_add(o, "version",
                                   json_object_new_string(m->desc->version ? m->desc->version : ""));
            json_object_object_add(o, "settingsVersion",
                                   json_object_new_int(m->desc->settings_version));
            json_object_object_add(o, "summary",
                                   json_object_new_string(m->desc->summary ? m->desc->summary : ""));
        }
        if (m->file)
            json_object_object_add(o, "file", json_object_new_string(m->file));
        if (m->settings)
            json_object_object_add(o, "settings", json_object_get(m->settings));
        json_object_array_add(items, o);
    }
    return items;
}

static const char *setting_type_name(enum vf_setting_type t)
{
    static const char *const names[] = {"bool", "int", "string", "size", "duration", "strings",
                                        "group"};
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "?";
}

static void print_settings(FILE *out, const struct vf_setting *s, int indent)
{
    for (; s && s->name; s++) {
        fprintf(out, "%*s%-28s %-8s", indent, "", s->name, setting_type_name(s->type));
        if (s->default_value)
            fprintf(out, " default %s", s->default_value);
        if (s->flags & VF_SETTING_REQUIRED)
            fprintf(out, " (required)");
        char bounds[96];
        if (vf_settings_bounds_text(s, bounds, sizeof bounds))
            fprintf(out, " (%s)", bounds);
        if (s->choices) {
            fprintf(out, " one of");
            for (const char *const *c = s->choices; *c; c++)
                fprintf(out, " %s", *c);
        }
        if (s->flags & VF_SETTING_RESTART)
            fprintf(out, " (restarts the module)");
        fprintf(out, "\n%*s  %s\n", indent, "", s->description ? s->description : "");
        if (s->type == VF_SETTING_GROUP)
            print_settings(out, s->children, indent + 4);
    }
}

int vf_modules_print(FILE *out)
{
    discover_directory();
    fprintf(out, "Modules in %s (module ABI %d.%d):\n", vf_modules_dir(), VF_MODULE_ABI_MAJOR,
            VF_MODULE_ABI_MINOR);
    int rc = 0;
    for (struct vf_module_instance *m = instances; m; m = m->next) {
        char why[1024];
        if (instance_load(m, why, sizeof why) < 0) {
            fprintf(out, "\n%s: unusable: %s\n", m->name, why);
            rc = -ENOEXEC;
            continue;
        }
        fprintf(out, "\n%s %s (settings version %d): %s\n", m->name,
                m->desc->version ? m->desc->version : "", m->desc->settings_version,
                m->desc->summary ? m->desc->summary : "");
        if (m->desc->settings && m->desc->settings->name)
            print_settings(out, m->desc->settings, 2);
        else
            fprintf(out, "  (no settings)\n");
    }
    return rc;
}

int vf_module_track_id(int **ids, int *n, int id)
{
    int *grown = realloc(*ids, (size_t)(*n + 1) * sizeof **ids);
    if (!grown)
        return -ENOMEM;
    grown[(*n)++] = id;
    *ids = grown;
    return 0;
}

void vf_module_untrack_id(int *ids, int *n, int id)
{
    for (int i = 0; i < *n; i++)
        if (ids[i] == id) {
            ids[i] = ids[--*n];
            return;
        }
}

const char *vf_module_state_dir(struct vf_module_instance *m)
{
    if (m->state_dir || !state_root)
        return m->state_dir;
    char path[4096];
    snprintf(path, sizeof path, "%s/modules", state_root);
    if (mkdir(path, 0750) < 0 && errno != EEXIST) {
        vf_log_msg(m->name, VF_LOG_ERROR, "cannot create \"%s\": %s", path, strerror(errno));
        return NULL;
    }
    snprintf(path, sizeof path, "%s/modules/%s", state_root, m->name);
    if (mkdir(path, 0750) < 0 && errno != EEXIST) {
        vf_log_msg(m->name, VF_LOG_ERROR, "cannot create \"%s\": %s", path, strerror(errno));
        return NULL;
    }
    m->state_dir = strdup(path);
    return m->state_dir;
}
