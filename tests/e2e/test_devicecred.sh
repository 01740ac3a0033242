#!/usr/bin/env bash
# Implicit provisioning (DeviceCred): a device certificate signed by the fleet's own CA,
# installed under [import]; no registration call; the server trusts the uploaded fleet CA.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
setup_test
new_fleet "$WORK/fleet"
make_fleet_ca "$WORK/ca"
"$OTAD_BIN/server/ota-server" add-fleet-ca "$WORK/fleet" "$WORK/ca/fleet-ca.pem" >/dev/null
start_server "$WORK/fleet"

imp=$WORK/import
sign_device "$WORK/ca" "$imp" dc-device-1
cp "$WORK/fleet/server_ca.pem" "$imp/root.crt"
echo "https://127.0.0.1:$PORT" >"$imp/gateway.url"
devicecred_config "$WORK/d" "$imp"
otad() { "$OTAD_BIN/otad" -c "$WORK/d/sota.toml" --no-updates "$@"; }

otad once 2>"$WORK/log1" || { cat "$WORK/log1"; fail "DeviceCred provisioning"; }
st=$WORK/d/storage
[ "$(cat "$st/device_id")" = dc-device-1 ] || fail "device ID is not the certificate CN"
cmp -s "$st/client.pem" "$imp/client.pem" || fail "client.pem not imported"
[ "$(stat -c %a "$st/pkey.pem")" = 600 ] || fail "pkey.pem mode"
"$OTAD_BIN/server/ota-server" devices "$WORK/fleet" --json >"$WORK/devices.json"
jq -e '.[] | select(.device_id=="dc-device-1") | .ecus | length == 1' "$WORK/devices.json" >/dev/null ||
	{ cat "$WORK/devices.json"; fail "server does not know dc-device-1 and its ECU"; }
"$OTAD_BIN/server/ota-server" requests "$WORK/fleet" --json >"$WORK/requests.json"
[ "$(jq '[.[] | select(.path=="/devices")] | length' "$WORK/requests.json")" = 0 ] || fail "DeviceCred made a registration call"
[ "$(jq -r '[.[] | .cn] | unique | join(",")' "$WORK/requests.json")" = dc-device-1 ] || fail "requests under another CN"
same_path "$st/journal.jsonl" devicecred
pass "DeviceCred: provisioned as dc-device-1 without a registration call"

# Restart: nothing changes, nothing is registered again.
otad once 2>"$WORK/log2" || { cat "$WORK/log2"; fail "restart"; }
n=$("$OTAD_BIN/server/ota-server" requests "$WORK/fleet" --json | jq length)
[ "$n" = 1 ] || fail "restart sent requests ($n in all)"
tail -n1 "$st/journal.jsonl" | jq -e '.event=="stored_provisioned"' >/dev/null || fail "restart did not use the stored state"
pass "restart: stored credentials match [import], no request"

# A renewed certificate (same CN): re-imported, no new ECU registration.
sign_device "$WORK/ca" "$imp" dc-device-1
otad once 2>"$WORK/log3" || { cat "$WORK/log3"; fail "renewal"; }
cmp -s "$st/client.pem" "$imp/client.pem" || fail "renewed certificate not imported"
grep -q "imported device credentials: certificate CN=dc-device-1" "$WORK/log3" || fail "no import log line"
tail -n1 "$st/journal.jsonl" | jq -e '.detail=="certificate renewed from [import]"' >/dev/null || fail "renewal path"
pass "renewed certificate re-imported"

# Missing, expired, not yet valid, mismatched: clear errors, nothing stored.
check_bad() {
	local name=$1 pattern=$2
	local d=$WORK/$name
	devicecred_config "$d" "$WORK/bad-$name"
	if "$OTAD_BIN/otad" -c "$d/sota.toml" --no-updates once 2>"$d.log"; then fail "$name: accepted"; fi
	grep -q -- "$pattern" "$d.log" || { cat "$d.log"; fail "$name: no message matching '$pattern'"; }
	for f in pkey.pem client.pem root.crt; do [ ! -e "$d/storage/$f" ] || fail "$name: $f stored"; done
	pass "$name: $(grep -o 'provisioning failed: .*' "$d.log" | head -c 170)"
}
mkdir -p "$WORK/bad-missing" && echo "https://127.0.0.1:$PORT" >"$WORK/bad-missing/gateway.url"
check_bad missing "Device credentials expected but not found"
same_path "$WORK/missing/storage/journal.jsonl" devicecred_missing_files
sign_device "$WORK/ca" "$WORK/bad-expired" dc-expired 20200101000000Z 20210101000000Z
cp "$imp/root.crt" "$imp/gateway.url" "$WORK/bad-expired/"
check_bad expired "expired on 2021-01-01"
sign_device "$WORK/ca" "$WORK/bad-future" dc-future 20400101000000Z 20410101000000Z
cp "$imp/root.crt" "$imp/gateway.url" "$WORK/bad-future/"
check_bad future "is not valid before 2040-01-01"
sign_device "$WORK/ca" "$WORK/bad-mismatch" dc-mismatch
cp "$imp/pkey.pem" "$WORK/bad-mismatch/pkey.pem"
cp "$imp/root.crt" "$imp/gateway.url" "$WORK/bad-mismatch/"
check_bad mismatch "does not hold the private key of the certificate"

# A certificate from a CA the server does not trust: refused, and said so.
make_fleet_ca "$WORK/rogue"
sign_device "$WORK/rogue" "$WORK/bad-rogue" dc-rogue
cp "$imp/root.crt" "$imp/gateway.url" "$WORK/bad-rogue/"
devicecred_config "$WORK/rogue-dev" "$WORK/bad-rogue"
if "$OTAD_BIN/otad" -c "$WORK/rogue-dev/sota.toml" --retry-cap 1 --retries 1 --no-updates once 2>"$WORK/rogue.log"; then fail "untrusted fleet CA accepted"; fi
grep -qE "rejected|TLS|certificate" "$WORK/rogue.log" || { cat "$WORK/rogue.log"; fail "no clear message for an untrusted certificate"; }
"$OTAD_BIN/server/ota-server" devices "$WORK/fleet" --json | jq -e 'all(.[]; .device_id != "dc-rogue")' >/dev/null || fail "server created dc-rogue"
pass "certificate of an unknown CA refused: $(grep -o 'provisioning failed: .*' "$WORK/rogue.log" | head -c 170)"

# Mode auto-detection: provision_path set -> SharedCred even with [import] present.
device_config "$WORK/auto" "$WORK/fleet/credentials.zip" "[import]" "base_path = \"$imp\""
"$OTAD_BIN/otad" -c "$WORK/auto/sota.toml" --no-updates once 2>"$WORK/auto.log" || { cat "$WORK/auto.log"; fail "auto SharedCred"; }
grep -q '"event":"zip_loaded"' "$WORK/auto/storage/journal.jsonl" || fail "provision_path did not select SharedCred"
# ... and mode = "DeviceCred" wins over provision_path.
mkdir -p "$WORK/fimp" && cp "$imp/root.crt" "$imp/gateway.url" "$WORK/fimp/"
sign_device "$WORK/ca" "$WORK/fimp" dc-forced
devicecred_config "$WORK/forced" "$WORK/fimp" "[provision]" "provision_path = \"$WORK/fleet/credentials.zip\"" 'mode = "DeviceCred"'
"$OTAD_BIN/otad" -c "$WORK/forced/sota.toml" --no-updates once 2>"$WORK/forced.log" || { cat "$WORK/forced.log"; fail "forced DeviceCred"; }
grep -q '"event":"credentials_imported"' "$WORK/forced/storage/journal.jsonl" || fail "mode = DeviceCred ignored"
pass "mode auto-detection and explicit mode"

# A daemon re-imports when the files change under it (a new CN: a new device).
devicecred_config "$WORK/w" "$WORK/wimp" "[uptane]" "polling_sec = 1"
mkdir -p "$WORK/wimp" && cp "$imp/root.crt" "$imp/gateway.url" "$WORK/wimp/"
sign_device "$WORK/ca" "$WORK/wimp" dc-watch-1
"$OTAD_BIN/otad" -c "$WORK/w/sota.toml" --no-updates daemon 2>"$WORK/w.log" &
pid=$!
for _ in $(seq 1 $((50 * OTAD_VALGRIND_SLOW))); do grep -q "provisioned:" "$WORK/w.log" && break; sleep 0.1; done
sign_device "$WORK/ca" "$WORK/wimp" dc-watch-2
for _ in $(seq 1 $((60 * OTAD_VALGRIND_SLOW))); do [ "$(grep -c "provisioned:" "$WORK/w.log")" -ge 2 ] && break; sleep 0.1; done
kill -TERM $pid
wait $pid || true
grep -q "the \[import\] credentials changed" "$WORK/w.log" || { cat "$WORK/w.log"; fail "daemon did not notice the change"; }
[ "$(cat "$WORK/w/storage/device_id")" = dc-watch-2 ] || fail "daemon did not switch to dc-watch-2"
"$OTAD_BIN/server/ota-server" devices "$WORK/fleet" --json | jq -e 'any(.[]; .device_id == "dc-watch-2" and (.ecus | length) == 1)' >/dev/null ||
	fail "dc-watch-2 not registered with its ECU"
"$OTAD_BIN/otad-replay" "$WORK/w/storage/journal.jsonl" >/dev/null || fail "daemon journal replay"
pass "daemon re-imports changed credentials"
