# Shared by the integration tests: a private daemon on a temporary state dir
# and socket, the real CLI, and TAP output.  Source it; call vf_setup first.
set -u

: "${top_builddir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_srcdir:=$top_builddir}"
VIRTFLEETD="$top_builddir/virtfleetd"
VIRTFLEET="$top_builddir/virtfleet"

tap_n=0
tap_failed=0
ok() { tap_n=$((tap_n + 1)); echo "ok $tap_n - $*"; }
not_ok() { tap_n=$((tap_n + 1)); tap_failed=$((tap_failed + 1)); echo "not ok $tap_n - $*"; }
# check DESCRIPTION COMMAND...: one test point from a command's exit status.
check() {
    desc=$1; shift
    if "$@"; then ok "$desc"; else not_ok "$desc"; fi
}
diag() { echo "$*" | sed 's/^/# /'; }
done_testing() {
    echo "1..$tap_n"
    [ "$tap_failed" -eq 0 ]
    exit $?
}

vf_setup() {
    T=$(mktemp -d /tmp/vf-it-XXXXXX)
    mkdir -p "$T/modules"
    ln -s "$top_builddir/modules/example/.libs/example.so" "$T/modules/example.so"
    SOCK="$T/api.sock"
    CONF="$T/virtfleetd.conf"
    trap vf_teardown EXIT
}

vf_teardown() {
    vf_stop 2>/dev/null || true
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$T"
}

# write_config [MODULES_BLOCK] [EXTRA]: the daemon's config for this test.
# NODES_CONFIG, when set, replaces the default `nodes = (...);` line.
write_config() {
    nodes_line=${NODES_CONFIG:-'nodes = ( { name = "demo"; uri = "test:///default"; labels = { zone = "a"; }; } );'}
    cat > "$CONF" <<CONF
state_dir = "$T/state";
pidfile = "$T/virtfleetd.pid";
log_level = "debug";
module_dir = "$T/modules";
api = { socket = "$SOCK"; mode = "0660"; };
$nodes_line
modules = { ${1:-} };
${2:-}
CONF
}

# Start in the foreground (logs to $T/daemon.log) and wait until the API answers.
vf_start() {
    "$VIRTFLEETD" -f -c "$CONF" >>"$T/daemon.log" 2>&1 &
    DAEMON_PID=$!
    for _ in $(seq 1 100); do
        if curl -sf --unix-socket "$SOCK" http://localhost/healthz >/dev/null 2>&1; then
            return 0
        fi
        kill -0 "$DAEMON_PID" 2>/dev/null || break
        sleep 0.05
    done
    diag "daemon did not become ready:"; diag "$(tail -n 20 "$T/daemon.log")"
    return 1
}

vf_stop() {
    [ -n "${DAEMON_PID:-}" ] || return 0
    kill -TERM "$DAEMON_PID" 2>/dev/null
    wait "$DAEMON_PID" 2>/dev/null
    rc=$?
    DAEMON_PID=
    return $rc
}

vf() { "$VIRTFLEET" --socket "$SOCK" "$@"; }
api() { curl -s --unix-socket "$SOCK" "$@"; }

# wait_for SECONDS COMMAND...: poll until the command succeeds.
wait_for() {
    limit=$1; shift
    end=$(( $(date +%s) + limit ))
    while [ "$(date +%s)" -le "$end" ]; do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    return 1
}

# ---- prerequisites ----------------------------------------------------------------
# Tests are never skipped: need_* gather what is missing into $missing, and
# prerequisites_met ends the test with one failed test point naming all of it.
missing=
CLUSTER="$top_srcdir/tests/lib/cluster.sh"
FIXTURE="$top_builddir/tests/lib/http_fixture"
IMAGES_MODULE="$top_builddir/modules/images/.libs/images.so"
need_root() { [ "$(id -u)" = 0 ] || missing="$missing root (libvirtd's QEMU driver needs it)"; }
# need_tools TOOL...: each is on $PATH.
need_tools() {
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
    done
}
# need_nodes: what real libvirt nodes (cluster.sh) and the test guests need.
need_nodes() { need_root; need_tools libvirtd virsh tini unshare setsid qemu-system-x86_64 as ld; }
need_fixture() { [ -x "$FIXTURE" ] || missing="$missing $FIXTURE (make check builds it)"; }
need_images_module() {
    [ -f "$IMAGES_MODULE" ] || missing="$missing $IMAGES_MODULE (configure --enable-images)"
}
prerequisites_met() {
    [ -n "$missing" ] || return 0
    not_ok "prerequisites: missing$missing; run scripts/install-deps.sh as root"
    done_testing
}

# ---- real libvirt nodes ------------------------------------------------------------
# cluster_setup: vf_setup for a test on nodes of cluster.sh in $CL, which the
# EXIT trap brings down, after CLEANUP (a command the test may set; it runs
# first, e.g. to resume a libvirtd the test stopped).
cluster_setup() {
    vf_setup
    CL="$T/cl"
    CLEANUP=${CLEANUP:-:}
    trap 'eval "$CLEANUP"; sh "$CLUSTER" down "$CL" >/dev/null 2>&1; vf_teardown' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}
# guests_build: the test guests (tests/lib/guest) in $T/guest; KERNEL is the
# one that fills its memory.  The test ends when they do not build.
guests_build() {
    sh "$top_srcdir/tests/lib/guest/build.sh" "$T/guest" 2>"$T/guest.err" ||
        { diag "$(cat "$T/guest.err")"; fail_out "the test guests build"; }
    KERNEL="$T/guest/fill.elf"
}
# cluster_up N: nodes node-1..node-N in $CL, listed ("NAME URI" a line) in
# $T/nodes.  The test ends when they do not come up.
cluster_up() {
    sh "$CLUSTER" up "$1" "$CL" >"$T/nodes" 2>"$T/up.err" ||
        { diag "$(cat "$T/up.err")"; fail_out "cluster.sh brings up $1 nodes"; }
}
node_uri() { awk -v n="$1" '$1 == n { print $2 }' "$T/nodes"; }
# nodes_ready: the daemon lists every node of $NODES, and all are Ready.
nodes_ready() {
    [ "$(vf get nodes -o name 2>/dev/null | wc -l)" -eq "$(echo $NODES | wc -w)" ] &&
        ! vf get nodes 2>/dev/null | awk 'NR > 1 && $2 != "Ready" { bad = 1 } END { exit !bad }'
}
# defined_on NAME / running_on NAME: the nodes of $NODES whose libvirt
# defines / runs a domain of that name, one a line.
defined_on() {
    for n in $NODES; do
        virsh -q -c "$(node_uri "$n")" list --all --name 2>/dev/null | grep -qx "$1" && echo "$n"
    done
    true
}
running_on() {
    for n in $NODES; do
        virsh -q -c "$(node_uri "$n")" list --name 2>/dev/null | grep -qx "$1" && echo "$n"
    done
    true
}

# ---- the images module -------------------------------------------------------------
# images_module_config SIZE [SETTINGS]: the `modules` entry that enables the
# images module, its image store in $T/dvcr of SIZE, plus SETTINGS (libconfig).
images_module_config() {
    printf 'images = { enabled = true; version = 1; settings = {
    dvcr = { storage = { path = "%s"; size = "%s"; }; };
    %s
  }; };' "$T/dvcr" "$1" "${2:-}"
}
# images_running: the images module is Running (it starts after the API answers).
images_running() { vf modules 2>/dev/null | grep -q 'images.*Running'; }
# wait_images_running: polls for it; the test ends when it does not come.
wait_images_running() {
    wait_for 20 images_running && return 0
    diag "$(vf modules 2>&1)"
    fail_out "the images module is Running"
}
# http_fixture_start NAME ROOT [OPTION...]: tests/lib/http_fixture serving ROOT
# on a loopback port of its choice; its stderr (a line per request) goes to
# $T/NAME.log.  Waits until it listens (1 when it does not within 20 s);
# fixtures_stop ends it.
FIXTURE_PIDS=
http_fixture_start() {
    fx_name=$1 fx_root=$2
    shift 2
    "$FIXTURE" --root "$fx_root" --port-file "$T/$fx_name.port" "$@" 2>"$T/$fx_name.log" &
    FIXTURE_PIDS="$FIXTURE_PIDS $!"
    wait_for 20 test -s "$T/$fx_name.port"
}
# fixture_addr NAME: "127.0.0.1:PORT" of fixture NAME.
fixture_addr() { echo "127.0.0.1:$(cat "$T/$1.port")"; }
# fixtures_stop: ends the fixtures this test started (for its EXIT trap).
fixtures_stop() {
    for pid in $FIXTURE_PIDS; do
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    FIXTURE_PIDS=
}

# ---- reading results ---------------------------------------------------------------
# logs: what a failure shows: the end of the daemon's log (less lines matching
# LOGS_SKIP) and, on real nodes, the end of each guest's QEMU log.
LOGS_SKIP=' debug api:'
logs() {
    diag "--- daemon.log"; diag "$(grep -v "$LOGS_SKIP" "$T/daemon.log" | tail -n 30)"
    for f in "${CL:-$T/no-nodes}"/node-*/log/qemu/*.log; do
        [ -f "$f" ] || continue
        diag "--- $f"; diag "$(tail -n 4 "$f")"
    done
}
# fail_out DESCRIPTION: a failed test point, the logs, and the end of the test.
fail_out() { not_ok "$1"; logs; done_testing; }
quiet() { "$@" >/dev/null 2>&1; }
# ms: the wall clock in milliseconds.
ms() { date +%s%N | awk '{ printf "%.0f", $1 / 1e6 }'; }
# field KIND NAME JSONPATH: one field of an object ("" when there is none).
field() { vf get "$1" "$2" -o "jsonpath={$3}" 2>/dev/null; }
phase_is() { [ "$(field "$1" "$2" .status.phase)" = "$3" ]; }
# cond KIND NAME TYPE FIELD: a field of the object's condition of that type.
cond() { field "$1" "$2" ".status.conditions[?(@.type==\"$3\")].$4"; }
# daemon_alive / get_nodes: the daemon's process lives / its API answers
# (what a test of a hung node checks the daemon survives).
daemon_alive() { kill -0 "$DAEMON_PID" 2>/dev/null; }
get_nodes() { vf get nodes >/dev/null 2>&1; }
# gone KIND NAME: the object is not in the store.
gone() { ! vf get "$1" "$2" >/dev/null 2>&1; }
