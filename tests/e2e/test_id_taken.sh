#!/usr/bin/env bash
# A device ID that is already registered: the device makes a new one and succeeds.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
setup_test
new_fleet "$WORK/fleet"
start_server "$WORK/fleet"

device_config "$WORK/a" "$WORK/fleet/credentials.zip"
sed -i 's/^\[provision\]$/[provision]\ndevice_id = "shared-name"/' "$WORK/a/sota.toml"
"$OTAD_BIN/otad" -c "$WORK/a/sota.toml" --no-updates once 2>"$WORK/a/log" || { cat "$WORK/a/log"; fail "first device"; }

device_config "$WORK/b" "$WORK/fleet/credentials.zip"
sed -i 's/^\[provision\]$/[provision]\ndevice_id = "shared-name"/' "$WORK/b/sota.toml"
"$OTAD_BIN/otad" -c "$WORK/b/sota.toml" --no-updates once 2>"$WORK/b/log" || { cat "$WORK/b/log"; fail "second device"; }
grep -q "device ID 'shared-name' is already registered" "$WORK/b/log" || fail "no log line about the taken ID"
newid=$(cat "$WORK/b/storage/device_id")
[ "$newid" != shared-name ] || fail "device kept the taken ID"
echo "$newid" | grep -qE '^[a-z]+-[a-z]+-[0-9]{6}$' || fail "new ID '$newid' is not a readable generated name"
grep -q '"event":"id_taken"' "$WORK/b/storage/journal.jsonl" || fail "journal lacks id_taken"
n=$("$OTAD_BIN/server/ota-server" devices "$WORK/fleet" --json | grep -c '"uuid"')
[ "$n" = 2 ] || fail "server has $n devices, expected 2"
"$OTAD_BIN/otad-replay" "$WORK/b/storage/journal.jsonl" >/dev/null || fail "journal does not replay"
same_path "$WORK/b/storage/journal.jsonl" id_taken
pass "ID taken -> new ID $newid, provisioned"
