/* The REST/JSON API server: libmicrohttpd on a unix socket we create ourselves.
 *
 * Owns: the listening socket, the per-connection threads libmicrohttpd runs and
 * the hand-off of each request to the loop thread.  The operations themselves
 * are in api_ops.c, watch streams in api_watch.c, module routes in
 * api_routes.c, replies in api_reply.c (api_internal.h joins them).
 *
 * Threading.  Connection threads parse the request (path, query, body) and hand
 * an `api_op` to the loop thread, which does everything that touches kinds,
 * objects, modules and routes, and serializes the answer to text there (json-c
 * objects from the store are not safe to print from two threads).  The hand-off
 * is vf_loop_post() plus a wait the connection thread can give up on while the
 * server stops: vf_api_stop() may be called from the loop thread itself, and a
 * connection thread blocked in vf_loop_call() would then never return and
 * MHD_stop_daemon() would never finish joining it.  An abandoned op is freed by
 * the loop thread when it gets to it. */
#include <config.h> /* autoconf's; core/config.h is the daemon's configuration */

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <microhttpd.h>

#include "api.h"
#include "api_internal.h"
#include "log.h"
#include "loop.h"

#define API_DEFAULT_MAX_BODY ((size_t)4 << 20)
#define API_DEFAULT_MAX_CONNECTIONS 256u
/* Request headers and the read buffer live in this; 64 KiB fits any sane header set. */
#define API_CONNECTION_MEMORY ((size_t)64 << 10)
/* Idle timeout of ordinary requests; watches switch it off for their connection. */
#define API_CONNECTION_TIMEOUT_S 60u
/* How often a connection waiting for the loop looks whether the server stops. */
#define API_OP_POLL_MS 200
/* An oversized chunked upload is read and dropped (so the client can get its 413)
 * only up to this much; beyond it the connection is cut. */
#define API_DISCARD_MAX ((size_t)16 << 20)

/* ---- state -------------------------------------------------------------- */

struct api_server api = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* ---- small helpers ------------------------------------------------------ */

void api_deadline(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

int api_cond_init(pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    int r;

    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    r = pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
    return -r;
}

static bool api_is_get(const char *method)
{
    return !strcmp(method, "GET") || !strcmp(method, "HEAD");
}

/* ---- one request's op ------------------------------------------------------ */

static struct api_op *api_op_new(enum api_op_type type, const struct vf_audit_actor *actor, int fd)
{
    struct api_op *op = calloc(1, sizeof *op);

    if (!op)
        return NULL;
    if (pthread_mutex_init(&op->lock, NULL) || api_cond_init(&op->cond) < 0) {
        free(op);
        return NULL;
    }
    op->type = type;
    op->actor = *actor;
    op->fd = fd;
    return op;
}

/* Loop thread when the reply holds a watch; any thread otherwise. */
static void api_op_free(struct api_op *op)
{
    if (!op)
        return;
    free(op->method);
    free(op->path);
    free(op->kind);
    free(op->name);
    free(op->module);
    free(op->rest);
    json_object_put(op->body);
    json_object_put(op->query);
    api_selector_free(op->sel);
    free(op->reply.body);
    free(op->reply.allow);
    if (op->reply.watch)
        api_watch_free(op->reply.watch);
    pthread_cond_destroy(&op->cond);
    pthread_mutex_destroy(&op->lock);
    free(op);
}

/* ---- hand-off to the loop thread ------------------------------------------ */

static void api_op_run_on_loop(void *opaque)
{
    struct api_op *op = opaque;
    bool abandoned;

    pthread_mutex_lock(&op->lock);
    abandoned = op->abandoned;
    op->state = OP_RUNNING;
    pthread_mutex_unlock(&op->lock);
    if (abandoned) {
        api_op_free(op);
        return;
    }
    api_op_run(op);
    pthread_mutex_lock(&op->lock);
    op->state = OP_DONE;
    abandoned = op->abandoned;
    pthread_cond_signal(&op->cond);
    pthread_mutex_unlock(&op->lock);
    if (abandoned)
        api_op_free(op);
}

/* Connection thread: run op on the loop thread and move its reply to *out.
 * Consumes op either way. */
static void api_op_call(struct api_op *op, struct api_reply *out)
{
    if (vf_loop_post(api_op_run_on_loop, op) < 0) {
        api_op_free(op);
        api_reply_errorf(out, 503, "ServiceUnavailable", "", "the daemon's loop is not running");
        return;
    }
    pthread_mutex_lock(&op->lock);
    while (op->state != OP_DONE) {
        struct timespec ts;

        /* Work already running finishes (the loop thread is in it); work not yet
         * started may never be, when the loop thread is the one stopping us. */
        if (op->state == OP_PENDING && atomic_load(&api.stopping)) {
            op->abandoned = true;
            pthread_mutex_unlock(&op->lock);
            api_reply_errorf(out, 503, "ServiceUnavailable", "", "the daemon is shutting down");
            return;
        }
        api_deadline(&ts, API_OP_POLL_MS);
        pthread_cond_timedwait(&op->cond, &op->lock, &ts);
    }
    pthread_mutex_unlock(&op->lock);
    free(out->body);
    free(out->allow);
    *out = op->reply;
    op->reply = (struct api_reply){ 0 };
    api_op_free(op);
}

/* ---- request parsing on the connection thread ------------------------------ */

struct api_conn_req {
    char *buf;
    size_t len, cap;
    size_t discarded;
    bool too_large;
    bool responded;
    int fd;
    struct vf_audit_actor actor;
};

static bool api_parse_i64(const char *s, int64_t *out)
{
    char *end;
    long long v;

    if (!s || !s[0] || s[0] < '0' || s[0] > '9')
        return false;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

static int api_query_rv(struct MHD_Connection *conn, int64_t *rv, struct api_reply *r)
{
    const char *s = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "resourceVersion");

    *rv = 0;
    if (!s || !s[0])
        return 0;
    if (!api_parse_i64(s, rv)) {
        api_reply_errorf(r, 400, "BadRequest", "",
                         "query parameter resourceVersion=\"%s\" is not a non-negative integer", s);
        return -EINVAL;
    }
    return 0;
}

static enum MHD_Result api_collect_query(void *cls, enum MHD_ValueKind kind, const char *key,
                                         const char *value)
{
    if (key)
        json_object_object_add(cls, key, json_object_new_string(value ? value : ""));
    return MHD_YES;
}

static void api_reply_405(struct api_reply *r, const char *method, const char *url,
                          const char *allow)
{
    api_reply_errorf(r, 405, "MethodNotAllowed", "", "%s is not allowed on %s; allowed: %s",
                     method, url, allow);
    r->allow = strdup(allow);
}

static bool api_group_ok(const char *group, size_t len)
{
    return (len == strlen(VF_API_GROUP) && !strncmp(group, VF_API_GROUP, len)) ||
           (len == strlen("virtualization.deckhouse.io") &&
            !strncmp(group, "virtualization.deckhouse.io", len));
}

#define API_MAX_SEGMENTS 8

struct api_path {
    size_t n;
    const char *seg[API_MAX_SEGMENTS];
    size_t len[API_MAX_SEGMENTS];
    const char *after_module;   /* for module routes: what follows modules/NAME/ */
};

/* Splits url into segments; false for empty segments or too many of them (the
 * caller answers 404).  A single trailing '/' is tolerated. */
static bool api_split(const char *url, struct api_path *p)
{
    const char *s = url;

    memset(p, 0, sizeof *p);
    if (*s != '/')
        return false;
    s++;
    while (*s) {
        const char *slash = strchr(s, '/');
        size_t len = slash ? (size_t)(slash - s) : strlen(s);

        if (len == 0)
            return false;
        if (p->n == API_MAX_SEGMENTS) {
            /* Only module routes go deeper; their rest is kept whole. */
            break;
        }
        p->seg[p->n] = s;
        p->len[p->n] = len;
        p->n++;
        if (p->n == 5)
            p->after_module = slash ? slash + 1 : s + len;
        if (!slash)
            break;
        s = slash + 1;
    }
    return true;
}

static bool api_seg_is(const struct api_path *p, size_t i, const char *word)
{
    return i < p->n && p->len[i] == strlen(word) && !strncmp(p->seg[i], word, p->len[i]);
}

static char *api_seg_dup(const struct api_path *p, size_t i)
{
    return strndup(p->seg[i], p->len[i]);
}

static void api_reply_simple(struct api_reply *r, const char *method, const char *url,
                             struct json_object *obj)
{
    if (!api_is_get(method)) {
        json_object_put(obj);
        api_reply_405(r, method, url, "GET");
        return;
    }
    api_reply_json(r, 200, obj);
}

static bool api_is_merge_patch(struct MHD_Connection *conn)
{
    const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_TYPE);
    static const char want[] = "application/merge-patch+json";

    if (!ct)
        return false;
    while (*ct == ' ')
        ct++;
    return !strncasecmp(ct, want, sizeof want - 1) &&
           (ct[sizeof want - 1] == '\0' || ct[sizeof want - 1] == ';' ||
            ct[sizeof want - 1] == ' ');
}

/* Everything between the request's last byte and its reply. */
static void api_dispatch(struct MHD_Connection *conn, const char *url, const char *method,
                         struct api_conn_req *rq, struct api_reply *r)
{
    struct api_path p;
    struct api_op *op;
    enum api_op_type type = OP_GET;
    struct vf_error err = { 0 };
    const char *allow = NULL;
    bool needs_body = false;
    size_t n;

    if (!strcmp(url, "/version")) {
        struct json_object *o = json_object_new_object();
        char abi[24];
        snprintf(abi, sizeof abi, "%d.%d", VF_MODULE_ABI_MAJOR, VF_MODULE_ABI_MINOR);
        json_object_object_add(o, "version", json_object_new_string(PACKAGE_VERSION));
        json_object_object_add(o, "abi", json_object_new_string(abi));
        api_reply_simple(r, method, url, o);
        return;
    }
    if (!strcmp(url, "/healthz")) {
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "status", json_object_new_string("ok"));
        api_reply_simple(r, method, url, o);
        return;
    }
    if (!api_split(url, &p) || p.n < 3 || !api_seg_is(&p, 0, "apis") ||
        !api_group_ok(p.seg[1], p.len[1]) || !api_seg_is(&p, 2, VF_API_VERSION)) {
        api_reply_errorf(r, 404, "NotFound", "", "no such path: %s", url);
        return;
    }
    n = p.n;
    if (n == 3) {
        type = OP_DISCOVERY;
        if (!api_is_get(method))
            allow = "GET";
    } else if (api_seg_is(&p, 3, "modules") && n == 4) {
        type = OP_MODULES;
        if (!api_is_get(method))
            allow = "GET";
    } else if (api_seg_is(&p, 3, "modules")) {
        type = OP_ROUTE;
    } else if (n == 4) {
        if (api_is_get(method)) {
            const char *watch = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "watch");
            if (!watch || !strcmp(watch, "0") || !strcmp(watch, "false")) {
                type = OP_LIST;
            } else if (!strcmp(watch, "1") || !strcmp(watch, "true") || !watch[0]) {
                type = OP_WATCH;
            } else {
                api_reply_errorf(r, 400, "BadRequest", "",
                                 "query parameter watch=\"%s\" must be 1, true, 0 or false", watch);
                return;
            }
        } else if (!strcmp(method, "POST")) {
            type = OP_CREATE;
            needs_body = true;
        } else {
            allow = "GET, POST";
        }
    } else if (n == 5) {
        if (api_is_get(method)) {
            type = OP_GET;
        } else if (!strcmp(method, "PUT")) {
            type = OP_REPLACE;
            needs_body = true;
        } else if (!strcmp(method, "PATCH")) {
            if (!api_is_merge_patch(conn)) {
                api_reply_errorf(r, 415, "UnsupportedMediaType", "",
                                 "PATCH needs Content-Type: application/merge-patch+json");
                return;
            }
            type = OP_PATCH;
            needs_body = true;
        } else if (!strcmp(method, "DELETE")) {
            type = OP_DELETE;
        } else {
            allow = "GET, PUT, PATCH, DELETE";
        }
    } else if (n == 6 && api_seg_is(&p, 5, "status")) {
        if (api_is_get(method)) {
            type = OP_GET;
        } else if (!strcmp(method, "PUT")) {
            type = OP_STATUS;
            needs_body = true;
        } else {
            allow = "GET, PUT";
        }
    } else {
        api_reply_errorf(r, 404, "NotFound", "", "no such path: %s", url);
        return;
    }
    if (allow) {
        api_reply_405(r, method, url, allow);
        return;
    }

    op = api_op_new(type, &rq->actor, rq->fd);
    if (!op) {
        api_reply_errorf(r, 500, "InternalError", "", "out of memory handling %s %s", method, url);
        return;
    }
    if (needs_body || (type == OP_ROUTE && rq->len)) {
        op->body = vf_api_parse_body(rq->buf, rq->len, &err);
        if (!op->body) {
            api_op_free(op);
            api_reply_error(r, -EINVAL, &err);
            return;
        }
    }
    if (type == OP_LIST || type == OP_WATCH) {
        const char *sel = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND,
                                                      "labelSelector");
        const char *to = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND,
                                                     "timeoutSeconds");
        if (api_query_rv(conn, &op->rv, r) < 0 || api_selector_parse(sel, &op->sel, r) < 0) {
            api_op_free(op);
            return;
        }
        if (to && to[0] && !api_parse_i64(to, &op->timeout_s)) {
            api_op_free(op);
            api_reply_errorf(r, 400, "BadRequest", "",
                             "query parameter timeoutSeconds=\"%s\" is not a non-negative "
                             "integer", to);
            return;
        }
    } else if (type == OP_DELETE) {
        if (api_query_rv(conn, &op->rv, r) < 0) {
            api_op_free(op);
            return;
        }
    }
    op->method = strdup(method);
    op->path = strdup(url);
    if (n >= 4)
        op->kind = api_seg_dup(&p, 3);
    if (type == OP_ROUTE) {
        free(op->kind);
        op->kind = NULL;
        op->module = api_seg_dup(&p, 4);
        op->rest = strdup(p.after_module ? p.after_module : "");
        op->query = json_object_new_object();
        if (op->query)
            MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, api_collect_query, op->query);
    } else if (n >= 5) {
        op->name = api_seg_dup(&p, 4);
    }
    if (!op->method || !op->path || (n >= 4 && type != OP_ROUTE && !op->kind) ||
        (n >= 5 && type != OP_ROUTE && !op->name) ||
        (type == OP_ROUTE && (!op->module || !op->rest || !op->query))) {
        api_op_free(op);
        api_reply_errorf(r, 500, "InternalError", "", "out of memory handling %s %s", method, url);
        return;
    }
    api_op_call(op, r);
}

/* ---- libmicrohttpd callbacks ----------------------------------------------- */

static enum MHD_Result api_queue(struct MHD_Connection *conn, struct api_reply *r)
{
    static const char oom[] =
        "{\"error\":{\"code\":500,\"reason\":\"InternalError\",\"message\":\"out of memory\"}}";
    struct MHD_Response *resp;
    enum MHD_Result ret;
    unsigned status = r->status;

    if (r->watch) {
        resp = api_watch_response(r->watch);
        r->watch = NULL; /* the response owns it now, or it is gone */
        if (!resp)
            return MHD_NO;
        /* A watch is quiet for as long as nothing changes; the reader notices a
         * client that hung up on its own. */
        MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
    } else if (r->body) {
        resp = MHD_create_response_from_buffer(strlen(r->body), r->body, MHD_RESPMEM_MUST_FREE);
        if (resp)
            r->body = NULL;
    } else {
        status = 500;
        resp = MHD_create_response_from_buffer(sizeof oom - 1, (void *)oom,
                                               MHD_RESPMEM_PERSISTENT);
    }
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (r->allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void api_reply_clear(struct api_reply *r)
{
    free(r->body);
    free(r->allow);
    r->body = r->allow = NULL;
}

static enum MHD_Result api_reply_send(struct MHD_Connection *conn, struct api_conn_req *rq,
                                      struct api_reply *r)
{
    enum MHD_Result ret = api_queue(conn, r);

    rq->responded = true;
    api_reply_clear(r);
    return ret;
}

static void api_reply_too_large(struct api_reply *r, const char *method, const char *url)
{
    api_reply_errorf(r, 413, "RequestEntityTooLarge", "",
                     "the body of %s %s is larger than the limit of %zu bytes", method, url,
                     api.max_body);
}

static enum MHD_Result api_access(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    struct api_conn_req *rq = *con_cls;
    struct api_reply r = { 0 };

    if (!rq) {
        const union MHD_ConnectionInfo *ci;
        const char *cl;
        struct ucred cred;
        socklen_t clen = sizeof cred;

        rq = calloc(1, sizeof *rq);
        if (!rq)
            return MHD_NO;
        *con_cls = rq;
        ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        rq->fd = ci ? ci->connect_fd : -1;
        if (rq->fd < 0 || getsockopt(rq->fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0) {
            api_reply_errorf(&r, 500, "InternalError", "",
                             "%s %s: cannot read the peer's credentials: %s", method, url,
                             strerror(errno));
            return api_reply_send(conn, rq, &r);
        }
        rq->actor = (struct vf_audit_actor){ .uid = cred.uid, .gid = cred.gid, .pid = cred.pid };
        cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            char *end;
            unsigned long long v;
            errno = 0;
            v = strtoull(cl, &end, 10);
            if (errno || *end || v > api.max_body) {
                const char *expect = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                                 MHD_HTTP_HEADER_EXPECT);
                rq->too_large = true;
                /* A client waiting for "100 Continue" learns at once and sends
                 * nothing.  One already sending would see its connection reset
                 * instead of the answer: its body is read and dropped (up to a
                 * bound) and the 413 follows, as for a chunked upload. */
                if ((expect && !strcasecmp(expect, "100-continue")) || errno || *end ||
                    v > API_DISCARD_MAX) {
                    api_reply_too_large(&r, method, url);
                    return api_reply_send(conn, rq, &r);
                }
            }
        }
        return MHD_YES;
    }

    if (*upload_data_size) {
        size_t n = *upload_data_size;

        *upload_data_size = 0;
        if (rq->responded || rq->too_large) {
            rq->discarded += n;
            return rq->discarded > API_DISCARD_MAX ? MHD_NO : MHD_YES;
        }
        if (n > api.max_body - rq->len) {
            /* Chunked uploads carry no length; MHD lets us answer only once the
             * upload is over, so drop the rest and answer 413 then. */
            rq->too_large = true;
            rq->discarded = n;
            free(rq->buf);
            rq->buf = NULL;
            rq->len = rq->cap = 0;
            return MHD_YES;
        }
        if (rq->len + n > rq->cap) {
            size_t cap = rq->cap ? rq->cap : 4096;
            char *nb;
            while (cap < rq->len + n)
                cap *= 2;
            if (cap > api.max_body)
                cap = api.max_body;
            nb = realloc(rq->buf, cap);
            if (!nb) {
                vf_log_error("api: %s %s: out of memory reading a body of %zu bytes", method, url,
                             rq->len + n);
                return MHD_NO;
            }
            rq->buf = nb;
            rq->cap = cap;
        }
        memcpy(rq->buf + rq->len, upload_data, n);
        rq->len += n;
        return MHD_YES;
    }

    if (rq->responded)
        return MHD_YES;
    if (rq->too_large)
        api_reply_too_large(&r, method, url);
    else
        api_dispatch(conn, url, method, rq, &r);
    vf_log_debug("api: %s %s -> %u (uid %" PRIu32 " pid %" PRId32 ")", method, url, r.status,
                 rq->actor.uid, rq->actor.pid);
    return api_reply_send(conn, rq, &r);
}

static void api_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                          enum MHD_RequestTerminationCode toe)
{
    struct api_conn_req *rq = *con_cls;

    if (rq) {
        free(rq->buf);
        free(rq);
        *con_cls = NULL;
    }
}

static void api_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    size_t n;

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    vsnprintf(msg, sizeof msg, fmt, ap);
#pragma GCC diagnostic pop
    n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    /* Clients that hang up mid-stream (a watch ended with Ctrl-C) are routine;
     * MHD reports them like failures, which would flood the log. */
    if (strstr(msg, "no longer available") || strstr(msg, "Closing connection") ||
        strstr(msg, "onnection reset") || strstr(msg, "Failed to send"))
        vf_log_debug("api: libmicrohttpd: %s", msg);
    else
        vf_log_warn("api: libmicrohttpd: %s", msg);
}

/* ---- the socket ----------------------------------------------------------- */

/* A socket file left by a daemon that died is removed; one that still answers
 * belongs to a running daemon and is left alone; anything else is not ours. */
static int api_clear_stale(const char *path, struct vf_error *err)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct stat st;
    int fd, r;

    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        return vf_error_set(err, -errno, 500, "InternalError", "", "API socket %s: %s", path,
                            strerror(errno));
    }
    if (!S_ISSOCK(st.st_mode))
        return vf_error_set(err, -EEXIST, 500, "InternalError", "",
                            "API socket %s: exists and is not a socket; remove it or choose "
                            "another path", path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return vf_error_set(err, -errno, 500, "InternalError", "", "API socket %s: socket: %s",
                            path, strerror(errno));
    memcpy(sa.sun_path, path, strlen(path) + 1);
    r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    close(fd);
    if (r == 0)
        return vf_error_set(err, -EADDRINUSE, 500, "InternalError", "",
                            "API socket %s: another daemon is listening on it", path);
    if (unlink(path) < 0 && errno != ENOENT)
        return vf_error_set(err, -errno, 500, "InternalError", "",
                            "API socket %s: cannot remove the stale socket: %s", path,
                            strerror(errno));
    vf_log_info("api: removed stale socket \"%s\"", path);
    return 0;
}

static int api_listen(const struct vf_api_options *opts, struct vf_error *err)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    const char *path = opts->socket_path;
    mode_t mode = opts->socket_mode ? opts->socket_mode : 0660;
    struct stat st;
    int fd, r;

    if (!path || !path[0])
        return vf_error_set(err, -EINVAL, 500, "InternalError", "", "API socket path is empty");
    if (strlen(path) >= sizeof sa.sun_path)
        return vf_error_set(err, -ENAMETOOLONG, 500, "InternalError", "",
                            "API socket %s: path longer than %zu bytes", path,
                            sizeof sa.sun_path - 1);
    r = api_clear_stale(path, err);
    if (r < 0)
        return r;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return vf_error_set(err, -errno, 500, "InternalError", "", "API socket %s: socket: %s",
                            path, strerror(errno));
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        r = vf_error_set(err, -errno, 500, "InternalError", "", "API socket %s: bind: %s", path,
                         strerror(errno));
        close(fd);
        return r;
    }
    /* Permissions are set before listen(): until then nobody can connect, so
     * there is no window in which the umask's looser mode lets a stranger in. */
    if (chmod(path, mode) < 0 ||
        (opts->socket_gid != (gid_t)-1 && chown(path, (uid_t)-1, opts->socket_gid) < 0) ||
        stat(path, &st) < 0 || listen(fd, 128) < 0) {
        r = vf_error_set(err, -errno, 500, "InternalError", "",
                         "API socket %s: setting mode %04o / group %ld or listening: %s", path,
                         (unsigned)mode, (long)(int)opts->socket_gid, strerror(errno));
        close(fd);
        unlink(path);
        return r;
    }
    api.socket_dev = st.st_dev;
    api.socket_ino = st.st_ino;
    return fd;
}

int vf_api_start(const struct vf_api_options *opts, struct vf_error *err)
{
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_ERROR_LOG;
    int fd;

    if (api.mhd)
        return vf_error_set(err, -EALREADY, 500, "InternalError", "",
                            "the API server is already running on %s", api.socket_path);
    fd = api_listen(opts, err);
    if (fd < 0) {
        vf_log_error("%s", err ? err->message : "API socket: cannot listen");
        return fd;
    }
    api.max_body = opts->max_body ? opts->max_body : API_DEFAULT_MAX_BODY;
    api.socket_path = strdup(opts->socket_path);
    atomic_store(&api.stopping, false);
    api.mhd = api.socket_path
                  ? MHD_start_daemon(
                        flags, 0, NULL, NULL, api_access, NULL,
                        /* First, or MHD logs its complaint about it to stderr. */
                        MHD_OPTION_EXTERNAL_LOGGER, api_mhd_log, NULL, MHD_OPTION_LISTEN_SOCKET, fd,
                        MHD_OPTION_CONNECTION_LIMIT,
                        opts->max_connections ? opts->max_connections : API_DEFAULT_MAX_CONNECTIONS,
                        MHD_OPTION_CONNECTION_MEMORY_LIMIT, API_CONNECTION_MEMORY,
                        MHD_OPTION_CONNECTION_TIMEOUT, API_CONNECTION_TIMEOUT_S,
                        MHD_OPTION_NOTIFY_COMPLETED, api_completed, NULL, MHD_OPTION_END)
                  : NULL;
    if (!api.mhd) {
        close(fd);
        unlink(opts->socket_path);
        free(api.socket_path);
        api.socket_path = NULL;
        vf_log_error("api: cannot start the HTTP server on \"%s\"", opts->socket_path);
        return vf_error_set(err, -EIO, 500, "InternalError", "",
                            "API socket %s: libmicrohttpd failed to start", opts->socket_path);
    }
    vf_log_info("api: listening on \"%s\"", opts->socket_path);
    return 0;
}

void vf_api_stop(void)
{
    struct stat st;

    if (!api.mhd)
        return;
    atomic_store(&api.stopping, true);
    api_stop_wake_watches();
    /* Joins every connection thread: watch readers see `stopping`, requests
     * waiting for the loop either finish or give up (api_op_call). */
    MHD_stop_daemon(api.mhd);
    api.mhd = NULL;
    /* Remove the socket file only if it is still the one we made. */
    if (stat(api.socket_path, &st) == 0 && st.st_dev == api.socket_dev &&
        st.st_ino == api.socket_ino)
        unlink(api.socket_path);
    free(api.socket_path);
    api.socket_path = NULL;
    atomic_store(&api.stopping, false);
}
