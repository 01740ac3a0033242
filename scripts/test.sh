#!/usr/bin/env bash
# README command 2: check that the C files follow .clang-format (scripts/format.sh); build
# (as command 1 does) and run every test with ctest; run most
# e2e tests again with otad under valgrind (OTAD_TEST_VALGRIND=0 skips); run each
# libFuzzer target (scripts/fuzz.sh: 8 of them) for OTAD_TEST_FUZZ_SECONDS (default 55,
# so about 7.5 minutes in all; 0 skips); then build again with AddressSanitizer +
# UndefinedBehaviorSanitizer (BUILD_DIR-sanitize) and run every test once more there
# (OTAD_TEST_SANITIZE=0 skips). Extra arguments go to ctest.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=$("$top/scripts/build.sh" | tail -n1) # installs clang-format too, when root
"$top/scripts/format.sh"
(cd "$build" && ctest --output-on-failure -j"${OTAD_TEST_JOBS:-2}" "$@")
# Valgrind (memcheck, definite and indirect leaks are errors) over the e2e tests that
# drive otad and otad-fleet: provisioning, the update cycle, installs and attacks, device
# data, disk full, every fault, kill -9 and restart, the HSM, the fleet, security. Left out:
# the kill campaign (minutes under valgrind; its restarts are what test_kill9 checks), the
# 500-device load test and the server-only tests (no agent runs in them).
# OTAD_TEST_VALGRIND=0 skips; OTAD_TEST_VALGRIND_TESTS (a ctest -R regex) chooses others.
vg_default='^e2e/test_(provision|update|update_install|update_attacks|device_data|disk_full|fleet|faults_transport|faults_body|faults_tls|faults_status|bad_credentials|devicecred|daemon|id_taken|server_down|truncated_reply|wrong_ca|security|cert_provider|hsm|kill9)$'
if [ "${OTAD_TEST_VALGRIND:-1}" != 0 ]; then
	echo "== e2e tests under valgrind (otad, otad-fleet, otad-replay; see tests/e2e/lib.sh)"
	vglogs=$(mktemp -d /tmp/otad-valgrind.XXXXXX)
	vg_start=$(date +%s)
	vg_rc=0
	(cd "$build" && OTAD_VALGRIND=1 OTAD_VALGRIND_LOGS="$vglogs" ctest --output-on-failure \
		-j"${OTAD_TEST_JOBS:-2}" -R "${OTAD_TEST_VALGRIND_TESTS:-$vg_default}") || vg_rc=$?
	for f in "$vglogs"/*.log; do
		[ -s "$f" ] || continue
		echo "valgrind: $(basename "$f"):"
		cat "$f"
		vg_rc=1
	done
	echo "== valgrind stage: $(($(date +%s) - vg_start)) s, $(find "$vglogs" -name '*.log' | wc -l) processes checked"
	rm -rf "$vglogs"
	[ "$vg_rc" = 0 ] || { echo "valgrind stage failed" >&2; exit 1; }
fi
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
