/* The ?labelSelector= query parameter of list and watch requests.
 *
 * ?labelSelector=k=v,k!=v,k,!k is the text form of a Kubernetes selector:
 * it is turned into the JSON form (matchLabels / matchExpressions) and matched
 * by label_selector.c, the one implementation of selector semantics. */
#include <config.h> /* autoconf's; core/config.h is the daemon's configuration */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "label_selector.h"

struct api_selector {
    struct json_object *source;   /* the JSON form; the compiled one borrows its strings */
    struct vf_selector *compiled;
};

void api_selector_free(struct api_selector *sel)
{
    if (!sel)
        return;
    vf_selector_free(sel->compiled);
    json_object_put(sel->source);
    free(sel);
}

static bool api_label_key_ok(const char *s, size_t len)
{
    if (len == 0 || len > 253)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_' || c == '/'))
            return false;
    }
    return true;
}

static bool api_label_value_ok(const char *s, size_t len)
{
    if (len > 63)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_'))
            return false;
    }
    return true;
}

static void api_trim(const char **s, size_t *len)
{
    while (*len && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*len)--;
    }
    while (*len && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
        (*len)--;
}

static void api_selector_add_expression(struct json_object *exprs, const char *key, size_t klen,
                                        const char *op, const char *value, size_t vlen)
{
    struct json_object *e = json_object_new_object();
    json_object_object_add(e, "key", json_object_new_string_len(key, (int)klen));
    json_object_object_add(e, "operator", json_object_new_string(op));
    if (value) {
        struct json_object *values = json_object_new_array();
        json_object_array_add(values, json_object_new_string_len(value, (int)vlen));
        json_object_object_add(e, "values", values);
    }
    json_object_array_add(exprs, e);
}

/* "k=v,k==v,k!=v,k,!k" -> *out (NULL for an empty selector). */
int api_selector_parse(const char *text, struct api_selector **out, struct api_reply *r)
{
    *out = NULL;
    if (!text || !text[0])
        return 0;
    struct json_object *labels = json_object_new_object(), *exprs = json_object_new_array();
    unsigned term = 0;
    for (const char *p = text;; term++) {
        const char *end = strchr(p, ','), *key = p, *val = NULL, *op;
        size_t len = end ? (size_t)(end - p) : strlen(p), klen, vlen = 0;
        const char *operator;

        api_trim(&key, &len);
        if (len && key[0] == '!') {
            operator = "DoesNotExist";
            key++;
            klen = len - 1;
            api_trim(&key, &klen);
        } else if ((op = memchr(key, '=', len)) != NULL) {
            klen = (size_t)(op - key);
            operator = klen && key[klen - 1] == '!' ? "NotIn" : "=";
            if (operator[0] == 'N')
                klen--;
            val = op + 1;
            if (val < key + len && *val == '=' && operator[0] == '=')
                val++;
            vlen = (size_t)(key + len - val);
            api_trim(&key, &klen);
            api_trim(&val, &vlen);
        } else {
            operator = "Exists";
            klen = len;
        }
        if (!api_label_key_ok(key, klen) || (val && !api_label_value_ok(val, vlen))) {
            api_reply_errorf(r, 400, "BadRequest", "",
                             "query parameter labelSelector=\"%s\": term %u is not one of k=v, "
                             "k==v, k!=v, k, !k with a valid label key and value", text, term + 1);
            json_object_put(labels);
            json_object_put(exprs);
            return -EINVAL;
        }
        if (operator[0] == '=') {
            char *k = strndup(key, klen);
            if (k)
                json_object_object_add(labels, k, json_object_new_string_len(val, (int)vlen));
            free(k);
        } else {
            api_selector_add_expression(exprs, key, klen, operator, val, vlen);
        }
        if (!end)
            break;
        p = end + 1;
    }
    struct api_selector *sel = calloc(1, sizeof *sel);
    if (sel) {
        sel->source = json_object_new_object();
        json_object_object_add(sel->source, "matchLabels", labels);
        json_object_object_add(sel->source, "matchExpressions", exprs);
        labels = exprs = NULL;
    }
    if (!sel || vf_selector_compile(sel->source, &sel->compiled) < 0) {
        json_object_put(labels);
        json_object_put(exprs);
        api_selector_free(sel);
        api_reply_errorf(r, 500, "InternalError", "", "cannot compile labelSelector \"%s\"", text);
        return -ENOMEM;
    }
    *out = sel;
    return 0;
}

bool api_selector_match(const struct api_selector *sel, const struct json_object *obj)
{
    struct json_object *meta = NULL, *labels = NULL;

    if (!sel)
        return true;
    if (json_object_object_get_ex(obj, "metadata", &meta))
        json_object_object_get_ex(meta, "labels", &labels);
    return vf_selector_match(sel->compiled, labels);
}
