#!/usr/bin/env bash
# The update cycle end to end: ota-server assigns a target; otad polls with a signed
# manifest, verifies director and image metadata (Uptane), downloads, installs (pacman
# none) and reports; the server sees the installation report. Then attacks: each refused,
# nothing installed, the failure reported.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
setup_test
new_fleet "$WORK/fleet"
start_server "$WORK/fleet"
srv() { "$OTAD_BIN/server/ota-server" "$@"; }
dev=$WORK/d
device_config "$dev" "$WORK/fleet/credentials.zip" "[pacman]" 'type = "none"' "images_path = \"$dev/images\""
otad() { "$OTAD_BIN/otad" -c "$dev/sota.toml" --retry-cap 1 "$@"; }
st=$dev/storage

# 1. Provision + one cycle with nothing assigned.
otad once 2>"$WORK/log1" || { cat "$WORK/log1"; fail "first cycle"; }
grep -q "no update assigned" "$WORK/log1" || fail "no 'no update assigned' line"
id=$(cat "$st/device_id")
srv devices "$WORK/fleet" --json | jq -e --arg id "$id" '.[] | select(.device_id==$id) | .last_manifest != null' >/dev/null ||
	{ srv devices "$WORK/fleet" --json; fail "server did not store the manifest"; }
pass "provisioned and polled: manifest sent, nothing assigned"

# 2. An update: assigned, downloaded, verified, installed, reported.
head -c 3000000 /dev/urandom >"$WORK/fw-1.bin"
srv add-target "$WORK/fleet" "$WORK/fw-1.bin" --name fw-1.bin --version 1.0 --hwid test-board >/dev/null
srv assign "$WORK/fleet" --device "$id" --target fw-1.bin >/dev/null
otad once 2>"$WORK/log2" || { cat "$WORK/log2"; fail "update cycle"; }
grep -q "update available: fw-1.bin" "$WORK/log2" || { cat "$WORK/log2"; fail "no update found"; }
cmp -s "$WORK/fw-1.bin" "$(ls "$dev"/images/* | grep -v '\.part$' | head -n1)" || fail "downloaded image differs"
jq -e '.name=="fw-1.bin"' "$st/installed_target" >/dev/null || fail "installed_target not recorded"
srv devices "$WORK/fleet" --json >"$WORK/dev.json"
jq -e --arg id "$id" '.[] | select(.device_id==$id) | .installed_target=="fw-1.bin"' "$WORK/dev.json" >/dev/null ||
	{ cat "$WORK/dev.json"; fail "server does not see fw-1.bin installed"; }
jq -e --arg id "$id" '.[] | select(.device_id==$id) | .installation_report.success==true' "$WORK/dev.json" >/dev/null ||
	{ cat "$WORK/dev.json"; fail "server has no successful installation report"; }
"$OTAD_BIN/otad-replay" "$st/journal.jsonl" >/dev/null || fail "journal replay"
same_path "$st/journal.jsonl" update_cycle
[ "$(jq -r '.[] | select(.device_id=="'"$id"'") | .events | map(.type) | join(" ")' "$WORK/dev.json")" = \
	"EcuDownloadStarted EcuDownloadCompleted EcuInstallationStarted EcuInstallationCompleted" ] ||
	{ cat "$WORK/dev.json"; fail "the server did not get the update's events"; }
pass "update assigned, downloaded, verified, installed and reported, with events"

# 3. Nothing new: the next cycle finds it installed.
otad once 2>"$WORK/log3" || { cat "$WORK/log3"; fail "idle cycle"; }
grep -q "update available" "$WORK/log3" && fail "the same update was offered again"
pass "next cycle: nothing to do"

# attack NAME SETUP PATTERN: SETUP corrupts the server; the next cycle must refuse
# the update with a log line matching PATTERN, install nothing and report the failure.
attack() {
	local name=$1 setup=$2 pattern=$3 target=fw-$1.bin
	head -c 200000 /dev/urandom >"$WORK/$target"
	srv add-target "$WORK/fleet" "$WORK/$target" --name "$target" --version "$name" --hwid test-board >/dev/null
	srv assign "$WORK/fleet" --device "$id" --target "$target" >/dev/null
	local before
	before=$(jq -r .name "$st/installed_target")
	eval "$setup"
	if otad once 2>"$WORK/log-$name"; then fail "$name: the cycle reported success"; fi
	grep -qE -- "$pattern" "$WORK/log-$name" || { cat "$WORK/log-$name"; fail "$name: no message matching '$pattern'"; }
	[ "$(jq -r .name "$st/installed_target")" = "$before" ] || fail "$name: something else was installed"
	srv devices "$WORK/fleet" --json | jq -e --arg id "$id" '.[] | select(.device_id==$id) | .installation_report.success==false' >/dev/null ||
		fail "$name: the failure was not reported"
	pass "$name: refused ($(grep -oE -- "$pattern.{0,80}" "$WORK/log-$name" | head -n1))"
}
attack arbitrary 'head -c 200000 /dev/urandom >"$WORK/fleet/targets/fw-arbitrary.bin"' "hash"
attack endless 'head -c 400000 /dev/urandom >>"$WORK/fleet/targets/fw-endless.bin"' "exceeds|length"
attack freeze 'srv resign "$WORK/fleet" --repo image --role timestamp --expires -1d >/dev/null' "EXPIRED|expired"
attack director-freeze 'srv resign "$WORK/fleet" --repo director --role targets --device "$id" --expires -1d >/dev/null' "EXPIRED|expired"
uuid=$(openssl x509 -in "$st/client.pem" -noout -subject -nameopt RFC2253 | sed 's/.*CN=\([^,]*\).*/\1/')
# one character of the director's signature changed: same length, no parent hash to catch it
flip_sig='f="$WORK/fleet/uptane/director/devices/$uuid/targets.json"; s=$(jq -r ".signatures[0].sig" "$f"); c=${s:0:1}; [ "$c" = A ] && n=B || n=A; jq -c --arg s "$n${s:1}" ".signatures[0].sig=\$s" "$f" >"$f.x" && mv "$f.x" "$f"'
attack bad-signature "$flip_sig" "SIGNATURE|THRESHOLD|signature"
attack snapshot-tampered 'f="$WORK/fleet/uptane/image/snapshot.json"; jq -c ".signed.expires=\"2099-01-01T00:00:00Z\"" "$f" >"$f.x" && mv "$f.x" "$f"' "TOO_BIG|HASH|larger"
attack rollback 'srv resign "$WORK/fleet" --repo image --role timestamp --version 1 >/dev/null' "ROLLBACK|rollback|lower"
"$OTAD_BIN/otad-replay" "$st/journal.jsonl" >/dev/null || fail "journal replay after attacks"

# The server moves on past the version the rollback attack served.
srv resign "$WORK/fleet" --repo image --role timestamp --version 50 >/dev/null

# Root rotation (both repositories): the device walks N+1.root.json and updates.
srv rotate-root "$WORK/fleet" --repo director >/dev/null
srv rotate-root "$WORK/fleet" --repo image >/dev/null
head -c 100000 /dev/urandom >"$WORK/fw-rotated.bin"
srv add-target "$WORK/fleet" "$WORK/fw-rotated.bin" --name fw-rotated.bin --version rotated --hwid test-board >/dev/null
srv assign "$WORK/fleet" --device "$id" --target fw-rotated.bin >/dev/null
otad once 2>"$WORK/log-rotated" || { cat "$WORK/log-rotated"; fail "update after root rotation"; }
jq -e '.name=="fw-rotated.bin"' "$st/installed_target" >/dev/null || fail "rotated: not installed"
[ "$(jq -r .signed.version "$st/director_root.json")" -ge 2 ] || fail "director root not rotated"
[ "$(jq -r .signed.version "$st/image_root.json")" -ge 2 ] || fail "image root not rotated"
pass "root rotation of both repositories followed, update installed"

# Mix-and-match: an older snapshot served beside the current timestamp.
attack mix-and-match 'cp "$WORK/fleet/uptane/image/2.snapshot.json" "$WORK/fleet/uptane/image/snapshot.json"' "VERSION|HASH|TOO_BIG|mismatch|larger"
# Metadata signed by a key the root does not list: threshold not met (last: it leaves
# the server with a foreign timestamp key).
"$OTAD_BIN/server/ota-server" init "$WORK/other" --port "$PORT" >/dev/null
srv add-target "$WORK/other" "$WORK/fw-rotated.bin" --name x --version x --hwid test-board >/dev/null
attack wrong-key 'cp "$WORK/other/uptane/image/keys/timestamp.key" "$WORK/fleet/uptane/image/keys/timestamp.key" && srv resign "$WORK/fleet" --repo image --role timestamp >/dev/null' "THRESHOLD|SIGNATURE|signature"
"$OTAD_BIN/otad-replay" "$st/journal.jsonl" >/dev/null || fail "journal replay at the end"
