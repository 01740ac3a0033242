#!/usr/bin/env bash
# A fleet of 500 virtual devices (OTAD_FLEET_SCALE_DEVICES overrides) runs the whole life of
# a device against the real server, twice: shared-credential provisioning with connections
# kept between polls, and device certificates from a fleet CA connecting anew for each poll. Once every device is provisioned the server assigns one
# update to all of them (--on-provisioned); each device then polls twice, downloads (hash
# only) and installs it (pacman none) in its first cycle and finds nothing new in the
# second. The report must add up: final states, updates, requests per kind, identities.
# The fleet journal replays cleanly, and an altered copy is caught per device.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
setup_test
N=${OTAD_FLEET_SCALE_DEVICES:-500}
new_fleet "$WORK/fleet"
head -c 65536 /dev/urandom >"$WORK/fw.bin"
"$OTAD_BIN/server/ota-server" add-target "$WORK/fleet" "$WORK/fw.bin" --name fw-1.0 --version 1.0 \
	--hwid test-board >/dev/null
make_fleet_ca "$WORK/ca"
"$OTAD_BIN/server/ota-server" add-fleet-ca "$WORK/fleet" "$WORK/ca/fleet-ca.pem" >/dev/null
start_server "$WORK/fleet" --quiet
URL=https://127.0.0.1:$PORT
ASSIGN="'$OTAD_BIN/server/ota-server' assign '$WORK/fleet' --all --target fw-1.0 >'$WORK/assign.out'"

# check_report NAME REPORT: the numbers of one run add up.
check_report() {
	local name=$1 r=$2
	q() { jq "$1" "$r"; }
	[ "$(q '[.final_states[]] | add')" = "$N" ] || fail "$name: final states do not add up to $N: $(q -c .final_states)"
	[ "$(q .final_states.polling)" = "$N" ] || fail "$name: not every device ended polling: $(q -c .final_states)"
	[ "$(q .expected_final_state)" = "$N" ] || fail "$name: $(q .expected_final_state) of $N as expected"
	[ "$(q .updates_installed)" = "$N" ] || fail "$name: $(q .updates_installed) updates installed, expected $N"
	[ "$(q .cycles_completed)" = "$((2 * N))" ] || fail "$name: $(q .cycles_completed) cycles, expected $((2 * N))"
	[ "$(q .identity_mismatches)" = 0 ] || fail "$name: $(q .identity_mismatches) replies named another device's certificate"
	[ "$(q '.identity_checked == .requests_total')" = true ] || fail "$name: replies without X-Client-Identity"
	# successful requests per kind, from the protocol: per device 1 ECU registration; 3
	# manifests (2 cycles + the installation report); 10 metadata GETs (cycle 1: director
	# 1.root 2.root(404) targets, image 1.root 2.root(404) timestamp snapshot targets;
	# cycle 2: director 2.root(404) targets); 1 download; events at least once
	ok() { q ".requests.$1.count - .requests.$1.errors"; }
	[ "$(ok ecus)" = "$N" ] || fail "$name: $(ok ecus) ECU registrations, expected $N"
	[ "$(ok manifest)" = "$((3 * N))" ] || fail "$name: $(ok manifest) manifests, expected $((3 * N))"
	[ "$(ok metadata)" = "$((10 * N))" ] || fail "$name: $(ok metadata) metadata GETs, expected $((10 * N))"
	[ "$(ok download)" = "$N" ] || fail "$name: $(ok download) downloads, expected $N"
	[ "$(ok events)" -ge "$N" ] || fail "$name: $(ok events) event posts, expected at least $N"
	local sum
	sum=$(q '[.requests[].count] | add')
	[ "$sum" = "$(q .requests_total)" ] || fail "$name: request kinds add up to $sum, total says $(q .requests_total)"
	[ "$(q '.handshakes <= .requests_total and .handshakes >= 1')" = true ] || fail "$name: handshakes $(q .handshakes)"
	# (the heap is 0 where mallinfo2 cannot see it: under ASan or valgrind)
	[ "$(q '.heap_bytes_per_device >= 0 and .peak_rss_kib > 0 and .cpu_seconds > 0')" = true ] ||
		fail "$name: no memory or CPU figures"
}

# --- shared credentials, connections kept between polls ---
"$OTAD_BIN/otad-fleet" --devices "$N" --credentials "$WORK/fleet/credentials.zip" --seed 11 \
	--hwid test-board --cycles 2 --poll 2 --concurrency 48 --keep-alive --on-provisioned "$ASSIGN" \
	--journal "$WORK/shared.jsonl" --report "$WORK/shared.json" --no-progress \
	>"$WORK/shared.out" 2>"$WORK/shared.err" || { cat "$WORK/shared.out" "$WORK/shared.err"; fail "shared fleet run"; }
cat "$WORK/shared.out"
check_report shared "$WORK/shared.json"
[ "$(jq '.requests.register.count - .requests.register.errors' "$WORK/shared.json")" = "$N" ] || fail "shared: registrations"
[ "$(jq .mode "$WORK/shared.json")" = '"shared"' ] || fail "shared: mode"
# keep-alive: the fleet key's connection, then one per device identity for all its polls
[ "$(jq ".handshakes < 4 * $N" "$WORK/shared.json")" = true ] || fail "shared: $(jq .handshakes "$WORK/shared.json") handshakes with --keep-alive"
pass "shared mode: $N devices provisioned, updated and polled twice (keep-alive); the report adds up"

# --- device certificates from a fleet CA, a new connection for every poll ---
"$OTAD_BIN/otad-fleet" --devices "$N" --mode device --fleet-ca "$WORK/ca/fleet-ca.pem" \
	--fleet-ca-key "$WORK/ca/fleet-ca.key" --server "$URL" --server-ca "$WORK/fleet/server_ca.pem" \
	--seed 12 --hwid test-board --cycles 2 --poll 2 --concurrency 48 \
	--on-provisioned "$ASSIGN" --journal "$WORK/device.jsonl" --report "$WORK/device.json" \
	--no-progress >"$WORK/device.out" 2>"$WORK/device.err" || { cat "$WORK/device.out" "$WORK/device.err"; fail "device-mode fleet run"; }
cat "$WORK/device.out"
check_report device "$WORK/device.json"
[ "$(jq '.requests.register.count' "$WORK/device.json")" = 0 ] || fail "device mode registered with the fleet key"
# connect per poll: the ECU registration and each of the two polls make a handshake
[ "$(jq ".handshakes >= 3 * $N" "$WORK/device.json")" = true ] || fail "device: $(jq .handshakes "$WORK/device.json") handshakes, expected one per poll"
# ... and every connection after a device's first resumes its own TLS session (curl's
# cache is keyed by the client certificate; the identity check above would catch a session
# resumed under another device's certificate)
[ "$(jq ".resumed_sessions >= 2 * $N" "$WORK/device.json")" = true ] ||
	fail "device: $(jq .resumed_sessions "$WORK/device.json") resumed TLS sessions, expected at least $((2 * N))"
# the heap is measured on idle devices: libcurl has closed every pooled connection by then
[ "$(jq ".open_connections < $N / 10" "$WORK/device.json")" = true ] ||
	fail "device: $(jq .open_connections "$WORK/device.json") sockets open when the idle heap was measured"
"$OTAD_BIN/server/ota-server" devices "$WORK/fleet" --json >"$WORK/devices.json"
[ "$(jq '[.[] | select(.provisioning == "implicit")] | length' "$WORK/devices.json")" = "$N" ] ||
	fail "the server knows $(jq '[.[] | select(.provisioning == "implicit")] | length' "$WORK/devices.json") implicit devices, expected $N"
pass "device mode: $N fleet-CA certificates, implicit provisioning, a connection per poll resuming its TLS session; the report adds up"

# --- the journals replay; an altered copy is caught per device ---
for j in shared device; do
	"$OTAD_BIN/otad-replay" "$WORK/$j.jsonl" >"$WORK/$j.replay" || { cat "$WORK/$j.replay"; fail "$j journal replay"; }
	grep -q "$N devices, $N runs, $N polling" "$WORK/$j.replay" || fail "$j replay: $(cat "$WORK/$j.replay")"
done
# two devices' lines altered: a wrong target state, and a line that skips a transition
a=$(grep -n '"event":"downloaded"' "$WORK/shared.jsonl" | sed -n "$((N / 3 + 1))p" | cut -d: -f1)
da=$(sed -n "${a}p" "$WORK/shared.jsonl" | jq -r .device)
b=$(grep -n '"event":"installed"' "$WORK/shared.jsonl" | grep -v "\"device\":\"$da\"" |
	sed -n "$((2 * N / 3))p" | cut -d: -f1)
db=$(sed -n "${b}p" "$WORK/shared.jsonl" | jq -r .device)
sed -e "${a}s/\"to\":\"installing\"/\"to\":\"polling\"/" -e "${b}d" "$WORK/shared.jsonl" >"$WORK/altered.jsonl"
set +e
"$OTAD_BIN/otad-replay" "$WORK/altered.jsonl" >"$WORK/altered.replay"
rc=$?
set -e
cat "$WORK/altered.replay"
[ "$rc" = 1 ] || fail "the altered journal replayed (rc $rc)"
grep -q "DIVERGED at line $a: device $da: 'downloading' on 'downloaded' leads to 'installing', journal says 'polling'" \
	"$WORK/altered.replay" || fail "the altered line $a of $da was not reported"
grep -q "DIVERGED at line [0-9]*: device $db was left in 'installing'" "$WORK/altered.replay" ||
	fail "the removed line of $db was not reported"
grep -q "2 of $N devices diverged" "$WORK/altered.replay" || fail "other devices were reported as diverging"
pass "fleet journals replay per device; an altered copy is caught for exactly the two devices changed"
