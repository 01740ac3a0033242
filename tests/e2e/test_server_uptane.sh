#!/usr/bin/env bash
# ota-server's Uptane repositories, checked from outside: add-target, assign, rotate-root and
# resign sign metadata that python's `cryptography` (OpenSSL) verifies over canonical JSON
# made by python's json module; the server serves it with a device certificate; targets
# download whole and by Range; manifests, events and device data are stored and listed by
# `devices --json`; faults apply to the new paths. The device is made with curl and openssl
# (POST /devices, POST /director/ecus with an Ed25519 ECU key), not with otad.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
setup_test
S="$OTAD_BIN/server/ota-server"
F="$WORK/fleet"
D="$WORK/device"
mkdir -p "$D"

PY=
for p in /usr/bin/python3 python3; do
	if "$p" -c 'import cryptography.hazmat.primitives.asymmetric.ed25519' 2>/dev/null; then PY=$p; break; fi
done
[ -n "$PY" ] || fail "this test needs python3 with the cryptography package (apt install python3-cryptography)"

# ---- an independent verifier ----
cat >"$WORK/tuf.py" <<'PYEOF'
import base64, hashlib, json, sys, time, calendar, urllib.parse
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding

def canon(o):
    return json.dumps(o, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

def load(path):
    raw = open(path, "rb").read()
    return raw, json.loads(raw)

def die(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)

def verify(doc, root, role, what):
    """doc's signatures: a threshold of distinct keys root gives role."""
    keys, r = root["signed"]["keys"], root["signed"]["roles"][role]
    msg = canon(doc["signed"])
    ids = [s["keyid"] for s in doc["signatures"]]
    if len(ids) != len(set(ids)):
        die(f"{what}: duplicate key IDs")
    good = set()
    for s in doc["signatures"]:
        if s["keyid"] not in r["keyids"]:
            continue
        key = keys[s["keyid"]]
        sig = base64.b64decode(s["sig"])
        try:
            if s["method"] == "ed25519":
                assert key["keytype"] == "ed25519"
                ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(key["keyval"]["public"])).verify(sig, msg)
            elif s["method"] == "rsassa-pss-sha256":
                assert key["keytype"] == "rsa"
                pub = serialization.load_pem_public_key(key["keyval"]["public"].encode())
                pub.verify(sig, msg, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())
            else:
                die(f"{what}: unknown method {s['method']}")
        except Exception as e:
            die(f"{what}: signature by {s['keyid'][:12]} does not verify ({e!r})")
        good.add(s["keyid"])
    if len(good) < r["threshold"]:
        die(f"{what}: {len(good)} valid signatures for {role}, threshold {r['threshold']}")

def check_keyids(root, what):
    for kid, key in root["signed"]["keys"].items():
        if hashlib.sha256(canon(key)).hexdigest() != kid:
            die(f"{what}: key ID {kid} is not the sha256 of its canonical key object")

def check_canonical(raw, doc, what):
    if raw != canon(doc):
        die(f"{what}: the served bytes are not canonical JSON")

def expired(doc):
    t = calendar.timegm(time.strptime(doc["signed"]["expires"], "%Y-%m-%dT%H:%M:%SZ"))
    return t <= time.time()

cmd, args = sys.argv[1], sys.argv[2:]
if cmd == "chain":  # chain FILE...: 1.root.json, 2.root.json, ... each verified step by step
    raw, trusted = load(args[0])
    check_canonical(raw, trusted, args[0])
    check_keyids(trusted, args[0])
    verify(trusted, trusted, "root", args[0])
    if trusted["signed"]["version"] != 1 or trusted["signed"]["_type"] != "Root":
        die(f"{args[0]}: not a version 1 root")
    for path in args[1:]:
        raw, new = load(path)
        check_canonical(raw, new, path)
        check_keyids(new, path)
        if new["signed"]["version"] != trusted["signed"]["version"] + 1:
            die(f"{path}: version {new['signed']['version']} does not follow {trusted['signed']['version']}")
        verify(new, trusted, "root", f"{path} (by the old root)")
        verify(new, new, "root", f"{path} (by itself)")
        trusted = new
    print(trusted["signed"]["version"])
elif cmd == "role":  # role ROOT FILE ROLE TYPE: signed by ROLE of ROOT, canonical, _type TYPE
    _, root = load(args[0])
    raw, doc = load(args[1])
    check_canonical(raw, doc, args[1])
    verify(doc, root, args[2], args[1])
    if doc["signed"]["_type"] != args[3]:
        die(f"{args[1]}: _type {doc['signed']['_type']}, expected {args[3]}")
    print("expired" if expired(doc) else "current", doc["signed"]["version"])
elif cmd == "record":  # record PARENT FILE NAME: PARENT's meta[NAME] holds FILE's bytes
    _, parent = load(args[0])
    raw, doc = load(args[1])
    rec = parent["signed"]["meta"][args[2]]
    if rec["version"] != doc["signed"]["version"] or rec["length"] != len(raw) \
            or rec["hashes"]["sha256"] != hashlib.sha256(raw).hexdigest():
        die(f"{args[0]}: its record of {args[2]} does not match {args[1]}")
elif cmd == "match":  # match DIRECTOR IMAGE NAME SERIAL HWID CID: the director target is the image's
    _, d = load(args[0])
    _, i = load(args[1])
    name, serial, hwid, cid = args[2:6]
    dt, it = d["signed"]["targets"][name], i["signed"]["targets"][name]
    if dt["length"] != it["length"] or dt["hashes"] != it["hashes"]:
        die("director and image targets differ in length or hashes")
    if dt["custom"]["ecuIdentifiers"] != {serial: {"hardwareId": hwid}}:
        die(f"ecuIdentifiers: {dt['custom']['ecuIdentifiers']}")
    if hwid not in it["custom"]["hardwareIds"] or d["signed"]["custom"]["correlationId"] != cid:
        die("hardware ID or correlation ID wrong")
elif cmd == "file":  # file IMAGE NAME FILE: the image target describes FILE
    _, i = load(args[0])
    data = open(args[2], "rb").read()
    t = i["signed"]["targets"][args[1]]
    if t["length"] != len(data) or t["hashes"]["sha256"] != hashlib.sha256(data).hexdigest() \
            or t["hashes"]["sha512"] != hashlib.sha512(data).hexdigest():
        die(f"target {args[1]}: length or hashes do not describe {args[2]}")
elif cmd == "quote":  # quote NAME: the URL path of a target, as clients encode it
    print(urllib.parse.quote(args[0], safe="-._~/"))
elif cmd == "ecukey":  # ecukey PEM: a new Ed25519 key; prints the public key in upper-case hex
    k = ed25519.Ed25519PrivateKey.generate()
    open(args[0], "wb").write(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    print(k.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex().upper())
elif cmd == "manifest":  # manifest PEM SERIAL FILEPATH [CID [tamper]]: a signed manifest
    key = serialization.load_pem_private_key(open(args[0], "rb").read(), None)
    serial, filepath = args[1], args[2]
    def sign(signed):
        return {"signatures": [{"keyid": "k", "method": "ed25519", "sig": base64.b64encode(key.sign(canon(signed))).decode()}], "signed": signed}
    ecu = {"attacks_detected": "", "ecu_serial": serial, "installed_image": {"filepath": filepath,
           "fileinfo": {"hashes": {"sha256": hashlib.sha256(b"").hexdigest()}, "length": 0}},
           "previous_timeserver_time": "1970-01-01T00:00:00Z", "timeserver_time": "1970-01-01T00:00:00Z", "report_counter": "1"}
    signed = {"primary_ecu_serial": serial, "ecu_version_manifests": {serial: sign(ecu)}}
    if len(args) > 3 and args[3]:
        signed["installation_report"] = {"content_type": "application/vnd.com.here.otac.installationReport.v1",
            "report": {"correlation_id": args[3], "raw_report": "installed", "result": {"success": True, "code": "OK", "description": "fine"},
                       "items": [{"ecu": serial, "result": {"success": True, "code": "OK", "description": ""}}]}}
    doc = sign(signed)
    if len(args) > 4:  # changed after signing: the signature no longer holds
        doc["signed"]["ecu_version_manifests"][serial]["signed"]["report_counter"] = "2"
    print(json.dumps(doc, indent=1))
else:
    die(f"unknown command {cmd}")
PYEOF
tuf() { "$PY" "$WORK/tuf.py" "$@"; }

# ---- a fleet with a device ----
new_fleet "$F"
[ -s "$F/uptane/image/root.json" ] && [ -s "$F/uptane/director/root.json" ] || fail "init made no Uptane repositories"
[ "$(stat -c %a "$F/uptane/image/keys/root.key")" = 600 ] || fail "the image root key is not mode 0600"
start_server "$F"
U="https://127.0.0.1:$PORT"
curl -sS --cacert "$F/server_ca.pem" --cert "$F/provisioning.pem" --key "$F/provisioning.key" \
	-X POST "$U/devices" -d '{"deviceId":"uptane-dev","ttl":"365"}' -o "$D/dev.p12" -f || fail "POST /devices failed"
openssl pkcs12 -in "$D/dev.p12" -passin pass: -nodes -clcerts -nokeys -out "$D/client.pem" 2>/dev/null
openssl pkcs12 -in "$D/dev.p12" -passin pass: -nodes -nocerts -out "$D/pkey.pem" 2>/dev/null
SERIAL=ecu-serial-1
pub=$(tuf ecukey "$D/ecu.pem")
# dev METHOD PATH [curl options...]: a request as the device; prints the status, body in $WORK/reply
dev() {
	local m=$1 p=$2
	shift 2
	curl -sS -o "$WORK/reply" -w '%{http_code}' --cacert "$F/server_ca.pem" --cert "$D/client.pem" \
		--key "$D/pkey.pem" -X "$m" "$@" "$U$p" || fail "curl $m $p: transport error"
}
# fetch PATH FILE: GETs metadata as the device into FILE, which must answer 200
fetch() {
	local st
	st=$(dev GET "$1")
	[ "$st" = 200 ] || { cat "$WORK/reply" >&2; fail "GET $1: HTTP $st"; }
	cp "$WORK/reply" "$2"
}
st=$(dev POST /director/ecus -H 'Content-Type: application/json' -d "{\"primary_ecu_serial\":\"$SERIAL\",\"ecus\":[{\"ecu_serial\":\"$SERIAL\",\"hardware_identifier\":\"board-a\",\"clientKey\":{\"keytype\":\"ED25519\",\"keyval\":{\"public\":\"$pub\"}}}]}")
[ "$st" = 200 ] || { cat "$WORK/reply"; fail "ECU registration: HTTP $st"; }
[ "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$F/server_ca.pem" "$U/repo/root.json")" = 401 ] ||
	fail "metadata was served without a client certificate"
pass "a device with an Ed25519 ECU key is registered; metadata needs a device certificate"

# ---- version 1 metadata, before any target ----
M="$WORK/meta"
mkdir -p "$M"
fetch /director/root.json "$M/d1.root.json"
fetch /repo/root.json "$M/i1.root.json"
fetch /director/1.root.json "$M/d1b.root.json"
cmp -s "$M/d1.root.json" "$M/d1b.root.json" || fail "director root.json is not 1.root.json"
[ "$(dev GET /director/2.root.json)" = 404 ] || fail "director 2.root.json exists before a rotation"
[ "$(jq -r .code "$WORK/reply")" = not_found ] || fail "404 without a JSON not_found body"
tuf chain "$M/d1.root.json" >/dev/null || fail "director root v1 does not verify"
tuf chain "$M/i1.root.json" >/dev/null || fail "image root v1 does not verify"
[ "$(jq -r '.signed.roles | keys | join(",")' "$M/d1.root.json")" = "root,targets" ] ||
	fail "the director root has roles other than root and targets"
fetch /director/targets.json "$M/dt1.json"
[ "$(tuf role "$M/d1.root.json" "$M/dt1.json" targets Targets)" = "current 1" ] || fail "empty director targets v1 wrong"
[ "$(jq '.signed.targets | length' "$M/dt1.json")" = 0 ] || fail "an unassigned device has director targets"
pass "version 1 roots (director: root and targets) verify; an unassigned device gets empty director targets"

# ---- add-target: hashes, length, and the image chain ----
head -c 300000 /dev/urandom >"$WORK/fw.bin"
"$S" add-target "$F" "$WORK/fw.bin" --name fw-1.0.bin --version 1.0 --hwid board-a --hwid board-b \
	>"$WORK/add.out" || fail "add-target failed"
grep -q "added target 'fw-1.0.bin'" "$WORK/add.out" || fail "add-target did not say what it added"
cmp -s "$WORK/fw.bin" "$F/targets/fw-1.0.bin" || fail "add-target did not copy the file into DIR/targets"
# a name and strings that canonical JSON must escape or keep as UTF-8
NAME2=$'dir/fw "two" \xc3\xbc 2.0.bin'
VER2=$'2.0\t"beta"\\x'
printf 'second image\n' >"$WORK/fw2.bin"
"$S" add-target "$F" "$WORK/fw2.bin" --name "$NAME2" --version "$VER2" --hwid board-a --format OSTREE \
	--uri "https://cdn.example/fw2" >/dev/null || fail "add-target of a second target failed"
for r in timestamp snapshot targets; do fetch "/repo/$r.json" "$M/i.$r.json"; done
[ "$(tuf role "$M/i1.root.json" "$M/i.timestamp.json" timestamp Timestamp)" = "current 3" ] || fail "timestamp v3 wrong"
[ "$(tuf role "$M/i1.root.json" "$M/i.snapshot.json" snapshot Snapshot)" = "current 3" ] || fail "snapshot v3 wrong"
[ "$(tuf role "$M/i1.root.json" "$M/i.targets.json" targets Targets)" = "current 3" ] || fail "targets v3 wrong"
tuf record "$M/i.timestamp.json" "$M/i.snapshot.json" snapshot.json || fail "timestamp's snapshot record"
tuf record "$M/i.snapshot.json" "$M/i.targets.json" targets.json || fail "snapshot's targets record"
tuf file "$M/i.targets.json" fw-1.0.bin "$WORK/fw.bin" || fail "target fw-1.0.bin"
tuf file "$M/i.targets.json" "$NAME2" "$WORK/fw2.bin" || fail "the second target"
jq -e --arg n "$NAME2" --arg v "$VER2" '.signed.targets[$n].custom | .version == $v and .targetFormat == "OSTREE"
	and .uri == "https://cdn.example/fw2" and .hardwareIds == ["board-a"]' "$M/i.targets.json" >/dev/null ||
	fail "custom fields of the second target"
jq -e '.signed.targets["fw-1.0.bin"].custom | .hardwareIds == ["board-a","board-b"] and .targetFormat == "BINARY"
	and .version == "1.0"' "$M/i.targets.json" >/dev/null || fail "custom fields of fw-1.0.bin"
fetch /repo/2.targets.json "$M/i2.targets.json"
[ "$(jq .signed.version "$M/i2.targets.json")" = 2 ] || fail "versioned image targets are not served"
pass "add-target signs targets, snapshot and timestamp v3 (hashes, length, custom; escapes and UTF-8 canonical)"

# ---- downloads ----
[ "$(dev GET /repo/targets/fw-1.0.bin -D "$WORK/headers")" = 200 ] || fail "target download failed"
cmp -s "$WORK/reply" "$WORK/fw.bin" || fail "the downloaded target differs"
grep -qi '^accept-ranges: bytes' "$WORK/headers" || fail "no Accept-Ranges header"
grep -qi '^content-length: 300000' "$WORK/headers" || fail "no Content-Length header"
[ "$(dev GET /repo/targets/fw-1.0.bin -H 'Range: bytes=123456-' -D "$WORK/headers")" = 206 ] || fail "Range: not 206"
cmp -s "$WORK/reply" <(tail -c +123457 "$WORK/fw.bin") || fail "Range: wrong bytes"
grep -qi '^content-range: bytes 123456-299999/300000' "$WORK/headers" || fail "Range: wrong Content-Range"
grep -qi '^content-length: 176544' "$WORK/headers" || fail "Range: wrong Content-Length"
[ "$(dev GET /repo/targets/fw-1.0.bin -H 'Range: bytes=10-19')" = 206 ] && cmp -s "$WORK/reply" <(head -c 20 "$WORK/fw.bin" | tail -c 10) ||
	fail "Range bytes=10-19"
[ "$(dev GET /repo/targets/fw-1.0.bin -H 'Range: bytes=300000-')" = 416 ] || fail "a range past the end is not 416"
[ "$(dev GET "/repo/targets/$(tuf quote "$NAME2")")" = 200 ] && cmp -s "$WORK/reply" "$WORK/fw2.bin" ||
	fail "a URL-encoded target name with a slash, quotes, a space and UTF-8"
[ "$(dev GET /repo/targets/nothing.bin)" = 404 ] && [ "$(jq -r .code "$WORK/reply")" = not_found ] ||
	fail "an unknown target is not a 404 not_found"
[ "$(dev GET /repo/targets/%2e%2e/server.key)" = 404 ] || fail "a target name escaped the targets directory"
[ "$(dev PUT /repo/targets/fw-1.0.bin -d x)" = 405 ] || fail "PUT on a target is not 405"
pass "targets stream whole and by Range (206, Content-Range, 416), URL-encoded names, 404 for unknown"

# ---- assign: director targets for the device's primary ECU ----
if "$S" assign "$F" --device uptane-dev --target nope 2>"$WORK/err"; then
	fail "assign accepted an unknown target"
fi
grep -q "no target 'nope'" "$WORK/err" || { cat "$WORK/err"; fail "no clear message for an unknown target"; }
if "$S" assign "$F" --device nobody --target fw-1.0.bin 2>"$WORK/err"; then fail "assign to an unknown device"; fi
"$S" assign "$F" --device uptane-dev --target fw-1.0.bin --correlation-id cid-1 >"$WORK/assign.out" ||
	fail "assign failed"
fetch /director/targets.json "$M/dt2.json"
[ "$(tuf role "$M/d1.root.json" "$M/dt2.json" targets Targets)" = "current 2" ] || fail "director targets v2 wrong"
tuf match "$M/dt2.json" "$M/i.targets.json" fw-1.0.bin "$SERIAL" board-a cid-1 || fail "director target vs image target"
uuid=$("$S" devices "$F" --json | jq -r '.[0].uuid')
"$S" devices "$F" --json >"$WORK/devices.json"
jq -e '.[0].assignment | .version == 2 and .correlation_id == "cid-1" and .targets == ["fw-1.0.bin"]' \
	"$WORK/devices.json" >/dev/null || fail "devices --json does not show the assignment"
"$S" assign "$F" --all --target fw-1.0.bin >"$WORK/assign.out" || fail "assign --all failed"
grep -q "assigned 'fw-1.0.bin' to 1 of 1 devices" "$WORK/assign.out" || fail "assign --all: $(cat "$WORK/assign.out")"
fetch /director/targets.json "$M/dt3.json"
jq -e '.signed.version == 3 and (.signed.custom.correlationId | startswith("urn:here-ota:mtu:"))' "$M/dt3.json" >/dev/null ||
	fail "assign --all: no version 3 with a generated correlation ID"
if "$S" assign "$F" --device "$uuid" --target "$NAME2" >/dev/null 2>"$WORK/err"; then :; else
	fail "a target for the device's hardware was refused"
fi
"$S" add-target "$F" "$WORK/fw2.bin" --name other-board.bin --version 1 --hwid board-z >/dev/null
if "$S" assign "$F" --device "$uuid" --target other-board.bin 2>"$WORK/err"; then fail "assigned a target for other hardware"; fi
grep -q "not for its hardware 'board-a'" "$WORK/err" || { cat "$WORK/err"; fail "no clear message for other hardware"; }
"$S" assign "$F" --device "$uuid" --target fw-1.0.bin --correlation-id cid-5 >/dev/null
fetch /director/targets.json "$M/dt5.json"
[ "$(jq .signed.version "$M/dt5.json")" = 5 ] || fail "director targets not at version 5"
pass "assign signs per-device director targets (ECU, hardware ID, hashes as the image's, correlation ID)"

# ---- manifests, events, device data ----
tuf manifest "$D/ecu.pem" "$SERIAL" fw-0.9.bin >"$WORK/manifest.json"
[ "$(dev PUT /director/manifest -H 'Content-Type: application/json' --data-binary @"$WORK/manifest.json")" = 200 ] ||
	fail "PUT /director/manifest"
"$S" devices "$F" --json >"$WORK/devices.json"
jq -e '.[0] | .installed_target == "fw-0.9.bin" and .manifest_signature == "valid" and .last_manifest != null
	and .installation_report == null' "$WORK/devices.json" >/dev/null || { jq '.[0]' "$WORK/devices.json"; fail "manifest not listed"; }
tuf manifest "$D/ecu.pem" "$SERIAL" fw-0.9.bin "" tamper >"$WORK/manifest.json"
dev PUT /director/manifest --data-binary @"$WORK/manifest.json" >/dev/null
[ "$("$S" devices "$F" --json | jq -r '.[0].manifest_signature')" = invalid ] || fail "a tampered manifest is not 'invalid'"
[ "$(dev PUT /director/manifest -d 'not json')" = 400 ] || fail "a malformed manifest is not 400"
[ "$(dev GET /director/manifest)" = 405 ] || fail "GET /director/manifest is not 405"
EVENTS='[{"id":"11111111-1111-4111-8111-111111111111","deviceTime":"2026-01-01T00:00:00Z","eventType":{"id":"EcuDownloadStarted","version":0},"event":{"ecu":"'$SERIAL'","correlationId":"cid-5"}},
 {"id":"22222222-2222-4222-8222-222222222222","deviceTime":"2026-01-01T00:00:05Z","eventType":{"id":"EcuDownloadCompleted","version":0},"event":{"ecu":"'$SERIAL'","correlationId":"cid-5","success":true}}]'
[ "$(dev POST /events -H 'Content-Type: application/json' -d "$EVENTS")" = 204 ] || fail "POST /events"
[ "$(dev POST /events -H 'Content-Type: application/json' -d "$EVENTS")" = 204 ] || fail "POST /events again"
[ "$(dev POST /events -d '{"not":"an array"}')" = 400 ] || fail "events that are no array are not 400"
tuf manifest "$D/ecu.pem" "$SERIAL" fw-1.0.bin cid-5 >"$WORK/manifest.json"
[ "$(dev PUT /director/manifest --data-binary @"$WORK/manifest.json")" = 200 ] || fail "PUT manifest with a report"
[ "$(dev PUT /core/installed -d '[{"name":"fw","version":"1.0"}]')" = 200 ] || fail "PUT /core/installed"
[ "$(dev PUT /system_info -d '{"product":"test"}')" = 200 ] || fail "PUT /system_info"
[ "$(dev PUT /system_info/network -d '{"local_ipv4":"10.0.0.2","mac":"02:00:00:00:00:01","hostname":"dev"}')" = 200 ] ||
	fail "PUT /system_info/network"
[ "$(dev POST /system_info/config --data-binary $'[uptane]\npolling_sec = 10\n')" = 200 ] || fail "POST /system_info/config"
[ "$(dev PUT /system_info -d 'nope')" = 400 ] || fail "system_info that is not JSON is not 400"
"$S" devices "$F" --json >"$WORK/devices.json"
jq -e '.[0] | .installed_target == "fw-1.0.bin" and .manifest_signature == "valid"
	and .installation_report.correlation_id == "cid-5" and .installation_report.success == true
	and .installation_report.code == "OK" and .assignment == null
	and .events_total == 2 and ([.events[].type] == ["EcuDownloadStarted","EcuDownloadCompleted"])
	and .events[1].success == true and .events[0].correlation_id == "cid-5"
	and .device_data.installed.value == [{"name":"fw","version":"1.0"}]
	and .device_data.network.value.hostname == "dev" and .device_data.system_info.value.product == "test"
	and .device_data.config.value == "[uptane]\npolling_sec = 10\n"' "$WORK/devices.json" >/dev/null ||
	{ jq '.[0]' "$WORK/devices.json"; fail "devices --json does not show the reports"; }
fetch /director/targets.json "$M/dt6.json"
[ "$(tuf role "$M/d1.root.json" "$M/dt6.json" targets Targets)" = "current 6" ] &&
	[ "$(jq '.signed.targets | length' "$M/dt6.json")" = 0 ] || fail "the report did not finish the assignment"
"$S" devices "$F" >"$WORK/devices.txt"
grep -q "manifest .* installed fw-1.0.bin  signature valid" "$WORK/devices.txt" &&
	grep -q "report .* success true  code OK  correlation cid-5" "$WORK/devices.txt" &&
	grep -q "event 2026-01-01T00:00:05Z  EcuDownloadCompleted  success true" "$WORK/devices.txt" ||
	{ cat "$WORK/devices.txt"; fail "devices (text) does not show the reports"; }
pass "manifests (signature checked), reports, events (resends counted once) and device data are stored and listed"

# ---- attacks for client tests: expired, rolled back, tampered ----
"$S" resign "$F" --repo image --role timestamp --expires -1d >/dev/null || fail "resign timestamp"
fetch /repo/timestamp.json "$M/i.ts-expired.json"
[ "$(tuf role "$M/i1.root.json" "$M/i.ts-expired.json" timestamp Timestamp)" = "expired 5" ] ||
	fail "resign --expires -1d did not make a validly signed, expired timestamp"
"$S" resign "$F" --repo image --role targets >/dev/null || fail "resign targets"
for r in timestamp snapshot targets; do fetch "/repo/$r.json" "$M/i.$r.json"; done
tuf record "$M/i.timestamp.json" "$M/i.snapshot.json" snapshot.json && tuf record "$M/i.snapshot.json" "$M/i.targets.json" targets.json ||
	fail "resign targets left the snapshot or timestamp stale"
[ "$(tuf role "$M/i1.root.json" "$M/i.timestamp.json" timestamp Timestamp)" = "current 6" ] || fail "resign did not renew the timestamp"
"$S" resign "$F" --repo director --role targets --device uptane-dev --version 2 --expires 2020-01-01T00:00:00Z >/dev/null ||
	fail "resign director targets"
fetch /director/targets.json "$M/dt-rollback.json"
[ "$(tuf role "$M/d1.root.json" "$M/dt-rollback.json" targets Targets)" = "expired 2" ] ||
	fail "resign --version 2 --expires 2020-... did not make a rolled-back, expired director targets"
jq -c '.signed.version = 99' "$F/uptane/image/timestamp.json" >"$F/uptane/image/timestamp.json.new"
mv "$F/uptane/image/timestamp.json.new" "$F/uptane/image/timestamp.json"
fetch /repo/timestamp.json "$M/i.ts-tampered.json"
if tuf role "$M/i1.root.json" "$M/i.ts-tampered.json" timestamp Timestamp 2>/dev/null; then
	fail "a tampered timestamp verified"
fi
"$S" resign "$F" --repo image --role timestamp >/dev/null
pass "resign makes expired and rolled-back metadata; files edited in DIR are served as they are"

# ---- rotate-root: a chain verifiable step by step ----
"$S" rotate-root "$F" --repo image >"$WORK/rotate.out" || fail "rotate-root image"
grep -q "image root rotated to version 2" "$WORK/rotate.out" || fail "rotate-root: $(cat "$WORK/rotate.out")"
"$S" rotate-root "$F" --repo image --key-type rsa >/dev/null || fail "rotate-root image to an RSA key"
"$S" rotate-root "$F" --repo director >/dev/null || fail "rotate-root director"
for v in 1 2 3; do fetch "/repo/$v.root.json" "$M/i$v.root.json"; done
[ "$(dev GET /repo/4.root.json)" = 404 ] || fail "image 4.root.json exists"
fetch /repo/root.json "$M/i.root.json"
cmp -s "$M/i.root.json" "$M/i3.root.json" || fail "image root.json is not the latest"
[ "$(tuf chain "$M/i1.root.json" "$M/i2.root.json" "$M/i3.root.json")" = 3 ] || fail "the image root chain does not verify"
[ "$(jq '.signatures | length' "$M/i3.root.json")" = 2 ] &&
	[ "$(jq -r '.signatures[1].method' "$M/i3.root.json")" = rsassa-pss-sha256 ] || fail "root v3: not signed by old and new (RSA) key"
[ -s "$F/uptane/image/keys/retired/root-v1.key" ] && [ -s "$F/uptane/image/keys/retired/root-v2.key" ] || fail "retired root keys not kept"
fetch /director/2.root.json "$M/d2.root.json"
[ "$(tuf chain "$M/d1.root.json" "$M/d2.root.json")" = 2 ] || fail "the director root chain does not verify"
if tuf chain "$M/i1.root.json" "$M/i3.root.json" 2>/dev/null; then fail "a chain that skips a version verified"; fi
fetch /repo/timestamp.json "$M/i.timestamp.json"
tuf role "$M/i3.root.json" "$M/i.timestamp.json" timestamp Timestamp >/dev/null || fail "the timestamp key changed with the root"
pass "rotate-root: N+1 signed by old and new root keys (Ed25519, then RSA-PSS), chain verifies, other keys kept"

# ---- an RSA fleet; a fleet from before Uptane ----
F2="$WORK/fleet-rsa"
"$S" init "$F2" --port "$PORT" --key-type rsa >/dev/null || fail "init --key-type rsa"
jq -e '[.signed.keys[].keytype] | unique == ["rsa"]' "$F2/uptane/image/root.json" >/dev/null || fail "init --key-type rsa made other keys"
"$S" add-target "$F2" "$WORK/fw2.bin" --name fw2 --version 2 --hwid board-a >/dev/null || fail "add-target with RSA keys"
[ "$(tuf chain "$F2/uptane/image/root.json")" = 1 ] || fail "RSA root"
for r in timestamp snapshot targets; do
	tuf role "$F2/uptane/image/root.json" "$F2/uptane/image/$r.json" "$r" "${r^}" >/dev/null || fail "RSA-PSS $r does not verify with salt 32"
done
F3="$WORK/fleet-old"
new_fleet "$F3"
rm -rf "$F3/uptane" "$F3/targets"
"$S" devices "$F3" --json >/dev/null || fail "devices on a fleet without Uptane"
if "$S" assign "$F3" --all --target x >/dev/null 2>"$WORK/err"; then fail "assign of an unknown target on a fresh repository"; fi
grep -q "no target 'x'" "$WORK/err" || { cat "$WORK/err"; fail "assign --all of an unknown target: no clear message"; }
[ -s "$F3/uptane/image/root.json" ] || fail "a fleet from before Uptane did not get repositories on first use"
pass "RSA repositories verify (RSASSA-PSS, salt 32); older fleets get repositories on first use"

# ---- faults on the new paths ----
stop_server
start_server "$F" --faults "503@/repo/timestamp.json,cut@/repo/targets/fw-1.0.bin,truncate@/director/targets.json,close@/director/manifest"
[ "$(dev GET /repo/timestamp.json)" = 503 ] || fail "fault 503 on the timestamp"
[ "$(dev GET /repo/timestamp.json)" = 200 ] || fail "the 503 fault did not retire"
set +e
curl -sS -o "$WORK/cut" --cacert "$F/server_ca.pem" --cert "$D/client.pem" --key "$D/pkey.pem" "$U/repo/targets/fw-1.0.bin" 2>/dev/null
rc=$?
set -e
[ "$rc" = 18 ] && [ "$(stat -c %s "$WORK/cut")" -lt 300000 ] || fail "cut on a target: curl exit $rc"
[ "$(dev GET /repo/targets/fw-1.0.bin)" = 200 ] && cmp -s "$WORK/reply" "$WORK/fw.bin" || fail "the cut fault did not retire"
[ "$(dev GET /director/targets.json)" = 200 ] && ! jq . "$WORK/reply" >/dev/null 2>&1 || fail "truncate on director targets"
curl -sS -o /dev/null --cacert "$F/server_ca.pem" --cert "$D/client.pem" --key "$D/pkey.pem" -X PUT \
	--data-binary @"$WORK/manifest.json" "$U/director/manifest" 2>/dev/null && fail "close on the manifest answered"
grep -q "PUT /director/manifest closed" "$F/server.log" || fail "close on the manifest"
pass "--faults work on metadata, targets and manifests"
