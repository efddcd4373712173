#include <config.h>
/* Format detection by magic, never by file name.  Every signature is tested,
 * not just the first that matches: a file that carries two (a qcow2 header
 * with an ISO volume descriptor at 0x8001, say) is refused, because two
 * readers would see two different disks in it. */
#include <errno.h>
#include <string.h>
#include "formats_internal.h"

#define VDI_SIGNATURE 0xbeda107fu

static bool has(const uint8_t *head, size_t len, size_t off, const void *magic, size_t n)
{
    return len >= off + n && memcmp(head + off, magic, n) == 0;
}

int vf_img_detect(const uint8_t *head, size_t len, enum vf_image_format *format,
                  enum vf_image_compression *compression, struct vf_error *err)
{
    struct { const char *name; bool hit; enum vf_image_format f; enum vf_image_compression c; } m[] = {
        { "qcow2 (\"QFI\\xfb\" at 0)", has(head, len, 0, "QFI\xfb", 4), VF_IMAGE_FORMAT_QCOW2, 0 },
        { "VMDK sparse (\"KDMV\" at 0)", has(head, len, 0, "KDMV", 4), VF_IMAGE_FORMAT_VMDK, 0 },
        /* A text descriptor is what monolithicFlat and split VMDKs start with:
         * recognised so that it is refused as VMDK, never taken for raw. */
        { "VMDK descriptor (\"# Disk DescriptorFile\" at 0)",
          has(head, len, 0, "# Disk DescriptorFile", 21), VF_IMAGE_FORMAT_VMDK, 0 },
        { "VDI (signature 0xbeda107f at 0x40)",
          len >= 0x44 && vf_le32(head + 0x40) == VDI_SIGNATURE && has(head, len, 0, "<<< ", 4),
          VF_IMAGE_FORMAT_VDI, 0 },
        { "ISO 9660 (\"CD001\" at 0x8001)", has(head, len, 0x8001, "CD001", 5), VF_IMAGE_FORMAT_ISO, 0 },
        { "gzip (1f 8b at 0)", has(head, len, 0, "\x1f\x8b", 2), VF_IMAGE_FORMAT_UNKNOWN,
          VF_IMAGE_COMPRESSION_GZIP },
        { "xz (fd 37 7a 58 5a 00 at 0)", has(head, len, 0, "\xfd" "7zXZ\0", 6), VF_IMAGE_FORMAT_UNKNOWN,
          VF_IMAGE_COMPRESSION_XZ },
    };
    /* Formats QEMU knows and we do not convert: stored as raw they would boot
     * nothing, so they are named and refused instead. */
    static const struct { const char *name; const char *magic; size_t n; } unsupported[] = {
        { "QED", "QED\0", 4 }, { "VHDX", "vhdxfile", 8 }, { "VHD (vpc)", "conectix", 8 },
        { "LUKS", "LUKS\xba\xbe", 6 }, { "Parallels", "WithoutFreeSpace", 16 },
        { "Parallels", "WithouFreSpacExt", 16 }, { "zstd-compressed", "\x28\xb5\x2f\xfd", 4 },
        { "bzip2-compressed", "BZh", 3 },
    };
    int first = -1;

    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++)
        if (has(head, len, 0, unsupported[i].magic, unsupported[i].n))
            return vf_img_refused(err, "magic", "%s images are not supported (magic at offset 0); "
                                  "convert to qcow2 or raw first", unsupported[i].name);

    *format = VF_IMAGE_FORMAT_RAW;
    *compression = VF_IMAGE_COMPRESSION_NONE;
    for (int i = 0; i < (int)(sizeof m / sizeof m[0]); i++) {
        if (!m[i].hit)
            continue;
        if (first >= 0)
            return vf_img_refused(err, "magic", "the file matches two formats, %s and %s; refusing "
                                  "an ambiguous image", m[first].name, m[i].name);
        first = i;
    }
    /* A VDI text banner without the signature, or a signature without the
     * banner, is neither VDI nor safely raw: QEMU's probe looks at the signature. */
    if (first < 0 && len >= 0x44 && vf_le32(head + 0x40) == VDI_SIGNATURE)
        return vf_img_invalid(err, "magic", "VDI signature 0xbeda107f at offset 0x40 without the "
                              "\"<<< ... >>>\" banner at offset 0");
    if (first >= 0) {
        *compression = m[first].c;
        *format = m[first].c ? VF_IMAGE_FORMAT_UNKNOWN : m[first].f;
    }
    return 0;
}

const char *vf_image_format_name(enum vf_image_format format)
{
    switch (format) {
    case VF_IMAGE_FORMAT_RAW: return "raw";
    case VF_IMAGE_FORMAT_QCOW2: return "qcow2";
    case VF_IMAGE_FORMAT_VMDK: return "vmdk";
    case VF_IMAGE_FORMAT_VDI: return "vdi";
    case VF_IMAGE_FORMAT_ISO: return "iso";
    case VF_IMAGE_FORMAT_UNKNOWN: break;
    }
    return "unknown";
}

const char *vf_image_compression_name(enum vf_image_compression compression)
{
    switch (compression) {
    case VF_IMAGE_COMPRESSION_GZIP: return "gzip";
    case VF_IMAGE_COMPRESSION_XZ: return "xz";
    case VF_IMAGE_COMPRESSION_NONE: break;
    }
    return "none";
}
