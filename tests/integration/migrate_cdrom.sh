#!/bin/sh
# CD-ROM images on two real libvirt nodes whose storage is their own: each
# node has a directory pool "local" at /var/lib/libvirt/images, private to
# the node (cluster.sh), and virtualImages.defaultStorageClassName names it.
# An ISO image (xorriso, served by tests/lib/http_fixture) is copied into
# that pool on every node once a VM names it; the VM attaches its node's copy
# as a libvirt volume (pool + name, not a path on the daemon's host), the
# copies hold the ISO's bytes (virsh vol-download + cmp), an Evict moves the
# VM to the other node's copy, and deleting the VM and the image removes the
# copies from both nodes.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/migrate_common.sh"
mig_need_images
for t in cmp xorriso; do
    command -v "$t" >/dev/null 2>&1 || { not_ok "prerequisites: $t"; done_testing; }
done

mig_before_start() {
    mkdir -p "$T/www" "$T/isodir"
    head -c 300000 /dev/urandom > "$T/isodir/payload.bin"
    echo "virtfleet install media" > "$T/isodir/README"
    xorriso -as mkisofs -quiet -V VFCDROM -o "$T/www/install.iso" "$T/isodir" 2>"$T/xorriso.log" ||
        { diag "$(cat "$T/xorriso.log")"; return 1; }
    mig_images 'virtualImages = { defaultStorageClassName = "local"; };'
}
mig_setup 2 ""
wait_images_running
ok "each node has its own pool \"local\" at $POOL_DIR; the images module copies CD-ROMs there"
H="http://$(fixture_addr fixture)"

copies() { field cvi install .status.cdromCopies.nodes | tr -d '[]" ' | tr ',' '\n' | sort | tr '\n' ' '; }
all_nodes() { echo $NODES | tr ' ' '\n' | sort | tr '\n' ' '; }

printf 'apiVersion: virtualization.deckhouse.io/v1alpha2\nkind: ClusterVirtualImage\nmetadata:\n  name: install\nspec:\n  dataSource:\n    type: HTTP\n    http:\n      url: %s/files/install.iso\n' "$H" |
    vf apply -f - >/dev/null
wait_for 60 phase_is cvi install Ready || fail_out "the ISO is imported (Ready)"
VOL=$(field cvi install .status.cdromCopies.volume)
check "the image is a CD-ROM whose copies go to pool local as $VOL" \
    sh -c '[ "$1 $2" = "true local" ] && case $3 in cvi-install-*.iso) true ;; *) false ;; esac' _ \
    "$(field cvi install .status.cdrom)" "$(field cvi install .status.cdromCopies.pool)" "$VOL"
none_yet() { [ -z "$(vols node-1)$(vols node-2)" ] && [ -z "$(copies | tr -d ' ')" ]; }
check "no node holds a copy before a VM names the image" none_yet

vm installer fill 128Mi "  blockDeviceRefs:
    - { kind: ClusterVirtualImage, name: install }" > "$T/vm.yaml"
vf create -f "$T/vm.yaml" >/dev/null
wait_for "$WAIT" running_here installer || fail_out "the VM with the CD-ROM runs"
A=$(node_of installer)
B=$(echo $NODES | tr ' ' '\n' | grep -vx "$A")
check "the VM runs on $A, which holds a copy" sh -c 'echo " $1" | grep -q " $2 "' _ "$(copies)" "$A"
everywhere() { [ "$(copies)" = "$(all_nodes)" ]; }
wait_for 60 everywhere
check "every node holds a copy (status.cdromCopies.nodes: $(copies))" everywhere
for n in $NODES; do
    rm -f "$T/$n.iso"
    virsh -q -c "$(node_uri "$n")" vol-download --pool local "$VOL" "$T/$n.iso" >/dev/null 2>&1
    check "the copy on $n holds the ISO's bytes (vol-download + cmp)" cmp -s "$T/www/install.iso" "$T/$n.iso"
done
virsh -q -c "$(node_uri "$A")" dumpxml installer > "$T/dom.xml" 2>/dev/null
check "the domain attaches the node's volume as a read-only SATA CD-ROM" \
    sh -c 'grep -q "<disk type=.volume. device=.cdrom.>" "$1" &&
           grep -q "<source pool=.local. volume=.$2." "$1" && grep -q "<readonly/>" "$1" &&
           ! grep -q "$3" "$1"' _ "$T/dom.xml" "$VOL" "$T/dvcr"

# ---- Evict: the target's own copy serves the VM ------------------------------------
OP=$(evict installer)
wait_for 90 ended "$OP"
[ "$(op_phase "$OP")" = Completed ] ||
    diag "$(vf get vmop "$OP" -o yaml | sed -n 's/^ *message: //p' | head -1)"
check "the Evict operation is Completed" op_is "$OP" Completed
check "memory only is moved (LiveMigration): the CD-ROM is on both nodes" \
    [ "$(field vmop "$OP" .status.migrationState.method)" = LiveMigration ]
wait_for 10 runs_only_on installer "$B"
check "the VM runs on $B only" runs_only_on installer "$B"
virsh -q -c "$(node_uri "$B")" dumpxml installer > "$T/dom-b.xml" 2>/dev/null
check "... attaching $B's own copy (pool local, volume $VOL)" \
    sh -c 'grep -q "<source pool=.local. volume=.$2." "$1"' _ "$T/dom-b.xml" "$VOL"

# ---- deletion: the copies go with the image -------------------------------------------
check "delete the image while the VM uses it" quiet vf delete cvi install
held() { phase_is cvi install Terminating && has_vol "$A" "$VOL" && has_vol "$B" "$VOL"; }
wait_for 10 held
check "it is held Terminating with both copies while the VM names it" held
vf delete vm installer >/dev/null 2>&1
wait_for "$WAIT" gone vm installer || fail_out "the VM is deleted"
wait_for 60 gone cvi install
check "then the image goes" gone cvi install
wait_for 20 no_vols
check "and no copy is left in either node's pool" no_vols
done_testing
