/* apibench: load for virtfleetd's API over its unix socket, one figure per line.
 *   apibench SOCKET create N          durable creates per second (one connection)
 *   apibench SOCKET list ROUNDS       latency of GET of the whole VirtualMachine list
 *   apibench SOCKET watch WATCHERS N  watch fan-out: N creates seen by every watcher
 */
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BASE "http://localhost/apis/virtfleet.io/v1alpha2/virtualmachines"

static const char *sock;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t discard(char *p, size_t size, size_t n, void *opaque)
{
    size_t *bytes = opaque;
    if (bytes)
        *bytes += size * n;
    return size * n;
}

static CURL *handle(void)
{
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, sock);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, NULL);
    return c;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int bench_create(int n, const char *prefix)
{
    CURL *c = handle();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_URL, BASE);
    char body[512];
    double t0 = now();
    for (int i = 0; i < n; i++) {
        snprintf(body, sizeof body,
                 "{\"kind\":\"VirtualMachine\",\"metadata\":{\"name\":\"%s-%d\"},"
                 "\"spec\":{\"cpu\":{\"cores\":1},\"memory\":{\"size\":\"1Gi\"}}}", prefix, i);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        long code = 0;
        if (curl_easy_perform(c) != CURLE_OK ||
            (curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code), code != 201)) {
            fprintf(stderr, "create %d failed (HTTP %ld)\n", i, code);
            return 1;
        }
    }
    double dt = now() - t0;
    printf("creates: %d in %.2f s = %.0f durable creates/s\n", n, dt, n / dt);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return 0;
}

static int bench_list(int rounds)
{
    CURL *c = handle();
    size_t bytes = 0;
    curl_easy_setopt(c, CURLOPT_URL, BASE);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &bytes);
    double *lat = calloc((size_t)rounds, sizeof *lat);
    for (int i = 0; i < rounds; i++) {
        double t0 = now();
        if (curl_easy_perform(c) != CURLE_OK)
            return 1;
        lat[i] = now() - t0;
    }
    qsort(lat, (size_t)rounds, sizeof *lat, cmp_double);
    printf("list: %zu bytes per list; latency p50 %.1f ms, p90 %.1f ms, max %.1f ms\n",
           bytes / (size_t)rounds, lat[rounds / 2] * 1e3, lat[rounds * 9 / 10] * 1e3,
           lat[rounds - 1] * 1e3);
    free(lat);
    curl_easy_cleanup(c);
    return 0;
}

struct watcher {
    pthread_t thread;
    int want;          /* ADDED events to see after the start mark */
    int seen;
    double done_at;
    char tail[256];
    size_t tail_len;
};

static size_t watch_data(char *p, size_t size, size_t n, void *opaque)
{
    struct watcher *w = opaque;
    size_t len = size * n;
    /* Count lines naming a benchmark object; lines may straddle chunks. */
    for (size_t i = 0; i < len; i++) {
        if (w->tail_len < sizeof w->tail - 1)
            w->tail[w->tail_len++] = p[i];
        if (p[i] == '\n') {
            w->tail[w->tail_len] = '\0';
            if (strstr(w->tail, "\"ADDED\"") && strstr(w->tail, "fan-"))
                w->seen++;
            w->tail_len = 0;
        }
    }
    if (w->seen >= w->want) {
        w->done_at = now();
        return 0;   /* enough: end the transfer */
    }
    return len;
}

static void *watch_main(void *opaque)
{
    struct watcher *w = opaque;
    CURL *c = handle();
    char url[256];
    snprintf(url, sizeof url, "%s?watch=1&resourceVersion=%s", BASE, getenv("FROM_RV"));
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, watch_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, w);
    curl_easy_perform(c);
    curl_easy_cleanup(c);
    return NULL;
}

static int bench_watch(int watchers, int n)
{
    struct watcher *w = calloc((size_t)watchers, sizeof *w);
    for (int i = 0; i < watchers; i++) {
        w[i].want = n;
        pthread_create(&w[i].thread, NULL, watch_main, &w[i]);
    }
    struct timespec settle = {0, 300 * 1000 * 1000};
    nanosleep(&settle, NULL);
    double t0 = now();
    if (bench_create(n, "fan") != 0)
        return 1;
    double last = 0;
    int complete = 0;
    for (int i = 0; i < watchers; i++) {
        pthread_join(w[i].thread, NULL);
        if (w[i].seen >= n) {
            complete++;
            if (w[i].done_at > last)
                last = w[i].done_at;
        }
    }
    printf("watch fan-out: %d/%d watchers saw all %d creates; last event delivered %.1f ms "
           "after the first create (%.0f events/s delivered)\n", complete, watchers, n,
           (last - t0) * 1e3, (double)watchers * n / (last - t0));
    free(w);
    return complete == watchers ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: apibench SOCKET create N | list ROUNDS | watch WATCHERS N\n");
        return 2;
    }
    sock = argv[1];
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = 2;
    if (strcmp(argv[2], "create") == 0)
        rc = bench_create(atoi(argv[3]), argc > 4 ? argv[4] : "bench");
    else if (strcmp(argv[2], "list") == 0)
        rc = bench_list(atoi(argv[3]));
    else if (strcmp(argv[2], "watch") == 0 && argc > 4)
        rc = bench_watch(atoi(argv[3]), atoi(argv[4]));
    curl_global_cleanup();
    return rc;
}
