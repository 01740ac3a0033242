#!/usr/bin/env bash
# Transport faults (ota-server serve --faults): a reset before the body, a cut in the middle
# of it, a server that reads the request and never answers (stall), one that answers a few
# bytes a second (trickle). Every request is bounded by [network] timeout_sec, so the device
# gives up on the request, says which and why, retries with backoff, and ends provisioned;
# or, out of retries, exits 1 within a bounded time.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
setup_test
new_fleet "$WORK/fleet"

TIMEOUT=2
# run NAME FAULTS SERVE_OPTS [otad options...]: a new device against a server with FAULTS;
# sets RC and SECS (the run's wall time).
run() {
	local name=$1 faults=$2 serve_opts=$3
	shift 3
	stop_server
	# shellcheck disable=SC2086 # serve_opts is a word list
	start_server "$WORK/fleet" --faults "$faults" $serve_opts
	device_config "$WORK/$name" "$WORK/fleet/credentials.zip" "[network]" "timeout_sec = $TIMEOUT"
	RC=0
	local t0=$SECONDS
	"$OTAD_BIN/otad" -c "$WORK/$name/sota.toml" --retry-cap 1 --retries 4 --no-updates "$@" once \
		2>"$WORK/$name/log" || RC=$?
	SECS=$((SECONDS - t0))
}
log_has() { grep -q -- "$2" "$WORK/$1/log" || { cat "$WORK/$1/log" >&2; fail "$1: no log line matching '$2'"; }; }
provisioned() {
	[ "$RC" = 0 ] || { cat "$WORK/$1/log"; fail "$1: not provisioned (exit $RC)"; }
	[ -s "$WORK/$1/storage/pkey.pem" ] && [ -e "$WORK/$1/storage/is_registered" ] || fail "$1: not provisioned in storage"
	# the failure came before the step it hit was recorded: registered (POST /devices) or
	# ecus_registered (POST /director/ecus)
	jq -r --arg s "${2:-registered}" 'select(.event=="transient_error" or .event==$s) | .event' \
		"$WORK/$1/storage/journal.jsonl" | head -n1 | grep -qx transient_error || fail "$1: journal order"
	"$OTAD_BIN/otad-replay" "$WORK/$1/storage/journal.jsonl" >/dev/null || fail "$1: journal replay"
}

run reset 'reset@/devices:1' ''
provisioned reset
log_has reset 'POST /devices: could not reach the server (.*reset by peer); retrying in'
pass "connection reset before the answer: retried, provisioned"

run cut 'cut@/director/ecus:1' ''
provisioned cut ecus_registered
log_has cut 'POST /director/ecus: .*; retrying in'
pass "connection cut in the middle of the body: retried, provisioned"

# A stall on a server with one worker thread: the retry is answered while the stalled
# connection is still held, so holding it blocks nobody.
run stall 'stall@/devices:1' '--threads 1'
provisioned stall
log_has stall "POST /devices: operation timed out (.*after [0-9]* milliseconds with 0 bytes received); retrying in"
[ "$SECS" -lt 30 ] || fail "stall: the run took $SECS s"
pass "stall (no answer): the request timed out after ${TIMEOUT} s, retried on the same one-thread server, provisioned in $SECS s"

run trickle 'trickle+bps=4@/devices:1' ''
provisioned trickle
log_has trickle "POST /devices: operation timed out (.*with [0-9]* out of [0-9]* bytes received); retrying in"
pass "trickle (4 bytes/s): the request timed out, retried, provisioned in $SECS s"

# Out of retries against a server that always stalls: exit 1, bounded by the timeouts.
run stall_all 'stall@/director/ecus:99' '' --retries 1
[ "$RC" = 1 ] || { cat "$WORK/stall_all/log"; fail "stall on every ECU registration: exit $RC"; }
log_has stall_all "provisioning failed: gave up after 2 failed attempts: POST /director/ecus: operation timed out"
[ "$SECS" -lt 30 ] || fail "stall_all: the run took $SECS s"
[ ! -e "$WORK/stall_all/storage/is_registered" ] || fail "stall_all: ECU registration recorded"
pass "a server that never answers: two bounded attempts, then exit 1 in $SECS s"
