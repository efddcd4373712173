/* libvirt domain XML from a VirtualMachine and its VirtualMachineClass.  Pure:
 * the same inputs give the same XML byte for byte.
 *
 * The domain is named after the VM and carries the VM's uid as its UUID and a
 * <metadata><vf:vm xmlns:vf="https://virtfleet.io/xmlns/domain/1" name= uid=
 * generation= class= /></metadata> element, by which the daemon recognises the
 * domains it manages (others on the host are left alone). */
#ifndef VF_DOMAIN_XML_H
#define VF_DOMAIN_XML_H
#include <stdbool.h>
#include <stddef.h>
#include <json-c/json.h>
#include <virtfleet/module.h>

#define VF_DOMAIN_XMLNS "https://virtfleet.io/xmlns/domain/1"

/* A disk of the VM (spec.blockDeviceRefs, resolved by vm_disks.c), in boot order. */
struct vf_domain_disk {
    const char *path;            /* the file on the node, or NULL for a volume: */
    const char *pool, *volume;   /* a libvirt storage volume, found by name on each node (a
                                    migration's target resolves it in its own pool) */
    const char *format;          /* "raw" or "qcow2" */
    bool cdrom;                  /* a CD-ROM on SATA (always read-only); else a virtio disk */
    bool readonly;
};

struct vf_domain_xml_options {
    const char *domain_type;     /* "kvm", "qemu" (TCG) or "test" (libvirt's test driver) */
    const char *emulator;        /* NULL: libvirt's default */
    const char *network;         /* libvirt network for the NIC, or NULL: no NIC */
    const char *mac;             /* NIC MAC, or NULL: derived from the VM uid */
    /* Discovery classes: the computed baseline <cpu> XML (status of the class), or NULL. */
    const char *baseline_cpu_xml;
    const struct vf_domain_disk *disks;   /* n_disks of them, or NULL */
    size_t n_disks;
};

/* *xml: a new string (free()).  Errors name the field: a class of type Model
 * without a model, a memory size that is not a quantity, ... */
int vf_domain_xml(const struct json_object *vm, const struct json_object *vmclass,
                  const struct vf_domain_xml_options *opts, char **xml, struct vf_error *err);
/* The <cpu> element alone for a class (used by Discovery and migration checks). */
int vf_domain_cpu_xml(const struct json_object *vmclass, const char *baseline_cpu_xml, char **xml,
                      struct vf_error *err);
/* The NIC's MAC for a VM with address ip (IPv4 or IPv6; see domain_xml.c for
 * the mapping and its one caveat) into out; 0 or -EINVAL for no address. */
int vf_domain_mac_from_ip(const char *ip, char out[18]);
/* The NIC's MAC when the VM has no address (no virtualMachineCIDRs): 52:54:00
 * and a hash of the uid, the default when options.mac is NULL. */
void vf_domain_mac_from_uid(const char *uid, char out[18]);
/* Reads the vf:vm metadata uid out of a domain's XML (bounded scan); 0 or -ENOENT. */
int vf_domain_xml_vm_uid(const char *xml, char *uid, size_t len);
#endif
