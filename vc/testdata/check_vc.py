#!/usr/bin/python3
"""Independent check of a credential Credence signed and anchored.

For a credential made by `credenced vc sign` and `credenced anchor --vc
--attach`, recomputes apart from the Go code (docs/vc.md):
  - the credential hash: SHA-256 of the JCS (RFC 8785) form of the
    credential without its top-level "proof" member (check_eddsa.jcs);
  - every eddsa-rdfc-2022 / eddsa-jcs-2022 proof, with Digital Bazaar's pyld
    and python3-cryptography (check_eddsa.verify); at least one is required;
  - every credence-anchor-* proof: its proofValue (multibase base58btc) is a
    receipt in canonical protobuf whose credential_hash (field 3) is that
    hash and whose chain_id (field 2) is the chain its verificationMethod
    names. (The receipt's own proofs against the genesis are the receipt
    vectors' business: proof/testdata/vectors.)
Proofs of other suites are skipped, as a generic verifier skips ours.

usage: check_vc.py CREDENTIAL.json CONTEXT-MAP.json
prints "credential-hash z..." then one line per proof.
exit:  0 all checks pass, 1 one fails, 2 bad input or environment.
Debian: apt-get install python3-pyld python3-cryptography
"""
import hashlib
import json
import os
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_eddsa  # noqa: E402  (same directory; pyld + cryptography)


def b58encode(raw):
    n = int.from_bytes(raw, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = check_eddsa.B58[r] + out
    return "z" + "1" * (len(raw) - len(raw.lstrip(b"\0"))) + out


def varint(buf, i):
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def top_fields(buf):
    """Top-level fields of a protobuf message: {number: [bytes or int]}."""
    fields, i = {}, 0
    while i < len(buf):
        key, i = varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            v, i = varint(buf, i)
        elif wire == 2:
            n, i = varint(buf, i)
            v, i = buf[i:i + n], i + n
            if i > len(buf):
                raise ValueError("truncated field %d" % num)
        else:
            raise ValueError("unexpected wire type %d" % wire)
        fields.setdefault(num, []).append(v)
    return fields


def check_anchor(proof, chash):
    pv, vm = proof.get("proofValue", ""), proof.get("verificationMethod", "")
    if not pv.startswith("z"):
        return "proofValue is not base58btc"
    receipt = top_fields(check_eddsa.b58decode(pv[1:]))
    if receipt.get(3) != [chash]:
        return "the receipt's credential_hash is not this credential's hash"
    prefix = "urn:credence:chain:"
    if not vm.startswith(prefix) or ":genesis:" not in vm:
        return "verificationMethod names no chain"
    chain = urllib.parse.unquote(vm[len(prefix):].rsplit(":genesis:", 1)[0])
    if [c.decode() for c in receipt.get(2, [])] != [chain]:
        return "the receipt's chain_id is not the chain the proof names"
    return None


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        with open(sys.argv[1], "rb") as f:
            doc = json.loads(f.read().decode("utf-8"))
        with open(sys.argv[2], encoding="utf-8") as f:
            loader = check_eddsa.make_loader(json.load(f))
    except Exception as e:
        print("check_vc: error:", e, file=sys.stderr)
        return 2
    try:
        unsecured = {k: v for k, v in doc.items() if k != "proof"}
        chash = hashlib.sha256(check_eddsa.jcs(unsecured)).digest()
        print("credential-hash", b58encode(chash))
        proofs = doc.get("proof", [])
        proofs = proofs if isinstance(proofs, list) else [proofs]
        failed, eddsa, anchors = False, 0, 0
        for i, p in enumerate(proofs):
            suite = p.get("cryptosuite", "")
            if suite in ("eddsa-rdfc-2022", "eddsa-jcs-2022"):
                eddsa += 1
                ok = check_eddsa.verify(doc, p, loader)
                why = None if ok else "signature does not verify"
            elif suite.startswith("credence-anchor-"):
                anchors += 1
                why = check_anchor(p, chash)
            else:
                print("proof %d (%s): skipped" % (i, suite))
                continue
            failed = failed or why is not None
            print("proof %d (%s): %s" % (i, suite, "verified" if why is None else "FAILED: " + why))
        if eddsa == 0 or anchors == 0:
            print("FAILED: want at least one eddsa proof and one anchor proof, have %d and %d" % (eddsa, anchors))
            failed = True
    except Exception as e:  # a broken credential is a failed check, said plainly
        print("check_vc: error:", e, file=sys.stderr)
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
