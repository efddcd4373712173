#include <config.h>
/* qcow2 (QEMU docs/interop/qcow2.txt), versions 2 and 3, validated as hostile
 * input and read into raw.
 *
 * QEMU's limits are the floor: cluster_bits 9..21, an L1 table of at most
 * 32 MiB, a refcount table of at most 8 MiB, at most 65536 snapshots.  On top
 * of that a qcow2 that could make QEMU read anything but itself is refused:
 * a backing file, an external data file (incompatible bit 2 or header
 * extension 0x44415441), encryption (crypt_method != 0, or a full disk
 * encryption header extension), and any incompatible feature bit we do not
 * know.  Every table offset is checked for alignment and for lying inside the
 * file before anything is read from or allocated for it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>
#include "formats_internal.h"

#define QCOW2_V2_HEADER 72u
#define QCOW2_V3_HEADER 104u
#define MIN_CLUSTER_BITS 9u
#define MAX_CLUSTER_BITS 21u
#define MAX_L1_BYTES (32u << 20)
#define MAX_REFTABLE_BYTES (8u << 20)
#define MAX_SNAPSHOTS 65536u

#define INCOMPAT_DIRTY (1ULL << 0)
#define INCOMPAT_CORRUPT (1ULL << 1)
#define INCOMPAT_DATA_FILE (1ULL << 2)
#define INCOMPAT_COMPRESSION (1ULL << 3)
#define INCOMPAT_EXTL2 (1ULL << 4)
#define INCOMPAT_KNOWN (INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE | \
                        INCOMPAT_COMPRESSION | INCOMPAT_EXTL2)

#define EXT_END 0x00000000u
#define EXT_BACKING_FORMAT 0xe2792acau
#define EXT_CRYPTO 0x0537be77u
#define EXT_DATA_FILE 0x44415441u

#define L1E_OFFSET_MASK 0x00fffffffffffe00ULL
#define L2E_OFFSET_MASK 0x00fffffffffffe00ULL
#define OFLAG_COMPRESSED (1ULL << 62)
#define OFLAG_ZERO 1ULL

struct qcow2 {
    uint32_t version, cluster_bits, l1_size, header_length, refcount_order, nb_snapshots;
    uint64_t cluster_size, size, l1_offset, rt_offset, rt_bytes, snapshots_offset, incompat;
    uint8_t compression_type;     /* 0 zlib, 1 zstd */
    bool extended_l2;
    uint64_t l2_entries;          /* per L2 table */
};

/* [off, off+len) lies inside the file (no overflow). */
static bool inside(uint64_t off, uint64_t len, uint64_t file_size)
{
    return off <= file_size && len <= file_size - off;
}

static int check_extensions(int fd, const struct qcow2 *q, uint64_t file_size, struct vf_error *err)
{
    /* Extensions follow the header and end within the first cluster (QEMU
     * stops at the backing file name when there is one; we refuse those). */
    uint64_t off = q->header_length, end = q->cluster_size < file_size ? q->cluster_size : file_size;
    uint8_t h[8];
    int rc;

    for (unsigned n = 0; off + 8 <= end; n++) {
        if (n > 1024)
            return vf_img_invalid(err, "qcow2.header_extensions", "qcow2: more than 1024 header "
                                  "extensions before offset %llu", (unsigned long long)off);
        if ((rc = vf_img_pread(fd, h, 8, off, "qcow2 header extension", err)) < 0)
            return rc;
        uint32_t type = vf_be32(h), len = vf_be32(h + 4);
        if (type == EXT_END)
            return 0;
        if (len > end - off - 8)
            return vf_img_invalid(err, "qcow2.header_extensions", "qcow2: header extension 0x%08x at "
                                  "offset %llu has length %u, past the end of the first cluster",
                                  type, (unsigned long long)off, len);
        if (type == EXT_DATA_FILE)
            return vf_img_refused(err, "qcow2.header_extensions", "qcow2: header extension 0x44415441 "
                                  "at offset %llu names an external data file; images must be "
                                  "self-contained", (unsigned long long)off);
        if (type == EXT_CRYPTO)
            return vf_img_refused(err, "qcow2.header_extensions", "qcow2: header extension 0x0537be77 "
                                  "at offset %llu is a full disk encryption header; encrypted "
                                  "images are not supported", (unsigned long long)off);
        if (type == EXT_BACKING_FORMAT)
            return vf_img_refused(err, "qcow2.header_extensions", "qcow2: header extension 0xe2792aca "
                                  "at offset %llu names a backing file format; images with backing "
                                  "files are not supported", (unsigned long long)off);
        off += 8 + (((uint64_t)len + 7) & ~7ULL);
    }
    /* QEMU requires the end marker inside the cluster; a header cluster that
     * the file cuts short ends the list too. */
    if (end < q->cluster_size)
        return 0;
    return vf_img_invalid(err, "qcow2.header_extensions", "qcow2: header extensions at offset %u run "
                          "to the end of the first cluster without an end marker", q->header_length);
}

static int qcow2_parse(int fd, uint64_t file_size, struct qcow2 *q, struct vf_error *err)
{
    uint8_t h[QCOW2_V3_HEADER + 8];
    uint64_t backing_offset, need_l1, span;
    uint32_t crypt, rt_clusters;
    int rc;

    memset(q, 0, sizeof *q);
    if (file_size < QCOW2_V2_HEADER)
        return vf_img_invalid(err, "qcow2.header", "qcow2: the file has %llu bytes, fewer than a "
                              "header (72)", (unsigned long long)file_size);
    memset(h, 0, sizeof h);
    if ((rc = vf_img_pread(fd, h, file_size < sizeof h ? (size_t)file_size : sizeof h, 0,
                           "qcow2 header", err)) < 0)
        return rc;
    q->version = vf_be32(h + 4);
    if (q->version != 2 && q->version != 3)
        return vf_img_invalid(err, "qcow2.version", "qcow2: version %u at offset 4 is not supported "
                              "(2 or 3)", q->version);
    backing_offset = vf_be64(h + 8);
    q->cluster_bits = vf_be32(h + 20);
    q->size = vf_be64(h + 24);
    crypt = vf_be32(h + 32);
    q->l1_size = vf_be32(h + 36);
    q->l1_offset = vf_be64(h + 40);
    q->rt_offset = vf_be64(h + 48);
    rt_clusters = vf_be32(h + 56);
    q->nb_snapshots = vf_be32(h + 60);
    q->snapshots_offset = vf_be64(h + 64);

    if (q->cluster_bits < MIN_CLUSTER_BITS || q->cluster_bits > MAX_CLUSTER_BITS)
        return vf_img_invalid(err, "qcow2.cluster_bits", "qcow2: cluster_bits %u at offset 20 is "
                              "outside %u..%u", q->cluster_bits, MIN_CLUSTER_BITS, MAX_CLUSTER_BITS);
    q->cluster_size = 1ULL << q->cluster_bits;

    if (q->version == 2) {
        q->header_length = QCOW2_V2_HEADER;
        q->refcount_order = 4;
    } else {
        if (file_size < QCOW2_V3_HEADER)
            return vf_img_invalid(err, "qcow2.header", "qcow2: version 3 needs a 104-byte header; "
                                  "the file has %llu bytes", (unsigned long long)file_size);
        q->incompat = vf_be64(h + 72);
        q->refcount_order = vf_be32(h + 96);
        q->header_length = vf_be32(h + 100);
        if (q->header_length < QCOW2_V3_HEADER || q->header_length % 8 ||
            q->header_length > q->cluster_size || q->header_length > file_size)
            return vf_img_invalid(err, "qcow2.header_length", "qcow2: header_length %u at offset 100 "
                                  "must be a multiple of 8, at least 104 and within the first "
                                  "cluster (%llu bytes) and the file", q->header_length,
                                  (unsigned long long)q->cluster_size);
        if (q->refcount_order > 6)
            return vf_img_invalid(err, "qcow2.refcount_order", "qcow2: refcount_order %u at offset 96 "
                                  "is above 6", q->refcount_order);
        if (q->incompat & ~INCOMPAT_KNOWN)
            return vf_img_refused(err, "qcow2.incompatible_features", "qcow2: unknown incompatible "
                                  "feature bits 0x%llx at offset 72; this image needs a newer reader",
                                  (unsigned long long)(q->incompat & ~INCOMPAT_KNOWN));
        if (q->incompat & INCOMPAT_DATA_FILE)
            return vf_img_refused(err, "qcow2.incompatible_features", "qcow2: incompatible feature "
                                  "bit 2 (external data file) is set at offset 72; images must be "
                                  "self-contained");
        if (q->incompat & INCOMPAT_CORRUPT)
            return vf_img_invalid(err, "qcow2.incompatible_features", "qcow2: incompatible feature "
                                  "bit 1 (corrupt) is set at offset 72; repair it with qemu-img "
                                  "check -r all first");
        if (q->incompat & INCOMPAT_COMPRESSION) {
            if (q->header_length <= QCOW2_V3_HEADER)
                return vf_img_invalid(err, "qcow2.header_length", "qcow2: compression type bit set "
                                      "but header_length %u has no compression_type field",
                                      q->header_length);
            q->compression_type = h[104];
            if (q->compression_type > 1)
                return vf_img_invalid(err, "qcow2.compression_type", "qcow2: compression_type %u at "
                                      "offset 104 is unknown (0 zlib, 1 zstd)", q->compression_type);
        } else if (q->header_length > QCOW2_V3_HEADER && h[104] != 0) {
            return vf_img_invalid(err, "qcow2.compression_type", "qcow2: compression_type %u at "
                                  "offset 104 without incompatible bit 3", h[104]);
        }
        q->extended_l2 = (q->incompat & INCOMPAT_EXTL2) != 0;
        if (q->extended_l2 && q->cluster_bits < 14)
            return vf_img_invalid(err, "qcow2.cluster_bits", "qcow2: extended L2 entries need "
                                  "clusters of 16 KiB or more; cluster_bits is %u", q->cluster_bits);
    }
    if (backing_offset != 0)
        return vf_img_refused(err, "qcow2.backing_file_offset", "qcow2: backing_file_offset at "
                              "offset 8 is %llu: the image has a backing file; images with "
                              "backing files are not supported (flatten it with qemu-img convert)",
                              (unsigned long long)backing_offset);
    if (crypt != 0)
        return vf_img_refused(err, "qcow2.crypt_method", "qcow2: crypt_method %u at offset 32: "
                              "encrypted images are not supported", crypt);
    if (q->size > VF_IMAGE_MAX_VIRTUAL_SIZE)
        return vf_img_toolarge(err, "qcow2.size", "qcow2: virtual size %llu at offset 24 is above "
                               "the limit of %llu bytes", (unsigned long long)q->size,
                               (unsigned long long)VF_IMAGE_MAX_VIRTUAL_SIZE);

    /* L1: each entry maps one L2 table's worth of guest clusters. */
    q->l2_entries = q->cluster_size / (q->extended_l2 ? 16 : 8);
    span = q->l2_entries * q->cluster_size;
    need_l1 = q->size / span + (q->size % span != 0);
    if ((uint64_t)q->l1_size * 8 > MAX_L1_BYTES)
        return vf_img_toolarge(err, "qcow2.l1_size", "qcow2: l1_size %u at offset 36 is above the "
                               "limit of %u entries", q->l1_size, MAX_L1_BYTES / 8);
    if (q->l1_size < need_l1)
        return vf_img_invalid(err, "qcow2.l1_size", "qcow2: l1_size %u at offset 36 is too small "
                              "for the virtual size %llu (needs %llu)", q->l1_size,
                              (unsigned long long)q->size, (unsigned long long)need_l1);
    if (q->l1_size) {
        if (q->l1_offset % q->cluster_size || q->l1_offset == 0)
            return vf_img_invalid(err, "qcow2.l1_table_offset", "qcow2: l1_table_offset %llu at "
                                  "offset 40 is not a non-zero multiple of the cluster size %llu",
                                  (unsigned long long)q->l1_offset,
                                  (unsigned long long)q->cluster_size);
        if (!inside(q->l1_offset, (uint64_t)q->l1_size * 8, file_size))
            return vf_img_invalid(err, "qcow2.l1_table_offset", "qcow2: the L1 table at offset %llu "
                                  "(%u entries, l1_table_offset at offset 40) ends past the end of "
                                  "the file (%llu bytes)", (unsigned long long)q->l1_offset,
                                  q->l1_size, (unsigned long long)file_size);
    }

    q->rt_bytes = (uint64_t)rt_clusters * q->cluster_size;
    if (rt_clusters == 0 || q->rt_bytes > MAX_REFTABLE_BYTES)
        return vf_img_invalid(err, "qcow2.refcount_table_clusters", "qcow2: refcount_table_clusters "
                              "%u at offset 56 must be 1..%llu", rt_clusters,
                              (unsigned long long)(MAX_REFTABLE_BYTES / q->cluster_size));
    if (q->rt_offset % q->cluster_size || q->rt_offset == 0)
        return vf_img_invalid(err, "qcow2.refcount_table_offset", "qcow2: refcount_table_offset %llu "
                              "at offset 48 is not a non-zero multiple of the cluster size %llu",
                              (unsigned long long)q->rt_offset, (unsigned long long)q->cluster_size);
    if (!inside(q->rt_offset, q->rt_bytes, file_size))
        return vf_img_invalid(err, "qcow2.refcount_table_offset", "qcow2: the refcount table at "
                              "offset %llu (%u clusters) ends past the end of the file (%llu bytes)",
                              (unsigned long long)q->rt_offset, rt_clusters,
                              (unsigned long long)file_size);

    if (q->nb_snapshots > MAX_SNAPSHOTS)
        return vf_img_toolarge(err, "qcow2.nb_snapshots", "qcow2: nb_snapshots %u at offset 60 is "
                               "above %u", q->nb_snapshots, MAX_SNAPSHOTS);
    if (q->nb_snapshots &&
        (q->snapshots_offset % 8 || q->snapshots_offset < q->cluster_size ||
         !inside(q->snapshots_offset, (uint64_t)q->nb_snapshots * 40, file_size)))
        return vf_img_invalid(err, "qcow2.snapshots_offset", "qcow2: snapshots_offset %llu at offset "
                              "64 (%u snapshots) is unaligned or outside the file",
                              (unsigned long long)q->snapshots_offset, q->nb_snapshots);
    return check_extensions(fd, q, file_size, err);
}

/* Reads a table of n big-endian u64 at off (bounds already checked). */
static int read_table(int fd, uint64_t off, uint64_t n, uint64_t **out, const char *what,
                      struct vf_error *err)
{
    uint64_t *t = malloc(n ? n * 8 : 1);
    int rc;
    if (!t)
        return vf_error_set(err, -ENOMEM, 500, VF_IMG_IOERROR, what, "out of memory for the %s", what);
    if ((rc = vf_img_pread(fd, t, n * 8, off, what, err)) < 0) {
        free(t);
        return rc;
    }
    for (uint64_t i = 0; i < n; i++)
        t[i] = vf_be64((const uint8_t *)&t[i]);
    *out = t;
    return 0;
}

/* Entries of the L1 and refcount tables point at clusters inside the file. */
static int check_tables(int fd, const struct qcow2 *q, uint64_t file_size, uint64_t **l1_out,
                        struct vf_error *err)
{
    uint64_t *l1 = NULL, *rt = NULL;
    int rc;

    if ((rc = read_table(fd, q->l1_offset, q->l1_size, &l1, "qcow2 L1 table", err)) < 0)
        return rc;
    for (uint32_t i = 0; i < q->l1_size; i++) {
        uint64_t off = l1[i] & L1E_OFFSET_MASK;
        if (l1[i] & ~(L1E_OFFSET_MASK | (1ULL << 63))) {
            rc = vf_img_invalid(err, "qcow2.l1_table", "qcow2: L1 entry %u at offset %llu has "
                                "reserved bits set (0x%016llx)", i,
                                (unsigned long long)(q->l1_offset + 8ULL * i), (unsigned long long)l1[i]);
            goto out;
        }
        if (off && (off % q->cluster_size || !inside(off, q->cluster_size, file_size))) {
            rc = vf_img_invalid(err, "qcow2.l1_table", "qcow2: L1 entry %u at offset %llu points at "
                                "an L2 table at %llu that is unaligned or past the end of the file",
                                i, (unsigned long long)(q->l1_offset + 8ULL * i), (unsigned long long)off);
            goto out;
        }
    }
    if ((rc = read_table(fd, q->rt_offset, q->rt_bytes / 8, &rt, "qcow2 refcount table", err)) < 0)
        goto out;
    for (uint64_t i = 0; i < q->rt_bytes / 8; i++) {
        uint64_t off = rt[i] & ~511ULL;
        if ((rt[i] & 511) || (off && (off % q->cluster_size || !inside(off, q->cluster_size, file_size)))) {
            rc = vf_img_invalid(err, "qcow2.refcount_table", "qcow2: refcount table entry %llu at "
                                "offset %llu points at %llu: unaligned or past the end of the file",
                                (unsigned long long)i, (unsigned long long)(q->rt_offset + 8 * i),
                                (unsigned long long)rt[i]);
            goto out;
        }
    }
out:
    free(rt);
    if (rc == 0 && l1_out)
        *l1_out = l1;
    else
        free(l1);
    return rc;
}

int vf_qcow2_inspect(int fd, uint64_t file_size, struct vf_image_info *info, struct vf_error *err)
{
    struct qcow2 q;
    int rc;

    info->format = VF_IMAGE_FORMAT_QCOW2;
    rc = qcow2_parse(fd, file_size, &q, err);
    /* What the header says, also for a refused image (the verdict tells). */
    if (q.version == 2 || q.version == 3)
        snprintf(info->subformat, sizeof info->subformat, "v%u", q.version);
    info->virtual_size = q.size;
    if (rc < 0)
        return rc;
    return check_tables(fd, &q, file_size, NULL, err);
}

/* Decodes one zstd-compressed cluster (compression_type 1: a zstd stream, as
 * QEMU writes it; the bytes after it up to the sector boundary are ignored).
 * The window is capped at the largest cluster (2 MiB): a hostile frame cannot
 * make the decoder allocate more. */
static int zstd_cluster(ZSTD_DCtx **dctx, const uint8_t *in, size_t in_len, uint8_t *out,
                        size_t out_len, uint64_t where, struct vf_error *err)
{
    if (!*dctx) {
        if (!(*dctx = ZSTD_createDCtx()))
            return vf_error_set(err, -ENOMEM, 500, VF_IMG_IOERROR, "qcow2.data", "zstd: out of memory");
        ZSTD_DCtx_setParameter(*dctx, ZSTD_d_windowLogMax, 21);
    }
    ZSTD_DCtx_reset(*dctx, ZSTD_reset_session_only);
    ZSTD_inBuffer input = {in, in_len, 0};
    ZSTD_outBuffer output = {out, out_len, 0};
    while (output.pos < output.size) {
        size_t before_in = input.pos, before_out = output.pos;
        size_t r = ZSTD_decompressStream(*dctx, &output, &input);
        if (ZSTD_isError(r))
            return vf_img_invalid(err, "qcow2.data", "qcow2: the zstd-compressed cluster at offset "
                                  "%llu is corrupt (%s)", (unsigned long long)where,
                                  ZSTD_getErrorName(r));
        if (input.pos == before_in && output.pos == before_out)
            return vf_img_invalid(err, "qcow2.data", "qcow2: the zstd-compressed cluster at offset "
                                  "%llu does not decode to a full cluster", (unsigned long long)where);
    }
    return 0;
}

/* Inflates one compressed cluster (raw deflate, as QEMU writes it). */
static int inflate_cluster(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len,
                           uint64_t where, struct vf_error *err)
{
    z_stream z;
    int zrc;

    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, -15) != Z_OK)
        return vf_error_set(err, -ENOMEM, 500, VF_IMG_IOERROR, "qcow2.l2_table", "zlib: out of memory");
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)in_len;
    z.next_out = out;
    z.avail_out = (uInt)out_len;
    zrc = inflate(&z, Z_FINISH);
    inflateEnd(&z);
    /* The descriptor's size is rounded up to sectors: trailing bytes are fine,
     * a short cluster is not. */
    if ((zrc == Z_STREAM_END || zrc == Z_BUF_ERROR) && z.avail_out == 0)
        return 0;
    return vf_img_invalid(err, "qcow2.data", "qcow2: the compressed cluster at offset %llu does not "
                          "inflate to a full cluster (zlib %d)", (unsigned long long)where, zrc);
}

static int copy_data(int fd, uint64_t file_size, uint64_t host, uint8_t *buf, size_t len,
                     struct vf_img_sink *sink, struct vf_error *err)
{
    size_t avail;
    int rc;
    if (host >= file_size)
        return vf_img_invalid(err, "qcow2.data", "qcow2: a data cluster at offset %llu is past the "
                              "end of the file", (unsigned long long)host);
    /* A last cluster the file cuts short reads as zeros past the end, as in QEMU. */
    avail = file_size - host < len ? (size_t)(file_size - host) : len;
    if ((rc = vf_img_pread(fd, buf, avail, host, "qcow2 data cluster", err)) < 0)
        return rc;
    memset(buf + avail, 0, len - avail);
    return vf_img_sink_write(sink, buf, len, err);
}

int vf_qcow2_to_raw(int fd, uint64_t file_size, struct vf_img_sink *sink, struct vf_error *err)
{
    struct qcow2 q;
    uint64_t *l1 = NULL, *l2 = NULL, guest = 0;
    uint8_t *cbuf = NULL, *zbuf = NULL;
    ZSTD_DCtx *dctx = NULL;
    size_t esize;
    int rc;

    if ((rc = qcow2_parse(fd, file_size, &q, err)) < 0 ||
        (rc = check_tables(fd, &q, file_size, &l1, err)) < 0)
        return rc;
    esize = q.extended_l2 ? 2 : 1;
    l2 = malloc(q.cluster_size);
    cbuf = malloc(q.cluster_size);
    zbuf = malloc(2 * q.cluster_size + 512);
    if (!l2 || !cbuf || !zbuf) {
        rc = vf_error_set(err, -ENOMEM, 500, VF_IMG_IOERROR, "qcow2", "out of memory");
        goto out;
    }
    for (uint32_t i = 0; guest < q.size && i < q.l1_size; i++) {
        uint64_t l2_off = l1[i] & L1E_OFFSET_MASK;
        uint64_t span = q.l2_entries * q.cluster_size;
        if (!l2_off) {
            uint64_t n = q.size - guest < span ? q.size - guest : span;
            if ((rc = vf_img_sink_zeros(sink, n, err)) < 0)
                goto out;
            guest += n;
            continue;
        }
        if ((rc = vf_img_pread(fd, l2, q.cluster_size, l2_off, "qcow2 L2 table", err)) < 0)
            goto out;
        for (uint64_t j = 0; j < q.l2_entries && guest < q.size; j++) {
            const uint8_t *raw = (const uint8_t *)l2 + j * esize * 8;
            uint64_t e = vf_be64(raw), bitmap = q.extended_l2 ? vf_be64(raw + 8) : 0;
            uint64_t n = q.size - guest < q.cluster_size ? q.size - guest : q.cluster_size;
            uint64_t where = l2_off + j * esize * 8;

            if (e & OFLAG_COMPRESSED) {
                unsigned x = 62 - (q.cluster_bits - 8);
                uint64_t host = e & ((1ULL << x) - 1);
                uint64_t sectors = ((e >> x) & ((1ULL << (62 - x)) - 1)) + 1;
                uint64_t clen = sectors * 512 - (host & 511);
                if (host >= file_size || clen > 2 * q.cluster_size + 512) {
                    rc = vf_img_invalid(err, "qcow2.l2_table", "qcow2: L2 entry at offset %llu: "
                                        "compressed cluster at %llu (%llu bytes) is out of bounds",
                                        (unsigned long long)where, (unsigned long long)host,
                                        (unsigned long long)clen);
                    goto out;
                }
                if (clen > file_size - host)
                    clen = file_size - host;
                if ((rc = vf_img_pread(fd, zbuf, clen, host, "qcow2 compressed cluster", err)) < 0 ||
                    (rc = q.compression_type == 1
                              ? zstd_cluster(&dctx, zbuf, clen, cbuf, q.cluster_size, host, err)
                              : inflate_cluster(zbuf, clen, cbuf, q.cluster_size, host, err)) < 0 ||
                    (rc = vf_img_sink_write(sink, cbuf, n, err)) < 0)
                    goto out;
            } else {
                uint64_t host = e & L2E_OFFSET_MASK;
                if ((e & ~(L2E_OFFSET_MASK | (1ULL << 63) | (q.extended_l2 ? 0 : OFLAG_ZERO))) ||
                    host % q.cluster_size) {
                    rc = vf_img_invalid(err, "qcow2.l2_table", "qcow2: L2 entry at offset %llu "
                                        "(0x%016llx) has reserved bits set or an unaligned cluster "
                                        "offset", (unsigned long long)where, (unsigned long long)e);
                    goto out;
                }
                if (q.extended_l2) {
                    uint64_t sub = q.cluster_size / 32;
                    if (!host && (bitmap & 0xffffffffULL)) {
                        rc = vf_img_invalid(err, "qcow2.l2_table", "qcow2: L2 entry at offset %llu "
                                            "marks subclusters allocated without a cluster",
                                            (unsigned long long)where);
                        goto out;
                    }
                    for (unsigned s = 0; s < 32 && s * sub < n; s++) {
                        uint64_t sn = n - s * sub < sub ? n - s * sub : sub;
                        if (bitmap & (1ULL << s))
                            rc = copy_data(fd, file_size, host + s * sub, cbuf, sn, sink, err);
                        else
                            rc = vf_img_sink_zeros(sink, sn, err);
                        if (rc < 0)
                            goto out;
                    }
                } else if (!host || (e & OFLAG_ZERO)) {
                    if ((rc = vf_img_sink_zeros(sink, n, err)) < 0)
                        goto out;
                } else if ((rc = copy_data(fd, file_size, host, cbuf, n, sink, err)) < 0) {
                    goto out;
                }
            }
            guest += n;
        }
    }
    if (guest < q.size)
        rc = vf_img_sink_zeros(sink, q.size - guest, err);
out:
    ZSTD_freeDCtx(dctx);
    free(l1);
    free(l2);
    free(cbuf);
    free(zbuf);
    return rc;
}
