/* The virtfleet commands.  main.c parses the command line into struct vf_cli
 * and calls one of these; each returns the process exit status. */
#ifndef VF_CLI_COMMANDS_H
#define VF_CLI_COMMANDS_H
#include <stdbool.h>
#include <stddef.h>
#include "client.h"
#include "kinds_cache.h"

struct vf_jsonpath;

/* Exit statuses scripts can rely on. */
enum {
    VF_EXIT_OK = 0,
    VF_EXIT_ERROR = 1,      /* the server refused, a file is wrong, an object is missing */
    VF_EXIT_USAGE = 2,      /* the command line is wrong */
    VF_EXIT_CONNECT = 3,    /* the daemon cannot be reached */
};

enum vf_output {
    VF_OUTPUT_TABLE,
    VF_OUTPUT_WIDE,
    VF_OUTPUT_NAME,
    VF_OUTPUT_JSON,
    VF_OUTPUT_YAML,
    VF_OUTPUT_JSONPATH,
};

struct vf_cli {
    struct vf_client *client;
    struct vf_kinds_cache kinds;
    enum vf_output output;
    struct vf_jsonpath *jsonpath;   /* -o jsonpath=..., parsed before any request */
    const char *selector;       /* -l */
    const char **files;         /* -f, in order */
    size_t n_files;
    bool watch, watch_only, wait;
    long timeout;               /* seconds; 0: none */
    bool timeout_given;         /* --timeout was on the command line (drain: else wait on) */
};

/* args: the words after the command name (options already removed). */
int vf_cmd_get(struct vf_cli *cli, int argc, char **args);
int vf_cmd_describe(struct vf_cli *cli, int argc, char **args);
int vf_cmd_create(struct vf_cli *cli, int argc, char **args);
int vf_cmd_apply(struct vf_cli *cli, int argc, char **args);
int vf_cmd_delete(struct vf_cli *cli, int argc, char **args);
int vf_cmd_modules(struct vf_cli *cli, int argc, char **args);
int vf_cmd_version(struct vf_cli *cli, int argc, char **args);
int vf_cmd_cordon(struct vf_cli *cli, int argc, char **args);
int vf_cmd_uncordon(struct vf_cli *cli, int argc, char **args);
/* image info|convert: offline, on local files; cli may be NULL (cli/image.c). */
int vf_cmd_image(struct vf_cli *cli, int argc, char **args);
/* upload cvi NAME FILE: send a file to an image's upload URL (cli/upload.c). */
int vf_cmd_upload(struct vf_cli *cli, int argc, char **args);
/* drain NODE: cordon, evict its VMs, follow them (cli/drain.c). */
int vf_cmd_drain(struct vf_cli *cli, int argc, char **args);
#endif
