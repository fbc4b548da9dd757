#!/usr/bin/python3
"""Independent check of a credential carrying a credence-anchor-2026 proof.

What a generic Data Integrity verifier sees, plus the anchor's binding, with
no code shared with the Go package: every eddsa-rdfc-2022 / eddsa-jcs-2022
proof verifies (../check_eddsa.py: pyld + python3-cryptography) with the
anchor proof present in the set, proofs of other suites are skipped, and each
credence-anchor-2026 proof's receipt (binary protobuf, field 3) anchors the
credential hash (../credentials/credential_hash.py: RFC 8785 of its own).
The receipt's chain of signatures is not checked here (docs/receipt.md).

usage: check_anchored.py CREDENTIAL.json CONTEXT-MAP.json [DID-DOCUMENT.json]
  (the DID document resolves verification methods that are not did:key)
exit:  0 all checks pass, 1 one fails, 2 bad input or environment.
"""
import hashlib
import importlib.util
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def load(name, path):
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, path))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def varint(b, i):
    n = shift = 0
    while True:
        if i >= len(b) or shift > 63:
            raise ValueError("truncated varint")
        c = b[i]
        i += 1
        n |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return n, i


def receipt_credential_hash(raw):
    """Field 3 (credential_hash, bytes) of a top-level Receipt message."""
    i, found = 0, None
    while i < len(raw):
        key, i = varint(raw, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, i = varint(raw, i)
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        elif wire == 2:
            n, i = varint(raw, i)
            if field == 3:
                found = raw[i:i + n]
            i += n
        else:
            raise ValueError("wire type %d" % wire)
        if i > len(raw):
            raise ValueError("truncated receipt")
    if found is None or len(found) != 32:
        raise ValueError("receipt has no 32-byte credential_hash")
    return found


def resolve_with_did_document(eddsa, did_doc):
    """Make eddsa.verify resolve the document's Multikey assertion methods."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    keys = {}
    for vm in did_doc.get("verificationMethod", []):
        vid = vm["id"] if not vm["id"].startswith("#") else did_doc["id"] + vm["id"]
        if vid in did_doc.get("assertionMethod", []) and vm.get("type") == "Multikey":
            raw = eddsa.b58decode(vm["publicKeyMultibase"][1:])
            if raw[:2] == b"\xed\x01" and len(raw) == 34:
                keys[vid] = Ed25519PublicKey.from_public_bytes(raw[2:])
    did_key = eddsa.did_key

    def resolve(vm):
        return keys[vm] if vm in keys else did_key(vm)
    eddsa.did_key = resolve


def main():
    if len(sys.argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        eddsa = load("check_eddsa", "../check_eddsa.py")
        ch = load("credential_hash", "../credentials/credential_hash.py")
        with open(sys.argv[1], "rb") as f:
            data = f.read()
        with open(sys.argv[2], encoding="utf-8") as f:
            loader = eddsa.make_loader(json.load(f))
        if len(sys.argv) == 4:
            with open(sys.argv[3], encoding="utf-8") as f:
                resolve_with_did_document(eddsa, json.load(f))
    except Exception as e:
        print("check_anchored: error:", e, file=sys.stderr)
        return 2
    try:
        doc = json.loads(data.decode("utf-8"))
        want = hashlib.sha256(ch.credential_jcs(data)).digest()
        proofs = doc["proof"] if isinstance(doc["proof"], list) else [doc["proof"]]
        ok, anchors = True, 0
        for i, p in enumerate(proofs):
            suite = p.get("cryptosuite", "")
            if suite == "credence-anchor-2026":
                anchors += 1
                pv = p["proofValue"]
                got = receipt_credential_hash(eddsa.b58decode(pv[1:])) if pv.startswith("z") else b""
                good = got == want
                print("proof %d (%s): receipt anchors %s, credential hash %s: %s"
                      % (i, suite, got.hex(), want.hex(), "match" if good else "MISMATCH"))
            elif suite in ("eddsa-rdfc-2022", "eddsa-jcs-2022"):
                good = eddsa.verify(doc, p, loader)
                print("proof %d (%s): %s" % (i, suite, "verified" if good else "FAILED"))
            else:
                print("proof %d (%s): skipped" % (i, suite))
                continue
            ok = ok and good
    except Exception as e:  # a broken credential is a failed check, said plainly
        print("check_anchored: error:", e, file=sys.stderr)
        return 1
    if not anchors:
        print("check_anchored: no credence-anchor-2026 proof", file=sys.stderr)
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
