# libFuzzer targets for every parser of untrusted input (./configure CC=clang --enable-fuzzing).
FUZZ_CFLAGS = $(AM_CFLAGS) -fsanitize=fuzzer,address,undefined $(LIBCONFIG_CFLAGS) $(LIBVIRT_CFLAGS)
FUZZ_LINKFLAGS = -fsanitize=fuzzer,address,undefined
if ENABLE_FUZZING
noinst_PROGRAMS += tests/fuzz/fuzz_config tests/fuzz/fuzz_api_body tests/fuzz/fuzz_image_inspect
tests_fuzz_fuzz_config_SOURCES = tests/fuzz/fuzz_config.c
tests_fuzz_fuzz_config_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_config_LDFLAGS = $(FUZZ_LINKFLAGS)
tests_fuzz_fuzz_config_LDADD = core/libvfcore.la
tests_fuzz_fuzz_api_body_SOURCES = tests/fuzz/fuzz_api_body.c
tests_fuzz_fuzz_api_body_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_api_body_LDFLAGS = $(FUZZ_LINKFLAGS)
tests_fuzz_fuzz_api_body_LDADD = core/libvfcore.la
# The image parsers are compiled in (not linked from libvfimage) so that
# libFuzzer's coverage instrumentation sees them.
tests_fuzz_fuzz_image_inspect_SOURCES = tests/fuzz/fuzz_image_inspect.c $(VFIMAGE_SOURCES)
tests_fuzz_fuzz_image_inspect_CFLAGS = $(FUZZ_CFLAGS) $(ZLIB_CFLAGS) $(LZMA_CFLAGS) $(ZSTD_CFLAGS)
tests_fuzz_fuzz_image_inspect_LDFLAGS = $(FUZZ_LINKFLAGS)
tests_fuzz_fuzz_image_inspect_LDADD = $(ZLIB_LIBS) $(LZMA_LIBS) $(ZSTD_LIBS)
# The registry protocol parsers and the layer reader, compiled in likewise.
noinst_PROGRAMS += tests/fuzz/fuzz_registry_manifest tests/fuzz/fuzz_disk_tar
tests_fuzz_fuzz_registry_manifest_SOURCES = tests/fuzz/fuzz_registry_manifest.c $(VFFETCH_PARSE_SOURCES)
tests_fuzz_fuzz_registry_manifest_CFLAGS = $(FUZZ_CFLAGS) $(CRYPTO_CFLAGS) $(ARCHIVE_CFLAGS)
tests_fuzz_fuzz_registry_manifest_LDFLAGS = $(FUZZ_LINKFLAGS)
tests_fuzz_fuzz_registry_manifest_LDADD = $(CRYPTO_LIBS) $(ARCHIVE_LIBS) $(JSONC_LIBS)
tests_fuzz_fuzz_disk_tar_SOURCES = tests/fuzz/fuzz_disk_tar.c $(VFFETCH_PARSE_SOURCES)
tests_fuzz_fuzz_disk_tar_CFLAGS = $(FUZZ_CFLAGS) $(CRYPTO_CFLAGS) $(ARCHIVE_CFLAGS)
tests_fuzz_fuzz_disk_tar_LDFLAGS = $(FUZZ_LINKFLAGS)
tests_fuzz_fuzz_disk_tar_LDADD = $(CRYPTO_LIBS) $(ARCHIVE_LIBS) $(JSONC_LIBS)
endif
EXTRA_DIST += tests/fuzz/fuzz_config.c tests/fuzz/fuzz_api_body.c tests/fuzz/fuzz_image_inspect.c \
	tests/fuzz/fuzz_registry_manifest.c tests/fuzz/fuzz_disk_tar.c tests/fuzz/run.sh
