#!/usr/bin/env bash
# The server answers POST /devices with a truncated or garbage PKCS#12: nothing is stored,
# the device retries (its ID is now taken, so it makes a new one) and ends provisioned.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
setup_test
new_fleet "$WORK/fleet"
for fault in truncate garbage; do
	stop_server
	start_server "$WORK/fleet" --faults "$fault@/devices:1"
	d=$WORK/$fault
	device_config "$d" "$WORK/fleet/credentials.zip"
	"$OTAD_BIN/otad" -c "$d/sota.toml" --retry-cap 1 --no-updates once 2>"$d/log" || { cat "$d/log"; fail "$fault: not provisioned"; }
	grep -q "PKCS#12 reply .* is unusable" "$d/log" || { cat "$d/log"; fail "$fault: no message about the reply"; }
	grep -q "nothing stored" "$d/log" || fail "$fault: message does not say nothing was stored"
	# The first transient error comes before any credential write.
	jq -r 'select(.event=="transient_error" or .event=="registered") | .event' "$d/storage/journal.jsonl" |
		head -n1 | grep -qx transient_error || fail "$fault: journal order"
	"$OTAD_BIN/otad-replay" "$d/storage/journal.jsonl" >/dev/null || fail "$fault: replay"
	pass "$fault PKCS#12 reply: rejected, nothing stored, retried, provisioned"
done
