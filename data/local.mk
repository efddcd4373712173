# Sample configuration (never overwrites an admin's file), systemd unit, man pages.
EXTRA_DIST += data/virtfleetd.conf.sample data/virtfleetd.service.in data/examples data/nodes
dist_man_MANS += data/virtfleetd.8 data/virtfleetd.conf.5 data/virtfleet.1

pkgdata_DATA = data/virtfleetd.conf.sample

systemdsystemunit_DATA = data/virtfleetd.service
data/virtfleetd.service: data/virtfleetd.service.in Makefile
	$(AM_V_GEN)mkdir -p data && $(SED) -e 's|@sbindir[@]|$(sbindir)|g' \
		-e 's|@sysconfdir[@]|$(sysconfdir)|g' -e 's|@runstatedir[@]|$(runstatedir)|g' \
		$(srcdir)/data/virtfleetd.service.in > $@
CLEANFILES += data/virtfleetd.service

# Install the sample as the config only when the admin has none yet.
install-data-hook:
	$(MKDIR_P) '$(DESTDIR)$(sysconfdir)/virtfleet'
	if test ! -e '$(DESTDIR)$(sysconfdir)/virtfleet/virtfleetd.conf'; then \
		$(INSTALL_DATA) '$(srcdir)/data/virtfleetd.conf.sample' \
			'$(DESTDIR)$(sysconfdir)/virtfleet/virtfleetd.conf'; \
	fi
uninstall-hook:
	if test -e '$(DESTDIR)$(sysconfdir)/virtfleet/virtfleetd.conf' && \
	   cmp -s '$(srcdir)/data/virtfleetd.conf.sample' '$(DESTDIR)$(sysconfdir)/virtfleet/virtfleetd.conf'; then \
		rm -f '$(DESTDIR)$(sysconfdir)/virtfleet/virtfleetd.conf'; \
	fi
	-rmdir '$(DESTDIR)$(sysconfdir)/virtfleet' 2>/dev/null
