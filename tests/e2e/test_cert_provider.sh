#!/usr/bin/env bash
# otad-cert-provider: device credentials from a fleet CA (made with openssl, as an operator
# would) and from a running ota-server (-c credentials.zip); file names from -d and -g;
# copying with -t through a fake ssh/scp that records its argv; every error's exit code
# and message. CP_WRAPPER (e.g. "valgrind -q --error-exitcode=99 --leak-check=full")
# runs the tool under a wrapper.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
setup_test
CP=()
if [ -n "${CP_WRAPPER:-}" ]; then
	read -r -a CP <<<"$CP_WRAPPER"
	CP[0]=$(command -v "${CP[0]}") # found before a test empties PATH
fi
CP+=("$OTAD_BIN/otad-cert-provider")
export TMPDIR=$WORK/tmp # the tool stages -t copies here
mkdir -p "$TMPDIR"

new_fleet "$WORK/fleet"
FLEET=$WORK/fleet
start_server "$FLEET"

# The fleet CAs, the openssl way.
P=$WORK/pki
mkdir -p "$P"
cat >"$P/ext.cnf" <<'EOF'
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[leaf]
basicConstraints = CA:FALSE
EOF
(
	cd "$P"
	openssl req -x509 -config ext.cnf -extensions ca -nodes -days 3650 -newkey ec \
		-pkeyopt ec_paramgen_curve:P-256 -keyout fleetca.key -out fleetca.pem \
		-subj '/O=Acme/CN=Acme Fleet Root' 2>/dev/null
	openssl req -x509 -config ext.cnf -extensions ca -nodes -days 3650 -newkey rsa:2048 \
		-keyout rsaca.key -out rsaca.pem -subj '/CN=Acme RSA Root' 2>/dev/null
	openssl req -new -config ext.cnf -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		-keyout leaf.key -out leaf.csr -subj '/CN=not-a-ca' 2>/dev/null
	openssl x509 -req -in leaf.csr -CA fleetca.pem -CAkey fleetca.key -CAcreateserial \
		-days 30 -extfile ext.cnf -extensions leaf -out leaf.pem 2>/dev/null
)

# cp_run NAME ARGS...: runs the tool, output in $WORK/NAME.out/.err, status in RC.
cp_run() {
	local name=$1
	shift
	RC=0
	"${CP[@]}" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || RC=$?
	if [ "$RC" = 99 ]; then
		cat "$WORK/$name.err" >&2
		fail "$name: the wrapper found errors"
	fi
}

# expect_ok NAME ARGS...
expect_ok() {
	local name=$1
	cp_run "$@"
	[ "$RC" = 0 ] || {
		cat "$WORK/$name.out" "$WORK/$name.err" >&2
		fail "$name: exit $RC"
	}
}

# expect_error NAME CODE PATTERN ARGS...: exit CODE, PATTERN on stderr, no key written.
expect_error() {
	local name=$1 code=$2 pattern=$3
	shift 3
	cp_run "$name" "$@"
	[ "$RC" = "$code" ] || {
		cat "$WORK/$name.out" "$WORK/$name.err" >&2
		fail "$name: exit $RC, expected $code"
	}
	grep -q -- "$pattern" "$WORK/$name.err" || {
		cat "$WORK/$name.err" >&2
		fail "$name: no message matching '$pattern'"
	}
	[ -z "$(find "$WORK/err-out" -type f 2>/dev/null)" ] || fail "$name: files were written"
	pass "$name: exit $code: $(grep -m1 error: "$WORK/$name.err" | cut -c1-150)"
}

mode_of() { stat -c %a "$1"; }
cn_of() { openssl x509 -in "$1" -noout -subject -nameopt multiline | sed -n 's/^ *commonName *= //p'; }
key_matches() {
	[ "$(openssl pkey -in "$1" -pubout)" = "$(openssl x509 -in "$2" -noout -pubkey)" ]
}

# --- fleet CA: every file, names and modes -----------------------------------------------
OUT=$WORK/out1
expect_ok fleet --fleet-ca "$P/fleetca.pem" --fleet-ca-key "$P/fleetca.key" -l "$OUT" \
	-d /data/import -r --server-ca "$FLEET/server_ca.pem" -u --url https://gw.example:8443 \
	--certificate-cn e2e-dev-1 --days 30 --certificate-c de --certificate-st Berlin \
	--certificate-o Acme
B=$OUT/data/import
[ "$(mode_of "$B/pkey.pem")" = 600 ] || fail "pkey.pem mode $(mode_of "$B/pkey.pem")"
for f in client.pem root.crt gateway.url; do
	[ "$(mode_of "$B/$f")" = 644 ] || fail "$f mode $(mode_of "$B/$f")"
done
[ "$(mode_of "$B")" = 755 ] || fail "base directory mode $(mode_of "$B")"
[ "$(ls "$B" | wc -l)" = 4 ] || fail "unexpected files: $(ls "$B")"
openssl verify -CAfile "$P/fleetca.pem" "$B/client.pem" >/dev/null || fail "openssl verify"
openssl verify -x509_strict -purpose sslclient -CAfile "$P/fleetca.pem" "$B/client.pem" >/dev/null ||
	fail "strict verify as a TLS client"
[ "$(cn_of "$B/client.pem")" = e2e-dev-1 ] || fail "CN is $(cn_of "$B/client.pem")"
subject=$(openssl x509 -in "$B/client.pem" -noout -subject -nameopt RFC2253)
[ "$subject" = "subject=CN=e2e-dev-1,O=Acme,ST=Berlin,C=DE" ] || fail "subject: $subject"
key_matches "$B/pkey.pem" "$B/client.pem" || fail "key does not match the certificate"
grep -q "BEGIN PRIVATE KEY" "$B/pkey.pem" || fail "key is not PKCS#8"
openssl pkey -in "$B/pkey.pem" -noout -text | grep -q "NIST CURVE: P-256" || fail "not an EC P-256 key"
cmp -s "$B/root.crt" "$FLEET/server_ca.pem" || fail "root.crt is not --server-ca"
[ "$(cat "$B/gateway.url")" = https://gw.example:8443 ] || fail "gateway.url: $(cat "$B/gateway.url")"
end=$(date -d "$(openssl x509 -in "$B/client.pem" -noout -enddate | cut -d= -f2)" +%s)
want=$(($(date +%s) + 30 * 86400))
[ $((end - want)) -lt 300 ] && [ $((want - end)) -lt 300 ] || fail "validity is not 30 days"
grep -q "Device ID: e2e-dev-1" "$WORK/fleet.out" || fail "no device ID printed"
pass "fleet CA: pkey.pem 0600, client.pem/root.crt/gateway.url 0644, verifies, CN and subject right"

# RSA CA, RSA device key, generated readable CN, server CA and URL from the zip.
OUT=$WORK/out2
expect_ok fleet-rsa --fleet-ca "$P/rsaca.pem" --fleet-ca-key "$P/rsaca.key" -l "$OUT" \
	--rsa-bits 2048 -c "$FLEET/credentials.zip" -r -u
B=$OUT/var/sota/import
openssl verify -CAfile "$P/rsaca.pem" "$B/client.pem" >/dev/null || fail "RSA: openssl verify"
openssl pkey -in "$B/pkey.pem" -noout -text | grep -q "Private-Key: (2048 bit" || fail "not RSA 2048"
key_matches "$B/pkey.pem" "$B/client.pem" || fail "RSA: key does not match"
cn=$(cn_of "$B/client.pem")
echo "$cn" | grep -qE '^[a-z]+-[a-z]+-[0-9]{6}$' || fail "generated CN '$cn' is not a readable name"
cmp -s "$B/root.crt" "$FLEET/server_ca.pem" || fail "root.crt is not the zip's server_ca.pem"
[ "$(cat "$B/gateway.url")" = "https://127.0.0.1:$PORT" ] || fail "gateway.url is not the zip's"
grep -q "server_ca.pem in the zip" "$WORK/fleet-rsa.out" || fail "source of the server CA not said"
pass "fleet CA (RSA): RSA 2048 device key, generated CN $cn, root.crt and gateway.url from the zip"

# Without -l and -t: straight into the base path.
expect_ok direct --fleet-ca "$P/fleetca.pem" --fleet-ca-key "$P/fleetca.key" -d "$WORK/direct/import"
[ -f "$WORK/direct/import/client.pem" ] && [ "$(mode_of "$WORK/direct/import/pkey.pem")" = 600 ] ||
	fail "direct: files not in the base path"
pass "no -l/-t: written into the base path itself"

# --- -g: file names from a sota.toml ----------------------------------------------------
cat >"$WORK/sota.toml" <<'EOF'
[import]
base_path = "/opt/creds"
tls_pkey_path = "keys/device.key"
tls_clientcert_path = "/etc/device/cert.pem"
tls_cacert_path = "ca.pem"
[tls]
server_url_path = "server.url"
EOF
OUT=$WORK/out3
expect_ok config --fleet-ca "$P/fleetca.pem" --fleet-ca-key "$P/fleetca.key" -l "$OUT" \
	-g "$WORK/sota.toml" -r --server-ca "$FLEET/server_ca.pem" -u --url https://gw.example
for f in opt/creds/keys/device.key etc/device/cert.pem opt/creds/ca.pem opt/creds/server.url; do
	[ -f "$OUT/$f" ] || fail "-g: $f missing ($(cd "$OUT" && find . -type f))"
done
[ "$(mode_of "$OUT/opt/creds/keys/device.key")" = 600 ] || fail "-g: key mode"
key_matches "$OUT/opt/creds/keys/device.key" "$OUT/etc/device/cert.pem" || fail "-g: key/cert"
# -d overrides the configuration's base path; absolute names stay.
OUT=$WORK/out4
expect_ok config-d --fleet-ca "$P/fleetca.pem" --fleet-ca-key "$P/fleetca.key" -l "$OUT" \
	-g "$WORK/sota.toml" -d /srv/import
[ -f "$OUT/srv/import/keys/device.key" ] && [ -f "$OUT/etc/device/cert.pem" ] || fail "-g with -d"
pass "-g: base path and names from sota.toml (relative under the base, absolute as is); -d overrides"

# --- -c: registration with the running server -------------------------------------------
OUT=$WORK/out5
expect_ok register -c "$FLEET/credentials.zip" -l "$OUT" -r -u --certificate-cn e2e-reg-1 --days 10
B=$OUT/var/sota/import
[ "$(mode_of "$B/pkey.pem")" = 600 ] || fail "-c: key mode"
key_matches "$B/pkey.pem" "$B/client.pem" || fail "-c: key does not match the certificate"
openssl verify -CAfile "$B/root.crt" "$FLEET/server.pem" >/dev/null || fail "-c: root.crt does not verify the server"
openssl verify -CAfile "$FLEET/device_ca.pem" "$B/client.pem" >/dev/null || fail "-c: client.pem not from the device CA"
[ "$(grep -c 'BEGIN CERTIFICATE' "$B/client.pem")" = 2 ] || fail "-c: client.pem is not certificate + CA chain"
[ "$(cat "$B/gateway.url")" = "https://127.0.0.1:$PORT" ] || fail "-c: gateway.url"
"$OTAD_BIN/server/ota-server" devices "$FLEET" --json | grep -q '"e2e-reg-1"' || fail "-c: the server does not know e2e-reg-1"
uuid=$(cn_of "$B/client.pem")
grep -q "$uuid" "$WORK/register.out" || fail "-c: the certificate's CN is not printed"
# The credentials work: the server accepts them on a device call (404 = authenticated).
if command -v curl >/dev/null; then
	status=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$B/root.crt" --cert "$B/client.pem" \
		--key "$B/pkey.pem" "https://127.0.0.1:$PORT/nothing-here" || true)
	[ "$status" = 404 ] || fail "-c: the issued credentials are not accepted (HTTP $status)"
else
	echo "note: no curl; the issued credentials are not tried against the server"
fi
pass "-c: registered e2e-reg-1 (certificate CN $uuid), key matches, root.crt verifies server.pem, credentials accepted"

expect_error id-taken 4 "already has a device with ID 'e2e-reg-1'.*--certificate-cn" \
	-c "$FLEET/credentials.zip" -l "$WORK/err-out" --certificate-cn e2e-reg-1

# --- -t: copying with (fake) ssh and scp ------------------------------------------------
FAKE=$WORK/fakebin
REMOTE=$WORK/remote # the device's file system
mkdir -p "$FAKE" "$REMOTE"
cat >"$FAKE/ssh" <<'EOF'
#!/usr/bin/env bash
# fake ssh: records argv; runs "mkdir -p DIR" under $FAKE_REMOTE.
printf 'ssh' >>"$FAKE_LOG"; printf ' [%s]' "$@" >>"$FAKE_LOG"; echo >>"$FAKE_LOG"
[ -z "${FAKE_SSH_FAIL:-}" ] || { echo "ssh: connect to host: Connection refused" >&2; exit 255; }
while [ $# -gt 0 ]; do case $1 in -p | -o) shift 2 ;; -*) exit 98 ;; *) break ;; esac; done
shift # host
[ "$1 $2" = "mkdir -p" ] && [ $# = 3 ] || exit 97
mkdir -p "$FAKE_REMOTE/$3"
EOF
cat >"$FAKE/scp" <<'EOF'
#!/usr/bin/env bash
# fake scp: records argv; copies SOURCES to HOST:DIR/ under $FAKE_REMOTE (-p keeps modes).
printf 'scp' >>"$FAKE_LOG"; printf ' [%s]' "$@" >>"$FAKE_LOG"; echo >>"$FAKE_LOG"
[ -z "${FAKE_SCP_FAIL:-}" ] || { echo "scp: lost connection" >&2; exit 1; }
keep=
files=()
while [ $# -gt 0 ]; do
	case $1 in -P | -o) shift 2 ;; -p) keep=-p; shift ;; -*) exit 98 ;; *) files+=("$1"); shift ;; esac
done
dest=${files[-1]}
unset 'files[-1]'
dir=$FAKE_REMOTE/${dest#*:}
[ -d "$dir" ] || { echo "scp: $dir: No such file or directory" >&2; exit 1; }
cp $keep "${files[@]}" "$dir"
EOF
chmod +x "$FAKE/ssh" "$FAKE/scp"
export FAKE_LOG=$WORK/fake.log FAKE_REMOTE=$REMOTE
OLDPATH=$PATH
export PATH=$FAKE:$PATH

expect_ok target --fleet-ca "$P/fleetca.pem" --fleet-ca-key "$P/fleetca.key" \
	-t root@device -p 2222 -s -r --server-ca "$FLEET/server_ca.pem" -u --url https://gw.example \
	--certificate-cn e2e-ssh-1
B=$REMOTE/var/sota/import
[ "$(mode_of "$B/pkey.pem")" = 600 ] || fail "-t: key mode $(mode_of "$B/pkey.pem") on the device"
[ "$(mode_of "$B/client.pem")" = 644 ] || fail "-t: cert mode on the device"
[ "$(cn_of "$B/client.pem")" = e2e-ssh-1 ] || fail "-t: CN on the device"
key_matches "$B/pkey.pem" "$B/client.pem" || fail "-t: key/cert on the device"
cmp -s "$B/root.crt" "$FLEET/server_ca.pem" && [ "$(cat "$B/gateway.url")" = https://gw.example ] ||
	fail "-t: root.crt/gateway.url on the device"
expected_ssh="ssh [-p] [2222] [-o] [StrictHostKeyChecking=no] [root@device] [mkdir] [-p] [/var/sota/import]"
[ "$(sed -n 1p "$FAKE_LOG")" = "$expected_ssh" ] || fail "-t: ssh argv: $(sed -n 1p "$FAKE_LOG")"
scp_line=$(sed -n 2p "$FAKE_LOG")
echo "$scp_line" | grep -qE '^scp \[-p\] \[-P\] \[2222\] \[-o\] \[StrictHostKeyChecking=no\] (\[[^]]*/(pkey.pem|client.pem|root.crt|gateway.url)\] ){4}\[root@device:/var/sota/import/\]$' ||
	fail "-t: scp argv: $scp_line"
[ "$(wc -l <"$FAKE_LOG")" = 2 ] || fail "-t: expected one ssh and one scp call: $(cat "$FAKE_LOG")"
[ -z "$(ls -A "$TMPDIR")" ] || fail "-t: staging left behind: $(ls -A "$TMPDIR")"
pass "-t: ssh mkdir -p + scp -p with -p/-s, modes kept on the device, staging removed"

# -t and -l together; files in two remote directories (an absolute name from -g).
: >"$FAKE_LOG"
rm -rf "$REMOTE"/*
expect_ok target-local --fleet-ca "$P/fleetca.pem" --fleet-ca-key "$P/fleetca.key" \
	-t device -g "$WORK/sota.toml" -l "$WORK/out6"
[ -f "$REMOTE/opt/creds/keys/device.key" ] && [ -f "$REMOTE/etc/device/cert.pem" ] || fail "-t -g: remote files"
[ -f "$WORK/out6/opt/creds/keys/device.key" ] || fail "-t -l: local files"
cmp -s "$REMOTE/etc/device/cert.pem" "$WORK/out6/etc/device/cert.pem" || fail "-t -l: not the same certificate"
[ "$(grep -c '^ssh \[device\] \[mkdir\]' "$FAKE_LOG")" = 2 ] || fail "-t -g: one mkdir per directory: $(cat "$FAKE_LOG")"
pass "-t with -l and -g: both written, one ssh/scp pair per remote directory"

FAKE_SSH_FAIL=1 expect_error ssh-fails 1 "'ssh' failed with exit status 255" \
	--fleet-ca "$P/fleetca.pem" --fleet-ca-key "$P/fleetca.key" -t device
[ -z "$(ls -A "$TMPDIR")" ] || fail "ssh failure: staging left behind"

# A registration cannot be repeated: if the copy fails, what the server issued is kept.
FAKE_SCP_FAIL=1 cp_run scp-fails-c -c "$FLEET/credentials.zip" -t device --certificate-cn e2e-ssh-2
[ "$RC" = 1 ] || fail "-c -t scp failure: exit $RC"
kept=$(ls -d "$TMPDIR"/otad-cert-provider.* 2>/dev/null | head -1)
[ -n "$kept" ] && grep -q "kept in $kept" "$WORK/scp-fails-c.err" || fail "-c -t: issued credentials not kept"
[ "$(find "$kept" -name pkey.pem -perm 600 | wc -l)" = 1 ] || fail "-c -t: kept key missing or not 0600"
rm -rf "$kept"
pass "-c -t with a failing scp: exit 1, the issued credentials kept in $TMPDIR (0700)"

export PATH=$OLDPATH
# No ssh on PATH at all.
SAVED=("${CP[@]}")
CP=(env PATH=/nonexistent "${SAVED[@]}")
expect_error no-ssh 1 "cannot run 'ssh': No such file" \
	--fleet-ca "$P/fleetca.pem" --fleet-ca-key "$P/fleetca.key" -t device
CP=("${SAVED[@]}")

# --- errors -----------------------------------------------------------------------------
E=(-l "$WORK/err-out")
openssl genpkey -algorithm ec -pkeyopt ec_paramgen_curve:P-256 -out "$P/other.key" 2>/dev/null
expect_error mismatched-key 3 "does not belong to the fleet CA certificate" \
	--fleet-ca "$P/fleetca.pem" --fleet-ca-key "$P/other.key" "${E[@]}"
expect_error rsa-key-ec-ca 3 "does not belong" --fleet-ca "$P/fleetca.pem" --fleet-ca-key "$P/rsaca.key" "${E[@]}"
expect_error not-a-ca 3 "not a CA certificate" --fleet-ca "$P/leaf.pem" --fleet-ca-key "$P/leaf.key" "${E[@]}"
expect_error unreadable-ca 3 "cannot read the fleet CA certificate $P/nope.pem: No such file" \
	--fleet-ca "$P/nope.pem" --fleet-ca-key "$P/fleetca.key" "${E[@]}"
expect_error key-as-cert 3 "no PEM certificate" --fleet-ca "$P/fleetca.key" --fleet-ca-key "$P/fleetca.key" "${E[@]}"
openssl pkey -in "$P/fleetca.key" -aes256 -passout pass:x -out "$P/enc.key"
expect_error encrypted-key 3 "encrypted" --fleet-ca "$P/fleetca.pem" --fleet-ca-key "$P/enc.key" "${E[@]}"
expect_error pair-ca-only 2 "go together" --fleet-ca "$P/fleetca.pem" "${E[@]}"
expect_error pair-key-only 2 "go together" --fleet-ca-key "$P/fleetca.key" "${E[@]}"
expect_error no-source 2 "nothing to make credentials from" "${E[@]}"
expect_error root-ca-unknown 2 "needs to know the server's CA" \
	--fleet-ca "$P/fleetca.pem" --fleet-ca-key "$P/fleetca.key" -r "${E[@]}"
expect_error url-unknown 2 "needs to know the server URL" \
	--fleet-ca "$P/fleetca.pem" --fleet-ca-key "$P/fleetca.key" -u "${E[@]}"
expect_error unknown-option 2 "unknown option '--frobnicate'" --frobnicate "${E[@]}"
expect_error missing-value 2 "option '--days' needs a value" --fleet-ca "$P/fleetca.pem" --days
expect_error bad-days 2 "--days must be" --fleet-ca "$P/fleetca.pem" --fleet-ca-key "$P/fleetca.key" --days 0 "${E[@]}"
expect_error bad-bits 2 "--rsa-bits must be 2048, 3072 or 4096" --fleet-ca "$P/fleetca.pem" \
	--fleet-ca-key "$P/fleetca.key" --rsa-bits 1024 "${E[@]}"
expect_error bad-cn 2 "not a usable device ID" --fleet-ca "$P/fleetca.pem" --fleet-ca-key "$P/fleetca.key" \
	--certificate-cn "a b" "${E[@]}"
expect_error bad-country 2 "two-letter country code" --fleet-ca "$P/fleetca.pem" --fleet-ca-key "$P/fleetca.key" \
	--certificate-c DEU "${E[@]}"
expect_error fleet-only-option 2 "works only with --fleet-ca" -c "$FLEET/credentials.zip" --rsa-bits 2048 "${E[@]}"
expect_error port-without-target 2 "needs -t/--target" --fleet-ca "$P/fleetca.pem" \
	--fleet-ca-key "$P/fleetca.key" -p 22 "${E[@]}"
expect_error bad-target 2 "must be \[USER@\]HOST" --fleet-ca "$P/fleetca.pem" --fleet-ca-key "$P/fleetca.key" -t -oProxyCommand=x
expect_error shell-chars-in-path 2 "characters ssh would pass to a shell" --fleet-ca "$P/fleetca.pem" \
	--fleet-ca-key "$P/fleetca.key" -t device -d '/tmp/$(reboot)'
expect_error bad-server-ca 3 "holds no PEM certificate" --fleet-ca "$P/fleetca.pem" --fleet-ca-key "$P/fleetca.key" \
	--server-ca "$P/fleetca.key" "${E[@]}"
printf '[import\nbase_path = 1\n' >"$WORK/broken.toml"
expect_error bad-config 3 "broken.toml" --fleet-ca "$P/fleetca.pem" --fleet-ca-key "$P/fleetca.key" \
	-g "$WORK/broken.toml" "${E[@]}"

head -c 2000 /dev/urandom >"$WORK/random.zip"
expect_error wrong-zip 3 "not a usable credentials.zip" -c "$WORK/random.zip" "${E[@]}"
mkdir -p "$WORK/nop12" && (cd "$WORK/nop12" && unzip -q "$FLEET/credentials.zip" && rm autoprov_credentials.p12 && zip -q ../nop12.zip ./*)
expect_error zip-without-p12 3 "no autoprov_credentials.p12 entry" -c "$WORK/nop12.zip" "${E[@]}"
expect_error missing-zip 3 "cannot read the credentials" -c "$WORK/none.zip" "${E[@]}"
expect_error wrong-password 3 "wrong password.*--p12-password" -c "$FLEET/credentials.zip" \
	--p12-password not-it "${E[@]}"

# A zip whose p12 comes from another fleet: the server is not trusted, nothing is sent.
"$OTAD_BIN/server/ota-server" init "$WORK/other" --port "$PORT" >/dev/null
mkdir -p "$WORK/mixed" && (cd "$WORK/mixed" && unzip -q "$FLEET/credentials.zip" &&
	unzip -q -o "$WORK/other/credentials.zip" autoprov_credentials.p12 && rm -f server_ca.pem && zip -q ../mixed.zip ./*)
expect_error untrusted-server 1 "is not trusted" -c "$WORK/mixed.zip" "${E[@]}"

stop_server
expect_error server-down 1 "could not reach the server" -c "$FLEET/credentials.zip" "${E[@]}"

pass "otad-cert-provider: all cases"
