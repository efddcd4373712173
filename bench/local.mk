# Benchmarks print figures; they are never part of `make check`.
# `make bench/apibench && sh bench/daemon.sh` runs them.
EXTRA_PROGRAMS = bench/apibench
bench_apibench_SOURCES = bench/apibench.c
bench_apibench_CFLAGS = $(AM_CFLAGS) $(CURL_CFLAGS)
bench_apibench_LDADD = $(CURL_LIBS) -lpthread
CLEANFILES += bench/apibench
EXTRA_DIST += bench/README.md bench/daemon.sh
