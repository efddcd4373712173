#include <config.h>
/* The container registry fetcher (modules/images/import/registry.c) against a
 * real registry on loopback (docker-registry, images pushed with skopeo from
 * OCI layouts made by tests/lib/oci_image.sh) and against http_fixture's
 * token-protected /v2/ for the bearer flow, hostile layers, layers with OCI
 * whiteouts crafted here, blobs that break off, stall or are corrupt while
 * they stream; plus the protocol parsers on their own. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <archive.h>
#include <archive_entry.h>
#include "testlib.h"
#include "fetchtest.h"
#include "modules/images/import/fetch_internal.h"

static char *dir;
static char reg_addr[64];        /* docker-registry's host:port */
static char v1_digest[80];
static struct fixture fx;        /* /v2/ behind tokens for user:pw */
static char amd_sha[65], arm_sha[65], big_sha[65], late_sha[65];
static char late_layer[65];      /* the blob of big:late's layer */

#define BIG_BYTES (2u << 20)     /* big.raw: a disk file that takes many reads to stream */

static const char *path_of(const char *name)
{
    return ring_fmt("%s/%s", dir, name);
}

static struct vf_fetch_common common(void)
{
    return (struct vf_fetch_common){ .retry_backoff_ms = 50, .max_retries = 2, .stall_timeout_s = 30 };
}

static int pull(const char *image, const char *platform, const char *user, const char *pass, int fd,
                struct vf_fetch_result *res, char *name, struct vf_error *err)
{
    struct vf_fetch_common c = common();
    struct vf_fetch_registry req = { .image = image, .platform = platform, .plain_http = true, .username = user,
                                     .password = pass };
    memset(err, 0, sizeof *err);
    return vf_fetch_registry_run(&req, &c, fd, res, name, 256, err);
}

static const char *on_registry(const char *ref)
{
    return ring_fmt("%s/%s", reg_addr, ref);
}

static const char *on_fixture(const char *ref)
{
    return ring_fmt("127.0.0.1:%u/%s", fx.port, ref);
}

START_TEST(pull_by_tag_oci)
{
    struct vf_fetch_result res;
    struct vf_error err;
    char name[256];
    int fd = scratch_fd(dir);
    ck_assert_msg(pull(on_registry("disk:v1"), NULL, NULL, NULL, fd, &res, name, &err) == 0, "%s", err.message);
    ck_assert_str_eq(name, "amd64.raw");
    ck_assert_str_eq(res.sha256, amd_sha);
    ck_assert_uint_eq(res.bytes, 300000);
    ck_assert(fd_equals_file(fd, path_of("amd64.raw")));
    /* The limit applies to the disk file. */
    struct vf_fetch_common c = common();
    struct vf_fetch_registry req = { .image = on_registry("disk:v1"), .plain_http = true };
    c.max_bytes = 299999;
    ck_assert_int_eq(vf_fetch_registry_run(&req, &c, fd, &res, name, sizeof name, &err), -EFBIG);
    ck_assert_str_eq(err.reason, "TooLarge");
    ck_assert_msg(strstr(err.message, "amd64.raw") && strstr(err.message, "299999"), "%s", err.message);
    ck_assert_uint_eq(fd_size(fd), 0);   /* what came before the limit is gone */
    /* A second pull into the same fd replaces what is there. */
    ck_assert_msg(pull(on_registry("disk:v1"), NULL, NULL, NULL, fd, &res, name, &err) == 0, "%s", err.message);
    ck_assert_uint_eq(fd_size(fd), 300000);
    close(fd);
}
END_TEST

START_TEST(pull_by_digest)
{
    struct vf_fetch_result res;
    struct vf_error err;
    char name[256], ref[160];
    int fd = scratch_fd(dir);
    snprintf(ref, sizeof ref, "disk@%s", v1_digest);
    ck_assert_msg(pull(on_registry(ref), NULL, NULL, NULL, fd, &res, name, &err) == 0, "%s", err.message);
    ck_assert_str_eq(res.sha256, amd_sha);
    /* tag and digest: the digest wins, the tag is only checked. */
    snprintf(ref, sizeof ref, "disk:whatever@%s", v1_digest);
    ck_assert_msg(pull(on_registry(ref), NULL, NULL, NULL, fd, &res, name, &err) == 0, "%s", err.message);
    ck_assert_str_eq(res.sha256, amd_sha);
    /* A digest that is not there. */
    snprintf(ref, sizeof ref, "disk@sha256:%064d", 0);
    ck_assert_int_lt(pull(on_registry(ref), NULL, NULL, NULL, fd, &res, name, &err), 0);
    ck_assert_msg(strstr(err.message, "not found"), "%s", err.message);
    close(fd);
}
END_TEST

START_TEST(pull_docker_v2s2)
{
    struct vf_fetch_result res;
    struct vf_error err;
    char name[256];
    int fd = scratch_fd(dir);
    ck_assert_msg(pull(on_registry("disk:v2s2"), NULL, NULL, NULL, fd, &res, name, &err) == 0, "%s", err.message);
    ck_assert_str_eq(name, "amd64.raw");
    ck_assert_str_eq(res.sha256, amd_sha);
    close(fd);
}
END_TEST

START_TEST(index_picks_platform)
{
    struct vf_fetch_result res;
    struct vf_error err;
    char name[256];
    int fd = scratch_fd(dir);
    ck_assert_msg(pull(on_registry("disk:multi"), NULL, NULL, NULL, fd, &res, name, &err) == 0, "%s", err.message);
    ck_assert_str_eq(name, "amd64.raw");
    ck_assert_str_eq(res.sha256, amd_sha);
    ck_assert_msg(pull(on_registry("disk:multi"), "linux/arm64", NULL, NULL, fd, &res, name, &err) == 0, "%s",
                  err.message);
    ck_assert_str_eq(name, "arm.raw");
    ck_assert_str_eq(res.sha256, arm_sha);
    ck_assert_int_lt(pull(on_registry("disk:multi"), "linux/s390x", NULL, NULL, fd, &res, name, &err), 0);
    ck_assert_msg(strstr(err.message, "no manifest for linux/s390x") && strstr(err.message, "linux/amd64") &&
                  strstr(err.message, "linux/arm64"), "%s", err.message);
    close(fd);
}
END_TEST

START_TEST(single_manifest_platform)
{
    struct vf_fetch_result res;
    struct vf_error err;
    char name[256];
    int fd = scratch_fd(dir);
    /* disk:arm is a single manifest (no index) whose config says linux/arm64. */
    ck_assert_int_eq(pull(on_registry("disk:arm"), NULL, NULL, NULL, fd, &res, name, &err), -EINVAL);
    ck_assert_str_eq(err.reason, "PlatformMismatch");
    ck_assert_msg(strstr(err.message, "built for linux/arm64, not linux/amd64") && strstr(err.message, "disk:arm"),
                  "%s", err.message);
    ck_assert_uint_eq(fd_size(fd), 0);   /* refused before any layer */
    ck_assert_msg(pull(on_registry("disk:arm"), "linux/arm64", NULL, NULL, fd, &res, name, &err) == 0, "%s",
                  err.message);
    ck_assert_str_eq(name, "arm.raw");
    ck_assert_str_eq(res.sha256, arm_sha);
    ck_assert_int_eq(pull(on_registry("disk:v1"), "linux/arm64", NULL, NULL, fd, &res, name, &err), -EINVAL);
    ck_assert_msg(strstr(err.message, "built for linux/amd64, not linux/arm64"), "%s", err.message);
    close(fd);
}
END_TEST

START_TEST(image_config_check)
{
    struct vf_error err;
#define CONFIG_CHECK(json, platform) vf_image_config_check(json, strlen(json), platform, "r/i:t", &err)
    ck_assert_int_eq(CONFIG_CHECK("{\"os\":\"linux\",\"architecture\":\"amd64\"}", NULL), 0);
    ck_assert_int_eq(CONFIG_CHECK("{\"os\":\"linux\",\"architecture\":\"amd64\"}", "linux/amd64"), 0);
    ck_assert_int_eq(CONFIG_CHECK("{\"os\":\"linux\",\"architecture\":\"arm64\"}", NULL), -EINVAL);
    ck_assert_str_eq(err.reason, "PlatformMismatch");
    ck_assert_msg(strstr(err.message, "r/i:t is built for linux/arm64, not linux/amd64"), "%s", err.message);
    ck_assert_int_eq(CONFIG_CHECK("{\"os\":\"windows\",\"architecture\":\"amd64\"}", NULL), -EINVAL);
    /* One of the two missing is a claim for another platform. */
    ck_assert_int_eq(CONFIG_CHECK("{\"architecture\":\"amd64\"}", NULL), -EINVAL);
    ck_assert_msg(strstr(err.message, "built for ?/amd64"), "%s", err.message);
    /* No claim at all (an artifact-like config): nothing to refuse. */
    ck_assert_int_eq(CONFIG_CHECK("{}", NULL), 0);
    /* Variants count when both name one. */
    ck_assert_int_eq(CONFIG_CHECK("{\"os\":\"linux\",\"architecture\":\"arm\",\"variant\":\"v7\"}", "linux/arm"), 0);
    ck_assert_int_eq(CONFIG_CHECK("{\"os\":\"linux\",\"architecture\":\"arm\",\"variant\":\"v7\"}", "linux/arm/v7"), 0);
    ck_assert_int_eq(CONFIG_CHECK("{\"os\":\"linux\",\"architecture\":\"arm\",\"variant\":\"v7\"}", "linux/arm/v6"),
                     -EINVAL);
    ck_assert_msg(strstr(err.message, "linux/arm/v7, not linux/arm/v6"), "%s", err.message);
    ck_assert_int_eq(CONFIG_CHECK("[1,2]", NULL), -EINVAL);
    ck_assert_str_eq(err.reason, "InvalidImage");
    ck_assert_int_eq(CONFIG_CHECK("{\"os\":", NULL), -EINVAL);
    ck_assert_str_eq(err.reason, "InvalidImage");
    ck_assert_int_eq(CONFIG_CHECK("{}", "linux"), -EINVAL);
    ck_assert_int_eq(CONFIG_CHECK("{}", "linux/"), -EINVAL);
#undef CONFIG_CHECK
}
END_TEST

START_TEST(missing_tag)
{
    struct vf_fetch_result res;
    struct vf_error err;
    char name[256];
    int fd = scratch_fd(dir);
    ck_assert_int_eq(pull(on_registry("disk:nope"), NULL, NULL, NULL, fd, &res, name, &err), -ENOENT);
    ck_assert_str_eq(err.reason, "FetchFailed");
    ck_assert_msg(strstr(err.message, "disk:nope not found") && strstr(err.message, "HTTP 404") &&
                  strstr(err.message, "MANIFEST_UNKNOWN"), "%s", err.message);
    ck_assert_int_eq(pull(on_registry("nothere:v1"), NULL, NULL, NULL, fd, &res, name, &err), -ENOENT);
    ck_assert_uint_eq(fd_size(fd), 0);
    close(fd);
}
END_TEST

START_TEST(corrupt_blob)
{
    struct vf_fetch_result res;
    struct vf_error err;
    char name[256];
    int fd = scratch_fd(dir);
    ck_assert_int_eq(pull(on_registry("corrupt:c1"), NULL, NULL, NULL, fd, &res, name, &err), -EBADMSG);
    ck_assert_str_eq(err.reason, "ChecksumMismatch");
    ck_assert_msg(strstr(err.message, "the manifest says"), "%s", err.message);
    ck_assert_uint_eq(fd_size(fd), 0);   /* nothing extracted from it */
    close(fd);
}
END_TEST

START_TEST(bearer_token_flow)
{
    struct vf_fetch_result res;
    struct vf_error err;
    char name[256];
    int fd = scratch_fd(dir);
    ck_assert_msg(pull(on_fixture("bad:good"), NULL, "user", "pw", fd, &res, name, &err) == 0, "%s", err.message);
    ck_assert_str_eq(name, "ok.raw");
    ck_assert(fd_equals_file(fd, path_of("ok.raw")));
    ck_assert(fixture_logged(&fx, "REQ GET /token host=127.0.0.1"));
    ck_assert(fixture_logged(&fx, "/manifests/good host=") && fixture_logged(&fx, "auth=bearer"));
    ck_assert_int_eq(pull(on_fixture("bad:good"), NULL, NULL, NULL, fd, &res, name, &err), -EACCES);
    ck_assert_str_eq(err.reason, "Unauthorized");
    ck_assert_msg(strstr(err.message, "anonymous"), "%s", err.message);
    ck_assert_int_eq(pull(on_fixture("bad:good"), NULL, "user", "wrong", fd, &res, name, &err), -EACCES);
    ck_assert_msg(strstr(err.message, "refused the credentials"), "%s", err.message);
    close(fd);
}
END_TEST

static void refused(const char *tag, const char *words)
{
    struct vf_fetch_result res;
    struct vf_error err;
    char name[256], ref[64];
    int fd = scratch_fd(dir);
    snprintf(ref, sizeof ref, "bad:%s", tag);
    ck_assert_int_lt(pull(on_fixture(ref), NULL, "user", "pw", fd, &res, name, &err), 0);
    ck_assert_str_eq(err.reason, "InvalidImage");
    ck_assert_msg(strstr(err.message, words), "%s: \"%s\" not in: %s", tag, words, err.message);
    close(fd);
}

START_TEST(hostile_layers)
{
    refused("twodisk", "several files under /disk/");
    refused("twolayers", "several files under /disk/");
    refused("symlink", "is a symbolic link");
    refused("hardlink", "is a hard link");
    refused("dotdot", "has a \"..\" component");
    refused("abs", "is an absolute path");
    refused("chardev", "is a device");
    refused("nested", "not directly under /disk/");
    refused("nodisk", "has no file under /disk/");
    refused("nottar", "is not a tar (plain, gzip or zstd)");
}
END_TEST

/* Pulls bad:TAG from the fixture: Ok, the disk file is NAME holding DATA. */
static void stacked(const char *tag, const char *want_name, const char *want_data)
{
    struct vf_fetch_result res;
    struct vf_error err;
    char name[256], ref[64];
    int fd = scratch_fd(dir);
    snprintf(ref, sizeof ref, "bad:%s", tag);
    ck_assert_msg(pull(on_fixture(ref), NULL, "user", "pw", fd, &res, name, &err) == 0, "%s: %s", tag, err.message);
    ck_assert_str_eq(name, want_name);
    ck_assert_uint_eq(fd_size(fd), strlen(want_data));
    ck_assert_uint_eq(res.bytes, strlen(want_data));
    char buf[64] = "";
    ck_assert_int_eq(pread(fd, buf, sizeof buf - 1, 0), (ssize_t)strlen(want_data));
    ck_assert_str_eq(buf, want_data);
    ck_assert_str_eq(res.sha256, sh_out("printf %%s '%s' | sha256sum | cut -d' ' -f1", want_data));
    close(fd);
}

START_TEST(whiteouts)
{
    /* A later layer deletes the earlier disk file (its whiteout after its own
     * new file in the tar), clears disk/ (opaque), removes disk/ itself and
     * brings it back, or replaces the file under the same name. */
    stacked("wh_file", "new.raw", "the new disk\n");
    stacked("wh_opaque", "new.raw", "the new disk\n");
    stacked("wh_dir", "new.raw", "the new disk\n");
    stacked("replaced", "old.raw", "the new disk\n");
    /* A whiteout never deletes what its own layer brings. */
    stacked("wh_same_layer", "old.raw", "the old disk\n");
    /* A whiteout of another name deletes nothing: two files. */
    refused("wh_other", "several files under /disk/ (\"old.raw\" and \"new.raw\")");
    /* Deleted and nothing in its place. */
    refused("wh_all", "has no file under /disk/");
    refused("wh_empty", "is a whiteout that names nothing");
}
END_TEST

/* ---- streaming: what a pull does while it runs ----------------------- */

/* Watches a pull through its progress callback: how big its output got
 * while it ran, whether progress went back (the output was voided), and
 * whether any file was opened meanwhile (there must be no scratch file:
 * the layer streams from the socket into libarchive). */
struct watch {
    int fd;                  /* the pull's output */
    bool had_file[1024];     /* fds open on a file before the pull */
    uint64_t max_size, last_done;
    unsigned calls, dips, files_opened;
    char opened[256];        /* the first such file */
};

/* Calls fn(w, fd, target) for every fd open on a file (not a socket, pipe...). */
static void each_file_fd(struct watch *w, void (*fn)(struct watch *, int, const char *))
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;
    char link[64], target[512];
    if (!d)
        return;
    while ((de = readdir(d))) {
        int n = atoi(de->d_name);
        if (de->d_name[0] == '.' || n == dirfd(d) || n < 0 || n >= 1024)
            continue;
        snprintf(link, sizeof link, "/proc/self/fd/%d", n);
        ssize_t len = readlink(link, target, sizeof target - 1);
        if (len <= 0)
            continue;
        target[len] = '\0';
        if (target[0] == '/')
            fn(w, n, target);
    }
    closedir(d);
}

static void note_before(struct watch *w, int fd, const char *target)
{
    (void)target;
    w->had_file[fd] = true;
}

static void note_new(struct watch *w, int fd, const char *target)
{
    if (w->had_file[fd])
        return;
    if (!w->files_opened++)
        snprintf(w->opened, sizeof w->opened, "fd %d: %s", fd, target);
}

static void on_watch(void *opaque, uint64_t done, uint64_t total)
{
    struct watch *w = opaque;
    struct stat st;
    (void)total;
    w->calls++;
    if (done < w->last_done)
        w->dips++;
    w->last_done = done;
    if (fstat(w->fd, &st) == 0 && (uint64_t)st.st_size > w->max_size)
        w->max_size = (uint64_t)st.st_size;
    each_file_fd(w, note_new);
}

/* Pulls image (from the fixture: user:pw; else anonymous) into a fresh fd
 * (w->fd, close it) with *w watching. */
static int watched_pull(const char *image, int stall_s, struct watch *w, struct vf_fetch_result *res,
                        char *name, struct vf_error *err)
{
    struct vf_fetch_common c = common();
    bool fixture = strncmp(image, on_fixture(""), strlen(on_fixture(""))) == 0;
    struct vf_fetch_registry req = { .image = image, .plain_http = true, .username = fixture ? "user" : NULL,
                                     .password = fixture ? "pw" : NULL };
    memset(w, 0, sizeof *w);
    memset(err, 0, sizeof *err);
    w->fd = scratch_fd(dir);
    each_file_fd(w, note_before);
    c.progress = on_watch;
    c.opaque = w;
    if (stall_s)
        c.stall_timeout_s = stall_s;
    return vf_fetch_registry_run(&req, &c, w->fd, res, name, 256, err);
}

START_TEST(streamed_no_scratch)
{
    struct vf_fetch_result res;
    struct vf_error err;
    struct watch w;
    char name[256];
    /* One gzip layer whose disk file comes last, after 1 MiB of other files. */
    ck_assert_msg(watched_pull(on_fixture("big:late"), 0, &w, &res, name, &err) == 0, "%s", err.message);
    ck_assert_str_eq(name, "late.raw");
    ck_assert_str_eq(res.sha256, late_sha);
    ck_assert(fd_equals_file(w.fd, path_of("late.raw")));
    ck_assert_uint_gt(w.calls, 3);
    ck_assert_msg(w.files_opened == 0, "%u files opened during the pull, e.g. %s", w.files_opened, w.opened);
    ck_assert_uint_eq(w.dips, 0);
    /* The real registry's blob, and a zstd layer, likewise. */
    close(w.fd);
    ck_assert_msg(watched_pull(on_registry("disk:v1"), 0, &w, &res, name, &err) == 0, "%s", err.message);
    ck_assert_str_eq(res.sha256, amd_sha);
    ck_assert_uint_gt(w.calls, 0);
    ck_assert_msg(w.files_opened == 0, "%u files opened during the pull, e.g. %s", w.files_opened, w.opened);
    close(w.fd);
    ck_assert_msg(watched_pull(on_fixture("big:zstd"), 0, &w, &res, name, &err) == 0, "%s", err.message);
    ck_assert_str_eq(name, "big.raw");
    ck_assert_str_eq(res.sha256, big_sha);
    ck_assert_msg(w.files_opened == 0, "%u files opened during the pull, e.g. %s", w.files_opened, w.opened);
    close(w.fd);
}
END_TEST

START_TEST(streamed_digest_mismatch)
{
    struct vf_fetch_result res;
    struct vf_error err;
    struct watch w;
    char name[256];
    /* A plain tar layer with a byte changed in the middle of its disk file:
     * libarchive has nothing to object to, only the digest at the end does.
     * By then the disk file was written (the output grew); it must be gone.
     * Served at 1 MiB/s, so that progress is told while the output grows
     * (one read of the socket may otherwise bring the whole layer). */
    ck_assert_int_eq(watched_pull(on_fixture("fault/slow-1048576/mismatch:one"), 0, &w, &res, name,
                                  &err), -EBADMSG);
    ck_assert_str_eq(err.reason, "ChecksumMismatch");
    ck_assert_msg(strstr(err.message, "the manifest says"), "%s", err.message);
    ck_assert_uint_ge(w.max_size, BIG_BYTES / 2);
    ck_assert_uint_eq(fd_size(w.fd), 0);
    close(w.fd);
    /* The disk file's layer is sound; a later layer with no disk entry is
     * corrupt.  Its bytes are not stored but still hashed: refused, and the
     * complete, verified disk file of the first layer goes too. */
    ck_assert_int_eq(watched_pull(on_fixture("mismatch:two"), 0, &w, &res, name, &err), -EBADMSG);
    ck_assert_str_eq(err.reason, "ChecksumMismatch");
    ck_assert_uint_eq(w.max_size, BIG_BYTES);
    ck_assert_uint_eq(fd_size(w.fd), 0);
    close(w.fd);
}
END_TEST

START_TEST(streamed_whiteout)
{
    struct vf_fetch_result res;
    struct vf_error err;
    struct watch w;
    char name[256];
    /* Two layers: the lower one's 2 MiB disk file is written out, then the
     * upper one deletes it and brings another.  The output was emptied
     * once on the way, and progress says so (a follower starts over). */
    ck_assert_msg(watched_pull(on_fixture("big:wh"), 0, &w, &res, name, &err) == 0, "%s", err.message);
    ck_assert_str_eq(name, "late.raw");
    ck_assert_str_eq(res.sha256, late_sha);
    ck_assert(fd_equals_file(w.fd, path_of("late.raw")));
    ck_assert_uint_eq(w.dips, 1);
    ck_assert_msg(w.files_opened == 0, "%u files opened during the pull, e.g. %s", w.files_opened, w.opened);
    close(w.fd);
}
END_TEST

/* Pulls fault/FAULT/big:late: the right disk file, after retries, one of
 * which asked for the layer from byte 300000 on. */
static void faulty(const char *fault, int stall_s)
{
    struct vf_fetch_result res;
    struct vf_error err;
    struct watch w;
    char name[256], ref[128];
    snprintf(ref, sizeof ref, "fault/%s/big:late", fault);
    ck_assert_msg(watched_pull(on_fixture(ref), stall_s, &w, &res, name, &err) == 0, "%s: %s", fault, err.message);
    ck_assert_str_eq(name, "late.raw");
    ck_assert_str_eq(res.sha256, late_sha);
    ck_assert(fd_equals_file(w.fd, path_of("late.raw")));
    ck_assert_msg(res.retries >= 1, "%s: %d retries", fault, res.retries);
    /* Continued, never restarted: the output only grew. */
    ck_assert_uint_eq(w.dips, 0);
    const char *retry = ring_fmt("REQ GET /v2/fault/%s/big/blobs/sha256:%s host=127.0.0.1:%u auth=bearer "
                                 "range=bytes=300000-", fault, late_layer, fx.port);
    ck_assert_msg(fixture_logged(&fx, retry), "no \"%s\" in %s", retry, fx.log);
    close(w.fd);
}

START_TEST(streamed_retries)
{
    /* Cut off after 300000 bytes: asked again from there. */
    faulty("cut-300000", 0);
    /* ... by a server that ignores Range: the whole blob comes again and
     * the 300000 bytes libarchive has already are dropped on the way. */
    faulty("cut-300000-norange", 0);
    /* A stall after 300000 bytes, then the layer's download starts over
     * from its first byte (Range ignored): still one pass for libarchive. */
    faulty("stall-300000-norange", 1);
}
END_TEST

START_TEST(reference_parse)
{
    char host[256], repo[256], ref[160];
    struct vf_error err;
    static const struct {
        const char *in, *host, *repo, *ref;
    } ok[] = {
        { "127.0.0.1:5000/disk", "127.0.0.1:5000", "disk", "latest" },
        { "registry.example.com/a/b-c/d_e:v1.2", "registry.example.com", "a/b-c/d_e", "v1.2" },
        { "localhost/x:tag", "localhost", "x", "tag" },
        { "[::1]:5000/x", "[::1]:5000", "x", "latest" },
        { "h.io/x@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "h.io", "x",
          "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" },
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        ck_assert_msg(vf_registry_reference_parse(ok[i].in, host, sizeof host, repo, sizeof repo, ref, sizeof ref,
                                                  &err) == 0, "%s: %s", ok[i].in, err.message);
        ck_assert_str_eq(host, ok[i].host);
        ck_assert_str_eq(repo, ok[i].repo);
        ck_assert_str_eq(ref, ok[i].ref);
    }
    static const char *const bad[] = {
        "ubuntu:22.04", "library/ubuntu", "", "h.io/", "h.io/UPPER", "h.io/a//b", "h.io/x:", "h.io/x:-bad",
        "h.io/x@sha256:abc", "h.io/x@md5:0123", "h.io:99999/x", "h.io/x/", "-h.io/x", "h.io/.x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(vf_registry_reference_parse(bad[i], host, sizeof host, repo, sizeof repo, ref, sizeof ref,
                                                  &err) == -EINVAL, "accepted \"%s\"", bad[i]);
        ck_assert_str_eq(err.field, "spec.dataSource.containerImage.image");
    }
    ck_assert_int_eq(vf_registry_reference_parse("ubuntu:22.04", host, sizeof host, repo, sizeof repo, ref,
                                                 sizeof ref, &err), -EINVAL);
    ck_assert_msg(strstr(err.message, "names no registry host"), "%s", err.message);
}
END_TEST

START_TEST(www_authenticate_parse)
{
    struct vf_auth_challenge c;
    ck_assert_int_eq(vf_www_authenticate_parse(
                         "Bearer realm=\"https://auth.example.com/token\",service=\"registry.example.com\","
                         "scope=\"repository:a/b:pull\"", &c), 0);
    ck_assert_int_eq(c.scheme, VF_AUTH_BEARER);
    ck_assert_str_eq(c.realm, "https://auth.example.com/token");
    ck_assert_str_eq(c.service, "registry.example.com");
    ck_assert_str_eq(c.scope, "repository:a/b:pull");
    /* Any order, spaces, unquoted values, escapes, case. */
    ck_assert_int_eq(vf_www_authenticate_parse("bearer  scope=repository:x:pull , REALM=\"http://h/t\\\"q\"", &c), 0);
    ck_assert_str_eq(c.realm, "http://h/t\"q");
    ck_assert_str_eq(c.scope, "repository:x:pull");
    ck_assert_str_eq(c.service, "");
    ck_assert_int_eq(vf_www_authenticate_parse("Basic realm=\"registry\"", &c), 0);
    ck_assert_int_eq(c.scheme, VF_AUTH_BASIC);
    ck_assert_int_eq(vf_www_authenticate_parse("Negotiate", &c), 0);
    ck_assert_int_eq(c.scheme, VF_AUTH_OTHER);
    static const char *const bad[] = { "", "Bearer service=\"x\"", "Bearer realm=\"unterminated",
                                       "Bearer realm", "Bearer realm=\"a\" junk", "Bearer realm=\"a\r\nX: y\"" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(vf_www_authenticate_parse(bad[i], &c) == -EINVAL, "accepted \"%s\"", bad[i]);
}
END_TEST

START_TEST(manifest_parse)
{
    struct vf_manifest m;
    struct vf_error err;
    const char *digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    char body[2048];
    snprintf(body, sizeof body,
             "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"c\",\"digest\":\"%s\",\"size\":5},"
             "\"layers\":[{\"mediaType\":\"l\",\"digest\":\"%s\",\"size\":7}]}", digest, digest);
    /* No mediaType member: the response's Content-Type says which. */
    ck_assert_msg(vf_manifest_parse(body, strlen(body), VF_MT_DOCKER_MANIFEST "; charset=utf-8", &m, &err) == 0,
                  "%s", err.message);
    ck_assert(!m.is_index);
    ck_assert_str_eq(m.media_type, VF_MT_DOCKER_MANIFEST);
    ck_assert_uint_eq(m.n_items, 1);
    ck_assert_uint_eq(m.items[0].size, 7);
    ck_assert_uint_eq(m.config.size, 5);
    vf_manifest_free(&m);

    snprintf(body, sizeof body, "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"manifests\":["
             "{\"mediaType\":\"m\",\"digest\":\"%s\",\"size\":1,\"platform\":{\"os\":\"linux\",\"architecture\":\"arm\",\"variant\":\"v7\"}},"
             "{\"mediaType\":\"m\",\"digest\":\"%s\",\"size\":2,\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}}]}",
             VF_MT_DOCKER_LIST, digest, digest);
    ck_assert_msg(vf_manifest_parse(body, strlen(body), "application/json", &m, &err) == 0, "%s", err.message);
    ck_assert(m.is_index);
    size_t pick = 9;
    ck_assert_int_eq(vf_manifest_pick(&m, NULL, &pick, &err), 0);
    ck_assert_uint_eq(pick, 1);
    ck_assert_int_eq(vf_manifest_pick(&m, "linux/arm/v7", &pick, &err), 0);
    ck_assert_uint_eq(pick, 0);
    ck_assert_int_eq(vf_manifest_pick(&m, "linux/arm/v6", &pick, &err), -ENOENT);
    ck_assert_int_eq(vf_manifest_pick(&m, "linux", &pick, &err), -EINVAL);
    vf_manifest_free(&m);

    static const char *const bad[] = {
        "", "[]", "{\"schemaVersion\":1,\"fsLayers\":[]}", "{\"schemaVersion\":2}",
        "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"layers\":[]}",
        "{\"schemaVersion\":2,\"mediaType\":\"text/html\",\"layers\":[]}",
        "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"m\",\"digest\":\"sha256:abc\",\"size\":1}]}",
        "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"m\",\"digest\":\"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\",\"size\":-1}]}",
        "{\"schemaVersion\":2,\"manifests\":[] trailing",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(vf_manifest_parse(bad[i], strlen(bad[i]), NULL, &m, &err) < 0, "accepted %s", bad[i]);
        ck_assert_str_eq(err.reason, "InvalidImage");
    }
    /* The body's mediaType and the Content-Type must agree. */
    snprintf(body, sizeof body, "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"manifests\":[]}", VF_MT_OCI_INDEX);
    ck_assert_int_lt(vf_manifest_parse(body, strlen(body), VF_MT_OCI_MANIFEST, &m, &err), 0);
    ck_assert_msg(strstr(err.message, "served as"), "%s", err.message);
}
END_TEST

/* ---- hostile layers, written here as raw ustar ----------------------- */

static void tar_entry(FILE *f, const char *name, char type, const char *data, size_t len, const char *link)
{
    unsigned char h[512] = { 0 };
    unsigned sum = 0;
    snprintf((char *)h, 100, "%s", name);
    snprintf((char *)h + 100, 8, "%07o", 0644);
    snprintf((char *)h + 108, 8, "%07o", 0);
    snprintf((char *)h + 116, 8, "%07o", 0);
    snprintf((char *)h + 124, 12, "%011zo", len);
    snprintf((char *)h + 136, 12, "%011o", 0);
    memset(h + 148, ' ', 8);
    h[156] = (unsigned char)type;
    if (link)
        snprintf((char *)h + 157, 100, "%s", link);
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    for (int i = 0; i < 512; i++)
        sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
    fwrite(h, 1, 512, f);
    if (len) {
        static const char zeros[512];
        fwrite(data, 1, len, f);
        fwrite(zeros, 1, (512 - len % 512) % 512, f);
    }
}

static FILE *tar_open(const char *name)
{
    FILE *f = fopen(path_of(name), "we");
    if (!f) {
        printf("Bail out! cannot write %s\n", name);
        exit(EXIT_FAILURE);
    }
    return f;
}

static void tar_close(FILE *f)
{
    static const char zeros[1024];
    fwrite(zeros, 1, sizeof zeros, f);
    fclose(f);
}

static void add_image(const char *tar, const char *tag, bool gzip)
{
    if (gzip)
        setup_sh("gzip -n %s && mv %s.gz %s", path_of(tar), path_of(tar), path_of(tar));
    setup_sh("sh %s/tests/lib/oci_image.sh add_layer_image %s/reg/bad %s %s", getenv("top_srcdir"), dir,
             path_of(tar), tag);
}

static void add_layers(const char *tag, const char *lower, const char *upper)
{
    setup_sh("cd %s && sh %s/tests/lib/oci_image.sh add_layers_image reg/bad %s amd64 %s %s", dir,
             getenv("top_srcdir"), tag, lower, upper);
}

/* Two-layer images whose upper layer carries OCI whiteouts. */
static void make_whiteouts(void)
{
    const char *old_data = "the old disk\n", *new_data = "the new disk\n";
    size_t n = strlen(old_data);
    FILE *f;

    f = tar_open("lower.tar");
    tar_entry(f, "disk/", '5', NULL, 0, NULL);
    tar_entry(f, "disk/old.raw", '0', old_data, n, NULL);
    tar_close(f);

    f = tar_open("wh_file.tar");   /* the whiteout after the new file */
    tar_entry(f, "disk/new.raw", '0', new_data, n, NULL);
    tar_entry(f, "disk/.wh.old.raw", '0', NULL, 0, NULL);
    tar_close(f);
    add_layers("wh_file", "lower.tar", "wh_file.tar");

    f = tar_open("wh_opaque.tar");
    tar_entry(f, "./disk/.wh..wh..opq", '0', NULL, 0, NULL);
    tar_entry(f, "./disk/new.raw", '0', new_data, n, NULL);
    tar_close(f);
    add_layers("wh_opaque", "lower.tar", "wh_opaque.tar");

    f = tar_open("wh_dir.tar");
    tar_entry(f, ".wh.disk", '0', NULL, 0, NULL);
    tar_entry(f, "disk/", '5', NULL, 0, NULL);
    tar_entry(f, "disk/new.raw", '0', new_data, n, NULL);
    tar_close(f);
    add_layers("wh_dir", "lower.tar", "wh_dir.tar");

    f = tar_open("replaced.tar");
    tar_entry(f, "disk/old.raw", '0', new_data, n, NULL);
    tar_close(f);
    add_layers("replaced", "lower.tar", "replaced.tar");

    f = tar_open("wh_same.tar");   /* one layer: a file and its own whiteout */
    tar_entry(f, "disk/old.raw", '0', old_data, n, NULL);
    tar_entry(f, "disk/.wh.old.raw", '0', NULL, 0, NULL);
    tar_close(f);
    f = tar_open("etc.tar");
    tar_entry(f, "etc/hostname", '0', "x\n", 2, NULL);
    tar_close(f);
    add_layers("wh_same_layer", "wh_same.tar", "etc.tar");

    f = tar_open("wh_other.tar");
    tar_entry(f, "disk/.wh.other.raw", '0', NULL, 0, NULL);
    tar_entry(f, "disk/new.raw", '0', new_data, n, NULL);
    tar_close(f);
    add_layers("wh_other", "lower.tar", "wh_other.tar");

    f = tar_open("wh_all.tar");
    tar_entry(f, "disk/.wh.old.raw", '0', NULL, 0, NULL);
    tar_close(f);
    add_layers("wh_all", "lower.tar", "wh_all.tar");

    f = tar_open("wh_empty.tar");
    tar_entry(f, "disk/.wh.", '0', NULL, 0, NULL);
    tar_close(f);
    add_layers("wh_empty", "lower.tar", "wh_empty.tar");
}

/* A tar.zst of one file, written with libarchive (no zstd tool needed). */
static void write_zstd_tar(const char *tar, const char *entry, const char *file)
{
    static char buf[BIG_BYTES];
    FILE *f = fopen(file, "re");
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    struct archive *a = archive_write_new();
    struct archive_entry *e = archive_entry_new();
    if (f)
        fclose(f);
    if (!a || !e || n == 0 || archive_write_add_filter_zstd(a) != ARCHIVE_OK ||
        archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
        archive_write_open_filename(a, path_of(tar)) != ARCHIVE_OK) {
        printf("Bail out! cannot write %s: %s\n", tar, a ? archive_error_string(a) : "no memory");
        exit(EXIT_FAILURE);
    }
    archive_entry_set_pathname(e, entry);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, (la_int64_t)n);
    if (archive_write_header(a, e) != ARCHIVE_OK || archive_write_data(a, buf, n) != (la_ssize_t)n ||
        archive_write_close(a) != ARCHIVE_OK) {
        printf("Bail out! cannot write %s: %s\n", tar, archive_error_string(a));
        exit(EXIT_FAILURE);
    }
    archive_entry_free(e);
    archive_write_free(a);
}

/* Images of 2 MiB disk files, in the fixture's repositories big (sound) and
 * mismatch (a blob changed after it was hashed). */
static void make_big(void)
{
    const char *src = getenv("top_srcdir"), *T = "--owner=0 --group=0 --numeric-owner --mtime=@0";
    /* late.raw comes after other files; a gzip layer. */
    setup_sh("cd %s && mkdir -p late/etc late/disk && cp filler.bin late/etc/filler && echo x >late/etc/hostname && "
             "cp late.raw late/disk/ && tar %s -C late -cf late.tar etc/filler etc/hostname disk/late.raw && "
             "gzip -n -1 late.tar && sh %s/tests/lib/oci_image.sh add_layer_image reg/big late.tar.gz late",
             dir, T, src);
    snprintf(late_layer, sizeof late_layer, "%s", sh_out("sha256sum %s | cut -c1-64", path_of("late.tar.gz")));
    /* The lower layer's big.raw deleted by the upper layer, which brings late.raw. */
    setup_sh("cd %s && mkdir -p low/disk up/disk && cp big.raw low/disk/ && cp late.raw up/disk/ && "
             ": >up/disk/.wh.big.raw && tar %s -C low -cf low.tar disk/big.raw && "
             "tar %s -C up -cf up.tar disk/.wh.big.raw disk/late.raw && gzip -n -1 low.tar up.tar && "
             "sh %s/tests/lib/oci_image.sh add_layers_image reg/big wh amd64 low.tar.gz up.tar.gz",
             dir, T, T, src);
    write_zstd_tar("zstd.tar", "disk/big.raw", path_of("big.raw"));
    setup_sh("cd %s && sh %s/tests/lib/oci_image.sh add_layer_image reg/big zstd.tar zstd", dir, src);
    /* mismatch:one, a plain tar layer whose disk file has 4 bytes changed
     * at 1 MiB once it is in the layout; mismatch:two, a sound disk layer
     * under a plain layer of other files changed likewise. */
    setup_sh("cd %s && tar %s -C low -cf one.tar disk/big.raw && "
             "sh %s/tests/lib/oci_image.sh add_layer_image reg/mismatch one.tar one && "
             "f=reg/mismatch/blobs/sha256/$(sha256sum one.tar | cut -c1-64) && test -f $f && "
             "printf ZZZZ | dd of=$f bs=1 seek=1048576 conv=notrunc 2>/dev/null", dir, T, src);
    setup_sh("cd %s && tar %s -C low -cf disk.tar disk/big.raw && gzip -n -1 disk.tar && "
             "tar %s -C late -cf etc.tar etc/filler && cp etc.tar etc.orig && "
             "sh %s/tests/lib/oci_image.sh add_layers_image reg/mismatch two amd64 disk.tar.gz etc.tar && "
             "f=reg/mismatch/blobs/sha256/$(sha256sum etc.orig | cut -c1-64) && test -f $f && "
             "printf ZZZZ | dd of=$f bs=1 seek=600000 conv=notrunc 2>/dev/null", dir, T, T, src);
}

static void make_hostile(void)
{
    const char *data = "disk bytes\n";
    size_t n = strlen(data);
    FILE *f;

    f = tar_open("good.tar");   /* ./ prefixes, directories, other files: fine */
    tar_entry(f, "./", '5', NULL, 0, NULL);
    tar_entry(f, "./etc/", '5', NULL, 0, NULL);
    tar_entry(f, "./etc/hostname", '0', "x\n", 2, NULL);
    tar_entry(f, "./disk/", '5', NULL, 0, NULL);
    tar_entry(f, "./disk/ok.raw", '0', data, n, NULL);
    tar_close(f);
    add_image("good.tar", "good", true);
    f = fopen(path_of("ok.raw"), "we");
    fputs(data, f);
    fclose(f);

    f = tar_open("twodisk.tar");
    tar_entry(f, "disk/a.raw", '0', data, n, NULL);
    tar_entry(f, "disk/b.raw", '0', data, n, NULL);
    tar_close(f);
    add_image("twodisk.tar", "twodisk", false);

    f = tar_open("symlink.tar");
    tar_entry(f, "disk/x.raw", '2', NULL, 0, "/etc/shadow");
    tar_close(f);
    add_image("symlink.tar", "symlink", true);

    f = tar_open("hardlink.tar");
    tar_entry(f, "disk/x.raw", '1', NULL, 0, "etc/hostname");
    tar_close(f);
    add_image("hardlink.tar", "hardlink", false);

    f = tar_open("dotdot.tar");
    tar_entry(f, "disk/../../x", '0', data, n, NULL);
    tar_close(f);
    add_image("dotdot.tar", "dotdot", true);

    f = tar_open("abs.tar");
    tar_entry(f, "/disk/x.raw", '0', data, n, NULL);
    tar_close(f);
    add_image("abs.tar", "abs", false);

    f = tar_open("chardev.tar");
    tar_entry(f, "disk/x.raw", '3', NULL, 0, NULL);
    tar_close(f);
    add_image("chardev.tar", "chardev", false);

    f = tar_open("nested.tar");
    tar_entry(f, "disk/sub/x.raw", '0', data, n, NULL);
    tar_close(f);
    add_image("nested.tar", "nested", false);

    f = tar_open("nodisk.tar");
    tar_entry(f, "etc/hostname", '0', "x\n", 2, NULL);
    tar_close(f);
    add_image("nodisk.tar", "nodisk", true);

    f = tar_open("nottar.tar");
    fputs("this is not a tar archive at all, just some text that is long enough to look at\n", f);
    fclose(f);
    add_image("nottar.tar", "nottar", false);

    /* Two layers, one disk file each. */
    f = tar_open("one.tar");
    tar_entry(f, "disk/one.raw", '0', data, n, NULL);
    tar_close(f);
    f = tar_open("two.tar");
    tar_entry(f, "disk/two.raw", '0', data, n, NULL);
    tar_close(f);
    setup_sh("cd %s && sh %s/tests/lib/oci_image.sh add_layers_image reg/bad twolayers amd64 one.tar two.tar", dir,
             getenv("top_srcdir"));
    make_whiteouts();
}

static Suite *suite(void)
{
    const struct fetch_case cases[] = {
        { "by_tag", pull_by_tag_oci },
        { "by_digest", pull_by_digest },
        { "v2s2", pull_docker_v2s2 },
        { "index", index_picks_platform },
        { "platform", single_manifest_platform },
        { "config_check", image_config_check },
        { "whiteouts", whiteouts },
        { "missing", missing_tag },
        { "corrupt", corrupt_blob },
        { "bearer", bearer_token_flow },
        { "hostile", hostile_layers },
        { "streamed", streamed_no_scratch },
        { "streamed_mismatch", streamed_digest_mismatch },
        { "streamed_whiteout", streamed_whiteout },
        { "streamed_retries", streamed_retries },
        { "reference", reference_parse },
        { "www_authenticate", www_authenticate_parse },
        { "manifest", manifest_parse },
    };
    return fetch_suite("image_registry", cases, sizeof cases / sizeof cases[0]);
}

int main(void)
{
    const char *src = getenv("top_srcdir");
    int rc;
    if (!src || !*src)
        setenv("top_srcdir", ".", 1);
    src = getenv("top_srcdir");
    dir = setup_tmpdir();
    write_sample(path_of("amd64.raw"), 300000, 11);
    write_sample(path_of("arm.raw"), 200000, 12);
    write_sample(path_of("corrupt.raw"), 250000, 13);
    snprintf(amd_sha, sizeof amd_sha, "%s", sh_out("sha256sum %s | cut -d' ' -f1", path_of("amd64.raw")));
    snprintf(arm_sha, sizeof arm_sha, "%s", sh_out("sha256sum %s | cut -d' ' -f1", path_of("arm.raw")));
    write_sample(path_of("big.raw"), BIG_BYTES, 14);
    write_sample(path_of("late.raw"), BIG_BYTES, 15);
    write_sample(path_of("filler.bin"), 1u << 20, 16);
    snprintf(big_sha, sizeof big_sha, "%s", sh_out("sha256sum %s | cut -d' ' -f1", path_of("big.raw")));
    snprintf(late_sha, sizeof late_sha, "%s", sh_out("sha256sum %s | cut -d' ' -f1", path_of("late.raw")));

    /* The real registry, and images pushed to it as OCI and as Docker v2s2. */
    setup_sh("cd %s && O=%s/tests/lib/oci_image.sh && sh $O make_disk_image L amd64.raw v1 && "
             "sh $O make_disk_image L arm.raw arm arm64 && sh $O make_index L multi v1 arm && "
             "sh $O make_disk_image L2 corrupt.raw c1", dir, src);
    snprintf(v1_digest, sizeof v1_digest, "%s",
             sh_out("sh %s/tests/lib/oci_image.sh digest %s/L v1", src, dir));
    snprintf(reg_addr, sizeof reg_addr, "%s", sh_out("sh %s/tests/lib/registry.sh up %s/registry", src, dir));
    if (!strchr(reg_addr, ':')) {
        printf("Bail out! the registry did not start; see %s/registry/registry.log\n", dir);
        return EXIT_FAILURE;
    }
    setup_sh("cd %s && C='skopeo copy -q --dest-tls-verify=false' && "
             "$C oci:L:v1 docker://%s/disk:v1 && $C --format v2s2 oci:L:v1 docker://%s/disk:v2s2 && "
             "$C --all oci:L:multi docker://%s/disk:multi && $C oci:L2:c1 docker://%s/corrupt:c1 && "
             "$C oci:L:arm docker://%s/disk:arm",
             dir, reg_addr, reg_addr, reg_addr, reg_addr, reg_addr);
    /* Corrupt the pushed layer (the largest blob of L2) in the registry's storage. */
    setup_sh("cd %s && h=$(ls -S L2/blobs/sha256 | head -n1) && "
             "f=registry/storage/docker/registry/v2/blobs/sha256/$(echo $h | cut -c1-2)/$h/data && "
             "test -f $f && printf ZZZZ | dd of=$f bs=1 seek=1000 conv=notrunc 2>/dev/null", dir);

    /* The fixture's registry: hostile layers behind the token flow. */
    setup_sh("mkdir -p %s/reg", dir);
    make_hostile();
    make_big();
    const char *token_args[] = { "--token-auth", "user:pw", NULL };
    fixture_start(&fx, path_of("reg"), dir, "registry-fixture", token_args);

    rc = vf_test_run(suite());
    fixture_stop(&fx);
    setup_sh("sh %s/tests/lib/registry.sh down %s/registry", src, dir);
    if (rc == EXIT_SUCCESS)
        vf_test_rmtree(dir);
    else
        fprintf(stderr, "kept %s for the logs\n", dir);
    free(dir);
    return rc;
}
