#include <config.h>
/* I/O helpers of libvfimage: exact preads, the sparse bounded writer every
 * conversion writes through, and unlinked scratch files. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "formats_internal.h"

#define PROGRESS_STEP (8ULL << 20)
/* Zero detection granularity: a hole is only worth making this large, and
 * file systems allocate in 4 KiB blocks anyway. */
#define HOLE_BLOCK 4096u

int vf_img_pread(int fd, void *buf, size_t len, uint64_t offset, const char *what,
                 struct vf_error *err)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(offset + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return vf_error_set(err, -errno, 500, VF_IMG_IOERROR, what, "reading %s at offset %llu: %s",
                                what, (unsigned long long)(offset + done), strerror(errno));
        if (n == 0)
            return vf_img_invalid(err, what, "%s at offset %llu: file ends after %zu of %zu bytes",
                                  what, (unsigned long long)offset, done, len);
        done += (size_t)n;
    }
    return 0;
}

void vf_img_sink_init(struct vf_img_sink *s, int fd, uint64_t limit, uint64_t total,
                      const struct vf_image_options *opts)
{
    memset(s, 0, sizeof *s);
    s->fd = fd;
    s->limit = limit;
    s->total = total;
    s->opts = opts;
}

static int sink_room(struct vf_img_sink *s, uint64_t len, struct vf_error *err)
{
    if (len > s->limit || s->pos > s->limit - len)
        return vf_img_toolarge(err, "quota", "output would exceed %llu bytes (the quota or the "
                               "virtual size); refusing to write more",
                               (unsigned long long)s->limit);
    return 0;
}

static void sink_progress(struct vf_img_sink *s)
{
    if (s->opts && s->opts->progress && s->pos - s->reported >= PROGRESS_STEP) {
        s->reported = s->pos;
        s->opts->progress(s->opts->opaque, s->pos, s->total);
    }
}

static bool all_zero(const uint8_t *p, size_t n)
{
    /* Compare against the first byte shifted along: memcmp is vectorised. */
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

static int write_at(int fd, const uint8_t *p, size_t n, uint64_t off, struct vf_error *err)
{
    while (n) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return vf_error_set(err, w < 0 ? -errno : -EIO, 500, VF_IMG_IOERROR, "output",
                                "writing output at offset %llu: %s", (unsigned long long)off,
                                w < 0 ? strerror(errno) : "nothing written");
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

int vf_img_sink_write(struct vf_img_sink *s, const void *buf, size_t len, struct vf_error *err)
{
    const uint8_t *p = buf;
    int rc = sink_room(s, len, err);
    if (rc < 0)
        return rc;
    /* Runs of non-zero blocks are written with one pwrite; zero blocks are skipped. */
    while (len) {
        size_t run = 0;
        bool zero = all_zero(p, len < HOLE_BLOCK ? len : HOLE_BLOCK);
        while (run < len) {
            size_t n = len - run < HOLE_BLOCK ? len - run : HOLE_BLOCK;
            if (all_zero(p + run, n) != zero)
                break;
            run += n;
        }
        if (!zero && (rc = write_at(s->fd, p, run, s->pos, err)) < 0)
            return rc;
        s->pos += run;
        p += run;
        len -= run;
    }
    sink_progress(s);
    return 0;
}

int vf_img_sink_zeros(struct vf_img_sink *s, uint64_t len, struct vf_error *err)
{
    int rc = sink_room(s, len, err);
    if (rc < 0)
        return rc;
    s->pos += len;
    sink_progress(s);
    return 0;
}

int vf_img_sink_finish(struct vf_img_sink *s, struct vf_error *err)
{
    if (ftruncate(s->fd, (off_t)s->pos) < 0)
        return vf_error_set(err, -errno, 500, VF_IMG_IOERROR, "output", "setting the output length "
                            "to %llu: %s", (unsigned long long)s->pos, strerror(errno));
    if (s->opts && s->opts->progress)
        s->opts->progress(s->opts->opaque, s->pos, s->total ? s->total : s->pos);
    return 0;
}

int vf_img_scratch_open(const struct vf_image_options *opts, struct vf_error *err)
{
    const char *dir = opts && opts->scratch_dir ? opts->scratch_dir : getenv("TMPDIR");
    char *path;
    int fd;

    if (!dir || !*dir)
        dir = "/var/tmp";
    fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
    /* File systems without O_TMPFILE: create and unlink at once. */
    if (asprintf(&path, "%s/vfimage.XXXXXX", dir) < 0)
        return vf_error_set(err, -ENOMEM, 500, VF_IMG_IOERROR, "scratch", "out of memory");
    fd = mkostemp(path, O_CLOEXEC);
    if (fd >= 0)
        unlink(path);
    free(path);
    if (fd < 0)
        return vf_error_set(err, -errno, 500, VF_IMG_IOERROR, "scratch", "cannot create a scratch "
                            "file in \"%s\": %s", dir, strerror(errno));
    return fd;
}

int vf_img_await(const struct vf_image_options *opts, int fd, uint64_t want, bool *complete,
                 struct vf_error *err)
{
    struct stat st;
    *complete = !opts || !opts->await_input;
    while (!*complete) {
        if (fstat(fd, &st) < 0)
            return vf_error_set(err, -errno, 500, VF_IMG_IOERROR, "file", "fstat: %s", strerror(errno));
        if ((uint64_t)st.st_size >= want)
            return 0;
        int r = opts->await_input(opts->opaque, (uint64_t)st.st_size, err);
        if (r < 0)
            return r;
        *complete = r == 0;
    }
    return 0;
}
