#!/usr/bin/env bash
# README command 2: build (as command 1 does) and run every test with ctest.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=$("$top/scripts/build.sh" | tail -n1)
cd "$build"
ctest --output-on-failure -j"${OTAD_TEST_JOBS:-2}" "$@"
