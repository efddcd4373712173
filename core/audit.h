/* Security-relevant events, recorded durably as AuditEvent objects in the store
 * (so they survive crashes and reach every watcher in order; the audit module
 * ships them).  Loop thread only. */
#ifndef VF_AUDIT_H
#define VF_AUDIT_H
#include <stdint.h>
#include <sys/types.h>
#include <virtfleet/module.h>

/* Who asked: the API peer's SO_PEERCRED, or the daemon itself (uid/gid of the
 * daemon, pid 0) for actions of controllers. */
struct vf_audit_actor {
    uint32_t uid, gid;
    int32_t pid;
};

/* Register the AuditEvent kind.  Once, at start-up, after the store is set. */
int vf_audit_init(void);
/* origin: module name or NULL (core).  actor NULL: the daemon itself.
 * type: "object.create", "object.delete", "module.enable", ...  details: borrowed. */
void vf_audit_emit(const char *origin, const struct vf_audit_actor *actor, const char *type,
                   const struct json_object *details);
#endif
