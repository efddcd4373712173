# Benchmarks print figures; they are never part of `make check`.
# `make bench/apibench && sh bench/daemon.sh` runs them.
EXTRA_PROGRAMS = bench/apibench bench/placement
bench_apibench_SOURCES = bench/apibench.c
bench_apibench_CFLAGS = $(AM_CFLAGS) $(CURL_CFLAGS)
bench_apibench_LDADD = $(CURL_LIBS) -lpthread
bench_placement_SOURCES = bench/placement.c
bench_placement_CFLAGS = $(AM_CFLAGS)
bench_placement_LDADD = core/libvfcore.la
CLEANFILES += bench/apibench bench/placement
EXTRA_DIST += bench/README.md bench/lib.sh bench/daemon.sh bench/start_latency.sh bench/image_convert.sh bench/image_import.sh \
	bench/images_scale.sh bench/migrate.sh
