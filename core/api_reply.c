/* The replies of the API server: JSON bodies and the error object every failure
 * is answered with ({"error":{"code","reason","message","field"}}), including
 * the mapping of an object operation's errno to its HTTP status. */
#include <config.h> /* autoconf's; core/config.h is the daemon's configuration */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "log.h"

/* Serialize and drop obj; NULL on out of memory. */
static char *api_to_text(struct json_object *obj)
{
    char *text = NULL;

    if (obj) {
        const char *s = json_object_to_json_string_ext(
            obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        text = s ? strdup(s) : NULL;
        json_object_put(obj);
    }
    return text;
}

void api_reply_json(struct api_reply *r, unsigned status, struct json_object *obj)
{
    r->status = status;
    free(r->body);
    r->body = api_to_text(obj);
}

static struct json_object *api_error_object(unsigned status, const char *reason,
                                            const char *field, const char *message)
{
    struct json_object *e = json_object_new_object(), *top = json_object_new_object();

    json_object_object_add(e, "code", json_object_new_int((int)status));
    json_object_object_add(e, "reason", json_object_new_string(reason));
    json_object_object_add(e, "message", json_object_new_string(message));
    if (field && field[0])
        json_object_object_add(e, "field", json_object_new_string(field));
    json_object_object_add(top, "error", e);
    return top;
}

void api_reply_errorf(struct api_reply *r, unsigned status, const char *reason,
                      const char *field, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (status >= 500)
        vf_log_error("api: %s", msg);
    api_reply_json(r, status, api_error_object(status, reason, field, msg));
}

/* From a failed object operation: its vf_error when filled, else the errno. */
void api_reply_error(struct api_reply *r, int rc, const struct vf_error *err)
{
    if (err->status >= 400 && err->status <= 599) {
        if (err->status >= 500)
            vf_log_error("api: %s", err->message);
        api_reply_json(r, (unsigned)err->status,
                       api_error_object((unsigned)err->status, err->reason[0] ? err->reason
                                                                              : "Error",
                                        err->field, err->message));
        return;
    }
    switch (rc) {
    case -ENOENT:
        api_reply_errorf(r, 404, "NotFound", "", "not found");
        break;
    case -EEXIST:
        api_reply_errorf(r, 409, "AlreadyExists", "", "already exists");
        break;
    case -ESTALE:
        api_reply_errorf(r, 409, "Conflict", "", "the object was changed meanwhile: read it again");
        break;
    case -EINVAL:
        api_reply_errorf(r, 400, "Invalid", "", "invalid request");
        break;
    case -ENODATA:
        api_reply_errorf(r, 410, "Expired", "", "the resourceVersion is too old: list again");
        break;
    default:
        api_reply_errorf(r, 500, "InternalError", "", "internal error: %s", strerror(-rc));
        break;
    }
}
