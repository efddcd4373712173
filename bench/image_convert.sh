#!/bin/sh
# Image conversion and decompression, side by side with the reference tools,
# on a 1 GiB disk of mixed data and zeros (every other MiB random, so a
# quarter of each 4 MiB group is data, the rest holes):
#  - vmdk (streamOptimized) and vdi (dynamic) to raw: `virtfleet image convert
#    -O raw` against `qemu-img convert -O raw` (target ratio <= 1.0);
#  - xz-compressed raw (one multi-block file: `xz -T2 --block-size=4MiB`)
#    to raw: `virtfleet image convert` against `xz -dc` and `xz -T0 -dc`
#    (target: no slower than xz -dc; faster on multi-block files);
#  - stored bytes on disk of the sparse raw output against its data bytes;
#  - peak RSS of each converter (GNU time's %M).
# virtfleet fsyncs what it wrote (an image is durable once reported), so every
# reference command is followed by `sync FILE` on its output to compare alike.
# Rounds alternate (ours, then theirs) so drift on the machine hits both alike;
# the figure is the median of ROUNDS (default 5) wall times.
# Usage: bench/image_convert.sh [BUILD_DIR]      ROUNDS=N  SIZE_MIB=N (default 1024)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
if [ $# -ge 1 ]; then build=$(cd "$1" && pwd)
elif [ -x "$top/build/virtfleet" ]; then build=$top/build
else build=$top; fi
ROUNDS=${ROUNDS:-5}
SIZE_MIB=${SIZE_MIB:-1024}
VF="$build/virtfleet"
[ -x "$VF" ] || { echo "no $VF: build first, or name the build dir" >&2; exit 1; }
for tool in qemu-img xz /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "image_convert: $tool is missing (scripts/install-deps.sh; time: apt-get install time)" >&2; exit 1; }
done

T=$(mktemp -d /var/tmp/vf-bench-img-XXXXXX)
trap 'rm -rf "$T"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# run OUT_FILE CMD...: wall seconds and peak RSS (KiB) of CMD, appended to OUT_FILE as "secs kib"
run() {
    out=$1; shift
    start=$(date +%s%N)
    /usr/bin/time -f %M -o "$T/rss" "$@" >/dev/null
    end=$(date +%s%N)
    echo "$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", (b - a) / 1e9 }') $(cat "$T/rss")" >>"$out"
}
figure() { awk '{ print $1 }' "$1" | median; }
peak() { awk 'BEGIN { m = 0 } $2 > m { m = $2 } END { printf "%.1f", m / 1024 }' "$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo "making a ${SIZE_MIB} MiB sample (every other MiB random) ..." >&2
raw="$T/disk.raw"
truncate -s "${SIZE_MIB}M" "$raw"
i=0
while [ "$i" -lt "$SIZE_MIB" ]; do
    dd if=/dev/urandom of="$raw" bs=1M count=1 seek="$i" conv=notrunc status=none
    i=$((i + 2))
done
qemu-img convert -f raw -O vmdk -o subformat=streamOptimized "$raw" "$T/disk.vmdk"
qemu-img convert -f raw -O vdi "$raw" "$T/disk.vdi"
xz -T2 --block-size=4MiB -1 -c "$raw" >"$T/disk.raw.xz"

compare() { # NAME: runs $OURS and $THEIRS (shell words) ROUNDS times each, alternating
    name=$1; shift
    : >"$T/ours"; : >"$T/theirs"
    r=0
    while [ "$r" -lt "$ROUNDS" ]; do
        rm -f "$T/out.ours" "$T/out.theirs"
        eval "run $T/ours $OURS"
        eval "run $T/theirs $THEIRS"
        r=$((r + 1))
    done
    cmp "$T/out.ours" "$T/out.theirs" || { echo "image_convert: $name outputs differ" >&2; exit 1; }
    o=$(figure "$T/ours"); t=$(figure "$T/theirs")
    printf '| %s | %s s | %s s | %sx | %s MiB | %s MiB |\n' "$name" "$o" "$t" "$(ratio "$o" "$t")" \
        "$(peak "$T/ours")" "$(peak "$T/theirs")"
}

echo "| conversion | virtfleet | reference | ratio | virtfleet peak RSS | reference peak RSS |"
echo "| --- | --- | --- | --- | --- | --- |"
OURS="\"$VF\" image convert -O raw \"$T/disk.vmdk\" \"$T/out.ours\""
THEIRS="sh -c 'qemu-img convert -f vmdk -O raw \"$T/disk.vmdk\" \"$T/out.theirs\" && sync \"$T/out.theirs\"'"
compare "vmdk streamOptimized -> raw vs qemu-img convert"
OURS="\"$VF\" image convert -O raw \"$T/disk.vdi\" \"$T/out.ours\""
THEIRS="sh -c 'qemu-img convert -f vdi -O raw \"$T/disk.vdi\" \"$T/out.theirs\" && sync \"$T/out.theirs\"'"
compare "vdi -> raw vs qemu-img convert"
# xz writes every byte (no holes); the comparison is of the decoding.
OURS="\"$VF\" image convert -O raw \"$T/disk.raw.xz\" \"$T/out.ours\""
THEIRS="sh -c 'xz -dc \"$T/disk.raw.xz\" >\"$T/out.theirs\" && sync \"$T/out.theirs\"'"
compare "xz (multi-block) -> raw vs xz -dc"
THEIRS="sh -c 'xz -T0 -dc \"$T/disk.raw.xz\" >\"$T/out.theirs\" && sync \"$T/out.theirs\"'"
compare "xz (multi-block) -> raw vs xz -T0 -dc"

"$VF" image convert -O raw "$T/disk.raw.xz" "$T/stored.raw"
stored=$(du -B1 "$T/stored.raw" | awk '{ print $1 }')
data=$((SIZE_MIB / 2 * 1048576))
echo
printf 'stored bytes of the sparse raw output: %s for %s bytes of data (%s of the virtual size %s)\n' \
    "$stored" "$data" "$(ratio "$stored" "$((SIZE_MIB * 1048576))")" "$((SIZE_MIB * 1048576))"
