/* Logging: stderr in the foreground, syslog otherwise; one threshold for the
 * daemon and one per module.  Safe from any thread. */
#ifndef VF_LOG_H
#define VF_LOG_H
#include <stdbool.h>
#include <stdarg.h>
#include <virtfleet/module.h>

void vf_log_open(bool to_stderr, enum vf_log_level level);
void vf_log_set_level(enum vf_log_level level);
/* "error", "warn", "info", "debug" -> level; -1 when unknown. */
int vf_log_level_parse(const char *name);
const char *vf_log_level_name(enum vf_log_level level);

/* origin: a module name, or NULL for the core.  module_level: that module's own
 * threshold, or -1 to use the daemon's. */
void vf_log_msgv(const char *origin, int module_level, enum vf_log_level level, const char *fmt,
                 va_list ap) __attribute__((format(printf, 4, 0)));
void vf_log_msg(const char *origin, enum vf_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define vf_log_error(...) vf_log_msg(NULL, VF_LOG_ERROR, __VA_ARGS__)
#define vf_log_warn(...) vf_log_msg(NULL, VF_LOG_WARN, __VA_ARGS__)
#define vf_log_info(...) vf_log_msg(NULL, VF_LOG_INFO, __VA_ARGS__)
#define vf_log_debug(...) vf_log_msg(NULL, VF_LOG_DEBUG, __VA_ARGS__)
#endif
