#!/bin/sh
# Start latency on a real node (tests/lib/cluster.sh, one node): `virsh start`
# of a defined 128 MiB disk-less guest until it is running, against virtfleet's
# request (a VirtualMachine with spec.kernel.path created through the API) to
# phase Running on the same node with the same guest.  Median of ROUNDS (5).
# Each figure includes starting its client (virsh, curl).  Needs root and the
# packages of scripts/install-deps.sh.   Usage: bench/start_latency.sh [BUILD_DIR]
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
if [ $# -ge 1 ]; then build=$(cd "$1" && pwd)
elif [ -x "$top/build/virtfleetd" ]; then build=$top/build
else build=$top; fi
ROUNDS=${ROUNDS:-5}
CLUSTER="$top/tests/lib/cluster.sh"

T=$(mktemp -d /tmp/vf-bench-XXXXXX)
pid=
cleanup() {
    [ -z "$pid" ] || { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; }
    sh "$CLUSTER" down "$T/cl" >/dev/null 2>&1 || true
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ms() { date +%s%N | awk '{ printf "%.1f", $1 / 1e6 }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

sh "$top/tests/lib/guest/build.sh" "$T/guest"
t0=$(ms)
sh "$CLUSTER" up 1 "$T/cl" > "$T/nodes"
echo "node up (cold capabilities cache): $(awk -v a="$t0" -v b="$(ms)" 'BEGIN { printf "%.0f", b - a }') ms," \
    "domain type $(cat "$T/cl/domain-type")"
URI=$(sh "$CLUSTER" uri "$T/cl" 1)
KERNEL="$T/guest/fill.elf"

# ---- virsh start: defined domain -> running ----
sh "$CLUSTER" domxml "$T/cl" bench "$KERNEL" 128 > "$T/bench.xml"
virsh -q -c "$URI" define "$T/bench.xml" >/dev/null
: > "$T/virsh.ms"
for r in $(seq 1 "$ROUNDS"); do
    t0=$(ms)
    virsh -q -c "$URI" start bench >/dev/null
    while [ "$(virsh -c "$URI" domstate bench)" != running ]; do sleep 0.005; done
    t1=$(ms)
    echo "$t0 $t1" | awk '{ printf "%.1f\n", $2 - $1 }' >> "$T/virsh.ms"
    virsh -q -c "$URI" destroy bench >/dev/null
done
virsh -q -c "$URI" undefine bench >/dev/null
virsh_med=$(median < "$T/virsh.ms")
echo "virsh start -> running: median $virsh_med ms over $ROUNDS (each: $(tr '\n' ' ' < "$T/virsh.ms"| sed 's/ $//'))"

# ---- virtfleet: create VirtualMachine -> status.phase Running ----
vf_side() {
    [ -x "$build/virtfleetd" ] || { echo "no $build/virtfleetd (build it first)"; return 1; }
    mkdir -p "$T/modules"
    cat > "$T/d.conf" <<CONF
state_dir = "$T/state";
pidfile = "$T/d.pid";
log_level = "warn";
module_dir = "$T/modules";
api = { socket = "$T/api.sock"; };
nodes = ( { name = "node-1"; uri = "$URI"; } );
modules = { };
CONF
    "$build/virtfleetd" -f -c "$T/d.conf" > "$T/d.log" 2>&1 &
    pid=$!
    api() { curl -s --unix-socket "$T/api.sock" "$@"; }
    base=http://localhost/apis/virtfleet.io/v1alpha2
    n=0
    until api -f "$base/nodes/node-1" 2>/dev/null | grep -q '"phase": *"Ready"'; do
        n=$((n + 1))
        [ $n -lt 300 ] || { echo "node-1 never Ready in virtfleet"; return 1; }
        sleep 0.05
    done
    : > "$T/vf.ms"
    for r in $(seq 1 "$ROUNDS"); do
        body="{\"apiVersion\":\"virtfleet.io/v1alpha2\",\"kind\":\"VirtualMachine\",
            \"metadata\":{\"name\":\"bench-$r\"},
            \"spec\":{\"cpu\":{\"cores\":1},\"memory\":{\"size\":\"128Mi\"},
                     \"kernel\":{\"path\":\"$KERNEL\"}}}"
        t0=$(ms)
        code=$(api -o "$T/create.out" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
            --data "$body" "$base/virtualmachines")
        [ "$code" = 201 ] || { echo "create refused ($code): $(head -c 300 "$T/create.out")"; return 1; }
        deadline=$(( $(date +%s) + ${VF_TIMEOUT:-20} ))
        until api "$base/virtualmachines/bench-$r" > "$T/vm.json" &&
            grep -q '"phase": *"Running"' "$T/vm.json"; do
            if [ "$(date +%s)" -ge "$deadline" ]; then
                status=$(tr -s ' \n' ' ' < "$T/vm.json" | sed -n 's/.*\("status" *:.*\)/\1/p' | head -c 400)
                echo "bench-$r not Running after ${VF_TIMEOUT:-20} s; status: ${status:-none (no VM controller yet?)}"
                return 1
            fi
            sleep 0.01
        done
        t1=$(ms)
        echo "$t0 $t1" | awk '{ printf "%.1f\n", $2 - $1 }' >> "$T/vf.ms"
        api -o /dev/null -X DELETE "$base/virtualmachines/bench-$r"
        n=0
        while virsh -c "$URI" list --name | grep -q .; do
            n=$((n + 1)); [ $n -lt 600 ] || { echo "bench-$r still has a domain after delete"; return 1; }
            sleep 0.05
        done
    done
}
if vf_side > "$T/vf.out" 2>&1; then
    vf_med=$(median < "$T/vf.ms")
    echo "virtfleet request -> Running: median $vf_med ms over $ROUNDS (each: $(tr '\n' ' ' < "$T/vf.ms" | sed 's/ $//'))"
    echo "ratio virtfleet / virsh: $(awk -v a="$vf_med" -v b="$virsh_med" 'BEGIN { printf "%.2f", a / b }')x (target < 1.2x)"
else
    echo "virtfleet request -> Running: not measured: $(tail -n 3 "$T/vf.out")"
    echo "(only the virsh figure above; it is the peer for virtfleet's request-to-Running)"
fi
