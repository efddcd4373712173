#include <config.h>
/* VirtualDisk (modules/images/vd.c, vd_volume.c): the kind's validation,
 * quantities, the virtualDisks settings and storage class choice, the volume
 * XML, sparse file sections, and the volume jobs against libvirt's test
 * driver (its pool "default-pool"). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "modules/images/cvi.h"
#include "modules/images/vd.h"
#include "modules/images/vd_volume.h"
#include "tests/unit/testlib.h"

/* vd.c holds the images module's state by reference; this suite never
 * starts the controller, so the module's counting is not needed here. */
void vf_images_ref(struct vf_images *im)
{
    (void)im;
}

void vf_images_unref(struct vf_images *im)
{
    (void)im;
}

static struct json_object *disk(const char *spec)
{
    char text[1024];
    snprintf(text, sizeof text, "{\"kind\":\"VirtualDisk\",\"metadata\":{\"name\":\"d\"},"
             "\"spec\":%s}", spec);
    return vf_test_json(text);
}

static int validate(const char *old_spec, const char *old_status, const char *spec,
                    struct vf_error *err)
{
    struct json_object *obj = disk(spec), *old = NULL;
    if (old_spec) {
        old = disk(old_spec);
        if (old_status)
            json_object_object_add(old, "status", vf_test_json(old_status));
    }
    memset(err, 0, sizeof *err);
    int rc = vf_vd_validate(NULL, old, obj, err);
    json_object_put(obj);
    json_object_put(old);
    return rc;
}

#define REF "\"dataSource\":{\"type\":\"ObjectRef\",\"objectRef\":{\"kind\":" \
            "\"ClusterVirtualImage\",\"name\":\"img\"}}"

START_TEST(test_validate)
{
    struct vf_error err;
    /* The seeds' shapes: a blank disk, and one from an image with or without a size. */
    ck_assert_int_eq(validate(NULL, NULL, "{\"persistentVolumeClaim\":{\"size\":\"10Gi\"}}", &err),
                     0);
    ck_assert_int_eq(validate(NULL, NULL, "{" REF "}", &err), 0);
    ck_assert_int_eq(validate(NULL, NULL, "{\"persistentVolumeClaim\":{\"size\":\"20Gi\","
                                          "\"storageClassName\":\"local\"}," REF "}", &err), 0);
    static const struct {
        const char *spec, *field, *words;
    } bad[] = {
        {"{}", "spec.persistentVolumeClaim.size", "required for a blank disk"},
        {"{\"persistentVolumeClaim\":{\"size\":\"lots\"}}", "spec.persistentVolumeClaim.size",
         "\"10Gi\""},
        {"{\"persistentVolumeClaim\":{\"size\":0}}", "spec.persistentVolumeClaim.size", "size"},
        {"{\"dataSource\":{\"type\":\"HTTP\",\"http\":{\"url\":\"http://x/\"}}}",
         "spec.dataSource.type", "import the HTTP source as a ClusterVirtualImage"},
        {"{\"dataSource\":{\"type\":\"ObjectRef\"}}", "spec.dataSource.objectRef", "required"},
        {"{\"dataSource\":{\"type\":\"ObjectRef\",\"objectRef\":{\"kind\":\"VirtualImage\","
         "\"name\":\"x\"}}}", "spec.dataSource.objectRef.kind", "VirtualImage is not supported"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_lt(validate(NULL, NULL, bad[i].spec, &err), 0);
        ck_assert_str_eq(err.field, bad[i].field);
        ck_assert_msg(strstr(err.message, bad[i].words), "%zu: %s", i, err.message);
    }
}
END_TEST

START_TEST(test_validate_update)
{
    struct vf_error err;
    const char *old = "{\"persistentVolumeClaim\":{\"size\":\"10Gi\",\"storageClassName\":"
                      "\"local\"}}";
    /* Growing is fine; shrinking, dropping the size, another class or source are not. */
    ck_assert_int_eq(validate(old, NULL, "{\"persistentVolumeClaim\":{\"size\":\"11Gi\","
                                         "\"storageClassName\":\"local\"}}", &err), 0);
    ck_assert_int_eq(validate(old, NULL, "{\"persistentVolumeClaim\":{\"size\":\"9Gi\","
                                         "\"storageClassName\":\"local\"}}", &err), -EINVAL);
    ck_assert_msg(strstr(err.message, "only grows (it is 10Gi)"), "%s", err.message);
    ck_assert_int_eq(validate(old, NULL, "{\"persistentVolumeClaim\":{\"storageClassName\":"
                                         "\"local\"}," REF "}", &err), -EINVAL);
    ck_assert_str_eq(err.field, "spec.dataSource");
    ck_assert_int_eq(validate(old, NULL, "{\"persistentVolumeClaim\":{\"size\":\"10Gi\","
                                         "\"storageClassName\":\"nfs\"}}", &err), -EINVAL);
    ck_assert_str_eq(err.field, "spec.persistentVolumeClaim.storageClassName");
    /* A disk from an image has the image's size: the spec may not go below it. */
    ck_assert_int_eq(validate("{" REF "}", "{\"capacity\":\"8Mi\"}",
                              "{\"persistentVolumeClaim\":{\"size\":\"4Mi\"}," REF "}", &err),
                     -EINVAL);
    ck_assert_msg(strstr(err.message, "capacity is 8Mi"), "%s", err.message);
    ck_assert_int_eq(validate("{" REF "}", "{\"capacity\":\"8Mi\"}",
                              "{\"persistentVolumeClaim\":{\"size\":\"16Mi\"}," REF "}", &err), 0);
}
END_TEST

/* A Failed disk is made again from its new spec: any field may change, as
 * long as the new spec is valid; a Pending one keeps its source and class. */
START_TEST(test_validate_update_failed)
{
    struct vf_error err;
    const char *old = "{\"persistentVolumeClaim\":{\"size\":\"10Gi\",\"storageClassName\":"
                      "\"nosuch\"}," REF "}";
    const char *failed = "{\"phase\":\"Failed\"}", *pending = "{\"phase\":\"Pending\"}";
    const char *other = "{\"persistentVolumeClaim\":{\"size\":\"1Gi\",\"storageClassName\":"
                        "\"local\"},\"dataSource\":{\"type\":\"ObjectRef\",\"objectRef\":"
                        "{\"kind\":\"ClusterVirtualImage\",\"name\":\"img2\"}}}";
    ck_assert_int_eq(validate(old, failed, other, &err), 0);
    ck_assert_int_eq(validate(old, pending, other, &err), -EINVAL);
    ck_assert_str_eq(err.field, "spec.dataSource");
    /* Still checked: the new spec itself. */
    ck_assert_int_eq(validate(old, failed, "{\"persistentVolumeClaim\":{\"size\":\"lots\"}}",
                              &err), -EINVAL);
    ck_assert_str_eq(err.field, "spec.persistentVolumeClaim.size");
}
END_TEST

START_TEST(test_quantity)
{
    static const struct {
        const char *text;
        uint64_t bytes;
    } good[] = {{"10Gi", 10ULL << 30}, {"512Mi", 512ULL << 20}, {"1G", 1000000000ULL},
                {"1.5Gi", 3ULL << 29}, {"4097", 4097}, {"1k", 1000}, {"0.5Ki", 512}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct json_object *v = json_object_new_string(good[i].text);
        uint64_t b = 0;
        ck_assert_int_eq(vf_vd_quantity(v, &b), 0);
        ck_assert_uint_eq(b, good[i].bytes);
        json_object_put(v);
    }
    static const char *const bad[] = {"", "Gi", "1Qi", "-1", "1.Gi", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct json_object *v = json_object_new_string(bad[i]);
        uint64_t b = 0;
        ck_assert_msg(vf_vd_quantity(v, &b) < 0, "\"%s\" was accepted", bad[i]);
        json_object_put(v);
    }
    struct json_object *n = json_object_new_int64(1048576);
    uint64_t b = 0;
    ck_assert_int_eq(vf_vd_quantity(n, &b), 0);
    ck_assert_uint_eq(b, 1048576);
    json_object_put(n);

    char buf[32];
    vf_vd_quantity_format(10ULL << 30, buf, sizeof buf);
    ck_assert_str_eq(buf, "10Gi");
    vf_vd_quantity_format(1536ULL << 20, buf, sizeof buf);
    ck_assert_str_eq(buf, "1536Mi");
    vf_vd_quantity_format(4097, buf, sizeof buf);
    ck_assert_str_eq(buf, "4097");
    vf_vd_quantity_format(0, buf, sizeof buf);
    ck_assert_str_eq(buf, "0");
}
END_TEST

static int settings(const char *text, struct vf_vd_settings *s, struct vf_error *err)
{
    struct json_object *o = vf_test_json(text);
    memset(err, 0, sizeof *err);
    int rc = vf_vd_settings_read(o, s, err);
    json_object_put(o);
    return rc;
}

START_TEST(test_settings_and_classes)
{
    struct vf_vd_settings s;
    struct vf_error err;
    const struct vf_vd_class *c;
    char msg[256];
    ck_assert_int_eq(settings("{\"virtualDisks\":{\"storageClasses\":[\"local:default\","
                              "\"nfs:nfs-pool:shared\",\"slow:hdd\"],\"allowedStorageClassNames\":"
                              "[\"local\",\"nfs\"],\"defaultStorageClassName\":\"local\"}}", &s,
                              &err), 0);
    ck_assert_uint_eq(s.n_classes, 3);
    ck_assert_str_eq(s.classes[0].name, "local");
    ck_assert_str_eq(s.classes[0].pool, "default");
    ck_assert(!s.classes[0].shared);
    ck_assert_str_eq(s.classes[1].pool, "nfs-pool");
    ck_assert(s.classes[1].shared);
    /* None named: the default; named: must be allowed. */
    ck_assert_int_eq(vf_vd_class_resolve(&s, NULL, &c, msg, sizeof msg), 0);
    ck_assert_str_eq(c->name, "local");
    ck_assert_int_eq(vf_vd_class_resolve(&s, "nfs", &c, msg, sizeof msg), 0);
    ck_assert_str_eq(c->name, "nfs");
    ck_assert_int_eq(vf_vd_class_resolve(&s, "slow", &c, msg, sizeof msg), -ENOENT);
    ck_assert_msg(strstr(msg, "allowedStorageClassNames"), "%s", msg);

    /* One class and no default: that class. */
    ck_assert_int_eq(settings("{\"virtualDisks\":{\"storageClasses\":[\"only:p\"]}}", &s, &err),
                     0);
    ck_assert_int_eq(vf_vd_class_resolve(&s, NULL, &c, msg, sizeof msg), 0);
    ck_assert_str_eq(c->pool, "p");
    ck_assert_int_eq(vf_vd_class_resolve(&s, "other", &c, msg, sizeof msg), -ENOENT);
    ck_assert_msg(strstr(msg, "\"other\" is not one of"), "%s", msg);
    /* Nothing configured: says what to set. */
    ck_assert_int_eq(settings("{}", &s, &err), 0);
    ck_assert_int_eq(vf_vd_class_resolve(&s, NULL, &c, msg, sizeof msg), -ENOENT);
    ck_assert_msg(strstr(msg, "virtualDisks.storageClasses"), "%s", msg);

    static const struct {
        const char *text, *field;
    } bad[] = {
        {"{\"virtualDisks\":{\"storageClasses\":[\"nopool\"]}}", "virtualDisks.storageClasses[0]"},
        {"{\"virtualDisks\":{\"storageClasses\":[\"a:p\",\"b:p:nfs\"]}}",
         "virtualDisks.storageClasses[1]"},
        {"{\"virtualDisks\":{\"storageClasses\":[\"Upper:p\"]}}",
         "virtualDisks.storageClasses[0]"},
        {"{\"virtualDisks\":{\"storageClasses\":[\"a:p\",\"a:q\"]}}",
         "virtualDisks.storageClasses[1]"},
        {"{\"virtualDisks\":{\"storageClasses\":[\"a:p\"],\"defaultStorageClassName\":\"b\"}}",
         "virtualDisks.defaultStorageClassName"},
        {"{\"virtualDisks\":{\"storageClasses\":[\"a:p\"],\"allowedStorageClassNames\":"
         "[\"a\",\"c\"]}}", "virtualDisks.allowedStorageClassNames[1]"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(settings(bad[i].text, &s, &err), -EINVAL);
        ck_assert_str_eq(err.field, bad[i].field);
        ck_assert_msg(strstr(err.message, bad[i].field), "%s", err.message);
    }
}
END_TEST

START_TEST(test_volume_xml)
{
    struct vf_error err = {0};
    char *xml = NULL;
    ck_assert_int_eq(vf_vd_volume_xml("vd-data-1234abcd", "qcow2", 67108864, &xml, &err), 0);
    ck_assert_str_eq(xml, "<volume>\n  <name>vd-data-1234abcd</name>\n"
                          "  <allocation unit='bytes'>0</allocation>\n"
                          "  <capacity unit='bytes'>67108864</capacity>\n  <target>\n"
                          "    <format type='qcow2'/>\n  </target>\n</volume>\n");
    free(xml);
    ck_assert_int_eq(vf_vd_volume_xml("../etc", "raw", 1, &xml, &err), -EINVAL);
    ck_assert_ptr_null(xml);
    ck_assert_int_eq(vf_vd_volume_xml("x<y", "raw", 1, &xml, &err), -EINVAL);
    ck_assert_int_eq(vf_vd_volume_xml("ok", "vmdk", 1, &xml, &err), -EINVAL);
    ck_assert_msg(strstr(err.message, "neither raw nor qcow2"), "%s", err.message);
}
END_TEST

/* Data and holes of a sparse file, as the sparse upload sends them. */
START_TEST(test_file_sections)
{
    char *dir = vf_test_tmpdir(), path[4096];
    snprintf(path, sizeof path, "%s/sparse", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    static char block[1 << 16];
    memset(block, 'x', sizeof block);
    /* 4 MiB: a hole, 64 KiB of data at 1 MiB, a hole to the end. */
    ck_assert_int_eq(ftruncate(fd, 4 << 20), 0);
    ck_assert_int_eq(pwrite(fd, block, sizeof block, 1 << 20), (ssize_t)sizeof block);
    bool data;
    uint64_t len, off = 0, seen_data = 0, sections = 0;
    while (off < (4u << 20)) {
        ck_assert_int_eq(vf_vd_file_section(fd, off, 4 << 20, &data, &len), 0);
        ck_assert_uint_gt(len, 0);
        if (data)
            seen_data += len;
        off += len;
        sections++;
    }
    ck_assert_uint_eq(off, 4u << 20);
    /* File systems without holes report all data; with them, only the block. */
    ck_assert(seen_data == sizeof block || seen_data == (4u << 20));
    if (seen_data == sizeof block)
        ck_assert_uint_eq(sections, 3);
    ck_assert_int_eq(vf_vd_file_section(fd, 4 << 20, 4 << 20, &data, &len), 0);
    ck_assert(!data);
    ck_assert_uint_eq(len, 0);
    close(fd);
    vf_test_rmtree(dir);
    free(dir);
}
END_TEST

/* Which failures are tried again: the state of a node passes, a request
 * libvirt calls invalid or unsupported does not. */
START_TEST(test_failure_classes)
{
    static const struct {
        int rc, lv_code;
        bool transient;
    } cases[] = {
        {-EIO, VIR_ERR_SYSTEM_ERROR, true},          /* the connection dropped mid-copy */
        {-EIO, VIR_ERR_RPC, true},
        {-EIO, VIR_ERR_INTERNAL_ERROR, true},        /* "client socket is closed" */
        {-EIO, VIR_ERR_NO_CONNECT, true},
        {-EIO, VIR_ERR_OPERATION_TIMEOUT, true},
        {-EIO, VIR_ERR_OPERATION_INVALID, true},     /* an inactive pool */
        {-EIO, VIR_ERR_NO_STORAGE_POOL, true},       /* not defined on the node yet */
        {-EIO, VIR_ERR_OPERATION_FAILED, true},
        {-EIO, 0, true},                             /* ours: the pool is inactive */
        {-ENOSPC, 0, true},                          /* no node has the room now */
        {-ENOENT, 0, true},                          /* no Ready node */
        {-ENOMEM, 0, true},
        {-EINVAL, 0, false},                         /* a request we built wrong */
        {-EIO, VIR_ERR_XML_ERROR, false},
        {-EIO, VIR_ERR_INVALID_ARG, false},
        {-EIO, VIR_ERR_CONFIG_UNSUPPORTED, false},
        {-EIO, VIR_ERR_NO_SUPPORT, false},           /* a pool type without upload */
        {-EIO, VIR_ERR_OPERATION_UNSUPPORTED, false},
        {-EIO, VIR_ERR_ARGUMENT_UNSUPPORTED, false},
        {0, 0, false},                               /* nothing failed */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_msg(vf_vd_failure_transient(cases[i].rc, cases[i].lv_code) ==
                      cases[i].transient, "%zu: rc %d, libvirt code %d", i, cases[i].rc,
                      cases[i].lv_code);
}
END_TEST

/* 5 s doubling to 5 min, shortened by up to a fifth; the same for a disk
 * every time, spread over disks. */
START_TEST(test_retry_delay)
{
    static const struct {
        unsigned attempt, lo, hi;
    } steps[] = {{0, 4, 5},     {1, 4, 5},     {2, 8, 10},     {3, 16, 20},      {4, 32, 40},
                 {6, 128, 160}, {7, 240, 300}, {30, 240, 300}, {~0u, 240, 300}};
    static const char *const uids[] = {"6f1c2d1e-0000-4000-8000-000000000001",
                                       "6f1c2d1e-0000-4000-8000-000000000002", "", NULL};
    for (size_t u = 0; u < sizeof uids / sizeof uids[0]; u++)
        for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
            unsigned d = vf_vd_retry_delay(steps[i].attempt, uids[u]);
            ck_assert_msg(d >= steps[i].lo && d <= steps[i].hi, "attempt %u of \"%s\": %us",
                          steps[i].attempt, uids[u] ? uids[u] : "(null)", d);
            ck_assert_uint_eq(d, vf_vd_retry_delay(steps[i].attempt, uids[u]));
        }
    /* The jitter: 100 disks failing together do not all come back at once. */
    unsigned seen[301] = {0}, distinct = 0;
    for (int i = 0; i < 100; i++) {
        char uid[64];
        snprintf(uid, sizeof uid, "uid-%d", i);
        unsigned d = vf_vd_retry_delay(5, uid);
        ck_assert(d >= 64 && d <= 80);
        distinct += seen[d]++ == 0;
    }
    ck_assert_uint_ge(distinct, 8);
}
END_TEST

START_TEST(test_retry_message)
{
    char buf[256];
    vf_vd_retry_message(3, "node \"n2\": storage pool \"local\" is not active", 20, buf,
                        sizeof buf);
    ck_assert_str_eq(buf, "attempt 3 failed: node \"n2\": storage pool \"local\" is not "
                          "active; next attempt in 20s");
    vf_vd_retry_message(7, "x", 280, buf, sizeof buf);
    ck_assert_str_eq(buf, "attempt 7 failed: x; next attempt in 4m40s");
    vf_vd_retry_message(9, "", 300, buf, sizeof buf);
    ck_assert_str_eq(buf, "attempt 9 failed: unknown error; next attempt in 5m");
}
END_TEST

static struct vf_vd_volume_job *job(virConnectPtr conn, enum vf_vd_op op, const char *pool,
                                    const char *volume)
{
    struct vf_vd_volume_job *j = vf_vd_volume_job_new(op);
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(virConnectRef(conn), 0);
    if (op == VF_VD_CHOOSE) {
        snprintf(j->candidates[0].node, sizeof j->candidates[0].node, "n1");
        j->candidates[0].conn = conn;
        j->n_candidates = 1;
    } else {
        snprintf(j->node, sizeof j->node, "n1");
        j->conn = conn;
    }
    snprintf(j->pool, sizeof j->pool, "%s", pool);
    snprintf(j->volume, sizeof j->volume, "%s", volume);
    snprintf(j->format, sizeof j->format, "qcow2");
    j->capacity = 64 << 20;
    return j;
}

/* Real failures of the volume jobs (test driver), classified: an inactive
 * or missing pool passes, a malformed request does not; a CREATE says
 * whether it left a volume; a CREATE deletes the volume of its name an
 * earlier attempt left and makes it anew. */
START_TEST(test_job_failures_on_test_driver)
{
    virConnectPtr conn = virConnectOpen("test:///default");
    ck_assert_ptr_nonnull(conn);
    virStoragePoolPtr pool = virStoragePoolLookupByName(conn, "default-pool");
    ck_assert_ptr_nonnull(pool);

    ck_assert_int_eq(virStoragePoolDestroy(pool), 0);
    struct vf_vd_volume_job *j = job(conn, VF_VD_CHOOSE, "default-pool", "vd-unit-0002");
    vf_vd_volume_run(j);
    ck_assert_int_lt(j->rc, 0);
    ck_assert_msg(strstr(j->err.message, "\"default-pool\" is not active"), "%s", j->err.message);
    ck_assert(vf_vd_failure_transient(j->rc, j->lv_code));
    vf_vd_volume_job_free(j);
    j = job(conn, VF_VD_CREATE, "default-pool", "vd-unit-0002");
    vf_vd_volume_run(j);
    ck_assert_int_lt(j->rc, 0);
    ck_assert(vf_vd_failure_transient(j->rc, j->lv_code));
    ck_assert(!j->no_volume);                       /* not known: the pool was not read */
    vf_vd_volume_job_free(j);
    ck_assert_int_eq(virStoragePoolCreate(pool, 0), 0);

    /* No node can take it now, whatever each one said: that passes. */
    j = job(conn, VF_VD_CHOOSE, "no-such-pool", "vd-unit-0002");
    vf_vd_volume_run(j);
    ck_assert_int_eq(j->rc, -ENOSPC);
    ck_assert_int_eq(j->lv_code, 0);
    ck_assert(vf_vd_failure_transient(j->rc, j->lv_code));
    vf_vd_volume_job_free(j);

    j = job(conn, VF_VD_CREATE, "no-such-pool", "vd-unit-0002");
    vf_vd_volume_run(j);
    ck_assert_int_lt(j->rc, 0);
    ck_assert_int_eq(j->lv_code, VIR_ERR_NO_STORAGE_POOL);
    ck_assert(vf_vd_failure_transient(j->rc, j->lv_code));
    vf_vd_volume_job_free(j);

    j = job(conn, VF_VD_CREATE, "default-pool", "vd-unit-0002");
    snprintf(j->format, sizeof j->format, "vmdk");
    vf_vd_volume_run(j);
    ck_assert_int_eq(j->rc, -EINVAL);
    ck_assert(!vf_vd_failure_transient(j->rc, j->lv_code));
    ck_assert(j->no_volume);                        /* looked: none there, none made */
    vf_vd_volume_job_free(j);

    /* What a failed attempt left (1 MiB) is deleted, and the volume made anew:
     * creating it over the old one would fail with "already exists". */
    char *xml = NULL;
    struct vf_error err = {0};
    ck_assert_int_eq(vf_vd_volume_xml("vd-unit-0002", "raw", 1 << 20, &xml, &err), 0);
    virStorageVolPtr left = virStorageVolCreateXML(pool, xml, 0);
    free(xml);
    ck_assert_ptr_nonnull(left);
    virStorageVolFree(left);
    j = job(conn, VF_VD_CREATE, "default-pool", "vd-unit-0002");
    vf_vd_volume_run(j);
    ck_assert_msg(j->rc == 0, "create over a leftover: %s", j->err.message);
    ck_assert_uint_eq(j->capacity_out, 64 << 20);
    vf_vd_volume_job_free(j);
    j = job(conn, VF_VD_DELETE, "default-pool", "vd-unit-0002");
    vf_vd_volume_run(j);
    ck_assert_int_eq(j->rc, 0);
    vf_vd_volume_job_free(j);
    virStoragePoolFree(pool);
    virConnectClose(conn);
}
END_TEST

/* CHOOSE, CREATE (blank), RESIZE and DELETE against the test driver's pool. */
START_TEST(test_jobs_on_test_driver)
{
    virConnectPtr conn = virConnectOpen("test:///default");
    ck_assert_ptr_nonnull(conn);

    struct vf_vd_volume_job *j = vf_vd_volume_job_new(VF_VD_CHOOSE);
    snprintf(j->pool, sizeof j->pool, "default-pool");
    j->capacity = 1 << 20;
    snprintf(j->candidates[0].node, sizeof j->candidates[0].node, "n1");
    ck_assert_int_eq(virConnectRef(conn), 0);
    j->candidates[0].conn = conn;
    j->n_candidates = 1;
    vf_vd_volume_run(j);
    ck_assert_msg(j->rc == 0, "choose: %s", j->err.message);
    ck_assert_str_eq(j->chosen, "n1");
    vf_vd_volume_job_free(j);

    /* A pool the node lacks: the reason names node and pool. */
    j = vf_vd_volume_job_new(VF_VD_CHOOSE);
    snprintf(j->pool, sizeof j->pool, "no-such-pool");
    snprintf(j->candidates[0].node, sizeof j->candidates[0].node, "n1");
    ck_assert_int_eq(virConnectRef(conn), 0);
    j->candidates[0].conn = conn;
    j->n_candidates = 1;
    vf_vd_volume_run(j);
    ck_assert_int_lt(j->rc, 0);
    ck_assert_msg(strstr(j->err.message, "n1") && strstr(j->err.message, "no-such-pool"), "%s",
                  j->err.message);
    vf_vd_volume_job_free(j);

    j = vf_vd_volume_job_new(VF_VD_CREATE);
    snprintf(j->node, sizeof j->node, "n1");
    snprintf(j->pool, sizeof j->pool, "default-pool");
    snprintf(j->volume, sizeof j->volume, "vd-unit-0001");
    snprintf(j->format, sizeof j->format, "qcow2");
    j->capacity = 64 << 20;
    ck_assert_int_eq(virConnectRef(conn), 0);
    j->conn = conn;
    vf_vd_volume_run(j);
    ck_assert_msg(j->rc == 0, "create: %s", j->err.message);
    ck_assert_uint_eq(j->capacity_out, 64 << 20);
    ck_assert_msg(strstr(j->path, "vd-unit-0001"), "path %s", j->path);
    vf_vd_volume_job_free(j);
    virStoragePoolPtr pool = virStoragePoolLookupByName(conn, "default-pool");
    ck_assert_ptr_nonnull(pool);
    virStorageVolPtr vol = virStorageVolLookupByName(pool, "vd-unit-0001");
    ck_assert_ptr_nonnull(vol);
    virStorageVolFree(vol);

    j = vf_vd_volume_job_new(VF_VD_DELETE);
    snprintf(j->node, sizeof j->node, "n1");
    snprintf(j->pool, sizeof j->pool, "default-pool");
    snprintf(j->volume, sizeof j->volume, "vd-unit-0001");
    ck_assert_int_eq(virConnectRef(conn), 0);
    j->conn = conn;
    vf_vd_volume_run(j);
    ck_assert_msg(j->rc == 0, "delete: %s", j->err.message);
    vf_vd_volume_job_free(j);
    ck_assert_ptr_null(virStorageVolLookupByName(pool, "vd-unit-0001"));

    /* Deleting what is gone already is done. */
    j = vf_vd_volume_job_new(VF_VD_DELETE);
    snprintf(j->pool, sizeof j->pool, "default-pool");
    snprintf(j->volume, sizeof j->volume, "vd-unit-0001");
    ck_assert_int_eq(virConnectRef(conn), 0);
    j->conn = conn;
    vf_vd_volume_run(j);
    ck_assert_int_eq(j->rc, 0);
    vf_vd_volume_job_free(j);
    virStoragePoolFree(pool);
    virConnectClose(conn);
}
END_TEST

static Suite *vd_suite(void)
{
    const struct vf_test_case cases[] = {
        {"validate", test_validate},
        {"validate_update", test_validate_update},
        {"validate_update_failed", test_validate_update_failed},
        {"quantity", test_quantity},
        {"settings_and_classes", test_settings_and_classes},
        {"volume_xml", test_volume_xml},
        {"file_sections", test_file_sections},
        {"jobs_on_test_driver", test_jobs_on_test_driver},
        {"failure_classes", test_failure_classes},
        {"retry_delay", test_retry_delay},
        {"retry_message", test_retry_message},
        {"job_failures_on_test_driver", test_job_failures_on_test_driver},
    };
    return vf_test_suite("vd", cases, sizeof cases / sizeof cases[0]);
}

int main(void)
{
    return vf_test_run(vd_suite());
}
