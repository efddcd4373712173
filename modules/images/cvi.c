#include <config.h>
/* ClusterVirtualImage: the controller every image shares (the kind is in
 * cvi_kind.c, the import job a worker runs in cvi_import.c, and what an image
 * made from a VirtualDisk adds, its hold on the disk and the disk watch, in
 * cvi_disk.c).
 *
 * Owns: ClusterVirtualImage objects (status, finalizer virtfleet.io/image-cleanup)
 * and their files in the image store.  Watches: ClusterVirtualImage (every
 * change is reconciled, level-triggered).  VMs are read from the module's
 * index (vm_refs.h), whose watch (module.c) kicks what a changed VM named
 * before or after the change: a deleted image is held in Terminating while a
 * VM's spec.blockDeviceRefs names it, and an image that waits for its disk is
 * looked at again when a VM that names the disk changes.
 *
 * An import is one worker job: fetch (HTTP, registry), take the upload or read
 * a disk's volume from its node, then validate and convert into the store,
 * publish atomically.  The job owns its `struct import_job`; the loop side
 * keeps a pointer in the image's record and reads its progress counters from a
 * 1 s timer, the only thing shared between the threads (atomics).  Restarted
 * daemon: an image found in Provisioning is imported again, resuming its
 * download file where the server allows. */
#include "cvi_internal.h"
#include "cdrom.h"
#include "ctl_util.h"
#include "vm_refs.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TICK_MS 1000


/* Jobs of every instance of the module (it may restart while jobs still run):
 * a new import of a uid waits until the old one has let go of its files.
 * Loop thread only. */
static struct import_job *jobs_in_flight;

const struct import_job *vf_cvi_jobs_in_flight(void)
{
    return jobs_in_flight;
}

/* ---- small helpers ------------------------------------------------------------ */

static int64_t now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec;
}

static int64_t parse_rfc3339(const char *s)
{
    struct tm tm = {0};
    if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm))
        return 0;
    return (int64_t)timegm(&tm);
}

void vf_cvi_human_size(uint64_t bytes, char *buf, size_t len)
{
    static const char *const units[] = {"B", "Ki", "Mi", "Gi", "Ti", "Pi"};
    double v = (double)bytes;
    unsigned u = 0;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%" PRIu64 "B", bytes);
    else
        snprintf(buf, len, "%.1f%s", v, units[u]);
}

/* The Ready condition: the one condition the images carry. */
static void set_ready(struct json_object *status, bool ready, const char *reason, const char *msg)
{
    vf_images_condition_set(status, "Ready", ready, reason, msg);
}

static void set_in_use(struct json_object *status, const char *users)
{
    struct json_object *conds = member(status, "conditions");
    if (!conds || !json_object_is_type(conds, json_type_array))
        return;
    vf_images_condition_remove(status, "InUse");
    if (users) {
        char msg[MSG_MAX];
        struct json_object *c = json_object_new_object();
        snprintf(msg, sizeof msg, "deletion waits until no virtual machine uses the image: "
                 "used by %s", users);
        vf_images_set_str(c, "type", "InUse");
        vf_images_set_str(c, "status", "True");
        vf_images_set_str(c, "reason", "UsedByVirtualMachine");
        vf_images_set_str(c, "message", msg);
        json_object_array_add(member(status, "conditions"), c);
    }
}

static void write_status(struct vf_images *im, const char *name, struct json_object *status)
{
    vf_images_status_write(im->core, im->ctx, VF_CVI_KIND, "image", name, status);
}

/* ---- records -------------------------------------------------------------------- */

static struct cvi_rec *rec_find(struct vf_images *im, const char *name)
{
    for (struct cvi_rec *r = im->recs; r; r = r->next)
        if (strcmp(r->name, name) == 0)
            return r;
    return NULL;
}

static struct cvi_rec *rec_get(struct vf_images *im, const char *name)
{
    struct cvi_rec *r = rec_find(im, name);
    if (r)
        return r;
    if (!(r = calloc(1, sizeof *r)) || !(r->name = strdup(name))) {
        free(r);
        return NULL;
    }
    r->next = im->recs;
    im->recs = r;
    return r;
}

/* Asks a running import to stop; its done() comes back to the loop. */
static void job_cancel(struct import_job *j)
{
    atomic_store(&j->cancel, true);
    if (j->vol)
        atomic_store(&j->vol->cancel, true);
}

static void token_close(struct vf_images *im, struct cvi_rec *r)
{
    if (r->token[0] && im->upload)
        vf_upload_token_remove(im->upload, r->token);
    r->token[0] = '\0';
}

static void rec_free(struct vf_images *im, struct cvi_rec *r)
{
    for (struct cvi_rec **pp = &im->recs; *pp; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    if (r->job)
        job_cancel(r->job);   /* done() finds no record and cleans up */
    token_close(im, r);
    free(r->name);
    free(r);
}

/* ---- reconciliation --------------------------------------------------------------- */

static void reconcile(struct vf_images *im, const struct json_object *obj);

static void reconcile_name(struct vf_images *im, const char *name)
{
    struct json_object *obj = NULL;
    if (im->core->object_get(im->ctx, VF_CVI_KIND, name, &obj) == 0) {
        reconcile(im, obj);
        json_object_put(obj);
    }
}

static bool uid_busy(const char *uid)
{
    for (struct import_job *j = jobs_in_flight; j; j = j->next)
        if (strcmp(j->uid, uid) == 0)
            return true;
    return false;
}

static void job_done(void *opaque);

static bool registry_insecure(struct vf_images *im, const char *image)
{
    struct json_object *list = im->set.insecure_registries;
    size_t n = list ? json_object_array_length(list) : 0;
    for (size_t i = 0; i < n; i++) {
        const char *h = json_object_get_string(json_object_array_get_idx(list, i));
        size_t hl = strlen(h);
        if (hl && !strncmp(image, h, hl) && image[hl] == '/')
            return true;
    }
    return false;
}

/* Start the import of obj's current spec.  false when it cannot start yet
 * (an earlier job of the same uid still runs, a disk's node is not Ready):
 * the tick tries again. */
bool vf_cvi_job_start(struct vf_images *im, struct cvi_rec *r, const struct json_object *obj,
                      enum source src, const char *copy_from, const char *copy_format)
{
    const struct json_object *ds = member(member(obj, "spec"), "dataSource");
    if (uid_busy(r->uid)) {
        r->kick = true;
        return false;
    }
    struct import_job *j = calloc(1, sizeof *j);
    if (!j)
        return false;
    snprintf(j->name, sizeof j->name, "%s", r->name);
    snprintf(j->uid, sizeof j->uid, "%s", r->uid);
    j->generation = vf_images_generation(obj);
    j->src = src;
    j->dvcr = im->dvcr;
    j->room = vf_dvcr_room(&im->dvcr, r->uid);
    j->max_retries = im->set.max_retries;
    j->stall_timeout_s = im->set.stall_timeout_s;
    struct vf_error err = {0};
    bool ok = true;
    if (src == SRC_HTTP) {
        const struct json_object *http = member(ds, "http");
        char sum[128];
        ok = (j->url = strdup(string(http, "url"))) != NULL &&
             vf_cvi_checksum_of(member(http, "checksum"), sum, sizeof sum, &err) == 0 &&
             (!sum[0] || (j->checksum = strdup(sum))) &&
             vf_cvi_ca_pem_of(string(http, "caBundle"), "caBundle", &j->ca_pem, &err) == 0;
    } else if (src == SRC_REGISTRY) {
        const struct json_object *ci = member(ds, "containerImage");
        ok = (j->image = strdup(string(ci, "image"))) != NULL &&
             vf_cvi_ca_pem_of(string(ci, "caBundle"), "caBundle", &j->ca_pem, &err) == 0;
        j->plain_http = ok && registry_insecure(im, j->image);
        snprintf(j->auth_file, sizeof j->auth_file, "%s", im->set.auth_file);
    } else if (src == SRC_COPY) {
        ok = (j->copy_from = strdup(copy_from)) != NULL;
        snprintf(j->copy_format, sizeof j->copy_format, "%s", copy_format);
    } else if (src == SRC_DISK) {
        /* copy_from: the VirtualDisk's name. */
        snprintf(j->vd_name, sizeof j->vd_name, "%s", copy_from);
        snprintf(j->copy_format, sizeof j->copy_format, "%s", copy_format);
        ok = (j->vol = vf_cvi_disk_download_job(im, copy_from)) != NULL;
    }
    if (!ok) {
        vf_cvi_job_free(j);
        r->kick = true;
        return false;
    }
    j->im = im;
    vf_images_ref(im);
    if (im->core->job_submit(im->ctx, "image import", vf_cvi_job_run, job_done, j) < 0) {
        vf_images_unref(im);
        vf_cvi_job_free(j);
        r->kick = true;
        return false;
    }
    j->next = jobs_in_flight;
    jobs_in_flight = j;
    r->job = j;
    r->progress[0] = '\0';
    return true;
}

static void fail_status(struct vf_images *im, const char *name, const struct json_object *obj,
                        const char *reason, const char *msg)
{
    struct json_object *status = vf_images_status_copy(obj);
    vf_images_set_str(status, "phase", "Failed");
    json_object_object_del(status, "imageUploadURLs");
    json_object_object_del(status, "uploadExpiresAt");
    set_ready(status, false, reason, msg);
    write_status(im, name, status);
    json_object_put(status);
    im->core->log(im->ctx, VF_LOG_WARN, "image \"%s\": failed (%s): %s", name, reason, msg);
}

static void job_done(void *opaque)
{
    struct import_job *j = opaque;
    struct vf_images *im = j->im;
    struct json_object *obj = NULL;
    for (struct import_job **pp = &jobs_in_flight; *pp; pp = &(*pp)->next)
        if (*pp == j) {
            *pp = j->next;
            break;
        }
    if (im->stopped) {
        /* The module stopped (or restarts): keep the download so the next start
         * resumes it; a published image is found again by its uid. */
        if (j->rc < 0)
            vf_dvcr_remove(&j->dvcr, j->uid, true);
        goto out;
    }
    struct cvi_rec *r = rec_find(im, j->name);
    if (r && r->job == j)
        r->job = NULL;
    if (!r || strcmp(r->uid, j->uid) ||
        im->core->object_get(im->ctx, VF_CVI_KIND, j->name, &obj) < 0) {
        vf_dvcr_remove(&j->dvcr, j->uid, false);   /* the image is gone */
        goto out;
    }
    bool deleting = member(member(obj, "metadata"), "deletionTimestamp") != NULL;
    if (deleting || vf_images_generation(obj) != j->generation || j->rc == -ECANCELED) {
        /* A changed spec restarts from nothing; a deleted image goes. */
        vf_dvcr_remove(&j->dvcr, j->uid, false);
        reconcile(im, obj);
        goto out;
    }
    if (j->rc < 0) {
        vf_dvcr_remove(&j->dvcr, j->uid, false);
        fail_status(im, j->name, obj, j->err.reason[0] ? j->err.reason : "ImportFailed",
                    j->err.message);
        goto out;
    }
    struct json_object *status = vf_images_status_copy(obj);
    char human[32], num[32];
    vf_images_set_str(status, "phase", "Ready");
    vf_images_set_str(status, "progress", "100%");
    vf_images_set_str(status, "format", j->format);
    json_object_object_del(status, "imageUploadURLs");
    json_object_object_del(status, "uploadExpiresAt");
    if (j->src != SRC_COPY) {
        json_object_object_add(status, "cdrom", json_object_new_boolean(j->info.cdrom));
        struct json_object *size = json_object_new_object();
        vf_cvi_human_size(j->stored_bytes, human, sizeof human);
        vf_images_set_str(size, "stored", human);
        snprintf(num, sizeof num, "%" PRIu64, j->stored_bytes);
        vf_images_set_str(size, "storedBytes", num);
        vf_cvi_human_size(j->info.virtual_size, human, sizeof human);
        vf_images_set_str(size, "unpacked", human);
        snprintf(num, sizeof num, "%" PRIu64, j->info.virtual_size);
        vf_images_set_str(size, "unpackedBytes", num);
        json_object_object_add(status, "size", size);
        struct json_object *sums = json_object_new_object();
        vf_images_set_str(sums, "sha256", j->fetch.sha256);
        vf_images_set_str(sums, "md5", j->fetch.md5);
        json_object_object_add(status, "checksums", sums);
        struct json_object *src = json_object_new_object();
        vf_images_set_str(src, "format", vf_image_format_name(j->info.format));
        vf_images_set_str(src, "compression", vf_image_compression_name(j->info.compression));
        if (j->info.subformat[0])
            vf_images_set_str(src, "subformat", j->info.subformat);
        snprintf(num, sizeof num, "%" PRIu64, j->fetch.bytes);
        vf_images_set_str(src, "bytes", num);
        if (j->disk_name[0])
            vf_images_set_str(src, "file", j->disk_name);
        if (j->src == SRC_DISK)   /* where the bytes were read */
            json_object_object_add(src, "virtualDisk", vf_cvi_disk_read_from(j));
        json_object_object_add(status, "source", src);
    } else {
        /* A copy is byte for byte its source: only where it is stored differs. */
        struct json_object *size = member(status, "size");
        if (size && json_object_is_type(size, json_type_object)) {
            vf_cvi_human_size(j->stored_bytes, human, sizeof human);
            vf_images_set_str(size, "stored", human);
            snprintf(num, sizeof num, "%" PRIu64, j->stored_bytes);
            vf_images_set_str(size, "storedBytes", num);
        }
    }
    struct json_object *target = json_object_new_object();
    vf_images_set_str(target, "path", j->final);
    json_object_object_add(status, "target", target);
    set_ready(status, true, "Ready", "the image is stored and ready to use");
    /* With its copies' record from the start: no VM attaches the store's file
     * of an image meant to be copied to the nodes. */
    vf_cdrom_sync(im->cdrom, j->name, j->uid, status);
    write_status(im, j->name, status);
    json_object_put(status);
    im->core->log(im->ctx, VF_LOG_INFO, "image \"%s\": ready (%s, %" PRIu64 " bytes stored)",
                  j->name, j->format, j->stored_bytes);
    if (r)
        r->progress[0] = '\0';
out:
    /* A copy from a disk that ended lets go of the disk (a stopped module
     * keeps the hold: the next start resumes the copy). */
    if (j->src == SRC_DISK && !im->stopped)
        vf_cvi_disk_hold_sync(im, j->vd_name);
    json_object_put(obj);
    vf_cvi_job_free(j);
    vf_images_unref(im);
}

/* Names of the VMs whose blockDeviceRefs name image `name`, comma separated
 * into buf; false when there are none. */
static bool used_by_vms(struct vf_images *im, const char *name, char *buf, size_t len)
{
    size_t o = 0, n;
    const struct vf_vm_info *const *vms = vf_vm_refs_users(im->vm_refs, VF_CVI_KIND, name, &n);
    buf[0] = '\0';
    for (size_t i = 0; i < n && o < len; i++)   /* by VM name */
        o += (size_t)snprintf(buf + o, len - o, "%s\"%s\"", o ? ", " : "", vms[i]->name);
    return o > 0;
}

static void upload_urls(struct vf_images *im, const char *token, struct json_object *status)
{
    char ext[2048], in[512];
    snprintf(in, sizeof in, "http://%s:%u/upload/%s", vf_upload_server_host(im->upload),
             vf_upload_server_port(im->upload), token);
    if (im->set.external_url[0]) {
        size_t l = strlen(im->set.external_url);
        snprintf(ext, sizeof ext, "%s%supload/%s", im->set.external_url,
                 im->set.external_url[l - 1] == '/' ? "" : "/", token);
    } else {
        snprintf(ext, sizeof ext, "%s", in);
    }
    struct json_object *urls = json_object_new_object();
    vf_images_set_str(urls, "external", ext);
    vf_images_set_str(urls, "inCluster", in);
    json_object_object_add(status, "imageUploadURLs", urls);
}

/* Open a fresh upload URL for r and show it. */
static void upload_open(struct vf_images *im, struct cvi_rec *r, struct json_object *status)
{
    char until[32], msg[MSG_MAX];
    token_close(im, r);
    if (vf_upload_token_new(r->token) < 0) {
        r->token[0] = '\0';
        r->kick = true;
        return;
    }
    r->upload_deadline = now_s() + (im->set.upload_timeout_ms + 999) / 1000;
    vf_upload_token_add(im->upload, r->token, r->uid, vf_dvcr_room(&im->dvcr, r->uid),
                        r->upload_deadline);
    vf_images_rfc3339(r->upload_deadline, until, sizeof until);
    vf_images_set_str(status, "phase", "WaitForUserUpload");
    upload_urls(im, r->token, status);
    vf_images_set_str(status, "uploadExpiresAt", until);
    snprintf(msg, sizeof msg, "waiting for the image: PUT it to status.imageUploadURLs.external "
             "(curl URL -T FILE, or virtfleet upload cvi %s FILE) before %s", r->name, until);
    set_ready(status, false, "WaitForUserUpload", msg);
}

/* A restarted daemon (or module) picks up the URL it showed before. */
static void upload_resume(struct vf_images *im, struct cvi_rec *r, const struct json_object *st)
{
    const char *ext = string(member(st, "imageUploadURLs"), "inCluster");
    const char *tok = ext ? strrchr(ext, '/') : NULL;
    if (!tok || strlen(tok + 1) != VF_UPLOAD_TOKEN_HEX - 1)
        return;
    snprintf(r->token, sizeof r->token, "%s", tok + 1);
    r->upload_deadline = parse_rfc3339(string(st, "uploadExpiresAt"));
    vf_upload_token_add(im->upload, r->token, r->uid, vf_dvcr_room(&im->dvcr, r->uid),
                        r->upload_deadline);
}

/* Begin what the spec asks for; the status goes into `status`. */
static void begin_import(struct vf_images *im, struct cvi_rec *r, const struct json_object *obj,
                         struct json_object *status, bool resume)
{
    const char *type = string(member(member(obj, "spec"), "dataSource"), "type");
    if (!member(status, "cdrom"))
        json_object_object_add(status, "cdrom", json_object_new_boolean(false));
    if (str_eq(type, "Upload")) {
        char dl[4096];
        struct stat st;
        /* After a restart in Provisioning the upload is complete on disk. */
        if (resume && vf_dvcr_path(&im->dvcr, r->uid, VF_DVCR_DOWNLOAD, dl, sizeof dl) == 0 &&
            stat(dl, &st) == 0 && st.st_size > 0) {
            if (vf_cvi_job_start(im, r, obj, SRC_UPLOAD, NULL, NULL))
                vf_images_set_str(status, "phase", "Provisioning");
            return;
        }
        upload_open(im, r, status);
        return;
    }
    if (str_eq(type, "ObjectRef") && vf_cvi_disk_source_of(obj)) {
        vf_cvi_disk_begin(im, r, obj, status, vf_cvi_disk_source_of(obj), resume);
        return;
    }
    if (str_eq(type, "ObjectRef")) {
        const char *src_name = string(member(member(member(obj, "spec"), "dataSource"),
                                             "objectRef"), "name");
        struct json_object *src = NULL;
        const struct json_object *ss = NULL;
        char msg[MSG_MAX];
        if (im->core->object_get(im->ctx, VF_CVI_KIND, src_name, &src) == 0)
            ss = member(src, "status");
        const char *path = string(member(ss, "target"), "path");
        if (!str_eq(string(ss, "phase"), "Ready") || !path ||
            member(member(src, "metadata"), "deletionTimestamp")) {
            vf_images_set_str(status, "phase", "Pending");
            snprintf(msg, sizeof msg, "waiting for ClusterVirtualImage \"%s\" to be Ready",
                     src_name);
            set_ready(status, false, "WaitingForSource", msg);
            r->kick = true;
            json_object_put(src);
            return;
        }
        if (vf_cvi_job_start(im, r, obj, SRC_COPY, path, str_eq(string(ss, "format"), "qcow2")
                                                             ? "qcow2" : "raw")) {
            /* What is known of the source already is the copy's too. */
            static const char *const keys[] = {"format", "cdrom", "size", "checksums", "source"};
            for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
                struct json_object *v = member(ss, keys[i]), *c = NULL;
                if (v && json_object_deep_copy(v, &c, NULL) == 0)
                    json_object_object_add(status, keys[i], c);
            }
            vf_images_set_str(status, "phase", "Provisioning");
            vf_images_set_str(status, "progress", "0.0%");
            set_ready(status, false, "Provisioning", "copying the image");
        }
        json_object_put(src);
        return;
    }
    if (vf_cvi_job_start(im, r, obj, str_eq(type, "HTTP") ? SRC_HTTP : SRC_REGISTRY, NULL, NULL)) {
        vf_images_set_str(status, "phase", "Provisioning");
        set_ready(status, false, "Provisioning", str_eq(type, "HTTP")
                                                     ? "downloading the image"
                                                     : "pulling the image from the registry");
    } else if (!string(status, "phase")) {
        vf_images_set_str(status, "phase", "Pending");
    }
}

static void reconcile(struct vf_images *im, const struct json_object *obj)
{
    const struct json_object *meta = member(obj, "metadata");
    const char *name = string(meta, "name"), *uid = string(meta, "uid");
    if (!name || !uid)
        return;
    struct cvi_rec *r = rec_get(im, name);
    if (!r)
        return;
    r->kick = false;
    if (strcmp(r->uid, uid)) {
        /* A new image under an old name: whatever ran for the old one stops. */
        if (r->job)
            job_cancel(r->job);
        r->job = NULL;
        token_close(im, r);
        snprintf(r->uid, sizeof r->uid, "%s", uid);
        r->progress[0] = '\0';
    }
    bool deleting = member(meta, "deletionTimestamp") != NULL;
    if (!vf_images_has_finalizer(obj, VF_CVI_FINALIZER)) {
        /* Not ours yet: take it on.  Being deleted without ours: already
         * cleaned up, another finalizer (a disk copying from it) holds it. */
        if (!deleting)   /* its event brings the image back */
            vf_images_finalizer_update(im->core, im->ctx, VF_CVI_KIND, obj, VF_CVI_FINALIZER,
                                       true);
        return;
    }
    struct json_object *status = vf_images_status_copy(obj);
    const char *phase = string(status, "phase");
    struct json_object *og = member(status, "observedGeneration");
    int64_t gen = vf_images_generation(obj);
    bool current = og && json_object_get_int64(og) == gen;

    if (deleting) {
        char users[MSG_MAX];
        vf_images_set_str(status, "phase", "Terminating");
        token_close(im, r);
        json_object_object_del(status, "imageUploadURLs");
        json_object_object_del(status, "uploadExpiresAt");
        if (r->job) {
            job_cancel(r->job);   /* its done() comes back here */
        } else if (used_by_vms(im, name, users, sizeof users)) {
            set_in_use(status, users);
        } else if (!vf_cdrom_release(im->cdrom, name, uid, status)) {
            set_in_use(status, NULL);   /* its copies on the nodes go first */
        } else {
            set_in_use(status, NULL);
            write_status(im, name, status);
            json_object_put(status);
            vf_dvcr_remove(&im->dvcr, uid, false);
            if (vf_images_finalizer_update(im->core, im->ctx, VF_CVI_KIND, obj, VF_CVI_FINALIZER,
                                           false) == 0)
                im->core->log(im->ctx, VF_LOG_INFO, "image \"%s\": files removed; deleted", name);
            return;
        }
        write_status(im, name, status);
        json_object_put(status);
        return;
    }

    if (!current) {
        /* New, or its spec changed before it was Ready: start over. */
        if (r->job || uid_busy(uid)) {
            /* The running import lets go of its files first; its done() or the
             * tick comes back here. */
            if (r->job)
                job_cancel(r->job);
            else
                r->kick = true;
            vf_images_set_str(status, "phase", "Pending");
            set_ready(status, false, "SpecChanged", "the spec changed; the import restarts");
            write_status(im, name, status);
            json_object_put(status);
            return;
        }
        token_close(im, r);
        if (phase)
            vf_dvcr_remove(&im->dvcr, uid, false);
        static const char *const stale[] = {"imageUploadURLs", "uploadExpiresAt", "format",
                                            "size", "checksums", "source", "target", "cdrom"};
        for (size_t i = 0; i < sizeof stale / sizeof stale[0]; i++)
            json_object_object_del(status, stale[i]);
        /* The progress column starts over from 0.0%, never blank. */
        vf_images_set_str(status, "progress", "0.0%");
        json_object_object_add(status, "observedGeneration", json_object_new_int64(gen));
        begin_import(im, r, obj, status, false);
    } else if (str_eq(phase, "Provisioning") && !r->job) {
        /* A restart found it mid-import: resume (the download file is kept). */
        begin_import(im, r, obj, status, true);
    } else if (str_eq(phase, "Pending") && !r->job) {
        begin_import(im, r, obj, status, false);
    } else if (str_eq(phase, "WaitForUserUpload")) {
        if (!r->token[0])
            upload_resume(im, r, status);
        if (!r->token[0])
            upload_open(im, r, status);
        else   /* the listener or upload.externalURL may have changed */
            upload_urls(im, r->token, status);
    }
    vf_cdrom_sync(im->cdrom, name, uid, status);
    write_status(im, name, status);
    json_object_put(status);
    /* A copy from a disk that never began (or waits again) lets go of it. */
    if (!r->job && vf_cvi_disk_source_of(obj))
        vf_cvi_disk_hold_sync(im, vf_cvi_disk_source_of(obj));
}

/* ---- watches, timer, upload hand-over -------------------------------------------- */

static void on_cvi(void *opaque, enum vf_watch_event type, const struct json_object *obj)
{
    struct vf_images *im = opaque;
    const char *name = string(member(obj, "metadata"), "name");
    if (!name)
        return;
    if (type == VF_WATCH_DELETED) {
        struct cvi_rec *r = rec_find(im, name);
        const char *uid = string(member(obj, "metadata"), "uid");
        if (r && str_eq(r->uid, uid)) {
            if (!r->job && uid)
                vf_dvcr_remove(&im->dvcr, uid, false);
            rec_free(im, r);
        }
        vf_cvi_disk_hold_sync(im, vf_cvi_disk_source_of(obj));
    } else {
        reconcile(im, obj);
    }
}

/* Called by the module's VM watch for what a changed VM named before or
 * after: a VM that lets go of an image may end its Terminating; one that
 * names a CD-ROM image may need copies of it on the nodes. */
void vf_cvi_kick(struct vf_images *im, const char *name)
{
    struct cvi_rec *r = rec_find(im, name);
    if (r)
        r->kick = true;
}

/* A VM that lets go of a disk may let an image be made from it. */
void vf_cvi_kick_waiting_for(struct vf_images *im, const char *disk)
{
    for (struct cvi_rec *r = im->recs; r; r = r->next)
        if (r->wait_disk && str_eq(r->waited_disk, disk))
            r->kick = true;
}

static void progress_write(struct vf_images *im, struct cvi_rec *r, const char *progress)
{
    if (!strcmp(r->progress, progress))
        return;
    struct json_object *obj = NULL;
    if (im->core->object_get(im->ctx, VF_CVI_KIND, r->name, &obj) < 0)
        return;
    struct json_object *status = vf_images_status_copy(obj);
    const char *phase = string(status, "phase");
    if (str_eq(phase, "Provisioning") || str_eq(phase, "WaitForUserUpload")) {
        vf_images_set_str(status, "progress", progress);
        write_status(im, r->name, status);
        snprintf(r->progress, sizeof r->progress, "%s", progress);
    }
    json_object_put(status);
    json_object_put(obj);
}

static void tick(void *opaque)
{
    struct vf_images *im = opaque;
    char names[64][256];
    size_t n_kick = 0;
    int64_t now = now_s();
    for (struct cvi_rec *r = im->recs; r; r = r->next) {
        char p[16];
        uint64_t done, total;
        if (r->job) {
            /* A disk's volume is read by its DOWNLOAD, which counts. */
            done = atomic_load(r->job->vol ? &r->job->vol->done_bytes : &r->job->done_bytes);
            total = atomic_load(r->job->vol ? &r->job->vol->total_bytes : &r->job->total_bytes);
            if (atomic_load(&r->job->converting))
                snprintf(p, sizeof p, "100.0%%");
            else if (total)
                vf_images_progress_text(done, total, p, sizeof p);
            else
                snprintf(p, sizeof p, "0.0%%");
            progress_write(im, r, p);
        } else if (r->token[0] && vf_upload_token_progress(im->upload, r->token, &done, &total)) {
            if (total) {
                vf_images_progress_text(done, total, p, sizeof p);
                progress_write(im, r, p);
            }
        } else if (r->token[0] && r->upload_deadline <= now) {
            struct json_object *obj = NULL;
            char msg[MSG_MAX];
            token_close(im, r);
            if (im->core->object_get(im->ctx, VF_CVI_KIND, r->name, &obj) == 0) {
                snprintf(msg, sizeof msg, "no upload arrived within %" PRId64 "s of the URL being "
                         "issued; delete and create the image again for a new URL",
                         im->set.upload_timeout_ms / 1000);
                fail_status(im, r->name, obj, "UploadExpired", msg);
                json_object_put(obj);
            }
        }
        if (r->kick && n_kick < 64)
            snprintf(names[n_kick++], sizeof names[0], "%s", r->name);
    }
    /* Reconciling may free or add records: by name, after the walk. */
    for (size_t i = 0; i < n_kick; i++)
        reconcile_name(im, names[i]);
}

struct upload_post {
    struct vf_images *im;
    struct vf_upload_outcome *o;
};

static void upload_posted(void *opaque)
{
    struct upload_post *p = opaque;
    struct vf_images *im = p->im;
    struct cvi_rec *r = NULL;
    if (!im->stopped)
        for (r = im->recs; r; r = r->next)
            if (!strcmp(r->uid, p->o->uid) && !strcmp(r->token, p->o->token))
                break;
    if (r) {
        im->core->log(im->ctx, VF_LOG_INFO, "image \"%s\": upload of %" PRIu64 " bytes received",
                      r->name, p->o->bytes);
        token_close(im, r);
        struct json_object *obj = NULL;
        if (im->core->object_get(im->ctx, VF_CVI_KIND, r->name, &obj) == 0) {
            struct json_object *status = vf_images_status_copy(obj);
            json_object_object_del(status, "imageUploadURLs");
            json_object_object_del(status, "uploadExpiresAt");
            if (vf_cvi_job_start(im, r, obj, SRC_UPLOAD, NULL, NULL)) {
                vf_images_set_str(status, "phase", "Provisioning");
                vf_images_set_str(status, "progress", "100.0%");
                set_ready(status, false, "Provisioning", "checking and storing the upload");
            } else {
                /* Provisioning with the file on disk: the tick resumes it. */
                vf_images_set_str(status, "phase", "Provisioning");
            }
            write_status(im, r->name, status);
            json_object_put(status);
            json_object_put(obj);
        }
    } else if (!im->stopped) {
        /* The image went while its upload ran: nothing will take the
         * file, so it goes. */
        bool owned = false;
        for (struct cvi_rec *o = im->recs; o; o = o->next)
            owned = owned || !strcmp(o->uid, p->o->uid);
        if (!owned)
            vf_dvcr_remove(&im->dvcr, p->o->uid, false);
    }
    free(p->o);
    free(p);
    vf_images_unref(im);
}

void vf_cvi_upload_done(void *opaque, struct vf_upload_outcome *outcome)
{
    struct vf_images *im = opaque;
    struct upload_post *p = malloc(sizeof *p);
    if (!p) {
        free(outcome);
        return;
    }
    p->im = im;
    p->o = outcome;
    vf_images_ref(im);
    if (im->core->loop_post(im->ctx, upload_posted, p) < 0) {
        vf_images_unref(im);
        free(outcome);
        free(p);
    }
}

/* ---- start / stop ---------------------------------------------------------------- */

struct orphan_scan {
    struct vf_images *im;
};

static void orphan_check(void *opaque, const char *uid)
{
    struct orphan_scan *s = opaque;
    for (struct cvi_rec *r = s->im->recs; r; r = r->next)
        if (!strcmp(r->uid, uid))
            return;
    if (uid_busy(uid))
        return;
    s->im->core->log(s->im->ctx, VF_LOG_INFO, "image store: removing files of uid %s, which "
                     "belongs to no image", uid);
    vf_dvcr_remove(&s->im->dvcr, uid, false);
}

int vf_cvi_start(struct vf_images *im)
{
    const struct vf_core *core = im->core;
    int rc = core->kind_register(im->ctx, &vf_cvi_kind);
    if (rc < 0)
        return rc;
    im->cvi_watch = core->watch_add(im->ctx, VF_CVI_KIND, on_cvi, im);
    im->timer = core->timer_add(im->ctx, TICK_MS, tick, im);
    if (!im->cvi_watch || im->timer < 0)
        return -EIO;
    /* Every image was reconciled by watch_add: what the store holds beyond them
     * is left from images deleted while the daemon was down. */
    struct orphan_scan s = {.im = im};
    vf_dvcr_foreach_uid(&im->dvcr, orphan_check, &s);
    return 0;
}

void vf_cvi_stop(struct vf_images *im)
{
    while (im->recs) {
        struct cvi_rec *r = im->recs;
        if (r->job)
            job_cancel(r->job);
        r->job = NULL;   /* done() sees im->stopped and keeps the download */
        im->recs = r->next;
        free(r->name);
        free(r);
    }
}

void vf_cvi_settings_changed(struct vf_images *im)
{
    /* Open uploads take the new quota; their expiry stays as announced. */
    for (struct cvi_rec *r = im->recs; r; r = r->next)
        if (r->token[0]) {
            vf_upload_token_add(im->upload, r->token, r->uid, vf_dvcr_room(&im->dvcr, r->uid),
                                r->upload_deadline);
            r->kick = true;   /* upload.externalURL may have changed its URLs */
        }
}
