#!/bin/sh
# A real container registry (Debian's docker-registry, the CNCF distribution
# registry) on loopback, for the registry import tests.
#
#   registry.sh up DIR      start a registry storing under DIR/storage, plain
#                           HTTP on 127.0.0.1 on an ephemeral port; prints
#                           "127.0.0.1:PORT" (also written to DIR/address)
#   registry.sh down DIR    stop it; safe to repeat.  DIR itself is the
#                           caller's to remove
#
# Push to it with `skopeo copy --dest-tls-verify=false oci:LAYOUT:TAG
# docker://$(cat DIR/address)/NAME:TAG`.  Anonymous, no TLS: loopback only.
# Environment: REGISTRY_TIMEOUT=SECONDS  how long it may take to answer (60)
set -eu

me=registry.sh
die() { echo "$me: $*" >&2; exit 1; }

# listen_port PID: the TCP port PID listens on, found through its socket
# inodes in /proc/net/tcp (the registry binds port 0 and never says which).
listen_port() {
    inodes=$(for fd in /proc/"$1"/fd/*; do readlink "$fd" 2>/dev/null; done |
        sed -n 's/^socket:\[\([0-9]*\)\]$/\1/p' | tr '\n' ' ')
    [ -n "$inodes" ] || return 1
    # local_address is HEXIP:HEXPORT; state 0A is LISTEN; field 10 the inode.
    awk -v inodes=" $inodes " '
        $4 == "0A" && index(inodes, " " $10 " ") {
            split($2, a, ":"); print a[2]; exit }' /proc/net/tcp |
        { read -r hex && [ -n "$hex" ] && printf '%d\n' "0x$hex"; }
}

up() {
    dir=$1
    command -v docker-registry >/dev/null || die "docker-registry is not installed (scripts/install-deps.sh)"
    mkdir -p "$dir/storage"
    dir=$(cd "$dir" && pwd)
    [ ! -f "$dir/pid" ] || ! kill -0 "$(cat "$dir/pid")" 2>/dev/null || die "a registry already runs for $dir"
    cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:0
EOF
    # setsid: its own session, so that the caller's terminal signals do not
    # reach it and "down" can stop exactly it.
    setsid docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 </dev/null &
    echo $! >"$dir/pid"
    pid=$!
    timeout=${REGISTRY_TIMEOUT:-60}
    i=0
    port=""
    while [ "$i" -lt $((timeout * 10)) ]; do
        kill -0 "$pid" 2>/dev/null || { cat "$dir/registry.log" >&2; rm -f "$dir/pid"; die "the registry exited"; }
        if [ -z "$port" ]; then
            port=$(listen_port "$pid" || true)
        fi
        if [ -n "$port" ] && curl -sf -o /dev/null "http://127.0.0.1:$port/v2/"; then
            echo "127.0.0.1:$port" >"$dir/address"
            echo "127.0.0.1:$port"
            return 0
        fi
        sleep 0.1
        i=$((i + 1))
    done
    kill "$pid" 2>/dev/null || true
    rm -f "$dir/pid"
    die "the registry did not answer within ${timeout}s; see $dir/registry.log"
}

down() {
    dir=$1
    [ -f "$dir/pid" ] || return 0
    pid=$(cat "$dir/pid")
    # Only our registry: the pid must still be a docker-registry process.
    if kill -0 "$pid" 2>/dev/null && grep -q docker-registry "/proc/$pid/cmdline" 2>/dev/null; then
        kill "$pid"
        i=0
        while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/pid" "$dir/address"
}

[ $# -eq 2 ] || { sed -n '/^#   registry.sh/,/^#$/s/^# \{0,1\}//p' "$0" >&2; exit 2; }
case $1 in
    up) up "$2" ;;
    down) down "$2" ;;
    *) die "unknown command $1" ;;
esac
