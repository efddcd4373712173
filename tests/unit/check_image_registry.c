#include <config.h>
/* The container registry fetcher (modules/images/import/registry.c) against a
 * real registry on loopback (docker-registry, images pushed with skopeo from
 * OCI layouts made by tests/lib/oci_image.sh) and against http_fixture's
 * token-protected /v2/ for the bearer flow, hostile layers and layers with
 * OCI whiteouts crafted here; plus the protocol parsers on their own. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "testlib.h"
#include "fetchtest.h"
#include "modules/images/import/fetch_internal.h"

static char *dir;
static char reg_addr[64];        /* docker-registry's host:port */
static char v1_digest[80];
static struct fixture fx;        /* /v2/ behind tokens for user:pw */
static char amd_sha[65], arm_sha[65];

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
    refused("nottar", "is not a tar or tar+gzip");
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
