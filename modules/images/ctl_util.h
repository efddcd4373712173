/* What the images module's two controllers, cvi.c (ClusterVirtualImage) and
 * vd.c (VirtualDisk), do alike to the objects they own: status fields and
 * conditions, writing the status back, their finalizers and the progress
 * column (which VMs name an object: vm_refs.h).  One copy, so that both show the same status
 * shapes and log the same way.  Loop thread only.
 *
 * Also the module's one copy of the small readers every part of it uses on
 * objects and settings (member, string, str_eq, mono_s): inline, with the
 * short names the module's files have always called them by. */
#ifndef VF_IMAGES_CTL_UTIL_H
#define VF_IMAGES_CTL_UTIL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <json-c/json.h>
#include <virtfleet/module.h>

/* ---- small readers ------------------------------------------------------------ */

/* o.key when o is an object that has it, else NULL. */
static inline struct json_object *member(const struct json_object *o, const char *key)
{
    struct json_object *v = NULL;
    if (!o || !json_object_is_type(o, json_type_object) ||
        !json_object_object_get_ex(o, key, &v))
        return NULL;
    return v;
}

/* o.key when it is a string, else NULL. */
static inline const char *string(const struct json_object *o, const char *key)
{
    struct json_object *v = member(o, key);
    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* Both set and equal: a missing field equals nothing. */
static inline bool str_eq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

/* CLOCK_MONOTONIC seconds: back-offs survive changes of the wall clock. */
static inline int64_t mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

/* ---- status, conditions, finalizers ------------------------------------------- */

/* o.key = v as a string, or no o.key when v is NULL. */
void vf_images_set_str(struct json_object *o, const char *key, const char *v);

/* obj's metadata.generation; 0 when it has none. */
int64_t vf_images_generation(const struct json_object *obj);

/* A deep copy of obj's status to change and write back (json_object_put()
 * it); an empty object when obj has none. */
struct json_object *vf_images_status_copy(const struct json_object *obj);

/* Replaces the status of kind/name.  An object that is gone meanwhile is not
 * an error; any other failure is logged as `noun "name": cannot write its
 * status`. */
void vf_images_status_write(const struct vf_core *core, struct vf_module_ctx *ctx,
                            const char *kind, const char *noun, const char *name,
                            struct json_object *status);

/* t (seconds since the epoch) as RFC 3339 in UTC: "2006-01-02T15:04:05Z". */
void vf_images_rfc3339(int64_t t, char *buf, size_t len);

/* Sets condition `type` in status.conditions (made when missing); its
 * lastTransitionTime moves only when its status does. */
void vf_images_condition_set(struct json_object *status, const char *type, bool ok,
                             const char *reason, const char *msg);

/* Drops condition `type` from status.conditions; no list: nothing changes. */
void vf_images_condition_remove(struct json_object *status, const char *type);

/* true when obj's metadata.finalizers holds `which`. */
bool vf_images_has_finalizer(const struct json_object *obj, const char *which);

/* Adds (add) or removes finalizer `which` on kind obj by an update of its
 * metadata (never its status); nothing to do: 0.  Returns the update's code;
 * failures other than a gone or changed object (its event comes back) are
 * logged. */
int vf_images_finalizer_update(const struct vf_core *core, struct vf_module_ctx *ctx,
                               const char *kind, const struct json_object *obj,
                               const char *which, bool add);

/* done of total as the progress column shows it ("42.1%"): rounded down to a
 * tenth, so that 100.0% appears only with the last byte. */
void vf_images_progress_text(uint64_t done, uint64_t total, char *buf, size_t len);

#endif
