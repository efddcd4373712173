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
#endif
