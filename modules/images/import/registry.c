#include <config.h>
/* The container registry fetcher: an OCI distribution API client that pulls
 * the disk file out of an image built FROM scratch with it at /disk/<file>.
 *
 * Manifest (OCI or Docker v2 schema 2; an index or manifest list is resolved
 * to the requested platform, a single manifest's config must name that
 * platform or none), then each layer blob into an unlinked scratch
 * file, its sha256 checked against the manifest's digest before libarchive
 * reads a byte of it, then the disk file out of it into the caller's fd.
 * Authentication follows the registry's 401: a Bearer challenge sends us to
 * its token service (with the user's credentials, if any), a Basic one gets
 * the credentials directly.  Tokens and credentials go to the registry's
 * origin only: a blob redirect to a storage service gets neither. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <json-c/json.h>

#include "modules/images/import/fetch_internal.h"

#define ACCEPT_MANIFESTS VF_MT_OCI_MANIFEST ", " VF_MT_OCI_INDEX ", " VF_MT_DOCKER_MANIFEST ", " VF_MT_DOCKER_LIST
#define TOKEN_MAX_BYTES (64u << 10)

struct reg {
    const struct vf_fetch_registry *req;
    const struct vf_fetch_common *common;
    struct vf_fetch_common meta;   /* common without progress: for manifests and tokens */
    char host[256], repo[256], ref[160];
    char base[300];          /* scheme://host */
    char *token;             /* bearer token once obtained */
    bool basic;              /* the registry asked for basic auth */
    int retries;
};

static void url_escape(const char *s, char *out, size_t out_len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s && o + 4 < out_len; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
            c == '_' || c == '~') {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
}

/* Gets a token from the realm of a Bearer challenge. */
static int fetch_token(struct reg *r, const struct vf_auth_challenge *ch, struct vf_error *err)
{
    char url[2048], service[768], scope[1536], fallback[320];
    int rc;
    if (!vf_url_is_http(ch->realm))
        return vf_error_set(err, -EINVAL, 502, "FetchFailed", "",
                            "registry %s names token service \"%s\", which is not an http or https URL", r->host,
                            ch->realm);
    /* Credentials in clear text only where the registry itself is plain http. */
    if (r->req->username && !r->req->plain_http && strncmp(ch->realm, "https://", 8) != 0)
        return vf_error_set(err, -EPERM, 502, "FetchFailed", "",
                            "registry %s sends credentials to token service %s over plain http: refused",
                            r->host, ch->realm);
    snprintf(fallback, sizeof fallback, "repository:%s:pull", r->repo);
    url_escape(ch->service, service, sizeof service);
    url_escape(ch->scope[0] ? ch->scope : fallback, scope, sizeof scope);
    if ((size_t)snprintf(url, sizeof url, "%s%sservice=%s&scope=%s", ch->realm, strchr(ch->realm, '?') ? "&" : "?",
                         service, scope) >= sizeof url)
        return vf_error_set(err, -ENAMETOOLONG, 502, "FetchFailed", "",
                            "registry %s: the token request to %s would be longer than %zu bytes", r->host, ch->realm,
                            sizeof url);
    struct vf_xfer x = {
        .url = url,
        .common = &r->meta,
        .username = r->req->username,
        .password = r->req->password,
        .fd = -1,
        .mem_max = TOKEN_MAX_BYTES,
        .what = ch->realm,
    };
    rc = vf_xfer_run(&x, err);
    r->retries += x.retries;
    if (rc == 0 && x.status != 200) {
        if (x.status == 401 || x.status == 403)
            rc = vf_error_set(err, -EACCES, 401, "Unauthorized", "",
                              "token service %s refused %s (HTTP %ld) for %s", ch->realm,
                              r->req->username ? "the credentials" : "anonymous access", x.status, r->repo);
        else
            rc = vf_xfer_status_error(&x, err);
    }
    if (rc == 0) {
        struct json_object *o = json_tokener_parse(x.mem ? x.mem : ""), *v;
        const char *t = NULL;
        if (o && (json_object_object_get_ex(o, "token", &v) || json_object_object_get_ex(o, "access_token", &v)) &&
            json_object_is_type(v, json_type_string))
            t = json_object_get_string(v);
        /* The token goes into a header: nothing that could break it. */
        if (!t || !*t || strcspn(t, "\r\n") != strlen(t) || strlen(t) > 8192)
            rc = vf_error_set(err, -EINVAL, 502, "FetchFailed", "", "token service %s answered without a token",
                              ch->realm);
        else if (!(r->token = strdup(t)))
            rc = vf_error_set(err, -ENOMEM, 500, "FetchFailed", "", "out of memory");
        json_object_put(o);
    }
    free(x.mem);
    return rc;
}

/* A GET against the registry with its authentication; the final response is
 * left in *x (status included) for the caller. */
static int reg_get(struct reg *r, struct vf_xfer *x, struct vf_error *err)
{
    for (int round = 0;; round++) {
        x->common = x->common ? x->common : r->common;
        x->bearer = r->token;
        x->username = !r->token && r->basic ? r->req->username : NULL;
        x->password = !r->token && r->basic ? r->req->password : NULL;
        free(x->mem);
        x->mem = NULL;
        int rc = vf_xfer_run(x, err);
        r->retries += x->retries;
        if (rc < 0 || x->status != 401)
            return rc;
        if (round > 0)
            return vf_error_set(err, -EACCES, 401, "Unauthorized", "", "registry %s refused %s for %s (HTTP 401)",
                                r->host, r->req->username ? "the credentials" : "anonymous access", r->repo);
        struct vf_auth_challenge ch;
        if (vf_www_authenticate_parse(x->www_authenticate, &ch) < 0 || ch.scheme == VF_AUTH_OTHER ||
            ch.scheme == VF_AUTH_NONE)
            return vf_error_set(err, -EACCES, 401, "Unauthorized", "",
                                "registry %s wants authentication it does not describe (WWW-Authenticate: \"%.200s\")",
                                r->host, x->www_authenticate);
        if (ch.scheme == VF_AUTH_BASIC) {
            if (!r->req->username)
                return vf_error_set(err, -EACCES, 401, "Unauthorized", "",
                                    "registry %s needs credentials for %s", r->host, r->repo);
            r->basic = true;
        } else {
            free(r->token);
            r->token = NULL;
            int trc = fetch_token(r, &ch, err);
            if (trc < 0)
                return trc;
        }
    }
}

static int not_found(struct reg *r, const struct vf_xfer *x, const char *what, struct vf_error *err)
{
    return vf_error_set(err, -ENOENT, 404, "FetchFailed", "", "%s %s/%s%s%s not found: HTTP 404 from %s%s%.200s",
                        what, r->host, r->repo, strncmp(r->ref, "sha256:", 7) == 0 ? "@" : ":", r->ref,
                        x->effective_url, x->errbody[0] ? ": " : "", x->errbody);
}

/* Fetches and parses the manifest for ref (a tag or a digest, verified). */
static int get_manifest(struct reg *r, const char *ref, struct vf_manifest *m, struct vf_error *err)
{
    char url[1024], sha[VF_FETCH_SHA256_HEX];
    struct vf_xfer x = {
        .url = url,
        .common = &r->meta,
        .accept = ACCEPT_MANIFESTS,
        .fd = -1,
        .mem_max = VF_MANIFEST_MAX_BYTES,
    };
    snprintf(url, sizeof url, "%s/v2/%s/manifests/%s", r->base, r->repo, ref);
    int rc = reg_get(r, &x, err);
    if (rc == 0 && x.status == 404)
        rc = not_found(r, &x, "image", err);
    else if (rc == 0 && x.status != 200)
        rc = vf_xfer_status_error(&x, err);
    if (rc == 0 && strncmp(ref, "sha256:", 7) == 0) {
        struct vf_hash h;
        if (vf_hash_init(&h, false) < 0) {
            rc = vf_error_set(err, -ENOMEM, 500, "FetchFailed", "", "cannot set up hashing");
        } else {
            vf_hash_update(&h, x.mem ? x.mem : "", x.mem_len);
            vf_hash_final(&h, sha, NULL);
            if (strcmp(sha, ref + 7) != 0)
                rc = vf_error_set(err, -EBADMSG, 502, "ChecksumMismatch", "",
                                  "manifest %s of %s/%s has sha256 %s: the registry sent something else", ref,
                                  r->host, r->repo, sha);
        }
        vf_hash_free(&h);
    }
    if (rc == 0) {
        rc = vf_manifest_parse(x.mem ? x.mem : "", x.mem_len, x.content_type, m, err);
        if (rc < 0) {
            size_t n = strlen(err->message);
            snprintf(err->message + n, sizeof err->message - n, " (%s/%s@%s)", r->host, r->repo, ref);
        }
    }
    free(x.mem);
    return rc;
}

/* A single image manifest names its platform only in its config blob: fetch
 * it (small, digest checked) and refuse an image built for another platform
 * before any layer is pulled.  An index entry was already chosen by platform;
 * configs of other media types (artifacts) name none. */
static int check_platform(struct reg *r, const struct vf_manifest *m, struct vf_error *err)
{
    const struct vf_descriptor *d = &m->config;
    char url[1024], what[128], sha[VF_FETCH_SHA256_HEX];
    struct vf_hash h;
    int rc;
    if (strcmp(d->media_type, VF_MT_OCI_CONFIG) != 0 && strcmp(d->media_type, VF_MT_DOCKER_CONFIG) != 0)
        return 0;
    snprintf(what, sizeof what, "config %.80s", d->digest);
    if (d->size > VF_MANIFEST_MAX_BYTES)
        return vf_error_set(err, -EFBIG, 502, "InvalidImage", "", "%s of %s: the manifest says %llu bytes, more than %u",
                            what, r->req->image, (unsigned long long)d->size, VF_MANIFEST_MAX_BYTES);
    struct vf_xfer x = {
        .url = url,
        .common = &r->meta,
        .fd = -1,
        .mem_max = d->size ? (size_t)d->size : 1,
        .what = what,
    };
    snprintf(url, sizeof url, "%s/v2/%s/blobs/%s", r->base, r->repo, d->digest);
    rc = reg_get(r, &x, err);
    if (rc == 0 && x.status == 404)
        rc = not_found(r, &x, what, err);
    else if (rc == 0 && x.status != 200)
        rc = vf_xfer_status_error(&x, err);
    if (rc == 0) {
        if (vf_hash_init(&h, false) < 0) {
            rc = vf_error_set(err, -ENOMEM, 500, "FetchFailed", "", "cannot set up hashing");
        } else {
            vf_hash_update(&h, x.mem ? x.mem : "", x.mem_len);
            vf_hash_final(&h, sha, NULL);
            if (strcmp(sha, d->digest + 7) != 0 || x.mem_len != d->size)
                rc = vf_error_set(err, -EBADMSG, 502, "ChecksumMismatch", "",
                                  "%s of %s/%s: the downloaded blob (%zu bytes) has sha256 %s, the manifest says %s "
                                  "(%llu bytes)", what, r->host, r->repo, x.mem_len, sha, d->digest + 7,
                                  (unsigned long long)d->size);
        }
        vf_hash_free(&h);
    }
    if (rc == 0)
        rc = vf_image_config_check(x.mem ? x.mem : "", x.mem_len, r->req->platform, r->req->image, err);
    free(x.mem);
    return rc;
}

static bool layer_type_ok(const char *mt)
{
    static const char *const ok[] = {
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.docker.image.rootfs.diff.tar",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (strcmp(mt, ok[i]) == 0)
            return true;
    return false;
}

/* An unlinked scratch file for a layer blob; -1 with *err. */
static int scratch_file(const char *dir, struct vf_error *err)
{
    char path[4096];
    if (!dir || !*dir)
        dir = getenv("TMPDIR");
    if (!dir || !*dir)
        dir = "/var/tmp";
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
    /* Filesystems without O_TMPFILE: a named file removed at once. */
    snprintf(path, sizeof path, "%s/vf-layer.XXXXXX", dir);
    fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0)
        return vf_error_set(err, -errno, 507, "FetchFailed", "", "cannot make a scratch file in %s: %s", dir,
                            strerror(errno));
    unlink(path);
    return fd;
}

/* Downloads one layer blob, checks its digest and takes the disk file from it. */
static int pull_layer(struct reg *r, const struct vf_descriptor *d, struct vf_disk_tar *t, char *effective,
                      size_t effective_len, struct vf_error *err)
{
    char url[1024], what[128], sha[VF_FETCH_SHA256_HEX];
    struct vf_hash h;
    struct vf_fetch_common blob_common = *r->common;
    int rc, fd;

    snprintf(what, sizeof what, "layer %.80s", d->digest);
    if (!layer_type_ok(d->media_type))
        return vf_error_set(err, -EINVAL, 422, "InvalidImage", "",
                            "%s of %s/%s has media type \"%s\": only tar and tar+gzip layers are supported", what,
                            r->host, r->repo, d->media_type);
    if (d->size == 0)   /* even an empty tar is 1 KiB; and max_bytes 0 would mean "no limit" */
        return vf_error_set(err, -EINVAL, 422, "InvalidImage", "", "%s of %s/%s has size 0", what, r->host,
                            r->repo);
    if ((fd = scratch_file(r->req->scratch_dir, err)) < 0)
        return fd;
    if (vf_hash_init(&h, false) < 0) {
        vf_hash_free(&h);
        close(fd);
        return vf_error_set(err, -ENOMEM, 500, "FetchFailed", "", "cannot set up hashing");
    }
    /* The manifest says how big the blob is: a byte more is not it. */
    blob_common.max_bytes = d->size;
    snprintf(url, sizeof url, "%s/v2/%s/blobs/%s", r->base, r->repo, d->digest);
    struct vf_xfer x = { .url = url, .common = &blob_common, .fd = fd, .hash = &h, .what = what };
    rc = reg_get(r, &x, err);
    if (rc == 0 && x.status == 404)
        rc = not_found(r, &x, what, err);
    else if (rc == 0 && x.status != 200 && x.status != 206)
        rc = vf_xfer_status_error(&x, err);
    if (rc == 0) {
        snprintf(effective, effective_len, "%s", x.effective_url);
        vf_hash_final(&h, sha, NULL);
        if (strcmp(sha, d->digest + 7) != 0 || x.bytes != d->size)
            rc = vf_error_set(err, -EBADMSG, 502, "ChecksumMismatch", "",
                              "%s of %s/%s: the downloaded blob (%llu bytes) has sha256 %s, the manifest says %s "
                              "(%llu bytes)",
                              what, r->host, r->repo, (unsigned long long)x.bytes, sha, d->digest + 7,
                              (unsigned long long)d->size);
    }
    vf_hash_free(&h);
    free(x.mem);
    if (rc == 0) {
        t->what = what;
        rc = vf_disk_tar_extract(fd, t, err);
        t->what = NULL;
    }
    close(fd);
    return rc;
}

int vf_fetch_registry_run(const struct vf_fetch_registry *req, const struct vf_fetch_common *common, int fd,
                          struct vf_fetch_result *result, char *disk_name, size_t disk_name_len,
                          struct vf_error *err)
{
    struct reg r = { .req = req, .common = common, .meta = *common };
    struct vf_manifest m = { 0 }, child = { 0 };
    const struct vf_manifest *image = &m;
    struct vf_hash disk_hash;
    int rc;

    memset(result, 0, sizeof *result);
    if (disk_name_len)
        disk_name[0] = '\0';
    if ((rc = vf_registry_reference_parse(req->image, r.host, sizeof r.host, r.repo, sizeof r.repo, r.ref,
                                          sizeof r.ref, err)) < 0)
        return rc;
    r.meta.progress = NULL;   /* progress is of layer bytes only */
    snprintf(r.base, sizeof r.base, "%s://%s", req->plain_http ? "http" : "https", r.host);
    if (vf_hash_init(&disk_hash, true) < 0) {
        vf_hash_free(&disk_hash);
        return vf_error_set(err, -ENOMEM, 500, "FetchFailed", "", "cannot set up hashing");
    }
    /* Registry pulls start over: the layer, not the disk file, is what would
     * resume, and it lives in an unlinked scratch file. */
    if (ftruncate(fd, 0) < 0) {
        rc = vf_error_set(err, -errno, 507, "FetchFailed", "", "cannot truncate the disk file: %s", strerror(errno));
        goto out;
    }
    if ((rc = get_manifest(&r, r.ref, &m, err)) < 0)
        goto out;
    if (m.is_index) {
        size_t pick;
        if ((rc = vf_manifest_pick(&m, req->platform, &pick, err)) < 0) {
            size_t n = strlen(err->message);
            snprintf(err->message + n, sizeof err->message - n, " (%s)", req->image);
            goto out;
        }
        if ((rc = get_manifest(&r, m.items[pick].digest, &child, err)) < 0)
            goto out;
        if (child.is_index) {
            rc = vf_error_set(err, -EINVAL, 502, "InvalidImage", "", "%s: the index for %s points to another index",
                              req->image, req->platform ? req->platform : "linux/amd64");
            goto out;
        }
        image = &child;
    } else if ((rc = check_platform(&r, &m, err)) < 0) {
        goto out;
    }
    struct vf_disk_tar t = { .out_fd = fd, .max_bytes = common->max_bytes, .cancel = common->cancel,
                             .hash = &disk_hash };
    for (size_t i = 0; i < image->n_items; i++)
        if ((rc = pull_layer(&r, &image->items[i], &t, result->effective_url, sizeof result->effective_url,
                             err)) < 0)
            goto out;
    if (!t.have_disk) {
        rc = vf_error_set(err, -EINVAL, 422, "InvalidImage", "",
                          "image %s has no file under /disk/: put the disk image at /disk/<file>", req->image);
        goto out;
    }
    vf_hash_final(&disk_hash, result->sha256, result->md5);
    result->bytes = t.bytes;
    if (disk_name_len)
        snprintf(disk_name, disk_name_len, "%s", t.name);
out:
    result->retries = r.retries;
    vf_manifest_free(&m);
    vf_manifest_free(&child);
    vf_hash_free(&disk_hash);
    free(r.token);
    return rc;
}
