#!/usr/bin/env bash
# Bad bodies (ota-server serve --faults): a reply larger than the cap (with a Content-Length,
# and chunked without one), malformed JSON, and a well-formed PKCS#12 with a wrong MAC. The
# device refuses each with a log line naming the request, stores nothing from it, and
# retries (provisioning) or keeps its trusted metadata (the update cycle).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
setup_test
new_fleet "$WORK/fleet"
srv() { "$OTAD_BIN/server/ota-server" "$@"; }

# run NAME FAULTS [otad options...]: a new device (or NAME's again) with FAULTS; sets RC.
run() {
	local name=$1 faults=$2
	shift 2
	stop_server
	start_server "$WORK/fleet" ${faults:+--faults "$faults"}
	[ -e "$WORK/$name/sota.toml" ] || device_config "$WORK/$name" "$WORK/fleet/credentials.zip" \
		"[network]" "timeout_sec = 5" "[pacman]" 'type = "none"' "images_path = \"$WORK/$name/images\""
	RC=0
	"$OTAD_BIN/otad" -c "$WORK/$name/sota.toml" --retry-cap 1 --retries 4 "$@" once 2>"$WORK/$name/log" || RC=$?
}
log_has() { grep -q -- "$2" "$WORK/$1/log" || { cat "$WORK/$1/log" >&2; fail "$1: no log line matching '$2'"; }; }

# --- provisioning: refused, nothing stored, retried ---
for f in huge huge-chunked badjson; do
	run "$f" "$f@/devices:1" --no-updates
	[ "$RC" = 0 ] || { cat "$WORK/$f/log"; fail "$f: not provisioned"; }
	case $f in
	huge*) log_has "$f" "POST /devices: response larger than allowed (response larger than 65536 bytes); retrying in" ;;
	badjson) log_has "$f" "POST /devices: the server's PKCS#12 reply (150 bytes) is unusable: .*; nothing stored; retrying in" ;;
	esac
	jq -r 'select(.event=="transient_error" or .event=="registered") | .event' "$WORK/$f/storage/journal.jsonl" |
		head -n1 | grep -qx transient_error || fail "$f: journal order"
	pass "$f reply to POST /devices: refused, nothing stored, retried, provisioned"
done

# A PKCS#12 whose MAC is wrong: refused; out of retries, nothing at all is stored and the
# fleet credential stays in credentials.zip.
run badmac 'badmac@/devices:9' --no-updates --retries 0
[ "$RC" = 1 ] || { cat "$WORK/badmac/log"; fail "badmac: exit $RC"; }
log_has badmac "POST /devices: the server's PKCS#12 reply ([0-9]* bytes) is unusable: .*MAC check failed.*; nothing stored"
for f in pkey.pem client.pem root.crt is_registered; do [ ! -e "$WORK/badmac/storage/$f" ] || fail "badmac: $f stored"; done
unzip -Z1 "$WORK/badmac/credentials.zip" | grep -x autoprov_credentials.p12 >/dev/null || fail "badmac: fleet key removed"
pass "PKCS#12 with a wrong MAC: refused, nothing stored, exit 1"

# --- the update cycle: bad metadata leaves the trusted metadata as it was ---
run upd ''
[ "$RC" = 0 ] || { cat "$WORK/upd/log"; fail "update device: first cycle"; }
id=$(cat "$WORK/upd/storage/device_id")
target() {
	head -c 20000 /dev/urandom >"$WORK/$1"
	srv add-target "$WORK/fleet" "$WORK/$1" --name "$1" --version "$1" --hwid test-board >/dev/null
	srv assign "$WORK/fleet" --device "$id" --target "$1" >/dev/null
}
target fw-1
run upd ''
[ "$RC" = 0 ] && jq -e '.name=="fw-1"' "$WORK/upd/storage/installed_target" >/dev/null ||
	{ cat "$WORK/upd/log"; fail "fw-1 not installed"; }
target fw-2 # now every fault below hides fw-2

# bad_metadata NAME FAULT FILE PATTERN: the cycle refuses the update with PATTERN, and the
# stored FILE is byte for byte what it was.
bad_metadata() {
	local name=$1 fault=$2 file=$3 pattern=$4
	local before
	before=$(sha256sum <"$WORK/upd/storage/$file")
	run upd "$fault"
	cp "$WORK/upd/log" "$WORK/upd/log-$name"
	[ "$RC" = 1 ] || { cat "$WORK/upd/log"; fail "$name: exit $RC, expected 1"; }
	log_has upd "$pattern"
	[ "$(sha256sum <"$WORK/upd/storage/$file")" = "$before" ] || fail "$name: $file changed"
	grep -l -e 'padding' -e ',,' "$WORK"/upd/storage/*.json && fail "$name: bad bytes stored"
	jq -e '.name=="fw-1"' "$WORK/upd/storage/installed_target" >/dev/null || fail "$name: installed target changed"
	pass "$name: refused ($(grep -o 'Uptane verification failed.*' "$WORK/upd/log" | head -c 110)), $file unchanged"
}
bad_metadata director-badjson 'badjson@/director/targets.json:9' director_targets.json \
	'Uptane verification failed (UPTANE_MALFORMED): director targets.json: not valid JSON'
bad_metadata director-huge 'huge@/director/targets.json:9' director_targets.json \
	'Uptane verification failed (UPTANE_TOO_BIG): .*/director/targets.json: response larger than'
bad_metadata timestamp-badjson 'badjson@/repo/timestamp.json:9' image_timestamp.json \
	'Uptane verification failed (UPTANE_MALFORMED): image timestamp.json: not valid JSON'
bad_metadata targets-chunked 'huge-chunked@/repo/targets.json:9' image_targets.json \
	'Uptane verification failed (UPTANE_TOO_BIG): .*/repo/targets.json: response larger than'

# And once the server behaves, fw-2 installs.
run upd ''
[ "$RC" = 0 ] && jq -e '.name=="fw-2"' "$WORK/upd/storage/installed_target" >/dev/null ||
	{ cat "$WORK/upd/log"; fail "fw-2 not installed after the faults"; }
pass "the server behaves again: fw-2 installed"
