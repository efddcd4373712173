#include <config.h>
/* xml_query: libvirt's XML through libxml2 XPath.  Odd but valid XML reads
 * as libvirt's usual output does (either quote style, comments, CDATA,
 * entities and character references, '>' inside attribute values,
 * namespaces); what is not a document, or declares a DOCTYPE (where entities
 * would come from), is refused; values that do not fit are refused whole. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/xml_query.h"
#include "tests/unit/testlib.h"

/* x parsed from text, which must parse. */
static void parse_ok(struct vf_xml *x, const char *text)
{
    int rc = vf_xml_parse(x, text);
    ck_assert_msg(rc == 0, "parse returned %d for %s", rc, text);
}

START_TEST(test_parse)
{
    struct vf_xml x;
    ck_assert_int_eq(vf_xml_parse(&x, NULL), -ENOENT);
    ck_assert_int_eq(vf_xml_parse(&x, ""), -ENOENT);
    vf_xml_free(&x);   /* nothing to free, and safe */

    static const char *const bad[] = {
        "<a>",                          /* cut off */
        "<a></b>",                      /* unbalanced */
        "<a/><b/>",                     /* two top-level elements */
        "text",
        "<a>&undeclared;</a>",          /* no DTD declares it */
        "<a x='1' x='2'/>",             /* an attribute twice */
        /* A DOCTYPE, with or without entities or an external subset: refused
         * before anything could be expanded or fetched. */
        "<!DOCTYPE a><a/>",
        "<!DOCTYPE a [<!ENTITY e 'boom'>]><a>&e;</a>",
        "<!DOCTYPE a [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><a>&e;</a>",
        "<!DOCTYPE a SYSTEM 'http://127.0.0.1:9/a.dtd'><a/>",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = vf_xml_parse(&x, bad[i]);
        ck_assert_msg(rc == -EINVAL, "parse returned %d for %s", rc, bad[i]);
        ck_assert_ptr_null(x.doc);
        ck_assert_ptr_null(x.ctx);
    }

    parse_ok(&x, "<?xml version='1.0' encoding='UTF-8'?>\n<!-- first -->\n<a/>\n<!-- last -->\n");
    vf_xml_free(&x);
    ck_assert_ptr_null(x.doc);
    vf_xml_free(&x);   /* twice is harmless */
}
END_TEST

/* path read from `from` is want. */
static void string_is(struct vf_xml *x, xmlNodePtr from, const char *path, const char *want)
{
    char buf[64];
    int rc = vf_xml_string(x, from, path, buf, sizeof buf);
    ck_assert_msg(rc == 0, "%s: %d", path, rc);
    ck_assert_str_eq(buf, want);
}

/* path read into a buffer of len bytes fails with rc and leaves it empty. */
static void string_fails(struct vf_xml *x, const char *path, size_t len, int rc)
{
    char buf[64] = "junk";
    ck_assert_uint_le(len, sizeof buf);
    ck_assert_int_eq(vf_xml_string(x, NULL, path, buf, len), rc);
    ck_assert_str_eq(buf, "");
}

START_TEST(test_string)
{
    struct vf_xml x;
    char buf[32];
    parse_ok(&x, "<domain type=\"kvm\">\n"
                 "  <!-- <name>commented</name> -->\n"
                 "  <name>vm-<!-- inside -->one</name>\n"
                 "  <title><![CDATA[a <b> & c]]></title>\n"
                 "  <description>x &amp; y &#x41;&#66;</description>\n"
                 "  <mac address='52:54:00:00:00:01' note=\"it's &quot;q&quot; > 1\"/>\n"
                 "  <empty v=''></empty>\n"
                 "</domain>");
    string_is(&x, NULL, "/domain/@type", "kvm");
    string_is(&x, NULL, "/domain/name", "vm-one");
    string_is(&x, NULL, "/domain/title", "a <b> & c");
    string_is(&x, NULL, "/domain/description", "x & y AB");
    string_is(&x, NULL, "/domain/mac/@address", "52:54:00:00:00:01");
    string_is(&x, NULL, "/domain/mac/@note", "it's \"q\" > 1");

    /* Present but empty is not absent. */
    string_is(&x, NULL, "/domain/empty/@v", "");
    string_is(&x, NULL, "/domain/empty", "");
    /* Absent. */
    string_fails(&x, "/domain/mac/@absent", 32, -ENOENT);
    string_fails(&x, "/nodomain", 32, -ENOENT);

    /* Too long for the buffer: refused whole, never cut. */
    string_fails(&x, "/domain/mac/@address", 17, -ERANGE);
    ck_assert_int_eq(vf_xml_string(&x, NULL, "/domain/mac/@address", buf, 18), 0);
    ck_assert_int_eq(vf_xml_string(&x, NULL, "/domain/@type", NULL, 0), -EINVAL);

    /* A bad expression is an error, not a match (and prints nothing). */
    ck_assert_int_eq(vf_xml_string(&x, NULL, "/domain[", buf, sizeof buf), -ENOENT);
    ck_assert_int_eq(vf_xml_count(&x, NULL, "/domain["), -EINVAL);
    ck_assert_int_eq(vf_xml_count(&x, NULL, "count(/domain)"), -EINVAL);   /* not nodes */
    vf_xml_free(&x);
}
END_TEST

/* libvirt's elements are in no namespace: an element of another namespace
 * with the same local name is not one of them, whatever its prefix; a
 * default namespace on the root puts every element in it. */
START_TEST(test_namespaces)
{
    struct vf_xml x;
    parse_ok(&x, "<domain xmlns:vf='http://virtfleet.io/xmlns/vm/1'>"
                 "<metadata><vf:vm uid='u1'><vf:name>meta</vf:name></vf:vm>"
                 "<other:name xmlns:other='urn:other'>other</other:name></metadata>"
                 "<name>real</name></domain>");
    ck_assert_int_eq(vf_xml_count(&x, NULL, "//name"), 1);
    string_is(&x, NULL, "//name", "real");
    ck_assert_int_eq(vf_xml_count(&x, NULL, "//*[local-name()='name']"), 3);
    string_is(&x, NULL,
              "//*[local-name()='vm' and namespace-uri()='http://virtfleet.io/xmlns/vm/1']/@uid",
              "u1");
    vf_xml_free(&x);

    parse_ok(&x, "<domain xmlns='urn:not-libvirt'><name>n</name></domain>");
    ck_assert_int_eq(vf_xml_count(&x, NULL, "/domain/name"), 0);
    string_fails(&x, "/domain/name", 32, -ENOENT);
    vf_xml_free(&x);
}
END_TEST

/* Selecting nodes and reading relative to each, in document order. */
START_TEST(test_select_relative)
{
    struct vf_xml x;
    parse_ok(&x, "<network><ip address='10.0.0.1'><dhcp><host name='a'/><host name=\"b\"/>"
                 "</dhcp></ip><!-- <ip address='10.9.9.9'/> --><ip address='fd00::1'/></network>");
    ck_assert_ptr_null(vf_xml_select(&x, NULL, "/network/route"));
    ck_assert_ptr_null(vf_xml_select(&x, NULL, "/network["));
    xmlXPathObjectPtr ips = vf_xml_select(&x, NULL, "/network/ip");
    ck_assert_ptr_nonnull(ips);
    ck_assert_int_eq(xmlXPathNodeSetGetLength(ips->nodesetval), 2);
    xmlNodePtr first = xmlXPathNodeSetItem(ips->nodesetval, 0);
    xmlNodePtr second = xmlXPathNodeSetItem(ips->nodesetval, 1);
    string_is(&x, second, "@address", "fd00::1");
    ck_assert_int_eq(vf_xml_count(&x, first, "dhcp/host"), 2);
    ck_assert_int_eq(vf_xml_count(&x, second, "dhcp/host"), 0);
    string_is(&x, first, "dhcp/host[2]/@name", "b");
    /* An absolute path still starts at the document. */
    ck_assert_int_eq(vf_xml_count(&x, second, "/network/ip/dhcp"), 1);
    xmlXPathFreeObject(ips);
    vf_xml_free(&x);
}
END_TEST

static Suite *xml_query_suite(void)
{
    const struct vf_test_case cases[] = {
        {"parse", test_parse},
        {"string", test_string},
        {"namespaces", test_namespaces},
        {"select_relative", test_select_relative},
    };
    return vf_test_suite("xml_query", cases, sizeof cases / sizeof cases[0]);
}

int main(void)
{
    return vf_test_run(xml_query_suite());
}
