#!/bin/sh
# Block migration on two real libvirt nodes: a VM whose disk lives in a pool
# only its node sees moves with its disk.  Each node has a directory pool
# "local" at /var/lib/libvirt/images, which cluster.sh makes private to the
# node (the same path, different storage: what two machines with local disks
# are).  A VirtualDisk made from a raw image (tests/lib/http_fixture) backs
# the disk-less test guest; an Evict moves the VM: the operation Completes
# with method BlockMigration, the VM runs on the other node only, the volume
# there holds the image's bytes (virsh vol-download + cmp), the disk's
# status.target.node follows the VM, and the stale copy on the source is
# deleted.  Then a VM deleted while it migrates (slowed by a small cap):
# the migration is aborted and nothing of it is left on the target, neither
# the domain nor the volume the migration made there.  Last, the daemon
# killed (SIGKILL) during a block migration that then fails (the target's
# QEMU killed): the record of the volumes it made on the target outlives the
# daemon, and after the restart the VM is settled on its source and those
# volumes are deleted on the target; the disk on the source is untouched.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/migrate_common.sh"
mig_need_images
command -v cmp >/dev/null 2>&1 || { not_ok "prerequisites: cmp (diffutils)"; done_testing; }

# The pools and the image server, once the nodes are up.
mig_before_start() {
    mkdir -p "$T/www"
    # 8 MiB, mostly holes: 1 MiB of random data at 2 MiB and a word at 7 MiB.
    truncate -s 8M "$T/www/disk.raw"
    head -c 1048576 /dev/urandom | dd of="$T/www/disk.raw" bs=1M seek=2 conv=notrunc 2>/dev/null
    printf 'virtfleet' | dd of="$T/www/disk.raw" bs=1 seek=7340032 conv=notrunc 2>/dev/null
    mig_images
}
mig_setup 2 ""
wait_images_running
ok "each node has its own pool \"local\" at $POOL_DIR; the images module runs"
H="http://$(fixture_addr fixture)"

printf 'apiVersion: virtualization.deckhouse.io/v1alpha2\nkind: ClusterVirtualImage\nmetadata:\n  name: img\nspec:\n  dataSource:\n    type: HTTP\n    http:\n      url: %s/files/disk.raw\n' "$H" |
    vf apply -f - >/dev/null
wait_for 60 phase_is cvi img Ready || fail_out "the image is imported (Ready)"
# disk NAME: a VirtualDisk from the image in class local.
disk() {
    printf 'apiVersion: virtualization.deckhouse.io/v1alpha2\nkind: VirtualDisk\nmetadata:\n  name: %s\nspec:\n  persistentVolumeClaim: { storageClassName: local }\n  dataSource:\n    type: ObjectRef\n    objectRef: { kind: ClusterVirtualImage, name: img }\n' "$1" |
        vf apply -f - >/dev/null
}
disk data
wait_for 60 phase_is vd data Ready || fail_out "VirtualDisk data is Ready"
A=$(field vd data .status.target.node)
B=$(echo $NODES | tr ' ' '\n' | grep -vx "$A")
VOL=$(field vd data .status.target.volume)
check "VirtualDisk data is Ready on $A: volume $VOL, path $(field vd data .status.target.path)" \
    sh -c '[ -n "$1" ] && [ "$2" = "$3/$1" ]' _ "$VOL" "$(field vd data .status.target.path)" "$POOL_DIR"
not_on() { ! has_vol "$1" "$2"; }
check "node $B has no such volume" not_on "$B" "$VOL"

vm linux-vm fill 128Mi "  blockDeviceRefs:
    - { kind: VirtualDisk, name: data }" > "$T/vm.yaml"
vf create -f "$T/vm.yaml" >/dev/null
wait_for "$WAIT" runs_only_on linux-vm "$A" || fail_out "linux-vm runs on the disk's node $A"
wait_for 60 filled linux-vm 128 || fail_out "linux-vm fills its memory"
ms_of() { field vm "$1" ".status.migrationState.$2"; }
cond_reason() {
    vf get vm "$1" -o yaml 2>/dev/null | awk -v t="$2" '
        /^  - / || /^  -$/ { c = 0 } $0 ~ "type: " t "$" { c = 1 }
        c && /^ *reason: / { print $2; exit }'
}
check "linux-vm runs on $A with its disk, marked for block migration (Migratable: $(cond_reason linux-vm Migratable))" \
    [ "$(cond_reason linux-vm Migratable)" = NonSharedDisks ]

# ---- Evict: the disk goes with the VM ------------------------------------------------
t0=$(ms)
OP=$(evict linux-vm)
wait_for 90 ended "$OP"
diag "block migration: request -> $(op_phase "$OP") in $(( $(ms) - t0 )) ms"
[ "$(op_phase "$OP")" = Completed ] ||
    diag "$(vf get vmop "$OP" -o yaml | sed -n 's/^ *message: //p' | head -1)"
check "the Evict operation is Completed" op_is "$OP" Completed
check "with method BlockMigration (vm and vmop)" \
    [ "$(ms_of linux-vm method) $(field vmop "$OP" .status.migrationState.method)" = "BlockMigration BlockMigration" ]
wait_for 10 runs_only_on linux-vm "$B"
check "linux-vm runs on $B only (store and libvirt)" runs_only_on linux-vm "$B"
check "the volume $VOL exists on $B" has_vol "$B" "$VOL"
virsh -q -c "$(node_uri "$B")" vol-download --pool local "$VOL" "$T/moved.out" >/dev/null 2>&1
check "and holds the image's bytes (vol-download + cmp)" cmp -s "$T/www/disk.raw" "$T/moved.out"
follows() { [ "$(field vd data .status.target.node)" = "$B" ]; }
wait_for 20 follows
check "the disk's status.target.node follows the VM to $B" follows
stale_gone() { ! has_vol "$A" "$VOL"; }
wait_for 20 stale_gone
check "the stale copy on $A is deleted" stale_gone
check "the disk stays Ready" phase_is vd data Ready
vf delete vm linux-vm >/dev/null 2>&1
wait_for "$WAIT" gone vm linux-vm
vf delete vd data >/dev/null 2>&1
wait_for "$WAIT" gone vd data
wait_for 20 no_vols
check "deleting the VM and the disk leaves no volume on either node" no_vols

# ---- a VM deleted while it migrates ----------------------------------------------
# At 4 MiB/s the ~120 MiB of guest RAM take half a minute: time to delete it.
reload 'bandwidthPerMigration = "4Mi";' || fail_out "SIGHUP applies bandwidthPerMigration 4Mi"
disk data2
wait_for 60 phase_is vd data2 Ready || fail_out "VirtualDisk data2 is Ready"
A=$(field vd data2 .status.target.node)
B=$(echo $NODES | tr ' ' '\n' | grep -vx "$A")
VOL=$(field vd data2 .status.target.volume)
vm doomed fill 128Mi "  blockDeviceRefs:
    - { kind: VirtualDisk, name: data2 }" > "$T/doomed.yaml"
vf create -f "$T/doomed.yaml" >/dev/null
wait_for "$WAIT" runs_only_on doomed "$A" || fail_out "doomed runs on $A"
wait_for 60 filled doomed 128 || fail_out "doomed fills its memory"
OP=$(evict doomed)
wait_for 30 copying "$OP"
check "doomed is migrating to $B at 4 MiB/s" copying "$OP"
check "delete the VM mid-flight" quiet vf delete vm doomed
wait_for 60 gone vm doomed
check "the VM goes" gone vm doomed
check "its domain is on neither node" [ -z "$(defined_on doomed)" ]
no_copy() { ! has_vol "$B" "$VOL"; }
wait_for 20 no_copy
check "no copy of its disk is left on the target $B" no_copy
check "... the daemon logs deleting $POOL_DIR/$VOL there" \
    grep -q "deleted \"$POOL_DIR/$VOL\" on node \"$B\", made there by the failed" "$T/daemon.log"
msg=$(vf get vmop "$OP" -o yaml | sed -n 's/^ *message: //p' | head -1)
check "the operation ended Failed: $msg" op_is "$OP" Failed
check "... saying the VM is being deleted" sh -c 'echo "$1" | grep -q "the VM is being deleted"' _ "$msg"
check "the disk is still Ready on $A with its volume" \
    sh -c '[ "$1 $2" = "Ready $3" ]' _ "$(field vd data2 .status.phase)" "$(field vd data2 .status.target.node)" "$A"
check "its volume $VOL is still on $A" has_vol "$A" "$VOL"

# ---- the daemon killed during a block migration that then fails -------------------
# Still 4 MiB/s: the guest's RAM takes half a minute, time for both kills.
RECORDS="$T/state/modules/migrate/block-migrations"
records() { ls "$RECORDS" 2>/dev/null; }
disk data3
wait_for 60 phase_is vd data3 Ready || fail_out "VirtualDisk data3 is Ready"
A=$(field vd data3 .status.target.node)
B=$(echo $NODES | tr ' ' '\n' | grep -vx "$A")
VOL=$(field vd data3 .status.target.volume)
vm crashy fill 128Mi "  blockDeviceRefs:
    - { kind: VirtualDisk, name: data3 }" > "$T/crashy.yaml"
vf create -f "$T/crashy.yaml" >/dev/null
wait_for "$WAIT" runs_only_on crashy "$A" || fail_out "crashy runs on $A"
wait_for 60 filled crashy 128 || fail_out "crashy fills its memory"
virsh -q -c "$(node_uri "$A")" vol-download --pool local "$VOL" "$T/crashy-before.out" >/dev/null 2>&1
OP=$(evict crashy)
made_there() { copying "$OP" && has_vol "$B" "$VOL"; }
wait_for 30 made_there
check "crashy is block-migrating to $B; libvirt made $VOL there" made_there
check "the volumes made on $B are on record before the daemon dies ($(records | wc -l) record)" \
    sh -c 'grep -qx "path $2/$3" "$1"/*' _ "$RECORDS" "$POOL_DIR" "$VOL"
kill -KILL "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null; DAEMON_PID=
# The target's QEMU for it: the incoming half of the migration.
qpid=$(cat "$CL/$B/run/qemu/crashy.pid" 2>/dev/null)
check "daemon killed (SIGKILL); the target's QEMU (pid ${qpid:-none}) killed too" \
    sh -c '[ -n "$1" ] && kill -KILL "$1"' _ "$qpid"
# libvirt on the source sees the migration fail and keeps the guest running there.
failed_back() { [ "$(running_on crashy)" = "$A" ] && [ "$(defined_on crashy)" = "$A" ]; }
wait_for 60 failed_back
check "the migration failed in libvirt: crashy runs on $A only" failed_back
check "... and libvirt left $VOL on $B (what nobody would delete)" has_vol "$B" "$VOL"
check "the daemon restarts" vf_start
wait_for 60 ended "$OP"
msg=$(vf get vmop "$OP" -o yaml | sed -n 's/^ *message: //p' | head -1)
check "the operation ends Failed: $msg" op_is "$OP" Failed
wait_for 30 runs_only_on crashy "$A"
check "crashy is Running on $A (store and libvirt)" runs_only_on crashy "$A"
no_copy() { ! has_vol "$B" "$VOL"; }
wait_for 30 no_copy
check "the volume the migration made on $B is deleted after the restart" no_copy
check "... which the daemon logs" grep -q "deleted \"$POOL_DIR/$VOL\" on node \"$B\"" "$T/daemon.log"
no_records() { [ -z "$(records)" ]; }
wait_for 10 no_records
check "and its record is gone" no_records
check "the disk is still Ready on $A with its volume" \
    sh -c '[ "$1 $2" = "Ready $3" ]' _ "$(field vd data3 .status.phase)" "$(field vd data3 .status.target.node)" "$A"
virsh -q -c "$(node_uri "$A")" vol-download --pool local "$VOL" "$T/crashy-after.out" >/dev/null 2>&1
check "its volume $VOL on $A is intact (vol-download + cmp, before and after)" \
    sh -c 'cmp -s "$1" "$2" && cmp -s "$1" "$3"' _ "$T/www/disk.raw" "$T/crashy-before.out" "$T/crashy-after.out"
check "the daemon stops cleanly" vf_stop
diag "migrate_disks: $(( $(ms) - T_START )) ms in all"
[ "$tap_failed" -eq 0 ] || logs
done_testing
