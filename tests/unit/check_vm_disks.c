#include <config.h>
/* vm_disks: a VM's spec.blockDeviceRefs resolved from the objects a lookup
 * returns: Ready disks become domain disks in order, local disks pin the VM to
 * their node, shared ones do not, a CD-ROM image is attached read-only, and
 * every reason to wait or to refuse is named with the disk. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/placement.h"
#include "core/vm_disks.h"
#include "tests/unit/testlib.h"

/* The objects the lookup knows: an array of VirtualDisks and images. */
static struct json_object *lookup(void *opaque, const char *kind, const char *name)
{
    struct json_object *objs = opaque;
    for (size_t i = 0; i < json_object_array_length(objs); i++) {
        struct json_object *o = json_object_array_get_idx(objs, i);
        if (!strcmp(vf_test_json_str(o, "kind"), kind) &&
            !strcmp(vf_test_json_str(o, "metadata.name"), name))
            return json_object_get(o);
    }
    return NULL;
}

static struct json_object *vm_refs(const char *name, const char *refs)
{
    char text[1024];
    snprintf(text, sizeof text, "{\"kind\":\"VirtualMachine\",\"metadata\":{\"name\":\"%s\"},"
             "\"spec\":{\"blockDeviceRefs\":%s},\"status\":{}}", name, refs);
    return vf_test_json(text);
}

/* A Ready disk on node (shared or not). */
static void add_disk(struct json_object *objs, const char *name, const char *node, bool shared,
                     const char *format)
{
    char text[1024];
    snprintf(text, sizeof text, "{\"kind\":\"VirtualDisk\",\"metadata\":{\"name\":\"%s\"},"
             "\"status\":{\"phase\":\"Ready\",\"format\":\"%s\",\"target\":{\"node\":\"%s\","
             "\"pool\":\"p\",\"volume\":\"vd-%s\",\"path\":\"/pool/vd-%s\",\"shared\":%s}}}",
             name, format, node, name, name, shared ? "true" : "false");
    json_object_array_add(objs, vf_test_json(text));
}

static int resolve(struct json_object *vm, struct json_object *objs, struct json_object *vms,
                   struct vf_vm_disks *out, char *reason, char *msg)
{
    return vf_vm_disks_resolve_with(vm, lookup, objs, vms, out, reason, 64, msg, 512);
}

START_TEST(test_no_refs)
{
    struct json_object *vm = vf_test_json("{\"metadata\":{\"name\":\"v\"},\"spec\":{}}");
    struct json_object *objs = json_object_new_array();
    struct vf_vm_disks d;
    char reason[64], msg[512];
    ck_assert_int_eq(resolve(vm, objs, NULL, &d, reason, msg), 0);
    ck_assert_uint_eq(d.n, 0);
    ck_assert_str_eq(d.node, "");
    ck_assert(!d.local);
    vf_vm_disks_free(&d);
    json_object_put(vm);
    json_object_put(objs);
}
END_TEST

START_TEST(test_ready_disks_in_order)
{
    struct json_object *objs = json_object_new_array();
    add_disk(objs, "root", "node-2", false, "qcow2");
    add_disk(objs, "data", "node-1", true, "raw");
    json_object_array_add(objs, vf_test_json(
        "{\"kind\":\"ClusterVirtualImage\",\"metadata\":{\"name\":\"cd\"},\"status\":{\"phase\":"
        "\"Ready\",\"cdrom\":true,\"format\":\"raw\",\"target\":{\"path\":\"/dvcr/cd.raw\"}}}"));
    struct json_object *vm = vm_refs("v", "[{\"kind\":\"VirtualDisk\",\"name\":\"root\"},"
                                          "{\"kind\":\"ClusterVirtualImage\",\"name\":\"cd\"},"
                                          "{\"kind\":\"VirtualDisk\",\"name\":\"data\"}]");
    struct vf_vm_disks d;
    char reason[64], msg[512];
    ck_assert_int_eq(resolve(vm, objs, NULL, &d, reason, msg), 0);
    ck_assert_uint_eq(d.n, 3);
    ck_assert_str_eq(d.disks[0].path, "/pool/vd-root");
    ck_assert_str_eq(d.disks[0].format, "qcow2");
    ck_assert(!d.disks[0].cdrom && !d.disks[0].readonly);
    ck_assert_str_eq(d.disks[1].path, "/dvcr/cd.raw");
    ck_assert(d.disks[1].cdrom && d.disks[1].readonly);
    ck_assert_str_eq(d.disks[2].path, "/pool/vd-data");
    ck_assert_str_eq(d.disks[2].format, "raw");
    /* root is local to node-2; data is shared and pins nothing. */
    ck_assert_str_eq(d.node, "node-2");
    ck_assert(d.local);
    vf_vm_disks_free(&d);
    json_object_put(vm);

    vm = vm_refs("v", "[{\"kind\":\"VirtualDisk\",\"name\":\"data\"}]");
    ck_assert_int_eq(resolve(vm, objs, NULL, &d, reason, msg), 0);
    ck_assert_str_eq(d.node, "");
    ck_assert(!d.local);
    vf_vm_disks_free(&d);
    json_object_put(vm);
    json_object_put(objs);
}
END_TEST

/* Each reason to wait (-EAGAIN) or to refuse (-EINVAL), with the disk named. */
START_TEST(test_wait_and_refuse)
{
    struct json_object *objs = json_object_new_array();
    add_disk(objs, "a", "node-1", false, "raw");
    add_disk(objs, "b", "node-2", false, "raw");
    json_object_array_add(objs, vf_test_json(
        "{\"kind\":\"VirtualDisk\",\"metadata\":{\"name\":\"prov\"},\"status\":{\"phase\":"
        "\"Provisioning\",\"progress\":\"10.0%\"}}"));
    json_object_array_add(objs, vf_test_json(
        "{\"kind\":\"VirtualDisk\",\"metadata\":{\"name\":\"del\",\"deletionTimestamp\":"
        "\"2026-01-01T00:00:00Z\"},\"status\":{\"phase\":\"Ready\",\"target\":{\"node\":\"n\","
        "\"path\":\"/p/x\"}}}"));
    json_object_array_add(objs, vf_test_json(
        "{\"kind\":\"VirtualDisk\",\"metadata\":{\"name\":\"copied\",\"finalizers\":["
        "\"virtfleet.io/disk-cleanup\",\"virtfleet.io/image-source\"]},\"status\":{\"phase\":"
        "\"Ready\",\"target\":{\"node\":\"n\",\"path\":\"/p/y\"}}}"));
    json_object_array_add(objs, vf_test_json(
        "{\"kind\":\"ClusterVirtualImage\",\"metadata\":{\"name\":\"disk-image\"},\"status\":{"
        "\"phase\":\"Ready\",\"cdrom\":false,\"format\":\"qcow2\",\"target\":{\"path\":\"/d/i\"}}}"));
    struct json_object *vms = vf_test_json(
        "[{\"metadata\":{\"name\":\"other\"},\"spec\":{\"blockDeviceRefs\":[{\"kind\":"
        "\"VirtualDisk\",\"name\":\"a\"}]},\"status\":{\"phase\":\"Running\",\"node\":\"node-1\"}},"
        "{\"metadata\":{\"name\":\"stopped\"},\"spec\":{\"blockDeviceRefs\":[{\"kind\":"
        "\"VirtualDisk\",\"name\":\"b\"}]},\"status\":{\"phase\":\"Stopped\"}}]");
    static const struct {
        const char *refs;
        int rc;
        const char *reason, *words;
    } cases[] = {
        {"[{\"kind\":\"VirtualDisk\",\"name\":\"nope\"}]", -EAGAIN, "DiskNotFound",
         "VirtualDisk \"nope\" not found"},
        {"[{\"kind\":\"VirtualDisk\",\"name\":\"prov\"}]", -EAGAIN, "DiskNotReady",
         "\"prov\" is Provisioning"},
        {"[{\"kind\":\"VirtualDisk\",\"name\":\"del\"}]", -EAGAIN, "DiskNotReady",
         "being deleted"},
        {"[{\"kind\":\"VirtualDisk\",\"name\":\"copied\"}]", -EAGAIN, "DiskBeingCopied",
         "\"copied\" is being copied into an image"},
        {"[{\"kind\":\"VirtualDisk\",\"name\":\"a\"}]", -EAGAIN, "DiskInUse",
         "in use by VM \"other\" (on node \"node-1\")"},
        {"[{\"kind\":\"VirtualDisk\",\"name\":\"b\"},{\"kind\":\"VirtualDisk\",\"name\":\"c\"}]",
         -EAGAIN, "DiskNotFound", "\"c\""},
        {"[{\"kind\":\"ClusterVirtualImage\",\"name\":\"disk-image\"}]", -EINVAL,
         "ImageNotCDROM", "make a VirtualDisk from it"},
        {"[{\"kind\":\"ClusterVirtualImage\",\"name\":\"gone\"}]", -EAGAIN, "DiskNotFound",
         "\"gone\" not found"},
        {"[{\"kind\":\"VirtualImage\",\"name\":\"x\"}]", -EINVAL, "UnsupportedBlockDevice",
         "VirtualImage is not supported"},
        {"[{\"kind\":\"VirtualDisk\",\"name\":\"b\"},{\"kind\":\"VirtualDisk\",\"name\":\"b\"}]",
         -EINVAL, "InvalidBlockDeviceRef", "listed twice"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct json_object *vm = vm_refs("v", cases[i].refs);
        struct vf_vm_disks d;
        char reason[64], msg[512];
        ck_assert_int_eq(resolve(vm, objs, vms, &d, reason, msg), cases[i].rc);
        ck_assert_str_eq(reason, cases[i].reason);
        ck_assert_msg(strstr(msg, cases[i].words), "case %zu: \"%s\" lacks \"%s\"", i, msg,
                      cases[i].words);
        ck_assert_uint_eq(d.n, 0);   /* nothing to free after an error */
        json_object_put(vm);
    }
    /* A stopped VM (no node) does not hold its disk; the VM itself never counts. */
    struct json_object *vm = vm_refs("stopped", "[{\"kind\":\"VirtualDisk\",\"name\":\"b\"}]");
    struct vf_vm_disks d;
    char reason[64], msg[512];
    ck_assert_int_eq(resolve(vm, objs, vms, &d, reason, msg), 0);
    vf_vm_disks_free(&d);
    json_object_put(vm);
    vm = vm_refs("other", "[{\"kind\":\"VirtualDisk\",\"name\":\"a\"}]");
    ck_assert_int_eq(resolve(vm, objs, vms, &d, reason, msg), 0);
    vf_vm_disks_free(&d);
    json_object_put(vm);
    json_object_put(vms);
    json_object_put(objs);
}
END_TEST

START_TEST(test_local_disks_on_two_nodes)
{
    struct json_object *objs = json_object_new_array();
    add_disk(objs, "a", "node-1", false, "raw");
    add_disk(objs, "b", "node-2", false, "raw");
    add_disk(objs, "c", "node-1", false, "qcow2");
    struct json_object *vm = vm_refs("v", "[{\"kind\":\"VirtualDisk\",\"name\":\"a\"},"
                                          "{\"kind\":\"VirtualDisk\",\"name\":\"c\"}]");
    struct vf_vm_disks d;
    char reason[64], msg[512];
    ck_assert_int_eq(resolve(vm, objs, NULL, &d, reason, msg), 0);
    ck_assert_str_eq(d.node, "node-1");
    vf_vm_disks_free(&d);
    json_object_put(vm);
    vm = vm_refs("v", "[{\"kind\":\"VirtualDisk\",\"name\":\"a\"},"
                      "{\"kind\":\"VirtualDisk\",\"name\":\"b\"}]");
    ck_assert_int_eq(resolve(vm, objs, NULL, &d, reason, msg), -EAGAIN);
    ck_assert_str_eq(reason, "DisksOnDifferentNodes");
    ck_assert_msg(strstr(msg, "\"b\" lives on node \"node-2\"") && strstr(msg, "\"node-1\""),
                  "%s", msg);
    json_object_put(vm);
    json_object_put(objs);
}
END_TEST

/* What the controller does with d.node: placement keeps the VM on that node,
 * even when another has more room, and says why the others are out. */
START_TEST(test_pinned_placement)
{
    struct vf_placement_node nodes[] = {
        {.name = "node-1", .ready = true, .cpu_capacity_millis = 8000,
         .memory_capacity_bytes = 16LL << 30},
        {.name = "node-2", .ready = true, .cpu_capacity_millis = 2000,
         .memory_capacity_bytes = 2LL << 30},
    };
    struct vf_placement_request req = {.vm_name = "v", .cpu_millis = 1000,
                                       .memory_bytes = 1LL << 30};
    char why[512] = "";
    ck_assert_int_eq(vf_placement_choose(&req, nodes, 2, why, sizeof why), 0);
    req.only_node = "node-2";
    ck_assert_int_eq(vf_placement_choose(&req, nodes, 2, why, sizeof why), 1);
    nodes[1].ready = false;
    ck_assert_int_eq(vf_placement_choose(&req, nodes, 2, why, sizeof why), -1);
    ck_assert_msg(strstr(why, "node-1: the VM's local disks are on node node-2") &&
                  strstr(why, "node-2: NotReady"), "%s", why);
}
END_TEST

/* A CD-ROM image with status.cdromCopies (pool copies on nodes; shared: one
 * copy every node sees). */
static void add_cdrom_copies(struct json_object *objs, const char *name, const char *nodes,
                             bool shared)
{
    char text[1024];
    snprintf(text, sizeof text, "{\"kind\":\"ClusterVirtualImage\",\"metadata\":{\"name\":\"%s\"},"
             "\"status\":{\"phase\":\"Ready\",\"cdrom\":true,\"format\":\"raw\",\"target\":"
             "{\"path\":\"/dvcr/%s.raw\"},\"cdromCopies\":{\"pool\":\"local\",\"volume\":"
             "\"cvi-%s.iso\",\"shared\":%s,\"nodes\":%s}}}", name, name, name,
             shared ? "true" : "false", nodes);
    json_object_array_add(objs, vf_test_json(text));
}

static size_t count_nodes(char **nodes)
{
    size_t n = 0;
    while (nodes && nodes[n])
        n++;
    return n;
}

/* Copies in the nodes' pools: the disk is the pool's volume (no path), the
 * VM may run only where every image it names has a copy, none yet means
 * waiting, and a shared copy restricts nothing. */
START_TEST(test_cdrom_copies)
{
    struct json_object *objs = json_object_new_array();
    add_cdrom_copies(objs, "a", "[\"node-1\",\"node-2\",\"node-3\"]", false);
    add_cdrom_copies(objs, "b", "[\"node-3\",\"node-2\"]", false);
    add_cdrom_copies(objs, "none", "[]", false);
    add_cdrom_copies(objs, "c", "[\"node-1\"]", false);
    add_cdrom_copies(objs, "nfs", "[\"node-1\"]", true);
    struct vf_vm_disks d;
    char reason[64], msg[512];

    struct json_object *vm = vm_refs("v", "[{\"kind\":\"ClusterVirtualImage\",\"name\":\"a\"},"
                                          "{\"kind\":\"ClusterVirtualImage\",\"name\":\"b\"}]");
    ck_assert_int_eq(resolve(vm, objs, NULL, &d, reason, msg), 0);
    ck_assert_uint_eq(d.n, 2);
    ck_assert_ptr_null(d.disks[0].path);
    ck_assert_str_eq(d.disks[0].pool, "local");
    ck_assert_str_eq(d.disks[0].volume, "cvi-a.iso");
    ck_assert(d.disks[0].cdrom && d.disks[0].readonly);
    ck_assert_uint_eq(count_nodes(d.image_nodes), 2);
    ck_assert(vf_vm_disks_on_node(&d, "node-2") && vf_vm_disks_on_node(&d, "node-3"));
    ck_assert(!vf_vm_disks_on_node(&d, "node-1"));
    vf_vm_disks_free(&d);
    json_object_put(vm);

    vm = vm_refs("v", "[{\"kind\":\"ClusterVirtualImage\",\"name\":\"none\"}]");
    ck_assert_int_eq(resolve(vm, objs, NULL, &d, reason, msg), -EAGAIN);
    ck_assert_str_eq(reason, "ImageNotOnNodes");
    ck_assert_msg(strstr(msg, "\"none\" is being copied to the nodes' storage pool local"), "%s",
                  msg);
    json_object_put(vm);

    vm = vm_refs("v", "[{\"kind\":\"ClusterVirtualImage\",\"name\":\"b\"},"
                      "{\"kind\":\"ClusterVirtualImage\",\"name\":\"c\"}]");
    ck_assert_int_eq(resolve(vm, objs, NULL, &d, reason, msg), -EAGAIN);
    ck_assert_str_eq(reason, "ImageNotOnNodes");
    ck_assert_msg(strstr(msg, "no node holds a copy of every CD-ROM image"), "%s", msg);
    json_object_put(vm);

    vm = vm_refs("v", "[{\"kind\":\"ClusterVirtualImage\",\"name\":\"nfs\"}]");
    ck_assert_int_eq(resolve(vm, objs, NULL, &d, reason, msg), 0);
    ck_assert_ptr_null(d.image_nodes);
    ck_assert(vf_vm_disks_on_node(&d, "node-9"));
    vf_vm_disks_free(&d);
    json_object_put(vm);
    json_object_put(objs);
}
END_TEST

/* Placement keeps a VM off nodes without a copy of its CD-ROM and says so. */
START_TEST(test_image_nodes_placement)
{
    struct vf_placement_node nodes[] = {
        {.name = "node-1", .ready = true, .cpu_capacity_millis = 8000,
         .memory_capacity_bytes = 16LL << 30},
        {.name = "node-2", .ready = true, .cpu_capacity_millis = 2000,
         .memory_capacity_bytes = 2LL << 30},
    };
    const char *const copies[] = {"node-2", NULL}, *const nowhere[] = {NULL};
    struct vf_placement_request req = {.vm_name = "v", .cpu_millis = 1000,
                                       .memory_bytes = 1LL << 30, .image_nodes = copies};
    char why[512] = "";
    ck_assert_int_eq(vf_placement_choose(&req, nodes, 2, why, sizeof why), 1);
    req.image_nodes = nowhere;
    ck_assert_int_eq(vf_placement_choose(&req, nodes, 2, why, sizeof why), -1);
    ck_assert_msg(strstr(why, "node-1: its CD-ROM image is not copied to this node yet"), "%s",
                  why);
}
END_TEST

static Suite *vm_disks_suite(void)
{
    const struct vf_test_case cases[] = {
        {"no_refs", test_no_refs},
        {"ready_disks_in_order", test_ready_disks_in_order},
        {"wait_and_refuse", test_wait_and_refuse},
        {"local_disks_on_two_nodes", test_local_disks_on_two_nodes},
        {"pinned_placement", test_pinned_placement},
        {"cdrom_copies", test_cdrom_copies},
        {"image_nodes_placement", test_image_nodes_placement},
    };
    return vf_test_suite("vm_disks", cases, sizeof cases / sizeof cases[0]);
}

int main(void)
{
    return vf_test_run(vm_disks_suite());
}
