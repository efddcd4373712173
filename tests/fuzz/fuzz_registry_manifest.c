#include <config.h>
/* libFuzzer target: any bytes as what a registry or a user sends us: a
 * manifest or index (parsed, then resolved to a platform), a WWW-Authenticate
 * challenge and an image reference.  None may crash, leak, read out of
 * bounds, or accept something the callers would then trip over. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "modules/images/import/fetch_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vf_manifest m;
    struct vf_error err;
    struct vf_auth_challenge ch;
    char host[256], repo[256], ref[160];
    char *text = malloc(size + 1);
    if (!text)
        abort();
    memcpy(text, data, size);
    text[size] = '\0';

    if (vf_manifest_parse((const char *)data, size, NULL, &m, &err) == 0) {
        /* What the parser accepts, the fetcher relies on. */
        if (m.n_items > VF_MANIFEST_MAX_ITEMS || (m.n_items && !m.items))
            abort();
        for (size_t i = 0; i < m.n_items; i++)
            if (!vf_digest_valid(m.items[i].digest))
                abort();
        if (!m.is_index && !vf_digest_valid(m.config.digest))
            abort();
        if (m.is_index) {
            size_t pick;
            if (vf_manifest_pick(&m, NULL, &pick, &err) == 0 && pick >= m.n_items)
                abort();
        }
        vf_manifest_free(&m);
    } else if (err.message[0] == '\0') {
        abort();
    }
    if (vf_www_authenticate_parse(text, &ch) == 0 && ch.scheme == VF_AUTH_BEARER && !ch.realm[0])
        abort();
    if (vf_registry_reference_parse(text, host, sizeof host, repo, sizeof repo, ref, sizeof ref, &err) == 0 &&
        (!host[0] || !repo[0] || !ref[0]))
        abort();
    free(text);
    return 0;
}
