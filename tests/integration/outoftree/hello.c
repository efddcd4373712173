/* A third party's module: built against the installed SDK only. */
#include <virtfleet/module.h>

static const struct vf_setting hello_settings[] = {
    {.name = "who", .type = VF_SETTING_STRING, .default_value = "world",
     .description = "whom to greet"},
    {.name = NULL},
};

static int hello_start(struct vf_module_ctx *ctx, const struct json_object *settings)
{
    struct json_object *who;
    json_object_object_get_ex(settings, "who", &who);
    ctx->core->log(ctx, VF_LOG_INFO, "hello, %s", json_object_get_string(who));
    return 0;
}

static void hello_stop(struct vf_module_ctx *ctx)
{
    (void)ctx;
}

VF_MODULE_DEFINE(.name = "hello", .version = "0.1.0", .summary = "an out-of-tree module",
                 .settings_version = 1, .settings = hello_settings, .start = hello_start,
                 .stop = hello_stop);
