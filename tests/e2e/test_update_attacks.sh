#!/usr/bin/env bash
# Uptane attacks that need the server's help (`ota-server uptane ...`), one after the other
# against one device and one server: thresholds of 2 (director targets, image targets and
# snapshot) not met, the same key's signature twice, metadata signed by a key no root lists,
# broken root chains in both repositories, a delegated role signed by a wrong key, and a
# terminating delegation hiding a target. For each, `otad once` must fail, install nothing
# (status and images directory), keep the trusted copy of the refused document, log the
# reason and report VERIFICATION_FAILED to the server; once the server's metadata is
# repaired, the same update installs. Also: key rotations to 2-of-2 and 2-of-3 followed,
# targets found through a delegation and through a nested one.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
setup_test
new_fleet "$WORK/fleet"
start_server "$WORK/fleet"
F=$WORK/fleet
srv() { "$OTAD_BIN/server/ota-server" "$@" >>"$WORK/server-commands.log"; }
dev=$WORK/d
device_config "$dev" "$F/credentials.zip" "[pacman]" 'type = "none"' "images_path = \"$dev/images\""
otad() { "$OTAD_BIN/otad" -c "$dev/sota.toml" --retry-cap 1 "$@"; }
st=$dev/storage

otad once 2>"$WORK/log-provision" || { cat "$WORK/log-provision"; fail "provisioning cycle"; }
id=$(cat "$st/device_id")
device_json() { "$OTAD_BIN/server/ota-server" devices "$F" --json | jq --arg id "$id" '.[] | select(.device_id==$id)'; }
installed() { otad status --json | jq -r '.installed_target.name // "none"'; }
sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# offer NAME [add-target options]: a new target file, added (top-level unless the options
# name a delegation) and assigned to the device.
offer() {
	local name=$1
	shift
	head -c 150000 /dev/urandom >"$WORK/$name"
	if [ $# -gt 0 ]; then
		srv uptane add-target "$F" "$WORK/$name" --name "$name" --version "$name" --hwid test-board "$@"
	else
		srv add-target "$F" "$WORK/$name" --name "$name" --version "$name" --hwid test-board
	fi
	srv assign "$F" --device "$id" --target "$name"
}

# refused SCENARIO TARGET KIND PATTERN KEPT: the next cycle must fail with "Uptane
# verification failed (KIND)" and a log line matching PATTERN, install nothing, leave the
# stored trusted document KEPT (a storage file name, or "-") as it was, and report
# VERIFICATION_FAILED; the assignment stands (the device retries it every cycle).
refused() {
	local name=$1 target=$2 kind=$3 pattern=$4 kept=$5
	local before_inst before_kept="" sha
	before_inst=$(installed)
	[ "$kept" = - ] || before_kept=$(sha_of "$st/$kept")
	sha=$(sha_of "$WORK/$target")
	if otad once 2>"$WORK/log-$name"; then cat "$WORK/log-$name"; fail "$name: the cycle succeeded"; fi
	grep -q "Uptane verification failed ($kind)" "$WORK/log-$name" ||
		{ cat "$WORK/log-$name"; fail "$name: no 'Uptane verification failed ($kind)' in the log"; }
	grep -qE -- "$pattern" "$WORK/log-$name" || { cat "$WORK/log-$name"; fail "$name: no log line matching '$pattern'"; }
	[ "$(installed)" = "$before_inst" ] || fail "$name: installed '$(installed)'"
	if ls "$dev/images" 2>/dev/null | grep -q "^$sha"; then fail "$name: $target was downloaded"; fi
	grep -q "update available: $target" "$WORK/log-$name" && fail "$name: $target was offered"
	[ "$kept" = - ] || [ "$(sha_of "$st/$kept")" = "$before_kept" ] || fail "$name: the trusted $kept changed"
	device_json >"$WORK/dev-$name.json"
	jq -e --arg k "$kind" '.installation_report | .success==false and .code=="VERIFICATION_FAILED" and (.description|contains($k))' \
		"$WORK/dev-$name.json" >/dev/null || { cat "$WORK/dev-$name.json"; fail "$name: VERIFICATION_FAILED ($kind) not reported"; }
	jq -e --arg t "$target" '.assignment.targets | index($t) != null' "$WORK/dev-$name.json" >/dev/null ||
		{ cat "$WORK/dev-$name.json"; fail "$name: the assignment of $target is gone"; }
	pass "$name: refused ($(grep -o "Uptane verification failed.*" "$WORK/log-$name" | head -n1 | cut -c1-170))"
}

# installs SCENARIO TARGET: the next cycle installs TARGET and reports it.
installs() {
	local name=$1 target=$2
	otad once 2>"$WORK/log-$name-ok" || { cat "$WORK/log-$name-ok"; fail "$name: the update cycle failed"; }
	[ "$(installed)" = "$target" ] || { cat "$WORK/log-$name-ok"; fail "$name: installed '$(installed)', not $target"; }
	cmp -s "$WORK/$target" "$dev/images/$(sha_of "$WORK/$target")" || fail "$name: the image differs from $target"
	device_json | jq -e --arg t "$target" '.installed_target==$t and .installation_report.code=="OK"' >/dev/null ||
		{ device_json; fail "$name: the server does not see $target installed"; }
}

# 1. More keys: director targets 2 of 2, image targets 2 of 3, image snapshot 2 of 2. The
#    device follows root version 2 of each repository and installs.
srv uptane set-keys "$F" --repo director --role targets --keys 2 --threshold 2
srv uptane set-keys "$F" --repo image --role targets --keys 3 --threshold 2
srv uptane set-keys "$F" --repo image --role snapshot --keys 2 --threshold 2
offer fw-keys.bin
installs keys fw-keys.bin
[ "$(jq -r .signed.version "$st/director_root.json")" = 2 ] || fail "director root 2 not followed"
[ "$(jq -r '.signed.roles.targets.threshold' "$st/image_root.json")" = 2 ] || fail "image root 2 not followed"
[ "$(jq '.signatures | length' "$st/image_targets.json")" = 3 ] || fail "image targets not signed by its 3 keys"
pass "keys rotated (director targets 2 of 2, image targets 2 of 3, snapshot 2 of 2): update installed"

# 2. Director targets signed by 1 of its 2 keys.
offer fw-dthreshold.bin
srv uptane resign "$F" --repo director --role targets --device "$id" --sign-with 1
refused director-threshold fw-dthreshold.bin UPTANE_THRESHOLD \
	"director targets.json: 1 valid signature\(s\) from trusted keys, 2 required" director_targets.json
srv uptane resign "$F" --repo director --role targets --device "$id"
installs director-threshold fw-dthreshold.bin
pass "director-threshold: installed once signed by both keys"

# 3. Image targets signed by 1 of the 2 it needs (snapshot and timestamp are valid).
offer fw-ithreshold.bin
srv uptane resign "$F" --repo image --role targets --sign-with 1
refused image-targets-threshold fw-ithreshold.bin UPTANE_THRESHOLD \
	"image targets.json: 1 valid signature\(s\) from trusted keys, 2 required" image_targets.json
srv uptane resign "$F" --repo image --role targets
installs image-targets-threshold fw-ithreshold.bin
pass "image-targets-threshold: installed once signed by 2 keys"

# 4. Image snapshot without any signature.
offer fw-snapshot.bin
srv uptane resign "$F" --repo image --role snapshot --sign-with 0
refused image-snapshot-unsigned fw-snapshot.bin UPTANE_THRESHOLD \
	"image snapshot.json: 0 valid signature\(s\) from trusted keys, 2 required" image_snapshot.json
srv uptane resign "$F" --repo image --role snapshot
installs image-snapshot-unsigned fw-snapshot.bin
pass "image-snapshot-unsigned: installed once re-signed"

# 5. Threshold 2 "met" by one key signing twice.
offer fw-dup.bin
srv uptane resign "$F" --repo director --role targets --device "$id" --sign-with 1 --duplicate-signatures
[ "$(jq '[.signatures[].keyid] | unique | length' "$F/uptane/director/devices"/*/targets.json)" = 1 ] ||
	fail "duplicate-signatures: the server did not sign with one key twice"
refused duplicate-signatures fw-dup.bin UPTANE_DUPLICATE_SIGNATURE \
	"director targets.json: two signatures with key ID" director_targets.json
srv uptane resign "$F" --repo director --role targets --device "$id"
installs duplicate-signatures fw-dup.bin
pass "duplicate-signatures: installed once signed by two keys"

# 6. Image timestamp signed by a key no root lists.
offer fw-wrongkey.bin
srv uptane resign "$F" --repo image --role timestamp --wrong-key
refused wrong-key fw-wrongkey.bin UPTANE_THRESHOLD \
	"image timestamp.json: 0 valid signature\(s\) from trusted keys, 1 required" image_timestamp.json
srv uptane resign "$F" --repo image --role timestamp
installs wrong-key fw-wrongkey.bin
pass "wrong-key: installed once signed by the timestamp key"

# 7. Broken root chains: root N+1 signed by a new key only, in each repository.
for repo in director image; do
	offer "fw-chain-$repo.bin"
	next=$(($(jq -r .signed.version "$F/uptane/$repo/root.json") + 1))
	srv uptane rotate-root "$F" --repo "$repo" --bad-chain
	refused "bad-chain-$repo" "fw-chain-$repo.bin" UPTANE_THRESHOLD \
		"$repo root.json \(by the keys of root version $((next - 1))\): 0 valid signature" "${repo}_root.json"
	[ "$(jq -r .signed.version "$st/${repo}_root.json")" = $((next - 1)) ] || fail "bad-chain-$repo: trusted root moved"
	srv resign "$F" --repo "$repo" --role root --version "$next"
	installs "bad-chain-$repo" "fw-chain-$repo.bin"
	[ "$(jq -r .signed.version "$st/${repo}_root.json")" = "$next" ] || fail "bad-chain-$repo: root $next not followed"
	pass "bad-chain-$repo: installed once root $next was signed by the keys of root $((next - 1))"
done

# 8. Delegations: a target in a delegated role, then in a role that role delegates to.
srv uptane delegate "$F" --name apps --paths 'app-*'
offer app-1.bin --delegation apps
installs delegated app-1.bin
pass "delegated: app-1.bin found through delegations/apps.json and installed"
srv uptane delegate "$F" --name beta --parent apps --paths 'app-beta-*' --keys 2 --threshold 2
offer app-beta-1.bin --delegation beta
installs nested-delegation app-beta-1.bin
pass "nested-delegation: app-beta-1.bin found through apps then beta (2 of 2 keys) and installed"

# 9. The delegated role signed by a wrong key.
offer app-2.bin --delegation apps
srv uptane resign "$F" --repo image --role apps --wrong-key
refused delegation-wrong-key app-2.bin UPTANE_THRESHOLD \
	"image delegations/apps.json: 0 valid signature\(s\) from trusted keys, 1 required" -
srv uptane resign "$F" --repo image --role apps
installs delegation-wrong-key app-2.bin
pass "delegation-wrong-key: installed once apps was signed by its key"

# 10. A role made terminating hides a target from the roles listed after it: "locked" and
#     "more" both match lk-*, in that order; the target is in "more".
srv uptane delegate "$F" --name locked --paths 'lk-*'
srv uptane delegate "$F" --name more --paths 'lk-*'
offer lk-1.bin --delegation more
srv uptane delegate "$F" --name locked --paths 'lk-*' --terminating
jq -e '[.signed.delegations.roles[] | [.name, .terminating]] == [["apps",false],["locked",true],["more",false]]' \
	"$F/uptane/image/targets.json" >/dev/null || fail "terminating: unexpected delegations in the image targets"
refused terminating lk-1.bin UPTANE_NO_TARGET 'image repository: no target named "lk-1.bin"' -
if "$OTAD_BIN/server/ota-server" assign "$F" --device "$id" --target lk-1.bin 2>"$WORK/assign-hidden.err"; then
	fail "terminating: the server assigned a target clients cannot find"
fi
grep -q "no target 'lk-1.bin'" "$WORK/assign-hidden.err" || fail "terminating: assign: $(cat "$WORK/assign-hidden.err")"
srv uptane delegate "$F" --name locked --paths 'lk-*'
installs terminating lk-1.bin
pass "terminating: installed once 'locked' no longer ends the search"
"$OTAD_BIN/otad-replay" "$st/journal.jsonl" >/dev/null || fail "journal replay"
