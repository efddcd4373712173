#include <config.h>
/* ClusterVirtualImage, the import job: what a worker thread does for one image.
 * Fetch (HTTP, registry) or take the uploaded file, hash it, choose the output
 * format, validate and convert into the image store, publish atomically.  No
 * core service is called from here: the results go back in the job, which
 * job_done() (cvi.c) reads on the loop thread. */
#include "cvi_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

void vf_cvi_job_free(struct import_job *j)
{
    free(j->url);
    free(j->checksum);
    free(j->ca_pem);
    free(j->image);
    free(j->copy_from);
    vf_vd_volume_job_free(j->vol);
    free(j);
}

static void on_fetch_progress(void *opaque, uint64_t done, uint64_t total)
{
    struct import_job *j = opaque;
    /* Fewer bytes than before: the fetcher started over (the server would not
     * resume, or a registry image's later layer replaced its disk file), so
     * what a converter read meanwhile is void. */
    if (done < atomic_load(&j->done_bytes))
        atomic_fetch_add(&j->restarts, 1);
    atomic_store(&j->done_bytes, done);
    atomic_store(&j->total_bytes, total);
}

static void on_convert_progress(void *opaque, uint64_t done, uint64_t total)
{
    (void)done;
    (void)total;
    struct import_job *j = opaque;
    atomic_store(&j->converting, true);
}

/* sha256 and md5 of the whole file (an upload: nobody hashed it on the way). */
static int hash_file(int fd, struct vf_fetch_result *res, struct vf_error *err)
{
    EVP_MD_CTX *sha = EVP_MD_CTX_new(), *md5 = EVP_MD_CTX_new();
    unsigned char *buf = malloc(1 << 20);
    int rc = 0;
    if (!sha || !md5 || !buf || !EVP_DigestInit_ex(sha, EVP_sha256(), NULL) ||
        !EVP_DigestInit_ex(md5, EVP_md5(), NULL)) {
        rc = vf_error_set(err, -ENOMEM, 500, "IOError", "", "cannot set up hashing");
        goto out;
    }
    res->bytes = 0;
    for (;;) {
        ssize_t n = pread(fd, buf, 1 << 20, (off_t)res->bytes);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = vf_error_set(err, -errno, 500, "IOError", "", "reading the upload: %s",
                              strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        EVP_DigestUpdate(sha, buf, (size_t)n);
        EVP_DigestUpdate(md5, buf, (size_t)n);
        res->bytes += (uint64_t)n;
    }
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dl = 0;
    EVP_DigestFinal_ex(sha, d, &dl);
    for (unsigned i = 0; i < dl && i < 32; i++)
        snprintf(res->sha256 + 2 * i, 3, "%02x", d[i]);
    EVP_DigestFinal_ex(md5, d, &dl);
    for (unsigned i = 0; i < dl && i < 16; i++)
        snprintf(res->md5 + 2 * i, 3, "%02x", d[i]);
out:
    EVP_MD_CTX_free(sha);
    EVP_MD_CTX_free(md5);
    free(buf);
    return rc;
}

/* Output format by content: qcow2 stays qcow2, everything else becomes raw.
 * Uncompressed input is inspected (headers only, cheap); compressed input
 * would have to be unpacked twice to know, so it is stored as raw. */
static int choose_format(struct import_job *j, int fd, const struct vf_image_options *opts,
                         enum vf_image_format *fmt)
{
    static const unsigned char gz[] = {0x1f, 0x8b}, xz[] = {0xfd, '7', 'z', 'X', 'Z', 0};
    unsigned char head[6] = {0};
    ssize_t n = pread(fd, head, sizeof head, 0);
    *fmt = VF_IMAGE_FORMAT_RAW;
    if (n >= 2 && (!memcmp(head, gz, 2) || (n == 6 && !memcmp(head, xz, 6))))
        return 0;
    struct vf_image_info info;
    int rc = vf_image_inspect(fd, opts, &info, &j->err);
    if (rc == 0 && info.format == VF_IMAGE_FORMAT_QCOW2)
        *fmt = VF_IMAGE_FORMAT_QCOW2;
    return rc;
}

/* ---- registry credentials (import.authFile) ------------------------------------- */

/* "https://host:port/v1/" or "host:port" -> "host:port" (docker's keys vary). */
static void auth_key_host(const char *key, char *out, size_t len)
{
    const char *p = strstr(key, "://");
    p = p ? p + 3 : key;
    size_t n = strcspn(p, "/");
    snprintf(out, len, "%.*s", (int)(n < len ? n : len - 1), p);
}

/* One entry: {"auth": base64("user:pass")} or {"username": .., "password": ..}. */
static int auth_entry(const struct json_object *e, const char *path, const char *key, char *user,
                      size_t user_len, char *pass, size_t pass_len, struct vf_error *err)
{
    const char *b64 = string(e, "auth");
    if (!b64 || !*b64) {
        const char *u = string(e, "username"), *p = string(e, "password");
        if (!u || !p)
            return vf_error_set(err, -EINVAL, 422, "AuthFileInvalid", "import.authFile",
                                "%s: the entry for \"%s\" has neither \"auth\" nor "
                                "\"username\" and \"password\"", path, key);
        snprintf(user, user_len, "%s", u);
        snprintf(pass, pass_len, "%s", p);
        return 0;
    }
    size_t len = strlen(b64);
    unsigned char buf[1024];
    int n = len % 4 == 0 && len / 4 * 3 < sizeof buf
                ? EVP_DecodeBlock(buf, (const unsigned char *)b64, (int)len) : -1;
    if (n < 0)
        return vf_error_set(err, -EINVAL, 422, "AuthFileInvalid", "import.authFile",
                            "%s: the \"auth\" of \"%s\" is not base64 of user:password", path,
                            key);
    /* EVP_DecodeBlock counts the padding as zero bytes. */
    for (size_t i = len; i > 0 && b64[i - 1] == '=' && n > 0; i--)
        n--;
    buf[n] = '\0';
    char *colon = memchr(buf, ':', (size_t)n);
    if (!colon || strlen((char *)buf) != (size_t)n)
        return vf_error_set(err, -EINVAL, 422, "AuthFileInvalid", "import.authFile",
                            "%s: the \"auth\" of \"%s\" does not decode to user:password", path,
                            key);
    *colon = '\0';
    snprintf(user, user_len, "%s", (char *)buf);
    snprintf(pass, pass_len, "%s", colon + 1);
    OPENSSL_cleanse(buf, sizeof buf);
    return 0;
}

/* The credentials import.authFile holds for the image's registry (its
 * host[:port]).  Read at every pull, so an edit needs no reload.  A file
 * other users may read is refused: it holds passwords.  No entry for the
 * registry: anonymous (user[0] == '\0'). */
int vf_cvi_registry_auth(const char *path, const char *image, char *user, size_t user_len,
                         char *pass, size_t pass_len, struct vf_error *err)
{
    user[0] = pass[0] = '\0';
    if (!path || !*path)
        return 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return vf_error_set(err, -errno, 422, "AuthFileInvalid", "import.authFile",
                            "cannot open the registry credentials %s: %s", path, strerror(errno));
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return vf_error_set(err, -EINVAL, 422, "AuthFileInvalid", "import.authFile",
                            "%s is not a regular file", path);
    }
    if (st.st_mode & (S_IROTH | S_IWOTH)) {
        close(fd);
        return vf_error_set(err, -EPERM, 422, "AuthFileInsecure", "import.authFile",
                            "%s holds registry passwords but every user may %s it (mode %04o): "
                            "chmod o-rw it", path, st.st_mode & S_IROTH ? "read" : "write",
                            (unsigned)(st.st_mode & 07777));
    }
    struct json_object *doc = json_object_from_fd(fd);
    close(fd);
    if (!doc || !json_object_is_type(member(doc, "auths"), json_type_object)) {
        json_object_put(doc);
        return vf_error_set(err, -EINVAL, 422, "AuthFileInvalid", "import.authFile",
                            "%s: not JSON with an \"auths\" object (containers-auth.json)", path);
    }
    char host[512], key_host[512];
    auth_key_host(image, host, sizeof host);
    int rc = 0;
    json_object_object_foreach(member(doc, "auths"), key, entry) {
        auth_key_host(key, key_host, sizeof key_host);
        if (strcmp(key_host, host))
            continue;
        rc = auth_entry(entry, path, key, user, user_len, pass, pass_len, err);
        break;
    }
    json_object_put(doc);
    return rc;
}

/* Into err, not j->err: the fetch may run beside a converter. */
static int run_fetch(struct import_job *j, int fd, struct vf_error *err)
{
    struct vf_fetch_common common = {
        .ca_bundle_pem = j->ca_pem,
        .max_bytes = j->room,
        .stall_timeout_s = j->stall_timeout_s,
        .max_retries = j->max_retries,
        .cancel = &j->cancel,
        .progress = on_fetch_progress,
        .opaque = j,
    };
    if (j->src == SRC_HTTP) {
        struct vf_fetch_http req = {.url = j->url, .checksum = j->checksum};
        return vf_fetch_http_run(&req, &common, fd, &j->fetch, err);
    }
    if (j->src == SRC_REGISTRY) {
        /* A pull starts over (the fetcher truncates fd) and writes the disk
         * file into fd as its layer streams in: no scratch file. */
        char user[512], pass[512];
        int rc = vf_cvi_registry_auth(j->auth_file, j->image, user, sizeof user, pass,
                                      sizeof pass, err);
        if (rc < 0)
            return rc;
        struct vf_fetch_registry req = {.image = j->image, .plain_http = j->plain_http};
        if (user[0]) {
            req.username = user;
            req.password = pass;
        }
        rc = vf_fetch_registry_run(&req, &common, fd, &j->fetch, j->disk_name,
                                   sizeof j->disk_name, err);
        OPENSSL_cleanse(pass, sizeof pass);
        return rc;
    }
    int rc = hash_file(fd, &j->fetch, err);
    atomic_store(&j->done_bytes, j->fetch.bytes);
    atomic_store(&j->total_bytes, j->fetch.bytes);
    return rc;
}

/* ---- converting while downloading ---------------------------------------------
 * A compressed download is decoded as it arrives (the way `curl | xz -dc`
 * overlaps the two), and so is the disk file of a registry image, which grows
 * as its layer streams in: the fetch runs on a thread of its own and the
 * converter waits at the end of the growing file.  Plain formats are read at
 * random, so the converter waits for all of them; a fetch that starts over
 * voids what was converted, which is then converted again from the finished
 * file. */

struct follow {
    struct import_job *j;
    int fd;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool finished;                 /* the fetch returned: rc, err final */
    int rc;
    struct vf_error err;
};

static void *fetch_thread(void *opaque)
{
    struct follow *f = opaque;
    struct vf_error err = {0};
    int rc = run_fetch(f->j, f->fd, &err);
    pthread_mutex_lock(&f->lock);
    f->rc = rc;
    f->err = err;
    f->finished = true;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
    return NULL;
}

/* vf_image_await_fn: polls the file's size (the fetcher reports progress only
 * every 256 KiB) and wakes at once when the fetch ends. */
static int follow_await(void *opaque, uint64_t size, struct vf_error *err)
{
    struct follow *f = opaque;
    struct stat st;
    int r = 1;
    pthread_mutex_lock(&f->lock);
    for (;;) {
        if (atomic_load(&f->j->cancel)) {
            r = vf_error_set(err, -ECANCELED, 409, "Canceled", "", "the import was canceled");
            break;
        }
        if (fstat(f->fd, &st) == 0 && (uint64_t)st.st_size > size)
            break;
        if (f->finished) {
            r = f->rc < 0 ? vf_error_set(err, -EIO, 502, "FetchFailed", "", "the download failed")
                          : 0;
            break;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&f->cond, &f->lock, &ts);
    }
    pthread_mutex_unlock(&f->lock);
    return r;
}

static bool compressed_head(const unsigned char *head, ssize_t n)
{
    static const unsigned char gz[] = {0x1f, 0x8b}, xz[] = {0xfd, '7', 'z', 'X', 'Z', 0};
    return n >= 2 && (!memcmp(head, gz, 2) || (n == 6 && !memcmp(head, xz, 6)));
}

/* Fetch into fd (fresh and empty) while converting a compressed download into
 * out as it grows.  *converted: out holds the result (else convert after). */
static int fetch_and_convert(struct import_job *j, int fd, int out, const struct vf_image_options *base,
                             bool *converted)
{
    struct follow f = {.j = j, .fd = fd, .lock = PTHREAD_MUTEX_INITIALIZER,
                       .cond = PTHREAD_COND_INITIALIZER};
    pthread_t thread;
    *converted = false;
    int rc = pthread_create(&thread, NULL, fetch_thread, &f);
    if (rc)
        return run_fetch(j, fd, &j->err);   /* no thread: one after the other */

    unsigned char head[6] = {0};
    struct vf_error err = {0};
    int crc = follow_await(&f, sizeof head - 1, &err);
    ssize_t n = crc < 0 ? -1 : pread(fd, head, sizeof head, 0);
    bool streamed = n > 0 && compressed_head(head, n);
    unsigned restarts = atomic_load(&j->restarts);
    if (streamed) {
        struct vf_image_options opts = *base;
        opts.progress = NULL;               /* the download's progress is the one shown */
        opts.await_input = follow_await;
        opts.opaque = &f;
        crc = vf_image_convert(fd, out, VF_IMAGE_FORMAT_RAW, &opts, &j->info, &err);
    }
    pthread_join(thread, NULL);
    if (f.rc < 0) {                         /* the download failed: that is the reason */
        j->err = f.err;
        return f.rc;
    }
    if (!streamed || atomic_load(&j->restarts) != restarts || crc == -ECANCELED)
        return 0;                           /* converted after, from the finished file */
    if (crc < 0) {                          /* the content itself was refused */
        j->err = err;
        return crc;
    }
    *converted = true;
    return 0;
}

/* ---- an image from a VirtualDisk ----------------------------------------------
 * The volume's bytes come from its node (the DOWNLOAD op of vd_volume.c, holes
 * kept as holes), are hashed, and keep the disk's format: a qcow2 disk is
 * validated and copied as qcow2.  A raw disk is stored as it is, never
 * inspected: its bytes are whatever its guest wrote, and a guest may well have
 * written a qcow2 header or gzip magic at its start, which read as such would
 * change the image (or make it follow tables the guest made). */
static int import_disk(struct import_job *j)
{
    char dl[4096], outp[4096], scratch[4096];
    bool raw = strcmp(j->copy_format, "qcow2") != 0;
    struct stat st;
    int fd = -1, out = -1, rc;
    if (vf_dvcr_path(&j->dvcr, j->uid, VF_DVCR_DOWNLOAD, dl, sizeof dl) < 0 ||
        vf_dvcr_path(&j->dvcr, j->uid, VF_DVCR_OUT, outp, sizeof outp) < 0)
        return vf_error_set(&j->err, -ENAMETOOLONG, 500, "IOError", "", "bad image store path");
    /* A raw disk goes straight to the file that is published. */
    const char *first = raw ? outp : dl;
    if ((fd = open(first, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
        return vf_error_set(&j->err, -errno, 500, "IOError", "", "create \"%s\": %s", first,
                            strerror(errno));
    j->vol->dst_fd = fd;
    j->vol->max_bytes = j->room;
    vf_vd_volume_run(j->vol);
    if ((rc = j->vol->rc) < 0) {
        j->err = j->vol->err;
        goto out;
    }
    atomic_store(&j->converting, true);
    if ((rc = hash_file(fd, &j->fetch, &j->err)) < 0)
        goto out;
    if (raw) {
        out = fd;
        fd = -1;
        memset(&j->info, 0, sizeof j->info);
        j->info.format = VF_IMAGE_FORMAT_RAW;
        j->info.compression = VF_IMAGE_COMPRESSION_NONE;
        j->info.virtual_size = j->info.actual_size = j->info.unpacked_size = j->fetch.bytes;
        j->info.valid = true;
    } else {
        snprintf(scratch, sizeof scratch, "%s/tmp", j->dvcr.root);
        struct vf_image_options opts = {.quota = j->room, .scratch_dir = scratch};
        if ((out = open(outp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
            rc = vf_error_set(&j->err, -errno, 500, "IOError", "", "create \"%s\": %s", outp,
                              strerror(errno));
            goto out;
        }
        rc = vf_image_convert(fd, out, VF_IMAGE_FORMAT_QCOW2, &opts, &j->info, &j->err);
    }
    if (rc == 0 && atomic_load(&j->cancel))
        rc = -ECANCELED;
    if (rc == 0) {
        snprintf(j->format, sizeof j->format, "%s", raw ? "raw" : "qcow2");
        rc = vf_dvcr_publish(&j->dvcr, j->uid, out, j->format, j->final, sizeof j->final, &j->err);
    }
    if (rc == 0 && fstat(out, &st) == 0)
        j->stored_bytes = (uint64_t)st.st_blocks * 512;
out:
    if (fd >= 0)
        close(fd);
    if (out >= 0)
        close(out);
    unlink(dl);
    if (rc < 0)
        unlink(outp);
    return rc;
}

static int run_import(struct import_job *j)
{
    char dl[4096], outp[4096], scratch[4096];
    struct stat st;
    int rc;
    if (j->src == SRC_DISK)
        return import_disk(j);
    if (j->src == SRC_COPY) {
        rc = vf_dvcr_copy(&j->dvcr, j->copy_from, j->uid, j->copy_format, j->final,
                          sizeof j->final, &j->err);
        if (rc == 0 && stat(j->final, &st) == 0)
            j->stored_bytes = (uint64_t)st.st_blocks * 512;
        snprintf(j->format, sizeof j->format, "%s", j->copy_format);
        return rc;
    }
    if (vf_dvcr_path(&j->dvcr, j->uid, VF_DVCR_DOWNLOAD, dl, sizeof dl) < 0 ||
        vf_dvcr_path(&j->dvcr, j->uid, VF_DVCR_OUT, outp, sizeof outp) < 0)
        return vf_error_set(&j->err, -ENAMETOOLONG, 500, "IOError", "", "bad image store path");
    int fd = open(dl, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return vf_error_set(&j->err, -errno, 500, "IOError", "", "open \"%s\": %s", dl,
                            strerror(errno));
    snprintf(scratch, sizeof scratch, "%s/tmp", j->dvcr.root);
    struct vf_image_options opts = {
        .quota = j->room,
        .scratch_dir = scratch,
        .progress = on_convert_progress,
        .opaque = j,
    };
    int out = open(outp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) {
        close(fd);
        return vf_error_set(&j->err, -errno, 500, "IOError", "", "create \"%s\": %s", outp,
                            strerror(errno));
    }
    /* A fresh HTTP download may be converted as it arrives; a resumed one
     * (its prefix is already here) and the others are converted after.  A
     * registry pull always starts afresh: emptied here, before the follower
     * could read what an earlier attempt left. */
    bool converted = false;
    if (j->src == SRC_REGISTRY && ftruncate(fd, 0) < 0) {
        rc = vf_error_set(&j->err, -errno, 500, "IOError", "", "truncate \"%s\": %s", dl,
                          strerror(errno));
        close(fd);
        close(out);
        unlink(outp);
        return rc;
    }
    if ((j->src == SRC_HTTP || j->src == SRC_REGISTRY) && fstat(fd, &st) == 0 && st.st_size == 0)
        rc = fetch_and_convert(j, fd, out, &opts, &converted);
    else
        rc = run_fetch(j, fd, &j->err);
    if (rc == 0 && atomic_load(&j->cancel))
        rc = -ECANCELED;
    atomic_store(&j->converting, true);
    enum vf_image_format fmt = VF_IMAGE_FORMAT_RAW;
    if (rc == 0 && !converted) {
        rc = choose_format(j, fd, &opts, &fmt);
        if (rc == 0)
            rc = vf_image_convert(fd, out, fmt, &opts, &j->info, &j->err);
    }
    close(fd);
    if (rc == 0 && atomic_load(&j->cancel))
        rc = -ECANCELED;
    if (rc == 0) {
        snprintf(j->format, sizeof j->format, "%s", vf_image_format_name(fmt));
        rc = vf_dvcr_publish(&j->dvcr, j->uid, out, j->format, j->final, sizeof j->final, &j->err);
    }
    if (rc == 0 && fstat(out, &st) == 0)
        j->stored_bytes = (uint64_t)st.st_blocks * 512;
    if (out >= 0)
        close(out);
    if (rc == 0)
        unlink(dl);
    else
        unlink(outp);
    return rc;
}

void vf_cvi_job_run(void *opaque)
{
    struct import_job *j = opaque;
    j->rc = run_import(j);
    if (j->rc == -ECANCELED)
        vf_error_set(&j->err, -ECANCELED, 409, "Canceled", "", "the import was canceled");
}
