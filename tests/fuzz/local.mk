# libFuzzer targets for every parser of untrusted input (./configure CC=clang --enable-fuzzing).
FUZZ_CFLAGS = $(AM_CFLAGS) -fsanitize=fuzzer,address,undefined $(LIBCONFIG_CFLAGS) $(LIBVIRT_CFLAGS)
FUZZ_LINKFLAGS = -fsanitize=fuzzer,address,undefined
if ENABLE_FUZZING
noinst_PROGRAMS += tests/fuzz/fuzz_config tests/fuzz/fuzz_api_body
tests_fuzz_fuzz_config_SOURCES = tests/fuzz/fuzz_config.c
tests_fuzz_fuzz_config_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_config_LDFLAGS = $(FUZZ_LINKFLAGS)
tests_fuzz_fuzz_config_LDADD = core/libvfcore.la
tests_fuzz_fuzz_api_body_SOURCES = tests/fuzz/fuzz_api_body.c
tests_fuzz_fuzz_api_body_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_api_body_LDFLAGS = $(FUZZ_LINKFLAGS)
tests_fuzz_fuzz_api_body_LDADD = core/libvfcore.la
endif
EXTRA_DIST += tests/fuzz/fuzz_config.c tests/fuzz/fuzz_api_body.c tests/fuzz/run.sh
