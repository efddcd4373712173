# The migrate module: live migration (Migrate/Evict operations) and drain.
# queue.c, policy.c, disks.c and made_record.c are pure and also linked into
# tests/unit/check_migrate.
if BUILD_MODULE_MIGRATE
module_LTLIBRARIES += modules/migrate/migrate.la
modules_migrate_migrate_la_SOURCES = modules/migrate/migrate.h modules/migrate/module.c \
	modules/migrate/run.c modules/migrate/job.c modules/migrate/queue.c modules/migrate/policy.c \
	modules/migrate/disks.c modules/migrate/made_record.c modules/migrate/made_volumes.c
modules_migrate_migrate_la_CFLAGS = $(MODULE_CFLAGS) $(LIBVIRT_CFLAGS)
modules_migrate_migrate_la_LDFLAGS = $(MODULE_LINKFLAGS)
modules_migrate_migrate_la_LIBADD = $(LIBVIRT_LIBS) $(JSONC_LIBS) -lpthread

check_PROGRAMS += tests/unit/check_migrate
TESTS += tests/unit/check_migrate
tests_unit_check_migrate_SOURCES = tests/unit/check_migrate.c modules/migrate/queue.c \
	modules/migrate/policy.c modules/migrate/disks.c modules/migrate/made_record.c
tests_unit_check_migrate_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) -I$(top_srcdir)/modules/migrate
tests_unit_check_migrate_LDADD = $(CHECK_LIBS) $(JSONC_LIBS)
endif

# Real-node tests of the module (tests/lib/cluster.sh); they need it built.
MIGRATE_INTEGRATION_TESTS = tests/integration/migrate_basic.sh \
	tests/integration/migrate_converge.sh tests/integration/migrate_drain.sh \
	tests/integration/migrate_disks.sh tests/integration/migrate_cdrom.sh \
	tests/integration/migrate_node_hang.sh
if BUILD_MODULE_MIGRATE
TESTS += $(MIGRATE_INTEGRATION_TESTS)
endif
EXTRA_DIST += $(MIGRATE_INTEGRATION_TESTS) tests/integration/migrate_common.sh bench/migrate.sh

# The core's migration services (core/vms.c) on the test driver's nodes.
check_PROGRAMS += tests/unit/check_migrate_core
TESTS += tests/unit/check_migrate_core
tests_unit_check_migrate_core_CFLAGS = $(UNIT_CFLAGS)
tests_unit_check_migrate_core_LDADD = $(CORE_UNIT_LIBS)
