#!/bin/sh
# A bad configuration is refused at start with errors that name file:line and
# the setting path; --check-config reports every problem, not just the first.
. "$(dirname "$0")/lib.sh"
vf_setup

cat > "$T/bad.conf" <<'CONF'
state_dir = "relative/path";
log_level = "loud";
nodes = (
  { name = "Node_1"; uri = "test:///default"; }
);
api = { socket = "/tmp/x.sock"; mdoe = "0660"; };
modules = {
  example = { enabled = true; settings = { tickInterval = "soon"; }; };
};
CONF
out=$("$VIRTFLEETD" --check-config -c "$T/bad.conf" 2>&1); rc=$?
diag "$out"
check "--check-config exits 1 on a bad file" [ "$rc" -eq 1 ]
check "relative state_dir named with file:line" sh -c 'echo "$1" | grep -q "bad.conf:1: state_dir"' _ "$out"
check "bad log level named" sh -c 'echo "$1" | grep -q "bad.conf:2: log_level"' _ "$out"
check "bad node name named" sh -c 'echo "$1" | grep -q "bad.conf:4: nodes.*name"' _ "$out"
check "misspelt key gets a suggestion" sh -c 'echo "$1" | grep -q "api.mdoe.*mode"' _ "$out"

write_config 'example = { enabled = true; settings = { tickInterval = "soon"; }; };'
out=$("$VIRTFLEETD" --check-config -c "$CONF" 2>&1); rc=$?
diag "$out"
check "module settings are checked against the module's schema" \
    sh -c 'echo "$1" | grep -q "virtfleetd.conf:[0-9]*: modules.example.settings.tickInterval"' _ "$out"
check "and --check-config fails" [ "$rc" -eq 1 ]

printf 'state_dir = "/tmp"\nnodes = ( { name = "a" } \n' > "$T/syntax.conf"
out=$("$VIRTFLEETD" -f -c "$T/syntax.conf" 2>&1); rc=$?
diag "$out"
check "the daemon refuses to start on a syntax error" [ "$rc" -eq 1 ]
check "the syntax error names the line" sh -c 'echo "$1" | grep -q "syntax.conf:[0-9]*: syntax error"' _ "$out"
check "no socket was created" [ ! -e /tmp/x.sock ]

write_config 'example = { enabled = true; };'
out=$("$VIRTFLEETD" --check-config -c "$CONF" 2>&1); rc=$?
check "a good file passes --check-config" [ "$rc" -eq 0 ]
check "--version prints the ABI" sh -c '"$1" --version | grep -Eq "module ABI [0-9]+\.[0-9]+"' _ "$VIRTFLEETD"
done_testing
