#include <config.h>
/* The HTTP(S) fetcher (modules/images/import) against tests/lib/http_fixture
 * on loopback: checksums, errors with their status and URL, redirects and
 * where credentials go, retries (and the server's Retry-After), resume,
 * stalls, size limits, cancellation and TLS with a CA made at test time. */
#include <ctype.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "testlib.h"
#include "fetchtest.h"
#include "modules/images/import/fetch_internal.h"

#define SMALL 100000
#define BIG (3u << 20)

static char *dir;                /* workdir; samples under dir/root */
static struct fixture fx, tls_fx;
static char small_sha[65], small_md5[33], big_sha[65];
static char *ca_pem, *other_pem;

static const char *sample(const char *name)
{
    return ring_fmt("%s/root/%s", dir, name);
}

static const char *url(const char *path)
{
    return ring_fmt("http://127.0.0.1:%u%s", fx.port, path);
}

/* Fast retries and a short stall window keep the suite quick. */
static struct vf_fetch_common common(void)
{
    return (struct vf_fetch_common){ .retry_backoff_ms = 50, .max_retries = 3, .stall_timeout_s = 30 };
}

static int fetch(const char *u, const char *checksum, const struct vf_fetch_common *c, int fd,
                 struct vf_fetch_result *res, struct vf_error *err)
{
    struct vf_fetch_http req = { .url = u, .checksum = checksum };
    memset(err, 0, sizeof *err);
    return vf_fetch_http_run(&req, c, fd, res, err);
}

START_TEST(sha256_and_md5_match)
{
    struct vf_fetch_common c = common();
    struct vf_fetch_result res;
    struct vf_error err;
    char sum[80];
    int fd = scratch_fd(dir);
    snprintf(sum, sizeof sum, "sha256:%s", small_sha);
    ck_assert_msg(fetch(url("/files/small.bin"), sum, &c, fd, &res, &err) == 0, "%s", err.message);
    ck_assert_uint_eq(res.bytes, SMALL);
    ck_assert_str_eq(res.sha256, small_sha);
    ck_assert_str_eq(res.md5, small_md5);
    ck_assert(!res.resumed);
    ck_assert_int_eq(res.retries, 0);
    ck_assert(fd_equals_file(fd, sample("small.bin")));
    ck_assert_str_eq(res.effective_url, url("/files/small.bin"));

    /* md5, upper-case hex accepted. */
    close(fd);
    fd = scratch_fd(dir);
    snprintf(sum, sizeof sum, "MD5:%s", small_md5);
    for (char *p = sum + 4; *p; p++)
        *p = (char)toupper((unsigned char)*p);
    ck_assert_msg(fetch(url("/files/small.bin"), sum, &c, fd, &res, &err) == 0, "%s", err.message);
    ck_assert_str_eq(res.md5, small_md5);
    close(fd);
}
END_TEST

START_TEST(wrong_checksum)
{
    struct vf_fetch_common c = common();
    struct vf_fetch_result res;
    struct vf_error err;
    char sum[80];
    int fd = scratch_fd(dir);
    snprintf(sum, sizeof sum, "sha256:%s", big_sha);
    ck_assert_int_lt(fetch(url("/files/small.bin"), sum, &c, fd, &res, &err), 0);
    ck_assert_str_eq(err.reason, "ChecksumMismatch");
    ck_assert_msg(strstr(err.message, small_sha) && strstr(err.message, big_sha), "%s", err.message);
    close(fd);

    /* A malformed checksum is refused before any download. */
    fd = scratch_fd(dir);
    ck_assert_int_eq(fetch(url("/files/small.bin"), "sha1:abc", &c, fd, &res, &err), -EINVAL);
    ck_assert_str_eq(err.reason, "Invalid");
    ck_assert_str_eq(err.field, "spec.dataSource.http.checksum");
    ck_assert_int_eq(fetch(url("/files/badsum.bin"), "sha256:12zz", &c, fd, &res, &err), -EINVAL);
    ck_assert(!fixture_logged(&fx, "/files/badsum.bin"));
    close(fd);
}
END_TEST

START_TEST(not_found_names_status_and_url)
{
    struct vf_fetch_common c = common();
    struct vf_fetch_result res;
    struct vf_error err;
    int fd = scratch_fd(dir);
    ck_assert_int_lt(fetch(url("/files/missing.bin"), NULL, &c, fd, &res, &err), 0);
    ck_assert_str_eq(err.reason, "FetchFailed");
    ck_assert_msg(strstr(err.message, "HTTP 404 Not Found") && strstr(err.message, url("/files/missing.bin")),
                  "%s", err.message);
    ck_assert_uint_eq(fd_size(fd), 0);
    ck_assert_int_eq(res.retries, 0);   /* a 404 is not retried */

    /* 500 is retried, then reported with the retries. */
    ck_assert_int_lt(fetch(url("/status/500"), NULL, &c, fd, &res, &err), 0);
    ck_assert_msg(strstr(err.message, "HTTP 500") && strstr(err.message, "after 3 retries"), "%s", err.message);
    ck_assert_int_eq(res.retries, 3);
    close(fd);
}
END_TEST

START_TEST(redirects_bounded)
{
    struct vf_fetch_common c = common();
    struct vf_fetch_http req = { .url = url("/redirect/3/files/small.bin"), .max_redirects = 3 };
    struct vf_fetch_result res;
    struct vf_error err = { 0 };
    int fd = scratch_fd(dir);
    ck_assert_msg(vf_fetch_http_run(&req, &c, fd, &res, &err) == 0, "%s", err.message);
    ck_assert_str_eq(res.effective_url, url("/redirect/0/files/small.bin"));   /* hop 3 of 3 */
    ck_assert_str_eq(res.sha256, small_sha);
    close(fd);

    fd = scratch_fd(dir);
    req.url = url("/redirect/4/files/small.bin");
    ck_assert_int_lt(vf_fetch_http_run(&req, &c, fd, &res, &err), 0);
    ck_assert_msg(strstr(err.message, "more than 3 redirects"), "%s", err.message);
    ck_assert_uint_eq(fd_size(fd), 0);
    close(fd);
}
END_TEST

START_TEST(credentials_stay_on_origin)
{
    struct vf_fetch_common c = common();
    struct vf_fetch_http req = { .url = url("/auth/alice:s3cret/files/cred.bin"), .username = "alice",
                                 .password = "s3cret" };
    struct vf_fetch_result res;
    struct vf_error err = { 0 };
    char line[256];
    int fd = scratch_fd(dir);

    ck_assert_msg(vf_fetch_http_run(&req, &c, fd, &res, &err) == 0, "%s", err.message);
    ck_assert(fd_equals_file(fd, sample("cred.bin")));
    close(fd);
    /* Wrong password: the 401 is the answer. */
    fd = scratch_fd(dir);
    req.password = "wrong";
    ck_assert_int_lt(vf_fetch_http_run(&req, &c, fd, &res, &err), 0);
    ck_assert_msg(strstr(err.message, "HTTP 401"), "%s", err.message);
    close(fd);

    /* Same origin: credentials follow the redirect ... */
    fd = scratch_fd(dir);
    req.url = url("/redirect/1/files/cred.bin");
    req.password = "s3cret";
    ck_assert_msg(vf_fetch_http_run(&req, &c, fd, &res, &err) == 0, "%s", err.message);
    snprintf(line, sizeof line, "REQ GET /redirect/0/files/cred.bin host=127.0.0.1:%u auth=basic", fx.port);
    ck_assert_msg(fixture_logged(&fx, line), "no line \"%s\" in %s", line, fx.log);
    close(fd);
    /* ... but not to localhost, another origin. */
    fd = scratch_fd(dir);
    req.url = url("/offsite/files/cred.bin");
    ck_assert_msg(vf_fetch_http_run(&req, &c, fd, &res, &err) == 0, "%s", err.message);
    ck_assert(fd_equals_file(fd, sample("cred.bin")));
    snprintf(line, sizeof line, "REQ GET /offsite/files/cred.bin host=127.0.0.1:%u auth=basic", fx.port);
    ck_assert_msg(fixture_logged(&fx, line), "no line \"%s\" in %s", line, fx.log);
    snprintf(line, sizeof line, "REQ GET /files/cred.bin host=localhost:%u auth=none", fx.port);
    ck_assert_msg(fixture_logged(&fx, line), "no line \"%s\" in %s", line, fx.log);
    snprintf(line, sizeof line, "REQ GET /files/cred.bin host=localhost:%u auth=basic", fx.port);
    ck_assert_msg(!fixture_logged(&fx, line), "credentials went offsite: %s", line);
    snprintf(line, sizeof line, "http://localhost:%u/files/cred.bin", fx.port);
    ck_assert_str_eq(res.effective_url, line);
    close(fd);
}
END_TEST

START_TEST(flaky_recovered)
{
    struct vf_fetch_common c = common();
    struct vf_fetch_result res;
    struct vf_error err;
    int fd = scratch_fd(dir);
    ck_assert_msg(fetch(url("/flaky/2/files/small.bin"), NULL, &c, fd, &res, &err) == 0, "%s", err.message);
    ck_assert_int_eq(res.retries, 2);
    ck_assert_str_eq(res.sha256, small_sha);
    close(fd);

    /* More failures than retries. */
    fd = scratch_fd(dir);
    c.max_retries = 2;
    ck_assert_int_lt(fetch(url("/flaky/5/files/small.bin"), NULL, &c, fd, &res, &err), 0);
    ck_assert_msg(strstr(err.message, "HTTP 503"), "%s", err.message);
    ck_assert_int_eq(res.retries, 2);
    close(fd);

    /* Nothing listening: a connect failure, retried then reported. */
    fd = scratch_fd(dir);
    c.max_retries = 1;
    ck_assert_int_lt(fetch("http://127.0.0.1:1/x", NULL, &c, fd, &res, &err), 0);
    ck_assert_msg(strstr(err.message, "127.0.0.1:1") && strstr(err.message, "after 1 retries"), "%s",
                  err.message);
    close(fd);
}
END_TEST

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

START_TEST(retry_after_honoured)
{
    struct vf_fetch_common c = common();   /* a 50 ms back-off */
    struct vf_fetch_result res;
    struct vf_error err;
    int fd = scratch_fd(dir);
    double t0 = seconds();
    ck_assert_msg(fetch(url("/retryafter/1/2/files/small.bin"), NULL, &c, fd, &res, &err) == 0, "%s",
                  err.message);
    double took = seconds() - t0;
    ck_assert_int_eq(res.retries, 1);
    ck_assert_str_eq(res.sha256, small_sha);
    ck_assert_msg(took >= 1.9, "retried after %.2f s: Retry-After: 2 was not waited for", took);
    close(fd);

    /* Retry-After: 0 is "now": not even our own (here long) back-off. */
    fd = scratch_fd(dir);
    c.retry_backoff_ms = 20000;
    t0 = seconds();
    ck_assert_msg(fetch(url("/retryafter/2/0/files/small.bin"), NULL, &c, fd, &res, &err) == 0, "%s",
                  err.message);
    took = seconds() - t0;
    ck_assert_int_eq(res.retries, 2);
    ck_assert_msg(took < 15, "took %.2f s: the back-off was used instead of Retry-After: 0", took);
    close(fd);
}
END_TEST

START_TEST(retry_after_parse)
{
    ck_assert_int_eq(vf_retry_after_parse("5"), 5);
    ck_assert_int_eq(vf_retry_after_parse(" 7 "), 7);
    ck_assert_int_eq(vf_retry_after_parse("0"), 0);
    ck_assert_int_eq(vf_retry_after_parse("60"), 60);
    /* Capped: a server cannot park an import for an hour. */
    ck_assert_int_eq(vf_retry_after_parse("61"), VF_RETRY_AFTER_MAX_S);
    ck_assert_int_eq(vf_retry_after_parse("3600"), VF_RETRY_AFTER_MAX_S);
    ck_assert_int_eq(vf_retry_after_parse("99999999999999999999999999"), VF_RETRY_AFTER_MAX_S);
    /* The HTTP-date form and junk: the usual back-off applies. */
    ck_assert_int_eq(vf_retry_after_parse("Wed, 21 Oct 2015 07:28:00 GMT"), -1);
    ck_assert_int_eq(vf_retry_after_parse(""), -1);
    ck_assert_int_eq(vf_retry_after_parse(NULL), -1);
    ck_assert_int_eq(vf_retry_after_parse("-1"), -1);
    ck_assert_int_eq(vf_retry_after_parse("12abc"), -1);
    ck_assert_int_eq(vf_retry_after_parse("1.5"), -1);
}
END_TEST

START_TEST(truncated_then_resumed)
{
    struct vf_fetch_common c = common();
    struct vf_fetch_result res;
    struct vf_error err;
    char sum[80];
    int fd = scratch_fd(dir);
    snprintf(sum, sizeof sum, "sha256:%s", big_sha);
    ck_assert_msg(fetch(url("/truncate/400000/files/big.bin"), sum, &c, fd, &res, &err) == 0, "%s", err.message);
    ck_assert(res.resumed);
    ck_assert_int_ge(res.retries, 1);
    ck_assert_uint_eq(res.bytes, BIG);
    ck_assert(fd_equals_file(fd, sample("big.bin")));
    char line[256];
    snprintf(line, sizeof line, "REQ GET /truncate/400000/files/big.bin host=127.0.0.1:%u auth=none range=-",
             fx.port);
    ck_assert_msg(fixture_logged(&fx, line), "no line \"%s\" in %s", line, fx.log);
    snprintf(line, sizeof line,
             "REQ GET /truncate/400000/files/big.bin host=127.0.0.1:%u auth=none range=bytes=400000-", fx.port);
    ck_assert_msg(fixture_logged(&fx, line), "no line \"%s\" in %s", line, fx.log);
    close(fd);
}
END_TEST

/* Copies the first n bytes of a sample into a fresh fd (an earlier attempt). */
static int partial(const char *name, size_t n, bool garbage)
{
    char buf[4096];
    int fd = scratch_fd(dir), in = open(sample(name), O_RDONLY | O_CLOEXEC);
    ck_assert_int_ge(in, 0);
    for (size_t off = 0; off < n;) {
        size_t want = n - off < sizeof buf ? n - off : sizeof buf;
        ck_assert_int_eq(read(in, buf, want), (ssize_t)want);
        if (garbage)
            memset(buf, 0xee, want);
        ck_assert_int_eq(write(fd, buf, want), (ssize_t)want);
        off += want;
    }
    close(in);
    return fd;
}

START_TEST(resume_existing_prefix)
{
    struct vf_fetch_common c = common();
    struct vf_fetch_result res;
    struct vf_error err;
    int fd = partial("big.bin", 1000000, false);
    ck_assert_msg(fetch(url("/files/big.bin"), NULL, &c, fd, &res, &err) == 0, "%s", err.message);
    ck_assert(res.resumed);
    ck_assert_int_eq(res.retries, 0);
    ck_assert_str_eq(res.sha256, big_sha);   /* the prefix was hashed too */
    ck_assert(fd_equals_file(fd, sample("big.bin")));
    char line[256];
    snprintf(line, sizeof line, "REQ GET /files/big.bin host=127.0.0.1:%u auth=none range=bytes=1000000-", fx.port);
    ck_assert_msg(fixture_logged(&fx, line), "no line \"%s\" in %s", line, fx.log);
    close(fd);
}
END_TEST

START_TEST(norange_starts_over)
{
    struct vf_fetch_common c = common();
    struct vf_fetch_result res;
    struct vf_error err;
    /* A wrong prefix proves that what was there is dropped, not kept. */
    int fd = partial("small.bin", 50000, true);
    ck_assert_msg(fetch(url("/norange/small.bin"), NULL, &c, fd, &res, &err) == 0, "%s", err.message);
    ck_assert(!res.resumed);
    ck_assert_uint_eq(res.bytes, SMALL);
    ck_assert_str_eq(res.sha256, small_sha);
    ck_assert(fd_equals_file(fd, sample("small.bin")));
    close(fd);

    /* A file longer than the resource: the server refuses the range (416)
     * and the whole is fetched again. */
    fd = partial("big.bin", SMALL + 5000, true);
    ck_assert_msg(fetch(url("/files/small.bin"), NULL, &c, fd, &res, &err) == 0, "%s", err.message);
    ck_assert_str_eq(res.sha256, small_sha);
    ck_assert_uint_eq(fd_size(fd), SMALL);
    close(fd);
}
END_TEST

struct progress_log {
    int calls;
    uint64_t last_done, last_total;
    bool monotonic;
    atomic_bool *cancel_at_first;
};

static void on_progress(void *opaque, uint64_t done, uint64_t total)
{
    struct progress_log *p = opaque;
    if (p->calls && done < p->last_done)
        p->monotonic = false;
    p->calls++;
    p->last_done = done;
    p->last_total = total;
    if (p->cancel_at_first && done > 0)
        atomic_store(p->cancel_at_first, true);
}

START_TEST(slow_completes_with_progress)
{
    struct vf_fetch_common c = common();
    struct progress_log p = { .monotonic = true };
    struct vf_fetch_result res;
    struct vf_error err;
    int fd = scratch_fd(dir);
    c.progress = on_progress;
    c.opaque = &p;
    /* 100 kB at 40 kB/s: about 2.5 s, so the 1 s progress tick fires. */
    ck_assert_msg(fetch(url("/slow/40000/files/small.bin"), NULL, &c, fd, &res, &err) == 0, "%s", err.message);
    ck_assert_str_eq(res.sha256, small_sha);
    ck_assert_int_ge(p.calls, 3);
    ck_assert(p.monotonic);
    ck_assert_uint_eq(p.last_done, SMALL);
    ck_assert_uint_eq(p.last_total, SMALL);
    close(fd);
}
END_TEST

START_TEST(stall_times_out)
{
    struct vf_fetch_common c = common();
    struct vf_fetch_result res;
    struct vf_error err;
    int fd = scratch_fd(dir);
    time_t t0 = time(NULL);
    c.stall_timeout_s = 2;
    c.max_retries = 1;
    ck_assert_int_lt(fetch(url("/slow/0/files/small.bin"), NULL, &c, fd, &res, &err), 0);
    ck_assert_msg(strstr(err.message, "stalled") && strstr(err.message, "/slow/0/files/small.bin"), "%s",
                  err.message);
    ck_assert_int_eq(res.retries, 1);   /* a stall is transient */
    ck_assert_int_lt(time(NULL) - t0, 30);
    close(fd);
}
END_TEST

START_TEST(max_bytes_refused)
{
    struct vf_fetch_common c = common();
    struct vf_fetch_result res;
    struct vf_error err;
    int fd = scratch_fd(dir);
    c.max_bytes = 100000;
    /* Content-Length says 3 MiB: refused before a byte is stored. */
    ck_assert_int_eq(fetch(url("/files/big.bin"), NULL, &c, fd, &res, &err), -EFBIG);
    ck_assert_str_eq(err.reason, "TooLarge");
    ck_assert_msg(strstr(err.message, "3145728"), "%s", err.message);
    ck_assert_uint_eq(fd_size(fd), 0);
    /* No length announced: refused as it passes the limit. */
    ck_assert_int_eq(fetch(url("/chunked/files/big.bin"), NULL, &c, fd, &res, &err), -EFBIG);
    ck_assert_str_eq(err.reason, "TooLarge");
    ck_assert_uint_le(fd_size(fd), 100000);
    ck_assert_int_eq(res.retries, 0);
    /* Exactly the limit is fine. */
    ck_assert_int_eq(ftruncate(fd, 0), 0);
    ck_assert_msg(fetch(url("/chunked/files/small.bin"), NULL, &c, fd, &res, &err) == 0, "%s", err.message);
    ck_assert_str_eq(res.sha256, small_sha);
    close(fd);
}
END_TEST

START_TEST(cancel_stops)
{
    struct vf_fetch_common c = common();
    atomic_bool cancel = false;
    struct progress_log p = { .monotonic = true, .cancel_at_first = &cancel };
    struct vf_fetch_result res;
    struct vf_error err;
    int fd = scratch_fd(dir);
    time_t t0 = time(NULL);
    c.cancel = &cancel;
    c.progress = on_progress;
    c.opaque = &p;
    ck_assert_int_eq(fetch(url("/slow/100000/files/big.bin"), NULL, &c, fd, &res, &err), -ECANCELED);
    ck_assert_str_eq(err.reason, "Canceled");
    ck_assert_int_lt(time(NULL) - t0, 10);   /* not the 30 s the whole would take */
    ck_assert_uint_lt(fd_size(fd), BIG);
    /* Already canceled: nothing is fetched. */
    ck_assert_int_eq(ftruncate(fd, 0), 0);
    ck_assert_int_eq(fetch(url("/files/small.bin"), NULL, &c, fd, &res, &err), -ECANCELED);
    ck_assert_uint_eq(fd_size(fd), 0);
    close(fd);
}
END_TEST

START_TEST(only_http_urls)
{
    struct vf_fetch_common c = common();
    struct vf_fetch_result res;
    struct vf_error err;
    int fd = scratch_fd(dir);
    static const char *const bad[] = { "ftp://127.0.0.1/x", "file:///etc/passwd", "gopher://127.0.0.1/",
                                       "/files/small.bin", "", "http://" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(fetch(bad[i], NULL, &c, fd, &res, &err), -EINVAL);
        ck_assert_str_eq(err.reason, "Invalid");
        ck_assert_str_eq(err.field, "spec.dataSource.http.url");
    }
    ck_assert_uint_eq(fd_size(fd), 0);
    close(fd);
}
END_TEST

START_TEST(chunked_body)
{
    struct vf_fetch_common c = common();
    struct vf_fetch_result res;
    struct vf_error err;
    int fd = scratch_fd(dir);
    ck_assert_msg(fetch(url("/chunked/files/big.bin"), NULL, &c, fd, &res, &err) == 0, "%s", err.message);
    ck_assert_str_eq(res.sha256, big_sha);
    ck_assert(fd_equals_file(fd, sample("big.bin")));
    close(fd);
}
END_TEST

START_TEST(https_with_ca_bundle)
{
    struct vf_fetch_common c = common();
    struct vf_fetch_result res;
    struct vf_error err;
    char u[256];
    int fd = scratch_fd(dir);
    snprintf(u, sizeof u, "https://127.0.0.1:%u/files/small.bin", tls_fx.port);
    c.max_retries = 1;
    /* Not trusted by the system's CAs. */
    ck_assert_int_lt(fetch(u, NULL, &c, fd, &res, &err), 0);
    ck_assert_msg(strstr(err.message, "certificate") || strstr(err.message, "SSL"), "%s", err.message);
    ck_assert_uint_eq(fd_size(fd), 0);
    /* Trusted through the bundle. */
    c.ca_bundle_pem = ca_pem;
    ck_assert_msg(fetch(u, NULL, &c, fd, &res, &err) == 0, "%s", err.message);
    ck_assert_str_eq(res.sha256, small_sha);
    close(fd);
    /* The bundle is what is trusted: another CA's certificate fails. */
    fd = scratch_fd(dir);
    c.ca_bundle_pem = other_pem;
    ck_assert_int_lt(fetch(u, NULL, &c, fd, &res, &err), 0);
    ck_assert_uint_eq(fd_size(fd), 0);
    /* The test-only switch. */
    c.ca_bundle_pem = NULL;
    c.insecure_skip_verify = true;
    ck_assert_msg(fetch(u, NULL, &c, fd, &res, &err) == 0, "%s", err.message);
    ck_assert_str_eq(res.sha256, small_sha);
    close(fd);
}
END_TEST

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "re");
    char *buf = calloc(1, 65536);
    if (!f || !buf || fread(buf, 1, 65535, f) == 0) {
        printf("Bail out! cannot read %s\n", path);
        exit(EXIT_FAILURE);
    }
    fclose(f);
    return buf;
}

static Suite *suite(void)
{
    const struct fetch_case cases[] = {
        { "checksums", sha256_and_md5_match },
        { "wrong_checksum", wrong_checksum },
        { "not_found", not_found_names_status_and_url },
        { "redirects", redirects_bounded },
        { "credentials", credentials_stay_on_origin },
        { "flaky", flaky_recovered },
        { "retry_after", retry_after_honoured },
        { "retry_after_parse", retry_after_parse },
        { "truncated", truncated_then_resumed },
        { "resume", resume_existing_prefix },
        { "norange", norange_starts_over },
        { "slow", slow_completes_with_progress },
        { "stall", stall_times_out },
        { "max_bytes", max_bytes_refused },
        { "cancel", cancel_stops },
        { "only_http", only_http_urls },
        { "chunked", chunked_body },
        { "https", https_with_ca_bundle },
    };
    return fetch_suite("image_fetch", cases, sizeof cases / sizeof cases[0]);
}

int main(void)
{
    int rc;
    dir = setup_tmpdir();
    setup_sh("mkdir %s/root", dir);
    write_sample(sample("small.bin"), SMALL, 1);
    write_sample(sample("big.bin"), BIG, 2);
    write_sample(sample("cred.bin"), 12345, 3);
    snprintf(small_sha, sizeof small_sha, "%s", sh_out("sha256sum %s | cut -d' ' -f1", sample("small.bin")));
    snprintf(small_md5, sizeof small_md5, "%s", sh_out("md5sum %s | cut -d' ' -f1", sample("small.bin")));
    snprintf(big_sha, sizeof big_sha, "%s", sh_out("sha256sum %s | cut -d' ' -f1", sample("big.bin")));
    /* A self-signed certificate for 127.0.0.1 and localhost. */
    setup_sh("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 "
             "-addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout %s/key.pem -out %s/cert.pem 2>/dev/null",
             dir, dir);
    setup_sh("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 "
             "-addext subjectAltName=IP:127.0.0.1 -keyout %s/other.key -out %s/other.pem 2>/dev/null", dir, dir);
    ca_pem = slurp(sh_out("echo %s/cert.pem", dir));
    other_pem = slurp(sh_out("echo %s/other.pem", dir));
    char root[1024], cert[1024], key[1024];
    snprintf(root, sizeof root, "%s/root", dir);
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    const char *tls_args[] = { "--tls-cert", cert, "--tls-key", key, NULL };
    fixture_start(&fx, root, dir, "http", NULL);
    fixture_start(&tls_fx, root, dir, "https", tls_args);

    rc = vf_test_run(suite());
    fixture_stop(&fx);
    fixture_stop(&tls_fx);
    if (rc == EXIT_SUCCESS)
        vf_test_rmtree(dir);
    else
        fprintf(stderr, "kept %s for the logs\n", dir);
    free(ca_pem);
    free(other_pem);
    free(dir);
    return rc;
}
