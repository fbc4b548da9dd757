// Package vc signs and verifies W3C Verifiable Credentials with Data
// Integrity proofs, so that Credence's Bitstring Status List credentials
// can carry their issuer's signature, and a credential its own anchor, and
// anyone can check both offline.
//
// It holds:
//
//   - the credential hash Credence anchors for a VC (CredentialHash: SHA-256
//     of the JCS form without "proof", stable under re-serialisation and
//     added proofs), the receipt embedded as a proof of Credence's own
//     cryptosuite credence-anchor-2026 (AttachReceipt), and one verdict for
//     a credential (VerifyCredential, CheckStatus); docs/vc.md is their
//     specification;
//   - the Bitstring Status List credential an issuer signs (StatusList),
//     built the same way by the state machine, every member and the CLI;
//   - did:key for Ed25519 (did:key method v0.9, Multikey: base58btc over
//     multicodec 0xed01 + key): encoding, decoding, the DID document, and
//     ResolveDIDKey, a Resolver needing no network;
//   - the cryptosuites eddsa-rdfc-2022 and eddsa-jcs-2022 of W3C "Data
//     Integrity EdDSA Cryptosuites v1.0" (Recommendation 2025-05-15), on top
//     of "Verifiable Credential Data Integrity 1.0": Sign adds a proof (or
//     joins a proof set), Verify checks every proof; previousProof chains
//     are refused as unsupported;
//   - canonicalization: JCS (RFC 8785) by github.com/gowebpki/jcs, RDF
//     Dataset Canonicalization (W3C RDFC-1.0, which for SHA-256 is
//     URDNA2015) by github.com/piprate/json-gold, with JSON-LD 1.1
//     processing whose contexts are bundled (contexts/, embedded): an
//     unknown context URL is an error, nothing is fetched, so what a
//     signature covers cannot be changed by whoever serves a URL.
//
// Whatever a signature would not really cover is refused rather than signed
// or verified: data JSON-LD to RDF silently drops (undefined terms, relative
// ids and types, malformed language tags and datatypes, @index, @direction);
// literals with control characters other than TAB, LF and CR, and IRIs with
// characters N-Quads forbids, which json-gold serializes differently from
// RDFC-1.0; numbers a double cannot hold exactly; duplicate JSON member names.
// Graphs whose blank nodes would need more than a bounded amount of n-degree
// hashing (the "poison graph" attack, for which json-gold has no limit) are
// refused too. Document size, JSON nesting and proof count are bounded before
// any parsing; the defaults are the Default* constants, overridable with
// WithLimits.
//
// Output is deterministic: Ed25519 is, the package never reads the clock
// (created is passed in with WithCreated), and signed documents keep the
// caller's member order. The package is pure Go and imports only proof of
// Credence's packages (no node, storage or consensus), so it also builds for
// js/wasm, where the web verifier runs it.
//
// The W3C vc-di-eddsa, RDFC-1.0, JCS and did:key test vectors in testdata/
// are reproduced byte for byte by the tests; testdata/check_eddsa.py checks
// our signatures with an unrelated implementation (pyld).
package vc
