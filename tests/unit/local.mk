# Check suites, one per unit, reporting TAP.
UNIT_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(LIBVIRT_CFLAGS) $(LIBCONFIG_CFLAGS) $(SQLITE_CFLAGS) \
	$(MHD_CFLAGS) $(CURL_CFLAGS) $(YAML_CFLAGS)
CORE_UNIT_LIBS = core/libvfcore.la $(CHECK_LIBS)

CORE_UNITS = \
	tests/unit/check_quantity \
	tests/unit/check_config \
	tests/unit/check_store \
	tests/unit/check_kinds \
	tests/unit/check_api \
	tests/unit/check_modules \
	tests/unit/check_cluster \
	tests/unit/check_vms \
	tests/unit/check_domain_xml \
	tests/unit/check_vm_disks \
	tests/unit/check_classes \
	tests/unit/check_placement \
	tests/unit/check_ipam \
	tests/unit/check_xml_query \
	tests/unit/check_vm_network \
	tests/unit/check_node_gate
check_PROGRAMS += $(CORE_UNITS) tests/unit/check_manifest tests/unit/check_jsonpath tests/unit/check_image_formats
TESTS += $(CORE_UNITS) tests/unit/check_manifest tests/unit/check_jsonpath tests/unit/check_image_formats

tests_unit_check_quantity_CFLAGS = $(UNIT_CFLAGS)
tests_unit_check_quantity_LDADD = $(CORE_UNIT_LIBS)
tests_unit_check_config_CFLAGS = $(UNIT_CFLAGS)
tests_unit_check_config_LDADD = $(CORE_UNIT_LIBS)
tests_unit_check_store_CFLAGS = $(UNIT_CFLAGS)
tests_unit_check_store_LDADD = $(CORE_UNIT_LIBS)
tests_unit_check_kinds_CFLAGS = $(UNIT_CFLAGS)
tests_unit_check_kinds_LDADD = $(CORE_UNIT_LIBS)
tests_unit_check_api_CFLAGS = $(UNIT_CFLAGS)
tests_unit_check_api_LDADD = $(CORE_UNIT_LIBS) $(CURL_LIBS)
tests_unit_check_modules_CFLAGS = $(UNIT_CFLAGS)
tests_unit_check_modules_LDADD = $(CORE_UNIT_LIBS)
tests_unit_check_manifest_CFLAGS = $(UNIT_CFLAGS)
tests_unit_check_manifest_LDADD = cli/libvfcli.la $(CHECK_LIBS)
tests_unit_check_jsonpath_CFLAGS = $(UNIT_CFLAGS)
tests_unit_check_jsonpath_LDADD = cli/libvfcli.la $(CHECK_LIBS)

# Deliberately broken modules for the loader's tests (check_modules).
BROKEN_MODULE_LINKFLAGS = -module -avoid-version -shared -rpath $(abs_builddir)
check_LTLIBRARIES = \
	tests/unit/modules/bad_abi.la \
	tests/unit/modules/no_descriptor.la \
	tests/unit/modules/init_fail.la \
	tests/unit/modules/bad_settings.la
tests_unit_modules_bad_abi_la_SOURCES = tests/unit/modules/bad_abi.c
tests_unit_modules_bad_abi_la_LDFLAGS = $(BROKEN_MODULE_LINKFLAGS)
tests_unit_modules_no_descriptor_la_SOURCES = tests/unit/modules/no_descriptor.c
tests_unit_modules_no_descriptor_la_LDFLAGS = $(BROKEN_MODULE_LINKFLAGS)
tests_unit_modules_init_fail_la_SOURCES = tests/unit/modules/init_fail.c
tests_unit_modules_init_fail_la_LDFLAGS = $(BROKEN_MODULE_LINKFLAGS)
tests_unit_modules_bad_settings_la_SOURCES = tests/unit/modules/bad_settings.c
tests_unit_modules_bad_settings_la_LDFLAGS = $(BROKEN_MODULE_LINKFLAGS)
EXTRA_DIST += tests/unit/testlib.h tests/unit/teststack.h tests/unit/vmtest.h
tests_unit_check_cluster_CFLAGS = $(UNIT_CFLAGS)
tests_unit_check_cluster_LDADD = $(CORE_UNIT_LIBS)
tests_unit_check_vms_CFLAGS = $(UNIT_CFLAGS)
tests_unit_check_vms_LDADD = $(CORE_UNIT_LIBS)
tests_unit_check_placement_CFLAGS = $(UNIT_CFLAGS)
tests_unit_check_placement_LDADD = $(CORE_UNIT_LIBS)
tests_unit_check_ipam_CFLAGS = $(UNIT_CFLAGS)
tests_unit_check_ipam_LDADD = $(CORE_UNIT_LIBS)
tests_unit_check_vm_disks_CFLAGS = $(UNIT_CFLAGS)
tests_unit_check_vm_disks_LDADD = $(CORE_UNIT_LIBS)
tests_unit_check_domain_xml_CFLAGS = $(UNIT_CFLAGS)
tests_unit_check_domain_xml_LDADD = $(CORE_UNIT_LIBS)
tests_unit_check_classes_CFLAGS = $(UNIT_CFLAGS)
tests_unit_check_classes_LDADD = $(CORE_UNIT_LIBS)
tests_unit_check_xml_query_CFLAGS = $(UNIT_CFLAGS) $(LIBXML_CFLAGS)
tests_unit_check_xml_query_LDADD = $(CORE_UNIT_LIBS) $(LIBXML_LIBS)
tests_unit_check_vm_network_CFLAGS = $(UNIT_CFLAGS)
tests_unit_check_vm_network_LDADD = $(CORE_UNIT_LIBS)
tests_unit_check_image_formats_CFLAGS = $(UNIT_CFLAGS)
tests_unit_check_image_formats_LDADD = modules/images/libvfimage.la $(ZLIB_LIBS) $(LZMA_LIBS) \
	$(CHECK_LIBS) $(JSONC_LIBS)

# The image fetchers against tests/lib/http_fixture (and, for the registry,
# docker-registry on loopback): see tests/unit/fetchtest.h.
check_PROGRAMS += tests/unit/check_image_fetch
TESTS += tests/unit/check_image_fetch
tests_unit_check_image_fetch_CFLAGS = $(UNIT_CFLAGS)
tests_unit_check_image_fetch_LDADD = modules/images/libvffetch.la $(CHECK_LIBS) $(JSONC_LIBS)
EXTRA_DIST += tests/unit/fetchtest.h

# The images module's validation, settings, image store and upload listener
# (its sources compiled in; the controller is tested by images_e2e.sh).
if BUILD_MODULE_IMAGES
check_PROGRAMS += tests/unit/check_images_module
TESTS += tests/unit/check_images_module
tests_unit_check_images_module_SOURCES = tests/unit/check_images_module.c \
	modules/images/module.c modules/images/cvi.c modules/images/cvi_disk.c modules/images/cvi_kind.c \
	modules/images/cvi_import.c modules/images/cdrom.c modules/images/image_store.c \
	modules/images/upload.c modules/images/vd.c modules/images/vd_steps.c modules/images/vd_job.c \
	modules/images/vd_kind.c modules/images/vd_volume.c modules/images/vd_retry.c \
	modules/images/ctl_util.c modules/images/vm_refs.c
tests_unit_check_images_module_CFLAGS = $(UNIT_CFLAGS) $(CRYPTO_CFLAGS) $(LIBVIRT_CFLAGS)
tests_unit_check_images_module_LDADD = modules/images/libvfimage.la modules/images/libvffetch.la \
	$(MHD_LIBS) $(CURL_LIBS) $(CRYPTO_LIBS) $(LIBVIRT_LIBS) $(CHECK_LIBS) $(JSONC_LIBS) -lpthread
# VirtualDisk: validation, settings, volume jobs on libvirt's test driver.
check_PROGRAMS += tests/unit/check_vd
TESTS += tests/unit/check_vd
tests_unit_check_vd_SOURCES = tests/unit/check_vd.c modules/images/vd.c modules/images/vd_steps.c \
	modules/images/vd_job.c modules/images/vd_kind.c modules/images/vd_volume.c \
	modules/images/vd_retry.c modules/images/ctl_util.c modules/images/vm_refs.c
tests_unit_check_vd_CFLAGS = $(UNIT_CFLAGS)
tests_unit_check_vd_LDADD = $(LIBVIRT_LIBS) $(CHECK_LIBS) $(JSONC_LIBS)
# The images module's index of VMs by the disks and images they name.
check_PROGRAMS += tests/unit/check_vm_refs
TESTS += tests/unit/check_vm_refs
tests_unit_check_vm_refs_SOURCES = tests/unit/check_vm_refs.c modules/images/vm_refs.c
tests_unit_check_vm_refs_CFLAGS = $(UNIT_CFLAGS)
tests_unit_check_vm_refs_LDADD = $(CHECK_LIBS) $(JSONC_LIBS)
endif
check_PROGRAMS += tests/unit/check_image_registry
TESTS += tests/unit/check_image_registry
tests_unit_check_image_registry_CFLAGS = $(UNIT_CFLAGS)
tests_unit_check_image_registry_LDADD = modules/images/libvffetch.la $(CHECK_LIBS) $(JSONC_LIBS)
tests_unit_check_node_gate_CFLAGS = $(UNIT_CFLAGS)
tests_unit_check_node_gate_LDADD = $(CORE_UNIT_LIBS) -lpthread
