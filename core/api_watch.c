/* Watch streams: GET ...?watch=1 answered with one JSON line per change.
 *
 * Owns: each open stream's queue and the store watch that fills it.  Watches:
 * the store, on the loop thread, for every open stream.
 *
 * The store calls api_watch_event() on the loop thread; it appends one JSON line
 * to the watch's queue (mutex + condvar) and the connection thread's content
 * reader drains it.  The queue is bounded: a client that falls too far behind
 * gets an ERROR line and the end of its stream, never unbounded memory. */
#include <config.h> /* autoconf's; core/config.h is the daemon's configuration */

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <microhttpd.h>

#include "api_internal.h"
#include "kinds.h"
#include "log.h"
#include "loop.h"
#include "objects.h"
#include "store.h"

/* How far a watch client may fall behind before its stream is ended with 410. */
#define API_WATCH_MAX_BACKLOG ((size_t)16 << 20)
/* How often a blocked reader looks whether its client hung up. */
#define API_WATCH_POLL_MS 1000

static int64_t api_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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
void api_watch_free(struct api_watch *w)
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

struct MHD_Response *api_watch_response(struct api_watch *w)
{
    struct MHD_Response *resp = MHD_create_response_from_callback(
        MHD_SIZE_UNKNOWN, 16 * 1024, api_watch_read, w, api_watch_response_freed);

    if (!resp) {
        vf_log_error("api: cannot create the response of a watch of %s", w->kind);
        api_watch_response_freed(w);
    }
    return resp;
}

void api_stop_wake_watches(void)
{
    pthread_mutex_lock(&api.lock);
    for (struct api_watch *w = api.watches; w; w = w->next) {
        pthread_mutex_lock(&w->lock);
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->lock);
    }
    pthread_mutex_unlock(&api.lock);
}

void api_op_watch(struct api_op *op)
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
