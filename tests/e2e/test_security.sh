#!/usr/bin/env bash
# Security checks end to end:
#   a. the server's certificate must match the host otad connects to: the real server
#      reached as https://127.0.0.2:PORT (loopback, but not among the certificate's names:
#      localhost, 127.0.0.1, ::1) is refused at the handshake, for provisioning and for a
#      provisioned device; nothing reaches the server. (A certificate that does not chain
#      to the pinned CA: test_wrong_ca.sh; other names and expiry: test_faults_tls.sh.)
#   b. TLS 1.2 at least: a server that speaks only TLS 1.1 or 1.0 (openssl s_server with
#      the fleet's own certificate) is refused; the same server with TLS 1.2 is not.
#   c. the store: keys and credentials 0600 in a 0700 directory; loosened modes are found
#      at start, warned about and fixed; a store owned by another user is refused.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
setup_test
new_fleet "$WORK/fleet"
srv() { "$OTAD_BIN/server/ota-server" "$@"; }
requests() { srv requests "$WORK/fleet" --json | jq length; }
cn_of() { openssl x509 -in "$1" -noout -subject -nameopt RFC2253 | sed 's/.*CN=\([^,]*\).*/\1/'; }

# ---- a. host name ---------------------------------------------------------------------------
openssl x509 -in "$WORK/fleet/server.pem" -noout -ext subjectAltName | grep -q "127.0.0.2" &&
	fail "a: the server certificate names 127.0.0.2; the test needs an address it does not name"
start_server "$WORK/fleet" --bind 127.0.0.2
a=$WORK/a
device_config "$a" "$WORK/fleet/credentials.zip" "[tls]" "server = \"https://127.0.0.2:$PORT\""
if "$OTAD_BIN/otad" -c "$a/sota.toml" --retry-cap 1 --retries 2 --no-updates once 2>"$a/log"; then
	fail "a: provisioned through https://127.0.0.2, which the certificate does not name"
fi
grep -q "is not issued for this server's name" "$a/log" || { cat "$a/log"; fail "a: no message about the server's name"; }
grep -q "retrying" "$a/log" && fail "a: a server with the wrong name was retried"
[ "$(requests)" = 0 ] || fail "a: $(requests) requests reached the server"
for f in pkey.pem client.pem creds.pending; do [ ! -e "$a/storage/$f" ] || fail "a: $f stored"; done
grep -qx autoprov_credentials.p12 <(unzip -Z1 "$a/credentials.zip") || fail "a: the fleet key was removed"
pass "a1. provisioning via 127.0.0.2: refused at the handshake, no request reached the server ($(grep -o "POST /devices: .*" "$a/log" | head -n1 | head -c 140))"

# A provisioned device sent to the same server under the wrong address.
stop_server
start_server "$WORK/fleet"
p=$WORK/p
device_config "$p" "$WORK/fleet/credentials.zip"
"$OTAD_BIN/otad" -c "$p/sota.toml" --no-updates once 2>"$p/log0" || { cat "$p/log0"; fail "a: provisioning"; }
uuid=$(cn_of "$p/storage/client.pem")
n0=$(requests)
stop_server
start_server "$WORK/fleet" --bind 127.0.0.2
if "$OTAD_BIN/otad" -c "$p/sota.toml" --retry-cap 1 --retries 2 --server "https://127.0.0.2:$PORT" once 2>"$p/log1"; then
	fail "a: a provisioned device talked to https://127.0.0.2"
fi
grep -q "is not issued for this server's name\|not trusted\|TLS" "$p/log1" || { cat "$p/log1"; fail "a2: no message about the server"; }
[ "$(requests)" = "$n0" ] || fail "a2: $(($(requests) - n0)) requests reached the server"
[ "$(cn_of "$p/storage/client.pem")" = "$uuid" ] && [ -s "$p/storage/pkey.pem" ] || fail "a2: credentials lost"
pass "a2. provisioned device via 127.0.0.2: refused, nothing sent, credentials kept ($(grep -oE "(error|warning) +otad: .*" "$p/log1" | tail -n1 | head -c 150))"
stop_server

# ---- b. TLS 1.2 at least --------------------------------------------------------------------
# s_server PROTO: openssl s_server speaking only PROTO with the fleet's server certificate
# on $PORT (SECLEVEL 0: OpenSSL 3 refuses TLS < 1.2 at its default level), in SPID.
SPID=
exec {HOLD_FD}<> <(:) # s_server's stdin: a pipe that never ends (at EOF it would quit)
s_server() {
	: >"$WORK/s_server.log"
	openssl s_server -accept "$PORT" -4 "-$1" -cipher 'DEFAULT@SECLEVEL=0' -cert "$WORK/fleet/server.pem" \
		-key "$WORK/fleet/server.key" >"$WORK/s_server.log" 2>&1 <&"$HOLD_FD" &
	SPID=$!
	for _ in $(seq 1 100); do
		grep -q ACCEPT "$WORK/s_server.log" && return 0
		kill -0 "$SPID" 2>/dev/null || break
		sleep 0.1
	done
	cat "$WORK/s_server.log" >&2
	return 1
}
stop_s_server() { kill "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true; SPID=; }
trap 'rc=$?; [ -z "$SPID" ] || kill "$SPID" 2>/dev/null; stop_server; [ -n "${KEEP:-}" ] || rm -rf "$WORK"; valgrind_check || rc=1; exit $rc' EXIT
for proto in tls1_1 tls1; do
	if ! s_server "$proto" 2>"$WORK/s_server.err"; then
		echo "skip: b ($proto): this openssl cannot serve $proto: $(head -c 200 "$WORK/s_server.err")"
		continue
	fi
	# the server really speaks it: openssl's own client gets a handshake
	echo | timeout 20 openssl s_client -connect "127.0.0.1:$PORT" "-$proto" -cipher 'DEFAULT@SECLEVEL=0' \
		>"$WORK/s_client.out" 2>&1 || true
	grep -qE "Protocol *: *TLSv1(\.1)?$|New, TLSv1(\.1)?," "$WORK/s_client.out" ||
		{ cat "$WORK/s_client.out"; fail "b: openssl s_client could not speak $proto to s_server"; }
	b=$WORK/b-$proto
	device_config "$b" "$WORK/fleet/credentials.zip"
	if "$OTAD_BIN/otad" -c "$b/sota.toml" --retry-cap 1 --retries 1 --no-updates once 2>"$b/log"; then
		fail "b: provisioned against a $proto-only server"
	fi
	grep -q "TLS handshake failed" "$b/log" || { cat "$b/log"; fail "b: $proto: no TLS handshake failure"; }
	grep -q "unsupported protocol\|wrong version\|no protocols available" "$WORK/s_server.log" ||
		{ cat "$WORK/s_server.log"; fail "b: $proto: the server saw no protocol version refusal"; }
	[ ! -e "$b/storage/pkey.pem" ] || fail "b: $proto: credentials stored"
	pass "b. a $proto-only server: refused ($(grep -o "TLS handshake failed.*" "$b/log" | tail -n1 | head -c 120)); s_server: $(grep -o "unsupported protocol\|wrong version\|no protocols available" "$WORK/s_server.log" | head -n1)"
	stop_s_server
done
# the control: the same server with TLS 1.2 gets the request (s_server prints it; it
# never answers, so otad is stopped once it is there)
if s_server tls1_2 2>/dev/null; then
	b=$WORK/b-tls1_2
	device_config "$b" "$WORK/fleet/credentials.zip"
	"$OTAD_BIN/otad" -c "$b/sota.toml" --retry-cap 1 --retries 1 --no-updates once 2>"$b/log" &
	opid=$!
	for _ in $(seq 1 $((300 * OTAD_VALGRIND_SLOW))); do
		grep -q "^POST /devices" "$WORK/s_server.log" && break
		kill -0 "$opid" 2>/dev/null || break
		sleep 0.1
	done
	kill "$opid" 2>/dev/null || true
	wait "$opid" 2>/dev/null || true
	grep -q "^POST /devices" "$WORK/s_server.log" || { cat "$b/log" "$WORK/s_server.log"; fail "b: the TLS 1.2 control did not get the request"; }
	stop_s_server
	pass "b. control: the same server with TLS 1.2 gets the request ($(grep -o "^Protocol version: .*\|^CIPHER is .*" "$WORK/s_server.log" | head -n1))"
fi

# ---- c. modes and owner of the store --------------------------------------------------------
st=$p/storage
check_modes() {
	[ "$(stat -c %a "$st")" = 700 ] || fail "$1: storage dir mode $(stat -c %a "$st")"
	for f in pkey.pem ecukey.pem; do [ "$(stat -c %a "$st/$f")" = 600 ] || fail "$1: $f mode $(stat -c %a "$st/$f")"; done
}
check_modes "c (after provisioning)"
chmod 0755 "$st"
chmod 0644 "$st/pkey.pem" "$st/ecukey.pem"
"$OTAD_BIN/otad" -c "$p/sota.toml" status >"$WORK/status.out" 2>"$WORK/c-log" || { cat "$WORK/c-log"; fail "c: otad status"; }
grep -q "$st had mode 0755 (open to group/other): changed to 0700" "$WORK/c-log" || { cat "$WORK/c-log"; fail "c: no warning about the directory"; }
grep -q "$st/pkey.pem had mode 0644 (open to group/other): changed to 0600" "$WORK/c-log" || { cat "$WORK/c-log"; fail "c: no warning about pkey.pem"; }
grep -q "$st/ecukey.pem had mode 0644" "$WORK/c-log" || fail "c: no warning about ecukey.pem"
check_modes "c (after the fix)"
pass "c1. loosened modes (dir 0755, keys 0644): warned and fixed at start ($(grep -o "$st/pkey.pem had.*" "$WORK/c-log" | head -n1 | sed "s|$WORK/||"))"

if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
	cp -a "$st" "$WORK/st.bak"
	chown -R nobody "$st"
	if "$OTAD_BIN/otad" -c "$p/sota.toml" status >/dev/null 2>"$WORK/c-log2"; then fail "c: used a store owned by nobody"; fi
	grep -q "$st is owned by uid $(id -u nobody), not by uid 0 that runs otad" "$WORK/c-log2" ||
		{ cat "$WORK/c-log2"; fail "c: no message about the owner"; }
	[ "$(stat -c %U "$st")" = nobody ] || fail "c: the owner was changed behind the administrator's back"
	chown -R root "$st"
	chown nobody "$st/pkey.pem"
	if "$OTAD_BIN/otad" -c "$p/sota.toml" status >/dev/null 2>"$WORK/c-log3"; then fail "c: used a key owned by nobody"; fi
	grep -q "$st/pkey.pem is owned by uid $(id -u nobody)" "$WORK/c-log3" || { cat "$WORK/c-log3"; fail "c: no message about the key's owner"; }
	chown root "$st/pkey.pem"
	"$OTAD_BIN/otad" -c "$p/sota.toml" status >/dev/null 2>"$WORK/c-log4" || { cat "$WORK/c-log4"; fail "c: the store back in root's hands"; }
	pass "c2. a store (or key) owned by another user: refused ($(grep -o "is owned by.*refusing to use it" "$WORK/c-log2" | head -n1))"
else
	echo "skip: c2 (a store owned by another user) needs root and a 'nobody' user"
fi
