#!/bin/sh
# The images module end to end, through the real daemon and the CLI: the
# seeds' ClusterVirtualImage examples against a real HTTP server on loopback
# (tests/lib/http_fixture), a real registry (Debian's docker-registry) and
# uploads with curl -T and `virtfleet upload`.  HTTP imports of qcow2, xz raw
# and ISO reach Ready with the right format, sizes and sha256 (watched from
# Pending through Provisioning to Ready); a registry image built for another
# platform, a wrong checksum, a 404, a qcow2 with a backing file and a quota
# breach fail with their reasons; ObjectRef copies; the spec is frozen once
# Ready and restarts the import before; deletion waits for VMs and removes the
# files; a daemon killed mid-download resumes with a Range request and ends
# Ready; upload URLs are single-use and expire.  Never skipped: a missing tool is a failure.
. "$(dirname "$0")/lib.sh"
REGISTRY="$top_srcdir/tests/lib/registry.sh"
OCI="$top_srcdir/tests/lib/oci_image.sh"

need_tools curl qemu-img xz xorriso skopeo docker-registry sha256sum cmp
need_fixture
need_images_module
prerequisites_met
ok "prerequisites are installed"

vf_setup
ln -s "$IMAGES_MODULE" "$T/modules/images.so"
W="$T/www"
mkdir -p "$W"
trap 'fixtures_stop; sh "$REGISTRY" down "$T/registry" >/dev/null 2>&1; vf_teardown' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# Generous: a loaded 2-core machine; every wait is a poll that ends sooner.
WAIT=${IMAGES_WAIT:-60}

phase() { field cvi "$1" .status.phase; }
reason() { field cvi "$1" '.status.conditions[0].reason'; }
message() { field cvi "$1" '.status.conditions[0].message'; }
final() { p=$(phase "$1"); [ "$p" = Ready ] || [ "$p" = Failed ]; }
# wait_final NAME: until Ready or Failed; then prints the phase.
wait_final() { wait_for "$WAIT" final "$1"; phase "$1"; }
uid_of() { vf get cvi "$1" -o 'jsonpath={.metadata.uid}'; }
no_files_of() { [ -z "$(find "$T/dvcr" -name "$1.*" 2>/dev/null)" ]; }
http_cvi() { # NAME URL [EXTRA_HTTP_YAML]
    vf apply -f - >/dev/null <<EOF
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: ClusterVirtualImage
metadata:
  name: $1
spec:
  dataSource:
    type: HTTP
    http:
      url: $2
${3:-}
EOF
}
upload_cvi() {
    printf 'apiVersion: virtualization.deckhouse.io/v1alpha2\nkind: ClusterVirtualImage\nmetadata:\n  name: %s\nspec:\n  dataSource:\n    type: Upload\n' "$1" |
        vf apply -f - >/dev/null
}

# ---- test images -------------------------------------------------------------------------
truncate -s 8M "$W/disk.raw"
head -c 1048576 /dev/urandom | dd of="$W/disk.raw" bs=1M seek=2 conv=notrunc 2>/dev/null
printf 'virtfleet' | dd of="$W/disk.raw" bs=1 seek=7340032 conv=notrunc 2>/dev/null
qemu-img convert -f raw -O qcow2 "$W/disk.raw" "$W/disk.qcow2"
xz -T1 -c "$W/disk.raw" > "$W/disk.raw.xz"
qemu-img create -q -f qcow2 -F raw -b "$W/disk.raw" "$W/backing.qcow2" 8M
mkdir -p "$T/isodir" && echo "hello from an ISO" > "$T/isodir/README"
xorriso -as mkisofs -quiet -V VFTEST -o "$W/cd.iso" "$T/isodir" 2>/dev/null
truncate -s 100M "$W/big.raw"
# 4 MiB of random data, served slowly for the kill -9 test.
head -c 4194304 /dev/urandom > "$W/slow.raw"
check "the test images are made (qemu-img, xz, xorriso)" \
    test -s "$W/disk.qcow2" -a -s "$W/disk.raw.xz" -a -s "$W/backing.qcow2" -a -s "$W/cd.iso"
sha() { sha256sum "$1" | cut -d' ' -f1; }

http_fixture_start fixture "$W" || fail_out "http_fixture starts"
H="http://$(fixture_addr fixture)"
ok "http_fixture serves on $H"
# A second one: a registry (/v2/) whose token service wants reguser:regpass.
mkdir -p "$T/authroot"
http_fixture_start afixture "$T/authroot" --token-auth reguser:regpass ||
    fail_out "http_fixture --token-auth starts"
AREG=$(fixture_addr afixture)
# auth_file USER:PASS MODE: $T/auth.json as docker writes it.
auth_file() {
    printf '{"auths": {"other.example:5000": {"auth": "%s"}, "%s": {"auth": "%s"}}}\n' \
        "$(printf 'x:y' | base64)" "$AREG" "$(printf '%s' "$1" | base64)" > "$T/auth.json"
    chmod "$2" "$T/auth.json"
}
# import.authFile names it from the start: a pull from another registry
# (no entry) stays anonymous.
auth_file reguser:wrong 600

REG=$(sh "$REGISTRY" up "$T/registry" 2>"$T/registry.err") ||
    { diag "$(cat "$T/registry.err")"; fail_out "registry.sh starts a registry"; }
ok "a registry runs on $REG"

# images_config QUOTA: the daemon's config with the images module.
images_config() {
    write_config "$(images_module_config "$1" "
    virtualImages = { allowedStorageClassNames = [ \"local\" ]; defaultStorageClassName = \"local\"; };
    upload = { listen = \"127.0.0.1:0\"; timeout = \"15s\"; };
    import = { maxRetries = 3; stallTimeout = \"10s\"; insecureRegistries = [ \"$REG\", \"$AREG\" ];
               authFile = \"$T/auth.json\"; };")" \
        'virtualization = { virtualMachineCIDRs = [ "10.77.9.0/28" ]; };'
}
images_config 64Mi
vf_start || fail_out "the daemon starts with the images module"
wait_images_running
ok "the daemon runs the images module"

# ---- upload expiry: started first, judged at the end ----------------------------------------
upload_cvi expiring

# ---- HTTP: the seeds' example, watched with get -w --------------------------------------------
vf get cvi -w > "$T/watch.out" 2>&1 &
WATCH_PID=$!
# The watch lists first (the header comes with the list), then follows from
# the list's resourceVersion: created after the header, every event shows.
wait_for 20 grep -q '^NAME' "$T/watch.out" || diag "get cvi -w printed no header"
http_cvi ubuntu-22-04 "$H/slow/524288/files/disk.qcow2"
check "HTTP qcow2: Ready" [ "$(wait_final ubuntu-22-04)" = Ready ]
check "HTTP qcow2: format qcow2" [ "$(field cvi ubuntu-22-04 .status.format)" = qcow2 ]
check "HTTP qcow2: cdrom false" [ "$(field cvi ubuntu-22-04 .status.cdrom)" = false ]
check "HTTP qcow2: progress 100%" [ "$(field cvi ubuntu-22-04 .status.progress)" = 100% ]
check "HTTP qcow2: sha256 of the download" \
    [ "$(field cvi ubuntu-22-04 .status.checksums.sha256)" = "$(sha "$W/disk.qcow2")" ]
check "HTTP qcow2: unpacked size is the virtual size" \
    [ "$(field cvi ubuntu-22-04 .status.size.unpackedBytes)" = 8388608 ]
TARGET=$(field cvi ubuntu-22-04 .status.target.path)
check "HTTP qcow2: stored as a qcow2 file in the image store" \
    sh -c "case '$TARGET' in '$T/dvcr/images/'*.qcow2) test -f '$TARGET' ;; *) false ;; esac"
check "HTTP qcow2: qemu-img reads the stored image as the original" \
    qemu-img compare -q -f qcow2 -F raw "$TARGET" "$W/disk.raw"
vf describe cvi ubuntu-22-04 > "$T/describe.out" 2>&1
diag "$(cat "$T/describe.out")"
check "describe cvi: phase, format, sizes, checksums and the Ready condition" \
    sh -c "grep -q Ready '$T/describe.out' && grep -q qcow2 '$T/describe.out' &&
           grep -q '$(sha "$W/disk.qcow2")' '$T/describe.out' && grep -q 8388608 '$T/describe.out'"
sleep 1.2
kill "$WATCH_PID" 2>/dev/null; wait "$WATCH_PID" 2>/dev/null
diag "$(grep ubuntu-22-04 "$T/watch.out")"
check "get cvi -w: a header with PHASE CDROM PROGRESS" grep -q '^NAME *PHASE *CDROM *PROGRESS *AGE' "$T/watch.out"
check "get cvi -w: Provisioning lines with a percentage" \
    grep -Eq '^ubuntu-22-04 +Provisioning +false +[0-9]+\.[0-9]%' "$T/watch.out"
check "get cvi -w: ends Ready false 100%" grep -Eq '^ubuntu-22-04 +Ready +false +100% ' "$T/watch.out"
check "get cvi -w: the first row of a new image is Pending false 0.0% (never a blank PHASE)" \
    sh -c "grep -m1 '^ubuntu-22-04 ' '$T/watch.out' | grep -Eq '^ubuntu-22-04 +Pending +false +0\.0% '"
check "get cvi -w: the phases go Pending, Provisioning, Ready and nothing else" \
    [ "$(awk '$1 == "ubuntu-22-04" { print $2 }' "$T/watch.out" | uniq | tr '\n' ' ')" = "Pending Provisioning Ready " ]

http_cvi xz-raw "$H/files/disk.raw.xz"
check "HTTP xz raw: Ready" [ "$(wait_final xz-raw)" = Ready ]
check "HTTP xz raw: stored as raw, sha256 of the download" \
    [ "$(field cvi xz-raw .status.format) $(field cvi xz-raw .status.checksums.sha256)" = "raw $(sha "$W/disk.raw.xz")" ]
check "HTTP xz raw: the stored file is the unpacked image" cmp -s "$(field cvi xz-raw .status.target.path)" "$W/disk.raw"
check "HTTP xz raw: unpacked 8388608 bytes" [ "$(field cvi xz-raw .status.size.unpackedBytes)" = 8388608 ]
check "HTTP xz raw: stored sparse (holes kept)" \
    [ "$(field cvi xz-raw .status.size.storedBytes)" -lt 4194304 ]

# The sha256 of another file: a checksum that does not match.
http_cvi bad-sum "$H/files/disk.qcow2" "      checksum:
        sha256: $(sha "$W/disk.raw")"
BAD_UID=$(uid_of bad-sum)
check "wrong checksum: Failed" [ "$(wait_final bad-sum)" = Failed ]
check "wrong checksum: reason ChecksumMismatch" [ "$(reason bad-sum)" = ChecksumMismatch ]
check "wrong checksum: no files left" no_files_of "$BAD_UID"

http_cvi missing "$H/status/404"
check "HTTP 404: Failed" [ "$(wait_final missing)" = Failed ]
diag "404: $(reason missing): $(message missing)"
check "HTTP 404: the message names the status" sh -c "'$VIRTFLEET' --socket '$SOCK' describe cvi missing | grep -q 404"

http_cvi backed "$H/files/backing.qcow2"
check "qcow2 with a backing file: Failed" [ "$(wait_final backed)" = Failed ]
diag "backing file: $(reason backed): $(message backed)"
check "qcow2 with a backing file: reason Refused, message names it" \
    sh -c "[ '$(reason backed)' = Refused ] && echo '$(message backed)' | grep -qi backing"

http_cvi cd "$H/redirect/2/files/cd.iso"
check "ISO (behind 2 redirects): Ready" [ "$(wait_final cd)" = Ready ]
check "ISO: cdrom true, stored raw" [ "$(field cvi cd .status.cdrom) $(field cvi cd .status.format)" = "true raw" ]

http_cvi too-big "$H/files/big.raw"
TB_UID=$(uid_of too-big)
check "over the quota: Failed" [ "$(wait_final too-big)" = Failed ]
check "over the quota: reason TooLarge" [ "$(reason too-big)" = TooLarge ]
check "over the quota: no files left" no_files_of "$TB_UID"

# ---- the spec: may change until Ready, never after ------------------------------------------
http_cvi changing "$H/slow/65536/files/slow.raw"
wait_for "$WAIT" phase_is cvi changing Provisioning
http_cvi changing "$H/files/disk.raw.xz"
check "a spec change before Ready restarts the import with the new source" \
    [ "$(wait_final changing) $(field cvi changing .status.checksums.sha256)" = "Ready $(sha "$W/disk.raw.xz")" ]
http_cvi changing "$H/files/disk.qcow2" 2>"$T/frozen.err" && frozen=changed || frozen=refused
diag "$(cat "$T/frozen.err")"
check "a spec change after Ready is refused with a reason" \
    sh -c "[ $frozen = refused ] && grep -q 'Ready' '$T/frozen.err'"

# ---- ObjectRef ----------------------------------------------------------------------------
vf apply -f - >/dev/null <<EOF
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: ClusterVirtualImage
metadata:
  name: copy
spec:
  dataSource:
    type: ObjectRef
    objectRef:
      kind: ClusterVirtualImage
      name: ubuntu-22-04
EOF
check "ObjectRef: Ready" [ "$(wait_final copy)" = Ready ]
check "ObjectRef: a byte-identical copy with the source's checksums" \
    sh -c "cmp -s '$(field cvi copy .status.target.path)' '$TARGET' &&
           [ '$(field cvi copy .status.checksums.sha256)' = '$(sha "$W/disk.qcow2")' ]"

# ---- uploads ------------------------------------------------------------------------------
vf apply -f "$top_srcdir/data/examples/images/upload.yaml" >/dev/null
wait_for "$WAIT" phase_is cvi some-image WaitForUserUpload
URL=$(field cvi some-image .status.imageUploadURLs.external)
diag "upload URL: $URL"
check "Upload: WaitForUserUpload with an unguessable URL" \
    sh -c "echo '$URL' | grep -Eq '^http://127\.0\.0\.1:[0-9]+/upload/[0-9a-f]{64}$'"
check "Upload: inCluster URL too" [ -n "$(field cvi some-image .status.imageUploadURLs.inCluster)" ]
code=$(curl -s -o /dev/null -w '%{http_code}' "$(echo "$URL" | sed 's/[0-9a-f]\{8\}$/00000000/')" -T "$W/disk.qcow2")
check "Upload: a wrong token gets 404" [ "$code" = 404 ]
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL" -T "$W/big.raw")
check "Upload: a body over the quota is refused with 413" [ "$code" = 413 ]
check "Upload: still WaitForUserUpload after the refusal" phase_is cvi some-image WaitForUserUpload
curl -sf "$URL" --progress-bar -T "$W/disk.qcow2" > "$T/curl.out" 2>/dev/null
check "Upload: curl URL --progress-bar -T FILE is accepted" grep -q received "$T/curl.out"
check "Upload: Ready" [ "$(wait_final some-image)" = Ready ]
check "Upload: qcow2 with the file's sha256" \
    [ "$(field cvi some-image .status.format) $(field cvi some-image .status.checksums.sha256)" = "qcow2 $(sha "$W/disk.qcow2")" ]
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL" -T "$W/disk.qcow2")
check "Upload: the URL is single-use (HTTP $code)" sh -c "[ $code = 404 ] || [ $code = 409 ]"

upload_cvi chunked
wait_for "$WAIT" phase_is cvi chunked WaitForUserUpload
curl -sf -H 'Transfer-Encoding: chunked' "$(field cvi chunked .status.imageUploadURLs.external)" \
    -T "$W/disk.raw.xz" >/dev/null
check "Upload chunked (xz raw): Ready, raw" [ "$(wait_final chunked) $(field cvi chunked .status.format)" = "Ready raw" ]

upload_cvi cli-up
vf upload cvi cli-up "$W/cd.iso" > "$T/up.out" 2> "$T/up.err"
rc=$?
diag "$(cat "$T/up.out" "$T/up.err")"
check "virtfleet upload cvi: exit 0 and says Ready" sh -c "[ $rc = 0 ] && grep -q Ready '$T/up.out'"
check "virtfleet upload cvi: an ISO, cdrom true" [ "$(field cvi cli-up .status.cdrom)" = true ]
upload_cvi cli-bad
vf upload cvi cli-bad "$W/backing.qcow2" > /dev/null 2> "$T/up.err"
rc=$?
diag "$(cat "$T/up.err")"
check "virtfleet upload cvi: exit 1 with the reason on Failed" sh -c "[ $rc = 1 ] && grep -q Refused '$T/up.err'"

check "Upload: an unused URL expires: Failed UploadExpired" \
    sh -c "[ '$(wait_final expiring)' = Failed ] && [ '$(reason expiring)' = UploadExpired ]"
check "Upload: an expired image shows no URL any more" [ -z "$(field cvi expiring .status.imageUploadURLs.external)" ]

# ---- registry -----------------------------------------------------------------------------
sh "$OCI" make_disk_image "$T/oci" "$W/disk.qcow2" v1 >/dev/null 2>"$T/oci.err" &&
skopeo copy -q --dest-tls-verify=false "oci:$T/oci:v1" "docker://$REG/images/disk:v1" 2>>"$T/oci.err" ||
    diag "$(cat "$T/oci.err")"
vf apply -f - >/dev/null <<EOF
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: ClusterVirtualImage
metadata:
  name: ubuntu-2204
spec:
  dataSource:
    type: ContainerImage
    containerImage:
      image: $REG/images/disk:v1
EOF
check "ContainerImage from a registry: Ready" [ "$(wait_final ubuntu-2204)" = Ready ]
diag "registry: $(reason ubuntu-2204): $(message ubuntu-2204)"
check "ContainerImage: qcow2 with the disk file's sha256" \
    [ "$(field cvi ubuntu-2204 .status.format) $(field cvi ubuntu-2204 .status.checksums.sha256)" = "qcow2 $(sha "$W/disk.qcow2")" ]
check "ContainerImage: the status names the file taken from /disk/" [ "$(field cvi ubuntu-2204 .status.source.file)" = disk.qcow2 ]

# An xz disk file in the layer: decoded while the layer streams in.  And a
# copy of it whose layer blob is changed in the registry's storage: the
# digest fails at the layer's end, after the disk file was written.
registry_cvi() { # NAME IMAGE
    printf 'apiVersion: virtualization.deckhouse.io/v1alpha2\nkind: ClusterVirtualImage\nmetadata:\n  name: %s\nspec:\n  dataSource:\n    type: ContainerImage\n    containerImage:\n      image: %s\n' "$1" "$2" |
        vf apply -f - >/dev/null
}
cp "$W/disk.raw.xz" "$W/corrupt.raw.xz"
{ sh "$OCI" make_disk_image "$T/oci" "$W/disk.raw.xz" xz && sh "$OCI" make_disk_image "$T/oci3" "$W/corrupt.raw.xz" c1 &&
  skopeo copy -q --dest-tls-verify=false "oci:$T/oci:xz" "docker://$REG/images/disk:xz" &&
  skopeo copy -q --dest-tls-verify=false "oci:$T/oci3:c1" "docker://$REG/images/corrupt:c1" &&
  h=$(ls -S "$T/oci3/blobs/sha256" | head -n1) &&
  printf ZZZZ | dd of="$T/registry/storage/docker/registry/v2/blobs/sha256/$(echo "$h" | cut -c1-2)/$h/data" \
      bs=1 seek=300000 conv=notrunc 2>/dev/null; } >/dev/null 2>"$T/oci.err" || diag "$(cat "$T/oci.err")"
registry_cvi reg-xz "$REG/images/disk:xz"
check "ContainerImage, xz disk file: Ready" [ "$(wait_final reg-xz)" = Ready ]
check "ContainerImage, xz disk file: stored raw, the unpacked image, the xz file's sha256" \
    sh -c "[ '$(field cvi reg-xz .status.format) $(field cvi reg-xz .status.source.compression)' = 'raw xz' ] &&
           [ '$(field cvi reg-xz .status.checksums.sha256)' = '$(sha "$W/disk.raw.xz")' ] &&
           cmp -s '$(field cvi reg-xz .status.target.path)' '$W/disk.raw'"
registry_cvi reg-corrupt "$REG/images/corrupt:c1"
RC_UID=$(uid_of reg-corrupt)
check "ContainerImage, a layer changed in the registry: Failed" [ "$(wait_final reg-corrupt)" = Failed ]
diag "corrupt layer: $(reason reg-corrupt): $(message reg-corrupt)"
check "ContainerImage, a layer changed in the registry: reason ChecksumMismatch" [ "$(reason reg-corrupt)" = ChecksumMismatch ]
check "ContainerImage, a layer changed in the registry: no files left" no_files_of "$RC_UID"

# A single manifest (no index) built for another platform: refused before any layer.
sh "$OCI" make_disk_image "$T/oci" "$W/disk.raw" arm arm64 >/dev/null 2>"$T/oci.err" &&
skopeo copy -q --dest-tls-verify=false "oci:$T/oci:arm" "docker://$REG/images/disk:arm" 2>>"$T/oci.err" ||
    diag "$(cat "$T/oci.err")"
vf apply -f - >/dev/null <<EOF
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: ClusterVirtualImage
metadata:
  name: arm-only
spec:
  dataSource:
    type: ContainerImage
    containerImage:
      image: $REG/images/disk:arm
EOF
check "ContainerImage for linux/arm64: Failed" [ "$(wait_final arm-only)" = Failed ]
diag "platform: $(reason arm-only): $(message arm-only)"
check "ContainerImage for linux/arm64: reason PlatformMismatch, the message names both platforms" \
    sh -c "[ '$(reason arm-only)' = PlatformMismatch ] && echo '$(message arm-only)' | grep -q 'linux/arm64, not linux/amd64'"

# ---- registry credentials (import.authFile), token auth -----------------------------------
sh "$OCI" make_disk_image "$T/authroot/private/disk" "$W/disk.qcow2" v1 >/dev/null 2>"$T/oci.err" ||
    diag "$(cat "$T/oci.err")"
reg_cvi() {
    printf 'apiVersion: virtualization.deckhouse.io/v1alpha2\nkind: ClusterVirtualImage\nmetadata:\n  name: %s\nspec:\n  dataSource:\n    type: ContainerImage\n    containerImage:\n      image: %s\n' "$1" "$2" |
        vf apply -f - >/dev/null
}
reg_cvi priv-wrong "$AREG/private/disk:v1"
check "ContainerImage with the wrong password in import.authFile: Failed" [ "$(wait_final priv-wrong)" = Failed ]
diag "wrong password: $(reason priv-wrong): $(message priv-wrong)"
check "... the token service saw basic auth (the credentials were sent)" \
    grep -q "REQ GET /token.* auth=basic" "$T/afixture.log"
auth_file reguser:regpass 644
reg_cvi priv-open "$AREG/private/disk:v1"
check "an authFile every user may read: Failed" [ "$(wait_final priv-open)" = Failed ]
diag "mode 0644: $(reason priv-open): $(message priv-open)"
check "... reason AuthFileInsecure, the message names the file and its mode" \
    sh -c "[ '$(reason priv-open)' = AuthFileInsecure ] && echo '$(message priv-open)' | grep -q '$T/auth.json.*mode 0644'"
chmod 600 "$T/auth.json"
reg_cvi priv "$AREG/private/disk:v1"
check "after chmod 600 (no reload: the file is read at each import): Ready" [ "$(wait_final priv)" = Ready ]
check "... with the disk file's sha256" \
    [ "$(field cvi priv .status.format) $(field cvi priv .status.checksums.sha256)" = "qcow2 $(sha "$W/disk.qcow2")" ]
check "the registry served a manifest only with a bearer token" \
    grep -q "REQ GET /v2/private/disk/manifests/v1 .*auth=bearer" "$T/afixture.log"
vf delete cvi priv-wrong priv-open priv >/dev/null 2>&1

# ---- kill -9 mid-download, restart: resumed with Range, Ready ----------------------------------
http_cvi resumed "$H/slow/262144/files/slow.raw"
wait_for "$WAIT" sh -c "[ \"\$(find '$T/dvcr/tmp' -name '*.download' -size +300k | wc -l)\" -ge 1 ]" ||
    diag "no partial download appeared"
kill -9 "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null; DAEMON_PID=
check "kill -9 mid-import: still Provisioning on disk, partial download kept" \
    sh -c "find '$T/dvcr/tmp' -name '*.download' -size +300k | grep -q ."
vf_start || fail_out "the daemon restarts after kill -9"
check "kill -9 mid-import: Ready after the restart" [ "$(wait_final resumed)" = Ready ]
check "kill -9 mid-import: the stored image is the file" cmp -s "$(field cvi resumed .status.target.path)" "$W/slow.raw"
check "kill -9 mid-import: the download resumed with a Range request" \
    grep -Eq 'REQ GET /slow/262144/files/slow.raw .*range=bytes=[1-9][0-9]*-' "$T/fixture.log"

# ---- SIGTERM mid-import: the module stops its job, keeps the download ------------------------
http_cvi stopped "$H/slow/262144/files/slow.raw"
wait_for "$WAIT" phase_is cvi stopped Provisioning
STOPPED_UID=$(uid_of stopped)
wait_for "$WAIT" sh -c "[ \"\$(find '$T/dvcr/tmp' -name '$STOPPED_UID.download' -size +300k | wc -l)\" -ge 1 ]" ||
    diag "no partial download appeared"
check "SIGTERM mid-import: the daemon stops cleanly" vf_stop
check "SIGTERM mid-import: the partial download is kept" \
    sh -c "find '$T/dvcr/tmp' -name '$STOPPED_UID.download' -size +300k | grep -q ."
vf_start || fail_out "the daemon restarts after SIGTERM"
check "SIGTERM mid-import: Ready after the restart, the file intact" \
    sh -c "[ '$(wait_final stopped)' = Ready ] && cmp -s \"\$('$VIRTFLEET' --socket '$SOCK' get cvi stopped -o 'jsonpath={.status.target.path}')\" '$W/slow.raw'"

# ---- delete mid-import: the job is canceled, nothing is left ------------------------------------
http_cvi doomed "$H/slow/65536/files/slow.raw"
wait_for "$WAIT" phase_is cvi doomed Provisioning
DOOMED_UID=$(uid_of doomed)
wait_for "$WAIT" sh -c "find '$T/dvcr/tmp' -name '$DOOMED_UID.download' -size +60k | grep -q ."
vf delete cvi doomed >/dev/null
check "delete mid-import: the image goes well before its download could end" \
    wait_for 20 sh -c "! '$VIRTFLEET' --socket '$SOCK' get cvi doomed >/dev/null 2>&1"
check "delete mid-import: its files are removed" no_files_of "$DOOMED_UID"

# ---- deletion ----------------------------------------------------------------------------
vf apply -f - >/dev/null <<EOF
apiVersion: virtfleet.io/v1alpha2
kind: VirtualMachine
metadata:
  name: uses-cd
spec:
  runPolicy: AlwaysOff
  cpu: { cores: 1 }
  memory: { size: 128Mi }
  blockDeviceRefs:
    - { kind: ClusterVirtualImage, name: cd }
EOF
CD_UID=$(uid_of cd)
vf delete cvi cd >/dev/null
check "delete while a VM uses it: Terminating" wait_for "$WAIT" phase_is cvi cd Terminating
sleep 1
check "delete while a VM uses it: the condition names the VM" \
    sh -c "'$VIRTFLEET' --socket '$SOCK' describe cvi cd | grep -q uses-cd"
check "delete while a VM uses it: the file stays" sh -c "[ -n \"\$(find '$T/dvcr/images' -name '$CD_UID.*')\" ]"
vf delete vm uses-cd >/dev/null
check "the VM gone: the image is deleted" wait_for "$WAIT" sh -c "! '$VIRTFLEET' --socket '$SOCK' get cvi cd >/dev/null 2>&1"
check "the VM gone: its files are removed" no_files_of "$CD_UID"

# ---- SIGHUP: a bigger quota applies live -----------------------------------------------------
images_config 1Gi
kill -HUP "$DAEMON_PID"
check "SIGHUP: the new quota is applied without a restart" \
    wait_for "$WAIT" grep -q 'images: settings applied (quota 1073741824 bytes)' "$T/daemon.log"
http_cvi big-ok "$H/files/big.raw"
check "SIGHUP: the image over the old quota is Ready now, stored sparse" \
    sh -c "[ '$(wait_final big-ok)' = Ready ] && [ \"\$('$VIRTFLEET' --socket '$SOCK' get cvi big-ok -o 'jsonpath={.status.size.storedBytes}')\" -lt 1048576 ]"

for n in $(vf get cvi -o name | sed 's|.*/||'); do vf delete cvi "$n" >/dev/null; done
check "every image deleted" wait_for "$WAIT" sh -c "[ -z \"\$('$VIRTFLEET' --socket '$SOCK' get cvi -o name 2>/dev/null)\" ]"
check "the image store is empty" sh -c "[ -z \"\$(find '$T/dvcr/images' '$T/dvcr/tmp' -type f)\" ]"

check "the daemon stops cleanly" vf_stop
done_testing
