/* The libvirt storage work behind a VirtualDisk: one job runs on a worker and
 * talks to one node's libvirt (storage pools and volumes).  Only the job's
 * counters (done/total) and its cancel flag are shared with the loop thread;
 * everything else is set before it is submitted and read after it ended.
 *
 *   CHOOSE  of the candidate nodes whose pool is active, the one with the most
 *           room that fits `capacity` (a local pool's disk lives there)
 *   CREATE  the volume: blank (qcow2 of `capacity`), or a copy of an image
 *           file streamed with virStorageVolUpload as a sparse stream (holes
 *           stay holes), then grown to `capacity`; a volume of the same name
 *           left by an interrupted copy is deleted first
 *   RESIZE  grow the volume to `capacity`; when a running domain uses it,
 *           through that domain (virDomainBlockResize) so QEMU sees it
 *   DELETE  the volume (gone already is success)
 *   DOWNLOAD the volume's bytes into a local file with virStorageVolDownload
 *           as a sparse stream (holes stay holes), at most `max_bytes` of data:
 *           an image made from the disk (cvi_import.c) */
#ifndef VF_IMAGES_VD_VOLUME_H
#define VF_IMAGES_VD_VOLUME_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <virtfleet/module.h>

enum vf_vd_op { VF_VD_CHOOSE, VF_VD_CREATE, VF_VD_RESIZE, VF_VD_DELETE, VF_VD_DOWNLOAD };

#define VF_VD_MAX_CANDIDATES 64

struct vf_vd_candidate {
    char node[256];
    void *conn;                 /* virConnectPtr with a reference the job owns */
};

struct vf_vd_volume_job {
    /* Request. */
    enum vf_vd_op op;
    char node[256];             /* CREATE/RESIZE/DELETE: where the volume is */
    void *conn;                 /* its virConnectPtr (a reference the job owns); a copy
                                 * (CREATE from src_fd) and a DOWNLOAD stream over a
                                 * connection of their own to its URI (vd_volume.c) */
    char pool[256], volume[256];
    char format[8];             /* CREATE: "raw" or "qcow2" (of the image, or of a blank disk) */
    uint64_t capacity;          /* CHOOSE/CREATE/RESIZE: bytes the disk should have */
    int src_fd;                 /* CREATE: the image file to copy, or -1 for a blank disk */
    uint64_t src_bytes;         /* its length */
    char domain[256];           /* RESIZE: a running domain using the volume, or "" */
    void *dom_conn;             /* its node's virConnectPtr (a reference the job owns) */
    struct vf_vd_candidate candidates[VF_VD_MAX_CANDIDATES];   /* CHOOSE */
    size_t n_candidates;
    int dst_fd;                 /* DOWNLOAD: an empty file for the volume's bytes (borrowed) */
    uint64_t max_bytes;         /* DOWNLOAD: at most this much data (holes take none) */

    atomic_bool cancel;
    _Atomic uint64_t done_bytes, total_bytes;

    /* Result. */
    int rc;
    struct vf_error err;
    int lv_code;                /* the libvirt error code of the failure, 0: not libvirt's */
    bool no_volume;             /* CREATE failed and the node was seen to hold no volume of
                                 * that name afterwards (else a partial one may be left) */
    char chosen[256];           /* CHOOSE */
    char path[4096];            /* CREATE/RESIZE: the volume's path on its node */
    uint64_t capacity_out;      /* CREATE/RESIZE: the volume's capacity afterwards */
};

/* A job with src_fd and dst_fd -1 and nothing referenced; NULL without memory. */
struct vf_vd_volume_job *vf_vd_volume_job_new(enum vf_vd_op op);
/* Drops the connection references and closes src_fd. */
void vf_vd_volume_job_free(struct vf_vd_volume_job *j);
/* The work (on a worker thread): fills rc and err. */
void vf_vd_volume_run(struct vf_vd_volume_job *j);
/* Once at module start: the core whose gate (node_gate_enter) the short calls on a
 * shared connection take.  Without it (the unit tests) nothing is gated. */
void vf_vd_volume_init(const struct vf_core *core);

/* The <volume> XML virStorageVolCreateXML gets (pure; *xml: free()).  name
 * must be a plain file name (no '/'), format "raw" or "qcow2". */
int vf_vd_volume_xml(const char *name, const char *format, uint64_t capacity, char **xml,
                     struct vf_error *err);
/* One section of a (possibly sparse) file at offset: *in_data and its length
 * up to the next change or end, from SEEK_DATA/SEEK_HOLE (a file system
 * without them is all data).  At or past the end: not data, length 0. */
int vf_vd_file_section(int fd, uint64_t offset, uint64_t size, bool *in_data, uint64_t *length);
#endif
