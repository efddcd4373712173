/* Shared between the format parsers of libvfimage; not installed, not for
 * modules.  Every parser works on a file descriptor with pread only, checks
 * each offset and size against the file size before reading, and allocates
 * only after the sizes it allocates for are validated. */
#ifndef VF_IMAGE_FORMATS_INTERNAL_H
#define VF_IMAGE_FORMATS_INTERNAL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "image_format.h"

#define VF_IMG_STATUS 422
#define VF_IMG_INVALID "Invalid"    /* corrupt or inconsistent */
#define VF_IMG_REFUSED "Refused"    /* understood, and not allowed (references, encryption) */
#define VF_IMG_TOOLARGE "TooLarge"  /* over a hard limit or the quota */
#define VF_IMG_IOERROR "IOError"

/* Bytes of the file head every detector may look at (ISO needs 0x8006). */
#define VF_IMG_HEAD_SIZE (64u * 1024u)

#define vf_img_invalid(err, field, ...) \
    vf_error_set(err, -EINVAL, VF_IMG_STATUS, VF_IMG_INVALID, field, __VA_ARGS__)
#define vf_img_refused(err, field, ...) \
    vf_error_set(err, -EPERM, VF_IMG_STATUS, VF_IMG_REFUSED, field, __VA_ARGS__)
#define vf_img_toolarge(err, field, ...) \
    vf_error_set(err, -EFBIG, 413, VF_IMG_TOOLARGE, field, __VA_ARGS__)

static inline uint16_t vf_le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t vf_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t vf_le64(const uint8_t *p) { return vf_le32(p) | (uint64_t)vf_le32(p + 4) << 32; }
static inline uint16_t vf_be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t vf_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}
static inline uint64_t vf_be64(const uint8_t *p) { return (uint64_t)vf_be32(p) << 32 | vf_be32(p + 4); }

/* pread until len bytes or EOF; -errno with *err filled on an I/O error or a
 * short read (every caller has checked that the range lies inside the file). */
int vf_img_pread(int fd, void *buf, size_t len, uint64_t offset, const char *what,
                 struct vf_error *err);

/* Sparse writer: blocks of zeros become holes; the file gets its final length
 * from vf_img_sparse_finish (ftruncate).  Bounded by limit. */
struct vf_img_sink {
    int fd;
    uint64_t pos;       /* bytes accounted so far (data + holes) */
    uint64_t limit;     /* refuse to go past this */
    uint64_t total;     /* for progress; 0 when unknown */
    uint64_t reported;
    const struct vf_image_options *opts;
};
void vf_img_sink_init(struct vf_img_sink *s, int fd, uint64_t limit, uint64_t total,
                      const struct vf_image_options *opts);
int vf_img_sink_write(struct vf_img_sink *s, const void *buf, size_t len, struct vf_error *err);
int vf_img_sink_zeros(struct vf_img_sink *s, uint64_t len, struct vf_error *err);
int vf_img_sink_finish(struct vf_img_sink *s, struct vf_error *err);

/* Detection on the first bytes of a file (len may be less than VF_IMG_HEAD_SIZE
 * for a short file).  Refuses a head that matches two formats. */
int vf_img_detect(const uint8_t *head, size_t len, enum vf_image_format *format,
                  enum vf_image_compression *compression, struct vf_error *err);

/* Per-format validation: fills info (format, subformat, virtual_size, cdrom)
 * and returns 0, or refuses.  file_size is the size of what fd holds. */
int vf_qcow2_inspect(int fd, uint64_t file_size, struct vf_image_info *info, struct vf_error *err);
int vf_vmdk_inspect(int fd, uint64_t file_size, struct vf_image_info *info, struct vf_error *err);
int vf_vdi_inspect(int fd, uint64_t file_size, struct vf_image_info *info, struct vf_error *err);
int vf_iso_inspect(int fd, uint64_t file_size, struct vf_image_info *info, struct vf_error *err);
/* ISO checks on a head only (the volume size is checked against the unpacked
 * size by the caller when the content arrives as a stream). */
int vf_iso_check_head(const uint8_t *head, size_t len, uint64_t *volume_bytes, struct vf_error *err);

/* Guest content of a validated image, written to sink (virtual_size bytes). */
int vf_qcow2_to_raw(int fd, uint64_t file_size, struct vf_img_sink *sink, struct vf_error *err);
int vf_vmdk_to_raw(int fd, uint64_t file_size, struct vf_img_sink *sink, struct vf_error *err);
int vf_vdi_to_raw(int fd, uint64_t file_size, struct vf_img_sink *sink, struct vf_error *err);

/* Streaming decompression of gzip (zlib) or xz (liblzma, multi-threaded,
 * memory-limited) from fd, starting at offset 0. */
struct vf_img_decoder;
int vf_img_decoder_open(int fd, enum vf_image_compression compression,
                        struct vf_img_decoder **out, struct vf_error *err);
/* Up to len bytes; 0 at the end of the (last) stream; -errno with *err. */
ssize_t vf_img_decoder_read(struct vf_img_decoder *d, void *buf, size_t len, struct vf_error *err);
void vf_img_decoder_free(struct vf_img_decoder *d);
/* Let the decoder wait for a growing input (opts->await_input) at its end. */
void vf_img_decoder_follow(struct vf_img_decoder *d, const struct vf_image_options *opts);
/* Growing input: wait until fd holds at least `want` bytes or is complete
 * (then *complete is set).  Without opts->await_input the input is complete. */
int vf_img_await(const struct vf_image_options *opts, int fd, uint64_t want, bool *complete,
                 struct vf_error *err);

/* Compressed input, unpacked in one pass (see inspect.c).  The inner format
 * is detected on the first bytes.  Raw and ISO content goes to raw_sink when
 * one is given (a conversion to raw) or is only counted (inspection); the
 * other formats need random access and go to a new scratch file, returned in
 * *scratch_fd (the caller closes it).  Bounded by quota either way. */
struct vf_img_unpacked {
    enum vf_image_format format;
    uint64_t size;          /* unpacked bytes */
    int scratch_fd;         /* -1 when streamed */
};
int vf_img_unpack(int fd, enum vf_image_compression compression, const struct vf_image_options *opts,
                  uint64_t quota, struct vf_img_sink *raw_sink, struct vf_img_unpacked *u,
                  struct vf_error *err);
/* Validation of an uncompressed image (fd holds file_size bytes); fills info. */
int vf_img_inspect_plain(int fd, uint64_t file_size, enum vf_image_format format,
                         struct vf_image_info *info, struct vf_error *err);
uint64_t vf_img_quota(const struct vf_image_options *opts);

/* An unlinked scratch file in opts->scratch_dir / $TMPDIR / /var/tmp. */
int vf_img_scratch_open(const struct vf_image_options *opts, struct vf_error *err);
#endif
