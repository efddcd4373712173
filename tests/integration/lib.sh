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
