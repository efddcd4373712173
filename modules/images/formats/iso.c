#include <config.h>
/* ISO 9660 (ECMA-119) images: the primary volume descriptor at sector 16
 * says how large the volume is.  Nothing in an ISO names another file for the
 * hypervisor, so validation is only about the descriptor being well formed and
 * the file holding the whole volume; the content is handed to guests as a
 * CD-ROM, stored as is. */
#include <errno.h>
#include <string.h>
#include "formats_internal.h"

#define PVD_OFFSET 0x8000u
#define PVD_SIZE 2048u

int vf_iso_check_head(const uint8_t *head, size_t len, uint64_t *volume_bytes, struct vf_error *err)
{
    const uint8_t *d = head + PVD_OFFSET;
    uint32_t blocks;
    uint16_t block_size;

    if (len < PVD_OFFSET + PVD_SIZE)
        return vf_img_invalid(err, "iso.pvd", "iso: the file ends inside the volume descriptor at "
                              "offset 0x8000");
    if (d[0] != 1 || d[6] != 1)
        return vf_img_invalid(err, "iso.pvd", "iso: the descriptor at offset 0x8000 is type %u "
                              "version %u, not a primary volume descriptor (1, 1)", d[0], d[6]);
    blocks = vf_le32(d + 80);
    if (vf_be32(d + 84) != blocks)
        return vf_img_invalid(err, "iso.pvd.volume_space_size", "iso: volume space size at offset "
                              "0x%x disagrees between its little- and big-endian copies",
                              PVD_OFFSET + 80);
    block_size = vf_le16(d + 128);
    if (vf_be16(d + 130) != block_size)
        return vf_img_invalid(err, "iso.pvd.logical_block_size", "iso: logical block size at offset "
                              "0x%x disagrees between its little- and big-endian copies",
                              PVD_OFFSET + 128);
    if (block_size != 512 && block_size != 1024 && block_size != 2048)
        return vf_img_invalid(err, "iso.pvd.logical_block_size", "iso: logical block size %u at "
                              "offset 0x%x is not 512, 1024 or 2048", block_size, PVD_OFFSET + 128);
    *volume_bytes = (uint64_t)blocks * block_size;
    if (*volume_bytes < PVD_OFFSET + PVD_SIZE)
        return vf_img_invalid(err, "iso.pvd.volume_space_size", "iso: volume space size %u blocks at "
                              "offset 0x%x ends before the volume descriptor", blocks, PVD_OFFSET + 80);
    return 0;
}

int vf_iso_inspect(int fd, uint64_t file_size, struct vf_image_info *info, struct vf_error *err)
{
    uint8_t head[PVD_OFFSET + PVD_SIZE];
    uint64_t volume;
    int rc;

    info->format = VF_IMAGE_FORMAT_ISO;
    info->cdrom = true;
    if (file_size < sizeof head)
        return vf_img_invalid(err, "iso.pvd", "iso: the file ends inside the volume descriptor at "
                              "offset 0x8000");
    if ((rc = vf_img_pread(fd, head, sizeof head, 0, "iso volume descriptor", err)) < 0 ||
        (rc = vf_iso_check_head(head, sizeof head, &volume, err)) < 0)
        return rc;
    snprintf(info->subformat, sizeof info->subformat, "iso9660");
    /* The guest sees the whole file; a volume longer than the file is truncated. */
    info->virtual_size = file_size;
    if (volume > file_size)
        return vf_img_invalid(err, "iso.pvd.volume_space_size", "iso: the volume is %llu bytes "
                              "(offset 0x%x), the file only %llu: truncated",
                              (unsigned long long)volume, PVD_OFFSET + 80, (unsigned long long)file_size);
    return 0;
}
