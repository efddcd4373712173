#include <config.h>
/* libFuzzer target: any bytes as a disk image file.  Detection, validation
 * and (bounded) conversion to raw and to qcow2 must never crash, leak, read
 * out of bounds, hang or allocate more than the input's declared tables
 * allow, whatever the header claims; decompression must stop at the quota. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "modules/images/formats/image_format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Small enough to keep each run fast; a bomb needs only a few hundred bytes
 * of xz to go past it. */
#define QUOTA (8u << 20)

static int memfd_with(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz-image", MFD_CLOEXEC);
    size_t done = 0;
    if (fd < 0)
        abort();
    while (done < size) {
        ssize_t n = write(fd, data + done, size - done);
        if (n <= 0)
            abort();
        done += (size_t)n;
    }
    return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vf_image_options opts = { .quota = QUOTA };
    struct vf_image_info info;
    struct vf_error err;
    int in = memfd_with(data, size);
    int rc = vf_image_inspect(in, &opts, &info, &err);

    /* A verdict always comes with a reason, and a valid image's sizes hold. */
    if ((rc < 0) != !info.valid || (rc < 0 && err.message[0] == '\0'))
        abort();
    if (rc == 0) {
        int out = memfd_create("fuzz-out", MFD_CLOEXEC);
        off_t end;
        if (out < 0)
            abort();
        rc = vf_image_convert(in, out, VF_IMAGE_FORMAT_RAW, &opts, &info, &err);
        end = lseek(out, 0, SEEK_END);
        /* Bounded by the quota; empty after a failure. */
        if (end < 0 || (uint64_t)end > QUOTA || (rc < 0 && end != 0) ||
            (rc == 0 && (uint64_t)end != info.virtual_size))
            abort();
        if (info.format == VF_IMAGE_FORMAT_QCOW2) {
            if (ftruncate(out, 0) < 0)
                abort();
            vf_image_convert(in, out, VF_IMAGE_FORMAT_QCOW2, &opts, NULL, &err);
        }
        close(out);
    }
    close(in);
    return 0;
}
