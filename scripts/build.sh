#!/usr/bin/env bash
# Builds otad and everything it needs: Debian packages (when root), the wolfSSL/libcurl/
# libarchive prefix (cached, see scripts/deps.sh), then the CMake build in BUILD_DIR
# (default ./build). Prints the build directory on its last line.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build}
deps=$("$top/scripts/deps.sh" | tail -n1)
cmake -S "$top" -B "$build" -DOTAD_DEPS="$deps" ${CMAKE_ARGS:-} >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null
echo "$build"
