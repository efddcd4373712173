/* A module with a settings schema and a configure() that refuses values the
 * schema allows, to test both layers of settings validation. */
#include <errno.h>
#include <string.h>
#include <virtfleet/module.h>

static const char *const modes[] = {"fast", "safe", NULL};
static const struct vf_setting bad_settings_schema[] = {
    {.name = "limit", .type = VF_SETTING_INT, .default_value = "4", .min = 1, .max = 16,
     .description = "a bounded integer"},
    {.name = "mode", .type = VF_SETTING_STRING, .default_value = "safe", .choices = modes,
     .description = "one of a few words"},
    {.name = "size", .type = VF_SETTING_SIZE, .default_value = "1Mi",
     .description = "a size"},
    {.name = NULL},
};

static int bad_settings_configure(struct vf_module_ctx *ctx, const struct json_object *settings,
                                  struct vf_error *err)
{
    struct json_object *limit;
    json_object_object_get_ex(settings, "limit", &limit);
    if (json_object_get_int(limit) == 13)
        return vf_error_set(err, -EINVAL, 400, "Invalid", "limit", "13 is unlucky; pick another");
    return 0;
}

static int bad_settings_start(struct vf_module_ctx *ctx, const struct json_object *settings)
{
    return 0;
}

static void bad_settings_stop(struct vf_module_ctx *ctx)
{
}

VF_MODULE_DEFINE(.name = "bad_settings", .version = "0.0.1", .summary = "settings tests",
                 .settings_version = 1, .settings = bad_settings_schema,
                 .configure = bad_settings_configure, .start = bad_settings_start,
                 .stop = bad_settings_stop);
