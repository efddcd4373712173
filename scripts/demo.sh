#!/bin/sh
# Quick start: build virtfleet, start virtfleetd on an embedded default (one
# node on libvirt's built-in test driver, the store in SQLite: no hypervisor
# needed) and show it working with the CLI.  KEEP=1 leaves the daemon running.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
sh scripts/install-deps.sh
[ -x configure ] || ./autogen.sh
mkdir -p build
(cd build && { [ -f Makefile ] || ../configure -q; } && make -s -j"$(nproc)")

demo=${DEMO_DIR:-/tmp/virtfleet-demo}
mkdir -p "$demo/modules"
ln -sf "$top/build/modules/example/.libs/example.so" "$demo/modules/example.so"
cat > "$demo/virtfleetd.conf" <<CONF
# The embedded default: one node on libvirt's test driver, state in $demo.
state_dir = "$demo/state";
pidfile = "$demo/virtfleetd.pid";
log_level = "info";
module_dir = "$demo/modules";
api = { socket = "$demo/virtfleetd.sock"; mode = "0660"; };
nodes = ( { name = "demo"; uri = "test:///default"; labels = { zone = "a"; }; } );
virtualization = { virtualMachineCIDRs = [ "10.66.10.0/24" ]; };
modules = { example = { enabled = true; version = 1; settings = { greeting = "hello from the demo"; }; }; };
CONF

if [ -f "$demo/virtfleetd.pid" ] && kill -0 "$(cat "$demo/virtfleetd.pid")" 2>/dev/null; then
    kill "$(cat "$demo/virtfleetd.pid")"; sleep 1
fi
./build/virtfleetd -c "$demo/virtfleetd.conf"   # returns once the API is ready
vf() { echo "\$ virtfleet $*"; ./build/virtfleet --socket "$demo/virtfleetd.sock" "$@"; echo; }

vf version
vf modules
vf get nodes
vf apply -f data/examples/linux-vm.yaml
vf get vmclass
vf get vm -o yaml
vf get auditevents
if [ "${KEEP:-0}" = 1 ]; then
    echo "virtfleetd keeps running: ./build/virtfleet --socket $demo/virtfleetd.sock get nodes"
    echo "stop it with: kill \$(cat $demo/virtfleetd.pid)"
else
    kill "$(cat "$demo/virtfleetd.pid")"
    echo "demo done (KEEP=1 ./scripts/demo.sh leaves the daemon running)"
fi
