#!/bin/sh
# Quick start: build virtfleet, start virtfleetd on the embedded default (three
# simulated nodes on libvirt's built-in test driver, data/nodes/*.xml, and the
# store in SQLite: no hypervisor needed), apply the example VMs of
# data/examples, and show them placed, running and stopped with the CLI.
# KEEP=1 leaves the daemon running.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
sh scripts/install-deps.sh
if [ -f config.status ]; then
    # A tree configured in place (./configure && make) builds there.
    make -s -j"$(nproc)"
    bin=$top
else
    [ -x configure ] || ./autogen.sh
    mkdir -p build
    (cd build && { [ -f Makefile ] || ../configure -q; } && make -s -j"$(nproc)")
    bin=$top/build
fi

demo=${DEMO_DIR:-/tmp/virtfleet-demo}
mkdir -p "$demo/modules"
ln -sf "$bin/modules/example/.libs/example.so" "$demo/modules/example.so"
ln -sf "$bin/modules/images/.libs/images.so" "$demo/modules/images.so"
# Each node is its own test:/// connection with a private, in-memory libvirt
# described by a file (an absolute path: test:///ABS/PATH).
nodes=$top/data/nodes
cat > "$demo/virtfleetd.conf" <<CONF
# The embedded default: three nodes on libvirt's test driver, state in $demo.
state_dir = "$demo/state";
pidfile = "$demo/virtfleetd.pid";
log_level = "info";
module_dir = "$demo/modules";
api = { socket = "$demo/virtfleetd.sock"; mode = "0660"; };
nodes = (
  { name = "node-1"; uri = "test://$nodes/node-1.xml"; labels = { zone = "a"; }; },
  { name = "node-2"; uri = "test://$nodes/node-2.xml"; labels = { zone = "a"; }; },
  { name = "node-3"; uri = "test://$nodes/node-3.xml"; labels = { zone = "b"; }; }
);
virtualization = { virtualMachineCIDRs = [ "10.66.10.0/24" ]; };
modules = {
  example = { enabled = true; version = 1; settings = { greeting = "hello from the demo"; }; };
  images = { enabled = true; version = 1;
             settings = { dvcr = { storage = { path = "$demo/dvcr"; size = "1G"; }; };
                          upload = { listen = "127.0.0.1:0"; }; }; };
};
CONF

if [ -f "$demo/virtfleetd.pid" ] && kill -0 "$(cat "$demo/virtfleetd.pid")" 2>/dev/null; then
    kill "$(cat "$demo/virtfleetd.pid")"; sleep 1
fi
# A fresh store each time: the demo starts from nothing.  (The test driver
# keeps its domains in memory, so they are gone with the old daemon anyway.)
rm -rf "$demo/state" "$demo/dvcr"
"$bin/virtfleetd" -c "$demo/virtfleetd.conf"   # returns once the API is ready
vfq() { "$bin/virtfleet" --socket "$demo/virtfleetd.sock" "$@"; }
vf() { echo "\$ virtfleet $*"; vfq "$@"; echo; }
# until_phase PHASE VM...: wait (up to 10 s) until each VM has that phase.
until_phase() {
    want=$1; shift
    for _ in $(seq 1 100); do
        all=1
        for v in "$@"; do
            [ "$(vfq get vm "$v" -o 'jsonpath={.status.phase}' 2>/dev/null)" = "$want" ] || all=0
        done
        [ $all = 0 ] || return 0
        sleep 0.1
    done
    echo "(still not $want after 10 s: $*)"
}
until_ready() {
    for _ in $(seq 1 100); do
        [ "$(vfq get nodes 2>/dev/null | awk 'NR > 1 && $2 == "Ready"' | wc -l)" -lt 3 ] || return 0
        sleep 0.1
    done
}

vf version
until_ready
vf get nodes
vf apply -f data/examples/linux-vm.yaml -f data/examples/web-vms.yaml -f data/examples/db-vm.yaml
until_phase Running linux-vm web-1 web-2 db-1
vf get vm
vf create -f data/examples/stop-linux-vm.yaml
until_phase Stopped linux-vm
vf get vmop
vf get vm

# An image uploaded as the seeds show it: a small sparse raw disk made here.
rm -f "$demo/disk.raw"; truncate -s 64M "$demo/disk.raw"
printf 'virtfleet demo disk' | dd of="$demo/disk.raw" bs=1M seek=8 conv=notrunc status=none
vf apply -f data/examples/images/upload.yaml
vf upload cvi "$(awk '/^  name:/ { print $2; exit }' data/examples/images/upload.yaml)" "$demo/disk.raw"
vf get cvi
if [ "${KEEP:-0}" = 1 ]; then
    echo "virtfleetd keeps running: $bin/virtfleet --socket $demo/virtfleetd.sock get vm"
    echo "stop it with: kill \$(cat $demo/virtfleetd.pid)"
else
    kill "$(cat "$demo/virtfleetd.pid")"
    echo "demo done (KEEP=1 ./scripts/demo.sh leaves the daemon running)"
fi
