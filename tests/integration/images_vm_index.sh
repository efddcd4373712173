#!/bin/sh
# The images module's index of VMs by the disks they name (modules/images/
# vm_refs.h), through the daemon on libvirt's test driver: a disk's
# status.attachedToVirtualMachines lists the VMs that name it by name, follows
# a VM that lets go of it, survives a module restart (disabled and enabled by
# SIGHUP, a VM deleted meanwhile) and a daemon restart, follows a VM deleted
# and created again under its name (a new uid) naming another disk, and a
# deleted disk is held while a VM names it and goes once the VM does.  The
# VMs (runPolicy Manual) never start; the disks (no storage class) are Failed,
# which changes none of this.
. "$(dirname "$0")/lib.sh"
need_images_module
prerequisites_met
ok "prerequisites are installed"

vf_setup
ln -s "$IMAGES_MODULE" "$T/modules/images.so"
images_on() { images_module_config 1G 'upload = { listen = "127.0.0.1:0"; };'; }
write_config "$(images_on)"
vf_start || fail_out "the daemon starts"
wait_images_running

vm() { # NAME DISK...
    printf 'apiVersion: virtfleet.io/v1alpha2\nkind: VirtualMachine\nmetadata:\n  name: %s\nspec:\n' "$1"
    printf '  runPolicy: Manual\n  cpu: { cores: 1 }\n  memory: { size: 128Mi }\n  blockDeviceRefs:\n'
    shift
    for d in "$@"; do printf '    - { kind: VirtualDisk, name: %s }\n' "$d"; done
}
disk() {
    printf 'apiVersion: virtualization.deckhouse.io/v1alpha2\nkind: VirtualDisk\nmetadata:\n  name: %s\nspec:\n  persistentVolumeClaim: { size: 1Mi }\n' "$1"
}
# attached DISK: the names in its status.attachedToVirtualMachines, space separated.
attached() {
    for i in 0 1 2 3; do
        field vd "$1" ".status.attachedToVirtualMachines[$i].name"
        echo
    done | grep . | tr '\n' ' ' | sed 's/ *$//'
}
attached_is() { [ "$(attached "$1")" = "$2" ]; }
# expect DESCRIPTION DISK NAMES: waits for the list, then one test point.
expect() {
    wait_for 15 attached_is "$2" "$3"
    check "$1 ($2 lists \"$(attached "$2")\")" attached_is "$2" "$3"
}
images_stopped() { ! images_running; }

disk d1 | vf apply -f - >/dev/null && disk d2 | vf apply -f - >/dev/null
vm vm-b d1 | vf apply -f - >/dev/null && vm vm-a d1 d2 | vf apply -f - >/dev/null
expect "a disk lists the VMs that name it, by name" d1 "vm-a vm-b"
expect "and another disk the one VM naming it" d2 "vm-a"
vm vm-a d2 | vf apply -f - >/dev/null
expect "a VM that lets go of a disk leaves its list" d1 "vm-b"

write_config "images = { enabled = false; };"
kill -HUP "$DAEMON_PID"
wait_for 15 images_stopped || fail_out "SIGHUP disables the images module"
vf delete vm vm-b >/dev/null 2>&1
wait_for 15 gone vm vm-b
write_config "$(images_on)"
kill -HUP "$DAEMON_PID"
wait_images_running
expect "after a module restart, a VM deleted meanwhile is gone from the list" d1 ""
expect "and the VMs still there are listed" d2 "vm-a"

vf delete vm vm-a >/dev/null 2>&1
wait_for 15 gone vm vm-a
vm vm-a d1 | vf apply -f - >/dev/null
expect "a VM created again under its name (new uid) is listed by the disk it names" d1 "vm-a"
expect "and no longer by the disk the old one named" d2 ""

vf_stop
vf_start || fail_out "the daemon starts again"
wait_images_running
vm vm-c d2 | vf apply -f - >/dev/null
expect "after a daemon restart, the VMs of the store are listed" d1 "vm-a"
expect "and a VM created since" d2 "vm-c"

# in_use DISK: its InUse condition says a VM holds it.
in_use() {
    for i in 0 1 2 3; do
        [ "$(field vd "$1" ".status.conditions[$i].type")" = InUse ] &&
            [ "$(field vd "$1" ".status.conditions[$i].reason")" = UsedByVirtualMachine ] && return 0
    done
    return 1
}
vf delete vd d2 >/dev/null 2>&1
wait_for 15 in_use d2
check "a deleted disk a VM names is held (InUse, UsedByVirtualMachine)" in_use d2
vf delete vm vm-c >/dev/null 2>&1
wait_for 15 gone vd d2
check "once the VM is deleted, the disk goes" gone vd d2
done_testing
