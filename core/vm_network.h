/* A VM's DHCP host entry in a libvirt network on one node
 * (virtualization.libvirtNetwork), and the network interfaces a domain's XML
 * names.  The entry lives as long as the VM's domain is defined on that node:
 * vm_jobs.c adds it before a domain starts and removes it with the domain's
 * definition (stop, delete, a stale copy, the node a migration left).
 *
 * These make blocking libvirt calls: worker threads only. */
#ifndef VF_VM_NETWORK_H
#define VF_VM_NETWORK_H
#include <stddef.h>
#include <libvirt/libvirt.h>

#define VF_VM_NETWORK_NAME_MAX 64   /* config.c refuses longer names */

struct vf_vm_nic {
    char network[VF_VM_NETWORK_NAME_MAX + 1];
    char mac[18];
};

/* The <interface type='network'> elements of a domain's XML (libvirt's own
 * output), at most n of them into nics; returns how many were found.  Names
 * too long to be ours are skipped. */
size_t vf_vm_network_nics(const char *domain_xml, struct vf_vm_nic *nics, size_t n);

/* Makes `network` on conn hand `ip` to the VM `name` with MAC `mac`: first
 * every host entry with the same MAC, address or name goes (libvirt refuses to
 * add a second one, and a stale one would hand out the wrong address), then
 * <host mac= name= ip=/> is added to the <ip> element whose subnet holds the
 * address and that has a <dhcp> element.  IPv6 entries are <host name= ip=/>:
 * libvirt allows no MAC there (dnsmasq matches DHCPv6 clients by DUID or
 * name).  The running network and its persistent definition are updated
 * separately, each as it is: an entry already as wanted is left alone.
 * 0, or a negative errno with msg saying what failed, naming the network
 * ("network \"N\": ..."). */
int vf_vm_network_add(virConnectPtr conn, const char *network, const char *mac, const char *name,
                      const char *ip, char *msg, size_t len);

/* Removes the VM's host entries from `network` on conn: those with its MAC,
 * and those with both its name and its address (IPv6 entries have no MAC);
 * ip may be NULL (then the MAC alone).
 * A network that does not exist there has nothing to remove: 0. */
int vf_vm_network_remove(virConnectPtr conn, const char *network, const char *mac,
                         const char *name, const char *ip, char *msg, size_t len);
#endif
