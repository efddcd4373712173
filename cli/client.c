/* The daemon's HTTP API over a unix socket (libcurl, CURLOPT_UNIX_SOCKET_PATH).
 * Bodies are bounded: a confused or hostile peer cannot make the CLI eat all
 * memory with an endless response or an endless watch line. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include "client.h"

#define MAX_RESPONSE (64u * 1024 * 1024)
#define MAX_WATCH_LINE (16u * 1024 * 1024)
#define MAX_JSON_DEPTH 128

struct vf_client {
    CURL *curl;
    char *socket;
    long timeout;
    char error[1024];
    char curl_error[CURL_ERROR_SIZE];
};

struct buffer {
    char *data;
    size_t len, cap, max;
    bool overflow;
};

static int buffer_append(struct buffer *b, const char *p, size_t n)
{
    if (b->len + n + 1 > b->max) {
        b->overflow = true;
        return -1;
    }
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 4096;
        while (ncap < b->len + n + 1)
            ncap *= 2;
        char *d = realloc(b->data, ncap);
        if (!d)
            return -1;
        b->data = d;
        b->cap = ncap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

void vf_response_clear(struct vf_response *r)
{
    json_object_put(r->body);
    free(r->text);
    memset(r, 0, sizeof *r);
}

struct vf_client *vf_client_new(const char *socket_path, long timeout_s)
{
    struct vf_client *c = calloc(1, sizeof *c);

    if (!c)
        return NULL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        free(c);
        return NULL;
    }
    c->curl = curl_easy_init();
    c->socket = strdup(socket_path);
    c->timeout = timeout_s;
    if (!c->curl || !c->socket) {
        vf_client_free(c);
        return NULL;
    }
    return c;
}

void vf_client_free(struct vf_client *c)
{
    if (!c)
        return;
    if (c->curl)
        curl_easy_cleanup(c->curl);
    free(c->socket);
    free(c);
    curl_global_cleanup();
}

const char *vf_client_socket(const struct vf_client *c)
{
    return c->socket;
}

const char *vf_client_error(const struct vf_client *c)
{
    return c->error;
}

/* Options common to requests and watches; the handle is reset each time so
 * that nothing leaks from one request into the next, but its connection
 * cache survives. */
static struct curl_slist *prepare(struct vf_client *c, const char *method, const char *path,
                                  const char *content_type, long timeout_s)
{
    struct curl_slist *headers = NULL, *h;
    char url[8192];
    char ctype[128];

    if (snprintf(url, sizeof url, "http://localhost%s", path) >= (int)sizeof url)
        return NULL;
    curl_easy_reset(c->curl);
    c->curl_error[0] = '\0';
    curl_easy_setopt(c->curl, CURLOPT_UNIX_SOCKET_PATH, c->socket);
    curl_easy_setopt(c->curl, CURLOPT_URL, url);
    curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, c->curl_error);
    curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, timeout_s);
    curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT, timeout_s > 0 && timeout_s < 10 ? timeout_s : 10L);
    curl_easy_setopt(c->curl, CURLOPT_USERAGENT, "virtfleet/" PACKAGE_VERSION);
    if (strcmp(method, "GET") != 0)
        curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
    /* A unix-socket peer needs no 100-continue round trip. */
    h = curl_slist_append(headers, "Expect:");
    if (h)
        headers = h;
    h = curl_slist_append(headers, "Accept: application/json");
    if (h)
        headers = h;
    if (content_type) {
        snprintf(ctype, sizeof ctype, "Content-Type: %s", content_type);
        h = curl_slist_append(headers, ctype);
        if (h)
            headers = h;
    }
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, headers);
    return headers;
}

/* Turn a transport failure into an errno and a message that says what to check. */
static int transport_error(struct vf_client *c, CURLcode rc, long timeout_s)
{
    long os_errno = 0;
    const char *detail = c->curl_error[0] ? c->curl_error : curl_easy_strerror(rc);

    curl_easy_getinfo(c->curl, CURLINFO_OS_ERRNO, &os_errno);
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
        if (os_errno == EACCES || os_errno == EPERM)
            snprintf(c->error, sizeof c->error,
                     "cannot connect to virtfleetd at %s: %s; the socket is for root and its group: "
                     "run as root or as a member of that group", c->socket, strerror((int)os_errno));
        else
            snprintf(c->error, sizeof c->error,
                     "cannot connect to virtfleetd at %s: %s; check that virtfleetd runs "
                     "(systemctl status virtfleetd) or give the socket with --socket PATH or VIRTFLEET_SOCKET",
                     c->socket, os_errno ? strerror((int)os_errno) : detail);
        return -ENOTCONN;
    case CURLE_OPERATION_TIMEDOUT:
        snprintf(c->error, sizeof c->error,
                 "virtfleetd at %s did not answer within %lds; try a larger --timeout", c->socket, timeout_s);
        return -ETIMEDOUT;
    default:
        snprintf(c->error, sizeof c->error, "talking to virtfleetd at %s: %s", c->socket, detail);
        return -EIO;
    }
}

/* Parse exactly one JSON value in data; NULL when it is not JSON. */
static struct json_object *parse_json(const char *data, size_t len)
{
    struct json_tokener *tok = json_tokener_new_ex(MAX_JSON_DEPTH);
    struct json_object *obj;

    if (!tok)
        return NULL;
    obj = json_tokener_parse_ex(tok, data, (int)len);
    if (obj) {
        size_t used = json_tokener_get_parse_end(tok);
        while (used < len && strchr(" \t\r\n", data[used]))
            used++;
        if (used != len) {
            json_object_put(obj);
            obj = NULL;
        }
    }
    json_tokener_free(tok);
    return obj;
}

static size_t on_body(char *ptr, size_t size, size_t n, void *opaque)
{
    struct buffer *b = opaque;
    return buffer_append(b, ptr, size * n) == 0 ? size * n : 0;
}

/* Fill resp from a complete body.  A success must be JSON; an error may be text. */
static int take_body(struct vf_client *c, struct buffer *b, struct vf_response *resp)
{
    if (b->len == 0)
        return 0;
    resp->body = parse_json(b->data, b->len);
    if (resp->body)
        return 0;
    if (resp->status < 400) {
        snprintf(c->error, sizeof c->error, "virtfleetd at %s sent a response that is not JSON", c->socket);
        return -EIO;
    }
    resp->text = b->data;
    b->data = NULL;
    return 0;
}

int vf_client_request(struct vf_client *c, const char *method, const char *path,
                      const char *content_type, struct json_object *body, struct vf_response *resp)
{
    struct buffer b = { .max = MAX_RESPONSE };
    struct curl_slist *headers;
    const char *payload = NULL;
    CURLcode rc;
    int ret = 0;

    memset(resp, 0, sizeof *resp);
    c->error[0] = '\0';
    if (body && !content_type)
        content_type = "application/json";
    headers = prepare(c, method, path, body ? content_type : NULL, c->timeout);
    if (!headers) {
        snprintf(c->error, sizeof c->error, "request path too long");
        return -EIO;
    }
    if (body) {
        payload = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, payload);
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(payload));
    }
    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &b);
    rc = curl_easy_perform(c->curl);
    if (rc == CURLE_WRITE_ERROR && b.overflow) {
        snprintf(c->error, sizeof c->error, "virtfleetd at %s sent more than %u MiB", c->socket,
                 MAX_RESPONSE >> 20);
        ret = -EIO;
    } else if (rc != CURLE_OK) {
        ret = transport_error(c, rc, c->timeout);
    } else {
        curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &resp->status);
        ret = take_body(c, &b, resp);
    }
    curl_slist_free_all(headers);
    free(b.data);
    if (ret < 0)
        vf_response_clear(resp);
    return ret;
}

/* ---- watches --------------------------------------------------------- */

struct watch {
    struct vf_client *c;
    vf_client_watch_fn fn;
    void *opaque;
    struct buffer line;     /* the incomplete line so far */
    struct buffer error;    /* the body of a refused watch */
    bool refused, stopped, bad;
};

/* One JSON line: {"type":"ADDED","object":{...}}; blank lines are keepalives. */
static int watch_line(struct watch *w, const char *line, size_t len)
{
    struct json_object *ev, *type, *object = NULL;
    size_t i = 0;

    while (i < len && strchr(" \t\r", line[i]))
        i++;
    if (i == len)
        return 0;
    ev = parse_json(line, len);
    if (!ev || !json_object_object_get_ex(ev, "type", &type) ||
        !json_object_is_type(type, json_type_string)) {
        snprintf(w->c->error, sizeof w->c->error, "virtfleetd at %s sent a watch event that is not "
                 "{\"type\":...,\"object\":...}", w->c->socket);
        json_object_put(ev);
        w->bad = true;
        return -1;
    }
    json_object_object_get_ex(ev, "object", &object);
    if (w->fn(w->opaque, json_object_get_string(type), object) != 0)
        w->stopped = true;
    json_object_put(ev);
    return w->stopped ? -1 : 0;
}

static size_t on_watch(char *ptr, size_t size, size_t n, void *opaque)
{
    struct watch *w = opaque;
    size_t total = size * n;
    long status = 0;

    curl_easy_getinfo(w->c->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 400) {
        w->refused = true;
        return buffer_append(&w->error, ptr, total) == 0 ? total : 0;
    }
    for (size_t i = 0; i < total; i++) {
        if (ptr[i] != '\n') {
            size_t j = i;
            while (j < total && ptr[j] != '\n')
                j++;
            if (buffer_append(&w->line, ptr + i, j - i) < 0) {
                snprintf(w->c->error, sizeof w->c->error, "virtfleetd at %s sent a watch event longer "
                         "than %u MiB", w->c->socket, MAX_WATCH_LINE >> 20);
                w->bad = true;
                return 0;
            }
            i = j - 1;
            continue;
        }
        int rc = watch_line(w, w->line.data ? w->line.data : "", w->line.len);
        w->line.len = 0;
        if (rc < 0)
            return 0;
    }
    return total;
}

int vf_client_watch(struct vf_client *c, const char *path, long timeout_s, vf_client_watch_fn fn,
                    void *opaque, bool *stopped, struct vf_response *resp)
{
    struct watch w = { .c = c, .fn = fn, .opaque = opaque,
                       .line = { .max = MAX_WATCH_LINE }, .error = { .max = MAX_RESPONSE } };
    struct curl_slist *headers;
    CURLcode rc;
    int ret = 0;

    memset(resp, 0, sizeof *resp);
    *stopped = false;
    c->error[0] = '\0';
    headers = prepare(c, "GET", path, NULL, timeout_s);
    if (!headers) {
        snprintf(c->error, sizeof c->error, "request path too long");
        return -EIO;
    }
    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_watch);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &w);
    rc = curl_easy_perform(c->curl);
    if (w.stopped) {
        *stopped = true;
    } else if (w.bad) {
        ret = -EIO;
    } else if (w.refused || (rc == CURLE_WRITE_ERROR && w.error.overflow)) {
        curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &resp->status);
        ret = take_body(c, &w.error, resp);
    } else if (rc != CURLE_OK) {
        ret = transport_error(c, rc, timeout_s);
    } else if (w.line.len > 0) {
        /* The stream ended without a final newline. */
        if (watch_line(&w, w.line.data, w.line.len) < 0)
            ret = w.stopped ? 0 : -EIO;
        *stopped = w.stopped;
    }
    curl_slist_free_all(headers);
    free(w.line.data);
    free(w.error.data);
    return ret;
}

/* ---- paths ----------------------------------------------------------- */

char *vf_client_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = malloc(strlen(s) * 3 + 1), *o = out;

    if (!out)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

char *vf_client_path(const char *plural, const char *name, const char *selector, bool watch,
                     const char *rv)
{
    char *e_plural = vf_client_escape(plural);
    char *e_name = name ? vf_client_escape(name) : NULL;
    char *e_sel = selector ? vf_client_escape(selector) : NULL;
    char *e_rv = rv ? vf_client_escape(rv) : NULL;
    char *out = NULL;
    size_t len;

    if (!e_plural || (name && !e_name) || (selector && !e_sel) || (rv && !e_rv))
        goto out;
    len = strlen(VF_API_PREFIX) + strlen(e_plural) + (e_name ? strlen(e_name) : 0) +
          (e_sel ? strlen(e_sel) : 0) + (e_rv ? strlen(e_rv) : 0) + 64;
    out = malloc(len);
    if (!out)
        goto out;
    {
        int n = snprintf(out, len, "%s/%s%s%s", VF_API_PREFIX, e_plural, e_name ? "/" : "",
                         e_name ? e_name : "");
        char sep = '?';
        if (e_sel) {
            n += snprintf(out + n, len - (size_t)n, "%clabelSelector=%s", sep, e_sel);
            sep = '&';
        }
        if (watch) {
            n += snprintf(out + n, len - (size_t)n, "%cwatch=1", sep);
            sep = '&';
        }
        if (e_rv)
            snprintf(out + n, len - (size_t)n, "%cresourceVersion=%s", sep, e_rv);
    }
out:
    free(e_plural);
    free(e_name);
    free(e_sel);
    free(e_rv);
    return out;
}

void vf_response_error(const struct vf_response *resp, const char **reason, const char **message,
                       const char **field)
{
    struct json_object *err = NULL, *v;

    *reason = *message = *field = "";
    if (resp->text)
        *message = resp->text;
    if (!resp->body || !json_object_object_get_ex(resp->body, "error", &err) ||
        !json_object_is_type(err, json_type_object))
        return;
    if (json_object_object_get_ex(err, "reason", &v) && json_object_is_type(v, json_type_string))
        *reason = json_object_get_string(v);
    if (json_object_object_get_ex(err, "message", &v) && json_object_is_type(v, json_type_string))
        *message = json_object_get_string(v);
    if (json_object_object_get_ex(err, "field", &v) && json_object_is_type(v, json_type_string))
        *field = json_object_get_string(v);
}
