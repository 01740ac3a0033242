#!/usr/bin/env bash
# Data-driven replay tests: every good/*.jsonl (journals recorded from real otad runs against
# ota-server) must replay cleanly; every bad/*.jsonl (a recorded journal altered by hand) must
# diverge exactly at the line its .expect file names.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
replay=${OTAD_BIN:?}/otad-replay
passed=0 failed=0
for j in "$here"/good/*.jsonl; do
	if out=$("$replay" "$j"); then
		echo "ok: $out"; passed=$((passed + 1))
	else
		echo "FAIL: $(basename "$j") should replay: $out"; failed=$((failed + 1))
	fi
done
for j in "$here"/bad/*.jsonl; do
	want=$(cat "${j%.jsonl}.expect")
	set +e
	out=$("$replay" "$j")
	rc=$?
	set -e
	if [ $rc = 1 ] && grep -q "DIVERGED at line $want:" <<<"$out"; then
		echo "ok: $(basename "$j") caught: ${out#*DIVERGED at }"; passed=$((passed + 1))
	else
		echo "FAIL: $(basename "$j"): expected a divergence at line $want, got (rc $rc) $out"
		failed=$((failed + 1))
	fi
done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
