# Shared by the migrate_*.sh tests (sourced after lib.sh): N real libvirt
# nodes (tests/lib/cluster.sh), the daemon with the migrate module, the test
# guests, and helpers to read VMs and operations through the CLI and the
# nodes through virsh.  Call mig_setup N "MODULE SETTINGS" first.
CLUSTER="$top_srcdir/tests/lib/cluster.sh"

missing=
[ "$(id -u)" = 0 ] || missing=" root (libvirtd's QEMU driver needs it)"
for t in libvirtd virsh tini unshare setsid qemu-system-x86_64 as ld curl; do
    command -v "$t" >/dev/null 2>&1 || missing="$missing $t"
done
if [ -n "$missing" ]; then
    not_ok "prerequisites: missing$missing; run scripts/install-deps.sh as root"
    done_testing
fi

ms() { date +%s%N | awk '{ printf "%.0f", $1 / 1e6 }'; }
T_START=$(ms)
WAIT=${VM_WAIT:-30}
logs() {
    diag "--- daemon.log"; diag "$(grep -v ' debug ' "$T/daemon.log" | tail -n 30)"
    for f in "$CL"/node-*/log/qemu/*.log; do
        [ -f "$f" ] || continue
        diag "--- $f"; diag "$(tail -n 4 "$f")"
    done
}
fail_out() { not_ok "$1"; logs; done_testing; }

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
    sh "$top_srcdir/tests/lib/guest/build.sh" "$T/guest" 2>"$T/guest.err" ||
        { diag "$(cat "$T/guest.err")"; fail_out "the test guests build"; }
    sh "$CLUSTER" up "$1" "$CL" >"$T/nodes" 2>"$T/up.err" ||
        { diag "$(cat "$T/up.err")"; fail_out "cluster.sh brings up $1 nodes"; }
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
node_uri() { awk -v n="$1" '$1 == n { print $2 }' "$T/nodes"; }
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
nodes_ready() {
    [ "$(vf get nodes -o name 2>/dev/null | wc -l)" -eq "$(echo $NODES | wc -w)" ] &&
        ! vf get nodes 2>/dev/null | awk 'NR > 1 && $2 != "Ready" { bad = 1 } END { exit !bad }'
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
quiet() { "$@" >/dev/null 2>&1; }
field() { vf get "$1" "$2" -o "jsonpath={$3}" 2>/dev/null; }
phase() { field vm "$1" .status.phase; }
node_of() { field vm "$1" .status.node; }
op_phase() { field vmop "$1" .status.phase; }
op_is() { [ "$(op_phase "$1")" = "$2" ]; }
running_on() {
    for n in $NODES; do
        virsh -q -c "$(node_uri "$n")" list --name 2>/dev/null | grep -qx "$1" && echo "$n"
    done
    true
}
defined_on() {
    for n in $NODES; do
        virsh -q -c "$(node_uri "$n")" list --all --name 2>/dev/null | grep -qx "$1" && echo "$n"
    done
    true
}
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
