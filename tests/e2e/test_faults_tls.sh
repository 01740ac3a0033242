#!/usr/bin/env bash
# Server certificates a device must refuse (ota-server serve --server-cert): one for another
# host name and an expired one, both signed by the fleet's own server CA, so only the name
# or the validity check can refuse them. The device refuses at the handshake (nothing reaches
# the server), says why, does not retry, stores nothing; a provisioned device keeps its
# credentials.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
setup_test
new_fleet "$WORK/fleet"
srv() { "$OTAD_BIN/server/ota-server" "$@"; }
requests() { srv requests "$WORK/fleet" --json | jq length; }

# A provisioned device, to point at the bad certificates afterwards.
start_server "$WORK/fleet"
device_config "$WORK/prov" "$WORK/fleet/credentials.zip"
"$OTAD_BIN/otad" -c "$WORK/prov/sota.toml" --no-updates once 2>"$WORK/prov/log0" || { cat "$WORK/prov/log0"; fail "provisioning"; }

for kind in wrong-host expired; do
	case $kind in
	wrong-host) why="is not issued for this server's name" ;;
	expired) why="has expired" ;;
	esac
	stop_server
	start_server "$WORK/fleet" --server-cert "$kind"
	grep -q "serving a $kind" "$WORK/fleet/server.log" || fail "$kind: the server does not say what it serves"
	n0=$(requests)
	d=$WORK/$kind
	device_config "$d" "$WORK/fleet/credentials.zip"
	rc=0
	"$OTAD_BIN/otad" -c "$d/sota.toml" --retry-cap 1 --retries 3 --no-updates once 2>"$d/log" || rc=$?
	[ "$rc" = 1 ] || { cat "$d/log"; fail "$kind: exit $rc, expected 1"; }
	grep -q "POST /devices: the server's certificate $why (.*); nothing was sent" "$d/log" ||
		{ cat "$d/log"; fail "$kind: no log line saying why the server was refused"; }
	grep -q "retrying" "$d/log" && fail "$kind: retried"
	for f in pkey.pem client.pem root.crt; do [ ! -e "$d/storage/$f" ] || fail "$kind: $f stored"; done
	[ "$(requests)" = "$n0" ] || fail "$kind: a request reached the server"
	pass "$kind server certificate: refused before any request, not retried ($(grep -o "certificate $why ([^)]*)" "$d/log"))"

	# The provisioned device meets it on its ECU registration: refused, credentials kept.
	rm -f "$WORK/prov/storage/is_registered"
	rc=0
	"$OTAD_BIN/otad" -c "$WORK/prov/sota.toml" --retry-cap 1 --retries 1 --no-updates once 2>"$WORK/prov/log-$kind" || rc=$?
	[ "$rc" = 1 ] || fail "$kind: the provisioned device talked to it"
	grep -q "POST /director/ecus: the server's certificate $why" "$WORK/prov/log-$kind" ||
		{ cat "$WORK/prov/log-$kind"; fail "$kind: provisioned device: no reason"; }
	[ -s "$WORK/prov/storage/pkey.pem" ] && [ -s "$WORK/prov/storage/client.pem" ] || fail "$kind: credentials lost"
	pass "$kind: a provisioned device refuses it too and keeps its credentials"
done
