#!/usr/bin/env python3
"""make_uptane_seeds.py - seed corpus and trusted roots for tests/fuzz/fuzz_uptane.c.

Signs with python's `cryptography` (OpenSSL) and writes canonical JSON with python's json
module, so the seeds do not come from the code they exercise. The keys are fixed: made once
into tests/fuzz/keys/*.pem (committed) and reused, so seeds written by earlier runs (and
crashing inputs kept as regression seeds) keep verifying. Outputs, all committed:

  uptane_roots.h      version 1 of the director and image roots, as C strings: the roots
                      the harness trusts before every input
  corpus/uptane/*     inputs in the harness's format: records "@<tag>[name]\\n<document>",
                      joined by "\\n" (see fuzz_uptane.c for the tags)

Re-run only to change them: python3 tests/fuzz/make_uptane_seeds.py
"""
import base64
import hashlib
import json
import os

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

HERE = os.path.dirname(os.path.abspath(__file__))
KEYS = os.path.join(HERE, "keys")
CORPUS = os.path.join(HERE, "corpus", "uptane")
FUTURE = "2030-01-01T00:00:00Z"
PAST = "2025-06-01T00:00:00Z"  # the harness's "now" is 2026-01-01T00:00:00Z


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class Key:
    """A fixed key: tests/fuzz/keys/<name>.pem, made on first use."""

    def __init__(self, name, kind):
        path = os.path.join(KEYS, name + ".pem")
        if not os.path.exists(path):
            os.makedirs(KEYS, exist_ok=True)
            k = (rsa.generate_private_key(public_exponent=65537, key_size=2048)
                 if kind == "rsa" else ed25519.Ed25519PrivateKey.generate())
            with open(path, "wb") as f:
                f.write(k.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
        with open(path, "rb") as f:
            self.key = serialization.load_pem_private_key(f.read(), password=None)
        self.rsa = isinstance(self.key, rsa.RSAPrivateKey)
        pub = self.key.public_key()
        if self.rsa:
            self.public = pub.public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        else:
            self.public = pub.public_bytes(serialization.Encoding.Raw,
                                           serialization.PublicFormat.Raw).hex().upper()
        # the KeyId OTA Connect gives a key: sha256 of the canonical JSON string of it
        self.keyid = hashlib.sha256(canonical(self.public.rstrip("\n"))).hexdigest()

    def obj(self):
        return {"keytype": "RSA" if self.rsa else "ED25519", "keyval": {"public": self.public}}

    def sign(self, signed):
        msg = canonical(signed)
        if self.rsa:
            sig = self.key.sign(msg, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                                hashes.SHA256())
            method = "rsassa-pss-sha256"
        else:
            sig, method = self.key.sign(msg), "ed25519"
        return {"keyid": self.keyid, "method": method, "sig": base64.b64encode(sig).decode()}


D_ROOT = Key("director-root", "ed25519")
D_TARGETS = Key("director-targets", "rsa")
D_ROOT2 = Key("director-root-2", "ed25519")  # the director root role after rotation
I_ROOT = Key("image-root", "ed25519")
I_ROOT2 = Key("image-root-2", "ed25519")
I_TARGETS = Key("image-targets", "ed25519")
I_SNAPSHOT = Key("image-snapshot", "rsa")
I_TIMESTAMP = Key("image-timestamp", "ed25519")
I_DELEG = Key("image-team", "ed25519")


def doc(signed, *keys, indent=None):
    """The text of {"signatures","signed"} signed by keys (pretty when indent is set)."""
    d = {"signatures": [k.sign(signed) for k in keys], "signed": signed}
    return json.dumps(d, indent=indent, ensure_ascii=indent is None)


def role(*keys, threshold=1):
    return {"keyids": [k.keyid for k in keys], "threshold": threshold}


def root(version, rootk, targetsk, snapk, tsk, expires=FUTURE):
    keys = {}
    for k in (rootk, targetsk, snapk, tsk):
        keys[k.keyid] = k.obj()
    return {"_type": "Root", "consistent_snapshot": False, "expires": expires,
            "keys": keys, "version": version,
            "roles": {"root": role(rootk), "targets": role(targetsk),
                      "snapshot": role(snapk), "timestamp": role(tsk)}}


def record(text):
    """meta entry: version plus length and sha256 of the raw bytes."""
    b = text.encode()
    return {"length": len(b), "hashes": {"sha256": hashlib.sha256(b).hexdigest()}}


FW, APP = "fw-1.0.bin", "team/app-2.bin"
FW_SHA = hashlib.sha256(b"fw").hexdigest()
APP_SHA = hashlib.sha256(b"app").hexdigest()
FW_SHA512 = hashlib.sha512(b"fw").hexdigest()

d_root1 = doc(root(1, D_ROOT, D_TARGETS, D_ROOT, D_ROOT), D_ROOT, indent=2)
i_root1 = doc(root(1, I_ROOT, I_TARGETS, I_SNAPSHOT, I_TIMESTAMP), I_ROOT, indent=2)
# rotations: version 2 signed by the old and the new root key
d_root2 = doc(root(2, D_ROOT2, D_TARGETS, D_ROOT2, D_ROOT2), D_ROOT, D_ROOT2)
i_root2 = doc(root(2, I_ROOT2, I_TARGETS, I_SNAPSHOT, I_TIMESTAMP), I_ROOT, I_ROOT2)


def director_targets(version, targets, expires=FUTURE, corr="urn:here-ota:campaign:fuzz-1"):
    s = {"_type": "Targets", "expires": expires, "version": version, "targets": targets}
    if corr is not None:
        s["custom"] = {"correlationId": corr}
    return s


def dtarget(length, sha256, ecu, hwid, sha512=None):
    h = {"sha256": sha256}
    if sha512:
        h["sha512"] = sha512
    return {"length": length, "hashes": h,
            "custom": {"ecuIdentifiers": {ecu: {"hardwareId": hwid}}}}


def itarget(length, sha256, hwid, sha512=None):
    h = {"sha256": sha256}
    if sha512:
        h["sha512"] = sha512
    return {"length": length, "hashes": h,
            "custom": {"hardwareIds": [hwid], "targetFormat": "BINARY", "version": "1.0",
                       "uri": "https://example.com/" + str(length)}}


dt_both = doc(director_targets(1, {
    FW: dtarget(2, FW_SHA, "fuzz-ecu", "fuzz-hw", FW_SHA512),
    APP: dtarget(3, APP_SHA, "fuzz-ecu-2", "fuzz-hw-2")}), D_TARGETS)
dt_fw = doc(director_targets(1, {FW: dtarget(2, FW_SHA, "fuzz-ecu", "fuzz-hw")}), D_TARGETS,
            indent=1)
dt_empty = doc(director_targets(2, {}, corr=None), D_TARGETS)
dt_expired = doc(director_targets(3, {FW: dtarget(2, FW_SHA, "fuzz-ecu", "fuzz-hw")},
                                  expires=PAST), D_TARGETS)

team = doc({"_type": "Targets", "expires": FUTURE, "version": 1,
            "targets": {APP: itarget(3, APP_SHA, "fuzz-hw-2"),
                        "evil/app.bin": itarget(3, APP_SHA, "fuzz-hw-2")}}, I_DELEG)
i_targets = doc({"_type": "Targets", "expires": FUTURE, "version": 1,
                 "targets": {FW: itarget(2, FW_SHA, "fuzz-hw", FW_SHA512)},
                 "delegations": {"keys": {I_DELEG.keyid: I_DELEG.obj()},
                                 "roles": [{"name": "team", "keyids": [I_DELEG.keyid],
                                            "threshold": 1, "paths": ["team/*"],
                                            "terminating": False}]}}, I_TARGETS)
snap_meta = {"targets.json": dict(version=1, **record(i_targets)),
             "team.json": dict(version=1, **record(team))}
i_snapshot = doc({"_type": "Snapshot", "expires": FUTURE, "version": 1, "meta": snap_meta},
                 I_SNAPSHOT)
i_ts = doc({"_type": "Timestamp", "expires": FUTURE, "version": 1,
            "meta": {"snapshot.json": dict(version=1, **record(i_snapshot))}}, I_TIMESTAMP)
i_ts2 = doc({"_type": "Timestamp", "expires": FUTURE, "version": 2,
             "meta": {"snapshot.json": dict(version=1, **record(i_snapshot))}}, I_TIMESTAMP)
i_ts_expired = doc({"_type": "Timestamp", "expires": PAST, "version": 3,
                    "meta": {"snapshot.json": {"version": 1}}}, I_TIMESTAMP)


def seed(name, *records):
    with open(os.path.join(CORPUS, name), "w", encoding="utf-8", newline="") as f:
        f.write("\n".join("@%s\n%s" % r for r in records))


os.makedirs(CORPUS, exist_ok=True)
seed("chain-rotation", ("R", d_root2), ("T", dt_both), ("r", i_root2), ("t", i_ts),
     ("s", i_snapshot), ("g", i_targets), ("dteam", team))
seed("chain", ("T", dt_both), ("t", i_ts), ("s", i_snapshot), ("g", i_targets), ("dteam", team))
seed("chain-fw", ("T", dt_fw), ("t", i_ts), ("s", i_snapshot), ("g", i_targets))
seed("restore", ("D", dt_both), ("x", i_ts), ("y", i_snapshot), ("z", i_targets), ("zteam", team))
seed("empty-director", ("T", dt_empty))
seed("first-use", ("L", d_root1), ("L", i_root1))
seed("rollback", ("t", i_ts2), ("t", i_ts), ("s", i_snapshot))
seed("expired", ("T", dt_expired), ("t", i_ts_expired))
seed("canonical",
     ("c", '{"b": 1, "a": [true, false, null], "c": {"z": "x", "y": -5}}'),
     ("c", '{"": 0, "B": 1, "a": 2, "aa": 3, "\\u00e9": 4, "Z": 5, "~": 7}'),
     ("c", '{"s": "q\\" b\\\\ n\\n r\\r t\\t b\\b f\\f c\\u0001\\u001f d\\u007f / \\u00e9\\u2713'
           '\\ud834\\udd1e"}'),
     ("c", '{"n": [0, -1, 1, 2147483648, -9007199254740992, 9007199254740992, 1.5, 1e300]}'),
     ("c", '{"dup": 1, "dup": 2}'),
     ("c", '{"empty": {}, "list": [], "str": "", "nested": [{"b": [], "a": {}}]}'))

with open(os.path.join(HERE, "uptane_roots.h"), "w") as f:
    f.write("/* uptane_roots.h - written by make_uptane_seeds.py: version 1 of the roots\n"
            " * fuzz_uptane trusts before every input (keys in tests/fuzz/keys/). */\n")
    for name, text in (("FUZZ_DIRECTOR_ROOT", d_root1), ("FUZZ_IMAGE_ROOT", i_root1)):
        f.write("static const char %s[] =\n" % name)
        for line in text.split("\n"):
            f.write("    %s\n" % json.dumps(line + "\n"))
        f.write("    ;\n")
