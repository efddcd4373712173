/* The upload listener: a libmicrohttpd daemon on a TCP address of its own
 * (settings upload.listen) that takes `PUT|POST /upload/<token>` with the raw
 * image as the body (Content-Length or chunked) and streams it into the image
 * store's download file of the image the token belongs to.
 *
 * Tokens are single-use and expire: a token is registered by the loop thread
 * for one ClusterVirtualImage; one upload at a time may use it; a body bigger
 * than the token's limit is refused with 413 (early, from Content-Length, when
 * there is one); a finished upload consumes the token (a second one gets 409);
 * an unknown token gets 404 and an expired one 410.  A broken upload (client
 * gone) removes the partial file and leaves the token usable again.
 *
 * Threads: the listener's threads only touch the token table (under a mutex)
 * and the store's files; outcomes go to the loop thread through the `done`
 * callback, which must hand them over with core->loop_post. */
#ifndef VF_IMAGES_UPLOAD_H
#define VF_IMAGES_UPLOAD_H
#include <stdbool.h>
#include <stdint.h>
#include <virtfleet/module.h>
#include "image_store.h"

#define VF_UPLOAD_TOKEN_HEX 65   /* 32 random bytes as hex, and the NUL */

struct vf_upload_server;

/* A finished upload (the body is in the download file); ownership passes to
 * the done callback (free()). */
struct vf_upload_outcome {
    char token[VF_UPLOAD_TOKEN_HEX];
    char uid[64];
    uint64_t bytes;
};

/* Called on a listener thread: hand the outcome to the loop thread. */
typedef void (*vf_upload_done_fn)(void *opaque, struct vf_upload_outcome *outcome);

/* listen: "HOST:PORT" with a numeric IPv4 or [IPv6] address; port 0 picks one. */
int vf_upload_server_start(struct vf_upload_server **out, const char *listen,
                           const struct vf_dvcr *dvcr, vf_upload_done_fn done, void *opaque,
                           struct vf_error *err);
/* Stops the listener and waits for its threads; pending uploads are dropped. */
void vf_upload_server_stop(struct vf_upload_server *s);
/* The bound port and address (as given), for the URLs. */
uint16_t vf_upload_server_port(const struct vf_upload_server *s);
const char *vf_upload_server_host(const struct vf_upload_server *s);

/* A fresh random token (hex).  0 or a negative errno (getrandom). */
int vf_upload_token_new(char token[VF_UPLOAD_TOKEN_HEX]);

/* Let token upload into uid's download file, at most max_bytes, until
 * expires_at (CLOCK_REALTIME seconds).  Re-adding a token updates its limits. */
int vf_upload_token_add(struct vf_upload_server *s, const char *token, const char *uid,
                        uint64_t max_bytes, int64_t expires_at);
void vf_upload_token_remove(struct vf_upload_server *s, const char *token);
/* Progress of the token's upload.  false when none is running or finished (an
 * expiring token is one for which this is false). */
bool vf_upload_token_progress(struct vf_upload_server *s, const char *token, uint64_t *done,
                              uint64_t *total);
#endif
