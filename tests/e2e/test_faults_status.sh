#!/usr/bin/env bash
# Server faults answered with an HTTP status (ota-server serve --faults): 5xx, 429 and 503 with
# Retry-After are retried with backoff (Retry-After honoured); 404, 409 and 413 are permanent:
# no retry, exit 1, a log line naming the request and the status, nothing stored.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
setup_test
new_fleet "$WORK/fleet"
srv() { "$OTAD_BIN/server/ota-server" "$@"; }

# run NAME FAULTS [otad options...]: a new device against a server with FAULTS; sets RC.
run() {
	local name=$1 faults=$2
	shift 2
	stop_server
	start_server "$WORK/fleet" --faults "$faults"
	device_config "$WORK/$name" "$WORK/fleet/credentials.zip" "[network]" "timeout_sec = 5"
	RC=0
	"$OTAD_BIN/otad" -c "$WORK/$name/sota.toml" --retry-cap 1 --retries 4 --no-updates "$@" once \
		2>"$WORK/$name/log" || RC=$?
}
# requests PATH: how many requests for PATH the server has logged so far (stop the server
# first: it writes its request log from a queue).
requests() { srv requests "$WORK/fleet" --json | jq --arg p "$1" '[.[] | select(.path==$p)] | length'; }
log_has() { grep -q -- "$2" "$WORK/$1/log" || { cat "$WORK/$1/log" >&2; fail "$1: no log line matching '$2'"; }; }
no_credentials() {
	for f in pkey.pem client.pem root.crt; do [ ! -e "$WORK/$1/storage/$f" ] || fail "$1: $f stored"; done
}

# 503 with Retry-After: the device waits as long as the server asked (+ up to 10 % jitter),
# although its own backoff (--retry-cap 1) would have come back within a second.
before=$(requests /devices)
run ra '503+retry=3@/devices:1'
[ "$RC" = 0 ] || { cat "$WORK/ra/log"; fail "503+Retry-After: not provisioned"; }
log_has ra 'POST /devices: server answered HTTP 503.*retrying in 3\.[0-9] s as the server asked (Retry-After)'
stop_server
gap=$(srv requests "$WORK/fleet" --json | jq --argjson n "$before" '
	[.[] | select(.path=="/devices")][$n:$n+2] | map(.ts | sub("\\.[0-9]+Z$"; "Z") as $s |
	(.[20:23] | tonumber) / 1000 + ($s | fromdateiso8601)) | .[1] - .[0]')
gap=$(printf "%.2f" "$gap")
awk -v g="$gap" 'BEGIN { exit !(g >= 2.7 && g < 20) }' || fail "Retry-After 3: the retry came after ${gap} s"
pass "503 + Retry-After: 3: retried after ${gap} s as asked, then provisioned"

# 500 and 503 without Retry-After, and 429: transient, retried with the device's own backoff.
run t5xx '500@/devices:1,503@/devices:1,429@/devices:1'
[ "$RC" = 0 ] || { cat "$WORK/t5xx/log"; fail "5xx/429: not provisioned"; }
for s in 500 503 429; do log_has t5xx "POST /devices: server answered HTTP $s: injected fault"; done
grep -q "Retry-After" "$WORK/t5xx/log" && fail "5xx without Retry-After: the log claims one"
[ "$(grep -c 'retrying in 0\.[5-9] s\|retrying in 1\.0 s' "$WORK/t5xx/log")" = 3 ] ||
	{ cat "$WORK/t5xx/log"; fail "5xx/429: expected three retries within the 1 s cap"; }
pass "500, 503, 429: each retried with backoff under the cap, then provisioned"

# Permanent errors: one request, no retry, exit 1, nothing stored.
permanent() {
	local name=$1 fault=$2 path=$3 pattern=$4
	local n0
	n0=$(requests "$path")
	run "$name" "$fault"
	[ "$RC" = 1 ] || { cat "$WORK/$name/log"; fail "$fault: exit $RC, expected 1"; }
	log_has "$name" "$pattern"
	grep -q "retrying" "$WORK/$name/log" && fail "$fault: a permanent error was retried"
	stop_server
	[ "$(requests "$path")" = $((n0 + 1)) ] || fail "$fault: $path was asked more than once"
	pass "$fault: permanent, not retried, exit 1 ($(grep -o 'provisioning failed: .*' "$WORK/$name/log" | head -c 120))"
}
permanent p404 '404@/devices' /devices 'POST /devices: server rejected the request: HTTP 404 not_found'
no_credentials p404
permanent p413 '413@/devices' /devices 'POST /devices: server rejected the request: HTTP 413 request_too_large'
no_credentials p413
permanent p409 '409@/director/ecus' /director/ecus 'POST /director/ecus: server rejected the request: HTTP 409 ecu_already_registered'
[ ! -e "$WORK/p409/storage/is_registered" ] || fail "409 on /director/ecus: the registration was recorded"

# 409 on POST /devices is the one 4xx with a meaning: the device ID is taken, pick another.
run id409 '409@/devices:1'
[ "$RC" = 0 ] || { cat "$WORK/id409/log"; fail "409 device_already_registered: not provisioned"; }
log_has id409 "is already registered; trying"
pass "409 device_already_registered on /devices: a new device ID, provisioned"

# --- the rule forms themselves, seen from curl ---
post() { # post ID: POST /devices with the provisioning certificate; prints the status
	curl -s -m 20 -o /dev/null -w '%{http_code}' --cacert "$WORK/fleet/server_ca.pem" \
		--cert "$WORK/fleet/provisioning.pem" --key "$WORK/fleet/provisioning.key" \
		-X POST "https://127.0.0.1:$PORT/devices" -d "{\"deviceId\":\"$1\"}"
}
# %RATE with --faults-seed: about RATE percent, and the same decisions for the same seed.
# rates SEED TAG: the first digit of 24 statuses into OUT (not in a $(...) subshell: the
# subshell would run setup_test's exit trap, stopping the server and deleting WORK).
rates() {
	stop_server
	start_server "$WORK/fleet" --faults '404%40@/dev*' --faults-seed "$1"
	local i
	OUT=
	for i in $(seq 1 24); do OUT="$OUT$(post "rate-$1-$2-$i" | cut -c1)"; done
}
rates 7 a
a=$OUT
rates 7 b
b=$OUT
rates 8 c
c=$OUT
[ "$a" = "$b" ] || fail "%RATE: seed 7 gave $a, then $b"
[ "$a" != "$c" ] || fail "%RATE: seeds 7 and 8 decided alike ($a)"
n=$(tr -cd 4 <<<"$a" | wc -c)
[ "$n" -ge 3 ] && [ "$n" -le 18 ] || fail "%RATE 40: $n of 24 faulted ($a)"
pass "404%40 --faults-seed 7: $n of 24 requests faulted, the same ones again with the same seed ($a)"

# :for=SECONDS: every matching request fails for that long after the first, then none.
stop_server
start_server "$WORK/fleet" --faults '503@/devices:for=2s'
s1=$(post win-1)
s2=$(post win-2)
sleep 2.2
s3=$(post win-3)
[ "$s1 $s2 $s3" = "503 503 200" ] || fail ":for=2s: statuses $s1 $s2 $s3, expected 503 503 200"
pass ":for=2s: an outage window of two seconds from the first request"

# A 4xx in the update cycle is not retried with backoff either: `once` ends (exit 1), a daemon
# would try again at the next polling cycle. 5xx there is retried like anywhere else.
stop_server
start_server "$WORK/fleet" --faults '404@/director/targets.json:1'
device_config "$WORK/poll404" "$WORK/fleet/credentials.zip" "[network]" "timeout_sec = 5"
RC=0
"$OTAD_BIN/otad" -c "$WORK/poll404/sota.toml" --retry-cap 1 --retries 4 once \
	2>"$WORK/poll404/log" || RC=$?
[ "$RC" = 1 ] || { cat "$WORK/poll404/log"; fail "404 on director targets: exit $RC, expected 1"; }
log_has poll404 'server rejected the request: HTTP 404'
grep -q "retrying" "$WORK/poll404/log" && { cat "$WORK/poll404/log"; fail "404 on director targets: retried with backoff"; }
stop_server
[ "$(requests /director/targets.json)" = 1 ] || fail "404 on director targets: asked more than once"
start_server "$WORK/fleet" --faults '502@/director/targets.json:1'
RC=0
"$OTAD_BIN/otad" -c "$WORK/poll404/sota.toml" --retry-cap 1 --retries 4 once \
	2>"$WORK/poll404/log2" || RC=$?
[ "$RC" = 0 ] || { cat "$WORK/poll404/log2"; fail "502 on director targets: exit $RC, expected 0"; }
grep -q "HTTP 502.*retrying" "$WORK/poll404/log2" || { cat "$WORK/poll404/log2"; fail "502 on director targets: not retried"; }
pass "update cycle: 404 on director targets not retried (exit 1); 502 retried, then the cycle completes"
