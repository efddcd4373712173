#!/bin/sh
# A node whose libvirtd hangs in the middle of a VirtualDisk's copy, on a real
# libvirt node (tests/lib/cluster.sh), through the daemon and the CLI.  The
# image is 512 MiB of random bytes (no holes, so the copy takes a while); once
# part of it is in the volume, the node's libvirtd is stopped (SIGSTOP) for
# longer than the keepalive (about 5 s * 3).  The copy fails with the
# keepalive timeout and is retried, the node goes NotReady, and the daemon
# stays up; after SIGCONT the node is Ready again and the disk ends Ready
# with the image's bytes (cmp).
#
# The regression: libvirt 9.0's RPC client leaves, on a connection two
# threads wait on, callback data in the stack of a thread that gave up
# waiting; with the copy streamed over the node's shared connection the
# core's heartbeat queued behind it, inherited that state when the
# keepalive closed the connection, and crashed the daemon (SIGSEGV in
# libvirt) as soon as libvirtd was resumed (see
# include/virtfleet/node_connection.h).
# Whether it crashes depends on what the dead stack holds by then; what
# always shows is the heartbeat stuck on the closed connection, so that the
# node never went NotReady: that check fails every time on the old code.
# Never skipped: a missing tool is a failure.
. "$(dirname "$0")/lib.sh"
need_nodes
need_tools curl cmp stat
need_fixture
need_images_module
prerequisites_met
ok "prerequisites are installed"

STOPPED=
# shellcheck disable=SC2016
CLEANUP='[ -z "$STOPPED" ] || kill -CONT $STOPPED 2>/dev/null; fixtures_stop'
cluster_setup
ln -s "$IMAGES_MODULE" "$T/modules/images.so"
W="$T/www"
mkdir -p "$W" "$T/pool"
# Generous for a loaded machine; every wait is a poll that ends sooner.
WAIT=${DISK_NODE_HANG_WAIT:-60}
SIZE_MIB=512

node_phase_is() { [ "$(field node node-1 .status.phase)" = "$1" ]; }

cluster_up 1
U1=$(node_uri node-1)
virsh -q -c "$U1" pool-define-as local dir --target "$T/pool" >"$T/pool.log" 2>&1 &&
    virsh -q -c "$U1" pool-start local >>"$T/pool.log" 2>&1 ||
    { diag "$(cat "$T/pool.log")"; fail_out "virsh defines and starts pool \"local\""; }
ok "node-1 is up with a directory pool \"local\""

head -c "$((SIZE_MIB * 1048576))" /dev/urandom > "$W/big.raw"
http_fixture_start fixture "$W" || fail_out "http_fixture starts"

NODES_CONFIG="nodes = ( { name = \"node-1\"; uri = \"$U1\"; } );"
export NODES_CONFIG
write_config "$(images_module_config 1Gi "
    virtualDisks = { storageClasses = [ \"local:local\" ]; defaultStorageClassName = \"local\"; };
    upload = { listen = \"127.0.0.1:0\"; };")"
vf_start || fail_out "the daemon starts with the images module and node-1"
wait_for 30 node_phase_is Ready || fail_out "node-1 is Ready"
wait_images_running

printf 'apiVersion: virtualization.deckhouse.io/v1alpha2\nkind: ClusterVirtualImage\nmetadata:\n  name: big\nspec:\n  dataSource:\n    type: HTTP\n    http:\n      url: http://%s/files/big.raw\n' \
    "$(fixture_addr fixture)" | vf apply -f - >/dev/null
wait_for "$WAIT" phase_is cvi big Ready || fail_out "the ${SIZE_MIB} MiB image is imported (Ready)"
ok "ClusterVirtualImage big (${SIZE_MIB} MiB of random bytes) is Ready"

printf 'apiVersion: virtualization.deckhouse.io/v1alpha2\nkind: VirtualDisk\nmetadata:\n  name: d\nspec:\n  dataSource:\n    type: ObjectRef\n    objectRef:\n      kind: ClusterVirtualImage\n      name: big\n' |
    vf apply -f - >/dev/null || fail_out "a VirtualDisk from the image is accepted"

# Stop libvirtd once the copy has written part of the volume: a volume
# (created sparse) with more than 16 MiB and less than three quarters of the
# image allocated.  stat is cheap: poll it tightly, the copy is fast.
LIBVIRTD_PID=$(cat "$CL/node-1/libvirtd.pid")
low=$((16 * 1048576)) high=$((SIZE_MIB * 1048576 / 4 * 3)) got=
end=$(( $(date +%s) + WAIT ))
while [ "$(date +%s)" -le "$end" ]; do
    for f in "$T/pool"/*; do
        [ -f "$f" ] || continue
        got=$(stat -c '%b %B' "$f" 2>/dev/null | awk '{ print $1 * $2 }')
        if [ "${got:-0}" -gt "$low" ] && [ "$got" -lt "$high" ]; then
            kill -STOP "$LIBVIRTD_PID" && STOPPED=$LIBVIRTD_PID
            break 2
        fi
    done
done
[ -n "$STOPPED" ] ||
    fail_out "node-1's libvirtd is stopped mid-copy (volume allocation last seen: ${got:-none})"
ok "node-1's libvirtd is stopped mid-copy ($((got / 1048576)) of ${SIZE_MIB} MiB in the volume)"

# The copy's connection has a keepalive: it fails instead of waiting.
copy_cut() {
    [ "$(cond vd d Ready reason)" = Retrying ] && [ "$(field vd d .status.attempts)" -ge 1 ] 2>/dev/null
}
wait_for "$WAIT" copy_cut || logs
msg=$(cond vd d Ready message)
check "the copy fails with the keepalive timeout and will be retried: $msg" \
    sh -c 'echo "$1" | grep -q "keepalive timeout"' _ "$msg"
wait_for "$WAIT" node_phase_is NotReady || logs
check "node-1 goes NotReady: $(field node node-1 '.status.conditions[0].message')" \
    node_phase_is NotReady
check "the daemon is still running while node-1 hangs" daemon_alive
kill -CONT "$STOPPED"
STOPPED=

wait_for "$WAIT" node_phase_is Ready || logs
check "node-1 is Ready again after SIGCONT" node_phase_is Ready
check "the daemon is still running (pid $DAEMON_PID)" daemon_alive
check "the daemon answers: virtfleet get nodes" get_nodes
wait_for "$WAIT" phase_is vd d Ready || logs
check "the disk ends Ready" phase_is vd d Ready
check "the daemon is still running after the copy" daemon_alive
check "the volume holds the image's bytes (cmp)" cmp -s "$W/big.raw" "$(field vd d .status.target.path)"
check "no volume but the disk's is left in the pool" \
    test "$(virsh -q -c "$U1" vol-list local 2>/dev/null | awk 'NF { n++ } END { print n + 0 }')" = 1
done_testing
