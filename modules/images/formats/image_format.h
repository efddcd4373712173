/* Disk image formats, parsed by our own code: detection by magic, validation
 * of every header, table and reference as hostile input, and conversion to
 * the formats the images module stores (raw, sparse; qcow2, self-contained).
 *
 * Nothing here ever hands a file to a tool that follows references: images
 * with backing files, external data files, extent files or parent images are
 * refused with a reason.  All functions are thread-safe (no global state) and
 * report each refusal once, in *err, with the field and offset at fault.
 *
 * Compressed input (gzip, xz around any format) is unpacked in one pass.  Raw
 * and ISO content is streamed straight to its destination; formats that need
 * random access (qcow2, VMDK, VDI: tables may follow the data, as in a
 * streamOptimized VMDK footer) are unpacked into an unlinked scratch file
 * first, written sparse and bounded by the quota. */
#ifndef VF_IMAGE_FORMAT_H
#define VF_IMAGE_FORMAT_H
#include <stdbool.h>
#include <stdint.h>
#include <virtfleet/module.h>

enum vf_image_format {
    VF_IMAGE_FORMAT_UNKNOWN = 0,
    VF_IMAGE_FORMAT_RAW,
    VF_IMAGE_FORMAT_QCOW2,
    VF_IMAGE_FORMAT_VMDK,
    VF_IMAGE_FORMAT_VDI,
    VF_IMAGE_FORMAT_ISO,
};

enum vf_image_compression {
    VF_IMAGE_COMPRESSION_NONE = 0,
    VF_IMAGE_COMPRESSION_GZIP,
    VF_IMAGE_COMPRESSION_XZ,
};

/* Hard limits, whatever the quota says.  QEMU's own limits are the floor:
 * nothing QEMU refuses is accepted here. */
#define VF_IMAGE_MAX_VIRTUAL_SIZE (64ULL << 40)      /* 64 TiB */
#define VF_IMAGE_DEFAULT_QUOTA    (1ULL << 40)       /* 1 TiB, when the caller gives 0 */

/* What vf_image_inspect found.  Filled as far as the file was understood, also
 * when it is refused (then valid is false and *err says why). */
struct vf_image_info {
    enum vf_image_format format;            /* of the content, inside any compression */
    enum vf_image_compression compression;
    char subformat[32];       /* "v3", "monolithicSparse", "streamOptimized", "dynamic", "fixed", ... */
    uint64_t virtual_size;    /* bytes the guest sees */
    uint64_t actual_size;     /* bytes of the file as given (compressed, when it is) */
    uint64_t unpacked_size;   /* bytes after decompression; == actual_size when not compressed */
    bool cdrom;               /* ISO 9660 */
    bool valid;               /* the verdict: safe to store and to give to QEMU */
};

/* progress(opaque, done, total): bytes of output (or unpacked input) so far and
 * the expected total (0 when not known yet).  Called at most every few MiB. */
typedef void (*vf_image_progress_fn)(void *opaque, uint64_t done, uint64_t total);

/* For an input file that is still being written (an import converting while
 * it downloads): called, from the converting thread, when a read reaches the
 * end of what the file holds (`size` bytes).  Blocks until the file holds more
 * (return 1) or the writer has finished, so the end is final (return 0), or
 * gives up (a negative errno with *err filled). */
typedef int (*vf_image_await_fn)(void *opaque, uint64_t size, struct vf_error *err);

struct vf_image_options {
    uint64_t quota;             /* at most this many bytes unpacked or written; 0: default */
    const char *scratch_dir;    /* for unpacking compressed qcow2/VMDK/VDI; NULL: $TMPDIR, else /var/tmp */
    vf_image_progress_fn progress;
    void *opaque;
    /* NULL: the input is complete.  Else vf_image_convert reads a compressed
     * input as it grows (one pass with the download) and waits for the whole
     * of an uncompressed one (its tables may be anywhere). */
    vf_image_await_fn await_input;
};

/* Detect and validate the image open on fd (read with pread; the offset is not
 * used).  opts may be NULL.  Returns 0 when the image is valid, else a negative
 * errno with *err filled (reason "Refused" for a file that is understood and not
 * allowed, "Invalid" for a corrupt one, "TooLarge" for quota/limit breaches). */
int vf_image_inspect(int fd, const struct vf_image_options *opts, struct vf_image_info *info,
                     struct vf_error *err);

/* Validate in_fd and write it to out_fd (a new, empty, seekable regular file or
 * memfd) as out_format: RAW (sparse: zero regions become holes) or QCOW2 (only
 * from qcow2: a validated copy).  Output is bounded by min(virtual size, quota).
 * On failure out_fd is truncated to 0 bytes; the caller unlinks it.  info
 * (may be NULL) receives what vf_image_inspect would. */
int vf_image_convert(int in_fd, int out_fd, enum vf_image_format out_format,
                     const struct vf_image_options *opts, struct vf_image_info *info,
                     struct vf_error *err);

/* "raw", "qcow2", "vmdk", "vdi", "iso", "unknown"; "none", "gzip", "xz". */
const char *vf_image_format_name(enum vf_image_format format);
const char *vf_image_compression_name(enum vf_image_compression compression);
#endif
