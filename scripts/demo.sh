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
./build/virtfleet --socket "$demo/virtfleetd.sock" apply -f - <<'YAML'
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualMachineClass
metadata:
  name: generic
spec:
  cpu:
    type: Model
    model: Nehalem
  sizingPolicies:
    - cores:
        min: 1
        max: 4
      memory:
        min: 1Gi
        max: 8Gi
        step: 512Mi
      coreFractions: [5, 10, 20, 50, 100]
---
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualMachine
metadata:
  name: linux-vm
spec:
  virtualMachineClassName: generic
  cpu:
    cores: 1
  memory:
    size: 1Gi
YAML
echo
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
