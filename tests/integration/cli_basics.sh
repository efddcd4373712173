#!/bin/sh
# The real daemon driven by the real CLI: the seeds' manifests apply unchanged,
# tables look like the seeds', errors say what to fix, exit codes are stable.
. "$(dirname "$0")/lib.sh"
vf_setup
write_config
check "daemon starts" vf_start

check "socket is mode 0660" sh -c '[ "$(stat -c %a "$1")" = 660 ]' _ "$SOCK"
check "version answers" sh -c 'vf() { "$1" --socket "$2" version; }; vf "$1" "$2" | grep -q "0.1.0"' _ "$VIRTFLEET" "$SOCK"

# The seeds' VirtualMachineClass and VirtualMachine with their own apiVersion.
cp "$top_srcdir/data/examples/linux-vm.yaml" "$T/class.yaml"
out=$(vf apply -f "$T/class.yaml" 2>&1); rc=$?
diag "$out"
check "apply of the seeds' manifests succeeds" [ "$rc" -eq 0 ]
check "apply reports what it did" sh -c 'echo "$1" | grep -Eq "virtualmachineclass/generic (created|configured|unchanged)" && echo "$1" | grep -q "virtualmachine/linux-vm created"' _ "$out"
out=$(vf apply -f "$T/class.yaml" 2>&1)
check "apply again is unchanged or configured" sh -c 'echo "$1" | grep -Eq "virtualmachine/linux-vm (unchanged|configured)"' _ "$out"

out=$(vf get vm 2>&1)
diag "$out"
check "get vm prints the seeds' columns" sh -c 'echo "$1" | head -1 | grep -Eq "^NAME +PHASE +NODE +IPADDRESS +AGE$"' _ "$out"
check "get vm lists linux-vm" sh -c 'echo "$1" | grep -q "^linux-vm "' _ "$out"
check "short, plural and full kind names agree" sh -c '
    a=$("$1" --socket "$2" get vm -o name); b=$("$1" --socket "$2" get virtualmachines -o name)
    c=$("$1" --socket "$2" get VirtualMachine -o name); [ "$a" = "$b" ] && [ "$b" = "$c" ] && [ -n "$a" ]' \
    _ "$VIRTFLEET" "$SOCK"
out=$(vf get vm linux-vm -o json)
check "defaults from the seeds are filled (runPolicy)" sh -c 'echo "$1" | grep -q "AlwaysOnUnlessStoppedManually"' _ "$out"
check "stored apiVersion is virtfleet.io" sh -c 'echo "$1" | grep -q "virtfleet.io/v1alpha2"' _ "$out"

# kubectl's JSONPath: a template applies to the List of a kind (.items), with
# wildcards, filters and range; a malformed one is refused before any request.
out=$(vf get auditevents -o 'jsonpath={.items[*].metadata.name}')
diag "$out"
check "jsonpath {.items[*].metadata.name} prints every name, space-separated" \
    sh -c '[ -n "$1" ] && [ "$(echo "$1" | tr " " "\n")" = "$2" ]' _ "$out" \
    "$(vf get auditevents -o name | sed 's|.*/||')"
check "jsonpath filter: the node's Ready condition" wait_for 10 \
    sh -c '[ "$("$1" --socket "$2" get node demo -o "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}")" = True ]' \
    _ "$VIRTFLEET" "$SOCK"
vf get node -o 'jsonpath={range .items[*]}{.metadata.name}{"\t"}{.metadata.labels.zone}{"\n"}{end}' > "$T/range.out"
diag "$(cat "$T/range.out")"
check "jsonpath range with tab and newline literals" sh -c 'printf "demo\ta\n" | cmp -s - "$1"' _ "$T/range.out"
printf '{range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].reason}{"\\n"}{end}' > "$T/tmpl"
out=$(vf get node -o "jsonpath-file=$T/tmpl")
check "jsonpath-file reads the template from a file" sh -c 'echo "$1" | grep -Eq "^demo=[A-Za-z]+$"' _ "$out"
out=$("$VIRTFLEET" --socket "$T/nothing.sock" get vm -o 'jsonpath={.a[?(@.b=)]}' 2>&1); rc=$?
diag "$out"
check "a malformed jsonpath is a usage error (2) before any connection" sh -c '[ "$2" -eq 2 ] &&
    echo "$1" | grep -qF "jsonpath \"{.a[?(@.b=)]}\": at offset 10: expected a value after \"=\""' _ "$out" "$rc"

# The seeds' VirtualMachineOperation with generateName, through stdin.
out=$(vf create -f - 2>&1 <<'YAML'
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualMachineOperation
metadata:
  generateName: evict-linux-vm-
spec:
  # Virtual machine name.
  virtualMachineName: linux-vm
  # An operation for the migration.
  type: Evict
YAML
); rc=$?
diag "$out"
check "generateName creates a vmop" sh -c 'echo "$1" | grep -Eq "virtualmachineoperation/evict-linux-vm-[a-z0-9]{5} created"' _ "$out"

# Refusals say what is wrong and where.
cat > "$T/overlap.yaml" <<'YAML'
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualMachineClass
metadata:
  name: overlapping
spec:
  cpu:
    type: Host
  sizingPolicies:
    - cores:
        min: 1
        max: 4
      coreFractions: [100]
    - cores:
        min: 4
        max: 8
      coreFractions: [100]
YAML
out=$(vf create -f "$T/overlap.yaml" 2>&1); rc=$?
diag "$out"
check "overlapping sizing policy ranges are refused (exit 1)" [ "$rc" -eq 1 ]
check "the refusal names the range" sh -c 'echo "$1" | grep -q "spec.sizingPolicies\[1\].cores"' _ "$out"

out=$(vf get vmclass generic -o json | sed 's/"Nehalem"/"IvyBridge"/' | vf apply -f - 2>&1); rc=$?
diag "$out"
check "spec.cpu of a class is immutable" sh -c '[ "$2" -ne 0 ] && echo "$1" | grep -q "spec.cpu"' _ "$out" "$rc"

printf 'kind: VirtualMachine\nmetadata:\n  name: x\n spec: {}\n' > "$T/broken.yaml"
out=$(vf apply -f "$T/broken.yaml" 2>&1); rc=$?
diag "$out"
check "a malformed manifest names file:line" sh -c 'echo "$1" | grep -q "broken.yaml:[0-9]*:[0-9]*"' _ "$out"

out=$(vf get vm nosuch 2>&1); rc=$?
check "a missing object exits 1" [ "$rc" -eq 1 ]
check "and says not found" sh -c 'echo "$1" | grep -qi "not found"' _ "$out"
out=$(vf get frobnicators 2>&1); rc=$?
check "an unknown kind exits 1 and names it" sh -c '[ "$2" -eq 1 ] && echo "$1" | grep -q frobnicators' _ "$out" "$rc"
"$VIRTFLEET" --socket "$T/nothing.sock" get vm >/dev/null 2>&1; rc=$?
check "an unreachable daemon exits 3" [ "$rc" -eq 3 ]

# Optimistic concurrency over the raw API: a stale resourceVersion gets 409.
body=$(vf get vm linux-vm -o json)
rv=$(echo "$body" | sed -n 's/.*"resourceVersion": *"\([0-9]*\)".*/\1/p' | head -1)
stale=$(echo "$body" | sed "s/\"resourceVersion\": *\"$rv\"/\"resourceVersion\": \"1\"/")
code=$(api -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/json' \
    --data "$stale" http://localhost/apis/virtfleet.io/v1alpha2/virtualmachines/linux-vm)
check "a stale resourceVersion is refused with 409" [ "$code" = 409 ]
code=$(api -o "$T/err.json" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    --data '{"kind":"VirtualMachine","metadata":{"name":"a"},"spec":{' \
    http://localhost/apis/virtfleet.io/v1alpha2/virtualmachines)
check "a malformed body is refused with 400 and a JSON error" \
    sh -c '[ "$1" = 400 ] && grep -q "\"error\"" "$2"' _ "$code" "$T/err.json"

# The VM has a finalizer: its controller undefines the domain, then it goes.
vf delete vm linux-vm --wait >/dev/null 2>&1
check "delete removes the object" sh -c '! "$1" --socket "$2" get vm linux-vm >/dev/null 2>&1' _ "$VIRTFLEET" "$SOCK"
out=$(vf get auditevents -o json)
check "changes are audited with the caller's uid" sh -c 'echo "$1" | grep -q "\"uid\": *$2"' _ "$out" "$(id -u)"
ae=$(vf get auditevents -o name | head -1 | sed 's|.*/||')
code=$(api -o /dev/null -w '%{http_code}' -X DELETE "http://localhost/apis/virtfleet.io/v1alpha2/auditevents/$ae")
check "audit events cannot be erased through the API (403)" [ "$code" = 403 ]
code=$(api -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    --data '{"kind":"AuditEvent","metadata":{"name":"forged"},"spec":{}}' \
    http://localhost/apis/virtfleet.io/v1alpha2/auditevents)
check "nor forged (403)" [ "$code" = 403 ]
check "daemon stops cleanly on SIGTERM" vf_stop
done_testing
