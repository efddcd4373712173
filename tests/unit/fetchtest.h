/* Helpers for the fetcher suites (check_image_fetch, check_image_registry):
 * shell commands, sample files, formatted paths and URLs, the suite's test
 * cases, and tests/lib/http_fixture started as a child process.  Header-only;
 * include after <config.h> and testlib.h. */
#ifndef VF_FETCHTEST_H
#define VF_FETCHTEST_H
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "testlib.h"

/* For main(), before the suite runs: a failure stops the whole suite. */
static void setup_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void setup_sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    if (system(cmd) != 0) {
        printf("Bail out! setup command failed: %s\n", cmd);
        exit(EXIT_FAILURE);
    }
}

/* For main(): a fresh directory under $TMPDIR (vf_test_tmpdir asserts, which
 * Check allows only inside tests).  free() it. */
static char *setup_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char *path = NULL;
    if (asprintf(&path, "%s/vftest.XXXXXX", base && *base ? base : "/tmp") < 0 || !mkdtemp(path)) {
        printf("Bail out! cannot make a temporary directory\n");
        exit(EXIT_FAILURE);
    }
    return path;
}

/* The first line a command prints (trailing newline dropped); "" on failure. */
static const char *sh_out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *sh_out(const char *fmt, ...)
{
    static char out[4][512];
    static int k;
    char cmd[4096];
    va_list ap;
    k = (k + 1) % 4;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    out[k][0] = '\0';
    FILE *p = popen(cmd, "r");
    if (p) {
        if (!fgets(out[k], sizeof out[k], p))
            out[k][0] = '\0';
        pclose(p);
    }
    out[k][strcspn(out[k], "\n")] = '\0';
    return out[k];
}

/* printf into one of 16 static buffers taken in turn: a result stays valid
 * through the next 15 calls, plenty for the paths and URLs one check names. */
static const char *ring_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *ring_fmt(const char *fmt, ...)
{
    static char buf[16][1024];
    static int k;
    va_list ap;
    k = (k + 1) % 16;
    va_start(ap, fmt);
    vsnprintf(buf[k], sizeof buf[k], fmt, ap);
    va_end(ap);
    return buf[k];
}

/* A file of size bytes from a simple generator (seeded, so files differ). */
static void write_sample(const char *path, size_t size, unsigned seed)
{
    FILE *f = fopen(path, "we");
    uint32_t x = seed * 2654435761u + 1;
    if (!f) {
        printf("Bail out! cannot write %s\n", path);
        exit(EXIT_FAILURE);
    }
    for (size_t i = 0; i < size; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        fputc((int)(x & 0xff), f);
    }
    fclose(f);
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* The suite: one test case per test, each with a timeout generous enough
 * for fetches from real servers on a loaded machine. */
struct fetch_case {
    const char *name;
    const TTest *test;
};

static Suite *fetch_suite(const char *name, const struct fetch_case *cases, size_t n)
{
    Suite *s = suite_create(name);
    for (size_t i = 0; i < n; i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, cases[i].test);
        suite_add_tcase(s, tc);
    }
    return s;
}

struct fixture {
    pid_t pid;
    unsigned port;
    char log[1024];
};

/* Starts tests/lib/http_fixture on root; extra: more arguments (may be NULL). */
static void fixture_start(struct fixture *fx, const char *root, const char *workdir, const char *name,
                          const char *const *extra)
{
    const char *top = getenv("top_builddir");
    char bin[1024], port_file[1024];
    const char *argv[16];
    int argc = 0;
    snprintf(bin, sizeof bin, "%s/tests/lib/http_fixture", top && *top ? top : ".");
    snprintf(port_file, sizeof port_file, "%s/%s.port", workdir, name);
    snprintf(fx->log, sizeof fx->log, "%s/%s.log", workdir, name);
    argv[argc++] = bin;
    argv[argc++] = "--root";
    argv[argc++] = root;
    argv[argc++] = "--port-file";
    argv[argc++] = port_file;
    for (; extra && *extra && argc < 14; extra++)
        argv[argc++] = *extra;
    argv[argc] = NULL;
    unlink(port_file);
    fflush(stdout);
    fx->pid = fork();
    if (fx->pid == 0) {
        /* The fixture goes when the suite goes, however it ends. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        int log = open(fx->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (log >= 0)
            dup2(log, 2);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    for (int i = 0; i < 600; i++) {   /* up to a minute on a loaded machine */
        FILE *f = fopen(port_file, "re");
        if (f) {
            int ok = fscanf(f, "%u", &fx->port);
            fclose(f);
            if (ok == 1 && fx->port)
                return;
        }
        int st;
        if (waitpid(fx->pid, &st, WNOHANG) == fx->pid) {
            printf("Bail out! %s exited (status %d); see %s\n", bin, st, fx->log);
            exit(EXIT_FAILURE);
        }
        sleep_ms(100);
    }
    printf("Bail out! %s did not start; see %s\n", bin, fx->log);
    exit(EXIT_FAILURE);
}

static void fixture_stop(struct fixture *fx)
{
    int st;
    if (fx->pid <= 0)
        return;
    kill(fx->pid, SIGTERM);
    waitpid(fx->pid, &st, 0);
    fx->pid = 0;
}

/* true when the fixture's log has a line containing needle. */
static bool fixture_logged(const struct fixture *fx, const char *needle)
{
    char line[2048];
    bool found = false;
    FILE *f = fopen(fx->log, "re");
    if (!f)
        return false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

/* A fresh empty file to download into; close() it. */
static int scratch_fd(const char *dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/dl.XXXXXX", dir);
    int fd = mkostemp(path, O_CLOEXEC);
    ck_assert_msg(fd >= 0, "mkostemp: %s", strerror(errno));
    unlink(path);
    return fd;
}

static uint64_t fd_size(int fd)
{
    struct stat st;
    ck_assert_int_eq(fstat(fd, &st), 0);
    return (uint64_t)st.st_size;
}

/* true when fd's contents equal the file at path. */
static bool fd_equals_file(int fd, const char *path)
{
    char a[65536], b[65536];
    int f = open(path, O_RDONLY | O_CLOEXEC);
    off_t off = 0;
    bool same = f >= 0;
    while (same) {
        ssize_t n = pread(fd, a, sizeof a, off), m = read(f, b, sizeof b);
        if (n != m || n < 0)
            same = false;
        else if (n == 0)
            break;
        else
            same = memcmp(a, b, (size_t)n) == 0;
        off += n > 0 ? n : 0;
    }
    if (f >= 0)
        close(f);
    return same;
}
#endif
