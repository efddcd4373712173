#!/bin/sh
# Live migration on real nodes (tests/lib/cluster.sh, three nodes), side by side:
#  1. one migration of a 128 MiB guest whose RAM is full (fill.elf):
#     - virsh: `virsh migrate --live --p2p --persistent --undefinesource` of a
#       domain virsh defined itself (loopback URI and listen address), timed
#       around the command;
#     - virtfleet: `virtfleet create -f` of an Evict operation for a VM with the
#       same guest until the operation is Completed (polled every 20 ms on the
#       API socket).  That includes what virsh does not: the store writes,
#       placement and the reservation on the target, the VM marked Migrating and
#       handed back.
#     Rounds alternate (virsh, then virtfleet; each guest goes back and forth
#     between node-1 and node-2) after a warm-up of each; medians and the ratio
#     (target under 1.2x).
#  2. emptying node-1 of DRAIN_VMS guests onto node-2 and node-3: `virtfleet
#     drain node-1` (default limits: one migration out of node-1 at a time)
#     against a serial loop of `virsh migrate` (alternating targets).
#     Rounds alternate (DRAIN_ROUNDS, default 3; everything moves back in between).
#     DRAIN_VMS defaults to 10; the nodes overcommit their CPUs (cpuAllocationRatio
#     RATIO, default 8) so that a 2-CPU node holds them (the guests idle once
#     their memory is written).
# Needs root and the packages of scripts/install-deps.sh.
# Usage: bench/migrate.sh [BUILD_DIR]     ROUNDS=N (default 5), DRAIN_VMS=N (default 10)
set -eu
. "$(dirname "$0")/lib.sh"
RATIO=${RATIO:-8}
bench_build "$@"
ROUNDS=${ROUNDS:-5}
[ -x "$build/virtfleetd" ] && [ -x "$build/virtfleet" ] && [ -f "$build/modules/migrate/.libs/migrate.so" ] ||
    { echo "no $build/virtfleetd, virtfleet or migrate module: build first, or name the build dir" >&2; exit 1; }

bench_scratch
die() { echo "migrate bench: $*" >&2; exit 1; }

sh "$top/tests/lib/guest/build.sh" "$T/guest"
sh "$CLUSTER" up 3 "$T/cl" > "$T/nodes"
echo "3 nodes up, domain type $(cat "$T/cl/domain-type")"
U1=$(sh "$CLUSTER" uri "$T/cl" 1); U2=$(sh "$CLUSTER" uri "$T/cl" 2); U3=$(sh "$CLUSTER" uri "$T/cl" 3)
uri() { case $1 in node-1) echo "$U1" ;; node-2) echo "$U2" ;; node-3) echo "$U3" ;; esac; }
KERNEL="$T/guest/fill.elf"

bench_module migrate
SOCK="$T/api.sock"
nodes=
for n in 1 2 3; do
    nodes="$nodes${nodes:+, }{ name = \"node-$n\"; uri = \"$(uri "node-$n")\"; cpuAllocationRatio = $RATIO; }"
done
bench_config "$nodes" 'migrate = { enabled = true; version = 1; };'
bench_daemon_start migrate
vf() { "$build/virtfleet" --socket "$SOCK" "$@"; }
api_field() {   # api_field PLURAL NAME FIELD...: a status field through the socket
    curl -s --unix-socket "$SOCK" "http://localhost/apis/virtfleet.io/v1alpha2/$1/$2" |
        sed -n "s/.*\"$3\": *\"\{0,1\}\([^\",}]*\).*/\1/p" | head -1
}
three_ready() { [ "$(vf get nodes | grep -c " Ready ")" = 3 ]; }
bench_wait 10 "the three nodes are not Ready in virtfleet" three_ready

vm_yaml() {
    printf 'apiVersion: virtfleet.io/v1alpha2\nkind: VirtualMachine\nmetadata:\n  name: %s\n' "$1"
    printf 'spec:\n  cpu: { cores: 1 }\n  memory: { size: 128Mi }\n  kernel: { path: "%s" }\n' "$KERNEL"
    [ -z "${2:-}" ] || printf '  nodeSelector: { %s }\n' "$2"
}
# wait_filled NODE DOMAIN: its QEMU has touched the guest's 128 MiB (RSS >= 140 MiB).
wait_filled() {
    for _ in $(seq 1 600); do
        p=$(cat "$T/cl/$1/run/qemu/$2.pid" 2>/dev/null || true)
        rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/${p:-0}/status" 2>/dev/null || true)
        [ "${rss:-0}" -ge 143360 ] && return 0
        sleep 0.1
    done
    die "$2 on $1 did not fill its memory"
}
wait_running() {   # wait_running VM NODE
    for _ in $(seq 1 600); do
        [ "$(vf get vm "$1" -o 'jsonpath={.status.phase} {.status.node}' 2>/dev/null)" = "Running $2" ] && return 0
        sleep 0.05
    done
    die "vm $1 is not Running on $2"
}

# ---- 1. one migration -------------------------------------------------------------
sh "$CLUSTER" domxml "$T/cl" vbench "$KERNEL" 128 > "$T/vbench.xml"
virsh -q -c "$U1" define "$T/vbench.xml" >/dev/null
virsh -q -c "$U1" start vbench >/dev/null
vf cordon node-3 >/dev/null; vf cordon node-2 >/dev/null
vm_yaml bench | vf create -f - >/dev/null
wait_running bench node-1
vf uncordon node-2 >/dev/null
wait_filled node-1 vbench; wait_filled node-1 bench
vsrc=node-1
virsh_round() {
    dst=$([ "$vsrc" = node-1 ] && echo node-2 || echo node-1)
    t0=$(ms)
    virsh -c "$(uri "$vsrc")" migrate --live --p2p --persistent --undefinesource \
        --listen-address 127.0.0.1 vbench "$(uri "$dst")" tcp://127.0.0.1 >/dev/null ||
        die "virsh migrate failed"
    t1=$(ms)
    [ "$(virsh -c "$(uri "$dst")" domstate vbench)" = running ] || die "virsh: vbench not running on $dst"
    vsrc=$dst
    elapsed "$t0" "$t1"
}
n_op=0
virtfleet_round() {
    n_op=$((n_op + 1))
    from=$(vf get vm bench -o 'jsonpath={.status.node}')
    t0=$(ms)
    printf 'apiVersion: virtualization.deckhouse.io/v1alpha2\nkind: VirtualMachineOperation\nmetadata:\n  name: evict-bench-%s\nspec:\n  virtualMachineName: bench\n  type: Evict\n' "$n_op" |
        vf create -f - >/dev/null
    while :; do
        p=$(api_field virtualmachineoperations "evict-bench-$n_op" phase)
        [ "$p" = Completed ] && break
        [ "$p" = Failed ] && die "evict-bench-$n_op failed"
        sleep 0.02
    done
    t1=$(ms)
    to=$(vf get vm bench -o 'jsonpath={.status.node}')
    [ "$to" != "$from" ] || die "bench did not move"
    elapsed "$t0" "$t1"
}
virsh_round >/dev/null; virtfleet_round >/dev/null
: > "$T/virsh.ms"; : > "$T/vf.ms"
for i in $(seq 1 "$ROUNDS"); do
    virsh_round >> "$T/virsh.ms"
    virtfleet_round >> "$T/vf.ms"
done
mv_virsh=$(median < "$T/virsh.ms"); mv_vf=$(median < "$T/vf.ms")
echo "one migration, 128 MiB full guest, $ROUNDS rounds:"
echo "  virsh migrate --live:            median $mv_virsh ms   ($(tr '\n' ' ' < "$T/virsh.ms"))"
echo "  virtfleet Evict to Completed:    median $mv_vf ms   ($(tr '\n' ' ' < "$T/vf.ms"))"
echo "  ratio virtfleet / virsh:         $(awk -v a="$mv_vf" -v b="$mv_virsh" 'BEGIN { printf "%.2fx\n", a / b }')"
virsh -q -c "$(uri "$vsrc")" destroy vbench >/dev/null; virsh -q -c "$(uri "$vsrc")" undefine vbench >/dev/null
vf delete vm bench --wait >/dev/null

# ---- 2. emptying a node ------------------------------------------------------------
cpus=$(virsh -c "$U1" nodeinfo | awk -F: '/^CPU\(s\)/ { gsub(/ /, "", $2); print $2 }')
N=${DRAIN_VMS:-10}
room=$((cpus * RATIO))
[ "$N" -le "$room" ] || { echo "node-1 holds $room one-core VMs: draining $room instead of $N"; N=$room; }
vf cordon node-2 >/dev/null; vf cordon node-3 >/dev/null
for i in $(seq 1 "$N"); do vm_yaml "d$i" | vf create -f - >/dev/null; done
for i in $(seq 1 "$N"); do wait_running "d$i" node-1; done
vf uncordon node-2 >/dev/null; vf uncordon node-3 >/dev/null
for i in $(seq 1 "$N"); do
    sh "$CLUSTER" domxml "$T/cl" "v$i" "$KERNEL" 128 > "$T/v$i.xml"
    virsh -q -c "$U1" define "$T/v$i.xml" >/dev/null; virsh -q -c "$U1" start "v$i" >/dev/null
done
for i in $(seq 1 "$N"); do wait_filled node-1 "v$i"; wait_filled node-1 "d$i"; done
DRAIN_ROUNDS=${DRAIN_ROUNDS:-3}
# virsh_drain: v1..vN from node-1 to node-2/node-3 one after another (timed),
# then back to node-1 (not timed).
virsh_drain() {
    t0=$(ms)
    for i in $(seq 1 "$N"); do
        dst=$([ $((i % 2)) -eq 0 ] && echo node-2 || echo node-3)
        virsh -c "$U1" migrate --live --p2p --persistent --undefinesource --listen-address 127.0.0.1 \
            "v$i" "$(uri "$dst")" tcp://127.0.0.1 >/dev/null || die "virsh migrate v$i failed"
    done
    t1=$(ms)
    for i in $(seq 1 "$N"); do
        src=$([ $((i % 2)) -eq 0 ] && echo node-2 || echo node-3)
        virsh -c "$(uri "$src")" migrate --live --p2p --persistent --undefinesource \
            --listen-address 127.0.0.1 "v$i" "$U1" tcp://127.0.0.1 >/dev/null || die "virsh back v$i failed"
    done
    elapsed "$t0" "$t1"
}
# virtfleet_drain: `virtfleet drain node-1` (timed), then uncordon and
# Migrate operations bring d1..dN back to node-1 (not timed).
n_back=0
virtfleet_drain() {
    t0=$(ms)
    vf drain node-1 > "$T/drain.out" 2>&1 || { cat "$T/drain.out" >&2; die "drain failed"; }
    t1=$(ms)
    vf uncordon node-1 >/dev/null
    for i in $(seq 1 "$N"); do
        n_back=$((n_back + 1))
        printf 'apiVersion: virtfleet.io/v1alpha2\nkind: VirtualMachineOperation\nmetadata:\n  name: back-%s\nspec:\n  virtualMachineName: d%s\n  type: Migrate\n  migrate: { nodeName: node-1 }\n' "$n_back" "$i" |
            vf create -f - >/dev/null
    done
    for i in $(seq 1 "$N"); do wait_running "d$i" node-1; done
    elapsed "$t0" "$t1"
}
: > "$T/dvirsh.ms"; : > "$T/dvf.ms"
for r in $(seq 1 "$DRAIN_ROUNDS"); do
    virsh_drain >> "$T/dvirsh.ms"
    virtfleet_drain >> "$T/dvf.ms"
done
t_virsh=$(median < "$T/dvirsh.ms"); t_vf=$(median < "$T/dvf.ms")
echo "emptying node-1 of $N guests (128 MiB, full) onto node-2 and node-3, $DRAIN_ROUNDS rounds:"
echo "  serial virsh migrate loop:       median $t_virsh ms   ($(tr '\n' ' ' < "$T/dvirsh.ms"))"
echo "  virtfleet drain node-1:          median $t_vf ms   ($(tr '\n' ' ' < "$T/dvf.ms"))"
echo "  ratio virtfleet / virsh:         $(awk -v a="$t_vf" -v b="$t_virsh" 'BEGIN { printf "%.2fx\n", a / b }')"
