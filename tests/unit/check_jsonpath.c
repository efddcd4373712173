/* kubectl's JSONPath dialect (cli/jsonpath.c) as -o jsonpath prints it
 * (cli/render.c): every feature on the kubernetes.io documentation's example
 * and on a List of VirtualDisks, and every refusal with its message.  Each
 * row of the tables is a test of its own.  TAP on stdout. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testlib.h"
#include "cli/jsonpath.h"
#include "cli/render.h"

/* The input of kubernetes.io's "JSONPath Support" page. */
static const char doc_k8s[] =
    "{\"kind\":\"List\",\"items\":["
    "{\"kind\":\"None\",\"metadata\":{\"name\":\"127.0.0.1\",\"labels\":{\"kubernetes.io/hostname\":\"127.0.0.1\"}},"
    "\"status\":{\"capacity\":{\"cpu\":\"4\"},\"addresses\":[{\"type\":\"LegacyHostIP\",\"address\":\"127.0.0.1\"}]}},"
    "{\"kind\":\"None\",\"metadata\":{\"name\":\"127.0.0.2\"},"
    "\"status\":{\"capacity\":{\"cpu\":\"8\"},\"addresses\":[{\"type\":\"LegacyHostIP\",\"address\":\"127.0.0.2\"},"
    "{\"type\":\"another\",\"address\":\"127.0.0.3\"}]}}],"
    "\"users\":[{\"name\":\"myself\",\"user\":{}},{\"name\":\"e2e\",\"user\":{\"username\":\"admin\",\"password\":\"secret\"}}]}";

/* What `virtfleet get vd -o jsonpath=...` sees: a List (print_set) of VirtualDisks. */
static const char doc_vd[] =
    "{\"apiVersion\":\"virtfleet.io/v1alpha2\",\"kind\":\"List\",\"metadata\":{\"resourceVersion\":\"42\"},\"items\":["
    "{\"kind\":\"VirtualDisk\",\"metadata\":{\"name\":\"disk-a\",\"labels\":{\"virtfleet.io/x\":\"one\",\"app\":\"web\"}},"
    "\"spec\":{\"persistentVolumeClaim\":{\"size\":\"10Gi\"}},"
    "\"status\":{\"phase\":\"Ready\",\"conditions\":[{\"type\":\"DatasourceReady\",\"status\":\"True\",\"reason\":\"Completed\"},"
    "{\"type\":\"Ready\",\"status\":\"True\",\"reason\":\"Ready\"}]}},"
    "{\"kind\":\"VirtualDisk\",\"metadata\":{\"name\":\"disk-b\",\"labels\":{\"app\":\"db\"}},"
    "\"status\":{\"phase\":\"Provisioning\",\"conditions\":[{\"type\":\"Ready\",\"status\":\"False\","
    "\"reason\":\"Provisioning\",\"message\":\"Importing\"}]}}]}";

/* Values of every type, for slices, comparisons and printing. */
static const char doc_values[] =
    "{\"a\":[0,1,2,3,4,5],"
    "\"n\":[{\"v\":1},{\"v\":2.5},{\"v\":\"3\"},{\"v\":true},{\"v\":null},{\"w\":1}],"
    "\"s\":\"x\\ny\",\"b\":false,\"z\":null,\"o\":{\"k\":[1,{\"x\":\"y/z\"}]},"
    "\"dot\":{\"a.b\":{\"c\":1},\"a\":{\"b\":{\"c\":2}}},\"\":\"empty key\"}";

struct ok_case {
    const char *doc;
    const char *tmpl;
    const char *want;
};

static const struct ok_case ok_cases[] = {
    /* The documentation's table, objects printed as JSON rather than Go's map[...]. */
    { doc_k8s, "kind is {.kind}", "kind is List" },
    { doc_k8s, "{['kind']}", "List" },
    { doc_k8s, "{[\"kind\"]}", "List" },
    { doc_k8s, "{..name}", "127.0.0.1 127.0.0.2 myself e2e" },
    { doc_k8s, "{.items[*].metadata.name}", "127.0.0.1 127.0.0.2" },
    { doc_k8s, "{.users[0].name}", "myself" },
    { doc_k8s, "{.items[*]['metadata.name', 'status.capacity']}",
      "127.0.0.1 127.0.0.2 {\"cpu\":\"4\"} {\"cpu\":\"8\"}" },
    { doc_k8s, "{.users[?(@.name==\"e2e\")].user.password}", "secret" },
    { doc_k8s, "{range .items[*]}[{.metadata.name}, {.status.capacity}] {end}",
      "[127.0.0.1, {\"cpu\":\"4\"}] [127.0.0.2, {\"cpu\":\"8\"}] " },
    { doc_k8s, "{.items[-1:].metadata.name}", "127.0.0.2" },
    { doc_k8s, "{.items[0].metadata.labels.kubernetes\\.io/hostname}", "127.0.0.1" },
    { doc_k8s, "{.items[0].metadata.labels['kubernetes\\.io/hostname']}", "127.0.0.1" },
    /* Roots and the current object. */
    { doc_k8s, "{$.kind}", "List" },
    { doc_k8s, "{@.kind}", "List" },
    { doc_k8s, "{$['kind']}", "List" },
    { doc_k8s, "{range .items[*]}{$.kind}/{.kind}/{@.kind} {end}", "List/None/None List/None/None " },
    { doc_k8s, "{range .users[*]}{@}{end}",
      "{\"name\":\"myself\",\"user\":{}}{\"name\":\"e2e\",\"user\":{\"username\":\"admin\",\"password\":\"secret\"}}" },
    /* Indexes: negative ones count from the end and do not wrap around. */
    { doc_k8s, "{.items[-1].metadata.name}", "127.0.0.2" },
    { doc_k8s, "{.items[-2].metadata.name}", "127.0.0.1" },
    { doc_k8s, "{.items[-3].metadata.name}", "" },
    { doc_k8s, "{.items[2]}", "" },
    { doc_k8s, "{.kind[0]}", "" },
    /* Wildcards, recursive descent. */
    { doc_k8s, "{.items[*].status.capacity.*}", "4 8" },
    { doc_k8s, "{.users[1].user.*}", "admin secret" },
    { doc_k8s, "{.users[*].user.username}", "admin" },
    { doc_k8s, "{..address}", "127.0.0.1 127.0.0.2 127.0.0.3" },
    { doc_k8s, "{..[0].type}", "LegacyHostIP LegacyHostIP" },
    { doc_k8s, "{.items[1]..type}", "LegacyHostIP another" },
    { doc_values, "{.o..x}", "y/z" },
    { doc_values, "{.o..*}", "[1,{\"x\":\"y/z\"}] 1 {\"x\":\"y/z\"} y/z" },
    /* Filters. */
    { doc_k8s, "{.users[?(@.user.username)].name}", "e2e" },
    { doc_k8s, "{.items[*].status.addresses[?(@.type==\"LegacyHostIP\")].address}", "127.0.0.1 127.0.0.2" },
    { doc_k8s, "{.items[*].status.addresses[?(@.type!='LegacyHostIP')].address}", "127.0.0.3" },
    { doc_values, "{.n[?(@.v>1)].v}", "2.5" },
    { doc_values, "{.n[?(@.v>=1)].v}", "1 2.5" },
    { doc_values, "{.n[?(@.v<2)].v}", "1" },
    { doc_values, "{.n[?(@.v<=2.5)].v}", "1 2.5" },
    { doc_values, "{.n[?(@.v!=1)].v}", "2.5 3 true " },     /* null prints as nothing */
    { doc_values, "{.n[?(@.v==\"3\")].v}", "3" },
    { doc_values, "{.n[?(@.v=='3')].v}", "3" },
    { doc_values, "{.n[?(@.v==3)].v}", "" },                /* a string is not a number */
    { doc_values, "{.n[?(@.v==true)].v}", "true" },
    { doc_values, "{.n[?(@.v!=false)].v}", "1 2.5 3 true " },
    { doc_values, "{range .n[?(@.v==null)]}found{end}", "found" },
    { doc_values, "{.n[?(@.v)].v}", "1 2.5 3 true " },
    { doc_values, "{.n[?(@.w==@.w)].w}", "1" },
    { doc_values, "{.n[?(@.v=1)].v}", "1" },
    { doc_values, "{.n[?(1<@.v)].v}", "2.5" },
    { doc_values, "{.n[?(@.v==1e0)].v}", "1" },
    { doc_values, "{.n[?(@.v==1.0)].v}", "1" },
    { doc_values, "{.n[?( @.v > -1 )].v}", "1 2.5" },
    { doc_values, "{.n[?(@.v<\"4\")].v}", "3" },
    { doc_values, "{.a[?(@>3)]}", "4 5" },
    { doc_values, "{.a[?(@==$.o.k[0])]}", "1" },
    { doc_values, "{.o[?(@.x)]}", "" },                     /* filters apply to arrays */
    /* Slices and unions. */
    { doc_values, "{.a[1:3]}", "1 2" },
    { doc_values, "{.a[:2]}", "0 1" },
    { doc_values, "{.a[4:]}", "4 5" },
    { doc_values, "{.a[-2:]}", "4 5" },
    { doc_values, "{.a[:-4]}", "0 1" },
    { doc_values, "{.a[::2]}", "0 2 4" },
    { doc_values, "{.a[1:6:2]}", "1 3 5" },
    { doc_values, "{.a[1:6:9223372036854775807]}", "1" },
    { doc_values, "{.a[-9223372036854775807:9223372036854775807]}", "0 1 2 3 4 5" },
    { doc_values, "{.a[-9223372036854775807]}", "" },
    { doc_values, "{.a[0:100]}", "0 1 2 3 4 5" },
    { doc_values, "{.a[3:1]}", "" },
    { doc_values, "{.a[-100:1]}", "0" },
    { doc_values, "{.a[ 1 : 3 ]}", "1 2" },
    { doc_values, "{.a[0,2,-1]}", "0 2 5" },
    { doc_values, "{.a[0, 1:3]}", "0 1 2" },
    { doc_values, "{.n[0,1].v}", "1 2.5" },
    { doc_values, "{.o.k[1]['x', 'nothing']}", "y/z" },
    { doc_values, "{.a[*]}", "0 1 2 3 4 5" },
    /* Keys: a dot inside quotes separates fields (kubectl), \. does not. */
    { doc_values, "{.dot['a.b']}", "{\"c\":2}" },
    { doc_values, "{.dot['a\\.b'].c}", "1" },
    { doc_values, "{.dot.a\\.b.c}", "1" },
    { doc_values, "{.dot[\"a\"][\"b\"].c}", "2" },
    { doc_values, "{['']}", "empty key" },
    /* Printing: strings raw, the rest compact JSON, null and absent as nothing. */
    { doc_values, "{.a}", "[0,1,2,3,4,5]" },
    { doc_values, "{.o}", "{\"k\":[1,{\"x\":\"y/z\"}]}" },
    { doc_values, "{.b}", "false" },
    { doc_values, "{.n[1].v}", "2.5" },
    { doc_values, "{.z}", "" },
    { doc_values, "{.s}", "x\ny" },
    { doc_values, "<{.nothing}{.o.nothing.deeper}{.s.length}>", "<>" },
    /* Text and literals. */
    { doc_values, "plain text only", "plain text only" },
    { doc_values, "a}b", "a}b" },
    { doc_values, "", "" },
    { doc_values, "{\"x\\ty\\n\\\"q\\\"\\\\\\r'\"}", "x\ty\n\"q\"\\\r'" },
    { doc_values, "{\"{.a}\"}", "{.a}" },
    { doc_values, "{ .b }-{ \"lit\" }-{ range .a[0:2] }{ @ }{ end }", "false-lit-01" },
    { doc_values, "{.o.k[1]['x']}", "y/z" },
    /* A List of VirtualDisks, as the CLI prints it. */
    { doc_vd, "{.items[*].metadata.name}", "disk-a disk-b" },
    { doc_vd, "{range .items[*]}{.metadata.name}{\"\\t\"}{.status.phase}{\"\\n\"}{end}",
      "disk-a\tReady\ndisk-b\tProvisioning\n" },
    { doc_vd, "{.items[0].status.conditions[?(@.type==\"Ready\")].reason}", "Ready" },
    { doc_vd, "{range .items[*]}{.metadata.name}={.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
      "disk-a=True\ndisk-b=False\n" },
    { doc_vd, "{.items[*].metadata.labels['virtfleet\\.io/x']}", "one" },
    { doc_vd, "{.items[*].metadata.labels.virtfleet\\.io/x}", "one" },
    { doc_vd, "{.items[?(@.metadata.labels.app==\"db\")].metadata.name}", "disk-b" },
    { doc_vd, "{.items[?(@.status.conditions[?(@.type==\"Ready\")].status==\"True\")].metadata.name}", "disk-a" },
    { doc_vd, "{.metadata.resourceVersion}", "42" },
    { doc_vd, "{.items[*].spec.persistentVolumeClaim.size}", "10Gi" },
    { doc_vd, "{range .items[*]}{.metadata.name}:{range .status.conditions[*]}{.type}={.status},{end};{end}",
      "disk-a:DatasourceReady=True,Ready=True,;disk-b:Ready=False,;" },
    { doc_vd, "{range .items[*]}{range .status.conditions[?(@.status=='True')]}{.type} {end}{end}",
      "DatasourceReady Ready " },
    { doc_vd, "{range .nothing[*]}x{end}y", "y" },
};

struct err_case {
    const char *tmpl;
    const char *want;   /* after jsonpath "TEMPLATE": */
};

static const struct err_case err_cases[] = {
    { "{.a[?(@.b=)]}", "at offset 10: expected a value after \"=\"" },
    { "{.a[?(@.b==)]}", "at offset 11: expected a value after \"==\"" },
    { "{.a", "at offset 3: expected \"}\"" },
    { "{", "at offset 1: expected a path such as .metadata.name, a \"quoted string\", range or end" },
    { "{}", "at offset 1: expected a path such as .metadata.name, a \"quoted string\", range or end" },
    { "{status}", "at offset 1: expected a path such as .metadata.name, a \"quoted string\", range or end" },
    { "{.a b}", "at offset 4: expected \"}\"" },
    { "{.a}{end}", "at offset 4: {end} without {range}" },
    { "{range .items[*]}x", "at offset 0: {range} without {end}" },
    { "{range .a[*]}{range .b[*]}{end}", "at offset 0: {range} without {end}" },
    { "{range}", "at offset 6: expected a path after \"range\", such as .items[*]" },
    { "{range .a}", "at offset 0: {range} without {end}" },
    { "{end x}", "at offset 5: expected \"}\" after \"end\"" },
    { "{.}", "at offset 2: expected a field name or \"*\" after \".\"" },
    { "{.a.}", "at offset 4: expected a field name or \"*\" after \".\"" },
    { "{..}", "at offset 3: expected a field name, \"*\" or \"[\" after \"..\"" },
    { "{.a[}", "at offset 4: expected an index, a slice, a quoted key, \"*\" or \"?(\" after \"[\"" },
    { "{.a[]}", "at offset 4: expected an index, a slice, a quoted key, \"*\" or \"?(\" after \"[\"" },
    { "{.a[0}", "at offset 5: expected \",\" or \"]\" (the \"[\" is at offset 3)" },
    { "{.a[0,}", "at offset 6: expected an index, a slice or a quoted key after \",\"" },
    { "{.a[*}", "at offset 5: expected \"]\" after \"*\"" },
    { "{.a['b}", "at offset 4: expected a closing ' for this key" },
    { "{.a[\"b]}", "at offset 4: expected a closing \" for this key" },
    { "{\"abc}", "at offset 1: expected a closing \" for this string" },
    { "{\"x\" .a}", "at offset 5: expected \"}\" after the string" },
    { "{\"a\\qb\"}", "at offset 3: unknown escape \"\\q\": expected \\n, \\t, \\r, \\\", \\', \\\\" },
    { "{.a\\q}", "at offset 3: unknown escape \"\\q\": expected \\n, \\t, \\r, \\\", \\', \\\\ or \\." },
    { "{.a\\", "at offset 3: expected a character after \"\\\"" },
    { "{.a[::0]}", "at offset 6: expected a step greater than 0" },
    { "{.a[0:2:-1]}", "at offset 8: expected a step greater than 0" },
    { "{.a[-]}", "at offset 5: expected a digit after \"-\"" },
    { "{.a[99999999999999999999]}", "at offset 4: number too large" },
    { "{.a[9223372036854775808]}", "at offset 4: number too large" },
    { "{.a[?@.b]}", "at offset 5: expected \"(\" after \"?\"" },
    { "{.a[?(@.b]}", "at offset 9: expected an operator (==, !=, <, <=, >, >=) or \")\"" },
    { "{.a[?(@.b==1]}", "at offset 12: expected \")\" to close the filter" },
    { "{.a[?(@.b==1)}", "at offset 13: expected \"]\" after the filter" },
    { "{.a[?(x==1)]}", "at offset 6: expected @, $, a number, a quoted string, true, false or null" },
    { "{.a[?(@.b==x)]}", "at offset 11: expected a value after \"==\"" },
    { "{.a[?(@.b==-x)]}", "at offset 12: expected a digit after \"-\"" },
    { "{.a[?(@.b==1e)]}", "at offset 13: expected the exponent's digits" },
    { "{.a[?(@.b=='x)]}", "at offset 11: expected a closing ' for this string" },
    { "{.a[?(1)]}", "at offset 7: expected an operator after a value: only a path can stand alone" },
    { "text {.a[?(@.b==\"x\")]} more {.c[", "at offset 32: expected an index, a slice, a quoted key, \"*\" or \"?(\" after \"[\"" },
};

static char *render(const char *doc_text, const char *tmpl)
{
    char err[1024], *buf = NULL;
    size_t len = 0;
    struct json_object *doc = vf_test_json(doc_text);
    struct vf_jsonpath *jp = vf_jsonpath_parse(tmpl, err, sizeof err);
    FILE *f;

    ck_assert_msg(jp != NULL, "%s does not parse: %s", tmpl, err);
    f = open_memstream(&buf, &len);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(vf_render_jsonpath(f, doc, jp), 0);
    fclose(f);
    vf_jsonpath_free(jp);
    json_object_put(doc);
    return buf;
}

START_TEST(test_feature)
{
    const struct ok_case *c = &ok_cases[_i];
    char *got = render(c->doc, c->tmpl);

    ck_assert_msg(strcmp(got, c->want) == 0, "%s: got \"%s\", want \"%s\"", c->tmpl, got, c->want);
    free(got);
}
END_TEST

START_TEST(test_refused)
{
    const struct err_case *c = &err_cases[_i];
    char err[1024], want[1024];

    ck_assert_msg(vf_jsonpath_parse(c->tmpl, err, sizeof err) == NULL, "%s parses", c->tmpl);
    snprintf(want, sizeof want, "jsonpath \"%s\": %s", c->tmpl, c->want);
    ck_assert_str_eq(err, want);
}
END_TEST

/* prefix + n * unit + middle + n * close + end (malloc'd). */
static char *repeat(const char *prefix, const char *unit, int n, const char *middle, const char *close,
                    const char *end)
{
    size_t len = strlen(prefix) + (size_t)n * (strlen(unit) + strlen(close)) + strlen(middle) + strlen(end) + 1;
    char *s = malloc(len);

    ck_assert_ptr_nonnull(s);
    strcpy(s, prefix);
    for (int i = 0; i < n; i++)
        strcat(s, unit);
    strcat(s, middle);
    for (int i = 0; i < n; i++)
        strcat(s, close);
    strcat(s, end);
    return s;
}

/* Nesting is bounded: 32 levels run, the 33rd is refused where it opens. */
START_TEST(test_depth_limit)
{
    char err[1024], *t, *got;
    const char *at;

    t = repeat("", "{range @}", VF_JSONPATH_MAX_DEPTH, "{.kind}", "{end}", "");
    got = render(doc_k8s, t);
    ck_assert_str_eq(got, "List");
    free(got);
    free(t);

    t = repeat("", "{range @}", VF_JSONPATH_MAX_DEPTH + 1, "x", "{end}", "");
    ck_assert_ptr_null(vf_jsonpath_parse(t, err, sizeof err));
    at = strstr(err, "\": at offset ");
    ck_assert_ptr_nonnull(at);
    ck_assert_str_eq(at, "\": at offset 288: nesting deeper than 32 levels of range and filter");
    free(t);

    /* Filters in filters: [?(@.a[?(@.a[?(...)])])] */
    t = repeat("{.a", "[?(@.a", VF_JSONPATH_MAX_DEPTH + 1, "", ")]", "}");
    ck_assert_ptr_null(vf_jsonpath_parse(t, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "nesting deeper than 32 levels"));
    free(t);
    t = repeat("{.a", "[?(@.a", VF_JSONPATH_MAX_DEPTH, "", ")]", "}");
    got = render(doc_values, t);
    ck_assert_str_eq(got, "");
    free(got);
    free(t);
}
END_TEST

/* A template longer than 64 KiB is refused without being echoed; a long one
 * within the limit is cut in the message, and the offset still points. */
START_TEST(test_length_limit)
{
    char err[1024], *t = malloc(VF_JSONPATH_MAX_LEN + 2);

    ck_assert_ptr_nonnull(t);
    memset(t, 'x', VF_JSONPATH_MAX_LEN + 1);
    t[VF_JSONPATH_MAX_LEN + 1] = '\0';
    ck_assert_ptr_null(vf_jsonpath_parse(t, err, sizeof err));
    ck_assert_str_eq(err, "jsonpath template of 65537 bytes: longer than the limit of 65536");

    t[VF_JSONPATH_MAX_LEN] = '\0';
    t[VF_JSONPATH_MAX_LEN - 1] = '{';
    ck_assert_ptr_null(vf_jsonpath_parse(t, err, sizeof err));
    ck_assert_int_lt(strlen(err), 400);
    ck_assert_ptr_nonnull(strstr(err, "xxx...\": at offset 65536: expected a path"));

    /* Many brackets and braces, none nested: refused at the first fault, no recursion. */
    for (size_t i = 0; i + 1 < VF_JSONPATH_MAX_LEN; i++)
        t[i] = "{.a["[i % 4];
    t[VF_JSONPATH_MAX_LEN - 1] = '\0';
    ck_assert_ptr_null(vf_jsonpath_parse(t, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "at offset 4: expected an index"));
    free(t);
}
END_TEST

/* A template is parsed once and runs on any number of documents. */
START_TEST(test_parse_once)
{
    char err[256], *buf = NULL;
    size_t len = 0;
    struct vf_jsonpath *jp = vf_jsonpath_parse("{.metadata.name}{\"\\n\"}", err, sizeof err);
    struct json_object *a = vf_test_json("{\"metadata\":{\"name\":\"vm-a\"}}");
    struct json_object *b = vf_test_json("{\"metadata\":{\"name\":\"vm-b\"}}");
    FILE *f = open_memstream(&buf, &len);

    ck_assert_ptr_nonnull(jp);
    ck_assert_int_eq(vf_render_jsonpath(f, a, jp), 0);
    ck_assert_int_eq(vf_render_jsonpath(f, b, jp), 0);
    ck_assert_int_eq(vf_render_jsonpath(f, NULL, jp), 0);     /* a null document */
    fclose(f);
    ck_assert_str_eq(buf, "vm-a\nvm-b\n\n");
    free(buf);
    vf_jsonpath_free(jp);
    vf_jsonpath_free(NULL);
    json_object_put(a);
    json_object_put(b);
}
END_TEST

/* The sink sees text and value groups in order, and a failing sink stops the run. */
struct recorder {
    int calls, fail_at;
    char log[256];
};

static int rec_text(void *ctx, const char *s, size_t len)
{
    struct recorder *r = ctx;
    size_t n = strlen(r->log);
    snprintf(r->log + n, sizeof r->log - n, "T(%.*s)", (int)len, s);
    return ++r->calls == r->fail_at ? -1 : 0;
}

static int rec_values(void *ctx, struct json_object *const *v, size_t count)
{
    struct recorder *r = ctx;
    size_t n = strlen(r->log);
    snprintf(r->log + n, sizeof r->log - n, "V%zu", count);
    (void)v;
    return ++r->calls == r->fail_at ? -1 : 0;
}

START_TEST(test_sink)
{
    static const struct vf_jsonpath_sink sink = { rec_text, rec_values };
    char err[256];
    struct vf_jsonpath *jp = vf_jsonpath_parse("a{.items[*]}{.nothing}{range .items[*]}b{end}", err, sizeof err);
    struct json_object *doc = vf_test_json(doc_k8s);
    struct recorder r = { .fail_at = 0 };

    ck_assert_ptr_nonnull(jp);
    ck_assert_int_eq(vf_jsonpath_execute(jp, doc, &sink, &r), 0);
    ck_assert_str_eq(r.log, "T(a)V2V0T(b)T(b)");
    memset(&r, 0, sizeof r);
    r.fail_at = 2;
    ck_assert_int_eq(vf_jsonpath_execute(jp, doc, &sink, &r), -1);
    ck_assert_str_eq(r.log, "T(a)V2");
    vf_jsonpath_free(jp);
    json_object_put(doc);
}
END_TEST

/* Recursive descent on a document nested deeper than json-c parses by
 * default stays bounded (MAX_DESCENT) and does not crash. */
START_TEST(test_deep_document)
{
    char err[256];
    struct json_object *doc = json_object_new_object(), *cur = doc;
    struct vf_jsonpath *jp = vf_jsonpath_parse("{..leaf}", err, sizeof err);
    char *buf = NULL;
    size_t len = 0;
    FILE *f;

    for (int i = 0; i < 2000; i++) {
        struct json_object *next = json_object_new_object();
        json_object_object_add(cur, "d", next);
        cur = next;
    }
    json_object_object_add(cur, "leaf", json_object_new_string("deep"));
    json_object_object_add(doc, "leaf", json_object_new_string("top"));
    f = open_memstream(&buf, &len);
    ck_assert_int_eq(vf_render_jsonpath(f, doc, jp), 0);
    fclose(f);
    ck_assert_str_eq(buf, "top");
    free(buf);
    vf_jsonpath_free(jp);
    json_object_put(doc);
}
END_TEST

int main(void)
{
    const struct vf_test_case cases[] = {
        { "depth_limit", test_depth_limit },
        { "length_limit", test_length_limit },
        { "parse_once", test_parse_once },
        { "sink", test_sink },
        { "deep_document", test_deep_document },
    };
    Suite *s = vf_test_suite("jsonpath", cases, sizeof cases / sizeof cases[0]);
    TCase *features = tcase_create("features");
    TCase *refused = tcase_create("refused");

    tcase_add_loop_test(features, test_feature, 0, (int)(sizeof ok_cases / sizeof ok_cases[0]));
    tcase_add_loop_test(refused, test_refused, 0, (int)(sizeof err_cases / sizeof err_cases[0]));
    suite_add_tcase(s, features);
    suite_add_tcase(s, refused);
    return vf_test_run(s);
}
