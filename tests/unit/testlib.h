/* Helpers shared by the Check suites: temporary directories, JSON from text,
 * JSON lookups by dotted path, and the TAP runner.  Header-only so that each
 * suite stays one file; include it after <config.h>. */
#ifndef VF_TESTLIB_H
#define VF_TESTLIB_H
#include <check.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <json-c/json.h>

/* A fresh directory under $TMPDIR (or /tmp); free() it after vf_test_rmtree(). */
static inline char *vf_test_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char *path = NULL;
    if (!base || !*base)
        base = "/tmp";
    ck_assert_int_gt(asprintf(&path, "%s/vftest.XXXXXX", base), 0);
    ck_assert_msg(mkdtemp(path) != NULL, "mkdtemp %s failed", path);
    return path;
}

static inline int vf_test_rm_entry(const char *path, const struct stat *sb, int flag,
                                   struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* rm -rf, without following symbolic links. */
static inline void vf_test_rmtree(const char *path)
{
    if (path)
        nftw(path, vf_test_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Parses text (which must be valid JSON) into a new object. */
static inline struct json_object *vf_test_json(const char *text)
{
    struct json_object *obj = json_tokener_parse(text);
    ck_assert_msg(obj != NULL, "test JSON does not parse: %s", text);
    return obj;
}

/* The value at a dotted path ("metadata.labels.app", "spec.disks.0.name"),
 * borrowed; NULL when absent. */
static inline struct json_object *vf_test_json_at(const struct json_object *obj, const char *path)
{
    char buf[256], *save = NULL;
    struct json_object *cur = (struct json_object *)obj;
    snprintf(buf, sizeof buf, "%s", path);
    for (char *seg = strtok_r(buf, ".", &save); seg && cur; seg = strtok_r(NULL, ".", &save)) {
        if (json_object_is_type(cur, json_type_array)) {
            cur = json_object_array_get_idx(cur, (size_t)strtoul(seg, NULL, 10));
        } else if (json_object_is_type(cur, json_type_object)) {
            if (!json_object_object_get_ex(cur, seg, &cur))
                cur = NULL;
        } else {
            cur = NULL;
        }
    }
    return cur;
}

/* The string at path, or NULL when absent or not a string. */
static inline const char *vf_test_json_str(const struct json_object *obj, const char *path)
{
    struct json_object *v = vf_test_json_at(obj, path);
    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* The integer at path; fails the test when absent. */
static inline int64_t vf_test_json_int(const struct json_object *obj, const char *path)
{
    struct json_object *v = vf_test_json_at(obj, path);
    ck_assert_msg(v && json_object_is_type(v, json_type_int), "%s is not an integer", path);
    return json_object_get_int64(v);
}

/* A suite of one test case per test, each named as given. */
struct vf_test_case {
    const char *name;
    const TTest *fn;
};
static inline Suite *vf_test_suite(const char *name, const struct vf_test_case *cases, size_t n)
{
    Suite *s = suite_create(name);
    for (size_t i = 0; i < n; i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_add_test(tc, cases[i].fn);
        suite_add_tcase(s, tc);
    }
    return s;
}

/* Runs a suite with TAP on stdout; returns the process exit status. */
static inline int vf_test_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    int failed;
    srunner_set_tap(sr, "-");
    srunner_run_all(sr, CK_SILENT);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
#endif
