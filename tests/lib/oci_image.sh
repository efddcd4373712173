#!/bin/sh
# OCI image layouts "FROM scratch" holding a disk file, made with tar, gzip
# and sha256sum only (no container engine), for the registry import tests.
#
#   oci_image.sh make_disk_image LAYOUT DISKFILE TAG [ARCH]
#           add to the OCI layout LAYOUT (created when missing) an image TAG
#           of one tar+gzip layer holding disk/<basename of DISKFILE>, for
#           linux/ARCH (amd64)
#   oci_image.sh add_layer_image LAYOUT LAYER TAG [ARCH]
#           the same with a ready-made layer (a tar, gzip-compressed or not),
#           e.g. a hostile one
#   oci_image.sh add_layers_image LAYOUT TAG ARCH LAYER [LAYER ...]
#           an image of several layers, in that order
#   oci_image.sh make_index LAYOUT TAG TAG1 [TAG2 ...]
#           add TAG: an image index listing the manifests of TAG1, TAG2...
#           with their platforms (push it with `skopeo copy --all`)
#   oci_image.sh digest LAYOUT TAG
#           print the manifest digest (sha256:<hex>) of TAG
#
# Needs a shell with "local" (dash, bash).  The file may also be sourced (". oci_image.sh") for these functions.
# LAYOUT/refs.txt lists the tags ("TAG MEDIATYPE DIGEST SIZE ARCH" lines)
# index.json is rebuilt from.  Output is deterministic: the same inputs give
# the same digests.

oci_die() { echo "oci_image.sh: $*" >&2; exit 1; }

# oci_blob LAYOUT FILE: moves FILE into the layout's blobs; prints "HEX SIZE".
oci_blob() {
    local hex size
    hex=$(sha256sum "$2" | cut -d' ' -f1) || return 1
    size=$(stat -c %s "$2") || return 1
    mkdir -p "$1/blobs/sha256"
    mv -f "$2" "$1/blobs/sha256/$hex" || return 1
    echo "$hex $size"
}

oci_init() {
    mkdir -p "$1/blobs/sha256" || return 1
    [ -f "$1/oci-layout" ] || printf '{"imageLayoutVersion":"1.0.0"}' >"$1/oci-layout"
    [ -f "$1/refs.txt" ] || : >"$1/refs.txt"
    oci_write_index "$1"
}

# oci_write_index LAYOUT: index.json from refs.txt.
oci_write_index() {
    local sep tag mt digest size arch plat
    {
        printf '{"schemaVersion":2,"manifests":['
        sep=""
        while read -r tag mt digest size arch; do
            [ -n "$tag" ] || continue
            if [ "$arch" = "-" ]; then
                plat=""
            else
                plat=",\"platform\":{\"architecture\":\"$arch\",\"os\":\"linux\"}"
            fi
            printf '%s{"mediaType":"%s","digest":"%s","size":%s%s,"annotations":{"org.opencontainers.image.ref.name":"%s"}}' \
                "$sep" "$mt" "$digest" "$size" "$plat" "$tag"
            sep=","
        done <"$1/refs.txt"
        printf ']}'
    } >"$1/index.json.tmp" && mv -f "$1/index.json.tmp" "$1/index.json"
}

# oci_set_ref LAYOUT TAG MEDIATYPE DIGEST SIZE ARCH: (re)points TAG.
oci_set_ref() {
    grep -v "^$2 " "$1/refs.txt" >"$1/refs.txt.tmp" || true
    echo "$2 $3 $4 $5 $6" >>"$1/refs.txt.tmp"
    mv -f "$1/refs.txt.tmp" "$1/refs.txt"
    oci_write_index "$1"
}

add_layer_image() {
    add_layers_image "$1" "$3" "${4:-amd64}" "$2"
}

add_layers_image() {
    local layout tag arch tmp layer lmt diff lhex lsize chex csize layers diffs sep
    layout=$1 tag=$2 arch=$3
    shift 3
    [ $# -gt 0 ] || oci_die "add_layers_image: no layers"
    oci_init "$layout" || return 1
    tmp=$(mktemp -d) || return 1
    layers="" diffs="" sep=""
    for layer in "$@"; do
        [ -f "$layer" ] || oci_die "no layer file $layer"
        if gzip -t "$layer" 2>/dev/null; then
            lmt=application/vnd.oci.image.layer.v1.tar+gzip
            diff=$(gzip -dc "$layer" | sha256sum | cut -d' ' -f1)
        else
            lmt=application/vnd.oci.image.layer.v1.tar
            diff=$(sha256sum "$layer" | cut -d' ' -f1)
        fi
        cp "$layer" "$tmp/layer"
        set -- $(oci_blob "$layout" "$tmp/layer")
        lhex=$1 lsize=$2
        layers="$layers$sep{\"mediaType\":\"$lmt\",\"digest\":\"sha256:$lhex\",\"size\":$lsize}"
        diffs="$diffs$sep\"sha256:$diff\""
        sep=","
    done
    printf '{"architecture":"%s","os":"linux","rootfs":{"type":"layers","diff_ids":[%s]}}' \
        "$arch" "$diffs" >"$tmp/config"
    set -- $(oci_blob "$layout" "$tmp/config")
    chex=$1 csize=$2
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' \
        "$chex" "$csize" "$layers" >"$tmp/manifest"
    set -- $(oci_blob "$layout" "$tmp/manifest")
    oci_set_ref "$layout" "$tag" application/vnd.oci.image.manifest.v1+json "sha256:$1" "$2" "$arch"
    rm -rf "$tmp"
}

make_disk_image() {
    local layout disk tag arch tmp rc
    layout=$1 disk=$2 tag=$3 arch=${4:-amd64}
    [ -f "$disk" ] || oci_die "no disk file $disk"
    tmp=$(mktemp -d) || return 1
    mkdir "$tmp/root" "$tmp/root/disk"
    cp "$disk" "$tmp/root/disk/$(basename "$disk")"
    tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --format=posix \
        --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
        -C "$tmp/root" -cf "$tmp/layer.tar" disk || { rm -rf "$tmp"; return 1; }
    gzip -n -1 "$tmp/layer.tar" || { rm -rf "$tmp"; return 1; }
    add_layer_image "$layout" "$tmp/layer.tar.gz" "$tag" "$arch"
    rc=$?
    rm -rf "$tmp"
    return $rc
}

make_index() {
    local layout tag tmp sep t line
    layout=$1 tag=$2
    shift 2
    [ $# -gt 0 ] || oci_die "make_index: no tags to list"
    tmp=$(mktemp -d) || return 1
    {
        printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":['
        sep=""
        for t in "$@"; do
            line=$(grep "^$t " "$layout/refs.txt") || oci_die "make_index: no tag $t in $layout"
            set -- $line
            printf '%s{"mediaType":"%s","digest":"%s","size":%s,"platform":{"architecture":"%s","os":"linux"}}' \
                "$sep" "$2" "$3" "$4" "$5"
            sep=","
        done
        printf ']}'
    } >"$tmp/index"
    set -- $(oci_blob "$layout" "$tmp/index")
    oci_set_ref "$layout" "$tag" application/vnd.oci.image.index.v1+json "sha256:$1" "$2" -
    rm -rf "$tmp"
}

digest() {
    line=$(grep "^$2 " "$1/refs.txt") || oci_die "no tag $2 in $1"
    set -- $line
    echo "$3"
}

case ${0##*/} in
    oci_image.sh)
        [ $# -ge 1 ] || { sed -n '/^#   oci_image.sh/,/^#$/s/^# \{0,1\}//p' "$0" >&2; exit 2; }
        set -e
        cmd=$1
        shift
        case $cmd in
            make_disk_image | add_layer_image | add_layers_image | make_index | digest) "$cmd" "$@" ;;
            *) oci_die "unknown command $cmd" ;;
        esac
        ;;
esac
