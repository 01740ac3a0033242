# lib.sh - shared helpers for the end-to-end tests: start the real ota-server on loopback,
# make device configs, check results. Sourced by tests/e2e/test_*.sh and scripts/demo.sh.
# OTAD_BIN is the build directory (ctest sets it).

SERVER_PID=
PORT=
: "${OTAD_BIN:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build}"

# OTAD_VALGRIND=1: otad, otad-fleet and otad-replay run under valgrind's memcheck (definite
# and indirect leaks count as errors; a process with errors exits 99). OTAD_BIN then names
# a directory of wrappers beside links to the rest of the build (server/, otad-cert-provider),
# so the tests run unchanged. Each process writes its report to
# $OTAD_VALGRIND_LOGS/TEST.PROGRAM.PID.log (default: a new directory per test), empty when
# clean; valgrind_check (run when a test using setup_test exits) fails the test on any
# report that is not. OTAD_VALGRIND_SLOW is a factor tests can scale their waits by.
OTAD_VALGRIND_SLOW=1
if [ -n "${OTAD_VALGRIND:-}" ] && [ "$OTAD_VALGRIND" != 0 ] && [ -z "${OTAD_VALGRIND_REAL_BIN:-}" ]; then
	command -v valgrind >/dev/null || { echo "OTAD_VALGRIND is set, but valgrind is not installed" >&2; exit 1; }
	OTAD_VALGRIND_SLOW=20
	: "${OTAD_VALGRIND_LOGS:=$(mktemp -d /tmp/otad-valgrind.XXXXXX)}"
	mkdir -p "$OTAD_VALGRIND_LOGS"
	OTAD_VALGRIND_REAL_BIN=$(cd "$OTAD_BIN" && pwd)
	OTAD_BIN=$(mktemp -d "$OTAD_VALGRIND_LOGS/bin.XXXXXX")
	for _f in "$OTAD_VALGRIND_REAL_BIN"/*; do ln -s "$_f" "$OTAD_BIN/"; done
	for _b in otad otad-fleet otad-replay; do
		rm -f "$OTAD_BIN/$_b"
		cat >"$OTAD_BIN/$_b" <<VG
#!/bin/sh
exec valgrind -q --leak-check=full --show-leak-kinds=definite,indirect \\
	--errors-for-leak-kinds=definite,indirect --error-exitcode=99 --num-callers=30 \\
	--log-file="$OTAD_VALGRIND_LOGS/$(basename "$0" .sh).$_b.%p.log" \\
	"$OTAD_VALGRIND_REAL_BIN/$_b" "\$@"
VG
		chmod +x "$OTAD_BIN/$_b"
	done
	export OTAD_BIN OTAD_VALGRIND_LOGS OTAD_VALGRIND_REAL_BIN
fi

# valgrind_check: under OTAD_VALGRIND, prints every valgrind report of this test that is
# not empty and returns 1; otherwise returns 0.
valgrind_check() {
	[ -n "${OTAD_VALGRIND_REAL_BIN:-}" ] || return 0
	local f bad=0
	for f in "$OTAD_VALGRIND_LOGS/$(basename "$0" .sh)".*.log; do
		[ -s "$f" ] || continue
		echo "valgrind found errors ($f):" >&2
		cat "$f" >&2
		bad=1
	done
	[ $bad = 0 ] || echo "FAIL: valgrind reported errors" >&2
	return $bad
}

# Picks a TCP port on 127.0.0.1 that nothing listens on (into PORT), below the kernel's
# ephemeral range: a port in that range can be taken at any moment by a client socket of a
# test running in parallel, and the server's bind then fails.
pick_port() {
	local p lo=32768
	read -r lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
	[ "$lo" -gt 12000 ] || lo=32768
	for _ in $(seq 1 50); do
		p=$((10000 + RANDOM % (lo - 10000)))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			PORT=$p
			return 0
		fi
	done
	echo "no free port found" >&2
	return 1
}

# start_server DIR [serve options...]: starts ota-server on $PORT, waits until it listens.
start_server() {
	local dir=$1
	shift
	# a restart on the same DIR appends to server.log: wait for a new "listening" line
	local before
	before=$(grep -c "listening on" "$dir/server.log" 2>/dev/null || true)
	"$OTAD_BIN/server/ota-server" serve "$dir" --port "$PORT" "$@" 2>>"$dir/server.log" &
	SERVER_PID=$!
	for _ in $(seq 1 100); do
		if [ "$(grep -c "listening on" "$dir/server.log" 2>/dev/null || true)" -gt "${before:-0}" ]; then return 0; fi
		if ! kill -0 "$SERVER_PID" 2>/dev/null; then
			echo "ota-server exited at start:" >&2
			cat "$dir/server.log" >&2
			return 1
		fi
		sleep 0.1
	done
	echo "ota-server did not start listening" >&2
	return 1
}

stop_server() {
	if [ -n "${SERVER_PID:-}" ]; then
		kill "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
		SERVER_PID=
	fi
}

# new_fleet DIR [init options...]: a fresh fleet for the current $PORT.
new_fleet() {
	local dir=$1
	shift
	"$OTAD_BIN/server/ota-server" init "$dir" --port "$PORT" "$@" >/dev/null
}

# device_config DIR ZIP [extra toml lines...]: writes DIR/sota.toml for a device.
device_config() {
	local dir=$1 zip=$2
	shift 2
	mkdir -p "$dir"
	cp "$zip" "$dir/credentials.zip"
	{
		echo "[provision]"
		echo "provision_path = \"$dir/credentials.zip\""
		echo "primary_ecu_hardware_id = \"test-board\""
		echo "[storage]"
		echo "path = \"$dir/storage\""
		for l in "$@"; do echo "$l"; done
	} >"$dir/sota.toml"
}

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

pass() { echo "ok: $*"; }

# Runs a test body with a work dir and the server stopped at exit (and, under
# OTAD_VALGRIND, a failure when valgrind reported errors).
setup_test() {
	WORK=$(mktemp -d /tmp/otad-e2e.XXXXXX)
	trap 'rc=$?; stop_server; kill $(jobs -p) 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$WORK"; valgrind_check || rc=1; exit $rc' EXIT
	pick_port
}

# same_path JOURNAL GOLDEN: the run took exactly the transitions of a golden journal
# (tests/journals/good/GOLDEN.jsonl), compared as "from event to action" lines.
# OTAD_UPDATE_GOLDEN=1 records the run as the new golden instead (after a deliberate change
# of the table; say in the commit which rows are new).
same_path() {
	local golden
	: "${OTAD_SRC:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
	golden=$OTAD_SRC/tests/journals/good/$2.jsonl
	if [ "${OTAD_UPDATE_GOLDEN:-0}" = 1 ]; then
		cp "$1" "$golden"
		echo "recorded $golden" >&2
		return 0
	fi
	if ! diff <(jq -r '"\(.from) \(.event) \(.to) \(.action)"' "$1") \
		<(jq -r '"\(.from) \(.event) \(.to) \(.action)"' "$golden") >"$1.diff"; then
		cat "$1.diff" >&2
		fail "the run's transitions differ from the golden journal $2"
	fi
}

# make_fleet_ca DIR: an operator's fleet root CA (EC P-256) in DIR/fleet-ca.{pem,key}.
make_fleet_ca() {
	local dir=$1
	mkdir -p "$dir"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
		-subj "/CN=fleet root CA/O=otad tests" -keyout "$dir/fleet-ca.key" -out "$dir/fleet-ca.pem" \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

# sign_device CADIR OUTDIR CN [STARTDATE ENDDATE]: a device key and certificate signed by
# the fleet CA, written as OUTDIR/pkey.pem and OUTDIR/client.pem (dates as YYYYMMDDHHMMSSZ).
sign_device() {
	local ca=$1 out=$2 cn=$3 start=${4:-} end=${5:-}
	mkdir -p "$out" "$ca/db"
	[ -f "$ca/db/index" ] || { : >"$ca/db/index"; echo 1000 >"$ca/db/serial"; }
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$cn" \
		-keyout "$out/pkey.pem" -out "$out/req.csr" 2>/dev/null
	cat >"$ca/db/ca.cnf" <<CNF
[ca]
default_ca = fleet
[fleet]
dir = $ca/db
database = $ca/db/index
serial = $ca/db/serial
new_certs_dir = $ca/db
certificate = $ca/fleet-ca.pem
private_key = $ca/fleet-ca.key
default_md = sha256
default_days = 365
policy = any
unique_subject = no
copy_extensions = none
x509_extensions = device
[any]
commonName = supplied
[device]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
CNF
	local dates=()
	[ -n "$start" ] && dates=(-startdate "$start" -enddate "$end")
	openssl ca -batch -config "$ca/db/ca.cnf" -in "$out/req.csr" -out "$out/client.pem" -notext \
		"${dates[@]}" 2>/dev/null || { echo "sign_device: openssl ca failed" >&2; return 1; }
	rm -f "$out/req.csr"
	chmod 600 "$out/pkey.pem"
}

# devicecred_config DIR IMPORTDIR [extra toml lines...]: a DeviceCred device (no
# provision_path) whose credentials and gateway.url live in IMPORTDIR.
devicecred_config() {
	local dir=$1 imp=$2
	shift 2
	mkdir -p "$dir"
	{
		echo "[import]"
		echo "base_path = \"$imp\""
		echo "[tls]"
		echo "server_url_path = \"gateway.url\""
		echo "[provision]"
		echo "primary_ecu_hardware_id = \"test-board\""
		echo "[storage]"
		echo "path = \"$dir/storage\""
		for l in "$@"; do echo "$l"; done
	} >"$dir/sota.toml"
}
