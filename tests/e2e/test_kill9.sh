#!/usr/bin/env bash
# kill -9 in the middle of every storage write of a provisioning run (via the store's
# OTAD_TEST_KILL_AT_WRITE seam: half the temp file written, then SIGKILL), then a restart.
# After each: the device ends provisioned, its key matches its certificate, no temp file
# is left, and a device that already held credentials never registers again.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
setup_test
new_fleet "$WORK/fleet"
start_server "$WORK/fleet" --quiet
count_devices() { "$OTAD_BIN/server/ota-server" requests "$WORK/fleet" --json | jq '[.[] | select(.path=="/devices")] | length'; }

killed=0
for n in $(seq 1 14); do
	d=$WORK/k$n
	device_config "$d" "$WORK/fleet/credentials.zip"
	set +e
	OTAD_TEST_KILL_AT_WRITE=$n "$OTAD_BIN/otad" -c "$d/sota.toml" --retry-cap 1 --no-updates once 2>"$d/log1"
	rc=$?
	set -e
	if [ $rc = 0 ]; then
		break # fewer than n writes in a whole run
	fi
	[ $rc = 137 ] || { cat "$d/log1"; fail "write $n: exit $rc, expected a SIGKILL (137)"; }
	killed=$((killed + 1))
	held=0
	if [ -e "$d/storage/pkey.pem" ] || [ -e "$d/storage/creds.pending" ]; then held=1; fi
	before=$(count_devices)
	"$OTAD_BIN/otad" -c "$d/sota.toml" --retry-cap 1 --no-updates once 2>"$d/log2" || { cat "$d/log2"; fail "write $n: restart did not provision"; }
	after=$(count_devices)
	if [ $held = 1 ] && [ "$before" != "$after" ]; then fail "write $n: registered again although credentials were stored"; fi
	ls -a "$d/storage" >"$d/ls"
	grep -q '\.tmp\.' "$d/ls" && fail "write $n: temp file left"
	unzip -Z1 "$d/credentials.zip" >"$d/entries"
	grep -qx autoprov_credentials.p12 "$d/entries" && fail "write $n: fleet key left in the zip"
	a=$(openssl x509 -in "$d/storage/client.pem" -noout -pubkey | sha256sum)
	b=$(openssl pkey -in "$d/storage/pkey.pem" -pubout | sha256sum)
	[ "$a" = "$b" ] || fail "write $n: pkey.pem does not match client.pem"
	[ "$(stat -c %a "$d/storage/pkey.pem")" = 600 ] || fail "write $n: key mode"
	"$OTAD_BIN/otad-replay" "$d/storage/journal.jsonl" >/dev/null || fail "write $n: journal does not replay"
	echo "ok: killed at write $n (credentials held: $held), restart provisioned"
done
[ $killed -ge 10 ] || fail "only $killed kill points were reached"
pass "$killed kill points, every restart recovered"
