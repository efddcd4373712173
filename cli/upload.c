#include <config.h>
/* virtfleet upload cvi NAME FILE: send a local image file to the upload URL of
 * a ClusterVirtualImage of type Upload (status.imageUploadURLs.external), with
 * a progress bar on stderr when it is a terminal, then wait until the image is
 * Ready or Failed.  The same as the seeds' `curl URL --progress-bar -T FILE`,
 * without having to copy the URL. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include "commands.h"
#include "render.h"

#define POLL_MS 250
#define BAR_WIDTH 30

static const char *str_at(struct json_object *obj, const char *path)
{
    struct json_object *v = vf_render_lookup(obj, path);
    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* GET the image.  0 and *obj, or an exit status (reported). */
static int get_image(struct vf_cli *cli, const char *name, struct json_object **obj)
{
    struct vf_response r;
    char *path = vf_client_path("clustervirtualimages", name, NULL, false, NULL);
    *obj = NULL;
    if (!path) {
        fprintf(stderr, "error: out of memory\n");
        return VF_EXIT_ERROR;
    }
    int rc = vf_client_request(cli->client, "GET", path, NULL, NULL, &r);
    free(path);
    if (rc < 0) {
        fprintf(stderr, "error: %s\n", vf_client_error(cli->client));
        return rc == -ENOTCONN ? VF_EXIT_CONNECT : VF_EXIT_ERROR;
    }
    if (r.status == 404) {
        fprintf(stderr, "error: clustervirtualimages \"%s\" not found\n", name);
        vf_response_clear(&r);
        return VF_EXIT_ERROR;
    }
    if (r.status >= 400 || !r.body) {
        const char *reason, *message, *field;
        vf_response_error(&r, &reason, &message, &field);
        fprintf(stderr, "error: ClusterVirtualImage \"%s\": %s\n", name,
                *message ? message : "the server's answer is not an object");
        vf_response_clear(&r);
        return VF_EXIT_ERROR;
    }
    *obj = json_object_get(r.body);
    vf_response_clear(&r);
    return VF_EXIT_OK;
}

struct bar {
    bool tty;
    double start;
    int last_pct10;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void human(double v, char *buf, size_t len)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    unsigned u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(buf, len, u ? "%.1f%s" : "%.0f%s", v, units[u]);
}

static int on_progress(void *opaque, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    struct bar *b = opaque;
    (void)dltotal;
    (void)dlnow;
    if (!b->tty || ultotal <= 0)
        return 0;
    int pct10 = (int)(ulnow * 1000 / ultotal);
    if (pct10 == b->last_pct10)
        return 0;
    b->last_pct10 = pct10;
    char bar[BAR_WIDTH + 1], done[32], total[32], rate[32];
    int fill = (int)(ulnow * BAR_WIDTH / ultotal);
    for (int i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < fill ? '#' : '-';
    bar[BAR_WIDTH] = '\0';
    double el = now_s() - b->start;
    human((double)ulnow, done, sizeof done);
    human((double)ultotal, total, sizeof total);
    human(el > 0 ? (double)ulnow / el : 0, rate, sizeof rate);
    fprintf(stderr, "\r[%s] %5.1f%% %s/%s %s/s  ", bar, pct10 / 10.0, done, total, rate);
    return 0;
}

static size_t collect(char *data, size_t size, size_t n, void *opaque)
{
    char *buf = opaque;
    size_t have = strlen(buf), add = size * n;
    if (add > 1023 - have)
        add = 1023 - have;
    memcpy(buf + have, data, add);
    buf[have + add] = '\0';
    return size * n;
}

/* PUT the file to url.  0 on a 2xx answer, else an exit status (reported). */
static int put_file(const char *url, const char *file, FILE *in, curl_off_t size)
{
    CURL *c = curl_easy_init();
    char answer[1024] = "", curl_err[CURL_ERROR_SIZE] = "";
    struct bar b = {.tty = isatty(STDERR_FILENO), .start = now_s(), .last_pct10 = -1};
    long code = 0;
    if (!c) {
        fprintf(stderr, "error: cannot initialise libcurl\n");
        return VF_EXIT_ERROR;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_READDATA, in);
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, size);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &b);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, (void *)answer);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_err);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    CURLcode rc = curl_easy_perform(c);
    if (b.tty)
        fputc('\n', stderr);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    answer[strcspn(answer, "\n")] = '\0';
    if (code >= 400) {
        fprintf(stderr, "error: the upload of %s was refused (HTTP %ld): %s\n", file, code, answer);
        return VF_EXIT_ERROR;
    }
    if (rc != CURLE_OK) {
        fprintf(stderr, "error: uploading %s to %s failed: %s\n", file, url,
                curl_err[0] ? curl_err : curl_easy_strerror(rc));
        return VF_EXIT_ERROR;
    }
    return VF_EXIT_OK;
}

int vf_cmd_upload(struct vf_cli *cli, int argc, char **args)
{
    if (argc != 3) {
        fprintf(stderr, "error: usage: virtfleet upload cvi NAME FILE\n");
        return VF_EXIT_USAGE;
    }
    if (strcasecmp(args[0], "cvi") && strcasecmp(args[0], "clustervirtualimage") &&
        strcasecmp(args[0], "clustervirtualimages")) {
        fprintf(stderr, "error: only ClusterVirtualImages (cvi) take uploads, not \"%s\"\n",
                args[0]);
        return VF_EXIT_USAGE;
    }
    const char *name = args[1], *file = args[2];
    FILE *in = fopen(file, "rb");
    struct stat st;
    if (!in || fstat(fileno(in), &st) < 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "error: %s: %s\n", file, in ? "not a regular file" : strerror(errno));
        if (in)
            fclose(in);
        return VF_EXIT_ERROR;
    }

    /* A just-created image gets its URL from the controller a moment later. */
    struct json_object *obj = NULL;
    const char *url = NULL, *phase = NULL;
    double until = now_s() + (cli->timeout ? (double)cli->timeout : 30.0);
    int status;
    for (;;) {
        json_object_put(obj);
        if ((status = get_image(cli, name, &obj)) != VF_EXIT_OK)
            goto out;
        const char *type = str_at(obj, "spec.dataSource.type");
        phase = str_at(obj, "status.phase");
        url = str_at(obj, "status.imageUploadURLs.external");
        if (type && strcmp(type, "Upload")) {
            fprintf(stderr, "error: ClusterVirtualImage \"%s\" has dataSource type %s, not Upload\n",
                    name, type);
            status = VF_EXIT_ERROR;
            goto out;
        }
        if (url && phase && !strcmp(phase, "WaitForUserUpload"))
            break;
        if (phase && strcmp(phase, "Pending") && strcmp(phase, "WaitForUserUpload")) {
            fprintf(stderr, "error: ClusterVirtualImage \"%s\" is %s and takes no upload\n", name,
                    phase);
            status = VF_EXIT_ERROR;
            goto out;
        }
        if (now_s() > until) {
            fprintf(stderr, "error: ClusterVirtualImage \"%s\" has no upload URL yet; is the "
                    "images module running?\n", name);
            status = VF_EXIT_ERROR;
            goto out;
        }
        sleep_ms(POLL_MS);
    }
    if ((status = put_file(url, file, in, (curl_off_t)st.st_size)) != VF_EXIT_OK)
        goto out;

    /* The daemon checks and stores the file: wait for the verdict. */
    for (;;) {
        json_object_put(obj);
        if ((status = get_image(cli, name, &obj)) != VF_EXIT_OK)
            goto out;
        phase = str_at(obj, "status.phase");
        if (phase && (!strcmp(phase, "Ready") || !strcmp(phase, "Failed")))
            break;
        sleep_ms(POLL_MS);
    }
    if (!strcmp(phase, "Ready")) {
        printf("clustervirtualimage/%s Ready (%s, %s stored)\n", name,
               str_at(obj, "status.format") ? str_at(obj, "status.format") : "?",
               str_at(obj, "status.size.stored") ? str_at(obj, "status.size.stored") : "?");
        status = VF_EXIT_OK;
    } else {
        struct json_object *conds = vf_render_lookup(obj, "status.conditions");
        const char *reason = "", *message = "";
        for (size_t i = 0; conds && json_object_is_type(conds, json_type_array) &&
                           i < json_object_array_length(conds); i++) {
            struct json_object *c = json_object_array_get_idx(conds, i);
            if (str_at(c, "type") && !strcmp(str_at(c, "type"), "Ready")) {
                reason = str_at(c, "reason") ? str_at(c, "reason") : "";
                message = str_at(c, "message") ? str_at(c, "message") : "";
            }
        }
        fprintf(stderr, "error: ClusterVirtualImage \"%s\" Failed: %s: %s\n", name, reason,
                message);
        status = VF_EXIT_ERROR;
    }
out:
    json_object_put(obj);
    fclose(in);
    return status;
}
