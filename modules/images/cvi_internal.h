/* What the parts of ClusterVirtualImage share: the kind (cvi_kind.c), the
 * worker-side import job (cvi_import.c), the controller (cvi.c), its images
 * made from a VirtualDisk (cvi_disk.c) and its CD-ROM copies on the nodes
 * (cdrom.c).  Private to them; cvi.h is what module.c sees. */
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

/* The controller's record of one image (im->recs).  Loop thread only. */
struct cvi_rec {
    char *name;
    char uid[64];
    struct import_job *job;
    char token[VF_UPLOAD_TOKEN_HEX];   /* "" when no upload is open */
    int64_t upload_deadline;           /* CLOCK_REALTIME seconds */
    char progress[16];                 /* last written */
    bool kick;                         /* reconcile again on the next tick */
    bool wait_disk;                    /* waits for its VirtualDisk: disk and VM events kick it */
    char waited_disk[256];             /* that disk's name, while wait_disk */
    struct cvi_rec *next;
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

/* ---- the controller (cvi.c, loop thread) --------------------------------------------- */

/* Start the import of obj's current spec (copy_from, copy_format: SRC_COPY's
 * source file, SRC_DISK's VirtualDisk, and their format).  false when it
 * cannot start yet (an earlier job of the same uid still runs, a disk's node
 * is not Ready): the tick tries again. */
bool vf_cvi_job_start(struct vf_images *im, struct cvi_rec *r, const struct json_object *obj,
                      enum source src, const char *copy_from, const char *copy_format);
/* The imports of every instance of the module, canceled ones too (they may
 * still be reading), linked by ->next. */
const struct import_job *vf_cvi_jobs_in_flight(void);

/* ---- images made from a VirtualDisk (cvi_disk.c, loop thread) ------------------------ */

/* The VirtualDisk image obj is made from, or NULL. */
const char *vf_cvi_disk_source_of(const struct json_object *obj);
/* The DOWNLOAD of VirtualDisk `disk`'s volume, with a connection to its node;
 * NULL when the disk has no volume or its node is not Ready. */
struct vf_vd_volume_job *vf_cvi_disk_download_job(struct vf_images *im, const char *disk);
/* An image from VirtualDisk `disk` (begin_import's part for it): when the disk
 * is Ready and no VM runs from it, hold it and start the copy; else Pending
 * with the reason, r->wait_disk set.  resume: a restarted daemon found the
 * image Provisioning. */
void vf_cvi_disk_begin(struct vf_images *im, struct cvi_rec *r, const struct json_object *obj,
                       struct json_object *status, const char *disk, bool resume);
/* Let go of VirtualDisk `disk` (VF_CVI_DISK_FINALIZER) once no image is being
 * copied from it.  NULL disk: nothing to do. */
void vf_cvi_disk_hold_sync(struct vf_images *im, const char *disk);
/* status.source.virtualDisk of an image a SRC_DISK job made: where its bytes
 * were read. */
struct json_object *vf_cvi_disk_read_from(const struct import_job *j);
#endif
