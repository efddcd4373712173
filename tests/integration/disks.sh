#!/bin/sh
# VirtualDisks on two real libvirt nodes (tests/lib/cluster.sh), through the
# daemon and the CLI: a directory pool "local" on each node (a storage class
# of local disks) and one "shared" directory pool both nodes see.  A disk made
# from a ClusterVirtualImage (imported from tests/lib/http_fixture) is Ready
# with a volume holding the image's bytes (virsh vol-download + cmp) whose
# holes stayed holes; a disk from a qcow2 image is a qcow2 volume grown to its
# size; a blank disk is a qcow2 volume of its size, grows when its spec does
# (through QEMU while its VM runs) and refuses to shrink; a shared-pool disk is
# seen by both nodes; a disk from a missing image waits and says so; a disk
# whose size is below its image's, or whose storage class does not exist, is
# Failed at once (no retries) and is made from scratch once its spec is
# corrected; a disk created while pool "local" is inactive on both nodes
# (virsh pool-destroy) stays Provisioning with a Retrying condition counting
# the attempts, and once the pools are started again the same disk is Ready
# with the image's bytes; a VM using a local disk runs on the disk's node with
# the disk in its domain, is marked as needing block migration, and a second
# VM naming the same disk waits; an ISO image is a read-only CD-ROM, a disk
# image is refused; a disk named by a VM waits for it before its volume is
# deleted; an image a disk is being copied from stays Terminating until the
# copy ends (libvirtd held with SIGSTOP), and the copy is whole.  Never
# skipped: a missing tool is a failure.
. "$(dirname "$0")/lib.sh"
need_nodes
need_tools qemu-img xorriso curl cmp
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
mkdir -p "$W"
# Generous for TCG on a loaded machine; every wait is a poll that ends sooner.
WAIT=${DISKS_WAIT:-60}


guests_build
cluster_up 2
ok "cluster.sh brings up 2 nodes (domain type $(cat "$CL/domain-type"))"
NODES="node-1 node-2"
U1=$(node_uri node-1)
U2=$(node_uri node-2)

# The pools: "local" is a directory of each node's own, "shared" one
# directory both nodes use (what NFS would be between machines).
mkdir -p "$T/pool-1" "$T/pool-2" "$T/shared"
pools_ok=true
for i in 1 2; do
    u=$(node_uri "node-$i")
    virsh -q -c "$u" pool-define-as local dir --target "$T/pool-$i" >>"$T/pool.log" 2>&1 &&
        virsh -q -c "$u" pool-start local >>"$T/pool.log" 2>&1 &&
        virsh -q -c "$u" pool-define-as shared dir --target "$T/shared" >>"$T/pool.log" 2>&1 &&
        virsh -q -c "$u" pool-start shared >>"$T/pool.log" 2>&1 || pools_ok=false
done
$pools_ok || { diag "$(cat "$T/pool.log")"; fail_out "virsh defines and starts the pools"; }
ok "each node has a directory pool \"local\" and the pool \"shared\""

# The image: 8 MiB, mostly holes, 1 MiB of random data at 2 MiB and a word at 7 MiB.
truncate -s 8M "$W/disk.raw"
head -c 1048576 /dev/urandom | dd of="$W/disk.raw" bs=1M seek=2 conv=notrunc 2>/dev/null
printf 'virtfleet' | dd of="$W/disk.raw" bs=1 seek=7340032 conv=notrunc 2>/dev/null
http_fixture_start fixture "$W" || fail_out "http_fixture starts"
H="http://$(fixture_addr fixture)"

NODES_CONFIG="nodes = (
  { name = \"node-1\"; uri = \"$U1\"; },
  { name = \"node-2\"; uri = \"$U2\"; } );"
export NODES_CONFIG
write_config "$(images_module_config 1Gi "
    virtualDisks = { storageClasses = [ \"local:local\", \"nfs:shared:shared\" ];
                     defaultStorageClassName = \"local\"; };
    upload = { listen = \"127.0.0.1:0\"; };")" 'virtualization = { virtualMachineCIDRs = [ "10.77.6.0/28" ]; };'
vf_start || fail_out "the daemon starts with the images module and two nodes"
wait_for 30 nodes_ready || fail_out "both nodes are Ready"
wait_images_running
ok "the daemon runs the images module with both nodes Ready"

cvi() {
    printf 'apiVersion: virtualization.deckhouse.io/v1alpha2\nkind: ClusterVirtualImage\nmetadata:\n  name: %s\nspec:\n  dataSource:\n    type: HTTP\n    http:\n      url: %s\n' "$1" "$2" |
        vf apply -f -
}
# vd NAME SIZE|- [IMAGE] [CLASS]: a VirtualDisk, shaped like the seeds'.
vd() {
    {
        printf 'apiVersion: virtualization.deckhouse.io/v1alpha2\nkind: VirtualDisk\nmetadata:\n  name: %s\nspec:\n' "$1"
        if [ "$2" != - ] || [ -n "${4:-}" ]; then
            printf '  persistentVolumeClaim:\n'
            [ "$2" = - ] || printf '    size: %s\n' "$2"
            [ -z "${4:-}" ] || printf '    storageClassName: %s\n' "$4"
        fi
        [ -z "${3:-}" ] || printf '  dataSource:\n    type: ObjectRef\n    objectRef:\n      kind: ClusterVirtualImage\n      name: %s\n' "$3"
    } | vf apply -f -
}
vols() { virsh -q -c "$(node_uri "$1")" vol-list "$2" 2>/dev/null | awk '{ print $1 }'; }
has_vol() { vols "$1" "$2" | grep -qx "$3"; }
vol_capacity() {
    virsh -c "$(node_uri "$1")" vol-info --pool "$2" "$3" --bytes 2>/dev/null |
        awk '/^Capacity:/ { print $2 }'
}

cvi img "$H/files/disk.raw" >/dev/null
wait_for "$WAIT" phase_is cvi img Ready || fail_out "the image img is imported (Ready)"
ok "ClusterVirtualImage img (raw, 8 MiB) is Ready"

# ---- a disk from the image ------------------------------------------------------
check "a VirtualDisk from the image is accepted" quiet vd data - img
wait_for "$WAIT" phase_is vd data Ready || logs
check "VirtualDisk data is Ready" phase_is vd data Ready
D_NODE=$(field vd data .status.target.node)
D_VOL=$(field vd data .status.target.volume)
D_PATH=$(field vd data .status.target.path)
diag "data: node $D_NODE, volume $D_VOL, path $D_PATH, capacity $(field vd data .status.capacity)"
check "its status names the class, node, pool and volume" \
    test "$(field vd data .status.storageClassName)" = local -a -n "$D_NODE" \
    -a "$(field vd data .status.target.pool)" = local -a -n "$D_VOL"
check "its capacity is the image's size (8Mi) and progress 100%" \
    test "$(field vd data .status.capacity)" = 8Mi -a "$(field vd data .status.progress)" = 100%
check "virsh vol-list on $D_NODE shows the volume" has_vol "$D_NODE" local "$D_VOL"
OTHER=node-1
[ "$D_NODE" != node-1 ] || OTHER=node-2
not_on_other() { ! vols "$OTHER" local | grep -qx "$D_VOL"; }
check "$OTHER has no such volume" not_on_other
virsh -q -c "$(node_uri "$D_NODE")" vol-download --pool local "$D_VOL" "$T/data.out" >/dev/null 2>&1
check "virsh vol-download gives back the image's bytes (cmp)" cmp -s "$W/disk.raw" "$T/data.out"
alloc=$(stat -c '%b * %B' "$D_PATH" 2>/dev/null | awk '{ print $1 * $3 }')
diag "data volume: $(stat -c %s "$D_PATH" 2>/dev/null) bytes, $alloc allocated"
check "the holes stayed holes (under 4 MiB of the 8 allocated)" test "${alloc:-99999999}" -lt 4194304

# ---- a disk from a qcow2 image, bigger than the image ---------------------------------
qemu-img convert -f raw -O qcow2 "$W/disk.raw" "$W/disk.qcow2"
cvi img-q "$H/files/disk.qcow2" >/dev/null
wait_for "$WAIT" phase_is cvi img-q Ready || fail_out "the qcow2 image img-q is imported (Ready)"
check "a 16Mi VirtualDisk from the qcow2 image is accepted" quiet vd data-q 16Mi img-q
wait_for "$WAIT" phase_is vd data-q Ready || logs
Q_NODE=$(field vd data-q .status.target.node)
Q_PATH=$(field vd data-q .status.target.path)
check "it is Ready as qcow2 with capacity 16Mi" \
    test "$(field vd data-q .status.format)" = qcow2 -a "$(field vd data-q .status.capacity)" = 16Mi
check "virsh vol-info: 16 MiB" \
    test "$(vol_capacity "$Q_NODE" local "$(field vd data-q .status.target.volume)")" = 16777216
check "qemu-img: a qcow2 of 16 MiB whose first 8 MiB are the image's" \
    sh -c 'qemu-img info "$1" | grep -q "^file format: qcow2" &&
           qemu-img info "$1" | grep -q "^virtual size: 16 MiB" &&
           qemu-img compare -q -f qcow2 -F raw "$1" "$2"' _ "$Q_PATH" "$W/disk.raw"
vf delete vd data-q >/dev/null 2>&1
wait_for "$WAIT" gone vd data-q
check "disk data-q is deleted" gone vd data-q

# ---- a blank disk, grown -----------------------------------------------------------
check "a blank 64Mi VirtualDisk is accepted" quiet vd blank 64Mi
wait_for "$WAIT" phase_is vd blank Ready
check "the blank disk is Ready as qcow2" \
    test "$(field vd blank .status.phase)" = Ready -a "$(field vd blank .status.format)" = qcow2
B_NODE=$(field vd blank .status.target.node)
B_VOL=$(field vd blank .status.target.volume)
check "virsh vol-info: 64 MiB" test "$(vol_capacity "$B_NODE" local "$B_VOL")" = 67108864
check "growing spec.persistentVolumeClaim.size to 96Mi is accepted" quiet vd blank 96Mi
cap_is() { [ "$(field vd "$1" .status.capacity)" = "$2" ] && phase_is vd "$1" Ready; }
wait_for "$WAIT" cap_is blank 96Mi
check "the disk is Ready at 96Mi" cap_is blank 96Mi
check "virsh vol-info: 96 MiB" test "$(vol_capacity "$B_NODE" local "$B_VOL")" = 100663296
out=$(vd blank 32Mi 2>&1)
check "shrinking is refused: $out" sh -c 'echo "$1" | grep -q "only grows"' _ "$out"
out=$(vd blank 96Mi nfs 2>&1)
check "changing the storage class is refused" sh -c 'echo "$1" | grep -q "cannot change"' _ "$out"

# ---- a shared disk ---------------------------------------------------------------
check "a blank disk of class nfs (shared pool) is accepted" quiet vd shared-disk 16Mi "" nfs
wait_for "$WAIT" phase_is vd shared-disk Ready
S_VOL=$(field vd shared-disk .status.target.volume)
shared_ok() {
    [ "$(field vd shared-disk .status.phase)" = Ready ] &&
        [ "$(field vd shared-disk .status.target.shared)" = true ] &&
        virsh -q -c "$U1" pool-refresh shared >/dev/null 2>&1 &&
        virsh -q -c "$U2" pool-refresh shared >/dev/null 2>&1 &&
        has_vol node-1 shared "$S_VOL" && has_vol node-2 shared "$S_VOL"
}
check "it is Ready, its target says shared, and both nodes see its volume" shared_ok

# ---- waiting for an image ------------------------------------------------------------
check "a VirtualDisk from a missing image is accepted" quiet vd ghost - no-such-image
ghost_waits() { [ "$(cond vd ghost Ready reason)" = ImageNotFound ]; }
wait_for 20 ghost_waits
msg=$(cond vd ghost Ready message)
check "it waits in Pending: $msg" \
    sh -c '[ "$1" = Pending ] && echo "$2" | grep -q "no-such-image"' _ "$(field vd ghost .status.phase)" "$msg"
out=$(printf 'apiVersion: virtfleet.io/v1alpha2\nkind: VirtualDisk\nmetadata:\n  name: nosize\nspec: {}\n' |
    vf apply -f - 2>&1)
check "a blank disk without a size is refused: $out" sh -c 'echo "$1" | grep -q "required for a blank disk"' _ "$out"

# ---- failures: final ones wait for a new spec, passing ones are retried ----------------
failed_with() { phase_is vd "$1" Failed && [ "$(cond vd "$1" Ready reason)" = "$2" ]; }
check "a 4Mi disk from the 8 MiB image is accepted" quiet vd small 4Mi img
wait_for 20 failed_with small SizeTooSmall
msg=$(cond vd small Ready message)
check "it is Failed (SizeTooSmall), not retried: $msg" \
    sh -c 'echo "$1" | grep -q "4Mi is smaller than the image (8Mi)" && [ -z "$2" ]' _ "$msg" \
    "$(field vd small .status.attempts)"
check "growing it to 8Mi is accepted" quiet vd small 8Mi img
wait_for "$WAIT" phase_is vd small Ready || logs
check "the new spec is made from scratch: Ready" phase_is vd small Ready
virsh -q -c "$(node_uri "$(field vd small .status.target.node)")" vol-download --pool local \
    "$(field vd small .status.target.volume)" "$T/small.out" >/dev/null 2>&1
check "... with the image's bytes (cmp)" cmp -s "$W/disk.raw" "$T/small.out"
check "a disk of a storage class that does not exist is accepted" quiet vd nocls 16Mi "" nosuch
wait_for 20 failed_with nocls StorageClassNotFound
check "it is Failed: $(cond vd nocls Ready message)" failed_with nocls StorageClassNotFound
check "a Failed disk may change its storage class" quiet vd nocls 16Mi "" local
wait_for "$WAIT" phase_is vd nocls Ready || logs
check "... and is then made: Ready in class local" \
    test "$(field vd nocls .status.phase)/$(field vd nocls .status.storageClassName)" = Ready/local

# Both nodes' pool "local" inactive: no node can take the copy now, which passes.
for u in "$U1" "$U2"; do virsh -q -c "$u" pool-destroy local >>"$T/pool.log" 2>&1; done
check "a disk from img is accepted while pool \"local\" is inactive on both nodes" quiet vd retry - img
RETRY_UID=$(field vd retry .metadata.uid)
retrying() {
    [ "$(cond vd retry Ready reason)" = Retrying ] && phase_is vd retry Provisioning &&
        [ "$(field vd retry .status.attempts)" -ge "$1" ] 2>/dev/null
}
wait_for "$WAIT" retrying 2 || logs
msg=$(cond vd retry Ready message)
diag "retry: $msg"
check "it stays Provisioning, reason Retrying, a second attempt after the first failed" retrying 2
check "the message says what failed, the attempt and when the next one is" \
    sh -c 'echo "$1" | grep -Eq "^attempt [0-9]+ failed: .*node \"node-1\": storage pool \"local\" is not active.*; next attempt in [0-9]+s$"' _ "$msg"
for u in "$U1" "$U2"; do virsh -q -c "$u" pool-start local >>"$T/pool.log" 2>&1; done
wait_for "$WAIT" phase_is vd retry Ready || logs
check "once the pools are active again the same disk is Ready (not made anew)" \
    test "$(field vd retry .status.phase)/$(field vd retry .metadata.uid)" = "Ready/$RETRY_UID"
check "... its attempts are cleared and its condition Ready" \
    test "$(field vd retry .status.attempts)/$(cond vd retry Ready status)" = /True
R_NODE=$(field vd retry .status.target.node)
virsh -q -c "$(node_uri "$R_NODE")" vol-download --pool local "$(field vd retry .status.target.volume)" \
    "$T/retry.out" >/dev/null 2>&1
check "its volume holds the image's bytes (cmp)" cmp -s "$W/disk.raw" "$T/retry.out"
for d in small nocls retry; do vf delete vd "$d" >/dev/null 2>&1; done

# ---- VMs ---------------------------------------------------------------------------
# vm NAME DISK...: a VM of the disk-less test guest with those disks attached.
vm() {
    n=$1; shift
    printf 'apiVersion: virtfleet.io/v1alpha2\nkind: VirtualMachine\nmetadata:\n  name: %s\nspec:\n' "$n"
    printf '  runPolicy: AlwaysOn\n  cpu: { cores: 1 }\n  memory: { size: 128Mi }\n  kernel: { path: "%s" }\n' "$KERNEL"
    printf '  blockDeviceRefs:\n'
    for d in "$@"; do
        case $d in
        cvi:*) printf '    - { kind: ClusterVirtualImage, name: %s }\n' "${d#cvi:}" ;;
        *) printf '    - { kind: VirtualDisk, name: %s }\n' "$d" ;;
        esac
    done
}
running_on() { [ "$(field vm "$1" .status.phase)" = Running ] && [ "$(field vm "$1" .status.node)" = "$2" ]; }
vm vm1 data > "$T/vm1.yaml"
check "a VM with disk data is accepted" quiet vf apply -f "$T/vm1.yaml"
wait_for "$WAIT" running_on vm1 "$D_NODE" || logs
check "vm1 runs on the disk's node $D_NODE" running_on vm1 "$D_NODE"
virsh -q -c "$(node_uri "$D_NODE")" dumpxml vm1 > "$T/vm1.xml" 2>/dev/null
check "its domain has the disk: vda, virtio, raw, the volume's path" \
    sh -c 'grep -q "<source file=.$1.[ /]" "$2" && grep -q "<target dev=.vda. bus=.virtio./>" "$2" &&
           grep -q "type=.raw." "$2"' _ "$D_PATH" "$T/vm1.xml"
attached() {
    [ "$(field vd data '.status.attachedToVirtualMachines[0].name')" = vm1 ] &&
        [ "$(field vd data '.status.attachedToVirtualMachines[0].mounted')" = true ]
}
wait_for 20 attached
check "vd data lists vm1 as attached and mounted" attached
vm vm2 data | vf apply -f - >/dev/null 2>&1
vm2_waits() { [ "$(cond vm vm2 DisksReady reason)" = DiskInUse ]; }
wait_for 20 vm2_waits
check "a second VM naming the same disk waits: $(cond vm vm2 DisksReady message)" vm2_waits
check "... in phase Pending" phase_is vm vm2 Pending
vm vm3 shared-disk blank | vf apply -f - >/dev/null 2>&1
wait_for "$WAIT" running_on vm3 "$B_NODE"
check "a VM with a shared and a local disk runs on the local disk's node $B_NODE" running_on vm3 "$B_NODE"
check "... and is marked as needing block migration" \
    test "$(cond vm vm3 Migratable reason)" = NonSharedDisks
# Growing a disk its VM is running with: QEMU grows it (virDomainBlockResize).
check "growing disk blank to 128Mi while vm3 runs is accepted" quiet vd blank 128Mi
wait_for "$WAIT" cap_is blank 128Mi
check "the disk is Ready at 128Mi" cap_is blank 128Mi
blk_cap() {
    virsh -c "$(node_uri "$B_NODE")" domblkinfo vm3 vdb 2>/dev/null | awk '/^Capacity:/ { print $2 }'
}
check "virsh domblkinfo: the running VM sees 128 MiB" test "$(blk_cap)" = 134217728

# CD-ROMs: an ISO image is attached read-only; a disk image is refused.
mkdir -p "$T/isodir" && echo "hello from an ISO" > "$T/isodir/README"
xorriso -as mkisofs -quiet -V VFTEST -o "$W/cd.iso" "$T/isodir" 2>/dev/null
cvi cd "$H/files/cd.iso" >/dev/null
wait_for "$WAIT" phase_is cvi cd Ready
vm vm4 cvi:cd | vf apply -f - >/dev/null 2>&1
vm4_runs() { [ "$(field vm vm4 .status.phase)" = Running ]; }
wait_for "$WAIT" vm4_runs
check "a VM with the ISO image as a CD-ROM runs" vm4_runs
virsh -q -c "$(node_uri "$(field vm vm4 .status.node)")" dumpxml vm4 > "$T/vm4.xml" 2>/dev/null
check "its domain has a read-only SATA CD-ROM sda" \
    sh -c 'grep -q "device=.cdrom." "$1" && grep -q "<target dev=.sda. bus=.sata./>" "$1" &&
           grep -q "<readonly/>" "$1"' _ "$T/vm4.xml"
vm vm5 cvi:img-q | vf apply -f - >/dev/null 2>&1
vm5_refused() { [ "$(cond vm vm5 DisksReady reason)" = ImageNotCDROM ]; }
wait_for 20 vm5_refused
check "a VM naming a disk image (not a CD-ROM) is refused: $(cond vm vm5 DisksReady message)" \
    vm5_refused
check "deleting disk data while VMs name it is accepted" quiet vf delete vd data
in_use() { [ "$(cond vd data InUse status)" = True ] && phase_is vd data Terminating; }
wait_for 20 in_use
check "the disk waits in Terminating: $(cond vd data InUse message)" in_use
check "its volume is still there" has_vol "$D_NODE" local "$D_VOL"
vf delete vm vm1 vm2 vm3 vm4 vm5 >/dev/null 2>&1
wait_for "$WAIT" gone vd data
check "once the VMs are gone, so is the disk" gone vd data
check "... and its volume" sh -c '! virsh -q -c "$1" vol-list local | grep -q "$2"' _ "$(node_uri "$D_NODE")" "$D_VOL"
vf delete vd blank >/dev/null 2>&1
wait_for "$WAIT" gone vd blank
check "disk blank is deleted with its volume" sh -c '! virsh -q -c "$1" vol-list local | grep -q "$2"' _ "$(node_uri "$B_NODE")" "$B_VOL"

# ---- an image being copied stays until the copy ends ---------------------------------
# libvirtd of both nodes held (SIGSTOP): the new disk's copy cannot finish.
STOPPED="$(cat "$CL/node-1/libvirtd.pid") $(cat "$CL/node-2/libvirtd.pid")"
# shellcheck disable=SC2086
kill -STOP $STOPPED
check "a disk from img is accepted while both nodes' libvirtd are stopped" quiet vd held - img
wait_for 20 phase_is vd held Provisioning
check "the disk is Provisioning" phase_is vd held Provisioning
check "deleting img is accepted" quiet vf delete cvi img
held() { vf get cvi img -o yaml 2>/dev/null | grep -q 'deletionTimestamp'; }
held_3s() { held && sleep 3 && held; }
check "img stays (Terminating) while the copy waits" held_3s
# shellcheck disable=SC2086
kill -CONT $STOPPED
STOPPED=
wait_for "$WAIT" phase_is vd held Ready || logs
check "the copy ends Ready" phase_is vd held Ready
H_NODE=$(field vd held .status.target.node)
virsh -q -c "$(node_uri "$H_NODE")" vol-download --pool local "$(field vd held .status.target.volume)" \
    "$T/held.out" >/dev/null 2>&1
check "the copy is whole although the image was deleted meanwhile (cmp)" cmp -s "$W/disk.raw" "$T/held.out"
wait_for 20 gone cvi img
check "then the image is gone" gone cvi img

# ---- a daemon killed mid-provisioning --------------------------------------------------
STOPPED="$(cat "$CL/node-1/libvirtd.pid") $(cat "$CL/node-2/libvirtd.pid")"
# shellcheck disable=SC2086
kill -STOP $STOPPED
vd crash - img-q >/dev/null 2>&1
wait_for 20 phase_is vd crash Provisioning
check "a disk from img-q is Provisioning when the daemon is killed (SIGKILL)" \
    phase_is vd crash Provisioning
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=
# shellcheck disable=SC2086
kill -CONT $STOPPED
STOPPED=
vf_start || fail_out "the daemon starts again"
# A libvirtd just woken from SIGSTOP may refuse the first connection; the
# daemon reconnects with back-off.  Both nodes first, then the disks.
wait_for 120 nodes_ready || fail_out "both nodes are Ready again"
wait_for "$WAIT" phase_is vd crash Ready || logs
check "after the restart the disk ends Ready" phase_is vd crash Ready
check "with the image's content (qemu-img compare)" \
    qemu-img compare -q -f qcow2 -F raw "$(field vd crash .status.target.path)" "$W/disk.raw"
no_hold() { ! vf get cvi img-q -o yaml 2>/dev/null | grep -q 'virtfleet.io/disk-source'; }
wait_for 20 no_hold
check "and the image is no longer held" no_hold

refused=
for d in held shared-disk ghost crash; do
    vf delete vd "$d" >"$T/delete.out" 2>&1 || refused="$refused $d: $(cat "$T/delete.out");"
done
check "deleting the disks left is accepted${refused:+ (refused:$refused)}" test -z "$refused"
no_disks() { [ -z "$(vf get vd -o name 2>/dev/null)" ]; }
# left_disks: what is left and why, on one line (CI shows a failure's title only).
left_disks() {
    for d in $(vf get vd -o name 2>/dev/null); do
        d=${d#*/}
        printf '%s' " $d: $(field vd "$d" .status.phase), Ready=$(cond vd "$d" Ready reason)"
        printf '%s' " ($(cond vd "$d" Ready message)), InUse=$(cond vd "$d" InUse message),"
        printf '%s' " finalizers $(field vd "$d" .metadata.finalizers);"
    done
}
wait_for "$WAIT" no_disks
no_disks || { diag "$(vf get vd -o yaml 2>&1)"; logs; }
check "every disk is deleted$(no_disks || echo " (left:$(left_disks))")" no_disks
no_vols() {
    virsh -q -c "$U1" pool-refresh shared >/dev/null 2>&1
    [ -z "$(vols node-1 local; vols node-2 local; vols node-1 shared)" ]
}
check "no volume is left in any pool" no_vols
done_testing
