#include <config.h>
/* http_fixture: a small HTTP(S) server on loopback that misbehaves on demand,
 * for the tests of the image fetchers and of the images module.
 *
 *   http_fixture --root DIR --port-file FILE [--tls-cert PEM --tls-key PEM]
 *                [--token-auth USER:PASS]
 *
 * Binds 127.0.0.1 on an ephemeral port and writes the port (decimal, one
 * line) to FILE once it accepts connections (written to FILE.tmp and renamed,
 * so a test may poll for FILE).  Serves the files under DIR:
 *
 *   /files/NAME                 the file, Content-Length, Range (206) support
 *   /norange/NAME               the file, Range ignored (always 200)
 *   /redirect/N/files/NAME      302 chain of N hops ending at /files/NAME
 *   /offsite/files/NAME         302 to http(s)://localhost:PORT/files/NAME: the
 *                               same server under another host name, i.e.
 *                               another origin
 *   /status/CODE                that status with a short body
 *   /flaky/K/files/NAME         the first K requests for this path get 503
 *   /retryafter/K/SECS/files/NAME  the first K requests for this path get 503
 *                               with `Retry-After: SECS`
 *   /truncate/BYTES/files/NAME  without Range: the full Content-Length, BYTES
 *                               bytes, then the connection is closed; with
 *                               Range: served correctly (so resuming works)
 *   /slow/BPS/files/NAME        at most BPS bytes per second (Range honoured);
 *                               BPS 0: the headers, then not a byte (a stall)
 *   /auth/USER:PASS/files/NAME  basic auth USER:PASS required (401 otherwise)
 *   /chunked/files/NAME         no Content-Length (chunked encoding)
 *   /v2/...                     a read-only container registry over the OCI
 *                               layouts DIR/<repository>/ (index.json with
 *                               org.opencontainers.image.ref.name annotations,
 *                               blobs/sha256/<hex>), behind the bearer-token
 *                               flow: /v2/ answers 401 with
 *                               `WWW-Authenticate: Bearer realm=".../token",
 *                               service="http_fixture",scope="repository:R:pull"`
 *                               until a token from /token is presented
 *   /v2/fault/KIND-N[-norange]/R/...  the registry's repository R, whose
 *                               blobs misbehave: KIND "cut": the first
 *                               request for each blob gets N bytes, then the
 *                               connection is closed; "stall": N bytes, then
 *                               not a byte more; "slow": every request at
 *                               most N bytes per second.  -norange: Range is
 *                               ignored for them (always 200 and the whole blob)
 *   /token                      issues a token; with --token-auth USER:PASS
 *                               only to basic auth USER:PASS, else to anyone
 *
 * Every request is logged to stderr as one line
 *   REQ <method> <path> host=<Host header> auth=<none|basic|bearer|other>
 *       range=<Range header or ->
 * so that tests can check what a client sent where.  SIGTERM or SIGINT stops
 * it (exit 0).  It never reads outside DIR: names with ".." are 404. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <json-c/json.h>
#include <microhttpd.h>

/* libmicrohttpd >= 0.9.71 (configure requires it) returns enum MHD_Result. */
#define MHD_RESULT enum MHD_Result

static const char *root;
static unsigned port;
static bool tls;
static const char *token_auth;       /* USER:PASS for /token, or NULL */
static char token[64];               /* the one token /token hands out */
static atomic_bool stopping;

/* Counters of /flaky/ paths: small and few, a list will do. */
struct flaky {
    struct flaky *next;
    unsigned count;
    char path[];
};
static struct flaky *flakies;
static pthread_mutex_t flaky_lock = PTHREAD_MUTEX_INITIALIZER;

static unsigned flaky_hit(const char *path)
{
    unsigned n;
    pthread_mutex_lock(&flaky_lock);
    struct flaky *f = flakies;
    while (f && strcmp(f->path, path) != 0)
        f = f->next;
    if (!f) {
        f = calloc(1, sizeof *f + strlen(path) + 1);
        if (!f) {
            pthread_mutex_unlock(&flaky_lock);
            return 0;
        }
        strcpy(f->path, path);
        f->next = flakies;
        flakies = f;
    }
    n = ++f->count;
    pthread_mutex_unlock(&flaky_lock);
    return n;
}

static void base64(const char *in, char *out, size_t out_len)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(in), o = 0;
    for (size_t i = 0; i < n && o + 5 < out_len; i += 3) {
        unsigned v = (unsigned char)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned char)in[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)in[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = '\0';
}

static bool basic_auth_ok(struct MHD_Connection *c, const char *userpass)
{
    char want[512] = "Basic ";
    const char *got = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    base64(userpass, want + 6, sizeof want - 6);
    return got && strcmp(got, want) == 0;
}

static MHD_RESULT send_text(struct MHD_Connection *c, unsigned status, const char *text,
                            const char *hdr, const char *value)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
    MHD_RESULT ret;
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain");
    if (hdr)
        MHD_add_response_header(r, hdr, value);
    ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static MHD_RESULT not_found(struct MHD_Connection *c)
{
    return send_text(c, MHD_HTTP_NOT_FOUND, "not found\n", NULL, NULL);
}

/* A body read from a file, possibly slowed down or cut short. */
struct body {
    int fd;
    uint64_t off, left;     /* next byte of the file to send, bytes still to send */
    uint64_t cut;           /* close the connection after this many bytes; UINT64_MAX: never */
    uint64_t sent;
    unsigned bps;           /* 0: as fast as possible */
    bool stall;             /* send nothing at all */
    uint64_t stall_at;      /* ... once this many bytes went; UINT64_MAX: never */
};

static ssize_t body_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct body *b = cls;
    (void)pos;
    if (atomic_load(&stopping))
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (b->left == 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (b->sent >= b->cut)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    size_t n = max;
    if (n > b->left)
        n = (size_t)b->left;
    if (b->cut != UINT64_MAX && n > b->cut - b->sent)
        n = (size_t)(b->cut - b->sent);
    if (b->stall_at != UINT64_MAX && n > b->stall_at - b->sent)
        n = (size_t)(b->stall_at - b->sent);
    if (b->stall || n == 0) {
        struct timespec ts = { 0, 100 * 1000 * 1000 };
        nanosleep(&ts, NULL);
        return 0;   /* nothing yet: MHD asks again */
    }
    if (b->bps) {
        /* A tenth of the rate every 100 ms (all of it every second below 10 B/s). */
        size_t slice = b->bps >= 10 ? b->bps / 10 : b->bps;
        if (n > slice)
            n = slice;
        struct timespec ts = { b->bps >= 10 ? 0 : 1, b->bps >= 10 ? 100 * 1000 * 1000 : 0 };
        nanosleep(&ts, NULL);
        if (atomic_load(&stopping))
            return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    ssize_t got = pread(b->fd, buf, n, (off_t)b->off);
    if (got <= 0)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    b->off += (uint64_t)got;
    b->left -= (uint64_t)got;
    b->sent += (uint64_t)got;
    return got;
}

static void body_free(void *cls)
{
    struct body *b = cls;
    close(b->fd);
    free(b);
}

/* "bytes=START-" or "bytes=START-END"; false when absent or of another shape. */
static bool parse_range(const char *h, uint64_t size, uint64_t *start, uint64_t *end, bool *bad)
{
    char *rest;
    *bad = false;
    if (!h || strncmp(h, "bytes=", 6) != 0)
        return false;
    errno = 0;
    unsigned long long s = strtoull(h + 6, &rest, 10);
    if (errno || rest == h + 6 || *rest != '-')
        return false;
    unsigned long long e = size ? size - 1 : 0;
    if (rest[1] != '\0') {
        char *tail;
        e = strtoull(rest + 1, &tail, 10);
        if (*tail != '\0')
            return false;
        if (e >= size)
            e = size ? size - 1 : 0;
    }
    if (s >= size || e < s) {
        *bad = true;
        return true;
    }
    *start = s;
    *end = e;
    return true;
}

struct serve_opts {
    bool ranges;        /* honour Range */
    bool chunked;       /* no Content-Length */
    uint64_t cut;       /* UINT64_MAX: none */
    unsigned bps;
    bool stall;
    uint64_t stall_at;  /* 0: never (UINT64_MAX in struct body) */
    const char *content_type;
    const char *digest; /* Docker-Content-Digest, or NULL */
};

static bool safe_name(const char *name)
{
    return *name && name[0] != '/' && strstr(name, "..") == NULL;
}

static MHD_RESULT serve_file(struct MHD_Connection *c, const char *rel, const struct serve_opts *o)
{
    char path[4096];
    struct stat st;
    if (!safe_name(rel))
        return not_found(c);
    snprintf(path, sizeof path, "%s/%s", root, rel);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        return not_found(c);
    }
    uint64_t size = (uint64_t)st.st_size, start = 0, end = size ? size - 1 : 0;
    bool bad = false, ranged = false;
    if (o->ranges) {
        const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE);
        ranged = parse_range(h, size, &start, &end, &bad);
    }
    if (bad) {
        char cr[64];
        close(fd);
        snprintf(cr, sizeof cr, "bytes */%" PRIu64, size);
        return send_text(c, MHD_HTTP_RANGE_NOT_SATISFIABLE, "range not satisfiable\n",
                         MHD_HTTP_HEADER_CONTENT_RANGE, cr);
    }
    struct body *b = calloc(1, sizeof *b);
    if (!b) {
        close(fd);
        return MHD_NO;
    }
    b->fd = fd;
    b->off = start;
    b->left = size ? end - start + 1 : 0;
    b->cut = ranged ? UINT64_MAX : o->cut;
    b->bps = o->bps;
    b->stall = o->stall;
    b->stall_at = o->stall_at ? o->stall_at : UINT64_MAX;
    struct MHD_Response *r = MHD_create_response_from_callback(
        o->chunked ? MHD_SIZE_UNKNOWN : b->left, 64 * 1024, body_read, b, body_free);
    if (!r) {
        body_free(b);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            o->content_type ? o->content_type : "application/octet-stream");
    if (o->ranges)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
    if (o->digest)
        MHD_add_response_header(r, "Docker-Content-Digest", o->digest);
    if (ranged) {
        char cr[96];
        snprintf(cr, sizeof cr, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, start, end, size);
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
    }
    MHD_RESULT ret = MHD_queue_response(c, ranged ? MHD_HTTP_PARTIAL_CONTENT : MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

static MHD_RESULT redirect(struct MHD_Connection *c, const char *location)
{
    return send_text(c, MHD_HTTP_FOUND, "redirect\n", MHD_HTTP_HEADER_LOCATION, location);
}

/* Parses "<number>/" at *p, advancing past it. */
static bool take_number(const char **p, unsigned long *out)
{
    char *end;
    errno = 0;
    *out = strtoul(*p, &end, 10);
    if (errno || end == *p || *end != '/')
        return false;
    *p = end + 1;
    return true;
}

/* ---- the registry under /v2/ ---------------------------------------- */

static MHD_RESULT registry_challenge(struct MHD_Connection *c, const char *repo)
{
    char hdr[1024];
    snprintf(hdr, sizeof hdr,
             "Bearer realm=\"%s://127.0.0.1:%u/token\",service=\"http_fixture\",scope=\"repository:%s:pull\"",
             tls ? "https" : "http", port, repo ? repo : "");
    struct MHD_Response *r = MHD_create_response_from_buffer(
        sizeof "{\"errors\":[{\"code\":\"UNAUTHORIZED\"}]}" - 1,
        (void *)"{\"errors\":[{\"code\":\"UNAUTHORIZED\"}]}", MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, hdr);
    MHD_RESULT ret = MHD_queue_response(c, MHD_HTTP_UNAUTHORIZED, r);
    MHD_destroy_response(r);
    return ret;
}

static MHD_RESULT registry_token(struct MHD_Connection *c)
{
    char body[256];
    if (token_auth && !basic_auth_ok(c, token_auth))
        return send_text(c, MHD_HTTP_UNAUTHORIZED, "{\"errors\":[{\"code\":\"UNAUTHORIZED\"}]}",
                         MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Basic realm=\"http_fixture\"");
    const char *service = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "service");
    if (!service || strcmp(service, "http_fixture") != 0)
        return send_text(c, MHD_HTTP_BAD_REQUEST, "service must be http_fixture\n", NULL, NULL);
    snprintf(body, sizeof body, "{\"token\":\"%s\",\"expires_in\":300}", token);
    return send_text(c, MHD_HTTP_OK, body, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
}

/* Finds the descriptor for a tag in DIR/<repo>/index.json; fills digest hex
 * and media type.  false when absent. */
static bool registry_tag(const char *repo, const char *tag, char *hex, size_t hex_len, char *mt,
                         size_t mt_len)
{
    char path[4096];
    bool found = false;
    snprintf(path, sizeof path, "%s/%s/index.json", root, repo);
    struct json_object *idx = json_object_from_file(path), *mans, *d, *v, *ann;
    if (!idx)
        return false;
    if (json_object_object_get_ex(idx, "manifests", &mans) && json_object_is_type(mans, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(mans) && !found; i++) {
            d = json_object_array_get_idx(mans, i);
            if (!json_object_object_get_ex(d, "annotations", &ann) ||
                !json_object_object_get_ex(ann, "org.opencontainers.image.ref.name", &v) ||
                strcmp(json_object_get_string(v), tag) != 0)
                continue;
            if (!json_object_object_get_ex(d, "digest", &v) ||
                strncmp(json_object_get_string(v), "sha256:", 7) != 0)
                continue;
            snprintf(hex, hex_len, "%s", json_object_get_string(v) + 7);
            snprintf(mt, mt_len, "%s",
                     json_object_object_get_ex(d, "mediaType", &v) ? json_object_get_string(v)
                                                                   : "application/vnd.oci.image.manifest.v1+json");
            found = true;
        }
    }
    json_object_put(idx);
    return found;
}

/* The mediaType member of a manifest blob, for its Content-Type. */
static void manifest_media_type(const char *path, char *mt, size_t mt_len)
{
    struct json_object *m = json_object_from_file(path), *v;
    snprintf(mt, mt_len, "%s",
             m && json_object_object_get_ex(m, "mediaType", &v) ? json_object_get_string(v)
                                                               : "application/vnd.oci.image.manifest.v1+json");
    json_object_put(m);
}

static MHD_RESULT registry(struct MHD_Connection *c, const char *url)
{
    char repo[512], want[128], rel[1024], hex[128], mt[256], digest[160];
    const char *rest = url + 4, *kind;
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);

    /* The repository is everything up to /manifests/ or /blobs/. */
    const char *m = strstr(rest, "/manifests/"), *b = strstr(rest, "/blobs/");
    const char *cut = m && (!b || m < b) ? m : b;
    snprintf(repo, sizeof repo, "%.*s", cut ? (int)(cut - rest) : 0, rest);
    /* fault/KIND-N[-norange]/R: R's blobs misbehave (see the top). */
    char fault[32] = "";
    unsigned long long fault_n = 0;
    bool fault_norange = false;
    if (strncmp(repo, "fault/", 6) == 0) {
        char *slash = strchr(repo + 6, '/'), *dash = strchr(repo + 6, '-');
        if (!slash || !dash || dash > slash)
            return not_found(c);
        snprintf(fault, sizeof fault, "%.*s", (int)(dash - repo - 6), repo + 6);
        fault_n = strtoull(dash + 1, NULL, 10);
        fault_norange = slash - dash >= 8 && strncmp(slash - 8, "-norange", 8) == 0;
        memmove(repo, slash + 1, strlen(slash + 1) + 1);
    }
    snprintf(want, sizeof want, "Bearer %s", token);
    if (!auth || strcmp(auth, want) != 0)
        return registry_challenge(c, cut ? repo : NULL);
    if (!cut)
        return send_text(c, MHD_HTTP_OK, "{}", MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (!safe_name(repo))
        return not_found(c);
    kind = cut == m ? "manifests" : "blobs";
    const char *ref = cut + (cut == m ? strlen("/manifests/") : strlen("/blobs/"));
    struct serve_opts o = { .ranges = true, .cut = UINT64_MAX };
    if (strncmp(ref, "sha256:", 7) == 0) {
        snprintf(hex, sizeof hex, "%s", ref + 7);
        if (strspn(hex, "0123456789abcdef") != strlen(hex) || strlen(hex) != 64)
            return not_found(c);
        snprintf(rel, sizeof rel, "%s/%s/blobs/sha256/%s", root, repo, hex);
        manifest_media_type(rel, mt, sizeof mt);
    } else if (strcmp(kind, "manifests") == 0) {
        if (!registry_tag(repo, ref, hex, sizeof hex, mt, sizeof mt))
            return send_text(c, MHD_HTTP_NOT_FOUND,
                             "{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\",\"message\":\"manifest unknown\"}]}",
                             MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    } else {
        return not_found(c);
    }
    snprintf(rel, sizeof rel, "%s/blobs/sha256/%s", repo, hex);
    snprintf(digest, sizeof digest, "sha256:%s", hex);
    if (strcmp(kind, "manifests") == 0)
        o.content_type = mt;
    o.digest = digest;
    if (fault[0] && strcmp(kind, "blobs") == 0 && strcmp(fault, "slow") == 0) {
        o.bps = (unsigned)fault_n;   /* every request, at most N bytes per second */
    } else if (fault[0] && strcmp(kind, "blobs") == 0) {
        o.ranges = !fault_norange;
        if (flaky_hit(url) == 1) {   /* the first request for this blob */
            if (strcmp(fault, "cut") == 0)
                o.cut = fault_n;
            else if (fault_n)
                o.stall_at = fault_n;
            else
                o.stall = true;
        }
    }
    return serve_file(c, rel, &o);
}

/* ---- dispatch --------------------------------------------------------- */

static const char *auth_kind(struct MHD_Connection *c)
{
    const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!a)
        return "none";
    if (strncmp(a, "Basic ", 6) == 0)
        return "basic";
    if (strncmp(a, "Bearer ", 7) == 0)
        return "bearer";
    return "other";
}

static MHD_RESULT route(struct MHD_Connection *c, const char *url)
{
    struct serve_opts o = { .ranges = true, .cut = UINT64_MAX };
    unsigned long n;
    const char *p;
    char loc[2048];

    if (strncmp(url, "/files/", 7) == 0)
        return serve_file(c, url + 7, &o);
    if (strncmp(url, "/norange/", 9) == 0) {
        o.ranges = false;
        return serve_file(c, url + 9, &o);
    }
    if (strncmp(url, "/chunked/files/", 15) == 0) {
        o.chunked = true;
        return serve_file(c, url + 15, &o);
    }
    if (strncmp(url, "/redirect/", 10) == 0) {
        p = url + 10;
        if (!take_number(&p, &n) || strncmp(p, "files/", 6) != 0)
            return not_found(c);
        if (n == 0)
            return serve_file(c, p + 6, &o);
        snprintf(loc, sizeof loc, "/redirect/%lu/%s", n - 1, p);
        return redirect(c, loc);
    }
    if (strncmp(url, "/offsite/files/", 15) == 0) {
        snprintf(loc, sizeof loc, "%s://localhost:%u/files/%s", tls ? "https" : "http", port, url + 15);
        return redirect(c, loc);
    }
    if (strncmp(url, "/status/", 8) == 0) {
        char *end;
        unsigned long code = strtoul(url + 8, &end, 10);
        if (*end || code < 200 || code > 599)
            return not_found(c);
        snprintf(loc, sizeof loc, "status %lu from http_fixture\n", code);
        return send_text(c, (unsigned)code, loc, NULL, NULL);
    }
    if (strncmp(url, "/flaky/", 7) == 0) {
        p = url + 7;
        if (!take_number(&p, &n) || strncmp(p, "files/", 6) != 0)
            return not_found(c);
        if (flaky_hit(url) <= n)
            return send_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "try again\n", NULL, NULL);
        return serve_file(c, p + 6, &o);
    }
    if (strncmp(url, "/retryafter/", 12) == 0) {
        unsigned long secs;
        char ra[32];
        p = url + 12;
        if (!take_number(&p, &n) || !take_number(&p, &secs) || strncmp(p, "files/", 6) != 0)
            return not_found(c);
        if (flaky_hit(url) <= n) {
            snprintf(ra, sizeof ra, "%lu", secs);
            return send_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "come back later\n", "Retry-After", ra);
        }
        return serve_file(c, p + 6, &o);
    }
    if (strncmp(url, "/truncate/", 10) == 0) {
        p = url + 10;
        if (!take_number(&p, &n) || strncmp(p, "files/", 6) != 0)
            return not_found(c);
        o.cut = n;
        return serve_file(c, p + 6, &o);
    }
    if (strncmp(url, "/slow/", 6) == 0) {
        p = url + 6;
        if (!take_number(&p, &n) || strncmp(p, "files/", 6) != 0)
            return not_found(c);
        o.bps = (unsigned)n;
        o.stall = n == 0;
        return serve_file(c, p + 6, &o);
    }
    if (strncmp(url, "/auth/", 6) == 0) {
        char userpass[256];
        p = strchr(url + 6, '/');
        if (!p || strncmp(p, "/files/", 7) != 0 || (size_t)(p - url - 6) >= sizeof userpass)
            return not_found(c);
        snprintf(userpass, sizeof userpass, "%.*s", (int)(p - url - 6), url + 6);
        if (!basic_auth_ok(c, userpass))
            return send_text(c, MHD_HTTP_UNAUTHORIZED, "credentials required\n",
                             MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Basic realm=\"http_fixture\"");
        return serve_file(c, p + 7, &o);
    }
    if (strcmp(url, "/token") == 0)
        return registry_token(c);
    if (strncmp(url, "/v2/", 4) == 0)
        return registry(c, url);
    return not_found(c);
}

static MHD_RESULT on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                             const char *version, const char *upload_data, size_t *upload_size,
                             void **state)
{
    static int first;
    const char *range = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE);
    (void)cls;
    (void)version;
    (void)upload_data;
    if (*state == NULL) {
        /* Headers only so far; answer on the next call. */
        *state = &first;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0;   /* bodies are ignored */
        return MHD_YES;
    }
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    fprintf(stderr, "REQ %s %s host=%s auth=%s range=%s\n", method, url, host ? host : "-", auth_kind(c),
            range ? range : "-");
    fflush(stderr);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return send_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "GET and HEAD only\n", NULL, NULL);
    return route(c, url);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "re");
    char *buf = NULL;
    size_t cap = 0, len = 0;
    if (!f)
        return NULL;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            char *nb = realloc(buf, cap = (cap ? cap * 2 : 8192));
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

static void usage(void)
{
    fprintf(stderr, "usage: http_fixture --root DIR --port-file FILE [--tls-cert PEM --tls-key PEM] "
                    "[--token-auth USER:PASS]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *port_file = NULL, *cert_file = NULL, *key_file = NULL;
    char *cert = NULL, *key = NULL;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        if (strcmp(argv[i], "--root") == 0)
            root = argv[++i];
        else if (strcmp(argv[i], "--port-file") == 0)
            port_file = argv[++i];
        else if (strcmp(argv[i], "--tls-cert") == 0)
            cert_file = argv[++i];
        else if (strcmp(argv[i], "--tls-key") == 0)
            key_file = argv[++i];
        else if (strcmp(argv[i], "--token-auth") == 0)
            token_auth = argv[++i];
        else
            usage();
    }
    if (!root || !port_file || !cert_file != !key_file)
        usage();
    tls = cert_file != NULL;
    if (tls) {
        if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
            fprintf(stderr, "http_fixture: this libmicrohttpd has no TLS support\n");
            return 1;
        }
        cert = slurp(cert_file);
        key = slurp(key_file);
        if (!cert || !key) {
            fprintf(stderr, "http_fixture: cannot read %s or %s\n", cert_file, key_file);
            return 1;
        }
    }
    srandom((unsigned)time(NULL) ^ (unsigned)getpid());
    snprintf(token, sizeof token, "fixture-%08lx%08lx", (unsigned long)random(), (unsigned long)random());

    /* Signals are taken by sigwait below; threads inherit the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = 0 };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (tls)
        flags |= MHD_USE_TLS;
    struct MHD_Daemon *d;
    if (tls)
        d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR, &sa,
                             MHD_OPTION_HTTPS_MEM_CERT, cert, MHD_OPTION_HTTPS_MEM_KEY, key,
                             MHD_OPTION_CONNECTION_TIMEOUT, 120u, MHD_OPTION_END);
    else
        d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR, &sa,
                             MHD_OPTION_CONNECTION_TIMEOUT, 120u, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "http_fixture: cannot start the server on 127.0.0.1\n");
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    port = info ? info->port : 0;
    if (!port) {
        fprintf(stderr, "http_fixture: cannot learn the bound port\n");
        return 1;
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
    FILE *pf = fopen(tmp, "we");
    if (!pf || fprintf(pf, "%u\n", port) < 0 || fclose(pf) != 0 || rename(tmp, port_file) != 0) {
        fprintf(stderr, "http_fixture: cannot write %s: %s\n", port_file, strerror(errno));
        return 1;
    }
    fprintf(stderr, "http_fixture: serving %s on %s://127.0.0.1:%u\n", root, tls ? "https" : "http", port);
    fflush(stderr);

    int sig;
    sigwait(&sigs, &sig);
    atomic_store(&stopping, true);
    MHD_stop_daemon(d);
    while (flakies) {
        struct flaky *next = flakies->next;
        free(flakies);
        flakies = next;
    }
    free(cert);
    free(key);
    return 0;
}
