#!/bin/sh
# A cluster of real libvirt nodes on one machine, for integration tests,
# benchmarks and the README.  Each node is its own libvirtd (QEMU driver) in a
# private mount + UTS namespace, with private copies of everything the QEMU
# driver keeps under fixed paths, reached through its own UNIX socket.
#
#   cluster.sh up N DIR     start node-1..node-N under DIR; prints one line per
#                           node: "node-I URI".  Also writes DIR/nodes (the same
#                           lines) and DIR/domain-type (kvm or qemu).
#   cluster.sh down DIR     stop the nodes and any QEMU they started, then remove
#                           what "up" created under DIR.  Safe to repeat.
#   cluster.sh uri DIR I    the libvirt URI of node-I.
#   cluster.sh domxml DIR NAME KERNEL [MEM_MIB] [SERIAL_LOG]
#                           XML of a disk-less, NIC-less guest that boots KERNEL
#                           (e.g. the multiboot images of tests/lib/guest).
#
# Needs root, util-linux (unshare, mount), libvirt-daemon(-driver-qemu),
# libvirt-clients, qemu-system-x86 and tini: see scripts/install-deps.sh.
# Nothing here listens on, or talks to, any address but loopback: libvirtd
# only has UNIX sockets, and each node's /etc/hosts maps its name to
# 127.0.0.1.  Migrate with the URI tcp://127.0.0.1 and listen address 127.0.0.1.
#
# Environment:
#   CLUSTER_DOMAIN_TYPE=qemu   force TCG even where /dev/kvm works
#   CLUSTER_LOG_LEVEL=1..4     libvirtd's log level in DIR/node-I/libvirtd.log (3)
#   CLUSTER_TIMEOUT=SECONDS    how long a node may take to answer (60)
#   CLUSTER_CACHE_DIR=DIR      libvirt's cache (QEMU capabilities) to use instead
#                              of DIR/cache; keep one to skip the ~1 s probe
#   CLUSTER_KEEP=1             "down" stops everything but keeps the files
set -eu

me=cluster.sh
die() { echo "$me: $*" >&2; exit 1; }
usage() { sed -n '/^#   cluster.sh/,/^#$/s/^# \{0,1\}//p' "$0" >&2; exit 2; }

# The fixed paths the QEMU driver uses, each replaced by a private directory.
PRIVATE_DIRS="conf:/etc/libvirt run:/run/libvirt lib:/var/lib/libvirt log:/var/log/libvirt"
# Incoming migration ports: each node of every cluster on this machine gets
# its own range of PORTS_PER_NODE from a shared table, so clusters of tests
# that run in parallel never race for a port.
MIGRATION_PORT_BASE=49152
PORTS_PER_NODE=16
PORT_SLOTS=1024
PORTS_DB=${CLUSTER_PORTS_DB:-/run/virtfleet-cluster-ports}

uri_of() { echo "qemu+unix:///system?socket=$1/node-$2/libvirt-sock"; }

# is_ours PID: the process is still the tini we started (not a reused pid)
# and has not exited (a zombie waiting for init to reap it counts as gone).
is_ours() {
    [ -n "$1" ] && [ -r "/proc/$1/stat" ] || return 1
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    case $stat in "$1 (tini) Z"*) return 1 ;; "$1 (tini) "*) return 0 ;; esac
    return 1
}

# node_qemus DIR I: pids of QEMU processes started by node I: those that see
# the node's private directory at /var/lib/libvirt (works even if the node's
# libvirtd is gone and QEMU was re-parented).
node_qemus() {
    want=$(stat -c '%d:%i' "$1/node-$2/lib" 2>/dev/null) || return 0
    for p in /proc/[0-9]*; do
        case $(cat "$p/comm" 2>/dev/null) in qemu-system-*) ;; *) continue ;; esac
        [ "$(stat -L -c '%d:%i' "$p/root/var/lib/libvirt" 2>/dev/null)" != "$want" ] ||
            echo "${p#/proc/}"
    done
}

# claim_ports DIR COUNT: under a lock, drop the table's entries of clusters
# that are gone, then give node-1..node-COUNT of DIR a free slot each
# (written to DIR/node-I/port-slot).
claim_ports() {
    (
        flock 9
        touch "$PORTS_DB"
        : > "$PORTS_DB.new"
        while read -r slot owner; do
            [ ! -d "$owner" ] || echo "$slot $owner" >> "$PORTS_DB.new"
        done < "$PORTS_DB"
        i=1 slot=0
        while [ "$i" -le "$2" ]; do
            while grep -q "^$slot " "$PORTS_DB.new"; do slot=$((slot + 1)); done
            [ $slot -lt $PORT_SLOTS ] || { echo "$me: no free migration ports (see $PORTS_DB)" >&2; exit 1; }
            mkdir -p "$1/node-$i"
            echo "$slot $1/node-$i" >> "$PORTS_DB.new"
            echo "$slot" > "$1/node-$i/port-slot"
            i=$((i + 1)) slot=$((slot + 1))
        done
        mv "$PORTS_DB.new" "$PORTS_DB"
    ) 9>>"$PORTS_DB.lock"
}

# release_ports DIR: give back the slots of DIR's nodes.
release_ports() {
    [ -f "$PORTS_DB" ] || return 0
    (
        flock 9
        grep -vF " $1/node-" "$PORTS_DB" > "$PORTS_DB.new" || true
        mv "$PORTS_DB.new" "$PORTS_DB"
    ) 9>>"$PORTS_DB.lock"
}

children_of() { ps -o pid= --ppid "$1" 2>/dev/null | tr -d ' '; }

# node_daemons NODE_DIR: "pid comm" of the live tini and libvirtd of a node,
# found by the config file on their command line (even without a pid file,
# e.g. when "up" was interrupted before the node wrote it).
node_daemons() {
    for p in /proc/[0-9]*; do
        case $(cat "$p/comm" 2>/dev/null) in tini|libvirtd) ;; *) continue ;; esac
        tr '\0' '\n' < "$p/cmdline" 2>/dev/null | grep -qxF "$1/conf/libvirtd.conf" || continue
        stat=$(cat "$p/stat" 2>/dev/null) || continue
        case ${stat#*) } in Z*) continue ;; esac
        echo "${p#/proc/} $(cat "$p/comm")"
    done
}

# alive PID: running (a zombie waiting for init to reap it counts as gone).
alive() {
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    case ${stat#*) } in Z*) return 1 ;; esac
}

cmd_down() {
    [ $# -eq 1 ] || usage
    [ -d "$1" ] || return 0
    dir=$(cd "$1" && pwd -P)
    # Signal every node first, then wait for them all.
    waitfor=
    for nd in "$dir"/node-*; do
        [ -d "$nd" ] || continue
        qemus=$(node_qemus "$dir" "${nd##*/node-}")
        daemons=$(node_daemons "$nd")
        for t in $(echo "$daemons" | awk '$2 == "tini" { print $1 }'); do
            # QEMU re-parented to tini, the subreaper
            for c in $(children_of "$t"); do
                [ "$(cat "/proc/$c/comm" 2>/dev/null)" = libvirtd ] || qemus="$qemus $c"
            done
        done
        # shellcheck disable=SC2086
        case $qemus in *[0-9]*) kill -KILL $qemus 2>/dev/null || true ;; esac
        for d in $(echo "$daemons" | awk '$2 == "libvirtd" { print $1 }'); do
            kill -TERM "$d" 2>/dev/null || true
        done
        waitfor="$waitfor $(echo "$daemons" | awk '{ print $1 }' | tr '\n' ' ')"
    done
    # tini exits once its libvirtd has; give them all 10 s, then insist.
    n=0
    for pid in $waitfor; do
        while alive "$pid" && [ $n -lt 200 ]; do sleep 0.05; n=$((n + 1)); done
        if alive "$pid"; then
            for c in $(children_of "$pid"); do kill -KILL "$c" 2>/dev/null || true; done
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    rm -f "$dir"/node-*/pid
    release_ports "$dir"
    [ -z "${CLUSTER_KEEP:-}" ] || return 0
    rm -rf --one-file-system "${dir:?}"/node-* "${dir:?}/cache" "${dir:?}/etc" "${dir:?}/nodes" "${dir:?}/domain-type"
    rmdir "$dir" 2>/dev/null || true
}

cmd_uri() {
    [ $# -eq 2 ] || usage
    dir=$(cd "$1" 2>/dev/null && pwd -P) || die "no cluster directory $1"
    [ -d "$dir/node-$2" ] || die "no node-$2 in $dir"
    uri_of "$dir" "$2"
}

xml_escape() { printf '%s' "$1" | sed 's/&/\&amp;/g; s/</\&lt;/g; s/>/\&gt;/g; s/'\''/\&apos;/g'; }

cmd_domxml() {
    [ $# -ge 3 ] && [ $# -le 5 ] || usage
    type=$(cat "$1/domain-type" 2>/dev/null) || die "$1/domain-type: not a cluster directory (run up first)"
    name=$(xml_escape "$2"); kernel=$(xml_escape "$3"); mem=${4:-128}
    serial=
    [ -z "${5:-}" ] || serial="
    <serial type='file'><source path='$(xml_escape "$5")' append='on'/></serial>"
    cat <<XML
<domain type='$type'>
  <name>$name</name>
  <memory unit='MiB'>$mem</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$kernel</kernel>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>$serial
  </devices>
</domain>
XML
}

# detect_kvm: /dev/kvm exists and opens read-write.
detect_kvm() {
    [ "${CLUSTER_DOMAIN_TYPE:-}" != qemu ] || return 1
    [ -c /dev/kvm ] || return 1
    (exec 3<>/dev/kvm) 2>/dev/null
}

write_node_config() {
    nd=$1 i=$2
    mkdir -p "$nd/conf" "$nd/run" "$nd/lib" "$nd/log" "$nd/empty"
    uuid=$(cat /proc/sys/kernel/random/uuid)
    port=$((MIGRATION_PORT_BASE + $(cat "$nd/port-slot") * PORTS_PER_NODE))
    cat > "$nd/conf/libvirtd.conf" <<EOF
# node-$i, written by tests/lib/cluster.sh
unix_sock_dir = "$nd"
unix_sock_rw_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
host_uuid = "$uuid"
log_level = ${CLUSTER_LOG_LEVEL:-3}
log_outputs = "${CLUSTER_LOG_LEVEL:-3}:file:$nd/libvirtd.log"
EOF
    cat > "$nd/conf/qemu.conf" <<EOF
# node-$i, written by tests/lib/cluster.sh
user = "root"
group = "root"
stdio_handler = "file"
cgroup_controllers = [ ]
security_driver = "none"
remember_owner = 0
migration_port_min = $port
migration_port_max = $((port + PORTS_PER_NODE - 1))
EOF
    printf '127.0.0.1\tlocalhost node-%s\n::1\tlocalhost ip6-localhost ip6-loopback\n' "$i" > "$nd/hosts"
}

# start_node DIR I: launch node I in the background; its tini writes its pid.
start_node() {
    nd="$1/node-$2"
    # shellcheck disable=SC2016,SC2086
    setsid unshare --mount --uts --propagation private -- sh -c '
        set -e
        nd=$1 top=$2 cache=$3 name=$4; shift 4
        for m in "$@"; do mount --bind "$nd/${m%%:*}" "${m#*:}"; done
        mount --bind "$cache" /var/cache/libvirt
        mount --bind "$top/etc/passwd" /etc/passwd
        mount --bind "$top/etc/group" /etc/group
        mount --bind "$nd/hosts" /etc/hosts
        # No system bus: nodes must not register their guests with a host-wide
        # systemd-machined or firewalld (names would clash between nodes).
        if [ -d /run/dbus ]; then mount --bind "$nd/empty" /run/dbus; fi
        echo "$name" > /proc/sys/kernel/hostname
        echo $$ > "$nd/pid"
        exec tini -s -- libvirtd -f "$nd/conf/libvirtd.conf" -p "$nd/libvirtd.pid"
    ' sh "$nd" "$1" "$CACHE" "node-$2" $PRIVATE_DIRS </dev/null >"$nd/daemon.out" 2>&1 &
}

# wait_node DIR I: until the node answers; fails early if it died.
wait_node() {
    nd="$1/node-$2"
    uri=$(uri_of "$1" "$2")
    limit=$(( ${CLUSTER_TIMEOUT:-60} * 20 ))
    n=0
    while [ $n -lt "$limit" ]; do
        if [ -S "$nd/libvirt-sock" ] && virsh -q -c "$uri" version >/dev/null 2>&1; then
            return 0
        fi
        if [ $n -gt 20 ] && ! is_ours "$(cat "$nd/pid" 2>/dev/null || true)"; then
            echo "$me: node-$2 exited while starting" >&2
            break
        fi
        sleep 0.05
        n=$((n + 1))
    done
    [ $n -lt "$limit" ] || echo "$me: node-$2 did not answer $uri within ${CLUSTER_TIMEOUT:-60} s" >&2
    for f in daemon.out libvirtd.log; do
        [ -s "$nd/$f" ] || continue
        echo "$me: last lines of $nd/$f:" >&2
        tail -n 15 "$nd/$f" | sed 's/^/    /' >&2
    done
    return 1
}

private_passwd() {
    mkdir -p "$1/etc"
    cp /etc/passwd "$1/etc/passwd"
    cp /etc/group "$1/etc/group"
    # The QEMU driver resolves its built-in default user even when qemu.conf
    # says root, and exits if it is unknown.
    if ! grep -q '^libvirt-qemu:' "$1/etc/group"; then
        gid=64055
        while cut -d: -f3 "$1/etc/group" | grep -qx "$gid"; do gid=$((gid + 1)); done
        echo "libvirt-qemu:x:$gid:" >> "$1/etc/group"
    fi
    gid=$(grep '^libvirt-qemu:' "$1/etc/group" | cut -d: -f3)
    if ! grep -q '^libvirt-qemu:' "$1/etc/passwd"; then
        uid=64055
        while cut -d: -f3 "$1/etc/passwd" | grep -qx "$uid"; do uid=$((uid + 1)); done
        echo "libvirt-qemu:x:$uid:$gid:Libvirt Qemu:/var/lib/libvirt:/usr/sbin/nologin" >> "$1/etc/passwd"
    fi
}

cmd_up() {
    [ $# -eq 2 ] || usage
    count=$1
    case $count in ''|*[!0-9]*) die "N must be a number, not '$count'" ;; esac
    [ "$count" -ge 1 ] && [ "$count" -le 200 ] || die "N must be 1..200"
    [ "$(id -u)" = 0 ] || die "must run as root (each node is a privileged libvirtd in its own namespaces)"
    missing=
    for t in libvirtd virsh tini unshare setsid flock mount ps qemu-system-x86_64; do
        command -v "$t" >/dev/null 2>&1 || missing="$missing $t"
    done
    [ -z "$missing" ] || die "missing:$missing (install with scripts/install-deps.sh)"
    mkdir -p "$2"
    DIR=$(cd "$2" && pwd -P)
    case $DIR in *[[:space:]]*) die "'$DIR' has white space in it; pick another directory" ;; esac
    case $DIR/ in
    /etc/libvirt/*|/run/libvirt/*|/var/lib/libvirt/*|/var/log/libvirt/*|/var/cache/libvirt/*)
        die "$DIR is under a path each node replaces; pick another directory" ;;
    esac
    for nd in "$DIR"/node-*; do
        [ -d "$nd" ] || continue
        [ -z "$(node_daemons "$nd")" ] || die "$DIR already has running nodes; run down first"
    done
    sock="$DIR/node-$count/libvirt-admin-sock"
    [ ${#sock} -lt 108 ] || die "$DIR is too long for a UNIX socket path; use a shorter directory"

    # From here on, any failure takes everything down again.
    # shellcheck disable=SC2154
    trap 'rc=$?; trap - EXIT INT TERM; if [ $rc -ne 0 ]; then cmd_down "$DIR"; fi; exit $rc' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    CACHE=${CLUSTER_CACHE_DIR:-$DIR/cache}
    mkdir -p "$CACHE"
    CACHE=$(cd "$CACHE" && pwd -P)
    for d in /etc/libvirt /run/libvirt /var/lib/libvirt /var/log/libvirt /var/cache/libvirt; do
        mkdir -p "$d"   # mount points
    done
    private_passwd "$DIR"
    if detect_kvm; then echo kvm > "$DIR/domain-type"; else echo qemu > "$DIR/domain-type"; fi

    rm -rf --one-file-system "$DIR"/node-*
    claim_ports "$DIR" "$count"
    i=1
    while [ $i -le "$count" ]; do
        write_node_config "$DIR/node-$i" "$i"
        i=$((i + 1))
    done
    # node-1 alone first: it fills the shared QEMU capabilities cache, so the
    # others start in a fraction of the time.
    start_node "$DIR" 1
    wait_node "$DIR" 1
    i=2
    while [ $i -le "$count" ]; do start_node "$DIR" $i; i=$((i + 1)); done
    i=2
    while [ $i -le "$count" ]; do wait_node "$DIR" $i; i=$((i + 1)); done

    # /dev/kvm may open and still be unusable: trust what libvirt probed.
    if [ "$(cat "$DIR/domain-type")" = kvm ] &&
        ! virsh -q -c "$(uri_of "$DIR" 1)" capabilities | grep -q "<domain type='kvm'"; then
        echo qemu > "$DIR/domain-type"
    fi
    : > "$DIR/nodes"
    i=1
    while [ $i -le "$count" ]; do
        echo "node-$i $(uri_of "$DIR" $i)" >> "$DIR/nodes"
        i=$((i + 1))
    done
    cat "$DIR/nodes"
}

[ $# -ge 1 ] || usage
cmd=$1; shift
case $cmd in
up) cmd_up "$@" ;;
down) cmd_down "$@" ;;
uri) cmd_uri "$@" ;;
domxml) cmd_domxml "$@" ;;
*) usage ;;
esac
