/* The kinds registry, schema validation, and the objects_* glue (kind lookup,
 * validation before writes, merge patch). */
#include <config.h>

#include <errno.h>
#include <unistd.h>

#include "core/kinds.h"
#include "core/objects.h"
#include "core/store.h"
#include "tests/unit/testlib.h"

/* ---- a test kind ------------------------------------------------------- */

static const char *const cpu_types[] = {"Host", "HostPassthrough", "Discovery", "Model", NULL};
static const struct vf_field string_elem[] = {{"feature", VF_FIELD_STRING, 0, NULL, NULL, 0, 0}};
static const struct vf_field cpu_fields[] = {
    {"type", VF_FIELD_STRING, VF_FIELD_REQUIRED, cpu_types, NULL, 0, 0},
    {"model", VF_FIELD_STRING, 0, NULL, NULL, 0, 0},
    {"features", VF_FIELD_ARRAY, 0, NULL, string_elem, 0, 4},
    {"discovery", VF_FIELD_OBJECT, 0, NULL, NULL, 0, 0},
    {NULL, 0, 0, NULL, NULL, 0, 0},
};
static const struct vf_field disk_fields[] = {
    {"name", VF_FIELD_STRING, VF_FIELD_REQUIRED | VF_FIELD_DNS_LABEL, NULL, NULL, 0, 0},
    {"size", VF_FIELD_QUANTITY, 0, NULL, NULL, 0, 0},
    {NULL, 0, 0, NULL, NULL, 0, 0},
};
static const struct vf_field disk_elem[] = {{"disk", VF_FIELD_OBJECT, 0, NULL, disk_fields, 0, 0}};
static const struct vf_field spec_fields[] = {
    {"cpu", VF_FIELD_OBJECT, VF_FIELD_REQUIRED, NULL, cpu_fields, 0, 0},
    {"cores", VF_FIELD_INT, 0, NULL, NULL, 1, 64},
    {"memory", VF_FIELD_QUANTITY, 0, NULL, NULL, 0, 0},
    {"coreFraction", VF_FIELD_PERCENT, 0, NULL, NULL, 0, 0},
    {"nodeName", VF_FIELD_STRING, VF_FIELD_DNS_LABEL, NULL, NULL, 0, 0},
    {"bootDisk", VF_FIELD_STRING, VF_FIELD_IMMUTABLE | VF_FIELD_DNS_LABEL, NULL, NULL, 0, 0},
    {"nodeSelector", VF_FIELD_MAP, 0, NULL, NULL, 0, 0},
    {"enabled", VF_FIELD_BOOL, 0, NULL, NULL, 0, 0},
    {"disks", VF_FIELD_ARRAY, 0, NULL, disk_elem, 0, 3},
    {"extra", VF_FIELD_ANY, 0, NULL, NULL, 0, 0},
    {"runPolicy", VF_FIELD_STRING, 0, NULL, NULL, 0, 0},
    {NULL, 0, 0, NULL, NULL, 0, 0},
};

static int hook_calls;

/* Fills a default and refuses one value, to show the hook runs last. */
static int machine_validate(struct vf_module_ctx *ctx, const struct json_object *old,
                            struct json_object *obj, struct vf_error *err)
{
    struct json_object *spec = json_object_object_get(obj, "spec"), *v = NULL;
    hook_calls++;
    if (spec && !json_object_object_get_ex(spec, "runPolicy", &v))
        json_object_object_add(spec, "runPolicy", json_object_new_string("AlwaysOn"));
    if (v && !strcmp(json_object_get_string(v), "Forbidden"))
        return vf_error_set(err, -EINVAL, 400, "Invalid", "spec.runPolicy",
                            "spec.runPolicy: Forbidden is refused by the hook");
    return 0;
}

static const struct vf_kind machine_kind = {
    .kind = "TestMachine",
    .plural = "testmachines",
    .singular = "testmachine",
    .short_name = "tm",
    .spec = spec_fields,
    .validate = machine_validate,
};

static const struct vf_kind free_kind = {
    .kind = "FreeForm",
    .plural = "freeforms",
    .singular = "freeform",
    .short_name = "ff",
};

static struct vf_module_ctx test_owner;
static char *dir;
static struct vf_store *st;

static void setup_kinds(void)
{
    struct vf_error err = {0};
    hook_calls = 0;
    ck_assert_int_eq(vf_kinds_register(&machine_kind, &test_owner, &err), 0);
    ck_assert_int_eq(vf_kinds_register(&free_kind, &test_owner, &err), 0);
}

static void teardown_kinds(void)
{
    vf_kinds_unregister_owner(&test_owner);
}

static void setup_objects(void)
{
    struct vf_error err = {0};
    char *path = NULL;
    setup_kinds();
    dir = vf_test_tmpdir();
    ck_assert_int_gt(asprintf(&path, "%s/store.db", dir), 0);
    ck_assert_msg(vf_store_open(path, NULL, &st, &err) == 0, "%s", err.message);
    free(path);
    vf_objects_set_store(st);
}

static void teardown_objects(void)
{
    vf_objects_set_store(NULL);
    vf_store_close(st);
    st = NULL;
    vf_test_rmtree(dir);
    free(dir);
    teardown_kinds();
}

/* Validates text as a new TestMachine; returns the result, err filled. */
static int validate_text(const char *text, const char *old_text, struct vf_error *err)
{
    struct json_object *obj = vf_test_json(text);
    struct json_object *old = old_text ? vf_test_json(old_text) : NULL;
    memset(err, 0, sizeof *err);
    int r = vf_kinds_validate(vf_kinds_lookup("TestMachine"), old, obj, err);
    json_object_put(obj);
    json_object_put(old);
    return r;
}

/* Expects text to be refused at field with a message that starts with the
 * field and contains `needle`. */
static void expect_invalid(const char *text, const char *old_text, const char *field,
                           const char *needle)
{
    struct vf_error err;
    int r = validate_text(text, old_text, &err);
    ck_assert_msg(r == -EINVAL, "expected -EINVAL for %s, got %d", text, r);
    ck_assert_int_eq(err.status, 400);
    ck_assert_str_eq(err.reason, "Invalid");
    ck_assert_str_eq(err.field, field);
    ck_assert_msg(!strncmp(err.message, field, strlen(field)), "message does not start with %s: %s",
                  field, err.message);
    ck_assert_msg(strstr(err.message, needle), "message lacks \"%s\": %s", needle, err.message);
}

static void expect_valid(const char *text, const char *old_text)
{
    struct vf_error err;
    int r = validate_text(text, old_text, &err);
    ck_assert_msg(r == 0, "expected valid: %s: %s", text, err.message);
}

#define GOOD_META "\"metadata\":{\"name\":\"vm1\"}"
#define GOOD_CPU "\"cpu\":{\"type\":\"Host\"}"

/* ---- registry ---------------------------------------------------------- */

START_TEST(test_lookup)
{
    const struct vf_kind_entry *e = vf_kinds_lookup("TestMachine");
    ck_assert_ptr_nonnull(e);
    ck_assert_ptr_eq(e->kind, &machine_kind);
    ck_assert_ptr_eq(e->owner, &test_owner);
    const char *names[] = {"testmachine", "TESTMACHINES", "tm", "TM", "TestMachines", "testMachine"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        ck_assert_ptr_eq(vf_kinds_lookup(names[i]), e);
    ck_assert_ptr_eq(vf_kinds_lookup("ff")->kind, &free_kind);
    ck_assert_ptr_null(vf_kinds_lookup("vmx"));
    ck_assert_ptr_null(vf_kinds_lookup(""));
    ck_assert_ptr_null(vf_kinds_lookup(NULL));

    unsigned n = 0;
    bool saw_machine = false;
    for (const struct vf_kind_entry *it; (it = vf_kinds_at(n)); n++)
        saw_machine |= it == e;
    ck_assert(saw_machine);
    ck_assert_uint_ge(n, 2);
}
END_TEST

START_TEST(test_register_conflicts)
{
    struct vf_error err = {0};
    struct vf_module_ctx other;
    static const struct vf_kind clash_short = {
        .kind = "Other", .plural = "others", .singular = "other", .short_name = "TM"};
    static const struct vf_kind clash_kind = {.kind = "testmachines", .plural = "x"};
    static const struct vf_kind no_plural = {.kind = "Lonely"};
    static const struct vf_kind fine = {.kind = "Other", .plural = "others", .short_name = "oth"};
    unsigned before = 0;
    while (vf_kinds_at(before))
        before++;

    ck_assert_int_eq(vf_kinds_register(&clash_short, &other, &err), -EEXIST);
    ck_assert_int_eq(err.status, 409);
    ck_assert_msg(strstr(err.message, "\"TM\" is already taken by kind TestMachine"), "%s",
                  err.message);
    ck_assert_int_eq(vf_kinds_register(&clash_kind, &other, &err), -EEXIST);
    ck_assert_int_eq(vf_kinds_register(&no_plural, &other, &err), -EINVAL);
    ck_assert_int_eq(vf_kinds_register(&fine, &other, &err), 0);
    ck_assert_ptr_eq(vf_kinds_lookup("oth")->owner, &other);

    /* Unregistering one owner leaves the others' kinds. */
    vf_kinds_unregister_owner(&other);
    ck_assert_ptr_null(vf_kinds_lookup("oth"));
    ck_assert_ptr_nonnull(vf_kinds_lookup("tm"));
    unsigned after = 0;
    while (vf_kinds_at(after))
        after++;
    ck_assert_uint_eq(after, before);
}
END_TEST

START_TEST(test_dns_label)
{
    ck_assert(vf_is_dns_label("a"));
    ck_assert(vf_is_dns_label("linux-vm-1"));
    ck_assert(vf_is_dns_label("0abc"));
    ck_assert(!vf_is_dns_label(""));
    ck_assert(!vf_is_dns_label(NULL));
    ck_assert(!vf_is_dns_label("-a"));
    ck_assert(!vf_is_dns_label("a-"));
    ck_assert(!vf_is_dns_label("Upper"));
    ck_assert(!vf_is_dns_label("a_b"));
    ck_assert(!vf_is_dns_label("a.b"));
    char long_name[70];
    memset(long_name, 'a', sizeof long_name);
    long_name[63] = '\0';
    ck_assert(vf_is_dns_label(long_name));
    long_name[63] = 'a';
    long_name[64] = '\0';
    ck_assert(!vf_is_dns_label(long_name));
}
END_TEST

/* ---- schema ------------------------------------------------------------ */

START_TEST(test_valid_object_and_defaults)
{
    struct vf_error err = {0};
    struct json_object *obj = vf_test_json(
        "{\"apiVersion\":\"virtualization.deckhouse.io/v1alpha2\",\"kind\":\"TestMachine\","
        "\"metadata\":{\"name\":\"vm1\",\"namespace\":\"default\",\"labels\":{\"app\":\"web\","
        "\"example.com/tier\":\"front_end.1\",\"empty\":\"\"},\"annotations\":{\"note\":\"any text "
        "at all!\"},\"finalizers\":[\"virtfleet.io/cleanup\"]},"
        "\"spec\":{\"cpu\":{\"type\":\"Model\",\"model\":\"EPYC\",\"features\":[\"avx\"],"
        "\"discovery\":{\"anything\":[1,2]}},\"cores\":4,\"memory\":\"1Gi\",\"coreFraction\":\"25%\","
        "\"nodeName\":\"node-1\",\"bootDisk\":\"root\",\"nodeSelector\":{\"zone\":\"a\"},"
        "\"enabled\":true,\"disks\":[{\"name\":\"d1\",\"size\":\"10G\"},{\"name\":\"d2\",\"size\":"
        "1048576}],\"extra\":{\"free\":[{}]}},\"status\":{\"phase\":\"Running\"}}");
    ck_assert_msg(vf_kinds_validate(vf_kinds_lookup("tm"), NULL, obj, &err) == 0, "%s",
                  err.message);
    /* The deckhouse group is stored under our own name; namespace is dropped. */
    ck_assert_str_eq(vf_test_json_str(obj, "apiVersion"), "virtfleet.io/v1alpha2");
    ck_assert_ptr_null(vf_test_json_at(obj, "metadata.namespace"));
    ck_assert_str_eq(vf_test_json_str(obj, "spec.runPolicy"), "AlwaysOn");
    ck_assert_int_eq(hook_calls, 1);
    json_object_put(obj);

    /* apiVersion and kind are filled in when absent. */
    obj = vf_test_json("{\"metadata\":{\"generateName\":\"web-\"},\"spec\":{" GOOD_CPU "}}");
    ck_assert_msg(vf_kinds_validate(vf_kinds_lookup("tm"), NULL, obj, &err) == 0, "%s",
                  err.message);
    ck_assert_str_eq(vf_test_json_str(obj, "apiVersion"), "virtfleet.io/v1alpha2");
    ck_assert_str_eq(vf_test_json_str(obj, "kind"), "TestMachine");
    json_object_put(obj);

    /* Quantities and percentages. */
    const char *quantities[] = {"\"512Mi\"", "\"100m\"", "\"1.5Gi\"", "\"10\"", "\"2k\"",
                                "\"0.5\"", "3", "\"1Ei\""};
    for (size_t i = 0; i < sizeof quantities / sizeof quantities[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "{" GOOD_META ",\"spec\":{" GOOD_CPU ",\"memory\":%s}}",
                 quantities[i]);
        expect_valid(text, NULL);
    }
    expect_valid("{" GOOD_META ",\"spec\":{" GOOD_CPU ",\"coreFraction\":\"100%\"}}", NULL);
    expect_valid("{" GOOD_META ",\"spec\":{" GOOD_CPU ",\"coreFraction\":\"1%\"}}", NULL);

    /* A kind without a schema takes any spec. */
    obj = vf_test_json("{\"metadata\":{\"name\":\"f\"},\"spec\":{\"whatever\":[1]}}");
    ck_assert_int_eq(vf_kinds_validate(vf_kinds_lookup("ff"), NULL, obj, &err), 0);
    json_object_put(obj);
}
END_TEST

START_TEST(test_unknown_field)
{
    struct vf_error err;
    ck_assert_int_eq(
        validate_text("{" GOOD_META ",\"spec\":{\"cpu\":{\"tpye\":\"Host\"}}}", NULL, &err),
        -EINVAL);
    ck_assert_str_eq(err.field, "spec.cpu.tpye");
    ck_assert_str_eq(err.message,
                     "spec.cpu.tpye: unknown field; known fields: type, model, features, discovery");
    expect_invalid("{" GOOD_META ",\"spec\":{" GOOD_CPU ",\"disks\":[{\"name\":\"a\",\"sise\":1}]}}",
                   NULL, "spec.disks[0].sise", "known fields: name, size");
    expect_invalid("{" GOOD_META ",\"spec\":{" GOOD_CPU "},\"spce\":{}}", NULL, "spce",
                   "unknown field; known fields: apiVersion, kind, metadata, spec, status");
    expect_invalid("{\"metadata\":{\"name\":\"a\",\"owner\":\"x\"},\"spec\":{" GOOD_CPU "}}", NULL,
                   "metadata.owner", "unknown field; known fields: name, generateName");
    ck_assert_int_eq(hook_calls, 0); /* schema errors stop before the hook */
}
END_TEST

START_TEST(test_wrong_type)
{
    expect_invalid("{" GOOD_META ",\"spec\":{" GOOD_CPU ",\"cores\":\"two\"}}", NULL, "spec.cores",
                   "must be an integer");
    expect_invalid("{" GOOD_META ",\"spec\":{" GOOD_CPU ",\"enabled\":\"yes\"}}", NULL,
                   "spec.enabled", "must be true or false");
    expect_invalid("{" GOOD_META ",\"spec\":{\"cpu\":\"Host\"}}", NULL, "spec.cpu",
                   "must be an object");
    expect_invalid("{" GOOD_META ",\"spec\":{" GOOD_CPU ",\"disks\":{}}}", NULL, "spec.disks",
                   "must be a list");
    expect_invalid("{" GOOD_META ",\"spec\":{\"cpu\":{\"type\":7}}}", NULL, "spec.cpu.type",
                   "must be a string");
    expect_invalid("{" GOOD_META ",\"spec\":{" GOOD_CPU ",\"nodeSelector\":{\"a\":1}}}", NULL,
                   "spec.nodeSelector.a", "must be a string");
    expect_invalid("{" GOOD_META ",\"spec\":[]}", NULL, "spec", "must be an object");
    expect_invalid("{" GOOD_META ",\"spec\":{" GOOD_CPU "},\"status\":3}", NULL, "status",
                   "must be an object");
    /* Bounds. */
    expect_invalid("{" GOOD_META ",\"spec\":{" GOOD_CPU ",\"cores\":0}}", NULL, "spec.cores",
                   "0 is out of range [1, 64]");
    expect_invalid("{" GOOD_META ",\"spec\":{\"cpu\":{\"type\":\"Host\",\"features\":[\"a\",\"b\","
                   "\"c\",\"d\",\"e\"]}}}",
                   NULL, "spec.cpu.features", "at most 4");
    expect_invalid("{" GOOD_META ",\"spec\":{\"cpu\":{\"type\":\"Host\",\"features\":[\"a\",1]}}}",
                   NULL, "spec.cpu.features[1]", "must be a string");
    /* Quantities and percentages. */
    const char *bad_quantities[] = {"\"1GB\"", "\"Gi\"", "\"-1Gi\"", "\"1 Gi\"", "\"\"", "true",
                                    "-5", "\"1..5\""};
    for (size_t i = 0; i < sizeof bad_quantities / sizeof bad_quantities[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "{" GOOD_META ",\"spec\":{" GOOD_CPU ",\"memory\":%s}}",
                 bad_quantities[i]);
        expect_invalid(text, NULL, "spec.memory", "");
    }
    expect_invalid("{" GOOD_META ",\"spec\":{" GOOD_CPU ",\"coreFraction\":\"0%\"}}", NULL,
                   "spec.coreFraction", "out of range");
    expect_invalid("{" GOOD_META ",\"spec\":{" GOOD_CPU ",\"coreFraction\":\"101%\"}}", NULL,
                   "spec.coreFraction", "out of range");
    expect_invalid("{" GOOD_META ",\"spec\":{" GOOD_CPU ",\"coreFraction\":25}}", NULL,
                   "spec.coreFraction", "percentage");
    expect_invalid("{" GOOD_META ",\"spec\":{" GOOD_CPU ",\"coreFraction\":\"25\"}}", NULL,
                   "spec.coreFraction", "percentage");
}
END_TEST

START_TEST(test_missing_required)
{
    expect_invalid("{" GOOD_META ",\"spec\":{\"cpu\":{\"model\":\"x\"}}}", NULL, "spec.cpu.type",
                   "required field is missing");
    expect_invalid("{" GOOD_META "}", NULL, "spec.cpu", "required field is missing");
    expect_invalid("{" GOOD_META ",\"spec\":{\"cpu\":null}}", NULL, "spec.cpu",
                   "required field is missing");
    expect_invalid("{" GOOD_META ",\"spec\":{" GOOD_CPU ",\"disks\":[{\"size\":\"1Gi\"}]}}", NULL,
                   "spec.disks[0].name", "required field is missing");
    expect_invalid("{\"spec\":{" GOOD_CPU "}}", NULL, "metadata", "must be an object");
    expect_invalid("{\"metadata\":{},\"spec\":{" GOOD_CPU "}}", NULL, "metadata.name",
                   "required field is missing (or set generateName)");
}
END_TEST

START_TEST(test_bad_enum)
{
    struct vf_error err;
    ck_assert_int_eq(validate_text("{" GOOD_META ",\"spec\":{\"cpu\":{\"type\":\"Foo\"}}}", NULL,
                                   &err),
                     -EINVAL);
    ck_assert_str_eq(err.field, "spec.cpu.type");
    ck_assert_str_eq(err.message, "spec.cpu.type: \"Foo\" is not allowed; allowed values: Host, "
                                  "HostPassthrough, Discovery, Model");
    /* Case matters, as in the seeds. */
    expect_invalid("{" GOOD_META ",\"spec\":{\"cpu\":{\"type\":\"host\"}}}", NULL, "spec.cpu.type",
                   "allowed values");
}
END_TEST

START_TEST(test_immutable)
{
    const char *old = "{\"apiVersion\":\"virtfleet.io/v1alpha2\",\"kind\":\"TestMachine\","
                      "\"metadata\":{\"name\":\"vm1\",\"resourceVersion\":\"3\"},\"spec\":{" GOOD_CPU
                      ",\"bootDisk\":\"root\",\"cores\":1}}";
    expect_valid("{" GOOD_META ",\"spec\":{" GOOD_CPU ",\"bootDisk\":\"root\",\"cores\":2}}", old);
    expect_invalid("{" GOOD_META ",\"spec\":{" GOOD_CPU ",\"bootDisk\":\"other\"}}", old,
                   "spec.bootDisk", "immutable");
    expect_invalid("{" GOOD_META ",\"spec\":{" GOOD_CPU "}}", old, "spec.bootDisk",
                   "cannot be removed");
    /* On create there is nothing to compare with. */
    expect_valid("{" GOOD_META ",\"spec\":{" GOOD_CPU ",\"bootDisk\":\"other\"}}", NULL);
    /* An update cannot rename. */
    expect_invalid("{\"metadata\":{\"name\":\"vm2\"},\"spec\":{" GOOD_CPU ",\"bootDisk\":\"root\"}}",
                   old, "metadata.name", "cannot be renamed");
}
END_TEST

START_TEST(test_names)
{
    expect_invalid("{\"metadata\":{\"name\":\"Bad_Name\"},\"spec\":{" GOOD_CPU "}}", NULL,
                   "metadata.name", "\"Bad_Name\" is not a valid name");
    expect_invalid("{\"metadata\":{\"name\":\"-a\"},\"spec\":{" GOOD_CPU "}}", NULL,
                   "metadata.name", "not a valid name");
    expect_invalid("{\"metadata\":{\"name\":5},\"spec\":{" GOOD_CPU "}}", NULL, "metadata.name",
                   "not a valid name");
    expect_valid("{\"metadata\":{\"generateName\":\"evict-linux-vm-\"},\"spec\":{" GOOD_CPU "}}",
                 NULL);
    expect_invalid("{\"metadata\":{\"generateName\":\"Evict-\"},\"spec\":{" GOOD_CPU "}}", NULL,
                   "metadata.generateName", "not a valid prefix");
    char text[256], prefix[60];
    memset(prefix, 'a', 59);
    prefix[59] = '\0';
    snprintf(text, sizeof text, "{\"metadata\":{\"generateName\":\"%s\"},\"spec\":{" GOOD_CPU "}}",
             prefix);
    expect_invalid(text, NULL, "metadata.generateName", "at most 58 characters");
    prefix[58] = '\0';
    snprintf(text, sizeof text, "{\"metadata\":{\"generateName\":\"%s\"},\"spec\":{" GOOD_CPU "}}",
             prefix);
    expect_valid(text, NULL);
    expect_invalid("{" GOOD_META ",\"spec\":{" GOOD_CPU ",\"nodeName\":\"Node_1\"}}", NULL,
                   "spec.nodeName", "is not a DNS label");
    expect_invalid("{" GOOD_META ",\"spec\":{" GOOD_CPU ",\"disks\":[{\"name\":\"ok\"},{\"name\":"
                   "\"NO\"}]}}",
                   NULL, "spec.disks[1].name", "is not a DNS label");
}
END_TEST

START_TEST(test_labels)
{
    expect_invalid("{\"metadata\":{\"name\":\"a\",\"labels\":{\"a b\":\"x\"}},\"spec\":{" GOOD_CPU
                   "}}",
                   NULL, "metadata.labels.a b", "is not a valid key");
    expect_invalid("{\"metadata\":{\"name\":\"a\",\"labels\":{\"Bad_Domain.com/x\":\"x\"}},"
                   "\"spec\":{" GOOD_CPU "}}",
                   NULL, "metadata.labels.Bad_Domain.com/x", "is not a valid key");
    expect_invalid("{\"metadata\":{\"name\":\"a\",\"labels\":{\"app\":\"-x\"}},\"spec\":{" GOOD_CPU
                   "}}",
                   NULL, "metadata.labels.app", "not a valid label value");
    expect_invalid("{\"metadata\":{\"name\":\"a\",\"labels\":{\"app\":3}},\"spec\":{" GOOD_CPU "}}",
                   NULL, "metadata.labels.app", "must be a string");
    expect_invalid("{\"metadata\":{\"name\":\"a\",\"labels\":[]},\"spec\":{" GOOD_CPU "}}", NULL,
                   "metadata.labels", "must be an object of strings");
    char text[512], value[70];
    memset(value, 'v', 64);
    value[64] = '\0';
    snprintf(text, sizeof text,
             "{\"metadata\":{\"name\":\"a\",\"labels\":{\"app\":\"%s\"}},\"spec\":{" GOOD_CPU "}}",
             value);
    expect_invalid(text, NULL, "metadata.labels.app", "not a valid label value");
    value[63] = '\0';
    snprintf(text, sizeof text,
             "{\"metadata\":{\"name\":\"a\",\"labels\":{\"app\":\"%s\"}},\"spec\":{" GOOD_CPU "}}",
             value);
    expect_valid(text, NULL);
    expect_invalid("{\"metadata\":{\"name\":\"a\",\"finalizers\":[\"not ok\"]},\"spec\":{" GOOD_CPU
                   "}}",
                   NULL, "metadata.finalizers[0]", "not a valid finalizer");
    expect_invalid("{\"metadata\":{\"name\":\"a\",\"annotations\":{\"x\":{}}},\"spec\":{" GOOD_CPU
                   "}}",
                   NULL, "metadata.annotations.x", "must be a string");
}
END_TEST

START_TEST(test_api_version_and_kind)
{
    expect_invalid("{\"apiVersion\":\"v1\"," GOOD_META ",\"spec\":{" GOOD_CPU "}}", NULL,
                   "apiVersion", "\"v1\" is not supported; use \"virtfleet.io/v1alpha2\"");
    expect_invalid("{\"apiVersion\":\"virtfleet.io/v1\"," GOOD_META ",\"spec\":{" GOOD_CPU "}}",
                   NULL, "apiVersion", "not supported");
    expect_invalid("{\"apiVersion\":2," GOOD_META ",\"spec\":{" GOOD_CPU "}}", NULL, "apiVersion",
                   "must be a string");
    expect_valid("{\"apiVersion\":\"virtualization.deckhouse.io/v1alpha2\"," GOOD_META
                 ",\"spec\":{" GOOD_CPU "}}",
                 NULL);
    expect_valid("{\"apiVersion\":\"virtfleet.io/v1alpha2\"," GOOD_META ",\"spec\":{" GOOD_CPU "}}",
                 NULL);
    expect_invalid("{\"kind\":\"VirtualMachine\"," GOOD_META ",\"spec\":{" GOOD_CPU "}}", NULL,
                   "kind", "\"VirtualMachine\" does not match the kind being written, TestMachine");
    /* Short names are for URLs and the CLI, not for bodies. */
    expect_invalid("{\"kind\":\"tm\"," GOOD_META ",\"spec\":{" GOOD_CPU "}}", NULL, "kind",
                   "does not match");
}
END_TEST

START_TEST(test_hook)
{
    struct vf_error err;
    ck_assert_int_eq(validate_text("{" GOOD_META ",\"spec\":{" GOOD_CPU
                                   ",\"runPolicy\":\"Forbidden\"}}",
                                   NULL, &err),
                     -EINVAL);
    ck_assert_str_eq(err.field, "spec.runPolicy");
    ck_assert_int_eq(hook_calls, 1);
}
END_TEST

/* ---- objects_* --------------------------------------------------------- */

static struct json_object *create_machine(const char *name, const char *spec)
{
    char text[512];
    struct json_object *obj, *out = NULL;
    struct vf_error err = {0};
    snprintf(text, sizeof text, "{\"metadata\":{\"name\":\"%s\"},\"spec\":%s}", name, spec);
    obj = vf_test_json(text);
    ck_assert_msg(vf_objects_create("tm", obj, &out, &err) == 0, "%s", err.message);
    json_object_put(obj);
    return out;
}

START_TEST(test_objects_errors)
{
    struct vf_error err = {0};
    struct json_object *out = NULL, *items = NULL;
    struct json_object *obj = vf_test_json("{" GOOD_META ",\"spec\":{" GOOD_CPU "}}");

    ck_assert_int_eq(vf_objects_get("foo", "a", &out, &err), -ENOENT);
    ck_assert_int_eq(err.status, 404);
    ck_assert_str_eq(err.reason, "NotFound");
    ck_assert_msg(strstr(err.message, "unknown kind \"foo\"; known kinds: "), "%s", err.message);
    ck_assert_msg(strstr(err.message, "TestMachine"), "%s", err.message);
    ck_assert_int_eq(vf_objects_create("foo", obj, NULL, &err), -ENOENT);
    ck_assert_int_eq(vf_objects_list("foo", &items, NULL, &err), -ENOENT);
    ck_assert_int_eq(vf_objects_delete("foo", "a", 0, NULL, &err), -ENOENT);

    ck_assert_int_eq(vf_objects_get("tm", "vm1", &out, &err), -ENOENT);
    ck_assert_int_eq(err.status, 404);
    ck_assert_str_eq(err.message, "TestMachine \"vm1\" not found");

    /* Create through any name; the stored kind is the canonical one. */
    ck_assert_int_eq(vf_objects_create("testmachines", obj, &out, &err), 0);
    ck_assert_str_eq(vf_test_json_str(out, "kind"), "TestMachine");
    ck_assert_str_eq(vf_test_json_str(out, "spec.runPolicy"), "AlwaysOn");
    json_object_put(out);
    ck_assert_int_eq(vf_objects_get("TESTMACHINE", "vm1", &out, &err), 0);
    ck_assert_str_eq(vf_object_name(out), "vm1");
    json_object_put(out);
    ck_assert_int_eq(vf_objects_create("tm", obj, NULL, &err), -EEXIST);
    ck_assert_int_eq(err.status, 409);
    ck_assert_str_eq(err.reason, "AlreadyExists");
    ck_assert_str_eq(err.message, "TestMachine \"vm1\" already exists");
    json_object_put(obj);

    /* The body's kind must be the URL's. */
    obj = vf_test_json("{\"kind\":\"FreeForm\",\"metadata\":{\"name\":\"x\"},\"spec\":{" GOOD_CPU
                       "}}");
    ck_assert_int_eq(vf_objects_create("tm", obj, NULL, &err), -EINVAL);
    ck_assert_int_eq(err.status, 400);
    ck_assert_str_eq(err.field, "kind");
    json_object_put(obj);

    /* Invalid bodies are never stored. */
    obj = vf_test_json("{\"metadata\":{\"name\":\"y\"},\"spec\":{\"cpu\":{\"type\":\"Foo\"}}}");
    ck_assert_int_eq(vf_objects_create("tm", obj, NULL, &err), -EINVAL);
    ck_assert_str_eq(err.field, "spec.cpu.type");
    ck_assert_int_eq(vf_store_count(st, "TestMachine"), 1);
    json_object_put(obj);
    ck_assert_int_eq(vf_objects_create("tm", NULL, NULL, &err), -EINVAL);
    ck_assert_int_eq(err.status, 400);

    /* List. */
    json_object_put(create_machine("vm0", "{" GOOD_CPU "}"));
    int64_t rev = 0;
    ck_assert_int_eq(vf_objects_list("tm", &items, &rev, &err), 0);
    ck_assert_uint_eq(json_object_array_length(items), 2);
    ck_assert_str_eq(vf_test_json_str(items, "0.metadata.name"), "vm0");
    ck_assert_int_eq(rev, 2);
    json_object_put(items);

    /* Update: stale, immutable, missing, then a good one. */
    struct json_object *cur = NULL;
    ck_assert_int_eq(vf_objects_get("tm", "vm1", &cur, &err), 0);
    json_object_object_add(json_object_object_get(cur, "spec"), "cores", json_object_new_int(8));
    json_object_object_add(json_object_object_get(cur, "metadata"), "resourceVersion",
                           json_object_new_string("1"));
    struct json_object *status = vf_test_json("{\"phase\":\"Running\"}");
    ck_assert_int_eq(vf_objects_update_status("tm", "vm1", status, &out, &err), 0);
    ck_assert_str_eq(vf_test_json_str(out, "status.phase"), "Running");
    ck_assert_int_eq(vf_object_revision(out), 3);
    json_object_put(out);
    ck_assert_int_eq(vf_objects_update_status("tm", "nope", status, NULL, &err), -ENOENT);
    ck_assert_int_eq(err.status, 404);
    json_object_put(status);
    ck_assert_int_eq(vf_objects_update("tm", cur, NULL, &err), -ESTALE);
    ck_assert_int_eq(err.status, 409);
    ck_assert_str_eq(err.reason, "Conflict");
    json_object_object_add(json_object_object_get(cur, "metadata"), "resourceVersion",
                           json_object_new_string("3"));
    ck_assert_int_eq(vf_objects_update("tm", cur, &out, &err), 0);
    ck_assert_int_eq(vf_test_json_int(out, "spec.cores"), 8);
    ck_assert_int_eq(vf_test_json_int(out, "metadata.generation"), 2);
    ck_assert_str_eq(vf_test_json_str(out, "status.phase"), "Running");
    json_object_put(out);
    json_object_object_add(json_object_object_get(cur, "spec"), "cores", json_object_new_int(99));
    ck_assert_int_eq(vf_objects_update("tm", cur, NULL, &err), -EINVAL);
    ck_assert_str_eq(err.field, "spec.cores");
    json_object_object_add(json_object_object_get(cur, "metadata"), "name",
                           json_object_new_string("ghost"));
    ck_assert_int_eq(vf_objects_update("tm", cur, NULL, &err), -ENOENT);
    ck_assert_str_eq(err.message, "TestMachine \"ghost\" not found");
    json_object_put(cur);

    /* Delete with a stale precondition, then for real. */
    ck_assert_int_eq(vf_objects_delete("tm", "vm1", 1, NULL, &err), -ESTALE);
    ck_assert_int_eq(vf_objects_delete("tm", "vm1", 0, &out, &err), 0);
    ck_assert_str_eq(vf_object_name(out), "vm1");
    json_object_put(out);
    ck_assert_int_eq(vf_objects_delete("tm", "vm1", 0, NULL, &err), -ENOENT);
    ck_assert_int_eq(err.status, 404);
}
END_TEST

START_TEST(test_objects_immutable_update)
{
    struct vf_error err = {0};
    struct json_object *vm = create_machine("vm1", "{" GOOD_CPU ",\"bootDisk\":\"root\"}");
    json_object_object_add(json_object_object_get(vm, "spec"), "bootDisk",
                           json_object_new_string("other"));
    ck_assert_int_eq(vf_objects_update("tm", vm, NULL, &err), -EINVAL);
    ck_assert_str_eq(err.field, "spec.bootDisk");
    ck_assert_msg(strstr(err.message, "immutable"), "%s", err.message);
    json_object_put(vm);
}
END_TEST

START_TEST(test_objects_store_missing)
{
    struct vf_error err = {0};
    struct json_object *out = NULL;
    vf_objects_set_store(NULL);
    ck_assert_ptr_null(vf_objects_store());
    ck_assert_int_eq(vf_objects_get("tm", "a", &out, &err), -ENODEV);
    ck_assert_int_eq(err.status, 503);
    vf_objects_set_store(st);
    ck_assert_ptr_eq(vf_objects_store(), st);
}
END_TEST

static struct json_object *patch_text(const char *name, const char *text, int expect,
                                      struct vf_error *err)
{
    struct json_object *p = vf_test_json(text), *out = NULL;
    memset(err, 0, sizeof *err);
    int r = vf_objects_patch("tm", name, p, &out, err);
    ck_assert_msg(r == expect, "patch %s: %d (%s)", text, r, err->message);
    json_object_put(p);
    return out;
}

START_TEST(test_merge_patch)
{
    struct vf_error err;
    json_object_put(create_machine(
        "vm1", "{\"cpu\":{\"type\":\"Model\",\"model\":\"EPYC\"},\"cores\":2,\"nodeSelector\":{"
               "\"zone\":\"a\",\"rack\":\"1\"},\"bootDisk\":\"root\"}"));

    /* Labels added; nested merge in spec; null removes. */
    struct json_object *out = patch_text(
        "vm1",
        "{\"metadata\":{\"labels\":{\"app\":\"web\",\"tier\":\"1\"}},\"spec\":{\"cores\":4,"
        "\"cpu\":{\"model\":null,\"type\":\"Host\"},\"nodeSelector\":{\"rack\":null}}}",
        0, &err);
    ck_assert_str_eq(vf_test_json_str(out, "metadata.labels.app"), "web");
    ck_assert_int_eq(vf_test_json_int(out, "spec.cores"), 4);
    ck_assert_str_eq(vf_test_json_str(out, "spec.cpu.type"), "Host");
    ck_assert_ptr_null(vf_test_json_at(out, "spec.cpu.model"));
    ck_assert_str_eq(vf_test_json_str(out, "spec.nodeSelector.zone"), "a");
    ck_assert_ptr_null(vf_test_json_at(out, "spec.nodeSelector.rack"));
    ck_assert_str_eq(vf_test_json_str(out, "spec.bootDisk"), "root");
    ck_assert_int_eq(vf_test_json_int(out, "metadata.generation"), 2);
    ck_assert_int_eq(vf_object_revision(out), 2);
    json_object_put(out);

    /* Labels only: generation stays; a label removed with null. */
    out = patch_text("vm1", "{\"metadata\":{\"labels\":{\"tier\":null},\"annotations\":{\"a\":"
                            "\"b\"},\"finalizers\":[\"virtfleet.io/x\"]}}",
                     0, &err);
    ck_assert_int_eq(vf_test_json_int(out, "metadata.generation"), 2);
    ck_assert_ptr_null(vf_test_json_at(out, "metadata.labels.tier"));
    ck_assert_str_eq(vf_test_json_str(out, "metadata.labels.app"), "web");
    ck_assert_str_eq(vf_test_json_str(out, "metadata.annotations.a"), "b");
    ck_assert_str_eq(vf_test_json_str(out, "metadata.finalizers.0"), "virtfleet.io/x");
    json_object_put(out);

    /* What a patch may not touch. */
    out = patch_text("vm1", "{\"status\":{\"phase\":\"Running\"}}", -EINVAL, &err);
    ck_assert_str_eq(err.field, "status");
    out = patch_text("vm1", "{\"metadata\":{\"name\":\"vm2\"}}", -EINVAL, &err);
    ck_assert_str_eq(err.field, "metadata.name");
    out = patch_text("vm1", "{\"metadata\":{\"uid\":\"x\"}}", -EINVAL, &err);
    ck_assert_str_eq(err.field, "metadata.uid");
    out = patch_text("vm1", "{\"bogus\":1}", -EINVAL, &err);
    ck_assert_str_eq(err.field, "bogus");
    /* Repeating the stored name is harmless. */
    json_object_put(patch_text("vm1", "{\"metadata\":{\"name\":\"vm1\"},\"apiVersion\":"
                                      "\"virtualization.deckhouse.io/v1alpha2\"}",
                               0, &err));

    /* The result is validated like any update. */
    out = patch_text("vm1", "{\"spec\":{\"cores\":100}}", -EINVAL, &err);
    ck_assert_str_eq(err.field, "spec.cores");
    out = patch_text("vm1", "{\"spec\":{\"bootDisk\":\"other\"}}", -EINVAL, &err);
    ck_assert_str_eq(err.field, "spec.bootDisk");
    out = patch_text("vm1", "{\"spec\":{\"cpu\":null}}", -EINVAL, &err);
    ck_assert_str_eq(err.field, "spec.cpu");
    out = patch_text("vm1", "{\"spec\":{\"typo\":1}}", -EINVAL, &err);
    ck_assert_str_eq(err.field, "spec.typo");
    out = patch_text("vm1", "{\"kind\":\"FreeForm\"}", -EINVAL, &err);
    ck_assert_str_eq(err.field, "kind");

    /* A resourceVersion in the patch is a precondition. */
    out = patch_text("vm1", "{\"metadata\":{\"resourceVersion\":\"1\"},\"spec\":{\"cores\":5}}",
                     -ESTALE, &err);
    ck_assert_int_eq(err.status, 409);
    out = patch_text("vm1", "{\"metadata\":{\"resourceVersion\":\"3\"},\"spec\":{\"cores\":5}}", 0,
                     &err);
    ck_assert_int_eq(vf_test_json_int(out, "spec.cores"), 5);
    json_object_put(out);

    /* Missing object, bad patch. */
    out = patch_text("ghost", "{\"spec\":{}}", -ENOENT, &err);
    ck_assert_int_eq(err.status, 404);
    out = patch_text("vm1", "[1]", -EINVAL, &err);
    ck_assert_int_eq(err.status, 400);

    /* Removing the last finalizer of an object being deleted deletes it. */
    struct json_object *got = NULL;
    ck_assert_int_eq(vf_objects_delete("tm", "vm1", 0, NULL, &err), 0);
    ck_assert_int_eq(vf_objects_get("tm", "vm1", &got, &err), 0);
    ck_assert_ptr_nonnull(vf_test_json_str(got, "metadata.deletionTimestamp"));
    json_object_put(got);
    json_object_put(patch_text("vm1", "{\"metadata\":{\"finalizers\":null}}", 0, &err));
    ck_assert_int_eq(vf_objects_get("tm", "vm1", &got, &err), -ENOENT);
}
END_TEST

static Suite *kinds_suite(void)
{
    Suite *s = suite_create("kinds");
#define ADD_CASE(name, fn, su, td)                   \
    do {                                             \
        TCase *tc = tcase_create(name);              \
        tcase_add_checked_fixture(tc, su, td);       \
        tcase_add_test(tc, fn);                      \
        suite_add_tcase(s, tc);                      \
    } while (0)
    ADD_CASE("lookup", test_lookup, setup_kinds, teardown_kinds);
    ADD_CASE("register_conflicts", test_register_conflicts, setup_kinds, teardown_kinds);
    ADD_CASE("dns_label", test_dns_label, setup_kinds, teardown_kinds);
    ADD_CASE("valid_object", test_valid_object_and_defaults, setup_kinds, teardown_kinds);
    ADD_CASE("unknown_field", test_unknown_field, setup_kinds, teardown_kinds);
    ADD_CASE("wrong_type", test_wrong_type, setup_kinds, teardown_kinds);
    ADD_CASE("missing_required", test_missing_required, setup_kinds, teardown_kinds);
    ADD_CASE("bad_enum", test_bad_enum, setup_kinds, teardown_kinds);
    ADD_CASE("immutable", test_immutable, setup_kinds, teardown_kinds);
    ADD_CASE("names", test_names, setup_kinds, teardown_kinds);
    ADD_CASE("labels", test_labels, setup_kinds, teardown_kinds);
    ADD_CASE("api_version_and_kind", test_api_version_and_kind, setup_kinds, teardown_kinds);
    ADD_CASE("hook", test_hook, setup_kinds, teardown_kinds);
    ADD_CASE("objects_errors", test_objects_errors, setup_objects, teardown_objects);
    ADD_CASE("objects_immutable", test_objects_immutable_update, setup_objects, teardown_objects);
    ADD_CASE("objects_no_store", test_objects_store_missing, setup_objects, teardown_objects);
    ADD_CASE("merge_patch", test_merge_patch, setup_objects, teardown_objects);
#undef ADD_CASE
    return s;
}

int main(void)
{
    return vf_test_run(kinds_suite());
}
