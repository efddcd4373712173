/* Discovery, parsed once per run.  The fetch itself lives in the commands
 * (they own the client and the error reporting); this file only understands
 * the document and answers "which kind does the user mean". */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "kinds_cache.h"

static char *string_member(struct json_object *obj, const char *key)
{
    struct json_object *v;
    if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string) ||
        json_object_get_string_len(v) == 0)
        return NULL;
    return strdup(json_object_get_string(v));
}

static void kind_clear(struct vf_kind_info *k)
{
    free(k->kind);
    free(k->plural);
    free(k->singular);
    for (size_t i = 0; i < k->n_short; i++)
        free(k->short_names[i]);
    free(k->short_names);
    for (size_t i = 0; i < k->n_columns; i++) {
        free(k->columns[i].header);
        free(k->columns[i].path);
    }
    free(k->columns);
    memset(k, 0, sizeof *k);
}

/* [["PHASE","status.phase"], ...]; malformed pairs are skipped rather than
 * failing the whole command over one module's typo. */
static int parse_columns(struct vf_kind_info *k, struct json_object *cols)
{
    size_t n = json_object_is_type(cols, json_type_array) ? json_object_array_length(cols) : 0;

    if (n == 0)
        return 0;
    k->columns = calloc(n, sizeof *k->columns);
    if (!k->columns)
        return -1;
    for (size_t i = 0; i < n; i++) {
        struct json_object *pair = json_object_array_get_idx(cols, i);
        struct json_object *h, *p;
        if (!json_object_is_type(pair, json_type_array) || json_object_array_length(pair) < 2)
            continue;
        h = json_object_array_get_idx(pair, 0);
        p = json_object_array_get_idx(pair, 1);
        if (!json_object_is_type(h, json_type_string) || !json_object_is_type(p, json_type_string))
            continue;
        k->columns[k->n_columns].header = strdup(json_object_get_string(h));
        k->columns[k->n_columns].path = strdup(json_object_get_string(p));
        if (!k->columns[k->n_columns].header || !k->columns[k->n_columns].path) {
            k->n_columns++;
            return -1;
        }
        k->n_columns++;
    }
    return 0;
}

static int parse_short_names(struct vf_kind_info *k, struct json_object *names)
{
    size_t n = json_object_is_type(names, json_type_array) ? json_object_array_length(names) : 0;

    if (n == 0)
        return 0;
    k->short_names = calloc(n, sizeof *k->short_names);
    if (!k->short_names)
        return -1;
    for (size_t i = 0; i < n; i++) {
        struct json_object *s = json_object_array_get_idx(names, i);
        if (!json_object_is_type(s, json_type_string))
            continue;
        k->short_names[k->n_short] = strdup(json_object_get_string(s));
        if (!k->short_names[k->n_short])
            return -1;
        k->n_short++;
    }
    return 0;
}

int vf_kinds_cache_parse(struct vf_kinds_cache *kc, struct json_object *discovery, char *err, size_t errlen)
{
    struct json_object *res, *v;
    size_t n;

    vf_kinds_cache_clear(kc);
    if (!json_object_object_get_ex(discovery, "resources", &res) || !json_object_is_type(res, json_type_array)) {
        snprintf(err, errlen, "the server's discovery document has no \"resources\" list");
        return -1;
    }
    n = json_object_array_length(res);
    kc->kinds = calloc(n ? n : 1, sizeof *kc->kinds);
    if (!kc->kinds)
        goto oom;
    for (size_t i = 0; i < n; i++) {
        struct json_object *r = json_object_array_get_idx(res, i);
        struct vf_kind_info *k = &kc->kinds[kc->n];
        if (!json_object_is_type(r, json_type_object))
            continue;
        k->kind = string_member(r, "kind");
        k->plural = string_member(r, "plural");
        if (!k->kind || !k->plural) {
            kind_clear(k);
            continue;
        }
        k->singular = string_member(r, "singular");
        if (!k->singular) {
            /* kubectl's convention when the server omits it. */
            k->singular = strdup(k->kind);
            for (char *p = k->singular; p && *p; p++)
                *p = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
        }
        kc->n++;
        if (!k->singular ||
            (json_object_object_get_ex(r, "shortNames", &v) && parse_short_names(k, v) < 0) ||
            (json_object_object_get_ex(r, "columns", &v) && parse_columns(k, v) < 0))
            goto oom;
    }
    kc->loaded = 1;
    return 0;
oom:
    vf_kinds_cache_clear(kc);
    snprintf(err, errlen, "out of memory");
    return -1;
}

const struct vf_kind_info *vf_kinds_cache_find(const struct vf_kinds_cache *kc, const char *word)
{
    for (size_t i = 0; i < kc->n; i++) {
        const struct vf_kind_info *k = &kc->kinds[i];
        if (strcasecmp(word, k->kind) == 0 || strcasecmp(word, k->plural) == 0 ||
            strcasecmp(word, k->singular) == 0)
            return k;
        for (size_t j = 0; j < k->n_short; j++)
            if (strcasecmp(word, k->short_names[j]) == 0)
                return k;
    }
    return NULL;
}

char *vf_kinds_cache_names(const struct vf_kinds_cache *kc)
{
    size_t len = 1;
    char *s;

    for (size_t i = 0; i < kc->n; i++)
        len += strlen(kc->kinds[i].plural) + 2 +
               (kc->kinds[i].n_short ? strlen(kc->kinds[i].short_names[0]) + 3 : 0);
    s = malloc(len);
    if (!s)
        return NULL;
    s[0] = '\0';
    for (size_t i = 0; i < kc->n; i++) {
        const struct vf_kind_info *k = &kc->kinds[i];
        if (i)
            strcat(s, ", ");
        strcat(s, k->plural);
        if (k->n_short) {
            strcat(s, " (");
            strcat(s, k->short_names[0]);
            strcat(s, ")");
        }
    }
    return s;
}

void vf_kinds_cache_clear(struct vf_kinds_cache *kc)
{
    for (size_t i = 0; i < kc->n; i++)
        kind_clear(&kc->kinds[i]);
    free(kc->kinds);
    memset(kc, 0, sizeof *kc);
}
