/* The registry of resource kinds (the core's and the modules') and their
 * validation: the schema of .spec from struct vf_field tables, metadata rules
 * (names are DNS labels), immutable fields, then the kind's own validate hook. */
#ifndef VF_KINDS_H
#define VF_KINDS_H
#include <virtfleet/module.h>

struct vf_kind_entry {
    const struct vf_kind *kind;
    struct vf_module_ctx *owner;   /* NULL for the core's kinds */
};

/* -EEXIST when the kind, plural or short name is taken. */
int vf_kinds_register(const struct vf_kind *kind, struct vf_module_ctx *owner, struct vf_error *err);
/* Remove every kind registered by owner (a module being stopped). */
void vf_kinds_unregister_owner(struct vf_module_ctx *owner);
/* By kind, plural, singular or short name, case-insensitively; NULL if unknown. */
const struct vf_kind_entry *vf_kinds_lookup(const char *name);
/* Iterate: i from 0 until NULL. */
const struct vf_kind_entry *vf_kinds_at(unsigned i);

/* Validate obj for create (old == NULL) or update.  Checks apiVersion
 * ("virtfleet.io/v1alpha2" or "virtualization.deckhouse.io/v1alpha2"; filled in
 * when absent), kind, metadata.name or generateName (DNS label), labels, .spec
 * against the schema (unknown fields, types, enums, required), immutable fields
 * against old, then the kind's validate hook.  May fill defaults into obj. */
int vf_kinds_validate(const struct vf_kind_entry *k, const struct json_object *old,
                      struct json_object *obj, struct vf_error *err);

/* An RFC 1123 DNS label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 characters. */
bool vf_is_dns_label(const char *s);
#endif
