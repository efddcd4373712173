/* The configuration file: defaults, the shipped sample, every class of
 * error with its exact "FILE:LINE: PATH: message" text, and module settings
 * checked against a schema. */
#include <config.h>
#include <check.h>
#include "testlib.h"
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core/config.h"

#ifndef LOCALSTATEDIR
#define LOCALSTATEDIR "/var"
#endif
#ifndef RUNSTATEDIR
#define RUNSTATEDIR "/run"
#endif

static struct vf_config *cfg;
static struct vf_config_errors errors;
static char joined[8192];

static void teardown(void)
{
    vf_config_free(cfg);
    cfg = NULL;
    vf_config_errors_clear(&errors);
}

/* Every collected line, "\n"-separated, for one exact comparison. */
static const char *error_text(void)
{
    size_t o = 0;

    joined[0] = '\0';
    for (unsigned i = 0; i < errors.n && o < sizeof joined; i++)
        o += (size_t)snprintf(joined + o, sizeof joined - o, "%s%s", i ? "\n" : "", errors.lines[i]);
    return joined;
}

static void load_ok(const char *text)
{
    int r = vf_config_load_string(text, "test.conf", &cfg, &errors);
    ck_assert_msg(r == 0, "expected the config to load, got %d:\n%s", r, error_text());
    ck_assert_ptr_nonnull(cfg);
    ck_assert_uint_eq(errors.n, 0);
}

/* The text must be refused with exactly `want` (lines joined by "\n"). */
static void load_fails(const char *text, const char *want)
{
    int r = vf_config_load_string(text, "test.conf", &cfg, &errors);
    ck_assert_int_eq(r, -EINVAL);
    ck_assert_ptr_null(cfg);
    ck_assert_str_eq(error_text(), want);
}

/* ---- core settings ----------------------------------------------------------- */

START_TEST(defaults)
{
    load_ok("");
    ck_assert_str_eq(cfg->path, "test.conf");
    ck_assert_str_eq(cfg->state_dir, LOCALSTATEDIR "/lib/virtfleet");
    ck_assert_str_eq(cfg->pidfile, RUNSTATEDIR "/virtfleetd.pid");
    ck_assert_str_eq(cfg->api_socket, RUNSTATEDIR "/virtfleet/virtfleetd.sock");
    ck_assert_uint_eq(cfg->api_socket_mode, 0660);
    ck_assert_ptr_null(cfg->api_socket_group);
    ck_assert_int_eq(cfg->log_level, VF_LOG_INFO);
    ck_assert_int_eq(cfg->workers, 4);
    ck_assert_ptr_null(cfg->module_dir);
    ck_assert_uint_eq(cfg->n_nodes, 0);
    ck_assert_uint_eq(cfg->n_modules, 0);
    ck_assert_str_eq(json_object_to_json_string_ext(cfg->virtualization, JSON_C_TO_STRING_PLAIN),
                     "{\"virtualMachineCIDRs\":[]}");
}
END_TEST

START_TEST(core_values)
{
    load_ok("state_dir = \"/srv/vf\";\n"
            "pidfile = \"/tmp/vf.pid\";\n"
            "log_level = \"debug\";\n"
            "workers = 64;\n"
            "module_dir = \"/opt/vf/modules\";\n"
            "api = { socket = \"/tmp/vf.sock\"; mode = \"0600\"; group = \"wheel\"; };\n");
    ck_assert_str_eq(cfg->state_dir, "/srv/vf");
    ck_assert_str_eq(cfg->pidfile, "/tmp/vf.pid");
    ck_assert_int_eq(cfg->log_level, VF_LOG_DEBUG);
    ck_assert_int_eq(cfg->workers, 64);
    ck_assert_str_eq(cfg->module_dir, "/opt/vf/modules");
    ck_assert_str_eq(cfg->api_socket, "/tmp/vf.sock");
    ck_assert_uint_eq(cfg->api_socket_mode, 0600);
    ck_assert_str_eq(cfg->api_socket_group, "wheel");
}
END_TEST

START_TEST(mode_as_integer)
{
    /* 432 == 0660; hex is read as written. */
    load_ok("api = { mode = 432; };");
    ck_assert_uint_eq(cfg->api_socket_mode, 0660);
    teardown();
    load_ok("api = { mode = 0x1c0; };");
    ck_assert_uint_eq(cfg->api_socket_mode, 0700);
}
END_TEST

static const char *sample_path(char *buf, size_t len)
{
    const char *top = getenv("top_srcdir");
    snprintf(buf, len, "%s/data/virtfleetd.conf.sample", top && *top ? top : ".");
    return buf;
}

START_TEST(sample_file)
{
    char path[PATH_MAX];
    const struct vf_config_module *m;
    int r = vf_config_load(sample_path(path, sizeof path), &cfg, &errors);

    ck_assert_msg(r == 0, "%s: %s", path, error_text());
    ck_assert_str_eq(cfg->path, path);
    ck_assert_uint_eq(cfg->n_nodes, 1);
    ck_assert_str_eq(cfg->nodes[0].name, "demo");
    ck_assert_str_eq(cfg->nodes[0].uri, "test:///default");
    ck_assert_str_eq(json_object_get_string(json_object_object_get(cfg->nodes[0].labels, "zone")),
                     "demo");
    ck_assert_str_eq(cfg->state_dir, "/var/lib/virtfleet");
    ck_assert_uint_eq(cfg->api_socket_mode, 0660);
    ck_assert_str_eq(json_object_to_json_string_ext(
                         json_object_object_get(cfg->virtualization, "virtualMachineCIDRs"),
                         JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
                     "[\"10.66.10.0/24\",\"10.66.20.0/24\"]");
    m = vf_config_module(cfg, "migrate");
    ck_assert_ptr_nonnull(m);
    ck_assert(m->enabled);
    ck_assert_int_eq(m->version, 1);
    ck_assert_int_eq(m->log_level, -1);
    ck_assert_ptr_nonnull(m->settings);
    m = vf_config_module(cfg, "descheduler");
    ck_assert_ptr_nonnull(m);
    ck_assert(!m->enabled);
}
END_TEST

START_TEST(missing_file)
{
    int r = vf_config_load("/nonexistent/virtfleetd.conf", &cfg, &errors);
    ck_assert_int_eq(r, -ENOENT);
    ck_assert_ptr_null(cfg);
    ck_assert_str_eq(error_text(), "/nonexistent/virtfleetd.conf: cannot read: No such file or directory");
}
END_TEST

START_TEST(syntax_error)
{
    load_fails("workers = 4;\nlog_level = ;\n", "test.conf:2: syntax error");
    teardown();
    load_fails("workers = 4;\nworkers = 5;\n", "test.conf:2: syntax error: duplicate setting name");
}
END_TEST

START_TEST(libconfig_integer_traps)
{
    load_fails("workers = 4;\n"
               "modules = { m = { enabled = true; settings = { size = 5000000000; }; }; };\n"
               "api = { mode = 0660; };\n",
               "test.conf:2: syntax error: 5000000000 does not fit in a 32-bit integer; append L "
               "for a 64-bit one (5000000000L)\n"
               "test.conf:3: syntax error: 0660 has a leading zero, which libconfig does not read "
               "as octal; write a file mode as a string (\"0660\")");
    teardown();
    /* The same digits inside strings and comments are not numbers. */
    load_ok("# 5000000000 and 0660\n"
            "/* 99999999999 */ state_dir = \"/a/5000000000/0660\"; // 0777\n"
            "modules = { m = { enabled = true; settings = { big = 5000000000L; f = 0.5; "
            "e = 1e10; n = -2147483648; }; }; };\n");
    ck_assert_int_eq(json_object_get_int64(json_object_object_get(
                         vf_config_module(cfg, "m")->settings, "big")), 5000000000LL);
}
END_TEST

START_TEST(include_refused)
{
    load_fails("workers = 4;\n@include \"/etc/passwd\"\n",
               "test.conf:2: @include is not supported; keep the whole configuration in this one file");
}
END_TEST

START_TEST(unknown_keys)
{
    load_fails("wokers = 4;\n"
               "api = { sockt = \"/x\"; };\n"
               "frobnicate = 1;\n",
               "test.conf:1: wokers: unknown setting; did you mean \"workers\"?\n"
               "test.conf:2: api.sockt: unknown setting; did you mean \"socket\"?\n"
               "test.conf:3: frobnicate: unknown setting (known: state_dir, pidfile, log_level, "
               "workers, module_dir, api, nodes, virtualization, modules)");
}
END_TEST

START_TEST(wrong_types)
{
    load_fails("workers = \"4\";\n"
               "state_dir = 5;\n"
               "api = \"/run/x.sock\";\n"
               "nodes = { name = \"a\"; };\n"
               "modules = { migrate = true; };\n",
               "test.conf:1: workers: expected an integer, got the string \"4\"\n"
               "test.conf:2: state_dir: expected a string, got the integer 5\n"
               "test.conf:3: api: expected a group like { socket = \"/run/virtfleet/virtfleetd.sock\"; }, "
               "got the string \"/run/x.sock\"\n"
               "test.conf:4: nodes: expected a list of groups like ( { name = \"node-1\"; uri = "
               "\"qemu+ssh://root@host1/system\"; } ), got a group\n"
               "test.conf:5: modules.migrate: expected a group like { enabled = true; }, got the boolean true");
}
END_TEST

START_TEST(bad_values)
{
    load_fails("log_level = \"debgu\";\n"
               "state_dir = \"var/lib/virtfleet\";\n"
               "pidfile = \"\";\n"
               "module_dir = \"modules\";\n"
               "workers = 0;\n"
               "api = { socket = \"run/x.sock\"; mode = \"0999\"; group = \"\"; };\n",
               "test.conf:1: log_level: expected one of error, warn, info, debug, got \"debgu\"; "
               "did you mean \"debug\"?\n"
               "test.conf:2: state_dir: expected an absolute path, got \"var/lib/virtfleet\"\n"
               "test.conf:3: pidfile: expected an absolute path, got \"\"\n"
               "test.conf:4: module_dir: expected an absolute path, got \"modules\"\n"
               "test.conf:5: workers: expected an integer between 1 and 64, got 0\n"
               "test.conf:6: api.socket: expected an absolute path, got \"run/x.sock\"\n"
               "test.conf:6: api.mode: expected a file mode from \"0000\" to \"0777\" (an octal "
               "string like \"0660\"), got \"0999\"\n"
               "test.conf:6: api.group: expected a group name, got \"\"");
}
END_TEST

START_TEST(mode_range)
{
    load_fails("api = { mode = 512; };",
               "test.conf:1: api.mode: expected a file mode from \"0000\" to \"0777\" (an octal "
               "string like \"0660\"), got 512");
    teardown();
    load_fails("api = { mode = \"01000\"; };",
               "test.conf:1: api.mode: expected a file mode from \"0000\" to \"0777\" (an octal "
               "string like \"0660\"), got \"01000\"");
}
END_TEST

START_TEST(socket_path_length)
{
    char text[400];
    snprintf(text, sizeof text, "api = { socket = \"/%0120d\"; };", 0);
    load_fails(text, "test.conf:1: api.socket: path too long for a unix socket (121 bytes, at most 107)");
}
END_TEST

START_TEST(control_characters_escaped)
{
    load_fails("log_level = \"in\\nfo\";",
               "test.conf:1: log_level: expected one of error, warn, info, debug, got \"in\\x0afo\"; "
               "did you mean \"info\"?");
}
END_TEST

/* ---- nodes ---------------------------------------------------------------------- */

START_TEST(nodes_valid)
{
    load_ok("nodes = (\n"
            "  { name = \"node-1\"; uri = \"qemu+ssh://root@host1/system\"; labels = { zone = \"a\"; rack = \"r-1\"; }; },\n"
            "  { name = \"node-2\"; uri = \"qemu+ssh://root@host2/system\";\n"
            "    labels = [ \"topology.kubernetes.io/zone=b\", \"gpu=\" ]; }\n"
            ");\n");
    ck_assert_uint_eq(cfg->n_nodes, 2);
    ck_assert_str_eq(cfg->nodes[0].name, "node-1");
    ck_assert_str_eq(cfg->nodes[1].uri, "qemu+ssh://root@host2/system");
    ck_assert_str_eq(json_object_to_json_string_ext(cfg->nodes[0].labels, JSON_C_TO_STRING_PLAIN),
                     "{\"zone\":\"a\",\"rack\":\"r-1\"}");
    ck_assert_str_eq(json_object_to_json_string_ext(cfg->nodes[1].labels,
                                                    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
                     "{\"topology.kubernetes.io/zone\":\"b\",\"gpu\":\"\"}");
}
END_TEST

START_TEST(nodes_required_fields)
{
    load_fails("nodes = (\n"
               "  { name = \"a\"; },\n"
               "  { uri = \"test:///default\"; },\n"
               "  \"b\" );\n",
               "test.conf:2: nodes[0].uri: required setting missing\n"
               "test.conf:3: nodes[1].name: required setting missing\n"
               "test.conf:4: nodes[2]: expected a group like { name = \"node-1\"; uri = "
               "\"qemu+ssh://root@host1/system\"; }, got the string \"b\"");
}
END_TEST

START_TEST(nodes_names)
{
    char text[512];
    snprintf(text, sizeof text,
             "nodes = (\n"
             "  { name = \"Node_1\"; uri = \"test:///default\"; },\n"
             "  { name = \"-a\"; uri = \"test:///default\"; },\n"
             "  { name = \"%064d\"; uri = \"test:///default\"; },\n"
             "  { name = \"b\"; uri = \"test:///default\"; },\n"
             "  { name = \"b\"; uri = \"test:///default\"; }\n"
             ");\n", 0);
    load_fails(text,
               "test.conf:2: nodes[0].name: expected a DNS label (at most 63 lowercase letters, digits "
               "or \"-\", beginning and ending with a letter or digit), got \"Node_1\"\n"
               "test.conf:3: nodes[1].name: expected a DNS label (at most 63 lowercase letters, digits "
               "or \"-\", beginning and ending with a letter or digit), got \"-a\"\n"
               "test.conf:4: nodes[2].name: expected a DNS label (at most 63 lowercase letters, digits "
               "or \"-\", beginning and ending with a letter or digit), got "
               "\"0000000000000000000000000000000000000000000000000000000000000000\"\n"
               "test.conf:6: nodes[4].name: duplicate node name \"b\"; nodes[3] has it too");
}
END_TEST

START_TEST(nodes_cpu_allocation_ratio)
{
    load_ok("nodes = ( { name = \"a\"; uri = \"test:///default\"; cpuAllocationRatio = 4; },\n"
            "  { name = \"b\"; uri = \"test:///default\"; cpuAllocationRatio = 1.5; },\n"
            "  { name = \"c\"; uri = \"test:///default\"; } );\n");
    ck_assert_double_eq(cfg->nodes[0].cpu_allocation_ratio, 4.0);
    ck_assert_double_eq(cfg->nodes[1].cpu_allocation_ratio, 1.5);
    ck_assert_double_eq(cfg->nodes[2].cpu_allocation_ratio, 1.0);
    vf_config_free(cfg);
    cfg = NULL;
    load_fails("nodes = ( { name = \"a\"; uri = \"test:///default\"; cpuAllocationRatio = 0; },\n"
               "  { name = \"b\"; uri = \"test:///default\"; cpuAllocationRatio = \"2\"; } );\n",
               "test.conf:1: nodes[0].cpuAllocationRatio: expected a number between 0.1 and 64 (e.g. "
               "4.0: each CPU may be reserved four times), got the integer 0\n"
               "test.conf:2: nodes[1].cpuAllocationRatio: expected a number between 0.1 and 64 (e.g. "
               "4.0: each CPU may be reserved four times), got the string \"2\"");
}
END_TEST

START_TEST(nodes_uri_and_labels)
{
    load_fails("nodes = ( { name = \"a\"; uri = \"host1\"; url = \"x\";\n"
               "  labels = { Zone- = \"a\"; tier = \"b c\"; n = 1; }; },\n"
               "  { name = \"b\"; uri = \"\"; labels = [ \"nokey\", \"a/b/c=d\", \"Example.com/x=y\" ]; } );\n",
               "test.conf:1: nodes[0].uri: expected a libvirt URI like \"qemu+ssh://root@host1/system\", "
               "got \"host1\"\n"
               "test.conf:1: nodes[0].url: unknown setting; did you mean \"uri\"?\n"
               "test.conf:2: nodes[0].labels.Zone-: invalid label key \"Zone-\": a label key is an "
               "optional DNS subdomain prefix and \"/\", then at most 63 letters, digits, \"-\", \"_\" "
               "or \".\", beginning and ending with a letter or digit\n"
               "test.conf:2: nodes[0].labels.tier: invalid value \"b c\" for label \"tier\": a label "
               "value is empty or at most 63 letters, digits, \"-\", \"_\" or \".\", beginning and "
               "ending with a letter or digit\n"
               "test.conf:2: nodes[0].labels.n: expected a string, got the integer 1\n"
               "test.conf:3: nodes[1].uri: expected a libvirt URI like \"qemu+ssh://root@host1/system\", "
               "got \"\"\n"
               "test.conf:3: nodes[1].labels[0]: expected \"key=value\", got \"nokey\"\n"
               "test.conf:3: nodes[1].labels[1]: invalid label key \"a/b/c\": a label key is an "
               "optional DNS subdomain prefix and \"/\", then at most 63 letters, digits, \"-\", \"_\" "
               "or \".\", beginning and ending with a letter or digit\n"
               "test.conf:3: nodes[1].labels[2]: invalid label key \"Example.com/x\": a label key is an "
               "optional DNS subdomain prefix and \"/\", then at most 63 letters, digits, \"-\", \"_\" "
               "or \".\", beginning and ending with a letter or digit");
}
END_TEST

/* ---- virtualization --------------------------------------------------------------- */

START_TEST(cidrs_valid)
{
    load_ok("virtualization = {\n"
            "  virtualMachineCIDRs = [ \"10.66.10.0/24\", \"10.66.20.0/24\", \"10.77.0.0/16\",\n"
            "                          \"FD00:0::/64\", \"fd00:0:0:1::/64\" ];\n"
            "};\n");
    ck_assert_str_eq(json_object_to_json_string_ext(
                         json_object_object_get(cfg->virtualization, "virtualMachineCIDRs"),
                         JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
                     "[\"10.66.10.0/24\",\"10.66.20.0/24\",\"10.77.0.0/16\",\"fd00::/64\",\"fd00:0:0:1::/64\"]");
}
END_TEST

START_TEST(cidrs_host_bits)
{
    load_fails("virtualization = { virtualMachineCIDRs = [ \"10.66.10.5/24\", \"fd00::1/64\" ]; };",
               "test.conf:1: virtualization.virtualMachineCIDRs[0]: 10.66.10.5/24: host bits set; "
               "did you mean 10.66.10.0/24?\n"
               "test.conf:1: virtualization.virtualMachineCIDRs[1]: fd00::1/64: host bits set; "
               "did you mean fd00::/64?");
}
END_TEST

START_TEST(cidrs_overlap)
{
    load_fails("virtualization = { virtualMachineCIDRs = [\n"
               "  \"10.66.10.0/24\",\n"
               "  \"10.66.0.0/16\",\n"
               "  \"10.67.0.0/16\",\n"
               "  \"10.67.0.0/16\" ]; };",
               "test.conf:3: virtualization.virtualMachineCIDRs[1]: 10.66.0.0/16 overlaps 10.66.10.0/24 (line 2)\n"
               "test.conf:5: virtualization.virtualMachineCIDRs[3]: 10.67.0.0/16 overlaps 10.67.0.0/16 (line 4)");
}
END_TEST

START_TEST(cidrs_malformed)
{
    load_fails("virtualization = { virtualMachineCIDRs = [\n"
               "  \"10.66.10.0\", \"10.66.10.0/33\", \"10.66.10.0/x\", \"300.1.1.0/24\",\n"
               "  \"10.0.0.0/31\", \"fd00::/200\" ]; };\n",
               "test.conf:2: virtualization.virtualMachineCIDRs[0]: expected a CIDR like "
               "\"10.66.10.0/24\", got \"10.66.10.0\"\n"
               "test.conf:2: virtualization.virtualMachineCIDRs[1]: 10.66.10.0/33: prefix length "
               "must be between 0 and 32\n"
               "test.conf:2: virtualization.virtualMachineCIDRs[2]: expected a CIDR like "
               "\"10.66.10.0/24\", got \"10.66.10.0/x\"\n"
               "test.conf:2: virtualization.virtualMachineCIDRs[3]: expected a CIDR like "
               "\"10.66.10.0/24\", got \"300.1.1.0/24\"\n"
               "test.conf:3: virtualization.virtualMachineCIDRs[4]: 10.0.0.0/31: too small for "
               "virtual machines (the first and last addresses are reserved); use a prefix length of at most 30\n"
               "test.conf:3: virtualization.virtualMachineCIDRs[5]: fd00::/200: prefix length must "
               "be between 0 and 128");
    teardown();
    load_fails("virtualization = { virtualMachineCIDRs = \"10.66.10.0/24\"; };",
               "test.conf:1: virtualization.virtualMachineCIDRs: expected a list of CIDRs like "
               "[ \"10.66.10.0/24\" ], got the string \"10.66.10.0/24\"");
}
END_TEST

START_TEST(virtualization_free_form)
{
    load_ok("virtualization = {\n"
            "  dvcr = { storage = { type = \"PersistentVolumeClaim\";\n"
            "    persistentVolumeClaim = { size = \"50G\"; storageClassName = \"local\"; }; }; };\n"
            "  virtualImages = { allowedStorageClassNames = [ \"sc-1\", \"sc-2\" ]; defaultStorageClassName = \"sc-1\"; };\n"
            "  audit = { enabled = true; };\n"
            "};\n");
    ck_assert_str_eq(json_object_to_json_string_ext(cfg->virtualization, JSON_C_TO_STRING_PLAIN),
                     "{\"virtualMachineCIDRs\":[],"
                     "\"dvcr\":{\"storage\":{\"type\":\"PersistentVolumeClaim\","
                     "\"persistentVolumeClaim\":{\"size\":\"50G\",\"storageClassName\":\"local\"}}},"
                     "\"virtualImages\":{\"allowedStorageClassNames\":[\"sc-1\",\"sc-2\"],"
                     "\"defaultStorageClassName\":\"sc-1\"},"
                     "\"audit\":{\"enabled\":true}}");
    ck_assert_int_eq(vf_config_line(cfg, "virtualization.dvcr.storage.persistentVolumeClaim.size"), 3);
    ck_assert_int_eq(vf_config_line(cfg, "virtualization.virtualImages.allowedStorageClassNames[1]"), 4);
}
END_TEST

START_TEST(virtualization_unknown)
{
    load_fails("virtualization = {\n"
               "  virtualMachineCidrs = [ \"10.66.10.0/24\" ];\n"
               "  virtualDisk = { };\n"
               "  podCIDR = \"10.0.0.0/8\";\n"
               "  dvcr = 1;\n"
               "};\n",
               "test.conf:2: virtualization.virtualMachineCidrs: unknown setting; did you mean "
               "\"virtualMachineCIDRs\"?\n"
               "test.conf:3: virtualization.virtualDisk: unknown setting; did you mean \"virtualDisks\"?\n"
               "test.conf:4: virtualization.podCIDR: unknown setting (known: virtualMachineCIDRs, "
               "libvirtNetwork, virtualImages, virtualDisks, dvcr, audit)\n"
               "test.conf:5: virtualization.dvcr: expected a group like { ... }, got the integer 1");
}
END_TEST

START_TEST(libvirt_network_valid)
{
    load_ok("virtualization = {\n"
            "  virtualMachineCIDRs = [ \"10.66.10.0/24\" ];\n"
            "  libvirtNetwork = \"vf-net_1.lan\";\n"
            "};\n");
    ck_assert_str_eq(json_object_get_string(
                         json_object_object_get(cfg->virtualization, "libvirtNetwork")),
                     "vf-net_1.lan");
    ck_assert_int_eq(vf_config_line(cfg, "virtualization.libvirtNetwork"), 3);
    teardown();
    /* Unset: no member at all (VMs get no interface). */
    load_ok("virtualization = { virtualMachineCIDRs = [ \"10.66.10.0/24\" ]; };");
    ck_assert_ptr_null(json_object_object_get(cfg->virtualization, "libvirtNetwork"));
}
END_TEST

START_TEST(libvirt_network_invalid)
{
    char text[512];
    load_fails("virtualization = {\n  libvirtNetwork = \"\";\n};\n",
               "test.conf:2: virtualization.libvirtNetwork: must not be empty (leave the setting "
               "out for VMs without a network interface)");
    teardown();
    load_fails("virtualization = { libvirtNetwork = \"../etc/net\"; };",
               "test.conf:1: virtualization.libvirtNetwork: \"../etc/net\" is not a libvirt "
               "network name (no \"/\" or control characters)");
    teardown();
    load_fails("virtualization = { libvirtNetwork = \"a\\nb\"; };",
               "test.conf:1: virtualization.libvirtNetwork: \"a\\x0ab\" is not a libvirt "
               "network name (no \"/\" or control characters)");
    teardown();
    snprintf(text, sizeof text, "virtualization = {\n\n  libvirtNetwork = \"%065d\";\n};\n", 0);
    char want[512];
    snprintf(want, sizeof want, "test.conf:3: virtualization.libvirtNetwork: \"%065d\" is longer "
             "than 64 characters", 0);
    load_fails(text, want);
    teardown();
    /* 64 is fine. */
    snprintf(text, sizeof text, "virtualization = { libvirtNetwork = \"%064d\"; };", 0);
    load_ok(text);
    teardown();
    load_fails("virtualization = { libvirtNetwork = [ \"default\" ]; };",
               "test.conf:1: virtualization.libvirtNetwork: expected a string, got an array");
    teardown();
    load_fails("virtualization = { libvirtNetwrok = \"default\"; };",
               "test.conf:1: virtualization.libvirtNetwrok: unknown setting; did you mean "
               "\"libvirtNetwork\"?");
}
END_TEST

/* ---- modules ---------------------------------------------------------------------- */

START_TEST(modules_entries)
{
    const struct vf_config_module *m;

    load_ok("modules = {\n"
            "  migrate = { enabled = true; version = 2; log_level = \"debug\";\n"
            "    settings = {\n"
            "      bandwidthPerMigration = \"640Mi\";\n"
            "      parallel = 2; ratio = 0.5; on = false;\n"
            "      nested = { list = ( 1, \"a\", { x = 1; } ); arr = [ 1, 2 ]; };\n"
            "    };\n"
            "  };\n"
            "  images = { enabled = false; };\n"
            "};\n");
    ck_assert_uint_eq(cfg->n_modules, 2);
    m = vf_config_module(cfg, "migrate");
    ck_assert_ptr_nonnull(m);
    ck_assert(m->enabled);
    ck_assert_int_eq(m->version, 2);
    ck_assert_int_eq(m->log_level, VF_LOG_DEBUG);
    ck_assert_int_eq(m->line, 2);
    ck_assert_str_eq(json_object_to_json_string_ext(m->settings, JSON_C_TO_STRING_PLAIN),
                     "{\"bandwidthPerMigration\":\"640Mi\",\"parallel\":2,\"ratio\":0.5,\"on\":false,"
                     "\"nested\":{\"list\":[1,\"a\",{\"x\":1}],\"arr\":[1,2]}}");
    ck_assert_int_eq(vf_config_line(cfg, "modules.migrate.settings.bandwidthPerMigration"), 4);
    ck_assert_int_eq(vf_config_line(cfg, "modules.migrate.settings.nested.list[2].x"), 6);
    ck_assert_int_eq(vf_config_line(cfg, "modules.migrate.settings.missing"), 0);
    m = vf_config_module(cfg, "images");
    ck_assert_ptr_nonnull(m);
    ck_assert(!m->enabled);
    ck_assert_int_eq(m->version, 0);
    ck_assert_int_eq(m->log_level, -1);
    ck_assert_str_eq(json_object_to_json_string_ext(m->settings, JSON_C_TO_STRING_PLAIN), "{}");
    ck_assert_ptr_null(vf_config_module(cfg, "audit"));
}
END_TEST

START_TEST(modules_errors)
{
    load_fails("modules = {\n"
               "  migrate = { enable = true; version = 0; log_level = \"loud\"; settings = 5; };\n"
               "  images = { enabled = \"yes\"; version = \"1\"; };\n"
               "};\n",
               "test.conf:2: modules.migrate.enable: unknown setting; did you mean \"enabled\"?\n"
               "test.conf:2: modules.migrate.version: expected a settings version of at least 1, got 0\n"
               "test.conf:2: modules.migrate.log_level: expected one of error, warn, info, debug, got \"loud\"\n"
               "test.conf:2: modules.migrate.settings: expected a group like { bandwidthPerMigration = "
               "\"640Mi\"; }, got the integer 5\n"
               "test.conf:2: modules.migrate.enabled: required setting missing\n"
               "test.conf:3: modules.images.enabled: expected a boolean (true or false), got the string \"yes\"\n"
               "test.conf:3: modules.images.version: expected an integer, got the string \"1\"");
}
END_TEST

START_TEST(errors_collected)
{
    int r = vf_config_load_string("workers = 0;\n"
                                  "log_level = \"x\";\n"
                                  "nodes = ( { name = \"A\"; uri = \"u\"; } );\n"
                                  "bogus = 1;\n",
                                  "virtfleetd.conf", &cfg, &errors);
    ck_assert_int_eq(r, -EINVAL);
    ck_assert_uint_eq(errors.n, 5);
    ck_assert_str_eq(errors.lines[0], "virtfleetd.conf:1: workers: expected an integer between 1 and 64, got 0");
    ck_assert(strncmp(errors.lines[1], "virtfleetd.conf:2: log_level: ", 30) == 0);
    ck_assert(strncmp(errors.lines[2], "virtfleetd.conf:3: nodes[0].name: ", 34) == 0);
    ck_assert(strncmp(errors.lines[3], "virtfleetd.conf:3: nodes[0].uri: ", 33) == 0);
    ck_assert(strncmp(errors.lines[4], "virtfleetd.conf:4: bogus: unknown setting", 41) == 0);
}
END_TEST

START_TEST(errors_appended_and_cleared)
{
    vf_config_errors_add(&errors, "first %d", 1);
    ck_assert_int_eq(vf_config_load_string("workers = 0;", "a.conf", &cfg, &errors), -EINVAL);
    ck_assert_uint_eq(errors.n, 2);
    ck_assert_str_eq(errors.lines[0], "first 1");
    vf_config_errors_clear(&errors);
    ck_assert_uint_eq(errors.n, 0);
    ck_assert_ptr_null(errors.lines);
    /* Without a collector the result still says whether the file is good. */
    ck_assert_int_eq(vf_config_load_string("workers = 0;", "a.conf", &cfg, NULL), -EINVAL);
    ck_assert_ptr_null(cfg);
}
END_TEST

START_TEST(suggestions)
{
    static const char *const words[] = { "workers", "state_dir", "virtualMachineCIDRs", "uri" };
    ck_assert_str_eq(vf_config_suggest("wrokers", words, 4), "workers");
    ck_assert_str_eq(vf_config_suggest("statedir", words, 4), "state_dir");
    ck_assert_str_eq(vf_config_suggest("VIRTUALMACHINECIDRS", words, 4), "virtualMachineCIDRs");
    ck_assert_str_eq(vf_config_suggest("url", words, 4), "uri");
    ck_assert_ptr_null(vf_config_suggest("ab", words, 4));
    ck_assert_ptr_null(vf_config_suggest("completely-different", words, 4));
}
END_TEST

/* ---- module settings against a schema --------------------------------------------- */

static const char *const policies[] = { "Always", "Never", "IfNeeded", NULL };

static const struct vf_setting storage_schema[] = {
    { .name = "size", .type = VF_SETTING_SIZE, .default_value = "50G", .min = 1 << 20 },
    { .name = "storageClassName", .type = VF_SETTING_STRING, .flags = VF_SETTING_REQUIRED },
    { 0 },
};

static const struct vf_setting schema[] = {
    { .name = "enabled", .type = VF_SETTING_BOOL, .default_value = "true" },
    { .name = "parallelMigrationsPerCluster", .type = VF_SETTING_INT, .default_value = "5",
      .min = 1, .max = 100 },
    { .name = "bandwidthPerMigration", .type = VF_SETTING_SIZE, .default_value = "640Mi",
      .min = 1 << 20, .max = 10LL << 30 },
    { .name = "completionTimeout", .type = VF_SETTING_DURATION, .default_value = "150s",
      .min = 1000, .max = 3600000 },
    { .name = "policy", .type = VF_SETTING_STRING, .default_value = "IfNeeded", .choices = policies },
    { .name = "nodes", .type = VF_SETTING_STRINGS, .default_value = "a, b" },
    { .name = "note", .type = VF_SETTING_STRING },
    { .name = "storage", .type = VF_SETTING_GROUP, .children = storage_schema },
    { 0 },
};

static const struct vf_config_module *module_from(const char *settings_text)
{
    char text[2048];
    snprintf(text, sizeof text, "modules = {\n  migrate = {\n    enabled = true;\n    settings = {\n%s\n    };\n  };\n};\n",
             settings_text);
    load_ok(text);
    return vf_config_module(cfg, "migrate");
}

static const char *json_plain(struct json_object *o)
{
    return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
}

START_TEST(settings_defaults)
{
    const struct vf_config_module *m = module_from("storage = { storageClassName = \"local\"; };");
    struct json_object *out = NULL;

    ck_assert_int_eq(vf_settings_check(cfg, m, schema, &out, &errors), 0);
    ck_assert_str_eq(json_plain(out),
                     "{\"enabled\":true,\"parallelMigrationsPerCluster\":5,"
                     "\"bandwidthPerMigration\":671088640,\"completionTimeout\":150000,"
                     "\"policy\":\"IfNeeded\",\"nodes\":[\"a\",\"b\"],"
                     "\"storage\":{\"size\":50000000000,\"storageClassName\":\"local\"}}");
    json_object_put(out);
}
END_TEST

START_TEST(settings_conversions)
{
    const struct vf_config_module *m = module_from(
        "enabled = false; parallelMigrationsPerCluster = 100; bandwidthPerMigration = \"1.5Gi\";\n"
        "completionTimeout = \"1h\"; policy = \"Never\"; nodes = [ \"x\" ]; note = \"hi\";\n"
        "storage = { size = 1048576; storageClassName = \"sc\"; };");
    struct json_object *out = NULL;

    ck_assert_int_eq(vf_settings_check(cfg, m, schema, &out, &errors), 0);
    ck_assert_str_eq(json_plain(out),
                     "{\"enabled\":false,\"parallelMigrationsPerCluster\":100,"
                     "\"bandwidthPerMigration\":1610612736,\"completionTimeout\":3600000,"
                     "\"policy\":\"Never\",\"nodes\":[\"x\"],\"note\":\"hi\","
                     "\"storage\":{\"size\":1048576,\"storageClassName\":\"sc\"}}");
    json_object_put(out);
}
END_TEST

START_TEST(settings_duration_as_seconds)
{
    const struct vf_config_module *m = module_from(
        "completionTimeout = 300; storage = { storageClassName = \"sc\"; };");
    struct json_object *out = NULL, *v;

    ck_assert_int_eq(vf_settings_check(cfg, m, schema, &out, &errors), 0);
    ck_assert(json_object_object_get_ex(out, "completionTimeout", &v));
    ck_assert_int_eq(json_object_get_int64(v), 300000);
    json_object_put(out);
}
END_TEST

START_TEST(settings_errors)
{
    const struct vf_config_module *m = module_from(
        "bandwidthPerMigration = \"fast\";\n"
        "completionTimeout = \"soon\";\n"
        "parallelMigrationsPerCluster = 0;\n"
        "policy = \"always\";\n"
        "enabled = \"yes\";\n"
        "nodes = ( \"a\", 1 );\n"
        "paralelMigrationsPerCluster = 3;\n"
        "storage = { size = \"1k\"; };");
    struct json_object *out = (struct json_object *)1;

    ck_assert_int_eq(vf_settings_check(cfg, m, schema, &out, &errors), -EINVAL);
    ck_assert_ptr_null(out);
    ck_assert_str_eq(error_text(),
        "test.conf:11: modules.migrate.settings.paralelMigrationsPerCluster: unknown setting; "
        "did you mean \"parallelMigrationsPerCluster\"?\n"
        "test.conf:9: modules.migrate.settings.enabled: expected a boolean (true or false), "
        "got the string \"yes\"\n"
        "test.conf:7: modules.migrate.settings.parallelMigrationsPerCluster: expected an integer "
        "between 1 and 100, got 0\n"
        "test.conf:5: modules.migrate.settings.bandwidthPerMigration: expected a size like "
        "\"640Mi\", got \"fast\"\n"
        "test.conf:6: modules.migrate.settings.completionTimeout: expected a duration like "
        "\"150s\" or \"1h30m\", got \"soon\"\n"
        "test.conf:8: modules.migrate.settings.policy: expected one of \"Always\", \"Never\", "
        "\"IfNeeded\", got \"always\"; did you mean \"Always\"?\n"
        "test.conf:10: modules.migrate.settings.nodes[1]: expected a string, got the integer 1\n"
        "test.conf:12: modules.migrate.settings.storage.size: expected a size of at least 1Mi, "
        "got \"1k\"\n"
        "test.conf:12: modules.migrate.settings.storage.storageClassName: required setting missing");
}
END_TEST

START_TEST(settings_bounds)
{
    const struct vf_config_module *m = module_from(
        "bandwidthPerMigration = \"20Gi\";\n"
        "completionTimeout = \"2h\";\n"
        "storage = { storageClassName = \"sc\"; size = \"99999999E\"; };");
    struct json_object *out = NULL;

    ck_assert_int_eq(vf_settings_check(cfg, m, schema, &out, &errors), -EINVAL);
    ck_assert_str_eq(error_text(),
        "test.conf:5: modules.migrate.settings.bandwidthPerMigration: expected a size between "
        "1Mi and 10Gi, got \"20Gi\"\n"
        "test.conf:6: modules.migrate.settings.completionTimeout: expected a duration between "
        "1s and 1h, got \"2h\"\n"
        "test.conf:7: modules.migrate.settings.storage.size: \"99999999E\" is too large");
}
END_TEST

START_TEST(settings_missing_required_group)
{
    /* No settings at all: the required member of a defaulted group is named,
     * at the module entry's line. */
    struct json_object *out = NULL;

    load_ok("\nmodules = {\n  migrate = { enabled = true; };\n};\n");
    ck_assert_int_eq(vf_settings_check(cfg, vf_config_module(cfg, "migrate"), schema, &out, &errors),
                     -EINVAL);
    ck_assert_ptr_null(out);
    ck_assert_str_eq(error_text(),
                     "test.conf:3: modules.migrate.settings.storage.storageClassName: required setting missing");
}
END_TEST

START_TEST(settings_no_schema)
{
    const struct vf_config_module *m = module_from("anything = 1;");
    struct json_object *out = NULL;

    ck_assert_int_eq(vf_settings_check(cfg, m, NULL, &out, &errors), -EINVAL);
    ck_assert_str_eq(error_text(), "test.conf:5: modules.migrate.settings.anything: unknown setting "
                                   "(this module has no settings here)");
    teardown();
    m = module_from("");
    ck_assert_int_eq(vf_settings_check(cfg, m, NULL, &out, &errors), 0);
    ck_assert_str_eq(json_plain(out), "{}");
    json_object_put(out);
}
END_TEST

START_TEST(settings_bad_default)
{
    static const struct vf_setting broken[] = {
        { .name = "size", .type = VF_SETTING_SIZE, .default_value = "lots" },
        { .name = "flag", .type = VF_SETTING_BOOL, .default_value = "yes" },
        { 0 },
    };
    const struct vf_config_module *m = module_from("");
    struct json_object *out = NULL;

    ck_assert_int_eq(vf_settings_check(cfg, m, broken, &out, &errors), -EINVAL);
    ck_assert_str_eq(error_text(),
                     "test.conf:4: modules.migrate.settings.size: the module's default is invalid: "
                     "expected a size like \"640Mi\", got \"lots\"\n"
                     "test.conf:4: modules.migrate.settings.flag: the module's default is invalid: "
                     "expected a boolean (true or false), got the string \"yes\"");
}
END_TEST

START_TEST(settings_wrong_container_types)
{
    const struct vf_config_module *m = module_from(
        "storage = [ 1 ];\n"
        "nodes = \"a\";\n"
        "note = [ \"x\" ];");
    struct json_object *out = NULL;

    ck_assert_int_eq(vf_settings_check(cfg, m, schema, &out, &errors), -EINVAL);
    ck_assert_str_eq(error_text(),
                     "test.conf:6: modules.migrate.settings.nodes: expected a list of strings like "
                     "[ \"a\", \"b\" ], got the string \"a\"\n"
                     "test.conf:7: modules.migrate.settings.note: expected a string, got a list\n"
                     "test.conf:5: modules.migrate.settings.storage: expected a group, got a list");
}
END_TEST

#define ADD_CASE(suite, name, test)                                                           \
    do {                                                                                      \
        TCase *tc_ = tcase_create(name);                                                      \
        tcase_add_checked_fixture(tc_, NULL, teardown);                                        \
        tcase_add_test(tc_, test);                                                            \
        suite_add_tcase(suite, tc_);                                                          \
    } while (0)

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");

    ADD_CASE(s, "defaults", defaults);
    ADD_CASE(s, "core values", core_values);
    ADD_CASE(s, "mode as integer", mode_as_integer);
    ADD_CASE(s, "sample file", sample_file);
    ADD_CASE(s, "missing file", missing_file);
    ADD_CASE(s, "syntax error", syntax_error);
    ADD_CASE(s, "libconfig integer traps", libconfig_integer_traps);
    ADD_CASE(s, "include refused", include_refused);
    ADD_CASE(s, "unknown keys", unknown_keys);
    ADD_CASE(s, "wrong types", wrong_types);
    ADD_CASE(s, "bad values", bad_values);
    ADD_CASE(s, "mode range", mode_range);
    ADD_CASE(s, "socket path length", socket_path_length);
    ADD_CASE(s, "control characters escaped", control_characters_escaped);
    ADD_CASE(s, "nodes valid", nodes_valid);
    ADD_CASE(s, "nodes required fields", nodes_required_fields);
    ADD_CASE(s, "nodes names", nodes_names);
    ADD_CASE(s, "nodes uri and labels", nodes_uri_and_labels);
    ADD_CASE(s, "nodes cpuAllocationRatio", nodes_cpu_allocation_ratio);
    ADD_CASE(s, "cidrs valid", cidrs_valid);
    ADD_CASE(s, "cidrs host bits", cidrs_host_bits);
    ADD_CASE(s, "cidrs overlap", cidrs_overlap);
    ADD_CASE(s, "cidrs malformed", cidrs_malformed);
    ADD_CASE(s, "virtualization free form", virtualization_free_form);
    ADD_CASE(s, "virtualization unknown", virtualization_unknown);
    ADD_CASE(s, "libvirtNetwork valid", libvirt_network_valid);
    ADD_CASE(s, "libvirtNetwork invalid", libvirt_network_invalid);
    ADD_CASE(s, "modules entries", modules_entries);
    ADD_CASE(s, "modules errors", modules_errors);
    ADD_CASE(s, "errors collected", errors_collected);
    ADD_CASE(s, "errors appended and cleared", errors_appended_and_cleared);
    ADD_CASE(s, "suggestions", suggestions);
    ADD_CASE(s, "settings defaults", settings_defaults);
    ADD_CASE(s, "settings conversions", settings_conversions);
    ADD_CASE(s, "settings duration as seconds", settings_duration_as_seconds);
    ADD_CASE(s, "settings errors", settings_errors);
    ADD_CASE(s, "settings bounds", settings_bounds);
    ADD_CASE(s, "settings missing required group", settings_missing_required_group);
    ADD_CASE(s, "settings no schema", settings_no_schema);
    ADD_CASE(s, "settings bad default", settings_bad_default);
    ADD_CASE(s, "settings wrong container types", settings_wrong_container_types);
    return s;
}

int main(void)
{
    return vf_test_run(config_suite());
}
