/* Logging.  In the foreground lines go to stderr with a timestamp; as a daemon
 * they go to syslog (which journald collects).  Module lines carry the module's
 * name so an admin can tell who spoke. */
#include <config.h>
#include "log.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>

static bool log_to_stderr = true;
static enum vf_log_level log_threshold = VF_LOG_INFO;
/* One line at a time on stderr: lines from several threads must not interleave. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void vf_log_open(bool to_stderr, enum vf_log_level level)
{
    log_to_stderr = to_stderr;
    log_threshold = level;
    if (!to_stderr)
        openlog("virtfleetd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void vf_log_set_level(enum vf_log_level level)
{
    log_threshold = level;
}

int vf_log_level_parse(const char *name)
{
    for (unsigned i = 0; i < sizeof level_names / sizeof level_names[0]; i++)
        if (name && strcasecmp(name, level_names[i]) == 0)
            return (int)i;
    return -1;
}

const char *vf_log_level_name(enum vf_log_level level)
{
    return (unsigned)level < 4 ? level_names[level] : "?";
}

void vf_log_msgv(const char *origin, int module_level, enum vf_log_level level, const char *fmt,
                 va_list ap)
{
    int threshold = module_level >= 0 ? module_level : (int)log_threshold;
    if ((int)level > threshold)
        return;

    char text[2048];
    vsnprintf(text, sizeof text, fmt, ap);

    if (!log_to_stderr) {
        static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
        if (origin)
            syslog(prio[level], "%s: %s", origin, text);
        else
            syslog(prio[level], "%s", text);
        return;
    }

    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    pthread_mutex_lock(&log_lock);
    fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s%s%s\n", tm.tm_year + 1900,
            tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
            level_names[level], origin ? origin : "", origin ? ": " : "", text);
    pthread_mutex_unlock(&log_lock);
}

void vf_log_msg(const char *origin, enum vf_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vf_log_msgv(origin, -1, level, fmt, ap);
    va_end(ap);
}
