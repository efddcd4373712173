#!/bin/sh
# Two real libvirt nodes (tests/lib/cluster.sh): a disk-less guest starts on
# node-1, live-migrates over loopback to node-2 and is destroyed there; then
# the daemon, configured with both nodes, reports them Ready with their CPUs.
# Needs root and the packages of scripts/install-deps.sh; never skipped: a
# missing piece is a failure that says what to install.
. "$(dirname "$0")/lib.sh"

need_nodes
prerequisites_met
ok "prerequisites are installed"

cluster_setup

# What a failure shows here: the nodes' own logs (cluster.sh is under test).
node_logs() {
    for f in "$CL"/node-*/libvirtd.log "$CL"/node-*/log/qemu/*.log; do
        [ -f "$f" ] || continue
        diag "--- $f"; diag "$(tail -n 8 "$f")"
    done
}
fail_out() {
    not_ok "$1"; node_logs; done_testing
}

guests_build
ok "the test guests build"

t0=$(ms)
cluster_up 2
diag "2 nodes up in $(( $(ms) - t0 )) ms, domain type $(cat "$CL/domain-type")"
check "cluster.sh brings up 2 nodes" [ "$(wc -l < "$T/nodes")" -eq 2 ]
U1=$(sh "$CLUSTER" uri "$CL" 1)
U2=$(sh "$CLUSTER" uri "$CL" 2)
check "cluster.sh prints each node's URI" grep -qx "node-2 $U2" "$T/nodes"
check "the domain type is kvm or qemu" grep -Eqx 'kvm|qemu' "$CL/domain-type"
host_uuid() { virsh -c "$1" capabilities | sed -n 's:.*<uuid>\(.*\)</uuid>.*:\1:p' | head -1; }
u1=$(host_uuid "$U1"); u2=$(host_uuid "$U2")
check "the nodes have distinct host UUIDs" sh -c '[ -n "$1" ] && [ "$1" != "$2" ]' _ "$u1" "$u2"

sh "$CLUSTER" domxml "$CL" fill "$T/guest/fill.elf" 128 "$T/fill.serial" > "$T/fill.xml"
check "virsh defines the fill guest on node-1" virsh -q -c "$U1" define "$T/fill.xml"
t0=$(ms)
check "virsh starts it" virsh -q -c "$U1" start fill
diag "virsh start: $(( $(ms) - t0 )) ms"
check "it is running on node-1" sh -c '[ "$(virsh -c "$1" domstate fill)" = running ]' _ "$U1"

# The daemon, on both real nodes, while the guest fills its memory.
NODES_CONFIG="nodes = (
  { name = \"node-1\"; uri = \"$U1\"; labels = { zone = \"a\"; }; },
  { name = \"node-2\"; uri = \"$U2\"; labels = { zone = \"b\"; }; } );"
export NODES_CONFIG
write_config
check "the daemon starts with the two real nodes" vf_start
cpus=$(virsh -c "$U1" nodeinfo | awk -F: '/^CPU\(s\)/ { gsub(/ /, "", $2); print $2 }')
# node_row NAME: "PHASE CPUS" of the node in `virtfleet get nodes`.
node_row() {
    vf get nodes 2>/dev/null | awk -v n="$1" '
        NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
        $1 == n { print $col["PHASE"], $col["CPUS"] }'
}
both_ready() { [ "$(node_row node-1)" = "Ready $cpus" ] && [ "$(node_row node-2)" = "Ready $cpus" ]; }
wait_for 15 both_ready || true
out=$(vf get nodes 2>&1)
diag "$out"
check "get nodes shows node-1 Ready with $cpus CPUs" [ "$(node_row node-1)" = "Ready $cpus" ]
check "get nodes shows node-2 Ready with $cpus CPUs" [ "$(node_row node-2)" = "Ready $cpus" ]
check "the daemon stops cleanly" vf_stop

check "the guest wrote every page (serial: fill done)" \
    wait_for 30 grep -q "virtfleet-guest: fill done" "$T/fill.serial"

# Live migration over loopback: the migrate URI names 127.0.0.1 and the
# destination listens on 127.0.0.1 only.
t0=$(ms)
out=$(virsh -c "$U1" migrate --live --p2p --persistent --undefinesource \
    --listen-address 127.0.0.1 fill "$U2" tcp://127.0.0.1 2>&1); rc=$?
diag "virsh migrate --live: $(( $(ms) - t0 )) ms"
[ "$rc" -eq 0 ] || diag "$out"
check "virsh migrate --live --p2p moves it to node-2" [ "$rc" -eq 0 ]
check "it runs on node-2" sh -c '[ "$(virsh -c "$1" domstate fill)" = running ]' _ "$U2"
check "and node-1 no longer has it" sh -c '! virsh -c "$1" list --all --name | grep -qx fill' _ "$U1"
check "virsh destroys it on node-2" virsh -q -c "$U2" destroy fill
check "no domain is left running" sh -c '
    [ -z "$(virsh -c "$1" list --name | grep .)" ] && [ -z "$(virsh -c "$2" list --name | grep .)" ]' _ "$U1" "$U2"

t0=$(ms)
sh "$CLUSTER" down "$CL"
diag "down: $(( $(ms) - t0 )) ms"
# ours_left: pids of tini, libvirtd or QEMU whose command line names this test's files.
ours_left() {
    for p in /proc/[0-9]*; do
        case $(cat "$p/comm" 2>/dev/null) in tini|libvirtd|qemu-system-*) ;; *) continue ;; esac
        tr '\0' ' ' < "$p/cmdline" 2>/dev/null | grep -qF "$T/" && echo "${p#/proc/}"
    done
}
check "cluster.sh down leaves no tini, libvirtd or QEMU behind" [ -z "$(ours_left)" ]
check "and removes its files" [ ! -e "$CL" ]
check "down again is harmless" sh "$CLUSTER" down "$CL"
[ "$tap_failed" -eq 0 ] || node_logs
done_testing
