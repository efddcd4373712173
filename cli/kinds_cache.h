/* Resource kinds as the server describes them (discovery).  Modules add kinds
 * at run time, so the CLI knows none by heart: the user's word (kind, plural,
 * singular or short name, any case) is resolved against what the daemon
 * serves now.  Discovery is fetched once per command run and kept. */
#ifndef VF_CLI_KINDS_CACHE_H
#define VF_CLI_KINDS_CACHE_H
#include <stddef.h>
#include <json-c/json.h>
#include "client.h"
#include "render.h"

struct vf_kind_info {
    char *kind;             /* VirtualMachine */
    char *plural;           /* virtualmachines */
    char *singular;         /* virtualmachine */
    char **short_names;
    size_t n_short;
    struct vf_column *columns;
    size_t n_columns;
};

struct vf_kinds_cache {
    struct vf_kind_info *kinds;
    size_t n;
    int loaded;
};

/* From a discovery document {"resources":[...]}.  Entries without kind or
 * plural are skipped.  Returns 0, or -1 with err filled. */
int vf_kinds_cache_parse(struct vf_kinds_cache *kc, struct json_object *discovery, char *err, size_t errlen);

/* Case-insensitive; NULL when the server has no such kind. */
const struct vf_kind_info *vf_kinds_cache_find(const struct vf_kinds_cache *kc, const char *word);

/* The names a user may type, for "did you mean" lists: "vm, vmclass, ..." (malloc'd). */
char *vf_kinds_cache_names(const struct vf_kinds_cache *kc);

void vf_kinds_cache_clear(struct vf_kinds_cache *kc);
#endif
