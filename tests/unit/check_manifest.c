/* The CLI's pure parts: manifest parsing (typing, limits, errors), and the
 * output formats (AGE, tables, YAML, jsonpath), request paths and kind
 * resolution.  TAP on stdout. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "testlib.h"
#include "cli/client.h"
#include "cli/jsonpath.h"
#include "cli/kinds_cache.h"
#include "cli/manifest.h"
#include "cli/render.h"

/* The seeds' examples, as an admin would paste them. */
static const char seed_vmop[] =
    "apiVersion: virtualization.deckhouse.io/v1alpha2\n"
    "kind: VirtualMachineOperation\n"
    "metadata:\n"
    "  generateName: evict-linux-vm-\n"
    "spec:\n"
    "  # Virtual machine name.\n"
    "  virtualMachineName: linux-vm\n"
    "  # An operation for the migration.\n"
    "  type: Evict\n";

static const char seed_classes[] =
    "---\n"
    "apiVersion: virtualization.deckhouse.io/v1alpha2\n"
    "kind: VirtualMachineClass\n"
    "metadata:\n"
    "  name: universal\n"
    "spec:\n"
    "  cpu:\n"
    "    discovery: {}\n"
    "    type: Discovery\n"
    "  sizingPolicies: { ... }\n"
    "---\n"
    "apiVersion: virtualization.deckhouse.io/v1alpha2\n"
    "kind: VirtualMachineClass\n"
    "metadata:\n"
    "  name: cpuX\n"
    "spec:\n"
    "  cpu:\n"
    "    discovery:\n"
    "      nodeSelector:\n"
    "        matchExpressions:\n"
    "          - key: group\n"
    "            operator: In\n"
    "            values: [\"blue\"]\n"
    "    type: Discovery\n"
    "  sizingPolicies: { ... }\n";

static const char seed_sizing[] =
    "spec:\n"
    "  sizingPolicies:\n"
    "    # For a range of 1-4 cores, it is possible to use 1-8 GB of RAM in 512Mi increments,\n"
    "    - cores:\n"
    "        min: 1\n"
    "        max: 4\n"
    "      memory:\n"
    "        min: 1Gi\n"
    "        max: 8Gi\n"
    "        step: 512Mi\n"
    "      coreFractions: [5, 10, 20, 50, 100]\n"
    "    - cores:\n"
    "        min: 17\n"
    "        max: 248\n"
    "      memory:\n"
    "        perCore:\n"
    "          min: 1Gi\n"
    "          max: 2Gi\n"
    "      coreFractions: [100]\n";

static char err[1024];

/* Parse text that must succeed. */
static void parse_ok(const char *text, struct vf_manifest *m)
{
    int rc = vf_manifest_parse("t.yaml", text, strlen(text), m, err, sizeof err);
    ck_assert_msg(rc == 0, "parse failed: %s", err);
}

/* Parse text that must fail; returns the error message. */
static const char *parse_fails(const char *text)
{
    struct vf_manifest m;
    int rc = vf_manifest_parse("t.yaml", text, strlen(text), &m, err, sizeof err);
    ck_assert_int_eq(rc, -1);
    ck_assert_ptr_null(m.docs);
    return err;
}

static struct json_object *at(struct vf_manifest *m, size_t doc, const char *path)
{
    ck_assert_uint_gt(m->n, doc);
    return vf_render_lookup(m->docs[doc].obj, path);
}

/* ---- scalar typing --------------------------------------------------- */

START_TEST(test_classify)
{
    ck_assert_int_eq(vf_manifest_classify("", 0), VF_YAML_NULL);
    ck_assert_int_eq(vf_manifest_classify("~", 1), VF_YAML_NULL);
    ck_assert_int_eq(vf_manifest_classify("NULL", 4), VF_YAML_NULL);
    ck_assert_int_eq(vf_manifest_classify("True", 4), VF_YAML_BOOL);
    ck_assert_int_eq(vf_manifest_classify("FALSE", 5), VF_YAML_BOOL);
    ck_assert_int_eq(vf_manifest_classify("yes", 3), VF_YAML_STRING);     /* YAML 1.1 only */
    ck_assert_int_eq(vf_manifest_classify("-12", 3), VF_YAML_INT);
    ck_assert_int_eq(vf_manifest_classify("0x1F", 4), VF_YAML_INT);
    ck_assert_int_eq(vf_manifest_classify("0o17", 4), VF_YAML_INT);
    ck_assert_int_eq(vf_manifest_classify("0o18", 4), VF_YAML_STRING);
    ck_assert_int_eq(vf_manifest_classify("1.5e3", 5), VF_YAML_FLOAT);
    ck_assert_int_eq(vf_manifest_classify(".5", 2), VF_YAML_FLOAT);
    ck_assert_int_eq(vf_manifest_classify("1e", 2), VF_YAML_STRING);
    ck_assert_int_eq(vf_manifest_classify("-.inf", 5), VF_YAML_SPECIAL_FLOAT);
    ck_assert_int_eq(vf_manifest_classify(".NaN", 4), VF_YAML_SPECIAL_FLOAT);
    ck_assert_int_eq(vf_manifest_classify("512Mi", 5), VF_YAML_STRING);
    ck_assert_int_eq(vf_manifest_classify("10.66.10.0/24", 13), VF_YAML_STRING);
    ck_assert_int_eq(vf_manifest_classify("1.2.3", 5), VF_YAML_STRING);
}
END_TEST

START_TEST(test_scalar_typing)
{
    struct vf_manifest m;
    parse_ok("a: ~\nb:\nc: true\nd: False\ne: 42\nf: -7\ng: 0x10\nh: 0o17\ni: 2.5\n"
             "j: 1e3\nk: 50G\nl: \"true\"\nm: '42'\nn: 99999999999999999999\n"
             "o: !!str 12\np: 9223372036854775807\nq: -9223372036854775808\nr: |\n  line\n", &m);
    ck_assert_uint_eq(m.n, 1);
    ck_assert_ptr_null(at(&m, 0, "a"));
    ck_assert(json_object_object_get_ex(m.docs[0].obj, "b", NULL));
    ck_assert_ptr_null(at(&m, 0, "b"));
    ck_assert(json_object_is_type(at(&m, 0, "c"), json_type_boolean));
    ck_assert(json_object_get_boolean(at(&m, 0, "c")));
    ck_assert(!json_object_get_boolean(at(&m, 0, "d")));
    ck_assert(json_object_is_type(at(&m, 0, "e"), json_type_int));
    ck_assert_int_eq(json_object_get_int64(at(&m, 0, "e")), 42);
    ck_assert_int_eq(json_object_get_int64(at(&m, 0, "f")), -7);
    ck_assert_int_eq(json_object_get_int64(at(&m, 0, "g")), 16);
    ck_assert_int_eq(json_object_get_int64(at(&m, 0, "h")), 15);
    ck_assert(json_object_is_type(at(&m, 0, "i"), json_type_double));
    ck_assert_double_eq(json_object_get_double(at(&m, 0, "i")), 2.5);
    ck_assert_double_eq(json_object_get_double(at(&m, 0, "j")), 1000.0);
    ck_assert_str_eq(json_object_get_string(at(&m, 0, "k")), "50G");
    ck_assert(json_object_is_type(at(&m, 0, "l"), json_type_string));
    ck_assert_str_eq(json_object_get_string(at(&m, 0, "l")), "true");
    ck_assert(json_object_is_type(at(&m, 0, "m"), json_type_string));
    /* Overflow keeps the text rather than a wrong number. */
    ck_assert(json_object_is_type(at(&m, 0, "n"), json_type_string));
    ck_assert_str_eq(json_object_get_string(at(&m, 0, "n")), "99999999999999999999");
    ck_assert(json_object_is_type(at(&m, 0, "o"), json_type_string));
    ck_assert_int_eq(json_object_get_int64(at(&m, 0, "p")), INT64_MAX);
    ck_assert_int_eq(json_object_get_int64(at(&m, 0, "q")), INT64_MIN);
    ck_assert_str_eq(json_object_get_string(at(&m, 0, "r")), "line\n");
    vf_manifest_free(&m);
}
END_TEST

START_TEST(test_special_floats_refused)
{
    ck_assert_str_eq(parse_fails("a: 1\nb: .inf\n"), "t.yaml:2:4: \".inf\" has no JSON form; quote it to send a string");
}
END_TEST

START_TEST(test_unknown_tag_refused)
{
    ck_assert_ptr_nonnull(strstr(parse_fails("a: !Ref x\n"), "t.yaml:1:4: tag \"!Ref\""));
}
END_TEST

/* ---- structure ------------------------------------------------------- */

START_TEST(test_nested)
{
    struct vf_manifest m;
    struct json_object *v;
    parse_ok("spec:\n  list:\n    - a\n    - {x: 1, y: [true, null]}\n    - - nested\n  empty: {}\n  none: []\n", &m);
    v = at(&m, 0, "spec.list");
    ck_assert(json_object_is_type(v, json_type_array));
    ck_assert_uint_eq(json_object_array_length(v), 3);
    ck_assert_str_eq(json_object_get_string(at(&m, 0, "spec.list[0]")), "a");
    ck_assert_int_eq(json_object_get_int64(at(&m, 0, "spec.list[1].x")), 1);
    ck_assert(json_object_get_boolean(at(&m, 0, "spec.list[1].y[0]")));
    ck_assert_uint_eq(json_object_array_length(at(&m, 0, "spec.list[1].y")), 2);
    ck_assert_str_eq(json_object_get_string(at(&m, 0, "spec.list[2][0]")), "nested");
    ck_assert(json_object_is_type(at(&m, 0, "spec.empty"), json_type_object));
    ck_assert_uint_eq(json_object_array_length(at(&m, 0, "spec.none")), 0);
    vf_manifest_free(&m);
}
END_TEST

START_TEST(test_json_input)
{
    struct vf_manifest m;
    parse_ok("{\"kind\": \"VirtualMachine\", \"metadata\": {\"name\": \"a\"}, \"spec\": {\"cores\": 2, \"on\": false}}", &m);
    ck_assert_uint_eq(m.n, 1);
    ck_assert_str_eq(json_object_get_string(at(&m, 0, "kind")), "VirtualMachine");
    ck_assert_int_eq(json_object_get_int64(at(&m, 0, "spec.cores")), 2);
    ck_assert(json_object_is_type(at(&m, 0, "spec.on"), json_type_boolean));
    vf_manifest_free(&m);
}
END_TEST

START_TEST(test_multi_document)
{
    struct vf_manifest m;
    parse_ok("# leading comment\n---\na: 1\n---\n# only a comment\n---\n---\nb: 2\n...\n---\nc: 3\n", &m);
    ck_assert_uint_eq(m.n, 3);
    ck_assert_int_eq(json_object_get_int64(at(&m, 0, "a")), 1);
    ck_assert_int_eq(json_object_get_int64(at(&m, 1, "b")), 2);
    ck_assert_int_eq(json_object_get_int64(at(&m, 2, "c")), 3);
    ck_assert_uint_eq(m.docs[0].line, 3);
    ck_assert_uint_eq(m.docs[1].line, 8);
    ck_assert_uint_eq(m.docs[2].line, 11);
    vf_manifest_free(&m);

    parse_ok("", &m);
    ck_assert_uint_eq(m.n, 0);
    vf_manifest_free(&m);
}
END_TEST

START_TEST(test_aliases_refused)
{
    ck_assert_str_eq(parse_fails("a: &x [1, 2]\nb: *x\n"),
                     "t.yaml:2:4: aliases (*x) are not allowed; write the value out in full");
    /* The billion-laughs shape fails at the first alias. */
    ck_assert_ptr_nonnull(strstr(parse_fails("a: &a [\"lol\",\"lol\"]\nb: &b [*a,*a,*a]\nc: [*b,*b]\n"),
                                 "t.yaml:2:8: aliases"));
}
END_TEST

START_TEST(test_duplicate_keys_refused)
{
    ck_assert_str_eq(parse_fails("metadata:\n  name: a\n  labels: {}\n  name: b\n"),
                     "t.yaml:4:3: duplicate key \"name\"");
    ck_assert_str_eq(parse_fails("{\"a\": 1, \"a\": 2}"), "t.yaml:1:10: duplicate key \"a\"");
}
END_TEST

START_TEST(test_complex_key_refused)
{
    ck_assert_ptr_nonnull(strstr(parse_fails("? [a, b]\n: c\n"), "t.yaml:1:3: a key must be a plain value"));
}
END_TEST

static char *nested(int depth)
{
    char *s = malloc((size_t)depth * 2 + 1);
    ck_assert_ptr_nonnull(s);
    memset(s, '[', (size_t)depth);
    memset(s + depth, ']', (size_t)depth);
    s[depth * 2] = '\0';
    return s;
}

START_TEST(test_depth_limit)
{
    struct vf_manifest m;
    char *ok = nested(VF_MANIFEST_MAX_DEPTH);
    char *deep = nested(VF_MANIFEST_MAX_DEPTH + 1);
    char expect[128];

    parse_ok(ok, &m);
    ck_assert_uint_eq(m.n, 1);
    vf_manifest_free(&m);
    snprintf(expect, sizeof expect, "t.yaml:1:%d: nested deeper than %d levels", VF_MANIFEST_MAX_DEPTH + 1,
             VF_MANIFEST_MAX_DEPTH);
    ck_assert_str_eq(parse_fails(deep), expect);
    free(ok);
    free(deep);
}
END_TEST

START_TEST(test_syntax_error_position)
{
    ck_assert_str_eq(parse_fails("kind: VirtualMachine\nspec:\n  cpu: x\n   type: Host\n"),
                     "t.yaml:4:8: mapping values are not allowed in this context");
    ck_assert_ptr_nonnull(strstr(parse_fails("a: [1, 2\n"), "t.yaml:2:1: did not find expected ',' or ']'"));
}
END_TEST

START_TEST(test_size_limit)
{
    char path[] = "/tmp/check_manifest_XXXXXX";
    int fd = mkstemp(path);
    struct vf_manifest m;
    FILE *f;

    ck_assert_int_ge(fd, 0);
    f = fdopen(fd, "w");
    ck_assert_ptr_nonnull(f);
    /* A valid comment one byte too long: only the size can be the problem. */
    fputc('#', f);
    for (size_t i = 1; i < VF_MANIFEST_MAX_BYTES + 1; i++)
        fputc('x', f);
    fclose(f);
    ck_assert_int_eq(vf_manifest_load(path, &m, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "larger than 16 MiB"));
    ck_assert_int_eq(vf_manifest_load("/nonexistent/x.yaml", &m, err, sizeof err), -1);
    ck_assert_str_eq(err, "/nonexistent/x.yaml: No such file or directory");
    unlink(path);
}
END_TEST

START_TEST(test_seed_examples)
{
    struct vf_manifest m;

    parse_ok(seed_vmop, &m);
    ck_assert_uint_eq(m.n, 1);
    ck_assert_str_eq(json_object_get_string(at(&m, 0, "apiVersion")), "virtualization.deckhouse.io/v1alpha2");
    ck_assert_str_eq(json_object_get_string(at(&m, 0, "metadata.generateName")), "evict-linux-vm-");
    ck_assert_str_eq(json_object_get_string(at(&m, 0, "spec.type")), "Evict");
    ck_assert_str_eq(json_object_get_string(at(&m, 0, "spec.virtualMachineName")), "linux-vm");
    vf_manifest_free(&m);

    parse_ok(seed_classes, &m);
    ck_assert_uint_eq(m.n, 2);
    ck_assert_str_eq(json_object_get_string(at(&m, 0, "metadata.name")), "universal");
    ck_assert_uint_eq(json_object_object_length(at(&m, 0, "spec.cpu.discovery")), 0);
    /* "{ ... }" is a mapping whose one key is "..." */
    ck_assert(json_object_object_get_ex(at(&m, 0, "spec.sizingPolicies"), "...", NULL));
    ck_assert_str_eq(json_object_get_string(at(&m, 1, "spec.cpu.discovery.nodeSelector.matchExpressions[0].values[0]")),
                     "blue");
    ck_assert_uint_eq(m.docs[1].line, 12);
    vf_manifest_free(&m);

    parse_ok(seed_sizing, &m);
    ck_assert_int_eq(json_object_get_int64(at(&m, 0, "spec.sizingPolicies[1].cores.max")), 248);
    ck_assert_str_eq(json_object_get_string(at(&m, 0, "spec.sizingPolicies[0].memory.step")), "512Mi");
    ck_assert_int_eq(json_object_get_int64(at(&m, 0, "spec.sizingPolicies[0].coreFractions[4]")), 100);
    vf_manifest_free(&m);
}
END_TEST

/* ---- output ---------------------------------------------------------- */

START_TEST(test_age)
{
    static const struct { long secs; const char *want; } cases[] = {
        { -5, "<invalid>" }, { -1, "0s" }, { 0, "0s" }, { 5, "5s" }, { 119, "119s" },
        { 120, "2m" }, { 200, "3m20s" }, { 599, "9m59s" }, { 600, "10m" }, { 79 * 60, "79m" },
        { 179 * 60 + 59, "179m" }, { 3 * 3600, "3h" }, { 2 * 3600 * 2 + 5 * 60, "4h5m" },
        { 8 * 3600, "8h" }, { 23 * 3600, "23h" }, { 47 * 3600 + 3599, "47h" }, { 48 * 3600, "2d" },
        { 6 * 86400 + 3600, "6d1h" }, { 8 * 86400, "8d" }, { 45 * 86400, "45d" },
        { 729L * 86400, "729d" }, { 731L * 86400, "2y1d" }, { 3650L * 86400, "10y" },
    };
    char buf[32];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        vf_render_age(1000000000 + cases[i].secs, 1000000000, buf, sizeof buf);
        ck_assert_msg(strcmp(buf, cases[i].want) == 0, "%lds: got %s, want %s", cases[i].secs, buf, cases[i].want);
    }
}
END_TEST

START_TEST(test_parse_time)
{
    time_t t;
    ck_assert_int_eq(vf_render_parse_time("1970-01-01T00:01:40Z", &t), 0);
    ck_assert_int_eq((long)t, 100);
    ck_assert_int_eq(vf_render_parse_time("2024-05-01T10:00:00.123456Z", &t), 0);
    ck_assert_int_eq((long)t, 1714557600);
    ck_assert_int_eq(vf_render_parse_time("2024-05-01T12:30:00+02:30", &t), 0);
    ck_assert_int_eq((long)t, 1714557600);
    ck_assert_int_eq(vf_render_parse_time("2024-05-01 10:00:00", &t), -1);
    ck_assert_int_eq(vf_render_parse_time("2024-13-01T10:00:00Z", &t), -1);
    ck_assert_int_eq(vf_render_parse_time("2024-05-01T10:00:00", &t), -1);
    ck_assert_int_eq(vf_render_parse_time(NULL, &t), -1);
}
END_TEST

static char *render_table(struct vf_table *t)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_ptr_nonnull(f);
    vf_table_flush(t, f);
    fclose(f);
    return buf;
}

START_TEST(test_table)
{
    static const char *const headers[] = { "NAME", "PHASE", "PROGRESS", "AGE" };
    static const char *const r1[] = { "ubuntu-22-04", "Provisioning", "", "4s" };
    static const char *const r2[] = { "ubuntu-22-04", "Provisioning", "28.2%", "6s" };
    static const char *const r3[] = { "a-much-longer-name-here", "Ready", "100%", "10s" };
    static const char *const r4[] = { "x\033[2J", "", "", "" };
    struct vf_table *t = vf_table_new(4, headers);
    char *out;

    /* Nothing pending: not even a header (the caller says "No resources found."). */
    out = render_table(t);
    ck_assert_str_eq(out, "");
    free(out);

    vf_table_add_row(t, r1);
    vf_table_add_row(t, r2);
    ck_assert_uint_eq(vf_table_pending(t), 2);
    out = render_table(t);
    ck_assert_str_eq(out,
                     "NAME           PHASE          PROGRESS   AGE\n"
                     "ubuntu-22-04   Provisioning              4s\n"
                     "ubuntu-22-04   Provisioning   28.2%      6s\n");
    free(out);
    ck_assert_uint_eq(vf_table_pending(t), 0);

    /* A watch row: no second header; widths grow only when they must. */
    vf_table_add_row(t, r3);
    out = render_table(t);
    ck_assert_str_eq(out, "a-much-longer-name-here   Ready          100%       10s\n");
    free(out);

    /* Control characters cannot reach the terminal; no trailing blanks. */
    vf_table_add_row(t, r4);
    out = render_table(t);
    ck_assert_str_eq(out, "x?[2J\n");
    free(out);
    vf_table_free(t);
}
END_TEST

START_TEST(test_table_for_kind)
{
    struct vf_column cols[] = { { "PHASE", "status.phase" }, { "NODE", "status.node" },
                                { "IPADDRESS", "status.ipAddress" } };
    struct json_object *vm = vf_test_json(
        "{\"metadata\":{\"name\":\"linux-vm\",\"creationTimestamp\":\"2024-05-01T10:00:00Z\","
        "\"labels\":{\"app\":\"web\",\"tier\":\"db\"}},"
        "\"status\":{\"phase\":\"Running\",\"node\":\"virtlab-pt-1\",\"ipAddress\":\"10.66.10.14\"}}");
    time_t created;
    struct vf_table *t = vf_table_for_kind(cols, 3, false);
    char *out;

    ck_assert_int_eq(vf_render_parse_time("2024-05-01T10:00:00Z", &created), 0);
    vf_table_add_object(t, vm, cols, 3, false, created + 79 * 60);
    out = render_table(t);
    ck_assert_str_eq(out,
                     "NAME       PHASE     NODE           IPADDRESS     AGE\n"
                     "linux-vm   Running   virtlab-pt-1   10.66.10.14   79m\n");
    free(out);
    vf_table_free(t);

    t = vf_table_for_kind(cols, 3, true);
    vf_table_add_object(t, vm, cols, 3, true, created + 23 * 3600);
    out = render_table(t);
    ck_assert_ptr_nonnull(strstr(out, "IPADDRESS     LABELS            AGE\n"));
    ck_assert_ptr_nonnull(strstr(out, "10.66.10.14   app=web,tier=db   23h\n"));
    free(out);
    vf_table_free(t);
    json_object_put(vm);
}
END_TEST

START_TEST(test_cells_and_lookup)
{
    struct json_object *o = vf_test_json(
        "{\"a\":{\"b\":[1,\"two\",true,null],\"c\":2.5,\"d\":false},"
        "\"labels\":{\"cpu-model.node.virtualization.deckhouse.io/Nehalem\":\"true\"}}");
    char *s;

    s = vf_render_cell(vf_render_lookup(o, ".a.b"));
    ck_assert_str_eq(s, "1,two,true,");
    free(s);
    s = vf_render_cell(vf_render_lookup(o, "a.c"));
    ck_assert_str_eq(s, "2.5");
    free(s);
    s = vf_render_cell(vf_render_lookup(o, "a.d"));
    ck_assert_str_eq(s, "false");
    free(s);
    s = vf_render_cell(vf_render_lookup(o, "a.missing"));
    ck_assert_str_eq(s, "");
    free(s);
    ck_assert_str_eq(json_object_get_string(vf_render_lookup(o, "a.b[1]")), "two");
    ck_assert_ptr_null(vf_render_lookup(o, "a.b[9]"));
    ck_assert_ptr_null(vf_render_lookup(o, "a.c.x"));
    ck_assert_str_eq(json_object_get_string(
                         vf_render_lookup(o, "labels.cpu-model\\.node\\.virtualization\\.deckhouse\\.io/Nehalem")),
                     "true");
    json_object_put(o);
}
END_TEST

static char *to_yaml(struct json_object *o)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(vf_render_yaml(f, o), 0);
    fclose(f);
    return buf;
}

START_TEST(test_yaml_output)
{
    struct json_object *o = vf_test_json(
        "{\"kind\":\"VirtualMachine\",\"metadata\":{\"name\":\"linux-vm\",\"resourceVersion\":\"12\"},"
        "\"spec\":{\"s\":[\"true\",\"null\",\"\",\"0x10\",\"1.5\",\"~\",\"plain\",\"a: b\",\"- x\"],"
        "\"n\":7,\"f\":0.5,\"b\":false,\"z\":null,\"e\":{},\"l\":[],\"multi\":\"one\\ntwo\\n\","
        "\"url\":\"https://example.com/x\"}}");
    char *y = to_yaml(o);
    struct vf_manifest m;

    ck_assert_ptr_nonnull(strstr(y, "kind: VirtualMachine\n"));
    ck_assert_ptr_nonnull(strstr(y, "  resourceVersion: \"12\"\n"));
    ck_assert_ptr_nonnull(strstr(y, "  - \"true\"\n"));
    ck_assert_ptr_nonnull(strstr(y, "  - plain\n"));
    ck_assert_ptr_nonnull(strstr(y, "  n: 7\n"));
    ck_assert_ptr_nonnull(strstr(y, "  multi: |\n    one\n    two\n"));
    ck_assert_ptr_nonnull(strstr(y, "  url: https://example.com/x\n"));
    /* What get -o yaml prints, apply -f reads back as the same object. */
    parse_ok(y, &m);
    ck_assert_uint_eq(m.n, 1);
    ck_assert_msg(json_object_equal(o, m.docs[0].obj), "round trip differs:\n%s", y);
    vf_manifest_free(&m);
    free(y);
    json_object_put(o);
}
END_TEST

/* The printing side of -o jsonpath; the dialect itself is check_jsonpath's. */
START_TEST(test_jsonpath)
{
    struct json_object *o = vf_test_json(
        "{\"metadata\":{\"name\":\"some-image\"},\"status\":{\"imageUploadURLs\":"
        "{\"external\":\"https://virtualization.example.com/upload/g2Ou\",\"inCluster\":\"http://10.222.165.239/upload\"}}}");
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    struct vf_jsonpath *a = vf_jsonpath_parse("{.status.imageUploadURLs}", err, sizeof err);
    struct vf_jsonpath *b = vf_jsonpath_parse("|{.metadata.name}{\"\\t\"}{.status.nothing}{\"\\n\"}", err, sizeof err);

    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(vf_render_jsonpath(f, o, a), 0);
    ck_assert_int_eq(vf_render_jsonpath(f, o, b), 0);
    fclose(f);
    ck_assert_str_eq(buf, "{\"external\":\"https://virtualization.example.com/upload/g2Ou\","
                          "\"inCluster\":\"http://10.222.165.239/upload\"}|some-image\t\n");
    free(buf);
    ck_assert_ptr_null(vf_jsonpath_parse("{status}", err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "expected a path"));
    ck_assert_ptr_null(vf_jsonpath_parse("{\"open", err, sizeof err));
    vf_jsonpath_free(a);
    vf_jsonpath_free(b);
    json_object_put(o);
}
END_TEST

START_TEST(test_describe)
{
    struct json_object *o = vf_test_json(
        "{\"apiVersion\":\"virtfleet.io/v1alpha2\",\"kind\":\"VirtualMachine\","
        "\"metadata\":{\"name\":\"linux-vm\",\"creationTimestamp\":\"1970-01-01T00:00:00Z\",\"labels\":{\"a\":\"b\",\"c\":\"d\"}},"
        "\"spec\":{\"virtualMachineClassName\":\"generic\"},"
        "\"status\":{\"phase\":\"Running\",\"node\":\"n1\",\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\","
        "\"reason\":\"Up\",\"message\":\"ok\"}]}}");
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    ck_assert_int_eq(vf_render_describe(f, o, 300), 0);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(buf, "Name:             linux-vm\n"));
    ck_assert_ptr_nonnull(strstr(buf, "Labels:           a=b\n                  c=d\n"));
    ck_assert_ptr_nonnull(strstr(buf, "Created:          1970-01-01T00:00:00Z (5m ago)\n"));
    ck_assert_ptr_nonnull(strstr(buf, "Spec:\n  virtualMachineClassName: generic\n"));
    ck_assert_ptr_nonnull(strstr(buf, "Status:\n  Phase: Running\n  node: n1\n"));
    ck_assert_ptr_nonnull(strstr(buf, "  Conditions:\n    TYPE    STATUS   REASON   MESSAGE\n"
                                      "    Ready   True     Up       ok\n"));
    free(buf);
    json_object_put(o);
}
END_TEST

/* ---- requests and kinds ---------------------------------------------- */

START_TEST(test_paths)
{
    char *p;

    p = vf_client_path("virtualmachines", NULL, NULL, false, NULL);
    ck_assert_str_eq(p, "/apis/virtfleet.io/v1alpha2/virtualmachines");
    free(p);
    p = vf_client_path("virtualmachines", "linux-vm", NULL, false, NULL);
    ck_assert_str_eq(p, "/apis/virtfleet.io/v1alpha2/virtualmachines/linux-vm");
    free(p);
    p = vf_client_path("virtualmachines", NULL, "app=web,tier!=db", true, "42");
    ck_assert_str_eq(p, "/apis/virtfleet.io/v1alpha2/virtualmachines"
                        "?labelSelector=app%3Dweb%2Ctier%21%3Ddb&watch=1&resourceVersion=42");
    free(p);
    p = vf_client_path("nodes", NULL, NULL, true, NULL);
    ck_assert_str_eq(p, "/apis/virtfleet.io/v1alpha2/nodes?watch=1");
    free(p);
    /* A name cannot climb out of its collection or add a query. */
    p = vf_client_path("nodes", "../x?watch=1 #", NULL, false, NULL);
    ck_assert_str_eq(p, "/apis/virtfleet.io/v1alpha2/nodes/..%2Fx%3Fwatch%3D1%20%23");
    free(p);
    p = vf_client_escape("a-b_c.d~é");
    ck_assert_str_eq(p, "a-b_c.d~%C3%A9");
    free(p);
}
END_TEST

START_TEST(test_kinds_cache)
{
    struct json_object *d = vf_test_json(
        "{\"resources\":[{\"kind\":\"VirtualMachine\",\"plural\":\"virtualmachines\",\"singular\":\"virtualmachine\","
        "\"shortNames\":[\"vm\"],\"columns\":[[\"PHASE\",\"status.phase\"],[\"NODE\",\"status.node\"],[\"BAD\"]]},"
        "{\"kind\":\"ClusterVirtualImage\",\"plural\":\"clustervirtualimages\",\"shortNames\":[\"cvi\"]},"
        "{\"plural\":\"orphans\"}]}");
    struct vf_kinds_cache kc = { 0 };
    const struct vf_kind_info *k;
    char *names;

    ck_assert_int_eq(vf_kinds_cache_parse(&kc, d, err, sizeof err), 0);
    ck_assert_uint_eq(kc.n, 2);
    k = vf_kinds_cache_find(&kc, "VM");
    ck_assert_ptr_nonnull(k);
    ck_assert_str_eq(k->plural, "virtualmachines");
    ck_assert_uint_eq(k->n_columns, 2);
    ck_assert_str_eq(k->columns[1].path, "status.node");
    ck_assert_ptr_eq(vf_kinds_cache_find(&kc, "VirtualMachines"), k);
    ck_assert_ptr_eq(vf_kinds_cache_find(&kc, "virtualmachine"), k);
    k = vf_kinds_cache_find(&kc, "clustervirtualimage");
    ck_assert_ptr_nonnull(k);
    ck_assert_str_eq(k->singular, "clustervirtualimage");
    ck_assert_ptr_null(vf_kinds_cache_find(&kc, "pod"));
    names = vf_kinds_cache_names(&kc);
    ck_assert_str_eq(names, "virtualmachines (vm), clustervirtualimages (cvi)");
    free(names);
    vf_kinds_cache_clear(&kc);
    json_object_put(d);

    d = vf_test_json("{\"kinds\":[]}");
    ck_assert_int_eq(vf_kinds_cache_parse(&kc, d, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "no \"resources\""));
    json_object_put(d);
}
END_TEST

/* One TCase per behaviour, named after it (a macro: the test's type differs
 * between Check releases). */
#define ADD(s, test) do {                            \
        TCase *tc_ = tcase_create(#test + 5);        \
        tcase_add_test(tc_, test);                   \
        suite_add_tcase((s), tc_);                   \
    } while (0)

int main(void)
{
    Suite *s = suite_create("cli");

    ADD(s, test_classify);
    ADD(s, test_scalar_typing);
    ADD(s, test_special_floats_refused);
    ADD(s, test_unknown_tag_refused);
    ADD(s, test_nested);
    ADD(s, test_json_input);
    ADD(s, test_multi_document);
    ADD(s, test_aliases_refused);
    ADD(s, test_duplicate_keys_refused);
    ADD(s, test_complex_key_refused);
    ADD(s, test_depth_limit);
    ADD(s, test_syntax_error_position);
    ADD(s, test_size_limit);
    ADD(s, test_seed_examples);
    ADD(s, test_age);
    ADD(s, test_parse_time);
    ADD(s, test_table);
    ADD(s, test_table_for_kind);
    ADD(s, test_cells_and_lookup);
    ADD(s, test_yaml_output);
    ADD(s, test_jsonpath);
    ADD(s, test_describe);
    ADD(s, test_paths);
    ADD(s, test_kinds_cache);

    return vf_test_run(s);
}
