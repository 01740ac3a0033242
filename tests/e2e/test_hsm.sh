#!/usr/bin/env bash
# Keys in an HSM (PKCS#11, SoftHSM2): DeviceCred provisioning where the TLS key, and then
# also the certificate and the Uptane key, live in a token. The keys are generated inside
# the token and never leave it: the device certificate is made for the public key read
# from the token (softhsm_setup.sh: openssl x509 -force_pubkey), the TLS handshake signs in
# the token, and the director gets the Uptane key's public half. Then the failures a device
# owner meets: wrong PIN, no PIN, missing object IDs, missing module, a key that does not
# fit the certificate; each a clear message with nothing stored.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/softhsm_setup.sh"
setup_test
new_fleet "$WORK/fleet"
make_fleet_ca "$WORK/ca"
"$OTAD_BIN/server/ota-server" add-fleet-ca "$WORK/fleet" "$WORK/ca/fleet-ca.pem" >/dev/null
start_server "$WORK/fleet"

# One token (its own softhsm2.conf and token directory under $WORK) with:
#   02 EC P-256 TLS key of hsm-ec-1 (its certificate in a file)
#   04 RSA 2048 TLS key of hsm-rsa-2, 03 its certificate (in the token)
#   01 RSA 2048 Uptane key of hsm-rsa-2
hsm_init "$WORK/hsm" otad-test 1234
hsm_keygen 02 EC:prime256v1 tls-ec
hsm_keygen 04 rsa:2048 tls-rsa
hsm_keygen 01 rsa:2048 uptane
hsm_pubkey 02 "$WORK/pub02.pem"
hsm_pubkey 04 "$WORK/pub04.pem"
hsm_pubkey 01 "$WORK/pub01.pem"
hsm_tool --list-objects --type privkey 2>/dev/null >"$WORK/privkeys.txt"
[ "$(grep -c 'Access: *sensitive, always sensitive, never extractable, local' "$WORK/privkeys.txt")" = 3 ] ||
	{ cat "$WORK/privkeys.txt"; fail "the token's keys are not sensitive, never-extractable keys made in it"; }

imp=$WORK/import
mkdir -p "$imp"
cp "$WORK/fleet/server_ca.pem" "$imp/root.crt"
echo "https://127.0.0.1:$PORT" >"$imp/gateway.url"
hsm_sign_cert "$WORK/ca/fleet-ca.pem" "$WORK/ca/fleet-ca.key" "$WORK/pub02.pem" hsm-ec-1 "$imp/client.pem"
hsm_sign_cert "$WORK/ca/fleet-ca.pem" "$WORK/ca/fleet-ca.key" "$WORK/pub04.pem" hsm-rsa-2 "$WORK/rsa2.pem"
hsm_put_cert 03 "$WORK/rsa2.pem"

p11() { # [p11] settings: module, PIN, then KEY=VALUE lines
	echo "[p11]"
	echo "module = \"$HSM_MODULE\""
	for l in "$@"; do echo "$l"; done
}
no_key_material() { # DIR: nothing under DIR holds a private key
	if grep -rl "PRIVATE KEY" "$1" >/dev/null 2>&1; then fail "a private key was stored in $1"; fi
}

# 1. TLS key (EC) in the token, certificate from [import].
mapfile -t conf < <(echo "[tls]"; echo 'pkey_source = "pkcs11"'; p11 'pass = "1234"' 'tls_pkey_id = "02"')
devicecred_config "$WORK/d1" "$imp" "${conf[@]}"
"$OTAD_BIN/otad" -c "$WORK/d1/sota.toml" --no-updates once 2>"$WORK/d1.log" || { cat "$WORK/d1.log"; fail "provisioning with the TLS key in the token"; }
st=$WORK/d1/storage
[ "$(cat "$st/device_id")" = hsm-ec-1 ] || fail "device ID is not the certificate CN"
grep -q '^pkcs11:.*id=%02.*module-path=' "$st/pkey.pem" || { cat "$st/pkey.pem"; fail "pkey.pem does not name the token key"; }
no_key_material "$st/pkey.pem"
"$OTAD_BIN/server/ota-server" devices "$WORK/fleet" --json >"$WORK/devices.json"
jq -e '.[] | select(.device_id=="hsm-ec-1") | .ecus | length == 1' "$WORK/devices.json" >/dev/null ||
	{ cat "$WORK/devices.json"; fail "server does not know hsm-ec-1 and its ECU"; }
"$OTAD_BIN/server/ota-server" requests "$WORK/fleet" --json >"$WORK/requests.json"
[ "$(jq '[.[] | select(.path=="/devices")] | length' "$WORK/requests.json")" = 0 ] || fail "a registration call was made"
[ "$(jq -r '[.[] | .cn] | unique | join(",")' "$WORK/requests.json")" = hsm-ec-1 ] || fail "requests under another CN"
[ "$(jq -r .event "$st/journal.jsonl" | paste -sd' ')" = "start credentials_imported key_ready ecus_registered" ] ||
	{ cat "$st/journal.jsonl"; fail "not the DeviceCred path"; }
pass "EC TLS key in the token: provisioned as hsm-ec-1, the handshake signed in the token"

n0=$("$OTAD_BIN/server/ota-server" requests "$WORK/fleet" --json | jq length)
"$OTAD_BIN/otad" -c "$WORK/d1/sota.toml" --no-updates once 2>"$WORK/d1b.log" || { cat "$WORK/d1b.log"; fail "restart"; }
tail -n1 "$st/journal.jsonl" | jq -e '.event=="stored_provisioned"' >/dev/null || fail "restart did not use the stored state"
[ "$("$OTAD_BIN/server/ota-server" requests "$WORK/fleet" --json | jq length)" = "$n0" ] || fail "restart sent requests"
pass "restart: the token identity matches what is stored, no request"

# 2. Everything in the token: RSA TLS key, its certificate, and the Uptane key.
imp2=$WORK/import2
mkdir -p "$imp2"
cp "$imp/root.crt" "$imp/gateway.url" "$imp2/"
mapfile -t conf < <(echo "[tls]"; echo 'pkey_source = "pkcs11"'; echo 'cert_source = "pkcs11"'
	echo "[uptane]"; echo 'key_source = "pkcs11"'
	p11 'pass = "1234"' 'tls_pkey_id = "04"' 'tls_clientcert_id = "03"' 'uptane_key_id = "01"')
devicecred_config "$WORK/d2" "$imp2" "${conf[@]}"
"$OTAD_BIN/otad" -c "$WORK/d2/sota.toml" --no-updates once 2>"$WORK/d2.log" || { cat "$WORK/d2.log"; fail "provisioning with everything in the token"; }
st=$WORK/d2/storage
[ "$(cat "$st/device_id")" = hsm-rsa-2 ] || fail "device ID is not the CN of the token's certificate"
cmp -s "$st/client.pem" "$WORK/rsa2.pem" || fail "client.pem is not the token's certificate"
grep -q '^pkcs11:.*id=%01' "$st/ecukey.pem" || fail "ecukey.pem does not name the token's Uptane key"
cmp -s "$st/ecukey.pub" "$WORK/pub01.pem" || fail "the Uptane public key is not the token's"
no_key_material "$st"
serial=$(cat "$st/primary_ecu_serial")
"$OTAD_BIN/server/ota-server" devices "$WORK/fleet" --json |
	jq -e --arg s "$serial" '.[] | select(.device_id=="hsm-rsa-2") | .ecus | length == 1 and .[0].serial == $s and .[0].key_type == "RSA"' >/dev/null ||
	fail "server does not know hsm-rsa-2 with the token's Uptane key"
pass "RSA TLS key, certificate and Uptane key in the token: provisioned as hsm-rsa-2, ECU $serial"

# 3. Failures: a clear message, exit 1, nothing stored; a configuration error, except for a
# key that does not fit its certificate (an import failure, as with files, which `once` gives up on).
check_bad() {
	local name=$1 pattern=$2
	shift 2
	local d=$WORK/bad-$name
	devicecred_config "$d" "$imp" "$@"
	if "$OTAD_BIN/otad" -c "$d/sota.toml" --no-updates once 2>"$d.log"; then fail "$name: accepted"; fi
	grep -qF -- "$pattern" "$d.log" || { cat "$d.log"; fail "$name: no message '$pattern'"; }
	for f in pkey.pem client.pem root.crt ecukey.pem; do [ ! -e "$d/storage/$f" ] || fail "$name: $f stored"; done
	tail -n1 "$d/storage/journal.jsonl" | jq -e --arg ev "${EXPECT_EVENT:-config_error}" '.to=="failed" and .event==$ev' >/dev/null ||
		{ tail -n1 "$d/storage/journal.jsonl"; fail "$name: not ${EXPECT_EVENT:-config_error}"; }
	pass "$name: $(grep -o 'provisioning failed: .*' "$d.log" | head -c 190)"
}
tls=("[tls]" 'pkey_source = "pkcs11"')
check_bad wrong-pin "PKCS#11: login to token 'otad-test' failed: wrong PIN (CKR_PIN_INCORRECT)" \
	"${tls[@]}" '[p11]' "module = \"$HSM_MODULE\"" 'pass = "9999"' 'tls_pkey_id = "02"'
check_bad no-pin "PKCS#11: token 'otad-test' needs the user PIN: set [p11] pass" \
	"${tls[@]}" '[p11]' "module = \"$HSM_MODULE\"" 'tls_pkey_id = "02"'
check_bad missing-key-id "PKCS#11: no private key with ID 7f on token 'otad-test'" \
	"${tls[@]}" '[p11]' "module = \"$HSM_MODULE\"" 'pass = "1234"' 'tls_pkey_id = "7f"'
check_bad missing-cert-id "PKCS#11: no certificate with ID 33 on token 'otad-test'" \
	"${tls[@]}" 'cert_source = "pkcs11"' '[p11]' "module = \"$HSM_MODULE\"" 'pass = "1234"' \
	'tls_pkey_id = "02"' 'tls_clientcert_id = "33"'
check_bad missing-module "PKCS#11 module $WORK/no/libnope.so: cannot load (cannot open shared object file" \
	"${tls[@]}" '[p11]' "module = \"$WORK/no/libnope.so\"" 'pass = "1234"' 'tls_pkey_id = "02"'
echo "not a library" >"$WORK/fake.so"
check_bad not-a-module "PKCS#11 module $WORK/fake.so: cannot load" \
	"${tls[@]}" '[p11]' "module = \"$WORK/fake.so\"" 'pass = "1234"' 'tls_pkey_id = "02"'
# An EC key of the token that is not the certificate's: the token's signature of a
# challenge does not verify with the certificate's key.
hsm_keygen 05 EC:prime256v1 other-ec
EXPECT_EVENT=give_up check_bad wrong-key "the token's private key 05 does not belong to the certificate" \
	"${tls[@]}" '[p11]' "module = \"$HSM_MODULE\"" 'pass = "1234"' 'tls_pkey_id = "05"'

# The Uptane key's own errors come after the TLS identity is imported (ECU registration).
d=$WORK/bad-uptane-id
mapfile -t conf < <(echo "[tls]"; echo 'pkey_source = "pkcs11"'; echo "[uptane]"; echo 'key_source = "pkcs11"'
	p11 'pass = "1234"' 'tls_pkey_id = "02"' 'uptane_key_id = "09"')
devicecred_config "$d" "$imp" "${conf[@]}"
if "$OTAD_BIN/otad" -c "$d/sota.toml" --no-updates once 2>"$d.log"; then fail "missing Uptane key accepted"; fi
grep -qF "the Uptane key: PKCS#11: no private key with ID 09 on token 'otad-test'" "$d.log" || { cat "$d.log"; fail "no message for the missing Uptane key"; }
[ ! -e "$d/storage/ecukey.pem" ] || fail "an Uptane key was stored"
[ ! -e "$d/storage/is_registered" ] || fail "ECU registered without its key"
pass "missing Uptane key: $(grep -o 'provisioning failed: .*' "$d.log" | head -c 190)"

# 4. hsm-ec-1 as a daemon: the token stays open, and a renewed certificate for the same
# token key (same CN, new certificate in [import]) is re-imported.
"$OTAD_BIN/otad" -c "$WORK/d1/sota.toml" --set uptane.polling_sec=1 --no-updates daemon 2>"$WORK/w.log" &
pid=$!
for _ in $(seq 1 50); do grep -q "provisioned:" "$WORK/w.log" && break; sleep 0.1; done
hsm_sign_cert "$WORK/ca/fleet-ca.pem" "$WORK/ca/fleet-ca.key" "$WORK/pub02.pem" hsm-ec-1 "$imp/client.pem"
for _ in $(seq 1 60); do [ "$(grep -c "provisioned:" "$WORK/w.log")" -ge 2 ] && break; sleep 0.1; done
kill -TERM $pid 2>/dev/null || true
wait $pid || true
grep -q "the \[import\] credentials changed" "$WORK/w.log" || { cat "$WORK/w.log"; fail "daemon did not notice the renewed certificate"; }
cmp -s "$WORK/d1/storage/client.pem" "$imp/client.pem" || fail "renewed certificate not imported"
if grep -q "error" "$WORK/w.log"; then cat "$WORK/w.log"; fail "daemon logged an error"; fi
pass "daemon: renewed certificate for the token key re-imported"
