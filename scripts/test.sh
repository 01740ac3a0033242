#!/usr/bin/env bash
# README command 2: build (as command 1 does) and run every test with ctest; run each
# libFuzzer target (scripts/fuzz.sh: 8 of them) for OTAD_TEST_FUZZ_SECONDS (default 55,
# so about 7.5 minutes in all; 0 skips); then build again with AddressSanitizer +
# UndefinedBehaviorSanitizer (BUILD_DIR-sanitize) and run every test once more there
# (OTAD_TEST_SANITIZE=0 skips). Extra arguments go to ctest.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=$("$top/scripts/build.sh" | tail -n1)
(cd "$build" && ctest --output-on-failure -j"${OTAD_TEST_JOBS:-2}" "$@")
fuzz_secs=${OTAD_TEST_FUZZ_SECONDS:-55}
if [ "$fuzz_secs" != 0 ]; then
	echo "== fuzzing: each target for ${fuzz_secs}s"
	FUZZ_BUILD_DIR="$build-fuzz" "$top/scripts/fuzz.sh" "$fuzz_secs"
fi
if [ "${OTAD_TEST_SANITIZE:-1}" != 0 ]; then
	echo "== the same tests under AddressSanitizer + UndefinedBehaviorSanitizer"
	san=$(BUILD_DIR="$build-sanitize" CMAKE_ARGS="-DOTAD_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug -DOTAD_BUILD_TESTS=ON" \
		"$top/scripts/build.sh" | tail -n1)
	(cd "$san" && ctest --output-on-failure -j"${OTAD_TEST_JOBS:-2}" "$@")
fi
