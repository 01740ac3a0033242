#!/usr/bin/env bash
# A server whose certificate is not signed by the CA in credentials.zip: the device refuses
# to talk to it (nothing reaches the server) and says why.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
setup_test
new_fleet "$WORK/genuine"
new_fleet "$WORK/impostor" # same host and port, different CAs
start_server "$WORK/impostor"
device_config "$WORK/d" "$WORK/genuine/credentials.zip"
if "$OTAD_BIN/otad" -c "$WORK/d/sota.toml" --retry-cap 1 --retries 2 --no-updates once 2>"$WORK/d/log"; then
	fail "the device provisioned against a server of another fleet"
fi
grep -q "not signed by the pinned CA" "$WORK/d/log" || { cat "$WORK/d/log"; fail "no message about the untrusted server"; }
grep -q "retrying" "$WORK/d/log" && fail "an untrusted server was retried"
same_path "$WORK/d/storage/journal.jsonl" wrong_server_ca
for f in pkey.pem client.pem root.crt; do [ ! -e "$WORK/d/storage/$f" ] || fail "$f written"; done
n=$("$OTAD_BIN/server/ota-server" requests "$WORK/impostor" --json | jq length)
[ "$n" = 0 ] || fail "the impostor server received $n requests"
unzip -Z1 "$WORK/d/credentials.zip" >"$WORK/entries"
grep -qx autoprov_credentials.p12 "$WORK/entries" || fail "fleet key removed after a failure"
pass "wrong server CA: refused before any request ($(grep -o 'provisioning failed: .*' "$WORK/d/log" | head -c 150))"

# A provisioned device whose server is replaced by an impostor: also refused.
stop_server
start_server "$WORK/genuine"
device_config "$WORK/e" "$WORK/genuine/credentials.zip"
"$OTAD_BIN/otad" -c "$WORK/e/sota.toml" --no-updates once 2>"$WORK/e/log" || { cat "$WORK/e/log"; fail "genuine provisioning"; }
stop_server
start_server "$WORK/impostor"
rm "$WORK/e/storage/is_registered" # forces an ECU registration call with the device identity
if "$OTAD_BIN/otad" -c "$WORK/e/sota.toml" --retries 1 --retry-cap 1 --no-updates once 2>"$WORK/e/log2"; then fail "talked to the impostor"; fi
grep -q "not signed by the pinned CA" "$WORK/e/log2" || { cat "$WORK/e/log2"; fail "no message (pinned root)"; }
[ -s "$WORK/e/storage/pkey.pem" ] || fail "credentials lost after refusing the impostor"
pass "pinned root: a provisioned device refuses an impostor and keeps its credentials"
