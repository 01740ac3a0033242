#!/usr/bin/env bash
# Device data end to end: otad tells the real ota-server its hardware, installed target,
# network and configuration (secrets redacted), each only when it changed since the server
# last accepted it; a refused kind does not fail the cycle and goes again next cycle. Then
# the download progress `otad status` shows for a download cut off midway, which the next
# run resumes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
setup_test
new_fleet "$WORK/fleet" --p12-password 'pw-Sekr1t'
start_server "$WORK/fleet"
srv() { "$OTAD_BIN/server/ota-server" "$@"; }
dev=$WORK/d
device_config "$dev" "$WORK/fleet/credentials.zip" '[provision]' 'p12_password = "pw-Sekr1t"' \
	"[pacman]" 'type = "none"' "images_path = \"$dev/images\""
otad() { "$OTAD_BIN/otad" -c "$dev/sota.toml" --retry-cap 1 "$@"; }
st=$dev/storage
host=$(hostname)

# data KIND: the device's record of KIND on the server (its value).
data() { srv devices "$WORK/fleet" --json | jq -c --arg id "$(cat "$st/device_id")" --arg k "$1" \
	'.[] | select(.device_id==$id) | .device_data[$k].value'; }
# sent PATH: how many requests for PATH the server has seen from the device.
sent() { srv requests "$WORK/fleet" --json | jq --arg p "$1" '[.[] | select(.path==$p)] | length'; }
counts() { echo "$(sent /system_info) $(sent /core/installed) $(sent /system_info/network) $(sent /system_info/config)"; }

# 1. The first cycle sends all four.
otad once 2>"$WORK/log1" || { cat "$WORK/log1"; fail "first cycle"; }
[ "$(counts)" = "1 1 1 1" ] || { srv requests "$WORK/fleet"; fail "first cycle: requests $(counts), want one of each"; }
data system_info | jq -e --arg h "$host" --arg a "$(uname -m)" \
	'.id==$h and .class=="system" and .architecture==$a and .cpu.count>=1 and .memory.size>0' >/dev/null ||
	{ data system_info; fail "hardware record"; }
data network | jq -e --arg h "$host" '.hostname==$h and (.local_ipv4|type=="string") and (.mac|type=="string")' >/dev/null ||
	{ data network; fail "network record"; }
[ "$(data installed)" = "[]" ] || { data installed; fail "installed record before any update"; }
data config | jq -r . >"$WORK/config.toml"
grep -qx "path = \"$st\"" "$WORK/config.toml" || { cat "$WORK/config.toml"; fail "config record lacks [storage] path"; }
grep -qx 'p12_password = "<redacted>"' "$WORK/config.toml" || { cat "$WORK/config.toml"; fail "p12_password not redacted"; }
grep -q 'pw-Sekr1t' "$WORK/config.toml" && fail "the p12 password reached the server"
grep -qx 'report_network = true' "$WORK/config.toml" || fail "config record lacks [telemetry]"
pass "first cycle: hardware, installed, network and config sent; hostname $host; no password"

# 2. Nothing changed: nothing sent again.
otad once 2>"$WORK/log2" || { cat "$WORK/log2"; fail "second cycle"; }
[ "$(counts)" = "1 1 1 1" ] || fail "unchanged device data sent again: $(counts)"
pass "second cycle: nothing changed, no device data sent"

# 3. A changed config value: only the config goes again.
otad once --set uptane.polling_sec=7 2>"$WORK/log3" || { cat "$WORK/log3"; fail "third cycle"; }
[ "$(counts)" = "1 1 1 2" ] || fail "after a config change: $(counts), want only the config again"
data config | jq -r . | grep -qx 'polling_sec = 7' || fail "the server has the old config"
pass "config changed (--set uptane.polling_sec=7): only the config sent again"

# 4. An update: the installed list goes with the report, nothing else.
head -c 100000 /dev/urandom >"$WORK/fw-1.bin"
srv add-target "$WORK/fleet" "$WORK/fw-1.bin" --name fw-1.bin --version 1.0 --hwid test-board >/dev/null
srv assign "$WORK/fleet" --device "$(cat "$st/device_id")" --target fw-1.bin >/dev/null
otad once --set uptane.polling_sec=7 2>"$WORK/log4" || { cat "$WORK/log4"; fail "update cycle"; }
[ "$(data installed)" = '[{"name":"fw-1.bin","version":"1.0"}]' ] || { data installed; fail "installed record after the update"; }
[ "$(counts)" = "1 2 1 2" ] || fail "after an update: $(counts), want only the installed list again"
pass "update installed: the server has [{fw-1.bin, 1.0}], nothing else resent"

# 5. [telemetry] off: network and config are not sent, even when they change.
otad once --set uptane.polling_sec=9 --set telemetry.report_config=false 2>"$WORK/log5" ||
	{ cat "$WORK/log5"; fail "cycle with report_config = false"; }
[ "$(counts)" = "1 2 1 2" ] || fail "report_config = false: $(counts)"
pass "telemetry.report_config = false: a changed config is not sent"

# 6. A refused kind: the cycle still succeeds; it goes next cycle.
stop_server
start_server "$WORK/fleet" --faults "500@/system_info:1"
dev2=$WORK/d2
device_config "$dev2" "$WORK/fleet/credentials.zip" '[provision]' 'p12_password = "pw-Sekr1t"' "[pacman]" 'type = "none"'
"$OTAD_BIN/otad" -c "$dev2/sota.toml" --retry-cap 1 once 2>"$WORK/log6" ||
	{ cat "$WORK/log6"; fail "a refused /system_info failed the cycle"; }
grep -q "device data not sent: PUT /system_info: server answered HTTP 500" "$WORK/log6" ||
	{ cat "$WORK/log6"; fail "no warning for the refused hardware record"; }
grep -q "no update assigned" "$WORK/log6" || fail "the cycle did not go on to the metadata"
sent2() { srv requests "$WORK/fleet" --json | jq --arg p "$1" --arg cn "$(openssl x509 -in "$dev2/storage/client.pem" -noout -subject -nameopt RFC2253 | sed 's/.*CN=\([^,]*\).*/\1/')" \
	'[.[] | select(.path==$p and .cn==$cn)] | "\(length):\(map(.status) | join(","))"' -r; }
[ "$(sent2 /system_info) $(sent2 /core/installed)" = "1:500 1:200" ] ||
	fail "refused cycle: $(sent2 /system_info) $(sent2 /core/installed)"
"$OTAD_BIN/otad" -c "$dev2/sota.toml" --retry-cap 1 once 2>"$WORK/log7" || { cat "$WORK/log7"; fail "cycle after the refusal"; }
[ "$(sent2 /system_info) $(sent2 /core/installed) $(sent2 /system_info/config)" = "2:500,200 1:200 1:200" ] ||
	fail "next cycle: $(sent2 /system_info) $(sent2 /core/installed) $(sent2 /system_info/config)"
pass "HTTP 500 on /system_info: cycle succeeded, sent again (and only it) next cycle"

# 7. Download progress: the transfer is cut halfway; status shows how far it got.
stop_server
start_server "$WORK/fleet" --faults "cut@/repo/targets/fw-big.bin:1"
head -c 3000000 /dev/urandom >"$WORK/fw-big.bin"
srv add-target "$WORK/fleet" "$WORK/fw-big.bin" --name fw-big.bin --version 2.0 --hwid test-board >/dev/null
srv assign "$WORK/fleet" --device "$(cat "$st/device_id")" --target fw-big.bin >/dev/null
if otad once --retries 0 2>"$WORK/log8"; then cat "$WORK/log8"; fail "a cut download succeeded"; fi
otad status --json >"$WORK/status.json" || true
jq -e '.download.target=="fw-big.bin" and .download.state=="partial" and .download.total==3000000
	and .download.received>0 and .download.received<3000000
	and .download.percent==((.download.received*100/3000000)|floor)' "$WORK/status.json" >/dev/null ||
	{ cat "$WORK/status.json"; cat "$WORK/log8"; fail "status --json does not show the partial download"; }
got=$(jq .download.received "$WORK/status.json")
[ "$got" = "$(stat -c %s "$dev"/images/*.part)" ] || fail "status disagrees with the .part file"
otad status >"$WORK/status.txt" || true
grep -qE "^download: +fw-big.bin: $got of 3000000 bytes \([0-9]+%\)" "$WORK/status.txt" ||
	{ cat "$WORK/status.txt"; fail "status text lacks the download line"; }
pass "download cut at $got of 3000000 bytes: otad status shows it ($(grep ^download: "$WORK/status.txt" | sed 's/  */ /g'))"

# The failure was reported, which ends the assignment: assign again; the next run resumes.
srv assign "$WORK/fleet" --device "$(cat "$st/device_id")" --target fw-big.bin --force >/dev/null
otad once 2>"$WORK/log9" || { cat "$WORK/log9"; fail "resumed download"; }
grep -q "resuming fw-big.bin at byte $got of 3000000" "$WORK/log9" || { cat "$WORK/log9"; fail "the download did not resume"; }
jq -e '.name=="fw-big.bin"' "$st/installed_target" >/dev/null || fail "fw-big.bin not installed"
otad status --json | jq -e '.download==null' >/dev/null || fail "status still shows a download"
[ "$(data installed)" = '[{"name":"fw-big.bin","version":"2.0"}]' ] || fail "installed record after the resumed update"
pass "next run resumed at byte $got and installed; status shows no download"
