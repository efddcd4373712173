#include <config.h>
/* vf_image_inspect: detect, unpack when compressed, and validate.
 *
 * Compressed content is unpacked once.  Raw and ISO content is only counted
 * (or streamed to the conversion's output); qcow2, VMDK and VDI need random
 * access and their tables may come after the data (a streamOptimized VMDK's
 * footer, a qcow2's L1 table), so they are unpacked into an unlinked scratch
 * file, sparse and bounded by the quota, and validated there. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "formats_internal.h"

#define CHUNK (1u << 20)

uint64_t vf_img_quota(const struct vf_image_options *opts)
{
    return opts && opts->quota ? opts->quota : VF_IMAGE_DEFAULT_QUOTA;
}

int vf_img_inspect_plain(int fd, uint64_t file_size, enum vf_image_format format,
                         struct vf_image_info *info, struct vf_error *err)
{
    info->format = format;
    switch (format) {
    case VF_IMAGE_FORMAT_QCOW2: return vf_qcow2_inspect(fd, file_size, info, err);
    case VF_IMAGE_FORMAT_VMDK: return vf_vmdk_inspect(fd, file_size, info, err);
    case VF_IMAGE_FORMAT_VDI: return vf_vdi_inspect(fd, file_size, info, err);
    case VF_IMAGE_FORMAT_ISO: return vf_iso_inspect(fd, file_size, info, err);
    case VF_IMAGE_FORMAT_RAW:
        info->virtual_size = file_size;
        if (file_size == 0)
            return vf_img_invalid(err, "size", "the image is empty");
        if (file_size > VF_IMAGE_MAX_VIRTUAL_SIZE)
            return vf_img_toolarge(err, "size", "raw: %llu bytes is above the limit of %llu",
                                   (unsigned long long)file_size,
                                   (unsigned long long)VF_IMAGE_MAX_VIRTUAL_SIZE);
        return 0;
    case VF_IMAGE_FORMAT_UNKNOWN: break;
    }
    return vf_img_invalid(err, "format", "unknown image format");
}

static int read_head(struct vf_img_decoder *d, uint8_t *head, size_t *len, struct vf_error *err)
{
    *len = 0;
    while (*len < VF_IMG_HEAD_SIZE) {
        ssize_t n = vf_img_decoder_read(d, head + *len, VF_IMG_HEAD_SIZE - *len, err);
        if (n < 0)
            return (int)n;
        if (n == 0)
            break;
        *len += (size_t)n;
    }
    return 0;
}

int vf_img_unpack(int fd, enum vf_image_compression compression, const struct vf_image_options *opts,
                  uint64_t quota, struct vf_img_sink *raw_sink, struct vf_img_unpacked *u,
                  struct vf_error *err)
{
    struct vf_img_decoder *d = NULL;
    struct vf_img_sink scratch_sink, *sink = NULL;
    enum vf_image_compression inner;
    uint8_t *head = NULL, *buf = NULL;
    size_t head_len;
    uint64_t volume = 0;
    int rc;

    memset(u, 0, sizeof *u);
    u->scratch_fd = -1;
    head = malloc(VF_IMG_HEAD_SIZE);
    buf = malloc(CHUNK);
    if (!head || !buf) {
        rc = vf_error_set(err, -ENOMEM, 500, VF_IMG_IOERROR, "compression", "out of memory");
        goto out;
    }
    if ((rc = vf_img_decoder_open(fd, compression, &d, err)) < 0)
        goto out;
    vf_img_decoder_follow(d, opts);
    if ((rc = read_head(d, head, &head_len, err)) < 0 ||
        (rc = vf_img_detect(head, head_len, &u->format, &inner, err)) < 0)
        goto out;
    if (inner != VF_IMAGE_COMPRESSION_NONE) {
        rc = vf_img_refused(err, "compression", "%s inside %s: nested compression is not supported",
                            vf_image_compression_name(inner), vf_image_compression_name(compression));
        goto out;
    }
    if (u->format == VF_IMAGE_FORMAT_ISO && (rc = vf_iso_check_head(head, head_len, &volume, err)) < 0)
        goto out;

    if (u->format == VF_IMAGE_FORMAT_RAW || u->format == VF_IMAGE_FORMAT_ISO) {
        sink = raw_sink;
    } else {
        if ((rc = vf_img_scratch_open(opts, err)) < 0)
            goto out;
        u->scratch_fd = rc;
        vf_img_sink_init(&scratch_sink, u->scratch_fd, quota, 0, opts);
        sink = &scratch_sink;
    }
    /* The head first, then chunk after chunk. */
    const uint8_t *data = head;
    for (size_t n = head_len; n > 0;) {
        if (n > quota - u->size) {
            rc = vf_img_toolarge(err, "quota", "%s: the content unpacks to more than %llu bytes (the "
                                 "quota); refusing what may be a decompression bomb",
                                 vf_image_compression_name(compression), (unsigned long long)quota);
            goto out;
        }
        u->size += n;
        if (sink && (rc = vf_img_sink_write(sink, data, n, err)) < 0)
            goto out;
        ssize_t r = vf_img_decoder_read(d, buf, CHUNK, err);
        if (r < 0) {
            rc = (int)r;
            goto out;
        }
        n = (size_t)r;
        data = buf;
    }
    if (sink == &scratch_sink && (rc = vf_img_sink_finish(sink, err)) < 0)
        goto out;
    if (u->size == 0) {
        rc = vf_img_invalid(err, "size", "%s: the image is empty", vf_image_compression_name(compression));
        goto out;
    }
    if (u->format == VF_IMAGE_FORMAT_ISO && volume > u->size) {
        rc = vf_img_invalid(err, "iso.pvd.volume_space_size", "iso: the volume is %llu bytes, the "
                            "unpacked content only %llu: truncated", (unsigned long long)volume,
                            (unsigned long long)u->size);
        goto out;
    }
    rc = 0;
out:
    if (rc < 0 && u->scratch_fd >= 0) {
        close(u->scratch_fd);
        u->scratch_fd = -1;
    }
    vf_img_decoder_free(d);
    free(head);
    free(buf);
    return rc;
}

int vf_image_inspect(int fd, const struct vf_image_options *opts, struct vf_image_info *info,
                     struct vf_error *err)
{
    uint8_t *head;
    struct stat st;
    enum vf_image_compression compression;
    enum vf_image_format format;
    struct vf_img_unpacked u;
    size_t len;
    int rc;

    memset(info, 0, sizeof *info);
    if (fstat(fd, &st) < 0)
        return vf_error_set(err, -errno, 500, VF_IMG_IOERROR, "file", "fstat: %s", strerror(errno));
    if (!S_ISREG(st.st_mode))
        return vf_img_invalid(err, "file", "not a regular file");
    info->actual_size = info->unpacked_size = (uint64_t)st.st_size;
    len = info->actual_size < VF_IMG_HEAD_SIZE ? (size_t)info->actual_size : VF_IMG_HEAD_SIZE;
    if (!(head = malloc(VF_IMG_HEAD_SIZE)))
        return vf_error_set(err, -ENOMEM, 500, VF_IMG_IOERROR, "file", "out of memory");
    rc = vf_img_pread(fd, head, len, 0, "file head", err);
    if (rc == 0)
        rc = vf_img_detect(head, len, &format, &compression, err);
    free(head);
    if (rc < 0)
        return rc;
    info->compression = compression;
    if (compression == VF_IMAGE_COMPRESSION_NONE) {
        rc = vf_img_inspect_plain(fd, info->actual_size, format, info, err);
    } else {
        rc = vf_img_unpack(fd, compression, opts, vf_img_quota(opts), NULL, &u, err);
        if (rc < 0)
            return rc;
        info->format = u.format;
        info->unpacked_size = u.size;
        if (u.scratch_fd >= 0) {
            rc = vf_img_inspect_plain(u.scratch_fd, u.size, u.format, info, err);
            close(u.scratch_fd);
        } else {
            info->virtual_size = u.size;
            info->cdrom = u.format == VF_IMAGE_FORMAT_ISO;
            if (info->cdrom)
                snprintf(info->subformat, sizeof info->subformat, "iso9660");
        }
    }
    info->valid = rc == 0;
    return rc;
}
