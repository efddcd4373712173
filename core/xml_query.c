/* libvirt's XML through libxml2 XPath (see xml_query.h). */
#include <config.h>
#include "xml_query.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <libxml/parser.h>

/* No XML_PARSE_NOENT (entities would be substituted), XML_PARSE_DTDLOAD or
 * XML_PARSE_DTDATTR (a DTD would be fetched or applied); NONET in case
 * anything still tried to fetch.  Errors are the caller's to report: libxml2
 * must not print them on stderr. */
#define PARSE_OPTIONS (XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING)

/* An XPath error (a bad expression: ours) is reported by the -EINVAL it
 * returns, not on stderr. */
static void quiet(void *opaque, xmlErrorPtr error)
{
    (void)opaque;
    (void)error;
}

int vf_xml_parse(struct vf_xml *x, const char *text)
{
    memset(x, 0, sizeof *x);
    if (!text || !*text)
        return -ENOENT;
    size_t n = strlen(text);
    if (n > INT_MAX)
        return -EINVAL;
    /* Idempotent, and safe from any thread: the first caller sets up
     * libxml2's globals (libvirt may have done so already). */
    xmlInitParser();
    x->doc = xmlReadMemory(text, (int)n, NULL, NULL, PARSE_OPTIONS);
    if (!x->doc)
        return -EINVAL;
    /* A DOCTYPE is the only place entities are declared; libvirt writes none. */
    if (x->doc->intSubset || x->doc->extSubset || !xmlDocGetRootElement(x->doc)) {
        vf_xml_free(x);
        return -EINVAL;
    }
    x->ctx = xmlXPathNewContext(x->doc);
    if (!x->ctx) {
        vf_xml_free(x);
        return -ENOMEM;
    }
    x->ctx->error = quiet;
    return 0;
}

void vf_xml_free(struct vf_xml *x)
{
    if (!x)
        return;
    xmlXPathFreeContext(x->ctx);
    xmlFreeDoc(x->doc);
    memset(x, 0, sizeof *x);
}

/* path evaluated from `from` into *out, a node set (possibly empty). */
static int eval(struct vf_xml *x, xmlNodePtr from, const char *path, xmlXPathObjectPtr *out)
{
    *out = NULL;
    if (!x || !x->ctx || !path)
        return -EINVAL;
    x->ctx->node = from ? from : (xmlNodePtr)x->doc;
    xmlXPathObjectPtr r = xmlXPathEvalExpression(BAD_CAST path, x->ctx);
    if (!r || r->type != XPATH_NODESET) {
        xmlXPathFreeObject(r);
        return -EINVAL;
    }
    *out = r;
    return 0;
}

xmlXPathObjectPtr vf_xml_select(struct vf_xml *x, xmlNodePtr from, const char *path)
{
    xmlXPathObjectPtr r;
    if (eval(x, from, path, &r) < 0)
        return NULL;
    if (xmlXPathNodeSetIsEmpty(r->nodesetval)) {
        xmlXPathFreeObject(r);
        return NULL;
    }
    return r;
}

int vf_xml_count(struct vf_xml *x, xmlNodePtr from, const char *path)
{
    xmlXPathObjectPtr r;
    int rc = eval(x, from, path, &r);
    if (rc < 0)
        return rc;
    int n = xmlXPathNodeSetGetLength(r->nodesetval);
    xmlXPathFreeObject(r);
    return n;
}

int vf_xml_string(struct vf_xml *x, xmlNodePtr from, const char *path, char *buf, size_t len)
{
    if (buf && len)
        buf[0] = '\0';
    if (!buf || !len)
        return -EINVAL;
    xmlXPathObjectPtr r = vf_xml_select(x, from, path);
    if (!r)
        return -ENOENT;
    xmlChar *text = xmlNodeGetContent(xmlXPathNodeSetItem(r->nodesetval, 0));
    xmlXPathFreeObject(r);
    if (!text)
        return -ENOMEM;
    size_t n = strlen((const char *)text);
    int rc = n < len ? 0 : -ERANGE;
    if (rc == 0)
        memcpy(buf, text, n + 1);
    xmlFree(text);
    return rc;
}
