#!/usr/bin/env bash
# No server at start: the device backs off and retries, then succeeds once it is up.
# Then 5xx answers: retried with backoff as well.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
setup_test
new_fleet "$WORK/fleet"
device_config "$WORK/d" "$WORK/fleet/credentials.zip"

"$OTAD_BIN/otad" -c "$WORK/d/sota.toml" --retry-cap 2 --retries 20 --no-updates once 2>"$WORK/d/log" &
pid=$!
# start the server only after a failed attempt (otad may start slowly, e.g. under valgrind)
for _ in $(seq 1 600); do
	grep -q "could not reach the server" "$WORK/d/log" 2>/dev/null && break
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.1
done
start_server "$WORK/fleet"
wait "$pid" || { cat "$WORK/d/log"; fail "otad did not recover once the server came up"; }
grep -q "could not reach the server" "$WORK/d/log" || fail "no log line naming the connection failure"
grep -q "retrying in" "$WORK/d/log" || fail "no backoff in the log"
grep -q '"event":"transient_error"' "$WORK/d/storage/journal.jsonl" || fail "journal lacks transient_error"
grep -q '"event":"retry"' "$WORK/d/storage/journal.jsonl" || fail "journal lacks retry"
"$OTAD_BIN/otad-replay" "$WORK/d/storage/journal.jsonl" >/dev/null || fail "replay"
pass "server down at start, then up: backoff then success"
stop_server

# Two 503s on /devices and one 500 on /director/ecus, then success.
start_server "$WORK/fleet" --faults "503@/devices:2,500@/director/ecus:1"
device_config "$WORK/e" "$WORK/fleet/credentials.zip"
"$OTAD_BIN/otad" -c "$WORK/e/sota.toml" --retry-cap 1 --no-updates once 2>"$WORK/e/log" || { cat "$WORK/e/log"; fail "5xx run"; }
[ "$(grep -c 'server answered HTTP 503' "$WORK/e/log")" = 2 ] || fail "expected two 503 lines"
grep -q 'POST /director/ecus: server answered HTTP 500' "$WORK/e/log" || fail "expected the 500 line"
n=$("$OTAD_BIN/server/ota-server" devices "$WORK/fleet" --json | grep -c '"uuid"')
[ "$n" = 2 ] || fail "server has $n devices, expected 2"
same_path "$WORK/e/storage/journal.jsonl" 5xx_then_success
pass "5xx answers: retried with backoff, then provisioned"

# A 4xx is permanent: no retry, exit 1, a clear message.
stop_server
start_server "$WORK/fleet" --faults "403@/devices:1"
device_config "$WORK/f" "$WORK/fleet/credentials.zip"
if "$OTAD_BIN/otad" -c "$WORK/f/sota.toml" --retry-cap 1 --no-updates once 2>"$WORK/f/log"; then fail "403 accepted"; fi
grep -q 'server rejected the request: HTTP 403' "$WORK/f/log" || { cat "$WORK/f/log"; fail "no 403 message"; }
grep -q "retrying" "$WORK/f/log" && fail "a 403 was retried"
[ ! -e "$WORK/f/storage/pkey.pem" ] || fail "credentials stored after 403"
pass "4xx: clear error, no retry, nothing stored"
