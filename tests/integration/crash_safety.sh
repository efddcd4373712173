#!/bin/sh
# kill -9 the daemon at random moments while a client writes; after each
# restart every write the API acknowledged must be there, and the store must
# pass SQLite's integrity check.
. "$(dirname "$0")/lib.sh"
vf_setup
write_config
ROUNDS=${CRASH_ROUNDS:-8}

writer() {
    i=0
    while :; do
        i=$((i + 1))
        name="r$1-$i"
        code=$(api -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
            --data "{\"apiVersion\":\"virtfleet.io/v1alpha2\",\"kind\":\"VirtualMachine\",\"metadata\":{\"name\":\"$name\"},\"spec\":{\"cpu\":{\"cores\":1},\"memory\":{\"size\":\"1Gi\"}}}" \
            http://localhost/apis/virtfleet.io/v1alpha2/virtualmachines 2>/dev/null)
        # Only a 201 is an acknowledgement; anything else may or may not have landed.
        [ "$code" = 201 ] && echo "$name" >> "$T/acked"
    done
}

: > "$T/acked"
for round in $(seq 1 "$ROUNDS"); do
    vf_start || { not_ok "round $round: daemon restarts"; break; }
    writer "$round" &
    wpid=$!
    # A random moment between 0.2 and 1.2 s into the writes.
    sleep "$(awk -v s="$round$$" 'BEGIN { srand(s); printf "%.2f", 0.2 + rand() }')"
    kill -9 "$DAEMON_PID"
    wait "$DAEMON_PID" 2>/dev/null
    DAEMON_PID=
    kill "$wpid" 2>/dev/null; wait "$wpid" 2>/dev/null
done
acked=$(wc -l < "$T/acked")
diag "$acked writes acknowledged over $ROUNDS kills"
check "writes were acknowledged between kills" [ "$acked" -gt "$ROUNDS" ]

check "daemon restarts after the last kill" vf_start
vf get vm -o name | sed 's|.*/||' | sort > "$T/present"
sort "$T/acked" > "$T/acked.sorted"
missing=$(comm -23 "$T/acked.sorted" "$T/present" | wc -l)
diag "missing after restart: $missing"
check "every acknowledged write survived" [ "$missing" -eq 0 ]
vf_stop
check "the store passes integrity_check" sh -c '[ "$(sqlite3 "$1" "PRAGMA integrity_check")" = ok ]' _ "$T/state/store.db"
done_testing
