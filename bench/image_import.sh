#!/bin/sh
# HTTP import through the daemon, side by side with the reference pipeline,
# from tests/lib/http_fixture on loopback:
#  (a) a SIZE_MIB (default 1024) MiB raw disk of mixed data and zeros (every
#      other MiB random), xz-compressed as one multi-block file (`xz -T2
#      --block-size=4MiB -1`): `virtfleet create -f` of a ClusterVirtualImage
#      until its phase is Ready, against `curl -s URL | xz -dc > FILE && sync
#      FILE` and the same with `xz -T0 -dc`; alternating rounds, medians of
#      ROUNDS (default 3) wall times and the ratios (target: no slower than
#      xz -dc, faster on multi-block files);
#  (b) the daemon's peak RSS (VmHWM of a freshly started daemon, read after
#      the import) during the import of a BIG_MIB (default 4096) MiB raw image,
#      mostly zeros with 1 MiB of random data every 64 MiB (target: under
#      64 MiB, independent of the image size), and the same figure after the
#      xz imports of (a);
#  (c) the stored bytes on disk (du -B1) of each imported image against its
#      data bytes: holes are kept;
#  (d) the xz file of (a) as the disk file of a container image (one tar+gzip
#      layer, tests/lib/oci_image.sh) pushed with skopeo to a local
#      docker-registry (tests/lib/registry.sh): `virtfleet create -f` of a
#      ContainerImage until Ready (the layer streams through gzip, tar and xz
#      in one pass, no scratch file), against `skopeo copy docker://... dir:X
#      && tar -xzf LAYER && xz -dc FILE > OUT && sync OUT`, alternating rounds,
#      and a fresh daemon's peak RSS over one such pull.
# The daemon fsyncs an image before it reports Ready, hence `sync FILE` in the
# reference commands.  Not part of `make check`.
# Usage: bench/image_import.sh [BUILD_DIR]      ROUNDS=N  SIZE_MIB=N  BIG_MIB=N
#        PARTS="http rss registry" (any of them; default all)
set -eu
. "$(dirname "$0")/lib.sh"
bench_build "$@"
ROUNDS=${ROUNDS:-3}
SIZE_MIB=${SIZE_MIB:-1024}
BIG_MIB=${BIG_MIB:-4096}
PARTS=${PARTS:-http rss registry}
part() { case " $PARTS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
VF="$build/virtfleet"
FIXTURE="$build/tests/lib/http_fixture"
[ -x "$VF" ] && [ -x "$build/virtfleetd" ] || { echo "image_import: no $build/virtfleetd or $VF: build first, or name the build dir" >&2; exit 1; }
[ -x "$FIXTURE" ] || make -s -C "$build" tests/lib/http_fixture >/dev/null
tools="curl xz du"
! part registry || tools="$tools skopeo docker-registry tar gzip"
for tool in $tools; do
    command -v "$tool" >/dev/null || { echo "image_import: $tool is missing (scripts/install-deps.sh)" >&2; exit 1; }
done

# Disk-backed (the image store and the reference outputs are real files).
bench_scratch /var/tmp/vf-bench-import
bench_module images

# Of seconds to the millisecond (lib.sh's median is of milliseconds, to a tenth).
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
ns() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", (b - a) / 1e9 }'; }
vf() { "$VF" --socket "$T/api.sock" "$@"; }

# ---- samples ----------------------------------------------------------------------------
mkdir -p "$T/www"
echo "making a ${SIZE_MIB} MiB sample (every other MiB random) and its xz ..." >&2
raw="$T/www/mixed.raw"
truncate -s "${SIZE_MIB}M" "$raw"
i=0
while [ "$i" -lt "$SIZE_MIB" ]; do
    dd if=/dev/urandom of="$raw" bs=1M count=1 seek="$i" conv=notrunc status=none
    i=$((i + 2))
done
xz -T2 --block-size=4MiB -1 -c "$raw" >"$T/www/mixed.raw.xz"
mixed_data=$(( (SIZE_MIB + 1) / 2 * 1048576 ))
if part rss; then
echo "making a ${BIG_MIB} MiB sample (1 MiB random every 64 MiB, zeros between) ..." >&2
big="$T/www/big.raw"
truncate -s "${BIG_MIB}M" "$big"
i=0 big_data=0
while [ "$i" -lt "$BIG_MIB" ]; do
    dd if=/dev/urandom of="$big" bs=1M count=1 seek="$i" conv=notrunc status=none
    big_data=$((big_data + 1048576))
    i=$((i + 64))
done
fi

# ---- the server and the daemon ----------------------------------------------------------------
"$FIXTURE" --root "$T/www" --port-file "$T/port" 2>"$T/fixture.log" &
bench_started $!
bench_wait 10 "http_fixture did not start" test -s "$T/port"
H="http://127.0.0.1:$(cat "$T/port")"

REG=
if part registry; then
    echo "pushing it as a container image (one tar+gzip layer) to a local docker-registry ..." >&2
    REG=$(sh "$top/tests/lib/registry.sh" up "$T/registry")
    sh "$top/tests/lib/oci_image.sh" make_disk_image "$T/oci" "$T/www/mixed.raw.xz" v1 >/dev/null
    skopeo copy -q --dest-tls-verify=false "oci:$T/oci:v1" "docker://$REG/bench/mixed:v1"
    rm -rf "$T/oci"
fi

images=$(cat <<MODULE
images = { enabled = true; version = 1; settings = {
    dvcr = { storage = { path = "$T/dvcr"; size = "$((BIG_MIB + SIZE_MIB + 1024))Mi"; }; };
    virtualImages = { allowedStorageClassNames = [ "local" ]; defaultStorageClassName = "local"; };
    upload = { listen = "127.0.0.1:0"; };
    import = { insecureRegistries = [ "${REG:-none.invalid}" ]; };
  }; };
MODULE
)
bench_config '{ name = "demo"; uri = "test:///default"; }' "$images" \
    'virtualization = { virtualMachineCIDRs = [ "10.77.9.0/28" ]; };'
status_kib() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$daemon_pid/status"; }

# import NAME URL: creates the image and waits for Ready; prints the wall seconds.
# import_reg NAME IMAGE: the same from a container image.
import() {
    t0=$(ns)
    printf 'apiVersion: virtualization.deckhouse.io/v1alpha2\nkind: ClusterVirtualImage\nmetadata:\n  name: %s\nspec:\n  dataSource:\n    type: HTTP\n    http:\n      url: %s\n' \
        "$1" "$2" | vf create -f - >/dev/null
    wait_ready "$1"
}
import_reg() {
    t0=$(ns)
    printf 'apiVersion: virtualization.deckhouse.io/v1alpha2\nkind: ClusterVirtualImage\nmetadata:\n  name: %s\nspec:\n  dataSource:\n    type: ContainerImage\n    containerImage:\n      image: %s\n' \
        "$1" "$2" | vf create -f - >/dev/null
    wait_ready "$1"
}
wait_ready() {
    while :; do
        p=$(vf get cvi "$1" -o 'jsonpath={.status.phase}' 2>/dev/null || true)
        [ "$p" = Ready ] && break
        [ "$p" = Failed ] && { echo "image_import: $1 Failed: $(vf get cvi "$1" -o 'jsonpath={.status.conditions[0].message}')" >&2; exit 1; }
        sleep 0.05
    done
    secs "$t0" "$(ns)"
}
# forget NAME: deletes the image and waits until it (and its file) is gone.
forget() {
    vf delete cvi "$1" >/dev/null
    while vf get cvi "$1" >/dev/null 2>&1; do sleep 0.1; done
}
stored_of() { du -B1 "$(vf get cvi "$1" -o 'jsonpath={.status.target.path}')" | awk '{ print $1 }'; }
# reference CMD: wall seconds of a shell pipeline
reference() {
    t0=$(ns)
    sh -c "$1"
    secs "$t0" "$(ns)"
}

bench_daemon_start images
idle=$(status_kib VmRSS)

# ---- (a) xz over HTTP, alternating rounds ------------------------------------------------------
if part http; then
: >"$T/ours"; : >"$T/xz1"; : >"$T/xz0"
r=0
while [ "$r" -lt "$ROUNDS" ]; do
    import "mixed-$r" "$H/files/mixed.raw.xz" >>"$T/ours"
    if [ "$r" -eq 0 ]; then
        cmp -s "$(vf get cvi mixed-0 -o 'jsonpath={.status.target.path}')" "$raw" ||
            { echo "image_import: the imported image differs from the sample" >&2; exit 1; }
        mixed_stored=$(stored_of mixed-0)
    fi
    forget "mixed-$r"
    reference "curl -s '$H/files/mixed.raw.xz' | xz -dc >'$T/out.raw' && sync '$T/out.raw'" >>"$T/xz1"
    rm -f "$T/out.raw"
    reference "curl -s '$H/files/mixed.raw.xz' | xz -T0 -dc >'$T/out.raw' && sync '$T/out.raw'" >>"$T/xz0"
    rm -f "$T/out.raw"
    r=$((r + 1))
done
xz_hwm=$(status_kib VmHWM)
fi
bench_daemon_stop

# ---- (b) peak RSS of a fresh daemon over a big raw import ---------------------------------------
if part rss; then
bench_daemon_start images
big_s=$(import big "$H/files/big.raw")
big_hwm=$(status_kib VmHWM)
big_stored=$(stored_of big)
forget big
bench_daemon_stop
fi

# ---- (d) the xz file in a container image, from the registry, alternating rounds ---------------
if part registry; then
# The reference: skopeo's dir: transport stores each blob as a file named by
# its digest; the layer is the biggest.
cat >"$T/ref_pull.sh" <<REF
set -e
rm -rf "$T/refdir" "$T/refx"
mkdir "$T/refx"
skopeo copy -q --src-tls-verify=false docker://$REG/bench/mixed:v1 dir:"$T/refdir"
tar -xzf "$T/refdir/\$(ls -S "$T/refdir" | head -n1)" -C "$T/refx"
xz -dc "$T/refx/disk/mixed.raw.xz" >"$T/out.raw"
sync "$T/out.raw"
REF
bench_daemon_start images
reg_s=$(import_reg reg-first "$REG/bench/mixed:v1")
reg_hwm=$(status_kib VmHWM)
cmp -s "$(vf get cvi reg-first -o 'jsonpath={.status.target.path}')" "$raw" ||
    { echo "image_import: the image pulled from the registry differs from the sample" >&2; exit 1; }
forget reg-first
: >"$T/reg_ours"; : >"$T/reg_ref"
r=0
while [ "$r" -lt "$ROUNDS" ]; do
    import_reg "reg-$r" "$REG/bench/mixed:v1" >>"$T/reg_ours"
    forget "reg-$r"
    reference "sh '$T/ref_pull.sh'" >>"$T/reg_ref"
    rm -rf "$T/out.raw" "$T/refdir" "$T/refx"
    r=$((r + 1))
done
bench_daemon_stop
fi

xz_mib=$(awk -v s="$(stat -c %s "$T/www/mixed.raw.xz")" 'BEGIN { printf "%.0f", s / 1048576 }')
cpus=$(nproc)
echo "# image import from loopback (${cpus} CPUs; medians of $ROUNDS alternating rounds)"
echo
echo "| measure | virtfleet | reference | ratio |"
echo "| --- | --- | --- | --- |"
if part http; then
o=$(median <"$T/ours"); a=$(median <"$T/xz1"); b=$(median <"$T/xz0")
printf '| HTTP: %s MiB xz (%s MiB, 4 MiB blocks) to Ready vs curl \\| xz -dc + sync | %s s | %s s | %sx |\n' \
    "$SIZE_MIB" "$xz_mib" "$o" "$a" "$(ratio "$o" "$a")"
printf '| the same vs curl \\| xz -T0 -dc + sync | %s s | %s s | %sx |\n' "$o" "$b" "$(ratio "$o" "$b")"
printf '| daemon peak RSS (VmHWM) over the xz imports | %s MiB | target < 64 MiB | idle RSS %s MiB |\n' \
    "$(mib "$xz_hwm")" "$(mib "$idle")"
fi
if part rss; then
printf '| daemon peak RSS (VmHWM), fresh daemon, %s MiB raw import (%s s) | %s MiB | target < 64 MiB | |\n' \
    "$BIG_MIB" "$big_s" "$(mib "$big_hwm")"
fi
if part http; then
printf '| stored bytes (du -B1), %s MiB mixed image | %s | data %s | %s |\n' \
    "$SIZE_MIB" "$mixed_stored" "$mixed_data" "$(ratio "$mixed_stored" "$mixed_data")"
fi
if part rss; then
printf '| stored bytes (du -B1), %s MiB mostly-zero image | %s | data %s | %s |\n' \
    "$BIG_MIB" "$big_stored" "$big_data" "$(ratio "$big_stored" "$big_data")"
fi
if part registry; then
ro=$(median <"$T/reg_ours"); ra=$(median <"$T/reg_ref")
printf '| registry: the same xz in a tar+gzip layer to Ready vs skopeo copy dir: && tar -xzf && xz -dc + sync | %s s | %s s | %sx |\n' \
    "$ro" "$ra" "$(ratio "$ro" "$ra")"
printf '| daemon peak RSS (VmHWM), fresh daemon, over the first registry pull (%s s) | %s MiB | target < 64 MiB | |\n' \
    "$reg_s" "$(mib "$reg_hwm")"
fi
echo
! part http || echo "HTTP rounds (s): virtfleet $(tr '\n' ' ' <"$T/ours")/ xz -dc $(tr '\n' ' ' <"$T/xz1")/ xz -T0 -dc $(tr '\n' ' ' <"$T/xz0")"
! part registry || echo "registry rounds (s): virtfleet $(tr '\n' ' ' <"$T/reg_ours")/ reference $(tr '\n' ' ' <"$T/reg_ref")"
