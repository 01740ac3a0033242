#!/usr/bin/env python3
"""make_cases.py - the data-driven cases of tests/unit/test_walk.c: one directory per case,
holding the metadata two Uptane repositories serve and what the walk must do with them.

Each case directory has:
  ecu           "SERIAL HWID" of the primary ECU
  round1/ ...   one update cycle each, walked in order on the same trusted state (so a
                later round can try a rollback): director/N.root.json, director/targets.json,
                image/N.root.json, image/{timestamp,snapshot,targets}.json,
                image/delegations/NAME.json; a document that is not there answers 404.
  roundN/expect the documents the walk asks for, in order ("director 2.root.json", with
                " absent" when the round has none), then the verdict: "update NAME",
                "no_update", "failed UPTANE_KIND" or "refused 404 PATH".

Signatures by python's `cryptography` (Ed25519, deterministic: keys come from fixed seeds,
so running this again writes the same bytes); canonical JSON by python's json module. The
outputs are committed; re-run only to change the cases:  python3 make_cases.py
The cases cover what tests/e2e/test_update_attacks.sh and test_security.sh try against a
real server, and the rules of uptane/*.c that need no server to break.
"""
import base64
import hashlib
import json
import os
import shutil

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

HERE = os.path.dirname(os.path.abspath(__file__))
FUTURE = "2099-01-01T00:00:00Z"
PAST = "2020-01-01T00:00:00Z"
SERIAL, HWID = "ecu-primary", "board-a"


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class Key:
    def __init__(self, seed):
        self.priv = ed25519.Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed.encode()).digest())
        self.pub = self.priv.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
        self.id = hashlib.sha256(canonical(self.pub)).hexdigest()

    def entry(self):
        return {"keytype": "ED25519", "keyval": {"public": self.pub}}

    def sig(self, signed):
        return {"keyid": self.id, "method": "ed25519",
                "sig": base64.b64encode(self.priv.sign(canonical(signed))).decode()}


K = {name: Key("otad-walk-" + name) for name in
     ["droot", "dtargets", "dtargets2", "iroot", "itimestamp", "isnapshot", "itargets",
      "itargets2", "itargets3", "deleg", "nested", "wrong", "droot2", "iroot2"]}


def sign(signed, *keys):
    return {"signatures": [k.sig(signed) for k in keys], "signed": signed}


def role(keys, threshold=None):
    return {"keyids": [k.id for k in keys], "threshold": threshold or len(keys)}


def root(version, roles, expires=FUTURE):
    keys = {}
    for ks, _ in roles.values():
        for k in ks:
            keys[k.id] = k.entry()
    return {"_type": "Root", "consistent_snapshot": False, "expires": expires, "keys": keys,
            "roles": {r: role(ks, t) for r, (ks, t) in roles.items()}, "version": version}


def director_root(version=1, targets=(K["dtargets"],), threshold=None, root_key=K["droot"]):
    return root(version, {"root": ([root_key], None), "targets": (list(targets), threshold),
                          "snapshot": ([root_key], None), "timestamp": ([root_key], None)})


def image_root(version=1, targets=(K["itargets"],), threshold=None, root_key=K["iroot"],
               timestamp=(K["itimestamp"],)):
    return root(version, {"root": ([root_key], None), "targets": (list(targets), threshold),
                          "snapshot": ([K["isnapshot"]], None), "timestamp": (list(timestamp), None)})


IMAGE = b"firmware image 1.0\n" * 100
SHA = hashlib.sha256(IMAGE).hexdigest()


def dtarget(name="fw-1.0", sha=SHA, length=len(IMAGE), hwid=HWID, serial=SERIAL):
    return {name: {"length": length, "hashes": {"sha256": sha},
                   "custom": {"ecuIdentifiers": {serial: {"hardwareId": hwid}}}}}


def itarget(name="fw-1.0", sha=SHA, length=len(IMAGE), hwid=HWID):
    return {name: {"length": length, "hashes": {"sha256": sha},
                   "custom": {"hardwareIds": [hwid], "version": "1.0", "targetFormat": "BINARY"}}}


def targets_doc(targets, version=1, expires=FUTURE, delegations=None, corr=None):
    s = {"_type": "Targets", "expires": expires, "targets": targets, "version": version}
    if delegations is not None:
        s["delegations"] = delegations
    if corr:
        s["custom"] = {"correlationId": corr}
    return s


def snapshot_doc(targets_version=1, version=1, extra=None, expires=FUTURE):
    meta = {"targets.json": {"version": targets_version}}
    meta.update(extra or {})
    return {"_type": "Snapshot", "expires": expires, "meta": meta, "version": version}


def timestamp_doc(snapshot_version=1, version=1, expires=FUTURE):
    return {"_type": "Timestamp", "expires": expires,
            "meta": {"snapshot.json": {"version": snapshot_version}}, "version": version}


def repos(**over):
    """A complete pair of repositories assigning fw-1.0; over replaces documents by path
    ('director/targets.json': doc or None to leave it out)."""
    files = {
        "director/1.root.json": sign(director_root(), K["droot"]),
        "director/targets.json": sign(targets_doc(dtarget(), corr="urn:walk:1"), K["dtargets"]),
        "image/1.root.json": sign(image_root(), K["iroot"]),
        "image/timestamp.json": sign(timestamp_doc(), K["itimestamp"]),
        "image/snapshot.json": sign(snapshot_doc(), K["isnapshot"]),
        "image/targets.json": sign(targets_doc(itarget()), K["itargets"]),
    }
    for path, doc in over.items():
        if doc is None:
            files.pop(path, None)
        else:
            files[path] = doc
    return files


FULL = ["director 1.root.json", "director 2.root.json absent", "director targets.json",
        "image 1.root.json", "image 2.root.json absent", "image timestamp.json",
        "image snapshot.json", "image targets.json"]


def case(name, rounds):
    """rounds: [(files, expect lines)]"""
    d = os.path.join(HERE, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    with open(os.path.join(d, "ecu"), "w") as f:
        f.write(f"{SERIAL} {HWID}\n")
    for i, (files, expect) in enumerate(rounds, 1):
        r = os.path.join(d, f"round{i}")
        for path, doc in files.items():
            p = os.path.join(r, path)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "w") as f:
                json.dump(doc, f, indent=1)
                f.write("\n")
        os.makedirs(r, exist_ok=True)
        with open(os.path.join(r, "expect"), "w") as f:
            f.write("\n".join(expect) + "\n")


def delegations(*roles_):
    keys = {}
    out = []
    for name, key, paths, terminating in roles_:
        keys[key.id] = key.entry()
        out.append({"name": name, "keyids": [key.id], "threshold": 1, "paths": paths,
                    "terminating": terminating})
    return {"keys": keys, "roles": out}


def main():
    for entry in os.listdir(HERE):
        if os.path.isdir(os.path.join(HERE, entry)):
            shutil.rmtree(os.path.join(HERE, entry))

    case("update", [(repos(), FULL + ["update fw-1.0"])])

    case("no_update", [(repos(**{
        "director/targets.json": sign(targets_doc({}), K["dtargets"])}),
        FULL[:3] + ["no_update"])])

    case("other_ecu_only", [(repos(**{
        "director/targets.json": sign(targets_doc(dtarget(serial="ecu-other")), K["dtargets"])}),
        FULL[:3] + ["failed UPTANE_UNKNOWN_ECU"])])

    case("first_root_missing", [(repos(**{"director/1.root.json": None}),
                                 ["director 1.root.json absent", "refused 404 director 1.root.json"])])

    # thresholds and signatures (test_update_attacks.sh 2-7)
    two = (K["dtargets"], K["dtargets2"])
    case("director_targets_threshold", [(repos(**{
        "director/1.root.json": sign(director_root(targets=two), K["droot"]),
        "director/targets.json": sign(targets_doc(dtarget()), K["dtargets"])}),
        FULL[:3] + ["failed UPTANE_THRESHOLD"])])

    three = (K["itargets"], K["itargets2"], K["itargets3"])
    case("image_targets_threshold", [(repos(**{
        "image/1.root.json": sign(image_root(targets=three, threshold=2), K["iroot"]),
        "image/targets.json": sign(targets_doc(itarget()), K["itargets2"])}),
        FULL + ["failed UPTANE_THRESHOLD"])])

    case("image_targets_2_of_3", [(repos(**{
        "image/1.root.json": sign(image_root(targets=three, threshold=2), K["iroot"]),
        "image/targets.json": sign(targets_doc(itarget()), K["itargets"], K["itargets3"])}),
        FULL + ["update fw-1.0"])])

    case("snapshot_unsigned", [(repos(**{"image/snapshot.json": sign(snapshot_doc())}),
                                FULL[:7] + ["failed UPTANE_THRESHOLD"])])

    case("same_key_twice", [(repos(**{
        "director/1.root.json": sign(director_root(targets=two), K["droot"]),
        "director/targets.json": sign(targets_doc(dtarget()), K["dtargets"], K["dtargets"])}),
        FULL[:3] + ["failed UPTANE_DUPLICATE_SIGNATURE"])])

    case("timestamp_unknown_key", [(repos(**{"image/timestamp.json": sign(timestamp_doc(), K["wrong"])}),
                                    FULL[:6] + ["failed UPTANE_THRESHOLD"])])

    bad = {"signatures": [K["itimestamp"].sig(timestamp_doc(version=9))], "signed": timestamp_doc()}
    case("timestamp_bad_signature", [(repos(**{"image/timestamp.json": bad}),
                                      FULL[:6] + ["failed UPTANE_BAD_SIGNATURE"])])

    # root chains (test_update_attacks.sh 7; the rotation of 1)
    rotated = director_root(version=2, targets=two, root_key=K["droot2"])
    case("director_root_rotation", [(repos(**{
        "director/2.root.json": sign(rotated, K["droot"], K["droot2"]),
        "director/targets.json": sign(targets_doc(dtarget()), K["dtargets"], K["dtargets2"])}),
        ["director 1.root.json", "director 2.root.json", "director 3.root.json absent",
         "director targets.json"] + FULL[3:] + ["update fw-1.0"])])

    case("director_root_chain_broken", [(repos(**{
        "director/2.root.json": sign(rotated, K["droot2"])}),
        ["director 1.root.json", "director 2.root.json", "failed UPTANE_THRESHOLD"])])

    case("image_root_chain_broken", [(repos(**{
        "image/2.root.json": sign(image_root(version=2, root_key=K["iroot2"]), K["iroot2"])}),
        FULL[:4] + ["image 2.root.json", "failed UPTANE_THRESHOLD"])])

    case("root_version_skipped", [(repos(**{
        "director/2.root.json": sign(director_root(version=3), K["droot"])}),
        ["director 1.root.json", "director 2.root.json", "failed UPTANE_VERSION_MISMATCH"])])

    # delegations (test_update_attacks.sh 8-10)
    top = targets_doc({}, delegations=delegations(("apps", K["deleg"], ["fw-*"], False)))
    case("delegation", [(repos(**{
        "image/targets.json": sign(top, K["itargets"]),
        "image/snapshot.json": sign(snapshot_doc(extra={"apps.json": {"version": 1}}), K["isnapshot"]),
        "image/delegations/apps.json": sign(targets_doc(itarget()), K["deleg"])}),
        FULL + ["image delegations/apps.json", "update fw-1.0"])])

    mid = targets_doc({}, delegations=delegations(("nested", K["nested"], ["fw-*"], False)))
    case("nested_delegation", [(repos(**{
        "image/targets.json": sign(top, K["itargets"]),
        "image/snapshot.json": sign(snapshot_doc(extra={"apps.json": {"version": 1},
                                                        "nested.json": {"version": 1}}), K["isnapshot"]),
        "image/delegations/apps.json": sign(mid, K["deleg"]),
        "image/delegations/nested.json": sign(targets_doc(itarget()), K["nested"])}),
        FULL + ["image delegations/apps.json", "image delegations/nested.json", "update fw-1.0"])])

    case("delegation_wrong_key", [(repos(**{
        "image/targets.json": sign(top, K["itargets"]),
        "image/snapshot.json": sign(snapshot_doc(extra={"apps.json": {"version": 1}}), K["isnapshot"]),
        "image/delegations/apps.json": sign(targets_doc(itarget()), K["wrong"])}),
        FULL + ["image delegations/apps.json", "failed UPTANE_THRESHOLD"])])

    locked = targets_doc({}, delegations=delegations(("locked", K["deleg"], ["fw-*"], True),
                                                     ("more", K["nested"], ["fw-*"], False)))
    case("terminating_delegation_hides", [(repos(**{
        "image/targets.json": sign(locked, K["itargets"]),
        "image/snapshot.json": sign(snapshot_doc(extra={"locked.json": {"version": 1},
                                                        "more.json": {"version": 1}}), K["isnapshot"]),
        "image/delegations/locked.json": sign(targets_doc({}), K["deleg"]),
        "image/delegations/more.json": sign(targets_doc(itarget()), K["nested"])}),
        FULL + ["image delegations/locked.json", "failed UPTANE_NO_TARGET"])])

    # the two repositories disagree, or the director's target does not fit the ECU
    case("target_hash_differs", [(repos(**{
        "image/targets.json": sign(targets_doc(itarget(sha="0" * 64)), K["itargets"])}),
        FULL + ["failed UPTANE_TARGET_MISMATCH"])])

    case("target_missing_in_image", [(repos(**{
        "image/targets.json": sign(targets_doc(itarget(name="fw-2.0")), K["itargets"])}),
        FULL + ["failed UPTANE_NO_TARGET"])])

    case("hardware_id_differs", [(repos(**{
        "director/targets.json": sign(targets_doc(dtarget(hwid="board-b")), K["dtargets"])}),
        FULL[:3] + ["failed UPTANE_HWID_MISMATCH"])])

    # freshness: expiry and rollback (the second round serves older metadata)
    case("timestamp_expired", [(repos(**{
        "image/timestamp.json": sign(timestamp_doc(expires=PAST), K["itimestamp"])}),
        FULL[:6] + ["failed UPTANE_EXPIRED"])])

    case("director_root_expired", [(repos(**{
        "director/1.root.json": sign(director_root() | {"expires": PAST}, K["droot"])}),
        FULL[:2] + ["failed UPTANE_EXPIRED"])])

    v2 = repos(**{"director/targets.json": sign(targets_doc(dtarget(), version=2), K["dtargets"])})
    case("director_targets_rollback", [
        (v2, FULL + ["update fw-1.0"]),
        (repos(), ["director 2.root.json absent", "director targets.json", "failed UPTANE_ROLLBACK"])])

    newer = repos(**{"image/timestamp.json": sign(timestamp_doc(snapshot_version=2, version=2), K["itimestamp"]),
                     "image/snapshot.json": sign(snapshot_doc(version=2), K["isnapshot"])})
    case("image_timestamp_rollback", [
        (newer, FULL + ["update fw-1.0"]),
        (repos(), ["director 2.root.json absent", "director targets.json", "image 2.root.json absent",
                   "image timestamp.json", "failed UPTANE_ROLLBACK"])])

    case("snapshot_names_other_targets_version", [(repos(**{
        "image/snapshot.json": sign(snapshot_doc(targets_version=2), K["isnapshot"])}),
        FULL + ["failed UPTANE_VERSION_MISMATCH"])])

    # a second cycle with nothing new fetches only what changed
    case("second_cycle_unchanged", [
        (repos(), FULL + ["update fw-1.0"]),
        (repos(), ["director 2.root.json absent", "director targets.json", "image 2.root.json absent",
                   "image timestamp.json", "update fw-1.0"])])


if __name__ == "__main__":
    main()
