# Test helpers built as check programs (not installed).
# http_fixture: a misbehaving HTTP(S) server and token-protected registry on
# loopback for the image fetchers' tests and the images module's end-to-end tests.
check_PROGRAMS += tests/lib/http_fixture
tests_lib_http_fixture_SOURCES = tests/lib/http_fixture.c
tests_lib_http_fixture_CFLAGS = $(AM_CFLAGS) $(MHD_CFLAGS)
tests_lib_http_fixture_LDADD = $(MHD_LIBS) $(JSONC_LIBS) -lpthread
EXTRA_DIST += tests/lib/registry.sh tests/lib/oci_image.sh
