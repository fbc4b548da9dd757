package proof

import (
	"crypto/ed25519"
	"testing"

	"google.golang.org/protobuf/proto"
)

// benchVectors are the receipts the benchmarks run on: one validator, four
// validators (one absent), and five validators with a link from the four
// of genesis (9 signatures verified).
var benchVectors = []string{"one-validator/single-hash", "four-validators/partial-commit",
	"four-validators/full-commit", "four-validators/validator-link"}

// BenchmarkVerify is full offline verification of a decoded receipt: audit
// path, ICS23 proof, header, every commit signature, links. Budget: ≤ 300
// µs per receipt.
func BenchmarkVerify(b *testing.B) {
	for _, name := range benchVectors {
		b.Run(name, func(b *testing.B) {
			v := vectorNamed(b, name)
			r := v.receipt(b)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Verify(r, v.trust); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/op")
		})
	}
}

// BenchmarkVerifyWire is what a verifier receiving the wire form does:
// decode, then verify.
func BenchmarkVerifyWire(b *testing.B) {
	v := vectorNamed(b, "four-validators/full-commit")
	wire := v.wire(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(wire)))
	for b.Loop() {
		var r Receipt
		if err := proto.Unmarshal(wire, &r); err != nil {
			b.Fatal(err)
		}
		if _, err := Verify(&r, v.trust); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/op")
}

func BenchmarkUnmarshalReceiptJSON(b *testing.B) {
	file := vectorNamed(b, "four-validators/full-commit").file
	b.ReportAllocs()
	b.SetBytes(int64(len(file)))
	for b.Loop() {
		if _, err := UnmarshalReceiptJSON(file, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshalReceiptJSON(b *testing.B) {
	r := vectorNamed(b, "four-validators/full-commit").receipt(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := MarshalReceiptJSON(r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReceiptSize reports a 4-validator receipt's size: canonical
// protobuf and the JSON file form, in total and for its parts (the size is
// the figure; the timing is the cost of the canonical encoding).
func BenchmarkReceiptSize(b *testing.B) {
	r := vectorNamed(b, "four-validators/full-commit").receipt(b)
	js, err := MarshalReceiptJSON(r)
	if err != nil {
		b.Fatal(err)
	}
	var wire []byte
	b.ReportAllocs()
	for b.Loop() {
		wire, err = proto.MarshalOptions{Deterministic: true}.Marshal(r)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(wire)), "proto-bytes")
	b.ReportMetric(float64(len(js)), "json-bytes")
	b.ReportMetric(float64(len(r.SignedHeader)), "signed-header-bytes")
	b.ReportMetric(float64(len(r.BatchProof)), "batch-proof-bytes")
	b.ReportMetric(float64(len(r.AuditPath)*HashSize), "audit-path-bytes")
}

// BenchmarkEd25519Verify is one signature check as Verify makes it, the
// unit a receipt's cost is counted in (a receipt verifies one per signer,
// plus one per signer of each link); BenchmarkEd25519VerifyStdlib is the
// same check by crypto/ed25519, the reference for the rule.
func BenchmarkEd25519Verify(b *testing.B) {
	benchmarkSignature(b, verifySignature)
}

func BenchmarkEd25519VerifyStdlib(b *testing.B) {
	benchmarkSignature(b, func(pub, msg, sig []byte) bool { return ed25519.Verify(pub, msg, sig) })
}

func benchmarkSignature(b *testing.B, verify func(pub, msg, sig []byte) bool) {
	r := vectorNamed(b, "one-validator/single-hash").receipt(b)
	sh, err := decodeSignedHeader(r.SignedHeader, DefaultMaxValidators)
	if err != nil {
		b.Fatal(err)
	}
	s := &sh.commit.sigs[0]
	msg := sh.commit.voteSignBytes(sh.header.chainID, s)
	pub := r.Validators[0].Ed25519PublicKey
	b.ReportAllocs()
	for b.Loop() {
		if !verify(pub, msg, s.signature) {
			b.Fatal("does not verify")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/op")
}
