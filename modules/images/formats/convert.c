#include <config.h>
/* vf_image_convert: validated input to stored output.
 *
 * raw, ISO, VMDK, VDI and qcow2 content becomes raw, written sparse (blocks of
 * zeros become holes); qcow2 may instead stay qcow2, copied byte for byte
 * after validation (still sparse).  The output never grows past
 * min(virtual size, quota); compressed raw input, whose size is not known in
 * advance, is bounded by the quota while it streams.  Any failure leaves the
 * output empty (truncated to 0) for the caller to remove. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "formats_internal.h"

#define CHUNK (1u << 20)

/* Copies len bytes of fd from offset 0 through the sink. */
static int copy_bytes(int fd, uint64_t len, struct vf_img_sink *sink, struct vf_error *err)
{
    uint8_t *buf = malloc(CHUNK);
    int rc = 0;
    if (!buf)
        return vf_error_set(err, -ENOMEM, 500, VF_IMG_IOERROR, "convert", "out of memory");
    for (uint64_t off = 0; off < len && rc == 0; off += CHUNK) {
        size_t n = len - off < CHUNK ? (size_t)(len - off) : CHUNK;
        if ((rc = vf_img_pread(fd, buf, n, off, "input", err)) == 0)
            rc = vf_img_sink_write(sink, buf, n, err);
    }
    free(buf);
    return rc;
}

static int convert_plain(int fd, uint64_t file_size, int out_fd, enum vf_image_format out_format,
                         const struct vf_image_options *opts, struct vf_image_info *info,
                         struct vf_error *err)
{
    uint64_t quota = vf_img_quota(opts);
    struct vf_img_sink sink;
    int rc;

    if ((rc = vf_img_inspect_plain(fd, file_size, info->format, info, err)) < 0)
        return rc;
    info->valid = true;
    if (out_format == VF_IMAGE_FORMAT_QCOW2) {
        if (info->format != VF_IMAGE_FORMAT_QCOW2)
            return vf_img_refused(err, "format", "%s images are stored as raw, not converted to qcow2",
                                  vf_image_format_name(info->format));
        if (file_size > quota)
            return vf_img_toolarge(err, "quota", "qcow2: the file has %llu bytes, more than the quota "
                                   "of %llu", (unsigned long long)file_size, (unsigned long long)quota);
        vf_img_sink_init(&sink, out_fd, file_size, file_size, opts);
        if ((rc = copy_bytes(fd, file_size, &sink, err)) < 0)
            return rc;
        return vf_img_sink_finish(&sink, err);
    }
    if (info->virtual_size > quota)
        return vf_img_toolarge(err, "quota", "%s: the virtual size %llu is above the quota of %llu bytes",
                               vf_image_format_name(info->format),
                               (unsigned long long)info->virtual_size, (unsigned long long)quota);
    vf_img_sink_init(&sink, out_fd, info->virtual_size, info->virtual_size, opts);
    switch (info->format) {
    case VF_IMAGE_FORMAT_QCOW2: rc = vf_qcow2_to_raw(fd, file_size, &sink, err); break;
    case VF_IMAGE_FORMAT_VMDK: rc = vf_vmdk_to_raw(fd, file_size, &sink, err); break;
    case VF_IMAGE_FORMAT_VDI: rc = vf_vdi_to_raw(fd, file_size, &sink, err); break;
    default: rc = copy_bytes(fd, info->virtual_size, &sink, err); break;
    }
    if (rc < 0)
        return rc;
    if (sink.pos != info->virtual_size)
        return vf_img_invalid(err, "convert", "%s: %llu bytes written, the virtual size is %llu",
                              vf_image_format_name(info->format), (unsigned long long)sink.pos,
                              (unsigned long long)info->virtual_size);
    return vf_img_sink_finish(&sink, err);
}

static int convert(int in_fd, int out_fd, enum vf_image_format out_format,
                   const struct vf_image_options *opts, struct vf_image_info *info, struct vf_error *err)
{
    enum vf_image_compression compression;
    enum vf_image_format format;
    struct vf_img_unpacked u;
    struct vf_img_sink sink;
    uint8_t *head;
    struct stat st;
    size_t len;
    int rc;

    if (out_format != VF_IMAGE_FORMAT_RAW && out_format != VF_IMAGE_FORMAT_QCOW2)
        return vf_error_set(err, -EINVAL, 400, VF_IMG_INVALID, "format", "output format %s is not "
                            "supported (raw or qcow2)", vf_image_format_name(out_format));
    /* A growing input: its head decides whether it can be read as it comes. */
    bool complete;
    if ((rc = vf_img_await(opts, in_fd, VF_IMG_HEAD_SIZE, &complete, err)) < 0)
        return rc;
    if (fstat(in_fd, &st) < 0)
        return vf_error_set(err, -errno, 500, VF_IMG_IOERROR, "file", "fstat: %s", strerror(errno));
    if (!S_ISREG(st.st_mode))
        return vf_img_invalid(err, "file", "the input is not a regular file");
    if (ftruncate(out_fd, 0) < 0)
        return vf_error_set(err, -errno, 500, VF_IMG_IOERROR, "output", "the output cannot be "
                            "truncated (not a regular file?): %s", strerror(errno));
    info->actual_size = info->unpacked_size = (uint64_t)st.st_size;
    len = info->actual_size < VF_IMG_HEAD_SIZE ? (size_t)info->actual_size : VF_IMG_HEAD_SIZE;
    if (!(head = malloc(VF_IMG_HEAD_SIZE)))
        return vf_error_set(err, -ENOMEM, 500, VF_IMG_IOERROR, "file", "out of memory");
    rc = vf_img_pread(in_fd, head, len, 0, "file head", err);
    if (rc == 0)
        rc = vf_img_detect(head, len, &format, &compression, err);
    free(head);
    if (rc < 0)
        return rc;
    info->format = format;
    info->compression = compression;
    if (compression == VF_IMAGE_COMPRESSION_NONE) {
        /* Plain formats are read at random: wait for all of it. */
        if (!complete) {
            if ((rc = vf_img_await(opts, in_fd, UINT64_MAX, &complete, err)) < 0)
                return rc;
            if (fstat(in_fd, &st) < 0)
                return vf_error_set(err, -errno, 500, VF_IMG_IOERROR, "file", "fstat: %s",
                                    strerror(errno));
            info->actual_size = info->unpacked_size = (uint64_t)st.st_size;
        }
        return convert_plain(in_fd, info->actual_size, out_fd, out_format, opts, info, err);
    }

    /* Raw content streams straight into the output, bounded by the quota. */
    vf_img_sink_init(&sink, out_fd, vf_img_quota(opts), 0, opts);
    rc = vf_img_unpack(in_fd, compression, opts, vf_img_quota(opts),
                       out_format == VF_IMAGE_FORMAT_RAW ? &sink : NULL, &u, err);
    if (rc < 0)
        return rc;
    if (!complete && fstat(in_fd, &st) == 0)   /* read as it grew: its size is known now */
        info->actual_size = (uint64_t)st.st_size;
    info->format = u.format;
    info->unpacked_size = u.size;
    if (u.scratch_fd >= 0) {
        rc = convert_plain(u.scratch_fd, u.size, out_fd, out_format, opts, info, err);
        close(u.scratch_fd);
        return rc;
    }
    info->virtual_size = u.size;
    info->cdrom = u.format == VF_IMAGE_FORMAT_ISO;
    if (out_format != VF_IMAGE_FORMAT_RAW)
        return vf_img_refused(err, "format", "%s images are stored as raw, not converted to qcow2",
                              vf_image_format_name(u.format));
    info->valid = true;
    return vf_img_sink_finish(&sink, err);
}

int vf_image_convert(int in_fd, int out_fd, enum vf_image_format out_format,
                     const struct vf_image_options *opts, struct vf_image_info *info,
                     struct vf_error *err)
{
    struct vf_image_info local;
    int rc;

    if (!info)
        info = &local;
    memset(info, 0, sizeof *info);
    rc = convert(in_fd, out_fd, out_format, opts, info, err);
    if (rc < 0) {
        info->valid = false;
        /* Nothing partial survives; best effort, the error is already set. */
        if (ftruncate(out_fd, 0) < 0) {
            /* the caller unlinks the output anyway */
        }
    }
    return rc;
}
