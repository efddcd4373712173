#!/bin/sh
# SIGHUP applies the difference live (module on, reconfigured, restarted, off)
# and rejects an invalid file whole, keeping the configuration in force.
. "$(dirname "$0")/lib.sh"
vf_setup
hello() { api http://localhost/apis/virtfleet.io/v1alpha2/modules/example/hello; }
state() { vf modules | awk -v m="$1" '$1 == m { print $3 }'; }
reload() { kill -HUP "$DAEMON_PID"; sleep 0.3; }

write_config 'example = { enabled = false; };'
check "daemon starts" vf_start
out=$(vf modules)
diag "$out"
check "virtfleet modules lists the module as Disabled" [ "$(state example)" = Disabled ]
check "its route is not served" sh -c '! curl -sf --unix-socket "$1" http://localhost/apis/virtfleet.io/v1alpha2/modules/example/hello >/dev/null' _ "$SOCK"

write_config 'example = { enabled = true; version = 1; settings = { greeting = "one"; }; };'
reload
check "SIGHUP starts a module turned on" [ "$(state example)" = Running ]
check "the module serves its route" sh -c 'echo "$1" | grep -q "\"greeting\": *\"one\""' _ "$(hello)"

write_config 'example = { enabled = true; version = 1; settings = { greeting = "two"; }; };'
reload
check "changed settings reach the running module" sh -c 'echo "$1" | grep -q "\"greeting\": *\"two\""' _ "$(hello)"
check "through reconfigure, not a restart" grep -q 'module example reconfigured' "$T/daemon.log"

write_config 'example = { enabled = true; version = 1; settings = { greeting = "two"; tickInterval = "1s"; }; };'
reload
check "a setting marked restart restarts the module" grep -q 'module example stopped (restarting for new settings)' "$T/daemon.log"
check "and it runs again" [ "$(state example)" = Running ]

cp "$CONF" "$T/good.conf"
write_config 'example = { enabled = true; settings = { greeting = 42; }; };' 'bogus_key = 1;'
reload
check "an invalid file is rejected whole" grep -q 'reload rejected' "$T/daemon.log"
check "its errors are logged with file:line" grep -q "virtfleetd.conf:[0-9]*: bogus_key" "$T/daemon.log"
check "the configuration in force stays" sh -c 'echo "$1" | grep -q "\"greeting\": *\"two\""' _ "$(hello)"
check "the module keeps running" [ "$(state example)" = Running ]

cp "$T/good.conf" "$CONF"
write_config 'example = { enabled = false; };'
reload
check "SIGHUP stops a module turned off" [ "$(state example)" = Disabled ]
check "its route is gone" sh -c '! curl -sf --unix-socket "$1" http://localhost/apis/virtfleet.io/v1alpha2/modules/example/hello >/dev/null' _ "$SOCK"
check "the daemon is still alive" kill -0 "$DAEMON_PID"
check "module changes are audited" sh -c '"$1" --socket "$2" get auditevents -o json | grep -q "module.stop"' _ "$VIRTFLEET" "$SOCK"
check "daemon stops cleanly" vf_stop
done_testing
