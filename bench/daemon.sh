#!/bin/sh
# The core's figures: idle RSS, start to API-ready (empty store and 10,000
# objects), durable creates per second, list latency at 10,000 objects, and
# watch fan-out to 50 watchers.  Usage: bench/daemon.sh [BUILD_DIR]
set -eu
. "$(dirname "$0")/lib.sh"
bench_build "$@"
make -s -C "$build" bench/apibench virtfleetd >/dev/null
OBJECTS=${OBJECTS:-10000}
bench_scratch
mods=""
for so in "$build"/modules/*/.libs/*.so; do
    n=$(basename "$so" .so); bench_module "$n"; mods="$mods $n = { enabled = true; };"
done
bench_config '{ name = "demo"; uri = "test:///default"; }' "$mods"

# Sets daemon_pid and ready_ms.
start() {
    t0=$(ms)
    bench_daemon_start
    ready_ms=$(awk -v a="$t0" -v b="$(ms)" 'BEGIN { printf "%.0f", b - a }')
}
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$daemon_pid/status"; }
# Private memory (anonymous pages: heap, stacks) apart from the pages of shared
# libraries, which libvirt.so and its dependencies dominate and which every
# libvirt client on the host maps too.
rss_detail() {
    awk '/^RssAnon/ { a = $2 } /^RssFile/ { f = $2 } END { printf "anonymous %d KiB, shared-library pages %d KiB", a, f }' "/proc/$daemon_pid/status"
}

echo "virtfleetd $("$build/virtfleetd" --version | cut -d' ' -f2), modules:$(echo "$mods" | sed 's/ = { enabled = true; };//g')"
start
echo "start to API-ready, empty store: $ready_ms ms"
sleep 2
idle=$(rss_kib)
echo "idle RSS, all built modules enabled: $idle KiB ($(rss_detail))"
echo "  = $(awk -v k="$idle" 'BEGIN { printf "%.1f", k / 1024 }') MiB; libvirtd idles at 30-36 MiB: ratio $(awk -v k="$idle" 'BEGIN { printf "%.2f", k / 1024 / 33 }') against 33 MiB"
"$build/bench/apibench" "$T/api.sock" create "$OBJECTS"
bench_daemon_stop
start
echo "start to API-ready, $OBJECTS objects: $ready_ms ms"
"$build/bench/apibench" "$T/api.sock" list 20
FROM_RV=$(curl -s --unix-socket "$T/api.sock" "http://localhost/apis/virtfleet.io/v1alpha2/virtualmachines" |
    sed -n 's/.*"resourceVersion": *"\([0-9]*\)".*/\1/p' | head -1)
export FROM_RV
"$build/bench/apibench" "$T/api.sock" watch 50 200
echo "RSS with $OBJECTS objects after the runs: $(rss_kib) KiB ($(rss_detail))"
bench_daemon_stop
