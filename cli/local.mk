# The virtfleet command.  Its parts live in a convenience library the unit tests link.
noinst_LTLIBRARIES += cli/libvfcli.la
cli_libvfcli_la_SOURCES = \
	cli/client.c cli/client.h \
	cli/manifest.c cli/manifest.h \
	cli/render.c cli/render.h \
	cli/jsonpath_parse.c cli/jsonpath_eval.c cli/jsonpath_tree.h cli/jsonpath.h \
	cli/kinds_cache.c cli/kinds_cache.h
cli_libvfcli_la_CFLAGS = $(AM_CFLAGS) $(CURL_CFLAGS) $(YAML_CFLAGS)
cli_libvfcli_la_LIBADD = $(CURL_LIBS) $(YAML_LIBS) $(JSONC_LIBS)

bin_PROGRAMS += virtfleet
virtfleet_SOURCES = cli/main.c cli/commands.c cli/commands.h cli/image.c cli/upload.c cli/drain.c
virtfleet_CFLAGS = $(AM_CFLAGS) $(CURL_CFLAGS) $(YAML_CFLAGS)
virtfleet_LDADD = cli/libvfcli.la modules/images/libvfimage.la $(ZLIB_LIBS) $(LZMA_LIBS)
