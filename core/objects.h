/* Object operations as the API and modules see them: resolve the kind, validate,
 * write to the store.  Loop thread only. */
#ifndef VF_OBJECTS_H
#define VF_OBJECTS_H
#include <virtfleet/module.h>
#include "store.h"

/* The daemon's store (set once at start-up; tests set their own). */
void vf_objects_set_store(struct vf_store *st);
struct vf_store *vf_objects_store(void);

/* `kind` may be any registered name (VirtualMachine, virtualmachines, vm).  Unknown
 * kind: -ENOENT with 404 NotFound naming it. */
int vf_objects_get(const char *kind, const char *name, struct json_object **out,
                   struct vf_error *err);
int vf_objects_list(const char *kind, struct json_object **items, int64_t *revision,
                    struct vf_error *err);
/* The same as text: the objects joined with commas (see vf_store_list_text);
 * *kind_name (may be NULL) gets the canonical kind. */
int vf_objects_list_text(const char *kind, char **text, size_t *len, int64_t *revision,
                         const char **kind_name, struct vf_error *err);
int vf_objects_create(const char *kind, const struct json_object *obj, struct json_object **out,
                      struct vf_error *err);
int vf_objects_update(const char *kind, const struct json_object *obj, struct json_object **out,
                      struct vf_error *err);
/* RFC 7386 JSON merge patch of spec/metadata (labels, annotations, finalizers). */
int vf_objects_patch(const char *kind, const char *name, const struct json_object *patch,
                     struct json_object **out, struct vf_error *err);
int vf_objects_update_status(const char *kind, const char *name, const struct json_object *status,
                             struct json_object **out, struct vf_error *err);
int vf_objects_delete(const char *kind, const char *name, int64_t expected_rv,
                      struct json_object **out, struct vf_error *err);
#endif
