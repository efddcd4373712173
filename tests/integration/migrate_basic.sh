#!/bin/sh
# Live migration through the CLI on two real libvirt nodes, as the seeds walk
# through it: a guest whose RAM is really full (fill.elf) goes A -> B with
# the seeds' Evict manifest (generateName: evict-linux-vm-) while `get vm -w`
# shows Running -> Migrating -> Running, then back B -> A with a Migrate
# operation naming the node.  The bandwidth cap is honoured (the time is at
# least data / cap), and deleting the operation mid-flight aborts: the VM
# runs on its source and its status records abortRequested/abortStatus.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/migrate_common.sh"

mig_setup 2 ""
vm linux-vm fill > "$T/vm.yaml"
vf create -f "$T/vm.yaml" >/dev/null
wait_for "$WAIT" running_here linux-vm || fail_out "linux-vm runs"
A=$(node_of linux-vm)
B=$(echo $NODES | tr ' ' '\n' | grep -vx "$A")
wait_for 60 filled linux-vm 128 || fail_out "linux-vm fills its memory"
ok "linux-vm (128 MiB, writes every page) runs on $A, its RAM full"

# ---- the seeds' walkthrough: Evict, get vm -w -----------------------------------
vf get vm -w > "$T/watch.out" 2>&1 &
WATCH=$!
sleep 0.5
t0=$(ms)
OP=$(vf create -f "$top_srcdir/data/examples/migrate/evict-linux-vm.yaml" 2>&1 |
    sed -n "s|^[a-z]*/\([^ ]*\) created$|\1|p")
check "create -f the seeds' Evict manifest (data/examples/migrate) makes $OP" sh -c 'case $1 in evict-linux-vm-?*) ;; *) exit 1 ;; esac' _ "$OP"
wait_for "$WAIT" op_is "$OP" Completed
diag "Evict: request -> Completed in $(( $(ms) - t0 )) ms"
check "the operation is Completed" op_is "$OP" Completed
wait_for 10 runs_only_on linux-vm "$B"
check "linux-vm runs on $B only (store and libvirt)" runs_only_on linux-vm "$B"
sleep 0.5; kill "$WATCH" 2>/dev/null; wait "$WATCH" 2>/dev/null
diag "$(cat "$T/watch.out")"
# The rows of linux-vm, consecutive duplicates folded: PHASE NODE.
seq=$(awk '$1 == "linux-vm" { r = $2 " " $3; if (r != last) print r; last = r }' "$T/watch.out" | tr '\n' ',')
diag "phases seen: $seq"
check "get vm -w shows Running $A -> Migrating $A -> Running $B" \
    sh -c 'echo "$1" | grep -q "Running $2,Migrating $2,\(.*,\)\{0,1\}Running $3,"' _ "$seq" "$A" "$B"
check "the address stays" sh -c 'awk "\$1 == \"linux-vm\" { print \$4 }" "$1" | sort -u | wc -l | grep -qx 1' _ "$T/watch.out"
ms_of() { field vm linux-vm ".status.migrationState.$1"; }
check "status.migrationState: source $A, target $B, completed, not failed" \
    [ "$(ms_of sourceNode) $(ms_of targetNode) $(ms_of completed) $(ms_of failed)" = "$A $B true false" ]
check "method LiveMigration, mode PreCopy, progress 100" \
    [ "$(ms_of method) $(ms_of mode) $(ms_of progress)" = "LiveMigration PreCopy 100" ]
check "start and end timestamps" sh -c '[ -n "$1" ] && [ -n "$2" ]' _ "$(ms_of startTimestamp)" "$(ms_of endTimestamp)"
check "the operation's summary names both nodes and 100%" \
    [ "$(field vmop "$OP" '.status.migrationState.sourceNode} {.status.migrationState.targetNode} {.status.progress')" = "$A $B 100%" ]

# ---- back with Migrate to a named node --------------------------------------------
OP2=$(evict linux-vm Migrate "  migrate: { nodeName: $A }")
wait_for "$WAIT" op_is "$OP2" Completed
check "a Migrate operation with nodeName $A brings it back" runs_only_on linux-vm "$A"
OP3=$(evict linux-vm Migrate "  migrate: { nodeName: $A }")
wait_for 10 op_is "$OP3" Failed
check "Migrate to the node it is on fails and says so" \
    sh -c '[ "$2" = Failed ] && echo "$3" | grep -q "already runs on"' _ "$OP3" "$(op_phase "$OP3")" "$(vf get vmop "$OP3" -o yaml)"
vf cordon "$B" >/dev/null
OP4=$(evict linux-vm)
wait_for 30 op_is "$OP4" Failed
msg=$(vf get vmop "$OP4" -o yaml | grep "message:" | head -1)
diag "$msg"
check "with the other node cordoned, Evict fails with placement's reason (cordoned)" \
    sh -c 'echo "$1" | grep -q cordoned' _ "$msg"
check "and the VM keeps running on $A" runs_only_on linux-vm "$A"
vf uncordon "$B" >/dev/null

# ---- bandwidth ------------------------------------------------------------------
reload "bandwidthPerMigration = \"16Mi\";" || fail_out "SIGHUP applies bandwidthPerMigration 16Mi"
t0=$(ms)
OP5=$(evict linux-vm)
wait_for 60 op_is "$OP5" Completed
t=$(( $(ms) - t0 ))
data=$(field vmop "$OP5" .status.migrationState.dataProcessed)
diag "16 MiB/s: $(( ${data:-0} / 1048576 )) MiB copied (last poll) in $t ms"
check "at 16 MiB/s the migration completes" op_is "$OP5" Completed
check "the guest's RAM was full: at least 64 MiB copied" [ "${data:-0}" -ge 67108864 ]
check "and it took at least data / cap ($(( ${data:-0} * 1000 / 16777216 )) ms)" \
    [ "$t" -ge "$(( ${data:-0} * 1000 / 16777216 ))" ]
check "the VM's migrationState records the 16 MiB/s limit" \
    [ "$(field vm linux-vm .status.migrationState.migrationConfig.bandwidthPerMigration)" = 16777216 ]

# ---- abort by deleting the operation ------------------------------------------------
# At 8 MiB/s the copy takes ~15 s: time enough to see it under way and delete it.
reload "bandwidthPerMigration = \"8Mi\";" || fail_out "SIGHUP applies bandwidthPerMigration 8Mi"
SRC=$(node_of linux-vm)
OP6=$(evict linux-vm)
copying() { [ "$(op_phase "$1")" = InProgress ] && [ "$(field vmop "$1" .status.migrationState.dataProcessed)" -gt 0 ] 2>/dev/null; }
wait_for 20 copying "$OP6"
check "a migration at 8 MiB/s is InProgress and copying" copying "$OP6"
check "delete the operation mid-flight" quiet vf delete vmop "$OP6"
gone() { ! vf get vmop "$1" >/dev/null 2>&1; }
wait_for 20 gone "$OP6"
check "the operation goes once the migration is aborted" gone "$OP6"
wait_for 10 runs_only_on linux-vm "$SRC"
check "linux-vm runs on its source $SRC only" runs_only_on linux-vm "$SRC"
check "status.migrationState: abortRequested true, abortStatus Succeeded, failed true" \
    [ "$(ms_of abortRequested) $(ms_of abortStatus) $(ms_of failed)" = "true Succeeded true" ]
diag "failureReason: $(ms_of failureReason)"
check "the daemon stops cleanly" vf_stop
diag "migrate_basic: $(( $(ms) - T_START )) ms in all"
[ "$tap_failed" -eq 0 ] || logs
done_testing
