# Shared by the migrate_*.sh tests (sourced after lib.sh): N real libvirt
# nodes (tests/lib/cluster.sh), the daemon with the migrate module, the test
# guests, and helpers to read VMs and operations through the CLI and the
# nodes through virsh.  Call mig_setup N "MODULE SETTINGS" first.
need_nodes
need_tools curl
prerequisites_met

T_START=$(ms)
WAIT=${VM_WAIT:-30}
LOGS_SKIP=' debug '   # migrations log much at debug level, not only the API

# mig_setup N SETTINGS: nodes node-1..node-N, the daemon with
# `migrate = { enabled = true; version = 1; settings = { SETTINGS }; }`.
# A test that needs more sets, before calling it: MIG_MODULES (other module
# sections, written next to migrate's), MIG_CLEANUP (a command run on exit)
# and a function mig_before_start (run once the nodes are up, before the
# daemon starts: link other modules into $T/modules, define pools).
mig_setup() {
    # lib.sh's vf_setup, in a directory of our own prefix.
    T=$(mktemp -d /tmp/vf-mig-XXXXXX)
    mkdir -p "$T/modules"
    SOCK="$T/api.sock"
    CONF="$T/virtfleetd.conf"
    CL="$T/cl"
    trap 'vf_stop >/dev/null 2>&1; eval "${MIG_CLEANUP:-:}"; sh "$CLUSTER" down "$CL" >/dev/null 2>&1; vf_teardown' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    ln -s "$top_builddir/modules/migrate/.libs/migrate.so" "$T/modules/migrate.so"
    guests_build
    cluster_up "$1"
    NODES=$(awk '{ print $1 }' "$T/nodes" | tr '\n' ' ')
    nodes_conf=
    for n in $NODES; do
        nodes_conf="$nodes_conf${nodes_conf:+, }{ name = \"$n\"; uri = \"$(node_uri "$n")\"; labels = { host = \"$n\"; }; }"
    done
    NODES_CONFIG="nodes = ( $nodes_conf );"
    export NODES_CONFIG
    MIG_SETTINGS=$2
    ! command -v mig_before_start >/dev/null 2>&1 || mig_before_start ||
        fail_out "the test's setup before the daemon starts"
    write_config "migrate = { enabled = true; version = 1; settings = { $MIG_SETTINGS }; }; ${MIG_MODULES:-}" \
        'virtualization = { virtualMachineCIDRs = [ "10.77.6.0/26" ]; };'
    vf_start || fail_out "the daemon starts"
    wait_for 20 nodes_ready || fail_out "all nodes are Ready"
    ok "$1 nodes ($(cat "$CL/domain-type")), the daemon with the migrate module { $2 }"
}
# local_pools DIR: a directory pool "local" at DIR on each node; pool-build
# makes the directory inside the node's own mount namespace, so the same path
# is different storage on each node (what two machines with local disks are).
local_pools() {
    for n in $NODES; do
        virsh -q -c "$(node_uri "$n")" pool-define-as local dir --target "$1" >>"$T/pool.log" 2>&1 &&
            virsh -q -c "$(node_uri "$n")" pool-build local >>"$T/pool.log" 2>&1 &&
            virsh -q -c "$(node_uri "$n")" pool-start local >>"$T/pool.log" 2>&1 ||
            { diag "$(cat "$T/pool.log")"; return 1; }
    done
}
# vols NODE: the volumes in NODE's pool "local"; has_vol NODE VOLUME.
vols() { virsh -q -c "$(node_uri "$1")" vol-list local 2>/dev/null | awk '{ print $1 }'; }
has_vol() { vols "$1" | grep -qx "$2"; }
# no_vols: no node holds a volume in its pool "local".
no_vols() {
    for n in $NODES; do
        [ -z "$(vols "$n")" ] || return 1
    done
}

# ---- the images module next to migrate ---------------------------------------------
# The pools "local" of mig_images: the same path on each node, private to it.
POOL_DIR=/var/lib/libvirt/images
# mig_need_images: the tests/lib/http_fixture and the images module are built;
# else the test ends.
mig_need_images() {
    for t in "$FIXTURE" "$IMAGES_MODULE"; do
        [ -e "$t" ] || { not_ok "prerequisites: $t is not built (make check; configure --enable-images)"; done_testing; }
    done
}
# mig_images [SETTINGS]: the end of a mig_before_start that imports images:
# pools "local" at $POOL_DIR (local_pools), the images module next to migrate
# with them as the storage class of VirtualDisks (SETTINGS: more of its
# settings), and fixture "fixture" (lib.sh) serving $T/www, which the test
# filled first; the EXIT trap stops it.  After mig_setup: wait_images_running.
mig_images() {
    local_pools "$POOL_DIR" || return 1
    ln -s "$IMAGES_MODULE" "$T/modules/images.so"
    MIG_MODULES=$(images_module_config 1Gi "${1:-}
    virtualDisks = { storageClasses = [ \"local:local\" ]; defaultStorageClassName = \"local\"; };
    upload = { listen = \"127.0.0.1:0\"; };")
    MIG_CLEANUP=fixtures_stop
    http_fixture_start fixture "$T/www"
}

# vm NAME GUEST [MEM] [EXTRA_SPEC]: a VM manifest (guest fill or dirty).
vm() {
    cat <<YAML
apiVersion: virtfleet.io/v1alpha2
kind: VirtualMachine
metadata:
  name: $1
spec:
  runPolicy: AlwaysOnUnlessStoppedManually
  cpu: { cores: 1 }
  memory: { size: ${3:-128Mi} }
  kernel: { path: "$T/guest/$2.elf" }
${4:-}
YAML
}
# evict VM [TYPE] [EXTRA_SPEC] [LABELS]: create the seeds' vmop (generateName
# evict-VM-); prints the operation's name.
evict() {
    {
        printf 'apiVersion: virtualization.deckhouse.io/v1alpha2\nkind: VirtualMachineOperation\n'
        printf 'metadata:\n  generateName: evict-%s-\n' "$1"
        [ -z "${4:-}" ] || printf '  labels: %s\n' "$4"
        printf 'spec:\n  virtualMachineName: %s\n  type: %s\n' "$1" "${2:-Evict}"
        [ -z "${3:-}" ] || printf '%s\n' "$3"
    } > "$T/op.yaml"
    vf create -f "$T/op.yaml" 2>&1 | sed -n "s|^[a-z]*/\([^ ]*\) created$|\1|p"
}
phase() { field vm "$1" .status.phase; }
node_of() { field vm "$1" .status.node; }
op_phase() { field vmop "$1" .status.phase; }
op_is() { [ "$(op_phase "$1")" = "$2" ]; }
ended() { case $(op_phase "$1") in Completed|Failed) return 0 ;; esac; return 1; }
# copying OP: the migration of OP has moved data.
copying() { [ "$(op_phase "$1")" = InProgress ] && [ "$(field vmop "$1" .status.migrationState.dataProcessed)" -gt 0 ] 2>/dev/null; }
# runs_only_on VM NODE: Running on NODE in the store and in libvirt, defined nowhere else.
runs_only_on() {
    [ "$(phase "$1") $(node_of "$1")" = "Running $2" ] && [ "$(running_on "$1")" = "$2" ] &&
        [ "$(defined_on "$1")" = "$2" ]
}
running_here() { n=$(node_of "$1") && [ -n "$n" ] && runs_only_on "$1" "$n"; }
# reload SETTINGS: new module settings through SIGHUP; waits for the log line.
reload() {
    MIG_SETTINGS=$1
    n=$(grep -c "settings applied" "$T/daemon.log")
    write_config "migrate = { enabled = true; version = 1; settings = { $1 }; }; ${MIG_MODULES:-}" \
        'virtualization = { virtualMachineCIDRs = [ "10.77.6.0/26" ]; };'
    kill -HUP "$DAEMON_PID"
    wait_for 10 sh -c '[ "$(grep -c "settings applied" "$1")" -gt "$2" ]' _ "$T/daemon.log" "$n"
}
# nodes_of VMS...: the node of each VM, one per line.
nodes_of() { for v in "$@"; do echo "$(node_of "$v")"; done; }
# filled VM MEM_MIB: the guest has touched (nearly) all its RAM: its QEMU's
# resident size is at least MEM_MIB - 8 MiB of guest pages plus 20 MiB of
# QEMU's own (an untouched 128 MiB guest stays near 40 MiB).  The guests
# write their pages right after boot, which a loaded machine may delay.
filled() {
    n=$(node_of "$1") && [ -n "$n" ] || return 1
    pid=$(cat "$CL/$n/run/qemu/$1.pid" 2>/dev/null) && [ -n "$pid" ] || return 1
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
    [ "${rss:-0}" -ge $(( ($2 - 8 + 20) * 1024 )) ]
}
