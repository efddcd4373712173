# Shell tests against the real daemon and CLI; each prints TAP.
INTEGRATION_TESTS = \
	tests/integration/cli_basics.sh \
	tests/integration/config_reload.sh \
	tests/integration/crash_safety.sh \
	tests/integration/bad_config.sh \
	tests/integration/nodes_smoke.sh \
	tests/integration/vm_lifecycle.sh \
	tests/integration/images_e2e.sh \
	tests/integration/disks.sh \
	tests/integration/disk_node_hang.sh \
	tests/integration/image_from_disk.sh \
	tests/integration/images_vm_index.sh
TESTS += $(INTEGRATION_TESTS)
EXTRA_DIST += $(INTEGRATION_TESTS) tests/integration/lib.sh tests/integration/out_of_tree_module.sh \
	tests/integration/outoftree/hello.c tests/lib/cluster.sh tests/lib/guest

# The SDK as a third party sees it: build a module against the installed header
# and .pc file only, then load it with the installed daemon (run by distcheck).
installcheck-local:
	$(SHELL) $(srcdir)/tests/integration/out_of_tree_module.sh \
		'$(DESTDIR)$(prefix)' '$(DESTDIR)$(sbindir)/virtfleetd' '$(DESTDIR)$(pkgconfigdir)' \
		'$(abs_srcdir)/tests/integration/outoftree/hello.c'
