#!/usr/bin/env bash
# Implicit provisioning on ota-server: an operator uploads a fleet root CA (add-fleet-ca);
# a device whose certificate chains to it is created on its first request, with its CN as
# device ID, and registers its ECUs. Certificates of another CA, expired ones, garbage and
# leaf certificates offered as CAs, and a fleet-CA certificate on POST /devices are refused
# with clear errors. All certificates are made with openssl, the requests with curl.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
setup_test
S="$OTAD_BIN/server/ota-server"
F="$WORK/fleet"
P="$WORK/pki"
mkdir -p "$P"
new_fleet "$F"

# key_csr NAME SUBJECT: an EC P-256 key and a certificate request.
key_csr() {
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$P/$1.key" \
		-out "$P/$1.csr" -subj "$2" 2>/dev/null
}
# self_ca NAME SUBJECT: a self-signed root CA (basicConstraints CA:TRUE).
self_ca() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$P/$1.key" \
		-out "$P/$1.pem" -days 3650 -subj "$2" 2>/dev/null
}
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' >"$P/client.ext"
# device_cert NAME CN CA: a TLS client certificate for CN signed by CA, valid for a year.
device_cert() {
	key_csr "$1" "/CN=$2"
	openssl x509 -req -in "$P/$1.csr" -CA "$P/$3.pem" -CAkey "$P/$3.key" -days 365 \
		-set_serial "0x$(openssl rand -hex 8)" -extfile "$P/client.ext" -out "$P/$1.pem" 2>/dev/null
}
# post CERT PATH BODY: POSTs as the device with certificate CERT; prints the status, leaves
# the body in $WORK/reply.
post() {
	curl -sS -o "$WORK/reply" -w '%{http_code}' --cacert "$F/server_ca.pem" --cert "$P/$1.pem" \
		--key "$P/$1.key" -H 'Content-Type: application/json' -X POST \
		"https://127.0.0.1:$PORT$2" -d "$3" || fail "curl $2 with $1: transport error"
}
ecus_body() { # SERIAL
	printf '{"primary_ecu_serial":"%s","ecus":[{"ecu_serial":"%s","hardware_identifier":"fleet-board","clientKey":{"keytype":"ED25519","keyval":{"public":"%s"}}}]}' \
		"$1" "$1" "$(openssl rand -hex 32 | tr a-f A-F)"
}
# expect STATUS CODE WHAT: the last reply was STATUS with JSON error code CODE.
expect() {
	[ "$status" = "$1" ] || { cat "$WORK/reply" >&2; fail "$3: HTTP $status, expected $1"; }
	[ "$(jq -r .code "$WORK/reply")" = "$2" ] || { cat "$WORK/reply" >&2; fail "$3: code is not $2"; }
}

# ---- add-fleet-ca: what it accepts and refuses ----
self_ca fleet "/O=Acme/CN=Acme Fleet Root CA"
"$S" add-fleet-ca "$F" "$P/fleet.pem" --name acme >"$WORK/add.out" || fail "add-fleet-ca refused a CA"
grep -q "added fleet CA 'acme'" "$WORK/add.out" || { cat "$WORK/add.out"; fail "add-fleet-ca did not say what it added"; }
fp=$(openssl x509 -in "$P/fleet.pem" -noout -fingerprint -sha256 | cut -d= -f2 | tr -d : | tr A-F a-f)
grep -q "sha256:  $fp" "$WORK/add.out" || fail "add-fleet-ca printed the wrong fingerprint"
"$S" add-fleet-ca "$F" "$P/fleet.pem" >"$WORK/add2.out" || fail "adding the same CA again failed"
grep -q "present already" "$WORK/add2.out" || fail "adding the same CA again was not idempotent"
"$S" fleet-cas "$F" --json >"$WORK/cas.json"
[ "$(jq length "$WORK/cas.json")" = 1 ] || fail "fleet-cas lists $(jq length "$WORK/cas.json") CAs, expected 1"
[ "$(jq -r '.[0].sha256' "$WORK/cas.json")" = "$fp" ] || fail "fleet-cas: wrong sha256"
[ "$(jq -r '.[0].name' "$WORK/cas.json")" = acme ] || fail "fleet-cas: wrong name"
[ -s "$F/fleet_cas/acme.pem" ] || fail "fleet_cas/acme.pem not written"
pass "add-fleet-ca stores a CA (idempotently) and fleet-cas lists it"

head -c 700 /dev/urandom >"$P/garbage.pem"
if "$S" add-fleet-ca "$F" "$P/garbage.pem" 2>"$WORK/err"; then fail "add-fleet-ca accepted garbage"; fi
grep -q "refused: not a certificate" "$WORK/err" || { cat "$WORK/err"; fail "no clear message for garbage"; }
device_cert leaf leaf-as-ca fleet
if "$S" add-fleet-ca "$F" "$P/leaf.pem" 2>"$WORK/err"; then fail "add-fleet-ca accepted a leaf"; fi
grep -q "refused: it is not a CA certificate" "$WORK/err" || { cat "$WORK/err"; fail "no clear message for a leaf"; }
leaf_err=$(cat "$WORK/err")
if "$S" add-fleet-ca "$F" "$P/fleet.key" 2>"$WORK/err"; then fail "add-fleet-ca accepted a private key"; fi
grep -q "private key" "$WORK/err" || { cat "$WORK/err"; fail "no clear message for a private key"; }
if "$S" add-fleet-ca "$F" "$F/provisioning_ca.pem" 2>/dev/null; then fail "the fleet's own CA was added"; fi
[ "$("$S" fleet-cas "$F" --json | jq length)" = 1 ] || fail "a refused CA was stored"
pass "add-fleet-ca refuses garbage, a leaf certificate, a key and the fleet's own CA (${leaf_err##*refused: })"

# ---- serve: a fleet-CA device is created on first contact ----
start_server "$F"
grep -q "trusting fleet CA 'acme'" "$F/server.log" || fail "serve did not load the fleet CA"
device_cert dev1 fleet-dev-1 fleet
ecus1=$(ecus_body fleet-ecu-1)
status=$(post dev1 /director/ecus "$ecus1")
[ "$status" = 200 ] || { cat "$WORK/reply" >&2; fail "ECU registration of the fleet device: HTTP $status"; }
"$S" devices "$F" --json >"$WORK/devices.json"
jq -e '.[] | select(.device_id == "fleet-dev-1")' "$WORK/devices.json" >"$WORK/dev1.json" ||
	{ cat "$WORK/devices.json"; fail "fleet-dev-1 was not created"; }
[ "$(jq -r .provisioning "$WORK/dev1.json")" = implicit ] || fail "fleet-dev-1 is not marked implicit"
[ "$(jq -r .fleet_ca "$WORK/dev1.json")" = acme ] || fail "fleet-dev-1 does not name its fleet CA"
[ "$(jq -r .primary_ecu "$WORK/dev1.json")" = fleet-ecu-1 ] || fail "fleet-dev-1's primary ECU is not recorded"
[ "$(jq -r '.ecus[0].serial' "$WORK/dev1.json")" = fleet-ecu-1 ] || fail "fleet-dev-1's ECU is not recorded"
uuid=$(jq -r .uuid "$WORK/dev1.json")
[[ "$uuid" =~ ^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$ ]] || fail "uuid '$uuid' is not a UUIDv4"
"$S" requests "$F" --json | jq -e '.[-1] | .cn == "fleet-dev-1" and .status == 200' >/dev/null ||
	fail "the request log does not name fleet-dev-1"
pass "a fleet-CA certificate is a device: fleet-dev-1 (uuid $uuid) created, ECU registered"

# The same CN in a new certificate from the same CA is the same device: registering the same
# ECUs again is answered 200 (another device would get 409 ecu_already_registered).
device_cert dev1b fleet-dev-1 fleet
status=$(post dev1b /director/ecus "$ecus1")
[ "$status" = 200 ] || { cat "$WORK/reply" >&2; fail "a renewed certificate is not the same device: $status"; }
[ "$("$S" devices "$F" --json | jq '[.[] | select(.device_id == "fleet-dev-1")] | length')" = 1 ] ||
	fail "a second certificate with the same CN made a second device"
pass "a renewed certificate with the same CN is the same device"

# ---- refusals ----
self_ca other "/CN=Some Other CA"
device_cert stranger fleet-dev-9 other
status=$(post stranger /director/ecus "$(ecus_body stranger-ecu)")
expect 403 unknown_client_certificate "a certificate of an unknown CA"
pass "unknown CA: 403 $(jq -c . "$WORK/reply" | head -c 150)"

status=$(post dev1 /devices '{"deviceId":"fleet-dev-1","ttl":"36000"}')
expect 403 forbidden "POST /devices with a fleet-CA certificate"
grep -q "provisioning certificate" "$WORK/reply" || fail "POST /devices: the reason is not given"
pass "POST /devices with a fleet-CA certificate: 403 forbidden"

# An expired device certificate: `openssl ca` can set past dates (OpenSSL 3.0's x509 cannot).
mkdir -p "$P/ca-db"
: >"$P/ca-db/index.txt"
echo 1000 >"$P/ca-db/serial"
cat >"$P/ca.cnf" <<EOF
[ca]
default_ca = fleet
[fleet]
dir = $P/ca-db
database = \$dir/index.txt
serial = \$dir/serial
new_certs_dir = \$dir
certificate = $P/fleet.pem
private_key = $P/fleet.key
default_md = sha256
policy = any
[any]
commonName = supplied
EOF
key_csr old "/CN=fleet-dev-old"
openssl ca -batch -config "$P/ca.cnf" -in "$P/old.csr" -out "$P/old.pem" -notext \
	-startdate 20200101000000Z -enddate 20210101000000Z -extfile "$P/client.ext" 2>"$WORK/ca.log" ||
	{ cat "$WORK/ca.log"; fail "openssl ca"; }
status=$(post old /director/ecus "$(ecus_body old-ecu)")
expect 403 certificate_expired "an expired device certificate"
grep -q "expired on 2021-01-01" "$WORK/reply" || fail "the expiry date is not given"
"$S" devices "$F" --json | jq -e 'all(.device_id != "fleet-dev-old")' >/dev/null || fail "an expired certificate made a device"
pass "expired device certificate: 403 $(jq -r .description "$WORK/reply")"

# A CA added while serve runs is trusted after a restart.
"$S" add-fleet-ca "$F" "$P/other.pem" >/dev/null || fail "adding a second fleet CA"
stop_server
mv "$F/server.log" "$F/server.log.1" # start_server waits for a "listening on" line in a fresh log
start_server "$F"
status=$(post stranger /director/ecus "$(ecus_body stranger-ecu)")
[ "$status" = 200 ] || { cat "$WORK/reply" >&2; fail "the second fleet CA is not trusted after a restart: $status"; }
# ... but a device ID belongs to the fleet CA that first used it.
device_cert impostor fleet-dev-1 other
status=$(post impostor /director/ecus "$(ecus_body impostor-ecu)")
expect 403 device_id_conflict "fleet-dev-1 from another fleet CA"
"$S" devices "$F" --json | jq -e '[.[] | select(.provisioning == "implicit")] | length == 2' >/dev/null ||
	fail "expected two implicit devices"
"$S" devices "$F" --json | jq -e '.[] | select(.device_id == "fleet-dev-9") | .fleet_ca == "Some-Other-CA"' >/dev/null ||
	fail "fleet-dev-9 is not recorded against the second fleet CA (named from its CN)"
pass "a new fleet CA is trusted after a restart; a CN of another fleet CA's device is refused"
