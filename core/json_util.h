/* Reading members of json-c objects that may be absent, null or of the wrong
 * type: every controller reads user-written objects, so every read checks. */
#ifndef VF_JSON_UTIL_H
#define VF_JSON_UTIL_H
#include <stdint.h>
#include <json-c/json.h>

/* obj[key], or NULL when obj is not an object or the member is absent or null. */
static inline struct json_object *vf_json_member(const struct json_object *obj, const char *key)
{
    struct json_object *v = NULL;
    if (!obj || !json_object_is_type(obj, json_type_object))
        return NULL;
    if (!json_object_object_get_ex(obj, key, &v) || json_object_is_type(v, json_type_null))
        return NULL;
    return v;
}

/* obj[key] when it is a string, else NULL. */
static inline const char *vf_json_string(const struct json_object *obj, const char *key)
{
    struct json_object *v = vf_json_member(obj, key);
    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* obj[key] when it is an integer, else dflt. */
static inline int64_t vf_json_int(const struct json_object *obj, const char *key, int64_t dflt)
{
    struct json_object *v = vf_json_member(obj, key);
    return v && json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : dflt;
}
#endif
