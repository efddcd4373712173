# Shared by the benchmarks on real nodes (bench/migrate.sh,
# bench/start_latency.sh; sourced after `set -eu`): the build to measure, a
# scratch directory that goes on exit with what ran in it, and the figures'
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

# bench_scratch: T, a fresh directory.  On exit (also on INT and TERM) the
# processes of bench_started end, the last started first, the nodes of
# cluster.sh in $T/cl go down, and T is removed.
BENCH_PIDS=
bench_scratch() {
    T=$(mktemp -d /tmp/vf-bench-XXXXXX)
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
    rm -rf "$T"
}

# ms: the wall clock in milliseconds, to a tenth.
ms() { date +%s%N | awk '{ printf "%.1f", $1 / 1e6 }'; }
# median: of the numbers on stdin, one a line.
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# elapsed T0 T1: T1 - T0 (both of ms).
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f\n", b - a }'; }
