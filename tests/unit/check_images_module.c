#include <config.h>
/* The images module's parts without the daemon: the ClusterVirtualImage
 * validation hook, when an image may be copied from a VirtualDisk, its settings
 * check, the image store's files (quota accounting, atomic publication, sparse
 * copies, removal) and the upload
 * listener (tokens, limits, single use, expiry) over real HTTP with libcurl.
 * The controller itself is tested end to end in tests/integration/images_e2e.sh. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include "testlib.h"
#include "modules/images/cvi.h"
#include "modules/images/image_store.h"
#include "modules/images/upload.h"
#include "modules/images/vm_refs.h"

extern const struct vf_module virtfleet_module;

/* ---- validation --------------------------------------------------------------- */

static int validate(const char *old_text, const char *text, struct vf_error *err)
{
    struct json_object *obj = vf_test_json(text);
    struct json_object *old = old_text ? vf_test_json(old_text) : NULL;
    memset(err, 0, sizeof *err);
    int rc = vf_cvi_validate(NULL, old, obj, err);
    json_object_put(obj);
    json_object_put(old);
    return rc;
}

#define CVI(spec) "{\"metadata\":{\"name\":\"img\"},\"spec\":{\"dataSource\":" spec "}}"
#define HEX64 "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#define HEX32 "098f6bcd4621d373cade4e832627b4f6"
/* "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n" in base64 */
#define PEM_B64 "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUIKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo="

START_TEST(test_validate_sources)
{
    struct vf_error err;
    ck_assert_int_eq(validate(NULL, CVI("{\"type\":\"HTTP\",\"http\":{\"url\":\"https://h/x.img\"}}"), &err), 0);
    ck_assert_int_eq(validate(NULL, CVI("{\"type\":\"Upload\"}"), &err), 0);
    ck_assert_int_eq(validate(NULL, CVI("{\"type\":\"HTTP\"}"), &err), -EINVAL);
    ck_assert_str_eq(err.field, "spec.dataSource.http");
    ck_assert_int_eq(validate(NULL, CVI("{\"type\":\"Upload\",\"http\":{\"url\":\"http://h/x\"}}"), &err),
                     -EINVAL);
    ck_assert_msg(strstr(err.message, "not allowed with type Upload"), "%s", err.message);
    ck_assert_int_eq(validate(NULL, CVI("{\"type\":\"HTTP\",\"http\":{\"url\":\"file:///etc/passwd\"}}"), &err),
                     -EINVAL);
    ck_assert_str_eq(err.field, "spec.dataSource.http.url");
    ck_assert_int_eq(validate(NULL, CVI("{\"type\":\"ContainerImage\",\"containerImage\":"
                                        "{\"image\":\"127.0.0.1:5000/disk:v1\"}}"), &err), 0);
    ck_assert_int_eq(validate(NULL, CVI("{\"type\":\"ContainerImage\",\"containerImage\":"
                                        "{\"image\":\"ubuntu:22.04\"}}"), &err), -EINVAL);
    ck_assert_str_eq(err.field, "spec.dataSource.containerImage.image");
}
END_TEST

START_TEST(test_validate_checksum_and_ca)
{
    struct vf_error err;
    ck_assert_int_eq(validate(NULL, CVI("{\"type\":\"HTTP\",\"http\":{\"url\":\"http://h/x\","
                                        "\"checksum\":\"sha256:" HEX64 "\"}}"), &err), 0);
    ck_assert_int_eq(validate(NULL, CVI("{\"type\":\"HTTP\",\"http\":{\"url\":\"http://h/x\","
                                        "\"checksum\":{\"md5\":\"" HEX32 "\"}}}"), &err), 0);
    ck_assert_int_eq(validate(NULL, CVI("{\"type\":\"HTTP\",\"http\":{\"url\":\"http://h/x\","
                                        "\"checksum\":{\"sha256\":\"" HEX64 "\",\"md5\":\"" HEX32
                                        "\"}}}"), &err), 0);
    ck_assert_int_eq(validate(NULL, CVI("{\"type\":\"HTTP\",\"http\":{\"url\":\"http://h/x\","
                                        "\"checksum\":\"sha1:abc\"}}"), &err), -EINVAL);
    ck_assert_str_eq(err.field, "spec.dataSource.http.checksum");
    ck_assert_int_eq(validate(NULL, CVI("{\"type\":\"HTTP\",\"http\":{\"url\":\"http://h/x\","
                                        "\"checksum\":{\"sha512\":\"" HEX64 "\"}}}"), &err), -EINVAL);
    ck_assert_msg(strstr(err.message, "sha512"), "%s", err.message);
    ck_assert_int_eq(validate(NULL, CVI("{\"type\":\"HTTP\",\"http\":{\"url\":\"http://h/x\","
                                        "\"checksum\":{\"sha256\":\"12\"}}}"), &err), -EINVAL);
    ck_assert_int_eq(validate(NULL, CVI("{\"type\":\"HTTP\",\"http\":{\"url\":\"https://h/x\","
                                        "\"caBundle\":\"" PEM_B64 "\"}}"), &err), 0);
    ck_assert_int_eq(validate(NULL, CVI("{\"type\":\"HTTP\",\"http\":{\"url\":\"https://h/x\","
                                        "\"caBundle\":\"-----BEGIN CERTIFICATE-----\\nMIIB\\n"
                                        "-----END CERTIFICATE-----\\n\"}}"), &err), 0);
    ck_assert_int_eq(validate(NULL, CVI("{\"type\":\"HTTP\",\"http\":{\"url\":\"https://h/x\","
                                        "\"caBundle\":\"bm90IGEgY2VydA==\"}}"), &err), -EINVAL);
    ck_assert_str_eq(err.field, "spec.dataSource.http.caBundle");
}
END_TEST

START_TEST(test_validate_object_ref)
{
    struct vf_error err;
    ck_assert_int_eq(validate(NULL, CVI("{\"type\":\"ObjectRef\",\"objectRef\":"
                                        "{\"kind\":\"ClusterVirtualImage\",\"name\":\"other\"}}"), &err), 0);
    ck_assert_int_eq(validate(NULL, CVI("{\"type\":\"ObjectRef\",\"objectRef\":"
                                        "{\"kind\":\"ClusterVirtualImage\",\"name\":\"img\"}}"), &err),
                     -EINVAL);
    ck_assert_msg(strstr(err.message, "itself"), "%s", err.message);
    /* A VirtualDisk is a source, also one named like the image. */
    ck_assert_int_eq(validate(NULL, CVI("{\"type\":\"ObjectRef\",\"objectRef\":"
                                        "{\"kind\":\"VirtualDisk\",\"name\":\"d\"}}"), &err), 0);
    ck_assert_int_eq(validate(NULL, CVI("{\"type\":\"ObjectRef\",\"objectRef\":"
                                        "{\"kind\":\"VirtualDisk\",\"name\":\"img\"}}"), &err), 0);
    ck_assert_int_eq(validate(NULL, CVI("{\"type\":\"ObjectRef\",\"objectRef\":"
                                        "{\"kind\":\"VirtualImage\",\"name\":\"d\"}}"), &err),
                     -EINVAL);
    ck_assert_int_eq(err.status, 422);
    ck_assert_str_eq(err.field, "spec.dataSource.objectRef.kind");
    ck_assert_msg(strstr(err.message, "no namespaced VirtualImage"), "%s", err.message);
    ck_assert_int_eq(validate(NULL, CVI("{\"type\":\"ObjectRef\",\"objectRef\":"
                                        "{\"kind\":\"Pod\",\"name\":\"d\"}}"), &err), -EINVAL);
}
END_TEST

/* An index of the VMs of a JSON array, as the module's VM watch fills it. */
static struct vf_vm_refs *vm_index(const char *vms_text)
{
    struct json_object *vms = vf_test_json(vms_text);
    struct vf_vm_refs *idx = vf_vm_refs_new();
    ck_assert_ptr_nonnull(idx);
    for (size_t i = 0; i < json_object_array_length(vms); i++)
        ck_assert_int_eq(vf_vm_refs_apply(idx, VF_WATCH_ADDED, json_object_array_get_idx(vms, i),
                                          NULL, NULL), 0);
    json_object_put(vms);
    return idx;
}

/* When an image may be copied from a VirtualDisk, and what it says while it waits. */
START_TEST(test_disk_check)
{
#define VD_TARGET "\"target\":{\"node\":\"n1\",\"pool\":\"local\",\"volume\":\"vd-d-1\"}"
    struct json_object *ready = vf_test_json("{\"metadata\":{\"name\":\"d\"},\"status\":"
                                             "{\"phase\":\"Ready\"," VD_TARGET "}}");
    struct json_object *prov = vf_test_json("{\"metadata\":{\"name\":\"d\"},\"status\":"
                                            "{\"phase\":\"Provisioning\"," VD_TARGET "}}");
    struct json_object *going = vf_test_json("{\"metadata\":{\"name\":\"d\",\"deletionTimestamp\":"
                                             "\"2026-01-01T00:00:00Z\"},\"status\":"
                                             "{\"phase\":\"Terminating\"," VD_TARGET "}}");
    struct json_object *going_held = vf_test_json(
        "{\"metadata\":{\"name\":\"d\",\"deletionTimestamp\":\"2026-01-01T00:00:00Z\","
        "\"finalizers\":[\"" VF_CVI_DISK_FINALIZER "\"]},\"status\":{\"phase\":\"Terminating\","
        VD_TARGET "}}");
    struct json_object *no_target = vf_test_json("{\"metadata\":{\"name\":\"d\"},\"status\":"
                                                 "{\"phase\":\"Ready\"}}");
#undef VD_TARGET
    /* A stopped VM (no node), a running one naming another disk, one naming d on n2. */
    struct vf_vm_refs *idle = vm_index(
        "[{\"metadata\":{\"name\":\"off\"},\"spec\":{\"blockDeviceRefs\":[{\"kind\":"
        "\"VirtualDisk\",\"name\":\"d\"}]},\"status\":{\"phase\":\"Stopped\"}},"
        " {\"metadata\":{\"name\":\"other\"},\"spec\":{\"blockDeviceRefs\":[{\"kind\":"
        "\"VirtualDisk\",\"name\":\"e\"},{\"kind\":\"ClusterVirtualImage\",\"name\":\"d\"}]},"
        "\"status\":{\"phase\":\"Running\",\"node\":\"n1\"}}]");
    struct vf_vm_refs *busy = vm_index(
        "[{\"metadata\":{\"name\":\"vm1\"},\"spec\":{\"blockDeviceRefs\":[{\"kind\":"
        "\"VirtualDisk\",\"name\":\"d\"}]},\"status\":{\"phase\":\"Starting\",\"node\":\"n2\"}}]");
    char reason[64], msg[768];

    ck_assert_int_eq(vf_cvi_disk_check("d", ready, idle, false, reason, sizeof reason, msg,
                                       sizeof msg), 0);
    ck_assert_int_eq(vf_cvi_disk_check("d", ready, NULL, false, reason, sizeof reason, msg,
                                       sizeof msg), 0);
    ck_assert_int_eq(vf_cvi_disk_check("d", NULL, idle, false, reason, sizeof reason, msg,
                                       sizeof msg), -ENOENT);
    ck_assert_str_eq(reason, "DiskNotFound");
    ck_assert_msg(strstr(msg, "\"d\" not found"), "%s", msg);
    ck_assert_int_eq(vf_cvi_disk_check("d", prov, idle, false, reason, sizeof reason, msg,
                                       sizeof msg), -EAGAIN);
    ck_assert_str_eq(reason, "DiskNotReady");
    ck_assert_msg(strstr(msg, "Provisioning"), "%s", msg);
    ck_assert_int_eq(vf_cvi_disk_check("d", no_target, idle, false, reason, sizeof reason, msg,
                                       sizeof msg), -EAGAIN);
    ck_assert_int_eq(vf_cvi_disk_check("d", going, idle, false, reason, sizeof reason, msg,
                                       sizeof msg), -EAGAIN);
    ck_assert_msg(strstr(msg, "being deleted"), "%s", msg);
    /* Deleted meanwhile: only a copy that holds it reads on. */
    ck_assert_int_eq(vf_cvi_disk_check("d", going_held, idle, false, reason, sizeof reason, msg,
                                       sizeof msg), -EAGAIN);
    ck_assert_int_eq(vf_cvi_disk_check("d", going, idle, true, reason, sizeof reason, msg,
                                       sizeof msg), -EAGAIN);
    ck_assert_int_eq(vf_cvi_disk_check("d", going_held, idle, true, reason, sizeof reason, msg,
                                       sizeof msg), 0);
    ck_assert_int_eq(vf_cvi_disk_check("d", ready, busy, false, reason, sizeof reason, msg,
                                       sizeof msg), -EBUSY);
    ck_assert_str_eq(reason, "DiskInUse");
    ck_assert_msg(strstr(msg, "\"vm1\"") && strstr(msg, "\"n2\"") && strstr(msg, "stop the VM"),
                  "%s", msg);
    /* A held copy that starts over still waits for a VM that took the disk meanwhile. */
    ck_assert_int_eq(vf_cvi_disk_check("d", going_held, busy, true, reason, sizeof reason, msg,
                                       sizeof msg), -EBUSY);
    json_object_put(ready);
    json_object_put(prov);
    json_object_put(going);
    json_object_put(going_held);
    json_object_put(no_target);
    vf_vm_refs_free(idle);
    vf_vm_refs_free(busy);
}
END_TEST

START_TEST(test_validate_frozen_when_ready)
{
    struct vf_error err;
    const char *a = "{\"type\":\"HTTP\",\"http\":{\"url\":\"http://h/a\"}}";
    char ready[512], provisioning[512], next[512], same[512];
    snprintf(ready, sizeof ready, "{\"metadata\":{\"name\":\"img\"},\"spec\":{\"dataSource\":%s},"
             "\"status\":{\"phase\":\"Ready\"}}", a);
    snprintf(provisioning, sizeof provisioning, "{\"metadata\":{\"name\":\"img\"},\"spec\":"
             "{\"dataSource\":%s},\"status\":{\"phase\":\"Provisioning\"}}", a);
    snprintf(next, sizeof next, "%s", CVI("{\"type\":\"HTTP\",\"http\":{\"url\":\"http://h/b\"}}"));
    snprintf(same, sizeof same, "{\"metadata\":{\"name\":\"img\",\"finalizers\":[\"x/y\"]},"
             "\"spec\":{\"dataSource\":%s}}", a);
    ck_assert_int_eq(validate(ready, next, &err), -EINVAL);
    ck_assert_int_eq(err.status, 422);
    ck_assert_str_eq(err.field, "spec");
    ck_assert_msg(strstr(err.message, "Ready"), "%s", err.message);
    ck_assert_int_eq(validate(ready, same, &err), 0);      /* metadata may change */
    ck_assert_int_eq(validate(provisioning, next, &err), 0); /* before Ready: restarts */
}
END_TEST

START_TEST(test_human_size)
{
    char b[32];
    vf_cvi_human_size(0, b, sizeof b);
    ck_assert_str_eq(b, "0B");
    vf_cvi_human_size(1536, b, sizeof b);
    ck_assert_str_eq(b, "1.5Ki");
    vf_cvi_human_size(50000000000ULL, b, sizeof b);
    ck_assert_str_eq(b, "46.6Gi");
}
END_TEST

/* ---- settings ------------------------------------------------------------------ */

static int configure(const char *text, struct vf_error *err)
{
    struct json_object *s = vf_test_json(text);
    memset(err, 0, sizeof *err);
    int rc = virtfleet_module.configure(NULL, s, err);
    json_object_put(s);
    return rc;
}

#define SETTINGS(dvcr, classes, listen)                                                    \
    "{\"dvcr\":{\"storage\":" dvcr "},\"virtualImages\":" classes ","                      \
    "\"virtualDisks\":{\"allowedStorageClassNames\":[]},\"upload\":{\"listen\":\"" listen  \
    "\",\"timeout\":300000},\"import\":{\"maxRetries\":5,\"stallTimeout\":60000,"           \
    "\"insecureRegistries\":[]}}"

START_TEST(test_settings)
{
    struct vf_error err;
    ck_assert_str_eq(virtfleet_module.name, "images");
    ck_assert_int_eq(configure(SETTINGS("{\"type\":\"Directory\",\"size\":1073741824}",
                                        "{\"allowedStorageClassNames\":[\"a\",\"b\"],"
                                        "\"defaultStorageClassName\":\"b\"}", "127.0.0.1:0"), &err), 0);
    ck_assert_int_eq(configure(SETTINGS("{\"type\":\"Directory\",\"size\":1073741824,\"path\":\"rel\"}",
                                        "{\"allowedStorageClassNames\":[]}", "127.0.0.1:0"), &err),
                     -EINVAL);
    ck_assert_str_eq(err.field, "dvcr.storage.path");
    ck_assert_int_eq(configure(SETTINGS("{\"type\":\"Directory\",\"size\":1073741824}",
                                        "{\"allowedStorageClassNames\":[\"a\"],"
                                        "\"defaultStorageClassName\":\"c\"}", "127.0.0.1:0"), &err),
                     -EINVAL);
    ck_assert_str_eq(err.field, "virtualImages.defaultStorageClassName");
    /* The seeds' shape: the quota comes from persistentVolumeClaim.size. */
    ck_assert_int_eq(configure(SETTINGS("{\"type\":\"PersistentVolumeClaim\",\"size\":1073741824}",
                                        "{\"allowedStorageClassNames\":[]}", "127.0.0.1:0"), &err),
                     -EINVAL);
    ck_assert_str_eq(err.field, "dvcr.storage.persistentVolumeClaim.size");
    ck_assert_int_eq(configure(SETTINGS("{\"type\":\"PersistentVolumeClaim\",\"size\":1073741824,"
                                        "\"persistentVolumeClaim\":{\"size\":50000000000,"
                                        "\"storageClassName\":\"sds\"}}",
                                        "{\"allowedStorageClassNames\":[]}", "127.0.0.1:0"), &err), 0);
    ck_assert_int_eq(configure(SETTINGS("{\"type\":\"Directory\",\"size\":1073741824}",
                                        "{\"allowedStorageClassNames\":[]}", "8445"), &err), -EINVAL);
    ck_assert_str_eq(err.field, "upload.listen");
}
END_TEST

/* ---- the image store ------------------------------------------------------------ */

#define UID1 "0123abcd-0000-4000-8000-000000000001"
#define UID2 "0123abcd-0000-4000-8000-000000000002"

static void write_at(const char *path, off_t off, const char *data, size_t len, off_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pwrite(fd, data, len, off), (ssize_t)len);
    if (size)
        ck_assert_int_eq(ftruncate(fd, size), 0);
    close(fd);
}

static void count_uid(void *opaque, const char *uid)
{
    int *n = opaque;
    if (!strcmp(uid, UID1))
        n[0]++;
    else if (!strcmp(uid, UID2))
        n[1]++;
    else
        n[2]++;
}

START_TEST(test_store)
{
    char *dir = vf_test_tmpdir(), root[512], p[4096], q[4096], final[4096];
    struct vf_dvcr d;
    struct vf_error err = {0};
    struct stat st;
    static char mib[1 << 20];
    memset(mib, 'x', sizeof mib);
    snprintf(root, sizeof root, "%s/a/dvcr", dir);
    ck_assert_int_eq(vf_dvcr_open(&d, "relative", 1, &err), -EINVAL);
    ck_assert_int_eq(vf_dvcr_open(&d, root, 8 << 20, &err), 0);
    snprintf(p, sizeof p, "%s/images", root);
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
    ck_assert_int_eq(vf_dvcr_path(&d, "../etc", VF_DVCR_RAW, p, sizeof p), -EINVAL);
    ck_assert_int_eq(vf_dvcr_path(&d, UID1, VF_DVCR_DOWNLOAD, p, sizeof p), 0);
    ck_assert_msg(strstr(p, "/tmp/" UID1 ".download"), "%s", p);

    /* 1 MiB of data in a 64 MiB sparse file: only the data counts. */
    write_at(p, 0, mib, sizeof mib, 64 << 20);
    uint64_t used = vf_dvcr_usage(&d, NULL);
    ck_assert_msg(used >= (1 << 20) && used < (2 << 20), "usage %llu", (unsigned long long)used);
    ck_assert_uint_eq(vf_dvcr_usage(&d, UID1), 0);
    ck_assert_uint_eq(vf_dvcr_room(&d, UID2), (8 << 20) - used);
    ck_assert_uint_eq(vf_dvcr_room(&d, UID1), 8 << 20);

    /* Publication: out -> images/<uid>.raw. */
    ck_assert_int_eq(vf_dvcr_path(&d, UID1, VF_DVCR_OUT, q, sizeof q), 0);
    write_at(q, 4 << 20, mib, 4096, 16 << 20);
    int fd = open(q, O_RDWR);
    ck_assert_int_eq(vf_dvcr_publish(&d, UID1, fd, "raw", final, sizeof final, &err), 0);
    close(fd);
    ck_assert_int_eq(access(q, F_OK), -1);
    ck_assert_msg(strstr(final, "/images/" UID1 ".raw"), "%s", final);
    ck_assert_int_eq(stat(final, &st), 0);
    ck_assert_int_eq(st.st_size, 16 << 20);

    /* A copy keeps the size, the bytes and the holes. */
    ck_assert_int_eq(vf_dvcr_copy(&d, final, UID2, "qcow2", q, sizeof q, &err), 0);
    struct stat st2;
    ck_assert_int_eq(stat(q, &st2), 0);
    ck_assert_msg(strstr(q, "/images/" UID2 ".qcow2"), "%s", q);
    ck_assert_int_eq(st2.st_size, st.st_size);
    ck_assert_msg(st2.st_blocks * 512 < (1 << 20), "the copy is not sparse: %lld blocks",
                  (long long)st2.st_blocks);
    char a[4096], b[4096];
    int fa = open(final, O_RDONLY), fb = open(q, O_RDONLY);
    ck_assert_int_eq(pread(fa, a, sizeof a, 4 << 20), 4096);
    ck_assert_int_eq(pread(fb, b, sizeof b, 4 << 20), 4096);
    ck_assert_int_eq(memcmp(a, b, sizeof a), 0);
    close(fa);
    close(fb);

    int n[3] = {0};
    vf_dvcr_foreach_uid(&d, count_uid, n);
    ck_assert_int_eq(n[0], 2);   /* UID1: images/.raw and tmp/.download */
    ck_assert_int_eq(n[1], 1);
    ck_assert_int_eq(n[2], 0);

    vf_dvcr_remove(&d, UID1, true);
    ck_assert_int_eq(access(final, F_OK), -1);
    ck_assert_int_eq(access(p, F_OK), 0);   /* the download is kept for a resume */
    vf_dvcr_remove(&d, UID1, false);
    vf_dvcr_remove(&d, UID2, false);
    ck_assert_int_eq(access(p, F_OK), -1);
    ck_assert_uint_eq(vf_dvcr_usage(&d, NULL), 0);
    vf_test_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- the upload listener ---------------------------------------------------------- */

struct outcomes {
    pthread_mutex_t lock;
    int count;
    uint64_t bytes;
    char uid[64];
};

static void on_done(void *opaque, struct vf_upload_outcome *o)
{
    struct outcomes *out = opaque;
    pthread_mutex_lock(&out->lock);
    out->count++;
    out->bytes = o->bytes;
    snprintf(out->uid, sizeof out->uid, "%s", o->uid);
    pthread_mutex_unlock(&out->lock);
    free(o);
}

static size_t sink(char *p, size_t s, size_t n, void *o)
{
    (void)p;
    (void)o;
    return s * n;
}

struct body {
    const char *data;
    size_t len, pos;
};

static size_t source(char *buf, size_t s, size_t n, void *opaque)
{
    struct body *b = opaque;
    size_t k = s * n < b->len - b->pos ? s * n : b->len - b->pos;
    memcpy(buf, b->data + b->pos, k);
    b->pos += k;
    return k;
}

/* PUT (or method) len bytes to url; chunked: no Content-Length.  The status. */
static long put(const char *method, const char *url, const char *data, size_t len, bool chunked)
{
    CURL *c = curl_easy_init();
    struct body b = {.data = data, .len = len};
    struct curl_slist *h = chunked ? curl_slist_append(NULL, "Transfer-Encoding: chunked") : NULL;
    long code = 0;
    curl_easy_setopt(c, CURLOPT_URL, url);
    if (!strcmp(method, "PUT")) {
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, source);
        curl_easy_setopt(c, CURLOPT_READDATA, &b);
        if (!chunked)
            curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
    } else {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return code;
}

START_TEST(test_upload_listen_parsing)
{
    struct vf_upload_server *s = NULL;
    struct vf_dvcr d = {.quota = 1};
    struct vf_error err;
    static const char *const bad[] = {"8445", "localhost:8445", "127.0.0.1:70000", "127.0.0.1:x",
                                      ":80", "[::1", NULL};
    for (const char *const *b = bad; *b; b++) {
        memset(&err, 0, sizeof err);
        ck_assert_msg(vf_upload_server_start(&s, *b, &d, on_done, NULL, &err) < 0, "%s", *b);
        ck_assert_str_eq(err.field, "upload.listen");
    }
    char t1[VF_UPLOAD_TOKEN_HEX], t2[VF_UPLOAD_TOKEN_HEX];
    ck_assert_int_eq(vf_upload_token_new(t1), 0);
    ck_assert_int_eq(vf_upload_token_new(t2), 0);
    ck_assert_uint_eq(strlen(t1), 64);
    ck_assert_uint_eq(strspn(t1, "0123456789abcdef"), 64);
    ck_assert_str_ne(t1, t2);
}
END_TEST

START_TEST(test_upload)
{
    char *dir = vf_test_tmpdir(), url[512], base[256], path[4096];
    struct vf_dvcr d;
    struct vf_error err = {0};
    struct vf_upload_server *s = NULL;
    struct outcomes out = {.lock = PTHREAD_MUTEX_INITIALIZER};
    static char data[3 << 20];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (char)(i * 7 + i / 4096);
    ck_assert_int_eq(vf_dvcr_open(&d, dir, 1 << 30, &err), 0);
    ck_assert_int_eq(vf_upload_server_start(&s, "127.0.0.1:0", &d, on_done, &out, &err), 0);
    ck_assert_uint_gt(vf_upload_server_port(s), 0);
    ck_assert_str_eq(vf_upload_server_host(s), "127.0.0.1");
    snprintf(base, sizeof base, "http://127.0.0.1:%u/upload/", vf_upload_server_port(s));

    char tok[VF_UPLOAD_TOKEN_HEX], old[VF_UPLOAD_TOKEN_HEX];
    ck_assert_int_eq(vf_upload_token_new(tok), 0);
    ck_assert_int_eq(vf_upload_token_new(old), 0);
    int64_t now = (int64_t)time(NULL);
    vf_upload_token_add(s, tok, UID1, sizeof data, now + 60);
    vf_upload_token_add(s, old, UID2, sizeof data, now - 1);

    snprintf(url, sizeof url, "%s%s", base, old);
    ck_assert_int_eq(put("PUT", url, data, 10, false), 410);          /* expired */
    snprintf(url, sizeof url, "%sfeed", base);
    ck_assert_int_eq(put("PUT", url, data, 10, false), 404);          /* not a token */
    snprintf(url, sizeof url, "%s%s", base, tok);
    ck_assert_int_eq(put("GET", url, NULL, 0, false), 405);
    ck_assert_int_eq(put("PUT", url, data, 0, false), 400);           /* empty */
    /* Bigger than the limit: 413, from Content-Length or while streaming. */
    vf_upload_token_add(s, tok, UID1, sizeof data - 1, now + 60);
    ck_assert_int_eq(put("PUT", url, data, sizeof data, false), 413);
    /* Streaming past the limit: refused mid-body (413, or the connection is
     * closed under a client still sending). */
    long code = put("PUT", url, data, sizeof data, true);
    ck_assert_msg(code != 200, "an over-limit chunked upload got %ld", code);
    ck_assert_int_eq(vf_dvcr_path(&d, UID1, VF_DVCR_DOWNLOAD, path, sizeof path), 0);
    ck_assert_int_eq(access(path, F_OK), -1);                         /* nothing partial */
    uint64_t done, total;
    ck_assert(!vf_upload_token_progress(s, tok, &done, &total));
    pthread_mutex_lock(&out.lock);
    ck_assert_int_eq(out.count, 0);
    pthread_mutex_unlock(&out.lock);

    /* Within the limit, chunked: stored and handed over once. */
    vf_upload_token_add(s, tok, UID1, sizeof data, now + 60);
    ck_assert_int_eq(put("PUT", url, data, sizeof data, true), 200);
    pthread_mutex_lock(&out.lock);
    ck_assert_int_eq(out.count, 1);
    ck_assert_uint_eq(out.bytes, sizeof data);
    ck_assert_str_eq(out.uid, UID1);
    pthread_mutex_unlock(&out.lock);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_size, sizeof data);
    static char back[sizeof data];
    int fd = open(path, O_RDONLY);
    ck_assert_int_eq(read(fd, back, sizeof back), (ssize_t)sizeof back);
    close(fd);
    ck_assert_int_eq(memcmp(back, data, sizeof data), 0);
    ck_assert(vf_upload_token_progress(s, tok, &done, &total));   /* used: never expires */
    ck_assert_uint_eq(done, sizeof data);
    ck_assert_int_eq(put("POST", url, data, 10, false), 409);         /* single use */
    vf_upload_token_remove(s, tok);
    ck_assert_int_eq(put("PUT", url, data, 10, false), 404);

    vf_upload_server_stop(s);
    vf_test_rmtree(dir);
    free(dir);
}
END_TEST

static Suite *images_suite(void)
{
    Suite *s = suite_create("images_module");
    TCase *tc = tcase_create("validate");
    tcase_add_test(tc, test_validate_sources);
    tcase_add_test(tc, test_validate_checksum_and_ca);
    tcase_add_test(tc, test_validate_object_ref);
    tcase_add_test(tc, test_disk_check);
    tcase_add_test(tc, test_validate_frozen_when_ready);
    tcase_add_test(tc, test_human_size);
    suite_add_tcase(s, tc);
    tc = tcase_create("settings");
    tcase_add_test(tc, test_settings);
    suite_add_tcase(s, tc);
    tc = tcase_create("store");
    tcase_add_test(tc, test_store);
    suite_add_tcase(s, tc);
    tc = tcase_create("upload");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_upload_listen_parsing);
    tcase_add_test(tc, test_upload);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = vf_test_run(images_suite());
    curl_global_cleanup();
    return rc;
}
