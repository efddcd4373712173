#include <config.h>
/* IP address management: reserved first/last addresses, lowest-free order
 * across subnets, one address per owner, conflicts, exhaustion, reuse after
 * release, subnet changes (refused while addresses are issued), transfer to a
 * reloaded ipam, IPv6 without a bitmap. */
#include <errno.h>

#include "core/ipam.h"
#include "tests/unit/testlib.h"

#define ck_assert_contains(haystack, needle) \
    ck_assert_msg(strstr((haystack), (needle)) != NULL, "\"%s\" lacks \"%s\"", (haystack), (needle))

static struct vf_ipam *ipam_of(const char *cidrs_json)
{
    struct json_object *cidrs = vf_test_json(cidrs_json);
    struct vf_ipam *ipam = NULL;
    struct vf_error err = {0};
    int r = vf_ipam_new(cidrs, &ipam, &err);

    ck_assert_msg(r == 0, "vf_ipam_new(%s): %s", cidrs_json, err.message);
    json_object_put(cidrs);
    return ipam;
}

/* Allocates for owner and checks the address it gets. */
static void expect_alloc(struct vf_ipam *ipam, const char *owner, const char *want)
{
    char addr[64] = "";
    struct vf_error err = {0};
    int r = vf_ipam_allocate(ipam, owner, addr, sizeof addr, &err);

    ck_assert_msg(r == 0, "allocate %s: %s", owner, err.message);
    ck_assert_str_eq(addr, want);
    ck_assert_str_eq(vf_ipam_lookup(ipam, owner), want);
}

static int check_change(struct vf_ipam *ipam, const char *cidrs_json, struct vf_error *err)
{
    struct json_object *cidrs = vf_test_json(cidrs_json);
    int r = vf_ipam_check_change(ipam, cidrs, err);
    json_object_put(cidrs);
    return r;
}

START_TEST(first_and_last_skipped)
{
    struct vf_ipam *ipam = ipam_of("[\"10.66.10.0/30\"]");
    struct vf_error err = {0};
    char addr[64];

    /* A /30 has exactly two usable addresses. */
    expect_alloc(ipam, "a", "10.66.10.1");
    expect_alloc(ipam, "b", "10.66.10.2");
    ck_assert_int_eq(vf_ipam_allocate(ipam, "c", addr, sizeof addr, &err), -ENOSPC);
    ck_assert_int_eq(vf_ipam_reserve(ipam, "10.66.10.0", "c", &err), -ERANGE);
    ck_assert_contains(err.message, "first address of subnet 10.66.10.0/30");
    ck_assert_int_eq(vf_ipam_reserve(ipam, "10.66.10.3", "c", &err), -ERANGE);
    ck_assert_contains(err.message, "last address of subnet 10.66.10.0/30");
    ck_assert_ptr_null(vf_ipam_lookup(ipam, "c"));
    vf_ipam_free(ipam);
}
END_TEST

START_TEST(lowest_free_across_subnets)
{
    struct vf_ipam *ipam = ipam_of("[\"10.66.20.0/30\",\"10.66.10.0/29\"]");

    /* Configured order first, then the next subnet, lowest address first. */
    expect_alloc(ipam, "a", "10.66.20.1");
    expect_alloc(ipam, "b", "10.66.20.2");
    expect_alloc(ipam, "c", "10.66.10.1");
    vf_ipam_release(ipam, "a");
    expect_alloc(ipam, "d", "10.66.20.1");
    expect_alloc(ipam, "e", "10.66.10.2");
    vf_ipam_free(ipam);
}
END_TEST

START_TEST(same_owner_same_address)
{
    struct vf_ipam *ipam = ipam_of("[\"10.0.0.0/24\"]");
    struct vf_error err = {0};

    expect_alloc(ipam, "web-1", "10.0.0.1");
    expect_alloc(ipam, "web-2", "10.0.0.2");
    expect_alloc(ipam, "web-1", "10.0.0.1");
    ck_assert_int_eq(vf_ipam_reserve(ipam, "10.0.0.1", "web-1", &err), 0);
    /* One address per VM: reserving another moves it. */
    ck_assert_int_eq(vf_ipam_reserve(ipam, "10.0.0.9", "web-1", &err), 0);
    ck_assert_str_eq(vf_ipam_lookup(ipam, "web-1"), "10.0.0.9");
    expect_alloc(ipam, "web-3", "10.0.0.1");
    vf_ipam_free(ipam);
}
END_TEST

START_TEST(reserve_conflicts)
{
    struct vf_ipam *ipam = ipam_of("[\"10.0.0.0/24\"]");
    struct vf_error err = {0};

    ck_assert_int_eq(vf_ipam_reserve(ipam, "10.0.0.5", "db-1", &err), 0);
    ck_assert_int_eq(vf_ipam_reserve(ipam, "10.0.0.5", "web-1", &err), -EEXIST);
    ck_assert_int_eq(err.status, 409);
    ck_assert_contains(err.message, "10.0.0.5");
    ck_assert_contains(err.message, "10.0.0.0/24");
    ck_assert_contains(err.message, "db-1");
    ck_assert_int_eq(vf_ipam_reserve(ipam, "10.0.1.5", "web-1", &err), -ERANGE);
    ck_assert_contains(err.message, "10.0.1.5");
    ck_assert_int_eq(vf_ipam_reserve(ipam, "banana", "web-1", &err), -EINVAL);
    ck_assert_int_eq(vf_ipam_reserve(ipam, "fd00::5", "web-1", &err), -ERANGE);
    ck_assert_ptr_null(vf_ipam_lookup(ipam, "web-1"));
    /* Allocation goes around reserved addresses. */
    ck_assert_int_eq(vf_ipam_reserve(ipam, "10.0.0.1", "x", &err), 0);
    ck_assert_int_eq(vf_ipam_reserve(ipam, "10.0.0.3", "y", &err), 0);
    expect_alloc(ipam, "z", "10.0.0.2");
    expect_alloc(ipam, "w", "10.0.0.4");
    expect_alloc(ipam, "v", "10.0.0.6");
    vf_ipam_free(ipam);
}
END_TEST

START_TEST(full_subnet)
{
    struct vf_ipam *ipam = ipam_of("[\"10.1.0.0/16\"]");
    struct vf_error err = {0};
    char owner[32], addr[64];

    /* A /16 has 65534 addresses; filling it must stay quick. */
    for (int i = 0; i < 65534; i++) {
        snprintf(owner, sizeof owner, "vm-%d", i);
        ck_assert_int_eq(vf_ipam_allocate(ipam, owner, addr, sizeof addr, &err), 0);
    }
    ck_assert_str_eq(addr, "10.1.255.254");
    ck_assert_str_eq(vf_ipam_lookup(ipam, "vm-255"), "10.1.1.0");
    ck_assert_int_eq(vf_ipam_allocate(ipam, "one-more", addr, sizeof addr, &err), -ENOSPC);
    ck_assert_contains(err.message, "10.1.0.0/16");
    ck_assert_contains(err.message, "one-more");
    vf_ipam_release(ipam, "vm-1000");
    vf_ipam_release(ipam, "vm-7");
    expect_alloc(ipam, "one-more", "10.1.0.8");
    expect_alloc(ipam, "two-more", "10.1.3.233");
    ck_assert_int_eq(vf_ipam_allocate(ipam, "three", addr, sizeof addr, &err), -ENOSPC);
    vf_ipam_free(ipam);
}
END_TEST

START_TEST(release_then_reuse)
{
    struct vf_ipam *ipam = ipam_of("[\"192.168.7.0/24\"]");

    expect_alloc(ipam, "a", "192.168.7.1");
    expect_alloc(ipam, "b", "192.168.7.2");
    expect_alloc(ipam, "c", "192.168.7.3");
    vf_ipam_release(ipam, "b");
    ck_assert_ptr_null(vf_ipam_lookup(ipam, "b"));
    vf_ipam_release(ipam, "nobody");
    expect_alloc(ipam, "d", "192.168.7.2");
    expect_alloc(ipam, "e", "192.168.7.4");
    vf_ipam_free(ipam);
}
END_TEST

START_TEST(change_refused)
{
    struct vf_ipam *ipam = ipam_of("[\"10.66.10.0/24\",\"10.66.20.0/24\"]");
    struct vf_error err = {0};
    char owner[16], addr[64];

    for (int i = 0; i < 7; i++) {
        snprintf(owner, sizeof owner, "vm-%d", i);
        ck_assert_int_eq(vf_ipam_allocate(ipam, owner, addr, sizeof addr, &err), 0);
    }
    ck_assert_int_eq(check_change(ipam, "[\"10.66.20.0/24\"]", &err), -EBUSY);
    ck_assert_int_eq(err.status, 409);
    ck_assert_contains(err.message, "subnet 10.66.10.0/24 cannot be removed");
    ck_assert_contains(err.message, "7 addresses");
    ck_assert_contains(err.message, "vm-0 (10.66.10.1)");
    ck_assert_contains(err.message, "vm-4 (10.66.10.5)");
    ck_assert_msg(strstr(err.message, "vm-5") == NULL, "more than 5 owners: %s", err.message);
    ck_assert_contains(err.message, "and more");
    /* Narrowing so that issued addresses fall out is a removal too. */
    ck_assert_int_eq(check_change(ipam, "[\"10.66.10.0/30\",\"10.66.20.0/24\"]", &err), -EBUSY);
    ck_assert_contains(err.message, "5 addresses");
    ck_assert_contains(err.message, "vm-2 (10.66.10.3)");
    ck_assert_int_eq(check_change(ipam, "[\"not a cidr\"]", &err), -EINVAL);
    vf_ipam_free(ipam);
}
END_TEST

START_TEST(change_allowed)
{
    struct vf_ipam *ipam = ipam_of("[\"10.66.10.0/24\",\"10.66.20.0/24\"]");
    struct vf_error err = {0};

    expect_alloc(ipam, "a", "10.66.10.1");
    /* Removing an unused subnet, adding one, reordering, widening: fine. */
    ck_assert_int_eq(check_change(ipam, "[\"10.66.10.0/24\"]", &err), 0);
    ck_assert_int_eq(check_change(ipam, "[\"10.77.0.0/16\",\"10.66.10.0/24\"]", &err), 0);
    ck_assert_int_eq(check_change(ipam, "[\"10.66.0.0/16\"]", &err), 0);
    /* Once released, the subnet may go. */
    vf_ipam_release(ipam, "a");
    ck_assert_int_eq(check_change(ipam, "[]", &err), 0);
    vf_ipam_free(ipam);
}
END_TEST

START_TEST(transfer)
{
    struct vf_ipam *from = ipam_of("[\"10.66.10.0/24\",\"fd00:1::/64\"]");
    struct vf_ipam *to = ipam_of("[\"10.66.0.0/16\",\"fd00:1::/64\"]");
    struct vf_ipam *narrow = ipam_of("[\"10.66.20.0/24\"]");
    struct vf_error err = {0};

    expect_alloc(from, "a", "10.66.10.1");
    expect_alloc(from, "b", "10.66.10.2");
    ck_assert_int_eq(vf_ipam_reserve(from, "fd00:1::abcd", "c", &err), 0);
    ck_assert_int_eq(vf_ipam_transfer(from, to, &err), 0);
    ck_assert_str_eq(vf_ipam_lookup(to, "a"), "10.66.10.1");
    ck_assert_str_eq(vf_ipam_lookup(to, "b"), "10.66.10.2");
    ck_assert_str_eq(vf_ipam_lookup(to, "c"), "fd00:1::abcd");
    expect_alloc(to, "d", "10.66.0.1");
    ck_assert_int_eq(vf_ipam_transfer(from, narrow, &err), -ERANGE);
    ck_assert_contains(err.message, "10.66.10.1");
    vf_ipam_free(from);
    vf_ipam_free(to);
    vf_ipam_free(narrow);
}
END_TEST

START_TEST(ipv6)
{
    struct vf_ipam *ipam = ipam_of("[\"fd00::/64\"]");
    struct vf_error err = {0};

    /* ::0 is the subnet-router anycast address: never issued. */
    expect_alloc(ipam, "a", "fd00::1");
    expect_alloc(ipam, "b", "fd00::2");
    ck_assert_int_eq(vf_ipam_reserve(ipam, "fd00::", "x", &err), -ERANGE);
    ck_assert_int_eq(vf_ipam_reserve(ipam, "fd00::ffff:ffff:ffff:ffff", "x", &err), -ERANGE);
    ck_assert_int_eq(vf_ipam_reserve(ipam, "fd00::ffff:ffff:ffff:fffe", "x", &err), 0);
    ck_assert_int_eq(vf_ipam_reserve(ipam, "fd00:0:0:0::3", "y", &err), 0);
    ck_assert_str_eq(vf_ipam_lookup(ipam, "y"), "fd00::3");
    ck_assert_int_eq(vf_ipam_reserve(ipam, "fd00:0:0:1::3", "z", &err), -ERANGE);
    expect_alloc(ipam, "c", "fd00::4");
    vf_ipam_free(ipam);
}
END_TEST

START_TEST(bad_cidrs)
{
    struct vf_ipam *ipam = (struct vf_ipam *)1;
    struct vf_error err = {0};
    struct json_object *host_bits = vf_test_json("[\"10.0.0.1/24\"]");
    struct json_object *garbage = vf_test_json("[\"10.0.0.0/33\"]");
    struct json_object *empty = vf_test_json("[]");
    char addr[64];

    ck_assert_int_eq(vf_ipam_new(host_bits, &ipam, &err), -EINVAL);
    ck_assert_ptr_null(ipam);
    ck_assert_contains(err.message, "10.0.0.1/24");
    ck_assert_int_eq(vf_ipam_new(garbage, &ipam, &err), -EINVAL);
    ck_assert_int_eq(vf_ipam_new(empty, &ipam, &err), 0);
    ck_assert_int_eq(vf_ipam_allocate(ipam, "a", addr, sizeof addr, &err), -ENOSPC);
    vf_ipam_free(ipam);
    json_object_put(host_bits);
    json_object_put(garbage);
    json_object_put(empty);
}
END_TEST

/* One TCase per behaviour, named after its test. */
#define ADD_CASE(s, test)                        \
    do {                                         \
        TCase *tc_ = tcase_create(#test);        \
        tcase_add_test(tc_, test);               \
        suite_add_tcase((s), tc_);               \
    } while (0)

static Suite *ipam_suite(void)
{
    Suite *s = suite_create("ipam");
    ADD_CASE(s, first_and_last_skipped);
    ADD_CASE(s, lowest_free_across_subnets);
    ADD_CASE(s, same_owner_same_address);
    ADD_CASE(s, reserve_conflicts);
    ADD_CASE(s, full_subnet);
    ADD_CASE(s, release_then_reuse);
    ADD_CASE(s, change_refused);
    ADD_CASE(s, change_allowed);
    ADD_CASE(s, transfer);
    ADD_CASE(s, ipv6);
    ADD_CASE(s, bad_cidrs);
    return s;
}

int main(void)
{
    return vf_test_run(ipam_suite());
}
