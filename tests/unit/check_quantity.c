/* Quantities ("640Mi", "50G", "1.5Gi") and durations ("150s", "1h30m"):
 * what is accepted, what is refused, overflow, and formatting round trips. */
#include <config.h>
#include <check.h>
#include "testlib.h"
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/quantity.h"

static void assert_quantity(const char *text, int64_t want)
{
    int64_t got = -1;
    int r = vf_quantity_parse(text, &got);
    ck_assert_msg(r == 0, "\"%s\": expected success, got %d", text, r);
    ck_assert_msg(got == want, "\"%s\": expected %lld, got %lld", text, (long long)want,
                  (long long)got);
}

static void assert_quantity_fails(const char *text, int want_err)
{
    int64_t got = 12345;
    int r = vf_quantity_parse(text, &got);
    ck_assert_msg(r == want_err, "\"%s\": expected %d, got %d", text, want_err, r);
    ck_assert_msg(got == 12345, "\"%s\": output written on failure", text);
}

static void assert_duration(const char *text, int64_t want)
{
    int64_t got = -1;
    int r = vf_duration_parse(text, &got);
    ck_assert_msg(r == 0, "\"%s\": expected success, got %d", text, r);
    ck_assert_msg(got == want, "\"%s\": expected %lld ms, got %lld", text, (long long)want,
                  (long long)got);
}

static void assert_duration_fails(const char *text, int want_err)
{
    int64_t got = 12345;
    int r = vf_duration_parse(text, &got);
    ck_assert_msg(r == want_err, "\"%s\": expected %d, got %d", text, want_err, r);
    ck_assert_msg(got == 12345, "\"%s\": output written on failure", text);
}

START_TEST(quantity_plain_integers)
{
    assert_quantity("0", 0);
    assert_quantity("1", 1);
    assert_quantity("1048576", 1048576);
    assert_quantity("+42", 42);
    assert_quantity("9223372036854775807", INT64_MAX);
}
END_TEST

START_TEST(quantity_binary_suffixes)
{
    assert_quantity("1Ki", 1024);
    assert_quantity("640Mi", 640LL << 20);
    assert_quantity("2Gi", 2LL << 30);
    assert_quantity("3Ti", 3LL << 40);
    assert_quantity("1Pi", 1LL << 50);
    assert_quantity("7Ei", 7LL << 60);
}
END_TEST

START_TEST(quantity_decimal_suffixes)
{
    assert_quantity("1k", 1000);
    assert_quantity("5M", 5000000);
    assert_quantity("50G", 50000000000LL);
    assert_quantity("2T", 2000000000000LL);
    assert_quantity("1P", 1000000000000000LL);
    assert_quantity("9E", 9000000000000000000LL);
}
END_TEST

START_TEST(quantity_fractions)
{
    assert_quantity("1.5Gi", 1610612736LL);
    assert_quantity("0.5Ki", 512);
    assert_quantity(".5Mi", 524288);
    assert_quantity("2.5G", 2500000000LL);
    /* Not a whole number of bytes: rounded up, as Kubernetes does. */
    assert_quantity("0.5", 1);
    assert_quantity("1.0001k", 1001);
    assert_quantity("1.000000000000000000000001Ki", 1025);
}
END_TEST

START_TEST(quantity_malformed)
{
    assert_quantity_fails("", -EINVAL);
    assert_quantity_fails("Mi", -EINVAL);
    assert_quantity_fails("fast", -EINVAL);
    assert_quantity_fails("640MB", -EINVAL);
    assert_quantity_fails("640mi", -EINVAL);
    assert_quantity_fails("640 Mi", -EINVAL);
    assert_quantity_fails(" 640Mi", -EINVAL);
    assert_quantity_fails("640Mi ", -EINVAL);
    assert_quantity_fails("1.2.3", -EINVAL);
    assert_quantity_fails(".", -EINVAL);
    assert_quantity_fails("100m", -EINVAL);
    assert_quantity_fails("1e3", -EINVAL);
    ck_assert_int_eq(vf_quantity_parse(NULL, &(int64_t){0}), -EINVAL);
}
END_TEST

START_TEST(quantity_negative_refused)
{
    assert_quantity_fails("-1", -EINVAL);
    assert_quantity_fails("-640Mi", -EINVAL);
}
END_TEST

START_TEST(quantity_overflow)
{
    assert_quantity_fails("9223372036854775808", -ERANGE);
    assert_quantity_fails("99999999999999999999999", -ERANGE);
    assert_quantity_fails("8Ei", -ERANGE);
    assert_quantity_fails("10E", -ERANGE);
    assert_quantity_fails("8388608Ti", -ERANGE);
    assert_quantity("7.99Ei", 9211842821808707339LL); /* rounded up */
}
END_TEST

START_TEST(duration_units)
{
    assert_duration("250ms", 250);
    assert_duration("150s", 150000);
    assert_duration("5m", 300000);
    assert_duration("2h", 7200000);
    assert_duration("1d", 86400000);
    assert_duration("0s", 0);
}
END_TEST

START_TEST(duration_combined)
{
    assert_duration("1h30m", 5400000);
    assert_duration("1m30s", 90000);
    assert_duration("1d2h3m4s5ms", 93784005);
    assert_duration("1.5h", 5400000);
    assert_duration("1s500ms", 1500);
}
END_TEST

START_TEST(duration_bare_seconds)
{
    assert_duration("300", 300000);
    assert_duration("0", 0);
    assert_duration("1.5", 1500);
}
END_TEST

START_TEST(duration_invalid)
{
    assert_duration_fails("", -EINVAL);
    assert_duration_fails("soon", -EINVAL);
    assert_duration_fails("h", -EINVAL);
    assert_duration_fails("5x", -EINVAL);
    assert_duration_fails("5us", -EINVAL);
    assert_duration_fails("1h30", -EINVAL);
    assert_duration_fails("1h 30m", -EINVAL);
    assert_duration_fails("-5s", -EINVAL);
    assert_duration_fails("5S", -EINVAL);
    ck_assert_int_eq(vf_duration_parse(NULL, &(int64_t){0}), -EINVAL);
}
END_TEST

START_TEST(duration_overflow)
{
    assert_duration_fails("9223372036854775807", -ERANGE);
    assert_duration_fails("106751991168d", -ERANGE);
    assert_duration("106751991167d", 9223372036828800000LL);
    assert_duration_fails("9223372036854775807ms1ms", -ERANGE);
    assert_duration_fails("99999999999999999999ms", -ERANGE);
    assert_duration("9223372036854775807ms", INT64_MAX);
}
END_TEST

static const char *format(int64_t bytes)
{
    static char buf[32];
    vf_quantity_format(bytes, buf, sizeof buf);
    return buf;
}

START_TEST(format_exact_binary)
{
    ck_assert_str_eq(format(640LL << 20), "640Mi");
    ck_assert_str_eq(format(1LL << 30), "1Gi");
    ck_assert_str_eq(format(1024), "1Ki");
    ck_assert_str_eq(format(3LL << 40), "3Ti");
    ck_assert_str_eq(format(1536LL << 20), "1536Mi");
    ck_assert_str_eq(format(1536), "1536");
    ck_assert_str_eq(format(1000), "1000");
    ck_assert_str_eq(format(0), "0");
    ck_assert_str_eq(format(INT64_MAX), "9223372036854775807");
}
END_TEST

START_TEST(format_truncates_safely)
{
    char small[4];
    memset(small, 'x', sizeof small);
    vf_quantity_format(640LL << 20, small, sizeof small);
    ck_assert_str_eq(small, "640");
}
END_TEST

START_TEST(format_round_trip)
{
    static const int64_t values[] = { 0, 1, 1023, 1024, 1536, 640LL << 20, 50000000000LL,
                                      (1LL << 62) + 1, 7LL << 60, INT64_MAX };
    for (unsigned i = 0; i < sizeof values / sizeof values[0]; i++) {
        int64_t back = -1;
        ck_assert_int_eq(vf_quantity_parse(format(values[i]), &back), 0);
        ck_assert_int_eq(back, values[i]);
    }
}
END_TEST

START_TEST(duration_format_round_trip)
{
    static const struct {
        int64_t ms;
        const char *text;
    } cases[] = {
        { 0, "0s" }, { 250, "250ms" }, { 150000, "2m30s" }, { 5400000, "1h30m" },
        { 93784005, "1d2h3m4s5ms" }, { 86400000, "1d" },
    };
    char buf[64];
    for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t back = -1;
        vf_duration_format(cases[i].ms, buf, sizeof buf);
        ck_assert_str_eq(buf, cases[i].text);
        ck_assert_int_eq(vf_duration_parse(buf, &back), 0);
        ck_assert_int_eq(back, cases[i].ms);
    }
}
END_TEST

/* One TCase per behaviour, so TAP names what broke. */
#define ADD_CASE(suite, name, test)                                                           \
    do {                                                                                      \
        TCase *tc_ = tcase_create(name);                                                      \
        tcase_add_test(tc_, test);                                                            \
        suite_add_tcase(suite, tc_);                                                          \
    } while (0)

static Suite *quantity_suite(void)
{
    Suite *s = suite_create("quantity");

    ADD_CASE(s, "quantity plain integers", quantity_plain_integers);
    ADD_CASE(s, "quantity binary suffixes", quantity_binary_suffixes);
    ADD_CASE(s, "quantity decimal suffixes", quantity_decimal_suffixes);
    ADD_CASE(s, "quantity fractions", quantity_fractions);
    ADD_CASE(s, "quantity malformed", quantity_malformed);
    ADD_CASE(s, "quantity negative refused", quantity_negative_refused);
    ADD_CASE(s, "quantity overflow", quantity_overflow);
    ADD_CASE(s, "duration units", duration_units);
    ADD_CASE(s, "duration combined", duration_combined);
    ADD_CASE(s, "duration bare seconds", duration_bare_seconds);
    ADD_CASE(s, "duration invalid", duration_invalid);
    ADD_CASE(s, "duration overflow", duration_overflow);
    ADD_CASE(s, "format exact binary", format_exact_binary);
    ADD_CASE(s, "format truncates safely", format_truncates_safely);
    ADD_CASE(s, "format round trip", format_round_trip);
    ADD_CASE(s, "duration format round trip", duration_format_round_trip);
    return s;
}

int main(void)
{
    return vf_test_run(quantity_suite());
}
