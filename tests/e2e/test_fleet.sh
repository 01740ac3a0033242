#!/usr/bin/env bash
# 200 virtual devices in one process provision against the real server, and each one only
# ever appears to the server under its own certificate (identity isolation on a shared
# curl multi handle).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
setup_test
new_fleet "$WORK/fleet"
start_server "$WORK/fleet" --quiet
"$OTAD_BIN/otad-fleet" --devices 200 --credentials "$WORK/fleet/credentials.zip" --seed 7 \
	--journal "$WORK/fleet.jsonl" --report "$WORK/report.json" --list-devices --no-progress \
	>"$WORK/out" 2>"$WORK/err" ||
	{ cat "$WORK/out" "$WORK/err"; fail "fleet run"; }
cat "$WORK/out"
[ "$(jq .final_states.provisioned "$WORK/report.json")" = 200 ] || fail "not all provisioned"
[ "$(jq .identity_mismatches "$WORK/report.json")" = 0 ] || fail "a reply named another certificate than the request's"
# every reply named the certificate it came with (X-Client-Identity), and both kinds were sent
[ "$(jq '.identity_checked == .requests_total' "$WORK/report.json")" = true ] || fail "replies without X-Client-Identity"
[ "$(jq '.requests.ecus.count - .requests.ecus.errors' "$WORK/report.json")" = 200 ] || fail "ECU registrations do not add up"
"$OTAD_BIN/server/ota-server" devices "$WORK/fleet" --json >"$WORK/devices.json"
"$OTAD_BIN/server/ota-server" requests "$WORK/fleet" --json >"$WORK/requests.json"
[ "$(jq length "$WORK/devices.json")" = 200 ] || fail "server has $(jq length "$WORK/devices.json") devices"

# Each device's UUID (its certificate CN) and ECU serial, as the fleet saw them, must be
# exactly what the server recorded from the certificate behind the ECU registration.
jq -r '.device_list[] | "\(.uuid) \(.ecu_serial)"' "$WORK/report.json" | sort >"$WORK/fleet_view"
jq -r '.[] | "\(.uuid) \(.ecus[0].serial)"' "$WORK/devices.json" | sort >"$WORK/server_view"
diff "$WORK/fleet_view" "$WORK/server_view" >/dev/null || fail "a device's ECU was registered under another certificate"
[ "$(cut -d' ' -f1 "$WORK/fleet_view" | sort -u | wc -l)" = 200 ] || fail "UUIDs not unique"
# Every /director/ecus request came with a distinct device certificate, one per device.
jq -r '.[] | select(.path=="/director/ecus") | .cn' "$WORK/requests.json" | sort >"$WORK/ecu_cns"
[ "$(wc -l <"$WORK/ecu_cns")" = 200 ] || fail "$(wc -l <"$WORK/ecu_cns") ECU requests, expected 200"
[ "$(sort -u "$WORK/ecu_cns" | wc -l)" = 200 ] || fail "some certificate made two ECU registrations"
cut -d' ' -f1 "$WORK/fleet_view" | diff - "$WORK/ecu_cns" >/dev/null || fail "ECU requests came from unknown certificates"
pass "identity isolation: 200 devices, each seen only as itself"
"$OTAD_BIN/otad-replay" "$WORK/fleet.jsonl" | tee "$WORK/replay" | grep -q "200 provisioned" || { cat "$WORK/replay"; fail "fleet journal replay"; }
pass "fleet journal replays: $(cat "$WORK/replay")"
