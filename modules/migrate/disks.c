/* Which disks a block migration copies, read from the domain's XML (pure,
 * also linked into tests/unit/check_migrate).  job.c uses it to learn which
 * of them the target lacks before the copy, and so which volumes libvirt
 * made there and a failed migration leaves behind. */
#include <config.h>
#include "migrate.h"

#include <stdbool.h>
#include <string.h>

/* The files of the domain's writable disks (<disk type='file'> with a
 * <source file=...>, neither read-only nor shareable): what
 * VIR_MIGRATE_NON_SHARED_DISK copies.  Paths with XML escapes are left out
 * (they are never cleaned up, which is the safe side).  Returns how many. */
size_t mig_disk_paths(const char *xml, char paths[][MIG_PATH_MAX], size_t max)
{
    size_t n = 0;
    const char *p = xml;
    while (p && n < max && (p = strstr(p, "<disk "))) {
        const char *end = strstr(p, "</disk>");
        if (!end)
            break;
        size_t len = (size_t)(end - p);
        const char *open_end = memchr(p, '>', len);
        const char *src = memmem(p, len, "<source file=", 13);
        size_t open_len = open_end ? (size_t)(open_end - p) : 0;
        bool file = open_end && (memmem(p, open_len, "type='file'", 11) ||
                                 memmem(p, open_len, "type=\"file\"", 11));
        bool skip = memmem(p, len, "<readonly/>", 11) || memmem(p, len, "<shareable/>", 12);
        if (file && !skip && src) {
            char quote = src[13];
            const char *v = src + 14, *close = memchr(v, quote, (size_t)(end - v));
            if ((quote == '\'' || quote == '"') && close && close > v &&
                (size_t)(close - v) < MIG_PATH_MAX && !memchr(v, '&', (size_t)(close - v))) {
                memcpy(paths[n], v, (size_t)(close - v));
                paths[n][close - v] = '\0';
                n++;
            }
        }
        p = end + 7;
    }
    return n;
}

