#include <config.h>
/* The HTTP(S) fetcher: one resource into the caller's file, resumed where an
 * earlier attempt stopped, hashed as it arrives and checked against the
 * checksum the user gave before it counts as downloaded. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "modules/images/import/fetch_internal.h"

#define CHECKSUM_FIELD "spec.dataSource.http.checksum"

/* "sha256:<64 hex>" or "md5:<32 hex>" into algorithm and lower-case hex. */
static int parse_checksum(const char *s, bool *is_md5, char *hex, size_t hex_len, struct vf_error *err)
{
    const char *colon = strchr(s, ':');
    size_t want;
    if (colon && (size_t)(colon - s) == 6 && strncasecmp(s, "sha256", 6) == 0) {
        *is_md5 = false;
        want = 64;
    } else if (colon && (size_t)(colon - s) == 3 && strncasecmp(s, "md5", 3) == 0) {
        *is_md5 = true;
        want = 32;
    } else {
        return vf_error_set(err, -EINVAL, 400, "Invalid", CHECKSUM_FIELD,
                            "checksum \"%s\" is not \"sha256:<hex>\" or \"md5:<hex>\"", s);
    }
    const char *h = colon + 1;
    if (strlen(h) != want || want >= hex_len)
        return vf_error_set(err, -EINVAL, 400, "Invalid", CHECKSUM_FIELD,
                            "checksum \"%s\" must have %zu hex digits after the colon", s, want);
    for (size_t i = 0; i < want; i++) {
        if (!isxdigit((unsigned char)h[i]))
            return vf_error_set(err, -EINVAL, 400, "Invalid", CHECKSUM_FIELD,
                                "checksum \"%s\" has a character that is not a hex digit", s);
        hex[i] = (char)tolower((unsigned char)h[i]);
    }
    hex[want] = '\0';
    return 0;
}

int vf_fetch_http_run(const struct vf_fetch_http *req, const struct vf_fetch_common *common, int fd,
                      struct vf_fetch_result *result, struct vf_error *err)
{
    char want[65] = "";
    bool want_md5 = false;
    struct vf_hash hash;
    int rc;

    memset(result, 0, sizeof *result);
    if (!req->url || !vf_url_is_http(req->url))
        return vf_error_set(err, -EINVAL, 400, "Invalid", "spec.dataSource.http.url",
                            "\"%s\" is not an http:// or https:// URL", req->url ? req->url : "");
    if (req->checksum && *req->checksum &&
        (rc = parse_checksum(req->checksum, &want_md5, want, sizeof want, err)) < 0)
        return rc;
    if (vf_hash_init(&hash, true) < 0) {
        vf_hash_free(&hash);
        return vf_error_set(err, -ENOMEM, 500, "FetchFailed", "", "cannot set up hashing");
    }
    struct vf_xfer x = {
        .url = req->url,
        .common = common,
        .username = req->username,
        .password = req->password,
        .max_redirects = req->max_redirects,
        .fd = fd,
        .resume = true,
        .hash = &hash,
    };
    rc = vf_xfer_run(&x, err);
    free(x.mem);
    result->retries = x.retries;
    result->resumed = x.resumed;
    snprintf(result->effective_url, sizeof result->effective_url, "%s", x.effective_url);
    if (rc == 0 && (x.status < 200 || x.status > 299))
        rc = vf_xfer_status_error(&x, err);
    if (rc < 0) {
        vf_hash_free(&hash);
        return rc;
    }
    vf_hash_final(&hash, result->sha256, result->md5);
    vf_hash_free(&hash);
    result->bytes = x.bytes;
    if (want[0]) {
        const char *got = want_md5 ? result->md5 : result->sha256;
        if (strcmp(got, want) != 0)
            return vf_error_set(err, -EBADMSG, 422, "ChecksumMismatch", CHECKSUM_FIELD,
                                "%s of the download is %s, %s says %s", want_md5 ? "md5" : "sha256", got,
                                CHECKSUM_FIELD, want);
    }
    return 0;
}
