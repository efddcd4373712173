/* CD-ROM images on the nodes.  A ClusterVirtualImage that is an ISO 9660
 * image (status.cdrom) is attached to VMs read-only.  When
 * virtualImages.defaultStorageClassName names one of virtualDisks.storageClasses,
 * the image is copied into that class's pool on the nodes, and VMs attach the
 * copy as a libvirt volume found by pool and name on whichever node runs them
 * (so nodes on other hosts work, and a migration's target uses its own copy).
 * Otherwise VMs attach the image store's file, which only nodes on the
 * daemon's host can open.
 *
 * The record is status.cdromCopies of the image:
 *   { storageClassName, pool, volume, shared, nodes: [nodes with a complete copy],
 *     message: the last failure, while it is retried }
 * The core's VM controller reads it (core/vm_disks.c): a VM runs only on a
 * node listed there.  Copies are made while a VM names the image, onto every
 * Ready node (a shared pool: once), one copy at a time per image, and removed
 * when the image is deleted.  cvi.c, the image's one status writer, calls in
 * from its reconcile with the status it is about to write.  Loop thread only. */
#ifndef VF_IMAGES_CDROM_H
#define VF_IMAGES_CDROM_H
#include <stdbool.h>
#include <json-c/json.h>

struct vf_images;
struct vf_cdrom;

/* Read the settings and watch nodes; *out: the controller. */
int vf_cdrom_start(struct vf_images *im, const struct json_object *settings,
                   struct vf_cdrom **out);
/* New settings: the class applies to images not copied yet. */
void vf_cdrom_reconfigure(struct vf_cdrom *cd, const struct json_object *settings);
/* Copies in flight are canceled (their volume is made again later). */
void vf_cdrom_stop(struct vf_cdrom *cd);

/* A Ready image being written with `status`: sets status.cdromCopies from the
 * stored record and starts the next copy a VM needs.  cd may be NULL. */
void vf_cdrom_sync(struct vf_cdrom *cd, const char *name, const char *uid,
                   struct json_object *status);
/* A deleted image no VM names any more: true when no copy is left (and
 * status.cdromCopies is gone); false while copies are being removed (the
 * image is reconciled again when each removal ends). */
bool vf_cdrom_release(struct vf_cdrom *cd, const char *name, const char *uid,
                      struct json_object *status);
#endif
