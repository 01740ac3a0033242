#!/usr/bin/env bash
# Bad provisioning inputs: each a clear error, exit 1, no credentials written, zip intact.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
setup_test
new_fleet "$WORK/fleet"
start_server "$WORK/fleet"
zip=$WORK/fleet/credentials.zip

# expect_failure NAME ZIP PATTERN [extra toml]
expect_failure() {
	local name=$1 src=$2 pattern=$3
	shift 3
	local d=$WORK/$name
	device_config "$d" "$src" "$@"
	local sum
	sum=$(sha256sum <"$d/credentials.zip")
	if "$OTAD_BIN/otad" -c "$d/sota.toml" --no-updates once 2>"$d/log"; then fail "$name: otad succeeded"; fi
	grep -q -- "$pattern" "$d/log" || { cat "$d/log"; fail "$name: no message matching '$pattern'"; }
	for f in pkey.pem client.pem root.crt device_id ecukey.pem; do
		[ ! -e "$d/storage/$f" ] || fail "$name: $f was written"
	done
	[ "$(sha256sum <"$d/credentials.zip")" = "$sum" ] || fail "$name: the zip was changed"
	pass "$name: $(grep -o 'provisioning failed: .*' "$d/log" | head -c 160)"
}

head -c 3000 /dev/urandom >"$WORK/random.zip"
expect_failure corrupt-zip "$WORK/random.zip" "not a zip archive"

head -c "$(($(stat -c %s "$zip") / 2))" "$zip" >"$WORK/truncated.zip"
expect_failure truncated-zip "$WORK/truncated.zip" "credentials.zip"

mkdir -p "$WORK/nop12" && (cd "$WORK/nop12" && unzip -q "$zip" && rm autoprov_credentials.p12 && zip -q ../nop12.zip ./*)
expect_failure missing-p12 "$WORK/nop12.zip" "autoprov_credentials.p12"

mkdir -p "$WORK/nourl" && (cd "$WORK/nourl" && unzip -q "$zip" && rm autoprov.url && zip -q ../nourl.zip ./*)
expect_failure missing-url "$WORK/nourl.zip" "autoprov.url"

expect_failure wrong-password "$zip" "wrong password" '[provision]' 'p12_password = "not-the-password"'
same_path "$WORK/wrong-password/storage/journal.jsonl" bad_credentials


# A fleet whose archive has a password: the right one works.
pw=$WORK/pwfleet
"$OTAD_BIN/server/ota-server" init "$pw" --port "$PORT" --p12-password s3cret >/dev/null
device_config "$WORK/nopass" "$pw/credentials.zip"
if "$OTAD_BIN/otad" -c "$WORK/nopass/sota.toml" --no-updates once 2>"$WORK/nopass/log"; then fail "no password accepted"; fi
grep -q "wrong password" "$WORK/nopass/log" || fail "no password: message"
pass "password-protected archive without the password: clear error"

expect_failure missing-zip "$zip" "no such file" '[provision]' 'provision_path = "/nonexistent/credentials.zip"'

# Malformed configuration: exit 2 with file and line.
mkdir -p "$WORK/badconf"
printf '[provision]\nprovision_path = "%s"\nthis line is wrong\n' "$zip" >"$WORK/badconf/sota.toml"
set +e
"$OTAD_BIN/otad" -c "$WORK/badconf/sota.toml" --no-updates once 2>"$WORK/badconf/log"
rc=$?
set -e
[ $rc = 2 ] || fail "malformed config: exit $rc, expected 2"
grep -q "sota.toml:3" "$WORK/badconf/log" || { cat "$WORK/badconf/log"; fail "malformed config: no file:line"; }
pass "malformed config: exit 2, $(head -c 120 "$WORK/badconf/log")"
