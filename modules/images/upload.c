#include <config.h>
/* The upload listener (see upload.h).  One thread per connection: an upload
 * is a long blocking write into the store, and there are few at a time. */
#include "upload.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <microhttpd.h>

#define UPLOAD_PREFIX "/upload/"
#define IDLE_TIMEOUT_S 120   /* a client that sends nothing for this long is dropped */

enum token_state { TOKEN_FREE, TOKEN_BUSY, TOKEN_USED };

struct token {
    char token[VF_UPLOAD_TOKEN_HEX];
    char uid[64];
    uint64_t max_bytes;
    int64_t expires_at;
    enum token_state state;
    uint64_t done, total;   /* progress of the running upload */
    struct token *next;
};

struct vf_upload_server {
    struct MHD_Daemon *mhd;
    const struct vf_dvcr *dvcr;
    vf_upload_done_fn done;
    void *opaque;
    char host[128];
    uint16_t port;
    pthread_mutex_t lock;
    struct token *tokens;
};

/* One request in flight. */
struct upload {
    struct vf_upload_server *s;
    char token[VF_UPLOAD_TOKEN_HEX];
    char uid[64];
    char path[4096];
    uint64_t max_bytes;
    uint64_t bytes;
    int fd;
    bool finished;      /* the body arrived whole and was handed over */
    bool refused;       /* a response was queued before the end (413, I/O error) */
    bool released;      /* refused, and the URL let go of at once (release()) */
};

static int64_t now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec;
}

int vf_upload_token_new(char token[VF_UPLOAD_TOKEN_HEX])
{
    unsigned char raw[32];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(token + 2 * i, 3, "%02x", raw[i]);
    return 0;
}

/* Under s->lock. */
static struct token *token_find(struct vf_upload_server *s, const char *token)
{
    for (struct token *t = s->tokens; t; t = t->next)
        if (strcmp(t->token, token) == 0)
            return t;
    return NULL;
}

int vf_upload_token_add(struct vf_upload_server *s, const char *token, const char *uid,
                        uint64_t max_bytes, int64_t expires_at)
{
    pthread_mutex_lock(&s->lock);
    struct token *t = token_find(s, token);
    if (!t) {
        if (!(t = calloc(1, sizeof *t))) {
            pthread_mutex_unlock(&s->lock);
            return -ENOMEM;
        }
        snprintf(t->token, sizeof t->token, "%s", token);
        t->next = s->tokens;
        s->tokens = t;
    }
    snprintf(t->uid, sizeof t->uid, "%s", uid);
    t->max_bytes = max_bytes;
    t->expires_at = expires_at;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

void vf_upload_token_remove(struct vf_upload_server *s, const char *token)
{
    pthread_mutex_lock(&s->lock);
    for (struct token **pp = &s->tokens; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->token, token) == 0) {
            struct token *t = *pp;
            *pp = t->next;
            free(t);
            break;
        }
    }
    pthread_mutex_unlock(&s->lock);
}

bool vf_upload_token_progress(struct vf_upload_server *s, const char *token, uint64_t *done,
                              uint64_t *total)
{
    bool busy = false;
    pthread_mutex_lock(&s->lock);
    struct token *t = token_find(s, token);
    if (t && t->state != TOKEN_FREE) {
        busy = true;
        *done = t->done;
        *total = t->total;
    }
    pthread_mutex_unlock(&s->lock);
    return busy;
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n > sizeof msg - 2)
        n = (int)sizeof msg - 2;
    msg[n++] = '\n';
    msg[n] = '\0';
    struct MHD_Response *r = MHD_create_response_from_buffer((size_t)n, msg, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

/* The first call of a request: check the token and claim it. */
static enum MHD_Result begin(struct vf_upload_server *s, struct MHD_Connection *conn,
                             const char *url, const char *method, void **con_cls)
{
    const char *token = url + strlen(UPLOAD_PREFIX);
    if (strncmp(url, UPLOAD_PREFIX, strlen(UPLOAD_PREFIX)) != 0 ||
        strlen(token) != VF_UPLOAD_TOKEN_HEX - 1 ||
        strspn(token, "0123456789abcdef") != VF_UPLOAD_TOKEN_HEX - 1)
        return reply(conn, MHD_HTTP_NOT_FOUND, "no upload here: the URL is not an upload URL");
    if (strcmp(method, "PUT") != 0 && strcmp(method, "POST") != 0)
        return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                     "send the image with PUT or POST (curl URL -T FILE)");
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    uint64_t length = 0;
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(cl, &end, 10);
        if (errno || end == cl || *end)
            return reply(conn, MHD_HTTP_BAD_REQUEST, "Content-Length \"%s\" is not a number", cl);
        length = v;
    }

    struct upload *u = calloc(1, sizeof *u);
    if (!u)
        return MHD_NO;
    pthread_mutex_lock(&s->lock);
    struct token *t = token_find(s, token);
    unsigned status = 0;
    char msg[256] = "";
    if (!t) {
        status = MHD_HTTP_NOT_FOUND;
        snprintf(msg, sizeof msg, "unknown upload URL: the image is gone or its URL changed");
    } else if (t->state == TOKEN_USED) {
        status = MHD_HTTP_CONFLICT;
        snprintf(msg, sizeof msg, "this upload URL was used already; an image is uploaded once");
    } else if (t->state == TOKEN_BUSY) {
        status = MHD_HTTP_CONFLICT;
        snprintf(msg, sizeof msg, "an upload to this URL is in progress");
    } else if (t->expires_at <= now_s()) {
        status = MHD_HTTP_GONE;
        snprintf(msg, sizeof msg, "this upload URL has expired");
    } else if (cl && length > t->max_bytes) {
        status = MHD_HTTP_CONTENT_TOO_LARGE;
        snprintf(msg, sizeof msg, "the body of %llu bytes is larger than the %llu bytes the image "
                 "store has room for", (unsigned long long)length,
                 (unsigned long long)t->max_bytes);
    } else {
        t->state = TOKEN_BUSY;
        t->done = 0;
        t->total = length;
        snprintf(u->uid, sizeof u->uid, "%s", t->uid);
        u->max_bytes = t->max_bytes;
    }
    pthread_mutex_unlock(&s->lock);
    if (status) {
        free(u);
        return reply(conn, status, "%s", msg);
    }
    u->s = s;
    u->fd = -1;
    snprintf(u->token, sizeof u->token, "%s", token);
    if (vf_dvcr_path(s->dvcr, u->uid, VF_DVCR_DOWNLOAD, u->path, sizeof u->path) == 0)
        u->fd = open(u->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    *con_cls = u;   /* from here on, completed() releases the token */
    if (u->fd < 0) {
        u->refused = true;
        return reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot create the upload file: %s",
                     strerror(errno));
    }
    return MHD_YES;
}

static void set_progress(struct upload *u)
{
    pthread_mutex_lock(&u->s->lock);
    struct token *t = token_find(u->s, u->token);
    if (t)
        t->done = u->bytes;
    pthread_mutex_unlock(&u->s->lock);
}

static void hand_over(struct upload *u)
{
    struct vf_upload_outcome *o = calloc(1, sizeof *o);
    if (!o)
        return;
    snprintf(o->token, sizeof o->token, "%s", u->token);
    snprintf(o->uid, sizeof o->uid, "%s", u->uid);
    o->bytes = u->bytes;
    u->s->done(u->s->opaque, o);
}

/* A refused upload lets go of its URL and its partial file before its answer
 * is queued: the client may try again as soon as it reads the answer, and the
 * request's completion (completed()) comes only after that. */
static void refuse(struct upload *u)
{
    u->refused = u->released = true;
    if (u->fd >= 0)
        close(u->fd);
    u->fd = -1;
    unlink(u->path);
    pthread_mutex_lock(&u->s->lock);
    struct token *t = token_find(u->s, u->token);
    if (t && t->state == TOKEN_BUSY) {
        t->state = TOKEN_FREE;
        t->done = 0;
    }
    pthread_mutex_unlock(&u->s->lock);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *data,
                              size_t *size, void **con_cls)
{
    struct vf_upload_server *s = cls;
    struct upload *u = *con_cls;
    (void)version;
    if (!u)
        return begin(s, conn, url, method, con_cls);
    if (u->refused) {
        *size = 0;   /* the answer is queued; what still arrives is dropped */
        return MHD_YES;
    }
    if (*size) {
        if (u->bytes + *size > u->max_bytes) {
            refuse(u);
            *size = 0;
            return reply(conn, MHD_HTTP_CONTENT_TOO_LARGE, "the upload passed the %llu bytes the "
                         "image store has room for", (unsigned long long)u->max_bytes);
        }
        size_t off = 0;
        while (off < *size) {
            ssize_t n = write(u->fd, data + off, *size - off);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                int e = errno;
                refuse(u);
                *size = 0;
                return reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "writing the upload failed: %s",
                             strerror(e));
            }
            off += (size_t)n;
        }
        bool tick = (u->bytes >> 20) != ((u->bytes + *size) >> 20);
        u->bytes += *size;
        *size = 0;
        if (tick)
            set_progress(u);
        return MHD_YES;
    }
    /* The whole body is here. */
    if (fsync(u->fd) < 0 || close(u->fd) < 0) {
        int e = errno;
        u->fd = -1;
        refuse(u);
        return reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "storing the upload failed: %s",
                     strerror(e));
    }
    u->fd = -1;
    if (u->bytes == 0) {
        refuse(u);
        return reply(conn, MHD_HTTP_BAD_REQUEST, "the upload is empty; send the image file as the "
                     "body (curl URL -T FILE)");
    }
    pthread_mutex_lock(&s->lock);
    struct token *t = token_find(s, u->token);
    if (t) {
        t->state = TOKEN_USED;
        t->done = u->bytes;
    }
    pthread_mutex_unlock(&s->lock);
    u->finished = true;
    hand_over(u);
    return reply(conn, MHD_HTTP_OK, "received %llu bytes; the image is being checked and stored",
                 (unsigned long long)u->bytes);
}

/* Every request ends here, also when the client went away mid-body. */
static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    struct vf_upload_server *s = cls;
    struct upload *u = *con_cls;
    (void)conn;
    (void)toe;
    if (!u)
        return;
    *con_cls = NULL;
    if (u->fd >= 0)
        close(u->fd);
    if (!u->finished && !u->released) {
        unlink(u->path);
        pthread_mutex_lock(&s->lock);
        struct token *t = token_find(s, u->token);
        if (t && t->state == TOKEN_BUSY) {
            /* A broken upload may be tried again: the token stays valid. */
            t->state = TOKEN_FREE;
            t->done = 0;
        }
        pthread_mutex_unlock(&s->lock);
    }
    free(u);
}

static int parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *len,
                        char *host, size_t host_len, struct vf_error *err)
{
    const char *colon = strrchr(listen, ':');
    char h[128];
    if (!colon || colon == listen || (size_t)(colon - listen) >= sizeof h)
        return vf_error_set(err, -EINVAL, 400, "Invalid", "upload.listen",
                            "\"%s\" is not HOST:PORT (e.g. 127.0.0.1:8445)", listen);
    memcpy(h, listen, (size_t)(colon - listen));
    h[colon - listen] = '\0';
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end || port < 0 || port > 65535)
        return vf_error_set(err, -EINVAL, 400, "Invalid", "upload.listen",
                            "\"%s\": the port must be 0..65535", listen);
    memset(ss, 0, sizeof *ss);
    if (h[0] == '[' && h[strlen(h) - 1] == ']') {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
        h[strlen(h) - 1] = '\0';
        if (inet_pton(AF_INET6, h + 1, &a6->sin6_addr) != 1)
            return vf_error_set(err, -EINVAL, 400, "Invalid", "upload.listen",
                                "\"%s\": not a numeric IPv6 address", listen);
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *len = sizeof *a6;
        snprintf(host, host_len, "[%s]", h + 1);
        return 0;
    }
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    if (inet_pton(AF_INET, h, &a4->sin_addr) != 1)
        return vf_error_set(err, -EINVAL, 400, "Invalid", "upload.listen",
                            "\"%s\": not a numeric IPv4 address (names are not resolved)", listen);
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    *len = sizeof *a4;
    snprintf(host, host_len, "%s", h);
    return 0;
}

int vf_upload_server_start(struct vf_upload_server **out, const char *listen,
                           const struct vf_dvcr *dvcr, vf_upload_done_fn done, void *opaque,
                           struct vf_error *err)
{
    struct sockaddr_storage ss;
    socklen_t len;
    struct vf_upload_server *s = calloc(1, sizeof *s);
    if (!s)
        return vf_error_set(err, -ENOMEM, 500, "Internal", "", "out of memory");
    int rc = parse_listen(listen, &ss, &len, s->host, sizeof s->host, err);
    if (rc < 0) {
        free(s);
        return rc;
    }
    s->dvcr = dvcr;
    s->done = done;
    s->opaque = opaque;
    pthread_mutex_init(&s->lock, NULL);
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    s->mhd = MHD_start_daemon(flags, 0, NULL, NULL, handle, s,
                              MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                              MHD_OPTION_NOTIFY_COMPLETED, completed, s,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT_S,
                              MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(1024 * 1024),
                              MHD_OPTION_END);
    if (!s->mhd) {
        pthread_mutex_destroy(&s->lock);
        free(s);
        return vf_error_set(err, -EADDRINUSE, 400, "Invalid", "upload.listen",
                            "cannot listen on %s (address in use or not local?)", listen);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : 0;
    *out = s;
    return 0;
}

void vf_upload_server_stop(struct vf_upload_server *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->mhd);
    while (s->tokens) {
        struct token *t = s->tokens;
        s->tokens = t->next;
        free(t);
    }
    pthread_mutex_destroy(&s->lock);
    free(s);
}

uint16_t vf_upload_server_port(const struct vf_upload_server *s)
{
    return s->port;
}

const char *vf_upload_server_host(const struct vf_upload_server *s)
{
    return s->host;
}
