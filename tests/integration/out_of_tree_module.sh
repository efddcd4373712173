#!/bin/sh
# Run by `make installcheck` (and so by `make distcheck`): build a module the
# way a third party does, with nothing but the installed header and .pc file,
# then load it with the installed daemon.
# Usage: out_of_tree_module.sh PREFIX VIRTFLEETD PKGCONFIGDIR HELLO.C
set -eu
prefix=$1 virtfleetd=$2 pcdir=$3 src=$4
T=$(mktemp -d /tmp/vf-oot-XXXXXX)
pid=
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
    rm -rf "$T"
}
trap cleanup EXIT

export PKG_CONFIG_PATH="$pcdir"
cflags=$(pkg-config --cflags virtfleet-module)
libs=$(pkg-config --libs virtfleet-module)
major=$(pkg-config --variable=abi_major virtfleet-module)
moduledir=$(pkg-config --variable=moduledir virtfleet-module)
echo "out-of-tree: cflags '$cflags', ABI major $major, moduledir $moduledir"
case "$moduledir" in "$prefix"/*) ;; *) echo "moduledir $moduledir is outside $prefix" >&2; exit 1;; esac

mkdir "$T/modules"
${CC:-cc} -Wall -Wextra -Werror -shared -o "$T/modules/hello.so" "$src" $cflags $libs

# The libvirt helper header is installed and compiles on its own.
cat > "$T/own.c" <<'C'
#include <virtfleet/node_connection.h>
virConnectPtr own(virConnectPtr shared, char *err, size_t len);
virConnectPtr own(virConnectPtr shared, char *err, size_t len)
{
    return vf_node_connection_open_own(shared, err, len);
}
C
${CC:-cc} -Wall -Wextra -Werror -c -o "$T/own.o" "$T/own.c" $cflags $(pkg-config --cflags libvirt)

cat > "$T/d.conf" <<CONF
state_dir = "$T/state";
pidfile = "$T/d.pid";
module_dir = "$T/modules";
api = { socket = "$T/api.sock"; };
modules = { hello = { enabled = true; version = 1; settings = { who = "distcheck"; }; }; };
CONF
"$virtfleetd" --check-config -c "$T/d.conf"
VIRTFLEET_MODULE_DIR="$T/modules" "$virtfleetd" --list-modules | grep -q "^hello 0.1.0"
"$virtfleetd" -f -c "$T/d.conf" > "$T/log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
    grep -q "ready" "$T/log" && break
    sleep 0.05
done
grep -q 'hello: hello, distcheck' "$T/log" || { cat "$T/log"; exit 1; }
grep -q 'module hello 0.1.0 started' "$T/log" || { cat "$T/log"; exit 1; }
kill "$pid"; wait "$pid"
pid=
echo "out-of-tree module built against the installed SDK and loaded"
