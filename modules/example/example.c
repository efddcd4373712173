/* The example module: a small, complete module for authors to copy the shape of.
 *
 * Owns: nothing in the store.  Watches: VirtualMachine objects (counts them).
 * Serves: GET /apis/virtfleet.io/v1alpha2/modules/example/hello, which answers
 * with the configured greeting, the number of VMs seen and the timer's ticks.
 * Settings: greeting (applied live by reconfigure), tickInterval (restarts the
 * module, to show VF_SETTING_RESTART). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <virtfleet/module.h>

struct example {
    char *greeting;
    int64_t vms;
    int64_t ticks;
    int timer;
    struct vf_watch *watch;
};

static const struct vf_setting example_settings[] = {
    {.name = "greeting", .type = VF_SETTING_STRING, .default_value = "hello",
     .description = "what GET .../modules/example/hello answers"},
    {.name = "tickInterval", .type = VF_SETTING_DURATION, .default_value = "10s",
     .min = 100, .max = 3600 * 1000, .flags = VF_SETTING_RESTART,
     .description = "how often the module's timer ticks"},
    {.name = NULL},
};

static const char *setting_string(const struct json_object *settings, const char *key)
{
    struct json_object *v;
    return json_object_object_get_ex(settings, key, &v) ? json_object_get_string(v) : NULL;
}

static int example_configure(struct vf_module_ctx *ctx, const struct json_object *settings,
                             struct vf_error *err)
{
    const char *greeting = setting_string(settings, "greeting");
    if (!greeting || !*greeting)
        return vf_error_set(err, -EINVAL, 400, "Invalid", "greeting", "must not be empty");
    return 0;
}

static void example_on_vm(void *opaque, enum vf_watch_event type, const struct json_object *obj)
{
    struct example *ex = opaque;
    if (type == VF_WATCH_ADDED)
        ex->vms++;
    else if (type == VF_WATCH_DELETED)
        ex->vms--;
}

static void example_tick(void *opaque)
{
    struct example *ex = opaque;
    ex->ticks++;
}

static int example_hello(void *opaque, const struct vf_request *req, struct json_object **response,
                         struct vf_error *err)
{
    struct example *ex = opaque;
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "greeting", json_object_new_string(ex->greeting));
    json_object_object_add(o, "virtualMachines", json_object_new_int64(ex->vms));
    json_object_object_add(o, "ticks", json_object_new_int64(ex->ticks));
    json_object_object_add(o, "peerUid", json_object_new_int64(req->peer_uid));
    *response = o;
    return 200;
}

static int example_start(struct vf_module_ctx *ctx, const struct json_object *settings)
{
    const struct vf_core *core = ctx->core;
    struct example *ex = calloc(1, sizeof *ex);
    if (!ex || !(ex->greeting = strdup(setting_string(settings, "greeting")))) {
        free(ex);
        return -ENOMEM;
    }
    struct json_object *interval;
    json_object_object_get_ex(settings, "tickInterval", &interval);
    core->set_data(ctx, ex);
    ex->timer = core->timer_add(ctx, (int)json_object_get_int64(interval), example_tick, ex);
    ex->watch = core->watch_add(ctx, "VirtualMachine", example_on_vm, ex);
    int rc = core->route_add(ctx, "GET", "hello", example_hello, ex);
    if (ex->timer < 0 || !ex->watch || rc < 0) {
        /* The core releases the timer, watch and route of a module whose start fails. */
        rc = ex->timer < 0 ? ex->timer : rc < 0 ? rc : -EIO;
        free(ex->greeting);
        free(ex);
        core->set_data(ctx, NULL);
        return rc;
    }
    core->log(ctx, VF_LOG_INFO, "greeting \"%s\", %lld VMs", ex->greeting, (long long)ex->vms);
    return 0;
}

static int example_reconfigure(struct vf_module_ctx *ctx, const struct json_object *settings)
{
    struct example *ex = ctx->core->get_data(ctx);
    char *greeting = strdup(setting_string(settings, "greeting"));
    if (!greeting)
        return -ENOMEM;
    free(ex->greeting);
    ex->greeting = greeting;
    ctx->core->log(ctx, VF_LOG_INFO, "greeting is now \"%s\"", greeting);
    return 0;
}

static void example_stop(struct vf_module_ctx *ctx)
{
    struct example *ex = ctx->core->get_data(ctx);
    if (!ex)
        return;
    free(ex->greeting);
    free(ex);
}

VF_MODULE_DEFINE(
    .name = "example",
    .version = "1.0.0",
    .summary = "an example for module authors: a route, a timer, a watch and live settings",
    .settings_version = 1,
    .settings = example_settings,
    .configure = example_configure,
    .start = example_start,
    .reconfigure = example_reconfigure,
    .stop = example_stop,
);
