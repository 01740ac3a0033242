#!/usr/bin/env bash
# The long kill campaign: 1,000 seeded random SIGKILL points over a device's life
# (provisioning, metadata, download, archive and command installs; see
# scripts/kill_campaign.sh) and the counts per phase: kills, recoveries, failures (each with
# the command that reproduces it), points whose timing window was missed.
#
# Usage: bench/kill_campaign.sh [BUILD_DIR] [kill_campaign.sh options...]
#        (defaults: ./build, --points 1000, a random seed that is printed)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=$top/build
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then build=$1; shift; fi
start=$(date +%s)
rc=0
"$top/scripts/kill_campaign.sh" --build "$build" --points 1000 "$@" || rc=$?
echo "bench/kill_campaign.sh: $(($(date +%s) - start)) s wall, exit $rc"
exit $rc
