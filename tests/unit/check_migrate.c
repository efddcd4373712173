/* The migrate module's pure rules: queue order (priority, then FIFO), the
 * per-node and per-cluster slots, the completion budget, when a migration
 * that does not converge is pushed to post-copy or aborted, and the record
 * of the volumes a block migration made on its target. */
#include <config.h>
#include <check.h>
#include "testlib.h"
#include "migrate.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct mig_settings defaults = {
    .out_per_node = 1, .in_per_node = 1, .per_cluster = 0, .bandwidth = 640LL << 20,
    .completion_per_gib_s = 800, .progress_timeout_ms = 150000,
};

START_TEST(priority_labels)
{
    ck_assert_int_eq(mig_priority_of("drain"), MIG_PRIO_DRAIN);
    ck_assert_int_eq(mig_priority_of("rebalance"), MIG_PRIO_REBALANCE);
    ck_assert_int_eq(mig_priority_of("user"), MIG_PRIO_USER);
    ck_assert_int_eq(mig_priority_of(NULL), MIG_PRIO_USER);
    ck_assert_int_eq(mig_priority_of("urgent"), MIG_PRIO_USER);
    ck_assert_str_eq(mig_priority_name(MIG_PRIO_DRAIN), "drain");
}
END_TEST

START_TEST(queue_priority_then_fifo)
{
    struct mig_waiting w[] = {
        {.name = "r1", .priority = MIG_PRIO_REBALANCE, .created = "2026-01-01T00:00:00Z", .arrival = 1},
        {.name = "u2", .priority = MIG_PRIO_USER, .created = "2026-01-01T00:00:05Z", .arrival = 3},
        {.name = "u1", .priority = MIG_PRIO_USER, .created = "2026-01-01T00:00:05Z", .arrival = 2},
        {.name = "d1", .priority = MIG_PRIO_DRAIN, .created = "2026-01-01T00:00:09Z", .arrival = 9},
        {.name = "u0", .priority = MIG_PRIO_USER, .created = "2026-01-01T00:00:01Z", .arrival = 7},
    };
    mig_queue_sort(w, 5);
    const char *want[] = {"d1", "u0", "u1", "u2", "r1"};
    for (int i = 0; i < 5; i++)
        ck_assert_str_eq(w[i].name, want[i]);
}
END_TEST

START_TEST(limits_per_node_and_cluster)
{
    struct mig_counts c = {0};
    char buf[256];
    ck_assert_ptr_null(mig_limits_block(&defaults, 3, &c, "node-1", buf, sizeof buf));
    ck_assert_int_eq(mig_counts_add(&c, "node-1", "node-2"), 0);
    ck_assert_int_eq(mig_counts_out(&c, "node-1"), 1);
    ck_assert_int_eq(mig_counts_in(&c, "node-2"), 1);
    ck_assert_int_eq(mig_counts_in(&c, "node-1"), 0);
    ck_assert_int_eq(mig_counts_out(&c, "node-9"), 0);
    const char *why = mig_limits_block(&defaults, 3, &c, "node-1", buf, sizeof buf);
    ck_assert_ptr_nonnull(why);
    ck_assert_msg(strstr(why, "parallelOutboundMigrationsPerNode") && strstr(why, "node-1"), "%s", why);
    ck_assert_ptr_null(mig_limits_block(&defaults, 3, &c, "node-3", buf, sizeof buf));
    ck_assert_int_eq(mig_counts_add(&c, "node-3", "node-1"), 0);
    why = mig_limits_block(&defaults, 2, &c, "node-2", buf, sizeof buf);
    ck_assert_msg(why && strstr(why, "parallelMigrationsPerCluster") && strstr(why, "2 of 2"), "%s",
                  why ? why : "(null)");
    ck_assert_int_eq(c.total, 2);
    mig_counts_free(&c);
    ck_assert_int_eq(c.total, 0);
}
END_TEST

START_TEST(budget_per_gib)
{
    ck_assert_int_eq(mig_budget_ms(800, 1LL << 30), 800000);
    ck_assert_int_eq(mig_budget_ms(800, 128LL << 20), 100000);
    ck_assert_int_eq(mig_budget_ms(800, 0), 0);
    ck_assert_int_eq(mig_budget_ms(1, 1), 1);
    ck_assert_int_eq(mig_budget_ms(800, 1LL << 50), 800000LL << 20);
}
END_TEST

START_TEST(quantities)
{
    struct json_object *s = json_object_new_string("128Mi");
    ck_assert_int_eq(mig_quantity(s), 128LL << 20);
    json_object_put(s);
    s = json_object_new_string("1.5Gi");
    ck_assert_int_eq(mig_quantity(s), 3LL << 29);
    json_object_put(s);
    s = json_object_new_int64(4096);
    ck_assert_int_eq(mig_quantity(s), 4096);
    json_object_put(s);
    s = json_object_new_string("12 parsecs");
    ck_assert_int_eq(mig_quantity(s), -1);
    json_object_put(s);
    ck_assert_int_eq(mig_quantity(NULL), -1);
}
END_TEST

static struct mig_clock clock_at(int64_t start)
{
    return (struct mig_clock){.started_ms = start, .best_at_ms = start, .best_remaining = -1,
                              .budget_ms = 10000, .progress_timeout_ms = 3000};
}

START_TEST(progress_is_a_new_low)
{
    struct mig_clock c = clock_at(0);
    mig_clock_sample(&c, 1000, 500);
    ck_assert_int_eq(c.best_at_ms, 500);
    mig_clock_sample(&c, 1200, 1500);   /* a new iteration: more to copy again */
    ck_assert_int_eq(c.best_at_ms, 500);
    ck_assert_int_eq(c.best_remaining, 1000);
    c.now_ms = 3499;
    ck_assert_int_eq(mig_clock_decide(&c), MIG_ACT_NONE);
    c.now_ms = 3500;
    ck_assert_int_eq(mig_clock_decide(&c), MIG_ACT_ABORT_STALLED);
    mig_clock_sample(&c, 900, 3600);
    c.now_ms = 3600;
    ck_assert_int_eq(mig_clock_decide(&c), MIG_ACT_NONE);
}
END_TEST

START_TEST(completion_budget)
{
    struct mig_clock c = clock_at(0);
    c.progress_timeout_ms = 0;   /* only the budget counts here */
    c.now_ms = 9999;
    ck_assert_int_eq(mig_clock_decide(&c), MIG_ACT_NONE);
    c.now_ms = 10000;
    ck_assert_int_eq(mig_clock_decide(&c), MIG_ACT_ABORT_TIMEOUT);
    c.post_copy_allowed = true;
    ck_assert_int_eq(mig_clock_decide(&c), MIG_ACT_POSTCOPY);
    c.post_copy_started = true;
    c.now_ms = 100000;   /* post-copy always finishes: never aborted */
    ck_assert_int_eq(mig_clock_decide(&c), MIG_ACT_NONE);
    c = clock_at(0);
    c.progress_timeout_ms = 0;
    c.auto_converge = true;
    c.now_ms = 15000;
    ck_assert_int_eq(mig_clock_decide(&c), MIG_ACT_NONE);
    c.now_ms = 20000;
    ck_assert_int_eq(mig_clock_decide(&c), MIG_ACT_ABORT_TIMEOUT);
}
END_TEST

/* Which disks a block migration copies (and may leave made on the target). */
START_TEST(disk_paths)
{
    static const char xml[] =
        "<domain><devices>"
        "<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
        "<source file='/var/lib/libvirt/images/vd-data-1'/><target dev='vda'/></disk>"
        "<disk type='file' device='cdrom'><source file='/store/cd.iso'/><readonly/></disk>"
        "<disk type=\"file\" device=\"disk\"><source file=\"/p/two.qcow2\"/></disk>"
        "<disk type='file' device='disk'><source file='/p/shared.raw'/><shareable/></disk>"
        "<disk type='block' device='disk'><source dev='/dev/sdz'/></disk>"
        "<disk type='file' device='disk'><source file='/p/a&apos;b'/></disk>"
        "<disk type='file' device='disk'><source file='/p/unterminated'/>"
        "</devices></domain>";
    char paths[4][MIG_PATH_MAX];
    size_t n = mig_disk_paths(xml, paths, 4);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(paths[0], "/var/lib/libvirt/images/vd-data-1");
    ck_assert_str_eq(paths[1], "/p/two.qcow2");
    ck_assert_uint_eq(mig_disk_paths(xml, paths, 1), 1);   /* bounded by max */
    ck_assert_uint_eq(mig_disk_paths("<domain/>", paths, 4), 0);
}
END_TEST

/* ---- the record of the volumes a block migration made --------------------- */

static char rec_dir[64];

static void rec_dir_make(void)
{
    snprintf(rec_dir, sizeof rec_dir, "/tmp/vf-check-migrate-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(rec_dir));
}

static void rec_dir_remove(void)
{
    char **names = NULL;
    size_t n = 0;
    mig_record_list(rec_dir, true, &names, &n);
    for (size_t i = 0; i < n; i++)
        mig_record_remove(rec_dir, names[i], NULL, 0);
    mig_record_names_free(names, n);
    rmdir(rec_dir);
}

static void put_file(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", rec_dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

START_TEST(record_round_trip)
{
    rec_dir_make();
    struct mig_record *in = calloc(1, sizeof *in), *out = calloc(1, sizeof *out);
    char err[512];
    snprintf(in->vm, sizeof in->vm, "linux-vm");
    snprintf(in->vm_uid, sizeof in->vm_uid, "6f1c0c1e-0000-4000-8000-000000000001");
    snprintf(in->target, sizeof in->target, "node-2");
    snprintf(in->paths[0], MIG_PATH_MAX, "/var/lib/libvirt/images/vd-data-1");
    snprintf(in->paths[1], MIG_PATH_MAX, "/p/with space");
    snprintf(in->paths[2], MIG_PATH_MAX, "/p/new\nline");   /* left out: never deleted */
    in->n = 3;
    ck_assert_int_eq(mig_record_write(rec_dir, "op-uid-1", in, err, sizeof err), 0);
    ck_assert_int_eq(mig_record_read(rec_dir, "op-uid-1", out, err, sizeof err), 0);
    ck_assert_str_eq(out->vm, "linux-vm");
    ck_assert_str_eq(out->vm_uid, in->vm_uid);
    ck_assert_str_eq(out->target, "node-2");
    ck_assert_uint_eq(out->n, 2);
    ck_assert_str_eq(out->paths[0], "/var/lib/libvirt/images/vd-data-1");
    ck_assert_str_eq(out->paths[1], "/p/with space");
    /* A second migration has a record of its own: listed sorted, no temporary left. */
    in->n = 1;
    ck_assert_int_eq(mig_record_write(rec_dir, "op-uid-0", in, err, sizeof err), 0);
    char **names = NULL;
    size_t n = 0;
    ck_assert_int_eq(mig_record_list(rec_dir, false, &names, &n), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(names[0], "op-uid-0");
    ck_assert_str_eq(names[1], "op-uid-1");
    mig_record_names_free(names, n);
    /* Removed; removing again (gone already) is fine; reading it then is -ENOENT. */
    ck_assert_int_eq(mig_record_remove(rec_dir, "op-uid-1", err, sizeof err), 0);
    ck_assert_int_eq(mig_record_remove(rec_dir, "op-uid-1", err, sizeof err), 0);
    ck_assert_int_eq(mig_record_read(rec_dir, "op-uid-1", out, err, sizeof err), -ENOENT);
    ck_assert_msg(strstr(err, "op-uid-1") != NULL, "%s", err);
    /* Names that are not a plain file name are refused. */
    ck_assert_int_eq(mig_record_write(rec_dir, "../escape", in, err, sizeof err), -EINVAL);
    ck_assert_int_eq(mig_record_write(rec_dir, ".hidden", in, err, sizeof err), -EINVAL);
    free(in);
    free(out);
    rec_dir_remove();
}
END_TEST

START_TEST(record_torn_and_temporary)
{
    rec_dir_make();
    struct mig_record *out = calloc(1, sizeof *out);
    char err[512];
    /* No newline at the end: not a whole record (ours always ends with one). */
    put_file("torn", "vm a\nuid u-1\ntarget node-2\npath /p/x");
    ck_assert_int_eq(mig_record_read(rec_dir, "torn", out, err, sizeof err), -EINVAL);
    /* No target: nothing says where to delete. */
    put_file("notarget", "vm a\nuid u-1\npath /p/x\n");
    ck_assert_int_eq(mig_record_read(rec_dir, "notarget", out, err, sizeof err), -EINVAL);
    ck_assert_msg(strstr(err, "malformed") && strstr(err, "notarget"), "%s", err);
    /* Unknown keys (a later version's) are ignored. */
    put_file("later", "vm a\nuid u-1\ntarget node-2\nsize 42\npath /p/x\n");
    ck_assert_int_eq(mig_record_read(rec_dir, "later", out, err, sizeof err), 0);
    ck_assert_uint_eq(out->n, 1);
    ck_assert_str_eq(out->paths[0], "/p/x");
    /* A write a kill interrupted: never listed, deleted when asked. */
    put_file(".op-uid-9.tmp", "vm a\n");
    char **names = NULL;
    size_t n = 0;
    ck_assert_int_eq(mig_record_list(rec_dir, false, &names, &n), 0);
    ck_assert_uint_eq(n, 3);
    mig_record_names_free(names, n);
    ck_assert_int_eq(mig_record_list(rec_dir, true, &names, &n), 0);
    mig_record_names_free(names, n);
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s/.op-uid-9.tmp", rec_dir);
    ck_assert_int_ne(access(tmp, F_OK), 0);
    /* A missing directory has no records. */
    ck_assert_int_eq(mig_record_list("/nonexistent/vf-records", false, &names, &n), 0);
    ck_assert_uint_eq(n, 0);
    free(out);
    rec_dir_remove();
}
END_TEST

#define ADD_CASE(suite, name, fn)                                                              \
    do {                                                                                       \
        TCase *tc_ = tcase_create(name);                                                       \
        tcase_add_test(tc_, fn);                                                               \
        suite_add_tcase(suite, tc_);                                                           \
    } while (0)

static Suite *migrate_suite(void)
{
    Suite *s = suite_create("migrate");
    ADD_CASE(s, "priority labels", priority_labels);
    ADD_CASE(s, "queue: priority, then FIFO", queue_priority_then_fifo);
    ADD_CASE(s, "limits per node and per cluster", limits_per_node_and_cluster);
    ADD_CASE(s, "completion budget per GiB", budget_per_gib);
    ADD_CASE(s, "quantities", quantities);
    ADD_CASE(s, "progress is a new low of dataRemaining", progress_is_a_new_low);
    ADD_CASE(s, "completion budget: post-copy, auto-converge, abort", completion_budget);
    ADD_CASE(s, "the disks a block migration copies", disk_paths);
    ADD_CASE(s, "the record of the volumes made: written, read, listed, removed", record_round_trip);
    ADD_CASE(s, "the record: torn, malformed, temporary files", record_torn_and_temporary);
    return s;
}

int main(void)
{
    return vf_test_run(migrate_suite());
}
