#include <config.h>
/* The image store's files: layout, quota accounting, atomic publication,
 * sparse copies and removal.  See image_store.h. */
#include "image_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct {
    const char *dir, *ext;
} layout[] = {
    [VF_DVCR_DOWNLOAD] = {"tmp", "download"},
    [VF_DVCR_OUT] = {"tmp", "out"},
    [VF_DVCR_RAW] = {"images", "raw"},
    [VF_DVCR_QCOW2] = {"images", "qcow2"},
};

static int mkdir_p(char *path)
{
    /* Each prefix in turn, so a store under a fresh state dir needs no setup. */
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int rc = mkdir(path, 0700);
        *p = '/';
        if (rc < 0 && errno != EEXIST)
            return -errno;
    }
    if (mkdir(path, 0700) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

int vf_dvcr_open(struct vf_dvcr *d, const char *root, uint64_t quota, struct vf_error *err)
{
    char p[PATH_MAX];
    if (!root || root[0] != '/')
        return vf_error_set(err, -EINVAL, 400, "Invalid", "dvcr.storage.path",
                            "the image store path \"%s\" must be absolute", root ? root : "");
    if (strlen(root) >= sizeof d->root)
        return vf_error_set(err, -ENAMETOOLONG, 400, "Invalid", "dvcr.storage.path",
                            "the image store path is too long");
    snprintf(d->root, sizeof d->root, "%s", root);
    d->quota = quota;
    static const char *const sub[] = {"", "/images", "/tmp"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", root, sub[i]);
        int rc = mkdir_p(p);
        if (rc < 0)
            return vf_error_set(err, rc, 500, "IOError", "dvcr.storage.path",
                                "cannot create the image store directory \"%s\": %s", p,
                                strerror(-rc));
    }
    return 0;
}

int vf_dvcr_path(const struct vf_dvcr *d, const char *uid, enum vf_dvcr_file which, char *buf,
                 size_t len)
{
    /* uids are the store's own (hex and dashes); anything else never names a file. */
    if (!uid || !*uid || strspn(uid, "0123456789abcdefABCDEF-") != strlen(uid) || strlen(uid) > 64)
        return -EINVAL;
    int n = snprintf(buf, len, "%s/%s/%s.%s", d->root, layout[which].dir, uid, layout[which].ext);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* The uid a store file name belongs to: the part before the first dot. */
static bool uid_of(const char *name, char *uid, size_t len)
{
    size_t n = strcspn(name, ".");
    if (name[0] == '.' || n == 0 || n >= len || name[n] != '.')
        return false;
    memcpy(uid, name, n);
    uid[n] = '\0';
    return true;
}

static uint64_t dir_usage(const char *dir, const char *except_uid)
{
    uint64_t total = 0;
    DIR *dh = opendir(dir);
    if (!dh)
        return 0;
    struct dirent *e;
    while ((e = readdir(dh))) {
        char uid[80];
        struct stat st;
        if (!uid_of(e->d_name, uid, sizeof uid))
            continue;
        if (except_uid && strcmp(uid, except_uid) == 0)
            continue;
        if (fstatat(dirfd(dh), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
            total += (uint64_t)st.st_blocks * 512;
    }
    closedir(dh);
    return total;
}

uint64_t vf_dvcr_usage(const struct vf_dvcr *d, const char *except_uid)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/images", d->root);
    uint64_t total = dir_usage(p, except_uid);
    snprintf(p, sizeof p, "%s/tmp", d->root);
    return total + dir_usage(p, except_uid);
}

uint64_t vf_dvcr_room(const struct vf_dvcr *d, const char *uid)
{
    uint64_t used = vf_dvcr_usage(d, uid);
    return used >= d->quota ? 0 : d->quota - used;
}

static int fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

int vf_dvcr_publish(const struct vf_dvcr *d, const char *uid, int out_fd, const char *format,
                    char *final, size_t final_len, struct vf_error *err)
{
    char out[PATH_MAX], dst[PATH_MAX], dir[PATH_MAX];
    enum vf_dvcr_file which = strcmp(format, "qcow2") == 0 ? VF_DVCR_QCOW2 : VF_DVCR_RAW;
    if (vf_dvcr_path(d, uid, VF_DVCR_OUT, out, sizeof out) < 0 ||
        vf_dvcr_path(d, uid, which, dst, sizeof dst) < 0)
        return vf_error_set(err, -ENAMETOOLONG, 500, "IOError", "dvcr", "bad image store path");
    if (fsync(out_fd) < 0)
        return vf_error_set(err, -errno, 500, "IOError", "dvcr", "fsync \"%s\": %s", out,
                            strerror(errno));
    if (rename(out, dst) < 0)
        return vf_error_set(err, -errno, 500, "IOError", "dvcr", "rename \"%s\" to \"%s\": %s", out,
                            dst, strerror(errno));
    snprintf(dir, sizeof dir, "%s/images", d->root);
    int rc = fsync_dir(dir);
    if (rc < 0) {
        unlink(dst);
        return vf_error_set(err, rc, 500, "IOError", "dvcr", "fsync \"%s\": %s", dir,
                            strerror(-rc));
    }
    if (final)
        snprintf(final, final_len, "%s", dst);
    return 0;
}

void vf_dvcr_remove(const struct vf_dvcr *d, const char *uid, bool keep_download)
{
    char p[PATH_MAX];
    for (int w = VF_DVCR_DOWNLOAD; w <= VF_DVCR_QCOW2; w++) {
        if (w == VF_DVCR_DOWNLOAD && keep_download)
            continue;
        if (vf_dvcr_path(d, uid, (enum vf_dvcr_file)w, p, sizeof p) == 0)
            unlink(p);
    }
}

/* Copy the data extents of in into out (same offsets); holes stay holes. */
static int copy_sparse(int in, int out, uint64_t size)
{
    off_t pos = 0;
    while ((uint64_t)pos < size) {
        off_t data = lseek(in, pos, SEEK_DATA);
        if (data < 0)
            break;   /* ENXIO: only a hole is left */
        off_t hole = lseek(in, data, SEEK_HOLE);
        if (hole < 0)
            return -errno;
        off_t src = data, dst = data;
        while (src < hole) {
            ssize_t n = copy_file_range(in, &src, out, &dst, (size_t)(hole - src), 0);
            if (n < 0)
                return -errno;
            if (n == 0)
                return -EIO;
        }
        pos = hole;
    }
    return ftruncate(out, (off_t)size) < 0 ? -errno : 0;
}

int vf_dvcr_copy(const struct vf_dvcr *d, const char *src, const char *uid, const char *format,
                 char *final, size_t final_len, struct vf_error *err)
{
    char out[PATH_MAX];
    struct stat st;
    if (vf_dvcr_path(d, uid, VF_DVCR_OUT, out, sizeof out) < 0)
        return vf_error_set(err, -ENAMETOOLONG, 500, "IOError", "dvcr", "bad image store path");
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return vf_error_set(err, -errno, 500, "IOError", "dvcr", "open \"%s\": %s", src,
                            strerror(errno));
    int fd = open(out, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        close(in);
        return vf_error_set(err, -e, 500, "IOError", "dvcr", "create \"%s\": %s", out, strerror(e));
    }
    int rc = fstat(in, &st) < 0 ? -errno : 0;
    /* A reflink shares the blocks (btrfs, xfs); elsewhere copy the data extents. */
    if (rc == 0 && ioctl(fd, FICLONE, in) < 0)
        rc = copy_sparse(in, fd, (uint64_t)st.st_size);
    if (rc < 0)
        vf_error_set(err, rc, 500, "IOError", "dvcr", "copy \"%s\" to \"%s\": %s", src, out,
                     strerror(-rc));
    else
        rc = vf_dvcr_publish(d, uid, fd, format, final, final_len, err);
    close(fd);
    close(in);
    if (rc < 0)
        unlink(out);
    return rc;
}

void vf_dvcr_foreach_uid(const struct vf_dvcr *d, void (*fn)(void *opaque, const char *uid),
                         void *opaque)
{
    static const char *const sub[] = {"images", "tmp"};
    for (size_t i = 0; i < 2; i++) {
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", d->root, sub[i]);
        DIR *dh = opendir(p);
        if (!dh)
            continue;
        struct dirent *e;
        while ((e = readdir(dh))) {
            char uid[80];
            if (uid_of(e->d_name, uid, sizeof uid))
                fn(opaque, uid);
        }
        closedir(dh);
    }
}
