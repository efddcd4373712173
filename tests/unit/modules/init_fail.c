/* A module whose start() fails: the core must mark it Failed and live on. */
#include <errno.h>
#include <virtfleet/module.h>

static void init_fail_tick(void *opaque)
{
}

static int init_fail_start(struct vf_module_ctx *ctx, const struct json_object *settings)
{
    /* Take a timer first so the test can check that the core releases it. */
    ctx->core->timer_add(ctx, 60000, init_fail_tick, NULL);
    return -EADDRINUSE;
}

static void init_fail_stop(struct vf_module_ctx *ctx)
{
}

VF_MODULE_DEFINE(.name = "init_fail", .version = "0.0.1", .summary = "fails to start",
                 .start = init_fail_start, .stop = init_fail_stop);
