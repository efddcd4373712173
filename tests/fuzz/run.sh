#!/bin/sh
# Run every built libFuzzer target in tests/fuzz for a bounded time each.
#
#   tests/fuzz/run.sh [SECONDS]      (default 30 per target)
#
# Targets are built by `./configure CC=clang --enable-fuzzing && make`.  Each one
# starts from its seed corpus tests/fuzz/corpus/<target>/, copied to a temporary
# directory so the checked-in seeds never change.  A crash, leak, timeout or
# sanitizer report fails the run; its log and reproducer stay in the temporary
# directory, which is printed.  Exit: 0 all clean, 1 a target failed, 2 usage,
# 77 nothing built (automake's "skipped").
set -u

secs=${1:-30}
case $secs in
    '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac
[ "$secs" -gt 0 ] || { echo "usage: $0 [SECONDS]: SECONDS must be > 0" >&2; exit 2; }

srcdir=$(cd "$(dirname "$0")" && pwd)
# Out-of-tree builds keep the binaries under the build directory.
if [ -n "${top_builddir:-}" ]; then
    bindir=$(cd "$top_builddir/tests/fuzz" && pwd)
else
    bindir=$srcdir
fi

failed=0
ran=0
for bin in "$bindir"/fuzz_*; do
    [ -f "$bin" ] && [ -x "$bin" ] || continue
    name=$(basename "$bin")
    work=$(mktemp -d "${TMPDIR:-/tmp}/$name.XXXXXX") || exit 1
    mkdir "$work/corpus" "$work/artifacts"
    if [ -d "$srcdir/corpus/$name" ]; then
        cp "$srcdir/corpus/$name"/* "$work/corpus/" 2>/dev/null
    else
        echo "$name: no seed corpus in $srcdir/corpus/$name; starting empty" >&2
    fi
    ran=$((ran + 1))
    # -timeout: one input taking longer is a hang; -rss_limit_mb: bounded memory
    # is part of what the parsers promise.
    if "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$work/artifacts/" "$work/corpus" >"$work/log" 2>&1; then
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log")
        echo "ok $name: ${execs:-?} inputs in ${secs}s"
        rm -rf "$work"
    else
        echo "FAIL $name: see $work/log and $work/artifacts/" >&2
        tail -n 30 "$work/log" >&2
        failed=1
    fi
done

if [ "$ran" -eq 0 ]; then
    echo "no fuzz targets built in $bindir: ./configure CC=clang --enable-fuzzing && make" >&2
    exit 77
fi
exit "$failed"
