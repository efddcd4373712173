/* A module built for a future, incompatible ABI: the loader must refuse it
 * before reading anything past the version fields. */
#include <virtfleet/module.h>

static int never_start(struct vf_module_ctx *ctx, const struct json_object *settings)
{
    return 0;
}

static void never_stop(struct vf_module_ctx *ctx)
{
}

__attribute__((visibility("default"))) const struct vf_module virtfleet_module = {
    .abi_major = VF_MODULE_ABI_MAJOR + 1,
    .abi_minor = 0,
    .size = sizeof(struct vf_module),
    .name = "bad_abi",
    .start = never_start,
    .stop = never_stop,
};
