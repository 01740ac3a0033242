#!/usr/bin/env bash
# Fresh provisioning end to end, then a restart that must not register again.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
setup_test

new_fleet "$WORK/fleet"
start_server "$WORK/fleet"
dev=$WORK/dev
device_config "$dev" "$WORK/fleet/credentials.zip"

"$OTAD_BIN/otad" -c "$dev/sota.toml" --no-updates once 2>"$dev/log" || { cat "$dev/log"; fail "otad once failed"; }
grep -q "provisioned: device ID" "$dev/log" || fail "no 'provisioned' log line"
pass "otad once provisions"

st=$dev/storage
for f in root.crt client.pem pkey.pem device_id ecukey.pem ecukey.pub primary_ecu_serial is_registered; do
	[ -s "$st/$f" ] || fail "missing $f"
done
[ "$(stat -c %a "$st")" = 700 ] || fail "storage dir mode $(stat -c %a "$st")"
[ "$(stat -c %a "$st/pkey.pem")" = 600 ] || fail "pkey.pem mode"
[ "$(stat -c %a "$st/ecukey.pem")" = 600 ] || fail "ecukey.pem mode"
[ "$(grep -c 'BEGIN CERTIFICATE' "$st/client.pem")" -ge 2 ] || fail "client.pem is not a chain (cert + CA)"
cmp -s "$st/root.crt" "$WORK/fleet/server_ca.pem" || openssl verify -CAfile "$st/root.crt" "$WORK/fleet/server.pem" >/dev/null ||
	fail "root.crt does not verify the server certificate"
pass "files, modes and chain"

# The certificate's CN is the UUID the server assigned, and the server knows the ECU.
uuid=$(openssl x509 -in "$st/client.pem" -noout -subject -nameopt RFC2253 | sed 's/.*CN=\([^,]*\).*/\1/')
"$OTAD_BIN/server/ota-server" devices "$WORK/fleet" --json >"$WORK/devices.json"
grep -q "\"$uuid\"" "$WORK/devices.json" || fail "server does not know $uuid"
grep -q "\"$(cat "$st/primary_ecu_serial")\"" "$WORK/devices.json" || fail "server lacks the ECU"
grep -q "\"$(cat "$st/device_id")\"" "$WORK/devices.json" || fail "server lacks the device ID"
pass "server registered device $uuid and its ECU"

# The fleet key is gone from the device's zip; the URL stays.
entries=$(unzip -Z1 "$dev/credentials.zip")
grep -qx autoprov_credentials.p12 <<<"$entries" && fail "fleet key still in the zip"
grep -qx autoprov.url <<<"$entries" || fail "autoprov.url lost"
pass "fleet key stripped from credentials.zip"

# status
"$OTAD_BIN/otad" -c "$dev/sota.toml" status --json >"$WORK/status.json"
grep -q '"provisioned":[[:space:]]*true' "$WORK/status.json" || fail "status does not say provisioned"
grep -q "\"device_uuid\":[[:space:]]*\"$uuid\"" "$WORK/status.json" || fail "status uuid"
pass "otad status --json"

# Restart: no second registration.
before=$("$OTAD_BIN/server/ota-server" requests "$WORK/fleet" | grep -c 'POST /devices' || true)
"$OTAD_BIN/otad" -c "$dev/sota.toml" --no-updates once 2>"$dev/log2" || { cat "$dev/log2"; fail "second run failed"; }
after=$("$OTAD_BIN/server/ota-server" requests "$WORK/fleet" | grep -c 'POST /devices' || true)
[ "$before" = "$after" ] || fail "restart registered again ($before -> $after POST /devices)"
[ "$(cat "$st/device_id")" = "$(grep -o '"device_id":[^,]*' "$WORK/status.json" | cut -d'"' -f4)" ] || fail "device id changed"
pass "restart keeps credentials and does not register again"

# The journal replays cleanly and shows both runs.
"$OTAD_BIN/otad-replay" "$st/journal.jsonl" >"$WORK/replay.txt" || { cat "$WORK/replay.txt"; fail "replay diverged"; }
grep -q "2 runs" "$WORK/replay.txt" || fail "expected 2 runs: $(cat "$WORK/replay.txt")"
same_path "$st/journal.jsonl" success_then_restart
pass "journal replays: $(cat "$WORK/replay.txt")"

# An ED25519 device and SharedCredReuse (keeps the fleet key).
dev2=$WORK/dev2
device_config "$dev2" "$WORK/fleet/credentials.zip" "[uptane]" 'key_type = "ED25519"'
sed -i 's/^\[provision\]$/[provision]\nmode = "SharedCredReuse"/' "$dev2/sota.toml"
"$OTAD_BIN/otad" -c "$dev2/sota.toml" --no-updates once 2>"$dev2/log" || { cat "$dev2/log"; fail "ED25519 device failed"; }
[ "$(wc -c <"$dev2/storage/ecukey.pub" | tr -d ' ')" -ge 64 ] || fail "ed25519 public key"
grep -qE '^[0-9A-F]{64}$' "$dev2/storage/ecukey.pub" || fail "ED25519 public key is not 64 upper-case hex digits"
unzip -Z1 "$dev2/credentials.zip" >"$WORK/entries2"
grep -qx autoprov_credentials.p12 "$WORK/entries2" || fail "SharedCredReuse removed the fleet key"
"$OTAD_BIN/server/ota-server" devices "$WORK/fleet" --json >"$WORK/devices2.json"
grep -q '"key_type":[[:space:]]*"ED25519"' "$WORK/devices2.json" || fail "server has no ED25519 ECU"
pass "ED25519 Uptane key and SharedCredReuse"

# The other PKCS#12 kinds: a 3DES fleet archive, and device archives with RC2-40 bags.
stop_server
pick_port
"$OTAD_BIN/server/ota-server" init "$WORK/fleet3" --port "$PORT" --p12 3des >/dev/null
start_server "$WORK/fleet3" --p12 legacy
dev3=$WORK/dev3
device_config "$dev3" "$WORK/fleet3/credentials.zip"
"$OTAD_BIN/otad" -c "$dev3/sota.toml" --no-updates once 2>"$dev3/log" || { cat "$dev3/log"; fail "3DES fleet archive / RC2-40 device archive"; }
pass "3DES fleet archive and RC2-40 device archive"
