#!/usr/bin/env bash
# ota-server's TLS and connection handling, as load tests rely on it: session tickets (a
# device reconnecting resumes its session, and a resumed session still carries its client
# certificate), the server's choice of P-256 for the key exchange, every --event-loop serving
# requests, the request log complete when the server stops, and the cache of verified
# certificate chains honouring a certificate's expiry.
# Clients: openssl s_client and curl.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
setup_test
S="$OTAD_BIN/server/ota-server"
F="$WORK/fleet"
P="$WORK/pki"
mkdir -p "$P"
new_fleet "$F"

# s_client ARGS...: one HTTP/1.1 request with an invalid POST /devices body over
# openssl s_client; its output (handshake summary and reply) in $WORK/s_client.out.
s_client() {
	local req=$'POST /devices HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}'
	{ printf '%s' "$req"; sleep 1; } | timeout 20 openssl s_client -connect "127.0.0.1:$PORT" \
		-CAfile "$F/server_ca.pem" -servername localhost "$@" >"$WORK/s_client.out" 2>&1 || true
}

# ---- session tickets ----
start_server "$F" --quiet
s_client -cert "$F/provisioning.pem" -key "$F/provisioning.key" -sess_out "$WORK/session"
grep -q "^New, TLSv1.3" "$WORK/s_client.out" || { cat "$WORK/s_client.out"; fail "no TLS 1.3 handshake"; }
grep -q "X-Client-Identity: otad-provisioning" "$WORK/s_client.out" ||
	{ cat "$WORK/s_client.out"; fail "the full handshake's request was not identified"; }
[ -s "$WORK/session" ] || fail "the server sent no session ticket"
# the same session again, this time without presenting a certificate at all
s_client -sess_in "$WORK/session"
grep -q "^Reused, TLSv1.3" "$WORK/s_client.out" || { cat "$WORK/s_client.out"; fail "the session was not resumed"; }
grep -q "X-Client-Identity: otad-provisioning" "$WORK/s_client.out" ||
	{ cat "$WORK/s_client.out"; fail "a resumed session lost its client certificate"; }
grep -q '"code":"invalid_request"' "$WORK/s_client.out" ||
	{ cat "$WORK/s_client.out"; fail "a resumed session was not answered as the provisioning client"; }
pass "a session ticket resumes the session, which keeps its client certificate"

# a ticket from another server run (another ticket key) is refused: full handshake
stop_server
start_server "$F" --quiet
s_client -sess_in "$WORK/session"
grep -q "^New, TLSv1.3" "$WORK/s_client.out" || { cat "$WORK/s_client.out"; fail "a stale ticket was accepted"; }
grep -q '"code":"unauthorized"' "$WORK/s_client.out" ||
	{ cat "$WORK/s_client.out"; fail "a stale ticket carried an identity into the new server run"; }
pass "a ticket of an earlier server run is not honoured (401 without a certificate)"

# ---- key exchange: P-256 by the server's preference ----
s_client -groups P-521:P-256 -cert "$F/provisioning.pem" -key "$F/provisioning.key"
grep -Eq "Server Temp Key: ECDH, (prime256v1|P-256)" "$WORK/s_client.out" ||
	{ cat "$WORK/s_client.out"; fail "the server did not choose P-256 over the client's P-521"; }
pass "the server picks P-256 for the key exchange whatever the client lists first"
stop_server

# ---- the request log: written in batches by a thread, all of it by the time serve stops ----
start_server "$F" --quiet
before=$("$S" requests "$F" --json | jq length)
pids=()
for i in $(seq 1 40); do
	curl -sS -o /dev/null --cacert "$F/server_ca.pem" --cert "$F/provisioning.pem" \
		--key "$F/provisioning.key" -X POST "https://127.0.0.1:$PORT/devices" -d '{}' &
	pids+=($!)
done
wait "${pids[@]}" # not `wait`: the server is a background job too
stop_server
after=$("$S" requests "$F" --json | jq length)
[ "$((after - before))" = 40 ] || fail "the request log has $((after - before)) of 40 concurrent requests"
[ "$("$S" requests "$F" --json | jq '[.[] | select(.path == "/devices" and .status == 400)] | length')" -ge 40 ] ||
	fail "the logged requests are not the 40 refused registrations"
pass "40 concurrent requests are all in the request log once the server stops"

# ---- every event loop serves ----
for loop in poll epoll threads; do
	start_server "$F" --quiet --event-loop "$loop"
	status=$(curl -sS -o "$WORK/dev.p12" -w '%{http_code}' --cacert "$F/server_ca.pem" \
		--cert "$F/provisioning.pem" --key "$F/provisioning.key" -X POST \
		"https://127.0.0.1:$PORT/devices" -d "{\"deviceId\":\"dev-$loop\"}") || fail "$loop: curl"
	[ "$status" = 200 ] || fail "--event-loop $loop: POST /devices answered $status"
	openssl pkcs12 -in "$WORK/dev.p12" -passin pass: -nodes -clcerts -nokeys -out "$P/$loop.pem" 2>/dev/null
	openssl pkcs12 -in "$WORK/dev.p12" -passin pass: -nodes -nocerts -out "$P/$loop.key" 2>/dev/null
	# five requests on one keep-alive connection
	curl -sS --cacert "$F/server_ca.pem" --cert "$P/$loop.pem" --key "$P/$loop.key" \
		-o /dev/null -w '%{http_code} %{num_connects}\n' \
		"https://127.0.0.1:$PORT/director/root.json?[1-5]" >"$WORK/codes" || fail "$loop: curl keep-alive"
	[ "$(grep -c '^200 ' "$WORK/codes")" = 5 ] || { cat "$WORK/codes"; fail "--event-loop $loop: keep-alive requests failed"; }
	[ "$(awk '{s += $2} END {print s}' "$WORK/codes")" = 1 ] || { cat "$WORK/codes"; fail "--event-loop $loop: the connection was not kept"; }
	stop_server
done
if "$S" serve "$F" --event-loop kqueue 2>"$WORK/err"; then fail "--event-loop kqueue was accepted"; fi
grep -q "expected poll, epoll or threads" "$WORK/err" || { cat "$WORK/err"; fail "no clear message for a bad --event-loop"; }
pass "--event-loop poll, epoll and threads serve (a keep-alive connection too); others are refused"

# ---- verified chains are remembered only while the certificate is valid ----
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$P/fleet.key" \
	-out "$P/fleet.pem" -days 3650 -subj "/CN=Short Fleet CA" 2>/dev/null
"$S" add-fleet-ca "$F" "$P/fleet.pem" --name short >/dev/null
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
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' >"$P/client.ext"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$P/short.key" \
	-out "$P/short.csr" -subj "/CN=short-lived-1" 2>/dev/null
expiry=$(($(date +%s) + 12))
openssl ca -batch -config "$P/ca.cnf" -in "$P/short.csr" -out "$P/short.pem" -notext \
	-startdate "$(date -u -d '-1 hour' +%Y%m%d%H%M%SZ)" -enddate "$(date -u -d "@$expiry" +%Y%m%d%H%M%SZ)" \
	-extfile "$P/client.ext" 2>"$WORK/ca.log" || { cat "$WORK/ca.log"; fail "openssl ca"; }
start_server "$F" --quiet
get_root() {
	curl -sS -o "$WORK/reply" -w '%{http_code}' --cacert "$F/server_ca.pem" --cert "$P/short.pem" \
		--key "$P/short.key" "https://127.0.0.1:$PORT/director/root.json" || fail "curl with the short-lived certificate"
}
for i in 1 2; do # verified, then from the cache
	status=$(get_root)
	[ "$status" = 200 ] || { cat "$WORK/reply"; fail "request $i with a valid certificate: HTTP $status"; }
done
[ "$(date +%s)" -lt "$expiry" ] || fail "the machine is too slow for this test (the certificate expired already)"
while [ "$(date +%s)" -le "$((expiry + 1))" ]; do sleep 0.5; done
status=$(get_root)
[ "$status" = 403 ] && [ "$(jq -r .code "$WORK/reply")" = certificate_expired ] ||
	{ cat "$WORK/reply"; fail "a remembered certificate was accepted after it expired: HTTP $status"; }
pass "a remembered chain is verified again when its certificate expires (403 certificate_expired)"
