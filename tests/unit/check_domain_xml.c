#include <config.h>
/* Domain XML: the <cpu> of every class type, sizing (memory, vCPUs, CPU
 * bandwidth for partial cores), firmware, kernel boot, the NIC and its MAC,
 * escaping, errors that name the field, reading our metadata back, disks and
 * CD-ROMs, and round trips through libvirt's test driver (define, start, dump). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "core/domain_xml.h"
#include "tests/unit/testlib.h"

#define UID "0f8fad5b-d9cb-469f-a165-70867728950e"

static const char *const skylake =
    "<cpu><arch>x86_64</arch><model>Skylake-Client-IBRS</model><vendor>Intel</vendor>"
    "<feature name='vmx'/></cpu>";
static const char *const haswell =
    "<cpu><arch>x86_64</arch><model>Haswell-noTSX</model><vendor>Intel</vendor>"
    "<feature name='vmx'/></cpu>";

/* A VM object as the store holds it, with the given spec (JSON text). */
static struct json_object *vm_with(const char *name, const char *spec)
{
    char text[2048];
    snprintf(text, sizeof text,
             "{\"kind\":\"VirtualMachine\",\"metadata\":{\"name\":\"%s\",\"uid\":\"" UID "\","
             "\"generation\":3},\"spec\":%s}", name, spec);
    return vf_test_json(text);
}

static struct json_object *default_vm(void)
{
    return vm_with("vm1", "{\"virtualMachineClassName\":\"c1\",\"cpu\":{\"cores\":2,"
                          "\"coreFraction\":\"25%\"},\"memory\":{\"size\":\"1Gi\"}}");
}

static struct json_object *class_of(const char *cpu)
{
    char text[1024];
    snprintf(text, sizeof text, "{\"kind\":\"VirtualMachineClass\",\"metadata\":{\"name\":\"c1\"},"
                                "\"spec\":{\"cpu\":%s}}", cpu);
    return vf_test_json(text);
}

/* XML of the default VM in a class with the given spec.cpu; fails the test
 * on error. */
static char *xml_for(const char *cpu, const struct vf_domain_xml_options *opts)
{
    struct json_object *vm = default_vm(), *cl = class_of(cpu);
    struct vf_domain_xml_options dflt = {.domain_type = "kvm"};
    struct vf_error err = {0};
    char *xml = NULL;
    int rc = vf_domain_xml(vm, cl, opts ? opts : &dflt, &xml, &err);
    ck_assert_msg(rc == 0, "vf_domain_xml: %s", err.message);
    json_object_put(vm);
    json_object_put(cl);
    return xml;
}

#define ASSERT_HAS(xml, s) ck_assert_msg(strstr((xml), (s)) != NULL, "no \"%s\" in:\n%s", (s), (xml))
#define ASSERT_LACKS(xml, s) ck_assert_msg(strstr((xml), (s)) == NULL, "\"%s\" in:\n%s", (s), (xml))

/* ---- content ------------------------------------------------------------------ */

START_TEST(test_identity_and_sizing)
{
    char *xml = xml_for("{\"type\":\"Host\"}", NULL);
    ck_assert_ptr_eq(strstr(xml, "<domain type='kvm'>"), xml);
    ASSERT_HAS(xml, "<name>vm1</name>");
    ASSERT_HAS(xml, "<uuid>" UID "</uuid>");
    ASSERT_HAS(xml, "<vf:vm xmlns:vf='" VF_DOMAIN_XMLNS "' name='vm1' uid='" UID
                    "' generation='3' class='c1'/>");
    ASSERT_HAS(xml, "<memory unit='KiB'>1048576</memory>");
    ASSERT_HAS(xml, "<vcpu placement='static'>2</vcpu>");
    /* 25% of a core per vCPU: a quarter of each period, per vCPU thread. */
    ASSERT_HAS(xml, "<period>100000</period>");
    ASSERT_HAS(xml, "<quota>25000</quota>");
    ASSERT_HAS(xml, "<shares>512</shares>");
    ASSERT_HAS(xml, "<type arch='x86_64' machine='pc'>hvm</type>");
    ASSERT_HAS(xml, "<acpi/>");
    ASSERT_HAS(xml, "<apic/>");
    ASSERT_HAS(xml, "<clock offset='utc'/>");
    ASSERT_HAS(xml, "<on_poweroff>destroy</on_poweroff>");
    ASSERT_HAS(xml, "<on_reboot>restart</on_reboot>");
    ASSERT_HAS(xml, "<on_crash>destroy</on_crash>");
    ASSERT_HAS(xml, "<serial type='pty'>");
    ASSERT_HAS(xml, "<console type='pty'>");
    ASSERT_HAS(xml, "<memballoon model='none'/>");
    ASSERT_LACKS(xml, "<interface");
    ASSERT_LACKS(xml, "<emulator>");
    ASSERT_LACKS(xml, "<kernel>");
    ASSERT_LACKS(xml, "firmware=");
    ASSERT_LACKS(xml, "<disk");

    /* Pure: the same inputs give the same bytes. */
    char *again = xml_for("{\"type\":\"Host\"}", NULL);
    ck_assert_str_eq(xml, again);
    free(again);
    free(xml);
}
END_TEST

START_TEST(test_full_core_has_no_quota)
{
    struct json_object *vm = vm_with("big", "{\"cpu\":{\"cores\":4,\"coreFraction\":\"100%\"},"
                                            "\"memory\":{\"size\":\"1536Mi\"}}");
    struct json_object *cl = class_of("{\"type\":\"HostPassthrough\"}");
    struct vf_domain_xml_options o = {.domain_type = "qemu"};
    struct vf_error err = {0};
    char *xml = NULL;
    ck_assert_int_eq(vf_domain_xml(vm, cl, &o, &xml, &err), 0);
    ASSERT_HAS(xml, "<domain type='qemu'>");
    ASSERT_HAS(xml, "<memory unit='KiB'>1572864</memory>");
    ASSERT_HAS(xml, "<vcpu placement='static'>4</vcpu>");
    ASSERT_HAS(xml, "<shares>4096</shares>");
    ASSERT_LACKS(xml, "<quota>");
    ASSERT_LACKS(xml, "<period>");
    /* Without spec.virtualMachineClassName the class's own name is used. */
    ASSERT_HAS(xml, "class='c1'");
    free(xml);
    json_object_put(vm);
    json_object_put(cl);
}
END_TEST

START_TEST(test_cpu_per_class_type)
{
    char *xml = xml_for("{\"type\":\"Host\"}", NULL);
    ASSERT_HAS(xml, "<cpu mode='host-model'>\n"
                    "    <topology sockets='1' dies='1' cores='2' threads='1'/>\n  </cpu>");
    free(xml);

    xml = xml_for("{\"type\":\"HostPassthrough\"}", NULL);
    ASSERT_HAS(xml, "<cpu mode='host-passthrough'>\n"
                    "    <topology sockets='1' dies='1' cores='2' threads='1'/>\n  </cpu>");
    free(xml);

    xml = xml_for("{\"type\":\"Model\",\"model\":\"IvyBridge\"}", NULL);
    ASSERT_HAS(xml, "<cpu mode='custom' match='exact' check='partial'>\n"
                    "    <model fallback='forbid'>IvyBridge</model>\n"
                    "    <topology sockets='1' dies='1' cores='2' threads='1'/>\n  </cpu>");
    free(xml);

    xml = xml_for("{\"type\":\"Features\",\"features\":[\"vmx\",\"sse4.2\"]}", NULL);
    ASSERT_HAS(xml, "<cpu mode='host-model'>\n"
                    "    <feature policy='require' name='vmx'/>\n"
                    "    <feature policy='require' name='sse4.2'/>\n"
                    "    <topology");
    free(xml);

    const char *baseline = "<cpu mode='custom' match='exact'>\n"
                           "  <model fallback='allow'>Haswell-noTSX</model>\n"
                           "  <feature policy='require' name='vmx'/>\n</cpu>\n";
    struct vf_domain_xml_options o = {.domain_type = "kvm", .baseline_cpu_xml = baseline};
    xml = xml_for("{\"type\":\"Discovery\",\"discovery\":{}}", &o);
    ASSERT_HAS(xml, "  <cpu mode='custom' match='exact'>\n"
                    "  <model fallback='allow'>Haswell-noTSX</model>\n"
                    "  <feature policy='require' name='vmx'/>\n"
                    "    <topology sockets='1' dies='1' cores='2' threads='1'/>\n"
                    "  </cpu>\n");
    free(xml);
}
END_TEST

START_TEST(test_cpu_element_alone)
{
    struct json_object *cl = class_of("{\"type\":\"Model\",\"model\":\"Nehalem\"}");
    struct vf_error err = {0};
    char *xml = NULL;
    ck_assert_int_eq(vf_domain_cpu_xml(cl, NULL, &xml, &err), 0);
    ck_assert_str_eq(xml, "  <cpu mode='custom' match='exact' check='partial'>\n"
                          "    <model fallback='forbid'>Nehalem</model>\n  </cpu>\n");
    free(xml);
    json_object_put(cl);

    cl = class_of("{\"type\":\"Discovery\"}");
    ck_assert_int_eq(vf_domain_cpu_xml(cl, "<cpu mode='custom'><model>kvm64</model></cpu>", &xml,
                                       &err), 0);
    ck_assert_str_eq(xml, "  <cpu mode='custom'><model>kvm64</model>\n  </cpu>\n");
    free(xml);
    json_object_put(cl);
}
END_TEST

START_TEST(test_discovery_needs_baseline)
{
    struct json_object *vm = default_vm();
    struct json_object *cl = class_of("{\"type\":\"Discovery\",\"discovery\":{}}");
    struct vf_domain_xml_options o = {.domain_type = "kvm"};
    struct vf_error err = {0};
    char *xml = (char *)"unchanged";
    ck_assert_int_eq(vf_domain_xml(vm, cl, &o, &xml, &err), -EAGAIN);
    ck_assert_ptr_null(xml);
    ck_assert_str_eq(err.message, "class c1 has no discovered CPU yet");

    /* The baseline is inserted as is, so anything but one <cpu> element is
     * refused rather than allowed to reshape the domain. */
    static const char *const bad[] = {
        "<cpu><model>x</model></cpu><devices><disk/></devices><cpu></cpu>",
        "<cpu><model>x</model></cpu><os/>",
        "<cpux></cpux>",
        "<cpu><!-- --></cpu>",
        "<cpu><cpu></cpu></cpu>",
        "<cpu/>",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        o.baseline_cpu_xml = bad[i];
        memset(&err, 0, sizeof err);
        ck_assert_msg(vf_domain_xml(vm, cl, &o, &xml, &err) == -EINVAL, "accepted %s", bad[i]);
        ck_assert_str_eq(err.field, "status.baselineCpuXml");
        ck_assert_ptr_nonnull(strstr(err.message, "class \"c1\""));
    }
    json_object_put(vm);
    json_object_put(cl);
}
END_TEST

START_TEST(test_firmware_and_kernel)
{
    struct json_object *cl = class_of("{\"type\":\"Host\"}");
    struct vf_domain_xml_options o = {.domain_type = "kvm"};
    struct vf_error err = {0};
    char *xml = NULL;

    struct json_object *vm = vm_with("k", "{\"cpu\":{\"cores\":1},\"memory\":{\"size\":\"128Mi\"},"
                                          "\"bootloader\":\"EFI\",\"kernel\":{\"path\":"
                                          "\"/srv/a&b/fill.elf\",\"cmdline\":\"x=<1> y='2' "
                                          "z=\\\"3\\\"\"}}");
    ck_assert_int_eq(vf_domain_xml(vm, cl, &o, &xml, &err), 0);
    ASSERT_HAS(xml, "<os firmware='efi'>\n    <type arch='x86_64' machine='pc'>hvm</type>\n");
    ASSERT_HAS(xml, "<kernel>/srv/a&amp;b/fill.elf</kernel>");
    ASSERT_HAS(xml, "<cmdline>x=&lt;1&gt; y=&apos;2&apos; z=&quot;3&quot;</cmdline>");
    ASSERT_HAS(xml, "<memory unit='KiB'>131072</memory>");
    ASSERT_LACKS(xml, "secure-boot");
    free(xml);
    json_object_put(vm);

    /* Secure Boot needs SMM, which QEMU has on q35 only. */
    vm = vm_with("s", "{\"cpu\":{\"cores\":1},\"memory\":{\"size\":\"1Gi\"},"
                      "\"bootloader\":\"EFIWithSecureBoot\"}");
    ck_assert_int_eq(vf_domain_xml(vm, cl, &o, &xml, &err), 0);
    ASSERT_HAS(xml, "<os firmware='efi'>\n    <type arch='x86_64' machine='q35'>hvm</type>\n");
    ASSERT_HAS(xml, "<feature enabled='yes' name='secure-boot'/>");
    ASSERT_HAS(xml, "<smm state='on'/>");
    free(xml);
    json_object_put(vm);

    vm = vm_with("b", "{\"cpu\":{\"cores\":1},\"memory\":{\"size\":\"1Gi\"},"
                      "\"bootloader\":\"BIOS\"}");
    ck_assert_int_eq(vf_domain_xml(vm, cl, &o, &xml, &err), 0);
    ASSERT_HAS(xml, "  <os>\n");
    ASSERT_LACKS(xml, "firmware");
    free(xml);
    json_object_put(vm);
    json_object_put(cl);
}
END_TEST

START_TEST(test_nic_and_mac)
{
    struct vf_domain_xml_options o = {.domain_type = "kvm", .network = "lan'1",
                                      .emulator = "/usr/bin/qemu-system-x86_64"};
    char *xml = xml_for("{\"type\":\"Host\"}", &o);
    ASSERT_HAS(xml, "<emulator>/usr/bin/qemu-system-x86_64</emulator>");
    ASSERT_HAS(xml, "<interface type='network'>\n      <source network='lan&apos;1'/>\n"
                    "      <mac address='52:54:00:");
    ASSERT_HAS(xml, "<model type='virtio'/>");
    /* Derived from the uid: the same every time, another for another uid. */
    const char *m = strstr(xml, "<mac address='") + strlen("<mac address='");
    char mac[18];
    memcpy(mac, m, 17);
    mac[17] = '\0';
    for (int i = 0; i < 17; i++)
        ck_assert(i % 3 == 2 ? mac[i] == ':' : strchr("0123456789abcdef", mac[i]) != NULL);
    char *again = xml_for("{\"type\":\"Host\"}", &o);
    ASSERT_HAS(again, mac);
    free(again);
    free(xml);

    struct json_object *vm = vf_test_json(
        "{\"metadata\":{\"name\":\"vm2\",\"uid\":\"9a1b7c3e-1111-4222-8333-944455556666\"},"
        "\"spec\":{\"cpu\":{\"cores\":1},\"memory\":{\"size\":\"1Gi\"}}}");
    struct json_object *cl = class_of("{\"type\":\"Host\"}");
    struct vf_error err = {0};
    ck_assert_int_eq(vf_domain_xml(vm, cl, &o, &xml, &err), 0);
    ASSERT_HAS(xml, "<mac address='52:54:00:");
    ASSERT_LACKS(xml, mac);
    free(xml);

    o.mac = "52:54:00:aa:bb:cc";
    ck_assert_int_eq(vf_domain_xml(vm, cl, &o, &xml, &err), 0);
    ASSERT_HAS(xml, "<mac address='52:54:00:aa:bb:cc'/>");
    free(xml);

    o.mac = "52:54:00:aa:bb:cc'/><x";
    ck_assert_int_eq(vf_domain_xml(vm, cl, &o, &xml, &err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "vm2"));
    json_object_put(vm);
    json_object_put(cl);
}
END_TEST

/* The NIC's MAC follows from the VM's address: unique because addresses
 * are, locally administered unicast, and never the same for IPv4 and IPv6. */
START_TEST(test_mac_from_ip)
{
    char mac[18], other[18];
    ck_assert_int_eq(vf_domain_mac_from_ip("10.66.10.1", mac), 0);
    ck_assert_str_eq(mac, "02:00:0a:42:0a:01");
    ck_assert_int_eq(vf_domain_mac_from_ip("255.0.128.7", mac), 0);
    ck_assert_str_eq(mac, "02:00:ff:00:80:07");

    /* IPv6: 06, then the last 5 bytes with the first mixed with the prefix. */
    ck_assert_int_eq(vf_domain_mac_from_ip("fd00:66::a42:a01", mac), 0);
    ck_assert_int_eq(strncmp(mac, "06:", 3), 0);
    ck_assert_str_eq(mac + 5, ":0a:42:0a:01");
    ck_assert_str_ne(mac, "02:00:0a:42:0a:01");
    /* Neighbours in one subnet differ; so do equal suffixes in these two subnets. */
    ck_assert_int_eq(vf_domain_mac_from_ip("fd00:66::1", mac), 0);
    ck_assert_int_eq(vf_domain_mac_from_ip("fd00:66::2", other), 0);
    ck_assert_str_ne(mac, other);
    ck_assert_int_eq(vf_domain_mac_from_ip("fd00:67::1", other), 0);
    ck_assert_str_ne(mac, other);
    ck_assert_int_eq(vf_domain_mac_from_ip("fd00:66::100:0:1", other), 0);
    ck_assert_str_ne(mac, other);
    /* Stable. */
    ck_assert_int_eq(vf_domain_mac_from_ip("FD00:66:0::1", other), 0);
    ck_assert_str_eq(mac, other);

    /* First byte: locally administered (0x02) and unicast (not 0x01). */
    unsigned first = (unsigned)strtoul(mac, NULL, 16);
    ck_assert_uint_eq(first & 0x03, 0x02);

    ck_assert_int_eq(vf_domain_mac_from_ip("10.66.10", mac), -EINVAL);
    ck_assert_int_eq(vf_domain_mac_from_ip("", mac), -EINVAL);
    ck_assert_int_eq(vf_domain_mac_from_ip(NULL, mac), -EINVAL);

    /* As the NIC's MAC. */
    ck_assert_int_eq(vf_domain_mac_from_ip("10.66.10.3", mac), 0);
    struct vf_domain_xml_options o = {.domain_type = "kvm", .network = "vfnet", .mac = mac};
    char *xml = xml_for("{\"type\":\"Host\"}", &o);
    ASSERT_HAS(xml, "    <interface type='network'>\n      <source network='vfnet'/>\n"
                    "      <mac address='02:00:0a:42:0a:03'/>\n      <model type='virtio'/>\n"
                    "    </interface>\n");
    free(xml);
    /* No network: no interface at all. */
    o.network = NULL;
    xml = xml_for("{\"type\":\"Host\"}", &o);
    ASSERT_LACKS(xml, "<interface");
    free(xml);
}
END_TEST

/* Every error names the object and the field to fix. */
START_TEST(test_errors_name_the_field)
{
    static const struct {
        const char *vm, *cpu, *field, *words;
    } cases[] = {
        {"{\"metadata\":{\"name\":\"e\",\"uid\":\"not-a-uuid\"},\"spec\":{\"cpu\":{\"cores\":1},"
         "\"memory\":{\"size\":\"1Gi\"}}}", "{\"type\":\"Host\"}", "metadata.uid", "VM \"e\""},
        {"{\"metadata\":{\"name\":\"e\",\"uid\":\"" UID "\"},\"spec\":{\"cpu\":{\"cores\":1},"
         "\"memory\":{\"size\":\"lots\"}}}", "{\"type\":\"Host\"}", "spec.memory.size", "VM \"e\""},
        {"{\"metadata\":{\"name\":\"e\",\"uid\":\"" UID "\"},\"spec\":{\"cpu\":{\"cores\":1}}}",
         "{\"type\":\"Host\"}", "spec.memory.size", "VM \"e\""},
        {"{\"metadata\":{\"name\":\"e\",\"uid\":\"" UID "\"},\"spec\":{"
         "\"memory\":{\"size\":\"1Gi\"}}}", "{\"type\":\"Host\"}", "spec.cpu.cores", "VM \"e\""},
        {"{\"metadata\":{\"name\":\"e\",\"uid\":\"" UID "\"},\"spec\":{\"cpu\":{\"cores\":1,"
         "\"coreFraction\":\"half\"},\"memory\":{\"size\":\"1Gi\"}}}", "{\"type\":\"Host\"}",
         "spec.cpu.coreFraction", "VM \"e\""},
        {"{\"metadata\":{\"name\":\"e\",\"uid\":\"" UID "\"},\"spec\":{\"cpu\":{\"cores\":1},"
         "\"memory\":{\"size\":\"1Gi\"}}}", "{\"type\":\"Model\"}", "spec.cpu.model",
         "class \"c1\""},
        {"{\"metadata\":{\"name\":\"e\",\"uid\":\"" UID "\"},\"spec\":{\"cpu\":{\"cores\":1},"
         "\"memory\":{\"size\":\"1Gi\"}}}", "{\"type\":\"Features\",\"features\":[]}",
         "spec.cpu.features", "class \"c1\""},
        {"{\"metadata\":{\"name\":\"e\",\"uid\":\"" UID "\"},\"spec\":{\"cpu\":{\"cores\":1},"
         "\"memory\":{\"size\":\"1Gi\"}}}", "{\"type\":\"Quantum\"}", "spec.cpu.type",
         "class \"c1\""},
    };
    struct vf_domain_xml_options o = {.domain_type = "kvm"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct json_object *vm = vf_test_json(cases[i].vm), *cl = class_of(cases[i].cpu);
        struct vf_error err = {0};
        char *xml = (char *)"unchanged";
        ck_assert_msg(vf_domain_xml(vm, cl, &o, &xml, &err) == -EINVAL, "case %zu accepted", i);
        ck_assert_ptr_null(xml);
        ck_assert_str_eq(err.field, cases[i].field);
        ck_assert_msg(strstr(err.message, cases[i].words) != NULL, "case %zu: %s", i,
                      err.message);
        json_object_put(vm);
        json_object_put(cl);
    }
}
END_TEST

/* ---- reading the uid back ----------------------------------------------------- */

START_TEST(test_vm_uid_scan)
{
    char uid[64];
    ck_assert_int_eq(vf_domain_xml_vm_uid("<domain><metadata><vf:vm xmlns:vf=\"" VF_DOMAIN_XMLNS
                                          "\" name=\"a\" uid=\"" UID "\"/></metadata></domain>",
                                          uid, sizeof uid), 0);
    ck_assert_str_eq(uid, UID);
    ck_assert_int_eq(vf_domain_xml_vm_uid("<vf:vm\n  uid = '" UID "' name='a'/>", uid,
                                          sizeof uid), 0);
    ck_assert_str_eq(uid, UID);

    /* Not ours, or not a uid. */
    static const char *const none[] = {
        "<domain><metadata><other:vm uid='" UID "'/></metadata></domain>",
        "<vf:vmx uid='" UID "'/>",
        "<vf:vm name='x uid=\"" UID "\"'/>",
        "<vf:vm xuid='" UID "'/>",
        "<vf:vm uid='" UID,
        "<vf:vm uid=" UID "/>",
        "<vf:vm uid=''/>",
        "<vf:vm uid='0f8fad5b&amp;'/>",
        "<vf:vm uid='0f8fad5b-d9cb-469f-a165-70867728950e-0f8fad5b-d9cb-469f-a165-7086772895'/>",
        "",
    };
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
        strcpy(uid, "junk");
        ck_assert_msg(vf_domain_xml_vm_uid(none[i], uid, sizeof uid) == -ENOENT, "accepted %s",
                      none[i]);
        ck_assert_str_eq(uid, "");
    }
    ck_assert_int_eq(vf_domain_xml_vm_uid(NULL, uid, sizeof uid), -ENOENT);
    /* Too small a buffer is "not found", never a truncated uid. */
    ck_assert_int_eq(vf_domain_xml_vm_uid("<vf:vm uid='" UID "'/>", uid, 10), -ENOENT);
}
END_TEST

/* ---- round trip through libvirt's test driver ------------------------------------ */

/* Defines and starts the XML on test:///default, then checks what libvirt
 * kept: name, UUID, memory, vCPUs, our metadata, the CPU mode. */
static void round_trip(virConnectPtr conn, const char *xml, const char *name, unsigned vcpus,
                       unsigned long kib, const char *cpu_mode)
{
    virDomainPtr dom = virDomainDefineXML(conn, xml);
    ck_assert_msg(dom != NULL, "define: %s\n%s", virGetLastErrorMessage(), xml);
    ck_assert_msg(virDomainCreate(dom) == 0, "start: %s", virGetLastErrorMessage());
    ck_assert_int_eq(virDomainIsActive(dom), 1);

    char uuid[VIR_UUID_STRING_BUFLEN];
    ck_assert_int_eq(virDomainGetUUIDString(dom, uuid), 0);
    ck_assert_str_eq(uuid, UID);
    ck_assert_str_eq(virDomainGetName(dom), name);
    virDomainInfo info;
    ck_assert_int_eq(virDomainGetInfo(dom, &info), 0);
    ck_assert_uint_eq(info.nrVirtCpu, vcpus);
    ck_assert_uint_eq(info.maxMem, kib);

    char *back = virDomainGetXMLDesc(dom, 0);
    ck_assert_ptr_nonnull(back);
    char want[64], uid[64];
    snprintf(want, sizeof want, "<memory unit='KiB'>%lu</memory>", kib);
    ASSERT_HAS(back, want);
    snprintf(want, sizeof want, "<vcpu placement='static'>%u</vcpu>", vcpus);
    ASSERT_HAS(back, want);
    ASSERT_HAS(back, "<uuid>" UID "</uuid>");
    ASSERT_HAS(back, cpu_mode);
    ck_assert_int_eq(vf_domain_xml_vm_uid(back, uid, sizeof uid), 0);
    ck_assert_str_eq(uid, UID);
    free(back);

    ck_assert_int_eq(virDomainDestroy(dom), 0);
    ck_assert_int_eq(virDomainUndefine(dom), 0);
    virDomainFree(dom);
}

START_TEST(test_test_driver_round_trip)
{
    virConnectPtr conn = virConnectOpen("test:///default");
    ck_assert_ptr_nonnull(conn);
    struct vf_domain_xml_options o = {.domain_type = "test", .network = "default"};

    char *xml = xml_for("{\"type\":\"Model\",\"model\":\"Nehalem\"}", &o);
    round_trip(conn, xml, "vm1", 2, 1048576, "<model fallback='forbid'>Nehalem</model>");
    free(xml);

    xml = xml_for("{\"type\":\"Features\",\"features\":[\"vmx\"]}", &o);
    round_trip(conn, xml, "vm1", 2, 1048576, "<feature policy='require' name='vmx'/>");
    free(xml);

    xml = xml_for("{\"type\":\"HostPassthrough\"}", &o);
    round_trip(conn, xml, "vm1", 2, 1048576, "<cpu mode='host-passthrough'");
    free(xml);

    /* A Discovery class's CPU as libvirt itself computes it. */
    const char *cpus[] = {skylake, haswell};
    char *baseline = virConnectBaselineCPU(conn, cpus, 2, 0);
    ck_assert_msg(baseline != NULL, "baseline: %s", virGetLastErrorMessage());
    o.baseline_cpu_xml = baseline;
    xml = xml_for("{\"type\":\"Discovery\",\"discovery\":{}}", &o);
    round_trip(conn, xml, "vm1", 2, 1048576, "Haswell-noTSX</model>");
    free(xml);
    free(baseline);

    /* Another size, EFI and a kernel. */
    struct json_object *vm = vm_with("vm-efi", "{\"cpu\":{\"cores\":3,\"coreFraction\":\"5%\"},"
                                               "\"memory\":{\"size\":\"640Mi\"},"
                                               "\"bootloader\":\"EFI\",\"kernel\":{\"path\":"
                                               "\"/boot/k\",\"cmdline\":\"console=ttyS0\"}}");
    struct json_object *cl = class_of("{\"type\":\"Host\"}");
    struct vf_error err = {0};
    o.baseline_cpu_xml = NULL;
    ck_assert_int_eq(vf_domain_xml(vm, cl, &o, &xml, &err), 0);
    round_trip(conn, xml, "vm-efi", 3, 655360, "<cpu mode='host-model'");
    free(xml);
    json_object_put(vm);
    json_object_put(cl);
    virConnectClose(conn);
}
END_TEST

/* Disks in the refs' order: virtio vda, vdb and SATA CD-ROMs sda, each with
 * its boot order (none with a direct kernel boot), paths escaped. */
START_TEST(test_disks)
{
    const struct vf_domain_disk disks[] = {
        {.path = "/pool/vd-root-1234", .format = "qcow2"},
        {.path = "/dvcr/images/cd.raw", .format = "raw", .cdrom = true, .readonly = true},
        {.path = "/pool/data&'<x>", .format = "raw"},
        {.pool = "local", .volume = "cvi-install-1a2b.iso", .format = "raw", .cdrom = true,
         .readonly = true},
    };
    struct vf_domain_xml_options o = {.domain_type = "kvm", .disks = disks, .n_disks = 4};
    char *xml = xml_for("{\"type\":\"Host\"}", &o);
    ASSERT_HAS(xml, "    <disk type='file' device='disk'>\n"
                    "      <driver name='qemu' type='qcow2'/>\n"
                    "      <source file='/pool/vd-root-1234'/>\n"
                    "      <target dev='vda' bus='virtio'/>\n"
                    "      <boot order='1'/>\n    </disk>\n");
    ASSERT_HAS(xml, "    <disk type='file' device='cdrom'>\n"
                    "      <driver name='qemu' type='raw'/>\n"
                    "      <source file='/dvcr/images/cd.raw'/>\n"
                    "      <target dev='sda' bus='sata'/>\n"
                    "      <readonly/>\n      <boot order='2'/>\n    </disk>\n");
    ASSERT_HAS(xml, "<source file='/pool/data&amp;&apos;&lt;x&gt;'/>\n"
                    "      <target dev='vdb' bus='virtio'/>\n      <boot order='3'/>");
    /* A pool volume: each node (a migration's target too) finds its own. */
    ASSERT_HAS(xml, "    <disk type='volume' device='cdrom'>\n"
                    "      <driver name='qemu' type='raw'/>\n"
                    "      <source pool='local' volume='cvi-install-1a2b.iso'/>\n"
                    "      <target dev='sdb' bus='sata'/>\n"
                    "      <readonly/>\n      <boot order='4'/>\n    </disk>\n");
    /* Disks come before the serial console, inside <devices>. */
    ck_assert(strstr(xml, "<devices>") < strstr(xml, "<disk "));
    ck_assert(strstr(xml, "</disk>") < strstr(xml, "<serial "));
    free(xml);

    struct json_object *vm = vm_with("vm-k", "{\"cpu\":{\"cores\":1},\"memory\":{\"size\":"
                                             "\"128Mi\"},\"kernel\":{\"path\":\"/boot/k\"}}");
    struct json_object *cl = class_of("{\"type\":\"Host\"}");
    struct vf_error err = {0};
    o.n_disks = 1;
    ck_assert_int_eq(vf_domain_xml(vm, cl, &o, &xml, &err), 0);
    ASSERT_HAS(xml, "<target dev='vda' bus='virtio'/>");
    ASSERT_LACKS(xml, "<boot order");
    free(xml);

    /* Errors name the disk. */
    const struct vf_domain_disk relative[] = {{.path = "pool/x", .format = "raw"}};
    const struct vf_domain_disk vmdk[] = {{.path = "/pool/x", .format = "vmdk"}};
    const struct vf_domain_disk no_volume[] = {{.pool = "local", .format = "raw"}};
    const struct vf_domain_disk *bad[] = {relative, vmdk, no_volume};
    const char *words[] = {"absolute", "neither raw nor qcow2", "nor a pool and volume"};
    for (size_t i = 0; i < 3; i++) {
        struct vf_domain_xml_options b = {.domain_type = "kvm", .disks = bad[i], .n_disks = 1};
        memset(&err, 0, sizeof err);
        xml = NULL;
        ck_assert_int_eq(vf_domain_xml(vm, cl, &b, &xml, &err), -EINVAL);
        ck_assert_ptr_null(xml);
        ck_assert_str_eq(err.field, "spec.blockDeviceRefs");
        ck_assert_msg(strstr(err.message, "spec.blockDeviceRefs[0]") &&
                      strstr(err.message, words[i]), "message: %s", err.message);
    }
    json_object_put(vm);
    json_object_put(cl);
}
END_TEST

/* libvirt takes the disks as written and gives them back. */
START_TEST(test_disks_round_trip)
{
    virConnectPtr conn = virConnectOpen("test:///default");
    ck_assert_ptr_nonnull(conn);
    const struct vf_domain_disk disks[] = {
        {.path = "/pool/vd-root", .format = "qcow2"},
        {.path = "/dvcr/cd.iso", .format = "raw", .cdrom = true, .readonly = true},
    };
    struct vf_domain_xml_options o = {.domain_type = "test", .disks = disks, .n_disks = 2};
    char *xml = xml_for("{\"type\":\"Host\"}", &o);
    virDomainPtr dom = virDomainDefineXML(conn, xml);
    ck_assert_msg(dom != NULL, "define: %s\n%s", virGetLastErrorMessage(), xml);
    char *back = virDomainGetXMLDesc(dom, 0);
    ck_assert_ptr_nonnull(back);
    ASSERT_HAS(back, "<source file='/pool/vd-root'/>");
    ASSERT_HAS(back, "<target dev='vda' bus='virtio'/>");
    ASSERT_HAS(back, "<source file='/dvcr/cd.iso'/>");
    ASSERT_HAS(back, "<target dev='sda' bus='sata'/>");
    ASSERT_HAS(back, "<readonly/>");
    free(back);
    ck_assert_int_eq(virDomainUndefine(dom), 0);
    virDomainFree(dom);
    virConnectClose(conn);
    free(xml);
}
END_TEST

static Suite *domain_xml_suite(void)
{
    const struct vf_test_case cases[] = {
        {"identity_and_sizing", test_identity_and_sizing},
        {"full_core", test_full_core_has_no_quota},
        {"cpu_per_class_type", test_cpu_per_class_type},
        {"cpu_element_alone", test_cpu_element_alone},
        {"discovery_needs_baseline", test_discovery_needs_baseline},
        {"firmware_and_kernel", test_firmware_and_kernel},
        {"nic_and_mac", test_nic_and_mac},
        {"mac_from_ip", test_mac_from_ip},
        {"errors", test_errors_name_the_field},
        {"vm_uid_scan", test_vm_uid_scan},
        {"test_driver_round_trip", test_test_driver_round_trip},
        {"disks", test_disks},
        {"disks_round_trip", test_disks_round_trip},
    };
    return vf_test_suite("domain_xml", cases, sizeof cases / sizeof cases[0]);
}

int main(void)
{
    return vf_test_run(domain_xml_suite());
}
