#include <config.h>
/* VMDK hosted sparse extents (VMware's "Virtual Disk Format 1.1"), the two
 * single-file kinds only: monolithicSparse and streamOptimized.
 *
 * The embedded descriptor is parsed (bounded) and must name exactly one
 * SPARSE extent, which is the file itself, and no parent (parentCID
 * ffffffff, no parentFileNameHint).  Anything that would make a reader open
 * another file (FLAT, VMFS or further extents, split or delta disks, a text
 * descriptor with no data) is refused.  streamOptimized images keep their
 * grain directory in a footer: its marker, header copy and end-of-stream
 * marker must all be consistent with the header at the start. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "formats_internal.h"

#define SECTOR 512ULL
#define GD_AT_END 0xffffffffffffffffULL
#define FLAG_NL_TEST (1u << 0)
#define FLAG_COMPRESSED (1u << 16)
#define FLAG_MARKERS (1u << 17)
#define MAX_DESCRIPTOR (1u << 20)
#define MIN_GRAIN_SECTORS 1ULL
#define MAX_GRAIN_SECTORS 2048ULL        /* 1 MiB; QEMU allows up to 1 GiB, VMware writes 64 KiB */
#define GTES_PER_GT 512u
#define MAX_GD_BYTES (64u << 20)

struct vmdk {
    uint32_t version, flags;
    uint64_t capacity, grain, desc_off, desc_size, gd_off;
    uint16_t compress;
    uint64_t gd_entries;
    bool stream;
};

static bool inside(uint64_t off, uint64_t len, uint64_t file_size)
{
    return off <= file_size && len <= file_size - off;
}

static void parse_header(const uint8_t *h, struct vmdk *v)
{
    v->version = vf_le32(h + 4);
    v->flags = vf_le32(h + 8);
    v->capacity = vf_le64(h + 12);
    v->grain = vf_le64(h + 20);
    v->desc_off = vf_le64(h + 28);
    v->desc_size = vf_le64(h + 36);
    v->gd_off = vf_le64(h + 56);
    v->compress = vf_le16(h + 77);
}

/* One descriptor line, NUL-terminated and trimmed; returns 0 or refuses. */
static int descriptor_line(char *line, unsigned lineno, struct vmdk *v, unsigned *extents,
                           char *create_type, size_t ct_size, struct vf_error *err)
{
    char *p = line, *eq;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '#' || *p == '\0')
        return 0;
    if (strncmp(p, "RW ", 3) == 0 || strncmp(p, "RDONLY ", 7) == 0 || strncmp(p, "NOACCESS ", 9) == 0) {
        char type[16] = "";
        unsigned long long sectors = 0;
        if (sscanf(p + (p[1] == 'W' ? 3 : p[1] == 'D' ? 7 : 9), "%llu %15s", &sectors, type) != 2)
            return vf_img_invalid(err, "vmdk.descriptor", "vmdk: descriptor line %u: malformed "
                                  "extent line", lineno);
        if (strcmp(type, "SPARSE") != 0)
            return vf_img_refused(err, "vmdk.descriptor", "vmdk: descriptor line %u: a %s extent "
                                  "names a separate file; only single-file sparse images are "
                                  "accepted", lineno, type);
        if (++*extents > 1)
            return vf_img_refused(err, "vmdk.descriptor", "vmdk: descriptor line %u: a second "
                                  "extent names another file; only single-file images are accepted",
                                  lineno);
        if (sectors != v->capacity)
            return vf_img_invalid(err, "vmdk.descriptor", "vmdk: descriptor line %u: the extent has "
                                  "%llu sectors, the header says %llu", lineno, sectors,
                                  (unsigned long long)v->capacity);
        return 0;
    }
    eq = strchr(p, '=');
    if (!eq)
        return 0;        /* section headers and blank-ish lines */
    *eq = '\0';
    for (char *e = eq - 1; e >= p && (*e == ' ' || *e == '\t'); e--)
        *e = '\0';
    char *val = eq + 1;
    while (*val == ' ' || *val == '\t' || *val == '"')
        val++;
    size_t n = strlen(val);
    while (n && (val[n - 1] == '"' || val[n - 1] == ' ' || val[n - 1] == '\t'))
        val[--n] = '\0';
    if (strcmp(p, "createType") == 0) {
        snprintf(create_type, ct_size, "%s", val);
        if (strcmp(val, "monolithicSparse") != 0 && strcmp(val, "streamOptimized") != 0)
            return vf_img_refused(err, "vmdk.descriptor.createType", "vmdk: descriptor line %u: "
                                  "createType \"%s\" is not supported (monolithicSparse or "
                                  "streamOptimized only)", lineno, val);
    } else if (strcmp(p, "parentCID") == 0) {
        if (strcasecmp(val, "ffffffff") != 0)
            return vf_img_refused(err, "vmdk.descriptor.parentCID", "vmdk: descriptor line %u: "
                                  "parentCID %s: the image is a delta of a parent disk; images with "
                                  "parents are not supported", lineno, val);
    } else if (strcmp(p, "parentFileNameHint") == 0) {
        return vf_img_refused(err, "vmdk.descriptor.parentFileNameHint", "vmdk: descriptor line %u: "
                              "parentFileNameHint names a parent disk; images with parents are not "
                              "supported", lineno);
    }
    return 0;
}

/* Parses descriptor text (len bytes, may contain NULs as padding). */
static int check_descriptor(char *text, size_t len, struct vmdk *v, struct vf_error *err)
{
    char create_type[64] = "";
    unsigned extents = 0, lineno = 0;
    size_t i = 0;
    int rc;

    /* Padding after the text is NULs: the text ends at the first one. */
    len = strnlen(text, len);
    text[len] = '\0';
    if (strncmp(text, "# Disk DescriptorFile", 21) != 0)
        return vf_img_invalid(err, "vmdk.descriptor", "vmdk: the embedded descriptor does not "
                              "start with \"# Disk DescriptorFile\"");
    while (i < len) {
        char *line = text + i;
        char *nl = strchr(line, '\n');
        size_t l = nl ? (size_t)(nl - line) : strlen(line);
        line[l] = '\0';
        if (l && line[l - 1] == '\r')
            line[l - 1] = '\0';
        lineno++;
        for (char *c = line; *c; c++)
            if (!isprint((unsigned char)*c) && *c != '\t')
                return vf_img_invalid(err, "vmdk.descriptor", "vmdk: descriptor line %u holds a "
                                      "control character", lineno);
        if ((rc = descriptor_line(line, lineno, v, &extents, create_type, sizeof create_type, err)) < 0)
            return rc;
        i += l + 1;
    }
    if (!*create_type)
        return vf_img_invalid(err, "vmdk.descriptor.createType", "vmdk: the descriptor has no "
                              "createType");
    if (extents != 1)
        return vf_img_invalid(err, "vmdk.descriptor", "vmdk: the descriptor names no extent");
    if (v->stream != (strcmp(create_type, "streamOptimized") == 0))
        return vf_img_invalid(err, "vmdk.descriptor.createType", "vmdk: createType \"%s\" does not "
                              "match the header's flags 0x%x", create_type, v->flags);
    return 0;
}

/* Parses and validates everything but the grain tables. */
static int vmdk_parse(int fd, uint64_t file_size, struct vmdk *v, struct vf_error *err)
{
    uint8_t h[512];
    char *desc;
    uint64_t gt_cover;
    int rc;

    memset(v, 0, sizeof *v);
    if (file_size < SECTOR)
        return vf_img_invalid(err, "vmdk.header", "vmdk: the file has %llu bytes, fewer than a "
                              "header (512)", (unsigned long long)file_size);
    if ((rc = vf_img_pread(fd, h, sizeof h, 0, "vmdk header", err)) < 0)
        return rc;
    parse_header(h, v);
    if (v->version < 1 || v->version > 3)
        return vf_img_invalid(err, "vmdk.version", "vmdk: version %u at offset 4 is not supported "
                              "(1..3)", v->version);
    if ((v->flags & FLAG_NL_TEST) && memcmp(h + 73, "\n \r\n", 4) != 0)
        return vf_img_invalid(err, "vmdk.header", "vmdk: the newline check bytes at offset 73 are "
                              "damaged (was the file transferred in text mode?)");
    if (vf_le32(h + 44) != GTES_PER_GT)
        return vf_img_invalid(err, "vmdk.numGTEsPerGT", "vmdk: numGTEsPerGT %u at offset 44 is not "
                              "512", vf_le32(h + 44));
    v->stream = (v->flags & FLAG_COMPRESSED) != 0;
    if (v->stream) {
        if (v->compress != 1 || !(v->flags & FLAG_MARKERS))
            return vf_img_invalid(err, "vmdk.compressAlgorithm", "vmdk: compressed grains need "
                                  "compressAlgorithm 1 (deflate, at offset 77; found %u) and "
                                  "markers (flag bit 17)", v->compress);
    } else if (v->compress != 0 || (v->flags & FLAG_MARKERS)) {
        return vf_img_invalid(err, "vmdk.compressAlgorithm", "vmdk: compressAlgorithm %u at offset 77 "
                              "or markers without the compressed-grains flag", v->compress);
    }

    if (v->stream && v->gd_off == GD_AT_END) {
        /* The footer: marker (1 sector, type 3), a header copy, end-of-stream. */
        uint8_t f[3 * 512];
        struct vmdk footer;
        if (file_size < 4 * SECTOR)
            return vf_img_invalid(err, "vmdk.footer", "vmdk: streamOptimized image too short for a "
                                  "footer");
        if ((rc = vf_img_pread(fd, f, sizeof f, file_size - sizeof f, "vmdk footer", err)) < 0)
            return rc;
        if (vf_le64(f) != 1 || vf_le32(f + 8) != 0 || vf_le32(f + 12) != 3)
            return vf_img_invalid(err, "vmdk.footer", "vmdk: no footer marker at offset %llu",
                                  (unsigned long long)(file_size - sizeof f));
        if (memcmp(f + 512, "KDMV", 4) != 0)
            return vf_img_invalid(err, "vmdk.footer", "vmdk: the footer at offset %llu has no "
                                  "\"KDMV\" magic", (unsigned long long)(file_size - 1024));
        if (vf_le64(f + 1024) != 0 || vf_le32(f + 1032) != 0 || vf_le32(f + 1036) != 0)
            return vf_img_invalid(err, "vmdk.footer", "vmdk: no end-of-stream marker at offset %llu",
                                  (unsigned long long)(file_size - 512));
        parse_header(f + 512, &footer);
        if (footer.version != v->version || footer.flags != v->flags ||
            footer.capacity != v->capacity || footer.grain != v->grain ||
            footer.desc_off != v->desc_off || footer.desc_size != v->desc_size ||
            footer.compress != v->compress || vf_le32(f + 512 + 44) != GTES_PER_GT)
            return vf_img_invalid(err, "vmdk.footer", "vmdk: the footer header at offset %llu "
                                  "disagrees with the header at offset 0",
                                  (unsigned long long)(file_size - 1024));
        if (footer.gd_off == GD_AT_END)
            return vf_img_invalid(err, "vmdk.footer", "vmdk: the footer at offset %llu has no grain "
                                  "directory offset", (unsigned long long)(file_size - 1024));
        v->gd_off = footer.gd_off;
    }

    if (v->grain < MIN_GRAIN_SECTORS || v->grain > MAX_GRAIN_SECTORS || (v->grain & (v->grain - 1)))
        return vf_img_invalid(err, "vmdk.grainSize", "vmdk: grainSize %llu sectors at offset 20 is "
                              "not a power of two in %llu..%llu", (unsigned long long)v->grain,
                              MIN_GRAIN_SECTORS, MAX_GRAIN_SECTORS);
    if (v->capacity > VF_IMAGE_MAX_VIRTUAL_SIZE / SECTOR)
        return vf_img_toolarge(err, "vmdk.capacity", "vmdk: capacity %llu sectors at offset 12 is "
                               "above the limit of %llu bytes", (unsigned long long)v->capacity,
                               (unsigned long long)VF_IMAGE_MAX_VIRTUAL_SIZE);
    gt_cover = v->grain * GTES_PER_GT;
    v->gd_entries = v->capacity / gt_cover + (v->capacity % gt_cover != 0);
    if (v->gd_entries * 4 > MAX_GD_BYTES)
        return vf_img_toolarge(err, "vmdk.capacity", "vmdk: the grain directory would have %llu "
                               "entries", (unsigned long long)v->gd_entries);
    if (v->gd_off == 0 || v->gd_off > file_size / SECTOR ||
        !inside(v->gd_off * SECTOR, v->gd_entries * 4, file_size))
        return vf_img_invalid(err, "vmdk.gdOffset", "vmdk: the grain directory at sector %llu "
                              "(%llu entries) lies outside the file", (unsigned long long)v->gd_off,
                              (unsigned long long)v->gd_entries);

    /* The embedded descriptor.  A sparse file without one cannot say what it is. */
    if (v->desc_off == 0 || v->desc_size == 0)
        return vf_img_invalid(err, "vmdk.descriptorOffset", "vmdk: no embedded descriptor "
                              "(descriptorOffset/descriptorSize at offsets 28/36 are 0)");
    if (v->desc_size > MAX_DESCRIPTOR / SECTOR || v->desc_off > file_size / SECTOR ||
        !inside(v->desc_off * SECTOR, v->desc_size * SECTOR, file_size))
        return vf_img_invalid(err, "vmdk.descriptorOffset", "vmdk: the descriptor at sector %llu "
                              "(%llu sectors) is larger than %u bytes or outside the file",
                              (unsigned long long)v->desc_off, (unsigned long long)v->desc_size,
                              MAX_DESCRIPTOR);
    desc = malloc(v->desc_size * SECTOR + 1);
    if (!desc)
        return vf_error_set(err, -ENOMEM, 500, VF_IMG_IOERROR, "vmdk.descriptor", "out of memory");
    rc = vf_img_pread(fd, desc, v->desc_size * SECTOR, v->desc_off * SECTOR, "vmdk descriptor", err);
    if (rc == 0)
        rc = check_descriptor(desc, v->desc_size * SECTOR, v, err);
    free(desc);
    return rc;
}

/* The grain directory, validated: every grain table inside the file. */
static int read_gd(int fd, uint64_t file_size, const struct vmdk *v, uint32_t **out,
                   struct vf_error *err)
{
    uint32_t *gd = malloc(v->gd_entries ? v->gd_entries * 4 : 4);
    int rc;
    if (!gd)
        return vf_error_set(err, -ENOMEM, 500, VF_IMG_IOERROR, "vmdk.gd", "out of memory");
    if ((rc = vf_img_pread(fd, gd, v->gd_entries * 4, v->gd_off * SECTOR, "vmdk grain directory",
                           err)) < 0) {
        free(gd);
        return rc;
    }
    for (uint64_t i = 0; i < v->gd_entries; i++) {
        uint32_t sec = gd[i] = vf_le32((const uint8_t *)&gd[i]);
        uint64_t where = v->gd_off * SECTOR + 4 * i;
        if (sec && !inside((uint64_t)sec * SECTOR, GTES_PER_GT * 4, file_size)) {
            free(gd);
            return vf_img_invalid(err, "vmdk.gd", "vmdk: grain directory entry %llu at offset %llu "
                                  "points at a grain table at sector %u, outside the file",
                                  (unsigned long long)i, (unsigned long long)where, sec);
        }
        if (sec == 0 && !v->stream) {
            free(gd);
            return vf_img_invalid(err, "vmdk.gd", "vmdk: grain directory entry %llu at offset %llu "
                                  "is empty in a monolithicSparse image", (unsigned long long)i,
                                  (unsigned long long)where);
        }
    }
    *out = gd;
    return 0;
}

int vf_vmdk_inspect(int fd, uint64_t file_size, struct vf_image_info *info, struct vf_error *err)
{
    struct vmdk v;
    uint32_t *gd = NULL;
    uint8_t head[21];
    int rc;

    info->format = VF_IMAGE_FORMAT_VMDK;
    if (file_size >= sizeof head && vf_img_pread(fd, head, sizeof head, 0, "vmdk", NULL) == 0 &&
        memcmp(head, "# Disk DescriptorFile", 21) == 0) {
        snprintf(info->subformat, sizeof info->subformat, "descriptor");
        return vf_img_refused(err, "vmdk.descriptor", "vmdk: this is a text descriptor whose data "
                              "lives in other files (monolithicFlat, split or VMFS extents); only "
                              "single-file monolithicSparse or streamOptimized images are accepted");
    }
    if ((rc = vmdk_parse(fd, file_size, &v, err)) < 0)
        return rc;
    snprintf(info->subformat, sizeof info->subformat, "%s",
             v.stream ? "streamOptimized" : "monolithicSparse");
    info->virtual_size = v.capacity * SECTOR;
    rc = read_gd(fd, file_size, &v, &gd, err);
    free(gd);
    return rc;
}

int vf_vmdk_to_raw(int fd, uint64_t file_size, struct vf_img_sink *sink, struct vf_error *err)
{
    struct vmdk v;
    uint32_t *gd = NULL;
    uint8_t *gt = NULL, *grain = NULL, *zbuf = NULL;
    uint64_t gbytes, total, done = 0, zmax;
    int rc;

    if ((rc = vmdk_parse(fd, file_size, &v, err)) < 0 || (rc = read_gd(fd, file_size, &v, &gd, err)) < 0)
        return rc;
    gbytes = v.grain * SECTOR;
    total = v.capacity * SECTOR;
    /* deflate never grows data by more than a few bytes per 16 KiB; a grain's
     * compressed size beyond this bound is corrupt. */
    zmax = gbytes + gbytes / 8 + 1024;
    gt = malloc(GTES_PER_GT * 4);
    grain = malloc(gbytes);
    zbuf = malloc(zmax + 12);
    if (!gt || !grain || !zbuf) {
        rc = vf_error_set(err, -ENOMEM, 500, VF_IMG_IOERROR, "vmdk", "out of memory");
        goto out;
    }
    for (uint64_t i = 0; i < v.gd_entries && done < total; i++) {
        if (!gd[i]) {
            uint64_t n = total - done < gbytes * GTES_PER_GT ? total - done : gbytes * GTES_PER_GT;
            if ((rc = vf_img_sink_zeros(sink, n, err)) < 0)
                goto out;
            done += n;
            continue;
        }
        if ((rc = vf_img_pread(fd, gt, GTES_PER_GT * 4, (uint64_t)gd[i] * SECTOR, "vmdk grain table",
                               err)) < 0)
            goto out;
        for (unsigned j = 0; j < GTES_PER_GT && done < total; j++) {
            uint32_t sec = vf_le32(gt + 4 * j);
            uint64_t off = (uint64_t)sec * SECTOR, n = total - done < gbytes ? total - done : gbytes;
            uint64_t where = (uint64_t)gd[i] * SECTOR + 4 * j;
            if (sec <= 1) {          /* 0: unallocated, 1: zeroed grain */
                rc = vf_img_sink_zeros(sink, n, err);
            } else if (off >= file_size) {
                rc = vf_img_invalid(err, "vmdk.gt", "vmdk: grain table entry at offset %llu points "
                                    "past the end of the file (sector %u)", (unsigned long long)where, sec);
            } else if (v.stream) {
                uint8_t m[12];
                uint64_t csize;
                uLongf outlen = (uLongf)gbytes;
                if ((rc = vf_img_pread(fd, m, 12, off, "vmdk grain marker", err)) < 0)
                    goto out;
                csize = vf_le32(m + 8);
                if (vf_le64(m) != done / SECTOR || csize == 0 || csize > zmax ||
                    !inside(off + 12, csize, file_size)) {
                    rc = vf_img_invalid(err, "vmdk.grain", "vmdk: the grain marker at offset %llu "
                                        "(lba %llu, %llu bytes) does not match grain table entry at "
                                        "offset %llu or runs past the end of the file",
                                        (unsigned long long)off, (unsigned long long)vf_le64(m),
                                        (unsigned long long)csize, (unsigned long long)where);
                    goto out;
                }
                if ((rc = vf_img_pread(fd, zbuf, csize, off + 12, "vmdk grain", err)) < 0)
                    goto out;
                int zrc = uncompress(grain, &outlen, zbuf, (uLong)csize);
                if (zrc != Z_OK) {
                    rc = vf_img_invalid(err, "vmdk.grain", "vmdk: the compressed grain at offset "
                                        "%llu does not inflate (zlib %d)", (unsigned long long)off, zrc);
                    goto out;
                }
                memset(grain + outlen, 0, gbytes - outlen);
                rc = vf_img_sink_write(sink, grain, n, err);
            } else {
                size_t avail = file_size - off < n ? (size_t)(file_size - off) : (size_t)n;
                if ((rc = vf_img_pread(fd, grain, avail, off, "vmdk grain", err)) < 0)
                    goto out;
                memset(grain + avail, 0, n - avail);
                rc = vf_img_sink_write(sink, grain, n, err);
            }
            if (rc < 0)
                goto out;
            done += n;
        }
    }
    if (done < total)
        rc = vf_img_sink_zeros(sink, total - done, err);
out:
    free(gd);
    free(gt);
    free(grain);
    free(zbuf);
    return rc;
}
