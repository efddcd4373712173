/* The REST/JSON API server: libmicrohttpd on a unix socket we create ourselves.
 *
 * Owns: the listening socket, the per-connection threads libmicrohttpd runs, the
 * watch streams and the table of routes modules register.  Watches: the store, on
 * the loop thread, for every open ?watch=1 stream.
 *
 * Threading.  Connection threads parse the request (path, query, body) and hand
 * an `api_op` to the loop thread, which does everything that touches kinds,
 * objects, modules and routes, and serializes the answer to text there (json-c
 * objects from the store are not safe to print from two threads).  The hand-off
 * is vf_loop_post() plus a wait the connection thread can give up on while the
 * server stops: vf_api_stop() may be called from the loop thread itself, and a
 * connection thread blocked in vf_loop_call() would then never return and
 * MHD_stop_daemon() would never finish joining it.  An abandoned op is freed by
 * the loop thread when it gets to it.
 *
 * Watches: the store calls api_watch_event() on the loop thread; it appends one
 * JSON line to the watch's queue (mutex + condvar) and the connection thread's
 * content reader drains it.  The queue is bounded: a client that falls too far
 * behind gets an ERROR line and the end of its stream, never unbounded memory. */
#include <config.h> /* autoconf's; core/config.h is the daemon's configuration */

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
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
#include "label_selector.h"
#include "audit.h"
#include "kinds.h"
#include "log.h"
#include "loop.h"
#include "modules.h"
#include "objects.h"
#include "store.h"

#define API_DEFAULT_MAX_BODY ((size_t)4 << 20)
#define API_DEFAULT_MAX_CONNECTIONS 256u
/* Request headers and the read buffer live in this; 64 KiB fits any sane header set. */
#define API_CONNECTION_MEMORY ((size_t)64 << 10)
/* Idle timeout of ordinary requests; watches switch it off for their connection. */
#define API_CONNECTION_TIMEOUT_S 60u
/* How far a watch client may fall behind before its stream is ended with 410. */
#define API_WATCH_MAX_BACKLOG ((size_t)16 << 20)
/* How often a blocked reader looks whether its client hung up. */
#define API_WATCH_POLL_MS 1000
/* How often a connection waiting for the loop looks whether the server stops. */
#define API_OP_POLL_MS 200
/* An oversized chunked upload is read and dropped (so the client can get its 413)
 * only up to this much; beyond it the connection is cut. */
#define API_DISCARD_MAX ((size_t)16 << 20)
#define API_LIST_API_VERSION VF_API_GROUP "/" VF_API_VERSION

/* ---- state -------------------------------------------------------------- */

struct api_watch;

static struct {
    struct MHD_Daemon *mhd;
    char *socket_path;
    dev_t socket_dev;
    ino_t socket_ino;
    size_t max_body;
    atomic_bool stopping;
    pthread_mutex_t lock;        /* guards `watches` */
    struct api_watch *watches;   /* open streams, for vf_api_stop to wake */
} api = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* Loop thread only. */
struct api_route {
    struct api_route *next;
    struct vf_module_ctx *owner;
    char *module;
    char *method;
    char *prefix;               /* without a leading '/' */
    vf_route_fn fn;
    void *opaque;
};
static struct api_route *api_routes;

/* ---- small helpers ------------------------------------------------------ */

static int64_t api_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void api_deadline(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

static int api_cond_init(pthread_cond_t *cond)
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

/* Serialize and drop obj; NULL on out of memory. */
static char *api_to_text(struct json_object *obj)
{
    char *text = NULL;

    if (obj) {
        const char *s = json_object_to_json_string_ext(
            obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        text = s ? strdup(s) : NULL;
        json_object_put(obj);
    }
    return text;
}

/* ---- replies ------------------------------------------------------------ */

struct api_reply {
    unsigned status;
    char *body;                 /* JSON text; NULL: out of memory */
    char *allow;                /* 405: the Allow header */
    struct api_watch *watch;    /* set: stream this watch */
};

static void api_reply_json(struct api_reply *r, unsigned status, struct json_object *obj)
{
    r->status = status;
    free(r->body);
    r->body = api_to_text(obj);
}

static struct json_object *api_error_object(unsigned status, const char *reason,
                                            const char *field, const char *message)
{
    struct json_object *e = json_object_new_object(), *top = json_object_new_object();

    json_object_object_add(e, "code", json_object_new_int((int)status));
    json_object_object_add(e, "reason", json_object_new_string(reason));
    json_object_object_add(e, "message", json_object_new_string(message));
    if (field && field[0])
        json_object_object_add(e, "field", json_object_new_string(field));
    json_object_object_add(top, "error", e);
    return top;
}

static void api_reply_errorf(struct api_reply *r, unsigned status, const char *reason,
                             const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void api_reply_errorf(struct api_reply *r, unsigned status, const char *reason,
                             const char *field, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (status >= 500)
        vf_log_error("api: %s", msg);
    api_reply_json(r, status, api_error_object(status, reason, field, msg));
}

/* From a failed object operation: its vf_error when filled, else the errno. */
static void api_reply_error(struct api_reply *r, int rc, const struct vf_error *err)
{
    if (err->status >= 400 && err->status <= 599) {
        if (err->status >= 500)
            vf_log_error("api: %s", err->message);
        api_reply_json(r, (unsigned)err->status,
                       api_error_object((unsigned)err->status, err->reason[0] ? err->reason
                                                                              : "Error",
                                        err->field, err->message));
        return;
    }
    switch (rc) {
    case -ENOENT:
        api_reply_errorf(r, 404, "NotFound", "", "not found");
        break;
    case -EEXIST:
        api_reply_errorf(r, 409, "AlreadyExists", "", "already exists");
        break;
    case -ESTALE:
        api_reply_errorf(r, 409, "Conflict", "", "the object was changed meanwhile: read it again");
        break;
    case -EINVAL:
        api_reply_errorf(r, 400, "Invalid", "", "invalid request");
        break;
    case -ENODATA:
        api_reply_errorf(r, 410, "Expired", "", "the resourceVersion is too old: list again");
        break;
    default:
        api_reply_errorf(r, 500, "InternalError", "", "internal error: %s", strerror(-rc));
        break;
    }
}

/* ---- label selectors ---------------------------------------------------- */

/* ?labelSelector=k=v,k!=v,k,!k is the text form of a Kubernetes selector:
 * it is turned into the JSON form (matchLabels / matchExpressions) and matched
 * by label_selector.c, the one implementation of selector semantics. */
struct api_selector {
    struct json_object *source;   /* the JSON form; the compiled one borrows its strings */
    struct vf_selector *compiled;
};

static void api_selector_free(struct api_selector *sel)
{
    if (!sel)
        return;
    vf_selector_free(sel->compiled);
    json_object_put(sel->source);
    free(sel);
}

static bool api_label_key_ok(const char *s, size_t len)
{
    if (len == 0 || len > 253)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_' || c == '/'))
            return false;
    }
    return true;
}

static bool api_label_value_ok(const char *s, size_t len)
{
    if (len > 63)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_'))
            return false;
    }
    return true;
}

static void api_trim(const char **s, size_t *len)
{
    while (*len && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*len)--;
    }
    while (*len && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
        (*len)--;
}

static void api_selector_add_expression(struct json_object *exprs, const char *key, size_t klen,
                                        const char *op, const char *value, size_t vlen)
{
    struct json_object *e = json_object_new_object();
    json_object_object_add(e, "key", json_object_new_string_len(key, (int)klen));
    json_object_object_add(e, "operator", json_object_new_string(op));
    if (value) {
        struct json_object *values = json_object_new_array();
        json_object_array_add(values, json_object_new_string_len(value, (int)vlen));
        json_object_object_add(e, "values", values);
    }
    json_object_array_add(exprs, e);
}

/* "k=v,k==v,k!=v,k,!k" -> *out (NULL for an empty selector). */
static int api_selector_parse(const char *text, struct api_selector **out, struct api_reply *r)
{
    *out = NULL;
    if (!text || !text[0])
        return 0;
    struct json_object *labels = json_object_new_object(), *exprs = json_object_new_array();
    unsigned term = 0;
    for (const char *p = text;; term++) {
        const char *end = strchr(p, ','), *key = p, *val = NULL, *op;
        size_t len = end ? (size_t)(end - p) : strlen(p), klen, vlen = 0;
        const char *operator;

        api_trim(&key, &len);
        if (len && key[0] == '!') {
            operator = "DoesNotExist";
            key++;
            klen = len - 1;
            api_trim(&key, &klen);
        } else if ((op = memchr(key, '=', len)) != NULL) {
            klen = (size_t)(op - key);
            operator = klen && key[klen - 1] == '!' ? "NotIn" : "=";
            if (operator[0] == 'N')
                klen--;
            val = op + 1;
            if (val < key + len && *val == '=' && operator[0] == '=')
                val++;
            vlen = (size_t)(key + len - val);
            api_trim(&key, &klen);
            api_trim(&val, &vlen);
        } else {
            operator = "Exists";
            klen = len;
        }
        if (!api_label_key_ok(key, klen) || (val && !api_label_value_ok(val, vlen))) {
            api_reply_errorf(r, 400, "BadRequest", "",
                             "query parameter labelSelector=\"%s\": term %u is not one of k=v, "
                             "k==v, k!=v, k, !k with a valid label key and value", text, term + 1);
            json_object_put(labels);
            json_object_put(exprs);
            return -EINVAL;
        }
        if (operator[0] == '=') {
            char *k = strndup(key, klen);
            if (k)
                json_object_object_add(labels, k, json_object_new_string_len(val, (int)vlen));
            free(k);
        } else {
            api_selector_add_expression(exprs, key, klen, operator, val, vlen);
        }
        if (!end)
            break;
        p = end + 1;
    }
    struct api_selector *sel = calloc(1, sizeof *sel);
    if (sel) {
        sel->source = json_object_new_object();
        json_object_object_add(sel->source, "matchLabels", labels);
        json_object_object_add(sel->source, "matchExpressions", exprs);
        labels = exprs = NULL;
    }
    if (!sel || vf_selector_compile(sel->source, &sel->compiled) < 0) {
        json_object_put(labels);
        json_object_put(exprs);
        api_selector_free(sel);
        api_reply_errorf(r, 500, "InternalError", "", "cannot compile labelSelector \"%s\"", text);
        return -ENOMEM;
    }
    *out = sel;
    return 0;
}

static bool api_selector_match(const struct api_selector *sel, const struct json_object *obj)
{
    struct json_object *meta = NULL, *labels = NULL;

    if (!sel)
        return true;
    if (json_object_object_get_ex(obj, "metadata", &meta))
        json_object_object_get_ex(meta, "labels", &labels);
    return vf_selector_match(sel->compiled, labels);
}

/* ---- watch streams ------------------------------------------------------ */

struct api_watch_line {
    struct api_watch_line *next;
    size_t len, off;
    char data[];
};

struct api_watch {
    pthread_mutex_t lock;       /* guards the queue and `ended` */
    pthread_cond_t cond;
    struct api_watch_line *head, *tail;
    size_t queued;
    bool ended;                 /* no more lines will come */
    int fd;                     /* the client's socket, polled for a hang-up */
    int64_t deadline_ms;        /* timeoutSeconds as a monotonic time; 0: none */
    /* Loop thread only. */
    struct api_selector *sel;
    struct vf_store_watch *sw;
    char *kind;
    /* Under api.lock. */
    struct api_watch *prev, *next;
};

static void api_watch_link(struct api_watch *w)
{
    pthread_mutex_lock(&api.lock);
    w->next = api.watches;
    if (api.watches)
        api.watches->prev = w;
    api.watches = w;
    pthread_mutex_unlock(&api.lock);
}

/* Loop thread: the store watch is gone with it. */
static void api_watch_free(struct api_watch *w)
{
    struct api_watch_line *l, *next;

    /* A store already closed took its watches with it. */
    if (w->sw && vf_objects_store())
        vf_store_watch_remove(vf_objects_store(), w->sw);
    pthread_mutex_lock(&api.lock);
    if (w->prev)
        w->prev->next = w->next;
    else if (api.watches == w)
        api.watches = w->next;
    if (w->next)
        w->next->prev = w->prev;
    pthread_mutex_unlock(&api.lock);
    for (l = w->head; l; l = next) {
        next = l->next;
        free(l);
    }
    api_selector_free(w->sel);
    free(w->kind);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

static void api_watch_free_cb(void *opaque)
{
    api_watch_free(opaque);
}

/* Called with w->lock held. */
static void api_watch_append(struct api_watch *w, const char *a, size_t alen, const char *b,
                             size_t blen, const char *c, size_t clen)
{
    struct api_watch_line *l = malloc(sizeof *l + alen + blen + clen);

    if (!l) {
        /* Losing an event silently would leave the client with a wrong picture;
         * ending the stream makes it list and watch again. */
        vf_log_error("api: watch of %s: out of memory queueing an event, ending the stream",
                     w->kind);
        w->ended = true;
        return;
    }
    memcpy(l->data, a, alen);
    memcpy(l->data + alen, b, blen);
    memcpy(l->data + alen + blen, c, clen);
    l->len = alen + blen + clen;
    l->off = 0;
    l->next = NULL;
    if (w->tail)
        w->tail->next = l;
    else
        w->head = l;
    w->tail = l;
    w->queued += l->len;
}

static void api_watch_event(void *opaque, const char *kind, enum vf_watch_event type,
                            const struct json_object *obj)
{
    static const char *const names[] = { "ADDED", "MODIFIED", "DELETED" };
    static const char overflow[] =
        "{\"type\":\"ERROR\",\"object\":{\"error\":{\"code\":410,\"reason\":\"Expired\","
        "\"message\":\"the client fell too far behind the watch: list and watch again\"}}}\n";
    struct api_watch *w = opaque;
    char head[48];
    const char *text;
    size_t hlen, tlen;

    if ((unsigned)type > VF_WATCH_DELETED || !api_selector_match(w->sel, obj))
        return;
    pthread_mutex_lock(&w->lock);
    if (w->ended) {
        pthread_mutex_unlock(&w->lock);
        return;
    }
    hlen = (size_t)snprintf(head, sizeof head, "{\"type\":\"%s\",\"object\":", names[type]);
    /* json-c prints into the object's own buffer, hence the cast; the store lends
     * the object to this loop-thread callback only, so nobody else prints it now. */
    text = json_object_to_json_string_ext((struct json_object *)obj,
                                          JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    tlen = text ? strlen(text) : 0;
    if (!text) {
        vf_log_error("api: watch of %s: cannot serialize an object, ending the stream", kind);
        w->ended = true;
    } else if (w->queued + hlen + tlen + 2 > API_WATCH_MAX_BACKLOG) {
        vf_log_warn("api: watch of %s: client fell %zu bytes behind, ending its stream", kind,
                    w->queued);
        api_watch_append(w, overflow, sizeof overflow - 1, "", 0, "", 0);
        w->ended = true;
    } else {
        api_watch_append(w, head, hlen, text, tlen, "}\n", 2);
    }
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

static bool api_peer_gone(int fd)
{
    struct pollfd pfd = { .fd = fd, .events = POLLRDHUP };

    return fd >= 0 && poll(&pfd, 1, 0) > 0 &&
           (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

/* Connection thread: blocks until there is something to send.  Returning 0 is
 * not allowed with internal polling (it would spin), so this waits in slices and
 * looks for shutdown, the watch's timeout and a client that hung up between them. */
static ssize_t api_watch_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct api_watch *w = cls;
    size_t n = 0;

    pthread_mutex_lock(&w->lock);
    for (;;) {
        int64_t now, wait_ms = API_WATCH_POLL_MS;
        struct timespec ts;

        if (atomic_load(&api.stopping))
            break;
        while (w->head && n < max) {
            struct api_watch_line *l = w->head;
            size_t take = l->len - l->off;

            if (take > max - n)
                take = max - n;
            memcpy(buf + n, l->data + l->off, take);
            n += take;
            l->off += take;
            if (l->off == l->len) {
                w->head = l->next;
                if (!w->head)
                    w->tail = NULL;
                w->queued -= l->len;
                free(l);
            }
        }
        if (n)
            break;
        if (w->ended)
            break;
        now = api_now_ms();
        if (w->deadline_ms) {
            if (now >= w->deadline_ms)
                break;
            if (w->deadline_ms - now < wait_ms)
                wait_ms = w->deadline_ms - now;
        }
        api_deadline(&ts, wait_ms);
        /* A client that hung up just ends the stream: it is no server error. */
        if (pthread_cond_timedwait(&w->cond, &w->lock, &ts) == ETIMEDOUT && api_peer_gone(w->fd))
            break;
    }
    pthread_mutex_unlock(&w->lock);
    return n ? (ssize_t)n : MHD_CONTENT_READER_END_OF_STREAM;
}

/* MHD is done with the response: the stream is over, drop the store watch on the
 * loop thread.  Posting (not calling) keeps this safe while the loop thread itself
 * sits in vf_api_stop(). */
static void api_watch_response_freed(void *cls)
{
    struct api_watch *w = cls;

    if (vf_loop_post(api_watch_free_cb, w) < 0)
        vf_log_error("api: watch of %s: cannot reach the loop thread to remove it; "
                     "leaking it rather than risking a use after free", w->kind);
}

static void api_stop_wake_watches(void)
{
    pthread_mutex_lock(&api.lock);
    for (struct api_watch *w = api.watches; w; w = w->next) {
        pthread_mutex_lock(&w->lock);
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->lock);
    }
    pthread_mutex_unlock(&api.lock);
}

/* ---- operations on the loop thread --------------------------------------- */

enum api_op_type {
    OP_DISCOVERY,
    OP_MODULES,
    OP_LIST,
    OP_WATCH,
    OP_GET,
    OP_CREATE,
    OP_REPLACE,
    OP_PATCH,
    OP_STATUS,
    OP_DELETE,
    OP_ROUTE,
};

enum api_op_state { OP_PENDING, OP_RUNNING, OP_DONE };

struct api_op {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    enum api_op_state state;
    bool abandoned;             /* the connection gave up: the loop thread frees the op */

    /* The request, owned by the op (it may outlive the connection). */
    enum api_op_type type;
    char *method, *path, *kind, *name, *module, *rest;
    struct json_object *body, *query;
    struct api_selector *sel;
    int64_t rv;
    int64_t timeout_s;
    int fd;
    struct vf_audit_actor actor;

    struct api_reply reply;
};

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

/* The canonical kind name ("VirtualMachine") for any accepted spelling. */
static const char *api_kind_name(const char *any)
{
    const struct vf_kind_entry *e = vf_kinds_lookup(any);
    return e ? e->kind->kind : any;
}

static void api_audit(const struct api_op *op, const char *type, const struct json_object *obj)
{
    struct json_object *details = json_object_new_object(), *meta = NULL, *v;

    json_object_object_add(details, "kind", json_object_new_string(api_kind_name(op->kind)));
    if (obj && json_object_object_get_ex(obj, "metadata", &meta)) {
        if (json_object_object_get_ex(meta, "name", &v))
            json_object_object_add(details, "name", json_object_get(v));
        if (json_object_object_get_ex(meta, "uid", &v))
            json_object_object_add(details, "uid", json_object_get(v));
        if (json_object_object_get_ex(meta, "resourceVersion", &v))
            json_object_object_add(details, "resourceVersion", json_object_get(v));
    } else if (op->name) {
        json_object_object_add(details, "name", json_object_new_string(op->name));
    }
    vf_audit_emit(NULL, &op->actor, type, details);
    json_object_put(details);
}

static void op_discovery(struct api_op *op)
{
    struct json_object *res = json_object_new_array(), *top = json_object_new_object();
    const struct vf_kind_entry *e;

    for (unsigned i = 0; (e = vf_kinds_at(i)) != NULL; i++) {
        const struct vf_kind *k = e->kind;
        struct json_object *o = json_object_new_object(), *shorts = json_object_new_array(),
                           *cols = json_object_new_array();

        json_object_object_add(o, "kind", json_object_new_string(k->kind));
        json_object_object_add(o, "plural", json_object_new_string(k->plural ? k->plural : ""));
        json_object_object_add(o, "singular",
                               json_object_new_string(k->singular ? k->singular : ""));
        if (k->short_name)
            json_object_array_add(shorts, json_object_new_string(k->short_name));
        json_object_object_add(o, "shortNames", shorts);
        for (const char *const *c = k->columns; c && c[0] && c[1]; c += 2) {
            struct json_object *pair = json_object_new_array();
            json_object_array_add(pair, json_object_new_string(c[0]));
            json_object_array_add(pair, json_object_new_string(c[1]));
            json_object_array_add(cols, pair);
        }
        json_object_object_add(o, "columns", cols);
        json_object_array_add(res, o);
    }
    json_object_object_add(top, "resources", res);
    api_reply_json(&op->reply, 200, top);
}

static void op_modules(struct api_op *op)
{
    struct json_object *top = json_object_new_object(), *items = vf_modules_status();

    json_object_object_add(top, "items", items ? items : json_object_new_array());
    api_reply_json(&op->reply, 200, top);
}

/* Without a selector the stored texts are the items as they are: splice them
 * into the list instead of parsing and re-serialising every object. */
static void op_list_unfiltered(struct api_op *op)
{
    struct vf_error err = { 0 };
    const char *kind = NULL;
    char *items = NULL, *body = NULL;
    size_t len = 0;
    int64_t rev = 0;
    int r = vf_objects_list_text(op->kind, &items, &len, &rev, &kind, &err);

    if (r < 0) {
        api_reply_error(&op->reply, r, &err);
        return;
    }
    if (asprintf(&body, "{\"apiVersion\":\"%s\",\"kind\":\"%sList\",\"metadata\":"
                 "{\"resourceVersion\":\"%" PRId64 "\"},\"items\":[%s]}",
                 API_LIST_API_VERSION, kind, rev, items) < 0)
        body = NULL;
    free(items);
    op->reply.status = 200;
    free(op->reply.body);
    op->reply.body = body;
}

static void op_list(struct api_op *op)
{
    if (!op->sel) {
        op_list_unfiltered(op);
        return;
    }
    struct vf_error err = { 0 };
    struct json_object *items = NULL, *top, *meta, *kept;
    int64_t rev = 0;
    char kind[160], rv[24];
    int r = vf_objects_list(op->kind, &items, &rev, &err);

    if (r < 0) {
        api_reply_error(&op->reply, r, &err);
        return;
    }
    kept = json_object_new_array();
    for (size_t i = 0, n = json_object_array_length(items); i < n; i++) {
        struct json_object *o = json_object_array_get_idx(items, i);
        if (api_selector_match(op->sel, o))
            json_object_array_add(kept, json_object_get(o));
    }
    json_object_put(items);
    snprintf(kind, sizeof kind, "%sList", api_kind_name(op->kind));
    snprintf(rv, sizeof rv, "%" PRId64, rev);
    top = json_object_new_object();
    meta = json_object_new_object();
    json_object_object_add(top, "apiVersion", json_object_new_string(API_LIST_API_VERSION));
    json_object_object_add(top, "kind", json_object_new_string(kind));
    json_object_object_add(meta, "resourceVersion", json_object_new_string(rv));
    json_object_object_add(top, "metadata", meta);
    json_object_object_add(top, "items", kept);
    api_reply_json(&op->reply, 200, top);
}

static void op_watch(struct api_op *op)
{
    const struct vf_kind_entry *e = vf_kinds_lookup(op->kind);
    struct vf_error err = { 0 };
    struct api_watch *w;
    int r;

    if (!e) {
        api_reply_errorf(&op->reply, 404, "NotFound", "", "no resource kind \"%s\"", op->kind);
        return;
    }
    if (!vf_objects_store()) {
        api_reply_errorf(&op->reply, 503, "ServiceUnavailable", "", "the store is not open");
        return;
    }
    w = calloc(1, sizeof *w);
    if (!w || pthread_mutex_init(&w->lock, NULL)) {
        free(w);
        api_reply_errorf(&op->reply, 500, "InternalError", "", "out of memory opening a watch");
        return;
    }
    if (api_cond_init(&w->cond) < 0 || !(w->kind = strdup(e->kind->kind))) {
        pthread_mutex_destroy(&w->lock);
        free(w);
        api_reply_errorf(&op->reply, 500, "InternalError", "", "out of memory opening a watch");
        return;
    }
    w->fd = op->fd;
    /* Capped at a year so the arithmetic cannot overflow. */
    if (op->timeout_s > 0)
        w->deadline_ms = api_now_ms() + (op->timeout_s < 31536000 ? op->timeout_s : 31536000) *
                                            1000;
    w->sel = op->sel;
    op->sel = NULL;
    api_watch_link(w);
    r = vf_store_watch_add(vf_objects_store(), e->kind->kind, op->rv, api_watch_event, w, &w->sw,
                           &err);
    if (r < 0) {
        w->sw = NULL;
        api_watch_free(w);
        if (r == -ENODATA && err.status == 0)
            api_reply_errorf(&op->reply, 410, "Expired", "",
                             "resourceVersion %" PRId64 " of %s is too old to watch from: list "
                             "again and watch from the list's resourceVersion",
                             op->rv, e->kind->kind);
        else
            api_reply_error(&op->reply, r, &err);
        return;
    }
    op->reply.status = 200;
    op->reply.watch = w;
}

static void op_get(struct api_op *op)
{
    struct vf_error err = { 0 };
    struct json_object *obj = NULL;
    int r = vf_objects_get(op->kind, op->name, &obj, &err);

    if (r < 0)
        api_reply_error(&op->reply, r, &err);
    else
        api_reply_json(&op->reply, 200, obj);
}

/* PUT bodies name the object they replace; a mismatch with the URL is almost
 * always a wrong file, so refuse it instead of guessing which one was meant. */
static int api_check_body_name(struct api_op *op)
{
    struct json_object *meta = NULL, *name = NULL;

    if (!json_object_object_get_ex(op->body, "metadata", &meta)) {
        meta = json_object_new_object();
        json_object_object_add(op->body, "metadata", meta);
    }
    if (!json_object_is_type(meta, json_type_object)) {
        api_reply_errorf(&op->reply, 400, "BadRequest", "metadata", "metadata must be an object");
        return -EINVAL;
    }
    if (!json_object_object_get_ex(meta, "name", &name)) {
        json_object_object_add(meta, "name", json_object_new_string(op->name));
        return 0;
    }
    if (!json_object_is_type(name, json_type_string) ||
        strcmp(json_object_get_string(name), op->name)) {
        api_reply_errorf(&op->reply, 400, "BadRequest", "metadata.name",
                         "metadata.name \"%s\" in the body does not match the name \"%s\" in the "
                         "URL", json_object_get_string(name), op->name);
        return -EINVAL;
    }
    return 0;
}

static void op_write(struct api_op *op)
{
    struct vf_error err = { 0 };
    struct json_object *obj = NULL, *status = NULL;
    const char *event = "object.update";
    unsigned code = 200;
    int r;

    const struct vf_kind_entry *k = vf_kinds_lookup(op->kind);
    if (k && (k->kind->flags & VF_KIND_API_READ_ONLY)) {
        api_reply_errorf(&op->reply, 403, "Forbidden", "",
                         "%s objects are written by virtfleetd only; clients may get, list and "
                         "watch them", k->kind->kind);
        return;
    }
    switch (op->type) {
    case OP_CREATE:
        r = vf_objects_create(op->kind, op->body, &obj, &err);
        event = "object.create";
        code = 201;
        break;
    case OP_REPLACE:
        if (api_check_body_name(op) < 0)
            return;
        r = vf_objects_update(op->kind, op->body, &obj, &err);
        break;
    case OP_PATCH:
        r = vf_objects_patch(op->kind, op->name, op->body, &obj, &err);
        break;
    case OP_STATUS:
        if (api_check_body_name(op) < 0)
            return;
        if (!json_object_object_get_ex(op->body, "status", &status) ||
            !json_object_is_type(status, json_type_object)) {
            api_reply_errorf(&op->reply, 400, "BadRequest", "status",
                             "the body must carry .status as an object");
            return;
        }
        r = vf_objects_update_status(op->kind, op->name, status, &obj, &err);
        event = "object.status";
        break;
    case OP_DELETE:
        r = vf_objects_delete(op->kind, op->name, op->rv, &obj, &err);
        event = "object.delete";
        break;
    default:
        r = -EINVAL;
        api_reply_errorf(&op->reply, 500, "InternalError", "", "unexpected write operation %d",
                         (int)op->type);
        return;
    }
    if (r < 0) {
        json_object_put(obj);
        api_reply_error(&op->reply, r, &err);
        return;
    }
    api_audit(op, event, obj);
    if (obj)
        api_reply_json(&op->reply, code, obj);
    else
        api_reply_json(&op->reply, code, json_object_new_object());
}

/* ---- module routes -------------------------------------------------------- */

static bool api_route_matches(const struct api_route *rt, const char *rest)
{
    size_t len = strlen(rt->prefix);

    if (strncmp(rest, rt->prefix, len))
        return false;
    /* Whole path segments only: prefix "vm" must not catch "vms". */
    return len == 0 || rt->prefix[len - 1] == '/' || rest[len] == '\0' || rest[len] == '/';
}

static const char *api_route_query(const struct vf_request *req, const char *key)
{
    const struct api_op *op = req->internal;
    struct json_object *v;

    if (!op->query || !json_object_object_get_ex(op->query, key, &v))
        return NULL;
    return json_object_get_string(v);
}

static void op_route(struct api_op *op)
{
    const struct api_route *best = NULL;
    struct json_object *response = NULL;
    struct vf_error err = { 0 };
    struct vf_request req;
    char allow[128] = "";
    bool found = false;
    int r;

    for (const struct api_route *rt = api_routes; rt; rt = rt->next) {
        if (strcmp(rt->module, op->module) || !api_route_matches(rt, op->rest))
            continue;
        found = true;
        if (!strcmp(rt->method, op->method) ||
            (!strcmp(op->method, "HEAD") && !strcmp(rt->method, "GET"))) {
            if (!best || strlen(rt->prefix) > strlen(best->prefix))
                best = rt;
        } else if (!strstr(allow, rt->method)) {
            size_t used = strlen(allow);
            snprintf(allow + used, sizeof allow - used, "%s%s", used ? ", " : "", rt->method);
        }
    }
    if (!best && found) {
        op->reply.allow = strdup(allow);
        api_reply_errorf(&op->reply, 405, "MethodNotAllowed", "",
                         "%s is not allowed on %s; allowed: %s", op->method, op->path, allow);
        return;
    }
    if (!best) {
        api_reply_errorf(&op->reply, 404, "NotFound", "", "no such path: %s", op->path);
        return;
    }
    req = (struct vf_request){
        .method = op->method,
        .path = op->path,
        .path_rest = op->rest + strlen(best->prefix),
        .query = api_route_query,
        .body = op->body,
        .peer_uid = op->actor.uid,
        .peer_gid = op->actor.gid,
        .peer_pid = op->actor.pid,
        .internal = op,
    };
    r = best->fn(best->opaque, &req, &response, &err);
    if (r < 0) {
        json_object_put(response);
        if (err.status == 0)
            vf_error_set(&err, r, 500, "InternalError", "", "module %s: %s %s failed: %s",
                         best->module, op->method, op->path, strerror(-r));
        api_reply_error(&op->reply, r, &err);
        return;
    }
    if (r != 0 && (r < 100 || r > 599)) {
        json_object_put(response);
        api_reply_errorf(&op->reply, 500, "InternalError", "",
                         "module %s: route %s answered with HTTP status %d", best->module,
                         op->path, r);
        return;
    }
    api_reply_json(&op->reply, r ? (unsigned)r : 200,
                   response ? response : json_object_new_object());
}

int vf_api_route_add(struct vf_module_ctx *owner, const char *module_name, const char *method,
                     const char *prefix, vf_route_fn fn, void *opaque)
{
    struct api_route *rt;

    if (!module_name || !vf_is_dns_label(module_name) || !method || !method[0] || !fn) {
        vf_log_error("api: route of module \"%s\": module name, method and handler are required",
                     module_name ? module_name : "");
        return -EINVAL;
    }
    for (const char *c = method; *c; c++) {
        if (*c < 'A' || *c > 'Z') {
            vf_log_error("api: route of module %s: method \"%s\" is not an upper-case HTTP "
                         "method", module_name, method);
            return -EINVAL;
        }
    }
    if (!prefix)
        prefix = "";
    while (*prefix == '/')
        prefix++;
    for (rt = api_routes; rt; rt = rt->next) {
        if (!strcmp(rt->module, module_name) && !strcmp(rt->method, method) &&
            !strcmp(rt->prefix, prefix)) {
            vf_log_error("api: route %s /modules/%s/%s is already registered", method,
                         module_name, prefix);
            return -EEXIST;
        }
    }
    rt = calloc(1, sizeof *rt);
    if (!rt || !(rt->module = strdup(module_name)) || !(rt->method = strdup(method)) ||
        !(rt->prefix = strdup(prefix))) {
        if (rt) {
            free(rt->module);
            free(rt->method);
            free(rt);
        }
        vf_log_error("api: route %s /modules/%s/%s: out of memory", method, module_name, prefix);
        return -ENOMEM;
    }
    rt->owner = owner;
    rt->fn = fn;
    rt->opaque = opaque;
    rt->next = api_routes;
    api_routes = rt;
    return 0;
}

void vf_api_routes_remove_owner(struct vf_module_ctx *owner)
{
    struct api_route **pp = &api_routes;

    while (*pp) {
        struct api_route *rt = *pp;
        if (rt->owner == owner) {
            *pp = rt->next;
            free(rt->module);
            free(rt->method);
            free(rt->prefix);
            free(rt);
        } else {
            pp = &rt->next;
        }
    }
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
    switch (op->type) {
    case OP_DISCOVERY:
        op_discovery(op);
        break;
    case OP_MODULES:
        op_modules(op);
        break;
    case OP_LIST:
        op_list(op);
        break;
    case OP_WATCH:
        op_watch(op);
        break;
    case OP_GET:
        op_get(op);
        break;
    case OP_ROUTE:
        op_route(op);
        break;
    default:
        op_write(op);
        break;
    }
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
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, api_watch_read,
                                                 r->watch, api_watch_response_freed);
        if (!resp) {
            vf_log_error("api: cannot create the response of a watch of %s", r->watch->kind);
            api_watch_response_freed(r->watch);
            r->watch = NULL;
            return MHD_NO;
        }
        r->watch = NULL; /* the response owns it now */
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
                /* Answer before reading a byte of it: the client learns at once. */
                rq->too_large = true;
                api_reply_too_large(&r, method, url);
                return api_reply_send(conn, rq, &r);
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
