#!/usr/bin/env bash
# The retry storm: N devices provision (otad-fleet, all at once) against ota-server while it
# answers every request 503 for an outage window, then recovers. Prints, per second, the
# requests the devices sent (from the fleet's journal: each transition whose action sends
# POST /devices or POST /director/ecus) and the answers the server completed (from its
# request log), during the outage and after it, to show whether retries spread out (backoff
# with jitter) or come back in synchronized waves. On a loaded machine the server's rate is
# its capacity, not the devices' schedule: compare the two columns.
#
# Usage: bench/retry_storm.sh [BUILD_DIR] [DEVICES] [OUTAGE_SECONDS] [RETRY_AFTER] [RAMP]
#        (defaults: ./build, 500, 20, 0, 100). RETRY_AFTER > 0 makes the 503s carry
#        Retry-After: RETRY_AFTER (the devices then wait that long, +0-10 % jitter). RAMP is
#        device starts per second (0: all at once; on a small machine the first TLS
#        handshakes of hundreds of devices at once then take longer than the outage).
# Needs: jq. The outage window starts with the first request (--faults 503@*:for=Ts).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
OTAD_BIN=$(cd "${1:-$top/build}" && pwd)
N=${2:-500}
T=${3:-20}
RA=${4:-0}
RAMP=${5:-100}
. "$top/tests/e2e/lib.sh"
WORK=$(mktemp -d /tmp/otad-storm.XXXXXX)
trap 'stop_server; [ -n "${KEEP:-}" ] || rm -rf "$WORK"' EXIT
pick_port
new_fleet "$WORK/fleet"
rule="503@*:for=${T}s"
[ "$RA" -gt 0 ] && rule="503+retry=${RA}@*:for=${T}s"
start_server "$WORK/fleet" --quiet --faults "$rule"

echo "otad-fleet --devices $N --concurrency $N --ramp $RAMP --retries 40 --seed 1, server --faults '$rule'"
rc=0
"$OTAD_BIN/otad-fleet" --devices "$N" --concurrency "$N" --ramp "$RAMP" --retries 40 --seed 1 --no-progress \
	--journal "$WORK/journal.jsonl" \
	--credentials "$WORK/fleet/credentials.zip" --report "$WORK/report.json" >"$WORK/fleet.out" 2>&1 || rc=$?
echo "fleet exit $rc: $(jq -r '"\(.provisioned) provisioned, \(.wall_seconds) s wall"' "$WORK/report.json" 2>/dev/null || tail -3 "$WORK/fleet.out")"

# Per-second counts: requests sent (journal) and answers completed (server log), seconds
# from the first request sent.
"$OTAD_BIN/server/ota-server" requests "$WORK/fleet" --json >"$WORK/requests.json"
jq -s '[.[] | select(.action == "register" or .action == "register_ecus") | {t}]' \
	"$WORK/journal.jsonl" >"$WORK/sent.json"
jq -r -n --argjson T "$T" --slurpfile sent "$WORK/sent.json" --slurpfile done "$WORK/requests.json" '
	def ms: (.[20:23] | tonumber) + 1000 * (sub("\\.[0-9]+Z$"; "Z") | fromdateiso8601);
	($sent[0] | map(.t | ms)) as $s | ($done[0] | map({t: (.ts | ms), st: .status})) as $d
	| ($s | min) as $t0
	| def sec: ((. - $t0) / 1000 | floor);
	($s | map(sec)) as $ss | ($d | map({s: (.t | sec), st})) as $ds
	| ([$ss[], ($ds[] | .s)] | max) as $last
	| [range(0; $last + 1) | . as $i | {s: $i,
	     sent: ($ss | map(select(. == $i)) | length),
	     done: ($ds | map(select(.s == $i)) | length),
	     e: ($ds | map(select(.s == $i and .st == 503)) | length)}]
	| (["second", "sent", "answered", "of which 503"] | @tsv),
	  (.[] | [.s, .sent, .done, .e] | @tsv),
	  "",
	  (def stats(name; xs; f): (xs | map(f)) as $v | ($v | add // 0) as $sum | ($v | length) as $k
	     | "\(name): \($sum) in \($k) s, mean \(if $k > 0 then ($sum / $k * 10 | round) / 10 else 0 end)/s, max \($v | max // 0)/s (max/mean \(if $sum > 0 then (($v | max) * $k / $sum * 100 | round) / 100 else 0 end))";
	   # the first second is every device starting at once, not a retry wave
	   stats("sent during the outage, seconds 1..\($T - 1)"; .[1:$T]; .sent),
	   stats("answered during the outage, seconds 1..\($T - 1)"; .[1:$T]; .done),
	   stats("sent after it, seconds \($T)..end"; .[$T:]; .sent),
	   stats("answered after it, seconds \($T)..end"; .[$T:]; .done))' | tee "$WORK/rates.txt"
