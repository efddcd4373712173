#include <config.h>
/* libvirt domain XML for a VirtualMachine of a VirtualMachineClass.
 *
 * Written without an XML library (xml_query.c is for reading libvirt's): the
 * document grows in a small buffer, and every value that comes from an object
 * (names, paths, kernel command lines, CPU model and feature names) goes
 * through xml_escape, so a user cannot smuggle elements into the domain.  The
 * one piece inserted verbatim is a Discovery class's baseline <cpu>, which
 * libvirt itself computed; it is checked to be a single <cpu> element first.
 *
 * Disks come resolved (vm_disks.c turns spec.blockDeviceRefs into files or
 * pool volumes on the node): virtio disks vda, vdb, ... and SATA CD-ROMs sda, sdb, ..., each
 * numbered in boot order as the refs are listed. */
#include "domain_xml.h"
#include "json_util.h"
#include "quantity.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cgroup CPU bandwidth period for a partial core (libvirt's and the kernel's default). */
#define CPU_PERIOD_US 100000
/* cgroup v1 cpu.shares of one full core; libvirt maps it onto cgroup v2 weight. */
#define SHARES_PER_CORE 1024
#define UID_MAX_LEN 64
/* The vf:vm start tag we write is a few hundred bytes; anything longer is not ours. */
#define VM_TAG_MAX 4096

/* ---- a growing buffer ------------------------------------------------------ */

struct buf {
    char *data;
    size_t len, cap;
    bool oom;
};

static void buf_reserve(struct buf *b, size_t more)
{
    if (b->oom || b->len + more + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) {
        b->oom = true;
        return;
    }
    b->data = p;
    b->cap = cap;
}

static void buf_add_n(struct buf *b, const char *s, size_t n)
{
    buf_reserve(b, n);
    if (b->oom)
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void buf_add(struct buf *b, const char *s)
{
    buf_add_n(b, s, strlen(s));
}

static void buf_addf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_addf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = true;
        return;
    }
    buf_reserve(b, (size_t)n);
    if (b->oom)
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Text or attribute value (either quote style) with the five XML specials
 * replaced.  Control characters other than tab/newline are not allowed in
 * XML 1.0 at all: callers reject them first (see check_text). */
static void xml_escape(struct buf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': buf_add(b, "&amp;"); break;
        case '<': buf_add(b, "&lt;"); break;
        case '>': buf_add(b, "&gt;"); break;
        case '\'': buf_add(b, "&apos;"); break;
        case '"': buf_add(b, "&quot;"); break;
        default: buf_add_n(b, s, 1);
        }
    }
}

/* Hands the buffer to the caller, or reports the allocation failure. */
static int buf_finish(struct buf *b, char **out, struct vf_error *err)
{
    if (b->oom || !b->data) {
        free(b->data);
        *out = NULL;
        return vf_error_set(err, -ENOMEM, 500, "InternalError", "",
                            "out of memory writing domain XML");
    }
    *out = b->data;
    return 0;
}

/* ---- reading the objects ---------------------------------------------------- */

/* XML 1.0 forbids most control characters even when escaped. */
static bool check_text(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 && *s != '\t' && *s != '\n' && *s != '\r')
            return false;
    return true;
}

static bool is_uuid(const char *s)
{
    static const int dash[] = {8, 13, 18, 23};
    if (strlen(s) != 36)
        return false;
    for (int i = 0, d = 0; i < 36; i++) {
        if (d < 4 && i == dash[d]) {
            if (s[i] != '-')
                return false;
            d++;
        } else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
                     (s[i] >= 'A' && s[i] <= 'F'))) {
            return false;
        }
    }
    return true;
}

static bool is_mac(const char *s)
{
    if (strlen(s) != 17)
        return false;
    for (int i = 0; i < 17; i++) {
        bool hex = (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
                   (s[i] >= 'A' && s[i] <= 'F');
        if (i % 3 == 2 ? s[i] != ':' : !hex)
            return false;
    }
    return true;
}

/* "25%" -> 25; the schema checked the form, this only guards against an object
 * that bypassed it. */
static int parse_percent(const char *s, int *out)
{
    int n = 0, i = 0;
    while (s[i] >= '0' && s[i] <= '9' && i < 4)
        n = n * 10 + (s[i++] - '0');
    if (i == 0 || strcmp(s + i, "%") != 0 || n < 1 || n > 100)
        return -EINVAL;
    *out = n;
    return 0;
}

/* A MAC in QEMU's locally administered range 52:54:00, the other three bytes
 * from an FNV-1a hash of the uid: stable across restarts and migrations
 * without storing it anywhere. */
void vf_domain_mac_from_uid(const char *uid, char out[18])
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)uid; *p; p++) {
        h ^= *p;
        h *= 16777619u;
    }
    snprintf(out, 18, "52:54:00:%02x:%02x:%02x", (h >> 16) & 0xff, (h >> 8) & 0xff, h & 0xff);
}

/* A MAC that follows from the VM's address, so that it is unique wherever the
 * address is (the ipam never issues one twice) and a DHCP host entry can be
 * written for it before the domain exists.  Both forms are locally
 * administered unicast (second-lowest bit of the first byte set, lowest
 * clear).  IPv4 a.b.c.d -> 02:00:aa:bb:cc:dd.  IPv6 starts with 06, so that it
 * never meets an IPv4 one, then the address's last 5 bytes, the first of them
 * XORed with a hash of the 11 bytes before: addresses of one subnet of up to
 * 2^40 addresses (and the first 2^40 of any larger one) never share a MAC;
 * two addresses of different subnets with equal last 4 bytes do when their
 * prefixes' hashes differ exactly as their fifth-last bytes do (1 in 256 for
 * two subnets allocated from the start). */
int vf_domain_mac_from_ip(const char *ip, char out[18])
{
    unsigned char a[16];
    if (!ip)
        return -EINVAL;
    if (inet_pton(AF_INET, ip, a) == 1) {
        snprintf(out, 18, "02:00:%02x:%02x:%02x:%02x", a[0], a[1], a[2], a[3]);
        return 0;
    }
    if (inet_pton(AF_INET6, ip, a) != 1)
        return -EINVAL;
    uint32_t h = 2166136261u;
    for (int i = 0; i < 11; i++) {
        h ^= a[i];
        h *= 16777619u;
    }
    unsigned char fold = (unsigned char)(h ^ (h >> 8) ^ (h >> 16) ^ (h >> 24));
    snprintf(out, 18, "06:%02x:%02x:%02x:%02x:%02x", a[11] ^ fold, a[12], a[13], a[14], a[15]);
    return 0;
}

/* ---- <cpu> ------------------------------------------------------------------- */

/* The baseline is libvirt's output, stored in the class's status: accept it
 * only as one <cpu ...>...</cpu> element with no comments, processing
 * instructions or declarations, so it cannot reshape the domain around it. */
static bool baseline_is_cpu_element(const char *x, size_t n)
{
    if (n < 11 || strncmp(x, "<cpu", 4) != 0 || (x[4] != ' ' && x[4] != '>' && x[4] != '\n'))
        return false;
    if (strncmp(x + n - 6, "</cpu>", 6) != 0)
        return false;
    const char *first_close = strstr(x, "</cpu>");
    if (first_close != x + n - 6)
        return false;
    for (size_t i = 0; i + 1 < n; i++)
        if (x[i] == '<' && (x[i + 1] == '!' || x[i + 1] == '?'))
            return false;
    /* A nested <cpu> would end the element early in libvirt's eyes. */
    if (strstr(x + 4, "<cpu"))
        return false;
    return true;
}

static void add_topology(struct buf *b, int cores)
{
    if (cores > 0)
        buf_addf(b, "    <topology sockets='1' dies='1' cores='%d' threads='1'/>\n", cores);
}

/* The class's <cpu>; with cores > 0 also the topology (one socket of `cores`
 * single-threaded cores, so a guest sees what its class sizes).  The name of
 * the class is in every error: an admin fixes the class, not the VM. */
static int append_cpu(struct buf *b, const struct json_object *vmclass,
                      const char *baseline_cpu_xml, int cores, struct vf_error *err)
{
    const char *cname = vf_json_string(vf_json_member(vmclass, "metadata"), "name");
    struct json_object *cpu = vf_json_member(vf_json_member(vmclass, "spec"), "cpu");
    const char *type = vf_json_string(cpu, "type");
    if (!cname)
        cname = "";
    if (!type)
        return vf_error_set(err, -EINVAL, 400, "Invalid", "spec.cpu.type",
                            "class \"%s\": spec.cpu.type is not set", cname);

    if (strcmp(type, "Host") == 0) {
        buf_add(b, "  <cpu mode='host-model'>\n");
    } else if (strcmp(type, "HostPassthrough") == 0) {
        buf_add(b, "  <cpu mode='host-passthrough'>\n");
    } else if (strcmp(type, "Model") == 0) {
        const char *model = vf_json_string(cpu, "model");
        if (!model || !*model || !check_text(model))
            return vf_error_set(err, -EINVAL, 400, "Invalid", "spec.cpu.model",
                                "class \"%s\": spec.cpu.model is required for type Model",
                                cname);
        /* forbid: a node that cannot provide the model must refuse the VM
         * rather than silently run it on something else (migration safety). */
        buf_add(b, "  <cpu mode='custom' match='exact' check='partial'>\n"
                   "    <model fallback='forbid'>");
        xml_escape(b, model);
        buf_add(b, "</model>\n");
    } else if (strcmp(type, "Features") == 0) {
        struct json_object *features = vf_json_member(cpu, "features");
        size_t n = features && json_object_is_type(features, json_type_array)
                       ? json_object_array_length(features) : 0;
        if (n == 0)
            return vf_error_set(err, -EINVAL, 400, "Invalid", "spec.cpu.features",
                                "class \"%s\": spec.cpu.features is required for type Features",
                                cname);
        /* The node's own CPU model, plus a demand: a node lacking one of the
         * features cannot start the VM. */
        buf_add(b, "  <cpu mode='host-model'>\n");
        for (size_t i = 0; i < n; i++) {
            const char *f = json_object_get_string(json_object_array_get_idx(features, i));
            if (!f || !*f || !check_text(f))
                return vf_error_set(err, -EINVAL, 400, "Invalid", "spec.cpu.features",
                                    "class \"%s\": spec.cpu.features[%zu] is not a feature name",
                                    cname, i);
            buf_add(b, "    <feature policy='require' name='");
            xml_escape(b, f);
            buf_add(b, "'/>\n");
        }
    } else if (strcmp(type, "Discovery") == 0) {
        if (!baseline_cpu_xml)
            return vf_error_set(err, -EAGAIN, 409, "Pending", "status.baselineCpuXml",
                                "class %s has no discovered CPU yet", cname);
        const char *x = baseline_cpu_xml;
        while (*x == ' ' || *x == '\n' || *x == '\t' || *x == '\r')
            x++;
        size_t n = strlen(x);
        while (n > 0 && (x[n - 1] == ' ' || x[n - 1] == '\n' || x[n - 1] == '\t' ||
                         x[n - 1] == '\r'))
            n--;
        if (!baseline_is_cpu_element(x, n) || !check_text(x))
            return vf_error_set(err, -EINVAL, 400, "Invalid", "status.baselineCpuXml",
                                "class \"%s\": the discovered CPU is not a single <cpu> element",
                                cname);
        /* Everything but the closing tag, so the topology goes inside. */
        buf_add(b, "  ");
        buf_add_n(b, x, n - 6);
        if (n > 6 && x[n - 7] != '\n')
            buf_add(b, "\n");
        if (!strstr(x, "<topology"))
            add_topology(b, cores);
        buf_add(b, "  </cpu>\n");
        return 0;
    } else {
        return vf_error_set(err, -EINVAL, 400, "Invalid", "spec.cpu.type",
                            "class \"%s\": spec.cpu.type \"%.32s\" is unknown", cname, type);
    }
    add_topology(b, cores);
    buf_add(b, "  </cpu>\n");
    return 0;
}

int vf_domain_cpu_xml(const struct json_object *vmclass, const char *baseline_cpu_xml, char **xml,
                      struct vf_error *err)
{
    struct buf b = {0};
    *xml = NULL;
    int rc = append_cpu(&b, vmclass, baseline_cpu_xml, 0, err);
    if (rc < 0) {
        free(b.data);
        return rc;
    }
    return buf_finish(&b, xml, err);
}

/* ---- the domain ------------------------------------------------------------- */

/* The parts of the VM that the document needs, checked once up front so that
 * errors name the field. */
struct vm_facts {
    const char *name, *uid, *class_name, *bootloader;
    const char *kernel, *cmdline;
    int64_t generation, memory_kib;
    int cores, fraction;
};

static int read_vm(const struct json_object *vm, const struct json_object *vmclass,
                   struct vm_facts *f, struct vf_error *err)
{
    struct json_object *meta = vf_json_member(vm, "metadata"), *spec = vf_json_member(vm, "spec");
    f->name = vf_json_string(meta, "name");
    if (!f->name || !*f->name || !check_text(f->name))
        return vf_error_set(err, -EINVAL, 400, "Invalid", "metadata.name",
                            "VM: metadata.name is missing");
    f->uid = vf_json_string(meta, "uid");
    if (!f->uid || !is_uuid(f->uid))
        return vf_error_set(err, -EINVAL, 400, "Invalid", "metadata.uid",
                            "VM \"%s\": metadata.uid is not a UUID", f->name);
    struct json_object *gen = vf_json_member(meta, "generation");
    f->generation = gen ? json_object_get_int64(gen) : 0;
    f->class_name = vf_json_string(vf_json_member(vmclass, "metadata"), "name");
    if (!f->class_name)
        f->class_name = vf_json_string(spec, "virtualMachineClassName");
    if (!f->class_name || !check_text(f->class_name))
        return vf_error_set(err, -EINVAL, 400, "Invalid", "spec.virtualMachineClassName",
                            "VM \"%s\": the class has no name", f->name);

    struct json_object *cpu = vf_json_member(spec, "cpu");
    struct json_object *cores = vf_json_member(cpu, "cores");
    if (!cores || !json_object_is_type(cores, json_type_int) ||
        json_object_get_int64(cores) < 1 || json_object_get_int64(cores) > 1024)
        return vf_error_set(err, -EINVAL, 400, "Invalid", "spec.cpu.cores",
                            "VM \"%s\": spec.cpu.cores must be a number of cores (1-1024)",
                            f->name);
    f->cores = (int)json_object_get_int64(cores);
    const char *fraction = vf_json_string(cpu, "coreFraction");
    f->fraction = 100;
    if (fraction && parse_percent(fraction, &f->fraction) < 0)
        return vf_error_set(err, -EINVAL, 400, "Invalid", "spec.cpu.coreFraction",
                            "VM \"%s\": spec.cpu.coreFraction \"%.16s\" is not a percentage "
                            "such as \"25%%\"", f->name, fraction);

    struct json_object *size = vf_json_member(vf_json_member(spec, "memory"), "size");
    int64_t bytes = -1;
    if (size && json_object_is_type(size, json_type_int))
        bytes = json_object_get_int64(size);
    else if (size && json_object_is_type(size, json_type_string) &&
             vf_quantity_parse(json_object_get_string(size), &bytes) < 0)
        bytes = -1;
    if (bytes < 1024)
        return vf_error_set(err, -EINVAL, 400, "Invalid", "spec.memory.size",
                            "VM \"%s\": spec.memory.size must be a quantity of at least 1Ki "
                            "such as \"1Gi\"", f->name);
    /* libvirt counts KiB; a size that is not a whole KiB rounds up. */
    f->memory_kib = (bytes + 1023) / 1024;

    f->bootloader = vf_json_string(spec, "bootloader");
    struct json_object *kernel = vf_json_member(spec, "kernel");
    f->kernel = vf_json_string(kernel, "path");
    f->cmdline = vf_json_string(kernel, "cmdline");
    if (kernel && (!f->kernel || !*f->kernel || !check_text(f->kernel)))
        return vf_error_set(err, -EINVAL, 400, "Invalid", "spec.kernel.path",
                            "VM \"%s\": spec.kernel.path must be a file name", f->name);
    if (f->cmdline && !check_text(f->cmdline))
        return vf_error_set(err, -EINVAL, 400, "Invalid", "spec.kernel.cmdline",
                            "VM \"%s\": spec.kernel.cmdline has control characters", f->name);
    return 0;
}

static void append_os(struct buf *b, const struct vm_facts *f)
{
    bool efi = f->bootloader && strncmp(f->bootloader, "EFI", 3) == 0;
    bool secure = f->bootloader && strcmp(f->bootloader, "EFIWithSecureBoot") == 0;
    buf_add(b, efi ? "  <os firmware='efi'>\n" : "  <os>\n");
    /* Secure Boot needs SMM, which QEMU offers only on the q35 machine. */
    buf_addf(b, "    <type arch='x86_64' machine='%s'>hvm</type>\n", secure ? "q35" : "pc");
    if (secure)
        buf_add(b, "    <firmware>\n"
                   "      <feature enabled='yes' name='enrolled-keys'/>\n"
                   "      <feature enabled='yes' name='secure-boot'/>\n"
                   "    </firmware>\n");
    if (f->kernel) {
        buf_add(b, "    <kernel>");
        xml_escape(b, f->kernel);
        buf_add(b, "</kernel>\n");
        if (f->cmdline) {
            buf_add(b, "    <cmdline>");
            xml_escape(b, f->cmdline);
            buf_add(b, "</cmdline>\n");
        }
    }
    buf_add(b, "  </os>\n");
    buf_add(b, "  <features>\n    <acpi/>\n    <apic/>\n");
    if (secure)
        buf_add(b, "    <smm state='on'/>\n");
    buf_add(b, "  </features>\n");
}

/* A partial core is a CFS bandwidth limit on each vCPU thread (libvirt's
 * <quota> is per vCPU); the shares weigh VMs against each other when the node
 * is contended, in proportion to the CPU time they are entitled to. */
static void append_cputune(struct buf *b, const struct vm_facts *f)
{
    int64_t shares = (int64_t)SHARES_PER_CORE * f->cores * f->fraction / 100;
    if (shares < 2)
        shares = 2;   /* the kernel's minimum */
    if (shares > 262144)
        shares = 262144;
    buf_addf(b, "  <cputune>\n    <shares>%lld</shares>\n", (long long)shares);
    if (f->fraction < 100)
        buf_addf(b, "    <period>%d</period>\n    <quota>%lld</quota>\n", CPU_PERIOD_US,
                 (long long)CPU_PERIOD_US * f->fraction / 100);
    buf_add(b, "  </cputune>\n");
}

/* The disks, checked first so that an error names the one at fault. */
static int check_disks(const struct vf_domain_xml_options *opts, const char *vm,
                       struct vf_error *err)
{
    size_t n_disk = 0, n_cdrom = 0;
    for (size_t i = 0; i < opts->n_disks; i++) {
        const struct vf_domain_disk *d = &opts->disks[i];
        bool volume = !d->path && d->pool && d->volume;
        if (volume ? !d->pool[0] || !d->volume[0] || !check_text(d->pool) ||
                         !check_text(d->volume)
                   : !d->path || d->path[0] != '/' || !check_text(d->path))
            return vf_error_set(err, -EINVAL, 400, "Invalid", "spec.blockDeviceRefs",
                                "VM \"%s\": spec.blockDeviceRefs[%zu]: the disk has neither an "
                                "absolute file path nor a pool and volume", vm, i);
        if (!d->format || (strcmp(d->format, "raw") && strcmp(d->format, "qcow2")))
            return vf_error_set(err, -EINVAL, 400, "Invalid", "spec.blockDeviceRefs",
                                "VM \"%s\": spec.blockDeviceRefs[%zu]: format \"%.16s\" is "
                                "neither raw nor qcow2", vm, i, d->format ? d->format : "");
        /* vda..vdz and sda..sdz: far more than the schema's 16 refs. */
        if ((d->cdrom ? ++n_cdrom : ++n_disk) > 26)
            return vf_error_set(err, -EINVAL, 400, "Invalid", "spec.blockDeviceRefs",
                                "VM \"%s\": more than 26 disks of one kind", vm);
    }
    return 0;
}

static void append_disks(struct buf *b, const struct vf_domain_xml_options *opts, bool kernel)
{
    size_t n_disk = 0, n_cdrom = 0;
    for (size_t i = 0; i < opts->n_disks; i++) {
        const struct vf_domain_disk *d = &opts->disks[i];
        char dev[8];
        if (d->cdrom)
            snprintf(dev, sizeof dev, "sd%c", (char)('a' + n_cdrom++));
        else
            snprintf(dev, sizeof dev, "vd%c", (char)('a' + n_disk++));
        buf_addf(b, "    <disk type='%s' device='%s'>\n"
                    "      <driver name='qemu' type='%s'/>\n",
                 d->path ? "file" : "volume", d->cdrom ? "cdrom" : "disk", d->format);
        if (d->path) {
            buf_add(b, "      <source file='");
            xml_escape(b, d->path);
        } else {
            buf_add(b, "      <source pool='");
            xml_escape(b, d->pool);
            buf_add(b, "' volume='");
            xml_escape(b, d->volume);
        }
        buf_addf(b, "'/>\n      <target dev='%s' bus='%s'/>\n", dev, d->cdrom ? "sata" : "virtio");
        if (d->cdrom || d->readonly)
            buf_add(b, "      <readonly/>\n");
        /* A direct kernel boot needs no boot device. */
        if (!kernel)
            buf_addf(b, "      <boot order='%zu'/>\n", i + 1);
        buf_add(b, "    </disk>\n");
    }
}

static void append_devices(struct buf *b, const struct vf_domain_xml_options *opts,
                           const char *mac, bool kernel)
{
    buf_add(b, "  <devices>\n");
    if (opts->emulator) {
        buf_add(b, "    <emulator>");
        xml_escape(b, opts->emulator);
        buf_add(b, "</emulator>\n");
    }
    append_disks(b, opts, kernel);
    if (opts->network) {
        buf_add(b, "    <interface type='network'>\n      <source network='");
        xml_escape(b, opts->network);
        buf_addf(b, "'/>\n      <mac address='%s'/>\n      <model type='virtio'/>\n"
                    "    </interface>\n", mac);
    }
    buf_add(b, "    <serial type='pty'>\n      <target port='0'/>\n    </serial>\n"
               "    <console type='pty'>\n      <target type='serial' port='0'/>\n"
               "    </console>\n");
    /* Memory is reserved for the VM as sized; a balloon would let the node
     * take it back behind placement's back. */
    buf_add(b, "    <memballoon model='none'/>\n");
    buf_add(b, "  </devices>\n");
}

int vf_domain_xml(const struct json_object *vm, const struct json_object *vmclass,
                  const struct vf_domain_xml_options *opts, char **xml, struct vf_error *err)
{
    struct vm_facts f = {0};
    struct buf b = {0};
    char mac[18];
    *xml = NULL;
    if (!opts || !opts->domain_type || !*opts->domain_type || !check_text(opts->domain_type))
        return vf_error_set(err, -EINVAL, 500, "InternalError", "",
                            "domain XML: no domain type given");
    int rc = read_vm(vm, vmclass, &f, err);
    if (rc < 0)
        return rc;
    if (opts->mac && !is_mac(opts->mac))
        return vf_error_set(err, -EINVAL, 400, "Invalid", "",
                            "VM \"%s\": MAC address \"%.32s\" is not of the form "
                            "52:54:00:12:34:56", f.name, opts->mac);
    if ((opts->network && !check_text(opts->network)) ||
        (opts->emulator && !check_text(opts->emulator)))
        return vf_error_set(err, -EINVAL, 400, "Invalid", "",
                            "VM \"%s\": network or emulator name has control characters",
                            f.name);
    if ((rc = check_disks(opts, f.name, err)) < 0)
        return rc;
    if (opts->mac)
        snprintf(mac, sizeof mac, "%s", opts->mac);
    else
        vf_domain_mac_from_uid(f.uid, mac);

    buf_add(&b, "<domain type='");
    xml_escape(&b, opts->domain_type);
    buf_add(&b, "'>\n  <name>");
    xml_escape(&b, f.name);
    buf_addf(&b, "</name>\n  <uuid>%s</uuid>\n", f.uid);
    buf_add(&b, "  <metadata>\n    <vf:vm xmlns:vf='" VF_DOMAIN_XMLNS "' name='");
    xml_escape(&b, f.name);
    buf_addf(&b, "' uid='%s' generation='%lld' class='", f.uid, (long long)f.generation);
    xml_escape(&b, f.class_name);
    buf_add(&b, "'/>\n  </metadata>\n");
    buf_addf(&b, "  <memory unit='KiB'>%lld</memory>\n", (long long)f.memory_kib);
    buf_addf(&b, "  <currentMemory unit='KiB'>%lld</currentMemory>\n", (long long)f.memory_kib);
    buf_addf(&b, "  <vcpu placement='static'>%d</vcpu>\n", f.cores);
    append_cputune(&b, &f);
    rc = append_cpu(&b, vmclass, opts->baseline_cpu_xml, f.cores, err);
    if (rc < 0) {
        free(b.data);
        return rc;
    }
    append_os(&b, &f);
    buf_add(&b, "  <clock offset='utc'/>\n"
                "  <on_poweroff>destroy</on_poweroff>\n"
                "  <on_reboot>restart</on_reboot>\n"
                "  <on_crash>destroy</on_crash>\n");
    append_devices(&b, opts, mac, f.kernel != NULL);
    buf_add(&b, "</domain>\n");
    return buf_finish(&b, xml, err);
}

/* ---- reading our metadata back ------------------------------------------------ */

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* libvirt keeps a metadata element's prefix as it was defined, so the domains
 * this daemon defined say <vf:vm ... uid='...'/>; the quote style is libvirt's
 * choice (it writes double quotes), so both are accepted.  The start tag is
 * walked attribute by attribute (a value that merely contains "uid=" is not
 * the attribute).  Anything malformed, too long or with characters a uid never
 * has is treated as absent: the domain is then not ours. */
int vf_domain_xml_vm_uid(const char *xml, char *uid, size_t len)
{
    if (uid && len)
        uid[0] = '\0';
    if (!xml || !uid || len == 0)
        return -ENOENT;
    const char *p = strstr(xml, "<vf:vm");
    while (p && !is_space(p[6]))
        p = strstr(p + 1, "<vf:vm");   /* <vf:vmfoo> is another element */
    if (!p)
        return -ENOENT;
    const char *end = memchr(p, '>', strnlen(p, VM_TAG_MAX));
    if (!end)
        return -ENOENT;
    const char *a = p + 6;
    for (;;) {
        while (a < end && is_space(*a))
            a++;
        if (a >= end || *a == '/')
            return -ENOENT;
        const char *name = a;
        while (a < end && !is_space(*a) && *a != '=')
            a++;
        size_t name_len = (size_t)(a - name);
        while (a < end && is_space(*a))
            a++;
        if (a >= end || *a != '=')
            return -ENOENT;
        a++;
        while (a < end && is_space(*a))
            a++;
        if (a >= end || (*a != '\'' && *a != '"'))
            return -ENOENT;
        char quote = *a++;
        const char *v = a;
        while (a < end && *a != quote)
            a++;
        if (a >= end)
            return -ENOENT;
        size_t n = (size_t)(a - v);
        a++;
        if (name_len != 3 || strncmp(name, "uid", 3) != 0)
            continue;
        if (n == 0 || n >= len || n > UID_MAX_LEN)
            return -ENOENT;
        for (size_t i = 0; i < n; i++) {
            char c = v[i];
            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
                  c == '-'))
                return -ENOENT;
        }
        memcpy(uid, v, n);
        uid[n] = '\0';
        return 0;
    }
}
