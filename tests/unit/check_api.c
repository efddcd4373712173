/* The API server against a real stack: the loop on its own thread, a store in a
 * temporary directory, a test kind, and libmicrohttpd on a temporary unix socket,
 * spoken to over real HTTP with libcurl. */
#include <config.h>

#include <check.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <json-c/json.h>

#include "core/api.h"
#include "core/audit.h"
#include "core/kinds.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/objects.h"
#include "core/store.h"

#define BASE "/apis/virtfleet.io/v1alpha2"
#define WIDGETS BASE "/widgets"
#define TEST_HISTORY 40
#define TEST_MAX_BODY (64 * 1024)

/* ---- the stack ----------------------------------------------------------- */

static const char *const widget_colors[] = { "red", "green", "blue", NULL };
static const struct vf_field widget_spec[] = {
    { .name = "size", .type = VF_FIELD_INT, .min = 0, .max = 1000 },
    { .name = "color", .type = VF_FIELD_STRING, .enum_values = widget_colors },
    { .name = NULL },
};
static const char *const widget_columns[] = { "COLOR", "spec.color", "SIZE", "spec.size", NULL };
static const struct vf_kind widget_kind = {
    .kind = "Widget",
    .plural = "widgets",
    .singular = "widget",
    .short_name = "wg",
    .spec = widget_spec,
    .columns = widget_columns,
};

static char tmpdir[64];
static char sock_path[96];
static pthread_t loop_tid;
static struct vf_store *store;
static int setup_rc;

static void *loop_main(void *arg)
{
    vf_loop_run();
    return NULL;
}

static void setup_on_loop(void *arg)
{
    struct vf_store_options so = { .event_history = TEST_HISTORY };
    struct vf_error err = { 0 };
    char path[160];

    snprintf(path, sizeof path, "%s/store.db", tmpdir);
    setup_rc = vf_store_open(path, &so, &store, &err);
    if (setup_rc < 0) {
        fprintf(stderr, "store: %s\n", err.message);
        return;
    }
    vf_objects_set_store(store);
    setup_rc = vf_kinds_register(&widget_kind, NULL, &err);
    if (setup_rc < 0) {
        fprintf(stderr, "kind: %s\n", err.message);
        return;
    }
    setup_rc = vf_audit_init();
}

static void api_up(void)
{
    struct vf_api_options o = {
        .socket_path = sock_path,
        .socket_mode = 0660,
        .socket_gid = (gid_t)-1,
        .max_body = TEST_MAX_BODY,
        .max_connections = 64,
    };
    struct vf_error err = { 0 };
    int r = vf_api_start(&o, &err);

    ck_assert_msg(r == 0, "vf_api_start: %d %s", r, err.message);
}

static void stack_up(void)
{
    vf_log_open(true, VF_LOG_WARN);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/check_api.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    snprintf(sock_path, sizeof sock_path, "%s/api.sock", tmpdir);
    ck_assert_int_eq(vf_loop_init(), 0);
    ck_assert_int_eq(pthread_create(&loop_tid, NULL, loop_main, NULL), 0);
    ck_assert_int_eq(vf_loop_call(setup_on_loop, NULL), 0);
    ck_assert_int_eq(setup_rc, 0);
    api_up();
}

static void close_on_loop(void *arg)
{
    vf_objects_set_store(NULL);
    vf_store_close(store);
    store = NULL;
}

static void noop(void *arg)
{
}

static void stack_down(void)
{
    char cmd[128];

    vf_api_stop();
    /* Let the watch removals the stop posted run before the store goes. */
    vf_loop_call(noop, NULL);
    vf_loop_call(close_on_loop, NULL);
    vf_loop_quit();
    pthread_join(loop_tid, NULL);
    vf_loop_finish();
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", tmpdir);
}

/* ---- HTTP ---------------------------------------------------------------- */

struct resp {
    long status;
    char *body;
    size_t len;
    char allow[128];
    char ctype[128];
    struct json_object *json;
};

static size_t resp_write(char *data, size_t size, size_t n, void *arg)
{
    struct resp *r = arg;
    char *nb = realloc(r->body, r->len + size * n + 1);

    if (!nb)
        return 0;
    r->body = nb;
    memcpy(r->body + r->len, data, size * n);
    r->len += size * n;
    r->body[r->len] = '\0';
    return size * n;
}

static void header_value(const char *line, size_t len, const char *name, char *out, size_t outsz)
{
    size_t nl = strlen(name);

    if (len > nl && !strncasecmp(line, name, nl)) {
        const char *v = line + nl;
        size_t vl = len - nl;
        while (vl && (*v == ' '))
            v++, vl--;
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n'))
            vl--;
        snprintf(out, outsz, "%.*s", (int)vl, v);
    }
}

static size_t resp_header(char *data, size_t size, size_t n, void *arg)
{
    struct resp *r = arg;

    header_value(data, size * n, "Allow:", r->allow, sizeof r->allow);
    header_value(data, size * n, "Content-Type:", r->ctype, sizeof r->ctype);
    return size * n;
}

static void resp_free(struct resp *r)
{
    free(r->body);
    json_object_put(r->json);
    memset(r, 0, sizeof *r);
}

static CURL *curl_for(const char *method, const char *path)
{
    CURL *c = curl_easy_init();
    char url[1024];

    ck_assert_ptr_nonnull(c);
    snprintf(url, sizeof url, "http://localhost%s", path);
    curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, sock_path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    return c;
}

/* One request; the body (if any) is sent with the given Content-Type. */
static long http(const char *method, const char *path, const char *body, size_t blen,
                 const char *ctype, struct resp *r)
{
    CURL *c = curl_for(method, path);
    struct curl_slist *hdrs = NULL;
    char ct[160];
    CURLcode rc;

    memset(r, 0, sizeof *r);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, resp_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, resp_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    if (body) {
        snprintf(ct, sizeof ct, "Content-Type: %s", ctype ? ctype : "application/json");
        hdrs = curl_slist_append(hdrs, ct);
        /* No 100-continue round trip: the tests want the server's answer. */
        hdrs = curl_slist_append(hdrs, "Expect:");
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
    }
    rc = curl_easy_perform(c);
    ck_assert_msg(rc == CURLE_OK, "%s %s: %s", method, path, curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    if (r->body)
        r->json = json_tokener_parse(r->body);
    return r->status;
}

static long http_json(const char *method, const char *path, const char *body, struct resp *r)
{
    return http(method, path, body, body ? strlen(body) : 0, NULL, r);
}

static const char *jstr(struct json_object *o, const char *dotted)
{
    char buf[256], *save = NULL, *tok;
    struct json_object *cur = o;

    snprintf(buf, sizeof buf, "%s", dotted);
    for (tok = strtok_r(buf, ".", &save); tok && cur; tok = strtok_r(NULL, ".", &save)) {
        struct json_object *next = NULL;
        if (!json_object_object_get_ex(cur, tok, &next))
            return NULL;
        cur = next;
    }
    return cur ? json_object_get_string(cur) : NULL;
}

static void assert_error(struct resp *r, long status, const char *reason)
{
    ck_assert_msg(r->status == status, "status %ld, want %ld: %s", r->status, status,
                  r->body ? r->body : "");
    ck_assert_ptr_nonnull(r->json);
    ck_assert_int_eq(atoi(jstr(r->json, "error.code")), (int)status);
    if (reason)
        ck_assert_str_eq(jstr(r->json, "error.reason"), reason);
    ck_assert_ptr_nonnull(jstr(r->json, "error.message"));
    ck_assert_str_eq(r->ctype, "application/json");
}

static void create_widget(const char *name, const char *labels, struct resp *r)
{
    char body[512];

    snprintf(body, sizeof body,
             "{\"apiVersion\":\"virtfleet.io/v1alpha2\",\"kind\":\"Widget\","
             "\"metadata\":{\"name\":\"%s\"%s%s%s},\"spec\":{\"size\":1,\"color\":\"red\"}}",
             name, labels ? ",\"labels\":{" : "", labels ? labels : "", labels ? "}" : "");
    http_json("POST", WIDGETS, body, r);
    ck_assert_msg(r->status == 201, "create %s: %ld %s", name, r->status, r->body);
}

/* The store's revision after a write: watching from 0 would mean "the current
 * objects, then changes", not a replay, so the tests make sure it is not 0. */
static int64_t list_revision(void)
{
    struct resp r;
    int64_t rv;

    create_widget("seed", NULL, &r);
    resp_free(&r);

    ck_assert_int_eq(http_json("GET", WIDGETS, NULL, &r), 200);
    rv = strtoll(jstr(r.json, "metadata.resourceVersion"), NULL, 10);
    resp_free(&r);
    return rv;
}

/* ---- watch client --------------------------------------------------------- */

#define WATCH_MAX_LINES 64

struct watch_client {
    char path[512];
    int want;                   /* stop after this many lines (0: read to the end) */
    int got;
    char *lines[WATCH_MAX_LINES];
    char pending[1 << 16];
    size_t plen;
    long status;
    CURLcode rc;
    double seconds;
    pthread_t tid;
};

static size_t watch_write(char *data, size_t size, size_t n, void *arg)
{
    struct watch_client *w = arg;
    size_t len = size * n;

    if (w->plen + len >= sizeof w->pending)
        return 0;
    memcpy(w->pending + w->plen, data, len);
    w->plen += len;
    for (;;) {
        char *nl = memchr(w->pending, '\n', w->plen);
        size_t ll;
        if (!nl)
            break;
        ll = (size_t)(nl - w->pending);
        if (w->got < WATCH_MAX_LINES) {
            w->lines[w->got] = strndup(w->pending, ll);
            /* Published for watch_ends_on_stop, which polls it from another thread. */
            __atomic_store_n(&w->got, w->got + 1, __ATOMIC_RELEASE);
        }
        memmove(w->pending, nl + 1, w->plen - ll - 1);
        w->plen -= ll + 1;
    }
    /* Returning less than len makes libcurl hang up, as a client that has what it
     * wanted would. */
    return (w->want && w->got >= w->want) ? 0 : len;
}

static void *watch_main(void *arg)
{
    struct watch_client *w = arg;
    CURL *c = curl_for("GET", w->path);
    struct timespec a, b;

    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, watch_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, w);
    clock_gettime(CLOCK_MONOTONIC, &a);
    w->rc = curl_easy_perform(c);
    clock_gettime(CLOCK_MONOTONIC, &b);
    w->seconds = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &w->status);
    curl_easy_cleanup(c);
    return NULL;
}

static struct watch_client *watch_start(const char *path, int want)
{
    struct watch_client *w = calloc(1, sizeof *w);

    ck_assert_ptr_nonnull(w);
    snprintf(w->path, sizeof w->path, "%s", path);
    w->want = want;
    ck_assert_int_eq(pthread_create(&w->tid, NULL, watch_main, w), 0);
    return w;
}

static void watch_join(struct watch_client *w)
{
    pthread_join(w->tid, NULL);
}

static void watch_free(struct watch_client *w)
{
    for (int i = 0; i < w->got; i++)
        free(w->lines[i]);
    free(w);
}

/* Line i is {"type":TYPE,"object":{... "metadata":{"name":NAME}}}. */
static void assert_event(struct watch_client *w, int i, const char *type, const char *name)
{
    struct json_object *o;

    ck_assert_msg(i < w->got, "only %d watch lines, wanted line %d", w->got, i);
    o = json_tokener_parse(w->lines[i]);
    ck_assert_msg(o != NULL, "watch line %d is not JSON: %s", i, w->lines[i]);
    ck_assert_str_eq(jstr(o, "type"), type);
    if (name)
        ck_assert_str_eq(jstr(o, "object.metadata.name"), name);
    json_object_put(o);
}

static int thread_count(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int n = 0;

    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* ---- body decoding (no server) ---------------------------------------------- */

static char *repeat(const char *a, int n, const char *mid, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), lm = strlen(mid);
    char *s = malloc(la * (size_t)n + lm + lb * (size_t)n + 1), *p = s;

    ck_assert_ptr_nonnull(s);
    for (int i = 0; i < n; i++, p += la)
        memcpy(p, a, la);
    memcpy(p, mid, lm);
    p += lm;
    for (int i = 0; i < n; i++, p += lb)
        memcpy(p, b, lb);
    *p = '\0';
    return s;
}

static struct json_object *parse(const char *s, struct vf_error *err)
{
    memset(err, 0, sizeof *err);
    return vf_api_parse_body(s, strlen(s), err);
}

START_TEST(body_accepts_objects)
{
    struct vf_error err;
    struct json_object *o = parse(" {\"a\":[1,2,{\"b\":\"c\"}]}\r\n\t ", &err);

    ck_assert_ptr_nonnull(o);
    ck_assert_str_eq(jstr(o, "a"), "[ 1, 2, { \"b\": \"c\" } ]");
    json_object_put(o);
}
END_TEST

START_TEST(body_rejects_bad_input)
{
    static const struct {
        const char *text, *needle;
    } cases[] = {
        { "", "empty" },
        { " \r\n ", "empty" },
        { "{\"a\":", "middle of a value" },
        { "{\"a\" 1}", "byte 5" },
        { "{} x", "trailing data after the JSON value at byte 3" },
        { "{}{}", "trailing data" },
        { "[1,2]", "must be a JSON object" },
        { "42", "must be a JSON object" },
        { "\"s\"", "must be a JSON object" },
        { "null", "must be a JSON object" },
        { "{'a':1}", "at byte 1: a single quote" },
        { "{\"a\":1,}", "not valid JSON" },
        { "{\"a\":\"\xff\xfe\"}", "not valid JSON" },
        { "{\"a\":NaN}", "at byte 5: a bare word" },
        { "{\"a\":[-Infinity]}", "at byte 7: a bare word" },
        { "{\"a\":1.}", "at byte 6: a malformed number" },
        { "{\"a\":\"x\ty\"}", "at byte 7: a raw control" },
        { "{\"a\":1ee5}", "not valid JSON" },
    };
    struct vf_error err;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct json_object *o = parse(cases[i].text, &err);
        ck_assert_msg(o == NULL, "accepted \"%s\"", cases[i].text);
        ck_assert_int_eq(err.status, 400);
        ck_assert_str_eq(err.reason, "BadRequest");
        ck_assert_msg(strstr(err.message, cases[i].needle), "\"%s\": message \"%s\" lacks \"%s\"",
                      cases[i].text, err.message, cases[i].needle);
    }
}
END_TEST

START_TEST(body_rejects_embedded_nul)
{
    static const char text[] = "{\"a\":1}\0garbage";
    struct vf_error err = { 0 };

    ck_assert_ptr_null(vf_api_parse_body(text, sizeof text - 1, &err));
    ck_assert_int_eq(err.status, 400);
}
END_TEST

START_TEST(body_limits_depth)
{
    struct vf_error err;
    /* The top-level object is one level: 31 arrays inside it make 32. */
    char *ok = repeat("[", 31, "", "]"), *deep = repeat("[", 32, "", "]");
    char *okdoc = malloc(strlen(ok) + 16), *deepdoc = malloc(strlen(deep) + 16);
    struct json_object *o;

    ck_assert_ptr_nonnull(okdoc);
    ck_assert_ptr_nonnull(deepdoc);
    sprintf(okdoc, "{\"a\":%s}", ok);
    sprintf(deepdoc, "{\"a\":%s}", deep);
    o = parse(okdoc, &err);
    ck_assert_msg(o != NULL, "depth 32 refused: %s", err.message);
    json_object_put(o);
    ck_assert_ptr_null(parse(deepdoc, &err));
    ck_assert_msg(strstr(err.message, "nested deeper than 32"), "%s", err.message);
    ck_assert_msg(strstr(err.message, "at byte"), "%s", err.message);
    free(ok);
    free(deep);
    free(okdoc);
    free(deepdoc);
}
END_TEST

START_TEST(body_limits_members)
{
    struct vf_error err;
    char *arr = repeat("1,", 4096, "1", ""), *doc = malloc(strlen(arr) + 32);
    char *keys = malloc(4100 * 16), *p = keys;
    struct json_object *o;

    ck_assert_ptr_nonnull(doc);
    ck_assert_ptr_nonnull(keys);
    sprintf(doc, "{\"spec\":{\"x\":[%s]}}", arr);
    ck_assert_ptr_null(parse(doc, &err));
    ck_assert_msg(strstr(err.message, "4097 elements"), "%s", err.message);
    ck_assert_str_eq(err.field, "spec.x");

    p += sprintf(p, "{");
    for (int i = 0; i < 4096; i++)
        p += sprintf(p, "%s\"k%d\":%d", i ? "," : "", i, i);
    sprintf(p, "}");
    o = parse(keys, &err);
    ck_assert_msg(o != NULL, "4096 members refused: %s", err.message);
    json_object_put(o);
    sprintf(p, ",\"one-more\":1}");
    ck_assert_ptr_null(parse(keys, &err));
    ck_assert_msg(strstr(err.message, "4097 members"), "%s", err.message);
    free(arr);
    free(doc);
    free(keys);
}
END_TEST

/* ---- CRUD ------------------------------------------------------------------- */

START_TEST(crud_roundtrip)
{
    struct resp r;
    char body[512], rv[32], path[256];

    create_widget("alpha", "\"tier\":\"gold\"", &r);
    ck_assert_str_eq(r.ctype, "application/json");
    ck_assert_str_eq(jstr(r.json, "metadata.name"), "alpha");
    ck_assert_ptr_nonnull(jstr(r.json, "metadata.uid"));
    snprintf(rv, sizeof rv, "%s", jstr(r.json, "metadata.resourceVersion"));
    resp_free(&r);

    ck_assert_int_eq(http_json("GET", WIDGETS "/alpha", NULL, &r), 200);
    ck_assert_str_eq(jstr(r.json, "spec.color"), "red");
    resp_free(&r);

    /* The short name and the other API group reach the same objects. */
    ck_assert_int_eq(http_json("GET", "/apis/virtualization.deckhouse.io/v1alpha2/widgets/alpha",
                               NULL, &r), 200);
    resp_free(&r);

    create_widget("beta", NULL, &r);
    resp_free(&r);
    ck_assert_int_eq(http_json("GET", WIDGETS, NULL, &r), 200);
    ck_assert_str_eq(jstr(r.json, "kind"), "WidgetList");
    ck_assert_str_eq(jstr(r.json, "apiVersion"), "virtfleet.io/v1alpha2");
    ck_assert_ptr_nonnull(jstr(r.json, "metadata.resourceVersion"));
    {
        struct json_object *items;
        ck_assert(json_object_object_get_ex(r.json, "items", &items));
        ck_assert_int_eq(json_object_array_length(items), 2);
    }
    resp_free(&r);

    /* Replace with the current resourceVersion, then again with the stale one. */
    snprintf(body, sizeof body,
             "{\"kind\":\"Widget\",\"metadata\":{\"name\":\"alpha\",\"resourceVersion\":\"%s\"},"
             "\"spec\":{\"size\":7,\"color\":\"green\"}}", rv);
    ck_assert_int_eq(http_json("PUT", WIDGETS "/alpha", body, &r), 200);
    ck_assert_str_eq(jstr(r.json, "spec.color"), "green");
    resp_free(&r);
    http_json("PUT", WIDGETS "/alpha", body, &r);
    assert_error(&r, 409, "Conflict");
    resp_free(&r);

    /* Merge patch. */
    http("PATCH", WIDGETS "/alpha", "{\"spec\":{\"color\":\"blue\"}}", 25,
         "application/merge-patch+json", &r);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    ck_assert_str_eq(jstr(r.json, "spec.color"), "blue");
    ck_assert_str_eq(jstr(r.json, "spec.size"), "7");
    resp_free(&r);

    /* Status. */
    ck_assert_int_eq(http_json("PUT", WIDGETS "/alpha/status",
                               "{\"status\":{\"phase\":\"Ready\"}}", &r), 200);
    ck_assert_str_eq(jstr(r.json, "status.phase"), "Ready");
    resp_free(&r);
    ck_assert_int_eq(http_json("GET", WIDGETS "/alpha/status", NULL, &r), 200);
    ck_assert_str_eq(jstr(r.json, "status.phase"), "Ready");
    resp_free(&r);

    /* Delete with a stale precondition, then for real. */
    snprintf(path, sizeof path, WIDGETS "/alpha?resourceVersion=%s", rv);
    http_json("DELETE", path, NULL, &r);
    assert_error(&r, 409, NULL);
    resp_free(&r);
    ck_assert_int_eq(http_json("DELETE", WIDGETS "/alpha", NULL, &r), 200);
    ck_assert_str_eq(jstr(r.json, "metadata.name"), "alpha");
    resp_free(&r);
    http_json("GET", WIDGETS "/alpha", NULL, &r);
    assert_error(&r, 404, "NotFound");
    resp_free(&r);
}
END_TEST

START_TEST(crud_errors)
{
    struct resp r;

    create_widget("dup", NULL, &r);
    resp_free(&r);
    http_json("POST", WIDGETS, "{\"metadata\":{\"name\":\"dup\"},\"spec\":{}}", &r);
    assert_error(&r, 409, "AlreadyExists");
    resp_free(&r);

    http_json("GET", BASE "/gizmos", NULL, &r);
    assert_error(&r, 404, "NotFound");
    ck_assert_msg(strstr(jstr(r.json, "error.message"), "gizmos"), "%s", r.body);
    resp_free(&r);
    http_json("GET", BASE "/gizmos?watch=1", NULL, &r);
    assert_error(&r, 404, "NotFound");
    resp_free(&r);
    http_json("GET", WIDGETS "/nope", NULL, &r);
    assert_error(&r, 404, "NotFound");
    resp_free(&r);
    http_json("GET", "/apis/other.io/v1alpha2/widgets", NULL, &r);
    assert_error(&r, 404, "NotFound");
    ck_assert_msg(strstr(jstr(r.json, "error.message"), "/apis/other.io/v1alpha2/widgets"), "%s",
                  r.body);
    resp_free(&r);
    http_json("GET", WIDGETS "/dup/status/extra", NULL, &r);
    assert_error(&r, 404, "NotFound");
    resp_free(&r);

    http_json("DELETE", WIDGETS, NULL, &r);
    assert_error(&r, 405, "MethodNotAllowed");
    ck_assert_str_eq(r.allow, "GET, POST");
    resp_free(&r);
    http_json("POST", WIDGETS "/dup", "{}", &r);
    assert_error(&r, 405, NULL);
    ck_assert_str_eq(r.allow, "GET, PUT, PATCH, DELETE");
    resp_free(&r);
    http_json("POST", "/version", "{}", &r);
    assert_error(&r, 405, NULL);
    ck_assert_str_eq(r.allow, "GET");
    resp_free(&r);

    /* Schema violations come from the kind registry, with the field named. */
    http_json("POST", WIDGETS, "{\"metadata\":{\"name\":\"w\"},\"spec\":{\"color\":\"pink\"}}", &r);
    ck_assert_msg(r.status == 400 || r.status == 422, "%ld %s", r.status, r.body);
    ck_assert_str_eq(jstr(r.json, "error.field"), "spec.color");
    resp_free(&r);

    /* PUT naming another object than the URL. */
    http_json("PUT", WIDGETS "/dup", "{\"metadata\":{\"name\":\"other\"},\"spec\":{}}", &r);
    assert_error(&r, 400, "BadRequest");
    ck_assert_str_eq(jstr(r.json, "error.field"), "metadata.name");
    resp_free(&r);

    /* PATCH needs the merge-patch media type. */
    http_json("PATCH", WIDGETS "/dup", "{\"spec\":{}}", &r);
    assert_error(&r, 415, NULL);
    resp_free(&r);

    /* Query parameters. */
    http_json("GET", WIDGETS "?watch=1&resourceVersion=abc", NULL, &r);
    assert_error(&r, 400, "BadRequest");
    ck_assert_msg(strstr(jstr(r.json, "error.message"), "resourceVersion"), "%s", r.body);
    resp_free(&r);
    http_json("DELETE", WIDGETS "/dup?resourceVersion=-1", NULL, &r);
    assert_error(&r, 400, "BadRequest");
    resp_free(&r);
    http_json("GET", WIDGETS "?watch=maybe", NULL, &r);
    assert_error(&r, 400, "BadRequest");
    resp_free(&r);
    http_json("GET", WIDGETS "?labelSelector=a%3D%3D%3Db", NULL, &r);
    assert_error(&r, 400, "BadRequest");
    resp_free(&r);
    http_json("GET", WIDGETS "?labelSelector=a,,b", NULL, &r);
    assert_error(&r, 400, "BadRequest");
    resp_free(&r);
}
END_TEST

START_TEST(bodies_are_bounded)
{
    struct resp r;
    char *deep, *big, *doc;

    http_json("POST", WIDGETS, "{\"metadata\":{\"name\":\"x\"", &r);
    assert_error(&r, 400, "BadRequest");
    ck_assert_msg(strstr(jstr(r.json, "error.message"), "byte"), "%s", r.body);
    resp_free(&r);

    http_json("POST", WIDGETS, "{\"metadata\":{\"name\":\"x\"}} trailing", &r);
    assert_error(&r, 400, "BadRequest");
    ck_assert_msg(strstr(jstr(r.json, "error.message"), "trailing data"), "%s", r.body);
    resp_free(&r);

    http_json("POST", WIDGETS, "[{\"metadata\":{\"name\":\"x\"}}]", &r);
    assert_error(&r, 400, "BadRequest");
    resp_free(&r);

    http_json("POST", WIDGETS, NULL, &r);
    /* No body at all: curl sends an empty POST. */
    assert_error(&r, 400, "BadRequest");
    resp_free(&r);

    deep = repeat("{\"a\":", 40, "1", "}");
    http_json("POST", WIDGETS, deep, &r);
    assert_error(&r, 400, "BadRequest");
    ck_assert_msg(strstr(jstr(r.json, "error.message"), "nested deeper"), "%s", r.body);
    resp_free(&r);
    free(deep);

    /* Larger than max_body, announced by Content-Length. */
    big = malloc(TEST_MAX_BODY + 100);
    ck_assert_ptr_nonnull(big);
    memset(big, ' ', TEST_MAX_BODY + 99);
    big[0] = '{';
    big[TEST_MAX_BODY + 98] = '}';
    big[TEST_MAX_BODY + 99] = '\0';
    http_json("POST", WIDGETS, big, &r);
    assert_error(&r, 413, "RequestEntityTooLarge");
    resp_free(&r);

    /* Exactly at the limit is fine as far as size goes. */
    doc = malloc(TEST_MAX_BODY + 1);
    ck_assert_ptr_nonnull(doc);
    memset(doc, ' ', TEST_MAX_BODY);
    memcpy(doc, "{\"metadata\":{\"name\":\"edge\"},\"spec\":{}}", 38);
    doc[TEST_MAX_BODY] = '\0';
    ck_assert_int_eq(http_json("POST", WIDGETS, doc, &r), 201);
    resp_free(&r);
    free(doc);

    /* The server still answers normally afterwards. */
    ck_assert_int_eq(http_json("GET", "/healthz", NULL, &r), 200);
    ck_assert_str_eq(jstr(r.json, "status"), "ok");
    resp_free(&r);
    free(big);
}
END_TEST

struct chunked_src {
    size_t left;
};

static size_t chunked_read(char *buf, size_t size, size_t n, void *arg)
{
    struct chunked_src *s = arg;
    size_t len = size * n;

    if (len > s->left)
        len = s->left;
    memset(buf, ' ', len);
    if (len && s->left == TEST_MAX_BODY * 2)
        buf[0] = '{';
    s->left -= len;
    return len;
}

START_TEST(chunked_upload_too_large)
{
    struct chunked_src src = { .left = TEST_MAX_BODY * 2 };
    struct curl_slist *h = NULL;
    struct resp r = { 0 };
    CURL *c = curl_for("POST", WIDGETS);

    h = curl_slist_append(h, "Transfer-Encoding: chunked");
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, chunked_read);
    curl_easy_setopt(c, CURLOPT_READDATA, &src);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, resp_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, resp_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    ck_assert_int_eq(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    r.json = json_tokener_parse(r.body);
    assert_error(&r, 413, "RequestEntityTooLarge");
    resp_free(&r);
}
END_TEST

/* ---- fixed endpoints -------------------------------------------------------- */

START_TEST(fixed_endpoints)
{
    struct resp r;
    struct json_object *res, *cols;
    bool seen = false;

    ck_assert_int_eq(http_json("GET", "/version", NULL, &r), 200);
    ck_assert_str_eq(jstr(r.json, "version"), PACKAGE_VERSION);
    char abi[16];
    snprintf(abi, sizeof abi, "%d.%d", VF_MODULE_ABI_MAJOR, VF_MODULE_ABI_MINOR);
    ck_assert_str_eq(jstr(r.json, "abi"), abi);
    resp_free(&r);

    ck_assert_int_eq(http_json("GET", BASE, NULL, &r), 200);
    ck_assert(json_object_object_get_ex(r.json, "resources", &res));
    for (size_t i = 0; i < json_object_array_length(res); i++) {
        struct json_object *k = json_object_array_get_idx(res, i);
        if (strcmp(jstr(k, "kind"), "Widget"))
            continue;
        seen = true;
        ck_assert_str_eq(jstr(k, "plural"), "widgets");
        ck_assert_str_eq(jstr(k, "singular"), "widget");
        ck_assert_str_eq(jstr(k, "shortNames"), "[ \"wg\" ]");
        ck_assert(json_object_object_get_ex(k, "columns", &cols));
        ck_assert_int_eq(json_object_array_length(cols), 2);
        ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(cols, 1)),
                         "[ \"SIZE\", \"spec.size\" ]");
    }
    ck_assert(seen);
    resp_free(&r);

    ck_assert_int_eq(http_json("GET", "/apis/virtualization.deckhouse.io/v1alpha2", NULL, &r),
                     200);
    resp_free(&r);

    ck_assert_int_eq(http_json("GET", BASE "/modules", NULL, &r), 200);
    ck_assert(json_object_object_get_ex(r.json, "items", &res));
    ck_assert(json_object_is_type(res, json_type_array));
    resp_free(&r);
}
END_TEST

/* ---- label selectors ---------------------------------------------------------- */

static int list_count(const char *query)
{
    struct resp r;
    struct json_object *items;
    char path[256];
    int n;

    snprintf(path, sizeof path, WIDGETS "?labelSelector=%s", query);
    ck_assert_msg(http_json("GET", path, NULL, &r) == 200, "%s: %s", query, r.body);
    ck_assert(json_object_object_get_ex(r.json, "items", &items));
    n = (int)json_object_array_length(items);
    resp_free(&r);
    return n;
}

START_TEST(label_selectors)
{
    struct resp r;

    create_widget("s1", "\"env\":\"prod\",\"tier\":\"gold\"", &r);
    resp_free(&r);
    create_widget("s2", "\"env\":\"dev\"", &r);
    resp_free(&r);
    create_widget("s3", NULL, &r);
    resp_free(&r);

    ck_assert_int_eq(list_count("env%3Dprod"), 1);
    ck_assert_int_eq(list_count("env%3D%3Dprod"), 1);
    ck_assert_int_eq(list_count("env!%3Dprod"), 2);
    ck_assert_int_eq(list_count("env"), 2);
    ck_assert_int_eq(list_count("!env"), 1);
    ck_assert_int_eq(list_count("env,tier%3Dgold"), 1);
    ck_assert_int_eq(list_count("env%3Ddev,tier"), 0);
    ck_assert_int_eq(list_count(""), 3);
}
END_TEST

/* ---- watches ------------------------------------------------------------------ */

START_TEST(watch_streams_changes_in_order)
{
    struct watch_client *w;
    struct resp r;
    char path[256];
    int64_t rv = list_revision();

    snprintf(path, sizeof path, WIDGETS "?watch=1&resourceVersion=%" PRId64, rv);
    w = watch_start(path, 5);
    create_widget("w1", NULL, &r);
    resp_free(&r);
    create_widget("w2", NULL, &r);
    resp_free(&r);
    http("PATCH", WIDGETS "/w1", "{\"spec\":{\"size\":3}}", 19, "application/merge-patch+json",
         &r);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    ck_assert_int_eq(http_json("DELETE", WIDGETS "/w2", NULL, &r), 200);
    resp_free(&r);
    create_widget("w3", NULL, &r);
    resp_free(&r);
    watch_join(w);
    ck_assert_int_eq(w->status, 200);
    ck_assert_msg(w->got == 5, "%d lines (curl: %s), first: %s", w->got, curl_easy_strerror(w->rc),
                  w->got ? w->lines[0] : "");
    assert_event(w, 0, "ADDED", "w1");
    assert_event(w, 1, "ADDED", "w2");
    assert_event(w, 2, "MODIFIED", "w1");
    assert_event(w, 3, "DELETED", "w2");
    assert_event(w, 4, "ADDED", "w3");
    watch_free(w);
}
END_TEST

START_TEST(watch_replays_and_filters)
{
    struct watch_client *w;
    struct resp r;
    char path[256];
    int64_t rv = list_revision();

    create_widget("r1", "\"app\":\"x\"", &r);
    resp_free(&r);
    create_widget("r2", "\"app\":\"y\"", &r);
    resp_free(&r);
    create_widget("r3", "\"app\":\"x\"", &r);
    resp_free(&r);

    /* From a resourceVersion: the events after it, from the event log. */
    snprintf(path, sizeof path, WIDGETS "?watch=1&resourceVersion=%" PRId64, rv);
    w = watch_start(path, 3);
    watch_join(w);
    ck_assert_int_eq(w->got, 3);
    assert_event(w, 0, "ADDED", "r1");
    assert_event(w, 1, "ADDED", "r2");
    assert_event(w, 2, "ADDED", "r3");
    watch_free(w);

    /* From nothing: the current objects as ADDED, filtered by the selector, and
     * the stream ends by itself after timeoutSeconds. */
    w = watch_start(WIDGETS "?watch=true&labelSelector=app%3Dx&timeoutSeconds=1", 0);
    watch_join(w);
    ck_assert_int_eq(w->rc, CURLE_OK);
    ck_assert_int_eq(w->got, 2);
    assert_event(w, 0, "ADDED", "r1");
    assert_event(w, 1, "ADDED", "r3");
    watch_free(w);
}
END_TEST

START_TEST(watch_too_old_is_gone)
{
    struct resp r;
    char name[32];

    /* The store trims its event log in batches of 128 writes; each create here is
     * two writes (the object and its audit event). */
    for (int i = 0; i < TEST_HISTORY + 140; i++) {
        snprintf(name, sizeof name, "g%d", i);
        create_widget(name, NULL, &r);
        resp_free(&r);
    }
    http_json("GET", WIDGETS "?watch=1&resourceVersion=1", NULL, &r);
    assert_error(&r, 410, NULL);
    resp_free(&r);
}
END_TEST

START_TEST(watch_ends_on_stop)
{
    struct watch_client *w = watch_start(WIDGETS "?watch=1", 0);
    struct resp r;

    /* Wait until the stream is open: a create shows up on it. */
    create_widget("seen", NULL, &r);
    resp_free(&r);
    for (int i = 0; i < 100 && __atomic_load_n(&w->got, __ATOMIC_ACQUIRE) == 0; i++)
        usleep(20000);
    ck_assert_int_eq(__atomic_load_n(&w->got, __ATOMIC_ACQUIRE), 1);
    vf_api_stop();
    watch_join(w);
    ck_assert_msg(w->seconds < 5.0, "watch lasted %.1f s after stop", w->seconds);
    watch_free(w);
    api_up();   /* for the teardown */
}
END_TEST

START_TEST(watch_client_hangup_frees_connection)
{
    struct watch_client *w;
    struct resp r;
    int before = thread_count(), during;

    w = watch_start(WIDGETS "?watch=1", 1);
    create_widget("h1", NULL, &r);
    resp_free(&r);
    watch_join(w);
    ck_assert_int_eq(w->got, 1);
    watch_free(w);
    /* The server's connection thread notices the hang-up within its poll period. */
    during = thread_count();
    for (int i = 0; i < 100 && thread_count() > before; i++)
        usleep(50000);
    ck_assert_msg(thread_count() <= before, "threads: before %d, after hang-up %d, now %d",
                  before, during, thread_count());
    /* And the stream's store watch is gone without harm to later writes. */
    create_widget("h2", NULL, &r);
    resp_free(&r);
}
END_TEST

/* ---- socket and identity ------------------------------------------------------- */

START_TEST(socket_mode_and_stale_socket)
{
    struct stat st;
    struct vf_api_options o = { .socket_path = sock_path, .socket_mode = 0660,
                                .socket_gid = (gid_t)-1 };
    struct vf_error err = { 0 };
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd;
    FILE *f;

    ck_assert_int_eq(stat(sock_path, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
    ck_assert_int_eq(st.st_mode & 07777, 0660);
    ck_assert_int_eq(vf_api_start(&o, &err), -EALREADY);

    /* A socket nobody listens on is stale and replaced. */
    vf_api_stop();
    ck_assert_int_eq(access(sock_path, F_OK), -1);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock_path);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    close(fd);
    ck_assert_int_eq(vf_api_start(&o, &err), 0);
    vf_api_stop();

    /* The group is set when asked (any group will do for root; others can only
     * give the socket to their own group). */
    o.socket_gid = getuid() == 0 ? 1 : getgid();
    ck_assert_int_eq(vf_api_start(&o, &err), 0);
    ck_assert_int_eq(stat(sock_path, &st), 0);
    ck_assert_int_eq(st.st_gid, o.socket_gid);
    vf_api_stop();
    o.socket_gid = (gid_t)-1;

    /* A file that is not a socket is never removed. */
    f = fopen(sock_path, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    ck_assert_int_eq(vf_api_start(&o, &err), -EEXIST);
    ck_assert_msg(strstr(err.message, "not a socket"), "%s", err.message);
    ck_assert_int_eq(access(sock_path, F_OK), 0);
    unlink(sock_path);
    api_up();
}
END_TEST

START_TEST(audit_records_peer_identity)
{
    struct resp r;
    struct json_object *items;
    bool seen_create = false, seen_delete = false;
    char uid[16], pid[16];

    create_widget("audited", NULL, &r);
    resp_free(&r);
    ck_assert_int_eq(http_json("DELETE", WIDGETS "/audited", NULL, &r), 200);
    resp_free(&r);
    snprintf(uid, sizeof uid, "%u", (unsigned)getuid());
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    ck_assert_int_eq(http_json("GET", BASE "/auditevents", NULL, &r), 200);
    ck_assert(json_object_object_get_ex(r.json, "items", &items));
    for (size_t i = 0; i < json_object_array_length(items); i++) {
        struct json_object *e = json_object_array_get_idx(items, i);
        const char *type = jstr(e, "spec.type");
        if (!jstr(e, "spec.details.name") || strcmp(jstr(e, "spec.details.name"), "audited"))
            continue;
        ck_assert_str_eq(jstr(e, "spec.details.kind"), "Widget");
        ck_assert_ptr_nonnull(jstr(e, "spec.details.uid"));
        ck_assert_ptr_nonnull(jstr(e, "spec.details.resourceVersion"));
        ck_assert_str_eq(jstr(e, "spec.actor.uid"), uid);
        ck_assert_str_eq(jstr(e, "spec.actor.pid"), pid);
        seen_create |= !strcmp(type, "object.create");
        seen_delete |= !strcmp(type, "object.delete");
    }
    ck_assert(seen_create);
    ck_assert(seen_delete);
    resp_free(&r);
}
END_TEST

/* ---- concurrency --------------------------------------------------------------- */

#define CLIENTS 8
#define PER_CLIENT 50

struct creator {
    int id;
    int ok;
    int64_t rvs[PER_CLIENT];
    pthread_t tid;
};

static void *creator_main(void *arg)
{
    struct creator *c = arg;
    char body[256];

    for (int i = 0; i < PER_CLIENT; i++) {
        struct resp r;
        snprintf(body, sizeof body, "{\"metadata\":{\"name\":\"c%d-%d\"},\"spec\":{\"size\":%d}}",
                 c->id, i, i);
        if (http_json("POST", WIDGETS, body, &r) == 201) {
            c->rvs[c->ok++] = strtoll(jstr(r.json, "metadata.resourceVersion"), NULL, 10);
        }
        resp_free(&r);
    }
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

START_TEST(concurrent_clients)
{
    struct creator cs[CLIENTS] = { 0 };
    int64_t all[CLIENTS * PER_CLIENT];
    size_t n = 0;

    for (int i = 0; i < CLIENTS; i++) {
        cs[i].id = i;
        ck_assert_int_eq(pthread_create(&cs[i].tid, NULL, creator_main, &cs[i]), 0);
    }
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(cs[i].tid, NULL);
        ck_assert_int_eq(cs[i].ok, PER_CLIENT);
        for (int j = 0; j < cs[i].ok; j++)
            all[n++] = cs[i].rvs[j];
    }
    qsort(all, n, sizeof all[0], cmp_i64);
    for (size_t i = 1; i < n; i++)
        ck_assert_msg(all[i] != all[i - 1], "resourceVersion %" PRId64 " given twice", all[i]);
    ck_assert_int_eq(list_count(""), CLIENTS * PER_CLIENT);
}
END_TEST

/* ---- module routes --------------------------------------------------------------- */

static struct vf_module_ctx route_owner;
static int route_rc;

static int echo_route(void *opaque, const struct vf_request *req, struct json_object **response,
                      struct vf_error *err)
{
    struct json_object *o = json_object_new_object();
    const char *q = req->query(req, "q");

    json_object_object_add(o, "tag", json_object_new_string(opaque));
    json_object_object_add(o, "rest", json_object_new_string(req->path_rest));
    json_object_object_add(o, "q", q ? json_object_new_string(q) : NULL);
    json_object_object_add(o, "uid", json_object_new_int64(req->peer_uid));
    if (req->body)
        json_object_object_add(o, "body", json_object_get((struct json_object *)req->body));
    *response = o;
    return 202;
}

static int fail_route(void *opaque, const struct vf_request *req, struct json_object **response,
                      struct vf_error *err)
{
    return vf_error_set(err, -EINVAL, 422, "Invalid", "spec.x", "x is wrong");
}

static void add_routes(void *arg)
{
    route_rc = vf_api_route_add(&route_owner, "testmod", "GET", "echo", echo_route, "short");
    if (!route_rc)
        route_rc = vf_api_route_add(&route_owner, "testmod", "GET", "/echo/deep", echo_route,
                                    "long");
    if (!route_rc)
        route_rc = vf_api_route_add(&route_owner, "testmod", "POST", "echo", echo_route, "post");
    if (!route_rc)
        route_rc = vf_api_route_add(&route_owner, "testmod", "PUT", "fail", fail_route, NULL);
    if (!route_rc)
        route_rc = vf_api_route_add(&route_owner, "testmod", "GET", "echo", echo_route, "dup") ==
                           -EEXIST
                       ? 0
                       : -1;
}

static void remove_routes(void *arg)
{
    vf_api_routes_remove_owner(&route_owner);
}

START_TEST(module_routes)
{
    struct resp r;
    char uid[16];

    ck_assert_int_eq(vf_loop_call(add_routes, NULL), 0);
    ck_assert_int_eq(route_rc, 0);
    snprintf(uid, sizeof uid, "%u", (unsigned)getuid());

    ck_assert_int_eq(http_json("GET", BASE "/modules/testmod/echo/x?q=1", NULL, &r), 202);
    ck_assert_str_eq(jstr(r.json, "tag"), "short");
    ck_assert_str_eq(jstr(r.json, "rest"), "/x");
    ck_assert_str_eq(jstr(r.json, "q"), "1");
    ck_assert_str_eq(jstr(r.json, "uid"), uid);
    resp_free(&r);
    /* Longest prefix wins. */
    ck_assert_int_eq(http_json("GET", BASE "/modules/testmod/echo/deep/er", NULL, &r), 202);
    ck_assert_str_eq(jstr(r.json, "tag"), "long");
    ck_assert_str_eq(jstr(r.json, "rest"), "/er");
    resp_free(&r);
    /* Prefixes match whole segments only. */
    http_json("GET", BASE "/modules/testmod/echoes", NULL, &r);
    assert_error(&r, 404, "NotFound");
    resp_free(&r);
    ck_assert_int_eq(http_json("POST", BASE "/modules/testmod/echo", "{\"a\":1}", &r), 202);
    ck_assert_str_eq(jstr(r.json, "tag"), "post");
    ck_assert_str_eq(jstr(r.json, "body.a"), "1");
    resp_free(&r);
    http_json("POST", BASE "/modules/testmod/echo", "{\"a\":", &r);
    assert_error(&r, 400, "BadRequest");
    resp_free(&r);
    http_json("DELETE", BASE "/modules/testmod/echo", NULL, &r);
    assert_error(&r, 405, NULL);
    ck_assert_msg(strstr(r.allow, "GET") && strstr(r.allow, "POST"), "Allow: %s", r.allow);
    resp_free(&r);
    http_json("PUT", BASE "/modules/testmod/fail", "{}", &r);
    assert_error(&r, 422, "Invalid");
    ck_assert_str_eq(jstr(r.json, "error.field"), "spec.x");
    resp_free(&r);
    http_json("GET", BASE "/modules/othermod/echo", NULL, &r);
    assert_error(&r, 404, NULL);
    resp_free(&r);

    ck_assert_int_eq(vf_loop_call(remove_routes, NULL), 0);
    http_json("GET", BASE "/modules/testmod/echo", NULL, &r);
    assert_error(&r, 404, NULL);
    resp_free(&r);
}
END_TEST

static Suite *api_suite(void)
{
    Suite *s = suite_create("api");
    TCase *tc;

    tc = tcase_create("body");
    tcase_add_test(tc, body_accepts_objects);
    tcase_add_test(tc, body_rejects_bad_input);
    tcase_add_test(tc, body_rejects_embedded_nul);
    tcase_add_test(tc, body_limits_depth);
    tcase_add_test(tc, body_limits_members);
    suite_add_tcase(s, tc);

    tc = tcase_create("crud");
    tcase_add_checked_fixture(tc, stack_up, stack_down);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, crud_roundtrip);
    tcase_add_test(tc, crud_errors);
    tcase_add_test(tc, fixed_endpoints);
    tcase_add_test(tc, label_selectors);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_add_checked_fixture(tc, stack_up, stack_down);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, bodies_are_bounded);
    tcase_add_test(tc, chunked_upload_too_large);
    suite_add_tcase(s, tc);

    tc = tcase_create("watch");
    tcase_add_checked_fixture(tc, stack_up, stack_down);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, watch_streams_changes_in_order);
    tcase_add_test(tc, watch_replays_and_filters);
    tcase_add_test(tc, watch_too_old_is_gone);
    tcase_add_test(tc, watch_ends_on_stop);
    tcase_add_test(tc, watch_client_hangup_frees_connection);
    suite_add_tcase(s, tc);

    tc = tcase_create("identity");
    tcase_add_checked_fixture(tc, stack_up, stack_down);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, socket_mode_and_stale_socket);
    tcase_add_test(tc, audit_records_peer_identity);
    suite_add_tcase(s, tc);

    tc = tcase_create("concurrency");
    tcase_add_checked_fixture(tc, stack_up, stack_down);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, concurrent_clients);
    suite_add_tcase(s, tc);

    tc = tcase_create("routes");
    tcase_add_checked_fixture(tc, stack_up, stack_down);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, module_routes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(api_suite());
    int failed;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    srunner_set_tap(sr, "-");
    srunner_run_all(sr, CK_SILENT);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
