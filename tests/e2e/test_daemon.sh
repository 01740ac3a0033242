#!/usr/bin/env bash
# otad daemon: provisions, keeps running, and ends cleanly on SIGTERM or SIGINT, also in
# the middle of a backoff.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
setup_test
new_fleet "$WORK/fleet"
start_server "$WORK/fleet"
device_config "$WORK/d" "$WORK/fleet/credentials.zip"

"$OTAD_BIN/otad" -c "$WORK/d/sota.toml" --no-updates daemon 2>"$WORK/d/log" &
pid=$!
for _ in $(seq 1 100); do grep -q "provisioned:" "$WORK/d/log" && break; sleep 0.1; done
grep -q "provisioned:" "$WORK/d/log" || { cat "$WORK/d/log"; fail "daemon did not provision"; }
sleep 0.3
kill -0 $pid || fail "daemon exited after provisioning"
kill -TERM $pid
set +e
wait $pid
rc=$?
set -e
[ $rc = 0 ] || { cat "$WORK/d/log"; fail "daemon exit $rc after SIGTERM"; }
grep -q "SIGTERM received; stopping" "$WORK/d/log" || fail "no SIGTERM log line"
pass "daemon provisions, stays up, exits 0 on SIGTERM"

# SIGINT while waiting to retry an unreachable server.
stop_server
device_config "$WORK/e" "$WORK/fleet/credentials.zip"
"$OTAD_BIN/otad" -c "$WORK/e/sota.toml" --no-updates daemon 2>"$WORK/e/log" &
pid=$!
for _ in $(seq 1 50); do grep -q "retrying in" "$WORK/e/log" && break; sleep 0.1; done
grep -q "retrying in" "$WORK/e/log" || { cat "$WORK/e/log"; fail "daemon did not back off"; }
kill -INT $pid
set +e
timeout 5 tail --pid=$pid -f /dev/null
wait $pid
rc=$?
set -e
[ $rc = 0 ] || { cat "$WORK/e/log"; fail "daemon exit $rc after SIGINT during backoff"; }
"$OTAD_BIN/otad-replay" "$WORK/e/storage/journal.jsonl" >/dev/null || fail "journal after SIGINT does not replay"
pass "daemon stops cleanly on SIGINT during a backoff"

# One daemon, two updates one after the other: between cycles otad drops the parsed image
# metadata and parses its stored copy again when the director assigns something new
# (here after the image repository's snapshot and targets changed).
srv() { "$OTAD_BIN/server/ota-server" "$@"; }
start_server "$WORK/fleet"
device_config "$WORK/u" "$WORK/fleet/credentials.zip" "[uptane]" "polling_sec = 1" "[pacman]" \
	'type = "none"' "images_path = \"$WORK/u/images\""
"$OTAD_BIN/otad" -c "$WORK/u/sota.toml" daemon 2>"$WORK/u/log" &
pid=$!
# wait_for PATTERN: until the daemon's log has it (20 s at most)
wait_for() {
	for _ in $(seq 200); do
		grep -q "$1" "$WORK/u/log" && return 0
		kill -0 $pid 2>/dev/null || { cat "$WORK/u/log"; fail "daemon died waiting for '$1'"; }
		sleep 0.1
	done
	cat "$WORK/u/log"
	fail "daemon log never said '$1'"
}
wait_for "no update assigned"
id=$(cat "$WORK/u/storage/device_id")
for v in 1 2; do
	head -c 100000 /dev/urandom >"$WORK/fw-$v.bin"
	srv add-target "$WORK/fleet" "$WORK/fw-$v.bin" --name "fw-$v.bin" --version "$v.0" --hwid test-board >/dev/null
	srv assign "$WORK/fleet" --device "$id" --target "fw-$v.bin" >/dev/null
	wait_for "installed fw-$v.bin\|fw-$v.bin.*installed"
	for _ in $(seq 100); do
		jq -e --arg n "fw-$v.bin" '.name==$n' "$WORK/u/storage/installed_target" >/dev/null 2>&1 && break
		sleep 0.1
	done
	jq -e --arg n "fw-$v.bin" '.name==$n' "$WORK/u/storage/installed_target" >/dev/null ||
		fail "the daemon did not record fw-$v.bin as installed"
done
kill -TERM $pid
wait $pid || { cat "$WORK/u/log"; fail "daemon exit $? after two updates"; }
grep -q "stored image" "$WORK/u/log" && { cat "$WORK/u/log"; fail "a stored image document did not verify again"; }
[ "$(grep -c "update available" "$WORK/u/log")" = 2 ] || { cat "$WORK/u/log"; fail "expected two updates found"; }
"$OTAD_BIN/otad-replay" "$WORK/u/storage/journal.jsonl" >/dev/null || fail "journal of two updates does not replay"
pass "one daemon installs two updates in turn, parsing the stored image metadata again for the second"
