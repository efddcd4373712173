#!/bin/sh
# Start latency on a real node (tests/lib/cluster.sh, one node), side by side:
#  - virsh: `virsh start` of a defined 128 MiB disk-less guest (it returns
#    once QEMU runs the guest; its state is checked after the clock stops);
#  - virtfleet: `virtfleet create -f` of a VirtualMachine with the same guest
#    (spec.kernel.path, 128Mi, 1 core) until `virtfleet get vm -w` reports
#    phase Running on that node.  That includes what virsh does not: the
#    store write, placement, the IP address and defining the domain.
# Rounds alternate (virsh, then virtfleet) after one warm-up round of each, so
# drift on the machine hits both alike.  Each figure includes starting its
# client (virsh, virtfleet).  Prints both medians and the ratio (target under
# 1.2x).  Needs root and the packages of scripts/install-deps.sh.
# Usage: bench/start_latency.sh [BUILD_DIR]      ROUNDS=N (default 9)
set -eu
. "$(dirname "$0")/lib.sh"
bench_build "$@"
ROUNDS=${ROUNDS:-9}
[ -x "$build/virtfleetd" ] && [ -x "$build/virtfleet" ] ||
    { echo "no $build/virtfleetd or virtfleet: build first, or name the build dir" >&2; exit 1; }

bench_scratch
die() { echo "start_latency: $*" >&2; exit 1; }

sh "$top/tests/lib/guest/build.sh" "$T/guest"
t0=$(ms)
sh "$CLUSTER" up 1 "$T/cl" > "$T/nodes"
echo "node up (cold capabilities cache): $(elapsed "$t0" "$(ms)" | cut -d. -f1) ms," \
    "domain type $(cat "$T/cl/domain-type")"
URI=$(sh "$CLUSTER" uri "$T/cl" 1)
KERNEL="$T/guest/fill.elf"

sh "$CLUSTER" domxml "$T/cl" bench "$KERNEL" 128 > "$T/bench.xml"
virsh -q -c "$URI" define "$T/bench.xml" >/dev/null

# virsh_round: start the defined domain; prints the milliseconds to running.
virsh_round() {
    t0=$(ms)
    virsh -q -c "$URI" start bench >/dev/null
    t1=$(ms)
    [ "$(virsh -c "$URI" domstate bench)" = running ] || die "virsh start: bench is not running"
    virsh -q -c "$URI" destroy bench >/dev/null
    elapsed "$t0" "$t1"
}

# ---- the daemon, on the same node; a watch on VirtualMachines ----
bench_config "{ name = \"node-1\"; uri = \"$URI\"; }" "" \
    'virtualization = { virtualMachineCIDRs = [ "10.77.9.0/24" ]; };'
bench_daemon_start
vf() { "$build/virtfleet" --socket "$T/api.sock" "$@"; }
node_ready() { [ "$(vf get node node-1 -o 'jsonpath={.status.phase}')" = Ready ]; }
bench_wait 15 "node-1 never Ready in virtfleet" node_ready
mkfifo "$T/watch"
vf get vm --watch-only -o 'jsonpath={.metadata.name} {.status.phase} {.status.node}{"\n"}' \
    > "$T/watch" 2>"$T/watch.err" &
bench_started $!
exec 3< "$T/watch"

# vf_round R: create VM bench-R, wait for the watch to report it Running,
# then delete it and wait until its domain is gone; prints the milliseconds.
vf_round() {
    cat > "$T/vm.yaml" <<YAML
apiVersion: virtfleet.io/v1alpha2
kind: VirtualMachine
metadata:
  name: bench-$1
spec:
  cpu: { cores: 1 }
  memory: { size: 128Mi }
  kernel: { path: "$KERNEL" }
YAML
    t0=$(ms)
    vf create -f "$T/vm.yaml" >/dev/null || die "create bench-$1 refused"
    while :; do
        if ! IFS=' ' read -r name phase node <&3; then
            die "the watch ended: $(cat "$T/watch.err"); $(tail -n 5 "$T/daemon.log")"
        fi
        [ "$name $phase $node" != "bench-$1 Running node-1" ] || break
    done
    t1=$(ms)
    vf delete vm "bench-$1" >/dev/null
    n=0
    while virsh -c "$URI" list --all --name | grep -q "^bench-$1\$"; do
        n=$((n + 1)); [ $n -lt 600 ] || die "bench-$1 still has a domain after delete"
        sleep 0.05
    done
    elapsed "$t0" "$t1"
}

virsh_round > /dev/null   # warm-up: caches, the first QEMU of the node
vf_round 0 > /dev/null
: > "$T/virsh.ms"; : > "$T/vf.ms"
for r in $(seq 1 "$ROUNDS"); do
    virsh_round >> "$T/virsh.ms"
    vf_round "$r" >> "$T/vf.ms"
done
virsh -q -c "$URI" undefine bench >/dev/null
virsh_med=$(median < "$T/virsh.ms")
vf_med=$(median < "$T/vf.ms")
each() { tr '\n' ' ' < "$1" | sed 's/ $//'; }
echo "virsh start -> running:            median $virsh_med ms over $ROUNDS (each: $(each "$T/virsh.ms"))"
echo "virtfleet create -> phase Running: median $vf_med ms over $ROUNDS (each: $(each "$T/vf.ms"))"
echo "ratio virtfleet / virsh: $(awk -v a="$vf_med" -v b="$virsh_med" 'BEGIN { printf "%.2f", a / b }')x (target < 1.2x)"
