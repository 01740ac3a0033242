#!/usr/bin/env bash
# Installing for real, end to end against ota-server: [pacman] type "archive" (a tar.gz
# unpacked under images_path/installed/<version>, `current` switched, the previous version
# kept; an archive that climbs out with ../ refused), type "command" (exit 0 installed,
# exit 3 failed, exit 100 installed pending a reboot that the next run completes), `otad
# check`, an interrupted download resumed, and the events of every attempt on the server
# (also when the server answers 413 or 404 to them).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
setup_test
new_fleet "$WORK/fleet"
start_server "$WORK/fleet"
srv() { "$OTAD_BIN/server/ota-server" "$@"; }
# the server's view of a device (by device ID)
dev_json() { srv devices "$WORK/fleet" --json | jq --arg id "$1" '.[] | select(.device_id==$id)'; }
# deploy NAME FILE VERSION DEVICE-ID: a new target, assigned to the device
deploy() {
	srv add-target "$WORK/fleet" "$2" --name "$1" --version "$3" --hwid test-board >/dev/null
	srv assign "$WORK/fleet" --device "$4" --target "$1" >/dev/null
}
# last_events ID N: the types of the device's last N events, space-separated
last_events() { dev_json "$1" | jq -r --argjson n "$2" '.events[-$n:] | map(.type) | join(" ")'; }
report_code() { dev_json "$1" | jq -r '.installation_report.code'; }
# a tar.gz of app/hello.txt holding TEXT: mk_app FILE TEXT
mk_app() {
	local d
	d=$(mktemp -d "$WORK/app.XXXXXX")
	mkdir -p "$d/app"
	echo "$2" >"$d/app/hello.txt"
	tar -czf "$1" -C "$d" app
}

# ---- pacman archive -----------------------------------------------------------------------
a=$WORK/a
device_config "$a" "$WORK/fleet/credentials.zip" "[pacman]" 'type = "archive"' "images_path = \"$a/images\""
oa() { "$OTAD_BIN/otad" -c "$a/sota.toml" --retry-cap 1 "$@"; }
oa once 2>"$WORK/a-log0" || { cat "$WORK/a-log0"; fail "archive device: first cycle"; }
aid=$(cat "$a/storage/device_id")
out=$(oa check 2>"$WORK/a-check0") || { cat "$WORK/a-check0"; fail "otad check, nothing assigned"; }
[ "$out" = "no update" ] || fail "otad check said '$out' with nothing assigned"

mk_app "$WORK/app-1.tgz" "version one"
deploy app-1.tgz "$WORK/app-1.tgz" 1.0 "$aid"
out=$(oa check 2>"$WORK/a-check1") || { cat "$WORK/a-check1"; fail "otad check"; }
grep -q "^update available: app-1.tgz$" <<<"$out" || fail "otad check printed: $out"
grep -q "^version: *1.0$" <<<"$out" || fail "otad check: no version in: $out"
grep -q "^length: *$(stat -c %s "$WORK/app-1.tgz") bytes$" <<<"$out" || fail "otad check: wrong length in: $out"
oa check --json 2>/dev/null | jq -e '.update_available and .name=="app-1.tgz" and .version=="1.0"' >/dev/null ||
	fail "otad check --json"
[ -z "$(ls -A "$a/images" 2>/dev/null)" ] || fail "otad check downloaded something: $(ls "$a/images")"
[ "$(report_code "$aid")" = null ] || fail "otad check sent a report"
pass "otad check: prints the verified update (name, version, length), downloads nothing"

oa once 2>"$WORK/a-log1" || { cat "$WORK/a-log1"; fail "archive install 1.0"; }
[ "$(cat "$a/images/installed/1.0/app/hello.txt")" = "version one" ] || fail "1.0 not unpacked"
[ "$(readlink "$a/images/installed/current")" = 1.0 ] || fail "current does not point at 1.0"
[ "$(report_code "$aid")" = OK ] || fail "1.0: report $(report_code "$aid")"
[ "$(last_events "$aid" 4)" = "EcuDownloadStarted EcuDownloadCompleted EcuInstallationStarted EcuInstallationCompleted" ] ||
	fail "1.0: events $(last_events "$aid" 4)"
corr=$(dev_json "$aid" | jq -r '.installation_report.correlation_id')
dev_json "$aid" | jq -e --arg c "$corr" '.events[-4:] | all(.correlation_id==$c) and .[1].success==true and .[3].success==true and .[0].success==null' >/dev/null ||
	{ dev_json "$aid" | jq .events; fail "1.0: events do not carry the correlation ID and results"; }
dev_json "$aid" | jq -e --arg s "$(cat "$a/storage/primary_ecu_serial")" '.events[-1].ecu==$s' >/dev/null ||
	fail "1.0: the events do not name the primary ECU"
[ ! -e "$a/storage/events.json" ] || fail "1.0: events left in the queue"
pass "archive 1.0 unpacked into images/installed/1.0, current -> 1.0; events on the server"

mk_app "$WORK/app-2.tgz" "version two"
deploy app-2.tgz "$WORK/app-2.tgz" 2.0 "$aid"
oa once 2>"$WORK/a-log2" || { cat "$WORK/a-log2"; fail "archive install 2.0"; }
[ "$(readlink "$a/images/installed/current")" = 2.0 ] || fail "current does not point at 2.0"
[ "$(cat "$a/images/installed/current/app/hello.txt")" = "version two" ] || fail "2.0 not unpacked"
[ "$(cat "$a/images/installed/1.0/app/hello.txt")" = "version one" ] || fail "1.0 was not kept"
pass "archive 2.0: current -> 2.0, 1.0 kept for rollback"

mkdir -p "$WORK/evil-src"
echo "owned" >"$WORK/evil-src/evil"
tar -czPf "$WORK/evil.tgz" -C "$WORK/evil-src" --transform 's,^evil$,../evil,' evil 2>/dev/null
tar -tzf "$WORK/evil.tgz" 2>/dev/null | grep -qx '../evil' || fail "could not make the ../evil archive"
deploy evil.tgz "$WORK/evil.tgz" 6.6.6 "$aid"
if oa once 2>"$WORK/a-log3"; then fail "the ../evil archive was installed"; fi
grep -q "'..' in the path" "$WORK/a-log3" || { cat "$WORK/a-log3"; fail "no refusal of ../evil in the log"; }
[ "$(report_code "$aid")" = INSTALL_FAILED ] || fail "evil: report $(report_code "$aid")"
[ "$(readlink "$a/images/installed/current")" = 2.0 ] || fail "evil: current moved"
found=$(find "$WORK" -name evil -not -path "$WORK/evil-src/*")
[ -z "$found" ] || fail "evil: written outside the tree: $found"
[ ! -e "$a/images/installed/6.6.6" ] || fail "evil: a version directory was left"
dev_json "$aid" | jq -e '.events[-1] | .type=="EcuInstallationCompleted" and .success==false' >/dev/null ||
	fail "evil: no failed EcuInstallationCompleted event"
pass "a ../evil archive: refused, INSTALL_FAILED reported, nothing written outside"

# ---- pacman command -----------------------------------------------------------------------
c=$WORK/c
cat >"$WORK/install.sh" <<EOF
#!/bin/sh
echo "\$1|\$2|\$OTAD_TARGET_VERSION" >>"$WORK/install.log"
exit \$(cat "$WORK/install.exit")
EOF
chmod +x "$WORK/install.sh"
device_config "$c" "$WORK/fleet/credentials.zip" "[pacman]" 'type = "command"' \
	"images_path = \"$c/images\"" "install_command = \"$WORK/install.sh\"" \
	"[bootloader]" "reboot_sentinel_dir = \"$WORK/run\"" "reboot_command = \"touch $WORK/rebooted\""
oc() { "$OTAD_BIN/otad" -c "$c/sota.toml" --retry-cap 1 "$@"; }
oc once 2>"$WORK/c-log0" || { cat "$WORK/c-log0"; fail "command device: first cycle"; }
cid=$(cat "$c/storage/device_id")

head -c 100000 /dev/urandom >"$WORK/fw-c1.bin"
deploy fw-c1.bin "$WORK/fw-c1.bin" 1 "$cid"
echo 0 >"$WORK/install.exit"
oc once 2>"$WORK/c-log1" || { cat "$WORK/c-log1"; fail "command exit 0"; }
tail -n1 "$WORK/install.log" | grep -q "^$c/images/[0-9a-f]*|fw-c1.bin|1$" || fail "install command arguments: $(tail -n1 "$WORK/install.log")"
[ "$(report_code "$cid")" = OK ] || fail "exit 0: report $(report_code "$cid")"
jq -e '.name=="fw-c1.bin"' "$c/storage/installed_target" >/dev/null || fail "exit 0: not recorded"
pass "install command, exit 0: installed, OK reported"

head -c 100000 /dev/urandom >"$WORK/fw-c2.bin"
deploy fw-c2.bin "$WORK/fw-c2.bin" 2 "$cid"
echo 3 >"$WORK/install.exit"
if oc once 2>"$WORK/c-log2"; then fail "command exit 3: the cycle succeeded"; fi
[ "$(report_code "$cid")" = INSTALL_FAILED ] || fail "exit 3: report $(report_code "$cid")"
dev_json "$cid" | jq -e '.installation_report.description | test("exited with code 3")' >/dev/null ||
	fail "exit 3: the report does not say why"
jq -e '.name=="fw-c1.bin"' "$c/storage/installed_target" >/dev/null || fail "exit 3: recorded as installed"
pass "install command, exit 3: INSTALL_FAILED reported, nothing recorded"

head -c 100000 /dev/urandom >"$WORK/fw-c3.bin"
deploy fw-c3.bin "$WORK/fw-c3.bin" 3 "$cid"
echo 100 >"$WORK/install.exit"
oc once 2>"$WORK/c-log3" || { cat "$WORK/c-log3"; fail "command exit 100"; }
[ "$(report_code "$cid")" = NEED_COMPLETION ] || fail "exit 100: report $(report_code "$cid")"
jq -e '.name=="fw-c3.bin"' "$c/storage/pending_target" >/dev/null || fail "exit 100: no pending target"
jq -e '.name=="fw-c1.bin"' "$c/storage/installed_target" >/dev/null || fail "exit 100: installed before the reboot"
[ -e "$WORK/run/need_reboot" ] || fail "exit 100: no reboot sentinel"
for _ in $(seq 50); do [ -e "$WORK/rebooted" ] && break; sleep 0.1; done
[ -e "$WORK/rebooted" ] || fail "exit 100: the reboot command did not run"
[ "$(last_events "$cid" 2)" = "EcuInstallationStarted EcuInstallationApplied" ] ||
	fail "exit 100: events $(last_events "$cid" 2)"
oc status | grep -q "^pending: *fw-c3.bin" || fail "otad status does not show the pending target"
pass "install command, exit 100: NEED_COMPLETION reported, reboot command run, EcuInstallationApplied"

# the agent restarts, but the sentinel says the board did not reboot: nothing completes,
# and the assigned target is not installed again
oc once 2>"$WORK/c-log4" || { cat "$WORK/c-log4"; fail "restart without a reboot"; }
grep -q "fw-c3.bin is installed and waits for a reboot" "$WORK/c-log4" || { cat "$WORK/c-log4"; fail "no 'waits for a reboot'"; }
[ "$(wc -l <"$WORK/install.log")" = 3 ] || fail "the pending target was installed again"
[ -e "$c/storage/pending_target" ] || fail "completed without a reboot"
pass "restart without a reboot: still pending, not installed again"

rm -rf "$WORK/run" # the reboot empties the sentinel's tmpfs
oc once 2>"$WORK/c-log5" || { cat "$WORK/c-log5"; fail "first run after the reboot"; }
grep -q "the reboot completed the installation" "$WORK/c-log5" || { cat "$WORK/c-log5"; fail "not completed"; }
jq -e '.name=="fw-c3.bin"' "$c/storage/installed_target" >/dev/null || fail "after the reboot: not installed"
[ ! -e "$c/storage/pending_target" ] || fail "after the reboot: still pending"
[ "$(report_code "$cid")" = OK ] || fail "after the reboot: report $(report_code "$cid")"
dev_json "$cid" | jq -e '.installed_target=="fw-c3.bin" and .events[-1].type=="EcuInstallationCompleted" and .events[-1].success==true' >/dev/null ||
	{ dev_json "$cid"; fail "after the reboot: the server does not see fw-c3.bin completed"; }
dev_json "$cid" | jq -e '.assignment==null' >/dev/null || fail "after the reboot: the assignment is not finished"
same_path "$c/storage/journal.jsonl" update_need_reboot
"$OTAD_BIN/otad-replay" "$c/storage/journal.jsonl" >/dev/null || fail "journal replay"
pass "after the reboot: installed, OK reported, EcuInstallationCompleted; journal as the golden"

# ---- an interrupted download resumes; the server refuses a big batch of events ----------
r=$WORK/r
device_config "$r" "$WORK/fleet/credentials.zip" "[pacman]" 'type = "none"' "images_path = \"$r/images\""
or() { "$OTAD_BIN/otad" -c "$r/sota.toml" --retry-cap 1 "$@"; }
or once 2>"$WORK/r-log0" || { cat "$WORK/r-log0"; fail "resume device: first cycle"; }
rid=$(cat "$r/storage/device_id")
head -c 6000000 /dev/urandom >"$WORK/big.bin"
deploy big.bin "$WORK/big.bin" 1 "$rid"
stop_server
start_server "$WORK/fleet" --faults "cut@/repo/targets/big.bin,413@/events"
or once 2>"$WORK/r-log1" || { cat "$WORK/r-log1"; fail "interrupted download"; }
grep -q "resuming big.bin at byte [1-9]" "$WORK/r-log1" || { cat "$WORK/r-log1"; fail "the download did not resume"; }
img=$(ls "$r"/images/* | grep -v '\.part$' | head -n1)
cmp -s "$WORK/big.bin" "$img" || fail "the resumed image differs"
grep -q "HTTP 413" "$WORK/r-log1" || { cat "$WORK/r-log1"; fail "no 413 for the events"; }
[ "$(dev_json "$rid" | jq .events_total)" = 4 ] || fail "413: events lost: $(dev_json "$rid" | jq -c .events)"
pass "cut download resumed with Range, image verified; events resent in halves after 413"

# ---- the server has no /events: the queue is dropped ----------------------------------------
stop_server
start_server "$WORK/fleet" --faults "404@/events"
head -c 1000 /dev/urandom >"$WORK/small.bin"
deploy small.bin "$WORK/small.bin" 2 "$rid"
or once 2>"$WORK/r-log2" || { cat "$WORK/r-log2"; fail "update with 404 on /events"; }
grep -q "HTTP 404" "$WORK/r-log2" || { cat "$WORK/r-log2"; fail "no 404 for the events"; }
[ ! -e "$r/storage/events.json" ] || fail "404: the queue was kept"
[ "$(dev_json "$rid" | jq .events_total)" = 4 ] || fail "404: events arrived anyway"
[ "$(report_code "$rid")" = OK ] || fail "404: the update itself failed"
pass "404 on /events: the queue is dropped, the update goes on"
