#!/usr/bin/env bash
# make_fixtures.sh - makes the TLS and key fixtures of tests/unit/test_tls.c and test_keys.c.
#
# Everything is made with the openssl CLI (and python3 for the KeyIds), so the unit tests
# compare otad's wolfSSL code with an independent implementation. The outputs are committed;
# re-run this script only to change them (the tests read expected values from facts.txt and
# keyids.txt, which this script writes, so a re-run keeps the tests consistent).
#
#   ca.pem                      test CA (EC P-256), self-signed
#   client-ec.{key,pem}         EC P-256 client key (PKCS#8 PEM) and certificate, CN ec-device-0001
#   client-rsa.{key,pem}        RSA 2048 client key (PKCS#8 PEM) and certificate, CN rsa-device-0002
#   expired.pem                 certificate valid 2020-01-01 .. 2021-01-01 (UTC)
#   ec-rc2.p12                  EC client + CA, RC2-40 cert bag, 3DES key, SHA-1 MAC (-legacy)
#   ec-3des.p12                 EC client + CA, 3DES cert and key bags
#   ec-aes.p12                  EC client + CA, openssl 3 default (AES-256-CBC, PBKDF2, SHA-256 MAC)
#   rsa-rc2-s3cret.p12          RSA client + CA, -legacy, password "s3cret"
#   rsa-aes-s3cret.p12          RSA client + CA, default algorithms, password "s3cret"
#   client-ed25519.pem          ED25519 client certificate, CN ed25519-device-0003
#   ed25519-aes.p12             its key and certificate + CA, default algorithms
#   ec-ca-first-s3cret.p12      EC key, then the CA certificate before the client's (python)
#   certonly.p12                certificates only (-nokeys)
#   keyonly.p12                 private key only (-nocerts)
#   truncated.p12               first half of ec-aes.p12
#   not-p12.der                 a DER certificate: valid ASN.1, not PKCS#12
#   facts.txt                   CN, subject, issuer and validity (epoch seconds) per openssl
#   uptane-rsa.{key,pub}        RSA 2048 Uptane key: PKCS#8 PEM and SubjectPublicKeyInfo PEM
#   uptane-rsa-trad.key         the same key in traditional "RSA PRIVATE KEY" PEM
#   uptane-ed25519.key          ED25519 key with a fixed seed (PKCS#8 PEM)
#   uptane-ed25519.pubhex       its public key, 64 upper-case hex digits
#   keyids.txt                  KeyIds per python3 hashlib/json
set -euo pipefail
cd "$(dirname "$0")"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pw_empty=pass:
pw_secret=pass:s3cret

# A minimal CA so certificates get fixed validity dates (openssl 3.0's x509 cannot set them).
mkdir -p "$tmp/ca"
: > "$tmp/ca/index.txt"
echo 1000 > "$tmp/ca/serial"
cat > "$tmp/ca.cnf" <<EOF
[ca]
default_ca = testca
[testca]
dir = $tmp/ca
database = \$dir/index.txt
serial = \$dir/serial
new_certs_dir = \$dir
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
[anything]
commonName = supplied
organizationName = optional
[client_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
EOF

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/ca.key"
openssl req -x509 -new -key "$tmp/ca.key" -sha256 -days 36500 -subj "/O=otad test/CN=otad test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out ca.pem

# issue NAME KEY CN START END: makes NAME.pem for KEY, signed by the CA.
issue() {
  openssl req -new -key "$2" -subj "/O=otad test fleet/CN=$3" -out "$tmp/$1.csr"
  openssl ca -batch -config "$tmp/ca.cnf" -cert ca.pem -keyfile "$tmp/ca.key" -extensions client_ext \
    -startdate "$4" -enddate "$5" -notext -in "$tmp/$1.csr" -out "$tmp/$1.out" 2>/dev/null
  openssl x509 -in "$tmp/$1.out" -out "$1.pem"
}

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out client-ec.key
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out client-rsa.key
issue client-ec client-ec.key ec-device-0001 20240101000000Z 20991231235959Z
issue client-rsa client-rsa.key rsa-device-0002 20240615120000Z 20340615120000Z
issue expired client-ec.key expired-device 20200101000000Z 20210101000000Z
openssl genpkey -algorithm ED25519 -out "$tmp/client-ed25519.key"
issue client-ed25519 "$tmp/client-ed25519.key" ed25519-device-0003 20240101000000Z 20340101000000Z

p12() { openssl pkcs12 -export -name client "$@"; }
p12 -legacy -iter 1024 -macalg sha1 -inkey client-ec.key -in client-ec.pem -certfile ca.pem \
  -passout "$pw_empty" -out ec-rc2.p12
p12 -certpbe PBE-SHA1-3DES -keypbe PBE-SHA1-3DES -inkey client-ec.key -in client-ec.pem \
  -certfile ca.pem -passout "$pw_empty" -out ec-3des.p12
p12 -inkey client-ec.key -in client-ec.pem -certfile ca.pem -passout "$pw_empty" -out ec-aes.p12
p12 -legacy -iter 1024 -macalg sha1 -inkey client-rsa.key -in client-rsa.pem -certfile ca.pem \
  -passout "$pw_secret" -out rsa-rc2-s3cret.p12
p12 -inkey client-rsa.key -in client-rsa.pem -certfile ca.pem -passout "$pw_secret" -out rsa-aes-s3cret.p12
p12 -inkey "$tmp/client-ed25519.key" -in client-ed25519.pem -certfile ca.pem -passout "$pw_empty" \
  -out ed25519-aes.p12
# The CA certificate before the device's, both on P-256 (openssl's CLI always puts the
# key's certificate first, so python's cryptography package, which wraps OpenSSL's
# PKCS12_create, writes this one).
/usr/bin/python3 - <<'PY'
from cryptography import x509
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, load_pem_private_key, pkcs12
key = load_pem_private_key(open("client-ec.key", "rb").read(), None)
certs = [x509.load_pem_x509_certificate(open(n, "rb").read()) for n in ("ca.pem", "client-ec.pem")]
open("ec-ca-first-s3cret.p12", "wb").write(
    pkcs12.serialize_key_and_certificates(b"client", key, None, certs, BestAvailableEncryption(b"s3cret")))
PY
p12 -nokeys -in client-ec.pem -certfile ca.pem -passout "$pw_empty" -out certonly.p12
p12 -nocerts -inkey client-ec.key -passout "$pw_empty" -out keyonly.p12 2>/dev/null
head -c $(($(stat -c %s ec-aes.p12) / 2)) ec-aes.p12 > truncated.p12
openssl x509 -in ca.pem -outform DER -out not-p12.der

# Check that openssl itself sees what we meant to make.
openssl pkcs12 -in ec-ca-first-s3cret.p12 -passin "$pw_secret" -nokeys 2>/dev/null | grep '^subject' | head -n1 |
  grep -q "CN = otad test CA"
openssl pkcs12 -in ec-rc2.p12 -passin "$pw_empty" -info -noout -legacy 2>&1 | grep -q "pbeWithSHA1And40BitRC2-CBC"
openssl pkcs12 -in ec-3des.p12 -passin "$pw_empty" -info -noout -legacy 2>&1 | grep -q "pbeWithSHA1And3-KeyTripleDES-CBC"
openssl pkcs12 -in ec-aes.p12 -passin "$pw_empty" -info -noout -legacy 2>&1 | grep -q "AES-256-CBC"
openssl pkcs12 -in rsa-rc2-s3cret.p12 -passin "$pw_secret" -info -noout -legacy 2>&1 | grep -q "40BitRC2"

# facts.txt: what openssl says about each certificate (dates as epoch seconds, UTC).
epoch() { date -u -d "$(openssl x509 -in "$1" -noout "-$2" | cut -d= -f2)" +%s; }
{
  for c in client-ec client-rsa client-ed25519 expired ca; do
    echo "$c.cn=$(openssl x509 -in $c.pem -noout -subject -nameopt multiline | sed -n 's/^ *commonName *= //p')"
    echo "$c.subject=$(openssl x509 -in $c.pem -noout -subject -nameopt sep_comma_plus_space,utf8 | cut -d= -f2-)"
    echo "$c.issuer=$(openssl x509 -in $c.pem -noout -issuer -nameopt sep_comma_plus_space,utf8 | cut -d= -f2-)"
    echo "$c.not_before=$(epoch $c.pem startdate)"
    echo "$c.not_after=$(epoch $c.pem enddate)"
  done
} > facts.txt

# Uptane keys.
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out uptane-rsa.key
openssl pkey -in uptane-rsa.key -pubout -out uptane-rsa.pub
openssl pkey -in uptane-rsa.key -traditional -out uptane-rsa-trad.key
seed=9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60 # RFC 8032 test 1
echo "302e020100300506032b657004220420$seed" | xxd -r -p |
  openssl pkey -inform DER -out uptane-ed25519.key
openssl pkey -in uptane-ed25519.key -pubout -outform DER | tail -c 32 | xxd -p -c 64 |
  tr a-f A-F > uptane-ed25519.pubhex

python3 - > keyids.txt <<'EOF'
import hashlib, json
def keyid(text):
    return hashlib.sha256(json.dumps(text.rstrip("\n")).encode()).hexdigest()
print("uptane-rsa=" + keyid(open("uptane-rsa.pub").read()))
print("uptane-ed25519=" + keyid(open("uptane-ed25519.pubhex").read()))
EOF
cat facts.txt keyids.txt
