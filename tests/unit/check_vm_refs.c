#include <config.h>
/* The images module's index of VirtualMachines by the disks and images they
 * name (modules/images/vm_refs.c), fed with watch events as the module's VM
 * watch feeds it: added VMs, changed references and status, deleted VMs, a VM
 * recreated under its name with a new uid, and what each event reports as
 * touched (the objects named before or after it, once each).  Lookups return
 * the VMs sorted by name, as the store lists them. */
#include <stdio.h>
#include <string.h>
#include "tests/unit/testlib.h"
#include "modules/images/vm_refs.h"

/* A VM: REFS is the inside of its blockDeviceRefs array, STATUS of its status. */
static struct json_object *vm(const char *name, const char *uid, const char *refs,
                              const char *status, bool deleting)
{
    char text[2048];
    snprintf(text, sizeof text,
             "{\"kind\":\"VirtualMachine\",\"metadata\":{\"name\":\"%s\",\"uid\":\"%s\"%s},"
             "\"spec\":{\"blockDeviceRefs\":[%s]},\"status\":{%s}}",
             name, uid, deleting ? ",\"deletionTimestamp\":\"2026-01-01T00:00:00Z\"" : "", refs,
             status);
    return vf_test_json(text);
}

#define VD(n) "{\"kind\":\"VirtualDisk\",\"name\":\"" n "\"}"
#define CVI(n) "{\"kind\":\"ClusterVirtualImage\",\"name\":\"" n "\"}"

/* What an event touched, as "Kind/name" lines in the order reported. */
struct touched {
    char text[4096];
    int count;
};

static void on_touched(void *opaque, const char *kind, const char *name)
{
    struct touched *t = opaque;
    size_t o = strlen(t->text);
    snprintf(t->text + o, sizeof t->text - o, "%s/%s\n", kind, name);
    t->count++;
}

/* Applies the event of VM (freed here); returns what it touched. */
static struct touched apply(struct vf_vm_refs *idx, enum vf_watch_event type,
                            struct json_object *obj)
{
    struct touched t = {.text = "", .count = 0};
    ck_assert_int_eq(vf_vm_refs_apply(idx, type, obj, on_touched, &t), 0);
    json_object_put(obj);
    return t;
}

/* The names of the users of kind/name, comma separated ("" when none). */
static const char *users(const struct vf_vm_refs *idx, const char *kind, const char *name)
{
    static char buf[4096];
    size_t n, o = 0;
    const struct vf_vm_info *const *vms = vf_vm_refs_users(idx, kind, name, &n);
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%s", i ? "," : "", vms[i]->name);
    return buf;
}

static bool touched_has(const struct touched *t, const char *line)
{
    char want[300];
    snprintf(want, sizeof want, "%s\n", line);
    return strstr(t->text, want) != NULL;
}

START_TEST(test_add_and_query)
{
    struct vf_vm_refs *idx = vf_vm_refs_new();
    ck_assert_ptr_nonnull(idx);
    ck_assert_str_eq(users(idx, "VirtualDisk", "d1"), "");
    /* Added out of name order: lookups list by name. */
    struct touched t = apply(idx, VF_WATCH_ADDED,
                             vm("vm-c", "u-c", VD("d1") "," CVI("iso") "," VD("d1"),
                                "\"phase\":\"Running\",\"node\":\"n1\"", false));
    ck_assert_int_eq(t.count, 2);   /* d1 named twice: once */
    ck_assert(touched_has(&t, "VirtualDisk/d1") && touched_has(&t, "ClusterVirtualImage/iso"));
    apply(idx, VF_WATCH_ADDED, vm("vm-a", "u-a", VD("d1"), "\"phase\":\"Stopped\"", false));
    apply(idx, VF_WATCH_ADDED, vm("vm-b", "u-b", VD("d2") "," CVI("iso"), "", true));
    /* Entries without a kind or a string name are no references. */
    t = apply(idx, VF_WATCH_ADDED,
              vm("vm-d", "u-d", "{\"name\":\"d1\"},{\"kind\":\"VirtualDisk\",\"name\":5},{}", "",
                 false));
    ck_assert_int_eq(t.count, 0);
    ck_assert_uint_eq(vf_vm_refs_count(idx), 4);
    ck_assert_str_eq(users(idx, "VirtualDisk", "d1"), "vm-a,vm-c");
    ck_assert_str_eq(users(idx, "VirtualDisk", "d2"), "vm-b");
    ck_assert_str_eq(users(idx, "ClusterVirtualImage", "iso"), "vm-b,vm-c");
    /* Kind and name both count: a disk and an image may share a name. */
    ck_assert_str_eq(users(idx, "ClusterVirtualImage", "d1"), "");
    ck_assert_str_eq(users(idx, "VirtualDisk", "iso"), "");
    /* What the controllers read of each VM. */
    size_t n;
    const struct vf_vm_info *const *v = vf_vm_refs_users(idx, "VirtualDisk", "d1", &n);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(v[0]->uid, "u-a");
    ck_assert_str_eq(v[0]->phase, "Stopped");
    ck_assert_ptr_null(v[0]->node);
    ck_assert(!v[0]->deleting);
    ck_assert_str_eq(v[1]->phase, "Running");
    ck_assert_str_eq(v[1]->node, "n1");
    ck_assert_uint_eq(v[1]->n_refs, 2);
    const struct vf_vm_info *b = vf_vm_refs_vm(idx, "vm-b");
    ck_assert_ptr_nonnull(b);
    ck_assert(b->deleting);
    ck_assert_ptr_null(b->phase);
    ck_assert_ptr_null(vf_vm_refs_vm(idx, "nope"));
    /* An object without a name is ignored. */
    struct json_object *nameless = vf_test_json("{\"metadata\":{}}");
    ck_assert_int_eq(vf_vm_refs_apply(idx, VF_WATCH_ADDED, nameless, NULL, NULL), 0);
    json_object_put(nameless);
    ck_assert_uint_eq(vf_vm_refs_count(idx), 4);
    vf_vm_refs_free(idx);
}
END_TEST

START_TEST(test_modify)
{
    struct vf_vm_refs *idx = vf_vm_refs_new();
    apply(idx, VF_WATCH_ADDED, vm("vm-a", "u-a", VD("d1") "," CVI("iso"), "", false));
    apply(idx, VF_WATCH_ADDED, vm("vm-b", "u-b", VD("d1"), "", false));
    const struct vf_vm_info *a = vf_vm_refs_vm(idx, "vm-a");
    /* Status only: the same references are touched, the fields follow. */
    struct touched t = apply(idx, VF_WATCH_MODIFIED,
                             vm("vm-a", "u-a", VD("d1") "," CVI("iso"),
                                "\"phase\":\"Running\",\"node\":\"n2\"", false));
    ck_assert_int_eq(t.count, 2);
    ck_assert_ptr_eq(vf_vm_refs_vm(idx, "vm-a"), a);   /* the record stays */
    ck_assert_str_eq(a->phase, "Running");
    ck_assert_str_eq(a->node, "n2");
    ck_assert_str_eq(users(idx, "VirtualDisk", "d1"), "vm-a,vm-b");
    /* References change: d1 let go, d2 named, iso kept; each touched once. */
    t = apply(idx, VF_WATCH_MODIFIED, vm("vm-a", "u-a", CVI("iso") "," VD("d2"), "", true));
    ck_assert_int_eq(t.count, 3);
    ck_assert(touched_has(&t, "VirtualDisk/d1") && touched_has(&t, "VirtualDisk/d2") &&
              touched_has(&t, "ClusterVirtualImage/iso"));
    ck_assert_str_eq(users(idx, "VirtualDisk", "d1"), "vm-b");
    ck_assert_str_eq(users(idx, "VirtualDisk", "d2"), "vm-a");
    ck_assert_str_eq(users(idx, "ClusterVirtualImage", "iso"), "vm-a");
    ck_assert(a->deleting);
    ck_assert_ptr_null(a->node);
    /* All let go. */
    t = apply(idx, VF_WATCH_MODIFIED, vm("vm-a", "u-a", "", "", true));
    ck_assert_int_eq(t.count, 2);
    ck_assert_str_eq(users(idx, "VirtualDisk", "d2"), "");
    ck_assert_str_eq(users(idx, "ClusterVirtualImage", "iso"), "");
    ck_assert_uint_eq(vf_vm_refs_count(idx), 2);
    vf_vm_refs_free(idx);
}
END_TEST

START_TEST(test_delete)
{
    struct vf_vm_refs *idx = vf_vm_refs_new();
    apply(idx, VF_WATCH_ADDED, vm("vm-a", "u-a", VD("d1") "," CVI("iso"), "", false));
    apply(idx, VF_WATCH_ADDED, vm("vm-b", "u-b", VD("d1"), "", false));
    /* DELETED carries the last state: what it named is touched. */
    struct touched t = apply(idx, VF_WATCH_DELETED, vm("vm-a", "u-a", VD("d1") "," CVI("iso"),
                                                      "", true));
    ck_assert_int_eq(t.count, 2);
    ck_assert_ptr_null(vf_vm_refs_vm(idx, "vm-a"));
    ck_assert_uint_eq(vf_vm_refs_count(idx), 1);
    ck_assert_str_eq(users(idx, "VirtualDisk", "d1"), "vm-b");
    ck_assert_str_eq(users(idx, "ClusterVirtualImage", "iso"), "");
    /* A VM the index does not hold: nothing happens. */
    t = apply(idx, VF_WATCH_DELETED, vm("vm-z", "u-z", VD("d1"), "", false));
    ck_assert_int_eq(t.count, 0);
    t = apply(idx, VF_WATCH_DELETED, vm("vm-b", "u-b", "", "", false));
    ck_assert_int_eq(t.count, 1);   /* the index's refs, not the event's */
    ck_assert(touched_has(&t, "VirtualDisk/d1"));
    ck_assert_uint_eq(vf_vm_refs_count(idx), 0);
    ck_assert_str_eq(users(idx, "VirtualDisk", "d1"), "");
    vf_vm_refs_free(idx);
}
END_TEST

/* A VM deleted and created again under its name: the new one replaces the old
 * (also when its ADDED comes first), a DELETED of the old uid changes nothing. */
START_TEST(test_uid_change)
{
    struct vf_vm_refs *idx = vf_vm_refs_new();
    apply(idx, VF_WATCH_ADDED, vm("vm-a", "old", VD("d1"), "\"node\":\"n1\"", false));
    struct touched t = apply(idx, VF_WATCH_ADDED, vm("vm-a", "new", VD("d2"), "", false));
    ck_assert_int_eq(t.count, 2);
    ck_assert(touched_has(&t, "VirtualDisk/d1") && touched_has(&t, "VirtualDisk/d2"));
    ck_assert_uint_eq(vf_vm_refs_count(idx), 1);
    ck_assert_str_eq(vf_vm_refs_vm(idx, "vm-a")->uid, "new");
    ck_assert_ptr_null(vf_vm_refs_vm(idx, "vm-a")->node);
    ck_assert_str_eq(users(idx, "VirtualDisk", "d1"), "");
    ck_assert_str_eq(users(idx, "VirtualDisk", "d2"), "vm-a");
    t = apply(idx, VF_WATCH_DELETED, vm("vm-a", "old", VD("d1"), "", true));
    ck_assert_int_eq(t.count, 0);
    ck_assert_str_eq(users(idx, "VirtualDisk", "d2"), "vm-a");
    t = apply(idx, VF_WATCH_DELETED, vm("vm-a", "new", VD("d2"), "", true));
    ck_assert_int_eq(t.count, 1);
    ck_assert_uint_eq(vf_vm_refs_count(idx), 0);
    /* The usual order: DELETED of the old one, then ADDED of the new. */
    apply(idx, VF_WATCH_ADDED, vm("vm-a", "u1", VD("d1"), "", false));
    apply(idx, VF_WATCH_DELETED, vm("vm-a", "u1", VD("d1"), "", true));
    apply(idx, VF_WATCH_ADDED, vm("vm-a", "u2", VD("d1"), "", false));
    ck_assert_str_eq(users(idx, "VirtualDisk", "d1"), "vm-a");
    ck_assert_str_eq(vf_vm_refs_vm(idx, "vm-a")->uid, "u2");
    vf_vm_refs_free(idx);
}
END_TEST

/* Many VMs: the tables grow, lookups stay sorted, removals keep them so. */
START_TEST(test_many)
{
    struct vf_vm_refs *idx = vf_vm_refs_new();
    char name[32], refs[128];
    for (int i = 999; i >= 0; i--) {   /* backwards: every insert goes first */
        snprintf(name, sizeof name, "vm-%04d", i);
        snprintf(refs, sizeof refs, "{\"kind\":\"VirtualDisk\",\"name\":\"d%d\"}", i % 100);
        apply(idx, VF_WATCH_ADDED, vm(name, name, refs, "", false));
    }
    ck_assert_uint_eq(vf_vm_refs_count(idx), 1000);
    ck_assert_str_eq(users(idx, "VirtualDisk", "d7"), "vm-0007,vm-0107,vm-0207,vm-0307,vm-0407,"
                                                      "vm-0507,vm-0607,vm-0707,vm-0807,vm-0907");
    for (int i = 0; i < 1000; i += 2) {
        snprintf(name, sizeof name, "vm-%04d", i);
        apply(idx, VF_WATCH_DELETED, vm(name, name, "", "", true));
    }
    ck_assert_uint_eq(vf_vm_refs_count(idx), 500);
    ck_assert_str_eq(users(idx, "VirtualDisk", "d7"), "vm-0007,vm-0107,vm-0207,vm-0307,vm-0407,"
                                                      "vm-0507,vm-0607,vm-0707,vm-0807,vm-0907");
    ck_assert_str_eq(users(idx, "VirtualDisk", "d8"), "");
    for (int i = 1; i < 1000; i += 2) {
        snprintf(name, sizeof name, "vm-%04d", i);
        ck_assert_ptr_nonnull(vf_vm_refs_vm(idx, name));
    }
    vf_vm_refs_free(idx);
}
END_TEST

int main(void)
{
    const struct vf_test_case cases[] = {
        {"add_and_query", test_add_and_query},
        {"modify", test_modify},
        {"delete", test_delete},
        {"uid_change", test_uid_change},
        {"many", test_many},
    };
    return vf_test_run(vf_test_suite("vm_refs", cases, sizeof cases / sizeof cases[0]));
}
