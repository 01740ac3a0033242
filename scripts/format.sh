#!/usr/bin/env bash
# Checks that every C file follows .clang-format (the test command runs this first), or,
# with --fix, formats them in place. Corpus files of the fuzzers are data, not code.
#   scripts/format.sh          list the files that differ and exit 1 if any does
#   scripts/format.sh --fix    rewrite them
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
if ! command -v clang-format >/dev/null; then
	echo "format: clang-format is not installed (scripts/deps.sh installs it)" >&2
	exit 1
fi
mapfile -t files < <(git ls-files '*.c' '*.h' | grep -v '/corpus/')
if [ "${1:-}" = --fix ]; then
	clang-format -i "${files[@]}"
	exit 0
fi
bad=()
for f in "${files[@]}"; do
	clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if ((${#bad[@]})); then
	echo "format: ${#bad[@]} file(s) do not follow .clang-format ($(clang-format --version | head -1)):" >&2
	printf '  %s\n' "${bad[@]}" >&2
	echo "format: run scripts/format.sh --fix" >&2
	exit 1
fi
echo "format: ${#files[@]} C files follow .clang-format"
