/* virtfleetd: reads the config, opens the store, serves the API and runs the
 * modules the config enables.  SIGHUP re-reads the config and applies the
 * difference; SIGTERM/SIGINT stop cleanly. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "audit.h"
#include "classes.h"
#include "cluster.h"
#include "config.h"
#include "core_kinds.h"
#include "log.h"
#include "loop.h"
#include "modules.h"
#include "objects.h"
#include "store.h"
#include "vms.h"
#include "workers.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif
#define DEFAULT_CONFIG SYSCONFDIR "/virtfleet/virtfleetd.conf"

struct daemon_state {
    struct vf_config *cfg;        /* the configuration in force */
    struct vf_store *store;
    int signal_fd;
    int pidfile_fd;
    int ready_fd;                 /* write end of the pipe the parent waits on, or -1 */
    bool api_started;
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: virtfleetd [OPTION]...\n"
            "Run virtual machines on a fleet of libvirt hosts.\n\n"
            "  -c, --config FILE   configuration file (default " DEFAULT_CONFIG ")\n"
            "  -f, --foreground    stay in the foreground and log to stderr\n"
            "      --check-config  validate the configuration (and module settings) and exit\n"
            "      --list-modules  print the available modules with their settings and exit\n"
            "      --version       print the version and exit\n"
            "  -h, --help          show this help\n\n"
            "Signals: SIGHUP reloads the configuration; SIGTERM and SIGINT stop the daemon.\n"
            "See virtfleetd(8) and virtfleetd.conf(5).\n");
}

static void print_errors(const struct vf_config_errors *errors)
{
    for (unsigned i = 0; i < errors->n; i++)
        vf_log_error("%s", errors->lines[i]);
}

/* Load the file and check every module entry against its module.  *out is
 * the new configuration, or NULL with every problem logged. */
static int load_checked_config(const char *path, struct vf_config **out)
{
    struct vf_config_errors errors = {0};
    struct vf_config *cfg = NULL;
    int rc = vf_config_load(path, &cfg, &errors);
    if (rc == 0) {
        if (vf_modules_init(cfg->module_dir) < 0)
            rc = -EINVAL;
        else
            rc = vf_modules_check(cfg, &errors);
    }
    if (rc < 0) {
        print_errors(&errors);
        vf_config_free(cfg);
        cfg = NULL;
    }
    vf_config_errors_clear(&errors);
    *out = cfg;
    return rc;
}

static int make_dir(const char *path, mode_t mode)
{
    if (mkdir(path, mode) < 0 && errno != EEXIST) {
        int e = errno;
        vf_log_error("cannot create directory \"%s\": %s", path, strerror(e));
        return -e;
    }
    return 0;
}

/* A second daemon on the same state would corrupt nothing (SQLite locks) but
 * would fight over the socket: refuse it while the pidfile is locked. */
static int pidfile_take(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        vf_log_error("pidfile \"%s\": %s", path, strerror(errno));
        return -errno;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        char other[32] = "";
        ssize_t n = read(fd, other, sizeof other - 1);
        other[n > 0 ? n : 0] = '\0';
        other[strcspn(other, "\n")] = '\0';
        vf_log_error("pidfile \"%s\" is locked by pid %s: another virtfleetd runs with this "
                     "configuration", path, other[0] ? other : "?");
        close(fd);
        return -EBUSY;
    }
    char buf[32];
    int len = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || write(fd, buf, (size_t)len) != len) {
        vf_log_error("pidfile \"%s\": cannot write: %s", path, strerror(errno));
        close(fd);
        return -EIO;
    }
    return fd;
}

/* Fork; the parent waits until the child says it is ready (or failed), so that
 * `virtfleetd && virtfleet get nodes` works and a failed start exits non-zero. */
static int daemonize(int *ready_fd)
{
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid > 0) {
        close(pipefd[1]);
        char status = 1;
        ssize_t n = read(pipefd[0], &status, 1);
        _exit(n == 1 && status == 0 ? 0 : 1);
    }
    close(pipefd[0]);
    if (setsid() < 0)
        return -errno;
    if (chdir("/") < 0)
        return -errno;
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        if (null > STDERR_FILENO)
            close(null);
    }
    *ready_fd = pipefd[1];
    return 0;
}

static void report_ready(struct daemon_state *d, bool ok)
{
    if (d->ready_fd < 0)
        return;
    char status = ok ? 0 : 1;
    ssize_t n = write(d->ready_fd, &status, 1);
    (void)n;
    close(d->ready_fd);
    d->ready_fd = -1;
}

static void reload(struct daemon_state *d)
{
    vf_log_info("SIGHUP: reloading \"%s\"", d->cfg->path);
    struct vf_config *next;
    if (load_checked_config(d->cfg->path, &next) < 0) {
        vf_log_error("reload rejected: the configuration in force stays unchanged");
        return;
    }
    /* Checked before anything changes: a reload that would strand issued
     * addresses is refused whole. */
    struct vf_config_errors errors = {0};
    if (vf_vms_check_config(next, &errors) < 0) {
        print_errors(&errors);
        vf_config_errors_clear(&errors);
        vf_config_free(next);
        vf_log_error("reload rejected: the configuration in force stays unchanged");
        return;
    }
    vf_config_errors_clear(&errors);
    const struct vf_config *cur = d->cfg;
    if (strcmp(cur->state_dir, next->state_dir) || strcmp(cur->api_socket, next->api_socket) ||
        strcmp(cur->pidfile, next->pidfile) || cur->workers != next->workers)
        vf_log_warn("reload: state_dir, pidfile, api.socket and workers take effect at the "
                    "next restart");
    vf_log_set_level(next->log_level);
    vf_cluster_apply(next);
    vf_vms_apply_config(next);
    vf_modules_apply(next);
    vf_config_free(d->cfg);
    d->cfg = next;
    vf_log_info("reload done");
}

static void on_signal(void *opaque, int fd, int events)
{
    struct daemon_state *d = opaque;
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGHUP) {
            reload(d);
        } else {
            vf_log_info("%s: stopping", strsignal((int)si.ssi_signo));
            vf_loop_quit();
        }
    }
}

/* Signals are taken through a signalfd on the loop, so the reload runs on the
 * loop thread like everything else.  They must be blocked before any thread
 * starts, or a worker could receive them instead. */
static int block_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return -errno;
    signal(SIGPIPE, SIG_IGN);
    int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

static gid_t group_id(const char *name)
{
    if (!name)
        return (gid_t)-1;
    struct group *g = getgrnam(name);
    if (!g) {
        vf_log_warn("api.group \"%s\" does not exist; the socket keeps the daemon's group", name);
        return (gid_t)-1;
    }
    return g->gr_gid;
}

static int start(struct daemon_state *d)
{
    const struct vf_config *cfg = d->cfg;
    int rc;
    if ((rc = make_dir(cfg->state_dir, 0750)) < 0)
        return rc;
    vf_modules_set_state_root(cfg->state_dir);
    if ((d->pidfile_fd = pidfile_take(cfg->pidfile)) < 0)
        return d->pidfile_fd;
    if ((d->signal_fd = block_signals()) < 0) {
        vf_log_error("cannot take signals: %s", strerror(-d->signal_fd));
        return d->signal_fd;
    }
    if ((rc = vf_loop_init()) < 0)
        return rc;
    if (vf_loop_fd_add(d->signal_fd, POLLIN, on_signal, d) < 0)
        return -EIO;
    if ((rc = vf_workers_start((unsigned)cfg->workers)) < 0)
        return rc;

    char path[4096];
    snprintf(path, sizeof path, "%s/store.db", cfg->state_dir);
    struct vf_error err = {0};
    struct vf_store_options so = {.synchronous_full = 1};
    if ((rc = vf_store_open(path, &so, &d->store, &err)) < 0) {
        vf_log_error("store \"%s\": %s", path, err.message);
        return rc;
    }
    vf_objects_set_store(d->store);
    if ((rc = vf_core_kinds_register()) < 0 || (rc = vf_audit_init()) < 0 ||
        (rc = vf_cluster_init()) < 0)
        return rc;

    /* The socket's directory may be under /run, which is empty after a boot. */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", cfg->api_socket);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if ((rc = make_dir(dir, 0755)) < 0)
            return rc;
    }
    struct vf_api_options ao = {
        .socket_path = cfg->api_socket,
        .socket_mode = cfg->api_socket_mode,
        .socket_gid = group_id(cfg->api_socket_group),
    };
    if ((rc = vf_api_start(&ao, &err)) < 0) {
        vf_log_error("API: %s", err.message);
        return rc;
    }
    d->api_started = true;
    vf_cluster_apply(cfg);
    if ((rc = vf_classes_start()) < 0 || (rc = vf_vms_start(cfg)) < 0)
        return rc;
    vf_modules_apply(cfg);
    vf_log_info("virtfleetd %s ready: API on \"%s\", %lld objects in the store", PACKAGE_VERSION,
                cfg->api_socket, (long long)vf_store_count(d->store, NULL));
    return 0;
}

static void stop(struct daemon_state *d)
{
    vf_modules_stop_all();
    vf_vms_stop();
    vf_classes_stop();
    vf_cluster_stop();
    if (d->api_started)
        vf_api_stop();
    vf_workers_stop();
    vf_loop_finish();
    if (d->store)
        vf_store_close(d->store);
    vf_objects_set_store(NULL);
    if (d->pidfile_fd >= 0) {
        unlink(d->cfg->pidfile);
        close(d->pidfile_fd);
    }
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"foreground", no_argument, NULL, 'f'},
        {"check-config", no_argument, NULL, 'C'},
        {"list-modules", no_argument, NULL, 'L'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = DEFAULT_CONFIG;
    bool foreground = false, check_only = false, list_modules = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:fh", options, NULL)) != -1) {
        switch (opt) {
        case 'c': config_path = optarg; break;
        case 'f': foreground = true; break;
        case 'C': check_only = true; break;
        case 'L': list_modules = true; break;
        case 'V':
            printf("virtfleetd %s (module ABI %d.%d)\n", PACKAGE_VERSION, VF_MODULE_ABI_MAJOR,
                   VF_MODULE_ABI_MINOR);
            return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "virtfleetd: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    /* Every connection thread would otherwise get a malloc arena of its own
     * that keeps the peak of the largest list it ever served. */
    mallopt(M_ARENA_MAX, 2);
    vf_log_open(true, VF_LOG_INFO);
    if (list_modules) {
        if (vf_modules_init(getenv("VIRTFLEET_MODULE_DIR")) < 0)
            return 1;
        return vf_modules_print(stdout) < 0 ? 1 : 0;
    }

    struct daemon_state d = {.signal_fd = -1, .pidfile_fd = -1, .ready_fd = -1};
    if (load_checked_config(config_path, &d.cfg) < 0)
        return 1;
    if (check_only) {
        printf("%s: configuration OK (%u nodes, %u module entries)\n", d.cfg->path,
               d.cfg->n_nodes, d.cfg->n_modules);
        vf_config_free(d.cfg);
        return 0;
    }

    if (!foreground && daemonize(&d.ready_fd) < 0) {
        vf_log_error("cannot daemonize: %s", strerror(errno));
        return 1;
    }
    vf_log_open(foreground, d.cfg->log_level);

    int rc = start(&d);
    report_ready(&d, rc == 0);
    if (rc == 0)
        rc = vf_loop_run();
    stop(&d);
    vf_config_free(d.cfg);
    return rc == 0 ? 0 : 1;
}
