#!/bin/sh
# Builds the test guests: OUT_DIR/fill.elf and OUT_DIR/dirty.elf, multiboot
# (v1) ELF32 images that boot with libvirt's <os><kernel> and no disk.
# Usage: tests/lib/guest/build.sh OUT_DIR    (needs binutils: as, ld)
set -eu
[ $# -eq 1 ] || { echo "usage: $0 OUT_DIR" >&2; exit 2; }
src=$(cd "$(dirname "$0")" && pwd)
out=$1
for tool in as ld; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "guest/build.sh: '$tool' not found: install binutils (scripts/install-deps.sh)" >&2
        exit 1
    }
done
mkdir -p "$out"
out=$(cd "$out" && pwd)
for g in fill dirty; do
    as --32 -I "$src" -o "$out/$g.o" "$src/$g.S"
    # -n: one segment starting at the load address (no headers below 1 MiB).
    ld -m elf_i386 -Ttext 0x100000 -e _start -n -z noexecstack -o "$out/$g.elf" "$out/$g.o"
    rm -f "$out/$g.o"
    # The loader only looks at the first 8 KiB, at 4-byte alignment.
    off=$(od -A d -t x4 -w4 -v -N 8192 "$out/$g.elf" | awk '$2 == "1badb002" { print $1 + 0; exit }')
    if [ -z "$off" ] || [ $((off % 4)) -ne 0 ]; then
        echo "guest/build.sh: $g.elf: no multiboot header in its first 8 KiB" >&2
        exit 1
    fi
done
