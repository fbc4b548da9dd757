#!/usr/bin/python3
"""Credence credential hash, written apart from the Go code (docs/vc.md).

The credential hash is SHA-256 of the JCS (RFC 8785) serialization of the
credential without its top-level "proof" member. This is an RFC 8785
implementation of its own (standard library only), used to make and to check
the vectors in this directory.

usage: credential_hash.py [--write] FILE.json...
  prints "HEX  z-BASE58BTC  FILE" per file; --write also writes FILE's JCS
  text to FILE with .json replaced by .jcs, and credential-hashes.json.
exit:  0 done, 2 a file is not a JSON object this JCS serializes exactly.
"""
import hashlib
import json
import math
import os
import sys

B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def b58btc(raw):
    n = int.from_bytes(raw, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = B58[r] + out
    return "z" + "1" * (len(raw) - len(raw.lstrip(b"\0"))) + out


def number(v):
    # RFC 8785 3.2.2.3: the ECMAScript Number-to-String of the double.
    if isinstance(v, bool):
        raise TypeError("bool is not a number")
    if isinstance(v, int):
        if abs(v) > 2 ** 53:
            raise ValueError("integer %d is not exact as a double" % v)
        v = float(v)
    if math.isnan(v) or math.isinf(v):
        raise ValueError("NaN and Infinity have no JSON form")
    if v == 0:
        return "0"
    sign = "-" if v < 0 else ""
    # repr gives the shortest digits that read back as v, which is what
    # ECMAScript's algorithm chooses too; only the layout differs.
    mant, _, exp = repr(abs(v)).partition("e")
    ip, _, fp = mant.partition(".")
    digits = (ip + fp).lstrip("0")
    point = len(ip) + (int(exp) if exp else 0) - (len(ip + fp) - len((ip + fp).lstrip("0")))
    digits = digits.rstrip("0")
    k, n = len(digits), point
    if k <= n <= 21:
        s = digits + "0" * (n - k)
    elif 0 < n <= 21:
        s = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        s = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        s = digits[0] + ("." + digits[1:] if k > 1 else "") + "e" + ("+" if e > 0 else "-") + str(abs(e))
    return sign + s


ESC = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def string(s):
    out = ['"']
    for ch in s:
        if ch in ESC:
            out.append(ESC[ch])
        elif ord(ch) < 0x20:
            out.append("\\u%04x" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def jcs(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return number(v)
    if isinstance(v, str):
        return string(v)
    if isinstance(v, list):
        return "[" + ",".join(jcs(x) for x in v) + "]"
    # Member names sort by their UTF-16 code units.
    keys = sorted(v, key=lambda k: k.encode("utf-16-be"))
    return "{" + ",".join(string(k) + ":" + jcs(v[k]) for k in keys) + "}"


def no_duplicates(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError("duplicate member %r" % k)
        d[k] = v
    return d


def credential_jcs(data):
    doc = json.loads(data.decode("utf-8"), object_pairs_hook=no_duplicates)
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    doc.pop("proof", None)
    return jcs(doc).encode("utf-8")


def main(args):
    write = args[:1] == ["--write"]
    files = args[1:] if write else args
    if not files:
        print(__doc__, file=sys.stderr)
        return 2
    index = {}
    for f in files:
        try:
            with open(f, "rb") as fh:
                canon = credential_jcs(fh.read())
        except Exception as e:
            print("credential_hash: %s: %s" % (f, e), file=sys.stderr)
            return 2
        h = hashlib.sha256(canon).digest()
        print("%s  %s  %s" % (h.hex(), b58btc(h), f))
        if write:
            jcs_file = f[: -len(".json")] + ".jcs"
            with open(jcs_file, "wb") as fh:
                fh.write(canon)
            index[os.path.basename(f)] = {"jcs": os.path.basename(jcs_file), "sha256": h.hex(), "multibase": b58btc(h)}
    if write:
        out = os.path.join(os.path.dirname(files[0]), "credential-hashes.json")
        with open(out, "w") as fh:
            json.dump(index, fh, indent=2, sort_keys=True)
            fh.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
