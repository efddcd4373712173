/* HTTP/1.1 + JSON to virtfleetd over its unix socket, with libcurl.
 *
 * One easy handle is reused for every request so that a command that makes
 * several (apply: GET then PUT per document) keeps one connection. */
#ifndef VF_CLI_CLIENT_H
#define VF_CLI_CLIENT_H
#include <stdbool.h>
#include <stddef.h>
#include <json-c/json.h>

#define VF_API_PREFIX "/apis/virtfleet.io/v1alpha2"

/* autoconf's config.h defines it; a bare compiler run (development) may not. */
#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

struct vf_client;

/* A response with any HTTP status. */
struct vf_response {
    long status;
    struct json_object *body;   /* owned; NULL when the body was empty */
    char *text;                 /* the raw body when it was not JSON (owned), else NULL */
};
void vf_response_clear(struct vf_response *r);

/* timeout_s bounds each request (0: none).  NULL on out of memory. */
struct vf_client *vf_client_new(const char *socket_path, long timeout_s);
void vf_client_free(struct vf_client *c);
const char *vf_client_socket(const struct vf_client *c);

/* Returns 0 when the server answered (look at resp->status), or
 *   -ENOTCONN  the socket is missing, refused or not accessible,
 *   -ETIMEDOUT no answer within the timeout,
 *   -EIO       anything else (the connection broke, the answer is garbled).
 * vf_client_error() then says what happened and what to check. */
int vf_client_request(struct vf_client *c, const char *method, const char *path,
                      const char *content_type, struct json_object *body, struct vf_response *resp);
const char *vf_client_error(const struct vf_client *c);

/* Called for each watch event.  object is borrowed.  Return non-zero to stop. */
typedef int (*vf_client_watch_fn)(void *opaque, const char *type, struct json_object *object);

/* Stream a watch (path with ?watch=1) until fn stops it, the server ends the
 * stream or timeout_s passes (0: never).  Returns 0 (see *stopped), an error
 * as vf_client_request(), or 0 with resp->status >= 400 when the server
 * refused the watch. */
int vf_client_watch(struct vf_client *c, const char *path, long timeout_s, vf_client_watch_fn fn,
                    void *opaque, bool *stopped, struct vf_response *resp);

/* Percent-encode s for a path segment or query value (malloc'd). */
char *vf_client_escape(const char *s);

/* PREFIX/plural[/name][?labelSelector=..][&watch=1][&resourceVersion=..]
 * with every user-given part escaped (malloc'd).  name, selector and rv may
 * be NULL. */
char *vf_client_path(const char *plural, const char *name, const char *selector, bool watch,
                     const char *rv);

/* The server's error body {"error":{...}}: pointers into resp (never NULL). */
void vf_response_error(const struct vf_response *resp, const char **reason, const char **message,
                       const char **field);
#endif
