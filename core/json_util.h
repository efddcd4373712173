/* Reading members of json-c objects that may be absent, null or of the wrong
 * type: every controller reads user-written objects, so every read checks.
 * Also the few other JSON chores every controller shares (copies, writing an
 * optional string), so each is done one way. */
#ifndef VF_JSON_UTIL_H
#define VF_JSON_UTIL_H
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
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

/* v's text when v is a string, else NULL.  (json-c's getter takes a
 * non-const object although it does not modify it.) */
static inline const char *vf_json_as_string(const struct json_object *v)
{
    return v && json_object_is_type(v, json_type_string)
               ? json_object_get_string((struct json_object *)v)
               : NULL;
}

/* obj[key] when it is a string, else NULL. */
static inline const char *vf_json_string(const struct json_object *obj, const char *key)
{
    return vf_json_as_string(vf_json_member(obj, key));
}

/* obj[key] when it is an integer, else dflt. */
static inline int64_t vf_json_int(const struct json_object *obj, const char *key, int64_t dflt)
{
    struct json_object *v = vf_json_member(obj, key);
    return v && json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : dflt;
}

/* Both strings present and equal: what vf_json_string() read as absent
 * (NULL) never matches, not even another absent value. */
static inline bool vf_json_str_eq(const char *a, const char *b)
{
    return a && b && !strcmp(a, b);
}

/* Whether arr is an array with an element whose text (json_object_get_string)
 * is s. */
static inline bool vf_json_array_has(const struct json_object *arr, const char *s)
{
    size_t n = arr && json_object_is_type(arr, json_type_array) ? json_object_array_length(arr) : 0;
    for (size_t i = 0; i < n; i++)
        if (vf_json_str_eq(json_object_get_string(json_object_array_get_idx(arr, i)), s))
            return true;
    return false;
}

/* A deep copy of src, or NULL when src is NULL or cannot be copied. */
static inline struct json_object *vf_json_copy(const struct json_object *src)
{
    struct json_object *dst = NULL;
    if (!src || json_object_deep_copy((struct json_object *)src, &dst, NULL) < 0)
        return NULL;
    return dst;
}

/* A deep copy of src, or an empty object when src is NULL or cannot be
 * copied: for status objects the caller edits and writes back. */
static inline struct json_object *vf_json_copy_or_empty(const struct json_object *src)
{
    struct json_object *dst = vf_json_copy(src);
    return dst ? dst : json_object_new_object();
}

/* o[key] = value, or remove o[key] when value is NULL. */
static inline void vf_json_set_string(struct json_object *o, const char *key, const char *value)
{
    if (value)
        json_object_object_add(o, key, json_object_new_string(value));
    else
        json_object_object_del(o, key);
}
#endif
