/* virtfleet: the command-line client of virtfleetd, shaped like kubectl.
 * This file reads the command line, picks the socket and calls a command. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "commands.h"
#include "jsonpath.h"

#ifndef RUNSTATEDIR
#define RUNSTATEDIR "/run"
#endif
/* Where virtfleetd listens unless its configuration says otherwise. */
#define DEFAULT_SOCKET RUNSTATEDIR "/virtfleet/virtfleetd.sock"
#define DEFAULT_TIMEOUT 30

/* Options a command accepts, beyond --socket, --timeout and --help. */
enum {
    OPT_OUTPUT = 1 << 0,
    OPT_SELECTOR = 1 << 1,
    OPT_WATCH = 1 << 2,
    OPT_FILE = 1 << 3,
    OPT_WAIT = 1 << 4,
    OPT_DRAIN = 1 << 5,     /* kubectl drain's --ignore-daemonsets, --delete-emptydir-data */
};

struct command {
    const char *name;
    int (*run)(struct vf_cli *, int, char **);
    unsigned options;
    const char *synopsis;
    const char *help;
};

static const struct command commands[] = {
    { "get", vf_cmd_get, OPT_OUTPUT | OPT_SELECTOR | OPT_WATCH,
      "get KIND [NAME...] [-o json|yaml|wide|name|jsonpath=TEMPLATE|jsonpath-file=FILE] [-l SELECTOR] [-w|--watch-only]",
      "List objects of a kind, or the named ones, as a table.\n"
      "  -o, --output FORMAT   json, yaml, wide (adds LABELS), name, jsonpath=TEMPLATE, or\n"
      "                        jsonpath-file=FILE: kubectl's JSONPath, applied to the object,\n"
      "                        or to a List of them (.items) when several are printed, e.g.\n"
      "                        '{.items[*].metadata.name}'\n"
      "                        '{.status.conditions[?(@.type==\"Ready\")].reason}'\n"
      "                        '{range .items[*]}{.metadata.name}{\"\\t\"}{.status.phase}{\"\\n\"}{end}'\n"
      "  -l, --selector SEL    only objects whose labels match, e.g. -l app=web,tier!=db\n"
      "  -w, --watch           after the table, print a row for every change (Ctrl+C ends)\n"
      "      --watch-only      print only the changes\n" },
    { "describe", vf_cmd_describe, OPT_SELECTOR,
      "describe KIND [NAME...] [-l SELECTOR]",
      "Show objects in detail: metadata, spec, status and conditions.\n"
      "  -l, --selector SEL    without names: only objects whose labels match\n" },
    { "create", vf_cmd_create, OPT_FILE,
      "create -f FILE...",
      "Create the objects in YAML or JSON manifests (several documents allowed).\n"
      "  -f, --filename FILE   a manifest; - reads standard input; may be repeated\n" },
    { "apply", vf_cmd_apply, OPT_FILE,
      "apply -f FILE...",
      "Create the objects in manifests, or replace the spec of those that exist.\n"
      "  -f, --filename FILE   a manifest; - reads standard input; may be repeated\n" },
    { "delete", vf_cmd_delete, OPT_FILE | OPT_WAIT,
      "delete KIND NAME... | delete -f FILE... [--wait]",
      "Delete objects by name or as named in manifests.\n"
      "  -f, --filename FILE   delete the objects a manifest describes\n"
      "      --wait            return only once the objects are gone (bounded by --timeout)\n" },
    { "modules", vf_cmd_modules, OPT_OUTPUT,
      "modules [-o json|yaml]",
      "List the daemon's modules and their state.\n" },
    { "version", vf_cmd_version, 0,
      "version",
      "Print the client's and the daemon's versions.\n" },
    { "cordon", vf_cmd_cordon, 0,
      "cordon NODE...",
      "Mark nodes unschedulable: no new virtual machines are placed on them.\n" },
    { "uncordon", vf_cmd_uncordon, 0,
      "uncordon NODE...",
      "Make nodes schedulable again.\n" },
    { "image", vf_cmd_image, 0,
      "image info [-o json] FILE | image convert -O raw|qcow2 [--quota SIZE] SRC DST",
      "Inspect, validate or convert a local disk image file (offline; no daemon).\n" },
    { "drain", vf_cmd_drain, OPT_SELECTOR | OPT_DRAIN,
      "drain NODE [-l|--selector|--pod-selector SEL] [--timeout DURATION]",
      "Maintenance: cordon the node, move its VMs away with Evict operations (the\n"
      "migrate module) and show their progress until the node is empty (exit 0), or\n"
      "list each VM that could not be moved and why (exit 1).  Ctrl+C stops waiting\n"
      "and leaves the node cordoned; `virtfleet uncordon NODE` ends maintenance and\n"
      "cancels the evictions that have not started.\n"
      "  -l, --selector SEL    only VMs whose labels match (--pod-selector is the same)\n"
      "      --timeout D       give up after D (\"300\", \"5m\", \"1h\"; default: wait on)\n"
      "      --ignore-daemonsets, --delete-emptydir-data   accepted as kubectl's, no effect\n" },
    { "upload", vf_cmd_upload, 0,
      "upload cvi NAME FILE",
      "Upload a local image file to a ClusterVirtualImage of type Upload (its\n"
      "status.imageUploadURLs.external), with a progress bar on a terminal, then wait\n"
      "until the image is Ready (exit 0) or Failed (exit 1, with the reason).\n" },
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

static const char global_help[] =
    "Global options:\n"
    "      --socket PATH     the daemon's socket (default: $VIRTFLEET_SOCKET, else " DEFAULT_SOCKET ")\n"
    "      --timeout SECS    give up on a request after SECS seconds (default 30; 0: never;\n"
    "                        watches are not limited)\n"
    "  -h, --help            this help; after a command, that command's help\n"
    "\n"
    "Exit status: 0 success, 1 the server refused or an object or file is wrong,\n"
    "2 wrong command line, 3 the daemon cannot be reached.\n";

static void usage(FILE *out)
{
    fprintf(out, "Usage: virtfleet COMMAND [ARGS] [OPTIONS]\n\nCommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %s\n", commands[i].synopsis);
    fprintf(out, "\nKIND is a kind, its plural or a short name (vm, vmop, vmclass, cvi, vd, node, ...);\n"
                 "the daemon's modules may add kinds.  See virtfleet COMMAND --help.\n\n%s", global_help);
}

static void command_usage(FILE *out, const struct command *c)
{
    fprintf(out, "Usage: virtfleet %s\n\n%s\n%s", c->synopsis, c->help, global_help);
}

static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

/* The template is parsed here, so that a malformed one is refused before
 * any request; file names the file it came from, if any. */
static int set_jsonpath(struct vf_cli *cli, const char *tmpl, const char *file)
{
    char err[1024];
    struct vf_jsonpath *jp = vf_jsonpath_parse(tmpl, err, sizeof err);

    if (!jp) {
        fprintf(stderr, "error: %s%s%s\n", file ? file : "", file ? ": " : "", err);
        return -1;
    }
    vf_jsonpath_free(cli->jsonpath);
    cli->jsonpath = jp;
    cli->output = VF_OUTPUT_JSONPATH;
    return 0;
}

/* -o jsonpath-file=FILE: the whole file is the template, a final newline
 * included (it prints, as with kubectl). */
static char *read_template(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf;
    size_t n;

    if (!f) {
        fprintf(stderr, "error: cannot read the jsonpath template %s: %s\n", path, strerror(errno));
        return NULL;
    }
    buf = malloc(VF_JSONPATH_MAX_LEN + 2);
    if (!buf) {
        fclose(f);
        fprintf(stderr, "error: out of memory\n");
        return NULL;
    }
    n = fread(buf, 1, VF_JSONPATH_MAX_LEN + 1, f);
    if (ferror(f) || n > VF_JSONPATH_MAX_LEN || memchr(buf, '\0', n)) {
        fprintf(stderr, "error: cannot use %s as a jsonpath template: %s\n", path,
                ferror(f) ? strerror(errno) : n > VF_JSONPATH_MAX_LEN ? "longer than 64 KiB" : "it has a NUL byte");
        fclose(f);
        free(buf);
        return NULL;
    }
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static int parse_output(struct vf_cli *cli, const char *arg)
{
    static const struct { const char *name; enum vf_output value; } formats[] = {
        { "json", VF_OUTPUT_JSON }, { "yaml", VF_OUTPUT_YAML }, { "wide", VF_OUTPUT_WIDE },
        { "name", VF_OUTPUT_NAME },
    };
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
        if (strcmp(arg, formats[i].name) == 0) {
            cli->output = formats[i].value;
            return 0;
        }
    if (strncmp(arg, "jsonpath=", 9) == 0 && arg[9])
        return set_jsonpath(cli, arg + 9, NULL);
    if (strncmp(arg, "jsonpath-file=", 14) == 0 && arg[14]) {
        char *tmpl = read_template(arg + 14);
        int rc = tmpl ? set_jsonpath(cli, tmpl, arg + 14) : -1;
        free(tmpl);
        return rc;
    }
    fprintf(stderr, "error: unknown output format \"%s\"; use json, yaml, wide, name, jsonpath=TEMPLATE "
                    "or jsonpath-file=FILE\n", arg);
    return -1;
}

static int parse_timeout(const char *arg, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(arg, &end, 10);
    /* A unit, as kubectl drain --timeout takes it: 90s, 5m, 1h. */
    if (end != arg && end[0] && !end[1] && v >= 0 && v <= 86400 * 365) {
        long mult = *end == 's' ? 1 : *end == 'm' ? 60 : *end == 'h' ? 3600 : 0;
        if (mult) {
            v *= mult;
            end++;
        }
    }
    if (errno || end == arg || *end || v < 0 || v > 86400 * 365) {
        fprintf(stderr, "error: --timeout wants a number of seconds, not \"%s\"\n", arg);
        return -1;
    }
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    enum { LONG_SOCKET = 256, LONG_TIMEOUT, LONG_WATCH_ONLY, LONG_WAIT, LONG_DRAIN_COMPAT };
    static const struct option longopts[] = {
        { "output", required_argument, NULL, 'o' },
        { "selector", required_argument, NULL, 'l' },
        { "pod-selector", required_argument, NULL, 'l' },
        { "ignore-daemonsets", no_argument, NULL, LONG_DRAIN_COMPAT },
        { "delete-emptydir-data", no_argument, NULL, LONG_DRAIN_COMPAT },
        { "watch", no_argument, NULL, 'w' },
        { "watch-only", no_argument, NULL, LONG_WATCH_ONLY },
        { "filename", required_argument, NULL, 'f' },
        { "wait", no_argument, NULL, LONG_WAIT },
        { "socket", required_argument, NULL, LONG_SOCKET },
        { "timeout", required_argument, NULL, LONG_TIMEOUT },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct vf_cli cli = { .timeout = DEFAULT_TIMEOUT };
    const struct command *cmd;
    const char *socket_path = getenv("VIRTFLEET_SOCKET");
    unsigned used = 0;
    bool help = false;
    int opt, status;

    /* `image` works offline on local files and reads options of its own (-O). */
    if (argc > 1 && strcmp(argv[1], "image") == 0)
        return vf_cmd_image(NULL, argc - 2, argv + 2);
    if (!socket_path || !*socket_path)
        socket_path = DEFAULT_SOCKET;
    cli.files = calloc((size_t)argc, sizeof *cli.files);
    if (!cli.files) {
        fprintf(stderr, "error: out of memory\n");
        return VF_EXIT_ERROR;
    }
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":o:l:wf:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'o':
            used |= OPT_OUTPUT;
            if (parse_output(&cli, optarg) < 0)
                goto usage_error;
            break;
        case 'l':
            used |= OPT_SELECTOR;
            cli.selector = optarg;
            break;
        case 'w':
            used |= OPT_WATCH;
            cli.watch = true;
            break;
        case LONG_WATCH_ONLY:
            used |= OPT_WATCH;
            cli.watch_only = true;
            break;
        case 'f':
            used |= OPT_FILE;
            cli.files[cli.n_files++] = optarg;
            break;
        case LONG_DRAIN_COMPAT:
            used |= OPT_DRAIN;
            break;
        case LONG_WAIT:
            used |= OPT_WAIT;
            cli.wait = true;
            break;
        case LONG_SOCKET:
            socket_path = optarg;
            break;
        case LONG_TIMEOUT:
            if (parse_timeout(optarg, &cli.timeout) < 0)
                goto usage_error;
            cli.timeout_given = true;
            break;
        case 'h':
            help = true;
            break;
        case ':':
            fprintf(stderr, "error: %s needs a value\n", argv[optind - 1]);
            goto usage_error;
        default:
            fprintf(stderr, "error: unknown option %s\n", argv[optind - 1]);
            goto usage_error;
        }
    }

    if (optind >= argc) {
        usage(help ? stdout : stderr);
        free(cli.files);
        vf_jsonpath_free(cli.jsonpath);
        return help ? VF_EXIT_OK : VF_EXIT_USAGE;
    }
    if (strcmp(argv[optind], "help") == 0) {
        cmd = optind + 1 < argc ? find_command(argv[optind + 1]) : NULL;
        if (cmd)
            command_usage(stdout, cmd);
        else
            usage(stdout);
        free(cli.files);
        vf_jsonpath_free(cli.jsonpath);
        return VF_EXIT_OK;
    }
    cmd = find_command(argv[optind]);
    if (!cmd) {
        fprintf(stderr, "error: unknown command \"%s\"; see virtfleet --help\n", argv[optind]);
        goto usage_error;
    }
    if (help) {
        command_usage(stdout, cmd);
        free(cli.files);
        vf_jsonpath_free(cli.jsonpath);
        return VF_EXIT_OK;
    }
    if (used & ~cmd->options) {
        static const char *const names[] = { "-o", "-l", "-w/--watch-only", "-f", "--wait",
                                             "--ignore-daemonsets/--delete-emptydir-data" };
        for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
            if (used & ~cmd->options & (1u << i))
                fprintf(stderr, "error: %s does not take %s\n", cmd->name, names[i]);
        fprintf(stderr, "Usage: virtfleet %s\n", cmd->synopsis);
        free(cli.files);
        vf_jsonpath_free(cli.jsonpath);
        return VF_EXIT_USAGE;
    }

    cli.client = vf_client_new(socket_path, cli.timeout);
    if (!cli.client) {
        fprintf(stderr, "error: cannot initialise libcurl\n");
        free(cli.files);
        vf_jsonpath_free(cli.jsonpath);
        return VF_EXIT_ERROR;
    }
    status = cmd->run(&cli, argc - optind - 1, argv + optind + 1);
    fflush(stdout);
    vf_kinds_cache_clear(&cli.kinds);
    vf_client_free(cli.client);
    free(cli.files);
    vf_jsonpath_free(cli.jsonpath);
    return status;

usage_error:
    fprintf(stderr, "See virtfleet --help.\n");
    free(cli.files);
    vf_jsonpath_free(cli.jsonpath);
    return VF_EXIT_USAGE;
}
