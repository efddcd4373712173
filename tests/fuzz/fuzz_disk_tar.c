#include <config.h>
/* libFuzzer target: any bytes as a container image layer.  Reading it as
 * tar (gzip or plain) for the one file under disk/ must never crash, leak,
 * hang, or write more than the limit; a refusal always says why. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "modules/images/import/fetch_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define LIMIT (4u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vf_error err;
    int in = memfd_create("fuzz-layer", MFD_CLOEXEC), out = memfd_create("fuzz-disk", MFD_CLOEXEC);
    if (in < 0 || out < 0)
        abort();
    for (size_t done = 0; done < size;) {
        ssize_t n = write(in, data + done, size - done);
        if (n <= 0)
            abort();
        done += (size_t)n;
    }
    struct vf_disk_tar t = { .out_fd = out, .max_bytes = LIMIT };
    int rc = vf_disk_tar_extract(in, &t, &err);
    off_t end = lseek(out, 0, SEEK_END);
    if (end < 0 || (uint64_t)end > LIMIT || (rc < 0 && err.message[0] == '\0'))
        abort();
    if (rc == 0 && t.have_disk && (uint64_t)end != t.bytes)
        abort();
    close(in);
    close(out);
    return 0;
}
