/* Reading libvirt's XML (capabilities, domain and network descriptions) with
 * libxml2's XPath, so that quoting, comments, CDATA, entities and namespaces
 * are the parser's business rather than each caller's.
 *
 * The text comes from libvirt, not from users; still it is parsed as
 * untrusted: nothing is fetched from the network, no DTD is loaded, entities
 * are never substituted, and a document with a DOCTYPE (which libvirt never
 * writes) is refused, so no entity can be declared at all.
 *
 * Any thread: a parsed document belongs to its caller. */
#ifndef VF_XML_QUERY_H
#define VF_XML_QUERY_H
#include <stddef.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>

struct vf_xml {
    xmlDocPtr doc;
    xmlXPathContextPtr ctx;
};

/* Parses text into x.  0; -ENOENT when text is NULL or empty (there is
 * nothing to read), -EINVAL when it is not a well-formed document or has a
 * DOCTYPE, -ENOMEM.  On failure x holds nothing to free (vf_xml_free() may
 * still be called). */
int vf_xml_parse(struct vf_xml *x, const char *text);
void vf_xml_free(struct vf_xml *x);

/* The nodes that the XPath expression `path` selects from `from` (NULL: the
 * document), in document order; free the result with xmlXPathFreeObject().
 * NULL when the expression fails or selects no node.  Iterate with
 * xmlXPathNodeSetGetLength(r->nodesetval) and xmlXPathNodeSetItem(). */
xmlXPathObjectPtr vf_xml_select(struct vf_xml *x, xmlNodePtr from, const char *path);

/* How many nodes path selects from `from` (NULL: the document), or -EINVAL
 * when the expression fails. */
int vf_xml_count(struct vf_xml *x, xmlNodePtr from, const char *path);

/* The text of the first node path selects from `from` (NULL: the document):
 * an attribute's value or an element's text, entities and CDATA resolved,
 * into buf.  0 (the text may be empty); -ENOENT when path selects nothing,
 * -ERANGE when the text does not fit (buf is then ""), -ENOMEM. */
int vf_xml_string(struct vf_xml *x, xmlNodePtr from, const char *path, char *buf, size_t len);
#endif
