#include <config.h>
/* One HTTP(S) transfer over libcurl, as both fetchers need it: redirects
 * followed here rather than by libcurl, so that every hop is checked
 * (http/https only, a bounded number) and credentials go to the first origin
 * only; retries with exponential back-off on transient failures (or after
 * the server's Retry-After on 429 and 503, up to a minute); resume with Range
 * into a file, re-hashing what it already holds; size limits enforced from
 * Content-Length before any byte is stored and again while streaming;
 * cancellation and progress through the transfer-info callback.
 *
 * Requests run on libcurl's multi interface, driven from the caller's
 * thread: to the end for a file or memory, or a little at a time for a
 * stream, whose consumer pulls the body (vf_xfer_read) and so sets the pace:
 * no thread and no buffer beyond what one curl_multi_perform delivers. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>

#include "modules/images/import/fetch_internal.h"

#define ERRBODY_SKIP_MAX (1u << 20)   /* a longer non-2xx body is not worth reading */
#define PROGRESS_BYTES (256u << 10)

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

/* curl_global_init is not thread-safe in every libcurl we accept: once. */
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int vf_fetch_sleep(int ms, atomic_bool *cancel)
{
    uint64_t end = now_ms() + (uint64_t)(ms > 0 ? ms : 0);
    for (;;) {
        if (cancel && atomic_load(cancel))
            return -ECANCELED;
        uint64_t t = now_ms();
        if (t >= end)
            return 0;
        uint64_t step = end - t < 100 ? end - t : 100;
        struct timespec ts = { 0, (long)step * 1000000L };
        nanosleep(&ts, NULL);
    }
}

int vf_retry_after_parse(const char *value)
{
    unsigned long long v = 0;
    const char *p = value;
    if (!p)
        return -1;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p < '0' || *p > '9')
        return -1;   /* an HTTP-date, or junk */
    for (; *p >= '0' && *p <= '9'; p++)
        if ((v = v * 10 + (unsigned)(*p - '0')) > VF_RETRY_AFTER_MAX_S)
            v = VF_RETRY_AFTER_MAX_S + 1;   /* no overflow however long */
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p)
        return -1;
    return v > VF_RETRY_AFTER_MAX_S ? VF_RETRY_AFTER_MAX_S : (int)v;
}

/* Scheme, host and port of an absolute URL (port filled in from the scheme). */
static bool url_origin(const char *url, char **scheme, char **host, char **port)
{
    CURLU *u = curl_url();
    bool ok = false;
    *scheme = *host = *port = NULL;
    if (!u)
        return false;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, port, CURLU_DEFAULT_PORT) == CURLUE_OK)
        ok = true;
    curl_url_cleanup(u);
    if (!ok) {
        curl_free(*scheme);
        curl_free(*host);
        curl_free(*port);
        *scheme = *host = *port = NULL;
    }
    return ok;
}

bool vf_url_is_http(const char *url)
{
    char *scheme, *host, *port;
    if (!url || !url_origin(url, &scheme, &host, &port))
        return false;
    bool ok = (strcasecmp(scheme, "http") == 0 || strcasecmp(scheme, "https") == 0) && *host;
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    return ok;
}

bool vf_url_same_origin(const char *a, const char *b)
{
    char *s1, *h1, *p1, *s2, *h2, *p2;
    bool same = false;
    if (!url_origin(a, &s1, &h1, &p1))
        return false;
    if (url_origin(b, &s2, &h2, &p2)) {
        same = strcasecmp(s1, s2) == 0 && strcasecmp(h1, h2) == 0 && strcmp(p1, p2) == 0;
        curl_free(s2);
        curl_free(h2);
        curl_free(p2);
    }
    curl_free(s1);
    curl_free(h1);
    curl_free(p1);
    return same;
}

/* location resolved against base; NULL when it is not http(s).  curl_free() it. */
static char *resolve_location(const char *base, const char *location)
{
    CURLU *u = curl_url();
    char *out = NULL;
    if (!u)
        return NULL;
    if (curl_url_set(u, CURLUPART_URL, base, 0) != CURLUE_OK ||
        curl_url_set(u, CURLUPART_URL, location, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_URL, &out, 0) != CURLUE_OK)
        out = NULL;
    curl_url_cleanup(u);
    if (out && !vf_url_is_http(out)) {
        curl_free(out);
        out = NULL;
    }
    return out;
}

/* The state of one request (one hop). */
struct hop {
    struct vf_xfer *x;
    struct vf_error *err;
    int cb_rc;                  /* a callback's verdict: negative errno with *err set */
    bool restart;               /* the server resumed wrongly: start over without Range */
    bool skipped_body;          /* a long non-2xx body was cut short on purpose */
    bool store;                 /* the body is wanted (2xx) */
    bool body;                  /* ... and its headers were accepted: it is coming */
    uint64_t offset;            /* fd/stream: where the request asked the body to start */
    uint64_t at;                /* stream: offset in the resource of the next body byte */
    uint64_t announced;         /* Content-Length, when present */
    bool have_length;
    uint64_t range_start, range_total;
    bool have_range;
    char location[2048];
    size_t errlen, skipped;
    uint64_t last_progress_bytes, last_progress_ms;
};

/* One transfer across its requests (redirect hops, retries), driven through
 * libcurl's multi interface: to its end by vf_xfer_run, or piece by piece as
 * a stream's consumer asks for bytes (vf_xfer_read). */
struct vf_xfer_engine {
    struct vf_xfer *x;
    CURL *curl;
    CURLM *multi;
    struct hop h;               /* the request in flight, or the last one */
    bool active;                /* h's request is on the multi handle */
    struct curl_slist *hdrs;    /* h's request headers */
    char errbuf[CURL_ERROR_SIZE];
    char *cur;                  /* h's URL */
    int redirects, max_retries, backoff;
    bool no_range;              /* ask for the whole (a server resumed wrongly) */
    bool finished;              /* the transfer ended: rc and err are final */
    int rc;
    struct vf_error err;        /* here, not the caller's: a stream's calls pass different ones */
    char *buf;                  /* stream: body bytes for the consumer */
    size_t len, cap;
    bool handed;                /* ... handed out by the last read: spent at the next */
};

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\r' || s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
}

static const char *what(const struct vf_xfer *x)
{
    return x->what ? x->what : x->url;
}

/* The body counts against common->max_bytes (fd, stream), else mem_max. */
static bool counted(const struct vf_xfer *x)
{
    return x->fd >= 0 || x->stream;
}

static int too_large(struct hop *h, uint64_t size, bool announced)
{
    const struct vf_xfer *x = h->x;
    uint64_t limit = counted(x) ? x->common->max_bytes : x->mem_max;
    h->cb_rc = vf_error_set(h->err, -EFBIG, 413, "TooLarge", "",
                            announced ? "%s is %" PRIu64 " bytes, more than the limit of %" PRIu64 " bytes"
                                      : "%s passed the limit of %" PRIu64 " bytes at %" PRIu64 " bytes",
                            what(x), announced ? size : limit, announced ? limit : size);
    return h->cb_rc;
}

/* All headers are in: decide what to do with the body before any byte of it. */
static int headers_done(struct hop *h)
{
    struct vf_xfer *x = h->x;
    h->store = x->status >= 200 && x->status < 300;
    if (!h->store)
        return 0;
    if (!counted(x)) {
        if (h->have_length && h->announced > x->mem_max)
            return too_large(h, h->announced, true);
        h->body = true;
        return 0;
    }
    if (x->status == 206) {
        if (!h->have_range || h->range_start != h->offset) {
            h->restart = true;   /* not the part we asked for */
            return -EAGAIN;
        }
        x->resumed = h->offset > 0;
        x->total = h->range_total ? h->range_total : (h->have_length ? h->offset + h->announced : 0);
    } else {
        if (h->offset > 0 && x->fd >= 0) {
            /* Range ignored: what fd holds is worthless, start over. */
            if (ftruncate(x->fd, 0) < 0) {
                h->cb_rc = vf_error_set(h->err, -errno, 500, "FetchFailed", "",
                                        "cannot truncate the download file: %s", strerror(errno));
                return h->cb_rc;
            }
            if (x->hash)
                vf_hash_reset(x->hash);
            x->bytes = 0;
            x->resumed = false;
        }
        /* A stream's consumer already has x->bytes of it: on_body drops
         * those as they come again. */
        h->offset = 0;
        x->total = h->have_length ? h->announced : 0;
    }
    h->at = h->offset;
    if (x->common->max_bytes && x->total > x->common->max_bytes)
        return too_large(h, x->total, true);
    h->body = true;
    return 0;
}

static size_t on_header(char *buf, size_t size, size_t n, void *opaque)
{
    struct hop *h = opaque;
    struct vf_xfer *x = h->x;
    size_t len = size * n;
    char line[2048];
    snprintf(line, sizeof line, "%.*s", (int)(len < sizeof line ? len : sizeof line - 1), buf);
    trim(line);

    if (strncmp(line, "HTTP/", 5) == 0) {
        /* A new response (1xx ones come before the real one). */
        const char *sp = strchr(line, ' ');
        x->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        x->reason_phrase[0] = x->content_type[0] = x->www_authenticate[0] = '\0';
        if (sp && (sp = strchr(sp + 1, ' ')))
            snprintf(x->reason_phrase, sizeof x->reason_phrase, "%s", sp + 1);
        h->have_length = h->have_range = false;
        h->location[0] = '\0';
        x->retry_after_s = -1;
        return len;
    }
    if (line[0] == '\0') {
        if (x->status >= 100 && x->status < 200)
            return len;
        return headers_done(h) < 0 ? 0 : len;
    }
    char *colon = strchr(line, ':');
    if (!colon)
        return len;
    *colon = '\0';
    const char *value = colon + 1;
    while (*value == ' ' || *value == '\t')
        value++;
    if (strcasecmp(line, "Content-Length") == 0) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(value, &end, 10);
        if (!errno && end != value && *end == '\0') {
            h->announced = v;
            h->have_length = true;
        }
    } else if (strcasecmp(line, "Content-Range") == 0) {
        unsigned long long s, e, t;
        if (sscanf(value, "bytes %llu-%llu/%llu", &s, &e, &t) == 3) {
            h->range_start = s;
            h->range_total = t;
            h->have_range = true;
        } else if (sscanf(value, "bytes %llu-%llu/*", &s, &e) == 2) {
            h->range_start = s;
            h->range_total = 0;
            h->have_range = true;
        }
    } else if (strcasecmp(line, "Retry-After") == 0) {
        x->retry_after_s = vf_retry_after_parse(value);
    } else if (strcasecmp(line, "Location") == 0) {
        snprintf(h->location, sizeof h->location, "%s", value);
    } else if (strcasecmp(line, "Content-Type") == 0) {
        snprintf(x->content_type, sizeof x->content_type, "%s", value);
    } else if (strcasecmp(line, "WWW-Authenticate") == 0) {
        /* Several challenges: prefer Bearer, which the registry flow speaks. */
        if (!x->www_authenticate[0] || strncasecmp(value, "Bearer", 6) == 0)
            snprintf(x->www_authenticate, sizeof x->www_authenticate, "%s", value);
    }
    return len;
}

/* Stream mode: keeps len bytes for the consumer's next read. */
static int stream_keep(struct vf_xfer_engine *e, const char *buf, size_t len)
{
    if (e->len + len > e->cap) {
        size_t cap = e->cap ? e->cap : 64 * 1024;
        while (cap < e->len + len)
            cap *= 2;
        char *b = realloc(e->buf, cap);
        if (!b)
            return -ENOMEM;
        e->buf = b;
        e->cap = cap;
    }
    memcpy(e->buf + e->len, buf, len);
    e->len += len;
    return 0;
}

static size_t on_body(char *buf, size_t size, size_t n, void *opaque)
{
    struct hop *h = opaque;
    struct vf_xfer *x = h->x;
    size_t len = size * n;

    if (!h->store) {
        size_t room = sizeof x->errbody - 1 - h->errlen;
        size_t take = len < room ? len : room;
        memcpy(x->errbody + h->errlen, buf, take);
        h->errlen += take;
        x->errbody[h->errlen] = '\0';
        h->skipped += len;
        if (h->skipped > ERRBODY_SKIP_MAX) {
            h->skipped_body = true;
            return 0;
        }
        return len;
    }
    if (x->stream) {
        /* A whole answer to a retry: the consumer has its start already. */
        size_t drop = h->at < x->bytes ? (size_t)(x->bytes - h->at < len ? x->bytes - h->at : len) : 0;
        h->at += len;
        if (drop == len)
            return len;
        if (x->common->max_bytes && x->bytes + (len - drop) > x->common->max_bytes)
            return too_large(h, x->bytes + (len - drop), false), 0;
        if (stream_keep(x->engine, buf + drop, len - drop) < 0) {
            h->cb_rc = vf_error_set(h->err, -ENOMEM, 500, "FetchFailed", "", "out of memory reading %s", what(x));
            return 0;
        }
        if (x->hash)
            vf_hash_update(x->hash, buf + drop, len - drop);
        x->bytes += len - drop;
        return len;
    }
    if (x->fd < 0) {
        if (x->mem_len + len > x->mem_max)
            return too_large(h, x->mem_len + len, false), 0;
        char *m = realloc(x->mem, x->mem_len + len + 1);
        if (!m) {
            h->cb_rc = vf_error_set(h->err, -ENOMEM, 500, "FetchFailed", "", "out of memory reading %s", what(x));
            return 0;
        }
        memcpy(m + x->mem_len, buf, len);
        x->mem = m;
        x->mem_len += len;
        m[x->mem_len] = '\0';
        return len;
    }
    if (x->common->max_bytes && x->bytes + len > x->common->max_bytes)
        return too_large(h, x->bytes + len, false), 0;
    for (size_t done = 0; done < len;) {
        ssize_t w = pwrite(x->fd, buf + done, len - done, (off_t)(x->bytes + done));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = w < 0 ? errno : EIO;
            h->cb_rc = vf_error_set(h->err, -e, 507, "FetchFailed", "", "writing the download of %s: %s",
                                    what(x), strerror(e));
            return 0;
        }
        done += (size_t)w;
    }
    if (x->hash)
        vf_hash_update(x->hash, buf, len);
    x->bytes += len;
    return len;
}

static void report_progress(struct hop *h, bool force)
{
    const struct vf_fetch_common *c = h->x->common;
    uint64_t t = now_ms(), done = counted(h->x) ? h->x->bytes : h->x->mem_len;
    if (!c->progress)
        return;
    if (!force && done - h->last_progress_bytes < PROGRESS_BYTES && t - h->last_progress_ms < 1000)
        return;
    h->last_progress_bytes = done;
    h->last_progress_ms = t;
    c->progress(c->opaque, done, h->x->total);
}

static int on_xferinfo(void *opaque, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    struct hop *h = opaque;
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    if (h->x->common->cancel && atomic_load(h->x->common->cancel)) {
        h->cb_rc = vf_error_set(h->err, -ECANCELED, 499, "Canceled", "", "the download of %s was canceled",
                                what(h->x));
        return 1;
    }
    if (h->store)
        report_progress(h, false);
    return 0;
}

static bool transient_code(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return true;
    default:
        return false;
    }
}

static bool transient_status(long status)
{
    return status == 408 || status == 429 || (status >= 500 && status <= 599);
}

static void finish(struct vf_xfer_engine *e, int rc)
{
    e->finished = true;
    e->rc = rc;
}

/* Starts a request to e->cur: the next hop of an attempt, or its first. */
static int hop_begin(struct vf_xfer_engine *e)
{
    struct vf_xfer *x = e->x;
    const struct vf_fetch_common *c = x->common;
    struct hop *h = &e->h;
    CURL *curl = e->curl;
    bool first_origin = vf_url_same_origin(e->cur, x->url);
    char range[48], auth[2048];

    *h = (struct hop){ .x = x, .err = &e->err };
    if (x->fd >= 0) {
        h->offset = e->no_range ? 0 : x->bytes;
        if (e->no_range && x->bytes > 0) {
            if (ftruncate(x->fd, 0) < 0)
                return vf_error_set(&e->err, -errno, 500, "FetchFailed", "",
                                    "cannot truncate the download file: %s", strerror(errno));
            x->bytes = 0;
            if (x->hash)
                vf_hash_reset(x->hash);
        }
    } else if (x->stream) {
        h->offset = e->no_range ? 0 : x->bytes;
    } else {
        x->mem_len = 0;
    }
    x->status = 0;
    x->retry_after_s = -1;
    x->errbody[0] = '\0';
    snprintf(x->effective_url, sizeof x->effective_url, "%s", e->cur);

    curl_easy_reset(curl);
    e->errbuf[0] = '\0';
    curl_easy_setopt(curl, CURLOPT_URL, e->cur);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, e->errbuf);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_UNRESTRICTED_AUTH, 0L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "virtfleet/" PACKAGE_VERSION);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, (long)(c->connect_timeout_s > 0 ? c->connect_timeout_s : 30));
    /* A stall: under 1 byte/s for the whole window. */
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, (long)(c->stall_timeout_s > 0 ? c->stall_timeout_s : 60));
    curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, h);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, h);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_xferinfo);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, h);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    if (c->insecure_skip_verify) {
        curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
    } else if (c->ca_bundle_pem && *c->ca_bundle_pem) {
        /* Only these CAs: the system's directory is switched off too. */
        struct curl_blob blob = { .data = (void *)c->ca_bundle_pem, .len = strlen(c->ca_bundle_pem),
                                  .flags = CURL_BLOB_COPY };
        curl_easy_setopt(curl, CURLOPT_CAINFO_BLOB, &blob);
        curl_easy_setopt(curl, CURLOPT_CAPATH, NULL);
    }
    if (x->accept) {
        snprintf(auth, sizeof auth, "Accept: %s", x->accept);
        e->hdrs = curl_slist_append(e->hdrs, auth);
    }
    if (first_origin && x->bearer) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", x->bearer);
        e->hdrs = curl_slist_append(e->hdrs, auth);
    } else if (first_origin && x->username) {
        curl_easy_setopt(curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(curl, CURLOPT_USERNAME, x->username);
        curl_easy_setopt(curl, CURLOPT_PASSWORD, x->password ? x->password : "");
    }
    if (e->hdrs)
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, e->hdrs);
    if (counted(x) && h->offset > 0) {
        snprintf(range, sizeof range, "%" PRIu64 "-", h->offset);
        curl_easy_setopt(curl, CURLOPT_RANGE, range);
    }
    CURLMcode mc = curl_multi_add_handle(e->multi, curl);
    if (mc != CURLM_OK)
        return vf_error_set(&e->err, -EIO, 500, "FetchFailed", "", "fetching %s: libcurl: %s", e->cur,
                            curl_multi_strerror(mc));
    e->active = true;
    return 0;
}

enum outcome { DONE, REDIRECT, TRANSIENT, FAILED };

/* The request of e->h ended with code: what next.  FAILED has e->err set;
 * TRANSIENT has a message there too, used if no retry is left; REDIRECT
 * has e->cur moved on. */
static enum outcome hop_end(struct vf_xfer_engine *e, CURLcode code, int *rc_out)
{
    struct vf_xfer *x = e->x;
    struct hop *h = &e->h;
    struct vf_error *err = &e->err;
    const char *cur = e->cur;

    curl_multi_remove_handle(e->multi, e->curl);
    e->active = false;
    curl_slist_free_all(e->hdrs);
    e->hdrs = NULL;
    if (h->store)
        report_progress(h, true);
    *rc_out = -EIO;
    if (h->cb_rc < 0) {
        *rc_out = h->cb_rc;
        return FAILED;
    }
    if (h->restart) {
        e->no_range = true;
        *rc_out = vf_error_set(err, -EIO, 502, "FetchFailed", "", "%s answered a Range request with another range",
                               what(x));
        return TRANSIENT;
    }
    if (code != CURLE_OK && !(code == CURLE_WRITE_ERROR && h->skipped_body)) {
        int stall_s = x->common->stall_timeout_s > 0 ? x->common->stall_timeout_s : 60;
        if (code == CURLE_OPERATION_TIMEDOUT && x->status)
            *rc_out = vf_error_set(err, -ETIMEDOUT, 504, "FetchFailed", "", "%s stalled: less than 1 byte/s for %d s (%s)",
                                   cur, stall_s, e->errbuf[0] ? e->errbuf : curl_easy_strerror(code));
        else
            *rc_out = vf_error_set(err, -EIO, 502, "FetchFailed", "", "fetching %s failed: %s", cur,
                                   e->errbuf[0] ? e->errbuf : curl_easy_strerror(code));
        return transient_code(code) ? TRANSIENT : FAILED;
    }
    if (x->status >= 300 && x->status < 400 && h->location[0]) {
        char *next = resolve_location(cur, h->location);
        if (!next) {
            *rc_out = vf_error_set(err, -EINVAL, 502, "FetchFailed", "",
                                   "%s redirects to \"%s\", which is not an http or https URL", cur, h->location);
            return FAILED;
        }
        int max_redirects = x->max_redirects > 0 ? x->max_redirects : 10;
        if (++e->redirects > max_redirects) {
            curl_free(next);
            *rc_out = vf_error_set(err, -ELOOP, 502, "FetchFailed", "", "more than %d redirects from %s (the last to %s)",
                                   max_redirects, x->url, h->location);
            return FAILED;
        }
        free(e->cur);
        e->cur = strdup(next);
        curl_free(next);
        if (!e->cur) {
            *rc_out = vf_error_set(err, -ENOMEM, 500, "FetchFailed", "", "out of memory");
            return FAILED;
        }
        return REDIRECT;
    }
    if (x->status == 416 && counted(x) && h->offset > 0) {
        /* fd holds at least as much as the resource (a stream: the server
         * will not resume here): not a prefix we can trust; fetch the whole. */
        e->no_range = true;
        *rc_out = vf_error_set(err, -EIO, 502, "FetchFailed", "", "%s refused to resume at byte %" PRIu64, cur,
                               h->offset);
        return TRANSIENT;
    }
    if (transient_status(x->status)) {
        *rc_out = vf_xfer_status_error(x, err);
        return TRANSIENT;
    }
    if (x->status >= 200 && x->status < 300 && counted(x) && x->total && x->bytes != x->total) {
        *rc_out = vf_error_set(err, -EIO, 502, "FetchFailed", "", "%s ended after %" PRIu64 " of %" PRIu64 " bytes",
                               cur, x->bytes, x->total);
        return TRANSIENT;
    }
    *rc_out = 0;
    return DONE;
}

/* An attempt from the first URL: the first, or a retry. */
static int attempt_begin(struct vf_xfer_engine *e)
{
    struct vf_xfer *x = e->x;
    if (x->common->cancel && atomic_load(x->common->cancel))
        return vf_error_set(&e->err, -ECANCELED, 499, "Canceled", "", "the download of %s was canceled", what(x));
    free(e->cur);
    if (!(e->cur = strdup(x->url)))
        return vf_error_set(&e->err, -ENOMEM, 500, "FetchFailed", "", "out of memory");
    e->redirects = 0;
    return hop_begin(e);
}

/* After a request ended: the next hop, a retry after a pause, or the end. */
static void hop_next(struct vf_xfer_engine *e, CURLcode code)
{
    struct vf_xfer *x = e->x;
    const struct vf_fetch_common *c = x->common;
    int rc;
    enum outcome o = hop_end(e, code, &rc);

    if (o == REDIRECT) {
        if ((rc = hop_begin(e)) < 0)
            finish(e, rc);
        return;
    }
    if (o == TRANSIENT && x->retries < e->max_retries) {
        /* The server knows when it will be back: its word over our guess. */
        bool told = (x->status == 429 || x->status == 503) && x->retry_after_s >= 0;
        int s = vf_fetch_sleep(told ? x->retry_after_s * 1000 : e->backoff, c->cancel);
        e->backoff = e->backoff > 15000 ? 30000 : e->backoff * 2;
        x->retries++;
        if (s < 0)
            rc = vf_error_set(&e->err, -ECANCELED, 499, "Canceled", "", "the download of %s was canceled", what(x));
        else
            rc = attempt_begin(e);
        if (rc < 0)
            finish(e, rc);
        return;
    }
    if (o == TRANSIENT && x->status && transient_status(x->status)) {
        /* Retries spent on 5xx/429: the status is the answer. */
        rc = 0;
    } else if (o == TRANSIENT && x->retries > 0) {
        size_t n = strlen(e->err.message);
        snprintf(e->err.message + n, sizeof e->err.message - n, " (after %d retries)", x->retries);
    }
    finish(e, rc);
}

enum until { UNTIL_END, UNTIL_BODY, UNTIL_DATA };

/* Drives the transfer until it ended or, for a stream, until a 2xx body is
 * coming (UNTIL_BODY) or bytes of it wait for the consumer (UNTIL_DATA). */
static void pump(struct vf_xfer_engine *e, enum until until)
{
    for (;;) {
        if (until == UNTIL_DATA && e->len > 0)
            return;
        if (e->finished || (until == UNTIL_BODY && e->active && e->h.body))
            return;
        int running = 0, queued;
        CURLMcode mc = curl_multi_perform(e->multi, &running);
        if (mc != CURLM_OK) {
            finish(e, vf_error_set(&e->err, -EIO, 500, "FetchFailed", "", "fetching %s: libcurl: %s", e->cur,
                                   curl_multi_strerror(mc)));
            return;
        }
        bool ended = false;
        CURLcode code = CURLE_OK;
        for (CURLMsg *m; (m = curl_multi_info_read(e->multi, &queued));)
            if (m->msg == CURLMSG_DONE && m->easy_handle == e->curl) {
                ended = true;
                code = m->data.result;
            }
        if (ended)
            hop_next(e, code);
        else if (running)
            curl_multi_poll(e->multi, NULL, 0, 1000, NULL);
        else if (!e->active)   /* cannot happen: a request is always on */
            finish(e, vf_error_set(&e->err, -EIO, 500, "FetchFailed", "", "fetching %s: no request", e->cur));
    }
}

static void engine_free(struct vf_xfer *x)
{
    struct vf_xfer_engine *e = x->engine;
    if (!e)
        return;
    if (e->active)
        curl_multi_remove_handle(e->multi, e->curl);
    curl_slist_free_all(e->hdrs);
    if (e->curl)
        curl_easy_cleanup(e->curl);
    if (e->multi)
        curl_multi_cleanup(e->multi);
    free(e->cur);
    free(e->buf);
    free(e);
    x->engine = NULL;
}

/* Checks the request, sets up the engine and starts the first request. */
static int xfer_start(struct vf_xfer *x, struct vf_error *err)
{
    const struct vf_fetch_common *c = x->common;
    int rc;

    pthread_once(&curl_once, curl_init_once);
    x->status = 0;
    x->bytes = x->total = 0;
    x->resumed = false;
    x->retries = 0;
    x->retry_after_s = -1;
    x->mem = NULL;
    x->mem_len = 0;
    x->engine = NULL;
    x->effective_url[0] = x->errbody[0] = '\0';
    if (!vf_url_is_http(x->url))
        return vf_error_set(err, -EINVAL, 400, "Invalid", "", "\"%s\" is not an http:// or https:// URL",
                            x->url ? x->url : "");
    if (x->stream && x->fd >= 0)
        return vf_error_set(err, -EINVAL, 500, "FetchFailed", "", "%s: a stream has no file", what(x));
    if (x->fd >= 0) {
        struct stat st;
        if (fstat(x->fd, &st) < 0)
            return vf_error_set(err, -errno, 500, "FetchFailed", "", "fstat of the download file: %s",
                                strerror(errno));
        if (!x->resume && st.st_size > 0) {
            if (ftruncate(x->fd, 0) < 0)
                return vf_error_set(err, -errno, 500, "FetchFailed", "",
                                    "cannot truncate the download file: %s", strerror(errno));
            st.st_size = 0;
        }
        x->bytes = (uint64_t)st.st_size;
        if (x->hash && x->bytes > 0 && (rc = vf_hash_fd(x->hash, x->fd, x->bytes, c->cancel, err)) < 0)
            return rc;
    }
    struct vf_xfer_engine *e = calloc(1, sizeof *e);
    if (!e)
        return vf_error_set(err, -ENOMEM, 500, "FetchFailed", "", "out of memory");
    x->engine = e;
    e->x = x;
    e->max_retries = c->max_retries > 0 ? c->max_retries : 5;
    e->backoff = c->retry_backoff_ms > 0 ? c->retry_backoff_ms : 1000;
    e->curl = curl_easy_init();
    e->multi = curl_multi_init();
    if (!e->curl || !e->multi) {
        engine_free(x);
        return vf_error_set(err, -ENOMEM, 500, "FetchFailed", "", "cannot create a libcurl handle");
    }
    if ((rc = attempt_begin(e)) < 0) {
        if (err)
            *err = e->err;
        engine_free(x);
    }
    return rc;
}

int vf_xfer_run(struct vf_xfer *x, struct vf_error *err)
{
    int rc = xfer_start(x, err);
    if (rc < 0)
        return rc;
    pump(x->engine, UNTIL_END);
    rc = x->engine->rc;
    if (rc < 0 && err)
        *err = x->engine->err;
    engine_free(x);
    return rc;
}

/* The stream's transfer until its body comes or it ended: 0 or its error. */
static int stream_wait_body(struct vf_xfer *x, struct vf_error *err)
{
    struct vf_xfer_engine *e = x->engine;
    pump(e, UNTIL_BODY);
    if (e->finished && e->rc < 0) {
        if (err)
            *err = e->err;
        return e->rc;
    }
    return 0;
}

int vf_xfer_open(struct vf_xfer *x, struct vf_error *err)
{
    if (!x->stream)
        return vf_error_set(err, -EINVAL, 500, "FetchFailed", "", "%s: not a stream", what(x));
    x->fd = -1;
    int rc = xfer_start(x, err);
    return rc < 0 ? rc : stream_wait_body(x, err);
}

ssize_t vf_xfer_read(struct vf_xfer *x, const void **buf, struct vf_error *err)
{
    struct vf_xfer_engine *e = x->engine;
    if (!e)
        return vf_error_set(err, -EINVAL, 500, "FetchFailed", "", "%s: not open", what(x));
    if (e->handed)
        e->len = 0;   /* the consumer is done with it */
    e->handed = false;
    pump(e, UNTIL_DATA);
    if (e->len > 0) {
        *buf = e->buf;
        e->handed = true;
        return (ssize_t)e->len;
    }
    if (e->rc < 0) {
        if (err)
            *err = e->err;
        return e->rc;
    }
    if (x->status < 200 || x->status >= 300)
        return vf_xfer_status_error(x, err);
    *buf = e->buf;
    return 0;
}

int vf_xfer_resume(struct vf_xfer *x, struct vf_error *err)
{
    struct vf_xfer_engine *e = x->engine;
    if (!e || e->active)
        return vf_error_set(err, -EINVAL, 500, "FetchFailed", "", "%s: nothing to resume", what(x));
    e->finished = false;
    e->rc = 0;
    int rc = attempt_begin(e);
    if (rc < 0) {
        finish(e, rc);
        if (err)
            *err = e->err;
        return rc;
    }
    return stream_wait_body(x, err);
}

void vf_xfer_close(struct vf_xfer *x)
{
    engine_free(x);
}

int vf_xfer_status_error(const struct vf_xfer *x, struct vf_error *err)
{
    char redirected[1100] = "", retried[48] = "";
    if (x->effective_url[0] && strcmp(x->effective_url, x->url) != 0)
        snprintf(redirected, sizeof redirected, " (redirected from %s)", x->url);
    if (x->retries > 0)
        snprintf(retried, sizeof retried, " after %d retries", x->retries);
    return vf_error_set(err, x->status == 404 ? -ENOENT : -EIO, 502, "FetchFailed", "",
                        "HTTP %ld%s%s from %s%s%s", x->status, x->reason_phrase[0] ? " " : "",
                        x->reason_phrase, x->effective_url[0] ? x->effective_url : x->url, redirected, retried);
}
