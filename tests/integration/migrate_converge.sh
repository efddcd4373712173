#!/bin/sh
# Migrations that do not simply finish, on two real libvirt nodes.
# (A loaded machine may starve the copy itself: an abort for no progress is
# the right outcome then too, so the iteration count is only reported.)
#  - A guest that rewrites its memory forever (dirty.elf) under a small cap
#    makes no progress: after progressTimeout the migration is aborted and the
#    VM runs on its source only, the operation Failed saying why.
#  - With allowAutoConverge and a small completion budget, QEMU throttles the
#    same guest (autoConvergeThrottle in its status) until it converges or
#    twice the budget is spent (then aborted); it runs on one node.
#  - With allowPostCopy and a small completion budget, the same guest is
#    switched to post-copy and arrives (mode PostCopy in its status).
#  - kill -9 of the daemon in the middle of a migration: after a restart the
#    module looks at both nodes and settles it; the VM runs on exactly one
#    node, where the store says, and the operation ends Completed or Failed.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/migrate_common.sh"

mig_setup 2 'bandwidthPerMigration = "8Mi"; progressTimeout = "5s";'
vm busy dirty 64Mi > "$T/busy.yaml"
vf create -f "$T/busy.yaml" >/dev/null
wait_for "$WAIT" running_here busy || fail_out "the dirtying guest runs"
SRC=$(node_of busy)
ok "busy (64 MiB, rewrites its memory forever) runs on $SRC"
wait_for 60 filled busy 64 || fail_out "busy dirties its memory"

# ---- no progress: aborted ----------------------------------------------------------
t0=$(ms)
OP=$(evict busy)
ended() { case $(op_phase "$1") in Completed|Failed) return 0 ;; esac; return 1; }
wait_for 90 ended "$OP"
diag "non-converging at 8 MiB/s: ended in $(( $(ms) - t0 )) ms"
msg=$(vf get vmop "$OP" -o yaml | sed -n 's/^ *message: //p' | head -1)
diag "$msg"
check "the operation Failed" op_is "$OP" Failed
check "its message says no progress for 5 s (progressTimeout)" \
    sh -c 'echo "$1" | grep -q "no progress for 5 s (progressTimeout)"' _ "$msg"
wait_for 10 runs_only_on busy "$SRC"
check "busy runs on its source $SRC only" runs_only_on busy "$SRC"
ms_of() { field vm busy ".status.migrationState.$1"; }
check "migrationState: failed, abortRequested, abortStatus Succeeded, an iteration seen" \
    sh -c '[ "$1 $2 $3" = "true true Succeeded" ] && [ "${4:-0}" -ge 1 ]' _ \
    "$(ms_of failed)" "$(ms_of abortRequested)" "$(ms_of abortStatus)" "$(ms_of iteration)"
diag "dirty rate seen: $(( ${dr:=$(ms_of memoryDirtyRate)}0 / 10485760 )) MiB/s, iteration $(ms_of iteration)"

# ---- past the budget with auto-converge allowed -------------------------------------
# 64 MiB x 160 s/GiB = a 10 s budget; auto-converge gets as long again while
# QEMU throttles the guest's CPU, then the migration is aborted.  Either end
# is right (a throttled guest may converge); what must hold: the status
# says auto-converge was on and how far QEMU throttled, and the VM runs on
# exactly one node.
reload 'bandwidthPerMigration = "16Mi"; progressTimeout = "60s"; completionTimeoutPerGiB = 160; allowAutoConverge = true;' ||
    fail_out "SIGHUP applies allowAutoConverge"
t0=$(ms)
OP=$(evict busy)
wait_for 90 ended "$OP"
msg=$(vf get vmop "$OP" -o yaml | sed -n 's/^ *message: //p' | head -1)
diag "auto-converge: $(op_phase "$OP") in $(( $(ms) - t0 )) ms: $msg"
check "with allowAutoConverge the migration ends (Completed, or aborted past twice the budget)" \
    ended "$OP"
if op_is "$OP" Failed; then
    check "... aborted for the completion budget, saying auto-converge was tried" \
        sh -c 'echo "$1" | grep -q "completionTimeoutPerGiB.*even with auto-converge"' _ "$msg"
fi
check "status.migrationState: autoConverge true (vm and vmop), allowAutoConverge in its config" \
    [ "$(ms_of autoConverge) $(field vmop "$OP" .status.migrationState.autoConverge) $(ms_of migrationConfig.allowAutoConverge)" = "true true true" ]
thr=$(ms_of autoConvergeThrottle)
check "QEMU throttled the guest: autoConvergeThrottle ${thr:-unset}%" [ "${thr:-0}" -gt 0 ]
settled_busy() { n=$(node_of busy) && [ "$(phase busy)" = Running ] && runs_only_on busy "$n"; }
wait_for 20 settled_busy
check "busy runs on exactly one node ($(node_of busy)), the one the store names" settled_busy
SRC=$(node_of busy)

# ---- past the budget with post-copy allowed ----------------------------------------
# 64 MiB x 48 s/GiB = a 3 s budget.
reload 'bandwidthPerMigration = "8Mi"; progressTimeout = "60s"; completionTimeoutPerGiB = 48; allowPostCopy = true;' ||
    fail_out "SIGHUP applies allowPostCopy"
t0=$(ms)
OP=$(evict busy)
wait_for 90 ended "$OP"
diag "post-copy: ended in $(( $(ms) - t0 )) ms: $(vf get vmop "$OP" -o yaml | sed -n 's/^ *message: //p' | head -1)"
if op_is "$OP" Completed; then
    DST=$(node_of busy)
    check "with allowPostCopy the migration completes" [ "$DST" != "$SRC" ]
    check "in mode PostCopy" [ "$(ms_of mode)" = PostCopy ]
    check "busy runs on $DST only" runs_only_on busy "$DST"
    check "the guest resumed on the target in post-copy was not taken for a second copy" \
        sh -c '! grep -q "although the VM is on" "$1"' _ "$T/daemon.log"
    SRC=$DST
else
    # The nodes cannot do post-copy (e.g. no userfaultfd): say so, and the
    # VM must still be safe on its source.
    diag "post-copy is not available on these nodes: $(ms_of failureReason)"
    check "post-copy unavailable: the VM stays on its source $SRC" runs_only_on busy "$SRC"
fi
vf delete vm busy >/dev/null

# ---- kill -9 mid-migration -----------------------------------------------------------
reload 'bandwidthPerMigration = "16Mi";' || fail_out "SIGHUP applies bandwidthPerMigration 16Mi"
vm big fill > "$T/big.yaml"
vf create -f "$T/big.yaml" >/dev/null
wait_for "$WAIT" running_here big || fail_out "the fill guest runs"
wait_for 60 filled big 128 || fail_out "big fills its memory"
A=$(node_of big)
OP=$(evict big)
copying() { [ "$(op_phase "$1")" = InProgress ] && [ "$(field vmop "$1" .status.migrationState.dataProcessed)" -gt 0 ] 2>/dev/null; }
wait_for 20 copying "$OP"
check "a migration at 16 MiB/s is copying" copying "$OP"
kill -KILL "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null; DAEMON_PID=
t0=$(ms)
phase_at_kill=$(curl -s --unix-socket "$SOCK" http://localhost/healthz >/dev/null 2>&1 && echo up || echo down)
ok "kill -9 the daemon mid-migration (daemon now $phase_at_kill)"
sleep 1
vf_start || fail_out "the daemon starts again"
wait_for 60 ended "$OP"
diag "settled $(( $(ms) - t0 )) ms after the kill: $(op_phase "$OP"): $(vf get vmop "$OP" -o yaml | sed -n 's/^ *message: //p' | head -1)"
check "the operation ends (Completed or Failed)" ended "$OP"
settled() { n=$(node_of big) && [ "$(phase big)" = Running ] && runs_only_on big "$n"; }
wait_for 20 settled
check "big is Running on exactly one node, the one the store names ($(node_of big))" settled
if op_is "$OP" Completed; then
    check "Completed: it moved" [ "$(node_of big)" != "$A" ]
else
    check "Failed: it stayed on $A" [ "$(node_of big)" = "$A" ]
fi
check "the daemon stops cleanly" vf_stop
diag "migrate_converge: $(( $(ms) - T_START )) ms in all"
[ "$tap_failed" -eq 0 ] || logs
done_testing
