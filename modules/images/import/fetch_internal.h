/* What the fetchers (http.c, registry.c, disk_tar.c) share, and the parsers
 * the unit tests and fuzz targets reach directly.  Not part of the module's
 * interface: fetch.h is. */
#ifndef VF_IMAGE_FETCH_INTERNAL_H
#define VF_IMAGE_FETCH_INTERNAL_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <virtfleet/module.h>
#include "modules/images/import/fetch.h"

/* ---- hashing (libcrypto EVP) ----------------------------------------- */

struct vf_hash {
    void *sha256;   /* EVP_MD_CTX * */
    void *md5;      /* EVP_MD_CTX *, NULL when not wanted */
};

/* 0 or -ENOMEM.  vf_hash_free() in any case. */
int vf_hash_init(struct vf_hash *h, bool with_md5);
/* Starts over (drops what was hashed). */
int vf_hash_reset(struct vf_hash *h);
void vf_hash_update(struct vf_hash *h, const void *buf, size_t len);
/* Writes lower-case hex; md5_hex may be NULL.  The state is spent. */
void vf_hash_final(struct vf_hash *h, char sha256_hex[VF_FETCH_SHA256_HEX], char md5_hex[33]);
void vf_hash_free(struct vf_hash *h);
/* Hashes the first len bytes of fd (a resumed download's prefix). */
int vf_hash_fd(struct vf_hash *h, int fd, uint64_t len, atomic_bool *cancel, struct vf_error *err);

/* ---- one HTTP transfer with redirects, retries and resume -------------- */

struct vf_xfer_engine;

/* The body goes to fd (pwrite, continuing from fd's size with Range when it
 * already holds bytes), or, with fd < 0, to memory (at most mem_max bytes),
 * or, with stream, to the caller as it arrives (vf_xfer_open/read below).
 * Only a 2xx body is stored; the first bytes of any other body are kept in
 * errbody for messages. */
struct vf_xfer {
    /* request */
    const char *url;
    const struct vf_fetch_common *common;
    const char *username, *password; /* basic auth, to the first origin only */
    const char *bearer;              /* "Authorization: Bearer" token, first origin only */
    const char *accept;              /* Accept header or NULL */
    int max_redirects;               /* 0: 10 */
    int fd;                          /* body sink, or -1 for memory */
    bool resume;                     /* fd mode: continue from fd's size (else truncate it) */
    size_t mem_max;                  /* memory mode: more is "TooLarge" */
    bool stream;                     /* stream mode (fd must be -1): common->max_bytes bounds the body */
    struct vf_hash *hash;            /* fd and stream modes: fed with every stored (handed out) byte,
                                      * a resumed prefix included */
    const char *what;                /* names the transfer in messages; NULL: the URL */
    /* response */
    long status;                     /* of the final response */
    char reason_phrase[64];          /* "Not Found" */
    char content_type[128];
    char www_authenticate[1024];
    char errbody[512];               /* start of a non-2xx body, NUL-terminated */
    char effective_url[1024];        /* after redirects */
    char *mem;                       /* memory mode: the body (NUL-terminated); free() it */
    size_t mem_len;
    uint64_t bytes;                  /* fd mode: size of fd afterwards; stream mode: bytes handed
                                      * out or about to be (the offset a retry continues at) */
    uint64_t total;                  /* what the server announced in all, 0: unknown */
    bool resumed;                    /* a 206 continued bytes already in fd */
    int retries;                     /* transient failures recovered from */
    int retry_after_s;               /* Retry-After of the final response (seconds, capped), -1: none */
    struct vf_xfer_engine *engine;   /* private to xfer.c */
};

/* Runs the transfer until a final response arrived (any status: 4xx and, once
 * retries are spent, 5xx are left in x->status for the caller to judge) and
 * returns 0; or returns a negative errno with *err for a transport failure
 * (connect, TLS, stall, truncation after every retry), a refused URL or
 * redirect, TooLarge, or -ECANCELED.  Free x->mem with free() either way. */
int vf_xfer_run(struct vf_xfer *x, struct vf_error *err);

/* Stream mode, for a consumer that pulls the body (libarchive reading a
 * layer as it downloads): no thread, no file.  vf_xfer_open runs the
 * transfer as vf_xfer_run would until the final response's headers are in
 * and returns 0; for a 2xx (x->status) the body then comes piece by piece
 * from vf_xfer_read, else the transfer is over as with vf_xfer_run.  A
 * transient failure mid-body is retried where the body broke off: with
 * Range, or, from a server that answers with the whole again, by dropping
 * the bytes already handed out, so the consumer never sees a byte twice or
 * has to start over.  vf_xfer_close() afterwards in any case. */
int vf_xfer_open(struct vf_xfer *x, struct vf_error *err);
/* The next piece of the body into *buf (valid until the next call): its
 * length, 0 at the end, or a negative errno with *err: a transport failure
 * after every retry, TooLarge, -ECANCELED, or a retry's final response that
 * is not 2xx (x->status says which; a 401 may be answered with a new token
 * and vf_xfer_resume). */
ssize_t vf_xfer_read(struct vf_xfer *x, const void **buf, struct vf_error *err);
/* After vf_xfer_open or vf_xfer_read ended on a status the caller can fix
 * (401: new credentials in x->bearer/username/password), asks again from
 * where the body stopped, as vf_xfer_open does. */
int vf_xfer_resume(struct vf_xfer *x, struct vf_error *err);
void vf_xfer_close(struct vf_xfer *x);

/* "HTTP 404 Not Found from URL" into *err (reason "FetchFailed"). */
int vf_xfer_status_error(const struct vf_xfer *x, struct vf_error *err);

/* true when url is absolute http:// or https:// (parsed by libcurl). */
bool vf_url_is_http(const char *url);
/* true when a and b have the same scheme, host and port. */
bool vf_url_same_origin(const char *a, const char *b);

/* A Retry-After value in its delay-seconds form ("120"), capped at
 * VF_RETRY_AFTER_MAX_S; -1 for anything else (absent, an HTTP-date, junk),
 * where the usual back-off applies.  The cap keeps a server from parking an
 * import for hours; the retry count still bounds the attempts. */
#define VF_RETRY_AFTER_MAX_S 60
int vf_retry_after_parse(const char *value);

/* Sleeps ms, waking every 100 ms to look at cancel; -ECANCELED if it was set. */
int vf_fetch_sleep(int ms, atomic_bool *cancel);

/* ---- registry protocol pieces ----------------------------------------- */

enum vf_auth_scheme { VF_AUTH_NONE, VF_AUTH_BASIC, VF_AUTH_BEARER, VF_AUTH_OTHER };

struct vf_auth_challenge {
    enum vf_auth_scheme scheme;
    char realm[512], service[512], scope[512];
};

/* Parses a WWW-Authenticate value: `Bearer realm="...",service="...",
 * scope="..."` (quoted or token values, any order, case-insensitive names)
 * or `Basic realm="..."`.  -EINVAL on a malformed one. */
int vf_www_authenticate_parse(const char *value, struct vf_auth_challenge *c);

#define VF_MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define VF_MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define VF_MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define VF_MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"

#define VF_MANIFEST_MAX_BYTES (4u << 20)   /* as the distribution registry's own limit */
#define VF_MANIFEST_MAX_ITEMS 1024

struct vf_descriptor {
    char media_type[128];
    char digest[72];          /* "sha256:<64 hex>" */
    uint64_t size;
    char os[32], architecture[32], variant[32];   /* index entries */
};

struct vf_manifest {
    bool is_index;
    char media_type[128];
    struct vf_descriptor config;    /* image manifests */
    struct vf_descriptor *items;    /* layers, or the index's manifests */
    size_t n_items;
};

/* Parses an image manifest or an index (OCI or Docker v2 schema 2) from
 * untrusted bytes.  content_type (may be NULL) is the response's; the body's
 * own mediaType wins when both are present and they must agree.  -EINVAL with
 * *err for anything else (schema 1, unknown types, bad digests, too many
 * entries).  vf_manifest_free() after success. */
int vf_manifest_parse(const char *body, size_t len, const char *content_type, struct vf_manifest *m,
                      struct vf_error *err);
void vf_manifest_free(struct vf_manifest *m);
/* The index entry for platform "os/arch[/variant]"; -ENOENT with *err. */
int vf_manifest_pick(const struct vf_manifest *index, const char *platform, size_t *pick,
                     struct vf_error *err);
#define VF_MT_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define VF_MT_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"

/* Checks an image config blob (untrusted JSON) against platform
 * "os/arch[/variant]" (NULL or "": linux/amd64): its os and architecture
 * must be the platform's, and its variant too when both name one.  A config
 * that names neither os nor architecture makes no claim and passes.  image
 * names the image in the message.  -EINVAL with *err: reason
 * "PlatformMismatch" for another platform, "InvalidImage" for a config that
 * is not a JSON object. */
int vf_image_config_check(const char *body, size_t len, const char *platform, const char *image,
                          struct vf_error *err);
/* true for "sha256:" followed by 64 lower-case hex digits. */
bool vf_digest_valid(const char *digest);

/* ---- the disk file in a layer (disk_tar.c) ----------------------------- */

struct vf_disk_tar {
    const char *what;        /* names the layer in messages, e.g. "layer sha256:..." */
    int out_fd;              /* where the disk file goes (pwrite from 0) */
    uint64_t max_bytes;      /* 0: no limit */
    atomic_bool *cancel;     /* may be NULL */
    struct vf_hash *hash;    /* fed with the disk file's bytes; may be NULL */
    bool have_disk;          /* in/out: a disk file was already taken (from an earlier layer) */
    char name[256];          /* out: its base name */
    uint64_t bytes;          /* out: its size */
    unsigned emptied;        /* out: times out_fd was emptied of a disk file taken before (a later
                              * layer replaced or deleted it): what a reader following out_fd
                              * read so far is void */
};

/* Where a layer's bytes come from: the next piece into *buf (valid until
 * the next call), its length, 0 at the end, or a negative errno with *err. */
typedef ssize_t (*vf_disk_tar_read_fn)(void *opaque, const void **buf, struct vf_error *err);

/* Reads one layer, a tar (gzip- or zstd-compressed or plain, by magic), from
 * read(opaque) as it comes: nothing is stored but the disk file.  Every
 * entry must be a relative path without "..", a directory or a regular
 * file; links, devices and FIFOs are refused.  Exactly one regular file may
 * sit directly under disk/ (or ./disk/) in the image the layers make, stacked
 * with the OCI whiteout rules (a later layer replaces or, with .wh.NAME or
 * .wh..wh..opq, deletes an earlier layer's file): it is written to out_fd (a
 * replaced one is truncated away, t->hash restarted) as it is read.  Other
 * regular files are skipped.  Call once per layer, in order, with the same
 * *t.  Returns once the tar's end is read: what follows it (padding) is left
 * to the caller.  -EINVAL with *err (reason "InvalidImage") on anything
 * refused, -EFBIG ("TooLarge"); a failure of read() is returned as it is. */
int vf_disk_tar_extract_stream(vf_disk_tar_read_fn read, void *opaque, struct vf_disk_tar *t,
                               struct vf_error *err);
/* The same from the file in_fd, from offset 0 (the fuzz target's way in). */
int vf_disk_tar_extract(int in_fd, struct vf_disk_tar *t, struct vf_error *err);
#endif
