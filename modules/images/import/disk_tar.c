#include <config.h>
/* The disk file inside a container image's layer: a tar (gzip- or
 * zstd-compressed or not) read with libarchive as its bytes come (from the
 * registry's response: see registry.c), of which exactly one regular file
 * directly under disk/ is taken, written out as it is read.  Layers are
 * untrusted: entries that could point outside the image (absolute paths,
 * "..", symbolic and hard links) or that are not plain data (devices, FIFOs)
 * make the whole layer refused rather than skipped, so that a crafted image
 * fails loudly.
 *
 * Layers stack as the OCI image spec says (layer.md, "Whiteouts"): a later
 * layer's disk/NAME replaces an earlier layer's, `.wh.NAME` deletes NAME of
 * the layers below (never of its own layer), `.wh..wh..opq` in a directory
 * deletes everything the layers below put in it.  Only disk/ matters here,
 * so of the whiteouts only those that reach an earlier layer's disk file act:
 * disk/.wh.NAME, disk/.wh..wh..opq, .wh.disk and a root .wh..wh..opq. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <archive.h>
#include <archive_entry.h>

#include "modules/images/import/fetch_internal.h"

#define BLOCK (1u << 20)
#define WH_PREFIX ".wh."
#define WH_LEN 4
#define WH_OPAQUE ".wh..wh..opq"

/* Where libarchive's bytes come from, and why they stopped coming. */
struct source {
    vf_disk_tar_read_fn read;   /* NULL: libarchive reads a file itself */
    void *opaque;
    int rc;                     /* read()'s failure, or 0 */
    struct vf_error err;
};

static const char *layer(const struct vf_disk_tar *t)
{
    return t->what ? t->what : "the image's layer";
}

static la_ssize_t source_read(struct archive *a, void *opaque, const void **buf)
{
    struct source *s = opaque;
    ssize_t n = s->read(s->opaque, buf, &s->err);
    if (n < 0) {
        s->rc = (int)n;
        archive_set_error(a, (int)-n, "%s", s->err.message);
        return ARCHIVE_FATAL;
    }
    return (la_ssize_t)n;
}

/* libarchive failed: when reading the source did, that is the reason (a
 * download that broke off says more than "truncated gzip input"); else
 * what libarchive says, after what (" is not a valid tar"). */
static int archive_failed(struct archive *a, const struct source *s, const struct vf_disk_tar *t,
                          const char *what, struct vf_error *err)
{
    if (s->rc < 0) {
        if (err)
            *err = s->err;
        return s->rc;
    }
    return vf_error_set(err, -EINVAL, 422, "InvalidImage", "", "%s%s: %s", layer(t), what,
                        archive_error_string(a) ? archive_error_string(a) : "corrupt data");
}

static int refuse(const struct vf_disk_tar *t, struct vf_error *err, const char *path, const char *why)
{
    return vf_error_set(err, -EINVAL, 422, "InvalidImage", "", "%s: entry \"%.200s\" %s", layer(t), path, why);
}

/* Drops leading "./" and "/"-free checks: returns the path relative to the
 * image root, or NULL (with *why) when it must be refused. */
static const char *normalise(const char *path, const char **why)
{
    if (path[0] == '/') {
        *why = "is an absolute path";
        return NULL;
    }
    while (path[0] == '.' && path[1] == '/')
        path += 2;
    while (path[0] == '/')   /* "./" followed by more slashes */
        path++;
    for (const char *p = path; *p;) {
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            *why = "has a \"..\" component";
            return NULL;
        }
        p += n;
        while (*p == '/')
            p++;
    }
    return path;
}

static int copy_disk(struct archive *a, const struct source *s, struct vf_disk_tar *t, const char *path,
                     struct vf_error *err)
{
    char what[240];
    char *buf = malloc(BLOCK);
    uint64_t off = 0;
    int rc = 0;
    if (!buf)
        return vf_error_set(err, -ENOMEM, 500, "FetchFailed", "", "out of memory reading %s", layer(t));
    for (;;) {
        la_ssize_t n = archive_read_data(a, buf, BLOCK);
        if (n == 0)
            break;
        if (n < 0) {
            snprintf(what, sizeof what, ": reading \"%.200s\"", path);
            rc = archive_failed(a, s, t, what, err);
            break;
        }
        if (t->max_bytes && off + (uint64_t)n > t->max_bytes) {
            rc = vf_error_set(err, -EFBIG, 413, "TooLarge", "",
                              "%s: \"%.200s\" passed the limit of %llu bytes", layer(t), path,
                              (unsigned long long)t->max_bytes);
            break;
        }
        for (la_ssize_t done = 0; done < n;) {
            ssize_t w = pwrite(t->out_fd, buf + done, (size_t)(n - done), (off_t)(off + (uint64_t)done));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                int e = w < 0 ? errno : EIO;
                rc = vf_error_set(err, -e, 507, "FetchFailed", "", "writing the disk file: %s", strerror(e));
                goto out;
            }
            done += w;
        }
        if (t->hash)
            vf_hash_update(t->hash, buf, (size_t)n);
        off += (uint64_t)n;
        if (t->cancel && atomic_load(t->cancel)) {
            rc = vf_error_set(err, -ECANCELED, 499, "Canceled", "", "the import was canceled");
            break;
        }
    }
out:
    free(buf);
    if (rc == 0 && ftruncate(t->out_fd, (off_t)off) < 0)
        rc = vf_error_set(err, -errno, 507, "FetchFailed", "", "sizing the disk file: %s", strerror(errno));
    t->bytes = off;
    return rc;
}

static int several(const struct vf_disk_tar *t, const char *a, const char *b, struct vf_error *err)
{
    return vf_error_set(err, -EINVAL, 422, "InvalidImage", "",
                        "%s: several files under /disk/ (\"%.100s\" and \"%.100s\"): the image must hold one",
                        layer(t), a, b);
}

/* Forgets the disk file taken so far (a later layer deleted or replaced it). */
static int drop_disk(struct vf_disk_tar *t, struct vf_error *err)
{
    if (ftruncate(t->out_fd, 0) < 0)
        return vf_error_set(err, -errno, 507, "FetchFailed", "", "emptying the disk file: %s", strerror(errno));
    t->emptied++;
    if (t->hash && vf_hash_reset(t->hash) < 0)
        return vf_error_set(err, -EIO, 500, "FetchFailed", "", "cannot restart hashing");
    t->have_disk = false;
    t->name[0] = '\0';
    t->bytes = 0;
    return 0;
}

/* A whiteout entry (base starts with ".wh."): applies it to the disk file of
 * the layers below, if it reaches it.  Whiteouts elsewhere are skipped. */
static int whiteout(struct vf_disk_tar *t, const char *raw, const char *path, const char *base, bool taken_here,
                    char *shadow, struct vf_error *err)
{
    size_t dir_len = (size_t)(base - path);   /* "disk/" is 5, the root 0 */
    bool in_disk = dir_len == 5 && strncmp(path, "disk/", 5) == 0, at_root = dir_len == 0;
    const char *target = base + WH_LEN;
    bool hits_all, hits_name;

    if (!*target)
        return refuse(t, err, raw, "is a whiteout that names nothing");
    if (strcmp(base, WH_OPAQUE) == 0) {
        hits_all = in_disk || at_root;
        hits_name = false;
    } else {
        hits_all = at_root && strcmp(target, "disk") == 0;
        hits_name = in_disk;
    }
    if (hits_all || (hits_name && strcmp(target, shadow) == 0))
        shadow[0] = '\0';
    if (!t->have_disk || taken_here)
        return 0;   /* a whiteout never deletes what its own layer brings */
    if (hits_all || (hits_name && strcmp(target, t->name) == 0))
        return drop_disk(t, err);
    return 0;
}

/* Reads the layer open in a (the formats and filters set) to its end. */
static int extract(struct archive *a, struct source *s, struct vf_disk_tar *t, struct vf_error *err)
{
    struct archive_entry *e;
    int rc = 0;

    /* The disk file (if any) came from this layer: this layer's whiteouts
     * leave it alone.  shadow: an earlier layer's disk file this layer
     * brought another one next to; unless one of this layer's whiteouts
     * deletes it, the image has two disk files.  Its bytes are gone already
     * (out_fd holds one file), which does not matter: that is a failure. */
    bool taken_here = false;
    char shadow[sizeof t->name] = "";
    for (;;) {
        int r = archive_read_next_header(a, &e);
        if (r == ARCHIVE_EOF)
            break;
        if (r < ARCHIVE_WARN) {
            rc = archive_failed(a, s, t, " is not a valid tar", err);
            break;
        }
        const char *raw = archive_entry_pathname(e), *why = NULL;
        if (!raw || !*raw) {
            rc = refuse(t, err, "", "has no name");
            break;
        }
        const char *path = normalise(raw, &why);
        if (!path) {
            rc = refuse(t, err, raw, why);
            break;
        }
        mode_t type = archive_entry_filetype(e);
        if (archive_entry_hardlink(e)) {
            rc = refuse(t, err, raw, "is a hard link");
            break;
        }
        if (type == AE_IFLNK) {
            rc = refuse(t, err, raw, "is a symbolic link");
            break;
        }
        if (type == AE_IFDIR)
            continue;
        if (type != AE_IFREG) {
            rc = refuse(t, err, raw, "is a device, FIFO or socket");
            break;
        }
        const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
        if (strncmp(base, WH_PREFIX, WH_LEN) == 0) {
            if ((rc = whiteout(t, raw, path, base, taken_here, shadow, err)) < 0)
                break;
            if (archive_read_data_skip(a) < ARCHIVE_WARN) {
                rc = archive_failed(a, s, t, " is not a valid tar", err);
                break;
            }
            continue;
        }
        if (strncmp(path, "disk/", 5) != 0) {
            /* Other files of the image do not matter: read past, not kept. */
            if (archive_read_data_skip(a) < ARCHIVE_WARN) {
                rc = archive_failed(a, s, t, " is not a valid tar", err);
                break;
            }
            continue;
        }
        const char *name = path + 5;
        if (!*name || strchr(name, '/') || strcmp(name, ".") == 0) {
            rc = refuse(t, err, raw, "is not directly under /disk/");
            break;
        }
        if (t->have_disk && taken_here) {
            rc = several(t, t->name, name, err);
            break;
        }
        if (strlen(name) >= sizeof t->name) {
            rc = refuse(t, err, raw, "has a name longer than 255 bytes");
            break;
        }
        if (t->have_disk && strcmp(t->name, name) != 0)
            snprintf(shadow, sizeof shadow, "%s", t->name);   /* see above */
        if (t->have_disk && (rc = drop_disk(t, err)) < 0)     /* a lower layer's file: replaced */
            break;
        if (t->max_bytes && archive_entry_size_is_set(e) && archive_entry_size(e) > 0 &&
            (uint64_t)archive_entry_size(e) > t->max_bytes) {
            rc = vf_error_set(err, -EFBIG, 413, "TooLarge", "", "%s: \"%.200s\" is %lld bytes, more than the limit of %llu",
                              layer(t), raw, (long long)archive_entry_size(e), (unsigned long long)t->max_bytes);
            break;
        }
        snprintf(t->name, sizeof t->name, "%s", name);
        t->have_disk = true;
        taken_here = true;
        if ((rc = copy_disk(a, s, t, raw, err)) < 0)
            break;
    }
    if (rc == 0 && shadow[0])
        rc = several(t, shadow, t->name, err);
    return rc;
}

/* gzip, zstd or nothing (the "none" filter is always on); tar in its forms. */
static struct archive *archive_new(const struct vf_disk_tar *t, struct vf_error *err)
{
    struct archive *a = archive_read_new();
    if (!a) {
        vf_error_set(err, -ENOMEM, 500, "FetchFailed", "", "out of memory reading %s", layer(t));
        return NULL;
    }
    archive_read_support_filter_gzip(a);
    archive_read_support_filter_zstd(a);
    archive_read_support_format_tar(a);
    return a;
}

int vf_disk_tar_extract_stream(vf_disk_tar_read_fn read, void *opaque, struct vf_disk_tar *t,
                               struct vf_error *err)
{
    struct source s = { .read = read, .opaque = opaque };
    struct archive *a = archive_new(t, err);
    int rc;
    if (!a)
        return -ENOMEM;
    if (archive_read_open(a, &s, NULL, source_read, NULL) != ARCHIVE_OK)
        rc = archive_failed(a, &s, t, " is not a tar (plain, gzip or zstd)", err);
    else
        rc = extract(a, &s, t, err);
    archive_read_free(a);
    return rc;
}

int vf_disk_tar_extract(int in_fd, struct vf_disk_tar *t, struct vf_error *err)
{
    struct source s = { .read = NULL };
    struct archive *a;
    int rc;
    if (lseek(in_fd, 0, SEEK_SET) < 0)
        return vf_error_set(err, -errno, 500, "FetchFailed", "", "rewinding %s: %s", layer(t), strerror(errno));
    if (!(a = archive_new(t, err)))
        return -ENOMEM;
    if (archive_read_open_fd(a, in_fd, 64 * 1024) != ARCHIVE_OK)
        rc = archive_failed(a, &s, t, " is not a tar (plain, gzip or zstd)", err);
    else
        rc = extract(a, &s, t, err);
    archive_read_free(a);
    return rc;
}
