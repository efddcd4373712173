/* The image store ("dvcr", as the seeds call it): one directory holding the
 * published images and the scratch files of imports in flight.
 *
 *   <root>/images/<uid>.raw | <uid>.qcow2   published: complete and validated
 *   <root>/tmp/<uid>.download              the fetched or uploaded bytes; kept across
 *                                          daemon restarts so a resumed import continues
 *   <root>/tmp/<uid>.out                   the conversion's output until it is published
 *
 * Publication is atomic (fsync, rename, fsync of the directory): a crash at any
 * point leaves either no image or a complete one.  Thread-safe: the functions
 * touch only the file system and the immutable fields of struct vf_dvcr, so
 * the workers and the upload thread use them too. */
#ifndef VF_IMAGES_IMAGE_STORE_H
#define VF_IMAGES_IMAGE_STORE_H
#include <limits.h>
#include <stdint.h>
#include <virtfleet/module.h>

struct vf_dvcr {
    char root[PATH_MAX / 2];
    uint64_t quota;          /* bytes: published images plus imports in flight */
};

enum vf_dvcr_file { VF_DVCR_DOWNLOAD, VF_DVCR_OUT, VF_DVCR_RAW, VF_DVCR_QCOW2 };

/* Create root, root/images and root/tmp (mode 0700) when missing. */
int vf_dvcr_open(struct vf_dvcr *d, const char *root, uint64_t quota, struct vf_error *err);

/* The path of one of uid's files.  -ENAMETOOLONG when it does not fit. */
int vf_dvcr_path(const struct vf_dvcr *d, const char *uid, enum vf_dvcr_file which, char *buf,
                 size_t len);

/* Bytes the store occupies on disk (allocated blocks, so holes do not count),
 * leaving out the files of except_uid (NULL: count all). */
uint64_t vf_dvcr_usage(const struct vf_dvcr *d, const char *except_uid);

/* Room left under the quota for uid's import: quota minus what the other
 * images and imports occupy (0 when the store is already full). */
uint64_t vf_dvcr_room(const struct vf_dvcr *d, const char *uid);

/* fsync out_fd, rename uid's .out to its published name for format ("raw" or
 * "qcow2") and fsync the directory.  Fills final (may be NULL). */
int vf_dvcr_publish(const struct vf_dvcr *d, const char *uid, int out_fd, const char *format,
                    char *final, size_t final_len, struct vf_error *err);

/* Remove every file of uid (download, out, published).  keep_download: leave the
 * download for a resumed import. */
void vf_dvcr_remove(const struct vf_dvcr *d, const char *uid, bool keep_download);

/* Copy src (a published image) into uid's .out and publish it as format, with
 * reflink or copy_file_range so holes stay holes where the file system can. */
int vf_dvcr_copy(const struct vf_dvcr *d, const char *src, const char *uid, const char *format,
                 char *final, size_t final_len, struct vf_error *err);

/* Call fn for the uid of every file in the store (possibly several times per
 * uid): for removing what belongs to no image after a restart. */
void vf_dvcr_foreach_uid(const struct vf_dvcr *d, void (*fn)(void *opaque, const char *uid),
                         void *opaque);
#endif
