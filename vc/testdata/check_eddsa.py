#!/usr/bin/python3
"""Independent check of Data Integrity eddsa-rdfc-2022 / eddsa-jcs-2022 proofs.

Verifies every proof of a signed JSON document with Digital Bazaar's pyld
(URDNA2015 = RDFC-1.0 for these documents) and python3-cryptography, sharing
no code with the Go package. JSON-LD contexts come only from the URL -> file
map given; any other URL is an error (no network).

usage: check_eddsa.py SIGNED.json CONTEXT-MAP.json
exit:  0 all proofs verify, 1 a proof does not, 2 bad input or environment.
Debian: apt-get install python3-pyld python3-cryptography
"""
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pyld import jsonld

B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def b58decode(s):
    n = 0
    for ch in s:
        n = n * 58 + B58.index(ch)
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return b"\0" * (len(s) - len(s.lstrip("1"))) + raw


def did_key(vm):
    did, _, frag = vm.partition("#")
    mb = did[len("did:key:"):]
    if not did.startswith("did:key:z") or (frag and frag != mb):
        raise ValueError("not a did:key verification method: " + vm)
    raw = b58decode(mb[1:])
    if raw[:2] != b"\xed\x01" or len(raw) != 34:
        raise ValueError("not an Ed25519 did:key: " + vm)
    return Ed25519PublicKey.from_public_bytes(raw[2:])


def jcs(value):
    # Exact RFC 8785 for documents without floats and with BMP-only keys:
    # Python sorts by code point, JCS by UTF-16 unit; they agree there.
    def no_floats(v):
        if isinstance(v, float):
            raise ValueError("float in document: this checker's JCS is not exact for it")
        if isinstance(v, dict):
            for k, x in v.items():
                if any(ord(c) > 0xFFFF for c in k):
                    raise ValueError("non-BMP key")
                no_floats(x)
        if isinstance(v, list):
            for x in v:
                no_floats(x)
    no_floats(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def make_loader(ctx_map):
    def load(url, options=None):
        if url not in ctx_map:
            raise ValueError("context not bundled: " + url)
        with open(ctx_map[url], encoding="utf-8") as f:
            return {"contextUrl": None, "documentUrl": url, "document": json.load(f)}
    return load


def rdfc(value, loader):
    return jsonld.normalize(value, {"algorithm": "URDNA2015", "format": "application/n-quads",
                                    "documentLoader": loader}).encode()


def verify(doc, proof, loader):
    proof = dict(proof)
    pv = proof.pop("proofValue")
    if proof.get("type") != "DataIntegrityProof" or proof.get("proofPurpose") != "assertionMethod":
        return False
    unsecured = {k: v for k, v in doc.items() if k != "proof"}
    if "@context" in proof:
        pctx, dctx = proof["@context"], unsecured.get("@context")
        pctx = pctx if isinstance(pctx, list) else [pctx]
        dctx = dctx if isinstance(dctx, list) else [dctx]
        if dctx[:len(pctx)] != pctx:
            return False
        unsecured["@context"] = proof["@context"]
    config = dict(proof)
    if "@context" in unsecured:
        config["@context"] = unsecured["@context"]
    suite = proof.get("cryptosuite")
    if suite == "eddsa-rdfc-2022":
        canon = lambda v: rdfc(v, loader)
    elif suite == "eddsa-jcs-2022":
        canon = jcs
    else:
        return False
    data = hashlib.sha256(canon(config)).digest() + hashlib.sha256(canon(unsecured)).digest()
    if not pv.startswith("z"):
        return False
    try:
        did_key(proof["verificationMethod"]).verify(b58decode(pv[1:]), data)
        return True
    except InvalidSignature:
        return False


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        with open(sys.argv[1], "rb") as f:
            doc = json.loads(f.read().decode("utf-8"))
        with open(sys.argv[2], encoding="utf-8") as f:
            loader = make_loader(json.load(f))
        proofs = doc["proof"] if isinstance(doc["proof"], list) else [doc["proof"]]
        results = [verify(doc, p, loader) for p in proofs]
    except Exception as e:  # a broken document is a failed check, said plainly
        print("check_eddsa: error:", e, file=sys.stderr)
        return 1
    for i, ok in enumerate(results):
        print("proof %d (%s): %s" % (i, proofs[i].get("cryptosuite"), "verified" if ok else "FAILED"))
    return 0 if results and all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
