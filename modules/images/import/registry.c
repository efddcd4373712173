#include <config.h>
/* The container registry fetcher: an OCI distribution API client that pulls
 * the disk file out of an image built FROM scratch with it at /disk/<file>.
 *
 * Manifest (OCI or Docker v2 schema 2; an index or manifest list is resolved
 * to the requested platform, a single manifest's config must name that
 * platform or none), then each layer in one pass: its blob streams from
 * libcurl straight into libarchive (vf_xfer_read under libarchive's read
 * callback, on this thread), hashed on the way, and the disk file's bytes go
 * into the caller's fd as the tar yields them.  No scratch file: a layer's
 * digest is known only at its end, so what reached fd before is unverified
 * until then, and any failure (a digest among them) empties fd; the caller
 * publishes nothing of a pull that failed.  A download that breaks off is
 * continued where it stopped (see vf_xfer_open), never restarted.
 * Authentication follows the registry's 401: a Bearer challenge sends us to
 * its token service (with the user's credentials, if any), a Basic one gets
 * the credentials directly.  Tokens and credentials go to the registry's
 * origin only: a blob redirect to a storage service gets neither. */
#include <errno.h>
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
    /* Progress over all layers: theirs is of one. */
    uint64_t layers_total, layers_before;
    const struct vf_disk_tar *disk;
    unsigned emptied_told;
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

/* The credentials x carries to the registry: its token once it gave one,
 * else the user's where it asked for basic auth. */
static void reg_auth(struct reg *r, struct vf_xfer *x)
{
    x->bearer = r->token;
    x->username = !r->token && r->basic ? r->req->username : NULL;
    x->password = !r->token && r->basic ? r->req->password : NULL;
}

/* x was answered 401: learn from its challenge what to send next time. */
static int answer_challenge(struct reg *r, const struct vf_xfer *x, struct vf_error *err)
{
    struct vf_auth_challenge ch;
    if (vf_www_authenticate_parse(x->www_authenticate, &ch) < 0 || ch.scheme == VF_AUTH_OTHER ||
        ch.scheme == VF_AUTH_NONE)
        return vf_error_set(err, -EACCES, 401, "Unauthorized", "",
                            "registry %s wants authentication it does not describe (WWW-Authenticate: \"%.200s\")",
                            r->host, x->www_authenticate);
    if (ch.scheme == VF_AUTH_BASIC) {
        if (!r->req->username)
            return vf_error_set(err, -EACCES, 401, "Unauthorized", "", "registry %s needs credentials for %s",
                                r->host, r->repo);
        r->basic = true;
        return 0;
    }
    free(r->token);
    r->token = NULL;
    return fetch_token(r, &ch, err);
}

static int unauthorized(const struct reg *r, struct vf_error *err)
{
    return vf_error_set(err, -EACCES, 401, "Unauthorized", "", "registry %s refused %s for %s (HTTP 401)", r->host,
                        r->req->username ? "the credentials" : "anonymous access", r->repo);
}

/* A GET against the registry with its authentication: to the end into
 * memory, or, for a stream (x->stream), until its body comes.  The final
 * response is left in *x (status included) for the caller; a stream's
 * retries are counted when it is closed. */
static int reg_get(struct reg *r, struct vf_xfer *x, struct vf_error *err)
{
    for (int round = 0;; round++) {
        int rc;
        x->common = x->common ? x->common : r->common;
        reg_auth(r, x);
        if (x->stream) {
            rc = round == 0 ? vf_xfer_open(x, err) : vf_xfer_resume(x, err);
        } else {
            free(x->mem);
            x->mem = NULL;
            rc = vf_xfer_run(x, err);
            r->retries += x->retries;
        }
        if (rc < 0 || x->status != 401)
            return rc;
        if (round > 0)
            return unauthorized(r, err);
        if ((rc = answer_challenge(r, x, err)) < 0)
            return rc;
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
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.docker.image.rootfs.diff.tar",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (strcmp(mt, ok[i]) == 0)
            return true;
    return false;
}

/* Progress of the pull: the layers' bytes so far against their sum.  It
 * goes back to 0 once after a layer emptied fd of an earlier one's disk
 * file (a whiteout, a replacement), as an HTTP download that starts over
 * does: a reader following fd must start over too (see cvi_import.c). */
static void tell_progress(struct reg *r, uint64_t layer_done)
{
    const struct vf_fetch_common *c = r->common;
    if (!c->progress)
        return;
    if (r->disk && r->disk->emptied != r->emptied_told) {
        r->emptied_told = r->disk->emptied;
        c->progress(c->opaque, 0, r->layers_total);
    }
    c->progress(c->opaque, r->layers_before + layer_done, r->layers_total);
}

static void on_layer_progress(void *opaque, uint64_t done, uint64_t total)
{
    (void)total;
    tell_progress(opaque, done);
}

/* One layer blob on its way from the registry into libarchive. */
struct blob {
    struct reg *r;
    struct vf_xfer x;
    uint64_t reauth_at;      /* x.bytes when a 401 mid-blob was last answered; UINT64_MAX: never */
};

/* vf_disk_tar_read_fn over the blob's response.  A retry that meets an
 * expired token gets a new one and goes on from where it stopped (once per
 * stretch of progress, so a registry refusing the new one is not asked
 * forever). */
static ssize_t blob_read(void *opaque, const void **buf, struct vf_error *err)
{
    struct blob *b = opaque;
    for (;;) {
        ssize_t n = vf_xfer_read(&b->x, buf, err);
        if (n >= 0 || b->x.status != 401)
            return n;
        if (b->reauth_at == b->x.bytes)
            return unauthorized(b->r, err);
        b->reauth_at = b->x.bytes;
        int rc = answer_challenge(b->r, &b->x, err);
        if (rc < 0)
            return rc;
        reg_auth(b->r, &b->x);
        if ((rc = vf_xfer_resume(&b->x, err)) < 0)
            return rc;
    }
}

/* Reads the rest of the blob (past the tar's end) for its digest. */
static int blob_drain(struct blob *b, struct vf_error *err)
{
    const void *buf;
    ssize_t n;
    while ((n = blob_read(b, &buf, err)) > 0)
        ;
    return (int)n;
}

/* The blob's digest and size against the manifest's. */
static int blob_verify(const struct reg *r, const struct vf_descriptor *d, const struct blob *b, struct vf_hash *h,
                       struct vf_error *err)
{
    char sha[VF_FETCH_SHA256_HEX];
    vf_hash_final(h, sha, NULL);
    if (strcmp(sha, d->digest + 7) == 0 && b->x.bytes == d->size)
        return 0;
    return vf_error_set(err, -EBADMSG, 502, "ChecksumMismatch", "",
                        "%s of %s/%s: the downloaded blob (%llu bytes) has sha256 %s, the manifest says %s (%llu bytes)",
                        b->x.what, r->host, r->repo, (unsigned long long)b->x.bytes, sha, d->digest + 7,
                        (unsigned long long)d->size);
}

/* Streams one layer blob through libarchive into the disk file, then checks
 * its digest: every byte of it counts, also those after the tar's end
 * (padding) and, when the layer was refused for its content, the rest, so
 * that a corrupt download is named as such rather than as a bad image. */
static int pull_layer(struct reg *r, const struct vf_descriptor *d, struct vf_disk_tar *t, char *effective,
                      size_t effective_len, struct vf_error *err)
{
    char url[1024], what[128];
    struct vf_hash h;
    struct vf_fetch_common blob_common = *r->common;
    struct vf_error drain_err;
    int rc;

    snprintf(what, sizeof what, "layer %.80s", d->digest);
    if (!layer_type_ok(d->media_type))
        return vf_error_set(err, -EINVAL, 422, "InvalidImage", "",
                            "%s of %s/%s has media type \"%s\": only tar, tar+gzip and tar+zstd layers are supported",
                            what, r->host, r->repo, d->media_type);
    if (d->size == 0)   /* even an empty tar is 1 KiB; and max_bytes 0 would mean "no limit" */
        return vf_error_set(err, -EINVAL, 422, "InvalidImage", "", "%s of %s/%s has size 0", what, r->host,
                            r->repo);
    if (vf_hash_init(&h, false) < 0) {
        vf_hash_free(&h);
        return vf_error_set(err, -ENOMEM, 500, "FetchFailed", "", "cannot set up hashing");
    }
    /* The manifest says how big the blob is: a byte more is not it. */
    blob_common.max_bytes = d->size;
    blob_common.progress = r->common->progress ? on_layer_progress : NULL;
    blob_common.opaque = r;
    snprintf(url, sizeof url, "%s/v2/%s/blobs/%s", r->base, r->repo, d->digest);
    struct blob b = { .r = r, .reauth_at = UINT64_MAX,
                      .x = { .url = url, .common = &blob_common, .stream = true, .fd = -1, .hash = &h,
                             .what = what } };
    rc = reg_get(r, &b.x, err);
    if (rc == 0 && b.x.status == 404)
        rc = not_found(r, &b.x, what, err);
    else if (rc == 0 && b.x.status != 200 && b.x.status != 206)
        rc = vf_xfer_status_error(&b.x, err);
    if (rc == 0) {
        snprintf(effective, effective_len, "%s", b.x.effective_url);
        t->what = what;
        rc = vf_disk_tar_extract_stream(blob_read, &b, t, err);
        t->what = NULL;
        bool refused = rc == -EINVAL && strcmp(err->reason, "InvalidImage") == 0;
        if (rc == 0)
            rc = blob_drain(&b, err);
        else if (refused && blob_drain(&b, &drain_err) < 0)
            refused = false;   /* whether the blob is what the manifest says is unknown: the refusal stands */
        int vrc;
        if ((rc == 0 || refused) && (vrc = blob_verify(r, d, &b, &h, err)) < 0)
            rc = vrc;
    }
    vf_hash_free(&h);
    r->retries += b.x.retries;
    vf_xfer_close(&b.x);
    if (rc == 0) {
        r->layers_before += d->size;
        tell_progress(r, 0);
    }
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
    /* A pull starts over: only within a layer's download is there a place
     * to continue from. */
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
    r.disk = &t;
    for (size_t i = 0; i < image->n_items; i++)
        r.layers_total += image->items[i].size;
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
    /* Nothing unverified stays behind: a later layer's digest may have
     * failed after an earlier layer's disk file was written in full. */
    if (rc < 0 && ftruncate(fd, 0) < 0) {
        /* the caller removes the file of a failed import anyway */
    }
    result->retries = r.retries;
    vf_manifest_free(&m);
    vf_manifest_free(&child);
    vf_hash_free(&disk_hash);
    free(r.token);
    return rc;
}
