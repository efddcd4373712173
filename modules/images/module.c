#include <config.h>
/* The images module: disk images imported into the daemon's image store.
 *
 * Owns: the ClusterVirtualImage kind (cvi.c), the image store directory
 * (image_store.c, the seeds' "dvcr"), the upload listener (upload.c) and the
 * VirtualDisk kind with its libvirt volumes (vd.c, vd_volume.c).
 * Watches: ClusterVirtualImage, VirtualDisk, VirtualMachine and Node objects.
 * VirtualMachines have one watch here for the whole module: it keeps the
 * index of VMs by the disks and images they name (vm_refs.h), which the
 * controllers read instead of listing every VM, and kicks only the disks and
 * images a changed VM named before or after the change.
 * Settings: shaped like the seeds' virtualization ModuleConfig (dvcr.storage,
 * virtualImages, virtualDisks) plus upload.* and import.*; the store path and
 * the listen address restart the module when they change, the rest applies
 * live. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <virtfleet/module.h>
#include "cdrom.h"
#include "cvi.h"
#include "vd.h"
#include "vd_volume.h"
#include "vm_refs.h"

static const char *const storage_types[] = {"Directory", "PersistentVolumeClaim", NULL};

static const struct vf_setting pvc_settings[] = {
    {.name = "size", .type = VF_SETTING_SIZE, .min = 1 << 20,
     .description = "the store's quota when type is PersistentVolumeClaim (e.g. \"50G\")"},
    {.name = "storageClassName", .type = VF_SETTING_STRING,
     .description = "accepted for the seeds' manifests; the store is a local directory"},
    {.name = NULL},
};
static const struct vf_setting storage_settings[] = {
    {.name = "type", .type = VF_SETTING_STRING, .default_value = "Directory",
     .choices = storage_types, .flags = VF_SETTING_RESTART,
     .description = "Directory; PersistentVolumeClaim takes the quota from persistentVolumeClaim.size"},
    {.name = "path", .type = VF_SETTING_STRING, .flags = VF_SETTING_RESTART,
     .description = "the store's directory (default: <state_dir>/modules/images/dvcr)"},
    {.name = "size", .type = VF_SETTING_SIZE, .default_value = "50G", .min = 1 << 20,
     .description = "quota: published images plus imports in flight (e.g. \"50G\")"},
    {.name = "persistentVolumeClaim", .type = VF_SETTING_GROUP, .children = pvc_settings,
     .description = "as in the seeds' ModuleConfig"},
    {.name = NULL},
};
static const struct vf_setting dvcr_settings[] = {
    {.name = "storage", .type = VF_SETTING_GROUP, .children = storage_settings,
     .description = "where images are stored and how much room they may take"},
    {.name = NULL},
};
static const struct vf_setting storage_class_settings[] = {
    {.name = "allowedStorageClassNames", .type = VF_SETTING_STRINGS, .default_value = "",
     .description = "storage classes a resource may name explicitly"},
    {.name = "defaultStorageClassName", .type = VF_SETTING_STRING,
     .description = "the storage class used when a resource names none"},
    {.name = NULL},
};
static const struct vf_setting disk_class_settings[] = {
    {.name = "allowedStorageClassNames", .type = VF_SETTING_STRINGS, .default_value = "",
     .description = "storage classes a resource may name explicitly"},
    {.name = "defaultStorageClassName", .type = VF_SETTING_STRING,
     .description = "the storage class used when a resource names none"},
    {.name = "storageClasses", .type = VF_SETTING_STRINGS, .default_value = "",
     .description = "\"NAME:POOL\" or \"NAME:POOL:shared\": a storage class and the libvirt "
                    "storage pool of that name on every node (shared: the same storage on all "
                    "nodes, e.g. NFS)"},
    {.name = NULL},
};
static const struct vf_setting upload_settings[] = {
    {.name = "listen", .type = VF_SETTING_STRING, .default_value = "127.0.0.1:8445",
     .flags = VF_SETTING_RESTART,
     .description = "HOST:PORT of the upload listener (numeric address; port 0 picks one)"},
    {.name = "externalURL", .type = VF_SETTING_STRING,
     .description = "base of imageUploadURLs.external, e.g. https://images.example.com/ "
                    "(a proxy in front of the listener); default: the listener's own URL"},
    {.name = "timeout", .type = VF_SETTING_DURATION, .default_value = "5m", .min = 1000,
     .max = 7 * 24 * 3600 * 1000LL,
     .description = "how long an upload URL is valid after it is issued, until it is used"},
    {.name = NULL},
};
static const struct vf_setting import_settings[] = {
    {.name = "maxRetries", .type = VF_SETTING_INT, .default_value = "5", .min = 0, .max = 100,
     .description = "retries of a download after transient errors (with back-off)"},
    {.name = "stallTimeout", .type = VF_SETTING_DURATION, .default_value = "60s", .min = 1000,
     .max = 3600 * 1000,
     .description = "a download that receives nothing for this long is retried"},
    {.name = "insecureRegistries", .type = VF_SETTING_STRINGS, .default_value = "",
     .description = "registries (host:port) spoken to over plain HTTP, e.g. a registry on loopback"},
    {.name = "authFile", .type = VF_SETTING_STRING, .default_value = "",
     .description = "registry credentials for ContainerImage imports: a containers-auth.json / "
                    "docker config.json ({\"auths\": {\"host:port\": {\"auth\": base64 of "
                    "user:pass}}}), read at each import; must not be readable by other users"},
    {.name = NULL},
};
static const struct vf_setting images_settings[] = {
    {.name = "dvcr", .type = VF_SETTING_GROUP, .children = dvcr_settings,
     .description = "the image store"},
    {.name = "virtualImages", .type = VF_SETTING_GROUP, .children = storage_class_settings,
     .description = "storage classes for images"},
    {.name = "virtualDisks", .type = VF_SETTING_GROUP, .children = disk_class_settings,
     .description = "storage classes for disks"},
    {.name = "upload", .type = VF_SETTING_GROUP, .children = upload_settings,
     .description = "the upload listener"},
    {.name = "import", .type = VF_SETTING_GROUP, .children = import_settings,
     .description = "downloads from HTTP servers and registries"},
    {.name = NULL},
};

static struct json_object *at(const struct json_object *o, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    struct json_object *cur = (struct json_object *)o;
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k && cur;
         k = strtok_r(NULL, ".", &save))
        if (!json_object_is_type(cur, json_type_object) || !json_object_object_get_ex(cur, k, &cur))
            cur = NULL;
    return cur;
}

static const char *at_string(const struct json_object *o, const char *path)
{
    struct json_object *v = at(o, path);
    return v ? json_object_get_string(v) : NULL;
}

static int64_t at_int(const struct json_object *o, const char *path)
{
    struct json_object *v = at(o, path);
    return v ? json_object_get_int64(v) : 0;
}

static int check_classes(const struct json_object *settings, const char *group,
                         struct vf_error *err)
{
    char p[96];
    snprintf(p, sizeof p, "%s.defaultStorageClassName", group);
    const char *def = at_string(settings, p);
    snprintf(p, sizeof p, "%s.allowedStorageClassNames", group);
    struct json_object *allowed = at(settings, p);
    size_t n = allowed ? json_object_array_length(allowed) : 0;
    if (!def || n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(json_object_get_string(json_object_array_get_idx(allowed, i)), def))
            return 0;
    snprintf(p, sizeof p, "%s.defaultStorageClassName", group);
    return vf_error_set(err, -EINVAL, 400, "Invalid", p,
                        "\"%s\" is not one of %s.allowedStorageClassNames", def, group);
}

/* Read the checked settings into *set (state_dir: for the default store path). */
static int settings_read(const struct json_object *settings, const char *state_dir,
                         struct vf_images_settings *set, struct vf_error *err)
{
    memset(set, 0, sizeof *set);
    const char *path = at_string(settings, "dvcr.storage.path");
    if (path && path[0] != '/')
        return vf_error_set(err, -EINVAL, 400, "Invalid", "dvcr.storage.path",
                            "\"%s\" must be an absolute path", path);
    if (path)
        snprintf(set->store_path, sizeof set->store_path, "%s", path);
    else if (state_dir)
        snprintf(set->store_path, sizeof set->store_path, "%s/dvcr", state_dir);
    set->quota = (uint64_t)at_int(settings, "dvcr.storage.size");
    if (!strcmp(at_string(settings, "dvcr.storage.type"), "PersistentVolumeClaim")) {
        if (!at(settings, "dvcr.storage.persistentVolumeClaim.size"))
            return vf_error_set(err, -EINVAL, 400, "Invalid",
                                "dvcr.storage.persistentVolumeClaim.size",
                                "required when dvcr.storage.type is PersistentVolumeClaim");
        set->quota = (uint64_t)at_int(settings, "dvcr.storage.persistentVolumeClaim.size");
    }
    snprintf(set->listen, sizeof set->listen, "%s", at_string(settings, "upload.listen"));
    const char *ext = at_string(settings, "upload.externalURL");
    if (ext && strncmp(ext, "http://", 7) && strncmp(ext, "https://", 8))
        return vf_error_set(err, -EINVAL, 400, "Invalid", "upload.externalURL",
                            "\"%s\" is not an http:// or https:// URL", ext);
    if (ext)
        snprintf(set->external_url, sizeof set->external_url, "%s", ext);
    set->upload_timeout_ms = at_int(settings, "upload.timeout");
    set->max_retries = (int)at_int(settings, "import.maxRetries");
    set->stall_timeout_s = (int)((at_int(settings, "import.stallTimeout") + 999) / 1000);
    set->insecure_registries = at(settings, "import.insecureRegistries");
    const char *auth = at_string(settings, "import.authFile");
    if (auth && *auth && (auth[0] != '/' || strlen(auth) >= sizeof set->auth_file))
        return vf_error_set(err, -EINVAL, 400, "Invalid", "import.authFile",
                            "\"%s\" is not an absolute path (of at most %zu bytes)", auth,
                            sizeof set->auth_file - 1);
    snprintf(set->auth_file, sizeof set->auth_file, "%s", auth ? auth : "");
    int rc = check_classes(settings, "virtualImages", err);
    return rc < 0 ? rc : check_classes(settings, "virtualDisks", err);
}

static int images_configure(struct vf_module_ctx *ctx, const struct json_object *settings,
                            struct vf_error *err)
{
    struct vf_images_settings set;
    (void)ctx;
    /* The listen address is parsed (not bound) here: no side effects. */
    struct vf_vd_settings vds;
    int rc = settings_read(settings, "/", &set, err);
    if (rc == 0)
        rc = vf_vd_settings_read(settings, &vds, err);
    if (rc < 0)
        return rc;
    if (!strrchr(set.listen, ':'))
        return vf_error_set(err, -EINVAL, 400, "Invalid", "upload.listen",
                            "\"%s\" is not HOST:PORT (e.g. 127.0.0.1:8445)", set.listen);
    return 0;
}

void vf_images_ref(struct vf_images *im)
{
    atomic_fetch_add(&im->refs, 1);
}

void vf_images_unref(struct vf_images *im)
{
    if (atomic_fetch_sub(&im->refs, 1) == 1) {
        json_object_put(im->set.insecure_registries);
        vf_vm_refs_free(im->vm_refs);
        free(im);
    }
}

/* The disk controller of the running instance (one at a time). */
static struct vf_vd *disks;

/* ---- the VM watch ------------------------------------------------------------------ */

/* An object a changed VM named before or after the change.  Images and disks
 * not seen yet (the controllers' own replays come after this watch's) are
 * reconciled by their own first event. */
static void vm_touched(void *opaque, const char *kind, const char *name)
{
    struct vf_images *im = opaque;
    if (!strcmp(kind, VF_VD_KIND)) {
        vf_vd_kick(disks, name);
        vf_cvi_kick_waiting_for(im, name);
    } else if (!strcmp(kind, VF_CVI_KIND)) {
        vf_cvi_kick(im, name);
    }
}

static void on_vm(void *opaque, enum vf_watch_event type, const struct json_object *obj)
{
    struct vf_images *im = opaque;
    if (vf_vm_refs_apply(im->vm_refs, type, obj, vm_touched, im) < 0)
        im->core->log(im->ctx, VF_LOG_ERROR, "out of memory: the VM index missed a change of "
                      "VirtualMachine \"%s\" (until its next one)",
                      at_string(obj, "metadata.name"));
}

/* Before the controllers start: their first reconciles read the index, which
 * the watch's replay of every VM fills. */
static int vm_watch_start(struct vf_images *im)
{
    if (!(im->vm_refs = vf_vm_refs_new()))
        return -ENOMEM;
    im->vm_watch = im->core->watch_add(im->ctx, "VirtualMachine", on_vm, im);
    return im->vm_watch ? 0 : -EIO;
}

static void images_stop(struct vf_module_ctx *ctx)
{
    struct vf_images *im = ctx->core->get_data(ctx);
    if (!im)
        return;
    if (im->vm_watch)
        ctx->core->watch_remove(ctx, im->vm_watch);
    im->vm_watch = NULL;
    vf_vd_stop(disks);
    disks = NULL;
    im->stopped = true;
    vf_cvi_stop(im);
    vf_cdrom_stop(im->cdrom);
    im->cdrom = NULL;
    /* Joins the listener's threads: no hand-over starts after this. */
    vf_upload_server_stop(im->upload);
    im->upload = NULL;
    ctx->core->set_data(ctx, NULL);
    vf_images_unref(im);
}

static int images_start(struct vf_module_ctx *ctx, const struct json_object *settings)
{
    const struct vf_core *core = ctx->core;
    if (!VF_CORE_HAS(core, loop_post)) {
        core->log(ctx, VF_LOG_ERROR, "this daemon's module ABI has no loop_post (needs 1.1)");
        return -ENOTSUP;
    }
    struct vf_images *im = calloc(1, sizeof *im);
    if (!im)
        return -ENOMEM;
    atomic_init(&im->refs, 1);
    im->ctx = ctx;
    im->core = core;
    struct vf_error err = {0};
    int rc = settings_read(settings, core->state_dir(ctx), &im->set, &err);
    if (rc == 0 && !im->set.store_path[0])
        rc = vf_error_set(&err, -EIO, 500, "IOError", "dvcr.storage.path",
                          "the module has no state directory for the default image store");
    json_object_get(im->set.insecure_registries);
    if (rc == 0)
        rc = vf_dvcr_open(&im->dvcr, im->set.store_path, im->set.quota, &err);
    if (rc == 0)
        rc = vf_upload_server_start(&im->upload, im->set.listen, &im->dvcr, vf_cvi_upload_done,
                                    im, &err);
    if (rc < 0) {
        core->log(ctx, VF_LOG_ERROR, "%s%s%s", err.field, err.field[0] ? ": " : "", err.message);
        vf_images_unref(im);
        return rc;
    }
    core->set_data(ctx, im);
    vf_vd_volume_init(core);   /* before any volume job */
    /* The VM index first, then cdrom before the images' controller, which calls
     * into it from its first reconcile. */
    if ((rc = vm_watch_start(im)) < 0 ||
        (rc = vf_cdrom_start(im, settings, &im->cdrom)) < 0 || (rc = vf_cvi_start(im)) < 0 ||
        (rc = vf_vd_start(im, settings, &disks)) < 0 || (rc = vf_cvi_watch_disks(im)) < 0) {
        images_stop(ctx);
        return rc;
    }
    core->log(ctx, VF_LOG_INFO, "image store \"%s\" (quota %llu bytes); uploads on %s:%u",
              im->dvcr.root, (unsigned long long)im->dvcr.quota, vf_upload_server_host(im->upload),
              vf_upload_server_port(im->upload));
    return 0;
}

static int images_reconfigure(struct vf_module_ctx *ctx, const struct json_object *settings)
{
    struct vf_images *im = ctx->core->get_data(ctx);
    struct vf_images_settings set;
    struct vf_error err = {0};
    int rc = settings_read(settings, ctx->core->state_dir(ctx), &set, &err);
    if (rc < 0) {
        ctx->core->log(ctx, VF_LOG_ERROR, "%s: %s", err.field, err.message);
        return rc;
    }
    /* Path and listen address restart the module (VF_SETTING_RESTART). */
    json_object_get(set.insecure_registries);
    json_object_put(im->set.insecure_registries);
    im->set = set;
    im->dvcr.quota = set.quota;
    vf_cvi_settings_changed(im);
    vf_cdrom_reconfigure(im->cdrom, settings);
    if (disks && (rc = vf_vd_reconfigure(disks, settings)) < 0)
        return rc;
    ctx->core->log(ctx, VF_LOG_INFO, "settings applied (quota %llu bytes)",
                   (unsigned long long)set.quota);
    return 0;
}

VF_MODULE_DEFINE(
    .name = "images",
    .version = "1.0.0",
    .summary = "disk images (ClusterVirtualImage): HTTP, registry and upload imports into the "
               "image store; VirtualDisks made from them in libvirt storage pools",
    .settings_version = 1,
    .settings = images_settings,
    .configure = images_configure,
    .start = images_start,
    .reconfigure = images_reconfigure,
    .stop = images_stop,
);
