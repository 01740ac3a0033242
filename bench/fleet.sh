#!/usr/bin/env bash
# Fleet benchmark: for each size, a fresh ota-server on loopback (a new fleet, one target,
# assigned to every device once they are provisioned) and otad-fleet polling it; then one
# Markdown table of what the fleet and the server cost.
#
# Usage: bench/fleet.sh [BUILD_DIR] [SIZES...]        (defaults: ./build, 1000 10000 100000)
#
# Per size: a connect-per-poll run (every poll a new connection, resuming the device's TLS
# session when it can; in-memory stores) and, up to KEEPALIVE_MAX devices, a --keep-alive run.
# The table (stdout and bench/results/fleet-DATE.md) gives the fleet's report (otad-fleet
# --report: latencies per request kind, handshakes, identity mismatches, peak RSS, heap per
# device, CPU) next to the server's CPU seconds and peak RSS (/proc/PID/stat and VmHWM, read
# just before it stops), and the fleet's TLS work against otad-bench-tls's ceiling.
#
# Environment (all optional):
#   CYCLES=K            polls per device (default 2; 1 from 100000 devices)
#   POLL=S              seconds between polls (default N/50 within 10..600: about 50 polls
#                       per second, what this 2-core machine sustains for the fleet AND server)
#   CONCURRENCY=C       devices provisioning at once (default 64)
#   KEEPALIVE_MAX=N     largest fleet also run with --keep-alive (default 10000)
#   ASSIGN=0            do not assign the target (default: assigned when N <= 10000)
#   SERVER_OPTS="..."   extra `ota-server serve` options for connect-per-poll runs
#   KEEPALIVE_SERVER_OPTS="..."  for --keep-alive runs (default: --event-loop epoll; with
#                       poll() the server scans every held connection on each wake-up and,
#                       at 10000 devices, spends 2.7x the CPU: see server/README.md)
#   TIME_LIMIT=S        give up a run after S seconds (default 1200)
#   MODES="..."         which runs: connect-per-poll and/or keep-alive (default both)
#   RESULTS=FILE        where the Markdown goes (default bench/results/fleet-DATE.md)
# Needs: jq, and /proc (Linux).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
B=$(cd "${1:-$top/build}" && pwd)
shift || true
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(1000 10000 100000)
FLEET="$B/otad-fleet"
SERVER="$B/server/ota-server"
BENCH_TLS="$B/bench/otad-bench-tls"
for f in "$FLEET" "$SERVER"; do
	[ -x "$f" ] || { echo "fleet.sh: $f is missing: build first (scripts/build.sh)" >&2; exit 2; }
done
command -v jq >/dev/null || { echo "fleet.sh: jq is missing" >&2; exit 2; }
for n in "${SIZES[@]}"; do
	[[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "fleet.sh: size '$n' is not a positive number" >&2; exit 2; }
done
CONCURRENCY=${CONCURRENCY:-64}
MODES=${MODES:-connect-per-poll keep-alive}
KEEPALIVE_MAX=${KEEPALIVE_MAX:-10000}
TIME_LIMIT=${TIME_LIMIT:-1200}
KEEPALIVE_SERVER_OPTS=${KEEPALIVE_SERVER_OPTS---event-loop epoll}
DATE=$(date -u +%Y-%m-%d)
RESULTS=${RESULTS:-$top/bench/results/fleet-$DATE.md}
mkdir -p "$(dirname "$RESULTS")"
WORK=$(mktemp -d /tmp/otad-fleet-bench.XXXXXX)
SERVER_PID=
cleanup() {
	if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
	[ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
. "$top/tests/e2e/lib.sh" # pick_port
TCK=$(getconf CLK_TCK)
NOTES=()

# Open files: every device of a keep-alive run holds a socket in the fleet and in the server.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
NOTES+=("open-file limit: $NOFILE (hard limit $(ulimit -Hn)) for the fleet and the server")

# Does this otad-fleet poll (--cycles), or only provision?
if "$FLEET" --help 2>&1 | grep -q -- --cycles; then
	POLLING=1
else
	POLLING=0
	NOTES+=("**otad-fleet has no --cycles: provisioning-only runs** (no polling, no keep-alive)")
fi

# The TLS ceiling: microseconds of a full and a resumed client handshake on one core.
T_FULL=
T_RESUMED=
if [ -x "$BENCH_TLS" ] && "$BENCH_TLS" --json >"$WORK/tls.json" 2>"$WORK/tls.err"; then
	T_FULL=$(jq '1e6 / .handshakes_per_second_per_core.full' "$WORK/tls.json")
	T_RESUMED=$(jq '1e6 / .handshakes_per_second_per_core.resumed_psk_ecdhe' "$WORK/tls.json")
	NOTES+=("TLS ceiling (otad-bench-tls, one core): $(jq -r '.handshakes_per_second_per_core | "\(.full | floor) full / \(.resumed_psk_ecdhe | floor) resumed (PSK+ECDHE) client handshakes per second"' "$WORK/tls.json")")
else
	NOTES+=("otad-bench-tls missing or failed: no TLS ceiling column")
fi

# start_server DIR OPTS...: a fresh server on $PORT; sets SERVER_PID.
start_server() {
	local dir=$1
	shift
	"$SERVER" serve "$dir" --port "$PORT" --quiet "$@" 2>>"$dir/server.log" &
	SERVER_PID=$!
	for _ in $(seq 1 200); do
		grep -q "listening on" "$dir/server.log" 2>/dev/null && return 0
		kill -0 "$SERVER_PID" 2>/dev/null || { cat "$dir/server.log" >&2; return 1; }
		sleep 0.1
	done
	echo "fleet.sh: the server did not start" >&2
	return 1
}
# server_stats: "CPU_SECONDS PEAK_RSS_KIB RSS_KIB" of the running server.
server_stats() {
	local ticks hwm rss
	ticks=$(awk '{print $14 + $15}' "/proc/$SERVER_PID/stat")
	hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$SERVER_PID/status")
	rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status")
	echo "$(awk -v t="$ticks" -v h="$TCK" 'BEGIN {printf "%.2f", t / h}') $hwm $rss"
}
stop_server() {
	kill "$SERVER_PID" 2>/dev/null || true
	wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=
}

ROWS=()
# run N MODE: one run; appends a table row to ROWS.
run() {
	local n=$1 mode=$2 cycles poll assign dir report opts=() fleet_opts=() label status=ok
	cycles=${CYCLES:-$([ "$n" -ge 100000 ] && echo 1 || echo 2)}
	poll=${POLL:-$((n / 50 < 10 ? 10 : n / 50 > 600 ? 600 : n / 50))}
	assign=${ASSIGN:-$([ "$n" -le 10000 ] && echo 1 || echo 0)}
	dir=$WORK/$mode-$n
	report=$dir/report.json
	pick_port
	"$SERVER" init "$dir" --port "$PORT" >/dev/null
	head -c 262144 /dev/urandom >"$WORK/fw.bin"
	"$SERVER" add-target "$dir" "$WORK/fw.bin" --name fw-bench --version 1.0 --hwid bench-board >/dev/null
	if [ "$mode" = keep-alive ]; then
		# shellcheck disable=SC2206
		opts=($KEEPALIVE_SERVER_OPTS)
		fleet_opts+=(--keep-alive)
	else
		# shellcheck disable=SC2206
		opts=(${SERVER_OPTS:-})
	fi
	start_server "$dir" "${opts[@]}"
	read -r _ _ rss0 < <(server_stats)
	if [ "$POLLING" = 1 ]; then
		fleet_opts+=(--cycles "$cycles" --poll "$poll" --storage mem --hwid bench-board --no-progress)
		[ "$assign" = 1 ] && fleet_opts+=(--on-provisioned "'$SERVER' assign '$dir' --all --target fw-bench >/dev/null")
		label="$mode, $cycles x ${poll}s"
	else
		label="provisioning only"
	fi
	echo "fleet.sh: $n devices, $label (server: ${opts[*]:-defaults}) ..." >&2
	local t0 rc=0
	t0=$(date +%s)
	timeout "$TIME_LIMIT" "$FLEET" --devices "$n" --credentials "$dir/credentials.zip" \
		--concurrency "$CONCURRENCY" --report "$report" "${fleet_opts[@]}" >"$dir/fleet.out" 2>"$dir/fleet.err" || rc=$?
	local cpu hwm
	read -r cpu hwm _ < <(server_stats)
	stop_server
	if [ "$rc" = 124 ]; then
		status="gave up after ${TIME_LIMIT}s"
		NOTES+=("$n devices ($mode): otad-fleet did not finish within ${TIME_LIMIT} s and was stopped; no report")
	elif [ "$rc" != 0 ]; then
		status="exit $rc"
	fi
	if [ ! -s "$report" ]; then
		ROWS+=("| $n | $label | $status | | | | | | | | | | |")
		tail -5 "$dir/fleet.err" >&2 || true
		return 0
	fi
	cat "$dir/fleet.out" >&2
	# p99 of each request kind the fleet made, "kind p99" joined
	local p99 hs resumed hsps fcpu errors mism fleet_rss heap wall tls
	p99=$(jq -r '[.requests // {} | to_entries[] | select(.value.count > 0) | "\(.key) \(.value.p99_ms | floor)"] | join(", ")' "$report")
	hs=$(jq '.handshakes // 0' "$report")
	resumed=$(jq '.resumed_sessions // 0' "$report")
	hsps=$(jq '.handshakes_per_second // 0 | . * 10 | floor / 10' "$report")
	fcpu=$(jq '.cpu_seconds // 0 | . * 100 | floor / 100' "$report")
	errors=$(jq '[.errors // {} | to_entries[] | .value] | add // 0' "$report")
	mism=$(jq -r '.identity_mismatches // "-"' "$report")
	fleet_rss=$(jq '.peak_rss_kib // 0' "$report")
	heap=$(jq -r '.heap_bytes_per_device // "-" | if type == "number" then floor else . end' "$report")
	wall=$(jq '.wall_seconds // 0 | floor' "$report")
	local final
	final=$(jq -r '[.final_states // {} | to_entries[] | "\(.key) \(.value)"] | join(", ")' "$report")
	[ -n "$final" ] || final="provisioned $(jq '.provisioned // 0' "$report"), failed $(jq '.failed // 0' "$report")"
	# the fleet's TLS public-key work as a share of its CPU, from the ceiling's per-handshake cost
	if [ -n "$T_FULL" ]; then
		tls=$(awk -v h="$hs" -v r="$resumed" -v c="$fcpu" -v f="$T_FULL" -v s="$T_RESUMED" 'BEGIN {
			if (c <= 0) { print "-"; exit }
			printf "%.0f/s; %.0f%%", h / c, 100 * ((h - r) * f + r * s) / 1e6 / c }')
	else
		tls=$(awk -v h="$hs" -v c="$fcpu" 'BEGIN { if (c > 0) printf "%.0f/s", h / c; else print "-" }')
	fi
	local srv_per_dev
	srv_per_dev=$(awk -v h="$hwm" -v b="$rss0" -v n="$n" 'BEGIN {printf "%.0f", (h - b) * 1024 / n}')
	ROWS+=("| $n | $label | $status: $final | $wall | $((fleet_rss / 1024)) MiB / $heap | $((hwm / 1024)) MiB / $srv_per_dev | $hs ($resumed resumed), $hsps/s | $p99 | $fcpu | $cpu | $errors | $mism | $tls |")
}

for n in "${SIZES[@]}"; do
	[[ " $MODES " == *" connect-per-poll "* ]] && run "$n" connect-per-poll
	[[ " $MODES " == *" keep-alive "* ]] || continue
	if [ "$POLLING" = 1 ] && [ "$n" -le "$KEEPALIVE_MAX" ]; then
		if [ "$NOFILE" -lt $((n + 256)) ]; then
			NOTES+=("$n devices --keep-alive: skipped, the open-file limit $NOFILE is below $((n + 256))")
		else
			run "$n" keep-alive
		fi
	fi
done

{
	echo "# Fleet benchmark, $DATE"
	echo
	echo "$(uname -srm), $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), load average before: $(cut -d' ' -f1-3 /proc/loadavg)."
	echo "otad-fleet and ota-server on loopback on the same machine; each run a fresh fleet."
	echo
	echo "| devices | mode | result | wall s | fleet peak RSS / heap B per device | server peak RSS / B per device | handshakes | p99 ms by request kind | fleet CPU s | server CPU s | errors | identity mismatches | fleet handshakes per CPU-s; TLS share of fleet CPU |"
	echo "|---:|---|---|---:|---|---|---|---|---:|---:|---:|---:|---|"
	for r in "${ROWS[@]}"; do echo "$r"; done
	echo
	echo "Notes:"
	for note in "${NOTES[@]}"; do echo "- $note"; done
	echo "- server B per device: (peak RSS - RSS after start) / devices; TLS share: (full handshakes x full cost + resumed x resumed cost, from otad-bench-tls) / fleet CPU seconds."
} | tee "$RESULTS"
echo "fleet.sh: written to $RESULTS" >&2
