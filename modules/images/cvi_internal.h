/* What the parts of ClusterVirtualImage share: the kind (cvi_kind.c), the
 * worker-side import job (cvi_import.c), the controller (cvi.c) and its
 * CD-ROM copies on the nodes (cdrom.c).  Private to them; cvi.h is what
 * module.c sees. */
#ifndef VF_IMAGES_CVI_INTERNAL_H
#define VF_IMAGES_CVI_INTERNAL_H
#include "cvi.h"
#include "ctl_util.h"              /* member, string, str_eq */
#include "import/fetch.h"
#include "formats/image_format.h"
#include "vd_volume.h"

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <json-c/json.h>

#define MSG_MAX 768

enum source { SRC_HTTP, SRC_REGISTRY, SRC_UPLOAD, SRC_COPY, SRC_DISK };

/* One import.  Made by the controller (job_start in cvi.c), run by a worker
 * (vf_cvi_job_run), handed back to the loop (job_done in cvi.c), which frees
 * it.  Only the atomics are touched by both threads while it runs. */
struct import_job {
    struct vf_images *im;          /* holds a reference */
    char name[256], uid[64];
    int64_t generation;
    enum source src;
    char *url, *checksum, *ca_pem, *image, *copy_from;
    char copy_format[8];           /* SRC_COPY, SRC_DISK: the source's format, kept */
    char vd_name[256];             /* SRC_DISK: the VirtualDisk */
    struct vf_vd_volume_job *vol;  /* SRC_DISK: the DOWNLOAD of its volume, connection taken */
    bool plain_http;
    char auth_file[1024];          /* registry credentials, read when the pull starts; "": none */
    struct vf_dvcr dvcr;           /* a copy: the module may restart meanwhile */
    uint64_t room;
    int max_retries, stall_timeout_s;
    atomic_bool cancel;
    _Atomic uint64_t done_bytes, total_bytes;
    atomic_uint restarts;          /* times the fetch started over (see cvi_import.c) */
    atomic_bool converting;
    /* Results, read by done() on the loop thread. */
    int rc;
    struct vf_error err;
    struct vf_image_info info;
    struct vf_fetch_result fetch;
    char disk_name[256];           /* a registry image's file under /disk/ */
    char format[8];
    char final[4096];
    uint64_t stored_bytes;
    struct import_job *next;       /* in jobs_in_flight */
};

/* ---- the kind (cvi_kind.c) ------------------------------------------------------ */

extern const struct vf_kind vf_cvi_kind;

/* The checksum as the fetcher wants it ("sha256:<hex>"), into buf ("" when c
 * is NULL).  The spec may say "sha256:<hex>", "md5:<hex>" or { sha256: <hex> }
 * / { md5: <hex> }. */
int vf_cvi_checksum_of(const struct json_object *c, char *buf, size_t len, struct vf_error *err);
/* The CA bundle as PEM into *out (free() it; NULL when ca is empty), given as
 * PEM text or base64 of it (as the seeds' CRDs); field names it in errors. */
int vf_cvi_ca_pem_of(const char *ca, const char *field, char **out, struct vf_error *err);
/* The user and password import.authFile (path; "" or NULL: none) holds for
 * the registry of image ("host[:port]/..."); user[0] == '\0' when it holds
 * none.  A file other users may read or write is refused (AuthFileInsecure). */
int vf_cvi_registry_auth(const char *path, const char *image, char *user, size_t user_len,
                         char *pass, size_t pass_len, struct vf_error *err);

/* ---- the import job (cvi_import.c, on a worker thread) ---------------------------- */

/* The job_submit work function: fills j->rc, j->err and the results. */
void vf_cvi_job_run(void *opaque);
void vf_cvi_job_free(struct import_job *j);
#endif
