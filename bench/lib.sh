# Shared by the benchmarks that run the daemon (bench/daemon.sh,
# image_import.sh, images_scale.sh, migrate.sh, start_latency.sh; sourced after
# `set -eu`): the build to measure, a scratch directory that goes on exit with
# what ran in it, the daemon's config and its start, and the figures'
# arithmetic in milliseconds.
top=$(cd "$(dirname "$0")/.." && pwd)
CLUSTER="$top/tests/lib/cluster.sh"

# bench_build [BUILD_DIR]: sets build, the tree whose binaries are measured:
# BUILD_DIR, else $top/build when it holds virtfleetd, else $top (in-tree).
bench_build() {
    if [ $# -ge 1 ]; then build=$(cd "$1" && pwd)
    elif [ -x "$top/build/virtfleetd" ]; then build=$top/build
    else build=$top; fi
}

# bench_scratch [PREFIX]: T, a fresh directory PREFIX-XXXXXX (default
# /tmp/vf-bench; a benchmark whose files must be on disk names one under
# /var/tmp).  On exit (also on INT and TERM) the processes of bench_started
# end, the last started first, the nodes of cluster.sh in $T/cl and the
# registry of tests/lib/registry.sh in $T/registry go down, and T is removed.
BENCH_PIDS=
bench_scratch() {
    T=$(mktemp -d "${1:-/tmp/vf-bench}-XXXXXX")
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}
# bench_started PID: a process to end on exit (a daemon, a watch).
bench_started() { BENCH_PIDS="$1 $BENCH_PIDS"; }
bench_cleanup() {
    for p in $BENCH_PIDS; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    sh "$CLUSTER" down "$T/cl" >/dev/null 2>&1 || true
    sh "$top/tests/lib/registry.sh" down "$T/registry" >/dev/null 2>&1 || true
    rm -rf "$T"
}
# bench_stopped PID: a process of bench_started that has ended already (its
# number may be another process's by the exit).
bench_stopped() {
    _b_rest=
    for _b_p in $BENCH_PIDS; do [ "$_b_p" = "$1" ] || _b_rest="$_b_rest $_b_p"; done
    BENCH_PIDS=$_b_rest
}

# ---- the daemon ----------------------------------------------------------------------
# bench_module NAME...: links each built module NAME into $T/modules, the
# config's module_dir; ends the benchmark when one is not built.
bench_module() {
    mkdir -p "$T/modules"
    for _b_m in "$@"; do
        _b_so="$build/modules/$_b_m/.libs/$_b_m.so"
        [ -f "$_b_so" ] || bench_fail "no $_b_so (build it, or configure --enable-$_b_m)"
        ln -sf "$_b_so" "$T/modules/$_b_m.so"
    done
}
# bench_config NODES MODULES [EXTRA]: the daemon's config, $T/d.conf: its
# state, pidfile and API socket ($T/api.sock) in T, warnings only, modules
# from $T/modules; NODES are the entries of `nodes = ( ... )`, MODULES those
# of `modules = { ... }`, EXTRA further top-level settings.
bench_config() {
    mkdir -p "$T/modules"
    cat > "$T/d.conf" <<CONF
state_dir = "$T/state";
pidfile = "$T/d.pid";
log_level = "warn";
module_dir = "$T/modules";
api = { socket = "$T/api.sock"; };
nodes = ( $1 );
modules = { $2 };
${3:-}
CONF
}
# bench_daemon_start [MODULE...]: starts $build/virtfleetd on $T/d.conf (its
# output appended to $T/daemon.log) as daemon_pid, and returns once its API
# answers (polled every 5 ms: daemon.sh times this) and each MODULE is
# Running.  Ends the benchmark when that takes over 60 s or the daemon exits.
bench_daemon_start() {
    "$build/virtfleetd" -f -c "$T/d.conf" >>"$T/daemon.log" 2>&1 &
    daemon_pid=$!
    bench_started "$daemon_pid"
    bench_poll 0.005 60 "the daemon's API did not answer" \
        curl -sf --unix-socket "$T/api.sock" http://localhost/healthz
    for _b_m in "$@"; do
        bench_wait 60 "module $_b_m is not Running" bench_module_running "$_b_m"
    done
}
# bench_module_running NAME: the daemon lists module NAME as Running.
bench_module_running() {
    "$build/virtfleet" --socket "$T/api.sock" modules 2>/dev/null | grep -q "^$1 .*Running"
}
# bench_daemon_stop: ends the daemon of bench_daemon_start.
bench_daemon_stop() {
    kill "$daemon_pid"
    wait "$daemon_pid" || true
    bench_stopped "$daemon_pid"
    daemon_pid=
}

# bench_wait SECONDS WHAT COMMAND...: polls COMMAND (quiet) every 50 ms until
# it succeeds; ends the benchmark, saying WHAT with the tail of the daemon's
# log, after SECONDS or once the daemon of bench_daemon_start has exited.
# bench_poll INTERVAL SECONDS WHAT COMMAND...: the same every INTERVAL seconds.
bench_wait() { bench_poll 0.05 "$@"; }
bench_poll() {
    _b_every=$1 _b_secs=$2 _b_what=$3
    _b_end=$(( $(date +%s) + _b_secs ))
    shift 3
    until "$@" >/dev/null 2>&1; do
        { [ -z "${daemon_pid:-}" ] || kill -0 "$daemon_pid" 2>/dev/null; } ||
            bench_fail "$_b_what (the daemon exited)"
        [ "$(date +%s)" -lt "$_b_end" ] || bench_fail "$_b_what (after $_b_secs s)"
        sleep "$_b_every"
    done
}
# bench_fail MESSAGE: ends the benchmark with MESSAGE and the tail of the
# daemon's log, if one ran.
bench_fail() {
    echo "$(basename "$0" .sh): $1" >&2
    [ ! -s "${T:-}/daemon.log" ] || { echo "the daemon's log ends:" >&2; tail -n 20 "$T/daemon.log" >&2; }
    exit 1
}

# ms: the wall clock in milliseconds, to a tenth.
ms() { date +%s%N | awk '{ printf "%.1f", $1 / 1e6 }'; }
# median: of the numbers on stdin, one a line.
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# elapsed T0 T1: T1 - T0 (both of ms).
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f\n", b - a }'; }
