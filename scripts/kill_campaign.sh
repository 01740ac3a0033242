#!/usr/bin/env bash
# kill_campaign.sh - SIGKILL otad at seeded random points of a device's life, restart it,
# and check that it recovered. Each point is one kill, on its own device:
#
#   provision  a fresh device, killed at store op N of its first run (op = an atomic write
#              or a remove in storage/store_fs.c, via OTAD_TEST_KILL_AT_WRITE; half way
#              through it, or just after it with OTAD_TEST_KILL_AFTER=1)
#   metadata   a provisioned device with an update assigned ([pacman] none), killed at store
#              op N of the update cycle: Uptane metadata, events, installed_target, report
#   download   the same with a big target, killed with a random number of bytes in its
#              .part file: exactly (OTAD_TEST_KILL_AT_BYTE, the seam writes that many and
#              stops), or by kill -9 from outside once the file has reached that size
#   archive    [pacman] archive: killed while the archive is unpacked (after entry k, a
#              step numbered by store_test_step), a random delay after the temp tree
#              appeared, or at a later step of the install (unpacked and synced, renamed
#              into place, `current` switched) or a store op after it; on a device with an
#              older version installed or with nothing installed
#   command    [pacman] command: otad killed while the install command runs (alone, the
#              command finishing as an orphan; or with its process group, a power cut), at
#              a store op after the install, or at a store op of the reboot completion
#              (install command exit 100, sentinel gone)
#
# After each kill otad runs `once` again (up to 3 times) until it succeeds, then the
# device is checked: every stored file complete and parseable (PEM, JSON, plain values),
# no temp file left (store, images, install tree), the same device UUID as before the kill
# once credentials were stored, no second registration unless the kill lost a
# registration reply (counted as "orphans": the server cannot give them again), the
# update installed and reported OK to the server under its correlation ID, the
# assignment finished, `current` pointing at a complete version tree, the journal
# replayable. Points use devices cloned from provisioned templates (one server device per
# template), so a point's choices depend only on the seed and its number: --only K
# reproduces it (exactly for the seam kills; the kills from outside depend on timing too,
# and a point whose window passed before the kill is counted as "not hit").
#
# Usage: scripts/kill_campaign.sh [--points N] [--seed S] [--build DIR] [--only K]
#                                 [--phases LIST] [--big-mib M] [--files N]
#                                 [--workdir DIR] [--keep] [--verbose]
# Exit: 0 all recovered, 1 a point failed, 2 usage.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)

usage() {
	sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
	cat <<'EOF'
Options:
  --points N     kill points to run (default 100), spread over the phases in turn
  --seed S       seed of the random choices (default: random, printed)
  --build DIR    the build directory with otad, otad-replay, server/ota-server
                 (default: $OTAD_BIN or ./build)
  --only K       run point K alone (with the same seed: the same choices)
  --phases LIST  comma-separated subset of provision,metadata,download,archive,command
  --big-mib M    size of the download phase's target (default 32)
  --files N      files in the archive phase's archive, 20 KB each (default 300)
  --workdir DIR  where the fleet and the devices live (default: /dev/shm when it is a
                 tmpfs with 2 GiB free - a SIGKILL leaves the same files there as on a
                 disk, and fsync costs nothing -, else /tmp)
  --keep         keep the work directory (default: kept only when a point failed)
  --verbose      print every point
EOF
}

points=100 seed= only= phases=provision,metadata,download,archive,command keep=0 verbose=0
big_mib=32 NFILES=300 workdir=
build=${OTAD_BIN:-$top/build}
while [ $# -gt 0 ]; do
	case $1 in
	--points) points=${2:?}; shift 2 ;;
	--seed) seed=${2:?}; shift 2 ;;
	--build) build=${2:?}; shift 2 ;;
	--only) only=${2:?}; shift 2 ;;
	--phases) phases=${2:?}; shift 2 ;;
	--big-mib) big_mib=${2:?}; shift 2 ;;
	--files) NFILES=${2:?}; shift 2 ;;
	--workdir) workdir=${2:?}; shift 2 ;;
	--keep) keep=1; shift ;;
	--verbose) verbose=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "kill_campaign: unknown argument '$1' (see --help)" >&2; exit 2 ;;
	esac
done
num() { [[ $1 =~ ^[0-9]+$ ]] || { echo "kill_campaign: $2 must be a number, got '$1'" >&2; exit 2; }; }
num "$points" --points
num "$big_mib" --big-mib
num "$NFILES" --files
[ "$NFILES" -ge 1 ] || { echo "kill_campaign: --files must be at least 1" >&2; exit 2; }
if [ -z "$workdir" ]; then
	workdir=/tmp
	shm_free=$(stat -f -c '%a %S' /dev/shm 2>/dev/null | awk '{print int($1 * $2 / 1048576)}')
	if [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ] && [ -w /dev/shm ] &&
		[ "${shm_free:-0}" -gt 2048 ]; then workdir=/dev/shm; fi
fi
[ -d "$workdir" ] && [ -w "$workdir" ] || { echo "kill_campaign: cannot write to $workdir" >&2; exit 2; }
[ -z "$only" ] || num "$only" --only
[ -n "$seed" ] || seed=$(((RANDOM << 15 | RANDOM) % 1000000))
num "$seed" --seed
IFS=, read -r -a phase_list <<<"$phases"
for p in "${phase_list[@]}"; do
	case $p in provision | metadata | download | archive | command) ;;
	*) echo "kill_campaign: unknown phase '$p'" >&2; exit 2 ;;
	esac
done
build=$(cd "$build" 2>/dev/null && pwd) || { echo "kill_campaign: no build directory $build" >&2; exit 2; }
for b in otad otad-replay server/ota-server; do
	[ -x "$build/$b" ] || { echo "kill_campaign: $build/$b is missing (build first)" >&2; exit 2; }
done
for t in jq openssl unzip tar cmp timeout setsid; do
	command -v $t >/dev/null || { echo "kill_campaign: '$t' is needed" >&2; exit 2; }
done

OTAD_BIN=$build
. "$top/tests/e2e/lib.sh"
WORK=$(mktemp -d "$workdir/otad-kill.XXXXXX")
failures=0
cleanup() {
	stop_server
	if [ "$keep" = 1 ] || [ "$failures" -gt 0 ]; then
		echo "kill_campaign: work directory kept: $WORK" >&2
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
pick_port || exit 1
FLEET=$WORK/fleet
srv() { "$build/server/ota-server" "$@"; }
say() { echo "kill_campaign: $*" >&2; }
die() { say "$*"; exit 1; }

# ---- random numbers: point K's choices depend on (seed, K) only ---------------------------
rnd_to() { R=$(((RANDOM << 15 | RANDOM) % $1)); } # R = 0 .. $1-1 (up to 2^30)

# ---- the server view ----------------------------------------------------------------------
count_devices() { srv devices "$FLEET" --json | jq length; }
dev_json() { srv devices "$FLEET" --json | jq --arg u "$1" '.[] | select(.uuid==$u)'; }
cert_cn() { openssl x509 -noout -subject -nameopt RFC2253 2>/dev/null | sed -n 's/.*CN=\([^,]*\).*/\1/p'; }
# The UUID of the credentials a storage dir holds (creds.pending first: it is what the
# next start completes), or "".
held_uuid() {
	local st=$1
	if [ -s "$st/creds.pending" ]; then
		jq -r .cert "$st/creds.pending" 2>/dev/null | cert_cn
	elif [ -s "$st/client.pem" ] && [ -s "$st/pkey.pem" ]; then
		cert_cn <"$st/client.pem"
	fi
}

# ---- checks after a recovery (append to PROBLEMS) -------------------------------------------
PROBLEMS=()
problem() { PROBLEMS+=("$*"); }

# check_store ST [TPL]: every stored file complete and parseable, no temp files. Keys and
# certificates byte-identical to those of the template storage TPL (checked when it was
# made) are not parsed again.
check_store() {
	local st=$1 tpl=${2:-} f n mode v
	local -a json=() signed=()
	[ -d "$st" ] || { problem "no storage directory"; return; }
	for f in "$st"/.[!.]* "$st"/..?*; do
		[ -e "$f" ] || continue
		problem "stray file $(basename "$f")"
	done
	while read -r mode f; do
		n=${f##*/}
		if [ "$f" = "$st" ]; then [ "$mode" = 700 ] || problem "storage mode $mode"; continue; fi
		case $n in
		pkey.pem | ecukey.pem | client.pem | root.crt)
			case $n in *key.pem) [ "$mode" = 600 ] || problem "$n mode $mode" ;; esac
			[ -n "$tpl" ] && cmp -s "$f" "$tpl/$n" && continue ;;
		esac
		v=
		case $n in
		device_id | primary_ecu_serial | primary_ecu_hardware_id | gateway.url | is_registered | sent_*)
			IFS= read -r v <"$f" || [ -n "$v" ] || problem "$n is empty" ;;
		esac
		case $n in
		pkey.pem | ecukey.pem)
			if grep -q '^pkcs11:' "$f"; then :; elif ! openssl pkey -in "$f" -noout 2>/dev/null; then problem "$n is not a private key"; fi ;;
		client.pem | root.crt)
			openssl x509 -in "$f" -noout 2>/dev/null || problem "$n is not a certificate" ;;
		ecukey.pub) [ -s "$f" ] || problem "$n is empty" ;;
		device_id | primary_ecu_serial | primary_ecu_hardware_id)
			[[ $v =~ ^[A-Za-z0-9._:-]+$ ]] || problem "$n is not a plain value: ${v:0:80}" ;;
		gateway.url) [[ $v == https://* ]] || problem "$n does not hold a URL" ;;
		is_registered) [ "$v" = 1 ] || problem "$n holds '${v:0:20}'" ;;
		sent_*) [[ $v =~ ^[0-9a-f]{64}$ ]] || problem "$n is not a sha256: ${v:0:80}" ;;
		director_*.json | image_*.json) signed+=("$f") ;;
		installed_target | pending_target | install_report | events.json) json+=("$f") ;;
		creds.pending) problem "creds.pending left after a successful run" ;;
		journal.jsonl)
			jq -c . "$f" >/dev/null 2>&1 || problem "journal.jsonl has a line that is not JSON"
			"$build/otad-replay" "$f" >/dev/null 2>&1 || problem "journal.jsonl does not replay" ;;
		*) # a file this script does not know: JSON must parse
			IFS= read -r -n1 v <"$f"
			case $v in '{' | '[') json+=("$f") ;; esac ;;
		esac
	done < <(stat -c '%a %n' "$st" "$st"/* 2>/dev/null)
	# one jq for all, then one per file only to name a broken one
	if [ ${#signed[@]} -gt 0 ] && ! jq -s -e 'all(.signed and .signatures)' "${signed[@]}" >/dev/null 2>&1; then
		for f in "${signed[@]}"; do
			jq -e '.signed and .signatures' "$f" >/dev/null 2>&1 || problem "${f##*/} is not signed metadata"
		done
	fi
	if [ ${#json[@]} -gt 0 ] && ! jq . "${json[@]}" >/dev/null 2>&1; then
		for f in "${json[@]}"; do jq . "$f" >/dev/null 2>&1 || problem "${f##*/} is not JSON"; done
	fi
	if [ -s "$st/client.pem" ] && [ -s "$st/pkey.pem" ] &&
		! { [ -n "$tpl" ] && cmp -s "$st/client.pem" "$tpl/client.pem" && cmp -s "$st/pkey.pem" "$tpl/pkey.pem"; }; then
		[ "$(openssl x509 -in "$st/client.pem" -noout -pubkey 2>/dev/null | sha256sum)" = \
			"$(openssl pkey -in "$st/pkey.pem" -pubout 2>/dev/null | sha256sum)" ] ||
			problem "pkey.pem does not match client.pem"
	fi
}

# check_images DIR: no .part file, no leftover of an interrupted install.
check_images() {
	local im=$1 f
	[ -d "$im" ] || return 0
	for f in "$im"/*.part "$im"/.[!.]* "$im"/installed/.[!.]*; do
		[ -e "$f" ] || [ -L "$f" ] || continue
		problem "leftover $(realpath -s --relative-to="$im" "$f")"
	done
}

# check_update UUID CORR TARGET DEV: the server has the OK report for CORR, the device
# records TARGET installed, the assignment is finished.
check_update() {
	local uuid=$1 corr=$2 target=$3 dev=$4 line
	while IFS= read -r line; do
		[ "$line" = found ] || problem "$line"
	done < <(srv devices "$FLEET" --json | jq -r --arg u "$uuid" --arg c "$corr" --arg t "$target" '
		(map(select(.uuid==$u)) | if length==1 then empty else "the server lists the device \(length) times" end),
		(.[] | select(.uuid==$u) | "found",
		 (.installation_report | if .correlation_id==$c and .success==true and .code=="OK" then empty
		  else "server report: \(tojson)" end),
		 (if .installed_target==$t then empty else "server sees \(.installed_target|tojson) installed, not \($t)" end),
		 (if .assignment==null then empty else "assignment not finished" end))')
	check_store "$dev/storage" "$WORK/tpl-$(kind "$PHASE")/storage"
	[ "$(jq -r .name "$dev/storage/installed_target" 2>/dev/null)" = "$target" ] ||
		problem "installed_target is not $target"
	[ ! -e "$dev/storage/pending_target" ] || problem "pending_target left"
	[ ! -e "$dev/storage/install_report" ] || problem "install_report not sent"
}

# ---- running otad -----------------------------------------------------------------------
# otad_run DEV LOG [env...]: otad once, in the foreground; exit status in RC.
otad_run() {
	local dev=$1 log=$2
	shift 2
	# in a subshell that does not exec it, so that bash reports no "Killed" for it
	(env "$@" timeout 300 "$build/otad" -c "$dev/sota.toml" --retry-cap 1 --retries 4 once 2>>"$log"; exit $?) 2>/dev/null
	RC=$?
}

# otad_bg DEV LOG: otad once in the background, leader of its own process group (PID).
otad_bg() {
	setsid "$build/otad" -c "$1/sota.toml" --retry-cap 1 --retries 4 once 2>>"$2" &
	PID=$!
}

# recover DEV: otad once until it succeeds (3 tries); false if it never does.
recover() {
	local dev=$1 i
	for i in 1 2 3; do
		otad_run "$dev" "$dev/log.recover"
		[ $RC = 0 ] && return 0
		echo "== recovery attempt $i: exit $RC" >>"$dev/log.recover"
	done
	problem "otad once did not succeed in 3 restarts (last exit $RC): $(grep -E 'ERROR|error' "$dev/log.recover" | tail -n1 | head -c 200)"
	return 1
}

# op_name LOG: the store op a seam kill hit, as "N write NAME (how)".
op_name() {
	local op how
	op=$(grep -o 'store op [0-9]*: .*' "$1" | tail -n1 | sed "s/^store op //; s/: / /")
	how=$(grep -o 'SIGKILL at store op [0-9]* (.*)' "$1" | tail -n1 | sed 's/.*(\(.*\))/\1/')
	echo "$op${how:+ ($how)}"
}

# ---- fleet, targets, templates ----------------------------------------------------------
new_fleet "$FLEET" || die "ota-server init failed"
start_server "$FLEET" --quiet || die "ota-server did not start"

mk_archive() { # mk_archive OUT TEXT NFILES
	local d
	d=$(mktemp -d "$WORK/arc.XXXXXX")
	mkdir -p "$d/app/data"
	echo "$2" >"$d/app/version.txt"
	for i in $(seq 1 "$3"); do head -c 20000 /dev/urandom >"$d/app/data/f$i.bin"; done
	tar -czf "$1" -C "$d" app
	mv "$d" "$1.tree"
}
head -c 100000 /dev/urandom >"$WORK/small.bin"
head -c $((big_mib * 1024 * 1024)) /dev/urandom >"$WORK/big.bin"
mk_archive "$WORK/app-1.tgz" "version one" 20
mk_archive "$WORK/app-2.tgz" "version two" $NFILES
srv add-target "$FLEET" "$WORK/small.bin" --name small.bin --version s1 --hwid test-board >/dev/null &&
	srv add-target "$FLEET" "$WORK/big.bin" --name big.bin --version b1 --hwid test-board >/dev/null &&
	srv add-target "$FLEET" "$WORK/app-1.tgz" --name app-1.tgz --version 1.0 --hwid test-board >/dev/null &&
	srv add-target "$FLEET" "$WORK/app-2.tgz" --name app-2.tgz --version 2.0 --hwid test-board >/dev/null ||
	die "ota-server add-target failed"

cat >"$WORK/install.sh" <<'EOF'
#!/bin/sh
# the campaign's install command: slow, idempotent, atomic (copy, then rename)
d=$(dirname "$(dirname "$1")")
echo "start $$" >>"$d/cmd.log"
sleep "$(cat "$d/cmd.sleep" 2>/dev/null || echo 0)"
cp "$1" "$d/fw.new" && mv "$d/fw.new" "$d/fw.installed" || exit 1
echo "done $$" >>"$d/cmd.log"
exit "$(cat "$d/cmd.exit" 2>/dev/null || echo 0)"
EOF
chmod +x "$WORK/install.sh"

# pacman_lines PHASE DEV: the config lines of a phase's device.
pacman_lines() {
	case $1 in
	archive) printf '%s\n' "[pacman]" 'type = "archive"' "images_path = \"$2/images\"" ;;
	command) printf '%s\n' "[pacman]" 'type = "command"' "images_path = \"$2/images\"" \
		"install_command = \"$WORK/install.sh\"" "[bootloader]" \
		"reboot_sentinel_dir = \"$2/run\"" "reboot_command = \"true\"" ;;
	*) printf '%s\n' "[pacman]" 'type = "none"' "images_path = \"$2/images\"" ;;
	esac
}
# config PHASE DEV: a device directory with its sota.toml.
config() {
	local lines
	mapfile -t lines < <(pacman_lines "$1" "$2")
	device_config "$2" "$FLEET/credentials.zip" "${lines[@]}"
}

# Templates: one provisioned device per kind of install (none: the metadata and download
# phases; archive, with app-1 installed; command), each one device on the server.
kind() { case $1 in archive | command) echo "$1" ;; *) echo none ;; esac; }
declare -A TPL_UUID
make_template() {
	local k=$1 t=$WORK/tpl-$1
	config "$k" "$t"
	otad_run "$t" "$t/log"
	[ $RC = 0 ] || { cat "$t/log" >&2; die "template $k: provisioning failed"; }
	TPL_UUID[$k]=$(cert_cn <"$t/storage/client.pem")
	if [ "$k" = archive ]; then
		srv assign "$FLEET" --device "${TPL_UUID[$k]}" --target app-1.tgz >/dev/null || die "assign app-1"
		otad_run "$t" "$t/log"
		[ $RC = 0 ] && [ "$(readlink "$t/images/installed/current")" = 1.0 ] ||
			{ cat "$t/log" >&2; die "template archive: installing app-1 failed"; }
	fi
	PROBLEMS=()
	check_store "$t/storage"
	[ ${#PROBLEMS[@]} = 0 ] || die "template $k: $(IFS=';'; echo "${PROBLEMS[*]}")"
}
# clone PHASE DEV: a copy of the phase's template (same identity, same server device).
clone() {
	local t
	t=$WORK/tpl-$(kind "$1")
	config "$1" "$2"
	cp -a "$t/storage" "$2/storage"
	[ -d "$t/images" ] && cp -a "$t/images" "$2/images"
	cp "$t/credentials.zip" "$2/credentials.zip"
	echo 0 >"$2/cmd.exit"
}
uuid_of() { echo "${TPL_UUID[$(kind "$1")]}"; }
# assign PHASE TARGET: a new assignment (new correlation ID) for the phase's template device.
assign() {
	CORR=urn:kill-campaign:$RANDOM$RANDOM$RANDOM
	srv assign "$FLEET" --device "$(uuid_of "$1")" --target "$2" --correlation-id "$CORR" >/dev/null
}

# calibrate PHASE TARGET: the store ops of one uninterrupted update cycle, into OPS_<phase>
# (one "write NAME"/"remove NAME" per op).
declare -A NOPS FIRST_INSTALL_OP FIRST_ENTRY_OP LAST_ENTRY_OP
calibrate() {
	local phase=$1 target=$2 dev=$WORK/cal-$1 ops
	clone "$phase" "$dev"
	assign "$phase" "$target" || die "assign $target"
	otad_run "$dev" "$dev/log" OTAD_TEST_KILL_AT_WRITE=0
	[ $RC = 0 ] || { cat "$dev/log" >&2; die "calibration of $phase failed"; }
	ops=$(grep -c 'otad-test: store op' "$dev/log")
	NOPS[$phase]=$ops
	FIRST_INSTALL_OP[$phase]=$(grep 'otad-test: store op [0-9]*: \(step install-unpacked\|write installed_target\|write pending_target\)' "$dev/log" | head -n1 |
		sed 's/.*store op \([0-9]*\):.*/\1/')
	[ -n "${FIRST_INSTALL_OP[$phase]}" ] || FIRST_INSTALL_OP[$phase]=1
	FIRST_ENTRY_OP[$phase]=$(grep -o 'store op [0-9]*: step install-entry' "$dev/log" | head -n1 | grep -o '[0-9]*')
	LAST_ENTRY_OP[$phase]=$(grep -o 'store op [0-9]*: step install-entry' "$dev/log" | tail -n1 | grep -o '[0-9]*')
	rm -rf "$dev"
}

declare -A want
for p in "${phase_list[@]}"; do want[$p]=1; done
say "seed $seed, $points points, phases ${phases}, build $build, work $WORK"
t0=$(date +%s)
W_PROV=0
if [ -n "${want[provision]:-}" ]; then
	d=$WORK/cal-prov
	config provision "$d"
	otad_run "$d" "$d/log" OTAD_TEST_KILL_AT_WRITE=0
	[ $RC = 0 ] || { cat "$d/log" >&2; die "calibration of provisioning failed"; }
	W_PROV=$(grep -c 'otad-test: store op' "$d/log")
	rm -rf "$d"
fi
declare -A kinds
for p in "${phase_list[@]}"; do [ "$p" = provision ] || kinds[$(kind "$p")]=1; done
for k in "${!kinds[@]}"; do make_template "$k"; done
[ -n "${want[metadata]:-}" ] && calibrate metadata small.bin
[ -n "${want[archive]:-}" ] && calibrate archive app-2.tgz
if [ -n "${want[command]:-}" ]; then
	calibrate command small.bin
	# the reboot completion: the ops of the first run after the reboot
	d=$WORK/cal-reboot
	clone command "$d"
	echo 100 >"$d/cmd.exit"
	assign command small.bin
	otad_run "$d" "$d/log"
	[ $RC = 0 ] && [ -e "$d/storage/pending_target" ] || { cat "$d/log" >&2; die "calibration: exit 100 did not leave a pending target"; }
	rm -rf "$d/run"
	otad_run "$d" "$d/log2" OTAD_TEST_KILL_AT_WRITE=0
	[ $RC = 0 ] || { cat "$d/log2" >&2; die "calibration of the reboot completion failed"; }
	NOPS[reboot]=$(grep -c 'otad-test: store op' "$d/log2")
	rm -rf "$d"
fi
say "calibrated in $(($(date +%s) - t0)) s: provisioning ${W_PROV} store ops; update cycle ops: metadata ${NOPS[metadata]:--}, archive ${NOPS[archive]:--} (entries ${FIRST_ENTRY_OP[archive]:--}..${LAST_ENTRY_OP[archive]:--}, install from ${FIRST_INSTALL_OP[archive]:--}), command ${NOPS[command]:--} (install from ${FIRST_INSTALL_OP[command]:--}), reboot completion ${NOPS[reboot]:--}"

# ---- the points -------------------------------------------------------------------------
declare -A N_POINTS N_KILLS N_RECOVERED N_MISSED N_FAILED
ORPHANS=0 RESUMED=0
FAIL_LINES=()

# seam_kill DEV N AFTER: otad once with the seam at op N; sets KILLED (1/0) and WHAT.
seam_kill() {
	local dev=$1 n=$2 after=$3
	otad_run "$dev" "$dev/log.kill" OTAD_TEST_KILL_AT_WRITE="$n" OTAD_TEST_KILL_AFTER="$after"
	WHAT="op $(op_name "$dev/log.kill")"
	KILLED=0
	if [ $RC = 137 ]; then KILLED=1; elif [ $RC != 0 ]; then problem "the run to kill exited $RC"; fi
}

exec {NAP_FD}<> <(:) # a pipe nobody writes to: read -t on it waits without a process
# watch_kill DEV COND GROUP: otad in the background, SIGKILLed once COND (a shell command)
# holds; GROUP=1 kills its whole process group. KILLED=1 when that happened.
watch_kill() {
	local dev=$1 cond=$2 group=$3 i
	otad_bg "$dev" "$dev/log.kill"
	KILLED=0
	for ((i = 0; i < 60000; i++)); do
		if ! kill -0 "$PID" 2>/dev/null; then break; fi
		if eval "$cond"; then
			if [ "$group" = 1 ]; then kill -9 -- "-$PID" 2>/dev/null; else kill -9 "$PID" 2>/dev/null; fi
			KILLED=1
			break
		fi
		read -r -t 0.002 -u "$NAP_FD" _ # a sleep without a fork
	done
	wait "$PID" 2>/dev/null
	RC=$?
	if [ $KILLED = 1 ] && [ $RC != 137 ]; then KILLED=0; fi # it ended on its own first
	if [ $KILLED = 0 ] && [ $RC != 0 ]; then problem "the run to kill exited $RC"; fi
}

point_provision() {
	local dev=$1 n after before mid afterc uuid0 uuid1 held=0 f
	rnd_to "$W_PROV"; n=$((R + 1))
	rnd_to 2; after=$R
	config provision "$dev"
	before=$(count_devices)
	seam_kill "$dev" "$n" "$after"
	[ $KILLED = 1 ] || return
	uuid0=$(held_uuid "$dev/storage")
	[ -n "$uuid0" ] && held=1
	mid=$(count_devices)
	WHAT="$WHAT, credentials held: $held"
	recover "$dev" || return
	afterc=$(count_devices)
	uuid1=$(cert_cn <"$dev/storage/client.pem")
	if [ $held = 1 ]; then
		[ "$uuid1" = "$uuid0" ] || problem "device UUID changed from $uuid0 to $uuid1"
		[ "$afterc" = "$mid" ] || problem "registered again although credentials were stored ($mid -> $afterc devices)"
	else
		[ "$afterc" = $((mid + 1)) ] || problem "registration after the restart: $mid -> $afterc devices"
		if [ "$mid" != "$before" ]; then
			# the server registered the device but the reply was not stored yet: the only
			# kill that may leave an orphan is the one writing creds.pending
			if grep -q 'store op [0-9]*: write creds.pending' <(tail -n2 "$dev/log.kill"); then
				ORPHANS=$((ORPHANS + 1))
				WHAT="$WHAT, orphan registration"
			else
				problem "registered before the kill ($before -> $mid devices) but no credentials were stored"
			fi
		fi
	fi
	unzip -Z1 "$dev/credentials.zip" 2>/dev/null | grep -qx autoprov_credentials.p12 && problem "fleet key left in credentials.zip"
	for f in "$dev"/.credentials.zip.tmp.*; do
		[ -e "$f" ] && problem "$(basename "$f") (a half-written copy of the zip) left beside credentials.zip"
	done
	check_store "$dev/storage"
}

point_metadata() {
	local dev=$1 n after
	rnd_to "${NOPS[metadata]}"; n=$((R + 1))
	rnd_to 2; after=$R
	clone metadata "$dev"
	assign metadata small.bin
	seam_kill "$dev" "$n" "$after"
	[ $KILLED = 1 ] || return
	[ "$(cert_cn <"$dev/storage/client.pem")" = "$(uuid_of metadata)" ] || problem "credentials changed by the kill"
	recover "$dev" || return
	check_update "$(uuid_of metadata)" "$CORR" small.bin "$dev"
	cmp -s "$WORK/small.bin" "$dev/images/$(sha256sum <"$WORK/small.bin" | cut -c1-64)" || problem "the image differs from the target"
}

point_download() {
	local dev=$1 size len part final got mode
	len=$(stat -c %s "$WORK/big.bin")
	rnd_to 2; mode=$R
	rnd_to $((len + 1)); size=$R
	clone download "$dev"
	assign download big.bin
	final=$dev/images/$(sha256sum <"$WORK/big.bin" | cut -c1-64)
	part=$final.part
	if [ $mode = 0 ]; then # the seam: exactly size bytes in the .part file
		otad_run "$dev" "$dev/log.kill" OTAD_TEST_KILL_AT_BYTE="$size"
		KILLED=0
		if [ $RC = 137 ]; then KILLED=1; elif [ $RC != 0 ]; then problem "the run to kill exited $RC"; fi
		got=$(stat -c %s "$part" 2>/dev/null || echo none)
		WHAT="seam at byte $size of $len (.part: $got)"
		[ $KILLED = 0 ] || [ "$got" = "$size" ] || problem "the seam left $got bytes, not $size"
	else # from outside, once the .part file holds size bytes (or the image is complete)
		watch_kill "$dev" "[ \"\$(stat -c %s '$part' 2>/dev/null || echo 0)\" -ge $size ] || [ -e '$final' ]" 0
		got=$(stat -c %s "$part" 2>/dev/null || echo none)
		WHAT="kill -9 at .part >= $size of $len bytes (had $got$([ -e "$final" ] && echo ", final file present"))"
	fi
	[ $KILLED = 1 ] || return
	recover "$dev" || return
	if [ "$got" != none ] && [ "$got" -gt 0 ] && [ "$got" -lt "$len" ]; then
		if grep -q "resuming big.bin at byte [1-9]" "$dev/log.recover"; then RESUMED=$((RESUMED + 1)); else
			grep -q "restarting at byte 0\|starting over" "$dev/log.recover" ||
				problem "the restart did not resume the .part file of $got bytes"
		fi
	fi
	check_update "$(uuid_of download)" "$CORR" big.bin "$dev"
	cmp -s "$WORK/big.bin" "$final" || problem "the image differs from the target"
	check_images "$dev/images"
}

point_archive() {
	local dev=$1 mode fresh k delay n after tmpglob inst
	rnd_to 3; mode=$R
	rnd_to 2; fresh=$R
	clone archive "$dev"
	inst=$dev/images/installed
	if [ $fresh = 1 ]; then rm -rf "$dev/images" "$dev/storage/installed_target"; fi
	assign archive app-2.tgz
	case $mode in
	0) # during the unpack: after entry k of the archive is written
		local e0=${FIRST_ENTRY_OP[archive]} e1=${LAST_ENTRY_OP[archive]}
		rnd_to $((e1 - e0 + 1)); n=$((e0 + R))
		seam_kill "$dev" "$n" 0
		WHAT="unpacking, after entry $((n - e0 + 1)) of $((e1 - e0 + 1)) (op $n)" ;;
	1) # a random delay after the temp tree appeared (unpacking, syncing, renaming...)
		rnd_to 80; delay=$R
		watch_kill "$dev" "[ -d '$inst/2.0' ] || ls -d '$inst'/.2.0.new.* >/dev/null 2>&1 && sleep 0.0$(printf %02d "$delay")" 0
		WHAT="${delay} ms after the tree appeared" ;;
	2) # a store op from the install on
		local from=${FIRST_INSTALL_OP[archive]}
		rnd_to $((NOPS[archive] - from + 1)); n=$((from + R))
		[ $n -ge 1 ] || n=1
		rnd_to 2; after=$R
		seam_kill "$dev" "$n" "$after" ;;
	esac
	WHAT="$([ $fresh = 1 ] && echo "first install" || echo "1.0 installed"), $WHAT"
	[ $KILLED = 1 ] || return
	recover "$dev" || return
	check_update "$(uuid_of archive)" "$CORR" app-2.tgz "$dev"
	[ "$(readlink "$inst/current")" = 2.0 ] || problem "current -> $(readlink "$inst/current"), not 2.0"
	diff -r "$WORK/app-2.tgz.tree" "$inst/2.0" >/dev/null 2>&1 || problem "the 2.0 tree is not complete"
	if [ $fresh = 0 ]; then diff -r "$WORK/app-1.tgz.tree" "$inst/1.0" >/dev/null 2>&1 || problem "1.0 was not kept intact"; fi
	check_images "$dev/images"
}

point_command() {
	local dev=$1 mode n after delay i
	rnd_to 4; mode=$R
	clone command "$dev"
	case $mode in
	0 | 1) # while the install command runs: otad alone (the command ends as an orphan),
		# or its process group (a power cut)
		rnd_to 300; delay=$R
		echo 0.3 >"$dev/cmd.sleep"
		assign command small.bin
		watch_kill "$dev" "grep -q start '$dev/cmd.log' 2>/dev/null && sleep 0.$(printf %03d "$delay")" "$mode"
		WHAT="$([ $mode = 1 ] && echo "process group" || echo "otad alone") killed ${delay} ms into the install command"
		[ $KILLED = 1 ] || return
		if [ $mode = 0 ]; then # let the orphan finish (systemd KillMode=process)
			for ((i = 0; i < 500; i++)); do grep -q done "$dev/cmd.log" && break; sleep 0.01; done
		fi
		rm -f "$dev/cmd.sleep" ;;
	2) # a store op from the install on
		local from=${FIRST_INSTALL_OP[command]}
		rnd_to $((NOPS[command] - from + 2)); n=$((from - 1 + R))
		[ $n -ge 1 ] || n=1
		rnd_to 2; after=$R
		assign command small.bin
		seam_kill "$dev" "$n" "$after"
		[ $KILLED = 1 ] || return ;;
	3) # the reboot completion: exit 100, the sentinel gone, killed at store op n
		rnd_to "${NOPS[reboot]}"; n=$((R + 1))
		rnd_to 2; after=$R
		echo 100 >"$dev/cmd.exit"
		assign command small.bin
		otad_run "$dev" "$dev/log.kill"
		[ $RC = 0 ] && [ -e "$dev/storage/pending_target" ] || { problem "exit 100 did not leave a pending target (exit $RC)"; return; }
		rm -rf "$dev/run"
		seam_kill "$dev" "$n" "$after"
		WHAT="reboot completion, $WHAT"
		[ $KILLED = 1 ] || return ;;
	esac
	recover "$dev" || return
	check_update "$(uuid_of command)" "$CORR" small.bin "$dev"
	cmp -s "$WORK/small.bin" "$dev/fw.installed" || problem "the installed firmware differs"
	[ $mode = 3 ] && [ "$(grep -c start "$dev/cmd.log")" != 1 ] && problem "the install command ran again after the reboot"
}

run_point() {
	local k=$1 phase=$2 dev=$WORK/pt$1 status
	PHASE=$phase
	RANDOM=$((seed * 7919 + k))
	PROBLEMS=() WHAT= KILLED=0
	"point_$phase" "$dev"
	N_POINTS[$phase]=$((${N_POINTS[$phase]:-0} + 1))
	if [ ${#PROBLEMS[@]} -gt 0 ]; then
		[ $KILLED = 1 ] && N_KILLS[$phase]=$((${N_KILLS[$phase]:-0} + 1))
		N_FAILED[$phase]=$((${N_FAILED[$phase]:-0} + 1))
		failures=$((failures + 1))
		status=FAIL
		local line="point $k ($phase: $WHAT): $(IFS=';'; echo "${PROBLEMS[*]}") -- reproduce: scripts/kill_campaign.sh --seed $seed --only $k --phases $phases --big-mib $big_mib --files $NFILES (logs: $dev)"
		FAIL_LINES+=("$line")
		echo "FAIL: $line" >&2
	elif [ $KILLED = 1 ]; then
		N_KILLS[$phase]=$((${N_KILLS[$phase]:-0} + 1))
		N_RECOVERED[$phase]=$((${N_RECOVERED[$phase]:-0} + 1))
		status=ok
		rm -rf "$dev"
	else
		N_MISSED[$phase]=$((${N_MISSED[$phase]:-0} + 1))
		status=missed
		rm -rf "$dev"
	fi
	[ "$verbose" = 1 ] && echo "point $k $phase: $status ($WHAT)"
	return 0
}

nph=${#phase_list[@]}
t1=$(date +%s)
if [ -n "$only" ]; then
	run_point "$only" "${phase_list[$(((only - 1) % nph))]}"
else
	for ((k = 1; k <= points; k++)); do
		run_point "$k" "${phase_list[$(((k - 1) % nph))]}"
		if [ "$verbose" = 0 ] && [ $((k % 50)) = 0 ]; then say "$k of $points points, $failures failed"; fi
	done
fi
secs=$(($(date +%s) - t1))

printf '%-10s %7s %7s %10s %7s %9s\n' phase points killed recovered failed "not hit"
tp=0 tk=0 tr=0 tf=0 tm=0
for p in "${phase_list[@]}"; do
	a=${N_POINTS[$p]:-0} b=${N_KILLS[$p]:-0} c=${N_RECOVERED[$p]:-0} e=${N_FAILED[$p]:-0} m=${N_MISSED[$p]:-0}
	printf '%-10s %7d %7d %10d %7d %9d\n' "$p" "$a" "$b" "$c" "$e" "$m"
	tp=$((tp + a)) tk=$((tk + b)) tr=$((tr + c)) tf=$((tf + e)) tm=$((tm + m))
done
printf '%-10s %7d %7d %10d %7d %9d\n' total "$tp" "$tk" "$tr" "$tf" "$tm"
echo "seed $seed; ${secs} s for the points; orphan registrations (reply lost by the kill): $ORPHANS; downloads resumed from a .part file: $RESUMED"
for l in "${FAIL_LINES[@]}"; do echo "FAIL: $l"; done
[ "$failures" = 0 ]
