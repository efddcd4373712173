/* Audit events: who did what, recorded in the store as AuditEvent objects in
 * the same durable, ordered stream as everything else.  Writing them through
 * the store (rather than a log file) means a crash right after an action never
 * loses its record, and the audit module can ship them from a watch with a
 * resourceVersion bookmark, so nothing is lost or sent twice across restarts. */
#include <config.h>
#include "audit.h"
#include "json_util.h"
#include "kinds.h"
#include "log.h"
#include "objects.h"

#include <errno.h>
#include <time.h>
#include <unistd.h>

static const char *const audit_columns[] = {"TYPE", "spec.type", "ORIGIN", "spec.origin",
                                             "UID", "spec.actor.uid", NULL};
static const struct vf_kind audit_kind = {
    .kind = "AuditEvent", .plural = "auditevents", .singular = "auditevent",
    .short_name = "ae", .spec = NULL, .columns = audit_columns,
    .flags = VF_KIND_API_READ_ONLY,   /* a record nobody may forge or erase */
};

int vf_audit_init(void)
{
    if (vf_kinds_lookup(audit_kind.kind))
        return 0;
    struct vf_error err = {0};
    int rc = vf_kinds_register(&audit_kind, NULL, &err);
    if (rc < 0)
        vf_log_error("audit: %s", err.message);
    return rc;
}

void vf_audit_emit(const char *origin, const struct vf_audit_actor *actor, const char *type,
                   const struct json_object *details)
{
    if (!vf_objects_store())
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000);

    struct json_object *who = json_object_new_object();
    json_object_object_add(who, "uid", json_object_new_int64(actor ? actor->uid : getuid()));
    json_object_object_add(who, "gid", json_object_new_int64(actor ? actor->gid : getgid()));
    json_object_object_add(who, "pid", json_object_new_int(actor ? actor->pid : 0));
    json_object_object_add(who, "daemon", json_object_new_boolean(actor == NULL));

    struct json_object *spec = json_object_new_object();
    json_object_object_add(spec, "type", json_object_new_string(type));
    json_object_object_add(spec, "origin", json_object_new_string(origin ? origin : "core"));
    json_object_object_add(spec, "time", json_object_new_string(when));
    json_object_object_add(spec, "actor", who);
    if (details)
        json_object_object_add(spec, "details", vf_json_copy(details));
    struct json_object *meta = json_object_new_object();
    json_object_object_add(meta, "generateName", json_object_new_string("ae-"));
    struct json_object *obj = json_object_new_object();
    json_object_object_add(obj, "kind", json_object_new_string(audit_kind.kind));
    json_object_object_add(obj, "metadata", meta);
    json_object_object_add(obj, "spec", spec);

    struct vf_error err = {0};
    if (vf_objects_create(audit_kind.kind, obj, NULL, &err) < 0)
        vf_log_error("audit: cannot record %s: %s", type, err.message);
    json_object_put(obj);
}
