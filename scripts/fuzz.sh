#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each, one after the
# other, for SECONDS (default 60) from its seed corpus in tests/fuzz/corpus/NAME (with the
# dictionary tests/fuzz/NAME.dict when there is one). Prints executions per target; exits
# non-zero when a target crashes (the crashing input is kept in the work directory and
# named in the output: add it to the corpus as regress-* once the bug is fixed).
#
# Targets: fuzz_config (sota.toml), fuzz_p12 (PKCS#12), fuzz_credzip (credentials.zip),
# fuzz_journal (journal replay), fuzz_uptane (Uptane metadata chains, canonical JSON),
# fuzz_manifest (manifest, installation report, events as JSON), fuzz_http (HTTP replies
# through transport/http.c), fuzz_archive (the archive installer).
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_config fuzz_p12 fuzz_credzip fuzz_journal fuzz_uptane
	fuzz_manifest fuzz_http fuzz_archive)
build=${FUZZ_BUILD_DIR:-$top/build-fuzz}
deps=$("$top/scripts/deps.sh" | tail -n1)
CC=clang cmake -S "$top" -B "$build" -DOTAD_DEPS="$deps" -DOTAD_FUZZ=ON -DOTAD_SANITIZE=ON \
	-DOTAD_BUILD_TESTS=OFF -DOTAD_BUILD_SERVER=OFF -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}" >/dev/null
work=$(mktemp -d /tmp/otad-fuzz.XXXXXX)
failed=0
for t in "${targets[@]}"; do
	name=${t#fuzz_}
	mkdir -p "$work/$name"
	cp "$top/tests/fuzz/corpus/$name/"* "$work/$name/" 2>/dev/null || true
	dict=()
	[ -f "$top/tests/fuzz/$name.dict" ] && dict=(-dict="$top/tests/fuzz/$name.dict")
	if (cd "$work" && "$build/tests/fuzz/$t" -max_total_time="$secs" -print_final_stats=1 \
		-rss_limit_mb=2048 -timeout=10 ${dict[@]+"${dict[@]}"} "$work/$name" >"$work/$t.log" 2>&1); then
		runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/$t.log" | grep -o '[0-9]*$')
		rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$work/$t.log" | grep -o '[0-9]*$')
		cov=$(grep -o 'cov: [0-9]*' "$work/$t.log" | tail -n1)
		echo "$t: ${runs:-?} executions in ${secs}s (${rate:-?}/s), $cov, no crash"
	else
		failed=$((failed + 1))
		echo "$t: CRASH (log: $work/$t.log)"
		grep -E 'ERROR|SUMMARY|Test unit written' "$work/$t.log" | head -n 5
	fi
done
[ $failed = 0 ] && rm -rf "$work"
exit $failed
