#include <config.h>
/* libvfimage: detection, validation and conversion of disk images.
 *
 * Sample images are made at test time with qemu-img (and gzip, xz, xorriso),
 * which only generates inputs and reference outputs here: our parsers must
 * agree with `qemu-img info` on format and virtual size, and our raw output
 * must be byte-identical to `qemu-img convert -O raw`.  Hostile images are
 * made by patching those samples at known offsets; each must be refused with
 * the field and the words that say why. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "testlib.h"
#include "modules/images/formats/image_format.h"

static char *dir;          /* the samples, made once in main() */
static bool have_xorriso;

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    ck_assert_msg(rc == 0, "command failed (%d): %s", rc, cmd);
}

/* For main(), before the suite runs (no ck_assert outside tests). */
static void setup_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void setup_sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    if (system(cmd) != 0) {
        printf("Bail out! making samples failed: %s\n", cmd);
        exit(EXIT_FAILURE);
    }
}

static char *path_of(const char *name)
{
    static char buf[4][1024];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof buf[i], "%s/%s", dir, name);
    return buf[i];
}

static int open_sample(const char *name)
{
    int fd = open(path_of(name), O_RDONLY | O_CLOEXEC);
    ck_assert_msg(fd >= 0, "open %s: %s", name, strerror(errno));
    return fd;
}

/* Inspects a sample; returns vf_image_inspect's result. */
static int inspect(const char *name, struct vf_image_info *info, struct vf_error *err)
{
    int fd = open_sample(name);
    memset(err, 0, sizeof *err);
    int rc = vf_image_inspect(fd, NULL, info, err);
    close(fd);
    return rc;
}

/* A copy of a sample with bytes replaced at off. */
static const char *patched(const char *from, const char *to, uint64_t off, const void *bytes, size_t n)
{
    sh("cp %s %s", path_of(from), path_of(to));
    int fd = open(path_of(to), O_WRONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pwrite(fd, bytes, n, (off_t)off), (ssize_t)n);
    close(fd);
    return to;
}

static void be32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }
static void be64(uint8_t *p, uint64_t v) { be32(p, (uint32_t)(v >> 32)); be32(p + 4, (uint32_t)v); }
static void le32(uint8_t *p, uint32_t v) { p[0] = v; p[1] = v >> 8; p[2] = v >> 16; p[3] = v >> 24; }

static void assert_refused(const char *name, const char *field, const char *words)
{
    struct vf_image_info info;
    struct vf_error err;
    int rc = inspect(name, &info, &err);
    ck_assert_msg(rc < 0, "%s: accepted, expected refusal (%s)", name, words);
    ck_assert(!info.valid);
    ck_assert_msg(strcmp(err.field, field) == 0, "%s: field \"%s\", expected \"%s\" (%s)", name,
                  err.field, field, err.message);
    ck_assert_msg(strstr(err.message, words) != NULL, "%s: message \"%s\" lacks \"%s\"", name,
                  err.message, words);
}

/* qemu-img's view of a sample: its virtual size. */
static uint64_t qemu_virtual_size(const char *name, const char *fmt)
{
    char cmd[1200];
    unsigned long long v = 0;
    snprintf(cmd, sizeof cmd, "qemu-img info -f %s --output json %s | "
             "sed -n 's/.*\"virtual-size\": *\\([0-9]*\\).*/\\1/p'", fmt, path_of(name));
    FILE *p = popen(cmd, "r");
    ck_assert(p != NULL);
    ck_assert_int_eq(fscanf(p, "%llu", &v), 1);
    pclose(p);
    return v;
}

/* qemu-img writes streamOptimized images with the grain directory offset in
 * the header; VMware writes GD_AT_END there and puts the real header in a
 * footer.  This turns the first kind into the second. */
static void make_footer_vmdk(const char *from, const char *to)
{
    uint8_t hdr[512], tail[1536];
    struct stat st;
    sh("cp %s %s", path_of(from), path_of(to));
    int fd = open(path_of(to), O_RDWR);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(fstat(fd, &st), 0);
    ck_assert_int_eq(st.st_size % 512, 0);
    ck_assert_int_eq(pread(fd, hdr, 512, 0), 512);
    memset(tail, 0, sizeof tail);
    tail[0] = 1;                    /* marker: val 1, size 0, type 3 (footer) */
    tail[12] = 3;
    memcpy(tail + 512, hdr, 512);   /* the footer: the header with the real GD offset */
    ck_assert_int_eq(pwrite(fd, tail, sizeof tail, st.st_size), (ssize_t)sizeof tail);
    memset(hdr + 56, 0xff, 8);      /* header: GD_AT_END */
    ck_assert_int_eq(pwrite(fd, hdr + 56, 8, 56), 8);
    close(fd);
}

/* ---- detection and validation of good images ----------------------------- */

static const struct {
    const char *name, *qemu_fmt, *format, *subformat, *compression;
} good[] = {
    { "raw.img", "raw", "raw", "", "none" },
    { "v2.qcow2", "qcow2", "qcow2", "v2", "none" },
    { "v3.qcow2", "qcow2", "qcow2", "v3", "none" },
    { "c512.qcow2", "qcow2", "qcow2", "v3", "none" },
    { "c2m.qcow2", "qcow2", "qcow2", "v3", "none" },
    { "zlib.qcow2", "qcow2", "qcow2", "v3", "none" },
    { "zstd.qcow2", "qcow2", "qcow2", "v3", "none" },
    { "extl2.qcow2", "qcow2", "qcow2", "v3", "none" },
    { "sparse.vmdk", "vmdk", "vmdk", "monolithicSparse", "none" },
    { "stream.vmdk", "vmdk", "vmdk", "streamOptimized", "none" },
    { "dynamic.vdi", "vdi", "vdi", "dynamic", "none" },
    { "fixed.vdi", "vdi", "vdi", "fixed", "none" },
    { "pvd.iso", "raw", "iso", "iso9660", "none" },
};

START_TEST(test_good_images)
{
    struct vf_image_info info;
    struct vf_error err;
    const char *name = good[_i].name;
    int rc = inspect(name, &info, &err);
    ck_assert_msg(rc == 0, "%s refused: %s", name, err.message);
    ck_assert(info.valid);
    ck_assert_str_eq(vf_image_format_name(info.format), good[_i].format);
    ck_assert_str_eq(info.subformat, good[_i].subformat);
    ck_assert_str_eq(vf_image_compression_name(info.compression), good[_i].compression);
    ck_assert_uint_eq(info.virtual_size, qemu_virtual_size(name, good[_i].qemu_fmt));
    ck_assert(info.cdrom == (strcmp(good[_i].format, "iso") == 0));
}
END_TEST

START_TEST(test_xorriso_iso)
{
    struct vf_image_info info;
    struct vf_error err;
    if (!have_xorriso)
        return;
    ck_assert_int_eq(inspect("xorriso.iso", &info, &err), 0);
    ck_assert_str_eq(vf_image_format_name(info.format), "iso");
    ck_assert(info.cdrom);
    ck_assert_uint_eq(info.virtual_size, info.actual_size);
}
END_TEST

static const char *const wrapped[] = { "v3.qcow2", "stream.vmdk", "dynamic.vdi", "raw.img", "pvd.iso" };

START_TEST(test_compressed)
{
    struct vf_image_info plain, info;
    struct vf_error err;
    const char *kinds[] = { "gz", "xz" };
    for (int k = 0; k < 2; k++) {
        char name[64];
        snprintf(name, sizeof name, "%s.%s", wrapped[_i], kinds[k]);
        ck_assert_int_eq(inspect(wrapped[_i], &plain, &err), 0);
        ck_assert_msg(inspect(name, &info, &err) == 0, "%s: %s", name, err.message);
        ck_assert_str_eq(vf_image_compression_name(info.compression), k ? "xz" : "gzip");
        ck_assert_int_eq(info.format, plain.format);
        ck_assert_uint_eq(info.virtual_size, plain.virtual_size);
        ck_assert_uint_eq(info.unpacked_size, plain.actual_size);
        ck_assert_uint_lt(info.actual_size, info.unpacked_size);
        ck_assert(info.cdrom == plain.cdrom);
    }
}
END_TEST

/* ---- refusals ------------------------------------------------------------- */

START_TEST(test_refuse_references)
{
    assert_refused("backing.qcow2", "qcow2.backing_file_offset", "backing file");
    assert_refused("datafile.qcow2", "qcow2.incompatible_features", "external data file");
    assert_refused("luks.qcow2", "qcow2.crypt_method", "encrypted");
    assert_refused("flat.vmdk", "vmdk.descriptor", "other files");
}
END_TEST

START_TEST(test_refuse_corrupt_qcow2)
{
    uint8_t b[8];
    struct stat st;
    ck_assert_int_eq(stat(path_of("v3.qcow2"), &st), 0);
    be64(b, ((uint64_t)st.st_size + 65536) & ~65535ULL);
    assert_refused(patched("v3.qcow2", "l1eof.qcow2", 40, b, 8), "qcow2.l1_table_offset",
                   "past the end of the file");
    be64(b, 65536 + 8);
    assert_refused(patched("v3.qcow2", "l1unaligned.qcow2", 40, b, 8), "qcow2.l1_table_offset",
                   "multiple of the cluster size");
    be32(b, 30);
    assert_refused(patched("v3.qcow2", "cb30.qcow2", 20, b, 4), "qcow2.cluster_bits",
                   "cluster_bits 30 at offset 20");
    be64(b, 1ULL << 5);
    assert_refused(patched("v3.qcow2", "incompat.qcow2", 72, b, 8), "qcow2.incompatible_features",
                   "unknown incompatible feature bits 0x20");
    be32(b, 4);
    assert_refused(patched("v3.qcow2", "v4.qcow2", 4, b, 4), "qcow2.version", "version 4");
    be32(b, 100);
    assert_refused(patched("v3.qcow2", "hlen.qcow2", 100, b, 4), "qcow2.header_length",
                   "header_length 100");
    be32(b, 0x01000000);
    assert_refused(patched("v3.qcow2", "l1huge.qcow2", 36, b, 4), "qcow2.l1_size", "limit");
    be32(b, 1);     /* 512-byte clusters: 64 MiB needs 2048 L1 entries */
    assert_refused(patched("c512.qcow2", "l1small.qcow2", 36, b, 4), "qcow2.l1_size", "too small");
    be64(b, 1ULL << 50);
    assert_refused(patched("v3.qcow2", "huge.qcow2", 24, b, 8), "qcow2.size", "limit");
    /* A data-file header extension without the incompatible bit. */
    uint8_t ext[16] = { 0x44, 0x41, 0x54, 0x41, 0, 0, 0, 8, '/', 'e', 't', 'c', '/', 'p', 'w', 0 };
    assert_refused(patched("v3.qcow2", "extdata.qcow2", 112, ext, sizeof ext), "qcow2.header_extensions",
                   "external data file");
    /* Truncated: the tables are gone. */
    sh("head -c 70000 %s > %s", path_of("v3.qcow2"), path_of("short.qcow2"));
    assert_refused("short.qcow2", "qcow2.l1_table_offset", "past the end of the file");
    /* Raw data behind a qcow2 magic is refused, not taken for raw. */
    sh("(printf 'QFI\\373'; head -c 4092 /dev/zero) > %s", path_of("disguised.qcow2"));
    assert_refused("disguised.qcow2", "qcow2.version", "version 0");
}
END_TEST

START_TEST(test_refuse_empty)
{
    sh(": > %s && gzip -c < %s > %s", path_of("empty.img"), path_of("empty.img"), path_of("empty.gz"));
    assert_refused("empty.img", "size", "empty");
    assert_refused("empty.gz", "size", "empty");
}
END_TEST

START_TEST(test_refuse_two_formats)
{
    assert_refused(patched("v3.qcow2", "qcow2iso.img", 0x8001, "CD001", 5), "magic", "two formats");
}
END_TEST

START_TEST(test_refuse_corrupt_vmdk)
{
    /* The descriptor of a monolithicSparse image made by qemu-img starts at sector 1. */
    char desc[1024];
    int fd = open_sample("sparse.vmdk");
    ck_assert_int_eq(pread(fd, desc, sizeof desc - 1, 512), (ssize_t)sizeof desc - 1);
    close(fd);
    desc[sizeof desc - 1] = '\0';
    char *sparse = strstr(desc, " SPARSE ");
    ck_assert(sparse != NULL);
    assert_refused(patched("sparse.vmdk", "flatline.vmdk", 512 + (uint64_t)(sparse - desc), " FLAT   ", 8),
                   "vmdk.descriptor", "a FLAT extent names a separate file");
    char *cid = strstr(desc, "parentCID=ffffffff");
    ck_assert(cid != NULL);
    assert_refused(patched("sparse.vmdk", "parent.vmdk", 512 + (uint64_t)(cid - desc), "parentCID=12345678", 18),
                   "vmdk.descriptor.parentCID", "parent");
    uint8_t b[8] = { 3, 0, 0, 0, 0, 0, 0, 0 };        /* grainSize 3 sectors */
    assert_refused(patched("sparse.vmdk", "grain3.vmdk", 20, b, 8), "vmdk.grainSize", "power of two");
    le32(b, 1000);
    assert_refused(patched("sparse.vmdk", "gtes.vmdk", 44, b, 4), "vmdk.numGTEsPerGT", "512");
    /* streamOptimized with its grain directory in a footer, as VMware writes
     * it: valid; converted like the original; refused once the footer
     * disagrees with the header or a marker is damaged. */
    struct stat st;
    struct vf_image_info info;
    struct vf_error err;
    make_footer_vmdk("stream.vmdk", "footer.vmdk");
    ck_assert_msg(inspect("footer.vmdk", &info, &err) == 0, "%s", err.message);
    ck_assert_str_eq(info.subformat, "streamOptimized");
    ck_assert_int_eq(stat(path_of("footer.vmdk"), &st), 0);
    le32(b, 4096);
    assert_refused(patched("footer.vmdk", "footer2.vmdk", (uint64_t)st.st_size - 1024 + 20, b, 4),
                   "vmdk.footer", "disagrees");
    le32(b, 7);
    assert_refused(patched("footer.vmdk", "footer3.vmdk", (uint64_t)st.st_size - 1536 + 12, b, 4),
                   "vmdk.footer", "no footer marker");
    le32(b, 0xffffffff);
    assert_refused(patched("footer.vmdk", "footer4.vmdk", (uint64_t)st.st_size - 1024 + 56, b, 4),
                   "vmdk.gdOffset", "outside the file");
}
END_TEST

START_TEST(test_vmdk_footer_convert)
{
    struct vf_error err;
    struct vf_image_options opts = { .scratch_dir = NULL };
    make_footer_vmdk("stream.vmdk", "footer.vmdk");
    int in = open_sample("footer.vmdk");
    int o = open(path_of("footer.raw"), O_RDWR | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(o, 0);
    ck_assert_msg(vf_image_convert(in, o, VF_IMAGE_FORMAT_RAW, &opts, NULL, &err) == 0, "%s", err.message);
    close(in);
    close(o);
    sh("cmp %s %s", path_of("footer.raw"), path_of("raw.img"));
}
END_TEST

START_TEST(test_refuse_corrupt_vdi)
{
    uint8_t b[16];
    le32(b, 2u << 20);
    assert_refused(patched("dynamic.vdi", "bs2m.vdi", 0x178, b, 4), "vdi.block_size",
                   "block size 2097152 at offset 0x178");
    le32(b, 4);
    assert_refused(patched("dynamic.vdi", "diff.vdi", 0x4c, b, 4), "vdi.image_type", "differencing");
    memset(b, 0x11, 16);
    assert_refused(patched("dynamic.vdi", "parent.vdi", 0x1b8, b, 16), "vdi.uuid_parent", "parent");
    le32(b, 0x00010000);
    assert_refused(patched("dynamic.vdi", "v10.vdi", 0x44, b, 4), "vdi.version", "1.0");
    /* The first block map entry made to point past the 64 blocks. */
    le32(b, 100000);
    int fd = open_sample("dynamic.vdi");
    uint8_t h[4];
    ck_assert_int_eq(pread(fd, h, 4, 0x154), 4);
    close(fd);
    uint32_t bmap = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
    assert_refused(patched("dynamic.vdi", "bmap.vdi", bmap, b, 4), "vdi.bmap", "not below");
}
END_TEST

START_TEST(test_refuse_iso)
{
    uint8_t b[4] = { 0xff, 0xff, 0, 0 };      /* volume far larger than the file */
    assert_refused(patched("pvd.iso", "bigvol.iso", 0x8000 + 80, b, 4), "iso.pvd.volume_space_size",
                   "disagrees");
    uint8_t both[8] = { 0, 0, 1, 0, 0, 1, 0, 0 };   /* 65536 blocks, both byte orders */
    assert_refused(patched("pvd.iso", "trunc.iso", 0x8000 + 80, both, 8), "iso.pvd.volume_space_size",
                   "truncated");
}
END_TEST

START_TEST(test_refuse_compressed)
{
    /* Corrupt xz, truncated gzip, nested compression. */
    sh("head -c 100000 %s > %s", path_of("raw.img.gz"), path_of("trunc.gz"));
    assert_refused("trunc.gz", "compression", "truncated");
    sh("gzip -c %s > %s", path_of("raw.img.xz"), path_of("nested.xz.gz"));
    assert_refused("nested.xz.gz", "compression", "nested compression");
    uint8_t junk[16];
    memset(junk, 0x5a, sizeof junk);
    assert_refused(patched("raw.img.xz", "corrupt.xz", 4096, junk, sizeof junk), "compression", "xz:");
    assert_refused(patched("v3.qcow2.xz", "corrupt2.xz", 64, junk, sizeof junk), "compression", "xz:");
}
END_TEST

/* ---- conversion ------------------------------------------------------------- */

static int convert_to(const char *name, const char *out, enum vf_image_format fmt, uint64_t quota,
                      struct vf_error *err)
{
    struct vf_image_options opts = { .quota = quota, .scratch_dir = dir };
    struct vf_image_info info;
    int in = open_sample(name);
    int o = open(path_of(out), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ck_assert_int_ge(o, 0);
    memset(err, 0, sizeof *err);
    int rc = vf_image_convert(in, o, fmt, &opts, &info, err);
    close(in);
    close(o);
    return rc;
}

static const struct { const char *name, *qemu_fmt; } convertible[] = {
    { "raw.img", "raw" }, { "v2.qcow2", "qcow2" }, { "v3.qcow2", "qcow2" }, { "c512.qcow2", "qcow2" },
    { "c2m.qcow2", "qcow2" }, { "zlib.qcow2", "qcow2" }, { "zstd.qcow2", "qcow2" }, { "extl2.qcow2", "qcow2" },
    { "sparse.vmdk", "vmdk" }, { "stream.vmdk", "vmdk" }, { "dynamic.vdi", "vdi" },
    { "fixed.vdi", "vdi" }, { "pvd.iso", "raw" },
    { "v3.qcow2.xz", "" }, { "stream.vmdk.gz", "" }, { "dynamic.vdi.xz", "" }, { "raw.img.gz", "" },
    { "raw.img.xz", "" },
};

START_TEST(test_convert_raw)
{
    const char *name = convertible[_i].name;
    struct vf_error err;
    struct stat st;
    char ref[128];
    int rc = convert_to(name, "out.raw", VF_IMAGE_FORMAT_RAW, 0, &err);
    ck_assert_msg(rc == 0, "%s: %s", name, err.message);
    if (*convertible[_i].qemu_fmt) {
        snprintf(ref, sizeof ref, "%s.ref", name);
        sh("qemu-img convert -f %s -O raw %s %s", convertible[_i].qemu_fmt, path_of(name), path_of(ref));
    } else {
        /* Compressed samples: the reference is the uncompressed sample's raw form. */
        snprintf(ref, sizeof ref, "%s", "raw.img");
    }
    sh("cmp %s %s", path_of("out.raw"), path_of(ref));
    ck_assert_int_eq(stat(path_of("out.raw"), &st), 0);
    /* 64 MiB with ~2 MiB of data: holes where the zeros were. */
    if (st.st_size > (16 << 20))
        ck_assert_msg((uint64_t)st.st_blocks * 512 < (uint64_t)st.st_size / 4,
                      "%s: output not sparse (%lld blocks)", name, (long long)st.st_blocks);
}
END_TEST

START_TEST(test_convert_qcow2_copy)
{
    struct vf_error err;
    ck_assert_int_eq(convert_to("v3.qcow2", "copy.qcow2", VF_IMAGE_FORMAT_QCOW2, 0, &err), 0);
    sh("cmp %s %s", path_of("v3.qcow2"), path_of("copy.qcow2"));
    ck_assert_int_eq(convert_to("v3.qcow2.gz", "copy2.qcow2", VF_IMAGE_FORMAT_QCOW2, 0, &err), 0);
    sh("cmp %s %s", path_of("v3.qcow2"), path_of("copy2.qcow2"));
    /* vmdk is stored as raw, never as qcow2 */
    ck_assert_int_lt(convert_to("sparse.vmdk", "no.qcow2", VF_IMAGE_FORMAT_QCOW2, 0, &err), 0);
    ck_assert(strstr(err.message, "stored as raw") != NULL);
}
END_TEST

START_TEST(test_convert_refusals)
{
    struct vf_error err;
    struct stat st;
    ck_assert_int_lt(convert_to("backing.qcow2", "r1.raw", VF_IMAGE_FORMAT_RAW, 0, &err), 0);
    ck_assert_str_eq(err.field, "qcow2.backing_file_offset");
    ck_assert_int_eq(stat(path_of("r1.raw"), &st), 0);
    ck_assert_int_eq(st.st_size, 0);
    /* virtual size above the quota: refused before writing */
    ck_assert_int_lt(convert_to("v3.qcow2", "r3.raw", VF_IMAGE_FORMAT_RAW, 1 << 20, &err), 0);
    ck_assert_str_eq(err.reason, "TooLarge");
    ck_assert_int_eq(stat(path_of("r3.raw"), &st), 0);
    ck_assert_int_eq(st.st_size, 0);
}
END_TEST

/* ---- growing input: converting while the file is still being written ------- */

struct trickle {
    int src, dst;                  /* copy src into dst 64 KiB at a time */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool finished;
    unsigned waits;                /* times the converter had to wait */
};

static void *trickle_run(void *opaque)
{
    struct trickle *t = opaque;
    char buf[64 << 10];
    ssize_t n;
    while ((n = read(t->src, buf, sizeof buf)) > 0) {
        ck_assert_int_eq(write(t->dst, buf, (size_t)n), n);
        pthread_mutex_lock(&t->lock);
        pthread_cond_broadcast(&t->cond);
        pthread_mutex_unlock(&t->lock);
        usleep(2000);
    }
    pthread_mutex_lock(&t->lock);
    t->finished = true;
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

static int trickle_await(void *opaque, uint64_t size, struct vf_error *err)
{
    struct trickle *t = opaque;
    struct stat st;
    (void)err;
    pthread_mutex_lock(&t->lock);
    t->waits++;
    while (!t->finished && fstat(t->dst, &st) == 0 && (uint64_t)st.st_size <= size)
        pthread_cond_wait(&t->cond, &t->lock);
    bool finished = t->finished;
    pthread_mutex_unlock(&t->lock);
    return finished ? 0 : 1;
}

/* Compressed input is decoded as it arrives and gives what the finished file
 * gives; a plain image is waited for whole. */
START_TEST(test_convert_growing_input)
{
    static const char *const names[] = {"raw.img.xz", "raw.img.gz", "stream.vmdk.gz", "v3.qcow2"};
    const char *name = names[_i];
    struct trickle t = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    t.src = open_sample(name);
    t.dst = open(path_of("growing.in"), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int out = open(path_of("growing.out"), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ck_assert_int_ge(t.dst, 0);
    ck_assert_int_ge(out, 0);
    pthread_t thread;
    ck_assert_int_eq(pthread_create(&thread, NULL, trickle_run, &t), 0);
    struct vf_image_options opts = {.await_input = trickle_await, .opaque = &t};
    struct vf_image_info info;
    struct vf_error err = {0};
    int rc = vf_image_convert(t.dst, out, VF_IMAGE_FORMAT_RAW, &opts, &info, &err);
    pthread_join(thread, NULL);
    ck_assert_msg(rc == 0, "%s: %s", name, err.message);
    struct stat st;
    ck_assert_int_eq(fstat(t.dst, &st), 0);
    ck_assert_uint_eq(info.actual_size, (uint64_t)st.st_size);
    ck_assert_msg(t.waits > 0, "%s: the converter never waited for the writer", name);
    close(t.src);
    close(t.dst);
    close(out);
    char ref[128];
    snprintf(ref, sizeof ref, "growing.ref");
    ck_assert_int_eq(convert_to(name, ref, VF_IMAGE_FORMAT_RAW, 0, &err), 0);
    sh("cmp %s %s", path_of("growing.out"), path_of(ref));
}
END_TEST

START_TEST(test_bomb)
{
    struct vf_error err;
    struct stat st;
    const char *bombs[] = { "bomb.xz", "bomb.gz" };
    for (int i = 0; i < 2; i++) {
        int rc = convert_to(bombs[i], "bomb.raw", VF_IMAGE_FORMAT_RAW, 64 << 20, &err);
        ck_assert_int_eq(rc, -EFBIG);
        ck_assert_str_eq(err.reason, "TooLarge");
        ck_assert_msg(strstr(err.message, "decompression bomb") || strstr(err.message, "quota"),
                      "%s", err.message);
        ck_assert_int_eq(stat(path_of("bomb.raw"), &st), 0);
        ck_assert_int_eq(st.st_size, 0);
        /* inspection is bounded the same way */
        struct vf_image_options opts = { .quota = 64 << 20 };
        struct vf_image_info info;
        int fd = open_sample(bombs[i]);
        ck_assert_int_eq(vf_image_inspect(fd, &opts, &info, &err), -EFBIG);
        close(fd);
    }
}
END_TEST

/* memfd input and output, as the fuzz target and the daemon's uploads use them */
START_TEST(test_memfd)
{
    struct vf_image_info info;
    struct vf_error err = { 0 };
    int in = memfd_create("in", MFD_CLOEXEC), out = memfd_create("out", MFD_CLOEXEC);
    static uint8_t buf[1 << 16];
    int fd = open_sample("v2.qcow2");
    ssize_t n;
    off_t off = 0;
    while ((n = pread(fd, buf, sizeof buf, off)) > 0) {
        ck_assert_int_eq(write(in, buf, (size_t)n), n);
        off += n;
    }
    close(fd);
    ck_assert_int_eq(vf_image_convert(in, out, VF_IMAGE_FORMAT_RAW, NULL, &info, &err), 0);
    ck_assert_int_eq(lseek(out, 0, SEEK_END), 64 << 20);
    ck_assert(info.valid);
    close(in);
    close(out);
}
END_TEST

static Suite *image_suite(void)
{
    Suite *s = suite_create("image_formats");
    TCase *tc;

    tc = tcase_create("detect_and_validate");
    tcase_add_loop_test(tc, test_good_images, 0, sizeof good / sizeof good[0]);
    tcase_add_test(tc, test_xorriso_iso);
    tcase_add_loop_test(tc, test_compressed, 0, sizeof wrapped / sizeof wrapped[0]);
    suite_add_tcase(s, tc);

    tc = tcase_create("refuse");
    tcase_add_test(tc, test_refuse_references);
    tcase_add_test(tc, test_refuse_corrupt_qcow2);
    tcase_add_test(tc, test_refuse_two_formats);
    tcase_add_test(tc, test_refuse_empty);
    tcase_add_test(tc, test_refuse_corrupt_vmdk);
    tcase_add_test(tc, test_refuse_corrupt_vdi);
    tcase_add_test(tc, test_refuse_iso);
    tcase_add_test(tc, test_refuse_compressed);
    suite_add_tcase(s, tc);

    tc = tcase_create("convert");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_convert_raw, 0, sizeof convertible / sizeof convertible[0]);
    tcase_add_test(tc, test_convert_qcow2_copy);
    tcase_add_test(tc, test_vmdk_footer_convert);
    tcase_add_test(tc, test_convert_refusals);
    tcase_add_test(tc, test_memfd);
    suite_add_tcase(s, tc);

    tc = tcase_create("bomb");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_bomb);
    suite_add_tcase(s, tc);

    tc = tcase_create("growing_input");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_convert_growing_input, 0, 4);
    suite_add_tcase(s, tc);
    return s;
}

/* A hand-built ISO 9660 image: system area, a primary volume descriptor at
 * sector 16 and a terminator, 64 sectors of 2048 bytes. */
static void make_pvd_iso(const char *path)
{
    static uint8_t img[64 * 2048];
    uint8_t *d = img + 16 * 2048;
    memset(img, 0, sizeof img);
    d[0] = 1;
    memcpy(d + 1, "CD001", 5);
    d[6] = 1;
    memcpy(d + 40, "VIRTFLEET_TEST", 14);
    le32(d + 80, 64);
    be32(d + 84, 64);
    d[128] = 0x00; d[129] = 0x08; d[130] = 0x08; d[131] = 0x00;   /* 2048, both byte orders */
    d += 2048;
    d[0] = 255;
    memcpy(d + 1, "CD001", 5);
    d[6] = 1;
    memcpy(img + 40 * 2048, "some file content on the disc", 29);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(img, sizeof img, 1, f) != 1 || fclose(f) != 0) {
        printf("Bail out! cannot write %s\n", path);
        exit(EXIT_FAILURE);
    }
}

static void make_samples(void)
{
    const char *d = dir;
    /* 64 MiB: text (compressible) at 1 MiB, random data at 5 MiB, a tail at the end. */
    setup_sh("cd %s && qemu-img create -q -f raw raw.img 64M && "
       "yes 'virtfleet image test line' | head -c 1048576 | dd of=raw.img bs=1M seek=1 conv=notrunc status=none && "
       "head -c 1048576 /dev/urandom | dd of=raw.img bs=1M seek=5 conv=notrunc status=none && "
       "printf tail | dd of=raw.img bs=1 seek=67108800 conv=notrunc status=none", d);
    setup_sh("cd %s && qemu-img convert -O qcow2 -o compat=0.10 raw.img v2.qcow2 && "
       "qemu-img convert -O qcow2 -o compat=1.1 raw.img v3.qcow2 && "
       "qemu-img convert -O qcow2 -o cluster_size=512 raw.img c512.qcow2 && "
       "qemu-img convert -O qcow2 -o cluster_size=2M raw.img c2m.qcow2 && "
       "qemu-img convert -c -O qcow2 raw.img zlib.qcow2 && "
       "qemu-img convert -c -O qcow2 -o compression_type=zstd raw.img zstd.qcow2 && "
       "qemu-img convert -O qcow2 -o extended_l2=on raw.img extl2.qcow2 && "
       "qemu-img create -q -f qcow2 -b /etc/passwd -F raw backing.qcow2 && "
       "qemu-img create -q -f qcow2 -o data_file=%s/datafile.data datafile.qcow2 64M", d, d);
    /* qemu-img's PBKDF timing sometimes fails ("Unable to get accurate CPU
     * usage") on a busy machine: try again. */
    setup_sh("cd %s && for i in 1 2 3 4 5 6 7 8; do qemu-img create -q -f qcow2 --object secret,id=s0,data=pw "
             "-o encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=50 luks.qcow2 64M "
             "2>/dev/null && break; done && test -s luks.qcow2", d);
    setup_sh("cd %s && qemu-img convert -O vmdk raw.img sparse.vmdk && "
       "qemu-img convert -O vmdk -o subformat=streamOptimized raw.img stream.vmdk && "
       "qemu-img convert -O vmdk -o subformat=monolithicFlat raw.img flat.vmdk && "
       "qemu-img convert -O vdi raw.img dynamic.vdi && "
       "qemu-img convert -O vdi -o static=on raw.img fixed.vdi", d);
    make_pvd_iso(path_of("pvd.iso"));
    for (size_t i = 0; i < sizeof wrapped / sizeof wrapped[0]; i++)
        setup_sh("cd %s && gzip -c %s > %s.gz && xz -T2 -c %s > %s.xz", d, wrapped[i], wrapped[i],
           wrapped[i], wrapped[i]);
    /* 1 GiB of zeros: ~150 KiB as xz, ~1 MiB as gzip. */
    setup_sh("cd %s && head -c 1073741824 /dev/zero | xz -T2 -1 > bomb.xz && "
       "head -c 1073741824 /dev/zero | gzip -1 > bomb.gz", d);
    have_xorriso = system("command -v xorriso >/dev/null 2>&1") == 0;
    if (have_xorriso)
        setup_sh("cd %s && xorriso -as mkisofs -quiet -o xorriso.iso raw.img.gz 2>/dev/null", d);
}

int main(void)
{
    int status;
    if (system("command -v qemu-img >/dev/null && command -v xz >/dev/null && "
               "command -v gzip >/dev/null") != 0) {
        printf("1..0 # SKIP qemu-img, xz or gzip not installed (scripts/install-deps.sh)\n");
        return 0;
    }
    const char *tmp = getenv("TMPDIR");
    if (asprintf(&dir, "%s/vfimage.XXXXXX", tmp && *tmp ? tmp : "/tmp") < 0 || !mkdtemp(dir)) {
        printf("Bail out! cannot make a temporary directory\n");
        return EXIT_FAILURE;
    }
    make_samples();
    status = vf_test_run(image_suite());
    vf_test_rmtree(dir);
    free(dir);
    return status;
}
