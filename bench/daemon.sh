#!/bin/sh
# The core's figures: idle RSS, start to API-ready (empty store and 10,000
# objects), durable creates per second, list latency at 10,000 objects, and
# watch fan-out to 50 watchers.  Usage: bench/daemon.sh [BUILD_DIR]
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$top/build}" && pwd)
make -s -C "$build" bench/apibench virtfleetd >/dev/null
OBJECTS=${OBJECTS:-10000}
T=$(mktemp -d /tmp/vf-bench-XXXXXX)
trap 'kill $pid 2>/dev/null; rm -rf "$T"' EXIT
pid=
mkdir "$T/modules"
for so in "$build"/modules/*/.libs/*.so; do ln -s "$so" "$T/modules/"; done
mods=""
for so in "$T"/modules/*.so; do n=$(basename "$so" .so); mods="$mods $n = { enabled = true; };"; done
cat > "$T/d.conf" <<CONF
state_dir = "$T/state";
pidfile = "$T/d.pid";
log_level = "warn";
module_dir = "$T/modules";
api = { socket = "$T/api.sock"; };
nodes = ( { name = "demo"; uri = "test:///default"; } );
modules = { $mods };
CONF

ms() { date +%s%N | awk '{ printf "%.0f", $1 / 1e6 }'; }
# Sets pid and ready_ms.
start() {
    t0=$(ms)
    "$build/virtfleetd" -f -c "$T/d.conf" >>"$T/log" 2>&1 &
    pid=$!
    until curl -sf --unix-socket "$T/api.sock" http://localhost/healthz >/dev/null 2>&1; do sleep 0.005; done
    ready_ms=$(( $(ms) - t0 ))
}
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$pid/status"; }
# Private memory (anonymous pages: heap, stacks) apart from the pages of shared
# libraries, which libvirt.so and its dependencies dominate and which every
# libvirt client on the host maps too.
rss_detail() {
    awk '/^RssAnon/ { a = $2 } /^RssFile/ { f = $2 } END { printf "anonymous %d KiB, shared-library pages %d KiB", a, f }' "/proc/$pid/status"
}
stop() { kill "$pid"; wait "$pid" || true; pid=; }

echo "virtfleetd $("$build/virtfleetd" --version | cut -d' ' -f2), modules:$(echo "$mods" | sed 's/ = { enabled = true; };//g')"
start
echo "start to API-ready, empty store: $ready_ms ms"
sleep 2
idle=$(rss_kib)
echo "idle RSS, all built modules enabled: $idle KiB ($(rss_detail))"
echo "  = $(awk -v k="$idle" 'BEGIN { printf "%.1f", k / 1024 }') MiB; libvirtd idles at 30-36 MiB: ratio $(awk -v k="$idle" 'BEGIN { printf "%.2f", k / 1024 / 33 }') against 33 MiB"
"$build/bench/apibench" "$T/api.sock" create "$OBJECTS"
stop
start
echo "start to API-ready, $OBJECTS objects: $ready_ms ms"
"$build/bench/apibench" "$T/api.sock" list 20
FROM_RV=$(curl -s --unix-socket "$T/api.sock" "http://localhost/apis/virtfleet.io/v1alpha2/virtualmachines" |
    sed -n 's/.*"resourceVersion": *"\([0-9]*\)".*/\1/p' | head -1)
export FROM_RV
"$build/bench/apibench" "$T/api.sock" watch 50 200
echo "RSS with $OBJECTS objects after the runs: $(rss_kib) KiB ($(rss_detail))"
stop
