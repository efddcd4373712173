#include <config.h>
/* VirtualBox VDI, version 1.1 (the layout QEMU's block/vdi.c reads), normal
 * (dynamic) and fixed images only.  Undo and differencing images, and any
 * image that names a parent (link or parent UUID), are refused: their data
 * lives partly in another file.  Blocks are 1 MiB; the block map is checked
 * entry by entry against the number of blocks. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "formats_internal.h"

#define VDI_HEADER 0x200u
#define VDI_VERSION_1_1 0x00010001u
#define VDI_TYPE_NORMAL 1u
#define VDI_TYPE_FIXED 2u
#define VDI_BLOCK_SIZE (1u << 20)
#define VDI_UNALLOCATED 0xffffffffu
#define VDI_DISCARDED 0xfffffffeu
/* QEMU: VDI_BLOCKS_IN_IMAGE_MAX; our virtual size limit is lower anyway. */
#define VDI_MAX_BLOCKS (VF_IMAGE_MAX_VIRTUAL_SIZE / VDI_BLOCK_SIZE)

struct vdi {
    uint32_t type, offset_bmap, offset_data, blocks, allocated;
    uint64_t disk_size;
};

static bool inside(uint64_t off, uint64_t len, uint64_t file_size)
{
    return off <= file_size && len <= file_size - off;
}

static bool uuid_zero(const uint8_t *u)
{
    static const uint8_t zero[16];
    return memcmp(u, zero, 16) == 0;
}

static int vdi_parse(int fd, uint64_t file_size, struct vdi *v, struct vf_error *err)
{
    uint8_t h[VDI_HEADER];
    uint32_t version, header_size, sector_size, block_size, block_extra;
    int rc;

    memset(v, 0, sizeof *v);
    if (file_size < VDI_HEADER)
        return vf_img_invalid(err, "vdi.header", "vdi: the file has %llu bytes, fewer than a header "
                              "(512)", (unsigned long long)file_size);
    if ((rc = vf_img_pread(fd, h, sizeof h, 0, "vdi header", err)) < 0)
        return rc;
    version = vf_le32(h + 0x44);
    header_size = vf_le32(h + 0x48);
    v->type = vf_le32(h + 0x4c);
    v->offset_bmap = vf_le32(h + 0x154);
    v->offset_data = vf_le32(h + 0x158);
    sector_size = vf_le32(h + 0x168);
    v->disk_size = vf_le64(h + 0x170);
    block_size = vf_le32(h + 0x178);
    block_extra = vf_le32(h + 0x17c);
    v->blocks = vf_le32(h + 0x180);
    v->allocated = vf_le32(h + 0x184);

    if (version != VDI_VERSION_1_1)
        return vf_img_invalid(err, "vdi.version", "vdi: version %u.%u at offset 0x44 is not supported "
                              "(1.1 only)", version >> 16, version & 0xffff);
    if (header_size < 0x180 || header_size > VDI_HEADER - 0x48)
        return vf_img_invalid(err, "vdi.header_size", "vdi: header size %u at offset 0x48 is not "
                              "that of a version 1.1 header", header_size);
    if (v->type != VDI_TYPE_NORMAL && v->type != VDI_TYPE_FIXED)
        return vf_img_refused(err, "vdi.image_type", "vdi: image type %u at offset 0x4c is not "
                              "supported (1 normal/dynamic, 2 fixed; undo and differencing images "
                              "depend on other files)", v->type);
    if (!uuid_zero(h + 0x1a8))
        return vf_img_refused(err, "vdi.uuid_link", "vdi: the link UUID at offset 0x1a8 is set: the "
                              "image depends on a parent image");
    if (!uuid_zero(h + 0x1b8))
        return vf_img_refused(err, "vdi.uuid_parent", "vdi: the parent UUID at offset 0x1b8 is set: "
                              "the image depends on a parent image");
    if (sector_size != 512)
        return vf_img_invalid(err, "vdi.sector_size", "vdi: sector size %u at offset 0x168 is not 512",
                              sector_size);
    if (block_size != VDI_BLOCK_SIZE)
        return vf_img_invalid(err, "vdi.block_size", "vdi: block size %u at offset 0x178 is not "
                              "1 MiB (1048576)", block_size);
    if (block_extra != 0)
        return vf_img_invalid(err, "vdi.block_extra", "vdi: block extra data %u at offset 0x17c is "
                              "not supported", block_extra);
    if (v->blocks > VDI_MAX_BLOCKS || v->disk_size > VF_IMAGE_MAX_VIRTUAL_SIZE)
        return vf_img_toolarge(err, "vdi.blocks_in_image", "vdi: %u blocks (offset 0x180) or a disk "
                               "size of %llu bytes (offset 0x170) is above the limit of %llu bytes",
                               v->blocks, (unsigned long long)v->disk_size,
                               (unsigned long long)VF_IMAGE_MAX_VIRTUAL_SIZE);
    if (v->disk_size > (uint64_t)v->blocks * VDI_BLOCK_SIZE)
        return vf_img_invalid(err, "vdi.disk_size", "vdi: disk size %llu at offset 0x170 is larger "
                              "than its %u blocks (offset 0x180)", (unsigned long long)v->disk_size,
                              v->blocks);
    if (v->allocated > v->blocks)
        return vf_img_invalid(err, "vdi.blocks_allocated", "vdi: %u blocks allocated (offset 0x184) "
                              "of %u", v->allocated, v->blocks);
    if (v->offset_bmap % 512 || v->offset_bmap < VDI_HEADER ||
        !inside(v->offset_bmap, (uint64_t)v->blocks * 4, file_size) ||
        v->offset_bmap + (uint64_t)v->blocks * 4 > v->offset_data)
        return vf_img_invalid(err, "vdi.offset_bmap", "vdi: the block map at offset %u (field at "
                              "0x154; %u entries) is unaligned, overlaps the header or the data, or "
                              "lies outside the file", v->offset_bmap, v->blocks);
    if (v->offset_data % 512)
        return vf_img_invalid(err, "vdi.offset_data", "vdi: data offset %u at offset 0x158 is not a "
                              "multiple of 512", v->offset_data);
    return 0;
}

/* The block map, validated: every entry a block index below the number of
 * blocks whose data lies inside the file, or unallocated/discarded. */
static int read_bmap(int fd, uint64_t file_size, const struct vdi *v, uint32_t **out,
                     struct vf_error *err)
{
    uint32_t *map = malloc(v->blocks ? (size_t)v->blocks * 4 : 4);
    int rc;
    if (!map)
        return vf_error_set(err, -ENOMEM, 500, VF_IMG_IOERROR, "vdi.bmap", "out of memory");
    if ((rc = vf_img_pread(fd, map, (size_t)v->blocks * 4, v->offset_bmap, "vdi block map", err)) < 0) {
        free(map);
        return rc;
    }
    for (uint32_t i = 0; i < v->blocks; i++) {
        uint32_t b = map[i] = vf_le32((const uint8_t *)&map[i]);
        if (b == VDI_UNALLOCATED || b == VDI_DISCARDED)
            continue;
        if (b >= v->blocks ||
            !inside(v->offset_data + (uint64_t)b * VDI_BLOCK_SIZE, VDI_BLOCK_SIZE, file_size)) {
            free(map);
            return vf_img_invalid(err, "vdi.bmap", "vdi: block map entry %u at offset %llu is %u: "
                                  "not below %u blocks or its data lies outside the file", i,
                                  (unsigned long long)v->offset_bmap + 4ULL * i, b, v->blocks);
        }
    }
    *out = map;
    return 0;
}

int vf_vdi_inspect(int fd, uint64_t file_size, struct vf_image_info *info, struct vf_error *err)
{
    struct vdi v;
    uint32_t *map = NULL;
    int rc;

    info->format = VF_IMAGE_FORMAT_VDI;
    if ((rc = vdi_parse(fd, file_size, &v, err)) < 0)
        return rc;
    snprintf(info->subformat, sizeof info->subformat, "%s", v.type == VDI_TYPE_FIXED ? "fixed" : "dynamic");
    info->virtual_size = v.disk_size;
    rc = read_bmap(fd, file_size, &v, &map, err);
    free(map);
    return rc;
}

int vf_vdi_to_raw(int fd, uint64_t file_size, struct vf_img_sink *sink, struct vf_error *err)
{
    struct vdi v;
    uint32_t *map = NULL;
    uint8_t *buf = NULL;
    uint64_t done = 0;
    int rc;

    if ((rc = vdi_parse(fd, file_size, &v, err)) < 0 || (rc = read_bmap(fd, file_size, &v, &map, err)) < 0)
        return rc;
    if (!(buf = malloc(VDI_BLOCK_SIZE))) {
        rc = vf_error_set(err, -ENOMEM, 500, VF_IMG_IOERROR, "vdi", "out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < v.blocks && done < v.disk_size; i++) {
        uint64_t n = v.disk_size - done < VDI_BLOCK_SIZE ? v.disk_size - done : VDI_BLOCK_SIZE;
        if (map[i] == VDI_UNALLOCATED || map[i] == VDI_DISCARDED)
            rc = vf_img_sink_zeros(sink, n, err);
        else if ((rc = vf_img_pread(fd, buf, n, v.offset_data + (uint64_t)map[i] * VDI_BLOCK_SIZE,
                                    "vdi block", err)) == 0)
            rc = vf_img_sink_write(sink, buf, n, err);
        if (rc < 0)
            goto out;
        done += n;
    }
out:
    free(map);
    free(buf);
    return rc;
}
