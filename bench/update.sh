#!/usr/bin/env bash
# Measures one `otad once` update cycle with a large target (default 100 MiB): peak RSS,
# CPU and wall time (/usr/bin/time -v), against the same cycle with a 1 MiB target (memory
# must not grow with the target); and the download throughput of otad relative to curl
# fetching the same file over mutual TLS from the same server on this machine.
#
# Usage: bench/update.sh [BUILD_DIR] [SIZE_MIB]          (defaults: ./build, 100)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
OTAD_BIN=$(cd "${1:-$top/build}" && pwd)
MIB=${2:-100}
. "$top/tests/e2e/lib.sh"
WORK=$(mktemp -d /tmp/otad-bench-update.XXXXXX)
trap 'stop_server; rm -rf "$WORK"' EXIT
pick_port
new_fleet "$WORK/fleet"
start_server "$WORK/fleet" --quiet
srv() { "$OTAD_BIN/server/ota-server" "$@"; }
field() { grep -F "$1" "$2" | sed 's/.*: //'; }
secs() { awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }' <<<"$1"; }

printf '%-34s %12s %8s %8s %9s\n' "run" "peak RSS" "user s" "sys s" "wall s"
for size in 1 "$MIB"; do
	d=$WORK/dev-$size
	device_config "$d" "$WORK/fleet/credentials.zip" "[pacman]" 'type = "none"' "images_path = \"$d/images\""
	"$OTAD_BIN/otad" -c "$d/sota.toml" --loglevel 3 once 2>/dev/null
	head -c $((size * 1048576)) /dev/urandom >"$WORK/img-$size"
	srv add-target "$WORK/fleet" "$WORK/img-$size" --name "img-$size" --version "$size" --hwid test-board >/dev/null
	srv assign "$WORK/fleet" --device "$(cat "$d/storage/device_id")" --target "img-$size" >/dev/null
	/usr/bin/time -v "$OTAD_BIN/otad" -c "$d/sota.toml" --loglevel 3 once 2>"$d/time" >/dev/null || { cat "$d/time"; exit 1; }
	wall=$(secs "$(field 'Elapsed' "$d/time")")
	printf '%-34s %8s KiB %8s %8s %9s\n' "otad once, ${size} MiB update" "$(field 'Maximum resident' "$d/time")" \
		"$(field 'User time' "$d/time")" "$(field 'System time' "$d/time")" "$wall"
	[ "$size" = "$MIB" ] && otad_wall=$wall
done

# curl over the same mutual TLS, same file, to /dev/null (best of 3 each).
st=$WORK/dev-$MIB/storage
url=$(cat "$st/gateway.url")/repo/targets/img-$MIB
best_curl=999999
for _ in 1 2 3; do
	t=$(curl -s -o /dev/null -w '%{time_total}' --cacert "$st/root.crt" --cert "$st/client.pem" --key "$st/pkey.pem" "$url")
	best_curl=$(awk -v a="$t" -v b="$best_curl" 'BEGIN{print (a<b)?a:b}')
done
printf '%-34s %12s %8s %8s %9s\n' "curl, ${MIB} MiB download" "" "" "" "$best_curl"
# otad's own download time, from its log line "...; N s, X MiB/s"
d=$WORK/dev-$MIB
rm -rf "$d/images"
srv add-target "$WORK/fleet" "$WORK/img-$MIB" --name "img-$MIB-b" --version "$MIB-b" --hwid test-board >/dev/null
srv assign "$WORK/fleet" --device "$(cat "$d/storage/device_id")" --target "img-$MIB-b" >/dev/null
"$OTAD_BIN/otad" -c "$d/sota.toml" once 2>"$d/log" >/dev/null
rate=$(grep -o '[0-9.]* MiB/s' "$d/log" | tail -n1 | cut -d' ' -f1)
curl_rate=$(awk -v s="$best_curl" -v m="$MIB" 'BEGIN{printf "%.1f", m/s}')
echo
echo "download throughput: otad ${rate} MiB/s, curl ${curl_rate} MiB/s; otad/curl = $(awk -v a="$rate" -v b="$curl_rate" 'BEGIN{printf "%.2f", a/b}')"
echo "(the whole otad cycle, ${MIB} MiB: ${otad_wall} s wall, including hashing with SHA-256 and SHA-512, fsync, manifest and report)"
