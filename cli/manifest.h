/* Manifests: YAML or JSON streams (JSON is YAML) turned into json-c objects.
 *
 * Input is treated as untrusted: aliases are refused (an alias can multiply a
 * small file into gigabytes), nesting, node count and input size are bounded,
 * duplicate keys are errors, and every error names NAME:LINE:COLUMN. */
#ifndef VF_CLI_MANIFEST_H
#define VF_CLI_MANIFEST_H
#include <stddef.h>
#include <json-c/json.h>

#define VF_MANIFEST_MAX_DEPTH 64
#define VF_MANIFEST_MAX_NODES 1000000
#define VF_MANIFEST_MAX_BYTES (16u * 1024 * 1024)

struct vf_manifest_doc {
    struct json_object *obj;    /* owned by the manifest */
    unsigned line, column;      /* where the document's content starts, 1-based */
};

struct vf_manifest {
    char *name;                 /* file name as given ("<stdin>" for -) */
    struct vf_manifest_doc *docs;
    size_t n;
};

/* What a plain (unquoted, untagged) scalar means under YAML 1.2's core schema. */
enum vf_yaml_scalar {
    VF_YAML_NULL,
    VF_YAML_BOOL,
    VF_YAML_INT,
    VF_YAML_FLOAT,
    VF_YAML_SPECIAL_FLOAT,      /* .inf, -.inf, .nan: no JSON form */
    VF_YAML_STRING,
};
enum vf_yaml_scalar vf_manifest_classify(const char *s, size_t len);

/* The JSON value of a plain scalar (new reference; NULL means JSON null).
 * Integers that overflow int64 stay strings.  Special floats are the caller's
 * to refuse (classify first). */
struct json_object *vf_manifest_plain_value(const char *s, size_t len);

/* Parse a stream of documents from memory.  Empty documents are skipped.
 * Returns 0, or -1 with "NAME:LINE:COL: message" in err. */
int vf_manifest_parse(const char *name, const char *data, size_t len,
                      struct vf_manifest *out, char *err, size_t errlen);

/* Read path ("-" is standard input, at most VF_MANIFEST_MAX_BYTES) and parse it. */
int vf_manifest_load(const char *path, struct vf_manifest *out, char *err, size_t errlen);

void vf_manifest_free(struct vf_manifest *m);
#endif
