#include <config.h>
/* Streaming decompression of gzip (zlib) and xz (liblzma's multi-threaded
 * decoder) from a file descriptor.
 *
 * Neither decoder bounds its output: callers count what they take and stop at
 * their quota, which is how a decompression bomb ends (see convert.c).  xz is
 * decoded with a memory limit, so a stream that asks for a huge dictionary is
 * refused rather than allowed to make the daemon allocate it.  Concatenated
 * members (gzip) and streams (xz) are decoded in sequence, as their command
 * line tools do; anything after the last one that is not another member is
 * refused as trailing garbage. */
#include <errno.h>
#include <lzma.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include "formats_internal.h"

#define IN_BUF (256u * 1024u)
/* liblzma: spread blocks over threads while under the first limit; refuse
 * streams that need more than the second (xz -9 needs ~65 MiB per thread).
 * Each decoding thread buffers a whole block, so the first limit is what keeps
 * the daemon's peak RSS bounded during an import (target: under 64 MiB in all):
 * 32 MiB decodes 4 MiB blocks on two cores and falls back to one thread for
 * files made with big blocks (xz -T0 -6 makes 24 MiB ones). */
#define XZ_MAX_THREADS 8u
#define XZ_MEMLIMIT_THREADING (32ULL << 20)
#define XZ_MEMLIMIT_STOP (512ULL << 20)

struct vf_img_decoder {
    int fd;
    enum vf_image_compression kind;
    uint64_t in_off;        /* next byte of the file to read */
    bool in_eof, done;
    const struct vf_image_options *follow;  /* a growing input: wait at its end */
    bool complete;          /* the growing input's writer has finished */
    uint8_t *in;
    z_stream z;
    lzma_stream x;
};

static int fill(struct vf_img_decoder *d, const uint8_t **next, size_t *avail, struct vf_error *err)
{
    ssize_t n;
    if (*avail || d->in_eof)
        return 0;
    for (;;) {
        do
            n = pread(d->fd, d->in, IN_BUF, (off_t)d->in_off);
        while (n < 0 && errno == EINTR);
        if (n < 0)
            return vf_error_set(err, -errno, 500, VF_IMG_IOERROR, "input", "reading compressed input "
                                "at offset %llu: %s", (unsigned long long)d->in_off, strerror(errno));
        if (n > 0 || !d->follow || d->complete)
            break;
        /* At the end of what has arrived: wait for more, then read again
         * (also once after the writer finished, for its last bytes). */
        int r = d->follow->await_input(d->follow->opaque, d->in_off, err);
        if (r < 0)
            return r;
        d->complete = r == 0;
    }
    if (n == 0)
        d->in_eof = true;
    d->in_off += (uint64_t)n;
    *next = d->in;
    *avail = (size_t)n;
    return 0;
}

int vf_img_decoder_open(int fd, enum vf_image_compression compression,
                        struct vf_img_decoder **out, struct vf_error *err)
{
    struct vf_img_decoder *d = calloc(1, sizeof *d);
    if (!d || !(d->in = malloc(IN_BUF))) {
        free(d);
        return vf_error_set(err, -ENOMEM, 500, VF_IMG_IOERROR, "compression", "out of memory");
    }
    d->fd = fd;
    d->kind = compression;
    if (compression == VF_IMAGE_COMPRESSION_GZIP) {
        if (inflateInit2(&d->z, 15 + 16) != Z_OK) {
            free(d->in);
            free(d);
            return vf_error_set(err, -ENOMEM, 500, VF_IMG_IOERROR, "compression", "zlib: out of memory");
        }
    } else if (compression == VF_IMAGE_COMPRESSION_XZ) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        lzma_mt mt = {
            .flags = LZMA_CONCATENATED,
            .threads = cpus < 1 ? 1 : cpus > (long)XZ_MAX_THREADS ? XZ_MAX_THREADS : (uint32_t)cpus,
            .timeout = 0,
            .memlimit_threading = XZ_MEMLIMIT_THREADING,
            .memlimit_stop = XZ_MEMLIMIT_STOP,
        };
        lzma_stream init = LZMA_STREAM_INIT;
        d->x = init;
        lzma_ret r = lzma_stream_decoder_mt(&d->x, &mt);
        if (r != LZMA_OK) {
            free(d->in);
            free(d);
            return vf_error_set(err, -ENOMEM, 500, VF_IMG_IOERROR, "compression",
                                "liblzma: cannot start the decoder (error %d)", (int)r);
        }
    } else {
        free(d->in);
        free(d);
        return vf_error_set(err, -EINVAL, 500, VF_IMG_INVALID, "compression", "no compression to decode");
    }
    *out = d;
    return 0;
}

static ssize_t gzip_read(struct vf_img_decoder *d, uint8_t *buf, size_t len, struct vf_error *err)
{
    d->z.next_out = buf;
    d->z.avail_out = (uInt)len;
    while (d->z.avail_out == len && !d->done) {
        const uint8_t *next = d->z.next_in;
        size_t avail = d->z.avail_in;
        int rc = fill(d, &next, &avail, err);
        if (rc < 0)
            return rc;
        d->z.next_in = (Bytef *)next;
        d->z.avail_in = (uInt)avail;
        if (d->in_eof && d->z.avail_in == 0)
            return vf_img_invalid(err, "compression", "gzip: the stream is truncated at offset %llu",
                                  (unsigned long long)d->in_off);
        int zrc = inflate(&d->z, Z_NO_FLUSH);
        if (zrc == Z_STREAM_END) {
            /* Another member may follow; anything else is garbage. */
            const uint8_t *n2 = d->z.next_in;
            size_t a2 = d->z.avail_in;
            if ((rc = fill(d, &n2, &a2, err)) < 0)
                return rc;
            d->z.next_in = (Bytef *)n2;
            d->z.avail_in = (uInt)a2;
            if (a2 == 0) {
                d->done = true;
            } else if (a2 >= 2 && n2[0] == 0x1f && n2[1] == 0x8b) {
                inflateReset(&d->z);
            } else {
                return vf_img_invalid(err, "compression", "gzip: trailing data after the last member "
                                      "(offset %llu)", (unsigned long long)(d->in_off - a2));
            }
        } else if (zrc != Z_OK && !(zrc == Z_BUF_ERROR && d->z.avail_in == 0)) {
            return vf_img_invalid(err, "compression", "gzip: corrupt data near offset %llu: %s",
                                  (unsigned long long)(d->in_off - d->z.avail_in),
                                  d->z.msg ? d->z.msg : "inflate failed");
        }
    }
    return (ssize_t)(len - d->z.avail_out);
}

static ssize_t xz_read(struct vf_img_decoder *d, uint8_t *buf, size_t len, struct vf_error *err)
{
    d->x.next_out = buf;
    d->x.avail_out = len;
    while (d->x.avail_out == len && !d->done) {
        const uint8_t *next = d->x.next_in;
        size_t avail = d->x.avail_in;
        int rc = fill(d, &next, &avail, err);
        if (rc < 0)
            return rc;
        d->x.next_in = next;
        d->x.avail_in = avail;
        lzma_ret r = lzma_code(&d->x, d->in_eof && avail == 0 ? LZMA_FINISH : LZMA_RUN);
        if (r == LZMA_STREAM_END) {
            d->done = true;
        } else if (r == LZMA_MEMLIMIT_ERROR) {
            return vf_img_toolarge(err, "compression", "xz: the stream needs more than %llu MiB of "
                                   "memory to decode", XZ_MEMLIMIT_STOP >> 20);
        } else if (r != LZMA_OK) {
            return vf_img_invalid(err, "compression", "xz: %s near offset %llu",
                                  r == LZMA_DATA_ERROR ? "corrupt data" :
                                  r == LZMA_FORMAT_ERROR ? "not an xz stream" :
                                  r == LZMA_OPTIONS_ERROR ? "unsupported options" :
                                  r == LZMA_BUF_ERROR ? "truncated stream" : "decoder error",
                                  (unsigned long long)(d->in_off - d->x.avail_in));
        }
    }
    return (ssize_t)(len - d->x.avail_out);
}

ssize_t vf_img_decoder_read(struct vf_img_decoder *d, void *buf, size_t len, struct vf_error *err)
{
    if (len > (1u << 30))
        len = 1u << 30;
    if (len == 0)
        return 0;
    return d->kind == VF_IMAGE_COMPRESSION_GZIP ? gzip_read(d, buf, len, err) : xz_read(d, buf, len, err);
}

void vf_img_decoder_follow(struct vf_img_decoder *d, const struct vf_image_options *opts)
{
    d->follow = opts && opts->await_input ? opts : NULL;
}

void vf_img_decoder_free(struct vf_img_decoder *d)
{
    if (!d)
        return;
    if (d->kind == VF_IMAGE_COMPRESSION_GZIP)
        inflateEnd(&d->z);
    else
        lzma_end(&d->x);
    free(d->in);
    free(d);
}
