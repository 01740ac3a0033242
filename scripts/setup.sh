#!/usr/bin/env bash
# README command 1: install what is missing, build everything, run the demo.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
echo "== building (first run: installs packages and builds wolfSSL/libcurl/libarchive, ~6 min)"
build=$("$top/scripts/build.sh" | tail -n1)
echo "== built in $build"
exec "$top/scripts/demo.sh" "$build"
