#include <config.h>
/* The libvirt storage work behind a VirtualDisk (see vd_volume.h).  Runs on a
 * worker: every call here may block on a node's libvirt.
 *
 * An image is copied as a raw volume exactly as long as the image file and
 * streamed in with virStorageVolUpload; with a sparse stream only the file's
 * data travels and its holes stay holes in the volume (a fresh volume is
 * sparse and reads as zeros).  The bytes are the image's bytes, so a qcow2
 * image arrives as a qcow2 file; the pool is refreshed afterwards so libvirt
 * reads the format from the file before the volume is grown. */
#include "vd_volume.h"
#include <virtfleet/node_connection.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

struct vf_vd_volume_job *vf_vd_volume_job_new(enum vf_vd_op op)
{
    struct vf_vd_volume_job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->op = op;
    j->src_fd = -1;
    j->dst_fd = -1;
    atomic_init(&j->cancel, false);
    atomic_init(&j->done_bytes, 0);
    atomic_init(&j->total_bytes, 0);
    return j;
}

void vf_vd_volume_job_free(struct vf_vd_volume_job *j)
{
    if (!j)
        return;
    if (j->conn)
        virConnectClose(j->conn);
    if (j->dom_conn)
        virConnectClose(j->dom_conn);
    for (size_t i = 0; i < j->n_candidates; i++)
        if (j->candidates[i].conn)
            virConnectClose(j->candidates[i].conn);
    if (j->src_fd >= 0)
        close(j->src_fd);
    free(j);
}

int vf_vd_volume_xml(const char *name, const char *format, uint64_t capacity, char **xml,
                     struct vf_error *err)
{
    *xml = NULL;
    if (!name || !*name || strchr(name, '/') || strspn(name, "abcdefghijklmnopqrstuvwxyz"
                                                       "0123456789-.") != strlen(name))
        return vf_error_set(err, -EINVAL, 500, "InternalError", "", "volume name \"%s\" is not "
                            "a plain file name", name ? name : "");
    if (!format || (strcmp(format, "raw") && strcmp(format, "qcow2")))
        return vf_error_set(err, -EINVAL, 500, "InternalError", "",
                            "volume format \"%s\" is neither raw nor qcow2",
                            format ? format : "");
    /* allocation 0: a sparse file (raw) or metadata only (qcow2). */
    if (asprintf(xml, "<volume>\n  <name>%s</name>\n  <allocation unit='bytes'>0</allocation>\n"
                 "  <capacity unit='bytes'>%" PRIu64 "</capacity>\n  <target>\n"
                 "    <format type='%s'/>\n  </target>\n</volume>\n", name, capacity,
                 format) < 0) {
        *xml = NULL;
        return vf_error_set(err, -ENOMEM, 500, "InternalError", "", "out of memory");
    }
    return 0;
}

int vf_vd_file_section(int fd, uint64_t offset, uint64_t size, bool *in_data, uint64_t *length)
{
    *in_data = false;
    *length = 0;
    if (offset >= size)
        return 0;
    off_t data = lseek(fd, (off_t)offset, SEEK_DATA);
    if (data < 0 && errno == ENXIO) {
        *length = size - offset;   /* a hole up to the end */
        return 0;
    }
    if (data < 0) {
        if (errno != EINVAL && errno != ENOTSUP)
            return -errno;
        *in_data = true;           /* no hole support: all data */
        *length = size - offset;
        return 0;
    }
    if ((uint64_t)data > offset) {
        *length = ((uint64_t)data < size ? (uint64_t)data : size) - offset;
        return 0;
    }
    off_t hole = lseek(fd, (off_t)offset, SEEK_HOLE);
    if (hole < 0)
        return -errno;
    *in_data = true;
    *length = ((uint64_t)hole < size ? (uint64_t)hole : size) - offset;
    return 0;
}

/* ---- libvirt errors ------------------------------------------------------------ */

static int lv_fail(struct vf_vd_volume_job *j, int status, const char *reason, const char *what)
{
    const char *msg = virGetLastErrorMessage();
    j->lv_code = virGetLastErrorCode();   /* tells a final failure from a passing one */
    return vf_error_set(&j->err, -EIO, status, reason, "", "node \"%s\": %s: %s", j->node, what,
                        msg ? msg : "unknown libvirt error");
}

static virStoragePoolPtr pool_open(struct vf_vd_volume_job *j, virConnectPtr conn)
{
    virStoragePoolPtr pool = virStoragePoolLookupByName(conn, j->pool);
    if (!pool) {
        char what[512];
        snprintf(what, sizeof what, "storage pool \"%s\"", j->pool);
        lv_fail(j, 422, "PoolNotFound", what);
        return NULL;
    }
    if (virStoragePoolIsActive(pool) != 1) {
        vf_error_set(&j->err, -EIO, 422, "PoolNotActive", "", "node \"%s\": storage pool \"%s\" "
                     "is not active (virsh pool-start %s)", j->node, j->pool, j->pool);
        virStoragePoolFree(pool);
        return NULL;
    }
    return pool;
}

/* The volume, or NULL: *missing tells "no such volume" from a failure. */
static virStorageVolPtr vol_open(struct vf_vd_volume_job *j, virStoragePoolPtr pool, bool *missing)
{
    *missing = false;
    virStorageVolPtr vol = virStorageVolLookupByName(pool, j->volume);
    if (!vol) {
        if (virGetLastErrorCode() == VIR_ERR_NO_STORAGE_VOL) {
            *missing = true;
            virResetLastError();
        } else {
            lv_fail(j, 500, "VolumeError", "volume lookup");
        }
    }
    return vol;
}

/* Capacity and path of vol into the job's results. */
static int vol_result(struct vf_vd_volume_job *j, virStorageVolPtr vol)
{
    virStorageVolInfo info;
    if (virStorageVolGetInfo(vol, &info) < 0)
        return lv_fail(j, 500, "VolumeError", "volume info");
    char *path = virStorageVolGetPath(vol);
    if (!path)
        return lv_fail(j, 500, "VolumeError", "volume path");
    snprintf(j->path, sizeof j->path, "%s", path);
    free(path);
    j->capacity_out = info.capacity;
    return 0;
}

/* ---- the gate of a shared connection ----------------------------------------- */

/* The core's gate of a node's shared connection (module.h node_gate_enter): one
 * thread at a time waits on it.  The services table is the same for every
 * instance of the module: set once at start, read by the workers after; NULL
 * (the unit tests) gates nothing. */
static const struct vf_core *gate_core;

void vf_vd_volume_init(const struct vf_core *core)
{
    gate_core = core;
}

static void gate_enter(void *conn)
{
    if (gate_core && conn)
        gate_core->node_gate_enter(conn);
}

static void gate_leave(void *conn)
{
    if (gate_core && conn)
        gate_core->node_gate_leave(conn);
}

/* ---- CHOOSE ------------------------------------------------------------------ */

static int run_choose(struct vf_vd_volume_job *j)
{
    char why[1024] = "";
    size_t o = 0;
    unsigned long long best = 0;
    uint64_t need = j->src_bytes;
    for (size_t i = 0; i < j->n_candidates; i++) {
        struct vf_vd_candidate *c = &j->candidates[i];
        char note[320] = "";
        snprintf(j->node, sizeof j->node, "%s", c->node);
        gate_enter(c->conn);
        virStoragePoolPtr pool = pool_open(j, c->conn);
        virStoragePoolInfo info;
        if (pool) {
            /* Fails while another upload into the pool runs: the last figures do. */
            if (virStoragePoolRefresh(pool, 0) < 0)
                virResetLastError();
            if (virStoragePoolGetInfo(pool, &info) < 0) {
                lv_fail(j, 500, "PoolError", "pool info");
            } else if (info.available < need) {
                snprintf(note, sizeof note, "%s: %llu bytes free in pool \"%s\"", c->node,
                         info.available, j->pool);
            } else if (!j->chosen[0] || info.available > best) {
                best = info.available;
                snprintf(j->chosen, sizeof j->chosen, "%s", c->node);
            }
            virStoragePoolFree(pool);
        }
        gate_leave(c->conn);
        if (!note[0] && j->err.message[0])
            snprintf(note, sizeof note, "%s", j->err.message);
        j->err.message[0] = '\0';
        if (note[0] && o < sizeof why)
            o += (size_t)snprintf(why + o, sizeof why - o, "%s%s", o ? "; " : "", note);
    }
    if (j->chosen[0])
        return 0;
    /* Each node's own failure is in the message; together they say "none
     * now", which a node that comes back or gets room changes. */
    j->lv_code = 0;
    if (j->n_candidates == 0)
        return vf_error_set(&j->err, -ENOENT, 409, "NoNode", "", "no Ready node to create the "
                            "volume on");
    return vf_error_set(&j->err, -ENOSPC, 409, "NoNode", "", "no node can hold the volume "
                        "(%" PRIu64 " bytes to copy): %s", need, why);
}

/* ---- CREATE ------------------------------------------------------------------ */

struct sender {
    struct vf_vd_volume_job *j;
    uint64_t offset;
};

static int send_data(virStreamPtr st, char *data, size_t nbytes, void *opaque)
{
    struct sender *s = opaque;
    (void)st;
    if (atomic_load(&s->j->cancel))
        return -1;
    if (s->offset >= s->j->src_bytes)
        return 0;
    if (nbytes > s->j->src_bytes - s->offset)
        nbytes = (size_t)(s->j->src_bytes - s->offset);
    ssize_t n;
    do
        n = pread(s->j->src_fd, data, nbytes, (off_t)s->offset);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -1;
    s->offset += (uint64_t)n;
    atomic_store(&s->j->done_bytes, s->offset);
    return (int)n;
}

static int send_hole(virStreamPtr st, int *in_data, long long *length, void *opaque)
{
    struct sender *s = opaque;
    bool data;
    uint64_t len;
    (void)st;
    if (atomic_load(&s->j->cancel) ||
        vf_vd_file_section(s->j->src_fd, s->offset, s->j->src_bytes, &data, &len) < 0)
        return -1;
    *in_data = data;
    *length = (long long)len;
    return 0;
}

static int send_skip(virStreamPtr st, long long length, void *opaque)
{
    struct sender *s = opaque;
    (void)st;
    if (atomic_load(&s->j->cancel) || length < 0)
        return -1;
    s->offset += (uint64_t)length;
    atomic_store(&s->j->done_bytes, s->offset);
    return 0;
}

static int upload(struct vf_vd_volume_job *j, virStorageVolPtr vol)
{
    virStreamPtr st = virStreamNew(j->conn, 0);
    if (!st)
        return lv_fail(j, 500, "CopyFailed", "stream");
    struct sender s = {.j = j};
    int rc = 0;
    atomic_store(&j->total_bytes, j->src_bytes);
    if (virStorageVolUpload(vol, st, 0, j->src_bytes, VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM) < 0) {
        rc = lv_fail(j, 500, "CopyFailed", "upload");
        virStreamFree(st);
        return rc;
    }
    /* A failed SendAll has aborted the stream itself. */
    if (virStreamSparseSendAll(st, send_data, send_hole, send_skip, &s) < 0) {
        if (atomic_load(&j->cancel))
            rc = vf_error_set(&j->err, -ECANCELED, 409, "Canceled", "", "the copy was canceled");
        else
            rc = lv_fail(j, 500, "CopyFailed", "copying the image");
    } else if (virStreamFinish(st) < 0) {
        rc = lv_fail(j, 500, "CopyFailed", "finishing the copy");
    }
    virStreamFree(st);
    return rc;
}

static int run_create(struct vf_vd_volume_job *j)
{
    virStoragePoolPtr pool = pool_open(j, j->conn);
    virStorageVolPtr vol = NULL;
    char *xml = NULL;
    bool missing;
    int rc;
    if (!pool)
        return -EIO;
    /* A volume of this name is what an interrupted copy left: start over. */
    if ((vol = vol_open(j, pool, &missing)) != NULL) {
        if (virStorageVolDelete(vol, 0) < 0) {
            rc = lv_fail(j, 500, "VolumeError", "deleting the unfinished volume");
            goto out;
        }
        virStorageVolFree(vol);
        vol = NULL;
    } else if (!missing) {
        rc = -EIO;
        goto out;
    }
    /* From here until a volume is made, a failure leaves none behind. */
    j->no_volume = true;
    bool copy = j->src_fd >= 0;
    rc = vf_vd_volume_xml(j->volume, copy ? "raw" : j->format,
                          copy ? j->src_bytes : j->capacity, &xml, &j->err);
    if (rc < 0)
        goto out;
    if (!(vol = virStorageVolCreateXML(pool, xml, 0))) {
        rc = lv_fail(j, 500, "VolumeError", "creating the volume");
        goto out;
    }
    j->no_volume = false;
    if (copy) {
        if ((rc = upload(j, vol)) < 0) {
            /* A dropped connection cannot delete it: the next attempt will. */
            j->no_volume = virStorageVolDelete(vol, 0) == 0;
            goto out;
        }
        /* libvirt reads the format from the file now (a copied qcow2). */
        if (strcmp(j->format, "raw") && virStoragePoolRefresh(pool, 0) < 0)
            virResetLastError();
        virStorageVolFree(vol);
        if (!(vol = vol_open(j, pool, &missing))) {
            j->no_volume = missing;
            rc = missing ? vf_error_set(&j->err, -ENOENT, 500, "VolumeError", "",
                                        "node \"%s\": volume \"%s\" vanished after the copy",
                                        j->node, j->volume) : -EIO;
            goto out;
        }
    }
    if ((rc = vol_result(j, vol)) < 0)
        goto out;
    if (j->capacity > j->capacity_out) {
        if (virStorageVolResize(vol, j->capacity, 0) < 0) {
            rc = lv_fail(j, 500, "ResizeFailed", "growing the volume to its size");
            j->no_volume = virStorageVolDelete(vol, 0) == 0;
            goto out;
        }
        rc = vol_result(j, vol);
    }
out:
    free(xml);
    if (vol)
        virStorageVolFree(vol);
    virStoragePoolFree(pool);
    return rc;
}

/* ---- RESIZE / DELETE ------------------------------------------------------------ */

static int run_resize(struct vf_vd_volume_job *j)
{
    virStoragePoolPtr pool = pool_open(j, j->conn);
    if (!pool)
        return -EIO;
    bool missing;
    int rc = 0;
    virStorageVolPtr vol = vol_open(j, pool, &missing);
    if (!vol) {
        virStoragePoolFree(pool);
        return missing ? vf_error_set(&j->err, -ENOENT, 404, "VolumeNotFound", "",
                                      "node \"%s\": volume \"%s\" is not in pool \"%s\"",
                                      j->node, j->volume, j->pool) : -EIO;
    }
    if ((rc = vol_result(j, vol)) == 0 && j->capacity > j->capacity_out) {
        virDomainPtr dom = j->domain[0] && j->dom_conn
                               ? virDomainLookupByName(j->dom_conn, j->domain) : NULL;
        if (dom && virDomainIsActive(dom) == 1) {
            /* QEMU holds the image: it grows it and tells the guest. */
            if (virDomainBlockResize(dom, j->path, j->capacity, VIR_DOMAIN_BLOCK_RESIZE_BYTES) < 0)
                rc = lv_fail(j, 500, "ResizeFailed", "growing the disk of the running VM");
        } else {
            virResetLastError();
            if (virStorageVolResize(vol, j->capacity, 0) < 0)
                rc = lv_fail(j, 500, "ResizeFailed", "growing the volume");
        }
        if (dom)
            virDomainFree(dom);
        if (rc == 0)
            rc = vol_result(j, vol);
    }
    virStorageVolFree(vol);
    virStoragePoolFree(pool);
    return rc;
}

static int run_delete(struct vf_vd_volume_job *j)
{
    virStoragePoolPtr pool = pool_open(j, j->conn);
    if (!pool)
        return -EIO;
    bool missing;
    int rc = 0;
    virStorageVolPtr vol = vol_open(j, pool, &missing);
    if (vol) {
        if (virStorageVolDelete(vol, 0) < 0)
            rc = lv_fail(j, 500, "VolumeError", "deleting the volume");
        virStorageVolFree(vol);
    } else if (!missing) {
        rc = -EIO;
    }
    virStoragePoolFree(pool);
    return rc;
}

/* ---- DOWNLOAD ------------------------------------------------------------------ */

struct receiver {
    struct vf_vd_volume_job *j;
    uint64_t offset, data;
    bool too_large;
};

static int recv_data(virStreamPtr st, const char *buf, size_t nbytes, void *opaque)
{
    struct receiver *r = opaque;
    (void)st;
    if (atomic_load(&r->j->cancel))
        return -1;
    if (nbytes > r->j->max_bytes - r->data) {
        r->too_large = true;
        return -1;
    }
    for (size_t done = 0; done < nbytes;) {
        ssize_t n = pwrite(r->j->dst_fd, buf + done, nbytes - done, (off_t)(r->offset + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        done += (size_t)n;
    }
    r->offset += nbytes;
    r->data += nbytes;
    atomic_store(&r->j->done_bytes, r->offset);
    return (int)nbytes;
}

/* A hole: skipped, so the file has one there too (it started empty). */
static int recv_hole(virStreamPtr st, long long length, void *opaque)
{
    struct receiver *r = opaque;
    (void)st;
    if (atomic_load(&r->j->cancel) || length < 0)
        return -1;
    r->offset += (uint64_t)length;
    atomic_store(&r->j->done_bytes, r->offset);
    return 0;
}

static int run_download(struct vf_vd_volume_job *j)
{
    virStoragePoolPtr pool = pool_open(j, j->conn);
    virStreamPtr st = NULL;
    bool missing;
    int rc = 0;
    if (!pool)
        return -EIO;
    virStorageVolPtr vol = vol_open(j, pool, &missing);
    if (!vol) {
        virStoragePoolFree(pool);
        return missing ? vf_error_set(&j->err, -ENOENT, 404, "VolumeNotFound", "",
                                      "node \"%s\": volume \"%s\" is not in pool \"%s\"",
                                      j->node, j->volume, j->pool) : -EIO;
    }
    /* The file's own length (a qcow2's, not the disk it holds): the total. */
    virStorageVolInfo info;
    if (virStorageVolGetInfoFlags(vol, &info, VIR_STORAGE_VOL_GET_PHYSICAL) == 0)
        atomic_store(&j->total_bytes, info.allocation);
    else
        virResetLastError();
    struct receiver r = {.j = j};
    if (ftruncate(j->dst_fd, 0) < 0) {
        rc = vf_error_set(&j->err, -errno, 500, "IOError", "", "emptying the download file: %s",
                          strerror(errno));
        goto out;
    }
    if (!(st = virStreamNew(j->conn, 0))) {
        rc = lv_fail(j, 500, "DownloadFailed", "stream");
        goto out;
    }
    if (virStorageVolDownload(vol, st, 0, 0, VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM) < 0) {
        rc = lv_fail(j, 500, "DownloadFailed", "reading the volume");
        goto out;
    }
    /* A failed RecvAll has aborted the stream itself. */
    if (virStreamSparseRecvAll(st, recv_data, recv_hole, &r) < 0) {
        if (atomic_load(&j->cancel))
            rc = vf_error_set(&j->err, -ECANCELED, 409, "Canceled", "", "the copy was canceled");
        else if (r.too_large)
            rc = vf_error_set(&j->err, -EFBIG, 413, "TooLarge", "", "node \"%s\": volume \"%s\" "
                              "holds more than %" PRIu64 " bytes of data, the room left in the "
                              "image store", j->node, j->volume, j->max_bytes);
        else
            rc = lv_fail(j, 500, "DownloadFailed", "reading the volume");
    } else if (virStreamFinish(st) < 0) {
        rc = lv_fail(j, 500, "DownloadFailed", "finishing the read");
    } else if (ftruncate(j->dst_fd, (off_t)r.offset) < 0) {
        /* A hole at the end is only a length. */
        rc = vf_error_set(&j->err, -errno, 500, "IOError", "", "sizing the download file: %s",
                          strerror(errno));
    }
    if (rc == 0)
        atomic_store(&j->total_bytes, r.offset);
out:
    if (st)
        virStreamFree(st);
    virStorageVolFree(vol);
    virStoragePoolFree(pool);
    return rc;
}

/* ---- a connection of the stream's own --------------------------------------------------
 *
 * A copy into a volume and a DOWNLOAD run start to end on a connection of
 * their own to the node, opened and closed here on the worker: a stream on
 * the shared one crashes the daemon when the node hangs (the libvirt 9.0
 * hazard, see <virtfleet/node_connection.h>).  On a hung node its keepalive
 * fails the copy; every call after that fails at once, a CREATE's delete of
 * its partial volume included, which the next attempt then does. */
static bool runs_on_own_connection(const struct vf_vd_volume_job *j)
{
    return j->conn && ((j->op == VF_VD_CREATE && j->src_fd >= 0) || j->op == VF_VD_DOWNLOAD);
}

static int own_connection_open(struct vf_vd_volume_job *j, virConnectPtr *own)
{
    char why[sizeof j->err.message];
    *own = vf_node_connection_open_own(j->conn, why, sizeof why);
    if (*own)
        return 0;
    j->lv_code = virGetLastErrorCode();   /* tells a final failure from a passing one */
    return vf_error_set(&j->err, -EIO, 500,
                        j->op == VF_VD_DOWNLOAD ? "DownloadFailed" : "CopyFailed", "",
                        "node \"%s\": the stream's own connection: %s", j->node, why);
}

static int run_on_own_connection(struct vf_vd_volume_job *j,
                                 int (*run)(struct vf_vd_volume_job *j))
{
    virConnectPtr shared = j->conn, own;
    int rc = own_connection_open(j, &own);
    if (rc < 0)
        return rc;
    j->conn = own;
    rc = run(j);
    j->conn = shared;
    /* Closing talks to the node (or fails at once on a dead connection):
     * here on the worker, never on the loop thread. */
    virConnectClose(own);
    virResetLastError();
    return rc;
}

/* Short calls on the node's shared connection, inside its gate. */
static int run_gated(struct vf_vd_volume_job *j, int (*run)(struct vf_vd_volume_job *j))
{
    gate_enter(j->conn);
    int rc = run(j);
    gate_leave(j->conn);
    return rc;
}

void vf_vd_volume_run(struct vf_vd_volume_job *j)
{
    switch (j->op) {
    case VF_VD_CHOOSE: j->rc = run_choose(j); break;   /* each candidate in its gate */
    case VF_VD_CREATE:
        j->rc = runs_on_own_connection(j) ? run_on_own_connection(j, run_create)
                                          : run_gated(j, run_create);
        break;
    case VF_VD_RESIZE: j->rc = run_gated(j, run_resize); break;
    case VF_VD_DELETE: j->rc = run_gated(j, run_delete); break;
    case VF_VD_DOWNLOAD:
        j->rc = runs_on_own_connection(j) ? run_on_own_connection(j, run_download)
                                          : run_gated(j, run_download);
        break;
    }
    if (j->rc < 0 && !j->err.message[0])
        vf_error_set(&j->err, j->rc, 500, "InternalError", "", "node \"%s\": %s", j->node,
                     strerror(-j->rc));
}
