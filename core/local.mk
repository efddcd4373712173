# The daemon: everything but main() lives in a convenience library that the
# unit tests link too.
noinst_LTLIBRARIES += core/libvfcore.la
core_libvfcore_la_SOURCES = \
	core/log.c core/log.h \
	core/loop.c core/loop.h \
	core/workers.c core/workers.h \
	core/quantity.c core/quantity.h \
	core/store.c core/store.h \
	core/kinds.c core/kinds.h \
	core/core_kinds.c core/core_kinds.h \
	core/objects.c core/objects.h core/json_util.h \
	core/api.c core/api_body.c core/api.h core/api_internal.h core/api_ops.c core/api_reply.c \
	core/api_routes.c core/api_selector.c core/api_watch.c \
	core/config.c core/settings.c core/config.h \
	core/modules.c core/core_services.c core/modules.h core/module_instance.h \
	core/audit.c core/audit.h \
	core/domain_xml.c core/domain_xml.h core/vm_disks.c core/vm_disks.h core/classes.c core/classes.h \
	core/label_selector.c core/label_selector.h core/placement.c core/placement.h core/ipam.c core/ipam.h \
	core/cluster.c core/cluster.h \
	core/vms.c core/vms.h core/vm_migration.c core/vmops.c core/vm_jobs.c core/vms_internal.h \
	core/vm_network.c core/vm_network.h core/xml_query.c core/xml_query.h \
	core/node_gate.c core/node_gate.h
core_libvfcore_la_CFLAGS = $(AM_CFLAGS) $(LIBVIRT_CFLAGS) $(LIBCONFIG_CFLAGS) $(SQLITE_CFLAGS) \
	$(MHD_CFLAGS) $(LIBXML_CFLAGS)
core_libvfcore_la_LIBADD = $(LIBVIRT_LIBS) $(LIBXML_LIBS) $(LIBCONFIG_LIBS) $(JSONC_LIBS) $(SQLITE_LIBS) \
	$(MHD_LIBS) $(LTDL_LIBS) -lpthread

sbin_PROGRAMS += virtfleetd
virtfleetd_SOURCES = core/main.c
virtfleetd_CFLAGS = $(AM_CFLAGS) $(LIBVIRT_CFLAGS)
virtfleetd_LDADD = core/libvfcore.la
