#!/bin/sh
# VMs on three real libvirt nodes (tests/lib/cluster.sh), driven only through
# the CLI: a disk-less guest reaches Running with an address from the CIDR;
# placement follows nodeSelector, a class's nodeSelector and anti-affinity,
# and explains a refusal; runPolicy answers a QEMU killed behind libvirt's
# back; Stop/Start operations; restarts of the daemon (SIGTERM and SIGKILL)
# start nothing twice; a deleted VM's domain and address are let go.
# Needs root and the packages of scripts/install-deps.sh; never skipped: a
# missing piece is a failure that says what to install.
. "$(dirname "$0")/lib.sh"

need_nodes
need_tools curl
prerequisites_met
ok "prerequisites are installed"

cluster_setup
NODES="node-1 node-2 node-3"
# A timeout generous enough for TCG on a loaded machine; polls end sooner.
WAIT=${VM_WAIT:-20}
T_START=$(ms)

guests_build
ok "the test guests build"

cluster_up 3
ok "cluster.sh brings up 3 nodes (domain type $(cat "$CL/domain-type"))"
U1=$(node_uri node-1)
U2=$(node_uri node-2)
U3=$(node_uri node-3)

NODES_CONFIG="nodes = (
  { name = \"node-1\"; uri = \"$U1\"; labels = { group = \"green\"; }; },
  { name = \"node-2\"; uri = \"$U2\"; labels = { group = \"green\"; }; },
  { name = \"node-3\"; uri = \"$U3\"; labels = { group = \"blue\"; }; } );"
export NODES_CONFIG
# 10.77.5.1 .. 10.77.5.14 can be issued.
write_config "" 'virtualization = { virtualMachineCIDRs = [ "10.77.5.0/28" ]; };'
vf_start || fail_out "the daemon starts with the three real nodes"
ok "the daemon starts with the three real nodes"
wait_for 15 nodes_ready || fail_out "all three nodes are Ready"
ok "all three nodes are Ready"

# ---- helpers ---------------------------------------------------------------

# vm NAME [RUN_POLICY] [EXTRA_SPEC_YAML] [LABELS_YAML]: a VM manifest on stdout.
vm() {
    cat <<YAML
apiVersion: virtfleet.io/v1alpha2
kind: VirtualMachine
metadata:
  name: $1
${4:+  labels: $4
}spec:
  runPolicy: ${2:-AlwaysOnUnlessStoppedManually}
  cpu: { cores: 1 }
  memory: { size: 128Mi }
  kernel: { path: "$KERNEL" }
${3:-}
YAML
}
# op NAME VM TYPE [FORCE]: a VirtualMachineOperation manifest.
op() {
    printf 'apiVersion: virtfleet.io/v1alpha2\nkind: VirtualMachineOperation\nmetadata:\n  name: %s\n' "$1"
    printf 'spec:\n  virtualMachineName: %s\n  type: %s\n  force: %s\n' "$2" "$3" "${4:-false}"
}
# Unlike lib.sh's quiet: what the command says on stderr stays in the log.
quiet() { "$@" >/dev/null; }
phase() { field vm "$1" .status.phase; }
node_of() { field vm "$1" .status.node; }
# The message of the VM's Running condition.
running_message() {
    vf get vm "$1" -o yaml 2>/dev/null | awk '
        /^  - type: / { in_run = ($3 == "Running") }
        in_run && /^    message: / { sub(/^    message: /, ""); print }'
}
# runs_only_on NAME NODE: its domain is running on NODE and defined nowhere else.
runs_only_on() { [ "$(running_on "$1")" = "$2" ] && [ "$(defined_on "$1")" = "$2" ]; }
# domid NAME NODE: the id of the running domain (libvirt numbers each start
# on a node anew: the same id means the same run).
domid() {
    id=$(virsh -q -c "$(node_uri "$2")" domid "$1" 2>/dev/null) || return 1
    case $id in ''|*[!0-9]*) return 1 ;; esac
    echo "$id"
}
# run_of NAME: "NODE ID" of the VM's run, when it is Running where its
# domain runs (and nowhere else).  The VM's resourceVersion is the same before
# and after libvirt is asked: a stale phase Running (a kill the daemon has not
# seen yet) next to a domain already started again is no answer.
run_of() {
    s1=$(field vm "$1" '.metadata.resourceVersion} {.status.phase} {.status.node') || return 1
    # shellcheck disable=SC2086
    set -- "$1" $s1
    [ "${3:-}" = Running ] && [ -n "${4:-}" ] && runs_only_on "$1" "$4" || return 1
    id=$(domid "$1" "$4") || return 1
    [ "$(field vm "$1" '.metadata.resourceVersion} {.status.phase} {.status.node')" = "$s1" ] ||
        return 1
    echo "$4 $id"
}
running_here() { run_of "$1" >/dev/null; }
# restarted NAME "NODE ID": it runs again, in a run other than that one.
restarted() { r=$(run_of "$1") && [ "$r" != "$2" ]; }
# kill_qemu NAME: SIGKILL the QEMU of the VM's domain, found by the pid file
# its node's libvirtd keeps in its private /run/libvirt.
kill_qemu() {
    n=$(running_on "$1")
    pid=$(cat "$CL/$n/run/qemu/$1.pid" 2>/dev/null)
    [ -n "$pid" ] && grep -q '^qemu-system' "/proc/$pid/comm" 2>/dev/null && kill -KILL "$pid"
}
# stays SECONDS COMMAND...: the command keeps succeeding for that long.
stays() {
    limit=$1; shift
    end=$(( $(date +%s) + limit ))
    while [ "$(date +%s)" -le "$end" ]; do
        "$@" >/dev/null 2>&1 || return 1
        sleep 0.2
    done
}
op_done() { [ "$(field vmop "$1" .status.phase)" = Completed ]; }
# snapshot NAMES...: "name node domid" of each running domain, from libvirt.
snapshot() {
    for v in "$@"; do
        for n in $(running_on "$v"); do echo "$v $n $(domid "$v" "$n")"; done
    done
}

# ---- a VM reaches Running ----------------------------------------------------

vm vm-a AlwaysOn > "$T/vm-a.yaml"
check "apply creates vm-a (runPolicy AlwaysOn, fill guest)" quiet vf apply -f "$T/vm-a.yaml"
wait_for "$WAIT" running_here vm-a || logs
out=$(vf get vm vm-a 2>&1)
diag "$out"
check "get vm prints NAME PHASE NODE IPADDRESS AGE" \
    sh -c 'echo "$1" | head -1 | grep -Eq "^NAME +PHASE +NODE +IPADDRESS +AGE$"' _ "$out"
A_NODE=$(node_of vm-a)
A_IP=$(field vm vm-a .status.ipAddress)
check "vm-a is Running on a node ($A_NODE)" \
    sh -c 'echo "$1" | awk -v n="$2" "NR == 2 && \$1 == \"vm-a\" && \$2 == \"Running\" && \$3 == n { ok = 1 } END { exit !ok }"' \
    _ "$out" "$A_NODE"
check "its address $A_IP is from the CIDR" \
    sh -c 'case $1 in 10.77.5.[1-9]|10.77.5.1[0-4]) ;; *) exit 1 ;; esac; echo "$2" | grep -q " $1 "' _ "$A_IP" "$out"
check "virsh domstate on $A_NODE agrees: running" \
    sh -c '[ "$(virsh -c "$1" domstate vm-a)" = running ]' _ "$(node_uri "$A_NODE")"
check "no other node has the domain" runs_only_on vm-a "$A_NODE"

# ---- placement ---------------------------------------------------------------

vm vm-blue AlwaysOn '  nodeSelector: { group: blue }' > "$T/vm-blue.yaml"
vf apply -f "$T/vm-blue.yaml" >/dev/null
wait_for "$WAIT" running_here vm-blue
check "a VM with nodeSelector group=blue runs on node-3" runs_only_on vm-blue node-3

cat > "$T/green.yaml" <<YAML
apiVersion: virtfleet.io/v1alpha2
kind: VirtualMachineClass
metadata:
  name: green
spec:
  cpu: { type: Model, model: Nehalem }
  nodeSelector:
    matchLabels: { group: green }
YAML
check "a class with nodeSelector group=green is created" quiet vf apply -f "$T/green.yaml"
anti='  virtualMachineClassName: green
  affinity:
    virtualMachineAndPodAntiAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        - labelSelector: { matchLabels: { app: solo } }
          topologyKey: kubernetes.io/hostname'
for v in solo-1 solo-2; do
    vm "$v" AlwaysOn "$anti" '{ app: solo }' > "$T/$v.yaml"
    vf apply -f "$T/$v.yaml" >/dev/null
    wait_for "$WAIT" running_here "$v"
done
s1=$(node_of solo-1); s2=$(node_of solo-2)
diag "solo-1 on $s1, solo-2 on $s2"
check "the class keeps its VMs on node-1/node-2" sh -c \
    'case "$1 $2" in "node-1 node-2"|"node-2 node-1") ;; *) exit 1 ;; esac' _ "$s1" "$s2"
check "anti-affinity puts solo-1 and solo-2 on different nodes" \
    sh -c '[ -n "$1" ] && [ "$1" != "$2" ]' _ "$s1" "$s2"
check "both domains run where their VMs say" sh -c '[ "$1" = "$2" ] && [ "$3" = "$4" ]' _ \
    "$(running_on solo-1)" "$s1" "$(running_on solo-2)" "$s2"
vm solo-3 AlwaysOn "$anti" '{ app: solo }' > "$T/solo-3.yaml"
vf apply -f "$T/solo-3.yaml" >/dev/null
unschedulable() { phase_is vm "$1" Pending && running_message "$1" | grep -q "$2"; }
wait_for 10 unschedulable solo-3 anti-affinity
msg=$(running_message solo-3)
diag "solo-3: $msg"
check "a third one stays Pending: its condition names the anti-affinity" \
    unschedulable solo-3 anti-affinity
check "and it runs nowhere" sh -c '[ -z "$1" ]' _ "$(defined_on solo-3)"
vf delete vm solo-3 >/dev/null

vm vm-red AlwaysOn '  nodeSelector: { group: red }' > "$T/vm-red.yaml"
vf apply -f "$T/vm-red.yaml" >/dev/null
wait_for 10 unschedulable vm-red "group=red"
msg=$(running_message vm-red)
diag "vm-red: $msg"
check "an impossible nodeSelector stays Pending and says why (group=red)" \
    unschedulable vm-red "group=red"
check "the explanation counts the nodes it checked" \
    sh -c 'echo "$1" | grep -q "3 nodes"' _ "$msg"
check "and it runs nowhere" sh -c '[ -z "$1" ]' _ "$(defined_on vm-red)"

# ---- runPolicy after a QEMU is killed behind libvirt's back -------------------

run0=$(run_of vm-a)
check "SIGKILL to vm-a's QEMU" kill_qemu vm-a
wait_for "$WAIT" restarted vm-a "$run0"
check "AlwaysOn: vm-a is Running again (a new run: $run0 -> $(run_of vm-a))" restarted vm-a "$run0"
check "its domain exists once" sh -c '[ "$(echo "$1" | wc -w)" -eq 1 ]' _ "$(defined_on vm-a)"
check "it kept its address" [ "$(field vm vm-a .status.ipAddress)" = "$A_IP" ]

vm vm-m Manual > "$T/vm-m.yaml"
vf apply -f "$T/vm-m.yaml" >/dev/null
wait_for 10 phase_is vm vm-m Stopped
check "Manual: vm-m waits Stopped for a Start operation" \
    sh -c '[ "$1" = Stopped ] && [ -z "$2" ]' _ "$(phase vm-m)" "$(defined_on vm-m)"
op start-m vm-m Start > "$T/start-m.yaml"
check "create -f a Start operation" quiet vf create -f "$T/start-m.yaml"
wait_for "$WAIT" running_here vm-m
check "vm-m is Running" running_here vm-m
check "the operation is Completed" wait_for 5 op_done start-m
check "and recorded on the VM (status.lastOperation)" \
    sh -c '[ "$1" = "start-m Completed" ]' _ "$(field vm vm-m '.status.lastOperation.name} {.status.lastOperation.phase')"
check "SIGKILL to vm-m's QEMU" kill_qemu vm-m
wait_for "$WAIT" phase_is vm vm-m Stopped
check "Manual: vm-m is Stopped after the kill" phase_is vm vm-m Stopped
stopped_nowhere() { phase_is vm "$1" Stopped && [ -z "$(running_on "$1")" ]; }
check "and stays Stopped, its domain running nowhere (3 s)" stays 3 stopped_nowhere vm-m
diag "vm-m: $(running_message vm-m)"

vm vm-u "" '  terminationGracePeriodSeconds: 1' > "$T/vm-u.yaml"
vf apply -f "$T/vm-u.yaml" >/dev/null
wait_for "$WAIT" running_here vm-u
check "AlwaysOnUnlessStoppedManually (the default): vm-u is Running" running_here vm-u
run0=$(run_of vm-u)
check "SIGKILL to vm-u's QEMU" kill_qemu vm-u
wait_for "$WAIT" restarted vm-u "$run0"
check "vm-u is restarted after the kill" restarted vm-u "$run0"
op stop-u vm-u Stop > "$T/stop-u.yaml"
check "create -f a Stop operation (the guest ignores ACPI: grace 1 s)" quiet vf create -f "$T/stop-u.yaml"
wait_for "$WAIT" op_done stop-u
check "the Stop operation is Completed" op_done stop-u
check "vm-u is Stopped, its domain gone" stopped_nowhere vm-u
check "and stays Stopped (3 s)" stays 3 stopped_nowhere vm-u

# ---- restarts of the daemon start nothing twice -------------------------------

RUNNING="vm-a vm-blue solo-1 solo-2"
all_running() { for v in $RUNNING; do running_here "$v" || return 1; done; }
check "before the restarts: $RUNNING are Running" all_running
# once_each: each running VM's domain is defined on exactly one node (virsh
# list --all), and the stopped or pending ones on none.
once_each() {
    for v in $RUNNING; do [ "$(defined_on "$v" | wc -l)" -eq 1 ] || return 1; done
    [ -z "$(defined_on vm-m)$(defined_on vm-u)$(defined_on vm-red)" ]
}
# still: vm-m (Manual, stopped by a kill) and vm-u (stopped by an operation)
# stay Stopped, vm-red stays Pending.
still() { [ "$(phase vm-m) $(phase vm-u) $(phase vm-red)" = "Stopped Stopped Pending" ]; }
before=$(snapshot $RUNNING)
diag "$(echo "$before" | sed 's/^/before: /')"
settled() { all_running && [ "$(snapshot $RUNNING)" = "$1" ] && still; }
t0=$(ms)
check "SIGTERM: the daemon stops cleanly" vf_stop
check "without the daemon, the domains run on as they were" \
    sh -c '[ "$1" = "$2" ]' _ "$before" "$(snapshot $RUNNING)"
vf_start
wait_for "$WAIT" settled "$before"
diag "after SIGTERM: settled in $(( $(ms) - t0 )) ms"
check "after SIGTERM + start: every VM Running on the same node, same domain id (not restarted)" \
    sh -c '[ "$1" = "$2" ]' _ "$before" "$(snapshot $RUNNING)"
check "each domain exists exactly once across the nodes" once_each
check "vm-m and vm-u are still Stopped, vm-red still Pending" still

# SIGKILL, no clean shutdown at all, right after a new VM was asked for (so
# its start may be anywhere between placement and running); while the daemon
# is away, vm-a's QEMU dies too.
vm vm-c AlwaysOn > "$T/vm-c.yaml"
vf apply -f "$T/vm-c.yaml" >/dev/null
t0=$(ms)
kill -KILL "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null; DAEMON_PID=
diag "vm-c's domain when the daemon was killed: defined on [$(defined_on vm-c)], running on [$(running_on vm-c)]"
a_run=$(run_of vm-a)
check "SIGKILL to the daemon, then to vm-a's QEMU while the daemon is down" kill_qemu vm-a
vf_start
others=$(echo "$RUNNING" | sed 's/vm-a //')
others_before=$(echo "$before" | grep -v '^vm-a ')
RUNNING="$RUNNING vm-c"
settled_kill() {
    all_running && restarted vm-a "$a_run" && [ "$(snapshot $others)" = "$others_before" ] && still
}
wait_for "$WAIT" settled_kill
diag "after SIGKILL: settled in $(( $(ms) - t0 )) ms"
check "after SIGKILL + start: the others Running on the same node, same domain id" \
    sh -c '[ "$1" = "$2" ]' _ "$others_before" "$(snapshot $others)"
check "vm-a (AlwaysOn), which died meanwhile, was started again" restarted vm-a "$a_run"
check "vm-c, asked for just before the kill, is Running" running_here vm-c
check "each domain exists exactly once across the nodes" once_each
check "vm-m and vm-u are still Stopped, vm-red still Pending" still
diag "$(vf get vm 2>&1)"

op start-u vm-u Start > "$T/start-u.yaml"
vf create -f "$T/start-u.yaml" >/dev/null
wait_for "$WAIT" running_here vm-u
check "after the restarts, a Start operation runs vm-u again" running_here vm-u
check "the Start operation is Completed" wait_for 5 op_done start-u

# ---- delete: the domain and the address go ------------------------------------

B_IP=$(field vm vm-blue .status.ipAddress)
vm vm-x AlwaysOn "  ipAddress: \"$B_IP\"
  nodeSelector: { group: blue }" > "$T/vm-x.yaml"
vf apply -f "$T/vm-x.yaml" >/dev/null
addr_refused() {
    phase_is vm vm-x Pending &&
        vf get vm vm-x -o yaml 2>/dev/null | grep -A3 'type: IPAddressReady' | grep -q 'AddressInUse'
}
wait_for 10 addr_refused
check "a VM asking for vm-blue's address $B_IP waits (IPAddressReady: AddressInUse)" addr_refused
check "delete vm-blue" quiet vf delete vm vm-blue
vm_gone() { gone vm "$1" && [ -z "$(defined_on "$1")" ]; }
wait_for "$WAIT" vm_gone vm-blue
check "vm-blue is gone from the store and its domain from node-3" vm_gone vm-blue
wait_for "$WAIT" running_here vm-x
check "the released address goes to vm-x, which runs on node-3" \
    sh -c '[ "$1 $2" = "$3 node-3" ] && [ "$4" = Running ]' _ \
    "$(field vm vm-x .status.ipAddress)" "$(node_of vm-x)" "$B_IP" "$(phase vm-x)"

# ---- the seeds' Discovery classes on real nodes --------------------------------

# As in the seeds' admin guide ("universal" for all nodes; cpuX/cpuY there are
# not valid names, so the per-group class is "cpu-blue").
cat > "$T/discovery.yaml" <<YAML
apiVersion: virtfleet.io/v1alpha2
kind: VirtualMachineClass
metadata:
  name: universal
spec:
  cpu:
    discovery: {}
    type: Discovery
---
apiVersion: virtfleet.io/v1alpha2
kind: VirtualMachineClass
metadata:
  name: cpu-blue
spec:
  cpu:
    discovery:
      nodeSelector:
        matchExpressions:
          - key: group
            operator: In
            values: ["blue"]
    type: Discovery
YAML
check "apply the seeds' Discovery classes (universal, and one for group=blue)" \
    quiet vf apply -f "$T/discovery.yaml"
class_ready() { [ "$(field vmclass "$1" .status.phase)" = Ready ] && [ -n "$(field vmclass "$1" .status.cpu.model)" ]; }
wait_for "$WAIT" class_ready universal
wait_for "$WAIT" class_ready cpu-blue
U_MODEL=$(field vmclass universal .status.cpu.model)
B_MODEL=$(field vmclass cpu-blue .status.cpu.model)
diag "universal: $(field vmclass universal '.status.conditions[0].message')"
diag "cpu-blue: $(field vmclass cpu-blue '.status.conditions[0].message')"
check "universal is Ready with the baseline CPU of all three nodes ($U_MODEL)" class_ready universal
check "cpu-blue is Ready with the baseline CPU of node-3 ($B_MODEL)" class_ready cpu-blue
check "the baseline is written as libvirt CPU XML" \
    sh -c 'echo "$1" | grep -q "<model"' _ "$(field vmclass universal .status.baselineCpuXml)"
# The nodes are full (one core each, all reserved): make room first.
vf delete vm vm-a vm-c >/dev/null
wait_for "$WAIT" vm_gone vm-a
wait_for "$WAIT" vm_gone vm-c
vm vm-univ AlwaysOn '  virtualMachineClassName: universal' > "$T/vm-univ.yaml"
vf apply -f "$T/vm-univ.yaml" >/dev/null
wait_for "$WAIT" running_here vm-univ
check "a VM of class universal is Running" running_here vm-univ
xml=$(virsh -c "$(node_uri "$(node_of vm-univ)")" dumpxml vm-univ 2>/dev/null)
check "its domain has a custom CPU of the discovered model $U_MODEL" \
    sh -c 'echo "$1" | grep -q "<cpu mode=.custom." && echo "$1" | grep -q "<model[^>]*>$2</model>"' _ "$xml" "$U_MODEL"

check "the daemon stops cleanly" vf_stop
diag "vm_lifecycle: $(( $(ms) - T_START )) ms in all"
[ "$tap_failed" -eq 0 ] || logs
done_testing
