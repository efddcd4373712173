/* libFuzzer target for the API's request body decoder (vf_api_parse_body): the
 * bytes any local client in the socket's group can send.  Every input must
 * either decode to an object within the limits or fail with a 400 that says
 * why; nothing may crash, leak or read out of bounds. */
#include <config.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vf_error err = { 0 };
    /* A private copy with no terminator, so a read past `size` is caught. */
    char *copy = malloc(size ? size : 1);
    struct json_object *obj;

    if (!copy)
        return 0;
    memcpy(copy, data, size);
    obj = vf_api_parse_body(copy, size, &err);
    if (obj) {
        if (!json_object_is_type(obj, json_type_object))
            abort();
        /* What the server does next: print it. */
        if (!json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN))
            abort();
        json_object_put(obj);
    } else if (err.status != 400 && err.status != 500) {
        abort();
    } else if (!err.message[0]) {
        abort();
    }
    free(copy);
    return 0;
}
