/* Fetching image bytes from the network into a local file: HTTP(S) and
 * container registries (OCI distribution API), both over libcurl.
 *
 * Both fetchers are blocking and run on a worker thread; they touch no core
 * service.  They write into a file descriptor the caller owns (a file in the
 * image store's scratch area), so an interrupted download can be resumed: the
 * caller passes the same file again and the fetcher continues from its size
 * with an HTTP Range request where the server supports it (re-hashing what is
 * already there), or starts over where it does not.
 *
 * Every failure fills *err with a reason a user can act on, e.g.
 *   reason "FetchFailed",  message "HTTP 404 Not Found from https://h/x.qcow2"
 *   reason "ChecksumMismatch", message "sha256 of the download is 3a..., spec.dataSource.http.checksum says 9f..."
 *   reason "TooLarge",     message "the download passed the 50 GiB quota of the image store at 50.0 GiB"
 * and returns a negative errno.  -ECANCELED when *cancel became true. */
#ifndef VF_IMAGE_FETCH_H
#define VF_IMAGE_FETCH_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <virtfleet/module.h>

#define VF_FETCH_SHA256_HEX 65   /* 64 hex digits and the NUL */

/* progress(opaque, done, total): bytes downloaded so far (including a resumed
 * prefix) and the expected total (0 when the server did not say). */
typedef void (*vf_fetch_progress_fn)(void *opaque, uint64_t done, uint64_t total);

struct vf_fetch_common {
    const char *ca_bundle_pem;     /* PEM text of extra CAs to trust instead of the system's; NULL: system */
    bool insecure_skip_verify;     /* tests only; never the default */
    uint64_t max_bytes;            /* refuse a body larger than this (Content-Length early, else when passed) */
    int stall_timeout_s;           /* abort when fewer than 1 byte/s arrived for this long; 0: 60 */
    int connect_timeout_s;         /* 0: 30 */
    int max_retries;               /* transient errors (connect, 5xx, 429, stall, truncation); 0: 5 */
    int retry_backoff_ms;          /* first back-off, doubled each retry, capped at 30 s; 0: 1000 */
    atomic_bool *cancel;           /* checked at least once a second; may be NULL */
    vf_fetch_progress_fn progress; /* may be NULL; called at most every 256 KiB or 1 s */
    void *opaque;
};

struct vf_fetch_result {
    uint64_t bytes;                      /* size of the file written */
    char sha256[VF_FETCH_SHA256_HEX];    /* lower-case hex of the whole file */
    char md5[33];                        /* lower-case hex of the whole file */
    bool resumed;                        /* a Range request continued an earlier download */
    int retries;                         /* transient errors recovered from */
    char effective_url[1024];            /* after redirects */
};

/* ---- HTTP(S) ---------------------------------------------------------- */

struct vf_fetch_http {
    const char *url;               /* http:// or https:// only; anything else is refused */
    const char *checksum;          /* "sha256:<hex>" or "md5:<hex>" or NULL: verified before returning 0 */
    const char *username, *password; /* basic auth, sent to the first origin only (never after a
                                      * redirect to another scheme/host/port); NULL: none */
    int max_redirects;             /* 0: 10 */
};

/* Download into fd, continuing from fd's current size when it is not empty.
 * On success fd holds exactly the resource's bytes and *result is filled. */
int vf_fetch_http_run(const struct vf_fetch_http *req, const struct vf_fetch_common *common,
                      int fd, struct vf_fetch_result *result, struct vf_error *err);

/* ---- container registries --------------------------------------------- */

struct vf_fetch_registry {
    /* "host[:port]/repo/path[:tag|@sha256:digest]"; a reference without a host
     * is refused (no implicit docker.io). */
    const char *image;
    const char *username, *password; /* for the registry's token service or basic auth; NULL: anonymous */
    bool plain_http;                 /* talk http:// to the registry (loopback tests); default https */
    const char *platform;            /* for an index: "linux/amd64" when NULL */
};

/* Resolve the manifest (OCI image manifest or index, Docker v2 schema 2
 * manifest or manifest list), following the bearer-token flow on a 401, and
 * read each layer in one pass as it downloads: tar (gzip, zstd or plain),
 * its blob hashed for its digest on the way, the one regular file under
 * /disk/ written into fd as it comes.  No scratch file.  Zero or several
 * files under /disk/, absolute or `..` paths, links and devices are refused.
 * result->sha256 is of the disk file; disk_name receives its base name.  fd
 * is truncated first: a registry pull always starts over (a retry within one
 * call continues a layer's download where it broke off), and emptied on any
 * failure, a digest found wrong at a layer's end among them: nothing
 * unverified stays.  A reader may follow fd as it grows (cvi_import.c):
 * progress reports the layers' bytes so far against their sum, and goes
 * back to 0 when fd was emptied of a disk file a later layer replaced or
 * deleted, as an HTTP download that starts over does. */
int vf_fetch_registry_run(const struct vf_fetch_registry *req, const struct vf_fetch_common *common,
                          int fd, struct vf_fetch_result *result, char *disk_name, size_t disk_name_len,
                          struct vf_error *err);

/* Parse a registry reference (exposed for tests and the fuzz target).  Fills
 * host (with :port), repository and reference (tag or digest; "latest" when
 * absent).  -EINVAL with *err on a malformed one. */
int vf_registry_reference_parse(const char *image, char *host, size_t host_len, char *repository,
                                size_t repository_len, char *reference, size_t reference_len,
                                struct vf_error *err);
#endif
