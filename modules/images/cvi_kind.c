#include <config.h>
/* ClusterVirtualImage, the kind: its schema, the columns of `virtfleet get`,
 * and the validation hook (sources, checksums, CA bundles, the spec frozen once
 * Ready).  The checksum and CA parsers serve the controller too: an import
 * reads them from the spec the same way the API checked them. */
#include "cvi_internal.h"
#include "vd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/evp.h>

static const char *const source_types[] = {"HTTP", "ContainerImage", "Upload", "ObjectRef", NULL};
static const char *const ref_kinds[] = {"ClusterVirtualImage", "VirtualImage", "VirtualDisk", NULL};

static const struct vf_field http_fields[] = {
    {.name = "url", .type = VF_FIELD_STRING, .flags = VF_FIELD_REQUIRED},
    /* "sha256:<hex>" / "md5:<hex>", or { sha256: <hex> } / { md5: <hex> }: checked below. */
    {.name = "checksum", .type = VF_FIELD_ANY},
    {.name = "caBundle", .type = VF_FIELD_STRING},
    {.name = NULL},
};
static const struct vf_field container_fields[] = {
    {.name = "image", .type = VF_FIELD_STRING, .flags = VF_FIELD_REQUIRED},
    {.name = "caBundle", .type = VF_FIELD_STRING},
    {.name = NULL},
};
static const struct vf_field object_ref_fields[] = {
    {.name = "kind", .type = VF_FIELD_STRING, .flags = VF_FIELD_REQUIRED, .enum_values = ref_kinds},
    {.name = "name", .type = VF_FIELD_STRING, .flags = VF_FIELD_REQUIRED | VF_FIELD_DNS_LABEL},
    {.name = "namespace", .type = VF_FIELD_STRING},
    {.name = NULL},
};
static const struct vf_field data_source_fields[] = {
    {.name = "type", .type = VF_FIELD_STRING, .flags = VF_FIELD_REQUIRED,
     .enum_values = source_types},
    {.name = "http", .type = VF_FIELD_OBJECT, .children = http_fields},
    {.name = "containerImage", .type = VF_FIELD_OBJECT, .children = container_fields},
    {.name = "objectRef", .type = VF_FIELD_OBJECT, .children = object_ref_fields},
    {.name = NULL},
};
static const struct vf_field cvi_spec[] = {
    {.name = "dataSource", .type = VF_FIELD_OBJECT, .flags = VF_FIELD_REQUIRED,
     .children = data_source_fields},
    {.name = NULL},
};
static const char *const cvi_columns[] = {"PHASE", "status.phase", "CDROM", "status.cdrom",
                                          "PROGRESS", "status.progress", NULL};

const struct vf_kind vf_cvi_kind = {
    .kind = VF_CVI_KIND,
    .plural = "clustervirtualimages",
    .singular = "clustervirtualimage",
    .short_name = "cvi",
    .spec = cvi_spec,
    .validate = vf_cvi_validate,
    .columns = cvi_columns,
};

static bool is_hex(const char *s, size_t len)
{
    return s && strlen(s) == len && strspn(s, "0123456789abcdefABCDEF") == len;
}

/* The checksum as the fetcher wants it ("sha256:<hex>"), into buf.  The
 * spec may say "sha256:<hex>", "md5:<hex>" or { sha256: <hex> } / { md5: <hex> }. */
int vf_cvi_checksum_of(const struct json_object *c, char *buf, size_t len, struct vf_error *err)
{
    const char *field = "spec.dataSource.http.checksum";
    buf[0] = '\0';
    if (!c)
        return 0;
    if (json_object_is_type(c, json_type_string)) {
        const char *s = json_object_get_string((struct json_object *)c);
        if ((!strncmp(s, "sha256:", 7) && is_hex(s + 7, 64)) ||
            (!strncmp(s, "md5:", 4) && is_hex(s + 4, 32))) {
            snprintf(buf, len, "%s", s);
            return 0;
        }
        return vf_error_set(err, -EINVAL, 400, "Invalid", field,
                            "%s: \"%.80s\" is not \"sha256:<64 hex digits>\" or \"md5:<32 hex "
                            "digits>\"", field, s);
    }
    if (json_object_is_type(c, json_type_object)) {
        const char *sha = string(c, "sha256"), *md5 = string(c, "md5");
        json_object_object_foreach((struct json_object *)c, key, val) {
            (void)val;
            if (strcmp(key, "sha256") && strcmp(key, "md5"))
                return vf_error_set(err, -EINVAL, 400, "Invalid", field,
                                    "%s.%.40s: unknown field; known fields: md5, sha256", field,
                                    key);
        }
        if (sha && is_hex(sha, 64)) {
            snprintf(buf, len, "sha256:%s", sha);
            return 0;
        }
        if (!sha && md5 && is_hex(md5, 32)) {
            snprintf(buf, len, "md5:%s", md5);
            return 0;
        }
    }
    return vf_error_set(err, -EINVAL, 400, "Invalid", field,
                        "%s: give { sha256: <64 hex digits> } or { md5: <32 hex digits> }, or "
                        "\"sha256:<hex>\"", field);
}

/* The CA bundle as PEM: given as PEM text or base64 of it (as the seeds' CRDs). */
int vf_cvi_ca_pem_of(const char *ca, const char *field, char **out, struct vf_error *err)
{
    *out = NULL;
    if (!ca || !*ca)
        return 0;
    if (strstr(ca, "-----BEGIN CERTIFICATE-----")) {
        *out = strdup(ca);
        return *out ? 0 : -ENOMEM;
    }
    /* EVP_DecodeBlock wants no whitespace. */
    size_t n = strlen(ca), k = 0;
    char *clean = malloc(n + 1);
    unsigned char *pem = malloc(n + 1);
    if (!clean || !pem) {
        free(clean);
        free(pem);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        if (ca[i] != '\n' && ca[i] != '\r' && ca[i] != ' ' && ca[i] != '\t')
            clean[k++] = ca[i];
    clean[k] = '\0';
    int m = k % 4 == 0 ? EVP_DecodeBlock(pem, (const unsigned char *)clean, (int)k) : -1;
    free(clean);
    if (m > 0) {
        pem[m] = '\0';
        if (strstr((char *)pem, "-----BEGIN CERTIFICATE-----")) {
            *out = (char *)pem;
            return 0;
        }
    }
    free(pem);
    return vf_error_set(err, -EINVAL, 400, "Invalid", field,
                        "%s: neither PEM certificates nor base64 of them", field);
}

static int check(const struct json_object *old, struct json_object *obj, struct vf_error *err)
{
    const struct json_object *spec = member(obj, "spec");
    const struct json_object *ds = member(spec, "dataSource");
    const char *type = string(ds, "type");
    const char *name = string(member(obj, "metadata"), "name");
    static const struct {
        const char *type, *member;
    } needs[] = {{"HTTP", "http"}, {"ContainerImage", "containerImage"}, {"ObjectRef", "objectRef"},
                 {"Upload", NULL}};

    if (old && str_eq(string(member(old, "status"), "phase"), "Ready") &&
        !json_object_equal(member(old, "spec"), (struct json_object *)spec))
        return vf_error_set(err, -EINVAL, 422, "Invalid", "spec",
                            "spec: ClusterVirtualImage \"%s\" is Ready and its spec can no longer "
                            "change; create a new image (an ObjectRef to this one copies it)",
                            name ? name : "");
    for (size_t i = 0; i < sizeof needs / sizeof needs[0]; i++) {
        bool wanted = str_eq(type, needs[i].type);
        for (size_t j = 0; j < sizeof needs / sizeof needs[0]; j++) {
            if (!needs[j].member)
                continue;
            bool present = member(ds, needs[j].member) != NULL;
            bool own = str_eq(needs[i].member, needs[j].member);
            char field[96];
            snprintf(field, sizeof field, "spec.dataSource.%s", needs[j].member);
            if (wanted && own && !present)
                return vf_error_set(err, -EINVAL, 400, "Invalid", field,
                                    "%s: required for type %s", field, type);
            if (wanted && !own && present)
                return vf_error_set(err, -EINVAL, 400, "Invalid", field,
                                    "%s: not allowed with type %s", field, type);
        }
    }
    if (str_eq(type, "HTTP")) {
        const struct json_object *http = member(ds, "http");
        const char *url = string(http, "url");
        char sum[128];
        char *pem = NULL;
        int rc;
        if (strncasecmp(url, "http://", 7) && strncasecmp(url, "https://", 8))
            return vf_error_set(err, -EINVAL, 400, "Invalid", "spec.dataSource.http.url",
                                "spec.dataSource.http.url: \"%.200s\" is not an http:// or "
                                "https:// URL", url);
        if ((rc = vf_cvi_checksum_of(member(http, "checksum"), sum, sizeof sum, err)) < 0)
            return rc;
        rc = vf_cvi_ca_pem_of(string(http, "caBundle"), "spec.dataSource.http.caBundle", &pem, err);
        free(pem);
        return rc;
    }
    if (str_eq(type, "ContainerImage")) {
        const struct json_object *ci = member(ds, "containerImage");
        char host[256], repo[512], ref[256];
        char *pem = NULL;
        int rc = vf_registry_reference_parse(string(ci, "image"), host, sizeof host, repo,
                                             sizeof repo, ref, sizeof ref, err);
        if (rc < 0) {
            snprintf(err->field, sizeof err->field, "spec.dataSource.containerImage.image");
            return rc;
        }
        rc = vf_cvi_ca_pem_of(string(ci, "caBundle"), "spec.dataSource.containerImage.caBundle", &pem,
                       err);
        free(pem);
        return rc;
    }
    if (str_eq(type, "ObjectRef")) {
        const struct json_object *ref = member(ds, "objectRef");
        if (str_eq(string(ref, "kind"), "VirtualImage"))
            return vf_error_set(err, -EINVAL, 422, "Invalid", "spec.dataSource.objectRef.kind",
                                "spec.dataSource.objectRef.kind: there is no namespaced "
                                "VirtualImage kind here; name a ClusterVirtualImage or a "
                                "VirtualDisk");
        if (!str_eq(string(ref, "kind"), VF_CVI_KIND) && !str_eq(string(ref, "kind"), VF_VD_KIND))
            return vf_error_set(err, -EINVAL, 422, "Invalid", "spec.dataSource.objectRef.kind",
                                "spec.dataSource.objectRef.kind: %.64s is not supported; name a "
                                "ClusterVirtualImage or a VirtualDisk", string(ref, "kind"));
        /* A VirtualDisk of the same name is another object. */
        if (str_eq(string(ref, "kind"), VF_CVI_KIND) && str_eq(string(ref, "name"), name))
            return vf_error_set(err, -EINVAL, 400, "Invalid", "spec.dataSource.objectRef.name",
                                "spec.dataSource.objectRef.name: an image cannot be made from "
                                "itself");
    }
    return 0;
}

/* A new image starts Pending, with the finalizer already on: the create's own
 * ADDED event shows a phase (`get cvi -w` never has a blank PHASE row), and the
 * controller's first write is the import starting, not the finalizer.  What a
 * client put in .status is replaced: the status is the controller's. */
static void created_defaults(struct json_object *obj)
{
    struct json_object *meta = member(obj, "metadata");
    struct json_object *fin = member(meta, "finalizers");
    struct json_object *status = json_object_new_object();
    bool have = false;
    if (meta && !fin) {
        fin = json_object_new_array();
        json_object_object_add(meta, "finalizers", fin);
    }
    for (size_t i = 0; fin && json_object_is_type(fin, json_type_array) &&
                       i < json_object_array_length(fin); i++)
        have = have || str_eq(json_object_get_string(json_object_array_get_idx(fin, i)),
                              VF_CVI_FINALIZER);
    if (fin && json_object_is_type(fin, json_type_array) && !have)
        json_object_array_add(fin, json_object_new_string(VF_CVI_FINALIZER));
    json_object_object_add(status, "phase", json_object_new_string("Pending"));
    json_object_object_add(status, "cdrom", json_object_new_boolean(false));
    json_object_object_add(status, "progress", json_object_new_string("0.0%"));
    json_object_object_add(obj, "status", status);
}

int vf_cvi_validate(struct vf_module_ctx *ctx, const struct json_object *old,
                    struct json_object *obj, struct vf_error *err)
{
    (void)ctx;
    int rc = check(old, obj, err);
    if (rc == 0 && !old)
        created_defaults(obj);
    return rc;
}
