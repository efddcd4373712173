/* kubectl's JSONPath templates (-o jsonpath=...): a template is parsed once
 * into a small tree, then run against each document.  This file knows the
 * dialect; how values are printed is render.c's business (vf_render_jsonpath).
 *
 * Supported, as kubectl documents it: text outside braces as is; {"..."}
 * literals with \n \t \r \" \\ escapes; $ (the document, optional) and @ (the
 * current object); .field (with \. for a dot inside a key), ['a'] and ["a"]
 * (a dot there separates fields too, unless escaped); .. recursive descent;
 * * on objects and arrays; [n] and [-n]; [start:end:step]; unions [0,2] and
 * ['a','b']; filters [?(@.x OP value)] with == (or =) != < <= > >= against a
 * number, a quoted string, true, false, null or another @ path, and [?(@.x)]
 * for existence; {range EXPR}...{end}, nested. */
#ifndef VF_CLI_JSONPATH_H
#define VF_CLI_JSONPATH_H
#include <stddef.h>
#include <json-c/json.h>

/* Templates longer than this, or nested (range in range, filter in filter)
 * deeper than that, are refused: the parser and evaluator recurse. */
#define VF_JSONPATH_MAX_LEN (64 * 1024)
#define VF_JSONPATH_MAX_DEPTH 32

struct vf_jsonpath;

/* Parses a template.  Returns NULL with err filled, e.g.
 * jsonpath "{.a[?(@.b=)]}": at offset 10: expected a value after "=" */
struct vf_jsonpath *vf_jsonpath_parse(const char *tmpl, char *err, size_t errlen);
void vf_jsonpath_free(struct vf_jsonpath *jp);

/* Where a run of the template goes, piece by piece in order: text (outside
 * braces and {"..."} literals), and the values one {EXPR} selected (n may be
 * 0; a JSON null is a NULL pointer).  A callback returning < 0 stops the run. */
struct vf_jsonpath_sink {
    int (*text)(void *ctx, const char *s, size_t len);
    int (*values)(void *ctx, struct json_object *const *v, size_t n);
};

/* Runs the template on doc.  Absent fields select nothing, as kubectl's
 * default --allow-missing-template-keys=true.  Returns 0, or -1 when out of
 * memory or when a callback failed. */
int vf_jsonpath_execute(const struct vf_jsonpath *jp, struct json_object *doc,
                        const struct vf_jsonpath_sink *sink, void *ctx);
#endif
