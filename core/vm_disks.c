#include <config.h>
/* A VM's spec.blockDeviceRefs resolved into disks for its domain (see
 * vm_disks.h).  The answer depends only on the objects the lookup returns,
 * so the unit test feeds them directly and the controller reads the store. */
#include "vm_disks.h"
#include "json_util.h"
#include "objects.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VD_KIND "VirtualDisk"
#define CVI_KIND "ClusterVirtualImage"

void vf_vm_disks_free(struct vf_vm_disks *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++) {
        free((char *)d->disks[i].path);
        free((char *)d->disks[i].pool);
        free((char *)d->disks[i].volume);
        free((char *)d->disks[i].format);
    }
    free(d->disks);
    for (size_t i = 0; d->image_nodes && d->image_nodes[i]; i++)
        free(d->image_nodes[i]);
    free(d->image_nodes);
    memset(d, 0, sizeof *d);
}

bool vf_vm_disks_on_node(const struct vf_vm_disks *d, const char *node)
{
    for (size_t i = 0; d->image_nodes && d->image_nodes[i]; i++)
        if (vf_json_str_eq(d->image_nodes[i], node))
            return true;
    return !d->image_nodes;
}

/* Held by the images module while a ClusterVirtualImage reads the disk's
 * volume (spec.dataSource.objectRef): a running guest would change what is
 * being copied. */
#define IMAGE_SOURCE_FINALIZER "virtfleet.io/image-source"

static bool has_finalizer(const struct json_object *obj, const char *which)
{
    return vf_json_array_has(vf_json_member(vf_json_member(obj, "metadata"), "finalizers"), which);
}

static bool names_disk(const struct json_object *vm, const char *kind, const char *name)
{
    struct json_object *refs = vf_json_member(vf_json_member(vm, "spec"), "blockDeviceRefs");
    size_t n = refs && json_object_is_type(refs, json_type_array) ? json_object_array_length(refs)
                                                                  : 0;
    for (size_t i = 0; i < n; i++) {
        struct json_object *ref = json_object_array_get_idx(refs, i);
        if (vf_json_str_eq(vf_json_string(ref, "kind"), kind) &&
            vf_json_str_eq(vf_json_string(ref, "name"), name))
            return true;
    }
    return false;
}

/* Another VM that names the disk and has a node (its domain may run there):
 * a disk is written by one VM at a time. */
static const char *user_of(const struct json_object *vms, const char *self, const char *disk,
                           const char **node)
{
    size_t n = vms && json_object_is_type(vms, json_type_array) ? json_object_array_length(vms)
                                                                : 0;
    for (size_t i = 0; i < n; i++) {
        struct json_object *o = json_object_array_get_idx(vms, i);
        const char *name = vf_json_string(vf_json_member(o, "metadata"), "name");
        const char *on = vf_json_string(vf_json_member(o, "status"), "node");
        if (!name || vf_json_str_eq(name, self) || !on || !*on || !names_disk(o, VD_KIND, disk))
            continue;
        *node = on;
        return name;
    }
    return NULL;
}

static int fail(int rc, char *reason, size_t reason_len, const char *why, char *msg,
                size_t msg_len, const char *fmt, ...) __attribute__((format(printf, 7, 8)));
static int fail(int rc, char *reason, size_t reason_len, const char *why, char *msg,
                size_t msg_len, const char *fmt, ...)
{
    va_list ap;
    snprintf(reason, reason_len, "%s", why);
    va_start(ap, fmt);
    vsnprintf(msg, msg_len, fmt, ap);
    va_end(ap);
    return rc;
}

static int add_disk(struct vf_vm_disks *out, const char *path, const char *format, bool cdrom)
{
    struct vf_domain_disk *d = &out->disks[out->n];
    d->path = strdup(path);
    d->format = strdup(format);
    d->cdrom = cdrom;
    d->readonly = cdrom;
    out->n++;
    return d->path && d->format ? 0 : -ENOMEM;
}

static int add_volume(struct vf_vm_disks *out, const char *pool, const char *volume,
                      const char *format)
{
    struct vf_domain_disk *d = &out->disks[out->n];
    d->pool = strdup(pool);
    d->volume = strdup(volume);
    d->format = strdup(format);
    d->cdrom = d->readonly = true;
    out->n++;
    return d->pool && d->volume && d->format ? 0 : -ENOMEM;
}

/* Keep in out->image_nodes only the nodes in `nodes` (the first image sets
 * the list).  Empty afterwards: no node holds every image. */
static int image_nodes_narrow(struct vf_vm_disks *out, const struct json_object *nodes)
{
    size_t n = json_object_array_length(nodes), kept = 0;
    if (!out->image_nodes) {
        if (!(out->image_nodes = calloc(n + 1, sizeof *out->image_nodes)))
            return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
            const char *name = json_object_get_string(json_object_array_get_idx(nodes, i));
            if (name && !(out->image_nodes[kept++] = strdup(name)))
                return -ENOMEM;
        }
        return 0;
    }
    for (size_t i = 0; out->image_nodes[i]; i++) {
        if (vf_json_array_has(nodes, out->image_nodes[i]))
            out->image_nodes[kept++] = out->image_nodes[i];
        else
            free(out->image_nodes[i]);
    }
    out->image_nodes[kept] = NULL;
    return 0;
}

/* A CD-ROM image with copies in the nodes' pools (status.cdromCopies, kept by
 * the images module): the VM runs where a copy is complete. */
static int resolve_cdrom_copies(const char *name, const struct json_object *copies,
                                const char *format, struct vf_vm_disks *out, char *reason,
                                size_t rl, char *msg, size_t ml)
{
    const char *pool = vf_json_string(copies, "pool"), *volume = vf_json_string(copies, "volume");
    struct json_object *nodes = vf_json_member(copies, "nodes");
    struct json_object *shared = vf_json_member(copies, "shared");
    if (!pool || !volume || !nodes || !json_object_is_type(nodes, json_type_array) ||
        json_object_array_length(nodes) == 0)
        return fail(-EAGAIN, reason, rl, "ImageNotOnNodes", msg, ml,
                    "ClusterVirtualImage \"%s\" is being copied to the nodes' storage pool%s%s: "
                    "the VM waits for a copy", name, pool ? " " : "", pool ? pool : "");
    if (!(shared && json_object_get_boolean(shared))) {
        if (image_nodes_narrow(out, nodes) < 0)
            return fail(-ENOMEM, reason, rl, "InternalError", msg, ml, "out of memory");
        if (!out->image_nodes[0])
            return fail(-EAGAIN, reason, rl, "ImageNotOnNodes", msg, ml,
                        "no node holds a copy of every CD-ROM image the VM names yet (the "
                        "last one: ClusterVirtualImage \"%s\"): the VM waits", name);
    }
    if (add_volume(out, pool, volume, format) < 0)
        return fail(-ENOMEM, reason, rl, "InternalError", msg, ml, "out of memory");
    return 0;
}

/* One VirtualDisk; obj may be NULL (missing). */
static int resolve_vd(const char *vm, const char *name, const struct json_object *obj,
                      const struct json_object *vms, struct vf_vm_disks *out, char *reason,
                      size_t rl, char *msg, size_t ml)
{
    if (!obj)
        return fail(-EAGAIN, reason, rl, "DiskNotFound", msg, ml,
                    "VirtualDisk \"%s\" not found: the VM waits for it (is the images module "
                    "enabled?)", name);
    const struct json_object *st = vf_json_member(obj, "status");
    const struct json_object *t = vf_json_member(st, "target");
    const char *phase = vf_json_string(st, "phase");
    if (vf_json_member(vf_json_member(obj, "metadata"), "deletionTimestamp"))
        return fail(-EAGAIN, reason, rl, "DiskNotReady", msg, ml,
                    "VirtualDisk \"%s\" is being deleted", name);
    if (!vf_json_str_eq(phase, "Ready") || !vf_json_string(t, "path"))
        return fail(-EAGAIN, reason, rl, "DiskNotReady", msg, ml,
                    "VirtualDisk \"%s\" is %s, not Ready: the VM waits for it", name,
                    phase ? phase : "Pending");
    if (has_finalizer(obj, IMAGE_SOURCE_FINALIZER))
        return fail(-EAGAIN, reason, rl, "DiskBeingCopied", msg, ml,
                    "VirtualDisk \"%s\" is being copied into an image: the VM waits until the "
                    "copy ends", name);
    const char *user_node = NULL;
    const char *user = user_of(vms, vm, name, &user_node);
    if (user)
        return fail(-EAGAIN, reason, rl, "DiskInUse", msg, ml,
                    "VirtualDisk \"%s\" is in use by VM \"%s\" (on node \"%s\"): a disk serves "
                    "one VM at a time", name, user, user_node);
    struct json_object *shared = vf_json_member(t, "shared");
    const char *node = vf_json_string(t, "node");
    if (!(shared && json_object_get_boolean(shared)) && node && *node) {
        if (out->node[0] && strcmp(out->node, node))
            return fail(-EAGAIN, reason, rl, "DisksOnDifferentNodes", msg, ml,
                        "VirtualDisk \"%s\" lives on node \"%s\" but another of the VM's local "
                        "disks on node \"%s\": a VM runs where its local disks are", name, node,
                        out->node);
        snprintf(out->node, sizeof out->node, "%s", node);
        out->local = true;
    }
    const char *format = vf_json_string(st, "format");
    if (add_disk(out, vf_json_string(t, "path"), vf_json_str_eq(format, "qcow2") ? "qcow2" : "raw",
                 false) < 0)
        return fail(-ENOMEM, reason, rl, "InternalError", msg, ml, "out of memory");
    return 0;
}

static int resolve_cvi(const char *name, const struct json_object *obj, struct vf_vm_disks *out,
                       char *reason, size_t rl, char *msg, size_t ml)
{
    if (!obj)
        return fail(-EAGAIN, reason, rl, "DiskNotFound", msg, ml,
                    "ClusterVirtualImage \"%s\" not found: the VM waits for it", name);
    const struct json_object *st = vf_json_member(obj, "status");
    const char *phase = vf_json_string(st, "phase");
    const char *path = vf_json_string(vf_json_member(st, "target"), "path");
    if (vf_json_member(vf_json_member(obj, "metadata"), "deletionTimestamp"))
        return fail(-EAGAIN, reason, rl, "DiskNotReady", msg, ml,
                    "ClusterVirtualImage \"%s\" is being deleted", name);
    if (!vf_json_str_eq(phase, "Ready") || !path)
        return fail(-EAGAIN, reason, rl, "DiskNotReady", msg, ml,
                    "ClusterVirtualImage \"%s\" is %s, not Ready: the VM waits for it", name,
                    phase ? phase : "Pending");
    struct json_object *cdrom = vf_json_member(st, "cdrom");
    if (!cdrom || !json_object_get_boolean(cdrom))
        return fail(-EINVAL, reason, rl, "ImageNotCDROM", msg, ml,
                    "ClusterVirtualImage \"%s\" is a disk image, not a CD-ROM: a VM writes to "
                    "its disks, so make a VirtualDisk from it (spec.dataSource.objectRef) and "
                    "name that disk in spec.blockDeviceRefs", name);
    const char *format = vf_json_str_eq(vf_json_string(st, "format"), "qcow2") ? "qcow2" : "raw";
    struct json_object *copies = vf_json_member(st, "cdromCopies");
    if (copies)
        return resolve_cdrom_copies(name, copies, format, out, reason, rl, msg, ml);
    if (add_disk(out, path, format, true) < 0)
        return fail(-ENOMEM, reason, rl, "InternalError", msg, ml, "out of memory");
    return 0;
}

int vf_vm_disks_resolve_with(const struct json_object *vm, vf_vm_disks_lookup_fn lookup,
                             void *opaque, const struct json_object *vms,
                             struct vf_vm_disks *out, char *reason, size_t reason_len,
                             char *msg, size_t msg_len)
{
    const char *vm_name = vf_json_string(vf_json_member(vm, "metadata"), "name");
    struct json_object *refs = vf_json_member(vf_json_member(vm, "spec"), "blockDeviceRefs");
    size_t n = refs && json_object_is_type(refs, json_type_array) ? json_object_array_length(refs)
                                                                  : 0;
    int rc = 0;
    memset(out, 0, sizeof *out);
    reason[0] = msg[0] = '\0';
    if (n == 0)
        return 0;
    if (!(out->disks = calloc(n, sizeof *out->disks)))
        return fail(-ENOMEM, reason, reason_len, "InternalError", msg, msg_len, "out of memory");
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct json_object *ref = json_object_array_get_idx(refs, i);
        const char *kind = vf_json_string(ref, "kind"), *name = vf_json_string(ref, "name");
        if (!kind || !name) {
            rc = fail(-EINVAL, reason, reason_len, "InvalidBlockDeviceRef", msg, msg_len,
                      "spec.blockDeviceRefs[%zu] needs a kind and a name", i);
            break;
        }
        for (size_t k = 0; k < i; k++) {
            struct json_object *prev = json_object_array_get_idx(refs, k);
            if (vf_json_str_eq(vf_json_string(prev, "kind"), kind) &&
                vf_json_str_eq(vf_json_string(prev, "name"), name))
                rc = fail(-EINVAL, reason, reason_len, "InvalidBlockDeviceRef", msg, msg_len,
                          "spec.blockDeviceRefs[%zu]: %s \"%s\" is listed twice", i, kind, name);
        }
        if (rc < 0)
            break;
        if (!strcmp(kind, VD_KIND) || !strcmp(kind, CVI_KIND)) {
            struct json_object *obj = lookup(opaque, kind, name);
            rc = !strcmp(kind, VD_KIND)
                     ? resolve_vd(vm_name, name, obj, vms, out, reason, reason_len, msg,
                                  msg_len)
                     : resolve_cvi(name, obj, out, reason, reason_len, msg, msg_len);
            json_object_put(obj);
        } else {
            rc = fail(-EINVAL, reason, reason_len, "UnsupportedBlockDevice", msg, msg_len,
                      "spec.blockDeviceRefs[%zu]: kind %s is not supported here; use "
                      "VirtualDisk (or ClusterVirtualImage for a CD-ROM)", i, kind);
        }
    }
    if (rc < 0)
        vf_vm_disks_free(out);
    return rc;
}

static struct json_object *store_lookup(void *opaque, const char *kind, const char *name)
{
    struct json_object *obj = NULL;
    struct vf_error err = {0};
    (void)opaque;
    /* A kind nobody registered (the images module is off) reads as missing. */
    if (vf_objects_get(kind, name, &obj, &err) < 0)
        return NULL;
    return obj;
}

int vf_vm_disks_resolve(const struct json_object *vm, struct vf_vm_disks *out, char *reason,
                        size_t reason_len, char *msg, size_t msg_len)
{
    struct json_object *refs = vf_json_member(vf_json_member(vm, "spec"), "blockDeviceRefs");
    struct json_object *vms = NULL;
    struct vf_error err = {0};
    memset(out, 0, sizeof *out);
    if (!refs || !json_object_is_type(refs, json_type_array) ||
        json_object_array_length(refs) == 0) {
        reason[0] = msg[0] = '\0';
        return 0;
    }
    if (vf_objects_list("VirtualMachine", &vms, NULL, &err) < 0)
        vms = NULL;
    int rc = vf_vm_disks_resolve_with(vm, store_lookup, NULL, vms, out, reason, reason_len, msg,
                                      msg_len);
    json_object_put(vms);
    return rc;
}
