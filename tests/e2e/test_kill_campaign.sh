#!/usr/bin/env bash
# A short kill campaign (scripts/kill_campaign.sh): 15 seeded random SIGKILL points spread
# over provisioning, Uptane metadata, the download, an archive install and a command
# install (with a reboot completion); after each, otad restarts and the store, the install
# tree and the server's view must show a complete recovery. The seed changes per run and
# is printed with a command that reproduces any failed point (OTAD_KILL_SEED fixes it,
# OTAD_KILL_POINTS changes the count). bench/kill_campaign.sh runs 1,000 points.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
: "${OTAD_SRC:=$(cd "$(dirname "$0")/../.." && pwd)}"
if [ -n "${OTAD_VALGRIND:-}" ]; then
	echo "skip: the kill campaign does not run under valgrind (its otad runs are killed on purpose; see test_kill9.sh)"
	exit 0
fi
seed=${OTAD_KILL_SEED:-$(((RANDOM << 15 | RANDOM) % 1000000))}
points=${OTAD_KILL_POINTS:-15}
out=$(mktemp /tmp/otad-e2e-kill.XXXXXX)
trap 'rm -f "$out"' EXIT
rc=0
"$OTAD_SRC/scripts/kill_campaign.sh" --build "$OTAD_BIN" --points "$points" --seed "$seed" \
	--big-mib 4 --files 60 >"$out" 2>&1 || rc=$?
cat "$out"
[ $rc = 0 ] || fail "the kill campaign (seed $seed) failed: exit $rc"
read -r _ n killed recovered failed _ < <(grep '^total ' "$out")
[ "$n" = "$points" ] || fail "ran $n points, not $points"
[ "$failed" = 0 ] && [ "$recovered" = "$killed" ] || fail "$failed points failed"
# timing-based points can miss a fast machine's window; the seams cannot
[ $((killed * 10)) -ge $((points * 7)) ] || fail "only $killed of $points points were killed"
pass "kill campaign, seed $seed: $killed kills over $points points, every restart recovered"
