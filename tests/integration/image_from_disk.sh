#!/bin/sh
# ClusterVirtualImages made from VirtualDisks (spec.dataSource.objectRef.kind
# VirtualDisk) on two real libvirt nodes (tests/lib/cluster.sh), through the
# daemon and the CLI.  A raw disk made from an uploaded image, then written
# into on its node (virsh vol-upload), becomes a raw image holding exactly the
# volume's bytes (virsh vol-download + cmp, sha256) with its holes kept; a
# qcow2 disk written with qemu-io becomes a qcow2 image with that data; an
# image from a missing disk waits and is made once the disk is; a namespaced
# VirtualImage source is refused; an image from a disk a running VM uses waits
# (DiskInUse) until the VM is deleted; a disk deleted while an image is being
# copied from it (its node's libvirtd held with SIGSTOP) stays Terminating
# with its volume until the copy is Ready, then goes, also when the daemon is
# killed meanwhile (the copy starts over after the restart).  Never skipped: a
# missing tool is a failure.
. "$(dirname "$0")/lib.sh"

need_nodes
need_tools qemu-img qemu-io curl cmp sha256sum
need_images_module
prerequisites_met
ok "prerequisites are installed"

STOPPED=
# shellcheck disable=SC2016,SC2086
CLEANUP='[ -z "$STOPPED" ] || kill -CONT $STOPPED 2>/dev/null'
cluster_setup
ln -s "$IMAGES_MODULE" "$T/modules/images.so"
W="$T/files"
mkdir -p "$W"
# Generous for TCG on a loaded machine; every wait is a poll that ends sooner.
WAIT=${IMAGE_FROM_DISK_WAIT:-60}

sha() { sha256sum "$1" | cut -d' ' -f1; }
allocated() { stat -c '%b %B' "$1" 2>/dev/null | awk '{ print $1 * $2 }'; }

guests_build
cluster_up 2
ok "cluster.sh brings up 2 nodes (domain type $(cat "$CL/domain-type"))"
NODES="node-1 node-2"
U1=$(node_uri node-1)
U2=$(node_uri node-2)

mkdir -p "$T/pool-1" "$T/pool-2"
pools_ok=true
for i in 1 2; do
    u=$(node_uri "node-$i")
    virsh -q -c "$u" pool-define-as local dir --target "$T/pool-$i" >>"$T/pool.log" 2>&1 &&
        virsh -q -c "$u" pool-start local >>"$T/pool.log" 2>&1 || pools_ok=false
done
$pools_ok || { diag "$(cat "$T/pool.log")"; fail_out "virsh defines and starts the pools"; }
ok "each node has a directory pool \"local\""

NODES_CONFIG="nodes = (
  { name = \"node-1\"; uri = \"$U1\"; },
  { name = \"node-2\"; uri = \"$U2\"; } );"
export NODES_CONFIG
write_config "$(images_module_config 1Gi "
    virtualDisks = { storageClasses = [ \"local:local\" ]; defaultStorageClassName = \"local\"; };
    upload = { listen = \"127.0.0.1:0\"; };")" 'virtualization = { virtualMachineCIDRs = [ "10.77.7.0/28" ]; };'
vf_start || fail_out "the daemon starts with the images module and two nodes"
wait_for 30 nodes_ready || fail_out "both nodes are Ready"
wait_images_running
ok "the daemon runs the images module with both nodes Ready"

# cvi NAME TYPE [KIND SOURCE]: an image of type Upload, or ObjectRef to KIND SOURCE.
cvi() {
    {
        printf 'apiVersion: virtualization.deckhouse.io/v1alpha2\nkind: ClusterVirtualImage\nmetadata:\n  name: %s\nspec:\n  dataSource:\n    type: %s\n' "$1" "$2"
        [ "$2" != ObjectRef ] || printf '    objectRef:\n      kind: %s\n      name: %s\n' "$3" "$4"
    } | vf apply -f -
}
# vd NAME SIZE|- [IMAGE]: a VirtualDisk, blank or from an image.
vd() {
    {
        printf 'apiVersion: virtualization.deckhouse.io/v1alpha2\nkind: VirtualDisk\nmetadata:\n  name: %s\nspec:\n' "$1"
        [ "$2" = - ] || printf '  persistentVolumeClaim:\n    size: %s\n' "$2"
        [ -z "${3:-}" ] || printf '  dataSource:\n    type: ObjectRef\n    objectRef:\n      kind: ClusterVirtualImage\n      name: %s\n' "$3"
    } | vf apply -f -
}
has_vol() { virsh -q -c "$(node_uri "$1")" vol-list local 2>/dev/null | awk '{ print $1 }' | grep -qx "$2"; }
# download DISK FILE: the disk's volume, as its node's libvirt gives it.
download() {
    virsh -q -c "$(node_uri "$(field vd "$1" .status.target.node)")" vol-download --pool local \
        "$(field vd "$1" .status.target.volume)" "$2" >/dev/null 2>&1
}
held_by_image() { vf get vd "$1" -o yaml 2>/dev/null | grep -q 'virtfleet.io/image-source'; }
not_held() { ! held_by_image "$1"; }

# ---- a raw disk, written into on its node ------------------------------------------
# The image: 8 MiB, mostly holes, 1 MiB of random data at 2 MiB and a word at 7 MiB.
truncate -s 8M "$W/base.raw"
head -c 1048576 /dev/urandom | dd of="$W/base.raw" bs=1M seek=2 conv=notrunc 2>/dev/null
printf 'virtfleet' | dd of="$W/base.raw" bs=1 seek=7340032 conv=notrunc 2>/dev/null
quiet cvi base Upload && quiet vf upload cvi base "$W/base.raw"
wait_for "$WAIT" phase_is cvi base Ready || fail_out "the uploaded image base is Ready"
quiet vd disk - base
wait_for "$WAIT" phase_is vd disk Ready || fail_out "VirtualDisk disk (from base) is Ready"
D_NODE=$(field vd disk .status.target.node)
D_VOL=$(field vd disk .status.target.volume)
ok "VirtualDisk disk is Ready: raw, volume $D_VOL on $D_NODE"
# What a guest would have written: 64 KiB of a pattern at 5 MiB, in a hole of the image.
awk 'BEGIN { for (i = 0; i < 4096; i++) printf "written-by-test\n" }' > "$W/pattern"
virsh -q -c "$(node_uri "$D_NODE")" vol-upload --pool local "$D_VOL" "$W/pattern" \
    --offset 5242880 --length 65536 >"$T/upload.log" 2>&1
download disk "$W/disk.expect"
check "virsh vol-upload wrote the pattern into the volume (vol-download shows it)" \
    cmp -s -i 5242880:0 -n 65536 "$W/disk.expect" "$W/pattern"
check "... and the image's bytes are there too" cmp -s -n 5242880 "$W/disk.expect" "$W/base.raw"

out=$(cvi bad ObjectRef VirtualImage disk 2>&1)
check "an image from a namespaced VirtualImage is refused: $out" \
    sh -c 'echo "$1" | grep -q "no namespaced VirtualImage"' _ "$out"
check "an image from VirtualDisk disk is accepted" quiet cvi from-disk ObjectRef VirtualDisk disk
wait_for "$WAIT" phase_is cvi from-disk Ready || logs
check "ClusterVirtualImage from-disk is Ready" phase_is cvi from-disk Ready
P=$(field cvi from-disk .status.target.path)
diag "from-disk: $P, $(stat -c %s "$P" 2>/dev/null) bytes, $(allocated "$P") allocated"
check "its status says raw, from VirtualDisk disk on $D_NODE (volume $D_VOL)" \
    test "$(field cvi from-disk .status.format)" = raw \
    -a "$(field cvi from-disk .status.source.virtualDisk.name)" = disk \
    -a "$(field cvi from-disk .status.source.virtualDisk.node)" = "$D_NODE" \
    -a "$(field cvi from-disk .status.source.virtualDisk.volume)" = "$D_VOL" \
    -a "$(field cvi from-disk .status.cdrom)" = false
check "the stored image is the volume byte for byte (cmp with vol-download)" cmp -s "$W/disk.expect" "$P"
check "status.checksums.sha256 is the volume's" \
    test "$(field cvi from-disk .status.checksums.sha256)" = "$(sha "$W/disk.expect")"
check "status.size.unpackedBytes is the volume's 8 MiB and progress 100%" \
    test "$(field cvi from-disk .status.size.unpackedBytes)" = 8388608 \
    -a "$(field cvi from-disk .status.progress)" = 100%
check "the holes stayed holes (under 4 MiB of the 8 allocated)" test "$(allocated "$P")" -lt 4194304
wait_for 20 not_held disk
check "the disk is no longer held by the image (no finalizer virtfleet.io/image-source)" not_held disk

# ---- a qcow2 disk ------------------------------------------------------------------
quiet vd disk-q 16Mi
wait_for "$WAIT" phase_is vd disk-q Ready || fail_out "the blank VirtualDisk disk-q is Ready"
Q_PATH=$(field vd disk-q .status.target.path)
check "qemu-io writes 64 KiB of 0x5a at 9 MiB into the qcow2 disk" \
    sh -c 'test "$1" = qcow2 && qemu-io -f qcow2 -c "write -q -P 0x5a 9M 64k" "$2"' _ \
    "$(field vd disk-q .status.format)" "$Q_PATH"
check "an image from VirtualDisk disk-q is accepted" quiet cvi from-q ObjectRef VirtualDisk disk-q
wait_for "$WAIT" phase_is cvi from-q Ready || logs
check "ClusterVirtualImage from-q is Ready as qcow2" \
    test "$(field cvi from-q .status.phase)" = Ready -a "$(field cvi from-q .status.format)" = qcow2
QP=$(field cvi from-q .status.target.path)
download disk-q "$W/disk-q.expect"
check "the stored qcow2 is the volume's file byte for byte (cmp)" cmp -s "$W/disk-q.expect" "$QP"
check "qemu-img: a qcow2 of 16 MiB" \
    sh -c 'qemu-img info "$1" | grep -q "^file format: qcow2" && qemu-img info "$1" | grep -q "^virtual size: 16 MiB"' _ "$QP"
head -c 65536 /dev/zero | tr '\0' 'Z' > "$W/pattern-5a"
qemu-img convert -f qcow2 -O raw "$QP" "$W/from-q.raw" 2>"$T/convert.log"
check "the image holds the pattern at 9 MiB (qemu-img convert + cmp)" \
    cmp -s -i 9437184:0 -n 65536 "$W/from-q.raw" "$W/pattern-5a"

# ---- waiting for a disk --------------------------------------------------------------
check "an image from a missing VirtualDisk is accepted" quiet cvi late ObjectRef VirtualDisk later
late_waits() { phase_is cvi late Pending && [ "$(cond cvi late Ready reason)" = DiskNotFound ]; }
wait_for 20 late_waits
check "it waits in Pending: $(cond cvi late Ready message)" late_waits
quiet vd later 16Mi
wait_for "$WAIT" phase_is cvi late Ready || logs
check "once the disk is made (and Ready) the image is Ready" phase_is cvi late Ready
download later "$W/later.expect"
check "... holding the disk's bytes (cmp)" cmp -s "$W/later.expect" "$(field cvi late .status.target.path)"

# ---- a disk a VM runs from -----------------------------------------------------------
vm_runs_on() { [ "$(field vm "$1" .status.phase)" = Running ] && [ "$(field vm "$1" .status.node)" = "$2" ]; }
printf 'apiVersion: virtfleet.io/v1alpha2\nkind: VirtualMachine\nmetadata:\n  name: vm1\nspec:\n  runPolicy: AlwaysOn\n  cpu: { cores: 1 }\n  memory: { size: 128Mi }\n  kernel: { path: "%s" }\n  blockDeviceRefs:\n    - { kind: VirtualDisk, name: disk }\n' "$KERNEL" |
    quiet vf apply -f -
wait_for "$WAIT" vm_runs_on vm1 "$D_NODE" || logs
check "vm1 with disk runs on $D_NODE" vm_runs_on vm1 "$D_NODE"
check "an image from the disk vm1 uses is accepted" quiet cvi busy ObjectRef VirtualDisk disk
busy_waits() { phase_is cvi busy Pending && [ "$(cond cvi busy Ready reason)" = DiskInUse ]; }
wait_for 20 busy_waits
msg=$(cond cvi busy Ready message)
check "it waits in Pending with reason DiskInUse: $msg" \
    sh -c 'echo "$1" | grep -q "\"vm1\"" && echo "$1" | grep -q "stop the VM"' _ "$msg"
check "... has no stored image and does not hold the disk" \
    sh -c '[ -z "$1" ] && [ -z "$(find "$2/dvcr/images" -name "$3.*")" ]' _ \
    "$(field cvi busy .status.target.path)" "$T" "$(field cvi busy .metadata.uid)"
check "... and the disk is not held" not_held disk
quiet vf delete vm vm1
wait_for "$WAIT" gone vm vm1
wait_for "$WAIT" phase_is cvi busy Ready || logs
check "once vm1 is deleted the image is Ready" phase_is cvi busy Ready
download disk "$W/disk.after-vm"
check "... holding the disk's bytes (cmp)" cmp -s "$W/disk.after-vm" "$(field cvi busy .status.target.path)"

# ---- deleting a disk an image is being copied from -----------------------------------
# The disk's node's libvirtd held (SIGSTOP): the copy cannot finish.  Short:
# the daemon gives up on a silent node after 15 s (keepalive).
STOPPED=$(cat "$CL/$D_NODE/libvirtd.pid")
kill -STOP "$STOPPED"
check "an image from the disk is accepted while $D_NODE's libvirtd is stopped" \
    quiet cvi held ObjectRef VirtualDisk disk
wait_for 10 phase_is cvi held Provisioning
check "the image is Provisioning" phase_is cvi held Provisioning
check "the disk has the finalizer virtfleet.io/image-source" held_by_image disk
check "deleting the disk is accepted" quiet vf delete vd disk
disk_waits() { phase_is vd disk Terminating && [ "$(cond vd disk InUse reason)" = UsedByImage ]; }
wait_for 10 disk_waits
check "the disk waits in Terminating: $(cond vd disk InUse message)" disk_waits
check "the image is still Provisioning" phase_is cvi held Provisioning
kill -CONT "$STOPPED"
STOPPED=
wait_for "$WAIT" phase_is cvi held Ready || logs
check "once the node answers the copy ends Ready" phase_is cvi held Ready
check "the copy is whole although the disk was deleted meanwhile (cmp)" \
    cmp -s "$W/disk.after-vm" "$(field cvi held .status.target.path)"
wait_for "$WAIT" gone vd disk
check "then the disk is gone" gone vd disk
wait_for 20 sh -c "! virsh -q -c '$(node_uri "$D_NODE")' vol-list local | grep -q '$D_VOL'"
check "... with its volume" sh -c '! virsh -q -c "$1" vol-list local | grep -q "$2"' _ \
    "$(node_uri "$D_NODE")" "$D_VOL"
check "the images stay Ready" sh -c 'for i in from-disk busy held; do
    [ "$("$0" --socket "$1" get cvi "$i" -o "jsonpath={.status.phase}")" = Ready ] || exit 1; done' \
    "$VIRTFLEET" "$SOCK"

# ---- a daemon killed mid-copy, the disk deleted meanwhile ------------------------------
Q_NODE=$(field vd disk-q .status.target.node)
Q_VOL=$(field vd disk-q .status.target.volume)
STOPPED=$(cat "$CL/$Q_NODE/libvirtd.pid")
kill -STOP "$STOPPED"
quiet cvi crash ObjectRef VirtualDisk disk-q
wait_for 10 phase_is cvi crash Provisioning
quiet vf delete vd disk-q
crash_state() {
    phase_is cvi crash Provisioning && phase_is vd disk-q Terminating &&
        [ "$(cond vd disk-q InUse reason)" = UsedByImage ]
}
wait_for 10 crash_state
check "an image from disk-q is Provisioning, disk-q deleted and waiting for it, when the daemon is killed (SIGKILL)" \
    crash_state
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=
kill -CONT "$STOPPED"
STOPPED=
vf_start || fail_out "the daemon starts again"
wait_for 120 nodes_ready || fail_out "both nodes are Ready again"
wait_for "$WAIT" phase_is cvi crash Ready || logs
check "after the restart the copy resumes and ends Ready" phase_is cvi crash Ready
check "... whole (cmp with the volume's file)" cmp -s "$W/disk-q.expect" "$(field cvi crash .status.target.path)"
wait_for "$WAIT" gone vd disk-q
check "then disk-q is gone" gone vd disk-q
check "... with its volume" sh -c '! virsh -q -c "$1" vol-list local | grep -q "$2"' _ \
    "$(node_uri "$Q_NODE")" "$Q_VOL"

quiet vf delete vd later
no_disks() { [ -z "$(vf get vd -o name 2>/dev/null)" ]; }
wait_for "$WAIT" no_disks
check "every disk is deleted" no_disks
done_testing
