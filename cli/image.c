#include <config.h>
/* virtfleet image info|convert: offline work on local image files, with the
 * same parsers the images module uses (libvfimage); no daemon involved.
 * The command reads its own options (-O, --quota) because they mean nothing
 * to the rest of the CLI. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <json-c/json.h>
#include "commands.h"
#include "modules/images/formats/image_format.h"

static const char image_usage[] =
    "Usage: virtfleet image info [-o json] FILE\n"
    "       virtfleet image convert -O raw|qcow2 [--quota SIZE] SRC DST\n"
    "\n"
    "info     detect and validate a disk image (qcow2, vmdk, vdi, iso, raw; gzip or xz\n"
    "         around any of them) and print its format, virtual size, actual size,\n"
    "         compression, whether it is a CD-ROM, and the verdict.  Exit status 1\n"
    "         when the image is refused, with the reason.\n"
    "convert  validate SRC and write DST: raw (sparse) from any format, or qcow2 from\n"
    "         qcow2 (a validated copy).  DST appears only when the conversion succeeds.\n"
    "  -o, --output json     info as JSON\n"
    "  -O FORMAT             convert to raw or qcow2\n"
    "      --quota SIZE      write or unpack at most SIZE bytes (K, M, G, T suffixes,\n"
    "                        powers of 1024; default 1T)\n";

static int parse_size(const char *arg, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(arg, &end, 10);
    unsigned shift = 0;
    if (errno || end == arg || arg[0] == '-')
        return -1;
    switch (*end) {
    case 'K': case 'k': shift = 10; end++; break;
    case 'M': case 'm': shift = 20; end++; break;
    case 'G': case 'g': shift = 30; end++; break;
    case 'T': case 't': shift = 40; end++; break;
    default: break;
    }
    if (*end == 'i')
        end++;
    if (*end || v == 0 || v > (UINT64_MAX >> shift))
        return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

static void print_size(FILE *out, const char *label, uint64_t n)
{
    static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
    double v = (double)n;
    unsigned u = 0;
    while (v >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024;
        u++;
    }
    fprintf(out, "%-15s%llu", label, (unsigned long long)n);
    if (u)
        fprintf(out, " (%.1f %s)", v, units[u]);
    fputc('\n', out);
}

static int image_info(const char *path, bool json)
{
    struct vf_image_info info;
    struct vf_error err = { 0 };
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc;

    if (fd < 0) {
        fprintf(stderr, "error: %s: %s\n", path, strerror(errno));
        return VF_EXIT_ERROR;
    }
    rc = vf_image_inspect(fd, NULL, &info, &err);
    close(fd);
    if (json) {
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "file", json_object_new_string(path));
        json_object_object_add(o, "format", json_object_new_string(vf_image_format_name(info.format)));
        json_object_object_add(o, "subformat", json_object_new_string(info.subformat));
        json_object_object_add(o, "compression",
                               json_object_new_string(vf_image_compression_name(info.compression)));
        json_object_object_add(o, "virtualSize", json_object_new_int64((int64_t)info.virtual_size));
        json_object_object_add(o, "actualSize", json_object_new_int64((int64_t)info.actual_size));
        json_object_object_add(o, "unpackedSize", json_object_new_int64((int64_t)info.unpacked_size));
        json_object_object_add(o, "cdrom", json_object_new_boolean(info.cdrom));
        json_object_object_add(o, "valid", json_object_new_boolean(rc == 0));
        if (rc < 0) {
            json_object_object_add(o, "reason", json_object_new_string(err.reason));
            json_object_object_add(o, "field", json_object_new_string(err.field));
            json_object_object_add(o, "message", json_object_new_string(err.message));
        }
        printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                                         JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(o);
    } else {
        printf("%-15s%s\n", "file:", path);
        printf("%-15s%s%s%s%s\n", "format:", vf_image_format_name(info.format),
               *info.subformat ? " (" : "", info.subformat, *info.subformat ? ")" : "");
        printf("%-15s%s\n", "compression:", vf_image_compression_name(info.compression));
        print_size(stdout, "virtual size:", info.virtual_size);
        print_size(stdout, "actual size:", info.actual_size);
        if (info.compression != VF_IMAGE_COMPRESSION_NONE)
            print_size(stdout, "unpacked size:", info.unpacked_size);
        printf("%-15s%s\n", "cdrom:", info.cdrom ? "true" : "false");
        printf("%-15s%s\n", "verdict:", rc == 0 ? "valid" : "refused");
    }
    if (rc < 0) {
        fprintf(stderr, "error: %s: %s\n", path, err.message);
        return VF_EXIT_ERROR;
    }
    return VF_EXIT_OK;
}

static void show_progress(void *opaque, uint64_t done, uint64_t total)
{
    (void)opaque;
    if (total)
        fprintf(stderr, "\r%5.1f%% %llu/%llu MiB", 100.0 * (double)done / (double)total,
                (unsigned long long)(done >> 20), (unsigned long long)(total >> 20));
    else
        fprintf(stderr, "\r%llu MiB", (unsigned long long)(done >> 20));
}

static int image_convert(const char *src, const char *dst, enum vf_image_format format, uint64_t quota)
{
    struct vf_image_options opts = { .quota = quota };
    struct vf_image_info info;
    struct vf_error err = { 0 };
    char *tmp = NULL;
    int in, out, rc;

    in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        fprintf(stderr, "error: %s: %s\n", src, strerror(errno));
        return VF_EXIT_ERROR;
    }
    /* Written beside DST under a temporary name and renamed at the end, so a
     * failed conversion leaves nothing behind and DST is never half written. */
    if (asprintf(&tmp, "%s.XXXXXX", dst) < 0) {
        close(in);
        fprintf(stderr, "error: out of memory\n");
        return VF_EXIT_ERROR;
    }
    out = mkostemp(tmp, O_CLOEXEC);
    if (out < 0) {
        fprintf(stderr, "error: %s: %s\n", dst, strerror(errno));
        free(tmp);
        close(in);
        return VF_EXIT_ERROR;
    }
    if (isatty(STDERR_FILENO))
        opts.progress = show_progress;
    rc = vf_image_convert(in, out, format, &opts, &info, &err);
    if (opts.progress)
        fputc('\n', stderr);
    close(in);
    if (rc == 0 && fsync(out) < 0) {
        rc = -errno;
        snprintf(err.message, sizeof err.message, "%s: fsync: %s", dst, strerror(errno));
    }
    if (close(out) < 0 && rc == 0) {
        rc = -errno;
        snprintf(err.message, sizeof err.message, "%s: close: %s", dst, strerror(errno));
    }
    if (rc == 0 && rename(tmp, dst) < 0) {
        rc = -errno;
        snprintf(err.message, sizeof err.message, "%s: rename: %s", dst, strerror(errno));
    }
    if (rc < 0) {
        unlink(tmp);
        free(tmp);
        fprintf(stderr, "error: %s: %s\n", src, err.message);
        return VF_EXIT_ERROR;
    }
    free(tmp);
    return VF_EXIT_OK;
}

int vf_cmd_image(struct vf_cli *cli, int argc, char **args)
{
    enum { OPT_QUOTA = 256 };
    static const struct option longopts[] = {
        { "output", required_argument, NULL, 'o' },
        { "quota", required_argument, NULL, OPT_QUOTA },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    enum vf_image_format format = VF_IMAGE_FORMAT_UNKNOWN;
    bool json = cli && cli->output == VF_OUTPUT_JSON;
    const char *sub;
    uint64_t quota = 0;
    char **argv;
    int opt, n;

    if (argc < 1 || strcmp(args[0], "-h") == 0 || strcmp(args[0], "--help") == 0) {
        fputs(image_usage, argc < 1 ? stderr : stdout);
        return argc < 1 ? VF_EXIT_USAGE : VF_EXIT_OK;
    }
    sub = args[0];
    /* getopt wants a program name in argv[0]: the subcommand serves. */
    argv = args;
    optind = 0;     /* 0: glibc starts afresh (main may have run getopt) */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":o:O:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'o':
            if (strcmp(optarg, "json") != 0) {
                fprintf(stderr, "error: image info prints text or json, not \"%s\"\n", optarg);
                return VF_EXIT_USAGE;
            }
            json = true;
            break;
        case 'O':
            if (strcmp(optarg, "raw") == 0)
                format = VF_IMAGE_FORMAT_RAW;
            else if (strcmp(optarg, "qcow2") == 0)
                format = VF_IMAGE_FORMAT_QCOW2;
            else {
                fprintf(stderr, "error: -O wants raw or qcow2, not \"%s\"\n", optarg);
                return VF_EXIT_USAGE;
            }
            break;
        case OPT_QUOTA:
            if (parse_size(optarg, &quota) < 0) {
                fprintf(stderr, "error: --quota wants a size such as 64M or 20G, not \"%s\"\n", optarg);
                return VF_EXIT_USAGE;
            }
            break;
        case 'h':
            fputs(image_usage, stdout);
            return VF_EXIT_OK;
        case ':':
            fprintf(stderr, "error: %s needs a value\n", argv[optind - 1]);
            return VF_EXIT_USAGE;
        default:
            fprintf(stderr, "error: unknown option %s\n", argv[optind - 1]);
            return VF_EXIT_USAGE;
        }
    }
    n = argc - optind;
    if (strcmp(sub, "info") == 0) {
        if (n != 1 || format != VF_IMAGE_FORMAT_UNKNOWN || quota) {
            fputs(image_usage, stderr);
            return VF_EXIT_USAGE;
        }
        return image_info(argv[optind], json);
    }
    if (strcmp(sub, "convert") == 0) {
        if (n != 2 || format == VF_IMAGE_FORMAT_UNKNOWN || json) {
            fprintf(stderr, "error: image convert wants -O raw|qcow2, SRC and DST\n");
            fputs(image_usage, stderr);
            return VF_EXIT_USAGE;
        }
        return image_convert(argv[optind], argv[optind + 1], format, quota);
    }
    fprintf(stderr, "error: unknown image command \"%s\" (info or convert)\n", sub);
    return VF_EXIT_USAGE;
}
