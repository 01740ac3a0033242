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
