#!/usr/bin/env bash
# Measures provisioning: one `otad once` (peak RSS, CPU and wall time, from /usr/bin/time -v)
# for each Uptane key type, and `otad-fleet` at N devices (wall time, peak RSS, RSS per
# device). Against ota-server on loopback, on this machine.
#
# Usage: bench/provision.sh [BUILD_DIR] [FLEET_SIZE]      (defaults: ./build, 1000)
# Needs: /usr/bin/time (Debian package 'time'), jq.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
OTAD_BIN=$(cd "${1:-$top/build}" && pwd)
N=${2:-1000}
. "$top/tests/e2e/lib.sh"
[ -x /usr/bin/time ] || { echo "bench: /usr/bin/time is missing (apt-get install time)" >&2; exit 2; }
WORK=$(mktemp -d /tmp/otad-bench.XXXXXX)
trap 'stop_server; rm -rf "$WORK"' EXIT
pick_port
new_fleet "$WORK/fleet"
start_server "$WORK/fleet" --quiet

# field NAME FILE: a value from /usr/bin/time -v output
field() { grep -F "$1" "$2" | sed 's/.*: //'; }

printf '%-28s %12s %10s %10s %10s\n' "run" "peak RSS" "user s" "sys s" "wall"
for kt in RSA2048 ED25519; do
	d=$WORK/once-$kt
	device_config "$d" "$WORK/fleet/credentials.zip" "[uptane]" "key_type = \"$kt\""
	/usr/bin/time -v "$OTAD_BIN/otad" -c "$d/sota.toml" --loglevel 3 --no-updates once 2>"$d/time" >/dev/null ||
		{ cat "$d/time"; exit 1; }
	printf '%-28s %9s KiB %10s %10s %10s\n' "otad once ($kt)" "$(field 'Maximum resident' "$d/time")" \
		"$(field 'User time' "$d/time")" "$(field 'System time' "$d/time")" "$(field 'Elapsed' "$d/time")"
done

# Baseline: the same binary doing nothing but printing its version (static libs mapped).
/usr/bin/time -v "$OTAD_BIN/otad" --version 2>"$WORK/time-version" >/dev/null
printf '%-28s %9s KiB\n' "otad --version (baseline)" "$(field 'Maximum resident' "$WORK/time-version")"

/usr/bin/time -v "$OTAD_BIN/otad-fleet" --devices "$N" --credentials "$WORK/fleet/credentials.zip" \
	--report "$WORK/report.json" >"$WORK/fleet.out" 2>"$WORK/fleet.time" || { cat "$WORK/fleet.out" "$WORK/fleet.time"; exit 1; }
rss=$(field 'Maximum resident' "$WORK/fleet.time")
printf '%-28s %9s KiB %10s %10s %10s\n' "otad-fleet $N devices" "$rss" \
	"$(field 'User time' "$WORK/fleet.time")" "$(field 'System time' "$WORK/fleet.time")" "$(field 'Elapsed' "$WORK/fleet.time")"
echo
echo "fleet: $(jq .provisioned "$WORK/report.json")/$N provisioned, $(jq .failed "$WORK/report.json") failed," \
	"$(jq '.wall_seconds' "$WORK/report.json") s wall," \
	"$(awk -v r="$rss" -v n="$N" 'BEGIN{printf "%.1f", r/n}') KiB peak RSS per device"
srv=$(ps -o rss=,times= -p "$SERVER_PID" | awk '{printf "%d KiB RSS, %d s CPU", $1, $2}')
echo "ota-server after the runs: $srv"
