#include <config.h>
/* SHA-256 and MD5 of downloads through libcrypto's EVP interface, which uses
 * the CPU's SHA extensions where present: hashing must not be what limits an
 * import's speed. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/evp.h>

#include "modules/images/import/fetch_internal.h"

int vf_hash_init(struct vf_hash *h, bool with_md5)
{
    memset(h, 0, sizeof *h);
    h->sha256 = EVP_MD_CTX_new();
    if (with_md5)
        h->md5 = EVP_MD_CTX_new();
    if (!h->sha256 || (with_md5 && !h->md5))
        return -ENOMEM;
    return vf_hash_reset(h);
}

int vf_hash_reset(struct vf_hash *h)
{
    if (EVP_DigestInit_ex(h->sha256, EVP_sha256(), NULL) != 1)
        return -EIO;
    if (h->md5 && EVP_DigestInit_ex(h->md5, EVP_md5(), NULL) != 1)
        return -EIO;
    return 0;
}

void vf_hash_update(struct vf_hash *h, const void *buf, size_t len)
{
    EVP_DigestUpdate(h->sha256, buf, len);
    if (h->md5)
        EVP_DigestUpdate(h->md5, buf, len);
}

static void hex(const unsigned char *d, unsigned n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < n; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[2 * n] = '\0';
}

void vf_hash_final(struct vf_hash *h, char sha256_hex[VF_FETCH_SHA256_HEX], char md5_hex[33])
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    EVP_DigestFinal_ex(h->sha256, d, &n);
    hex(d, n, sha256_hex);
    if (md5_hex) {
        md5_hex[0] = '\0';
        if (h->md5 && EVP_DigestFinal_ex(h->md5, d, &n) == 1)
            hex(d, n, md5_hex);
    }
}

void vf_hash_free(struct vf_hash *h)
{
    EVP_MD_CTX_free(h->sha256);
    EVP_MD_CTX_free(h->md5);
    h->sha256 = h->md5 = NULL;
}

int vf_hash_fd(struct vf_hash *h, int fd, uint64_t len, atomic_bool *cancel, struct vf_error *err)
{
    enum { CHUNK = 1 << 20 };
    char *buf = malloc(CHUNK);
    uint64_t off = 0;
    if (!buf)
        return vf_error_set(err, -ENOMEM, 500, "FetchFailed", "", "out of memory hashing a partial download");
    while (off < len) {
        size_t want = len - off < CHUNK ? (size_t)(len - off) : CHUNK;
        ssize_t n = pread(fd, buf, want, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            free(buf);
            return vf_error_set(err, -e, 500, "FetchFailed", "",
                                "reading back the partial download at byte %llu: %s",
                                (unsigned long long)off, n < 0 ? strerror(e) : "file shorter than expected");
        }
        vf_hash_update(h, buf, (size_t)n);
        off += (uint64_t)n;
        if (cancel && atomic_load(cancel)) {
            free(buf);
            return vf_error_set(err, -ECANCELED, 499, "Canceled", "", "the download was canceled");
        }
    }
    free(buf);
    return 0;
}
