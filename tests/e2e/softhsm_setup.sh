#!/usr/bin/env bash
# softhsm_setup.sh - a throw-away SoftHSM2 token for the HSM tests (and for trying otad's
# [p11] settings by hand). Everything lives under one directory: its own softhsm2.conf with
# its own token directory, pointed at by SOFTHSM2_CONF; /var/lib/softhsm is never touched.
#
# Sourced (by tests/e2e/test_hsm.sh), it defines:
#   hsm_module                     prints the SoftHSM2 PKCS#11 module path (or fails)
#   hsm_init DIR LABEL PIN         a new token; exports SOFTHSM2_CONF=DIR/softhsm2.conf and
#                                  HSM_MODULE, HSM_PIN
#   hsm_keygen ID TYPE [LABEL]     a key pair generated inside the token (TYPE as pkcs11-tool
#                                  --key-type takes it: EC:prime256v1, rsa:2048); the private
#                                  key is created sensitive and not extractable
#   hsm_pubkey ID OUT.pem          the public key of key pair ID, as PEM
#   hsm_put_cert ID CERT.pem       stores a certificate object with ID
#   hsm_sign_cert CA.pem CA.key PUB.pem CN OUT.pem
#                                  a device certificate (clientAuth) for a public key whose
#                                  private key is in the token: openssl x509 -force_pubkey
#                                  signs it without the private key ever being outside
# Run directly: softhsm_setup.sh DIR [LABEL] [PIN] makes a token with an EC P-256 key pair
# (ID 02) and prints the lines to export and the [p11] settings to use.

hsm_module() {
	local m
	for m in /usr/lib/softhsm/libsofthsm2.so \
		"/usr/lib/$(uname -m)-linux-gnu/softhsm/libsofthsm2.so" \
		/usr/lib64/pkcs11/libsofthsm2.so /usr/lib/pkcs11/libsofthsm2.so \
		/usr/local/lib/softhsm/libsofthsm2.so; do
		if [ -f "$m" ]; then
			echo "$m"
			return 0
		fi
	done
	echo "softhsm_setup: no SoftHSM2 module found (install Debian's softhsm2; scripts/deps.sh does)" >&2
	return 1
}

hsm_tool() {
	pkcs11-tool --module "$HSM_MODULE" --login --pin "$HSM_PIN" "$@"
}

hsm_init() {
	local dir=$1 label=$2 pin=$3
	command -v softhsm2-util >/dev/null || { echo "softhsm_setup: softhsm2-util missing (Debian softhsm2)" >&2; return 1; }
	command -v pkcs11-tool >/dev/null || { echo "softhsm_setup: pkcs11-tool missing (Debian opensc)" >&2; return 1; }
	HSM_MODULE=$(hsm_module) || return 1
	mkdir -p "$dir/tokens"
	cat >"$dir/softhsm2.conf" <<CONF
directories.tokendir = $dir/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
CONF
	export SOFTHSM2_CONF=$dir/softhsm2.conf HSM_MODULE HSM_PIN=$pin
	softhsm2-util --init-token --free --label "$label" --so-pin "so-$pin" --pin "$pin" >/dev/null
}

hsm_keygen() {
	local id=$1 type=$2 label=${3:-key-$1}
	hsm_tool --keypairgen --key-type "$type" --id "$id" --label "$label" --usage-sign \
		--sensitive >/dev/null 2>&1
}

hsm_pubkey() {
	local id=$1 out=$2
	hsm_tool --read-object --type pubkey --id "$id" -o "$out.der" >/dev/null 2>&1 &&
		openssl pkey -pubin -inform DER -in "$out.der" -out "$out" &&
		rm -f "$out.der"
}

hsm_put_cert() {
	local id=$1 cert=$2
	openssl x509 -in "$cert" -outform DER -out "$cert.der" &&
		hsm_tool --write-object "$cert.der" --type cert --id "$id" --label "cert-$id" >/dev/null 2>&1 &&
		rm -f "$cert.der"
}

hsm_sign_cert() {
	local ca=$1 cakey=$2 pub=$3 cn=$4 out=$5
	local tmp
	tmp=$(mktemp -d)
	# openssl x509 -req wants a request; a throw-away key signs it, and -force_pubkey puts
	# the token's public key into the certificate instead of the throw-away one.
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$cn" \
		-keyout "$tmp/k" -out "$tmp/req" 2>/dev/null &&
		printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' >"$tmp/ext" &&
		openssl x509 -req -in "$tmp/req" -force_pubkey "$pub" -CA "$ca" -CAkey "$cakey" \
			-set_serial "0x$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" -days 365 -sha256 \
			-extfile "$tmp/ext" -out "$out" 2>/dev/null
	local rc=$?
	rm -rf "$tmp"
	return $rc
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -euo pipefail
	[ $# -ge 1 ] || { echo "usage: $0 DIR [LABEL] [PIN]" >&2; exit 2; }
	dir=$(mkdir -p "$1" && cd "$1" && pwd)
	hsm_init "$dir" "${2:-otad}" "${3:-1234}"
	hsm_keygen 02 EC:prime256v1 tls-key
	hsm_pubkey 02 "$dir/tls-key.pub.pem"
	cat <<EOF
export SOFTHSM2_CONF=$SOFTHSM2_CONF
# sota.toml:
[tls]
pkey_source = "pkcs11"
[p11]
module = "$HSM_MODULE"
pass = "$HSM_PIN"
tls_pkey_id = "02"
# public key of the TLS key (for the certificate): $dir/tls-key.pub.pem
EOF
fi
