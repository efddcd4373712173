/* The module loader: real shared objects (the example module and deliberately
 * broken ones) loaded from a temporary module directory, with a real store. */
#include <config.h>
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/audit.h"
#include "core/config.h"
#include "core/core_kinds.h"
#include "core/kinds.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/modules.h"
#include "core/objects.h"
#include "core/store.h"

static char moddir[PATH_MAX];
static char statedir[PATH_MAX];
static struct vf_store *store;

static void link_module(const char *builddir, const char *from, const char *name)
{
    char src[PATH_MAX], dst[PATH_MAX];
    snprintf(src, sizeof src, "%s/%s/.libs/%s.so", builddir, from, name);
    snprintf(dst, sizeof dst, "%s/%s.so", moddir, name);
    ck_assert_msg(access(src, R_OK) == 0, "%s not built", src);
    ck_assert_int_eq(symlink(src, dst), 0);
}

/* One module directory and store for the whole suite: modules are resident
 * and never unloaded, exactly as in the daemon. */
static void suite_setup(void)
{
    const char *builddir = getenv("top_builddir");
    if (!builddir)
        builddir = ".";
    snprintf(moddir, sizeof moddir, "/tmp/vf-modules-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(moddir));
    snprintf(statedir, sizeof statedir, "/tmp/vf-state-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(statedir));
    link_module(builddir, "modules/example", "example");
    link_module(builddir, "tests/unit/modules", "bad_abi");
    link_module(builddir, "tests/unit/modules", "no_descriptor");
    link_module(builddir, "tests/unit/modules", "init_fail");
    link_module(builddir, "tests/unit/modules", "bad_settings");

    vf_log_open(true, VF_LOG_ERROR);
    ck_assert_int_eq(vf_loop_init(), 0);
    char db[PATH_MAX];
    snprintf(db, sizeof db, "%s/store.db", statedir);
    struct vf_error err = {0};
    ck_assert_int_eq(vf_store_open(db, NULL, &store, &err), 0);
    vf_objects_set_store(store);
    ck_assert_int_eq(vf_core_kinds_register(), 0);
    ck_assert_int_eq(vf_audit_init(), 0);
    ck_assert_int_eq(vf_modules_init(moddir), 0);
    vf_modules_set_state_root(statedir);
}

static void suite_teardown(void)
{
    vf_modules_stop_all();
    vf_store_close(store);
    vf_objects_set_store(NULL);
    char cmd[PATH_MAX * 2 + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", moddir, statedir);
    ck_assert_int_eq(system(cmd), 0);
}

static struct vf_config *config(const char *text)
{
    struct vf_config *cfg = NULL;
    struct vf_config_errors errors = {0};
    int rc = vf_config_load_string(text, "test.conf", &cfg, &errors);
    ck_assert_msg(rc == 0, "config rejected: %s", errors.n ? errors.lines[0] : "?");
    vf_config_errors_clear(&errors);
    return cfg;
}

/* The check's errors joined, for assertions on their text. */
static char *check_errors(const char *text)
{
    struct vf_config *cfg = config(text);
    struct vf_config_errors errors = {0};
    int rc = vf_modules_check(cfg, &errors);
    static char joined[8192];
    joined[0] = '\0';
    for (unsigned i = 0; i < errors.n; i++) {
        strncat(joined, errors.lines[i], sizeof joined - strlen(joined) - 2);
        strcat(joined, "\n");
    }
    ck_assert_int_eq(rc == 0, errors.n == 0);
    vf_config_errors_clear(&errors);
    vf_config_free(cfg);
    return joined;
}

static struct json_object *module_status(const char *name)
{
    struct json_object *items = vf_modules_status();
    struct json_object *found = NULL;
    for (size_t i = 0; i < json_object_array_length(items); i++) {
        struct json_object *o = json_object_array_get_idx(items, i), *n;
        if (json_object_object_get_ex(o, "name", &n) &&
            strcmp(json_object_get_string(n), name) == 0)
            found = json_object_get(o);
    }
    json_object_put(items);
    ck_assert_msg(found != NULL, "module %s not listed", name);
    return found;
}

static const char *field(struct json_object *o, const char *key)
{
    struct json_object *v;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

static void apply(const char *text)
{
    struct vf_config *cfg = config(text);
    vf_modules_apply(cfg);
    vf_config_free(cfg);
}

static void assert_state(const char *name, const char *state, const char *reason_part)
{
    struct json_object *st = module_status(name);
    ck_assert_str_eq(field(st, "state"), state);
    if (reason_part)
        ck_assert_msg(strstr(field(st, "reason"), reason_part), "%s: reason \"%s\" lacks \"%s\"",
                      name, field(st, "reason"), reason_part);
    json_object_put(st);
}

START_TEST(wrong_abi_major_is_refused)
{
    const char *e = check_errors("modules = { bad_abi = { enabled = true; }; };");
    ck_assert_msg(strstr(e, "test.conf:1: modules.bad_abi:"), "%s", e);
    char want[96];
    snprintf(want, sizeof want, "built for module ABI 2.0, this virtfleetd provides %d.%d",
             VF_MODULE_ABI_MAJOR, VF_MODULE_ABI_MINOR);
    ck_assert_msg(strstr(e, want), "%s", e);
    ck_assert_msg(strstr(e, "rebuild the module"), "%s", e);
}
END_TEST

START_TEST(missing_descriptor_is_refused)
{
    const char *e = check_errors("modules = { no_descriptor = { enabled = true; }; };");
    ck_assert_msg(strstr(e, "does not export \"virtfleet_module\""), "%s", e);
}
END_TEST

START_TEST(missing_module_is_refused_only_when_enabled)
{
    const char *e = check_errors("modules = { nosuch = { enabled = true; }; };");
    ck_assert_msg(strstr(e, "no module \"nosuch\""), "%s", e);
    e = check_errors("modules = { nosuch = { enabled = false; }; };");
    ck_assert_str_eq(e, "");
}
END_TEST

START_TEST(path_in_module_name_is_refused)
{
    const char *e = check_errors("modules = { example = { enabled = true; }; };");
    ck_assert_str_eq(e, "");
    /* libconfig names cannot hold '/', so a traversal can only come from a
     * crafted name; the loader refuses names outside [a-z0-9_-]. */
    e = check_errors("modules = { Example = { enabled = true; }; };");
    ck_assert_msg(strstr(e, "not a module name"), "%s", e);
}
END_TEST

START_TEST(bad_settings_are_refused_with_path)
{
    const char *e = check_errors("modules = {\n bad_settings = { enabled = true;\n"
                                 " settings = { limit = 99; }; }; };");
    ck_assert_msg(strstr(e, "modules.bad_settings.settings.limit"), "%s", e);
    e = check_errors("modules = { bad_settings = { enabled = true; settings = { mode = \"x\"; }; }; };");
    ck_assert_msg(strstr(e, "modules.bad_settings.settings.mode"), "%s", e);
    e = check_errors("modules = { bad_settings = { enabled = true; settings = { lmit = 3; }; }; };");
    ck_assert_msg(strstr(e, "modules.bad_settings.settings.lmit"), "%s", e);
    /* configure() refuses what the schema allows */
    e = check_errors("modules = { bad_settings = { enabled = true; settings = { limit = 13; }; }; };");
    ck_assert_msg(strstr(e, "modules.bad_settings.settings.limit: 13 is unlucky"), "%s", e);
    e = check_errors("modules = { bad_settings = { enabled = true; version = 2; }; };");
    ck_assert_msg(strstr(e, "modules.bad_settings.version: 2 is newer"), "%s", e);
}
END_TEST

START_TEST(start_failure_disables_only_that_module)
{
    apply("modules = { init_fail = { enabled = true; }; example = { enabled = true; }; };");
    assert_state("init_fail", "Failed", "start failed");
    assert_state("example", "Running", NULL);
    apply("modules = { };");
    assert_state("example", "Disabled", "not in the configuration");
    assert_state("init_fail", "Disabled", NULL);
}
END_TEST

START_TEST(bad_settings_at_apply_fail_the_module)
{
    apply("modules = { bad_settings = { enabled = true; settings = { limit = 13; }; }; };");
    assert_state("bad_settings", "Failed", "13 is unlucky");
    apply("modules = { bad_settings = { enabled = true; settings = { limit = 3; }; }; };");
    assert_state("bad_settings", "Running", NULL);
    struct json_object *st = module_status("bad_settings"), *settings, *size;
    ck_assert(json_object_object_get_ex(st, "settings", &settings));
    ck_assert(json_object_object_get_ex(settings, "size", &size));
    ck_assert_int_eq(json_object_get_int64(size), 1024 * 1024);  /* default, in bytes */
    json_object_put(st);
    apply("modules = { bad_settings = { enabled = false; }; };");
    assert_state("bad_settings", "Disabled", "disabled in the configuration");
}
END_TEST

START_TEST(reconfigure_and_restart)
{
    apply("modules = { example = { enabled = true; settings = { greeting = \"hi\"; }; }; };");
    assert_state("example", "Running", NULL);
    struct json_object *st = module_status("example"), *settings, *v;
    ck_assert(json_object_object_get_ex(st, "settings", &settings));
    ck_assert(json_object_object_get_ex(settings, "greeting", &v));
    ck_assert_str_eq(json_object_get_string(v), "hi");
    ck_assert(json_object_object_get_ex(settings, "tickInterval", &v));
    ck_assert_int_eq(json_object_get_int64(v), 10000);
    json_object_put(st);

    apply("modules = { example = { enabled = true; settings = { greeting = \"hey\"; "
          "tickInterval = \"2s\"; }; }; };");
    assert_state("example", "Running", NULL);
    st = module_status("example");
    ck_assert(json_object_object_get_ex(st, "settings", &settings));
    ck_assert(json_object_object_get_ex(settings, "tickInterval", &v));
    ck_assert_int_eq(json_object_get_int64(v), 2000);
    ck_assert_str_eq(field(st, "version"), "1.0.0");
    json_object_put(st);
    apply("modules = { };");
}
END_TEST

START_TEST(module_changes_are_audited)
{
    struct vf_error err = {0};
    struct json_object *before, *after;
    ck_assert_int_eq(vf_objects_list("AuditEvent", &before, NULL, &err), 0);
    apply("modules = { example = { enabled = true; }; };");
    apply("modules = { example = { enabled = false; }; };");
    ck_assert_int_eq(vf_objects_list("AuditEvent", &after, NULL, &err), 0);
    ck_assert_int_eq(json_object_array_length(after), json_object_array_length(before) + 2);
    json_object_put(before);
    json_object_put(after);
}
END_TEST

START_TEST(list_modules_prints_every_module)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    ck_assert_int_lt(vf_modules_print(out), 0);   /* the broken ones are reported */
    fclose(out);
    ck_assert_msg(strstr(buf, "example 1.0.0 (settings version 1)"), "%s", buf);
    ck_assert_msg(strstr(buf, "tickInterval"), "%s", buf);
    ck_assert_msg(strstr(buf, "default 10s"), "%s", buf);
    ck_assert_msg(strstr(buf, "bad_abi: unusable"), "%s", buf);
    free(buf);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("modules");
    TCase *tc = tcase_create("loader");
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_add_test(tc, wrong_abi_major_is_refused);
    tcase_add_test(tc, missing_descriptor_is_refused);
    tcase_add_test(tc, missing_module_is_refused_only_when_enabled);
    tcase_add_test(tc, path_in_module_name_is_refused);
    tcase_add_test(tc, bad_settings_are_refused_with_path);
    suite_add_tcase(s, tc);
    tc = tcase_create("lifecycle");
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_add_test(tc, start_failure_disables_only_that_module);
    tcase_add_test(tc, bad_settings_at_apply_fail_the_module);
    tcase_add_test(tc, reconfigure_and_restart);
    tcase_add_test(tc, module_changes_are_audited);
    tcase_add_test(tc, list_modules_prints_every_module);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    /* Resident modules and one loop per process: run the tests in this process. */
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_set_tap(sr, "-");
    srunner_run_all(sr, CK_SILENT);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
