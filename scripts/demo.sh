#!/usr/bin/env bash
# The demo: a new fleet on the reference server, one device provisioning itself against it
# over mutual TLS with nothing but credentials.zip and sota.toml.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
work=$(mktemp -d /tmp/otad-demo.XXXXXX)
. "$top/tests/e2e/lib.sh"
OTAD_BIN=$build
trap 'stop_server; echo "(demo files kept in $work)"' EXIT

echo "== 1. ota-server init: a fleet with its CAs, server certificate and credentials.zip"
pick_port
"$build/server/ota-server" init "$work/fleet" --port "$PORT"

echo
echo "== 2. ota-server serve on https://127.0.0.1:$PORT"
start_server "$work/fleet"

echo
echo "== 3. the device: credentials.zip + sota.toml"
mkdir -p "$work/device"
cp "$work/fleet/credentials.zip" "$work/device/credentials.zip"
cat > "$work/device/sota.toml" <<TOML
[provision]
provision_path = "$work/device/credentials.zip"
primary_ecu_hardware_id = "demo-board"

[storage]
path = "$work/device/storage"

[pacman]
type = "none"
images_path = "$work/device/images"
TOML
cat "$work/device/sota.toml"

echo
echo "== 4. otad once: provisions itself, then one update cycle (nothing assigned yet)"
"$build/otad" -c "$work/device/sota.toml" once

echo
echo "== 5. otad status"
"$build/otad" -c "$work/device/sota.toml" status
echo
echo "files written:"
ls -l "$work/device/storage"
echo
echo "the fleet key was removed from the device's credentials.zip:"
unzip -l "$work/device/credentials.zip" | sed -n '4,$p' | head -n -2
echo
echo "== 6. an update: the server adds a target and assigns it; otad verifies it with Uptane,"
echo "      downloads, installs and reports"
head -c 1048576 /dev/urandom >"$work/firmware-1.1.bin"
"$build/server/ota-server" add-target "$work/fleet" "$work/firmware-1.1.bin" --name firmware-1.1.bin \
	--version 1.1 --hwid demo-board
device_id=$(cat "$work/device/storage/device_id")
"$build/server/ota-server" assign "$work/fleet" --device "$device_id" --target firmware-1.1.bin
"$build/otad" -c "$work/device/sota.toml" once

echo
echo "== 7. the server's view"
"$build/server/ota-server" devices "$work/fleet"
