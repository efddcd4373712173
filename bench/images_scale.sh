#!/bin/sh
# The images module at scale: what VirtualMachine changes cost its VirtualDisk
# and ClusterVirtualImage controllers when many VMs and disks exist.  On one
# node of libvirt's test driver (test:///default): VMS VirtualMachines
# (runPolicy Manual, never started), each naming its own VirtualDisk, and
# DISKS blank disks (no storage class is configured: they are Failed, and are
# reconciled like any other disk when kicked).  Once the daemon is idle,
# UPDATES VMs get a new label one after another (`virtfleet apply`); then the
# figures: how long the daemon takes to settle (the first 1 s window whose CPU
# time stays at the idle level, measured from the first update) and the CPU
# time (utime+stime of /proc/PID/stat) it spent meanwhile, less what it
# spends idle over the same time.
# Usage: bench/images_scale.sh [BUILD_DIR]  (VMS, DISKS: 500; UPDATES: 20)
set -eu
. "$(dirname "$0")/lib.sh"
bench_build "$@"
bench_scratch
VMS=${VMS:-500}
DISKS=${DISKS:-500}
UPDATES=${UPDATES:-20}
HZ=$(getconf CLK_TCK)

bench_module images
images=$(cat <<MODULE
images = { enabled = true; version = 1; settings = {
    dvcr = { storage = { path = "$T/dvcr"; size = "1G"; }; };
    upload = { listen = "127.0.0.1:0"; }; }; };
MODULE
)
bench_config '{ name = "demo"; uri = "test:///default"; }' "$images"
vf() { "$build/virtfleet" --socket "$T/api.sock" --timeout 120 "$@"; }
bench_daemon_start images

# now_ms: the wall clock in whole milliseconds.
now_ms() { date +%s%3N; }
# cpu: the daemon's CPU time so far, in clock ticks.
cpu() { awk '{ print $14 + $15 }' "/proc/$daemon_pid/stat"; }
# settle: waits until a 1 s window costs at most IDLE ticks; prints the
# wall-clock ms at the start of that window.
settle() {
    while :; do
        c0=$(cpu); w0=$(now_ms)
        sleep 1
        [ $(( $(cpu) - c0 )) -le "$IDLE" ] && { echo "$w0"; return; }
    done
}

vm() { # NAME DISK [LABEL]
    printf -- '---\napiVersion: virtfleet.io/v1alpha2\nkind: VirtualMachine\nmetadata:\n  name: %s\n' "$1"
    [ -z "${3:-}" ] || printf '  labels: { bench: "%s" }\n' "$3"
    printf 'spec:\n  runPolicy: Manual\n  cpu: { cores: 1 }\n  memory: { size: 128Mi }\n'
    printf '  blockDeviceRefs:\n    - { kind: VirtualDisk, name: %s }\n' "$2"
}
i=0
while [ "$i" -lt "$DISKS" ]; do
    printf -- '---\napiVersion: virtualization.deckhouse.io/v1alpha2\nkind: VirtualDisk\nmetadata:\n  name: d-%d\nspec:\n  persistentVolumeClaim: { size: 1Mi }\n' "$i"
    i=$((i + 1))
done > "$T/disks.yaml"
i=0
while [ "$i" -lt "$VMS" ]; do vm "vm-$i" "d-$((i % DISKS))"; i=$((i + 1)); done > "$T/vms.yaml"
t0=$(now_ms)
vf apply -f "$T/disks.yaml" >/dev/null
vf apply -f "$T/vms.yaml" >/dev/null
# The idle level: the most one quiet second costs (the core's and the
# controllers' 1 s ticks), measured once the creates have settled.
IDLE=1000000
while :; do
    a=$(cpu); sleep 2; b=$(cpu)
    [ $((b - a)) -le $((2 * HZ / 20)) ] && break    # under 5% of a CPU
done
a=$(cpu); w=$(now_ms); sleep 5; idle_rate=$(awk -v t="$(( $(cpu) - a ))" -v ms="$(( $(now_ms) - w ))" 'BEGIN { printf "%.3f", t / (ms / 1000) }')
IDLE=$(awk -v r="$idle_rate" 'BEGIN { v = int(r * 1.5) + 2; print v }')
echo "images module, test:///default: $VMS VMs, $DISKS disks (created and settled in $(( $(now_ms) - t0 )) ms); idle: $idle_rate ticks/s (HZ $HZ)"

c0=$(cpu); w0=$(now_ms)
i=0
while [ "$i" -lt "$UPDATES" ]; do
    vm "vm-$i" "d-$((i % DISKS))" "u$i" | vf apply -f - >/dev/null
    i=$((i + 1))
done
w_applied=$(now_ms)
w_settled=$(settle)
c1=$(cpu)
settle_ms=$(( w_settled - w0 ))
cpu_ms=$(awk -v t="$(( c1 - c0 ))" -v hz="$HZ" -v r="$idle_rate" -v s="$settle_ms" \
    'BEGIN { v = (t - r * s / 1000) * 1000 / hz; if (v < 0) v = 0; printf "%.0f", v }')
echo "$UPDATES VM updates (applied in $(( w_applied - w0 )) ms): settled after $settle_ms ms; daemon CPU $cpu_ms ms above idle ($(( (c1 - c0) * 1000 / HZ )) ms in all)"
