#!/bin/sh
# A source node whose libvirtd hangs in the middle of a live migration, on two
# real libvirt nodes.  A guest with its 128 MiB of RAM full is evicted under
# an 8 MiB/s cap; once data is moving, the source's libvirtd is stopped
# (SIGSTOP) for longer than the keepalive (about 5 s * 3), then resumed.  The
# daemon stays up and answers throughout, the source goes NotReady and then
# Ready again, the operation ends (Completed, or Failed with a reason), and
# the VM runs on exactly one node, defined on no other.
#
# The regression: libvirt 9.0's RPC client leaves, on a connection two
# threads wait on, callback data in the stack of a thread that gave up
# waiting, and the next waiter crashes the daemon (SIGSEGV in libvirt) once
# the node answers again (see include/virtfleet/node_connection.h).  The
# migration call (virDomainMigrateToURI3, as long as the copy) used to wait
# on the source's shared connection next to the module's job-stats polls and
# the core's heartbeat; it now has a connection of its own, and so has the
# heartbeat (modules/migrate/job.c, core/cluster.c).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/migrate_common.sh"

# The EXIT trap resumes a libvirtd still stopped before the nodes go down.
STOPPED=
resume() { [ -z "$STOPPED" ] || kill -CONT "$STOPPED" 2>/dev/null; STOPPED=; }
MIG_CLEANUP=resume
CLEANUP=resume
# Longer than the keepalive (5 s * 3, a ping's interval more at worst) of
# every connection to the source, the migration's own included.
HANG_S=${MIGRATE_NODE_HANG_S:-30}

mig_setup 2 'bandwidthPerMigration = "8Mi";'
vm linux-vm fill > "$T/vm.yaml"
vf create -f "$T/vm.yaml" >/dev/null
wait_for "$WAIT" running_here linux-vm || fail_out "linux-vm runs"
A=$(node_of linux-vm)
B=$(echo $NODES | tr ' ' '\n' | grep -vx "$A")
wait_for 60 filled linux-vm 128 || fail_out "linux-vm fills its memory"
ok "linux-vm (128 MiB, writes every page) runs on $A, its RAM full"

node_phase_is() { [ "$(field node "$1" .status.phase)" = "$2" ]; }
node_says() { field node "$1" '.status.conditions[0].reason}: {.status.conditions[0].message'; }
# watch_daemon: one look at the daemon while the node hangs; a miss is
# remembered for the checks after the hang.
watch_daemon() {
    daemon_alive || echo "$(ms): the daemon is gone" >> "$T/misses"
    get_nodes || echo "$(ms): get nodes did not answer" >> "$T/misses"
}
: > "$T/misses"

OP=$(evict linux-vm)
[ -n "$OP" ] || fail_out "an Evict operation for linux-vm is created"
wait_for 60 copying "$OP" || fail_out "the migration of $OP moves data"
done_mib=$(( $(field vmop "$OP" .status.migrationState.dataProcessed) / 1048576 ))
ok "$OP migrates linux-vm from $A to $B (${done_mib} MiB copied)"

LIBVIRTD_PID=$(cat "$CL/$A/libvirtd.pid")
kill -STOP "$LIBVIRTD_PID" || fail_out "SIGSTOP to $A's libvirtd (pid $LIBVIRTD_PID)"
STOPPED=$LIBVIRTD_PID
t_stop=$(ms)
ok "$A's libvirtd (pid $LIBVIRTD_PID) is stopped mid-migration"

# For HANG_S seconds, about once a second: the daemon lives and answers.
went_down=
while [ $(( $(ms) - t_stop )) -lt $(( HANG_S * 1000 )) ]; do
    watch_daemon
    [ -n "$went_down" ] || ! node_phase_is "$A" NotReady || went_down=$(( $(ms) - t_stop ))
    sleep 1
done
[ -n "$went_down" ] || ! node_phase_is "$A" NotReady || went_down=$(( $(ms) - t_stop ))
diag "$A: $(node_says "$A")"
check "$A goes NotReady while its libvirtd hangs (after ${went_down:-?} ms)" [ -n "$went_down" ]
check "the daemon lives and answers get nodes throughout the hang" [ ! -s "$T/misses" ]
diag "$(cat "$T/misses")"
resume
t_cont=$(ms)

ready_again() { watch_daemon; node_phase_is "$A" Ready; }
wait_for 60 ready_again
check "$A is Ready again after SIGCONT (in $(( $(ms) - t_cont )) ms)" node_phase_is "$A" Ready

ended_watched() { watch_daemon; ended "$1"; }
wait_for 180 ended_watched "$OP"
phase=$(op_phase "$OP")
msg=$(vf get vmop "$OP" -o yaml | sed -n 's/^ *message: //p' | head -1)
reason=$(field vm linux-vm .status.migrationState.failureReason)
diag "$OP: $phase: $msg"
check "the operation ends Completed, or Failed with a reason" \
    sh -c '[ "$1" = Completed ] || { [ "$1" = Failed ] && [ -n "$2" ]; }' _ "$phase" "$msg"
if [ "$phase" = Failed ]; then
    diag "failureReason: $reason"
    check "the VM's migrationState says why it failed" [ -n "$reason" ]
fi
wait_for 60 running_here linux-vm
where=$(node_of linux-vm)
diag "running on: $(running_on linux-vm | tr '\n' ' ')defined on: $(defined_on linux-vm | tr '\n' ' ')"
check "linux-vm is on $A or $B ($where)" sh -c '[ "$1" = "$2" ] || [ "$1" = "$3" ]' _ "$where" "$A" "$B"
check "it runs on $where only, defined on no other node (store and libvirt)" \
    runs_only_on linux-vm "$where"
[ "$phase" != Completed ] || check "Completed: it runs on $B only" runs_only_on linux-vm "$B"
check "the daemon still runs (pid $DAEMON_PID) and answers get nodes" \
    sh -c 'kill -0 "$1" && "$2" --socket "$3" get nodes >/dev/null' _ "$DAEMON_PID" "$VIRTFLEET" "$SOCK"
check "and never stopped answering" [ ! -s "$T/misses" ]
diag "$(grep -E 'lost|keepalive|Unreachable|linux-vm' "$T/daemon.log" | grep -v ' debug ' | tail -n 12)"
diag "total: $(( $(ms) - T_START )) ms"
done_testing
