package proof

import (
	"testing"

	"google.golang.org/protobuf/proto"
)

// BenchmarkVerify is full offline verification of the testdata receipt
// (a 7-leaf batch, one validator): audit path, ICS23 proof, header, commit
// signature. DESIGN budget: ≤ 300 µs per receipt.
func BenchmarkVerify(b *testing.B) {
	r := testReceipt(b)
	trust := testTrust(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Verify(r, trust); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/op")
}

// BenchmarkVerifyWire is what a verifier receiving the wire form does:
// decode, then verify.
func BenchmarkVerifyWire(b *testing.B) {
	wire := testWire(b)
	trust := testTrust(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(wire)))
	for b.Loop() {
		var r Receipt
		if err := proto.Unmarshal(wire, &r); err != nil {
			b.Fatal(err)
		}
		if _, err := Verify(&r, trust); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/op")
}

func BenchmarkUnmarshalReceiptJSON(b *testing.B) {
	file := readTestdata(b, "receipt.json")
	b.ReportAllocs()
	b.SetBytes(int64(len(file)))
	for b.Loop() {
		if _, err := UnmarshalReceiptJSON(file); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshalReceiptJSON(b *testing.B) {
	r := testReceipt(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := MarshalReceiptJSON(r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReceiptSize reports the receipt's size: canonical protobuf and
// the JSON file form, in total and for its parts (the size is the figure;
// the timing is the cost of the canonical encoding).
func BenchmarkReceiptSize(b *testing.B) {
	r := testReceipt(b)
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
