#include <config.h>
/* The text of the OCI distribution protocol, all of it untrusted: image
 * references (from users), WWW-Authenticate challenges and manifests (from
 * registries).  No network here, so that the fuzz target reaches it all. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <json-c/json.h>

#include "modules/images/import/fetch_internal.h"

#define IMAGE_FIELD "spec.dataSource.containerImage.image"

/* ---- references ------------------------------------------------------- */

static bool host_valid(const char *h, size_t n)
{
    size_t i = 0;
    if (n == 0)
        return false;
    if (h[0] == '[') {  /* [IPv6] */
        const char *close = memchr(h, ']', n);
        if (!close || close == h + 1)
            return false;
        for (const char *p = h + 1; p < close; p++)
            if (!isxdigit((unsigned char)*p) && *p != ':')
                return false;
        i = (size_t)(close - h) + 1;
    } else {
        while (i < n && (isalnum((unsigned char)h[i]) || h[i] == '.' || h[i] == '-'))
            i++;
        if (i == 0 || h[0] == '.' || h[0] == '-')
            return false;
    }
    if (i == n)
        return true;
    if (h[i] != ':' || i + 1 == n || n - i - 1 > 5)
        return false;
    for (size_t j = i + 1; j < n; j++)
        if (!isdigit((unsigned char)h[j]))
            return false;
    return atoi(h + i + 1) > 0 && atoi(h + i + 1) < 65536;
}

/* Components of lower-case letters and digits, separated inside by . _ -. */
static bool repository_valid(const char *r, size_t n)
{
    size_t start = 0;
    if (n == 0 || n > 255)
        return false;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && r[i] != '/') {
            char c = r[i];
            if (!(islower((unsigned char)c) || isdigit((unsigned char)c) || c == '.' || c == '_' || c == '-'))
                return false;
            continue;
        }
        if (i == start || !isalnum((unsigned char)r[start]) || !isalnum((unsigned char)r[i - 1]))
            return false;
        start = i + 1;
    }
    return true;
}

static bool tag_valid(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > 128 || !(isalnum((unsigned char)t[0]) || t[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!(isalnum((unsigned char)t[i]) || t[i] == '_' || t[i] == '.' || t[i] == '-'))
            return false;
    return true;
}

bool vf_digest_valid(const char *d)
{
    if (!d || strncmp(d, "sha256:", 7) != 0 || strlen(d) != 7 + 64)
        return false;
    for (const char *p = d + 7; *p; p++)
        if (!isdigit((unsigned char)*p) && !(*p >= 'a' && *p <= 'f'))
            return false;
    return true;
}

int vf_registry_reference_parse(const char *image, char *host, size_t host_len, char *repository,
                                size_t repository_len, char *reference, size_t reference_len,
                                struct vf_error *err)
{
    const char *slash, *digest, *repo, *end, *colon = NULL;
    char ref[160];

    if (!image || !*image)
        return vf_error_set(err, -EINVAL, 400, "Invalid", IMAGE_FIELD, "the image reference is empty");
    slash = strchr(image, '/');
    if (!slash || !host_valid(image, (size_t)(slash - image)) ||
        (!memchr(image, '.', (size_t)(slash - image)) && !memchr(image, ':', (size_t)(slash - image)) &&
         strncmp(image, "localhost/", 10) != 0))
        return vf_error_set(err, -EINVAL, 400, "Invalid", IMAGE_FIELD,
                            "image \"%s\" names no registry host: write it as host[:port]/repository[:tag]",
                            image);
    repo = slash + 1;
    digest = strchr(repo, '@');
    end = digest ? digest : repo + strlen(repo);
    /* A tag's colon comes after the last slash. */
    for (const char *p = repo; p < end; p++) {
        if (*p == '/')
            colon = NULL;
        else if (*p == ':')
            colon = p;
    }
    if (colon)
        end = colon;
    if (!repository_valid(repo, (size_t)(end - repo)))
        return vf_error_set(err, -EINVAL, 400, "Invalid", IMAGE_FIELD,
                            "image \"%s\": the repository must be lower-case letters, digits and . _ - "
                            "between slashes", image);
    if (digest) {
        if (!vf_digest_valid(digest + 1))
            return vf_error_set(err, -EINVAL, 400, "Invalid", IMAGE_FIELD,
                                "image \"%s\": the digest must be sha256: and 64 lower-case hex digits", image);
        snprintf(ref, sizeof ref, "%s", digest + 1);
    } else if (colon) {
        snprintf(ref, sizeof ref, "%s", colon + 1);
    } else {
        snprintf(ref, sizeof ref, "latest");
    }
    if (colon) {
        /* A tag next to a digest is checked but the digest wins. */
        char tag[160];
        const char *tag_end = digest ? digest : colon + strlen(colon);
        snprintf(tag, sizeof tag, "%.*s", (int)(tag_end - colon - 1), colon + 1);
        if (!tag_valid(tag))
            return vf_error_set(err, -EINVAL, 400, "Invalid", IMAGE_FIELD,
                                "image \"%s\": the tag must be up to 128 letters, digits and _ . - ", image);
    }
    if ((size_t)(slash - image) >= host_len || (size_t)(end - repo) >= repository_len ||
        strlen(ref) >= reference_len)
        return vf_error_set(err, -ENAMETOOLONG, 400, "Invalid", IMAGE_FIELD, "image \"%s\" is too long", image);
    snprintf(host, host_len, "%.*s", (int)(slash - image), image);
    snprintf(repository, repository_len, "%.*s", (int)(end - repo), repo);
    snprintf(reference, reference_len, "%s", ref);
    return 0;
}

/* ---- WWW-Authenticate ------------------------------------------------- */

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

int vf_www_authenticate_parse(const char *value, struct vf_auth_challenge *c)
{
    const char *p = skip_ws(value ? value : "");
    size_t n = 0;
    memset(c, 0, sizeof *c);
    while (p[n] && p[n] != ' ' && p[n] != '\t')
        n++;
    if (n == 0)
        return -EINVAL;
    if (n == 6 && strncasecmp(p, "Bearer", 6) == 0)
        c->scheme = VF_AUTH_BEARER;
    else if (n == 5 && strncasecmp(p, "Basic", 5) == 0)
        c->scheme = VF_AUTH_BASIC;
    else
        c->scheme = VF_AUTH_OTHER;
    p = skip_ws(p + n);
    while (*p) {
        char name[32], val[512];
        size_t nn = 0, vn = 0;
        while (*p && *p != '=' && *p != ',' && *p != ' ' && *p != '\t') {
            if (nn + 1 >= sizeof name)
                return -EINVAL;
            name[nn++] = *p++;
        }
        name[nn] = '\0';
        p = skip_ws(p);
        if (nn == 0 || *p != '=')
            return -EINVAL;
        p = skip_ws(p + 1);
        if (*p == '"') {
            for (p++; *p && *p != '"'; p++) {
                if (*p == '\\' && p[1])
                    p++;
                if (vn + 1 >= sizeof val)
                    return -EINVAL;
                val[vn++] = *p;
            }
            if (*p != '"')
                return -EINVAL;
            p++;
        } else {
            while (*p && *p != ',' && *p != ' ' && *p != '\t') {
                if (vn + 1 >= sizeof val)
                    return -EINVAL;
                val[vn++] = *p++;
            }
        }
        val[vn] = '\0';
        for (const char *v = val; *v; v++)
            if ((unsigned char)*v < 0x20 || *v == 0x7f)
                return -EINVAL;   /* nothing that could split a header later */
        if (strcasecmp(name, "realm") == 0)
            snprintf(c->realm, sizeof c->realm, "%s", val);
        else if (strcasecmp(name, "service") == 0)
            snprintf(c->service, sizeof c->service, "%s", val);
        else if (strcasecmp(name, "scope") == 0)
            snprintf(c->scope, sizeof c->scope, "%s", val);
        p = skip_ws(p);
        if (*p == ',')
            p = skip_ws(p + 1);
        else if (*p)
            return -EINVAL;
    }
    if (c->scheme == VF_AUTH_BEARER && !c->realm[0])
        return -EINVAL;
    return 0;
}

/* ---- manifests -------------------------------------------------------- */

static const char *str_member(struct json_object *o, const char *key)
{
    struct json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static int copy_str(char *dst, size_t len, const char *src, const char *what, struct vf_error *err)
{
    if (strlen(src) >= len)
        return vf_error_set(err, -EINVAL, 502, "InvalidImage", "", "the manifest's %s is too long", what);
    snprintf(dst, len, "%s", src);
    return 0;
}

static int descriptor(struct json_object *o, bool with_platform, struct vf_descriptor *d, const char *what,
                      struct vf_error *err)
{
    struct json_object *v;
    const char *s;
    int rc;
    memset(d, 0, sizeof *d);
    if (!json_object_is_type(o, json_type_object))
        return vf_error_set(err, -EINVAL, 502, "InvalidImage", "", "the manifest's %s is not an object", what);
    if (!(s = str_member(o, "mediaType")))
        return vf_error_set(err, -EINVAL, 502, "InvalidImage", "", "the manifest's %s has no mediaType", what);
    if ((rc = copy_str(d->media_type, sizeof d->media_type, s, "mediaType", err)) < 0)
        return rc;
    s = str_member(o, "digest");
    if (!s || !vf_digest_valid(s))
        return vf_error_set(err, -EINVAL, 502, "InvalidImage", "",
                            "the manifest's %s has digest \"%.80s\", not sha256: and 64 hex digits", what,
                            s ? s : "");
    snprintf(d->digest, sizeof d->digest, "%s", s);
    if (!json_object_object_get_ex(o, "size", &v) || !json_object_is_type(v, json_type_int) ||
        json_object_get_int64(v) < 0)
        return vf_error_set(err, -EINVAL, 502, "InvalidImage", "", "the manifest's %s has no valid size", what);
    d->size = (uint64_t)json_object_get_int64(v);
    if (with_platform && json_object_object_get_ex(o, "platform", &v)) {
        if (!json_object_is_type(v, json_type_object))
            return vf_error_set(err, -EINVAL, 502, "InvalidImage", "", "the index's %s platform is not an object",
                                what);
        if ((s = str_member(v, "os")) && (rc = copy_str(d->os, sizeof d->os, s, "platform os", err)) < 0)
            return rc;
        if ((s = str_member(v, "architecture")) &&
            (rc = copy_str(d->architecture, sizeof d->architecture, s, "platform architecture", err)) < 0)
            return rc;
        if ((s = str_member(v, "variant")) &&
            (rc = copy_str(d->variant, sizeof d->variant, s, "platform variant", err)) < 0)
            return rc;
    }
    return 0;
}

int vf_manifest_parse(const char *body, size_t len, const char *content_type, struct vf_manifest *m,
                      struct vf_error *err)
{
    char ct[128] = "";
    struct json_object *root = NULL, *v, *arr;
    const char *mt;
    int rc = 0;

    memset(m, 0, sizeof *m);
    if (len > VF_MANIFEST_MAX_BYTES)
        return vf_error_set(err, -EFBIG, 502, "InvalidImage", "", "the manifest is %zu bytes, more than %u",
                            len, VF_MANIFEST_MAX_BYTES);
    if (content_type) {
        size_t n = strcspn(content_type, "; \t");
        if (n < sizeof ct)
            snprintf(ct, sizeof ct, "%.*s", (int)n, content_type);
        /* Generic types say nothing about the manifest. */
        if (strcmp(ct, "application/json") == 0 || strcmp(ct, "text/plain") == 0 ||
            strcmp(ct, "application/octet-stream") == 0)
            ct[0] = '\0';
    }
    struct json_tokener *tok = json_tokener_new_ex(32);
    if (!tok)
        return vf_error_set(err, -ENOMEM, 500, "FetchFailed", "", "out of memory parsing the manifest");
    root = len ? json_tokener_parse_ex(tok, body, (int)len) : NULL;
    bool complete = root && json_tokener_get_error(tok) == json_tokener_success;
    json_tokener_free(tok);
    if (!complete || !json_object_is_type(root, json_type_object)) {
        json_object_put(root);
        return vf_error_set(err, -EINVAL, 502, "InvalidImage", "", "the manifest is not a JSON object");
    }
    if (!json_object_object_get_ex(root, "schemaVersion", &v) || !json_object_is_type(v, json_type_int) ||
        json_object_get_int64(v) != 2) {
        rc = vf_error_set(err, -EINVAL, 502, "InvalidImage", "",
                          "the manifest's schemaVersion is not 2 (Docker schema 1 is not supported)");
        goto out;
    }
    mt = str_member(root, "mediaType");
    if (mt && ct[0] && strcmp(mt, ct) != 0) {
        rc = vf_error_set(err, -EINVAL, 502, "InvalidImage", "",
                          "the manifest says mediaType \"%.100s\" but was served as \"%s\"", mt, ct);
        goto out;
    }
    if (!mt)
        mt = ct[0] ? ct : json_object_object_get_ex(root, "manifests", &v) ? VF_MT_OCI_INDEX : VF_MT_OCI_MANIFEST;
    if (strcmp(mt, VF_MT_OCI_INDEX) == 0 || strcmp(mt, VF_MT_DOCKER_LIST) == 0) {
        m->is_index = true;
    } else if (strcmp(mt, VF_MT_OCI_MANIFEST) != 0 && strcmp(mt, VF_MT_DOCKER_MANIFEST) != 0) {
        rc = vf_error_set(err, -EINVAL, 502, "InvalidImage", "",
                          "unsupported manifest media type \"%.100s\": OCI or Docker v2 schema 2 only", mt);
        goto out;
    }
    snprintf(m->media_type, sizeof m->media_type, "%s", mt);
    if (!m->is_index) {
        if (!json_object_object_get_ex(root, "config", &v)) {
            rc = vf_error_set(err, -EINVAL, 502, "InvalidImage", "", "the image manifest has no config");
            goto out;
        }
        if ((rc = descriptor(v, false, &m->config, "config", err)) < 0)
            goto out;
    }
    const char *list = m->is_index ? "manifests" : "layers";
    if (!json_object_object_get_ex(root, list, &arr) || !json_object_is_type(arr, json_type_array)) {
        rc = vf_error_set(err, -EINVAL, 502, "InvalidImage", "", "the manifest has no %s array", list);
        goto out;
    }
    size_t n = json_object_array_length(arr);
    if (n > VF_MANIFEST_MAX_ITEMS) {
        rc = vf_error_set(err, -EINVAL, 502, "InvalidImage", "", "the manifest lists %zu %s, more than %d", n,
                          list, VF_MANIFEST_MAX_ITEMS);
        goto out;
    }
    if (n) {
        m->items = calloc(n, sizeof *m->items);
        if (!m->items) {
            rc = vf_error_set(err, -ENOMEM, 500, "FetchFailed", "", "out of memory parsing the manifest");
            goto out;
        }
    }
    for (size_t i = 0; i < n; i++) {
        char what[48];
        snprintf(what, sizeof what, "%s[%zu]", list, i);
        if ((rc = descriptor(json_object_array_get_idx(arr, i), m->is_index, &m->items[i], what, err)) < 0)
            goto out;
        m->n_items++;
    }
out:
    json_object_put(root);
    if (rc < 0)
        vf_manifest_free(m);
    return rc;
}

void vf_manifest_free(struct vf_manifest *m)
{
    free(m->items);
    m->items = NULL;
    m->n_items = 0;
}

/* Splits "os/arch[/variant]" (NULL or "": linux/amd64) into 32-byte fields;
 * *p gets the platform as text. */
static int platform_split(const char *platform, const char **p, char *os, char *arch, char *variant,
                          struct vf_error *err)
{
    *p = platform && *platform ? platform : "linux/amd64";
    const char *s1 = strchr(*p, '/'), *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
    size_t arch_len = s1 ? (s2 ? (size_t)(s2 - s1 - 1) : strlen(s1 + 1)) : 0;
    if (!s1 || s1 == *p || (size_t)(s1 - *p) >= 32 || arch_len == 0 || arch_len >= 32 ||
        (s2 && (!s2[1] || strlen(s2 + 1) >= 32)))
        return vf_error_set(err, -EINVAL, 400, "Invalid", "", "platform \"%.100s\" is not os/architecture[/variant]",
                            *p);
    snprintf(os, 32, "%.*s", (int)(s1 - *p), *p);
    snprintf(arch, 32, "%.*s", (int)arch_len, s1 + 1);
    snprintf(variant, 32, "%s", s2 ? s2 + 1 : "");
    return 0;
}

int vf_manifest_pick(const struct vf_manifest *index, const char *platform, size_t *pick, struct vf_error *err)
{
    char os[32], arch[32], variant[32], have[256] = "";
    const char *p;
    int rc = platform_split(platform, &p, os, arch, variant, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < index->n_items; i++) {
        const struct vf_descriptor *d = &index->items[i];
        if (strcmp(d->os, os) == 0 && strcmp(d->architecture, arch) == 0 &&
            (!variant[0] || strcmp(d->variant, variant) == 0)) {
            *pick = i;
            return 0;
        }
        size_t n = strlen(have);
        if (n + 4 < sizeof have)
            snprintf(have + n, sizeof have - n, "%s%s/%s%s%s", n ? ", " : "", d->os[0] ? d->os : "?",
                     d->architecture[0] ? d->architecture : "?", d->variant[0] ? "/" : "", d->variant);
    }
    return vf_error_set(err, -ENOENT, 404, "FetchFailed", "", "the image index has no manifest for %s%s%s%s", p,
                        have[0] ? " (it has " : "", have, have[0] ? ")" : "");
}

int vf_image_config_check(const char *body, size_t len, const char *platform, const char *image,
                          struct vf_error *err)
{
    char os[32], arch[32], variant[32];
    const char *p, *c_os, *c_arch, *c_variant;
    int rc = platform_split(platform, &p, os, arch, variant, err);
    if (rc < 0)
        return rc;
    struct json_tokener *tok = json_tokener_new_ex(32);
    if (!tok)
        return vf_error_set(err, -ENOMEM, 500, "FetchFailed", "", "out of memory parsing the image config");
    struct json_object *root = len && len <= VF_MANIFEST_MAX_BYTES ? json_tokener_parse_ex(tok, body, (int)len) : NULL;
    bool complete = root && json_tokener_get_error(tok) == json_tokener_success;
    json_tokener_free(tok);
    if (!complete || !json_object_is_type(root, json_type_object)) {
        json_object_put(root);
        return vf_error_set(err, -EINVAL, 502, "InvalidImage", "", "%s: the image config is not a JSON object", image);
    }
    c_os = str_member(root, "os");
    c_arch = str_member(root, "architecture");
    c_variant = str_member(root, "variant");
    if ((c_os || c_arch) &&
        (!c_os || strcmp(c_os, os) != 0 || !c_arch || strcmp(c_arch, arch) != 0 ||
         (variant[0] && c_variant && strcmp(c_variant, variant) != 0)))
        rc = vf_error_set(err, -EINVAL, 422, "PlatformMismatch", "",
                          "image %s is built for %.31s/%.31s%s%.31s, not %s: use a tag or digest of the %s "
                          "image (or of an index that lists it)",
                          image, c_os ? c_os : "?", c_arch ? c_arch : "?", c_variant ? "/" : "",
                          c_variant ? c_variant : "", p, p);
    json_object_put(root);
    return rc;
}
