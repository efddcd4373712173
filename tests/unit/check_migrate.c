/* The migrate module's pure rules: queue order (priority, then FIFO), the
 * per-node and per-cluster slots, the completion budget, and when a
 * migration that does not converge is pushed to post-copy or aborted. */
#include <config.h>
#include <check.h>
#include "testlib.h"
#include "migrate.h"

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
    return s;
}

int main(void)
{
    return vf_test_run(migrate_suite());
}
