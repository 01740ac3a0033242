#!/usr/bin/env bash
# A full disk, for real: the device's storage and images_path on a small tmpfs, filled up
#   1. before provisioning, and with one page left (the device ID fits, the credentials
#      do not),
#   2. during the update cycle's metadata storage (an update installed before),
#   3. before a download (refused early: not enough space), and during one (the server
#      trickles the image; the disk fills up under it).
# Each time: the run fails with a message naming the path and "No space left on device"
# (or the space needed), what was stored before is intact (credentials, metadata that
# parses, installed target), nothing half-written is left, and once space is freed the
# next run succeeds. Needs root (mount); skipped with a message otherwise.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
setup_test
MNT=$WORK/mnt
mkdir -p "$MNT"
if [ "$(id -u)" != 0 ] || ! mount -t tmpfs -o size=16m,mode=0755 tmpfs "$MNT" 2>"$WORK/mount.err"; then
	echo "skip: cannot mount a tmpfs to fill up (needs root and mount permission: $(cat "$WORK/mount.err" 2>/dev/null || echo not root))"
	exit 0
fi
trap 'rc=$?; stop_server; umount -l "$MNT" 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$WORK"; valgrind_check || rc=1; exit $rc' EXIT
new_fleet "$WORK/fleet"
start_server "$WORK/fleet" --quiet
srv() { "$OTAD_BIN/server/ota-server" "$@"; }

# fill [BYTES]: fills the tmpfs up, then gives BYTES back (rounded to pages; default 0)
fill() {
	rm -f "$MNT/filler"
	cat /dev/zero >"$MNT/filler" 2>/dev/null || true
	[ "${1:-0}" = 0 ] || truncate -s "-$1" "$MNT/filler"
	sync
}
unfill() { rm -f "$MNT/filler" "$MNT/filler2"; }
free_bytes() { df -B1 --output=avail "$MNT" | tail -n1 | tr -d ' '; }
count_devices() { srv devices "$WORK/fleet" --json | jq length; }
dev_json() { srv devices "$WORK/fleet" --json | jq --arg id "$1" '.[] | select(.device_id==$id)'; }
# no_temps: nothing half-written under the mount
no_temps() {
	local left
	left=$(find "$MNT" -name '.*.tmp.*' -o -name '*.part' -o -name '.*.new.*' | head -n3)
	[ -z "$left" ] || fail "$1: left behind: $left"
}
# every JSON file of the store parses
store_parses() {
	local f
	for f in "$st"/*.json "$st"/installed_target "$st"/install_report "$st"/events.json; do
		[ -e "$f" ] || continue
		jq -e . "$f" >/dev/null 2>&1 || fail "$1: $(basename "$f") does not parse"
	done
}

dev=$WORK/d
st=$MNT/d/storage
device_config "$dev" "$WORK/fleet/credentials.zip" "[pacman]" 'type = "none"' "images_path = \"$MNT/d/images\""
sed -i "s|^path = .*|path = \"$st\"|" "$dev/sota.toml"
otad() { "$OTAD_BIN/otad" -c "$dev/sota.toml" --retry-cap 1 --retries 1 "$@"; }

# ---- 1. provisioning -----------------------------------------------------------------------
mkdir -p "$MNT/d"
fill
if otad --no-updates once 2>"$WORK/log1"; then fail "provisioned on a full disk"; fi
grep -q "$st/[a-z_.]*: No space left on device" "$WORK/log1" ||
	{ cat "$WORK/log1"; fail "1: no message naming a path in $st and 'No space left on device'"; }
[ ! -e "$st/pkey.pem" ] && [ ! -e "$st/device_id" ] || fail "1: something was stored on a full disk"
[ "$(count_devices)" = 0 ] || fail "1: the device registered although it could not store anything"
grep -qx autoprov_credentials.p12 <(unzip -Z1 "$dev/credentials.zip") || fail "1: the fleet key was removed"
no_temps 1
pass "1a. full before provisioning: refused ($(grep -o "writing $st/[^ ]*: No space left on device" "$WORK/log1" | head -n1)), nothing registered"

# A few pages free: the device ID and creds.pending fit, the credential files do not. The
# retry must complete creds.pending, not register again (as a restart does).
held=
for k in 3 4 5; do
	b=$WORK/b$k
	device_config "$b" "$WORK/fleet/credentials.zip"
	mkdir -p "$MNT/b$k"
	sed -i "s|^path = .*|path = \"$MNT/b$k/storage\"|" "$b/sota.toml"
	before=$(count_devices)
	fill $((k * 4096))
	if "$OTAD_BIN/otad" -c "$b/sota.toml" --retry-cap 1 --retries 2 --no-updates once 2>"$b/log"; then
		fail "1b: provisioned with $k pages free"
	fi
	grep -q "$MNT/b$k/storage/[a-z_.]*: No space left on device" "$b/log" ||
		{ cat "$b/log"; fail "1b: no 'No space left on device' message"; }
	no_temps 1b
	if [ -s "$MNT/b$k/storage/creds.pending" ] && [ ! -s "$MNT/b$k/storage/client.pem" ]; then held=$k; break; fi
	unfill
done
[ -n "$held" ] || fail "1b: no page count left creds.pending without the credential files"
[ "$(count_devices)" = $((before + 1)) ] ||
	fail "1b: $(($(count_devices) - before)) registrations: the retry registered again instead of storing the credentials it had"
pending_uuid=$(jq -r .cert "$MNT/b$held/storage/creds.pending" | openssl x509 -noout -subject -nameopt RFC2253 | sed 's/.*CN=\([^,]*\).*/\1/')
unfill
"$OTAD_BIN/otad" -c "$b/sota.toml" --retry-cap 1 --no-updates once 2>"$b/log2" || { cat "$b/log2"; fail "1b: provisioning after space was freed"; }
[ "$(openssl x509 -in "$MNT/b$held/storage/client.pem" -noout -subject -nameopt RFC2253 | sed 's/.*CN=\([^,]*\).*/\1/')" = "$pending_uuid" ] ||
	fail "1b: the device did not keep the identity it had stored in creds.pending"
[ "$(count_devices)" = $((before + 1)) ] || fail "1b: registered again after space was freed"
pass "1b. $held pages free: registered once, creds.pending kept across the retries; freed: the same identity ($pending_uuid) completed"

unfill
otad --no-updates once 2>"$WORK/log1c" || { cat "$WORK/log1c"; fail "1: provisioning after space was freed"; }
[ -s "$st/pkey.pem" ] && [ -s "$st/client.pem" ] || fail "1: no credentials after space was freed"
[ "$(stat -c %a "$st/pkey.pem")" = 600 ] || fail "1: key mode"
id=$(cat "$st/device_id")
uuid=$(openssl x509 -in "$st/client.pem" -noout -subject -nameopt RFC2253 | sed 's/.*CN=\([^,]*\).*/\1/')
pass "1c. space freed: provisioned as $id"

# ---- 2. metadata storage during an update cycle ---------------------------------------------
head -c 100000 /dev/urandom >"$WORK/fw-1.bin"
srv add-target "$WORK/fleet" "$WORK/fw-1.bin" --name fw-1.bin --version 1 --hwid test-board >/dev/null
srv assign "$WORK/fleet" --device "$id" --target fw-1.bin >/dev/null
otad once 2>"$WORK/log2a" || { cat "$WORK/log2a"; fail "2: first update"; }
jq -e '.name=="fw-1.bin"' "$st/installed_target" >/dev/null || fail "2: fw-1.bin not installed"
cp -a "$st" "$WORK/before2"

head -c 100000 /dev/urandom >"$WORK/fw-2.bin"
srv add-target "$WORK/fleet" "$WORK/fw-2.bin" --name fw-2.bin --version 2 --hwid test-board >/dev/null
srv assign "$WORK/fleet" --device "$id" --target fw-2.bin >/dev/null
fill
if otad once 2>"$WORK/log2"; then fail "2: the update cycle succeeded on a full disk"; fi
grep -qE "could not store (director|image)_[a-z]*.json: writing $st/[a-z_]*.json: No space left on device" "$WORK/log2" ||
	{ cat "$WORK/log2"; fail "2: no message about the metadata that could not be stored"; }
for f in pkey.pem client.pem root.crt device_id ecukey.pem installed_target; do
	cmp -s "$st/$f" "$WORK/before2/$f" || fail "2: $f changed on a full disk"
done
store_parses 2
no_temps 2
unfill
# the failure was reported, which ends the assignment (as on OTA Connect): assign it again
dev_json "$id" | jq -e '.installation_report.success==false and .installation_report.code=="DOWNLOAD_FAILED"' >/dev/null ||
	fail "2: the server did not get the DOWNLOAD_FAILED report"
srv assign "$WORK/fleet" --device "$id" --target fw-2.bin >/dev/null
otad once 2>"$WORK/log2b" || { cat "$WORK/log2b"; fail "2: the update after space was freed"; }
jq -e '.name=="fw-2.bin"' "$st/installed_target" >/dev/null || fail "2: fw-2.bin not installed after space was freed"
dev_json "$id" | jq -e '.installation_report.success==true and .installed_target=="fw-2.bin"' >/dev/null ||
	fail "2: the server does not see fw-2.bin installed"
pass "2. metadata on a full disk: $(grep -oE "could not store [a-z_]*.json" "$WORK/log2" | head -n1) (No space left on device), state intact; freed: fw-2.bin installed"

# ---- 3. the download -----------------------------------------------------------------------
rm -f "$MNT"/d/images/*
head -c 3000000 /dev/urandom >"$WORK/fw-3.bin"
srv add-target "$WORK/fleet" "$WORK/fw-3.bin" --name fw-3.bin --version 3 --hwid test-board >/dev/null
srv assign "$WORK/fleet" --device "$id" --target fw-3.bin >/dev/null
cp -a "$st" "$WORK/before3"
fill 1000000
if otad once 2>"$WORK/log3"; then fail "3: downloaded 3 MB into 1 MB"; fi
grep -qE "download of fw-3.bin: not enough space for $MNT/d/images/[0-9a-f]{64}.part: 3000000 bytes needed, [0-9]+ free" "$WORK/log3" ||
	{ cat "$WORK/log3"; fail "3a: no message naming the .part file and the space needed"; }
jq -e '.name=="fw-2.bin"' "$st/installed_target" >/dev/null || fail "3a: installed_target changed"
for f in pkey.pem client.pem root.crt; do cmp -s "$st/$f" "$WORK/before3/$f" || fail "3a: $f changed"; done
store_parses 3a
no_temps 3a
pass "3a. download refused before it starts: $(grep -oE "not enough space for [^:]*: [0-9]+ bytes needed, [0-9]+ free" "$WORK/log3" | head -n1)"

# The disk fills up while the image arrives (the server sends 1 MB a second).
unfill
stop_server
start_server "$WORK/fleet" --quiet --faults "trickle+bps=1000000@/repo/targets/fw-3.bin"
[ "$(free_bytes)" -gt 3500000 ] || fail "3b: the tmpfs has only $(free_bytes) bytes free"
srv assign "$WORK/fleet" --device "$id" --target fw-3.bin >/dev/null
otad once 2>"$WORK/log3b" &
pid=$!
for _ in $(seq 1 200); do
	p=$(ls "$MNT"/d/images/*.part 2>/dev/null | head -n1 || true)
	[ -n "$p" ] && [ "$(stat -c %s "$p")" -gt 0 ] && break
	sleep 0.05
done
[ -n "$p" ] || { kill "$pid"; fail "3b: the download did not start"; }
cat /dev/zero >"$MNT/filler2" 2>/dev/null || true
if wait "$pid"; then fail "3b: the download succeeded on a full disk"; fi
grep -qE "download of fw-3.bin: no space left for 3000000 bytes \(writing $MNT/d/images/[0-9a-f]{64}.part: No space left on device\); deleted" "$WORK/log3b" ||
	{ cat "$WORK/log3b"; fail "3b: no message naming the .part file and 'No space left on device'"; }
jq -e '.name=="fw-2.bin"' "$st/installed_target" >/dev/null || fail "3b: installed_target changed"
for f in pkey.pem client.pem root.crt; do cmp -s "$st/$f" "$WORK/before3/$f" || fail "3b: $f changed"; done
store_parses 3b
no_temps 3b
pass "3b. disk full during the download: $(grep -oE "writing [^ ]*\.part: No space left on device" "$WORK/log3b" | head -n1 | sed "s|$MNT/d/images/||"), .part deleted"

unfill
stop_server
start_server "$WORK/fleet" --quiet
dev_json "$id" | jq -e '.installation_report.code=="DOWNLOAD_FAILED"' >/dev/null || fail "3b: no DOWNLOAD_FAILED report"
srv assign "$WORK/fleet" --device "$id" --target fw-3.bin >/dev/null
otad once 2>"$WORK/log3c" || { cat "$WORK/log3c"; fail "3: the update after space was freed"; }
jq -e '.name=="fw-3.bin"' "$st/installed_target" >/dev/null || fail "3: fw-3.bin not installed after space was freed"
cmp -s "$WORK/fw-3.bin" "$MNT/d/images/$(sha256sum <"$WORK/fw-3.bin" | cut -c1-64)" || fail "3: the image differs"
dev_json "$id" | jq -e '.installation_report.success==true and .installed_target=="fw-3.bin"' >/dev/null ||
	fail "3: the server does not see fw-3.bin installed"
[ "$(openssl x509 -in "$st/client.pem" -noout -subject -nameopt RFC2253 | sed 's/.*CN=\([^,]*\).*/\1/')" = "$uuid" ] ||
	fail "the device identity changed"
"$OTAD_BIN/otad-replay" "$st/journal.jsonl" >"$WORK/replay.out" || { cat "$WORK/replay.out"; fail "the journal does not replay"; }
pass "3. freed: fw-3.bin downloaded, installed and reported; the same device identity throughout"
