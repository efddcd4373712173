#!/bin/sh
# Limits and maintenance on six real libvirt nodes.
#  - Six VMs on node-1..3 (two each) are all evicted at once with
#    parallelOutbound/InboundMigrationsPerNode 1 and parallelMigrationsPerCluster 2:
#    the operations' recorded start/end times (ms) show at most one migration
#    out of and into each node, and two in the cluster, at any moment.
#  - `virtfleet drain` (the seeds' form) empties a node and leaves it cordoned;
#    uncordon makes it schedulable again.
#  - A drain of a node with a VM pinned there reports that VM and why.
#  - Ctrl+C stops a drain and leaves the node cordoned; uncordon cancels the
#    evictions that have not started.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/migrate_common.sh"

mig_setup 6 'parallelMigrationsPerCluster = 2; bandwidthPerMigration = "64Mi";'
for n in node-4 node-5 node-6; do vf cordon "$n" >/dev/null; done
VMS="c1 c2 c3 c4 c5 c6"
for v in $VMS; do vm "$v" fill > "$T/$v.yaml"; vf create -f "$T/$v.yaml" >/dev/null; done
all_running() { for v in $VMS; do running_here "$v" || return 1; done; }
wait_for 60 all_running || fail_out "six VMs run"
per_node=$(nodes_of $VMS | sort | uniq -c | awk '{ print $2 "=" $1 }' | tr '\n' ' ')
check "six VMs run, two on each of node-1..3 ($per_node)" [ "$per_node" = "node-1=2 node-2=2 node-3=2 " ]
all_filled() { for v in $VMS; do filled "$v" 128 || return 1; done; }
wait_for 60 all_filled || fail_out "the six guests fill their memory"
for n in node-4 node-5 node-6; do vf uncordon "$n" >/dev/null; done

# ---- concurrency ------------------------------------------------------------------
OPS=
for v in $VMS; do OPS="$OPS $(evict "$v")"; done
all_done() { for o in $OPS; do op_is "$o" Completed || return 1; done; }
t0=$(ms)
wait_for 120 all_done
diag "six evictions: $(( $(ms) - t0 )) ms"
check "all six evictions are Completed" all_done
check "every VM runs where its status says" all_running
# Intervals "start_ms end_ms source target" from the operations' status.
for o in $OPS; do
    s=$(field vmop "$o" .status.migrationState.startTimestamp)
    e=$(field vmop "$o" .status.migrationState.endTimestamp)
    echo "$(date -d "$s" +%s%3N) $(date -d "$e" +%s%3N) $(field vmop "$o" '.status.migrationState.sourceNode} {.status.migrationState.targetNode')"
done > "$T/intervals"
diag "$(cat "$T/intervals")"
# max_overlap: the most intervals open at once, in all / per source / per target.
max_overlap() {
    awk '{ print $1, 1, $3, $4; print $2, -1, $3, $4 }' "$T/intervals" | sort -n -k1,1 -k2,2 |
        awk '{ all += $2; out[$3] += $2; in_[$4] += $2
               if (all > ma) ma = all
               if (out[$3] > mo) mo = out[$3]
               if (in_[$4] > mi) mi = in_[$4] }
             END { print ma + 0, mo + 0, mi + 0 }'
}
set -- $(max_overlap)
diag "most at once: $1 in the cluster, $2 out of one node, $3 into one node"
check "never more than 2 migrations in the cluster at once" [ "$1" -le 2 ]
check "never more than 1 out of a node at once" [ "$2" -le 1 ]
check "never more than 1 into a node at once" [ "$3" -le 1 ]
check "the limits were used: 2 ran at once at some point" [ "$1" -eq 2 ]
check "each VM left its node: no eviction stayed put" \
    sh -c 'awk "\$3 == \$4 { bad = 1 } END { exit bad }" "$1"' _ "$T/intervals"

# ---- drain, the seeds' way ------------------------------------------------------
DN=$(nodes_of $VMS | sort | uniq -c | sort -rn | awk 'NR == 1 { print $2 }')
on_dn=$(for v in $VMS; do [ "$(node_of "$v")" = "$DN" ] && echo "$v"; done | tr '\n' ' ')
t0=$(ms)
vf drain "$DN" --pod-selector vm.kubevirt.internal.virtualization.deckhouse.io/name \
    --delete-emptydir-data --ignore-daemonsets > "$T/drain.out" 2>&1
rc=$?
diag "$(cat "$T/drain.out")"
diag "drain of $DN ($on_dn): $(( $(ms) - t0 )) ms"
check "virtfleet drain $DN (the seeds' options) exits 0" [ "$rc" -eq 0 ]
check "it says the node is drained" grep -qx "node/$DN drained" "$T/drain.out"
empty() { for v in $VMS; do [ "$(node_of "$v")" != "$1" ] || return 1; done; [ -z "$(running_on_any "$1")" ]; }
running_on_any() { virsh -q -c "$(node_uri "$1")" list --name 2>/dev/null | grep .; }
check "no VM is left on $DN (store and libvirt)" empty "$DN"
check "the VMs that were there run elsewhere" all_running
check "$DN is cordoned" [ "$(field node "$DN" .spec.unschedulable)" = true ]
check "uncordon $DN" quiet vf uncordon "$DN"
check "$DN is schedulable again" [ "$(field node "$DN" .spec.unschedulable)" != true ]

# ---- a VM that cannot move ----------------------------------------------------
vm pinned fill 128Mi "  nodeSelector: { host: $DN }" > "$T/pinned.yaml"
vf create -f "$T/pinned.yaml" >/dev/null
wait_for "$WAIT" runs_only_on pinned "$DN"
MOV=$(for v in $VMS; do [ "$(node_of "$v")" != "$DN" ] && echo "$v"; done | head -1)
quiet evict "$MOV" Migrate "  migrate: { nodeName: $DN }"
wait_for "$WAIT" runs_only_on "$MOV" "$DN"
check "pinned (nodeSelector host=$DN) and $MOV run on $DN" runs_only_on pinned "$DN"
vf drain "$DN" --timeout 2m > "$T/drain2.out" 2> "$T/drain2.err"
rc=$?
diag "$(cat "$T/drain2.out" "$T/drain2.err")"
check "drain exits 1 when a VM cannot be moved" [ "$rc" -eq 1 ]
check "it lists vm/pinned with the reason (its nodeSelector)" \
    sh -c 'grep "vm/pinned:" "$1" | grep -q "host=$2"' _ "$T/drain2.err" "$DN"
check "the movable VM $MOV was moved all the same" [ "$(node_of "$MOV")" != "$DN" ]
check "pinned still runs on $DN" runs_only_on pinned "$DN"
quiet vf uncordon "$DN"
vf delete vm pinned >/dev/null

# ---- Ctrl+C, then uncordon cancels what has not started ----------------------------
# Two VMs on DN; at 8 MiB/s one eviction runs for ~15 s while the other waits
# for DN's single outbound slot.
TWO=$(for v in $VMS; do [ "$(node_of "$v")" != "$DN" ] && [ "$v" != "$MOV" ] && echo "$v"; done | head -1)
for v in $MOV $TWO; do
    quiet evict "$v" Migrate "  migrate: { nodeName: $DN }"
    wait_for "$WAIT" runs_only_on "$v" "$DN"
done
check "$MOV and $TWO run on $DN" [ "$(node_of "$MOV") $(node_of "$TWO")" = "$DN $DN" ]
reload 'parallelMigrationsPerCluster = 2; bandwidthPerMigration = "8Mi";' ||
    fail_out "SIGHUP applies bandwidthPerMigration 8Mi"
drain_ops_in() {   # drain_ops_in PHASE: the drain's operations in that phase
    for o in $(vf get vmop -l "virtfleet.io/drain-node=$DN" -o name 2>/dev/null | sed 's|.*/||'); do
        [ "$(op_phase "$o")" = "$1" ] && echo "$o"
    done
    true
}
# Not through the vf function: $! must be virtfleet itself, not a subshell.
"$VIRTFLEET" --socket "$SOCK" drain "$DN" > "$T/drain3.out" 2> "$T/drain3.err" &
DRAIN=$!
one_runs_one_waits() { [ -n "$(drain_ops_in InProgress)" ] && [ -n "$(drain_ops_in Pending)" ]; }
wait_for 30 one_runs_one_waits
RUNNING_OP=$(drain_ops_in InProgress); WAITING_OP=$(drain_ops_in Pending)
check "the drain runs one eviction ($RUNNING_OP) and queues the other ($WAITING_OP)" \
    sh -c '[ -n "$1" ] && [ -n "$2" ]' _ "$RUNNING_OP" "$WAITING_OP"
check "the queued one says why it waits (outbound limit)" \
    sh -c 'echo "$1" | grep -q parallelOutboundMigrationsPerNode' _ "$(vf get vmop "$WAITING_OP" -o yaml)"
kill -INT "$DRAIN"; wait "$DRAIN"; rc=$?
diag "$(cat "$T/drain3.out" "$T/drain3.err")"
check "Ctrl+C ends drain with exit 1" [ "$rc" -eq 1 ]
check "and says the node stays cordoned" grep -q "stays cordoned" "$T/drain3.err"
check "$DN is still cordoned" [ "$(field node "$DN" .spec.unschedulable)" = true ]
check "uncordon $DN" quiet vf uncordon "$DN"
gone() { ! vf get vmop "$1" >/dev/null 2>&1; }
wait_for 10 gone "$WAITING_OP"
check "uncordon cancelled the queued eviction $WAITING_OP" gone "$WAITING_OP"
wait_for 60 op_is "$RUNNING_OP" Completed
check "the one already running completes" op_is "$RUNNING_OP" Completed
check "one VM left $DN and one stays there" \
    [ "$(nodes_of $MOV $TWO | grep -cx "$DN")" -eq 1 ]
check "every VM runs where its status says" all_running
check "the daemon stops cleanly" vf_stop
diag "migrate_drain: $(( $(ms) - T_START )) ms in all"
[ "$tap_failed" -eq 0 ] || logs
done_testing
