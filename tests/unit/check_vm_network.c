#include <config.h>
/* vm_network: the <interface type='network'> elements read from a domain's
 * XML (libvirt's output, and odd but valid variants of it).  The DHCP host
 * entries themselves are tested on the test driver's networks by check_vms. */
#include <stdlib.h>
#include <string.h>

#include "core/vm_network.h"
#include "tests/unit/testlib.h"

static void nic_is(const struct vf_vm_nic *nic, const char *network, const char *mac)
{
    ck_assert_str_eq(nic->network, network);
    ck_assert_str_eq(nic->mac, mac);
}

/* What libvirt writes for a running VM on a libvirt network. */
START_TEST(test_nics_libvirt_output)
{
    static const char xml[] =
        "<domain type='kvm' id='1'>\n  <name>web</name>\n  <devices>\n"
        "    <interface type='network'>\n      <mac address='02:00:0a:42:0a:01'/>\n"
        "      <source network='vfnet' portid='8d8a6c5e-0000-0000-0000-000000000001' "
        "bridge='virbr1'/>\n      <target dev='vnet0'/>\n      <model type='virtio'/>\n"
        "      <alias name='net0'/>\n    </interface>\n"
        "    <interface type='bridge'>\n      <mac address='02:00:0a:42:0a:02'/>\n"
        "      <source bridge='br0'/>\n    </interface>\n"
        "    <interface type='network'>\n      <mac address='02:00:0a:42:0a:03'/>\n"
        "      <source network='othernet'/>\n    </interface>\n"
        "  </devices>\n</domain>\n";
    struct vf_vm_nic nics[4];
    ck_assert_uint_eq(vf_vm_network_nics(xml, nics, 4), 2);
    nic_is(&nics[0], "vfnet", "02:00:0a:42:0a:01");
    nic_is(&nics[1], "othernet", "02:00:0a:42:0a:03");
    /* At most n. */
    memset(nics, 0, sizeof nics);
    ck_assert_uint_eq(vf_vm_network_nics(xml, nics, 1), 1);
    ck_assert_str_eq(nics[0].network, "vfnet");
    ck_assert_uint_eq(vf_vm_network_nics(xml, nics, 0), 0);
}
END_TEST

/* Double quotes, comments (one hiding an interface), an entity in a name,
 * '>' in an attribute value, elements in the other order, and look-alikes in
 * other namespaces (metadata) that are not libvirt's interfaces. */
START_TEST(test_nics_odd_but_valid)
{
    static const char xml[] =
        "<?xml version=\"1.0\"?>\n"
        "<domain type=\"qemu\" xmlns:vf=\"http://virtfleet.io/xmlns/vm/1\">"
        "<metadata><vf:interface type=\"network\"><vf:mac address=\"02:00:00:00:00:09\"/>"
        "<vf:source network=\"meta\"/></vf:interface></metadata>"
        "<devices>"
        "<!-- <interface type='network'><mac address='02:00:00:00:00:08'/>"
        "<source network='commented'/></interface> -->"
        "<interface type=\"network\"><source network=\"a&amp;b\"/><!-- c -->"
        "<mac address=\"02:00:00:00:00:01\"/><alias name=\"x>y\"/></interface>"
        "<interface type='network'><mac address='02:00:00:00:00:02'/>"
        "<o:source xmlns:o='urn:other' network='not-this'/><source network='net2'/>"
        "</interface>"
        "</devices></domain>";
    struct vf_vm_nic nics[4];
    ck_assert_uint_eq(vf_vm_network_nics(xml, nics, 4), 2);
    nic_is(&nics[0], "a&b", "02:00:00:00:00:01");
    nic_is(&nics[1], "net2", "02:00:00:00:00:02");
}
END_TEST

/* Interfaces that cannot be ours are skipped; what does not parse has none. */
START_TEST(test_nics_skipped)
{
    char xml[1024];
    char long_name[VF_VM_NETWORK_NAME_MAX + 2];
    memset(long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    snprintf(xml, sizeof xml,
             "<domain><devices>"
             "<interface type='network'><mac address='02:00:00:00:00:01'/>"
             "<source network='%s'/></interface>"                  /* name too long */
             "<interface type='network'><source network='n'/></interface>"   /* no MAC */
             "<interface type='network'><mac address='02:00:00:00:00:03'/></interface>"
             "<interface type='network'><mac address='02:00:00:00:00:04:05'/>"
             "<source network='n'/></interface>"                   /* MAC too long */
             "<interface type='network'/>"
             "<interface type='network'><mac address='02:00:00:00:00:06'/>"
             "<source network='ok'/></interface>"
             "</devices></domain>", long_name);
    struct vf_vm_nic nics[8];
    ck_assert_uint_eq(vf_vm_network_nics(xml, nics, 8), 1);
    nic_is(&nics[0], "ok", "02:00:00:00:00:06");

    static const char *const none[] = {
        NULL,
        "",
        "<domain><devices><interface type='network'><mac address='02:00:00:00:00:01'/>"
        "<source network='n'/></interface></devices>",               /* cut off */
        "<!DOCTYPE domain [<!ENTITY n 'vfnet'>]><domain><devices><interface type='network'>"
        "<mac address='02:00:00:00:00:01'/><source network='&n;'/></interface></devices></domain>",
    };
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++)
        ck_assert_uint_eq(vf_vm_network_nics(none[i], nics, 8), 0);
}
END_TEST

static Suite *vm_network_suite(void)
{
    const struct vf_test_case cases[] = {
        {"nics_libvirt_output", test_nics_libvirt_output},
        {"nics_odd_but_valid", test_nics_odd_but_valid},
        {"nics_skipped", test_nics_skipped},
    };
    return vf_test_suite("vm_network", cases, sizeof cases / sizeof cases[0]);
}

int main(void)
{
    return vf_test_run(vm_network_suite());
}
