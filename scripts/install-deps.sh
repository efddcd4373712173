#!/bin/sh
# Install what building and testing virtfleet needs on Debian 12 (run as root).
# One list, used by the quick start, the tests and CI alike.
set -eu

BUILD="autoconf automake libtool pkg-config make gcc clang libltdl-dev libvirt-dev
  libconfig-dev libjson-c-dev libcurl4-openssl-dev libsqlite3-dev libmicrohttpd-dev
  libyaml-dev check zlib1g-dev liblzma-dev libzstd-dev libarchive-dev
  libssl-dev libxml2-dev"
# The test driver lives in libvirt0 (pulled in by libvirt-dev); valgrind and curl
# are used by the tests, sqlite3 by the crash-safety check.  The real nodes of
# tests/lib/cluster.sh need libvirtd with its QEMU driver, virsh, QEMU, tini (a
# subreaper for QEMU), util-linux/mount (unshare, setsid, bind mounts) and
# binutils (the test guests).  qemu-utils (qemu-img), xorriso, xz-utils and gzip
# only make sample images for the image format tests; the product never runs
# them.  docker-registry and skopeo are the real container registry (and its
# client) the registry import tests run on loopback; openssl makes the
# certificates of the HTTPS fetch tests.  Never
# libvirt-daemon-system: it replaces init.
TEST="valgrind curl sqlite3 procps
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 tini
  util-linux mount binutils qemu-utils xorriso xz-utils gzip
  docker-registry skopeo openssl"

missing=""
for p in $BUILD $TEST; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "install-deps: everything is installed"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing packages:$missing; run this script as root" >&2
    exit 1
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
