/* Bounded decoding of API request bodies.
 *
 * Request bodies come from any local user in the API socket's group, so they are
 * hostile until proven otherwise.  The server already caps the byte size; here
 * json-c's tokener caps nesting (so neither it nor anything that walks the tree
 * later recurses without bound), strict mode refuses the non-standard syntax json-c
 * would otherwise accept, and a walk over the result caps members per container
 * and the total bytes of strings, so one request cannot make the loop thread
 * chew through an object with millions of keys. */
#include <config.h> /* autoconf's; core/config.h is the daemon's configuration */

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <json-c/json.h>

#include "api.h"

#define BODY_MAX_DEPTH 32
#define BODY_MAX_MEMBERS 4096
/* Strings can never exceed the body itself, but escapes and keys add up; this
 * bounds what a caller may later copy around. */
#define BODY_MAX_STRING_BYTES (8u << 20)

struct body_walk {
    size_t string_bytes;
    char path[256];     /* where the walk is, for messages: "spec.disks[3]" */
};

static int body_bad(struct vf_error *err, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int body_bad(struct vf_error *err, const char *field, const char *fmt, ...)
{
    char msg[sizeof err->message];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return vf_error_set(err, -EINVAL, 400, "BadRequest", field, "%s", msg);
}

/* Appends ".key" or "[i]" to the path for the duration of one child's walk;
 * returns the old length so the caller can cut it back.  A path too long to
 * hold is truncated, which only shortens a message. */
static size_t body_path_push(struct body_walk *w, const char *key, size_t index)
{
    size_t old = strlen(w->path);
    size_t room = sizeof w->path - old;

    if (key)
        snprintf(w->path + old, room, "%s%s", old ? "." : "", key);
    else
        snprintf(w->path + old, room, "[%zu]", index);
    return old;
}

static bool body_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool body_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool body_is_letter(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool body_word_is(const char *s, size_t n, const char *word)
{
    return n == strlen(word) && !memcmp(s, word, n);
}

/* json-c, even in strict mode, takes a few things RFC 8259 does not: names in
 * single quotes, NaN and Infinity, "1.", raw control characters in strings.
 * Stored, they would come back out as text other JSON parsers refuse, so a
 * linear scan of what json-c accepted refuses them.  Returns the offset of the
 * first offending byte (and what it is), or -1. */
static long body_lex_check(const char *data, size_t len, const char **what)
{
    bool in_string = false;

    for (size_t i = 0; i < len; i++) {
        char c = data[i];

        if (in_string) {
            if (c == '\\') {
                i++;
            } else if (c == '"') {
                in_string = false;
            } else if ((unsigned char)c < 0x20) {
                *what = "a raw control character in a string (escape it)";
                return (long)i;
            }
        } else if (c == '"') {
            in_string = true;
        } else if (c == '\'') {
            *what = "a single quote (JSON strings use double quotes)";
            return (long)i;
        } else if (body_is_letter(c)) {
            size_t j = i;
            while (j < len && body_is_letter(data[j]))
                j++;
            /* An exponent: one e/E right after a digit. */
            if (!(j - i == 1 && (c == 'e' || c == 'E') && i > 0 && body_is_digit(data[i - 1])) &&
                !body_word_is(data + i, j - i, "true") && !body_word_is(data + i, j - i, "false") &&
                !body_word_is(data + i, j - i, "null")) {
                *what = "a bare word (only true, false and null are JSON literals)";
                return (long)i;
            }
            i = j - 1;
        } else if (c == '.' && !(i > 0 && body_is_digit(data[i - 1]) && i + 1 < len &&
                                 body_is_digit(data[i + 1]))) {
            *what = "a malformed number";
            return (long)i;
        }
    }
    return -1;
}

static int body_walk(struct json_object *v, struct body_walk *w, struct vf_error *err)
{
    switch (json_object_get_type(v)) {
    case json_type_object: {
        int n = json_object_object_length(v);
        if (n > BODY_MAX_MEMBERS)
            return body_bad(err, w->path, "request body: object %s has %d members, at most %d "
                            "are allowed", w->path[0] ? w->path : "(top level)", n,
                            BODY_MAX_MEMBERS);
        json_object_object_foreach(v, key, child) {
            size_t old;
            int r;

            w->string_bytes += strlen(key);
            if (w->string_bytes > BODY_MAX_STRING_BYTES)
                return body_bad(err, w->path, "request body: strings add up to more than %u bytes",
                                BODY_MAX_STRING_BYTES);
            old = body_path_push(w, key, 0);
            r = body_walk(child, w, err);
            w->path[old] = '\0';
            if (r < 0)
                return r;
        }
        return 0;
    }
    case json_type_array: {
        size_t n = json_object_array_length(v);
        if (n > BODY_MAX_MEMBERS)
            return body_bad(err, w->path, "request body: array %s has %zu elements, at most %d "
                            "are allowed", w->path[0] ? w->path : "(top level)", n,
                            BODY_MAX_MEMBERS);
        for (size_t i = 0; i < n; i++) {
            size_t old = body_path_push(w, NULL, i);
            int r = body_walk(json_object_array_get_idx(v, i), w, err);
            w->path[old] = '\0';
            if (r < 0)
                return r;
        }
        return 0;
    }
    case json_type_string:
        w->string_bytes += (size_t)json_object_get_string_len(v);
        if (w->string_bytes > BODY_MAX_STRING_BYTES)
            return body_bad(err, w->path, "request body: strings add up to more than %u bytes",
                            BODY_MAX_STRING_BYTES);
        return 0;
    default:
        return 0;
    }
}


struct json_object *vf_api_parse_body(const char *data, size_t len, struct vf_error *err)
{
    struct json_tokener *tok;
    struct json_object *obj;
    enum json_tokener_error jerr;
    struct body_walk walk = { 0 };
    size_t end;

    if (!data || len == 0) {
        body_bad(err, "", "request body is empty: a JSON object is required");
        return NULL;
    }
    /* json-c takes an int length. */
    if (len > (size_t)INT32_MAX) {
        body_bad(err, "", "request body of %zu bytes is too large to decode", len);
        return NULL;
    }
    tok = json_tokener_new_ex(BODY_MAX_DEPTH);
    if (!tok) {
        vf_error_set(err, -ENOMEM, 500, "InternalError", "",
                     "out of memory decoding the request body");
        return NULL;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS |
                                    JSON_TOKENER_VALIDATE_UTF8);
    obj = json_tokener_parse_ex(tok, data, (int)len);
    jerr = json_tokener_get_error(tok);
    end = json_tokener_get_parse_end(tok);
    if (jerr == json_tokener_continue) {
        /* A bare number at the very end could still go on; a space ends it, so
         * "42" is reported as what it is (not an object) rather than as cut off. */
        obj = json_tokener_parse_ex(tok, " ", 1);
        jerr = json_tokener_get_error(tok);
        end = len;
    }
    json_tokener_free(tok);

    if (jerr == json_tokener_continue) {
        size_t i = 0;
        while (i < len && body_is_space(data[i]))
            i++;
        if (i == len)
            body_bad(err, "", "request body is empty: a JSON object is required");
        else
            body_bad(err, "", "request body is not valid JSON: it ends in the middle of a value "
                     "at byte %zu", len);
        return NULL;
    }
    if (jerr == json_tokener_error_depth) {
        body_bad(err, "", "request body is nested deeper than %d levels at byte %zu",
                 BODY_MAX_DEPTH, end);
        return NULL;
    }
    if (jerr != json_tokener_success) {
        body_bad(err, "", "request body is not valid JSON: %s at byte %zu",
                 json_tokener_error_desc(jerr), end);
        return NULL;
    }
    /* json-c stops after the first value; anything but white space after it is a
     * second document or garbage, and silently ignoring it would hide mistakes. */
    for (size_t i = end; i < len; i++) {
        if (!body_is_space(data[i])) {
            json_object_put(obj);
            body_bad(err, "", "request body has trailing data after the JSON value at byte %zu",
                     i);
            return NULL;
        }
    }
    {
        const char *what = NULL;
        long at = body_lex_check(data, end, &what);
        if (at >= 0) {
            json_object_put(obj);
            body_bad(err, "", "request body is not valid JSON at byte %ld: %s", at, what);
            return NULL;
        }
    }
    if (!json_object_is_type(obj, json_type_object)) {
        body_bad(err, "", "request body must be a JSON object, not %s",
                 obj ? json_type_to_name(json_object_get_type(obj)) : "null");
        json_object_put(obj);
        return NULL;
    }
    if (body_walk(obj, &walk, err) < 0) {
        json_object_put(obj);
        return NULL;
    }
    return obj;
}
