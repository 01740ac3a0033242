#!/usr/bin/env python3
"""make_fixtures.py - Uptane fixtures made outside otad, for tests/unit/test_uptane.c and
test_canonical_json.c: signatures by python's `cryptography` (OpenSSL) and canonical JSON by
python's json module, so otad's canonical JSON and wolfSSL verification are checked against
an independent implementation. The outputs are committed; re-run only to change them.

  root.json      a root (version 1) with one RSA 2048 and one ED25519 key; every role needs
                 both (threshold 2); signed by both (rsassa-pss-sha256, salt 32, and ed25519)
  targets.json   director-style targets signed by both keys, whose strings hold what
                 canonical JSON must escape or keep: quotes, backslashes, newlines, tabs,
                 control characters, DEL, non-ASCII (2-, 3- and 4-byte UTF-8)
  canonical.txt  pairs of lines: a JSON document as written (spaces, unsorted keys, \\u
                 escapes), then its canonical form per
                 json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
"""
import base64
import hashlib
import json
import os

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

HERE = os.path.dirname(os.path.abspath(__file__))


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def keyid(public_text):
    # The KeyId OTA Connect gives keys: sha256 of the canonical JSON string of the key.
    return hashlib.sha256(canonical(public_text.rstrip("\n"))).hexdigest()


rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
rsa_pub = rsa_key.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
ed_key = ed25519.Ed25519PrivateKey.generate()
ed_pub = ed_key.public_key().public_bytes(
    serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex().upper()
rsa_id, ed_id = keyid(rsa_pub), keyid(ed_pub)


def sign(signed, rsa_method="rsassa-pss-sha256"):
    msg = canonical(signed)
    rsa_sig = rsa_key.sign(msg, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                           hashes.SHA256())
    ed_sig = ed_key.sign(msg)
    return {"signatures": [
        {"keyid": rsa_id, "method": rsa_method, "sig": base64.b64encode(rsa_sig).decode()},
        {"keyid": ed_id, "method": "ed25519", "sig": base64.b64encode(ed_sig).decode()},
    ], "signed": signed}


both = {"keyids": [rsa_id, ed_id], "threshold": 2}
root = {
    "_type": "Root",
    "consistent_snapshot": False,
    "expires": "2030-01-01T00:00:00Z",
    "keys": {
        rsa_id: {"keytype": "RSA", "keyval": {"public": rsa_pub}},
        ed_id: {"keytype": "ED25519", "keyval": {"public": ed_pub}},
    },
    "roles": {"root": both, "targets": both, "snapshot": both, "timestamp": both},
    "version": 1,
}
targets = {
    "_type": "Targets",
    "expires": "2030-01-01T00:00:00Z",
    "version": 7,
    "custom": {"correlationId": "urn:here-ota:campaign:\u00e9t\u00e9-2026"},
    "targets": {
        "firmware-1.0.bin": {
            "length": 4096,
            "hashes": {"sha256": hashlib.sha256(b"x" * 4096).hexdigest()},
            "custom": {
                "ecuIdentifiers": {"ecu-1": {"hardwareId": "board-a"}},
                "note": "quote \" backslash \\ slash / nl \n cr \r tab \t bs \b ff \f "
                        "ctl \u0001\u001f del \u007f \u00e9 \u2713 \U0001d11e",
                "negative": -42,
                "big": 9007199254740992,
                "flags": [True, False, None],
            },
        }
    },
}

with open(os.path.join(HERE, "root.json"), "w") as f:
    json.dump(sign(root), f, indent=2)  # pretty: the raw bytes are not what was signed
    f.write("\n")
with open(os.path.join(HERE, "targets.json"), "w") as f:
    json.dump(sign(targets, rsa_method="rsassa-pss"), f, indent=1, ensure_ascii=True)
    f.write("\n")

cases = [
    {"b": 1, "a": [True, False, None], "c": {"z": "x", "y": -5}},
    {"": 0, "B": 1, "a": 2, "aa": 3, "\u00e9": 4, "Z": 5, "_type": 6, "~": 7},
    {"s": "q\" b\\ n\n r\r t\t b\b f\f c\u0001\u001f d\u007f / \u00e9\u2713\U0001d11e"},
    {"n": [0, -1, 1, 2147483648, -9007199254740992, 9007199254740992]},
    {"empty": {}, "list": [], "str": "", "nested": [{"b": [], "a": {}}]},
    targets,
]
with open(os.path.join(HERE, "canonical.txt"), "w", encoding="utf-8") as f:
    for c in cases:
        f.write(json.dumps(c, ensure_ascii=True, separators=(", ", ": ")) + "\n")
        f.write(canonical(c).decode() + "\n")
