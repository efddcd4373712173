#!/bin/sh
# Build virtfleet and run every test: unit and integration tests (make check),
# the same again under AddressSanitizer + UBSan, the packaging check (make
# distcheck, which also builds a module out of tree against the installed SDK)
# and each fuzz target for a bounded time.  Exits non-zero on any failure; on
# CI (CI=true) a skipped test is a failure too.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
jobs=$(nproc 2>/dev/null || echo 2)
FUZZ_SECONDS=${FUZZ_SECONDS:-30}

sh scripts/install-deps.sh
[ -x configure ] || ./autogen.sh

# Sum the TAP results of one build tree and fail on failures (and on skips in CI).
total_pass=0 total_fail=0
count() { find "$1" -path "$1/virtfleet-*" -prune -o -name '*.trs' -exec grep -h "^:test-result: $2" {} + | wc -l; }
summarize() {
    dir=$1 label=$2
    pass=$(count "$dir" PASS)
    fail=$(count "$dir" '\(FAIL\|ERROR\|XPASS\)')
    skip=$(count "$dir" SKIP)
    total_pass=$((total_pass + pass)) total_fail=$((total_fail + fail))
    echo "$label: $pass passed, $fail failed, $skip skipped"
    [ "$fail" -eq 0 ] || return 1
    if [ "${CI:-}" = true ] && [ "$skip" -ne 0 ]; then
        echo "$label: tests were skipped; CI runs every test" >&2
        return 1
    fi
    [ "$pass" -gt 0 ]
}

run_check() {
    dir=$1; shift
    mkdir -p "$dir"
    (cd "$dir" && { [ -f Makefile ] || "$top/configure" -q "$@"; } && make -s -j"$jobs" &&
        make -s -j"$jobs" check) || { cat "$dir"/test-suite.log 2>/dev/null | tail -n 80; return 1; }
}

status=0
run_check build || status=1
summarize build "make check" || status=1

run_check build-sanitizers --enable-sanitizers || status=1
summarize build-sanitizers "make check (ASan+UBSan)" || status=1

(cd build && make -s distcheck) || status=1

mkdir -p build-fuzz
(cd build-fuzz && { [ -f Makefile ] || "$top/configure" -q CC=clang --enable-fuzzing; } &&
    make -s -j"$jobs" tests/fuzz/fuzz_config tests/fuzz/fuzz_api_body tests/fuzz/fuzz_image_inspect \
        tests/fuzz/fuzz_registry_manifest tests/fuzz/fuzz_disk_tar &&
    top_builddir=. sh "$top/tests/fuzz/run.sh" "$FUZZ_SECONDS") || status=1

# A failed build, distcheck or fuzz run counts as one failure more.
[ "$status" -eq 0 ] || [ "$total_fail" -gt 0 ] || total_fail=1
echo "$total_pass passed, $total_fail failed"
exit "$status"
