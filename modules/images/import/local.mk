# libvffetch: the network fetchers of the images module (HTTP(S) and container
# registries over libcurl, layers read with libarchive, hashes with libcrypto).
# A -fPIC convenience library like libvfimage, for the module and the tests.
# VFFETCH_PARSE_SOURCES (no network) are also compiled into the fuzz targets.
noinst_LTLIBRARIES += modules/images/libvffetch.la
VFFETCH_PARSE_SOURCES = \
	modules/images/import/fetch.h modules/images/import/fetch_internal.h \
	modules/images/import/registry_parse.c modules/images/import/disk_tar.c \
	modules/images/import/hash.c
modules_images_libvffetch_la_SOURCES = $(VFFETCH_PARSE_SOURCES) \
	modules/images/import/xfer.c modules/images/import/http.c \
	modules/images/import/registry.c
modules_images_libvffetch_la_CFLAGS = $(AM_CFLAGS) -fPIC $(CURL_CFLAGS) $(CRYPTO_CFLAGS) $(ARCHIVE_CFLAGS)
modules_images_libvffetch_la_LIBADD = $(CURL_LIBS) $(CRYPTO_LIBS) $(ARCHIVE_LIBS) $(JSONC_LIBS) -lpthread
