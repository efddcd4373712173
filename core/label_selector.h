/* Kubernetes label selectors, used by placement (class and VM nodeSelector,
 * affinity), Discovery classes and the API's ?labelSelector.  Pure functions. */
#ifndef VF_LABEL_SELECTOR_H
#define VF_LABEL_SELECTOR_H
#include <stdbool.h>
#include <json-c/json.h>

/* selector: {"matchLabels": {k: v}, "matchExpressions": [{key, operator: In|NotIn|
 * Exists|DoesNotExist, values: [...]}]} (already schema-validated); NULL or {}
 * matches everything.  labels: an object of string values, or NULL (none). */
bool vf_selector_matches(const struct json_object *selector, const struct json_object *labels);
/* A plain map selector ({k: v, ...}: every pair must be present). */
bool vf_map_selector_matches(const struct json_object *map, const struct json_object *labels);
/* Human-readable form for explanations: "group In (green), zone=a". */
void vf_selector_describe(const struct json_object *selector, char *buf, size_t len);

/* A selector compiled once and matched many times (placement checks one
 * selector against every node).  It borrows the strings of the JSON it was
 * compiled from, which must outlive it. */
struct vf_selector;
/* selector as for vf_selector_matches (NULL or {} compiles to match-all).
 * -EINVAL for a malformed selector (unknown operator, In/NotIn without
 * values, non-string values), -ENOMEM.  Free with vf_selector_free. */
int vf_selector_compile(const struct json_object *selector, struct vf_selector **out);
/* The same for a plain map selector ({k: v, ...}). */
int vf_selector_compile_map(const struct json_object *map, struct vf_selector **out);
void vf_selector_free(struct vf_selector *sel);
bool vf_selector_is_empty(const struct vf_selector *sel);
/* -1 when labels match, else the index of the first requirement they fail
 * (matchLabels first, then matchExpressions, in the selector's order). */
int vf_selector_mismatch(const struct vf_selector *sel, const struct json_object *labels);
static inline bool vf_selector_match(const struct vf_selector *sel, const struct json_object *labels)
{
    return vf_selector_mismatch(sel, labels) < 0;
}
/* Why labels fail requirement `index` (from vf_selector_mismatch), e.g.
 * "label group=blue does not match group In (green)" or
 * "no label group, required by group In (green)". */
void vf_selector_explain(const struct vf_selector *sel, int index, const struct json_object *labels,
                         char *buf, size_t len);
/* Human-readable form of a compiled selector, as vf_selector_describe. */
void vf_selector_format(const struct vf_selector *sel, char *buf, size_t len);
#endif
